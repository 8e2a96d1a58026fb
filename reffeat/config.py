"""Config: every constant of SPEC.md §1–§8 as a validated parameter.

Defaults are the SPEC's: features F2 (``geometry="sparse-dense"``), data
D1–D4 (``k=4, P=64, s=1, d_N=32, alpha=3, beta=1, sigma_xi=0.1``), network
N1–N4 (``m=16, sigma0=0.01, q=2, rho=1``), training T1–T3 (``eta=0.05,
T=300``, ℓ∞ threat ``eps=0.2``, ``K=1``, ``gamma=eps``, ``lam=1``) and
evaluation E2 (``eval_K=20``, ``eval_gamma=eps/4``, random start,
``eval_restarts`` restarts; E2c APGD-CE and APGD-DLR with ``eval_apgd_K``
iterations, 0 = not run).

The defaults are chosen from the regime conditions of SPEC §11
(``reffeat.regime``), each met with margin: q = 2 (the race RC1 is then
decided by the growth rates, R = 63β²/α² = 7 against a threshold of 3.3,
instead of by the initial maxima as for q = 3), η = 0.05 (RC3: AT's step
bound is 0.118), T = 300 (RC4: AT's robust coefficient is predicted to take
off by step ≈ 90 in the slowest class) and σ_ξ = 0.1 > 0 (noise of norm ≈ 0.53 per patch, so
samples of a class differ and n_train means something). The first
version's values (q = 3, η = 0.5, T = 150, σ_ξ = 0) are the preset
``borderline`` (``reffeat.presets``). Two bookkeeping values changed for
speed (the run must take ≤ 10 s): n_test = 300 (was 500; the E2 evaluation
with APGD dominates the cost) and log_every = 20 (was 10; each logged step
attacks the test set).

Validation happens here, at the boundary, never inside the math: a bad value
raises one ``ValueError`` whose message names the field, the value and the
allowed range.

>>> cfg = Config(k=3, d_N=8)
>>> cfg.d
11
>>> Config(q=0.5)
Traceback (most recent call last):
...
ValueError: q must be a number >= 1 (got 0.5)
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

GEOMETRIES = ("sparse-dense", "basis", "random")
NORMS = ("linf", "l2", "l2-patch")
ASCENTS = ("sign", "plain")


@dataclass(frozen=True)
class Config:
    """All parameters of the synthetic experiment (SPEC §1–§8), with defaults.

    Feature / data (F1–F3, D1–D4)
      k, P, s, d_N, geometry, alpha, beta, sigma_xi, n_nonrobust (None = P−s),
      n_train, n_test
    Network (N1–N4)
      m, sigma0, q, rho
    Training (T1–T3)
      eta, T, norm, eps, K, gamma (None = eps), random_start, ascent, lam
    Evaluation (E2) and logging
      eval_K, eval_gamma (None = eps/4), eval_restarts, eval_apgd_K (E2c; 0 = off),
      log_every, seed
    """

    # features and data
    k: int = 4
    P: int = 64
    s: int = 1
    d_N: int = 32
    geometry: str = "sparse-dense"
    alpha: float = 3.0
    beta: float = 1.0
    sigma_xi: float = 0.1
    n_nonrobust: int | None = None
    n_train: int = 200
    n_test: int = 300
    # network
    m: int = 16
    sigma0: float = 0.01
    q: float = 2.0
    rho: float = 1.0
    # training
    eta: float = 0.05
    T: int = 300
    norm: str = "linf"
    eps: float = 0.2
    K: int = 1
    gamma: float | None = None
    random_start: bool = False
    ascent: str = "sign"
    lam: float = 1.0
    # evaluation and bookkeeping
    eval_K: int = 20
    eval_gamma: float | None = None
    eval_restarts: int = 2
    eval_apgd_K: int = 25
    log_every: int = 20
    seed: int = 0

    def __post_init__(self):
        validate(self)

    # derived quantities -------------------------------------------------
    @property
    def d(self) -> int:
        """Patch dimension ``d = k + d_N`` (F2; also used by F3)."""
        return self.k + self.d_N

    @property
    def n_N(self) -> int:
        """Number of non-robust patches |N| (D2)."""
        return self.P - self.s if self.n_nonrobust is None else self.n_nonrobust

    @property
    def step_size(self) -> float:
        """T2 ascent step γ used in training (default ε)."""
        return self.eps if self.gamma is None else self.gamma

    @property
    def eval_step_size(self) -> float:
        """E2a PGD step (default ε/4)."""
        return self.eps / 4 if self.eval_gamma is None else self.eval_gamma

    def replace(self, **changes) -> "Config":
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Build from a mapping, rejecting unknown keys with a clear message."""
        names = {f.name for f in fields(cls)}
        for key in d:
            if key not in names:
                raise ValueError(
                    f"unknown config key {key!r}; known keys: {', '.join(sorted(names))}"
                )
        return cls(**{key: coerce(key, value) for key, value in d.items()})


def _type_of(name: str):
    return {f.name: f.type for f in fields(Config)}[name]


def coerce(name: str, value):
    """Convert a value (e.g. the string of ``--set key=value``) to the field's type.

    Raises ValueError naming the field when the conversion is impossible.
    """
    typ = str(_type_of(name))
    if isinstance(value, str):
        text = value.strip()
        if "None" in typ and text.lower() in ("none", "null", ""):
            return None
        try:
            if typ.startswith("int"):
                f = float(text)
                if not f.is_integer():
                    raise ValueError
                return int(f)
            if typ.startswith("float"):
                return float(text)
            if typ.startswith("bool"):
                low = text.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
        except ValueError:
            kind = typ.split(" ")[0].split("|")[0]
            raise ValueError(f"{name} must be of type {kind} (got {value!r})") from None
        return text
    return value


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def _int(cfg, name, lo, hi=None, extra=""):
    v = getattr(cfg, name)
    rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    if not _is_int(v) or v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer {rng}{extra} (got {v!r})")


def _num(cfg, name, lo, strict=False, hi=None):
    v = getattr(cfg, name)
    op = ">" if strict else ">="
    rng = f"{op} {lo}" + ("" if hi is None else f" and <= {hi}")
    bad = (not _is_num(v)) or (v <= lo if strict else v < lo) or (hi is not None and v > hi)
    if bad:
        raise ValueError(f"{name} must be a finite number {rng} (got {v!r})")


def validate(cfg: Config) -> None:
    """Check every field; raise ValueError naming the first bad one."""
    _int(cfg, "k", 2)
    _int(cfg, "P", 2)
    _int(cfg, "s", 1, cfg.P - 1, extra=" (1 <= s < P)")
    if cfg.geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)} (got {cfg.geometry!r})")
    if cfg.geometry == "sparse-dense":
        v = cfg.d_N
        if not _is_int(v) or v < cfg.k + 1 or (v & (v - 1)) != 0:
            raise ValueError(
                f"d_N must be a power of two >= k+1 = {cfg.k + 1} for geometry "
                f"'sparse-dense' (got {v!r})"
            )
    else:
        _int(cfg, "d_N", cfg.k, extra=f" (>= k for geometry {cfg.geometry!r})")
    _num(cfg, "alpha", 0.0)
    _num(cfg, "beta", 0.0)
    _num(cfg, "sigma_xi", 0.0)
    if cfg.n_nonrobust is not None:
        _int(cfg, "n_nonrobust", 0, cfg.P - cfg.s, extra=" (0 <= n_nonrobust <= P - s)")
    _int(cfg, "n_train", 1)
    _int(cfg, "n_test", 1)
    _int(cfg, "m", 1)
    _num(cfg, "sigma0", 0.0, strict=True)
    _num(cfg, "q", 1.0)
    _num(cfg, "rho", 0.0, strict=True)
    _num(cfg, "eta", 0.0, strict=True)
    _int(cfg, "T", 0)
    if cfg.norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)} (got {cfg.norm!r})")
    _num(cfg, "eps", 0.0)
    _int(cfg, "K", 1)
    if cfg.gamma is not None:
        _num(cfg, "gamma", 0.0, strict=True)
    if not isinstance(cfg.random_start, bool):
        raise ValueError(f"random_start must be true or false (got {cfg.random_start!r})")
    if cfg.ascent not in ASCENTS:
        raise ValueError(f"ascent must be one of {', '.join(ASCENTS)} (got {cfg.ascent!r})")
    _num(cfg, "lam", 0.0, hi=1.0)
    _int(cfg, "eval_K", 1)
    if cfg.eval_gamma is not None:
        _num(cfg, "eval_gamma", 0.0, strict=True)
    _int(cfg, "eval_restarts", 0)
    _int(cfg, "eval_apgd_K", 0)
    _int(cfg, "log_every", 1)
    _int(cfg, "seed", 0, 2**32 - 1)


FIELD_NAMES = tuple(f.name for f in fields(Config))
