"""The stop request of a command: a signal handler that cannot be dropped.

A signal handler that raises (the old policy) can land anywhere: in a ctypes
callback while numba compiles, in ``ZipFile.__del__`` while an .npz is
closed.  Python drops an exception raised there, and the run never stops.  So
the handler of ``reffeat.cli.common.SignalPolicy`` only *records* the request
here (``request``); the loops ask at their safe points:

* ``check()``: between training steps (``reffeat.train``, ``reffeat.real.train``),
  between evaluation chunks and between stages.  The first ``check()`` after a
  request raises KeyboardInterrupt (``Terminated`` for SIGTERM) *once*, there,
  where it is safe; the caller then keeps and writes what is done, and later
  checks let that writing finish.
* ``requested()``: whether a stop was requested (to skip a stage, to record
  ``interrupted`` in a result, to choose the exit code).

Code that only waits (for worker processes, a pool) may wrap the wait in
``interruptible()``: a signal arriving inside it raises at once, as before.

Ground floor: imports nothing of reffeat.  Outside a command (library use, no
handler installed) nothing is ever requested and ``check()`` is free.
"""

from __future__ import annotations

import contextlib
import signal
import time

#: seconds after the first signal from which a further signal ends the process at once
GRACE = 5.0


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so every loop stops and keeps its results."""


_state: dict = {"signum": None, "at": 0.0, "raised": False, "interruptible": 0}


def reset() -> None:
    """Forget any request (a command starts)."""
    _state.update(signum=None, at=0.0, raised=False, interruptible=0)


def request(signum: int) -> bool:
    """Record a stop request (from a signal handler: no allocation-heavy work).
    Returns True when it is the first request."""
    if _state["signum"] is None:
        _state["signum"] = signum
        _state["at"] = time.monotonic()
        return True
    return False


def requested() -> bool:
    """Whether a stop was requested (by SIGINT/SIGTERM under a SignalPolicy)."""
    return _state["signum"] is not None


def signum() -> int | None:
    """The signal of the first request, or None."""
    return _state["signum"]


def since() -> float:
    """Seconds since the first request (0 if none)."""
    return time.monotonic() - _state["at"] if requested() else 0.0


def exception() -> KeyboardInterrupt:
    """The exception that stands for the request (Terminated for SIGTERM)."""
    return Terminated() if _state["signum"] == signal.SIGTERM else KeyboardInterrupt()


def check() -> None:
    """A safe point: raise the requested stop here, once (KeyboardInterrupt or
    Terminated); afterwards, and when nothing was requested, return."""
    if _state["signum"] is not None and not _state["raised"]:
        _state["raised"] = True
        raise exception()


def raised() -> bool:
    """Whether the request was already raised at a safe point."""
    return bool(_state["raised"])


def mark_raised() -> None:
    """Note that the request was delivered another way (e.g. inside ``interruptible``)."""
    _state["raised"] = True


def in_interruptible() -> bool:
    return _state["interruptible"] > 0


@contextlib.contextmanager
def interruptible():
    """A region that only waits: a signal inside it raises at once (the handler's
    choice).  A request made before entering is raised on entry."""
    check()
    _state["interruptible"] += 1
    try:
        yield
    finally:
        _state["interruptible"] -= 1
