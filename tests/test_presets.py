"""§11 presets (``reffeat.presets``): every preset is a valid Config, and the
plain-ascent pair says what it measures — the step size of un-normalised
ascent (T2 with D(g) = g), checked on one attack step at W⁽⁰⁾ (no training)."""
import numpy as np
import pytest

from reffeat import presets
from reffeat.attacks import attack
from reffeat.config import Config
from reffeat.train import problem


@pytest.mark.parametrize("name", presets.NAMES)
def test_every_preset_is_a_valid_config(name):
    cfg = presets.config(name)
    assert isinstance(cfg, Config) and presets.PRESETS[name][0]


def test_plain_ascent_pair_differs_only_in_the_step():
    a, b = presets.fields("plain-ascent"), presets.fields("plain-ascent-large-step")
    assert a == {"ascent": "plain"} and b == {"ascent": "plain", "ascent_step": 2000.0}


def _first_step(name):
    cfg = presets.config(name, n_train=40)
    prob = problem(cfg)
    X, y = prob.train[0], prob.train[1]
    adv = attack(prob.W0, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm, steps=cfg.K,
                 step_size=cfg.step_size,
                 ascent=cfg.ascent)
    return np.abs(adv - X), cfg.eps


def test_plain_ascent_with_gamma_eps_barely_moves_the_input():
    """γ = ε: |γ g| ≪ ε at W⁽⁰⁾ — the perturbation is < 1% of the radius everywhere."""
    moved, eps = _first_step("plain-ascent")
    assert moved.max() < 0.01 * eps, f"plain ascent moved an input by {moved.max():.3g} (ε = {eps})"


def test_plain_ascent_with_a_large_step_reaches_the_ball():
    """γ = 1e4·ε: the projection sets the step — most coordinates sit on the ball's face."""
    moved, eps = _first_step("plain-ascent-large-step")
    on_face = float(np.mean(moved >= eps * (1 - 1e-9)))
    assert moved.max() <= eps * (1 + 1e-12)
    assert on_face >= 0.5, f"only {on_face:.2f} of the coordinates moved by ε"


# ---------------------------------------------------------------- §12 the theorem family
import math  # noqa: E402

from reffeat import regime  # noqa: E402

FAMILY_SIZES = (16, 32, 64, 128, 256, 512, 1024)


@pytest.mark.parametrize("d_N", FAMILY_SIZES)
def test_family_member_is_valid_and_meets_rc1_to_rc5(d_N):
    cfg = presets.theorem_family(d_N)
    assert isinstance(cfg, Config) and cfg.d_N == d_N and cfg.q == 3.0
    conds = regime.conditions(cfg)
    assert [c.name for c in conds] == ["RC1", "RC2", "RC3", "RC4", "RC5"]
    assert all(c.met for c in conds), [c.line() for c in conds if not c.met]


@pytest.mark.parametrize("d_N", FAMILY_SIZES)
def test_family_follows_its_stated_formulas(d_N):
    cfg = presets.theorem_family(d_N)
    fixed = {k: getattr(cfg, k) for k in ("k", "P", "s", "alpha", "beta", "m", "rho", "n_train", "n_test")}
    assert fixed == {k: presets._FAMILY_FIXED[k] for k in fixed}
    assert math.isclose(cfg.eps * math.sqrt(d_N), presets.C_EPS * cfg.beta, rel_tol=1e-12)
    assert math.isclose(cfg.sigma0 * math.sqrt(d_N), presets.SIGMA0_ROOT, rel_tol=1e-12)
    assert math.isclose(cfg.sigma_xi * math.sqrt(d_N - cfg.k), presets.NOISE_NORM, rel_tol=1e-12)
    ratio = cfg.eta / regime.eta_max(cfg)
    assert abs(ratio - presets.ETA_FRACTION) < 0.005            # η rounded to 3 significant digits
    t = regime.takeoff_times(cfg)
    slowest = max(t["st_phi"], t["at_gamma"])
    assert cfg.T % 100 == 0 and presets.T_FACTOR * slowest <= cfg.T < presets.T_FACTOR * slowest + 100
    assert cfg.log_every == cfg.T // 10


def test_family_rc6_estimate_falls_with_the_size():
    vals = [presets.rc6_estimate(presets.theorem_family(d))["value"] for d in presets.THEOREM_SIZES]
    assert all(b < a for a, b in zip(vals, vals[1:])), vals


def test_theorem_preset_is_the_registered_family_member():
    assert presets.THEOREM_D_N in presets.THEOREM_SIZES
    assert presets.config("theorem") == presets.theorem_family(presets.THEOREM_D_N)


@pytest.mark.parametrize("bad", [4, 7, 0, -32, 32.0, True, "32"])
def test_family_rejects_a_bad_size(bad):
    with pytest.raises(ValueError, match="d_N"):
        presets.theorem_family(bad)


@pytest.mark.parametrize("d_N", (32, 64, 128, 256))
def test_family_version_2_changes_only_sigma0_and_the_times(d_N):
    v1, v2 = presets.theorem_family(d_N), presets.theorem_family(d_N, presets.SIGMA0_ROOT_V2)
    assert math.isclose(v2.sigma0 * math.sqrt(d_N), presets.SIGMA0_ROOT_V2, rel_tol=1e-12)
    assert all(c.met for c in regime.conditions(v2))
    changed = {k for k, a in v1.to_dict().items() if a != getattr(v2, k)}
    assert changed == {"sigma0", "T", "log_every"} and v2.T > v1.T


def test_theorem_family_refuses_a_size_without_take_off():
    """d_N = 8 has no finite RC4 take-off at q = 3: one ValueError naming d_N (was OverflowError)."""
    import pytest

    from reffeat import presets
    with pytest.raises(ValueError, match="d_N"):
        presets.theorem_family(8)
    assert presets.theorem_family(16).T > 0
