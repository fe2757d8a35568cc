"""Many jobs paused at once and resumed in every order: FIFO, LIFO, permutations, a bounded pool."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


def _counter_job(t: Trace, who: str, pauses: int, base: int) -> Callable[[Any], int]:
    """Pause ``pauses`` times, counting in a local; return ``base + pauses``."""

    def job(arg: Any) -> int:
        n = 0
        while n < pauses:
            t.pause(who=who)
            n += 1
        t.line(f"done after {n} pauses", who=who)
        return base + n

    return job


@scenario
def interleave_fifo_lifo(be: pa.Backend) -> List[str]:
    """Three jobs, each paused twice, resumed first-in-first-out, then last-in-first-out."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    jobs = [t.start(f"j{i}", ctx, _counter_job(t, f"j{i}", 2, 10 * i)) for i in (1, 2, 3)]
    jobs = [t.resume(job) for job in jobs]
    for job in reversed(jobs):
        t.resume(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def interleave_many_jobs(be: pa.Backend) -> List[str]:
    """40 jobs pausing 1 to 4 times each, resumed round after round in a scrambled order (index * 7 mod 40)."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    count = 40
    jobs: Dict[int, Optional[Any]] = {}
    for i in range(count):
        jobs[i] = t.start(f"j{i}", ctx, _counter_job(t, f"j{i}", i % 4 + 1, 100 * i))
    while any(job is not None for job in jobs.values()):
        for k in range(count):
            i = (k * 7) % count
            if jobs[i] is not None:
                jobs[i] = t.resume(jobs[i])
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def interleave_bounded_pool(be: pa.Backend) -> List[str]:
    """Ten tasks through a pool of four: start until NO_JOBS, resume the oldest paused job, retry, until all finish."""
    t = Trace(be)
    t.init(4, 0)
    ctx = t.ctx_new("ctx")
    pending = list(range(10))
    running: List[Any] = []
    while pending or running:
        while pending:
            i = pending[0]
            job = t.start(f"t{i}", ctx, _counter_job(t, f"t{i}", i % 3 + 1, i))
            if job is None:  # NO_JOBS: every task pauses at least once
                break
            pending.pop(0)
            running.append(job)
        if running:
            job = t.resume(running.pop(0))
            if job is not None:
                running.append(job)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def interleave_ctx_per_job(be: pa.Backend) -> List[str]:
    """Four jobs, each with its own context and fd: every context sees only its own job's changes."""
    t = Trace(be)
    ctxs = [t.ctx_new(f"ctx{i}") for i in range(4)]
    keys = [t.sym(f"k{i}") for i in range(4)]

    def job(i: int) -> Callable[[Any], int]:
        who = f"j{i}"

        def body(arg: Any) -> int:
            ctx = t.own_ctx()
            t.set_fd(ctx, keys[i], 10 + i, None, who=who)
            t.pause(who=who)
            t.clear_fd(ctx, keys[i], who=who)
            t.pause(who=who)
            return i

        return body

    jobs = [t.start(f"j{i}", ctxs[i], job(i)) for i in range(4)]
    for ctx in ctxs:
        t.changed_fds(ctx)
    jobs = [t.resume(jobs[i]) for i in (2, 0, 3, 1)]
    for ctx in ctxs:
        t.changed_fds(ctx)
    for job in jobs:
        t.resume(job)
    for ctx in ctxs:
        t.all_fds(ctx)
        t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines
