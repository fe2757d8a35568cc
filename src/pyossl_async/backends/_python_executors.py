"""What runs a ``"python"``-backend job: the *executor* seam.

An OpenSSL job is a fibre: a stack the calling thread switches onto and off
again. Pure Python has two ways to get one, and the backend (``python.py``)
works with either through the small interface below, never with the mechanism
itself:

* ``"threads"`` (``_python_workers``): each job runs on a pooled worker thread,
  and control is handed back and forth with the driving thread so that exactly
  one of the two runs. Needs nothing but the standard library; a pause and a
  resume are two thread hand-offs.
* ``"greenlet"`` (``_python_greenlets``): each job runs on the driving thread
  itself, in a greenlet of its own; a pause and a resume are two greenlet
  switches. Used when the optional ``greenlet`` package imports.

Which one runs is chosen once, when the backend loads: ``choose_executor``
takes the setting (``PYOSSL_ASYNC_PYTHON_ENGINE``, read by ``python.py``) and
says why it chose what it chose, for ``info``.

A *fibre* is one job slot of a pool (OpenSSL's ``ASYNC_JOB``): it runs one job
at a time, many jobs one after the other. The backend keeps fibres in its
per-thread pools exactly as OpenSSL keeps jobs; the executor makes them.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Dict, Optional, Protocol

from .._constants import Status

if TYPE_CHECKING:
    from ._base import JobRecord

__all__ = ["ENGINE_CHOICES", "Executor", "Fibre", "FibreStartError"]

#: the values of ``PYOSSL_ASYNC_PYTHON_ENGINE``
ENGINE_CHOICES = ("auto", "greenlet", "threads")


class FibreStartError(Exception):
    """A new fibre could not be made (the OS refused a thread, the interpreter is
    finalising, ...): ``start_job`` returns ``NO_JOBS``, as C does when it cannot
    allocate a job."""


class Fibre(Protocol):
    """One pooled job slot. The driving thread calls ``run``/``resume``; job code
    (through the backend) calls ``pause``. Attributes the backend reads:

    * ``owner``: the driving thread's records (``ThreadJobs``), given at creation;
    * ``record``: the job it runs, ``None`` when idle;
    * ``interrupt``: an exception that hit the driving thread during a switch
      and was kept until the switch completed (threads only; the backend
      re-raises it);
    * ``detached``: the driver gave up waiting for the running job (threads
      only: a second Ctrl-C while a job never pauses);
    * ``orphaned``: no driver will ever resume this fibre's job (fork, detach).
    """

    owner: Any
    #: the OS thread the job's code runs on (a worker's own, or the driver's)
    ident: int
    record: Optional[JobRecord]
    interrupt: Optional[BaseException]
    detached: bool
    orphaned: bool

    def run(self, record: JobRecord) -> bool:
        """Start ``record``'s job on this idle fibre; True when it finished, False when it paused."""

    def resume(self) -> bool:
        """Resume the paused job; True when it finished, False when it paused again."""

    def pause(self) -> None:
        """Inside the job: switch back to the driver; return when resumed."""

    def is_current(self) -> bool:
        """Whether the calling code runs on this fibre (inside its job)."""

    def where(self, record: JobRecord) -> Optional[Status]:
        """Where ``record``'s job is after a drive was cut short on the driver's side:
        ``PAUSE`` (paused inside), ``FINISH`` (ended: the fibre is idle again) or
        ``None`` (it never began: the fibre is idle and will not run it)."""

    @property
    def reusable(self) -> bool:
        """False when the fibre must not run another job (the pool replaces it)."""

    def stop(self) -> None:
        """Free an idle fibre (a worker thread ends)."""

    def join(self, timeout: float = 5.0) -> None:
        """Wait, briefly, for a stopped fibre's resources to go."""


class Executor(abc.ABC):
    """Makes fibres and says which one the calling code runs on."""

    #: ``"threads"`` or ``"greenlet"``
    name: str
    #: whether a job switch moves frames between stacks of the calling thread (greenlets):
    #: such an engine must never switch while a C job's thread state is bound here
    switches_stacks = False
    #: for ``info``: how a job runs
    description: str
    #: whether ``threading.local`` values set in one job are hidden from the next
    threading_local_isolation: bool

    @abc.abstractmethod
    def new_fibre(self, owner: Any, name: str) -> Fibre:
        """A new idle fibre for the driving thread ``owner``; ``FibreStartError`` if none can be made."""

    @abc.abstractmethod
    def current(self) -> Optional[Fibre]:
        """The fibre whose job the calling code runs in: ``None`` on a driver's side of a
        switch (signal handlers and finalisers that run there included), inside another
        backend's job, and in a job no driver will resume (orphaned)."""

    def in_foreign_job(self) -> bool:
        """Whether another backend's job runs on this thread, where this executor must not
        start or switch to a job of its own (see the greenlet executor)."""
        return False

    def after_fork_in_child(self) -> None:
        """In a child process right after ``fork()``: forget the parent's fibres."""

    @abc.abstractmethod
    def live_fibres(self) -> int:
        """How many fibres hold a resource now (worker threads, greenlets)."""

    def info(self) -> Dict[str, Any]:
        return {"engine": self.name, "engine_detail": self.description}
