"""Nothing kept alive: a job that has ended lets go of its context, function, arguments
and result, and the library's objects form no cycle with a job or a context.

Every test runs with the collector off: what is not freed the moment its last
reference goes is held by a reference cycle (or by the library), and an engine's
fds (dasync's pipes, the test engine's) would stay open until some later
collection. The jobs paused inside C are the openssl backend's own (the pause
engine); the rest runs on both backends.
"""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any, Callable, Iterator, List

import pytest

import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.testing import EngineUnavailable, PauseEngine

from ._drivers import DRIVERS, drive
from .conftest import REQUIRED, load_backend


@pytest.fixture(autouse=True)
def no_collector() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.fixture
def engine() -> PauseEngine:
    try:
        return PauseEngine.load(load_backend("openssl"))
    except EngineUnavailable as exc:
        if "openssl" in REQUIRED:
            pytest.fail(f"the pause engine is required: {exc}")
        pytest.skip(f"the pause engine is unavailable: {exc}")


class Payload:
    """Stands for a user's object a job refers to (weakly referenceable)."""


def _paused_in_python(backend: pa.Backend) -> Callable[[Any], Any]:
    def job(arg: Any) -> int:
        backend.pause_job()
        return 1

    return job


def test_a_finished_job_lets_go_of_its_context(backend: pa.Backend) -> None:
    ctx = backend.WaitCtx()
    gone = weakref.ref(ctx)
    _, handle, _ = backend.start_job(None, ctx, _paused_in_python(backend))
    assert handle is not None
    status, _, _ = backend.start_job(handle, ctx, None)
    assert status == pa.FINISH
    assert handle.wait_ctx is ctx  # reported while someone holds it
    ctx.close()
    del ctx
    assert gone() is None, "a finished job's handle keeps its WaitCtx alive"
    assert handle.wait_ctx is None and handle.state == "finished"


@pytest.mark.parametrize("ended", ["finished", "closed"])
def test_dropping_job_and_context_frees_both_at_once(backend: pa.Backend, ended: str) -> None:
    ctx = backend.WaitCtx()
    refs = [weakref.ref(ctx)]
    _, handle, _ = backend.start_job(None, ctx, _paused_in_python(backend))
    assert handle is not None
    refs.append(weakref.ref(handle))
    refs.append(weakref.ref(handle._record))  # type: ignore[attr-defined]
    if ended == "closed":
        handle.close()
    else:
        backend.start_job(handle, ctx, None)
    assert handle.state == "finished"
    ctx.close()
    del ctx, handle
    assert [r() for r in refs] == [None, None, None]


def test_an_unclosed_context_of_a_finished_job_is_freed_and_cleaned_up(backend: pa.Backend) -> None:
    """Its cleanup functions run the moment the last reference goes (the fds close)."""
    cleaned: List[int] = []
    ctx = backend.WaitCtx()
    ctx.set_wait_fd("k", 99, None, lambda c, k, fd, data: cleaned.append(fd))
    _, handle, _ = backend.start_job(None, ctx, _paused_in_python(backend))
    backend.start_job(handle, ctx, None)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del ctx, handle
    assert cleaned == [99]


def test_the_function_and_its_argument_are_let_go(backend: pa.Backend) -> None:
    payload = Payload()
    captured = Payload()
    refs = [weakref.ref(payload), weakref.ref(captured)]

    def make_job(held: Payload) -> Callable[[Any], int]:
        def job(arg: Any) -> int:
            assert held is not None  # the function refers to an object of the user's
            backend.pause_job()
            return 0

        return job

    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, make_job(captured), payload)
        del payload, captured
        assert handle is not None
        backend.start_job(handle, ctx, None)
        assert [r() for r in refs] == [None, None], "a finished job still refers to its function or argument"


@pytest.mark.parametrize("driver", DRIVERS)
@pytest.mark.parametrize("how", ["returns", "raises"])
def test_the_drivers_context_goes_with_the_run(backend: pa.Backend, driver: str, how: str) -> None:
    refs: List[Any] = []

    def job(arg: Any) -> Any:
        ctx = pa.current_wait_ctx()
        refs.append(weakref.ref(ctx))
        value = Payload()
        refs.append(weakref.ref(value))
        del ctx
        backend.pause_job()
        if how == "raises":
            raise LookupError(value)
        return value

    if how == "returns":
        value = drive(driver, backend, job)
        assert isinstance(value, Payload)
        del value
    else:
        with pytest.raises(LookupError):
            drive(driver, backend, job)
    if driver == "trio" or (driver != "blocking" and how == "raises"):
        # trio's Runner holds the main task's outcome in a cycle, and asyncio a failed
        # task's exception (the value is its argument), plain coroutines' too: only the
        # context is ours to let go of there
        del refs[1:]
    assert refs and [r() for r in refs] == [None] * len(refs)


@pytest.mark.parametrize("path", ["fd", "callback"])
@pytest.mark.parametrize("ended", ["finished", "closed"])
def test_a_job_paused_in_c_lets_go_of_its_context_and_the_engine_closes_its_fds(
    engine: PauseEngine, path: str, ended: str
) -> None:
    openssl = load_backend("openssl")
    held = engine.stats()["fds_open"]
    ctx = openssl.WaitCtx()
    if path == "callback":
        ctx.set_callback(lambda arg: 1)
    refs = [weakref.ref(ctx)]
    _, handle, _ = openssl.start_job(None, ctx, lambda a: engine.op(3, path=path))
    assert handle is not None
    refs.append(weakref.ref(handle))
    if ended == "closed":
        handle.close()
    else:
        status = pa.PAUSE
        while status == pa.PAUSE:
            status, _, _ = openssl.start_job(handle, ctx, None)
    with pytest.warns(ResourceWarning, match="unclosed"):
        del ctx  # never closed: freeing it runs the engine's C cleanup
    del handle
    assert [r() for r in refs] == [None, None]
    assert engine.stats()["fds_open"] == held, "the engine's pipe is still open"


@pytest.mark.parametrize("path", ["fd", "callback"])
def test_a_job_paused_in_c_run_by_aio_leaves_nothing_alive(engine: PauseEngine, path: str) -> None:
    openssl = load_backend("openssl")
    held = engine.stats()["fds_open"]
    refs: List[Any] = []

    def job(arg: Any) -> int:
        refs.append(weakref.ref(pa.current_wait_ctx()))
        return engine.op(2, path=path, ready="later", delay=0.001)

    assert asyncio.run(aio.run_job(job, backend=openssl)) == 2
    assert engine.quiesce(10)
    assert [r() for r in refs] == [None]
    assert engine.stats()["fds_open"] == held
