"""The one switch between the two implementations of the numerical core.

``"numba"`` (the default) runs the fused chunked kernels of ``reffeat.kernels``
(BLAS products + numba loops); ``"reference"`` runs the plain-numpy code that
mirrors SPEC.md (``model.py``, ``attacks.py``, ``metrics.py``).  The two agree
to ≤ 1e-10 relative in float64 (tests/test_backend.py, tests/test_kernels.py).

Four ways to choose, all read through ``resolve`` by every public numerical
function (forward, loss, grad_w, grad_x, attack, C4, evaluation, the R4 lenses):

* per call:           ``forward(W, X, q=q, rho=rho, backend="reference")``
* for a block:        ``with use_backend("reference"): ...``
* for the process:    ``set_backend("reference")`` (returns the previous choice)
* from outside:       the environment variable ``REFFEAT_BACKEND=reference``,
                      read when this module is first imported.

A per-call ``backend=`` wins over the block / process choice; ``None`` means
"the current choice" (``get_backend()``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

from .constraints import Options, check

BACKENDS = ("numba", "reference")
ENV_VAR = "REFFEAT_BACKEND"


_BACKEND = Options(BACKENDS)


def check_backend(name: object) -> str:
    """``name`` if it is one of BACKENDS, else ValueError naming the allowed values
    (``reffeat.constraints``)."""
    return check("backend", name, _BACKEND)


def _from_env() -> str:
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if not raw:
        return "numba"
    return check(f"environment variable {ENV_VAR}", raw, _BACKEND)


_current = _from_env()


def get_backend() -> str:
    """The implementation used when a function is called with ``backend=None``."""
    return _current


def set_backend(name: str) -> str:
    """Choose the implementation used when ``backend=None``; returns the previous choice."""
    global _current
    old, _current = _current, check_backend(name)
    return old


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """``with use_backend("reference"): ...`` — the choice for the block, restored after
    (also on an exception).  Not thread-local: it changes the process-wide choice."""
    old = set_backend(name)
    try:
        yield name
    finally:
        set_backend(old)


def resolve(backend: str | None = None) -> str:
    """The backend a call runs on: ``backend`` if given (validated), else the current choice."""
    return _current if backend is None else check_backend(backend)


def kernels(backend: str | None = None) -> ModuleType | None:
    """The ``reffeat.kernels`` module if the call runs on numba, else None.

    Imported on first use, so the reference backend never imports numba."""
    if resolve(backend) == "reference":
        return None
    from . import kernels as kern
    return kern
