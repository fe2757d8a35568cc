"""The drive loop of the async shells: one loop, the event loop library's primitives plugged in.

``aio.run_job`` and ``trio.run_job`` run the same loop on :class:`~pyossl_async._wait.watch.PauseWatch`'s
decisions: start, and at each ``PAUSE`` wait for what the engine asked (or pass
a checkpoint), take a turn, resume; on an exception or a cancellation, close the
job without blocking the event loop. What differs between asyncio and trio, how
to wait, yield, shield and report, is a :class:`Shell`.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Dict, Optional, TypeVar, cast

from .._constants import Status
from .._errors import AsyncError
from .._protocol import Backend, Job, StartResult, WaitCtx
from .._wait.watch import WAIT, Backoff, PauseWatch, stuck_message
from . import _blocking
from ._core import Outcome, expired_message, start_failed

if TYPE_CHECKING:
    from ..backends._base import BackendBase

__all__ = ["AsyncWatch", "Shell", "drive", "unwind"]

_T = TypeVar("_T")


class AsyncWatch(PauseWatch):
    """A :class:`PauseWatch` whose shell can wait for it without blocking its event loop."""

    @abc.abstractmethod
    async def wait(self, deadline: float = math.inf) -> bool:
        """Until a watched fd is readable or the callback came; False at ``deadline`` (the shell's clock)."""


class Shell(abc.ABC):
    """One event loop's primitives, and its jobs in flight (per loop or per run)."""

    #: what a ``timeout=`` that ran out raises
    timeout_error: type = TimeoutError
    #: the driver, as messages name it
    driver = "run_job()"

    def __init__(self) -> None:
        #: backend name -> jobs of ours paused here (each holds a job of the thread's pool)
        self.in_flight: Dict[str, int] = {}

    @abc.abstractmethod
    def now(self) -> float:
        """The clock deadlines are measured on."""

    @abc.abstractmethod
    def new_watch(self, ctx: WaitCtx, *, owns_ctx: bool = False, closing: bool = False) -> AsyncWatch: ...

    @abc.abstractmethod
    async def checkpoint(self) -> None:
        """Give the other tasks a turn, once."""

    async def take_turn(self) -> None:
        """Until this task may run a job step (a start or a resume)."""

    def turn_done(self) -> None:
        """The step :meth:`take_turn` allowed is over."""

    def start(self, backend: Backend, ctx: WaitCtx, func: Callable[[Any], int], args: Any) -> StartResult:
        return backend.start_job(None, ctx, func, args)

    @abc.abstractmethod
    async def wait_for_slot(self, name: str, deadline: float) -> None:
        """Until another job of ours on backend ``name`` ends (``NO_JOBS`` from a full pool)."""

    @abc.abstractmethod
    def release_slot(self, name: str) -> None: ...

    @abc.abstractmethod
    def is_cancellation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the event loop's cancellation of the task."""

    @abc.abstractmethod
    async def uncancellable(self, step: Callable[[], Awaitable[_T]]) -> _T:
        """``await step()`` to its end, whatever cancellations arrive meanwhile."""

    @abc.abstractmethod
    def report(self, message: str, exc: BaseException, func: Any) -> None:
        """Tell the application about an exception nobody can be given."""


async def drive(
    shell: Shell,
    backend: Backend,
    ctx: WaitCtx,
    owns_ctx: bool,
    func: Callable[[Any], Any],
    args: Any,
    deadline: float,
    timeout: Optional[float],
    close_timeout: Optional[float],
) -> Any:
    """Start ``func(args)`` in a job and drive it to the end (the caller has taken the first turn)."""
    watch = shell.new_watch(ctx, owns_ctx=owns_ctx)
    outcome = Outcome()
    job_func = outcome.job(func)
    name = backend.name
    counted = False
    job: Optional[Job] = None
    try:
        watch.install()
        while True:
            try:
                status, job, _ = shell.start(backend, ctx, job_func, args)
            finally:
                shell.turn_done()
            if status == Status.NO_JOBS and shell.in_flight.get(name, 0) > 0:
                await shell.wait_for_slot(name, deadline)
                await shell.take_turn()
                continue
            break
        if status == Status.PAUSE:
            shell.in_flight[name] = shell.in_flight.get(name, 0) + 1
            counted = True
        expired = False
        while status == Status.PAUSE:
            if watch.after_pause() == WAIT:
                if not await watch.wait(deadline):
                    expired = True
                    break
            else:
                await shell.checkpoint()  # never resume without giving the others a turn
            await shell.take_turn()
            if shell.now() >= deadline:
                shell.turn_done()
                expired = True
                break
            watch.before_resume()
            try:
                status, job, _ = backend.start_job(job, None, None)  # (a resume ignores ctx; a traceback would keep it)
            finally:
                shell.turn_done()
        if expired:
            # closed once, bounded by close_timeout; a job that does not unwind in time is kept
            assert timeout is not None
            failure = await give_up(shell, backend, job, watch, close_timeout, None)
            kept = job is not None and job.state == "paused"
            job = None
            try:  # (no local may hold the failure: its traceback reaches this frame, a cycle)
                raise shell.timeout_error(expired_message(timeout, failure, kept)) from failure
            finally:
                del failure
        job = None
        if status != Status.FINISH:
            raise start_failed(backend, status)
        failure = watch.finish()
        if failure is not None:
            raise failure
        return outcome.value
    except BaseException as exc:
        if job is not None and job.state == "paused":
            failure = await give_up(shell, backend, job, watch, close_timeout, exc)
            job = None
            if failure is not None:
                shell.report(f"Exception while closing a job {shell.driver} gave up on", failure, func)
            del failure  # (no cycle through this frame)
        failure = watch.finish()
        if failure is not None:
            shell.report(f"Exception while releasing {shell.driver}'s WaitCtx", failure, func)
        # The exception's traceback keeps this frame alive, and asyncio and trio keep a
        # failed task's exception in a cycle: the context must not be held from here.
        del ctx, watch
        raise
    finally:
        if counted:
            shell.in_flight[name] -= 1
            shell.release_slot(name)


async def give_up(
    shell: Shell,
    backend: Backend,
    job: Optional[Job],
    watch: AsyncWatch,
    timeout: Optional[float],
    exc: Optional[BaseException],
) -> Optional[BaseException]:
    """Close a job the driver gives up on (``exc``: why; ``None``: its timeout), once, bounded
    by ``timeout``, waiting with the driver's own ``watch`` (the engine holds its
    callback token). A job still paused after that is kept by the library, which
    unwinds it as soon as its engine signals. What the close raised, if anything.

    Awaits, so the event loop goes on, unless the task may not await: a coroutine
    being closed (``GeneratorExit``: unwound as far as it goes without waiting, the
    rest kept), an interrupt (``KeyboardInterrupt``: a blocking close).
    """
    if job is None or job.state != "paused":
        return None
    be = cast("BackendBase", backend)
    if exc is None or isinstance(exc, Exception) or shell.is_cancellation(exc):
        failure = await unwind(shell, backend, job, timeout, watch)
        try:
            if job.state == "paused":
                try:
                    be.begin_close(job).keep(watch)
                except BaseException:  # noqa: BLE001 - (cannot fail: the close checks passed before)
                    pass
            return failure
        finally:
            del failure  # (no cycle through this frame: its traceback reaches it)
    if isinstance(exc, GeneratorExit):
        try:
            closing = be.begin_close(job)
        except BaseException:  # noqa: BLE001 - another thread (a collection): its handle's death defers it
            return None
        closing.without_waiting(f"a job whose {shell.driver} coroutine was closed", watch)
        return None
    return _blocking.give_up(backend, job, watch, timeout)


async def unwind(
    shell: Shell,
    backend: Backend,
    job: Job,
    timeout: Optional[float],
    watch: AsyncWatch,
) -> Optional[BaseException]:
    """Close ``job`` without blocking the event loop (``drive._blocking.unwind``, awaiting, with
    the driver's ``watch``); the exception its unwinding raised, if any (not JobCancelled).

    Cancellations meanwhile do not cut it short; ``timeout`` (default
    ``DEFAULT_CLOSE_TIMEOUT``) does: the job then stays paused, for the caller to
    hand over to the library.
    """
    if timeout is None:
        timeout = _blocking.DEFAULT_CLOSE_TIMEOUT
    try:
        closing = cast("BackendBase", backend).begin_close(job)
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        return exc
    deadline = shell.now() + timeout
    watch.closing = True
    backoff = Backoff()
    try:
        while True:
            if closing.step():
                return None
            action = watch.after_pause()
            if shell.now() >= deadline:
                break
            wait = backoff.limit(action, watch)
            if wait == 0:
                await shell.uncancellable(shell.checkpoint)  # the loop's turn, even so
            else:
                until = deadline if wait is None else min(deadline, shell.now() + wait)
                if await shell.uncancellable(functools.partial(watch.wait, until)):
                    backoff.reset()
                elif until >= deadline or shell.now() >= deadline:
                    break  # (a wait that ran to the deadline: a loop's clock may round its timer early)
            watch.before_resume()
    except BaseException as exc:  # noqa: BLE001 - handed to the caller
        closing.abort()
        return exc
    closing.abort()
    # made, not raised: no traceback, so no frame of the close (nor its callers' locals,
    # the driver's context among them) stays reachable from the report
    return AsyncError(stuck_message(timeout, "kept"))
