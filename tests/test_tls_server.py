"""``python -m pyossl_async tls-server`` against real clients: ``openssl s_client`` (TLS 1.3
and 1.2) and Python's ``ssl`` module, many at once, on 127.0.0.1 only.

The server runs as a child process; it prints where it listens on stderr, one JSON
object per handshake on stdout, and exits 0 after ``--max-handshakes``.
"""

from __future__ import annotations

import json
import os
import queue
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import pyossl_async as pa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 120.0
OPENSSL = shutil.which("openssl")


@pytest.fixture(autouse=True, scope="module")
def _needs_jobs() -> None:
    try:
        backend = pa.get_backend("openssl")
    except pa.BackendUnavailable as exc:
        pytest.skip(f"no openssl backend: {exc}")
    if not backend.is_capable():
        pytest.skip("the openssl backend cannot run jobs here")


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "src"), env.get("PYTHONPATH")]))
    return env


#: the servers a test started: killed after it, whatever it did (a failed test must not
#: leave a server running, listening and holding its files)
_STARTED: List["subprocess.Popen[str]"] = []


@pytest.fixture(autouse=True)
def _no_server_outlives_its_test() -> Iterator[None]:
    yield
    while _STARTED:
        proc = _STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class Server:
    """``tls-server --port 0 ...`` in a child; ``port`` once it listens."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-X", "dev", "-m", "pyossl_async", "tls-server", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        _STARTED.append(self.proc)
        self.err: "queue.Queue[str]" = queue.Queue()
        self.err_lines: List[str] = []
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()
        self.port = self._listening()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.put(line)

    def _listening(self) -> int:
        while True:
            try:
                line = self.err.get(timeout=TIMEOUT)
            except queue.Empty:
                self.proc.kill()
                raise AssertionError("the server never said where it listens") from None
            self.err_lines.append(line)
            if "listening on" in line:
                return int(line.split("listening on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])

    def finish(self) -> Tuple[int, List[Dict[str, Any]], str]:
        """Wait for the exit; (status, the JSON records, stderr)."""
        assert self.proc.stdout is not None
        try:
            self.proc.wait(timeout=TIMEOUT)  # (stderr is the pump thread's: communicate would read it too)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the server did not exit; stderr: {''.join(self.err_lines)}") from None
        out = self.proc.stdout.read()
        self.pump.join(TIMEOUT)
        while not self.err.empty():
            self.err_lines.append(self.err.get())
        records = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.proc.stdout.close()
        self.proc.stderr.close()
        # (-X dev turns on asyncio's debug mode, which reports slow steps on a busy machine)
        err = "".join(line for line in self.err_lines if not line.startswith("Executing <"))
        return self.proc.returncode, records, err


def s_client(port: int, version: str, line: bytes) -> bytes:
    """``openssl s_client -tls1_3`` (or ``-tls1_2``): send ``line``, return the line echoed."""
    assert OPENSSL is not None
    with subprocess.Popen(
        [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", f"-{version}", "-quiet", "-no_ign_eof"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
            got = b""
            while not got.endswith(b"\n"):
                ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
                assert ready, "s_client got no echo"
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                got += chunk
            return got
        finally:
            proc.stdin.close()
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()


def python_client(port: int, line: bytes, version: Optional[ssl.TLSVersion], cafile: Optional[str]) -> bytes:
    if cafile:
        ctx = ssl.create_default_context(cafile=cafile)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if version is not None:
        ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(line)
            got = b""
            while not got.endswith(b"\n"):
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            return got


def key_and_cert(tmp_path: Path, kind: str = "rsa") -> Tuple[str, str]:
    """A key and a self-signed certificate for localhost made by the openssl command."""
    assert OPENSSL is not None
    key, cert = str(tmp_path / f"{kind}.key"), str(tmp_path / f"{kind}.pem")
    newkey = ["-newkey", "rsa:2048"] if kind == "rsa" else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        [OPENSSL, "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return key, cert


needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="needs the openssl command")


@needs_openssl
@pytest.mark.subprocess
def test_s_client_tls13_and_tls12_each_handshake_pausing_libssls_job() -> None:
    server = Server("--max-handshakes", "2", "--offload", "thread")
    assert s_client(server.port, "tls1_3", b"over TLS 1.3\n") == b"over TLS 1.3\n"
    assert s_client(server.port, "tls1_2", b"over TLS 1.2\n") == b"over TLS 1.2\n"
    status, records, err = server.finish()
    assert status == 0, err
    assert [r["protocol"] for r in records] == ["TLSv1.3", "TLSv1.2"], records
    for r in records:
        assert r["key_ops"] == 1 and r["pauses"] >= 1 and r["cipher"] and r["offload"] == "thread", r
    assert records[1]["cipher"].startswith("ECDHE-RSA-")


@needs_openssl
@pytest.mark.subprocess
@pytest.mark.parametrize("notify", ["callback", "fd"])
def test_many_clients_at_once_python_ssl_and_s_client(tmp_path: Path, notify: str) -> None:
    key, cert = key_and_cert(tmp_path)
    n_python, n_openssl = 24, 4
    server = Server("--cert", cert, "--key", key, "--max-handshakes", str(n_python + n_openssl), "--notify", notify)
    versions = [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2]
    with ThreadPoolExecutor(n_python + n_openssl) as clients:
        python = [
            clients.submit(python_client, server.port, b"python %d\n" % i, versions[i % 2], cert)
            for i in range(n_python)
        ]
        openssl = [
            clients.submit(s_client, server.port, ("tls1_3", "tls1_2")[i % 2], b"s_client %d\n" % i)
            for i in range(n_openssl)
        ]
        assert [f.result() for f in python] == [b"python %d\n" % i for i in range(n_python)]
        assert [f.result() for f in openssl] == [b"s_client %d\n" % i for i in range(n_openssl)]
    status, records, err = server.finish()
    assert status == 0, err
    assert len(records) == n_python + n_openssl
    assert {r["protocol"] for r in records} == {"TLSv1.2", "TLSv1.3"}
    assert all(r["key_ops"] == 1 and r["pauses"] >= 1 for r in records), records
    assert sorted(r["n"] for r in records) == list(range(1, n_python + n_openssl + 1))


@needs_openssl
@pytest.mark.subprocess
def test_an_ec_key_from_files_signs_in_python(tmp_path: Path) -> None:
    key, cert = key_and_cert(tmp_path, "ec")
    server = Server("--cert", cert, "--key", key, "--max-handshakes", "2")
    assert s_client(server.port, "tls1_2", b"ec 1.2\n") == b"ec 1.2\n"
    assert python_client(server.port, b"ec 1.3\n", None, cert) == b"ec 1.3\n"
    status, records, err = server.finish()
    assert status == 0, err
    assert records[0]["cipher"].startswith("ECDHE-ECDSA-") and records[1]["protocol"] == "TLSv1.3"
    assert all(r["key_ops"] == 1 for r in records)


@pytest.mark.subprocess
@pytest.mark.parametrize(("offload", "key_ops"), [("inline", 1), ("none", 0)])
def test_inline_and_no_offload(offload: str, key_ops: int) -> None:
    server = Server("--offload", offload, "--max-handshakes", "1")
    assert python_client(server.port, b"x\n", None, None) == b"x\n"
    status, records, err = server.finish()
    assert status == 0, err
    assert (records[0]["key_ops"], records[0]["pauses"], records[0]["offload"]) == (key_ops, 0, offload)


@pytest.mark.subprocess
def test_a_port_probe_is_no_error() -> None:
    server = Server("--max-handshakes", "1")
    for _ in range(3):
        socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT).close()
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as half:
        half.sendall(b"\x16\x03\x01")  # the start of a ClientHello, then gone
    assert python_client(server.port, b"after the probes\n", None, None) == b"after the probes\n"
    status, records, err = server.finish()
    assert status == 0, err
    assert len(records) == 1
    assert [line for line in err.splitlines() if "listening on" not in line] == []


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cert", "c.pem"], "--cert and --key go together"),
        (["--cert", "/nonexistent/c.pem", "--key", "/nonexistent/k.pem"], "cannot be read"),
        (["--max-handshakes", "-1"], "must be 0 or more"),
        (["--workers", "0"], "must be 1 or more"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: List[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyossl_async", "tls-server", "--port", "0", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr.startswith("pyossl_async tls-server: ") and message in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.subprocess
def test_a_port_out_of_range_is_refused() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pyossl_async", "tls-server", "--port", "70000"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=TIMEOUT,
    )
    assert proc.returncode == 2 and "not a TCP port" in proc.stderr, proc.stderr


@pytest.mark.subprocess
def test_ctrl_c_stops_the_server_with_status_130_whatever_it_was_doing() -> None:
    import signal
    import time

    server = Server("--offload", "thread")
    assert python_client(server.port, b"before\n", None, None) == b"before\n"
    # a client in the middle of a session: the server is waiting for its next line
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"one\n")
        assert s.recv(100) == b"one\n"
        time.sleep(0.2)  # (not an assertion: give the server time to wait again)
        server.proc.send_signal(signal.SIGINT)
        status, records, err = server.finish()
    assert status == 130, err
    assert "tls-server: interrupted" in err and "Traceback" not in err, err
    assert len(records) == 2
