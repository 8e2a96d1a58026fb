"""P1–P4 of SPEC §9 on trained models, three consecutive seeds (0, 1, 2).

A claim passes when it holds on a majority of the seeds (the rule of
verify/), with the thresholds of the core issue; every seed's numbers are in
the failure message. Two regimes:

* SPEC defaults, P1 and P2 (ST only). On some seeds ST also grows the robust
  feature of one class (the race (P−s)β^q = 63 vs sα^q = 27 is close, and the
  initial weights can decide it), so P1 does not hold on every seed.
* ``STABLE``: the defaults with η = 0.1 and T = 1500 (ηT doubled), P1–P4.
  At the SPEC's η = 0.5, one-step AT is unstable on most seeds (the loss jumps
  once neurons enter σ's linear region on the P−s perturbed patches; see
  verify/REPORT.md), so P3/P4 are checked where gradient descent is stable.
"""
import numpy as np
import pytest

from reffeat import Config, evaluate, problem, train
from reffeat.claims import claims

pytestmark = pytest.mark.slow

SEEDS = (0, 1, 2)
EVAL = dict(n_test=300, eval_restarts=1)          # smaller evaluation, same regime
STABLE = dict(eta=0.1, T=1500)


def _summary(cfg, modes):
    prob = problem(cfg)
    out = {}
    for mode in modes:
        res = train(cfg, mode, prob, track_c4=False)
        assert res.stopped is None, f"{mode} stopped: {res.stopped}"
        out[mode] = evaluate(res.W, cfg, prob.test, prob.features, np.random.default_rng(cfg.seed))
    return out


def _table(summaries):
    keys = ("clean_acc", "robust_acc", "gamma", "phi", "alignment")
    return "; ".join(f"seed {s}: " + ", ".join(f"{m}.{k}={v[m][k]:.3f}" for m in v for k in keys)
                     for s, v in summaries.items())


def _majority(summaries, names):
    verdicts = {s: claims(v) for s, v in summaries.items()}
    for name in names:
        held = sum(bool(c[name]) for c in verdicts.values())
        assert held * 2 > len(verdicts), f"{name} holds on {held}/{len(verdicts)} seeds: {_table(summaries)}"


def test_p1_p2_at_spec_defaults():
    _majority({s: _summary(Config(seed=s, **EVAL), ["st"]) for s in SEEDS}, ["P1", "P2"])


def test_p1_to_p4_small_step_regime():
    _majority({s: _summary(Config(seed=s, **EVAL, **STABLE), ["st", "at"]) for s in SEEDS},
              ["P1", "P2", "P3", "P4"])
