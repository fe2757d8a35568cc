"""What every async driver does alike (aio.run_job on asyncio and uvloop, trio.run_job):
many jobs at once, shared fds, callbacks from threads, errors, pool slots, the loop's thread.

Each test runs once per driver (``ASYNC_DRIVERS``) and per backend; what only one
driver has (asyncio's cancellation and job limit, trio's cancel scopes) is in
``test_aio.py``, ``test_aio_bursts.py`` and ``test_trio.py``.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
import time
import traceback
from typing import Any, List

import pytest

import pyossl_async as pa

from ._drivers import (
    ASYNC_DRIVERS,
    HANG,
    Pipes,
    ctx_of,
    drain,
    pipes_fixture,  # noqa: F401
    readable,
    run_jobs,
)

pytestmark = pytest.mark.parametrize("driver", ASYNC_DRIVERS)


def _when(condition: Any, then: Any) -> threading.Thread:
    """On a thread: wait until ``condition()``, then ``then()`` (an "accelerator" answering)."""

    def wait_then() -> None:
        deadline = time.monotonic() + HANG
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.001)
        then()

    thread = threading.Thread(target=wait_then, daemon=True)
    thread.start()
    return thread


def test_many_jobs_in_flight_at_once(backend: pa.Backend, driver: str) -> None:
    """1,000 jobs all paused together in one run, each on a pipe of its own, woken by another thread."""
    n = 1000
    paused = [0]
    most = [0]
    writes: List[int] = []
    lock = threading.Lock()
    fds: List[int] = []

    def job(i: int) -> int:
        r, w = os.pipe()
        fds.extend((r, w))
        ctx = ctx_of(backend)
        ctx.set_wait_fd("wake", r)
        with lock:
            writes.append(w)
            paused[0] += 1
            most[0] = max(most[0], paused[0])
        backend.pause_job()
        assert readable(r)
        with lock:
            paused[0] -= 1
        ctx.clear_fd("wake")
        return i

    waker = _when(lambda: most[0] == n, lambda: [os.write(w, b"!") for w in list(writes)])
    try:
        assert run_jobs(driver, backend, job, range(n)) == list(range(n))
    finally:
        waker.join(HANG)
        for fd in fds:
            os.close(fd)
    assert most[0] == n


def test_any_result_type(backend: pa.Backend, driver: str) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(4)

    def job(i: int) -> bytes:
        return pa.await_future(pool.submit(lambda: b"sig:%d" % i))

    try:
        assert run_jobs(driver, backend, job, range(300)) == [b"sig:%d" % i for i in range(300)]
    finally:
        pool.shutdown()


def test_exception_surfaces_in_the_awaiting_task(backend: pa.Backend, driver: str) -> None:
    def failing_job(arg: int) -> int:
        backend.pause_job()
        if arg % 2:
            raise ValueError(f"job {arg} failed")
        return arg

    results = run_jobs(driver, backend, failing_job, range(6), return_exceptions=True)
    assert results[0::2] == [0, 2, 4]
    for i, exc in zip((1, 3, 5), results[1::2]):
        assert isinstance(exc, ValueError) and str(exc) == f"job {i} failed"
        names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        assert "failing_job" in names


def test_callbacks_from_threads_wake_the_right_jobs(backend: pa.Backend, driver: str) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(4)

    def job(i: int) -> int:
        ctx = ctx_of(backend)
        cb, cb_arg = ctx.get_callback()
        box: List[int] = []

        def work() -> None:
            box.append(i * i)
            cb(cb_arg)

        ctx.set_status(pa.WaitStatus.OK)
        pool.submit(work)
        backend.pause_job()
        assert box == [i * i]
        return box[0]

    try:
        assert run_jobs(driver, backend, job, range(200)) == [i * i for i in range(200)]
    finally:
        pool.shutdown()


def test_callbacks_wake_jobs_in_the_order_they_come(backend: pa.Backend, driver: str) -> None:
    events = [threading.Event() for _ in range(5)]
    done: List[int] = []

    def job(i: int) -> int:
        ctx = ctx_of(backend)
        ctx.set_status(pa.WaitStatus.OK)
        callback, arg = ctx.get_callback()

        def later() -> None:
            events[i].wait(HANG)
            callback(arg)

        threading.Thread(target=later, daemon=True).start()
        backend.pause_job()
        done.append(i)
        return i

    def answer_in_order() -> None:
        for i in (3, 1, 4, 0, 2):
            events[i].set()
            deadline = time.monotonic() + HANG
            while i not in done and time.monotonic() < deadline:
                time.sleep(0.001)

    paused = [0]

    def counted(i: int) -> int:
        paused[0] += 1
        return job(i)

    answers = _when(lambda: paused[0] == 5, answer_in_order)
    assert run_jobs(driver, backend, counted, range(5)) == list(range(5))
    answers.join(HANG)
    assert done == [3, 1, 4, 0, 2]


def test_one_fd_watched_by_two_jobs(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    """One readiness wakes both jobs waiting on the same fd (one reader for both)."""
    r, w = pipes.new()
    paused = [0]

    def job(arg: int) -> int:
        ctx_of(backend).set_wait_fd("shared", r)
        paused[0] += 1
        backend.pause_job()
        assert readable(r)
        ctx_of(backend).clear_fd("shared")
        return arg

    writer = _when(lambda: paused[0] == 2, lambda: os.write(w, b"x"))
    assert run_jobs(driver, backend, job, [0, 1]) == [0, 1]
    writer.join(HANG)
    drain(r)


def test_full_pool_waits_for_a_slot(backend: pa.Backend, driver: str) -> None:
    paused = [0]
    most = [0]

    def job(arg: int) -> int:
        paused[0] += 1
        most[0] = max(most[0], paused[0])
        for _ in range(3):
            backend.pause_job()
        paused[0] -= 1
        return arg

    def four_jobs_at_most() -> None:
        assert backend.init_thread(4, 0)  # the run's thread: at most 4 jobs

    assert run_jobs(driver, backend, job, range(20), before=four_jobs_at_most) == list(range(20))
    assert most[0] == 4


def test_full_pool_with_no_job_of_ours_is_async_error(backend: pa.Backend, driver: str) -> None:
    """The pool is full of a job the driver did not start: no slot will come free."""
    held: List[Any] = []
    with backend.WaitCtx() as ctx:

        def pool_held_elsewhere() -> None:
            assert backend.init_thread(1, 0)
            status, job, _ = backend.start_job(None, ctx, lambda a: int(backend.pause_job()))
            assert status == pa.PAUSE and job is not None
            held.append(job)

        try:
            [result] = run_jobs(
                driver, backend, lambda a: 1, [None], return_exceptions=True, before=pool_held_elsewhere
            )
            assert isinstance(result, pa.AsyncError) and "NO_JOBS" in str(result), result
        finally:
            assert backend.start_job(held[0], ctx, None)[0] == pa.FINISH


def test_jobs_run_on_the_runs_thread(backend: pa.Backend, driver: str) -> None:
    """Every start and resume happens on the thread of the loop or trio run (here: this one)."""
    seen: List[int] = []

    def job(arg: Any) -> int:
        seen.append(threading.get_ident())
        backend.pause_job()
        seen.append(threading.get_ident())
        return 1

    assert run_jobs(driver, backend, job, [None]) == [1]
    if getattr(backend, "engine", None) == "threads":
        assert seen[0] == seen[1] != threading.get_ident()  # its worker, driven from here
    else:  # openssl, and python on greenlets: the job runs on the driving thread
        assert seen == [threading.get_ident()] * 2
