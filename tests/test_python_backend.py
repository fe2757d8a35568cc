"""Behaviour specific to the ``"python"`` backend: fibres, pools, switches, process life.

What both backends share is tested, parametrised, elsewhere; here are the parts
only the pure-Python backend has, for each of its engines (``py`` runs a test
once per engine: worker threads and greenlets): how fibres are created, reused
(LIFO), stopped and never left hanging, which job runs where, fork, and that no
ctypes is needed. Tests of one engine's mechanism (worker threads' handoff under
signals, greenlets' switches under signals) use ``threads_py`` or ``greenlet_py``.
"""

from __future__ import annotations

import gc
import linecache
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any, Iterator, List

import pytest

import pyossl_async as pa
from pyossl_async._cli.bench import _handoff_cycle
from pyossl_async.backends import _python_threadlocal
from pyossl_async.backends._python_workers import Worker
from pyossl_async.backends.python import PythonBackend

from .conftest import PYTHON_ENGINES, engine_env, python_backend_with, run_isolated

WORKER_PREFIX = "pyossl-async-worker-"


def worker_threads() -> List[int]:
    """The idents of the thread engine's live worker threads (bare ``_thread`` threads:
    ``threading.enumerate()`` does not list them)."""
    from .conftest import engine_backend

    return list(engine_backend("threads")._executor.workers)


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (test helper only; the library itself never polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


def _engine_fixture(engine: str) -> Iterator[PythonBackend]:
    with python_backend_with(engine) as be:
        assert isinstance(be, PythonBackend) and be.engine == engine
        be.cleanup_thread()
        yield be
        thread = be._threads.get(threading.get_ident())
        leftover = list(thread.paused) if thread is not None else []
        for record in leftover:
            be._cancel_quietly(thread, record)  # type: ignore[arg-type]
        be.cleanup_thread()
        assert not leftover, f"test left {len(leftover)} paused job(s)"


@pytest.fixture(params=PYTHON_ENGINES)
def py(request: pytest.FixtureRequest) -> Iterator[PythonBackend]:
    """The python backend with each engine in turn."""
    yield from _engine_fixture(request.param)


@pytest.fixture
def threads_py() -> Iterator[PythonBackend]:
    """The python backend on worker threads (tests of that engine's mechanism)."""
    yield from _engine_fixture("threads")


@pytest.fixture
def greenlet_py() -> Iterator[PythonBackend]:
    """The python backend on greenlets (tests of that engine's mechanism)."""
    yield from _engine_fixture("greenlet")


def fibre_here(be: PythonBackend) -> Any:
    """Inside a job: the fibre (pool entry) that runs it."""
    fibre = be._executor.current()
    assert fibre is not None
    return fibre


def live_fibres(be: PythonBackend) -> int:
    """Fibres holding a resource: worker threads alive, or job greenlets not ended."""
    if be.engine == "threads":
        return len(worker_threads())
    return be._executor.live_fibres()


def pausing_job(be: pa.Backend, log: List[Any]) -> Any:
    def job(arg: Any) -> int:
        log.append((arg, threading.get_ident()))
        be.pause_job()
        log.append((arg, threading.get_ident()))
        return 0

    return job


# -- jobs run on fibres, mapped to their driving thread ---------------------------------


def test_job_runs_on_a_fibre_of_its_driver(py: PythonBackend) -> None:
    seen: dict[str, Any] = {}

    def job(arg: Any) -> int:
        seen["ident"] = threading.get_ident()
        seen["thread"], seen["record"] = py._current()
        seen["fibre"] = py._executor.current()
        py.block_pause()
        return 0

    me = threading.get_ident()
    assert py.start_job(None, None, job) == (pa.FINISH, None, 0)
    # a worker thread of its own, or the caller's thread (in a greenlet of its own)
    assert (seen["ident"] != me) == (py.engine == "threads")
    assert seen["thread"] is py._threads[me] and seen["record"] is not None
    assert seen["fibre"] is not None and py._executor.current() is None  # the caller is outside
    # the block counter went to the driving thread's state, not the fibre's
    assert py._threads[me].engine.blocked == 1


def test_the_engine_is_chosen_by_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyossl_async import _settings

    for raw, expected in [("", "auto"), ("threads", "threads"), (" Greenlet ", "greenlet"), ("AUTO", "auto")]:
        monkeypatch.setenv("PYOSSL_ASYNC_PYTHON_ENGINE", raw)
        assert _settings.python_engine() == expected
    monkeypatch.delenv("PYOSSL_ASYNC_PYTHON_ENGINE")
    assert _settings.python_engine() == "auto"
    monkeypatch.setenv("PYOSSL_ASYNC_PYTHON_ENGINE", "fibres")
    expected = r"PYOSSL_ASYNC_PYTHON_ENGINE=fibres: unknown python engine 'fibres'; choose from auto, greenlet, thr"
    with pytest.raises(pa.SettingError, match=expected):
        _settings.python_engine()
    with pytest.raises(pa.SettingError, match=r"PYOSSL_ASYNC_PYTHON_ENGINE=fibres"):
        PythonBackend()
    monkeypatch.setenv("PYOSSL_ASYNC_PYTHON_ENGINE", "threads")
    assert PythonBackend().engine == "threads"


@pytest.mark.subprocess
def test_a_bad_engine_setting_names_the_variable_everywhere() -> None:
    proc = run_isolated(
        """
        import pyossl_async as pa
        for call in (lambda: pa.get_backend("python"), pa.available_backends, lambda: pa.get_backend("openssl")):
            try:
                call()
            except pa.SettingError as exc:
                print("refused:", exc)
        """,
        env={"PYOSSL_ASYNC_PYTHON_ENGINE": "fast"},
        timeout=60,
    )
    line = "refused: PYOSSL_ASYNC_PYTHON_ENGINE=fast: unknown python engine 'fast'; choose from auto, greenlet, threads"
    assert proc.stdout.count(line) == 3, proc.stdout


@pytest.mark.subprocess
def test_greenlet_asked_for_where_it_cannot_import_is_refused_and_auto_falls_back() -> None:
    proc = run_isolated(
        """
        import sys
        sys.modules["greenlet"] = None   # as if greenlet were not installed
        from pyossl_async.backends.python import PythonBackend
        import pyossl_async as pa
        try:
            PythonBackend("greenlet")
        except pa.BackendUnavailable as exc:
            print("refused:", exc)
        auto = PythonBackend("auto")
        print("auto:", auto.engine, "|", auto.info()["engine_reason"])
        """,
        timeout=60,
    )
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("refused: PythonBackend(engine)=greenlet: greenlet cannot be imported"), lines
    assert lines[1].startswith("auto: threads | greenlet cannot be imported"), lines


def test_worker_threads_are_bare_threads_threading_does_not_track(threads_py: PythonBackend) -> None:
    """Starting a worker takes none of ``threading``'s locks and waits for nothing of
    it (Thread.start() can block for good under a signal storm): a bare thread."""
    py = threads_py
    idents: List[int] = []
    py.start_job(None, None, lambda a: idents.append(threading.get_ident()) or 0)
    assert idents[0] in worker_threads() and idents[0] != threading.get_ident()
    assert idents[0] not in [t.ident for t in threading.enumerate()]


def fibre_job(be: PythonBackend, log: List[Any]) -> Any:
    """A job that logs ``(arg, its fibre)`` before and after one pause."""

    def job(arg: Any) -> int:
        log.append((arg, fibre_here(be)))
        be.pause_job()
        log.append((arg, fibre_here(be)))
        return 0

    return job


def test_finished_fibres_are_reused_lifo(py: PythonBackend) -> None:
    log: List[Any] = []
    with py.WaitCtx() as ctx:
        _, a, _ = py.start_job(None, ctx, fibre_job(py, log), "a")
        _, b, _ = py.start_job(None, ctx, fibre_job(py, log), "b")
        fa, fb = log[0][1], log[1][1]
        assert fa is not fb
        py.start_job(a, None, None)  # a's fibre goes idle first
        py.start_job(b, None, None)  # then b's: it is on top of the stack
        assert log[2] == ("a", fa) and log[3] == ("b", fb)  # resumed on their own fibres
        _, c, _ = py.start_job(None, ctx, fibre_job(py, log), "c")
        _, d, _ = py.start_job(None, ctx, fibre_job(py, log), "d")
        assert log[4] == ("c", fb) and log[5] == ("d", fa)
        py.start_job(c, None, None)
        py.start_job(d, None, None)
    assert len({id(fibre) for _, fibre in log}) == 2


def test_init_size_precreates_fibres_and_the_last_is_used_first(py: PythonBackend) -> None:
    before = live_fibres(py)
    assert py.init_thread(3, 3) is True
    pool = py._threads[threading.get_ident()].engine.pool
    assert pool.curr_size == 3 and len(pool.idle) == 3
    # a worker thread each; greenlet fibres hold nothing until a job runs
    assert live_fibres(py) == before + (3 if py.engine == "threads" else 0)
    last = pool.idle[-1]
    seen: List[Any] = []
    py.start_job(None, None, lambda a: seen.append(fibre_here(py)) or 0)
    assert seen == [last]
    assert pool.curr_size == 3 and len(pool.idle) == 3  # no new fibre for that job
    assert live_fibres(py) == before + (3 if py.engine == "threads" else 0)


def test_max_size_bounds_the_fibres(py: PythonBackend) -> None:
    before = live_fibres(py)
    assert py.init_thread(2, 0)
    log: List[Any] = []
    with py.WaitCtx() as ctx:
        handles = [py.start_job(None, ctx, fibre_job(py, log), i)[1] for i in range(2)]
        assert py.start_job(None, ctx, fibre_job(py, log), 2) == (pa.NO_JOBS, None, None)
        assert live_fibres(py) == before + 2
        for h in handles:
            py.start_job(h, None, None)


def test_cleanup_thread_stops_idle_workers(threads_py: PythonBackend) -> None:
    py = threads_py
    before = len(worker_threads())
    assert py.init_thread(4, 4)
    assert len(worker_threads()) == before + 4
    py.cleanup_thread()  # joins them
    assert len(worker_threads()) == before
    assert py._threads[threading.get_ident()].engine.pool is None


def test_cleanup_thread_frees_the_pool(py: PythonBackend) -> None:
    assert py.init_thread(4, 2)
    assert py.start_job(None, None, lambda a: 5) == (pa.FINISH, None, 5)
    py.cleanup_thread()
    assert py._threads[threading.get_ident()].engine.pool is None
    assert py._executor.live_fibres() == (len(worker_threads()) if py.engine == "threads" else 0)


def test_second_init_thread_replaces_the_pool(py: PythonBackend) -> None:
    before = live_fibres(py)
    log: List[Any] = []
    assert py.init_thread(1, 1)
    with py.WaitCtx() as ctx:
        _, a, _ = py.start_job(None, ctx, fibre_job(py, log), "a")
        fa = log[0][1]
        assert py.init_thread(1, 1)  # a new pool with one fresh idle fibre
        state = py._threads[threading.get_ident()].engine
        fresh = state.pool.idle[-1]
        assert fresh is not fa and state.pool.curr_size == 1
        py.start_job(a, None, None)  # a's fibre joins the *new* pool, on top
        assert state.pool.idle == [fresh, fa]
        _, b, _ = py.start_job(None, ctx, fibre_job(py, log), "b")
        _, c, _ = py.start_job(None, ctx, fibre_job(py, log), "c")
        assert log[2][1] is fa and log[3][1] is fresh
        assert py.start_job(None, ctx, fibre_job(py, log), "d") == (pa.NO_JOBS, None, None)
        py.start_job(b, None, None)
        py.start_job(c, None, None)
    py.cleanup_thread()
    assert wait_for(lambda: live_fibres(py) == before)


def test_a_thread_the_os_refuses_is_a_job_that_cannot_be_created(
    threads_py: PythonBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in C: NO_JOBS from start_job, fewer pre-created jobs from init_thread."""
    py = threads_py

    def refuse(*args: Any) -> int:
        raise RuntimeError("can't start new thread")

    import _thread

    assert py.init_thread(3, 1)
    with monkeypatch.context() as m:
        m.setattr(_thread, "start_new_thread", refuse)
        log: List[Any] = []
        with py.WaitCtx() as ctx:
            _, a, _ = py.start_job(None, ctx, pausing_job(py, log), "a")  # the pre-created one
            assert py.start_job(None, ctx, pausing_job(py, log), "b") == (pa.NO_JOBS, None, None)
            assert py.init_thread(2, 2) is True  # stops at the first failure, still succeeds
            pool = py._threads[threading.get_ident()].engine.pool
            assert pool.curr_size == 0 and pool.idle == []
            m.undo()
            assert py.start_job(None, ctx, lambda arg: 6) == (pa.FINISH, None, 6)
            py.start_job(a, None, None)
    assert pool.curr_size == 1 and len(pool.idle) == 2  # a's worker joined the new pool


def test_a_worker_whose_start_was_interrupted_does_not_outlive_it(
    threads_py: PythonBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: Ctrl-C (or any handler's exception) landing while ``Thread.start`` waited
    for a new worker left that thread idle for good; under an interrupt storm they
    piled up by the hundred. Now the start fails with the exception and the thread ends."""
    import _thread

    py = threads_py
    py.cleanup_thread()
    before = len(worker_threads())
    registered = py.info()["worker_threads"]  # (other tests' threads may have left some)
    original = _thread.start_new_thread

    def interrupted(*args: Any) -> int:
        original(*args)  # the OS thread runs...
        raise KeyboardInterrupt  # ...and the caller is interrupted before it hears so

    with monkeypatch.context() as m:
        m.setattr(_thread, "start_new_thread", interrupted)
        with py.WaitCtx() as ctx:
            with pytest.raises(KeyboardInterrupt):
                py.start_job(None, ctx, lambda arg: 1)
    assert wait_for(lambda: len(worker_threads()) == before)
    assert py.info()["worker_threads"] == registered
    with py.WaitCtx() as ctx:  # and the backend goes on
        assert py.start_job(None, ctx, lambda arg: 6) == (pa.FINISH, None, 6)


@pytest.mark.skipif(not _python_threadlocal.SUPPORTED, reason="3.13 keys threading.local data out of reach")
def test_a_worker_that_cannot_forget_thread_locals_serves_one_job(
    threads_py: PythonBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker whose thread-state dict was not among the young objects (the search never
    scans the heap) must not run a second job on its thread: the pool replaces it."""
    py = threads_py
    monkeypatch.setattr(_python_threadlocal, "_thread_state_dict", lambda: None)
    local = threading.local()
    seen: List[Any] = []

    def job(arg: Any) -> int:
        seen.append((threading.get_ident(), getattr(local, "value", None)))
        local.value = arg
        return 0

    assert py.init_thread(1, 0)
    for i in range(3):
        assert py.start_job(None, None, job, i) == (pa.FINISH, None, 0)
    pool = py._threads[threading.get_ident()].engine.pool
    assert pool.curr_size == 1 and len(pool.idle) == 1  # the pool kept its size
    assert [value for _, value in seen] == [None, None, None]


def test_a_worker_the_backend_lost_ends_its_thread(threads_py: PythonBackend) -> None:
    """An interrupt between taking a worker from the pool and recording it in a job (or
    between taking it from a job and pooling it) leaves a worker nobody holds. Before, its
    thread waited for a grant for good: under an interrupt storm, threads piled up. Now
    the thread holds its worker weakly while idle and ends when the worker is freed."""
    py = threads_py
    assert py.init_thread(3, 3)
    pool = py._threads[threading.get_ident()].engine.pool
    lost = pool.idle.pop()  # as if the interrupt hit right after this
    ident = lost.ident
    kept = [w.ident for w in pool.idle]
    del lost
    # (other tests' stopped workers may be ending meanwhile: look at these ones only)
    assert wait_for(lambda: ident not in worker_threads())
    assert all(k in worker_threads() for k in kept)
    assert py.start_job(None, None, lambda a: 2) == (pa.FINISH, None, 2)  # the pool goes on


@pytest.mark.skipif(not _python_threadlocal.SUPPORTED, reason="3.13 keys threading.local data out of reach")
def test_threads_engine_hides_a_jobs_thread_locals_from_the_next(threads_py: PythonBackend) -> None:
    py = threads_py
    local = threading.local()
    seen: List[Any] = []

    def first(arg: Any) -> int:
        local.value = "from first job"
        return 0

    def second(arg: Any) -> int:
        seen.append(getattr(local, "value", None))
        return 0

    assert py.init_thread(1, 0)  # one worker: the second job runs where the first did
    for _ in range(3):
        py.start_job(None, None, first)
        py.start_job(None, None, second)
    assert seen == [None, None, None]


def test_driving_threads_have_separate_pools(py: PythonBackend) -> None:
    assert py.init_thread(1, 0)
    log: List[Any] = []
    with py.WaitCtx() as ctx:
        _, a, _ = py.start_job(None, ctx, pausing_job(py, log), "main")
        results: List[Any] = []

        def other() -> None:
            results.append(py.start_job(None, None, lambda arg: 7))
            py.cleanup_thread()

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert results == [(pa.FINISH, None, 7)]
        assert py.start_job(None, ctx, lambda arg: 1) == (pa.NO_JOBS, None, None)
        py.start_job(a, None, None)


def test_a_driving_thread_that_ends_frees_its_idle_workers(threads_py: PythonBackend) -> None:
    py = threads_py
    before = len(worker_threads())

    def other() -> None:
        assert py.init_thread(3, 3)
        py.start_job(None, None, lambda arg: 0)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    del t
    gc.collect()
    assert wait_for(lambda: len(worker_threads()) == before)


def test_many_paused_jobs_each_hold_a_fibre(py: PythonBackend) -> None:
    import random

    before = live_fibres(py)
    n = 150

    def job(i: int) -> int:
        for _ in range(3):
            py.pause_job()
        return i

    with py.WaitCtx() as ctx:
        handles = {i: py.start_job(None, ctx, job, i)[1] for i in range(n)}
        assert live_fibres(py) == before + n
        results = {}
        rng = random.Random(7)
        while handles:
            i = rng.choice(list(handles))
            status, _, ret = py.start_job(handles[i], None, None)
            if status == pa.FINISH:
                results[i] = ret
                del handles[i]
    assert results == {i: i for i in range(n)}
    py.cleanup_thread()
    assert live_fibres(py) == before


# -- no busy waiting ---------------------------------------------------------------------


def _thread_cpu(ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"), reason="needs per-thread CPU clocks")
def test_waiting_threads_burn_no_cpu(threads_py: PythonBackend) -> None:
    """A paused job's worker, and a driver waiting for a busy job, sleep in the kernel."""
    py = threads_py
    idents: List[int] = []

    def job(arg: Any) -> int:
        idents.append(threading.get_ident())
        py.pause_job()
        time.sleep(0.3)  # the driver waits meanwhile
        return 0

    with py.WaitCtx() as ctx:
        _, handle, _ = py.start_job(None, ctx, job)
        worker_before = _thread_cpu(idents[0])
        time.sleep(0.3)
        worker_spent = _thread_cpu(idents[0]) - worker_before
        driver_before = time.thread_time()
        py.start_job(handle, None, None)
        driver_spent = time.thread_time() - driver_before
    # a polling wait would have spent about 0.3 s of CPU in each case
    assert worker_spent < 0.1, worker_spent
    assert driver_spent < 0.1, driver_spent


def test_cycle_cost_figure(py: PythonBackend, capsys: pytest.CaptureFixture[str]) -> None:
    """Prints the cost of a pause+resume cycle next to a raw two-thread handoff (no timing asserts)."""
    n = 3000

    def job(arg: Any) -> int:
        for _ in range(n):
            py.pause_job()
        return 0

    with py.WaitCtx() as ctx:
        _, handle, _ = py.start_job(None, ctx, job)
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            status, _, _ = py.start_job(handle, None, None)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert status == pa.FINISH

    raw = _handoff_cycle()(n)  # the bench's raw two-thread handoff, the backend's floor
    with capsys.disabled():
        print(
            f"\n[python backend, {py.engine}] pause+resume cycle: {wall / n * 1e6:.1f} us wall, "
            f"{cpu / n * 1e6:.1f} us CPU (both threads); raw lock handoff: {raw / n * 1e6:.1f} us"
        )


# -- the handoff against signals in the driving thread ----------------------------------


class HandlerError(Exception):
    """What the test signal handler raises in the driving thread."""
    pass


@pytest.fixture
def usr1_raises() -> Iterator[threading.Event]:
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        pytest.skip("signal handlers run in the main thread")
    handled = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        handled.set()
        raise HandlerError("signal")

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        yield handled
    finally:
        signal.signal(signal.SIGUSR1, old)


def _signal_main_until(handled: threading.Event) -> None:
    """Signal the (waiting) main thread until its handler has run.

    A signal that lands just before the driver blocks in its lock wait is only
    handled when the driver next runs bytecode (CPython checks signals between
    instructions and on EINTR); repeating it once the driver sleeps gets it in.
    """
    for _ in range(100):
        signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)  # type: ignore[arg-type]
        if handled.wait(0.1):
            return
    raise AssertionError("the driving thread never ran its signal handler")


def _interrupt_driver(handled: threading.Event) -> None:
    _signal_main_until(handled)
    time.sleep(0.05)  # let the handler's exception reach the handoff


def test_signal_during_handoff_closes_the_paused_job(threads_py: PythonBackend, usr1_raises: threading.Event) -> None:
    py = threads_py
    log: List[str] = []

    def job(arg: Any) -> int:
        try:
            _interrupt_driver(usr1_raises)
            log.append("pausing")
            py.pause_job()
            log.append("resumed")  # pragma: no cover - never resumed normally
        except pa.JobCancelled:
            log.append("cancelled")
            raise
        return 1

    with py.WaitCtx() as ctx:
        with pytest.raises(HandlerError):
            py.start_job(None, ctx, job)
    assert log == ["pausing", "cancelled"]
    assert py.start_job(None, None, lambda a: 3) == (pa.FINISH, None, 3)  # the pool is intact


def test_signal_during_handoff_of_a_finishing_job(threads_py: PythonBackend, usr1_raises: threading.Event) -> None:
    py = threads_py
    def job(arg: Any) -> int:
        _interrupt_driver(usr1_raises)
        return 5

    with pytest.raises(HandlerError):
        py.start_job(None, None, job)

    def failing(arg: Any) -> int:
        _interrupt_driver(usr1_raises)
        raise KeyError("job's own")

    with pytest.raises(HandlerError) as info:
        py.start_job(None, None, failing)
    assert isinstance(info.value.__context__, KeyError)
    assert py.start_job(None, None, lambda a: 3) == (pa.FINISH, None, 3)


def test_second_signal_detaches_a_job_that_does_not_pause(threads_py: PythonBackend) -> None:
    """A job that never pauses cannot make Ctrl-C useless: a second one detaches it."""
    py = threads_py
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        pytest.skip("signal handlers run in the main thread")
    runs: List[int] = []
    first, second = threading.Event(), threading.Event()

    def handler(signum: int, frame: Any) -> None:
        runs.append(signum)
        (second if first.is_set() else first).set()
        raise HandlerError(f"signal {len(runs)}")

    release = threading.Event()
    after: List[Any] = []
    before = len(worker_threads())

    def stubborn(arg: Any) -> int:
        _signal_main_until(first)
        _signal_main_until(second)
        release.wait(30)  # the driver is gone by now
        after.append((py.pause_job(), py.start_job is not None))
        return 1

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        with py.WaitCtx() as ctx:
            with pytest.raises(HandlerError, match="signal 1"):
                py.start_job(None, ctx, stubborn)
            # the driving thread is free again while the job still runs
            assert py.start_job(None, None, lambda a: 4) == (pa.FINISH, None, 4)
            release.set()
            assert wait_for(lambda: after == [(True, True)])
    finally:
        signal.signal(signal.SIGUSR1, old)
    py.cleanup_thread()
    assert wait_for(lambda: len(worker_threads()) == before)  # the detached worker ended


def test_signal_handler_on_the_waiting_driver_cannot_pause(threads_py: PythonBackend) -> None:
    py = threads_py
    if threading.current_thread() is not threading.main_thread():  # pragma: no cover
        pytest.skip("signal handlers run in the main thread")
    handled = threading.Event()
    results: List[Any] = []

    def handler(signum: int, frame: Any) -> None:
        results.append(py.pause_job())  # runs in the driving thread, not in the job
        handled.set()

    def job(arg: Any) -> int:
        _signal_main_until(handled)
        py.pause_job()
        return 2

    old = signal.signal(signal.SIGUSR1, handler)
    try:
        with py.WaitCtx() as ctx:
            status, handle, _ = py.start_job(None, ctx, job)
            assert status == pa.PAUSE and results and all(r is True for r in results)
            assert py.start_job(handle, None, None) == (pa.FINISH, None, 2)
    finally:
        signal.signal(signal.SIGUSR1, old)


class _Body:
    """A job body for driving a bare Worker."""

    def __init__(self, worker_box: List[Worker], pauses: int) -> None:
        self.box = worker_box
        self.pauses = pauses
        self.log: List[str] = []

    def run_in_job(self) -> None:
        self.log.append("start")
        for _ in range(self.pauses):
            self.box[0].pause()
            self.log.append("resumed")
        self.log.append("end")


@pytest.mark.parametrize("stage", ["before-grant", "after-grant", "after-wake"])
def test_interrupted_handoff_completes_from_any_stage(stage: str) -> None:
    """``Worker.resume`` recovers wherever in the handoff an exception hit the driver."""
    registry: dict[int, Worker] = {}
    box: List[Worker] = []
    worker = Worker(None, registry, WORKER_PREFIX + "test")
    box.append(worker)
    body = _Body(box, pauses=2)
    worker.record = body
    worker.finished = False
    n = worker._grant + 1
    if stage != "before-grant":
        worker._grant = n
    if stage == "after-wake":
        worker._go.release()
    worker._complete_interrupted(n, KeyboardInterrupt())
    assert isinstance(worker.interrupt, KeyboardInterrupt)
    assert body.log == ["start"] and not worker.finished
    # a spare wake-up may be left behind: it must not let the job run ahead
    assert worker.resume() is False and body.log == ["start", "resumed"]
    assert worker.resume() is True and body.log == ["start", "resumed", "resumed", "end"]
    worker.stop()
    worker.join()
    assert not worker.alive and not registry


# -- greenlets under signals ----------------------------------------------------------------


def test_greenlet_a_signal_while_job_code_runs_is_raised_inside_the_job(
    greenlet_py: PythonBackend, usr1_raises: threading.Event
) -> None:
    """The job runs on the caller's thread, so a signal handler that runs meanwhile runs
    inside the job, as on an OpenSSL fibre: its exception is the job's to catch, or the
    job's exception that start_job raises."""
    py = greenlet_py
    log: List[str] = []

    def catching(arg: Any) -> int:
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(1000):  # the handler runs at the next instruction check
                pass
        except HandlerError:
            log.append("caught in the job")
        py.pause_job()
        return 4

    with py.WaitCtx() as ctx:
        status, handle, _ = py.start_job(None, ctx, catching)
        assert status == pa.PAUSE and log == ["caught in the job"]
        assert py.start_job(handle, None, None) == (pa.FINISH, None, 4)

        def not_catching(arg: Any) -> int:
            os.kill(os.getpid(), signal.SIGUSR1)
            for _ in range(1000):
                pass
            return 5  # pragma: no cover - the handler raised before

        with pytest.raises(HandlerError):
            py.start_job(None, ctx, not_catching)
    assert py.start_job(None, None, lambda a: 3) == (pa.FINISH, None, 3)  # the pool is intact


def test_greenlet_pause_from_a_handler_on_the_callers_side_is_a_no_op(greenlet_py: PythonBackend) -> None:
    """A handler (here: a trace function) that runs in start_job's own frames, on the
    caller's greenlet, is outside the job: pause_job() returns at once, get_current_job() is None."""
    py = greenlet_py
    seen: List[Any] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code.co_name == "_switch":
            seen.append((py.pause_job(), py.get_current_job()))
        return None

    with py.WaitCtx() as ctx:
        sys.settrace(tracer)
        try:
            status, handle, _ = py.start_job(None, ctx, lambda a: int(py.pause_job()) + 1)
            status2, _, ret = py.start_job(handle, None, None)
        finally:
            sys.settrace(None)
    assert (status, status2, ret) == (pa.PAUSE, pa.FINISH, 2)
    assert seen == [(True, None), (True, None)]


# -- an interrupt at any line of ours ---------------------------------------------------------

#: the library's files a signal handler's exception is made to land in, line after line
LIBRARY_FILES = (
    "_base.py",
    "_records.py",
    "_interrupts.py",
    "_closing.py",
    "python.py",
    "_python_workers.py",
    "_python_greenlets.py",
    "_python_executors.py",
)


def _in_finaliser(frame: Any) -> bool:
    """Whether ``frame`` runs for an earlier object's ``__del__`` or weakref callback."""
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_name in ("__del__", "_woken_by_death"):
            return True
        frame = frame.f_back
    return False


def _unreachable_by_signals(frame: Any) -> bool:
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    line = linecache.getline(filename, lineno).strip()
    if line == "try:" or line.startswith("with "):
        return True
    previous = ""
    while lineno > 1 and not previous:
        lineno -= 1
        previous = linecache.getline(filename, lineno).strip()
    return previous == "finally:"


class LineInterrupter:
    """A trace function that raises KeyboardInterrupt at the n-th line (or call) of the
    library's own code run on this thread, as a signal handler's exception would land there.

    Not at a ``try:`` or ``with`` line: CPython never runs a handler between the
    instruction before a ``try`` and the block's set-up (3.9 skips the check there; 3.10+
    checks only at calls and backward jumps), nor between a ``with`` statement's
    ``__enter__`` and its block; and the line event a ``with`` line gets again for its
    ``__exit__`` is a point where 3.10+ never runs one either; nor at the first line of a
    ``finally`` block. (3.9 can at those last two: the shared layer copes with the
    ``finally`` case, see ``backends._interrupts.busy``; the ``with`` one is a CPython 3.9 limit, bpo-29988.)
    """

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.fired = False
        self.main = threading.get_ident()

    def __call__(self, frame: Any, event: str, arg: Any) -> Any:
        if threading.get_ident() != self.main or self.fired:
            return None  # signal handlers run on the main thread only
        code = frame.f_code
        if not code.co_filename.endswith(LIBRARY_FILES) or "pyossl_async" not in code.co_filename:
            return self
        if _in_finaliser(frame):  # an earlier object's: CPython prints and drops it there
            return None
        if event == "call" or (event == "line" and not _unreachable_by_signals(frame)):
            self.count += 1
            if self.count == self.n:
                self.fired = True
                raise KeyboardInterrupt(f"at line {frame.f_lineno} of {frame.f_code.co_name}")
        return self


def _check_records(py: PythonBackend, handles: List[Any]) -> None:
    """What must hold after any interrupted call: nothing left running, the pool sound."""
    for h in handles:
        assert h.state in ("paused", "finished"), h.state
    thread = py._threads.get(threading.get_ident())
    if thread is None:  # interrupted before this thread's first record was made
        assert not handles
        return
    assert thread.running is None and thread.busy == 0
    pool = thread.engine.pool if thread.engine is not None else None
    if pool is not None:
        idle_ids = [id(f) for f in pool.idle]
        assert len(idle_ids) == len(set(idle_ids)), "a fibre pooled twice"
        attached = {id(r.engine) for r in thread.paused if r.engine is not None}
        assert not attached & set(idle_ids), "a paused job's fibre is idle in the pool"
        assert len(idle_ids) + len(attached) <= pool.curr_size


@pytest.mark.parametrize("op", ["start", "resume-pause", "resume-finish", "close"])
def test_an_interrupt_at_any_line_of_a_call_leaves_consistent_records(py: PythonBackend, op: str) -> None:
    """Ctrl-C can land between any two lines of a start, a resume or a close (CPython runs
    signal handlers there). Whatever line it hits: the call raises it or completes, no
    job is left running, no fibre is pooled twice or lost to a paused job, every job
    that began runs its ``finally`` once it is closed, and the backend goes on."""
    began: List[int] = []
    unwound: List[int] = []

    def job(pauses: int) -> int:
        began.append(pauses)
        try:
            for _ in range(pauses):
                py.pause_job()
        finally:
            unwound.append(pauses)
        return pauses

    n = 0
    while True:
        n += 1
        assert n < 2000, "the call never completed without being interrupted"
        handles: List[Any] = []
        with py.WaitCtx() as ctx:
            if op != "start":
                handles.append(py.start_job(None, ctx, job, 2 if op == "resume-pause" else 1)[1])
            interrupter = LineInterrupter(n)
            sys.settrace(interrupter)
            try:
                if op == "start":
                    status, h, _ = py.start_job(None, ctx, job, 1)
                    handles.append(h)
                elif op.startswith("resume"):
                    py.start_job(handles[0], None, None)
                else:
                    handles[0].close()
            except KeyboardInterrupt:
                pass
            finally:
                sys.settrace(None)
            _check_records(py, [h for h in handles if h is not None])
            for h in handles:
                if h is not None and h.state == "paused":
                    h.close()
            # the backend goes on
            status, h, _ = py.start_job(None, ctx, job, 1)
            assert status == pa.PAUSE and py.start_job(h, None, None) == (pa.FINISH, None, 1)
            _check_records(py, [h])
        assert sorted(began) == sorted(unwound), (n, began, unwound)
        if not interrupter.fired:
            break  # the call ran to its end: every line of it was tried
    assert n > 5


# -- garbage collection from a worker thread ---------------------------------------------


def test_handle_dropped_inside_another_job_is_closed_by_its_driver(py: PythonBackend) -> None:
    log: List[str] = []

    def victim(arg: Any) -> int:
        try:
            py.pause_job()
        except pa.JobCancelled:
            log.append(f"cancelled in the job={fibre_here(py) is not None}")
            raise
        return 0

    box: List[Any] = []

    def dropper(arg: Any) -> int:
        box.clear()  # the last reference dies on this worker thread
        log.append("dropped")
        return 0

    with py.WaitCtx() as ctx, warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        box.append(py.start_job(None, ctx, victim)[1])
        assert py.start_job(None, None, dropper) == (pa.FINISH, None, 0)
        # closed when the driving thread was back outside any job (on the job's own fibre)
        assert log == ["dropped", "cancelled in the job=True"]


# -- threading.local isolation -----------------------------------------------------------


def test_threadlocal_scrubber_is_verified_where_supported() -> None:
    found: List[Any] = []
    scrubber = _python_threadlocal.ThreadLocalScrubber
    t = threading.Thread(target=lambda: found.append(scrubber.for_current_thread()))
    t.start()
    t.join()
    if _python_threadlocal.SUPPORTED:
        assert found[0] is not None
    else:
        assert found == [None]


def test_threading_local_values_of_the_caller_are_not_touched(py: PythonBackend) -> None:
    local = threading.local()
    local.value = "caller"
    py.start_job(None, None, lambda a: 0)
    assert local.value == "caller"


# -- process life: exit, fork, no ctypes --------------------------------------------------


@pytest.mark.subprocess
def test_interpreter_exits_promptly_with_workers_in_every_state(python_engine: str) -> None:
    proc = run_isolated(
        """
        import threading, time, warnings
        import pyossl_async as pa
        be = pa.get_backend("python")
        warnings.simplefilter("ignore")
        ctx = be.WaitCtx()

        def paused(arg):
            try:
                be.pause_job()
            finally:
                print("unwound", arg, flush=True)
            return 0

        be.init_thread(0, 0)
        be.start_job(None, None, lambda a: 0)          # an idle worker
        kept = be.start_job(None, ctx, paused, "main")[1]  # paused, main thread

        def orphaning_thread():
            c = be.WaitCtx()
            globals()["orphan"] = be.start_job(None, c, paused, "orphan")[1]
        t = threading.Thread(target=orphaning_thread); t.start(); t.join()

        stuck = threading.Event()
        def daemon_driver():
            be.start_job(None, None, lambda a: stuck.wait())   # a job that never ends
        threading.Thread(target=daemon_driver, daemon=True).start()
        time.sleep(0.1)
        print("exiting", flush=True)
        """,
        env=engine_env(python_engine),
        timeout=60,
    )
    lines = proc.stdout.split()
    assert "exiting" in lines
    # the main thread's paused job is unwound at exit (its finally ran); the orphan cannot be
    assert proc.stdout.count("unwound main") == 1 and "unwound orphan" not in proc.stdout


@pytest.mark.subprocess
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_resets_pools_in_the_child(python_engine: str) -> None:
    proc = run_isolated(
        """
        import os, threading
        import pyossl_async as pa
        be = pa.get_backend("python")
        ctx = be.WaitCtx()
        def job(arg):
            be.pause_job()
            return arg
        be.init_thread(2, 2)
        _, h, _ = be.start_job(None, ctx, job, 1)
        pid = os.fork()
        if pid == 0:
            try:
                try:
                    be.start_job(h, None, None)
                    print("child: resumed?!")
                except pa.JobStateError:
                    print("child: parent's job refused")
                assert be._executor.live_fibres() == 0
                c2 = be.WaitCtx()
                _, h2, _ = be.start_job(None, c2, job, 2)
                print("child:", be.start_job(h2, None, None)[2])
                be.cleanup_thread()
                c2.close()
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        print("parent:", be.start_job(h, None, None)[2], os.WEXITSTATUS(status))
        """,
        env=engine_env(python_engine),
        timeout=60,
    )
    assert proc.stdout.splitlines() == ["child: parent's job refused", "child: 2", "parent: 1 0"]


@pytest.mark.subprocess
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_inside_a_job_does_not_hang_the_child(python_engine: str) -> None:
    proc = run_isolated(
        """
        import os, sys, time, warnings
        import pyossl_async as pa
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        be = pa.get_backend("python")
        ctx = be.WaitCtx()
        parent = os.getpid()
        def job(arg):
            pid = os.fork()
            if pid == 0:
                # no driving thread exists in the child: pausing is a no-op
                print("child pause:", be.pause_job(), be.get_current_job(), flush=True)
                # the child ends when the job does (the worker thread, or the process
                # on greenlets and in the openssl backend: nothing to return to)
                return 9
            be.pause_job()
            return pid
        first = be.start_job(None, ctx, job)
        if os.getpid() != parent:
            print("child: start_job returned", first, flush=True)
            os._exit(0)
        _, _, pid = be.start_job(first[1], None, None)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                print("child exited")
                break
            time.sleep(0.02)
        else:
            os.kill(pid, 9)
            print("child hung")
        """,
        env=engine_env(python_engine),
        timeout=60,
    )
    assert "child pause: True None" in proc.stdout
    assert "child exited" in proc.stdout
    assert "child: start_job returned" not in proc.stdout, proc.stdout


@pytest.mark.subprocess
def test_works_without_ctypes() -> None:
    proc = run_isolated(
        """
        import sys
        sys.modules["ctypes"] = None   # any import of ctypes now fails
        import pyossl_async as pa
        from pyossl_async._cli.demo import run_demo
        be = pa.get_backend("python")
        assert run_demo(be) == 0
        with be.WaitCtx() as ctx:
            def job(arg):
                be.pause_job()
                return len(arg)
            _, h, _ = be.start_job(None, ctx, job, b"abc")
            print("result", be.start_job(h, None, None)[2])
        print("available", pa.available_backends())
        print("default", pa.get_backend().name)
        from pyossl_async import _registry
        print("reason", _registry.selection_reason())
        assert sys.modules["ctypes"] is None
        leaked = [m for m in sys.modules if m.startswith("ctypes.") or m == "_ctypes"]
        assert not leaked, leaked
        """,
        env={"PYOSSL_ASYNC_BACKEND": "", "PYOSSL_ASYNC_LIBCRYPTO": ""},
    )
    out = proc.stdout
    assert "Job finished with return value 1" in out and "result 3" in out
    assert "available ['python']" in out and "default python" in out
    assert "reason fell back to python: openssl is unavailable" in out


def test_python_backend_modules_do_not_import_ctypes() -> None:
    import ast
    import pathlib

    backends = pathlib.Path(pa.__file__).parent / "backends"
    for path in [backends / "python.py", *backends.glob("_python_*.py"), backends / "_base.py"]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n.split(".")[0] in ("ctypes", "_ctypes") for n in names), (path, names)


@pytest.mark.subprocess
def test_demo_command_on_the_python_backend() -> None:
    import subprocess

    from pyossl_async._cli.demo import EXPECTED_OUTPUT

    env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pyossl_async", "demo", "--backend", "python"],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == EXPECTED_OUTPUT


def test_info_describes_the_engine(py: PythonBackend) -> None:
    info = py.info()
    assert info["engine"] == py.engine
    assert info["engine_detail"] and info["engine_reason"]
    # on greenlets a job shares its caller's thread, and so its threading.local values
    isolated = _python_threadlocal.SUPPORTED and py.engine == "threads"
    assert info["threading_local_isolation"] == isolated
    assert isinstance(info["worker_threads"], int)
    assert py.openssl_version is None and py.is_capable() is True


@pytest.mark.subprocess
@pytest.mark.parametrize("engine", PYTHON_ENGINES)
def test_info_command_says_which_engine_runs_and_why(engine: str) -> None:
    from .conftest import greenlet_problem

    if engine == "greenlet" and greenlet_problem() is not None:
        pytest.skip(f"the greenlet engine cannot run here: {greenlet_problem()}")
    proc = run_isolated(
        "import runpy, sys; sys.argv = ['pyossl_async', 'info']; runpy.run_module('pyossl_async', run_name='__main__')",
        env=engine_env(engine),
        timeout=60,
        check=False,
    )
    assert f"engine: {engine}" in proc.stdout, proc.stdout + proc.stderr
    assert f"engine_reason: PYOSSL_ASYNC_PYTHON_ENGINE={engine}" in proc.stdout, proc.stdout
