"""Running Python job functions inside real OpenSSL jobs, safely.

``NativeSupport`` holds what is process-wide (libraries, ABI, the GIL-state
binding, where job stacks come from). ``JobRunner`` is per OS thread: it starts
and resumes OpenSSL jobs so that each job's Python code runs

* on its own ``PyThreadState`` (switched in and out by a C call chain, see
  ``_tstate`` and ``_callchain``), and
* on a large guarded C stack: handed to OpenSSL through
  ``ASYNC_set_mem_functions`` (3.2+), or, on 3.0/3.1, entered from OpenSSL's
  32 KiB fibre by a C-only trampoline (``swapcontext`` bound with
  ``functools.partial``: no Python frame runs on the small stack).

The runner knows nothing of the public API: it runs a ``JobBody`` and reports
OpenSSL's status. Policy (states, errors, cancellation) is the backend's.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from ctypes import CFUNCTYPE, byref, c_int, c_void_p
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol

from .._errors import AsyncError
from .._libcrypto._types import ASYNC_job_fn, ASYNC_stack_alloc_fn
from .._unraisable import report_unraisable
from ._abi import NativeUnsupported, check_interpreter, detect_abi
from ._callchain import CallChain
from ._ffi import FfiCall
from ._libs import Libc, Libffi, PyApi, address_of
from ._stacks import GuardedStack, StackPool
from ._tstate import GilStateBinding, ThreadStatePool
from ._ucontext import UContext

if TYPE_CHECKING:
    from .._libcrypto import LibCrypto

__all__ = [
    "DEFAULT_STACK_SIZE",
    "ENV_STACK_MODE",
    "ENV_STACK_SIZE",
    "Execution",
    "JobBody",
    "JobRunner",
    "NativeSupport",
    "parse_size",
]

ASYNC_ERR, ASYNC_NO_JOBS, ASYNC_PAUSE, ASYNC_FINISH = 0, 1, 2, 3

#: Enough for the default recursion limit of Python calls on 3.9 (about 1 KiB of
#: C stack per call there) and for 3.13's C recursion limit (deep repr/json),
#: with margin. Untouched pages cost no memory (MAP_NORESERVE).
DEFAULT_STACK_SIZE = 4 << 20
MIN_STACK_SIZE = 64 << 10
ENV_STACK_SIZE = "PYOSSL_ASYNC_STACK_SIZE"
ENV_STACK_MODE = "PYOSSL_ASYNC_STACK_MODE"
#: the helper stacks of the call chains only run C (and, on 3.2+, the stack
#: allocator callback); they never run job code
CHAIN_SLICE = 256 << 10


def parse_size(text: str) -> int:
    """``"4M"``, ``"512k"`` or a byte count."""
    t = text.strip().lower()
    scale = 1
    if t and t[-1] in "kmg":
        scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[t[-1]]
        t = t[:-1]
    value = int(t) * scale
    if value < MIN_STACK_SIZE:
        raise ValueError(f"job stack size {value} is below the minimum {MIN_STACK_SIZE}")
    return value


class JobBody(Protocol):
    """What a runner runs inside a job. ``run_in_job`` must not raise."""

    def run_in_job(self) -> None: ...


class _JobSlot:
    """The ``ASYNC_JOB *`` variable ``ASYNC_start_job`` reads and writes for one job.

    OpenSSL stores the job's address in it at every PAUSE and NULL at FINISH, so a
    resume passes it as it is. Slots are pooled per thread with the jobs' other
    resources.
    """

    __slots__ = ("address", "ref", "var")

    def __init__(self) -> None:
        self.var = c_void_p(None)
        self.ref = byref(self.var)
        self.address = ctypes.addressof(self.var)


class Execution:
    """One job's native resources while it exists: its thread state, stack and slot."""

    __slots__ = ("binding_ok", "body", "finished", "slot", "tstate", "unit")

    def __init__(self, body: JobBody, tstate: int, unit: Optional[_NestedUnit], slot: _JobSlot) -> None:
        self.body = body
        self.tstate = tstate
        self.unit = unit
        self.slot = slot
        self.finished = False
        self.binding_ok = True

    @property
    def address(self) -> int:
        """The ``ASYNC_JOB *`` (0 until the job has paused)."""
        return self.slot.var.value or 0


class _OpenSSLStacks:
    """The ``ASYNC_stack_alloc_fn`` handed to OpenSSL 3.2+: guarded stacks of our size.

    The matching free function is a C no-op (a Python callback could be called
    after interpreter shutdown, from OpenSSL's exit handlers); stacks are unmapped
    by ``release_thread`` once the thread's OpenSSL pool is gone.
    """

    def __init__(self, native: NativeSupport) -> None:
        self._native = native
        self._by_thread: Dict[int, List[GuardedStack]] = {}
        self._lock = threading.Lock()
        self.callback = ASYNC_stack_alloc_fn(self._alloc)
        self.allocated = 0

    def _alloc(self, num: Any) -> Optional[int]:
        try:
            n = self._native
            stack = GuardedStack(n.libc, n.abi, max(n.stack_size, int(num[0])))
            num[0] = stack.size
            with self._lock:
                self._by_thread.setdefault(threading.get_ident(), []).append(stack)
                self.allocated += 1
            base: int = stack.base
            return base
        except BaseException:  # noqa: BLE001 - must not unwind into C; NULL = no job
            return None

    def release_thread(self, ident: int) -> None:
        with self._lock:
            stacks = self._by_thread.pop(ident, [])
        for stack in stacks:
            stack.close()

    def abandon_thread(self, ident: int) -> None:
        """A thread exited with paused jobs: their stacks are leaked with them, and must not
        be unmapped by a later thread that is given the same ident."""
        with self._lock:
            self._by_thread.pop(ident, None)


class NativeSupport:
    """Process-wide machinery for the openssl backend (created once, on load)."""

    def __init__(self, crypto: LibCrypto) -> None:
        check_interpreter()
        self.abi = detect_abi()
        self.libc = Libc()
        self.ffi = Libffi()
        self.api = PyApi()
        self.binding = GilStateBinding(self.api, self.libc)
        self.crypto = crypto
        env_size = os.environ.get(ENV_STACK_SIZE)
        self.stack_size = parse_size(env_size) if env_size else DEFAULT_STACK_SIZE
        self.start_job_address = crypto.address("ASYNC_start_job")
        # untyped fast bindings for the two hottest calls (typed ones are in the table)
        fast = ctypes.CDLL(crypto.path)
        self.fast_start_job = fast.ASYNC_start_job
        self.fast_start_job.restype = c_int
        self.fast_pause_job = fast.ASYNC_pause_job
        self.fast_pause_job.restype = c_int
        # keeps the GIL (a ctypes.PyDLL function); returns an int or None
        self.fast_current_job = ctypes.PyDLL(crypto.path).ASYNC_get_current_job
        self.fast_current_job.restype = c_void_p
        self.openssl_stacks: Optional[_OpenSSLStacks] = None
        self.stack_mode, self.stack_mode_reason = self._choose_stack_mode(crypto)

    def _choose_stack_mode(self, crypto: LibCrypto) -> tuple[str, str]:
        forced = os.environ.get(ENV_STACK_MODE, "").strip().lower()
        if forced not in ("", "nested", "openssl"):
            raise NativeUnsupported(f"{ENV_STACK_MODE}={forced!r}: use 'nested' or 'openssl'")
        if forced == "nested":
            return "nested", f"{ENV_STACK_MODE}=nested"
        if not crypto.has("ASYNC_set_mem_functions"):
            if forced == "openssl":
                raise NativeUnsupported("ASYNC_set_mem_functions needs OpenSSL 3.2+")
            return "nested", "OpenSSL < 3.2 has no ASYNC_set_mem_functions"
        stacks = _OpenSSLStacks(self)
        if crypto.ASYNC_set_mem_functions(address_of(stacks.callback), self.libc.noop_address):
            self.openssl_stacks = stacks
            return "openssl", "ASYNC_set_mem_functions accepted our stack allocator"
        if forced == "openssl":
            raise NativeUnsupported("ASYNC_set_mem_functions refused: a job already ran")
        return "nested", "ASYNC_set_mem_functions returned 0: a fibre stack already exists"

    def info(self) -> dict[str, Any]:
        return {
            "abi": self.abi.name,
            "gilstate_binding": self.binding.kind,
            "stack_mode": self.stack_mode,
            "stack_mode_reason": self.stack_mode_reason,
            "stack_size": self.stack_size,
        }


class _NestedUnit:
    """A guarded stack entered from OpenSSL's small fibre (OpenSSL 3.0/3.1).

    OpenSSL calls ``trampoline``: C code only (ctypes calls ``swapcontext``
    through a ``functools.partial``), which saves the small stack's context in
    ``back`` and enters ``start`` on our stack. ``start`` runs the Python entry
    callback and, when it returns, continues at ``back`` (its ``uc_link``), so
    the trampoline returns and OpenSSL finishes the job.
    """

    __slots__ = ("_slot", "_value", "back", "entry", "func_address", "stack", "start", "trampoline")

    def __init__(self, runner: JobRunner) -> None:
        native = runner.native
        self.stack = runner.stacks.get()
        self.back = UContext(native.libc, native.abi)
        self.start = UContext(native.libc, native.abi)
        self.entry = CFUNCTYPE(None)(runner._enter)
        self.start.make(self.stack.base, self.stack.size, self.back, address_of(self.entry))
        swap = functools.partial(native.libc.swapcontext, self.back.buffer, self.start.buffer)
        self.trampoline = CFUNCTYPE(c_int)(swap)
        self.func_address = address_of(self.trampoline)
        self._slot, self._value = self.start.rearm_pair()

    def arm(self) -> None:
        self._slot.value = self._value


class JobRunner:
    """Starts and resumes this OS thread's OpenSSL jobs (see the module docstring)."""

    def __init__(self, native: NativeSupport) -> None:
        self.native = native
        self.ident = threading.get_ident()
        api = native.api
        self.caller_ts: int = api.PyThreadState_Get()
        native.binding.check_caller(self.caller_ts)
        self.running: Optional[Execution] = None
        self.tstates = ThreadStatePool(api)
        self.stacks = StackPool(native.libc, native.abi, native.stack_size)
        self.units: List[_NestedUnit] = []
        self.slots: List[_JobSlot] = []
        self.verified_starts = 0
        #: an ASYNC_WAIT_CTX the backend owns, for jobs started without one
        self.hidden_ctx = 0
        #: set in a child process forked from inside one of this thread's jobs:
        #: CPython deleted the caller's thread state, so the job must not return to it
        self.forked_inside_job = False
        ffi = native.ffi
        self._call = call = FfiCall(
            ffi, native.start_job_address, ffi.type_sint32, [ffi.type_pointer] * 5 + [ffi.type_uint64]
        )
        self._ret_slot = c_int(0)
        self._ret_ref = byref(self._ret_slot)
        call.cells[2] = ctypes.addressof(self._ret_slot)
        self._cells = call.cells
        self._result = call.result
        libc = native.libc
        step_call = (call.ffi_call_address, call.step_args)
        if native.binding.kind == "tls":
            key = native.binding.key
            set_key = libc.pthread_setspecific_address
            self._start_chain = CallChain(
                libc,
                native.abi,
                [(set_key, (key, 0)), step_call, (set_key, (key, self.caller_ts))],
                CHAIN_SLICE,
            )
            self._job_ts = self._start_chain.contexts[0].argument(1)
            self._resume_chain: Optional[CallChain] = self._start_chain
        else:
            self._start_chain = CallChain(
                libc,
                native.abi,
                [(api.restore_thread_address, (0,)), (api.save_thread_address, ()), step_call],
                CHAIN_SLICE,
            )
            self._job_ts = self._start_chain.contexts[0].argument(0)
            self._resume_chain = None
            self._resume_call = native.fast_start_job
        self._pause = native.fast_pause_job
        self._openssl_entry: Any = None
        if native.stack_mode == "openssl":
            self._openssl_entry = ASYNC_job_fn(self._enter_from_openssl)
        self.closed = False

    # -- caller side ---------------------------------------------------------

    def start(self, body: JobBody, wait_ctx_address: int) -> tuple[int, Optional[Execution]]:
        """Start ``body`` in a new OpenSSL job; the status and, on PAUSE, its execution."""
        unit: Optional[_NestedUnit] = None
        if self._openssl_entry is not None:
            func = address_of(self._openssl_entry)
        else:
            unit = self.units.pop() if self.units else _NestedUnit(self)
            unit.arm()
            func = unit.func_address
        slot = self.slots.pop() if self.slots else _JobSlot()
        slot.var.value = None
        ex = Execution(body, self.tstates.get(), unit, slot)
        cells = self._cells
        cells[0] = slot.address
        cells[1] = wait_ctx_address
        cells[3] = func
        self._job_ts.value = ex.tstate
        verify = self.verified_starts < 2 or _DEBUG
        self.running = ex
        try:
            self._start_chain.run()
        finally:
            self.running = None
        status = self._result.value
        if verify:
            self.native.binding.check_caller(self.caller_ts)
            self.verified_starts += 1
        if not ex.binding_ok:
            self._recycle(ex)
            raise AsyncError("job thread state was not bound inside the job; refusing to continue")
        if status != ASYNC_PAUSE:
            # finished, or NO_JOBS/ERR before the job ever ran: nothing of ours is
            # left on its thread state or stack
            self._recycle(ex)
        return status, ex

    def resume(self, ex: Execution) -> int:
        """Resume a paused execution; OpenSSL's status. The hottest path there is."""
        chain = self._resume_chain
        if chain is not None:
            self._cells[0] = ex.slot.address
            self._job_ts.value = ex.tstate
            chain.run()
            status: int = self._result.value
        else:
            status = self._resume_call(ex.slot.ref, None, self._ret_ref, None, None, 0)
        if _DEBUG:
            self.native.binding.check_caller(self.caller_ts)
        if status == ASYNC_FINISH:
            self._recycle(ex)
        # ERR on a resume: OpenSSL abandoned the job mid-flight (a libctx swap
        # failure). Its frames stay on its thread state forever; neither is reused.
        return status

    def _recycle(self, ex: Execution) -> None:
        self.slots.append(ex.slot)
        self.tstates.put(ex.tstate)
        if ex.unit is not None:
            self.units.append(ex.unit)
            ex.unit = None
        ex.tstate = 0

    # -- job side ------------------------------------------------------------

    def _enter_from_openssl(self, _arg: Any) -> int:
        self._enter()
        return 0

    def _enter(self) -> None:
        ex = self.running
        if ex is None:  # pragma: no cover - only a foreign ASYNC_start_job could do this
            return
        if (self.verified_starts < 2 or _DEBUG) and not self.native.binding.check_job(ex.tstate):
            ex.binding_ok = False
            ex.finished = True
            return
        try:
            ex.body.run_in_job()
        except BaseException as exc:  # noqa: BLE001 - never unwind into C
            report_unraisable(exc, "Exception escaped a job body")
        if self.forked_inside_job:
            _exit_forked_child()
        try:
            # threading.local data (<= 3.12) must not leak into the next job. The
            # dict lives as long as the thread state: look it up once per state.
            state = self.tstates.dicts.get(ex.tstate)
            if state is None:
                state = self.tstates.dicts[ex.tstate] = self.native.api.thread_state_dict()
            if state:
                state.clear()
        except BaseException:  # noqa: BLE001
            pass
        ex.finished = True

    def pause(self) -> int:
        """``ASYNC_pause_job()``: returns when the job is resumed (or at once if blocked)."""
        return self._pause()  # type: ignore[no-any-return]

    # -- lifetime ------------------------------------------------------------

    def trim(self) -> None:
        """Free pooled thread states and stacks (no job of this thread may be paused)."""
        self.tstates.close()
        while self.units:
            self.stacks.put(self.units.pop().stack)
        self.stacks.close()
        if self.native.openssl_stacks is not None:
            self.native.openssl_stacks.release_thread(self.ident)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.trim()
        self._start_chain.close()

    def forget(self) -> None:
        """After fork: the child has none of the pooled thread states any more."""
        self.closed = True
        self.tstates.forget()
        if self.native.openssl_stacks is not None:
            self.native.openssl_stacks.abandon_thread(self.ident)


_DEBUG = bool(os.environ.get("PYOSSL_ASYNC_DEBUG"))


def _exit_forked_child() -> None:
    """End a process forked inside a job once the job's function has returned.

    After ``fork()`` the child keeps only the current thread state (the job's); the
    caller's was deleted, so there is nothing to return to. The python backend's
    child ends the same way (its worker thread is the child's only thread).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(0)

