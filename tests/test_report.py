"""report.html and the run's text output: read back by parsing, compared with
summary.json (every figure embedded, every number equal, no script, no network)."""
import base64
import json
import math
import os
from html.parser import HTMLParser

import pytest

from reffeat import Config
from reffeat.claims import claims
from reffeat.cli.run import format_files, format_table, main
from reffeat.experiments.synthetic import run_synthetic
from reffeat.report import E_LEGEND, Report, _fmt, real_report

SMALL = dict(T=8, n_train=30, n_test=40, P=8, d_N=8, log_every=4, eval_K=3, eval_apgd_K=2)


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.figures, self.imgs, self.cells, self.claims, self.tags = [], [], [], {}, []
        self.links = []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for key in ("src", "href"):
            if key in a:
                self.links.append(a[key])
        if tag == "figure":
            self.figures.append(a.get("data-file"))
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        if tag == "td" and "data-key" in a:
            self._cell = [a["data-key"], json.loads(a["data-value"]), ""]
        if tag == "td" and "data-claim" in a:
            self.claims[a["data-claim"]] = json.loads(a["data-value"])

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[2] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells.append(tuple(self._cell))
            self._cell = None


def _get(d, dotted):
    for part in dotted.split("."):
        d = d[part]
    return d


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    (out / "old_file.txt").write_text("from an earlier run")
    os.utime(out / "old_file.txt", (1e9, 1e9))
    summary = run_synthetic(Config(seed=3, **SMALL), ["st", "at"], str(out), progress=None)
    return out, summary


def test_report_embeds_every_figure_and_matches_summary(run_dir):
    out, _ = run_dir
    summary = json.loads((out / "summary.json").read_text())
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    assert "script" not in page.tags, "report.html must not contain scripts"
    assert all(link.startswith("data:image/png;base64,") for link in page.links), \
        f"report.html must not reference anything outside itself: {page.links}"
    assert summary["figures"] and page.figures == summary["figures"]
    for name, src in zip(page.figures, page.imgs):
        png = base64.b64decode(src.split(",", 1)[1])
        assert png == (out / name).read_bytes(), f"{name}: embedded image differs from the file"
    keys = {key for key, _, _ in page.cells}
    for m in ("st", "at"):
        for key in ("clean_acc", "robust_acc", "robust_acc_pgd", "gamma", "phi", "alignment",
                    "responses.robust", "responses.nonrobust"):
            assert f"{m}.{key}" in keys, f"{m}.{key} not in the report's table"
    assert "config.eps" in keys and "config.n_test" in keys
    for key, value, text in page.cells:
        want = _get(summary, key)
        if isinstance(want, float) and math.isnan(want):
            continue
        assert value == want, f"{key}: report says {value!r}, summary.json {want!r}"
        assert text.strip() == _fmt(want), f"{key}: shown as {text!r}, expected {_fmt(want)!r}"
    assert page.claims == claims(summary) and set(page.claims) == {"P1", "P2", "P3", "P4"}


def test_report_shows_the_regime_conditions(run_dir):
    out, _ = run_dir
    summary = json.loads((out / "summary.json").read_text())
    page = _Page()
    page.feed((out / "report.html").read_text(encoding="utf-8"))
    keys = {key for key, _, _ in page.cells}
    for rc in summary["regime"]["conditions"]:
        assert f"regime.conditions.{rc}.value" in keys, f"{rc} missing from report.html"


def test_report_shows_other_regime_structures(tmp_path):
    summary = json.loads(json.dumps({"config": Config().to_dict(), "seed": 0,
                                     "regime": {"eta_stable": True, "sigma0_small": 0.01}}))
    from reffeat.report import synthetic_report
    page = _Page()
    page.feed(synthetic_report(summary, str(tmp_path)).render())
    assert ("regime.sigma0_small", 0.01, "0.0100") in page.cells


def test_run_output_explains_itself(run_dir):
    out, summary = run_dir
    table = format_table(summary)
    for words in ("threat: ℓ∞ ball, ε = 0.2", "n_train = 30", "n_test = 40 fresh test points",
                  "robust = survives PGD-3", "APGD-CE and APGD-DLR (2 iterations)",
                  "feature-aligned", "E4 response to pure robust input", "claims on this seed"):
        assert words in table, f"{words!r} missing from the results table"
    assert E_LEGEND[0] in table and E_LEGEND[1] in table
    files = format_files(summary, str(out))
    written = sorted(f for f in os.listdir(out) if f != "old_file.txt")
    assert sorted(summary["files"]) == written, "the file list is not what the run wrote"
    for f in written:
        assert f"  {f}  " in files, f"{f} missing from the list of files written"
    assert "old_file.txt" not in files
    for f in ("summary.json", "report.html", "weights_at.npz"):
        assert summary["files"][f] != "written by this run", f"{f} has no description"


def test_cli_prints_table_then_files(tmp_path, capsys):
    out = tmp_path / "r"
    args = [x for k, v in SMALL.items() for x in ("--set", f"{k}={v}")]
    assert main(args + ["--mode", "st", "--quiet", "--no-figures", "--out", str(out)]) == 0
    text = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("results — seed 0; preset default") for line in text)
    assert any(line.startswith("wrote ") and str(out) in line for line in text)
    assert text[-1].endswith("in a browser to see it all on one page")
    assert (out / "report.html").exists()


def test_real_report_lists_every_number_and_png(tmp_path):
    import numpy as np

    from reffeat.plots import pyplot, save_figure
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    save_figure(fig, str(tmp_path / "acc_vs_eps.png"))
    plt.close(fig)
    res = {"config": {"dataset": "mnist", "seed": 1, "eps": 0.1},
           "headline": {"st": {"clean": 0.9, "robust": 0.1}, "at": {"clean": 0.8, "robust": 0.6}},
           "wall_time": 12.5, "curve": [0.1, 0.2], "stopped": None}
    page = _Page()
    page.feed(real_report(res, str(tmp_path), {"acc_vs_eps.png": "accuracy vs ε"}).render())
    assert page.figures == ["acc_vs_eps.png"]
    got = {k: v for k, v, _ in page.cells}
    assert got["/headline/at/robust"] == 0.6 and got["/headline/st/clean"] == 0.9
    assert not np.isnan([v for v in got.values() if v is not None]).any()


def test_report_builder_escapes_text():
    rep = Report("a <b> & c")
    rep.paragraph("<script>alert(1)</script>")
    page = _Page()
    page.feed(rep.render())
    assert "script" not in page.tags
