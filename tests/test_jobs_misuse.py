"""Every misuse raises the contract's exception and leaves the process healthy."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import pyossl_async as pa

from .conftest import load_backend, run_isolated


def pauser(backend: pa.Backend) -> Any:
    def job(arg: Any) -> int:
        backend.pause_job()
        return 1

    return job


def test_resume_finished_job(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, pauser(backend))
        backend.start_job(j, None, None)
        with pytest.raises(pa.JobStateError, match="finished"):
            backend.start_job(j, None, None)
        # the pool is not corrupted (C would push the job twice)
        handles = [backend.start_job(None, ctx, pauser(backend))[1] for _ in range(3)]
        assert len({id(h) for h in handles}) == 3
        for h in handles:
            assert backend.start_job(h, None, None) == (pa.FINISH, None, 1)


def test_resume_from_another_thread(backend: pa.Backend) -> None:
    errors: list[BaseException] = []
    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, pauser(backend))

        def other() -> None:
            try:
                backend.start_job(j, None, None)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            try:
                j.close()  # type: ignore[union-attr]
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert [type(e) for e in errors] == [pa.JobStateError, pa.JobStateError]
        assert j.state == "paused"  # type: ignore[union-attr]
        assert backend.start_job(j, None, None) == (pa.FINISH, None, 1)


def test_start_job_inside_a_job(backend: pa.Backend) -> None:
    seen: list[BaseException] = []

    def outer(arg: Any) -> int:
        try:
            backend.start_job(None, None, lambda a: 1)
        except pa.JobStateError as exc:
            seen.append(exc)
        backend.pause_job()
        try:
            backend.start_job(None, None, lambda a: 1)
        except pa.JobStateError as exc:
            seen.append(exc)
        return 3

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, outer)
        assert backend.start_job(j, None, None) == (pa.FINISH, None, 3)
    assert len(seen) == 2


def test_resume_a_job_from_inside_another(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        _, paused, _ = backend.start_job(None, ctx, pauser(backend))
        seen: list[BaseException] = []

        def job(arg: Any) -> int:
            for attempt in (lambda: backend.start_job(paused, None, None), lambda: paused.close()):  # type: ignore[union-attr]
                try:
                    attempt()
                except pa.JobStateError as exc:
                    seen.append(exc)
            return 0

        backend.start_job(None, ctx, job)
        assert len(seen) == 2
        backend.start_job(paused, None, None)


def test_running_job_cannot_be_closed_or_resumed(backend: pa.Backend) -> None:
    seen: list[str] = []

    def job(arg: Any) -> int:
        me = backend.get_current_job()
        try:
            me.close()  # type: ignore[union-attr]
        except pa.JobStateError:
            seen.append("close")
        try:
            backend.start_job(me, None, None)
        except pa.JobStateError:
            seen.append("resume")
        return 0

    backend.start_job(None, None, job)
    assert seen == ["close", "resume"]


def test_wrong_argument_types(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        with pytest.raises(TypeError):
            backend.start_job("job", ctx, lambda a: 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            backend.start_job(None, "ctx", lambda a: 0)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            backend.start_job(None, ctx, None)
        with pytest.raises(TypeError):
            backend.start_job(None, ctx, 42)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            backend.get_wait_ctx("job")  # type: ignore[arg-type]
    # after all that, jobs still run
    assert backend.start_job(None, None, lambda a: 8) == (pa.FINISH, None, 8)


def test_closed_ctx_cannot_start_a_job(backend: pa.Backend) -> None:
    ctx = backend.WaitCtx()
    ctx.close()
    with pytest.raises(pa.WaitCtxClosedError):
        backend.start_job(None, ctx, lambda a: 0)


def test_handles_and_contexts_of_another_backend() -> None:
    names = pa.available_backends()
    if len(names) < 2:
        pytest.skip("needs both backends")
    a, b = (pa.get_backend(n) for n in names[:2])
    with a.WaitCtx() as actx:
        with pytest.raises(pa.JobStateError, match="backend"):
            b.start_job(None, actx, lambda x: 0)
        _, j, _ = a.start_job(None, actx, pauser(a))
        with pytest.raises(pa.JobStateError, match="backend"):
            b.start_job(j, None, None)
        with pytest.raises(pa.JobStateError, match="backend"):
            b.get_wait_ctx(j)  # type: ignore[arg-type]
        a.start_job(j, None, None)


def test_pause_without_ctx_raises_inside_the_job(backend: pa.Backend) -> None:
    seen: list[str] = []

    def job(arg: Any) -> int:
        with backend.pause_blocked():
            assert backend.pause_job() is True  # blocked: nothing happens, no error
        try:
            backend.pause_job()
        except pa.JobStateError:
            seen.append("raised")
        return 6

    # the caller never sees a PAUSE for it
    assert backend.start_job(None, None, job) == (pa.FINISH, None, 6)
    assert seen == ["raised"]


def test_wait_ctx_in_use_cannot_be_closed(backend: pa.Backend) -> None:
    ctx = backend.WaitCtx()
    _, j, _ = backend.start_job(None, ctx, pauser(backend))
    with pytest.raises(pa.JobStateError):
        ctx.close()
    assert not ctx.closed
    assert ctx.get_all_fds() == []  # still usable: nothing changed
    backend.start_job(j, None, None)
    ctx.close()
    assert ctx.closed


def test_running_job_cannot_close_its_own_ctx(backend: pa.Backend) -> None:
    seen: list[str] = []
    ctx = backend.WaitCtx()

    def job(arg: Any) -> int:
        try:
            ctx.close()
        except pa.JobStateError:
            seen.append("refused")
        return 0

    backend.start_job(None, ctx, job)
    assert seen == ["refused"]
    ctx.close()


AT_THE_RECURSION_LIMIT = r"""
import sys, pyossl_async as pa
b = pa.get_backend(NAME)
calls = {
    "init_thread": lambda: b.init_thread(0, 0),
    "block_pause": b.block_pause,
    "unblock_pause": b.unblock_pause,
    "cleanup_thread": b.cleanup_thread,
    "is_capable": b.is_capable,
    "get_current_job": b.get_current_job,
    "pause_job": b.pause_job,
}
bad = {}
for name, call in calls.items():
    def dive():
        # the call at every depth, down to the limit: somewhere it runs out inside
        try:
            call()
        except RecursionError:
            pass
        except BaseException as exc:
            bad[name] = repr(exc)
        dive()
    try:
        dive()
    except RecursionError:
        pass
print(sorted(bad.items()))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_backend_calls_at_the_recursion_limit_raise_recursion_error(name: str) -> None:
    """Before: on 3.9-3.11 ``init_thread`` (and the other backend calls that pass
    arguments to C) raised ``ctypes.ArgumentError`` wrapping the RecursionError; a
    signal handler storm that nested handlers down to the limit saw it."""
    load_backend(name)
    proc = run_isolated(AT_THE_RECURSION_LIMIT.replace("NAME", repr(name)))
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
