"""Exceptions of the TLS layer, and how a failed libssl or libcrypto call becomes one.

Kept in the raw layer so that the prototype table's errchecks can raise them;
``pyossl_async.tls`` re-exports them. Every one carries the drained error queue
(``errors``, oldest first), as ``AsyncError`` does.
"""

from __future__ import annotations

from typing import Iterable

from .._errors import AsyncError, ErrorEntry

__all__ = ["TLSCallError", "TLSEOFError", "TLSError", "TLSProtocolError", "TLSSyscallError"]


class TLSError(AsyncError):
    """A TLS operation failed; ``errors`` holds libssl's and libcrypto's error queue."""


class TLSCallError(TLSError):
    """A libssl or libcrypto call of the TLS layer reported failure (NULL, 0 or a negative
    result where its manual page says that means failure); ``function`` names it."""

    def __init__(self, function: str, errors: Iterable[ErrorEntry] = (), detail: str = "") -> None:
        super().__init__(f"{function} failed{': ' + detail if detail else ''}", errors)
        self.function = function


class TLSProtocolError(TLSError):
    """``SSL_ERROR_SSL``: the handshake or a record failed (a bad peer, a refused
    certificate, a failed private-key operation); the connection is unusable."""


class TLSEOFError(TLSProtocolError):
    """The peer closed the transport without a TLS ``close_notify`` in the middle of
    a handshake or record (``SSL_ERROR_SYSCALL`` with no errno, or "unexpected eof")."""


class TLSSyscallError(TLSError):
    """``SSL_ERROR_SYSCALL`` with an ``errno``: the socket below the connection failed
    (``errno`` says how)."""

    def __init__(self, message: str, errno: int, errors: Iterable[ErrorEntry] = ()) -> None:
        super().__init__(message, errors)
        self.errno = errno
