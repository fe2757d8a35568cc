"""What the drivers share above the wait primitives: which backend and context a drive
uses, what a job's value is, and how a drive that failed or timed out says so.

The decisions between two ``start_job`` calls are :mod:`pyossl_async._wait.watch`'s.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Tuple

from .._constants import Status
from .._errors import AsyncError, JobStateError, WaitCtxClosedError
from .._protocol import Backend, BackendArg, WaitCtx
from .._registry import resolve_backend

__all__ = ["Outcome", "expired_message", "resolve", "start_failed"]


def resolve(backend: BackendArg, ctx: Optional[WaitCtx]) -> Tuple[Backend, WaitCtx, bool]:
    """The backend to use, the context, and whether the driver owns (and closes) it."""
    if backend is None and ctx is not None and hasattr(ctx, "backend"):
        be: Backend = ctx.backend
    else:
        be = resolve_backend(backend)
    if ctx is None:
        return be, be.WaitCtx(), True
    if not callable(getattr(ctx, "get_changed_fds", None)):
        raise TypeError(f"ctx must be a WaitCtx or None, not {type(ctx).__name__}")
    if ctx.backend is not be:
        raise JobStateError(f"WaitCtx belongs to the {ctx.backend.name!r} backend, not {be.name!r}")
    if ctx.closed:
        raise WaitCtxClosedError("run_job() given a closed WaitCtx")
    return be, ctx, False


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


def expired_message(limit: float, failure: Optional[BaseException], kept: bool) -> str:
    """A driver's ``TimeoutError``: the run's timeout ran out, and how closing the job went."""
    text = f"the job did not finish within {limit:g} s"
    if kept:
        return (
            f"{text}; closing it did not finish in time either: the library keeps it and unwinds it "
            f"as soon as its engine signals"
        )
    if failure is not None:
        return f"{text}; it was closed, and raised while unwinding"
    return f"{text}; it was closed"


class Outcome:
    """What the job function returned: drivers hand back any value, not just a C ``int``."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Any = None

    def job(self, func: Callable[[Any], Any]) -> Callable[[Any], int]:
        """``func`` as a job function whose C result is 0 and whose value lands here."""

        def job(arg: Any) -> int:
            self.value = func(arg)
            return 0

        return job
