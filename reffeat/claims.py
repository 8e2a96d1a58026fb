"""V1: the claims P1–P4 of SPEC §9 as per-seed predicates, and the verdict
over seeds (count, fraction, 95% Wilson interval, wording).

This module is the only definition of the rule; the run command, verify and
the tests all call it.

    P1  ST learns the non-robust feature:    Φ(ST) ≥ 5 Γ(ST)
    P2  ST accurate, not robust, aligned:    clean(ST) ≥ 0.95, robust(ST) ≤ 0.1,
                                             one-step E3(ST) ≥ 0.5
    P3  AT strengthens robust, suppresses    Γ(AT) ≥ 5 Γ(ST), Φ(AT) ≤ 0.5 Φ(ST)
        non-robust learning:
    P4  AT accurate and robust:              clean(AT) ≥ 0.95, robust(AT) ≥ 0.5,
                                             robust(AT) ≥ robust(ST) + 0.4

Γ, Φ are the C2 means over j of max_r; clean is E1, robust is E2 (a point
counts only if it survives every attack), E3 the one-step alignment.

Verdict over N seeds (V1): "holds" only when the Wilson interval's lower end
is ≥ 0.75 (for N = 20: at least 19 seeds); "holds on most seeds" when the
fraction is ≥ 0.5; otherwise "fails".

>>> claims({"st": {"phi": 1.0, "gamma": 0.1, "clean_acc": 1.0, "robust_acc": 0.0, "alignment": 0.9}})
{'P1': True, 'P2': True}
>>> verdict(19, 20)
'holds'
>>> verdict(18, 20)
'holds on most seeds'
"""

from __future__ import annotations

import math

#: V1 thresholds (SPEC §9), in one place.
THRESHOLDS = {
    "P1_phi_over_gamma": 5.0,
    "P2_clean_min": 0.95, "P2_robust_max": 0.1, "P2_alignment_min": 0.5,
    "P3_gamma_ratio_min": 5.0, "P3_phi_ratio_max": 0.5,
    "P4_clean_min": 0.95, "P4_robust_min": 0.5, "P4_gain_min": 0.4,
}
#: one-line statement of each claim, with its criterion
STATEMENTS = {
    "P1": "ST learns the non-robust feature, not the robust one: Φ(ST) ≥ 5·Γ(ST)",
    "P2": "ST is accurate but not robust, its one-step perturbation aligned with −v_y: "
          "clean ≥ 0.95, robust ≤ 0.1, E3 ≥ 0.5",
    "P3": "AT strengthens robust and suppresses non-robust learning: Γ(AT) ≥ 5·Γ(ST), Φ(AT) ≤ 0.5·Φ(ST)",
    "P4": "AT is accurate and robust: clean ≥ 0.95, robust ≥ 0.5 and ≥ robust(ST) + 0.4",
}
CLAIMS = ("P1", "P2", "P3", "P4")
#: V1: the claim "holds" when the 95% Wilson lower end reaches this
HOLDS_LOWER = 0.75
MOST_FRACTION = 0.5


def p1(st: dict) -> bool:
    """P1 on one seed: Φ(ST) ≥ 5 Γ(ST)."""
    return bool(st["phi"] >= THRESHOLDS["P1_phi_over_gamma"] * st["gamma"])


def p2(st: dict) -> bool:
    """P2 on one seed: clean(ST) ≥ 0.95, robust(ST) ≤ 0.1, one-step E3(ST) ≥ 0.5."""
    t = THRESHOLDS
    return bool(st["robust_acc"] <= t["P2_robust_max"] and st["clean_acc"] >= t["P2_clean_min"]
                and st["alignment"] is not None and st["alignment"] >= t["P2_alignment_min"])


def p3(st: dict, at: dict) -> bool:
    """P3 on one seed: Γ(AT) ≥ 5 Γ(ST) and Φ(AT) ≤ 0.5 Φ(ST)."""
    t = THRESHOLDS
    return bool(at["gamma"] >= t["P3_gamma_ratio_min"] * st["gamma"]
                and at["phi"] <= t["P3_phi_ratio_max"] * st["phi"])


def p4(st: dict, at: dict) -> bool:
    """P4 on one seed: clean(AT) ≥ 0.95, robust(AT) ≥ 0.5 and ≥ robust(ST) + 0.4."""
    t = THRESHOLDS
    return bool(at["robust_acc"] >= t["P4_robust_min"]
                and at["robust_acc"] >= st["robust_acc"] + t["P4_gain_min"]
                and at["clean_acc"] >= t["P4_clean_min"])


def claims(summary: dict) -> dict:
    """P1–P4 of one seed's summary ({"st": ..., "at": ...}); a claim whose mode
    is missing is left out. Values are Python bools."""
    st, at = summary.get("st"), summary.get("at")
    out = {}
    if st:
        out["P1"] = p1(st)
        out["P2"] = p2(st)
    if st and at:
        out["P3"] = p3(st, at)
        out["P4"] = p4(st, at)
    return out


def wilson(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval (lo, hi) for a binomial fraction; (nan, nan) for n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def verdict(successes: int, n: int) -> str:
    """V1 wording: "holds" (Wilson lower end ≥ 0.75), "holds on most seeds"
    (fraction ≥ 0.5), else "fails"; "no seeds" for n = 0."""
    if n <= 0:
        return "no seeds"
    if wilson(successes, n)[0] >= HOLDS_LOWER:
        return "holds"
    if successes / n >= MOST_FRACTION:
        return "holds on most seeds"
    return "fails"


def describe(successes: int, n: int) -> str:
    """'19/20 (0.95, 95% CI 0.76–0.99): holds' — the V1 line used in every table."""
    lo, hi = wilson(successes, n)
    frac = successes / n if n else math.nan
    return f"{successes}/{n} ({frac:.2f}, 95% CI {lo:.2f}–{hi:.2f}): {verdict(successes, n)}"
