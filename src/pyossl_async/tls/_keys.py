"""Keys and certificates (libcrypto through ctypes), and private keys whose operations
run in Python.

``PrivateKey`` and ``Certificate`` own an ``EVP_PKEY``/``X509``: generated (a
throwaway RSA or EC key and a self-signed certificate, no ``cryptography``
package needed), or read from PEM. ``OffloadedRSAKey`` and ``OffloadedECKey``
wrap one so that libcrypto hands every private-key operation to a Python
function: the key is a copy whose ``RSA_METHOD`` (``RSA_meth_dup`` of the
default, with ``priv_enc``/``priv_dec`` replaced) or ``EC_KEY_METHOD`` (``sign``
replaced) calls the C callbacks of ``_keyops``. OpenSSL 3.x treats such a key as
"foreign" and uses it through its legacy code, which is why TLS signatures
(RSA-PSS for TLS 1.3, PKCS#1 v1.5 or PSS for 1.2, ECDSA) reach it, while libssl's
TLS 1.2 RSA key exchange (``RSA_PKCS1_WITH_TLS_PADDING``) does not: that needs a
provider (the long-term route, see docs/tls.md).
"""

from __future__ import annotations

import _thread
import contextvars
import ctypes
import functools
import threading
import weakref
from ctypes import byref, c_uint, c_void_p
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from .._libssl import TLSCallError
from . import _binding
from ._binding import thread_here
from ._keyops import ARGS_EC, ARGS_RSA, KIND, KIND_EC_SIGN, KIND_RSA_DECRYPT, KIND_RSA_SIGN, Entry, callbacks
from ._support import TLSSupport, get_support

if TYPE_CHECKING:
    from .._libssl import LibSSL

__all__ = [
    "RSA_NO_PADDING",
    "RSA_PKCS1_OAEP_PADDING",
    "RSA_PKCS1_PADDING",
    "Certificate",
    "KeyOperation",
    "OffloadedECKey",
    "OffloadedKey",
    "OffloadedRSAKey",
    "PrivateKey",
    "perform",
    "run_unbound",
    "unbound_failed",
]

RSA_PKCS1_PADDING = 1
RSA_NO_PADDING = 3
RSA_PKCS1_OAEP_PADDING = 4
EVP_PKEY_RSA = 6
EVP_PKEY_EC = 408
MBSTRING_ASC = 0x1001
NID_subject_alt_name = 85
BIO_CTRL_PENDING = 10

_KIND_NAMES = {KIND_RSA_SIGN: "rsa_sign", KIND_RSA_DECRYPT: "rsa_decrypt", KIND_EC_SIGN: "ecdsa_sign"}


def _bio_bytes(lib: LibSSL, bio: int) -> bytes:
    n = int(lib.BIO_ctrl(bio, BIO_CTRL_PENDING, 0, None))
    buf = ctypes.create_string_buffer(max(n, 1))
    got = lib.BIO_read(bio, buf, n) if n else 0
    return buf.raw[: max(got, 0)]


def _read_pem(lib: LibSSL, text: Union[bytes, str], reader: Callable[..., int]) -> int:
    data = text.encode("ascii") if isinstance(text, str) else bytes(text)
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    bio = lib.BIO_new_mem_buf(buf, len(data))
    try:
        return int(reader(bio, None, None, None))
    finally:
        lib.BIO_free(bio)


class PrivateKey:
    """An ``EVP_PKEY`` of ours: RSA or EC, generated or read from PEM."""

    def __init__(self, pkey: int, support: Optional[TLSSupport] = None) -> None:
        """Takes ownership of one reference to ``pkey``."""
        self._support = support or get_support()
        self.pkey = pkey
        lib = self._support.lib
        self._finalizer = weakref.finalize(self, lib.EVP_PKEY_free, pkey)
        self.type_id = int(lib.EVP_PKEY_get_base_id(pkey))
        self.bits = int(lib.EVP_PKEY_get_bits(pkey))

    @property
    def kind(self) -> str:
        """``"RSA"``, ``"EC"``, or ``"type <n>"``."""
        return {EVP_PKEY_RSA: "RSA", EVP_PKEY_EC: "EC"}.get(self.type_id, f"type {self.type_id}")

    @classmethod
    def generate_rsa(cls, bits: int = 2048) -> PrivateKey:
        """A new RSA key (``EVP_PKEY_generate``; releases the GIL)."""
        if isinstance(bits, bool) or not isinstance(bits, int) or not 1024 <= bits <= 16384:
            raise ValueError(f"bits must be an int from 1024 to 16384, not {bits!r}")
        support = get_support()
        lib = support.lib
        kctx = lib.EVP_PKEY_CTX_new_from_name(None, b"RSA", None)
        try:
            lib.EVP_PKEY_keygen_init(kctx)
            lib.EVP_PKEY_CTX_set_rsa_keygen_bits(kctx, bits)
            out = c_void_p()
            lib.EVP_PKEY_generate(kctx, byref(out))
        finally:
            lib.EVP_PKEY_CTX_free(kctx)
        return cls(out.value or 0, support)

    @classmethod
    def generate_ec(cls, curve: str = "P-256") -> PrivateKey:
        """A new EC key on ``curve`` (an OpenSSL group name)."""
        support = get_support()
        lib = support.lib
        kctx = lib.EVP_PKEY_CTX_new_from_name(None, b"EC", None)
        try:
            lib.EVP_PKEY_keygen_init(kctx)
            lib.EVP_PKEY_CTX_set_group_name(kctx, curve.encode("ascii"))
            out = c_void_p()
            lib.EVP_PKEY_generate(kctx, byref(out))
        finally:
            lib.EVP_PKEY_CTX_free(kctx)
        return cls(out.value or 0, support)

    @classmethod
    def from_pem(cls, data: Union[bytes, str]) -> PrivateKey:
        """An unencrypted private key in PEM (PKCS#8 or traditional)."""
        support = get_support()
        return cls(_read_pem(support.lib, data, support.lib.PEM_read_bio_PrivateKey), support)

    @classmethod
    def from_file(cls, path: str) -> PrivateKey:
        with open(path, "rb") as f:
            return cls.from_pem(f.read())

    def to_pem(self) -> bytes:
        """The key in unencrypted PKCS#8 PEM."""
        lib = self._support.lib
        bio = lib.BIO_new(lib.BIO_s_mem())
        try:
            lib.PEM_write_bio_PrivateKey(bio, self.pkey, None, None, 0, None, None)
            return _bio_bytes(lib, bio)
        finally:
            lib.BIO_free(bio)

    def __repr__(self) -> str:
        return f"<PrivateKey {self.kind} {self.bits} bits>"


class Certificate:
    """An ``X509`` of ours: read from PEM, or self-signed for a throwaway server."""

    def __init__(self, x509: int, support: Optional[TLSSupport] = None) -> None:
        self._support = support or get_support()
        self.x509 = x509
        self._finalizer = weakref.finalize(self, self._support.lib.X509_free, x509)

    @classmethod
    def self_signed(
        cls,
        key: PrivateKey,
        common_name: str = "localhost",
        *,
        days: int = 30,
        alt_names: Sequence[str] = ("DNS:localhost", "IP:127.0.0.1"),
    ) -> Certificate:
        """A v3 certificate for ``key``, signed by itself (SHA-256), valid from now for ``days``,
        with ``common_name`` and the subjectAltName entries ``alt_names`` (OpenSSL syntax)."""
        support = get_support()
        lib = support.lib
        x509 = lib.X509_new()
        cert = cls(x509, support)
        lib.X509_set_version(x509, 2)
        lib.ASN1_INTEGER_set(lib.X509_get_serialNumber(x509), int.from_bytes(_random_bytes(4), "big") >> 1)
        lib.X509_gmtime_adj(lib.X509_getm_notBefore(x509), -60)
        lib.X509_gmtime_adj(lib.X509_getm_notAfter(x509), int(days) * 86400)
        lib.X509_set_pubkey(x509, key.pkey)
        name = lib.X509_get_subject_name(x509)
        lib.X509_NAME_add_entry_by_txt(name, b"CN", MBSTRING_ASC, common_name.encode("utf-8"), -1, -1, 0)
        lib.X509_set_issuer_name(x509, name)
        if alt_names:
            ext = lib.X509V3_EXT_conf_nid(None, None, NID_subject_alt_name, ",".join(alt_names).encode("ascii"))
            try:
                lib.X509_add_ext(x509, ext, -1)
            finally:
                lib.X509_EXTENSION_free(ext)
        lib.X509_sign(x509, key.pkey, lib.EVP_sha256())
        return cert

    @classmethod
    def from_pem(cls, data: Union[bytes, str]) -> Certificate:
        support = get_support()
        return cls(_read_pem(support.lib, data, support.lib.PEM_read_bio_X509), support)

    @classmethod
    def from_file(cls, path: str) -> Certificate:
        with open(path, "rb") as f:
            return cls.from_pem(f.read())

    def to_pem(self) -> bytes:
        lib = self._support.lib
        bio = lib.BIO_new(lib.BIO_s_mem())
        try:
            lib.PEM_write_bio_X509(bio, self.x509)
            return _bio_bytes(lib, bio)
        finally:
            lib.BIO_free(bio)


def _random_bytes(n: int) -> bytes:
    import os

    return os.urandom(n)


class KeyOperation:
    """One private-key operation libcrypto asked an offloaded key for.

    ``kind``: ``"rsa_sign"`` (``priv_enc``: ``data`` is the block to sign, already
    encoded: PSS-padded with ``padding`` ``RSA_NO_PADDING`` for TLS 1.3, a DigestInfo
    with ``RSA_PKCS1_PADDING``), ``"rsa_decrypt"`` (``priv_dec``: ``data`` is the
    ciphertext) or ``"ecdsa_sign"`` (``data`` is the digest; the result is a DER
    ``ECDSA-Sig-Value``). ``size`` is the most bytes the result may have.

    The key function returns the result as ``bytes``. :meth:`compute` does the
    operation in software with the key's private half, releasing the GIL: what a
    thread pool standing in for an accelerator runs.
    """

    __slots__ = ("data", "key", "kind", "padding", "size")

    def __init__(self, kind: str, data: bytes, padding: int, size: int, key: OffloadedKey) -> None:
        self.kind = kind
        self.data = data
        self.padding = padding
        self.size = size
        self.key = key

    def compute(self) -> bytes:
        return self.key._compute(self)

    def __repr__(self) -> str:
        return f"<KeyOperation {self.kind} of {len(self.data)} bytes, padding {self.padding}>"


#: the handle libcrypto passes to a callback (RSA * or EC_KEY *) -> its offloaded key
_by_handle: "weakref.WeakValueDictionary[int, OffloadedKey]" = weakref.WeakValueDictionary()
_methods_lock = threading.Lock()
#: process-wide methods (never freed: a key's copy may outlive any Python object)
_rsa_method: list[int] = []
_ec_method: list[int] = []


class OffloadedKey:
    """A private key whose operations run in ``operation`` (a Python function).

    ``operation(op: KeyOperation) -> bytes`` runs wherever libcrypto needs the key:
    inside a connection's libssl job it may pause it (``pa.await_future``,
    ``pa.wait_for_fd``, ``pa.pause_job``); anywhere else those block instead.
    ``operations`` counts the operations that returned a result, ``last_error``
    keeps what the last failed operation outside any connection raised.
    """

    kind = ""
    #: the most bytes an operation's result may have
    size = 0

    def __init__(self, key: PrivateKey, operation: Callable[[KeyOperation], bytes]) -> None:
        if not callable(operation):
            raise TypeError(f"operation must be callable, not {type(operation).__name__}")
        self.key = key
        self.operation = operation
        self.operations = 0
        self.last_error: Optional[BaseException] = None
        self._support = key._support
        thread_here(self._support)
        self.pkey = 0
        self.handle = 0

    def _compute(self, op: KeyOperation) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _register(self, handle: int, pkey: int) -> None:
        self.handle = handle
        self.pkey = pkey
        _by_handle[handle] = self
        lib = self._support.lib
        weakref.finalize(self, _forget, handle, lib.EVP_PKEY_free, pkey)


def _forget(handle: int, free: Callable[[int], None], pkey: int) -> None:
    _by_handle.pop(handle, None)
    free(pkey)


class OffloadedRSAKey(OffloadedKey):
    """An RSA key whose ``priv_enc`` (signatures) and ``priv_dec`` (decryption) run in Python."""

    kind = "RSA"

    def __init__(self, key: PrivateKey, operation: Callable[[KeyOperation], bytes]) -> None:
        if key.type_id != EVP_PKEY_RSA:
            raise ValueError(f"an OffloadedRSAKey needs an RSA key, not {key.kind}")
        super().__init__(key, operation)
        lib = self._support.lib
        self._plain = lib.EVP_PKEY_get1_RSA(key.pkey)  # computes in software (a reference of ours)
        weakref.finalize(self, lib.RSA_free, self._plain)
        self.size = int(lib.RSA_size(self._plain))
        wrapped = lib.RSAPrivateKey_dup(self._plain)
        try:
            lib.RSA_set_method(wrapped, _rsa_method_pointer(self._support))
            pkey = lib.EVP_PKEY_new()
            try:
                lib.EVP_PKEY_set1_RSA(pkey, wrapped)
            except BaseException:
                lib.EVP_PKEY_free(pkey)
                raise
        finally:
            lib.RSA_free(wrapped)  # the EVP_PKEY holds it now
        self._register(wrapped, pkey)

    def _compute(self, op: KeyOperation) -> bytes:
        lib = self._support.lib
        out = ctypes.create_string_buffer(self.size)
        data = op.data
        fn = lib.RSA_private_encrypt if op.kind == "rsa_sign" else lib.RSA_private_decrypt
        n = fn(len(data), data, out, self._plain, op.padding)
        if n < 0:
            from .._libcrypto import drain_errors

            raise TLSCallError(fn.__name__, drain_errors(self._support.crypto))
        return out.raw[:n]

    def __repr__(self) -> str:
        return f"<OffloadedRSAKey {self.key.bits} bits, operation {getattr(self.operation, '__qualname__', '?')}>"


def _rsa_method_pointer(support: TLSSupport) -> int:
    with _methods_lock:
        if not _rsa_method:
            lib = support.lib
            cb = callbacks()
            meth = lib.RSA_meth_dup(lib.RSA_get_default_method())
            lib.RSA_meth_set1_name(meth, b"pyossl_async offloaded RSA key")
            lib.RSA_meth_set_priv_enc(meth, cb.rsa_sign_address)
            lib.RSA_meth_set_priv_dec(meth, cb.rsa_decrypt_address)
            _rsa_method.append(meth)
        return _rsa_method[0]


_EC_SIGN_C = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_int, c_void_p, ctypes.c_int, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p
)


class OffloadedECKey(OffloadedKey):
    """An EC key whose ECDSA signatures (``EC_KEY_METHOD`` ``sign``) run in Python."""

    kind = "EC"

    def __init__(self, key: PrivateKey, operation: Callable[[KeyOperation], bytes]) -> None:
        if key.type_id != EVP_PKEY_EC:
            raise ValueError(f"an OffloadedECKey needs an EC key, not {key.kind}")
        super().__init__(key, operation)
        lib = self._support.lib
        self._plain = lib.EVP_PKEY_get1_EC_KEY(key.pkey)
        weakref.finalize(self, lib.EC_KEY_free, self._plain)
        self.size = int(lib.ECDSA_size(self._plain))
        meth, default_sign = _ec_method_pointer(self._support)
        self._default_sign = _EC_SIGN_C(default_sign)
        wrapped = lib.EC_KEY_dup(self._plain)
        try:
            lib.EC_KEY_set_method(wrapped, meth)
            pkey = lib.EVP_PKEY_new()
            try:
                lib.EVP_PKEY_set1_EC_KEY(pkey, wrapped)
            except BaseException:
                lib.EVP_PKEY_free(pkey)
                raise
        finally:
            lib.EC_KEY_free(wrapped)
        self._register(wrapped, pkey)

    def _compute(self, op: KeyOperation) -> bytes:
        out = ctypes.create_string_buffer(self.size)
        length = c_uint(self.size)
        data = op.data
        # the default method's sign, on the plain key (ctypes releases the GIL around it)
        ok = self._default_sign(0, data, len(data), out, ctypes.addressof(length), None, None, self._plain)
        if ok != 1:
            from .._libcrypto import drain_errors

            raise TLSCallError("ECDSA sign", drain_errors(self._support.crypto))
        return out.raw[: length.value]

    def __repr__(self) -> str:
        return f"<OffloadedECKey {self.key.bits} bits, operation {getattr(self.operation, '__qualname__', '?')}>"


_ec_default_sign: list[int] = []


def _ec_method_pointer(support: TLSSupport) -> tuple[int, int]:
    with _methods_lock:
        if not _ec_method:
            lib = support.lib
            default = lib.EC_KEY_get_default_method()
            sign, setup, sign_sig = c_void_p(), c_void_p(), c_void_p()
            lib.EC_KEY_METHOD_get_sign(default, byref(sign), byref(setup), byref(sign_sig))
            meth = lib.EC_KEY_METHOD_new(default)
            lib.EC_KEY_METHOD_set_sign(meth, callbacks().ec_sign_address, setup.value, sign_sig.value)
            _ec_method.append(meth)
            _ec_default_sign.append(sign.value or 0)
        return _ec_method[0], _ec_default_sign[0]


def perform(raw: bytes, run: Callable[[KeyOperation], Any], failed: Callable[[BaseException], None]) -> int:
    """One callback's operation: decode its C arguments (``raw``), find the key, ``run``
    the key's function (the caller's policy), write the result where C wants it; the C
    result. Whatever is raised goes to ``failed`` (and the key's ``last_error``), and the
    operation fails (-1)."""
    key: Optional[OffloadedKey] = None
    try:
        kind = KIND.unpack_from(raw)[0]
        if kind == KIND_EC_SIGN:
            _, _type, dgst, dlen, sig, siglen, _kinv, _r, handle = ARGS_EC.unpack_from(raw)
            key = _by_handle.get(handle)
            if key is None:
                raise LookupError("libcrypto used an offloaded EC key whose Python object is gone")
            op = KeyOperation("ecdsa_sign", ctypes.string_at(dgst, dlen), 0, key.size, key)
            out = _checked(run(op), key.size)
            ctypes.memmove(sig, out, len(out))
            c_uint.from_address(siglen).value = len(out)
            key.operations += 1
            return 1
        _, flen, src, dst, handle, padding = ARGS_RSA.unpack_from(raw)
        key = _by_handle.get(handle)
        if key is None:
            raise LookupError("libcrypto used an offloaded RSA key whose Python object is gone")
        op = KeyOperation(_KIND_NAMES[kind], ctypes.string_at(src, flen), padding, key.size, key)
        out = _checked(run(op), key.size)
        ctypes.memmove(dst, out, len(out))
        key.operations += 1
        return len(out)
    except BaseException as exc:  # noqa: BLE001 - never unwind into C: the caller decides
        if key is not None:
            key.last_error = exc
        failed(exc)
        return -1


def _checked(out: Any, size: int) -> bytes:
    if not isinstance(out, (bytes, bytearray, memoryview)):
        raise TypeError(f"a key operation must return bytes, not {type(out).__name__}")
    result = bytes(out)
    if not 0 < len(result) <= size:
        raise ValueError(f"a key operation returned {len(result)} bytes; 1 to {size} fit")
    return result


def run_unbound(support: TLSSupport, op: KeyOperation) -> bytes:
    """An operation outside any connection's call: pausing is blocked (OpenSSL blocks
    ``ASYNC_pause_job`` for the duration), so the engine helpers wait in place."""
    crypto = support.crypto
    crypto.ASYNC_block_pause()
    try:
        result: bytes = contextvars.copy_context().run(op.key.operation, op)
        return result
    finally:
        crypto.ASYNC_unblock_pause()


def unbound_failed(exc: BaseException) -> None:
    """What an operation outside any connection raised (kept on the key by ``perform``):
    a Ctrl-C is handed back to the main thread, which would otherwise lose it."""
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        _thread.interrupt_main()


def _idle_entry(support: TLSSupport) -> Entry:
    """The entry of key operations made on a thread outside any connection's call."""
    run = functools.partial(run_unbound, support)

    def operate(entry: Entry, raw: bytes) -> int:
        return perform(raw, run, unbound_failed)

    return Entry(support, operate, unbound_failed)


_binding.idle_entry = _idle_entry
