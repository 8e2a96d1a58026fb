"""Config validation and the `python -m reffeat.run` command line."""
import json
import os
import subprocess
import sys

import pytest

from reffeat import Config
from reffeat.cli.run import load_config, main
from reffeat.output import atomic_write_json

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BAD = [
    (dict(k=1), "k must be an integer >= 2"),
    (dict(d_N=24), r"d_N must be a power of two >= k\+1"),
    (dict(d_N=4), r"d_N must be a power of two >= k\+1 = 5"),
    (dict(geometry="basis", d_N=2), "d_N must be an integer >= k = 4"),
    (dict(rho=0.0), "rho must be a finite number > 0"),
    (dict(q=0.9), "q must be a finite number >= 1"),
    (dict(eps=-0.1), "eps must be a finite number > 0"),
    (dict(s=0), r"s must be an integer in \[1, 63\]"),
    (dict(s=64), r"s must be an integer in \[1, 63\]"),
    (dict(n_train=0), "n_train must be an integer >= 1"),
    (dict(m=0), "m must be an integer >= 1"),
    (dict(norm="l1"), "norm must be one of linf, l2, l2-patch"),
    (dict(geometry="sphere"), "geometry must be one of"),
    (dict(eta=float("nan")), "eta must be a finite number > 0"),
    (dict(lam=1.5), r"lam must be a finite number in \[0, 1\] \(got 1.5\)"),
    (dict(n_nonrobust=70), "n_nonrobust must be an integer in"),
    (dict(sigma0=-1.0), "sigma0 must be a finite number > 0"),
    (dict(K=0), "K must be an integer >= 1"),
    (dict(ascent="newton"), "ascent must be one of sign, plain"),
]


@pytest.mark.parametrize("kw,msg", BAD)
def test_bad_config_names_field_and_range(kw, msg):
    with pytest.raises(ValueError, match=msg):
        Config(**kw)


def test_defaults_are_the_specs():
    c = Config()
    assert (c.k, c.P, c.s, c.d_N, c.d, c.alpha, c.beta, c.sigma_xi) == (4, 64, 1, 32, 36, 3.0, 1.0, 0.1)
    assert (c.m, c.sigma0, c.q, c.rho, c.eta, c.T, c.eps, c.K, c.step_size, c.lam) == \
        (16, 0.01, 2.0, 1.0, 0.05, 300, 0.2, 1, 0.2, 1.0)
    assert (c.n_train, c.n_test, c.eval_K, c.eval_step_size) == (200, 300, 20, 0.05)


def test_set_and_toml(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("k = 3\nd_N = 8\neta = 0.1\n")
    cfg = load_config(str(f), ["T=5", "norm=l2", "n_nonrobust=none"], seed=4)
    assert (cfg.k, cfg.d_N, cfg.eta, cfg.T, cfg.norm, cfg.seed, cfg.n_nonrobust) == (3, 8, 0.1, 5, "l2", 4, None)
    with pytest.raises(ValueError, match="unknown config key 'kk'"):
        load_config(None, ["kk=3"], None)
    with pytest.raises(ValueError, match="T must be an integer >= 0"):
        load_config(None, ["T=abc"], None)
    f.write_text("k = [oops\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_config(str(f), [], None)


def _cli(*args, cwd=None):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "reffeat.run", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=600)


@pytest.mark.parametrize("args,msg", [
    (["--set", "rho=-1"], "rho must be"),
    (["--set", "nope=1"], "unknown config key 'nope'"),
    (["--mode", "xx"], "invalid choice"),
    (["--config", "/nonexistent.toml"], "config file not found"),
    (["--set", "d_N=33"], "d_N must be a power of two"),
])
def test_cli_bad_input_exit_2_no_traceback(args, msg):
    r = _cli(*args)
    assert r.returncode == 2, r.stderr
    assert msg in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_help():
    r = _cli("--help")
    assert r.returncode == 0 and "--set" in r.stdout and "eval_restarts" in r.stdout


def test_cli_small_run_writes_summary(tmp_path):
    out = tmp_path / "run"
    r = _cli("--set", "T=6", "--set", "n_train=30", "--set", "n_test=40", "--set", "P=8",
             "--set", "d_N=8", "--set", "log_every=3", "--seed", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["seed"] == 2 and s["config"]["T"] == 6 and "numpy" in s["versions"]
    for mode in ("st", "at"):
        for key in ("clean_acc", "robust_acc", "robust_acc_pgd", "robust_acc_feature_attack",
                    "gamma", "phi", "alignment", "alignment_pgd", "history"):
            assert key in s[mode], f"{mode}.{key} missing"
        assert s[mode]["history"]["step"] == [0, 1, 2, 3, 4, 6]     # every 3 steps and 0, 1, 2, 4, …
    assert s["wall_time_s"] > 0
    for png in ("coefficients.png", "accuracy.png", "c4_at.png"):
        assert (out / png).stat().st_size > 1000
    assert not [p for p in os.listdir(out) if p.startswith(".tmp")]


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "x.json"
    atomic_write_json(str(path), {"a": 1})

    class Boom:
        pass
    with pytest.raises(TypeError):
        atomic_write_json(str(path), {"a": Boom()})
    assert json.loads(path.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.json"]


def test_ctrl_c_keeps_results_and_exits_130(tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) during ST: ST's results so far are evaluated
    and written, AT is skipped, exit code 130. In-process and deterministic: the
    interrupt is raised at the 8th gradient step instead of by a real signal."""
    import importlib
    tr = importlib.import_module("reffeat.loop")   # the one training loop's objective
    real, calls = tr.grad_w_and_c4, {"n": 0}       # the training step's G2 (with C4)

    def interrupted(*a, **k):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(tr, "grad_w_and_c4", interrupted)
    out = tmp_path / "run"
    rc = main(["--set", "T=1000", "--set", "n_test=50", "--set", "n_train=40", "--no-figures",
               "--quiet", "--out", str(out)])
    assert rc == 130
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] is True and s["st"]["stopped"] == "interrupted by user at step 7"
    assert s["st"]["steps_done"] == 7 and "at" not in s and "clean_acc" in s["st"]


def _module(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_package_menu_lists_commands_and_version():
    from reffeat import __version__
    for args in ((), ("--help",)):
        r = _module("reffeat", *args)
        assert r.returncode == 0, r.stderr
        assert "usage: python -m reffeat.run" not in r.stdout and "--help" in r.stdout
        for name in ("run", "run real", "verify", "sweep", "data", "bench"):
            assert any(line.startswith(f"  {name}  ") for line in r.stdout.splitlines()), name
    r = _module("reffeat", "--version")
    assert r.returncode == 0 and r.stdout.strip() == f"reffeat {__version__}"
    r = _module("reffeat", "nonsense")
    assert r.returncode == 2 and "unknown command" in r.stderr


def test_help_texts_have_no_rst_markup():
    for args in (("reffeat.run",), ("reffeat.run", "real"), ("reffeat.verify",), ("reffeat.sweep",),
                 ("reffeat.data",), ("reffeat.bench",)):
        r = _module(*args, "--help")
        assert r.returncode == 0, (args, r.stderr)
        assert "``" not in r.stdout, args
