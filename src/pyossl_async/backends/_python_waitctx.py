"""``WaitCtx`` for the ``"python"`` backend: OpenSSL's ``ASYNC_WAIT_CTX``, modelled.

The model copies ``crypto/async/async_wait.c`` (3.0) entry for entry, because the
point of this backend is to behave like the real thing, quirks included:

* every ``set_wait_fd`` adds a new entry at the *head* of the list (``add=1``),
  even for a key that is already there: the newest entry shadows older ones, all
  of them are reported by ``get_all_fds``, newest first;
* ``clear_fd`` finds the newest live entry for the key and either unlinks it
  outright (``add=1``: it was added in the current segment, ``numadd--``) or marks
  it deleted (``add=0``: ``del=1``, ``numdel++``); it never calls the cleanup;
* the add/del bookkeeping is reset only when a job using this context is
  *resumed* (``async_wait_ctx_reset_counts``, called by the backend): counts go to
  zero, deleted entries are dropped without cleanup, the rest get ``add=0``;
* freeing calls ``cleanup(ctx, key, fd, custom_data)`` for every entry that is not
  marked deleted, walking from the head (newest first).

C compares keys by pointer; here keys are any hashable objects and match the way
dictionary keys do (identity, or equal hash and ``==``), which is also how the
``"openssl"`` backend maps keys to the pointers it hands to C.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Hashable, List, Optional

from .._constants import WaitStatus
from .._unraisable import report_unraisable
from .._validate import c_int as check_c_int
from .._validate import callable_or_none, hashable_key
from ._waitctx_base import WaitCtxBase

if TYPE_CHECKING:
    from .python import PythonBackend

__all__ = ["PythonWaitCtx"]


class _FdEntry:
    """One ``struct fd_lookup_st``: the list node C allocates per ``set_wait_fd``."""

    __slots__ = ("add", "cleanup", "custom_data", "dele", "fd", "key")

    def __init__(
        self, key: Hashable, fd: int, custom_data: Any, cleanup: Optional[Callable[..., Any]]
    ) -> None:
        self.key = key
        self.fd = fd
        self.custom_data = custom_data
        self.cleanup = cleanup
        self.add = True  # added since the last reset (C: add = 1)
        self.dele = False  # cleared after surviving a reset (C: del = 1)


class PythonWaitCtx(WaitCtxBase):
    """An ``ASYNC_WAIT_CTX`` in pure Python (see the contract's WaitCtx section)."""

    def __init__(self, backend: PythonBackend) -> None:
        super().__init__(backend)
        #: the C list, tail first: ``_fds[-1]`` is the head (the newest entry)
        self._fds: List[_FdEntry] = []
        #: live (not deleted) entries per key, oldest first; C's linear search by
        #: key from the head finds the last one of these
        self._live: Dict[Hashable, List[_FdEntry]] = {}
        self._numadd = 0
        self._numdel = 0
        self._callback: Optional[Callable[[Any], Any]] = None
        self._callback_arg: Any = None
        self._status = 0  # zalloc: ASYNC_STATUS_UNSUPPORTED

    # -- fds -------------------------------------------------------------------------

    def set_wait_fd(
        self,
        key: Hashable,
        fd: int,
        custom_data: Any = None,
        cleanup: Optional[Callable[..., Any]] = None,
    ) -> bool:
        """Add ``fd`` under ``key`` at the head of the list (never replaces); ``True``."""
        self._check_open()
        hashable_key(key)
        fd = check_c_int(fd, "fd")
        callable_or_none(cleanup, "cleanup")
        self._check_open()  # the key's __hash__ or the fd's __int__ may have closed it
        entry = _FdEntry(key, fd, custom_data, cleanup)
        self._live.setdefault(key, []).append(entry)
        self._fds.append(entry)
        self._numadd += 1
        return True

    def get_fd(self, key: Hashable) -> Optional[tuple[int, Any]]:
        """``(fd, custom_data)`` of the newest live entry for ``key``; ``None`` if there is none."""
        self._check_open()
        hashable_key(key)
        self._check_open()  # the key's __hash__ may have closed it
        live = self._live.get(key)
        if not live:
            return None
        entry = live[-1]
        return (entry.fd, entry.custom_data)

    def get_all_fds(self) -> List[int]:
        """Every live fd, newest first (duplicates included)."""
        self._check_open()
        return [e.fd for e in reversed(self._fds) if not e.dele]

    def get_changed_fds(self) -> tuple[List[int], List[int]]:
        """``(added, deleted)`` since the last resume of a job using this context, newest first.

        Reading them resets nothing.
        """
        self._check_open()
        if not self._numadd and not self._numdel:
            return [], []
        added = [e.fd for e in reversed(self._fds) if e.add and not e.dele]
        deleted = [e.fd for e in reversed(self._fds) if e.dele and not e.add]
        return added, deleted

    def clear_fd(self, key: Hashable) -> bool:
        """Clear the newest live entry for ``key`` (no cleanup call); ``False`` if there is none."""
        self._check_open()
        hashable_key(key)
        self._check_open()  # the key's __hash__ may have closed it
        live = self._live.get(key)
        if not live:
            return False
        try:
            entry = live.pop()
        except IndexError:  # emptied by a signal handler or finaliser between the check and here
            return False
        if not live:
            self._live.pop(key, None)
        if entry.add:
            # added in this segment: C unlinks and frees it at once
            self._unlink(entry)
            self._numadd -= 1
        else:
            # it survived a reset: C keeps it, marked, until the next reset
            entry.dele = True
            self._numdel += 1
        return True

    def _unlink(self, entry: _FdEntry) -> None:
        try:
            self._fds.remove(entry)  # entries compare by identity
        except ValueError:  # gone already (a reset by a signal handler's resume)
            pass

    def _reset_counts(self) -> None:
        """``async_wait_ctx_reset_counts``: what ``ASYNC_pause_job`` does after a resume."""
        self._numadd = self._numdel = 0
        if any(e.dele for e in self._fds):
            self._fds = [e for e in self._fds if not e.dele]  # freed without cleanup
        for entry in self._fds:
            entry.add = False

    # -- callback and status ---------------------------------------------------------

    def set_callback(self, callback: Optional[Callable[[Any], Any]], arg: Any = None) -> bool:
        """Store ``callback`` (``None`` allowed, as in C) and ``arg``; ``True``."""
        self._check_open()
        callable_or_none(callback, "callback")
        self._callback = callback
        self._callback_arg = arg
        return True

    def get_callback(self) -> Optional[tuple[Callable[[Any], Any], Any]]:
        """``(callback, arg)``, or ``None`` whenever the stored callback is ``None``."""
        self._check_open()
        if self._callback is None:
            return None
        return (self._callback, self._callback_arg)

    def set_status(self, status: int) -> bool:
        """Store any C ``int``, unvalidated as in C; ``True``."""
        self._check_open()
        status = check_c_int(status, "status")
        self._check_open()  # an int subclass's __int__ may have closed it
        self._status = status
        return True

    def get_status(self) -> int:
        """The stored status: a ``WaitStatus`` member when it is one of theirs."""
        self._check_open()
        value = self._status
        try:
            return WaitStatus(value)
        except ValueError:
            return value

    # -- freeing ---------------------------------------------------------------------

    def _free(self) -> None:
        """``ASYNC_WAIT_CTX_free``: cleanup for each live entry, newest first."""
        fds, self._fds = self._fds, []
        self._live.clear()
        self._callback = self._callback_arg = None
        for entry in fds[::-1]:  # no builtins: this may run late in interpreter shutdown
            if entry.dele or entry.cleanup is None:
                continue
            try:
                entry.cleanup(self, entry.key, entry.fd, entry.custom_data)
            except BaseException as exc:  # noqa: BLE001 - C cannot propagate it either
                report_unraisable(exc, "Exception ignored in WaitCtx cleanup function", entry.cleanup)
