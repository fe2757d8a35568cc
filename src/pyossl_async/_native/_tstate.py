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

import sys
from typing import Any, Dict, List

from .._errors import AsyncError
from ._libs import Libc, PyApi

__all__ = ["GILSTATE_KEYS_MAX", "GilStateBinding", "ThreadStatePool"]

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

    def __init__(self, api: PyApi) -> None:
        self._api = api
        self._interp = api.PyInterpreterState_Get()
        self._free: List[int] = []
        self.created = 0
        #: each pooled state's dict (``PyThreadState_GetDict``), found once
        self.dicts: Dict[int, Any] = {}

    def get(self) -> int:
        if self._free:
            return self._free.pop()
        ts: int = self._api.PyThreadState_New(self._interp)
        if not ts:
            raise MemoryError("PyThreadState_New failed")
        self.created += 1
        return ts

    def put(self, ts: int) -> None:
        self._free.append(ts)

    def close(self) -> None:
        """Delete pooled states (the GIL is held: we are running Python)."""
        api = self._api
        while self._free:
            ts = self._free.pop()
            self.dicts.pop(ts, None)
            api.PyThreadState_Clear(ts)
            api.PyThreadState_Delete(ts)

    def forget(self) -> None:
        """Drop pooled states without touching them (after fork they no longer exist)."""
        self._free.clear()
        self.dicts.clear()
