"""Interrupt safety: what keeps a signal handler or finaliser that calls the library
in the middle of one of its own calls on the same thread from corrupting it.

A start, resume, close or thread cleanup marks its thread busy (``ThreadJobs.busy``)
for its whole length; a call that lands in between (a signal handler's, a
finaliser's) is refused or deferred. The methods that hold a thread busy are
registered with :func:`holds_thread_busy`, so that a stale mark (an interrupt that
skipped the decrement) can be told from a real one by looking for their frames.
And the recursion headroom: settling a drive cut short right at the recursion
limit needs a few frames more than the program allows.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Callable, Set, TypeVar

if TYPE_CHECKING:
    from ._records import ThreadJobs

__all__ = ["HEADROOM", "SETTLE_HEADROOM", "busy", "holds_thread_busy", "setrecursionlimit"]

_F = TypeVar("_F", bound=Callable[..., Any])

#: the code of the methods that hold a thread busy (``holds_thread_busy``)
_BUSY_CODES: Set[Any] = set()


def holds_thread_busy(method: _F) -> _F:
    """Register ``method`` as one that marks its thread busy while it runs: ``busy()``
    trusts a mark only while one of these frames is on the stack. (An override in a
    subclass that marks the thread itself must be registered too.)"""
    _BUSY_CODES.add(method.__code__)
    return method


def busy(thread: ThreadJobs) -> bool:
    """Whether the library is in the middle of a ``start_job()``/``close()``/``cleanup_thread()``
    on this thread (the caller must be that thread, outside its jobs).

    ``thread.busy`` says so, unless it is stale: CPython 3.9 and 3.10 run signal
    handlers as an exception enters a ``finally`` block (3.9 between any two
    instructions), so an interrupt landing there skips the decrement. The counter is trusted only
    while one of the library's busy frames is really on the stack; a stale one is
    reset instead of refusing every later call of the thread.
    """
    if not thread.busy:
        return False
    if not _STALE_BUSY_POSSIBLE or thread.running is not None:
        return True  # (a job of this thread runs: its caller's frames are elsewhere)
    frame: Any = sys._getframe(1)
    for _ in range(_BUSY_FRAMES):
        if frame is None:
            thread.busy = 0  # no busy frame below us: stale
            return False
        if frame.f_code in _BUSY_CODES:
            return True
        frame = frame.f_back
    return True  # too deep to tell (nested handlers): keep refusing


#: CPython 3.9 and 3.10 run signal handlers at the first instruction of a ``finally``
#: entered by an exception (3.11+ check only at calls and backward jumps)
_STALE_BUSY_POSSIBLE = sys.version_info < (3, 11)
#: how many frames ``_busy`` looks at; a busy frame sits within a few dozen of them
_BUSY_FRAMES = 64


#: extra recursion depth our bookkeeping may use to settle a job whose drive failed
SETTLE_HEADROOM = 200


class _RecursionHeadroom:
    """The interpreter's recursion limit, raised while drives cut short are settled.

    The limit is interpreter-wide: it is raised once however many threads settle at
    the same time and put back when the last is done. CPython 3.12+ refuses a
    limit below the current depth, so when the drive failed right at the limit the
    old one is put back at the next library call of any thread (``pending``). A
    limit the program set in between is left alone.
    """

    __slots__ = ("active", "base", "pending")

    def __init__(self) -> None:
        self.active = 0
        self.base = 0
        self.pending = False

    def restore(self) -> None:
        if self.active:
            return
        if sys.getrecursionlimit() != self.base + SETTLE_HEADROOM:
            self.pending = False  # the program's own limit: keep it
            return
        try:
            setrecursionlimit(self.base)
            self.pending = False
        except RecursionError:
            self.pending = True  # the stack is still deeper than the old limit


HEADROOM = _RecursionHeadroom()
#: the builtin itself, taken before the openssl backend may wrap ``sys.setrecursionlimit``
#: (3.9/3.10): settling happens right at the recursion limit, where no Python frame can run
setrecursionlimit = sys.setrecursionlimit
