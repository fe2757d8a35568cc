"""``WaitCtx`` over a real ``ASYNC_WAIT_CTX``.

libcrypto stays the source of truth for fds, their order and the add/del lists.
Python-side tables only translate: Python keys to the opaque pointers C compares
(never dereferenced, so plain integers), and ``custom_data`` pointers back to the
Python objects and cleanup functions behind them. Entries leave those tables when
C lets go of them: on ``clear_fd`` (C never cleans up a cleared fd) and on free.
"""

from __future__ import annotations

import ctypes
import itertools
from ctypes import byref, c_int, c_size_t, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, Hashable, List, NamedTuple, Optional

from .._constants import WaitStatus
from .._libcrypto import c_call as _c_call
from .._libcrypto._types import ASYNC_callback_fn, ASYNC_cleanup_fn
from .._native._libs import address_of
from .._unraisable import report_unraisable
from .._validate import c_int as check_c_int
from .._validate import callable_or_none, hashable_key
from ._waitctx_base import WaitCtxBase

if TYPE_CHECKING:
    from .openssl import OpenSSLBackend

__all__ = ["ForeignCallback", "OpenSSLWaitCtx"]

_tokens = itertools.count(1)


class _FdEntry(NamedTuple):
    key: Hashable
    key_token: int
    custom_data: Any
    cleanup: Optional[Callable[..., Any]]


class _Tables:
    """What the C thunks look up. Held by the thunks themselves (not module globals),
    so they keep working while the interpreter tears modules down."""

    def __init__(self) -> None:
        #: custom_data pointer -> the live fd entry it stands for (all contexts)
        self.entries: Dict[int, _FdEntry] = {}
        #: callback arg pointer -> (callback, arg)
        self.callbacks: Dict[int, tuple[Callable[[Any], Any], Any]] = {}
        #: ASYNC_WAIT_CTX * -> the WaitCtx being freed (cleanup functions receive it)
        self.freeing: Dict[int, "OpenSSLWaitCtx"] = {}


def _make_thunks(tables: _Tables) -> tuple[Any, Any]:
    entries, callbacks, freeing, report = tables.entries, tables.callbacks, tables.freeing, report_unraisable

    def cleanup(ctx_ptr: Any, key_ptr: Any, fd: int, data_ptr: Any) -> None:
        entry = entries.pop(data_ptr or 0, None)
        if entry is None or entry.cleanup is None:
            return
        try:
            entry.cleanup(freeing.get(ctx_ptr or 0), entry.key, fd, entry.custom_data)
        except BaseException as exc:  # noqa: BLE001 - must not unwind through C
            report(exc, "Exception ignored in WaitCtx cleanup function", entry.cleanup)

    def callback(arg_ptr: Any) -> int:
        found = callbacks.get(arg_ptr or 0)
        if found is None:
            return 0
        fn, arg = found
        try:
            result = fn(arg)
        except BaseException as exc:  # noqa: BLE001 - must not unwind through C
            report(exc, "Exception ignored in WaitCtx callback", fn)
            return 0
        return int(result) if isinstance(result, int) else 1

    return ASYNC_cleanup_fn(cleanup), ASYNC_callback_fn(callback)


_tables = _Tables()
_entries = _tables.entries
_callbacks = _tables.callbacks
_cleanup_thunk, _callback_thunk = _make_thunks(_tables)
_CLEANUP = address_of(_cleanup_thunk)
_CALLBACK = address_of(_callback_thunk)



class ForeignCallback:
    """A C wait-ctx callback (``int (*)(void *)``): what ``get_callback`` returns for
    a callback some C code installed, and what ``set_callback`` installs as it is
    (its ``arg`` then goes to C as a raw pointer: an ``int`` or ``None``).
    Calling it from Python calls the C function."""

    __slots__ = ("_fn", "address")

    def __init__(self, address: int) -> None:
        if isinstance(address, bool) or not isinstance(address, int) or not 0 < address < 1 << 64:
            raise ValueError(f"a C function address must be a positive int, not {address!r}")
        self.address = address
        self._fn = ctypes.cast(address, ASYNC_callback_fn)

    def __call__(self, arg: Any) -> int:
        return int(self._fn(arg))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ForeignCallback) and other.address == self.address

    def __hash__(self) -> int:
        return hash((ForeignCallback, self.address))

    def __repr__(self) -> str:
        return f"<C wait-ctx callback at {self.address:#x}>"


class OpenSSLWaitCtx(WaitCtxBase):
    """An ``ASYNC_WAIT_CTX`` (see the contract's WaitCtx section).

    Python code can run in the middle of every method: a key's ``__hash__`` or
    ``__eq__``, an fd's ``__int__``, a finaliser the collector runs at any
    allocation, another thread at any bytecode boundary. Any of them may close
    this context. So each method counts itself in ``_in_use`` while it runs; a
    ``close()`` meanwhile marks the context closed at once but defers
    ``ASYNC_WAIT_CTX_free`` until the last method in flight returns, and each
    method checks for a close again right before it calls C. The C pointer is
    never used after it was freed.
    """

    def __init__(self, backend: OpenSSLBackend) -> None:
        #: methods of this context running now (nested through hooks, or on other threads)
        self._in_use = 0
        #: close() came while a method ran: free when the last one returns
        self._free_deferred = False
        super().__init__(backend)
        self._lib = backend.crypto
        self._ptr: int = self._lib.ASYNC_WAIT_CTX_new().value
        self._key_tokens: Dict[Hashable, int] = {}
        #: key token -> its live entries' data tokens, oldest first (C finds newest)
        self._live: Dict[int, List[int]] = {}
        self._callback_token = 0
        self._tables = _tables  # close() may run while modules are torn down

    def _done(self) -> None:
        """A method is done with the C pointer: free it if a close came meanwhile.

        Every method counts itself in before its first closed check, so a close
        either happened before (the check raises) or is deferred until here.
        """
        self._in_use -= 1
        if self._free_deferred and not self._in_use:
            self._free_deferred = False
            self._free_now()

    @property
    def address(self) -> int:
        """The ``ASYNC_WAIT_CTX *`` (for passing to C code of your own)."""
        self._check_open()
        return self._ptr

    @_c_call
    def set_wait_fd(
        self,
        key: Hashable,
        fd: int,
        custom_data: Any = None,
        cleanup: Optional[Callable[..., Any]] = None,
    ) -> bool:
        self._in_use += 1
        try:
            self._check_open()
            hashable_key(key)
            fd = check_c_int(fd, "fd")
            callable_or_none(cleanup, "cleanup")
            key_token = self._key_tokens.get(key)
            if key_token is None:
                key_token = self._key_tokens[key] = next(_tokens)
            data_token = next(_tokens)
            _entries[data_token] = _FdEntry(key, key_token, custom_data, cleanup)
            try:
                self._check_open()  # the hooks above may have closed it
                self._lib.ASYNC_WAIT_CTX_set_wait_fd(
                    self._ptr, key_token, fd, data_token, _CLEANUP if cleanup is not None else None
                )
            except BaseException:
                del _entries[data_token]
                if not self._live.get(key_token):
                    self._key_tokens.pop(key, None)
                raise
            self._live.setdefault(key_token, []).append(data_token)
            return True
        finally:
            self._done()

    def _key_token(self, key: Hashable) -> Optional[int]:
        """The pointer C knows ``key`` by; ``None`` if no fd was ever set under it.

        Checks the context is open before and after hashing: a key's ``__hash__``
        may close it.
        """
        self._check_open()
        hashable_key(key)
        self._check_open()
        return self._key_tokens.get(key)

    @_c_call
    def get_fd(self, key: Hashable) -> Optional[tuple[int, Any]]:
        self._in_use += 1
        try:
            key_token = self._key_token(key)
            if key_token is None:
                return None
            fd = c_int()
            data = c_void_p()
            self._check_open()
            if not self._lib.ASYNC_WAIT_CTX_get_fd(self._ptr, key_token, byref(fd), byref(data)):
                return None
            entry = _entries.get(data.value or 0)
            return (fd.value, entry.custom_data if entry is not None else data.value)
        finally:
            self._done()

    @_c_call
    def get_all_fds(self) -> List[int]:
        self._in_use += 1
        try:
            self._check_open()
            n = c_size_t()
            self._lib.ASYNC_WAIT_CTX_get_all_fds(self._ptr, None, byref(n))
            if not n.value:
                return []
            fds = (c_int * n.value)()
            self._check_open()
            self._lib.ASYNC_WAIT_CTX_get_all_fds(self._ptr, fds, byref(n))
            return list(fds[: n.value])
        finally:
            self._done()

    @_c_call
    def get_changed_fds(self) -> tuple[List[int], List[int]]:
        self._in_use += 1
        try:
            self._check_open()
            nadd, ndel = c_size_t(), c_size_t()
            lib = self._lib
            lib.ASYNC_WAIT_CTX_get_changed_fds(self._ptr, None, byref(nadd), None, byref(ndel))
            if not nadd.value and not ndel.value:
                return [], []
            add = (c_int * max(nadd.value, 1))()
            dele = (c_int * max(ndel.value, 1))()
            self._check_open()
            lib.ASYNC_WAIT_CTX_get_changed_fds(self._ptr, add, byref(nadd), dele, byref(ndel))
            return list(add[: nadd.value]), list(dele[: ndel.value])
        finally:
            self._done()

    @_c_call
    def clear_fd(self, key: Hashable) -> bool:
        self._in_use += 1
        try:
            key_token = self._key_token(key)
            if key_token is None:
                return False
            self._check_open()
            if not self._lib.ASYNC_WAIT_CTX_clear_fd(self._ptr, key_token):
                return False
            live = self._live.get(key_token)
            if live:
                _entries.pop(live.pop(), None)  # C clears the newest live entry
            if not live:
                self._live.pop(key_token, None)
                self._key_tokens.pop(key, None)
            return True
        finally:
            self._done()

    #: the class of C callbacks ``set_callback`` installs as they are
    foreign_callback = ForeignCallback

    @_c_call
    def set_callback(self, callback: Optional[Callable[[Any], Any]], arg: Any = None) -> bool:
        self._in_use += 1
        try:
            self._check_open()
            callable_or_none(callback, "callback")
            if isinstance(callback, ForeignCallback):
                return self._set_foreign_callback(callback, arg)
            old = self._callback_token
            token = next(_tokens)
            if callback is not None:
                _callbacks[token] = (callback, arg)
            try:
                self._check_open()
                self._lib.ASYNC_WAIT_CTX_set_callback(
                    self._ptr, _CALLBACK if callback is not None else None, token
                )
            except BaseException:
                _callbacks.pop(token, None)
                raise
            self._callback_token = token
            _callbacks.pop(old, None)
            return True
        finally:
            self._done()

    def _set_foreign_callback(self, callback: ForeignCallback, arg: Any) -> bool:
        if arg is not None and (isinstance(arg, bool) or not isinstance(arg, int) or not 0 <= arg < 1 << 64):
            raise TypeError(f"a C callback's arg must be an address (int) or None, not {type(arg).__name__}")
        self._check_open()
        self._lib.ASYNC_WAIT_CTX_set_callback(self._ptr, callback.address, arg)
        _callbacks.pop(self._callback_token, None)
        self._callback_token = 0
        return True

    @_c_call
    def get_callback(self) -> Optional[tuple[Callable[[Any], Any], Any]]:
        self._in_use += 1
        try:
            self._check_open()
            cb, arg = c_void_p(), c_void_p()
            if not self._lib.ASYNC_WAIT_CTX_get_callback(self._ptr, byref(cb), byref(arg)):
                return None
            if cb.value == _CALLBACK:
                found = _callbacks.get(arg.value or 0)
                if found is not None:
                    return found
            return (ForeignCallback(cb.value or 0), arg.value)
        finally:
            self._done()

    @_c_call
    def set_status(self, status: int) -> bool:
        self._in_use += 1
        try:
            self._check_open()
            status = check_c_int(status, "status")
            self._check_open()
            self._lib.ASYNC_WAIT_CTX_set_status(self._ptr, status)
            return True
        finally:
            self._done()

    @_c_call
    def get_status(self) -> int:
        self._in_use += 1
        try:
            self._check_open()
            value = int(self._lib.ASYNC_WAIT_CTX_get_status(self._ptr))
        finally:
            self._done()
        try:
            return WaitStatus(value)
        except ValueError:
            return value

    def _free(self) -> None:
        if self._in_use:
            self._free_deferred = True  # a method still uses the pointer: it frees on return
            return
        self._free_now()

    def _free_now(self) -> None:
        ptr, self._ptr = self._ptr, 0
        tables = self._tables
        tables.freeing[ptr] = self
        try:
            self._lib.ASYNC_WAIT_CTX_free(ptr)  # runs cleanup thunks, newest first
        finally:
            tables.freeing.pop(ptr, None)
            for tokens in self._live.values():
                for token in tokens:
                    tables.entries.pop(token, None)
            self._live.clear()
            self._key_tokens.clear()
            tables.callbacks.pop(self._callback_token, None)
