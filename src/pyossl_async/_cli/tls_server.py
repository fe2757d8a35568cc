"""``python -m pyossl_async tls-server``: a TLS echo server whose private-key operations
run in Python, for any client (``openssl s_client``, Python's ``ssl``, browsers...).

A line in, the same line out, until the client closes. One JSON object per
completed handshake on stdout: ``n``, ``peer``, ``protocol``, ``cipher``,
``offload``, ``key_ops`` (private-key operations run in Python for that
connection's handshake) and ``pauses`` (times libssl's job paused). The key
operation is

* ``thread`` (default): handed to a thread pool; libssl's job pauses (at least
  once) while the pool computes it, and the loop serves other connections;
* ``inline``: computed in the job itself, without pausing;
* ``none``: no offload: the key is libcrypto's (and ``SSL_MODE_ASYNC`` is off).

A connection that closes before its handshake (a port probe) is no error.
With ``--max-handshakes N`` the server stops accepting after N handshakes and
exits 0 once their sessions have ended (or after ``GRACE_SECONDS``).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import sys
from typing import Any, Callable, Optional, Set

from ._support import CliError

__all__ = ["GRACE_SECONDS", "add_arguments", "check_args", "run_server"]

OFFLOAD_MODES = ("thread", "inline", "none")
#: how long sessions still open after the last handshake may go on before the server exits
GRACE_SECONDS = 10.0
#: exit status after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, required=True, help="TCP port to listen on (0: any free one)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--cert", metavar="FILE", help="certificate (PEM); with --key; default: a throwaway one")
    parser.add_argument("--key", metavar="FILE", help="private key (PEM, RSA or EC, unencrypted); with --cert")
    parser.add_argument(
        "--offload",
        choices=OFFLOAD_MODES,
        default="thread",
        help="where private-key operations run: a thread pool, pausing libssl's job (default); "
        "inline in the job; none: in libcrypto",
    )
    parser.add_argument(
        "--max-handshakes", type=int, default=0, metavar="N", help="exit 0 after N handshakes (0: run until Ctrl-C)"
    )
    parser.add_argument(
        "--notify",
        choices=("callback", "fd"),
        default="callback",
        help="how the loop learns a paused job can go on: SSL_set_async_callback (default) or the async fds",
    )
    parser.add_argument("--workers", type=int, default=4, help="threads of the key-operation pool (default 4)")


def check_args(args: argparse.Namespace) -> None:
    """Refuse (CliError, one line) what cannot work, before anything starts."""
    if not 0 <= args.port <= 65535:
        raise CliError(f"--port {args.port}: not a TCP port (0 to 65535)")
    if args.max_handshakes < 0:
        raise CliError(f"--max-handshakes {args.max_handshakes}: must be 0 or more")
    if args.workers < 1:
        raise CliError(f"--workers {args.workers}: must be 1 or more")
    if (args.cert is None) != (args.key is None):
        raise CliError("--cert and --key go together")
    for option, path in (("--cert", args.cert), ("--key", args.key)):
        if path is not None and not os.access(path, os.R_OK):
            raise CliError(f"{option} {path}: cannot be read")


def _key_operation(mode: str, pool: Optional[concurrent.futures.Executor]) -> Callable[[Any], bytes]:
    import pyossl_async as pa

    if mode == "inline":

        def inline(op: Any) -> bytes:
            result: bytes = op.compute()
            return result

        return inline

    assert pool is not None

    def offloaded(op: Any) -> bytes:
        future: concurrent.futures.Future[bytes] = pool.submit(op.compute)
        pa.pause_job()  # libssl's job waits while the pool works; the loop serves others
        return pa.await_future(future)

    return offloaded


class _Server:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.handshakes = 0
        self.sessions: Set["asyncio.Task[Any]"] = set()
        self.enough: Optional[asyncio.Event] = None  # made on the loop (3.9 binds one at creation)
        self.pool: Optional[concurrent.futures.ThreadPoolExecutor] = None

    def context(self) -> Any:
        from .. import tls

        args = self.args
        try:
            if args.cert is not None:
                cert = tls.Certificate.from_file(args.cert)
                key = tls.PrivateKey.from_file(args.key)
            else:
                key = tls.PrivateKey.generate_rsa(2048)
                cert = tls.Certificate.self_signed(key, "localhost")
        except tls.TLSError as exc:
            raise CliError(f"cannot use the certificate or key: {exc}") from None
        ctx = tls.Context(True, async_mode=args.offload != "none")
        ctx.use_certificate(cert)
        if args.offload == "none":
            usable: Any = key
        else:
            if args.offload == "thread":
                self.pool = concurrent.futures.ThreadPoolExecutor(args.workers, thread_name_prefix="tls-key")
            operation = _key_operation(args.offload, self.pool)
            if key.kind == "RSA":
                usable = tls.OffloadedRSAKey(key, operation)
            elif key.kind == "EC":
                usable = tls.OffloadedECKey(key, operation)
            else:
                raise CliError(f"--key {args.key}: a {key.kind} key cannot be offloaded (RSA or EC)")
        try:
            ctx.use_private_key(usable)
        except tls.TLSError as exc:
            raise CliError(f"the key does not fit the certificate: {exc}") from None
        return ctx

    async def session(self, stream: Any) -> None:
        from .. import tls

        task = asyncio.current_task()
        if task is not None:
            self.sessions.add(task)
        peer = stream.peername()
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
        try:
            try:
                await stream.handshake()
            except tls.TLSEOFError:
                return  # closed before the handshake: a port probe
            except tls.TLSError as exc:
                print(f"tls-server: {where}: handshake failed: {exc}", file=sys.stderr, flush=True)
                return
            assert self.enough is not None
            if self.enough.is_set():
                return
            self.handshakes += 1
            record = {
                "n": self.handshakes,
                "peer": where,
                "protocol": stream.version,
                "cipher": stream.cipher,
                "offload": self.args.offload,
                "key_ops": stream.key_operations,
                "pauses": stream.pauses,
            }
            print(json.dumps(record), flush=True)
            if self.args.max_handshakes and self.handshakes >= self.args.max_handshakes:
                self.enough.set()
            while True:
                line = await stream.readline()
                if not line:
                    return
                await stream.write(line)
        except tls.TLSError as exc:
            print(f"tls-server: {where}: {exc}", file=sys.stderr, flush=True)
        finally:
            if task is not None:
                self.sessions.discard(task)

    async def main(self, ctx: Any) -> int:
        from .. import tls
        from ..tls import aio

        self.enough = asyncio.Event()
        args = self.args
        try:
            server = await aio.serve(ctx, self.session, args.host, args.port, notify=args.notify)
        except OSError as exc:
            raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        port = server.sockets[0].getsockname()[1]
        info = tls.info()
        print(
            f"tls-server: listening on {args.host}:{port} (offload {args.offload}, notify {args.notify}, "
            f"{info['openssl_version']}, {info['libssl']})",
            file=sys.stderr,
            flush=True,
        )
        graceful = False
        try:
            await self.enough.wait()
            graceful = True
        finally:
            # enough handshakes: the sessions still open get GRACE_SECONDS to end; on Ctrl-C
            # (the main task cancelled) they are cancelled at once
            server.close()
            if graceful and self.sessions:
                await asyncio.wait(set(self.sessions), timeout=GRACE_SECONDS)
            for task in list(self.sessions):
                task.cancel()
            if self.sessions:
                await asyncio.wait(set(self.sessions), timeout=GRACE_SECONDS)
            await server.wait_closed()
        return 0


def run_server(args: argparse.Namespace) -> int:
    """The command: serve until ``--max-handshakes`` (exit 0) or Ctrl-C (exit 130)."""
    from .._errors import BackendUnavailable

    check_args(args)
    server = _Server(args)
    try:
        from ..tls import info

        info()  # libssl and the openssl backend, or a one-line refusal
    except BackendUnavailable as exc:
        raise CliError(str(exc)) from None
    try:
        ctx = server.context()  # (the key generation too) before the loop runs
        return asyncio.run(server.main(ctx))
    except KeyboardInterrupt:
        print("tls-server: interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    finally:
        if server.pool is not None:
            server.pool.shutdown(wait=False, cancel_futures=True)
