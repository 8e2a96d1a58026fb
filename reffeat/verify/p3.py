"""P3 (SPEC §9): adversarial training strengthens robust learning and
suppresses non-robust learning — Γ_j(AT) ≫ Γ_j(ST), Φ_j(AT) ≪ Φ_j(ST).

Per seed it holds when Γ(AT) ≥ 5·Γ(ST) and Φ(AT) ≤ 0.5·Φ(ST), with Γ, Φ the C2
coefficients (``reffeat.claims``; the verdict over seeds is V1's); ST and AT
share data and W^{(0)}.
``python -m reffeat.verify.p3 --help``.
"""

from __future__ import annotations

import sys

from reffeat.claims import claims

from .common import ClaimResult, claim_cli, describe_regime

NAME = "P3"
STATEMENT = "AT strengthens robust learning (Γ) and suppresses non-robust learning (Φ)."
CRITERIA = "Γ(AT) ≥ 5·Γ(ST) and Φ(AT) ≤ 0.5·Φ(ST)"


def check(records, cfg) -> ClaimResult:
    st = [r["st"] for r in records]
    at = [r["at"] for r in records]
    res = ClaimResult(
        NAME, STATEMENT, describe_regime(cfg), [r["seed"] for r in records],
        holds=[claims({"st": s, "at": a})["P3"] for s, a in zip(st, at)],
        quantities={"Γ(AT)": [a["gamma"] for a in at], "Γ(ST)": [s["gamma"] for s in st],
                    "Φ(AT)": [a["phi"] for a in at], "Φ(ST)": [s["phi"] for s in st],
                    "Γ(AT)/Γ(ST)": [a["gamma"] / s["gamma"] for s, a in zip(st, at)],
                    "Φ(AT)/Φ(ST)": [a["phi"] / s["phi"] for s, a in zip(st, at)],
                    "max logged AT loss": [a["max_loss"] for a in at]},
        criteria=CRITERIA)
    blown = [r["seed"] for r, a in zip(records, at) if a["max_loss"] > 10]
    if blown:
        res.notes.append(f"AT loss exceeded 10 (blow-up) on seeds {blown}")
    return res


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
