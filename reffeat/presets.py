"""§11 presets: named Configs (``--preset NAME``; a user's ``--set`` overrides them).

A preset is a dict of Config fields that differ from the Config defaults,
so ``default`` is empty. ``borderline`` spells out every field of the
first version's defaults so that it keeps reproducing that version's numbers
whatever the defaults become. Each pitfall preset is the default regime with
only the pitfall's own change (SPEC §9).

>>> config("borderline").eta, config("borderline").q
(0.5, 3.0)
>>> config("default", eta=0.02).eta
0.02
"""

from __future__ import annotations

import math

from .config import Config

#: the first version's defaults (SPEC §2/§7 before §11), every field the
#: new defaults changed or might change
_FIRST_VERSION = {
    "k": 4, "P": 64, "s": 1, "d_N": 32, "geometry": "sparse-dense",
    "alpha": 3.0, "beta": 1.0, "sigma_xi": 0.0, "n_nonrobust": None,
    "n_train": 200, "n_test": 500, "m": 16, "sigma0": 0.01, "q": 3.0, "rho": 1.0,
    "eta": 0.5, "T": 150, "norm": "linf", "eps": 0.2, "K": 1, "gamma": None,
    "random_start": False, "ascent": "sign", "lam": 1.0,
    "eval_K": 20, "eval_gamma": None, "eval_restarts": 2, "log_every": 10,
}

#: ℓ2 radii with the ℓ∞ ball's pull on ⟨x_p, v_y⟩ (ε‖v‖₁ = 0.2·sqrt(32)):
#: per patch, and on all 63 non-robust patches at once for the whole input
_EPS_L2_PATCH = 0.2 * math.sqrt(32)
_EPS_L2_WHOLE = _EPS_L2_PATCH * math.sqrt(63)

#: plain ascent's large step (``plain-ascent-large-step``). G3 at W⁽⁰⁾ has entries of
#: order (1 − 1/k)·√m·σ_0²·(feature amplitude ≈ 1) ≈ 0.75·4·1e-4 ≈ 3e-4 at the
#: defaults (measured: median 1.8e-4), so D(g) = g with γ = ε moves the input by
#: ~ε·1e-4. γ = 1e4·ε makes γ|g| ≳ ε from the first step on, and the projection
#: onto the ball, not γ, sets the size of the perturbation (≈ FGSM where |γ g| > ε).
_PLAIN_LARGE_GAMMA = 1e4 * 0.2

#: name -> (one-line description, Config fields that differ from the defaults)
PRESETS: dict[str, tuple[str, dict]] = {
    "default": (
        "the defaults: RC1–RC5 met with margin (q = 2, η = 0.05, T = 300, σ_ξ = 0.1)",
        {}),
    "q3": (
        "q = 3, the tensor-power race: α = 2 (RC1), σ_0 = 0.03, T = 2100 at η = 0.08 "
        "(RC4: the slowest class takes off by step ≈ 670), n_train = 100",
        {"q": 3.0, "alpha": 2.0, "sigma0": 0.03, "eta": 0.08, "T": 2100, "n_train": 100,
         "log_every": 50}),
    "borderline": (
        "the first version's defaults (α = 3, β = 1, σ_ξ = 0, η = 0.5, T = 150, q = 3): "
        "RC1, RC3 and RC4 not met — the race and the AT step instability",
        dict(_FIRST_VERSION)),
    "high-dim": (
        "d − 2k ≥ n·P (k = 4, P = 8, d_N = 256, n_train = 31): the training noise "
        "vectors are linearly independent, so SPEC C5's decomposition is unique",
        {"P": 8, "d_N": 256, "n_train": 31, "n_test": 200, "alpha": 1.25, "eps": 0.1,
         "sigma_xi": 0.05, "eta": 0.25, "T": 500}),
    "plain-ascent": (
        "pitfall: un-normalised gradient ascent (D(g) = g) in T2 at the default step γ = ε: "
        "the gradient's entries are ~1e-4, so the step moves the input by ~ε·1e-4 — AT trains "
        "on the clean points and equals ST; the failure is the step size (see "
        "plain-ascent-large-step)",
        {"ascent": "plain"}),
    "plain-ascent-large-step": (
        f"plain ascent (D(g) = g) with γ = {_PLAIN_LARGE_GAMMA:g} (γ|g| ≳ ε from the first "
        "step): the projection onto the ball sets the perturbation's size and AT is robust",
        {"ascent": "plain", "gamma": _PLAIN_LARGE_GAMMA}),
    "pgd-large-step": (
        "pitfall: PGD-10 adversarial training with a large step γ = ε, random start, "
        "at the first version's η = 0.5",
        {"K": 10, "gamma": 0.2, "random_start": True, "eta": 0.5}),
    "l2": (
        f"pitfall: whole-input ℓ2 threat, ε = {_EPS_L2_WHOLE:.2f} (the ℓ∞ ball's pull on "
        "⟨x_p, v_y⟩ on every non-robust patch)",
        {"norm": "l2", "eps": _EPS_L2_WHOLE}),
    "l2-patch": (
        f"pitfall: per-patch ℓ2 threat, ε = {_EPS_L2_PATCH:.2f} per patch (the ℓ∞ ball's "
        "pull on ⟨x_p, v_y⟩)",
        {"norm": "l2-patch", "eps": _EPS_L2_PATCH}),
}

NAMES = tuple(PRESETS)


def fields(name: str) -> dict:
    """The Config fields of preset ``name`` (a copy); ValueError for an unknown name."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(NAMES)} (got {name!r})")
    return dict(PRESETS[name][1])


def config(name: str = "default", **overrides) -> Config:
    """The Config of preset ``name`` with ``overrides`` applied on top (validated)."""
    return Config(**{**fields(name), **overrides})


def describe() -> str:
    """One line per preset: name and description (for --help and the README)."""
    width = max(map(len, NAMES))
    return "\n".join(f"  {n:{width}s}  {PRESETS[n][0]}" for n in NAMES)
