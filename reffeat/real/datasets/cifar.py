"""R1: CIFAR-10 from ``cifar-10-python.tar.gz`` or its extracted ``cifar-10-batches-py/``.

Each batch is a Python pickle of a dict with ``b"data"`` (uint8, 10000 × 3072,
rows are the R, G, B planes of a 32×32 image) and ``b"labels"`` (10000 ints).
Training split: ``data_batch_1..5`` (50,000); test split: ``test_batch`` (10,000).

Pickle can run code, so batches are read with an unpickler that only resolves
the few numpy names an array needs; anything else is refused as corrupt data.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ._common import DataError

FOLDER = "cifar-10-batches-py"
ARCHIVE = "cifar-10-python.tar.gz"
SPLIT_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def parse_batch(blob: bytes, where: str):
    """One pickled batch -> (images uint8 (n, 32, 32, 3), labels int64 (n,))."""
    try:
        d = _SafeUnpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # any unpickling failure means a damaged file
        raise DataError(f"{where}: not a readable CIFAR-10 pickle batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict) or b"data" not in d or b"labels" not in d:
        keys = sorted(d) if isinstance(d, dict) else type(d).__name__
        raise DataError(f"{where}: a CIFAR-10 batch is a dict with b'data' and b'labels' (got {keys})")
    data = np.asarray(d[b"data"])
    labels = np.asarray(d[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(f"{where}: b'data' must be uint8 of shape (n, 3072) (got {data.dtype} {data.shape})")
    if labels.shape != (data.shape[0],):
        raise DataError(f"{where}: {labels.size} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{where}: labels must be 0..9")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def read_split(source: Path, split: str):
    """Read one split from an archive file or a ``cifar-10-batches-py`` directory."""
    source = Path(source)
    parts = []
    if source.is_file():
        try:
            with tarfile.open(source, "r:*") as tf:
                for b in SPLIT_BATCHES[split]:
                    try:
                        member = tf.getmember(f"{FOLDER}/{b}")
                    except KeyError:
                        raise DataError(f"{source}: archive has no {FOLDER}/{b}") from None
                    fh = tf.extractfile(member)
                    if fh is None:
                        raise DataError(f"{source}: {FOLDER}/{b} in the archive is not a file")
                    parts.append(parse_batch(fh.read(), f"{source}:{b}"))
        except (tarfile.TarError, OSError, EOFError) as e:
            raise DataError(f"{source}: corrupt or truncated archive ({e})") from None
    else:
        for b in SPLIT_BATCHES[split]:
            p = source / b
            if not p.is_file():
                raise DataError(f"{source}: missing batch file {b}")
            parts.append(parse_batch(p.read_bytes(), str(p)))
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images, labels
