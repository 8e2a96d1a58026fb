"""The experiments floor: one per-seed pipeline (run_seed) behind the run
command, the sweep records and verify; memory estimates; the real-image
options; --version / --spec; and the floor rule (experiments imports nothing
from the commands, verify, sweeps or jobs)."""

import ast
import pathlib

import numpy as np
import pytest

import reffeat
from reffeat import Config, evaluate, problem, train
from reffeat.experiments import memory
from reffeat.experiments.real_config import SHAPES, resolve
from reffeat.experiments.synthetic import pair_record, run_seed, sweep_record
from reffeat.train import eval_rng

TINY = dict(k=3, P=8, d_N=8, n_train=12, n_test=20, m=4, T=12, log_every=4, eval_restarts=0)


@pytest.fixture(scope="module")
def cfg():
    return Config(seed=5, **TINY)


def test_run_seed_is_train_then_evaluate(cfg):
    runs = run_seed(cfg)
    assert list(runs) == ["st", "at"], "modes must run in the order given"
    prob = problem(cfg)
    for mode, run in runs.items():
        res = train(cfg, mode, prob)
        assert np.array_equal(run.result.W, res.W), f"{mode}: W differs from a plain train()"
        ev = evaluate(res.W, cfg, prob.test, prob.features, eval_rng(cfg, mode))
        assert run.evaluation["robust_acc"] == ev["robust_acc"]
        assert run.evaluation["clean_acc"] == ev["clean_acc"]


def test_snapshots_do_not_change_the_run(cfg):
    plain = run_seed(cfg, ("at",))["at"]
    snap = run_seed(cfg, ("at",), snapshots=3)["at"]
    assert np.array_equal(plain.result.W, snap.result.W), "keeping snapshots changed the trained W"
    assert snap.snap_steps[0] == 0 and snap.snap_steps[-1] == cfg.T, snap.snap_steps
    assert snap.snapshots.shape == (len(snap.snap_steps), cfg.k, cfg.m, cfg.d)
    assert np.array_equal(snap.snapshots[-1], snap.result.W)
    assert plain.snap_steps is None and plain.snapshots is None


def test_pair_record_keeps_every_e_scalar(cfg):
    """verify's record keeps every scalar of evaluate (APGD included), as the
    sweep record does: the two agree on every shared scalar."""
    pair = pair_record(cfg, n_segments=2)
    sweep = sweep_record(cfg)
    prob = problem(cfg)
    ev = evaluate(train(cfg, "st", prob).W, cfg, prob.test, prob.features, eval_rng(cfg, "st"))
    scalars = [k for k, v in ev.items() if isinstance(v, (int, float, np.floating)) or v is None]
    assert "robust_acc_apgd_ce" in scalars
    for mode in ("st", "at"):
        missing = [k for k in scalars if k not in pair[mode]]
        assert not missing, f"pair record of {mode} lacks {missing}"
        differ = [k for k in scalars if pair[mode][k] != sweep[mode][k]]
        assert not differ, f"{mode}: pair and sweep records disagree on {differ}"
    assert set(sweep["claims"]) == {"P1", "P2", "P3", "P4"}


def test_memory_estimates_grow_with_the_data(cfg):
    small, big = memory.synthetic(cfg), memory.synthetic(cfg.replace(n_train=10 * cfg.n_train))
    assert 0 < small < big, (small, big)
    assert memory.synthetic(cfg, ["st"]) < memory.synthetic(cfg), "one mode must need less than two"
    c = dict(resolve("mnist", {}, quick=True), n_train=0)
    mn = memory.real(c)
    sv = memory.real(dict(resolve("svhn", {}, quick=True), n_train=0))
    assert 0 < mn < sv, (mn, sv)


def test_real_options_resolve_and_reject():
    c = resolve("fashion-mnist", {"p": 14, "stride": 7}, quick=True)
    assert (c["p"], c["stride"], c["dataset"]) == (14, 7, "fashion-mnist")
    assert c["epochs"] == 1, "--quick sets the epochs the user did not give"
    assert resolve("mnist", {"epochs": 3}, quick=True)["epochs"] == 3, "a given option beats --quick"
    with pytest.raises(ValueError, match="--patch must divide the image side 28"):
        resolve("mnist", {"p": 5})
    with pytest.raises(ValueError, match="--patch must be at most the image side 32"):
        resolve("cifar10", {"p": 40})
    assert SHAPES["cifar10"].channels == 3 and SHAPES["mnist"].side == 28


@pytest.mark.parametrize("module, argv", [("run", []), ("real", []), ("data", []), ("verify", [])])
def test_version_on_every_command(module, argv, capsys):
    from reffeat.cli import data, real, run
    from reffeat.verify import run as verify_run
    main = {"run": run.main, "real": real.main, "data": data.main, "verify": verify_run.main}[module]
    assert main(argv + ["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"reffeat {reffeat.__version__}"


def test_spec_option_prints_a_path_or_says_it_is_missing(capsys):
    from reffeat.cli import run
    assert run.main(["--spec"]) == 0
    out = capsys.readouterr().out.strip()
    path = pathlib.Path(reffeat.__file__).parent / "SPEC.md"
    assert out == str(path) if path.is_file() else "not installed" in out, out


def test_experiments_import_nothing_from_a_higher_floor():
    root = pathlib.Path(reffeat.__file__).parent
    bad = []
    for f in sorted((root / "experiments").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom):
                name = ("." * node.level) + (node.module or "")
                names = [name + "." + a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for n in names:
                parts = n.lstrip(".").replace("reffeat.", "", 1).split(".")
                if parts[0] in ("cli", "verify", "sweep", "jobs", "run", "data", "bench"):
                    bad.append(f"{f.name}: {n}")
    assert not bad, f"experiments imports from a higher floor: {bad}"
