"""The bookkeeping of jobs and of the threads that drive them, whatever runs them.

A ``JobRecord`` is everything one job carries (never exposed: users hold its
``Job`` handle); a ``ThreadJobs`` is one OS thread's jobs: the running one, the
paused ones, closes waiting for a safe moment.
"""

from __future__ import annotations

import contextvars
import sys
import weakref
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional

from .._protocol import Job, JobStateName
from .._running import RUNNING_JOB

if TYPE_CHECKING:
    from ._base import BackendBase
    from ._waitctx_base import WaitCtxBase

__all__ = ["JobRecord", "ThreadJobs", "sync_tracers"]

_set_running = RUNNING_JOB.set


class JobRecord:
    """Everything one job carries, whatever runs it. Never exposed to users."""

    __slots__ = (
        "__weakref__",
        "args",
        "backend",
        "cancelled",
        "context",
        "ctx",
        "ctx_ref",
        "engine",
        "exception",
        "func",
        "func_name",
        "handle",
        "handle_ref",
        "in_pause",
        "kept",
        "no_ctx_pause",
        "orphaned",
        "owner",
        "pause_error",
        "paused_on",
        "profile",
        "retrace",
        "runs_on",
        "state",
        "switch",
        "thread",
        "trace",
        "value",
    )

    def __init__(
        self,
        backend: BackendBase,
        func: Callable[[Any], Any],
        args: Any,
        ctx: Optional[WaitCtxBase],
        thread: ThreadJobs,
    ) -> None:
        self.backend = backend
        self.func: Optional[Callable[[Any], Any]] = func
        #: for messages once ``func`` has been handed to the job
        self.func_name = getattr(func, "__qualname__", None) or type(func).__name__
        self.args = args
        self.ctx = ctx
        #: the context, weakly, once the job has ended (``Job.wait_ctx`` only reports it)
        self.ctx_ref: Optional[weakref.ref[WaitCtxBase]] = None
        #: the job's own context: a copy of its starter's, in which it is the running job
        self.context: Optional[contextvars.Context] = contextvars.copy_context()
        self.context.run(_set_running, self)
        self.trace: Any = None
        self.profile: Any = None
        #: the caller's tracer or profiler changed since the job last ran: give it the new ones
        self.retrace = False
        self.state: JobStateName = "running"
        self.value: Any = None
        self.exception: Optional[BaseException] = None
        self.cancelled = False
        #: the OS thread that starts, resumes and closes the job, and its records
        self.owner = thread.ident
        self.thread = thread
        #: the OS thread the job's own code runs on (a worker thread for the python
        #: backend's thread engine): where ``running_record()`` trusts its context
        self.runs_on = thread.ident
        #: ``thread`` while the job is paused and can be resumed there, else None: the
        #: one check of ``start_job``'s fast path (state, owner, orphaned in one)
        self.paused_on: Optional[ThreadJobs] = None
        # the public handle, strongly, only once its finaliser resurrected it
        self.handle: Any = None
        #: the public handle, weakly: paused jobs must be collectable
        self.handle_ref: Optional[weakref.ref[Job]] = None
        self.engine: Any = None
        #: set by engines that can: resumes the paused job, returning OpenSSL's raw
        #: status (or ``REFUSED``, -1); a C call where possible. ``_drive`` calls it
        #: instead of ``_engine_resume`` and hands any status but PAUSE to
        #: ``_engine_resumed``.
        self.switch: Optional[Callable[[], int]] = None
        #: a pause of this job must become a JobStateError (no wait context)
        self.no_ctx_pause = ctx is None
        self.pause_error = False
        self.orphaned = False
        #: paused by ``pause_job()`` (Python); False while paused inside C code
        self.in_pause = False
        #: a ``_keeper.Kept`` while the library keeps the job (given up on, stuck in C)
        self.kept: Any = None

    def orphan(self) -> None:
        """Its owner thread has gone (exited, or the process forked): it can never resume."""
        self.orphaned = True
        self.paused_on = None

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
            if self.trace is not None or self.profile is not None:  # (a fresh job has neither)
                sync_tracers(self)
            self.value = self.context.run(func, args)  # type: ignore[arg-type, union-attr]
        except BaseException as exc:  # noqa: BLE001 - re-raised by start_job
            self.exception = exc
        finally:
            self.context = None  # the caller's context variables: not needed any more
            if sys.gettrace() is not None:
                sys.settrace(None)
            if sys.getprofile() is not None:
                sys.setprofile(None)


def sync_tracers(record: JobRecord) -> None:
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
