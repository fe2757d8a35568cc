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
import contextvars
import functools
import os
import sys
import threading
import time
import warnings
import weakref
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Set, cast

from .._constants import Status
from .._errors import JobCancelled, JobStateError, WaitCtxClosedError
from .._job import Job, JobStateName
from .._protocol import Backend, BackendName, StartResult, WaitCtx
from .._unraisable import report_unraisable
from .._validate import job_args, job_result

__all__ = ["BackendBase", "Job", "JobRecord", "ThreadJobs", "WaitCtxBase"]

_get_ident = threading.get_ident
_PAUSE = Status.PAUSE
_FINISH = Status.FINISH
#: extra recursion depth our bookkeeping may use to settle a job whose drive failed
_SETTLE_HEADROOM = 200


class _RecursionHeadroom:
    """The interpreter's recursion limit, raised while drives cut short are settled.

    The limit is interpreter-wide: it is raised once however many threads settle at
    the same time and put back when the last is done. CPython 3.12+ refuses a
    limit below the current depth, so when the drive failed right at the limit the
    old one is put back at the next library call of any thread (``pending``). A
    limit the program set in between is left alone.
    """

    __slots__ = ("active", "base", "pending")

    def __init__(self) -> None:
        self.active = 0
        self.base = 0
        self.pending = False

    def restore(self) -> None:
        if self.active:
            return
        if sys.getrecursionlimit() != self.base + _SETTLE_HEADROOM:
            self.pending = False  # the program's own limit: keep it
            return
        try:
            _setrecursionlimit(self.base)
            self.pending = False
        except RecursionError:
            self.pending = True  # the stack is still deeper than the old limit


_HEADROOM = _RecursionHeadroom()
#: the builtin itself, taken before the openssl backend may wrap ``sys.setrecursionlimit``
#: (3.9/3.10): settling happens right at the recursion limit, where no Python frame can run
_setrecursionlimit = sys.setrecursionlimit
#: what ``_cancel_quietly`` reports closing when a start or resume was cut short
INTERRUPTED_JOB = "a paused job whose start_job() was interrupted"
#: OpenSSL's int statuses as enum members, without the cost of Status(n)
STATUSES = tuple(Status)
#: a StartResult from a tuple, without the NamedTuple constructor's argument handling
_start_result: Callable[[tuple[Status, Optional[Job], Optional[int]]], StartResult] = functools.partial(
    tuple.__new__, StartResult
)
#: ``Job.close()``'s timeout when none is given: the drive layer's default
DEFAULT_TIMEOUT: Any = object()
_is_finalizing = sys.is_finalizing


class JobRecord:
    """Everything one job carries, whatever runs it. Never exposed to users."""

    __slots__ = (
        "__weakref__",
        "args",
        "backend",
        "cancelled",
        "context",
        "ctx",
        "engine",
        "exception",
        "func",
        "func_name",
        "handle",
        "handle_ref",
        "in_pause",
        "no_ctx_pause",
        "orphaned",
        "owner",
        "pause_error",
        "profile",
        "state",
        "trace",
        "value",
    )

    def __init__(
        self,
        backend: BackendBase,
        func: Callable[[Any], Any],
        args: Any,
        ctx: Optional[WaitCtxBase],
        owner: int,
    ) -> None:
        self.backend = backend
        self.func: Optional[Callable[[Any], Any]] = func
        #: for messages once ``func`` has been handed to the job
        self.func_name = getattr(func, "__qualname__", None) or type(func).__name__
        self.args = args
        self.ctx = ctx
        self.context = contextvars.copy_context()
        self.trace: Any = None
        self.profile: Any = None
        self.state: JobStateName = "running"
        self.value: Any = None
        self.exception: Optional[BaseException] = None
        self.cancelled = False
        self.owner = owner
        # the public handle, strongly, only once its finaliser resurrected it
        self.handle: Any = None
        #: the public handle, weakly: paused jobs must be collectable
        self.handle_ref: Optional[weakref.ref[Job]] = None
        self.engine: Any = None
        #: a pause of this job must become a JobStateError (no wait context)
        self.no_ctx_pause = ctx is None
        self.pause_error = False
        self.orphaned = False
        #: paused by ``pause_job()`` (Python); False while paused inside C code
        self.in_pause = False

    def interrupted(self, exc: BaseException) -> None:
        """An exception from outside the job's function hit the job's frames.

        A signal handler's ``KeyboardInterrupt`` as the job was being entered or
        left: it becomes the job's exception (``start_job`` raises it), with the
        function's own exception, if any, as its context.
        """
        own = self.exception
        if own is not None and own is not exc and exc.__context__ is None:
            exc.__context__ = own
        self.exception = exc

    # Called by the engine, inside the job, on the job's own stack and thread state.
    def run_in_job(self) -> None:
        func, args = self.func, self.args
        self.func = self.args = None  # the job owns them now; drop ours early
        try:
            _sync_tracers(self)
            self.value = self.context.run(func, args)  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001 - re-raised by start_job
            self.exception = exc
        finally:
            if sys.gettrace() is not None:
                sys.settrace(None)
            if sys.getprofile() is not None:
                sys.setprofile(None)


def _sync_tracers(record: JobRecord) -> None:
    """Give the job the caller's tracer and profiler (debuggers, coverage).

    Only Python callables can be passed on: a profiler installed from C (cProfile
    before 3.12) shows up in ``sys.getprofile()`` as an object ``sys.setprofile``
    refuses, and the job then runs unprofiled.
    """
    trace, profile = record.trace, record.profile
    if sys.gettrace() is not trace and (trace is None or callable(trace)):
        sys.settrace(trace)
    if sys.getprofile() is not profile and (profile is None or callable(profile)):
        sys.setprofile(profile)


class ThreadJobs:
    """Per OS thread: the running job, the paused ones, closes waiting for a safe moment."""

    __slots__ = ("__weakref__", "busy", "driving", "driving_fresh", "engine", "ident", "paused", "pending", "running")

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.running: Optional[JobRecord] = None
        #: the record a start_job()/close() of this thread is driving, until its state is
        #: settled; one left "running" (interrupts hit every attempt to settle it) is
        #: settled at the thread's next library call
        self.driving: Optional[JobRecord] = None
        self.driving_fresh = False
        #: insertion-ordered (a dict used as an ordered set): order of pausing
        self.paused: Dict[JobRecord, None] = {}
        self.pending: List[JobRecord] = []
        self.busy = 0
        self.engine: Any = None


def _busy(thread: ThreadJobs) -> bool:
    """Whether the library is in the middle of a ``start_job()``/``close()``/``cleanup_thread()``
    on this thread (the caller must be that thread, outside its jobs).

    ``thread.busy`` says so, unless it is stale: CPython 3.9 and 3.10 run signal
    handlers as an exception enters a ``finally`` block (3.9 between any two
    instructions), so an interrupt landing there skips the decrement. The counter is trusted only
    while one of the library's busy frames is really on the stack; a stale one is
    reset instead of refusing every later call of the thread.
    """
    if not thread.busy:
        return False
    if not _STALE_BUSY_POSSIBLE or thread.running is not None:
        return True  # (a job of this thread runs: its caller's frames are elsewhere)
    frame: Any = sys._getframe(1)
    for _ in range(_BUSY_FRAMES):
        if frame is None:
            thread.busy = 0  # no busy frame below us: stale
            return False
        if frame.f_code in _BUSY_CODES:
            return True
        frame = frame.f_back
    return True  # too deep to tell (nested handlers): keep refusing


#: CPython 3.9 and 3.10 run signal handlers at the first instruction of a ``finally``
#: entered by an exception (3.11+ check only at calls and backward jumps)
_STALE_BUSY_POSSIBLE = sys.version_info < (3, 11)
#: how many frames ``_busy`` looks at; a busy frame sits within a few dozen of them
_BUSY_FRAMES = 64


#: the code of the methods that hold a thread busy (filled in below BackendBase)
_BUSY_CODES: frozenset[Any] = frozenset()


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


def _note(exc: BaseException, text: str) -> bool:
    """Attach ``text`` to ``exc`` as a note (3.11+); False where notes do not exist."""
    add_note = getattr(exc, "add_note", None)
    if add_note is None:
        return False
    add_note(text)
    return True


class WaitCtxBase(WaitCtx):
    """What every backend's ``WaitCtx`` shares: closed checks, users, ``with``, finalisation."""

    def __init__(self, backend: BackendBase) -> None:
        self._backend: Any = backend
        self._closed = False
        #: jobs started with this context that have not finished
        self._users: Set[JobRecord] = set()
        #: close as soon as the last of ``_users`` finishes (see ``close_when_unused``)
        self._close_when_unused = False
        backend._open_ctxs.add(self)

    @property
    def backend(self) -> Backend:
        """The backend this context belongs to."""
        backend: Backend = self._backend
        return backend

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise WaitCtxClosedError("operation on a closed WaitCtx")

    def close(self) -> None:
        """Free the context (``ASYNC_WAIT_CTX_free``): cleanup functions of live fds run.

        Idempotent. Raises ``JobStateError``, changing nothing, while a job that
        was started with this context has not finished.
        """
        if self._closed:
            return
        if self._users:
            self._backend._reap_abandoned(self._users)
        if self._users:
            states = sorted(r.state for r in self._users)
            raise JobStateError(
                f"WaitCtx is still used by {len(self._users)} unfinished job(s) ({', '.join(states)})"
            )
        self._closed = True
        self._backend._open_ctxs.discard(self)
        self._free()

    def close_when_unused(self) -> None:
        """Close now, or, while a paused job still uses the context, as soon as it has ended.

        For an owner that gives up on a job it could not close (a driver whose
        close timed out): the context goes with the job instead of leaking.
        """
        if self._closed:
            return
        if self._users:
            self._backend._reap_abandoned(self._users)
        if self._users:
            self._close_when_unused = True
            return
        self.close()

    def _user_done(self, record: JobRecord) -> None:
        """A job started with this context has ended."""
        self._users.discard(record)
        if self._close_when_unused and not self._users and not self._closed:
            try:
                self.close()
            except BaseException as exc:  # noqa: BLE001 - a job's end; nobody to raise to
                report_unraisable(exc, "Exception while closing a WaitCtx its last job left", self)

    @abc.abstractmethod
    def _free(self) -> None:
        """Release the context; cleanup functions run here, newest fd first."""

    def __enter__(self) -> Any:
        self._check_open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Close the jobs still using the context (unwinding them, like a task group), then
        the context. An exception on its way out of the block is never replaced: what
        closing raises is attached to it as notes (3.11+) or reported as unraisable."""
        if self._closed:
            return
        exc: Optional[BaseException] = exc_info[1] if len(exc_info) > 1 else None
        failures: List[BaseException] = []
        for record in list(self._users):
            if record.state != "paused":
                continue
            handle = record.handle or (record.handle_ref() if record.handle_ref is not None else None)
            try:
                if handle is not None:
                    handle.close()
                else:
                    self._backend._reap_abandoned([record])
            except BaseException as failure:  # noqa: BLE001 - reported below, the rest goes on
                failures.append(failure)
            del handle
        try:
            self.close()
        except BaseException as failure:  # noqa: BLE001
            failures.append(failure)
        if not failures:
            return
        if exc is None:
            first = failures[0]
            for other in failures[1:]:
                _note(first, f"also while leaving the WaitCtx block: {other!r}")
            raise first
        for problem in failures:
            if not _note(exc, f"while leaving the WaitCtx block: {problem!r}"):
                report_unraisable(problem, "Exception while leaving a WaitCtx block that raised")

    def __del__(
        self,
        _warn: Callable[..., None] = warnings.warn,
        _category: type = ResourceWarning,
        _id: Callable[[object], int] = id,
    ) -> None:
        # An open context can die late in interpreter shutdown, after module globals
        # and even builtins are gone: only attributes and the defaults bound above
        # are used, and bare ``except`` (naming BaseException would look it up).
        # Whatever happens to the warning, the close runs: users rely on their
        # cleanup functions, as with ASYNC_WAIT_CTX_free.
        if self.__dict__.get("_closed", True):
            return
        try:
            _warn(
                f"unclosed <pyossl_async.WaitCtx open backend={self._backend.name} at {_id(self):#x}>",
                _category,
                source=self,
                stacklevel=2,
            )
        except:  # noqa: E722 - see above
            pass
        try:
            self.close()
        except:  # noqa: E722 - see above
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<pyossl_async.WaitCtx {state} backend={self._backend.name} at {id(self):#x}>"


class BackendBase(abc.ABC):
    """The contract's ``Backend``, minus the engine."""

    name: BackendName
    openssl_version: Optional[str] = None
    #: checked before every resume and close (the openssl backend's depth check on 3.9/3.10)
    _check_resume: Optional[Callable[[], None]] = None

    def __init__(self) -> None:
        self._threads: Dict[int, ThreadJobs] = {}
        self._local = threading.local()
        self._lock = threading.Lock()
        #: every open WaitCtx of this backend (weakly: an unclosed one still dies)
        self._open_ctxs: weakref.WeakSet[WaitCtxBase] = weakref.WeakSet()
        atexit.register(_close_main_thread_jobs, weakref.ref(self))

    def __repr__(self) -> str:
        return f"<pyossl_async backend {self.name!r}>"

    # -- engine interface --------------------------------------------------------

    @abc.abstractmethod
    def _engine_start(self, thread: ThreadJobs, record: JobRecord) -> Status:
        """Start ``record`` in a new job; return OpenSSL's status."""

    @abc.abstractmethod
    def _engine_resume(self, thread: ThreadJobs, record: JobRecord) -> Status:
        """Resume the paused ``record``; return OpenSSL's status."""

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
            with self._lock:
                thread = self._threads.setdefault(ident, fresh)
            if thread is fresh:
                self._local.sentinel = _ThreadSentinel(self, fresh)
        return thread

    def _thread_exited(self, ident: int, thread: ThreadJobs) -> None:
        """``thread``'s OS thread has ended (its sentinel died with its ``threading.local``)."""
        with self._lock:
            if self._threads.get(ident) is thread:  # (never another record for the same ident)
                del self._threads[ident]
        if thread.paused:
            for record in thread.paused:
                record.orphaned = True
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
                record.orphaned = True
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
        if _is_finalizing():
            raise JobStateError("the interpreter is shutting down: jobs can no longer be started or resumed")
        if job is not None:
            if not isinstance(job, Job):
                raise TypeError(f"job must be a Job handle or None, not {type(job).__name__}")
            # the common case, checked cheaply: this thread resumes its own paused job
            record: JobRecord = job._record
            thread = self._threads.get(_get_ident())
            if (
                thread is not None
                and thread.running is None
                and not thread.busy
                and record.state == "paused"
                and record.owner == thread.ident
                and record.backend is self
                and not record.orphaned
                and not self._engine_in_foreign_job()
            ):
                if self._check_resume is not None:
                    self._check_resume()
                return self._drive(thread, record, job, False)
        current, running = self._current()
        if running is not None or self._engine_in_foreign_job():
            raise JobStateError("start_job() called from inside a running job")
        self._refuse_reentry(current, "start_job()")
        if job is None:
            if ctx is not None:
                self._check_wait_ctx(ctx)
            if func is None or not callable(func):
                raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
            thread = self._thread()
            record = JobRecord(self, func, job_args(args), ctx, thread.ident)
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
        return self._drive(self._thread(), record, job, fresh=False)

    def _check_wait_ctx(self, ctx: Any) -> None:
        if not isinstance(ctx, WaitCtxBase):
            raise TypeError(f"ctx must be a WaitCtx or None, not {type(ctx).__name__}")
        if ctx._backend is not self:
            raise JobStateError(f"WaitCtx belongs to the {ctx._backend.name!r} backend, not {self.name!r}")
        ctx._check_open()

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
            record.trace = sys.gettrace()
            record.profile = sys.getprofile()
            thread.driving = record
            thread.driving_fresh = fresh
            record.state = "running"
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
                    status = self._engine_resume(thread, record)
                if status == _PAUSE and record.no_ctx_pause:
                    status = self._resume_without_ctx(thread, record, status)
            finally:
                thread.running = None
            if status == _PAUSE:
                if fresh:
                    thread.paused[record] = None  # unfinished jobs, in order of first pause
                record.state = "paused"
                thread.driving = None
                return _start_result((_PAUSE, handle, None))
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

    def _resume_without_ctx(self, thread: ThreadJobs, record: JobRecord, status: Status) -> Status:
        """A job started without a wait context paused: C would crash on its resume.

        Paused by ``pause_job()``: it is resumed at once, and that call raises
        ``JobStateError``. Paused inside C (an engine, which got a private context
        from us): C cannot be told, so it is resumed at once, again and again,
        until it gets back to Python, for at most ``DEFAULT_CLOSE_TIMEOUT``
        seconds; then ``PAUSE`` is returned after all (close or resume the job).
        """
        give_up = 0.0
        while status == _PAUSE:
            if record.in_pause:
                record.pause_error = True
            else:
                now = time.monotonic()
                if not give_up:
                    from ..drive._blocking import DEFAULT_CLOSE_TIMEOUT

                    give_up = now + DEFAULT_CLOSE_TIMEOUT
                elif now >= give_up:
                    break
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
            return _start_result((STATUSES[status], None, None))
        exc, record.exception = record.exception, None
        value, record.value = record.value, None
        if exc is not None:
            try:
                raise exc
            finally:
                del exc
        return _start_result((_FINISH, None, job_result(value, record.func_name)))

    def pause_job(self) -> bool:
        """Pause the running job until it is resumed; ``True`` at once outside a job."""
        thread = self._threads.get(_get_ident())
        record = thread.running if thread is not None else None
        if record is None or thread is None:
            thread, record = self._current()  # a backend whose jobs run on other threads
            if record is None or thread is None:
                return True
        if not self._engine_in_job():
            # a signal handler or finaliser running on the caller's side of a
            # start_job() in progress: that is outside the job
            return True
        if record.cancelled:
            raise JobCancelled()
        record.in_pause = True
        try:
            self._engine_pause(thread, record)
        finally:
            record.in_pause = False
        if record.pause_error:
            record.pause_error = False
            raise JobStateError("pause_job() in a job that was started without a WaitCtx")
        if record.cancelled:
            raise JobCancelled()
        if sys.gettrace() is not record.trace or sys.getprofile() is not record.profile:
            _sync_tracers(record)
        return True

    def get_current_job(self) -> Optional[Job]:
        """The running job's handle (the same object ``start_job`` returns on PAUSE)."""
        _, record = self._current()
        if record is None or not self._engine_in_job():
            return None
        # while a job runs, its caller's start_job holds the handle, or the
        # finaliser that unwinds it resurrected it into ``record.handle``: the
        # collector clears weak references to a cycle before its finalisers run
        ref = record.handle_ref
        handle: Optional[Job] = ref() if ref is not None else None
        return handle if handle is not None else record.handle

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
                f"close or finish them first (C would leak them)"
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

    def _close(self, record: JobRecord, handle: Optional[Job], timeout: Any = DEFAULT_TIMEOUT) -> None:
        if record.state == "finished":
            return
        thread = self._close_checks(record)
        self._cancel(thread, record, handle, timeout)

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

    def _cancel(
        self, thread: ThreadJobs, record: JobRecord, handle: Optional[Job], timeout: Any = DEFAULT_TIMEOUT
    ) -> None:
        """Unwind a paused job (``JobCancelled`` inside it), however often it must be resumed."""
        if _is_finalizing():
            raise JobStateError("the interpreter is shutting down: a paused job can no longer be resumed")
        if handle is None:
            handle = record.handle or (record.handle_ref() if record.handle_ref is not None else None)
        if handle is None:  # pragma: no cover - finalisers resurrect the handle first
            handle = Job(record)
        from ..drive._blocking import DEFAULT_CLOSE_TIMEOUT, unwind  # the drive layer waits for engines

        if record.state != "paused":  # a signal handler or finaliser got there first
            return
        if self._check_resume is not None:
            self._check_resume()
        # busy for the whole close, waits included: a signal handler or finaliser
        # that starts, resumes or closes a job of this thread meanwhile is refused
        thread.busy += 1
        try:
            unwind(self, thread, record, handle, DEFAULT_CLOSE_TIMEOUT if timeout is DEFAULT_TIMEOUT else timeout)
        finally:
            thread.busy -= 1
            if (thread.pending or _HEADROOM.pending) and thread.running is None and not _busy(thread):
                self._drain_pending(thread)

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
        """A paused job's last handle went away: unwind it, now or at a safe moment."""
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
        if record.owner == _get_ident() and thread.running is None and not _busy(thread):
            self._cancel_quietly(thread, record)
        else:
            thread.pending.append(record)

    def _cancel_quietly(
        self,
        thread: ThreadJobs,
        record: JobRecord,
        what: str = "a garbage-collected paused job",
        timeout: Any = DEFAULT_TIMEOUT,
    ) -> None:
        try:
            self._cancel(thread, record, None, timeout)
        except BaseException as exc:  # noqa: BLE001 - nobody to raise it to
            report_unraisable(exc, f"Exception ignored while closing {what}")
            if (
                not isinstance(exc, Exception)  # an interrupt (Ctrl-C), not a failure of the close
                and record.state == "paused"
                and record.owner == thread.ident
                and not record.orphaned
                and record not in thread.pending
            ):
                thread.pending.append(record)  # cut short: tried again at the thread's next idle moment
        finally:
            if record.state == "finished":
                record.handle = None

    def _reap_abandoned(self, records: Iterable[JobRecord]) -> None:
        """Unwind this thread's paused jobs among ``records`` whose handles are gone.

        A dropped handle's ``__del__`` unwinds its job, but a signal handler can
        raise at its first line (CPython 3.9 runs them between any two
        instructions), and the job would stay paused for good. Before refusing to
        close a WaitCtx or clean up a thread because of paused jobs, finish what
        those finalisers could not.
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
                # its finaliser began (it resurrected the handle) or never ran
                and (record.handle is not None or record.handle_ref is None or record.handle_ref() is None)
            ):
                self._cancel_quietly(thread, record)

    def _drain_pending(self, thread: ThreadJobs) -> None:
        if _HEADROOM.pending:
            _HEADROOM.restore()
        while thread.pending and thread.running is None and not _busy(thread):
            try:
                record = thread.pending.pop(0)
            except IndexError:  # a signal handler drained it between the check and here
                break
            if record.state == "paused" and not record.orphaned:
                self._cancel_quietly(thread, record)

    def _close_owned_paused_jobs(self) -> None:
        """At interpreter exit: unwind the calling thread's paused jobs so ``finally`` runs.

        Paused jobs of threads that are still running (daemon threads: the others
        were joined before exit handlers run) can only be resumed by their own
        thread, which will never do it now; a ResourceWarning says so, as for
        jobs orphaned by a thread that exits.
        """
        thread, running = self._current()
        if thread is not None and running is None:
            from ..drive._blocking import DEFAULT_CLOSE_TIMEOUT

            deadline = time.monotonic() + DEFAULT_CLOSE_TIMEOUT  # for all of them together
            for record in list(thread.paused):
                if record.state == "paused" and not record.orphaned:
                    left = max(deadline - time.monotonic(), 0.0)
                    self._cancel_quietly(thread, record, "a paused job at interpreter exit", left)
        with self._lock:
            others = [t for t in self._threads.values() if t is not thread]
        stuck = sum(1 for t in others for r in list(t.paused) if r.state == "paused" and not r.orphaned)
        if stuck:
            warnings.warn(
                f"interpreter exit: {stuck} paused {self.name} job(s) of threads still running "
                f"(daemon threads) cannot be unwound; their finally blocks will not run",
                ResourceWarning,
                stacklevel=2,
            )


_BUSY_CODES = frozenset(
    {
        BackendBase._drive.__code__,
        BackendBase._cancel.__code__,
        BackendBase.cleanup_thread.__code__,
        BackendBase._settle_leftover.__code__,
    }
)


def _close_main_thread_jobs(ref: Callable[[], Optional[BackendBase]]) -> None:
    backend = ref()
    if backend is not None:
        backend._close_owned_paused_jobs()

