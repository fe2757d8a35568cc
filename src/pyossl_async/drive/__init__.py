"""Driving jobs to their end: a shell per I/O flavour over one set of decisions.

What a paused job waits for is decided below the backends, in
:mod:`pyossl_async._wait` (sans I/O, with the blocking wait and the callback
notifier). Here: :mod:`._blocking` drives with ``poll(2)`` (``pyossl_async.run_job``),
:mod:`._async` is the loop the event-loop shells share, :mod:`._aio` runs it on
an asyncio loop (``pyossl_async.aio``), :mod:`._trio` in trio; :mod:`._core` is
what they share above the wait primitives. A job a driver gives up on is closed
through its backend's ``begin_close``, and kept by the backend when its engine
does not complete in time.
"""

from typing import TYPE_CHECKING, Any

from . import _blocking
from ._blocking import run_job

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "run_job"]

#: ``_blocking.DEFAULT_CLOSE_TIMEOUT``, read at first use (see there)
DEFAULT_CLOSE_TIMEOUT: float

if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "DEFAULT_CLOSE_TIMEOUT":
            return _blocking.DEFAULT_CLOSE_TIMEOUT
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
