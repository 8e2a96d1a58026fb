"""``python -m reffeat.cli.real_sweep OUT.png RUN_DIR [RUN_DIR ...]``: the table
(markdown, stdout) and the figure of a sweep of real-image runs (each RUN_DIR
holds a results.json of ``python -m reffeat.run real``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..real.figures import sweep_figure, sweep_rows

COLS = ("p", "stride", "center", "m", "q", "epochs", "lr", "lr_schedule", "at", "n_train", "st_clean", "at_clean",
        "at_robust", "at_pgd", "at_apgd_ce", "at_apgd_dlr", "linear_st_clean", "linear_at_robust")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print("error: usage: python -m reffeat.cli.real_sweep OUT.png RUN_DIR [RUN_DIR ...]", file=sys.stderr)
        return 2
    results = []
    for d in argv[1:]:
        path = Path(d) / "results.json"
        if not path.is_file():
            print(f"error: RUN_DIR {d} holds no results.json", file=sys.stderr)
            return 2
        results.append(json.loads(path.read_text()))
    rows = sweep_rows(results)
    fmt = lambda v: "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))
    print("| " + " | ".join(COLS) + " |")
    print("|" + "---|" * len(COLS))
    for r in rows:
        print("| " + " | ".join(fmt(r[c]) for c in COLS) + " |")
    ds = results[0]["config"]["dataset"]
    ntr = sorted({r["n_train"] for r in rows})
    sweep_figure(rows, Path(argv[0]), f"{ds}: the N3 family over the options tried (ε = "
                 f"{results[0]['config']['eps']:g} ℓ∞, {', '.join(map(str, ntr))} training images, "
                 f"seed {results[0]['config']['seed']}; robust = worst case of PGD, APGD-CE, APGD-DLR)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
