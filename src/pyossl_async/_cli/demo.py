"""The man page's example (``ASYNC_start_job(3)``), line for line through this API.

A job creates a pipe, registers its read end as a wait fd (with a cleanup that
closes both ends), makes it readable and pauses; the caller waits on the fd with
``select`` and resumes the job, which drains the pipe and finishes with 1.
"""

from __future__ import annotations

import os
import select
from typing import Any, Callable, Optional

from .. import _registry
from .._constants import Status
from .._protocol import Backend

__all__ = ["EXPECTED_OUTPUT", "run_demo"]

EXPECTED_OUTPUT = (
    "Starting...\n"
    "Executing within a job\n"
    "Passed in message is: Hello world!\n"
    "Job was paused\n"
    "Waiting for the job to be woken up\n"
    "Resumed the job after a pause\n"
    "Job finished with return value 1\n"
    "Finishing\n"
)

#: the C example's ``static int unique``: any hashable object works as a key
UNIQUE = object()


def run_demo(backend: Optional[Backend] = None, write: Callable[[str], Any] = print) -> int:
    """Run the example on ``backend``; returns 0 like the C ``main``."""
    be = backend if backend is not None else _registry.get_backend()

    def cleanup(ctx: Any, key: Any, r: int, w: int) -> None:
        os.close(r)
        os.close(w)

    def jobfunc(arg: bytes) -> int:
        currjob = be.get_current_job()
        if currjob is not None:
            write("Executing within a job")
        else:
            write("Not executing within a job - should not happen")
            return 0
        msg = arg.split(b"\0", 1)[0].decode()  # C prints it with %s
        write(f"Passed in message is: {msg}")
        r, w = os.pipe()
        wait_ctx = be.get_wait_ctx(currjob)
        assert wait_ctx is not None  # started with one below
        wait_ctx.set_wait_fd(UNIQUE, r, w, cleanup)
        # Normally an external event would make the fd readable some time later;
        # for the demonstration, signal readiness before pausing.
        os.write(w, b"X")
        be.pause_job()
        os.read(r, 1)  # drain the wake-up signal
        write("Resumed the job after a pause")
        return 1

    write("Starting...")
    ctx = be.WaitCtx()
    job = None
    msg = b"Hello world!\0"
    try:
        while True:
            status, job, ret = be.start_job(job, ctx, jobfunc, msg)
            if status in (Status.ERR, Status.NO_JOBS):
                write("An error occurred")
                break
            if status == Status.PAUSE:
                write("Job was paused")
            else:
                write(f"Job finished with return value {ret}")
                break
            write("Waiting for the job to be woken up")
            fds = ctx.get_all_fds()
            if len(fds) != 1:
                write("Unexpected number of fds")
                raise SystemExit(134)
            select.select([fds[0]], [], [])
    finally:
        if job is not None:
            job.close()
        ctx.close()
    write("Finishing")
    return 0
