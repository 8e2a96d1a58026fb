"""Where the numba kernels are compiled to: a disk cache whose directory does not
depend on where the package is imported from, so a checkout and an installed
copy of the same source share one cache (numba's default locators key the cache
by the source file's path, so the two compiled twice).

No SPEC equation lives here; ``reffeat.kernels`` builds its ``_jit`` decorator
with :func:`make_jit` (its own file is what the cache is keyed by).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any


def cache_dir(source_file: str) -> str:
    """Where kernels compiled from ``source_file`` are cached: $REFFEAT_CACHE_DIR/numba,
    else $XDG_CACHE_HOME/reffeat/numba (default ~/.cache/reffeat/numba), in a
    sub-directory named by the hash of that file's source.  When NUMBA_CACHE_DIR
    is set, numba's own rule applies instead (that directory, keyed by path)."""
    root = os.environ.get("REFFEAT_CACHE_DIR")
    if not root:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(base, "reffeat")
    with open(source_file, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:16]
    return os.path.join(root, "numba", f"kernels-{digest}")


def cache_class(source_file: str) -> Any:
    """numba's FunctionCache with a locator that puts the cache of the functions of
    ``source_file`` in ``cache_dir(source_file)``.  None if numba's internals are not
    as expected or NUMBA_CACHE_DIR is set: then plain ``cache=True``."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    try:
        from numba.core import caching
        base_locator = caching._SourceFileBackedLocatorMixin
        abstract = caching._CacheLocator
    except (ImportError, AttributeError):
        return None
    path = cache_dir(source_file)

    class _Locator(base_locator, abstract):  # type: ignore[misc, valid-type]
        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno

        def get_cache_path(self):
            return path

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.abspath(py_file) != os.path.abspath(source_file):
                return None
            return super().from_function(py_func, py_file)

    class _Impl(caching.CompileResultCacheImpl):
        _locator_classes = [_Locator] + list(caching.CompileResultCacheImpl._locator_classes)

    class _Cache(caching.FunctionCache):
        _impl_class = _Impl

    return _Cache


def make_jit(source_file: str) -> tuple[Callable[[Callable], Any], Any]:
    """(jit, cache class) for the kernels defined in ``source_file``: ``jit(fn)`` is a
    serial, GIL-releasing, disk-cached numba kernel (compiled on first call)."""
    import numba
    cache = cache_class(source_file)

    def jit(fn: Callable) -> Any:
        disp = numba.njit(nogil=True, cache=cache is None)(fn)
        if cache is not None:
            try:
                disp._cache = cache(fn)  # type: ignore[attr-defined]
            except Exception:                   # no writable cache dir: compile every time
                pass
        return disp
    return jit, cache
