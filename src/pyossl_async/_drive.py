"""Driving a job to the end: the loop of the man page's example, done once, right.

``run_job`` (blocking, ``selectors``) and :mod:`pyossl_async.aio` (asyncio) share
what happens between two ``start_job`` calls, in :class:`JobDriver`:

* **Wait fds.** After the first ``PAUSE`` the driver watches every fd of the
  context (``get_all_fds``: the caller's context may hold fds from before the
  job). After each later ``PAUSE`` it applies ``get_changed_fds()``, which
  describes what the job changed since it was last resumed: deleted fds first,
  then added ones (an fd number closed and reused in one segment is both), with a
  count per fd because two keys may hold the same fd.
* **The callback.** Before the job starts, the driver installs its own wait-ctx
  callback (chaining one the caller's context already had), so an engine that
  supports callbacks uses it instead of fds. It may be called from any thread, at
  any time, even before the job has paused; a call since the last resume is
  remembered. The status the engine sets says what to do at a ``PAUSE``
  (``ASYNC_WAIT_CTX_new(3)``): ``OK``: a callback will come, wait for it (and for
  the fds, if any); ``EAGAIN``: resume (retry) at once; ``ERR``: a fatal problem
  with this request: the job is closed and ``AsyncError`` raised;
  ``UNSUPPORTED`` (the default): wait on the fds, or, when there are none, resume
  at once. Before each resume the driver sets the status back to
  ``UNSUPPORTED``, so a value left from an earlier request cannot mislead it at
  the next ``PAUSE``.
* **Failures to start.** ``NO_JOBS`` and ``ERR`` from ``start_job`` raise
  ``AsyncError`` (with libcrypto's error entries, if any, in ``.errors``);
  ``aio.run_job`` first waits for one of its other jobs on the same loop to
  finish when ``NO_JOBS`` comes from a full pool.
* **Ending.** Whatever ends the drive (the job's result or exception, a timeout,
  an interrupt, a cancelled task), a job still paused is closed (its
  ``pause_job()`` raises ``JobCancelled``), the caller's context gets its own
  callback back, and a context the driver created is closed (its fds' cleanup
  functions run).
"""

from __future__ import annotations

import itertools
import math
import os
import select
import selectors
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from ._constants import Status, WaitStatus
from ._errors import AsyncError, JobStateError, WaitCtxClosedError
from ._protocol import Backend, Job, WaitCtx
from ._registry import get_backend
from ._unraisable import report_unraisable

__all__ = ["JobDriver", "check_timeout", "poll_readable", "resolve", "run_job", "start_failed"]

#: what :meth:`JobDriver.after_pause` decides
RESUME = 0  # the job can go on now (an fd was ready or the callback came)
RETRY = 1  # resume at once without waiting: EAGAIN, or nothing to wait on
WAIT = 2  # wait on the fds and/or the callback

_STATUS_OK = int(WaitStatus.OK)
_STATUS_ERR = int(WaitStatus.ERR)
_STATUS_EAGAIN = int(WaitStatus.EAGAIN)
_STATUS_UNSUPPORTED = int(WaitStatus.UNSUPPORTED)


def resolve(backend: Union[Backend, str, None], ctx: Optional[WaitCtx]) -> Tuple[Backend, WaitCtx, bool]:
    """The backend to use, the context, and whether the driver owns (and closes) it."""
    if backend is None:
        be = ctx.backend if ctx is not None and hasattr(ctx, "backend") else get_backend()
    elif isinstance(backend, str):
        be = get_backend(backend)
    elif callable(getattr(backend, "start_job", None)) and callable(getattr(backend, "WaitCtx", None)):
        be = backend
    else:
        raise TypeError(f"backend must be a backend name, a Backend or None, not {type(backend).__name__}")
    if ctx is None:
        return be, be.WaitCtx(), True
    if not callable(getattr(ctx, "get_changed_fds", None)):
        raise TypeError(f"ctx must be a WaitCtx or None, not {type(ctx).__name__}")
    if ctx.backend is not be:
        raise JobStateError(f"WaitCtx belongs to the {ctx.backend.name!r} backend, not {be.name!r}")
    if ctx.closed:
        raise WaitCtxClosedError("run_job() given a closed WaitCtx")
    return be, ctx, False


def check_timeout(timeout: Any) -> Optional[float]:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {type(timeout).__name__}")
    seconds = float(timeout)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"timeout must be >= 0 seconds, got {seconds}")
    return seconds


def start_failed(backend: Backend, status: Status) -> AsyncError:
    """The exception for ``NO_JOBS``/``ERR`` from ``start_job``."""
    errors = getattr(backend, "last_errors", ()) if backend.name == "openssl" else ()
    if status == Status.NO_JOBS:
        message = (
            f"start_job() returned NO_JOBS on the {backend.name} backend: this thread's job pool "
            f"has no job to give (init_thread()'s max_size is reached, or a new job could not be created)"
        )
    else:
        message = f"start_job() returned ERR on the {backend.name} backend"
    return AsyncError(message, errors)


def close_job(job: Optional[Job]) -> Optional[BaseException]:
    """Close a paused job; the exception its unwinding raised (not JobCancelled), if any."""
    if job is None or job.state != "paused":
        return None
    try:
        job.close()
    except BaseException as exc:  # noqa: BLE001 - the caller decides what to do with it
        return exc
    return None


class JobDriver:
    """What a driver knows about one job between ``start_job`` calls.

    Subclasses turn fd watch changes into registrations (``_watch``/``_unwatch``)
    and a callback into a wake-up (``_notify``, called on whatever thread called
    the callback).
    """

    def __init__(self, backend: Backend, ctx: WaitCtx, owns_ctx: bool) -> None:
        self.backend = backend
        self.ctx = ctx
        self.owns_ctx = owns_ctx
        self.job: Optional[Job] = None
        #: fd -> how many live entries of the context hold it (watched while > 0)
        self.watched: Dict[int, int] = {}
        self._synced = False
        # Callback calls are counted with an itertools.count: next() is atomic, so
        # concurrent callers cannot lose a call; ``fired`` is the latest number.
        self._counter = itertools.count(1)
        self.fired = 0
        self._seen = 0
        self.finished = False
        #: the status the engine set for the current pause
        self.status = _STATUS_UNSUPPORTED
        self._previous_callback: Optional[Tuple[Callable[[Any], Any], Any]] = None
        self._installed = False

    # -- the callback -------------------------------------------------------------

    def install_callback(self) -> None:
        ctx = self.ctx
        if not self.owns_ctx:
            self._previous_callback = ctx.get_callback()
            if ctx.get_status() != _STATUS_UNSUPPORTED:
                ctx.set_status(_STATUS_UNSUPPORTED)  # a value left from before this job
        ctx.set_callback(self._callback, None)
        self._installed = True

    def _callback(self, arg: Any) -> int:
        """The wait-ctx callback an engine calls when the job can be resumed (any thread)."""
        if self.finished:
            return 0
        previous = self._previous_callback
        if previous is not None:
            try:
                previous[0](previous[1])
            except BaseException as exc:  # noqa: BLE001 - never into the engine's C
                report_unraisable(exc, "Exception ignored in the WaitCtx's previous callback", previous[0])
        self.fired = next(self._counter)
        self._notify()
        return 1

    def _notify(self) -> None:
        """Wake the driver if it waits (subclasses); must be safe from any thread."""

    @property
    def callback_pending(self) -> bool:
        """Whether the callback was called since the job was last resumed."""
        return self.fired != self._seen

    # -- fds ------------------------------------------------------------------------

    def _watch(self, fd: int) -> None:
        raise NotImplementedError

    def _unwatch(self, fd: int) -> None:
        raise NotImplementedError

    def sync_fds(self) -> None:
        """Bring the watched fds in step with the context after a ``PAUSE``."""
        ctx = self.ctx
        if not self._synced:
            # first pause: the whole list (the caller's context may have had fds
            # before the job; their adds may have been reset by an earlier job)
            self._synced = True
            added: List[int] = ctx.get_all_fds()
            deleted: List[int] = []
        else:
            added, deleted = ctx.get_changed_fds()
            if not added and not deleted:
                return
        watched = self.watched
        for fd in deleted:  # first: a number closed and reused is in both lists
            count = watched.get(fd, 0)
            if count > 1:
                watched[fd] = count - 1
            elif count == 1:
                del watched[fd]
                self._unwatch(fd)
        for fd in added:
            count = watched.get(fd, 0)
            watched[fd] = count + 1
            if not count:
                try:
                    self._watch(fd)
                except (OSError, ValueError) as exc:
                    del watched[fd]
                    raise AsyncError(f"cannot wait on wait fd {fd}: {exc}") from exc

    def unwatch_all(self) -> None:
        watched, self.watched = self.watched, {}
        for fd in watched:
            try:
                self._unwatch(fd)
            except (OSError, ValueError):  # pragma: no cover - closed under us
                pass

    # -- decisions --------------------------------------------------------------------

    def after_pause(self) -> int:
        """``RESUME``, ``RETRY`` or ``WAIT``; raises (the job closed) on ``ASYNC_STATUS_ERR``."""
        self.sync_fds()
        self.status = status = self.ctx.get_status()
        if status == _STATUS_ERR:
            self.engine_error()
        if self.fired != self._seen:
            return RESUME
        if status == _STATUS_EAGAIN:
            return RETRY
        if status == _STATUS_OK or self.watched:
            return WAIT
        return RETRY

    def before_resume(self) -> None:
        """After a wait: ``ERR`` set meanwhile is fatal; then the status is reset."""
        status = self.ctx.get_status()
        if status == _STATUS_ERR:
            self.engine_error()
        if status != _STATUS_UNSUPPORTED:
            self.ctx.set_status(_STATUS_UNSUPPORTED)
        self._seen = self.fired

    def engine_error(self) -> None:
        job, self.job = self.job, None
        failure = close_job(job)
        raise AsyncError(
            "the job's engine set ASYNC_STATUS_ERR (a fatal problem with this request); the job was closed"
        ) from failure

    def finish(self) -> Optional[BaseException]:
        """Close a paused job, unwatch, restore or close the context; the first error seen."""
        self.finished = True
        failure = close_job(self.job)
        self.job = None
        self.unwatch_all()
        ctx = self.ctx
        try:
            if self.owns_ctx:
                ctx.close()
            elif self._installed and not ctx.closed:
                previous = self._previous_callback
                if previous is None:
                    ctx.set_callback(None)
                else:
                    ctx.set_callback(previous[0], previous[1])
        except BaseException as exc:  # noqa: BLE001
            if failure is None:
                failure = exc
        return failure


class _WakePipe:
    """A self-pipe the blocking driver polls with the fds, written by the callback."""

    __slots__ = ("_lock", "closed", "r", "w")

    def __init__(self) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self._lock = threading.Lock()
        self.closed = False

    def write(self) -> None:
        with self._lock:
            if self.closed:
                return
            try:
                os.write(self.w, b"\0")
            except BlockingIOError:  # full: readable already
                pass

    def drain(self) -> None:
        try:
            while os.read(self.r, 512):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            os.close(self.r)
            os.close(self.w)


def poll_readable(fd: int, timeout: Optional[float]) -> bool:
    """Whether ``fd`` is readable (poll(2); select(2) only where there is no poll)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(None if timeout is None else int(timeout * 1000)))
    return bool(select.select([fd], [], [], timeout)[0])  # pragma: no cover - Windows


def _new_selector() -> selectors.BaseSelector:
    # poll(2): no kernel object per run, no FD_SETSIZE limit, nothing stale
    # when a watched fd is closed and its number reused between two polls
    if hasattr(selectors, "PollSelector"):
        return selectors.PollSelector()
    return selectors.SelectSelector()  # pragma: no cover - Windows


class _BlockingDriver(JobDriver):
    def __init__(self, backend: Backend, ctx: WaitCtx, owns_ctx: bool) -> None:
        super().__init__(backend, ctx, owns_ctx)
        self._selector: Optional[selectors.BaseSelector] = None
        self._pipe: Optional[_WakePipe] = None

    def _sel(self) -> selectors.BaseSelector:
        if self._selector is None:
            self._selector = _new_selector()
        return self._selector

    def _watch(self, fd: int) -> None:
        self._sel().register(fd, selectors.EVENT_READ)

    def _unwatch(self, fd: int) -> None:
        if self._selector is not None:
            try:
                self._selector.unregister(fd)
            except KeyError:  # pragma: no cover
                pass

    def _notify(self) -> None:
        pipe = self._pipe
        if pipe is not None:
            pipe.write()

    def wait(self, deadline: Optional[float]) -> bool:
        """Block until an fd is readable or the callback came; False on timeout."""
        sel = self._sel()
        if self._pipe is None and self.status == _STATUS_OK:
            new = _WakePipe()
            sel.register(new.r, selectors.EVENT_READ, new)
            # set before reading ``fired``; the callback bumps ``fired`` before
            # reading ``_pipe``: one of the two sees the other
            self._pipe = new
        if self.callback_pending:
            return True
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        events = sel.select(timeout)
        if not events:
            return False
        pipe = self._pipe
        if pipe is not None:
            for key, _ in events:
                if key.data is pipe:
                    pipe.drain()
        return True

    def finish(self) -> Optional[BaseException]:
        failure = super().finish()
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        return failure


def run_job(
    func: Callable[[Any], int],
    args: Any = None,
    *,
    backend: Union[Backend, str, None] = None,
    ctx: Optional[WaitCtx] = None,
    timeout: Optional[float] = None,
) -> int:
    """Start ``func(args)`` in a job and drive it to the end; its ``int`` result.

    Blocks the calling thread. After each ``PAUSE`` it waits on the context's
    wait fds and for the wait-ctx callback, as the job's engine asks (see the
    module's documentation), then resumes the job on this thread.

    ``backend``: a name, a backend object, or ``None`` (``ctx``'s backend, else
    the default one). ``ctx``: a ``WaitCtx`` to use (left open, its callback
    restored afterwards); by default a new one, closed at the end.
    ``timeout``: seconds; when the job still waits after that, it is closed
    (``JobCancelled`` inside it) and ``TimeoutError`` is raised. The time a job
    spends running between pauses counts, but cannot be interrupted.

    Raises the job's own exception; ``AsyncError`` when ``start_job`` returns
    ``NO_JOBS``/``ERR`` or the engine sets ``ASYNC_STATUS_ERR``.
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    limit = check_timeout(timeout)
    be, ctx, owns = resolve(backend, ctx)
    deadline = None if limit is None else time.monotonic() + limit
    driver = _BlockingDriver(be, ctx, owns)
    try:
        driver.install_callback()
        status, job, ret = be.start_job(None, ctx, func, args)
        while status == Status.PAUSE:
            driver.job = job
            action = driver.after_pause()
            if action == WAIT:
                if not driver.wait(deadline):
                    _timed_out(driver, limit)
            elif action == RETRY and deadline is not None and time.monotonic() >= deadline:
                _timed_out(driver, limit)
            driver.before_resume()
            status, job, ret = be.start_job(job, ctx, None)
            driver.job = None
        if status != Status.FINISH:
            raise start_failed(be, status)
        assert ret is not None
        return ret
    except BaseException:
        failure = driver.finish()
        if failure is not None:
            report_unraisable(failure, "Exception ignored while closing a job run_job() gave up on", func)
        raise
    finally:
        if not driver.finished:
            failure = driver.finish()
            if failure is not None:
                raise failure


def _timed_out(driver: JobDriver, limit: Optional[float]) -> None:
    job, driver.job = driver.job, None
    failure = close_job(job)
    raise TimeoutError(f"the job did not finish within {limit:g} s; it was closed") from failure

