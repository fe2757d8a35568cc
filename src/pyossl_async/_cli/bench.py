"""``python -m pyossl_async bench``: costs measured side by side in one process.

Every figure is compared with a reference measured in the same run, so ratios
stay meaningful on a noisy machine: the openssl backend against the bare ctypes
floor (the least any Python driving OpenSSL jobs can pay), the python backend
with each of its engines side by side (greenlets, when greenlet is installed, and
worker threads), a bare greenlet switch pair and a C loop when those are available.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from .. import _registry
from .._constants import Status
from .._errors import BackendUnavailable
from ._support import CliError, check_output_path, require_backends

__all__ = ["check_bench_args", "measure", "run_bench"]

Result = Dict[str, Any]


def rss_bytes() -> int:
    """The process's resident set size, in bytes (Linux ``/proc``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(fn: Callable[[int], float], n: int, repeats: int) -> Result:
    """Median/min/max of ``repeats`` runs of ``fn(n)`` (seconds for n operations), in us/op."""
    fn(max(n // 10, 1))  # warm up pools and caches
    samples = []
    for _ in range(repeats):
        gc.collect()
        samples.append(fn(n) / n * 1e6)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "n": n}


# -- cycle: one pause + one resume -------------------------------------------------


def _api_cycle(backend: Any) -> Callable[[int], float]:
    def run(n: int) -> float:
        pause = backend.pause_job

        def job(count: int) -> int:
            for _ in range(count):
                pause()
            return 0

        with backend.WaitCtx() as ctx:
            _, h, _ = backend.start_job(None, ctx, job, n + 1)
            start = backend.start_job
            t0 = time.perf_counter()
            for _ in range(n):
                start(h, None, None)
            dt = time.perf_counter() - t0
            start(h, None, None)
        return dt

    return run


def _module_cycle(backend: Any) -> Callable[[int], float]:
    """The cycle as users write it: ``pa.start_job`` outside, ``pa.pause_job`` inside."""
    import pyossl_async as pa

    def run(n: int) -> float:
        def job(count: int) -> int:
            for _ in range(count):
                pa.pause_job()
            return 0

        with backend.WaitCtx() as ctx:
            _, h, _ = pa.start_job(None, ctx, job, n + 1)
            start = pa.start_job
            t0 = time.perf_counter()
            for _ in range(n):
                start(h, None, None)
            dt = time.perf_counter() - t0
            start(h, None, None)
        return dt

    return run


def _on_chain(openssl: Any, fn: Callable[[int], float]) -> Callable[[int], float]:
    """``fn`` run on a thread of its own whose jobs switch through the call chain (the
    fallback of the native switch), measured in this same process."""
    import threading

    def run(n: int) -> float:
        out: List[float] = []

        def body() -> None:
            thread = openssl._thread()
            if thread.engine is None:
                thread.engine = openssl.native.new_runner("chain")
            try:
                out.append(fn(n))
            finally:
                openssl.cleanup_thread()

        t = threading.Thread(target=body)
        t.start()
        t.join()
        if not out:
            raise RuntimeError("the call-chain measurement failed")
        return out[0]

    return run


def _floor_cycle(openssl: Any, naive: bool) -> Callable[[int], float]:
    """Bare ctypes: a callback job resumed in the same frame (unsafe in general).

    ``naive``: the loop as written by hand (``byref`` built per call);
    otherwise the least Python can do (every argument prebuilt).
    """
    import ctypes

    lib = ctypes.CDLL(openssl.crypto.path)
    start, pause = lib.ASYNC_start_job, lib.ASYNC_pause_job
    start.restype = pause.restype = ctypes.c_int
    byref = ctypes.byref

    def run(n: int) -> float:
        def job_body(_: Any) -> int:
            for _ in range(n + 1):
                pause()
            return 0

        job = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(job_body)

        wctx = openssl.crypto.ASYNC_WAIT_CTX_new()
        j, ret = ctypes.c_void_p(), ctypes.c_int()
        args = (byref(j), wctx, byref(ret), job, None, 0)
        start(*args)
        t0 = time.perf_counter()
        if naive:
            for _ in range(n):
                start(byref(j), wctx, byref(ret), job, None, 0)
        else:
            for _ in range(n):
                start(*args)
        dt = time.perf_counter() - t0
        start(*args)
        openssl.crypto.ASYNC_WAIT_CTX_free(wctx)
        return dt

    return run


def _greenlet_cycle() -> Optional[Callable[[int], float]]:
    try:
        import greenlet
    except ImportError:
        return None

    def run(n: int) -> float:
        main = greenlet.getcurrent()

        def body() -> None:
            for _ in range(n + 1):
                main.switch()

        g = greenlet.greenlet(body)
        g.switch()
        t0 = time.perf_counter()
        for _ in range(n):
            g.switch()
        dt = time.perf_counter() - t0
        g.switch()
        return dt

    return run


def _python_engines() -> Dict[str, Any]:
    """A python backend per engine that can run here (greenlet first): side by side."""
    from ..backends.python import PythonBackend

    out: Dict[str, Any] = {}
    for engine in ("greenlet", "threads"):
        try:
            out[engine] = PythonBackend(engine)
        except BackendUnavailable:  # greenlet not installed
            continue
    return out


def _handoff_cycle() -> Callable[[int], float]:
    """Two threads handing control back and forth with lock semaphores: what one
    python-backend pause+resume cycle cannot go below."""
    import threading

    def run(n: int) -> float:
        to_worker, to_main = threading.Lock(), threading.Lock()
        to_worker.acquire()
        to_main.acquire()

        def worker() -> None:
            for _ in range(n):
                to_worker.acquire()
                to_main.release()

        t = threading.Thread(target=worker, daemon=True)
        t.start()
        t0 = time.perf_counter()
        for _ in range(n):
            to_worker.release()
            to_main.acquire()
        dt = time.perf_counter() - t0
        t.join()
        return dt

    return run


_C_CYCLE = r"""
#include <openssl/async.h>
#include <stdio.h>
#include <time.h>
static int job(void *a) { long n = *(long *)a; while (n--) ASYNC_pause_job(); return 0; }
int main(int argc, char **argv) {
    long n = 1000000; ASYNC_JOB *j = NULL; int ret; struct timespec t0, t1;
    ASYNC_WAIT_CTX *w = ASYNC_WAIT_CTX_new();
    ASYNC_start_job(&j, w, &ret, job, &n, sizeof(n));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 1; i < n; i++) ASYNC_start_job(&j, w, &ret, job, &n, sizeof(n));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ASYNC_start_job(&j, w, &ret, job, &n, sizeof(n));
    printf("%f\n", ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / (n - 1) / 1000.0);
    return 0;
}
"""


def _c_cycle_us(library: str) -> Optional[float]:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = os.path.join(tmp, "cycle.c"), os.path.join(tmp, "cycle")
        with open(src, "w") as f:
            f.write(_C_CYCLE)
        libdir = os.path.dirname(library)
        cmd = [cc, "-O2", src, "-o", exe, "-lcrypto"]
        if os.path.isabs(library):
            cmd += [f"-L{libdir}", f"-Wl,-rpath,{libdir}"]
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            return None
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
        try:
            return float(out.stdout.strip())
        except ValueError:
            return None


# -- start + finish ----------------------------------------------------------------


def _api_start_finish(backend: Any) -> Callable[[int], float]:
    def run(n: int) -> float:
        def job(arg: Any) -> int:
            return 0

        with backend.WaitCtx() as ctx:
            start = backend.start_job
            t0 = time.perf_counter()
            for _ in range(n):
                start(None, ctx, job)
            return time.perf_counter() - t0

    return run


def _floor_start_finish(openssl: Any, naive: bool) -> Callable[[int], float]:
    """Bare ctypes start of a job that finishes at once (OpenSSL clears the job
    variable on finish, so the same prebuilt arguments start a new job each time)."""
    import ctypes

    lib = ctypes.CDLL(openssl.crypto.path)
    start = lib.ASYNC_start_job
    start.restype = ctypes.c_int

    job = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)(lambda _: 0)

    def run(n: int) -> float:
        wctx = openssl.crypto.ASYNC_WAIT_CTX_new()
        j, ret = ctypes.c_void_p(), ctypes.c_int()
        byref = ctypes.byref
        args = (byref(j), wctx, byref(ret), job, None, 0)
        t0 = time.perf_counter()
        if naive:
            for _ in range(n):
                start(byref(j), wctx, byref(ret), job, None, 0)
        else:
            for _ in range(n):
                start(*args)
        dt = time.perf_counter() - t0
        openssl.crypto.ASYNC_WAIT_CTX_free(wctx)
        return dt

    return run


# -- scaling with many paused jobs ---------------------------------------------------


def _scaling(backend: Any, counts: List[int], repeats: int = 1) -> List[Result]:
    """Per count, the median over ``repeats`` runs of the resume cost and of the
    resident memory each paused job adds."""
    runs = [_scaling_once(backend, counts) for _ in range(repeats)]
    return [
        {
            "paused": count,
            "resume_us": statistics.median(r[i]["resume_us"] for r in runs),
            "rss_kib_per_job": statistics.median(r[i]["rss_kib_per_job"] for r in runs),
        }
        for i, count in enumerate(counts)
    ]


def _scaling_once(backend: Any, counts: List[int]) -> List[Result]:
    out = []
    pause = backend.pause_job

    def job(arg: Any) -> int:
        while True:
            pause()

    for count in counts:
        gc.collect()
        with backend.WaitCtx() as ctx:
            rss0 = rss_bytes()
            handles = [backend.start_job(None, ctx, job)[1] for _ in range(count)]
            rss1 = rss_bytes()
            start = backend.start_job
            rounds = max(1, 20000 // count)
            t0 = time.perf_counter()
            for _ in range(rounds):
                for h in handles:
                    start(h, None, None)
            resume_us = (time.perf_counter() - t0) / (rounds * count) * 1e6
            for h in handles:
                h.close()
            handles.clear()
        backend.cleanup_thread()
        out.append({"paused": count, "resume_us": resume_us, "rss_kib_per_job": (rss1 - rss0) / count / 1024})
    return out


# -- many jobs on one asyncio loop ----------------------------------------------------


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _run_on(loop_kind: str, coro: Any) -> Any:
    """Run ``coro`` to its end on a new loop: ``"asyncio"`` (the default loop) or ``"uvloop"``."""
    import asyncio

    loop: asyncio.AbstractEventLoop
    if loop_kind == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def _set_once(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


def _aio_round(backend: Any, jobs: int, waits: int, loop_kind: str = "asyncio") -> tuple[float, float]:
    """(seconds for ``jobs`` aio.run_job jobs, for as many plain coroutines), each
    making ``waits`` requests to a device thread and waiting on a pipe for the answer.

    A job always pauses (``pause_job`` with its pipe as the wait fd); a coroutine
    awaits the same pipe through ``loop.add_reader``. Both pay the same device.
    """
    import asyncio
    import queue
    import threading

    from .. import aio

    pipes = [os.pipe() for _ in range(jobs)]
    requests: "queue.SimpleQueue[Optional[int]]" = queue.SimpleQueue()

    def device() -> None:
        while True:
            w = requests.get()
            if w is None:
                return
            os.write(w, b"x")

    def job(fds: tuple[int, int]) -> int:
        r, w = fds
        ctx = backend.get_wait_ctx(backend.get_current_job())
        for _ in range(waits):
            ctx.set_wait_fd("answer", r)
            requests.put(w)
            backend.pause_job()
            os.read(r, 1)
            ctx.clear_fd("answer")
        return 0

    async def coroutine(fds: tuple[int, int]) -> int:
        loop = asyncio.get_running_loop()
        r, w = fds
        for _ in range(waits):
            fut: asyncio.Future[None] = loop.create_future()
            # (uvloop may call a reader again before it is removed: set the result once)
            loop.add_reader(r, _set_once, fut)
            requests.put(w)
            try:
                await fut
            finally:
                loop.remove_reader(r)
            os.read(r, 1)
        return 0

    async def run_jobs() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(aio.run_job(job, p, backend=backend) for p in pipes))
        return time.perf_counter() - t0

    async def run_coroutines() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(coroutine(p) for p in pipes))
        return time.perf_counter() - t0

    thread = threading.Thread(target=device, daemon=True)
    thread.start()
    try:
        return _run_on(loop_kind, run_jobs()), _run_on(loop_kind, run_coroutines())
    finally:
        requests.put(None)
        thread.join()
        for r, w in pipes:
            os.close(r)
            os.close(w)


def _aio(backend: Any, jobs: int, waits: int, repeats: int, loop_kind: str = "asyncio") -> Result:
    _aio_round(backend, max(jobs // 10, 1), waits, loop_kind)
    ours, plain = [], []
    for _ in range(repeats):
        gc.collect()
        a, b = _aio_round(backend, jobs, waits, loop_kind)
        ours.append(a / (jobs * waits) * 1e6)
        plain.append(b / (jobs * waits) * 1e6)
    o, p = statistics.median(ours), statistics.median(plain)
    return {"jobs": jobs, "waits": waits, "job_us": o, "coroutine_us": p, "ratio": o / p}


# -- a burst of jobs against the loop's responsiveness ------------------------------

#: the target for the burst stall: at most this many times that of plain coroutines
STALL_TARGET = 2.0


def _burst_round(backend: Any, jobs: int, plain: bool) -> tuple[float, float, float]:
    """(worst gap of a 1 ms ticker, the worst gap without a full garbage collection
    in it, seconds from a cancel to the task's end) while ``jobs`` calls start at
    once, each waiting for a thread pool's answer: ``aio.run_job`` jobs
    (``await_future``), or plain coroutines (``run_in_executor``).

    A full collection (its pause grows with the whole heap, the caller's included)
    lands in either side's burst at random; the gaps without one measure the driver.
    """
    import asyncio
    import concurrent.futures

    from .. import aio
    from ..engine import await_future

    pool = concurrent.futures.ThreadPoolExecutor(4)

    def work(i: int) -> int:
        return i

    def job(i: int) -> int:
        return await_future(pool.submit(work, i))

    async def coroutine(i: int) -> int:
        return await asyncio.get_running_loop().run_in_executor(pool, work, i)

    collections: List[tuple[float, float]] = []  # (start, end) of full collections

    def on_gc(phase: str, info: Dict[str, int]) -> None:
        if info.get("generation") == 2:
            if phase == "start":
                collections.append((time.perf_counter(), math.inf))
            elif collections:
                collections[-1] = (collections[-1][0], time.perf_counter())

    async def main() -> tuple[float, float, float]:
        gaps: List[tuple[float, float]] = []  # (start, end) of each tick's wait
        stop = False

        async def ticker() -> None:
            last = time.perf_counter()
            while not stop:
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append((last, now))
                last = now

        tick = asyncio.ensure_future(ticker())
        await asyncio.sleep(0.005)
        tasks = [
            asyncio.ensure_future(coroutine(i) if plain else aio.run_job(job, i, backend=backend))
            for i in range(jobs)
        ]
        await asyncio.sleep(0.002)
        victim = tasks[-1]
        cancelled_at = time.perf_counter()
        victim.cancel()
        try:
            await victim
        except asyncio.CancelledError:
            pass
        cancel_latency = time.perf_counter() - cancelled_at
        await asyncio.gather(*tasks, return_exceptions=True)
        stop = True
        await tick
        clean = [b - a for a, b in gaps if not any(s < b and a < e for s, e in collections)]
        return max(b - a for a, b in gaps), max(clean, default=0.0), cancel_latency

    gc.callbacks.append(on_gc)
    try:
        return asyncio.run(main())
    finally:
        gc.callbacks.remove(on_gc)
        pool.shutdown(wait=True)


def _burst(backend: Any, jobs: int, repeats: int) -> Result:
    _burst_round(backend, max(jobs // 10, 1), False)
    ours: List[tuple[float, float, float]] = []
    plain: List[tuple[float, float, float]] = []
    for _ in range(repeats):  # alternated, so both see the same machine
        gc.collect()
        plain.append(_burst_round(backend, jobs, True))
        gc.collect()
        ours.append(_burst_round(backend, jobs, False))

    def ms(rows: List[tuple[float, float, float]], i: int) -> float:
        return statistics.median(r[i] for r in rows) * 1e3

    stall, plain_stall = ms(ours, 1), ms(plain, 1)
    return {
        "jobs": jobs,
        "stall_ms": stall,
        "coroutine_stall_ms": plain_stall,
        "ratio": stall / plain_stall,
        "target": STALL_TARGET,
        "met": stall <= STALL_TARGET * plain_stall,
        "stall_with_gc_ms": ms(ours, 0),
        "coroutine_stall_with_gc_ms": ms(plain, 0),
        "ratio_with_gc": ms(ours, 0) / ms(plain, 0),
        "met_with_gc": ms(ours, 0) <= STALL_TARGET * ms(plain, 0),
        "cancel_ms": ms(ours, 2),
        "coroutine_cancel_ms": ms(plain, 2),
    }


# -- report ------------------------------------------------------------------------


def _row(label: str, r: Optional[Result], ref: Optional[Result] = None) -> str:
    if r is None:
        return f"  {label:<42} {'n/a':>9}"
    ratio = f"{r['median'] / ref['median']:6.2f}x" if ref else ""
    return f"  {label:<42} {r['median']:8.3f}us  [{r['min']:.3f} .. {r['max']:.3f}]  {ratio}"


def check_bench_args(args: argparse.Namespace) -> None:
    """Refuse (CliError), before any measurement, what could only fail at the end,
    and a backend the environment asks for that cannot run."""
    try:
        require_backends(_registry.requested_backends())
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if getattr(args, "json", None):
        check_output_path("--json", args.json)
    if getattr(args, "plot", None):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CliError(
                "--plot needs matplotlib, which is not installed: "
                "pip install 'pyossl-async[bench]' (or pip install matplotlib)"
            ) from None
        check_output_path("--plot", args.plot)


def run_bench(args: argparse.Namespace) -> int:
    quick = bool(getattr(args, "quick", False))
    repeats = 3 if quick else 7
    n_cycle = 20000 if quick else 100000
    results: Dict[str, Any] = {"python": sys.version.split()[0]}
    names = _registry.available_backends()
    openssl = _registry.get_backend("openssl") if "openssl" in names else None
    print(f"pyossl_async bench (CPython {results['python']}, medians of {repeats} runs, us per operation)")
    if openssl is not None:
        info = openssl.info()  # type: ignore[attr-defined]
        results["openssl"] = info
        print(
            f"  {info['openssl_version']} ({info['library']}); "
            f"gilstate={info.get('gilstate_binding')} stacks={info.get('stack_mode')}"
        )

    print("\npause + resume cycle (ratios against the prebuilt floor: the shape our own resume has)")
    cycle: Dict[str, Any] = {}
    floor: Optional[Result] = None
    if openssl is not None:
        floor = cycle["floor_minimal"] = measure(_floor_cycle(openssl, naive=False), n_cycle, repeats)
        print(_row("bare ctypes floor, every argument prebuilt", floor, floor))
        cycle["floor"] = measure(_floor_cycle(openssl, naive=True), n_cycle, repeats)
        print(_row("bare ctypes, naive loop (unsafe)", cycle["floor"], floor))
    if openssl is not None and openssl.is_capable():
        switch = openssl.info().get("switch", "?")  # type: ignore[attr-defined]
        cycle["openssl"] = measure(_api_cycle(openssl), n_cycle, repeats)
        print(_row(f"openssl backend ({switch} switch)", cycle["openssl"], floor))
        cycle["openssl_module"] = measure(_module_cycle(openssl), n_cycle, repeats)
        print(_row("  through pa.start_job/pa.pause_job", cycle["openssl_module"], floor))
        if switch == "native":
            cycle["openssl_chain"] = measure(_on_chain(openssl, _api_cycle(openssl)), n_cycle, repeats)
            print(_row("openssl backend, call chain (fallback)", cycle["openssl_chain"], floor))
            cycle["openssl_chain_module"] = measure(_on_chain(openssl, _module_cycle(openssl)), n_cycle, repeats)
            print(_row("  through pa.start_job/pa.pause_job", cycle["openssl_chain_module"], floor))
    engines = _python_engines() if "python" in names else {}
    if "python" in names:
        default = getattr(_registry.get_backend("python"), "engine", "threads")
        for engine, backend in engines.items():
            n_py = n_cycle if engine == "greenlet" else max(n_cycle // 20, 1000)
            cycle[f"python_{engine}"] = measure(_api_cycle(backend), n_py, repeats)
            print(_row(f"python backend, {engine} engine", cycle[f"python_{engine}"], floor))
        cycle["python"] = cycle.get(f"python_{default}")
        cycle["handoff"] = measure(_handoff_cycle(), max(n_cycle // 20, 1000), repeats)
        print(_row("two-thread lock handoff (threads' floor)", cycle["handoff"], floor))
    g = _greenlet_cycle()
    if g is not None:
        cycle["greenlet"] = measure(g, n_cycle, repeats)
        print(_row("greenlet switch pair (greenlet engine's floor)", cycle["greenlet"], floor))
    else:
        print("  greenlet switch pair: not installed (pip install greenlet)")
    if openssl is not None:
        c_us = _c_cycle_us(openssl.crypto.path)  # type: ignore[attr-defined]
        cycle["c"] = {"median": c_us, "min": c_us, "max": c_us} if c_us else None
        print(_row("C loop (no Python)", cycle["c"], floor) if c_us else "  C loop: no compiler/headers")
    results["cycle"] = cycle

    print("\njob start + finish (pooled; ratios against the prebuilt start floor)")
    sf: Dict[str, Any] = {}
    if openssl is not None and openssl.is_capable():
        sf["floor_minimal"] = measure(_floor_start_finish(openssl, naive=False), n_cycle // 2, repeats)
        print(_row("bare ctypes floor, every argument prebuilt", sf["floor_minimal"], sf["floor_minimal"]))
        sf["floor"] = measure(_floor_start_finish(openssl, naive=True), n_cycle // 2, repeats)
        print(_row("bare ctypes, naive loop", sf["floor"], sf["floor_minimal"]))
        sf["openssl"] = measure(_api_start_finish(openssl), n_cycle // 2, repeats)
        print(_row("openssl backend", sf["openssl"], sf["floor_minimal"]))
        if "openssl_chain" in cycle:
            sf["openssl_chain"] = measure(_on_chain(openssl, _api_start_finish(openssl)), n_cycle // 2, repeats)
            print(_row("openssl backend, call chain (fallback)", sf["openssl_chain"], sf["floor_minimal"]))
    for engine, backend in engines.items():
        n_sf = n_cycle // 2 if engine == "greenlet" else max(n_cycle // 40, 500)
        sf[f"python_{engine}"] = measure(_api_start_finish(backend), n_sf, repeats)
        print(_row(f"python backend, {engine} engine", sf[f"python_{engine}"], sf.get("floor_minimal")))
    if engines:
        sf["python"] = sf.get(f"python_{getattr(_registry.get_backend('python'), 'engine', 'threads')}")
    results["start_finish"] = sf

    counts = [10, 100, 1000] if quick else [10, 100, 1000, 10000]
    results["scaling"] = {}
    for name in names:
        backend = _registry.get_backend(name)
        if not backend.is_capable():
            continue
        use = counts if name == "openssl" else [c for c in counts if c <= 1000]
        rows = _scaling(backend, use, 3 if quick else 5)
        results["scaling"][name] = rows
        print(f"\n{name}: paused jobs -> resume cost, RSS per paused job (medians of {3 if quick else 5} runs)")
        base = rows[0]["resume_us"]
        for r in rows:
            print(
                f"  {r['paused']:>6} paused: resume {r['resume_us']:7.3f}us ({r['resume_us'] / base:4.2f}x of 10)"
                f"   {r['rss_kib_per_job']:7.1f} KiB/job"
            )

    loops = ["asyncio"] + (["uvloop"] if _uvloop_available() else [])
    aio_jobs = 200 if quick else 1000
    print(
        f"\naio.run_job: {aio_jobs} jobs in flight on one loop (as many for each backend), "
        "each pausing for a device thread's answer, against plain coroutines awaiting the same answer"
    )
    if len(loops) == 1:
        print("  (uvloop not installed: its rows are skipped; pip install uvloop)")
    results["aio"] = {}
    for loop_kind in loops:
        for name in names:
            backend = _registry.get_backend(name)
            if not backend.is_capable():
                continue
            r = _aio(backend, aio_jobs, 5 if quick else 20, 3 if quick else 5, loop_kind)
            results["aio"][f"{name}/{loop_kind}" if loop_kind != "asyncio" else name] = r
            print(
                f"  {name:<8} on {loop_kind:<8} {r['job_us']:7.2f}us per pause, plain coroutine "
                f"{r['coroutine_us']:6.2f}us: {r['ratio']:.2f}x"
            )

    print(
        "\naio.run_job burst: jobs started at once, each awaiting a thread pool; "
        "the loop's worst stall (1 ms ticker; first without the gaps a full garbage collection "
        "fell into, then with them) and one task's cancel latency"
    )
    results["burst"] = {}
    for name in names:
        backend = _registry.get_backend(name)
        if not backend.is_capable():
            continue
        jobs = 2000 if not quick else 500
        r = _burst(backend, jobs, 3 if quick else 5)
        results["burst"][name] = r
        verdict = "met" if r["met"] else "MISSED"
        print(
            f"  {name:<8} {jobs:>4} jobs: worst stall {r['stall_ms']:6.1f} ms vs plain coroutines "
            f"{r['coroutine_stall_ms']:6.1f} ms: {r['ratio']:.2f}x (target <= {STALL_TARGET:g}x: {verdict}); "
            f"counting full garbage collections {r['stall_with_gc_ms']:.1f} vs "
            f"{r['coroutine_stall_with_gc_ms']:.1f} ms: {r['ratio_with_gc']:.2f}x "
            f"({'met' if r['met_with_gc'] else 'MISSED'}); "
            f"cancel {r['cancel_ms']:.1f} ms vs {r['coroutine_cancel_ms']:.1f} ms"
        )

    results["targets"] = _targets(results)
    print("\ntargets (figures of this run)")
    for t in results["targets"]:
        verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        print(f"  {t['target']:<62} {t['value']:<28} {verdict}")

    if getattr(args, "json", None):
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"\nwrote {args.json}")
    if getattr(args, "plot", None):
        _plot(results, args.plot)
    return 0


def _targets(results: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Each performance target with this run's figure and whether it is met (None: not measured)."""
    out: List[Dict[str, Any]] = []

    def add(target: str, value: Optional[float], limit: float, unit: str = "x") -> None:
        shown = "not measured" if value is None else f"{value:.2f}{unit}"
        out.append({"target": target, "value": shown, "met": None if value is None else value <= limit})

    def ratio(a: Optional[Result], b: Optional[Result]) -> Optional[float]:
        return a["median"] / b["median"] if a and b else None

    cycle, sf = results.get("cycle", {}), results.get("start_finish", {})
    new_gil = sys.version_info >= (3, 12)
    limit = 1.5 if new_gil else 2.5
    add(f"openssl cycle <= {limit:g}x prebuilt floor ({'3.12+' if new_gil else '3.9-3.11'})",
        ratio(cycle.get("openssl"), cycle.get("floor_minimal")), limit)
    add("cycle through module functions <= 1.1x backend methods",
        ratio(cycle.get("openssl_module"), cycle.get("openssl")), 1.1)
    if "openssl_chain" in cycle:
        out.append({
            "target": "call-chain fallback cycle (informational: vs native)",
            "value": f"{ratio(cycle['openssl_chain'], cycle['openssl']):.2f}x",
            "met": None,
        })
    add("openssl start+finish <= 5x prebuilt start floor",
        ratio(sf.get("openssl"), sf.get("floor_minimal")), 5.0)
    for key, r in results.get("aio", {}).items():
        on_uv = key.endswith("/uvloop")
        cap = 2.5 if on_uv else 2.0
        add(f"aio.run_job per wait <= {cap:g}x plain coroutine ({key}{'' if on_uv else '/asyncio'})", r["ratio"], cap)
    add("python cycle (greenlet engine) <= 3x openssl cycle",
        ratio(cycle.get("python_greenlet"), cycle.get("openssl")), 3.0)
    threads = cycle.get("python_threads") or cycle.get("python")
    if threads and "openssl" in cycle:
        out.append({
            "target": "python cycle on threads (informational: vs openssl)",
            "value": f"{ratio(threads, cycle['openssl']):.2f}x",
            "met": None,
        })
    for name, rows in results.get("scaling", {}).items():
        add(f"{name}: RSS per paused job <= 32 KiB (at {rows[-1]['paused']} paused)",
            rows[-1]["rss_kib_per_job"], 32.0, " KiB")
        add(f"{name}: resume at {rows[-1]['paused']} paused <= 1.2x at 10",
            rows[-1]["resume_us"] / rows[0]["resume_us"], 1.2)
    for name, r in results.get("burst", {}).items():
        add(f"{name}: burst stall <= {STALL_TARGET:g}x plain coroutines", r["ratio"], STALL_TARGET)
    return out


def _plot(results: Dict[str, Any], path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # checked before the run (check_bench_args); kept for direct callers
        print("--plot needs matplotlib (pip install 'pyossl-async[bench]')")
        return
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, rows in results["scaling"].items():
        xs = [r["paused"] for r in rows]
        ax.plot(xs, [r["resume_us"] for r in rows], marker="o", label=name)
        ax2.plot(xs, [r["rss_kib_per_job"] for r in rows], marker="o", label=name)
    for a in (ax, ax2):
        a.set_xscale("log")
        a.set_xlabel("paused jobs")
        a.legend()
    ax.set_ylabel("resume cost (us)")
    ax.set_title("Resume cost vs paused jobs")
    ax2.set_ylabel("RSS per paused job (KiB)")
    ax2.set_title("Memory per paused job")
    fig.suptitle(f"CPython {results['python']}, {results.get('openssl', {}).get('openssl_version', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


_ = Status
