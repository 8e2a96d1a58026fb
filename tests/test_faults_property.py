"""Issue 12, property side: random ``--set`` strings, random TOML documents and
random option values fed to each command. Whatever the input: exit code 0 or 2,
no traceback on stderr, every JSON file written parses with a strict parser,
no temp file left. Tiny configs (T <= 2, a handful of samples) keep it fast;
no example can reach the network (fetch always imports ``--from`` a local path)
or start a long job (verify always rebuilds ``--from-results``)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reffeat.cli import bench as bench_cli
from reffeat.cli import data as data_cli
from reffeat.cli import real as real_cli
from reffeat.cli import run as run_cli
from reffeat.config import FIELD_NAMES
from reffeat.verify import run as verify_run

TINY = ["--set", "T=2", "--set", "n_train=6", "--set", "n_test=6", "--set", "P=4", "--set", "d_N=8",
        "--set", "m=2", "--set", "eval_K=2", "--set", "eval_apgd_K=2", "--no-figures", "--quiet"]
#: sizes and step counts: a random value for them stays small (a valid T=10**15 is a long job, not a fault)
SMALL_INT_KEYS = {"T", "n_train", "n_test", "P", "m", "K", "eval_K", "eval_restarts", "eval_apgd_K", "k",
                  "d_N", "s", "n_nonrobust"}

WEIRD = ["", " ", "none", "null", "true", "false", "yes", "nan", "-nan", "inf", "-inf", "1e308", "-1e308",
         "1e-320", "-0", "0", "0.0", "1", "2", "3", "-1", "4/255", "1/0", "0x10", "1_000", "½", "１", "∞",
         "linf", "l2", "l2-patch", "sign", "plain", "basis", "random", "sparse-dense", "[1, 2]", "=",
         "1e3", "2.5", "0.5", "10", "1e400", "\x00", "'", "\"", "\\"]
values = st.one_of(st.sampled_from(WEIRD), st.integers(-3, 9).map(str),
                   st.floats(-3, 10, allow_nan=False).map(repr), st.text(max_size=6))


def _set_item(key, value):
    if key in SMALL_INT_KEYS and value.lower() in ("1e308", "1e3", "1_000", "10", "1e400"):
        value = "3"
    return f"{key}={value}"


set_items = st.one_of(
    st.builds(_set_item, st.sampled_from(FIELD_NAMES), values),
    st.text(max_size=10),
    st.builds(lambda k, v: f"{k}={v}", st.text(min_size=1, max_size=5), values),
)


def strict_load(path: Path):
    def bad(token):
        raise AssertionError(f"{path}: non-strict JSON constant {token}")
    return json.loads(path.read_text(), parse_constant=bad)


def check_outcome(rc, err, root: Path):
    assert rc in (0, 2), f"exit {rc}; stderr: {err[-2000:]}"
    assert "Traceback" not in err, err[-3000:]
    if rc == 2:
        assert [line for line in err.splitlines() if line.startswith("error")], err[-2000:]
    for p in root.rglob("*"):
        assert not p.name.startswith(".tmp"), f"temp file left: {p}"
        if p.suffix == ".json" and p.is_file():
            strict_load(p)


def call(main, argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


PROFILE = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROFILE
@given(sets=st.lists(set_items, max_size=3))
def test_random_set_strings(sets, capsys):
    with tempfile.TemporaryDirectory() as d:
        argv = TINY + [a for s in sets for a in ("--set", s)] + ["--set", "T=2", "--out", str(Path(d) / "o")]
        rc, err = call(run_cli.main, argv, capsys)
        check_outcome(rc, err, Path(d))


toml_scalars = st.one_of(st.integers(-3, 9), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                         st.text(max_size=6), st.sampled_from(WEIRD))
toml_values = st.one_of(toml_scalars, st.lists(st.integers(-2, 5), max_size=3))


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, (int, list)):
        return json.dumps(v)
    return json.dumps(v)                       # a TOML basic string


@st.composite
def toml_documents(draw):
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.sampled_from(["config", "foo", "k k"]))
    top = draw(st.dictionaries(keys, toml_values, max_size=3))
    lines = []
    for k, v in top.items():
        if k in SMALL_INT_KEYS and isinstance(v, int):
            v = min(v, 3)
        lines.append(f'"{k}" = {_toml_value(v)}' if " " in k else f"{k} = {_toml_value(v)}")
    if draw(st.booleans()):
        lines.append("[config]")
        for k, v in draw(st.dictionaries(st.sampled_from(FIELD_NAMES), toml_values, max_size=3)).items():
            if k in SMALL_INT_KEYS and isinstance(v, int):
                v = min(v, 3)
            lines.append(f"{k} = {_toml_value(v)}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 5)) == 0:           # now and then: arbitrary text or bytes
        return draw(st.one_of(st.text(max_size=30).map(str.encode), st.binary(max_size=30)))
    return text.encode()


@PROFILE
@given(doc=toml_documents())
def test_random_toml_documents(doc, capsys):
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "c.toml"
        f.write_bytes(doc)
        argv = ["--config", str(f)] + TINY + ["--set", "T=2", "--out", str(Path(d) / "o")]
        rc, err = call(run_cli.main, argv, capsys)
        check_outcome(rc, err, Path(d))


REAL_OPTIONS = ["--patch", "--m", "--sigma0", "--q", "--rho", "--epochs", "--lr", "--optimizer", "--momentum",
                "--batch-size", "--n-train", "--norm", "--eps", "--attack-steps", "--lam", "--dtype",
                "--eps-grid", "--eval-steps", "--eval-restarts", "--n-eval", "--n-lens", "--dr-kind",
                "--dr-steps", "--dr-step-size", "--dnr-eps", "--dnr-steps", "--radius", "--radii",
                "--curve-every", "--classes", "--seed", "--out", "--figures-dir"]


@PROFILE
@given(opts=st.lists(st.tuples(st.sampled_from(REAL_OPTIONS), values), max_size=4),
       dataset=st.sampled_from(["mnist", "cifar10", "svhn", "fashion-mnist", "imagenet"]))
def test_random_real_options(opts, dataset, capsys, monkeypatch):
    with tempfile.TemporaryDirectory() as d:
        monkeypatch.setenv("REFFEAT_DATA", str(Path(d) / "env"))   # no data: stops at the data check
        monkeypatch.setenv("HOME", str(Path(d) / "home"))
        argv = ["--dataset", dataset, "--data-dir", str(Path(d) / "none"), "--quick"]
        argv += [x for o, v in opts
                 for x in (o, v if o not in ("--out", "--figures-dir") else str(Path(d) / (v or "x")))]
        rc, err = call(real_cli.main, argv, capsys)
        check_outcome(rc, err, Path(d))


@PROFILE
@given(opts=st.lists(st.tuples(st.sampled_from(["--seed", "--test-fraction", "--timeout", "--dir"]), values),
                     max_size=3))
def test_random_fetch_options(opts, capsys, monkeypatch):
    with tempfile.TemporaryDirectory() as d:
        monkeypatch.setenv("REFFEAT_DATA", str(Path(d) / "env"))
        monkeypatch.setenv("HOME", str(Path(d) / "home"))
        argv = ["fetch", "mnist", "--from", str(Path(d) / "missing"), "--quiet"]
        argv += [x for o, v in opts for x in (o, v if o != "--dir" else str(Path(d) / (v or "x")))]
        rc, err = call(data_cli.main, argv, capsys)
        check_outcome(rc, err, Path(d))


@PROFILE
@given(opts=st.lists(st.tuples(st.sampled_from(["--workers", "--out", "--report", "--figures", "--only"]),
                               values), max_size=3),
       recheck=st.booleans())
def test_random_verify_options(opts, recheck, capsys):
    with tempfile.TemporaryDirectory() as d:
        argv = ["--from-results", str(Path(d) / "missing.json"), "--quiet"] + (["--recheck"] if recheck else [])
        argv += [x for o, v in opts for x in (o, v if o not in ("--out", "--report", "--figures")
                                                  else str(Path(d) / (v or "x")))]
        rc, err = call(verify_run.main, argv, capsys)
        check_outcome(rc, err, Path(d))


@PROFILE
@given(reps=st.one_of(st.integers(-3, 4).map(str), st.sampled_from(WEIRD[:20])), ref=values)
def test_random_bench_options(reps, ref, capsys):
    rc, err = call(bench_cli.main, ["--reps", reps, "--ref-reps", ref], capsys)
    assert rc == 2 and "Traceback" not in err, err
