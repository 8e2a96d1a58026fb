"""M3 — the adversarial examples of standard training follow −v_y.

Claim: on the ST model the one-step gradient-ascent perturbation (T2 with
K=1, γ=ε from the clean point) aligns with −v_y on the non-robust patches
(E3 close to 1, and already so early in training); PGD's perturbation
(E2a) departs from it once the label flips, moving toward the new class's
+v_ŷ. Also reported: the accuracy of ST under the pure −ε·sign(v_y)
perturbation alone vs the targeted feature attack ε·sign(v_j − v_y).

Measured per seed on the final ST model (test set) and at the training
snapshots (training set): E3 per patch type (N, R); E3 of PGD-20 (with the
evaluation's random start) split into label-flipped / not-flipped points;
b = ⟨δ_p, v_ŷ⟩ / (ε‖v_ŷ‖₁) on flipped points (ŷ the PGD prediction);
E3 and b along the PGD iterations. Per seed it holds when the final
one-step E3 on N patches ≥ 0.9 and, on the PGD-flipped points, b ≥ 0.2 and
E3(PGD) ≤ E3(one-step) − 0.1. ``python -m reffeat.verify.m3 --help``.
"""

from __future__ import annotations

import math
import sys

import numpy as np

from reffeat import attack, predict, problem, seeding
from reffeat.distribution import NONROBUST, ROBUST

from .common import ClaimResult, claim_cli, feature_attack_breakdown, rows_check

NAME = "M3"
STATEMENT = ("ST's one-step adversarial perturbations follow −v_y; PGD departs toward the new "
             "class's +v_ŷ once the label flips.")
CRITERIA = ("one-step E3 (N patches, final ST) ≥ 0.9; on PGD-flipped points mean ⟨δ,v_ŷ⟩/(ε‖v_ŷ‖₁) ≥ 0.2 "
            "and E3(PGD) ≤ E3(one-step) − 0.1")
PGD_STEPS = (1, 2, 3, 5, 8, 12, 20)
#: the numbers reported per seed: (label, key of ``analyse_seed``'s row)
QUANTITIES = (
    ("E3 one-step, N patches", "e3_one_N"),
    ("E3 one-step, R patches", "e3_one_R"),
    ("E3 one-step, N, train, 1st cut", "e3_train_N_first_cut"),
    ("E3 PGD-20, all", "e3_pgd"),
    ("PGD-20 flipped fraction", "pgd_flipped"),
    ("E3 PGD-20, flipped points", "e3_pgd_flipped"),
    ("E3 PGD-20, unflipped points", "e3_pgd_kept"),
    ("⟨δ,+v_ŷ⟩ PGD-20, flipped", "b_pgd_flipped"),
    ("ST acc under −ε·sign(v_y)", "acc_minus_vy"),
    ("ST acc under targeted ε·sign(v_j−v_y)", "acc_targeted"),
)


def _align(delta, lab, V, eps, types, which=NONROBUST, sign=-1.0):
    """Mean over patches of type ``which`` of sign·⟨δ_p, v_lab⟩/(ε‖v_lab‖₁) (ℓ∞ form)."""
    v = V[lab]
    dot = sign * np.einsum("ipd,id->ip", delta, v)
    a = dot / (eps * np.abs(v).sum(axis=1))[:, None]
    m = types == which
    return float(a[m].mean()) if m.any() else math.nan


def analyse_seed(st: dict, cfg) -> dict:
    prob = problem(cfg)
    U, V = prob.features
    X, y, types = prob.test
    W = np.asarray(st["W"])
    eps = cfg.eps
    d1 = attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=eps, norm=cfg.norm, steps=1) - X
    out = {"e3_one_N": _align(d1, y, V, eps, types, NONROBUST),
           "e3_one_R": _align(d1, y, V, eps, types, ROBUST)}
    # PGD along its iterations, one random start (the start of the E2a run)
    seed_rng = lambda: seeding.rng(cfg.seed, "probe", 23)
    traj = []
    for s in PGD_STEPS:
        Xa = attack(W, X, y, q=cfg.q, rho=cfg.rho, eps=eps, norm=cfg.norm, steps=s,
                    step_size=cfg.eval_step_size, random_start=True, rng=seed_rng())
        pred = predict(W, Xa, q=cfg.q, rho=cfg.rho)
        flip = pred != y
        dl = Xa - X
        e3 = _align(dl, y, V, eps, types)
        b = _align(dl[flip], pred[flip], V, eps, types[flip], sign=1.0) if flip.any() else math.nan
        traj.append({"steps": s, "flipped": float(flip.mean()), "e3": e3, "b_new_class": b})
    last = traj[-1]
    out["pgd_flipped"] = float(flip.mean())
    out["e3_pgd_flipped"] = _align(dl[flip], y[flip], V, eps, types[flip]) if flip.any() else math.nan
    out["e3_pgd_kept"] = _align(dl[~flip], y[~flip], V, eps, types[~flip]) if (~flip).any() else math.nan
    out["b_pgd_flipped"] = last["b_new_class"]
    out["e3_pgd"] = last["e3"]
    out["pgd_traj"] = traj
    out.update(feature_attack_breakdown(W, X, y, V, cfg))
    out["e3_train_N_path"] = list(st["e3_train_N"])
    out["e3_train_R_path"] = list(st["e3_train_R"])
    out["snap_steps"] = list(st["snap_steps"])
    e3_early = np.asarray(st["e3_train_N"], float)
    out["e3_train_N_first_cut"] = float(e3_early[1]) if len(e3_early) > 1 else math.nan
    b = out["b_pgd_flipped"]
    out["holds"] = bool(out["e3_one_N"] >= 0.9 and np.isfinite(b) and b >= 0.2
                        and out["e3_pgd_flipped"] <= out["e3_one_N"] - 0.1)
    return out


def check(records, cfg) -> ClaimResult:
    rows = [analyse_seed(r["st"], cfg.replace(seed=r["seed"])) for r in records]
    q = lambda key: [x[key] for x in rows]
    res = rows_check(sys.modules[__name__], records, cfg, rows)
    res.extra["pgd_traj"] = [x["pgd_traj"] for x in rows]
    res.extra["e3_train_N_path"] = q("e3_train_N_path")
    res.extra["e3_train_R_path"] = q("e3_train_R_path")
    res.extra["snap_steps"] = q("snap_steps")
    return res


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
