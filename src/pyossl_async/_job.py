"""The job handle both backends hand out (``pyossl_async.Job``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from typing import Literal

    from ._protocol import Backend, WaitCtx

    JobStateName = Literal["running", "paused", "finished"]
else:
    JobStateName = str

__all__ = ["Job", "JobStateName"]


class Job:
    """An opaque job handle. Compares by identity.

    ``start_job`` returns it when the job pauses, and ``get_current_job()`` returns
    the same object inside the job. Dropping the last reference to a paused job
    unwinds it (``JobCancelled`` inside), like closing a generator, without waiting
    for an engine: a job still paused inside C code is kept by the library and
    unwound once its engine signals.
    """

    __slots__ = ("__weakref__", "_record")

    def __init__(self, record: Any) -> None:
        # a backends._base.JobRecord; typed loosely to keep this module import-free
        self._record = record

    @property
    def wait_ctx(self) -> Optional[WaitCtx]:
        """The ``WaitCtx`` the job was started with (``None`` if it was started without).

        Once the job has finished it holds the context only weakly: ``None`` when
        nobody else holds it any more.
        """
        record = self._record
        ctx: Optional[WaitCtx] = record.ctx
        if ctx is None and record.ctx_ref is not None:
            ctx = record.ctx_ref()
        return ctx

    @property
    def backend(self) -> Backend:
        backend: Backend = self._record.backend
        return backend

    @property
    def state(self) -> JobStateName:
        """``"running"``, ``"paused"`` or ``"finished"``."""
        state: JobStateName = self._record.state
        return state

    def close(self, timeout: Optional[float] = None) -> None:
        """Unwind a paused job: ``JobCancelled`` is raised in it where it paused.

        A job paused inside C code (an engine's ``ASYNC_pause_job``) is resumed
        as often as that code needs to get back to Python, waiting each time for
        its engine, and gets ``JobCancelled`` at the first Python line it runs.
        ``timeout``: seconds that may take in all (default
        ``pyossl_async.DEFAULT_CLOSE_TIMEOUT``, 10 s); between resumes the close
        waits for the engine. Past it ``AsyncError`` is raised and the job stays
        paused, closable again.

        Does nothing for a finished job. Raises ``JobStateError`` for a running
        job, from another thread, from inside another job, or once the
        interpreter is shutting down. An exception other than ``JobCancelled``
        that the job raises while unwinding propagates.
        """
        backend = self._record.backend
        if timeout is None:
            backend._close(self._record, self)
        else:
            backend._close(self._record, self, timeout)

    def __repr__(self) -> str:
        r = self._record
        return f"<pyossl_async.Job {r.state} backend={r.backend.name} at {id(self):#x}>"

    def __del__(self) -> None:
        try:
            record = self._record
        except AttributeError:  # pragma: no cover - half-built
            return
        if record.state == "paused" and not record.orphaned:
            record.backend._handle_died(record, self)
