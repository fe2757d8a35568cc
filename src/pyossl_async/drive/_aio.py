"""The asyncio shell: ``await pyossl_async.aio.run_job(func, args)``.

Each call starts ``func(args)`` in a job on the loop's thread and drives it to
the end with :mod:`._async`'s loop (the one the trio shell runs too) on
:class:`~pyossl_async._wait.watch.PauseWatch`'s decisions. While the job is paused
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
  that short; ``close_timeout`` (default ``DEFAULT_CLOSE_TIMEOUT``) bounds it (the
  loop's exception handler is then told, once, and the library keeps the job and
  unwinds it once its engine signals: ``backends/_keeper.py``).
* Bursts: starts and resumes take turns, about ``SLICE_SECONDS`` of them per
  loop iteration, first come first served; the rest wait for the next
  iteration. Two thousand calls at once do not stall the loop for longer than
  as many plain coroutines would, and a cancel lands before a queued job starts.
* ``timeout=``: a deadline for the whole call; past it the job is closed as on
  cancellation and :data:`JobTimeoutError` (``TimeoutError``, and an
  ``asyncio.TimeoutError`` on every version) is raised.
* :func:`set_job_limit`: at most so many jobs in flight on the loop; further
  calls wait their turn before starting.
* ``NO_JOBS`` from a full pool (``init_thread(max_size=...)`` on the loop's
  thread) waits until another job this module runs on the same loop finishes;
  with no such job in flight it raises ``AsyncError``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextvars
import math
import sys
import time
import weakref
from typing import Any, Awaitable, Callable, Deque, Dict, Optional, Set, TypeVar

from .._protocol import Backend, BackendArg, StartResult, WaitCtx
from .._unraisable import report_unraisable
from .._wait.notify import Notifier, notifier
from .._wait.watch import check_timeout, poll_readable
from ._async import AsyncWatch, Shell, drive
from ._core import resolve

__all__ = ["SLICE_SECONDS", "JobTimeoutError", "await_coroutine", "get_job_limit", "run_job", "set_job_limit"]

_T = TypeVar("_T")
#: the loop driving the job, weakly: set around start_job, so a job's context copy has
#: it. Weakly: a paused job's context is a root the collector cannot see through, and an
#: event loop dropped with its tasks pending must still be collected (its jobs unwound)
_DRIVING_LOOP: contextvars.ContextVar[Optional[weakref.ref[asyncio.AbstractEventLoop]]] = contextvars.ContextVar(
    "pyossl_async_driving_loop", default=None
)


if sys.version_info >= (3, 11):
    JobTimeoutError = TimeoutError
else:

    class JobTimeoutError(asyncio.TimeoutError, TimeoutError):
        """``aio.run_job(timeout=...)`` ran out: both ``asyncio.TimeoutError`` and ``TimeoutError``
        (the same class from Python 3.11 on)."""


#: how much job work (starts and resumes) one loop iteration runs before the rest
#: waits for the next iteration, in seconds: bursts of jobs do not stall the loop
SLICE_SECONDS = 0.005


class _Turns:
    """First come, first served turns for job steps, about ``SLICE_SECONDS`` of them per loop iteration.

    Only the steps themselves (``start_job`` calls) count against the slice. A
    step that arrives once this iteration's slice is used up, or while others
    wait, waits for a later iteration; each iteration hands out as many turns as
    the measured cost of a step says fit.
    """

    __slots__ = ("__weakref__", "_loop", "cost", "scheduled", "spent", "started", "steps", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)
        self.spent = 0.0  # seconds of steps in this iteration
        self.steps = 0
        self.started = 0.0  # perf_counter at the start of the step in progress
        #: seconds per step, averaged over the last iterations (remembered per loop)
        self.cost = _step_costs.get(loop, 50e-6)
        self.scheduled = False
        self.waiters: Deque[asyncio.Future[None]] = collections.deque()

    async def take(self) -> None:
        """Until this task may run a job step (at once while the slice lasts)."""
        if not self.waiters and self.spent < SLICE_SECONDS:
            self._mark()
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        if not self.scheduled:  # pragma: no cover - a slice was used, so its end is scheduled
            self._schedule()
        await waiter  # (cancelled: the future is done and skipped when turns are handed out)
        self._mark()

    def done(self) -> None:
        """The step that :meth:`take` allowed is over."""
        if self.started:
            self.spent += time.perf_counter() - self.started
            self.steps += 1
            self.started = 0.0

    def _mark(self) -> None:
        self.started = time.perf_counter()
        if not self.scheduled:
            self._schedule()

    def _schedule(self) -> None:
        loop = self._loop()
        if loop is not None:
            self.scheduled = True
            loop.call_soon(self._next_slice)

    def _next_slice(self) -> None:
        """An iteration has passed: hand the next slice's turns out."""
        self.scheduled = False
        if self.steps:
            self.cost = 0.5 * self.cost + 0.5 * max(self.spent / self.steps, 1e-6)
            loop = self._loop()
            if loop is not None:
                _step_costs[loop] = self.cost
        self.spent = 0.0
        self.steps = 0
        grants = max(1, int(SLICE_SECONDS / self.cost))
        waiters = self.waiters
        while grants and waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                grants -= 1
        if waiters:  # the rest: next iteration (even if every granted task is cancelled meanwhile)
            self._schedule()


class _LoopState(Shell):
    """Per event loop (the shell of :mod:`._async`): one reader per fd for all jobs,
    the callback pipe's reader, turns for job steps, pool slots and the job limit.

    The loop owns its state, as it owns its tasks: the state is reachable only
    through the loop's reader of the callback pipe (and the frames of its
    ``run_job`` calls), never from a module-level table. So a loop that is
    closed and dropped with jobs in flight is garbage along with its tasks and
    their jobs (whose drivers then close them), while a live loop keeps every
    task driving a job reachable (``tasks``), as a task awaiting an executor's
    future is: one waiting for its job's callback is never collected while
    pending, and ``asyncio.run`` finds and cancels it at its end.
    """

    timeout_error = JobTimeoutError
    driver = "aio.run_job()"

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        #: fd -> the watches waiting on it (one add_reader per fd)
        self.readers: Dict[int, Set[_AioWatch]] = {}
        #: run_job calls running on this loop
        self.users = 0
        #: run_job calls admitted under the job limit and not over
        self.active = 0
        self.admit_waiters: Deque[asyncio.Future[None]] = collections.deque()
        self.slot_waiters: Dict[str, Deque[asyncio.Future[None]]] = {}
        #: the tasks of the run_job calls in flight (see the class docstring)
        self.tasks: Set[asyncio.Future[Any]] = set()
        self.turns = _Turns(loop)
        self.notifier: Notifier = notifier()
        # the loop's reader is what keeps the state alive (see _Anchor)
        loop.add_reader(self.notifier.r, _Anchor(self))

    def abandoned(self) -> None:
        """The loop was closed with jobs in flight: close them now, on the closing thread.

        Their tasks can never run again. Left to the garbage collector, their jobs
        would be closed whenever a collection finds them, on whatever thread runs
        it (a job can only be closed by the thread that started it) or after the
        loop's thread has gone (the job is then orphaned, never unwound). Closing
        each task's coroutine is what that collection would do, done at once.
        """
        tasks, self.tasks = list(self.tasks), set()
        for task in tasks:
            if task.done():
                continue
            coro: Any = getattr(task, "get_coro", lambda: None)()
            if coro is None:  # pragma: no cover - a task class without get_coro()
                continue
            try:
                coro.close()  # GeneratorExit in run_job: the driver closes its job
            except BaseException as exc:  # noqa: BLE001 - loop.close() has nobody to raise it to
                report_unraisable(exc, "Exception while closing a job of an event loop closed with it in flight", coro)

    # -- the shell ------------------------------------------------------------------

    def now(self) -> float:
        return self.loop.time()

    def new_watch(self, ctx: WaitCtx, *, owns_ctx: bool = False, closing: bool = False) -> AsyncWatch:
        return _AioWatch(ctx, self, owns_ctx=owns_ctx, closing=closing)

    async def checkpoint(self) -> None:
        await asyncio.sleep(0)

    async def take_turn(self) -> None:
        await self.turns.take()

    def turn_done(self) -> None:
        self.turns.done()

    def start(self, backend: Backend, ctx: WaitCtx, func: Callable[[Any], int], args: Any) -> StartResult:
        token = _DRIVING_LOOP.set(weakref.ref(self.loop))  # the job copies this context at its start
        try:
            return backend.start_job(None, ctx, func, args)
        finally:
            _DRIVING_LOOP.reset(token)

    def is_cancellation(self, exc: BaseException) -> bool:
        return isinstance(exc, asyncio.CancelledError)

    async def uncancellable(self, step: Callable[[], Awaitable[_T]]) -> _T:
        while True:
            try:
                return await step()
            except asyncio.CancelledError:
                continue  # more cancellations do not cut the unwinding short

    def report(self, message: str, exc: BaseException, func: Any) -> None:
        self.loop.call_exception_handler({"message": message, "exception": exc})

    # -- fds ------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.loop.remove_reader(self.notifier.r)
        except (OSError, ValueError, RuntimeError):  # pragma: no cover - the loop is closed
            pass

    def watch_fd(self, fd: int, watch: _AioWatch) -> None:
        watches = self.readers.get(fd)
        if watches is None:
            self.loop.add_reader(fd, self._ready, fd)
            self.readers[fd] = {watch}
        else:
            watches.add(watch)

    def unwatch_fd(self, fd: int, watch: _AioWatch) -> None:
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

    # -- the job limit (set_job_limit) ------------------------------------------------

    async def admit(self, deadline: float) -> None:
        """Until this call may start its job under the loop's job limit; counts it as active."""
        limit = _limits.get(self.loop)
        if limit is None or (self.active < limit and not self.admit_waiters):
            self.active += 1
            return
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.admit_waiters.append(waiter)
        try:
            if not await _until(self.loop, waiter, deadline):
                raise _timeout_error(f"no job slot came free under the job limit of {limit}")
        except BaseException:
            if _granted(waiter):
                self.active -= 1  # admitted, then cancelled: pass the place on
                self.admit_next()
            else:
                waiter.cancel()
            raise

    def discharge(self) -> None:
        """An admitted call is over."""
        self.active -= 1
        self.admit_next()

    def admit_next(self) -> None:
        limit = _limits.get(self.loop)
        waiters = self.admit_waiters
        while waiters and (limit is None or self.active < limit):
            waiter = waiters.popleft()
            if not waiter.done():
                self.active += 1
                waiter.set_result(None)

    # -- pool slots (NO_JOBS) ---------------------------------------------------------

    async def wait_for_slot(self, name: str, deadline: float) -> None:
        waiter: asyncio.Future[None] = self.loop.create_future()
        self.slot_waiters.setdefault(name, collections.deque()).append(waiter)
        try:
            if not await _until(self.loop, waiter, deadline):
                raise _timeout_error("no job of the thread's pool came free")
        except BaseException:
            if _granted(waiter):
                self.release_slot(name)  # woken, then cancelled: pass the slot on
            else:
                waiter.cancel()
            raise

    def release_slot(self, name: str) -> None:
        waiters = self.slot_waiters.get(name)
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class _Anchor:
    """The loop's reader of the thread's callback pipe, and the state's one strong owner.

    Only the loop holds it (in the reader registration), so it dies exactly when
    the loop lets the reader go: at ``remove_reader`` once no job is left, or when
    the loop is closed. Dying with jobs still in flight on a closed loop, it
    closes them (:meth:`_LoopState.abandoned`).
    """

    __slots__ = ("state",)

    def __init__(self, state: _LoopState) -> None:
        self.state = state

    def __call__(self) -> None:
        self.state.notifier.drain()

    def __del__(self) -> None:
        state = self.state
        try:
            if state.tasks and state.loop.is_closed():
                state.abandoned()
        except BaseException as exc:  # noqa: BLE001 - a finaliser: nobody to raise it to
            report_unraisable(exc, "Exception while closing the jobs of a closed event loop")


def _granted(waiter: asyncio.Future[Any]) -> bool:
    """Whether ``waiter`` was woken by the one it waited for (not cancelled, not timed out)."""
    return waiter.done() and not waiter.cancelled() and waiter.result() is not _TIMED_OUT


async def _until(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[Any], deadline: float) -> bool:
    """Await ``waiter``; False if ``deadline`` (loop time) came first."""
    if deadline == math.inf:
        await waiter
        return True
    timer = loop.call_at(deadline, _expire, waiter)
    try:
        outcome: Any = await waiter
        return outcome is not _TIMED_OUT
    finally:
        timer.cancel()


#: loop -> its state, weakly both ways: nothing here may keep a loop (or its tasks) alive.
#: (A weak-keyed table whose value refers to its key makes the key immortal: the state
#: holds the loop and futures of the loop, hence the weak reference to it.)
_states: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.ref[_LoopState]]" = (
    weakref.WeakKeyDictionary()
)
#: loop -> the measured cost of a job step on it (a loop state goes whenever no job is left)
_step_costs: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, float]" = weakref.WeakKeyDictionary()
#: loop -> its job limit (set_job_limit)
_limits: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, int]" = weakref.WeakKeyDictionary()


def _state_of(loop: asyncio.AbstractEventLoop) -> Optional[_LoopState]:
    ref = _states.get(loop)
    return ref() if ref is not None else None


def _enter(loop: asyncio.AbstractEventLoop) -> _LoopState:
    state = _state_of(loop)
    if state is None:
        state = _LoopState(loop)
        _states[loop] = weakref.ref(state)
    state.users += 1
    return state


def _leave(state: _LoopState) -> None:
    state.users -= 1
    if state.users == 0 and not state.readers:
        if _state_of(state.loop) is state:
            del _states[state.loop]
        state.close()


def set_job_limit(limit: Optional[int], *, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
    """At most ``limit`` jobs run by ``aio.run_job`` on ``loop`` at once (``None``: no limit).

    ``loop`` defaults to the running loop. Calls beyond the limit wait, first
    come first served, before their job starts; ``timeout=`` and cancellation
    apply while they wait. Each job holds a fibre and its stack while it runs, so
    the limit bounds memory as well as work in flight. Lowering the limit lets
    the jobs running finish; raising it lets waiting calls start at once.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise TypeError(f"limit must be a positive int or None, not {type(limit).__name__}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (or None for no limit), got {limit}")
    if loop is None:
        loop = asyncio.get_running_loop()
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"loop must be an asyncio event loop or None, not {type(loop).__name__}")
    if limit is None:
        _limits.pop(loop, None)
    else:
        _limits[loop] = limit
    state = _state_of(loop)
    if state is not None:
        state.admit_next()


def get_job_limit(loop: Optional[asyncio.AbstractEventLoop] = None) -> Optional[int]:
    """The job limit :func:`set_job_limit` set on ``loop`` (default: the running loop); ``None``: none."""
    if loop is None:
        loop = asyncio.get_running_loop()
    return _limits.get(loop)


def _timeout_error(why: str) -> BaseException:
    return JobTimeoutError(why)


class _AioWatch(AsyncWatch):
    def __init__(self, ctx: WaitCtx, state: _LoopState, *, owns_ctx: bool = False, closing: bool = False) -> None:
        super().__init__(ctx, state.notifier, owns_ctx=owns_ctx, closing=closing)
        self.state = state
        self.loop = state.loop
        self.waiter: Optional[asyncio.Future[Optional[int]]] = None

    def _watch(self, fd: int) -> None:
        self.state.watch_fd(fd, self)

    def _unwatch(self, fd: int) -> None:
        self.state.unwatch_fd(fd, self)

    def _wake(self) -> None:
        self.wake(None)

    def wake(self, fd: Optional[int]) -> None:
        """An fd is readable (``fd``) or the callback came (``None``)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(fd)

    async def wait(self, deadline: float = math.inf) -> bool:
        """Until a watched fd is readable or the callback came; False at ``deadline`` (loop time)."""
        while not self.fired:
            waiter = self.waiter = self.loop.create_future()
            timer = None
            if deadline != math.inf:
                timer = self.loop.call_at(deadline, _expire, waiter)
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


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_result(_TIMED_OUT)


async def run_job(
    func: Callable[[Any], _T],
    args: Any = None,
    *,
    backend: BackendArg = None,
    ctx: Optional[WaitCtx] = None,
    timeout: Optional[float] = None,
    close_timeout: Optional[float] = None,
) -> _T:
    """Run ``func(args)`` in a job on the running loop's thread; what ``func`` returned (any value).

    ``backend`` and ``ctx`` as for ``pyossl_async.run_job``. ``timeout``: seconds
    for the whole call, waiting for a place under :func:`set_job_limit` included;
    past it the job is closed as on cancellation and ``TimeoutError`` is raised
    (an ``asyncio.TimeoutError`` too). Raises the job's own exception;
    ``AsyncError`` for ``NO_JOBS``/``ERR`` and ``ASYNC_STATUS_ERR``. Cancelling the
    task closes the job (see the module documentation), taking at most
    ``close_timeout`` seconds (default ``DEFAULT_CLOSE_TIMEOUT``).
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    loop = asyncio.get_running_loop()
    limit = check_timeout(timeout)
    check_timeout(close_timeout, "close_timeout")
    deadline = math.inf if limit is None else loop.time() + limit
    state = _enter(loop)
    task = asyncio.current_task(loop)
    if task is not None:
        state.tasks.add(task)  # reachable from the loop while its job is in flight
    try:
        await state.admit(deadline)
        try:
            # A burst of calls queues here, before any set-up: the loop stays responsive.
            await state.take_turn()
            # (no local of this frame holds the driver's context: a traceback keeps frames alive)
            result: _T = await drive(state, *resolve(backend, ctx), func, args, deadline, limit, close_timeout)
            return result
        finally:
            state.discharge()
    finally:
        if task is not None:
            state.tasks.discard(task)
        _leave(state)


def await_coroutine(coro: Awaitable[_T], *, notify: str = "auto") -> _T:
    """From code inside a job that ``aio.run_job`` drives: run ``coro`` on the driving
    loop and pause the job until it is done; its result (or its exception).

    Job code cannot ``await`` (it is not a coroutine), and ``asyncio.get_running_loop()``
    fails there (the job runs on its own thread state, or a worker thread). This
    schedules the coroutine as a task of the loop that drives the job, then waits
    for it as an engine waits for an accelerator (``pa.await_future``). Closing or
    cancelling the job cancels the task. ``AsyncError`` outside such a job.
    """
    from .._errors import AsyncError
    from ..engine import await_future

    ref = _DRIVING_LOOP.get()
    loop = ref() if ref is not None else None
    if loop is None or loop.is_closed():
        close = getattr(coro, "close", None)
        if close is not None:
            close()  # never awaited: say nothing about it
        raise AsyncError("await_coroutine() is for code inside a job that aio.run_job() drives")
    result: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def start() -> None:
        # (left pending, not running: a pending future can be cancelled when the job is closed)
        if result.cancelled():  # the job was closed before the loop got here
            close = getattr(coro, "close", None)
            if close is not None:
                close()
            return
        task = asyncio.ensure_future(coro)

        def done(t: asyncio.Future[_T]) -> None:
            if result.done():
                return
            if t.cancelled():
                result.cancel()
            elif t.exception() is not None:
                result.set_exception(t.exception())
            else:
                result.set_result(t.result())

        task.add_done_callback(done)
        result.add_done_callback(lambda f: loop.call_soon_threadsafe(task.cancel) if f.cancelled() else None)

    loop.call_soon_threadsafe(start)
    return await_future(result, notify=notify)
