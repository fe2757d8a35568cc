"""The per-thread job pool: sizes, NO_JOBS, reuse, ``init_thread`` and ``cleanup_thread`` edge cases."""

from __future__ import annotations

from typing import Any, Callable, List, Optional

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


def _pauses_once(t: Trace, who: str, result: int = 1) -> Callable[[Any], int]:
    def job(arg: Any) -> int:
        t.pause(who=who)
        return result

    return job


def _returns(result: int) -> Callable[[Any], int]:
    def job(arg: Any) -> int:
        return result

    return job


@scenario
def pool_max_size_no_jobs(be: pa.Backend) -> List[str]:
    """``init_thread(3, 0)``: three paused jobs fill the pool, a fourth gets NO_JOBS until one finishes."""
    t = Trace(be)
    t.init(3, 0)
    ctx = t.ctx_new("ctx")
    jobs = [t.start(f"j{i}", ctx, _pauses_once(t, f"j{i}", i)) for i in (1, 2, 3)]
    t.start("j4", ctx, _pauses_once(t, "j4", 4))
    t.resume(jobs[1])
    j4 = t.start("j4", ctx, _pauses_once(t, "j4", 4))
    t.start("j5", ctx, _pauses_once(t, "j5", 5))
    for job in (jobs[0], jobs[2], j4):
        t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def pool_init_size(be: pa.Backend) -> List[str]:
    """``init_size`` jobs are created up front, within ``max_size``: (2, 2) and (3, 1) hold 2 and 3 jobs."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    for max_size, init_size in ((2, 2), (3, 1)):
        t.init(max_size, init_size)
        paused = []
        for i in range(1, max_size + 2):
            job = t.start(f"j{i}", ctx, _pauses_once(t, f"j{i}", i))
            if job is not None:
                paused.append(job)
        for job in paused:
            t.resume(job)
        t.cleanup_thread()
    t.ctx_free(ctx)
    return t.lines


@scenario
def pool_unlimited_by_default(be: pa.Backend) -> List[str]:
    """Without ``init_thread`` the pool has no limit: 25 jobs pause at once."""
    t = Trace(be)
    t.cleanup_thread()
    ctx = t.ctx_new("ctx")
    jobs = [t.start(f"j{i}", ctx, _pauses_once(t, f"j{i}", i)) for i in range(1, 26)]
    for job in jobs:
        t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def pool_reuse_after_finish(be: pa.Backend) -> List[str]:
    """A pool of one serves any number of jobs one after another; while one is paused, the next gets NO_JOBS."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    for i in range(1, 6):
        t.start(f"j{i}", ctx, _returns(i))
    job = t.start("p", ctx, _pauses_once(t, "p", 6))
    t.start("q", ctx, _returns(7))
    t.resume(job)
    t.start("q", ctx, _returns(7))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def pool_no_jobs_changes_nothing(be: pa.Backend) -> List[str]:
    """NO_JOBS runs nothing and changes nothing: the function is not called, the paused job and the context are
    intact."""
    t = Trace(be)

    def never(arg: Any) -> int:
        t.line("this function must not run")
        return 9

    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    key = t.sym("kA")

    def job(arg: Any) -> int:
        t.set_fd(ctx, key, 5, None, cleanup=False, who="j1")
        t.pause(who="j1")
        return 1

    j1 = t.start("j1", ctx, job)
    t.changed_fds(ctx)
    t.start("j2", ctx, never)
    t.current()
    t.changed_fds(ctx)
    t.get_wait_ctx(j1)
    t.resume(j1)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def init_thread_sizes(be: pa.Backend) -> List[str]:
    """``init_size > max_size`` fails, so ``(0, n > 0)`` fails although 0 means unlimited; a failed call keeps
    the old pool."""
    t = Trace(be)
    for max_size, init_size in ((0, 0), (0, 5), (2, 5), (5, 5), (5, 2), (1, 0)):
        t.init(max_size, init_size)
    ctx = t.ctx_new("ctx")
    j1 = t.start("j1", ctx, _pauses_once(t, "j1"))
    t.init(0, 1)  # fails: the pool of one stays
    t.start("j2", ctx, _pauses_once(t, "j2"))
    t.resume(j1)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def init_thread_twice_replaces_pool(be: pa.Backend) -> List[str]:
    """A second ``init_thread`` replaces the pool (new count from 0); a job paused under the old pool finishes
    into the new one."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    j1 = t.start("j1", ctx, _pauses_once(t, "j1", 1))
    t.start("j2", ctx, _returns(2))  # NO_JOBS
    t.init(1, 0)
    j3 = t.start("j3", ctx, _pauses_once(t, "j3", 3))  # the new pool's first job
    t.start("j4", ctx, _returns(4))  # NO_JOBS
    t.resume(j1)  # j1's job joins the new pool...
    t.start("j5", ctx, _returns(5))  # ...so there is an idle job again
    t.resume(j3)
    t.start("j6", ctx, _returns(6))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def init_thread_large_max(be: pa.Backend) -> List[str]:
    """``max_size`` above ``INT_MAX`` is accepted up to OpenSSL 3.5 and refused from 3.6 on (version-dependent lines).

    The ``"python"`` backend models 3.0, which accepts it; the lines marked ``~``
    are compared exactly between C and ``"openssl"`` only (see compare.py).
    """
    t = Trace(be)
    t.init(2147483647, 0)
    for max_size in (2147483648, 18446744073709551615):
        text = f"init_thread({max_size}, 0)"
        t.version_line(f"{text} -> {int(be.init_thread(max_size, 0))}")
    ctx = t.ctx_new("ctx")
    t.start("j", ctx, _returns(1))  # whichever pool is in place works
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def init_thread_inside_job(be: pa.Backend) -> List[str]:
    """``init_thread`` from inside a job replaces the thread's pool; the running job finishes into the new pool."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        t.init(1, 0, who="j1")
        t.pause(who="j1")
        return 1

    j1 = t.start("j1", ctx, job)
    t.start("j2", ctx, _returns(2))  # the new pool is empty with room for one
    t.resume(j1)
    j3: Optional[Any] = t.start("j3", ctx, _pauses_once(t, "j3", 3))
    t.start("j4", ctx, _returns(4))
    t.resume(j3)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def cleanup_thread_edge_cases(be: pa.Backend) -> List[str]:
    """``cleanup_thread`` with nothing set up and twice in a row is fine; afterwards the pool is unlimited again."""
    t = Trace(be)
    t.cleanup_thread()
    t.cleanup_thread()
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    t.start("j1", ctx, _returns(1))
    t.cleanup_thread()
    t.cleanup_thread()
    jobs = [t.start(f"j{i}", ctx, _pauses_once(t, f"j{i}", i)) for i in (2, 3, 4)]
    for job in jobs:
        t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines
