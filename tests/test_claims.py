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
from reffeat.claims import CLAIMS, THRESHOLDS, THRESHOLDS_V2, claims, claims_all, describe, verdict, wilson
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


# ---------------------------------------------------------------- V2 (SPEC §9), synthetic summaries
def _st(**kw):
    base = {"phi": 1.0, "gamma": 0.1, "clean_acc": 1.0, "robust_acc": 0.0, "alignment": 0.9,
            "robust_acc_feature_attack": 0.0, "v_projected_flip_frac": 1.0}
    return {**base, **kw}


def _at(**kw):
    base = {"phi": 0.1, "gamma": 1.0, "clean_acc": 1.0, "robust_acc": 1.0}
    return {**base, **kw}


def test_v2_thresholds_are_specs_and_v1_is_unchanged():
    assert THRESHOLDS == {"P1_phi_over_gamma": 5.0, "P2_clean_min": 0.95, "P2_robust_max": 0.1,
                          "P2_alignment_min": 0.5, "P3_gamma_ratio_min": 5.0, "P3_phi_ratio_max": 0.5,
                          "P4_clean_min": 0.95, "P4_robust_min": 0.5, "P4_gain_min": 0.4}
    v2 = {**THRESHOLDS, "P2_feature_attack_max": 0.1, "P2_projected_flip_min": 0.9,
          "P4_robust_min": 0.9, "P4_gain_min": 0.8}
    assert THRESHOLDS_V2 == v2


def test_v2_p4_boundaries():
    st = _st(robust_acc=0.1)
    assert claims({"st": st, "at": _at(robust_acc=0.9)}, "V2")["P4"], "0.9 ≥ 0.9 and 0.9 ≥ 0.1 + 0.8"
    assert not claims({"st": st, "at": _at(robust_acc=0.898)}, "V2")["P4"]
    st = _st(robust_acc=0.14)
    assert claims({"st": st, "at": _at(robust_acc=0.94)}, "V2")["P4"], "0.94 ≥ 0.14 + 0.8 (binary rounding)"
    assert not claims({"st": st, "at": _at(robust_acc=0.938)}, "V2")["P4"]
    assert not claims({"st": _st(robust_acc=0.15), "at": _at(robust_acc=0.94)}, "V2")["P4"], "gain 0.79 < 0.8"
    assert not claims({"st": _st(), "at": _at(clean_acc=0.948)}, "V2")["P4"]
    assert claims({"st": _st(), "at": _at(clean_acc=0.95)}, "V2")["P4"]
    # q3 seed 0 of issue 20: robust 0.547 passes V1, fails V2
    both = claims_all({"st": _st(), "at": _at(robust_acc=0.547)})
    assert both["V1"]["P4"] and not both["V2"]["P4"]


def test_v2_p2_adds_feature_attack_and_projected_flips():
    ok = {"st": _st()}
    assert claims(ok, "V2")["P2"]
    assert claims({"st": _st(robust_acc_feature_attack=0.1)}, "V2")["P2"], "≤ 0.1 at 0.1"
    assert not claims({"st": _st(robust_acc_feature_attack=0.102)}, "V2")["P2"]
    assert claims({"st": _st(v_projected_flip_frac=0.9)}, "V2")["P2"], "≥ 0.9 at 0.9"
    assert not claims({"st": _st(v_projected_flip_frac=0.898)}, "V2")["P2"]
    assert not claims({"st": _st(v_projected_flip_frac=None)}, "V2")["P2"], "no measurement: not met"
    assert not claims({"st": _st(alignment=0.4)}, "V2")["P2"], "V1's P2 is part of V2's"
    # V1 ignores the V2 measurements
    assert claims({"st": _st(robust_acc_feature_attack=0.9, v_projected_flip_frac=0.0)}, "V1")["P2"]


def test_v2_leaves_p2_out_when_its_measurements_are_absent():
    st = _st()
    del st["v_projected_flip_frac"]
    got = claims({"st": st, "at": _at()}, "V2")
    assert "P2" not in got and set(got) == {"P1", "P3", "P4"}
    assert claims({"st": st, "at": _at()}, "V1")["P2"]


def test_p1_p3_identical_in_v1_and_v2():
    for st, at in ((_st(phi=0.5), _at()), (_st(), _at(gamma=0.4)), (_st(), _at(phi=0.6)), (_st(), _at())):
        v1, v2 = claims({"st": st, "at": at}, "V1"), claims({"st": st, "at": at}, "V2")
        assert v1["P1"] == v2["P1"] and v1["P3"] == v2["P3"], (st, at)


def test_unknown_version_is_a_value_error():
    with pytest.raises(ValueError, match="version must be one of V1, V2"):
        claims({"st": _st()}, "V3")
