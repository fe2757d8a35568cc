"""The blocking shell: ``pa.run_job``, and unwinding a job that is being closed.

Waits are ``poll(2)`` on the context's wait fds plus the thread's callback pipe
(:mod:`._notify`); everything else is :class:`~._core.PauseWatch`'s decision.
"""

from __future__ import annotations

import math
import os
import select
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from .._constants import Status
from .._errors import AsyncError
from .._protocol import Backend, Job, WaitCtx
from .._unraisable import report_unraisable
from ._core import RETRY, WAIT, Outcome, PauseWatch, check_timeout, resolve, start_failed
from ._notify import notifier

if TYPE_CHECKING:
    from ..backends._base import BackendBase, JobRecord, ThreadJobs

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "BlockingWatch", "run_job", "unwind"]

ENV_CLOSE_TIMEOUT = "PYOSSL_ASYNC_CLOSE_TIMEOUT"


def _default_close_timeout() -> float:
    text = os.environ.get(ENV_CLOSE_TIMEOUT, "").strip()
    if not text:
        return 10.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        raise ValueError(f"{ENV_CLOSE_TIMEOUT}={text!r}: a number of seconds >= 0 was expected")
    return value


#: how long closing a job may take by default (``$PYOSSL_ASYNC_CLOSE_TIMEOUT``, else
#: 10 s): a job paused inside C code is resumed as often as that code needs,
#: waiting for its engine each time
DEFAULT_CLOSE_TIMEOUT = _default_close_timeout()

_POLLIN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP


class BlockingWatch(PauseWatch):
    """A :class:`PauseWatch` that waits with ``poll(2)``."""

    def __init__(self, ctx: WaitCtx, *, owns_ctx: bool = False, closing: bool = False) -> None:
        super().__init__(ctx, notifier(), owns_ctx=owns_ctx, closing=closing)
        self._poll = select.poll()
        self._poll.register(self.notifier.r, select.POLLIN)

    def _watch(self, fd: int) -> None:
        self._poll.register(fd, select.POLLIN)

    def _unwatch(self, fd: int) -> None:
        try:
            self._poll.unregister(fd)
        except KeyError:  # pragma: no cover
            pass

    def wait(self, deadline: Optional[float]) -> bool:
        """Block until a watched fd is readable or the callback came; False at the deadline."""
        poll = self._poll.poll
        drain = self.notifier.drain
        notify_fd = self.notifier.r
        while not self.fired:
            if deadline is None:
                events = poll()
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                events = poll(max(1, int(left * 1000 + 0.999)))
            ready = False
            for fd, _ in events:
                if fd == notify_fd:
                    drain()  # our callback, or another listener of this thread's
                else:
                    ready = True
            if ready:
                return True
        return True


def run_job(
    func: Callable[[Any], Any],
    args: Any = None,
    *,
    backend: Union[Backend, str, None] = None,
    ctx: Optional[WaitCtx] = None,
    timeout: Optional[float] = None,
    close_timeout: Optional[float] = None,
) -> Any:
    """Start ``func(args)`` in a job and drive it to the end; what ``func`` returned (any value).

    Blocks the calling thread. After each ``PAUSE`` it waits on the context's
    wait fds and for the wait-ctx callback, as the job's engine asks, then
    resumes the job on this thread.

    ``backend``: a name, a backend object, or ``None`` (``ctx``'s backend, else
    the default one). ``ctx``: a ``WaitCtx`` to use (left open, its callback
    restored afterwards); by default a new one, closed at the end.
    ``timeout``: seconds for the whole run, checked at every pause, however the
    job pauses; past it the job is closed (``JobCancelled`` inside it) and
    ``TimeoutError`` is raised. A job computing between two pauses cannot be
    interrupted. ``close_timeout``: how long closing the job may take when the
    driver gives up on it (default ``DEFAULT_CLOSE_TIMEOUT``; see ``Job.close``).

    Raises the job's own exception; ``AsyncError`` when ``start_job`` returns
    ``NO_JOBS``/``ERR`` or the engine sets ``ASYNC_STATUS_ERR``.
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    limit = check_timeout(timeout)
    check_timeout(close_timeout, "close_timeout")
    be, wctx, owns = resolve(backend, ctx)
    deadline = None if limit is None else time.monotonic() + limit
    watch = BlockingWatch(wctx, owns_ctx=owns)
    outcome = Outcome()
    job: Optional[Job] = None
    try:
        watch.install()
        status, job, _ = be.start_job(None, wctx, outcome.job(func), args)
        while status == Status.PAUSE:
            if deadline is not None and time.monotonic() >= deadline:
                _timed_out(job, limit, close_timeout)
            action = watch.after_pause()
            if action == WAIT:
                if not watch.wait(deadline):
                    _timed_out(job, limit, close_timeout)
            elif action == RETRY and deadline is not None and time.monotonic() >= deadline:
                _timed_out(job, limit, close_timeout)
            watch.before_resume()
            status, job, _ = be.start_job(job, None, None)  # (a resume ignores ctx; a traceback would keep it)
        job = None
        if status != Status.FINISH:
            raise start_failed(be, status)
    except BaseException:
        failure = close_quietly(job, close_timeout)
        if failure is not None:
            report_unraisable(failure, "Exception ignored while closing a job run_job() gave up on", func)
        failure = watch.finish()
        if failure is not None:
            report_unraisable(failure, "Exception ignored while releasing run_job()'s WaitCtx", func)
        raise
    failure = watch.finish()
    if failure is not None:
        raise failure
    return outcome.value


def close_quietly(job: Optional[Job], timeout: Optional[float] = None) -> Optional[BaseException]:
    """Close ``job`` if it is paused; the exception its unwinding raised (not JobCancelled)."""
    if job is None or job.state != "paused":
        return None
    try:
        job.close() if timeout is None else job.close(timeout=timeout)
    except BaseException as exc:  # noqa: BLE001 - the caller decides what to do with it
        return exc
    return None


def _timed_out(job: Optional[Job], limit: Optional[float], close_timeout: Optional[float]) -> None:
    failure = close_quietly(job, close_timeout)
    raise TimeoutError(f"the job did not finish within {limit:g} s; it was closed") from failure


def unwind(
    backend: BackendBase, thread: ThreadJobs, record: JobRecord, handle: Job, timeout: Optional[float]
) -> None:
    """Close a paused job: resume it with ``JobCancelled`` pending until it has ended.

    A job paused in Python raises ``JobCancelled`` from its ``pause_job()`` at
    the first resume. A job paused inside C code (an engine) goes on in C, and
    may pause there again, before any of its Python code runs: it is resumed as
    often as that takes, waiting each time for what its engine asked for, as a
    driver would; ``JobCancelled`` is raised at the first point its Python code
    runs. Past ``timeout`` seconds (``None``: no limit) the close is given up:
    ``AsyncError``, and the job stays paused and can be closed again.
    """
    limit = check_timeout(timeout, "close timeout")
    deadline = None if limit is None else time.monotonic() + limit
    ctx: Any = record.ctx
    watch: Optional[BlockingWatch] = None
    try:
        if ctx is not None and not ctx.closed and _callback_runs_python(ctx):
            # the engine would call it inside the job, where JobCancelled is pending
            watch = BlockingWatch(ctx, closing=True)
            watch.install()
        while True:
            if backend._cancel_step(thread, record, handle):
                return
            # paused again, inside C code
            if ctx is None:  # started without a context: nothing to wait on but time
                action = RETRY
            else:
                if watch is None:
                    watch = BlockingWatch(ctx, closing=True)
                    watch.install()
                action = watch.after_pause()
            if action == WAIT and watch is not None:
                ok = watch.wait(deadline)
            else:
                ok = deadline is None or time.monotonic() < deadline
            if not ok:
                backend._cancel_abort(thread, record)
                raise AsyncError(
                    f"the job did not finish unwinding within {limit:.3g} s: it is paused inside C code "
                    f"whose engine has not completed; it stays paused and can be closed again"
                )
            if watch is not None:
                watch.before_resume()
    except BaseException:
        if record.state == "paused":
            backend._cancel_abort(thread, record)
        raise
    finally:
        if watch is not None:
            failure = watch.finish()
            if failure is not None:
                report_unraisable(failure, "Exception ignored while restoring a closed job's WaitCtx")


def _callback_runs_python(ctx: WaitCtx) -> bool:
    callback = ctx.get_callback()
    foreign = getattr(ctx, "foreign_callback", None)
    return callback is not None and not (foreign is not None and isinstance(callback[0], foreign))
