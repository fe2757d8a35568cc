"""Forgetting the ``threading.local`` data a job left on a pooled worker thread.

In the ``"openssl"`` backend every job runs on its own interpreter thread state,
whose dict is cleared when the job ends, so ``threading.local`` values set by one
job are not seen by the next. ``"python"`` jobs run on pooled worker threads; to
behave the same, a worker forgets the values when a job ends.

On CPython up to 3.12, ``threading.local`` keeps a thread's values alive through
an entry ``"thread.local.<address>"`` in the thread state's dict (the C API's
``PyThreadState_GetDict()``); deleting those entries is exactly what happens to
them when a thread ends. Python code has no direct handle on that dict, but it
holds one other well-known entry, ``"Py_Repr"``: the list ``repr()`` uses to
detect recursion, which contains every container being repr'd on this thread.
So the dict is found once per worker, from inside a ``__repr__``, by looking for
the list that holds the container, and the dict that holds the list, among the
objects the garbage collector tracks as *young*. The result is verified with a
real ``threading.local`` before it is trusted.

The search never scans the whole heap (``gc.get_referrers`` would: its cost grows
with everything the program holds, and a storm of new workers made it snowball).
It looks at generations 0 and 1 only, whose sizes the collector's thresholds
bound. It runs as the first thing a new worker thread does, when the thread's
dict and list have just been made: they are in generation 0, or in generation 1
if a collection ran in between. When they cannot be found (two collections in
that window), the worker gives up isolation and serves a single job
(``Worker.reusable``), so no job ever sees another's values.

CPython 3.13 keeps ``threading.local`` values elsewhere (keyed by a per-thread
object that only the C side can reach), so there, as for the ``"openssl"``
backend on 3.13, values stay with the worker thread and are visible to later
jobs that run on it.
"""

from __future__ import annotations

import gc
import sys
import threading
from typing import Any, Dict, List, Optional

__all__ = ["SUPPORTED", "ThreadLocalScrubber"]

_PREFIX = "thread.local."
_REPR_KEY = "Py_Repr"

#: whether this interpreter keeps threading.local values in the thread-state dict
SUPPORTED = sys.implementation.name == "cpython" and sys.version_info < (3, 13)


#: the longest "Py_Repr" list looked into: it holds the containers being repr'd on the
#: thread, just ``holder`` on a new worker (long lists, such as another worker's list
#: of young objects, are skipped: scanning them made concurrent searches quadratic)
_REPR_LIST_MAX = 8
#: how many of the youngest objects are looked at, at most: the list and the dict were
#: just made, so they are among the last ones; a generation can grow far beyond its
#: threshold while a collection is running (its finalisers may drive jobs for long)
_SCAN_LIMIT = 100_000


def _find_in(candidates: List[Any], holder: List[Any]) -> Optional[Dict[Any, Any]]:
    """The dict among ``candidates`` whose ``"Py_Repr"`` entry is a short list among them
    that contains ``holder``. Newest first (the collector lists objects oldest first),
    and at most ``_SCAN_LIMIT`` of them."""
    last = len(candidates) - 1
    stop = max(-1, last - _SCAN_LIMIT)
    repr_list: Optional[List[Any]] = None
    for i in range(last, stop, -1):
        o = candidates[i]
        if type(o) is list and len(o) <= _REPR_LIST_MAX and o is not holder and any(x is holder for x in o):
            repr_list = o
            break
    if repr_list is None:
        return None
    for i in range(last, stop, -1):
        d = candidates[i]
        if type(d) is dict and d.get(_REPR_KEY) is repr_list:
            return d
    return None


def _thread_state_dict() -> Optional[Dict[Any, Any]]:
    """The calling thread's ``PyThreadState_GetDict()``, or None if it is not among the
    young objects (see the module docstring: the search is bounded, never the heap)."""
    found: List[Optional[Dict[Any, Any]]] = []

    class _Probe:
        def __repr__(self) -> str:
            # repr(holder) has put holder on this thread's "Py_Repr" list. On a
            # fresh thread the list and the dict are new: generation 0, or 1 if a
            # collection ran since. Both generations are bounded in size; the
            # smaller one is searched first.
            young = gc.get_objects(generation=0)
            try:
                d = _find_in(young, holder)
                if d is None:  # a collection ran in between: both moved to generation 1
                    young += gc.get_objects(generation=1)
                    d = _find_in(young, holder)
                found.append(d)
            finally:
                del young
            return "probe"

    holder: List[Any] = [_Probe()]
    repr(holder)
    return found[0] if found else None


class ThreadLocalScrubber:
    """Deletes the calling thread's ``threading.local`` values (see the module docstring)."""

    __slots__ = ("_dict",)

    def __init__(self, tstate_dict: Dict[Any, Any]) -> None:
        self._dict = tstate_dict

    @classmethod
    def for_current_thread(cls) -> Optional[ThreadLocalScrubber]:
        """A verified scrubber for this thread, or None where this cannot work."""
        if not SUPPORTED:
            return None
        d = _thread_state_dict()
        if d is None:
            return None
        scrubber = cls(d)
        probe = threading.local()
        probe.value = True
        scrubber.scrub()
        if getattr(probe, "value", False):  # the values live somewhere else here
            return None
        return scrubber

    def scrub(self) -> None:
        """Forget every ``threading.local`` value of this thread, as if it had ended."""
        d = self._dict
        keys = [k for k in d if type(k) is str and k.startswith(_PREFIX)]
        for k in keys:
            d.pop(k, None)
