"""pyossl_async.tls in this process: the raw libssl layer, keys and certificates,
contexts, and the misuse of connections (each refused with a clear exception).

Everything here runs no key operation that pauses; the scenarios that do (and
could crash an interpreter if the binding were wrong) run in child interpreters:
tests/test_tls_scenarios.py.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import ssl
import threading
from pathlib import Path
from typing import Any, Dict, List

import pytest

import pyossl_async as pa
from pyossl_async import _libssl
from pyossl_async.testing import _settings as _testing_settings

ALT_LIBCRYPTO = _testing_settings.alt_libcrypto() or ""


@pytest.fixture(scope="module")
def tls() -> Any:
    """The tls package, once the openssl backend can run jobs here."""
    backend = pa.get_backend("openssl")
    if not backend.is_capable():
        pytest.skip("the openssl backend cannot run jobs here")
    from pyossl_async import tls

    return tls


@pytest.fixture(scope="module")
def rsa(tls: Any) -> Any:
    return tls.PrivateKey.generate_rsa(2048)


# -- the raw layer ---------------------------------------------------------------------


def test_libssl_is_the_one_beside_the_backends_libcrypto(tls: Any) -> None:
    support = tls._get_support()
    backend = pa.get_backend("openssl")
    assert os.path.dirname(support.lib.path) == os.path.dirname(backend.library_path)
    assert os.path.basename(support.lib.path).startswith("libssl")
    info = tls.info()
    assert info["libssl"] == support.lib.path and info["libcrypto"] == backend.library_path


def test_every_prototype_declares_its_types() -> None:
    names = [p.name for p in _libssl.PROTOTYPES]
    assert len(names) == len(set(names)), "a function is declared twice"
    for proto in _libssl.PROTOTYPES:
        assert proto.lib in ("ssl", "crypto"), proto
        assert isinstance(proto.argtypes, tuple), proto
        if proto.bound:
            # the bound switch returns the C int (sign-extended); pointer results cannot pass
            assert proto.lib == "ssl" and proto.restype in (ctypes.c_int, ctypes.c_long, None), proto
            assert 1 <= len(proto.argtypes) <= 6, proto
        if proto.restype is ctypes.c_int and proto.check is None and not proto.bound:
            assert proto.name.startswith(("BIO_", "RSA_", "EVP_PKEY_get", "EVP_PKEY_verify", "ECDSA")), proto


def test_candidate_paths_prefer_the_twin_of_the_libcrypto(tmp_path: Path) -> None:
    for name in ("libcrypto-abc.so.3", "libssl-abc.so.3", "libssl-zzz.so.3", "libssl.a"):
        (tmp_path / name).write_bytes(b"")
    paths = _libssl.candidate_paths(str(tmp_path / "libcrypto-abc.so.3"))
    assert [os.path.basename(p) for p in paths] == ["libssl-abc.so.3", "libssl-zzz.so.3"]


def test_a_file_that_is_not_a_libssl_is_refused_with_the_reason(tmp_path: Path) -> None:
    backend = pa.get_backend("openssl")
    fake = tmp_path / "libssl.so.3"
    shutil.copy(backend.library_path, fake)  # a libcrypto under libssl's name
    with pytest.raises(pa.BackendUnavailable, match="not a libssl"):
        _libssl.LibSSL(str(fake), backend.crypto)


@pytest.mark.skipif(not ALT_LIBCRYPTO, reason="set PYOSSL_ASYNC_TEST_ALT_LIBCRYPTO (.ci/run does)")
def test_a_libssl_built_with_another_libcrypto_is_refused() -> None:
    backend = pa.get_backend("openssl")
    other = [p for p in _libssl.candidate_paths(ALT_LIBCRYPTO)]
    if not other or os.path.samefile(os.path.dirname(ALT_LIBCRYPTO), os.path.dirname(backend.library_path)):
        pytest.skip("no second libssl here")
    with pytest.raises(pa.BackendUnavailable, match="is linked with"):
        _libssl.LibSSL(other[0], backend.crypto)


def test_a_failed_call_raises_tls_call_error_with_the_error_queue(tls: Any) -> None:
    with pytest.raises(tls.TLSCallError) as info:
        tls.PrivateKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
    assert info.value.function == "PEM_read_bio_PrivateKey"
    assert info.value.errors, "the error queue was not drained into the exception"
    assert isinstance(info.value, pa.AsyncError)


# -- keys and certificates ---------------------------------------------------------------


def test_keys_and_certificates_round_trip_through_pem(tls: Any, rsa: Any, tmp_path: Path) -> None:
    assert (rsa.kind, rsa.bits) == ("RSA", 2048)
    again = tls.PrivateKey.from_pem(rsa.to_pem())
    assert again.to_pem() == rsa.to_pem()
    ec = tls.PrivateKey.generate_ec("P-256")
    assert ec.kind == "EC"
    cert = tls.Certificate.self_signed(rsa, "example.test", alt_names=("DNS:example.test",))
    pem = cert.to_pem()
    assert tls.Certificate.from_pem(pem).to_pem() == pem
    # Python's ssl module accepts it as a trust anchor
    ctx = ssl.create_default_context(cadata=pem.decode())
    assert ctx.cert_store_stats()["x509_ca"] + ctx.cert_store_stats()["x509"] >= 1


def test_key_arguments_are_checked(tls: Any, rsa: Any) -> None:
    with pytest.raises(ValueError, match="bits"):
        tls.PrivateKey.generate_rsa(512)
    with pytest.raises(ValueError, match="needs an EC key"):
        tls.OffloadedECKey(rsa, lambda op: b"")
    with pytest.raises(TypeError, match="callable"):
        tls.OffloadedRSAKey(rsa, "not a function")


# -- contexts ----------------------------------------------------------------------------


def test_context_settings_are_checked(tls: Any, rsa: Any) -> None:
    with pytest.raises(ValueError, match="minimum_version"):
        tls.Context(True, minimum_version="SSLv3")
    ctx = tls.Context(True)
    with pytest.raises(TypeError, match="PrivateKey or an OffloadedKey"):
        ctx.use_private_key("key.pem")
    ctx.use_certificate(tls.Certificate.self_signed(rsa))
    with pytest.raises(tls.TLSCallError):
        ctx.use_private_key(tls.PrivateKey.generate_ec())  # not the certificate's key


# -- connections: handshakes that do not pause, and misuse ------------------------------------


def _pair(tls: Any, rsa: Any, operation: Any = None, **server: Any) -> Any:
    sctx = tls.Context(True, **server)
    sctx.use_certificate(tls.Certificate.self_signed(rsa))
    sctx.use_private_key(tls.OffloadedRSAKey(rsa, operation) if operation else rsa)
    return tls.Connection(sctx), tls.Connection(tls.Context(False, async_mode=False))


def _handshake(tls: Any, s: Any, c: Any) -> None:
    for _ in range(10):
        wc = c.do_handshake()
        s.feed(c.take())
        ws = s.do_handshake()
        c.feed(s.take())
        assert ws is not tls.Want.ASYNC
        if ws is wc is tls.Want.DONE:
            return
    raise AssertionError("no handshake")


@pytest.mark.parametrize("offloaded", [False, True])
def test_a_handshake_and_records_in_memory(tls: Any, rsa: Any, offloaded: bool) -> None:
    seen: List[str] = []

    def inline(op: Any) -> bytes:
        seen.append(op.kind)
        return op.compute()

    s, c = _pair(tls, rsa, inline if offloaded else None)
    with s, c:
        _handshake(tls, s, c)
        assert s.version == c.version == "TLSv1.3"
        assert s.key_operations == (1 if offloaded else 0) and s.pauses == 0
        assert seen == (["rsa_sign"] if offloaded else [])
        assert c.write(b"ping") == (tls.Want.DONE, 4)
        s.feed(c.take())
        assert s.read() == (tls.Want.DONE, b"ping")
        assert s.read() == (tls.Want.READ, b"")
    assert s.closed and c.closed


def test_misuse_is_refused_with_clear_exceptions(tls: Any, rsa: Any) -> None:
    s, c = _pair(tls, rsa)
    with pytest.raises(ValueError, match="positive"):
        s.read(0)
    with pytest.raises(TypeError, match=r"tls\.Context"):
        tls.Connection("context")
    errors: Dict[str, BaseException] = {}

    def elsewhere() -> None:
        try:
            s.do_handshake()
        except BaseException as exc:  # noqa: BLE001 - examined below
            errors["thread"] = exc

    t = threading.Thread(target=elsewhere)
    t.start()
    t.join()
    assert isinstance(errors["thread"], pa.JobStateError)
    assert "OS thread that made it" in str(errors["thread"])
    s.close()
    c.close()
    with pytest.raises(pa.JobStateError, match="closed"):
        s.do_handshake()
    with pytest.raises(pa.JobStateError, match="closed"):
        c.feed(b"x")
    s.close()  # idempotent


def test_a_connection_cannot_be_driven_inside_a_job(tls: Any, rsa: Any) -> None:
    s, c = _pair(tls, rsa)

    def job(arg: Any) -> int:
        with pytest.raises(pa.JobStateError, match="inside a running job"):
            s.do_handshake()
        return 1

    assert pa.run_job(job, backend="openssl") == 1
    s.close()
    c.close()


def test_socket_connections_refuse_memory_bio_calls(tls: Any, rsa: Any) -> None:
    import socket

    a, b = socket.socketpair()
    with a, b:
        conn = tls.Connection(tls.Context(False, async_mode=False), sock=a)
        with pytest.raises(pa.JobStateError, match="memory BIOs"):
            conn.feed(b"x")
        with pytest.raises(pa.JobStateError, match="memory BIOs"):
            conn.take()
        conn.close()


def test_a_handshake_over_a_socket(tls: Any, rsa: Any) -> None:
    import socket

    a, b = socket.socketpair()
    sctx = tls.Context(True)
    sctx.use_certificate(tls.Certificate.self_signed(rsa))
    sctx.use_private_key(tls.OffloadedRSAKey(rsa, lambda op: op.compute()))
    result: Dict[str, Any] = {}

    def client() -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with ctx.wrap_socket(b) as s:
            s.sendall(b"over a socket\n")
            result["echo"] = s.recv(100)

    t = threading.Thread(target=client)
    t.start()
    with tls.Connection(sctx, sock=a) as conn:
        assert conn.do_handshake() is tls.Want.DONE  # a blocking socket: libssl waits itself
        _want, data = conn.read()
        assert conn.write(data) == (tls.Want.DONE, len(data))
    t.join()
    a.close()
    assert result["echo"] == b"over a socket\n"


@pytest.mark.subprocess
def test_a_forked_child_refuses_the_parents_connections_and_makes_its_own() -> None:
    from .conftest import run_isolated

    proc = run_isolated(
        """
        import os, gc
        from pyossl_async import tls
        key = tls.PrivateKey.generate_rsa(2048)
        sctx = tls.Context(True)
        sctx.use_certificate(tls.Certificate.self_signed(key))
        sctx.use_private_key(tls.OffloadedRSAKey(key, lambda op: op.compute()))
        cctx = tls.Context(False, async_mode=False)
        before = tls.Connection(sctx)
        pid = os.fork()
        if pid == 0:
            try:
                before.do_handshake()
                print("not refused")
            except Exception as exc:
                print(type(exc).__name__, exc)
            s, c = tls.Connection(sctx), tls.Connection(cctx)
            for _ in range(10):
                wc = c.do_handshake(); s.feed(c.take()); ws = s.do_handshake(); c.feed(s.take())
            print("child", s.version, s.key_operations)
            s.close(); c.close(); before.close(); del before; gc.collect()
            os._exit(0)
        os.waitpid(pid, 0)
        before.close()
        print("parent", before.closed)
        """
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "JobStateError a TLS connection made before fork() cannot be used in the child"
    assert lines[1:] == ["child TLSv1.3 1", "parent True"], proc.stdout + proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr
