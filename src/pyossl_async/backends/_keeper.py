"""Jobs the library keeps: paused inside C code, given up on or collected, unwound once their engine signals.

A job paused inside C code can only be unwound by resuming it until its C code
gets back to Python, and its C code goes on only once its engine has completed.
An engine that never completes (a device that hangs) must not make a garbage
collection, a driver that gave up on the job, or interpreter exit wait for it. So
whoever cannot wait hands the job to the library, which keeps it on its owner
thread's records (a job resumes only on its own OS thread) and unwinds it as
soon as its engine signals:

* **fd readable, or the callback called:** one daemon thread (``pyossl-async-keeper``,
  started when the first job is kept) polls the kept jobs' wait fds and their
  threads' callback pipes. When something is ready it puts the job on its owner thread's
  ``pending`` list, which that thread's next library call (any ``start_job``,
  resume or ``close``, so every driver step) already checks: no cost is added to
  the job-switch path. There the job is resumed, ``JobCancelled`` pending, for as
  long as its engine lets it go on without waiting.
* **Nothing heard:** a callback the engine took from the context before the
  library began to listen, a device that completes without a word, or nothing to
  wait on at all: the job is also retried periodically ("periodically retry", as
  ``ASYNC_WAIT_CTX_new(3)`` allows), on a growing interval (10 ms up to 1 s), at
  the same place; a status the engine changed is noticed then too.
* **Interpreter exit:** the exit hook waits for all the kept jobs of the main
  thread together, within one close timeout.

A job handed over by a driver keeps the driver's callback registration (the
engine may hold its token), its context ownership (an owned context closes when
the job ends) and its chained callback (given back when the job ends).
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, Dict, List, Optional, Set, Tuple

from .._protocol import Job, WaitCtx
from .._unraisable import report_unraisable
from .._wait.blocking import BlockingWatch, callback_runs_python
from .._wait.watch import RESUME, RETRY, WAIT, PauseWatch

if TYPE_CHECKING:
    from ._base import BackendBase, JobRecord, ThreadJobs

__all__ = ["Kept", "KeptWatch", "keep", "release", "unwind_or_keep", "wait_for_kept"]

#: resumes one try may make while the engine lets the job go on without waiting
MAX_STEPS = 64
#: resumes at once (EAGAIN, nothing to wait on) one try may make before waiting for the next check
MAX_RETRIES = 2
#: the periodic check of a kept job: first after this many seconds, then twice as long each
#: time nothing was heard, up to TICK_LIMIT; a signal starts it over
TICK_FIRST = 0.01
TICK_LIMIT = 1.0
_POLLIN = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL
#: the keeper thread's poll timeout when no kept job is armed, in ms
_IDLE_MS = 5000


class KeptWatch(BlockingWatch):
    """A kept job's wait state (a :class:`BlockingWatch`, so a close or exit can also block on it):
    its callback, seen by any drain of its thread's pipe, makes the job due."""

    def __init__(self, ctx: WaitCtx, kept: Optional[Kept] = None) -> None:
        super().__init__(ctx, closing=True)
        self.kept = kept

    def _wake(self) -> None:
        kept = self.kept
        if kept is not None:
            kept.due()


class Kept:
    """One job the library keeps, on its owner thread's records (``JobRecord.kept``)."""

    __slots__ = ("__weakref__", "interval", "queued", "record", "thread", "tick_at", "watch")

    def __init__(self, thread: ThreadJobs, record: JobRecord, watch: Optional[KeptWatch]) -> None:
        self.thread = thread
        self.record: Optional[JobRecord] = record
        self.watch = watch
        #: on its thread's pending list, not tried since
        self.queued = False
        self.interval = TICK_FIRST
        self.tick_at = time.monotonic() + TICK_FIRST

    def due(self) -> None:
        """Try it again at its thread's next library call (any thread may call this)."""
        record = self.record
        if record is not None and not self.queued:
            self.queued = True
            self.thread.pending.append(record)

    def arm(self) -> None:
        """Have the keeper thread watch for its engine's signal (and the next periodic check)."""
        watch = self.watch
        if watch is None:
            _WATCHER.arm(self, (), -1, self.tick_at)
        else:
            _WATCHER.arm(self, tuple(watch.watched), watch.notifier.r, self.tick_at)


# -- trying a job ----------------------------------------------------------------


def _ready_now(watch: PauseWatch) -> bool:
    """Whether a watched fd is readable or the callback came, without waiting."""
    if watch.fired:
        return True
    poller = select.poll()
    for fd in watch.watched:
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(0)) or (watch.notifier.drain() and watch.fired)


def _attempt(
    backend: BackendBase, thread: ThreadJobs, record: JobRecord, handle: Job, watch: Optional[KeptWatch]
) -> Tuple[bool, Optional[KeptWatch]]:
    """Resume the job, ``JobCancelled`` pending, as long as its engine lets it go on
    without waiting; ``(True, watch)`` once it has ended. Never waits.

    ``watch``: the job's, or ``None`` to make one at its first pause inside C code
    (a job paused in Python just ends at the first resume).
    """
    steps = retries = 0
    ctx: Any = record.ctx
    try:
        while True:
            if backend._cancel_step(thread, record, handle):
                return True, watch
            steps += 1
            if ctx is None or ctx.closed:
                action = RETRY
            else:
                if watch is None:
                    watch = KeptWatch(ctx)
                    watch.install()
                action = watch.after_pause()
            if steps < MAX_STEPS:
                go_on = action == RESUME or (action == WAIT and watch is not None and _ready_now(watch))
                if not go_on and action == RETRY and retries < MAX_RETRIES:
                    retries += 1
                    go_on = True
                if go_on:
                    if watch is not None:
                        watch.before_resume()
                    continue
            backend._cancel_abort(thread, record)
            return False, watch
    except BaseException:
        if record.state == "paused":
            backend._cancel_abort(thread, record)
        raise


def unwind_or_keep(
    backend: BackendBase,
    thread: ThreadJobs,
    record: JobRecord,
    handle: Job,
    driver_watch: Optional[PauseWatch] = None,
) -> bool:
    """Unwind a paused job as far as its engine lets it go without waiting; keep it if it is
    still paused inside C code. True once it has ended.

    For everyone who must not wait: the collector, closes deferred to a safe
    moment, a driver whose coroutine is being closed, the first pass at exit.
    ``driver_watch``: a driver's wait state for the job, taken over (the engine may
    hold its callback token). A job already kept is tried again (:func:`_retry`).
    """
    if record.kept is not None:
        return _retry(backend, thread, record, handle)
    watch: Optional[KeptWatch] = None
    ctx: Any = record.ctx
    if ctx is not None and not ctx.closed and (driver_watch is not None or callback_runs_python(ctx)):
        # before the first resume: the engine may call the context's callback inside the
        # job, where a Python callback would receive the pending JobCancelled
        watch = KeptWatch(ctx)
        if driver_watch is not None:
            watch.adopt(driver_watch.hand_over())
        else:
            watch.install()
    try:
        ended, watch = _attempt(backend, thread, record, handle, watch)
    except BaseException:
        # The job's own exception while unwinding (it has ended), or an interrupt (the
        # caller queues the close again for the thread's next idle moment). A driver's
        # callback registration is not given up (the engine may hold its token): kept.
        if driver_watch is not None and record.state == "paused" and not record.orphaned:
            keep(backend, thread, record, handle, watch)
        elif watch is not None:
            _finish(watch)
        raise
    if ended:
        if watch is not None:
            _finish(watch)
        return True
    keep(backend, thread, record, handle, watch)
    return False


def _retry(backend: BackendBase, thread: ThreadJobs, record: JobRecord, handle: Job) -> bool:
    """Try a kept job again if its engine signalled (or a periodic check is due); True once it ended."""
    kept = record.kept
    assert kept is not None
    kept.queued = False
    if record.state != "paused" or record.orphaned:
        release(record)  # ended meanwhile (resumed by hand), or its thread is gone
        return record.state == "finished"
    watch = kept.watch
    # its engine signalled: an fd readable, the callback called, the status changed
    heard = watch is not None and not watch.ctx.closed and (_ready_now(watch) or watch.ctx.get_status() != watch.status)
    if not heard and time.monotonic() < kept.tick_at:
        kept.arm()  # (a wake-up for another listener of the thread's pipe)
        return False
    # heard, or the periodic retry: what the library cannot hear (a callback the engine
    # took before the library listened, a device that completes without a word)
    if watch is not None:
        watch.before_resume()
    try:
        ended, _ = _attempt(backend, thread, record, handle, watch)
    except BaseException:
        if record.state == "paused" and record.kept is kept:
            kept.arm()  # interrupted: still kept, tried again at the next check
        else:
            release(record)
        raise
    if ended:
        release(record)
        return True
    kept.interval = TICK_FIRST if heard else min(kept.interval * 2, TICK_LIMIT)
    kept.tick_at = time.monotonic() + kept.interval
    kept.arm()
    return False


# -- keeping and letting go --------------------------------------------------------


def keep(
    backend: BackendBase,
    thread: ThreadJobs,
    record: JobRecord,
    handle: Job,
    watch: Optional[PauseWatch] = None,
) -> None:
    """The library keeps ``record``'s paused job and unwinds it once its engine signals.

    ``watch``: the job's wait state: a :class:`KeptWatch` already, or a driver's
    watch, whose callback registration and context ownership are taken over.
    """
    if record.kept is not None:
        return
    kept_watch: Optional[KeptWatch]
    if watch is None or isinstance(watch, KeptWatch):
        kept_watch = watch  # (in step with the context: it saw the last pause)
    else:
        kept_watch = KeptWatch(watch.ctx)
        kept_watch.adopt(watch.hand_over())
        if not kept_watch.ctx.closed:
            kept_watch.sync_fds()  # the fds it waits on now (all of them: its first look)
    # (a context the driver owned is closed when the library lets go of the job, in
    # KeptWatch.finish; not close_when_unused() now: that would try the job at once)
    kept = Kept(thread, record, kept_watch)
    record.kept = kept
    record.handle = handle  # the library holds the job now; get_current_job() inside returns it
    if kept_watch is not None:
        kept_watch.kept = kept
    kept.arm()


def release(record: JobRecord) -> None:
    """The library no longer keeps ``record``'s job (it has ended, or is orphaned)."""
    kept = record.kept
    if kept is None:
        return
    record.kept = None
    _WATCHER.forget(kept)
    watch, kept.watch = kept.watch, None
    kept.record = None  # (no cycle left behind)
    if watch is not None:
        watch.kept = None
        _finish(watch)
    if record.state == "finished":
        record.handle = None


def _finish(watch: PauseWatch) -> None:
    failure = watch.finish()
    if failure is not None:
        report_unraisable(failure, "Exception ignored while releasing the WaitCtx of a job the library kept")


# -- interpreter exit ------------------------------------------------------------------


def wait_for_kept(backend: BackendBase, thread: ThreadJobs, deadline: float) -> int:
    """Wait until ``deadline`` for the engines of ``thread``'s kept jobs, all together, unwinding
    each as its engine signals; how many are left."""
    while True:
        left = [r for r in list(thread.paused) if r.kept is not None and r.state == "paused" and not r.orphaned]
        for record in left:
            if record.kept is not None and record.state == "paused":
                backend._cancel_quietly(thread, record, "a paused job at interpreter exit")
        left = [r for r in left if r.kept is not None and r.state == "paused" and not r.orphaned]
        now = time.monotonic()
        if not left or now >= deadline:
            return len(left)
        poller = select.poll()
        fds = set()
        until = deadline
        for record in left:
            kept = record.kept
            if kept is None:
                continue
            until = min(until, kept.tick_at)
            if kept.watch is not None:
                fds.update(kept.watch.watched)
                fds.add(kept.watch.notifier.r)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        poller.poll(max(1, int((until - now) * 1000 + 0.999)))


# -- the keeper thread -----------------------------------------------------------------


def _threading_bookkeeping_held() -> bool:
    """Whether this thread holds ``threading``'s registry lock (which a new thread takes as it
    starts): only while a signal handler or finaliser runs on top of ``threading``'s own code."""
    lock = getattr(threading, "_active_limbo_lock", None)
    is_owned = getattr(lock, "_is_owned", None)
    return bool(is_owned()) if is_owned is not None else False


class _Watcher:
    """The daemon thread that polls the kept jobs' fds and callback pipes (see the module docstring).

    It only reads fd numbers and appends to ``pending`` lists: nothing of a job
    or a context is touched off its own thread. Started when the first job is
    kept, it then stays (asleep in ``poll`` while no job is kept), with its wake-up
    pipe.

    The threads that keep jobs never take a lock to talk to it: they append
    requests to a deque and write a byte to its pipe, both of which a signal
    handler or a finaliser can do in the middle of the same, on the same thread.
    (A lock taken there would block the thread on itself; interrupted again and
    again, the handlers nested until the recursion limit.) Only the watcher thread
    reads the requests and owns the tables.
    """

    def __init__(self) -> None:
        #: ("arm", kept, fds, notify_fd, tick_at) or ("forget", kept, ...), from the keeping threads
        self.requests: Deque[Tuple[str, Kept, Tuple[int, ...], int, float]] = collections.deque()
        #: taken without blocking, only to start the thread once
        self.starting = threading.Lock()
        self.pipe: Optional[Tuple[int, int]] = None
        self.thread: Optional[threading.Thread] = None
        #: the watcher thread's own: kept job -> what to poll for it, until it fires (then
        #: its thread arms it again); every kept job (armed or waiting for its thread)
        self.armed: Dict[Kept, Tuple[Tuple[int, ...], int, float]] = {}
        self.members: Dict[Kept, None] = {}

    def after_fork_in_child(self) -> None:
        """The parent's kept jobs are orphans here, and its thread does not exist."""
        pipe, self.pipe = self.pipe, None
        if pipe is not None:
            for fd in pipe:
                os.close(fd)  # (the child's copies)
        self.requests = collections.deque()
        self.starting = threading.Lock()
        self.thread = None
        self.armed = {}
        self.members = {}

    def arm(self, kept: Kept, fds: Tuple[int, ...], notify_fd: int, tick_at: float) -> None:
        self.requests.append(("arm", kept, fds, notify_fd, tick_at))
        if self.thread is None:
            self._start()
        self._poke()

    def forget(self, kept: Kept) -> None:
        self.requests.append(("forget", kept, (), -1, 0.0))
        self._poke()

    def _start(self) -> None:
        """Start the thread (at most once; never blocks: a thread already starting it will)."""
        if _threading_bookkeeping_held() or not self.starting.acquire(blocking=False):
            return  # (a handler on top of threading's code: the next arm starts it)
        try:
            if self.thread is not None:
                return
            if self.pipe is None:
                r, w = os.pipe()
                for fd in (r, w):
                    os.set_blocking(fd, False)
                    os.set_inheritable(fd, False)
                self.pipe = (r, w)
            thread = threading.Thread(target=self._run, name="pyossl-async-keeper", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # at interpreter exit (3.12+ refuses new threads): the exit hook waits
                # for the kept jobs itself
                return
            self.thread = thread
        finally:
            self.starting.release()

    def _poke(self) -> None:
        pipe = self.pipe
        if pipe is not None:
            try:
                os.write(pipe[1], b"!")
            except OSError:  # full: the thread will wake anyway
                pass

    def kept(self) -> int:
        """How many jobs it still watches, requests not yet read included (for tests)."""
        return len(self.members) + sum(1 for r in list(self.requests) if r[0] == "arm")

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # noqa: BLE001 - a daemon thread: nobody to raise to
            self.thread = None
            report_unraisable(exc, "Exception in pyossl_async's keeper thread")

    def _take_requests(self) -> None:
        requests, armed, members = self.requests, self.armed, self.members
        while requests:
            op, kept, fds, notify_fd, tick_at = requests.popleft()
            if op == "arm":
                if kept.record is not None:  # (not let go of meanwhile)
                    armed[kept] = (fds, notify_fd, tick_at)
                    members[kept] = None
            else:
                armed.pop(kept, None)
                members.pop(kept, None)
        for kept in [k for k in members if k.record is None or k.record.orphaned]:
            members.pop(kept, None)  # let go of, or its thread exited: it can never be resumed
            armed.pop(kept, None)

    def _loop(self) -> None:
        pipe = self.pipe
        assert pipe is not None
        wake = pipe[0]
        while True:
            self._take_requests()
            snapshot = list(self.armed.items())
            poller = select.poll()
            poller.register(wake, select.POLLIN)
            owners: Dict[int, List[Kept]] = {}
            until = None
            for kept, (fds, notify_fd, tick_at) in snapshot:
                until = tick_at if until is None else min(until, tick_at)
                for fd in fds + ((notify_fd,) if notify_fd >= 0 else ()):
                    if fd not in owners:
                        owners[fd] = []
                        poller.register(fd, select.POLLIN)
                    owners[fd].append(kept)
            if until is not None:
                timeout: Optional[int] = max(0, int((until - time.monotonic()) * 1000 + 0.999))
            else:
                # nothing armed: asleep until a request, looking now and then (only while
                # jobs are kept) for those whose thread has exited
                timeout = _IDLE_MS if self.members else None
            events = poller.poll(timeout)
            ready: Set[Kept] = set()
            for fd, flags in events:
                if fd == wake:
                    try:
                        while os.read(wake, 4096):
                            pass
                    except OSError:  # (BlockingIOError: drained)
                        pass
                elif flags & _POLLIN:
                    ready.update(owners.get(fd, ()))
            self._take_requests()  # (a job let go of meanwhile must not fire)
            now = time.monotonic()
            for kept, entry in snapshot:
                if self.armed.get(kept) is entry and (kept in ready or entry[2] <= now):
                    del self.armed[kept]  # until its thread has tried it and armed it again
                    kept.due()


_WATCHER = _Watcher()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHER.after_fork_in_child)
