"""Faults (issue 7, item 2): signals, MemoryError and RecursionError in jobs, failing
cleanup functions, threads that exit with paused jobs, fork(), interpreter exit.

Each scenario runs in a child interpreter (``run_isolated``: faulthandler on, a crash
fails the test with the child's native traceback) and checks, besides its own
outcome, that the backend still works afterwards. What is already covered elsewhere
is not repeated: GC'd paused jobs and atexit unwinding (test_cancel), interrupted
handoffs of the python backend (test_python_backend), fork inside a job
(test_fork), a paused job across fork (test_openssl_native).
"""


from __future__ import annotations

import json
from typing import Any, Dict

import pytest

import pyossl_async as pa

from .conftest import run_isolated

NAMES = ["openssl", "python"]


def _require(name: str) -> None:
    if name not in pa.available_backends():
        pytest.skip(f"{name} unavailable")


def _result(proc: Any) -> Dict[str, Any]:
    """The JSON line a child prints last."""
    last = proc.stdout.strip().splitlines()[-1]
    out: Dict[str, Any] = json.loads(last)
    return out


NO_MEMORY = """
import json, resource
import pyossl_async as pa

b = pa.get_backend(NAME)
b.start_job(None, None, lambda a: 0)  # the thread's machinery exists
with open("/proc/self/statm") as f:
    size = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (size + (64 << 20), resource.RLIM_INFINITY))
ctx = b.WaitCtx()
handles, status = [], None
for _ in range(100_000):
    status, h, _ = b.start_job(None, ctx, lambda a: b.pause_job() and 5)
    if status != pa.PAUSE:
        break
    handles.append(h)
resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
results = {b.start_job(h, None, None)[2] for h in handles}
again = b.start_job(None, ctx, lambda a: b.pause_job() and 6)
b.start_job(again[1], None, None)
ctx.close()
print(json.dumps({"status": int(status), "paused": len(handles), "results": sorted(results),
                  "again": int(again[0])}))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("stack_mode", ["", "nested", "openssl"])
def test_no_memory_for_another_job_is_no_jobs(name: str, stack_mode: str) -> None:
    """With the address space exhausted, a new job is ``NO_JOBS`` (as in C), never a crash.

    Before, the openssl backend on 3.0/3.1 (our own nested stacks) raised the
    MemoryError of its ``mmap`` instead, where OpenSSL 3.2+ (its allocator calls
    ours) and the python backend (no thread to start) returned ``NO_JOBS``.
    """
    _require(name)
    env = {}
    if stack_mode:
        from .test_openssl_native import ALT_LIBCRYPTO

        if name != "openssl":
            pytest.skip("stack modes are the openssl backend's")
        if stack_mode == "openssl" and not ALT_LIBCRYPTO:
            pytest.skip("set PYOSSL_ASYNC_TEST_ALT_LIBCRYPTO to an OpenSSL 3.2+ libcrypto (.ci/run does)")
        env["PYOSSL_ASYNC_STACK_MODE"] = stack_mode
        if ALT_LIBCRYPTO:
            env["PYOSSL_ASYNC_LIBCRYPTO"] = ALT_LIBCRYPTO
    out = _result(run_isolated(NO_MEMORY.replace("NAME", repr(name)), env=env, timeout=240))
    assert out["status"] == int(pa.NO_JOBS) and out["paused"] > 0, out
    assert out["results"] == [5] and out["again"] == int(pa.PAUSE), out


@pytest.mark.subprocess
@pytest.mark.parametrize("name", NAMES)
def test_interpreter_exit_unwinds_the_main_threads_paused_jobs(name: str) -> None:
    """At exit the main thread's paused jobs are unwound (``finally`` runs), one whose
    unwinding raises is reported and the others still run, one that holds its own
    handle is unwound too, and a WaitCtx never closed is closed when collected, its
    cleanup functions run, however late in shutdown. No hang, no crash.

    Found here: the context's cleanup functions never ran at exit (its finaliser
    ran after module globals were cleared and gave up), and reporting the failed
    unwinding kept every job's records, and their contexts, alive for good.
    """
    _require(name)
    proc = run_isolated(
        f"""
        import os
        import pyossl_async as pa
        b = pa.get_backend({name!r})
        def job(arg):
            try:
                b.pause_job()
            finally:
                print("finally", arg, flush=True)
                if arg == "raises":
                    raise OSError("unwinding failed")
            return 0
        def selfish(arg):
            me = b.get_current_job()  # keeps itself alive
            try:
                b.pause_job()
            finally:
                print("finally selfish", me.state, flush=True)
            return 0
        ctx = b.WaitCtx()  # never closed
        def cleanup(c, k, fd, d, write=os.write):  # no builtins: they may be gone by then
            write(1, b"cleanup %d\\n" % fd)
        ctx.set_wait_fd("k", 1, None, cleanup)
        keep = [b.start_job(None, ctx, job, a)[1] for a in ("a", "raises", "b")]
        b.start_job(None, ctx, selfish)
        print("exiting", flush=True)
        """,
        args=("-X", "dev"),
    )
    assert proc.stdout.splitlines() == [
        "exiting",
        "finally a",
        "finally raises",
        "finally b",
        "finally selfish running",
        "cleanup 1",
    ], proc.stdout
    assert "OSError: unwinding failed" in proc.stderr
    assert "Fatal" not in proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("name", NAMES)
def test_interpreter_exit_reports_paused_jobs_of_daemon_threads(name: str) -> None:
    """A daemon thread still running at exit can never resume its paused jobs, and no
    other thread may: a ResourceWarning says their ``finally`` blocks will not run.
    Before, they were dropped without a word."""
    _require(name)
    proc = run_isolated(
        f"""
        import threading
        import pyossl_async as pa
        b = pa.get_backend({name!r})
        def job(arg):
            try:
                b.pause_job()
            finally:
                print("finally", arg, flush=True)
            return 0
        ready = threading.Event()
        def daemon():
            ctx = b.WaitCtx()
            keep = [b.start_job(None, ctx, job, "daemon")[1] for _ in range(2)]
            ready.set()
            threading.Event().wait()
        threading.Thread(target=daemon, daemon=True).start()
        ready.wait()
        keep = b.start_job(None, b.WaitCtx(), job, "main")[1]
        print("exiting", flush=True)
        """,
        args=("-X", "dev"),
    )
    assert proc.stdout.splitlines() == ["exiting", "finally main"], proc.stdout
    assert f"interpreter exit: 2 paused {name} job(s) of threads still running" in proc.stderr, proc.stderr
    assert "Fatal" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
