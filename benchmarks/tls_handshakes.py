"""TLS handshakes per second with the private key in Python (offloaded to a thread pool,
libssl's job paused meanwhile) against the key in libcrypto, and what binding a libssl
call to its connection's thread state costs.

Usage: python benchmarks/tls_handshakes.py [--quick] [--seconds S] [--clients 1,8,64] [--json FILE]

1. Handshakes per second: ``python -m pyossl_async tls-server`` runs in a child
   process, ``--offload thread`` (asyncio server, ``SSL_MODE_ASYNC``, RSA-2048 key
   operation on a pool, the job paused while it runs) and ``--offload none`` (the
   same server, the key in libcrypto, no async mode). A second child runs C
   concurrent clients (Python's ``ssl`` on asyncio: handshake, one line echoed,
   close) for S seconds; handshakes completed / S. Both children share the
   machine's cores, so the figures are the machine's, side by side.
2. Per call: ``SSL_get_error`` through the bound switch (``Connection``'s path)
   against a plain ctypes call of the same function; nanoseconds per call, the
   best of several runs.

Standard library only; nothing here is a test (no figure is asserted).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
import timeit
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.path.join(ROOT, "src"), env.get("PYTHONPATH")]))
    return env


# -- the client child ---------------------------------------------------------------------


async def _clients(port: int, concurrency: int, seconds: float) -> int:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + seconds
    done = 0

    async def one_client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
            writer.write(b"ping\n")
            await reader.readline()
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass
            done += 1

    await asyncio.gather(*[one_client() for _ in range(concurrency)])
    return done


def client_main(port: int, concurrency: int, seconds: float) -> None:
    start = time.monotonic()
    done = asyncio.run(_clients(port, concurrency, seconds))
    print(json.dumps({"handshakes": done, "seconds": time.monotonic() - start}), flush=True)


# -- handshakes per second --------------------------------------------------------------------


def _server(offload: str) -> "tuple[subprocess.Popen[str], int]":
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyossl_async", "tls-server", "--port", "0", "--offload", offload],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if "listening on" in line:
            port = int(line.split("listening on ", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
            return proc, port
    raise SystemExit(f"the {offload} server did not start")


def handshakes_per_second(offload: str, concurrency: int, seconds: float) -> float:
    server, port = _server(offload)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--client", str(port), str(concurrency), str(seconds)],
            capture_output=True,
            text=True,
            env=_env(),
            check=True,
        ).stdout
        result = json.loads(out.strip().splitlines()[-1])
        return float(result["handshakes"]) / float(result["seconds"])
    finally:
        server.terminate()
        server.wait()
        if server.stderr is not None:
            server.stderr.close()


# -- the binding's cost per call ------------------------------------------------------------


def per_call(number: int) -> Dict[str, float]:
    from pyossl_async import tls
    from pyossl_async.tls._support import get_support

    lib = get_support().lib
    conn = tls.Connection(tls.Context(False, async_mode=False))
    core = conn._core
    bound = core.bound
    assert bound is not None
    fn = lib.address("SSL_get_error")
    ssl_ptr = core.ssl
    direct = lib.SSL_get_error
    results = {
        "direct ctypes call": min(timeit.repeat(lambda: direct(ssl_ptr, 1), number=number, repeat=5)),
        "bound call (BoundSSL.call)": min(timeit.repeat(lambda: bound.call(fn, 1), number=number, repeat=5)),
        "Connection method (async_status)": min(timeit.repeat(conn.async_status, number=number, repeat=5)),
    }
    conn.close()
    return {name: seconds / number * 1e9 for name, seconds in results.items()}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s per figure instead of 5")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per handshake figure")
    parser.add_argument("--clients", default="1,8,64", help="concurrent clients, comma-separated")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--client", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        client_main(int(args.client[0]), int(args.client[1]), float(args.client[2]))
        return 0
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    counts = [int(c) for c in args.clients.split(",")]
    from pyossl_async import tls

    info = tls.info()
    print(f"{info['openssl_version']}; {info['libssl']}; CPython {sys.version.split()[0]}; switch {info['switch']}")
    print(f"key operations on {info['key_operation_stacks']}; {os.cpu_count()} CPUs; {seconds:g} s per figure\n")
    table: Dict[str, Any] = {"info": info, "handshakes_per_second": {}, "ns_per_call": {}}
    print(f"{'clients':>8} | {'offloaded to a pool, async':>28} | {'key in libcrypto, no async':>28}")
    print(f"{'-' * 8}-+-{'-' * 28}-+-{'-' * 28}")
    for n in counts:
        thread = handshakes_per_second("thread", n, seconds)
        none = handshakes_per_second("none", n, seconds)
        table["handshakes_per_second"][n] = {"thread": thread, "none": none}
        print(f"{n:>8} | {thread:>24.0f} /s | {none:>24.0f} /s", flush=True)
    print()
    number = 20_000 if args.quick else 100_000
    for name, ns in per_call(number).items():
        table["ns_per_call"][name] = ns
        print(f"{name:<36} {ns:8.0f} ns per call")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
