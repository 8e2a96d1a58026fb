"""R5: figures of a real-image run (matplotlib, Agg backend; written atomically).

    filters.png      learned filters w_{j,r} as p×p image patches, ST | AT
                     (per class the filters of largest norm, each scaled on its own)
    acc_vs_eps.png   R4 (a): accuracy under PGD vs ε, ST and AT
    lens_curves.png  R4 (d): clean, robust, D_R, D_NR, low-pass, high-pass
                     accuracy over epochs, ST and AT
    frequency.png    R4 (c): accuracy on low- and high-pass filtered test images vs radius
    lens_examples.png  R4 (b): training images, their D_R and D_NR versions, with labels
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .patches import filters_as_images
from ..plots import pyplot as _plt
from ..plots import save_figure as _save


def _title(res) -> str:
    c = res["config"]
    src = res.get("data", {}).get("train", {}).get("source", "")
    extra = "" if src in ("", "canonical") else " [non-canonical data: see results.json]"
    return f"{c['dataset']}, p={c['p']}, m={c['m']}, ε={c['eps']:g} ({c['norm']}), seed {c['seed']}{extra}"


def filter_mosaic(W, p, C, per_class: int = 6) -> np.ndarray:
    """Per class j (rows) the ``per_class`` filters of largest norm (columns), each
    scaled on its own: grayscale to [-1, 1] (0 stays 0), colour to [0, 1];
    1-pixel gaps are NaN (grayscale) or white (colour)."""
    k = W.shape[0]
    F = filters_as_images(W, p, C)
    cols = min(per_class, W.shape[1])
    H, Wd = k * (p + 1) - 1, cols * (p + 1) - 1
    mosaic = np.full((H, Wd) if C == 1 else (H, Wd, 3), np.nan if C == 1 else 1.0)
    for j in range(k):
        order = np.argsort(-np.linalg.norm(W[j], axis=1))[:cols]
        for c_, r in enumerate(order):
            f = F[j, r]
            if C == 1:
                tile = f[..., 0] / (np.abs(f).max() + 1e-12)
            else:
                lo, hi = f.min(), f.max()
                tile = (f - lo) / (hi - lo + 1e-12)
                tile = tile[..., :3] if C >= 3 else np.repeat(tile[..., :1], 3, axis=-1)
            mosaic[j * (p + 1):j * (p + 1) + p, c_ * (p + 1):c_ * (p + 1) + p] = tile
    return mosaic


def filters_figure(W_st, W_at, p, C, path: Path, title: str, per_class: int = 6) -> None:
    plt = _plt()
    k = W_st.shape[0]
    fig, axes = plt.subplots(1, 2, figsize=(2 + 0.5 * 2 * per_class, 0.45 * k + 1.0))
    for ax, W, name in ((axes[0], W_st, "ST"), (axes[1], W_at, "AT")):
        mos = filter_mosaic(W, p, C, per_class)
        if C == 1:
            cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
            ax.imshow(mos, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        else:
            ax.imshow(mos, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([(p + 1) * j + (p - 1) / 2 for j in range(k)])
        ax.set_yticklabels([f"class {j}" for j in range(k)], fontsize=7)
        ax.set_title(f"{name}: filters of largest norm", fontsize=9)
    fig.suptitle(f"learned filters w_(j,r) as {p}x{p} patches (each scaled on its own; "
                 f"red +, blue −) — {title}", fontsize=8)
    _save(fig, path)
    plt.close(fig)


def acc_vs_eps_figure(res, path: Path) -> None:
    plt = _plt()
    a = res["lenses"]["acc_vs_eps"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for mode, style in (("st", "o-"), ("at", "s-")):
        ax.plot(a["eps"], a[mode], style, label=mode.upper())
    ax.axvline(res["config"]["eps"], color="gray", ls=":", lw=1, label="training ε")
    ax.set_xlabel(f"ε ({res['config']['norm']})"); ax.set_ylabel("test accuracy under attack")
    ax.set_ylim(-0.02, 1.02); ax.legend(fontsize=8); ax.grid(alpha=0.3)
    ax.set_title(f"accuracy vs ε ({a['attack']})\n{_title(res)}", fontsize=8)
    _save(fig, path)
    plt.close(fig)


def curves_figure(res, path: Path) -> None:
    plt = _plt()
    cv = res["lenses"]["curves"]
    keys = [("clean", "clean test"), ("robust", f"robust (ε={res['config']['eps']:g})"),
            ("D_R", "on D_R (from AT)"), ("D_NR", "on D_NR (from ST, target labels)"),
            ("low_pass", f"low-pass r≤{cv['radius']:g}"), ("high_pass", f"high-pass r>{cv['radius']:g}")]
    fig, axes = plt.subplots(2, 3, figsize=(11, 6), sharex=True)
    for ax, (key, label) in zip(axes.ravel(), keys):
        for mode, style in (("st", "o-"), ("at", "s-")):
            ax.plot(cv[mode]["epoch"], cv[mode][key], style, ms=3, label=mode.upper())
        ax.set_title(label, fontsize=9); ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"R4 lenses over training — {_title(res)}", fontsize=9)
    _save(fig, path)
    plt.close(fig)


def frequency_figure(res, path: Path) -> None:
    plt = _plt()
    fq = res["lenses"]["frequency"]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for mode, color in (("st", "C0"), ("at", "C1")):
        ax.plot(fq[mode]["radii"], fq[mode]["low"], "o-", color=color, label=f"{mode.upper()} low-pass")
        ax.plot(fq[mode]["radii"], fq[mode]["high"], "s--", color=color, label=f"{mode.upper()} high-pass")
    ax.set_xlabel("Fourier radius r"); ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3); ax.legend(fontsize=7)
    ax.set_title(f"low-pass (|f|≤r) vs high-pass (|f|>r) test images\n{_title(res)}", fontsize=8)
    _save(fig, path)
    plt.close(fig)


def examples_figure(samples, names, path: Path, title: str) -> None:
    plt = _plt()
    X0, y0, XR, yR, XN, yN = samples
    n = len(y0)
    fig, axes = plt.subplots(3, n, figsize=(1.1 * n, 3.8))
    axes = np.atleast_2d(axes).reshape(3, n)
    for row, (X, y, lab) in enumerate(((X0, y0, "original"), (XR, yR, "D_R"), (XN, yN, "D_NR"))):
        for i in range(n):
            ax = axes[row, i]
            img = np.clip(X[i], 0, 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            ax.set_title(str(names[int(y[i])])[:10], fontsize=7)
        axes[row, 0].set_ylabel(lab, fontsize=8)
    fig.suptitle(f"D_R: matched to the image above from another class (AT model); "
                 f"D_NR: targeted attack on ST, relabelled — {title}", fontsize=7)
    _save(fig, path)
    plt.close(fig)


def make_all(res, out: Path, *, W_st, W_at, p, C, samples) -> list[str]:
    """Write every figure into ``out``; returns the file names."""
    title = _title(res)
    filters_figure(W_st, W_at, p, C, out / "filters.png", title)
    acc_vs_eps_figure(res, out / "acc_vs_eps.png")
    curves_figure(res, out / "lens_curves.png")
    frequency_figure(res, out / "frequency.png")
    names = res["data"]["train"].get("class_names") or [str(i) for i in range(10)]
    examples_figure(samples, names, out / "lens_examples.png", title)
    return ["filters.png", "acc_vs_eps.png", "lens_curves.png", "frequency.png", "lens_examples.png"]
