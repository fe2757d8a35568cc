"""Regression tests for bugs the API fuzzer and the fault tests found (issue 7).

Each test names the bug it guards against; the fix is in the commit that added it.
"""

from __future__ import annotations

import pytest

import pyossl_async as pa

from .conftest import load_backend, run_isolated


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


@pytest.mark.subprocess
def test_threads_that_ran_jobs_leave_nothing_behind_when_they_exit() -> None:
    """Found by the soak script: every thread that ran an openssl-backend job leaked 4
    memory blocks on exit (3.9-3.12). Its stacks are unmapped from the thread's exit
    finaliser, and a ``use_errno`` ctypes call there re-created the thread state's
    dict CPython had just cleared."""
    if "openssl" not in pa.available_backends():
        pytest.skip("the openssl backend is unavailable")
    proc = run_isolated(
        """
        import gc, sys, threading
        import pyossl_async as pa
        b = pa.get_backend("openssl")
        def job(arg):
            b.pause_job()
            return 0
        def worker():
            with b.WaitCtx() as ctx:
                h = b.start_job(None, ctx, job)[1]
                b.start_job(h, None, None)
        def threads(n):
            for _ in range(n):
                t = threading.Thread(target=worker)
                t.start()
                t.join()
        threads(50)
        gc.collect()
        before = sys.getallocatedblocks()
        threads(400)
        gc.collect()
        print((sys.getallocatedblocks() - before) / 400)
        """
    )
    assert float(proc.stdout) < 1.0, proc.stdout  # 4.0 before the fix


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
