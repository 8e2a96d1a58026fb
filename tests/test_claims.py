"""V1 at the defaults: P1–P4 of SPEC §9 (``reffeat.claims``) on every one of
seeds 0–4, and the V1 verdict arithmetic (Wilson interval, wording).

The defaults are chosen from the regime conditions RC1–RC5 (SPEC §11), all
met there (checked first, so a failing claim is not blamed on a regime that
was never promised). The run is the default Config unchanged, as
``python -m reffeat.run`` does it; C4 bookkeeping is skipped (it does not
change the weights).
"""
import pytest

from reffeat import Config, evaluate, problem, seeding, train
from reffeat.claims import CLAIMS, claims, describe, verdict, wilson
from reffeat.regime import conditions

SEEDS = (0, 1, 2, 3, 4)


def _summary(cfg):
    prob = problem(cfg)
    out = {}
    for mode in ("st", "at"):
        res = train(cfg, mode, prob, track_c4=False)
        assert res.stopped is None, f"{mode} stopped: {res.stopped}"
        out[mode] = evaluate(res.W, cfg, prob.test, prob.features, seeding.rng(cfg.seed, "eval", mode))
    return out


def _numbers(s):
    keys = ("clean_acc", "robust_acc", "gamma", "phi", "alignment")
    return ", ".join(f"{m}.{k}={s[m][k]:.3f}" for m in ("st", "at") for k in keys)


def test_regime_conditions_met_at_defaults():
    bad = [c.line() for c in conditions(Config()) if not c.met]
    assert not bad, "defaults outside their regime: " + "; ".join(bad)


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_all_four_claims_at_defaults(seed):
    s = _summary(Config(seed=seed))
    got = claims(s)
    failed = [c for c in CLAIMS if not got[c]]
    assert not failed, f"seed {seed}: {failed} fail at the defaults ({_numbers(s)})"


def test_wilson_and_wording():
    lo, hi = wilson(19, 20)
    assert lo == pytest.approx(0.7639, abs=1e-3) and hi == pytest.approx(0.9911, abs=1e-3), (lo, hi)
    assert verdict(19, 20) == "holds" and verdict(18, 20) == "holds on most seeds"
    assert verdict(10, 20) == "holds on most seeds" and verdict(9, 20) == "fails"
    assert verdict(5, 5) == "holds on most seeds", "5/5 has Wilson lower end 0.57 < 0.75: not 'holds'"
    assert "19/20" in describe(19, 20) and "95% CI 0.76–0.99" in describe(19, 20)
