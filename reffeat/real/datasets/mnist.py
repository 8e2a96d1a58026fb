"""R1: MNIST and Fashion-MNIST from the four IDX files (gzip'd or not).

IDX format (LeCun): a 4-byte big-endian magic ``0x00 0x00 TYPE NDIM`` with
TYPE 0x08 = unsigned byte, then NDIM big-endian uint32 sizes, then the data in
C order. Images: magic 0x00000803, sizes (N, 28, 28); labels: 0x00000801, (N,).
Both data sets share the layout and the file names; only the hashes differ.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ._common import DataError

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_MAGIC = {3: 0x00000803, 1: 0x00000801}


def find_idx(directory: Path, stem: str) -> Path | None:
    """``stem.gz`` or ``stem`` (uncompressed) in ``directory``, or None."""
    for name in (stem + ".gz", stem):
        p = Path(directory) / name
        if p.is_file():
            return p
    return None


def read_idx(path, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip'd when it starts with the gzip magic) -> uint8 array.

    Raises DataError naming the file on a bad magic number, a wrong number of
    dimensions, a truncated body or a corrupt gzip stream.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip stream ({e})") from None
    if len(raw) < 4:
        raise DataError(f"{path}: too short for an IDX header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file "
                        f"(magic {raw[:4].hex()}, expected 000008NN)")
    nd = raw[3]
    if ndim is not None and nd != ndim:
        raise DataError(f"{path}: IDX magic {raw[:4].hex()} says {nd} dimensions, "
                        f"expected {ndim} (magic {IDX_MAGIC[ndim]:08x})")
    if len(raw) < 4 + 4 * nd:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(v) for v in np.frombuffer(raw, dtype=">u4", count=nd, offset=4))
    body = raw[4 + 4 * nd:]
    need = int(np.prod(dims, dtype=np.int64))
    if len(body) != need:
        raise DataError(f"{path}: IDX body has {len(body)} bytes, header {dims} "
                        f"needs {need} (file truncated or corrupt)")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write a uint8 array as IDX (gzip'd when the name ends in .gz)."""
    path = Path(path)
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + np.asarray(a.shape, dtype=">u4").tobytes()
    data = header + a.tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        # mtime=0: the same array always gives the same bytes (stable hashes).
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)


def read_split(directory: Path, split: str):
    """(images uint8 (N, 28, 28, 1), labels uint8 (N,)) of one split in ``directory``."""
    img_stem, lab_stem = SPLIT_FILES[split]
    # a missing file: read_idx names it (as the .gz the loaders look for first)
    ip = find_idx(directory, img_stem) or Path(directory) / (img_stem + ".gz")
    lp = find_idx(directory, lab_stem) or Path(directory) / (lab_stem + ".gz")
    images = read_idx(ip, ndim=3)
    labels = read_idx(lp, ndim=1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{ip.name} has {images.shape[0]} images but "
                        f"{lp.name} has {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise DataError(f"{lp}: labels must be 0..9 (found {int(labels.max())})")
    return images[..., None], labels
