"""M2 — why adversarial training suppresses the non-robust feature.

Claim: during AT, once the adversarial examples align with −v_y (E3 of the
training perturbation ≥ 0.5), the other-class part of the C4 decomposition of
ΔΦ is negative and larger in size than the own-class part — i.e. the
suppression of Φ comes from adversarial examples of *other* classes.

Measured per seed on the AT run: E3 (one-step, non-robust patches, training
set) at the snapshots, and the C4 parts of ΔΦ_{j,r} summed over r and
averaged over j, accumulated over the window [t_align, T) where t_align is
the first snapshot with E3 ≥ 0.5. Per seed it holds when the window exists,
Σ other-class < 0 and |Σ other-class| > |Σ own-class|.

Arithmetic that decides the sign (F2 geometry, σ_ξ = 0): on a non-robust
patch of an own-class sample the adversarial input is β v_j + δ_p; if
δ_p = −ε·sign(v_j) its v_j-coordinate is β − ε√d_N, negative when
ε√d_N > β (defaults: 1 − 1.131 = −0.131) — so own-class samples alone can
push Φ_j down; an other-class sample contributes ⟨δ_p, v_j⟩, which is 0 for a
pure −ε·sign(v_y) perturbation (Hadamard rows are orthogonal) and non-zero
only when δ_p also carries ±v_j. ``python -m reffeat.verify.m2 --help``.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from .common import ClaimResult, claim_cli, rows_check

NAME = "M2"
STATEMENT = ("During AT the other-class C4 part of ΔΦ is negative and larger than the own-class "
             "part once adversarial examples align with −v_y.")
CRITERIA = ("over steps after the first snapshot with training E3 ≥ 0.5: Σ other-class C4(Φ) < 0 "
            "and |Σ other| > |Σ own| (summed over r, mean over j)")
ALIGN = 0.5
#: the numbers reported per seed: (label, key of ``analyse_seed``'s row)
QUANTITIES = (
    ("E3 train (AT), final", "e3_final"), ("E3 train (AT), max", "e3_max"),
    ("t_align (E3 ≥ 0.5)", "t_align"),
    ("ΣΔΦ own-class (window)", "own"), ("ΣΔΦ other-class (window)", "other"),
    ("|other| / |own| (window)", "ratio"), ("net ΣΔΦ (window)", "net"),
    ("  own N", "own_N"), ("  own R", "own_R"), ("  other N", "other_N"), ("  other R", "other_R"),
    ("ΣΔΦ own-class (whole run)", "own_all"), ("ΣΔΦ other-class (whole run)", "other_all"),
)


def analyse_seed(at: dict) -> dict:
    e3 = np.asarray(at["e3_train_N"], dtype=float)
    steps = list(at["snap_steps"])
    parts = np.asarray(at["c4_phi_sum"]).mean(axis=3)                # (S, 2, 3)
    hit = np.nonzero(np.nan_to_num(e3, nan=-1) >= ALIGN)[0]
    out = {"e3_final": float(e3[-1]), "e3_max": float(np.nanmax(e3)),
           "t_align": math.nan, "own": math.nan, "other": math.nan, "own_N": math.nan,
           "own_R": math.nan, "other_N": math.nan, "other_R": math.nan, "ratio": math.nan,
           "net": math.nan, "holds": False}
    whole = parts.sum(axis=0)
    out.update({"own_all": float(whole[0].sum()), "other_all": float(whole[1].sum())})
    if hit.size == 0 or len(parts) == 0:
        return out
    t0 = steps[hit[0]]
    win = parts[t0:].sum(axis=0)                                    # (2, 3)
    own, other = float(win[0].sum()), float(win[1].sum())
    out.update({"t_align": float(t0), "own": own, "other": other, "own_N": float(win[0, 1]),
                "own_R": float(win[0, 0]), "other_N": float(win[1, 1]), "other_R": float(win[1, 0]),
                "ratio": abs(other) / abs(own) if own != 0 else math.inf,
                "net": own + other,
                "holds": bool(other < 0 and abs(other) > abs(own))})
    return out


def check(records, cfg) -> ClaimResult:
    rows = [analyse_seed(r["at"]) for r in records]
    res = rows_check(sys.modules[__name__], records, cfg, rows)
    never = [r["seed"] for r, x in zip(records, rows) if not np.isfinite(x["t_align"])]
    if never:
        res.notes.append(f"training E3 never reached {ALIGN} on seeds {never} (no window: counts as not holding)")
    return res


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
