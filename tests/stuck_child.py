"""The child side of ``tests/test_stuck_jobs.py``: jobs stuck inside C code, one scenario per run.

Run by the tests in a fresh interpreter (a hang or a crash there fails a test, not
the run); also by hand::

    python tests/stuck_child.py give-up '{"driver": "asyncio", "path": "callback", "how": "cancel"}'
    PYOSSL_ASYNC_CLOSE_TIMEOUT=1.5 python tests/stuck_child.py exit '{"jobs": 4}'

Each scenario uses the pause engine (``PauseEngine.op(1, ready=...)``), whose
operation never completes (``"never"``) or completes from a helper thread after
``delay`` seconds (``"later"``), on the wait-fd path or the callback path.

* ``give-up``: a driver gives up on such a job (its ``timeout``, ``asyncio.wait_for``,
  a cancelled task or trio scope), then the program collects garbage and goes on
  making library calls. Prints one ``RESULT {json}`` line: how long the call took,
  the resumes (the engine's pause counter) and CPU time it used, what it raised,
  what was reported (``sys.unraisablehook``, the event loop's exception handler),
  how long the collection took, whether the job was then unwound.
* ``collect``: the program drops the handle of such a job (``cycle``: in a reference
  cycle) and collects; prints how long that took and what became of the job.
* ``exit``: ``jobs`` stuck jobs held by the program, one given up by ``run_job``, one
  by a cancelled ``aio.run_job``; the process exits. Prints how long the library's
  exit hook took (an ``atexit`` function registered first runs last).
* ``exit-later``: one job given up on, one held, whose engines complete 0.3 s later,
  while the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import sys
import time
from typing import Any, Dict, List

_started = [0.0]


def _exit_report() -> None:
    if _started[0]:
        print(f"exit hooks took {time.monotonic() - _started[0]:.2f} s", flush=True)


# registered before the library is imported: runs after the library's exit hook
atexit.register(_exit_report)

import pyossl_async as pa  # noqa: E402
from pyossl_async import aio  # noqa: E402
from pyossl_async.testing import PauseEngine  # noqa: E402

backend = pa.get_backend("openssl")
engine = PauseEngine.load(backend)


def give_up(driver: str, path: str, how: str, ready: str = "never", delay: float = 0.0, close: float = 0.3) -> None:
    pa.run_job(lambda a: 0, backend=backend)  # this thread's callback pipe exists from here on
    reports: List[str] = []
    sys.unraisablehook = lambda args: reports.append(f"{args.err_msg}: {args.exc_value!r}")
    log: List[str] = []

    def job(arg: Any) -> None:
        try:
            engine.op(1, path=path, ready=ready, delay=delay)
            log.append("returned")
        finally:
            log.append("finally")

    async def aio_main() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: reports.append(f"loop: {context['message']}: {context.get('exception')!r}")
        )
        if how == "timeout":
            await aio.run_job(job, backend=backend, timeout=0.05, close_timeout=close)
        elif how == "wait_for":
            await asyncio.wait_for(aio.run_job(job, backend=backend, close_timeout=close), 0.05)
        else:
            task = asyncio.ensure_future(aio.run_job(job, backend=backend, close_timeout=close))
            await asyncio.sleep(0.05)
            task.cancel()
            await task

    async def trio_main() -> None:
        import trio

        from pyossl_async import trio as pa_trio

        if how == "timeout":
            await pa_trio.run_job(job, backend=backend, timeout=0.05, close_timeout=close)
        else:
            with trio.move_on_after(0.05):
                await pa_trio.run_job(job, backend=backend, close_timeout=close)
            raise RuntimeError("cancelled")

    fds = engine.stats()["fds_open"]
    pauses, cpu, start = engine.stats()["pauses"], time.process_time(), time.monotonic()
    exc = None
    try:
        if driver == "blocking":
            pa.run_job(job, backend=backend, timeout=0.05, close_timeout=close)
        elif driver == "trio":
            import trio

            trio.run(trio_main)
        else:
            if driver == "uvloop":
                import uvloop

                loop = uvloop.new_event_loop()
            else:
                loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(aio_main())
            finally:
                loop.close()
    except BaseException as caught:  # noqa: BLE001 - what the driver raised is the result
        exc = caught
    out: Dict[str, Any] = {
        "elapsed": time.monotonic() - start,
        "cpu": time.process_time() - cpu,
        "resumes": engine.stats()["pauses"] - pauses - 1,  # (the first pause is the start's)
        "exc": type(exc).__name__,
        "message": str(exc),
        "cause": repr(exc.__cause__) if exc is not None else None,
        "kept": len(backend._paused_records()),  # type: ignore[attr-defined]
        "log_at_give_up": list(log),
    }
    del exc
    start = time.monotonic()
    gc.collect()
    junk = [[i] for i in range(200000)]  # ordinary code: collections happen
    del junk
    out["gc"] = time.monotonic() - start
    if ready == "never":
        engine.release_never()
    deadline = time.monotonic() + 60
    while "finally" not in log and time.monotonic() < deadline:
        time.sleep(0.005)
        backend.start_job(None, None, lambda a: 0)  # the thread's next library calls
    out["log"] = log
    out["left"] = len(backend._paused_records())  # type: ignore[attr-defined]
    engine.quiesce(10)
    out["fds_back"] = engine.stats()["fds_open"] == fds
    out["reports"] = reports
    print("RESULT " + json.dumps(out), flush=True)


def collect(path: str, cycle: bool) -> None:
    import warnings

    warnings.simplefilter("ignore", ResourceWarning)
    log: List[str] = []

    def job(arg: Any) -> None:
        try:
            engine.op(1, path=path, ready="never")
        finally:
            log.append("finally")

    ctx = backend.WaitCtx()
    if path == "callback":
        ctx.set_callback(lambda arg: 1)
    handle = backend.start_job(None, ctx, job)[1]
    if cycle:
        loop: List[Any] = [handle]
        loop.append(loop)
        del loop
    start = time.monotonic()
    del handle
    gc.collect()
    kept = len(backend._paused_records())  # type: ignore[attr-defined]
    print("collected in", time.monotonic() - start, "kept", kept, log, flush=True)
    try:
        ctx.close()
    except pa.JobStateError as exc:
        print("close refused:", exc, flush=True)
    engine.release_never()
    deadline = time.monotonic() + 60
    while "finally" not in log and time.monotonic() < deadline:
        time.sleep(0.005)
        backend.start_job(None, None, lambda a: 0)
    ctx.close()
    print("unwound", log, "left", len(backend._paused_records()), flush=True)  # type: ignore[attr-defined]


def _report_finally(path: str, ready: str, delay: float = 0.0) -> None:
    try:
        engine.op(1, path=path, ready=ready, delay=delay)
    finally:
        print("finally ran", path, flush=True)


kept: List[Any] = []  # what the program holds until it exits


def exit_stuck(jobs: int) -> None:
    for i in range(jobs):
        path = ("fd", "callback")[i % 2]
        ctx = backend.WaitCtx()
        if path == "callback":
            ctx.set_callback(lambda arg: 1)
        kept.append((ctx, backend.start_job(None, ctx, lambda p: _report_finally(p, "never"), path)[1]))
    try:  # given up on: kept by the library
        pa.run_job(lambda p: _report_finally(p, "never"), "callback", backend=backend, timeout=0.01, close_timeout=0.05)
    except TimeoutError:
        pass

    async def cancelled() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda loop, context: print("reported:", context["message"], flush=True)
        )
        job = aio.run_job(lambda p: _report_finally(p, "never"), "fd", backend=backend, close_timeout=0.05)
        await asyncio.wait_for(job, 0.01)

    try:
        asyncio.run(cancelled())
    except asyncio.TimeoutError:
        pass
    print("exiting with", len(backend._paused_records()), "paused", flush=True)  # type: ignore[attr-defined]
    _started[0] = time.monotonic()


def exit_later() -> None:
    try:
        pa.run_job(
            lambda p: _report_finally(p, "later", 0.3), "callback", backend=backend, timeout=0.01, close_timeout=0.05
        )
    except TimeoutError:
        pass
    ctx = backend.WaitCtx()
    kept.append((ctx, backend.start_job(None, ctx, lambda p: _report_finally(p, "later", 0.3), "fd")[1]))
    print("exiting", flush=True)


SCENARIOS = {"give-up": give_up, "collect": collect, "exit": exit_stuck, "exit-later": exit_later}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](**json.loads(sys.argv[2] if len(sys.argv) > 2 else "{}"))
