"""Waiting with ``poll(2)``, and closing a paused job step by step.

What a thread that may block needs: ``pa.run_job``'s waits, a close (``Job.close``,
a driver giving up, the library unwinding a job it keeps), and the keeper's. A wait
is ``poll(2)`` on the context's wait fds plus the thread's callback pipe
(:mod:`.notify`); everything else is :class:`~.watch.PauseWatch`'s decision.
"""

from __future__ import annotations

import select
import time
from typing import Any, Callable, Optional, Protocol

from .._protocol import WaitCtx
from .._unraisable import report_unraisable
from .notify import notifier
from .watch import RETRY, Backoff, PauseWatch, check_timeout

__all__ = ["BlockingWatch", "ClosingJob", "callback_runs_python", "unwind", "wait_blocking"]


class ClosingJob(Protocol):
    """A paused job being closed, as its backend hands it out (``Backend.begin_close``):
    one resume with ``JobCancelled`` pending at a time, the waits between them its
    closer's business."""

    @property
    def ctx(self) -> Optional[WaitCtx]:
        """The job's context (what its engine signals through), None without one."""

    @property
    def state(self) -> str:
        """The job's state: ``"paused"`` until it has ended."""

    def step(self) -> bool:
        """Resume it once, ``JobCancelled`` pending; True once it has ended (False: it
        paused again, inside C code). An exception it raised while unwinding propagates."""

    def abort(self) -> None:
        """The close is given up: the job stays paused, closable again, and a plain
        resume will not raise ``JobCancelled``."""


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


def unwind(closing: ClosingJob, timeout: Optional[float], watch: Optional[PauseWatch] = None) -> bool:
    """Close a paused job: resume it with ``JobCancelled`` pending until it has ended; True once
    it has, False if ``timeout`` ran out first.

    A job paused in Python raises ``JobCancelled`` from its ``pause_job()`` at
    the first resume. A job paused inside C code (an engine) goes on in C, and
    may pause there again, before any of its Python code runs: it is resumed as
    often as that takes, waiting each time for what its engine asked for, as a
    driver would (:class:`~.watch.Backoff` where the close may not hear it);
    ``JobCancelled`` is raised at the first point its Python code runs. Past
    ``timeout`` seconds (``None``: no limit) the close is given up: False, and the
    job stays paused (the caller says what that means: :func:`~.watch.stuck_message`).

    ``watch``: wait with this watch (a driver's, or a kept job's), which is left
    installed; by default the close makes its own and releases it.
    """
    limit = check_timeout(timeout, "close timeout")
    deadline = None if limit is None else time.monotonic() + limit
    ctx: Any = closing.ctx
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
            if closing.step():
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
                closing.abort()
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
                    closing.abort()
                    return False
            if watch is not None:
                watch.before_resume()
    except BaseException:
        if closing.state == "paused":
            closing.abort()
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
