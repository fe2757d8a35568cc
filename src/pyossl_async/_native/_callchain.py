"""A fixed sequence of C calls run back to back, with no Python code between them.

Why: moving the interpreter's "thread state of this OS thread" from the caller
to a job and back must happen while no Python code can run, or a finaliser, a
signal handler or ``-X dev``'s allocator check would see a thread state that is
not the current one. Python enters the chain with one ``swapcontext``; each step
is a ``makecontext`` context on its own slice of a guarded helper stack, linked to
the next by ``uc_link``; the last one links back to the caller.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

from ._abi import UcontextABI
from ._libs import Libc
from ._stacks import GuardedStack
from ._ucontext import UContext

__all__ = ["CallChain"]

Step = Tuple[int, Sequence[int]]


class CallChain:
    """Runs ``steps`` (C function address, integer arguments) in order."""

    def __init__(self, libc: Libc, abi: UcontextABI, steps: Sequence[Step], slice_size: int) -> None:
        self._libc = libc
        self._stacks: List[GuardedStack] = []
        self.back = UContext(libc, abi)
        self.contexts: List[UContext] = []
        link = self.back
        for fn, args in reversed(steps):
            stack = GuardedStack(libc, abi, slice_size)
            self._stacks.append(stack)
            ctx = UContext(libc, abi)
            ctx.make(stack.base, stack.size, link, fn, *args)
            self.contexts.insert(0, ctx)
            link = ctx
        self._rearm = [c.rearm_pair() for c in self.contexts]
        self._first = self.contexts[0].buffer
        self._back = self.back.buffer
        self._swap = libc.swapcontext

    def run(self) -> None:
        for slot, value in self._rearm:
            slot.value = value
        if self._swap(self._back, self._first) != 0:
            raise OSError("swapcontext into a call chain failed")

    def close(self) -> None:
        for stack in self._stacks:
            stack.close()
        self._stacks.clear()
