"""``Context``: an ``SSL_CTX`` with its certificate, its key (maybe offloaded) and its settings."""

from __future__ import annotations

import weakref
from typing import List, Optional, Union

from ._binding import thread_here
from ._keys import Certificate, OffloadedKey, OffloadedRSAKey, PrivateKey
from ._support import TLSSupport, get_support

__all__ = ["VERSIONS", "Context"]

SSL_CTRL_MODE = 33
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
SSL_MODE_ENABLE_PARTIAL_WRITE = 0x1
SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER = 0x2
SSL_MODE_ASYNC = 0x100
SSL_OP_IGNORE_UNEXPECTED_EOF = 1 << 7
SSL_VERIFY_NONE = 0
SSL_VERIFY_PEER = 1

#: protocol names accepted by ``minimum_version``/``maximum_version``
VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def _version(name: Optional[str], what: str) -> int:
    if name is None:
        return 0
    try:
        return VERSIONS[name]
    except KeyError:
        raise ValueError(f"{what} must be one of {', '.join(VERSIONS)} or None, not {name!r}") from None


class Context:
    """TLS settings shared by connections (``SSL_CTX``).

    ``server_side``: the role of its connections. ``async_mode`` (default True):
    ``SSL_MODE_ASYNC``, so that handshakes and records run in libssl's jobs and a
    private-key operation may pause them (``Want.ASYNC``). ``minimum_version`` and
    ``maximum_version``: ``"TLSv1.2"``/``"TLSv1.3"``. A client verifies its peer
    only when ``cafile`` is given (``verify`` then defaults to True).
    """

    def __init__(
        self,
        server_side: bool,
        *,
        async_mode: bool = True,
        minimum_version: Optional[str] = "TLSv1.2",
        maximum_version: Optional[str] = None,
        cafile: Optional[str] = None,
        verify: Optional[bool] = None,
    ) -> None:
        self._support: TLSSupport = get_support()
        thread_here(self._support)
        lib = self._support.lib
        self.server_side = bool(server_side)
        method = lib.TLS_server_method() if self.server_side else lib.TLS_client_method()
        self._ctx: int = lib.SSL_CTX_new(method)
        self._finalizer = weakref.finalize(self, lib.SSL_CTX_free, self._ctx)
        #: offloaded keys in use: each connection gets a way for their operations into Python
        self.offloaded: List[OffloadedKey] = []
        self._keep: List[object] = []  # certificates and keys C refers to
        self.async_mode = bool(async_mode)
        mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
        if self.async_mode:
            mode |= SSL_MODE_ASYNC
        lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_MODE, mode, None)
        # a peer that closes without close_notify ends the stream (EOF), as a socket would
        lib.SSL_CTX_set_options(self._ctx, SSL_OP_IGNORE_UNEXPECTED_EOF)
        self.set_versions(minimum_version, maximum_version)
        if cafile is not None:
            lib.SSL_CTX_load_verify_locations(self._ctx, cafile.encode(), None)
        self.verify = bool(cafile is not None if verify is None else verify)
        lib.SSL_CTX_set_verify(self._ctx, SSL_VERIFY_PEER if self.verify else SSL_VERIFY_NONE, None)
        self._ciphers_set = False

    @property
    def address(self) -> int:
        """The ``SSL_CTX *`` (for C code of your own)."""
        return self._ctx

    def set_versions(self, minimum: Optional[str], maximum: Optional[str]) -> None:
        lib = self._support.lib
        lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, _version(minimum, "minimum_version"), None)
        lib.SSL_CTX_ctrl(self._ctx, SSL_CTRL_SET_MAX_PROTO_VERSION, _version(maximum, "maximum_version"), None)

    def set_ciphers(self, ciphers: str) -> None:
        """The TLS 1.2 cipher list (``SSL_CTX_set_cipher_list``)."""
        self._support.lib.SSL_CTX_set_cipher_list(self._ctx, ciphers.encode("ascii"))
        self._ciphers_set = True

    def set_ciphersuites(self, suites: str) -> None:
        """The TLS 1.3 cipher suites (``SSL_CTX_set_ciphersuites``)."""
        self._support.lib.SSL_CTX_set_ciphersuites(self._ctx, suites.encode("ascii"))

    def use_certificate(self, certificate: Certificate) -> None:
        self._support.lib.SSL_CTX_use_certificate(self._ctx, certificate.x509)
        self._keep.append(certificate)

    def use_private_key(self, key: Union[PrivateKey, OffloadedKey]) -> None:
        """The key for the certificate: a plain key (operations in libcrypto) or an
        offloaded one (operations in Python). With an offloaded RSA key a server leaves
        out the RSA key exchange (``!kRSA``), which libssl 3.x cannot run through a key
        method; clients then use ECDHE, as they prefer anyway."""
        lib = self._support.lib
        if isinstance(key, OffloadedKey):
            lib.SSL_CTX_use_PrivateKey(self._ctx, key.pkey)
            self.offloaded.append(key)
            if isinstance(key, OffloadedRSAKey) and self.server_side and not self._ciphers_set:
                lib.SSL_CTX_set_cipher_list(self._ctx, b"DEFAULT:!kRSA")
        elif isinstance(key, PrivateKey):
            lib.SSL_CTX_use_PrivateKey(self._ctx, key.pkey)
        else:
            raise TypeError(f"key must be a PrivateKey or an OffloadedKey, not {type(key).__name__}")
        self._keep.append(key)
        lib.SSL_CTX_check_private_key(self._ctx)

    def __repr__(self) -> str:
        role = "server" if self.server_side else "client"
        return f"<tls.Context {role}{' async' if self.async_mode else ''}, {len(self.offloaded)} offloaded key(s)>"
