"""Progress of a batch of jobs: done/total, read from the store, failures,
retries, rate and time left on one line (stderr by default)."""

from __future__ import annotations

import math
import time
from typing import Any


def _fmt_time(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


class Progress:
    """done/total, from the store, failures, retries, rate and time left on one
    line: rewritten in place (\\r) on a terminal, printed as plain lines (at
    most one per ``interval`` s, plus the last) otherwise."""

    def __init__(self, stream: Any, total: int, label: str = "sweep", interval: float = 10.0):
        self.stream, self.total, self.label, self.interval = stream, total, label, interval
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.t0 = time.perf_counter()
        self.last = -math.inf
        self.done = self.stored = self.failed = self.retried = 0
        self.width = 0

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        ran = self.done - self.stored
        rate = ran / el if el > 0 else 0.0
        left = self.total - self.done - self.failed
        eta = left / rate if rate > 0 else (0.0 if left == 0 else math.inf)
        parts = [f"[{self.label}] {self.done}/{self.total} done"]
        if self.stored:
            parts.append(f"{self.stored} from store")
        parts.append(f"{self.failed} failed")
        if self.retried:
            parts.append(f"{self.retried} retried")
        if ran:
            parts.append(f"{rate * 60:.1f} jobs/min" if rate < 1 else f"{rate:.2f} jobs/s")
        parts.append(f"elapsed {_fmt_time(el)}" + (f", left ~{_fmt_time(eta)}" if left else ""))
        return ", ".join(parts)

    def update(self, force: bool = False) -> None:
        if self.stream is None:
            return
        now = time.perf_counter()
        finished = self.done + self.failed >= self.total
        if self.tty:
            if not (force or finished or now - self.last >= 0.2):
                return
            text = self.line()
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
        else:
            if not (force or finished or now - self.last >= self.interval):
                return
            self.stream.write(self.line() + "\n")
        self.last = now
        self.stream.flush()

    def close(self) -> None:
        if self.stream is not None and self.tty:
            self.update(force=True)
            self.stream.write("\n")
            self.stream.flush()


class StageProgress:
    """Progress inside one stage of a long run (e.g. a stage of ``run real``):
    done/total units, elapsed time and time left, as a plain line on ``stream``
    at most once per ``interval`` seconds — so a stage shorter than ``interval``
    prints nothing, and a longer one never goes quiet for longer than a unit.

    ``update(done)`` sets the units done (e.g. a training step counted over
    all epochs, so a resumed run starts where it was); ``step(n)`` adds n.
    Time left is the rate of the units done in this stage times the units left.
    ``close()`` ends the stage (no line: the stage prints its own result).
    The line: "LABEL: 9/14 UNIT done, elapsed 40s, left ~25s"."""

    def __init__(self, stream: Any, total: int, label: str, unit: str = "", interval: float = 10.0):
        self.stream, self.total, self.label, self.unit, self.interval = stream, int(total), label, unit, interval
        self.t0 = self.last = time.perf_counter()
        self.done = 0
        self.first: int | None = None           # units already done when this stage started (a resume)

    def line(self) -> str:
        el = time.perf_counter() - self.t0
        ran = self.done - (self.first or 0)
        left = max(0, self.total - self.done)
        eta = left * el / ran if ran > 0 else math.inf
        unit = f" {self.unit}" if self.unit else ""
        return (f"{self.label}: {self.done}/{self.total}{unit} done, elapsed {_fmt_time(el)}"
                + (f", left ~{_fmt_time(eta)}" if left else ""))

    def update(self, done: int) -> None:
        if self.first is None:
            self.first = max(0, int(done) - 1) if self.done == 0 else 0
        self.done = int(done)
        now = time.perf_counter()
        if self.stream is None or now - self.last < self.interval or self.done >= self.total:
            return
        self.stream.write(self.line() + "\n")
        self.stream.flush()
        self.last = now

    def step(self, n: int = 1) -> None:
        if self.first is None:
            self.first = 0
        self.update(self.done + n)

    def close(self) -> None:
        self.stream = None
