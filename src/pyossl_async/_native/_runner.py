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
import itertools
import operator
import os
import sys
import threading
from ctypes import CFUNCTYPE, byref, c_int, c_int64, c_uint64, c_void_p
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, Iterator, List, Optional, Protocol

from .. import _settings
from .._errors import AsyncError
from .._libcrypto._types import ASYNC_job_fn, ASYNC_stack_alloc_fn
from ._abi import NativeUnsupported, check_interpreter, detect_abi
from ._callchain import CallChain
from ._ffi import FfiCall
from ._gilguard import GilGuard, Step, check_usable
from ._libs import Libc, Libffi, PyApi, address_of
from ._stacks import GuardedStack, StackPool
from ._switch import REFUSED, NativeSwitch, SwitchBlock, load_switch
from ._tstate import AsyncExceptions, GilStateBinding, ThreadStatePool
from ._ucontext import UContext

if TYPE_CHECKING:
    from .._libcrypto import LibCrypto

__all__ = [
    "DEFAULT_STACK_SIZE",
    "ENV_STACK_MODE",
    "ENV_STACK_SIZE",
    "ENV_SWITCH",
    "REFUSED",
    "Execution",
    "JobBody",
    "JobRunner",
    "NativeSupport",
]

ASYNC_ERR, ASYNC_NO_JOBS, ASYNC_PAUSE, ASYNC_FINISH = 0, 1, 2, 3

#: Enough for the default recursion limit of Python calls on 3.9 (about 1 KiB of
#: C stack per call there) and for 3.13's C recursion limit (deep repr/json),
#: with margin. Untouched pages cost no memory (MAP_NORESERVE).
DEFAULT_STACK_SIZE = 4 << 20
ENV_STACK_SIZE = _settings.ENV_STACK_SIZE
ENV_STACK_MODE = _settings.ENV_STACK_MODE
ENV_SWITCH = _settings.ENV_SWITCH
#: the helper stacks of the call chains only run C (and, on 3.2+, the stack
#: allocator callback); they never run job code
CHAIN_SLICE = 256 << 10


class JobBody(Protocol):
    """What a runner runs inside a job.

    ``run_in_job`` keeps the job function's own outcome. ``interrupted`` receives an
    exception that hit the job's frames from outside the function (a signal
    handler's, raised as the job was entered or left); it becomes the job's
    exception. ``engine`` is where the runner keeps the job's ``Execution``.
    """

    engine: Any

    def run_in_job(self) -> None: ...

    def interrupted(self, exc: BaseException) -> None: ...


class _JobSlot:
    """The ``ASYNC_JOB *`` variable ``ASYNC_start_job`` reads and writes for one job
    (call-chain switch; the native switch keeps it in its ``SwitchBlock``).

    OpenSSL stores the job's address in it at every PAUSE and NULL at FINISH, so a
    resume passes it as it is. ``held`` is 1 while the job is paused inside C code
    that holds the GIL (written and read by the call chain only, see ``_gilguard``).
    Slots are pooled per thread with the jobs' other resources.
    """

    __slots__ = ("address", "held", "held_address", "ref", "var")

    def __init__(self) -> None:
        self.var = c_void_p(None)
        self.ref = byref(self.var)
        self.address = ctypes.addressof(self.var)
        self.held = c_int64(0)
        self.held_address = ctypes.addressof(self.held)

    def clear(self) -> None:
        """Ready for a new job: no job, no GIL held on its behalf."""
        self.var.value = None
        self.held.value = 0

    def job_address(self) -> int:
        """The ``ASYNC_JOB *`` OpenSSL stored (0: none: not started, or finished)."""
        return self.var.value or 0


#: the machine words of a SwitchBlock (``_BlockSlot.cells``), by field
_W_ARGS, _W_BIND_TS, _W_HELD, _W_JOB = 1, 7, 8, 12
_BLOCK_WORDS = (ctypes.sizeof(SwitchBlock) + 7) // 8


class _BlockSlot:
    """A job's :class:`SwitchBlock` for the native switch.

    ``cells`` is one view of the block as machine words (writing an item is the
    cheapest write ctypes has, and one view is one object for the collector to
    track per job instead of one per field); ``ref`` is the prebuilt argument of
    every switch, and keeps the block alive.
    """

    __slots__ = ("cells", "ref")

    def __init__(self, switch: NativeSwitch, start_job: int) -> None:
        block = switch.block(start_job)
        base = ctypes.addressof(block)
        cells = self.cells = (c_uint64 * _BLOCK_WORDS).from_address(base)
        cells[_W_ARGS + 0] = base + SwitchBlock.job.offset
        cells[_W_ARGS + 2] = base + SwitchBlock.ret.offset
        self.ref = byref(block)

    def clear(self) -> None:
        """Ready for a new job: no job, no GIL held on its behalf."""
        cells = self.cells
        cells[_W_JOB] = 0
        cells[_W_HELD] = 0

    def job_address(self) -> int:
        """The ``ASYNC_JOB *`` OpenSSL stored (0: none: not started, or finished)."""
        return self.cells[_W_JOB]


class Execution:
    """One job's native resources while it exists: its thread state, stack and slot."""

    __slots__ = ("armed", "binding_ok", "body", "entered", "finished", "interrupt", "slot", "tstate", "unit")

    def __init__(self, body: JobBody, tstate: int, unit: Optional[_NestedUnit], slot: Any) -> None:
        self.body = body
        self.tstate = tstate
        self.unit = unit
        self.slot = slot
        self.finished = False
        #: its entry frame ran: from here its frames may live on its thread state and stack
        self.entered = False
        self.binding_ok = True
        #: an exception that hit the job's outermost frame (handed to the body at the end)
        self.interrupt: Optional[BaseException] = None
        #: an asynchronous exception may be pending on its thread state (see cancel)
        self.armed = False

    @property
    def address(self) -> int:
        """The ``ASYNC_JOB *`` (0 until the job has paused)."""
        address: int = self.slot.job_address()
        return address


class _ThreadAllocator:
    """Per OS thread: the allocator generator OpenSSL's callback resumes (ended once
    its ``gi_frame`` is None), and an interrupt it caught (raised by the runner
    once the C call has returned)."""

    __slots__ = ("generator", "interrupt")

    def __init__(self) -> None:
        self.interrupt: Optional[BaseException] = None
        self.generator: GeneratorType[Optional[int], Any, None]


def _alloc_entry(lookup: Iterator[Callable[[Any], Optional[int]]]) -> Callable[[Any], Optional[int]]:
    """What OpenSSL calls for a stack: the calling thread's ``send(num)``, found in C.

    An instance of a class of its own whose ``__call__`` is a property with getter
    ``next(lookup)``: ``lookup`` maps ``threading.get_ident()`` to the OS thread's
    ``send`` (the plain allocator on threads that never armed one). C from end to
    end, so no Python frame runs before the generator resumes inside its ``try``
    (see ``_OpenSSLStacks._allocations``). Keyed by OS thread, not
    ``threading.local``: OpenSSL calls it while the job's own thread state is
    bound, not the caller's.
    """
    entry_type = type("_AllocEntry", (), {"__slots__": (), "__call__": property(functools.partial(next, lookup))})
    entry: Callable[[Any], Optional[int]] = entry_type()
    return entry


class _OpenSSLStacks:
    """The ``ASYNC_stack_alloc_fn`` handed to OpenSSL 3.2+: guarded stacks of our size.

    The matching free function is a C no-op (a Python callback could be called
    after interpreter shutdown, from OpenSSL's exit handlers); stacks are unmapped
    by ``release_thread`` once the thread's OpenSSL pool is gone.

    OpenSSL calls the allocator inside ``ASYNC_start_job`` (or ``ASYNC_init_thread``)
    when its pool needs a new job. A signal handler raising at the first line of a
    Python callback there escaped into ctypes, which then returned garbage to
    OpenSSL as the stack: SIGSEGV on Ctrl-C while the pool grew. So the callback
    reaches Python only by resuming a generator parked inside its ``try``; an
    exception raised there makes the allocation fail (NULL: the job is not created)
    and is kept in the thread's ``_ThreadAllocator.interrupt`` for the runner to
    raise once the C call has returned.
    """

    def __init__(self, native: NativeSupport) -> None:
        self._native = native
        self._by_thread: Dict[int, List[GuardedStack]] = {}
        self._lock = threading.Lock()
        #: armed threads (by ident): their allocator state, and its generator's ``send``
        self._states: Dict[int, _ThreadAllocator] = {}
        self._senders: Dict[int, Callable[[Any], Optional[int]]] = {}
        lookup = map(self._senders.get, iter(threading.get_ident, None), itertools.repeat(self._alloc))
        self.callback = ASYNC_stack_alloc_fn(_alloc_entry(lookup))
        self.allocated = 0

    def arm(self) -> _ThreadAllocator:
        """Give the calling thread its allocator generator (once, or again if it ended);
        the per-thread state."""
        ident = threading.get_ident()
        state = self._states.get(ident)
        if state is None or state.generator.gi_frame is None:
            state = _ThreadAllocator()
            allocations = self._allocations(state)
            next(allocations)
            state.generator = allocations  # type: ignore[assignment]
            self._states[ident] = state
            self._senders[ident] = allocations.send
        return state

    def _allocations(self, local: _ThreadAllocator) -> Generator[Optional[int], Any, None]:
        """Serve this thread's allocations: ``send(num)`` gives a stack's base or None.

        Resumed at a ``yield`` inside a ``try``: an exception from a signal handler
        is raised there and caught. The handlers are nested once more so that even
        a second signal during the first handler cannot end the generator (a dead
        one would give OpenSSL garbage again). Several more, nanoseconds apart,
        could; the runner checks before each start and arms a new one.
        """
        base: Optional[int] = None
        while True:
            try:
                while True:
                    try:
                        while True:
                            num = yield base
                            base = None
                            base = self._alloc(num)
                    except GeneratorExit:
                        raise  # the thread's allocator is being collected (thread exit)
                    except BaseException as exc:  # noqa: BLE001 - never unwind into C
                        local.interrupt = exc
                        base = None
            except GeneratorExit:
                return
            except BaseException as exc:  # noqa: BLE001 - never unwind into C
                local.interrupt = exc
                base = None

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

    def disarm(self, ident: int) -> None:
        """The thread's runner is gone: forget its allocator (``arm`` makes a new one)."""
        self._senders.pop(ident, None)
        self._states.pop(ident, None)

    def release_thread(self, ident: int) -> None:
        """Unmap the thread's stacks (its OpenSSL pool is gone); its allocator stays armed."""
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
        #: raising JobCancelled in a job paused inside C code (see _tstate)
        self.async_exc = AsyncExceptions(self.api)
        self.crypto = crypto
        self.stack_size = _settings.stack_size() or DEFAULT_STACK_SIZE
        #: ``$PYOSSL_ASYNC_DEBUG``: verify the thread-state binding at every switch (slow)
        self.debug = _settings.debug()
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
        # PyGILState_Check through a GIL-releasing binding: must answer 0 (see _gilguard)
        self.unlocked_gil_check = ctypes.CDLL(None).PyGILState_Check
        self.unlocked_gil_check.restype = c_int
        #: how jobs are switched into: the native switch (_switch), else the call chain
        self.switch: Optional[NativeSwitch] = None
        self.switch_reason = self._choose_switch(crypto)
        self.openssl_stacks: Optional[_OpenSSLStacks] = None
        self.stack_mode, self.stack_mode_reason = self._choose_stack_mode(crypto)
        #: the deepest recursion limit a job stack holds (0: Python calls use no C stack)
        self.depth_budget = self.stack_size // C_STACK_PER_CALL if sys.version_info < (3, 11) else 0

    def _choose_switch(self, crypto: LibCrypto) -> str:
        """Load the native switch unless told not to; why the chosen one runs."""
        mode = _settings.switch_mode()
        if mode == "chain":
            return f"{ENV_SWITCH}=chain"
        try:
            self.switch = load_switch(
                self.libc, self.abi, self.api, self.binding.key, crypto.address("ASYNC_get_current_job")
            )
        except NativeUnsupported as exc:
            if mode == "native":
                raise NativeUnsupported(f"{ENV_SWITCH}=native: {exc}") from None
            return f"call chain: {exc}"
        return self.switch.info()

    def new_runner(self, switch: Optional[str] = None) -> JobRunner:
        """The calling OS thread's runner, with the switch this process uses (``switch``:
        ``"chain"`` forces the call chain for this thread, as the benchmark does)."""
        if self.switch is not None and switch != "chain":
            return NativeRunner(self)
        return ChainRunner(self)

    def _choose_stack_mode(self, crypto: LibCrypto) -> tuple[str, str]:
        forced = _settings.stack_mode()
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
            "switch": "native" if self.switch is not None else "chain",
            "switch_reason": self.switch_reason,
            "cancel_inside_c": self.async_exc.available or f"unavailable: {self.async_exc.reason}",
        }


class _NestedUnit:
    """A guarded stack entered from OpenSSL's small fibre (OpenSSL 3.0/3.1).

    OpenSSL runs a trampoline as the job's function: C code only, which saves the
    small stack's context in ``back`` and enters ``start`` on our stack
    (``swapcontext``). ``start`` runs the runner's entry callback (C only up to the
    job's frame, see ``JobRunner._job_frame``) and, when it returns, continues at
    ``back`` (its ``uc_link``), so the trampoline returns and OpenSSL finishes the
    job. With the native switch the trampoline is machine code next to it, given
    ``{back, start, swapcontext}`` as the job's argument blob (``args_address``,
    ``args_size``; OpenSSL copies it into the job); otherwise it is ctypes calling
    ``swapcontext`` through a ``functools.partial``, with no argument.
    """

    __slots__ = (
        "_slot", "_value", "args", "args_address", "args_size", "back", "entry", "func_address", "stack", "start",
        "trampoline",
    )

    def __init__(self, runner: JobRunner) -> None:
        native = runner.native
        self.stack = runner.stacks.get()
        self.back = UContext(native.libc, native.abi)
        self.start = UContext(native.libc, native.abi)
        if runner.nested_entry is None:  # one C entry point for all of the runner's units
            runner.nested_entry = CFUNCTYPE(None)(runner._entry)
        self.entry = runner.nested_entry
        self.start.make(self.stack.base, self.stack.size, self.back, address_of(self.entry))
        switch = native.switch if isinstance(runner, NativeRunner) else None
        if switch is not None:
            self.trampoline: Any = None
            self.args: Any = (c_uint64 * 3)(self.back.address, self.start.address, native.libc.swapcontext_address)
            self.args_address = ctypes.addressof(self.args)
            self.args_size = ctypes.sizeof(self.args)
            self.func_address = switch.trampoline_address
        else:
            swap = functools.partial(native.libc.swapcontext, self.back.buffer, self.start.buffer)
            self.trampoline = CFUNCTYPE(c_int)(swap)
            self.args = None
            self.args_address = self.args_size = 0
            self.func_address = address_of(self.trampoline)
        self._slot, self._value = self.start.rearm_pair()

    def arm(self) -> None:
        self._slot.value = self._value


class _ChainSwitch:
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


class JobRunner:
    """Starts and resumes this OS thread's OpenSSL jobs (see the module docstring).

    What is the same whatever switches into a job lives here: pools, the job's
    entry frame, settling, cancelling. How a switch happens is a subclass's:
    :class:`NativeRunner` (one machine-code call, ``_switch``) or
    :class:`ChainRunner` (a ``makecontext`` call chain). Both return
    ``REFUSED`` (nothing done) when a C job already runs on this thread.
    """

    def __init__(self, native: NativeSupport) -> None:
        self.native = native
        self.ident = threading.get_ident()
        api = native.api
        self.caller_ts: int = api.PyThreadState_Get()
        native.binding.check_caller(self.caller_ts)
        self.tstates = ThreadStatePool(api, native.async_exc)
        self.stacks = StackPool(native.libc, native.abi, native.stack_size)
        self.units: List[_NestedUnit] = []
        self.slots: List[Any] = []
        self.verified_starts = 0
        #: an ASYNC_WAIT_CTX the backend owns, for jobs started without one
        self.hidden_ctx = 0
        #: set in a child process forked from inside one of this thread's jobs:
        #: CPython deleted the caller's thread state, so the job must not return to it
        self.forked_inside_job = False
        self._pause = native.fast_pause_job
        #: the primed ``_job_frame`` of the job being started
        self.current_frame: Any = None
        # The job's entry callback, C from end to end: ``next`` of a ``map`` that
        # calls ``next(current_frame, 0)`` (see ``_job_frame``).
        frames = iter(functools.partial(operator.attrgetter("current_frame"), self), _NO_FRAME)
        self._entry = functools.partial(next, map(next, frames, itertools.repeat(0)))
        self._openssl_entry: Any = None
        #: the C function pointer to ``_entry`` that every ``_NestedUnit`` starts at
        self.nested_entry: Any = None
        #: this thread's stack allocator state (OpenSSL 3.2+ stacks): see _OpenSSLStacks
        self._allocator: Optional[_ThreadAllocator] = None
        if native.stack_mode == "openssl":
            self._openssl_entry = ASYNC_job_fn(self._entry)  # called with one argument: next()'s default
            if native.openssl_stacks is not None:
                self._allocator = native.openssl_stacks.arm()
        self.closed = False

    # -- caller side ---------------------------------------------------------

    def _new_slot(self) -> Any:
        """A job's ``ASYNC_JOB *`` variable and GIL hand-over cell (pooled per thread)."""
        raise NotImplementedError

    def _switch_new(self, ex: Execution, wait_ctx_address: int, func: int) -> int:
        """Switch into a new job for the first time; OpenSSL's status (or REFUSED)."""
        raise NotImplementedError

    def switch_for(self, ex: Execution) -> Callable[[], int]:
        """What resumes the paused ``ex``: a callable returning OpenSSL's status, or REFUSED
        (the hottest path there is: a C call where possible). After any status but
        PAUSE, :meth:`resumed` must be told."""
        raise NotImplementedError

    def resumed(self, ex: Execution, status: int) -> None:
        """A resume of ``ex`` returned ``status`` (not PAUSE): a finished job's resources go
        back to the pools. ERR on a resume: OpenSSL abandoned the job mid-flight (a libctx
        swap failure); its frames stay on its thread state forever and neither is reused."""
        if status == ASYNC_FINISH:
            self._recycle(ex)

    def _debug_switch(self, switch: Callable[[], int]) -> int:
        status = switch()
        self.native.binding.check_caller(self.caller_ts)
        return status

    def _close_switches(self) -> None:
        """Free what the switches hold (the runner is closing)."""

    def start(self, body: JobBody, wait_ctx_address: int) -> int:
        """Start ``body`` in a new OpenSSL job; the status. The job's ``Execution`` is
        kept in ``body.engine`` (set before the switch, so an interrupted start can be
        settled)."""
        unit: Optional[_NestedUnit] = None
        try:
            if self._openssl_entry is not None:
                func = address_of(self._openssl_entry)
            else:
                unit = self.units.pop() if self.units else _NestedUnit(self)
                func = unit.func_address
            free = self.tstates.free
            tstate = free.pop() if free else self.tstates.get()
        except MemoryError:
            # No stack (mmap failed) or thread state for a new job: for OpenSSL a job
            # that cannot be created is ASYNC_NO_JOBS (so it is with its own stacks
            # on 3.2+, and in the python backend when no thread can be started).
            if unit is not None:
                self.units.append(unit)
            return ASYNC_NO_JOBS
        if unit is not None:
            unit.arm()
        slot = self.slots.pop() if self.slots else self._new_slot()
        slot.clear()
        ex = Execution(body, tstate, unit, slot)
        body.engine = ex
        frame = self._job_frame(ex)
        try:
            next(frame)
        except StopIteration:
            # 3.9: a signal handler raised before the frame reached its yield; the
            # frame kept the exception (settle() recycles what the job took)
            exc, ex.interrupt = ex.interrupt, None
            raise exc or RuntimeError("a job frame ended before it was entered") from None
        self.current_frame = frame
        verify = self.verified_starts < 2 or self.native.debug
        allocator = self._allocator
        if allocator is not None and allocator.generator.gi_frame is None:  # it ended: see arm()
            self._allocator = self.native.openssl_stacks.arm()  # type: ignore[union-attr]
        status = self._switch_new(ex, wait_ctx_address, func)
        self.current_frame = None  # a paused job's frame is held by its own C stack
        if status == REFUSED:
            self._recycle(ex)
            return status
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
        allocator = self._allocator
        if allocator is not None and allocator.interrupt is not None:
            # a signal handler raised while OpenSSL allocated the job's stack: the
            # job was not created (NO_JOBS); the exception is the caller's
            exc, allocator.interrupt = allocator.interrupt, None
            raise exc
        return status

    def _recycle(self, ex: Execution) -> None:
        """Pool a finished job's resources; hand an interrupt it caught to its body.

        Idempotent, and safe to interrupt: the thread state is marked taken back
        before it is pooled, so an exception in between leaks it, never pools it
        twice (two jobs on one thread state would corrupt the interpreter).
        """
        if ex.interrupt is not None:
            # handed over first, and forgotten only once handed: a second signal here
            # (3.9 runs handlers between any two instructions) makes the caller settle
            # the job, which recycles it again and hands it then
            ex.body.interrupted(ex.interrupt)
            ex.interrupt = None
        ts = ex.tstate
        if not ts:
            return
        # A JobCancelled armed for it was consumed: a job only ends by running Python
        # code (its entry frame), where the pending exception is raised.
        ex.armed = False
        ex.tstate = 0
        unit, ex.unit = ex.unit, None
        self.slots.append(ex.slot)
        self.tstates.free.append(ts)
        if unit is not None:
            self.units.append(unit)

    def settle(self, ex: Execution) -> int:
        """Where a job really is after a start or resume was interrupted in Python code.

        ``ASYNC_PAUSE`` when OpenSSL holds it paused (its address is in the slot,
        whether or not the switch happened). ``ASYNC_ERR`` when OpenSSL abandoned it
        mid-flight (a resume that returned ERR): its frames stay on its thread state
        and stack, which are never reused, as in ``resume``. Otherwise it finished or
        never ran, and its resources go back to the pools: ``ASYNC_FINISH``.
        """
        if ex.tstate and not ex.finished:
            if ex.slot.job_address():
                return ASYNC_PAUSE
            if ex.entered:
                return ASYNC_ERR
        self._recycle(ex)
        return ASYNC_FINISH

    def cancel(self, ex: Execution, exc_type: type) -> bool:
        """Have ``exc_type`` raised at the first Python code the paused job runs again."""
        if ex.tstate and self.native.async_exc.arm(ex.tstate, exc_type):
            ex.armed = True
        return ex.armed

    def uncancel(self, ex: Execution) -> None:
        """Withdraw :meth:`cancel` from a job that stays paused."""
        if ex.armed and ex.tstate:
            ex.armed = False
            self.native.async_exc.disarm(ex.tstate)

    # -- job side ------------------------------------------------------------

    def _job_frame(self, ex: Execution) -> Iterator[int]:
        """The job's outermost Python frame: created and primed by ``start`` before the switch.

        The entry callback reaches it through C only (``_entry``), and re-entering
        a generator parked in ``yield from`` is the one way into Python code that
        does not first run pending signal handlers (CPython runs them at every
        function entry, on 3.9 between almost any two instructions, but not when
        it resumes a ``yield from``). So a ``KeyboardInterrupt`` that arrives
        while the job is being entered or left is raised inside this ``try`` and
        becomes the job's exception. Before, it hit the entry callback's first
        line, escaped into ctypes (printed, then dropped) and the job, which never
        ran, was reported as "a job function must return an int, not NoneType".
        """
        try:
            yield from (0,)  # parked here; the entry callback resumes it
            ex.entered = True
            if (self.verified_starts < 2 or self.native.debug) and not self.native.binding.check_job(ex.tstate):
                ex.binding_ok = False
            else:
                ex.body.run_in_job()
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
                except Exception:  # noqa: BLE001 - only isolation is lost
                    pass
        except GeneratorExit:
            raise  # never entered (the start returned NO_JOBS/ERR or was interrupted): dropped unrun
        except BaseException as exc:  # noqa: BLE001 - never unwind into C
            ex.interrupt = exc
        finally:
            ex.finished = True
        # returning ends the generator: next()'s default 0 goes back to C (no frame
        # is left suspended, so dropping the generator later costs nothing)

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
        self._close_switches()
        if self.native.openssl_stacks is not None:
            self.native.openssl_stacks.disarm(self.ident)

    def forget(self) -> None:
        """After fork: the child has none of the pooled thread states any more."""
        self.closed = True
        self.tstates.forget()
        if self.native.openssl_stacks is not None:
            self.native.openssl_stacks.abandon_thread(self.ident)


class NativeRunner(JobRunner):
    """Switches with the native switch: one machine-code call per start or resume."""

    def __init__(self, native: NativeSupport) -> None:
        super().__init__(native)
        assert native.switch is not None
        self._switch = native.switch
        self._call = native.switch.call

    def _new_slot(self) -> _BlockSlot:
        return _BlockSlot(self._switch, self.native.start_job_address)

    def _switch_new(self, ex: Execution, wait_ctx_address: int, func: int) -> int:
        slot = ex.slot
        cells = slot.cells
        cells[_W_ARGS + 1] = wait_ctx_address
        cells[_W_ARGS + 3] = func
        unit = ex.unit
        if unit is not None:  # the trampoline's argument blob, which OpenSSL copies into the job
            cells[_W_ARGS + 4] = unit.args_address
            cells[_W_ARGS + 5] = unit.args_size
        cells[_W_BIND_TS] = ex.tstate
        status: int = self._call(slot.ref)
        return status

    def switch_for(self, ex: Execution) -> Callable[[], int]:
        switch: Callable[[], int] = functools.partial(self._call, ex.slot.ref)  # C from end to end
        if self.native.debug:
            return functools.partial(self._debug_switch, switch)
        return switch


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
            self._start = _ChainSwitch(libc, native.abi, enter + guarded + leave, 0, 1, len(enter) + 1)
            self._resume = self._start
        else:
            # 3.12+: a fresh job's state is bound by restoring and saving it once
            enter = [(api.restore_thread_address, (0,)), (api.save_thread_address, ())]
            self._start = _ChainSwitch(libc, native.abi, enter + guarded, 0, 0, len(enter) + 1)
            self._resume = _ChainSwitch(libc, native.abi, guarded, None, 0, 1)
        enter = [(set_key, (key, 0))] if tls else []
        steps = enter + [guard.retake_step()] + guarded + (leave if tls else [])
        self._retake = _ChainSwitch(libc, native.abi, steps, 0 if tls else None, 1, len(enter) + 2)
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


#: C stack one Python-to-Python call takes on CPython 3.9/3.10, with margin (measured:
#: a 4 MiB stack holds 10,000 to 15,000 plain calls). 3.11+ calls take none.
C_STACK_PER_CALL = 512
#: ``iter(callable, sentinel)``'s sentinel for the entry callback: never a frame
_NO_FRAME = object()


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

