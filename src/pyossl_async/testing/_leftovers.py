"""What a test left behind: paused jobs, open wait contexts, libcrypto errors.

The checks a test suite runs after every test (the pytest plugin does), with
public functions instead of a backend's private attributes:

* :func:`paused_jobs`: the calling thread's paused jobs of a backend;
* :func:`open_contexts`: the backend's ``WaitCtx`` objects not yet closed;
* :func:`drain_error_queue`: entries on libcrypto's error queue of this thread;
* :func:`clean_up`: close and drain what was left since a :func:`snapshot`, and
  say what that was.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, FrozenSet, List, Tuple

from .._errors import ErrorEntry
from .._protocol import BackendArg, Job, WaitCtx
from .._registry import resolve_backend

__all__ = ["Leftovers", "Snapshot", "clean_up", "drain_error_queue", "open_contexts", "paused_jobs", "snapshot"]


def _be(backend: BackendArg) -> Any:
    return resolve_backend(backend)


def paused_jobs(backend: BackendArg = None) -> List[Job]:
    """The calling thread's paused jobs on ``backend`` (default: ``get_backend()``),
    oldest first. A job whose every handle is gone is not listed (it is being
    unwound, or will be at the thread's next library call)."""
    out: List[Job] = []
    for record in _be(backend)._paused_records():
        handle = record.handle or (record.handle_ref() if record.handle_ref is not None else None)
        if handle is not None:
            out.append(handle)
    return out


def open_contexts(backend: BackendArg = None) -> List[WaitCtx]:
    """Every ``WaitCtx`` of ``backend`` that is still open (any thread created it),
    except those that only jobs orphaned by an exited thread use: nothing can ever
    close those (the jobs cannot be resumed), as in C."""
    return [ctx for ctx in list(_be(backend)._open_ctxs) if not ctx.closed and not _orphans_only(ctx)]


def _orphans_only(ctx: Any) -> bool:
    users = list(getattr(ctx, "_users", ()))
    return bool(users) and all(r.orphaned for r in users)


def drain_error_queue(backend: BackendArg = None) -> Tuple[ErrorEntry, ...]:
    """Take the entries off libcrypto's error queue of this thread (empty for ``"python"``)."""
    crypto = getattr(_be(backend), "crypto", None)
    if crypto is None:
        return ()
    from .._libcrypto import drain_errors

    return drain_errors(crypto)


@dataclass(frozen=True)
class Snapshot:
    """The contexts open at one moment, so that a later check only counts new ones."""

    backend: Any
    contexts: FrozenSet[int]


def snapshot(backend: BackendArg = None) -> Snapshot:
    """What is open now (taken before a test; see :func:`clean_up`)."""
    be = _be(backend)
    return Snapshot(be, frozenset(id(c) for c in open_contexts(be)))


@dataclass
class Leftovers:
    """What :func:`clean_up` found (and closed). False when nothing was left."""

    backend_name: str
    paused_jobs: int = 0
    open_contexts: int = 0
    errors: Tuple[ErrorEntry, ...] = ()
    #: what closing them raised, if anything did
    problems: List[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.paused_jobs or self.open_contexts or self.errors or self.problems)

    def __str__(self) -> str:
        parts = []
        if self.paused_jobs:
            parts.append(f"{self.paused_jobs} paused job(s)")
        if self.open_contexts:
            parts.append(f"{self.open_contexts} open WaitCtx(s)")
        if self.errors:
            parts.append("libcrypto errors on the queue: " + "; ".join(e.text for e in self.errors))
        parts += self.problems
        return f"left behind on the {self.backend_name} backend: " + ", ".join(parts) if parts else "nothing left"


def clean_up(before: Snapshot, *, close_timeout: float = 5.0) -> Leftovers:
    """Close the calling thread's paused jobs and the contexts opened since ``before``,
    drain libcrypto's error queue, and report what there was to clean up."""
    be = before.backend
    found = Leftovers(be.name)
    jobs = paused_jobs(be)
    if jobs:
        gc.collect()  # a dropped job is unwound by its finaliser: not a leftover
        jobs = paused_jobs(be)
    found.paused_jobs = len(jobs)
    for job in jobs:
        try:
            job.close(timeout=close_timeout)
        except BaseException as exc:  # noqa: BLE001 - reported, the rest is still closed
            found.problems.append(f"closing a paused job raised {exc!r}")
    del jobs
    new = [c for c in open_contexts(be) if id(c) not in before.contexts]
    if new:
        del new
        gc.collect()  # an unreferenced context is closed by its finaliser
        new = [c for c in open_contexts(be) if id(c) not in before.contexts]
    found.open_contexts = len(new)
    for ctx in new:
        try:
            ctx.close()
        except BaseException as exc:  # noqa: BLE001
            found.problems.append(f"closing a WaitCtx raised {exc!r}")
    found.errors = drain_error_queue(be)
    return found
