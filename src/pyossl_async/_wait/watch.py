"""What to do between two ``start_job`` calls: the drive loop's decisions, without I/O.

Every driver (blocking ``run_job``, ``aio``, closing a job) runs the man page's
loop: start, and at each ``PAUSE`` look at the job's wait context, wait for
what the engine asked for, resume. :class:`PauseWatch` is that loop's state and
decisions for one job; the shells (``drive``'s blocking, asyncio and trio ones,
and the close in :mod:`.blocking`) only perform the waits it asks for. It sits
below the backends, which close jobs with it, and imports nothing above it. What it decides at a ``PAUSE``:

* **Wait fds.** At the first pause it watches every fd of the context
  (``get_all_fds``: the caller's context may hold fds from before the job);
  after that it applies ``get_changed_fds()``, deleted fds first, then added
  ones (a number closed and reused in one segment is both), counting keys per
  fd, since two keys may hold one fd. Shells are told through ``_watch`` and
  ``_unwatch``.
* **The callback.** :meth:`PauseWatch.install` sets the context's callback to
  the thread's :class:`~.notify.Notifier` (no Python runs when the engine calls
  it), remembering a callback the caller's context already had and calling it
  when ours is seen. A call since the last resume means "resume".
* **The status** the engine set (``ASYNC_WAIT_CTX_new(3)``): ``OK``: a callback
  will come, wait for it (and the fds); ``EAGAIN``: resume at once; ``ERR``: a
  fatal problem with this request (drivers close the job and raise
  ``AsyncError``; a closing job is just resumed); ``UNSUPPORTED`` (the default):
  wait on the fds, or resume at once when there are none. Before each resume
  the status goes back to ``UNSUPPORTED``, so an old value cannot mislead the
  next pause.

**Closing** (``closing=True``) is different in one way: the job is resumed
*before* its engine is done (to deliver ``JobCancelled``), and an engine resumed
early pauses again without repeating what it asked for. So while a close is in
progress a promised callback (``OK``) that has not come yet stays promised: the
status is left as the engine set it, and the close keeps waiting for it. What a
close cannot be sure to hear (a callback the engine took from the context before
the close began, or nothing to wait on at all) is retried on a growing interval
(:class:`Backoff`: "periodically retry", as the man page allows) instead of at
once, so closing never spins.
"""

from __future__ import annotations

import math
import select
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

from .._constants import WaitStatus
from .._errors import AsyncError
from .._protocol import Job, WaitCtx
from .._unraisable import report_unraisable
from .notify import Notifier

__all__ = [
    "RESUME",
    "RETRY",
    "WAIT",
    "Backoff",
    "Handover",
    "PauseWatch",
    "check_timeout",
    "note",
    "poll_readable",
    "stuck_message",
]

#: what :meth:`PauseWatch.after_pause` decides
RESUME = 0  # the job can go on now (an fd was ready or the callback came)
RETRY = 1  # resume at once without waiting: EAGAIN, or nothing to wait on
WAIT = 2  # wait on the fds and/or the callback

_STATUS_OK = int(WaitStatus.OK)
_STATUS_ERR = int(WaitStatus.ERR)
_STATUS_EAGAIN = int(WaitStatus.EAGAIN)
_STATUS_UNSUPPORTED = int(WaitStatus.UNSUPPORTED)


def check_timeout(timeout: Any, what: str = "timeout") -> Optional[float]:
    """``timeout`` as seconds (``None``: no limit); ``TypeError``/``ValueError`` for bad ones."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds or None, not {type(timeout).__name__}")
    seconds = float(timeout)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{what} must be >= 0 seconds, got {seconds}")
    return None if math.isinf(seconds) else seconds


#: what happens to a job whose close gave up, as :func:`stuck_message` says it
AFTERWARDS = {
    # a close of the user's own: the user holds the handle
    "closable": "it stays paused and can be closed again",
    # a driver gave up on it, the collector or exit let go of it: the library keeps it
    "kept": "the library keeps it and unwinds it as soon as its engine signals",
    # the user's close of a job the library keeps
    "kept, closable": "it stays paused, kept by the library, which unwinds it as soon as its "
    "engine signals; it can also be closed again",
}


def stuck_message(limit: float, afterwards: str) -> str:
    """Why a close gave up after ``limit`` seconds, and what happens to the job next."""
    return (
        f"the job did not finish unwinding within {limit:.3g} s: it is paused inside C code whose engine "
        f"has not completed; {AFTERWARDS[afterwards]}"
    )


def note(exc: BaseException, text: str) -> bool:
    """Attach ``text`` to ``exc`` as a note (3.11+); False where notes do not exist."""
    add_note = getattr(exc, "add_note", None)
    if add_note is None:
        return False
    add_note(text)
    return True


def poll_readable(fd: int, timeout: Optional[float]) -> bool:
    """Whether ``fd`` is readable (poll(2); select(2) only where there is no poll)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))
    return bool(select.select([fd], [], [], timeout)[0])  # pragma: no cover - Windows


class Backoff:
    """While closing: how long to wait at most for an engine before resuming the job anyway.

    A closing job is resumed when its engine signals (an fd readable, the
    callback called). Where the close may not hear the signal, or the engine
    left nothing to wait on, it resumes on a growing interval instead, from
    ``FIRST`` (the first retry of nothing-to-wait-on is immediate) up to
    ``LIMIT`` seconds; a real signal starts the interval over.
    """

    __slots__ = ("delay",)

    FIRST = 0.001
    LIMIT = 0.1

    def __init__(self) -> None:
        self.delay = 0.0

    def reset(self) -> None:
        self.delay = 0.0

    def next(self, at_least: float = 0.0) -> float:
        """The next interval (then the one after doubles, up to ``LIMIT``)."""
        delay = max(self.delay, at_least)
        self.delay = min(max(delay * 2, self.FIRST), self.LIMIT)
        return delay

    def limit(self, action: int, watch: Optional[PauseWatch]) -> Optional[float]:
        """How long a close may wait after ``action`` before resuming; ``None``: until a wait fd
        is readable (fds are always heard), ``0``: resume now."""
        if action == RESUME:
            self.reset()
            return 0.0
        if action == WAIT and watch is not None and watch.status != _STATUS_OK:
            return None
        if action == WAIT:  # a promised callback: maybe one the close cannot hear
            return self.next(self.FIRST)
        return self.next()  # EAGAIN, ERR, or nothing to wait on


class Handover(NamedTuple):
    """What a driver's watch hands to whoever goes on waiting for its job (:meth:`PauseWatch.hand_over`)."""

    slot: Any
    previous: Optional[Tuple[Callable[[Any], Any], Any]]
    owns_ctx: bool
    fired: bool
    status: int


class PauseWatch:
    """One job's wait state between ``start_job`` calls (see the module docstring).

    ``closing``: the job is being closed; ``ASYNC_STATUS_ERR`` then means resume,
    not close. Shells override ``_watch``/``_unwatch`` (fd registrations) and
    ``_wake`` (a callback came: runs on the driver's thread, from
    :meth:`Notifier.drain`).
    """

    def __init__(self, ctx: WaitCtx, notifier: Notifier, *, owns_ctx: bool = False, closing: bool = False) -> None:
        self.ctx = ctx
        self.notifier = notifier
        self.owns_ctx = owns_ctx
        self.closing = closing
        #: fd -> how many live entries of the context hold it (watched while > 0)
        self.watched: Dict[int, int] = {}
        self._synced = False
        #: the callback came since the job was last resumed
        self.fired = False
        #: the status the engine set for the current pause
        self.status = _STATUS_UNSUPPORTED
        self._previous: Optional[Tuple[Callable[[Any], Any], Any]] = None
        self._slot: Any = None
        self.finished = False

    # -- the callback -------------------------------------------------------------

    def install(self) -> None:
        """Route the context's callback to this watch (keeping the caller's to chain)."""
        ctx = self.ctx
        if not self.owns_ctx:
            self._previous = ctx.get_callback()
            if not self.closing and ctx.get_status() != _STATUS_UNSUPPORTED:
                ctx.set_status(_STATUS_UNSUPPORTED)  # a value left from before (closing: the engine's request)
        slot = self.notifier.register(self)
        try:
            fn, arg = self.notifier.callback_for(ctx, slot)
            ctx.set_callback(fn, arg)
        except BaseException:
            self.notifier.unregister(slot)
            raise
        self._slot = slot

    def notified(self) -> None:
        """Our callback was called (seen by a drain on the driver's thread)."""
        if self.finished:
            return
        self.fired = True
        previous = self._previous
        if previous is not None:
            try:
                previous[0](previous[1])
            except BaseException as exc:  # noqa: BLE001 - the caller's callback; nobody to raise to
                report_unraisable(exc, "Exception ignored in the WaitCtx's previous callback", previous[0])
        self._wake()

    def _wake(self) -> None:
        """Shells: wake whoever waits (the blocking shell is the one draining: nothing to do)."""

    # -- fds ------------------------------------------------------------------------

    def _watch(self, fd: int) -> None:
        raise NotImplementedError

    def _unwatch(self, fd: int) -> None:
        raise NotImplementedError

    def sync_fds(self) -> None:
        """Bring the watched fds in step with the context after a ``PAUSE``."""
        ctx = self.ctx
        if not self._synced:
            self._synced = True
            added: List[int] = ctx.get_all_fds()
            deleted: List[int] = []
        else:
            added, deleted = ctx.get_changed_fds()
            if not added and not deleted:
                return
        watched = self.watched
        for fd in deleted:  # first: a number closed and reused is in both lists
            count = watched.get(fd, 0)
            if count > 1:
                watched[fd] = count - 1
            elif count == 1:
                del watched[fd]
                self._unwatch(fd)
        for fd in added:
            count = watched.get(fd, 0)
            watched[fd] = count + 1
            if not count:
                try:
                    self._watch(fd)
                except (OSError, ValueError) as exc:
                    del watched[fd]
                    raise AsyncError(f"cannot wait on wait fd {fd}: {exc}") from exc

    def unwatch_all(self) -> None:
        watched, self.watched = self.watched, {}
        for fd in watched:
            try:
                self._unwatch(fd)
            except (OSError, ValueError):  # pragma: no cover - closed under us
                pass

    # -- decisions --------------------------------------------------------------------

    def after_pause(self) -> int:
        """``RESUME``, ``RETRY`` or ``WAIT``; ``AsyncError`` on ``ASYNC_STATUS_ERR`` (not when closing)."""
        self.notifier.drain()  # a callback made inside the job, just before it paused
        self.sync_fds()
        self.status = status = self.ctx.get_status()
        if status == _STATUS_ERR and not self.closing:
            raise AsyncError(
                "the job's engine set ASYNC_STATUS_ERR (a fatal problem with this request); the job was closed"
            )
        if self.fired:
            return RESUME
        if status == _STATUS_EAGAIN or status == _STATUS_ERR:
            return RETRY
        if status == _STATUS_OK or self.watched:
            return WAIT
        return RETRY

    def before_resume(self) -> None:
        """After a wait: ``ERR`` set meanwhile is fatal (not when closing); the status is reset."""
        status = self.ctx.get_status()
        if status == _STATUS_ERR and not self.closing:
            raise AsyncError(
                "the job's engine set ASYNC_STATUS_ERR (a fatal problem with this request); the job was closed"
            )
        if status != _STATUS_UNSUPPORTED and not (self.closing and status == _STATUS_OK and not self.fired):
            # (closing: a callback promised and not come yet stays promised across the early resume)
            self.ctx.set_status(_STATUS_UNSUPPORTED)
        self.fired = False

    def hand_over(self) -> Handover:
        """Give up this watch's job to another watch (a job the driver gave up on that the
        library keeps): its callback registration (the engine may already hold its
        token), the context's ownership and the callback to give back; what is left
        for :meth:`finish` is to unwatch the fds."""
        handover = Handover(self._slot, self._previous, self.owns_ctx, self.fired, self.status)
        self._slot = None
        self._previous = None
        self.owns_ctx = False
        return handover

    def adopt(self, handover: Handover) -> None:
        """Take over what another watch of this thread handed over (instead of :meth:`install`)."""
        self._previous = handover.previous
        self.owns_ctx = handover.owns_ctx
        self.fired = handover.fired
        self.status = handover.status
        slot = handover.slot
        if slot is not None and self.notifier.adopt(slot, self):
            self._slot = slot
        else:  # (a slot of another thread's notifier: cannot happen) a registration of our own
            self.install()

    def finish(self) -> Optional[BaseException]:
        """Unwatch, give the context its callback back (or close it); the first error seen."""
        self.finished = True
        failure: Optional[BaseException] = None
        self.unwatch_all()
        ctx = self.ctx
        try:
            if self.owns_ctx:
                # a job whose close timed out still uses it: it goes when that job ends
                getattr(ctx, "close_when_unused", ctx.close)()
            elif self._slot is not None and not ctx.closed:
                previous = self._previous
                if previous is None:
                    ctx.set_callback(None)
                else:
                    ctx.set_callback(previous[0], previous[1])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure = exc
        finally:
            if self._slot is not None:
                self.notifier.unregister(self._slot)
                self._slot = None
        return failure


def paused(job: Optional[Job]) -> bool:
    return job is not None and job.state == "paused"
