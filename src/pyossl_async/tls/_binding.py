"""Every libssl call on a connection, bound to the connection's own thread state.

With ``SSL_MODE_ASYNC``, ``SSL_do_handshake``/``SSL_read_ex``/``SSL_write_ex``/
``SSL_shutdown`` run inside a job libssl starts itself, and a private-key
operation in Python pauses it (``ASYNC_pause_job``). Called plainly, such a
callback runs on the thread state of whoever called libssl, and a pause leaves
its frames there: the caller then returns, other connections run, and the
frames are resumed out of order (hazards.md, hazard 1: a wrong local, then
SIGSEGV). So each connection has a ``PyThreadState`` of its own, and every call
on its ``SSL *`` binds that state as the thread's GIL state for the duration of
the call, first entry and every resume alike:

* with the native switch (``_native/_switch.py``): its block calls the libssl
  function with ``a[0..3]`` as arguments and ``bind_ts`` = the connection's
  state; the block's ``job`` field stays NULL, so ``BIND_AT_START`` binds at
  every call (3.12+: restore, save), and 3.9-3.11 set the GIL-state key around
  it; a call made while a C job runs on the thread is refused, as for jobs;
* with the call-chain fallback (``PYOSSL_ASYNC_SWITCH=chain``, or where machine
  code cannot be mapped): the same steps as ``makecontext`` contexts, as the
  chain runner does for jobs.

Both hand the GIL over for an operation paused inside C code that holds it,
and take it back at the call that resumes it (``_gilguard``).

Per OS thread (:class:`TLSThread`): a pool of thread states, the chain, the
thread's idle key-operation entry, the closes of connections collected on other
threads (done here at the thread's next call).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import sys
import threading
import warnings
import weakref
from ctypes import byref, c_int64, c_uint64, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Tuple

from .._errors import AsyncError, JobStateError
from .._native._chain_runner import ChainSwitch
from .._native._ffi import FfiCall
from .._native._gilguard import GilGuard, Step
from .._native._switch import SwitchBlock
from .._native._tstate import ThreadStatePool
from .._unraisable import report_unraisable
from ..backends.openssl import FOREIGN_PAUSED
from . import _keyops
from ._keyops import REFUSAL, Entry
from ._support import ON_LOAD, TLSSupport

if TYPE_CHECKING:
    from .._native._support import NativeSupport

__all__ = ["BoundSSL", "ChainCaller", "TLSThread", "thread_here"]

#: ``SwitchBlock.result`` before a call: the switch writes the call's result over it,
#: so it is still there only when the switch refused (a C job runs on this thread)
_NOT_CALLED = -(1 << 62)
_MASK64 = (1 << 64) - 1
_get_ident = threading.get_ident
_current = _keyops.current_entries()


class ChainCaller:
    """A thread's bound calls through call chains: bind, ``ffi_call(fn, a0..a5)``, the
    GIL guard's check and release, unbind; a longer chain retakes the GIL first for
    a connection whose operation paused holding it."""

    def __init__(self, native: NativeSupport, caller_ts: int) -> None:
        ffi, api, libc = native.ffi, native.api, native.libc
        self.ffi_call = call = FfiCall(ffi, 0, ffi.type_sint32, [ffi.type_uint64] * 6)
        self.cells = call.cells
        self.result = call.result
        guard = self.guard = GilGuard(ffi, api, libc)
        step_call: Step = (call.ffi_call_address, call.step_args)
        guarded: List[Step] = [step_call, guard.check_step(), guard.release_step()]
        enter: List[Step]
        leave: List[Step]
        if native.binding.kind == "tls":
            key, set_key = native.binding.key, libc.pthread_setspecific_address
            enter = [(set_key, (key, 0))]
            leave = [(set_key, (key, caller_ts))]
            ts_arg = 1
        else:  # 3.12+: restoring and saving the state binds it
            enter = [(api.restore_thread_address, (0,)), (api.save_thread_address, ())]
            leave = []
            ts_arg = 0
        n = len(enter)
        self.plain = ChainSwitch(libc, native.abi, enter + guarded + leave, 0, ts_arg, n + 1)
        retake = [*enter, guard.retake_step(), *guarded, *leave]
        self.retake = ChainSwitch(libc, native.abi, retake, 0, ts_arg, n + 2)
        self.plain_fn = self.plain.chain.contexts[n].argument(1)
        self.retake_fn = self.retake.chain.contexts[n + 1].argument(1)

    def run(self, fn: int, ts: int, held: c_int64, args: Tuple[int, ...]) -> int:
        cells = self.cells
        for i, value in enumerate(args):
            cells[i] = value
        held_address = ctypes.addressof(held)
        guard = self.guard
        if held.value:  # paused inside C holding the GIL: take it back for it first
            switch, fn_view = self.retake, self.retake_fn
            guard.retake_key[0] = ts
            guard.retake_argv[2] = held_address
        else:
            switch, fn_view = self.plain, self.plain_fn
        fn_view.value = fn
        switch.job_ts.value = ts  # type: ignore[union-attr]
        switch.check.value = held_address  # type: ignore[union-attr]
        guard.release_argv[2] = held_address
        switch.chain.run()
        return int(self.result.value)

    def close(self) -> None:
        self.plain.chain.close()
        self.retake.chain.close()


class TLSThread:
    """What one OS thread's connections share (see the module docstring)."""

    def __init__(self, support: TLSSupport) -> None:
        native = support.native
        self.support = support
        self.ident = _get_ident()
        api = native.api
        self.caller_ts: int = api.PyThreadState_Get()
        native.binding.check_caller(self.caller_ts)
        #: thread states of this thread's connections; labelled, so that JobCancelled can
        #: be raised in one whose operation is paused inside C (``AsyncExceptions``)
        self.tstates = ThreadStatePool(api, native.async_exc)
        self.chain: Optional[ChainCaller] = None if support.switch is not None else ChainCaller(native, self.caller_ts)
        #: closes of this thread's connections that were collected elsewhere or mid-call
        self.pending: List[Callable[[], None]] = []
        self.verified = 0
        #: the entry for key operations made on this thread outside any connection
        self.idle: Optional[Entry] = None
        #: entries of closed connections, for the next ones (LIFO)
        self.entries: List[Entry] = []
        #: this thread's open connections (their cores, by id, weakly, with no callback:
        #: one interrupted by a signal would be noise), closed at exit on the main thread
        self.cores: Dict[int, "weakref.ref[Any]"] = {}
        self.allocator = native.openssl_stacks.arm() if native.openssl_stacks is not None else None
        self.pid = os.getpid()
        self.closed = False

    def check_allocator(self) -> None:
        """Give the thread a live stack allocator (OpenSSL 3.2+ stacks) before a call that may
        start a libssl job (an interrupt can end one; see ``_native._openssl_stacks``)."""
        allocator = self.allocator
        if allocator is not None and allocator.generator.gi_frame is None:
            stacks = self.support.native.openssl_stacks
            assert stacks is not None
            self.allocator = stacks.arm()

    def raise_allocator_interrupt(self) -> None:
        """An exception a signal handler raised while OpenSSL allocated a job's stack."""
        allocator = self.allocator
        if allocator is not None and allocator.interrupt is not None:
            exc, allocator.interrupt = allocator.interrupt, None
            raise exc

    def take_entry(self, operate: Callable[[Entry, bytes], int], interrupted: Callable[[BaseException], None]) -> Entry:
        """An entry for a new connection: a pooled one, or a new one."""
        while self.entries:
            entry = self.entries.pop()
            if entry.alive and not entry.busy:
                entry.rebind(operate, interrupted)
                return entry
        return Entry(self.support, operate, interrupted)

    def give_entry(self, entry: Entry) -> None:
        """A closed connection's entry (no operation in progress) goes back to the pool."""
        entry.rebind(*_keyops.UNOWNED)
        if self.closed or not entry.alive:
            entry.close()
        else:
            self.entries.append(entry)

    def drain_pending(self) -> None:
        """Close the connections whose close was left to this thread."""
        while self.pending:
            close = self.pending.pop(0)
            try:
                close()
            except BaseException as exc:  # noqa: BLE001 - somebody else's connection
                report_unraisable(exc, "Exception while closing a collected TLS connection")

    def exited(self) -> None:
        """The thread has ended: free what only it could use."""
        self.closed = True
        if _current.get(self.ident) is self.idle:
            _current.pop(self.ident, None)
        if self.pending:
            warnings.warn(
                f"a thread exited with {len(self.pending)} TLS connection(s) waiting to be closed there; "
                f"their libssl jobs, thread states and stacks are leaked",
                ResourceWarning,
                stacklevel=2,
            )
            self.pending.clear()
        if self.idle is not None and not self.idle.busy:
            self.idle.close()
        while self.entries:
            self.entries.pop().close()
        self.tstates.close()
        if self.chain is not None:
            self.chain.close()


class _Sentinel:
    """Lives in a ``threading.local`` of the thread it watches; dies with the thread."""

    __slots__ = ("pid", "thread")

    def __init__(self, thread: TLSThread) -> None:
        self.thread = thread
        self.pid = os.getpid()

    def __del__(self) -> None:
        if sys.is_finalizing() or os.getpid() != self.pid:
            return
        try:
            with _lock:
                if _threads.get(self.thread.ident) is self.thread:
                    del _threads[self.thread.ident]
            self.thread.exited()
        except BaseException as exc:  # noqa: BLE001 - runs in thread teardown
            report_unraisable(exc, "Exception while releasing a thread's TLS resources")


_lock = threading.Lock()
_threads: Dict[int, TLSThread] = {}
_local = threading.local()


def thread_here(support: TLSSupport) -> TLSThread:
    """The calling thread's ``TLSThread`` (made on first use)."""
    thread = _threads.get(_get_ident())
    if thread is not None and thread.pid == os.getpid():
        return thread
    thread = TLSThread(support)
    with _lock:
        _threads[thread.ident] = thread
    _local.sentinel = _Sentinel(thread)
    thread.idle = idle_entry(support)
    _current.setdefault(thread.ident, thread.idle)
    return thread


def _no_idle_entry(support: TLSSupport) -> Entry:  # pragma: no cover - _keys installs one
    raise RuntimeError("pyossl_async.tls._keys was not imported")


#: makes a thread's entry of key operations made outside any connection's call;
#: ``_keys`` (which imports this module) installs it
idle_entry: Callable[[TLSSupport], Entry] = _no_idle_entry


def _after_fork_in_child() -> None:
    """Thread states and jobs of the parent are not the child's: start afresh."""
    for thread in list(_threads.values()):
        thread.closed = True  # (CPython deleted their thread states: see BoundSSL.call)
        thread.tstates.forget()
    _threads.clear()
    _current.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def paused_jobs(ident: int) -> int:
    """How many connections of thread ``ident`` may have a libssl job paused (those whose
    last call has not been seen to end: counted conservatively, with no C call)."""
    thread = _threads.get(ident)
    if thread is None or thread.closed:
        return 0
    count = 0
    for ref in list(thread.cores.values()):
        core = ref()
        if core is not None and core.pending is not None:
            count += 1
    return count


def _close_at_exit() -> None:
    """Interpreter exit: drive the main thread's paused libssl jobs to their end, as the
    backend does with its jobs (a key operation paused there gets ``JobCancelled``);
    CPython would otherwise clear their thread states under their frames."""
    main = threading.main_thread().ident
    thread = _threads.get(main) if main is not None else None
    if thread is None or thread.closed or _get_ident() != main:
        return
    for ref in list(thread.cores.values()):
        core = ref()
        if core is None:
            continue
        try:
            core.close()
        except BaseException as exc:  # noqa: BLE001 - exiting: report and go on
            report_unraisable(exc, "Exception while closing a TLS connection at exit")


atexit.register(_close_at_exit)


class BoundSSL:
    """One connection's ``SSL *``, its thread state, and the call that binds one to the other.

    ``call(fn, a1, ..., a5)`` calls ``fn(ssl, a1, ..., a5)`` (a C function address)
    with the connection's thread state bound and its key-operation entry (if any)
    current; the C ``int`` result. Only on the thread that made the connection.
    """

    def __init__(self, support: TLSSupport, thread: TLSThread, ssl: int, entry: Optional[Entry]) -> None:
        self.support = support
        self.thread = thread
        self.ssl = ssl
        self.entry = entry
        self.ts = 0
        self._current_job = support.current_job
        self.held = c_int64(0)  # (chain) the GIL hand-over cell of this connection
        switch = support.switch
        if switch is not None:
            block = self.block = switch.block(0)
            base = ctypes.addressof(block)
            block.a[0] = ssl
            a = base + SwitchBlock.a.offset
            self._fn = c_void_p.from_address(base + SwitchBlock.fn.offset)
            self._args = [c_uint64.from_address(a + 8 * i) for i in range(1, 6)]
            self._result = c_int64.from_address(base + SwitchBlock.result.offset)
            self._ref = byref(block)
            self._switch_call = switch.call
        # taken last, and written to the block in the same breath: an interrupt before
        # this line leaves nothing behind
        self.ts = ts = thread.tstates.get()
        if switch is not None:
            self.block.bind_ts = ts

    def call(self, fn: int, *args: int) -> int:
        thread = self.thread
        ident = _get_ident()
        if thread.ident != ident or thread.closed:
            if thread.closed and thread.pid != os.getpid():
                raise JobStateError("a TLS connection made before fork() cannot be used in the child")
            raise JobStateError("a TLS connection is used only on the OS thread that made it")
        if thread.allocator is not None:
            thread.check_allocator()
        entry = self.entry
        prev = _current.get(ident)
        if entry is not None:
            _current[ident] = entry if not entry.generator.gi_running else REFUSAL
        try:
            if self.support.switch is not None:
                self._fn.value = fn
                views = self._args
                for i, value in enumerate(args):
                    views[i].value = value & _MASK64
                self._result.value = _NOT_CALLED
                self._switch_call(self._ref)
                result = self._result.value
                if result == _NOT_CALLED:
                    raise JobStateError("a TLS connection cannot be driven from inside a running job")
            else:
                result = self._chain_call(thread, fn, args)
        finally:
            if entry is not None:
                if prev is None:
                    prev = thread.idle
                if prev is None:
                    _current.pop(ident, None)
                else:
                    _current[ident] = prev
        if thread.allocator is not None:
            thread.raise_allocator_interrupt()
        if thread.verified < 2 or self.support.native.debug:
            self._verify()
        return int(result)

    def _chain_call(self, thread: TLSThread, fn: int, args: Tuple[int, ...]) -> int:
        native = self.support.native
        if self._current_job():
            raise JobStateError("a TLS connection cannot be driven from inside a running job")
        if native.binding.kind == "tls" and native.api.PyThreadState_Get() != thread.caller_ts:
            # the chain's last step gives the GIL-state key back to the thread's own state
            raise JobStateError("a TLS connection cannot be driven from inside another connection's key operation")
        chain = thread.chain
        assert chain is not None
        full = (self.ssl, *(a & _MASK64 for a in args), *(0,) * (5 - len(args)))
        return chain.run(fn, self.ts, self.held, full)

    def _verify(self) -> None:
        native = self.support.native
        native.binding.check_caller(native.api.PyThreadState_Get())
        self.thread.verified += 1

    def release(self) -> None:
        """The connection is gone and none of its code is paused: pool its thread state."""
        ts, self.ts = self.ts, 0
        if not ts:
            return
        if not self.thread.closed:
            self.thread.tstates.put(ts)
        else:  # its thread has gone: nobody would take it from the pool again
            api = self.support.native.api
            api.PyThreadState_Clear(ts)
            api.PyThreadState_Delete(ts)


def check_binding(support: TLSSupport, ts: int) -> None:
    """Inside a key operation: the thread state running it must be ``ts`` (the connection's)."""
    if not support.native.binding.check_job(ts):
        raise AsyncError("a key operation did not run on its connection's thread state; refusing to continue")


# the openssl backend's cleanup_thread refuses while a thread has libssl jobs paused
ON_LOAD.append(lambda support: FOREIGN_PAUSED.append(paused_jobs))
