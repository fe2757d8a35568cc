"""aio.run_job under load: turns per loop iteration, ``timeout=``, the job limit."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, List

import pytest

import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.drive import _aio

from ._drivers import AIO_DRIVERS, never_resumed, run_async

pytestmark = pytest.mark.parametrize("driver", AIO_DRIVERS)


# -- turns: a burst does not take the loop over ------------------------------------


def test_a_burst_leaves_the_loop_turns_between_its_starts(
    backend: pa.Backend, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no time to spare per iteration, every iteration starts about one job,
    so a task polling the loop runs between them (counted, not timed)."""
    monkeypatch.setattr(_aio, "SLICE_SECONDS", 0.0)
    n = 60
    started: List[int] = []
    probe_turns: List[int] = []

    def job(i: int) -> int:
        started.append(i)
        backend.pause_job()
        return i

    async def main() -> List[Any]:
        done = False

        async def probe() -> None:
            while not done:
                probe_turns.append(len(started))
                await asyncio.sleep(0)

        watcher = asyncio.ensure_future(probe())
        results = await asyncio.gather(*(aio.run_job(job, i, backend=backend) for i in range(n)))
        done = True
        await watcher
        return results

    assert run_async(driver, main) == list(range(n))
    assert started == list(range(n))  # first come, first served
    during = [count for count in probe_turns if 0 < count < n]
    # The probe ran while the burst was starting, many times, seeing few new starts each time.
    assert len(during) >= n // 4
    assert max(b - a for a, b in zip(probe_turns, probe_turns[1:])) <= 4


def test_a_cancel_during_a_burst_lands_before_the_job_starts(
    backend: pa.Backend, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_aio, "SLICE_SECONDS", 0.0)
    started: List[int] = []

    def job(i: int) -> int:
        started.append(i)
        backend.pause_job()
        return i

    async def main() -> List[Any]:
        tasks = [asyncio.ensure_future(aio.run_job(job, i, backend=backend)) for i in range(40)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        tasks[-1].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run_async(driver, main)
    assert results[:-1] == list(range(39))
    assert isinstance(results[-1], asyncio.CancelledError)
    assert 39 not in started  # cancelled while waiting for its turn: never started


def test_cancelled_turn_holders_do_not_stall_the_queue(
    backend: pa.Backend, driver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turns handed to tasks cancelled before they run are not lost for the rest."""
    monkeypatch.setattr(_aio, "SLICE_SECONDS", 0.0)

    async def main() -> List[Any]:
        tasks = [asyncio.ensure_future(aio.run_job(lambda a: a, i, backend=backend)) for i in range(30)]
        await asyncio.sleep(0)
        for task in tasks[1:20]:
            task.cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run_async(driver, main)
    assert results[0] == 0 and results[20:] == list(range(20, 30))
    cancelled = [r for r in results[1:20] if isinstance(r, asyncio.CancelledError)]
    assert len(cancelled) >= 15  # (one or two may have had their turn before the cancel)
    assert all(r == i for i, r in enumerate(results) if not isinstance(r, asyncio.CancelledError))


# -- timeout= ---------------------------------------------------------------------------


def test_timeout_closes_the_job_and_raises_timeout_error(backend: pa.Backend, driver: str) -> None:
    trace: List[str] = []
    job = never_resumed(backend, trace)

    async def main() -> None:
        with pytest.raises(TimeoutError, match=r"did not finish within 0\.05 s"):
            await aio.run_job(job, backend=backend, timeout=0.05)
        with pytest.raises(asyncio.TimeoutError):  # the same error, as asyncio spells it
            await aio.run_job(job, backend=backend, timeout=0.05)

    run_async(driver, main)
    assert trace == ["cancelled", "cancelled"]


def test_timeout_for_a_job_that_keeps_retrying(backend: pa.Backend, driver: str) -> None:
    """A job that pauses with nothing to wait for is resumed at once, again and
    again: the deadline is still checked at every pause."""
    pauses = [0]

    def job(arg: Any) -> int:
        while True:
            backend.pause_job()
            pauses[0] += 1

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await aio.run_job(job, backend=backend, timeout=0.02)

    run_async(driver, main)
    assert pauses[0] > 0


def test_a_job_finishing_in_time_is_untouched(backend: pa.Backend, driver: str) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def job(arg: Any) -> bytes:
        return pa.await_future(pool.submit(lambda: b"mac:" + arg))

    try:
        assert run_async(driver, lambda: aio.run_job(job, b"x", backend=backend, timeout=30)) == b"mac:x"
    finally:
        pool.shutdown()


@pytest.mark.parametrize("bad", ["1", -1.0, float("nan"), True])
def test_bad_timeouts_are_refused_before_anything_runs(backend: pa.Backend, driver: str, bad: Any) -> None:
    ran: List[int] = []

    async def main() -> None:
        with pytest.raises((TypeError, ValueError), match="timeout"):
            await aio.run_job(ran.append, 1, backend=backend, timeout=bad)

    run_async(driver, main)
    assert ran == []


# -- the job limit ---------------------------------------------------------------------------


def test_job_limit_caps_jobs_in_flight(backend: pa.Backend, driver: str) -> None:
    running = [0]
    most = [0]

    def job(i: int) -> int:
        running[0] += 1
        most[0] = max(most[0], running[0])
        for _ in range(3):
            backend.pause_job()
        running[0] -= 1
        return i

    async def main() -> List[int]:
        aio.set_job_limit(3)
        assert aio.get_job_limit() == 3
        return await asyncio.gather(*(aio.run_job(job, i, backend=backend) for i in range(20)))

    assert run_async(driver, main) == list(range(20))
    assert most[0] == 3


def test_job_limit_waits_honour_timeout_and_cancel(backend: pa.Backend, driver: str) -> None:
    release = concurrent.futures.Future()  # type: concurrent.futures.Future[int]

    def holder(arg: Any) -> int:
        return pa.await_future(release)

    async def main() -> List[Any]:
        aio.set_job_limit(1)
        first = asyncio.ensure_future(aio.run_job(holder, backend=backend))
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError, match="job limit of 1"):
            await aio.run_job(lambda a: 1, backend=backend, timeout=0.02)
        waiting = asyncio.ensure_future(aio.run_job(lambda a: 2, backend=backend))
        later = asyncio.ensure_future(aio.run_job(lambda a: 3, backend=backend))
        await asyncio.sleep(0.01)
        waiting.cancel()
        release.set_result(1)
        return await asyncio.gather(first, waiting, later, return_exceptions=True)

    results = run_async(driver, main)
    assert results[0] == 1 and results[2] == 3
    assert isinstance(results[1], asyncio.CancelledError)


def test_raising_the_job_limit_lets_waiting_calls_start(backend: pa.Backend, driver: str) -> None:
    release = concurrent.futures.Future()  # type: concurrent.futures.Future[int]
    started: List[int] = []

    def job(i: int) -> int:
        started.append(i)
        return pa.await_future(release) + i

    async def main() -> List[int]:
        aio.set_job_limit(1)
        tasks = [asyncio.ensure_future(aio.run_job(job, i, backend=backend)) for i in range(3)]
        await asyncio.sleep(0.02)
        assert started == [0]
        aio.set_job_limit(None)
        await asyncio.sleep(0.02)
        assert sorted(started) == [0, 1, 2]
        release.set_result(10)
        return await asyncio.gather(*tasks)

    assert run_async(driver, main) == [10, 11, 12]


@pytest.mark.parametrize(("bad", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_job_limits_are_refused(backend: pa.Backend, driver: str, bad: Any, error: type) -> None:
    async def main() -> None:
        with pytest.raises(error, match="limit"):
            aio.set_job_limit(bad)
        assert aio.get_job_limit() is None

    run_async(driver, main)


def test_job_limit_needs_a_loop(backend: pa.Backend, driver: str) -> None:
    with pytest.raises(RuntimeError):
        aio.set_job_limit(2)  # no running loop, none given
    loop = asyncio.new_event_loop()
    try:
        aio.set_job_limit(2, loop=loop)
        assert aio.get_job_limit(loop) == 2
    finally:
        loop.close()
    with pytest.raises(TypeError, match="loop"):
        aio.set_job_limit(2, loop="loop")  # type: ignore[arg-type]
