"""reffeat.verify.committed (issue 22): the committed results come back when the
committed code runs again — one synthetic default seed (figures/run_default) and
one short real-image run on synthetic digits (tests/data/committed_real_digits.json)."""

import json

import numpy as np
import pytest

from reffeat.verify import committed


def test_diff_sees_one_ulp_and_a_missing_number():
    summary = json.loads(committed.SYNTHETIC_FILE.read_text())
    base = committed.synthetic_numbers(summary)
    assert {"st.gamma", "at.phi", "at.robust_acc", "at.gamma_j.0", "config.T"} <= set(base)
    tampered = json.loads(json.dumps(summary))
    tampered["at"]["gamma"] = float(np.nextafter(summary["at"]["gamma"], np.inf))
    del tampered["st"]["phi"]
    lines = committed.diff(base, committed.synthetic_numbers(tampered))
    assert len(lines) == 2, lines
    assert lines[0].startswith("at.gamma: committed ") and lines[1].startswith("st.phi: committed ")
    assert committed.diff(base, committed.synthetic_numbers(summary)) == []
    assert committed.diff({"x": 1}, {"x": 1.0}) == [] and committed.diff({"x": True}, {"x": 1}) != []


def test_flatten_leaves_out_timings():
    flat = committed.flatten({"a": {"seconds": [1.0], "loss": [0.5, 0.25]}, "wall_time": 3.0, "b": "x"})
    assert flat == {"a.loss.0": 0.5, "a.loss.1": 0.25, "b": "x"}


def test_committed_files_record_their_code_and_command():
    ref = json.loads(committed.REAL_FILE.read_text())
    for prov in (ref["provenance"], ref["run_provenance"]):
        assert len(prov["commit"]) == 40 and prov["dirty"] is False and prov["command"]
    assert "reffeat.run real" in ref["run_provenance"]["command"]
    assert ref["numbers"]["headline.at.robust"] <= ref["numbers"]["headline.at.clean"]


@pytest.mark.slow
def test_committed_results_come_back():
    """Recomputes both (about 40 s on 2 cores) and lists every number that differs."""
    diffs = committed.check()
    assert not diffs, ("committed results do not come back with this code (regenerate them, "
                       "see python -m reffeat.verify.committed --help):\n" + "\n".join(diffs))
