"""``block_pause``/``unblock_pause`` nesting and leaks, and ``pause_job`` where it cannot pause."""

from __future__ import annotations

from typing import Any, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


@scenario
def block_nested(be: pa.Backend) -> List[str]:
    """Blocks nest: after two blocks, one unblock still leaves pausing blocked; the second lets the job pause."""
    t = Trace(be)

    def job(arg: Any) -> int:
        t.block(who="j")
        t.block(who="j")
        t.pause(who="j")
        t.unblock(who="j")
        t.pause(who="j")
        t.unblock(who="j")
        t.pause(who="j")
        return 1

    ctx = t.ctx_new("ctx")
    t.resume(t.start("j", ctx, job))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def unblock_never_below_zero(be: pa.Backend) -> List[str]:
    """Extra unblocks are no-ops: the counter stays at 0, so one block afterwards still blocks."""
    t = Trace(be)

    def job(arg: Any) -> int:
        t.unblock(who="j")
        t.unblock(who="j")
        t.block(who="j")
        t.pause(who="j")
        t.unblock(who="j")
        t.pause(who="j")
        return 1

    ctx = t.ctx_new("ctx")
    t.resume(t.start("j", ctx, job))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def block_outside_job_ignored(be: pa.Backend) -> List[str]:
    """``block_pause`` outside a job is ignored: a job started afterwards can pause; an unblock outside is
    ignored too."""
    t = Trace(be)

    def job(arg: Any) -> int:
        t.pause(who="j")
        return 1

    t.block()
    t.block()
    ctx = t.ctx_new("ctx")
    handle = t.start("j", ctx, job)
    t.unblock()
    t.resume(handle)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def block_leaks_into_thread(be: pa.Backend) -> List[str]:
    """A block left by a finished job belongs to the thread: later jobs cannot pause until one of them unblocks."""
    t = Trace(be)

    def leaker(arg: Any) -> int:
        t.block(who="j1")
        t.pause(who="j1")
        return 1

    def victim(who: str) -> Any:
        def job(arg: Any) -> int:
            t.pause(who=who)
            return 2

        return job

    def healer(arg: Any) -> int:
        t.pause(who="j3")
        t.unblock(who="j3")
        t.pause(who="j3")
        return 3

    ctx = t.ctx_new("ctx")
    t.start("j1", ctx, leaker)
    t.start("j2", ctx, victim("j2"))
    t.unblock()  # outside a job: ignored
    t.start("j2", ctx, victim("j2"))
    t.resume(t.start("j3", ctx, healer))
    t.resume(t.start("j4", ctx, victim("j4")))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def block_cleared_by_cleanup_thread(be: pa.Backend) -> List[str]:
    """``cleanup_thread`` frees the thread's async state, and with it a leaked block."""
    t = Trace(be)

    def leaker(arg: Any) -> int:
        t.block(who="j1")
        return 1

    def pauser(arg: Any) -> int:
        t.pause(who="j2")
        return 2

    ctx = t.ctx_new("ctx")
    t.start("j1", ctx, leaker)
    t.start("j2", ctx, pauser)
    t.cleanup_thread()
    t.resume(t.start("j2", ctx, pauser))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def blocked_pause_keeps_fd_counts(be: pa.Backend) -> List[str]:
    """A blocked pause does not reset the wait context's changed-fd counts; a real pause and resume does."""
    t = Trace(be)
    ka, kb = t.sym("kA"), t.sym("kB")

    def job(arg: Any) -> int:
        ctx = t.own_ctx()
        t.set_fd(ctx, ka, 20, None, cleanup=False, who="j")
        t.pause(who="j")
        t.changed_fds(ctx, who="j")
        t.set_fd(ctx, kb, 21, None, cleanup=False, who="j")
        t.block(who="j")
        t.pause(who="j")
        t.changed_fds(ctx, who="j")
        t.unblock(who="j")
        t.pause(who="j")
        t.changed_fds(ctx, who="j")
        return 1

    ctx = t.ctx_new("ctx")
    handle = t.start("j", ctx, job)
    t.changed_fds(ctx)
    handle = t.resume(handle)
    t.changed_fds(ctx)
    t.resume(handle)
    t.changed_fds(ctx)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def pause_blocked_context_manager(be: pa.Backend) -> List[str]:
    """``with pause_blocked():`` is ``block_pause`` ... ``unblock_pause`` (C: the two calls), and nests."""
    t = Trace(be)

    def job(arg: Any) -> int:
        with be.pause_blocked():
            t.line("block_pause", who="j")
            with be.pause_blocked():
                t.line("block_pause", who="j")
                t.pause(who="j")
            t.line("unblock_pause", who="j")
            t.pause(who="j")
        t.line("unblock_pause", who="j")
        t.pause(who="j")
        return 1

    ctx = t.ctx_new("ctx")
    t.resume(t.start("j", ctx, job))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def pause_outside_job(be: pa.Backend) -> List[str]:
    """``pause_job`` outside a job returns 1 at once: before any job, while one is paused, after it finished, in
    another thread."""
    t = Trace(be)

    def job(arg: Any) -> int:
        t.pause(who="j")
        return 1

    def other_thread() -> None:
        t.pause(who="T")
        t.current(who="T")

    t.pause()
    t.current()
    ctx = t.ctx_new("ctx")
    handle = t.start("j", ctx, job)
    t.pause()
    t.current()
    t.in_thread(other_thread)
    t.resume(handle)
    t.pause()
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines
