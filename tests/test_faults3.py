"""Issue 23: reliability, second round — signals that cannot be dropped,
finished work never lost, the API refusing what it cannot answer, bad input
refused before any work.

Signals are sent to real ``python -m reffeat.run`` subprocesses at several
moments; the rest runs in-process.  Run: ``python -m pytest -q tests/test_faults3.py``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reffeat import stopping
from reffeat.cli import run as run_cli
from reffeat.cli.common import SignalPolicy

ROOT = Path(__file__).resolve().parents[1]


def strict_json(path):
    def bad(token):
        raise ValueError(f"non-strict JSON constant {token} in {path}")
    return json.loads(Path(path).read_text(), parse_constant=bad)


# ---------------------------------------------------------------- the stop request
def test_handler_only_records_and_check_raises_once():
    with SignalPolicy() as policy:
        policy._handler(signal.SIGTERM, None)          # what the signal does: nothing raised here
        assert stopping.requested() and policy.exit_code == 143
        with pytest.raises(stopping.Terminated):
            stopping.check()                            # the first safe point raises it
        stopping.check()                                # once: the writing afterwards may finish
        assert stopping.requested()
    stopping.reset()
    stopping.check()                                    # nothing requested: free


def test_signal_inside_interruptible_raises_at_once():
    with SignalPolicy() as policy:
        with pytest.raises(KeyboardInterrupt), stopping.interruptible():
            policy._handler(signal.SIGINT, None)
        assert policy.exit_code == 130
    stopping.reset()


def test_training_stops_at_a_safe_point_and_keeps_its_weights():
    from reffeat import Config, train
    cfg = Config(T=50, n_train=8, n_test=8, P=4, d_N=8, m=2, log_every=10)
    calls = []

    def cb(step):
        calls.append(step.t)
        if step.t == 3:
            stopping.request(signal.SIGINT)             # as the handler does
    try:
        res = train(cfg, "st", callback=cb)
    finally:
        stopping.reset()
    assert res.stopped.startswith("interrupted") and res.steps_done == 4 and calls == [0, 1, 2, 3]
    assert np.isfinite(res.W).all()


def test_failure_during_the_work_is_exit_1_not_bad_input(tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise ValueError("step_size must be > 0")
    monkeypatch.setattr(run_cli, "run_synthetic", boom)
    code = run_cli.main(["--set", "T=2", "--no-figures", "--quiet", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 1 and "the run failed" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- real signals
def _spawn(out: Path, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "reffeat.run", "--set", "n_train=20", "--set", "P=8", "--set", "d_N=8",
            "--set", "log_every=1", "--no-figures", "--out", str(out), *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(out.parent))


def _wait_line(proc, text, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = proc.stderr.readline()
        if text in line:
            return
        if proc.poll() is not None:
            break
    raise AssertionError(f"the run never printed {text!r}")


def test_sigterm_during_evaluation_keeps_the_finished_training(tmp_path):
    """ST's last step logged: its evaluation runs; the signal is recorded, ST is
    evaluated and written, AT stops at its first step; exit 143."""
    out = tmp_path / "o"
    proc = _spawn(out, "--set", "T=2", "--set", "n_test=2000", "--set", "eval_K=60", "--mode", "both")
    _wait_line(proc, "[st] step     2")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 143, err
    assert "Traceback" not in err, err
    s = strict_json(out / "summary.json")
    assert s["interrupted"] is True
    assert s["st"]["stopped"] is None and s["st"]["steps_done"] == 2      # the finished training, kept
    assert (out / "weights_st.npz").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]


def test_a_second_signal_after_the_grace_period_exits_at_once(tmp_path):
    """A long evaluation (no safe point for a while): the first Ctrl-C is noted,
    one after ``stopping.GRACE`` seconds ends the process with 130."""
    out = tmp_path / "o"
    proc = _spawn(out, "--set", "T=2", "--set", "n_test=40000", "--set", "eval_K=400", "--mode", "st")
    _wait_line(proc, "[st] step     2")
    proc.send_signal(signal.SIGINT)
    time.sleep(stopping.GRACE + 1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=900)
    assert proc.returncode == 130, err
    assert "stopped at once" in err and "Traceback" not in err, err
