"""Driving jobs to their end: one decision core, a shell per I/O flavour.

:mod:`._core` decides what a paused job waits for (sans I/O); :mod:`._blocking`
waits with ``poll(2)`` (``pyossl_async.run_job``, closing jobs paused in C);
:mod:`._aio` with an asyncio loop (``pyossl_async.aio``). :mod:`._notify` is how
an engine's wait-ctx callback reaches a driver without running Python.
:mod:`._keeper` keeps the jobs paused inside C code that nobody can wait for
(given up on, collected) and unwinds them once their engine signals.
"""

from typing import TYPE_CHECKING, Any

from . import (
    _blocking,
    _keeper,  # noqa: F401 - imported now: the collector needs it, and must not import it
)
from ._blocking import run_job

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "run_job"]

#: ``_blocking.DEFAULT_CLOSE_TIMEOUT``, read at first use (see there)
DEFAULT_CLOSE_TIMEOUT: float

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "DEFAULT_CLOSE_TIMEOUT":
            return _blocking.DEFAULT_CLOSE_TIMEOUT
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
