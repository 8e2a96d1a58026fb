"""P3 (SPEC §9): adversarial training strengthens robust learning and
suppresses non-robust learning — Γ_j(AT) ≫ Γ_j(ST), Φ_j(AT) ≪ Φ_j(ST).

Per seed it holds when Γ(AT) ≥ 5·Γ(ST) and Φ(AT) ≤ 0.5·Φ(ST), with Γ, Φ the C2
coefficients (``reffeat.claims``; the verdict over seeds is V1's); ST and AT
share data and W^{(0)}.
``python -m reffeat.verify.p3 --help``.
"""

from __future__ import annotations

import sys

from .common import ClaimResult, claim_cli, table_check

NAME = "P3"
STATEMENT = "AT strengthens robust learning (Γ) and suppresses non-robust learning (Φ)."
CRITERIA = "Γ(AT) ≥ 5·Γ(ST) and Φ(AT) ≤ 0.5·Φ(ST)"
#: the modes whose records the claim reads
MODES = ("st", "at")
#: the numbers reported per seed: (label, (mode, key)) or a ratio (label, (mode, key), (mode, key))
QUANTITIES = (
    ("Γ(AT)", ("at", "gamma")),
    ("Γ(ST)", ("st", "gamma")),
    ("Φ(AT)", ("at", "phi")),
    ("Φ(ST)", ("st", "phi")),
    ("Γ(AT)/Γ(ST)", ("at", "gamma"), ("st", "gamma")),
    ("Φ(AT)/Φ(ST)", ("at", "phi"), ("st", "phi")),
    ("max logged AT loss", ("at", "max_loss")),
)


def check(records, cfg) -> ClaimResult:
    """The verdict of ``reffeat.claims`` on every seed's pair record, with
    QUANTITIES and a note of the seeds whose AT loss blew up."""
    res = table_check(sys.modules[__name__], records, cfg)
    blown = [r["seed"] for r in records if r["at"]["max_loss"] > 10]
    if blown:
        res.notes.append(f"AT loss exceeded 10 (blow-up) on seeds {blown}")
    return res


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
