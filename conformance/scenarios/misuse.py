"""Misuse and Python-only behaviour: where C is undefined (it crashes or corrupts the pool), both backends raise.

None of these has a C twin: running them in C would crash the process or
corrupt its pool (openssl-behaviour.md §1 and §6 say how), or they exercise what
only the Python API has (exceptions in jobs, closing a paused job, argument
checks). They are compared between the two backends only.
"""

from __future__ import annotations

import gc
from typing import Any, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario

_UB = "undefined behaviour in C"


def _pauses_once(t: Trace, who: str, result: int = 1) -> Any:
    def job(arg: Any) -> int:
        t.pause(who=who)
        return result

    return job


@scenario(c=False, why=f"{_UB}: a stale handle is pushed into the pool twice")
def misuse_resume_finished_job(be: pa.Backend) -> List[str]:
    """Resuming a handle after FINISH raises JobStateError (C would return the old result and corrupt the pool)."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, _pauses_once(t, "j", 5))
    t.name(job, "j")
    t.resume(job)
    t.name(job, "j")
    t.resume(job)
    t.line(f"state {job.state}")
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why=f"{_UB}: a nested ASYNC_start_job corrupts the pool and crashes later")
def misuse_start_inside_job(be: pa.Backend) -> List[str]:
    """``start_job`` from inside a job raises JobStateError, for a new job and for a resume; the outer job goes on."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    other = t.start("other", ctx, _pauses_once(t, "other", 2))

    def job(arg: Any) -> int:
        t.start("inner", ctx, _pauses_once(t, "inner"))
        t.resume(other)
        t.pause(who="j")
        return 1

    t.resume(t.start("j", ctx, job))
    t.resume(other)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why=f"{_UB}: resuming a job that paused with a NULL wait context crashes (SIGSEGV)")
def misuse_pause_without_wait_ctx(be: pa.Backend) -> List[str]:
    """A job started without a wait context gets JobStateError from ``pause_job``; it can catch it and finish."""
    t = Trace(be)

    def job(arg: Any) -> int:
        t.pause(who="j")
        t.line("still running", who="j")
        return 3

    t.start("j", None, job)

    def catches(arg: Any) -> int:
        try:
            be.pause_job()
        except pa.JobStateError:
            t.line("caught JobStateError", who="k")
            return 4
        return 0

    t.start("k", None, catches)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why=f"{_UB}: freeing a wait context a paused job uses leaves the job a dangling pointer")
def misuse_free_ctx_in_use(be: pa.Backend) -> List[str]:
    """Closing a context that a paused job uses raises JobStateError and changes nothing; after the job finishes
    it works."""
    t = Trace(be)
    ka = t.sym("kA")
    ctx = t.ctx_new("ctx")
    t.set_fd(ctx, ka, 5, None)
    job = t.start("j", ctx, _pauses_once(t, "j"))
    t.ctx_free(ctx)
    t.all_fds(ctx)
    t.resume(job)
    t.ctx_free(ctx)
    t.ctx_free(ctx)  # idempotent
    return t.lines


@scenario(c=False, why="C leaks paused jobs at ASYNC_cleanup_thread (resuming them later is undefined)")
def misuse_cleanup_thread_with_paused_jobs(be: pa.Backend) -> List[str]:
    """``cleanup_thread`` with a paused job raises JobStateError and keeps the pool; it works once the job finished."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    job = t.start("j1", ctx, _pauses_once(t, "j1"))
    t.cleanup_thread()
    t.start("j2", ctx, _pauses_once(t, "j2"))  # still the pool of one: NO_JOBS
    t.resume(job)
    t.cleanup_thread()
    t.ctx_free(ctx)
    return t.lines


@scenario(c=False, why=f"{_UB}: use after ASYNC_WAIT_CTX_free")
def misuse_closed_ctx(be: pa.Backend) -> List[str]:
    """Every use of a closed context raises WaitCtxClosedError, including starting a job with it."""
    t = Trace(be)
    ka = t.sym("kA")
    ctx = t.ctx_new("ctx")
    t.ctx_free(ctx)
    t.set_fd(ctx, ka, 1, None)
    t.get_fd(ctx, ka)
    t.all_fds(ctx)
    t.changed_fds(ctx)
    t.clear_fd(ctx, ka)
    t.set_callback(ctx, None, None)
    t.get_callback(ctx)
    t.set_status(ctx, 1)
    t.get_status(ctx)
    t.start("j", ctx, _pauses_once(t, "j"))
    t.line(f"closed {ctx.closed}")
    return t.lines


@scenario(c=False, why=f"{_UB}: a job must be resumed on the thread that started it")
def misuse_resume_on_other_thread(be: pa.Backend) -> List[str]:
    """Resuming or closing a paused job from another thread raises JobStateError; its own thread still can."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, _pauses_once(t, "j"))

    def other() -> None:
        t.resume(job)
        t.name(job, "j")
        t.close_job(job, who="T")

    t.in_thread(other)
    t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why="argument checks of the Python API (C has types)")
def misuse_wrong_argument_types(be: pa.Backend) -> List[str]:
    """Wrong types raise TypeError, negative sizes ValueError, numbers out of C range OverflowError; nothing crashes."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    t.init(-1, 0)
    t.init(0, -1)
    t.init(2**64, 0)
    t.init("2", 0)  # type: ignore[arg-type]
    t.set_fd(ctx, t.sym("kA"), 2**31, None)
    t.set_fd(ctx, t.sym("kA"), "3", None)  # type: ignore[arg-type]
    t.set_fd(ctx, [], 3, None)
    t.set_status(ctx, 2**31)
    t.set_status(ctx, 1.5)  # type: ignore[arg-type]
    t.set_callback(ctx, 42, None)
    t.start("j", ctx, "not callable")  # type: ignore[arg-type]
    t.start("j", "not a ctx", _pauses_once(t, "j"))
    t.start("j", ctx, None)  # type: ignore[arg-type]
    t.resume("not a job")
    t.all_fds(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario(c=False, why="Python exceptions have no C counterpart")
def job_exception_propagates(be: pa.Backend) -> List[str]:
    """An exception in a job finishes it and is raised by ``start_job``; the job's slot returns to the pool."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")

    def fails_at_once(arg: Any) -> int:
        raise ValueError("at once")

    def fails_after_pause(arg: Any) -> int:
        t.pause(who="j")
        raise KeyError("after a pause")

    t.start("j", ctx, fails_at_once)
    job = t.start("j", ctx, fails_after_pause)
    t.line(f"state {job.state}")
    t.resume(job)
    t.name(job, "j")
    t.line(f"state {job.state}")
    k = t.start("k", ctx, _pauses_once(t, "k", 2))  # the pool of one has its job back
    t.resume(k)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why="the Python rule for a job's result (C returns an int by type)")
def job_bad_return_value(be: pa.Backend) -> List[str]:
    """A job returning a non-int raises TypeError, one out of C ``int`` range OverflowError; bools are ints."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    for value in ("x", None, 2**31, -(2**31) - 1, True, 1.0):

        def job(arg: Any, value: Any = value) -> Any:
            return value

        t.start(f"r={value!r}", ctx, job)
    t.start("ok", ctx, lambda arg: 6)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why="C cannot unwind a paused job (it leaks it)")
def job_close_unwinds(be: pa.Backend) -> List[str]:
    """``close()`` raises JobCancelled at the job's pause so ``finally`` runs; a job that pauses again gets it again."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")

    def polite(arg: Any) -> int:
        try:
            t.pause(who="j1")
            return 1
        finally:
            t.line("finally ran", who="j1")

    def stubborn(arg: Any) -> int:
        try:
            t.pause(who="j2")
        except pa.JobCancelled:
            t.line("caught JobCancelled", who="j2")
        try:
            t.pause(who="j2")
        except pa.JobCancelled:
            t.line("caught JobCancelled again", who="j2")
        return 7

    def self_closer(arg: Any) -> int:
        me = be.get_current_job()
        t.name(me, "j3")
        t.close_job(me, who="j3")
        return 3

    j1 = t.start("j1", ctx, polite)
    t.close_job(j1)
    t.close_job(j1)  # closing a finished job does nothing
    t.resume(j1)
    j2 = t.start("j2", ctx, stubborn)
    t.close_job(j2)
    t.start("j3", ctx, self_closer)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why="garbage collection of a paused job's handle is Python-only")
def job_handle_dropped(be: pa.Backend) -> List[str]:
    """Dropping the last reference to a paused job unwinds it (JobCancelled inside, ``finally`` runs), with a
    ResourceWarning."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        try:
            be.pause_job()
        except pa.JobCancelled:
            t.line("JobCancelled", who="j")
            raise
        finally:
            t.line("finally ran", who="j")
        return 1

    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, handle, _ = be.start_job(None, ctx, job)
        t.line(f"start j -> {status.name}")
        del handle
        gc.collect()
    t.line(f"ResourceWarning {sum(issubclass(w.category, ResourceWarning) for w in caught)}")
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario(c=False, why=f"{_UB}: a job resumed or closed from inside another job")
def misuse_inside_job(be: pa.Backend) -> List[str]:
    """From inside a job: resuming, closing another job, closing itself, ``cleanup_thread`` and freeing its
    context all raise."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    other = t.start("other", ctx, _pauses_once(t, "other", 2))

    def job(arg: Any) -> int:
        t.resume(other)
        t.name(other, "other")
        t.close_job(other, who="j")
        t.cleanup_thread(who="j")
        t.ctx_free(ctx, who="j")
        return 1

    t.start("j", ctx, job)
    t.line(f"other is {other.state}")
    t.resume(other)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines
