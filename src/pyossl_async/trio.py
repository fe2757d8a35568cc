"""Jobs in trio: ``await pyossl_async.trio.run_job(func, args)``.

See :mod:`pyossl_async.drive._trio` for how waits, cancellation and timeouts
work. Needs trio (``pip install trio``, or the ``trio`` extra); importing this
module without it raises ``ImportError`` saying so.
"""

from __future__ import annotations

try:
    import trio as _trio  # noqa: F401  (the library itself, not this module)
except ImportError as exc:  # pragma: no cover - trio is installed wherever the tests run
    raise ImportError(
        "pyossl_async.trio needs trio, which is not installed: pip install 'pyossl-async[trio]' (or pip install trio)"
    ) from exc

from .drive._trio import run_job

__all__ = ["run_job"]
