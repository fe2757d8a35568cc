"""Closing paused jobs: explicitly, by garbage collection, from other threads, at exit."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

import pyossl_async as pa

from .conftest import run_isolated


def test_close_raises_jobcancelled_inside_and_runs_finally(backend: pa.Backend) -> None:
    log: list[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
            log.append("not reached")
        except pa.JobCancelled:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        j.close()  # type: ignore[union-attr]
        assert j.state == "finished"  # type: ignore[union-attr]
        assert log == ["cancelled", "finally"]
        j.close()  # type: ignore[union-attr]  # finished: no-op
        with pytest.raises(pa.JobStateError):
            backend.start_job(j, None, None)


def test_except_exception_does_not_swallow_cancel(backend: pa.Backend) -> None:
    log: list[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        except Exception:  # noqa: BLE001 - the point of the test
            log.append("swallowed")
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        j.close()  # type: ignore[union-attr]
    assert log == []


def test_catching_cancel_and_pausing_again_gets_cancel_again(backend: pa.Backend) -> None:
    log: list[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        except pa.JobCancelled:
            log.append("first")
        try:
            backend.pause_job()
        except pa.JobCancelled:
            log.append("second")
        with backend.pause_blocked():
            try:
                backend.pause_job()
            except pa.JobCancelled:
                log.append("third, even blocked")
        return 7

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        j.close()  # type: ignore[union-attr]
    assert log == ["first", "second", "third, even blocked"]


def test_other_exception_while_unwinding_propagates_from_close(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        finally:
            raise OSError("cleanup failed")

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        with pytest.raises(OSError, match="cleanup failed"):
            j.close()  # type: ignore[union-attr]
        assert j.state == "finished"  # type: ignore[union-attr]


def test_dropping_the_last_reference_unwinds_the_job(backend: pa.Backend) -> None:
    log: list[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        finally:
            log.append("finally ran")
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        with pytest.warns(ResourceWarning, match="garbage collected"):
            del j
            gc.collect()
        assert log == ["finally ran"]
    backend.cleanup_thread()  # nothing left paused


def test_get_current_job_during_gc_unwinding_is_the_same_handle(backend: pa.Backend) -> None:
    ids: list[int] = []

    def job(arg: Any) -> int:
        ids.append(id(backend.get_current_job()))
        try:
            backend.pause_job()
        finally:
            ids.append(id(backend.get_current_job()))
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        first = id(j)
        with pytest.warns(ResourceWarning):
            del j
            gc.collect()
    assert ids == [first, first]


def test_get_current_job_is_the_handle_while_a_collected_cycle_unwinds_it(backend: pa.Backend) -> None:
    """Before: ``None`` (the collector clears weak references to a cycle before its
    finalisers run, and the handle was found through one), so engine code in the
    job's ``finally`` saw no current job inside a running job."""
    seen: list[Any] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        finally:
            current = backend.get_current_job()
            seen.append((current is not None, current is not None and current.state))
            if current is not None:
                seen.append(backend.get_wait_ctx(current) is not None)
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        cycle: list[Any] = [j]
        cycle.append(cycle)  # only the collector can free the handle now
        del j, cycle
        with pytest.warns(ResourceWarning, match="garbage collected"):
            gc.collect()
    assert seen == [(True, "running"), True]


def test_handle_dropped_inside_another_job_is_closed_later(backend: pa.Backend) -> None:
    log: list[str] = []

    def victim(arg: Any) -> int:
        try:
            backend.pause_job()
        finally:
            log.append("victim unwound")
        return 0

    holder: dict[str, Any] = {}

    def dropper(arg: Any) -> int:
        holder.clear()  # drops the last reference while a job runs
        log.append("dropped")
        return 0

    with backend.WaitCtx() as ctx:
        _, holder["j"], _ = backend.start_job(None, ctx, victim)
        with pytest.warns(ResourceWarning):
            backend.start_job(None, ctx, dropper)
            gc.collect()
    # unwinding had to wait until no job was running on this thread
    assert log == ["dropped", "victim unwound"]


def test_handle_dropped_on_another_thread_is_closed_by_the_owner(backend: pa.Backend) -> None:
    log: list[str] = []

    def victim(arg: Any) -> int:
        try:
            backend.pause_job()
        finally:
            log.append(f"unwound on {threading.current_thread().name}")
        return 0

    holder: list[Any] = []
    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, victim)
        holder.append(j)
        del j

        def other() -> None:
            holder.clear()
            gc.collect()

        with pytest.warns(ResourceWarning):
            t = threading.Thread(target=other, name="other")
            t.start()
            t.join()
        assert log == []
        # the owner's next library call runs the deferred close
        backend.start_job(None, ctx, lambda a: 0)
    assert log == [f"unwound on {threading.current_thread().name}"] or (
        backend.name == "python" and len(log) == 1
    )


def test_paused_jobs_are_unwound_at_interpreter_exit() -> None:
    for name in pa.available_backends():
        proc = run_isolated(
            f"""
            import pyossl_async as pa
            b = pa.get_backend({name!r})
            def job(arg):
                try:
                    b.pause_job()
                finally:
                    print("finally", arg, flush=True)
                return 0
            ctx = b.WaitCtx()
            keep = [b.start_job(None, ctx, job, i)[1] for i in range(3)]
            print("exiting", flush=True)
            """
        )
        assert proc.stdout.split() == ["exiting", "finally", "0", "finally", "1", "finally", "2"], proc.stdout


def test_thread_exit_with_paused_jobs_orphans_them(backend: pa.Backend) -> None:
    box: list[Any] = []

    def thread_main() -> None:
        ctx = backend.WaitCtx()
        box.append(backend.start_job(None, ctx, lambda a: backend.pause_job() and 0)[1])

    with pytest.warns(ResourceWarning, match="thread exited"):
        t = threading.Thread(target=thread_main)
        t.start()
        t.join()
        gc.collect()
    j = box[0]
    assert j.state == "paused"
    with pytest.raises(pa.JobStateError, match="owner thread"):
        backend.start_job(j, None, None)
    with pytest.raises(pa.JobStateError, match="owner thread"):
        j.close()
