"""The one table of prototypes the TLS layer binds: libssl's, and the libcrypto
functions it needs besides the ASYNC API (keys, certificates, memory BIOs, RSA methods).

Each row says what C declares: which library, name, result type, argument
types, whether the call releases the GIL, which errcheck applies, and the
OpenSSL version that introduced it. ``_loader`` binds the table in one loop;
nothing else in the package declares a libssl prototype. The ASYNC and error
queue functions are ``_libcrypto``'s (its own table), bound once for the process.

Calls on an ``SSL *`` that may run Python code (a handshake, a record, anything
that may start or resume libssl's job) are not made through these bindings but
through the native switch, bound to the connection's thread state
(``pyossl_async.tls._binding``); their rows are here so that their addresses
come from one place, and ``bound=True`` marks them.
"""

from __future__ import annotations

from ctypes import POINTER, c_char_p, c_int, c_long, c_size_t, c_uint64, c_ulong, c_void_p
from typing import Any, NamedTuple, Optional, Tuple

__all__ = [
    "CHECK_NONNULL",
    "CHECK_ONE",
    "CHECK_POSITIVE",
    "CRYPTO",
    "PROTOTYPES",
    "SSL",
    "V3_0",
    "Prototype",
]

V3_0 = 0x30000000

#: which library a row comes from
SSL = "ssl"
CRYPTO = "crypto"

#: errcheck kinds (see ``_loader``): raise ``TLSCallError`` with the drained error
#: queue when the result is NULL / not 1 / not > 0. ``None``: the result is data.
CHECK_NONNULL = "nonnull"
CHECK_ONE = "one"
CHECK_POSITIVE = "positive"


class Prototype(NamedTuple):
    lib: str
    name: str
    restype: Any
    argtypes: Tuple[Any, ...]
    #: True: bound through a GIL-releasing CDLL (slow CPU work: key generation,
    #: RSA private-key operations that a thread pool runs in parallel)
    releases_gil: bool = False
    check: Optional[str] = None
    since: int = V3_0
    optional: bool = False
    #: called on a connection's ``SSL *`` through the bound switch (int result)
    bound: bool = False


_P = c_void_p
_SIZE_p = POINTER(c_size_t)
_INT_p = POINTER(c_int)

PROTOTYPES: Tuple[Prototype, ...] = (
    # -- libssl: library and methods
    Prototype(SSL, "OPENSSL_init_ssl", c_int, (c_uint64, _P), check=CHECK_ONE),
    Prototype(SSL, "TLS_server_method", _P, (), check=CHECK_NONNULL),
    Prototype(SSL, "TLS_client_method", _P, (), check=CHECK_NONNULL),
    # -- SSL_CTX
    Prototype(SSL, "SSL_CTX_new", _P, (_P,), check=CHECK_NONNULL),
    Prototype(SSL, "SSL_CTX_free", None, (_P,)),
    Prototype(SSL, "SSL_CTX_use_certificate", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(SSL, "SSL_CTX_use_PrivateKey", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(SSL, "SSL_CTX_check_private_key", c_int, (_P,), check=CHECK_ONE),
    Prototype(SSL, "SSL_CTX_set_cipher_list", c_int, (_P, c_char_p), check=CHECK_ONE),
    Prototype(SSL, "SSL_CTX_set_ciphersuites", c_int, (_P, c_char_p), check=CHECK_ONE),
    Prototype(SSL, "SSL_CTX_set_options", c_uint64, (_P, c_uint64)),
    Prototype(SSL, "SSL_CTX_ctrl", c_long, (_P, c_int, c_long, _P)),
    Prototype(SSL, "SSL_CTX_set_verify", None, (_P, c_int, _P)),
    Prototype(SSL, "SSL_CTX_load_verify_locations", c_int, (_P, c_char_p, c_char_p), check=CHECK_ONE),
    # -- SSL: creation and set-up (no code of ours can run in these)
    Prototype(SSL, "SSL_new", _P, (_P,), check=CHECK_NONNULL),
    Prototype(SSL, "SSL_set_bio", None, (_P, _P, _P), bound=True),
    Prototype(SSL, "SSL_set_fd", c_int, (_P, c_int), bound=True),
    Prototype(SSL, "SSL_set_accept_state", None, (_P,), bound=True),
    Prototype(SSL, "SSL_set_connect_state", None, (_P,), bound=True),
    Prototype(SSL, "SSL_ctrl", c_long, (_P, c_int, c_long, _P), bound=True),
    Prototype(SSL, "SSL_set1_host", c_int, (_P, c_char_p), bound=True),
    Prototype(SSL, "SSL_set_async_callback", c_int, (_P, _P), bound=True),
    Prototype(SSL, "SSL_set_async_callback_arg", c_int, (_P, _P), bound=True),
    Prototype(SSL, "SSL_free", None, (_P,), bound=True),
    # -- SSL: the calls that run the protocol (and libssl's jobs, SSL_MODE_ASYNC)
    Prototype(SSL, "SSL_do_handshake", c_int, (_P,), bound=True),
    Prototype(SSL, "SSL_read_ex", c_int, (_P, _P, c_size_t, _SIZE_p), bound=True),
    Prototype(SSL, "SSL_write_ex", c_int, (_P, _P, c_size_t, _SIZE_p), bound=True),
    Prototype(SSL, "SSL_shutdown", c_int, (_P,), bound=True),
    # -- SSL: state (int results, bound like every call on a connection)
    Prototype(SSL, "SSL_get_error", c_int, (_P, c_int), bound=True),
    Prototype(SSL, "SSL_get_all_async_fds", c_int, (_P, _INT_p, _SIZE_p), bound=True),
    Prototype(SSL, "SSL_get_changed_async_fds", c_int, (_P, _INT_p, _SIZE_p, _INT_p, _SIZE_p), bound=True),
    Prototype(SSL, "SSL_get_async_status", c_int, (_P, _INT_p), bound=True),
    Prototype(SSL, "SSL_waiting_for_async", c_int, (_P,), bound=True),
    Prototype(SSL, "SSL_is_init_finished", c_int, (_P,), bound=True),
    Prototype(SSL, "SSL_get_shutdown", c_int, (_P,), bound=True),
    Prototype(SSL, "SSL_pending", c_int, (_P,), bound=True),
    # -- SSL: pointers and strings (direct: they only read the SSL object)
    Prototype(SSL, "SSL_get_version", c_char_p, (_P,)),
    Prototype(SSL, "SSL_get_current_cipher", _P, (_P,)),
    Prototype(SSL, "SSL_CIPHER_get_name", c_char_p, (_P,)),
    Prototype(SSL, "SSL_get_verify_result", c_long, (_P,)),
    # -- libcrypto: memory BIOs
    Prototype(CRYPTO, "BIO_s_mem", _P, (), check=CHECK_NONNULL),
    Prototype(CRYPTO, "BIO_new", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "BIO_new_mem_buf", _P, (_P, c_int), check=CHECK_NONNULL),
    Prototype(CRYPTO, "BIO_free", c_int, (_P,)),
    Prototype(CRYPTO, "BIO_read", c_int, (_P, _P, c_int)),
    Prototype(CRYPTO, "BIO_write", c_int, (_P, _P, c_int)),
    Prototype(CRYPTO, "BIO_ctrl", c_long, (_P, c_int, c_long, _P)),
    Prototype(CRYPTO, "BIO_up_ref", c_int, (_P,), check=CHECK_ONE),
    # -- libcrypto: keys
    Prototype(CRYPTO, "EVP_PKEY_CTX_new_from_name", _P, (_P, c_char_p, c_char_p), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EVP_PKEY_CTX_new", _P, (_P, _P), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EVP_PKEY_CTX_free", None, (_P,)),
    Prototype(CRYPTO, "EVP_PKEY_keygen_init", c_int, (_P,), check=CHECK_ONE),
    Prototype(CRYPTO, "EVP_PKEY_CTX_set_rsa_keygen_bits", c_int, (_P, c_int), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_CTX_set_group_name", c_int, (_P, c_char_p), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_generate", c_int, (_P, POINTER(_P)), releases_gil=True, check=CHECK_ONE),
    Prototype(CRYPTO, "EVP_PKEY_new", _P, (), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EVP_PKEY_free", None, (_P,)),
    Prototype(CRYPTO, "EVP_PKEY_up_ref", c_int, (_P,), check=CHECK_ONE),
    Prototype(CRYPTO, "EVP_PKEY_get_base_id", c_int, (_P,)),
    Prototype(CRYPTO, "EVP_PKEY_get_bits", c_int, (_P,)),
    Prototype(CRYPTO, "EVP_PKEY_get1_RSA", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EVP_PKEY_set1_RSA", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "EVP_PKEY_get1_EC_KEY", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EVP_PKEY_set1_EC_KEY", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "EVP_PKEY_sign_init", c_int, (_P,), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_sign", c_int, (_P, _P, _SIZE_p, _P, c_size_t), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_decrypt_init", c_int, (_P,), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_decrypt", c_int, (_P, _P, _SIZE_p, _P, c_size_t), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_encrypt_init", c_int, (_P,), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_encrypt", c_int, (_P, _P, _SIZE_p, _P, c_size_t), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_verify_init", c_int, (_P,), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_verify", c_int, (_P, _P, c_size_t, _P, c_size_t)),
    Prototype(CRYPTO, "EVP_PKEY_CTX_set_rsa_padding", c_int, (_P, c_int), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_PKEY_CTX_set_signature_md", c_int, (_P, _P), check=CHECK_POSITIVE),
    Prototype(CRYPTO, "PEM_read_bio_PrivateKey", _P, (_P, _P, _P, _P), check=CHECK_NONNULL),
    Prototype(CRYPTO, "PEM_write_bio_PrivateKey", c_int, (_P, _P, _P, _P, c_int, _P, _P), check=CHECK_ONE),
    # -- libcrypto: RSA and its methods (the offloaded key)
    Prototype(CRYPTO, "RSA_get_default_method", _P, (), check=CHECK_NONNULL),
    Prototype(CRYPTO, "RSA_meth_dup", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "RSA_meth_free", None, (_P,)),
    Prototype(CRYPTO, "RSA_meth_set1_name", c_int, (_P, c_char_p), check=CHECK_ONE),
    Prototype(CRYPTO, "RSA_meth_set_priv_enc", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "RSA_meth_set_priv_dec", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "RSA_set_method", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "RSAPrivateKey_dup", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "RSA_free", None, (_P,)),
    Prototype(CRYPTO, "RSA_size", c_int, (_P,)),
    Prototype(CRYPTO, "RSA_private_encrypt", c_int, (c_int, _P, _P, _P, c_int), releases_gil=True),
    Prototype(CRYPTO, "RSA_private_decrypt", c_int, (c_int, _P, _P, _P, c_int), releases_gil=True),
    # -- libcrypto: EC keys and their methods (the offloaded ECDSA key)
    Prototype(CRYPTO, "EC_KEY_get_default_method", _P, (), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EC_KEY_METHOD_new", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EC_KEY_METHOD_free", None, (_P,)),
    Prototype(CRYPTO, "EC_KEY_METHOD_get_sign", None, (_P, POINTER(_P), POINTER(_P), POINTER(_P))),
    Prototype(CRYPTO, "EC_KEY_METHOD_set_sign", None, (_P, _P, _P, _P)),
    Prototype(CRYPTO, "EC_KEY_set_method", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "EC_KEY_dup", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "EC_KEY_free", None, (_P,)),
    Prototype(CRYPTO, "ECDSA_size", c_int, (_P,)),
    # -- libcrypto: certificates
    Prototype(CRYPTO, "X509_new", _P, (), check=CHECK_NONNULL),
    Prototype(CRYPTO, "X509_free", None, (_P,)),
    Prototype(CRYPTO, "X509_up_ref", c_int, (_P,), check=CHECK_ONE),
    Prototype(CRYPTO, "X509_set_version", c_int, (_P, c_long), check=CHECK_ONE),
    Prototype(CRYPTO, "X509_get_serialNumber", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "ASN1_INTEGER_set", c_int, (_P, c_long), check=CHECK_ONE),
    Prototype(CRYPTO, "X509_getm_notBefore", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "X509_getm_notAfter", _P, (_P,), check=CHECK_NONNULL),
    Prototype(CRYPTO, "X509_gmtime_adj", _P, (_P, c_long), check=CHECK_NONNULL),
    Prototype(CRYPTO, "X509_set_pubkey", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "X509_get_subject_name", _P, (_P,), check=CHECK_NONNULL),
    Prototype(
        CRYPTO,
        "X509_NAME_add_entry_by_txt",
        c_int,
        (_P, c_char_p, c_int, c_char_p, c_int, c_int, c_int),
        check=CHECK_ONE,
    ),
    Prototype(CRYPTO, "X509_set_issuer_name", c_int, (_P, _P), check=CHECK_ONE),
    Prototype(CRYPTO, "X509V3_EXT_conf_nid", _P, (_P, _P, c_int, c_char_p), check=CHECK_NONNULL),
    Prototype(CRYPTO, "X509_add_ext", c_int, (_P, _P, c_int), check=CHECK_ONE),
    Prototype(CRYPTO, "X509_EXTENSION_free", None, (_P,)),
    Prototype(CRYPTO, "X509_sign", c_int, (_P, _P, _P), releases_gil=True, check=CHECK_POSITIVE),
    Prototype(CRYPTO, "EVP_sha256", _P, (), check=CHECK_NONNULL),
    Prototype(CRYPTO, "PEM_read_bio_X509", _P, (_P, _P, _P, _P), check=CHECK_NONNULL),
    Prototype(CRYPTO, "PEM_write_bio_X509", c_int, (_P, _P), check=CHECK_ONE),
    # -- libcrypto: errors of the calling thread (the ASYNC ones are _libcrypto's)
    Prototype(CRYPTO, "ERR_get_error", c_ulong, ()),
    Prototype(CRYPTO, "ERR_clear_error", None, ()),
    Prototype(CRYPTO, "ERR_error_string_n", None, (c_ulong, c_char_p, c_size_t)),
)
