"""Behaviour specific to the ``"python"`` backend: workers, pools, handoff, process life.

What both backends share is tested, parametrised, elsewhere; here are the parts
only the pure-Python engine has: jobs on pooled worker threads, how those are
created, reused (LIFO), stopped and never left hanging, what a signal in the
driving thread does to a handoff, fork, and that no ctypes is needed.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import threading
import time
import warnings
from typing import Any, Iterator, List

import pytest

import pyossl_async as pa
from pyossl_async._bench import _handoff_cycle
from pyossl_async.backends import _python_threadlocal
from pyossl_async.backends._python_workers import Worker
from pyossl_async.backends.python import PythonBackend

from .conftest import load_backend, run_isolated

WORKER_PREFIX = "pyossl-async-worker-"


def worker_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(WORKER_PREFIX)]


def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` (test helper only; the library itself never polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return bool(predicate())


@pytest.fixture
def py() -> Iterator[PythonBackend]:
    be = load_backend("python")
    assert isinstance(be, PythonBackend)
    be.cleanup_thread()
    yield be
    thread = be._threads.get(threading.get_ident())
    leftover = list(thread.paused) if thread is not None else []
    for record in leftover:
        be._cancel_quietly(thread, record)  # type: ignore[arg-type]
    be.cleanup_thread()
    assert not leftover, f"test left {len(leftover)} paused job(s)"


def pausing_job(be: pa.Backend, log: List[Any]) -> Any:
    def job(arg: Any) -> int:
        log.append((arg, threading.get_ident()))
        be.pause_job()
        log.append((arg, threading.get_ident()))
        return 0

    return job


# -- jobs run on worker threads, mapped to their driving thread ------------------------


def test_job_runs_on_a_worker_thread_of_its_driver(py: PythonBackend) -> None:
    seen: dict[str, Any] = {}

    def job(arg: Any) -> int:
        seen["ident"] = threading.get_ident()
        seen["thread"], seen["record"] = py._current()
        py.block_pause()
        return 0

    me = threading.get_ident()
    assert py.start_job(None, None, job) == (pa.FINISH, None, 0)
    assert seen["ident"] != me
    assert seen["thread"] is py._threads[me] and seen["record"] is not None
    # the block counter went to the driving thread's state, not the worker's
    assert py._threads[me].engine.blocked == 1
    assert threading.get_ident() not in py._workers


def test_worker_threads_are_daemons_with_names(py: PythonBackend) -> None:
    idents: List[int] = []
    py.start_job(None, None, lambda a: idents.append(threading.get_ident()) or 0)
    (worker,) = [t for t in worker_threads() if t.ident == idents[0]]
    assert worker.daemon and worker.name.startswith(WORKER_PREFIX)


def test_finished_workers_are_reused_lifo(py: PythonBackend) -> None:
    log: List[Any] = []
    with py.WaitCtx() as ctx:
        _, a, _ = py.start_job(None, ctx, pausing_job(py, log), "a")
        _, b, _ = py.start_job(None, ctx, pausing_job(py, log), "b")
        wa, wb = log[0][1], log[1][1]
        assert wa != wb
        py.start_job(a, None, None)  # a's worker goes idle first
        py.start_job(b, None, None)  # then b's: it is on top of the stack
        assert log[2] == ("a", wa) and log[3] == ("b", wb)  # resumed on their own workers
        _, c, _ = py.start_job(None, ctx, pausing_job(py, log), "c")
        _, d, _ = py.start_job(None, ctx, pausing_job(py, log), "d")
        assert log[4] == ("c", wb) and log[5] == ("d", wa)
        py.start_job(c, None, None)
        py.start_job(d, None, None)
    assert len({ident for _, ident in log}) == 2


def test_init_size_precreates_workers_and_the_last_is_used_first(py: PythonBackend) -> None:
    before = len(worker_threads())
    assert py.init_thread(3, 3) is True
    assert len(worker_threads()) == before + 3
    pool = py._threads[threading.get_ident()].engine.pool
    assert pool.curr_size == 3 and len(pool.idle) == 3
    last = pool.idle[-1].ident
    seen: List[int] = []
    py.start_job(None, None, lambda a: seen.append(threading.get_ident()) or 0)
    assert seen == [last]
    assert len(worker_threads()) == before + 3  # no new thread for that job


def test_max_size_bounds_the_worker_threads(py: PythonBackend) -> None:
    before = len(worker_threads())
    assert py.init_thread(2, 0)
    log: List[Any] = []
    with py.WaitCtx() as ctx:
        handles = [py.start_job(None, ctx, pausing_job(py, log), i)[1] for i in range(2)]
        assert py.start_job(None, ctx, pausing_job(py, log), 2) == (pa.NO_JOBS, None, None)
        assert len(worker_threads()) == before + 2
        for h in handles:
            py.start_job(h, None, None)


def test_cleanup_thread_stops_idle_workers(py: PythonBackend) -> None:
    before = len(worker_threads())
    assert py.init_thread(4, 4)
    assert len(worker_threads()) == before + 4
    py.cleanup_thread()  # joins them
    assert len(worker_threads()) == before
    assert py._threads[threading.get_ident()].engine.pool is None


def test_second_init_thread_replaces_the_pool(py: PythonBackend) -> None:
    before = len(worker_threads())
    log: List[Any] = []
    assert py.init_thread(1, 1)
    with py.WaitCtx() as ctx:
        _, a, _ = py.start_job(None, ctx, pausing_job(py, log), "a")
        wa = log[0][1]
        assert py.init_thread(1, 1)  # a new pool with one fresh idle worker
        state = py._threads[threading.get_ident()].engine
        fresh = state.pool.idle[-1].ident
        assert fresh != wa and state.pool.curr_size == 1
        py.start_job(a, None, None)  # a's worker joins the *new* pool, on top
        assert [w.ident for w in state.pool.idle] == [fresh, wa]
        _, b, _ = py.start_job(None, ctx, pausing_job(py, log), "b")
        _, c, _ = py.start_job(None, ctx, pausing_job(py, log), "c")
        assert log[2][1] == wa and log[3][1] == fresh
        assert py.start_job(None, ctx, pausing_job(py, log), "d") == (pa.NO_JOBS, None, None)
        py.start_job(b, None, None)
        py.start_job(c, None, None)
    py.cleanup_thread()
    assert wait_for(lambda: len(worker_threads()) == before)


def test_a_thread_the_os_refuses_is_a_job_that_cannot_be_created(
    py: PythonBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in C: NO_JOBS from start_job, fewer pre-created jobs from init_thread."""

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    assert py.init_thread(3, 1)
    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", refuse)
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
    py: PythonBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: Ctrl-C (or any handler's exception) landing while ``Thread.start`` waited
    for a new worker left that thread idle for good; under an interrupt storm they
    piled up by the hundred. Now the start fails with the exception and the thread ends."""
    py.cleanup_thread()
    before = len(worker_threads())
    registered = py.info()["worker_threads"]  # (other tests' threads may have left some)
    original = threading.Thread.start

    def interrupted(self: threading.Thread) -> None:
        original(self)  # the OS thread runs...
        raise KeyboardInterrupt  # ...and the caller is interrupted before it hears so

    with monkeypatch.context() as m:
        m.setattr(threading.Thread, "start", interrupted)
        with py.WaitCtx() as ctx:
            with pytest.raises(KeyboardInterrupt):
                py.start_job(None, ctx, lambda arg: 1)
    assert wait_for(lambda: len(worker_threads()) == before)
    assert py.info()["worker_threads"] == registered
    with py.WaitCtx() as ctx:  # and the backend goes on
        assert py.start_job(None, ctx, lambda arg: 6) == (pa.FINISH, None, 6)


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


def test_a_driving_thread_that_ends_frees_its_idle_workers(py: PythonBackend) -> None:
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


def test_many_paused_jobs_each_hold_a_worker(py: PythonBackend) -> None:
    import random

    before = len(worker_threads())
    n = 150

    def job(i: int) -> int:
        for _ in range(3):
            py.pause_job()
        return i

    with py.WaitCtx() as ctx:
        handles = {i: py.start_job(None, ctx, job, i)[1] for i in range(n)}
        assert len(worker_threads()) == before + n
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
    assert len(worker_threads()) == before


# -- no busy waiting ---------------------------------------------------------------------


def _thread_cpu(ident: int) -> float:
    return time.clock_gettime(time.pthread_getcpuclockid(ident))


@pytest.mark.skipif(not hasattr(time, "pthread_getcpuclockid"), reason="needs per-thread CPU clocks")
def test_waiting_threads_burn_no_cpu(py: PythonBackend) -> None:
    """A paused job's worker, and a driver waiting for a busy job, sleep in the kernel."""
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
            f"\n[python backend] pause+resume cycle: {wall / n * 1e6:.1f} us wall, "
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


def test_signal_during_handoff_closes_the_paused_job(py: PythonBackend, usr1_raises: threading.Event) -> None:
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


def test_signal_during_handoff_of_a_finishing_job(py: PythonBackend, usr1_raises: threading.Event) -> None:
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


def test_second_signal_detaches_a_job_that_does_not_pause(py: PythonBackend) -> None:
    """A job that never pauses cannot make Ctrl-C useless: a second one detaches it."""
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


def test_signal_handler_on_the_waiting_driver_cannot_pause(py: PythonBackend) -> None:
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


# -- garbage collection from a worker thread ---------------------------------------------


def test_handle_dropped_inside_another_job_is_closed_by_its_driver(py: PythonBackend) -> None:
    log: List[str] = []

    def victim(arg: Any) -> int:
        try:
            py.pause_job()
        except pa.JobCancelled:
            log.append(f"cancelled on driver={threading.get_ident() != main}")
            raise
        return 0

    main = threading.get_ident()
    box: List[Any] = []

    def dropper(arg: Any) -> int:
        box.clear()  # the last reference dies on this worker thread
        log.append("dropped")
        return 0

    with py.WaitCtx() as ctx, warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        box.append(py.start_job(None, ctx, victim)[1])
        assert py.start_job(None, None, dropper) == (pa.FINISH, None, 0)
        # closed when the driving thread was back outside any job, on a worker
        assert log == ["dropped", "cancelled on driver=True"]


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
def test_interpreter_exits_promptly_with_workers_in_every_state() -> None:
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
        timeout=60,
    )
    lines = proc.stdout.split()
    assert "exiting" in lines
    # the main thread's paused job is unwound at exit (its finally ran); the orphan cannot be
    assert proc.stdout.count("unwound main") == 1 and "unwound orphan" not in proc.stdout


@pytest.mark.subprocess
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_resets_pools_in_the_child() -> None:
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
                assert be._workers == {}
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
        timeout=60,
    )
    assert proc.stdout.splitlines() == ["child: parent's job refused", "child: 2", "parent: 1 0"]


@pytest.mark.subprocess
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_inside_a_job_does_not_hang_the_child() -> None:
    proc = run_isolated(
        """
        import os, sys, time, warnings
        import pyossl_async as pa
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads, 3.12+
        be = pa.get_backend("python")
        ctx = be.WaitCtx()
        def job(arg):
            pid = os.fork()
            if pid == 0:
                # no driving thread exists in the child: pausing is a no-op
                print("child pause:", be.pause_job(), be.get_current_job(), flush=True)
                return 9   # the worker thread ends, and with it the child
            be.pause_job()
            return pid
        _, h, _ = be.start_job(None, ctx, job)
        _, _, pid = be.start_job(h, None, None)
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
        timeout=60,
    )
    assert "child pause: True None" in proc.stdout
    assert "child exited" in proc.stdout


@pytest.mark.subprocess
def test_works_without_ctypes() -> None:
    proc = run_isolated(
        """
        import sys
        sys.modules["ctypes"] = None   # any import of ctypes now fails
        import pyossl_async as pa
        from pyossl_async._demo import run_demo
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

    from pyossl_async._demo import EXPECTED_OUTPUT

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
    assert info["threading_local_isolation"] == _python_threadlocal.SUPPORTED
    assert isinstance(info["worker_threads"], int)
    assert py.openssl_version is None and py.is_capable() is True
