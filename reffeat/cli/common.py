"""What every command shares: the parser base, the exit-code policy, the
output-path check, the memory check and the signal policy.

Exit codes (all commands): 0 done; 1 a check failed (verify), a network
failure (data fetch) or the run failed during its work (one line, results
written so far kept); 2 bad input found before any work — one line ``error: <message>`` on stderr
naming the parameter and its allowed range, never a traceback; 130 stopped by
Ctrl-C and 143 by SIGTERM, with what was computed kept.

Order of a command (``command``): parse and validate every option (the
constraints of ``reffeat.constraints``), estimate the memory, check every
output path (``output_dir``/``output_file``: created and written to once) and
lock the output folder — all before any work; then the work, under one
``SignalPolicy``. A file system error during the work (a full disk) is one
line too and exit 1; the results written so far stay whole (atomic writes).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

from ..stopping import Terminated  # the commands' name for a SIGTERM stop

__all__ = ["Terminated"]  # re-exported

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SIGINT, EXIT_SIGTERM = 0, 1, 2, 130, 143


class UsageError(Exception):
    """Bad input at a command's boundary: reported as one line, exit 2."""


#: whether the command's work has begun (its output folder locked, ``begin_work``):
#: from then on an error is a failure of the run (exit 1), never bad input (exit 2)
_WORK = {"started": False}


def begin_work() -> None:
    """Mark the end of the checks: every error from here on is a failure of the run."""
    _WORK["started"] = True


def work_started() -> bool:
    return _WORK["started"]


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing usage and exiting,
    so each command reports every kind of bad input the same way; every
    command built on it has ``--version`` (the one ``reffeat.__version__``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .. import __version__
        self.add_argument("--version", action="version", version=f"reffeat {__version__}",
                          help="print the version of reffeat and exit")

    def error(self, message):             # one line, exit code 2, no traceback
        # "argument --m: --m must be ..." -> "--m must be ...": the message names it already
        m = re.match(r"argument ([^:]+): (.*)", message, re.S)
        if m and m.group(2).startswith(m.group(1).split("/")[-1]):
            message = m.group(2)
        raise UsageError(message)


def report_usage_error(exc: BaseException, stream=None) -> int:
    """Print ``error: <message>`` (one line) and return exit code 2."""
    text = " ".join(str(exc).split())       # one line, whatever the message held
    print(f"error: {text}", file=stream or sys.stderr)
    return EXIT_USAGE


def runner_option_message(exc: BaseException) -> str | None:
    """The jobs Runner's refusal of its scheduler/workers ("scheduler must be …") named
    as the command's option ("--scheduler must be …"); None for any other error."""
    msg = str(exc)
    return f"--{msg}" if isinstance(exc, ValueError) and msg.startswith(("scheduler ", "workers ")) else None


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


# ------------------------------------------------------------------ options
def option(name: str, constraint):
    """argparse ``type=`` for an option validated by a ``reffeat.constraints``
    constraint: the message is the one format, naming the option."""
    from .. import constraints as C

    def parse(text):
        try:
            return C.parse(name, text, constraint)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = name
    return parse


def need(name: str, value, constraint):
    """Check one resolved option value; UsageError in the one format."""
    from .. import constraints as C
    try:
        return C.check(name, value, constraint)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# ------------------------------------------------------------------ paths
def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _make_dir(path, option: str):
    """(directory, the folders this call created) or UsageError, leaving nothing behind."""
    if path is None or str(path).strip() == "":
        raise UsageError(f"{option} must be a directory path (got {str(path)!r})")
    if "\x00" in str(path):
        raise UsageError(f"{option} must be a directory path without NUL bytes (got {str(path)!r})")
    p = Path(path).expanduser()
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p} exists and is not a directory; give a directory path")
    created = []
    try:
        missing = []
        q = p
        while not q.exists():
            missing.append(q)
            if q.parent == q:
                break
            q = q.parent
        if q.exists() and not q.is_dir():
            raise UsageError(f"{option} {p}: {q} is a file, not a directory")
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(prefix=".tmp-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except (OSError, UsageError) as exc:
        _remove(created)
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"{option} {p} is not a writable directory ({_why(exc)})") from None
    return p, created


def _remove(created) -> None:
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass


def output_dirs(*pairs) -> list:
    """The one output-path check, made before any work: each ``(path, option)``
    is (or is made) a directory this process can write a file into (a probe
    file is written and removed). If any fails: UsageError (one line) and the
    folders made for the others are removed again."""
    done, made = [], []
    try:
        for path, option in pairs:
            p, created = _make_dir(path, option)
            done.append(p)
            made += created
    except UsageError:
        _remove(made)
        raise
    return _Dirs(done, made)


class _Dirs(list):
    """The checked directories; ``undo()`` removes the (empty) ones this check made,
    for a command that finds a later problem before doing any work."""

    def __init__(self, dirs, created):
        super().__init__(dirs)
        self.created = created

    def undo(self) -> None:
        _remove(self.created)


def output_dir(path, option: str = "--out") -> Path:
    """``output_dirs`` for one directory."""
    return output_dirs((path, option))[0]


def output_file(path, option: str) -> Path:
    """An output file path: its directory passes ``output_dir`` and the path
    itself is not a directory."""
    if path is None or str(path).strip() == "":
        raise UsageError(f"{option} must be a file path (got {str(path)!r})")
    if "\x00" in str(path):
        raise UsageError(f"{option} must be a file path without NUL bytes (got {str(path)!r})")
    p = Path(path).expanduser()
    if p.is_dir():
        raise UsageError(f"{option} {p} is a directory; give a file path")
    output_dir(p.parent if str(p.parent) else ".", option)
    return p


def input_file(path, option: str) -> Path:
    """An existing, readable regular file."""
    if path is None or str(path).strip() == "":
        raise UsageError(f"{option} must be a file path (got {str(path)!r})")
    if "\x00" in str(path):
        raise UsageError(f"{option} must be a file path without NUL bytes (got {str(path)!r})")
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{option} {p}: no such file")
    if not p.is_file():
        raise UsageError(f"{option} {p} is not a regular file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{option} {p} is not readable")
    return p


# ------------------------------------------------------------------ an earlier run's files
def earlier_run_files(directory, patterns) -> list:
    """The entries of ``directory`` that an earlier run of the command wrote:
    names matching one of ``patterns`` (glob patterns; one ending in "/" matches
    directories, e.g. "seed*/").  Sorted; [] for a missing or empty folder."""
    import fnmatch
    d = Path(directory)
    if not d.is_dir():
        return []
    found = []
    for entry in sorted(d.iterdir()):
        for pat in patterns:
            is_dir_pat = pat.endswith("/")
            if fnmatch.fnmatchcase(entry.name, pat.rstrip("/")) and entry.is_dir() == is_dir_pat:
                found.append(entry)
                break
    return found


def refuse_earlier_run(directory, patterns, option: str = "--out", allowed: bool = False,
                       how: str = "--overwrite") -> None:
    """Before any work: UsageError (one line, exit 2) when ``directory`` holds
    files of an earlier run (``earlier_run_files``) and ``allowed`` (the command's
    ``--overwrite``, or ``--resume``) is not given."""
    if allowed:
        return
    found = earlier_run_files(directory, patterns)
    if found:
        names = ", ".join(e.name + ("/" if e.is_dir() else "") for e in found[:4]) + (", ..." if len(found) > 4 else "")
        raise UsageError(f"{option} {directory} holds the files of an earlier run ({names}); give {how} "
                         "to replace them, or choose another folder")


def clear_earlier_run(directory, patterns, keep=()) -> list:
    """Remove what an earlier run wrote into ``directory`` (``earlier_run_files``;
    a matching directory is emptied of the same patterns, then removed if empty),
    except the entries named in ``keep`` (glob patterns, e.g. the checkpoints a
    ``--resume`` reads).  Called once the folder is locked, so a new run never
    leaves an earlier run's file beside its own.  Returns the names removed."""
    import fnmatch
    removed = []
    for entry in earlier_run_files(directory, patterns):
        if any(fnmatch.fnmatchcase(entry.name, k) for k in keep):
            continue
        if entry.is_dir():
            clear_earlier_run(entry, patterns, keep)
            try:
                entry.rmdir()
            except OSError:                     # something that is not a run's file stays, and so does its folder
                continue
        else:
            entry.unlink()
        removed.append(entry.name)
    return removed


class OutputLock:
    """An exclusive lock on an output directory (``flock`` on the directory
    itself, so no lock file is left behind): a second run into the same
    ``--out`` while the first runs is refused instead of mixing their files."""

    def __init__(self, directory, option: str = "--out"):
        self.directory, self.option, self.fd = Path(directory), option, None

    def __enter__(self):
        import fcntl
        self.fd = os.open(self.directory, os.O_RDONLY)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise UsageError(f"{self.option} {self.directory} is in use by another running command; "
                             "wait for it or choose another directory") from None
        begin_work()                      # the lock is the last check of a command
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)             # closing releases the lock
            self.fd = None
        return False


# ------------------------------------------------------------------ memory
def available_memory() -> int:
    """Bytes this machine can give now (MemAvailable; else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def check_memory(needed: int, what: str) -> None:
    """Refuse (UsageError) a job whose estimated memory exceeds what is available."""
    have = available_memory()
    if needed > have:
        raise UsageError(f"{what} needs about {_gb(needed)} of memory; this machine has {_gb(have)} "
                         "available: make the sizes smaller")


# ------------------------------------------------------------------ signals


class SignalPolicy:
    """The one signal policy of the commands (a context manager, main thread).

    The handler only records the request (``reffeat.stopping.request``): an
    exception raised from a handler can land where Python drops it (a ctypes
    callback while numba compiles, ``ZipFile.__del__``) and the run would never
    stop.  The loops ask at their safe points (``reffeat.stopping.check``:
    between training steps, evaluation chunks and stages), where the first
    check raises KeyboardInterrupt (Terminated for SIGTERM) once; what was
    computed is kept and written.  Inside ``stopping.interruptible()`` (code
    that only waits) the handler raises at once.  A further signal within
    ``stopping.GRACE`` seconds is noted ("still stopping"); one after it ends
    the process at once (``os._exit``) with the exit code, keeping every file
    written so far (atomic writes: whole or absent).
    ``exit_code`` is 130 after Ctrl-C, 143 after SIGTERM.
    """

    def __init__(self):
        self._old = {}
        self._held = []
        self._final: int | None = None
        self._done = False

    @property
    def signum(self):
        from .. import stopping
        return self._final if self._done else stopping.signum()

    def _handler(self, signum, frame):
        from .. import stopping
        if stopping.request(signum):
            if stopping.in_interruptible() and not stopping.raised():
                stopping.mark_raised()
                raise stopping.exception()
            return
        if stopping.since() >= stopping.GRACE:
            try:
                os.write(2, b"stopped at once (second signal); the files written so far are kept\n")
            finally:
                os._exit(self.exit_code)
        os.write(2, ("still stopping: writing the results computed so far (signal again after "
                     f"{stopping.GRACE:g} s to stop at once)\n").encode())

    def __enter__(self):
        import threading

        from .. import stopping
        stopping.reset()
        self._final, self._done = None, False
        _WORK["started"] = False
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handler)
        return self

    def __exit__(self, *exc):
        while self._held:                   # e.g. output locks, released last-in first-out
            self._held.pop().__exit__(None, None, None)
        for s, h in self._old.items():
            # after a real signal the process is on its way out: a late Ctrl-C must not
            # kill it between here and its exit code (the results are written already)
            signal.signal(s, signal.SIG_IGN if self.signum is not None else h)
        self._old = {}
        from .. import stopping
        self._final, self._done = stopping.signum(), True
        stopping.reset()                    # library calls after the command see no stale request
        return False

    def hold(self, context):
        """Enter ``context`` (e.g. an OutputLock) until the command ends."""
        value = context.__enter__()
        self._held.append(context)
        return value

    def stopped(self, exc: BaseException | None = None) -> None:
        """Record a stop that arrived as an exception (e.g. a KeyboardInterrupt
        raised by other means), so later signals are treated as further ones."""
        from .. import stopping
        if stopping.signum() is None:
            stopping.request(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
        stopping.mark_raised()

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.signum == signal.SIGTERM else EXIT_SIGINT


# ------------------------------------------------------------------ the policy
def _failed(text: str) -> int:
    """A failure during the work: one line, exit 1 (the results written so far stay)."""
    text = " ".join(text.split())
    print(f"error: the run failed: {text} (the results written before it are kept)", file=sys.stderr)
    return EXIT_FAILED


def command(body):
    """The one error and exit-code policy around a command's body
    ``body(argv, policy) -> exit code``.  Before the work (until the output
    folder is locked or ``begin_work``): bad input (UsageError, ValueError —
    the constraints' and the data loaders') and file system errors are one
    line and exit 2.  During the work: an error is a failure of the run — one
    line and exit 1, the results written so far kept — never reported as bad
    input.  Ctrl-C 130, SIGTERM 143 (``SignalPolicy``), also when the body
    finished its writing after the signal; ``--help`` exit 0."""
    def main(argv=None) -> int:
        argv = sys.argv[1:] if argv is None else list(argv)
        with SignalPolicy() as policy:
            try:
                code = body(argv, policy)
                if policy.signum is not None and code == EXIT_OK:
                    return policy.exit_code      # stopped: what was done is written, but not all
                return code
            except UsageError as exc:
                return report_usage_error(exc)
            except ValueError as exc:
                if not work_started():
                    return report_usage_error(exc)
                return _failed(str(exc))
            except OSError as exc:
                where = f"{exc.filename}: " if exc.filename else ""
                text = f"{where}{exc.strerror or exc}"
                if not work_started():
                    print(f"error: {text}", file=sys.stderr)
                    return EXIT_USAGE
                return _failed(text)
            except KeyboardInterrupt as exc:
                policy.stopped(exc)
                print("interrupted", file=sys.stderr)
                return policy.exit_code
            except SystemExit as exc:       # --help / --version
                return exc.code if isinstance(exc.code, int) else EXIT_OK
    main.__doc__ = body.__doc__
    main.__wrapped__ = body
    return main
