"""``ucontext_t`` buffers in our own memory, made with libc's ``makecontext``.

A context made once is entered again and again: ``setcontext`` only reads it.
The one thing a run destroys is the return-address slot ``makecontext`` wrote
at the top of the context's stack (glibc's ``__start_context`` and signal frames
overwrite it), so ``rearm()`` puts it back before every entry.
"""

from __future__ import annotations

import ctypes
from ctypes import c_size_t, c_uint64, c_void_p

from ._abi import UcontextABI
from ._libs import Libc

__all__ = ["UContext"]


class UContext:
    __slots__ = ("_abi", "_libc", "_slot", "_slot_value", "address", "buffer")

    def __init__(self, libc: Libc, abi: UcontextABI) -> None:
        self._abi = abi
        self._libc = libc
        self.buffer = ctypes.create_string_buffer(abi.alloc_size)
        self.address = ctypes.addressof(self.buffer)
        self._slot: c_uint64 | None = None
        self._slot_value = 0

    def make(
        self, stack_base: int, stack_size: int, link: UContext | None, fn: int, *args: int
    ) -> None:
        """Make this context call ``fn(*args)`` on the given stack, then continue at ``link``."""
        abi = self._abi
        if len(args) > len(abi.arg_regs):
            raise ValueError("at most one register's worth of arguments per argument")
        if self._libc.getcontext(self.address) != 0:
            raise OSError(ctypes.get_errno(), "getcontext failed")
        c_void_p.from_address(self.address + abi.ss_sp).value = stack_base
        c_size_t.from_address(self.address + abi.ss_size).value = stack_size
        c_void_p.from_address(self.address + abi.uc_link).value = link.address if link else None
        self._libc.makecontext(
            self.buffer, c_void_p(fn), ctypes.c_int(len(args)), *[c_uint64(a) for a in args]
        )
        sp = self.register(abi.reg_sp).value
        self._slot = c_uint64.from_address(sp)
        self._slot_value = self._slot.value

    def register(self, index: int) -> c_uint64:
        """A writable view of saved general register ``index``."""
        return c_uint64.from_address(self.address + self._abi.gregs + 8 * index)

    def argument(self, n: int) -> c_uint64:
        """A writable view of the ``n``-th integer argument the entry function receives."""
        return self.register(self._abi.arg_regs[n])

    def rearm(self) -> None:
        slot = self._slot
        if slot is not None:
            slot.value = self._slot_value

    def rearm_pair(self) -> tuple[c_uint64, int]:
        """(slot, value): for hot paths that restore the slot themselves."""
        if self._slot is None:
            raise RuntimeError("context was not made")
        return self._slot, self._slot_value
