"""ASYNC_WAIT_CTX semantics, quirks included, identical on both backends."""

from __future__ import annotations

import gc
import os
import sys
from typing import Any, List

import pytest

import pyossl_async as pa

from .conftest import run_isolated


def test_fresh_ctx(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        assert ctx.get_all_fds() == []
        assert ctx.get_changed_fds() == ([], [])
        assert ctx.get_fd("k") is None
        assert ctx.clear_fd("k") is False
        assert ctx.get_callback() is None
        assert ctx.get_status() == pa.WaitStatus.UNSUPPORTED
        assert isinstance(ctx.get_status(), pa.WaitStatus)


def test_set_get_clear_outside_a_job(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        assert ctx.set_wait_fd("a", 10, {"data": 1}) is True
        assert ctx.get_fd("a") == (10, {"data": 1})
        assert ctx.get_all_fds() == [10]
        assert ctx.get_changed_fds() == ([10], [])
        assert ctx.clear_fd("a") is True  # add=1: removed outright
        assert ctx.get_changed_fds() == ([], [])
        assert ctx.get_all_fds() == [] and ctx.get_fd("a") is None
        assert ctx.clear_fd("a") is False


def test_duplicate_keys_shadow_and_newest_first(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        ctx.set_wait_fd("k", 1, "one")
        ctx.set_wait_fd("k", 2, "two")
        ctx.set_wait_fd("other", 3)
        assert ctx.get_fd("k") == (2, "two")
        assert ctx.get_all_fds() == [3, 2, 1]
        assert ctx.get_changed_fds() == ([3, 2, 1], [])
        assert ctx.clear_fd("k")
        assert ctx.get_fd("k") == (1, "one")
        assert ctx.clear_fd("k")
        assert ctx.get_fd("k") is None and ctx.get_all_fds() == [3]


def test_keys_compare_with_equality(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        ctx.set_wait_fd(("key", 1), 5)
        assert ctx.get_fd(("key", 1)) == (5, None)
        ctx.set_wait_fd(1, 6)
        assert ctx.get_fd(1.0) == (6, None)  # 1 == 1.0
        with pytest.raises(TypeError):
            ctx.set_wait_fd(["unhashable"], 1)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ctx.get_fd({})  # type: ignore[arg-type]


def test_argument_checks(backend: pa.Backend) -> None:
    with backend.WaitCtx() as ctx:
        with pytest.raises(TypeError):
            ctx.set_wait_fd("k", "3")  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            ctx.set_wait_fd("k", 2**31)
        with pytest.raises(TypeError):
            ctx.set_wait_fd("k", 3, None, cleanup=5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ctx.set_callback(5)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            ctx.set_status("ok")  # type: ignore[arg-type]
        with pytest.raises(OverflowError):
            ctx.set_status(2**40)
        assert ctx.get_all_fds() == []  # nothing was added by the failed calls


def test_asynctest_get_all_fds(backend: pa.Backend) -> None:
    """OpenSSL's test_ASYNC_WAIT_CTX_get_all_fds, check by check."""
    magic = 99

    def waitfd(arg: Any) -> int:
        me = backend.get_current_job()
        w = backend.get_wait_ctx(me)  # type: ignore[arg-type]
        if me is None or w is None:
            return 0
        backend.pause_job()
        assert w.set_wait_fd(w, magic)
        backend.pause_job()
        assert w.clear_fd(w)
        backend.pause_job()
        assert w.set_wait_fd(w, magic)
        assert w.clear_fd(w)
        return 1

    with backend.WaitCtx() as ctx:
        status, j, _ = backend.start_job(None, ctx, waitfd)
        assert status == pa.PAUSE
        assert ctx.get_all_fds() == [] and ctx.get_changed_fds() == ([], [])
        status, j, _ = backend.start_job(j, ctx, waitfd)
        assert status == pa.PAUSE
        assert ctx.get_all_fds() == [magic]
        assert ctx.get_changed_fds() == ([magic], [])
        status, j, _ = backend.start_job(j, ctx, waitfd)
        assert status == pa.PAUSE
        assert ctx.get_all_fds() == []
        assert ctx.get_changed_fds() == ([], [magic])
        assert backend.start_job(j, ctx, waitfd) == (pa.FINISH, None, 1)
        assert ctx.get_all_fds() == []
        assert ctx.get_changed_fds() == ([], [])


def test_changes_reset_at_resume_not_at_pause_or_finish(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        w = backend.get_wait_ctx(backend.get_current_job())  # type: ignore[arg-type]
        w.set_wait_fd("a", 1)  # type: ignore[union-attr]
        backend.pause_job()
        w.set_wait_fd("b", 2)  # type: ignore[union-attr]
        return 0

    with backend.WaitCtx() as ctx:
        ctx.set_wait_fd("outside", 7)  # counted in the first segment too
        status, j, _ = backend.start_job(None, ctx, job)
        assert ctx.get_changed_fds() == ([1, 7], [])
        assert ctx.get_changed_fds() == ([1, 7], [])  # reading resets nothing
        backend.start_job(j, None, None)
        # after FINISH the counts describe the last segment, nothing reset
        assert ctx.get_changed_fds() == ([2], [])
        assert ctx.get_all_fds() == [2, 1, 7]
        # a new job on the same ctx sees the leftovers at its first pause
        status, j, _ = backend.start_job(None, ctx, lambda a: backend.pause_job() and 0)
        assert status == pa.PAUSE
        assert ctx.get_changed_fds() == ([2], [])
        backend.start_job(j, None, None)
        assert ctx.get_changed_fds() == ([], [])


def test_clear_of_a_surviving_fd_marks_it_deleted(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        w = backend.get_wait_ctx(backend.get_current_job())  # type: ignore[arg-type]
        w.set_wait_fd("a", 1)  # type: ignore[union-attr]
        w.set_wait_fd("b", 2)  # type: ignore[union-attr]
        backend.pause_job()
        assert w.clear_fd("a")  # type: ignore[union-attr]  # survived a reset: marked del
        assert w.get_fd("a") is None  # type: ignore[union-attr]
        assert w.clear_fd("a") is False  # type: ignore[union-attr]
        w.set_wait_fd("a", 3)  # type: ignore[union-attr]
        backend.pause_job()
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        assert ctx.get_changed_fds() == ([2, 1], [])
        _, j, _ = backend.start_job(j, None, None)
        assert ctx.get_all_fds() == [3, 2]
        assert ctx.get_changed_fds() == ([3], [1])
        backend.start_job(j, None, None)
        assert ctx.get_changed_fds() == ([], [])
        assert ctx.get_all_fds() == [3, 2]


def test_blocked_pause_does_not_reset(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        w = backend.get_wait_ctx(backend.get_current_job())  # type: ignore[arg-type]
        w.set_wait_fd("a", 1)  # type: ignore[union-attr]
        with backend.pause_blocked():
            backend.pause_job()
        w.set_wait_fd("b", 2)  # type: ignore[union-attr]
        backend.pause_job()
        return 0

    with backend.WaitCtx() as ctx:
        _, j, _ = backend.start_job(None, ctx, job)
        assert ctx.get_changed_fds() == ([2, 1], [])
        backend.start_job(j, None, None)


def test_close_runs_cleanup_newest_first_for_live_entries_only(backend: pa.Backend) -> None:
    calls: list[tuple[Any, ...]] = []

    def cleanup(ctx: Any, key: Any, fd: int, data: Any) -> None:
        calls.append((ctx, key, fd, data))

    ctx = backend.WaitCtx()
    ctx.set_wait_fd("a", 11, "A", cleanup)
    ctx.set_wait_fd("b", 20, "B", cleanup)
    ctx.set_wait_fd("n", 30, "N")  # no cleanup function
    ctx.set_wait_fd("c", 40, "C", cleanup)
    assert ctx.clear_fd("c")  # cleared: its cleanup never runs
    ctx.set_wait_fd("a", 12, "A2", cleanup)  # duplicate key: both live
    assert calls == []
    ctx.close()
    assert calls == [(ctx, "a", 12, "A2"), (ctx, "b", 20, "B"), (ctx, "a", 11, "A")]
    ctx.close()  # idempotent
    assert len(calls) == 3


def test_cleanup_of_fds_cleared_after_a_resume_never_runs(backend: pa.Backend) -> None:
    calls: list[int] = []

    def cleanup(ctx: Any, key: Any, fd: int, data: Any) -> None:
        calls.append(fd)

    def job(arg: Any) -> int:
        w = backend.get_wait_ctx(backend.get_current_job())  # type: ignore[arg-type]
        w.set_wait_fd("a", 1, None, cleanup)  # type: ignore[union-attr]
        w.set_wait_fd("b", 2, None, cleanup)  # type: ignore[union-attr]
        backend.pause_job()
        w.clear_fd("a")  # type: ignore[union-attr]
        backend.pause_job()
        return 0

    ctx = backend.WaitCtx()
    _, j, _ = backend.start_job(None, ctx, job)
    _, j, _ = backend.start_job(j, None, None)
    backend.start_job(j, None, None)
    ctx.close()
    assert calls == [2]


def test_closed_ctx_raises(backend: pa.Backend) -> None:
    ctx = backend.WaitCtx()
    ctx.close()
    assert ctx.closed
    for call in (
        lambda: ctx.set_wait_fd("a", 1),
        lambda: ctx.get_fd("a"),
        ctx.get_all_fds,
        ctx.get_changed_fds,
        lambda: ctx.clear_fd("a"),
        lambda: ctx.set_callback(None),
        ctx.get_callback,
        lambda: ctx.set_status(1),
        ctx.get_status,
    ):
        with pytest.raises(pa.WaitCtxClosedError):
            call()
    with pytest.raises(pa.WaitCtxClosedError), ctx:
        pass


def test_cleanup_exceptions_go_to_unraisablehook(backend: pa.Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: seen.append(u))
    done: list[int] = []

    def bad(ctx: Any, key: Any, fd: int, data: Any) -> None:
        raise RuntimeError(f"cleanup {fd} failed")

    def good(ctx: Any, key: Any, fd: int, data: Any) -> None:
        done.append(fd)

    ctx = backend.WaitCtx()
    ctx.set_wait_fd("g", 1, None, good)
    ctx.set_wait_fd("b", 2, None, bad)
    ctx.close()
    assert done == [1]  # later cleanups still ran
    assert len(seen) == 1 and isinstance(seen[0].exc_value, RuntimeError)
    assert "cleanup" in seen[0].err_msg


def test_callback_and_status(backend: pa.Backend) -> None:
    """OpenSSL's test_ASYNC_callback_status, plus the NULL-callback quirks."""
    got: list[Any] = []

    def cb(arg: Any) -> int:
        got.append(arg)
        return 1

    with backend.WaitCtx() as ctx:
        marker = object()
        assert ctx.set_callback(cb, marker) is True
        callback, arg = ctx.get_callback()  # type: ignore[misc]
        assert callback is cb and arg is marker
        assert callback(arg) == 1 and got == [marker]
        assert ctx.set_status(1) is True and ctx.get_status() == pa.WaitStatus.ERR
        for value in (12345, -1):
            ctx.set_status(value)
            assert ctx.get_status() == value and not isinstance(ctx.get_status(), pa.WaitStatus)
        ctx.set_status(pa.WaitStatus.EAGAIN)
        assert ctx.get_status() is pa.WaitStatus.EAGAIN
        assert ctx.set_callback(None, marker) is True  # NULL callback with an arg
        assert ctx.get_callback() is None
        ctx.set_callback(cb)
        assert ctx.get_callback() == (cb, None)


def test_fd_can_be_a_real_pipe_and_custom_data_any_object(backend: pa.Backend) -> None:
    r, w = os.pipe()
    closed: list[int] = []

    def cleanup(ctx: Any, key: Any, fd: int, data: Any) -> None:
        os.close(fd)
        os.close(data)
        closed.append(fd)

    ctx = backend.WaitCtx()
    ctx.set_wait_fd(ctx, r, w, cleanup)
    assert ctx.get_fd(ctx) == (r, w)
    ctx.close()
    assert closed == [r]
    with pytest.raises(OSError):
        os.fstat(r)


def test_unclosed_ctx_warns_and_cleans_up(backend: pa.Backend) -> None:
    calls: list[int] = []
    ctx = backend.WaitCtx()
    ctx.set_wait_fd("a", 3, None, lambda c, k, fd, d: calls.append(fd))
    with pytest.warns(ResourceWarning, match="unclosed"):
        del ctx
        gc.collect()
    assert calls == [3]


def test_reentrant_use_from_a_cleanup(backend: pa.Backend) -> None:
    errors: list[type] = []

    def cleanup(ctx: Any, key: Any, fd: int, data: Any) -> None:
        try:
            ctx.get_fd(key)
        except pa.WaitCtxClosedError:
            errors.append(pa.WaitCtxClosedError)
        other = backend.WaitCtx()  # creating and using another one is fine
        other.set_wait_fd("x", 1)
        other.close()

    ctx = backend.WaitCtx()
    ctx.set_wait_fd("a", 1, None, cleanup)
    ctx.close()
    assert errors == [pa.WaitCtxClosedError]


def test_leaving_the_with_block_unwinds_the_jobs_still_using_it(backend: pa.Backend) -> None:
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
            return 1
        finally:
            log.append(f"finally {arg}")

    with backend.WaitCtx() as ctx:
        handles = [backend.start_job(None, ctx, job, i).job for i in range(3)]
    assert ctx.closed and [h.state for h in handles] == ["finished"] * 3  # type: ignore[union-attr]
    assert sorted(log) == ["finally 0", "finally 1", "finally 2"]


def test_leaving_the_with_block_never_masks_the_exception_in_flight(backend: pa.Backend) -> None:
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        except pa.JobCancelled:
            raise OSError("unwinding failed") from None
        finally:
            log.append("finally")
        return 1

    reported: List[Any] = []
    previous, sys.unraisablehook = sys.unraisablehook, reported.append
    try:
        with pytest.raises(ValueError, match="the body's own") as info:
            with backend.WaitCtx() as ctx:
                handle = backend.start_job(None, ctx, job).job
                raise ValueError("the body's own")
    finally:
        sys.unraisablehook = previous
    assert log == ["finally"] and handle is not None and handle.state == "finished" and ctx.closed
    if sys.version_info >= (3, 11):  # what closing raised rides along as a note
        assert any("unwinding failed" in note for note in info.value.__notes__) and reported == []
    else:  # no notes before 3.11: reported as unraisable
        assert [str(r.exc_value) for r in reported] == ["unwinding failed"]


def test_with_block_closing_failure_is_raised_when_nothing_else_is(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        try:
            backend.pause_job()
        except pa.JobCancelled:
            raise OSError("unwinding failed") from None
        return 1

    with pytest.raises(OSError, match="unwinding failed"):
        with backend.WaitCtx() as ctx:
            kept = backend.start_job(None, ctx, job).job
    assert ctx.closed and kept is not None and kept.state == "finished"


def test_waitctx_is_a_class_for_annotations_and_isinstance(backend: pa.Backend) -> None:
    ctx: pa.WaitCtx = backend.WaitCtx()
    try:
        assert isinstance(ctx, pa.WaitCtx)
        with pytest.warns(DeprecationWarning, match="WaitCtxType is deprecated: use WaitCtx"):
            assert pa.WaitCtxType is pa.WaitCtx
        assert repr(ctx).startswith("<pyossl_async.WaitCtx open")
    finally:
        ctx.close()
    default = pa.WaitCtx()
    try:
        assert isinstance(default, pa.WaitCtx) and default.backend is pa.get_backend()
    finally:
        default.close()
    with pytest.raises(TypeError, match="takes no arguments"):
        pa.WaitCtx(backend)  # type: ignore[call-arg]


WAITCTX_CLOSED_BY_A_HOOK = """
import gc
import pyossl_async as pa
b = pa.get_backend({name!r})
cleaned = []


class ClosingInt(int):
    '''An fd or status whose __int__ closes the context it is being passed to.'''

    ctx = None

    def __int__(self):
        self.ctx.close()
        return 5


class ClosingKey:
    '''A key whose __hash__ closes the context it is being used with.'''

    ctx = None

    def __hash__(self):
        if self.ctx is not None:
            self.ctx.close()
        return 1

    def __eq__(self, other):
        return self is other


def fresh():
    ctx = b.WaitCtx()
    ctx.set_wait_fd("old", 3, None, lambda c, k, fd, d: cleaned.append(fd))
    return ctx


calls = [
    lambda ctx, hook: ctx.set_wait_fd("k", hook, None, lambda c, k, fd, d: cleaned.append(fd)),
    lambda ctx, hook: ctx.set_status(hook),
    lambda ctx, key: ctx.set_wait_fd(key, 4),
    lambda ctx, key: ctx.get_fd(key),
    lambda ctx, key: ctx.clear_fd(key),
]
for i, call in enumerate(calls):
    ctx = fresh()
    hook = ClosingInt(5) if i < 2 else ClosingKey()
    hook.ctx = ctx
    try:
        call(ctx, hook)
    except pa.WaitCtxClosedError:
        pass
    else:
        raise AssertionError(f"call {{i}} on a context its own argument closed did not raise")
    assert ctx.closed
    hook.ctx = None
    del ctx, hook
    gc.collect()
# every context's live fd was cleaned up exactly once, none of the refused ones
assert cleaned == [3] * len(calls), cleaned
print("ok")
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_waitctx_closed_by_its_own_argument_is_not_used_after_free(name: str) -> None:
    """``set_wait_fd(key, fd)`` where ``fd.__int__`` (or ``key.__hash__``) closes the
    context passed ``NULL`` to ``ASYNC_WAIT_CTX_set_wait_fd``: SIGSEGV (found by the
    fuzzer). A close that comes while a method runs is now deferred until it returns,
    and the method re-checks for a close right before it calls C.
    """
    if name not in pa.available_backends():
        pytest.skip(f"{name} unavailable")
    proc = run_isolated(WAITCTX_CLOSED_BY_A_HOOK.format(name=name), check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_waitctx_closed_while_a_job_is_being_started(name: str) -> None:
    """``start_job(None, ctx, job, args)`` where the args' ``__buffer__`` (3.12+) or a
    finaliser closes ``ctx`` after ``start_job`` checked it: the job ran with a NULL
    wait ctx and the process crashed (SIGSEGV) when it paused and was resumed.
    """
    if name not in pa.available_backends():
        pytest.skip(f"{name} unavailable")
    proc = run_isolated(
        f"""
        import gc, sys
        import pyossl_async as pa
        b = pa.get_backend({name!r})
        ran = []

        def job(arg):
            ran.append(arg)
            b.pause_job()
            return 1

        class Buf:  # a bytes-like object written in Python (3.12+: __buffer__)
            def __init__(self, ctx):
                self.ctx = ctx
            def __buffer__(self, flags):
                self.ctx.close()
                return memoryview(b"abc")

        class Closer:  # collected in a cycle, whenever the collector runs
            def __init__(self, ctx):
                self.ctx, self.me = ctx, self
            def __del__(self):
                self.ctx.close()

        def closing_gc(ctx):
            # a collection at the next allocation closes ctx: inside start_job
            Closer(ctx)
            gc.set_threshold(1)

        cases = [closing_gc]
        if sys.version_info >= (3, 12):
            cases.append(lambda ctx: Buf(ctx))
        for make in cases:
            ctx = b.WaitCtx()
            args = make(ctx)
            try:
                status, h, _ = b.start_job(None, ctx, job, args)
            except pa.WaitCtxClosedError:
                pass
            else:
                gc.set_threshold(700)
                if ctx.closed:  # the close came after the job had the ctx: it must be refused
                    raise AssertionError("ctx closed under a running job")
                assert b.start_job(h, None, None) == (pa.FINISH, None, 1)
                ctx.close()
            gc.set_threshold(700)
            assert ctx.closed
        assert b.start_job(None, None, lambda a: 2) == (pa.FINISH, None, 2)
        print("ok", ran)
        """,
        check=False,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
