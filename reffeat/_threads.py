"""The threads of the numba kernels: a small pool that runs the work slots of a
kernel call, and the control of scipy's OpenBLAS (one thread during a call).

A kernel call is cut into at most ``SLOTS`` work slots (a constant, so the
summation order, hence every bit of a result, does not depend on the machine or
the thread count); the slots of one call run on ``configure_threads()`` threads
(default: one — the caller's thread), each thread taking the next slot not yet
taken. Nothing happens at import: no environment variable, numba setting or
BLAS thread count is touched.

No SPEC equation lives here; ``reffeat.kernels`` re-exports ``SLOTS``,
``configure_threads`` and ``threads`` as part of its API.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

#: Number of work slots (each with its own G2/C4 partial, added to the total in
#: slot order; the buffers are per thread): a constant, so the summation order is
#: the same on every machine and for every thread count 1..SLOTS.  16 lets a
#: workstation use 16 cores; it was 2 until issue 21 (results recorded with 2
#: slots differ in their last bits; the cost of 16 against 2 at 1 and 2 threads:
#: ``python -m reffeat.bench --slots-compare``, docs/performance.md).
SLOTS = 16

#: blocks of slots per thread in a call without partials, or with one partial
#: per slot (``run_slots``)
_BLOCKS_PER_THREAD = 2

#: what a kernel called by ``run_slots`` does with its slots' partials (its
#: fourth argument): leave them in the thread's buffer for ``fold`` (FOLD_LATER),
#: add them to the totals itself after each slot (FOLD_HERE: one thread runs all
#: slots in order), or leave slot s's in buffer s for ``fold`` (FOLD_PER_SLOT)
FOLD_LATER, FOLD_HERE, FOLD_PER_SLOT = 0, 1, 2

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


def slot_threads(S: int) -> int:
    """Threads that run the S slots of one call: min(threads(), S).  The caller
    allocates one set of scratch buffers per thread (not per slot) and passes
    this number to ``run_slots``."""
    return max(1, min(threads(), int(S)))


def _finish(work: Sequence[int], blocks: Sequence[tuple[int, int]], T: int) -> int:
    """When the last of T threads is done if each, when free, takes the next of
    ``blocks`` (s0, s1) and slot s costs work[s]."""
    free = [0] * T
    for s0, s1 in blocks:
        t = free.index(min(free))
        free[t] += sum(work[s0:s1])
    return max(free)


@functools.lru_cache(maxsize=256)
def slot_blocks(work: tuple[int, ...], nb: int, T: int) -> tuple[tuple[int, int], ...]:
    """nb blocks (s0, s1) of consecutive slots covering the S = len(work) slots, in
    the order the T threads take them (each the next one when done with its last);
    slot s costs work[s] (its rows).  Three cuts are tried — block sizes in slots
    differing by at most one, the smaller first or the larger first, and cuts of the
    running total of work nearest to multiples of total/nb — each taken
    heaviest block first; the one whose last thread finishes first is kept (ties:
    that order).

    Why: with equal slots the smaller-first cut (2, 3, 2, 3 for 10 slots on 2
    threads) left one thread the second 3 after its 2 — 6 of the 10 (the bench's
    mnist ascent); the larger-first cut gives each 5, but where the last slot is
    short (cifar: 15 slots of 9, 9, …, 9, 2 samples) it does worse than the smaller
    first.  Whatever the cut and the order, each slot writes only its own rows and
    partials, so the result does not change."""
    S = len(work)
    cum = [0]
    for w in work:
        cum.append(cum[-1] + int(w))
    q, r = divmod(S, nb)
    cuts = [[(i * S) // nb for i in range(nb + 1)],                 # smaller first
            [i * q + min(i, r) for i in range(nb + 1)]]              # larger first
    even = [0]
    for i in range(1, nb):                                           # nearest to i·total/nb
        even.append(min(range(even[-1] + 1, S - nb + i + 1),
                        key=lambda j: (abs(nb * cum[j] - i * cum[S]), j)))
    cuts.append(even + [S])
    orders = [tuple(sorted(((c[i], c[i + 1]) for i in range(nb)),
                           key=lambda b: cum[b[0]] - cum[b[1]])) for c in cuts]
    return min(orders, key=lambda o: _finish(work, o, T))


def run_slots(kernel: Callable[..., Any], S: int, T: int, *args: Any,
              fold: Callable[[int, int], None] | None = None, per_slot: bool = False,
              rows: Sequence[int] | None = None) -> None:
    """The S slots of a kernel call on at most T threads.  ``kernel(s0, s1, t,
    how, *args)`` runs slots s0 … s1 − 1 in order with the buffers of thread t
    (t < T) and, if ``how`` is FOLD_HERE, adds each slot's partials to the totals
    itself.

    One thread (T = 1 or no pool): one call, kernel(0, S, 0, FOLD_HERE, …).  Several: this
    thread and T − 1 of the pool's each take the next slot not yet taken (slots in
    increasing order, so they are shared evenly whatever their number) and call
    kernel(s, s + 1, t, FOLD_LATER, …); then ``fold(s, t)`` adds slot s's partials to the
    totals in slot order (fold(s, ·) only after fold(s − 1, ·) returned; the thread
    waits for its turn), so a slot's partials live in its thread's buffer: memory
    for T partials, not S.  Without ``fold`` (no partials) the slots are cut into
    min(S, _BLOCKS_PER_THREAD·T) blocks of consecutive slots, and a thread takes the
    next block (fewer kernel calls, each with its Python overhead); the cut and the
    order of the blocks (``slot_blocks``) share ``rows``, the rows of each slot (S,;
    equal if None), evenly among the threads.  With ``per_slot`` (the caller made S
    partials, slot s's in buffer s) the threads take blocks the same way, calling
    kernel(s0, s1, t, FOLD_PER_SLOT, …), and once all have returned ``fold(s, s)``
    runs for s = 0 … S − 1 here: the same additions in the same order as above.
    Each slot writes only its own rows, and a thread's buffers only between the
    start of one of its slots and that slot's fold, so the result is the same
    whichever thread runs which slot."""
    if _threads is None:
        configure_threads()
    pool = _pool
    T = max(1, min(int(T), int(S), _threads or 1))
    with Blas():
        if pool is None or T == 1:
            kernel(0, S, 0, FOLD_HERE, *args)
            return
        cond = threading.Condition()
        state = {"next": 0, "folded": 0, "failed": False}
        later = fold is not None and not per_slot        # fold slot by slot, in the threads
        if later:                               # one slot at a time, in slot order
            blocks = tuple((s, s + 1) for s in range(S))
        else:
            blocks = slot_blocks(tuple(int(r) for r in rows) if rows is not None else (1,) * S,
                                 min(S, _BLOCKS_PER_THREAD * T), T)
        nb = len(blocks)
        how = FOLD_PER_SLOT if per_slot else FOLD_LATER

        def work(t: int) -> None:
            try:
                while True:
                    with cond:
                        i = state["next"]
                        state["next"] += 1
                        if state["failed"] or i >= nb:
                            return
                    s, s1 = blocks[i]
                    kernel(s, s1, t, how, *args)
                    if not later:
                        continue
                    assert fold is not None
                    with cond:
                        while state["folded"] != s and not state["failed"]:
                            cond.wait()
                        if state["failed"]:
                            return
                    fold(s, t)                  # alone: every other fold waits for folded > s
                    with cond:
                        state["folded"] += 1
                        cond.notify_all()
            except BaseException:
                with cond:
                    state["failed"] = True
                    cond.notify_all()
                raise

        futures = [pool.submit(work, t) for t in range(1, T)]
        try:
            work(0)
        finally:
            for f in futures:
                f.result()
        if per_slot and fold is not None:
            for s in range(S):                  # slot order, as the threads' folds above
                fold(s, s)


# ---------------------------------------------------------------- numba kernels
