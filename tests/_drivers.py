"""What the driver tests share: the drivers to run a job with, and small fd tools."""

from __future__ import annotations

import asyncio
import os
import select
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Sequence

import pytest

import pyossl_async as pa
from pyossl_async import aio

try:
    import uvloop
except ImportError:  # optional
    uvloop = None
try:
    import trio
except ImportError:  # optional
    trio = None

#: every test that takes ``driver`` runs once per driver: the blocking
#: pa.run_job, aio.run_job on asyncio's loop, on uvloop's when installed, and
#: pyossl_async.trio.run_job when trio is installed
DRIVERS = ["blocking", "asyncio", "uvloop", "trio"]
#: the asyncio drivers alone
AIO_DRIVERS = ["asyncio", "uvloop"]
#: the drivers that run many jobs at once in one event loop run
ASYNC_DRIVERS = ["asyncio", "uvloop", "trio"]

#: no test should wait this long; a driver that hangs fails instead
HANG = 60.0


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        if uvloop is None:
            pytest.skip("uvloop is not installed (optional)")
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


def run_async(kind: str, coro_fn: Callable[[], Any]) -> Any:
    """Run ``coro_fn()`` to the end on a new loop of ``kind``; fail instead of hanging."""
    loop = new_loop(kind)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(), HANG))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def drive(kind: str, backend: Any, func: Callable[[Any], int], args: Any = None, **kw: Any) -> int:
    """Run ``func(args)`` in a job with the driver ``kind``; its result."""
    if kind == "blocking":
        kw.setdefault("timeout", HANG)
        return pa.run_job(func, args, backend=backend, **kw)
    if kind == "trio":
        return run_trio(lambda: _trio_driver().run_job(func, args, backend=backend, **kw))

    async def main() -> int:
        return await aio.run_job(func, args, backend=backend, **kw)

    return run_async(kind, main)  # type: ignore[no-any-return]


def run_jobs(
    kind: str,
    backend: Any,
    func: Callable[[Any], Any],
    args: Sequence[Any],
    *,
    return_exceptions: bool = False,
    before: Optional[Callable[[], Any]] = None,
) -> List[Any]:
    """``func(arg)`` for every ``arg``, each in a job of its own, all at once in one run of
    the async driver ``kind`` (asyncio, uvloop: ``asyncio.gather``; trio: a nursery);
    their results in order, with exceptions in their places if ``return_exceptions``.
    ``before`` runs first, inside the run, on its thread (``init_thread`` and the like)."""
    if kind == "trio":
        driver = _trio_driver()

        async def in_trio() -> List[Any]:
            if before is not None:
                before()
            results: List[Any] = [None] * len(args)

            async def one(i: int, arg: Any) -> None:
                try:
                    results[i] = await driver.run_job(func, arg, backend=backend)
                except Exception as exc:
                    if not return_exceptions:
                        raise
                    results[i] = exc

            async with trio.open_nursery() as nursery:
                for i, arg in enumerate(args):
                    nursery.start_soon(one, i, arg)
            return results

        return run_trio(in_trio)  # type: ignore[no-any-return]

    async def in_asyncio() -> List[Any]:
        if before is not None:
            before()
        jobs = (aio.run_job(func, arg, backend=backend) for arg in args)
        return list(await asyncio.gather(*jobs, return_exceptions=return_exceptions))

    return run_async(kind, in_asyncio)  # type: ignore[no-any-return]


def _trio_driver() -> Any:
    from pyossl_async import trio as driver

    return driver


def run_trio(coro_fn: Callable[[], Any]) -> Any:
    """Run ``coro_fn()`` to the end in a new trio run; fail instead of hanging."""
    if trio is None:
        pytest.skip("trio is not installed (optional)")

    async def main() -> Any:
        with trio.fail_after(HANG):
            return await coro_fn()

    return trio.run(main)


def readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def nonblocking_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    return r, w


def later(delay: float, fn: Callable[..., Any], *args: Any) -> threading.Timer:
    """Call ``fn(*args)`` on a timer thread (an "accelerator" finishing later)."""
    timer = threading.Timer(delay, fn, args)
    timer.daemon = True
    timer.start()
    return timer


def kept_none_left(timeout: float = 10.0) -> bool:
    """Whether the library keeps no job stuck in C any more (its keeper thread reads its
    requests asynchronously: waits up to ``timeout``)."""
    from pyossl_async.backends import _keeper

    deadline = time.monotonic() + timeout
    while _keeper._WATCHER.kept() and time.monotonic() < deadline:
        time.sleep(0.005)
    return not _keeper._WATCHER.kept()


def open_fds() -> List[int]:
    return sorted(int(n) for n in os.listdir("/proc/self/fd"))


def ctx_of(backend: Any) -> Any:
    """Inside a job: the job's wait context."""
    return backend.get_wait_ctx(backend.get_current_job())


def never_resumed(backend: Any, trace: List[str]) -> Callable[[Any], int]:
    """A job function that waits for a callback that never comes; ``"cancelled"``
    lands in ``trace`` when the job is closed."""

    def job(arg: Any) -> int:
        ctx_of(backend).set_status(pa.WaitStatus.OK)
        try:
            backend.pause_job()
        except pa.JobCancelled:
            trace.append("cancelled")
            raise
        return 1

    return job


class Pipes:
    """Pipes a test creates, all closed at the end."""

    def __init__(self) -> None:
        self.fds: List[int] = []

    def new(self) -> tuple[int, int]:
        r, w = nonblocking_pipe()
        self.fds += [r, w]
        return r, w

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds.clear()


@pytest.fixture(name="pipes")
def pipes_fixture() -> Iterator[Pipes]:
    """Import ``pipes_fixture`` into a test module to use the ``pipes`` fixture."""
    p = Pipes()
    yield p
    p.close()


def drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def loop_readers(loop: asyncio.AbstractEventLoop) -> Optional[int]:
    """How many fds a stdlib selector loop watches (None where it cannot be seen)."""
    selector = getattr(loop, "_selector", None)
    if selector is None:
        return None
    return len(selector.get_map())
