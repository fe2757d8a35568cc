"""Real libcrypto work through ctypes, for the examples: SHA-256 and ECDSA P-256.

It uses the libcrypto the ``openssl`` backend loaded (same file, same library
instance: ``dlopen`` hands back the handle already open). With the ``python``
backend, or where that backend cannot load, it finds libcrypto the way the
backend would (``PYOSSL_ASYNC_LIBCRYPTO``, then the system's); only if there is
no libcrypto at all does SHA-256 fall back to ``hashlib`` (and signing is
unavailable).

Every call goes through a ``ctypes.CDLL``, which releases the GIL, so worker
threads standing in for an accelerator really compute in parallel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import os
from ctypes import POINTER, byref, c_char_p, c_int, c_size_t, c_uint, c_void_p
from typing import Callable, Optional

import pyossl_async as pa

__all__ = ["EVP", "load"]

#: a C pointer as ctypes returns a ``c_void_p`` result: an int, None for NULL
Ptr = Optional[int]


class EVP:
    """The few EVP functions the examples need, bound once."""

    # The functions bound in __init__, by result type (their argument types are
    # given to ctypes there, which converts and checks the arguments).
    OpenSSL_version: Callable[[int], bytes]
    EVP_sha256: Callable[[], Ptr]
    EVP_PKEY_CTX_new_from_name: Callable[..., Ptr]
    EVP_MD_CTX_new: Callable[[], Ptr]
    EVP_Digest: Callable[..., int]
    EVP_PKEY_keygen_init: Callable[..., int]
    EVP_PKEY_CTX_set_group_name: Callable[..., int]
    EVP_PKEY_generate: Callable[..., int]
    EVP_DigestSignInit: Callable[..., int]
    EVP_DigestSign: Callable[..., int]
    EVP_DigestVerifyInit: Callable[..., int]
    EVP_DigestVerify: Callable[..., int]
    EVP_PKEY_CTX_free: Callable[[Ptr], None]
    EVP_PKEY_free: Callable[[Ptr], None]
    EVP_MD_CTX_free: Callable[[Ptr], None]
    ERR_clear_error: Callable[[], None]

    def __init__(self, path: str) -> None:
        self.path = path
        lib = self.lib = ctypes.CDLL(path)

        def bind(name: str, restype: object, *argtypes: object) -> None:
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = list(argtypes)
            setattr(self, name, fn)

        bind("OpenSSL_version", c_char_p, c_int)
        bind("EVP_sha256", c_void_p)
        bind("EVP_Digest", c_int, c_char_p, c_size_t, c_char_p, POINTER(c_uint), c_void_p, c_void_p)
        bind("EVP_PKEY_CTX_new_from_name", c_void_p, c_void_p, c_char_p, c_char_p)
        bind("EVP_PKEY_keygen_init", c_int, c_void_p)
        bind("EVP_PKEY_CTX_set_group_name", c_int, c_void_p, c_char_p)
        bind("EVP_PKEY_generate", c_int, c_void_p, POINTER(c_void_p))
        bind("EVP_PKEY_CTX_free", None, c_void_p)
        bind("EVP_PKEY_free", None, c_void_p)
        bind("EVP_MD_CTX_new", c_void_p)
        bind("EVP_MD_CTX_free", None, c_void_p)
        bind("EVP_DigestSignInit", c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)
        bind("EVP_DigestSign", c_int, c_void_p, c_char_p, POINTER(c_size_t), c_char_p, c_size_t)
        bind("EVP_DigestVerifyInit", c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p)
        bind("EVP_DigestVerify", c_int, c_void_p, c_char_p, c_size_t, c_char_p, c_size_t)
        bind("ERR_clear_error", None)
        self.version = self.OpenSSL_version(0).decode()
        self._sha256 = self.EVP_sha256()

    def _check(self, ok: int, what: str) -> None:
        if ok != 1:
            self.ERR_clear_error()
            raise RuntimeError(f"{what} failed")

    def sha256(self, data: bytes) -> bytes:
        """``EVP_Digest(..., EVP_sha256())``."""
        out = ctypes.create_string_buffer(32)
        n = c_uint()
        self._check(self.EVP_Digest(data, len(data), out, byref(n), self._sha256, None), "EVP_Digest")
        return out.raw[: n.value]

    def ec_key(self) -> "ECKey":
        """A fresh P-256 key (``EVP_PKEY_generate``)."""
        ctx = self.EVP_PKEY_CTX_new_from_name(None, b"EC", None)
        if not ctx:
            raise RuntimeError("EVP_PKEY_CTX_new_from_name failed")
        try:
            self._check(self.EVP_PKEY_keygen_init(ctx), "EVP_PKEY_keygen_init")
            self._check(self.EVP_PKEY_CTX_set_group_name(ctx, b"P-256"), "EVP_PKEY_CTX_set_group_name")
            pkey = c_void_p()
            self._check(self.EVP_PKEY_generate(ctx, byref(pkey)), "EVP_PKEY_generate")
        finally:
            self.EVP_PKEY_CTX_free(ctx)
        return ECKey(self, pkey.value)


class ECKey:
    """An ``EVP_PKEY`` (P-256). Signing and verifying are thread-safe: each call has
    its own ``EVP_MD_CTX``."""

    def __init__(self, evp: EVP, pkey: Ptr) -> None:
        self.evp = evp
        self.pkey = pkey

    def sign(self, data: bytes) -> bytes:
        """ECDSA with SHA-256 (``EVP_DigestSign``): a DER signature."""
        evp = self.evp
        mctx = evp.EVP_MD_CTX_new()
        try:
            evp._check(evp.EVP_DigestSignInit(mctx, None, evp._sha256, None, self.pkey), "EVP_DigestSignInit")
            size = c_size_t(0)
            evp._check(evp.EVP_DigestSign(mctx, None, byref(size), data, len(data)), "EVP_DigestSign")
            sig = ctypes.create_string_buffer(size.value)
            evp._check(evp.EVP_DigestSign(mctx, sig, byref(size), data, len(data)), "EVP_DigestSign")
            return sig.raw[: size.value]
        finally:
            evp.EVP_MD_CTX_free(mctx)

    def verify(self, data: bytes, sig: bytes) -> bool:
        evp = self.evp
        mctx = evp.EVP_MD_CTX_new()
        try:
            evp._check(
                evp.EVP_DigestVerifyInit(mctx, None, evp._sha256, None, self.pkey), "EVP_DigestVerifyInit"
            )
            ok = evp.EVP_DigestVerify(mctx, sig, len(sig), data, len(data)) == 1
            if not ok:
                evp.ERR_clear_error()
            return ok
        finally:
            evp.EVP_MD_CTX_free(mctx)

    def close(self) -> None:
        if self.pkey:
            self.evp.EVP_PKEY_free(self.pkey)
            self.pkey = None


class HashlibOnly:
    """No libcrypto here: SHA-256 from hashlib, no signatures."""

    path: None = None
    version = "hashlib (no libcrypto found)"

    def sha256(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def ec_key(self) -> ECKey:
        raise RuntimeError("ECDSA needs libcrypto, and none was found")


def libcrypto_path() -> Optional[str]:
    """The libcrypto the openssl backend uses, else the one it would try first."""
    try:
        backend = pa.get_backend("openssl")
    except pa.BackendUnavailable:
        pass
    else:
        path: Optional[str] = getattr(backend, "library_path", None)  # OpenSSLBackend's
        if path is not None:
            return path
    return os.environ.get("PYOSSL_ASYNC_LIBCRYPTO") or ctypes.util.find_library("crypto")


def load() -> "EVP | HashlibOnly":
    path = libcrypto_path()
    if path:
        try:
            return EVP(path)
        except (OSError, AttributeError):
            pass
    return HashlibOnly()
