"""Jobs in asyncio: ``await pyossl_async.aio.run_job(func, args)``.

See :mod:`pyossl_async.drive._aio` for how waits, fairness, cancellation,
timeouts and the job limit work. Works on any asyncio event loop, uvloop's
included (not a dependency).
"""

from __future__ import annotations

from .drive._aio import SLICE_SECONDS, JobTimeoutError, await_coroutine, get_job_limit, run_job, set_job_limit

__all__ = ["SLICE_SECONDS", "JobTimeoutError", "await_coroutine", "get_job_limit", "run_job", "set_job_limit"]
