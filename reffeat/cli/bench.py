"""``python -m reffeat.bench``: speed of one training step of the fast (numba)
backend against the numpy reference, and against the machine's own GEMM.

For four problem sizes — ``default`` (``Config()``: n=200, P=64, d=36, k=4,
m=16, on the SPEC's synthetic data), ``mnist`` (n=128 batch, P=16, d=49, k=10,
m=50), ``cifar`` (n=128, P=16, d=192, k=10, m=50; images in [0, 1]) and
``theorem`` (§12: ``presets.theorem_family(128)``, the family's largest size
verify runs: q=3, n=50, P=64, d=132, k=4, m=16, its own ε, ρ, η) — it
times, as the median of ``--reps`` back-to-back repetitions after a 0.25 s warm
spell (``_median_time``; the ST and AT steps and their reference twins in 3
alternating rounds, step = median of the round medians, speed-up = median of the
per-round ratios):

* ST step (T1): G2 at the clean batch and the update W − ηG (q, ρ, η of ``Config()``;
  of the preset for ``theorem``);
* AT step (T3, one-step ℓ∞ attack, K=1, γ=ε): T2 then G2 at X^adv, update;
* PGD-10 AT step: T2 with K=10, γ=ε/4, random start, then G2, update;
* the same AT step with the numpy reference (``backend="reference"``);
* for the image sizes, the AT step with float32 W and X (the float32 option) and
  the relative difference of its updated W from the float64 one.

GFLOP/s count the multiply-adds of the four products of an AT step (forward and
G3 of the attack, forward and G2 of the update: 4·n·P·d·k·m multiply-adds =
8·n·P·d·k·m flops; ST: 2 products) and are compared with ``numpy.matmul`` of two
2048×2048 float64 matrices timed in the same run (median over all its
measurements, interleaved with the configs, because the machine may be shared).
Peak memory is the ``tracemalloc`` peak above the baseline during one AT step
(all buffers of the fast path are numpy arrays, so this is the whole footprint
apart from BLAS's fixed internal buffers), compared with the bytes of the input
batch plus the weights.  numba compile time is reported separately and is in no
step time: the kernels the default run uses are compiled in a fresh process into
an empty cache directory (what the first run after installing pays) and loaded
from it by a second process (``compile``); the first calls of this process
(cache loads, or compiles if the cache was empty) are reported too.

``--slots-compare`` adds what the fixed number of work slots costs
(``kernels.SLOTS`` = 16, which keeps the bits the same for 1..16 threads,
against the 2 slots it replaced): for each config, at 1 and at 2 kernel
threads, the ST and AT steps with 16 and with 2 slots (``kernels._slot_count``)
alternate call by call (``_interleaved_times``: both see the same load) in
``SLOTS_ROUNDS`` rounds (which one goes first alternates); the ratio is the
median of the per-round ratios median time(16) / median time(2) (also given:
the ratio of the fastest calls, which a burst of load on a shared machine
cannot slow down), and the peak memory of one AT step is given for both.

``--json`` prints one JSON object instead of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from numbers import Integral

import numpy as np

from .. import seeding
from ..config import Config
from ..constraints import Interval
from .common import Parser, command, option

CONFIGS = {
    #          n,   P,   d,   k,  m,   eps,     clip
    "default": (200, 64, 36, 4, 16, 0.2, None),
    "mnist": (128, 16, 49, 10, 50, 0.1, (0.0, 1.0)),
    "cifar": (128, 16, 192, 10, 50, 4 / 255, (0.0, 1.0)),
    "theorem": None,             # presets.theorem_family(THEOREM_D_N): shapes and ε of the preset
}
#: d_N of the ``theorem`` config: the §12 family's largest size in verify's section
#: "Toward the theorems' regime" (``reffeat.verify.region``)
THEOREM_D_N = 128
#: q, ρ, η of every timed step: the SPEC defaults (``Config()``), not numbers of their own
Q, RHO, ETA = Config().q, Config().rho, Config().eta


#: seconds of back-to-back calls before a measurement starts (see ``_median_time``).
WARM_S = 0.25
#: rounds of alternating fast / reference measurements per config (see ``bench_config``).
ROUNDS = 3
#: rounds of alternating 16-slot / 2-slot measurements (see ``slots_compare``).
SLOTS_ROUNDS = 7
#: the slot count ``kernels.SLOTS`` replaced, and the thread counts it is compared at
OLD_SLOTS = 2
COMPARE_THREADS = (1, 2)


def _median_time(fn, reps: int) -> float:
    """Median wall time of ``reps`` back-to-back calls of ``fn``, after ``WARM_S``
    seconds (and at least two calls) of the same calls untimed.

    Why a timed warm spell rather than a sleep: on this 2-core machine a step
    measured right after numpy's threaded OpenBLAS has run (the reference, the
    GEMM probe) is ~2× slower, because OpenBLAS's idle workers keep spinning for
    a while (``OPENBLAS_THREAD_TIMEOUT``: set it to 4 and the slowdown goes), and
    a step measured right after an idle pause is also up to 2× slower (cores
    clocked down, pool asleep).  Steps in a training loop run back to back, so
    the steady state is what is reported — for the fast path, the reference and
    the GEMM probe alike.
    """
    t_end = time.perf_counter() + WARM_S
    calls = 0
    while calls < 2 or time.perf_counter() < t_end:
        fn()
        calls += 1
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def gemm_gflops(size: int = 2048, reps: int = 5) -> float:
    """float64 GEMM speed of this machine: numpy.matmul of two size×size matrices."""
    rng = seeding.rng(0, "bench", 0)
    A, B = rng.random((size, size)), rng.random((size, size))
    C = np.empty((size, size))
    np.matmul(A, B, out=C)                          # warm-up
    t = _median_time(lambda: np.matmul(A, B, out=C), reps)
    return 2.0 * size**3 / t / 1e9


def _problem(name: str):
    """(W, X, y, eps, clip, (q, ρ, η)) of a config."""
    from ..train import problem
    if name in ("default", "theorem"):
        if name == "default":
            cfg = Config()
        else:
            from ..presets import theorem_family
            cfg = theorem_family(THEOREM_D_N)
        prob = problem(cfg)
        X, y, _ = prob.train
        W = prob.W0 * (30.0 * Config().sigma0 / cfg.sigma0)   # a mid-training scale: σ not all in one piece
        return W, np.ascontiguousarray(X), y, cfg.eps, None, (cfg.q, cfg.rho, cfg.eta)
    n, P, d, k, m, eps, clip = CONFIGS[name]
    rng = seeding.rng(0, "bench", 1)
    X = rng.random((n, P, d))
    y = rng.integers(0, k, n)
    W = rng.standard_normal((k, m, d)) / np.sqrt(d)
    return W, np.ascontiguousarray(X), y, eps, clip, (Q, RHO, ETA)


def _steps(W, X, y, eps, clip, backend, qre=(Q, RHO, ETA)):
    from ..attacks import attack
    from ..model import grad_w
    q, rho, eta = qre

    def st():
        _, G = grad_w(W, X, y, q=q, rho=rho, backend=backend)
        return W - eta * G

    def at():
        Xa = attack(W, X, y, q=q, rho=rho, eps=eps, steps=1, clip=clip, backend=backend)
        _, G = grad_w(W, Xa, y, q=q, rho=rho, backend=backend)
        return W - eta * G

    def pgd10():
        Xa = attack(W, X, y, q=q, rho=rho, eps=eps, steps=10, step_size=eps / 4,
                    random_start=True, rng=seeding.rng(0, "bench", 2), clip=clip, backend=backend)
        _, G = grad_w(W, Xa, y, q=q, rho=rho, backend=backend)
        return W - eta * G

    return st, at, pgd10


def _kernel_dispatchers():
    from .. import kernels
    return [f for f in vars(kernels).values() if hasattr(f, "stats") and hasattr(f, "py_func")]


def _compile_stats():
    hits = misses = 0
    for f in _kernel_dispatchers():
        hits += sum(f.stats.cache_hits.values())
        misses += sum(f.stats.cache_misses.values())
    return hits, misses


#: What the first ``python -m reffeat.run`` compiles: its first calls of each fast
#: path, in the order the run makes them (G2 + C4 of the first training step, the T2
#: ascent, forward / G2).  The fast paths share one kernel (``kernels._pass``), so the
#: first call pays nearly all of it; ``compiled`` names every numba function compiled.
_COMPILE_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from reffeat import Config, kernels
from reffeat.train import problem
t_import = time.perf_counter() - t0
kernels.configure_threads()
cfg = Config(); prob = problem(cfg); X, y, types = prob.train; U, V = prob.features; W = prob.W0
calls = [("G2 + C4 (grad_w_and_c4)", lambda: kernels.grad_w_and_c4(W, X, y, types, U, V, cfg.q, cfg.rho,
                                                                  cfg.eta)),
         ("T2 ascent (attack)", lambda: kernels.ascent_run(W, X, y, cfg.q, cfg.rho, cfg.eps, cfg.norm, 1,
                                                            cfg.eps, X.copy(), "sign", None, 1.0)),
         ("N3 forward / G2 (forward, grad_w)", lambda: (kernels.forward(W, X, cfg.q, cfg.rho),
                                                        kernels.grad_w(W, X, y, cfg.q, cfg.rho)))]
out = {"import_s": t_import, "kernels": {}}
for name, fn in calls:
    t = time.perf_counter(); c = time.process_time()
    fn()
    out["kernels"][name] = {"wall_s": time.perf_counter() - t, "cpu_s": time.process_time() - c}
out["compiled"] = sorted(f.__name__ for f in vars(kernels).values() if hasattr(f, "stats")
                         and hasattr(f, "py_func") and sum(f.stats.cache_misses.values()))
print(json.dumps(out))
"""


def compile_time() -> dict:
    """numba compile time of the kernels the default run uses, measured apart from
    any step: a fresh process compiles them into an empty cache directory
    (``cold``: what the first run after installing pays), then a second fresh
    process loads them from that cache (``warm``)."""
    import subprocess
    import tempfile
    out = {}
    with tempfile.TemporaryDirectory(prefix="reffeat-bench-cache-") as tmp:
        env = dict(os.environ, REFFEAT_CACHE_DIR=tmp, PYTHONPATH=os.pathsep.join(
            [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))]
            + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        env.pop("NUMBA_CACHE_DIR", None)
        env.pop("REFFEAT_BACKEND", None)
        for what in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", _COMPILE_SCRIPT], env=env,
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"compile-time probe failed: {res.stderr[-500:]}")
            r = json.loads(res.stdout)
            r["total_wall_s"] = float(sum(v["wall_s"] for v in r["kernels"].values()))
            r["total_cpu_s"] = float(sum(v["cpu_s"] for v in r["kernels"].values()))
            out[what] = r
    return out


def _peak_mem(fn) -> int:
    """tracemalloc peak above the baseline during one call of fn (bytes)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return int(peak)


def _interleaved_times(fns, reps: int) -> list[list[float]]:
    """Wall times of each of ``fns``, called in turn (f0, f1, …, f0, f1, …):
    ``reps`` timed calls of each, after ``WARM_S`` seconds (and at least two turns)
    of the same calls untimed.  Alternating call by call, the functions compared
    share whatever load the (shared) machine has at the time."""
    t_end = time.perf_counter() + WARM_S
    turns = 0
    while turns < 2 or time.perf_counter() < t_end:
        for fn in fns:
            fn()
        turns += 1
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return times


def _with_slots(fn, slots: int):
    from .. import kernels

    def call():
        with kernels._slot_count(slots):
            return fn()
    return call


def slots_compare(names, reps: int, rounds: int | None = None) -> dict:
    """What ``kernels.SLOTS`` costs against OLD_SLOTS, measured in this process: for
    each thread count in COMPARE_THREADS and each config, the ST and AT steps with
    SLOTS and with OLD_SLOTS slots timed call by call in turn (``_interleaved_times``)
    in ``rounds`` rounds (default SLOTS_ROUNDS; which goes first alternates); ratio =
    median over rounds of time(SLOTS) / time(OLD_SLOTS) (> 1: the fixed 16 slots
    cost time).  The thread setting is restored after."""
    from .. import kernels
    rounds = SLOTS_ROUNDS if rounds is None else rounds
    before = kernels.threads()
    out: dict = {"slots": int(kernels.SLOTS), "old_slots": OLD_SLOTS, "rounds": rounds, "by_threads": []}
    try:
        for t in COMPARE_THREADS:
            used = kernels.configure_threads(t)["threads"]
            row: dict = {"threads": used, "configs": {}}
            for name in names:
                W, X, y, eps, clip, qre = _problem(name)
                st, at, _ = _steps(W, X, y, eps, clip, "numba", qre)
                res: dict = {"layout_slots": {}}
                for slots in (kernels.SLOTS, OLD_SLOTS):
                    with kernels._slot_count(slots):
                        st(), at()                                 # warm-up (and the layout)
                        res["layout_slots"][str(slots)] = int(kernels._layout(
                            X.shape[0], X.shape[1], X.shape[2], W.shape[0] * W.shape[1], np.float64)[1])
                        res[f"peak_mem_at_bytes_{slots}"] = _peak_mem(at)
                for what, fn in (("st", st), ("at", at)):
                    new, old = _with_slots(fn, kernels.SLOTS), _with_slots(fn, OLD_SLOTS)
                    pairs, mins = [], [np.inf, np.inf]
                    for r in range(rounds):
                        if r % 2 == 0:
                            tn, to = _interleaved_times([new, old], reps)
                        else:
                            to, tn = _interleaved_times([old, new], reps)
                        pairs.append((float(np.median(tn)), float(np.median(to))))
                        mins = [min(mins[0], min(tn)), min(mins[1], min(to))]
                    res[f"ratio_min_{what}"] = float(mins[0] / mins[1])
                    res[f"{what}_rounds_s"] = pairs
                    res[f"{what}_step_s"] = float(np.median([a for a, _ in pairs]))
                    res[f"{what}_step_old_s"] = float(np.median([b for _, b in pairs]))
                    res[f"ratio_{what}"] = float(np.median([a / b for a, b in pairs]))
                row["configs"][name] = res
            out["by_threads"].append(row)
    finally:
        kernels.configure_threads(before)
    out["max_ratio"] = float(max(c[f"ratio_{w}"] for row in out["by_threads"]
                                 for c in row["configs"].values() for w in ("st", "at")))
    return out


def bench_config(name: str, reps: int, gemm: list, ref_reps: int | None = None) -> dict:
    W, X, y, eps, clip, qre = _problem(name)
    n, P, d = X.shape
    k, m, _ = W.shape
    st, at, pgd = _steps(W, X, y, eps, clip, "numba", qre)
    rst, rat, _ = _steps(W, X, y, eps, clip, "reference", qre)
    t0 = time.perf_counter()
    st(), at(), pgd()                                # warm-up (compiles or loads the cache)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    st(), at(), pgd()
    second = time.perf_counter() - t0
    rat()
    gemm.append(gemm_gflops(reps=3))
    out = {"name": name, "n": n, "P": P, "d": d, "k": k, "m": m}
    # fast and reference alternate over ROUNDS rounds; a step time is the median of
    # its round medians and a speed-up the median of the per-round ratios, so one
    # burst of load on the (shared) machine cannot make or break a ratio
    for what, fast, ref in (("st", st, rst), ("at", at, rat)):
        rounds = [(_median_time(fast, reps), _median_time(ref, ref_reps or reps))
                  for _ in range(ROUNDS)]
        out[f"{what}_step_s"] = float(np.median([f for f, _ in rounds]))
        out[f"reference_{what}_step_s"] = float(np.median([r for _, r in rounds]))
        out[f"speedup_{what}"] = float(np.median([r / f for f, r in rounds]))
        out[f"{what}_rounds_s"] = rounds
    out["pgd10_step_s"] = _median_time(pgd, reps)
    gemm.append(gemm_gflops(reps=3))
    macs = n * P * d * k * m
    out["gflops_st"] = 4 * macs / out["st_step_s"] / 1e9
    out["gflops_at"] = 8 * macs / out["at_step_s"] / 1e9
    out["gflops_pgd10"] = 44 * macs / out["pgd10_step_s"] / 1e9
    out["first_call_overhead_s"] = max(0.0, first - second)   # numba compile / cache load
    if clip is not None:                                      # real-image sizes: the float32 option
        W32, X32 = W.astype(np.float32), X.astype(np.float32)
        _, at32, _ = _steps(W32, X32, y, eps, clip, "numba", qre)
        at32()
        out["at_step_f32_s"] = _median_time(at32, reps)
        out["speedup_f32_at"] = out["at_step_s"] / out["at_step_f32_s"]
        G32, G64 = at32(), at()
        out["f32_rel_err_update"] = float(np.abs(G32 - G64).max() / np.abs(G64).max())
    # peak memory of one fast AT step (tracemalloc sees every numpy buffer)
    out["peak_mem_bytes"] = _peak_mem(at)
    out["input_plus_weights_bytes"] = int(X.nbytes + W.nbytes)
    out["peak_mem_ratio"] = out["peak_mem_bytes"] / out["input_plus_weights_bytes"]
    return out


def run(names=None, reps: int = 7, ref_reps: int | None = None, compile_probe: bool = True,
        compare_slots: bool = False) -> dict:
    from .. import kernels
    threads = kernels.configure_threads()
    names = list(CONFIGS) if not names else names
    compiled = compile_time() if compile_probe else None
    gemm = [gemm_gflops(reps=max(5, reps))]
    hits0, miss0 = _compile_stats()
    t0 = time.perf_counter()
    configs = [bench_config(nm, reps, gemm, ref_reps) for nm in names]
    hits, misses = _compile_stats()
    g = float(np.median(gemm))
    for c in configs:
        c["peak_fraction_st"] = c["gflops_st"] / g
        c["peak_fraction_at"] = c["gflops_at"] / g
    compare = slots_compare(names, reps) if compare_slots else None
    return {
        "gemm_gflops": g,
        "gemm_gflops_samples": gemm,
        "configs": configs,
        "threads": threads,
        "compile": compiled,
        "numba_cache": {"hits": hits - hits0, "misses": misses - miss0},
        "numba_compile_or_load_s": float(sum(c["first_call_overhead_s"] for c in configs)),
        "env": {key: os.environ.get(key) for key in
                ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "slots_compare": compare,
        "bench_wall_s": time.perf_counter() - t0,
    }


def format_table(res: dict) -> str:
    lines = [f"float64 GEMM (numpy.matmul 2048²): {res['gemm_gflops']:.1f} GFLOP/s "
             f"(samples {', '.join(f'{g:.1f}' for g in res['gemm_gflops_samples'])}); "
             f"kernel threads {res['threads']['threads']} ({res['threads']['source']}); "
             f"load average {res['load_average']}"]
    head = (f"{'config':8s} {'ST s':>9s} {'AT s':>9s} {'PGD10 s':>9s} {'ref AT s':>9s} "
            f"{'speedup':>8s} {'GF/s AT':>8s} {'%peak AT':>9s} {'%peak ST':>9s} "
            f"{'peak MB':>8s} {'×(X+W)':>7s}")
    lines.append(head)
    for c in res["configs"]:
        lines.append(
            f"{c['name']:8s} {c['st_step_s']:9.5f} {c['at_step_s']:9.5f} {c['pgd10_step_s']:9.5f} "
            f"{c['reference_at_step_s']:9.5f} {c['speedup_at']:7.1f}× {c['gflops_at']:8.1f} "
            f"{100 * c['peak_fraction_at']:8.1f}% {100 * c['peak_fraction_st']:8.1f}% "
            f"{c['peak_mem_bytes'] / 1e6:8.2f} {c['peak_mem_ratio']:7.2f}")
    for c in res["configs"]:
        if "at_step_f32_s" in c:
            lines.append(f"{c['name']:8s} float32 AT step {c['at_step_f32_s']:.5f} s "
                         f"({c['speedup_f32_at']:.2f}× float64; updated W rel diff "
                         f"{c['f32_rel_err_update']:.1e})")
    lines.append(f"numba first calls in this run (compile or cache load): {res['numba_compile_or_load_s']:.2f} s "
                 f"(cache hits {res['numba_cache']['hits']}, misses {res['numba_cache']['misses']})")
    cmp = res.get("slots_compare")
    if cmp:
        lines.append(f"work slots {cmp['slots']} vs {cmp['old_slots']}: step time ratio "
                     f"time({cmp['slots']}) / time({cmp['old_slots']}), median of {cmp['rounds']} "
                     f"alternating rounds (after 'slots': the slot counts the config's layout uses); "
                     f"AT-step peak memory {cmp['slots']} vs {cmp['old_slots']} slots")
        new, old = cmp["slots"], cmp["old_slots"]
        for row in cmp["by_threads"]:
            for name, c in row["configs"].items():
                ls = c["layout_slots"]
                mem_new, mem_old = c[f"peak_mem_at_bytes_{new}"], c[f"peak_mem_at_bytes_{old}"]
                lines.append(
                    f"  threads {row['threads']} {name:8s} ST {c['ratio_st']:.3f} AT {c['ratio_at']:.3f} "
                    f"(fastest calls: ST {c['ratio_min_st']:.3f} AT {c['ratio_min_at']:.3f}) "
                    f"(AT {1e3 * c['at_step_s']:.2f} vs {1e3 * c['at_step_old_s']:.2f} ms; slots "
                    f"{ls[str(new)]} vs {ls[str(old)]}; peak {mem_new / 1e6:.2f} vs {mem_old / 1e6:.2f} MB)")
        lines.append(f"  largest ratio {cmp['max_ratio']:.3f}")
    comp = res.get("compile")
    if comp:
        for what, label in (("cold", "compile, empty cache"), ("warm", "load from cache")):
            c = comp[what]
            per = ", ".join(f"{k} {v['wall_s']:.2f} s" for k, v in c["kernels"].items())
            lines.append(f"kernels of the default run, {label}: {c['total_wall_s']:.2f} s wall "
                         f"({c['total_cpu_s']:.2f} s CPU; first calls: {per}); import {c['import_s']:.2f} s"
                         + (f"; compiled {', '.join(c['compiled'])}" if c.get("compiled") else ""))
    return "\n".join(lines)


REPS = Interval(Integral, 5, 10_000)
REF_REPS = Interval(Integral, 1, 10_000)


@command
def main(argv, policy) -> int:
    """``python -m reffeat.bench``: see the module docstring."""
    p = Parser(prog="python -m reffeat.bench", description=__doc__.split("\n\n")[0].replace("``", '"'),
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--reps", type=option("--reps", REPS), default=7,
                   help=f"timed repetitions per measurement; {REPS}; default 7")
    p.add_argument("--ref-reps", type=option("--ref-reps", REF_REPS), default=None,
                   help=f"repetitions for the reference; {REF_REPS}; default: --reps")
    p.add_argument("--config", action="append", choices=list(CONFIGS),
                   help="only these configs (repeatable; default all)")
    p.add_argument("--no-compile-probe", action="store_true",
                   help="skip measuring the kernels' compile time in an empty cache (two "
                        "extra processes, ~10-30 s)")
    p.add_argument("--slots-compare", action="store_true",
                   help="also time every config with 16 and with 2 work slots at 1 and 2 threads "
                        "(what the fixed kernels.SLOTS costs; see the module docstring)")
    args = p.parse_args(argv)
    res = run(args.config, args.reps, args.ref_reps, compile_probe=not args.no_compile_probe,
              compare_slots=args.slots_compare)
    print(json.dumps(res) if args.json else format_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
