"""fork() around jobs: the child never touches thread states CPython deleted."""

from __future__ import annotations

import pytest

from .conftest import VARIANTS, run_isolated, variant


@pytest.mark.subprocess
@pytest.mark.parametrize("variant_name", VARIANTS)
def test_fork_inside_a_job(variant_name: str) -> None:
    name, env = variant(variant_name)
    proc = run_isolated(
        f"""
        import os
        import pyossl_async as pa
        b = pa.get_backend({name!r})
        def job(arg):
            b.pause_job()
            pid = os.fork()
            if pid == 0:
                # the child has no caller to return to: pausing does nothing and the
                # child ends when this function returns
                print("child pause", b.pause_job(), flush=True)
                return 5
            _, status = os.waitpid(pid, 0)
            print("child status", status, flush=True)
            return 1
        with b.WaitCtx() as ctx:
            _, j, _ = b.start_job(None, ctx, job)
            print("parent", tuple(b.start_job(j, None, None)), flush=True)
        """,
        env=env,
    )
    assert proc.stdout.splitlines() == [
        "child pause True",
        "child status 0",
        "parent (<Status.FINISH: 3>, None, 1)",
    ]


@pytest.mark.subprocess
def test_fork_while_other_threads_hold_pooled_thread_states() -> None:
    """The child deletes other threads' states; our thread-exit hook must not free them again."""
    proc = run_isolated(
        """
        import os, threading
        import pyossl_async as pa
        ready, done = threading.Event(), threading.Event()
        def worker(b):
            with b.WaitCtx() as ctx:
                hs = [b.start_job(None, ctx, lambda a: b.pause_job() and 0)[1] for _ in range(5)]
                for h in hs:
                    b.start_job(h, None, None)  # pooled thread states and stacks remain
            ready.set()
            done.wait()
        backends = [pa.get_backend(n) for n in pa.available_backends()]
        threads = [threading.Thread(target=worker, args=(b,)) for b in backends]
        for t in threads:
            t.start()
            ready.wait(); ready.clear()
        pid = os.fork()
        if pid == 0:
            for b in backends:
                assert b.start_job(None, None, lambda a: 7) == (pa.FINISH, None, 7)
                with b.WaitCtx() as ctx:
                    _, h, _ = b.start_job(None, ctx, lambda a: b.pause_job() and 0)
                    assert b.start_job(h, None, None) == (pa.FINISH, None, 0)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        done.set()
        for t in threads:
            t.join()
        print("child status", status)
        """
    )
    assert proc.stdout.strip() == "child status 0"
