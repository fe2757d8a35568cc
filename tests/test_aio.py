"""aio.run_job: many jobs on one loop, cancellation, pool limits, shared fds, uvloop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import traceback
from typing import Any, List

import pytest

import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.drive._aio import _states

from ._drivers import (
    AIO_DRIVERS,
    Pipes,
    ctx_of,
    drain,
    loop_readers,
    never_resumed,
    pipes_fixture,  # noqa: F401
    readable,
    run_async,
)

pytestmark = pytest.mark.parametrize("driver", AIO_DRIVERS)


def test_many_jobs_in_flight_at_once(backend: pa.Backend, driver: str) -> None:
    """1,000 jobs all paused together on one loop, woken by another thread."""
    n = 1000
    paused = [0]
    most = [0]
    all_paused = threading.Event()
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
            if paused[0] == n:
                all_paused.set()
        backend.pause_job()
        assert readable(r)
        with lock:
            paused[0] -= 1
        ctx.clear_fd("wake")
        return i

    def accelerator() -> None:
        all_paused.wait(60)
        for w in list(writes):
            os.write(w, b"!")

    async def main() -> List[int]:
        loop = asyncio.get_running_loop()
        waker = loop.run_in_executor(None, accelerator)
        results = await asyncio.gather(*(aio.run_job(job, i, backend=backend) for i in range(n)))
        await waker
        return results

    try:
        assert run_async(driver, main) == list(range(n))
    finally:
        for fd in fds:
            os.close(fd)
    assert most[0] == n


def test_exception_surfaces_in_the_awaiting_task(backend: pa.Backend, driver: str) -> None:
    def failing_job(arg: Any) -> int:
        backend.pause_job()
        if arg % 2:
            raise ValueError(f"job {arg} failed")
        return arg

    async def main() -> List[Any]:
        return await asyncio.gather(
            *(aio.run_job(failing_job, i, backend=backend) for i in range(6)), return_exceptions=True
        )

    results = run_async(driver, main)
    assert results[0::2] == [0, 2, 4]
    for i, exc in zip((1, 3, 5), results[1::2]):
        assert isinstance(exc, ValueError) and str(exc) == f"job {i} failed"
        names = [f.name for f in traceback.extract_tb(exc.__traceback__)]
        assert "failing_job" in names


def test_cancel_mid_pause_closes_the_job(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, _ = pipes.new()
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("never", r)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            trace.append("cancelled")
            raise
        finally:
            trace.append("finally")
        return 1

    async def main() -> None:
        loop = asyncio.get_running_loop()
        baseline = loop_readers(loop)
        task = asyncio.ensure_future(aio.run_job(job, backend=backend))
        for _ in range(5):
            await asyncio.sleep(0)
        assert trace == []
        if baseline is not None:
            # the job's wait fd, and the loop thread's callback pipe (while jobs run)
            assert loop_readers(loop) == baseline + 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert trace == ["cancelled", "finally"]
        assert loop_readers(loop) == baseline
        assert loop not in _states

    run_async(driver, main)


def test_wait_for_timeout_closes_the_job(backend: pa.Backend, driver: str) -> None:
    trace: List[str] = []
    job = never_resumed(backend, trace)

    async def main() -> None:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.run_job(job, backend=backend), 0.05)

    run_async(driver, main)
    assert trace == ["cancelled"]


def test_cancel_reports_an_unwinding_error_to_the_loop(backend: pa.Backend, driver: str) -> None:
    def job(arg: Any) -> int:
        ctx_of(backend).set_status(pa.WaitStatus.OK)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            raise RuntimeError("cleanup failed") from None
        return 1

    reported: List[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda lp, context: reported.append(context))
        task = asyncio.ensure_future(aio.run_job(job, backend=backend))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async(driver, main)
    assert len(reported) == 1
    assert isinstance(reported[0]["exception"], RuntimeError)


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

    async def main() -> List[int]:
        return await asyncio.gather(*(aio.run_job(job, i, backend=backend) for i in range(200)))

    try:
        assert run_async(driver, main) == [i * i for i in range(200)]
    finally:
        pool.shutdown()


def test_one_fd_watched_by_two_jobs(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, w = pipes.new()
    paused = [0]

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("shared", r)
        paused[0] += 1
        backend.pause_job()
        ctx_of(backend).clear_fd("shared")
        return arg

    async def main() -> List[int]:
        tasks = [asyncio.ensure_future(aio.run_job(job, i, backend=backend)) for i in range(2)]
        while paused[0] < 2:
            await asyncio.sleep(0)
        os.write(w, b"x")  # one readiness wakes both
        return await asyncio.gather(*tasks)

    assert run_async(driver, main) == [0, 1]
    drain(r)


def test_full_pool_waits_for_a_slot(backend: pa.Backend, driver: str) -> None:
    paused = [0]
    most = [0]

    def job(arg: Any) -> int:
        paused[0] += 1
        most[0] = max(most[0], paused[0])
        for _ in range(3):
            backend.pause_job()
        paused[0] -= 1
        return arg

    async def main() -> List[int]:
        assert backend.init_thread(4, 0)  # the loop's thread: at most 4 jobs
        return await asyncio.gather(*(aio.run_job(job, i, backend=backend) for i in range(20)))

    assert run_async(driver, main) == list(range(20))
    assert most[0] == 4


def test_full_pool_with_no_job_of_ours_is_async_error(backend: pa.Backend, driver: str) -> None:
    async def main() -> None:
        assert backend.init_thread(1, 0)
        with backend.WaitCtx() as ctx:
            status, held, _ = backend.start_job(None, ctx, lambda a: int(backend.pause_job()))
            assert status == pa.PAUSE and held is not None
            try:
                with pytest.raises(pa.AsyncError, match="NO_JOBS"):
                    await aio.run_job(lambda a: 1, backend=backend)
            finally:
                assert backend.start_job(held, ctx, None)[0] == pa.FINISH

    run_async(driver, main)


def test_cancel_while_waiting_for_a_slot(backend: pa.Backend, driver: str) -> None:
    def job(arg: Any) -> int:
        for _ in range(arg):
            backend.pause_job()
        return arg

    async def main() -> List[Any]:
        assert backend.init_thread(1, 0)
        first = asyncio.ensure_future(aio.run_job(job, 20, backend=backend))
        await asyncio.sleep(0)
        queued = [asyncio.ensure_future(aio.run_job(job, 1, backend=backend)) for _ in range(3)]
        await asyncio.sleep(0)
        queued[0].cancel()
        return await asyncio.gather(first, *queued, return_exceptions=True)

    results = run_async(driver, main)
    assert results[0] == 20
    assert isinstance(results[1], asyncio.CancelledError)
    assert results[2:] == [1, 1]


def test_jobs_run_on_the_loop_thread(backend: pa.Backend, driver: str) -> None:
    """Every start and resume happens on the loop's thread (here: this one)."""
    seen: List[int] = []

    def job(arg: Any) -> int:
        seen.append(threading.get_ident())
        backend.pause_job()
        seen.append(threading.get_ident())
        return 1

    assert run_async(driver, lambda: aio.run_job(job, backend=backend)) == 1
    if getattr(backend, "engine", None) == "threads":
        assert seen[0] == seen[1] != threading.get_ident()  # its worker, driven from here
    else:  # openssl, and python on greenlets: the job runs on the driving thread
        assert seen == [threading.get_ident()] * 2


def test_job_code_awaits_a_coroutine_on_the_driving_loop(backend: pa.Backend, driver: str) -> None:
    async def double(x: int) -> int:
        await asyncio.sleep(0.001)
        asyncio.get_running_loop()  # a real task of the driving loop
        return 2 * x

    async def fails() -> None:
        await asyncio.sleep(0)
        raise KeyError("from the coroutine")

    def job(x: int) -> int:
        with pytest.raises(KeyError, match="from the coroutine"):
            aio.await_coroutine(fails())
        return aio.await_coroutine(double(x)) + 1

    async def main() -> List[int]:
        return await asyncio.gather(*(aio.run_job(job, i, backend=backend) for i in range(20)))

    assert run_async(driver, main) == [2 * i + 1 for i in range(20)]


def test_closing_the_job_cancels_the_coroutine(backend: pa.Backend, driver: str) -> None:
    seen: List[str] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("coroutine cancelled")
            raise

    def job(arg: Any) -> int:
        try:
            aio.await_coroutine(forever())
        finally:
            seen.append("job finally")
        return 0

    async def main() -> None:
        task = asyncio.ensure_future(aio.run_job(job, backend=backend))
        for _ in range(10):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(5):
            await asyncio.sleep(0)

    run_async(driver, main)
    assert sorted(seen) == ["coroutine cancelled", "job finally"]


def test_await_coroutine_outside_an_aio_job(backend: pa.Backend, driver: str) -> None:
    async def nothing() -> int:
        return 1

    with pytest.raises(pa.AsyncError, match=r"inside a job that aio\.run_job"):
        aio.await_coroutine(nothing())
    with pytest.raises(pa.AsyncError, match=r"inside a job that aio\.run_job"):
        pa.run_job(lambda a: aio.await_coroutine(nothing()), backend=backend)
