"""Fast paths of N1–N3, L1–L3, G1–G3, the T2 ascent and C4: BLAS products
around fused numba loops.  The plain-numpy code in ``model.py`` /
``activation.py`` / ``attacks.py`` / ``metrics.py`` is the reference; every
public function here carries its reference twin's name and returns what it
returns (tests/test_kernels.py, tests/test_backend.py: ≤ 1e-10 relative in
float64 on random shapes incl. n = P = m = d = 1, partial chunks, all three
threat norms, targeted, clipped; identical for 1, 2 and 3 threads).  Which one a
call runs on is chosen in ``reffeat.backend``.

Per kernel, what runs it and why (the measured speeds are in the output of
``python -m reffeat.bench`` and in the README, not here):

* pre-activations z = X Wᵀ, (n·P, d)×(d, k·m); G2 = Aᵀ X; G3 = A W — GEMMs:
  **BLAS** (numba's code for ``np.dot(a, b, out)``, i.e. scipy's OpenBLAS, emitted
  by ``_gemm``) on a chunk of whole samples.  These four products are most of a
  training step.
* σ, σ' (N1, N2), F = Σ_p Σ_r σ (N3), log-softmax, loss (L1, L2) and
  A = (logit_j − 1[j=y]) σ'(z) (G1 × N2): **numba** ``_activate``, two passes
  over a sample's block (accumulate σ per column, then overwrite z by A),
  instead of the reference's ~12 elementwise passes over 3 extra (n, P, k, m)
  arrays.  Each q case (1, 2, 3, other) has its own loop so each vectorises.
* T2 step X ← X + Π(X^s − X + γ D(g)) (+ box clip), all norms: **numba**
  ``_step``, fused with the products above in ``_pass`` (WANT_ASCENT): all K
  steps of a chunk run before the next chunk (its inputs stay in cache), no
  (n, P, d) gradient array is kept.
* C4 parts (``c4_decomposition``) and G2 + C4 together (``grad_w_and_c4``):
  **numba** ``_c4_accumulate`` in ``_pass`` (WANT_C4, WANT_G2_C4) — the step's own
  A (G1 × N2) times the BLAS projections ⟨x, u_j⟩, ⟨x, v_j⟩, accumulated by
  (own/other, patch type, j, r), so the C4 log of every training step costs one
  extra (n·P, d)×(d, 2k) product, not a second forward pass.

One driver kernel, ``_pass``, runs all of these (``want`` says which), so the first
run compiles one kernel, not three: numba optimises and emits again, inside each
kernel, everything it calls (``_activate`` above all).  What the first run after
installing compiles, and how long it takes, is in ``python -m reffeat.bench``.

Work split and threads.  A batch is cut into chunks of whole samples
(≈ ``CHUNK_ROWS`` patch rows within ``CHUNK_BYTES``) and the chunks are dealt to
S = min(``SLOTS``, chunks) work slots (chunk c to slot c mod S); each slot has its
own G2/C4 partials, and the partials are added in slot order (total = p_0, then
+= p_1, += p_2, …).  Chunk size and slot
count depend only on the shapes (never on the machine or the thread setting), so
the summation order, hence every bit of the result, is the same on any machine
with the same BLAS and for any thread count.  The kernels are serial numba
functions that release the GIL (``nogil``); the slots of one call run on
T = min(``configure_threads()``, S) threads (default: one — run in the caller's
thread; the pool and the OpenBLAS control live in ``reffeat._threads``), each
taking the next free slot.  The buffers are per thread (T sets), the partials
included: a slot's partial is made in its thread's buffer and added to the total
before the thread takes another slot, waiting until the slots before it have
been added (``run_slots``'s ``fold``), so memory does not grow with S.  When the
S partials together are small (≤ ``PER_SLOT_BYTES``: the synthetic sizes) and
several threads run, each slot has a partial of its own instead: a thread runs a
block of slots in one kernel call, and the partials are added in slot order
after the threads are done — the same additions in the same order, so the same
bits, with one kernel call per block instead of one per slot.  There is no
numba ``parallel=True``: its compile cost (seconds per kernel) is paid on every
first run, and a fixed set of slots needs no parfor scheduling.

Nothing happens at import except defining the functions: no environment
variable, numba setting or BLAS thread count is touched.  The commands call
``configure_threads()`` (thread count from REFFEAT_THREADS / NUMBA_NUM_THREADS /
OMP_NUM_THREADS, else the core count), otherwise the first kernel call does;
scipy's OpenBLAS, which the kernels call from their own threads, is held at one
thread during each call and restored after (``_threads.Blas``).  The kernel compiles on its first
call, for the dtypes it is called with (float32 only if float32 W and X are
passed), and is cached on disk in a directory that does not depend on where the
package is imported from (``cache_dir()``), so a checkout and an installed copy
of the same source share one cache (the locator: ``reffeat._kcache``).

Memory: nothing of size (n, P, k, m) is materialised except where the API
returns it (``forward_and_slopes``, ``backprop``).  All buffers are numpy arrays
allocated by the drivers (the kernels allocate nothing), so ``tracemalloc`` sees
the whole footprint: an AT step needs X^adv, T chunk buffers and T + 1 G2 arrays
(partials and total, each k·m·d).

dtype: float64 by default; float32 W and X (both) select float32 kernels
(compiled on first use; the real-image pipeline's ``--dtype float32``).
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from . import _kcache
from ._threads import FOLD_HERE, FOLD_PER_SLOT, SLOTS, configure_threads, run_slots, slot_threads, threads

__all__ = ["CHUNK_ROWS", "CHUNK_BYTES", "SLOTS", "WANT_F", "WANT_G2", "WANT_G3", "WANT_SLOPES", "WANT_A",
           "WANT_C4", "WANT_G2_C4", "WANT_ASCENT", "cache_dir", "configure_threads", "threads",
           "chunk_samples", "forward", "forward_and_slopes", "backprop", "grad_w", "grad_x",
           "grad_x_and_loss", "forward_and_grad_x", "ascent_run", "c4_decomposition", "grad_w_and_c4"]

#: A chunk is whole samples with ≈ CHUNK_ROWS patch rows, fewer if its working set
#: (rows × (k·m + 2d) × itemsize: z/A, the input rows, the G3 rows) would exceed
#: CHUNK_BYTES (a typical per-core L2).  Fewer rows pay BLAS's packing of W too
#: often, more rows leave L2 (bench measurements: README).
CHUNK_ROWS = 256
CHUNK_BYTES = 1 << 20
#: the S partials of a call get a buffer each (one kernel call per block of slots
#: instead of one per slot: ``run_slots``'s ``per_slot``) when together they take at
#: most this many bytes and several threads run; otherwise one buffer per thread
#: (above it, making and adding S fresh partials after the threads cost more than
#: the calls saved: the mnist and theorem steps of the bench, 2026-12-04)
PER_SLOT_BYTES = 1 << 19

_MODE_F, _MODE_SLOPES, _MODE_BACKWARD = 0, 1, 2         # what _activate leaves in Z
#: what a ``_pass`` computes (its ``want``; WANT_F … WANT_A are also ``_fused_call``'s)
WANT_F, WANT_G2, WANT_G3, WANT_SLOPES, WANT_A, WANT_C4, WANT_G2_C4, WANT_ASCENT = range(8)
_NORM_CODES = {"linf": 0, "l2": 1, "l2-patch": 2}


def cache_dir() -> str:
    """Where this file's compiled kernels are cached (``reffeat._kcache.cache_dir``)."""
    return _kcache.cache_dir(__file__)


_jit, _CACHE = _kcache.make_jit(__file__)


# ---------------------------------------------------------------- numba kernels
def _make_gemm():
    """out ← a @ b for 2-D arrays (a, b C- or F-ordered, out C-ordered), called from
    the kernels: numba's own code for ``np.dot(a, b, out)`` (``dot_3_mm``: the same
    BLAS call, hence the same bits) emitted directly into the calling kernel.
    ``np.dot`` itself is an overload that numba compiles as a function of its own
    for every combination of layouts (~0.25 s of the first run's CPU).  If numba's
    internals are not as expected: ``np.dot``."""
    try:
        from numba.core import types
        from numba.core.extending import intrinsic
        from numba.core.typing import signature
        from numba.np.linalg import dot_3_mm, ensure_blas
    except ImportError:
        return None
    import inspect
    try:                                  # the private helper must still take what we pass it
        if list(inspect.signature(dot_3_mm).parameters) != ["context", "builder", "sig", "args"]:
            return None
    except (TypeError, ValueError):
        return None

    @intrinsic
    def gemm(typingctx, a, b, out):
        arrays = (a, b, out)
        if not all(isinstance(t, types.Array) and t.ndim == 2 and t.layout in "CF" for t in arrays) \
                or out.layout != "C" or len({t.dtype for t in arrays}) != 1:
            return None

        def codegen(context, builder, sig, args):
            ensure_blas()
            return dot_3_mm(context, builder, sig, args)
        return signature(out, a, b, out), codegen
    return gemm


_gemm = _make_gemm()
if _gemm is None:                                   # pragma: no cover - other numba versions
    @_jit
    def _gemm(a, b, out):
        np.dot(a, b, out)


@_jit
def _clip0rho(z, rho):
    """clip(z, 0, ρ) with NaN propagated (as np.maximum/np.minimum do)."""
    zp = 0.0 if z <= 0.0 else z
    return rho if zp > rho else zp


@_jit
def _pos(t):
    """[t]_+ with NaN propagated."""
    return 0.0 if t <= 0.0 else t


@_jit
def _sigma_pass(row, a, qcase, qm1, inv_q, rho, inv_rho):
    """a += σ(row) (N1).  One loop per q case so
    that each vectorises (σ = [z − ρ]_+ + zc·g/q, g = (zc/ρ)^{q−1}, zc = clip(z, 0, ρ):
    the reference's operation order)."""
    km = row.shape[0]
    if qcase == 3:
        for c in range(km):
            z = row[c]
            zc = _clip0rho(z, rho)
            u = zc * inv_rho
            g = u * u
            a[c] += _pos(z - rho) + zc * g * inv_q
    elif qcase == 2:
        for c in range(km):
            z = row[c]
            zc = _clip0rho(z, rho)
            g = zc * inv_rho
            a[c] += _pos(z - rho) + zc * g * inv_q
    elif qcase == 1:
        for c in range(km):
            z = row[c]
            zc = _clip0rho(z, rho)
            g = 1.0 if z > 0.0 else 0.0
            a[c] += _pos(z - rho) + zc * g * inv_q
    else:
        for c in range(km):
            z = row[c]
            zc = _clip0rho(z, rho)
            g = (zc * inv_rho) ** qm1
            a[c] += _pos(z - rho) + zc * g * inv_q


@_jit
def _slope_times(row, coef, qcase, qm1, rho, inv_rho):
    """row ← σ'(row) · coef (elementwise; G1 × N2)."""
    km = row.shape[0]
    if qcase == 3:
        for c in range(km):
            u = _clip0rho(row[c], rho) * inv_rho
            row[c] = (u * u) * coef[c]
    elif qcase == 2:
        for c in range(km):
            row[c] = (_clip0rho(row[c], rho) * inv_rho) * coef[c]
    elif qcase == 1:
        for c in range(km):
            row[c] = (1.0 if row[c] > 0.0 else 0.0) * coef[c]
    else:
        for c in range(km):
            row[c] = ((_clip0rho(row[c], rho) * inv_rho) ** qm1) * coef[c]


@_jit
def _activate(Z, y, P, k, m, qcase, qm1, inv_q, rho, inv_rho, mode, F, losses, a):
    """N1–N3, L1, L2, G1 on a block of b whole samples, in place (serial).

    Z (b·P, k·m) pre-activations (row i·P + p, column j·m + r).
    mode 0: F only; 1: F and Z ← σ'(Z); 2: F, losses, Z ← A = (logit_j − 1[j=y_i]) σ'(Z).
    F (b, k) and losses (b,) are written; a (k·m,) is workspace.  Every sum is
    per sample in a fixed order.
    """
    b = F.shape[0]
    for i in range(b):
        a[:] = 0.0
        for p in range(P):
            _sigma_pass(Z[i * P + p], a, qcase, qm1, inv_q, rho, inv_rho)
        for j in range(k):
            s = 0.0
            for r in range(m):
                s += a[j * m + r]
            F[i, j] = s                                          # N3
        if mode == _MODE_F:
            continue
        # σ' in a second in-place pass (storing it in the σ loop, next to the
        # accumulation into a, stops LLVM from vectorising: several times slower),
        # times a coefficient per column: 1 (mode 1) or logit_j − 1[j=y_i] (mode 2)
        if mode == _MODE_SLOPES:
            a[:] = 1.0
        else:
            fmax = F[i, 0]
            for j in range(1, k):
                if F[i, j] > fmax:
                    fmax = F[i, j]
            se = 0.0
            for j in range(k):
                se += np.exp(F[i, j] - fmax)
            lse = np.log(se)
            yi = y[i]
            for j in range(k):                                   # L1, L2, G1
                lp = F[i, j] - fmax - lse
                cj = np.exp(lp)
                if j == yi:
                    losses[i] = -lp
                    cj -= 1.0
                for r in range(m):
                    a[j * m + r] = cj
        for p in range(P):                                       # one call site: one copy
            _slope_times(Z[i * P + p], a, qcase, qm1, rho, inv_rho)   # of its four loops


@_jit
def _add_into(acc, part):
    """acc += part, elementwise (2-D, same shape).  A loop rather than numba's array
    ``+=``, whose broadcasting-error message (string formatting of the shapes) was
    the costliest thing in the first run's compile: ~4 s of CPU."""
    for i in range(acc.shape[0]):
        for j in range(acc.shape[1]):
            acc[i, j] += part[i, j]


@_jit
def _fold_into(tot, part, first):
    """tot ← part (first) or tot += part, elementwise (2-D, same shape): one slot's
    partial into the total, in slot order."""
    for i in range(tot.shape[0]):
        for j in range(tot.shape[1]):
            tot[i, j] = part[i, j] if first else tot[i, j] + part[i, j]


@_jit
def _zero(a):
    """a ← 0 (2-D)."""
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] = 0.0


@_jit
def _step(Xa, X, g, P, coef, eps, norm, plain, lo, hi, clip):
    """T2 step on a block of whole samples, in place (serial):
    Xa ← X + Π_{B(0,ε)}((Xa − X) + coef·D(g)), then clip to [lo, hi] if clip.

    Xa, X, g (b·P, d); norm 0 ℓ∞ (D = sign), 1 ℓ2 of the sample, 2 ℓ2 per patch;
    plain: D(g) = g.  coef = ±γ (minus for targeted attacks).
    """
    b = Xa.shape[0] // P
    d = Xa.shape[1]
    if norm == 0:
        for p in range(b * P):
            for e in range(d):
                ge = g[p, e]
                if not plain:
                    ge = np.sign(ge)
                t = (Xa[p, e] - X[p, e]) + coef * ge
                if t < -eps:
                    t = -eps
                elif t > eps:
                    t = eps
                v = X[p, e] + t
                if clip:
                    if v < lo:
                        v = lo
                    elif v > hi:
                        v = hi
                Xa[p, e] = v
        return
    # ℓ2 of the whole sample (groups of P rows) or of each patch (groups of 1 row)
    rows = P if norm == 1 else 1
    for a0 in range(0, b * P, rows):
        nrm = 1.0
        if not plain:
            s = 0.0
            for p in range(a0, a0 + rows):
                for e in range(d):
                    s += g[p, e] * g[p, e]
            nrm = np.sqrt(s)
        s = 0.0
        for p in range(a0, a0 + rows):
            for e in range(d):
                ge = g[p, e]
                if not plain:
                    ge = ge / nrm if nrm > 0 else 0.0
                t = (Xa[p, e] - X[p, e]) + coef * ge
                Xa[p, e] = t                                     # holds the step until scaled
                s += t * t
        nrm_t = np.sqrt(s)
        scale = eps / (nrm_t if nrm_t > 1e-300 else 1e-300) if nrm_t > eps else 1.0
        for p in range(a0, a0 + rows):
            for e in range(d):
                v = X[p, e] + Xa[p, e] * scale
                if clip:
                    if v < lo:
                        v = lo
                    elif v > hi:
                        v = hi
                Xa[p, e] = v


@_jit
def _c4_accumulate(A, proj, y, types, codes, i0, P, k, m, scale, o):
    """C4 on a chunk of whole samples starting at sample i0 (serial):
    o[own/other, f, t, j, r] += −scale · A[row, j·m+r] · proj[row, f·k+j]
    with A = (logit_j − 1[j=y_i]) σ'(z) (G1 × N2, from ``_activate`` mode 2),
    proj[row] = (⟨x_{i,p}, u_1⟩..⟨x_{i,p}, u_k⟩, ⟨x_{i,p}, v_1⟩..), row = (i − i0)·P + p,
    t the index of types[i, p] in codes (R, N, noise; other codes are skipped)."""
    b = A.shape[0] // P
    for ii in range(b):
        i = i0 + ii
        for p in range(P):
            t = -1
            for tt in range(codes.shape[0]):
                if types[i, p] == codes[tt]:
                    t = tt
            if t < 0:
                continue
            row = ii * P + p
            for j in range(k):
                who = 0 if j == y[i] else 1
                pu = -scale * proj[row, j]
                pv = -scale * proj[row, k + j]
                for r in range(m):
                    a = A[row, j * m + r]
                    o[who, 0, t, j, r] += a * pu
                    o[who, 1, t, j, r] += a * pv


@_jit
def _pass(s0, s1, t, fold, want, X, Xa, W2, y, P, k, m, act, b, S, F, losses, Zbuf, acc, work, G,
          Gtot, gx, ball, c4):
    """Slots s0 … s1 − 1 of the S slots of one chunked pass over the batch, in this
    order, run by thread t (whose buffers they use): per chunk, GEMM (z = X Wᵀ) →
    _activate → what ``want`` asks for.  The one driver of every fast path.

    want  WANT_F        F only (N3);
          WANT_G2       also G[t] = Σ_chunks Aᵀ X (slot s's G2 partial: the slot's first
                        chunk's GEMM straight into G[t], the others via work[t] (k·m, d));
          WANT_G3       also gx = A W (G3);
          WANT_SLOPES   gx (n·P, k·m) ← σ'(z) (N2);  WANT_A: gx ← A (G1 × N2) — these two
                        return a full array, so the chunk is computed in place in gx;
          WANT_C4, WANT_G2_C4   C3/C4 (and G2) from ONE backward pass: proj = X [U; V]ᵀ
                        (GEMM) → _c4_accumulate into out[t] (zeroed at the slot's start).
                        C3 is −step·G2 projected on u_j / v_j, so the step's own A serves
                        both (the training loop logs C4 at every step: a separate pass
                        cost as much again as G2);
          WANT_ASCENT   T2: all K steps of one chunk (GEMM → _activate → GEMM (G3, into
                        work[t] (b·P, d)) → _step on Xa) before the next chunk, so the
                        chunk stays in cache; Xa (n·P, d) updated in place.
    fold: FOLD_HERE — after each slot, add its partials to the totals here (Gtot ←
    G[t] for slot 0, Gtot += G[t] after; out likewise), when one thread runs all
    slots in order; FOLD_LATER — ``run_slots`` calls the driver's fold in slot order,
    the partials in the thread's G[t], out[t]; FOLD_PER_SLOT — likewise, but slot s's
    partials go to G[s], out[s] (the driver allocated S of them), so one call can
    run a block of slots.
    act = (qcase, q − 1, 1/q, ρ, 1/ρ);  ball = (K, ±γ, ε, norm code, plain, lo, hi, clip)
    (ascent only);  c4 = (patch types (n, P), codes (3,), [U; V] (2k, d), step/n,
    proj (T, b·P, 2k), out (T, 1, 12·k·m), out total (1, 12·k·m)) (C4 only).
    Arguments a pass does not use are small dummies of the same types, so ONE
    compiled kernel serves every call: numba re-optimises and re-emits everything a
    kernel calls, for each kernel, and three kernels cost ~1 s more to compile on
    the first run.
    Slot s handles chunks s, s+S, s+2S, … of b samples each, in the buffers of the
    thread t that runs it: Zbuf[t], acc[t], work[t], proj[t] (each chunk overwrites
    what it reads of them) and the partials G[t], out[t] (made anew by each slot and
    added to the totals before the thread's next slot).  T of each, T the threads of
    the call; slots are fixed by the shapes, not by the threads, so results do not
    depend on which thread runs which slot.
    """
    n = F.shape[0]
    nch = (n + b - 1) // b
    qcase, qm1, inv_q, rho, inv_rho = act
    Wt = W2.T
    mode = _MODE_F if want == WANT_F else _MODE_SLOPES if want == WANT_SLOPES else _MODE_BACKWARD
    full = want == WANT_SLOPES or want == WANT_A
    g2 = want == WANT_G2 or want == WANT_G2_C4
    wc4 = want == WANT_C4 or want == WANT_G2_C4
    types, codes, UV, scale, proj, out, out_tot = c4
    for s in range(s0, s1):
        pi = s if fold == FOLD_PER_SLOT else t                      # this slot's partials
        if wc4:
            _zero(out[pi])
        for c in range(s, nch, S):
            i0 = c * b
            i1 = min(n, i0 + b)
            r0, r1 = i0 * P, i1 * P
            Zc = gx[r0:r1] if full else Zbuf[t, : r1 - r0]
            if want == WANT_ASCENT:
                steps, coef, eps, norm, plain, lo, hi, clip = ball
                gc = work[t, : r1 - r0]
                for _ in range(steps):
                    _gemm(Xa[r0:r1], Wt, Zc)
                    _activate(Zc, y[i0:i1], P, k, m, qcase, qm1, inv_q, rho, inv_rho, mode,
                              F[i0:i1], losses[i0:i1], acc[t])
                    _gemm(Zc, W2, gc)                                # G3
                    _step(Xa[r0:r1], X[r0:r1], gc, P, coef, eps, norm, plain, lo, hi, clip)
                continue
            _gemm(X[r0:r1], Wt, Zc)                                  # pre-activations
            _activate(Zc, y[i0:i1], P, k, m, qcase, qm1, inv_q, rho, inv_rho, mode,
                      F[i0:i1], losses[i0:i1], acc[t])
            if g2:
                if c == s:
                    _gemm(Zc.T, X[r0:r1], G[pi])                     # G2 partial
                else:
                    _gemm(Zc.T, X[r0:r1], work[t])
                    _add_into(G[pi], work[t])
            elif want == WANT_G3:
                _gemm(Zc, W2, gx[r0:r1])                             # G3
            if wc4:
                pc = proj[t, : r1 - r0]
                _gemm(X[r0:r1], UV.T, pc)                            # ⟨x, u_j⟩, ⟨x, v_j⟩
                _c4_accumulate(Zc, pc, y, types, codes, i0, P, k, m, scale,
                               out[pi].reshape((2, 2, 3, k, m)))
        if fold == FOLD_HERE:
            if g2:
                _fold_into(Gtot, G[pi], s == 0)
            if wc4:
                _fold_into(out_tot, out[pi], s == 0)


# ---------------------------------------------------------------- drivers
def _qargs(q: float, rho: float):
    q = float(q)
    rho = float(rho)
    qcase = 3 if q == 3.0 else 2 if q == 2.0 else 1 if q == 1.0 else 0
    return qcase, q - 1.0, 1.0 / q, rho, 1.0 / rho


def _dtype(W, X):
    if W.dtype == np.float32 and X.dtype == np.float32:
        return np.float32
    return np.float64


def _prep(W, X):
    """Contiguous 2-D views: Xf (n·P, d), W2 (k·m, d) in the working dtype.  The
    shapes were checked at the public boundary (``model.check_inputs``)."""
    dt = _dtype(W, X)
    X = np.ascontiguousarray(X, dtype=dt)
    W = np.ascontiguousarray(W, dtype=dt)
    k, m, d = W.shape
    n, P, _ = X.shape
    return X, X.reshape(n * P, d), W.reshape(k * m, d), (n, P, d, k, m), dt


def _labels(y, n, k):
    """y (n,) as contiguous int64 (checked at the boundary: ``constraints.check_labels``)."""
    return np.ascontiguousarray(y, dtype=np.int64)


def chunk_samples(P: int, km: int, d: int, itemsize: int = 8) -> int:
    """Samples per chunk: ≈ CHUNK_ROWS patch rows, and a working set of at most
    CHUNK_BYTES (at least one sample)."""
    rows = min(CHUNK_ROWS, CHUNK_BYTES // (itemsize * (km + 2 * d)))
    return max(1, rows // P)


def _partials(S, T, per_slot_bytes):
    """(number of partial buffers, per_slot) for a call of S slots on T threads,
    each slot's partials taking ``per_slot_bytes``: S buffers (one per slot) when
    several threads run more slots than threads and all S fit in
    ``PER_SLOT_BYTES``, else T (one per thread).  Either way the partials are
    added in slot order: the result does not depend on the choice."""
    per_slot = 1 < T < S and S * per_slot_bytes <= PER_SLOT_BYTES
    return (S, True) if per_slot else (T, False)


def _layout(n, P, d, km, dt):
    """(samples per chunk b, number of slots S) — fixed by the sizes, never by the
    threads: S = min(SLOTS, chunks), the chunks rounded up to a multiple of S (same
    number of chunks per slot, b shrunk to match)."""
    if n == 0:
        return 1, 1
    b = max(1, min(n, chunk_samples(P, km, d, np.dtype(dt).itemsize)))
    nch = -(-n // b)
    S = max(1, min(SLOTS, nch))
    nch = -(-nch // S) * S                      # a multiple of S chunks: balanced slots
    b = -(-n // nch)
    return b, S


def _slot_rows(n, P, b, S):
    """Patch rows of each of the S slots (S,) when chunks of b samples (the last one
    shorter) are dealt to the slots (chunk c to slot c mod S): what ``run_slots``
    shares among the threads."""
    full, rest = divmod(n, b)                   # full chunks 0 … full − 1, then one of rest
    return tuple(P * (b * ((full - s + S - 1) // S) + (rest if full % S == s else 0)) for s in range(S))


@contextmanager
def _slot_count(slots: int):
    """Within the block, cut kernel calls into at most ``slots`` slots instead of
    ``SLOTS`` (for ``python -m reffeat.bench --slots-compare``, which measures what
    the fixed slot count costs; results then differ in their last bits from the
    library's).  Not for concurrent use: it rebinds the module's ``SLOTS``."""
    global SLOTS
    if isinstance(slots, bool) or not isinstance(slots, (int, np.integer)) or slots < 1:
        raise ValueError(f"slots must be an integer >= 1 (got {slots!r})")
    old, SLOTS = SLOTS, int(slots)
    try:
        yield
    finally:
        SLOTS = old


def _slot_sum(*pairs):
    """``run_slots``'s fold for (partials (T, …), total) pairs, when the slots run on
    several threads: total = slot 0's partial, then += slot 1's, += slot 2's, …
    (called in slot order; what ``_pass`` does itself when one thread runs them
    all): the fixed order that keeps G2 and C4 independent of the thread count."""
    def fold(s, t):
        for part, tot in pairs:
            if s == 0:
                tot[...] = part[t]
            else:
                tot += part[t]
    return fold


def _dummies(dt):
    """Stand-ins for the arguments of ``_pass`` that a call does not use (same
    types as the real ones, so every call runs the same compiled kernel)."""
    one = np.zeros((1, 1), dtype=dt)
    ball = (0, 0.0, 0.0, 0, False, 0.0, 0.0, False)
    c4 = (np.zeros((1, 1), dtype=np.int64), np.zeros(3, dtype=np.int64), one, 0.0,
          np.zeros((1, 1, 1), dtype=dt), np.zeros((1, 1, 12), dtype=dt), np.zeros((1, 12), dtype=dt))
    return one, np.zeros((1, 1, 1), dtype=dt), ball, c4


def _fused_call(W, X, y, q, rho, want):
    """``want`` WANT_F … WANT_A of ``_pass`` → (F, losses, Σ of the G2 slot partials
    (k·m, d) or None, G3/σ'/A or None)."""
    X, Xf, W2, (n, P, d, k, m), dt = _prep(W, X)
    km = k * m
    b, S = _layout(n, P, d, km, dt)
    T = slot_threads(S)
    yy = _labels(y, n, k) if y is not None else np.zeros(n, dtype=np.int64)
    F = np.empty((n, k), dtype=dt)
    losses = np.zeros(n, dtype=dt)
    one, one3, ball, c4 = _dummies(dt)
    full = want in (WANT_SLOPES, WANT_A)
    # WANT_SLOPES / WANT_A return the full array: chunks land in it, the slot buffers are dummies
    Zbuf = np.empty((T, 1, 1) if full else (T, b * P, km), dtype=dt)
    acc = np.empty((T, km), dtype=dt)
    NP, per_slot = _partials(S, T, km * d * np.dtype(dt).itemsize) if want == WANT_G2 else (T, False)
    G = np.zeros((NP, km, d), dtype=dt) if want == WANT_G2 else one3
    work = np.empty((T, km, d), dtype=dt) if want == WANT_G2 else one3
    Gtot = np.empty((km, d), dtype=dt) if want == WANT_G2 else one
    gx = np.empty({WANT_G3: (n * P, d), WANT_SLOPES: (n * P, km), WANT_A: (n * P, km)}[want],
                  dtype=dt) if want in (WANT_G3, WANT_SLOPES, WANT_A) else one
    run_slots(_pass, S, T, want, Xf, one, W2, yy, P, k, m, _qargs(q, rho), b, S, F, losses, Zbuf,
              acc, work, G, Gtot, gx, ball, c4, fold=_slot_sum((G, Gtot)) if want == WANT_G2 else None,
              per_slot=per_slot, rows=_slot_rows(n, P, b, S))
    if want == WANT_G3:
        return F, losses, None, gx.reshape(n, P, d)
    if full:
        return F, losses, None, gx.reshape(n, P, k, m)
    return F, losses, Gtot if want == WANT_G2 else None, None


def forward(W, X, q, rho):
    """N3: F (n, k)."""
    return _fused_call(W, X, None, q, rho, WANT_F)[0]


def forward_and_slopes(W, X, q, rho, need_grad=True):
    """N3 and N2: F (n, k) and σ'(z) (n, P, k, m) (None if not need_grad)."""
    if not need_grad:
        return forward(W, X, q, rho), None
    F, _, _, Sp = _fused_call(W, X, None, q, rho, WANT_SLOPES)
    return F, Sp


def backprop(W, X, y, q, rho):
    """G1 × N2: (losses (n,), A (n, P, k, m))."""
    _, losses, _, A = _fused_call(W, X, y, q, rho, WANT_A)
    return losses, A


def grad_w(W, X, y, q, rho):
    """G2: (L_S(W), ∇_W L_S (k, m, d)); the slot partials are summed in slot order."""
    k, m, d = W.shape
    n = X.shape[0]
    _, losses, G, _ = _fused_call(W, X, y, q, rho, WANT_G2)
    return float(losses.mean()), (G / n).reshape(k, m, d)


def grad_x(W, X, y, q, rho):
    """G3: ∇_X ℓ (n, P, d), not divided by n."""
    return _fused_call(W, X, y, q, rho, WANT_G3)[3]


def grad_x_and_loss(W, X, y, q, rho):
    """G3 and L2: (losses (n,), ∇_X ℓ (n, P, d)), not divided by n."""
    _, losses, _, gx = _fused_call(W, X, y, q, rho, WANT_G3)
    return losses, gx


def forward_and_grad_x(W, X, y, q, rho):
    """N3, L2 and G3 from one fused pass (the CE case of ``attacks.loss_and_grad_x``):
    (F (n, k), losses (n,), ∇_X ℓ (n, P, d)), ∇ not divided by n."""
    F, losses, _, gx = _fused_call(W, X, y, q, rho, WANT_G3)
    return F, losses, gx


def ascent_run(W, X, y, q, rho, eps, norm, steps, gamma, Xa, ascent, clip, sign):
    """T2: K steps of gradient ascent from Xa (n, P, d), returning X^{(K)}.

    ``Xa`` is the start point already in the box (X + start, clipped); it is
    updated in place (and returned) when it is a C-contiguous array of the working
    dtype, as the fresh array made by ``attacks._apply`` is — no extra copy.
    Twin of the numpy loop in ``attacks._ascent_run``; arguments checked by ``attacks.attack``.
    ``sign`` is +1 (ascend ℓ(·, y)) or −1 (targeted: descend ℓ(·, t), y = t).
    """
    X, Xf, W2, (n, P, d, k, m), dt = _prep(W, X)
    km = k * m
    Xa = np.ascontiguousarray(Xa, dtype=dt)            # shape of X (made by attacks._apply)
    b, S = _layout(n, P, d, km, dt)
    T = slot_threads(S)
    lo, hi, do_clip = (0.0, 0.0, False) if clip is None else (float(clip[0]), float(clip[1]), True)
    ball = (int(steps), float(sign) * float(gamma), float(eps), _NORM_CODES[norm],
            ascent == "plain", lo, hi, do_clip)
    one, one3, _, c4 = _dummies(dt)
    run_slots(_pass, S, T, WANT_ASCENT, Xf, Xa.reshape(n * P, d), W2, _labels(y, n, k), P, k, m,
              _qargs(q, rho), b, S, np.empty((n, k), dtype=dt), np.empty(n, dtype=dt),
              np.empty((T, b * P, km), dtype=dt), np.empty((T, km), dtype=dt),
              np.empty((T, b * P, d), dtype=dt), one3, one, one, ball, c4, rows=_slot_rows(n, P, b, S))
    return Xa


def _grad_c4_call(W, X, y, patch_types, U, V, q, rho, step, want_g):
    from .distribution import NOISE, NONROBUST, ROBUST
    X, Xf, W2, (n, P, d, k, m), dt = _prep(W, X)
    km = k * m
    b, S = _layout(n, P, d, km, dt)
    T = slot_threads(S)
    types = np.ascontiguousarray(patch_types, dtype=np.int64)     # shapes: metrics._check_c4
    codes = np.array([ROBUST, NONROBUST, NOISE], dtype=np.int64)
    UV = np.ascontiguousarray(np.concatenate([U, V]), dtype=dt)      # (2k, d)
    losses = np.zeros(n, dtype=dt)
    one, one3, ball, _ = _dummies(dt)
    NP, per_slot = _partials(S, T, (km * d * want_g + 12 * km) * np.dtype(dt).itemsize)
    G = np.zeros((NP, km, d), dtype=dt) if want_g else one3
    out = np.zeros((NP, 1, 12 * km), dtype=dt)                      # (2, 2, 3, k, m) per slot
    out_tot = np.empty((1, 12 * km), dtype=dt)
    Gtot = np.empty((km, d), dtype=dt) if want_g else one
    fold = _slot_sum((G, Gtot), (out, out_tot)) if want_g else _slot_sum((out, out_tot))
    c4 = (types, codes, UV, float(step) / max(n, 1), np.empty((T, b * P, 2 * k), dtype=dt), out, out_tot)
    run_slots(_pass, S, T, WANT_G2_C4 if want_g else WANT_C4, Xf, one, W2, _labels(y, n, k), P, k,
              m, _qargs(q, rho), b, S, np.empty((n, k), dtype=dt), losses,
              np.empty((T, b * P, km), dtype=dt), np.empty((T, km), dtype=dt),
              np.empty((T, km, d), dtype=dt) if want_g else one3, G, Gtot, one, ball, c4, fold=fold,
              per_slot=per_slot, rows=_slot_rows(n, P, b, S))
    tot = out_tot.reshape(2, 2, 3, k, m)
    parts = (np.ascontiguousarray(tot[:, 0]), np.ascontiguousarray(tot[:, 1]))
    if not want_g:
        return parts
    return float(losses.mean()), (Gtot / n).reshape(k, m, d), parts


def c4_decomposition(W, X, y, patch_types, U, V, q, rho, step):
    """C4 (twin of ``metrics.c4_decomposition``, same arguments and result):
    (dGamma, dPhi), each (2, 3, k, m) = [own/other, R/N/noise, j, r], the parts of
    the one-step change ΔΓ_{j,r}, ΔΦ_{j,r} of C3 for a step η = ``step`` at X."""
    return _grad_c4_call(W, X, y, patch_types, U, V, q, rho, step, False)


def grad_w_and_c4(W, X, y, patch_types, U, V, q, rho, step):
    """G2 and C4 from one backward pass (fast twin of ``metrics.grad_w_and_c4``):
    (L_S(W), ∇_W L_S (k, m, d), (dGamma, dPhi)) — what ``grad_w`` and ``c4_decomposition``
    return, at the cost of one ``grad_w`` plus a (n·P, d)×(d, 2k) product."""
    return _grad_c4_call(W, X, y, patch_types, U, V, q, rho, step, True)
