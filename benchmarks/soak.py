"""Soak run: does pyossl_async hold flat under sustained load?

Unit tests prove that one job, or ten thousand, leave nothing behind. This
script shows the same for a long, busy process, the way a service would use the
library, and prints the figures so they can be read rather than asserted:

* **threads**: several threads each keep thousands of their own jobs paused at
  once and resume them in shuffled and in round-robin order for a minute. Each
  job pauses a random number of times and then finishes, or is closed while
  paused with ``job.close()``; either way a new job takes its place, so start,
  resume, finish and close all happen all the time. Every job has its own
  ``WaitCtx`` (created by its thread, closed when the job ends) on which it sets
  and clears a wait fd.
* **churn**: one thread starts and finishes a million jobs, half of them pausing
  once, all sharing one ``WaitCtx``.

Before each phase, after a warm-up, periodically and at the end (with every
job thread parked, so the counts are exact) it records the resident memory
(RSS), the bytes malloc has handed out (mallinfo2) and the Python allocator's
live blocks, the open fds, the Python thread states in the interpreter, the OS
threads and the memory mappings of the process, with the jobs done and jobs/s;
then, once everything is closed and ``cleanup_thread()`` ran on every thread,
once more. Per metric it prints the growth from the post-warm-up sample to the
end of the phase, and over the phase's second half, and a verdict against
thresholds defined below: flat, settled (it grew early, then stopped) or
GROWING; fds, thread states and OS threads must not grow at all. RSS that grows
while malloc's and Python's live data stay flat is the allocators keeping freed
memory, and is said to be so.

The python backend runs every paused job on an OS thread of its own, so its
defaults are smaller than the issue's (the script prints by how much and why);
any run is also scaled down to what the machine's thread, mapping and memory
limits allow, and says so.

It asserts no timing: a slow machine gives smaller rates, never a failure. The
exit status is 1 only when the library misbehaved (an unexpected status, a
wrong result, a close that did not unwind its job); growth is reported, not
turned into a failure.

    python benchmarks/soak.py [--backend openssl|python|all] [--seconds 60]
        [--threads 8] [--jobs-per-thread 2000] [--churn 1000000] [--quick] [--json FILE]

Linux only (it reads ``/proc/self``). Standard library only.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import random
import resource
import sys
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

try:
    import pyossl_async as pa
except ImportError:  # run from a checkout without installing: use its src/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
    import pyossl_async as pa

from pyossl_async._cli.bench import rss_bytes  # after the src/ fallback above

MIB = 1 << 20

# -- what "flat" means -------------------------------------------------------------

#: RSS may grow by this much between the post-warm-up sample and the end of a
#: phase and still count as flat (allocator pools, arenas and caches settle)...
RSS_FLAT_BYTES = 8 * MIB
#: ...or by this fraction of the post-warm-up RSS, whichever is larger
RSS_FLAT_FRACTION = 0.03
#: bytes handed out by malloc and not freed (glibc's mallinfo2): C-level live data,
#: where RSS also counts what the allocator keeps after a free
MALLOC_FLAT_BYTES = 4 * MIB
#: memory blocks the Python allocator has handed out (sys.getallocatedblocks()):
#: Python-level live objects; a leak of one object per thousand jobs exceeds it
BLOCKS_FLAT = 2000
#: memory mappings come and go with the allocators' arenas: this many more is flat
MAPS_FLAT = 64
#: these are counts of things the library creates and must give back: any growth is growth
EXACT_METRICS = ("fds", "tstates", "threads")
#: live data: if these are flat while RSS grows, the growth is memory the allocators keep
LIVE_METRICS = ("malloc", "blocks")
METRICS = ("rss", "malloc", "blocks", "fds", "tstates", "threads", "maps")
METRIC_NAMES = {
    "rss": "RSS",
    "malloc": "malloc in use",
    "blocks": "Python blocks",
    "fds": "open fds",
    "tstates": "thread states",
    "threads": "OS threads",
    "maps": "memory maps",
}

# -- the workload ------------------------------------------------------------------

#: a threads-phase job pauses uniformly 0..MAX_PAUSES times before it finishes
MAX_PAUSES = 16
#: the share of resumes that close the paused job instead
CLOSE_FRACTION = 0.02
#: periodic samples per phase, between the post-warm-up one and the end
PERIODIC_SAMPLES = 5
#: the wait-ctx key and fd jobs set: wait fds are plain ints to the library and
#: nothing here polls them, so no real fd is needed (the fd count stays the library's)
WAIT_KEY = "soak"
FAKE_FD = 1_000_000


@dataclass(frozen=True)
class Figures:
    threads: int
    jobs_per_thread: int
    seconds: float
    churn: int
    warmup: float


#: the issue's figures (issue 7, item 3)
ISSUE = Figures(threads=8, jobs_per_thread=2000, seconds=60.0, churn=1_000_000, warmup=5.0)
#: the python backend parks every paused job on its own OS thread, and each of its
#: resumes is two handoffs through the OS scheduler (tens of microseconds)
PYTHON_DEFAULT = Figures(threads=8, jobs_per_thread=250, seconds=60.0, churn=500_000, warmup=5.0)
PYTHON_WHY = (
    "each paused python-backend job is parked on its own OS thread and each resume is two "
    "thread handoffs, so 8 x 2,000 would start 16,000 threads (starting them takes most of a "
    "minute on a small machine, and each job would be resumed only a few times) and "
    "1,000,000 churn jobs would take minutes; pass --jobs-per-thread/--churn to choose other figures"
)
QUICK = Figures(threads=2, jobs_per_thread=50, seconds=2.0, churn=20_000, warmup=0.5)


class SoakError(Exception):
    """The library did something the contract does not allow."""


# -- process metrics (rss_bytes is the bench's) -------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def memory_maps() -> int:
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _find_mallinfo2() -> Optional[Any]:
    try:
        fn = ctypes.CDLL(None).mallinfo2  # glibc 2.33+
    except (AttributeError, OSError):
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    return fn


_mallinfo2 = _find_mallinfo2()


def malloc_in_use() -> int:
    """Bytes malloc has handed out and not got back, in every arena; -1 if unknown.

    Python objects larger than 512 bytes, OpenSSL's jobs and wait contexts and
    ctypes buffers live here; small Python objects are counted by Python blocks.
    """
    if _mallinfo2 is None:
        return -1
    info = _mallinfo2()
    return int(info.uordblks) + int(info.hblkhd)  # small chunks in arenas + mmap-ed big ones


def _api(name: str, argtypes: Sequence[Any]) -> Any:
    # pythonapi[name] builds a new function object, so setting its types leaves the
    # cached pythonapi.<name> attributes (which the library binds itself) alone
    fn = ctypes.pythonapi[name]
    fn.restype = ctypes.c_void_p
    fn.argtypes = list(argtypes)
    return fn


_interp_head = _api("PyInterpreterState_Head", ())
_interp_next = _api("PyInterpreterState_Next", (ctypes.c_void_p,))
_thread_head = _api("PyInterpreterState_ThreadHead", (ctypes.c_void_p,))
_thread_next = _api("PyThreadState_Next", (ctypes.c_void_p,))


def thread_states() -> int:
    """Python thread states in every interpreter of the process (public C API walk).

    ``pythonapi`` is a ``PyDLL``: each call holds the GIL. The list could still
    change between two calls if another thread ran in between, so this is only
    called while every other thread that could create or delete a thread state
    is parked (the samples below make sure of it).
    """
    count = 0
    interp = _interp_head()
    while interp:
        ts = _thread_head(interp)
        while ts:
            count += 1
            ts = _thread_next(ts)
        interp = _interp_next(interp)
    return count


@dataclass
class Sample:
    label: str
    #: seconds since the phase started, when the sample began
    t: float
    #: seconds the sample itself took (gc.collect and the /proc reads)
    cost: float
    jobs: int
    resumes: int
    rss: int
    malloc: int
    blocks: int
    fds: int
    tstates: int
    threads: int
    maps: int


def take_sample(label: str, t0: float, jobs: int, resumes: int) -> Sample:
    start = time.perf_counter()
    gc.collect()
    rss, mem, blocks = rss_bytes(), malloc_in_use(), sys.getallocatedblocks()
    fds, ts, th, maps = open_fds(), thread_states(), os_threads(), memory_maps()
    return Sample(label, start - t0, time.perf_counter() - start, jobs, resumes, rss, mem, blocks, fds, ts, th, maps)


def teardown_sample(label: str, t0: float, jobs: int, resumes: int, before: Sample) -> Sample:
    """A sample after teardown. A thread that a join() already returned for may
    still be leaving /proc/self/task; wait up to 5 s for the counts to come back
    down to ``before`` (they stay up if something really kept them)."""
    deadline = time.monotonic() + 5.0
    while True:
        s = take_sample(label, t0, jobs, resumes)
        if (s.threads <= before.threads and s.tstates <= before.tstates) or time.monotonic() > deadline:
            return s
        time.sleep(0.02)


# -- verdicts --------------------------------------------------------------------


def rss_limit(warm: Sample) -> int:
    return max(RSS_FLAT_BYTES, int(warm.rss * RSS_FLAT_FRACTION))


def _mid(samples: List[Sample], warm: Sample, end: Sample) -> Sample:
    """The sample nearest the middle of the measured part of the phase."""
    middle = (warm.t + end.t) / 2
    inner = [s for s in samples if warm.t <= s.t <= end.t]
    return min(inner, key=lambda s: abs(s.t - middle))


def _judge(growth: int, late: int, limit: int) -> str:
    """``flat``: within the limit. ``settled``: over it, but the second half of the
    phase added at most half the limit, where a steady leak that crossed the limit
    would add more than half of it: a pool or cache reached its size, and stopped.
    ``GROWING``: anything else."""
    if growth <= limit:
        return "flat"
    if limit > 0 and late <= limit / 2:
        return "settled"
    return "GROWING"


def verdicts(samples: List[Sample]) -> Dict[str, Dict[str, Any]]:
    by = {s.label: s for s in samples}
    warm, end = by["warm-up"], by["end"]
    mid = _mid(samples, warm, end)
    out: Dict[str, Dict[str, Any]] = {}
    jobs = end.jobs - warm.jobs
    for m in METRICS:
        a, b = getattr(warm, m), getattr(end, m)
        growth, late = b - a, b - getattr(mid, m)
        if m == "malloc" and a < 0:
            out[m] = {"warm": a, "end": b, "growth": 0, "second_half": 0, "limit": 0, "verdict": "n/a", "flat": True}
            out[m]["text"] = "n/a (no mallinfo2 in this libc)"
            continue
        if m in ("rss", "malloc"):
            limit = rss_limit(warm) if m == "rss" else MALLOC_FLAT_BYTES
            verdict = _judge(growth, late, limit)
            per_job = f", {growth / jobs:+.2f} B per job done" if jobs else ""
            text = (
                f"{growth / MIB:+.1f} MiB over the phase{per_job}, {late / MIB:+.1f} MiB in its second half "
                f"({verdict}: limit {limit / MIB:.1f} MiB)"
            )
        elif m in ("blocks", "maps"):
            limit = BLOCKS_FLAT if m == "blocks" else MAPS_FLAT
            verdict = _judge(growth, late, limit)
            per_job = f", {growth / jobs:+.4f} per job done" if jobs and m == "blocks" else ""
            text = f"{a:,} -> {b:,}, {growth:+,d}{per_job}, {late:+,d} in its second half ({verdict}: limit {limit:,})"
        else:
            limit = 0
            verdict = _judge(growth, late, limit)
            text = f"{a} -> {b}, {growth:+d} ({verdict})"
        out[m] = {
            "warm": a,
            "end": b,
            "growth": growth,
            "second_half": late,
            "limit": limit,
            "verdict": verdict,
            "flat": verdict != "GROWING",
            "text": text,
        }
    if out["rss"]["verdict"] != "flat" and all(out[m]["verdict"] in ("flat", "n/a") for m in LIVE_METRICS):
        out["rss"]["text"] += (
            "; live data (malloc in use, Python blocks) is flat: the growth is freed memory "
            "the allocators keep (fragmentation), not a leak"
        )
        out["rss"]["fragmentation"] = True
    return out


def released(before: Sample, after: Sample) -> Dict[str, Dict[str, Any]]:
    """Whether tearing the phase down gave back what it took (exact metrics)."""
    out: Dict[str, Dict[str, Any]] = {}
    for m in METRICS:
        a, b = getattr(before, m), getattr(after, m)
        out[m] = {"before": a, "after": b, "growth": b - a, "released": (b <= a) if m in EXACT_METRICS else None}
    return out


# -- printing --------------------------------------------------------------------

_HEADER = (
    f"  {'sample':<9} {'t (s)':>6} {'jobs done':>10} {'jobs/s':>7} {'resumes/s':>9} "
    f"{'RSS MiB':>7} {'malloc':>7} {'blocks':>9} {'fds':>4} {'tstates':>7} {'threads':>7} {'maps':>6}"
)


def print_table(samples: List[Sample]) -> None:
    print(_HEADER)
    prev: Optional[Sample] = None
    for s in samples:
        rate = rrate = "-"
        if prev is not None and s.label not in ("before", "after") and prev.label != "before":
            span = s.t - (prev.t + prev.cost)
            if span > 0:
                rate = f"{(s.jobs - prev.jobs) / span:,.0f}"
                rrate = f"{(s.resumes - prev.resumes) / span:,.0f}"
        mem = f"{s.malloc / MIB:.1f}" if s.malloc >= 0 else "-"
        print(
            f"  {s.label:<9} {s.t:>6.1f} {s.jobs:>10,} {rate:>7} {rrate:>9} "
            f"{s.rss / MIB:>7.1f} {mem:>7} {s.blocks:>9,} {s.fds:>4} {s.tstates:>7} {s.threads:>7} {s.maps:>6}"
        )
        prev = s


def print_verdicts(result: Dict[str, Any]) -> None:
    print("  growth from warm-up to end:")
    for m in METRICS:
        print(f"    {METRIC_NAMES[m]:<14} {result['verdicts'][m]['text']}")
    rel = result["released"]
    parts = [f"{METRIC_NAMES[m]} {rel[m]['growth']:+d}" for m in EXACT_METRICS]
    parts.append(f"memory maps {rel['maps']['growth']:+d}")
    parts.append(f"Python blocks {rel['blocks']['growth']:+,d}")
    if rel["malloc"]["before"] >= 0:
        parts.append(f"malloc in use {rel['malloc']['growth'] / MIB:+.1f} MiB")
    parts.append(f"RSS {rel['rss']['growth'] / MIB:+.1f} MiB")
    ok = all(rel[m]["released"] for m in EXACT_METRICS)
    print(f"  after teardown vs before the phase: {', '.join(parts)} ({'all given back' if ok else 'NOT given back'})")


# -- the threads phase -----------------------------------------------------------


class Stats:
    """One driving thread's counters (its jobs run one at a time, so no lock)."""

    __slots__ = ("cancelled", "closed", "finished", "resumes", "started", "teardown_closed", "unwound")

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.closed = 0
        self.teardown_closed = 0
        self.resumes = 0
        #: JobCancelled seen inside jobs, and finally blocks run by jobs
        self.cancelled = 0
        self.unwound = 0

    @property
    def done(self) -> int:
        return self.finished + self.closed


def make_soak_job(backend: pa.Backend) -> Callable[[Tuple[Stats, int]], int]:
    pause, current, wait_ctx = backend.pause_job, backend.get_current_job, backend.get_wait_ctx

    def soak_job(arg: Tuple[Stats, int]) -> int:
        stats, pauses = arg
        job = current()
        assert job is not None
        ctx = wait_ctx(job)
        del job  # a paused frame holding its own handle would keep the job alive
        assert ctx is not None
        ctx.set_wait_fd(WAIT_KEY, FAKE_FD)
        try:
            for _ in range(pauses):
                pause()
        except pa.JobCancelled:
            stats.cancelled += 1
            raise
        finally:
            stats.unwound += 1
        ctx.clear_fd(WAIT_KEY)
        return pauses

    return soak_job


class Coordinator:
    """Parks every driving thread between two of its operations for a sample."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties + 1, timeout=600)
        #: set by the main thread: park at the next chance
        self.sample_requested = False
        #: set by the main thread before the last sample: leave once released
        self.ending = False
        #: set by the main thread when the phase is abandoned (a failure)
        self.aborted = False
        self.filled = threading.Semaphore(0)
        self.failed = threading.Event()
        self.errors: List[str] = []
        self._lock = threading.Lock()

    def park(self) -> None:
        """In a driving thread: wait while the main thread samples."""
        self.barrier.wait()
        self.barrier.wait()

    def sample(self, label: str, t0: float, stats: List[Stats]) -> Sample:
        """In the main thread: park every driving thread, sample, release them."""
        self.sample_requested = True
        self.barrier.wait()
        self.sample_requested = False  # before the release: no one parks twice
        s = take_sample(label, t0, sum(x.done for x in stats), sum(x.resumes for x in stats))
        self.barrier.wait()
        return s

    def fail(self, where: str, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(f"{where}: " + "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        self.failed.set()
        self.barrier.abort()


class _Slot:
    __slots__ = ("ctx", "handle", "pauses")

    def __init__(self, handle: pa.Job, ctx: pa.WaitCtxType, pauses: int) -> None:
        self.handle = handle
        self.ctx = ctx
        self.pauses = pauses


class Driver:
    """One thread keeping ``jobs`` of its own jobs paused and resuming them."""

    def __init__(self, backend: pa.Backend, coord: Coordinator, index: int, jobs: int, seed: int) -> None:
        self.backend = backend
        self.coord = coord
        self.index = index
        self.jobs = jobs
        self.rng = random.Random(seed * 1000 + index)
        self.stats = Stats()
        self.slots: List[_Slot] = []
        self.job = make_soak_job(backend)
        self.thread = threading.Thread(target=self.run, name=f"soak-driver-{index}")

    def new_slot(self) -> _Slot:
        """Start jobs until one pauses (a job drawn with 0 pauses finishes at once)."""
        be, stats, rng = self.backend, self.stats, self.rng
        while True:
            pauses = int(rng.random() * (MAX_PAUSES + 1))
            ctx = be.WaitCtx()
            status, handle, ret = be.start_job(None, ctx, self.job, (stats, pauses))
            stats.started += 1
            if status == pa.PAUSE and handle is not None and pauses > 0:
                return _Slot(handle, ctx, pauses)
            if status == pa.FINISH and pauses == 0 and ret == 0:
                ctx.close()
                stats.finished += 1
                continue
            raise SoakError(f"start of a job that pauses {pauses} times returned {(status, handle, ret)}")

    def run(self) -> None:
        coord = self.coord
        try:
            self.slots = [self.new_slot() for _ in range(self.jobs)]
            coord.filled.release()
            rnd = 0
            while not self.round(rnd):
                rnd += 1
        except threading.BrokenBarrierError:
            pass  # the phase was abandoned; whoever broke the barrier reported why
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            coord.fail(f"driver {self.index}", exc)
        finally:
            try:
                self.teardown()
            except BaseException as exc:  # noqa: BLE001
                coord.fail(f"driver {self.index} teardown", exc)

    def round(self, rnd: int) -> bool:
        """Resume (or close) each job once: shuffled on even rounds, in slot order on odd
        ones. True once the main thread said stop."""
        be, coord, stats, slots, rng = self.backend, self.coord, self.stats, self.slots, self.rng
        order = list(range(len(slots)))
        if rnd % 2 == 0:
            rng.shuffle(order)
        start = be.start_job
        for i in order:
            if coord.sample_requested:
                coord.park()
                if coord.ending:
                    return True
            if coord.aborted:
                return True
            slot = slots[i]
            if rng.random() < CLOSE_FRACTION:
                slot.handle.close()
                if slot.handle.state != "finished":
                    raise SoakError(f"closed job is {slot.handle.state}")
                slot.ctx.close()
                stats.closed += 1
                slots[i] = self.new_slot()
                continue
            stats.resumes += 1
            status, handle, ret = start(slot.handle, None, None)
            if status == pa.PAUSE and handle is slot.handle:
                continue
            if status == pa.FINISH and ret == slot.pauses:
                slot.ctx.close()
                stats.finished += 1
                slots[i] = self.new_slot()
                continue
            raise SoakError(f"resume of a job that pauses {slot.pauses} times returned {(status, handle, ret)}")
        return False

    def teardown(self) -> None:
        """Close every job still paused, then free this thread's pool."""
        while self.slots:
            slot = self.slots.pop()
            slot.handle.close()
            slot.ctx.close()
            self.stats.teardown_closed += 1
        self.backend.cleanup_thread()


def wait_or_fail(coord: Coordinator, seconds: float) -> None:
    if coord.failed.wait(seconds):
        raise SoakError("a driving thread failed")


def threads_phase(backend: pa.Backend, fig: Figures, seed: int) -> Dict[str, Any]:
    coord = Coordinator(fig.threads)
    drivers = [Driver(backend, coord, i, fig.jobs_per_thread, seed) for i in range(fig.threads)]
    stats = [d.stats for d in drivers]
    t0 = time.perf_counter()
    samples = [take_sample("before", t0, 0, 0)]
    try:
        for d in drivers:
            d.thread.start()
        for _ in drivers:
            while not coord.filled.acquire(timeout=0.5):
                wait_or_fail(coord, 0)
        wait_or_fail(coord, fig.warmup)
        samples.append(coord.sample("warm-up", t0, stats))
        warm_t = samples[-1].t
        for k in range(1, PERIODIC_SAMPLES + 1):
            due = warm_t + fig.seconds * k / (PERIODIC_SAMPLES + 1)
            wait_or_fail(coord, max(0.0, due - (time.perf_counter() - t0)))
            offset = fig.seconds * k / (PERIODIC_SAMPLES + 1)
            label = f"+{offset:.0f}s" if fig.seconds >= 2 * (PERIODIC_SAMPLES + 1) else f"+{offset:.1f}s"
            samples.append(coord.sample(label, t0, stats))
        wait_or_fail(coord, max(0.0, warm_t + fig.seconds - (time.perf_counter() - t0)))
        coord.ending = True
        samples.append(coord.sample("end", t0, stats))
    except (threading.BrokenBarrierError, SoakError):
        coord.aborted = True  # the drivers' errors say why
        coord.barrier.abort()
    except BaseException:
        coord.aborted = True
        coord.barrier.abort()
        raise
    finally:
        for d in drivers:
            if d.thread.ident is not None:
                d.thread.join()
    if coord.errors or coord.aborted:
        raise SoakError("\n".join(coord.errors) or "the threads phase was abandoned (barrier broken or timed out)")
    done = sum(s.done for s in stats)
    samples.append(teardown_sample("after", t0, done, sum(s.resumes for s in stats), samples[0]))
    started = sum(s.started for s in stats)
    closed = sum(s.closed + s.teardown_closed for s in stats)
    checks = {
        "started": started,
        "finished": sum(s.finished for s in stats),
        "closed": sum(s.closed for s in stats),
        "closed_at_teardown": sum(s.teardown_closed for s in stats),
        "resumes": sum(s.resumes for s in stats),
        "cancelled_in_job": sum(s.cancelled for s in stats),
        "finally_ran": sum(s.unwound for s in stats),
    }
    problems = []
    if checks["finished"] + closed != started:
        problems.append(f"{started} started but {checks['finished']} finished and {closed} closed")
    if checks["cancelled_in_job"] != closed:
        problems.append(f"{closed} closes but {checks['cancelled_in_job']} JobCancelled seen in jobs")
    if checks["finally_ran"] != started:
        problems.append(f"{started} jobs but {checks['finally_ran']} finally blocks ran")
    return _phase_result(samples, checks, problems)


# -- the churn phase -------------------------------------------------------------


def make_churn_job(backend: pa.Backend) -> Callable[[bool], int]:
    pause, current, wait_ctx = backend.pause_job, backend.get_current_job, backend.get_wait_ctx

    def churn_job(pausing: bool) -> int:
        if pausing:
            job = current()
            assert job is not None
            ctx = wait_ctx(job)
            del job  # not held across the pause
            assert ctx is not None
            ctx.set_wait_fd(WAIT_KEY, FAKE_FD)
            pause()
            ctx.clear_fd(WAIT_KEY)
        return 1

    return churn_job


def churn_phase(backend: pa.Backend, fig: Figures) -> Dict[str, Any]:
    job = make_churn_job(backend)
    start = backend.start_job
    total = fig.churn
    warm = max(1, total // 20)
    marks = [warm] + [warm + (total - warm) * k // (PERIODIC_SAMPLES + 1) for k in range(1, PERIODIC_SAMPLES + 2)]
    labels = ["warm-up"] + [f"{m:,}" for m in marks[1:-1]] + ["end"]
    t0 = time.perf_counter()
    samples = [take_sample("before", t0, 0, 0)]
    done = resumes = 0
    finish = pa.FINISH
    with backend.WaitCtx() as ctx:
        for mark, label in zip(marks, labels):
            while done < mark:
                pausing = not (done & 1)
                status, handle, ret = start(None, ctx, job, pausing)
                if pausing:
                    if status != pa.PAUSE:
                        raise SoakError(f"churn job {done} should have paused: {(status, handle, ret)}")
                    resumes += 1
                    status, handle, ret = start(handle, None, None)
                if status != finish or ret != 1:
                    raise SoakError(f"churn job {done} should have finished with 1: {(status, handle, ret)}")
                done += 1
            samples.append(take_sample(label, t0, done, resumes))
    backend.cleanup_thread()
    samples.append(teardown_sample("after", t0, done, resumes, samples[0]))
    return _phase_result(samples, {"started": done, "finished": done, "resumes": resumes}, [])


def _phase_result(samples: List[Sample], checks: Dict[str, int], problems: List[str]) -> Dict[str, Any]:
    by = {s.label: s for s in samples}
    warm, end = by["warm-up"], by["end"]
    return {
        "samples": [asdict(s) for s in samples],
        "verdicts": verdicts(samples),
        "released": released(by["before"], by["after"]),
        "checks": checks,
        "problems": problems,
        "seconds": end.t - warm.t,
    }


# -- sizing ----------------------------------------------------------------------


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _mem_available() -> Optional[int]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def machine_limits() -> Dict[str, Any]:
    """What bounds how many threads, mappings and bytes this run may take."""
    thread_caps: Dict[str, int] = {}
    for name, path in (
        ("kernel.pid_max", "/proc/sys/kernel/pid_max"),
        ("kernel.threads-max", "/proc/sys/kernel/threads-max"),
        ("cgroup pids.max", "/sys/fs/cgroup/pids.max"),
    ):
        value = _read_int(path)
        if value is not None:
            thread_caps[name] = value
    soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft != resource.RLIM_INFINITY and os.geteuid() != 0:  # root is not held to it
        thread_caps["ulimit -u"] = soft
    try:
        with open("/proc/loadavg") as f:
            threads_in_use = int(f.read().split()[3].split("/")[1])  # every thread on the machine
    except (OSError, IndexError, ValueError):
        threads_in_use = 0
    return {
        "thread_caps": thread_caps,
        "threads_in_use": threads_in_use,
        "max_map_count": _read_int("/proc/sys/vm/max_map_count"),
        "maps_in_use": memory_maps(),
        "mem_available": _mem_available(),
        "cpus": os.cpu_count(),
    }


#: generous per-paused-job costs, to size runs: mappings (a stack and its guard
#: page) and resident bytes
MAPS_PER_JOB = 2
BYTES_PER_JOB = 96 * 1024


def fit_to_machine(backend: str, fig: Figures, limits: Dict[str, Any]) -> Tuple[Figures, List[str]]:
    """Scale jobs_per_thread down to what the machine can hold, saying why."""
    notes: List[str] = []
    total = fig.threads * fig.jobs_per_thread
    caps: List[Tuple[int, str]] = []
    if backend == "python" and limits["thread_caps"]:
        # one OS thread per paused job; use at most half of what is left on the machine
        name, cap = min(limits["thread_caps"].items(), key=lambda kv: kv[1])
        room = max(0, cap - limits["threads_in_use"]) // 2 - fig.threads
        caps.append((room, f"half the OS threads left under {name}={cap} ({limits['threads_in_use']} in use)"))
    if limits["max_map_count"]:
        room = int((limits["max_map_count"] - limits["maps_in_use"]) * 0.8) // MAPS_PER_JOB
        caps.append((room, f"80% of the memory mappings left under vm.max_map_count={limits['max_map_count']}"))
    if limits["mem_available"]:
        room = limits["mem_available"] // 2 // BYTES_PER_JOB
        caps.append((room, f"half of MemAvailable={limits['mem_available'] // MIB} MiB at 96 KiB per paused job"))
    for room, why in caps:
        if total > room:
            per_thread = max(1, room // fig.threads)
            notes.append(
                f"scaled to {fig.threads} x {per_thread:,} paused jobs (from {fig.threads} x "
                f"{fig.jobs_per_thread:,}) to stay within {why}"
            )
            fig = replace(fig, jobs_per_thread=per_thread)
            total = fig.threads * per_thread
    return fig, notes


def choose_figures(backend: str, args: argparse.Namespace, limits: Dict[str, Any]) -> Tuple[Figures, List[str]]:
    notes: List[str] = []
    if args.quick:
        fig = QUICK
    elif backend == "python":
        fig = PYTHON_DEFAULT
        notes.append(
            f"python backend defaults scaled from the issue's {ISSUE.threads} x {ISSUE.jobs_per_thread:,} "
            f"jobs and {ISSUE.churn:,} churn jobs to {fig.threads} x {fig.jobs_per_thread:,} and "
            f"{fig.churn:,}: {PYTHON_WHY}"
        )
    else:
        fig = ISSUE
    given = {k: getattr(args, k) for k in ("threads", "jobs_per_thread", "seconds", "churn", "warmup")}
    fig = replace(fig, **{k: v for k, v in given.items() if v is not None})
    fig, more = fit_to_machine(backend, fig, limits)
    return fig, notes + more


# -- main ------------------------------------------------------------------------


def run_backend(name: str, args: argparse.Namespace, limits: Dict[str, Any]) -> Dict[str, Any]:
    backend = pa.get_backend(name)
    fig, notes = choose_figures(name, args, limits)
    version = backend.openssl_version or "pure Python"
    print(f"== backend {name} ({version})")
    for note in notes:
        print(f"  note: {note}")
    result: Dict[str, Any] = {"backend": name, "version": version, "figures": asdict(fig), "notes": notes, "phases": {}}
    phases: List[Tuple[str, str, Callable[[], Dict[str, Any]]]] = [
        (
            "threads",
            f"{fig.threads} threads x {fig.jobs_per_thread:,} paused jobs each, {fig.seconds:g} s after a "
            f"{fig.warmup:g} s warm-up; a job pauses 0-{MAX_PAUSES} times, {CLOSE_FRACTION:.0%} of resumes "
            f"close it instead",
            lambda: threads_phase(backend, fig, args.seed),
        ),
        (
            "churn",
            f"{fig.churn:,} jobs started and finished on one thread, every other one pausing once; "
            f"the first {max(1, fig.churn // 20):,} are the warm-up",
            lambda: churn_phase(backend, fig),
        ),
    ]
    started = time.perf_counter()
    for phase, description, run in phases:
        print(f"\n{name} / {phase}: {description}")
        res = run()
        result["phases"][phase] = res
        print_table([Sample(**s) for s in res["samples"]])
        print_verdicts(res)
        checks = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in res["checks"].items())
        print(f"  jobs: {checks}")
        for p in res["problems"]:
            print(f"  PROBLEM: {p}")
    result["wall_seconds"] = time.perf_counter() - started
    print(f"\n{name}: both phases took {result['wall_seconds']:.0f} s\n")
    return result


def summary(results: List[Dict[str, Any]]) -> Tuple[str, bool]:
    """Print one line per backend and phase; (overall verdict, no problem)."""
    all_flat = no_problem = True
    leak = False
    print("summary (growth from warm-up to end of phase; teardown gives back fds, thread states, OS threads):")
    for r in results:
        for phase, res in r["phases"].items():
            growing = [METRIC_NAMES[m] for m, v in res["verdicts"].items() if not v["flat"]]
            if res["verdicts"]["rss"].get("fragmentation") and "RSS" in growing:
                growing[growing.index("RSS")] = "RSS (allocator fragmentation, live data flat)"
            settled = [METRIC_NAMES[m] for m, v in res["verdicts"].items() if v["verdict"] == "settled"]
            kept = [METRIC_NAMES[m] for m in EXACT_METRICS if not res["released"][m]["released"]]
            all_flat = all_flat and not growing and not kept
            leak = (
                leak
                or bool(kept)
                or any(not v["flat"] and not v.get("fragmentation") for v in res["verdicts"].values())
            )
            no_problem = no_problem and not res["problems"]
            rss = res["verdicts"]["rss"]["growth"] / MIB
            state = "flat" if not growing else "GROWING: " + ", ".join(growing)
            if settled:
                state += "; settled (grew early, then stopped): " + ", ".join(settled)
            if kept:
                state += "; NOT given back: " + ", ".join(kept)
            print(f"  {r['backend']:<8} {phase:<8} {state} (RSS {rss:+.1f} MiB)")
    if all_flat:
        verdict = "flat"
    elif not leak:
        verdict = "no leak: only RSS grew, with live data flat (allocator fragmentation)"
    else:
        verdict = "something GREW (see above)"
    return verdict, no_problem


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--backend", default="all", help="openssl, python or all (the available ones; default)")
    p.add_argument("--seconds", type=float, help=f"threads phase length after warm-up (default {ISSUE.seconds:g})")
    p.add_argument("--threads", type=int, help=f"driving threads (default {ISSUE.threads})")
    p.add_argument(
        "--jobs-per-thread",
        type=int,
        help=f"paused jobs per thread (default {ISSUE.jobs_per_thread}; "
        f"python backend {PYTHON_DEFAULT.jobs_per_thread})",
    )
    p.add_argument(
        "--churn", type=int, help=f"churn phase jobs (default {ISSUE.churn}; python backend {PYTHON_DEFAULT.churn})"
    )
    p.add_argument("--warmup", type=float, help=f"threads phase warm-up seconds (default {ISSUE.warmup:g})")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK.threads} threads x {QUICK.jobs_per_thread} jobs x {QUICK.seconds:g} s, "
        f"churn {QUICK.churn:,}",
    )
    p.add_argument("--seed", type=int, default=7, help="random seed (the workload is reproducible)")
    p.add_argument("--json", metavar="FILE", help="also write every sample and verdict as JSON")
    args = p.parse_args(argv)
    for name in ("threads", "jobs_per_thread", "churn"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("seconds", "warmup"):
        value = getattr(args, name)
        if value is not None and value < 0:
            p.error(f"--{name} must not be negative")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    if not os.path.isdir("/proc/self/task"):
        print("soak.py needs Linux's /proc", file=sys.stderr)
        return 2
    available = pa.available_backends()
    names = available if args.backend == "all" else [args.backend]
    for name in names:
        if name not in available:
            have = ", ".join(available) or "none"
            print(f"backend {name!r} is not available here (available: {have})", file=sys.stderr)
            return 2
    limits = machine_limits()
    caps = ", ".join(f"{k} {v}" for k, v in limits["thread_caps"].items())
    print(
        f"pyossl_async soak: CPython {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{limits['cpus']} CPUs; {caps}; vm.max_map_count {limits['max_map_count']}"
    )
    print(
        f"flat means, from the post-warm-up sample to the end of a phase: RSS grows at most "
        f"max({RSS_FLAT_BYTES // MIB} MiB, {RSS_FLAT_FRACTION:.0%}), malloc in use at most "
        f"{MALLOC_FLAT_BYTES // MIB} MiB, Python blocks at most {BLOCKS_FLAT:,}, memory maps at most "
        f"+{MAPS_FLAT}, open fds, thread states and OS threads not at all; 'settled' when a metric "
        f"went over its limit but its second half added at most half the limit (a steady leak adds more)"
    )
    print("samples are taken with every job thread parked between two operations, after gc.collect()\n")
    results: List[Dict[str, Any]] = []
    status = 0
    for name in names:
        try:
            results.append(run_backend(name, args, limits))
        except SoakError as exc:
            print(f"\n{name}: FAILED\n{exc}", file=sys.stderr)
            status = 1
    verdict, no_problem = summary(results)
    print(f"verdict: {verdict}")
    if not no_problem:
        status = 1
    if args.json:
        doc = {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "limits": limits,
            "thresholds": {
                "rss_flat_bytes": RSS_FLAT_BYTES,
                "rss_flat_fraction": RSS_FLAT_FRACTION,
                "malloc_flat_bytes": MALLOC_FLAT_BYTES,
                "blocks_flat": BLOCKS_FLAT,
                "maps_flat": MAPS_FLAT,
                "exact": list(EXACT_METRICS),
            },
            "workload": {"max_pauses": MAX_PAUSES, "close_fraction": CLOSE_FRACTION, "seed": args.seed},
            "backends": {r["backend"]: r for r in results},
            "verdict": verdict,
            "ok": status == 0,
        }
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
