"""TLS connections whose private-key operations run in Python, inside libssl's own jobs.

With ``SSL_MODE_ASYNC``, libssl runs each handshake step and record inside an
``ASYNC_JOB`` of its own; a private-key operation may pause that job and the
application sees ``SSL_ERROR_WANT_ASYNC`` (here :attr:`Want.ASYNC`), waits on the
async fds or callback, and calls again. This package makes Python code that
operation, safely: every libssl call of a :class:`Connection` is bound to the
connection's own thread state, and the operation runs on a stack of ours.

* :class:`Context`, :class:`Connection` (memory BIOs or a socket), :class:`Want`;
* :class:`PrivateKey`, :class:`Certificate` (generated or PEM), and the offloaded
  keys :class:`OffloadedRSAKey`, :class:`OffloadedECKey` whose operation is a
  Python function of a :class:`KeyOperation` that may call ``pa.await_future``,
  ``pa.wait_for_fd`` or ``pa.pause_job`` to pause libssl's job;
* :mod:`pyossl_async.tls.aio`: an asyncio server and client.

See docs/tls.md.
"""

from .._libssl import TLSCallError, TLSEOFError, TLSError, TLSProtocolError
from ._binding import thread_here as _thread_here
from ._connection import Connection, Want
from ._context import VERSIONS, Context
from ._jobs import BorrowedWaitCtx, TLSJob
from ._keys import (
    RSA_NO_PADDING,
    RSA_PKCS1_OAEP_PADDING,
    RSA_PKCS1_PADDING,
    Certificate,
    KeyOperation,
    OffloadedECKey,
    OffloadedKey,
    OffloadedRSAKey,
    PrivateKey,
)
from ._support import get_support as _get_support

__all__ = [
    "RSA_NO_PADDING",
    "RSA_PKCS1_OAEP_PADDING",
    "RSA_PKCS1_PADDING",
    "VERSIONS",
    "BorrowedWaitCtx",
    "Certificate",
    "Connection",
    "Context",
    "KeyOperation",
    "OffloadedECKey",
    "OffloadedKey",
    "OffloadedRSAKey",
    "PrivateKey",
    "TLSCallError",
    "TLSEOFError",
    "TLSError",
    "TLSJob",
    "TLSProtocolError",
    "Want",
    "info",
    "register_thread",
]


def register_thread() -> None:
    """Let offloaded keys be used by libcrypto calls made on this thread outside any
    connection (raw libssl, ``EVP_PKEY_sign``...): elsewhere such an operation fails.
    Threads that make keys, contexts or connections are registered already."""
    _thread_here(_get_support())


def info() -> dict[str, object]:
    """Which libssl, libcrypto and switch the TLS layer uses, and where key operations run."""
    return dict(_get_support().info())
