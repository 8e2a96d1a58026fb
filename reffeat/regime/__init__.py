"""§11 RC1–RC6: the regime conditions under which P1–P4 are predicted, as
functions of a Config (RC1–RC5) and of the learned weights (RC6).

Each condition is this project's own derivation from the dynamics of SPEC
§3–§7 (written out in the function's docstring), returns a ``Condition``
(value, threshold, met or not) and is cheap (no training).

Common ground (used by RC1, RC4, RC5). Early in training the logits are
≈ 1/k, so by G1 an own-class sample weighs ``1 − 1/k`` and an other-class
sample ``1/k``; a fraction 1/k of the samples is own-class. The noise is
orthogonal to every feature (D4), so by C3 only feature patches move a
feature coefficient. For the neuron with the largest coefficient x (C2's
max_r), whose pre-activation on a patch carrying feature amplitude ``a`` is
``a·x`` (noise and cross terms neglected: assumption A1,
``σ_ξ·sqrt(d − 2k)`` and ``σ_0`` small against the feature amplitudes),

    dx/dt = η · c · A · x^{q−1} / ρ^{q−1},   c = (k − 1)/k²,   A = n_f · a^q     (∗)

with n_f the number of patches carrying the feature (σ'(z) = (z/ρ)^{q−1}
below ρ, N2). The time to go from x0 to x is therefore

    t(x0 → x) = ρ^{q−1} I(x0, x) / (η c A),
    I(x0, x) = ln(x/x0)  (q = 2),   (x^{2−q} − x0^{2−q})/(2 − q)  (q ≠ 2).

A coefficient is "Θ(1)" (taken off) at the level x* where the feature moves
one neuron's class output by 1 (one unit of logit): n_f σ(a x*) = 1; past
it the own-class factor 1 − logit_y starts to decay and growth slows (A2).

Initial maxima: Γ_j(0), Φ_j(0) are maxima of m independent N(0, σ_0²)
variables (N4; the features are orthonormal). Where a condition needs them
this module uses their **expectation** ``σ_0·E[max of m N(0,1)]`` (and, for
the spread over classes, quantiles of that maximum): the regime is then a
property of the Config, and the seeds are the random draws that "with high
probability" is about. Passing ``W0`` (and the features) instead evaluates
RC1, RC4 and RC5 on that seed's actual initial weights: verify uses this to
say which condition explains a failing seed.

The package: ``_base`` (the Condition record, σ scalars, the ODE (∗), initial
maxima), ``initial`` (RC1–RC5), ``learned`` (RC6 and the confusion table);
every name is re-exported here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ._base import (  # noqa: F401
    HIGH_PROB,
    NAMES,
    P1_FACTOR,
    TAKEOFF_MARGIN,
    Condition,
    _integral,
    _sigma,
    _sigma_inv,
    expected_max_normal,
    feature_l1,
    max_normal_quantile,
    takeoff_levels,
)
from .initial import (  # noqa: F401
    eta_max,
    init_l1_max,
    rc1_race,
    rc2_susceptibility,
    rc3_step_size,
    rc4_takeoff,
    rc5_reach,
    takeoff_times,
)
from .learned import RC6_VARIANTS, confusion, format_confusion, rc6_reach, rc6_terms, rc6_values  # noqa: F401

if TYPE_CHECKING:
    import numpy as np

    from ..config import Config


# ---------------------------------------------------------------- all
def conditions(cfg, W0=None, features=None, learned=None) -> list[Condition]:
    """RC1–RC5 for a Config (expected initial maxima), or for a seed's W0
    when ``W0`` and ``features`` = (U, V) are given (RC1, RC4, RC5); and RC6
    (``rc6_reach``, variant "r") when ``learned``, the learned weights W
    (k, m, d) (AT's final W, or a step of its trace), is given."""
    calls = [("RC1", "race", lambda: rc1_race(cfg, W0, features)),
             ("RC2", "susceptibility", lambda: rc2_susceptibility(cfg, features)),
             ("RC3", "step size", lambda: rc3_step_size(cfg)),
             ("RC4", "take-off before T", lambda: rc4_takeoff(cfg, W0, features)),
             ("RC5", "reach of the initial weights", lambda: rc5_reach(cfg, W0))]
    if learned is not None:
        if features is None:
            from ..features import make_features
            features = make_features(cfg)
        calls.append(("RC6", "reach at the learned weights", lambda: rc6_reach(cfg, learned, features)))
    out = []
    for name, title, call in calls:
        try:
            out.append(call())
        except (OverflowError, ZeroDivisionError) as exc:
            # a Config valid but far outside the analysis' scale (e.g. ε = 1e308): the
            # closed forms overflow; the condition is reported as not met, not a crash
            out.append(Condition(name, title, math.nan, math.nan, ">", False,
                                 f"not computable at this Config's magnitudes ({exc})"))
    return out


def regime(cfg: Config, W0: np.ndarray | None = None, features: tuple | None = None,
           learned: np.ndarray | None = None) -> dict:
    """``summary.json["regime"]``: every condition as a dict, and whether all are met
    (RC6 included when ``learned`` is given, see ``conditions``)."""
    conds = conditions(cfg, W0, features, learned)
    return {"conditions": {c.name: c.to_dict() for c in conds},
            "all_met": all(c.met for c in conds),
            "basis": "this seed's W0" if W0 is not None else "expected initial weights"}


def format_regime(cfg, W0=None, features=None, learned=None) -> str:
    """One line per condition (value, threshold, met or not)."""
    return "\n".join(c.line() for c in conditions(cfg, W0, features, learned))
