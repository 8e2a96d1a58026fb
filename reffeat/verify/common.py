"""Shared machinery of the verify suite: regimes, the per-seed ST+AT "pair"
run that the claim checks P1–P4, M1, M2 read (``experiments.synthetic.pair_record``,
memoised over seeds), a trajectory trainer that snapshots W during training
and per-seed statistics. Every sweep runs through ``reffeat.sweep`` (local
processes or a Dask cluster, result store).

Besides the public API of ``reffeat`` (Config, Problem, predict,
feature_perturbations) it uses the experiments floor (``experiments.synthetic``,
``experiments.memory``), the presets, the claims (``reffeat.claims``),
the sweep runner and codec (``reffeat.sweep``) and the commands' parser
(``reffeat.cli.common``) — verify stands on the top floor beside cli.

Every sweep point is a pure function of its Config (which carries the seed):
results do not depend on the worker that ran it or on the order of points.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from reffeat import Config, Problem, feature_perturbations, predict
from reffeat import claims as V1
from reffeat import presets as _presets
from reffeat.experiments.synthetic import (  # noqa: F401
    coefficient_paths,
    one_step_alignment,
    pair_record,
    small_test_problem,
    train_mode,
)
from reffeat.jobs import Runner
from reffeat.train import eval_rng  # noqa: F401  (used by verify sections)

# ---------------------------------------------------------------- regimes
#: Regimes are the presets of SPEC §11 (``reffeat.presets``): ``default``
#: (RC1–RC5 met with margin), ``q3`` (the tensor-power race), ``borderline``
#: (the first version's defaults), ``high-dim`` and the pitfalls of §9.
REGIMES = _presets.NAMES


def regime_config(name: str, **overrides) -> Config:
    """Config of a named regime (a preset of ``reffeat.presets``) with optional overrides."""
    if name not in REGIMES:
        raise ValueError(f"regime must be one of the presets {', '.join(REGIMES)} (got {name!r})")
    return _presets.config(name, **overrides)


def describe_regime(cfg: Config) -> str:
    """Short text of the fields that differ from the SPEC defaults."""
    base = Config()
    diff = [f"{k}={v}" for k, v in cfg.to_dict().items() if k != "seed" and getattr(base, k) != v]
    return ", ".join(diff) if diff else "SPEC defaults"


# ---------------------------------------------------------------- statistics
@dataclass
class SeedStats:
    """Per-seed values of one quantity and their summary."""
    values: list
    mean: float
    std: float
    lo: float
    hi: float

    def fmt(self, digits: int = 3) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def seed_stats(values) -> SeedStats:
    """Mean, sample standard deviation and range over seeds (NaN-aware)."""
    v = np.asarray([np.nan if x is None else x for x in values], dtype=float)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return SeedStats(list(v), math.nan, math.nan, math.nan, math.nan)
    std = float(ok.std(ddof=1)) if ok.size > 1 else 0.0
    return SeedStats(list(v), float(ok.mean()), std, float(ok.min()), float(ok.max()))


@dataclass
class ClaimResult:
    """Verdict of one claim over seeds.

    ``holds`` — per-seed booleans; ``quantities`` — name -> per-seed values;
    ``notes`` — lines of evidence for the report; ``extra["holds_v2"]`` — the
    per-seed verdicts under SPEC V2, reported beside V1's. The verdict is SPEC V1's
    (``reffeat.claims.verdict``): "holds" only when the 95% Wilson interval of
    the fraction of seeds has its lower end ≥ 0.75; ``passed`` means "holds".
    """
    name: str
    statement: str
    regime: str
    seeds: list
    holds: list
    quantities: dict
    criteria: str
    notes: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        return float(np.mean(self.holds)) if self.holds else math.nan

    @property
    def n_holds(self) -> int:
        return sum(bool(h) for h in self.holds)

    @property
    def verdict(self) -> str:
        """V1 wording: "holds", "holds on most seeds" or "fails"."""
        return V1.verdict(self.n_holds, len(self.holds))

    @property
    def passed(self) -> bool:
        """True when the V1 verdict is "holds" (not a mere majority)."""
        return self.verdict == "holds"

    def describe(self) -> str:
        """'19/20 (0.95, 95% CI 0.76–0.99): holds'."""
        return V1.describe(self.n_holds, len(self.holds))

    @property
    def holds_v2(self) -> list | None:
        """Per-seed V2 verdicts (SPEC §9 V2, ``claims(..., "V2")``) beside V1's
        ``holds``; None for the M claims, and where the records lack V2's numbers."""
        return self.extra.get("holds_v2")

    def describe_v2(self) -> str | None:
        """The V2 count, fraction, Wilson interval and word (same wording as V1), or None."""
        h = self.holds_v2
        return None if h is None else V1.describe(sum(bool(x) for x in h), len(h))

    def stats(self) -> dict:
        return {k: seed_stats(v) for k, v in self.quantities.items()}

    def to_dict(self) -> dict:
        return {"name": self.name, "statement": self.statement, "regime": self.regime,
                "seeds": list(self.seeds), "holds": [bool(h) for h in self.holds],
                "fraction": self.fraction, "passed": self.passed, "verdict": self.verdict,
                "wilson95": list(V1.wilson(self.n_holds, len(self.holds))), "criteria": self.criteria,
                "quantities": {k: [None if not np.isfinite(x) else float(x) for x in
                                   np.asarray(v, dtype=float)] for k, v in self.quantities.items()},
                "notes": list(self.notes), "extra": self.extra}

    def text(self) -> str:
        """Plain-text summary (per-seed numbers, mean, spread, fraction, verdict)."""
        lines = [f"{self.name}: {self.statement}", f"  regime: {self.regime}",
                 f"  criteria: {self.criteria}", f"  seeds: {list(self.seeds)}"]
        for k, s in self.stats().items():
            vals = " ".join("nan" if not np.isfinite(x) else f"{x:.3g}" for x in s.values)
            lines.append(f"  {k:28s} {s.fmt()}   per seed: {vals}")
        lines.append("  holds per seed: " + "".join("✓" if h else "✗" for h in self.holds))
        lines.extend("  " + n for n in self.notes)
        lines.append(f"  => {self.name} {self.describe()}")
        if self.describe_v2() is not None:
            lines.append(f"  => {self.name} (V2) {self.describe_v2()}")
        return "\n".join(lines)


# ---------------------------------------------------------------- table-driven checks
#: quantities that records written before they existed lack (shown as NaN there)
_NEWER_KEYS = ("certified_robust_acc",)


def _term(rec: dict, term: tuple):
    mode, key = term
    if key in _NEWER_KEYS:
        v = rec[mode].get(key)
        return math.nan if v is None else v
    return rec[mode][key]


def table_check(module, records, cfg: Config) -> ClaimResult:
    """A P claim (P1–P4) over seeds, from its declaration in ``module``: per seed
    it holds when ``reffeat.claims`` says so for ``module.NAME`` on the seed's
    modes ``module.MODES``; ``module.QUANTITIES`` rows are (label, term) or
    (label, term, term) — a ratio — with a term (mode, key) of the pair record."""
    quantities = {}
    for label, *terms in module.QUANTITIES:
        if len(terms) == 1:
            quantities[label] = [_term(r, terms[0]) for r in records]
        else:
            quantities[label] = [_term(r, terms[0]) / _term(r, terms[1]) for r in records]
    v2 = [V1.claims({m: r[m] for m in module.MODES}, "V2").get(module.NAME) for r in records]
    return ClaimResult(module.NAME, module.STATEMENT, describe_regime(cfg), [r["seed"] for r in records],
                       holds=[V1.claims({m: r[m] for m in module.MODES})[module.NAME] for r in records],
                       quantities=quantities, criteria=module.CRITERIA,
                       extra={"holds_v2": None if any(h is None for h in v2) else [bool(h) for h in v2]})


def rows_check(module, records, cfg: Config, rows: list) -> ClaimResult:
    """An M claim (M1–M3) over seeds from its per-seed analysis ``rows`` (dicts
    with "holds", one per record): ``module.QUANTITIES`` rows are (label, key)."""
    return ClaimResult(module.NAME, module.STATEMENT, describe_regime(cfg), [r["seed"] for r in records],
                       holds=[x["holds"] for x in rows],
                       quantities={label: [x[key] for x in rows] for label, key in module.QUANTITIES},
                       criteria=module.CRITERIA)


# ---------------------------------------------------------------- running sweeps
def as_runner(runner) -> Runner:
    """The Runner that executes verify's jobs (``reffeat.sweep``); None: this
    process, one job after the other, no store, no progress."""
    return Runner(scheduler="inline", progress=None) if runner is None else runner


# ---------------------------------------------------------------- trajectory training
@dataclass
class Trajectory:
    """A training run with W kept at chosen steps (``experiments.synthetic.iter_seed``
    with snapshots: one ``train`` call, so the run is the same as without them).

    ``snap_steps`` (S,), ``snapshots`` (S, k, m, d) include step 0 and the end.
    ``c4_gamma``, ``c4_phi`` (steps, 2, 3, k, m) as in TrainResult.
    """
    mode: str
    W: np.ndarray
    snap_steps: list
    snapshots: np.ndarray
    history: dict
    c4_gamma: np.ndarray
    c4_phi: np.ndarray
    steps_done: int
    stopped: str | None
    wall_time: float


def train_trajectory(cfg: Config, mode: str, prob: Problem, n_segments: int = 15,
                     log_test: int = 50, log_every: int = 5, track_c4: bool = True) -> Trajectory:
    """T1/T3 for cfg.T steps, keeping W at ``n_segments`` + 1 evenly spaced steps
    (0 and T included); in-training logs (history, every ``log_every`` steps)
    use the first ``log_test`` test points only. Training only: the snapshot
    part of ``experiments.synthetic.iter_seed`` without its evaluation."""
    t0 = time.perf_counter()
    res, steps, snaps = train_mode(cfg, mode, prob, track_c4=track_c4, snapshots=n_segments,
                                   log_every=log_every, log_test=log_test)
    return Trajectory(mode=mode, W=res.W, snap_steps=steps, snapshots=snaps,
                      history=res.history, c4_gamma=res.c4_gamma, c4_phi=res.c4_phi,
                      steps_done=res.steps_done, stopped=res.stopped,
                      wall_time=time.perf_counter() - t0)


# ---------------------------------------------------------------- the pair run
#: E5's branch-and-bound rounds in every verify run that certifies — the claim runs, the
#: RC6 section and the AT-success grid (the run command's default is 4): a cost cap. On q3
#: seed 0's AT model budget 4 took 211 s and budget 2 25 s, both certifying 0.000; at the
#: defaults budgets 1, 2 and 4 all certify 1.000 on seed 0. E5 is sound at any budget; a
#: smaller one can only certify less.
BAB_BUDGET = 2


def pair_run(cfg: Config, n_segments: int = 15, modes=("st", "at"), c4_modes=("st", "at")) -> dict:
    """ST and AT of one seed: ``experiments.synthetic.pair_record`` (the one
    per-seed pipeline ``run_seed``, every E-scalar kept; E5 at ``BAB_BUDGET``)."""
    return pair_record(cfg, n_segments=n_segments, modes=modes, c4_modes=c4_modes,
                       evaluate_options={"bab_budget": BAB_BUDGET})


_PAIR_CACHE: dict = {}


def _pair_key(cfg: Config, n_segments: int, c4_modes):
    return (tuple(sorted(cfg.to_dict().items(), key=lambda kv: kv[0])), n_segments, tuple(c4_modes))


def pair_runs(cfg: Config, seeds, runner: Runner | None = None, n_segments: int = 15,
              c4_modes=("st", "at")) -> list:
    """pair_run for each seed, as sweep jobs of ``runner`` (see ``as_runner``);
    memoised in this process, so claims share runs."""
    cfgs = [cfg.replace(seed=int(s)) for s in seeds]
    key = lambda c: _pair_key(c, n_segments, c4_modes)
    todo = [c for c in cfgs if key(c) not in _PAIR_CACHE]
    if todo:
        res = as_runner(runner).map(pair_run, todo, {"n_segments": n_segments, "c4_modes": list(c4_modes)},
                                    label=f"ST+AT pairs ({describe_regime(cfg)})")
        for c, r in zip(todo, res):
            _PAIR_CACHE[key(c)] = r
    return [_PAIR_CACHE[key(c)] for c in cfgs]


def clear_cache() -> None:
    _PAIR_CACHE.clear()


def feature_attack_breakdown(W, X, y, V, cfg) -> dict:
    """E2b split: accuracy under the pure −ε·sign(v_y) perturbation alone and
    under the worst targeted ε·sign(v_j − v_y), j ≠ y."""
    cands = feature_perturbations(V, y, X.shape[1], cfg.eps, cfg.norm)
    preds = np.stack([predict(W, X + d, q=cfg.q, rho=cfg.rho) for d in cands])     # (k, n)
    n = len(y)
    own_ok = preds[y, np.arange(n)] == y
    tgt_ok = np.ones(n, bool)
    for t in range(len(cands)):
        tgt_ok &= (preds[t] == y) | (y == t)
    return {"acc_minus_vy": float(own_ok.mean()), "acc_targeted": float(tgt_ok.mean()),
            "acc_feature_all": float((own_ok & tgt_ok).mean())}


# ---------------------------------------------------------------- claim CLI
def claim_cli(module, argv=None) -> int:
    """``python -m reffeat.verify.<claim>``: run one claim check over seeds, print the
    per-seed numbers and the V1 verdict; exit 1 unless it "holds" (SPEC V1); 2 on bad
    input (one line); 130/143 when interrupted."""
    from numbers import Integral

    from reffeat.cli.common import Parser, check_memory, command, option
    from reffeat.config import parse_set
    from reffeat.constraints import Interval
    from reffeat.experiments.memory import synthetic as memory_needed
    count = Interval(Integral, 1, 10_000)
    workers = Interval(Integral, 1, 256)

    @command
    def main(argv, policy):
        p = Parser(prog=f"python -m reffeat.verify.{module.NAME.lower()}", description=(
            f"{module.NAME}: {module.STATEMENT}  Exit status 1 unless the claim holds in the "
            "sense of SPEC V1 (95% Wilson lower end ≥ 0.75)."))
        p.add_argument("--regime", choices=tuple(REGIMES), default="default",
                       help="parameter regime: a preset of reffeat.presets (default: default)")
        p.add_argument("--seeds", type=option("--seeds", count), default=20,
                       help=f"number of seeds 0..N-1; {count}; default 20")
        p.add_argument("--workers", type=option("--workers", workers), default=2,
                       help=f"local worker processes; {workers}; default 2")
        p.add_argument("--scheduler", metavar="ADDR",
                       help="tcp://HOST:PORT of a Dask scheduler, or local:N for a Dask LocalCluster")
        p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                       help="override one Config field (repeatable; keys as in python -m reffeat.run --help)")
        p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
        args = p.parse_args(argv)
        over = dict(parse_set(item) for item in args.sets)
        cfg = regime_config(args.regime, **over)
        check_memory(memory_needed(cfg) * min(args.workers, args.seeds), "this config")
        runner = Runner(scheduler=args.scheduler, workers=args.workers,
                        progress=None if args.quiet else sys.stderr)
        recs = pair_runs(cfg, range(args.seeds), runner)
        res = module.check(recs, cfg)
        print(res.text())
        return 0 if res.passed else 1

    return main(argv)


# ---------------------------------------------------------------- stored sections
def write_section_json(out_dir: str, name: str, stored: dict) -> None:
    """Write a report section's results as ``out_dir/name`` (lossless strict JSON,
    ``reffeat.output.encode(..., lossless=True)``), atomically — what ``--only`` runs of other sections
    read back with ``read_section_json``."""
    import json
    import os

    from reffeat import provenance
    from reffeat.output import atomic_write_bytes, encode
    stored = dict(stored, provenance=provenance.record())
    atomic_write_bytes(os.path.join(out_dir, name), (json.dumps(encode(stored, lossless=True)) + "\n").encode())


def read_section_json(out_dir: str, name: str) -> dict | None:
    """The section results ``write_section_json`` left in ``out_dir`` (None if none)."""
    import json
    import os

    from reffeat.output import decode
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return decode(json.load(fh))


# ---------------------------------------------------------------- a section's provenance in words
def commit_text(prov: dict | None, width: int = 12) -> str:
    """A provenance record's commit, cut to ``width`` hex digits, with ", dirty" when the
    tree had uncommitted changes; "" when the record names no commit."""
    prov = prov or {}
    c = prov.get("commit")
    return f"{str(c)[:width]}{', dirty' if prov.get('dirty') else ''}" if c else ""


def command_text(cmd: str, prov: dict | None) -> str:
    """A section's first words: the command that recomputes it and, where the provenance
    record has it, the command as it was run."""
    run = (prov or {}).get("command")
    return f"Command: `{cmd}`" + (f" (as run: `{run}`)" if run else "")
