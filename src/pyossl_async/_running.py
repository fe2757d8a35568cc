"""Which job is running here: found from the job's own context, whatever backend runs it.

Every job runs its function inside a context of its own (a copy of its starter's,
``contextvars``), in which :data:`RUNNING_JOB` is its record. So code running
inside a job, at any depth, finds its job with one ``ContextVar.get()``; code on
the caller's side of a ``start_job()`` (a signal handler or a finaliser that runs
while the job is being switched into) runs in the caller's context and finds
nothing.

A context can be copied on purpose (``copy_context().run`` on another thread,
a task created inside the job that outlives it), so the record found is only
trusted while its job is running on the calling OS thread (``runs_on``); the
module functions of :mod:`pyossl_async` and the backends' own methods both ask
:func:`running_record`. This module imports nothing of the package: every layer
may use it.

A record is any object with three attributes: ``state`` (``"running"`` while its
job's code runs), ``runs_on`` (the OS thread it runs on) and ``backend``, which
provides ``pause_job()``, ``get_current_job()``, ``get_wait_ctx(job)``,
``block_pause()``, ``unblock_pause()``, ``pause_blocked()`` and ``start_job()``
(refusing, inside a job). The backends' ``JobRecord`` is one; libssl's own jobs
have another (``pyossl_async.tls._jobs.LibsslJobRecord``), so that ``pa.pause_job``
and the engine helpers pause libssl's job inside a TLS key operation.
"""

from __future__ import annotations

import contextvars
import threading
from typing import Any, Optional

__all__ = ["RUNNING_JOB", "running_record"]

#: the record of the job whose context this is (set once, at the job's entry)
RUNNING_JOB: contextvars.ContextVar[Any] = contextvars.ContextVar("pyossl_async_running_job", default=None)

_get = RUNNING_JOB.get
_get_ident = threading.get_ident


def running_record() -> Optional[Any]:
    """The record of the job running the calling code, or None (outside any job)."""
    record = _get()
    if record is not None and record.state == "running" and record.runs_on == _get_ident():
        return record
    return None
