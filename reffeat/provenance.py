"""Which code produced a result: a hash of reffeat's own source, the numerically
relevant versions, the git commit and the exact command.

Ground floor: imports nothing from reffeat but ``__version__`` (lazily).

* ``source_hash()`` — SHA-256 over the package's ``.py`` files: for each file,
  in the order of its sorted path relative to the package directory (``/``
  separators), the path, its length in bytes and its bytes. Caches (``__pycache__``,
  ``.pyc``, numba's ``.nbi``/``.nbc``) and every other non-``.py`` file are
  ignored, so it changes exactly when a source file is edited, added, removed
  or renamed. Computed once per process for the installed package (``root=None``);
  a given ``root`` is hashed afresh each call.
* ``code_key()`` — one string naming the code that computes: the first 16 hex
  digits of ``source_hash()`` and the versions of python, numpy (with its
  BLAS), scipy and numba, e.g. ``src-1a2b…-py3.11.7-numpy2.4.6-scipy1.15.2-numba0.61.0``.
  Safe as a file name. A result store keyed by it never serves a result that
  other code computed.
* ``git_commit()`` — ``Commit(sha, dirty)`` of the checkout the package is
  tracked in (``dirty``: a ``.py`` file of the package differs from that commit
  or is untracked), None when it is not in a git checkout, git is missing or
  fails; never raises.
* ``record()`` — the dict committed beside a result: reffeat_version,
  source_hash, code_key, commit, dirty, command, python, numpy, scipy, numba.

>>> len(source_hash()) == 64 and source_hash() == source_hash()
True
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

PACKAGE_DIR = Path(__file__).resolve().parent
_CACHE: dict = {}
_NUMERIC = ("numpy", "scipy", "numba")


def _sources(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every .py file under ``root``, sorted, caches skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for f in filenames:
            if f.endswith(".py"):
                p = Path(dirpath) / f
                out.append((p.relative_to(root).as_posix(), p))
    return sorted(out)


def source_hash(root=None) -> str:
    """SHA-256 (64 hex digits) of the ``.py`` sources under ``root`` (default: reffeat's
    own directory, hashed once per process)."""
    if root is None and "source" in _CACHE:
        return _CACHE["source"]
    base = PACKAGE_DIR if root is None else Path(root).resolve()
    if not base.is_dir():
        raise ValueError(f"root must be a directory of python sources (got {root!r})")
    h = hashlib.sha256()
    for rel, path in _sources(base):
        data = path.read_bytes()
        name = rel.encode("utf-8")
        # lengths make the byte stream parse one way: no two trees hash the same input
        h.update(len(name).to_bytes(8, "little") + name + len(data).to_bytes(8, "little"))
        h.update(data)
    digest = h.hexdigest()
    if root is None:
        _CACHE["source"] = digest
    return digest


def _version(name: str) -> str | None:
    """Version of a dependency as this process sees it (loaded module first)."""
    mod = sys.modules.get(name)
    if mod is None:
        try:
            mod = __import__(name)
        except (ImportError, AttributeError, OSError):   # absent or broken: None, never fatal
            return None
    return str(getattr(mod, "__version__", None) or "") or None


def _blas() -> str | None:
    """numpy's BLAS (name and version) when numpy reports it, else None."""
    try:
        import numpy as np
        cfg = np.show_config(mode="dicts")
        b = cfg["Build Dependencies"]["blas"]
        return f"{b.get('name', '?')}{b.get('version', '')}"
    except (TypeError, KeyError, AttributeError, ValueError):   # older numpy, other layouts
        return None


def versions() -> dict:
    """python, numpy, scipy, numba versions (None for an absent package) and numpy's BLAS."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    out.update({n: _version(n) for n in _NUMERIC})
    out["blas"] = _blas()
    return out


def code_key(root=None) -> str:
    """``src-<16 hex of source_hash>-py<v>-numpy<v>[+blas]-scipy<v>-numba<v>`` (file-name safe)."""
    v = versions()
    parts = [f"src-{source_hash(root)[:16]}", f"py{v['python']}",
             f"numpy{v['numpy']}" + (f"+{v['blas']}" if v["blas"] else ""),
             f"scipy{v['scipy']}", f"numba{v['numba']}"]
    return re.sub(r"[^A-Za-z0-9.+_-]", "_", "-".join(parts))


class Commit(NamedTuple):
    sha: str          #: 40 hex digits of HEAD
    dirty: bool       #: a .py file of the package differs from HEAD or is untracked


def _git(args, cwd: Path) -> str | None:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C", GIT_TERMINAL_PROMPT="0")
    try:
        r = subprocess.run(["git", *args], check=False, cwd=cwd, env=env, capture_output=True, timeout=20,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if r.returncode != 0:
        return None
    return r.stdout.decode("utf-8", "replace")


def git_commit(root=None) -> Commit | None:
    """The commit of the git checkout that tracks the package at ``root`` (default
    reffeat's directory) and whether its sources differ from it; None otherwise."""
    base = PACKAGE_DIR if root is None else Path(root).resolve()
    if not base.is_dir():
        return None
    sha = _git(["rev-parse", "--verify", "HEAD"], base)
    # tracked here? (a package copied into some other repository's tree is not that commit)
    if not sha or _git(["ls-files", "--error-unmatch", "--", "__init__.py"], base) is None:
        return None
    status = _git(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", "."], base)
    if status is None:
        return None
    entries = [e for e in status.split("\0") if e]
    dirty = any(e[3:].endswith(".py") for e in entries if len(e) > 3)
    return Commit(sha.strip(), dirty)


def record(argv=None) -> dict:
    """What to commit beside a result: the code (version, source hash, code key, git
    commit and dirty flag), the exact command (shell-quoted; default the interpreter's
    own ``sys.orig_argv``, e.g. ``python -m reffeat.run --out x``) and the versions."""
    from ._version import __version__
    if argv is None:
        argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    c = git_commit()
    v = versions()
    return {"reffeat_version": __version__, "source_hash": source_hash(), "code_key": code_key(),
            "commit": c.sha if c else None, "dirty": c.dirty if c else None,
            "command": shlex.join(str(a) for a in argv),
            "python": v["python"], "numpy": v["numpy"], "scipy": v["scipy"], "numba": v["numba"],
            "blas": v["blas"]}
