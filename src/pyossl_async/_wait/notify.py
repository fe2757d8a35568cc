"""The wait-ctx callback a driver installs, and how the driver hears it was called.

An engine calls a wait context's callback whenever it likes: from inside the
job just before pausing (OpenSSL's dasync does), from an accelerator thread
later, or long after the job is gone. The drivers' callback therefore runs no
Python code at all: it is ``os.write(pipe, token)``, reached from C through a
ctypes thunk whose argument is declared ``char *`` (the token's bytes) and whose
Python callable is the ``write`` method of an ``io.FileIO`` over a pipe: C from
end to end.
Two reasons:

* Inside a job being closed, a ``JobCancelled`` is pending for the job's next
  Python code (``_native``'s cancellation). A Python callback would receive it
  at its first line, where nothing can catch it, and the wake-up would be lost.
* An exception cannot escape into the engine's C code, whatever happens.

Each OS thread that drives jobs has a :class:`Notifier`: a non-blocking pipe,
the thunk bound to it, and a table of the tokens registered on it. A token is 8
non-zero bytes naming one listener (a driver waiting for its job). The driver
polls the pipe's read end along with the context's wait fds; reading it tells
which listeners' callbacks came.

An engine may call a callback it copied long ago. So thunks and token buffers
are never freed (a stale token names nobody), and the pipe is written through an
``io.FileIO`` object: when the thread ends and its pipe is closed, a late call
gets an error from ``FileIO.write`` instead of writing into whatever file reuses
the number.
"""

from __future__ import annotations

import errno
import fcntl
import io
import itertools
import os
import threading
import weakref
from typing import Any, Callable, Dict, List, Protocol, Tuple

__all__ = ["Listener", "Notifier", "notifier"]

TOKEN_SIZE = 8
#: bigger pipes hold more unread tokens before a write would fail (Linux)
_PIPE_SIZE = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


class Listener(Protocol):
    """Whoever waits for a callback: told through :meth:`notified` on its own thread."""

    def notified(self) -> None: ...


def _token_bytes(n: int) -> bytes:
    """Token number ``n`` as 8 bytes none of which is NUL (a C string of length 8)."""
    out = bytearray()
    for _ in range(TOKEN_SIZE):
        n, digit = divmod(n, 255)
        out.append(digit + 1)
    return bytes(out)


_numbers = itertools.count(1)
#: token buffers not in use: reused by any thread, never freed (C may read a stale one)
_free_slots: List["_TokenSlot"] = []


class _TokenSlot:
    """A token, and its C string once C needs one (never freed: see the module docstring).

    The C string is made on first use of ``address`` (a callback installed on a
    real ``ASYNC_WAIT_CTX``): the python backend's contexts call the pipe's
    ``write`` with the token itself, and a driver of them imports no ctypes at
    all. (A first ``import ctypes`` inside a close, with signal handlers raising
    into the import machinery, made CPython 3.9/3.10 report a SystemError.)
    """

    __slots__ = ("_address", "_buffer", "token")

    def __init__(self) -> None:
        self._buffer: Any = None
        self._address = 0
        self.token = b""

    @property
    def address(self) -> int:
        """The address of the token's NUL-terminated C string (stable for good)."""
        if self._buffer is None:
            import ctypes

            buffer = ctypes.create_string_buffer(TOKEN_SIZE + 1)
            buffer.raw = self.token + b"\0"
            self._address = ctypes.addressof(buffer)
            self._buffer = buffer
        return self._address

    def renew(self) -> bytes:
        self.token = _token_bytes(next(_numbers))
        if self._buffer is not None:
            self._buffer.raw = self.token + b"\0"
        return self.token


class Notifier:
    """One OS thread's callback pipe (see the module docstring)."""

    def __init__(self) -> None:
        self.r, w = os.pipe()
        for fd in (self.r, w):
            os.set_blocking(fd, False)
            os.set_inheritable(fd, False)
        try:
            fcntl.fcntl(w, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:  # pragma: no cover - a limit below 1 MiB: the default 64 KiB will do
            pass
        self.capacity = fcntl.fcntl(w, getattr(fcntl, "F_GETPIPE_SZ", 1032))
        self._file = io.FileIO(w, "wb", closefd=True)
        self.closed = False
        #: token -> listener; weak, so a listener nobody else holds goes away
        self._listeners: "weakref.WeakValueDictionary[bytes, Any]" = weakref.WeakValueDictionary()
        self._thunk: Any = None
        self.thunk_address = 0
        self._write = self._file.write  # C: returns the byte count

    # -- registrations ------------------------------------------------------------

    def register(self, listener: Listener) -> _TokenSlot:
        """A fresh token for ``listener``, until :meth:`unregister`."""
        try:
            slot = _free_slots.pop()
        except IndexError:  # (checked and popped in one step: a signal handler may register too)
            slot = _TokenSlot()
        self._listeners[slot.renew()] = listener
        return slot

    def adopt(self, slot: _TokenSlot, listener: Listener) -> bool:
        """Let ``listener`` take over ``slot``'s token (an engine may hold it already); False if
        the token is not this notifier's."""
        if slot.token not in self._listeners:
            return False
        self._listeners[slot.token] = listener
        return True

    def unregister(self, slot: _TokenSlot) -> None:
        self._listeners.pop(slot.token, None)
        slot.renew()  # a late call with this buffer now names nobody
        _free_slots.append(slot)

    def callback_for(self, ctx: Any, slot: _TokenSlot) -> Tuple[Callable[[Any], Any], Any]:
        """The ``(callback, arg)`` to install on ``ctx`` so that calls land here as ``slot``'s token.

        For a real ``ASYNC_WAIT_CTX`` it is a C function pointer and the token's
        address; for the python backend, the same ``os.write`` as a callable.
        """
        foreign = getattr(ctx, "foreign_callback", None)
        if foreign is not None:
            if self._thunk is None:
                self._thunk, self.thunk_address = _make_thunk(self._write)
            return foreign(self.thunk_address), slot.address
        return self._write, slot.token

    def close(self) -> None:
        """The thread is gone: close the pipe (the thunk and token buffers stay valid)."""
        if self.closed:
            return
        self.closed = True
        self._listeners.clear()
        os.close(self.r)
        self._file.close()
        if self._thunk is not None:
            _retired.append(self._thunk)  # C may still call it

    # -- reading --------------------------------------------------------------------

    def drain(self) -> bool:
        """Tell every listener whose token was written since the last drain.

        Returns True when anything was read. A pipe found full may have lost
        tokens: then every listener is told (a spurious wake-up is harmless).
        """
        chunks = []
        total = 0
        while True:
            try:
                data = os.read(self.r, 65536)
            except BlockingIOError:
                break
            except OSError as exc:  # pragma: no cover - EINTR is retried by Python
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:  # pragma: no cover - the write end is never closed
                break
            chunks.append(data)
            total += len(data)
        if not chunks:
            return False
        listeners = self._listeners
        if total >= self.capacity:
            targets: List[Any] = list(listeners.values())
        else:
            data = b"".join(chunks)
            targets = []
            seen = set()
            for i in range(0, len(data) - TOKEN_SIZE + 1, TOKEN_SIZE):
                token = data[i : i + TOKEN_SIZE]
                if token in seen:
                    continue
                seen.add(token)
                listener = listeners.get(token)
                if listener is not None:
                    targets.append(listener)
        for listener in targets:
            listener.notified()
        return True


def _make_thunk(write: Callable[[bytes], int]) -> Tuple[Any, int]:
    """A C ``int (*)(void *)`` that passes its argument, read as a C string, to ``write``."""
    import ctypes

    thunk = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_char_p)(write)
    return thunk, ctypes.cast(thunk, ctypes.c_void_p).value or 0


# -- one notifier per OS thread ---------------------------------------------------

#: thunks of closed notifiers: never freed, an engine may call a stale callback
_retired: List[Any] = []
_by_thread: Dict[int, Notifier] = {}
_local = threading.local()
_pid = os.getpid()


class _Release:
    """Lives in the thread's ``threading.local``: closes its notifier when the thread ends."""

    __slots__ = ("ident", "notifier")

    def __init__(self, notifier: Notifier, ident: int) -> None:
        self.notifier = notifier
        self.ident = ident

    def __del__(self) -> None:
        try:
            if _by_thread.get(self.ident) is self.notifier:
                del _by_thread[self.ident]
            self.notifier.close()
        except BaseException:  # noqa: BLE001 - thread teardown, possibly at interpreter exit
            pass


def notifier() -> Notifier:
    """The calling thread's notifier."""
    global _pid
    ident = threading.get_ident()
    found = _by_thread.get(ident)
    if found is not None and _pid == os.getpid() and not found.closed:
        return found
    if _pid != os.getpid():  # a forked child: the parent's pipes are not its own
        _pid = os.getpid()
        _by_thread.clear()
    found = _by_thread[ident] = Notifier()
    _local.release = _Release(found, ident)
    return found
