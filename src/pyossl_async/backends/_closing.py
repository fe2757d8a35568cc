"""Closing a paused job, as the drivers and the wait primitives see it.

A driver that gives up on its job closes it without blocking its event loop: it
resumes the job with ``JobCancelled`` pending, waits (awaiting) for what the
engine asked for, and resumes again, until the job has ended or the close
timeout ran out. :class:`Closing` is the backend's side of that, one object per
close (``BackendBase.begin_close``): the drivers never touch a job's record or a
backend's private methods, and :func:`pyossl_async._wait.blocking.unwind` drives
the same object when the close may block.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .._protocol import Job, WaitCtx

if TYPE_CHECKING:
    from ._base import BackendBase, JobRecord, ThreadJobs

__all__ = ["Closing"]


class Closing:
    """One close of one paused job, on its owner thread (the checks passed when it was made)."""

    __slots__ = ("_backend", "_handle", "_record", "_thread")

    def __init__(self, backend: BackendBase, thread: ThreadJobs, record: JobRecord, handle: Job) -> None:
        self._backend = backend
        self._thread = thread
        self._record = record
        self._handle = handle

    @property
    def ctx(self) -> Optional[WaitCtx]:
        """The job's context (what its engine signals through), None without one."""
        ctx: Optional[WaitCtx] = self._record.ctx
        return ctx

    @property
    def state(self) -> str:
        """The job's state: ``"paused"`` until it has ended."""
        state: str = self._record.state
        return state

    def step(self) -> bool:
        """Resume the job once, ``JobCancelled`` pending; True once it has ended (False: it
        paused again, inside C code). An exception it raised while unwinding propagates."""
        return self._backend._cancel_step(self._thread, self._record, self._handle)

    def abort(self) -> None:
        """The close is given up: the job stays paused, closable again, and a plain resume
        will not raise ``JobCancelled``."""
        self._backend._cancel_abort(self._thread, self._record)

    def keep(self, watch: Any = None) -> None:
        """Hand the job, still paused, to the library, which unwinds it as soon as its engine
        signals (``watch``: the driver's, whose callback registration the engine may hold)."""
        self._backend._keep(self._thread, self._record, self._handle, watch)

    def give_up(self, watch: Any, timeout: Optional[float]) -> Optional[BaseException]:
        """Close the job once, blocking, for at most ``timeout`` seconds (default
        ``DEFAULT_CLOSE_TIMEOUT``) and waiting with ``watch``; a job still paused then
        is kept. What the close raised (not ``JobCancelled``), if anything."""
        return self._backend._give_up(self._record, self._handle, watch, timeout)

    def without_waiting(self, what: str, watch: Any = None) -> None:
        """Unwind the job as far as it goes without waiting for its engine (its driver's
        coroutine is being closed); the rest is kept by the library. ``what`` names the
        job in a report of what its unwinding raised."""
        self._record.handle = self._handle  # (the collector may have cleared the weak reference)
        self._backend._cancel_quietly(self._thread, self._record, what, watch)
