"""``ASYNC_WAIT_CTX`` wait fds: add, get, clear, the changed lists, when they reset, and cleanup at free."""

from __future__ import annotations

from typing import Any, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


@scenario
def waitctx_fresh(be: pa.Backend) -> List[str]:
    """A new context has no fds, no changes, no callback, status 0; lookups and clears of unknown keys return 0."""
    t = Trace(be)
    ka = t.sym("kA")
    ctx = t.ctx_new("ctx")
    t.all_fds(ctx)
    t.changed_fds(ctx)
    t.get_fd(ctx, ka)
    t.clear_fd(ctx, ka)
    t.get_callback(ctx)
    t.get_status(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_set_get_clear_outside_jobs(be: pa.Backend) -> List[str]:
    """Without jobs nothing resets: every fd stays "added", so clearing one removes it outright (never "deleted")."""
    t = Trace(be)
    ka, kb, da, db = t.sym("kA"), t.sym("kB"), t.sym("dA"), t.sym("dB")
    ctx = t.ctx_new("ctx")
    t.set_fd(ctx, ka, 11, da)
    t.set_fd(ctx, kb, 20, db)
    t.all_fds(ctx)
    t.changed_fds(ctx)
    t.get_fd(ctx, ka)
    t.get_fd(ctx, kb)
    t.clear_fd(ctx, ka)
    t.all_fds(ctx)
    t.changed_fds(ctx)
    t.get_fd(ctx, ka)
    t.clear_fd(ctx, ka)
    t.changed_fds(ctx)  # reading the lists resets nothing
    t.ctx_free(ctx)  # kB's cleanup runs; kA was cleared, so no cleanup for it
    return t.lines


@scenario
def fd_clear_twice(be: pa.Backend) -> List[str]:
    """Clearing a key twice: the second clear finds nothing and returns 0 (the README's example)."""
    t = Trace(be)
    ka = t.sym("kA")  # a symbolic key (C: a unique pointer)
    ctx = t.ctx_new("ctx")  # "ctx = WAIT_CTX_new"
    t.set_fd(ctx, ka, 11, None)  # "set_wait_fd(ctx, kA, 11, NULL, cleanup) -> 1"
    t.clear_fd(ctx, ka)  # "clear_fd(ctx, kA) -> 1"
    t.clear_fd(ctx, ka)  # "clear_fd(ctx, kA) -> 0"
    t.ctx_free(ctx)  # "WAIT_CTX_free(ctx)"
    return t.lines


@scenario
def fd_duplicate_keys(be: pa.Backend) -> List[str]:
    """A second fd for a key does not replace the first: both are listed, the newest shadows, clears go newest first."""
    t = Trace(be)
    ka, d1, d2, d3 = t.sym("kA"), t.sym("d1"), t.sym("d2"), t.sym("d3")
    ctx = t.ctx_new("ctx")
    t.set_fd(ctx, ka, 1, d1)
    t.set_fd(ctx, ka, 2, d2)
    t.set_fd(ctx, ka, 3, d3)
    t.all_fds(ctx)
    t.changed_fds(ctx)
    t.get_fd(ctx, ka)
    t.clear_fd(ctx, ka)
    t.get_fd(ctx, ka)
    t.all_fds(ctx)
    t.clear_fd(ctx, ka)
    t.get_fd(ctx, ka)
    t.ctx_free(ctx)  # the one left (fd 1) is cleaned up
    return t.lines


@scenario
def fd_free_runs_cleanups_newest_first(be: pa.Backend) -> List[str]:
    """Freeing calls each live fd's cleanup with (ctx, key, fd, data), newest first; none for cleared fds or fds
    without one."""
    t = Trace(be)
    ka, kb, kc, kd = t.sym("kA"), t.sym("kB"), t.sym("kC"), t.sym("kD")
    da, db, dc, dd = t.sym("dA"), t.sym("dB"), t.sym("dC"), t.sym("dD")
    ctx = t.ctx_new("ctx")
    t.set_fd(ctx, ka, 11, da)
    t.set_fd(ctx, kb, 20, db)
    t.set_fd(ctx, kc, 30, dc, cleanup=False)
    t.set_fd(ctx, kd, 40, dd)
    t.set_fd(ctx, ka, 12, None)
    t.clear_fd(ctx, kd)
    t.all_fds(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_reset_at_resume(be: pa.Backend) -> List[str]:
    """The changed lists are reset when the job is resumed, not when it pauses or finishes; an fd set outside
    counts too."""
    t = Trace(be)
    ka, kb = t.sym("kA"), t.sym("kB")
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        t.set_fd(ctx, kb, 7, None, who="j")
        t.pause(who="j")
        t.changed_fds(ctx, who="j")
        t.clear_fd(ctx, kb, who="j")
        t.pause(who="j")
        t.changed_fds(ctx, who="j")
        return 1

    t.set_fd(ctx, ka, 1, None)
    handle = t.start("j", ctx, job)
    t.changed_fds(ctx)
    handle = t.resume(handle)
    t.changed_fds(ctx)
    t.all_fds(ctx)
    t.resume(handle)
    t.changed_fds(ctx)
    t.all_fds(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_clear_after_resume_marks_deleted(be: pa.Backend) -> List[str]:
    """Clearing an fd that survived a resume marks it deleted: hidden from get_fd and the fd list, listed as
    deleted, no cleanup."""
    t = Trace(be)
    ka, da = t.sym("kA"), t.sym("dA")
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        t.set_fd(ctx, ka, 11, da, who="j")
        t.pause(who="j")
        t.clear_fd(ctx, ka, who="j")
        t.get_fd(ctx, ka, who="j")
        t.all_fds(ctx, who="j")
        t.changed_fds(ctx, who="j")
        t.clear_fd(ctx, ka, who="j")  # already deleted: 0
        return 1

    handle = t.start("j", ctx, job)
    t.resume(handle)
    t.changed_fds(ctx)  # still listed after FINISH: nothing resets at finish
    t.ctx_free(ctx)  # a deleted fd gets no cleanup
    return t.lines


@scenario
def fd_readd_after_marked_delete(be: pa.Backend) -> List[str]:
    """A key cleared (marked deleted) and set again has a new live fd next to the deleted one; the next resume
    purges the old."""
    t = Trace(be)
    ka = t.sym("kA")
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        t.set_fd(ctx, ka, 11, None, who="j")
        t.pause(who="j")
        t.clear_fd(ctx, ka, who="j")
        t.set_fd(ctx, ka, 12, None, who="j")
        t.get_fd(ctx, ka, who="j")
        t.all_fds(ctx, who="j")
        t.changed_fds(ctx, who="j")
        t.pause(who="j")
        t.changed_fds(ctx, who="j")
        t.all_fds(ctx, who="j")
        return 1

    handle = t.start("j", ctx, job)
    handle = t.resume(handle)
    t.changed_fds(ctx)
    t.resume(handle)
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_counts_carry_over_to_next_job(be: pa.Backend) -> List[str]:
    """Counts left by a finished job are seen at the next job's first pause on the same context, and reset at
    its resume."""
    t = Trace(be)
    ka, kb = t.sym("kA"), t.sym("kB")
    ctx = t.ctx_new("ctx")

    def first(arg: Any) -> int:
        t.pause(who="j1")
        t.set_fd(ctx, ka, 3, None, who="j1")
        return 1

    def second(arg: Any) -> int:
        t.set_fd(ctx, kb, 4, None, who="j2")
        t.pause(who="j2")
        t.changed_fds(ctx, who="j2")
        return 2

    t.resume(t.start("j1", ctx, first))
    t.changed_fds(ctx)
    handle = t.start("j2", ctx, second)
    t.changed_fds(ctx)
    t.resume(handle)
    t.changed_fds(ctx)
    t.all_fds(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_two_jobs_share_a_ctx(be: pa.Backend) -> List[str]:
    """Two jobs on one context: resuming either one resets the context's counts for both."""
    t = Trace(be)
    ka, kb = t.sym("kA"), t.sym("kB")
    ctx = t.ctx_new("ctx")

    def job(key: Any, fd: int, who: str) -> Any:
        def body(arg: Any) -> int:
            t.set_fd(ctx, key, fd, None, who=who)
            t.pause(who=who)
            t.changed_fds(ctx, who=who)
            t.pause(who=who)
            return fd

        return body

    j1 = t.start("j1", ctx, job(ka, 1, "j1"))
    j2 = t.start("j2", ctx, job(kb, 2, "j2"))
    t.changed_fds(ctx)
    j1 = t.resume(j1)
    t.changed_fds(ctx)
    j2 = t.resume(j2)
    t.all_fds(ctx)
    t.resume(j2)
    t.resume(j1)
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_values_any_int(be: pa.Backend) -> List[str]:
    """Any C ``int`` is stored as an fd, negative ones included; no check that it is open."""
    t = Trace(be)
    keys = [t.sym(f"k{i}") for i in range(4)]
    ctx = t.ctx_new("ctx")
    for key, fd in zip(keys, (-1, 0, 2147483647, -2147483648)):
        t.set_fd(ctx, key, fd, None)
    t.all_fds(ctx)
    t.get_fd(ctx, keys[2])
    t.ctx_free(ctx)
    return t.lines


@scenario
def fd_ops_inside_job_on_other_ctx(be: pa.Backend) -> List[str]:
    """A job can use a context it was not started with; only its own context is reset when it resumes."""
    t = Trace(be)
    ka, kb = t.sym("kA"), t.sym("kB")
    own = t.ctx_new("own")
    other = t.ctx_new("other")

    def job(arg: Any) -> int:
        t.set_fd(own, ka, 1, None, who="j")
        t.set_fd(other, kb, 2, None, who="j")
        t.pause(who="j")
        t.changed_fds(own, who="j")
        t.changed_fds(other, who="j")
        return 1

    t.resume(t.start("j", own, job))
    t.ctx_free(other)
    t.ctx_free(own)
    return t.lines
