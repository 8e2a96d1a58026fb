"""``report.html``: one self-contained page per run to open in a browser.

Self-contained: figures are embedded as base64 PNG (``data:`` URIs), the style
sheet is inline, there is no script and nothing is fetched from the network, so
the file can be mailed or archived alone.  Every number shown in a results
table carries its exact value and its place in ``summary.json`` /
``results.json`` (``data-key``, ``data-value``) so that tests — and readers —
can check the page against the JSON it came from.

``Report`` is the generic builder (used by the synthetic run and by the
real-image run); ``synthetic_report`` and ``real_report`` lay out the two runs.
The wording helpers (``describe_threat``, ``describe_robust``, ``E_LEGEND``) are
shared with the text table the run prints.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import os

from .output import atomic_write_bytes

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 62em;
       margin: 1.5em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em;
       border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0; } th, td { padding: .2em .7em;
       border-bottom: 1px solid #eee; text-align: left; } td.num { text-align: right;
       font-variant-numeric: tabular-nums; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .93em; color: #333; margin-top: .3em; }
pre { background: #f6f6f6; padding: .6em; overflow-x: auto; }
.holds { color: #1a7f37; font-weight: 600; } .fails { color: #b3261e; font-weight: 600; }
.note { color: #555; font-size: .93em; }
"""

#: Two lines that explain the E-labels of the results table (SPEC §8).
E_LEGEND = (
    "E1 clean test accuracy; E2 robust test accuracy (a point counts only if it survives every "
    "attack listed); C2 Γ_j / Φ_j = max over neurons r of ⟨w_j,r, u_j⟩ (robust feature) / "
    "⟨w_j,r, v_j⟩ (non-robust feature), averaged over classes j.",
    "E3 alignment of the attack's perturbation with −v_y on the non-robust patches (1 = exactly "
    "the non-robust feature direction); E4 response = the network's output F_y on an input made "
    "only of class y's robust (resp. non-robust) feature — large means the network uses that feature.",
)

_NORM_WORDS = {"linf": ("ℓ∞", "every coordinate moves by at most ε"),
               "l2": ("ℓ2", "the whole input moves by at most ε in Euclidean norm"),
               "l2-patch": ("ℓ2 per patch", "each patch moves by at most ε in Euclidean norm")}


def _fmt(v, digits=4) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}f}" if abs(v) < 1e5 else f"{v:.4g}"
    return str(v)


def describe_threat(cfg: dict) -> str:
    """'ℓ∞ ball, ε = 0.2 (every coordinate moves by at most ε)' from a config dict."""
    sym, words = _NORM_WORDS.get(str(cfg.get("norm")), (str(cfg.get("norm")), ""))
    return f"{sym} ball, ε = {cfg.get('eps'):g}" + (f" ({words})" if words else "")


def describe_robust(cfg: dict, k: int | None = None) -> str:
    """The attacks behind E2 'robust', from a config dict (the run's evaluation settings)."""
    eps = cfg.get("eps")
    step = cfg.get("eval_ascent_step", cfg.get("eval_gamma")) or (eps / 4 if eps is not None else None)
    parts = [f"PGD-{cfg.get('eval_K')} (step {step:g}, random start, "
             f"{cfg.get('eval_restarts')} restart{'s' if cfg.get('eval_restarts') != 1 else ''})"]
    apgd_k = cfg.get("eval_apgd_K", 0) or 0
    if apgd_k > 0:
        from .attacks import apgd_losses
        k = k if k is not None else cfg.get("k")
        parts.append(f"APGD-CE{' and APGD-DLR' if 'dlr' in apgd_losses(k or 0) else ''} ({apgd_k} iterations)")
    parts.append("the k feature-aligned perturbations (E2b)")
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _t2_words(cfg: dict) -> str:
    """T2's attack in words: K steps of size γ (γ = ε when not set)."""
    return f"T2 with K = {cfg.get('K')} step(s) of size {cfg.get('ascent_step', cfg.get('gamma')) or cfg.get('eps'):g}"


def _png_data_uri(path: str) -> str:
    with open(path, "rb") as fh:
        return "data:image/png;base64," + base64.b64encode(fh.read()).decode("ascii")


class Report:
    """A minimal HTML page builder: headings, paragraphs, tables, embedded figures, code."""

    def __init__(self, title: str, subtitle: str = ""):
        self.title = title
        self.parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        if subtitle:
            self.parts.append(f"<p class='note'>{html.escape(subtitle)}</p>")

    def heading(self, text: str) -> Report:
        self.parts.append(f"<h2>{html.escape(text)}</h2>")
        return self

    def paragraph(self, text: str, cls: str = "") -> Report:
        c = f" class='{cls}'" if cls else ""
        self.parts.append(f"<p{c}>{html.escape(text)}</p>")
        return self

    def raw(self, fragment: str) -> Report:
        """An HTML fragment built by the caller (escaped there)."""
        self.parts.append(fragment)
        return self

    def table(self, header, rows, keys=None) -> Report:
        """rows: lists of cells; a float cell is right-aligned and, when ``keys``
        gives its JSON path (same shape as rows, None for none), carries
        data-key / data-value with the exact number."""
        out = ["<table>"]
        if header:
            out.append("<tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
        for i, row in enumerate(rows):
            cells = []
            for j, cell in enumerate(row):
                key = keys[i][j] if keys and keys[i] and j < len(keys[i]) else None
                if isinstance(cell, (int, float)) and not isinstance(cell, bool) or cell is None:
                    attrs = " class='num'"
                    if key is not None:
                        attrs += (f" data-key='{html.escape(key)}'"
                                  f" data-value='{html.escape(json.dumps(cell))}'")
                    cells.append(f"<td{attrs}>{html.escape(_fmt(cell))}</td>")
                else:
                    cells.append(f"<td>{html.escape(str(cell))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self.parts.append("\n".join(out))
        return self

    def figure(self, path: str, caption: str) -> Report:
        """Embed the PNG at ``path`` (base64) with a caption saying what to look for."""
        name = os.path.basename(path)
        self.parts.append(
            f"<figure data-file='{html.escape(name)}'><img alt='{html.escape(name)}' "
            f"src='{_png_data_uri(path)}'><figcaption><b>{html.escape(name)}</b> — "
            f"{html.escape(caption)}</figcaption></figure>")
        return self

    def code(self, text: str) -> Report:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def render(self) -> str:
        body = "\n".join(self.parts)
        return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>\n"
                f"<body>\n{body}\n</body></html>\n")

    def write(self, path: str) -> str:
        atomic_write_bytes(path, self.render().encode("utf-8"))
        return path


def _flatten(d, prefix=""):
    """{'a': {'b': 1}} -> [('a.b', 1)] (lists of scalars kept whole)."""
    out = []
    if isinstance(d, dict):
        for key, v in d.items():
            out.extend(_flatten(v, f"{prefix}.{key}" if prefix else str(key)))
    else:
        out.append((prefix, d))
    return out


# ---------------------------------------------------------------- synthetic run
#: what to look for in each figure of the synthetic run
SYNTHETIC_CAPTIONS = {
    "coefficients.png": (
        "C2 feature coefficients over training: Γ_j = max_r ⟨w_j,r, u_j⟩ (robust feature, left) "
        "and Φ_j = max_r ⟨w_j,r, v_j⟩ (non-robust feature, right), averaged over classes, for ST "
        "and AT. Look for: ST's Φ grows while its Γ stays at its initial scale (P1); AT's Γ grows "
        "while its Φ stays small (P3). A red × marks the step where the training loss peaked "
        "when it blew up (more than twice its start)."),
    "accuracy.png": (
        "Clean and robust test accuracy during training. The robust curves here are the cheap "
        "in-training check (FGSM, one sign step of size ε, and the feature-aligned attack), a "
        "weaker attack that usually over-states robustness; the robust accuracy in the table uses "
        "the full set of attacks. Look for: ST clean → 1 with robust → 0 (P2); AT robust rising (P4)."),
    "c4_st.png": (
        "ST: where the change of the coefficients comes from (C4). Cumulative contribution of "
        "own-class vs other-class samples × robust / non-robust / noise patches to "
        "Σ_r Γ_j,r (left) and Σ_r Φ_j,r (right), summed over the neurons r and averaged over j "
        "— a sum over neurons, not the max Γ_j of coefficients.png. The grey band is the total "
        "(the actual change). Look for: Φ driven by own-class non-robust patches."),
    "c4_at.png": (
        "AT: the same C4 decomposition at the adversarial points the step was taken at. Look for: "
        "Γ driven by own-class robust patches, while the non-robust contributions cancel or turn "
        "negative."),
}

_TABLE_ROWS = [
    ("clean acc (E1)", "clean_acc"),
    ("robust acc (E2, every attack)", "robust_acc"),
    ("  under PGD only", "robust_acc_pgd"),
    ("  under APGD-CE only", "robust_acc_apgd_ce"),
    ("  under APGD-DLR only", "robust_acc_apgd_dlr"),
    ("  under the feature attack only", "robust_acc_feature_attack"),
    ("certified robust acc (E5, lower bound)", "certified_robust_acc"),
    ("  proven non-robust (E5 upper ≤ 0)", "proven_nonrobust_frac"),
    ("  closed: certified = attacked", "certified_exact_frac"),
    ("V2 P2b: flips kept on span{v}", "v_projected_flip_frac"),
    ("mean Γ_j (C2, robust feature)", "gamma"),
    ("mean Φ_j (C2, non-robust feature)", "phi"),
    ("E3 alignment, one-step attack", "alignment"),
    ("E3 alignment, PGD", "alignment_pgd"),
    ("E4 response to pure robust input", "responses.robust"),
    ("E4 response to pure non-robust input", "responses.nonrobust"),
]


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def result_rows(summary: dict, modes) -> list[tuple[str, str]]:
    """The (label, key) rows of the results table that this summary has."""
    return [(label, key) for label, key in _TABLE_ROWS
            if any(_get(summary[m], key) is not None for m in modes)]


def interval_line(summary: dict, modes) -> str | None:
    """"robust acc, true value in [certified, attacked]: ST [a, b]  AT [c, d]" with
    the E5 level used (SPEC E5: E5 ≤ truth ≤ E2); None when no mode has E5."""
    parts, level = [], None
    for m in modes:
        s = summary.get(m) or {}
        lo, hi = s.get("certified_robust_acc"), s.get("robust_acc")
        if lo is None or hi is None:
            continue
        parts.append(f"{m.upper()} [{lo:.3f}, {hi:.3f}]")
        level = level or s.get("certify_level")
    if not parts:
        return None
    return ("robust acc, true value in [certified, attacked]: " + "  ".join(parts)
            + (f"   (certified: E5 level {level})" if level else ""))


def claims_lines(summary: dict) -> list[str]:
    """The verdict lines of one seed, V1 (pre-registered) then V2 (SPEC §9's
    stricter version): "claims on this seed (SPEC V1): P1 holds  P2 FAILS ..."."""
    from .claims import claims
    out = []
    for version in ("V1", "V2"):
        cl = claims(summary, version)
        if cl:
            out.append(f"claims on this seed (SPEC {version}): " + "  ".join(
                f"{k} {'holds' if v else 'FAILS'}" for k, v in cl.items()))
    return out


def _short(v) -> str:
    """3 significant digits (RC values span 1e-3 … 1e5); text ("inf") and None as they are."""
    return f"{v:.3g}" if isinstance(v, float) else "—" if v is None else str(v)


def rc6_lines(regime: dict | None) -> list[str]:
    """RC6 (reach at the learned weights) per trained mode, as printed beside RC1–RC5."""
    if not isinstance(regime, dict):
        return []
    out = []
    for mode, c in (regime.get("rc6") or {}).items():
        role = "" if mode == "at" else "  (diagnostic: RC6 speaks of AT)"
        met = "met" if c.get("met") else "NOT MET"
        out.append(f"RC6 {c.get('title', '')} [{mode.upper()} final W]: {_short(c.get('value'))} "
                   f"{c.get('relation', '<')} {_short(c.get('threshold'))}  {met}{role}   ({c.get('detail', '')})")
    if "all_met_initial" in regime:
        out.append(f"RC1–RC5 all met (a priori): {'yes' if regime['all_met_initial'] else 'no'}"
                   + (f";  with RC6: {'yes' if regime.get('all_met') else 'no'}" if out else ""))
    return out


def reproduce_commands(summary: dict) -> list[str]:
    """Commands that re-run this run: the preset, the config as --set overrides of
    the preset's values in this version, and the mode."""
    from .config import Config
    cfg = summary.get("config", {})
    preset = summary.get("preset")
    try:
        from . import presets
        base = presets.fields(preset) if preset else {}
    except (ImportError, KeyError, ValueError):
        preset, base = None, {}
    default = {**Config().to_dict(), **base}
    sets = [f"--set {key}={json.dumps(v) if isinstance(v, str) else v}"
            for key, v in cfg.items() if key != "seed" and default.get(key) != v]
    modes = [m for m in ("st", "at") if m in summary]
    mode = "" if modes == ["st", "at"] else f" --mode {modes[0]}" if modes else ""
    pre = f" --preset {preset}" if preset else ""
    cmd = f"python -m reffeat.run{pre} --seed {summary.get('seed', 0)}{mode}" + \
        ("" if not sets else " " + " ".join(sets)) + " --out DIR"
    return [cmd]


def _regime_section(rep: Report, regime) -> None:
    """RC1–RC5 of SPEC §11 (reffeat.regime): value, threshold, met, for the expected
    initial weights and for this seed's W0; any other structure as key/value rows."""
    rep.heading("Regime conditions (SPEC §11)")
    conds = regime.get("conditions") if isinstance(regime, dict) else None
    if isinstance(conds, dict) and all(isinstance(c, dict) for c in conds.values()):
        seed = (regime.get("this_seed") or {}).get("conditions") or {}
        rep.paragraph("The conditions under which the theory's claims are expected, evaluated at "
                      "this config with the expected initial weights, and with this seed's W0.",
                      "note")
        rows, keys = [], []
        for name, c in conds.items():
            sc = seed.get(name, {})
            rows.append([name, c.get("title", ""), c.get("value"), c.get("relation", ""),
                         c.get("threshold"), "met" if c.get("met") else "NOT met",
                         sc.get("value"), ("met" if sc.get("met") else "NOT met") if sc else "—",
                         c.get("detail", "")])
            keys.append([None, None, f"regime.conditions.{name}.value", None,
                         f"regime.conditions.{name}.threshold", None,
                         f"regime.this_seed.conditions.{name}.value" if sc else None, None, None])
        rep.table(["", "condition", "value", "", "threshold", "expected W0", "this seed's W0",
                   "this seed", "how it is computed"], rows, keys)
        for line in rc6_lines(regime):
            rep.paragraph(line, "note")
        return
    flat = _flatten(regime) if isinstance(regime, dict) else [("regime", regime)]
    rep.table(["condition", "value"],
              [[k, v if isinstance(v, (int, float)) and not isinstance(v, bool) else
                json.dumps(v) if not isinstance(v, str) else v] for k, v in flat],
              [[None, f"regime.{k}"] for k, _ in flat])


def synthetic_report(summary: dict, out_dir: str, files: dict | None = None) -> Report:
    """The report of ``python -m reffeat.run``: config, regime conditions (if the
    summary has them), results with the claims, every figure with a caption,
    the files and the commands to reproduce."""
    from .claims import STATEMENTS, STATEMENTS_V2, claims
    cfg = summary.get("config", {})
    modes = [m for m in ("st", "at") if m in summary]
    preset = summary.get("preset")
    title = (f"reffeat run — seed {summary.get('seed')}, {describe_threat(cfg).split(' (')[0]}"
             + (f", preset {preset}" if preset else ""))
    rep = Report(title, f"{', '.join(m.upper() for m in modes)} on the SPEC's synthetic patch data; "
                        f"written {summary.get('started', '')}, wall time "
                        f"{_fmt(summary.get('wall_time_s'), 1)} s.")
    rep.heading("Set-up")
    rep.table(None, [
        ["threat", describe_threat(cfg)],
        ["robust accuracy (E2) means surviving", describe_robust(cfg)],
        ["training", f"{'ST: gradient descent on clean data; ' if 'st' in modes else ''}"
                     f"{'AT: gradient descent at adversarial points from ' if 'at' in modes else ''}"
                     f"{_t2_words(cfg) if 'at' in modes else ''}"
                     f"; η = {cfg.get('eta')}, T = {cfg.get('T')} steps"],
        ["data", f"n_train = {cfg.get('n_train')} training points, n_test = {cfg.get('n_test')} fresh "
                 f"test points; k = {cfg.get('k')} classes, P = {cfg.get('P')} patches"],
    ])
    regime = summary.get("regime")
    if regime:
        _regime_section(rep, regime)
    rep.heading("Results")
    rows, keys = [], []
    for label, key in result_rows(summary, modes):
        rows.append([label] + [_get(summary[m], key) for m in modes])
        keys.append([None] + [f"{m}.{key}" for m in modes])
    rep.table([""] + [m.upper() for m in modes], rows, keys)
    iv = interval_line(summary, modes)
    if iv:
        rep.paragraph(iv)
        rep.paragraph("E2 (attacks) is an upper bound on the true robust accuracy, E5 (a sound "
                      "certificate) a lower bound; the truth lies in the interval.", "note")
    for line in E_LEGEND:
        rep.paragraph(line, "note")
    cl = claims(summary)
    if cl:
        cl2 = claims(summary, "V2")
        rep.heading("Claims (SPEC V1 and V2, this seed)")

        def cell(name, ok, version):
            if ok is None:
                return "<td>—</td>"
            return (f"<td class='{'holds' if ok else 'fails'}' data-claim='{name}' data-version='{version}' "
                    f"data-value='{json.dumps(bool(ok))}'>{'holds' if ok else 'fails'}</td>")
        rep.raw("<table><tr><th></th><th>V1</th><th>V2</th><th>statement (V1 / V2)</th></tr>" + "".join(
            f"<tr><td>{c}</td>{cell(c, ok, 'V1')}{cell(c, cl2.get(c), 'V2')}"
            f"<td>{html.escape(STATEMENTS[c])}"
            + (f"<br>V2: {html.escape(STATEMENTS_V2[c])}" if STATEMENTS_V2[c] != STATEMENTS[c] else "")
            + "</td></tr>" for c, ok in cl.items()) + "</table>")
        for line in claims_lines(summary):
            rep.paragraph(line, "note")
        rep.paragraph("V1 is the pre-registered version; V2 (SPEC §9) is stricter and was fixed "
                      "before its results were seen. One seed is one draw: the verdicts over "
                      "seeds are in python -m reffeat.verify.", "note")
    notes = []
    for m in modes:
        s = summary[m]
        h = s.get("history", {})
        if h.get("loss") and (s.get("max_loss") or 0) > 2 * h["loss"][0]:
            notes.append(f"{m.upper()}: the training loss blew up to {s['max_loss']:.4g} at step "
                         f"{s['max_loss_step']} (initial {h['loss'][0]:.4g}).")
        if s.get("stopped"):
            notes.append(f"{m.upper()} stopped early: {s['stopped']}")
    for n in notes:
        rep.paragraph(n)
    figs = [f for f in summary.get("figures", []) if os.path.exists(os.path.join(out_dir, f))]
    if figs:
        rep.heading("Figures")
        for f in figs:
            rep.figure(os.path.join(out_dir, f), SYNTHETIC_CAPTIONS.get(f, f))
    if files:
        rep.heading("Files in this folder")
        rep.table(["file", "content"], [[name, what] for name, what in files.items()])
    rep.heading("Reproduce")
    rep.code("\n".join(reproduce_commands(summary)))
    rep.paragraph("Same config and seed give the same numbers on any core count. Run from the "
                  "repository (or after pip install .); the versions used are listed below.", "note")
    rep.heading("Config")
    rep.table(["key", "value"], [[k, v if isinstance(v, (int, float)) and not isinstance(v, bool)
                                  else _fmt(v) if v is None or isinstance(v, bool) else str(v)]
                                 for k, v in cfg.items()],
              [[None, f"config.{k}"] for k in cfg])
    vers = summary.get("versions", {})
    if vers:
        rep.paragraph("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items())
                      + (f"; platform {summary['platform']}" if summary.get("platform") else ""), "note")
    return rep


# ---------------------------------------------------------------- real-image run
#: what to look for in each figure of the real-image run (reffeat/real/figures.py)
REAL_CAPTIONS = {
    "acc_vs_eps.png": "R4 (a): worst-case test accuracy as the radius ε of the threat grows, ST and AT "
                      "networks and the two linear baselines. Look for: ST collapsing at small ε, AT "
                      "holding up to about its training ε, and where AT stands against the linear AT model.",
    "acc_vs_eps_seeds.png": "R4 (a) over the seeds: mean worst-case accuracy vs ε with ± one standard "
                            "deviation. Look for: how wide the band is at the training ε.",
    "filters.png": "Learned filters w_j,r shown as image patches, ST beside AT (per class the filters "
                   "of largest norm). Look for: AT's filters smoother and more shape-like, ST's more "
                   "high-frequency.",
    "lens_curves.png": "R4 (d): the lenses after every epoch (epoch 0 is the shared initial W0). Look "
                       "for: whether AT's robust accuracy rises with its accuracy on D_R (images that "
                       "keep only the AT model's robust features) and falls with D_NR (ST's non-robust "
                       "features), and ST doing the opposite.",
    "frequency.png": "R4 (c): accuracy on low-pass and high-pass filtered test images against the "
                     "Fourier radius. Look for: AT relying on low frequencies (good low-pass, poor "
                     "high-pass accuracy), ST using high frequencies too.",
    "lens_examples.png": "R4 (b): training images with their D_R (robust features of the AT model) and "
                         "D_NR (targeted non-robust perturbation of the ST model) versions and labels. "
                         "Look for: D_R images that still look like their class, D_NR images that look "
                         "like the original yet carry another label.",
}

#: the headline numbers of ``--seeds N`` (experiments.real_seeds) in words, in table order
SEED_LABELS = {
    "st_clean": "ST clean", "st_robust": "ST worst-case robust", "st_pgd": "ST under PGD only",
    "st_apgd_ce": "ST under APGD-CE only", "st_apgd_dlr": "ST under APGD-DLR only",
    "at_clean": "AT clean", "at_robust": "AT worst-case robust", "at_pgd": "AT under PGD only",
    "at_apgd_ce": "AT under APGD-CE only", "at_apgd_dlr": "AT under APGD-DLR only",
    "linear_st_clean": "linear ST clean", "linear_st_robust": "linear ST robust (exact)",
    "linear_at_clean": "linear AT clean", "linear_at_robust": "linear AT robust (exact)",
    "st_on_D_R": "ST accuracy on D_R", "at_on_D_R": "AT accuracy on D_R",
    "st_on_D_NR": "ST accuracy on D_NR (target labels)", "at_on_D_NR": "AT accuracy on D_NR (target labels)",
    "fresh_D_R_clean": "fresh ST model trained on D_R: clean", "fresh_D_R_robust": "fresh ST model on D_R: robust",
    "fresh_D_NR_clean": "fresh ST model trained on D_NR: clean",
    "fresh_D_NR_robust": "fresh ST model on D_NR: robust",
}

_DATASET_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10", "svhn": "SVHN"}


def _pointer(*parts) -> str:
    """The JSON pointer (RFC 6901) of a number in results.json, e.g. ``/headline/at/robust``:
    the page's ``data-key`` (a path, never shown as text)."""
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _seeds_text(seeds) -> str:
    seeds = list(seeds)
    if len(seeds) == 1:
        return str(seeds[0])
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}–{seeds[-1]}"
    return ", ".join(str(s) for s in seeds)


def _at_attack(c: dict) -> str:
    """AT's training attack in words (the options' attack_steps, at_start)."""
    K = c.get("attack_steps", 1)
    if K and K > 1:
        return f"PGD with K = {K} steps (random start)"
    if c.get("at_start") == "random":
        return "one step from a random start (FGSM-RS)"
    return "one signed-gradient step from the clean point (FGSM, the paper's algorithm)"


def _setup_rows(results: dict, seeds) -> list[list[str]]:
    """The set-up of a real-image run in words: data, network, threat, training, evaluation, seeds."""
    c = results.get("config", {})
    data = results.get("data", {})
    ds = _DATASET_NAMES.get(c.get("dataset"), str(c.get("dataset")))
    train = data.get("train", {})
    n_train = data.get("n_train", c.get("n_train") or "all")
    src = train.get("source")
    data_txt = (f"{ds}: {n_train} training images"
                + (f" of classes {', '.join(str(x) for x in c['classes'])}" if c.get("classes") else "")
                + (f"; clean accuracy on all {data['n_test_full']} test images, attacks and lenses on a "
                   f"balanced subset of {data['n_eval']}" if "n_test_full" in data else
                   f"; attacks and lenses on {c.get('n_eval')} test images")
                + (f"; source: {src}" if src else "")
                + (f" ({train['note']})" if train.get("note") and not train.get("canonical", True) else ""))
    p = c.get("p")
    side = data.get("image_shape", [None])[0]
    P, d, k = data.get("P"), data.get("d"), data.get("k")
    stride = c.get("stride")
    net = ("the SPEC's two-layer patch network (N1–N4): each image "
           + ("with the training images' per-pixel mean subtracted, " if c.get("center") else "")
           + (f"cut into P = {P} patch{'es' if P != 1 else ''} of {p}×{p} pixels" if P else f"cut into {p}×{p} patches")
           + (f" (stride {stride})" if stride not in (None, p) else "")
           + (f" (the whole {side}×{side} image)" if P == 1 and side == p else "")
           + (f", d = {d} inputs per patch" if d else "")
           + f"; m = {c.get('m')} filters per class{f' for k = {k} classes' if k else ''}, "
           f"activation exponent q = {c.get('q')}, ρ = {c.get('rho')}, initial scale σ0 = {c.get('sigma0')}")
    threat = describe_threat(c) + "; pixels stay in [0, 1]"
    training = (f"ST on clean images, AT on adversarial images from {_at_attack(c)} inside the same ball; "
                f"both from the same initial weights W0, {c.get('epochs')} epoch{'s' if c.get('epochs') != 1 else ''}, "
                f"{c.get('optimizer')} with learning rate {c.get('lr')} ({c.get('lr_schedule')} schedule), "
                f"batch {c.get('batch_size')}, {c.get('dtype')}")
    hl = results.get("headline") or (results.get("acc_vs_eps") or {})
    attack = ((hl.get("attack") or "").split("; cascaded")[0]
              or f"worst case per point of PGD-{c.get('eval_steps')}, APGD-CE and APGD-DLR")
    evaluation = (f"robust accuracy is the {attack}: a test image counts only if it survives every attack. "
                  "The linear baselines (softmax f(x) = Vx + b on the same pixels; ST and one-step AT) "
                  "have their exact worst case, no attack needed")
    seeds = list(seeds)
    seed_txt = (f"{len(seeds)} seeds ({_seeds_text(seeds)}), each a full run; numbers are mean ± standard "
                "deviation over them" if len(seeds) > 1 else f"one seed ({seeds[0] if seeds else '—'})")
    return [["data", data_txt], ["network", net], ["threat", threat], ["training", training],
            ["evaluation", evaluation], ["seeds", seed_txt]]


def _mean_sd(st: dict | None) -> str:
    if not st or st.get("mean") is None:
        return "—"
    return f"{st['mean']:.3f}" + (f" ± {st['std']:.3f}" if st.get("std") is not None else "")


def _real_head(results: dict, which: str, count: str) -> Report:
    """A real-image report's title, subtitle and smoke-test banner (one seed or several:
    ``which`` names them in the title, ``count`` follows "SPEC R1–R5" in the subtitle)."""
    c = results.get("config", {})
    ds = _DATASET_NAMES.get(c.get("dataset"), str(c.get("dataset", "")))
    smoke = "SMOKE TEST — " if results.get("smoke_test") else ""
    rep = Report(f"{smoke}reffeat real-image run — {ds}, {which}",
                 f"ST vs AT on real images (SPEC R1–R5){count}; written "
                 f"{_dt.datetime.now().isoformat(timespec='seconds')}, "
                 f"wall time {_fmt(results.get('wall_time'), 1)} s.")
    _smoke_banner(rep, results)
    return rep


def _smoke_banner(rep: Report, results: dict) -> None:
    if results.get("smoke_test"):
        rep.paragraph("SMOKE TEST (--quick): a tiny run (1 epoch on a few dozen images, 2-step attacks) "
                      "that checks the pipeline runs end to end. Its numbers say nothing about ST or AT; "
                      "run without --quick for results.", "fails")


def _config_section(rep: Report, c: dict) -> None:
    """The options of the run as the command line names them, one row each."""
    rep.heading("Config")
    rep.paragraph("Every option of the run (python -m reffeat.run real --help explains each).", "note")

    def flag(key):
        return "--dataset" if key == "dataset" else "--patch" if key == "p" else "--" + key.replace("_", "-")

    def show(v):
        if isinstance(v, list):
            return ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v)
        if v is None:
            return "— (default)"
        return f"{v:g}" if isinstance(v, float) else _fmt(v) if isinstance(v, bool) else str(v)
    rows = [["--no-lenses", "given: lenses (b)–(d) not run" if v is False else "not given"] if key == "lenses"
            else [flag(key), show(v)] for key, v in c.items()]
    rep.table(["option", "value"], rows)


def _footer(rep: Report, results: dict, command: str | None) -> None:
    if command:
        rep.heading("Reproduce")
        rep.code(command)
    prov = results.get("provenance") or {}
    vers = results.get("versions") or {}
    bits = []
    if prov.get("commit"):
        bits.append(f"commit {prov['commit'][:12]}{' (with uncommitted changes)' if prov.get('dirty') else ''}")
    if vers:
        bits.append("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))
    if bits:
        rep.paragraph("; ".join(bits), "note")


def _figures(rep: Report, out_dir: str, captions: dict | None, order) -> None:
    pngs = [f for f in order if os.path.exists(os.path.join(out_dir, f))]
    pngs += sorted(f for f in os.listdir(out_dir) if f.endswith(".png") and f not in pngs)
    if pngs:
        rep.heading("Figures")
        for f in pngs:
            rep.figure(os.path.join(out_dir, f), (captions or REAL_CAPTIONS).get(f, f))


def _lens_sentences(results: dict) -> list[str]:
    """What each R4 lens shows in this run, one sentence each, from its numbers."""
    c = results.get("config", {})
    lens = results.get("lenses", {})
    out = []
    a = lens.get("acc_vs_eps")
    if a and a.get("st") and a.get("at"):
        eps = a["eps"]
        at_eps = ""
        if c.get("eps") in eps:
            j = eps.index(c["eps"])
            at_eps = f" (at the training ε = {c['eps']:g}: ST {a['st'][j]:.3f}, AT {a['at'][j]:.3f})"
        out.append(f"(a) accuracy against ε: from ε = {eps[0]:g} to ε = "
                   f"{eps[-1]:g} ST's worst-case accuracy falls from {a['st'][0]:.3f} to {a['st'][-1]:.3f} "
                   f"and AT's from {a['at'][0]:.3f} to {a['at'][-1]:.3f}{at_eps}"
                   + (f"; the linear AT model goes from {a['linear_at'][0]:.3f} to {a['linear_at'][-1]:.3f}"
                      if a.get("linear_at") else "") + ".")
    b = lens.get("datasets")
    if b and "st_on_D_R" in b:
        fresh = b.get("fresh", {})
        f_txt = ""
        if "D_R" in fresh:
            f_txt = (f"; a fresh ST model trained on D_R reaches {fresh['D_R']['clean']:.3f} clean / "
                     f"{fresh['D_R']['robust']:.3f} robust on the real test images")
            if "D_NR" in fresh:
                f_txt += (f", one trained on D_NR {fresh['D_NR']['clean']:.3f} / {fresh['D_NR']['robust']:.3f}")
        out.append("(b) robust and non-robust data sets: on D_R (images rebuilt to match only what the AT "
                   f"model sees) ST is right on {b['st_on_D_R']:.3f} and AT on {b['at_on_D_R']:.3f}; on D_NR "
                   "(images pushed by a small targeted attack on ST to a new label, labelled with it) "
                   f"ST agrees with the new label on {b['st_on_D_NR']:.3f}, AT on {b['at_on_D_NR']:.3f}"
                   + f_txt + ".")
    f = lens.get("frequency")
    if f and f.get("st") and f.get("at"):
        radii = f["st"]["radii"]
        target = c.get("radius", radii[len(radii) // 2])
        i = min(range(len(radii)), key=lambda j: abs(radii[j] - target))
        out.append(f"(c) frequency: keeping only the frequencies below radius {radii[i]:g}, ST is right on "
                   f"{f['st']['low'][i]:.3f} and AT on {f['at']['low'][i]:.3f} of the test images; keeping "
                   f"only those above it, ST {f['st']['high'][i]:.3f} and AT {f['at']['high'][i]:.3f}.")
    cv = lens.get("curves")
    if cv and cv.get("at") and cv["at"].get("robust"):
        s, t = cv["st"], cv["at"]
        j = 1 if len(t["robust"]) > 1 else 0
        out.append(f"(d) over training: AT's robust accuracy (PGD) is {t['robust'][0]:.3f} at the start, "
                   f"{t['robust'][j]:.3f} after epoch {t['epoch'][j]} "
                   f"and {t['robust'][-1]:.3f} at the end, while ST's ends at {s['robust'][-1]:.3f}; AT's "
                   f"accuracy on D_R ends at {t['D_R'][-1]:.3f}, ST's at {s['D_R'][-1]:.3f}.")
    return out


def real_report(results: dict, out_dir: str, captions: dict | None = None,
                command: str | None = None) -> Report:
    """The report of ``python -m reffeat.run real`` (one seed: ``kind`` "real"; or
    ``--seeds N``: "real-seeds"), laid out like the main run's: the set-up in
    words, the headline table (clean and worst-case robust accuracy of ST, AT
    and the linear baselines, with the seeds) before any figure, one sentence
    per R4 lens, the figures with what to look for (``captions``: file name ->
    caption, default ``REAL_CAPTIONS``), the config, then every number as
    structured tables.  A ``smoke_test`` run (``--quick``) says so at the top.
    Each number carries its JSON pointer in results.json as ``data-key``."""
    if results.get("kind") == "real-seeds":
        return _real_seeds_report(results, out_dir, captions, command)
    c = results.get("config", {})
    seed = c.get("seed", results.get("seed"))
    rep = _real_head(results, f"seed {seed}", "")
    if results.get("stopped"):
        rep.paragraph(f"This run stopped early ({results['stopped']}); the numbers below are those of "
                      f"the stages it finished: {', '.join(results.get('stages_done', [])) or 'none'}.", "fails")
    rep.heading("Set-up")
    rep.table(None, _setup_rows(results, [seed]))
    hl, lin = results.get("headline") or {}, results.get("linear") or {}
    rep.heading("Headline")
    rows, keys = [], []
    for mode, name in (("st", "ST network"), ("at", "AT network")):
        if mode in hl:
            rows.append([name, hl[mode].get("clean"), hl[mode].get("robust"), str(seed)])
            keys.append([None, _pointer("headline", mode, "clean"), _pointer("headline", mode, "robust"), None])
    for mode, name in (("st", "linear ST"), ("at", "linear AT (one step)")):
        if mode in lin:
            rows.append([name, lin[mode].get("clean"), lin[mode].get("robust"), str(seed)])
            keys.append([None, _pointer("linear", mode, "clean"), _pointer("linear", mode, "robust"), None])
    if rows:
        eps_txt = f"ε = {hl.get('eps', c.get('eps')):g}"
        rep.table(["model", "clean accuracy", f"worst-case robust accuracy ({eps_txt})", "seed"], rows, keys)
        rep.paragraph("Clean accuracy on the full test split; robust accuracy on the evaluation subset, the "
                      "per-point worst case over the attacks in the set-up (the linear models' is exact).",
                      "note")
    else:
        rep.paragraph("No headline numbers: the run stopped before its evaluation.")
    sentences = _lens_sentences(results)
    if sentences:
        rep.heading("What the lenses show")
        for line in sentences:
            rep.paragraph(line)
        if c.get("lenses") is False:
            rep.paragraph("Lenses (b)–(d) were not run (--no-lenses).", "note")
    _figures(rep, out_dir, captions, ["acc_vs_eps.png", "lens_curves.png", "frequency.png",
                                      "lens_examples.png", "filters.png"])
    if c:
        _config_section(rep, c)
    rep.heading("All numbers")
    _real_number_tables(rep, results)
    _footer(rep, results, command)
    return rep


def _real_number_tables(rep: Report, results: dict) -> None:
    """Every number of a one-seed results.json as tables, by stage."""
    hl, lin, lens = results.get("headline") or {}, results.get("linear") or {}, results.get("lenses") or {}
    modes = [m for m in ("st", "at") if m in hl]
    if modes:
        rep.raw("<h3>Robust accuracy by attack</h3>")
        cols = [("clean", "clean (full test)"), ("clean_eval_subset", "clean (evaluation subset)"),
                ("pgd", "PGD"), ("apgd_ce", "APGD-CE"), ("apgd_dlr", "APGD-DLR"), ("robust", "worst case")]
        rep.table(["model"] + [h for _, h in cols], [[m.upper()] + [hl[m].get(k) for k, _ in cols] for m in modes],
                  [[None] + [_pointer("headline", m, k) for k, _ in cols] for m in modes])
        rep.paragraph(f"{hl.get('n_clean_eval', '—')} test images for clean accuracy, {hl.get('n_robust_eval', '—')} "
                      "for the attacks.", "note")
    lmodes = [m for m in ("st", "at") if m in lin]
    if lmodes:
        rep.raw("<h3>Linear baseline</h3>")
        rep.table(["model", "clean", "robust (exact)", "training time (s)"],
                  [[f"linear {m.upper()}", lin[m]["clean"], lin[m]["robust"], lin[m].get("seconds")] for m in lmodes],
                  [[None] + [_pointer("linear", m, k) for k in ("clean", "robust", "seconds")] for m in lmodes])
    a = lens.get("acc_vs_eps")
    if a:
        rep.raw("<h3>(a) Worst-case accuracy against ε</h3>")
        names = [("st", "ST"), ("at", "AT"), ("linear_st", "linear ST"), ("linear_at", "linear AT")]
        rep.table(["model"] + [f"ε = {e:g}" for e in a["eps"]],
                  [[n] + list(a[k]) for k, n in names if k in a],
                  [[None] + [_pointer("lenses", "acc_vs_eps", k, j) for j in range(len(a[k]))]
                   for k, _ in names if k in a])
    b = lens.get("datasets")
    if b:
        rep.raw("<h3>(b) The data sets D_R and D_NR</h3>")
        cols = [("on_D_R", "on D_R"), ("on_D_NR", "on D_NR (target labels)"),
                ("on_D_NR_original_labels", "on D_NR (original labels)")]
        rep.table(["model"] + [h for _, h in cols],
                  [[m.upper()] + [b.get(f"{m}_{k}") for k, _ in cols] for m in ("st", "at")],
                  [[None] + [_pointer("lenses", "datasets", f"{m}_{k}") for k, _ in cols] for m in ("st", "at")])
        R, N = b.get("D_R", {}), b.get("D_NR", {})
        rows, keys = [], []
        for key, label in (("kind", "D_R: representation matched"), ("steps", "D_R: steps"),
                           ("step_size", "D_R: step size"),
                           ("rel_residual_median", "D_R: median relative residual of the match"),
                           ("rel_residual_mean", "D_R: mean relative residual"),
                           ("start_label_agreement", "D_R: start images of the same label"),
                           ("seconds", "D_R: time (s)")):
            if key in R:
                rows.append([label, R[key]])
                keys.append([None, _pointer("lenses", "datasets", "D_R", key)])
        for key, label in (("eps", "D_NR: ε of the targeted attack"), ("norm", "D_NR: norm"),
                           ("steps", "D_NR: steps"), ("step_size", "D_NR: step size"),
                           ("target_success", "D_NR: share that reached the target label"),
                           ("seconds", "D_NR: time (s)")):
            if key in N:
                rows.append([label, N[key]])
                keys.append([None, _pointer("lenses", "datasets", "D_NR", key)])
        if "n" in b:
            rows.append(["training images turned into D_R and D_NR", b["n"]])
            keys.append([None, _pointer("lenses", "datasets", "n")])
        rep.table(["how they were built", "value"], rows, keys)
        fresh = b.get("fresh") or {}
        if fresh:
            cols = [("clean", "real test clean"), ("robust", "real test robust (worst case)"),
                    ("train_acc_on_own_set", "accuracy on its own training set")]
            rep.table(["fresh ST model trained on"] + [h for _, h in cols],
                      [[name] + [fresh[name].get(k) for k, _ in cols] for name in fresh],
                      [[None] + [_pointer("lenses", "datasets", "fresh", name, k) for k, _ in cols] for name in fresh])
    f = lens.get("frequency")
    if f:
        rep.raw("<h3>(c) Accuracy on filtered test images</h3>")
        fm = [m for m in ("st", "at") if m in f]
        radii = f[fm[0]]["radii"]
        rep.table(["Fourier radius"] + [f"{m.upper()} {band}-pass" for m in fm for band in ("low", "high")],
                  [[f"{r:g}"] + [f[m][band][i] for m in fm for band in ("low", "high")] for i, r in enumerate(radii)],
                  [[None] + [_pointer("lenses", "frequency", m, band, i) for m in fm for band in ("low", "high")]
                   for i in range(len(radii))])
    cv = lens.get("curves")
    if cv:
        cols = [("clean", "clean"), ("robust", "robust (PGD)"), ("D_R", "on D_R"), ("D_NR", "on D_NR"),
                ("low_pass", "low-pass"), ("high_pass", "high-pass")]
        for m in ("st", "at"):
            if m not in cv:
                continue
            rows_m = cv[m]
            rep.raw(f"<h3>(d) {m.upper()} after each epoch</h3>")
            rep.table(["epoch"] + [h for _, h in cols],
                      [[e] + [rows_m[k][i] for k, _ in cols] for i, e in enumerate(rows_m["epoch"])],
                      [[None] + [_pointer("lenses", "curves", m, k, i) for k, _ in cols]
                       for i in range(len(rows_m["epoch"]))])
        rep.paragraph(f"Robust: {cv.get('robust_attack', '')}; low- and high-pass at Fourier radius "
                      f"{cv.get('radius', '—')}.", "note")
    tr = results.get("training") or {}
    for m in ("st", "at"):
        if m not in tr:
            continue
        h = tr[m].get("history") or {}
        epochs = h.get("epoch") or []
        rep.raw(f"<h3>{m.upper()} training</h3>")
        heads = {"loss": "training loss", "train_acc": "training accuracy", "seconds": "time (s)"}
        hk = [k for k in heads if k in h]
        rep.table(["epoch"] + [heads[k] for k in hk],
                  [[e] + [h[k][i] for k in hk] for i, e in enumerate(epochs)],
                  [[None] + [_pointer("training", m, "history", k, i) for k in hk] for i in range(len(epochs))])
        rep.paragraph(f"{tr[m].get('epochs_done')} epoch(s) done in {_fmt(tr[m].get('wall_time'), 1)} s"
                      + (f"; stopped: {tr[m]['stopped']}" if tr[m].get("stopped") else "") + ".", "note")
    data = results.get("data") or {}
    splits = [s for s in ("train", "test") if s in data]
    if splits:
        rep.raw("<h3>Data</h3>")
        rep.table(["split", "images", "source", "canonical split", "directory"],
                  [[s, data[s].get("n"), str(data[s].get("source", "—")), _fmt(data[s].get("canonical")),
                    str(data[s].get("directory", "—"))] for s in splits],
                  [[None, _pointer("data", s, "n"), None, None, None] for s in splits])


def _real_seeds_report(results: dict, out_dir: str, captions: dict | None, command: str | None) -> Report:
    """``--seeds N``: set-up, the headline as mean ± sd over the seeds with every seed's
    value, the figures, the config, every summarised number and the runs."""
    c = results.get("config", {})
    seeds = results.get("seeds_done") or results.get("seeds") or []
    rep = _real_head(results, f"seeds {_seeds_text(seeds)}", f", {len(seeds)} seeds")
    if results.get("stopped"):
        rep.paragraph(f"This run stopped early ({results['stopped']}); seeds finished: "
                      f"{_seeds_text(seeds) if seeds else 'none'}.", "fails")
    rep.heading("Set-up")
    rep.table(None, _setup_rows(results, seeds))
    summ = results.get("summary") or {}
    rep.heading("Headline")
    rows, keys = [], []
    for name, pre in (("ST network", "st"), ("AT network", "at"), ("linear ST", "linear_st"),
                      ("linear AT (one step)", "linear_at")):
        if f"{pre}_clean" in summ:
            cl, ro = summ[f"{pre}_clean"], summ.get(f"{pre}_robust")
            rows.append([name, _mean_sd(cl), _mean_sd(ro),
                         ", ".join(f"{v:.3f}" for v in (ro or {}).get("values", []))])
            keys.append([None, None, None, None])
    if rows:
        rep.table(["model", "clean accuracy", f"worst-case robust accuracy (ε = {c.get('eps', 0):g})",
                   f"robust, per seed ({_seeds_text(seeds)})"], rows)
        rep.paragraph("mean ± standard deviation over the seeds; clean accuracy on the full test split, "
                      "robust accuracy the per-point worst case on the evaluation subset (exact for the "
                      "linear models).", "note")
    _figures(rep, out_dir, captions, ["acc_vs_eps_seeds.png"])
    if c:
        _config_section(rep, c)
    rep.heading("All numbers")
    if summ:
        rep.raw("<h3>Over the seeds</h3>")
        rows = [[SEED_LABELS.get(key, key.replace("_", " ")), s.get("mean"), s.get("std"),
                 "—" if not s.get("ci95") else f"[{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}]",
                 ", ".join(f"{v:.3f}" for v in s.get("values", []))] for key, s in summ.items()]
        rep.table(["quantity", "mean", "std", "95% t-interval", "per seed"], rows,
                  [[None, _pointer("summary", key, "mean"), _pointer("summary", key, "std"), None, None]
                   for key in summ])
    a = results.get("acc_vs_eps")
    if a:
        rep.raw("<h3>(a) Worst-case accuracy against ε, mean ± std</h3>")
        names = [("st", "ST"), ("at", "AT"), ("linear_st", "linear ST"), ("linear_at", "linear AT")]
        rep.table(["model"] + [f"ε = {e:g}" for e in a["eps"]],
                  [[n] + [_mean_sd(s) for s in a[k]] for k, n in names if k in a])
    runs = results.get("runs") or {}
    if runs:
        rep.raw("<h3>The runs</h3>")
        rep.table(["seed", "results", "wall time (s)"],
                  [[s, r.get("results"), r.get("wall_time")] for s, r in runs.items()],
                  [[None, None, _pointer("runs", s, "wall_time")] for s in runs])
    _footer(rep, results, command)
    return rep
