"""libssl's own jobs, as the rest of pyossl_async sees them from inside a key operation.

``pa.pause_job``, ``pa.get_current_job``, ``pa.current_wait_ctx``,
``pa.await_future`` and ``pa.wait_for_fd`` find "the job running here" through
``_running.RUNNING_JOB`` (a context variable holding a record with ``.backend``,
``.state`` and ``.runs_on``). A key operation of a connection runs in that
connection's context, where the variable holds a :class:`LibsslJobRecord`; its
``backend`` is :data:`LIBSSL_JOBS`, which implements, over libssl's job and the
``ASYNC_WAIT_CTX`` libssl made for the connection:

* ``pause_job()``: ``ASYNC_pause_job()`` when the operation runs inside its
  connection's libssl job (``SSL_MODE_ASYNC``, a bound call); otherwise it
  returns at once, as OpenSSL's does when pausing is impossible, and the helpers
  then wait in place (block) instead of pausing;
* ``get_current_job()``: a :class:`TLSJob` (not a ``pa.Job``: libssl starts and
  resumes it, never ``start_job``), or ``None`` when the operation is not in a job;
* ``get_wait_ctx(job)``: a :class:`BorrowedWaitCtx` over libssl's context;
* ``block_pause``/``unblock_pause``/``pause_blocked``: OpenSSL's, for this thread;
* ``start_job``: refused, as from inside any job.

That is the whole protocol a record's backend needs (``_running`` documents it).
"""

from __future__ import annotations

import itertools
import threading
from contextlib import contextmanager
from ctypes import byref, c_int, c_size_t, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, Hashable, Iterator, List, Optional, Tuple

from .._errors import JobCancelled, JobStateError, WaitCtxClosedError
from .._protocol import Backend, WaitCtx
from .._running import RUNNING_JOB
from ._support import ON_LOAD

if TYPE_CHECKING:
    from ._connection import ConnectionCore
    from ._support import TLSSupport

__all__ = ["LIBSSL_JOBS", "BorrowedWaitCtx", "LibsslJobRecord", "LibsslJobs", "TLSJob"]

_get_ident = threading.get_ident
_tokens = itertools.count(1)


class TLSJob:
    """libssl's job of one connection, while a key operation runs in it.

    What ``pa.get_current_job()`` returns there. libssl starts and resumes it (the
    connection's next ``do_handshake``/``read``/``write``/``shutdown``), so it cannot
    be passed to ``start_job``; ``connection`` is the connection's description.
    """

    __slots__ = ("_core",)

    def __init__(self, core: ConnectionCore) -> None:
        self._core = core

    @property
    def connection(self) -> str:
        return self._core.describe()

    def __repr__(self) -> str:
        return f"<libssl job of {self._core.describe()}>"


class LibsslJobRecord:
    """``RUNNING_JOB``'s value inside a connection's key operations (one per connection).

    ``state`` is ``"running"`` while an operation runs in a bound call of the
    connection, ``"paused"`` while it is paused there, ``"idle"`` otherwise;
    ``in_job`` says whether that call runs inside libssl's job (only then can it
    pause); ``runs_on`` is the connection's OS thread.
    """

    __slots__ = ("backend", "core", "in_job", "job", "runs_on", "state")

    def __init__(self, core: ConnectionCore, runs_on: int) -> None:
        self.backend = LIBSSL_JOBS
        self.core = core
        self.state = "idle"
        self.in_job = False
        self.runs_on = runs_on
        self.job = TLSJob(core)


def _record_here() -> Optional[LibsslJobRecord]:
    record = RUNNING_JOB.get()
    if record.__class__ is LibsslJobRecord and record.state == "running" and record.runs_on == _get_ident():
        return record
    return None


class LibsslJobs:
    """The backend of a :class:`LibsslJobRecord` (see the module docstring)."""

    name = "libssl"

    def __init__(self) -> None:
        self._support: Optional[TLSSupport] = None

    def bind(self, support: TLSSupport) -> None:
        self._support = support

    def _lib(self) -> TLSSupport:
        support = self._support
        if support is None:  # pragma: no cover - records exist only once support does
            raise JobStateError("pyossl_async.tls is not loaded")
        return support

    def pause_job(self) -> bool:
        """Pause libssl's job until the connection's next call resumes it; at once (True)
        when the calling code does not run in one (pausing is impossible there)."""
        record = _record_here()
        if record is None or not record.in_job:
            return True
        core = record.core
        if core.cancelled:
            raise JobCancelled()
        support = self._lib()
        record.state = "paused"
        try:
            support.pause_job()  # GIL-releasing: back when the connection's next call resumes us
        finally:
            record.state = "running"
        if core.cancelled:
            raise JobCancelled()
        return True

    def get_current_job(self) -> Optional[TLSJob]:
        record = _record_here()
        if record is None or not record.in_job:
            return None
        return record.job

    def get_wait_ctx(self, job: Any) -> Optional[BorrowedWaitCtx]:
        if not isinstance(job, TLSJob):
            raise TypeError(f"job must be a libssl job (TLSJob), not {type(job).__name__}")
        record = _record_here()
        if record is None or record.job is not job or not record.in_job:
            return None
        return job._core.wait_ctx()

    def block_pause(self) -> None:
        self._lib().crypto.ASYNC_block_pause()

    def unblock_pause(self) -> None:
        self._lib().crypto.ASYNC_unblock_pause()

    @contextmanager
    def pause_blocked(self) -> Iterator[None]:
        self.block_pause()
        try:
            yield
        finally:
            self.unblock_pause()

    def start_job(self, job: Any, ctx: Any, func: Any, args: Any = None) -> Any:
        raise JobStateError("start_job() called from inside a running job")


LIBSSL_JOBS = LibsslJobs()


class BorrowedWaitCtx(WaitCtx):
    """The ``ASYNC_WAIT_CTX`` libssl made for a connection (``s->waitctx``), for engine code
    inside its job: what ``pa.current_wait_ctx()`` returns there.

    libssl owns it (it frees it with the connection) and manages its callback
    (``Connection.set_async_callback``): ``close`` and ``set_callback`` are
    refused, and fds take no cleanup function (libssl would run it at
    ``SSL_free``, possibly after the interpreter has gone). The rest is the
    ``WaitCtx`` contract: Python keys stand for the opaque pointers C compares.
    """

    __slots__ = ("__weakref__", "_core", "_data", "_key_tokens", "_lib", "_live", "_ptr")

    def __init__(self, core: ConnectionCore, ptr: int, support: TLSSupport) -> None:
        self._core = core
        self._ptr = ptr
        self._lib = support.crypto
        self._key_tokens: Dict[Hashable, int] = {}
        #: key token -> data tokens of its live entries, oldest first
        self._live: Dict[int, List[int]] = {}
        self._data: Dict[int, Any] = {}

    @property
    def address(self) -> int:
        return self._ptr

    @property
    def backend(self) -> Backend:
        return LIBSSL_JOBS  # type: ignore[return-value]

    @property
    def closed(self) -> bool:
        return self._core.freed

    def _check(self) -> None:
        if self._core.freed:
            raise WaitCtxClosedError("the connection that owned this wait context was freed")

    def set_wait_fd(self, key: Hashable, fd: int, custom_data: Any = None, cleanup: Any = None) -> bool:
        self._check()
        if cleanup is not None:
            raise ValueError("libssl's wait context takes no cleanup functions (clear your fd after resuming)")
        hash(key)
        if isinstance(fd, bool) or not isinstance(fd, int) or not 0 <= fd < 1 << 31:
            raise ValueError(f"fd must be a non-negative C int, not {fd!r}")
        key_token = self._key_tokens.get(key)
        if key_token is None:
            key_token = self._key_tokens[key] = next(_tokens)
        data_token = next(_tokens)
        self._check()
        if not self._lib.ASYNC_WAIT_CTX_set_wait_fd(self._ptr, key_token, fd, data_token, None):
            return False  # (the errcheck raises first)
        self._data[data_token] = custom_data
        self._live.setdefault(key_token, []).append(data_token)
        return True

    def get_fd(self, key: Hashable) -> Optional[Tuple[int, Any]]:
        self._check()
        key_token = self._key_tokens.get(key)
        if key_token is None:
            return None
        fd, data = c_int(), c_void_p()
        if not self._lib.ASYNC_WAIT_CTX_get_fd(self._ptr, key_token, byref(fd), byref(data)):
            return None
        return fd.value, self._data.get(data.value or 0)

    def get_all_fds(self) -> List[int]:
        self._check()
        n = c_size_t()
        self._lib.ASYNC_WAIT_CTX_get_all_fds(self._ptr, None, byref(n))
        fds = (c_int * max(n.value, 1))()
        self._lib.ASYNC_WAIT_CTX_get_all_fds(self._ptr, fds, byref(n))
        return list(fds[: n.value])

    def get_changed_fds(self) -> Tuple[List[int], List[int]]:
        self._check()
        nadd, ndel = c_size_t(), c_size_t()
        lib = self._lib
        lib.ASYNC_WAIT_CTX_get_changed_fds(self._ptr, None, byref(nadd), None, byref(ndel))
        add = (c_int * max(nadd.value, 1))()
        dele = (c_int * max(ndel.value, 1))()
        lib.ASYNC_WAIT_CTX_get_changed_fds(self._ptr, add, byref(nadd), dele, byref(ndel))
        return list(add[: nadd.value]), list(dele[: ndel.value])

    def clear_fd(self, key: Hashable) -> bool:
        self._check()
        key_token = self._key_tokens.get(key)
        if key_token is None or not self._lib.ASYNC_WAIT_CTX_clear_fd(self._ptr, key_token):
            return False
        live = self._live.get(key_token)
        if live:
            self._data.pop(live.pop(), None)  # C clears the newest live entry
        if not live:
            self._live.pop(key_token, None)
            self._key_tokens.pop(key, None)
        return True

    def set_callback(self, callback: Optional[Callable[[Any], Any]], arg: Any = None) -> bool:
        raise JobStateError("libssl manages this wait context's callback: use Connection.set_async_callback")

    def get_callback(self) -> Optional[Tuple[Callable[[Any], Any], Any]]:
        """libssl's callback (``SSL_set_async_callback``), callable from Python, or None."""
        from ..backends._openssl_waitctx import ForeignCallback

        self._check()
        cb, arg = c_void_p(), c_void_p()
        if not self._lib.ASYNC_WAIT_CTX_get_callback(self._ptr, byref(cb), byref(arg)) or not cb.value:
            return None
        return ForeignCallback(cb.value), arg.value

    def set_status(self, status: int) -> bool:
        self._check()
        self._lib.ASYNC_WAIT_CTX_set_status(self._ptr, int(status))
        return True

    def get_status(self) -> int:
        self._check()
        return int(self._lib.ASYNC_WAIT_CTX_get_status(self._ptr))

    def close(self) -> None:
        raise JobStateError("libssl owns this wait context: it is freed with its connection")

    def __enter__(self) -> BorrowedWaitCtx:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def forget(self) -> None:
        """The connection is being freed: C drops the live entries with it."""
        self._data.clear()
        self._live.clear()
        self._key_tokens.clear()


ON_LOAD.append(LIBSSL_JOBS.bind)
