"""The interface every backend implements, as ``typing.Protocol`` classes.

The public functions of :mod:`pyossl_async`, the drivers (``run_job``, ``aio``),
the conformance suite and the tests see backends only through these types.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Callable, Hashable, Optional, Protocol, Tuple

from ._constants import Status
from ._job import Job, JobStateName

__all__ = ["Backend", "CleanupFunc", "Job", "JobFunc", "JobStateName", "StartResult", "WaitCtx"]

JobFunc = Callable[[Any], int]
CleanupFunc = Callable[["WaitCtx", Hashable, int, Any], Any]
StartResult = Tuple[Status, Optional[Job], Optional[int]]


class WaitCtx(Protocol):
    """An ``ASYNC_WAIT_CTX``: wait fds, the completion callback and its status."""

    @property
    def backend(self) -> Backend: ...

    @property
    def closed(self) -> bool: ...

    def set_wait_fd(
        self,
        key: Hashable,
        fd: int,
        custom_data: Any = None,
        cleanup: CleanupFunc | None = None,
    ) -> bool: ...

    def get_fd(self, key: Hashable) -> tuple[int, Any] | None: ...

    def get_all_fds(self) -> list[int]: ...

    def get_changed_fds(self) -> tuple[list[int], list[int]]: ...

    def clear_fd(self, key: Hashable) -> bool: ...

    def set_callback(self, callback: Callable[[Any], Any] | None, arg: Any = None) -> bool: ...

    def get_callback(self) -> tuple[Callable[[Any], Any], Any] | None: ...

    def set_status(self, status: int) -> bool: ...

    def get_status(self) -> int: ...

    def close(self) -> None: ...

    def __enter__(self) -> WaitCtx: ...

    def __exit__(self, *exc: object) -> None: ...


#: the type of ``WaitCtx`` inside ``Backend``, whose method of that name hides it
WaitCtxT = WaitCtx


class Backend(Protocol):
    """One implementation of OpenSSL's ASYNC API (``"openssl"`` or ``"python"``)."""

    name: str
    openssl_version: str | None

    def is_capable(self) -> bool: ...

    def init_thread(self, max_size: int = 0, init_size: int = 0) -> bool: ...

    def cleanup_thread(self) -> None: ...

    def WaitCtx(self) -> WaitCtxT: ...  # noqa: N802 - contract name

    def start_job(
        self,
        job: Job | None,
        ctx: WaitCtxT | None,
        func: JobFunc | None,
        args: Any = None,
    ) -> StartResult: ...

    def pause_job(self) -> bool: ...

    def get_current_job(self) -> Job | None: ...

    def get_wait_ctx(self, job: Job) -> WaitCtxT | None: ...

    def block_pause(self) -> None: ...

    def unblock_pause(self) -> None: ...

    def pause_blocked(self) -> AbstractContextManager[None]: ...
