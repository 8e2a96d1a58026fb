"""The result store of the job machinery: a job (function, Config, keyword
arguments), its content hash, and one strict-JSON file per finished job,
``STORE/<code key>/<key>/seed-<seed>.json``, written atomically.

``code key`` is ``reffeat.provenance.code_key()``: a hash of reffeat's own
``.py`` sources and the versions of python, numpy (with its BLAS), scipy and
numba. Any edit of the code, or another numerical stack, gives another
directory, so the store never serves a result that other code computed (the
version string alone did not change across ~110 commits). ``refresh=True``
(``--refresh``) still reruns stored jobs of the same code.

``key`` is the SHA-256 (first 16 hex digits) of the job function's name, the
config without its seed (fields in canonical form) and the keyword arguments.
Results are stored losslessly (``reffeat.output.encode(..., lossless=True)``),
so a result read from the store equals the one the worker computed, to the
last bit. Each record carries ``code_key`` (checked on load) and the
``reffeat_version``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import provenance
from .._version import __version__
from ..output import atomic_write_bytes, encode

STORE_FORMAT = "reffeat-sweep-result/1"


def canonical(obj: Any) -> str:
    """Canonical strict-JSON text of ``obj`` (lossless, sorted keys): what a key hashes."""
    return json.dumps(encode(obj, lossless=True), sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_fields(cfg: Any) -> dict:
    """cfg (a dataclass) as a dict with every float field a float (so Config(alpha=3)
    and Config(alpha=3.0), equal runs, hash alike)."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        if str(f.type).startswith("float") and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[f.name] = v
    return out


def fn_name(fn: Callable) -> str:
    """"module:qualname" of a job function (it must be importable on the workers)."""
    mod, qual = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not mod or not qual or "<" in qual:
        raise ValueError(f"job function must be a module-level function (got {fn!r})")
    if mod == "__main__":
        raise ValueError(f"job function {qual} is defined in __main__: worker processes cannot "
                         "import it; put it in a module")
    return f"{mod}:{qual}"


@dataclass(frozen=True)
class Job:
    """One job: ``fn(config, **kwargs)``; ``config.seed`` is the seed."""
    fn: Callable
    config: Any
    kwargs: dict = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    def spec(self) -> dict:
        """What the result depends on, besides the seed and the code version."""
        cfg = config_fields(self.config)
        cfg.pop("seed")
        return {"fn": fn_name(self.fn), "config": cfg, "kwargs": dict(self.kwargs)}

    @property
    def key(self) -> str:
        """Content hash of :meth:`spec` (16 hex digits of SHA-256)."""
        return hashlib.sha256(canonical(self.spec()).encode()).hexdigest()[:16]

    def ident(self) -> tuple:
        return (self.key, self.seed)


class Store:
    """Directory of finished jobs: ``ROOT/<code key>/<key>/seed-<seed>.json``.

    ``code`` defaults to ``provenance.code_key()`` of the running package; pass
    another code key (e.g. ``provenance.code_key(root=copy)``) to address the
    results of other code."""

    def __init__(self, root: str, code: str | None = None):
        self.root = os.fspath(root)
        self.code = provenance.code_key() if code is None else str(code)
        if not self.code or os.sep in self.code or self.code in (".", ".."):
            raise ValueError(f"code must be a code key usable as a directory name (got {code!r})")

    def path(self, job: Job) -> str:
        return os.path.join(self.root, self.code, job.key, f"seed-{job.seed}.json")

    def load(self, job: Job) -> dict | None:
        """The stored record of ``job``, or None (missing, unreadable or not this job's)."""
        path = self.path(job)
        try:
            with open(path, encoding="utf-8") as fh:
                rec = json.load(fh)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None                      # never half-written (atomic); treat as missing
        if (rec.get("format") != STORE_FORMAT or rec.get("key") != job.key or rec.get("seed") != job.seed
                or rec.get("code_key") != self.code):
            return None
        return rec

    def save(self, job: Job, record: dict) -> str:
        spec = job.spec()
        full = {"format": STORE_FORMAT, "key": job.key, "seed": job.seed,
                "code_key": self.code, "reffeat_version": __version__, "fn": spec["fn"],
                "config": encode(config_fields(job.config), lossless=True),
                "kwargs": encode(spec["kwargs"], lossless=True),
                "result": record["result"], "meta": record["meta"]}
        path = self.path(job)
        atomic_write_bytes(path, (json.dumps(full, allow_nan=False, separators=(",", ":")) + "\n").encode())
        return path

    def count(self) -> int:
        """Number of stored results of this code."""
        top = os.path.join(self.root, self.code)
        n = 0
        for _, _, files in os.walk(top):
            n += sum(1 for f in files if f.startswith("seed-") and f.endswith(".json"))
        return n
