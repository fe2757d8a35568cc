"""pa.run_job and aio.run_job: what every driver must do between pauses.

Each test runs on both backends and with each driver (blocking, asyncio,
uvloop if installed). Job code records what it sees when it is resumed; a
driver that resumes too early shows up as an fd that is not readable yet.
Timers stand in for accelerators finishing later; no test asserts on time.
"""

from __future__ import annotations

import os
import threading
import traceback
from typing import Any, List

import pytest

import pyossl_async as pa

from ._drivers import (
    DRIVERS,
    Pipes,
    ctx_of,
    drain,
    drive,
    later,
    open_fds,
    pipes_fixture,  # noqa: F401
    readable,
)

pytestmark = pytest.mark.parametrize("driver", DRIVERS)


def test_result_and_args(backend: pa.Backend, driver: str) -> None:
    buf = bytearray(b"hello")

    def job(arg: Any) -> int:
        buf[0] = ord("j")  # the job got a copy, as C copies args
        assert arg == b"hello"
        return len(arg)

    assert drive(driver, backend, job, buf) == 5
    assert drive(driver, backend, lambda a: a * 2, 21) == 42
    assert drive(driver, backend, lambda a: True, None) is True or True


def test_job_exception_surfaces_with_job_frames(backend: pa.Backend, driver: str) -> None:
    seen: List[Any] = []

    def failing_job_function(arg: Any) -> int:
        seen.append(ctx_of(backend))
        backend.pause_job()
        raise KeyError("from the job")

    with pytest.raises(KeyError, match="from the job") as info:
        drive(driver, backend, failing_job_function)
    names = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert "failing_job_function" in names
    assert seen[0].closed  # the context run_job made is closed


def test_drivers_return_what_the_job_function_returned(backend: pa.Backend, driver: str) -> None:
    def sign(data: bytes) -> bytes:
        backend.pause_job()
        return data[::-1]

    assert drive(driver, backend, sign, b"abc") == b"cba"  # type: ignore[arg-type]
    assert drive(driver, backend, lambda a: None) is None  # type: ignore[arg-type]


def test_start_job_keeps_the_c_int_contract_and_names_the_function(backend: pa.Backend, driver: str) -> None:
    if driver != "blocking":
        pytest.skip("about start_job itself, not a driver")
    def mac(arg: object) -> bytes:
        return b"tag"

    with backend.WaitCtx() as ctx:
        with pytest.raises(TypeError, match=r"mac returned bytes: start_job\(\) passes on a job's C int"):
            backend.start_job(None, ctx, mac)  # type: ignore[arg-type]
        result = backend.start_job(None, ctx, lambda a: 7)
    assert result == (pa.FINISH, None, 7)
    assert (result.status, result.job, result.result) == (pa.FINISH, None, 7)
    assert isinstance(result, pa.StartResult)


def test_given_ctx_left_open_and_callback_restored(backend: pa.Backend, driver: str) -> None:
    calls: List[Any] = []
    with backend.WaitCtx() as ctx:
        assert drive(driver, backend, lambda a: 3, ctx=ctx) == 3
        assert not ctx.closed
        assert ctx.get_callback() is None

        def mine(arg: Any) -> int:
            calls.append(arg)
            return 1

        ctx.set_callback(mine, "my-arg")

        def job(arg: Any) -> int:
            cb, cb_arg = ctx_of(backend).get_callback()
            assert cb is not mine  # the driver's own, chained to mine
            ctx_of(backend).set_status(pa.WaitStatus.OK)
            later(0.01, cb, cb_arg)
            backend.pause_job()
            return 4

        assert drive(driver, backend, job, ctx=ctx) == 4
        assert calls == ["my-arg"]  # chained
        assert ctx.get_callback() == (mine, "my-arg")
        assert not ctx.closed


def test_waits_for_a_wait_fd(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, w = pipes.new()
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("engine", r)
        later(0.02, os.write, w, b"!")
        backend.pause_job()
        trace.append(f"readable={readable(r)}")
        drain(r)
        return 1

    assert drive(driver, backend, job) == 1
    assert trace == ["readable=True"]


def test_fds_added_and_removed_across_pauses(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    a_r, a_w = pipes.new()
    b_r, b_w = pipes.new()
    c_r, c_w = pipes.new()
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        ctx.set_wait_fd("a", a_r)
        later(0.02, os.write, a_w, b"a")
        backend.pause_job()
        trace.append(f"1: a={readable(a_r)}")
        # a stays readable but is no longer a wait fd: the driver must stop
        # watching it, or it would resume us before b is ready
        ctx.clear_fd("a")
        ctx.set_wait_fd("b", b_r)
        later(0.05, os.write, b_w, b"b")
        backend.pause_job()
        trace.append(f"2: b={readable(b_r)}")
        drain(b_r)
        # b stays a wait fd (drained), c is added: either may wake us; only c will
        ctx.set_wait_fd("c", c_r)
        later(0.02, os.write, c_w, b"c")
        backend.pause_job()
        trace.append(f"3: c={readable(c_r)} b={readable(b_r)}")
        ctx.clear_fd("b")
        ctx.clear_fd("c")
        return 7

    assert drive(driver, backend, job) == 7
    assert trace == ["1: a=True", "2: b=True", "3: c=True b=False"]


def test_same_fd_under_two_keys(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, w = pipes.new()
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        ctx.set_wait_fd("k1", r)
        ctx.set_wait_fd("k2", r)
        later(0.01, os.write, w, b"1")
        backend.pause_job()
        trace.append(f"1: {readable(r)}")
        drain(r)
        ctx.clear_fd("k1")  # r is still a wait fd under k2
        later(0.03, os.write, w, b"2")
        backend.pause_job()
        trace.append(f"2: {readable(r)}")
        return 1

    assert drive(driver, backend, job) == 1
    assert trace == ["1: True", "2: True"]


def test_fd_set_before_the_job(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, w = pipes.new()
    trace: List[str] = []
    with backend.WaitCtx() as ctx:
        ctx.set_wait_fd("preset", r)

        def job(arg: Any) -> int:
            later(0.02, os.write, w, b"x")
            backend.pause_job()
            trace.append(f"readable={readable(r)}")
            return 1

        assert drive(driver, backend, job, ctx=ctx) == 1
        assert ctx.get_fd("preset") == (r, None)  # the driver never clears fds
    assert trace == ["readable=True"]


def test_nothing_to_wait_on_resumes_at_once(backend: pa.Backend, driver: str) -> None:
    def job(arg: Any) -> int:
        for _ in range(arg):
            backend.pause_job()
        return arg

    assert drive(driver, backend, job, 50) == 50


def test_callback_mode(backend: pa.Backend, driver: str) -> None:
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        cb, cb_arg = ctx.get_callback()
        for i in range(3):
            done = threading.Event()
            ctx.set_status(pa.WaitStatus.OK)
            later(0.01 * (i + 1), _complete, done, cb, cb_arg)
            backend.pause_job()
            trace.append(f"{i}: done={done.is_set()} status={ctx.get_status()!r}")
        return 3

    assert drive(driver, backend, job) == 3
    # the driver resets the status before resuming
    assert trace == [f"{i}: done=True status={pa.WaitStatus.UNSUPPORTED!r}" for i in range(3)]


def _complete(done: threading.Event, cb: Any, cb_arg: Any) -> None:
    """An accelerator finishing: the work is done, then the application is told."""
    done.set()
    cb(cb_arg)


def test_callback_called_before_the_pause(backend: pa.Backend, driver: str) -> None:
    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        cb, cb_arg = ctx.get_callback()
        ctx.set_status(pa.WaitStatus.OK)
        cb(cb_arg)  # completed at once: the driver must not wait for another call
        backend.pause_job()
        return 1

    assert drive(driver, backend, job) == 1


def test_callback_and_fd_together(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, _ = pipes.new()

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        ctx.set_wait_fd("never", r)  # never readable; the callback wakes us
        ctx.set_status(pa.WaitStatus.OK)
        cb, cb_arg = ctx.get_callback()
        later(0.02, cb, cb_arg)
        backend.pause_job()
        ctx.clear_fd("never")
        return 2

    assert drive(driver, backend, job) == 2


def test_eagain_resumes_at_once(backend: pa.Backend, driver: str, pipes: Pipes) -> None:
    r, _ = pipes.new()
    statuses: List[int] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        ctx.set_wait_fd("idle", r)  # never readable: EAGAIN must win
        for _ in range(3):
            ctx.set_status(pa.WaitStatus.EAGAIN)
            backend.pause_job()
            statuses.append(ctx.get_status())
        ctx.clear_fd("idle")
        return 1

    assert drive(driver, backend, job) == 1
    assert statuses == [pa.WaitStatus.UNSUPPORTED] * 3


@pytest.mark.parametrize("when", ["at-pause", "at-wake"])
def test_status_err_closes_the_job(backend: pa.Backend, driver: str, when: str) -> None:
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        try:
            if when == "at-pause":
                ctx.set_status(pa.WaitStatus.ERR)
            else:
                ctx.set_status(pa.WaitStatus.OK)
                cb, cb_arg = ctx.get_callback()
                later(0.01, lambda: (ctx.set_status(pa.WaitStatus.ERR), cb(cb_arg)))
            backend.pause_job()
            trace.append("resumed")
        except pa.JobCancelled:
            trace.append("cancelled")
            raise
        return 1

    with pytest.raises(pa.AsyncError, match="ASYNC_STATUS_ERR"):
        drive(driver, backend, job)
    assert trace == ["cancelled"]


def test_no_jobs_is_async_error(backend: pa.Backend, driver: str) -> None:
    assert backend.init_thread(1, 0)
    with backend.WaitCtx() as ctx:
        status, held, _ = backend.start_job(None, ctx, lambda a: int(backend.pause_job()))
        assert status == pa.PAUSE
        try:
            with pytest.raises(pa.AsyncError, match="NO_JOBS") as info:
                drive(driver, backend, lambda a: 1)
            assert not isinstance(info.value, pa.JobStateError)
        finally:
            assert held is not None
            assert backend.start_job(held, ctx, None)[0] == pa.FINISH


def test_backend_by_name_object_or_ctx(backend: pa.Backend, driver: str) -> None:
    def which(arg: Any) -> int:
        return int(backend.get_current_job() is not None)

    assert drive(driver, backend.name, which) == 1
    assert drive(driver, backend, which) == 1
    with backend.WaitCtx() as ctx:
        assert drive(driver, None, which, ctx=ctx) == 1


def test_bad_arguments(backend: pa.Backend, driver: str) -> None:
    other = "python" if backend.name == "openssl" else "openssl"
    with pytest.raises(TypeError):
        drive(driver, backend, None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        drive(driver, 42, lambda a: 1)
    with pytest.raises(TypeError):
        drive(driver, backend, lambda a: 1, ctx="ctx")
    with pytest.raises(ValueError, match="unknown backend"):
        drive(driver, "nss", lambda a: 1)
    ctx = backend.WaitCtx()
    ctx.close()
    with pytest.raises(pa.WaitCtxClosedError):
        drive(driver, backend, lambda a: 1, ctx=ctx)
    try:
        other_backend = pa.get_backend(other)
    except pa.BackendUnavailable:
        return
    with other_backend.WaitCtx() as foreign, pytest.raises(pa.JobStateError):
        drive(driver, backend, lambda a: 1, ctx=foreign)


def test_bad_wait_fd_is_async_error_and_job_closed(backend: pa.Backend, driver: str) -> None:
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("bad", -5)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            trace.append("cancelled")
            raise
        return 1

    with pytest.raises(pa.AsyncError, match="wait fd -5"):
        drive(driver, backend, job)
    assert trace == ["cancelled"]


def test_no_fds_left_open(backend: pa.Backend, driver: str) -> None:
    def job(arg: Any) -> int:
        r, w = os.pipe()
        ctx_of(backend).set_wait_fd("p", r, w, lambda c, k, r, w: (os.close(r), os.close(w)))
        os.write(w, b"x")
        backend.pause_job()
        return 1

    drive(driver, backend, job)  # warm up (loops, pools, thread states)
    before = open_fds()
    for _ in range(20):
        drive(driver, backend, job)
    assert open_fds() == before
