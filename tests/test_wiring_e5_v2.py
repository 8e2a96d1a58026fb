"""Issue 20's wiring: E5 and V2 P2 (b) in ``metrics.evaluate`` and the records,
RC6 and all_met_initial in summary.json, the V1/V2 lines and the
[certified, attacked] interval in the run's table, dense early logging, the
renamed cheap robust accuracy, and training saved before the evaluation."""

import json
import os

import numpy as np
import pytest

import reffeat
from reffeat import Config, evaluate, problem, train
from reffeat.certify import certify
from reffeat.experiments import synthetic
from reffeat.experiments.synthetic import pair_record, run_synthetic, sweep_record
from reffeat.loop import logged_step
from reffeat.metrics import GENERAL_ATTACKS, projected_flip_cases, robust_correct
from reffeat.train import eval_rng

TINY = dict(k=3, P=8, d_N=8, n_train=12, n_test=20, m=4, T=12, log_every=5, eval_restarts=0)
NEW_KEYS = ("certified_robust_acc", "proven_nonrobust_frac", "certified_exact_frac")


@pytest.fixture(scope="module")
def cfg():
    return Config(seed=3, **TINY)


@pytest.fixture(scope="module")
def trained(cfg):
    prob = problem(cfg)
    return prob, {m: train(cfg, m, prob) for m in ("st", "at")}


def test_new_keys_in_unit_interval_and_certified_below_attacked(cfg, trained):
    prob, res = trained
    X, y, _ = prob.test
    for mode, r in res.items():
        ev = evaluate(r.W, cfg, prob.test, prob.features, eval_rng(cfg, mode))
        for key in NEW_KEYS:
            assert 0.0 <= ev[key] <= 1.0, (mode, key, ev[key])
        f = ev["v_projected_flip_frac"]
        assert f is None or 0.0 <= f <= 1.0
        assert (f is None) == (ev["v_projected_flip_cases"] == 0)
        assert ev["certified_not_robust"] == 0
        # per point: certified ⇒ survives every attack of E2; proven non-robust ⇒ not certified
        rc = robust_correct(r.W, X, y, prob.features[1], cfg, eval_rng(cfg, mode))
        cert = certify(r.W, X, y, q=cfg.q, rho=cfg.rho, eps=cfg.eps, norm=cfg.norm)
        assert not np.any(cert & ~rc["robust"]), f"{mode}: a certified point was broken by an attack"
        assert ev["certified_robust_acc"] <= ev["robust_acc"]
        assert ev["certified_robust_acc"] + ev["proven_nonrobust_frac"] <= 1.0 + 1e-12


def test_keeping_perturbations_changes_no_number(cfg, trained):
    """robust_correct's adversarial inputs are returned, the booleans are those of the attacks."""
    prob, res = trained
    X, y, _ = prob.test
    W = res["st"].W
    rc = robust_correct(W, X, y, prob.features[1], cfg, eval_rng(cfg, "st"))
    for name, key in GENERAL_ATTACKS:
        assert rc[key] is not None and rc[key].shape == X.shape
        pred = reffeat.predict(W, rc[key], q=cfg.q, rho=cfg.rho)
        assert np.array_equal(pred == y, rc[name]), f"{name}: its adversarial inputs do not give its booleans"


def test_projected_flip_cases_counts_each_attack(cfg, trained):
    """One case per (point, general attack) that flips it; E2b never counted."""
    prob, res = trained
    X, y, _ = prob.test
    rc = robust_correct(res["st"].W, X, y, prob.features[1], cfg, eval_rng(cfg, "st"))
    cases, still = projected_flip_cases(res["st"].W, X, y, prob.features[1], rc, cfg)
    flips = sum(int((reffeat.predict(res["st"].W, rc[key], q=cfg.q, rho=cfg.rho) != y).sum())
                for _, key in GENERAL_ATTACKS)
    assert cases == flips and 0 <= still <= cases
    no_attack = {**rc, **{key: None for _, key in GENERAL_ATTACKS}}
    assert projected_flip_cases(res["st"].W, X, y, prob.features[1], no_attack, cfg) == (0, 0)


def test_records_carry_the_new_numbers_and_v2(cfg):
    sw = sweep_record(cfg)
    assert "claims_v2" in sw and set(sw["claims_v2"]) <= {"P1", "P2", "P3", "P4"}
    pr = pair_record(cfg, n_segments=1)
    for rec in (sw, pr):
        for mode in ("st", "at"):
            for key in NEW_KEYS + ("v_projected_flip_frac",):
                assert key in rec[mode], (mode, key)


def test_dense_logging_steps():
    assert [t for t in range(40) if logged_step(t, 10)] == [0, 1, 2, 4, 8, 10, 16, 20, 30, 32]
    assert [t for t in range(5) if logged_step(t, 1)] == [0, 1, 2, 3, 4]


def test_history_is_dense_and_renamed_and_final_weights_unchanged(cfg):
    prob = problem(cfg)
    r = train(cfg, "at", prob)
    assert r.history["step"] == [0, 1, 2, 4, 5, 8, 10, 12]
    assert "robust_acc_cheap" in r.history and "robust_acc" not in r.history
    sparse = train(cfg.replace(log_every=cfg.T), "at", prob)       # other logged steps, same W
    assert np.array_equal(r.W, sparse.W)


def test_run_summary_table_and_report(cfg, tmp_path):
    from reffeat.cli.run import format_header, format_table
    s = run_synthetic(cfg, ("st", "at"), str(tmp_path), figures=False, progress=None)
    reg = s["regime"]
    assert "RC6" in reg["conditions"] and "all_met_initial" in reg
    assert set(reg["rc6"]) == {"st", "at"}
    assert reg["all_met"] == (reg["all_met_initial"] and reg["conditions"]["RC6"]["met"])
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["at"]["certified_robust_acc"] == s["at"]["certified_robust_acc"]
    table = format_table(s)
    assert "claims on this seed (SPEC V1):" in table and "claims on this seed (SPEC V2):" in table
    assert "robust acc, true value in [certified, attacked]: ST [" in table and "AT [" in table
    assert "RC6" in format_header(s)
    html = (tmp_path / "report.html").read_text()
    assert "true value in [certified, attacked]" in html and "SPEC V2" in html


def test_trace_run_has_rc6_along_the_trace(cfg, tmp_path):
    s = run_synthetic(cfg, ("at",), str(tmp_path), figures=False, report=False, progress=None, trace=True)
    tr = s["at"]["rc6_trace"]
    assert len(tr["step"]) == len(tr["value"]) >= 2 and tr["step"][-1] == cfg.T


def test_training_saved_before_evaluation(cfg, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("stopped during evaluation")
    monkeypatch.setattr(synthetic, "evaluate", boom)
    with pytest.raises(RuntimeError, match="during evaluation"):
        run_synthetic(cfg, ("st",), str(tmp_path), figures=False, report=False, progress=None)
    assert os.path.exists(tmp_path / "weights_st.npz")
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["st"]["evaluated"] is False and s["st"]["history"]["step"][-1] == cfg.T


def test_public_api():
    assert reffeat.certify is certify
    from reffeat.certify import certify_bounds
    from reffeat.claims import claims
    from reffeat.regime import regime
    assert reffeat.certify_bounds is certify_bounds
    assert reffeat.regime_conditions is regime and reffeat.check_claims is claims
    import reffeat.claims as claims_module  # the module is still reachable by its name
    assert hasattr(claims_module, "STATEMENTS")


def test_verify_rc6_section_confusion_and_markdown(tmp_path):
    """The RC6-vs-P4 section on a tiny regime: one record per (regime, seed) with RC6
    and both P4 verdicts, the confusion tables count them, the Markdown shows them."""
    from reffeat.verify import rc6
    res = rc6.run(seeds=[0, 1], regimes=(("tiny", "default", dict(TINY, log_every=12)),))
    recs = res["records"]
    assert [r["seed"] for r in recs] == [0, 1]
    for r in recs:
        assert isinstance(r["rc6_met"], bool) and r["rc6_met"] == (r["rc6_value"] < 1)
        assert r["p4"] == r["claims"]["P4"] and r["p4_v2"] == r["claims_v2"]["P4"]
    c = res["confusion_v1"]
    assert c["n"] == 2 and c["met_holds"] + c["met_fails"] == sum(r["rc6_met"] for r in recs)
    md = rc6.markdown(res)
    assert md.startswith(rc6.TITLE) and "P4 (V2)" in md and "| tiny | 1 |" in md
    rc6.write_section_json(str(tmp_path), rc6.JSON_NAME, {"quick": True, "result": res})
    assert rc6.section_from_json(str(tmp_path), str(tmp_path), str) == rc6.markdown(res, True)


def test_verify_v2_beside_v1_in_claim_results():
    from reffeat.verify import p4
    from reffeat.verify.common import table_check
    from reffeat.verify.report import summary_table
    st = {"clean_acc": 1.0, "robust_acc": 0.0, "robust_acc_pgd": 0.0, "gamma": 0.1, "phi": 1.0, "alignment": 1.0,
          "robust_acc_feature_attack": 0.0, "v_projected_flip_frac": 1.0}
    recs = [{"seed": s, "st": st, "at": {**st, "robust_acc": rob, "gamma": 1.0, "phi": 0.1}}
            for s, rob in enumerate((0.95, 0.6, 0.95))]
    res = table_check(p4, recs, Config())
    assert res.holds == [True, True, True] and res.holds_v2 == [True, False, True]
    assert "V2: 2/3" in summary_table({"default": {"P4": res}})
