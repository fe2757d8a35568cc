"""pyossl_async.trio.run_job: many jobs in one run, shared fds, cancellation, timeouts, pools."""

from __future__ import annotations

import concurrent.futures
import os
import sys
import threading
from typing import Any, List

import pytest

import pyossl_async as pa

from ._drivers import Pipes, ctx_of, drain, never_resumed, pipes_fixture, readable  # noqa: F401

trio = pytest.importorskip("trio")
from pyossl_async import trio as ptrio  # noqa: E402  (needs trio)


def test_many_jobs_in_one_run_any_result_type(backend: pa.Backend) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(4)

    def job(i: int) -> bytes:
        return pa.await_future(pool.submit(lambda: b"sig:%d" % i))

    async def main() -> List[bytes]:
        results: List[bytes] = [b""] * 300

        async def one(i: int) -> None:
            results[i] = await ptrio.run_job(job, i, backend=backend)

        async with trio.open_nursery() as nursery:
            for i in range(300):
                nursery.start_soon(one, i)
        return results

    try:
        assert trio.run(main) == [b"sig:%d" % i for i in range(300)]
    finally:
        pool.shutdown()


def test_one_fd_watched_by_two_jobs(backend: pa.Backend, pipes: Pipes) -> None:
    """trio lets one task wait on an fd: the jobs share one waiter, and both wake."""
    r, w = pipes.new()
    woke: List[int] = []

    def job(i: int) -> int:
        ctx = ctx_of(backend)
        ctx.set_wait_fd("shared", r)
        backend.pause_job()
        assert readable(r)
        woke.append(i)
        ctx.clear_fd("shared")
        return i

    async def main() -> List[int]:
        results: List[int] = []

        async def one(i: int) -> None:
            results.append(await ptrio.run_job(job, i, backend=backend))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, 1)
            nursery.start_soon(one, 2)
            await trio.sleep(0.02)
            assert woke == []
            os.write(w, b"!")
        return sorted(results)

    assert trio.run(main) == [1, 2]
    drain(r)


def test_callbacks_from_threads_wake_the_right_jobs(backend: pa.Backend) -> None:
    events = [threading.Event() for _ in range(5)]

    def job(i: int) -> int:
        ctx = ctx_of(backend)
        ctx.set_status(pa.WaitStatus.OK)
        callback, arg = ctx.get_callback()

        def later() -> None:
            events[i].wait(30)
            callback(arg)

        threading.Thread(target=later, daemon=True).start()
        backend.pause_job()
        return i

    async def main() -> List[int]:
        done: List[int] = []

        async def one(i: int) -> None:
            done.append(await ptrio.run_job(job, i, backend=backend))

        async with trio.open_nursery() as nursery:
            for i in range(5):
                nursery.start_soon(one, i)
            await trio.sleep(0.01)
            for i in (3, 1, 4, 0, 2):
                events[i].set()
                while i not in done:
                    await trio.sleep(0.001)
        return done

    assert trio.run(main) == [3, 1, 4, 0, 2]


def test_cancel_scope_closes_the_job(backend: pa.Backend) -> None:
    trace: List[str] = []
    job = never_resumed(backend, trace)

    async def main() -> bool:
        with trio.move_on_after(0.05) as scope:
            await ptrio.run_job(job, backend=backend)
        return scope.cancelled_caught

    assert trio.run(main) is True
    assert trace == ["cancelled"]


def test_timeout_closes_the_job_and_raises_timeout_error(backend: pa.Backend) -> None:
    trace: List[str] = []
    job = never_resumed(backend, trace)

    async def main() -> None:
        with pytest.raises(TimeoutError, match="did not finish within"):
            await ptrio.run_job(job, backend=backend, timeout=0.05)

    trio.run(main)
    assert trace == ["cancelled"]


def test_an_unwinding_error_is_reported_not_lost(backend: pa.Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    def job(arg: Any) -> int:
        ctx_of(backend).set_status(pa.WaitStatus.OK)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            raise ValueError("cleanup failed") from None
        return 1

    async def main() -> None:
        with trio.move_on_after(0.02):
            await ptrio.run_job(job, backend=backend)

    seen: List[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)
    trio.run(main)
    assert [repr(u.exc_value) for u in seen] == ["ValueError('cleanup failed')"]
    assert "trio.run_job() gave up on" in seen[0].err_msg


def test_exception_surfaces_in_the_awaiting_task(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        backend.pause_job()
        raise KeyError("inside")

    async def main() -> None:
        with pytest.raises(KeyError, match="inside"):
            await ptrio.run_job(job, backend=backend)

    trio.run(main)


def test_full_pool_waits_for_a_slot(backend: pa.Backend) -> None:
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
        assert backend.init_thread(3, 0)
        results: List[int] = []

        async def one(i: int) -> None:
            results.append(await ptrio.run_job(job, i, backend=backend))

        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(one, i)
        return sorted(results)

    assert trio.run(main) == list(range(12))
    assert most[0] == 3


def test_full_pool_with_no_job_of_ours_is_async_error(backend: pa.Backend) -> None:
    async def main() -> None:
        assert backend.init_thread(1, 0)
        with backend.WaitCtx() as ctx:
            status, held, _ = backend.start_job(None, ctx, lambda a: int(backend.pause_job()))
            assert status == pa.PAUSE and held is not None
            try:
                with pytest.raises(pa.AsyncError, match="NO_JOBS"):
                    await ptrio.run_job(lambda a: 1, backend=backend)
            finally:
                assert backend.start_job(held, ctx, None)[0] == pa.FINISH

    trio.run(main)


def test_a_task_of_ours_reading_the_same_fd_is_a_clear_error(backend: pa.Backend, pipes: Pipes) -> None:
    r, _ = pipes.new()

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("k", r)
        backend.pause_job()
        return 1

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.lowlevel.wait_readable, r)  # the application's own reader
            await trio.sleep(0.01)
            with pytest.raises(pa.AsyncError, match=f"cannot wait on wait fd {r}"):
                await ptrio.run_job(job, backend=backend)
            nursery.cancel_scope.cancel()

    trio.run(main)


def test_bad_wait_fd_is_async_error(backend: pa.Backend) -> None:
    r, w = os.pipe()
    os.close(r)
    os.close(w)

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("gone", r)
        backend.pause_job()
        return 1

    async def main() -> None:
        with pytest.raises(pa.AsyncError, match="cannot wait on wait fd"):
            await ptrio.run_job(job, backend=backend)

    trio.run(main)


def test_jobs_run_on_the_run_thread(backend: pa.Backend) -> None:
    seen: List[int] = []

    def job(arg: Any) -> int:
        seen.append(threading.get_ident())
        backend.pause_job()
        seen.append(threading.get_ident())
        return 1

    assert trio.run(lambda: ptrio.run_job(job, backend=backend)) == 1
    if backend.name == "openssl":
        assert seen == [threading.get_ident()] * 2


def test_bad_arguments_are_refused(backend: pa.Backend) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="func must be a callable"):
            await ptrio.run_job("nope")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            await ptrio.run_job(lambda a: 1, backend=backend, timeout=-1)
        with pytest.raises(TypeError, match="backend"):
            await ptrio.run_job(lambda a: 1, backend=3)  # type: ignore[arg-type]

    trio.run(main)
