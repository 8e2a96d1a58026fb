"""RC1–RC5 (SPEC §11, ``reffeat.regime``) held against direct measurements.

Each test runs small trainings on both sides of a condition's boundary and
checks that the formula predicts what the dynamics do:
RC1 the winner of ST's race, RC3 the η at which AT's loss blows up, RC4 the
step at which AT's robust coefficient takes off (within a stated factor),
RC5 the runs where AT learns Γ and still is not robust. RC2 is checked on
the trained ST model (its robust accuracy falls once ε‖v‖₁ > β).
"""
import json
import math

import numpy as np
import pytest

from reffeat import Config, coefficients, evaluate, problem, seeding, train
from reffeat.claims import claims
from reffeat.regime import (
    conditions,
    confusion,
    eta_max,
    expected_max_normal,
    format_confusion,
    max_normal_quantile,
    rc1_race,
    rc2_susceptibility,
    rc5_reach,
    rc6_reach,
    rc6_values,
    regime,
    takeoff_levels,
    takeoff_times,
)

#: a small problem (k = 3, P = 16, d = 19) on which one run takes well under a second
SMALL = dict(k=3, P=16, s=1, d_N=16, n_train=60, n_test=60, m=8, eval_restarts=0, eval_K=5,
             sigma_xi=0.1, log_every=1000, eps=0.3)


# ---------------------------------------------------------------- formulas
def test_expected_max_and_quantiles():
    rng = np.random.default_rng(0)
    draws = rng.standard_normal((200_000, 16)).max(axis=1)
    assert expected_max_normal(16) == pytest.approx(draws.mean(), abs=0.01)
    assert max_normal_quantile(16, 0.1) == pytest.approx(np.quantile(draws, 0.1), abs=0.02)


def test_every_condition_is_strict_json_with_a_verdict():
    for cfg in (Config(), Config(q=3.0, eta=0.5, T=150, sigma_xi=0.0), Config(norm="l2", eps=9.0)):
        d = regime(cfg)
        json.dumps(d, allow_nan=False)
        assert set(d["conditions"]) == {"RC1", "RC2", "RC3", "RC4", "RC5"}
        for c in conditions(cfg):
            assert c.met == (c.value > c.threshold if c.relation == ">" else c.value < c.threshold)
            assert c.name in c.line() and ("NOT MET" in c.line()) is (not c.met)


def test_seed_version_uses_that_seeds_w0():
    cfg = Config(q=3.0, seed=3)
    prob = problem(cfg)
    c = rc1_race(cfg, prob.W0, prob.features)
    U, V = prob.features
    co = coefficients(prob.W0, U, V)
    Rj = cfg.n_N * co["Phi"].max(axis=1) / (cfg.s * cfg.alpha ** 3 * co["Gamma"].max(axis=1))
    assert c.value == pytest.approx(Rj.min()), "RC1 on W0 is the worst class's R_j"
    assert rc5_reach(cfg, prob.W0).value > 0


# ---------------------------------------------------------------- RC1
def test_rc1_predicts_the_winner_of_sts_race():
    """q = 2: R = n_N β²/(sα²) against the measured ST coefficients after 100 steps.
    Predicted: R ≥ 2× the threshold → P1 (Φ ≥ 5Γ); R ≥ 2 → Φ wins; R ≤ 1/2 → Γ wins."""
    base = Config(**SMALL, q=2.0, eta=0.2, T=100)
    thr = rc1_race(base).threshold
    for R in (4 * thr, 2 * thr, 0.5):
        cfg = base.replace(alpha=math.sqrt(base.n_N / R))
        c = rc1_race(cfg)
        assert c.value == pytest.approx(R)
        for seed in (0, 1):
            prob = problem(cfg.replace(seed=seed))
            res = train(prob.cfg, "st", prob, track_c4=False)
            co = coefficients(res.W, *prob.features)
            g, p = co["Gamma"].max(axis=1).mean(), co["Phi"].max(axis=1).mean()
            tag = f"R = {R:.2f} (threshold {thr:.2f}), seed {seed}: Γ = {g:.3f}, Φ = {p:.3f}"
            if R >= 2 * thr:
                assert c.met and p >= 5 * g, "RC1 met but P1 fails: " + tag
            if R >= 2:
                assert p > g, "predicted Φ to win: " + tag
            if R <= 0.5:
                assert not c.met and g > p, "predicted Γ to win: " + tag


# ---------------------------------------------------------------- RC2
def test_rc2_st_robustness_falls_across_eps_norm_v_equal_beta():
    """ST's robust accuracy (E2) is high when ε‖v‖₁ < β/2 and ≈ 0 when ε‖v‖₁ > 1.2β."""
    cfg = Config(**SMALL, q=2.0, eta=0.2, T=100, alpha=1.5)
    prob = problem(cfg)
    res = train(cfg, "st", prob, track_c4=False)
    v1 = math.sqrt(cfg.d_N)
    for factor, robust in ((0.4, True), (1.25, False)):
        c2 = cfg.replace(eps=factor * cfg.beta / v1)
        ev = evaluate(res.W, c2, prob.test, prob.features, seeding.rng(0, "eval", "st"))
        met = rc2_susceptibility(c2).met
        assert met is (not robust)
        msg = f"ε‖v‖₁/β = {factor}: ST robust accuracy {ev['robust_acc']:.3f}"
        assert (ev["robust_acc"] >= 0.5) if robust else (ev["robust_acc"] <= 0.1), msg


# ---------------------------------------------------------------- RC3
def _blows_up(cfg):
    res = train(cfg, "at", track_c4=False)
    return res.extra["max_loss"] > 2 * res.history["loss"][0], res.extra["max_loss"]


@pytest.mark.slow
def test_rc3_bound_brackets_the_onset_of_blow_ups():
    """AT with η·T = 20 fixed: no blow-up (max loss > 2× the initial loss) at
    η = η_max/2 and a blow-up on every seed at η = 2η_max — the bound is within
    a factor 2 of where blow-ups begin."""
    base = Config(**SMALL, alpha=2.0, q=2.0)
    em = eta_max(base)
    for factor, expect in ((0.5, False), (2.0, True)):
        eta = factor * em
        for seed in (0, 1):
            blew, peak = _blows_up(base.replace(eta=eta, T=int(math.ceil(20 / eta)), seed=seed))
            assert blew is expect, (f"η = {factor}·η_max = {eta:.3f}, seed {seed}: max loss {peak:.3g} "
                                    f"({'no ' if expect else ''}blow-up predicted)")


# ---------------------------------------------------------------- RC4
def _measured_takeoff(cfg, level, chunk=10):
    """First step at which every class's Γ_j = max_r Γ_{j,r} of AT reaches ``level``
    (training in chunks from the same state is the same run: T3 without random start
    is deterministic in W)."""
    prob = problem(cfg)
    U, V = prob.features
    W, t = prob.W0, 0
    while t < cfg.T:
        res = train(cfg.replace(T=chunk), "at", prob, W0=W, track_c4=False)
        W, t = res.W, t + chunk
        if (coefficients(W, U, V)["Gamma"].max(axis=1) >= level).all():
            return t
    return math.inf


@pytest.mark.slow
@pytest.mark.parametrize("q", [2.0, 3.0])
def test_rc4_predicted_takeoff_within_factor_3(q):
    """The slowest class's take-off of AT's Γ (every Γ_j ≥ Γ*), predicted from this
    seed's W0 by (∗), against the measured step: within a factor 3 either way.
    (For q = 3 the slowest class is measured up to ≈ 2.9× later than (∗) says: it
    stalls while the other classes take off, which (∗) — logits ≈ 1/k — ignores.)"""
    over = dict(q=q, alpha=2.0, eta=0.1, n_test=30, log_every=10_000)
    if q == 3.0:
        over.update(sigma0=0.04)
    for seed in (0, 1):
        cfg = Config(**{**SMALL, **over, "seed": seed})
        prob = problem(cfg)
        pred = takeoff_times(cfg, prob.W0, prob.features)["at_gamma"]
        meas = _measured_takeoff(cfg.replace(T=int(3 * pred) + 10), takeoff_levels(cfg)["gamma_at"])
        assert pred / 3 <= meas <= 3 * pred, f"q = {q}, seed {seed}: predicted {pred:.0f}, measured {meas}"


# ---------------------------------------------------------------- RC5
@pytest.mark.slow
def test_rc5_separates_robust_from_learned_but_not_robust():
    """At the defaults with σ_0 raised (seed 0): where RC5 is met (σ_0 = 0.01) AT
    is robust (P4); where the reach is ≈ 10× the margin (σ_0 = 0.08) AT still
    learns Γ (Γ(AT) ≥ 5 Γ(ST)) but its robust accuracy stays below 0.5. (At
    σ_0 = 0.08 RC1 is not met either — ST's Γ starts too high for P1's factor.)"""
    for s0, met in ((0.01, True), (0.08, False)):
        cfg = Config(sigma0=s0, log_every=1000, n_test=200, eval_restarts=1)
        assert rc5_reach(cfg).met is met
        assert all(c.met for c in conditions(cfg) if c.name in ("RC2", "RC3", "RC4"))
        prob = problem(cfg)
        s = {}
        for mode in ("st", "at"):
            res = train(cfg, mode, prob, track_c4=False)
            s[mode] = evaluate(res.W, cfg, prob.test, prob.features, seeding.rng(0, "eval", mode))
        tag = (f"σ0 = {s0} (RC5 {rc5_reach(cfg).value:.2f}): Γ(AT) {s['at']['gamma']:.3f}, "
               f"Γ(ST) {s['st']['gamma']:.3f}, robust(AT) {s['at']['robust_acc']:.3f}")
        if met:
            assert claims(s)["P4"], "RC5 met but AT not robust: " + tag
        else:
            assert s["at"]["gamma"] >= 5 * s["st"]["gamma"] and s["at"]["robust_acc"] < 0.5, tag


# ---------------------------------------------------------------- RC6
def _sig(z, q=2.0, rho=1.0):
    return 0.0 if z <= 0 else (z ** q / (q * rho ** (q - 1)) if z <= rho else z - (1 - 1 / q) * rho)


def _hand(cfg, gamma, extra=None):
    """W with every neuron Γ u_j (+ ``extra(j)``, a d-vector, off the features)."""
    from reffeat.features import make_features
    U, V = make_features(cfg)
    W = np.zeros((cfg.k, cfg.m, cfg.d))
    for j in range(cfg.k):
        W[j] = gamma * U[j] + (0 if extra is None else extra(j, U, V))
    return W, (U, V)


def test_rc6_pure_robust_weights_have_no_reach():
    """w = Γ u_j exactly (r = 0): through r the adversary gains nothing (value 0, met);
    the full-‖w‖ variant sees the drag ε Γ on every patch: m·P·σ(εΓ) / (m·s·σ(Γ(α − ε)))."""
    cfg = Config(k=3, P=8, d_N=8, m=2, alpha=3.0, eps=0.2)
    W, feats = _hand(cfg, 0.7)
    assert rc6_reach(cfg, W, feats).value == 0.0 and rc6_reach(cfg, W, feats).met
    want = cfg.P * _sig(0.2 * 0.7) / (cfg.s * _sig(0.7 * 2.8))
    assert rc6_reach(cfg, W, feats, "w").value == pytest.approx(want, rel=1e-12)


def test_rc6_noise_direction_off_the_features():
    """r = c·e (a noise coordinate, ⟂ every feature, geometry basis): every one of the P
    patches of the wrong class gains σ(εc) per neuron, and the true class's robust patch
    loses σ(Γa_R) − σ(Γa_R − εc): value = (P σ(εc) + s(σ(Γa_R) − σ(Γa_R − εc))) / (s σ(Γa_R))."""
    cfg = Config(k=2, P=6, d_N=8, m=3, geometry="basis", alpha=2.0, eps=0.25)
    c, g = 1.5, 0.8

    def noise(j, U, V):
        e = np.zeros(cfg.d)
        e[2 * cfg.k] = c
        return e
    W, feats = _hand(cfg, g, noise)
    aR = 2.0 - 0.25
    want = (cfg.P * _sig(0.25 * c) + (_sig(g * aR) - _sig(g * aR - 0.25 * c))) / _sig(g * aR)
    got = rc6_reach(cfg, W, feats)
    assert got.value == pytest.approx(want, rel=1e-12), got.line()
    assert got.met is (want < 1)
    big = rc6_reach(cfg, _hand(cfg, g, lambda j, U, V: 4 * noise(j, U, V))[0], feats)
    assert not big.met and big.value > got.value, "more memorised noise: more reach"


def test_rc6_cross_term_on_the_other_class_non_robust_feature():
    """r_t = c·v_y for t ≠ y (k = 2, basis): the wrong class reads βc on the n_N non-robust
    patches of class y and the adversary adds εc‖v‖₁ = εc there and on every other patch."""
    cfg = Config(k=2, P=5, d_N=8, m=1, geometry="basis", alpha=2.0, beta=1.0, eps=0.1)
    c, g = 0.5, 1.0
    W, feats = _hand(cfg, g, lambda j, U, V: c * V[1 - j])
    aR = 2.0 - 0.1
    gain = cfg.n_N * _sig(1.0 * c + 0.1 * c) + (cfg.P - cfg.n_N) * _sig(0.1 * c)
    loss = _sig(g * aR) - _sig(g * aR - 0.1 * c)
    assert rc6_reach(cfg, W, feats).value == pytest.approx((gain + loss) / _sig(g * aR), rel=1e-12)


def test_rc6_no_robust_coefficient_is_infinite_and_strict_json():
    cfg = Config(k=2, P=4, d_N=4, m=2)
    W, feats = _hand(cfg, -0.3)
    c = rc6_reach(cfg, W, feats)
    assert c.value == math.inf and not c.met
    json.dumps(c.to_dict(), allow_nan=False)
    assert c.to_dict()["value"] == "inf"


def test_rc6_along_a_trace_equals_step_by_step():
    cfg = Config(k=3, P=6, d_N=8, m=4)
    rng = np.random.default_rng(1)
    W, feats = _hand(cfg, 0.6)
    Ws = W[None] + 0.05 * rng.standard_normal((5, cfg.k, cfg.m, cfg.d))
    vals = rc6_values(Ws, cfg, feats)
    for variant in ("r", "w", "rv"):
        vals = rc6_values(list(Ws), cfg, feats, variant)
        assert vals.shape == (5,)
        for t in range(5):
            assert vals[t] == pytest.approx(rc6_reach(cfg, Ws[t], feats, variant).value, rel=1e-12)
    with pytest.raises(ValueError, match="W must have shape"):
        rc6_values(Ws[..., :-1], cfg, feats)
    with pytest.raises(ValueError, match="variant"):
        rc6_reach(cfg, W, feats, "x")


def test_confusion_table_counts():
    recs = [{"preset": "a", "rc6_met": True, "p4": True}, {"preset": "a", "rc6_met": False, "p4": False},
            {"preset": "b", "rc6_met": True, "p4": False}, {"preset": "b", "rc6_met": False, "p4": False}]
    t = confusion(recs)
    assert (t["n"], t["met_holds"], t["met_fails"], t["not_met_holds"], t["not_met_fails"]) == (4, 1, 1, 0, 2)
    assert t["agreement"] == 0.75 and t["by_preset"]["a"]["agreement"] == 1.0
    assert "agreement 3/4" in format_confusion(t)


def test_regime_with_learned_weights_adds_rc6():
    cfg = Config(k=3, P=6, d_N=8, m=2)
    W, feats = _hand(cfg, 0.6)
    d = regime(cfg, learned=W)
    json.dumps(d, allow_nan=False)
    assert list(d["conditions"]) == ["RC1", "RC2", "RC3", "RC4", "RC5", "RC6"]
    assert d["conditions"]["RC6"]["value"] == rc6_reach(cfg, W, feats).value
    assert "RC6" not in regime(cfg)["conditions"]


def test_rc6_diverged_weights_are_not_met_not_a_crash():
    cfg = Config(k=2, P=4, d_N=4, m=2)
    W, feats = _hand(cfg, 0.5)
    W[0, 0, 0] = np.nan
    c = rc6_reach(cfg, W, feats)
    assert not c.met and math.isnan(c.value) and "not finite" in c.detail
    assert c.to_dict()["value"] is None
