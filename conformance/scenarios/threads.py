"""Jobs across threads: pools, the current job, the block counter and cleanup are all per thread.

Threads run one after another (start, join) unless the scenario says otherwise,
so the trace has one order. ``threads_parallel_jobs`` runs its threads at the
same time; each records into its own trace, printed after the joins in thread order.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario
from pyossl_async.testing.conformance.trace import is_scenario_bug


def _pauses_once(t: Trace, who: str, result: int) -> Callable[[Any], int]:
    def job(arg: Any) -> int:
        t.pause(who=who)
        return result

    return job


@scenario
def threads_own_pools(be: pa.Backend) -> List[str]:
    """Each thread has its own pool: a full pool in the main thread does not stop another thread, nor its
    init_thread."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    j1 = t.start("j1", ctx, _pauses_once(t, "j1", 1))
    t.start("j2", ctx, _pauses_once(t, "j2", 2))

    def other() -> None:
        tctx = t.ctx_new("tctx")
        handles = [t.start(f"t{i}", tctx, _pauses_once(t, f"t{i}", 10 + i)) for i in (1, 2)]
        t.init(1, 0, who="T")  # a new pool of one: t3 fits although t1 and t2 are paused
        handles.append(t.start("t3", tctx, _pauses_once(t, "t3", 13)))
        t.start("t4", tctx, _pauses_once(t, "t4", 14))
        for handle in handles:
            t.resume(handle)
        t.ctx_free(tctx)
        t.cleanup_thread(who="T")

    t.in_thread(other)
    t.start("j2", ctx, _pauses_once(t, "j2", 2))
    t.resume(j1)
    t.resume(t.start("j2", ctx, _pauses_once(t, "j2", 2)))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def threads_current_job_is_per_thread(be: pa.Backend) -> List[str]:
    """While the main thread has a paused job, another thread sees no current job and its jobs see only themselves."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")

    def main_job(arg: Any) -> int:
        t.pause(who="j")
        t.current(who="j")
        return 1

    handle = t.start("j", ctx, main_job)

    def other() -> None:
        t.current(who="T")
        tctx = t.ctx_new("tctx")

        def job(arg: Any) -> int:
            t.pause(who="t")
            t.current(who="t")
            return 2

        t.resume(t.start("t", tctx, job))
        t.current(who="T")
        t.ctx_free(tctx)
        t.cleanup_thread(who="T")

    t.in_thread(other)
    t.resume(handle)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def threads_block_is_per_thread(be: pa.Backend) -> List[str]:
    """A block leaked by a job in one thread does not block the jobs of another thread."""
    t = Trace(be)

    def leaker(arg: Any) -> int:
        t.block(who="t1")
        return 1

    def pauser(who: str) -> Callable[[Any], int]:
        def job(arg: Any) -> int:
            t.pause(who=who)
            return 2

        return job

    def other() -> None:
        tctx = t.ctx_new("tctx")
        t.start("t1", tctx, leaker)
        t.start("t2", tctx, pauser("t2"))  # blocked in this thread: finishes at once
        t.ctx_free(tctx)
        t.cleanup_thread(who="T")

    t.in_thread(other)
    ctx = t.ctx_new("ctx")
    t.resume(t.start("j", ctx, pauser("j")))
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def threads_cleanup_is_per_thread(be: pa.Backend) -> List[str]:
    """``cleanup_thread`` and ``init_thread`` in another thread leave the main thread's pool as it was."""
    t = Trace(be)
    t.init(1, 0)
    ctx = t.ctx_new("ctx")
    j1 = t.start("j1", ctx, _pauses_once(t, "j1", 1))

    def other() -> None:
        t.init(5, 0, who="T")
        t.cleanup_thread(who="T")

    t.in_thread(other)
    t.start("j2", ctx, _pauses_once(t, "j2", 2))
    t.resume(j1)
    t.ctx_free(ctx)
    t.cleanup_thread()
    return t.lines


@scenario
def threads_parallel_jobs(be: pa.Backend) -> List[str]:
    """Four threads at once, each interleaving three jobs (own pool of 2, own context); each thread's trace is
    printed after the joins."""
    t = Trace(be)
    count = 4
    traces = [Trace(be) for _ in range(count)]
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        s = traces[i]
        barrier.wait()  # all threads really run their jobs at the same time
        s.init(2, 0)
        ctx = s.ctx_new("ctx")
        key = s.sym("k")
        jobs = []
        for k in range(3):
            who = f"j{k}"

            def body(arg: Any, who: str = who, k: int = k) -> int:
                s.set_fd(ctx, key, 100 * i + k, None, cleanup=False, who=who)
                s.pause(who=who)
                s.clear_fd(ctx, key, who=who)
                s.pause(who=who)
                return 10 * i + k

            jobs.append(s.start(who, ctx, body))
        live = [j for j in jobs if j is not None]
        while live:
            live = [j for j in (s.resume(j) for j in live) if j is not None]
        s.all_fds(ctx)
        s.ctx_free(ctx)
        s.cleanup_thread()

    threads = []
    failures: List[BaseException] = []

    def guarded(i: int) -> None:
        try:
            run(i)
        except BaseException as exc:  # noqa: BLE001 - reported in the trace
            failures.append(exc)

    for i in range(count):
        thread = threading.Thread(target=guarded, args=(i,), name=f"conformance-T{i}")
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    for i, s in enumerate(traces):
        for line in s.lines:
            t.line(f"T{i}| {line}")
    for exc in failures:
        if is_scenario_bug(exc):
            raise exc  # a bug in this scenario, not an observation
        t.raised(f"thread raised {type(exc).__name__}: {exc}", exc)
    return t.lines
