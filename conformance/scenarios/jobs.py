"""Starting, pausing and resuming one job: results, arguments, the current job, its wait context."""

from __future__ import annotations

from typing import Any, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


def _show_arg(arg: Any) -> str:
    return "NULL" if arg is None else bytes(arg).decode()


@scenario
def job_finish_without_pause(be: pa.Backend) -> List[str]:
    """A job that never pauses finishes at once with its C ``int`` result, even with no wait context."""
    t = Trace(be)

    def returns(value: int) -> Any:
        def job(arg: Any) -> int:
            t.current(who="j")
            return value

        return job

    ctx = t.ctx_new("ctx")
    for value in (0, 7, -5, 2147483647, -2147483648):
        t.start("j", ctx, returns(value))
    t.start("j", None, returns(3))  # wctx NULL is fine for a job that does not pause
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def job_args_copied(be: pa.Backend) -> List[str]:
    """Arguments are copied at start: the job keeps its copy when the caller's buffer changes; no args means NULL."""
    t = Trace(be)

    def show(arg: Any) -> int:
        t.line(f"arg = {_show_arg(arg)}", who="j")
        t.pause(who="j")
        t.line(f"arg = {_show_arg(arg)}", who="j")
        return 0 if arg is None else len(arg)

    ctx = t.ctx_new("ctx")
    buf = bytearray(b"hello")
    job = t.start("j", ctx, show, buf)
    buf[0:1] = b"J"
    t.line(f"caller buffer = {buf.decode()}")
    t.resume(job)
    job = t.start("j", ctx, show, None)
    t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def job_current_and_wait_ctx(be: pa.Backend) -> List[str]:
    """``get_current_job`` is NULL outside, the job's handle inside; ``get_wait_ctx`` gives its context inside
    and out."""
    t = Trace(be)

    def job(arg: Any) -> int:
        me = t.current(who="j")
        t.get_wait_ctx(me, who="j")
        t.pause(who="j")
        me = t.current(who="j")
        t.get_wait_ctx(me, who="j")
        return 1

    t.current()
    ctx = t.ctx_new("ctx")
    handle = t.start("j", ctx, job)
    t.current()
    t.get_wait_ctx(handle)
    t.resume(handle)
    t.current()
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def job_resume_ignores_arguments(be: pa.Backend) -> List[str]:
    """On resume, the context, function and arguments passed are ignored: the job keeps its own context."""
    t = Trace(be)

    def job(arg: Any) -> int:
        t.pause(who="j")
        t.get_wait_ctx(t.current(who="j"), who="j")
        return 1

    def other(arg: Any) -> int:
        t.line("other function ran")
        return 99

    ctx1 = t.ctx_new("ctx1")
    ctx2 = t.ctx_new("ctx2")
    handle = t.start("j", ctx1, job)
    t.resume(handle, ctx2, other)
    t.ctx_free(ctx2)
    t.ctx_free(ctx1)
    t.cleanup_thread()
    return t.lines


@scenario
def job_pause_many_times(be: pa.Backend) -> List[str]:
    """One job pauses five times; every resume continues where it stopped."""
    t = Trace(be)

    def job(arg: Any) -> int:
        n = 0
        while n < 5:
            n += 1
            t.line(f"step {n}", who="j")
            t.pause(who="j")
        return n

    ctx = t.ctx_new("ctx")
    handle = t.start("j", ctx, job)
    while handle is not None:
        handle = t.resume(handle)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def job_pause_at_depth(be: pa.Backend) -> List[str]:
    """A job pauses eight calls deep; its frames and locals survive the pause and unwind after the resume."""
    t = Trace(be)

    def descend(depth: int, acc: int) -> int:
        mine = acc * 3 + depth
        if depth == 8:
            t.line(f"depth {depth} local {mine}", who="j")
            t.pause(who="j")
            return mine
        total = descend(depth + 1, mine)
        t.line(f"back at depth {depth} local {mine}", who="j")
        return (total + mine) % 100000

    def job(arg: Any) -> int:
        return descend(1, 1)

    ctx = t.ctx_new("ctx")
    handle = t.start("j", ctx, job)
    t.resume(handle)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines
