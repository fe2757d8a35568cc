"""Job semantics shared by every backend.

A backend supplies an *engine* (how a job's code is started, resumed and paused:
real OpenSSL fibres, or worker threads). Everything the contract says about jobs
that does not depend on the engine lives here, once: argument checks, job states,
return-value rules, exceptions with the job's frames, contextvars and tracer
propagation, ``JobCancelled`` on close or garbage collection, deferred closes,
and what happens when a thread that owns paused jobs goes away.
"""

from __future__ import annotations

import abc
import atexit
import os
import sys
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, cast

from .. import _settings
from .._constants import C_INT_MAX, C_INT_MIN, Status
from .._errors import AsyncError, JobCancelled, JobStateError, WaitCtxClosedError
from .._protocol import Backend, BackendName, Job, StartResult
from .._running import RUNNING_JOB, running_record
from .._unraisable import report_unraisable
from .._validate import job_args, job_result
from .._wait.blocking import unwind
from .._wait.watch import stuck_message
from ._closing import Closing
from ._interrupts import HEADROOM as _HEADROOM
from ._interrupts import SETTLE_HEADROOM as _SETTLE_HEADROOM
from ._interrupts import busy as _busy
from ._interrupts import holds_thread_busy
from ._interrupts import setrecursionlimit as _setrecursionlimit
from ._keeper import keep, release, unwind_or_keep, wait_for_kept
from ._records import JobRecord, ThreadJobs
from ._records import sync_tracers as _sync_tracers
from ._waitctx_base import WaitCtxBase, kept_note

__all__ = ["BackendBase", "Job", "JobRecord", "ThreadJobs", "WaitCtxBase"]

_get_ident = threading.get_ident
_PAUSE = Status.PAUSE
_FINISH = Status.FINISH
#: what ``_cancel_quietly`` reports closing when a start or resume was cut short
INTERRUPTED_JOB = "a paused job whose start_job() was interrupted"
#: OpenSSL's int statuses as enum members, without the cost of Status(n)
STATUSES = tuple(Status)
#: a StartResult from a tuple, without the NamedTuple constructor's argument handling
#: builds a StartResult from a tuple (``tuple.__new__``: no NamedTuple ``__new__`` frame).
#: A result is allocated per switch: caching a job's PAUSE result would hold its
#: handle, and a paused job whose handle the user dropped must be unwound at once.
_tuple_new = tuple.__new__
#: a Job handle without its ``__init__`` frame (the start path sets ``_record``)
_new_job = object.__new__
#: ``Job.close()``'s timeout when none is given: the drive layer's default
DEFAULT_TIMEOUT: Any = object()
_is_finalizing = sys.is_finalizing
_gettrace = sys.gettrace
#: the record in the calling code's context, unchecked (``_running``)
_job_context = RUNNING_JOB.get
_set_running = RUNNING_JOB.set
_getprofile = sys.getprofile


class _ThreadSentinel:
    """Lives in a ``threading.local`` of the thread it watches; dies with that thread."""

    __slots__ = ("__weakref__", "backend", "ident", "pid", "thread")

    def __init__(self, backend: BackendBase, thread: ThreadJobs) -> None:
        self.backend = weakref.ref(backend)
        self.ident = thread.ident
        #: the record it retires: only that one (never one made for the thread later)
        self.thread = thread
        self.pid = os.getpid()

    def __del__(self) -> None:
        backend = self.backend()
        # During interpreter finalisation, and in a child process right after
        # fork(), CPython is itself deleting thread states (ours included): touching
        # any would double-free. Finalisation leaves the memory to the exiting
        # process; in a fork child, the after-fork hook forgets it.
        if backend is not None and not sys.is_finalizing() and os.getpid() == self.pid:
            try:
                backend._thread_exited(self.ident, self.thread)
            except BaseException as exc:  # noqa: BLE001 - runs in thread teardown
                report_unraisable(exc, "Exception while releasing a thread's jobs")


def _no_default_backend() -> Backend:
    raise RuntimeError("pyossl_async._registry was not imported")  # pragma: no cover


#: name -> backend, for every backend loaded in this process (filled by the registry,
#: only ever added to): kept here, below the backends, so that one backend can ask
#: the others about their jobs without importing the registry above them
LOADED_BACKENDS: Dict[str, Backend] = {}

#: the default backend, for the module functions called outside any job; the
#: registry (which imports the backends, so they cannot import it) installs it
_default_backend: Callable[[], Backend] = _no_default_backend


def set_default_backend(factory: Callable[[], Backend]) -> None:
    """Install the registry's ``get_backend`` (called once, when the registry is imported)."""
    global _default_backend
    _default_backend = factory


def pause_job(_backend: Optional[BackendBase] = None) -> bool:
    """Pause the running job until it is resumed; ``True`` at once outside a job.

    One function for ``backend.pause_job()`` (``_backend`` is that backend: only its
    own job pauses) and for ``pyossl_async.pause_job()`` (no argument: the job
    running the calling code, whichever backend runs it; outside any job, the
    default backend's answer), so that neither pays a second Python call.
    """
    record: Optional[JobRecord] = _job_context()
    if (
        record is None
        or record.runs_on != _get_ident()
        or record.state != "running"
        or (_backend is not None and record.backend is not _backend)
    ):
        if _backend is None:
            return _default_backend().pause_job()
        record = _backend._running_here()
        if record is None:
            return True
    elif record.__class__ is not JobRecord:
        # a job of another kind runs here (libssl's own, in a TLS key operation)
        foreign: Any = record.backend
        return bool(foreign.pause_job())
    if record.cancelled:
        raise JobCancelled()
    backend = record.backend
    record.in_pause = True
    try:
        pause = backend._pause_call
        if pause is not None:
            pause()
        else:
            backend._engine_pause(record.thread, record)
    finally:
        record.in_pause = False
    if record.pause_error:
        record.pause_error = False
        raise JobStateError("pause_job() in a job that was started without a WaitCtx")
    if record.cancelled:
        raise JobCancelled()
    if record.retrace or record.trace is not None or record.profile is not None:
        # the caller traces or profiles, or stopped: the job follows (never asked when
        # nobody traces, the common case: two calls fewer per pause)
        record.retrace = False
        if _gettrace() is not record.trace or _getprofile() is not record.profile:
            _sync_tracers(record)
    return True


def get_current_job(_backend: Optional[BackendBase] = None) -> Optional[Job]:
    """The running job's handle (the same object ``start_job`` returns on PAUSE), or None.

    As :func:`pause_job`: ``backend.get_current_job()`` and, with no argument,
    ``pyossl_async.get_current_job()`` (whichever backend runs the job).
    """
    record: Optional[JobRecord] = _job_context()
    if (
        record is None
        or record.runs_on != _get_ident()
        or record.state != "running"
        or (_backend is not None and record.backend is not _backend)
    ):
        if _backend is None:
            return _default_backend().get_current_job()
        record = _backend._running_here()
        if record is None:
            return None
    elif record.__class__ is not JobRecord:
        foreign: Any = record.backend
        return cast(Optional[Job], foreign.get_current_job())
    # while a job runs, its caller's start_job holds the handle, or the
    # finaliser that unwinds it resurrected it into ``record.handle``: the
    # collector clears weak references to a cycle before its finalisers run
    ref = record.handle_ref
    handle: Optional[Job] = ref() if ref is not None else None
    return handle if handle is not None else record.handle


_pause_job_impl = pause_job
_get_current_job_impl = get_current_job


class BackendBase(abc.ABC):
    """The contract's ``Backend``, minus the engine."""

    name: BackendName
    #: the class of this backend's contexts (``start_job``'s fast check)
    _ctx_class: type = WaitCtxBase
    openssl_version: Optional[str] = None
    #: checked before every resume and close (the openssl backend's depth check on 3.9/3.10)
    _check_resume: Optional[Callable[[], None]] = None

    def __init__(self) -> None:
        self._threads: Dict[int, ThreadJobs] = {}
        self._local = threading.local()
        # (no lock guards the table: a signal handler that runs while its own thread
        # held one and calls in would wait for itself for good; each step below is
        # one dict operation, atomic under the GIL)
        #: every open WaitCtx of this backend (weakly: an unclosed one still dies)
        self._open_ctxs: weakref.WeakSet[WaitCtxBase] = weakref.WeakSet()
        atexit.register(_close_main_thread_jobs, weakref.ref(self))

    def __repr__(self) -> str:
        return f"<pyossl_async backend {self.name!r}>"

    # -- engine interface --------------------------------------------------------

    @abc.abstractmethod
    def _engine_start(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        """Start ``record`` in a new job; return OpenSSL's status, or None when the
        switch was refused because a C job of someone else's runs on this thread."""

    @abc.abstractmethod
    def _engine_resume(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        """Resume the paused ``record``; return OpenSSL's status (None: refused, as above)."""

    def _engine_resumed(self, thread: ThreadJobs, record: JobRecord, status: int) -> Optional[Status]:
        """After ``record.switch()`` returned ``status`` other than PAUSE: the engine's
        bookkeeping; the status (None: the switch was refused)."""
        raise NotImplementedError

    #: a C callable that pauses the running job of this backend (``ASYNC_pause_job``),
    #: used instead of :meth:`_engine_pause` when set
    _pause_call: Optional[Callable[[], Any]] = None

    @abc.abstractmethod
    def _engine_pause(self, thread: ThreadJobs, record: JobRecord) -> None:
        """Pause the running job; return when it is resumed, or at once if pausing is blocked."""

    def _engine_settle(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        """Where ``record``'s job is after ``_drive`` was left by an exception of ours.

        ``PAUSE``: the engine holds it paused. ``FINISH``: it ended and the engine
        has released what it held. ``None``: it never started (anything the engine
        took for it is released). The engine must not hand anything back twice.
        """
        return None

    def _engine_in_foreign_job(self) -> bool:
        """True when a job this backend did not start is running on this thread."""
        return False

    def _engine_in_job(self) -> bool:
        """True when the calling code runs inside one of this backend's jobs (on its
        fibre or worker), not on the caller's side of a ``start_job()`` in progress."""
        return True

    def _engine_wait_private(self, thread: ThreadJobs, timeout: float) -> None:
        """Up to ``timeout`` seconds, until an engine that paused a job started without a
        context signals through the private context it got (its fds); at most sleep."""
        time.sleep(timeout)

    def _engine_arm_cancel(self, thread: ThreadJobs, record: JobRecord) -> None:
        """Make ``JobCancelled`` be raised at the first Python code the paused job runs.

        Needed for jobs paused inside C code, which no ``pause_job()`` of ours
        will see resume. Backends whose jobs can only pause in Python need nothing.
        """

    def _engine_disarm_cancel(self, thread: ThreadJobs, record: JobRecord) -> None:
        """Undo :meth:`_engine_arm_cancel` for a job left paused (a close given up)."""

    def _engine_thread_exited(self, thread: ThreadJobs) -> None:
        """Release the engine's resources of a thread that has gone away."""

    def _engine_cleanup_thread(self, thread: Optional[ThreadJobs]) -> None:
        """``ASYNC_cleanup_thread`` proper, once the shared checks passed."""

    def _refuse_reentry(self, thread: Optional[ThreadJobs], what: str) -> None:
        """``JobStateError`` when ``what`` is called while this thread is between two
        states of a ``start_job()``/``close()`` (from a signal handler, a finaliser, a
        weakref callback or a trace function that runs in the middle of one). Job
        code itself, running inside the job, is not refused here."""
        if thread is not None and thread.busy and not self._engine_in_job() and _busy(thread):
            raise JobStateError(
                f"{what} called while this thread is in the middle of a start_job() or close() "
                f"(from a signal handler, finaliser, weakref callback or trace function); "
                f"call it once that call has returned"
            )
        if thread is not None and thread.driving is not None and thread.running is None:
            self._settle_leftover(thread)

    @holds_thread_busy
    def _settle_leftover(self, thread: ThreadJobs) -> None:
        """Settle a record that a start_job()/close() left "running".

        Interrupts (Ctrl-C, a signal handler's exception) that hit a drive are
        caught and the record settled; one that hits every attempt at settling
        leaves it "running", which nobody could resume, close or free. The
        thread's next library call, outside any job and any call of ours, settles it.
        """
        record = thread.driving
        if record is None:
            return
        if record.state != "running":
            thread.driving = None
            return
        if thread.running is not None or _busy(thread):
            return
        thread.busy += 1
        try:
            self._settle_interrupted(thread, record, thread.driving_fresh)
            if cast(str, record.state) != "running":  # (settling changes it; mypy cannot know)
                thread.driving = None
        finally:
            thread.busy -= 1

    def _current(self) -> tuple[Optional[ThreadJobs], Optional[JobRecord]]:
        """The calling thread's jobs and the job running in the caller, if any."""
        thread = self._threads.get(_get_ident())
        return thread, (thread.running if thread is not None else None)

    # -- threads -----------------------------------------------------------------

    def _thread(self) -> ThreadJobs:
        ident = _get_ident()
        thread = self._threads.get(ident)
        if thread is None:
            # Never reached from inside one of our jobs: a running job implies
            # its driving thread's record exists. A signal handler that runs in
            # the middle of this may create the record first: then it is the one.
            fresh = ThreadJobs(ident)
            thread = self._threads.setdefault(ident, fresh)
            if thread is fresh:
                self._local.sentinel = _ThreadSentinel(self, fresh)
        return thread

    def _thread_exited(self, ident: int, thread: ThreadJobs) -> None:
        """``thread``'s OS thread has ended (its sentinel died with its ``threading.local``)."""
        if self._threads.get(ident) is thread:  # (never another record for the same ident)
            # (nothing can add a record for this ident in between: a thread with it
            # would find this one)
            self._threads.pop(ident, None)
        if thread.paused:
            for record in thread.paused:
                record.orphan()
            warnings.warn(
                f"a thread exited with {len(thread.paused)} paused {self.name} job(s); "
                f"they can never be resumed and their resources are leaked",
                ResourceWarning,
                stacklevel=2,
            )
        self._engine_thread_exited(thread)

    def _after_fork_in_child(self) -> None:
        """Jobs paused before ``fork()`` cannot be resumed in the child."""
        for thread in self._threads.values():
            for record in thread.paused:
                record.orphan()
            if thread.running is not None:
                # a job that forked: in the child it has no caller to pause back to
                thread.running.runs_on = 0
        self._threads.clear()
        self._local = threading.local()

    # -- the public API ----------------------------------------------------------

    def start_job(
        self,
        job: Optional[Job],
        ctx: Any,
        func: Optional[Callable[[Any], Any]],
        args: Any = None,
    ) -> StartResult:
        """Start a job (``job`` is None) or resume a paused one; see the contract."""
        if job.__class__ is Job:
            # The common case, checked cheaply: this thread resumes its own paused job.
            # ``paused_on`` is set only while the job is paused and resumable by its
            # owner thread (not orphaned); ``busy`` covers a job running on this thread
            # and a start_job()/close() in progress. A C job running here (started by
            # someone else) is refused by the engine's switch itself (REFUSED).
            record: JobRecord = job._record
            thread = record.paused_on
            if (
                thread is not None
                and thread.ident == _get_ident()
                and not thread.busy
                and record.backend is self
                and _job_context() is None  # (not inside a job of another backend)
                and not _is_finalizing()
            ):
                if self._check_resume is not None:
                    self._check_resume()
                return self._drive(thread, record, job, False)
        elif job is None and (ctx is None or ctx.__class__ is self._ctx_class) and _job_context() is None:
            # A new job, checked cheaply: a thread outside every job and every call of
            # ours, an open context of this backend, a callable (a C job of someone
            # else's running here is refused by the engine's switch).
            thread = self._threads.get(_get_ident())
            if (
                thread is not None
                and not thread.busy
                and thread.driving is None
                and (ctx is None or not cast(WaitCtxBase, ctx)._closed)
                and callable(func)
                and not _is_finalizing()
            ):
                record = JobRecord(self, func, job_args(args), ctx, thread)  # type: ignore[arg-type]
                handle = _new_job(Job)
                handle._record = record
                record.handle_ref = weakref.ref(handle)
                return self._drive(thread, record, handle, True)
        return self._start_job(job, ctx, func, args)

    def _start_job(self, job: Optional[Job], ctx: Any, func: Optional[Callable[[Any], Any]], args: Any) -> StartResult:
        """``start_job`` beyond its fast paths: every check, each with its own error."""
        if _is_finalizing():
            raise JobStateError("the interpreter is shutting down: jobs can no longer be started or resumed")
        if job is not None and not isinstance(job, Job):
            raise TypeError(f"job must be a Job handle or None, not {type(job).__name__}")
        current, running = self._current()
        if running is not None or running_record() is not None or self._engine_in_foreign_job():
            raise JobStateError("start_job() called from inside a running job")
        self._refuse_reentry(current, "start_job()")
        if job is None:
            if ctx is not None:
                self._check_wait_ctx(ctx)
            if func is None or not callable(func):
                raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
            thread = self._thread()
            record = JobRecord(self, func, job_args(args), ctx, thread)
            handle = Job(record)
            record.handle_ref = weakref.ref(handle)
            return self._drive(thread, record, handle, fresh=True)
        record = job._record
        if record.backend is not self:
            raise JobStateError(f"job belongs to the {record.backend.name!r} backend, not {self.name!r}")
        if record.orphaned:
            raise JobStateError("job's owner thread has gone (exited, or the process forked)")
        if record.state != "paused":
            raise JobStateError(f"cannot resume a {record.state} job")
        if record.owner != _get_ident():
            raise JobStateError("a paused job must be resumed on the thread that started it")
        if self._check_resume is not None:
            self._check_resume()
        result: StartResult = self._drive(self._thread(), record, job, fresh=False)
        return result

    def _check_wait_ctx(self, ctx: Any) -> None:
        if not isinstance(ctx, WaitCtxBase):
            raise TypeError(f"ctx must be a WaitCtx or None, not {type(ctx).__name__}")
        if ctx._backend is not self:
            raise JobStateError(f"WaitCtx belongs to the {ctx._backend.name!r} backend, not {self.name!r}")
        ctx._check_open()

    @holds_thread_busy
    def _drive(self, thread: ThreadJobs, record: JobRecord, handle: Job, fresh: bool) -> StartResult:
        """Run ``record`` (start or resume) until it pauses or ends; the contract's result.

        The hot path of every resume: kept to attribute writes, no allocation.
        """
        thread.busy += 1
        try:
            if not fresh and record.state != "paused":
                # checked by the caller, then ended by a signal handler or finaliser that
                # ran before the line above; from here on no other call can interleave
                raise JobStateError(f"the job was {record.state} by a signal handler or finaliser meanwhile")
            trace = _gettrace()
            profile = _getprofile()
            if trace is not record.trace or profile is not record.profile:
                record.trace = trace
                record.profile = profile
                record.retrace = True
            thread.driving = record
            thread.driving_fresh = fresh
            record.state = "running"
            record.paused_on = None
            thread.running = record
            try:
                if fresh:
                    if record.ctx is not None:
                        record.ctx._users.add(record)  # closing it now would free it under the job
                        if record.ctx._closed:
                            # closed after start_job checked it: by the args' __buffer__, or
                            # a finaliser the collector ran; C would get a NULL wait ctx
                            raise WaitCtxClosedError("the WaitCtx was closed while the job was being started")
                    status = self._engine_start(thread, record)
                else:
                    switch = record.switch
                    if switch is not None:
                        raw = switch()
                        status = _PAUSE if raw == 2 else self._engine_resumed(thread, record, raw)
                    else:
                        status = self._engine_resume(thread, record)
                if status is _PAUSE and record.no_ctx_pause:
                    status = self._resume_without_ctx(thread, record, status)
            finally:
                thread.running = None
            if status is _PAUSE:
                if fresh:
                    thread.paused[record] = None  # unfinished jobs, in order of first pause
                record.state = "paused"
                record.paused_on = thread
                thread.driving = None
                return _tuple_new(StartResult, (_PAUSE, handle, None))
            if status is None:
                return self._refused(thread, record, fresh)
            return self._finished(thread, record, status)
        except BaseException:
            # Not the job's exception (start_job raises that after _finished): the
            # engine failed, a signal handler raised between two lines of ours, or
            # the caller's recursion limit was reached in our bookkeeping after the
            # switch. A record left "running" would be a job nobody can resume or close.
            if record.state == "running":
                headroom = _HEADROOM
                headroom.active += 1
                try:
                    try:
                        # No Python call may come first: at the recursion limit it would
                        # fail too (3.12+ leaves a RecursionError's handler no headroom).
                        if headroom.active == 1 and not headroom.pending:
                            headroom.base = sys.getrecursionlimit()
                            _setrecursionlimit(headroom.base + _SETTLE_HEADROOM)
                        self._settle_interrupted(thread, record, fresh)
                    except BaseException:
                        # interrupted again (Ctrl-C pressed twice) before it was settled;
                        # settling twice is harmless, a record left "running" is not
                        if record.state == "running":
                            self._settle_interrupted(thread, record, fresh)
                        raise
                finally:
                    headroom.active -= 1
                    headroom.restore()
            if record.state != "running":
                thread.driving = None
            raise
        finally:
            thread.busy -= 1
            if (thread.pending or _HEADROOM.pending) and thread.running is None and not _busy(thread):
                self._drain_pending(thread)

    def _refused(self, thread: ThreadJobs, record: JobRecord, fresh: bool) -> StartResult:
        """The engine refused to switch (a C job of someone else's runs on this thread:
        start_job() from inside it); nothing happened to the job."""
        if fresh:
            self._finished(thread, record, Status.ERR)
        else:
            record.state = "paused"
            record.paused_on = thread
            thread.driving = None
        raise JobStateError("start_job() called from inside a running job")

    def _resume_without_ctx(self, thread: ThreadJobs, record: JobRecord, status: Optional[Status]) -> Optional[Status]:
        """A job started without a wait context paused: C would crash on its resume.

        Paused by ``pause_job()``: it is resumed at once, and that call raises
        ``JobStateError``. Paused inside C (an engine, which got a private context
        from us): C cannot be told, so it is resumed until it gets back to Python,
        waiting between resumes for what the engine left in that private context
        (its wait fds; else a wait that doubles from 1 ms to 0.1 s, never a busy
        loop), for at most ``DEFAULT_CLOSE_TIMEOUT`` seconds; then ``PAUSE`` is
        returned after all (close or resume the job).
        """
        give_up = 0.0
        wait = 0.001
        while status is _PAUSE:
            if record.in_pause:
                record.pause_error = True
            else:
                now = time.monotonic()
                if not give_up:
                    give_up = now + _settings.default_close_timeout()
                elif now >= give_up:
                    break
                self._engine_wait_private(thread, min(wait, give_up - now))
                wait = min(wait * 2, 0.1)
            status = self._engine_resume(thread, record)
        return status

    def _settle_interrupted(self, thread: ThreadJobs, record: JobRecord, fresh: bool) -> None:
        """Make the records agree with where the engine left a job whose drive was cut short.

        A job found paused is closed, as the python backend does when a signal
        interrupts its handoff: the caller gets the exception, not the handle. A
        job being closed is left paused: ``_cancel`` decides what that means.
        """
        thread.running = None
        status = self._engine_settle(thread, record)
        if status == _PAUSE and not record.orphaned:
            if fresh:
                thread.paused[record] = None
            record.state = "paused"
            record.paused_on = thread
            if not record.cancelled:
                self._cancel_quietly(thread, record, INTERRUPTED_JOB)
            return
        # It ended, or it never started, or the engine gave up on it (python: a job
        # detached by a second interrupt runs on, ownerless, and touches none of this).
        # What it returned or raised is lost to the interrupt.
        thread.paused.pop(record, None)
        if record.ctx is not None:
            record.ctx._user_done(record)
        record.handle = None
        record.value = record.exception = None
        record.state = "finished"

    def _finished(self, thread: ThreadJobs, record: JobRecord, status: Status) -> StartResult:
        # the state last: if a signal handler raises in between, the record is still
        # "running" and _settle_interrupted finishes the bookkeeping
        thread.paused.pop(record, None)
        if record.ctx is not None:
            record.ctx._user_done(record)
        record.handle = None
        record.state = "finished"
        thread.driving = None
        if status != _FINISH:
            return _tuple_new(StartResult, (STATUSES[status], None, None))
        exc, record.exception = record.exception, None
        value, record.value = record.value, None
        if exc is not None:
            try:
                raise exc
            finally:
                del exc
        if value.__class__ is not int or not C_INT_MIN <= value <= C_INT_MAX:  # (the common case inline)
            value = job_result(value, record.func_name)
        return _tuple_new(StartResult, (_FINISH, None, value))

    def _running_here(self) -> Optional[JobRecord]:
        """The record of this backend's job running the calling code, or None.

        Found from the job's context (``_running``); when the code runs in a context
        that is not the job's own (it ran ``Context().run``), from this thread's
        records, where the engine must confirm that the caller is inside the job
        and not a signal handler or finaliser on the caller's side of a start_job().
        """
        record: Optional[JobRecord] = running_record()
        if record is not None and record.backend is self:
            return record
        _, record = self._current()
        if record is None or not self._engine_in_job():
            return None
        return record

    # pause_job and get_current_job: the module-level functions below, which are also
    # pyossl_async's (called with no argument they act on whichever backend runs the job)
    pause_job = _pause_job_impl
    get_current_job = _get_current_job_impl

    def get_wait_ctx(self, job: Job) -> Any:
        """The job's ``WaitCtx``; ``None`` once it has finished (C returns NULL)."""
        if not isinstance(job, Job):
            raise TypeError(f"job must be a Job handle, not {type(job).__name__}")
        record: JobRecord = job._record
        if record.backend is not self:
            raise JobStateError(f"job belongs to the {record.backend.name!r} backend, not {self.name!r}")
        if record.state == "finished":
            return None
        return record.ctx

    @contextmanager
    def pause_blocked(self) -> Iterator[None]:
        """``block_pause()`` for the duration of a ``with`` block."""
        self.block_pause()
        try:
            yield
        finally:
            self.unblock_pause()

    @abc.abstractmethod
    def block_pause(self) -> None: ...

    @abc.abstractmethod
    def unblock_pause(self) -> None: ...

    @holds_thread_busy
    def cleanup_thread(self) -> None:
        """Free this thread's job pool; refused while the thread has paused jobs."""
        thread, running = self._current()
        if running is not None:
            raise JobStateError("cleanup_thread() called from inside a running job")
        self._refuse_reentry(thread, "cleanup_thread()")
        if thread is not None and thread.pending:
            self._drain_pending(thread)
        if thread is not None and thread.paused:
            self._reap_abandoned(thread.paused)
        if thread is not None and thread.paused:
            raise JobStateError(
                f"cleanup_thread() with {len(thread.paused)} paused job(s): "
                f"close or finish them first (C would leak them)" + kept_note(thread.paused)
            )
        if thread is None:
            self._engine_cleanup_thread(None)
            return
        # busy: a signal handler that starts a job now is refused, so none can be
        # paused in the pool this frees
        thread.busy += 1
        try:
            if thread.paused:  # a signal handler paused one between the check and here
                raise JobStateError(f"cleanup_thread() with {len(thread.paused)} paused job(s)")
            self._engine_cleanup_thread(thread)
        finally:
            thread.busy -= 1

    # -- introspection (pyossl_async.testing) -------------------------------------

    def _paused_records(self, ident: Optional[int] = None) -> List[JobRecord]:
        """The paused jobs of thread ``ident`` (default: the calling one), oldest first."""
        thread = self._threads.get(_get_ident() if ident is None else ident)
        if thread is None:
            return []
        return [r for r in list(thread.paused) if r.state == "paused"]

    # -- closing -----------------------------------------------------------------
    #
    # Two kinds of close. One that may wait for the job's engine, bounded by a close
    # timeout: ``Job.close()`` and a driver giving up on its job (``_cancel``). And one
    # that must not wait: the collector, closes deferred to a safe moment, the first
    # pass at exit (``_cancel_quietly``): it unwinds a job as far as its engine lets it
    # go now, and a job still paused inside C code after that is kept by the library
    # (``_keeper``), which unwinds it once its engine signals. A driver's close
    # that times out hands its job over to the library the same way.

    def _close(self, record: JobRecord, handle: Optional[Job], timeout: Any = DEFAULT_TIMEOUT) -> None:
        if record.state == "finished":
            return
        thread = self._close_checks(record)
        self._cancel(thread, record, handle, timeout)

    def begin_close(self, job: Job) -> Closing:
        """For the drivers: a close of the paused ``job`` that they step through themselves
        (awaiting between steps); ``JobStateError`` when this caller may not close it."""
        record: JobRecord = job._record
        return Closing(self, self._close_checks(record), record, job)

    def _close_checks(self, record: JobRecord) -> ThreadJobs:
        """The thread whose paused job ``record`` is, if this caller may close it; else JobStateError."""
        if record.state == "finished":
            raise JobStateError("the job has finished")
        if record.orphaned:
            raise JobStateError("job's owner thread has gone; it cannot be closed")
        if record.state == "running":
            raise JobStateError("cannot close a running job")
        if record.owner != _get_ident():
            raise JobStateError("a paused job must be closed on the thread that started it")
        thread, running = self._current()
        if running is not None or thread is None:
            raise JobStateError("cannot close a job from inside another job")
        self._refuse_reentry(thread, "close()")
        return thread

    @holds_thread_busy
    def _cancel(
        self,
        thread: ThreadJobs,
        record: JobRecord,
        handle: Optional[Job],
        timeout: Any = DEFAULT_TIMEOUT,
        watch: Any = None,
        given_up: bool = False,
    ) -> bool:
        """Unwind a paused job (``JobCancelled`` inside it), however often it must be resumed,
        waiting for its engine in between, for at most ``timeout`` seconds; past it
        ``AsyncError`` (the job stays paused). True once the job has ended.

        ``watch``: a driver's wait state for the job (its engine holds that
        watch's callback token); a job the library keeps is waited for with its own.
        ``given_up``: a driver's close: past the timeout, False instead of the
        ``AsyncError`` (the caller hands the job to the library).
        """
        if _is_finalizing():
            raise JobStateError("the interpreter is shutting down: a paused job can no longer be resumed")
        handle = self._handle_of(record, handle)

        if record.state != "paused":  # a signal handler or finaliser got there first
            return True
        if self._check_resume is not None:
            self._check_resume()
        kept = record.kept
        if watch is None and kept is not None:
            watch = kept.watch
        if timeout is DEFAULT_TIMEOUT:
            timeout = _settings.default_close_timeout()
        # busy for the whole close, waits included: a signal handler or finaliser
        # that starts, resumes or closes a job of this thread meanwhile is refused
        # (no return inside the try: 3.12 sets a return's line before its inlined
        # finally, where an exception would skip the decrement)
        thread.busy += 1
        try:
            ended = unwind(Closing(self, thread, record, handle), timeout, watch)
        finally:
            thread.busy -= 1
            if record.kept is not None and cast(str, record.state) != "paused":  # (the close changes it)
                release(record)
            if (thread.pending or _HEADROOM.pending) and thread.running is None and not _busy(thread):
                self._drain_pending(thread)
        if ended or given_up:
            return ended
        raise AsyncError(stuck_message(timeout, "kept, closable" if kept is not None else "closable"))

    def _handle_of(self, record: JobRecord, handle: Optional[Job]) -> Job:
        """The job's public handle (resurrected by its finaliser, or still referenced)."""
        if handle is None:
            handle = record.handle or (record.handle_ref() if record.handle_ref is not None else None)
        if handle is None:  # pragma: no cover - finalisers resurrect the handle first
            handle = Job(record)
        return handle

    def _give_up(self, record: JobRecord, handle: Job, watch: Any, timeout: Optional[float]) -> Optional[BaseException]:
        """A driver gives up on its job: close it once, for at most ``timeout`` seconds
        (default ``DEFAULT_CLOSE_TIMEOUT``), waiting with the driver's ``watch``. A job
        still paused after that is kept by the library, with the watch's callback
        registration, and unwound as soon as its engine signals. What the close
        raised (not ``JobCancelled``), if anything."""
        thread: Optional[ThreadJobs] = None
        try:
            thread = self._close_checks(record)
            if self._cancel(thread, record, handle, DEFAULT_TIMEOUT if timeout is None else timeout, watch, True):
                return None
        except BaseException as exc:  # noqa: BLE001 - the driver reports it, once
            if thread is not None:
                self._keep(thread, record, handle, watch)
            return exc
        self._keep(thread, record, handle, watch)
        # made, not raised: no traceback, so no frame of the close (nor its callers'
        # locals, the driver's context among them) stays reachable from the report
        return AsyncError(stuck_message(_settings.default_close_timeout() if timeout is None else timeout, "kept"))

    def _keep(self, thread: ThreadJobs, record: JobRecord, handle: Job, watch: Any = None) -> None:
        """The library keeps a paused job its owner gave up on (see ``_keeper``), if it
        can ever be resumed; nothing for a job that has ended."""
        if (
            record.state == "paused"
            and record.kept is None
            and record.owner == thread.ident
            and not record.orphaned
            and not _is_finalizing()
        ):
            keep(self, thread, record, handle, watch)

    def _cancel_step(self, thread: ThreadJobs, record: JobRecord, handle: Job) -> bool:
        """Resume a job being closed once, ``JobCancelled`` pending; True once it has ended.

        False: it paused again, inside C code (a ``pause_job()`` of a cancelled
        job raises). Another exception the job raised while unwinding propagates.
        """
        if record.state != "paused":  # ended meanwhile (a signal handler closed it)
            return True
        record.cancelled = True
        if not record.in_pause:
            self._engine_arm_cancel(thread, record)  # paused inside C: no pause_job() of ours will see it
        try:
            status, _, _ = self._drive(thread, record, handle, fresh=False)
        except JobCancelled:
            return True
        return status != _PAUSE

    def _cancel_abort(self, thread: ThreadJobs, record: JobRecord) -> None:
        """A close given up (deadline, Ctrl-C): the job stays paused, closable again, and a
        plain resume must not raise ``JobCancelled`` out of ``start_job``."""
        if record.state != "paused":
            return
        record.cancelled = False
        self._engine_disarm_cancel(thread, record)

    def _handle_died(self, record: JobRecord, handle: Job) -> None:
        """A paused job's last handle went away: unwind it, now or at a safe moment.

        Never waits for an engine: a job still paused inside C code after the
        unwinding that needs no waiting is kept by the library (``_keeper``).
        """
        if _is_finalizing():
            # CPython is deleting thread states, the job's among them: never touch it
            return
        record.handle = handle  # resurrect: get_current_job() inside must return it
        try:
            warnings.warn(
                f"paused job {handle!r} was garbage collected; closing it",
                ResourceWarning,
                source=handle,
                stacklevel=2,
            )
        except BaseException:  # noqa: BLE001 - warnings may be errors; closing goes on
            pass
        thread = self._threads.get(record.owner)
        if thread is None:
            return
        if (
            record.owner == _get_ident()
            and thread.running is None
            and not _busy(thread)
            and not self._engine_in_foreign_job()  # (a C job runs here: not now)
        ):
            self._cancel_quietly(thread, record)
        else:
            thread.pending.append(record)

    def _cancel_quietly(
        self,
        thread: ThreadJobs,
        record: JobRecord,
        what: str = "a garbage-collected paused job",
        watch: Any = None,
    ) -> None:
        """Unwind a job nobody can be told about, without waiting for its engine (a job
        still paused inside C code is kept by the library, or tried again if it is
        kept already); what goes wrong goes to ``sys.unraisablehook``. ``watch``: a
        driver's wait state for the job, taken over if the job is kept."""
        try:
            self._unwind_now(thread, record, watch)
        except BaseException as exc:  # noqa: BLE001 - nobody to raise it to
            report_unraisable(exc, f"Exception ignored while closing {what}")
            if (
                not isinstance(exc, Exception)  # an interrupt (Ctrl-C), not a failure of the close
                and record.state == "paused"
                and record.kept is None
                and record.owner == thread.ident
                and not record.orphaned
                and record not in thread.pending
            ):
                thread.pending.append(record)  # cut short: tried again at the thread's next idle moment
        finally:
            if record.state == "finished":
                record.handle = None

    @holds_thread_busy
    def _unwind_now(self, thread: ThreadJobs, record: JobRecord, watch: Any = None) -> bool:
        """Unwind a paused job as far as its engine lets it go without waiting; a job still
        paused inside C code after that is kept by the library. True once it has ended."""
        if _is_finalizing():
            raise JobStateError("the interpreter is shutting down: a paused job can no longer be resumed")
        handle = self._handle_of(record, None)

        if record.state != "paused":  # a signal handler or finaliser got there first
            return record.state == "finished"
        if self._check_resume is not None:
            self._check_resume()
        thread.busy += 1
        try:
            return unwind_or_keep(self, thread, record, handle, watch)
        finally:
            thread.busy -= 1
            if (thread.pending or _HEADROOM.pending) and thread.running is None and not _busy(thread):
                self._drain_pending(thread)

    def _reap_abandoned(self, records: Iterable[JobRecord]) -> None:
        """Unwind this thread's paused jobs among ``records`` whose handles are gone.

        A dropped handle's ``__del__`` unwinds its job, but a signal handler can
        raise at its first line (CPython 3.9 runs them between any two
        instructions), and the job would stay paused for good. Before refusing to
        close a WaitCtx or clean up a thread because of paused jobs, finish what
        those finalisers could not, and try the jobs the library keeps once more.
        None of it waits for an engine.
        """
        thread, running = self._current()
        if thread is None or running is not None or _busy(thread):
            return
        if thread.driving is not None:
            self._settle_leftover(thread)
        for record in list(records):
            if (
                record.state == "paused"
                and record.owner == thread.ident
                and not record.orphaned
                # kept, or its finaliser began (it resurrected the handle) or never ran
                and (record.handle is not None or record.handle_ref is None or record.handle_ref() is None)
            ):
                self._cancel_quietly(thread, record)

    def _drain_pending(self, thread: ThreadJobs) -> None:
        if _HEADROOM.pending:
            _HEADROOM.restore()
        while thread.pending and thread.running is None and not _busy(thread):
            if self._engine_in_foreign_job():  # a C job runs here: at a later call
                return
            try:
                record = thread.pending.pop(0)
            except IndexError:  # a signal handler drained it between the check and here
                break
            if record.state == "paused" and not record.orphaned:
                self._cancel_quietly(thread, record)
            elif record.kept is not None:

                release(record)  # ended meanwhile, or orphaned: the library lets go of it

    def _close_owned_paused_jobs(self) -> None:
        """At interpreter exit: unwind the calling thread's paused jobs so ``finally`` runs.

        All of them within one ``DEFAULT_CLOSE_TIMEOUT``: each is unwound as far as
        it goes without waiting, then the engines of those still paused inside C
        code are waited for all together, each job unwound as its engine signals.
        What is left after that is reported in one line on stderr.

        Paused jobs of threads that are still running (daemon threads: the others
        were joined before exit handlers run) can only be resumed by their own
        thread, which will never do it now; a ResourceWarning says so, as for
        jobs orphaned by a thread that exits.
        """
        thread, running = self._current()
        if thread is not None and running is None:

            close_timeout = _settings.default_close_timeout()
            deadline = time.monotonic() + close_timeout  # for all of them together
            for record in list(thread.paused):
                if record.state == "paused" and not record.orphaned:
                    self._cancel_quietly(thread, record, "a paused job at interpreter exit")
            left = wait_for_kept(self, thread, deadline)
            if left:
                try:
                    print(
                        f"pyossl_async: at interpreter exit, {left} paused {self.name} job(s) could not be "
                        f"unwound within {close_timeout:g} s (PYOSSL_ASYNC_CLOSE_TIMEOUT): paused "
                        f"inside C code whose engine did not complete; their finally blocks did not run",
                        file=sys.stderr,
                        flush=True,
                    )
                except BaseException:  # noqa: BLE001 - no stderr (closed): nothing to tell
                    pass
        others = [t for t in list(self._threads.values()) if t is not thread]
        stuck = sum(1 for t in others for r in list(t.paused) if r.state == "paused" and not r.orphaned)
        if stuck:
            warnings.warn(
                f"interpreter exit: {stuck} paused {self.name} job(s) of threads still running "
                f"(daemon threads) cannot be unwound; their finally blocks will not run",
                ResourceWarning,
                stacklevel=2,
            )


def _close_main_thread_jobs(ref: Callable[[], Optional[BackendBase]]) -> None:
    backend = ref()
    if backend is not None:
        backend._close_owned_paused_jobs()

