"""Running Python job functions inside real OpenSSL jobs, safely: the per-thread runner.

``JobRunner`` is per OS thread: it starts and resumes OpenSSL jobs so that each
job's Python code runs

* on its own ``PyThreadState``, bound and unbound around every switch by the
  native switch (``_switch``, :class:`NativeRunner`) or, where that cannot be
  mapped, by a C call chain (``_chain_runner``), and
* on a large guarded C stack: handed to OpenSSL through
  ``ASYNC_set_mem_functions`` (3.2+, ``_openssl_stacks``), or, on 3.0/3.1, entered
  from OpenSSL's 32 KiB fibre by a C-only trampoline (no Python frame runs on the
  small stack).

The runner knows nothing of the public API: it runs a ``JobBody`` and reports
OpenSSL's status. Policy (states, errors, cancellation) is the backend's.
What is process-wide (libraries, ABI, the GIL-state binding, where job stacks
come from) is ``_support.NativeSupport``.
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
from typing import TYPE_CHECKING, Any, Callable, Iterator, List, Optional, Protocol

from .._errors import AsyncError
from .._libcrypto._types import ASYNC_job_fn
from ._libs import address_of
from ._stacks import StackPool
from ._switch import REFUSED, NativeSwitch, SwitchBlock
from ._tstate import ThreadStatePool
from ._ucontext import UContext

if TYPE_CHECKING:
    from ._openssl_stacks import ThreadAllocator
    from ._support import NativeSupport

__all__ = ["C_STACK_PER_CALL", "REFUSED", "Execution", "JobBody", "JobRunner", "NativeRunner"]

ASYNC_ERR, ASYNC_NO_JOBS, ASYNC_PAUSE, ASYNC_FINISH = 0, 1, 2, 3


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
        #: this thread's stack allocator state (OpenSSL 3.2+ stacks): see _openssl_stacks
        self._allocator: Optional[ThreadAllocator] = None
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
