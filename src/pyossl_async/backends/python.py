"""The ``"python"`` backend: OpenSSL's ASYNC API reproduced without libcrypto.

It is the fallback where libcrypto is missing, too old or not capable, the second
implementation the conformance suite compares against, and an executable model of
OpenSSL's semantics (``crypto/async/async.c``, 3.0). It imports no ctypes.

The model keeps, per *driving* thread (the OS thread that calls ``start_job``),
what OpenSSL keeps in its two thread-locals:

* the pool (``async_pool``): idle jobs as a LIFO stack, ``curr_size`` (jobs ever
  created in this pool; never decreases) and ``max_size`` (0: unlimited), created
  by ``init_thread`` or, as ``init_thread(0, 0)``, by the first ``start_job``;
* the ctx (``async_ctx``): here only its ``blocked`` counter matters; the running
  job is ``ThreadJobs.running`` of the shared layer.

An OpenSSL job is a fibre; here it is a *fibre* of an executor
(``_python_executors``): a worker thread that hands control back and forth with
the driving thread (``"threads"``), or a greenlet on the driving thread itself
(``"greenlet"``, when the optional ``greenlet`` package imports). Either way
exactly one of the driver and the job runs at a time. Fibres are what the pool
holds: created up to ``max_size``, pre-created by ``init_size``, reused
most-recently-finished first. ``PYOSSL_ASYNC_PYTHON_ENGINE`` (``auto``,
``greenlet`` or ``threads``) chooses the executor when the backend loads.
"""

from __future__ import annotations

import itertools
import sys
import threading
from typing import Any, List, Optional, Tuple, cast

from .. import _settings
from .._constants import Status
from .._errors import BackendUnavailable, ErrorEntry, JobStateError
from .._protocol import BackendName
from .._validate import init_size_limit, size_t
from ._base import DEFAULT_TIMEOUT, INTERRUPTED_JOB, BackendBase, Job, JobRecord, ThreadJobs
from ._python_executors import ENGINE_CHOICES, Executor, Fibre, FibreStartError
from ._python_waitctx import PythonWaitCtx

__all__ = ["PythonBackend"]

_get_ident = threading.get_ident

def greenlet_problem() -> Optional[str]:
    """Why the greenlet executor cannot run here, or None when it can."""
    try:
        from . import _python_greenlets
    except ImportError as exc:  # greenlet missing or broken
        return f"greenlet cannot be imported ({exc})"
    return _python_greenlets.unusable_reason()


def choose_executor(setting: str, source: str = "PYOSSL_ASYNC_PYTHON_ENGINE") -> Tuple[Executor, str]:
    """The executor for an engine setting (one of ``ENGINE_CHOICES``) and why it was
    chosen; ``BackendUnavailable`` when ``greenlet`` was asked for and cannot run.
    ``source`` names where the setting came from, for messages."""
    if setting not in ENGINE_CHOICES:
        raise BackendUnavailable(f"{source}={setting!r}: expected one of {', '.join(ENGINE_CHOICES)}")
    if setting == "threads":
        from ._python_workers import ThreadExecutor

        return ThreadExecutor(), f"{source}=threads"
    problem = greenlet_problem()
    if problem is None:
        from ._python_greenlets import GreenletExecutor

        why = f"{source}=greenlet" if setting == "greenlet" else "greenlet imports"
        return GreenletExecutor(), why
    if setting == "greenlet":
        raise BackendUnavailable(f"{source}=greenlet: {problem}; install greenlet, or choose auto or threads")
    from ._python_workers import ThreadExecutor

    return ThreadExecutor(), f"{problem}: worker threads instead"


class _Pool:
    """``async_pool``: idle fibres (LIFO), how many this pool created, its limit."""

    __slots__ = ("curr_size", "idle", "max_size")

    def __init__(self, max_size: int) -> None:
        self.idle: List[Fibre] = []
        self.curr_size = 0
        self.max_size = max_size


class _DriverState:
    """OpenSSL's per-thread async state, for one driving thread (``ThreadJobs.engine``)."""

    __slots__ = ("blocked", "interrupt", "pool")

    def __init__(self) -> None:
        self.pool: Optional[_Pool] = None
        #: ``async_ctx.blocked``: ``block_pause`` nesting, shared by every job of the thread
        self.blocked = 0
        #: an exception a signal handler raised in this thread during a handoff
        self.interrupt: Optional[BaseException] = None


class PythonBackend(BackendBase):
    """OpenSSL's ASYNC API in pure Python; jobs run on pooled fibres of an executor."""

    name: BackendName = "python"
    _ctx_class = PythonWaitCtx
    openssl_version: Optional[str] = None
    #: no libcrypto, so never any error-queue entries
    last_errors: tuple[ErrorEntry, ...] = ()

    def __init__(self, engine: Optional[str] = None) -> None:
        """``engine``: ``auto``, ``greenlet`` or ``threads``; by default the setting
        ``$PYOSSL_ASYNC_PYTHON_ENGINE`` (``SettingError`` when it is not valid).
        ``BackendUnavailable`` when it names ``greenlet`` where greenlet cannot run."""
        choice: str
        if engine is None:
            choice, source = _settings.python_engine(), _settings.ENV_PYTHON_ENGINE
        else:
            choice, source = engine, "PythonBackend(engine)"
        executor, reason = choose_executor(choice, source)
        super().__init__()
        self._executor: Executor = executor
        #: why this executor runs (``info``)
        self.engine_reason = reason
        self._worker_names = itertools.count(1)
        if executor.switches_stacks:
            # resumes and closes (the shared fast paths included) are refused before
            # anything changes while a C job runs on this thread; see start_job
            self._check_resume = self._refuse_in_foreign_job

    def start_job(self, job: Optional[Job], ctx: Any, func: Any, args: Any = None) -> Any:
        """As the shared ``start_job``, refusing first while a C job (an openssl or libssl
        job, ours or not) runs on this thread, on an engine that switches stacks: its
        thread state is bound, and a greenlet switch would move this job's frames onto
        it. (The shared fast paths cannot tell: at the very start and end of an openssl
        job its context does not hold its record yet, and a signal handler can land there.)"""
        if self._executor.switches_stacks:
            self._refuse_in_foreign_job()
        return BackendBase.start_job(self, job, ctx, func, args)

    def _refuse_in_foreign_job(self) -> None:
        if self._executor.in_foreign_job():
            raise JobStateError("start_job() called from inside a running job")

    @property
    def engine(self) -> str:
        """The executor that runs this backend's jobs: ``"greenlet"`` or ``"threads"``."""
        return self._executor.name

    # -- capabilities ------------------------------------------------------------

    def is_capable(self) -> bool:
        """Always True: all this backend needs is threads."""
        return True

    def info(self) -> dict[str, Any]:
        executor = self._executor
        return {
            "engine": executor.name,
            "engine_detail": executor.description,
            "engine_reason": self.engine_reason,
            "worker_threads": executor.live_fibres() if executor.name == "threads" else 0,
            "threading_local_isolation": executor.threading_local_isolation,
        }

    def WaitCtx(self) -> PythonWaitCtx:  # noqa: N802 - contract name
        return PythonWaitCtx(self)

    # -- per-thread state ----------------------------------------------------------

    def _current(self) -> tuple[Optional[ThreadJobs], Optional[JobRecord]]:
        """Inside a job: its driving thread's records and the job; else the caller's."""
        fibre = self._executor.current()
        if fibre is None:
            thread = self._threads.get(_get_ident())
            return thread, (thread.running if thread is not None else None)
        record = fibre.record
        if record is None:  # an idle fibre runs no job
            return None, None
        return fibre.owner, record

    def _engine_in_job(self) -> bool:
        return self._executor.current() is not None

    def _engine_in_foreign_job(self) -> bool:
        return self._executor.in_foreign_job()

    def _driver(self) -> tuple[ThreadJobs, _DriverState]:
        """The calling thread's records and model state (the driving thread's, in a job)."""
        thread, _ = self._current()
        if thread is None:
            thread = self._thread()
        state = thread.engine
        if state is None:
            state = thread.engine = _DriverState()
        return thread, state

    def _new_worker(self, thread: ThreadJobs) -> Optional[Fibre]:
        """``async_job_new`` + ``async_fibre_makecontext``; None when that fails."""
        try:
            return self._executor.new_fibre(thread, f"pyossl-async-worker-{next(self._worker_names)}")
        except FibreStartError:
            return None

    @staticmethod
    def _stop_all(workers: List[Fibre], join: bool) -> None:
        for worker in workers:
            worker.stop()
        if join:
            for worker in workers:
                worker.join()

    # -- the pool (ASYNC_init_thread, ASYNC_cleanup_thread) -------------------------

    def init_thread(self, max_size: int = 0, init_size: int = 0) -> bool:
        """``ASYNC_init_thread``: a new pool for this thread (see openssl-behaviour.md)."""
        self._refuse_reentry(self._current()[0], "init_thread()")
        max_size = size_t(max_size, "max_size")
        init_size = size_t(init_size, "init_size")
        if init_size > max_size:  # also init_thread(0, n > 0): 0 is "unlimited" only later
            return False
        init_size_limit(max_size, init_size)
        thread, state = self._driver()
        pool = _Pool(max_size)
        while init_size:
            init_size -= 1
            worker = self._new_worker(thread)
            if worker is None:  # not fatal in C either: the pool just has fewer jobs
                break
            pool.idle.append(worker)
            pool.curr_size += 1
        old, state.pool = state.pool, pool
        if old is not None:
            # C leaks the old pool and its idle jobs; we stop their threads, which
            # nothing can observe. Jobs still paused from it join the new pool.
            self._stop_all(old.idle, join=False)
            old.idle.clear()
        return True

    def _engine_cleanup_thread(self, thread: Optional[ThreadJobs]) -> None:
        """Free the idle workers, the pool and the ctx (so ``blocked`` goes back to 0)."""
        if thread is None or thread.engine is None:
            return
        state: _DriverState = thread.engine
        pool, state.pool = state.pool, None
        state.blocked = 0
        if pool is not None:
            idle, pool.idle = pool.idle, []
            # while the interpreter finalises, daemon threads cannot run to exit
            self._stop_all(idle, join=not sys.is_finalizing())

    def _engine_thread_exited(self, thread: ThreadJobs) -> None:
        """The driving thread ended: free its idle workers (paused ones stay leaked, as in C)."""
        state: Optional[_DriverState] = thread.engine
        if state is None or state.pool is None:
            return
        idle, state.pool.idle = state.pool.idle, []
        self._stop_all(idle, join=False)

    def _after_fork_in_child(self) -> None:
        """The parent's fibres are not the child's; a job that forked continues without a driver."""
        self._executor.after_fork_in_child()
        super()._after_fork_in_child()

    def _pool_worker(self, thread: ThreadJobs, state: _DriverState) -> Optional[Fibre]:
        """``async_get_pool_job``: the most recently idled worker, or a new one within the limit."""
        pool = state.pool
        if pool is None:  # no init_thread: as ASYNC_init_thread(0, 0)
            pool = state.pool = _Pool(0)
        if pool.idle:
            return pool.idle.pop()
        if pool.max_size and pool.curr_size >= pool.max_size:
            return None
        worker = self._new_worker(thread)
        if worker is not None:
            pool.curr_size += 1
        return worker

    def _release_worker(self, state: _DriverState, worker: Fibre) -> None:
        """``async_release_job``: back onto the thread's *current* pool.

        A fibre that must not run another job (a worker thread whose thread-locals
        could not be forgotten) is replaced by a new one, so the pool keeps its size.
        """
        pool = state.pool
        if pool is None:  # C: internal error, the job is not pushed
            worker.stop()
            return
        if not worker.reusable:
            worker.stop()
            replacement = self._new_worker(worker.owner)
            if replacement is None:  # none can be made now: a later start may make one
                pool.curr_size -= 1
                return
            worker = replacement
        pool.idle.append(worker)

    # -- engine ------------------------------------------------------------------

    def _engine_start(self, thread: ThreadJobs, record: JobRecord) -> Status:
        state = thread.engine
        if state is None:
            state = thread.engine = _DriverState()
        worker = self._pool_worker(thread, state)
        if worker is None:
            return Status.NO_JOBS
        record.engine = worker
        record.runs_on = worker.ident  # the job's code runs on the worker thread
        return self._after_switch(state, record, worker, worker.run(record))

    def _engine_resume(self, thread: ThreadJobs, record: JobRecord) -> Status:
        worker: Fibre = record.engine
        return self._after_switch(thread.engine, record, worker, worker.resume())

    def _after_switch(self, state: _DriverState, record: JobRecord, worker: Fibre, finished: bool) -> Status:
        if worker.interrupt is not None:
            if state.interrupt is None:
                state.interrupt = worker.interrupt
            worker.interrupt = None
        if worker.detached:
            # interrupted twice while the job ran: it goes on without an owner
            # (its pause_job() is a no-op now) and its worker thread ends with it
            record.engine = None
            record.orphaned = True
            exc, state.interrupt = state.interrupt, None
            raise exc if exc is not None else JobStateError("job detached from its driving thread")
        if not finished:
            return Status.PAUSE
        record.engine = None
        self._release_worker(state, worker)
        return Status.FINISH

    def _engine_settle(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        """Where the job is after a drive was cut short outside a switch (see the base class).

        The fibre says (``Fibre.where``): paused inside the job, done with it, or
        never given it. The record lets go of a fibre before it goes back to the
        pool, so an interrupt in between leaks the fibre, never pools it twice.
        """
        worker: Optional[Fibre] = record.engine
        if worker is None:
            return Status.FINISH if record.func is None else None
        if worker.detached:
            record.engine = None
            record.orphaned = True
            return None
        status = worker.where(record)
        if status == Status.PAUSE:
            return status
        record.engine = None
        self._release_worker(thread.engine, worker)
        return status

    def _engine_pause(self, thread: ThreadJobs, record: JobRecord) -> None:
        """``ASYNC_pause_job`` inside a running job."""
        worker: Optional[Fibre] = record.engine
        if worker is None or not worker.is_current():
            # not on the job's own fibre: a signal handler or finaliser that ran
            # in the driving thread while it waited; there is nothing to pause
            return
        if thread.engine.blocked:
            return  # blocked: at once, and the wait ctx keeps its counts
        worker.pause()
        ctx = cast(Optional[PythonWaitCtx], record.ctx)
        if ctx is not None:
            ctx._reset_counts()  # async_wait_ctx_reset_counts, right after the resume

    def _drive(self, thread: ThreadJobs, record: JobRecord, handle: Job, fresh: bool) -> Any:
        """The shared ``_drive``, plus re-raising what interrupted a handoff.

        A signal handler that raises (``KeyboardInterrupt``) while this thread
        waits for a job cannot stop the job mid-flight: the handoff completes
        first. Then the exception is raised from here; a job that paused in the
        meantime is closed first (its ``pause_job()`` raises ``JobCancelled``),
        since its handle cannot be returned along with the exception. A second
        exception while the job still runs detaches the job instead (see
        ``Worker._detach``), so a job that never pauses cannot make Ctrl-C
        useless.
        """
        try:
            result = super()._drive(thread, record, handle, fresh)
        except BaseException:
            interrupt = self._take_interrupt(thread)
            if interrupt is not None:
                raise interrupt  # noqa: B904 - the job's own exception stays as __context__
            raise
        state: Optional[_DriverState] = thread.engine
        if state is None:
            return result
        # taken in one step: a signal handler that runs a drive of its own between a
        # check and the take may take it first (and raise it there)
        interrupt, state.interrupt = state.interrupt, None
        if interrupt is None:
            return result
        if result[0] == Status.PAUSE:
            self._cancel_quietly(thread, record, INTERRUPTED_JOB)
        raise interrupt

    def _close(self, record: JobRecord, handle: Optional[Job], timeout: Any = DEFAULT_TIMEOUT) -> None:
        """As the shared ``_close``, judging "which thread" by the driving thread.

        Job code runs on a worker, so the shared owner check would report a close
        from inside a job of the owning thread as a wrong-thread close; the
        openssl backend, where job code runs on the driving thread itself, says
        it is a close from inside another job. Say the same.
        """
        thread, running = self._current()
        if (
            running is not None
            and thread is not None
            and thread.ident == record.owner
            and record.state == "paused"
            and not record.orphaned
        ):
            raise JobStateError("cannot close a job from inside another job")
        super()._close(record, handle, timeout)

    @staticmethod
    def _take_interrupt(thread: ThreadJobs) -> Optional[BaseException]:
        state: Optional[_DriverState] = thread.engine
        if state is None or state.interrupt is None:
            return None
        exc, state.interrupt = state.interrupt, None
        return exc

    # -- block_pause / unblock_pause -----------------------------------------------

    def block_pause(self) -> None:
        """``ASYNC_block_pause``: ignored outside a job; the count belongs to the thread."""
        thread, record = self._current()
        if record is None or thread is None:
            return
        thread.engine.blocked += 1

    def unblock_pause(self) -> None:
        """``ASYNC_unblock_pause``: ignored outside a job; never below zero."""
        thread, record = self._current()
        if record is None or thread is None:
            return
        state: _DriverState = thread.engine
        if state.blocked > 0:
            state.blocked -= 1
