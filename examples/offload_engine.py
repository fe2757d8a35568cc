"""An async engine written in Python: jobs offload libcrypto work to an "accelerator".

    python examples/offload_engine.py [--backend openssl|python] [--lanes N] [--latency MS]

The accelerator is a thread pool (``--lanes`` threads) that runs real libcrypto
work through ctypes (``EVP_Digest`` SHA-256, ``EVP_DigestSign`` ECDSA P-256, from
the libcrypto the openssl backend loaded) after a fixed device latency
(``--latency``, default 5 ms: a queue, a PCIe round trip or a remote signer).

Job code calls the engine as if it were synchronous; the engine submits the
work, registers a wait fd, pauses the job, and when the job is resumed clears
the wake-up signal and returns the result (``pa.await_future``). Part 1 drives
one job by hand, the man page's loop, to show each step; part 2 lets
``pa.run_job`` do it.

With ``--backend python`` everything is the same except that job code runs on
a worker thread; the accelerator still uses libcrypto through ctypes (hashlib
for SHA-256 if no libcrypto can be found, and then no signatures).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import select
import sys
import threading
import time
from typing import Any, Callable, Optional, TypeVar

import evp as evp_module

import pyossl_async as pa

T = TypeVar("T")


class OffloadEngine:
    """The engine: what job code calls. Each method returns when the work is done;
    inside a job the job is paused meanwhile, outside a job the call blocks."""

    def __init__(
        self, evp: evp_module.EVP | evp_module.HashlibOnly, lanes: int = 2, latency: float = 0.005, notify: str = "fd"
    ) -> None:
        self.evp = evp
        self.latency = latency
        self.notify = notify
        self.lanes = lanes
        self.accelerator = concurrent.futures.ThreadPoolExecutor(lanes, thread_name_prefix="accelerator")
        #: when set, the device also waits for this event before it completes (part 1
        #: uses it so that the job always has paused first, however loaded the machine)
        self.gate: Optional[threading.Event] = None

    def _device(self, fn: Callable[..., T], *args: Any) -> T:
        """Runs on an accelerator lane: the device's latency, then the real work."""
        if self.latency:
            time.sleep(self.latency)
        gate = self.gate
        if gate is not None:
            gate.wait()
        return fn(*args)

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        return self.accelerator.submit(self._device, fn, *args)

    def sha256(self, data: bytes) -> bytes:
        return pa.await_future(self.submit(self.evp.sha256, data), notify=self.notify)

    def sign(self, key: evp_module.ECKey, data: bytes) -> bytes:
        return pa.await_future(self.submit(key.sign, data), notify=self.notify)

    def close(self) -> None:
        self.accelerator.shutdown()


def part1(be: pa.Backend, engine: OffloadEngine) -> None:
    print("1. One job, driven by hand (the man page's loop):")

    def job(data: bytes) -> int:
        print(f"   [job]    SHA-256 of {data!r} goes to the accelerator; the job pauses")
        digest = engine.sha256(data)  # set wait fd, pause ... resumed, clear the signal
        print(f"   [job]    resumed with the digest {digest.hex()}")
        return len(digest)

    engine.gate = threading.Event()
    with be.WaitCtx() as ctx:
        status, handle, ret = be.start_job(None, ctx, job, b"hello")
        while status == pa.PAUSE:
            fds = ctx.get_all_fds()
            print(f"   [driver] start_job() returned PAUSE; the job waits on {len(fds)} fd")
            engine.gate.set()  # the device may complete now
            select.select(fds, [], [])
            print("   [driver] the fd is readable: resume the job")
            status, handle, ret = be.start_job(handle, ctx, None)
        print(f"   [driver] start_job() returned {status.name}, result {ret}")
        print(f"   [driver] wait fds left in the context: {len(ctx.get_all_fds())}")
    engine.gate = None


def part2(be: pa.Backend, engine: OffloadEngine) -> None:
    print("2. pa.run_job: each job hashes, signs (both offloaded) and verifies:")
    try:
        key = engine.evp.ec_key()
    except RuntimeError as exc:
        key = None
        print(f"   ({exc}: SHA-256 only)")

    def job(data: bytes) -> int:
        digest = engine.sha256(data)
        line = f"   {data.decode():<7} sha256 {digest.hex()[:16]}..."
        if key is not None:
            signature = engine.sign(key, data)
            line += ", ECDSA P-256 signature " + ("verified" if key.verify(data, signature) else "BAD")
        print(line)
        return 1

    try:
        words = ("alpha", "beta", "gamma")
        done = sum(pa.run_job(job, word.encode(), backend=be, timeout=60) for word in words)
    finally:
        if key is not None:
            key.close()
    print(f"   {done} jobs finished")


def choose_backend(parser: argparse.ArgumentParser, name: Optional[str]) -> pa.Backend:
    """The backend ``--backend`` names (None: pa.get_backend()'s choice); exits with
    status 2 and the reason, as a usage error does, when it cannot run jobs here."""
    try:
        backend = pa.get_backend(name)
    except pa.AsyncError as exc:  # BackendUnavailable, SettingError: they say why in one line
        parser.exit(2, f"{parser.prog}: {exc}\n")
    if not backend.is_capable():
        why = getattr(backend, "native_error", "") or "ASYNC_is_capable() is false"
        parser.exit(2, f"{parser.prog}: the {backend.name} backend cannot run jobs here: {why}\n")
    return backend


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=["openssl", "python"], default=None, help="default: the one pa.get_backend() chooses"
    )
    parser.add_argument("--lanes", type=int, default=2, help="accelerator threads (default 2)")
    parser.add_argument("--latency", type=float, default=5.0, help="device latency in ms (default 5)")
    args = parser.parse_args()
    if args.lanes < 1 or args.latency < 0:
        parser.error("--lanes must be >= 1 and --latency >= 0")
    be = choose_backend(parser, args.backend)
    evp = evp_module.load()
    print(f"backend: {be.name}")
    work = "libcrypto" if evp.path else "hashlib"
    print(f"accelerator: {args.lanes} lanes, {args.latency:g} ms latency, {work}")
    engine = OffloadEngine(evp, lanes=args.lanes, latency=args.latency / 1000)
    try:
        part1(be, engine)
        part2(be, engine)
    finally:
        engine.close()
    return 0


if __name__ == "__main__":
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    sys.exit(main())
