"""aio.run_job alone: cancellation, timeouts, await_coroutine, the loop's readers.

What every async driver shares is in ``test_async_drivers.py``.
"""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.drive._aio import _states

from ._drivers import (
    AIO_DRIVERS,
    Pipes,
    ctx_of,
    loop_readers,
    never_resumed,
    pipes_fixture,  # noqa: F401
    run_async,
)

pytestmark = pytest.mark.parametrize("driver", AIO_DRIVERS)


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
