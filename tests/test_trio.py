"""pyossl_async.trio.run_job alone: cancel scopes, timeouts, an fd the application reads too.

What every async driver shares is in ``test_async_drivers.py``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, List

import pytest

import pyossl_async as pa

from ._drivers import Pipes, ctx_of, drain, never_resumed, pipes_fixture, readable  # noqa: F401

trio = pytest.importorskip("trio")
from pyossl_async import trio as ptrio  # noqa: E402  (needs trio)


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


def test_bad_arguments_are_refused(backend: pa.Backend) -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="func must be a callable"):
            await ptrio.run_job("nope")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="timeout"):
            await ptrio.run_job(lambda a: 1, backend=backend, timeout=-1)
        with pytest.raises(TypeError, match="backend"):
            await ptrio.run_job(lambda a: 1, backend=3)  # type: ignore[arg-type]

    trio.run(main)
