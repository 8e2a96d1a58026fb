"""P1 (SPEC §9): standard training learns the non-robust feature, not the
robust one — at the end Φ_j is Θ(1) while Γ_j stays near its initial scale.

Per seed it holds when mean_j Φ_j ≥ 5 · mean_j Γ_j (ST), the threshold of
``reffeat.claims``. ``python -m reffeat.verify.p1 --help``.
"""

from __future__ import annotations

import sys


from reffeat.claims import claims

from .common import ClaimResult, claim_cli, describe_regime

NAME = "P1"
STATEMENT = "ST learns the non-robust feature, not the robust one (Φ_j Θ(1), Γ_j near init)."
CRITERIA = "Φ(ST) ≥ 5·Γ(ST)  (C2 means over j of max_r)"


def check(records, cfg) -> ClaimResult:
    st = [r["st"] for r in records]
    return ClaimResult(
        NAME, STATEMENT, describe_regime(cfg), [r["seed"] for r in records],
        holds=[claims({"st": s})["P1"] for s in st],
        quantities={"Φ(ST)": [s["phi"] for s in st], "Γ(ST)": [s["gamma"] for s in st],
                    "Γ at init": [s["gamma_init"] for s in st],
                    "Φ/Γ (ST)": [s["phi"] / s["gamma"] for s in st]},
        criteria=CRITERIA)


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
