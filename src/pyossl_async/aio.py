"""Jobs in asyncio: ``await pyossl_async.aio.run_job(func, args)``.

See :mod:`pyossl_async.drive._aio` for how waits, fairness and cancellation work.
Works on any asyncio event loop, uvloop's included (not a dependency).
"""

from __future__ import annotations

from .drive._aio import run_job

__all__ = ["run_job"]
