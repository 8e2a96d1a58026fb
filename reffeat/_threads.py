"""The threads of the numba kernels: a small pool that runs the work slots of a
kernel call, and the control of scipy's OpenBLAS (one thread during a call).

A kernel call is cut into ``SLOTS`` work slots (a constant, so the summation
order, hence every bit of a result, does not depend on the machine or the
thread count); the slots of one call run on ``configure_threads()`` threads
(default: one — the caller's thread). Nothing happens at import: no
environment variable, numba setting or BLAS thread count is touched.

No SPEC equation lives here; ``reffeat.kernels`` re-exports ``SLOTS``,
``configure_threads`` and ``threads`` as part of its API.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Number of work slots (each with its own chunk buffer and G2/C4 partial): a
#: constant, so the summation order is the same on every machine.  More slots
#: would let more than two threads work, at the cost of more buffers and of
#: results whose last bits differ from those recorded with two slots.
SLOTS = 2

_threads: int | None = None     # None: not configured yet (configure_threads() on first call)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _env_threads() -> tuple[int, str]:
    for var in ("REFFEAT_THREADS", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").strip()
        if raw:
            if not raw.isdigit() or int(raw) < 1:
                raise ValueError(f"environment variable {var} must be an integer >= 1 (got {raw!r})")
            return int(raw), var
    return max(1, os.cpu_count() or 1), "core count"


def configure_threads(threads: int | None = None) -> dict:
    """Set how many threads run the work slots of a kernel call.  The commands call
    it once (and record what it returns); otherwise the first kernel call does,
    with ``threads=None``: REFFEAT_THREADS, else NUMBA_NUM_THREADS, else
    OMP_NUM_THREADS, else the core count — at most SLOTS are used.  Only this
    module's own thread pool is affected; results do not depend on the count.
    Returns {"threads", "source", "slots", "blas"} for the record."""
    global _threads, _pool
    if threads is None:
        threads, source = _env_threads()
    else:
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be an integer >= 1 (got {threads!r})")
        threads, source = int(threads), "argument"
    with _pool_lock:
        _threads = min(int(threads), SLOTS)
        if _pool is not None:
            _pool.shutdown(wait=True)
            _pool = None
        if _threads > 1:
            _pool = ThreadPoolExecutor(max_workers=_threads - 1, thread_name_prefix="reffeat-slot")
    return {"threads": _threads, "source": source, "slots": SLOTS, "blas": Blas.describe()}


def threads() -> int:
    """Threads the kernels use (configured on the first call if not before)."""
    if _threads is None:
        configure_threads()
    assert _threads is not None
    return _threads


class Blas:
    """scipy's bundled OpenBLAS (the BLAS numba's ``np.dot`` calls), held at one
    thread for the duration of each kernel call and restored after: the kernels
    call it on chunk-sized products from their own slot threads, and OpenBLAS's
    own pool on top of them made a step an order of magnitude slower on a
    loaded 2-core machine.  Nothing is changed outside a call;
    numpy's own BLAS (a separate library) is never touched."""
    _fns = None

    @classmethod
    def _find(cls):
        if cls._fns is None:
            cls._fns = (None, None, "scipy OpenBLAS not found (its thread count is left alone)")
            import ctypes
            import glob

            import scipy
            libdir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
            for path in sorted(glob.glob(os.path.join(libdir, "*openblas*.so*"))):
                try:
                    lib = ctypes.CDLL(path)
                except OSError:
                    continue
                for prefix in ("scipy_openblas_", "openblas_"):
                    get = getattr(lib, prefix + "get_num_threads", None)
                    put = getattr(lib, prefix + "set_num_threads", None)
                    if get is not None and put is not None:
                        get.restype = ctypes.c_int
                        cls._fns = (get, put, f"{os.path.basename(path)}: one thread during kernel calls")
                        return cls._fns
        return cls._fns

    @classmethod
    def describe(cls) -> str:
        return cls._find()[2]

    def __enter__(self):
        get, put, _ = self._find()
        self._old = get() if get is not None else None
        if self._old is not None and self._old != 1:
            put(1)
        return self

    def __exit__(self, *exc):
        if self._old is not None and self._old != 1:
            self._find()[1](self._old)
        return False


def run_slots(kernel: Callable[..., Any], S: int, *args: Any) -> None:
    """kernel(s, *args) for every slot s < S: slot 0 in this thread, the others on
    the pool.  Each slot writes only its own rows and partials, so the result is
    the same whichever thread runs which slot."""
    if _threads is None:
        configure_threads()
    pool = _pool
    with Blas():
        if pool is None or S == 1:
            for s in range(S):
                kernel(s, *args)
            return
        futures = [pool.submit(kernel, s, *args) for s in range(1, S)]
        try:
            kernel(0, *args)
        finally:
            for f in futures:
                f.result()


# ---------------------------------------------------------------- numba kernels
