"""``Connection``: one ``SSL *`` over memory BIOs or a socket, every call bound (``_binding``).

A connection is sans-I/O in memory mode: ``feed()`` what the peer sent,
``take()`` what to send it, and each of ``do_handshake``/``read``/``write``/
``shutdown`` says what it needs next (:class:`Want`): nothing more, bytes from
the peer, room to write, or, with ``SSL_MODE_ASYNC``, the completion of the
asynchronous operation that paused libssl's job (wait on :meth:`async_fds` or
the callback of :meth:`set_async_callback`, then make the same call again).

Teardown: libssl cannot abort a paused job. Closing (or collecting) a
connection whose job is paused drives the job to its end first: the operation
paused in Python gets ``JobCancelled`` from its pause (one inside C, from the
first Python code it runs), and the call is repeated until libssl's job is
gone, for at most ``pa.DEFAULT_CLOSE_TIMEOUT`` seconds; then the SSL object, its
thread state and its stack are freed. A job that will not end is left paused
with all three, never reused (``ResourceWarning``). A connection collected on
another thread, or while a job runs on its thread, is closed by its own thread
at its next TLS call.
"""

from __future__ import annotations

import contextvars
import ctypes
import enum
import select
import sys
import threading
import time
import warnings
import weakref
from ctypes import c_int, c_size_t
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .._errors import JobStateError
from .._libcrypto import drain_errors
from .._libssl import TLSEOFError, TLSError, TLSProtocolError
from .._running import RUNNING_JOB
from .._unraisable import report_unraisable
from ._binding import BoundSSL, TLSThread, check_binding, thread_here
from ._jobs import BorrowedWaitCtx, LibsslJobRecord
from ._keyops import Entry
from ._keys import KeyOperation, perform
from ._support import TLSSupport

if TYPE_CHECKING:
    import socket

    from ._context import Context

__all__ = ["Connection", "ConnectionCore", "Want"]

SSL_ERROR_NONE = 0
SSL_ERROR_SSL = 1
SSL_ERROR_WANT_READ = 2
SSL_ERROR_WANT_WRITE = 3
SSL_ERROR_SYSCALL = 5
SSL_ERROR_ZERO_RETURN = 6
SSL_ERROR_WANT_ASYNC = 9
SSL_ERROR_WANT_ASYNC_JOB = 10
SSL_CTRL_SET_TLSEXT_HOSTNAME = 55
TLSEXT_NAMETYPE_host_name = 0
BIO_CTRL_PENDING = 10
BIO_C_SET_BUF_MEM_EOF_RETURN = 130
SSL_RECEIVED_SHUTDOWN = 2

_get_ident = threading.get_ident


class Want(enum.Enum):
    """What a connection needs before the call that returned it can make progress."""

    #: the call completed
    DONE = "done"
    #: bytes from the peer (``feed()``, or a readable socket), then the same call again
    READ = "read"
    #: room to write (a writable socket; memory BIOs never ask), then the same call again
    WRITE = "write"
    #: libssl's job paused for an asynchronous operation (``SSL_ERROR_WANT_ASYNC``): wait
    #: for one of ``async_fds()`` to be readable, or the async callback, then call again
    ASYNC = "async"
    #: no async job could be had (``SSL_ERROR_WANT_ASYNC_JOB``: the thread's pool is full)
    ASYNC_NO_JOBS = "async_no_jobs"


class _Pending:
    """The call whose job is paused, with the buffers libssl's job holds pointers to."""

    __slots__ = ("args", "function", "keep", "name")

    def __init__(self, name: str, function: str, args: Tuple[int, ...], keep: Tuple[Any, ...]) -> None:
        self.name = name
        self.function = function
        self.args = args
        self.keep = keep


class ConnectionCore:
    """A connection's state, apart from its public object: the paused frames of a key
    operation refer to this, never to the :class:`Connection`, so that the
    connection can be collected (and closed) while they wait."""

    def __init__(
        self, context: Context, sock: Optional[socket.socket], server_hostname: Optional[str], owner: Connection
    ) -> None:
        support: TLSSupport = context._support
        self.support = support
        lib = self.lib = support.lib
        self.context = context
        self.thread: TLSThread = thread_here(support)
        if self.thread.pending:
            self.thread.drain_pending()
        self.server_side = context.server_side
        self.freed = False
        self.leaked = False
        self.cancelled = False
        #: JobCancelled is pending on the connection's thread state (see ``cancel``)
        self.armed = False
        #: Python key operations run for this connection, and times its job paused
        self.key_operations = 0
        self.pauses = 0
        #: what a key operation raised (re-raised by the call that failed because of it)
        self.op_error: Optional[BaseException] = None
        self.pending: Optional[_Pending] = None
        self._wait_ctx: Optional[BorrowedWaitCtx] = None
        self._callback_token = 0
        self._fns: Dict[str, int] = {}
        self.sock = sock
        self.record = LibsslJobRecord(self, self.thread.ident)
        self.vars = contextvars.copy_context()
        self.vars.run(RUNNING_JOB.set, self.record)
        self.entry: Optional[Entry] = None
        self.bound: Optional[BoundSSL] = None
        self.rbio = self.wbio = 0
        self.ssl = lib.SSL_new(context._ctx)
        try:
            if context.offloaded:
                self.entry = self.thread.take_entry(self._operate, self._interrupted)
            self.bound = BoundSSL(support, self.thread, self.ssl, self.entry)
            self._set_up(sock, server_hostname)
            #: closes the core when its Connection is collected (registered last: from here
            #: on nothing of the core can be lost, wherever an interrupt lands)
            self.finalizer = weakref.finalize(owner, _finalize, self)
            self.thread.cores[id(self)] = weakref.ref(self)
        except BaseException:
            self._abandon()
            raise

    def _set_up(self, sock: Optional[socket.socket], server_hostname: Optional[str]) -> None:
        lib, call = self.lib, self.call
        if sock is None:
            rbio = lib.BIO_new(lib.BIO_s_mem())
            try:
                wbio = lib.BIO_new(lib.BIO_s_mem())
            except BaseException:
                lib.BIO_free(rbio)
                raise
            lib.BIO_ctrl(rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, None)
            lib.BIO_ctrl(wbio, BIO_C_SET_BUF_MEM_EOF_RETURN, -1, None)
            self.rbio, self.wbio = rbio, wbio
            call("SSL_set_bio", rbio, wbio)  # the SSL object owns them now
        elif call("SSL_set_fd", sock.fileno()) != 1:
            raise TLSError("SSL_set_fd failed", drain_errors(self.support.crypto))
        if self.server_side:
            call("SSL_set_accept_state")
        else:
            call("SSL_set_connect_state")
            if server_hostname:
                name = ctypes.create_string_buffer(server_hostname.encode("idna"))
                call("SSL_ctrl", SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, ctypes.addressof(name))
                if self.context.verify:
                    call("SSL_set1_host", ctypes.addressof(name))

    def _abandon(self) -> None:
        """The constructor was cut short (an error, an interrupt): free what it took. No
        I/O has happened, so no libssl job can exist and ``SSL_free`` runs no code of ours."""
        self.freed = True
        ssl, self.ssl = self.ssl, 0
        if ssl:
            self.lib.SSL_free(ssl)  # with the BIOs, once SSL_set_bio took them
        if self.bound is not None:
            self.bound.release()
        entry, self.entry = self.entry, None
        if entry is not None and not entry.busy:
            self.thread.give_entry(entry)

    # -- calls -------------------------------------------------------------------

    def call(self, name: str, *args: int) -> int:
        """``name(ssl, *args)`` (at most five) through the bound switch (``_binding``)."""
        fn = self._fns.get(name)
        if fn is None:
            fn = self._fns[name] = self.lib.address(name)
        bound = self.bound
        assert bound is not None
        return bound.call(fn, *args)

    def describe(self) -> str:
        role = "server" if self.server_side else "client"
        return f"TLS {role} connection {self.ssl:#x}"

    def _check_usable(self) -> None:
        if self.freed or self.leaked:
            raise JobStateError("the TLS connection is closed")
        if self.thread.pending and self.thread.ident == _get_ident():
            self.thread.drain_pending()

    def _begin(self, name: str) -> Optional[_Pending]:
        self._check_usable()
        pending = self.pending
        if pending is not None and pending.name != name:
            raise JobStateError(
                f"a {pending.name} is waiting for its asynchronous operation: call {pending.name}() again first"
            )
        self.support.lib.ERR_clear_error()
        return pending

    def _run(self, name: str, function: str, args: Tuple[int, ...], keep: Tuple[Any, ...]) -> int:
        # recorded before the call: should anything interrupt us after it, close() still
        # knows which buffers libssl's job may write to, and keeps them until it ends
        self.pending = _Pending(name, function, args, keep)
        self.op_error = None
        return self.call(function, *args)

    def _want(self, ret: int, what: str) -> Want:
        """What ``SSL_get_error`` says of ``ret``; raises for errors (a key operation's own
        exception first: the TLS error it caused is its context)."""
        err = self.call("SSL_get_error", ret)
        if err == SSL_ERROR_WANT_ASYNC:
            self.pauses += 1
            return Want.ASYNC
        self.pending = None
        if err == SSL_ERROR_WANT_READ:
            return Want.READ
        if err == SSL_ERROR_WANT_WRITE:
            return Want.WRITE
        if err == SSL_ERROR_WANT_ASYNC_JOB:
            return Want.ASYNC_NO_JOBS
        errors = drain_errors(self.support.crypto)
        op_error, self.op_error = self.op_error, None
        if err == SSL_ERROR_ZERO_RETURN:
            raise TLSEOFError(f"the peer closed the TLS connection during {what}", errors)
        if err == SSL_ERROR_SYSCALL and not errors:
            failure: TLSError = TLSEOFError(f"the peer closed the transport during {what}")
        elif err in (SSL_ERROR_SSL, SSL_ERROR_SYSCALL):
            failure = TLSProtocolError(f"{what} failed", errors)
        else:
            failure = TLSError(f"{what} failed with SSL error {err}", errors)
        if op_error is not None:
            try:
                raise op_error from failure
            finally:
                del op_error
        raise failure

    def do_handshake(self) -> Want:
        self._begin("do_handshake")
        ret = self._run("do_handshake", "SSL_do_handshake", (), ())
        if ret == 1:
            self.pending = None
            return Want.DONE
        return self._want(ret, "the handshake")

    def read(self, size: int) -> Tuple[Want, bytes]:
        pending = self._begin("read")
        if pending is not None:
            buf, got = pending.keep
        else:
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise ValueError(f"size must be a positive int, not {size!r}")
            buf, got = ctypes.create_string_buffer(size), c_size_t(0)
        args = (ctypes.addressof(buf), len(buf), ctypes.addressof(got))
        ret = self._run("read", "SSL_read_ex", args, (buf, got))
        if ret == 1:
            self.pending = None
            return Want.DONE, buf.raw[: got.value]
        try:
            return self._want(ret, "a read"), b""
        except TLSEOFError:
            if self.call("SSL_get_shutdown") & SSL_RECEIVED_SHUTDOWN:
                return Want.DONE, b""  # close_notify: a clean end of the stream
            raise

    def write(self, data: bytes) -> Tuple[Want, int]:
        pending = self._begin("write")
        if pending is not None:
            buf, done = pending.keep
            if bytes(data) != buf.raw:
                raise ValueError("a write waiting for its asynchronous operation must be repeated with the same data")
        else:
            data = bytes(data)
            if not data:
                return Want.DONE, 0
            buf, done = ctypes.create_string_buffer(data, len(data)), c_size_t(0)
        args = (ctypes.addressof(buf), len(buf), ctypes.addressof(done))
        ret = self._run("write", "SSL_write_ex", args, (buf, done))
        if ret == 1:
            self.pending = None
            return Want.DONE, done.value
        return self._want(ret, "a write"), 0

    def shutdown(self) -> Want:
        """Send ``close_notify`` (``SSL_shutdown``); DONE once sent (not waiting for the peer's)."""
        self._begin("shutdown")
        ret = self._run("shutdown", "SSL_shutdown", (), ())
        if ret >= 0:
            self.pending = None
            return Want.DONE
        return self._want(ret, "the shutdown")

    # -- memory BIOs ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not self.rbio:
            raise JobStateError("feed() is for connections over memory BIOs, not sockets")
        self._check_usable()
        data = bytes(data)
        if data and self.lib.BIO_write(self.rbio, data, len(data)) != len(data):
            raise TLSError("BIO_write failed", drain_errors(self.support.crypto))

    def feed_eof(self) -> None:
        if not self.rbio:
            raise JobStateError("feed_eof() is for connections over memory BIOs, not sockets")
        self._check_usable()
        self.lib.BIO_ctrl(self.rbio, BIO_C_SET_BUF_MEM_EOF_RETURN, 0, None)

    def take(self) -> bytes:
        if not self.wbio:
            raise JobStateError("take() is for connections over memory BIOs, not sockets")
        self._check_usable()
        n = int(self.lib.BIO_ctrl(self.wbio, BIO_CTRL_PENDING, 0, None))
        if not n:
            return b""
        buf = ctypes.create_string_buffer(n)
        got = self.lib.BIO_read(self.wbio, buf, n)
        return buf.raw[: max(got, 0)]

    # -- async ----------------------------------------------------------------------

    def async_fds(self) -> List[int]:
        self._check_usable()
        n = c_size_t(0)
        self.call("SSL_get_all_async_fds", 0, ctypes.addressof(n))
        if not n.value:
            return []
        fds = (c_int * n.value)()
        self.call("SSL_get_all_async_fds", ctypes.addressof(fds), ctypes.addressof(n))
        return list(fds[: n.value])

    def changed_async_fds(self) -> Tuple[List[int], List[int]]:
        self._check_usable()
        nadd, ndel = c_size_t(0), c_size_t(0)
        address = ctypes.addressof
        self.call("SSL_get_changed_async_fds", 0, address(nadd), 0, address(ndel))
        add = (c_int * max(nadd.value, 1))()
        dele = (c_int * max(ndel.value, 1))()
        self.call("SSL_get_changed_async_fds", address(add), address(nadd), address(dele), address(ndel))
        return list(add[: nadd.value]), list(dele[: ndel.value])

    def async_status(self) -> int:
        self._check_usable()
        status = c_int(0)
        self.call("SSL_get_async_status", ctypes.addressof(status))
        return status.value

    def waiting_for_async(self) -> bool:
        return bool(self.call("SSL_waiting_for_async"))

    def set_async_callback(self, callback: Optional[Callable[[], Any]]) -> None:
        self._check_usable()
        token = self._callback_token
        if token:
            _async_callbacks.pop(token, None)
            self._callback_token = 0
        if callback is None:
            self.call("SSL_set_async_callback", 0)
            return
        if not callable(callback):
            raise TypeError(f"callback must be callable or None, not {type(callback).__name__}")
        token = self._callback_token = next(_callback_tokens)
        _async_callbacks[token] = callback
        self.call("SSL_set_async_callback", _ASYNC_CALLBACK_ADDRESS)
        self.call("SSL_set_async_callback_arg", token)

    def wait_ctx(self) -> BorrowedWaitCtx:
        """libssl's ``ASYNC_WAIT_CTX`` of the running job (inside a key operation only)."""
        support = self.support
        job = support.current_job()
        ptr = int(support.get_wait_ctx(job) or 0) if job else 0
        if not ptr:
            raise JobStateError("libssl's wait context exists only inside its job")
        ctx = self._wait_ctx
        if ctx is None or ctx.address != ptr:
            ctx = self._wait_ctx = BorrowedWaitCtx(self, ptr, support)
        return ctx

    # -- key operations (inside a bound call, on the connection's thread state) ----------

    def _operate(self, entry: Entry, raw: bytes) -> int:
        return perform(raw, self.run_key_operation, self._failed)

    def run_key_operation(self, op: KeyOperation) -> Any:
        support = self.support
        record = self.record
        if self.cancelled:
            from .._errors import JobCancelled

            raise JobCancelled()
        bound = self.bound
        if self.entry is not None and bound is not None and (self.entry.used <= 1 or support.native.debug):
            check_binding(support, bound.ts)
        record.in_job = bool(support.current_job())
        record.state = "running"
        self.key_operations += 1
        try:
            return self.vars.run(op.key.operation, op)
        finally:
            record.state = "idle"
            record.in_job = False

    def _failed(self, exc: BaseException) -> None:
        if self.op_error is None:
            self.op_error = exc

    def _interrupted(self, exc: BaseException) -> None:
        self._failed(exc)

    # -- teardown --------------------------------------------------------------------

    def close(self) -> None:
        """Drive a paused job to its end, then free everything (see the module docstring)."""
        if self.freed or self.leaked:
            return
        if self.thread.closed:
            # its thread has gone, or this is a child forked after it was made: nothing
            # of it can be called here (its thread state may not exist); left as it is
            self.leaked = True
            return
        if self.thread.ident != _get_ident():
            self.defer_close()
            return
        if self.support.current_job():
            raise JobStateError("a TLS connection cannot be closed from inside a running job")
        if self.call("SSL_waiting_for_async"):
            self._drive_to_end()
        if self.call("SSL_waiting_for_async"):
            self._leak()
            return
        self._free()

    def defer_close(self) -> None:
        """Have the connection's own thread close it at its next TLS call."""
        if self.freed or self.leaked:
            return
        if self.thread.closed:
            self.leaked = True  # (see close)
        else:
            self.thread.pending.append(self.close)

    def cancel(self) -> None:
        """Make the paused operation end: ``JobCancelled`` from its ``pause_job`` (one paused
        inside C gets it at the first Python code it runs on the connection's state)."""
        if self.cancelled:
            return
        self.cancelled = True
        if self.record.state != "paused" and self.call("SSL_waiting_for_async"):
            from .._errors import JobCancelled

            assert self.bound is not None
            self.armed = self.support.native.async_exc.arm(self.bound.ts, JobCancelled)

    def _disarm(self) -> None:
        if self.armed and self.bound is not None:
            self.armed = False
            self.support.native.async_exc.disarm(self.bound.ts)

    def resume_pending(self) -> None:
        """Repeat the call whose job is paused, dropping its outcome (closing)."""
        pending = self.pending
        function, args = (pending.function, pending.args) if pending is not None else ("SSL_do_handshake", ())
        lib = self.support.lib
        lib.ERR_clear_error()
        try:
            self.call(function, *args)
        finally:
            lib.ERR_clear_error()
            if not self.call("SSL_waiting_for_async"):
                self.pending = None
                self.op_error = None

    def _drive_to_end(self) -> None:
        from ..drive._blocking import DEFAULT_CLOSE_TIMEOUT

        self.cancel()
        deadline = time.monotonic() + DEFAULT_CLOSE_TIMEOUT
        while True:
            self.resume_pending()
            if not self.call("SSL_waiting_for_async") or time.monotonic() >= deadline:
                break
            self._nap()

    def _nap(self) -> None:
        """Between two resumes of a job being closed: until one of its fds is readable,
        or a millisecond."""
        fds = self.async_fds()
        if fds:
            select.select(fds, [], [], 0.001)
        else:
            time.sleep(0.001)

    def _leak(self) -> None:
        self._disarm()
        self.leaked = True
        self.thread.cores.pop(id(self), None)
        warnings.warn(
            f"{self.describe()}: its libssl job did not end within the close timeout; the job, "
            f"its thread state and its stack are left paused (never reused)",
            ResourceWarning,
            stacklevel=3,
        )

    def _free(self) -> None:
        self._disarm()
        token = self._callback_token
        if token:
            _async_callbacks.pop(token, None)
        if self._wait_ctx is not None:
            self._wait_ctx.forget()
        self.pending = None
        self.thread.cores.pop(id(self), None)
        self.freed = True  # (an interrupt from here on leaks, never frees twice)
        ssl, self.ssl = self.ssl, 0
        bound = self.bound
        assert bound is not None
        try:
            bound.call(self.lib.address("SSL_free"))
        finally:
            bound.ssl = 0
            bound.release()
            entry, self.entry = self.entry, None
            if entry is not None:
                self.thread.give_entry(entry)
        del ssl


def _finalize(core: ConnectionCore) -> None:
    """A Connection was collected: close its core now if this is its thread and no job
    runs here, else at its thread's next TLS call."""
    if sys.is_finalizing() or core.freed or core.leaked:
        return
    try:
        if core.thread.closed:
            core.leaked = True
        elif core.thread.ident == _get_ident() and not core.support.current_job():
            core.close()
        else:
            core.defer_close()
    except BaseException as exc:  # noqa: BLE001 - a finaliser has nobody to raise to
        report_unraisable(exc, "Exception while closing a collected TLS connection")


class Connection:
    """A TLS connection (see the module docstring for the protocol).

    ``Connection(context)`` runs over memory BIOs (``feed``/``take``);
    ``Connection(context, sock=s)`` over a socket libssl reads and writes itself.
    ``server_hostname`` (clients): SNI, and the name checked when the context
    verifies. Use it on the OS thread that made it; close it (or use ``with``).
    """

    def __init__(
        self,
        context: Context,
        *,
        sock: Optional[socket.socket] = None,
        server_hostname: Optional[str] = None,
    ) -> None:
        from ._context import Context

        if not isinstance(context, Context):
            raise TypeError(f"context must be a tls.Context, not {type(context).__name__}")
        self._core = ConnectionCore(context, sock, server_hostname, self)

    # the protocol
    def do_handshake(self) -> Want:
        """``SSL_do_handshake``."""
        return self._core.do_handshake()

    def read(self, size: int = 16384) -> Tuple[Want, bytes]:
        """``SSL_read_ex``: ``(Want.DONE, data)``; ``(Want.DONE, b"")`` at the peer's close_notify."""
        return self._core.read(size)

    def write(self, data: bytes) -> Tuple[Want, int]:
        """``SSL_write_ex``: ``(Want.DONE, bytes written)``; after ``Want.ASYNC`` call it again
        with the same data."""
        return self._core.write(data)

    def shutdown(self) -> Want:
        """``SSL_shutdown``: send close_notify."""
        return self._core.shutdown()

    # memory BIOs
    def feed(self, data: bytes) -> None:
        """Bytes received from the peer."""
        self._core.feed(data)

    def feed_eof(self) -> None:
        """The peer closed the transport."""
        self._core.feed_eof()

    def take(self) -> bytes:
        """Bytes to send to the peer (all there are now)."""
        return self._core.take()

    # async
    def async_fds(self) -> List[int]:
        """``SSL_get_all_async_fds``: the fds the paused job waits on."""
        return self._core.async_fds()

    def changed_async_fds(self) -> Tuple[List[int], List[int]]:
        """``SSL_get_changed_async_fds``: ``(added, deleted)`` since the last call."""
        return self._core.changed_async_fds()

    def async_status(self) -> int:
        """``SSL_get_async_status``: an ``ASYNC_STATUS_*`` (``pa.WaitStatus``)."""
        return self._core.async_status()

    def set_async_callback(self, callback: Optional[Callable[[], Any]]) -> None:
        """``SSL_set_async_callback``: ``callback()`` is called, from whichever thread
        completes the operation, when the paused job can be resumed (None: fds only)."""
        self._core.set_async_callback(callback)

    @property
    def waiting_for_async(self) -> bool:
        """``SSL_waiting_for_async``: libssl's job is paused."""
        return self._core.waiting_for_async()

    def wait_async(self, timeout: Optional[float] = None) -> bool:
        """Block until the paused job's fds are readable (no callback set); whether they are."""
        fds = self.async_fds()
        if not fds:
            return not self.waiting_for_async
        readable, _, _ = select.select(fds, [], [], timeout)
        return bool(readable)

    # state
    @property
    def version(self) -> Optional[str]:
        """The negotiated protocol (``"TLSv1.3"``), once the handshake is done."""
        core = self._core
        core._check_usable()
        raw = core.lib.SSL_get_version(core.ssl)
        return raw.decode("ascii") if raw else None

    @property
    def cipher(self) -> Optional[str]:
        core = self._core
        core._check_usable()
        cipher = core.lib.SSL_get_current_cipher(core.ssl)
        if not cipher:
            return None
        name = core.lib.SSL_CIPHER_get_name(cipher)
        return name.decode("ascii") if name else None

    @property
    def key_operations(self) -> int:
        """Private-key operations run in Python for this connection."""
        return self._core.key_operations

    @property
    def pauses(self) -> int:
        """Times a call returned ``Want.ASYNC`` (libssl's job paused)."""
        return self._core.pauses

    @property
    def server_side(self) -> bool:
        return self._core.server_side

    @property
    def closed(self) -> bool:
        return self._core.freed or self._core.leaked

    def close(self) -> None:
        """Free the connection, driving a paused job to its end first."""
        self._core.close()
        if self._core.freed:
            self._core.finalizer.detach()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("waiting for async" if self._core.pending else "open")
        return f"<tls.Connection {'server' if self.server_side else 'client'} {state}>"


_callback_tokens = iter(range(1, 1 << 62))
#: token -> the Python callable of a connection's SSL_set_async_callback
_async_callbacks: Dict[int, Callable[[], Any]] = {}


def _async_callback(ssl: Any, arg: Any) -> int:
    callback = _async_callbacks.get(arg or 0)
    if callback is None:
        return 0
    try:
        callback()
    except BaseException as exc:  # noqa: BLE001 - the completing thread has nobody to tell
        report_unraisable(exc, "Exception ignored in a TLS async callback", callback)
        return 0
    return 1


#: ``int (*)(SSL *s, void *arg)``: called from the thread that completes the operation
_ASYNC_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(_async_callback)
_ASYNC_CALLBACK_ADDRESS = ctypes.cast(_ASYNC_CALLBACK, ctypes.c_void_p).value or 0
