"""P4 (SPEC §9): adversarial training is accurate and robust — clean ≈ 1
and robust accuracy (E2) far above ST's.

Per seed it holds when robust(AT) ≥ 0.5, robust(AT) ≥ robust(ST) + 0.4 and
clean(AT) ≥ 0.95 (``reffeat.claims``). ``python -m reffeat.verify.p4 --help``.
"""

from __future__ import annotations

import sys

from reffeat.claims import claims

from .common import ClaimResult, claim_cli, describe_regime

NAME = "P4"
STATEMENT = "AT is accurate and robust (robust accuracy far above ST's)."
CRITERIA = "robust(AT) ≥ 0.5, robust(AT) ≥ robust(ST) + 0.4, clean(AT) ≥ 0.95"


def check(records, cfg) -> ClaimResult:
    st = [r["st"] for r in records]
    at = [r["at"] for r in records]
    return ClaimResult(
        NAME, STATEMENT, describe_regime(cfg), [r["seed"] for r in records],
        holds=[claims({"st": s, "at": a})["P4"] for s, a in zip(st, at)],
        quantities={"clean acc (AT)": [a["clean_acc"] for a in at],
                    "robust acc (AT)": [a["robust_acc"] for a in at],
                    "  under PGD": [a["robust_acc_pgd"] for a in at],
                    "  under feature attack": [a["robust_acc_feature_attack"] for a in at],
                    "robust acc (ST)": [s["robust_acc"] for s in st]},
        criteria=CRITERIA)


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
