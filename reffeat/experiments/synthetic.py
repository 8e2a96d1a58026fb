"""The synthetic experiment: ST (T1) and AT (T3) of one seed of the SPEC's
patch data (D1–D4), from the same training set and the same W^{(0)}, each
evaluated with E1–E4 on the fresh test set.

``run_seed`` is the one per-seed pipeline.  Its callers keep different
records of the same runs:

    summary_record   what ``python -m reffeat.run`` writes to summary.json per mode
    sweep_record     one sweep job's result (every E-scalar, claims, optional traces)
    pair_record      verify's record (every E-scalar plus the coefficient paths,
                     C4 parts and E3 at W snapshots that the claim checks read)

and ``run_synthetic`` is the whole run command's job: run_seed, then
summary.json, weights, traces, figures and report.html in one directory.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np

from .. import stopping
from ..attacks import attack
from ..claims import claims
from ..config import Config
from ..distribution import NONROBUST, ROBUST
from ..metrics import PART_NAMES, alignment, c4_per_step, coefficient_summary, coefficients, evaluate
from ..output import atomic_savez, atomic_write_json, package_versions
from ..regime import rc6_reach, rc6_values, regime
from ..trace import save_trace
from ..train import MODES, Problem, TrainResult, problem, train


# ---------------------------------------------------------------- the pipeline
@dataclass
class ModeRun:
    """One mode of ``run_seed``: the training result, the E1–E4 evaluation
    (``metrics.evaluate`` on the full test set) and, when snapshots were asked
    for, W at ``snap_steps`` (S,) as ``snapshots`` (S, k, m, d), step 0 and the
    last step included."""
    mode: str
    result: TrainResult
    evaluation: dict
    snap_steps: list | None = None
    snapshots: np.ndarray | None = None


def small_test_problem(prob: Problem, n: int) -> Problem:
    """The same problem with only the first n test points (cheap in-training logs)."""
    X, y, t = prob.test
    return Problem(prob.cfg, prob.features, prob.train, (X[:n], y[:n], t[:n]), prob.W0, prob.rngs)


def _tracks(track_c4, mode: str) -> bool:
    return bool(track_c4) if isinstance(track_c4, bool) else mode in track_c4


def train_mode(cfg: Config, mode: str, prob: Problem, *, track_c4: bool = True,
               snapshots: int | None = None, log_every: int | None = None, log_test: int | None = None,
               progress=None, trace: bool = False) -> tuple:
    """T1 (mode "st") or T3 ("at") of ``prob`` for cfg.T steps: (TrainResult,
    snap_steps, snapshots). ``snapshots``: keep W at that many + 1 evenly spaced
    steps (0 and T included, and the last step when it stopped early) through
    the training loop's per-step callback (one ``train`` call, so the run is the
    same as without it), as snap_steps (S,) and an array (S, k, m, d); else
    both None. ``log_every`` / ``log_test``: in-training logs every that many
    steps / on the first that many test points only; ``track_c4``,
    ``progress``, ``trace``: as ``train``."""
    train_cfg = cfg if log_every is None else cfg.replace(log_every=log_every)
    train_prob = prob if log_test is None else small_test_problem(prob, log_test)
    snaps, steps, keep = None, None, None
    if snapshots is not None:
        cuts = sorted(set(int(round(cfg.T * i / snapshots)) for i in range(snapshots + 1)))
        wanted = set(cuts[1:])
        snaps, steps = [prob.W0.copy()], [0]

        def keep(step):
            if step.t + 1 in wanted:
                snaps.append(step.W_next.copy())
                steps.append(step.t + 1)
    res = train(train_cfg, mode, train_prob, progress=progress, track_c4=track_c4, callback=keep,
                trace=trace)
    if snaps is None:
        return res, None, None
    if steps[-1] != res.steps_done:                   # stopped early: keep the returned W too
        snaps.append(res.W.copy())
        steps.append(res.steps_done)
    return res, steps, np.array(snaps)


def iter_seed(cfg: Config, modes: Collection[str] = MODES, *, prob: Problem | None = None,
              track_c4: bool | Collection[str] = True, snapshots: int | None = None,
              log_every: int | None = None, log_test: int | None = None, progress=None,
              trace: bool = False, on_trained: Callable[[TrainResult], object] | None = None,
              evaluate_options: dict | None = None) -> Iterator[ModeRun]:
    """T1/T3 then E1–E4 for each mode in turn, yielding each ``ModeRun`` as soon
    as it is done (so a caller can write it before the next mode starts).

    ``prob``: the seed's data and W^{(0)} (``train.problem(cfg)`` when None);
    ``track_c4``: True/False, or the modes that track C4 (it costs about a
    training step); ``snapshots``, ``log_every``, ``log_test``, ``progress``,
    ``trace``: as ``train_mode``. The evaluation always uses the whole test
    set and the seed's E2 stream of the mode (``prob.eval_rng``).
    ``on_trained(result)``: called with each mode's TrainResult as soon as
    training ends, before the evaluation (so a caller can save the training
    before a slow or interrupted E1–E5); ``evaluate_options``: keyword
    arguments of ``metrics.evaluate`` (e.g. ``bab_budget``)."""
    prob = problem(cfg) if prob is None else prob
    for mode in modes:
        if stopping.requested():            # a stop arrived during the previous mode's evaluation
            return
        res, steps, snaps = train_mode(cfg, mode, prob, track_c4=_tracks(track_c4, mode),
                                       snapshots=snapshots, log_every=log_every, log_test=log_test,
                                       progress=progress, trace=trace)
        if on_trained is not None:
            on_trained(res)
        ev = evaluate(res.W, cfg, prob.test, prob.features, prob.eval_rng(mode), **(evaluate_options or {}))
        yield ModeRun(mode, res, ev, steps, snaps)


def run_seed(cfg: Config, modes: Collection[str] = MODES, **options) -> dict:
    """T1/T3 + E1–E4 of one seed: {mode: ModeRun} (options as ``iter_seed``)."""
    return {run.mode: run for run in iter_seed(cfg, modes, **options)}


# ---------------------------------------------------------------- records
def e_scalars(ev: dict) -> dict:
    """Every scalar of ``metrics.evaluate`` (E1 clean_acc, E2 robust_acc and its
    attacks, C2 gamma/phi, E3 alignments, whatever evaluate adds later) as
    floats, None where not computed."""
    return {k: (None if v is None else float(v)) for k, v in ev.items()
            if v is None or isinstance(v, (int, float, np.integer, np.floating))}


def c4_summary(res: TrainResult) -> dict:
    """C4 parts of one run, summed over r and averaged over j, per step (lists)
    and their sums ("total")."""
    out = {}
    for name, arr in (("gamma", res.c4_gamma), ("phi", res.c4_phi)):
        per_step = c4_per_step(arr)
        out[name] = {part: per_step[:, i].tolist() for i, part in enumerate(PART_NAMES)}
        out[name]["total"] = {part: float(per_step[:, i].sum()) for i, part in enumerate(PART_NAMES)}
    return out


def summary_record(run: ModeRun) -> dict:
    """One mode of summary.json: evaluate's dict plus the history, C4 summary,
    steps done, why it stopped, training wall time and the loss peak.
    Its "gamma" (and ``history["gamma"]``) is C2's mean_j max_r Γ_{j,r} with
    Γ_{j,r} = ⟨w_{j,r}, u_j⟩ (``metrics.coefficient_summary``); the trace's "gamma" is
    C5's per-neuron ⟨w − w0, u_j'⟩; the attack's step is the config's ``ascent_step``."""
    res, ev = run.result, dict(run.evaluation)
    ev["history"] = res.history
    ev["c4"] = c4_summary(res)
    ev["steps_done"] = res.steps_done
    ev["stopped"] = res.stopped
    ev["train_wall_time_s"] = res.wall_time
    ev["max_loss"] = res.extra["max_loss"]
    ev["max_loss_step"] = res.extra["max_loss_step"]
    ev["evaluated"] = True
    return ev


def sweep_record(cfg: Config, modes: Collection[str] = MODES, traces: bool = False) -> dict:
    """One sweep job (``sweep.summary_job``): per mode every E-scalar, the mean
    E4 responses, max training loss, steps done and why it stopped; the claims
    P1–P4 those modes decide (``reffeat.claims``); with ``traces`` the training
    history and the C4 parts per step (summed over r, averaged over j).
    ``claims_v2``: the same under SPEC V2 (``claims(..., "V2")``), beside V1's
    ``claims``; the E5 numbers and ``v_projected_flip_frac`` come with the
    E-scalars."""
    out: dict = {}
    for run in iter_seed(cfg, modes, track_c4=bool(traces)):
        res, ev = run.result, run.evaluation
        rec = e_scalars(ev)
        rec["response_robust"] = float(np.mean(ev["responses"]["robust"]))
        rec["response_nonrobust"] = float(np.mean(ev["responses"]["nonrobust"]))
        rec["max_loss"] = float(res.extra["max_loss"])
        rec["steps_done"] = int(res.steps_done)
        rec["stopped"] = res.stopped
        if traces:
            c4 = {}
            for name, arr in (("gamma", res.c4_gamma), ("phi", res.c4_phi)):
                per = c4_per_step(arr)
                c4[name] = {part: per[:, i] for i, part in enumerate(PART_NAMES)}
            rec["trace"] = {"history": res.history, "c4": c4}
        out[run.mode] = rec
    out["claims"] = claims(out)
    out["claims_v2"] = claims(out, "V2")
    return out


def coefficient_paths(W0, c4, which: str, U, V) -> np.ndarray:
    """C3: per-step Γ_{j,r}(t) (which="gamma") or Φ_{j,r}(t) ("phi"), shape
    (steps+1, k, m), rebuilt exactly from W^{(0)} (k, m, d) and the C4 parts
    c4 (steps, 2, 3, k, m) (Σ parts = actual change)."""
    c = coefficients(W0, U, V)
    start = c["Gamma"] if which == "gamma" else c["Phi"]
    steps = c4.sum(axis=(1, 2)) if len(c4) else np.zeros((0,) + start.shape)
    return np.concatenate([start[None], start[None] + np.cumsum(steps, axis=0)], axis=0)


def one_step_alignment(W, X, y, types, V, cfg: Config, which: int) -> float:
    """E3 of the one-step (K=1, γ=ε) perturbation on patches of type ``which``."""
    d1 = attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm, steps=1) - X
    return alignment(d1, y, V, cfg.eps, cfg.norm, types, which)


def pair_record(cfg: Config, n_segments: int = 15, modes=MODES, c4_modes=MODES,
                log_test: int = 50, log_every: int = 5, evaluate_options: dict | None = None) -> dict:
    """verify's per-seed record: ST and AT of one seed (same data and W^{(0)}).

    Per mode every E-scalar (``e_scalars``), gamma_j/phi_j, the E4 responses,
    history (every ``log_every`` steps on the first ``log_test`` test points),
    stopped, W, the initial gamma/phi, the per-step max_r coefficient paths
    Γ_j(t), Φ_j(t) (steps+1, k), C4 parts per step for Φ and Γ summed over r
    and for the neuron r* = argmax_r of the final Φ_{j,r} / Γ_{j,r}
    (steps, 2, 3, k), and E3 of the one-step perturbation of the training set
    at ``n_segments`` + 1 snapshots (per patch type R, N). Only the modes in
    ``c4_modes`` track C4; for the others the paths and parts are None.
    No wall time: a job's result is a pure function of its Config, so any
    executor gives the same bits (the time is in the store's meta)."""
    prob = problem(cfg)
    U, V = prob.features
    Xtr, ytr, ttr = prob.train
    init = coefficient_summary(prob.W0, U, V)
    out = {"seed": cfg.seed, "config": cfg.to_dict()}
    for run in iter_seed(cfg, modes, prob=prob, track_c4=tuple(c4_modes), snapshots=n_segments,
                         log_every=log_every, log_test=log_test, evaluate_options=evaluate_options):
        res, ev, mode = run.result, run.evaluation, run.mode
        rec = e_scalars(ev)
        rec["gamma_j"] = list(ev["gamma_j"])
        rec["phi_j"] = list(ev["phi_j"])
        rec["responses"] = {k: ev["responses"][k] for k in ("robust", "nonrobust")}
        rec["history"] = res.history
        rec["stopped"] = res.stopped
        rec["W"] = res.W
        rec["gamma_init"], rec["phi_init"] = init["gamma"], init["phi"]
        rec["steps_done"] = res.steps_done
        for name, c4 in (("gamma", res.c4_gamma), ("phi", res.c4_phi)):
            if mode not in c4_modes:
                for key in (f"{name}_path", f"c4_{name}_sum", f"c4_{name}_rstar", f"{name}0_j"):
                    rec[key] = None
                continue
            path = coefficient_paths(prob.W0, c4, name, U, V)          # (S+1, k, m)
            rec[f"{name}_path"] = path.max(axis=2)                      # C2 max_r, (S+1, k)
            rec[f"c4_{name}_sum"] = c4.sum(axis=4) if len(c4) else np.zeros((0, 2, 3, cfg.k))
            rstar = path[-1].argmax(axis=1)                             # (k,)
            rec[f"c4_{name}_rstar"] = (c4[:, :, :, np.arange(cfg.k), rstar] if len(c4)
                                       else np.zeros((0, 2, 3, cfg.k)))
            rec[f"{name}0_j"] = path[0].max(axis=1)
        rec["snap_steps"] = run.snap_steps
        rec["e3_train_N"] = [one_step_alignment(W, Xtr, ytr, ttr, V, cfg, NONROBUST) for W in run.snapshots]
        rec["e3_train_R"] = [one_step_alignment(W, Xtr, ytr, ttr, V, cfg, ROBUST) for W in run.snapshots]
        rec["max_loss"] = float(np.nanmax(res.history["loss"])) if res.history.get("loss") else math.nan
        out[mode] = rec
    return out


# ---------------------------------------------------------------- the run command's job
#: a few words on each file the run writes (shown after the table and in report.html)
FILE_WORDS = {
    "summary.json": "every number of the table, the config, seed, versions, per-step history and C4 (strict JSON)",
    "report.html": "this run on one page to open in a browser: set-up, results, claims, figures, how to reproduce",
    "coefficients.png": "Γ (robust feature) and Φ (non-robust feature) over training, ST vs AT",
    "accuracy.png": "clean and robust test accuracy over training (robust: the cheap in-training check)",
    "c4_st.png": "where ST's change of Γ and Φ came from: own/other class × robust/non-robust/noise patches (C4)",
    "c4_at.png": "where AT's change of Γ and Φ came from: own/other class × robust/non-robust/noise patches (C4)",
    "weights_st.npz": "ST's final weights W and initial weights W0 (numpy .npz)",
    "weights_at.npz": "AT's final weights W and initial weights W0 (numpy .npz)",
    "trace_st.npz": "ST's C5 trace at every logged step: W, γ, φ, ν, μ (and ζ, residual in high-dim)",
    "trace_at.npz": "AT's C5 trace at every logged step: W, γ, φ, ν, μ (and ζ, residual in high-dim)",
}


def files_written(out_dir: str, since: float) -> dict:
    """{file name: a few words} for every file in ``out_dir`` written at or after
    ``since`` (time.time()), i.e. by this run, whoever wrote it; sorted with the
    known files first, in FILE_WORDS order."""
    found = []
    for name in os.listdir(out_dir):
        path = os.path.join(out_dir, name)
        if name.startswith(".") or not os.path.isfile(path) or os.path.getmtime(path) < since - 1e-3:
            continue
        found.append(name)
    order = list(FILE_WORDS)
    found.sort(key=lambda f: (order.index(f) if f in order else len(order), f))
    return {f: FILE_WORDS.get(f, "written by this run") for f in found}


def run_synthetic(cfg: Config, modes, out_dir: str, figures: bool = True, progress=sys.stderr,
                  preset: str | None = None, report: bool = True, trace: bool = False,
                  threads: dict | None = None, evaluate_options: dict | None = None) -> dict:
    """``run_seed`` for the requested modes, then summary.json (rewritten after
    each mode, so a stop keeps what is done), weights_<mode>.npz, figures and
    report.html (+ the C5 traces trace_<mode>.npz when ``trace``); return the
    summary (its "files": what was written, with words).  Each mode's weights,
    history (and trace) are written as soon as its training ends, before its
    evaluation: a stop (SIGTERM, Ctrl-C) during E1–E5 keeps the training.

    ``summary["regime"]``: RC1–RC5 of §11 from the Config (expected initial
    weights), with ``["this_seed"]`` the same evaluated on this seed's W0;
    ``all_met_initial``: RC1–RC5 all met (the a-priori verdict).  Once AT is
    trained, RC6 (``regime.rc6_reach``) at AT's final weights joins both as
    ``conditions["RC6"]`` and ``all_met`` then includes it; ``["rc6"]`` has RC6
    at each trained mode's final weights ({"at": ..., "st": ...}; ST's is a
    diagnostic: RC6 speaks of AT).  With ``trace``, ``summary[mode]["rc6_trace"]``
    = {"step": [...], "value": [...]}: RC6 at every traced step.
    ``threads``: what the command set up, recorded as ``summary["threads"]``;
    ``evaluate_options``: as ``iter_seed``."""
    t0 = time.perf_counter()
    since = time.time()
    os.makedirs(out_dir, exist_ok=True)
    prob = problem(cfg)
    from .. import provenance  # the code and the exact command behind this summary (issue 22)
    summary = {"config": cfg.to_dict(), "seed": cfg.seed, "versions": package_versions(),
               "provenance": provenance.record(),
               "platform": platform.platform(), "started": _dt.datetime.now().isoformat(timespec="seconds"),
               "preset": preset}
    summary["regime"] = regime(cfg)
    summary["regime"]["this_seed"] = regime(cfg, prob.W0, prob.features)
    summary["regime"]["all_met_initial"] = summary["regime"]["all_met"]
    summary["regime"]["this_seed"]["all_met_initial"] = summary["regime"]["this_seed"]["all_met"]
    if threads is not None:
        summary["threads"] = threads
    results = {}
    interrupted = False
    summary_path = os.path.join(out_dir, "summary.json")

    def save_training(res: TrainResult) -> None:
        """Weights, history (and trace) of a mode whose training just ended."""
        summary[res.mode] = {"history": res.history, "steps_done": res.steps_done, "stopped": res.stopped,
                             "train_wall_time_s": res.wall_time, "evaluated": False}
        summary["wall_time_s"] = time.perf_counter() - t0
        atomic_write_json(summary_path, summary)
        atomic_savez(os.path.join(out_dir, f"weights_{res.mode}.npz"), W=res.W, W0=res.W0)
        if trace:
            save_trace(os.path.join(out_dir, f"trace_{res.mode}.npz"), res.trace)

    for run in iter_seed(cfg, modes, prob=prob, progress=progress, trace=trace, on_trained=save_training,
                         evaluate_options=evaluate_options):
        mode, res = run.mode, run.result
        results[mode] = res
        summary[mode] = summary_record(run)
        if trace and res.trace is not None:
            tr = res.trace.arrays()
            summary[mode]["rc6_trace"] = {"step": [int(t) for t in tr["steps"]],
                                          "value": [float(v) for v in rc6_values(tr["W"], cfg, prob.features)]}
        rc6 = rc6_reach(cfg, res.W, prob.features).to_dict()
        summary["regime"].setdefault("rc6", {})[mode] = rc6
        if mode == "at":
            for reg in (summary["regime"], summary["regime"]["this_seed"]):
                reg["conditions"]["RC6"] = rc6
                reg["all_met"] = bool(reg["all_met_initial"] and rc6["met"])
        summary["wall_time_s"] = time.perf_counter() - t0
        atomic_write_json(summary_path, summary)   # keep what is done so far
        if res.stopped and res.stopped.startswith("interrupted"):
            interrupted = True
            break
    interrupted = interrupted or stopping.requested()
    summary["interrupted"] = interrupted
    if figures and results:
        from ..plots import write_figures
        summary["figures"] = write_figures(summary, results, out_dir)
    summary["wall_time_s"] = time.perf_counter() - t0
    summary["interrupted"] = interrupted or stopping.requested()
    if report and results:
        from ..report import synthetic_report
        files = files_written(out_dir, since)
        files.setdefault("report.html", FILE_WORDS["report.html"])
        synthetic_report(summary, out_dir, files).write(os.path.join(out_dir, "report.html"))
    summary["files"] = files_written(out_dir, since)
    atomic_write_json(summary_path, summary)
    return summary
