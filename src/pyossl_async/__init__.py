"""pyossl_async: OpenSSL's asynchronous jobs (``ASYNC_start_job``, ``ASYNC_pause_job``,
``ASYNC_WAIT_CTX_*``) driven from Python.

Two backends implement one API: ``"openssl"`` calls the installed libcrypto
through ctypes, ``"python"`` reproduces its behaviour without it. Inside a job,
the functions below act on the job that runs the calling code, whichever
backend runs it; ``start_job`` resumes a job on its own backend and starts one
on its context's backend. Everywhere else they act on :func:`get_backend`'s
choice. Call methods of a backend object to use a specific one.

* :func:`run_job` drives a job to its end, blocking; :mod:`pyossl_async.aio` does
  it in asyncio (``await aio.run_job(...)``), :mod:`pyossl_async.trio` in trio.
* :mod:`pyossl_async.engine` (:func:`await_future`, :func:`wait_for_fd`): for code
  inside a job that hands work elsewhere and waits, as an async engine does.
* :mod:`pyossl_async.testing`: a pytest plugin, leak checks, recordings, a C
  engine that pauses jobs from C.
"""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any
from typing import Callable as _Callable
from typing import ContextManager as _ContextManager
from typing import Optional as _Optional
from typing import TypeVar as _TypeVar

from ._constants import Status, WaitStatus
from ._errors import (
    AsyncError,
    BackendUnavailable,
    ErrorEntry,
    JobCancelled,
    JobStateError,
    SettingError,
    WaitCtxClosedError,
)
from ._protocol import Backend, BackendArg, BackendName, Job, StartResult, WaitCtx
from ._registry import available_backends, get_backend
from ._running import running_record as _running_record
from .backends._base import get_current_job, pause_job
from .drive import _blocking as _drive_blocking
from .engine import await_future, wait_for_fd

if _TYPE_CHECKING:
    from ._protocol import CleanupFunc  # noqa: F401

_R = _TypeVar("_R")

__version__ = "0.1.0"

if _TYPE_CHECKING:
    #: ``WaitCtx`` under its earlier name: deprecated (``__getattr__`` warns at each use)
    WaitCtxType = WaitCtx

#: seconds closing a job may take when no timeout is given: ``$PYOSSL_ASYNC_CLOSE_TIMEOUT``,
#: else 10. Read the first time it is needed or read, then fixed for the process; a
#: bad value raises ``SettingError`` then, never at import (see ``__getattr__``).
DEFAULT_CLOSE_TIMEOUT: float

if not _TYPE_CHECKING:  # mypy would take a module __getattr__ to make every name valid

    def __getattr__(name: str) -> _Any:
        if name == "DEFAULT_CLOSE_TIMEOUT":
            return _drive_blocking.DEFAULT_CLOSE_TIMEOUT
        if name == "WaitCtxType":
            import warnings

            warnings.warn("pyossl_async.WaitCtxType is deprecated: use WaitCtx", DeprecationWarning, stacklevel=2)
            return WaitCtx
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ERR = Status.ERR
NO_JOBS = Status.NO_JOBS
PAUSE = Status.PAUSE
FINISH = Status.FINISH

__all__ = [
    "DEFAULT_CLOSE_TIMEOUT",
    "ERR",
    "FINISH",
    "NO_JOBS",
    "PAUSE",
    "AsyncError",
    "Backend",
    "BackendArg",
    "BackendName",
    "BackendUnavailable",
    "ErrorEntry",
    "Job",
    "JobCancelled",
    "JobStateError",
    "SettingError",
    "StartResult",
    "Status",
    "WaitCtx",
    "WaitCtxClosedError",
    "WaitStatus",
    "available_backends",
    "await_future",
    "block_pause",
    "cleanup_thread",
    "current_wait_ctx",
    "get_backend",
    "get_current_job",
    "get_wait_ctx",
    "init_thread",
    "is_capable",
    "pause_blocked",
    "pause_job",
    "run_job",
    "start_job",
    "unblock_pause",
    "wait_for_fd",
]


def is_capable() -> bool:
    """Whether the default backend can run jobs here."""
    return get_backend().is_capable()


def init_thread(max_size: int = 0, init_size: int = 0) -> bool:
    """``ASYNC_init_thread``: size this thread's job pool (False where OpenSSL returns 0)."""
    return get_backend().init_thread(max_size, init_size)


def cleanup_thread() -> None:
    """``ASYNC_cleanup_thread``; raises JobStateError while this thread has paused jobs."""
    get_backend().cleanup_thread()


def _here() -> Backend:
    """The backend of the job running the calling code; outside any job, the default one."""
    record = _running_record()
    if record is not None:
        backend: Backend = record.backend
        return backend
    return get_backend()


def start_job(
    job: _Optional[Job], ctx: _Optional[WaitCtx], func: _Optional[_Callable[[_Any], int]], args: _Any = None
) -> StartResult:
    """``ASYNC_start_job``: start ``func(args)`` in a job, or resume ``job``.

    Returns a :class:`StartResult` ``(status, job, result)``: ``(PAUSE, job, None)``,
    ``(FINISH, None, result)``, ``(NO_JOBS, None, None)`` or ``(ERR, None, None)``.
    A job is resumed by the backend that runs it; a new job starts on ``ctx``'s
    backend, or on the default backend when ``ctx`` is None.
    """
    if job.__class__ is Job:
        return job._record.backend.start_job(job, ctx, func, args)  # type: ignore[no-any-return]
    if isinstance(ctx, WaitCtx):
        return ctx.backend.start_job(job, ctx, func, args)
    return _here().start_job(job, ctx, func, args)


def get_wait_ctx(job: Job) -> _Optional[WaitCtx]:
    """The wait context ``job`` was started with (None once it has finished)."""
    handle: _Any = job  # (anything else: the default backend raises its TypeError)
    backend = handle.backend if isinstance(handle, Job) else get_backend()
    return backend.get_wait_ctx(job)


def current_wait_ctx() -> WaitCtx:
    """Inside a job: the ``WaitCtx`` it runs with (of whichever backend runs it).

    ``JobStateError`` outside a job, or in one started without a context.
    """
    from .engine import current_job

    backend, job = current_job()
    if backend is None or job is None:
        raise JobStateError("current_wait_ctx() called outside a job")
    ctx = backend.get_wait_ctx(job)
    if ctx is None:
        raise JobStateError("the running job was started without a WaitCtx")
    return ctx


def block_pause() -> None:
    """``ASYNC_block_pause``: make ``pause_job`` a no-op until unblocked (nests); inside a
    job, for the backend that runs it."""
    _here().block_pause()


def unblock_pause() -> None:
    """``ASYNC_unblock_pause`` (the backend as for :func:`block_pause`)."""
    _here().unblock_pause()


def pause_blocked() -> _ContextManager[None]:
    """``with pause_blocked():`` blocks pausing for the block (the backend as for :func:`block_pause`)."""
    return _here().pause_blocked()


def run_job(
    func: _Callable[[_Any], _R],
    args: _Any = None,
    *,
    backend: BackendArg = None,
    ctx: _Optional[WaitCtx] = None,
    timeout: _Optional[float] = None,
    close_timeout: _Optional[float] = None,
) -> _R:
    """Start ``func(args)`` in a job and drive it to the end, blocking; what ``func`` returned.

    Waits between pauses for what the job's engine asks (wait fds, the wait-ctx
    callback); ``timeout`` bounds the whole run (``TimeoutError``, the job closed).
    See :func:`pyossl_async.drive.run_job`.
    """
    from .drive import run_job as _run_job

    result: _R = _run_job(func, args, backend=backend, ctx=ctx, timeout=timeout, close_timeout=close_timeout)
    return result
