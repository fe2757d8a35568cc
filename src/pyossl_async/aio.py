"""Jobs in asyncio: ``await pyossl_async.aio.run_job(func, args)``.

Each call starts ``func(args)`` in a job on the loop's thread and drives it to the
end. While the job is paused the task awaits: the context's wait fds are watched
with ``loop.add_reader`` (kept in step with ``get_changed_fds()`` at every
pause), and the wait-ctx callback the driver installs wakes it through
``loop.call_soon_threadsafe``, from whatever thread the engine calls it. Every
start and resume happens on the loop's thread, as OpenSSL requires, so any
number of jobs can be in flight on one loop; an fd watched by several jobs is
registered once and wakes all of them.

What is decided at each pause, and what happens at the end, is described in
``pyossl_async._drive``; differences from the blocking ``pa.run_job``:

* no ``timeout`` argument: use ``asyncio.wait_for``/``asyncio.timeout``;
  cancelling the task closes the job (``JobCancelled`` inside it) and the task
  ends with ``CancelledError``;
* a pause with nothing to wait on (or ``ASYNC_STATUS_EAGAIN``) yields to the loop
  once before resuming, so such a job cannot starve the others;
* ``NO_JOBS`` from a full pool (``init_thread(max_size=...)`` on the loop's
  thread) waits until another job this module runs on the same loop finishes,
  then tries again; with no such job in flight it raises ``AsyncError``. A pool
  size is therefore also a limit on how many jobs are in flight.

Works on any asyncio event loop, uvloop's included (not a dependency).
"""

from __future__ import annotations

import asyncio
import collections
from typing import Any, Callable, Deque, Dict, Optional, Set, Union

from ._constants import Status
from ._drive import RETRY, WAIT, JobDriver, poll_readable, resolve, start_failed
from ._protocol import Backend, WaitCtx

__all__ = ["run_job"]


class _LoopState:
    """Per event loop: one reader per fd for all jobs, pool slots per backend."""

    __slots__ = ("in_flight", "loop", "readers", "slot_waiters", "users")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        #: fd -> the drivers watching it (one add_reader per fd)
        self.readers: Dict[int, Set[_AioDriver]] = {}
        #: run_job calls running on this loop
        self.users = 0
        #: backend name -> jobs of ours paused on this loop (each holds a pool job)
        self.in_flight: Dict[str, int] = {}
        self.slot_waiters: Dict[str, Deque[asyncio.Future[None]]] = {}

    def watch(self, fd: int, driver: _AioDriver) -> None:
        drivers = self.readers.get(fd)
        if drivers is None:
            self.loop.add_reader(fd, self._ready, fd)
            self.readers[fd] = {driver}
        else:
            drivers.add(driver)

    def unwatch(self, fd: int, driver: _AioDriver) -> None:
        drivers = self.readers.get(fd)
        if drivers is None:
            return
        drivers.discard(driver)
        if not drivers:
            del self.readers[fd]
            try:
                self.loop.remove_reader(fd)
            except (OSError, ValueError):  # pragma: no cover - the fd was closed under us
                pass

    def _ready(self, fd: int) -> None:
        drivers = self.readers.get(fd)
        if drivers:
            for driver in tuple(drivers):
                driver.wake(fd)

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


_states: Dict[int, _LoopState] = {}


def _enter(loop: asyncio.AbstractEventLoop) -> _LoopState:
    state = _states.get(id(loop))
    if state is None or state.loop is not loop:
        state = _states[id(loop)] = _LoopState(loop)
    state.users += 1
    return state


def _leave(state: _LoopState) -> None:
    state.users -= 1
    if state.users == 0 and not state.readers:
        if _states.get(id(state.loop)) is state:
            del _states[id(state.loop)]


class _AioDriver(JobDriver):
    def __init__(
        self, backend: Backend, ctx: WaitCtx, owns_ctx: bool, state: _LoopState
    ) -> None:
        super().__init__(backend, ctx, owns_ctx)
        self.state = state
        self.loop = state.loop
        self.waiter: Optional[asyncio.Future[Optional[int]]] = None

    def _watch(self, fd: int) -> None:
        self.state.watch(fd, self)

    def _unwatch(self, fd: int) -> None:
        self.state.unwatch(fd, self)

    def _notify(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self._wake_for_callback)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def _wake_for_callback(self) -> None:
        if self.callback_pending:  # not a late call for a pause already over
            self.wake(None)

    def wake(self, fd: Optional[int]) -> None:
        """An fd is readable (``fd``) or the callback came (``None``)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(fd)

    async def wait(self) -> None:
        while not self.callback_pending:
            self.waiter = self.loop.create_future()
            try:
                fd = await self.waiter
            finally:
                self.waiter = None
            if fd is None or poll_readable(fd, 0):
                return
            # The loop polled the fd before the job's last segment drained it and
            # reported it afterwards: stale. Resuming now would be early.


async def run_job(
    func: Callable[[Any], int],
    args: Any = None,
    *,
    backend: Union[Backend, str, None] = None,
    ctx: Optional[WaitCtx] = None,
) -> int:
    """Run ``func(args)`` in a job on the running loop's thread; its ``int`` result.

    ``backend`` and ``ctx`` as for ``pyossl_async.run_job``. Raises the job's own
    exception; ``AsyncError`` for ``NO_JOBS``/``ERR`` and ``ASYNC_STATUS_ERR``.
    Cancelling the task closes the job.
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    loop = asyncio.get_running_loop()
    be, wctx, owns = resolve(backend, ctx)
    state = _enter(loop)
    driver = _AioDriver(be, wctx, owns, state)
    name = be.name
    counted = False
    try:
        driver.install_callback()
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
            driver.job = job
            action = driver.after_pause()
            if action == WAIT:
                await driver.wait()
            elif action == RETRY:
                await asyncio.sleep(0)
            driver.before_resume()
            status, job, ret = be.start_job(job, wctx, None)
            driver.job = None
        if status != Status.FINISH:
            raise start_failed(be, status)
        assert ret is not None
        return ret
    except BaseException:
        failure = driver.finish()
        if failure is not None:
            loop.call_exception_handler(
                {
                    "message": "Exception while closing a job aio.run_job() gave up on",
                    "exception": failure,
                }
            )
        raise
    finally:
        try:
            if not driver.finished:
                failure = driver.finish()
                if failure is not None:
                    raise failure
        finally:
            if counted:
                state.in_flight[name] -= 1
                state.release_slot(name)
            _leave(state)
