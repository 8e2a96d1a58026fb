"""Config: every constant of SPEC.md §1–§8 as a validated parameter.

Defaults are the SPEC's: features F2 (``geometry="sparse-dense"``), data
D1–D4 (``k=4, P=64, s=1, d_N=32, alpha=3, beta=1, sigma_xi=0.1``), network
N1–N4 (``m=16, sigma0=0.01, q=2, rho=1``), training T1–T3 (``eta=0.05,
T=300``, ℓ∞ threat ``eps=0.2``, ``K=1``, ascent step ``ascent_step=eps``, ``lam=1``) and
evaluation E2 (``eval_K=20``, ``eval_ascent_step=eps/4``, random start,
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

The ascent steps were called ``gamma`` and ``eval_gamma`` before version
0.2, a third meaning of "gamma" beside the feature coefficients Γ
(``summary[mode]["gamma"]``) and the trace's γ (``trace["gamma"]``): the old
keywords (``Config(gamma=...)``, ``--set gamma=...``, a config dict or TOML
file with "gamma") still work for this version with a DeprecationWarning
(``RENAMED``, ``upgrade_keys``); ``Config.to_dict`` writes the new names.

Validation happens here, at the boundary, never inside the math: a bad value
raises one ``ValueError`` whose message names the field, the value and the
allowed range.

>>> cfg = Config(k=3, d_N=8)
>>> cfg.d
11
>>> Config(q=0.5)
Traceback (most recent call last):
...
ValueError: q must be a finite number >= 1 (got 0.5)
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, fields
from numbers import Integral, Real

from .constraints import (
    ASCENTS,
    GEOMETRIES,
    NORMS,
    Boolean,
    Dependent,
    Field,
    Interval,
    NoneOr,
    Options,
    PowerOfTwo,
    check_fields,
    parse,
    reject_unknown_keywords,
    show,
)

#: fields renamed in version 0.2 (issue 24: one name per quantity), old name -> new name;
#: the old names are accepted for one version with a DeprecationWarning
RENAMED = {"gamma": "ascent_step", "eval_gamma": "eval_ascent_step"}


def _deprecated(old: str, where: str, stacklevel: int = 4) -> None:
    warnings.warn(f"{where} {old!r} is deprecated and will be removed in the next version; "
                  f"use {RENAMED[old]!r} (the same value)", DeprecationWarning, stacklevel=stacklevel)


def upgrade_keys(d: dict, where: str = "config key", warn: bool = True) -> dict:
    """``d`` (config field -> value) with the old names of ``RENAMED`` replaced by
    the new ones, e.g. the config of a summary.json written before version 0.2;
    a DeprecationWarning per old name when ``warn``. ValueError when a dict
    gives both names of one field."""
    if not any(key in RENAMED for key in d):
        return d
    out = {}
    for key, value in d.items():
        if key in RENAMED:
            new = RENAMED[key]
            if new in d:
                raise ValueError(f"{where} {key!r} is the old name of {new!r}: give only {new!r}")
            if warn:
                _deprecated(key, where)
            key = new
        out[key] = value
    return out


def _accept_renamed(cls):
    """Class decorator: ``cls(gamma=...)`` (an old name of ``RENAMED``) works with a
    DeprecationWarning for one version."""
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **upgrade_keys(kwargs, f"{cls.__name__} keyword"))

    __init__.__doc__ = init.__doc__
    __init__.__wrapped__ = init
    cls.__init__ = __init__
    return cls


@_accept_renamed
@reject_unknown_keywords
@dataclass(frozen=True)
class Config:
    """All parameters of the synthetic experiment (SPEC §1–§8), with defaults.

    Feature / data (F1–F3, D1–D4)
      k, P, s, d_N, geometry, alpha, beta, sigma_xi, n_nonrobust (None = P−s),
      n_train, n_test
    Network (N1–N4)
      m, sigma0, q, rho
    Training (T1–T3)
      eta, T, norm, eps, K, ascent_step (T2's step γ; None = eps), random_start, ascent, lam
    Evaluation (E2) and logging
      eval_K, eval_ascent_step (E2a's PGD step; None = eps/4), eval_restarts,
      eval_apgd_K (E2c; 0 = off), log_every, seed

    ``gamma`` / ``eval_gamma`` are the deprecated names of ``ascent_step`` /
    ``eval_ascent_step`` (``RENAMED``).
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
    ascent_step: float | None = None
    random_start: bool = False
    ascent: str = "sign"
    lam: float = 1.0
    # evaluation and bookkeeping
    eval_K: int = 20
    eval_ascent_step: float | None = None
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
        return self.eps if self.ascent_step is None else self.ascent_step

    @property
    def eval_step_size(self) -> float:
        """E2a PGD step (default ε/4)."""
        return self.eps / 4 if self.eval_ascent_step is None else self.eval_ascent_step

    @property
    def gamma(self) -> float | None:
        """Deprecated name of ``ascent_step`` (DeprecationWarning; removed in the next version)."""
        _deprecated("gamma", "Config attribute", 3)
        return self.ascent_step

    @property
    def eval_gamma(self) -> float | None:
        """Deprecated name of ``eval_ascent_step`` (DeprecationWarning; removed in the next version)."""
        _deprecated("eval_gamma", "Config attribute", 3)
        return self.eval_ascent_step

    def replace(self, **changes) -> Config:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **upgrade_keys(changes, "Config.replace keyword"))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """Build from a mapping, rejecting unknown keys with a clear message; the old
        names of ``RENAMED`` (a summary.json written before 0.2) are read with a
        DeprecationWarning."""
        d = upgrade_keys(d)
        names = {f.name for f in fields(cls)}
        for key in d:
            if key not in names:
                raise ValueError(
                    f"unknown config key {key!r}; known keys: {', '.join(sorted(names))}"
                )
        return cls(**{key: coerce(key, value) for key, value in d.items()})


#: Every field's constraint (``reffeat.constraints``) and one line of meaning,
#: in the order they are checked (a cross-field rule sees the fields before it).
#: The same table validates ``Config``, parses ``--set``/TOML values and writes
#: the key list of ``python -m reffeat.run --help``.
FIELDS = {
    "k": Field(Interval(Integral, 2), "classes k: one robust u_j and one non-robust v_j each (D1, F1)"),
    "P": Field(Interval(Integral, 2), "patches per input (D2)"),
    "s": Field(Dependent("an integer in [1, P-1]", lambda c: Interval(Integral, 1, c.P - 1)),
               "robust patches per input, carrying α·u_y (D2)"),
    "geometry": Field(Options(GEOMETRIES), "feature geometry: sparse-dense (F2), basis or random (F3)"),
    "d_N": Field(Dependent(
        "a power of two >= k+1 (sparse-dense), else an integer >= k",
        lambda c: PowerOfTwo(c.k + 1, desc=f"a power of two >= k+1 = {c.k + 1} for geometry 'sparse-dense'")
        if c.geometry == "sparse-dense" else
        Interval(Integral, c.k, desc=f"an integer >= k = {c.k} for geometry {c.geometry!r}")),
        "dimension of the non-robust block; patch dimension d = k + d_N (F2)"),
    "alpha": Field(Interval(Real, 0), "robust-patch strength α: x_p = α·u_y + ξ_p (D3)"),
    "beta": Field(Interval(Real, 0), "non-robust-patch strength β: x_p = β·v_y + ξ_p (D3)"),
    "sigma_xi": Field(Interval(Real, 0), "noise scale σ_ξ, orthogonal to the features (D4)"),
    "n_nonrobust": Field(Dependent("none or an integer in [0, P-s]",
                                   lambda c: NoneOr(Interval(Integral, 0, c.P - c.s))),
                         "non-robust patches per input |N| (none: P - s) (D2)"),
    "n_train": Field(Interval(Integral, 1), "training set size n (D1, L3)"),
    "n_test": Field(Interval(Integral, 1), "test set size of the evaluation (E1-E4)"),
    "m": Field(Interval(Integral, 1), "filters per class (N3)"),
    "sigma0": Field(Interval(Real, 0, closed="neither"), "initial weight scale σ_0: w ~ N(0, σ_0² I) (N4)"),
    "q": Field(Interval(Real, 1), "smoothed-ReLU power q (N1)"),
    "rho": Field(Interval(Real, 0, closed="neither"), "smoothed-ReLU knee ρ (N1)"),
    "eta": Field(Interval(Real, 0, closed="neither"), "gradient-descent step size η (T1, T3)"),
    "T": Field(Interval(Integral, 0), "training steps (T1, T3)"),
    "norm": Field(Options(NORMS), "threat: linf, l2 (whole input) or l2-patch (each patch) (T2)"),
    # ε > 0: T2's default step is γ = ε and E2's γ = ε/4; a zero radius has no step (and ST needs no ε)
    "eps": Field(Interval(Real, 0, closed="neither"), "threat radius ε of training and evaluation (T2, E2)"),
    "K": Field(Interval(Integral, 1), "ascent steps of the training attack; 1 = FGSM (T2)"),
    "ascent_step": Field(NoneOr(Interval(Real, 0, closed="neither"), "eps"),
                         "ascent step γ of the training attack (none: ε; was 'gamma') (T2)"),
    "random_start": Field(Boolean(), "training attack starts uniformly in the ball (T2)"),
    "ascent": Field(Options(ASCENTS), "ascent direction: sign (normalised) or plain gradient (T2)"),
    "lam": Field(Interval(Real, 0, 1), "AT objective (1−λ)·clean + λ·adversarial (T3)"),
    "eval_K": Field(Interval(Integral, 1), "PGD steps of the evaluation attack (E2a)"),
    "eval_ascent_step": Field(NoneOr(Interval(Real, 0, closed="neither"), "eps/4"),
                              "PGD step of the evaluation attack (none: ε/4; was 'eval_gamma') (E2a)"),
    "eval_restarts": Field(Interval(Integral, 0), "random restarts of the evaluation attack (E2a)"),
    "eval_apgd_K": Field(Interval(Integral, 0), "iterations of APGD-CE and APGD-DLR in the evaluation; 0 = off (E2c)"),
    "log_every": Field(Interval(Integral, 1), "steps between logged coefficients and accuracies (C2)"),
    "seed": Field(Interval(Integral, 0, 2**32 - 1), "seed of every random stream (reffeat.seeding)"),
}


def validate(cfg: Config) -> None:
    """Check and normalise every field (numpy scalars become Python numbers);
    raise ValueError naming the first bad one, its allowed range and value."""
    check_fields(cfg, FIELDS)


def coerce(name: str, value):
    """The value of field ``name`` from the text of ``--set key=value`` (or a
    TOML value, which may already be typed); ValueError in the one format."""
    name = RENAMED.get(name, name)
    if name not in FIELDS:
        raise ValueError(f"unknown config key {name!r}; known keys: {', '.join(FIELDS)}")
    c = FIELDS[name].constraint
    if isinstance(c, Dependent):            # the range needs the other fields: Config checks it
        c = _TYPE_ONLY[name]
    return parse(name, value, c) if isinstance(value, str) else value


#: For --set parsing of fields whose range depends on others: the type alone.
_TYPE_ONLY = {"s": Interval(Integral), "d_N": Interval(Integral),
              "n_nonrobust": NoneOr(Interval(Integral))}


def parse_set(item: str) -> tuple:
    """``KEY=VALUE`` of ``--set`` -> (key, value); ValueError naming what is wrong.
    An old name of ``RENAMED`` gives the new key, with a DeprecationWarning."""
    if not isinstance(item, str) or "=" not in item:
        raise ValueError(f"--set must be KEY=VALUE with KEY a config key (got {item!r})")
    key, val = item.split("=", 1)
    key = key.strip()
    if key in RENAMED:
        _deprecated(key, "--set key", 3)
        key = RENAMED[key]
    if key not in FIELDS:
        raise ValueError(f"unknown config key {key!r} in --set; known keys: {', '.join(FIELDS)}")
    return key, coerce(key, val)


def read_toml(path) -> dict:
    """Config fields from a TOML file: ``key = value`` lines at the top level, or
    all of them in one ``[config]`` table (not both). ValueError naming the file."""
    import tomllib

    from .constraints import read_small_file
    data = read_small_file(path, "config file")        # no FIFO, device, or endless file
    try:
        values = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not valid TOML: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ValueError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    if "config" in values:
        table = values["config"]
        if not isinstance(table, dict):
            raise ValueError(f"config file {path}: 'config' must be a [config] table of config keys "
                             f"(got {show(table)})")
        others = [key for key in values if key != "config"]
        if others:
            raise ValueError(f"config file {path} has keys both at the top level ({', '.join(others)}) "
                             "and in a [config] table: put them all in one place")
        values = table
    values = upgrade_keys(values, f"config file {path}: key")
    for key, val in values.items():
        if key not in FIELDS:
            raise ValueError(f"config file {path}: unknown config key {key!r}; "
                             f"known keys: {', '.join(FIELDS)}")
        if isinstance(val, dict):
            raise ValueError(f"config file {path}: {key} must be a value, not a table")
    return {key: coerce(key, val) for key, val in values.items()}


def help_text(defaults: Config | None = None, width: int = 100) -> str:
    """The Config keys for ``--help``: name, default, allowed range (from the
    constraints that validate it) and meaning, one block per key."""
    cfg = defaults or Config()
    lines = []
    for name, spec in FIELDS.items():
        default = getattr(cfg, name)
        shown = "none" if default is None else str(default).lower() if isinstance(default, bool) else default
        lines.append(f"  {name} = {shown}  ({spec.constraint})")
        lines.append(f"      {spec.meaning}")
    return "\n".join(lines)


FIELD_NAMES = tuple(f.name for f in fields(Config))
if set(FIELDS) != set(FIELD_NAMES):   # every field declared once, with its constraint
    raise ImportError(f"config.FIELDS and Config differ: {sorted(set(FIELDS) ^ set(FIELD_NAMES))}")
