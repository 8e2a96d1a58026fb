"""One validator: declarative constraints on parameters, shared by ``Config``,
the real-image ``ImageTrainConfig``, the public API and every command-line option.

In the manner of scikit-learn's ``Interval``/``StrOptions``: a parameter is
described by a constraint object, and the same object

* checks and normalises a value (``check(name, value, constraint)``): numpy
  integer and float scalars are accepted wherever Python ones are and come back
  as Python ``int``/``float``; booleans are never numbers; a string where a
  number is expected is a ``ValueError``, not a ``TypeError``;
* parses the text of a command-line option or ``--set key=value``
  (``constraint.parse(text)``; reals also accept a fraction such as ``4/255``);
* describes itself for ``--help`` (``str(constraint)``: "an integer >= 2").

Every failure is one ``ValueError`` in one format:
``<name> must be <constraint> (got <value>)``.

The lists of threat norms, ascent rules, training modes, feature geometries,
optimisers and working precisions live here, once.

>>> check("k", np.int64(4), Interval(Integral, 2, None))
4
>>> check("eta", True, Interval(Real, 0, None, closed="neither"))
Traceback (most recent call last):
...
ValueError: eta must be a finite number > 0 (got True)
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

# ------------------------------------------------------------------ the lists
NORMS = ("linf", "l2", "l2-patch")      #: T2 threats of the synthetic model
IMAGE_NORMS = ("linf", "l2")            #: R3 threats on images (ℓ2 of the whole image)
ASCENTS = ("sign", "plain")             #: T2 ascent directions D(g)
MODES = ("st", "at")                    #: T1 standard, T3 adversarial training
GEOMETRIES = ("sparse-dense", "basis", "random")   #: F2, F3
OPTIMIZERS = ("sgd", "adam")            #: R3 update rules
DTYPES = ("float64", "float32")         #: R3 working precision


class _Bad(Exception):
    """Internal: the value does not satisfy the constraint."""


def is_int(v) -> bool:
    """A Python or numpy integer, not a boolean."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_real(v) -> bool:
    """A Python or numpy integer or float, not a boolean (finite or not)."""
    return is_int(v) or isinstance(v, (float, np.floating))


def show(v) -> str:
    """The value as it appears in a message: numpy scalars as plain numbers."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return repr(v)
    if isinstance(v, (list, tuple)) and len(v) > 8:
        return "[" + ", ".join(show(x) for x in v[:8]) + ", ...]"
    text = repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(text: str) -> float:
    """float of a command-line number; also ``a/b`` (e.g. ``4/255``)."""
    t = text.strip()
    if "/" in t:
        num, _, den = t.partition("/")
        return float(num) / float(den)
    return float(t)


class Constraint:
    """Base: ``convert`` checks and normalises a value; ``parse`` reads text."""

    desc = "a valid value"

    def convert(self, value):
        raise NotImplementedError

    def parse(self, text: str):
        return self.convert(text)

    def __str__(self):
        return self.desc

    def __repr__(self):
        return f"<{type(self).__name__}: {self.desc}>"


class Interval(Constraint):
    """Numbers in an interval. ``kind`` is ``Integral`` or ``Real``; ``left``/
    ``right`` None mean unbounded; ``closed`` in "both", "left", "right",
    "neither". Reals must be finite."""

    def __init__(self, kind, left=None, right=None, *, closed="both", desc: str | None = None):
        if kind not in (Integral, Real):
            raise TypeError("kind must be numbers.Integral or numbers.Real")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError("closed must be both, left, right or neither")
        self.kind, self.left, self.right, self.closed = kind, left, right, closed
        self.desc = desc or self._describe()

    def _describe(self) -> str:
        what = "an integer" if self.kind is Integral else "a finite number"
        lc = self.closed in ("both", "left")
        rc = self.closed in ("both", "right")
        lo, hi = self.left, self.right
        if lo is None and hi is None:
            return what
        if hi is None:
            return f"{what} {'>=' if lc else '>'} {_fmt(lo)}"
        if lo is None:
            return f"{what} {'<=' if rc else '<'} {_fmt(hi)}"
        return f"{what} in {'[' if lc else '('}{_fmt(lo)}, {_fmt(hi)}{']' if rc else ')'}"

    def _ok(self, v) -> bool:
        lc = self.closed in ("both", "left")
        rc = self.closed in ("both", "right")
        if self.left is not None and (v < self.left if lc else v <= self.left):
            return False
        if self.right is not None and (v > self.right if rc else v >= self.right):
            return False
        return True

    def convert(self, value):
        if self.kind is Integral:
            if not is_int(value):
                raise _Bad
            v = int(value)
        else:
            if not is_real(value):
                raise _Bad
            v = float(value)
            if not math.isfinite(v):
                raise _Bad
        if not self._ok(v):
            raise _Bad
        return v

    def parse(self, text: str):
        t = str(text).strip()
        try:
            if self.kind is Integral:
                try:
                    v = int(t)
                except ValueError:
                    f = _number(t)           # "1e3", "4.0": integers written as floats,
                    if not (math.isfinite(f) and f.is_integer() and abs(f) <= 2**53):
                        raise _Bad from None     # exactly (a float beyond 2**53 is no integer)
                    v = int(f)
            else:
                v = _number(t)  # type: ignore[assignment]  # a Real constraint: v is a float
        except (ValueError, ZeroDivisionError, OverflowError):
            raise _Bad from None
        return self.convert(v)


def _fmt(x) -> str:
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x)) if x != 0 else "0"
    return repr(x) if isinstance(x, float) else str(x)


class Options(Constraint):
    """One of a fixed list of strings."""

    def __init__(self, values):
        self.values = tuple(values)
        self.desc = "one of " + ", ".join(self.values)

    def convert(self, value):
        if isinstance(value, np.str_):
            value = str(value)
        if not isinstance(value, str) or value not in self.values:
            raise _Bad
        return value

    def parse(self, text: str):
        return self.convert(str(text).strip())


class Among(Constraint):
    """One of a fixed list of integers (e.g. the patch strides allowed for an
    image side and a patch size)."""

    def __init__(self, values, desc: str | None = None):
        self.values = tuple(int(v) for v in values)
        self.desc = desc or "one of " + ", ".join(map(str, self.values))

    def convert(self, value):
        if not is_int(value) or int(value) not in self.values:
            raise _Bad
        return int(value)

    def parse(self, text: str):
        return self.convert(Interval(Integral).parse(text))


class Boolean(Constraint):
    """true or false (Python or numpy bool; text true/false, yes/no, on/off, 1/0)."""

    desc = "true or false"
    _TRUE = ("1", "true", "yes", "on")
    _FALSE = ("0", "false", "no", "off")

    def convert(self, value):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise _Bad

    def parse(self, text: str):
        t = str(text).strip().lower()
        if t in self._TRUE:
            return True
        if t in self._FALSE:
            return False
        raise _Bad


class PowerOfTwo(Constraint):
    """An integer power of two >= ``low``."""

    def __init__(self, low: int = 1, desc: str | None = None):
        self.low = int(low)
        self.desc = desc or f"a power of two >= {self.low}"

    def convert(self, value):
        if not is_int(value):
            raise _Bad
        v = int(value)
        if v < self.low or v < 1 or v & (v - 1):
            raise _Bad
        return v

    def parse(self, text: str):
        return self.convert(Interval(Integral).parse(text))


class InstanceOf(Constraint):
    """An object of class ``cls`` (e.g. a ``Config``); has no text form."""

    def __init__(self, cls: type, desc: str | None = None):
        self.cls = cls
        self.desc = desc or f"a {cls.__name__} object"

    def convert(self, value):
        if not isinstance(value, self.cls):
            raise _Bad
        return value

    def parse(self, text: str):
        raise _Bad


class NoneOr(Constraint):
    """None (text: none, null or empty) or a value of ``inner``."""

    def __init__(self, inner: Constraint, none_means: str | None = None):
        self.inner = inner
        self.desc = f"{inner} or none" + (f" ({none_means})" if none_means else "")

    def convert(self, value):
        return None if value is None else self.inner.convert(value)

    def parse(self, text: str):
        if str(text).strip().lower() in ("none", "null", ""):
            return None
        return self.inner.parse(text)


class ListOf(Constraint):
    """A non-empty list (or tuple) whose every item satisfies ``item``; text is
    comma-separated. ``distinct`` forbids repeated items."""

    def __init__(self, item: Constraint, *, min_len: int = 1, distinct: bool = False, what: str | None = None):
        self.item, self.min_len, self.distinct = item, min_len, distinct
        plural = str(item).replace("an integer", "integers").replace("a finite number", "finite numbers")
        plural = plural.replace("a power of two", "powers of two").replace("one of", "each one of")
        self.desc = what or (f"a list of {'at least ' + str(min_len) + ' ' if min_len > 1 else ''}"
                             f"{'distinct ' if distinct else ''}{plural}")

    def convert(self, value):
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)):
            raise _Bad
        out = [self.item.convert(v) for v in value]
        if len(out) < self.min_len or (self.distinct and len(set(out)) != len(out)):
            raise _Bad
        return out

    def parse(self, text: str):
        parts = [p for p in str(text).split(",") if p.strip() != ""]
        return self.convert([self.item.parse(p) for p in parts]) if parts else self.convert([])


class Box(Constraint):
    """None or a pair (lo, hi) of finite numbers with lo < hi."""

    desc = "none or (lo, hi) with finite lo < hi"

    def convert(self, value):
        if value is None:
            return None
        if isinstance(value, np.ndarray):
            value = value.tolist()
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise _Bad
        lo, hi = (Interval(Real).convert(v) for v in value)
        if not lo < hi:
            raise _Bad
        return (lo, hi)


class Dependent(Constraint):
    """A constraint that depends on other fields (a cross-field rule).

    ``desc`` is the rule in words for ``--help`` ("an integer in [1, P-1]");
    ``rule(obj)`` returns the concrete constraint for the object being
    validated, so a message gives the concrete range ("in [1, 63]")."""

    def __init__(self, desc: str, rule):
        self.desc, self.rule = desc, rule

    def resolve(self, obj) -> Constraint:
        return self.rule(obj)


# ------------------------------------------------------------------ checking
def message(name: str, constraint, value) -> str:
    """The one message format: ``<name> must be <constraint> (got <value>)``."""
    return f"{name} must be {constraint} (got {show(value)})"


def check(name: str, value, constraint: Constraint, obj=None):
    """Check ``value`` against ``constraint``; return it normalised (Python
    int/float/str/bool/list) or raise ValueError in the one format."""
    if isinstance(constraint, Dependent):
        constraint = constraint.resolve(obj)
    try:
        return constraint.convert(value)
    except _Bad:
        raise ValueError(message(name, constraint, value)) from None


def parse(name: str, text: str, constraint: Constraint, obj=None):
    """``check`` for the text of an option or ``--set key=value``."""
    if isinstance(constraint, Dependent):
        constraint = constraint.resolve(obj)
    try:
        return constraint.parse(text)
    except _Bad:
        raise ValueError(message(name, constraint, text)) from None


class Field:
    """One declared parameter: its constraint and one line of meaning."""

    def __init__(self, constraint: Constraint, meaning: str):
        self.constraint, self.meaning = constraint, meaning


def check_fields(obj, fields: dict) -> None:
    """Validate and normalise the fields of a (frozen) dataclass instance in
    declaration order, so a cross-field rule sees normalised earlier fields."""
    for name, spec in fields.items():
        c = spec.constraint if isinstance(spec, Field) else spec
        value = check(name, getattr(obj, name), c, obj)
        object.__setattr__(obj, name, value)


def reject_unknown_keywords(cls):
    """Class decorator: an unknown keyword to ``cls(...)`` is a ValueError naming
    it and the known ones (a dataclass would raise TypeError)."""
    import dataclasses
    init = cls.__init__
    known = tuple(f.name for f in dataclasses.fields(cls))

    def __init__(self, *args, **kwargs):
        unknown = [key for key in kwargs if key not in known]
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key {unknown[0]!r}; known keys: {', '.join(known)}")
        init(self, *args, **kwargs)

    __init__.__doc__ = init.__doc__
    __init__.__wrapped__ = init
    cls.__init__ = __init__
    return cls


def keyword_constants(*names: str):
    """Function decorator: the model's constants ``names`` (q, rho, ...) are
    keyword-only parameters of the decorated public function (one calling
    convention for the whole API).  For one version a call that still gives
    them by position works as before, with a DeprecationWarning naming them."""
    import functools
    import inspect

    def wrap(fn):
        params = list(inspect.signature(fn).parameters.values())
        n_pos = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)

        @functools.wraps(fn)
        def call(*args, **kwargs):
            if len(args) > n_pos:
                extra = args[n_pos:]
                if len(extra) > len(names):
                    raise TypeError(f"{fn.__name__}() takes {n_pos} positional arguments and the keywords "
                                    f"{', '.join(names)} (got {len(args)} positional)")
                given = names[:len(extra)]
                for name in given:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}() got {name} both by position and by keyword")
                import warnings
                how = ", ".join(f"{g}=..." for g in given)
                warnings.warn(f"{fn.__name__}(): pass {', '.join(given)} by keyword ({how}); "
                              "by position is deprecated and will be removed in the next version",
                              DeprecationWarning, stacklevel=2)
                kwargs.update(zip(given, extra))
                args = args[:n_pos]
            return fn(*args, **kwargs)
        return call
    return wrap


# ------------------------------------------------------------------ arrays
def check_array(name: str, a, ndim: int | None = None) -> np.ndarray:
    """A real (not complex, not object) numeric array; ndim if given. Cheap:
    looks at the dtype and shape, never at the values."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real numeric array (got dtype {a.dtype})")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-d array (got shape {a.shape})")
    return a


def check_labels(name: str, y, n: int, k: int) -> np.ndarray:
    """Integer class labels (n,) in [0, k); float arrays holding whole numbers are
    accepted and converted. One pass over y (n values)."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one label per sample (got shape {y.shape})")
    if y.dtype.kind == "f":
        if n and not np.all(np.isfinite(y)):
            raise ValueError(f"{name} must be integer class labels in [0, {k}) (got a non-finite label)")
        if n and not np.all(y == np.round(y)):
            bad = y[y != np.round(y)][0]
            raise ValueError(f"{name} must be integer class labels in [0, {k}) (got {show(bad)})")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iu":
        raise ValueError(f"{name} must be integer class labels in [0, {k}) (got dtype {y.dtype})")
    if n and (y.min() < 0 or y.max() >= k):
        bad = y[(y < 0) | (y >= k)][0]
        raise ValueError(f"{name} must be integer class labels in [0, {k}) (got {show(bad)})")
    return y


# ------------------------------------------------------------------ small input files
#: the largest config or grid file read (a TOML of fields is a few kB; /dev/zero is endless)
MAX_CONFIG_BYTES = 1 << 20


def read_small_file(path, what: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of a small regular input file (a config, a grid), read without
    blocking and without limit: a FIFO, a device or a directory is refused
    before it is opened (opening a FIFO waits for a writer), and a file longer
    than ``limit`` bytes is refused.  ValueError naming the file (``what`` says
    which, e.g. "config file"); FileNotFoundError passes through as ValueError."""
    import os
    import stat
    if "\x00" in str(path):
        raise ValueError(f"{what} path must not contain a NUL byte (got {str(path)!r})")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ValueError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ValueError(f"{what} {path} is a directory, not a TOML file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise ValueError(f"{what} {path} is {kind}; give a regular TOML file")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise ValueError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise ValueError(f"{what} {path} is larger than {limit} bytes; a TOML of fields is a few kB")
    return data
