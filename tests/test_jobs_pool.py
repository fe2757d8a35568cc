"""Per-thread job pools, NO_JOBS, init/cleanup_thread and pause blocking: OpenSSL's rules."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import pyossl_async as pa

from .conftest import run_isolated


def pauser(backend: pa.Backend) -> Any:
    def job(arg: Any) -> int:
        backend.pause_job()
        return 1

    return job


def test_asynctest_init_thread(backend: pa.Backend) -> None:
    """OpenSSL's test_ASYNC_init_thread, check by check."""
    job = pauser(backend)
    assert backend.init_thread(2, 0) is True
    with backend.WaitCtx() as ctx:
        s1, j1, _ = backend.start_job(None, ctx, job)
        s2, j2, _ = backend.start_job(None, ctx, job)
        s3, j3, _ = backend.start_job(None, ctx, job)
        assert (s1, s2, s3) == (pa.PAUSE, pa.PAUSE, pa.NO_JOBS) and j3 is None
        assert backend.start_job(j1, ctx, job) == (pa.FINISH, None, 1)
        s3, j3, _ = backend.start_job(None, ctx, job)
        assert s3 == pa.PAUSE
        assert backend.start_job(j2, ctx, job) == (pa.FINISH, None, 1)
        assert backend.start_job(j3, ctx, job) == (pa.FINISH, None, 1)


@pytest.mark.parametrize(
    "max_size, init_size, ok", [(0, 0, True), (1, 0, True), (4, 4, True), (2, 3, False), (0, 5, False)]
)
def test_init_thread_sizes(backend: pa.Backend, max_size: int, init_size: int, ok: bool) -> None:
    assert backend.init_thread(max_size, init_size) is ok


def test_init_thread_argument_checks(backend: pa.Backend) -> None:
    with pytest.raises(TypeError):
        backend.init_thread("1")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        backend.init_thread(1.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        backend.init_thread(-1)
    with pytest.raises(ValueError):
        backend.init_thread(0, -1)
    with pytest.raises(OverflowError):
        backend.init_thread(2**64)


def test_pool_limit_counts_jobs_ever_created(backend: pa.Backend) -> None:
    job = pauser(backend)
    assert backend.init_thread(1, 0)
    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        assert backend.start_job(None, ctx, job)[0] == pa.NO_JOBS
        backend.start_job(j, None, None)
        # the finished job went back to the pool: it can be reused
        assert backend.start_job(None, ctx, lambda a: 3) == (pa.FINISH, None, 3)


def test_second_init_thread_replaces_the_pool(backend: pa.Backend) -> None:
    job = pauser(backend)
    assert backend.init_thread(1, 0)
    with backend.WaitCtx() as ctx:
        _, j1, _ = backend.start_job(None, ctx, job)
        assert backend.start_job(None, ctx, job)[0] == pa.NO_JOBS
        assert backend.init_thread(1, 0)  # a fresh pool: curr_size 0 again
        s, j2, _ = backend.start_job(None, ctx, job)
        assert s == pa.PAUSE
        assert backend.start_job(None, ctx, job)[0] == pa.NO_JOBS
        backend.start_job(j1, None, None)
        backend.start_job(j2, None, None)


def test_no_jobs_with_a_full_pool_then_other_thread_has_its_own(backend: pa.Backend) -> None:
    job = pauser(backend)
    assert backend.init_thread(1, 0)
    other: list[Any] = []

    def thread_main() -> None:
        with backend.WaitCtx() as c:
            status, _, ret = backend.start_job(None, c, lambda a: 9)
            other.append((status, ret))
        backend.cleanup_thread()

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        assert backend.start_job(None, ctx, job)[0] == pa.NO_JOBS
        t = threading.Thread(target=thread_main)
        t.start()
        t.join()
        backend.start_job(j, None, None)
    assert other == [(pa.FINISH, 9)]


def test_cleanup_thread_refuses_with_paused_jobs(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, pauser(backend))
        with pytest.raises(pa.JobStateError, match="paused"):
            backend.cleanup_thread()
        # nothing changed: the job still resumes
        assert backend.start_job(j, None, None) == (pa.FINISH, None, 1)
    backend.cleanup_thread()
    backend.cleanup_thread()  # twice is fine


def test_cleanup_thread_inside_a_job_is_refused(backend: pa.Backend) -> None:
    errors: list[BaseException] = []

    def job(arg: Any) -> int:
        try:
            backend.cleanup_thread()
        except pa.JobStateError as exc:
            errors.append(exc)
        return 0

    backend.start_job(None, None, job)
    assert len(errors) == 1


def test_cleanup_resets_pool_limits(backend: pa.Backend) -> None:
    job = pauser(backend)
    assert backend.init_thread(1, 0)
    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        backend.start_job(j, None, None)
        backend.cleanup_thread()
        # after cleanup the pool is created again, unlimited
        handles = [backend.start_job(None, ctx, job)[1] for _ in range(3)]
        assert all(h is not None for h in handles)
        for h in handles:
            backend.start_job(h, None, None)


def test_asynctest_block_pause(backend: pa.Backend) -> None:
    """OpenSSL's test_ASYNC_block_pause: the blocked pause does nothing."""
    order: list[str] = []

    def blockpause(arg: Any) -> int:
        backend.block_pause()
        order.append("blocked pause")
        backend.pause_job()
        backend.unblock_pause()
        order.append("real pause")
        backend.pause_job()
        order.append("end")
        return 1

    with backend.WaitCtx() as ctx:
        status, j, _ = backend.start_job(None, ctx, blockpause)
        assert status == pa.PAUSE and order == ["blocked pause", "real pause"]
        assert backend.start_job(j, None, None) == (pa.FINISH, None, 1)


def test_block_nests_and_extra_unblock_is_noop(backend: pa.Backend) -> None:
    steps: list[str] = []

    def job(arg: Any) -> int:
        backend.block_pause()
        backend.block_pause()
        backend.pause_job()
        steps.append("1")
        backend.unblock_pause()
        backend.pause_job()
        steps.append("2")
        backend.unblock_pause()
        backend.unblock_pause()  # extra: never below zero
        backend.pause_job()
        steps.append("3")
        return 0

    with backend.WaitCtx() as ctx:
        status, j, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE and steps == ["1", "2"]
        backend.start_job(j, None, None)
    assert steps == ["1", "2", "3"]


def test_pause_blocked_context_manager(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        with backend.pause_blocked():
            backend.pause_job()  # no-op
        backend.pause_job()
        return 5

    with backend.WaitCtx() as ctx:
        status, j, _ = backend.start_job(None, ctx, job)
        assert status == pa.PAUSE
        assert backend.start_job(j, None, None) == (pa.FINISH, None, 5)


def test_block_outside_a_job_is_ignored(backend: pa.Backend) -> None:
    backend.block_pause()
    with backend.WaitCtx() as ctx:
        status, j, _ = backend.start_job(None, ctx, pauser(backend))
        assert status == pa.PAUSE
        backend.start_job(j, None, None)
    backend.unblock_pause()


def test_block_leaks_from_a_finished_job_to_the_thread(backend: pa.Backend) -> None:
    def leaves_blocked(arg: Any) -> int:
        backend.block_pause()
        return 0

    def clears(arg: Any) -> int:
        backend.unblock_pause()
        backend.pause_job()
        return 2

    with backend.WaitCtx() as ctx:
        backend.start_job(None, ctx, leaves_blocked)
        # the thread is still blocked: a later job cannot pause
        assert backend.start_job(None, ctx, pauser(backend)) == (pa.FINISH, None, 1)
        backend.unblock_pause()  # outside a job: ignored
        assert backend.start_job(None, ctx, pauser(backend)) == (pa.FINISH, None, 1)
        status, j, _ = backend.start_job(None, ctx, clears)  # an unblock inside a job clears it
        assert status == pa.PAUSE
        backend.start_job(j, None, None)
    backend.cleanup_thread()


def test_cleanup_thread_clears_a_leaked_block(backend: pa.Backend) -> None:
    def leaves_blocked(arg: Any) -> int:
        backend.block_pause()
        return 0

    with backend.WaitCtx() as ctx:
        backend.start_job(None, ctx, leaves_blocked)
        backend.cleanup_thread()
        status, j, _ = backend.start_job(None, ctx, pauser(backend))
        assert status == pa.PAUSE
        backend.start_job(j, None, None)


def test_module_level_functions_use_the_default_backend() -> None:
    b = pa.get_backend()
    assert pa.is_capable() == b.is_capable()
    with pa.WaitCtx() as ctx:
        assert ctx.backend is b

        def job(arg: Any) -> int:
            assert pa.get_current_job() is not None
            pa.pause_job()
            return 4

        status, j, _ = pa.start_job(None, ctx, job)
        assert status == pa.PAUSE and pa.get_wait_ctx(j) is ctx  # type: ignore[arg-type]
        assert pa.start_job(j, None, None) == (pa.FINISH, None, 4)
    assert pa.init_thread(0, 0)
    pa.block_pause()
    pa.unblock_pause()
    with pa.pause_blocked():
        pass
    pa.cleanup_thread()


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_huge_init_size_is_refused_not_preallocated(name: str) -> None:
    """``init_thread(2**63, 2**31 - 1)`` made OpenSSL 3.0 malloc a stack per job until
    the kernel killed the process (the python backend started threads for 50 s).

    Run in a child with its address space limited to 4 GiB, so the unfixed code
    fails fast (no job stack can be had) instead of exhausting the machine.
    """
    if name not in pa.available_backends():
        pytest.skip(f"{name} unavailable")
    proc = run_isolated(
        f"""
        import resource
        import pyossl_async as pa
        b = pa.get_backend({name!r})
        b.is_capable()
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        for sizes in [(2**63, 2**31 - 1), (2**64 - 1, 2**64 - 1), (2**15 + 1, 2**15 + 1)]:
            try:
                b.init_thread(*sizes)
            except ValueError as exc:
                assert "init_size" in str(exc), exc
            else:
                raise AssertionError(f"init_thread{{sizes}} was accepted")
        # sizes OpenSSL itself refuses still give False, however large
        assert b.init_thread(0, 2**31 - 1) is False
        assert b.init_thread(5, 2**63) is False
        assert b.init_thread(2**63, 3) is True
        assert b.start_job(None, None, lambda a: 4) == (pa.FINISH, None, 4)
        b.cleanup_thread()
        print("ok")
        """,
        timeout=120,
    )
    assert proc.stdout.strip() == "ok"
