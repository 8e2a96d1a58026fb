"""verify's trace sections (Invariants, Scaling) on tiny runs: the analysis,
the report text and the figures, and the half-time / slope machinery."""
import math

import numpy as np
import pytest

from reffeat.verify import invariants as I
from reffeat.verify import scaling as S


def test_half_time_interpolates():
    assert S.half_time([0.0, 1.0, 2.0, 4.0]) == pytest.approx(2.0)      # half of 4 reached at t=2
    assert S.half_time([0.0, 0.5, 3.0, 4.0]) == pytest.approx(1.6)      # 2 at t = 1 + 1.5/2.5
    assert math.isnan(S.half_time([1.0, 0.5, 0.2]))                      # never grows


def test_monotone_first_phase_counts_drops():
    Phi = np.array([[0.1, 0.1], [0.2, 0.3], [0.15, 0.6], [0.9, 0.9]])   # class 0 drops at t=2
    m = I.monotone_first_phase(Phi)
    assert m["decreasing_steps"] == 1 and m["phase_end"] == [3, 2]
    assert m["largest_drop_rel"] == pytest.approx(0.05 / 0.9)


def test_invariants_section_on_tiny_runs(tmp_path, monkeypatch):
    tiny = dict(P=8, d_N=8, n_train=12, n_test=20, m=4, T=15, eval_restarts=0)
    tiny_high_dim = dict(k=3, P=4, d_N=32, n_train=6, n_test=10, sigma_xi=0.3, m=3, T=10, eval_restarts=0)
    monkeypatch.setattr(I, "preset_config", lambda name, **o: I.Config(
        **{**(tiny if name != "high-dim" else tiny_high_dim), **o,
           "n_test": 10, "eval_restarts": 0}))
    monkeypatch.setattr(I, "REGIMES", ("default",))
    text0 = I.section(True, None, str(tmp_path / "figs"), lambda p: p, str(tmp_path))
    assert I.section_from_json(str(tmp_path), str(tmp_path / "figs"), lambda p: p) == text0, \
        "the section rebuilt from invariants.json differs from the one written"
    res = I.run(seeds=(0,), regimes=("default",))
    an = res["analysis"]
    assert set(an) == {"default", "high-dim"}
    assert an["high-dim"]["st"]["residual_max"] < 1e-10, "ST's C5 residual must be rounding"
    assert an["default"]["monotone"]["decreasing_steps"] == 0
    figs = I.figures(res, str(tmp_path))
    text = I.markdown(res, figs)
    assert "## Invariants" in text and "σ0·sqrt(log km)" in text and "AT residual" in text
    assert all((tmp_path / f).exists() for f in figs.values())


def test_scaling_section_on_tiny_runs(tmp_path, monkeypatch):
    grids = {(q, m): dict(sigma0s=(0.01, 0.03), etas=(0.1, 0.2), sigma0_ref=0.03, eta_ref=0.2, T_ref=60)
             for q in (2, 3) for m in ("st", "at")}
    monkeypatch.setattr(S, "GRIDS", grids)
    monkeypatch.setattr(S, "BASE", dict(S.BASE, P=8, n_train=12, n_test=10, m=4))
    monkeypatch.setattr(S, "QUICK_SEEDS", (0, 1))
    monkeypatch.setattr(S, "run", lambda seeds, runner=None, _run=S.run: _run(seeds, qs=(3,), runner=runner))
    text0 = S.section(True, None, str(tmp_path / "figs"), lambda p: p, str(tmp_path))
    assert S.section_from_json(str(tmp_path), str(tmp_path / "figs"), lambda p: p) == text0, \
        "the section rebuilt from scaling.json differs from the one written"
    res = S.run(seeds=(0, 1))
    an = res[3]["analysis"]
    assert set(an["rows"]) == {"st_sigma0", "st_eta", "at_sigma0", "at_eta"}
    assert an["rows"]["st_sigma0"]["predicted"] == -1.0 and an["rows"]["st_eta"]["predicted"] == -1.0
    assert len(an["rows"]["st_eta"]["per_seed"]) == 2
    figs = S.figure(res, str(tmp_path))
    text = S.markdown(res, figs)
    assert "## Scaling" in text and "Coefficient check" in text
    assert (tmp_path / figs["scaling"]).exists()
