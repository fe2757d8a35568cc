"""Threads that ran jobs and exit: what they leave behind, and what a later thread
given the same ident must not touch. Each runs in a child interpreter: these were crashes
and leaks."""

from __future__ import annotations

import pytest

import pyossl_async as pa

from .conftest import load_backend, run_isolated


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_orphaned_job_survives_a_thread_that_reuses_its_ident(name: str) -> None:
    """A thread exits with a paused job; the next thread gets the same ident, runs jobs and cleans up.

    Found by the conformance suite's thread scenarios running after
    ``test_cancel.py``'s orphaned job: with OpenSSL 3.2+ (``ASYNC_set_mem_functions``
    stacks), the openssl backend kept job stacks per ``threading.get_ident()``, so
    the second thread's ``cleanup_thread()`` unmapped the orphaned job's stack too.
    Its thread state's frames then point into unmapped memory, and anything that
    walks every thread's frames crashes: ``sys._current_frames()`` on 3.11+,
    ``sys.settrace`` (instrumentation of all executing code) on 3.12+. The
    contract says the orphaned job's resources are leaked, not freed under it.
    """
    load_backend(name)
    proc = run_isolated(
        f"""
        import gc, sys, threading, warnings
        warnings.simplefilter("ignore")
        import pyossl_async as pa
        be = pa.get_backend({name!r})
        box, idents = [], []

        def orphan():
            idents.append(threading.get_ident())
            ctx = be.WaitCtx()
            box.append(ctx)
            box.append(be.start_job(None, ctx, lambda arg: be.pause_job() and 0)[1])

        def other():
            idents.append(threading.get_ident())
            with be.WaitCtx() as ctx:
                _, job, _ = be.start_job(None, ctx, lambda arg: be.pause_job() and 2)
                be.start_job(job, None, None)
            be.cleanup_thread()

        # Whether the freed stack is mapped again before the frames are walked
        # varies from run to run: several rounds make the crash all but certain.
        for _ in range(8):
            for target in (orphan, other):
                t = threading.Thread(target=target)
                t.start()
                t.join()
                gc.collect()
            assert len(sys._current_frames()) >= 1
            sys.settrace(lambda frame, event, arg: None)
            with be.WaitCtx() as ctx:
                _, job, _ = be.start_job(None, ctx, lambda arg: be.pause_job() and 3)
                result = be.start_job(job, None, None)
            sys.settrace(None)
        print("result", result[2], "orphans", sorted({{j.state for j in box[1::2]}}), flush=True)
        """,
        check=False,
    )
    assert proc.returncode == 0, f"child exited with {proc.returncode}\n{proc.stderr[-3000:]}"
    assert proc.stdout.split() == ["result", "3", "orphans", "['paused']"], proc.stdout


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
