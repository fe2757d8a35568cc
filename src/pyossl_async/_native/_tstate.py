"""Job thread states, and how this CPython names "the thread state of this OS thread".

Every job runs its Python frames on its own ``PyThreadState`` (hazards.md,
hazard 1). For the ctypes callbacks that enter a job to land on that state, the
GIL-state slot (what ``PyGILState_Ensure`` reads) must name it while the job
runs, and name the caller's state again afterwards:

* CPython 3.12+ (``"bind"``): ``PyEval_RestoreThread`` rebinds the slot to the
  state it restores. Resuming needs nothing; a fresh start restores and saves the
  job's state once, inside the call chain, so the entry callback finds it.
* CPython 3.9 to 3.11 (``"tls"``): nothing rebinds the slot. It is a pthread key
  whose value for a thread is that thread's state; the key is found once, and the
  call chain sets it around every job switch.

Either way, the binding is verified with the public ``PyGILState_*`` calls, and a
disagreement raises instead of running on.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Dict, List, Optional

from .._errors import AsyncError
from ._libs import Libc, PyApi

__all__ = ["GILSTATE_KEYS_MAX", "AsyncExceptions", "GilStateBinding", "ThreadStatePool"]

GILSTATE_KEYS_MAX = 1024  # PTHREAD_KEYS_MAX on glibc


class GilStateBinding:
    """How the GIL-state slot is moved between a caller and its jobs."""

    def __init__(self, api: PyApi, libc: Libc) -> None:
        self.api = api
        self.libc = libc
        self.kind = "bind" if sys.version_info >= (3, 12) else "tls"
        self.key = self._find_key() if self.kind == "tls" else -1

    def _find_key(self) -> int:
        ts = self.api.PyThreadState_Get()
        if self.api.PyGILState_GetThisThreadState() != ts:
            raise AsyncError("the GIL-state slot does not name the current thread state")
        keys = [k for k in range(GILSTATE_KEYS_MAX) if self.libc.pthread_getspecific(k) == ts]
        if len(keys) != 1:
            raise AsyncError(
                f"cannot identify CPython's GIL-state pthread key (candidates: {keys})"
            )
        return keys[0]

    def check_caller(self, caller_ts: int) -> None:
        """Verify that the slot names ``caller_ts`` (the calling thread's state)."""
        bound = self.api.PyGILState_GetThisThreadState()
        if bound != caller_ts:
            raise AsyncError(
                f"GIL-state slot names {bound:#x}, not the caller's thread state "
                f"{caller_ts:#x}: refusing to run jobs on this thread"
            )
        if self.kind == "tls" and self.libc.pthread_getspecific(self.key) != caller_ts:
            raise AsyncError("GIL-state pthread key does not hold this thread's state")

    def check_job(self, job_ts: int) -> bool:
        """True when, inside a job, the slot and the current state are the job's."""
        api = self.api
        return bool(
            api.PyThreadState_Get() == job_ts
            and api.PyGILState_GetThisThreadState() == job_ts
            and api.PyGILState_Check() == 1
        )


class ThreadStatePool:
    """Thread states for one OS thread's jobs, reused LIFO.

    A state goes back into the pool only when its job has finished, so it holds
    no frames; it is deleted only when it is not current.
    """

    def __init__(self, api: PyApi, labels: Optional[AsyncExceptions] = None) -> None:
        self._api = api
        self._labels = labels
        self._interp = api.PyInterpreterState_Get()
        #: pooled states (LIFO); a runner pops from it directly on its start path
        self.free: List[int] = []
        self.created = 0
        #: each pooled state's dict (``PyThreadState_GetDict``), found once
        self.dicts: Dict[int, Any] = {}

    def get(self) -> int:
        if self.free:
            return self.free.pop()
        ts: int = self._api.PyThreadState_New(self._interp)
        if not ts:
            raise MemoryError("PyThreadState_New failed")
        if self._labels is not None:
            self._labels.label(ts)
        self.created += 1
        return ts

    def put(self, ts: int) -> None:
        self.free.append(ts)

    def close(self) -> None:
        """Delete pooled states (the GIL is held: we are running Python)."""
        api = self._api
        while self.free:
            ts = self.free.pop()
            self.dicts.pop(ts, None)
            api.PyThreadState_Clear(ts)
            api.PyThreadState_Delete(ts)

    def forget(self) -> None:
        """Drop pooled states without touching them (after fork they no longer exist)."""
        self.free.clear()
        self.dicts.clear()


class _Flush(BaseException):
    """Consumed at once by :meth:`AsyncExceptions.flush`; never seen outside it."""


class AsyncExceptions:
    """Raising an exception in a *paused* job: ``PyThreadState_SetAsyncExc`` aimed at
    the job's own thread state.

    A job paused inside C code (an engine) runs no Python code of ours when it is
    resumed: its C code goes on, may pause again, and eventually returns to the
    job's Python code. To close such a job, ``JobCancelled`` must be raised at
    that first Python instruction, wherever it is. CPython has exactly that
    mechanism: an asynchronous exception, checked at the same points as signal
    handlers. It addresses a thread state by its ``thread_id``, which CPython
    sets to the creating OS thread's ident, the same for every job state of a
    thread; so each job state is labelled with a value of its own (its address,
    which no OS thread's ident can equal).

    The field is found, not assumed: in a scratch thread state, the one machine
    word that equals the calling thread's ident; then checked through the public
    API (``SetAsyncExc`` finds the state by the new label and not by another).
    Anything unexpected disables the mechanism (``reason`` says why), and closing
    a job paused in C then relies on its next ``pause_job()``.

    CPython 3.9 to 3.12 keep one interpreter-wide "an asynchronous exception is
    pending" flag, cleared only when some thread state consumes one. A job always
    consumes what was armed for it once its Python code runs again, but one left
    paused after a close was given up is disarmed, and the flag would then keep
    every thread on the interpreter's slow path. :meth:`flush` clears it by having
    a helper thread consume a private exception: on a thread that is not the main
    one, where no Python signal handler can run and see it.
    """

    #: how far into a PyThreadState to look for the thread_id field
    SEARCH_BYTES = 1024

    def __init__(self, api: PyApi) -> None:
        self._api = api
        self.offset = -1
        self.reason = ""
        import ctypes

        self._ctypes = ctypes
        self._set = ctypes.pythonapi.PyThreadState_SetAsyncExc
        self._set.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
        self._set.restype = ctypes.c_int
        self._needs_flush = sys.version_info < (3, 13)
        self._flush_lock = threading.Lock()
        self._flusher: Optional[threading.Thread] = None
        self._flusher_pid = 0
        self._flush_wanted = threading.Event()
        try:
            self._find()
        except Exception as exc:  # noqa: BLE001 - reported in reason, the backend still works
            self.offset = -1
            self.reason = f"{type(exc).__name__}: {exc}"

    @property
    def available(self) -> bool:
        return self.offset >= 0

    def _find(self) -> None:
        ctypes = self._ctypes
        api = self._api
        ident = threading.get_ident()
        ts = api.PyThreadState_New(api.PyInterpreterState_Get())
        if not ts:
            raise MemoryError("PyThreadState_New failed")
        try:
            words = (ctypes.c_uint64 * (self.SEARCH_BYTES // 8)).from_address(ts)
            hits = [i * 8 for i, w in enumerate(words) if w == ident]
            if len(hits) != 1:
                raise AsyncError(f"{len(hits)} words of a thread state hold the thread's ident")
            field = ctypes.c_uint64.from_address(ts + hits[0])
            field.value = ts
            found = self._set(ts, None)
            field.value = ts ^ 0x10
            moved = self._set(ts, None)
            if found != 1 or moved != 0:
                raise AsyncError(f"PyThreadState_SetAsyncExc did not follow the label ({found}, {moved})")
            self.offset = hits[0]
        finally:
            api.PyThreadState_Clear(ts)
            api.PyThreadState_Delete(ts)
        self.flush()

    def label(self, ts: int) -> None:
        """Give a new job thread state its own ``thread_id`` (its address)."""
        if self.offset >= 0:
            self._ctypes.c_uint64.from_address(ts + self.offset).value = ts

    def arm(self, ts: int, exc_type: type) -> bool:
        """Have ``exc_type`` raised at the next Python code that runs on ``ts``."""
        return self.offset >= 0 and self._set(ts, id(exc_type)) == 1

    def disarm(self, ts: int) -> None:
        """Withdraw what :meth:`arm` set on ``ts`` (a job that stays paused)."""
        if self.offset >= 0:
            self._set(ts, None)
            self.flush()

    def flush(self) -> None:
        """Clear the interpreter-wide pending flag (3.9-3.12), on the helper thread."""
        if not self._needs_flush or self.offset < 0:
            return
        with self._flush_lock:
            helper = self._flusher
            if helper is None or not helper.is_alive() or self._flusher_pid != os.getpid():
                self._flush_wanted = threading.Event()
                helper = self._flusher = threading.Thread(
                    target=self._flush_loop, args=(self._flush_wanted,), name="pyossl-async-flush", daemon=True
                )
                self._flusher_pid = os.getpid()
                helper.start()
        self._flush_wanted.set()

    def _flush_loop(self, wanted: threading.Event) -> None:
        set_exc = self._set
        while True:
            wanted.wait()
            wanted.clear()
            try:
                set_exc(threading.get_ident(), id(_Flush))  # this thread's own, only state
                _consume()
            except _Flush:
                pass


def _consume() -> None:
    """A call and a loop: points where a pending asynchronous exception is raised."""
    for _ in range(2):
        pass
