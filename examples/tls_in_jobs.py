"""Two TLS connections whose handshakes and records run inside jobs paused in C.

A client and a server talk over a memory BIO pair; libssl is called through
ctypes (the libssl next to the libcrypto pyossl_async loaded), with an EC key
and a self-signed certificate made at run time. pyossl_async's test engine is
installed as libcrypto's default SHA-1/256/384/512 implementation, so every
digest update and final inside ``SSL_do_handshake``, ``SSL_write`` and
``SSL_read`` pauses the running job from inside C, the way an accelerator
engine would. Two connections run at once, each side in its own job, driven by
``aio.run_job`` on one asyncio loop, interleaved. When a side waits for its
peer's bytes it pauses in Python (``pa.pause_job()``) and the loop runs the
others.

Prints, per connection and side, the negotiated protocol and cipher, and how
many times the engine paused that side inside C.

Run:  python examples/tls_in_jobs.py

It needs the openssl backend (jobs paused inside libcrypto's C code), whichever
backend is the default, and a C compiler with the OpenSSL headers to build the
test engine; without them it says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import glob
import os
import sys
from ctypes import POINTER, c_char_p, c_int, c_long, c_void_p
from typing import Any, Callable, Dict, List, Optional

import pyossl_async as pa
from pyossl_async import aio
from pyossl_async.testing import EngineUnavailable, PauseEngine

SSL_ERROR_WANT_READ = 2
SSL_ERROR_WANT_WRITE = 3
MBSTRING_ASC = 0x1001

#: a C pointer as ctypes returns a ``c_void_p`` result: an int, None for NULL
Ptr = Optional[int]


class Lib:
    """libcrypto and libssl calls this example needs, typed once."""

    # The functions bound in __init__, by result type (their argument types are
    # in the table there: ctypes converts and checks the arguments).
    EVP_PKEY_CTX_new_from_name: Callable[..., Ptr]
    X509_new: Callable[[], Ptr]
    X509_get_serialNumber: Callable[[Ptr], Ptr]
    X509_getm_notBefore: Callable[[Ptr], Ptr]
    X509_getm_notAfter: Callable[[Ptr], Ptr]
    X509_gmtime_adj: Callable[[Ptr, int], Ptr]
    X509_get_subject_name: Callable[[Ptr], Ptr]
    EVP_sha256: Callable[[], Ptr]
    TLS_server_method: Callable[[], Ptr]
    TLS_client_method: Callable[[], Ptr]
    SSL_CTX_new: Callable[[Ptr], Ptr]
    SSL_new: Callable[[Ptr], Ptr]
    SSL_get_current_cipher: Callable[[Ptr], Ptr]
    EVP_PKEY_keygen_init: Callable[..., int]
    EVP_PKEY_CTX_set_group_name: Callable[..., int]
    EVP_PKEY_generate: Callable[..., int]
    X509_set_version: Callable[..., int]
    ASN1_INTEGER_set: Callable[..., int]
    X509_set_pubkey: Callable[..., int]
    X509_NAME_add_entry_by_txt: Callable[..., int]
    X509_set_issuer_name: Callable[..., int]
    X509_sign: Callable[..., int]
    SSL_CTX_use_certificate: Callable[..., int]
    SSL_CTX_use_PrivateKey: Callable[..., int]
    SSL_do_handshake: Callable[..., int]
    SSL_read: Callable[..., int]
    SSL_write: Callable[..., int]
    SSL_get_error: Callable[..., int]
    BIO_new_bio_pair: Callable[..., int]
    SSL_get_version: Callable[[Ptr], bytes]
    SSL_CIPHER_get_name: Callable[[Ptr], bytes]
    EVP_PKEY_CTX_free: Callable[[Ptr], None]
    SSL_CTX_free: Callable[[Ptr], None]
    SSL_free: Callable[[Ptr], None]
    SSL_set_bio: Callable[..., None]
    SSL_set_accept_state: Callable[[Ptr], None]
    SSL_set_connect_state: Callable[[Ptr], None]
    ERR_clear_error: Callable[[], None]

    def __init__(self, libcrypto: str) -> None:
        candidates = sorted(glob.glob(os.path.join(os.path.dirname(libcrypto), "libssl*.so*")))
        if not candidates:
            raise SystemExit(f"no libssl next to {libcrypto}")
        self.crypto = ctypes.CDLL(libcrypto)
        self.ssl = ctypes.CDLL(candidates[0])
        self.ssl_path = candidates[0]
        c, s = self.crypto, self.ssl
        table = [
            (c, "EVP_PKEY_CTX_new_from_name", c_void_p, [c_void_p, c_char_p, c_char_p]),
            (c, "EVP_PKEY_keygen_init", c_int, [c_void_p]),
            (c, "EVP_PKEY_CTX_set_group_name", c_int, [c_void_p, c_char_p]),
            (c, "EVP_PKEY_generate", c_int, [c_void_p, POINTER(c_void_p)]),
            (c, "EVP_PKEY_CTX_free", None, [c_void_p]),
            (c, "X509_new", c_void_p, []),
            (c, "X509_set_version", c_int, [c_void_p, c_long]),
            (c, "X509_get_serialNumber", c_void_p, [c_void_p]),
            (c, "ASN1_INTEGER_set", c_int, [c_void_p, c_long]),
            (c, "X509_getm_notBefore", c_void_p, [c_void_p]),
            (c, "X509_getm_notAfter", c_void_p, [c_void_p]),
            (c, "X509_gmtime_adj", c_void_p, [c_void_p, c_long]),
            (c, "X509_set_pubkey", c_int, [c_void_p, c_void_p]),
            (c, "X509_get_subject_name", c_void_p, [c_void_p]),
            (c, "X509_NAME_add_entry_by_txt", c_int, [c_void_p, c_char_p, c_int, c_char_p, c_int, c_int, c_int]),
            (c, "X509_set_issuer_name", c_int, [c_void_p, c_void_p]),
            (c, "EVP_sha256", c_void_p, []),
            (c, "X509_sign", c_int, [c_void_p, c_void_p, c_void_p]),
            (s, "TLS_server_method", c_void_p, []),
            (s, "TLS_client_method", c_void_p, []),
            (s, "SSL_CTX_new", c_void_p, [c_void_p]),
            (s, "SSL_CTX_use_certificate", c_int, [c_void_p, c_void_p]),
            (s, "SSL_CTX_use_PrivateKey", c_int, [c_void_p, c_void_p]),
            (s, "SSL_CTX_free", None, [c_void_p]),
            (s, "SSL_new", c_void_p, [c_void_p]),
            (s, "SSL_free", None, [c_void_p]),
            (s, "SSL_set_bio", None, [c_void_p, c_void_p, c_void_p]),
            (s, "SSL_set_accept_state", None, [c_void_p]),
            (s, "SSL_set_connect_state", None, [c_void_p]),
            (s, "SSL_do_handshake", c_int, [c_void_p]),
            (s, "SSL_read", c_int, [c_void_p, c_void_p, c_int]),
            (s, "SSL_write", c_int, [c_void_p, c_char_p, c_int]),
            (s, "SSL_get_error", c_int, [c_void_p, c_int]),
            (s, "SSL_get_version", c_char_p, [c_void_p]),
            (s, "SSL_get_current_cipher", c_void_p, [c_void_p]),
            (s, "SSL_CIPHER_get_name", c_char_p, [c_void_p]),
            (c, "BIO_new_bio_pair", c_int, [POINTER(c_void_p), ctypes.c_size_t, POINTER(c_void_p), ctypes.c_size_t]),
            (c, "ERR_clear_error", None, []),
        ]
        for lib, name, restype, argtypes in table:
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


def key_and_certificate(lib: Lib) -> tuple[int, Ptr]:
    """An EC P-256 key and a self-signed certificate for CN=localhost."""
    kctx = lib.EVP_PKEY_CTX_new_from_name(None, b"EC", None)
    pkey = c_void_p()
    ok = (
        kctx
        and lib.EVP_PKEY_keygen_init(kctx) == 1
        and lib.EVP_PKEY_CTX_set_group_name(kctx, b"P-256") == 1
        and lib.EVP_PKEY_generate(kctx, ctypes.byref(pkey)) == 1
    )
    lib.EVP_PKEY_CTX_free(kctx)
    if not ok or not pkey.value:
        raise SystemExit("EC key generation failed")
    cert = lib.X509_new()
    lib.X509_set_version(cert, 2)
    lib.ASN1_INTEGER_set(lib.X509_get_serialNumber(cert), 1)
    lib.X509_gmtime_adj(lib.X509_getm_notBefore(cert), 0)
    lib.X509_gmtime_adj(lib.X509_getm_notAfter(cert), 3600)
    lib.X509_set_pubkey(cert, pkey)
    name = lib.X509_get_subject_name(cert)
    lib.X509_NAME_add_entry_by_txt(name, b"CN", MBSTRING_ASC, b"localhost", -1, -1, 0)
    lib.X509_set_issuer_name(cert, name)
    if not lib.X509_sign(cert, pkey, lib.EVP_sha256()):
        raise SystemExit("signing the certificate failed")
    return pkey.value, cert


def side(lib: Lib, ssl: Ptr, role: str, result: Dict[str, Any]) -> Callable[[Any], int]:
    """The job of one side: handshake, one record each way, all inside this job."""

    def call(fn: Callable[..., int], *args: Any) -> int:
        # a side waiting for its peer pauses in Python: the loop runs the others meanwhile
        while True:
            ret: int = fn(ssl, *args)
            if ret > 0:
                return ret
            err = lib.SSL_get_error(ssl, ret)
            if err not in (SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE):
                raise RuntimeError(f"{role}: {fn.__name__} failed with SSL error {err}")
            lib.ERR_clear_error()
            pa.pause_job()

    def job(arg: Any) -> int:
        call(lib.SSL_do_handshake)
        buf = ctypes.create_string_buffer(256)
        if role == "client":
            call(lib.SSL_write, b"hello from the client", 21)
            n = call(lib.SSL_read, buf, 256)
        else:
            n = call(lib.SSL_read, buf, 256)
            call(lib.SSL_write, b"hello from the server", 21)
        result["received"] = buf.raw[:n].decode()
        result["protocol"] = lib.SSL_get_version(ssl).decode()
        result["cipher"] = lib.SSL_CIPHER_get_name(lib.SSL_get_current_cipher(ssl)).decode()
        return 0

    return job


class PauseCounter:
    """The context's own callback: the driver chains it, so it counts the engine's callbacks."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, arg: Any) -> int:
        self.count += 1
        return 1


def load_engine(parser: argparse.ArgumentParser) -> PauseEngine:
    """The test engine, for the openssl backend; exits with status 2 and the reason
    when the backend cannot run jobs here or the engine cannot be built."""
    try:
        backend = pa.get_backend("openssl")
    except pa.AsyncError as exc:  # BackendUnavailable, SettingError: they say why in one line
        parser.exit(2, f"{parser.prog}: this example needs the openssl backend: {exc}\n")
    if not backend.is_capable():
        why = getattr(backend, "native_error", "") or "ASYNC_is_capable() is false"
        parser.exit(2, f"{parser.prog}: the openssl backend cannot run jobs here: {why}\n")
    try:
        return PauseEngine.load(backend)
    except EngineUnavailable as exc:
        parser.exit(2, f"{parser.prog}: the test engine is unavailable here: {exc}\n")


async def main(engine: PauseEngine) -> List[Dict[str, Any]]:
    backend = pa.get_backend("openssl")
    lib = Lib(engine.libcrypto)
    pkey, cert = key_and_certificate(lib)
    server_ctx = lib.SSL_CTX_new(lib.TLS_server_method())
    client_ctx = lib.SSL_CTX_new(lib.TLS_client_method())
    if lib.SSL_CTX_use_certificate(server_ctx, cert) != 1 or lib.SSL_CTX_use_PrivateKey(server_ctx, pkey) != 1:
        raise SystemExit("the server's certificate or key was refused")
    # From here every SHA digest of this libcrypto pauses the running job once per
    # update and final, on the callback path (the drivers' callbacks).
    engine.install_digests(1, path="callback")
    runs = []
    ssls = []
    outcome: List[Dict[str, Any]] = []
    for n in range(2):
        server, client = lib.SSL_new(server_ctx), lib.SSL_new(client_ctx)
        a, b = c_void_p(), c_void_p()
        lib.BIO_new_bio_pair(ctypes.byref(a), 0, ctypes.byref(b), 0)
        lib.SSL_set_bio(server, a, a)
        lib.SSL_set_bio(client, b, b)
        lib.SSL_set_accept_state(server)
        lib.SSL_set_connect_state(client)
        ssls += [server, client]
        for role, ssl in (("server", server), ("client", client)):
            result: Dict[str, Any] = {"connection": n, "role": role}
            counter = PauseCounter()
            ctx = backend.WaitCtx()
            ctx.set_callback(counter)
            result["_counter"], result["_ctx"] = counter, ctx
            outcome.append(result)
            runs.append(aio.run_job(side(lib, ssl, role, result), backend=backend, ctx=ctx))
    await asyncio.gather(*runs)
    engine.uninstall_digests()
    for result in outcome:
        result["c_pauses"] = result.pop("_counter").count
        result.pop("_ctx").close()
    for ssl in ssls:
        lib.SSL_free(ssl)
    lib.SSL_CTX_free(server_ctx)
    lib.SSL_CTX_free(client_ctx)
    return outcome


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()  # no options: --help, and anything else is refused
    results = asyncio.run(main(load_engine(parser)))
    for r in results:
        print(
            f"connection {r['connection']} {r['role']:6}: {r['protocol']} {r['cipher']}, "
            f"{r['c_pauses']} pauses inside C, received {r['received']!r}"
        )
    if any(r["c_pauses"] == 0 for r in results):
        sys.exit("a side was never paused inside C")
