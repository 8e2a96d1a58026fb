"""``--seeds N`` of the real-image experiment: ``experiments.real.run`` for
seeds c.seed … c.seed+N−1, each in OUT/seedS, then mean ± std and 95%
t-intervals of every headline number (``stats``) in OUT/results.json and the
accuracy-vs-ε figure over seeds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .. import provenance
from ..output import atomic_write_bytes, atomic_write_json, package_versions
from .real import _say, run


def stats(values) -> dict:
    """mean, std (ddof 1), the 95% t-interval of the mean and the values; None entries
    are dropped (interval null for fewer than 2 values)."""
    v = np.array([x for x in values if x is not None], dtype=float)
    out = {"n": int(v.size), "values": v.tolist(), "mean": float(v.mean()) if v.size else None,
           "std": None, "ci95": None}
    if v.size >= 2:
        from scipy.stats import t as _t
        sd = float(v.std(ddof=1))
        half = float(_t.ppf(0.975, v.size - 1)) * sd / np.sqrt(v.size)
        out.update(std=sd, ci95=[out["mean"] - half, out["mean"] + half])
    return out


def _headline_numbers(r: dict) -> dict:
    """The numbers of one seed that --seeds summarises (flat name -> value or None)."""
    out = {}
    hl = r.get("headline", {})
    for mode in ("st", "at"):
        for key in ("clean", "robust", "pgd", "apgd_ce", "apgd_dlr"):
            if mode in hl:
                out[f"{mode}_{key}"] = hl[mode].get(key)
        if mode in r.get("linear", {}):
            out[f"linear_{mode}_clean"] = r["linear"][mode]["clean"]
            out[f"linear_{mode}_robust"] = r["linear"][mode]["robust"]
    b = r.get("lenses", {}).get("datasets", {})
    for key in ("st_on_D_R", "at_on_D_R", "st_on_D_NR", "at_on_D_NR"):
        if key in b:
            out[key] = b[key]
    for name, f in b.get("fresh", {}).items():
        out[f"fresh_{name}_clean"], out[f"fresh_{name}_robust"] = f["clean"], f["robust"]
    return out


def finished(directory: Path, c: dict):
    """The results of a finished run in ``directory`` with exactly config ``c``, else None."""
    path = directory / "results.json"
    if not path.is_file():
        return None
    try:
        r = json.loads(path.read_text())
    except ValueError:
        return None
    done = r.get("stopped") is None and r.get("stages_done", [])[-1:] == ["figures"]
    return r if done and r.get("config") == json.loads(json.dumps(c)) else None


def run_seeds(c: dict, out: Path, n_seeds: int, *, data_dir=None, resume=False, figures_dir=None,
              smoke_test=False, progress=None) -> dict:
    """``--seeds N``: the whole pipeline for seeds c.seed … c.seed+N−1 in out/seedS, then
    mean ± std and 95% t-intervals of every headline number in out/results.json.
    The figures of the first seed are the ones copied to ``figures_dir``; the
    accuracy-vs-ε figure of out/ shows the mean and the spread over seeds.
    ``smoke_test`` (``--quick``): recorded in every results.json (``"smoke_test": true``);
    ``progress``: as ``experiments.real.run``."""
    t_start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    seeds = [c["seed"] + i for i in range(n_seeds)]
    agg = {"kind": "real-seeds", "smoke_test": bool(smoke_test), "config": c, "seeds": seeds,
           "versions": package_versions(),
           "provenance": provenance.record(), "runs": {}, "stopped": None}
    runs = []
    try:
        for i, s_ in enumerate(seeds):
            r = finished(out / f"seed{s_}", dict(c, seed=s_)) if resume else None
            if r is not None:                   # --resume: a finished seed is read, not re-run
                _say(f"[real] seed {s_}: finished run found in {out / f'seed{s_}'}; not re-running it")
                if figures_dir is not None and i == 0:
                    for f in r.get("figures", []):
                        atomic_write_bytes(Path(figures_dir) / f"real_{c['dataset']}_{f}",
                                           (out / f"seed{s_}" / f).read_bytes())
            else:
                r = run(dict(c, seed=s_), out / f"seed{s_}", data_dir=data_dir, resume=resume,
                        figures_dir=figures_dir if i == 0 else None, smoke_test=smoke_test,
                        progress=progress)
            runs.append(r)
            agg["runs"][str(s_)] = {"results": f"seed{s_}/results.json", "wall_time": r["wall_time"]}
    except KeyboardInterrupt:
        agg["stopped"] = "interrupted"
        raise
    finally:
        if runs:
            nums = [_headline_numbers(r) for r in runs]
            agg["summary"] = {key: stats([n.get(key) for n in nums]) for key in nums[0]}
            a0 = runs[0]["lenses"]["acc_vs_eps"] if "acc_vs_eps" in runs[0].get("lenses", {}) else None
            if a0 is not None and all("acc_vs_eps" in r.get("lenses", {}) for r in runs):
                agg["acc_vs_eps"] = {"eps": a0["eps"], "attack": a0["attack"]}
                for key in ("st", "at", "linear_st", "linear_at"):
                    cols = np.array([r["lenses"]["acc_vs_eps"][key] for r in runs], dtype=float)
                    agg["acc_vs_eps"][key] = [stats(cols[:, j]) for j in range(cols.shape[1])]
            agg["wall_time"] = time.perf_counter() - t_start
            agg["seeds_done"] = [r["seed"] for r in runs]
            atomic_write_json(out / "results.json", agg)
    if len(runs) > 1 and "acc_vs_eps" in agg:
        from ..real import figures as real_figures
        real_figures.acc_vs_eps_seeds_figure(agg, out / "acc_vs_eps_seeds.png")
        if figures_dir is not None:
            atomic_write_bytes(Path(figures_dir) / f"real_{c['dataset']}_acc_vs_eps_seeds.png",
                               (out / "acc_vs_eps_seeds.png").read_bytes())
    _say(f"[real] {len(runs)} seeds done in {agg['wall_time']:.0f}s -> {out / 'results.json'}")
    return agg
