"""The public types: ``Job`` (the handle both backends hand out), and what every
backend implements: ``WaitCtx``, ``Backend``, ``StartResult``.

The public functions of :mod:`pyossl_async`, the drivers (``run_job``, ``aio``),
the testing toolkit and the tests see backends only through these types.

``WaitCtx`` is a real class, so that it works in annotations and with
``isinstance`` (every backend's context is one), and calling it makes a context
of the default backend, as the contract says ``pa.WaitCtx()`` does.
"""

from __future__ import annotations

import abc
from contextlib import AbstractContextManager
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Hashable,
    NamedTuple,
    Optional,
    Protocol,
    Tuple,
    TypeVar,
    Union,
    runtime_checkable,
)

from ._constants import Status
from ._errors import ErrorEntry

if TYPE_CHECKING:
    from typing import Literal

    BackendName = Literal["openssl", "python"]
    JobStateName = Literal["running", "paused", "finished"]
else:
    BackendName = str
    JobStateName = str

__all__ = [
    "Backend",
    "BackendArg",
    "BackendName",
    "CleanupFunc",
    "Job",
    "JobFunc",
    "JobStateName",
    "StartResult",
    "WaitCtx",
]

JobFunc = Callable[[Any], Any]
CleanupFunc = Callable[["WaitCtx", Hashable, int, Any], Any]

_T = TypeVar("_T")

#: what ``WaitCtx()`` calls for a context of the default backend; the registry, which
#: sits above this module (it loads the backends that implement these types), sets it
#: when it is imported (:func:`set_default_wait_ctx`), so this module imports nothing above it
_default_wait_ctx: Optional[Callable[[], Any]] = None


def set_default_wait_ctx(factory: Callable[[], Any]) -> None:
    """Tell ``WaitCtx()`` how to make a context of the default backend (the registry's call)."""
    global _default_wait_ctx
    _default_wait_ctx = factory


class Job:
    """An opaque job handle. Compares by identity.

    ``start_job`` returns it when the job pauses, and ``get_current_job()`` returns
    the same object inside the job. Dropping the last reference to a paused job
    unwinds it (``JobCancelled`` inside), like closing a generator, without waiting
    for an engine: a job still paused inside C code is kept by the library and
    unwound once its engine signals.
    """

    __slots__ = ("__weakref__", "_record")

    def __init__(self, record: Any) -> None:
        # a backends._base.JobRecord (the backends sit above this module)
        self._record = record

    @property
    def wait_ctx(self) -> Optional[WaitCtx]:
        """The ``WaitCtx`` the job was started with (``None`` if it was started without).

        Once the job has finished it holds the context only weakly: ``None`` when
        nobody else holds it any more.
        """
        record = self._record
        ctx: Optional[WaitCtx] = record.ctx
        if ctx is None and record.ctx_ref is not None:
            ctx = record.ctx_ref()
        return ctx

    @property
    def backend(self) -> Backend:
        backend: Backend = self._record.backend
        return backend

    @property
    def state(self) -> JobStateName:
        """``"running"``, ``"paused"`` or ``"finished"``."""
        state: JobStateName = self._record.state
        return state

    def close(self, timeout: Optional[float] = None) -> None:
        """Unwind a paused job: ``JobCancelled`` is raised in it where it paused.

        A job paused inside C code (an engine's ``ASYNC_pause_job``) is resumed
        as often as that code needs to get back to Python, waiting each time for
        its engine, and gets ``JobCancelled`` at the first Python line it runs.
        ``timeout``: seconds that may take in all (default
        ``pyossl_async.DEFAULT_CLOSE_TIMEOUT``, 10 s); between resumes the close
        waits for the engine. Past it ``AsyncError`` is raised and the job stays
        paused, closable again.

        Does nothing for a finished job. Raises ``JobStateError`` for a running
        job, from another thread, from inside another job, or once the
        interpreter is shutting down. An exception other than ``JobCancelled``
        that the job raises while unwinding propagates.
        """
        backend = self._record.backend
        if timeout is None:
            backend._close(self._record, self)
        else:
            backend._close(self._record, self, timeout)

    def __repr__(self) -> str:
        r = self._record
        return f"<pyossl_async.Job {r.state} backend={r.backend.name} at {id(self):#x}>"

    def __del__(self) -> None:
        try:
            record = self._record
        except AttributeError:  # pragma: no cover - half-built
            return
        if record.state == "paused" and not record.orphaned:
            record.backend._handle_died(record, self)


class StartResult(NamedTuple):
    """What ``start_job`` returns; unpacks as ``status, job, result``."""

    #: ``PAUSE``, ``FINISH``, ``NO_JOBS`` or ``ERR``
    status: Status
    #: the paused job (``PAUSE`` only)
    job: Optional[Job]
    #: the job function's C ``int`` result (``FINISH`` only)
    result: Optional[int]


class _WaitCtxMeta(abc.ABCMeta):
    """``WaitCtx()`` makes a context of the default backend; subclasses construct normally."""

    def __call__(cls: type[_T], *args: Any, **kwargs: Any) -> _T:
        if cls is WaitCtx:
            if args or kwargs:
                raise TypeError("WaitCtx() takes no arguments (use backend.WaitCtx() for a given backend)")
            if _default_wait_ctx is None:  # pragma: no cover - the package imports the registry
                raise RuntimeError("no backend registry: import pyossl_async first")
            ctx: _T = _default_wait_ctx()
            return ctx
        return super().__call__(*args, **kwargs)  # type: ignore[misc, no-any-return]


class WaitCtx(metaclass=_WaitCtxMeta):
    """An ``ASYNC_WAIT_CTX``: wait fds, the completion callback and its status.

    ``pyossl_async.WaitCtx()`` makes one of the default backend
    (``backend.WaitCtx()`` of a given one); every backend's context is an instance
    of this class. See the contract's WaitCtx section for each method.
    """

    __slots__ = ()

    @property
    def backend(self) -> Backend:
        """The backend this context belongs to."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def set_wait_fd(
        self,
        key: Hashable,
        fd: int,
        custom_data: Any = None,
        cleanup: Optional[CleanupFunc] = None,
    ) -> bool:
        """Add ``fd`` under ``key`` (``ASYNC_WAIT_CTX_set_wait_fd``); ``cleanup(ctx, key, fd, data)``
        runs when the context is freed with the fd still set."""
        raise NotImplementedError

    def get_fd(self, key: Hashable) -> Optional[Tuple[int, Any]]:
        """``(fd, custom_data)`` of the newest live entry for ``key``, or ``None``."""
        raise NotImplementedError

    def get_all_fds(self) -> list[int]:
        """Every live fd, newest first."""
        raise NotImplementedError

    def get_changed_fds(self) -> Tuple[list[int], list[int]]:
        """``(added, deleted)`` since the last resume of a job using this context."""
        raise NotImplementedError

    def clear_fd(self, key: Hashable) -> bool:
        """Clear the newest live entry for ``key`` (no cleanup call); ``False`` if there is none."""
        raise NotImplementedError

    def set_callback(self, callback: Optional[Callable[[Any], Any]], arg: Any = None) -> bool:
        """The callback an engine calls when the job can be resumed (``None`` allowed)."""
        raise NotImplementedError

    def get_callback(self) -> Optional[Tuple[Callable[[Any], Any], Any]]:
        """``(callback, arg)``, or ``None`` whenever the callback is ``None``."""
        raise NotImplementedError

    def set_status(self, status: int) -> bool:
        """Store any C ``int`` (an ``ASYNC_STATUS_*`` for engines)."""
        raise NotImplementedError

    def get_status(self) -> int:
        """The stored status, a ``WaitStatus`` member when it is one."""
        raise NotImplementedError

    def close(self) -> None:
        """Free the context (``ASYNC_WAIT_CTX_free``); idempotent."""
        raise NotImplementedError

    def __enter__(self: _T) -> _T:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        raise NotImplementedError


#: the type of ``WaitCtx`` inside ``Backend``, whose method of that name hides it
WaitCtxT = WaitCtx


@runtime_checkable
class Backend(Protocol):
    """One implementation of OpenSSL's ASYNC API (``"openssl"`` or ``"python"``).

    Runtime-checkable: ``isinstance(x, Backend)`` checks that ``x`` has every
    member (not their signatures)."""

    name: BackendName
    openssl_version: str | None
    #: libcrypto error-queue entries of the last call that failed (``()`` for ``"python"``)
    last_errors: Tuple[ErrorEntry, ...]

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


#: What every ``backend=`` parameter takes: a backend object, a backend's name, or
#: ``None`` for the default one (``get_backend()``). Names are the ``Literal`` for
#: type checkers, so a misspelt name is caught before it runs; a name held in a
#: plain ``str`` goes through ``get_backend(name)``, which checks it at run time.
BackendArg = Union[Backend, BackendName, None]
