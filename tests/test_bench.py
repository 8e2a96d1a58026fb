"""``python -m reffeat.bench``: the JSON contract of issue 4 and input checking.
No speed is asserted here (timed tests are flaky on a shared machine); the
targets are read off the benchmark itself."""
import json
import math

import pytest

from reffeat.cli import bench

KEYS = ("name", "st_step_s", "at_step_s", "pgd10_step_s", "reference_at_step_s", "speedup_at",
        "gflops_at", "peak_fraction_at", "peak_mem_bytes")


def test_bench_json_contract(capsys, monkeypatch):
    monkeypatch.setattr(bench, "WARM_S", 0.02)
    assert bench.main(["--json", "--config", "default", "--reps", "5", "--no-compile-probe"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert math.isfinite(res["gemm_gflops"]) and res["gemm_gflops"] > 0
    (c,) = res["configs"]
    for key in KEYS:
        assert key in c, key
    assert c["name"] == "default"
    for key in KEYS[1:]:
        assert math.isfinite(c[key]) and c[key] > 0, (key, c[key])
    # the speed-up is the median of the per-round ratios, the fraction uses the run's GEMM
    ratios = sorted(r / f for f, r in c["at_rounds_s"])
    assert len(ratios) == bench.ROUNDS and c["speedup_at"] == pytest.approx(ratios[len(ratios) // 2])
    assert c["peak_fraction_at"] == pytest.approx(c["gflops_at"] / res["gemm_gflops"])
    n, P, d, k, m = (c[x] for x in ("n", "P", "d", "k", "m"))
    assert c["gflops_at"] == pytest.approx(8 * n * P * d * k * m / c["at_step_s"] / 1e9)


def test_bench_rejects_too_few_reps(capsys):
    assert bench.main(["--reps", "3"]) == 2
    assert "--reps must be an integer in [5, 10000]" in capsys.readouterr().err


@pytest.mark.slow
def test_compile_probe_reports_cold_and_warm():
    """The compile-time probe: the default run's kernels compiled in an empty
    cache, then loaded from it; loading must do no compiling (cache hits)."""
    res = bench.compile_time()
    for what in ("cold", "warm"):
        assert set(res[what]["kernels"]) == {"G2 + C4 (grad_w_and_c4)", "T2 ascent (attack)",
                                             "N3 forward / G2 (forward, grad_w)"}
        assert math.isfinite(res[what]["total_wall_s"]) and res[what]["total_wall_s"] > 0
    assert res["warm"]["total_cpu_s"] < res["cold"]["total_cpu_s"], res
    assert "_pass" in res["cold"]["compiled"] and res["warm"]["compiled"] == [], res


def test_slots_compare_contract(capsys, monkeypatch):
    """``--slots-compare``: at 1 and 2 threads, ratio = median of the per-round
    time(SLOTS) / time(OLD_SLOTS); the §12 family's largest verify size is a config;
    the thread setting is restored after."""
    from reffeat import kernels
    monkeypatch.setattr(bench, "WARM_S", 0.02)
    monkeypatch.setattr(bench, "SLOTS_ROUNDS", 3)
    before = kernels.threads()
    assert bench.main(["--json", "--config", "theorem", "--reps", "5", "--no-compile-probe",
                       "--slots-compare"]) == 0
    assert kernels.threads() == before and kernels.SLOTS == 16
    res = json.loads(capsys.readouterr().out)
    (c,) = res["configs"]
    assert (c["name"], c["n"], c["P"], c["d"], c["k"], c["m"]) == ("theorem", 50, 64, 132, 4, 16)
    cmp = res["slots_compare"]
    assert (cmp["slots"], cmp["old_slots"]) == (16, 2)
    assert [row["threads"] for row in cmp["by_threads"]] == [1, 2]
    for row in cmp["by_threads"]:
        t = row["configs"]["theorem"]
        assert t["layout_slots"] == {"16": 13, "2": 2}        # 13 chunks of 4 samples
        for what in ("st", "at"):
            ratios = sorted(a / b for a, b in t[f"{what}_rounds_s"])
            assert len(ratios) == 3 and t[f"ratio_{what}"] == pytest.approx(ratios[1])
            assert math.isfinite(t[f"ratio_{what}"]) and t[f"ratio_{what}"] > 0
            assert math.isfinite(t[f"ratio_min_{what}"]) and t[f"ratio_min_{what}"] > 0
    assert cmp["max_ratio"] == max(t[f"ratio_{w}"] for row in cmp["by_threads"]
                                   for t in row["configs"].values() for w in ("st", "at"))
