"""The trio shell: ``await pyossl_async.trio.run_job(func, args)``.

The same drive loop as the asyncio shell, on :class:`~pyossl_async._wait.watch.PauseWatch`'s
decisions, with trio's primitives:

* Waits: trio lets one task at a time wait for an fd to be readable, and jobs
  may share fds (two jobs on one context, the thread's callback pipe). So each
  trio run has one system task reading the callback pipe, and one short-lived
  system task per fd that some job is waiting on, which wakes every job waiting
  on it. A task of the application's own already reading the same fd makes the
  job's wait fail with ``AsyncError`` (``trio.BusyResourceError`` as its cause).
* Fairness: after every pause the task passes a checkpoint, so other tasks and
  cancellations get their turn.
* Cancellation (a cancel scope, ``trio.move_on_after``, ``trio.fail_after``)
  closes the job: it is resumed with ``JobCancelled`` pending, as often as its
  C code needs, under a shielded scope bounded by ``close_timeout``; then
  ``trio.Cancelled`` propagates as trio expects. A job that does not get back to
  Python in time is reported once (``sys.unraisablehook``) and kept by the
  library (``backends/_keeper.py``).
* ``timeout=``: past it the job is closed and ``TimeoutError`` is raised.
* ``NO_JOBS`` from a full pool waits until another job this module runs in the
  same trio run finishes; with no such job in flight it raises ``AsyncError``.

All of it runs on the trio run's thread, as OpenSSL requires.
"""

from __future__ import annotations

import collections
import math
import os
from typing import Any, Awaitable, Callable, Deque, Dict, Optional, Set, TypeVar, cast

import trio

from .._errors import AsyncError
from .._protocol import BackendArg, WaitCtx
from .._unraisable import report_unraisable
from .._wait.notify import Notifier, notifier
from .._wait.watch import check_timeout, poll_readable
from ._async import AsyncWatch, Shell, drive
from ._core import resolve

__all__ = ["run_job"]

_T = TypeVar("_T")


class _FdHub:
    """The jobs waiting on one fd, and the system task that waits for it for them."""

    __slots__ = ("error", "fd", "scope", "waiting")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.waiting: Set[_TrioWatch] = set()
        self.scope = trio.CancelScope()
        self.error: Optional[BaseException] = None


class _RunState(Shell):
    """Per trio run (a ``RunVar``; the shell of :mod:`._async`): the callback pipe's
    reader, fd hubs, pool slots."""

    driver = "trio.run_job()"

    def __init__(self) -> None:
        super().__init__()
        self.notifier: Notifier = notifier()
        self.hubs: Dict[int, _FdHub] = {}
        self.slot_waiters: Dict[str, Deque[trio.Event]] = {}
        trio.lowlevel.spawn_system_task(self._pump, name="pyossl_async wait-ctx callback pipe")

    # -- the shell ------------------------------------------------------------------

    def now(self) -> float:
        return trio.current_time()

    def new_watch(self, ctx: WaitCtx, *, owns_ctx: bool = False, closing: bool = False) -> AsyncWatch:
        return _TrioWatch(ctx, self, owns_ctx=owns_ctx, closing=closing)

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    def is_cancellation(self, exc: BaseException) -> bool:
        return isinstance(exc, trio.Cancelled)

    async def uncancellable(self, step: Callable[[], Awaitable[_T]]) -> _T:
        with trio.CancelScope(shield=True):
            return await step()
        raise AssertionError("unreachable: a shielded scope is not cancelled")  # pragma: no cover

    def report(self, message: str, exc: BaseException, func: Any) -> None:
        report_unraisable(exc, message.replace("Exception while", "Exception ignored while", 1), func)

    async def _pump(self) -> None:
        notifier = self.notifier
        while not notifier.closed:
            await trio.lowlevel.wait_readable(notifier.r)
            notifier.drain()

    # -- fds ------------------------------------------------------------------------

    def want(self, fd: int, watch: _TrioWatch) -> None:
        hub = self.hubs.get(fd)
        if hub is None:
            hub = self.hubs[fd] = _FdHub(fd)
            trio.lowlevel.spawn_system_task(self._wait_fd, hub, name=f"pyossl_async wait fd {fd}")
        hub.waiting.add(watch)

    def unwant(self, fd: int, watch: _TrioWatch) -> None:
        hub = self.hubs.get(fd)
        if hub is None:
            return
        hub.waiting.discard(watch)
        if not hub.waiting:
            del self.hubs[fd]
            hub.scope.cancel()  # (trio withdraws the fd's registration at once)

    async def _wait_fd(self, hub: _FdHub) -> None:
        try:
            with hub.scope:
                try:
                    await trio.lowlevel.wait_readable(hub.fd)
                except (OSError, trio.BusyResourceError) as exc:
                    hub.error = exc
                for watch in tuple(hub.waiting):
                    watch.wake(hub.fd, hub.error)
        finally:
            if self.hubs.get(hub.fd) is hub:
                del self.hubs[hub.fd]

    # -- pool slots (NO_JOBS) ---------------------------------------------------------

    async def wait_for_slot(self, name: str, deadline: float) -> None:
        event = trio.Event()
        self.slot_waiters.setdefault(name, collections.deque()).append(event)
        try:
            with trio.move_on_at(deadline):
                await event.wait()
            if not event.is_set():
                raise TimeoutError("no job of the thread's pool came free in time")
        except BaseException:
            if event.is_set():
                self.release_slot(name)  # woken, then cancelled: pass the slot on
            else:
                try:
                    self.slot_waiters[name].remove(event)
                except ValueError:  # pragma: no cover - already handed out
                    pass
            raise

    def release_slot(self, name: str) -> None:
        waiters = self.slot_waiters.get(name)
        if waiters:
            waiters.popleft().set()


_STATE: trio.lowlevel.RunVar[Optional[_RunState]] = trio.lowlevel.RunVar("pyossl_async_trio_state", None)


def _state() -> _RunState:
    state = _STATE.get()
    if state is None or state.notifier.closed:
        state = _RunState()
        _STATE.set(state)
    return state


class _TrioWatch(AsyncWatch):
    def __init__(self, ctx: WaitCtx, state: _RunState, *, owns_ctx: bool = False, closing: bool = False) -> None:
        super().__init__(ctx, state.notifier, owns_ctx=owns_ctx, closing=closing)
        self.state = state
        self.event: Optional[trio.Event] = None
        self.woken_fd: Optional[int] = None
        self.error: Optional[BaseException] = None

    def _watch(self, fd: int) -> None:
        os.fstat(fd)  # a bad fd fails here (AsyncError), not in a system task later

    def _unwatch(self, fd: int) -> None:
        pass  # waits register their fds only while they wait

    def _wake(self) -> None:
        self.wake(None, None)

    def wake(self, fd: Optional[int], error: Optional[BaseException]) -> None:
        event = self.event
        if event is not None and not event.is_set():
            self.woken_fd = fd
            self.error = error
            event.set()

    async def wait(self, deadline: float = math.inf) -> bool:
        """Until a watched fd is readable or the callback came; False at ``deadline`` (trio time)."""
        state = self.state
        with trio.move_on_at(deadline):
            while not self.fired:
                fds = tuple(self.watched)
                self.event = trio.Event()
                self.woken_fd = None
                self.error = None
                for fd in fds:
                    state.want(fd, self)
                try:
                    await self.event.wait()
                finally:
                    self.event = None
                    for fd in fds:
                        state.unwant(fd, self)
                if self.error is not None:
                    raise AsyncError(f"cannot wait on wait fd {self.woken_fd}: {self.error}") from self.error
                woken = cast(Optional[int], self.woken_fd)  # (set by wake() meanwhile)
                if woken is None or poll_readable(woken, 0):
                    return True
                # readable when trio looked, drained since (by the job, or another one): wait again
            return True
        return False


async def run_job(
    func: Callable[[Any], _T],
    args: Any = None,
    *,
    backend: BackendArg = None,
    ctx: Optional[WaitCtx] = None,
    timeout: Optional[float] = None,
    close_timeout: Optional[float] = None,
) -> _T:
    """Run ``func(args)`` in a job on the trio run's thread; what ``func`` returned (any value).

    ``backend`` and ``ctx`` as for ``pyossl_async.run_job``. ``timeout``: seconds
    for the whole call; past it the job is closed and ``TimeoutError`` is raised.
    Raises the job's own exception; ``AsyncError`` for ``NO_JOBS``/``ERR`` and
    ``ASYNC_STATUS_ERR``. Cancelling the task's scope closes the job (see the
    module documentation), taking at most ``close_timeout`` seconds (default
    ``DEFAULT_CLOSE_TIMEOUT``), then ``trio.Cancelled`` propagates.
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    limit = check_timeout(timeout)
    check_timeout(close_timeout, "close_timeout")
    state = _state()
    deadline = math.inf if limit is None else trio.current_time() + limit
    await trio.lowlevel.checkpoint_if_cancelled()
    # (no local of this frame holds the driver's context: a traceback keeps frames alive)
    result: _T = await drive(state, *resolve(backend, ctx), func, args, deadline, limit, close_timeout)
    return result
