"""1,000 ECDSA signing jobs in flight on one asyncio loop, against one at a time.

    python examples/many_jobs_asyncio.py [--jobs N] [--lanes N] [--latency MS]
                                         [--backend openssl|python] [--uvloop] [--notify auto|fd]

Each job signs a message through the offload engine of ``offload_engine.py``: the
signature (ECDSA P-256, ``EVP_DigestSign`` in libcrypto) runs on an accelerator
with ``--lanes`` lanes and ``--latency`` ms of device latency, while the job is
paused and the loop's thread serves the other jobs. The same jobs are run once
one by one (each awaited before the next starts: one request in the accelerator
at a time) and once all at once (``asyncio.gather`` of ``aio.run_job``), and the
throughputs are printed. Every signature is then verified.

With ``--latency 0`` the accelerator is just two CPU cores' worth of libcrypto:
what is left is the cost of pausing and resuming, and concurrency has little to
gain. ``--notify fd`` makes the engine wake jobs through wait fds (one pipe per
request, watched with ``loop.add_reader``) instead of the wait-ctx callback.
A progress line is shown on a terminal, and nothing when the output is piped.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from typing import List, Tuple

import evp as evp_module
from offload_engine import OffloadEngine, choose_backend

import pyossl_async as pa
from pyossl_async import aio


class Progress:
    """``label [i/n] item`` rewritten in place on stderr when it is a terminal; nothing otherwise."""

    def __init__(self, total: int, label: str, interval: float = 0.1) -> None:
        self.total, self.label, self.interval = total, label, interval
        self.enabled = sys.stderr.isatty()
        self.done = 0
        self.last = 0.0
        self.width = 0

    def step(self, item: str) -> None:
        self.done += 1
        now = time.monotonic()
        if not self.enabled or (now - self.last < self.interval and self.done < self.total):
            return
        self.last = now
        line = f"{self.label} [{self.done}/{self.total}] {item}"[:100]
        sys.stderr.write("\r" + line + " " * max(self.width - len(line), 0))
        sys.stderr.flush()
        self.width = len(line)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


async def sign_all(
    be: pa.Backend, engine: OffloadEngine, key: evp_module.ECKey, n: int, together: bool, label: str
) -> Tuple[float, int, List[Tuple[bytes, bytes]]]:
    messages = [b"message %d" % i for i in range(n)]
    signatures: List[bytes] = [b""] * n
    in_flight = [0, 0]  # now, most

    def job(i: int) -> int:
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        signatures[i] = engine.sign(key, messages[i])  # the job pauses here
        in_flight[0] -= 1
        return len(signatures[i])

    with Progress(n, label) as progress:

        async def one(i: int) -> int:
            ret: int = await aio.run_job(job, i, backend=be)
            progress.step(f"job {i}")
            return ret

        start = time.perf_counter()
        if together:
            await asyncio.gather(*(one(i) for i in range(n)))
        else:
            for i in range(n):
                await one(i)
        elapsed = time.perf_counter() - start
    return elapsed, in_flight[1], list(zip(messages, signatures))


def at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=at_least_one, default=1000, help="signing jobs (default 1000)")
    parser.add_argument("--lanes", type=at_least_one, default=32, help="accelerator lanes (default 32)")
    parser.add_argument("--latency", type=float, default=1.0, help="device latency in ms (default 1)")
    parser.add_argument(
        "--backend", choices=["openssl", "python"], default=None, help="default: the one pa.get_backend() chooses"
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (pip install uvloop)")
    parser.add_argument(
        "--notify", choices=["auto", "fd"], default="auto", help="how the engine wakes jobs (default: the callback)"
    )
    args = parser.parse_args()
    if args.latency < 0:
        parser.error(f"argument --latency: {args.latency:g} is not >= 0")
    if args.uvloop:
        try:
            import uvloop
        except ImportError:
            parser.exit(2, f"{parser.prog}: --uvloop needs uvloop, which is not installed: pip install uvloop\n")

    be = choose_backend(parser, args.backend)
    evp = evp_module.load()
    if evp.path is None:
        parser.exit(2, f"{parser.prog}: this example needs libcrypto for ECDSA signatures, and none was found\n")
    if args.uvloop:
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    engine = OffloadEngine(evp, lanes=args.lanes, latency=args.latency / 1000, notify=args.notify)
    key = evp.ec_key()
    n = args.jobs
    mode = "wait-ctx callback" if args.notify == "auto" else "wait fds"
    print(f"backend: {be.name}, event loop: {'uvloop' if args.uvloop else 'asyncio'}, jobs woken by: {mode}")
    latency = f"{args.latency:g} ms latency per request"
    print(f"accelerator: {args.lanes} lanes, {latency}, ECDSA P-256 in libcrypto")
    try:
        one_by_one, _, signed1 = loop.run_until_complete(sign_all(be, engine, key, n, False, "one by one"))
        print(f"one by one:  {n} signatures in {one_by_one:.2f} s ({n / one_by_one:7.0f}/s), 1 job in flight")
        together, most, signed2 = loop.run_until_complete(sign_all(be, engine, key, n, True, "all at once"))
        rate = n / together
        print(f"all at once: {n} signatures in {together:.2f} s ({rate:7.0f}/s), {most} jobs in flight")
        print(f"speed-up: {one_by_one / together:.1f}x")
        good = sum(key.verify(message, signature) for message, signature in signed1 + signed2)
        print(f"{good} of {2 * n} signatures verified")
    finally:
        key.close()
        engine.close()
        loop.close()
    return 0 if good == 2 * n else 1


if __name__ == "__main__":
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
