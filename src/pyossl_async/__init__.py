"""pyossl_async: OpenSSL's asynchronous jobs (``ASYNC_start_job``, ``ASYNC_pause_job``,
``ASYNC_WAIT_CTX_*``) driven from Python.

Two backends implement one API: ``"openssl"`` calls the installed libcrypto
through ctypes, ``"python"`` reproduces its behaviour without it. The functions
below act on :func:`get_backend`'s choice; call methods of a backend object to
use a specific one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional

from ._constants import Status, WaitStatus
from ._errors import (
    AsyncError,
    BackendUnavailable,
    ErrorEntry,
    JobCancelled,
    JobStateError,
    WaitCtxClosedError,
)
from ._protocol import Backend, Job, StartResult
from ._protocol import WaitCtx as WaitCtxType
from ._registry import available_backends, get_backend
from .engine import await_future, wait_for_fd

if TYPE_CHECKING:
    from ._protocol import CleanupFunc  # noqa: F401

__version__ = "0.1.0"

ERR = Status.ERR
NO_JOBS = Status.NO_JOBS
PAUSE = Status.PAUSE
FINISH = Status.FINISH

__all__ = [
    "ERR",
    "FINISH",
    "NO_JOBS",
    "PAUSE",
    "AsyncError",
    "Backend",
    "BackendUnavailable",
    "ErrorEntry",
    "Job",
    "JobCancelled",
    "JobStateError",
    "StartResult",
    "Status",
    "WaitCtx",
    "WaitCtxClosedError",
    "WaitCtxType",
    "WaitStatus",
    "available_backends",
    "await_future",
    "block_pause",
    "cleanup_thread",
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


def WaitCtx() -> WaitCtxType:  # noqa: N802 - contract name
    """A new wait context of the default backend (``ASYNC_WAIT_CTX_new``)."""
    return get_backend().WaitCtx()


def start_job(
    job: Optional[Job], ctx: Optional[WaitCtxType], func: Optional[Callable[[Any], int]], args: Any = None
) -> StartResult:
    """``ASYNC_start_job``: start ``func(args)`` in a job, or resume ``job``.

    Returns ``(PAUSE, job, None)``, ``(FINISH, None, result)``,
    ``(NO_JOBS, None, None)`` or ``(ERR, None, None)``.
    """
    return get_backend().start_job(job, ctx, func, args)


def pause_job() -> bool:
    """``ASYNC_pause_job``: return control to the caller of ``start_job``."""
    return get_backend().pause_job()


def get_current_job() -> Optional[Job]:
    """The job this code runs in, or None."""
    return get_backend().get_current_job()


def get_wait_ctx(job: Job) -> Optional[WaitCtxType]:
    """The wait context ``job`` was started with (None once it has finished)."""
    return get_backend().get_wait_ctx(job)


def block_pause() -> None:
    """``ASYNC_block_pause``: make ``pause_job`` a no-op until unblocked (nests)."""
    get_backend().block_pause()


def unblock_pause() -> None:
    """``ASYNC_unblock_pause``."""
    get_backend().unblock_pause()


def pause_blocked() -> ContextManager[None]:
    """``with pause_blocked():`` blocks pausing for the block."""
    return get_backend().pause_blocked()


def run_job(
    func: Callable[[Any], int],
    args: Any = None,
    *,
    backend: Optional[Backend | str] = None,
    ctx: Optional[WaitCtxType] = None,
    timeout: Optional[float] = None,
    close_timeout: Optional[float] = None,
) -> int:
    """Start ``func(args)`` in a job and drive it to the end; its result (see ``drive.run_job``)."""
    from .drive import run_job as _run_job

    return _run_job(  # type: ignore[no-any-return]
        func, args, backend=backend, ctx=ctx, timeout=timeout, close_timeout=close_timeout
    )
