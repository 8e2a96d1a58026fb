"""The check of a results.json before ``python -m reffeat.verify --from-results
FILE`` rebuilds a report from it (issue 23).

A file that cannot be rebuilt is refused before anything is written, with one
line naming the file and what is wrong (``ResultsFileError``, a ValueError;
the command exits 2): not JSON, not a JSON object (``[]``), nothing to report
(``{}``, an empty ``claims``), claims without the per-seed records their
report and figures are drawn from (a claims-only file), a regime's records
missing from the claims or the other way round, per-seed records written by an
older reffeat that lack a key the report, the figures or (with ``--recheck``)
the claim checks read, phase diagrams and variant tables without their keys.

With ``recheck`` the claim checks P1–P4, M1, M2 are run once on the stored
records here (a dry run: ~1 s for the committed verify/results.json), so a key
or value they cannot use is named here, not met as a KeyError afterwards.
"""

from __future__ import annotations

import json
from numbers import Real

MODES = ("st", "at")
#: keys of one stored claim (``ClaimResult.to_dict``) that ``load_results`` reads
CLAIM_KEYS = ("name", "statement", "regime", "seeds", "holds", "quantities", "criteria")
#: per-seed record keys the report's text reads (findings, failing seeds): numbers or lists of numbers
REPORT_KEYS = {"st": ("gamma", "gamma_j"), "at": ("robust_acc", "gamma", "gamma_j", "max_loss")}
#: per-seed record keys figure M2 reads for records that carry the C4 parts
M2_FIGURE_KEYS = ("snap_steps", "e3_train_N")
#: keys of each phase diagram (``verify.sweeps``) that its figure and ``load_results`` read
PHASE_KEYS = {
    "pref": ("q", "P", "ratio", "s", "phi_over_gamma"),
    "susc": ("eps", "d_N", "beta", "robust_acc", "clean_acc"),
    "atsucc": ("eps", "alpha_ratio", "d_N", "beta", "leverage_boundary", "at_robust_acc", "phi_ratio",
               "st_phi", "st_gamma", "at_gamma", "blew_up", "P4"),
}


class ResultsFileError(ValueError):
    """A results.json that ``--from-results`` cannot rebuild a report from (one line)."""


def _kind(v) -> str:
    return "null" if v is None else {dict: "an object", list: "a list", str: "text", bool: "true/false"}.get(
        type(v), "a number" if isinstance(v, Real) else type(v).__name__)


def _numeric(v) -> bool:
    """A number (or null, NaN stored as null) or a (nested) list of them."""
    if v is None or (isinstance(v, Real) and not isinstance(v, bool)):
        return True
    if isinstance(v, list):
        return all(_numeric(x) for x in v)
    return False


def read_results(path) -> object:
    """The parsed JSON of ``path``; ResultsFileError (one line) if it is not JSON text."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise ResultsFileError(f"--from-results {path}: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ResultsFileError(f"--from-results {path} is not a results.json written by python -m "
                               f"reffeat.verify: not JSON text ({first})") from None


def check_results(obj, path, recheck: bool = False) -> None:
    """Raise ResultsFileError (a ValueError, one line naming ``path`` and what is
    wrong) unless ``obj``, the parsed results.json at ``path``, holds what
    ``--from-results`` (and with ``recheck`` ``--recheck``) rebuilds from."""
    try:
        _check(obj, recheck)
    except ResultsFileError as exc:
        what = " ".join(str(exc).split())
        raise ResultsFileError(f"--from-results {path} is not a results.json written by python -m "
                               f"reffeat.verify that this version can rebuild a report from: {what}") from None


def _fail(text: str):
    raise ResultsFileError(text)


def _check(d, recheck: bool) -> None:
    if not isinstance(d, dict):
        _fail(f"it must be a JSON object (got {_kind(d)})")
    if d.get("mode", "full") not in ("full", "quick"):
        _fail(f"its mode must be \"full\" or \"quick\" (got {d.get('mode')!r})")
    timings = d.get("timings", {})
    if not isinstance(timings, dict) or not all(_numeric(v) and not isinstance(v, list) for v in timings.values()):
        _fail("its timings must be an object of section -> seconds")
    claims, records = d.get("claims") or {}, d.get("records") or {}
    phase, var = d.get("phase"), d.get("variants")
    for key, v in (("claims", claims), ("records", records)):
        if not isinstance(v, dict):
            _fail(f"its {key} must be an object of regime -> ... (got {_kind(v)})")
    if not claims and not records and not phase and not var:
        _fail("it holds no results (no claims, records, phase diagrams or variants)")
    if claims or records:
        _check_claims(claims, records, recheck)
    if phase:
        _check_phase(phase)
    if var:
        _check_variants(var)


def _check_claims(claims: dict, records: dict, recheck: bool) -> None:
    if not records:
        _fail(f"it has claims ({', '.join(map(str, claims))}) but no per-seed records (\"records\"), "
              "which the report and the figures are drawn from")
    if not claims:
        _fail(f"it has per-seed records ({', '.join(map(str, records))}) but no claims")
    if set(claims) != set(records):
        _fail(f"its claims cover the regimes {sorted(claims)} but its records {sorted(records)}")
    from reffeat import Config
    for reg, by in claims.items():
        if not isinstance(by, dict) or not by:
            _fail(f"its claims of regime {reg!r} must be an object of claim name -> result")
        for name, c in by.items():
            if not isinstance(c, dict):
                _fail(f"claim {name} of regime {reg!r} must be an object (got {_kind(c)})")
            missing = [k for k in CLAIM_KEYS if k not in c]
            if missing:
                _fail(f"claim {name} of regime {reg!r} lacks {', '.join(missing)}")
            if not isinstance(c["quantities"], dict) or not all(isinstance(v, list) for v in c["quantities"].values()):
                _fail(f"claim {name} of regime {reg!r}: quantities must be an object of name -> list")
            if not isinstance(c["seeds"], list) or not isinstance(c["holds"], list):
                _fail(f"claim {name} of regime {reg!r}: seeds and holds must be lists")
    main = "default" if "default" in claims else next(iter(claims))
    if "M3" not in claims[main]:
        _fail(f"its claims of regime {main!r} lack M3 (figure M3 is drawn from it)")
    configs = {}
    for reg, v in records.items():
        if not isinstance(v, dict) or "config" not in v or "records" not in v:
            _fail(f"its records of regime {reg!r} must be an object with config and records")
        try:
            configs[reg] = Config.from_dict(v["config"])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            _fail(f"the config of regime {reg!r} is not a valid Config ({' '.join(str(exc).split())})")
        recs = v["records"]
        if not isinstance(recs, list) or not recs:
            _fail(f"its records of regime {reg!r} must be a non-empty list of per-seed records")
        for i, r in enumerate(recs):
            _check_record(reg, i, r)
    if recheck:
        _dry_recheck(records, configs)


def _check_record(reg: str, i: int, r) -> None:
    where = f"record {i} of regime {reg!r}"
    if not isinstance(r, dict) or not isinstance(r.get("seed"), int) or isinstance(r.get("seed"), bool):
        _fail(f"{where} must be an object with an integer seed")
    where = f"the record of seed {r['seed']} in regime {reg!r}"
    for mode in MODES:
        if not isinstance(r.get(mode), dict):
            _fail(f"{where} lacks its {mode.upper()} part (an object)")
    for mode, keys in REPORT_KEYS.items():
        missing = [k for k in keys if k not in r[mode]]
        if missing:
            _fail(f"{where} lacks {mode}.{', '.join(missing)} (written by an older reffeat?)")
        bad = [k for k in keys if not _numeric(r[mode][k])]
        if bad:
            _fail(f"{where}: {mode}.{bad[0]} must be a number or a list of numbers (got {_kind(r[mode][bad[0]])})")
    if r["at"].get("c4_phi_sum") is not None:
        missing = [k for k in M2_FIGURE_KEYS if k not in r["at"]]
        if missing:
            _fail(f"{where} lacks at.{', '.join(missing)}, which figure M2 draws (written by an older reffeat?)")


def _dry_recheck(records: dict, configs: dict) -> None:
    """Run the claim checks --recheck runs (all but M3) on the stored records."""
    from . import m3
    from .text import CLAIM_MODULES
    for reg, v in records.items():
        recs = v["records"]                       # as load_results gives them to the checks
        for mod in CLAIM_MODULES:
            if mod is m3:
                continue
            try:
                mod.check(recs, configs[reg])
            except KeyError as exc:
                _fail(f"--recheck: claim {mod.NAME} reads {exc.args[0]!r}, which the records of regime "
                      f"{reg!r} lack (written by an older reffeat?)")
            except (TypeError, ValueError, IndexError, AttributeError, ArithmeticError) as exc:
                _fail(f"--recheck: the records of regime {reg!r} cannot be re-judged by claim {mod.NAME} "
                      f"({type(exc).__name__}: {' '.join(str(exc).split())})")


def _check_phase(phase) -> None:
    if not isinstance(phase, dict):
        _fail(f"its phase must be an object of diagram -> results (got {_kind(phase)})")
    for part, keys in PHASE_KEYS.items():
        sw = phase.get(part)
        if not isinstance(sw, dict):
            _fail(f"its phase diagrams lack {part} (an object)")
        missing = [k for k in keys if k not in sw]
        if missing:
            _fail(f"its phase diagram {part} lacks {', '.join(missing)}")


def _check_variants(var) -> None:
    if not isinstance(var, dict) or not isinstance(var.get("stability"), dict):
        _fail("its variants must be an object with a stability table")
    for name, table in var.items():
        rows = table.get("rows") if isinstance(table, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) and "label" in r and "runs" in r
                                                 for r in rows):
            _fail(f"its variant table {name} must have rows, each with a label and runs")
