"""P1 (SPEC §9): standard training learns the non-robust feature, not the
robust one — at the end Φ_j is Θ(1) while Γ_j stays near its initial scale.

Per seed it holds when mean_j Φ_j ≥ 5 · mean_j Γ_j (ST), the threshold of
``reffeat.claims``. ``python -m reffeat.verify.p1 --help``.
"""

from __future__ import annotations

import sys

from .common import ClaimResult, claim_cli, table_check

NAME = "P1"
STATEMENT = "ST learns the non-robust feature, not the robust one (Φ_j Θ(1), Γ_j near init)."
CRITERIA = "Φ(ST) ≥ 5·Γ(ST)  (C2 means over j of max_r)"
#: the modes whose records the claim reads
MODES = ("st",)
#: the numbers reported per seed: (label, (mode, key)) or a ratio (label, (mode, key), (mode, key))
QUANTITIES = (
    ("Φ(ST)", ("st", "phi")),
    ("Γ(ST)", ("st", "gamma")),
    ("Γ at init", ("st", "gamma_init")),
    ("Φ/Γ (ST)", ("st", "phi"), ("st", "gamma")),
)


def check(records, cfg) -> ClaimResult:
    """The verdict of ``reffeat.claims`` on every seed's pair record, with QUANTITIES."""
    return table_check(sys.modules[__name__], records, cfg)


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
