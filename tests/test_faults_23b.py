"""Issue 23, second part: bad results files for ``verify --from-results``, data
imports on a full disk or with empty inputs, interruptible worker waits.

Each bad input: exit 2 (or a DataError/ValueError at the API), one line naming
the file and what is wrong, no traceback, no numpy wording, nothing left half
written. Run: ``python -m pytest -q tests/test_faults_23b.py``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from reffeat.verify import run as verify_run
from reffeat.verify.results_check import ResultsFileError, check_results

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "verify" / "results.json"


@pytest.fixture(scope="module")
def committed():
    if not COMMITTED.is_file():
        pytest.skip("verify/results.json not in this checkout")
    return json.loads(COMMITTED.read_text())


@pytest.fixture(scope="module")
def small(committed):
    """The committed results.json cut to the default regime (what --from-results rebuilds from)."""
    return {"mode": committed["mode"], "timings": committed["timings"],
            "claims": {"default": committed["claims"]["default"]},
            "records": {"default": committed["records"]["default"]}, "phase": None, "variants": None,
            "figures": {}}


def _without(doc, mode, key):
    d = copy.deepcopy(doc)
    for r in d["records"]["default"]["records"]:
        r[mode].pop(key, None)
    return d


def _verify(tmp_path, capsys, doc, *extra):
    f = tmp_path / "in.json"
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    out = tmp_path / "v"
    code = verify_run.main(["--from-results", str(f), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    return code, err, out


def test_the_committed_results_pass_the_check_with_and_without_recheck(committed):
    check_results(committed, "verify/results.json")
    check_results(committed, "verify/results.json", recheck=True)


BAD = [
    ("empty-object", lambda s: {}, "holds no results"),
    ("list", lambda s: [], "must be a JSON object (got a list)"),
    ("number", lambda s: 5, "must be a JSON object (got a number)"),
    ("claims-only", lambda s: {"claims": s["claims"]}, "no per-seed records"),
    ("records-only", lambda s: {"records": s["records"]}, "but no claims"),
    ("regimes-differ", lambda s: {**s, "records": {"q3": s["records"]["default"]}}, "but its records"),
    ("claim-without-keys", lambda s: {**s, "claims": {"default": {"P1": {"name": "P1"}}}}, "lacks statement"),
    ("records-not-list", lambda s: {**s, "records": {"default": {"config": {}, "records": 3}}},
     "non-empty list"),
    ("bad-config", lambda s: {**s, "records": {"default": {**s["records"]["default"], "config": {"k": -1}}}},
     "not a valid Config"),
    ("older-gamma_j", lambda s: _without(s, "st", "gamma_j"), "lacks st.gamma_j"),
    ("older-snap_steps", lambda s: _without(s, "at", "snap_steps"), "lacks at.snap_steps"),
    ("bad-mode", lambda s: {**s, "mode": 7}, "mode must be"),
    ("phase-list", lambda s: {**s, "phase": [1]}, "phase must be an object"),
    ("phase-missing-part", lambda s: {**s, "phase": {"pref": {}}}, "phase diagram pref lacks"),
    ("variants-no-rows", lambda s: {**s, "variants": {"stability": {}}}, "must have rows"),
]


@pytest.mark.parametrize("recheck", [False, True], ids=["plain", "recheck"])
@pytest.mark.parametrize("name, make, match", BAD, ids=[b[0] for b in BAD])
def test_a_results_file_that_cannot_be_rebuilt_is_refused_in_one_line(name, make, match, recheck, small,
                                                                      tmp_path, capsys):
    code, err, out = _verify(tmp_path, capsys, make(small), *(["--recheck"] if recheck else []))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --from-results "), err
    assert "in.json" in err and match in err and "Traceback" not in err, err
    assert not (out / "REPORT.md").exists() and not (out / "results.json").exists()


@pytest.mark.parametrize("key", ["phi", "clean_acc", "alignment", "robust_acc_pgd"])
def test_older_records_lacking_a_key_recheck_reads_are_refused_with_recheck_only(key, small, tmp_path, capsys):
    doc = _without(small, "st", key)
    check_results(doc, "x.json")                               # the stored verdicts: rebuildable
    with pytest.raises(ResultsFileError, match=f"x.json .*reads '{key}'"):
        check_results(doc, "x.json", recheck=True)
    code, err, _ = _verify(tmp_path, capsys, doc, "--recheck")
    assert code == 2 and f"'{key}'" in err and "KeyError" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("text, match", [("not json", "not JSON text"), ("", "not JSON text"),
                                         ("[" * 100000, "not JSON text")], ids=["text", "empty", "deep"])
def test_a_results_file_that_is_not_json_is_refused(text, match, tmp_path, capsys):
    code, err, _ = _verify(tmp_path, capsys, text)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err


def test_a_wrongly_typed_report_value_is_refused_before_writing(small, tmp_path, capsys):
    doc = copy.deepcopy(small)
    doc["records"]["default"]["records"][2]["at"]["gamma_j"] = "high"
    code, err, out = _verify(tmp_path, capsys, doc)
    assert code == 2 and "seed 2" in err and "at.gamma_j must be a number" in err, err
    assert not (out / "REPORT.md").exists()


# ---------------------------------------------------------------- data imports (item 2)
import errno  # noqa: E402
import tarfile  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402

from reffeat.cli import data as data_cli  # noqa: E402
from reffeat.real.datasets import DataError, DiskFullError, fetch, load  # noqa: E402
from reffeat.real.datasets import mnist as mnist_files  # noqa: E402

NUMPY_WORDS = ("zero-size array", "need at least one array", "Traceback", "allow_pickle")


def _npm(root: Path, per_digit: int = 3) -> Path:
    d = root / "npm" / "package" / "src" / "digits"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for digit in range(10):
        (d / f"{digit}.json").write_text(json.dumps({"data": np.round(rng.random(784 * per_digit), 3).tolist()}))
    return root / "npm"


def _left(root: Path) -> list:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _enospc(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _fetch(argv, capsys):
    code = data_cli.main(["fetch", "mnist", "--quiet", *argv])
    err = capsys.readouterr().err
    assert all(w not in err for w in NUMPY_WORDS), err
    assert len(err.strip().splitlines()) == 1, err
    return code, err


@pytest.mark.parametrize("kind", ["tar", "zip"])
def test_a_full_disk_while_extracting_is_reported_as_such_and_leaves_nothing(kind, tmp_path, monkeypatch,
                                                                              capsys):
    src = _npm(tmp_path)
    if kind == "tar":
        arch = tmp_path / "a.tgz"
        with tarfile.open(arch, "w:gz") as t:
            t.add(src, arcname="package")
        monkeypatch.setattr(tarfile.TarFile, "makefile", _enospc)
    else:
        arch = tmp_path / "a.zip"
        with zipfile.ZipFile(arch, "w") as z:
            for p in src.rglob("*.json"):
                z.write(p, p.relative_to(src))
        monkeypatch.setattr(zipfile.ZipFile, "_extract_member", _enospc)
    code, err = _fetch(["--from", str(arch), "--dir", str(tmp_path / "data")], capsys)
    assert code == 1, err
    assert "no space left on device" in err and str(arch) in err and "not a readable" not in err, err
    assert _left(tmp_path / "data") == []


def test_a_damaged_zip_is_one_line_naming_it_and_leaves_nothing(tmp_path, capsys):
    src = _npm(tmp_path)
    arch = tmp_path / "a.zip"
    with zipfile.ZipFile(arch, "w", zipfile.ZIP_STORED) as z:
        for p in src.rglob("*.json"):
            z.write(p, p.relative_to(src))
    raw = bytearray(arch.read_bytes())
    at = raw.index(b'{"data"') + 20                     # a byte inside the first member's data
    raw[at] = ord("7") if raw[at] != ord("7") else ord("3")
    arch.write_bytes(bytes(raw))
    code, err = _fetch(["--from", str(arch), "--dir", str(tmp_path / "data")], capsys)
    assert code == 2 and str(arch) in err and "not a readable .zip archive" in err, err
    assert _left(tmp_path / "data") == []


@pytest.mark.parametrize("at", ["idx", "manifest"])
def test_a_full_disk_during_an_npm_import_leaves_no_file(at, tmp_path, monkeypatch, capsys):
    src = _npm(tmp_path)
    if at == "idx":
        calls = {"n": 0}
        real = fetch._mnist.write_idx

        def write(path, arr, compress=True):
            calls["n"] += 1
            if calls["n"] == 2:
                Path(path).write_bytes(b"half")
                _enospc()
            real(path, arr, compress=compress)
        monkeypatch.setattr(fetch._mnist, "write_idx", write)
    else:
        monkeypatch.setattr(fetch, "atomic_write_json", _enospc)
    code, err = _fetch(["--from", str(src), "--dir", str(tmp_path / "data")], capsys)
    assert code == 1 and "no space left on device" in err, err
    assert ("SOURCE.json" if at == "manifest" else "-idx") in err, err
    assert _left(tmp_path / "data") == []


def test_a_full_disk_while_copying_removes_the_files_this_import_added(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "src" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for b in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / b).write_bytes(b"x" * 10)
    calls = {"n": 0}
    real = fetch.atomic_write_bytes

    def write(path, data):
        calls["n"] += 1
        if calls["n"] == 3:
            _enospc()
        real(path, data)
    monkeypatch.setattr(fetch, "atomic_write_bytes", write)
    code = data_cli.main(["fetch", "cifar10", "--quiet", "--from", str(tmp_path / "src"),
                          "--dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 1 and "data_batch_3: no space left on device" in err, err
    assert _left(tmp_path / "data") == []


def test_a_full_disk_while_downloading_is_not_a_network_failure(tmp_path, monkeypatch):
    class Resp:
        status, headers = 200, {"Content-Length": "4"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def read(self, n):
            return b"data"

    class Full:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def write(self, b):
            _enospc()
    monkeypatch.setattr(fetch.urllib.request, "urlopen", lambda *a, **k: Resp())
    monkeypatch.setattr(fetch, "open", lambda *a, **k: Full(), raising=False)
    with pytest.raises(DiskFullError, match="train-images-idx3-ubyte.gz.part: no space left"):
        fetch.fetch("mnist", tmp_path / "data", quiet=True)


@pytest.mark.parametrize("per_digit, fraction", [(1, 0.2), (1, 0.9), (2, 0.01)])
def test_an_npm_import_that_would_leave_a_split_empty_is_refused_naming_the_file(per_digit, fraction, tmp_path,
                                                                                 capsys):
    src = _npm(tmp_path, per_digit)
    code, err = _fetch(["--from", str(src), "--dir", str(tmp_path / "data"), "--test-fraction", str(fraction)],
                       capsys)
    assert code == 2 and "0.json" in err and "each split needs at least one" in err, err
    assert _left(tmp_path / "data") == []


@pytest.mark.parametrize("split", ["train", "test"])
def test_an_empty_split_on_disk_is_one_line_naming_the_files(split, tmp_path, capsys):
    d = tmp_path / "data" / "mnist"
    d.mkdir(parents=True)
    for sp, (img, lab) in mnist_files.SPLIT_FILES.items():
        n = 0 if sp == split else 3
        mnist_files.write_idx(d / (img + ".gz"), np.zeros((n, 28, 28), np.uint8))
        mnist_files.write_idx(d / (lab + ".gz"), np.zeros(n, np.uint8))
    from reffeat.real.datasets._common import sha256_file
    (d / "SOURCE.json").write_text(json.dumps({"canonical": False, "source": "test", "sha256": {
        p.name: sha256_file(p) for p in d.glob("*.gz")}}))
    with pytest.raises(DataError, match=f"idx3-ubyte.gz.*the {split} split of mnist holds no images"):
        load("mnist", split, data_dir=tmp_path / "data", verify=False)
    code = data_cli.main(["where", "mnist", "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2 and "holds no images" in err and "need at least one" not in err, err


# ---------------------------------------------------------------- worker waits and orphans (item 3)
import os  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

SLEEP_JOB = '''
import os, time
def slow(cfg):
    with open(os.environ["MARK"] + f".{os.getpid()}", "w") as fh:
        fh.write("started")
    time.sleep(600)
    return {}
'''
PARENT = '''
import sys
from reffeat import Config
from reffeat.cli.common import command
from reffeat.jobs import Runner
import sleepjob

@command
def main(argv, policy):
    Runner(workers=int(argv[0]), progress=None).map(sleepjob.slow, [Config(seed=s) for s in range(int(argv[0]))])
    return 0

if __name__ == "__main__":                       # (spawned workers import this file as __mp_main__)
    sys.exit(main(sys.argv[1:]))
'''


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.fixture
def cleanup():
    """Processes a test started, killed at its end whatever happened (no orphan sleeps on)."""
    started: list = []
    yield started
    for p in started:
        if isinstance(p, subprocess.Popen):
            if p.poll() is None:
                p.kill()
                p.communicate(timeout=30)
        elif _alive(p):
            os.kill(p, signal.SIGKILL)


def _start_parent(tmp_path, cleanup, workers: int = 2):
    (tmp_path / "sleepjob.py").write_text(SLEEP_JOB)
    (tmp_path / "parent.py").write_text(PARENT)
    env = dict(os.environ, MARK=str(tmp_path / "started"),
               PYTHONPATH=os.pathsep.join([str(ROOT), str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, str(tmp_path / "parent.py"), str(workers)], cwd=str(tmp_path),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cleanup.append(proc)
    workers_pids: list = []
    for _ in range(1200):                         # a hang guard, not a timing assertion
        workers_pids = [int(p.name.rsplit(".", 1)[1]) for p in tmp_path.glob("started.*")]
        if len(workers_pids) == workers or proc.poll() is not None:
            break
        time.sleep(0.1)
    cleanup.extend(workers_pids)
    assert len(workers_pids) == workers, proc.communicate(timeout=30)
    return proc, workers_pids


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["term", "int"])
def test_a_signal_stops_a_runner_waiting_on_workers_and_no_worker_survives(sig, code, tmp_path, cleanup):
    proc, pids = _start_parent(tmp_path, cleanup)
    assert all(_alive(p) for p in pids)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)         # the job sleeps 600 s: a blocking wait would hang here
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    for _ in range(100):
        if not any(_alive(p) for p in pids):
            break
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), f"workers {pids} outlived their client"


def test_workers_exit_by_themselves_when_their_client_is_killed(tmp_path, cleanup):
    proc, pids = _start_parent(tmp_path, cleanup)
    proc.kill()                                   # SIGKILL: no handler, no clean-up in the client
    proc.communicate(timeout=60)
    for _ in range(300):                          # a hang guard: they go within POLL seconds
        if not any(_alive(p) for p in pids):
            break
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), f"workers {pids} kept running after their client was killed"


# ---------------------------------------------------------------- memory estimate (item 4)
from reffeat import Config  # noqa: E402
from reffeat.cli import sweep as sweep_cli  # noqa: E402
from reffeat.experiments import memory  # noqa: E402


def test_the_synthetic_estimate_covers_the_measured_peak_of_a_certify_heavy_run():
    """k = 4: E5's (k−1)·n·P-sized arrays dominate the evaluation; the old estimate
    (4.5 copies of the test inputs) was 4.4× below the measured peak."""
    import tracemalloc

    from reffeat.experiments.synthetic import sweep_record
    cfg = Config(k=4, n_train=20, n_test=300, P=8, d_N=32, m=8, T=2, log_every=1, eval_apgd_K=3)
    sweep_record(Config(n_train=4, n_test=4, P=4, d_N=8, m=2, T=1, log_every=1))   # compile outside
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    sweep_record(cfg)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    est = memory.synthetic(cfg)
    assert peak <= est < 4 * peak, (peak, est)


def test_the_estimate_grows_with_apgd_and_e5_sizes():
    base = Config(n_test=1000, k=3)
    assert memory.evaluation(base.replace(k=6)) > 2 * memory.evaluation(base)        # E5: (k−1)·n pairs
    cfg = Config(k=2, m=1, n_test=2000, eval_apgd_K=10**6)          # APGD's loss traces: 2·(K+1)·500 floats
    assert memory.evaluation(cfg) > memory.evaluation(cfg.replace(eval_apgd_K=0)) + 2 * 10**6 * 500 * 8 * 0.99


def test_the_real_estimate_covers_lenses_eval_and_the_full_test_split():
    from reffeat.experiments.real_config import resolve
    c = resolve("fashion-mnist", {"n_train": 600, "n_eval": 200, "n_lens": 100}, quick=True)
    off = resolve("fashion-mnist", {"n_train": 600, "n_eval": 200, "n_lens": 100, "lenses": False}, quick=True)
    assert memory.real(c) - memory.real(off) == 8 * 100 * 28 * 28 * 8
    more_eval = resolve("fashion-mnist", {"n_train": 600, "n_eval": 1200, "n_lens": 100}, quick=True)
    assert memory.real(more_eval) - memory.real(c) == 7 * 1000 * 28 * 28 * 8
    assert memory.real(c) > 3.5 * 10000 * 28 * 28 * 8          # the full test split, ~3.5 copies
    overlap = resolve("fashion-mnist", {"n_train": 600, "n_eval": 200, "n_lens": 100, "p": 7, "stride": 3},
                      quick=True)
    assert memory.real(overlap) > memory.real(c)                # P·p² = 3136 > 784 floats per image


def test_a_sweep_that_cannot_fit_is_refused_before_any_work(tmp_path, capsys):
    grid = tmp_path / "big.toml"
    grid.write_text("seeds = 2\n[base]\nT = 1\nn_test = 100000\n[grid]\nk = [10, 20]\n")
    code = sweep_cli.main([str(grid), "--out", str(tmp_path / "o"), "--workers", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "this sweep (4 jobs, 2 at a time" in err, err
    assert "GB of memory; this machine has" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_the_sweep_estimate_sums_the_largest_jobs_running_at_once():
    small, big = Config(k=3), Config(k=3, n_test=4000)
    assert memory.sweep([small, big], 3, at_once=1) == memory.synthetic(big)
    assert memory.sweep([small, big], 3, at_once=2) == 2 * memory.synthetic(big)
    assert memory.sweep([small, big], 1, at_once=2) == memory.synthetic(big) + memory.synthetic(small)


def test_run_real_refuses_lenses_that_cannot_fit(tmp_path, capsys):
    from reffeat.cli import real as real_cli
    code = real_cli.main(["--dataset", "mnist", "--n-lens", "1000000000", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "GB of memory; this machine has" in err, err
    assert not (tmp_path / "o").exists()
