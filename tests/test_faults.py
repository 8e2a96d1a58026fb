"""Issue 12: every tried bad input and fault, handled as promised.

Commands: exit 2 with one line ``error: ...`` naming the option or key and its
allowed range, no traceback, nothing written (checked before any work);
Ctrl-C exits 130 and SIGTERM 143 with completed results kept; diverging
training stops with its results kept as strict JSON. The API: ValueError
naming the argument. Commands run in-process (``main(argv)``) except where a
real signal is needed.

Run: ``python -m pytest -q tests/test_faults.py``.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from reffeat import Config, attack, forward, grad_w, init_weights, loss
from reffeat.cli import bench as bench_cli
from reffeat.cli import data as data_cli
from reffeat.cli import real as real_cli
from reffeat.cli import run as run_cli
from reffeat.cli import sweep as sweep_cli
from reffeat.cli.common import OutputLock
from reffeat.real.train import ImageTrainConfig
from reffeat.verify import p1 as verify_p1
from reffeat.verify import run as verify_run

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"run": run_cli.main, "real": real_cli.main, "data": data_cli.main,
            "verify": verify_run.main, "bench": bench_cli.main, "p1": verify_p1.main,
            "sweep": sweep_cli.main}
TINY = ["--set", "T=2", "--set", "n_train=8", "--set", "n_test=8", "--set", "P=4", "--set", "d_N=8",
        "--set", "m=2", "--set", "eval_K=2", "--set", "log_every=1", "--no-figures", "--quiet"]


def strict_json(path):
    """json.loads that refuses NaN/Infinity (a strict parser's view)."""
    def bad(token):
        raise ValueError(f"non-strict JSON constant {token} in {path}")
    return json.loads(Path(path).read_text(), parse_constant=bad)


def files_under(root: Path) -> set:
    """Everything under root except $HOME and $REFFEAT_DATA (matplotlib's cache lives there)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.relative_to(root).parts[0] not in ("home", "env-data")}


@pytest.fixture
def place(tmp_path, monkeypatch):
    """A working folder with the files the cases refer to; no real data visible."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env-data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "F").write_text("a file\n")
    (tmp_path / "D").mkdir()
    (tmp_path / "bin.toml").write_bytes(b"\x00\x01\xff\xfe\x80binary")
    (tmp_path / "c5.toml").write_text("config = 5\n")
    (tmp_path / "mixed.toml").write_text("k = 3\n[config]\nT = 2\n")
    (tmp_path / "nj.json").write_text("this is not json\n")
    (tmp_path / "other.json").write_text('{"claims": {"x": 5}}\n')
    (tmp_path / "notarchive.txt").write_text("hello\n")
    (tmp_path / "grid.toml").write_text("seeds = 1\n[base]\nT = 1\n[grid]\neta = [0.1]\n")
    return tmp_path


def run_cmd(cmd, argv, capsys):
    rc = COMMANDS[cmd](argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


# (id, command, argv, expected exit code, fragment of the one error line)
CLI_CASES = [
    # unusable output paths: one line, exit 2, before any work
    ("run-out-file", "run", ["--out", "F"], 2, "--out F exists and is not a directory"),
    ("run-out-proc", "run", ["--out", "/proc/x"], 2, "--out /proc/x is not a writable directory"),
    ("run-out-sys", "run", ["--out", "/sys/x"], 2, "--out /sys/x is not a writable directory"),
    ("run-out-file-sub", "run", ["--out", "F/sub"], 2, "F is a file, not a directory"),
    ("run-out-devnull", "run", ["--out", "/dev/null"], 2, "--out /dev/null exists and is not a directory"),
    ("run-out-empty", "run", ["--out", ""], 2, "--out must be a directory path (got '')"),
    ("real-out-file", "real", ["--dataset", "mnist", "--out", "F"], 2, "--out F exists and is not a directory"),
    ("real-out-proc", "real", ["--dataset", "mnist", "--out", "/proc/x"], 2, "--out /proc/x is not a writable"),
    ("real-out-empty", "real", ["--dataset", "mnist", "--out", ""], 2, "--out must be a directory path"),
    ("real-figures-dir-file", "real", ["--dataset", "mnist", "--out", "o", "--figures-dir", "F"], 2,
     "--figures-dir F exists and is not a directory"),
    ("fetch-dir-file", "data", ["fetch", "mnist", "--dir", "F"], 2, "--dir F exists and is not a directory"),
    ("fetch-dir-proc", "data", ["fetch", "mnist", "--dir", "/proc/x"], 2, "--dir /proc/x is not a writable"),
    ("verify-from-results-missing", "verify", ["--from-results", "nope.json", "--out", "v"], 2,
     "--from-results nope.json: no such file"),
    ("verify-from-results-not-json", "verify", ["--from-results", "nj.json", "--out", "v"], 2,
     "is not a results.json written by python -m reffeat.verify"),
    ("verify-from-results-wrong-json", "verify", ["--from-results", "other.json", "--out", "v"], 2,
     "is not a results.json written by python -m reffeat.verify"),
    ("verify-report-proc", "verify", ["--report", "/proc/x/REPORT.md", "--out", "v"], 2,
     "--report /proc/x is not a writable directory"),
    ("verify-figures-file", "verify", ["--figures", "F", "--out", "v"], 2, "--figures"),
    ("verify-out-empty", "verify", ["--out", ""], 2, "--out must be a directory path"),
    # config files
    ("config-dir", "run", ["--config", "D"], 2, "config file D is a directory"),
    ("config-missing", "run", ["--config", "none.toml"], 2, "config file not found: none.toml"),
    ("config-5", "run", ["--config", "c5.toml"], 2, "'config' must be a [config] table"),
    ("config-mixed", "run", ["--config", "mixed.toml"], 2, "has keys both at the top level (k)"),
    ("config-binary", "run", ["--config", "bin.toml"], 2, "config file bin.toml is not valid TOML"),
    # sizes beyond memory: refused with the figure and what the machine has
    ("mem-n_train", "run", ["--set", "n_train=1000000000"], 2, "GB of memory; this machine has"),
    ("mem-m", "run", ["--set", "m=1000000000"], 2, "GB of memory; this machine has"),
    ("mem-P", "run", ["--set", "P=10000000"], 2, "GB of memory; this machine has"),
    ("mem-k-dN", "run", ["--set", "k=100000", "--set", "d_N=131072"], 2, "GB of memory; this machine has"),
    ("mem-p1", "p1", ["--set", "n_train=1000000000"], 2, "GB of memory; this machine has"),
    ("mem-real-m", "real", ["--dataset", "mnist", "--m", "1000000000"], 2, "GB of memory; this machine has"),
    # --set and option values
    ("set-no-equals", "run", ["--set", "foo"], 2, "--set must be KEY=VALUE"),
    ("set-unknown", "run", ["--set", "foo=1"], 2, "unknown config key 'foo'"),
    ("set-bool-for-int", "run", ["--set", "T=True"], 2, "T must be an integer >= 0 (got 'True')"),
    ("set-eps-inf", "run", ["--set", "eps=inf"], 2, "eps must be a finite number > 0"),
    ("run-seed-negative", "run", ["--seed", "-1"], 2, "--seed must be an integer in [0, 4294967295]"),
    ("p1-set-unknown", "p1", ["--set", "foo=1"], 2, "unknown config key 'foo'"),
    ("p1-seeds-0", "p1", ["--seeds", "0"], 2, "--seeds must be an integer"),
    # run real: every option checked before the data is loaded (there is no data here)
    ("real-classes-one", "real", ["--dataset", "mnist", "--classes", "3"], 2,
     "--classes must be a list of at least 2 distinct integers in [0, 9]"),
    ("real-classes-range", "real", ["--dataset", "mnist", "--classes", "3,12"], 2, "--classes must be"),
    ("real-eps-grid-inf", "real", ["--dataset", "mnist", "--eps-grid", "0,inf"], 2,
     "--eps-grid must be a list of finite numbers >= 0"),
    ("real-radius-inf", "real", ["--dataset", "mnist", "--radius", "inf"], 2,
     "--radius must be a finite number >= 0"),
    ("real-sigma0-0", "real", ["--dataset", "mnist", "--sigma0", "0"], 2, "--sigma0 must be a finite number > 0"),
    ("real-eps-huge-fraction", "real", ["--dataset", "mnist", "--eps", "1/0"], 2, "--eps must be"),
    ("real-epochs-bool", "real", ["--dataset", "mnist", "--epochs", "True"], 2, "--epochs must be an integer"),
    ("real-quick-eval-restarts", "real", ["--dataset", "mnist", "--quick", "--eval-restarts", "-1"], 2,
     "--eval-restarts must be an integer >= 0"),
    ("real-patch-divides", "real", ["--dataset", "mnist", "--patch", "5"], 2, "--patch must divide"),
    ("real-no-data", "real", ["--dataset", "mnist", "--data-dir", "D", "--out", "o"], 2, "python -m reffeat.data"),
    # data
    ("data-no-command", "data", [], 2, "fetch"),
    ("fetch-not-archive", "data", ["fetch", "mnist", "--dir", "d", "--from", "notarchive.txt", "--quiet"], 2,
     "not a readable .tar"),
    ("fetch-test-fraction", "data", ["fetch", "mnist", "--test-fraction", "1.5"], 2,
     "--test-fraction must be a finite number in (0, 1)"),
    ("fetch-seed-negative", "data", ["fetch", "mnist", "--seed", "-1"], 2, "--seed must be an integer"),
    ("fetch-unknown-name", "data", ["fetch", "imagenet"], 2, "invalid choice"),
    # verify and bench
    ("verify-workers-0", "verify", ["--workers", "0"], 2, "--workers must be an integer in [1, 256]"),
    ("verify-workers-neg", "verify", ["--workers", "-1"], 2, "--workers must be an integer in [1, 256]"),
    ("verify-recheck-alone", "verify", ["--recheck"], 2, "--recheck needs --from-results"),
    ("bench-ref-reps-0", "bench", ["--ref-reps", "0"], 2, "--ref-reps must be an integer in [1, 10000]"),
    ("bench-reps-3", "bench", ["--reps", "3"], 2, "--reps must be an integer in [5, 10000]"),
    ("sweep-out-file", "sweep", ["grid.toml", "--out", "F"], 2, "--out F exists and is not a directory"),
    ("sweep-store-proc", "sweep", ["grid.toml", "--out", "o", "--store", "/proc/x"], 2,
     "--store /proc/x is not a writable directory"),
    ("sweep-workers-0", "sweep", ["grid.toml", "--workers", "0"], 2, "--workers must be an integer in [1, 256]"),
    ("sweep-grid-binary", "sweep", ["bin.toml"], 2, "grid file bin.toml is not valid TOML"),
    ("sweep-grid-dir", "sweep", ["D"], 2, "grid file D is a directory"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_case(case, place, capsys):
    _, cmd, argv, code, fragment = case
    before = files_under(place)
    rc, out, err = run_cmd(cmd, argv, capsys)
    assert rc == code, f"{cmd} {argv}: exit {rc}, expected {code}; stderr: {err}"
    assert "Traceback" not in err, err
    assert fragment in err, f"{cmd} {argv}: {fragment!r} not in stderr {err!r}"
    errors = [line for line in err.splitlines() if line.startswith("error")]
    if cmd != "data" or argv:
        assert len(errors) == 1, f"{cmd} {argv}: expected one error line, got {err!r}"
    new = files_under(place) - before
    new_files = [p for p in new if (place / p).is_file()]
    assert not new_files, f"{cmd} {argv} left files {new_files}"
    if cmd in ("run", "real", "verify", "bench", "p1", "sweep"):
        assert not new, f"{cmd} {argv} left {sorted(new)}"


def test_enospc_is_one_line_and_files_stay_whole(place, capsys, monkeypatch):
    """A full disk while writing results: one line naming the file, exit 1 (a failure
    during the work, not bad input: issue 23); no temp file left."""
    import reffeat.output as output
    real_fsync = os.fsync
    calls = {"n": 0}

    def full_disk(fd):
        calls["n"] += 1
        if calls["n"] >= 2:                  # the first summary.json is written, the next write fails
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(output.os, "fsync", full_disk)
    rc, out, err = run_cmd("run", TINY + ["--out", "o"], capsys)
    assert rc == 1 and "No space left on device" in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    strict_json(place / "o" / "summary.json")
    assert not [p for p in os.listdir(place / "o") if p.startswith(".tmp")]


def test_second_run_into_a_locked_out_is_refused(place, capsys):
    (place / "o").mkdir()
    with OutputLock(place / "o"):
        rc, out, err = run_cmd("run", TINY + ["--out", "o"], capsys)
    assert rc == 2 and "is in use by another running command" in err, err
    assert os.listdir(place / "o") == []
    rc, out, err = run_cmd("run", TINY + ["--out", "o"], capsys)      # free again
    assert rc == 0, err


def test_quick_keeps_user_values():
    args = real_cli.build_parser().parse_args(["--dataset", "mnist", "--quick", "--eval-steps", "7",
                                               "--epochs", "3", "--eps", "8/255"])
    c = real_cli.resolve(args)
    assert (c["eval_steps"], c["epochs"], c["n_train"], c["eval_restarts"]) == (7, 3, 60, 0)
    assert abs(c["eps"] - 8 / 255) < 1e-15


def test_help_documents_every_key(capsys):
    from reffeat.config import FIELDS
    assert run_cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name, spec in FIELDS.items():
        default = getattr(Config(), name)
        shown = "none" if default is None else (str(default).lower() if isinstance(default, bool) else str(default))
        assert f"  {name} = {shown}  ({spec.constraint})" in out, name
        assert spec.meaning in out, name
    assert real_cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "4/255" in out and "0.01568627" not in out
    for action in real_cli.build_parser()._actions:
        assert action.help, f"run real {action.option_strings} has no help"


# ---------------------------------------------------------------- divergence and overflow
@pytest.mark.parametrize("sets", [["eta=1e6"], ["eta=1e300"], ["eps=1e308"], ["eps=1e308", "random_start=true"]])
def test_divergence_and_overflow_stop_cleanly(sets, place, capsys):
    argv = TINY + [a for s in sets for a in ("--set", s)] + ["--set", "T=6", "--out", "o"]
    rc, out, err = run_cmd("run", argv, capsys)
    assert rc == 0, err
    assert "Traceback" not in err
    assert not re.search(r"\d{25,}", out + err), "a number printed with dozens of digits"
    s = strict_json(place / "o" / "summary.json")
    assert s["st"]["steps_done"] <= 6 and s["at"]["steps_done"] <= 6
    if sets == ["eta=1e300"] and importlib.util.find_spec("reffeat.loop") is not None:
        # the one training loop's stop policy (issue 11) stops a diverging run
        assert s["st"]["stopped"] and s["at"]["stopped"], "eta=1e300 must stop training"


@pytest.mark.parametrize("opts", [["--lr", "1e300"], ["--sigma0", "1e308"], ["--eps", "1e308"]])
def test_real_divergence_keeps_strict_results(opts, tiny_mnist, place, capsys):
    argv = ["--dataset", "mnist", "--data-dir", str(tiny_mnist), "--quick", "--classes", "0,1",
            "--out", "o", "--n-lens", "4", "--n-eval", "6", "--optimizer", "sgd"] + opts
    rc, out, err = run_cmd("real", argv, capsys)
    assert rc == 0, err
    assert "Traceback" not in err
    res = strict_json(place / "o" / "results.json")
    if opts[0] != "--eps":                 # diverged: results kept, the lenses skipped
        assert res["stopped"] and "training stopped" in res["stopped"], res["stopped"]
        assert "lenses" not in res
    assert not [p for p in os.listdir(place / "o") if p.startswith(".tmp")]


# ---------------------------------------------------------------- API: ValueError naming the argument
@pytest.fixture
def wxy():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((3, 2, 5))
    X = rng.standard_normal((4, 6, 5))
    y = np.array([0, 1, 2, 0])
    return W, X, y


API_CASES = [
    ("forward-no-patches", lambda W, X, y: forward(W, X[:, :0], q=3, rho=1), "X must have shape (n, P, d) with P >= 1"),
    ("forward-rho-0", lambda W, X, y: forward(W, X, q=3, rho=0.0), "rho must be a finite number > 0 (got 0.0)"),
    ("forward-q-half", lambda W, X, y: forward(W, X, q=0.5, rho=1.0), "q must be a finite number >= 1 (got 0.5)"),
    ("forward-q-nan", lambda W, X, y: forward(W, X, q=float("nan"), rho=1.0), "q must be a finite number >= 1"),
    ("forward-complex", lambda W, X, y: forward(W, X + 1j, q=3, rho=1.0), "X must be a real numeric array"),
    ("forward-d-mismatch", lambda W, X, y: forward(W, X[:, :, :4], q=3, rho=1.0), "the d = 5 of W"),
    ("grad-float-labels", lambda W, X, y: grad_w(W, X, y + 0.7, q=3, rho=1.0),
     "y must be integer class labels in [0, 3)"),
    ("grad-nan-labels", lambda W, X, y: grad_w(W, X, np.full(4, np.nan), q=3, rho=1.0), "got a non-finite label"),
    ("grad-label-range", lambda W, X, y: grad_w(W, X, y + 1, q=3, rho=1.0),
     "y must be integer class labels in [0, 3) (got 3)"),
    ("grad-n-0", lambda W, X, y: grad_w(W, X[:0], y[:0], q=3, rho=1.0), "X must hold at least one sample"),
    ("loss-n-0", lambda W, X, y: loss(W, X[:0], y[:0], q=3, rho=1.0), "X must hold at least one sample"),
    ("ref-label-range", lambda W, X, y: grad_w(W, X, y - 1, q=3, rho=1.0, backend="reference"), "(got -1)"),
    ("ref-float-labels", lambda W, X, y: grad_w(W, X, y + 0.5, q=3, rho=1.0, backend="reference"), "(got 0.5)"),
    ("ref-d-mismatch", lambda W, X, y: grad_w(W, X[:, :, :3], y, q=3, rho=1.0, backend="reference"), "the d = 5 of W"),
    ("init-k-0", lambda W, X, y: init_weights(0, 2, 5, 0.1, np.random.default_rng(0)), "k must be an integer >= 1"),
    ("init-sigma0-neg", lambda W, X, y: init_weights(3, 2, 5, -1, np.random.default_rng(0)), "sigma0 must be"),
    ("attack-eps-inf", lambda W, X, y: attack(W, X, y, q=3, rho=1, eps=float("inf")), "eps must be a finite number"),
    ("attack-steps-bool", lambda W, X, y: attack(W, X, y, q=3, rho=1, eps=0.1, steps=True), "steps must be an integer"),
    ("config-unknown", lambda W, X, y: Config(foo=1), "unknown Config key 'foo'"),
    ("config-str-number", lambda W, X, y: Config(eta="0.1"), "eta must be a finite number > 0 (got '0.1')"),
    ("config-bool-number", lambda W, X, y: Config(T=True), "T must be an integer >= 0 (got True)"),
    ("image-epochs-bool", lambda W, X, y: ImageTrainConfig(epochs=True), "epochs must be an integer >= 1 (got True)"),
    ("image-lr-str", lambda W, X, y: ImageTrainConfig(lr="0.1"), "lr must be a finite number > 0 (got '0.1')"),
    ("image-sigma0-0", lambda W, X, y: ImageTrainConfig(sigma0=0), "sigma0 must be a finite number > 0"),
    ("image-unknown", lambda W, X, y: ImageTrainConfig(foo=1), "unknown ImageTrainConfig key 'foo'"),
]


@pytest.mark.parametrize("case", API_CASES, ids=[c[0] for c in API_CASES])
def test_api_case(case, wxy):
    _, call, fragment = case
    with pytest.raises(ValueError) as e:
        call(*wxy)
    assert fragment in str(e.value), f"{fragment!r} not in {str(e.value)!r}"


def test_numpy_scalars_accepted_and_normalised(wxy):
    cfg = Config(k=np.int64(4), seed=np.int64(3), eta=np.float32(0.1), T=np.int32(5))
    assert (type(cfg.k), type(cfg.seed), type(cfg.eta), type(cfg.T)) == (int, int, float, int)
    json.dumps(cfg.to_dict())
    W, X, y = wxy
    assert np.isfinite(forward(W, X, q=np.float64(3), rho=np.float32(1))).all()
    Xa = attack(W, X, y, q=3, rho=1, eps=1e308, random_start=True, rng=np.random.default_rng(0))
    assert Xa.shape == X.shape
    assert ImageTrainConfig(epochs=np.int64(2), lr=np.float32(0.5)).epochs == 2


# ---------------------------------------------------------------- signals (real ones, in a subprocess)
def _spawn(out: Path):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = [sys.executable, "-m", "reffeat.run", "--set", "T=100000", "--set", "n_train=20", "--set", "n_test=20",
            "--set", "P=8", "--set", "d_N=8", "--set", "log_every=1", "--no-figures", "--mode", "st", "--out", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(out.parent))


def _wait_training(proc, timeout=240):
    """Block until the run prints its first progress line."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = proc.stderr.readline()
        if "step" in line:
            return
        if proc.poll() is not None:
            break
    raise AssertionError("the run did not start training")


@pytest.mark.parametrize("signals,code", [((signal.SIGTERM,), 143), ((signal.SIGINT, signal.SIGINT), 130),
                                          ((signal.SIGINT, signal.SIGINT, signal.SIGINT), 130)],
                         ids=["sigterm", "ctrl-c-twice", "ctrl-c-thrice"])
def test_signals_keep_completed_results(signals, code, tmp_path):
    out = tmp_path / "o"
    proc = _spawn(out)
    _wait_training(proc)
    time.sleep(0.3)
    for s in signals:                      # repeated signals 0.05 s apart: well within 0.2 s
        proc.send_signal(s)
        time.sleep(0.05)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == code, err
    assert "Traceback" not in err, err
    s = strict_json(out / "summary.json")
    assert s["interrupted"] is True and s["st"]["stopped"].startswith("interrupted")
    assert (out / "weights_st.npz").exists()
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]
