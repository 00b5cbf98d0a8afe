"""Throttled progress lines for long steps, for loggers that see no progress bar (e.g. Prefect's).

Domain functions take an optional ``progress`` callable (a run logger's ``info``) and never import
Prefect. The rule of issue 18: a line every ~10% of the work or every 30 s, whichever is rarer
(so a fast step logs little and a slow one at most every 30 s), and always a line for the last
item; callers add a start line (what and how much) and an end line (how long it took).
"""

from __future__ import annotations

import time
from collections.abc import Callable

Progress = Callable[[str], None]
"""Receives one human-readable line per report (e.g. a Prefect run logger's ``info``)."""


class Throttle:
    """Says when a line is due: after ``fraction`` of ``total`` *and* ``seconds`` since the last
    line, or when ``done`` reaches ``total``. ``clock`` is injectable for tests."""

    def __init__(
        self, total: int, fraction: float = 0.1, seconds: float = 30.0, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.total, self.clock = total, clock
        self.step, self.seconds = max(1, int(total * fraction)), seconds
        self.last_done = 0
        self.started = self.last_time = clock()

    def elapsed(self) -> float:
        return self.clock() - self.started

    def due(self, done: int) -> bool:
        """Whether to log now that ``done`` items are done (records the line when it is)."""
        now = self.clock()
        if done >= self.total or (done - self.last_done >= self.step and now - self.last_time >= self.seconds):
            self.last_done, self.last_time = done, now
            return True
        return False


class ProgressLog:
    """Calls ``log`` with ``"<desc>: done/total <unit> (pct%), seconds"`` when :class:`Throttle`
    says so; does nothing without ``log``. Not thread-safe: advance it from one thread."""

    def __init__(
        self,
        log: Progress | None,
        desc: str,
        total: int,
        fraction: float = 0.1,
        seconds: float = 30.0,
        unit: str = "pairs",
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.log, self.desc, self.total, self.unit = log, desc, total, unit
        self.throttle = Throttle(total, fraction, seconds, clock)
        self.done = 0

    def advance(self, n: int) -> None:
        if self.log is None:
            return
        self.done += n
        if self.throttle.due(self.done):
            pct = 100 * self.done / max(self.total, 1)
            self.log(f"{self.desc}: {self.done}/{self.total} {self.unit} ({pct:.0f}%), {self.throttle.elapsed():.0f} s")


def say(progress: Progress | None, line: str) -> None:
    """Send ``line`` to ``progress`` if there is one."""
    if progress is not None:
        progress(line)
