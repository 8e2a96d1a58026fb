"""Issue 23, second part: bad results files for ``verify --from-results``, data
imports on a full disk or with empty inputs, interruptible worker waits.

Each bad input: exit 2 (or a DataError/ValueError at the API), one line naming
the file and what is wrong, no traceback, no numpy wording, nothing left half
written. Run: ``python -m pytest -q tests/test_faults_23b.py``.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from reffeat.verify import run as verify_run
from reffeat.verify.results_check import ResultsFileError, check_results

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "verify" / "results.json"


@pytest.fixture(scope="module")
def committed():
    if not COMMITTED.is_file():
        pytest.skip("verify/results.json not in this checkout")
    return json.loads(COMMITTED.read_text())


@pytest.fixture(scope="module")
def small(committed):
    """The committed results.json cut to the default regime (what --from-results rebuilds from)."""
    return {"mode": committed["mode"], "timings": committed["timings"],
            "claims": {"default": committed["claims"]["default"]},
            "records": {"default": committed["records"]["default"]}, "phase": None, "variants": None,
            "figures": {}}


def _without(doc, mode, key):
    d = copy.deepcopy(doc)
    for r in d["records"]["default"]["records"]:
        r[mode].pop(key, None)
    return d


def _verify(tmp_path, capsys, doc, *extra):
    f = tmp_path / "in.json"
    f.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    out = tmp_path / "v"
    code = verify_run.main(["--from-results", str(f), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    return code, err, out


def test_the_committed_results_pass_the_check_with_and_without_recheck(committed):
    check_results(committed, "verify/results.json")
    check_results(committed, "verify/results.json", recheck=True)


BAD = [
    ("empty-object", lambda s: {}, "holds no results"),
    ("list", lambda s: [], "must be a JSON object (got a list)"),
    ("number", lambda s: 5, "must be a JSON object (got a number)"),
    ("claims-only", lambda s: {"claims": s["claims"]}, "no per-seed records"),
    ("records-only", lambda s: {"records": s["records"]}, "but no claims"),
    ("regimes-differ", lambda s: {**s, "records": {"q3": s["records"]["default"]}}, "but its records"),
    ("claim-without-keys", lambda s: {**s, "claims": {"default": {"P1": {"name": "P1"}}}}, "lacks statement"),
    ("records-not-list", lambda s: {**s, "records": {"default": {"config": {}, "records": 3}}},
     "non-empty list"),
    ("bad-config", lambda s: {**s, "records": {"default": {**s["records"]["default"], "config": {"k": -1}}}},
     "not a valid Config"),
    ("older-gamma_j", lambda s: _without(s, "st", "gamma_j"), "lacks st.gamma_j"),
    ("older-snap_steps", lambda s: _without(s, "at", "snap_steps"), "lacks at.snap_steps"),
    ("bad-mode", lambda s: {**s, "mode": 7}, "mode must be"),
    ("phase-list", lambda s: {**s, "phase": [1]}, "phase must be an object"),
    ("phase-missing-part", lambda s: {**s, "phase": {"pref": {}}}, "phase diagram pref lacks"),
    ("variants-no-rows", lambda s: {**s, "variants": {"stability": {}}}, "must have rows"),
]


@pytest.mark.parametrize("recheck", [False, True], ids=["plain", "recheck"])
@pytest.mark.parametrize("name, make, match", BAD, ids=[b[0] for b in BAD])
def test_a_results_file_that_cannot_be_rebuilt_is_refused_in_one_line(name, make, match, recheck, small,
                                                                      tmp_path, capsys):
    code, err, out = _verify(tmp_path, capsys, make(small), *(["--recheck"] if recheck else []))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --from-results "), err
    assert "in.json" in err and match in err and "Traceback" not in err, err
    assert not (out / "REPORT.md").exists() and not (out / "results.json").exists()


@pytest.mark.parametrize("key", ["phi", "clean_acc", "alignment", "robust_acc_pgd"])
def test_older_records_lacking_a_key_recheck_reads_are_refused_with_recheck_only(key, small, tmp_path, capsys):
    doc = _without(small, "st", key)
    check_results(doc, "x.json")                               # the stored verdicts: rebuildable
    with pytest.raises(ResultsFileError, match=f"x.json .*reads '{key}'"):
        check_results(doc, "x.json", recheck=True)
    code, err, _ = _verify(tmp_path, capsys, doc, "--recheck")
    assert code == 2 and f"'{key}'" in err and "KeyError" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("text, match", [("not json", "not JSON text"), ("", "not JSON text"),
                                         ("[" * 100000, "not JSON text")], ids=["text", "empty", "deep"])
def test_a_results_file_that_is_not_json_is_refused(text, match, tmp_path, capsys):
    code, err, _ = _verify(tmp_path, capsys, text)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err


def test_a_wrongly_typed_report_value_is_refused_before_writing(small, tmp_path, capsys):
    doc = copy.deepcopy(small)
    doc["records"]["default"]["records"][2]["at"]["gamma_j"] = "high"
    code, err, out = _verify(tmp_path, capsys, doc)
    assert code == 2 and "seed 2" in err and "at.gamma_j must be a number" in err, err
    assert not (out / "REPORT.md").exists()
