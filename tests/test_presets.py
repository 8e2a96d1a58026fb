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
    assert a == {"ascent": "plain"} and b == {"ascent": "plain", "gamma": 2000.0}


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
