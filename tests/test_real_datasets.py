"""R1 loaders and data acquisition, on tiny files written here in the exact real formats."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from reffeat.cli import data as data_cli
from reffeat.real.datasets import DataError, IntegrityError, MissingDataError, load, locate, required_files
from reffeat.real.datasets import fetch as F
from reffeat.real.datasets._common import FileSpec, select, verify_file
from reffeat.real.datasets.mnist import read_idx, write_idx


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """No real data leaks in: $REFFEAT_DATA and ~ point into the test's tmp dir."""
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def _idx_set(directory: Path, n_train=12, n_test=6, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for stem_i, stem_l, n in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte", n_train),
                              ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", n_test)):
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labs = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(directory / (stem_i + suffix), imgs)
        write_idx(directory / (stem_l + suffix), labs)
        out[stem_i] = imgs
        out[stem_l] = labs
    return out


# ------------------------------------------------------------------ IDX

@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_and_load(tmp_path, gz):
    arrays = _idx_set(tmp_path / "mnist", gz=gz)
    X, y = load("mnist", "train", data_dir=tmp_path, verify=False)
    assert X.shape == (12, 28, 28, 1) and X.dtype == np.float64
    assert 0.0 <= X.min() and X.max() <= 1.0
    np.testing.assert_array_equal(np.rint(X[..., 0] * 255).astype(np.uint8),
                                  arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y, arrays["train-labels-idx1-ubyte"])
    Xt, yt = load("mnist", "test", data_dir=tmp_path, verify=False)
    assert Xt.shape == (6, 28, 28, 1) and yt.dtype == np.int64


def test_idx_magic_numbers_are_the_real_ones(tmp_path):
    _idx_set(tmp_path)
    raw = gzip.decompress((tmp_path / "train-images-idx3-ubyte.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert int.from_bytes(raw[4:8], "big") == 12 and int.from_bytes(raw[8:12], "big") == 28
    raw = gzip.decompress((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x01"


def test_files_directly_in_data_dir_are_found(tmp_path):
    _idx_set(tmp_path / "flat")
    d, _ = locate("fashion-mnist", "train", tmp_path / "flat")
    assert d == tmp_path / "flat"


def test_idx_truncated_body(tmp_path):
    _idx_set(tmp_path / "mnist", gz=False)
    p = tmp_path / "mnist" / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-100])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        load("mnist", "train", data_dir=tmp_path, verify=False)


def test_idx_truncated_gzip(tmp_path):
    _idx_set(tmp_path / "mnist")
    p = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz"):
        load("mnist", "train", data_dir=tmp_path, verify=False)


def test_idx_wrong_magic(tmp_path):
    _idx_set(tmp_path / "mnist", gz=False)
    p = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    b = bytearray(p.read_bytes()); b[2] = 0x0D                     # float type code
    p.write_bytes(bytes(b))
    with pytest.raises(DataError, match="magic"):
        load("mnist", "train", data_dir=tmp_path, verify=False)


def test_idx_images_given_as_labels_is_a_clear_error(tmp_path):
    _idx_set(tmp_path / "mnist", gz=False)
    d = tmp_path / "mnist"
    os.replace(d / "t10k-images-idx3-ubyte", d / "train-labels-idx1-ubyte")
    with pytest.raises(DataError, match="3 dimensions, expected 1"):
        load("mnist", "train", data_dir=tmp_path, verify=False)


def test_idx_count_mismatch(tmp_path):
    _idx_set(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match="12 images but .* 5 labels"):
        load("mnist", "train", data_dir=tmp_path, verify=False)


def test_read_idx_header_too_short(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="too short"):
        read_idx(p)


# ------------------------------------------------------------ verification

def test_non_canonical_files_fail_verification_naming_the_file(tmp_path):
    _idx_set(tmp_path / "mnist")
    with pytest.raises(IntegrityError, match="train-images-idx3-ubyte.gz.*SHA-256"):
        load("mnist", "train", data_dir=tmp_path)


def test_verify_accepts_raw_and_gunzipped_payload_hashes(tmp_path):
    payload = b"hello idx"
    raw_hash = hashlib.sha256(payload).hexdigest()
    spec = FileSpec("f.gz", None, "0" * 64, raw_hash)
    (tmp_path / "f").write_bytes(payload)
    assert verify_file(tmp_path / "f", spec) == "sha256"
    (tmp_path / "f.gz").write_bytes(gzip.compress(payload, mtime=123))  # re-gzipped: other bytes
    assert verify_file(tmp_path / "f.gz", spec) == "sha256-payload"
    (tmp_path / "g.gz").write_bytes(gzip.compress(b"other"))
    with pytest.raises(IntegrityError, match="g.gz"):
        verify_file(tmp_path / "g.gz", spec)


def test_manifest_hashes_are_checked(tmp_path):
    d = tmp_path / "mnist"
    _idx_set(d)
    names = [p.name for p in d.iterdir()]
    manifest = {"canonical": False, "source": "test", "sha256": {
        n: hashlib.sha256((d / n).read_bytes()).hexdigest() for n in names}}
    (d / "SOURCE.json").write_text(json.dumps(manifest))
    X, y, info = load("mnist", "train", data_dir=tmp_path, return_info=True)
    assert info["source"] == "test" and info["canonical"] is False
    assert set(info["verified"].values()) <= {"manifest", "cached"}
    write_idx(d / "train-labels-idx1-ubyte.gz", np.ones(12, np.uint8))   # tamper
    with pytest.raises(IntegrityError, match="train-labels-idx1-ubyte.gz.*SOURCE.json"):
        load("mnist", "train", data_dir=tmp_path)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz").exists(),
                    reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist_labels_verify():
    X, y, info = load("fashion-mnist", "test", data_dir="/usr/share/datasets/fashion-mnist",
                      classes=[9], per_class=3, return_info=True)
    assert X.shape == (3, 28, 28, 1) and (y == 0).all()
    assert info["verified"]["t10k-labels-idx1-ubyte.gz"] in ("sha256", "sha256-payload", "cached")


# ------------------------------------------------------------- missing data

def test_missing_data_message_names_files_and_both_ways(tmp_path):
    with pytest.raises(MissingDataError) as e:
        load("svhn", "test", data_dir=tmp_path / "nowhere")
    msg = str(e.value)
    assert "test_32x32.mat" in msg and "fetch svhn" in msg and "--from" in msg
    assert str(tmp_path / "nowhere") in msg and str(tmp_path / "env") in msg


def test_bad_names_are_value_errors():
    with pytest.raises(ValueError, match="dataset must be one of"):
        load("imagenet")
    with pytest.raises(ValueError, match="split must be one of"):
        load("mnist", "validation")
    assert required_files("mnist", "test") == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


# ------------------------------------------------------------ class subset

def test_select_subset_cap_and_seed():
    y = np.repeat(np.arange(5), 20)
    keep, new_y, kept = select(y, classes=[3, 1], per_class=4, seed=7)
    assert kept == [3, 1] and len(keep) == 8
    assert set(new_y[y[keep] == 3]) == {0} and set(new_y[y[keep] == 1]) == {1}
    assert np.all(np.diff(keep) > 0)
    keep2, _, _ = select(y, classes=[3, 1], per_class=4, seed=7)
    np.testing.assert_array_equal(keep, keep2)
    with pytest.raises(ValueError, match="classes must be among"):
        select(y, classes=[9])
    with pytest.raises(ValueError, match="per_class must be"):
        select(y, per_class=0)


# ------------------------------------------------------------------ CIFAR

def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"x", b"labels": [int(v) for v in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [b"f"] * n}


def _cifar_dir(root: Path, n=4):
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    batches = {}
    for i, b in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        batches[b] = _cifar_batch(n, i)
        (d / b).write_bytes(pickle.dumps(batches[b], protocol=2))
    return d, batches


def test_cifar_from_folder_and_archive(tmp_path):
    d, batches = _cifar_dir(tmp_path / "a" / "cifar10")
    X, y = load("cifar10", "train", data_dir=tmp_path / "a", verify=False)
    assert X.shape == (20, 32, 32, 3)
    b1 = batches["data_batch_1"]
    # channel planes: R is the first 1024 bytes of a row, row-major 32x32
    assert np.isclose(X[0, 0, 1, 0], b1[b"data"][0, 1] / 255)
    assert np.isclose(X[0, 0, 0, 2], b1[b"data"][0, 2048] / 255)
    np.testing.assert_array_equal(y[:4], b1[b"labels"])
    arch = tmp_path / "b" / "cifar10" / "cifar-10-python.tar.gz"
    arch.parent.mkdir(parents=True)
    with tarfile.open(arch, "w:gz") as t:
        t.add(d, arcname="cifar-10-batches-py")
    X2, y2 = load("cifar10", "train", data_dir=tmp_path / "b", verify=False)
    np.testing.assert_array_equal(X, X2)
    with pytest.raises(IntegrityError, match="cifar-10-python.tar.gz"):
        load("cifar10", "test", data_dir=tmp_path / "b")


def test_cifar_extracted_batches_checked_by_md5(tmp_path):
    _cifar_dir(tmp_path / "cifar10")
    with pytest.raises(IntegrityError, match="data_batch_1.*MD5"):
        load("cifar10", "train", data_dir=tmp_path)


def test_cifar_bad_batches(tmp_path):
    d, _ = _cifar_dir(tmp_path / "cifar10")
    (d / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8),
                                                 b"labels": [0, 1, 2]}, protocol=2))
    with pytest.raises(DataError, match=r"test_batch.*\(n, 3072\)"):
        load("cifar10", "test", data_dir=tmp_path, verify=False)
    (d / "test_batch").write_bytes(pickle.dumps({b"images": 1}, protocol=2))
    with pytest.raises(DataError, match="b'data' and b'labels'"):
        load("cifar10", "test", data_dir=tmp_path, verify=False)
    (d / "test_batch").write_bytes(pickle.dumps(_cifar_batch(4, 0), protocol=2)[:300])
    with pytest.raises(DataError, match="test_batch"):
        load("cifar10", "test", data_dir=tmp_path, verify=False)


def test_cifar_pickle_cannot_run_code(tmp_path):
    d, _ = _cifar_dir(tmp_path / "cifar10")

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    (d / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}, protocol=2))
    with pytest.raises(DataError, match="refusing"):
        load("cifar10", "test", data_dir=tmp_path, verify=False)


# ------------------------------------------------------------------- SVHN

def _svhn(path: Path, n=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)      # 1..10, 10 = digit 0
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": X, "y": y})
    return X, y


def test_svhn_mat_v5(tmp_path):
    X0, y0 = _svhn(tmp_path / "svhn" / "test_32x32.mat", n=12)
    X, y = load("svhn", "test", data_dir=tmp_path, verify=False)
    assert X.shape == (12, 32, 32, 3)
    np.testing.assert_allclose(X[3], X0[..., 3] / 255.0)
    assert y[9] == 0 and y[0] == 1 and y.max() <= 9      # label 10 -> digit 0
    with pytest.raises(MissingDataError, match="train_32x32.mat"):
        load("svhn", "train", data_dir=tmp_path, verify=False)
    with pytest.raises(IntegrityError, match="test_32x32.mat"):
        load("svhn", "test", data_dir=tmp_path)


def test_svhn_wrong_shapes_and_garbage(tmp_path):
    p = tmp_path / "svhn" / "test_32x32.mat"
    p.parent.mkdir(parents=True)
    scipy.io.savemat(p, {"X": np.zeros((28, 28, 1, 4), np.uint8), "y": np.ones((4, 1))})
    with pytest.raises(DataError, match=r"\(32, 32, 3, N\)"):
        load("svhn", "test", data_dir=tmp_path, verify=False)
    scipy.io.savemat(p, {"X": np.zeros((32, 32, 3, 4), np.uint8), "y": np.ones((3, 1))})
    with pytest.raises(DataError, match="3 labels for 4 images"):
        load("svhn", "test", data_dir=tmp_path, verify=False)
    _svhn(p)
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(DataError, match="test_32x32.mat"):
        load("svhn", "test", data_dir=tmp_path, verify=False)
    p.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match="test_32x32.mat"):
        load("svhn", "test", data_dir=tmp_path, verify=False)


# ----------------------------------------------------------------- import

def _npm_digits(root: Path, per_digit=5, seed=0):
    d = root / "package" / "src" / "digits"
    d.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for digit in range(10):
        imgs = np.round(rng.integers(0, 256, size=(per_digit, 784)) / 255.0, 3)
        (d / f"{digit}.json").write_text(json.dumps({"data": imgs.ravel().tolist()}))
    return d


def test_import_npm_mnist_seeded_split(tmp_path):
    _npm_digits(tmp_path / "src")
    out = F.import_from("mnist", tmp_path / "data", tmp_path / "src", seed=3, test_fraction=0.4, quiet=True)
    man = json.loads((out / "SOURCE.json").read_text())
    assert man["canonical"] is False and "NOT the official" in man["note"]
    X, y, info = load("mnist", "train", data_dir=tmp_path / "data", return_info=True)
    Xt, yt = load("mnist", "test", data_dir=tmp_path / "data")
    assert len(y) == 30 and len(yt) == 20 and np.bincount(yt).tolist() == [2] * 10
    assert info["canonical"] is False
    # the same seed gives the same split, another seed another one
    F.import_from("mnist", tmp_path / "data2", tmp_path / "src", seed=3, test_fraction=0.4, quiet=True)
    np.testing.assert_array_equal(load("mnist", "test", data_dir=tmp_path / "data2")[0], Xt)
    F.import_from("mnist", tmp_path / "data3", tmp_path / "src", seed=4, test_fraction=0.4, quiet=True)
    assert not np.array_equal(load("mnist", "test", data_dir=tmp_path / "data3")[0], Xt)


def test_import_from_archive_rejects_non_canonical(tmp_path):
    _idx_set(tmp_path / "src" / "deep" / "dir")
    arch = tmp_path / "copy.tar.gz"
    with tarfile.open(arch, "w:gz") as t:
        t.add(tmp_path / "src", arcname="src")
    with pytest.raises(IntegrityError, match="train-images-idx3-ubyte.gz"):
        F.import_from("fashion-mnist", tmp_path / "data", arch, quiet=True)
    with pytest.raises(DataError, match="no svhn files|train_32x32"):
        F.import_from("svhn", tmp_path / "data", arch, quiet=True)


def test_data_cli_exit_codes(tmp_path, capsys):
    assert data_cli.main(["fetch", "imagenet"]) == 2
    assert "invalid choice: 'imagenet'" in capsys.readouterr().err
    rc = data_cli.main(["where", "cifar10", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "cifar-10-python.tar.gz" in err and "Traceback" not in err
    rc = data_cli.main(["fetch", "mnist", "--dir", str(tmp_path), "--from", str(tmp_path / "none")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    _npm_digits(tmp_path / "npm")
    rc = data_cli.main(["fetch", "mnist", "--dir", str(tmp_path / "d"), "--from", str(tmp_path / "npm"),
                        "--quiet"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and json.loads(lines[0])["n"] == 40


# -------------------------------------------------------- resumable download

class _RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802
        data, start = self.payload, 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416); self.end_headers(); return
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *a):
        pass


def test_download_resumes_and_verifies(tmp_path):
    payload = os.urandom(200_000)
    _RangeHandler.payload = payload
    srv = http.server.HTTPServer(("127.0.0.1", 0), _RangeHandler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}/f.bin"
        dest = tmp_path / "f.bin"
        (tmp_path / "f.bin.part").write_bytes(payload[:70_000])          # an interrupted download
        F.download_file(url, dest, hashlib.sha256(payload).hexdigest(), quiet=True, timeout=10)
        assert dest.read_bytes() == payload and not (tmp_path / "f.bin.part").exists()
        (tmp_path / "g.bin.part").write_bytes(payload)                    # complete part: 416
        F.download_file(url, tmp_path / "g.bin", hashlib.sha256(payload).hexdigest(), quiet=True)
        assert (tmp_path / "g.bin").read_bytes() == payload
        with pytest.raises(IntegrityError, match="h.bin"):
            F.download_file(url, tmp_path / "h.bin", "0" * 64, quiet=True)
        assert not (tmp_path / "h.bin.part").exists() and not (tmp_path / "h.bin").exists()
    finally:
        srv.shutdown()
        srv.server_close()
