"""P2 (SPEC §9): standard training is accurate but not robust — clean
accuracy ≈ 1, robust accuracy (E2) ≈ 0 — and its gradient-ascent
perturbations align with −v_y (one-step E3 close to 1).

Per seed it holds when clean ≥ 0.95, robust ≤ 0.1 and one-step E3 ≥ 0.5
(``reffeat.claims``). ``python -m reffeat.verify.p2 --help``.
"""

from __future__ import annotations

import sys

from .common import ClaimResult, claim_cli, table_check

NAME = "P2"
STATEMENT = "ST is accurate but not robust; its one-step perturbations align with −v_y."
CRITERIA = "clean(ST) ≥ 0.95, robust(ST) ≤ 0.1, one-step E3(ST) ≥ 0.5"
#: the modes whose records the claim reads
MODES = ("st",)
#: the numbers reported per seed: (label, (mode, key)) or a ratio (label, (mode, key), (mode, key))
QUANTITIES = (
    ("clean acc (ST)", ("st", "clean_acc")),
    ("robust acc (ST)", ("st", "robust_acc")),
    ("  under PGD", ("st", "robust_acc_pgd")),
    ("  under feature attack", ("st", "robust_acc_feature_attack")),
    ("E3 one-step (ST)", ("st", "alignment")),
    ("E3 PGD (ST)", ("st", "alignment_pgd")),
)


def check(records, cfg) -> ClaimResult:
    """The verdict of ``reffeat.claims`` on every seed's pair record, with QUANTITIES."""
    return table_check(sys.modules[__name__], records, cfg)


def main(argv=None) -> int:
    return claim_cli(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
