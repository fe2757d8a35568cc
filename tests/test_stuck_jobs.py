"""Jobs stuck inside C code (issue 21): a close bounded once by its timeout, one report
whose messages agree, a collection and exit that never wait on them, closing that
waits for the engine instead of spinning, and a job given up on unwound once its
engine signals.

The stuck jobs are the pause engine's (``PauseEngine.op(1, ready="never")``, or
an operation that completes long after its driver gave up), on both notification
paths (a wait fd, or the wait-ctx callback), under every driver. Most scenarios
run in a child interpreter (a hang or crash there fails the test instead of the
run) with ``PYOSSL_ASYNC_CLOSE_TIMEOUT`` set far above the close timeouts the
scenario passes: a path that ignored ``close_timeout`` for the default, or that
waited in a collection, would show as a child that does not finish (the bounds on
time below only catch such hangs, they do not measure speed). Resumes are counted
with the engine's own counter; CPU time with ``time.process_time``. Jobs paused in
Python (both backends) are never stuck: they are checked to be unwound at once.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List, Tuple

import pytest

import pyossl_async as pa
from pyossl_async.testing import EngineUnavailable, PauseEngine

from ._drivers import AIO_DRIVERS, DRIVERS, HANG, drive, kept_none_left, uvloop
from .conftest import REQUIRED, load_backend, run_isolated

PATHS = ["fd", "callback"]
#: the default close timeout in the children: far above any close_timeout a scenario passes
CHILD_DEFAULT = 100.0
#: a child that has not finished by then hangs (a close or collection waited for the default)
CHILD_LIMIT = 80.0
#: no close of a scenario may take that long (its close_timeout is a fraction of a second)
BOUND = 20.0
#: the scenarios' script
CHILD_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stuck_child.py")


@pytest.fixture(scope="module")
def engine_mod() -> PauseEngine:
    try:
        return PauseEngine.load(load_backend("openssl"))
    except EngineUnavailable as exc:
        if "openssl" in REQUIRED:
            pytest.fail(f"the pause engine is required: {exc}")
        pytest.skip(f"the pause engine is unavailable: {exc}")


@pytest.fixture
def engine(engine_mod: PauseEngine) -> Iterator[PauseEngine]:
    """The engine; afterwards nothing kept, no helper thread, no engine fd left open."""
    engine_mod.release_never(False)
    held = engine_mod.stats()["fds_open"]
    yield engine_mod
    engine_mod.release_never(True)
    assert engine_mod.quiesce(10)
    gc.collect()
    openssl = load_backend("openssl")
    _until(lambda: not openssl._paused_records())  # type: ignore[attr-defined]
    assert kept_none_left(), "the library still keeps a job"
    assert engine_mod.stats()["fds_open"] == held
    engine_mod.release_never(False)


def _until(done: Any, backend: Any = None) -> None:
    """Make library calls until ``done()`` (each call unwinds kept jobs whose engine
    signalled, or whose periodic retry is due); fail instead of hanging."""
    backend = backend or load_backend("openssl")
    deadline = time.monotonic() + HANG
    while not done() and time.monotonic() < deadline:
        time.sleep(0.005)
        backend.start_job(None, None, lambda a: 0)
    assert done(), "the library never unwound the job it keeps"


# -- the scenarios, in child interpreters ----------------------------------------------

def _scenario(name: str, params: Dict[str, Any], *, env: Dict[str, str], args: Tuple[str, ...] = (),
              timeout: float = CHILD_LIMIT) -> subprocess.CompletedProcess[str]:
    """Run a scenario of ``tests/stuck_child.py`` in a fresh interpreter."""
    code = f"import runpy, sys\nsys.argv = {[CHILD_SCRIPT, name, json.dumps(params)]!r}\n"
    code += f"runpy.run_path({CHILD_SCRIPT!r}, run_name='__main__')\n"
    return run_isolated(code, env=env, args=args, timeout=timeout)


def _child(driver: str, path: str, how: str, *, ready: str = "never", delay: float = 0.0, close: float = 0.3,
           dev: bool = False) -> Dict[str, Any]:
    if driver == "uvloop" and uvloop is None:
        pytest.skip("uvloop is not installed (optional)")
    if driver == "trio":
        pytest.importorskip("trio")
    params = {"driver": driver, "path": path, "how": how, "ready": ready, "delay": delay, "close": close}
    env = {"PYOSSL_ASYNC_CLOSE_TIMEOUT": str(CHILD_DEFAULT)}
    args: Tuple[str, ...] = ()
    if dev:
        args = ("-X", "dev", "-W", "ignore")
        env["PYTHONMALLOC"] = "debug"
    proc = _scenario("give-up", params, env=env, args=args)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, proc.stdout + proc.stderr
    out: Dict[str, Any] = json.loads(lines[0][len("RESULT "):])
    out["stderr"] = proc.stderr
    return out


#: (driver, how the driver gives up): its own timeout, or the event loop's cancellation
GIVE_UPS = [
    ("blocking", "timeout"),
    ("asyncio", "timeout"),
    ("asyncio", "wait_for"),
    ("asyncio", "cancel"),
    ("uvloop", "wait_for"),
    ("trio", "timeout"),
    ("trio", "cancel"),
]


@pytest.mark.subprocess
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("driver", "how"), GIVE_UPS)
def test_a_driver_gives_up_once_reports_once_and_the_collection_does_not_wait(
    engine: PauseEngine, driver: str, how: str, path: str
) -> None:
    """Before: run_job(timeout=0.01, close_timeout=0.5) took 1 s (two closes) and reported the
    failure twice with messages that disagreed; a cancelled aio job blocked the loop for
    the default 10 s when its handle was collected; the next collection took 10 s."""
    out = _child(driver, path, how)
    assert out["elapsed"] < BOUND and out["gc"] < BOUND, out
    assert out["log_at_give_up"] == [] and out["kept"] == 1, out
    if path == "fd":
        # a close waits for the fd between resumes: exactly one resume means exactly one close
        assert out["resumes"] == 1, out
    else:
        assert 1 <= out["resumes"] < 50, out  # retried on a growing interval, not at once
    assert out["cpu"] < 0.2, out
    keeps = "the library keeps it and unwinds it as soon as its engine signals"
    if how == "timeout":
        # one report: the TimeoutError, whose cause is the close's AsyncError; they agree
        assert out["exc"] in ("TimeoutError", "JobTimeoutError"), out
        assert keeps in out["message"] and "it was closed" not in out["message"], out
        assert out["cause"].startswith("AsyncError(") and keeps in out["cause"], out
        assert "can be closed again" not in out["cause"], out
        assert out["reports"] == [], out
    else:
        # a cancellation has no exception to carry the cause: one report, through the event
        # loop's exception handler (asyncio) or sys.unraisablehook (trio)
        assert len(out["reports"]) == 1 and "AsyncError(" in out["reports"][0] and keeps in out["reports"][0], out
    assert "Traceback" not in out["stderr"] and "Exception ignored" not in out["stderr"], out["stderr"]
    # kept by the library, and unwound once its engine lets it go
    assert out["log"] == ["finally"] and out["left"] == 0 and out["fds_back"], out


@pytest.mark.subprocess
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_a_job_given_up_on_is_unwound_when_its_engine_completes(engine: PauseEngine, driver: str, path: str) -> None:
    """Before: a job a driver gave up on was never unwound, even after its engine completed."""
    how = "timeout"
    out = _child(driver, path, how, ready="later", delay=1.0, close=0.05)
    assert out["log_at_give_up"] == [] and out["kept"] == 1, out
    assert out["reports"] == [], out
    # nobody released anything: the engine's own completion (the fd written, the callback
    # called from its helper thread) got the job unwound at the thread's library calls
    assert out["log"] == ["finally"] and out["left"] == 0 and out["fds_back"], out


@pytest.mark.subprocess
@pytest.mark.parametrize("path", PATHS)
def test_giving_up_under_dev_mode(engine: PauseEngine, path: str) -> None:
    out = _child("asyncio", path, "cancel", dev=True)
    assert out["log"] == ["finally"] and out["left"] == 0 and len(out["reports"]) == 1, out
    out = _child("blocking", path, "timeout", ready="later", delay=0.3, close=0.05, dev=True)
    assert out["log"] == ["finally"] and out["left"] == 0 and out["reports"] == [], out
    assert "Fatal Python error" not in out["stderr"], out["stderr"]


@pytest.mark.subprocess
@pytest.mark.parametrize("cycle", [False, True])
@pytest.mark.parametrize("path", PATHS)
def test_a_collection_never_waits_for_a_job_stuck_in_c(engine: PauseEngine, path: str, cycle: bool) -> None:
    """Before: dropping a stuck job's handle and collecting took the default close timeout."""
    proc = _scenario("collect", {"path": path, "cycle": cycle}, env={"PYOSSL_ASYNC_CLOSE_TIMEOUT": str(CHILD_DEFAULT)})
    first, refused, last = proc.stdout.splitlines()
    words = first.split()
    assert float(words[2]) < BOUND and words[3:] == ["kept", "1", "[]"], proc.stdout
    assert refused.startswith("close refused: WaitCtx is still used by 1 unfinished job") and "kept" in refused
    assert last == "unwound ['finally'] left 0", proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["plain", "dev"])
def test_exit_is_bounded_by_one_close_timeout_and_says_so_in_one_line(engine: PauseEngine, mode: str) -> None:
    """Before: a traceback per stuck job, and the exit hook's close timeout for each."""
    jobs = 4
    args = ("-X", "dev", "-W", "ignore") if mode == "dev" else ("-W", "ignore")
    env = {"PYOSSL_ASYNC_CLOSE_TIMEOUT": "1.5"}
    if mode == "dev":
        env["PYTHONMALLOC"] = "debug"
    proc = _scenario("exit", {"jobs": jobs}, args=args, env=env)
    lines = proc.stdout.splitlines()
    assert lines[0] == "reported: Exception while closing a job aio.run_job() gave up on", proc.stdout
    assert lines[1] == f"exiting with {jobs + 2} paused", proc.stdout + proc.stderr
    assert "finally ran" not in proc.stdout
    took = float(lines[-1].split()[3])
    assert took < (jobs + 2) * 1.5, proc.stdout  # one close timeout for all of them, not one each
    summary = [line for line in proc.stderr.splitlines() if line.startswith("pyossl_async:")]
    assert len(summary) == 1, proc.stderr
    assert f"{jobs + 2} paused openssl job(s) could not be unwound within 1.5 s" in summary[0]
    assert "engine did not complete" in summary[0]
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    assert "Fatal Python error" not in proc.stderr


@pytest.mark.subprocess
def test_exit_unwinds_kept_jobs_whose_engines_complete_in_time(engine: PauseEngine) -> None:
    proc = _scenario("exit-later", {}, args=("-W", "ignore"), env={"PYOSSL_ASYNC_CLOSE_TIMEOUT": "30"})
    lines = proc.stdout.splitlines()
    # the job held by the program is unwound by the exit hook; the one given up on by then
    # (before "exiting" when its engine completed while the program still made library calls)
    assert sorted(lines) == ["exiting", "finally ran callback", "finally ran fd"], proc.stdout + proc.stderr
    assert lines.index("finally ran fd") > lines.index("exiting"), proc.stdout
    assert "pyossl_async:" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


# -- in this process: closing waits, and nothing spins ----------------------------------


def _stuck_job(engine: PauseEngine, path: str, log: List[str]) -> Any:
    def job(arg: Any) -> int:
        try:
            engine.op(1, path=path, ready="never")
            return 1
        finally:
            log.append("finally")

    return job


@pytest.mark.parametrize("path", PATHS)
def test_closing_waits_for_the_engine_between_resumes(engine: PauseEngine, path: str) -> None:
    """Before, on the callback path: 4,800-9,800 resumes and 0.2-0.4 s of CPU per second of closing."""
    openssl = load_backend("openssl")
    log: List[str] = []
    with openssl.WaitCtx() as ctx:
        if path == "callback":
            ctx.set_callback(lambda arg: 1)
        _, handle, _ = openssl.start_job(None, ctx, _stuck_job(engine, path, log))
        assert handle is not None
        pauses, cpu = engine.stats()["pauses"], time.process_time()
        with pytest.raises(pa.AsyncError, match=r"within 1 s: .*it stays paused and can be closed again"):
            handle.close(timeout=1.0)
        resumes, cpu = engine.stats()["pauses"] - pauses, time.process_time() - cpu
        assert 1 <= resumes < 50, f"{resumes} resumes in one second of closing"
        assert cpu < 0.2, f"{cpu:.3f} s of CPU in one second of closing"
        assert handle.state == "paused" and log == []
        engine.release_never()
        handle.close(timeout=HANG)
        assert log == ["finally"]


@pytest.mark.parametrize("path", PATHS)
def test_a_drivers_close_waits_for_the_engine_between_resumes(engine: PauseEngine, path: str) -> None:
    openssl = load_backend("openssl")
    log: List[str] = []
    jobs: List[Any] = []

    def job(arg: Any) -> int:
        jobs.append(pa.get_current_job())
        return _stuck_job(engine, path, log)(arg)  # type: ignore[no-any-return]

    pauses, cpu = engine.stats()["pauses"], time.process_time()
    with pytest.raises(TimeoutError) as info:
        pa.run_job(job, backend=openssl, timeout=0.01, close_timeout=1.0)
    resumes, cpu = engine.stats()["pauses"] - pauses, time.process_time() - cpu
    assert 1 <= resumes < 50 and cpu < 0.2, (resumes, cpu)
    assert isinstance(info.value.__cause__, pa.AsyncError)
    # the program held a handle (from inside the job): it can still close the kept job itself
    engine.release_never()
    jobs[0].close(timeout=HANG)
    assert log == ["finally"] and jobs[0].state == "finished"


@pytest.mark.parametrize("path", PATHS)
def test_a_kept_job_does_not_spin_while_its_engine_is_silent(engine: PauseEngine, path: str) -> None:
    """Library calls go on while the job is kept: it is retried on a growing interval."""
    openssl = load_backend("openssl")
    log: List[str] = []
    with pytest.raises(TimeoutError):
        pa.run_job(_stuck_job(engine, path, log), backend=openssl, timeout=0.01, close_timeout=0.01)
    assert len(openssl._paused_records()) == 1  # type: ignore[attr-defined]
    pauses, cpu = engine.stats()["pauses"], time.process_time()
    end = time.monotonic() + 1.0
    calls = 0
    while time.monotonic() < end:
        openssl.start_job(None, None, lambda a: 0)
        calls += 1
        time.sleep(0.001)
    resumes = engine.stats()["pauses"] - pauses
    assert resumes < 30, f"{resumes} resumes of a kept job in one second ({calls} library calls)"
    assert time.process_time() - cpu < 0.5 + calls * 200e-6  # (the calls themselves cost a little)
    engine.release_never()
    _until(lambda: log == ["finally"])


@pytest.mark.parametrize("path", PATHS)
def test_a_kept_job_is_unwound_by_its_own_thread_only(engine: PauseEngine, path: str) -> None:
    """A job resumes only on the thread that started it: another thread's library calls
    leave it kept; its own thread's next call unwinds it once its engine let it go."""
    import threading

    openssl = load_backend("openssl")
    log: List[str] = []
    given_up = threading.Event()
    go_on = threading.Event()
    failures: List[BaseException] = []

    def worker() -> None:
        try:
            with pytest.raises(TimeoutError):
                pa.run_job(_stuck_job(engine, path, log), backend=openssl, timeout=0.01, close_timeout=0.01)
            given_up.set()
            assert go_on.wait(HANG)
            _until(lambda: log == ["finally"], openssl)  # this thread's own library calls
            openssl.cleanup_thread()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failures.append(exc)
            given_up.set()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert given_up.wait(HANG) and not failures
        engine.release_never()
        for _ in range(100):  # (another thread's calls: a resume here would be a crash in C)
            openssl.start_job(None, None, lambda a: 0)
            time.sleep(0.002)
        assert log == []
    finally:
        go_on.set()
        thread.join(HANG)
    assert not failures, failures
    assert log == ["finally"]


@pytest.mark.parametrize("path", PATHS)
def test_an_abandoned_loops_stuck_job_is_kept_not_waited_for(engine: PauseEngine, path: str) -> None:
    """A loop closed and dropped with its task pending: closing the loop closes the task's
    coroutine (``aio`` loops own their jobs' tasks), where the driver may not await; it
    does not block either (its close_timeout is long) but hands the job to the library."""
    import asyncio

    from pyossl_async import aio

    openssl = load_backend("openssl")
    log: List[str] = []
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # ("Task was destroyed but it is pending!")
    task = loop.create_task(aio.run_job(_stuck_job(engine, path, log), backend=openssl, close_timeout=HANG))
    loop.run_until_complete(asyncio.sleep(0.05))
    start = time.monotonic()
    loop.close()
    del task, loop
    gc.collect()
    assert time.monotonic() - start < BOUND
    assert log == [] and len(openssl._paused_records()) == 1  # type: ignore[attr-defined]
    engine.release_never()
    _until(lambda: log == ["finally"])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("driver", DRIVERS)
def test_the_kept_jobs_context_goes_when_it_has_been_unwound(engine: PauseEngine, driver: str, path: str) -> None:
    """Nothing kept alive: once a job the driver gave up on has been unwound, the driver's
    context is closed and freed, with the collector off (no cycle through the timeout's
    exception, its cause's traceback or the library's records)."""
    import weakref

    openssl = load_backend("openssl")
    log: List[str] = []
    refs: List[Any] = []

    def job(arg: Any) -> int:
        refs.append(weakref.ref(pa.current_wait_ctx()))
        return _stuck_job(engine, path, log)(arg)  # type: ignore[no-any-return]

    held = engine.stats()["fds_open"]
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(TimeoutError):
            drive(driver, openssl, job, timeout=0.01, close_timeout=0.01)
        assert refs[0]() is not None and len(openssl._paused_records()) == 1  # type: ignore[attr-defined]
        engine.release_never()
        _until(lambda: log == ["finally"])
        assert refs[0]() is None, "the kept job's context outlived it"
        assert engine.stats()["fds_open"] == held
    finally:
        gc.enable()


# -- jobs paused in Python: never stuck (both backends) ---------------------------------


@pytest.mark.parametrize("driver", DRIVERS)
def test_a_job_paused_in_python_is_closed_at_once_and_reported_once(backend: pa.Backend, driver: str) -> None:
    log: List[str] = []
    reported: List[Any] = []

    def job(arg: Any) -> int:
        pa.current_wait_ctx().set_status(pa.WaitStatus.OK)  # a callback that never comes
        try:
            backend.pause_job()
            return 1
        finally:
            log.append("finally")

    previous = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        with pytest.raises(TimeoutError) as info:
            drive(driver, backend, job, timeout=0.05, close_timeout=HANG)
    finally:
        sys.unraisablehook = previous
    assert log == ["finally"] and reported == []
    assert str(info.value).endswith("it was closed") and info.value.__cause__ is None


def test_a_collected_job_paused_in_python_is_unwound_during_the_collection(backend: pa.Backend) -> None:
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            backend.pause_job()
            return 1
        finally:
            log.append("finally")

    with backend.WaitCtx() as ctx:
        _, handle, _ = backend.start_job(None, ctx, job)
        with pytest.warns(ResourceWarning, match="garbage collected"):
            del handle
            gc.collect()
        assert log == ["finally"]


@pytest.mark.parametrize("driver", AIO_DRIVERS)
def test_aio_cancellation_of_a_job_paused_in_python_reports_nothing(backend: pa.Backend, driver: str) -> None:
    import asyncio

    from ._drivers import run_async

    log: List[str] = []
    reported: List[Any] = []

    def job(arg: Any) -> int:
        pa.current_wait_ctx().set_status(pa.WaitStatus.OK)
        try:
            backend.pause_job()
            return 1
        finally:
            log.append("finally")

    async def main() -> None:
        from pyossl_async import aio

        asyncio.get_running_loop().set_exception_handler(lambda loop, context: reported.append(context))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(aio.run_job(job, backend=backend, close_timeout=HANG), 0.05)

    run_async(driver, main)
    assert log == ["finally"] and reported == []
