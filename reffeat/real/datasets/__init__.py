"""R1: real-image loaders — MNIST, Fashion-MNIST, CIFAR-10, SVHN (numpy + scipy only).

>>> X, y = load("fashion-mnist", "test", classes=[0, 1], per_class=5)   # doctest: +SKIP
>>> X.shape, X.dtype, y                                                  # doctest: +SKIP
((10, 28, 28, 1), dtype('float64'), array([0, 1, ...]))

``load`` returns pixels in [0, 1] as (N, H, W, C) floats and int64 labels
(renumbered 0..len(classes)-1 when a class subset is given), from the
standard split. Files are looked up in ``data_dir``, ``$REFFEAT_DATA``,
``~/.cache/reffeat`` (see ``_common``); their SHA-256 is checked against the
canonical one. Missing files raise ``MissingDataError`` whose message lists
them and the two ways to get them (``python -m reffeat.data fetch``: download,
or import with ``--from``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import cifar as _cifar
from . import mnist as _mnist
from . import svhn as _svhn
from ._common import (
    CIFAR_BATCH_MD5,
    CLASSES,
    KNOWN,
    NAMES,
    DataError,
    DiskFullError,
    IntegrityError,
    MissingDataError,
    candidate_dirs,
    check_name,
    default_root,
    how_to_get,
    md5_file,
    read_manifest,
    search_roots,
    select,
    to_unit,
    verify_file,
)

__all__ = ["load", "locate", "NAMES", "CLASSES", "DataError", "MissingDataError",
           "IntegrityError", "DiskFullError", "default_root", "search_roots", "required_files"]

SPLITS = ("train", "test")


def required_files(name: str, split: str | None = None) -> list[str]:
    """Canonical file names of data set ``name`` (for one split, or all)."""
    check_name(name)
    splits = SPLITS if split is None else (split,)
    if name in ("mnist", "fashion-mnist"):
        return [s + ".gz" for sp in splits for s in _mnist.SPLIT_FILES[sp]]
    if name == "cifar10":
        return [_cifar.ARCHIVE]
    return [_svhn.SPLIT_FILES[sp] for sp in splits]


def _spec(name: str, filename: str):
    for s in KNOWN[name]:
        if s.name == filename or s.name == filename + ".gz":
            return s
    return None


def _find(name: str, split: str, directory: Path):
    """Paths of the files of ``split`` in ``directory`` or None when incomplete."""
    if name in ("mnist", "fashion-mnist"):
        paths = [_mnist.find_idx(directory, s) for s in _mnist.SPLIT_FILES[split]]
        return None if any(p is None for p in paths) else paths
    if name == "cifar10":
        for folder in (directory / _cifar.FOLDER, directory):
            if all((folder / b).is_file() for b in _cifar.SPLIT_BATCHES[split]):
                return [folder]
        arch = directory / _cifar.ARCHIVE
        return [arch] if arch.is_file() else None
    p = directory / _svhn.SPLIT_FILES[split]
    return [p] if p.is_file() else None


def locate(name: str, split: str = "train", data_dir=None):
    """(directory, [paths]) of the first place that holds ``name``/``split``."""
    check_name(name)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
    dirs = candidate_dirs(name, data_dir)
    for d in dirs:
        if d.is_dir():
            found = _find(name, split, d)
            if found is not None:
                return d, found
    raise MissingDataError(how_to_get(name, required_files(name, split), dirs))


def _verify(name: str, directory: Path, paths, manifest):
    out = {}
    for p in paths:
        if p.is_dir():  # extracted CIFAR batches: published MD5s
            for b in _cifar.SPLIT_BATCHES["train"] + _cifar.SPLIT_BATCHES["test"]:
                bp = p / b
                if not bp.is_file():
                    continue
                if manifest is not None and b in manifest.get("sha256", {}):
                    out[b] = verify_file(bp, None, manifest)
                    continue
                got = md5_file(bp)
                if got != CIFAR_BATCH_MD5[b]:
                    raise IntegrityError(f"{bp}: MD5 {got} is not the known {CIFAR_BATCH_MD5[b]} "
                                         f"of the canonical CIFAR-10 {b}; delete it and fetch again")
                out[b] = "md5"
        else:
            out[p.name] = verify_file(p, _spec(name, p.name), manifest)
    return out


def load(name: str, split: str = "train", *, data_dir=None, classes=None,
         per_class=None, seed: int = 0, dtype=np.float64, verify: bool = True,
         return_info: bool = False):
    """R1: images (N, H, W, C) in [0, 1] and int64 labels of one standard split.

    name: one of NAMES; split: "train" | "test"; classes: None or original
    labels to keep (renumbered in the given order); per_class: None or a cap per
    class drawn from ``seeding.rng(seed, "data-subset", split)``; verify: check SHA-256 of the files.
    With ``return_info`` a third value, a JSON-able provenance dict, is returned.
    """
    directory, paths = locate(name, split, data_dir)
    manifest = read_manifest(directory)
    checked = _verify(name, directory, paths, manifest) if verify else {}
    if name in ("mnist", "fashion-mnist"):
        images, labels = _mnist.read_split(directory, split)
    elif name == "cifar10":
        images, labels = _cifar.read_split(paths[0], split)
    else:
        images, labels = _svhn.read_split(paths[0])
    if labels.size == 0:                 # (numpy's "need at least one array to concatenate" otherwise)
        raise DataError(f"{', '.join(str(p) for p in paths)}: the {split} split of {name} holds no images; "
                        f"import the data set again (python -m reffeat.data fetch {name} ...)")
    keep, y, kept = select(labels, classes, per_class, seed, split)
    X = to_unit(images[keep], dtype)
    if not return_info:
        return X, y
    info = {
        "dataset": name, "split": split, "directory": str(directory),
        "files": [str(p) for p in paths], "verified": checked,
        "source": manifest.get("source", "canonical") if manifest else "canonical",
        "canonical": bool(manifest.get("canonical", True)) if manifest else True,
        "note": manifest.get("note") if manifest else None,
        "classes": kept, "class_names": [CLASSES[name][c] for c in kept],
        "per_class": per_class, "seed": seed, "n": int(X.shape[0]),
    }
    return X, y, info
