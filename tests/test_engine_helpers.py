"""pa.await_future and pa.wait_for_fd: engine code that follows the man page's protocol.

Most tests drive the job by hand (start_job, look at the context, resume), the
way a C application would, so what the helpers do at each step is visible.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import Any, List

import pytest

import pyossl_async as pa

from ._drivers import (
    DRIVERS,
    Pipes,
    drive,
    later,
    open_fds,
    pipes_fixture,  # noqa: F401
    readable,
)


@pytest.fixture
def pool() -> Any:
    executor = concurrent.futures.ThreadPoolExecutor(2)
    yield executor
    executor.shutdown(wait=True)


# -- await_future -------------------------------------------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("notify", ["auto", "fd"])
def test_await_future_under_run_job(backend: pa.Backend, driver: str, notify: str, pool: Any) -> None:
    def job(arg: Any) -> int:
        total = 0
        for i in range(3):
            total += pa.await_future(pool.submit(lambda x: x * x, arg + i), notify=notify)
        return total

    assert drive(driver, backend, job, 3) == 9 + 16 + 25


@pytest.mark.parametrize("driver", DRIVERS)
def test_await_future_raises_the_futures_exception(backend: pa.Backend, driver: str, pool: Any) -> None:
    def boom() -> int:
        raise ArithmeticError("accelerator failed")

    def job(arg: Any) -> int:
        return pa.await_future(pool.submit(boom))

    with pytest.raises(ArithmeticError, match="accelerator failed"):
        drive(driver, backend, job)


def test_fd_mode_protocol_step_by_step(backend: pa.Backend) -> None:
    """set fd, pause, (completion makes it readable), resume, drain, clear."""
    future: concurrent.futures.Future[int] = concurrent.futures.Future()

    def job(arg: Any) -> int:
        return pa.await_future(future)

    with backend.WaitCtx() as ctx:
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE and handle is not None
        fds = ctx.get_all_fds()
        assert len(fds) == 1 and ctx.get_changed_fds() == (fds, [])
        assert not readable(fds[0])
        assert ctx.get_status() == pa.WaitStatus.UNSUPPORTED  # no callback set: fd mode
        # a driver that resumes without waiting: the job just pauses again
        status, handle, _ = backend.start_job(handle, ctx, None)
        assert status == pa.PAUSE and handle is not None
        assert ctx.get_all_fds() == fds and ctx.get_changed_fds() == ([], [])
        future.set_result(42)
        assert readable(fds[0])
        status, handle, ret = backend.start_job(handle, ctx, None)
        assert (status, handle, ret) == (pa.FINISH, None, 42)
        assert ctx.get_all_fds() == []  # cleared: the helper cleaned up


def test_callback_mode_protocol_step_by_step(backend: pa.Backend) -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    calls: List[Any] = []

    def job(arg: Any) -> int:
        return pa.await_future(future)

    with backend.WaitCtx() as ctx:
        ctx.set_callback(lambda arg: calls.append(arg) or 1, "app-arg")
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE and handle is not None
        assert ctx.get_status() == pa.WaitStatus.OK  # submitted, a callback will come
        assert ctx.get_all_fds() == [] and calls == []
        future.set_result(7)  # the accelerator completes: the callback is called
        assert calls == ["app-arg"]
        status, handle, ret = backend.start_job(handle, ctx, None)
        assert (status, ret) == (pa.FINISH, 7)
        assert ctx.get_status() == pa.WaitStatus.UNSUPPORTED  # nothing pending any more


@pytest.mark.parametrize("notify", ["auto", "fd"])
def test_closing_the_job_cancels_the_future_and_frees_the_fd(backend: pa.Backend, notify: str) -> None:
    future: concurrent.futures.Future[int] = concurrent.futures.Future()
    trace: List[str] = []
    calls: List[Any] = []

    def job(arg: Any) -> int:
        try:
            return pa.await_future(future, notify=notify)
        except pa.JobCancelled:
            trace.append("cancelled")
            raise

    before = open_fds()
    with backend.WaitCtx() as ctx:
        ctx.set_callback(lambda arg: calls.append(arg) or 1)
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE and handle is not None
        handle.close()
        assert trace == ["cancelled"]
        assert future.cancelled()
        assert ctx.get_all_fds() == []
    assert open_fds() == before
    assert calls == []  # the cancellation's own done-callback did not call the app


def test_late_completion_after_close_is_ignored(backend: pa.Backend, pool: Any) -> None:
    started = threading.Event()
    release = threading.Event()

    def slow() -> int:
        started.set()
        release.wait(30)
        return 1

    calls: List[Any] = []
    with backend.WaitCtx() as ctx:
        ctx.set_callback(lambda arg: calls.append(arg) or 1)
        fut = pool.submit(slow)
        started.wait(30)
        status, handle, _ = backend.start_job(None, ctx, lambda a: pa.await_future(fut))
        assert status == pa.PAUSE and handle is not None
        handle.close()  # running already: cannot be cancelled
        release.set()
        assert fut.result(30) == 1
    assert calls == []


def test_await_future_with_pausing_blocked_waits_in_place(backend: pa.Backend, pool: Any) -> None:
    def job(arg: Any) -> int:
        with backend.pause_blocked():
            return pa.await_future(pool.submit(lambda: 11))

    for with_callback in (False, True):
        with backend.WaitCtx() as ctx:
            if with_callback:
                ctx.set_callback(lambda arg: 1)
            assert backend.start_job(None, ctx, job) == (pa.FINISH, None, 11)


def test_await_future_outside_a_job(pool: Any) -> None:
    assert pa.await_future(pool.submit(lambda: 5)) == 5


def test_await_future_finds_a_job_of_any_backend(backend: pa.Backend, pool: Any) -> None:
    """The helpers do not depend on which backend is the default."""
    def job(arg: Any) -> int:
        return pa.await_future(pool.submit(lambda: 3), notify="fd")

    assert pa.run_job(job, backend=backend, timeout=60) == 3


def test_await_future_bad_arguments(backend: pa.Backend) -> None:
    fut: concurrent.futures.Future[int] = concurrent.futures.Future()
    with pytest.raises(ValueError):
        pa.await_future(fut, notify="smoke-signals")
    with pytest.raises(TypeError):
        pa.await_future(42)  # type: ignore[arg-type]
    with backend.WaitCtx() as ctx:
        with pytest.raises(pa.AsyncError, match="no callback"):
            backend.start_job(None, ctx, lambda a: pa.await_future(fut, notify="callback"))


# -- wait_for_fd --------------------------------------------------------------------------


def test_wait_for_fd_step_by_step(backend: pa.Backend, pipes: Pipes) -> None:
    r, w = pipes.new()
    results: List[bool] = []

    def job(arg: Any) -> int:
        results.append(pa.wait_for_fd(r, key="mine"))
        return 1

    with backend.WaitCtx() as ctx:
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE and handle is not None
        assert ctx.get_fd("mine") == (r, None)
        status, handle, _ = backend.start_job(handle, ctx, None)  # early: pauses again
        assert status == pa.PAUSE and handle is not None
        os.write(w, b"x")
        assert backend.start_job(handle, ctx, None) == (pa.FINISH, None, 1)
        assert ctx.get_fd("mine") is None
    assert results == [True]
    assert readable(r)  # draining is the caller's


def test_wait_for_fd_ready_already_does_not_pause(backend: pa.Backend, pipes: Pipes) -> None:
    r, w = pipes.new()
    os.write(w, b"x")
    with backend.WaitCtx() as ctx:
        assert backend.start_job(None, ctx, lambda a: int(pa.wait_for_fd(r))) == (pa.FINISH, None, 0)


def test_wait_for_fd_with_pausing_blocked(backend: pa.Backend, pipes: Pipes) -> None:
    r, w = pipes.new()

    def job(arg: Any) -> int:
        later(0.02, os.write, w, b"x")
        with backend.pause_blocked():
            return int(pa.wait_for_fd(r))

    with backend.WaitCtx() as ctx:
        assert backend.start_job(None, ctx, job) == (pa.FINISH, None, 0)
        assert ctx.get_all_fds() == []


@pytest.mark.parametrize("driver", DRIVERS)
def test_wait_for_fd_under_run_job(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, w = pipes.new()

    class FileLike:
        def fileno(self) -> int:
            return r

    def job(arg: Any) -> int:
        later(0.02, os.write, w, b"x")
        return int(pa.wait_for_fd(FileLike()))

    assert drive(driver, backend, job) == 1


def test_wait_for_fd_outside_a_job(pipes: Pipes) -> None:
    r, w = pipes.new()
    later(0.02, os.write, w, b"x")
    assert pa.wait_for_fd(r) is False
    assert readable(r)


def test_wait_for_fd_bad_arguments() -> None:
    with pytest.raises(TypeError):
        pa.wait_for_fd("3")
    with pytest.raises(TypeError):
        pa.wait_for_fd(True)
    with pytest.raises(ValueError):
        pa.wait_for_fd(-1)
