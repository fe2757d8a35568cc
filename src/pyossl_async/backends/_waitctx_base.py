"""What every backend's ``WaitCtx`` shares: closed checks, the jobs using it, ``with``,
finalisation."""

from __future__ import annotations

import abc
import warnings
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Optional, Set

from .._errors import JobStateError, WaitCtxClosedError
from .._protocol import Backend, WaitCtx
from .._unraisable import report_unraisable
from .._wait.watch import note

if TYPE_CHECKING:
    from ._base import BackendBase
    from ._records import JobRecord

__all__ = ["WaitCtxBase", "kept_note"]


def kept_note(records: Iterable[JobRecord]) -> str:
    """What a refusal adds about jobs the library keeps (stuck inside C code)."""
    kept = sum(1 for r in list(records) if r.kept is not None and r.state == "paused")
    if not kept:
        return ""
    return (
        f"; {kept} of them paused inside C code whose engine has not completed, kept by the "
        f"library, which unwinds them as soon as their engine signals"
    )


class WaitCtxBase(WaitCtx):
    """What every backend's ``WaitCtx`` shares: closed checks, users, ``with``, finalisation."""

    def __init__(self, backend: BackendBase) -> None:
        self._backend: Any = backend
        self._closed = False
        #: jobs started with this context that have not finished
        self._users: Set[JobRecord] = set()
        #: close as soon as the last of ``_users`` finishes (see ``close_when_unused``)
        self._close_when_unused = False
        backend._open_ctxs.add(self)

    @property
    def backend(self) -> Backend:
        """The backend this context belongs to."""
        backend: Backend = self._backend
        return backend

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise WaitCtxClosedError("operation on a closed WaitCtx")

    def close(self) -> None:
        """Free the context (``ASYNC_WAIT_CTX_free``): cleanup functions of live fds run.

        Idempotent. Raises ``JobStateError``, changing nothing, while a job that
        was started with this context has not finished.
        """
        if self._closed:
            return
        if self._users:
            self._backend._reap_abandoned(self._users)
        if self._users:
            states = sorted(r.state for r in self._users)
            raise JobStateError(
                f"WaitCtx is still used by {len(self._users)} unfinished job(s) ({', '.join(states)})"
                + kept_note(self._users)
            )
        self._closed = True
        self._backend._open_ctxs.discard(self)
        self._free()

    def close_when_unused(self) -> None:
        """Close now, or, while a paused job still uses the context, as soon as it has ended.

        For an owner that gives up on a job it could not close (a driver whose
        close timed out): the context goes with the job instead of leaking.
        """
        if self._closed:
            return
        if self._users:
            self._backend._reap_abandoned(self._users)
        if self._users:
            self._close_when_unused = True
            return
        self.close()

    def _user_done(self, record: JobRecord) -> None:
        """A job started with this context has ended.

        The job lets go of the context (``Job.wait_ctx`` still finds it while
        someone else holds it): a finished job's handle must not keep a context,
        and the engine fds its cleanup functions close, alive.
        """
        self._users.discard(record)
        record.ctx_ref = weakref.ref(self)
        record.ctx = None
        if self._close_when_unused and not self._users and not self._closed:
            try:
                self.close()
            except BaseException as exc:  # noqa: BLE001 - a job's end; nobody to raise to
                report_unraisable(exc, "Exception while closing a WaitCtx its last job left", self)

    @abc.abstractmethod
    def _free(self) -> None:
        """Release the context; cleanup functions run here, newest fd first."""

    def __enter__(self) -> Any:
        self._check_open()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        """Close the jobs still using the context (unwinding them, like a task group), then
        the context. An exception on its way out of the block is never replaced: what
        closing raises is attached to it as notes (3.11+) or reported as unraisable."""
        if self._closed:
            return
        exc: Optional[BaseException] = exc_info[1] if len(exc_info) > 1 else None
        failures: List[BaseException] = []
        for record in list(self._users):
            if record.state != "paused":
                continue
            handle = record.handle or (record.handle_ref() if record.handle_ref is not None else None)
            try:
                if handle is not None:
                    handle.close()
                else:
                    self._backend._reap_abandoned([record])
            except BaseException as failure:  # noqa: BLE001 - reported below, the rest goes on
                failures.append(failure)
            del handle
        try:
            self.close()
        except BaseException as failure:  # noqa: BLE001
            failures.append(failure)
        if not failures:
            return
        if exc is None:
            first = failures[0]
            for other in failures[1:]:
                note(first, f"also while leaving the WaitCtx block: {other!r}")
            raise first
        for problem in failures:
            if not note(exc, f"while leaving the WaitCtx block: {problem!r}"):
                report_unraisable(problem, "Exception while leaving a WaitCtx block that raised")

    def __del__(
        self,
        _warn: Callable[..., None] = warnings.warn,
        _category: type = ResourceWarning,
        _id: Callable[[object], int] = id,
    ) -> None:
        # An open context can die late in interpreter shutdown, after module globals
        # and even builtins are gone: only attributes and the defaults bound above
        # are used, and bare ``except`` (naming BaseException would look it up).
        # Whatever happens to the warning, the close runs: users rely on their
        # cleanup functions, as with ASYNC_WAIT_CTX_free.
        if self.__dict__.get("_closed", True):
            return
        try:
            _warn(
                f"unclosed <pyossl_async.WaitCtx open backend={self._backend.name} at {_id(self):#x}>",
                _category,
                source=self,
                stacklevel=2,
            )
        except:  # noqa: E722 - see above
            pass
        try:
            self.close()
        except:  # noqa: E722 - see above
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<pyossl_async.WaitCtx {state} backend={self._backend.name} at {id(self):#x}>"
