"""The API reproduces the command: ``Problem.eval_rng`` is the stream ``python -m
reffeat.run`` evaluates with, so ``evaluate`` through the API gives summary.json's
numbers exactly (issue 24)."""
import json
import os
import subprocess
import sys

import pytest

import reffeat as rf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETS = {"T": 20, "n_train": 40, "n_test": 40, "seed": 3}


def test_evaluate_through_the_api_equals_the_command(tmp_path):
    out = tmp_path / "run"
    args = [a for key, value in SETS.items() if key != "seed" for a in ("--set", f"{key}={value}")]
    r = subprocess.run([sys.executable, "-m", "reffeat.run", *args, "--seed", str(SETS["seed"]),
                        "--out", str(out)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())

    cfg = rf.Config(**SETS)
    prob = rf.problem(cfg)
    for mode in ("st", "at"):
        res = rf.train(cfg, mode, prob)
        ev = rf.evaluate(res.W, cfg, prob.test, prob.features, prob.eval_rng(mode))
        assert ev["robust_acc"] == summary[mode]["robust_acc"], mode
        assert ev["clean_acc"] == summary[mode]["clean_acc"], mode


def test_eval_rng_is_fresh_and_checked():
    prob = rf.problem(rf.Config(T=2, n_train=8, n_test=8))
    assert prob.eval_rng("at").random() == prob.eval_rng("at").random()
    assert prob.eval_rng("at").random() != prob.eval_rng("st").random()
    with pytest.raises(ValueError, match="mode must be"):
        prob.eval_rng("xt")
