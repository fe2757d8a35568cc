"""Keeping the GIL right when C code that holds it pauses a job.

Most C code a job calls runs with the GIL released (ctypes ``CDLL`` functions),
so when it pauses the job inside C nobody holds the GIL and the caller of
``ASYNC_start_job`` simply takes it back. But some callers of libcrypto keep the
GIL: CPython's ``hashlib`` for small inputs, the ``ssl`` module, any
``ctypes.PyDLL`` function. When an async engine pauses the job under them, the
job's thread state still holds the GIL as control comes back to the caller,
whose GIL re-acquisition then deadlocks (3.9-3.12) or aborts (3.13).

Everything happens on one OS thread, so the GIL can be handed over on the
paused job's behalf. Three steps in each job switch's call chain do it, in C
with no Python in between (a chain step cannot branch, so the condition is
carried by ``bsearch``, which calls its comparison function exactly once when
``nmemb`` is 1 and never when it is 0):

* after ``ASYNC_start_job`` returns, ``check`` stores ``PyGILState_Check()``
  (1 only when this OS thread holds the GIL for the job's thread state) in the
  job's own cell;
* ``release``: if that cell is 1, ``PyEval_SaveThread()`` releases the GIL for
  the paused job;
* ``retake``, before the job is resumed: if its cell is 1,
  ``PyEval_RestoreThread(job thread state)`` takes the GIL back for it, so the C
  code continues exactly as it paused: holding the GIL.

The cell lives with the job's ``ASYNC_JOB *`` slot and is written and read only
by C, so no signal handler or finaliser between two Python lines can lose it.

``PyGILState_Check`` answers 1 unconditionally once CPython disables its GIL-state
checks (sub-interpreters do); :func:`check_usable` is asked before each start.
"""

from __future__ import annotations

import ctypes
import sys
from ctypes import c_int64, c_uint64
from typing import TYPE_CHECKING, Any, Tuple

from ._ffi import FfiCall

if TYPE_CHECKING:
    from ._libs import Libc, Libffi, PyApi

__all__ = ["GilGuard", "Step", "check_usable"]

Step = Tuple[int, Tuple[int, ...]]

#: modules whose presence means sub-interpreters may exist (they disable GIL-state checks)
_SUBINTERPRETER_MODULES = ("_xxsubinterpreters", "_interpreters", "_testcapi")


class GilGuard:
    """The ``check``/``release``/``retake`` steps of one runner's call chains."""

    def __init__(self, ffi: Libffi, api: PyApi, libc: Libc) -> None:
        self._anchor = c_uint64(0)  # a valid ``base`` for bsearch; never read
        self._spare = c_int64(0)  # where ``check`` writes before any job pointed it elsewhere
        self.check = FfiCall(ffi, api.gilstate_check_address, ffi.type_sint32, [])
        search = [ffi.type_pointer, ffi.type_pointer, ffi.type_uint64, ffi.type_uint64, ffi.type_pointer]
        self.release = FfiCall(ffi, libc.bsearch_address, ffi.type_pointer, search)
        self.retake = FfiCall(ffi, libc.bsearch_address, ffi.type_pointer, search)
        base = ctypes.addressof(self._anchor)
        spare = ctypes.addressof(self._spare)
        for call, compare in ((self.release, api.save_thread_address), (self.retake, api.restore_thread_address)):
            call.cells[1] = base
            call.cells[3] = 1  # element size
            call.cells[4] = compare
            call.argv[2] = spare  # nmemb: the job's cell, set per switch
        # release: bsearch(key unused, base, *cell, 1, PyEval_SaveThread)
        # retake: bsearch(key = job thread state, base, *cell, 1, PyEval_RestoreThread)
        self.retake_key = self.retake.cells
        self.release_argv = self.release.argv
        self.retake_argv = self.retake.argv

    def check_step(self) -> Step:
        cif, fn, _result, argv = self.check.step_args
        return (self.check.ffi_call_address, (cif, fn, ctypes.addressof(self._spare), argv))

    def release_step(self) -> Step:
        return (self.release.ffi_call_address, self.release.step_args)

    def retake_step(self) -> Step:
        return (self.retake.ffi_call_address, self.retake.step_args)


def check_usable(api: PyApi, unlocked_check: Any) -> bool:
    """Whether ``PyGILState_Check`` still tells a released GIL from a held one.

    ``unlocked_check`` is ``PyGILState_Check`` bound through a GIL-releasing
    ``CDLL``: it must answer 0. Only re-checked once sub-interpreters may exist.
    """
    if not any(name in sys.modules for name in _SUBINTERPRETER_MODULES):
        return True
    return int(unlocked_check()) == 0 and int(api.PyGILState_Check()) == 1

