"""Figures of the synthetic run: C2 coefficients Γ, Φ over training (ST vs AT),
clean/robust accuracy over training (E1, cheap E2), and the C4 decomposition.

Every figure says in its title which run it shows (seed, threat, preset), labels
both axes, names its curves in words, and marks the step where a training loss
blew up.  matplotlib with the Agg backend (no screen needed); every file is
written atomically.
"""

from __future__ import annotations

import io
import os

import numpy as np

from .metrics import PART_NAMES, c4_per_step
from .output import atomic_write_bytes

#: legend words for the C4 parts (metrics.PART_NAMES)
PART_WORDS = {
    "own_R": "own class, robust patches",
    "own_N": "own class, non-robust patches",
    "own_noise": "own class, noise patches",
    "other_R": "other classes, robust patches",
    "other_N": "other classes, non-robust patches",
    "other_noise": "other classes, noise patches",
}
MODE_WORDS = {"st": "ST (standard training)", "at": "AT (adversarial training)"}
_NORM_SYM = {"linf": "ℓ∞", "l2": "ℓ2", "l2-patch": "ℓ2 per patch"}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no screen needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path) -> str:
    """Write ``fig`` as PNG to ``path`` atomically (temp file, then rename)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def run_label(summary: dict) -> str:
    """'preset X, seed 0, ℓ∞ ε = 0.2, η = 0.5, q = 3' — which run a figure shows."""
    cfg = summary.get("config", {})
    out = (f"seed {summary.get('seed', cfg.get('seed'))}, "
           f"{_NORM_SYM.get(cfg.get('norm'), cfg.get('norm'))} ε = {cfg.get('eps'):g}, "
           f"η = {cfg.get('eta'):g}, q = {cfg.get('q'):g}")
    return (f"preset {summary['preset']}, " if summary.get("preset") else "") + out


def blowups(summary: dict, results: dict) -> dict:
    """mode -> (step, peak loss, initial loss) where the training loss rose above
    twice its start (the run's table warns about the same)."""
    out = {}
    for m, res in results.items():
        s = summary.get(m, {})
        h = res.history
        peak, step = res.extra.get("max_loss", s.get("max_loss")), res.extra.get("max_loss_step",
                                                                                s.get("max_loss_step"))
        if h["loss"] and peak is not None and np.isfinite(h["loss"][0]) and peak > 2 * h["loss"][0]:
            out[m] = (int(step), float(peak), float(h["loss"][0]))
    return out


def _mark_blowups(ax, blown, colors):
    for m, (step, peak, _) in blown.items():
        ax.axvline(step, color=colors.get(m, "red"), ls=":", lw=1.2)
        ax.plot([step], [ax.get_ylim()[1]], marker="x", color="red", ms=9, mew=2, clip_on=False,
                label=f"{m.upper()} loss blew up (step {step}, loss {peak:.3g})")


def write_figures(summary: dict, results: dict, out_dir: str) -> list[str]:
    """Write coefficients.png, accuracy.png and c4_<mode>.png; return the file names."""
    plt = pyplot()
    written = []
    modes = [m for m in ("st", "at") if m in results]
    label = run_label(summary)
    blown = blowups(summary, results)
    colors = {"st": "tab:blue", "at": "tab:orange"}
    # C2 over training
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0))
    for ax, key, title, ylab in (
            (axes[0], "gamma", r"robust feature: $\Gamma_j = \mathrm{max}_r\, \langle w_{j,r}, u_j \rangle$",
             r"$\Gamma_j$, mean over classes j"),
            (axes[1], "phi", r"non-robust feature: $\Phi_j = \mathrm{max}_r\, \langle w_{j,r}, v_j \rangle$",
             r"$\Phi_j$, mean over classes j")):
        for m in modes:
            h = results[m].history
            ax.plot(h["step"], h[key], color=colors[m], label=MODE_WORDS[m])
        _mark_blowups(ax, blown, colors)
        ax.set_xlabel("training step t"); ax.set_ylabel(ylab); ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(f"C2 feature coefficients over training — {label}")
    written.append(save_figure(fig, os.path.join(out_dir, "coefficients.png"))); plt.close(fig)
    # accuracy over training: ST's and AT's clean lines often coincide (both 1.0), so
    # ST is drawn dash-dotted on top of AT's solid line with markers
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    clean_style = {"st": dict(ls="-.", lw=1.8, zorder=4),
                   "at": dict(ls="-", lw=2.6, marker="o", ms=4, alpha=0.8, zorder=3)}
    for m in modes:
        h = results[m].history
        style = dict(clean_style[m])
        if "marker" in style:
            style["markevery"] = max(1, len(h["step"]) // 12)
        ax.plot(h["step"], h["clean_acc"], color=colors[m], label=f"{m.upper()} clean test accuracy",
                **style)
        cheap = h["robust_acc_cheap"] if "robust_acc_cheap" in h else h["robust_acc"]   # old files
        ax.plot(h["step"], cheap, "--", color=colors[m], zorder=2,
                label=f"{m.upper()} robust (cheap: FGSM + feature attack)")
    ax.set_ylim(-0.05, 1.05)
    _mark_blowups(ax, blown, colors)
    ax.set_xlabel("training step t"); ax.set_ylabel("test accuracy")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    ax.grid(alpha=0.3)
    ax.set_title(f"Test accuracy during training — {label}\n(the table's robust accuracy uses "
                 "the full attacks: PGD, APGD and the feature attack)", fontsize=10)
    written.append(save_figure(fig, os.path.join(out_dir, "accuracy.png"))); plt.close(fig)
    # C4 decomposition (cumulative), one figure per mode; parts that stay exactly 0
    # are not drawn (a flat line at 0 under the others would only fill the legend)
    part_colors = {part: f"C{i}" for i, part in enumerate(PART_NAMES)}
    for m in modes:
        res = results[m]
        if not len(res.c4_gamma):
            continue
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
        for ax, arr, sym, feat, word in (
                (axes[0], res.c4_gamma, r"\Gamma", "u_j", "robust feature"),
                (axes[1], res.c4_phi, r"\Phi", "v_j", "non-robust feature")):
            per_step = c4_per_step(arr)
            cum = np.cumsum(per_step, axis=0)
            steps = np.arange(1, len(cum) + 1)
            ax.plot(steps, cum.sum(axis=1), color="0.6", lw=5, alpha=0.5,
                    label="total = actual change", zorder=0)
            zero = [part for i, part in enumerate(PART_NAMES) if not np.any(per_step[:, i])]
            for i, part in enumerate(PART_NAMES):
                if part in zero:
                    continue
                ax.plot(steps, cum[:, i], label=PART_WORDS.get(part, part), color=part_colors[part],
                        ls="-" if part.startswith("own") else "--")
            if m in blown:
                ax.axvline(blown[m][0], color="red", ls=":", lw=1.2,
                           label=f"loss blew up (step {blown[m][0]})")
            ax.set_xlabel("training step t")
            ax.set_ylabel(f"cumulative change of $\\Sigma_r\\, {sym}_{{j,r}}$")
            ax.set_title(f"$\\Sigma_r\\, {sym}_{{j,r}} = \\Sigma_r \\langle w_{{j,r}}, {feat} \\rangle$ "
                         f"({word}), mean over classes j\n"
                         f"(a sum over neurons r — not ${sym}_j = \\mathrm{{max}}_r\\, \\ldots$ of coefficients.png)",
                         fontsize=9)
            ax.grid(alpha=0.3)
        # one legend for both panels, below them: inside a panel it covered a curve (c4_at's Φ)
        legend: dict = {}
        for ax in axes:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                legend.setdefault(lab, h)
        fig.legend(list(legend.values()), list(legend), loc="lower center", ncol=min(3, len(legend)),
                   fontsize=9, frameon=False)
        fig.suptitle(f"C4 for {MODE_WORDS[m]}: which samples and patches changed Γ and Φ "
                     f"— {label}\n(parts that stay exactly 0 are not drawn)", fontsize=11)
        fig.tight_layout(rect=(0, 0.1 + 0.035 * ((len(legend) - 1) // 3), 1, 1))
        written.append(save_figure(fig, os.path.join(out_dir, f"c4_{m}.png"))); plt.close(fig)
    return [os.path.basename(p) for p in written]
