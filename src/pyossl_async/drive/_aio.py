"""The asyncio shell: ``await pyossl_async.aio.run_job(func, args)``.

Each call starts ``func(args)`` in a job on the loop's thread and drives it to
the end with :class:`~._core.PauseWatch`'s decisions. While the job is paused
the task awaits: the context's wait fds through ``loop.add_reader`` (one reader
per fd for all jobs on the loop), the wait-ctx callback through the loop
thread's callback pipe (:mod:`._notify`, one reader per loop). Every start and
resume happens on the loop's thread, as OpenSSL requires.

* Fairness: after every pause the task yields to the loop at least once, even
  when the job could go on at once (``EAGAIN``, nothing to wait on, or a
  callback that came before the pause), so other tasks, timeouts and
  cancellations get their turn.
* Cancellation (``task.cancel()``, ``asyncio.wait_for``/``asyncio.timeout``)
  closes the job without blocking the loop: it is resumed with ``JobCancelled``
  pending, as often as its C code needs, awaiting its engine in between; then
  the task ends with ``CancelledError``. More cancellations meanwhile do not cut
  that short; ``DEFAULT_CLOSE_TIMEOUT`` bounds it (the job then stays paused
  and the loop's exception handler is told).
* ``NO_JOBS`` from a full pool (``init_thread(max_size=...)`` on the loop's
  thread) waits until another job this module runs on the same loop finishes;
  with no such job in flight it raises ``AsyncError``.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import Any, Callable, Deque, Dict, Optional, Set, Union

from .._constants import Status
from .._errors import AsyncError
from .._protocol import Backend, Job, WaitCtx
from . import _blocking
from ._blocking import close_quietly
from ._core import WAIT, PauseWatch, check_timeout, poll_readable, resolve, start_failed
from ._notify import Notifier, notifier

__all__ = ["run_job"]


class _LoopState:
    """Per event loop: one reader per fd for all jobs, the callback pipe's reader, pool slots."""

    __slots__ = ("__weakref__", "in_flight", "loop", "notifier", "readers", "slot_waiters", "users")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: fd -> the watches waiting on it (one add_reader per fd)
        self.readers: Dict[int, Set[_AioWatch]] = {}
        #: run_job calls running on this loop
        self.users = 0
        #: backend name -> jobs of ours paused on this loop (each holds a pool job)
        self.in_flight: Dict[str, int] = {}
        self.slot_waiters: Dict[str, Deque[asyncio.Future[None]]] = {}
        self.notifier: Notifier = notifier()
        loop.add_reader(self.notifier.r, self.notifier.drain)

    def close(self) -> None:
        try:
            self.loop.remove_reader(self.notifier.r)
        except (OSError, ValueError, RuntimeError):  # pragma: no cover - the loop is closed
            pass

    def watch(self, fd: int, watch: _AioWatch) -> None:
        watches = self.readers.get(fd)
        if watches is None:
            self.loop.add_reader(fd, self._ready, fd)
            self.readers[fd] = {watch}
        else:
            watches.add(watch)

    def unwatch(self, fd: int, watch: _AioWatch) -> None:
        watches = self.readers.get(fd)
        if watches is None:
            return
        watches.discard(watch)
        if not watches:
            del self.readers[fd]
            try:
                self.loop.remove_reader(fd)
            except (OSError, ValueError, RuntimeError):  # pragma: no cover - closed under us
                pass

    def _ready(self, fd: int) -> None:
        watches = self.readers.get(fd)
        if watches:
            for watch in tuple(watches):
                watch.wake(fd)

    async def wait_for_slot(self, name: str) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.slot_waiters.setdefault(name, collections.deque()).append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release_slot(name)  # woken, then cancelled: pass the slot on
            raise

    def release_slot(self, name: str) -> None:
        waiters = self.slot_waiters.get(name)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


#: loop -> its state; weak both ways, so an abandoned loop takes its jobs' drivers with it
_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]" = weakref.WeakKeyDictionary()


def _enter(loop: asyncio.AbstractEventLoop) -> _LoopState:
    state = _states.get(loop)
    if state is None:
        state = _states[loop] = _LoopState(loop)
    state.users += 1
    return state


def _leave(state: _LoopState) -> None:
    state.users -= 1
    if state.users == 0 and not state.readers:
        if _states.get(state.loop) is state:
            del _states[state.loop]
        state.close()


class _AioWatch(PauseWatch):
    def __init__(self, ctx: WaitCtx, state: _LoopState, *, owns_ctx: bool = False, closing: bool = False) -> None:
        super().__init__(ctx, state.notifier, owns_ctx=owns_ctx, closing=closing)
        self.state = state
        self.loop = state.loop
        self.waiter: Optional[asyncio.Future[Optional[int]]] = None

    def _watch(self, fd: int) -> None:
        self.state.watch(fd, self)

    def _unwatch(self, fd: int) -> None:
        self.state.unwatch(fd, self)

    def _wake(self) -> None:
        self.wake(None)

    def wake(self, fd: Optional[int]) -> None:
        """An fd is readable (``fd``) or the callback came (``None``)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(fd)

    async def wait(self, deadline: Optional[float] = None) -> bool:
        """Until a watched fd is readable or the callback came; False at ``deadline`` (loop time)."""
        while not self.fired:
            waiter = self.waiter = self.loop.create_future()
            timer = None
            if deadline is not None:
                timer = self.loop.call_at(deadline, _time_out, waiter)
            try:
                fd = await waiter
            finally:
                self.waiter = None
                if timer is not None:
                    timer.cancel()
            if fd is _TIMED_OUT:
                return False
            if fd is None or poll_readable(fd, 0):
                return True
            # The loop polled the fd before the job's last segment drained it and
            # reported it afterwards: stale. Resuming now would be early.
        return True


_TIMED_OUT: Any = -1


def _time_out(waiter: asyncio.Future[Optional[int]]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


async def run_job(
    func: Callable[[Any], Any],
    args: Any = None,
    *,
    backend: Union[Backend, str, None] = None,
    ctx: Optional[WaitCtx] = None,
    close_timeout: Optional[float] = None,
) -> Any:
    """Run ``func(args)`` in a job on the running loop's thread; its result.

    ``backend`` and ``ctx`` as for ``pyossl_async.run_job``. Raises the job's own
    exception; ``AsyncError`` for ``NO_JOBS``/``ERR`` and ``ASYNC_STATUS_ERR``.
    Cancelling the task closes the job (see the module documentation), taking
    at most ``close_timeout`` seconds (default ``DEFAULT_CLOSE_TIMEOUT``).
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    loop = asyncio.get_running_loop()
    check_timeout(close_timeout, "close_timeout")
    be, wctx, owns = resolve(backend, ctx)
    state = _enter(loop)
    watch = _AioWatch(wctx, state, owns_ctx=owns)
    name = be.name
    counted = False
    job: Optional[Job] = None
    try:
        watch.install()
        while True:
            status, job, ret = be.start_job(None, wctx, func, args)
            if status == Status.NO_JOBS and state.in_flight.get(name, 0) > 0:
                await state.wait_for_slot(name)
                continue
            break
        if status == Status.PAUSE:
            state.in_flight[name] = state.in_flight.get(name, 0) + 1
            counted = True
        while status == Status.PAUSE:
            if watch.after_pause() == WAIT:
                await watch.wait()
            else:
                await asyncio.sleep(0)  # never resume without giving the loop a turn
            watch.before_resume()
            status, job, ret = be.start_job(job, wctx, None)
        job = None
        if status != Status.FINISH:
            raise start_failed(be, status)
        failure = watch.finish()  # before _leave: the loop state goes once nothing is watched
        if failure is not None:
            raise failure
        return ret
    except BaseException as exc:
        if job is not None and job.state == "paused":
            if isinstance(exc, (Exception, asyncio.CancelledError)):
                failure = await _unwind(be, job, state, close_timeout)
            else:  # GeneratorExit (the coroutine is being closed), KeyboardInterrupt: no awaiting
                failure = close_quietly(job, close_timeout)
            if failure is not None:
                _report(loop, "Exception while closing a job aio.run_job() gave up on", failure)
        failure = watch.finish()
        if failure is not None:
            _report(loop, "Exception while releasing aio.run_job()'s WaitCtx", failure)
        raise
    finally:
        if counted:
            state.in_flight[name] -= 1
            state.release_slot(name)
        _leave(state)


def _report(loop: asyncio.AbstractEventLoop, message: str, exc: BaseException) -> None:
    loop.call_exception_handler({"message": message, "exception": exc})


async def _unwind(
    backend: Backend, job: Job, state: _LoopState, timeout: Optional[float] = None
) -> Optional[BaseException]:
    """Close ``job`` without blocking the loop (``drive._blocking.unwind``, awaiting);
    the exception its unwinding raised, if any (not JobCancelled)."""
    if timeout is None:
        timeout = _blocking.DEFAULT_CLOSE_TIMEOUT
    be: Any = backend
    record = job._record
    try:
        thread = be._close_checks(record)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        return exc
    loop = state.loop
    deadline = loop.time() + timeout
    watch: Optional[_AioWatch] = None
    try:
        while True:
            if be._cancel_step(thread, record, job):
                return None
            if watch is None:
                watch = _AioWatch(record.ctx, state, closing=True)
                watch.install()
            go_on = watch.after_pause() != WAIT
            while True:  # more cancellations do not cut the unwinding short
                try:
                    if go_on:
                        if loop.time() >= deadline:
                            go_on = False
                            raise AsyncError(
                                f"the job did not finish unwinding within {timeout:g} s; "
                                f"it stays paused and can be closed again"
                            )
                        await asyncio.sleep(0)
                    else:
                        go_on = await watch.wait(deadline)
                        if not go_on:
                            raise AsyncError(
                                f"the job did not finish unwinding within {timeout:.3g} s: it is paused inside "
                                f"C code whose engine has not completed; it stays paused and can be closed again"
                            )
                    break
                except asyncio.CancelledError:
                    continue
            watch.before_resume()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        be._cancel_abort(thread, record)
        return exc
    finally:
        if watch is not None:
            failure = watch.finish()
            if failure is not None:
                _report(loop, "Exception while restoring a closed job's WaitCtx", failure)
