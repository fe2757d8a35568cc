"""Job stacks handed to OpenSSL 3.2+ through ``ASYNC_set_mem_functions``.

OpenSSL asks for a fibre stack when it creates a job; the allocator answers with
one of our guarded stacks (``_stacks``), from the calling thread's pool, without
running Python code where none may run (see ``ThreadAllocator``).
"""

from __future__ import annotations

import functools
import itertools
import threading
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Callable, Dict, Generator, Iterator, List, Optional

from .._libcrypto._types import ASYNC_stack_alloc_fn
from ._stacks import GuardedStack

if TYPE_CHECKING:
    from ._support import NativeSupport

__all__ = ["OpenSSLStacks", "ThreadAllocator"]


class ThreadAllocator:
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
    (see ``OpenSSLStacks._allocations``). Keyed by OS thread, not
    ``threading.local``: OpenSSL calls it while the job's own thread state is
    bound, not the caller's.
    """
    entry_type = type("_AllocEntry", (), {"__slots__": (), "__call__": property(functools.partial(next, lookup))})
    entry: Callable[[Any], Optional[int]] = entry_type()
    return entry


class OpenSSLStacks:
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
    and is kept in the thread's ``ThreadAllocator.interrupt`` for the runner to
    raise once the C call has returned.
    """

    def __init__(self, native: NativeSupport) -> None:
        self._native = native
        self._by_thread: Dict[int, List[GuardedStack]] = {}
        self._lock = threading.Lock()
        #: armed threads (by ident): their allocator state, and its generator's ``send``
        self._states: Dict[int, ThreadAllocator] = {}
        self._senders: Dict[int, Callable[[Any], Optional[int]]] = {}
        lookup = map(self._senders.get, iter(threading.get_ident, None), itertools.repeat(self._alloc))
        self.callback = ASYNC_stack_alloc_fn(_alloc_entry(lookup))
        self.allocated = 0

    def arm(self) -> ThreadAllocator:
        """Give the calling thread its allocator generator (once, or again if it ended);
        the per-thread state."""
        ident = threading.get_ident()
        state = self._states.get(ident)
        if state is None or state.generator.gi_frame is None:
            state = ThreadAllocator()
            allocations = self._allocations(state)
            next(allocations)
            state.generator = allocations  # type: ignore[assignment]
            self._states[ident] = state
            self._senders[ident] = allocations.send
        return state

    def _allocations(self, local: ThreadAllocator) -> Generator[Optional[int], Any, None]:
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
