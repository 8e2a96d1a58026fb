"""reffeat.provenance: the source hash sees every edit of a .py file and nothing else;
git_commit never raises; record() names the code and the command."""

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from reffeat import provenance

PKG = Path(provenance.__file__).resolve().parent


@pytest.fixture
def pkg_copy(tmp_path):
    """A copy of reffeat's .py sources (no caches) to edit."""
    dst = tmp_path / "reffeat"
    shutil.copytree(PKG, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    return dst


def test_hash_of_a_copy_is_the_package_hash_and_stable(pkg_copy):
    h = provenance.source_hash()
    assert len(h) == 64 and int(h, 16) >= 0
    assert provenance.source_hash() == h, "two calls disagree"
    assert provenance.source_hash(pkg_copy) == h, "a faithful copy hashes differently"
    assert provenance.source_hash(pkg_copy) == provenance.source_hash(pkg_copy)


@pytest.mark.parametrize("edit", ["one character", "append a comment", "new module", "remove module",
                                  "rename module"])
def test_hash_changes_when_a_module_changes(pkg_copy, edit):
    before = provenance.source_hash(pkg_copy)
    mod = pkg_copy / "seeding.py"
    if edit == "one character":
        text = mod.read_text(encoding="utf-8")
        i = text.index("WORD = 2**32")
        mod.write_text(text[:i] + "WORD = 2**31" + text[i + len("WORD = 2**32"):], encoding="utf-8")
    elif edit == "append a comment":
        mod.write_text(mod.read_text(encoding="utf-8") + "# edited\n", encoding="utf-8")
    elif edit == "new module":
        (pkg_copy / "real" / "extra.py").write_text("X = 1\n", encoding="utf-8")
    elif edit == "remove module":
        mod.unlink()
    else:
        mod.rename(pkg_copy / "seeding2.py")
    after = provenance.source_hash(pkg_copy)
    assert after != before, f"{edit}: the hash did not change ({after[:16]})"
    k_after, k_pkg = provenance.code_key(pkg_copy), provenance.code_key()
    assert k_after != k_pkg, f"{edit}: the code key did not change ({k_after})"


def test_hash_ignores_caches_and_other_files(pkg_copy):
    before = provenance.source_hash(pkg_copy)
    cache = pkg_copy / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "seeding.cpython-311.pyc").write_bytes(b"\x00bytecode")
    (cache / "kernels.grad_w-12.py311.nbi").write_bytes(b"numba index")
    (cache / "kernels.grad_w-12.py311.1.nbc").write_bytes(b"numba code")
    (cache / "stray.py").write_text("X = 2\n")           # a .py inside a cache dir is cache too
    (pkg_copy / "real" / "old.pyc").write_bytes(b"\x01")
    (pkg_copy / "notes.txt").write_text("not source\n")
    assert provenance.source_hash(pkg_copy) == before


def test_hash_does_not_confuse_contents_and_names(tmp_path):
    # the same bytes split differently between two files must not hash alike
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x.py").write_text("AB")
    (a / "y.py").write_text("")
    (b / "x.py").write_text("A")
    (b / "y.py").write_text("B")
    assert provenance.source_hash(a) != provenance.source_hash(b)


def test_bad_root_is_one_valueerror(tmp_path):
    with pytest.raises(ValueError, match="root must be a directory"):
        provenance.source_hash(tmp_path / "missing")


def test_code_key_names_the_versions():
    v = provenance.versions()
    key = provenance.code_key()
    assert key.startswith("src-" + provenance.source_hash()[:16])
    for part in (f"py{v['python']}", f"numpy{v['numpy']}", f"scipy{v['scipy']}", f"numba{v['numba']}"):
        assert part in key, f"{part} missing from {key}"
    assert all(c.isalnum() or c in ".+_-" for c in key), f"not a safe file name: {key}"


def test_git_commit_outside_a_checkout_is_none(pkg_copy, tmp_path):
    assert provenance.git_commit(pkg_copy) is None
    assert provenance.git_commit(tmp_path / "missing") is None


def test_git_commit_when_git_is_missing(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    assert provenance.git_commit() is None


def _git(*args, cwd):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_git_commit_and_dirty_flag(pkg_copy, tmp_path):
    repo = tmp_path
    _git("init", "-q", cwd=repo)
    _git("add", "reffeat", cwd=repo)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=repo)
    sha = _git("rev-parse", "HEAD", cwd=repo).strip()
    c = provenance.git_commit(pkg_copy)
    assert c == (sha, False), f"clean checkout read as {c}"
    (repo / "results.json").write_text("{}")            # a result written beside the code
    assert provenance.git_commit(pkg_copy) == (sha, False), "a non-source file made the code dirty"
    (pkg_copy / "new.py").write_text("X = 1\n")         # untracked source
    assert provenance.git_commit(pkg_copy) == (sha, True)
    (pkg_copy / "new.py").unlink()
    with open(pkg_copy / "seeding.py", "a", encoding="utf-8") as fh:
        fh.write("# edit\n")                            # modified source
    assert provenance.git_commit(pkg_copy) == (sha, True)


def test_record_is_strict_json_with_the_command():
    rec = provenance.record(["python", "-m", "reffeat.run", "--out", "a dir"])
    assert set(rec) >= {"reffeat_version", "source_hash", "code_key", "commit", "dirty", "command",
                        "python", "numpy", "scipy", "numba"}
    assert rec["command"] == "python -m reffeat.run --out 'a dir'"
    assert shlex.split(rec["command"])[-1] == "a dir"
    assert rec["source_hash"] == provenance.source_hash()
    assert (rec["commit"] is None) == (rec["dirty"] is None)
    json.dumps(rec, allow_nan=False)
    assert isinstance(provenance.record()["command"], str)
