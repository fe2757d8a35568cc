"""A one-line progress display for long CLI runs: shown on a terminal, silent when piped."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

__all__ = ["Progress"]


class Progress:
    """``with Progress(total, "conformance") as p: p.step("scenario")``.

    Writes ``label [i/total] item`` over itself with ``\\r`` on a TTY (at most every
    ``interval`` seconds) and clears the line at the end; writes nothing when the
    stream is not a terminal, so piped output and logs stay clean.
    """

    def __init__(
        self,
        total: int,
        label: str,
        stream: Optional[TextIO] = None,
        enabled: Optional[bool] = None,
        interval: float = 0.1,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = enabled if enabled is not None else bool(isatty and isatty())
        self.interval = interval
        self.done = 0
        self._last = 0.0
        self._width = 0

    def step(self, item: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval and self.done < self.total:
            return
        self._last = now
        line = f"{self.label} [{self.done}/{self.total}] {item}"[:100]
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
