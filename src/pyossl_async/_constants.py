"""The C constants of OpenSSL's ASYNC API, as Python enums.

Values are fixed by ``<openssl/async.h>`` and identical in every OpenSSL version
that has the API, so both backends share them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["C_INT_MAX", "C_INT_MIN", "SIZE_MAX", "Status", "WaitStatus"]


class Status(IntEnum):
    """Return values of ``ASYNC_start_job`` (``ASYNC_ERR`` ... ``ASYNC_FINISH``)."""

    ERR = 0
    NO_JOBS = 1
    PAUSE = 2
    FINISH = 3


class WaitStatus(IntEnum):
    """Wait-context callback statuses (``ASYNC_STATUS_*``)."""

    UNSUPPORTED = 0
    ERR = 1
    OK = 2
    EAGAIN = 3


C_INT_MIN = -(2**31)
C_INT_MAX = 2**31 - 1
SIZE_MAX = 2**64 - 1
