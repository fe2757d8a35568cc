"""Jobs paused inside C code by a real engine: run, close, collect, time out, cancel, exit.

The pause engine (``pyossl_async.testing.PauseEngine``) pauses jobs from C as
async engines do, on the fd path (a pipe with C custom data and a C cleanup) or
the callback path (status OK, callback called, no fd). These are the openssl
backend's own: a python-backend job has no C code to pause in.
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
import threading
import time
from typing import Any, Callable, Iterator, List

import pytest

import pyossl_async as pa
from pyossl_async import _settings, aio
from pyossl_async.backends import _keeper
from pyossl_async.testing import EngineUnavailable, PauseEngine

from ._drivers import HANG, kept_none_left, open_fds, run_async
from .conftest import REQUIRED, run_isolated

PATHS = ["fd", "callback"]


@pytest.fixture(scope="module")
def engine_mod() -> PauseEngine:
    try:
        backend = pa.get_backend("openssl")
        return PauseEngine.load(backend)
    except (pa.BackendUnavailable, EngineUnavailable) as exc:
        if "openssl" in REQUIRED:
            pytest.fail(f"the pause engine is required: {exc}")
        pytest.skip(f"the pause engine is unavailable: {exc}")


@pytest.fixture
def engine(engine_mod: PauseEngine, openssl: pa.Backend) -> Iterator[PauseEngine]:
    """The engine; checks it left no helper thread or fd behind, nor the test any paused job."""
    engine_mod.release_never(False)
    pa.run_job(lambda a: 0, backend=openssl)  # the thread's callback pipe exists from here on
    _keeper._WATCHER._start()  # and the keeper's (the first job kept in the process starts it)
    fds = open_fds()
    held = engine_mod.stats()["fds_open"]
    yield engine_mod
    engine_mod.release_never(True)  # whatever a failing test left stuck can end
    assert engine_mod.quiesce(10)
    gc.collect()
    assert kept_none_left(), "the library still keeps a job"
    assert engine_mod.stats()["fds_open"] == held, "the engine's pipes were not all cleaned up"
    assert open_fds() == fds
    thread = openssl._threads.get(threading.get_ident())  # type: ignore[attr-defined]
    assert thread is None or not thread.paused
    engine_mod.release_never(False)


def _with_callback(ctx: Any, path: str) -> None:
    """The callback path needs a callback on the context (a plain Python one here)."""
    if path == "callback":
        ctx.set_callback(lambda arg: 1)


# -- running ----------------------------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_one_job_paused_in_c_runs_to_the_end(openssl: pa.Backend, engine: PauseEngine, path: str) -> None:
    before = engine.stats()

    def job(arg: Any) -> int:
        return engine.op(3, path=path)

    with openssl.WaitCtx() as ctx:
        _with_callback(ctx, path)
        status, handle, _ = openssl.start_job(None, ctx, job)
        resumes = 0
        while status == pa.PAUSE:
            if path == "fd":
                assert len(ctx.get_all_fds()) == 1  # the engine's pipe, set from C
            else:
                assert ctx.get_all_fds() == [] and ctx.get_status() == pa.WaitStatus.OK
            resumes += 1
            status, handle, ret = openssl.start_job(handle, ctx, None)
        assert (status, ret, resumes) == (pa.FINISH, 3, 3)
    after = engine.stats()
    assert after["pauses"] - before["pauses"] == 3
    # the fd path's pipe was the context's: its C cleanup ran when the context was freed
    assert after["cleanups"] - before["cleanups"] == (1 if path == "fd" else 0)


def test_two_hundred_jobs_paused_in_c_resumed_in_random_order(openssl: pa.Backend, engine: PauseEngine) -> None:
    rng = random.Random(11)
    ctxs = [openssl.WaitCtx() for _ in range(200)]
    try:
        paused = {}
        for i, ctx in enumerate(ctxs):
            status, handle, _ = openssl.start_job(None, ctx, lambda i: i + engine.op(4, path="fd"), i)
            assert status == pa.PAUSE
            paused[i] = handle
        results = {}
        while paused:
            i = rng.choice(list(paused))
            status, handle, ret = openssl.start_job(paused[i], ctxs[i], None)
            if status == pa.FINISH:
                results[i] = ret
                del paused[i]
        assert results == {i: i + 4 for i in range(200)}
    finally:
        for ctx in ctxs:
            ctx.close()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("driver", ["blocking", "asyncio"])
def test_drivers_run_jobs_paused_in_c(openssl: pa.Backend, engine: PauseEngine, driver: str, path: str) -> None:
    def job(i: int) -> int:
        return i + engine.op(2, path=path, ready="later" if i % 3 == 0 else "now", delay=0.002)

    if driver == "blocking":
        assert [pa.run_job(job, i, backend=openssl, timeout=HANG) for i in range(30)] == [i + 2 for i in range(30)]
    else:

        async def main() -> List[int]:
            return await asyncio.gather(*(aio.run_job(job, i, backend=openssl) for i in range(300)))

        assert run_async("asyncio", main) == [i + 2 for i in range(300)]


# -- closing ------------------------------------------------------------------------


def _unwinding_job(engine: PauseEngine, log: List[str], **op: Any) -> Callable[[Any], int]:
    def job(arg: Any) -> int:
        try:
            for i in range(1000):
                engine.op(3, **op)
                log.append(f"op {i}")
            return 1
        except pa.JobCancelled:
            log.append("cancelled")
            raise
        finally:
            log.append("finally")

    return job


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("ready", ["now", "later"])
def test_close_raises_jobcancelled_at_the_first_python_line(
    openssl: pa.Backend, engine: PauseEngine, path: str, ready: str
) -> None:
    log: List[str] = []
    with openssl.WaitCtx() as ctx:
        _with_callback(ctx, path)
        job = _unwinding_job(engine, log, path=path, ready=ready, delay=0.01)
        status, handle, _ = openssl.start_job(None, ctx, job)
        assert status == pa.PAUSE and log == []
        pauses = engine.stats()["pauses"]
        handle.close()  # type: ignore[union-attr]
        assert handle.state == "finished"  # type: ignore[union-attr]
        # the first op had 3 waits: its C code was resumed through the remaining two
        # (waiting for the engine each time), then JobCancelled came before any other line
        assert log == ["cancelled", "finally"]
        assert engine.stats()["pauses"] - pauses >= 2
    # closing the context ran the engine's C cleanup


def test_close_with_a_python_callback_on_the_context_is_quiet(openssl: pa.Backend, engine: PauseEngine) -> None:
    """The engine calls the context's callback inside the job; JobCancelled must not land in it."""
    calls: List[Any] = []
    hooked: List[Any] = []
    previous = sys.unraisablehook
    sys.unraisablehook = hooked.append
    try:
        with openssl.WaitCtx() as ctx:
            ctx.set_callback(calls.append, "mine")
            log: List[str] = []
            _, handle, _ = openssl.start_job(None, ctx, _unwinding_job(engine, log, path="callback"))
            handle.close()  # type: ignore[union-attr]
            assert log == ["cancelled", "finally"]
            assert ctx.get_callback() == (calls.append, "mine")  # given back
    finally:
        sys.unraisablehook = previous
    assert hooked == []
    assert calls and set(calls) == {"mine"}  # chained while the close waited


def test_close_holding_the_gil(openssl: pa.Backend, engine: PauseEngine) -> None:
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            while True:
                engine.op_holding_gil(2, path="fd")
                log.append("op")
        finally:
            log.append("finally")

    with openssl.WaitCtx() as ctx:
        _, handle, _ = openssl.start_job(None, ctx, job)
        for _ in range(2):
            status, handle, _ = openssl.start_job(handle, ctx, None)
            assert status == pa.PAUSE
        assert log == ["op"]
        handle.close()  # type: ignore[union-attr]
        assert log == ["op", "finally"]


def test_pausing_again_in_c_while_unwinding_gets_jobcancelled_again(openssl: pa.Backend, engine: PauseEngine) -> None:
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            engine.op(1, path="fd")
        except pa.JobCancelled:
            log.append("cancelled")
            try:
                engine.op(2, path="fd", ready="later", delay=0.01)  # cleanup that pauses in C
                log.append("not reached")
            except pa.JobCancelled:
                log.append("cancelled again")
            engine.op(0, path="fd")  # C code that does not pause: nothing is raised
            log.append("returned normally")
        return 5

    with openssl.WaitCtx() as ctx:
        _, handle, _ = openssl.start_job(None, ctx, job)
        handle.close()  # type: ignore[union-attr]
    assert log == ["cancelled", "cancelled again", "returned normally"]


def test_a_close_that_times_out_leaves_the_job_paused_and_closable(openssl: pa.Backend, engine: PauseEngine) -> None:
    log: List[str] = []
    with openssl.WaitCtx() as ctx:
        _, handle, _ = openssl.start_job(None, ctx, _unwinding_job(engine, log, path="fd", ready="never"))
        assert handle is not None
        with pytest.raises(pa.AsyncError, match=r"did not finish unwinding within 0\.2 s"):
            handle.close(timeout=0.2)
        assert handle.state == "paused" and log == []
        # not cancelled any more: a plain resume goes on in C, it does not raise JobCancelled
        status, handle, _ = openssl.start_job(handle, ctx, None)
        assert status == pa.PAUSE and log == []
        engine.release_never()
        status, handle, _ = openssl.start_job(handle, ctx, None)  # the stuck wait passes
        assert status == pa.PAUSE
        handle.close(timeout=5)  # type: ignore[union-attr]
        assert log == ["cancelled", "finally"]


def test_bad_close_timeouts(openssl: pa.Backend, engine: PauseEngine) -> None:
    with openssl.WaitCtx() as ctx:
        _, handle, _ = openssl.start_job(None, ctx, lambda a: engine.op(1, path="fd"))
        assert handle is not None
        for bad, error in (("1", TypeError), (-1, ValueError), (float("nan"), ValueError)):
            with pytest.raises(error):
                handle.close(timeout=bad)  # type: ignore[arg-type]
        assert handle.state == "paused"
        handle.close()


@pytest.mark.parametrize("path", PATHS)
def test_dropping_the_last_handle_unwinds_it(openssl: pa.Backend, engine: PauseEngine, path: str) -> None:
    """An engine that completes before pausing (dasync): the collection unwinds the job."""
    log: List[str] = []
    ctx = openssl.WaitCtx()
    _with_callback(ctx, path)
    _, handle, _ = openssl.start_job(None, ctx, _unwinding_job(engine, log, path=path, ready="now"))
    with pytest.warns(ResourceWarning, match="garbage collected"):
        del handle
        gc.collect()
    assert log == ["cancelled", "finally"]
    ctx.close()  # no job uses it any more


@pytest.mark.parametrize("path", PATHS)
def test_a_collection_does_not_wait_for_the_engine_the_library_unwinds_the_job_later(
    openssl: pa.Backend, engine: PauseEngine, path: str
) -> None:
    """An engine that completes later: the collection does not wait for it; the job is kept
    and unwound at this thread's library calls once its engine has signalled."""
    log: List[str] = []
    ctx = openssl.WaitCtx()
    _with_callback(ctx, path)
    _, handle, _ = openssl.start_job(None, ctx, _unwinding_job(engine, log, path=path, ready="later", delay=0.005))
    with pytest.warns(ResourceWarning, match="garbage collected"):
        del handle
        gc.collect()
    assert log == [] and len(openssl._paused_records()) == 1  # type: ignore[attr-defined]
    _until_unwound(openssl, log)
    assert log == ["cancelled", "finally"]
    ctx.close()  # no job uses it any more


def _until_unwound(backend: pa.Backend, log: List[str]) -> None:
    """Make library calls until the kept job's ``finally`` ran (each call tries it again once its
    engine signalled); fail instead of hanging."""
    deadline = time.monotonic() + HANG
    while "finally" not in log and time.monotonic() < deadline:
        time.sleep(0.002)
        backend.start_job(None, None, lambda a: 0)  # any library call of this thread
    assert "finally" in log, "the kept job was never unwound"


# -- drivers: timeouts, fairness, cancellation ----------------------------------------


@pytest.mark.parametrize("path", PATHS)
def test_run_job_timeout_counts_every_pause(openssl: pa.Backend, engine: PauseEngine, path: str) -> None:
    """The engine is ready at every pause (fd readable, or callback called before it)."""
    done = [0]
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            for _ in range(10**7):
                engine.op(1, path=path)
                done[0] += 1
            return 1
        finally:
            log.append("finally")

    with pytest.raises(TimeoutError):
        pa.run_job(job, backend=openssl, timeout=0.05)
    assert log == ["finally"] and 0 < done[0] < 10**7


@pytest.mark.parametrize("path", PATHS)
def test_aio_gives_the_loop_a_turn_between_resumes(openssl: pa.Backend, engine: PauseEngine, path: str) -> None:
    order: List[int] = []
    ticks = [0]

    def job(n: int) -> int:
        for _ in range(150):
            engine.op(1, path=path)
            order.append(n)
        return n

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            ticks[0] += 1
            await asyncio.sleep(0)

    async def main() -> None:
        stop = asyncio.Event()
        tick = asyncio.ensure_future(ticker(stop))
        both = await asyncio.gather(aio.run_job(job, 1, backend=openssl), aio.run_job(job, 2, backend=openssl))
        assert both == [1, 2]
        stop.set()
        await tick

    run_async("asyncio", main)
    switches = sum(1 for a, b in zip(order, order[1:]) if a != b)
    assert switches >= 100, f"the two jobs ran back to back ({switches} switches)"
    # a loop iteration serves both jobs' wake-ups at once: a turn per two pauses
    assert ticks[0] >= 100, f"the loop got {ticks[0]} turns in 300 pauses"


@pytest.mark.parametrize("path", PATHS)
def test_wait_for_unwinds_a_job_paused_in_c_without_blocking_the_loop(
    openssl: pa.Backend, engine: PauseEngine, path: str
) -> None:
    log: List[str] = []
    reported: List[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        ticks = [0]

        async def ticker() -> None:
            while True:
                ticks[0] += 1
                await asyncio.sleep(0.001)

        tick = asyncio.ensure_future(ticker())
        job = _unwinding_job(engine, log, path=path, ready="later", delay=0.02)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.run_job(job, backend=openssl), 0.05)
        # the job's finally ran before wait_for gave up, and the loop went on meanwhile
        assert log[-2:] == ["cancelled", "finally"]
        assert ticks[0] > 3
        tick.cancel()

    run_async("asyncio", main)
    assert reported == []


def test_a_second_cancel_does_not_cut_the_unwinding_short(openssl: pa.Backend, engine: PauseEngine) -> None:
    log: List[str] = []

    async def main() -> None:
        task = asyncio.ensure_future(
            aio.run_job(_unwinding_job(engine, log, path="callback", ready="later", delay=0.03), backend=openssl)
        )
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert log[-2:] == ["cancelled", "finally"]

    run_async("asyncio", main)


def test_aio_close_timeout_reports_and_leaves_the_job_paused(openssl: pa.Backend, engine: PauseEngine) -> None:
    log: List[str] = []
    reported: List[Any] = []
    jobs: List[Any] = []

    def job(arg: Any) -> int:
        jobs.append(pa.get_current_job())
        return _unwinding_job(engine, log, path="callback", ready="never")(arg)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        task = asyncio.ensure_future(aio.run_job(job, backend=openssl, close_timeout=0.1))
        await asyncio.sleep(0.02)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run_async("asyncio", main)
    assert log == [] and jobs[0].state == "paused"
    assert len(reported) == 1 and isinstance(reported[0]["exception"], pa.AsyncError)
    engine.release_never()
    jobs[0].close()
    assert log == ["cancelled", "finally"]


# -- exit and GIL-holding callers (child interpreters) ---------------------------------

EXIT = """
import sys, pyossl_async as pa
from pyossl_async.testing import PauseEngine
b = pa.get_backend("openssl")
e = PauseEngine.load(b)
def job(arg):
    try:
        while True:
            e.op(2, path=arg, ready="later", delay=0.005)
    finally:
        print("finally", arg, flush=True)
ctxs = []
for path in ("fd", "callback"):
    ctx = b.WaitCtx()
    if path == "callback":
        ctx.set_callback(lambda a: 1)
    ctxs.append(ctx)
    kept = b.start_job(None, ctx, job, path)[1]
    globals()["kept_" + path] = kept
print("exiting", flush=True)
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["plain", "dev"])
def test_interpreter_exit_unwinds_jobs_paused_in_c(engine: PauseEngine, mode: str) -> None:
    args = ("-X", "dev", "-W", "ignore") if mode == "dev" else ("-W", "ignore")
    env = {"PYTHONMALLOC": "debug"} if mode == "dev" else {}
    proc = run_isolated(EXIT, args=args, env=env)
    lines = proc.stdout.split()
    assert proc.stdout.count("finally") == 2, proc.stdout + proc.stderr
    assert "exiting" in lines
    assert "Fatal" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


HASHLIB = """
import asyncio, hashlib, threading, sys
import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.testing import PauseEngine
b = pa.get_backend("openssl")
e = PauseEngine.load(b)
EXPECTED = {data: hashlib.sha256(data).hexdigest() for data in (b"x" * 100, b"y")}  # before the engine
e.install_digests(1, path=PATH)
assert hashlib.sha256(b"x" * 100).hexdigest() == EXPECTED[b"x" * 100]  # outside a job: no pause

def job(arg):
    # _hashlib keeps the GIL while libcrypto pauses
    return int(hashlib.sha256(arg).hexdigest() == EXPECTED[arg])

before = e.stats()["pauses"]
assert pa.run_job(job, b"x" * 100, backend=b, timeout=30) == 1
async def main():
    return await asyncio.gather(*(aio.run_job(job, b"x" * 100, backend=b) for _ in range(50)))
assert asyncio.run(main()) == [1] * 50
assert e.stats()["pauses"] - before >= 51 * 2, e.stats()

# another thread runs Python while a job is paused holding the GIL in C
ticks = []
stop = threading.Event()
t = threading.Thread(target=lambda: [ticks.append(1) for _ in iter(stop.is_set, True)])
with b.WaitCtx() as ctx:
    status, j, _ = b.start_job(None, ctx, job, b"y")
    assert status == pa.PAUSE
    t.start()
    n = len(ticks)
    while len(ticks) < n + 1000:
        pass
    stop.set(); t.join()
    while status == pa.PAUSE:
        status, j, ret = b.start_job(j, ctx, None)
    assert ret == 1
    # and closing a job paused inside hashlib
    log = []
    def loop(arg):
        try:
            while True:
                hashlib.sha1(b"z").digest()
        finally:
            log.append("finally")
    status, j, _ = b.start_job(None, ctx, loop)
    j.close()
    assert log == ["finally"], log
print("ok")
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("path", ["'fd'", "'callback'"])
def test_hashlib_inside_a_job_with_an_async_engine(engine: PauseEngine, path: str) -> None:
    """CPython's hashlib calls libcrypto holding the GIL: the engine pauses it anyway."""
    if _settings.libcrypto():
        pytest.skip("hashlib uses the system libcrypto, not the one the backend loaded")
    proc = run_isolated(HASHLIB.replace("PATH", path), args=("-X", "dev"), timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr


def test_a_thread_runs_python_while_a_job_is_paused_holding_the_gil(openssl: pa.Backend, engine: PauseEngine) -> None:
    ticks: List[int] = []
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0)

    with openssl.WaitCtx() as ctx:
        status, handle, _ = openssl.start_job(None, ctx, lambda a: engine.op_holding_gil(1, path="fd"))
        assert status == pa.PAUSE
        thread = threading.Thread(target=spin)
        thread.start()
        deadline = time.monotonic() + HANG
        while len(ticks) < 100 and time.monotonic() < deadline:
            time.sleep(0.001)
        stop.set()
        thread.join()
        assert len(ticks) >= 100
        status, handle, ret = openssl.start_job(handle, ctx, None)
        assert (status, ret) == (pa.FINISH, 1)


def test_a_job_without_a_context_paused_in_c_is_resumed_until_back_in_python(
    openssl: pa.Backend, engine: PauseEngine
) -> None:
    """C cannot be told there is no context: the engine gets a private one and the job
    is resumed at once until its C code gets back to Python."""
    status, handle, ret = openssl.start_job(None, None, lambda a: engine.op(3, path="fd", ready="later", delay=0.002))
    assert (status, handle) == (pa.FINISH, None) and ret >= 3  # early resumes pause again


def test_a_job_without_a_context_stuck_in_c_is_returned_paused(
    openssl: pa.Backend, engine: PauseEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resumed until the close timeout (0.5 s here), waiting for the engine's fd in
    between: a few resumes, not a busy loop (it was thousands)."""
    monkeypatch.setattr(_settings, "_fixed_close_timeout", 0.5)
    pauses = engine.stats()["pauses"]
    status, handle, _ = openssl.start_job(None, None, lambda a: engine.op(1, path="fd", ready="never"))
    assert status == pa.PAUSE and handle is not None and handle.wait_ctx is None
    assert engine.stats()["pauses"] - pauses < 20
    with pytest.raises(pa.AsyncError, match="did not finish unwinding"):
        handle.close(timeout=0.3)
    engine.release_never()
    handle.close()
    assert handle.state == "finished"


@pytest.mark.parametrize("path", PATHS)
def test_ctrl_c_while_run_job_waits_unwinds_a_job_paused_in_c(
    openssl: pa.Backend, engine: PauseEngine, path: str
) -> None:
    import signal

    log: List[str] = []

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        timer = threading.Timer(0.05, signal.pthread_kill, (threading.get_ident(), signal.SIGUSR1))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            # every wait completes 20 ms later: the close, too, waits for the engine
            pa.run_job(_unwinding_job(engine, log, path=path, ready="later", delay=0.02), backend=openssl, timeout=HANG)
        timer.join()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert log[-2:] == ["cancelled", "finally"]


PYTHON_THEN_C_HOLDING_GIL = """
import os, sys, threading
import pyossl_async as pa
from pyossl_async.testing import PauseEngine
b = pa.get_backend("openssl")
engine = PauseEngine.load(b)
path = PATH
log = []

def job(n):
    for i in range(n):
        pa.pause_job()                                  # paused from Python (GIL released)
        engine.op_holding_gil(1, path=path)             # then inside C code that holds the GIL
        log.append(i)
    return n

ticks = []
stop = threading.Event()
def spin():                                             # another thread needs the GIL meanwhile
    while not stop.is_set():
        ticks.append(1)
        os.sched_yield()
spinner = threading.Thread(target=spin)
spinner.start()
with b.WaitCtx() as ctx:
    if path == "callback":
        ctx.set_callback(lambda arg: 1)
    status, h, ret = b.start_job(None, ctx, job, 20)
    resumes = 0
    while status == pa.PAUSE:
        status, h, ret = b.start_job(h, ctx, None)
        resumes += 1
stop.set()
spinner.join()
assert (status, ret) == (pa.FINISH, 20), (status, ret)
assert log == list(range(20)), log
assert resumes >= 40, resumes
print("ok", b.info()["switch"])
"""


@pytest.mark.subprocess
@pytest.mark.parametrize("dev", [False, True], ids=["plain", "dev"])
@pytest.mark.parametrize("switch", ["native", "chain"])
@pytest.mark.parametrize("path", PATHS)
def test_a_job_paused_from_python_then_inside_c_holding_the_gil(
    engine: PauseEngine, path: str, switch: str, dev: bool
) -> None:
    """The order that deadlocked (3.12) or aborted (3.13) when the GIL hand-over was armed
    only for jobs whose last pause held the GIL: every switch must check, whatever came before."""
    if switch == "native" and openssl_switch_unavailable():
        pytest.skip("the native switch cannot run here")
    proc = run_isolated(
        PYTHON_THEN_C_HOLDING_GIL.replace("PATH", repr(path)),
        env={"PYOSSL_ASYNC_SWITCH": switch},
        args=("-X", "dev") if dev else (),
        timeout=120,
    )
    assert proc.stdout.split() == ["ok", switch], proc.stderr


def openssl_switch_unavailable() -> bool:
    """True when this machine cannot map the native switch (the chain runs instead)."""
    native = pa.get_backend("openssl").native  # type: ignore[attr-defined]
    return native is None or (native.switch is None and "chain" not in native.switch_reason)
