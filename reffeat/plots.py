"""Figures of the synthetic run: C2 coefficients Γ, Φ over training (ST vs AT),
clean/robust accuracy over training (E1, cheap E2), and the C4 decomposition.

matplotlib with the Agg backend (no screen needed); every file is written
atomically.
"""

from __future__ import annotations

import io
import os

import numpy as np

from .output import atomic_write_bytes
from .metrics import PART_NAMES, c4_per_step


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


def write_figures(summary: dict, results: dict, out_dir: str) -> list[str]:
    """Write coefficients.png, accuracy.png and c4_<mode>.png; return the file names."""
    plt = pyplot()
    written = []
    modes = [m for m in ("st", "at") if m in results]
    c = summary["config"]
    tag = (f"preset {summary.get('preset') or '—'}, seed {summary['seed']}, "
           f"{c['norm']} ε = {c['eps']:g}, η = {c['eta']:g}, q = {c['q']:g}")
    # C2 over training
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, key, label in ((axes[0], "gamma", "mean_j Γ_j (robust)"), (axes[1], "phi", "mean_j Φ_j (non-robust)")):
        for m in modes:
            h = results[m].history
            ax.plot(h["step"], h[key], label=m.upper())
        ax.set_xlabel("step t"); ax.set_title(label); ax.legend(); ax.grid(alpha=0.3)
    fig.suptitle(f"C2 feature coefficients, ST vs AT ({tag})")
    written.append(save_figure(fig, os.path.join(out_dir, "coefficients.png"))); plt.close(fig)
    # accuracy over training
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for m in modes:
        h = results[m].history
        ax.plot(h["step"], h["clean_acc"], label=f"{m.upper()} clean")
        ax.plot(h["step"], h["robust_acc"], "--", label=f"{m.upper()} robust (FGSM+feature)")
    ax.set_xlabel("step t"); ax.set_ylabel("test accuracy"); ax.set_ylim(-0.05, 1.05)
    ax.legend(fontsize=8); ax.grid(alpha=0.3)
    ax.set_title(f"test accuracy over training\n({tag})", fontsize=9)
    written.append(save_figure(fig, os.path.join(out_dir, "accuracy.png"))); plt.close(fig)
    # C4 decomposition (cumulative), one figure per mode
    for m in modes:
        res = results[m]
        if not len(res.c4_gamma):
            continue
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, arr, label in ((axes[0], res.c4_gamma, "Γ"), (axes[1], res.c4_phi, "Φ")):
            per_step = c4_per_step(arr)
            cum = np.cumsum(per_step, axis=0)
            for i, part in enumerate(PART_NAMES):
                ax.plot(np.arange(1, len(cum) + 1), cum[:, i], label=part,
                        ls="-" if part.startswith("own") else "--")
            ax.plot(np.arange(1, len(cum) + 1), cum.sum(axis=1), color="0.6", lw=5, alpha=0.5,
                    label="sum (actual change)", zorder=0)
            ax.set_xlabel("step t"); ax.set_title(f"C4: cumulative change of mean_j Σ_r {label}_{{j,r}}")
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        fig.suptitle(f"{m.upper()}: own-class vs other-class samples × robust/non-robust/noise patches ({tag})",
                     fontsize=10)
        written.append(save_figure(fig, os.path.join(out_dir, f"c4_{m}.png"))); plt.close(fig)
    return [os.path.basename(p) for p in written]
