"""Starting, pausing, resuming and finishing jobs: the everyday paths, on both backends."""

from __future__ import annotations

import contextvars
import sys
import traceback
from typing import Any

import pytest

import pyossl_async as pa


def test_job_that_returns_at_once(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        assert backend.start_job(None, ctx, lambda a: 41 + a, 1) == (pa.FINISH, None, 42)


def test_job_without_ctx_that_never_pauses(backend: pa.Backend) -> None:
    assert backend.start_job(None, None, lambda a: 7, None) == (pa.FINISH, None, 7)


def test_pause_and_resume(backend: pa.Backend) -> None:
    seen: list[str] = []

    def job(arg: Any) -> int:
        seen.append("start")
        assert backend.pause_job() is True
        seen.append("resumed")
        backend.pause_job()
        seen.append("end")
        return 2

    with backend.WaitCtx() as ctx:
        status, handle, ret = backend.start_job(None, ctx, job)
        assert (status, ret) == (pa.PAUSE, None) and handle is not None
        assert seen == ["start"] and handle.state == "paused"
        status2, handle2, _ = backend.start_job(handle, None, None)
        assert status2 == pa.PAUSE and handle2 is handle and seen == ["start", "resumed"]
        assert backend.start_job(handle, ctx, job) == (pa.FINISH, None, 2)
        assert handle.state == "finished" and seen[-1] == "end"


def test_resume_ignores_ctx_func_args(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        backend.pause_job()
        return len(arg)

    with backend.WaitCtx() as ctx, backend.WaitCtx() as other:
        _, handle, _ = backend.start_job(None, ctx, job, b"abc")
        result = backend.start_job(handle, other, lambda a: 99, b"zzzzzz")
        assert result == (pa.FINISH, None, 3)
        assert handle.wait_ctx is ctx


def test_args_bytes_like_are_copied(backend: pa.Backend) -> None:
    buf = bytearray(b"hello")
    got: list[Any] = []

    def job(arg: Any) -> int:
        got.append(arg)
        backend.pause_job()
        got.append(arg)
        return 0

    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, job, buf)
        buf[:] = b"XXXXX"
        backend.start_job(handle, None, None)
    assert got == [b"hello", b"hello"] and type(got[0]) is bytes


@pytest.mark.parametrize("arg", [memoryview(b"mv"), bytearray(b"ba"), b""])
def test_args_bytes_like_kinds(backend: pa.Backend, arg: Any) -> None:
    out: list[Any] = []
    backend.start_job(None, None, lambda a: out.append(a) or 0, arg)
    assert out == [bytes(arg)] and type(out[0]) is bytes


def test_other_args_pass_unchanged(backend: pa.Backend) -> None:
    payload = {"k": [1, 2]}
    out: list[Any] = []
    backend.start_job(None, None, lambda a: out.append(a) or 0, payload)
    assert out[0] is payload


@pytest.mark.parametrize("value", [True, False, 0, -1, 2**31 - 1, -(2**31)])
def test_int_results(backend: pa.Backend, value: int) -> None:
    assert backend.start_job(None, None, lambda a: value) == (pa.FINISH, None, int(value))


@pytest.mark.parametrize(
    "value, exc",
    [(2**31, OverflowError), (-(2**31) - 1, OverflowError), (None, TypeError), ("1", TypeError), (1.0, TypeError)],
)
def test_bad_results_raise_after_the_job_finished(backend: pa.Backend, value: Any, exc: type) -> None:
    def job(arg: Any) -> Any:
        backend.pause_job()
        return value

    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, job)
        with pytest.raises(exc):
            backend.start_job(handle, None, None)
        assert handle.state == "finished"
        # the job went back to the pool: more jobs can start
        assert backend.start_job(None, ctx, lambda a: 5) == (pa.FINISH, None, 5)


def test_exception_from_job_has_job_frames(backend: pa.Backend) -> None:
    def inner_job_function(arg: Any) -> int:
        backend.pause_job()
        raise KeyError("from the job")

    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, inner_job_function)
        with pytest.raises(KeyError, match="from the job") as info:
            backend.start_job(handle, None, None)
        names = [f.name for f in traceback.extract_tb(info.value.__traceback__)]
        assert "inner_job_function" in names
        assert handle.state == "finished"


def test_exception_at_first_start(backend: pa.Backend) -> None:
    def boom(arg: Any) -> int:
        raise ValueError("early")

    with pytest.raises(ValueError, match="early"):
        backend.start_job(None, None, boom)


def test_base_exceptions_propagate(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        backend.start_job(None, None, job)


def test_get_current_job_identity(backend: pa.Backend) -> None:
    inside: list[Any] = []

    def job(arg: Any) -> int:
        inside.append(backend.get_current_job())
        backend.pause_job()
        inside.append(backend.get_current_job())
        return 1

    assert backend.get_current_job() is None
    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, job)
        assert inside[0] is handle
        assert handle.state == "paused"
        backend.start_job(handle, None, None)
        assert inside[1] is handle
    assert backend.get_current_job() is None


def test_job_state_inside_is_running(backend: pa.Backend) -> None:
    states: list[str] = []

    def job(arg: Any) -> int:
        states.append(backend.get_current_job().state)  # type: ignore[union-attr]
        return 0

    backend.start_job(None, None, job)
    assert states == ["running"]


def test_wait_ctx_of_job(backend: pa.Backend) -> None:
    found: list[Any] = []

    def job(arg: Any) -> int:
        me = backend.get_current_job()
        found.append(backend.get_wait_ctx(me))  # type: ignore[arg-type]
        backend.pause_job()
        return 0

    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, job)
        assert found == [ctx] and backend.get_wait_ctx(handle) is ctx and handle.wait_ctx is ctx
        assert handle.backend is backend
        backend.start_job(handle, None, None)
        assert backend.get_wait_ctx(handle) is None  # C: NULL once finished
        assert handle.wait_ctx is ctx


def test_pause_outside_a_job_returns_true(backend: pa.Backend) -> None:
    assert backend.pause_job() is True


var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


def test_contextvars_are_a_copy_of_the_callers(backend: pa.Backend) -> None:
    seen: list[str] = []

    def job(arg: Any) -> int:
        seen.append(var.get())
        var.set("set in job")
        backend.pause_job()
        seen.append(var.get())
        return 0

    token = var.set("caller")
    try:
        with backend.WaitCtx() as ctx:
            _, handle, _ = backend.start_job(None, ctx, job)
            assert var.get() == "caller"
            var.set("changed by caller")
            backend.start_job(handle, None, None)
        assert seen == ["caller", "set in job"]
        assert var.get() == "changed by caller"
    finally:
        var.reset(token)


def test_tracer_and_profiler_are_carried_in(backend: pa.Backend) -> None:
    events: list[tuple[str, str]] = []

    def job_function_traced(arg: Any) -> int:
        backend.pause_job()
        return helper_after_pause()

    def helper_after_pause() -> int:
        return 3

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_name in ("job_function_traced", "helper_after_pause"):
            events.append((event, frame.f_code.co_name))
        return None

    def profiler(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_name == "helper_after_pause":
            events.append(("profile", frame.f_code.co_name))

    old_trace, old_profile = sys.gettrace(), sys.getprofile()
    with backend.WaitCtx() as ctx:
        sys.settrace(tracer)
        sys.setprofile(profiler)
        try:
            _, handle, _ = backend.start_job(None, ctx, job_function_traced)
            result = backend.start_job(handle, None, None)
        finally:
            sys.settrace(old_trace)
            sys.setprofile(old_profile)
    assert result == (pa.FINISH, None, 3)
    assert ("call", "job_function_traced") in events
    assert ("call", "helper_after_pause") in events
    assert ("profile", "helper_after_pause") in events


def test_no_tracer_leaks_into_later_jobs(backend: pa.Backend) -> None:
    def tracer(frame: Any, event: str, arg: Any) -> Any:
        return None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        backend.start_job(None, None, lambda a: 0)
    finally:
        sys.settrace(old)
    seen: list[Any] = []
    backend.start_job(None, None, lambda a: seen.append(sys.gettrace()) or 0)
    assert seen == [old]


def test_exception_state_is_preserved_across_a_pause(backend: pa.Backend) -> None:
    def job(n: int) -> int:
        try:
            raise LookupError(n)
        except LookupError:
            for _ in range(3):
                backend.pause_job()
                assert sys.exc_info()[1].args == (n,)  # type: ignore[union-attr]
        assert sys.exc_info() == (None, None, None)
        return n

    with backend.WaitCtx() as ctx:
        handles = [backend.start_job(None, ctx, job, n)[1] for n in range(5)]
        try:
            raise TypeError("caller's own")
        except TypeError:
            for _ in range(2):
                for h in handles:
                    backend.start_job(h, None, None)
                assert isinstance(sys.exc_info()[1], TypeError)
        results = [backend.start_job(h, None, None) for h in handles]
    assert results == [(pa.FINISH, None, n) for n in range(5)]


@pytest.mark.skipif(
    sys.version_info >= (3, 13),
    reason="CPython 3.13 keys threading.local data by a per-thread-state object only C can reach; "
    "values stay with a reused thread state (README, Security and limits)",
)
def test_threading_local_does_not_leak_between_jobs(backend: pa.Backend) -> None:
    import threading

    if getattr(backend, "engine", None) == "greenlet":
        pytest.skip("python backend on greenlets: jobs share their caller's thread-locals (an allowed difference)")
    local = threading.local()
    seen: list[Any] = []

    def first(arg: Any) -> int:
        local.value = "from first job"
        return 0

    def second(arg: Any) -> int:
        seen.append(getattr(local, "value", None))
        return 0

    for _ in range(3):
        backend.start_job(None, None, first)
        backend.start_job(None, None, second)
    assert seen == [None, None, None]


def test_greenlet_jobs_share_their_callers_thread_locals() -> None:
    """The listed difference of the python backend's greenlet engine: a job runs on its
    caller's thread, so it sees and sets that thread's ``threading.local`` values
    (contextvars are per job: use those for per-job state)."""
    import contextvars
    import threading

    from .conftest import python_backend_with

    with python_backend_with("greenlet") as backend:
        local = threading.local()
        local.value = "caller"
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
        seen: list[Any] = []

        def job(arg: Any) -> int:
            seen.append((getattr(local, "value", None), var.get()))
            local.value = "job"
            var.set("job")
            return 0

        assert backend.start_job(None, None, job) == (pa.FINISH, None, 0)
        assert seen == [("caller", "unset")]
        assert local.value == "job" and var.get() == "unset"
        assert backend.info()["threading_local_isolation"] is False
