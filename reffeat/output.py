"""Output helpers shared by every command: atomic writes (temp file, fsync,
then os.replace), strict JSON (NaN and ±inf written as null, so any strict
parser reads the files) and the provenance recorded with each result
(package versions, reffeat's too).

No SPEC equation lives here; results of any label (C1–C4, E1–E4, R4) pass through.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile

import numpy as np


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None      # JSON has no NaN/inf: null
    if isinstance(obj, np.bool_):
        return bool(obj)
    if hasattr(obj, "__fspath__"):
        return os.fspath(obj)
    return obj


def atomic_write_bytes(path: str, data: bytes) -> None:
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


def strict_json(obj, **kw) -> str:
    """JSON text of ``obj`` with numpy scalars/arrays converted and NaN/±inf as null.
    ``allow_nan=False`` makes a missed non-finite value an error, not bare ``NaN``."""
    return json.dumps(_jsonable(obj), allow_nan=False, **kw)


def atomic_write_json(path: str, obj, **kw) -> None:
    """Write ``obj`` as strict JSON (indent 1 unless given), atomically."""
    kw.setdefault("indent", 1)
    atomic_write_bytes(path, (strict_json(obj, **kw) + "\n").encode())


def atomic_savez(path: str, **arrays) -> None:
    """np.savez through a temp file (the name must end in .npz)."""
    import io as _io
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def package_versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in ("numpy", "scipy", "numba", "matplotlib"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "?")
        except Exception:  # pragma: no cover - optional at import time
            out[name] = None
    try:
        from . import __version__
        out["reffeat"] = __version__
    except Exception:  # pragma: no cover
        pass
    return out
