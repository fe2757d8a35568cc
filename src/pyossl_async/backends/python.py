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

An OpenSSL job is a fibre; here it is a ``Worker`` thread (``_python_workers``) that
runs one job at a time and hands control back and forth with the driving thread,
so exactly one of them runs. Workers are what the pool holds: created up to
``max_size``, pre-created by ``init_size``, reused most-recently-finished first.
"""

from __future__ import annotations

import itertools
import sys
import threading
from typing import Any, Dict, List, Optional, cast

from .._constants import Status
from .._errors import ErrorEntry, JobStateError
from .._protocol import BackendName
from .._validate import init_size_limit, size_t
from ._base import DEFAULT_TIMEOUT, INTERRUPTED_JOB, BackendBase, Job, JobRecord, ThreadJobs
from ._python_threadlocal import SUPPORTED as THREADLOCAL_ISOLATION
from ._python_waitctx import PythonWaitCtx
from ._python_workers import Worker, WorkerStartError

__all__ = ["PythonBackend"]

_get_ident = threading.get_ident


class _Pool:
    """``async_pool``: idle workers (LIFO), how many this pool created, its limit."""

    __slots__ = ("curr_size", "idle", "max_size")

    def __init__(self, max_size: int) -> None:
        self.idle: List[Worker] = []
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
    """OpenSSL's ASYNC API in pure Python; jobs run on pooled worker threads."""

    name: BackendName = "python"
    _ctx_class = PythonWaitCtx
    openssl_version: Optional[str] = None
    #: no libcrypto, so never any error-queue entries
    last_errors: tuple[ErrorEntry, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        #: worker thread ident -> worker, for every live worker thread
        self._workers: Dict[int, Worker] = {}
        self._worker_names = itertools.count(1)

    # -- capabilities ------------------------------------------------------------

    def is_capable(self) -> bool:
        """Always True: all this backend needs is threads."""
        return True

    def info(self) -> dict[str, Any]:
        return {
            "engine": "worker threads (lock handoff)",
            "worker_threads": len(self._workers),
            "threading_local_isolation": THREADLOCAL_ISOLATION,
        }

    def WaitCtx(self) -> PythonWaitCtx:  # noqa: N802 - contract name
        return PythonWaitCtx(self)

    # -- per-thread state ----------------------------------------------------------

    def _current(self) -> tuple[Optional[ThreadJobs], Optional[JobRecord]]:
        """On a worker thread: its driving thread's records and the job it runs."""
        ident = _get_ident()
        worker = self._workers.get(ident)
        if worker is None:
            thread = self._threads.get(ident)
            return thread, (thread.running if thread is not None else None)
        record = worker.record
        if record is None:  # an idle worker runs no job
            return None, None
        return worker.owner, record  # type: ignore[return-value]

    def _engine_in_job(self) -> bool:
        return _get_ident() in self._workers

    def _driver(self) -> tuple[ThreadJobs, _DriverState]:
        """The calling thread's records and model state (the driving thread's, in a job)."""
        thread, _ = self._current()
        if thread is None:
            thread = self._thread()
        state = thread.engine
        if state is None:
            state = thread.engine = _DriverState()
        return thread, state

    def _new_worker(self, thread: ThreadJobs) -> Optional[Worker]:
        """``async_job_new`` + ``async_fibre_makecontext``; None when that fails."""
        try:
            return Worker(thread, self._workers, f"pyossl-async-worker-{next(self._worker_names)}")
        except WorkerStartError:
            return None

    @staticmethod
    def _stop_all(workers: List[Worker], join: bool) -> None:
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
        """No worker thread exists in the child; a job that forked continues without a driver."""
        me = self._workers.get(_get_ident())
        if me is not None:
            me.orphaned = True
        self._workers = {}
        super()._after_fork_in_child()

    def _pool_worker(self, thread: ThreadJobs, state: _DriverState) -> Optional[Worker]:
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

    def _release_worker(self, state: _DriverState, worker: Worker) -> None:
        """``async_release_job``: back onto the thread's *current* pool."""
        pool = state.pool
        if pool is None:  # C: internal error, the job is not pushed
            worker.stop()
            return
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
        worker: Worker = record.engine
        return self._after_switch(thread.engine, record, worker, worker.resume())

    def _after_switch(self, state: _DriverState, record: JobRecord, worker: Worker, finished: bool) -> Status:
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
        """Where the job is after a drive was cut short outside the handoff (see the base class).

        ``Worker.resume`` never returns with a turn in progress, so the worker is
        idle here: paused inside the job, done with it, or never given it. The
        record lets go of a worker before it goes back to the pool, so an
        interrupt in between leaks the worker, never pools it twice.
        """
        worker: Optional[Worker] = record.engine
        if worker is None:
            return Status.FINISH if record.func is None else None
        if worker.detached:
            record.engine = None
            record.orphaned = True
            return None
        if not worker.finished and record.func is None:  # run_in_job began: it is at a pause
            return Status.PAUSE
        record.engine = None
        if worker.record is record:  # given the job but never a turn
            worker.record = None
        self._release_worker(thread.engine, worker)
        return Status.FINISH if record.func is None else None

    def _engine_pause(self, thread: ThreadJobs, record: JobRecord) -> None:
        """``ASYNC_pause_job`` inside a running job."""
        worker: Optional[Worker] = record.engine
        if worker is None or worker.ident != _get_ident():
            # not on the job's own thread: a signal handler or finaliser that ran
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
