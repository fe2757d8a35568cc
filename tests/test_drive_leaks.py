"""10,000 driven jobs leave nothing behind: fds, loop readers, callbacks, paused jobs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import threading
from typing import Any, Dict, List

import pytest

import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.drive._aio import _states

from ._drivers import DRIVERS, ctx_of, loop_readers, new_loop, open_fds

N = 10_000
BATCH = 500  # aio: jobs in flight at once


def _tables(backend: pa.Backend) -> Dict[str, int]:
    if backend.name != "openssl":
        return {}
    from pyossl_async.backends import _openssl_waitctx as w

    return {"entries": len(w._tables.entries), "callbacks": len(w._tables.callbacks)}


def _threads() -> int:
    """Threads other than the python backend's pooled job workers (a pool may grow
    to the most jobs ever in flight at once; that is not a leak)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("pyossl-async-worker"))


def _job_kinds(backend: pa.Backend, pool: concurrent.futures.Executor) -> List[Any]:
    def via_callback(i: int) -> int:
        return pa.await_future(pool.submit(int, i))

    def via_fd(i: int) -> int:
        return pa.await_future(pool.submit(int, i), notify="fd")

    def own_pipe(i: int) -> int:
        r, w = os.pipe()
        ctx_of(backend).set_wait_fd("p", r, w, lambda c, k, r, w: (os.close(r), os.close(w)))
        os.write(w, b"x")
        backend.pause_job()
        return i

    def no_pause(i: int) -> int:
        return i

    return [via_callback, via_fd, own_pipe, no_pause]


@pytest.mark.slow
@pytest.mark.parametrize("driver", DRIVERS)
def test_ten_thousand_jobs_leave_nothing_behind(backend: pa.Backend, driver: str) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(4)
    kinds = _job_kinds(backend, pool)
    try:
        barrier = threading.Barrier(4)
        for f in [pool.submit(barrier.wait, 30) for _ in range(4)]:
            f.result()  # all four pool threads exist before counting threads
        if driver == "blocking":
            for i in range(8):  # warm up: thread states, stacks, workers
                pa.run_job(kinds[i % 4], i, backend=backend, timeout=60)
            gc.collect()
            fds, tables, threads = open_fds(), _tables(backend), _threads()
            for i in range(N):
                assert pa.run_job(kinds[i % 4], i, backend=backend, timeout=60) == i
        elif driver == "trio":
            from pyossl_async import trio as trio_driver

            trio = pytest.importorskip("trio")

            async def trio_batches(starts: List[int]) -> None:
                async def one(i: int, results: List[int]) -> None:
                    results.append(await trio_driver.run_job(kinds[i % 4], i, backend=backend))

                for start in starts:
                    results: List[int] = []
                    async with trio.open_nursery() as nursery:
                        for i in range(start, start + BATCH):
                            nursery.start_soon(one, i, results)
                    assert sorted(results) == list(range(start, start + BATCH))

            trio.run(trio_batches, [0])  # warm up
            gc.collect()
            fds, tables, threads = open_fds(), _tables(backend), _threads()
            trio.run(trio_batches, list(range(0, N, BATCH)))
            gc.collect()
            assert open_fds() == fds
        else:
            loop = new_loop(driver)
            try:
                async def batch(start: int) -> None:
                    results = await asyncio.gather(
                        *(aio.run_job(kinds[i % 4], i, backend=backend) for i in range(start, start + BATCH))
                    )
                    assert results == list(range(start, start + BATCH))

                loop.run_until_complete(batch(0))  # warm up
                gc.collect()
                fds, tables, threads = open_fds(), _tables(backend), _threads()
                readers = loop_readers(loop)
                for start in range(0, N, BATCH):
                    loop.run_until_complete(asyncio.wait_for(batch(start), 120))
                assert loop_readers(loop) == readers
                assert loop not in _states
                gc.collect()
                assert open_fds() == fds
            finally:
                loop.close()
        gc.collect()
        if driver == "blocking":
            assert open_fds() == fds
        assert _tables(backend) == tables
        assert _threads() == threads
        assert not _states
    finally:
        pool.shutdown()
