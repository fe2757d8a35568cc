"""What only the blocking pa.run_job has: timeouts, and being called from many threads."""

from __future__ import annotations

import math
import os
import threading
from typing import Any, List

import pytest

import pyossl_async as pa

from ._drivers import (
    Pipes,
    ctx_of,
    later,
    open_fds,
    pipes_fixture,  # noqa: F401
)


def test_timeout_closes_the_job(backend: pa.Backend, pipes: Pipes) -> None:
    r, _ = pipes.new()
    trace: List[str] = []
    ctxs: List[Any] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        ctxs.append(ctx)
        ctx.set_wait_fd("never", r)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            trace.append("cancelled")
            raise
        finally:
            trace.append("finally")
        return 1

    with pytest.raises(TimeoutError, match=r"did not finish within 0\.05 s"):
        pa.run_job(job, backend=backend, timeout=0.05)
    assert trace == ["cancelled", "finally"]
    assert ctxs[0].closed


def test_timeout_on_a_job_that_never_stops_pausing(backend: pa.Backend) -> None:
    count = [0]

    def spinner(arg: Any) -> int:
        while True:
            count[0] += 1
            backend.pause_job()

    with pytest.raises(TimeoutError):
        pa.run_job(spinner, backend=backend, timeout=0.05)
    assert count[0] >= 1


def test_timeout_counts_the_whole_run_whatever_path_the_job_takes(backend: pa.Backend, pipes: Pipes) -> None:
    r, w = pipes.new()
    os.write(w, b"x")

    def ready(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("ready", r)
        backend.pause_job()
        ctx_of(backend).clear_fd("ready")
        return 5

    # a job that never pauses runs to the end whatever the timeout
    assert pa.run_job(lambda a: 1, backend=backend, timeout=0) == 1
    assert pa.run_job(ready, backend=backend, timeout=30) == 5
    # the deadline is checked at every pause, also when nothing has to be waited for
    with pytest.raises(TimeoutError):
        pa.run_job(ready, backend=backend, timeout=0)
    with pytest.raises(TimeoutError):
        pa.run_job(lambda a: int(backend.pause_job()), backend=backend, timeout=0)


def test_timeout_with_callback_mode(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        ctx_of(backend).set_status(pa.WaitStatus.OK)  # a callback that never comes
        backend.pause_job()
        return 1

    with pytest.raises(TimeoutError):
        pa.run_job(job, backend=backend, timeout=0.05)


def test_timeout_close_error_is_the_cause(backend: pa.Backend, pipes: Pipes) -> None:
    r, _ = pipes.new()

    def job(arg: Any) -> int:
        ctx_of(backend).set_wait_fd("never", r)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            raise OSError("unwinding failed") from None
        return 1

    with pytest.raises(TimeoutError) as info:
        pa.run_job(job, backend=backend, timeout=0.01)
    assert isinstance(info.value.__cause__, OSError)


@pytest.mark.parametrize("bad", [-1, math.nan, -0.5])
def test_bad_timeout_values(backend: pa.Backend, bad: float) -> None:
    with pytest.raises(ValueError):
        pa.run_job(lambda a: 1, backend=backend, timeout=bad)


@pytest.mark.parametrize("bad", ["1", True, [1]])
def test_bad_timeout_types(backend: pa.Backend, bad: Any) -> None:
    with pytest.raises(TypeError):
        pa.run_job(lambda a: 1, backend=backend, timeout=bad)


def test_keyboard_interrupt_while_waiting_closes_the_job(backend: pa.Backend, pipes: Pipes) -> None:
    r, _ = pipes.new()
    trace: List[str] = []

    def job(arg: Any) -> int:
        ctx = ctx_of(backend)
        ctx.set_wait_fd("never", r)
        ctx.set_status(pa.WaitStatus.OK)  # waits on the fd and the callback pipe
        try:
            backend.pause_job()
        except pa.JobCancelled:
            trace.append("cancelled")
            raise
        return 1

    # Ctrl-C while run_job waits: a signal handler raising in the driving thread
    import signal

    if not hasattr(signal, "pthread_kill"):
        pytest.skip("needs pthread_kill")
    previous = signal.signal(signal.SIGUSR1, _raise_interrupt)
    try:
        later(0.05, signal.pthread_kill, threading.get_ident(), signal.SIGUSR1)
        with pytest.raises(KeyboardInterrupt):
            pa.run_job(job, backend=backend, timeout=30)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert trace == ["cancelled"]


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def test_many_threads_each_drive_their_own_jobs(backend: pa.Backend) -> None:
    errors: List[BaseException] = []
    results: List[int] = []
    lock = threading.Lock()

    def job(arg: Any) -> int:
        for _ in range(3):
            r, w = os.pipe()
            ctx_of(backend).set_wait_fd(r, r, w, lambda c, k, r, w: (os.close(r), os.close(w)))
            later(0.001, os.write, w, b"x")
            backend.pause_job()
            os.read(r, 1)
            ctx_of(backend).clear_fd(r)
            os.close(r)
            os.close(w)
        return int(arg)

    def worker(n: int) -> None:
        try:
            got = [pa.run_job(job, n * 100 + i, backend=backend, timeout=60) for i in range(20)]
            with lock:
                results.extend(got)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            backend.cleanup_thread()

    before = open_fds()
    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(results) == sorted(n * 100 + i for n in range(4) for i in range(20))
    assert open_fds() == before
