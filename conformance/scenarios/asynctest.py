"""The man page's example and every check of OpenSSL's own ``test/asynctest.c``.

Each ``asynctest_*`` scenario re-states one upstream test function (see
openssl-behaviour.md §3 for its numbered checks) as a trace: every value the
upstream test checks is a line here, so a wrong value is a differing line. The
scenarios and their twins are written for this suite; no upstream code is copied.

``test_ASYNC_set_mem_functions`` (3.2+) has no scenario: the contract has no
stack-allocator API (the ``"openssl"`` backend uses ``ASYNC_set_mem_functions``
internally; ``tests/test_openssl_native.py`` covers that).
"""

from __future__ import annotations

import contextvars
from typing import Any, Callable, List

import pyossl_async as pa
from pyossl_async._cli.demo import run_demo
from pyossl_async.testing.conformance import Sym, Trace, scenario


@scenario(c="man_page_example.c")
def man_page_example(be: pa.Backend) -> List[str]:
    """ASYNC_start_job(3)'s example: a job registers a pipe as its wait fd, pauses, is woken and finishes.

    The twin is the man page's C program itself; the Python side is the
    library's own ``demo`` command, so this also proves ``demo`` prints what C prints.
    """
    lines: List[str] = []
    run_demo(be, write=lines.append)
    return lines


def _only_pause(t: Trace, who: str) -> Callable[[Any], int]:
    def job(arg: Any) -> int:
        t.pause(who=who)
        return 1

    return job


@scenario
def asynctest_is_capable(be: pa.Backend) -> List[str]:
    """``main()``: the tests run only where ``ASYNC_is_capable()``; it is 1 on this platform."""
    t = Trace(be)
    t.line(f"is_capable -> {int(be.is_capable())}")
    return t.lines


@scenario
def asynctest_init_thread(be: pa.Backend) -> List[str]:
    """``test_ASYNC_init_thread``: a pool of 2 gives NO_JOBS for a third job, and reuses a finished one."""
    t = Trace(be)
    t.init(2, 0)
    ctx = t.ctx_new("ctx")
    j1 = t.start("j1", ctx, _only_pause(t, "j1"))
    j2 = t.start("j2", ctx, _only_pause(t, "j2"))
    t.start("j3", ctx, _only_pause(t, "j3"))  # NO_JOBS: max_size 2 reached
    t.resume(j1)
    j3 = t.start("j3", ctx, _only_pause(t, "j3"))  # reuses j1's job
    t.resume(j2)
    t.resume(j3)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def asynctest_callback_status(be: pa.Backend) -> List[str]:
    """``test_ASYNC_callback_status``: a callback and its argument come back as set, the callback runs, status
    round-trips."""
    t = Trace(be)

    def cb(arg: Any) -> int:
        t.line(f"callback called with {t.n(arg)}")
        return 1

    t.name(cb, "cb")
    arg = t.sym("arg")
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    t.set_callback(ctx, cb, arg)
    found = t.get_callback(ctx)
    if found is not None:
        t.call_callback(found[0], found[1])
    t.set_status(ctx, 1)
    t.get_status(ctx)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def asynctest_start_job(be: pa.Backend) -> List[str]:
    """``test_ASYNC_start_job``: code before the pause runs at start, code after it at resume; the result is 2."""
    t = Trace(be)
    ctr = [0]

    def add_two(arg: Any) -> int:
        ctr[0] += 1
        t.line(f"ctr = {ctr[0]}", who="j")
        t.pause(who="j")
        ctr[0] += 1
        t.line(f"ctr = {ctr[0]}", who="j")
        return 2

    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, add_two)
    t.line(f"ctr == {ctr[0]}")
    t.resume(job)
    t.line(f"ctr == {ctr[0]}")
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def asynctest_get_current_job(be: pa.Backend) -> List[str]:
    """``test_ASYNC_get_current_job``: the job seen from inside is the handle PAUSE returns."""
    t = Trace(be)
    saved: List[Any] = []

    def save_current(arg: Any) -> int:
        saved.append(t.current(who="j"))
        t.pause(who="j")
        return 1

    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, save_current)
    t.line(f"saved current job is {t.n(saved[0]) if saved else 'missing'}")
    t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def asynctest_wait_ctx_get_all_fds(be: pa.Backend) -> List[str]:
    """``test_ASYNC_WAIT_CTX_get_all_fds``: fd 99 added, removed, added-and-removed, seen after each pause.

    The key is the wait context itself, as upstream uses the ``waitctx`` pointer.
    """
    t = Trace(be)

    def waitfd(arg: Any) -> int:
        job = t.current(who="j")
        if job is None:
            return 0
        ctx = t.get_wait_ctx(job, who="j")
        if ctx is None:
            return 0
        t.pause(who="j")  # first case: nothing added or removed
        t.set_fd(ctx, ctx, 99, None, cleanup=False, who="j")
        t.pause(who="j")  # second case: one fd added
        t.clear_fd(ctx, ctx, who="j")
        t.pause(who="j")  # third case: the fd removed
        t.set_fd(ctx, ctx, 99, None, cleanup=False, who="j")
        t.clear_fd(ctx, ctx, who="j")  # last case: added and removed at once
        return 1

    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, waitfd)
    for _ in range(4):
        t.all_fds(ctx)
        t.changed_fds(ctx)
        if job is None:
            break
        job = t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def asynctest_block_pause(be: pa.Backend) -> List[str]:
    """``test_ASYNC_block_pause``: a blocked pause does nothing; after unblocking the job pauses."""
    t = Trace(be)

    def blockpause(arg: Any) -> int:
        t.block(who="j")
        t.pause(who="j")
        t.unblock(who="j")
        t.pause(who="j")
        return 1

    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, blockpause)
    t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def asynctest_start_job_ex(be: pa.Backend) -> List[str]:
    """``test_ASYNC_start_job_ex``: a job's default context is its own across pauses; the caller's is restored.

    C checks ``OSSL_LIB_CTX_set0_default`` (the default library context, saved
    and restored by ``ASYNC_start_job`` around every switch). The Python API has
    no library context; its counterpart in the contract is ``contextvars``: a job
    runs in a copy of the caller's context taken at its first start, its own
    changes stay in the job across pauses, the caller's later changes do not
    reach it, and the caller's value is unchanged after PAUSE and FINISH. Here a
    ``ContextVar`` plays the default library context, with the same names, and
    ``set0_default(x)`` sets it and returns the previous value, as in C.
    """
    t = Trace(be)
    glob = Sym("global")
    default: contextvars.ContextVar[Any] = contextvars.ContextVar("default_libctx", default=glob)

    def set0_default(ctx: Any, who: Any = None) -> Any:
        old = default.get()
        default.set(ctx)
        t.line(f"set0_default({t.n(ctx)}) -> {t.n(old)}", who=who)
        return old

    def change_deflt_libctx(arg: Any) -> int:
        libctx = Sym("L2")
        t.line("L2 = OSSL_LIB_CTX_new", who="j")
        old = set0_default(libctx, "j")
        t.pause(who="j")
        if set0_default(old, "j") is not libctx:  # the job still sees its own context
            return 0
        old = set0_default(libctx, "j")
        t.pause(who="j")
        if set0_default(old, "j") is not libctx:
            return 0
        t.line("OSSL_LIB_CTX_free(L2)", who="j")
        return 1

    libctx = Sym("L")
    t.line("L = OSSL_LIB_CTX_new")
    globalctx = old = set0_default(libctx)
    ctx = t.ctx_new("ctx")
    job = t.start("j", ctx, change_deflt_libctx)
    tmp = set0_default(old)  # the caller's own default is L again after PAUSE
    old = set0_default(tmp)
    t.line(f"caller default was {t.n(tmp)}")
    job = t.resume(job)
    tmp = set0_default(old)  # the caller goes on with the global default
    t.line(f"caller default was {t.n(tmp)}")
    t.resume(job)
    tmp = set0_default(libctx)  # after FINISH the caller's default is still global
    set0_default(tmp)
    t.line(f"caller default was {t.n(tmp)}; global is {t.n(globalctx)}")
    t.ctx_free(ctx)
    t.cleanup_thread()
    t.line("OSSL_LIB_CTX_free(L)")
    return t.lines
