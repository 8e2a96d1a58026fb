"""verify, section "RC6 predicts P4": does RC6 (SPEC §11, the adversary's reach
at the learned weights, ``reffeat.regime.rc6_reach``) met at AT's final
weights predict P4 (V1, and V2 beside it) per seed?

One job per (regime, seed), through verify's ``Runner`` and result store
(``rc6_job``): ST and AT of the seed (``experiments.synthetic.run_seed``, the
run command's pipeline, no C4), every E-scalar of both modes (E5 included),
the claims under V1 and V2 (``reffeat.claims``), and RC6 (value, met, detail)
at AT's final W.  Pooled over the regimes of ``REGIMES`` — presets default,
q3, high-dim, borderline, and default with ε = 0.16 and ε = 0.25 — × 17 seeds
(0–16), the confusion table of ``regime.confusion`` / ``format_confusion``
(RC6 met vs P4 holds), overall and per regime, for P4 under V1 and under V2.
The measurement logic is the rc6v2 helper's (/work/rc6runs/measure.py): RC6
variant "r", met when the value is < 1, predictor fixed before this section.
"""

from __future__ import annotations

import math

from reffeat import presets as _presets
from reffeat.claims import claims
from reffeat.config import Config
from reffeat.experiments.synthetic import e_scalars, run_seed
from reffeat.regime import confusion, format_confusion, rc6_reach
from reffeat.train import problem

from .common import BAB_BUDGET, as_runner, read_section_json, write_section_json

JSON_NAME = "rc6.json"
TITLE = "## RC6 predicts P4"
#: (label, preset, overrides): the pooled regimes (issue 20: ≥ 100 seed-runs)
#: The default and its ε×0.8 / ε×1.25 neighbours are not run here: the section pools
#: the records of the "Neighbourhood of the default" (every neighbour, 20 seeds) and of
#: "Toward the theorems' regime" when their JSON is in the output folder (``pooled``).
REGIMES = (("q3", "q3", {}), ("high-dim", "high-dim", {}), ("borderline", "borderline", {}))
SEEDS, QUICK_SEEDS = 10, 2
#: --quick: the regimes kept (CI time)
QUICK_REGIMES = ("borderline",)


def rc6_job(cfg: Config, regime: str = "default", bab_budget: int = BAB_BUDGET) -> dict:
    """One (regime, seed) record: per mode every E-scalar of ``metrics.evaluate``
    (E5 at ``bab_budget``), the V1 and V2 claims, and RC6 at AT's final weights
    (a ``reffeat.jobs`` job: a pure function of its Config and arguments)."""
    prob = problem(cfg)
    runs = run_seed(cfg, prob=prob, track_c4=False, evaluate_options={"bab_budget": bab_budget})
    rec: dict = {"regime": regime, "seed": cfg.seed}
    for mode, run in runs.items():
        rec[mode] = e_scalars(run.evaluation)
    c1, c2 = claims(rec), claims(rec, "V2")
    rc6 = rc6_reach(cfg, runs["at"].result.W, prob.features)
    rec.update({"claims": c1, "claims_v2": c2, "p4": bool(c1["P4"]), "p4_v2": bool(c2["P4"]),
                "rc6_value": rc6.value, "rc6_met": bool(rc6.met), "rc6_detail": rc6.detail})
    return rec


def run(seeds=range(SEEDS), regimes=REGIMES, runner=None) -> dict:
    """Every (regime, seed) job through ``runner`` (``common.as_runner``); the
    records and the confusion tables (V1, V2), overall and per regime."""
    cfgs, kws = [], []
    for label, preset, over in regimes:
        base = _presets.config(preset, **over)
        for s in seeds:
            cfgs.append(base.replace(seed=int(s)))
            kws.append({"regime": label})
    records = as_runner(runner).map(rc6_job, cfgs, kws, label="RC6 vs P4 (ST+AT)")
    pooled = [{**r, "preset": r["regime"]} for r in records]
    return {"records": records, "confusion_v1": confusion(pooled, "rc6_met", "p4"),
            "confusion_v2": confusion(pooled, "rc6_met", "p4_v2"),
            "regimes": [label for label, _, _ in regimes], "seeds": [int(s) for s in seeds]}


def pooled(out_dir: str) -> list:
    """The seed-runs of the neighbourhood and family sections in ``out_dir`` (their
    ``verify.region.seed_job`` records) as this section's records: regime = the row's
    label ("neighbourhood: epsx1.25", "family: d_N=64"), RC6 variant "r"."""
    out = []
    for name, prefix in (("neighbourhood.json", "neighbourhood"), ("family.json", "family: d_N=")):
        stored = read_section_json(out_dir, name)
        if stored is None:
            continue
        for label, recs in stored["result"].get("records", {}).items():
            for r in recs:
                c1, c2 = r["claims"]["V1"], r["claims"]["V2"]
                out.append({"regime": f"{prefix}{label}" if prefix.endswith("=") else f"{prefix}: {label}",
                            "seed": r["seed"], "st": r["st"],
                            "at": {**r["at"], "certified_robust_acc": r.get("at_certified_acc")},
                            "claims": c1, "claims_v2": c2, "p4": bool(c1.get("P4")),
                            "p4_v2": bool(c2.get("P4")), "rc6_value": r["rc6"]["r"]["value"],
                            "rc6_met": bool(r["rc6"]["r"]["met"])})
    return out


def with_pooled(res: dict, out_dir: str) -> dict:
    """``res`` with the pooled records appended and the confusion tables recomputed."""
    extra = pooled(out_dir)
    if not extra:
        return res
    records = list(res["records"]) + extra
    pool = [{**r, "preset": r["regime"]} for r in records]
    return {**res, "records": records, "pooled_from": sorted({r["regime"].split(":")[0] for r in extra}),
            "confusion_v1": confusion(pool, "rc6_met", "p4"),
            "confusion_v2": confusion(pool, "rc6_met", "p4_v2")}


def _per_regime(recs: list) -> list:
    """One Markdown row per regime (in order of appearance): V1/V2 counts and RC6."""
    from reffeat.claims import describe
    rows, order = [], list(dict.fromkeys(r["regime"] for r in recs))
    for reg in order:
        rr = [r for r in recs if r["regime"] == reg]
        n = len(rr)

        def cnt(pred, rr=rr, n=n):
            k = sum(bool(pred(r)) for r in rr)
            return describe(k, n).split(":")[0]
        rows.append(f"| {reg} | {n} | {cnt(lambda r: r['claims'] and all(r['claims'].values()))} | "
                    f"{cnt(lambda r: r['claims_v2'] and all(r['claims_v2'].values()))} | "
                    f"{sum(r['p4'] for r in rr)}/{n} | {sum(r['p4_v2'] for r in rr)}/{n} | "
                    f"{sum(r['rc6_met'] for r in rr)}/{n} | {sum(r['rc6_met'] == r['p4'] for r in rr)}/{n} |")
    return rows


def _f(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}g}" if isinstance(x, float) and abs(x) >= 10 else f"{x:.{digits}f}"


def markdown(res: dict, quick: bool = False) -> str:
    """The section's Markdown: the two confusion tables and the per-seed rows."""
    cmd = f"`python -m reffeat.verify --only rc6{' --quick' if quick else ''} --out DIR`"
    recs = res["records"]
    lines = [TITLE, "", f"Regenerate this section alone with {cmd}.", "",
             f"RC6 (reach at AT's final weights, met when < 1) against P4 per seed: "
             f"{len(recs)} seed-runs: regimes {', '.join(res['regimes'])} × seeds "
             f"{res['seeds'][0]}–{res['seeds'][-1]} run by this section"
             + (f", pooled with every seed-run of the sections {' and '.join(res['pooled_from'])} "
                "(the rows named after them)" if res.get("pooled_from") else "")
             + ". Agreement = fraction of seeds where "
             "\"RC6 met\" equals \"P4 holds\". RC6 is computed by `reffeat.regime.rc6_reach` (variant "
             f"\"r\"); the certified robust accuracy (E5) at branch-and-bound budget {BAB_BUDGET}.", "",
             "### V1 and V2 counts per regime", "",
             "All = P1–P4 all hold on the seed; 95% Wilson intervals; agreement = seeds where "
             "\"RC6 met\" equals \"P4 (V1) holds\".", "",
             "| regime | seed-runs | all V1 | all V2 | P4 V1 | P4 V2 | RC6 met | agreement |",
             "|---|---|---|---|---|---|---|---|",
             *_per_regime(recs), "",
             "### P4 (V1, pre-registered)", "", format_confusion(res["confusion_v1"]), "",
             "### P4 (V2)", "", format_confusion(res["confusion_v2"], "RC6 met", "P4 (V2) holds"), "",
             "### Per seed (this section's regimes; the pooled ones are in their sections)", "",
             "| regime | seed | RC6 | met | P4 V1 | P4 V2 | AT robust [certified, attacked] | AT clean |",
             "|---|---|---|---|---|---|---|---|"]
    own = set(res["regimes"])
    for r in recs:
        if r["regime"] not in own:          # pooled rows: in their own sections' tables
            continue
        at = r.get("at", {})
        lines.append(f"| {r['regime']} | {r['seed']} | {_f(r['rc6_value'])} | {'yes' if r['rc6_met'] else 'no'} "
                     f"| {'holds' if r['p4'] else 'fails'} | {'holds' if r['p4_v2'] else 'fails'} "
                     f"| [{_f(at.get('certified_robust_acc'))}, {_f(at.get('robust_acc'))}] "
                     f"| {_f(at.get('clean_acc'))} |")
    return "\n".join(lines) + "\n"


def section(quick: bool, runner, fig_dir: str, rel, out_dir: str) -> str:
    """Run the section, write ``rc6.json`` into ``out_dir``; return its Markdown."""
    if quick:
        res = run(seeds=range(QUICK_SEEDS), regimes=[r for r in REGIMES if r[0] in QUICK_REGIMES],
                  runner=runner)
    else:
        res = run(runner=runner)
    write_section_json(out_dir, JSON_NAME, {"quick": quick, "result": res})
    return markdown(with_pooled(res, out_dir), quick)


def section_from_json(out_dir: str, fig_dir: str, rel) -> str | None:
    """The section's Markdown from the ``rc6.json`` an earlier run left (None if none)."""
    stored = read_section_json(out_dir, JSON_NAME)
    if stored is None:
        return None
    return markdown(with_pooled(stored["result"], out_dir), stored["quick"])
