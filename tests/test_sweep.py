"""Tests of reffeat.sweep: the lossless store encoding, job keys, the result
store (resume runs only the missing jobs), progress lines, the local
executor surviving a killed worker, the sweep command, and — with the dask
extra installed — a real Dask cluster on 127.0.0.1 (a scheduler and two
worker processes started with the ``dask`` command): the same results as the
local executor to the last bit, and every job done exactly once although a
worker is killed mid-sweep."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from reffeat import Config
from reffeat.jobs import Job, Progress, Runner, Store, SweepError
from reffeat.output import decode
from reffeat.output import encode as _encode
from reffeat.sweep import sweep


def encode(obj):
    """The store's form of ``obj`` (the one encoder, lossless)."""
    return _encode(obj, lossless=True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(k=3, P=8, d_N=8, n_train=12, n_test=12, m=3, T=12, alpha=1.5, eval_K=3, eval_restarts=0)
#: a job of ~0.3–1 s, long enough to be killed while it runs
SLOW = dict(TINY, n_train=60, n_test=60, T=600, log_every=600)


def _bits(a):
    a = np.asarray(a)
    return a.dtype.str, a.shape, a.tobytes()


def _same(x, y) -> bool:
    """Equal to the last bit (NaN equal to NaN of the same bits)."""
    return json.dumps(encode(x), sort_keys=True) == json.dumps(encode(y), sort_keys=True)


# ---------------------------------------------------------------- test jobs (module level: importable by workers)
def pid_job(cfg, delay=0.0, pid_dir=None):
    """Writes its pid to pid_dir (so a test can kill the worker running it), sleeps, returns."""
    if pid_dir:
        with open(os.path.join(pid_dir, f"{cfg.seed}-{os.getpid()}"), "w"):
            pass
    time.sleep(delay)
    return {"seed": cfg.seed, "x": float(np.sin(cfg.seed + 0.5))}


def interrupting_job(cfg):
    """Raises KeyboardInterrupt (as Ctrl-C would) at the seed in $REFFEAT_TEST_STOP_AT."""
    if str(cfg.seed) == os.environ.get("REFFEAT_TEST_STOP_AT"):
        raise KeyboardInterrupt
    return {"seed": cfg.seed}


def failing_job(cfg):
    if cfg.seed == 1:
        raise ValueError("seed 1 is bad")
    return {"seed": cfg.seed}


# ---------------------------------------------------------------- encoding and keys
def test_encode_round_trip_is_bit_exact_and_strict_json():
    obj = {"a": np.array([1.5, np.nan, np.inf, -np.inf, -0.0, 5e-324]),
           "f32": np.arange(6, dtype=np.float32).reshape(2, 3),
           "i": np.arange(4, dtype=np.int64), "b": np.array([True, False]), "s": np.float64(np.nan),
           "n": None, "t": (1, 2.5, "x", float("-inf")), "empty": np.zeros((0, 3)), "scalar0d": np.array(2.0),
           "nested": {"x": [np.float32(0.1), np.int32(7), np.bool_(True)]}}
    text = json.dumps(encode(obj), allow_nan=False)          # strict JSON: no NaN/Infinity literals
    back = decode(json.loads(text))
    for k in ("a", "f32", "i", "b", "empty", "scalar0d"):
        assert _bits(back[k]) == _bits(obj[k]), f"{k}: {back[k]!r} != {obj[k]!r}"
    assert math.isnan(back["s"]) and back["n"] is None
    assert back["t"][:3] == [1, 2.5, "x"] and back["t"][3] == -math.inf
    assert back["nested"]["x"] == [float(np.float32(0.1)), 7, True]


def test_encode_rejects_what_json_would_change():
    with pytest.raises(TypeError, match="keys must be str"):
        encode({1: 2.0})
    with pytest.raises(TypeError, match="cannot store"):
        encode({"x": object()})


def test_job_key_is_the_content_without_the_seed():
    a = Job(pid_job, Config(**TINY, seed=0))
    assert a.key == Job(pid_job, Config(**TINY, seed=5)).key, "the seed is not part of the key"
    assert a.key == Job(pid_job, Config(**{**TINY, "alpha": 1.5}, seed=0)).key
    assert Job(pid_job, Config(**{**TINY, "beta": 1}, seed=0)).key == \
        Job(pid_job, Config(**{**TINY, "beta": 1.0}, seed=0)).key, "int and float of a float field hash alike"
    assert a.key != Job(pid_job, Config(**{**TINY, "T": 13})).key
    assert a.key != Job(pid_job, Config(**TINY), {"delay": 1}).key, "kwargs are part of the key"
    assert a.key != Job(failing_job, Config(**TINY)).key, "the function is part of the key"
    assert len(a.key) == 16 and int(a.key, 16) >= 0


def test_bad_runner_options_name_the_parameter():
    for kw, msg in (({"scheduler": "local:0"}, "local:N"), ({"scheduler": "nowhere"}, "scheduler must be"),
                    ({"workers": 0}, "workers must be"), ({"retries": -1}, "retries must be")):
        with pytest.raises(ValueError, match=msg):
            Runner(**kw)
    with pytest.raises(ValueError, match="seeds must"):
        sweep([Config(**TINY)], seeds=[-1], scheduler="inline")


# ---------------------------------------------------------------- progress
class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_updates_one_line_on_a_terminal_and_prints_lines_in_a_log():
    tty = _Tty()
    p = Progress(tty, 4, "t")
    for i in range(1, 5):
        p.done = i
        p.update(force=True)
    p.close()
    text = tty.getvalue()
    assert text.count("\n") == 1 and text.count("\r") >= 4, repr(text)
    assert "4/4 done" in text
    log = io.StringIO()
    p = Progress(log, 4, "t", interval=3600)
    p.done, p.failed = 1, 0
    p.update()                                  # first line: printed
    p.done = 2
    p.update()                                  # within the interval: not printed
    p.done, p.failed = 3, 1
    p.update()                                  # all finished: printed
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in log.getvalue(), lines
    assert "3/4 done" in lines[-1] and "1 failed" in lines[-1] and "jobs/" in lines[-1], lines[-1]


# ---------------------------------------------------------------- store, resume, failures
def test_store_resume_runs_only_the_missing_jobs(tmp_path):
    cfgs = [Config(**TINY, beta=b) for b in (0.8, 1.2)]
    r = Runner(workers=2, store=str(tmp_path / "store"), progress=None)
    first = sweep(cfgs, seeds=[0, 1], runner=r)
    assert r.stats == {"jobs": 4, "from_store": 0, "ran": 4, "failed": 0, "retried": 0}, r.stats
    files = sorted((tmp_path / "store").rglob("seed-*.json"))
    assert len(files) == 4
    rec = json.loads(files[0].read_text())                # strict JSON, with the provenance
    assert rec["reffeat_version"] and rec["meta"]["threads"] == 1 and rec["config"]["T"] == 12
    assert set(first.rows[0]) >= {"beta", "seed", "st.clean_acc", "at.robust_acc", "claims.P1", "claims.P4"}
    files[0].unlink()
    files[3].unlink()
    again = sweep(cfgs, seeds=[0, 1], runner=r)
    assert r.stats["ran"] == 2 and r.stats["from_store"] == 2, r.stats
    assert all(_same(a, b) for a, b in zip(first.results, again.results)), "resumed results differ"
    sweep(cfgs, seeds=[0, 1], runner=r)
    assert r.stats["ran"] == 0 and r.stats["from_store"] == 4, r.stats


def test_interrupted_sweep_resumes(tmp_path, monkeypatch):
    cfgs = [Config(**TINY, seed=s) for s in range(6)]
    r = Runner(scheduler="inline", store=str(tmp_path), progress=None)
    monkeypatch.setenv("REFFEAT_TEST_STOP_AT", "3")
    with pytest.raises(KeyboardInterrupt):
        r.map(interrupting_job, cfgs)
    assert Store(str(tmp_path)).count() == 3, "the jobs finished before Ctrl-C are kept"
    monkeypatch.delenv("REFFEAT_TEST_STOP_AT")
    out = r.map(interrupting_job, cfgs)
    assert r.stats["from_store"] == 3 and r.stats["ran"] == 3, r.stats
    assert [o["seed"] for o in out] == list(range(6))


def test_failed_job_is_reported_not_stored(tmp_path):
    r = Runner(scheduler="inline", store=str(tmp_path), progress=None)
    cfgs = [Config(**TINY, seed=s) for s in range(3)]
    with pytest.raises(SweepError, match="1 of 3 jobs failed.*seed 1 is bad"):
        r.map(failing_job, cfgs)
    assert Store(str(tmp_path)).count() == 2
    table = sweep([Config(**TINY)], seeds=[0, 1, 2], fn=failing_job, runner=r)
    assert [row["error"] for row in table.rows] == [None, "ValueError: seed 1 is bad", None]
    assert r.stats["from_store"] == 2 and r.stats["failed"] == 1



# ---------------------------------------------------------------- the store knows the code (issue 22)
def _package_copy(dst):
    """A copy of reffeat's .py sources under ``dst/reffeat`` with one comment appended
    to seeding.py: other code, as an edit in a checkout would make it."""
    import shutil
    pkg = os.path.join(ROOT, "reffeat")
    target = os.path.join(dst, "reffeat")
    shutil.copytree(pkg, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    with open(os.path.join(target, "seeding.py"), "a", encoding="utf-8") as fh:
        fh.write("# an edit\n")
    return target


def test_store_is_keyed_by_the_code_and_misses_after_an_edit(tmp_path):
    from reffeat import provenance
    r = Runner(scheduler="inline", store=str(tmp_path / "store"), progress=None)
    cfgs = [Config(**TINY, seed=s) for s in range(2)]
    r.map(pid_job, cfgs)
    assert r.stats["ran"] == 2
    here = Store(str(tmp_path / "store"))
    assert here.code == provenance.code_key()
    job = Job(pid_job, cfgs[0])
    rec = here.load(job)
    assert rec is not None and rec["code_key"] == provenance.code_key() and rec["meta"]["code_key"] == here.code
    assert os.path.dirname(os.path.dirname(here.path(job))) == os.path.join(str(tmp_path / "store"), here.code)
    edited = provenance.code_key(root=_package_copy(tmp_path / "copy"))
    assert edited != here.code, "an edited copy of the package has the same code key"
    other = Store(str(tmp_path / "store"), code=edited)
    assert other.load(job) is None, "the store served a result of other code"
    assert other.count() == 0 and here.count() == 2
    r.map(pid_job, cfgs)                                          # same code: read, not rerun
    assert r.stats["from_store"] == 2 and r.stats["ran"] == 0, r.stats
    r.refresh = True                                              # --refresh still reruns
    r.map(pid_job, cfgs)
    assert r.stats["ran"] == 2 and r.stats["from_store"] == 0, r.stats


def test_store_rejects_a_record_of_other_code_in_its_directory(tmp_path):
    st = Store(str(tmp_path))
    job = Job(pid_job, Config(**TINY))
    st.save(job, {"result": encode({"x": 1.0}), "meta": {}})
    assert st.load(job) is not None
    path = st.path(job)
    rec = json.loads(open(path, encoding="utf-8").read())
    rec["code_key"] = "src-0000000000000000-other"                # copied in from another store
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(rec, fh)
    assert st.load(job) is None
    with pytest.raises(ValueError, match="code must be"):
        Store(str(tmp_path), code="a/b")


def test_worker_running_other_code_is_refused_in_one_line():
    job = Job(pid_job, Config(**TINY))
    meta = {"code_key": "src-feedfacefeedface-py3", "reffeat_version": "0.1.0"}
    msg = Runner._check(job, {"result": {}, "meta": meta})
    assert isinstance(msg, str) and "\n" not in msg
    assert "worker runs code src-feedfacefeedface-py3" in msg and "same reffeat sources" in msg


_E2E = """
import json, sys
import reffeat
from reffeat import Config
from reffeat.jobs import Runner
from e2e_job import job
r = Runner(scheduler="inline", store=sys.argv[1], progress=None)
r.map(job, [Config(**json.loads(sys.argv[2]), seed=s) for s in range(2)])
print(json.dumps({"stats": r.stats, "package": reffeat.__file__}))
"""


def test_store_misses_end_to_end_when_the_package_on_the_path_is_edited(tmp_path):
    """The same script and store, run with PYTHONPATH on the checkout and then on an
    edited copy of the package: the copy reruns every job."""
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    (jobs_dir / "e2e_job.py").write_text("def job(cfg):\n    return {'seed': cfg.seed}\n")
    script = tmp_path / "e2e.py"
    script.write_text(_E2E)
    copy = _package_copy(tmp_path / "copy")

    def run(src):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, str(jobs_dir)])}
        res = subprocess.run([sys.executable, str(script), str(tmp_path / "store"), json.dumps(TINY)],
                             capture_output=True, text=True, env=env, timeout=300, cwd=str(tmp_path))
        assert res.returncode == 0, res.stderr
        return json.loads(res.stdout.strip().splitlines()[-1])

    first, again = run(ROOT), run(ROOT)
    assert first["stats"]["ran"] == 2 and again["stats"]["from_store"] == 2, (first, again)
    edited = run(os.path.dirname(copy))
    assert edited["package"].startswith(copy), edited["package"]
    assert edited["stats"]["ran"] == 2 and edited["stats"]["from_store"] == 0, edited["stats"]


def test_local_executor_survives_a_killed_worker(tmp_path):
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    r = Runner(workers=2, store=str(tmp_path / "store"), progress=None)
    cfgs = [Config(**TINY, seed=s) for s in range(6)]
    killed = []

    def killer():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            for name in os.listdir(pid_dir):
                seed, pid = map(int, name.split("-"))
                if seed == 1:                    # the second job: the worker is running it now
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
            time.sleep(0.02)

    th = threading.Thread(target=killer)
    th.start()
    out = r.map(pid_job, cfgs, {"delay": 1.0, "pid_dir": str(pid_dir)})
    th.join()
    assert killed, "no worker was killed (the test did not exercise anything)"
    assert [o["seed"] for o in out] == list(range(6))
    assert r.stats["retried"] == 1 and r.stats["failed"] == 0 and r.stats["ran"] == 6, r.stats
    assert Store(str(tmp_path / "store")).count() == 6


# ---------------------------------------------------------------- the command
def _cmd(*args, **kw):
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "reffeat.sweep", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, **kw)


def _grid(path, seeds=2, grid='beta = [0.8, 1.2]\neps = [0.1, 0.3]', base=None):
    base = base or TINY
    lines = [f"seeds = {seeds}", "[base]"] + [f"{k} = {v!r}".replace("'", '"') for k, v in base.items()]
    path.write_text("\n".join(lines) + f"\n[grid]\n{grid}\n")
    return str(path)


def test_sweep_command_writes_table_and_heatmap(tmp_path):
    out = tmp_path / "out"
    res = _cmd(_grid(tmp_path / "g.toml"), "--out", str(out), "--workers", "2", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "8 jobs: 8 ran, 0 from the store, 0 failed" in res.stdout, res.stdout
    import csv
    rows = list(csv.DictReader(open(out / "table.csv")))
    assert len(rows) == 8 and {"beta", "eps", "seed", "claims.P4", "at.robust_acc"} <= set(rows[0])
    doc = json.loads((out / "table.json").read_text())
    assert doc["params"] == ["beta", "eps"] and len(doc["results"]) == 8
    assert (out / "heatmap.png").stat().st_size > 10_000
    again = _cmd(_grid(tmp_path / "g.toml"), "--out", str(out), "--quiet")
    assert "8 jobs: 0 ran, 8 from the store" in again.stdout, again.stdout


@pytest.mark.parametrize("text,msg", [
    ("seeds = 0\n[grid]\nbeta = [1.0]", "seeds must be"),
    ("[grid]\nbogus = [1]", "unknown config key 'bogus'"),
    ("[grid]\nbeta = []", "grid.beta must be a non-empty list"),
    ("[grid]\nbeta = [-1.0]", "beta must be"),
    ("[base]\nseed = 3", "seed in \\[base\\]"),
    ("colour = 1", "unknown key 'colour'"),
    ("[grid\n", "not valid TOML"),
])
def test_sweep_command_bad_grid_is_one_line_exit_2(tmp_path, text, msg):
    import re
    g = tmp_path / "g.toml"
    g.write_text(text)
    res = _cmd(str(g), "--out", str(tmp_path / "o"))
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("error: "), res.stderr
    assert re.search(msg, res.stderr), res.stderr


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sweep_command_stopped_keeps_finished_jobs_and_resumes(tmp_path, sig, code):
    """Ctrl-C (exit 130) or SIGTERM (143) mid-sweep: the finished jobs are in the
    store and the same command runs only the others."""
    out = tmp_path / "out"
    g = _grid(tmp_path / "g.toml", seeds=6, grid="beta = [1.0]", base=SLOW)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-m", "reffeat.sweep", g, "--out", str(out), "--workers", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    store = Store(str(out / "store"))
    while time.time() < deadline and store.count() < 2 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    done = store.count()
    assert proc.returncode == code, (proc.returncode, err)
    assert 2 <= done < 6, f"{done} jobs stored at Ctrl-C"
    res = _cmd(g, "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert f"6 jobs: {6 - done} ran, {done} from the store" in res.stdout, res.stdout


# ---------------------------------------------------------------- a real Dask cluster on loopback
try:
    import distributed
except ImportError:                     # the local-executor tests above still run
    distributed = None
needs_dask = pytest.mark.skipif(distributed is None, reason="the dask extra is not installed "
                                "(pip install \".[dask]\"): no Dask cluster tests")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A Dask scheduler and two single-thread workers on 127.0.0.1, as ``dask scheduler``
    / ``dask worker`` start them (with nannies, which restart a killed worker)."""
    d = tmp_path_factory.mktemp("dask")
    sf = str(d / "scheduler.json")
    env = {**os.environ, "PYTHONPATH": ROOT, "NUMBA_NUM_THREADS": "1", "DASK_DISTRIBUTED__WORKER__DAEMON": "True"}
    log = open(d / "log.txt", "w")
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", "0", "--no-dashboard", "--dashboard-address", "127.0.0.1:0",
                               "--scheduler-file", sf],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(d))]
    try:
        deadline = time.time() + 60
        while not os.path.exists(sf) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.load(open(sf))["address"]
        for i in range(2):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=str(d)))
        client = distributed.Client(address)
        client.wait_for_workers(2, timeout=90)
        yield address, client
        client.close()
    finally:
        for p in procs[::-1]:
            p.terminate()
        for p in procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


@needs_dask
def test_cluster_gives_the_local_executors_results_bit_for_bit(cluster, tmp_path):
    address, _ = cluster
    cfgs = [Config(**TINY, beta=b) for b in (0.8, 1.2)]
    local = sweep(cfgs, seeds=[0, 1, 2], workers=2, store=str(tmp_path / "a"), progress=None)
    r = Runner(scheduler=address, store=str(tmp_path / "b"), progress=None)
    remote = sweep(cfgs, seeds=[0, 1, 2], runner=r)
    assert r.stats["ran"] == 6 and r.stats["failed"] == 0, r.stats
    for a, b, row in zip(local.results, remote.results, local.rows):
        assert _same(a, b), f"beta={row['beta']} seed={row['seed']}: cluster result differs from local"
    assert [r_["claims.P4"] for r_ in local.rows] == [r_["claims.P4"] for r_ in remote.rows]
    metas = [json.loads(p.read_text())["meta"] for p in (tmp_path / "b").rglob("seed-*.json")]
    assert all(m["threads"] == 1 and m["env"]["OMP_NUM_THREADS"] == "1" for m in metas), metas[0]
    assert all(m["malloc"] for m in metas), "Dask's MALLOC_TRIM_THRESHOLD_ was not undone on the workers"


@needs_dask
def test_cluster_finishes_every_job_exactly_once_when_a_worker_dies(cluster, tmp_path):
    address, client = cluster
    client.wait_for_workers(2, timeout=90)
    pids = client.run(os.getpid)
    cfgs = [Config(**SLOW, seed=s) for s in range(8)]
    r = Runner(scheduler=address, store=str(tmp_path), progress=None)
    box = {}
    th = threading.Thread(target=lambda: box.setdefault("table", sweep(cfgs, runner=r)))
    th.start()
    victim = None
    deadline = time.time() + 120
    while victim is None and time.time() < deadline and th.is_alive():
        busy = [w for w, tasks in client.processing().items() if tasks]
        if busy:
            time.sleep(0.3)                      # into the job
            victim = busy[0]
            os.kill(pids[victim], signal.SIGKILL)
        time.sleep(0.02)
    th.join(300)
    assert victim is not None, "no worker was busy: nothing was killed"
    table = box["table"]
    assert [row["error"] for row in table.rows] == [None] * 8
    assert r.stats["ran"] == 8 and r.stats["failed"] == 0, r.stats        # each result stored once
    assert r.stats["retried"] >= 1, f"the killed worker's job was not seen rescheduled: {r.stats}"
    assert sorted(row["seed"] for row in table.rows) == list(range(8))
    assert Store(str(tmp_path)).count() == 8


@needs_dask
def test_local_cluster_scheduler_spec(tmp_path):
    r = Runner(scheduler="local:2", store=str(tmp_path), progress=None)
    out = r.map(pid_job, [Config(**TINY, seed=s) for s in range(4)])
    assert [o["seed"] for o in out] == [0, 1, 2, 3] and r.stats["ran"] == 4
