"""verify's sections "Neighbourhood of the default" (SPEC §11 "region, not point")
and "Toward the theorems' regime" (SPEC §12): Markdown, the family figure, and the
``section`` / ``section_from_json`` pair that ``verify/run.py`` calls for
``--only neighbourhood`` and ``--only family`` (each writes its JSON into the
output folder; a later ``--only`` run of another section keeps it).

The measurements are ``verify.region``'s (one per-seed job ``region.seed_job``:
ST + AT of ``experiments.synthetic.run_seed``, the claims under V1 and V2, AT's
attacked (E2) and certified (E5) robust accuracy, RC6 at AT's final weights).
"""

from __future__ import annotations

import math
import os

import numpy as np

from reffeat.claims import describe, wilson
from reffeat.plots import pyplot as _plt
from reffeat.plots import save_figure

from . import region
from .common import command_text, commit_text, read_section_json, write_section_json

#: the §11 criterion: every neighbour holds on at least this many of 20 seeds
REGION_MIN, REGION_OF = 19, 20
QUICK_SEEDS = 2
QUICK_SIZES = (16,)


def _f(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}" if abs(x) < 100 else f"{x:.3g}"


def _stat(d, key="mean") -> str:
    return "—" if not d else _f(d.get(key))


def _header(res: dict, cmd: str) -> list:
    prov = res.get("provenance") or {}
    wall = res.get("wall_s")
    return [command_text(cmd, prov),
            f"at commit {commit_text(prov) or '?'}; "
            "seeds 0 to n − 1 of each row (n in the table; the run goes in rounds of "
            f"{', '.join(map(str, region.ROUNDS))} seeds, every row before any gets more, and was "
            f"{'stopped' if res.get('seeds_done', 0) < res.get('seeds', 0) else 'run'} with "
            f"{res.get('seeds', '?')} as its target)"
            + (f"; wall time of the invocation that finished it {wall / 60:.1f} min (REFFEAT_THREADS=1, "
               "on a 2-core machine shared with other work; seed-runs that an earlier, stopped invocation "
               "left in the result store are not in it — the last column gives each seed's own time)"
               if wall else "") + ".", ""]


def _row_claims(s: dict, version: str) -> str:
    c = s[version].get("all")
    return c["text"] if c else "—"


def _meets(s: dict, version: str) -> bool:
    c = s[version].get("all")
    n = s["n"]
    return bool(c) and n >= REGION_OF and c["holds"] >= REGION_MIN * n / REGION_OF


def markdown_neighbourhood(res: dict, quick: bool = False) -> str:
    """The neighbourhood table (V1 and V2 counts with Wilson intervals, attacked and
    certified robust accuracy of AT, RC6) and the §11 verdict."""
    cmd = "python -m reffeat.verify --only neighbourhood" + (" --quick" if quick else "") + " --out DIR"
    cfg = res.get("config") or {}
    lines = ["## Neighbourhood of the default (SPEC §11, region not point)", ""] + _header(res, cmd)
    lines += [f"The centre is the default Config (ε = {cfg.get('eps')}, α = {cfg.get('alpha')}, "
              f"β = {cfg.get('beta')}, σ_0 = {cfg.get('sigma0')}, σ_ξ = {cfg.get('sigma_xi')}, "
              f"η = {cfg.get('eta')}, T = {cfg.get('T')}); each row moves one parameter. \"all\" = P1–P4 "
              "all hold on the seed (V1: the pre-registered thresholds; V2: the stricter claims of SPEC §9, "
              "where P2 needs ≥ 90% of ST's PGD/APGD flips to stay on span{v}). AT robust accuracy: "
              "attacked = E2 (PGD, APGD-CE/DLR, feature attack), certified = E5 (a lower bound); "
              "mean [min] over seeds. RC6 met = the adversary's reach at AT's learned weights is below "
              "the robust margin (value < 1).", "",
              "| row | seeds | all V1 | all V2 | AT attacked mean [min] | AT certified mean [min] | "
              "RC6 met | RC6 range | s/seed |", "|" + "---|" * 9]
    by = res.get("by_neighbour", {})
    for label, s in by.items():
        rc6 = s.get("rc6_r", {})
        lines.append(f"| {label} | {s['n']} | {_row_claims(s, 'V1')} | {_row_claims(s, 'V2')} | "
                     f"{_stat(s['at_robust_acc'])} [{_stat(s['at_robust_acc'], 'min')}] | "
                     f"{_stat(s['at_certified_acc'])} [{_stat(s['at_certified_acc'], 'min')}] | "
                     f"{rc6.get('met', 0)}/{s['n']} | {_f(rc6.get('min'))}–{_f(rc6.get('max'))} | "
                     f"{_stat(s['wall_s'])} |")
    neigh = {k: v for k, v in by.items() if k != "centre"}
    if neigh:
        for v in ("V1", "V2"):
            bad = [k for k, s in neigh.items() if not _meets(s, v)]
            lines += ["", f"Under {v}: " + (f"every neighbour holds on ≥ {REGION_MIN}/{REGION_OF} seeds."
                                          if not bad else
                                          f"{len(bad)} of {len(neigh)} neighbours hold on fewer than "
                                          f"{REGION_MIN}/{REGION_OF} seeds: {', '.join(bad)}.")]
    return "\n".join(lines) + "\n"


def markdown_family(res: dict, fig_rel: str | None, quick: bool = False) -> str:
    """The family's regime table, the per-size counts and the figure."""
    cmd = "python -m reffeat.verify --only family" + (" --quick" if quick else "") + " --out DIR"
    lines = ["## Toward the theorems' regime (SPEC §12: q = 3, growing d_N)", ""] + _header(res, cmd)
    lines += ["`reffeat.presets.theorem_family(d_N)`: q = 3, ε = 1.25/√d_N (so ε‖v‖₁ = 1.25β at every "
              "size while ε‖u‖₁ → 0), σ_0 ∝ 1/√d_N, η = 0.75 × RC3's bound, T = 3.5 × RC4's take-off "
              "(the derivation is in the docstring). First table: the a-priori conditions RC1–RC5 of "
              "each member (✗ = not met) and the Config-only RC6 estimate; second: the measured counts.",
              "", region.format_family(res), ""]
    if fig_rel:
        lines += [f"![family]({fig_rel})", ""]
    sizes = list(res.get("by_size", {}))
    if sizes:
        last = res["by_size"][sizes[-1]]
        k, n = last["V1"]["all"]["holds"], last["n"]
        lines.append(f"Goal (issue 21): all claims on ≥ {REGION_MIN}/{REGION_OF} seeds at the largest size. "
                     f"Measured at d_N = {sizes[-1]}: {describe(k, n)} (V1). "
                     + ("Met." if n >= REGION_OF and k >= REGION_MIN else
                        "Not met: this family does not reach the theorems' regime in this model; "
                        "the condition that fails is the one in the RC6 column (the adversary's reach "
                        "through AT's learned off-feature weights)."))
    return "\n".join(lines) + "\n"


def fig_family(res: dict, path: str) -> str:
    """Fraction of seeds with all claims holding (V1, V2; Wilson 95% bars) and AT's
    attacked / certified robust accuracy, against d_N."""
    plt = _plt()
    by = res["by_size"]
    d = np.array([int(x) for x in by], float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    # V1 and V2 (and attacked / certified) drawn side by side: equal values stay visible
    for v, mk, dx in (("V1", "o-", 1 / 1.05), ("V2", "s--", 1.05)):
        k = np.array([by[x][v]["all"]["holds"] for x in by], float)
        n = np.array([by[x]["n"] for x in by], float)
        lo_hi = np.array([wilson(int(a), int(b)) for a, b in zip(k, n)])
        fr = k / n
        a1.errorbar(d * dx, fr, yerr=np.clip([fr - lo_hi[:, 0], lo_hi[:, 1] - fr], 0, None), fmt=mk, capsize=3,
                    label=f"all claims hold ({v})")
    a1.axhline(REGION_MIN / REGION_OF, color="grey", lw=1, ls=":", label="goal: 19 of 20 seeds")
    a1.set_ylabel("fraction of seeds")
    a1.set_title("claims P1–P4 (95% Wilson intervals)", fontsize=10)
    for key, lab, mk, dx in (("at_robust_acc", "AT attacked (E2, upper bound)", "o-", 1 / 1.05),
                             ("at_certified_acc", "AT certified (E5, lower bound)", "s--", 1.05)):
        y = np.array([(by[x].get(key) or {}).get("mean", np.nan) for x in by], float)
        a2.plot(d * dx, y, mk, label=lab)
    a2.set_ylabel("robust accuracy (mean over seeds)")
    a2.set_title("AT's robust accuracy at $\\varepsilon = 1.25/\\sqrt{d_N}$", fontsize=10)
    for ax in (a1, a2):                          # the axes both panels share
        ax.set_xscale("log", base=2)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("non-robust dimension $d_N$")
        ax.legend(fontsize=8, loc="center", bbox_to_anchor=(0.5, 0.77))
        ax.set_xticks(d, [str(int(x)) for x in d])
        ax.minorticks_off()
    ns = [by[x]["n"] for x in by]
    per = f"seeds 0–{ns[0] - 1} per size" if len(set(ns)) == 1 else \
        "seeds 0 to n−1 per size, n = " + ", ".join(map(str, ns))
    fig.suptitle(f"q = 3 family theorem_family(d_N): {per}, ℓ∞ threat", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)
    return path


class _Section:
    """The (section, section_from_json) pair verify/run.py calls for ``--only NAME``."""

    def __init__(self, name: str):
        self.name = name
        self.json_name = f"{name}.json"

    def _markdown(self, res: dict, quick: bool, fig_dir: str, rel) -> str:
        if self.name == "neighbourhood":
            return markdown_neighbourhood(res, quick)
        fig = None
        if res.get("by_size"):
            fig = rel(fig_family(res, os.path.join(fig_dir, "verify_family.png")))
        return markdown_family(res, fig, quick)

    def section(self, quick: bool, runner, fig_dir: str, rel, out_dir: str) -> str:
        seeds = QUICK_SEEDS if quick else REGION_OF
        if self.name == "neighbourhood":
            res = region.run_neighbourhood(seeds, runner, None)
        else:
            res = region.run_family(QUICK_SIZES if quick else region.FAMILY_SIZES, seeds, runner, None)
        write_section_json(out_dir, self.json_name, {"quick": quick, "result": res})
        return self._markdown(res, quick, fig_dir, rel)

    def section_from_json(self, out_dir: str, fig_dir: str, rel) -> str | None:
        stored = read_section_json(out_dir, self.json_name)
        if stored is None:
            return None
        return self._markdown(stored["result"], stored["quick"], fig_dir, rel)


neighbourhood = _Section("neighbourhood")
family = _Section("family")
