"""The module-level functions act on the job running the calling code, whichever
backend runs it; outside any job, on the default backend.

Each test starts a job explicitly on one backend while the default
(``PYOSSL_ASYNC_BACKEND``) is the other one: the trap was that ``pa.pause_job()``
then returned at once without pausing and ``pa.get_current_job()`` said None.
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import os
import threading
from typing import Any, List

import pytest

import pyossl_async as pa

from .conftest import load_backend


@pytest.fixture
def other_default(backend: pa.Backend, monkeypatch: pytest.MonkeyPatch) -> pa.Backend:
    """Make the *other* backend the default one; the test's jobs run on ``backend``."""
    other = "python" if backend.name == "openssl" else "openssl"
    load_backend(other)
    monkeypatch.setenv("PYOSSL_ASYNC_BACKEND", other)
    monkeypatch.delenv("PYOSSL_ASYNC_LIBCRYPTO", raising=False)
    assert pa.get_backend().name == other
    return backend


def test_pause_and_current_job_follow_the_running_job(other_default: pa.Backend) -> None:
    backend = other_default
    seen: List[Any] = []

    def job(arg: Any) -> int:
        seen.append(pa.get_current_job())
        assert pa.pause_job() is True
        seen.append(pa.get_current_job())
        seen.append(pa.current_wait_ctx())
        seen.append(pa.get_wait_ctx(seen[0]))
        return 3

    with backend.WaitCtx() as ctx:
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE, "pa.pause_job() did not pause a job of a non-default backend"
        assert seen == [handle]
        status, handle2, ret = pa.start_job(handle, ctx, None)  # resumed on the job's own backend
        assert (status, handle2, ret) == (pa.FINISH, None, 3)
        assert seen[1] is seen[0] and seen[2] is ctx and seen[3] is ctx
    assert pa.get_current_job() is None


def test_start_job_starts_on_the_contexts_backend(other_default: pa.Backend) -> None:
    backend = other_default
    with backend.WaitCtx() as ctx:
        status, handle, _ = pa.start_job(None, ctx, lambda a: pa.pause_job() and 5)
        assert status == pa.PAUSE and handle is not None and handle.backend is backend
        assert pa.start_job(handle, ctx, None) == (pa.FINISH, None, 5)


def test_block_pause_follows_the_running_job(other_default: pa.Backend) -> None:
    backend = other_default

    def job(arg: Any) -> int:
        with pa.pause_blocked():
            pa.pause_job()  # blocked on the job's own backend: returns at once
        pa.block_pause()
        pa.pause_job()
        pa.unblock_pause()
        pa.pause_job()  # pauses
        return 1

    with backend.WaitCtx() as ctx:
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE
        assert backend.start_job(handle, ctx, None) == (pa.FINISH, None, 1)


def test_engine_helpers_follow_the_running_job(other_default: pa.Backend) -> None:
    backend = other_default
    with concurrent.futures.ThreadPoolExecutor(1) as pool:

        def job(arg: Any) -> int:
            r, w = os.pipe()
            try:
                pool.submit(os.write, w, b"x")
                pa.wait_for_fd(r)
                os.read(r, 1)
            finally:
                os.close(r)
                os.close(w)
            value: int = pa.await_future(pool.submit(lambda: 9))
            return value

        assert pa.run_job(job, backend=backend) == 9


def test_a_copy_of_the_jobs_context_elsewhere_is_not_inside_the_job(other_default: pa.Backend) -> None:
    """Code that runs in a copy of the job's context on another thread, or after the job
    paused, is not inside the job: pause_job() does not pause it, get_current_job() is None."""
    backend = other_default
    copies: List[contextvars.Context] = []
    out: List[Any] = []

    def job(arg: Any) -> int:
        copies.append(contextvars.copy_context())
        t = threading.Thread(target=lambda: out.append(copies[0].run(pa.get_current_job)))
        t.start()
        t.join()
        pa.pause_job()
        return 0

    with backend.WaitCtx() as ctx:
        status, handle, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE
        out.append(copies[0].run(pa.get_current_job))  # the job is paused, this is its caller
        out.append(copies[0].run(pa.pause_job))
        assert backend.start_job(handle, ctx, None) == (pa.FINISH, None, 0)
    assert out == [None, None, True]


def test_outside_any_job_the_default_backend_answers(other_default: pa.Backend) -> None:
    assert pa.pause_job() is True
    assert pa.get_current_job() is None
    with pytest.raises(pa.JobStateError):
        pa.current_wait_ctx()


def test_starting_a_job_inside_a_job_of_another_backend_is_refused(backend: pa.Backend) -> None:
    other = load_backend("python" if backend.name == "openssl" else "openssl")
    out: List[str] = []

    def job(arg: Any) -> int:
        try:
            other.start_job(None, None, lambda a: 0)
        except pa.JobStateError as exc:
            out.append(str(exc))
        return 0

    assert pa.run_job(job, backend=backend) == 0
    assert out == ["start_job() called from inside a running job"]
