"""Output helpers shared by every command: atomic writes (temp file, fsync,
then os.replace), the one JSON encoder (``encode``: strict JSON for reports —
NaN and ±inf written as null, optional rounding — or lossless for the job
store, with ``decode`` its inverse) and the provenance recorded with each result
(package versions, reffeat's too).

No SPEC equation lives here; results of any label (C1–C4, E1–E4, R4) pass through.
"""

from __future__ import annotations

import base64
import json
import math
import os
import sys
import tempfile
from typing import Any

import numpy as np

from ._version import __version__


def encode(obj: Any, *, lossless: bool = False, digits: int | None = None,
           nonfinite: str | None = None) -> Any:
    """The one JSON encoder: a tree of dicts, lists, str, int, float, bool and None
    that ``json.dumps(..., allow_nan=False)`` writes as strict JSON.

    Report mode (default): numpy scalars -> Python numbers, arrays and tuples ->
    lists, dict keys -> ``str``, paths -> ``str``; non-finite floats as
    ``nonfinite`` says: ``"null"`` (default; JSON has no NaN/inf) or ``"text"``
    (±inf -> ``"inf"``/``"-inf"``, NaN -> null). ``digits``: finite floats
    rounded to that many significant digits (``float(f"{x:.{digits}g}")``).

    ``lossless=True`` (the job store): :func:`decode` turns the tree back into
    equal values, bit for bit — arrays -> ``{"__ndarray__": base64, "dtype",
    "shape"}`` (raw little-endian bytes), non-finite floats -> ``{"__float__":
    "nan" | "inf" | "-inf"}``; dict keys must be strings and every leaf of a
    known type (TypeError otherwise: a value changed by JSON would break the
    round trip). ``digits`` and ``nonfinite`` do not apply.
    """
    if lossless:
        if digits is not None or nonfinite is not None:
            raise ValueError("lossless encoding takes no digits or nonfinite option")
        return _lossless(obj)
    mode = "null" if nonfinite is None else nonfinite
    if mode not in _NONFINITE:
        raise ValueError(f"nonfinite must be one of {', '.join(_NONFINITE)} (got {nonfinite!r})")
    return _report(obj, digits, mode)


_NONFINITE = ("null", "text")


def _report(obj, digits, mode):
    if isinstance(obj, dict):
        return {str(k): _report(v, digits, mode) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_report(v, digits, mode) for v in obj]
    if isinstance(obj, np.ndarray):
        return _report(obj.tolist(), digits, mode)
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        if math.isfinite(f):
            return f if digits is None else float(f"{f:.{digits}g}")
        if mode == "text" and not math.isnan(f):
            return "inf" if f > 0 else "-inf"
        return None                                  # JSON has no NaN/inf: null
    if hasattr(obj, "__fspath__"):
        return os.fspath(obj)
    return obj


def _lossless(obj):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"result dict keys must be str for the store (got {k!r})")
            out[k] = _lossless(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [_lossless(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            return [_lossless(v) for v in obj.tolist()]
        a = np.asarray(obj, order="C")          # (ascontiguousarray would make 0-d arrays 1-d)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder not in ("|", "<") else a.dtype
        return {"__ndarray__": base64.b64encode(a.astype(dt, copy=False).tobytes()).decode("ascii"),
                "dtype": dt.str, "shape": list(a.shape)}
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        if math.isfinite(f):
            return f
        return {"__float__": "nan" if math.isnan(f) else ("inf" if f > 0 else "-inf")}
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a sweep result")


def decode(obj: Any) -> Any:
    """Inverse of ``encode(obj, lossless=True)``."""
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            raw = base64.b64decode(obj["__ndarray__"])
            return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(tuple(obj["shape"])).copy()
        if "__float__" in obj:
            return float(obj["__float__"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)                # mkstemp's 0600 is not what a result file wants
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = path             # "No space left on device" names the file it hit
        raise


def strict_json(obj: Any, *, lossless: bool = False, digits: int | None = None,
                nonfinite: str | None = None, **kw: Any) -> str:
    """JSON text of ``encode(obj, lossless=, digits=, nonfinite=)`` (default: numpy
    converted, NaN/±inf as null); ``kw`` go to ``json.dumps``. ``allow_nan=False``
    makes a missed non-finite value an error, not bare ``NaN``."""
    return json.dumps(encode(obj, lossless=lossless, digits=digits, nonfinite=nonfinite),
                      allow_nan=False, **kw)


def atomic_write_json(path: str | os.PathLike[str], obj: Any, **kw: Any) -> None:
    """Write ``obj`` as strict JSON (indent 1 unless given), atomically."""
    kw.setdefault("indent", 1)
    atomic_write_bytes(path, (strict_json(obj, **kw) + "\n").encode())


def atomic_savez(path: str | os.PathLike[str], **arrays: Any) -> None:
    """np.savez through a temp file (the name must end in .npz)."""
    import io as _io
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def package_versions() -> dict[str, str | None]:
    """Versions of Python, the runtime dependencies and reffeat, for the record."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("numpy", "scipy", "numba", "matplotlib"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception:  # pragma: no cover - optional at import time
            out[name] = None
    out["reffeat"] = __version__
    return out
