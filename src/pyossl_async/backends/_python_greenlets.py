"""Greenlets that run ``"python"``-backend jobs on the driving thread itself.

The ``"greenlet"`` executor of ``_python_executors``: a job runs in a greenlet of
its own, on the thread that called ``start_job``, as an OpenSSL job runs on a
fibre of that thread. A start or resume switches into the job's greenlet; a pause
switches back to the greenlet that resumed it. No thread hand-off, no lock: a
pause and a resume are two switches.

Which job is running here is the *current greenlet*, not the OS thread: code on
the caller's side of a ``start_job()`` (the driver's own frames, and signal
handlers and finalisers that run there) is outside the job, and so is code in
another backend's job (below). Signal handlers that run while the job's greenlet
is current run inside the job, as they do on an OpenSSL fibre.

Interrupts. Nothing of ours runs on the job's greenlet outside the job function:
its greenlet's entry is ``record.context.run`` (C), which calls the job function
directly, so what leaves the greenlet is the job's own outcome, and a signal
handler's exception raised in its frames is the job's exception (as on the
openssl backend). On the driver's side the greenlet's own state is the truth:
not started, alive (paused at a switch) or dead (ended); ``where`` reads it when a
drive was cut short, whatever instruction the interrupt hit.

Another backend's jobs. An ``"openssl"`` job runs on a C stack of its own (and
a Python thread state of its own). Switching greenlets there would copy stack
slices between unrelated stacks: so a start, resume or pause of this executor
inside an OpenSSL job running on this thread is refused (``start_job`` raises
``JobStateError``, ``pause_job()`` returns at once, as in any other backend's
job). The openssl backend is asked only when it is loaded.

Memory. A switch saves the slice of the C stack the job (or its caller) was
using to the heap, and greenlet cannot fail a switch cleanly: when that
allocation fails, it aborts the process. So a new fibre is made only while the
address space has ``HEADROOM`` bytes to spare (one anonymous mapping, made and
dropped); without them the pool cannot grow and ``start_job`` returns
``NO_JOBS``, as C does when it cannot allocate a job, well before a switch could
run out. (A job that itself exhausts memory and then pauses can still hit it;
the ``threads`` engine has no such limit.)

What differs from worker threads (listed in the contract): the job's
``threading.get_ident()`` is the caller's; ``threading.local`` values are the
calling thread's (a job shares them with its caller and the thread's other
jobs); a job's recursion depth continues its caller's; Ctrl-C while job code
runs is raised inside the job; job code must not switch greenlets itself (its
own ``greenlet`` use, gevent), which would leave the job from under the backend.
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Set, Tuple

import greenlet as _greenlet_module
from greenlet import getcurrent, greenlet

from .._constants import Status
from ._python_executors import Executor, FibreStartError

if TYPE_CHECKING:
    from ._base import JobRecord

__all__ = ["GreenletExecutor", "GreenletFibre", "unusable_reason"]

_PAUSE = Status.PAUSE
_FINISH = Status.FINISH
#: address space a new fibre needs to find free (see the module docstring)
HEADROOM = 8 << 20
_MAP_FLAGS = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)


def _has_headroom() -> bool:
    """Whether ``HEADROOM`` bytes of address space can still be mapped (and are given back)."""
    try:
        probe = mmap.mmap(-1, HEADROOM, flags=_MAP_FLAGS) if _MAP_FLAGS else mmap.mmap(-1, HEADROOM)
    except (OSError, MemoryError, ValueError):
        return False
    probe.close()
    return True


def unusable_reason() -> Optional[str]:
    """Why greenlets cannot run jobs here (None: they can): too old, or a switch fails."""
    version = getattr(_greenlet_module, "__version__", "0")
    try:
        major = int(version.split(".")[0])
    except ValueError:
        major = 0
    if major < 1:
        return f"greenlet {version} is too old (1.0 or later is needed)"
    try:
        seen: List[int] = []
        probe = greenlet(lambda: seen.append(1))
        probe.switch()
    except BaseException as exc:  # noqa: BLE001 - any failure means: do not use it
        return f"greenlet {version} cannot switch here ({type(exc).__name__}: {exc})"
    if seen != [1]:  # pragma: no cover - a broken build
        return f"greenlet {version} cannot switch here"
    return None


def _exit_forked_child() -> None:
    """End a process forked inside a job once the job's function has returned.

    The child's caller frames are a copy of the parent's, in the middle of its
    ``start_job()``: carrying on there would run the parent's program twice. The
    other engines end such a child the same way (``_native._runner``; the worker
    thread is the child's only thread).
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(0)


class _JobGreenlet(greenlet):  # type: ignore[misc]  # (greenlet's stubs are partial)
    """A job's greenlet: knows its fibre, which is how the running job is found."""

    __slots__ = ("fibre",)


class GreenletFibre:
    """One pooled job slot: a fresh greenlet per job, on the driving thread."""

    __slots__ = ("_executor", "caller", "detached", "glet", "ident", "interrupt", "orphaned", "owner", "record")

    def __init__(self, owner: Any, executor: GreenletExecutor) -> None:
        self.owner = owner
        #: greenlets run on the thread that made them: the driving thread
        self.ident = threading.get_ident()
        self._executor = executor
        #: the job this fibre runs, until it ended
        self.record: Optional[JobRecord] = None
        #: the job's greenlet while it has one (made at the start, dropped at the end)
        self.glet: Optional[_JobGreenlet] = None
        #: the greenlet that resumed the job last: where a pause goes back to
        self.caller: Any = None
        #: never set here: an interrupt on the driver's side is raised where it lands
        self.interrupt: Optional[BaseException] = None
        #: never set here: Ctrl-C reaches job code itself, no job needs detaching
        self.detached = False
        #: no driver will resume this fibre's job (a fork inside the job, in the child)
        self.orphaned = False

    # -- driving side ------------------------------------------------------------

    def run(self, record: JobRecord) -> bool:
        """Start ``record``'s job in a new greenlet; True when it finished, False when it paused."""
        func, args = record.func, record.args
        glet = _JobGreenlet(record.context.run)  # type: ignore[union-attr]  # (set until the job ends)
        glet.fibre = self
        self.record = record
        self.glet = glet
        self._executor.active.add(self)
        record.func = record.args = None  # the job owns them now (see where())
        return self._switch(glet, func, args)

    def resume(self) -> bool:
        """Switch into the paused job; True when it finished, False when it paused again."""
        glet = self.glet
        assert glet is not None  # (the backend resumes paused jobs only)
        return self._switch(glet)

    def _switch(self, glet: _JobGreenlet, *args: Any) -> bool:
        caller = getcurrent()
        if glet.parent is not caller:  # resumed from another greenlet: the job's end goes there
            glet.parent = caller
        self.caller = caller
        # Never switch greenlets while a C job runs on this thread: its thread state
        # is bound, and greenlet would move this job's frames onto it (3.9, seen: a
        # signal handler landing at the very start or end of an openssl job, before
        # or after its context holds its record, so that start_job's fast path could
        # not tell). Checked at every switch, whatever path led here.
        self._executor.refuse_in_foreign_job()
        try:
            value = glet.switch(*args)
        except BaseException as exc:
            if not glet.dead:  # raised on our side (a signal handler): where() tells the rest
                raise
            if self.orphaned:
                _exit_forked_child()
            # Out of the dead greenlet: the job's own exception, or a handler's raised
            # in its frames. (One raised here just after a clean end is taken for the
            # job's too: start_job raises it either way, and the value is lost.)
            self._ended(glet).exception = exc
            return True
        if glet.dead:
            if self.orphaned:
                _exit_forked_child()
            self._ended(glet).value = value
            return True
        return False

    def _ended(self, glet: _JobGreenlet) -> JobRecord:
        record = self.record
        assert record is not None
        self.glet = self.record = self.caller = None
        self._executor.active.discard(self)
        record.context = None  # (it holds the record: no cycle left once the job ended)
        return record

    def where(self, record: JobRecord) -> Optional[Status]:
        """Where ``record``'s job is after a drive was cut short (the greenlet's state)."""
        glet = self.glet
        if glet is not None and self.record is record:
            if glet.dead:
                self._ended(glet)
                return _FINISH
            if glet:  # started and alive: paused at a switch
                return _PAUSE
            self._ended(glet)  # made, never switched into: it never began
            return None
        return _FINISH if record.func is None else None

    @property
    def reusable(self) -> bool:
        return True

    def stop(self) -> None:
        """Nothing to free: an idle fibre holds no greenlet."""

    def join(self, timeout: float = 5.0) -> None:
        """Nothing to wait for."""

    # -- job side ------------------------------------------------------------------

    def pause(self) -> None:
        """Inside the job: switch back to the greenlet that resumed it; return when resumed."""
        self.caller.switch()

    def is_current(self) -> bool:
        """Whether the calling code runs in this fibre's greenlet. (The backend asks the
        executor's ``current()`` first, which also rules out another backend's job.)"""
        return getcurrent() is self.glet

    def __repr__(self) -> str:
        state = "idle" if self.glet is None else ("paused" if self.glet else "new")
        return f"<pyossl_async python greenlet fibre {state}>"


class GreenletExecutor(Executor):
    """The ``"greenlet"`` executor: fibres are greenlets on the driving thread."""

    name = "greenlet"
    description = "greenlets on the driving thread (switch)"
    switches_stacks = True
    #: a job runs on its caller's thread, with that thread's threading.local values
    threading_local_isolation = False

    def __init__(self) -> None:
        #: fibres whose job has a greenlet: started and not ended
        self.active: Set[GreenletFibre] = set()
        #: the other backends' "is one of your jobs running on this thread?" checks
        self._probes: Tuple[Callable[[], bool], ...] = ()
        self._probed_backends = -1
        from ._base import LOADED_BACKENDS

        #: the loaded backends (only ever added to): probes follow it
        self._loaded = LOADED_BACKENDS

    def new_fibre(self, owner: Any, name: str) -> GreenletFibre:
        if not _has_headroom():
            raise FibreStartError(f"less than {HEADROOM >> 20} MiB of address space left for another job")
        return GreenletFibre(owner, self)

    def current(self) -> Optional[GreenletFibre]:
        glet = getcurrent()
        if type(glet) is not _JobGreenlet:
            return None
        fibre: GreenletFibre = glet.fibre
        if fibre.orphaned or fibre.glet is not glet or self.in_foreign_job():
            return None
        return fibre

    # -- other backends' jobs -----------------------------------------------------------

    def in_foreign_job(self) -> bool:
        if self._probed_backends != len(self._loaded):
            self._refresh_probes()
        for probe in self._probes:
            if probe():
                return True
        return False

    def refuse_in_foreign_job(self) -> None:
        if self.in_foreign_job():
            from .._errors import JobStateError

            raise JobStateError(
                "a python-backend job cannot be started, resumed or closed inside an openssl job "
                "on the greenlet engine (it would switch stacks under OpenSSL's fibre)"
            )

    def _refresh_probes(self) -> None:
        backends = list(self._loaded.values())
        probes = []
        for backend in backends:
            if getattr(backend, "_executor", None) is self:
                continue
            probe = getattr(backend, "_engine_in_foreign_job", None)
            if probe is not None:
                probes.append(probe)
        self._probes = tuple(probes)
        self._probed_backends = len(backends)

    def after_fork_in_child(self) -> None:
        """A job that forked continues in the child without a driver: its pauses are no-ops."""
        glet = getcurrent()
        if type(glet) is _JobGreenlet:
            glet.fibre.orphaned = True
        self.active = set()

    def live_fibres(self) -> int:
        return len(self.active)
