"""Helpers for *engine* code: code inside a job that starts work elsewhere and waits.

An OpenSSL async engine hands an operation to an accelerator, tells the
application how it will know the operation is done, pauses the job, and when
resumed clears the wake-up signal (``ASYNC_start_job(3)``, ``ASYNC_WAIT_CTX_new(3)``).
These helpers do exactly that, so Python engine code is a single call:

* :func:`await_future`: wait for a ``concurrent.futures.Future`` (a thread or
  process pool standing in for an accelerator, or anything that completes one).
  If the application installed a wait-ctx callback (``pa.run_job`` and
  ``aio.run_job`` do), the helper sets the status to ``ASYNC_STATUS_OK``, pauses,
  and the future's completion calls that callback; otherwise it registers a
  private pipe as a wait fd, pauses, and the completion writes to the pipe; after
  resuming it drains the pipe and clears the fd. Returns the future's result or
  raises its exception.
* :func:`wait_for_fd`: pause until an fd of your own is readable (set it as a
  wait fd, pause, clear it). Draining it is yours: only you know what it is.

Both loop while the operation is not complete: a driver that resumes without
waiting (the man page allows "periodically retry") just gets the job paused
again. When pausing is blocked (``block_pause``) they wait in place instead of
pausing, as an engine must; outside a job they simply block. If the job is
closed while it waits (``JobCancelled``), the future is cancelled (when it has
not started yet) and its later completion is ignored.

The job's backend is the one running the calling code (found from the job's
own context, see ``_running``), so the helpers work under either backend
whatever the default is.
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from typing import TYPE_CHECKING, Any, Callable, Optional, Tuple, TypeVar

from ._constants import WaitStatus
from ._errors import AsyncError
from ._running import running_record
from ._unraisable import report_unraisable
from ._wait.watch import poll_readable as _readable

if TYPE_CHECKING:
    from ._protocol import Backend, Job, WaitCtx

__all__ = ["await_future", "current_job", "wait_for_fd"]

T = TypeVar("T")

#: how long a job that was resumed before its callback came waits in place
#: before pausing again (callback mode cannot tell a blocked pause from an
#: early resume; fd mode can, and needs no such wait)
EARLY_RESUME_WAIT = 0.001

_NOTIFY_MODES = ("auto", "fd", "callback")


def current_job() -> Tuple[Optional[Backend], Optional[Job]]:
    """``(backend, job)`` for the job running in the caller, or ``(None, None)``."""
    record = running_record()
    if record is not None:
        backend: Backend = record.backend
        job = backend.get_current_job()
        if job is not None:
            return backend, job
    from ._registry import _loaded

    for backend in list(_loaded.values()):
        job = backend.get_current_job()
        if job is not None:
            return backend, job
    return None, None


def _wait_ctx(backend: Optional[Backend], job: Optional[Job]) -> Optional[WaitCtx]:
    if backend is None or job is None:
        return None
    return backend.get_wait_ctx(job)


def _check_fd(fd: Any) -> int:
    if isinstance(fd, bool) or not isinstance(fd, int):
        if hasattr(fd, "fileno"):
            return _check_fd(fd.fileno())
        raise TypeError(f"fd must be an int or have fileno(), not {type(fd).__name__}")
    if fd < 0:
        raise ValueError(f"fd must be >= 0, got {fd}")
    return fd


def wait_for_fd(fd: Any, key: Any = None) -> bool:
    """Pause the running job until ``fd`` is readable; whether it paused.

    Inside a job: if ``fd`` is not readable yet, it is set as a wait fd of the
    job's context under ``key`` (a private key by default), the job pauses until
    it is readable (pausing again after an early resume), and the fd is cleared
    from the context. Draining the readiness is the caller's job, after this
    returns. Returns False without pausing when ``fd`` was readable already,
    outside a job (it blocks until readable), or when pausing is blocked or the
    job has no context (it blocks in place).

    Close the fd only after it was cleared (after this returns): a driver
    learns about the clear at the job's next pause.
    """
    fd = _check_fd(fd)
    if _readable(fd, 0):
        return False
    backend, job = current_job()
    ctx = _wait_ctx(backend, job)
    del job  # a paused job's own frames must not keep its handle alive (it could never be collected)
    if backend is None or ctx is None:
        _readable(fd, None)
        return False
    if key is None:
        key = object()
    ctx.set_wait_fd(key, fd)
    paused = False
    try:
        while True:
            backend.pause_job()
            if _still_added(ctx):
                _readable(fd, None)  # pausing is blocked: wait in place
                break
            paused = True
            if _readable(fd, 0):
                break
            # resumed before the fd was ready: pause again
    finally:
        ctx.clear_fd(key)
    return paused


def _still_added(ctx: WaitCtx) -> bool:
    """True when the pause that just returned did not pause.

    A real resume resets the context's add/del lists (``ASYNC_pause_job`` does
    it right after the resume), so an entry set before pausing is still listed
    as added only if ``pause_job()`` returned at once (pausing blocked).
    """
    return bool(ctx.get_changed_fds()[0])


class _PipeSignal:
    """A private wait fd: the future's completion makes it readable."""

    __slots__ = ("_closed", "_lock", "r", "w")

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self._lock = threading.RLock()  # (a signal handler on this thread may fire it too)
        self._closed = False

    def fire(self, _future: Any = None) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                os.write(self.w, b"X")
            except BlockingIOError:  # pragma: no cover - full: readable already
                pass

    def drain(self) -> None:
        """Clear the wake-up signal (the man page: "once resumed ... clear the wake signal")."""
        try:
            while os.read(self.r, 64):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self.r)
            os.close(self.w)


class _CallbackSignal:
    """Calls the application's wait-ctx callback once the future completes."""

    __slots__ = ("_arg", "_callback", "_closed", "_lock")

    def __init__(self, callback: Callable[[Any], Any], arg: Any) -> None:
        self._callback = callback
        self._arg = arg
        self._lock = threading.RLock()
        self._closed = False

    def fire(self, _future: Any = None) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self._callback(self._arg)
            except BaseException as exc:  # noqa: BLE001 - an accelerator thread has nobody to tell
                report_unraisable(exc, "Exception ignored in a wait-ctx callback", self._callback)

    def close(self) -> None:
        with self._lock:
            self._closed = True


def await_future(future: concurrent.futures.Future[T], *, notify: str = "auto") -> T:
    """Pause the running job until ``future`` is done; its result (or its exception).

    ``notify``: ``"auto"`` uses the application's wait-ctx callback when one is
    set and a wait fd otherwise; ``"fd"`` always a wait fd; ``"callback"`` always
    the callback (``AsyncError`` if none is set). Outside a job, or in a job
    without a context, it blocks on ``future.result()``.
    """
    if notify not in _NOTIFY_MODES:
        raise ValueError(f"notify must be one of {', '.join(map(repr, _NOTIFY_MODES))}, not {notify!r}")
    if not isinstance(future, concurrent.futures.Future):
        raise TypeError(f"future must be a concurrent.futures.Future, not {type(future).__name__}")
    if future.done():
        return future.result()
    backend, job = current_job()
    ctx = _wait_ctx(backend, job)
    del job  # a paused job's own frames must not keep its handle alive (it could never be collected)
    if backend is None or ctx is None:
        return future.result()
    callback = ctx.get_callback() if notify != "fd" else None
    if callback is None and notify == "callback":
        raise AsyncError("await_future(notify='callback'): the job's WaitCtx has no callback set")
    try:
        if callback is not None:
            _with_callback(backend, ctx, future, callback)
        else:
            _with_fd(backend, ctx, future)
    except BaseException:
        future.cancel()  # the job was closed: nobody wants the result
        raise
    return future.result()


def _with_fd(backend: Backend, ctx: WaitCtx, future: concurrent.futures.Future[Any]) -> None:
    signal = _PipeSignal()
    try:
        ctx.set_wait_fd(signal, signal.r)
        try:
            future.add_done_callback(signal.fire)
            while not future.done():
                backend.pause_job()
                if future.done():
                    break
                if _still_added(ctx):  # pausing is blocked: wait here
                    concurrent.futures.wait([future])
                    break
                # resumed before completion: pause again
            signal.drain()
        finally:
            ctx.clear_fd(signal)
    finally:
        signal.close()


def _with_callback(
    backend: Backend,
    ctx: WaitCtx,
    future: concurrent.futures.Future[Any],
    callback: Tuple[Callable[[Any], Any], Any],
) -> None:
    signal = _CallbackSignal(*callback)
    try:
        future.add_done_callback(signal.fire)
        while not future.done():
            ctx.set_status(WaitStatus.OK)  # submitted: a callback will come
            backend.pause_job()
            if not future.done():
                # resumed early, or pausing is blocked (callback mode cannot
                # tell which): wait in place a moment, then pause again
                concurrent.futures.wait([future], timeout=EARLY_RESUME_WAIT)
    finally:
        signal.close()
        ctx.set_status(WaitStatus.UNSUPPORTED)  # no callback pending any more
