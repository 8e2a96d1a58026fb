"""R1–R5 end to end: ST vs AT on real images, the three R4 lenses, the R5
figures (``python -m reffeat.run real`` is its command; the options ``c`` come
from ``experiments.real_config.resolve``).

Pipeline of ``run`` (each stage's results are written as soon as it ends):
  1. load the standard split (R1), cut p×p patches (R2) with stride t
     (default t = p), optionally after subtracting the training images'
     per-pixel mean μ (centring): one map x → patchify(x − μ, p, t)
     (``reffeat.real.patches.ImageMap``) makes every network input; with t < p
     or centring the attacks act on the image (gradients folded back from the
     patches), μ is written to mean.npy and the checkpoints;
  2. train ST and AT by mini-batch training (R3) from the same W0; AT's attack
     is PGD-K (K = 1: the paper's one-step FGSM, from the clean point or a
     random start; the MNIST and Fashion-MNIST defaults use K = 3, CIFAR-10/SVHN
     K = 1), with a progress line per epoch on stderr and a checkpoint per
     epoch (``resume`` continues from it);
  3. E2 on real images: robust accuracy is the per-point worst case over PGD-K
     (γ = ε/4, random start, restarts), APGD-CE and APGD-DLR (E2c, 100 iterations
     as in AutoAttack), each attack's own accuracy beside it (``headline``); clean
     accuracy on the whole test split, attacks on ``n_eval`` test images; a
     linear softmax baseline (ST and one-step AT, exact ℓ∞ robustness);
     R4 lenses: (a) worst-case accuracy across ε; (b) D_R from the AT model
     by representation matching and D_NR from the ST model by targeted PGD,
     accuracy of ST/AT on them, and fresh ST models trained on each, evaluated
     on the real test set; (c) low- vs high-pass filtered test accuracy;
     (d) (a)–(c) per epoch from the weight snapshots;
  4. R5 figures: filters w_{j,r} as p×p images (ST | AT), accuracy vs ε,
     lens curves over epochs, frequency lens, D_R / D_NR examples.

Outputs in ``out``: results.json (config, seed, data provenance, package
versions, wall time, every number), the PNG figures and the checkpoints;
``figures_dir`` also gets the figures as ``real_DATASET_*.png``. Ctrl-C keeps
everything done so far (results.json records ``"stopped": "interrupted"``).
``experiments.real_seeds.run_seeds`` runs N seeds of it.
"""

from __future__ import annotations

import hashlib
import io
import math
import sys
import time
from pathlib import Path

import numpy as np

from .. import provenance, seeding, stopping
from ..loop import MAX_WEIGHT
from ..output import atomic_write_bytes, atomic_write_json, package_versions
from ..real import lenses
from ..real.datasets import load
from ..real.linear import linear_outputs, linear_robust_correct, train_linear
from ..real.patches import ImageMap
from ..real.train import check_resume, data_fingerprint, train_images
from .real_config import SHAPES, train_config


def _f(v) -> str:
    """A number with 3 decimals, or "skipped" for None."""
    return "skipped" if v is None else f"{v:.3f}"


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Quiet:
    """The progress of a stage when the caller asked for none."""

    def update(self, done) -> None:
        pass

    def step(self, n=1) -> None:
        pass

    def close(self) -> None:
        pass


class _Run:
    """One real-image run in stages (``run``): the options ``c``, the output
    folder, the results dict ``res`` (rewritten by ``save`` after each stage)
    and what the stages hand on (data, models, lens data sets)."""

    def __init__(self, c: dict, out: Path, data_dir, resume: bool, smoke_test: bool = False, progress=None):
        self.c, self.out, self.data_dir, self.resume = c, out, data_dir, resume
        self.progress = progress
        self.t_start = time.perf_counter()
        self.res = {"kind": "real", "smoke_test": bool(smoke_test), "config": c, "seed": c["seed"],
                    "versions": package_versions(),
                    "provenance": provenance.record(), "stopped": None, "stages_done": []}
        self.path = out / "results.json"
        self._kept = False

    def ticker(self, label: str, total: int, unit: str = ""):
        """The progress of one stage: ``progress(label, total, unit)`` of ``run``
        (e.g. ``reffeat.jobs.progress.StageProgress``: a line with the time left at
        most every 10 s), or nothing."""
        return self.progress(f"[real] {label}", total, unit) if self.progress is not None else _Quiet()

    def _train(self, X, y, cfg, checkpoint, resume, label):
        """R3 training with a progress line (batches over all epochs, time left) while it runs."""
        tick = self.ticker(f"{label} training", cfg.epochs * -(-len(y) // cfg.batch_size), "batches")
        try:
            return train_images(X, y, self.k, cfg, checkpoint=checkpoint, resume=resume, label=label,
                                view=self.view, callback=lambda step: tick.update(step.t + 1))
        finally:
            tick.close()

    def save(self, stage=None):
        if self.resume and not self._kept and self.path.exists():
            # the results of the run resumed from are never overwritten by this run's first stages
            keep = self.out / "results.previous.json"
            atomic_write_bytes(keep, self.path.read_bytes())
            _say(f"[real] the earlier {self.path.name} is kept as {keep.name}")
        self._kept = True
        if stage:
            self.res["stages_done"].append(stage)
        self.res["wall_time"] = time.perf_counter() - self.t_start
        atomic_write_json(self.path, self.res)

    def data(self):
        """R1/R2: the standard splits, the image map, the data in its space."""
        c, out, res, save, data_dir = self.c, self.out, self.res, self.save, self.data_dir
        ds = c["dataset"]
        k = len(c["classes"]) if c["classes"] else SHAPES[ds].classes
        per_class = None if c["n_train"] == 0 else max(1, c["n_train"] // k)
        Xtr_img, ytr, info_tr = load(ds, "train", data_dir=data_dir, classes=c["classes"],
                                     per_class=per_class, seed=c["seed"], return_info=True)
        Xte_img, yte, info_te = load(ds, "test", data_dir=data_dir, classes=c["classes"],
                                     per_class=max(1, -(-c["n_eval"] // k)), seed=c["seed"],
                                     return_info=True)
        Xte_img, yte = Xte_img[:c["n_eval"]], yte[:c["n_eval"]]
        # clean accuracy on the whole test split (cheap); attacks and lenses on the n_eval subset
        Xfull_img, yfull = load(ds, "test", data_dir=data_dir, classes=c["classes"])
        N, H, Wd, C = Xtr_img.shape
        p = c["p"]
        # R2: the one image -> network input map, x -> patchify(x - mu, p, t), mu the training
        # images' per-pixel mean (--center). Every model call below reads its inputs through
        # it; the data are held in its space: patches when it is a permutation (t = p, no
        # centring: today's fast path), else images, which the attacks act on.
        view = ImageMap.from_training(Xtr_img, p, c["stride"], c["center"])
        Xtr, Xte, Xfull_sp = view.space(Xtr_img), view.space(Xte_img), view.space(Xfull_img)
        Xfull = view.inputs(Xfull_sp)                      # clean accuracy only: network inputs
        Xtr = Xtr.astype(c["dtype"], copy=False)           # training precision; evaluation float64
        del Xfull_img
        res["data"] = {"train": info_tr, "test": info_te, "image_shape": [H, Wd, C],
                       "P": view.P, "d": view.d, "k": k,
                       "n_train": int(N), "n_eval": int(len(yte)), "n_test_full": int(len(yfull)),
                       "image_map": view.to_dict()}
        if self.resume:                                    # every checkpoint fits, before any write
            fp = data_fingerprint(Xtr, ytr, k, view)
            for mode in ("st", "at"):
                ck = out / f"checkpoint_{mode}.npz"
                if ck.exists():
                    check_resume(ck, train_config(c, mode), fp)
        if view.mean is not None:                          # mu itself, for whoever reads the weights
            buf = io.BytesIO()
            np.save(buf, view.mean)
            atomic_write_bytes(out / "mean.npy", buf.getvalue())
            res["data"]["image_map"].update(
                mean_file="mean.npy", mean_sha256=hashlib.sha256(view.mean.tobytes()).hexdigest(),
                mean_range=[float(view.mean.min()), float(view.mean.max())],
                mean_average=float(view.mean.mean()))
        _say(f"[real] {ds}: {N} train / {len(yte)} eval images {H}x{Wd}x{C}, p={p}, stride {view.stride}"
             f"{', centred' if view.mean is not None else ''} -> P={view.P}, d={view.d}, k={k}; "
             f"source: {info_tr['source']}")
        save("data")
        self.ds, self.k, self.p, self.C, self.view = ds, k, p, C, view
        self.Xtr_img, self.ytr, self.Xtr = Xtr_img, ytr, Xtr
        self.Xte_img, self.yte, self.Xte = Xte_img, yte, Xte
        self.Xfull_sp, self.Xfull, self.yfull = Xfull_sp, Xfull, yfull

    def train(self) -> bool:
        """R3: ST and AT from the same W0; False when one stopped (no lens can read its weights)."""
        c, out, res, save, resume = self.c, self.out, self.res, self.save, self.resume
        Xtr, ytr, view = self.Xtr, self.ytr, self.view
        results_models = {}
        for mode in ("st", "at"):
            cfg = train_config(c, mode)
            r = self._train(Xtr, ytr, cfg, out / f"checkpoint_{mode}.npz", resume, mode)
            results_models[mode] = r
            res.setdefault("training", {})[mode] = {
                "config": cfg.to_dict(), "history": r.history, "epochs_done": r.epochs_done,
                "stopped": r.stopped, "wall_time": r.wall_time}
            buf = io.BytesIO()
            np.save(buf, r.W)
            atomic_write_bytes(out / f"W_{mode}.npy", buf.getvalue())
            save(f"train_{mode}")
            if r.stopped == "interrupted":
                raise KeyboardInterrupt
            # R3 stops itself beyond the loop's bound (reffeat.loop.MAX_WEIGHT); the same bound
            # here also catches weights that came back from a checkpoint (--resume)
            big = float(np.max(np.abs(r.W))) if np.all(np.isfinite(r.W)) else math.inf
            if not r.stopped and big > MAX_WEIGHT:
                r.stopped = f"diverged: max |w| = {big:.3g} > {MAX_WEIGHT:g}"
                res["training"][mode]["stopped"] = r.stopped
            if r.stopped:                   # non-finite or diverged: no lens can read such weights
                res["stopped"] = (f"{mode.upper()} training stopped at epoch {r.epochs_done + 1} "
                                  f"({r.stopped}); the lenses need trained weights and were not run: "
                                  "try a smaller --lr or --sigma0")
                _say(f"[real] {res['stopped']}")
                save()
                return False
        self.models = results_models
        # evaluation, lenses and baselines in float64 whatever the training precision
        self.W_st, self.W_at = (results_models[m_].W.astype(np.float64) for m_ in ("st", "at"))
        self.ev = dict(q=c["q"], rho=c["rho"], norm=c["norm"], steps=c["eval_steps"],
                       restarts=c["eval_restarts"], apgd_steps=c["apgd_steps"], clip=(0.0, 1.0), view=view)
        self.ev_pgd = {k_: v for k_, v in self.ev.items() if k_ != "apgd_steps"}
        return True

    def _common(self):
        c = self.c
        return c, self.res, self.save, c["q"], c["rho"], c["eps"], c["norm"]

    def headline(self):
        """(a) E2 worst case per point at ε, each attack's own number beside it."""
        c, res, save, q, rho, eps, norm = self._common()
        Xte, yte, Xfull, yfull, W_st, W_at, ev = (self.Xte, self.yte, self.Xfull, self.yfull,
                                                  self.W_st, self.W_at, self.ev)
        res.setdefault("lenses", {})
        desc = lenses.attack_description(c["eval_steps"], c["eval_restarts"], c["apgd_steps"])
        hl = {"eps": eps, "norm": norm, "attack": desc, "n_robust_eval": int(len(yte)),
              "n_clean_eval": int(len(yfull))}
        tick = self.ticker("(a) worst case at the training eps", 2, "models")
        for i, (mode, W) in enumerate((("st", W_st), ("at", W_at))):
            t0 = time.perf_counter()
            r = lenses.robust_eval(W, Xte, yte, eps, rng=seeding.rng(c["seed"], "real-e2", i), **ev)
            r.pop("correct")
            r["clean_eval_subset"] = r.pop("clean")
            r["clean"] = lenses.accuracy(W, Xfull, yfull, q, rho)
            hl[mode] = r
            _say(f"[real] (a) {mode.upper()} at eps={eps:g}: clean {r['clean']:.3f} (full test) | PGD {r['pgd']:.3f} "
                 f"APGD-CE {r['apgd_ce']:.3f} APGD-DLR {_f(r['apgd_dlr'])} -> worst case {r['robust']:.3f} "
                 f"({time.perf_counter() - t0:.0f}s)")
            tick.step()
        tick.close()
        res["headline"] = hl
        save("headline")
        self.desc = desc

    def linear(self):
        """The linear softmax baseline (ST and one-step AT), exact ℓ∞ robust accuracy."""
        c, res, save, q, rho, eps, norm = self._common()
        view, Xtr, ytr, Xte, yte, Xfull_sp, yfull, k = (self.view, self.Xtr, self.ytr, self.Xte, self.yte,
                                                        self.Xfull_sp, self.yfull, self.k)
        lin = {"model": "linear softmax f(x) = Vx + b on the same pixels (after centring, if any; "
                        "patching is linear, so overlapping patches add nothing), Adam, same epochs/batch/lr schedule",
               "robust": "exact worst case over the ε-box ∩ [0,1] box (lenses: linear.linear_robust_correct)"}
        box = view.pixel_box((0.0, 1.0))                   # [0,1] on the image: [-mu, 1-mu] if centred
        Ptr, Pte, Pfull = view.pixels(Xtr), view.pixels(Xte), view.pixels(Xfull_sp)
        tick = self.ticker("linear baseline", 2, "models")
        for mode in ("st", "at"):
            t0 = time.perf_counter()
            V, b, h = train_linear(Ptr, ytr, k, mode=mode, eps=eps, norm=norm, epochs=c["epochs"],
                                   batch_size=c["batch_size"], lr=c["lr"], seed=c["seed"],
                                   lr_schedule=c["lr_schedule"], dtype=c["dtype"], clip=box)
            lin[mode] = {"clean": float((linear_outputs(V, b, Pfull).argmax(1) == yfull).mean()),
                         "robust": float(linear_robust_correct(V, b, Pte, yte, eps, norm, clip=box).mean()),
                         "acc_vs_eps": [float(linear_robust_correct(V, b, Pte, yte, e, norm, clip=box).mean())
                                        for e in c["eps_grid"]],
                         "history": h, "seconds": time.perf_counter() - t0}
            _say(f"[real] linear baseline {mode.upper()}: clean {lin[mode]['clean']:.3f} robust (exact) "
                 f"{lin[mode]['robust']:.3f} ({lin[mode]['seconds']:.0f}s)")
            tick.step()
        tick.close()
        res["linear"] = lin
        save("linear")
        self.lin = lin

    def acc_vs_eps(self):
        """(a) accuracy across ε (worst case only: attacks cascaded on the survivors)."""
        c, res, save, q, rho, eps, norm = self._common()
        lens, desc, lin = res["lenses"], self.desc, self.lin
        Xte, yte, W_st, W_at, ev = self.Xte, self.yte, self.W_st, self.W_at, self.ev
        lens["acc_vs_eps"] = {"eps": c["eps_grid"], "attack": desc + "; cascaded: each attack on the survivors"}
        tick = self.ticker("(a) accuracy vs eps", 2 * len(c["eps_grid"]), "(model, eps) pairs")
        for i, (mode, W) in enumerate((("st", W_st), ("at", W_at))):
            t0 = time.perf_counter()
            accs = []
            for e in c["eps_grid"]:             # each ε from the same fresh stream, as always
                accs.append(lenses.robust_eval(W, Xte, yte, float(e), cascade=True,
                                               rng=seeding.rng(c["seed"], "real-e2", 2 + i), **ev)["robust"])
                tick.step()
            lens["acc_vs_eps"][mode] = accs
            _say(f"[real] (a) {mode}: " + ", ".join(f"eps={e:g}: {a:.3f}" for e, a in zip(c["eps_grid"], accs))
                 + f"  ({time.perf_counter() - t0:.0f}s)")
        for mode in ("st", "at"):
            lens["acc_vs_eps"][f"linear_{mode}"] = lin[mode]["acc_vs_eps"]
        save("acc_vs_eps")

    def lens_datasets(self):
        """(b) D_R from the AT model, D_NR from the ST model, and ST/AT accuracy on them."""
        c, res, save, q, rho, eps, norm = self._common()
        lens, out, view, k = res["lenses"], self.out, self.view, self.k
        Xtr, ytr, W_st, W_at = self.Xtr, self.ytr, self.W_st, self.W_at
        rng_l = seeding.rng(c["seed"], "real-lens")
        sel = rng_l.permutation(len(ytr))[:min(c["n_lens"], len(ytr))]
        Xsel = Xtr[sel].astype(np.float64)
        tick = self.ticker("(b) building D_R and D_NR", 2, "data sets")
        t0 = time.perf_counter()
        XR, yR, info_R = lenses.build_robust_dataset(W_at, Xsel, ytr[sel], rng_l, q=q, rho=rho,
                                                     kind=c["dr_kind"], steps=c["dr_steps"],
                                                     step_size=c["dr_step_size"], X_pool=Xtr, y_pool=ytr,
                                                     view=view)
        info_R["seconds"] = time.perf_counter() - t0
        tick.step()
        t0 = time.perf_counter()
        XN, yN, info_N = lenses.build_nonrobust_dataset(W_st, Xsel, ytr[sel], k, rng_l, q=q, rho=rho,
                                                        eps=c["dnr_eps"], norm=norm, steps=c["dnr_steps"],
                                                        view=view)
        info_N["seconds"] = time.perf_counter() - t0
        tick.step()
        tick.close()
        b = {"D_R": info_R, "D_NR": info_N, "n": int(len(sel))}
        for mode, W in (("st", W_st), ("at", W_at)):
            b[f"{mode}_on_D_R"] = lenses.accuracy(W, XR, yR, q, rho, view=view)
            b[f"{mode}_on_D_NR"] = lenses.accuracy(W, XN, yN, q, rho, view=view)
            b[f"{mode}_on_D_NR_original_labels"] = lenses.accuracy(W, XN, ytr[sel], q, rho, view=view)
        _say(f"[real] (b) D_R ({info_R['seconds']:.0f}s, median rel. residual {info_R['rel_residual_median']:.3f}): "
             f"ST {b['st_on_D_R']:.3f} AT {b['at_on_D_R']:.3f} | D_NR ({info_N['seconds']:.0f}s, target success "
             f"{info_N['target_success']:.3f}): ST {b['st_on_D_NR']:.3f} AT {b['at_on_D_NR']:.3f}")
        lens["datasets"] = b
        buf = io.BytesIO()
        np.savez_compressed(buf, X_R=XR, y_R=yR, X_NR=XN, y_NR=yN, index=sel)
        atomic_write_bytes(out / "lens_datasets.npz", buf.getvalue())
        save("build_datasets")
        self.sel, self.XR, self.yR, self.XN, self.yN, self.b = sel, XR, yR, XN, yN, b

    def fresh_models(self):
        """(b) fresh ST models trained on D_R and D_NR, evaluated on the real test set."""
        c, res, save, q, rho, eps, norm = self._common()
        out, view, resume, ev = self.out, self.view, self.resume, self.ev
        Xte, yte, XR, yR, XN, yN, b = self.Xte, self.yte, self.XR, self.yR, self.XN, self.yN, self.b
        fresh = {}
        for name, (Xd, yd) in (("D_R", (XR, yR)), ("D_NR", (XN, yN))):
            cfg = train_config(c, "st")
            ck = out / f"checkpoint_fresh_{name}.npz"
            try:
                r = self._train(Xd, yd, cfg, ck, resume, f"st on {name}")
            except ValueError as e:  # D_R / D_NR were rebuilt differently: start afresh
                _say(f"[real] not resuming the model on {name}: {e}")
                r = self._train(Xd, yd, cfg, ck, False, f"st on {name}")
            if r.stopped == "interrupted":
                raise KeyboardInterrupt
            fresh[name] = {"clean": lenses.accuracy(r.W, Xte, yte, q, rho, view=view),
                           "robust": lenses.robust_eval(r.W, Xte, yte, eps, cascade=True,
                                                        rng=seeding.rng(c["seed"], "real-e2", 4), **ev)["robust"],
                           "train_acc_on_own_set": r.history["train_acc"][-1] if r.history["train_acc"] else None}
            _say(f"[real] (b) fresh ST model trained on {name}: real test clean {fresh[name]['clean']:.3f} "
                 f"robust {fresh[name]['robust']:.3f}")
        b["fresh"] = fresh
        save("fresh_models")

    def frequency(self):
        """(c) low- vs high-pass filtered test accuracy."""
        c, res, save, q, rho, eps, norm = self._common()
        lens, view, p, Xte_img, yte, W_st, W_at = (res["lenses"], self.view, self.p, self.Xte_img, self.yte,
                                                   self.W_st, self.W_at)
        freq = {}
        tick = self.ticker("(c) filtered test images", 2, "models")
        for mode, W in (("st", W_st), ("at", W_at)):
            freq[mode] = lenses.filtered_accuracy(W, Xte_img, yte, c["radii"], p=p, q=q, rho=rho,
                                                  patchify=lambda x, _p: view.to_input(x))
            tick.step()
        tick.close()
        lens["frequency"] = freq
        _say("[real] (c) low/high-pass accuracy by radius: " + "; ".join(
            f"{m}: " + " ".join(f"r={r:g} {lo:.2f}/{hi:.2f}"
                                for r, lo, hi in zip(freq[m]["radii"], freq[m]["low"], freq[m]["high"]))
            for m in ("st", "at")))
        save("frequency")

    def curves(self):
        """(d) the lenses per epoch from the weight snapshots."""
        c, res, save, q, rho, eps, norm = self._common()
        lens, view, Xte_img, Xte, yte, ev_pgd = (res["lenses"], self.view, self.Xte_img, self.Xte, self.yte,
                                                 self.ev_pgd)
        XR, yR, XN, yN, results_models = self.XR, self.yR, self.XN, self.yN, self.models
        lowX = view.to_input(lenses.fourier_filter(Xte_img, c["radius"], "low"))
        highX = view.to_input(lenses.fourier_filter(Xte_img, c["radius"], "high"))
        curves = {}
        t0 = time.perf_counter()
        todo = {mode: [e for e in range(len(results_models[mode].snapshots))
                       if not (e % c["curve_every"] and e != len(results_models[mode].snapshots) - 1)]
                for mode in ("st", "at")}
        tick = self.ticker("(d) lenses per epoch", sum(len(v) for v in todo.values()), "snapshots")
        for mode in ("st", "at"):
            snaps = results_models[mode].snapshots
            rows = {k_: [] for k_ in ("epoch", "clean", "robust", "D_R", "D_NR", "low_pass", "high_pass")}
            for e in todo[mode]:
                W = snaps[e].astype(np.float64)
                rows["epoch"].append(e)
                rows["clean"].append(lenses.accuracy(W, Xte, yte, q, rho, view=view))
                rows["robust"].append(lenses.robust_accuracy(
                    W, Xte, yte, eps, rng=seeding.rng(c["seed"], "real-eval", 3), **dict(ev_pgd, restarts=0)))
                rows["D_R"].append(lenses.accuracy(W, XR, yR, q, rho, view=view))
                rows["D_NR"].append(lenses.accuracy(W, XN, yN, q, rho, view=view))
                rows["low_pass"].append(lenses.accuracy(W, lowX, yte, q, rho))
                rows["high_pass"].append(lenses.accuracy(W, highX, yte, q, rho))
                tick.step()
            curves[mode] = rows
        tick.close()
        lens["curves"] = {"radius": c["radius"], "robust_attack": f"PGD-{c['eval_steps']}, no restarts", **curves}
        _say(f"[real] (d) curves over epochs ({time.perf_counter() - t0:.0f}s)")
        save("curves")

    def figures(self, figures_dir):
        """R5: the figures (all of them, or those of (a) without the lenses)."""
        c, res, save = self.c, self.res, self.save
        out, ds, p, C, view, W_st, W_at = self.out, self.ds, self.p, self.C, self.view, self.W_st, self.W_at
        from ..real import figures as real_figures
        if c["lenses"]:
            sel = self.sel
            figs = real_figures.make_all(res, out, W_st=W_st, W_at=W_at, p=p, C=C,
                                         samples=(self.Xtr_img[sel][:8], self.ytr[sel][:8],
                                                  view.images(self.XR[:8]), self.yR[:8],
                                                  view.images(self.XN[:8]), self.yN[:8]))
        else:
            figs = real_figures.make_some(res, out, W_st=W_st, W_at=W_at, p=p, C=C)
        res["figures"] = figs
        if figures_dir is not None:
            fd = Path(figures_dir)
            fd.mkdir(parents=True, exist_ok=True)
            for f in figs:
                atomic_write_bytes(fd / f"real_{ds}_{f}", (out / f).read_bytes())
        save("figures")


def check_resume_files(c: dict, out: Path) -> None:
    """Before any work of ``run(..., resume=True)``: every training checkpoint in
    ``out`` is a whole checkpoint written with these options (only --epochs may
    change); ValueError naming the file otherwise.  (The data they were trained
    on is checked once the data is loaded, still before anything is written.)"""
    for mode in ("st", "at"):
        ck = out / f"checkpoint_{mode}.npz"
        if ck.exists():
            if not ck.is_file():
                raise ValueError(f"checkpoint {ck} is not a regular file; remove it or drop --resume")
            check_resume(ck, train_config(c, mode))


#: what a ``--quick`` run is (the command's stdout line says it; results.json has ``"smoke_test": true``)
SMOKE_NOTE = ("SMOKE TEST (--quick): a tiny run that checks the pipeline end to end; "
              "its numbers say nothing about ST or AT")


def run(c: dict, out: Path, *, data_dir=None, resume=False, figures_dir=None, smoke_test=False,
        progress=None) -> dict:
    """The whole pipeline (module docstring), stage after stage, each stage's
    results written to out/results.json as soon as it ends; returns them.
    ``smoke_test`` (``--quick``): recorded as ``results["smoke_test"]``.
    ``progress(label, total, unit)``: an object with ``update(done)``, ``step()``
    and ``close()`` for the progress inside each stage (the command passes
    ``reffeat.jobs.progress.StageProgress``: done/total and the time left on
    stderr at most every 10 s); None for none."""
    out.mkdir(parents=True, exist_ok=True)
    r = _Run(c, out, data_dir, resume, smoke_test, progress)
    try:
        r.data()
        stopping.check()         # between stages: a requested stop (reffeat.stopping) is raised here
        if not r.train():
            return r.res
        stages = [r.headline, r.linear, r.acc_vs_eps]
        if c["lenses"]:          # (b)–(d); --no-lenses stops after (a) and the baselines
            stages += [r.lens_datasets, r.fresh_models, r.frequency, r.curves]
        for stage in stages:
            stopping.check()
            stage()
        stopping.check()
        r.figures(figures_dir)
    except KeyboardInterrupt:
        r.res["stopped"] = "interrupted"
        _say(f"[real] interrupted; results so far kept in {r.path}")
        r.save()
        raise
    r.res["wall_time"] = time.perf_counter() - r.t_start
    atomic_write_json(r.path, r.res)
    _say(f"[real] done in {r.res['wall_time']:.0f}s -> {r.path}")
    return r.res
