"""The portable job switch: ``makecontext`` call chains (the fallback of ``_switch``).

Each switch is a fixed sequence of libffi calls run back to back on helper
stacks (bind the GIL state, ``ASYNC_start_job``, the GIL guard's check and
release, unbind); a job paused inside C code that holds the GIL is resumed
through a longer chain that takes the GIL back for it first (``_gilguard``).
"""

from __future__ import annotations

import ctypes
import functools
from ctypes import c_int
from typing import TYPE_CHECKING, Any, Callable, List, Optional

from .._errors import AsyncError
from ._callchain import CallChain
from ._ffi import FfiCall
from ._gilguard import GilGuard, Step, check_usable
from ._libs import Libc
from ._runner import REFUSED, Execution, JobRunner, _JobSlot

if TYPE_CHECKING:
    from ._support import NativeSupport

__all__ = ["CHAIN_SLICE", "ChainRunner", "ChainSwitch"]

#: the helper stacks of the call chains only run C (and, on 3.2+, the stack
#: allocator callback); they never run job code
CHAIN_SLICE = 256 << 10


class ChainSwitch:
    """One call chain that switches into a job, and the per-switch argument views in it.

    ``job_ts``: the register holding the job's thread state for the chain's first
    step (binding it); ``check``: where the GIL guard's check step writes (the
    job's ``held`` cell, pointed at per switch).
    """

    __slots__ = ("chain", "check", "job_ts")

    def __init__(
        self,
        libc: Libc,
        abi: Any,
        steps: List[Step],
        job_ts_step: Optional[int],
        job_ts_arg: int,
        check_step: Optional[int],
    ) -> None:
        self.chain = CallChain(libc, abi, steps, CHAIN_SLICE)
        contexts = self.chain.contexts
        self.job_ts = contexts[job_ts_step].argument(job_ts_arg) if job_ts_step is not None else None
        self.check = contexts[check_step].argument(2) if check_step is not None else None


class ChainRunner(JobRunner):
    """Switches through ``makecontext`` call chains (``_callchain``): the portable fallback.

    Each switch is a fixed sequence of libffi calls run back to back on helper
    stacks (bind the GIL state, ``ASYNC_start_job``, the GIL guard's check and
    release, unbind); a job paused inside C code that holds the GIL is resumed
    through a longer chain that takes the GIL back for it first (``_gilguard``).
    """

    def __init__(self, native: NativeSupport) -> None:
        super().__init__(native)
        api = native.api
        ffi = native.ffi
        self._call = call = FfiCall(
            ffi, native.start_job_address, ffi.type_sint32, [ffi.type_pointer] * 5 + [ffi.type_uint64]
        )
        self._ret_slot = c_int(0)
        call.cells[2] = ctypes.addressof(self._ret_slot)
        self._cells = call.cells
        self._result = call.result
        libc = native.libc
        step_call = (call.ffi_call_address, call.step_args)
        guard = self._guard = GilGuard(native.ffi, api, libc)
        guarded: List[Step] = [step_call, guard.check_step(), guard.release_step()]
        tls = native.binding.kind == "tls"
        key = native.binding.key
        set_key = libc.pthread_setspecific_address
        if tls:
            enter: List[Step] = [(set_key, (key, 0))]
            leave: List[Step] = [(set_key, (key, self.caller_ts))]
            self._start = ChainSwitch(libc, native.abi, enter + guarded + leave, 0, 1, len(enter) + 1)
            self._resume = self._start
        else:
            # 3.12+: a fresh job's state is bound by restoring and saving it once
            enter = [(api.restore_thread_address, (0,)), (api.save_thread_address, ())]
            self._start = ChainSwitch(libc, native.abi, enter + guarded, 0, 0, len(enter) + 1)
            self._resume = ChainSwitch(libc, native.abi, guarded, None, 0, 1)
        enter = [(set_key, (key, 0))] if tls else []
        steps = enter + [guard.retake_step()] + guarded + (leave if tls else [])
        self._retake = ChainSwitch(libc, native.abi, steps, 0 if tls else None, 1, len(enter) + 2)
        self._retake_key = guard.retake_key
        self._retake_argv = guard.retake_argv
        self._release_argv = guard.release_argv
        self._unlocked_gil_check = native.unlocked_gil_check
        self._in_job = native.fast_current_job

    def _new_slot(self) -> _JobSlot:
        return _JobSlot()

    def _switch_new(self, ex: Execution, wait_ctx_address: int, func: int) -> int:
        if self._in_job():
            return REFUSED
        if not check_usable(self.native.api, self._unlocked_gil_check):
            self._recycle(ex)
            raise AsyncError(
                "PyGILState_Check() no longer tells a held GIL from a released one "
                "(sub-interpreters disable it): refusing to start jobs"
            )
        slot = ex.slot
        cells = self._cells
        cells[0] = slot.address
        cells[1] = wait_ctx_address
        cells[3] = func
        switch = self._start
        switch.job_ts.value = ex.tstate  # type: ignore[union-attr]
        held = slot.held_address
        switch.check.value = held  # type: ignore[union-attr]
        self._release_argv[2] = held
        switch.chain.run()
        status: int = self._result.value
        return status

    def switch_for(self, ex: Execution) -> Callable[[], int]:
        switch: Callable[[], int] = functools.partial(self._chain_resume, ex)
        if self.native.debug:
            return functools.partial(self._debug_switch, switch)
        return switch

    def _chain_resume(self, ex: Execution) -> int:
        if self._in_job():
            return REFUSED
        slot = ex.slot
        switch = self._resume
        if slot.held.value:  # paused inside C that holds the GIL: retake it for the job first
            switch = self._retake
            self._retake_key[0] = ex.tstate
            self._retake_argv[2] = slot.held_address
        self._cells[0] = slot.address
        if switch.job_ts is not None:
            switch.job_ts.value = ex.tstate
        held = slot.held_address
        switch.check.value = held  # type: ignore[union-attr]
        self._release_argv[2] = held
        switch.chain.run()
        status: int = self._result.value
        return status

    def _close_switches(self) -> None:
        for switch in (self._start, self._resume, self._retake):
            switch.chain.close()
