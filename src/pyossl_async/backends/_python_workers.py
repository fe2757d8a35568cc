"""Worker threads that run ``"python"``-backend jobs as stackful coroutines.

A real OpenSSL job is a fibre: a stack that the calling thread switches onto and
off again. Pure Python has no stack switching, so each job runs on a worker
thread instead, and control is handed back and forth so that exactly one of the
two (the driving thread or the job) runs at any time:

* the driver *grants* the worker a turn and wakes it, then sleeps until the
  worker says it is *done* with that turn (it paused, or its job finished);
* the worker, when its job pauses, says it is done and sleeps until the next
  grant.

Wake-ups are ``threading.Lock`` objects used as binary semaphores (acquire to
sleep, release to wake), so a waiting thread blocks in the kernel instead of
polling. Whose turn it is lives in two counters, ``grant`` and ``done``, written
only under the GIL. Every wait is a ``while`` loop over those counters, and every
wake-up tolerates an already-released lock, so a spare wake-up is harmless. That
is what makes a handoff safe against a signal handler raising (``KeyboardInterrupt``)
at any instruction of the driving thread: ``Worker.resume`` can always tell how
far the handoff went, finish it, and hand the exception to its caller.

Workers are bare threads of the ``_thread`` module, unknown to ``threading`` (so
``threading.enumerate()`` does not list them): like daemon threads they never keep
the interpreter alive, and an idle or paused worker blocked on its lock does not
delay exit. Starting one takes none of ``threading``'s locks and waits for
nothing: ``Thread.start()`` waits for the new thread to say it started, under
locks a signal handler's exception can leave held (a storm of them deadlocked
there), and a handler that interrupted ``threading``'s own bookkeeping could not
start a ``Thread`` at all. The first handoff is the only wait, and it is ours.

A worker serves one job after another until it is stopped (its pool was freed
or replaced), or until nothing holds its ``Worker`` any more: an idle worker's
thread keeps only a weak reference to it, so one that an interrupt made the
backend lose (between taking it from the pool and recording it in a job, say)
is freed, and its thread is woken to end (or, should a signal handler's
exception cut that wake-up short, finds it gone within ``_IDLE_RECHECK``
seconds) instead of waiting for a grant for good.

This is the ``"threads"`` executor of ``_python_executors``: a ``Worker`` is its
fibre, :class:`ThreadExecutor` makes them and keeps the registry of live
workers by thread ident (which job code runs where).
"""

from __future__ import annotations

import _thread
import functools
import sys
import threading
import weakref
from typing import Any, Dict, Optional

from .._constants import Status
from .._unraisable import report_unraisable
from ._python_executors import Executor, FibreStartError
from ._python_threadlocal import SUPPORTED as THREADLOCAL_SUPPORTED
from ._python_threadlocal import ThreadLocalScrubber

__all__ = ["ThreadExecutor", "Worker", "WorkerStartError"]

_allocate_lock = threading.Lock
_get_ident = threading.get_ident

#: the OS (or a finalising interpreter) refused to start another thread
WorkerStartError = FibreStartError
#: seconds an idle worker sleeps before it looks whether its worker object still exists
_IDLE_RECHECK = 5.0


def _wake(lock: Any) -> None:
    """Release ``lock`` if it is held: a second wake-up before a wait is a no-op.

    Each lock has a single releasing thread (``go``: the driver, ``back``: the
    worker) and the other thread only acquires, so a lock seen held stays held
    until this release.
    """
    if lock.locked():
        lock.release()


def _woken_by_death(go: Any, _ref: Any, _finalizing: Any = sys.is_finalizing) -> None:
    """A worker object died: wake its thread, which finds it gone and ends. Not while
    the interpreter finalises (module teardown frees pools): a thread woken then
    would only try to take the GIL back as the interpreter goes away."""
    if not _finalizing():
        _wake(go)


class Worker:
    """One pooled worker thread and the handoff protocol with its driving thread.

    ``owner`` is whatever the backend wants to find from the worker's thread
    ident (the driving thread's records); ``registry`` maps live worker idents to
    workers and is kept up to date by the worker itself.
    """

    __slots__ = (
        "__weakref__",
        "_back",
        "_done",
        "_ended",
        "_go",
        "_grant",
        "_isolated",
        "_ref",
        "_registry",
        "_scrubber",
        "_stopping",
        "detached",
        "finished",
        "ident",
        "interrupt",
        "name",
        "orphaned",
        "owner",
        "record",
    )

    def __init__(self, owner: Any, registry: Dict[int, weakref.ref[Worker]], name: str) -> None:
        self.owner = owner
        #: the job this worker runs (set by the driver at start, cleared by the
        #: worker when the job function has returned); a ``JobRecord``, or any
        #: object with ``run_in_job()`` (which must not raise) and ``func``
        self.record: Any = None
        #: True once the current job's function has returned
        self.finished = False
        #: an exception raised in the driving thread during a handoff (a signal
        #: handler's), kept for the driver to re-raise once the handoff completed
        self.interrupt: Optional[BaseException] = None
        #: no driver will ever resume this worker's job: after a fork inside the
        #: job (in the child), or once the job was detached
        self.orphaned = False
        #: the driver stopped waiting for the running job (interrupted twice)
        self.detached = False
        self._go = _allocate_lock()
        self._go.acquire()
        self._back = _allocate_lock()
        self._back.acquire()
        self._grant = 0
        self._done = 0
        self._stopping = False
        self._registry = registry
        self._scrubber: Optional[ThreadLocalScrubber] = None
        #: False once this thread's threading.local values could not be found or
        #: forgotten: it must not run another job (see ``reusable``)
        self._isolated = True
        #: what the thread holds (and the registry): the worker dies when the backend lets go
        self._ref = weakref.ref(self, functools.partial(_woken_by_death, self._go))
        #: held while the thread runs: its end releases it (``join``, ``alive``)
        self._ended = _allocate_lock()
        self._ended.acquire()
        self.name = name
        self.ident = 0
        try:
            try:
                self.ident = _thread.start_new_thread(_serve, (self._ref, self._go, registry, self._ended))
            except RuntimeError as exc:  # "can't start new thread", or interpreter shutdown
                raise WorkerStartError(str(exc)) from exc
            registry[self.ident] = self._ref
        except BaseException:
            # Interrupted (a signal handler's exception) as the thread started: nobody
            # will ever give it a job, so it must end instead of idling for good.
            # Under an interrupt storm these leaked threads piled up by the hundred.
            self.stop()
            raise

    # -- driving thread --------------------------------------------------------------

    def run(self, record: Any) -> bool:
        """Start ``record`` on this idle worker; True when it finished, False when it paused."""
        self.record = record
        self.finished = False
        return self.resume()

    def resume(self) -> bool:
        """Give the worker a turn and sleep until it pauses or finishes (True: finished).

        Never returns early: an exception raised in this thread meanwhile is
        stored in ``interrupt`` and the handoff is completed first.
        """
        n = self._grant + 1
        try:
            self._grant = n
            go = self._go
            if go.locked():  # unlocked: a spare wake-up is pending and will do
                go.release()
            while self._done != n:
                self._back.acquire()
        except BaseException as exc:  # noqa: BLE001 - kept, re-raised by the caller
            self._complete_interrupted(n, exc)
        return self.finished

    def _complete_interrupted(self, n: int, exc: BaseException) -> None:
        """Finish handoff ``n`` after ``exc`` hit the driver somewhere inside it.

        A second exception while the job still runs means the user insists
        (a second Ctrl-C): the job is detached instead of waited for.
        """
        if self.interrupt is None:
            self.interrupt = exc
        while True:
            try:
                if self._grant != n:  # interrupted before the grant was made
                    self._grant = n
                _wake(self._go)  # maybe a second wake-up: harmless
                while self._done != n:
                    self._back.acquire()
                return
            except BaseException:  # noqa: BLE001 - the first exception is the one kept
                if self._grant == n and self._done != n:
                    self._detach()
                    return

    def _detach(self) -> None:
        """Give up on the running job: it runs on, ownerless, and its thread ends with it."""
        self.detached = True
        self.orphaned = True
        self.owner = None
        _wake(self._go)  # in case the grant never reached the worker

    def where(self, record: Any) -> Optional[Status]:
        """Where ``record``'s job is after a drive was cut short outside the handoff.

        ``resume`` never returns with a turn in progress, so the worker is idle
        here: paused inside the job (the job function began: ``record.func`` is
        cleared by ``run_in_job``, on this worker), done with it, or never given
        a turn for it (then it forgets the job, so it can never run it).
        """
        began = record.func is None
        if began and not self.finished:
            return Status.PAUSE
        if self.record is record:  # given the job but never a turn
            self.record = None
        return Status.FINISH if began else None

    def is_current(self) -> bool:
        """Whether the calling code runs on this worker's thread."""
        return self.ident == _get_ident()

    @property
    def reusable(self) -> bool:
        """False when the thread-locals of the last job could not be forgotten: another
        job on this thread would see them (the pool replaces the worker instead)."""
        return self._isolated

    def stop(self) -> None:
        """Make an idle worker's thread exit (it does so as soon as it runs)."""
        self._stopping = True
        self.record = None
        self._grant += 1
        _wake(self._go)

    def join(self, timeout: float = 5.0) -> None:
        """Wait, briefly, for a stopped worker's thread to end."""
        if self.ident != _get_ident() and self._ended.acquire(timeout=timeout):
            self._ended.release()

    @property
    def alive(self) -> bool:
        """Whether the worker's thread still runs (its code, at least)."""
        return self._ended.locked()

    # -- worker thread ---------------------------------------------------------------

    def pause(self) -> None:
        """Inside the job: hand control back to the driver; return when resumed."""
        n = self._grant
        self._done = n
        _wake(self._back)
        while self._grant == n:
            self._go.acquire()

    def _locate_thread_locals(self) -> None:
        """On the new thread, first thing, while its thread-state dict is among the
        youngest objects (the search is bounded: see _python_threadlocal)."""
        if not THREADLOCAL_SUPPORTED:
            return
        try:
            self._scrubber = ThreadLocalScrubber.for_current_thread()
        except BaseException as exc:  # noqa: BLE001 - the worker just serves one job
            report_unraisable(exc, "Exception while locating a worker's threading.local data")
        if self._scrubber is None:
            self._isolated = False

    def _run(self, record: Any) -> None:
        try:
            record.run_in_job()
        except BaseException as exc:  # noqa: BLE001 - run_in_job keeps the job's own
            report_unraisable(exc, "Exception escaped a job body")
        scrubber = self._scrubber
        if scrubber is not None:
            try:
                scrubber.scrub()
            except BaseException as exc:  # noqa: BLE001
                self._isolated = False
                report_unraisable(exc, "Exception while forgetting a job's threading.local data")

    def __repr__(self) -> str:
        return f"<pyossl_async python worker {self.name} ident={self.ident}>"


def _serve(ref: weakref.ref[Worker], go: Any, registry: Dict[int, weakref.ref[Worker]], ended: Any) -> None:
    """A worker thread: run its worker's jobs, one per grant, until it is stopped,
    orphaned, or gone. Idle, it holds only ``ref``: a worker nobody else holds is
    freed, and its death wakes this thread to end (see the module docstring)."""
    worker: Optional[Worker] = None
    try:
        worker = ref()
        if worker is None:
            return
        worker._locate_thread_locals()
        seen = 0
        while True:
            if worker._grant == seen:
                worker = None  # hold nothing while idle
                # woken by a grant, by stop(), or by the worker's death (its weakref
                # callback); the timeout only covers a callback an interrupt cut short
                go.acquire(timeout=_IDLE_RECHECK)
                worker = ref()
                if worker is None:
                    return
                continue
            seen = worker._grant
            if worker._stopping:
                return
            record = worker.record
            if record is not None:
                worker._run(record)
            record = None
            if worker.orphaned:  # no driver will take this worker back
                return
            seen = worker._grant  # the job's pauses moved the turn on
            worker.record = None
            worker.finished = True
            worker._done = seen
            _wake(worker._back)
    finally:
        ident = _get_ident()
        if registry.get(ident) is ref:
            del registry[ident]
        ended.release()


class ThreadExecutor(Executor):
    """The ``"threads"`` executor: workers, and the registry of live ones by thread ident."""

    name = "threads"
    description = "worker threads (lock handoff)"
    threading_local_isolation = THREADLOCAL_SUPPORTED

    def __init__(self) -> None:
        #: worker thread ident -> its worker (weakly), for every live worker thread
        self.workers: Dict[int, weakref.ref[Worker]] = {}

    def new_fibre(self, owner: Any, name: str) -> Worker:
        return Worker(owner, self.workers, name)

    def current(self) -> Optional[Worker]:
        ref = self.workers.get(_get_ident())
        worker = ref() if ref is not None else None
        if worker is None or worker.orphaned:
            return None
        return worker

    def after_fork_in_child(self) -> None:
        """No worker thread exists in the child; a job that forked continues without a driver."""
        ref = self.workers.get(_get_ident())
        me = ref() if ref is not None else None
        if me is not None:
            me.orphaned = True
        self.workers = {}

    def live_fibres(self) -> int:
        return len(self.workers)
