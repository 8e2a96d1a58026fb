"""P2 (SPEC §9): standard training is accurate but not robust — clean
accuracy ≈ 1, robust accuracy (E2) ≈ 0 — and its gradient-ascent
perturbations align with −v_y (one-step E3 close to 1).

Per seed it holds when clean ≥ 0.95, robust ≤ 0.1 and one-step E3 ≥ 0.5
(``reffeat.claims``). ``python -m reffeat.verify.p2 --help``.
"""

from __future__ import annotations

import sys

from reffeat.claims import claims

from .common import ClaimResult, claim_cli, describe_regime

NAME = "P2"
STATEMENT = "ST is accurate but not robust; its one-step perturbations align with −v_y."
CRITERIA = "clean(ST) ≥ 0.95, robust(ST) ≤ 0.1, one-step E3(ST) ≥ 0.5"


def check(records, cfg) -> ClaimResult:
    st = [r["st"] for r in records]
    return ClaimResult(
        NAME, STATEMENT, describe_regime(cfg), [r["seed"] for r in records],
        holds=[claims({"st": s})["P2"] for s in st],
        quantities={"clean acc (ST)": [s["clean_acc"] for s in st],
                    "robust acc (ST)": [s["robust_acc"] for s in st],
                    "  under PGD": [s["robust_acc_pgd"] for s in st],
                    "  under feature attack": [s["robust_acc_feature_attack"] for s in st],
                    "E3 one-step (ST)": [s["alignment"] for s in st],
                    "E3 PGD (ST)": [s["alignment_pgd"] for s in st]},
        criteria=CRITERIA)


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
