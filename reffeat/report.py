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
    step = cfg.get("eval_gamma") or (eps / 4 if eps is not None else None)
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
    return f"T2 with K = {cfg.get('K')} step(s) of size {cfg.get('gamma') or cfg.get('eps'):g}"


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
    "filters.png": "Learned filters w_j,r shown as image patches, ST beside AT. Look for: AT's "
                   "filters smoother and more shape-like, ST's more high-frequency.",
    "acc_vs_eps.png": "R4 (a): test accuracy under PGD as the radius ε grows, ST and AT. Look for: "
                      "ST collapsing at small ε, AT holding up to about its training ε.",
    "lens_curves.png": "R4 (d): the lenses over training epochs (clean, robust, accuracy on D_R and "
                       "D_NR, low- and high-pass). Look for: when robustness appears, and whether "
                       "it follows accuracy on the robust dataset D_R.",
    "frequency.png": "R4 (c): accuracy on low-pass and high-pass filtered test images vs the filter "
                     "radius. Look for: AT relying on low frequencies (good low-pass, poor "
                     "high-pass accuracy), ST using high frequencies too.",
    "lens_examples.png": "R4 (b): training images with their D_R (robust features of the AT "
                         "model) and D_NR (targeted non-robust perturbation of the ST model) "
                         "versions and labels.",
}


def real_report(results: dict, out_dir: str, captions: dict | None = None,
                command: str | None = None) -> Report:
    """The report of ``python -m reffeat.run real``: its config, every scalar
    result (with its key in results.json), every PNG in ``out_dir`` with a
    caption (``captions``: file name -> what to look for) and the command."""
    cfg = results.get("config", {})
    title = f"reffeat real-image run — {cfg.get('dataset', '')}, seed {cfg.get('seed', results.get('seed', ''))}"
    rep = Report(title, f"written {_dt.datetime.now().isoformat(timespec='seconds')}")
    if cfg:
        rep.heading("Config")
        flat = [(k, v) for k, v in _flatten(cfg)]
        rep.table(["key", "value"], [[k, v if isinstance(v, (int, float)) and not isinstance(v, bool)
                                      else json.dumps(v) if not isinstance(v, str) else v] for k, v in flat],
                  [[None, f"config.{k}"] for k, _ in flat])
    rep.heading("Results")
    flat = [(k, v) for k, v in _flatten({k: v for k, v in results.items() if k != "config"})
            if isinstance(v, (int, float)) and not isinstance(v, bool)]
    rep.table(["quantity (key in results.json)", "value"], [[k, v] for k, v in flat],
              [[None, k] for k, _ in flat])
    pngs = sorted(f for f in os.listdir(out_dir) if f.endswith(".png"))
    if pngs:
        rep.heading("Figures")
        for f in pngs:
            rep.figure(os.path.join(out_dir, f), (captions or {}).get(f, f))
    if command:
        rep.heading("Reproduce")
        rep.code(command)
    return rep
