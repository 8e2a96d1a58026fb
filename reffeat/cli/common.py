"""What every command shares: the parser base and the exit-code policy.

Exit codes (all commands): 0 done; 1 a check failed (verify) or a network
failure (data fetch); 2 bad input — one line ``error: <message>`` on stderr
naming the parameter and its allowed range, never a traceback; 130 stopped by
Ctrl-C and 143 by SIGTERM, with what was computed kept.
"""

from __future__ import annotations

import argparse

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


class UsageError(Exception):
    """Bad input at a command's boundary: reported as one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting,
    so each command reports every kind of bad input the same way."""

    def error(self, message):             # one line, exit code 2, no traceback
        raise UsageError(message)


def report_usage_error(exc: BaseException, stream=None) -> int:
    """Print ``error: <message>`` (one line) and return exit code 2."""
    import sys
    print(f"error: {exc}", file=stream or sys.stderr)
    return EXIT_USAGE


def configure_threads() -> dict | None:
    """The commands' one explicit set-up of the compute threads
    (``reffeat.kernels.configure_threads``: REFFEAT_THREADS / NUMBA_NUM_THREADS /
    OMP_NUM_THREADS, else the core count).  None on the reference backend, which
    never imports numba.  Returns what was set, for the outputs' record."""
    from .. import backend
    if backend.get_backend() != "numba":
        return None
    from .. import kernels
    return kernels.configure_threads()
