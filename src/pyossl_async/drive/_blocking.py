"""The blocking shell: ``pa.run_job``, and unwinding a job that is being closed.

Waits are ``poll(2)`` on the context's wait fds plus the thread's callback pipe
(:mod:`._notify`); everything else is :class:`~._core.PauseWatch`'s decision.
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import _settings
from .._constants import Status
from .._protocol import Backend, BackendArg, Job, WaitCtx
from .._unraisable import report_unraisable
from ._core import (
    RETRY,
    WAIT,
    Backoff,
    Outcome,
    PauseWatch,
    check_timeout,
    expired_message,
    note,
    resolve,
    start_failed,
)
from ._notify import notifier

if TYPE_CHECKING:
    from ..backends._base import BackendBase, JobRecord, ThreadJobs

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "BlockingWatch", "give_up", "run_job", "unwind", "wait_blocking"]

#: how long closing a job may take by default (``$PYOSSL_ASYNC_CLOSE_TIMEOUT``, else
#: 10 s): a job paused inside C code is resumed as often as that code needs,
#: waiting for its engine each time. Read from the environment the first time it
#: is needed (``__getattr__`` below), then fixed for the process; the import never
#: reads it, so a bad value is refused at first use, not at import.
DEFAULT_CLOSE_TIMEOUT: float

if not TYPE_CHECKING:  # a module __getattr__ seen by mypy would make every name valid

    def __getattr__(name: str) -> Any:
        if name == "DEFAULT_CLOSE_TIMEOUT":
            value = _settings.default_close_timeout()  # SettingError for a bad value, every time
            globals()[name] = value  # later reads are a plain attribute
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        return _poll_wait(self._poll.poll, self, deadline)


def _poll_wait(poll: Callable[..., Any], watch: PauseWatch, deadline: Optional[float]) -> bool:
    drain = watch.notifier.drain
    notify_fd = watch.notifier.r
    while not watch.fired:
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


def wait_blocking(watch: PauseWatch, deadline: Optional[float]) -> bool:
    """Block until one of ``watch``'s fds is readable or its callback came, whatever
    shell's watch it is; False at ``deadline`` (``time.monotonic()``)."""
    if isinstance(watch, BlockingWatch):
        return watch.wait(deadline)
    poller = select.poll()
    poller.register(watch.notifier.r, select.POLLIN)
    for fd in watch.watched:
        poller.register(fd, select.POLLIN)
    return _poll_wait(poller.poll, watch, deadline)


def run_job(
    func: Callable[[Any], Any],
    args: Any = None,
    *,
    backend: BackendArg = None,
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
    del wctx  # (the watch has it; an exception's traceback would keep this frame's locals)
    outcome = Outcome()
    job: Optional[Job] = None
    expired = False
    try:
        watch.install()
        status, job, _ = be.start_job(None, watch.ctx, outcome.job(func), args)
        while status == Status.PAUSE:
            if deadline is not None and time.monotonic() >= deadline:
                expired = True
                break
            action = watch.after_pause()
            if action == WAIT:
                if not watch.wait(deadline):
                    expired = True
                    break
            elif action == RETRY and deadline is not None and time.monotonic() >= deadline:
                expired = True
                break
            watch.before_resume()
            status, job, _ = be.start_job(job, None, None)  # (a resume ignores ctx; a traceback would keep it)
        if not expired:
            job = None
            if status != Status.FINISH:
                raise start_failed(be, status)
    except BaseException as exc:
        _gave_up(exc, be, job, watch, close_timeout, func)
        job = None
        del watch  # (an exception's traceback keeps this frame's locals)
        raise
    if expired:
        assert limit is not None
        failure = give_up(be, job, watch, close_timeout)
        kept = job is not None and job.state == "paused"
        job = None
        _release(watch, func)
        # A local of a frame that the failure's traceback reaches (through the callers of
        # the frame it was caught in) would make a cycle that keeps the job's context alive.
        try:
            if failure is not None and not isinstance(failure, Exception):
                raise failure  # an interrupt cut the close short (Ctrl-C pressed again)
            raise TimeoutError(expired_message(limit, failure, kept)) from failure
        finally:
            del failure, watch
    failure = watch.finish()
    if failure is not None:
        raise failure
    return outcome.value


def _gave_up(
    exc: BaseException, backend: Backend, job: Optional[Job], watch: PauseWatch, timeout: Optional[float], func: Any
) -> None:
    """``exc`` ends a drive: close the job once (kept by the library if it does not unwind in
    time) and release the watch; a failure of the close goes with ``exc``, as a note
    (3.11+) or else through ``sys.unraisablehook``."""
    failure = give_up(backend, job, watch, timeout)
    _release(watch, func)
    try:
        if failure is None:
            return
        if not isinstance(failure, Exception):
            raise failure  # an interrupt cut the close short (Ctrl-C pressed again)
        if not note(exc, f"while closing the job: {failure}"):
            report_unraisable(failure, "Exception ignored while closing a job run_job() gave up on", func)
    finally:
        del failure  # (no cycle through this frame: see run_job)


def _release(watch: PauseWatch, func: Any) -> None:
    failure = watch.finish()
    if failure is not None:
        report_unraisable(failure, "Exception ignored while releasing run_job()'s WaitCtx", func)


def give_up(
    backend: Backend, job: Optional[Job], watch: PauseWatch, timeout: Optional[float]
) -> Optional[BaseException]:
    """Close a job its driver gives up on, once, bounded by ``timeout`` (default
    ``DEFAULT_CLOSE_TIMEOUT``), waiting between resumes with the driver's own ``watch``
    (the engine holds its callback token). A job still paused after that (its engine
    did not complete in time, or an interrupt cut the close short) is kept by the
    library, with the watch's callback registration, and unwound as soon as its
    engine signals. What the close raised (not ``JobCancelled``), if anything.

    Blocking: for the ``run_job`` shell, and for the async shells when they may not
    await (an interrupt).
    """
    if job is None or job.state != "paused":
        return None
    be: Any = backend
    return be._give_up(job._record, job, watch, timeout)  # type: ignore[no-any-return]  # (no local: no cycle)


def unwind(
    backend: BackendBase,
    thread: ThreadJobs,
    record: JobRecord,
    handle: Job,
    timeout: Optional[float],
    watch: Optional[PauseWatch] = None,
) -> bool:
    """Close a paused job: resume it with ``JobCancelled`` pending until it has ended; True once
    it has, False if ``timeout`` ran out first.

    A job paused in Python raises ``JobCancelled`` from its ``pause_job()`` at
    the first resume. A job paused inside C code (an engine) goes on in C, and
    may pause there again, before any of its Python code runs: it is resumed as
    often as that takes, waiting each time for what its engine asked for, as a
    driver would (:class:`~._core.Backoff` where the close may not hear it);
    ``JobCancelled`` is raised at the first point its Python code runs. Past
    ``timeout`` seconds (``None``: no limit) the close is given up: False, and the
    job stays paused (the caller says what that means: :func:`~._core.stuck_message`).

    ``watch``: wait with this watch (a driver's, or a kept job's), which is left
    installed; by default the close makes its own and releases it.
    """
    limit = check_timeout(timeout, "close timeout")
    deadline = None if limit is None else time.monotonic() + limit
    ctx: Any = record.ctx
    own = watch is None
    if watch is not None:
        watch.closing = True
    backoff = Backoff()
    try:
        if own and ctx is not None and not ctx.closed and callback_runs_python(ctx):
            # the engine would call it inside the job, where JobCancelled is pending
            watch = BlockingWatch(ctx, closing=True)
            watch.install()
        while True:
            if backend._cancel_step(thread, record, handle):
                return True
            # paused again, inside C code
            if ctx is None or ctx.closed:  # started without a context: nothing to wait on but time
                action = RETRY
            else:
                if watch is None:
                    watch = BlockingWatch(ctx, closing=True)
                    watch.install()
                action = watch.after_pause()
            if deadline is not None and time.monotonic() >= deadline:
                backend._cancel_abort(thread, record)
                return False
            wait = backoff.limit(action, watch)
            if wait != 0:
                now = time.monotonic()
                until = deadline if wait is None else now + wait if deadline is None else min(deadline, now + wait)
                if watch is not None:
                    signalled = wait_blocking(watch, until)
                elif until is not None:
                    time.sleep(max(until - now, 0.0))
                    signalled = False
                else:  # pragma: no cover - a RETRY always has a finite wait
                    signalled = False
                if signalled:
                    backoff.reset()
                elif deadline is not None and (until == deadline or time.monotonic() >= deadline):
                    backend._cancel_abort(thread, record)
                    return False
            if watch is not None:
                watch.before_resume()
    except BaseException:
        if record.state == "paused":
            backend._cancel_abort(thread, record)
        raise
    finally:
        if own and watch is not None:
            failure = watch.finish()
            if failure is not None:
                report_unraisable(failure, "Exception ignored while restoring a closed job's WaitCtx")


def callback_runs_python(ctx: WaitCtx) -> bool:
    """Whether the context's callback is Python code (not a C function such as the drivers')."""
    callback = ctx.get_callback()
    foreign = getattr(ctx, "foreign_callback", None)
    return callback is not None and not (foreign is not None and isinstance(callback[0], foreign))
