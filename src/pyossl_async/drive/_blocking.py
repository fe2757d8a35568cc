"""The blocking shell: ``pa.run_job``, waiting with :mod:`pyossl_async._wait.blocking`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from .. import _settings
from .._constants import Status
from .._protocol import Backend, BackendArg, Job, WaitCtx
from .._unraisable import report_unraisable
from .._wait.blocking import BlockingWatch
from .._wait.watch import RETRY, WAIT, PauseWatch, check_timeout, note
from ._core import Outcome, expired_message, resolve, start_failed

__all__ = ["DEFAULT_CLOSE_TIMEOUT", "give_up", "run_job"]

#: how long closing a job may take by default (``$PYOSSL_ASYNC_CLOSE_TIMEOUT``, else
#: 10 s): a job paused inside C code is resumed as often as that code needs,
#: waiting for its engine each time. Read from the environment the first time it
#: is needed (``__getattr__`` below), then fixed for the process; the import never
#: reads it, so a bad value is refused at first use, not at import.
DEFAULT_CLOSE_TIMEOUT: float

if not TYPE_CHECKING:  # a module __getattr__ seen by mypy would make every name valid

    def __getattr__(name: str) -> Any:
        if name == "DEFAULT_CLOSE_TIMEOUT":
            value = _settings.default_close_timeout()  # SettingError for a bad value, every time
            globals()[name] = value  # later reads are a plain attribute
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def run_job(
    func: Callable[[Any], Any],
    args: Any = None,
    *,
    backend: BackendArg = None,
    ctx: Optional[WaitCtx] = None,
    timeout: Optional[float] = None,
    close_timeout: Optional[float] = None,
) -> Any:
    """Start ``func(args)`` in a job and drive it to the end; what ``func`` returned (any value).

    Blocks the calling thread. After each ``PAUSE`` it waits on the context's
    wait fds and for the wait-ctx callback, as the job's engine asks, then
    resumes the job on this thread.

    ``backend``: a name, a backend object, or ``None`` (``ctx``'s backend, else
    the default one). ``ctx``: a ``WaitCtx`` to use (left open, its callback
    restored afterwards); by default a new one, closed at the end.
    ``timeout``: seconds for the whole run, checked at every pause, however the
    job pauses; past it the job is closed (``JobCancelled`` inside it) and
    ``TimeoutError`` is raised. A job computing between two pauses cannot be
    interrupted. ``close_timeout``: how long closing the job may take when the
    driver gives up on it (default ``DEFAULT_CLOSE_TIMEOUT``; see ``Job.close``).

    Raises the job's own exception; ``AsyncError`` when ``start_job`` returns
    ``NO_JOBS``/``ERR`` or the engine sets ``ASYNC_STATUS_ERR``.
    """
    if not callable(func):
        raise TypeError(f"func must be a callable taking one argument, not {type(func).__name__}")
    limit = check_timeout(timeout)
    check_timeout(close_timeout, "close_timeout")
    be, wctx, owns = resolve(backend, ctx)
    deadline = None if limit is None else time.monotonic() + limit
    watch = BlockingWatch(wctx, owns_ctx=owns)
    del wctx  # (the watch has it; an exception's traceback would keep this frame's locals)
    outcome = Outcome()
    job: Optional[Job] = None
    expired = False
    try:
        watch.install()
        status, job, _ = be.start_job(None, watch.ctx, outcome.job(func), args)
        while status == Status.PAUSE:
            if deadline is not None and time.monotonic() >= deadline:
                expired = True
                break
            action = watch.after_pause()
            if action == WAIT:
                if not watch.wait(deadline):
                    expired = True
                    break
            elif action == RETRY and deadline is not None and time.monotonic() >= deadline:
                expired = True
                break
            watch.before_resume()
            status, job, _ = be.start_job(job, None, None)  # (a resume ignores ctx; a traceback would keep it)
        if not expired:
            job = None
            if status != Status.FINISH:
                raise start_failed(be, status)
    except BaseException as exc:
        _gave_up(exc, be, job, watch, close_timeout, func)
        job = None
        del watch  # (an exception's traceback keeps this frame's locals)
        raise
    if expired:
        assert limit is not None
        failure = give_up(be, job, watch, close_timeout)
        kept = job is not None and job.state == "paused"
        job = None
        _release(watch, func)
        # A local of a frame that the failure's traceback reaches (through the callers of
        # the frame it was caught in) would make a cycle that keeps the job's context alive.
        try:
            if failure is not None and not isinstance(failure, Exception):
                raise failure  # an interrupt cut the close short (Ctrl-C pressed again)
            raise TimeoutError(expired_message(limit, failure, kept)) from failure
        finally:
            del failure, watch
    failure = watch.finish()
    if failure is not None:
        raise failure
    return outcome.value


def _gave_up(
    exc: BaseException, backend: Backend, job: Optional[Job], watch: PauseWatch, timeout: Optional[float], func: Any
) -> None:
    """``exc`` ends a drive: close the job once (kept by the library if it does not unwind in
    time) and release the watch; a failure of the close goes with ``exc``, as a note
    (3.11+) or else through ``sys.unraisablehook``."""
    failure = give_up(backend, job, watch, timeout)
    _release(watch, func)
    try:
        if failure is None:
            return
        if not isinstance(failure, Exception):
            raise failure  # an interrupt cut the close short (Ctrl-C pressed again)
        if not note(exc, f"while closing the job: {failure}"):
            report_unraisable(failure, "Exception ignored while closing a job run_job() gave up on", func)
    finally:
        del failure  # (no cycle through this frame: see run_job)


def _release(watch: PauseWatch, func: Any) -> None:
    failure = watch.finish()
    if failure is not None:
        report_unraisable(failure, "Exception ignored while releasing run_job()'s WaitCtx", func)


def give_up(
    backend: Backend, job: Optional[Job], watch: PauseWatch, timeout: Optional[float]
) -> Optional[BaseException]:
    """Close a job its driver gives up on, once, bounded by ``timeout`` (default
    ``DEFAULT_CLOSE_TIMEOUT``), waiting between resumes with the driver's own ``watch``
    (the engine holds its callback token). A job still paused after that (its engine
    did not complete in time, or an interrupt cut the close short) is kept by the
    library, with the watch's callback registration, and unwound as soon as its
    engine signals. What the close raised (not ``JobCancelled``), if anything.

    Blocking: for the ``run_job`` shell, and for the async shells when they may not
    await (an interrupt).
    """
    if job is None or job.state != "paused":
        return None
    return backend.begin_close(job).give_up(watch, timeout)  # type: ignore[attr-defined, no-any-return]


