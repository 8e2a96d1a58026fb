"""P4 (SPEC §9): adversarial training is accurate and robust — clean ≈ 1
and robust accuracy (E2) far above ST's.

Per seed it holds when robust(AT) ≥ 0.5, robust(AT) ≥ robust(ST) + 0.4 and
clean(AT) ≥ 0.95 (``reffeat.claims``). ``python -m reffeat.verify.p4 --help``.
"""

from __future__ import annotations

import sys

from .common import ClaimResult, claim_cli, table_check

NAME = "P4"
STATEMENT = "AT is accurate and robust (robust accuracy far above ST's)."
CRITERIA = "robust(AT) ≥ 0.5, robust(AT) ≥ robust(ST) + 0.4, clean(AT) ≥ 0.95"
#: the modes whose records the claim reads
MODES = ("st", "at")
#: the numbers reported per seed: (label, (mode, key)) or a ratio (label, (mode, key), (mode, key))
QUANTITIES = (
    ("clean acc (AT)", ("at", "clean_acc")),
    ("robust acc (AT)", ("at", "robust_acc")),
    ("  under PGD", ("at", "robust_acc_pgd")),
    ("  under feature attack", ("at", "robust_acc_feature_attack")),
    ("certified robust acc (AT, E5)", ("at", "certified_robust_acc")),
    ("robust acc (ST)", ("st", "robust_acc")),
)


def check(records, cfg) -> ClaimResult:
    """The verdict of ``reffeat.claims`` on every seed's pair record, with QUANTITIES."""
    return table_check(sys.modules[__name__], records, cfg)


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
