"""R5: figures of a real-image run (matplotlib, Agg backend; written atomically).

    filters.png      learned filters w_{j,r} as p×p image patches, ST | AT
                     (per class the filters of largest norm, each scaled on its own;
                     rows labelled with the class names)
    acc_vs_eps.png   R4 (a): test accuracy under the E2 worst case (PGD, APGD-CE,
                     APGD-DLR per point) vs ε, ST and AT, with the linear baselines
    lens_curves.png  R4 (d): clean, robust (PGD), D_R, D_NR, low-pass, high-pass
                     accuracy over epochs, ST and AT
    frequency.png    R4 (c): accuracy on low- and high-pass filtered test images vs
                     the Fourier radius (in cycles per image)
    lens_examples.png  R4 (b): training images, their D_R and D_NR versions, with labels
    acc_vs_eps_seeds.png  (``--seeds N``) (a) as mean ± std over the seeds
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from ..plots import pyplot as _plt
from ..plots import save_figure as _save
from .patches import filters_as_images


def at_algorithm(c: dict) -> str:
    """The AT attack of a run config in words: "PGD-K" (K > 1 steps, random start),
    "FGSM" (one step from the clean point, the paper's algorithm) or "FGSM-RS"
    (one step from a random start)."""
    K = c.get("attack_steps", 1)
    if K > 1:
        return f"PGD-{K}"
    return "FGSM-RS" if c.get("at_start", "clean") == "random" else "FGSM"


_DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}


def _short(c: dict, data: dict | None = None, seeds=None) -> str:
    """One plain line naming the run, for titles: data set (and a non-canonical
    split), seed(s), AT's training attack and ε."""
    data = data or {}
    src = data.get("train", {}).get("source", "")
    split = "" if src in ("", "canonical") else " (not the official split)"
    seed_txt = (f"seeds {seeds[0]}–{seeds[-1]}" if seeds and len(seeds) > 1 else f"seed {c.get('seed', 0)}")
    return (f"{_DATASET_NAMES.get(c['dataset'], c['dataset'])}{split}, {seed_txt}; "
            f"AT trained with {at_algorithm(c)} at ε = {c['eps']:g}")


def _names(res) -> list[str]:
    k = res.get("data", {}).get("k", 10)
    return res.get("data", {}).get("train", {}).get("class_names") or [str(i) for i in range(k)]


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


def filters_figure(W_st, W_at, p, C, path: Path, title: str, names=None, per_class: int = 6) -> None:
    plt = _plt()
    k = W_st.shape[0]
    names = names or [f"class {j}" for j in range(k)]
    fig, axes = plt.subplots(1, 2, figsize=(3 + 0.55 * 2 * per_class, 0.5 * k + 1.4))
    for ax, W, name in ((axes[0], W_st, "ST"), (axes[1], W_at, "AT")):
        mos = filter_mosaic(W, p, C, per_class)
        if C == 1:
            cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
            ax.imshow(mos, cmap=cmap, vmin=-1, vmax=1, interpolation="nearest")
        else:
            ax.imshow(mos, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([(p + 1) * j + (p - 1) / 2 for j in range(k)])
        ax.set_yticklabels([str(names[j]) for j in range(k)], fontsize=7)
        ax.set_title(f"{name}: the {min(per_class, W.shape[1])} largest per class", fontsize=8)
    fig.suptitle(f"Learned filters as {p}×{p} images, one row per class (red +, blue −, each scaled "
                 f"on its own)\n{title}", fontsize=8)
    _save(fig, path)
    plt.close(fig)


#: the curves of lens (a): key in ``acc_vs_eps``, marker/line style, plot keywords
_ACC_SERIES: tuple[tuple[str, str, dict], ...] = (("st", "o-", {}), ("at", "s-", {}),
               ("linear_st", "o--", {"color": "gray", "lw": 1}), ("linear_at", "s--", {"color": "k", "lw": 1}))


def _acc_label(key: str, c: dict) -> str:
    """Legend text of one lens-(a) curve (the linear AT model is trained with FGSM)."""
    return {"st": "ST network", "at": f"AT network ({at_algorithm(c)})",
            "linear_st": "linear model, ST (exact)",
            "linear_at": "linear model, AT with FGSM (exact)"}[key]


_NORM_SYMBOLS = {"linf": "ℓ∞", "l2": "ℓ2"}


def _acc_axes(ax, c: dict, ylabel: str, title: str) -> None:
    """The common frame of the accuracy-vs-ε figures: training ε, labels, a legend
    below the axes (never over a curve), a short title."""
    ax.axvline(c["eps"], color="gray", ls=":", lw=1, label="training ε")
    ax.set_xlabel(f"radius ε of the {_NORM_SYMBOLS.get(c['norm'], c['norm'])} ball (pixels in [0, 1])")
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    ax.set_title(title, fontsize=8.5)


def acc_vs_eps_figure(res, path: Path) -> None:
    """Lens (a) of one run: worst-case accuracy against ε, network and linear baseline."""
    plt = _plt()
    a, c = res["lenses"]["acc_vs_eps"], res["config"]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for key, style, kw in _ACC_SERIES:
        if key in a:
            ax.plot(a["eps"], a[key], style, label=_acc_label(key, c), **(dict(kw, ms=3) if kw else {}))
    _acc_axes(ax, c, "accuracy under the strongest attack\n(worst of PGD, APGD-CE, APGD-DLR per image)",
              f"Accuracy under attack as ε grows\n{_short(c, res.get('data'))}")
    _save(fig, path)
    plt.close(fig)


def acc_vs_eps_seeds_figure(agg, path: Path) -> None:
    """(a) over seeds: mean with ± one standard deviation as error bars."""
    plt = _plt()
    a, c = agg["acc_vs_eps"], agg["config"]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    for key, style, kw in _ACC_SERIES:
        m = [s["mean"] for s in a[key]]
        sd = [s["std"] or 0.0 for s in a[key]]
        ax.errorbar(a["eps"], m, yerr=sd, fmt=style, capsize=3, ms=4, label=_acc_label(key, c), **kw)
    _acc_axes(ax, c, "accuracy under the strongest attack\n(worst case per image), mean ± std",
              f"Accuracy under attack as ε grows, over {len(agg['seeds'])} seeds\n{_short(c, seeds=agg['seeds'])}")
    _save(fig, path)
    plt.close(fig)


#: what D_R and D_NR are, in words, for the figures that show them
LENS_WORDS = ("D_R: training images rebuilt so that the AT model sees the same thing in them (only the "
              "features a robust model uses), with their labels.",
              "D_NR: training images moved by a small targeted attack on the ST model to another class, "
              "labelled with that class (only non-robust features point to the label).")


def curves_figure(res, path: Path) -> None:
    """Lens (d): six accuracies after every epoch, ST and AT, one shared legend,
    integer epoch ticks, D_R / D_NR explained under the panels."""
    from matplotlib.ticker import MaxNLocator
    plt = _plt()
    cv = res["lenses"]["curves"]
    keys = [("clean", "clean test images"),
            ("robust", f"under attack (PGD, ε = {res['config']['eps']:g})"),
            ("D_R", "on D_R (robust features)"),
            ("D_NR", "on D_NR (non-robust features)"),
            ("low_pass", f"low-pass test images (radius ≤ {cv['radius']:g})"),
            ("high_pass", f"high-pass test images (radius > {cv['radius']:g})")]
    fig, axes = plt.subplots(2, 3, figsize=(11.5, 6.8), sharex=True, sharey=True)
    handles = []
    for ax, (key, label) in zip(axes.ravel(), keys):
        handles = [ax.plot(cv[mode]["epoch"], cv[mode][key], style, ms=4, label=name)[0]
                   for mode, style, name in (("st", "o-", "ST network"), ("at", "s-", "AT network"))]
        ax.set_title(label, fontsize=9); ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    for ax in axes[1]:
        ax.set_xlabel("epoch (0 = initial weights)")
    fig.legend(handles=handles, loc="upper right", ncol=2, fontsize=9, frameon=False,
               bbox_to_anchor=(0.98, 0.975))
    fig.suptitle(f"The lenses after every epoch\n{_short(res['config'], res.get('data'))}",
                 fontsize=10, x=0.06, ha="left")
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    fig.text(0.06, 0.012, "\n".join(LENS_WORDS), fontsize=8, ha="left", va="bottom")
    _save(fig, path)
    plt.close(fig)


def frequency_figure(res, path: Path) -> None:
    plt = _plt()
    fq = res["lenses"]["frequency"]
    fig, ax = plt.subplots(figsize=(5.6, 4.0))
    for mode, color in (("st", "C0"), ("at", "C1")):
        ax.plot(fq[mode]["radii"], fq[mode]["low"], "o-", color=color, label=f"{mode.upper()} on low-pass")
        ax.plot(fq[mode]["radii"], fq[mode]["high"], "s--", color=color, label=f"{mode.upper()} on high-pass")
    ax.set_xlabel("Fourier radius r (cycles per image; 0 = the mean, 14 = Nyquist for 28 px)")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3); ax.legend(fontsize=7)
    ax.set_title(f"Accuracy on low-pass (frequencies ≤ r) and high-pass (> r) test images\n"
                 f"{_short(res['config'], res.get('data'))}", fontsize=8)
    _save(fig, path)
    plt.close(fig)


def examples_figure(samples, names, path: Path, title: str, dnr_eps: float = 0.2, norm: str = "linf") -> None:
    plt = _plt()
    X0, y0, XR, yR, XN, yN = samples
    n = len(y0)
    fig, axes = plt.subplots(3, n, figsize=(1.35 * n + 1.2, 5.0))
    axes = np.atleast_2d(axes).reshape(3, n)
    rows = (("original\ntraining image", X0, y0), ("D_R", XR, yR), ("D_NR", XN, yN))
    for row, (lab, X, y) in enumerate(rows):
        for i in range(n):
            ax = axes[row, i]
            img = np.clip(X[i], 0, 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]); ax.set_yticks([])
            ax.set_title(f"label: {names[int(y[i])]}", fontsize=6.5)
        axes[row, 0].set_ylabel(lab, fontsize=8)
    eps_txt = f"ε = {dnr_eps:g} ({norm})"
    fig.suptitle(textwrap.fill(
        "Top: training images with their labels.  Middle (D_R): an image of ANOTHER class, changed "
        "until the AT model's per-class outputs F_j match those of the image above, then given the "
        "label of the image above.  Bottom (D_NR): the image above after a targeted attack on the ST "
        f"model within {eps_txt} toward a random other class, then given that class as its label "
        "(at this ε the change is visible).", 150) + f"\n{title}", fontsize=7, y=1.07)
    _save(fig, path)
    plt.close(fig)


def make_all(res, out: Path, *, W_st, W_at, p, C, samples) -> list[str]:
    """Write every figure into ``out``; returns the file names."""
    title = _short(res["config"], res.get("data"))
    names = _names(res)
    filters_figure(W_st, W_at, p, C, out / "filters.png", title, names=names)
    acc_vs_eps_figure(res, out / "acc_vs_eps.png")
    curves_figure(res, out / "lens_curves.png")
    frequency_figure(res, out / "frequency.png")
    examples_figure(samples, names, out / "lens_examples.png", title,
                    dnr_eps=res["config"]["dnr_eps"], norm=res["config"]["norm"])
    return ["filters.png", "acc_vs_eps.png", "lens_curves.png", "frequency.png", "lens_examples.png"]


def make_some(res, out: Path, *, W_st, W_at, p, C) -> list[str]:
    """``--no-lenses``: the filters and accuracy-vs-ε figures only."""
    filters_figure(W_st, W_at, p, C, out / "filters.png", _short(res["config"], res.get("data")),
                   names=_names(res))
    acc_vs_eps_figure(res, out / "acc_vs_eps.png")
    return ["filters.png", "acc_vs_eps.png"]


def sweep_rows(results: list[dict]) -> list[dict]:
    """One row per real-image run (its results.json as a dict): the options that
    differ between runs and the headline numbers."""
    rows = []
    for r in results:
        c, hl, lin = r["config"], r.get("headline", {}), r.get("linear", {})
        rows.append({
            "p": c["p"], "stride": c.get("stride") or c["p"], "center": bool(c.get("center", False)),
            "m": c["m"], "q": c["q"], "epochs": c["epochs"], "lr": c["lr"],
            "lr_schedule": c.get("lr_schedule", "constant"), "n_train": r.get("data", {}).get("n_train"),
            "at_start": c.get("at_start", "clean"), "at": at_algorithm(c),
            "st_clean": hl.get("st", {}).get("clean"), "st_robust": hl.get("st", {}).get("robust"),
            "at_clean": hl.get("at", {}).get("clean"), "at_robust": hl.get("at", {}).get("robust"),
            "at_pgd": hl.get("at", {}).get("pgd"), "at_apgd_ce": hl.get("at", {}).get("apgd_ce"),
            "at_apgd_dlr": hl.get("at", {}).get("apgd_dlr"),
            "linear_st_clean": lin.get("st", {}).get("clean"), "linear_at_clean": lin.get("at", {}).get("clean"),
            "linear_at_robust": lin.get("at", {}).get("robust"),
        })
    return rows


def sweep_figure(rows: list[dict], path: Path, title: str, targets=(0.85, 0.75, 0.50)) -> None:
    """The sweep: per run (x), ST clean, AT clean and AT robust (E2 worst case), with
    the targets as dotted lines and the linear baselines as crosses."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(rows) + 2), 4.4))
    x = np.arange(len(rows))
    val = lambda key: [np.nan if r[key] is None else r[key] for r in rows]
    ax.plot(x, val("st_clean"), "o", color="C0", label="ST clean")
    ax.plot(x, val("at_clean"), "s", color="C1", label="AT clean")
    ax.plot(x, val("at_robust"), "D", color="C3", label="AT robust (worst case)")
    ax.plot(x, val("linear_st_clean"), "x", color="C0", label="linear ST clean")
    ax.plot(x, val("linear_at_robust"), "x", color="C3", label="linear AT robust (exact)")
    for t, col in zip(targets, ("C0", "C1", "C3")):
        ax.axhline(t, color=col, ls=":", lw=1)
    ax.set_xticks(x)
    ax.set_xticklabels([f"p={r['p']}" + (f" t={r['stride']}" if r.get("stride", r["p"]) != r["p"] else "")
                        + f", m={r['m']}\n" + ("centred" if r.get("center") else "raw pixels")
                        + f"\nq={r['q']:g}, {r['epochs']} ep.\nlr {r['lr']:g}"
                        + f"\nAT: {r.get('at', 'from ' + r['at_start'])}"
                        for r in rows], fontsize=6.5)
    ax.set_ylabel("test accuracy"); ax.set_ylim(-0.02, 1.02); ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title + "\n(dotted: targets ST clean 0.85, AT clean 0.75, AT robust 0.50)", fontsize=8)
    _save(fig, path)
    plt.close(fig)
