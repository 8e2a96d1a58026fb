"""V1 and V2: the claims P1–P4 of SPEC §9 as per-seed predicates, and the
verdict over seeds (count, fraction, 95% Wilson interval, wording).

This module is the only definition of the rule; the run command, verify and
the tests all call it. One mechanism for both versions: each version is a
row of ``THRESHOLDS_BY_VERSION`` and the predicates read their thresholds
from it; ``claims(summary, version="V1"|"V2")``.

V1 (pre-registered):

    P1  ST learns the non-robust feature:    Φ(ST) ≥ 5 Γ(ST)
    P2  ST accurate, not robust, aligned:    clean(ST) ≥ 0.95, robust(ST) ≤ 0.1,
                                             one-step E3(ST) ≥ 0.5
    P3  AT strengthens robust, suppresses    Γ(AT) ≥ 5 Γ(ST), Φ(AT) ≤ 0.5 Φ(ST)
        non-robust learning:
    P4  AT accurate and robust:              clean(AT) ≥ 0.95, robust(AT) ≥ 0.5,
                                             robust(AT) ≥ robust(ST) + 0.4

V2 (SPEC §9 V2, fixed before any of its results were seen; never adjusted
after): P1 and P3 as V1;

    P2  V1's P2, and (a) ST's accuracy under the non-robust-direction attack
        alone (E2b, ``st["robust_acc_feature_attack"]``) ≤ 0.1, and (b) of the
        points the E2 worst case flips, ≥ 90% still flip after each successful
        perturbation is projected onto span{v_1..v_k} patch by patch and back
        into the threat set (``st["v_projected_flip_frac"]``, measured by
        ``reffeat.directions.projected_flip_fraction``)
    P4  clean(AT) ≥ 0.95, robust(AT) ≥ 0.9, robust(AT) ≥ robust(ST) + 0.8

Γ, Φ are the C2 means over j of max_r; clean is E1, robust is E2 (a point
counts only if it survives every attack), E3 the one-step alignment. A
measurement V2 needs that the summary lacks (a key absent: a run made
before V2's numbers existed) leaves that claim out of the V2 dict, as a
missing mode does; a measurement present but None (e.g. no flipped point)
counts as not met.

Verdict over N seeds (V1 and V2 alike): "holds" only when the Wilson
interval's lower end is ≥ 0.75 (for N = 20: at least 19 seeds); "holds on
most seeds" when the fraction is ≥ 0.5; otherwise "fails".

>>> claims({"st": {"phi": 1.0, "gamma": 0.1, "clean_acc": 1.0, "robust_acc": 0.0, "alignment": 0.9}})
{'P1': True, 'P2': True}
>>> claims({"st": {"phi": 1.0, "gamma": 0.1, "clean_acc": 1.0, "robust_acc": 0.0, "alignment": 0.9,
...            "robust_acc_feature_attack": 0.0, "v_projected_flip_frac": 0.85}}, version="V2")
{'P1': True, 'P2': False}
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
#: V2 thresholds (SPEC §9 V2): V1's, with P2's two added tests and P4's stricter bars
THRESHOLDS_V2 = {
    **THRESHOLDS,
    "P2_feature_attack_max": 0.1, "P2_projected_flip_min": 0.9,
    "P4_clean_min": 0.95, "P4_robust_min": 0.9, "P4_gain_min": 0.8,
}
VERSIONS = ("V1", "V2")
THRESHOLDS_BY_VERSION = {"V1": THRESHOLDS, "V2": THRESHOLDS_V2}
#: summary keys of ST that only V2's P2 reads (E2b accuracy; the projected-flip fraction)
V2_KEYS = ("robust_acc_feature_attack", "v_projected_flip_frac")
#: one-line statement of each claim, with its criterion (V1)
STATEMENTS = {
    "P1": "ST learns the non-robust feature, not the robust one: Φ(ST) ≥ 5·Γ(ST)",
    "P2": "ST is accurate but not robust, its one-step perturbation aligned with −v_y: "
          "clean ≥ 0.95, robust ≤ 0.1, E3 ≥ 0.5",
    "P3": "AT strengthens robust and suppresses non-robust learning: Γ(AT) ≥ 5·Γ(ST), Φ(AT) ≤ 0.5·Φ(ST)",
    "P4": "AT is accurate and robust: clean ≥ 0.95, robust ≥ 0.5 and ≥ robust(ST) + 0.4",
}
#: the same for V2 (P1, P3 as V1)
STATEMENTS_V2 = {
    **STATEMENTS,
    "P2": "ST is accurate but not robust, its adversarial examples made through the non-robust "
          "directions: V1's P2, and E2b accuracy ≤ 0.1, and ≥ 90% of the E2 flips still flip "
          "projected onto span{v}",
    "P4": "AT is accurate and robust: clean ≥ 0.95, robust ≥ 0.9 and ≥ robust(ST) + 0.8",
}
STATEMENTS_BY_VERSION = {"V1": STATEMENTS, "V2": STATEMENTS_V2}
CLAIMS = ("P1", "P2", "P3", "P4")
#: V1: the claim "holds" when the 95% Wilson lower end reaches this
HOLDS_LOWER = 0.75
MOST_FRACTION = 0.5


#: rounding tolerance of the comparisons: a threshold sum such as robust(ST) + 0.8
#: is not exact in binary (0.06 + 0.8 = 0.8600000000000001 > 43/50), so "a ≥ b"
#: is tested as a ≥ b − 1e-12, far below any accuracy's resolution 1/n_test
_TOL = 1e-12


def _ge(a, b) -> bool:
    return a >= b - _TOL


def _le(a, b) -> bool:
    return a <= b + _TOL


def _thresholds(version: str) -> dict:
    if version not in THRESHOLDS_BY_VERSION:
        raise ValueError(f"version must be one of {', '.join(VERSIONS)} (got {version!r})")
    return THRESHOLDS_BY_VERSION[version]


def p1(st: dict, version: str = "V1") -> bool:
    """P1 on one seed (V1 = V2): Φ(ST) ≥ 5 Γ(ST)."""
    return bool(_ge(st["phi"], _thresholds(version)["P1_phi_over_gamma"] * st["gamma"]))


def p2(st: dict, version: str = "V1") -> bool:
    """P2 on one seed. V1: clean(ST) ≥ 0.95, robust(ST) ≤ 0.1, one-step
    E3(ST) ≥ 0.5. V2: V1's, and E2b accuracy ≤ 0.1 and the projected-flip
    fraction (V2 (b)) ≥ 0.9; KeyError if V2's keys are absent (``claims``
    leaves the claim out then), a None value counts as not met."""
    t = _thresholds(version)
    ok = bool(_le(st["robust_acc"], t["P2_robust_max"]) and _ge(st["clean_acc"], t["P2_clean_min"])
              and st["alignment"] is not None and _ge(st["alignment"], t["P2_alignment_min"]))
    if version == "V2":
        fa, fl = st["robust_acc_feature_attack"], st["v_projected_flip_frac"]
        ok = ok and fa is not None and _le(fa, t["P2_feature_attack_max"]) \
            and fl is not None and _ge(fl, t["P2_projected_flip_min"])
    return bool(ok)


def p3(st: dict, at: dict, version: str = "V1") -> bool:
    """P3 on one seed (V1 = V2): Γ(AT) ≥ 5 Γ(ST) and Φ(AT) ≤ 0.5 Φ(ST)."""
    t = _thresholds(version)
    return bool(_ge(at["gamma"], t["P3_gamma_ratio_min"] * st["gamma"])
                and _le(at["phi"], t["P3_phi_ratio_max"] * st["phi"]))


def p4(st: dict, at: dict, version: str = "V1") -> bool:
    """P4 on one seed. V1: clean(AT) ≥ 0.95, robust(AT) ≥ 0.5 and ≥
    robust(ST) + 0.4. V2: clean(AT) ≥ 0.95, robust(AT) ≥ 0.9 and ≥ robust(ST) + 0.8."""
    t = _thresholds(version)
    return bool(_ge(at["robust_acc"], t["P4_robust_min"])
                and _ge(at["robust_acc"], st["robust_acc"] + t["P4_gain_min"])
                and _ge(at["clean_acc"], t["P4_clean_min"]))


def claims(summary: dict, version: str = "V1") -> dict:
    """P1–P4 of one seed's summary ({"st": ..., "at": ...}) under ``version``
    ("V1" or "V2"); a claim whose mode is missing is left out, and so is
    V2's P2 when the summary lacks its measurements (``V2_KEYS``). Values
    are Python bools."""
    _thresholds(version)
    st, at = summary.get("st"), summary.get("at")
    out = {}
    if st:
        out["P1"] = p1(st, version)
        if version == "V1" or all(key in st for key in V2_KEYS):
            out["P2"] = p2(st, version)
    if st and at:
        out["P3"] = p3(st, at, version)
        out["P4"] = p4(st, at, version)
    return out


def claims_all(summary: dict) -> dict:
    """{"V1": claims(summary, "V1"), "V2": claims(summary, "V2")}: both verdicts of one seed."""
    return {v: claims(summary, v) for v in VERSIONS}


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
    """V1/V2 wording (the same for both): "holds" (Wilson lower end ≥ 0.75), "holds on most seeds"
    (fraction ≥ 0.5), else "fails"; "no seeds" for n = 0."""
    if n <= 0:
        return "no seeds"
    if wilson(successes, n)[0] >= HOLDS_LOWER:
        return "holds"
    if successes / n >= MOST_FRACTION:
        return "holds on most seeds"
    return "fails"


def describe(successes: int, n: int) -> str:
    """'19/20 (0.95, 95% CI 0.76–0.99): holds' — the V1/V2 line used in every table."""
    lo, hi = wilson(successes, n)
    frac = successes / n if n else math.nan
    return f"{successes}/{n} ({frac:.2f}, 95% CI {lo:.2f}–{hi:.2f}): {verdict(successes, n)}"
