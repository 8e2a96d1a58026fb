"""Tests of the verify suite: statistics, analytic boundaries, sweep
bookkeeping, report formatting, the segmented trainer (bit-identical to one
``train`` call) and, marked slow, the CI quick mode end to end."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from reffeat import Config, coefficients, problem, train
from reffeat.jobs import Runner
from reffeat.output import encode
from reffeat.verify import m1, m2
from reffeat.verify import report as R
from reffeat.verify import sweeps as S
from reffeat.verify.common import (
    ClaimResult,
    coefficient_paths,
    pair_run,
    pair_runs,
    regime_config,
    seed_stats,
    train_trajectory,
)

TINY = dict(k=3, P=8, d_N=8, n_train=12, n_test=12, m=3, T=12, alpha=1.5, eval_K=3,
            eval_restarts=0)


# ---------------------------------------------------------------- statistics, verdicts
def test_seed_stats_ignores_nan_and_none():
    st = seed_stats([1.0, None, 3.0, float("nan")])
    assert st.mean == 2.0 and st.lo == 1.0 and st.hi == 3.0, st
    assert abs(st.std - math.sqrt(2.0)) < 1e-12, f"sample std {st.std}"
    assert math.isnan(seed_stats([None]).mean)


@pytest.mark.parametrize("n_true,n,verdict", [(19, 20, "holds"), (18, 20, "holds on most seeds"),
                                               (2, 3, "holds on most seeds"), (5, 5, "holds on most seeds"),
                                               (1, 3, "fails"), (0, 0, "no seeds")])
def test_claim_verdict_is_v1(n_true, n, verdict):
    holds = [True] * n_true + [False] * (n - n_true)
    res = ClaimResult("X", "s", "r", list(range(n)), holds, {"q": [1.0] * n}, "c")
    assert res.verdict == verdict, f"{n_true}/{n} -> {res.verdict}"
    assert res.passed is (verdict == "holds"), "a majority is not a pass"
    if holds:
        assert f"{n_true}/{n}" in res.text() and "95% CI" in res.text()
        assert res.to_dict()["fraction"] == pytest.approx(np.mean(holds))


# ---------------------------------------------------------------- analytic pieces
def test_boundaries():
    assert S.preference_boundary(64, 1, 3.0) == pytest.approx((1 / 63) ** (1 / 3))
    # on the curve (P−s)β^q = sα^q
    b = S.preference_boundary(np.array([8, 16]), 1, 2.0)
    assert np.allclose((np.array([8, 16]) - 1) * b ** 2, 1.0)
    assert S.susceptibility_boundary(32, 1.0) == pytest.approx(1 / math.sqrt(32))
    assert S.leverage_boundary(64, 1, 3.0) == pytest.approx(5.0)


def test_ode_time_and_first_reach():
    # q = 3: dx/dt = c x², from x0 to xh takes (1/x0 − 1/xh)/c
    assert m1.ode_time(0.1, 0.2, 3.0, 2.0) == pytest.approx((10 - 5) / 2)
    assert m1.ode_time(0.1, 0.2, 2.0, 1.0) == pytest.approx(math.log(2))
    assert m1.ode_time(0.1, 0.05, 3.0, 1.0) == 0.0
    assert m1.first_reach([0, 1, 2, 3], 2) == 2
    assert m1.first_reach([0, 1], 5) is None


def test_preference_and_susceptibility_agreement():
    pref = {"q": [3], "P": [8, 64], "ratio": [0.2, 0.8], "s": 1,
            # cells: P=8: r=0.2 -> 7*0.008<1 (Γ wins), r=0.8 -> Φ wins; P=64 r=0.2: 63*.008=0.5<1
            "phi_over_gamma": np.array([[[[0.1], [10.0]], [[0.2], [10.0]]]])}
    assert S.preference_agreement(pref) == {"3": (4, 4)}
    pref["phi_over_gamma"][0, 0, 0, 0] = 10.0
    assert S.preference_agreement(pref) == {"3": (3, 4)}
    susc = {"d_N": [16], "eps": [0.1, 0.5], "beta": 1.0,
            "robust_acc": np.array([[[1.0], [0.0]]])}
    assert S.susceptibility_agreement(susc) == (2, 2)


def test_variant_stats():
    run = lambda rob, blew, p4: {"at": {"gamma": 1.0, "phi": 0.1, "clean_acc": 1.0, "robust_acc": rob,
                                        "alignment": 0.5, "blew_up": blew},
                                 "st": {"robust_acc": 0.0, "phi": 0.8, "gamma": 0.02},
                                 "claims": {"P1": True, "P2": True, "P3": True, "P4": p4}}
    row = {"label": "x", "seeds": [0, 1], "runs": [run(1.0, False, True), run(0.0, True, False)]}
    st = S.variant_stats(row)
    assert st["at_robust"][0] == 0.5 and st["blew_up"] == 0.5 and st["P4"] == 0.5 and st["all_P"] == 0.5
    text = R.variant_table({"rows": [row]}, S.variant_stats)
    assert "| x |" in text and "1/2" in text


# ---------------------------------------------------------------- report formatting
def test_fmt_and_tables():
    assert R.fmt(None) == "—" and R.fmt(float("nan")) == "—" and R.fmt(float("inf")) == "inf"
    assert R.fmt(0.5) == "0.500" and "e" in R.fmt(1e-6)
    t = R.md_table(["a", "b"], [[1, "x|y"]])
    assert t.splitlines()[1] == "|---|---|" and "x\\|y" in t
    res = ClaimResult("P9", "s", "r", [0, 1], [True, False], {"v": [1.0, 2.0]}, "c")
    ct = R.claim_table(res)
    assert "1.500" in ct and "✓" in ct and "✗" in ct
    st = R.summary_table({"default": {"P9": res}})
    assert "1/2 (0.50, 95% CI" in st and "holds on most seeds" in st


# ---------------------------------------------------------------- segmented training
@pytest.mark.parametrize("mode", ["st", "at"])
def test_trajectory_matches_one_train_call(mode):
    cfg = Config(**TINY)
    prob = problem(cfg)
    whole = train(cfg, mode, prob)
    seg = train_trajectory(cfg, mode, prob, n_segments=4, log_test=5, log_every=3)
    assert np.array_equal(whole.W, seg.W), f"{mode}: segmented W differs"
    assert np.array_equal(whole.c4_phi, seg.c4_phi) and np.array_equal(whole.c4_gamma, seg.c4_gamma)
    assert seg.snap_steps == [0, 3, 6, 9, 12]
    assert np.array_equal(seg.snapshots[-1], seg.W)
    assert seg.history["step"] == sorted(set(seg.history["step"])), "duplicate log at a cut"


def test_coefficient_paths_end_at_final_coefficients():
    cfg = Config(**TINY)
    prob = problem(cfg)
    res = train(cfg, "at", prob)
    U, V = prob.features
    end = coefficients(res.W, U, V)
    for which, key in (("gamma", "Gamma"), ("phi", "Phi")):
        path = coefficient_paths(prob.W0, getattr(res, f"c4_{which}"), which, U, V)
        assert path.shape == (cfg.T + 1, cfg.k, cfg.m)
        err = np.abs(path[-1] - end[key]).max()
        assert err < 1e-10, f"C4 path of {which} misses the final value by {err:.2e}"


def test_verify_jobs_go_through_the_result_store(tmp_path):
    """pair_runs on two worker processes stores each seed; a second Runner on the
    same store trains nothing and returns the same records to the last bit."""
    from reffeat.verify import common
    cfg = Config(**TINY)
    r1 = Runner(workers=2, store=str(tmp_path), progress=None)
    recs = pair_runs(cfg, [1, 0], r1, n_segments=3)
    assert [r["seed"] for r in recs] == [1, 0] and r1.stats["ran"] == 2
    common.clear_cache()
    r2 = Runner(workers=2, store=str(tmp_path), progress=None)
    again = pair_runs(cfg, [1, 0], r2, n_segments=3)
    assert r2.stats["ran"] == 0 and r2.stats["from_store"] == 2, r2.stats
    assert encode(recs, lossless=True) == encode(again, lossless=True), \
        "records read from the store differ from the computed ones"
    common.clear_cache()


def test_regime_config():
    assert regime_config("borderline").eta == 0.5 and regime_config("borderline").T == 150
    assert regime_config("default") == Config()
    with pytest.raises(ValueError, match="regime"):
        regime_config("nope")


# ---------------------------------------------------------------- claim checks on tiny runs
@pytest.fixture(scope="module")
def tiny_records():
    cfg = Config(**TINY)
    return cfg, [pair_run(cfg.replace(seed=s), n_segments=3) for s in range(2)]


def test_claim_checks_and_report_on_tiny_runs(tiny_records, tmp_path):
    import importlib

    from reffeat.verify import CLAIMS
    from reffeat.verify.run import build_report
    cfg, recs = tiny_records
    results = {}
    for name in CLAIMS:
        mod = importlib.import_module(f"reffeat.verify.{name}")
        res = mod.check(recs, cfg)
        assert res.name == name.upper() and len(res.holds) == 2
        for k, v in res.quantities.items():
            assert len(v) == 2, f"{name}: {k} has {len(v)} values"
        results[res.name] = res
    claims_res = {"tiny": results}
    figs = {"claims": R.fig_claims(claims_res, str(tmp_path / "verify_claims.png")),
            "m1": R.fig_m1(recs, cfg, results["M1"], str(tmp_path / "verify_m1.png")),
            "m2": R.fig_m2({"tiny": recs}, str(tmp_path / "verify_m2.png")),
            "m3": R.fig_m3(results["M3"], str(tmp_path / "verify_m3.png"))}
    for f in figs.values():
        assert os.path.getsize(f) > 1000, f"empty figure {f}"
    text = build_report("quick", claims_res, {"tiny": (cfg, recs)}, None, None, figs, {"total": 1.0})
    for name in ("P1", "P2", "P3", "P4", "M1", "M2", "M3"):
        assert f"## {name}" in text, f"report misses section {name}"
    assert "Summary of verdicts" in text


def test_m2_window_logic():
    S_, k = 4, 2
    parts = np.zeros((S_, 2, 3, k))
    parts[2:, 1, 1] = -1.0      # other-class N pushes down after step 2
    parts[2:, 0, 1] = 0.5
    at = {"e3_train_N": [0.0, 0.6, 0.9], "snap_steps": [0, 2, 4], "c4_phi_sum": parts}
    out = m2.analyse_seed(at)
    assert out["t_align"] == 2 and out["holds"], out
    at["e3_train_N"] = [0.0, 0.1, 0.2]
    assert not m2.analyse_seed(at)["holds"]


def test_sweep_grids_tiny():
    base = {**TINY, "T": 6}
    pref = S.st_preference((3,), (4, 8), (0.3, 0.9), (0,), base=base)
    assert pref["phi_over_gamma"].shape == (1, 2, 2, 1) and np.all(np.isfinite(pref["phi_over_gamma"]))
    susc = S.susceptibility((0.1, 0.5), (8,), (0,), base=base)
    assert susc["robust_acc"].shape == (1, 2, 1)
    at = S.at_success((0.2,), (5.0,), (0,), base=base)
    assert at["at_robust_acc"].shape == (1, 1, 1)
    var = S.variants([("a", {}), ("b", {"lam": 0.5})], (0,), base=base)
    assert [r["label"] for r in var["rows"]] == ["a", "b"]


# ---------------------------------------------------------------- the CI quick mode
@pytest.mark.slow
def test_quick_mode_passes(tmp_path):
    """``python -m reffeat.verify --quick --out DIR`` (what CI runs) exits 0, writes the
    report, and writes nothing outside DIR (run from a folder of its own)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    out = tmp_path / "out"
    rep = out / "REPORT.md"
    proc = subprocess.run([sys.executable, "-m", "reffeat.verify", "--quick", "--quiet", "--out", str(out)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"quick mode failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert rep.exists() and "Summary of verdicts" in rep.read_text()
    assert len(list((out / "figures").glob("verify_*.png"))) >= 7
    assert list(cwd.iterdir()) == [], f"verify wrote outside --out: {list(cwd.iterdir())}"
    # the report can be rebuilt from results.json alone
    rep2 = tmp_path / "again" / "REPORT.md"
    proc = subprocess.run([sys.executable, "-m", "reffeat.verify", "--from-results", str(out / "results.json"),
                           "--out", str(tmp_path / "again")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"--from-results failed:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "Summary of verdicts" in rep2.read_text()


def test_claim_cli_exit_status(capsys):
    """A single-claim CLI prints the per-seed table and exits 1 when the claim fails on a majority."""
    from reffeat.verify import p1
    sets = [f"--set={k}={v}" for k, v in {**TINY, "T": 2}.items()]
    rc = p1.main(["--seeds", "2", "--workers", "1", "--quiet"] + sets)
    out = capsys.readouterr().out
    assert "P1:" in out and "holds per seed" in out
    assert rc == 1, "after 2 steps ST cannot have learned Φ: P1 must fail"


def test_parts_provenance_per_part_and_from_legacy_files():
    """Each part of results.json keeps the provenance of the invocation that computed
    it; a file from before that record gives its one provenance to the part its
    ``--only`` names (every timed part for a full run), the rest unattributed; the
    header names each part's commit."""
    from reffeat.verify.run import parts_provenance
    from reffeat.verify.text import _wall_text
    a = {"commit": "a" * 40, "dirty": False, "command": "python -m reffeat.verify --only phase --out v"}
    timings = {"claims": 10.0, "phase diagrams": 20.0, "total": 30.0}
    assert parts_provenance({"provenance": a, "timings": timings}) == {"phase diagrams": a}
    full = dict(a, command="python -m reffeat.verify --out v")
    assert parts_provenance({"provenance": full, "timings": timings}) == {"claims": full, "phase diagrams": full}
    b = dict(a, commit="b" * 40)
    kept = {"claims": b, "phase diagrams": a}
    assert parts_provenance({"provenance": a, "timings": timings, "parts_provenance": kept}) == kept
    assert parts_provenance({"timings": timings}) == {}
    text = _wall_text(timings, True, {"phase diagrams": a})
    assert "phase diagrams 20 s (commit aaaaaaa)" in text and "claims 10 s," in text


def test_section_command_line_names_the_run_its_commit_and_wall_time():
    """The phase section's first line: the --only command, the command as run and its
    commit where recorded, and the part's wall time; without a record only the command."""
    from reffeat.verify.text import _part_command
    a = {"commit": "c" * 40, "dirty": False,
         "command": "python -m reffeat.verify --only phase --workers 2 --out v"}
    line = _part_command("phase diagrams", "phase", {"phase diagrams": 120.0}, {"phase diagrams": a},
                         " (all three)")
    assert line.startswith("Command: `python -m reffeat.verify --only phase --out DIR` (as run: "
                           "`python -m reffeat.verify --only phase --workers 2 --out v`)")
    assert "at commit cccccccccccc;" in line and "2.0 min (all three)." in line
    assert _part_command("phase diagrams", "phase", {}, None) == \
        "Command: `python -m reffeat.verify --only phase --out DIR`.\n"
