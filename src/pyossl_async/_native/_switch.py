"""The native job switch: one machine-code call per switch into a job.

Switching into a job needs a fixed sequence of C calls with no Python code in
between (hazards.md): bind the job's thread state as this OS thread's GIL state,
take the GIL back for a job that paused holding it, ``ASYNC_start_job``, release
the GIL on the job's behalf if it came back holding it, restore the binding.
Python cannot sequence C calls itself (ctypes retakes the GIL after every call),
so the portable way is a chain of ``makecontext`` contexts (``_callchain``,
still the fallback), which costs one ``rt_sigprocmask`` system call per link.

This module maps a small function that does the whole sequence (source and
instruction-by-instruction description: ``switch_x86_64.S``) into an executable
page at load time and calls it through ctypes, once per switch, with one
argument: a :class:`SwitchBlock` that holds the call and the job's state. No
compiler is involved at install or run time; where executable mappings are
refused (or the machine is not x86-64) :func:`load_switch` says why and the
runner uses the call chain.
"""

from __future__ import annotations

import ctypes
import platform
import sys
from ctypes import CFUNCTYPE, Structure, c_int, c_int64, c_uint64, c_void_p
from typing import Any, Callable

from ._abi import NativeUnsupported, UcontextABI
from ._libs import Libc, PyApi, address_of
from ._switch_code import SWITCH_OFFSET, TRAMPOLINE_OFFSET, X86_64_SYSV

__all__ = ["REFUSED", "NativeSwitch", "SwitchApi", "SwitchBlock", "load_switch"]

#: what the switch returns, having done nothing, when a C job already runs on this thread
REFUSED = -1
#: ``SwitchBlock.flags``: bind the GIL state to ``bind_ts`` before a call that starts a
#: new job (``job`` is NULL), where attaching a thread state binds it (3.12+). A block
#: whose ``job`` field is never written (the TLS layer's: ``fn`` is a libssl call, not
#: ``ASYNC_start_job``) is thus bound before every call, as that layer needs
BIND_AT_START = 1

PROT_READ, PROT_WRITE, PROT_EXEC = 0x1, 0x2, 0x4


class SwitchApi(Structure):
    """The functions the switch calls, shared by every block (layout: switch_x86_64.S)."""

    _fields_ = [
        ("restore_thread", c_void_p),  # PyEval_RestoreThread
        ("save_thread", c_void_p),  # PyEval_SaveThread
        ("attached", c_void_p),  # the thread state holding the GIL (see _attached_symbol)
        ("setspecific", c_void_p),  # pthread_setspecific; NULL where the GIL state follows attach (3.12+)
        ("getspecific", c_void_p),  # pthread_getspecific
        ("key", c_uint64),  # CPython's GIL-state pthread key (3.9-3.11)
        ("current_job", c_void_p),  # ASYNC_get_current_job, or NULL: no "inside a job" refusal
    ]


class SwitchBlock(Structure):
    """One switch's call and state (layout: switch_x86_64.S).

    For a job: ``fn`` is ``ASYNC_start_job``, ``a[0]`` points at ``job`` and
    ``a[2]`` at ``ret``; ``bind_ts`` is the job's thread state; ``held`` is
    written by the switch only (a thread state whose GIL it released for a job
    paused inside C code that holds it, retaken before the next switch).
    """

    _fields_ = [
        ("fn", c_void_p),
        ("a", c_uint64 * 6),
        ("bind_ts", c_void_p),
        ("held", c_void_p),
        ("flags", c_int64),
        ("api", c_void_p),
        ("result", c_int64),
        ("job", c_void_p),
        ("ret", c_int),
    ]


def _attached_symbol(api: Any) -> int:
    """The address of "the thread state attached to this thread, or NULL", never fatal.

    3.13 names it ``PyThreadState_GetUnchecked``; 3.9-3.12 ``_PyThreadState_UncheckedGet``
    (on 3.9-3.11 it answers for the whole interpreter: the switch compares it with
    the job's state there).
    """
    for name in ("PyThreadState_GetUnchecked", "_PyThreadState_UncheckedGet"):
        fn = getattr(api, name, None)
        if fn is not None:
            return address_of(fn)
    raise NativeUnsupported("this CPython exports no unchecked current-thread-state getter")


class _ExecutablePage:
    """``code`` copied into a private mapping that is then made read+execute (never both
    writable and executable). Kept for the life of the process."""

    def __init__(self, libc: Libc, abi: UcontextABI, code: bytes) -> None:
        size = (len(code) + abi.page_size - 1) // abi.page_size * abi.page_size
        flags = abi.map_private | abi.map_anonymous
        addr = libc.mmap(None, size, PROT_READ | PROT_WRITE, flags, -1, 0)
        if not addr or addr == c_void_p(-1).value:
            raise NativeUnsupported(f"mmap for the native switch failed (errno {ctypes.get_errno()})")
        ctypes.memmove(addr, code, len(code))
        if libc.mprotect(addr, size, PROT_READ | PROT_EXEC) != 0:
            errno = ctypes.get_errno()
            libc.munmap(addr, size)
            raise NativeUnsupported(
                f"this system refuses executable mappings (mprotect PROT_EXEC: errno {errno}); "
                f"the call chain runs instead"
            )
        self.address: int = addr
        self.size = size


class NativeSwitch:
    """The mapped switch function and the API table its blocks point at (one per process)."""

    def __init__(self, libc: Libc, abi: UcontextABI, api: PyApi, tls_key: int, current_job: int) -> None:
        self._page = _ExecutablePage(libc, abi, X86_64_SYSV)
        pyapi = ctypes.pythonapi
        self.api = SwitchApi(
            restore_thread=api.restore_thread_address,
            save_thread=api.save_thread_address,
            attached=_attached_symbol(pyapi),
            setspecific=libc.pthread_setspecific_address if tls_key >= 0 else None,
            getspecific=address_of(libc.dll.pthread_getspecific) if tls_key >= 0 else None,
            key=max(tls_key, 0),
            current_job=current_job or None,
        )
        self.api_address = ctypes.addressof(self.api)
        #: the blocks' flags: ``BIND_AT_START`` where attaching binds the GIL state (3.12+)
        self.flags = BIND_AT_START if tls_key < 0 else 0
        # A GIL-releasing function pointer (CFUNCTYPE, not PYFUNCTYPE). Its prototype
        # declares no argument: a cdecl call takes extra ones as given, so the prebuilt
        # ``byref(block)`` passes as it is, with no conversion per call.
        call = CFUNCTYPE(c_int)(self._page.address + SWITCH_OFFSET)
        self.call: Callable[[Any], int] = call
        #: ``int trampoline(void *const args[3])``: a job function for OpenSSL 3.0/3.1 that
        #: leaves its small fibre with ``swapcontext(args[0], args[1])`` (``args[2]``)
        self.trampoline_address = self._page.address + TRAMPOLINE_OFFSET

    def block(self, fn: int) -> SwitchBlock:
        """A block that calls ``fn``; its arguments and ``bind_ts`` are the caller's to set."""
        return SwitchBlock(fn=fn, api=self.api_address, flags=self.flags)

    def info(self) -> str:
        return f"native (machine code at {self._page.address + SWITCH_OFFSET:#x}, {len(X86_64_SYSV)} bytes)"


def load_switch(libc: Libc, abi: UcontextABI, api: PyApi, tls_key: int, current_job: int) -> NativeSwitch:
    """The native switch for this process; ``NativeUnsupported`` says why there is none."""
    if abi.name != "x86_64-linux-gnu" or platform.machine() not in ("x86_64", "AMD64"):
        raise NativeUnsupported(f"no native switch for {platform.machine()} (x86-64 only); the call chain runs")
    if sys.maxsize < 2**32:  # pragma: no cover - an x86-64 kernel running a 32-bit Python
        raise NativeUnsupported("32-bit process: no native switch")
    return NativeSwitch(libc, abi, api, tls_key, current_job)
