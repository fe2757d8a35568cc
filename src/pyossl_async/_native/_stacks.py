"""C stacks we own: ``mmap``-ed, with a guard page below, pooled because mapping is slow."""

from __future__ import annotations

import ctypes
from typing import List

from ._abi import UcontextABI
from ._libs import Libc

__all__ = ["GuardedStack", "StackPool"]

PROT_NONE = 0
PROT_READ_WRITE = 0x1 | 0x2
_MAP_FAILED = ctypes.c_void_p(-1).value


class GuardedStack:
    """``size`` usable bytes at ``base``; the page below ``base`` faults on overflow."""

    __slots__ = ("_length", "_libc", "_mapping", "base", "size")

    def __init__(self, libc: Libc, abi: UcontextABI, size: int) -> None:
        page = abi.page_size
        size = (size + page - 1) // page * page
        length = size + page
        flags = abi.map_private | abi.map_anonymous | abi.map_noreserve | abi.map_stack
        addr: int = libc.mmap(None, length, PROT_READ_WRITE, flags, -1, 0)
        if not addr or addr == _MAP_FAILED:
            raise MemoryError(f"mmap of a {size}-byte job stack failed (errno {ctypes.get_errno()})")
        if libc.mprotect(addr, page, PROT_NONE) != 0:
            libc.munmap(addr, length)
            raise MemoryError(f"mprotect of a job stack guard page failed (errno {ctypes.get_errno()})")
        self._libc = libc
        self._mapping = addr
        self._length = length
        self.base = addr + page
        self.size = size

    @property
    def top(self) -> int:
        return self.base + self.size

    def close(self) -> None:
        if self._mapping:
            self._libc.munmap(self._mapping, self._length)
            self._mapping = 0

    def __repr__(self) -> str:
        return f"<GuardedStack {self.size >> 10} KiB at {self.base:#x}>"


class StackPool:
    """LIFO pool of equally sized stacks for one thread (most recently used is warmest)."""

    def __init__(self, libc: Libc, abi: UcontextABI, size: int) -> None:
        self._libc = libc
        self._abi = abi
        self.size = size
        self._free: List[GuardedStack] = []

    def get(self) -> GuardedStack:
        if self._free:
            return self._free.pop()
        return GuardedStack(self._libc, self._abi, self.size)

    def put(self, stack: GuardedStack) -> None:
        self._free.append(stack)

    def close(self) -> None:
        while self._free:
            self._free.pop().close()
