"""The ``"openssl"`` backend: real libcrypto jobs through ctypes.

Jobs are genuine ``ASYNC_JOB`` fibres. Their Python code runs on its own thread
state and a large guarded stack (``_native``); this module adds the contract's
policy on top and maps OpenSSL's per-thread functions one to one.
"""

from __future__ import annotations

import ctypes
import functools
import select
import sys
import threading
import time
from typing import Any, Callable, List, Optional

from .._constants import Status
from .._errors import AsyncError, ErrorEntry, JobCancelled, JobStateError, from_conversion_failure
from .._libcrypto import LibCrypto, c_call, drain_errors
from .._native._runner import C_STACK_PER_CALL, REFUSED, JobRunner
from .._native._support import ENV_STACK_SIZE, NativeSupport
from .._protocol import BackendName
from .._validate import init_size_limit, size_t
from ._base import STATUSES, BackendBase, JobRecord, ThreadJobs
from ._openssl_waitctx import OpenSSLWaitCtx

__all__ = ["FOREIGN_PAUSED", "OpenSSLBackend"]

#: Callables answering "how many jobs paused on OS thread ``ident`` are not ours" (libssl's
#: own jobs of ``pyossl_async.tls`` connections register one). ``cleanup_thread`` refuses
#: while there are any: it would free the thread's pool and, on 3.2+, the stacks they
#: are paused on.
FOREIGN_PAUSED: List[Callable[[int], int]] = []


def _depth_error(native: NativeSupport, limit: int) -> AsyncError:
    return AsyncError(
        f"the recursion limit ({limit}) is deeper than a job stack of "
        f"{native.stack_size >> 10} KiB holds on CPython {sys.version_info[0]}.{sys.version_info[1]} "
        f"(about {native.depth_budget} calls): set {ENV_STACK_SIZE} to at least "
        f"{-(-limit * C_STACK_PER_CALL >> 20)}M, or lower the limit"
    )


_original_setrecursionlimit: Any = None


def _guard_recursion_limit(native: NativeSupport) -> None:
    """Make ``sys.setrecursionlimit`` refuse, inside a job, a limit its stack cannot hold.

    Only on CPython 3.9/3.10 and only once the openssl backend can run jobs. Outside
    jobs it is the original; the limit is checked again at every resume.
    """
    global _original_setrecursionlimit
    if _original_setrecursionlimit is not None:
        return
    original = _original_setrecursionlimit = sys.setrecursionlimit
    budget, in_job = native.depth_budget, native.fast_current_job

    @functools.wraps(original)
    def setrecursionlimit(limit: int) -> None:
        if isinstance(limit, int) and limit > budget and in_job():
            raise _depth_error(native, limit)
        original(limit)

    sys.setrecursionlimit = setrecursionlimit


class OpenSSLBackend(BackendBase):
    """OpenSSL's ASYNC API, called for real."""

    name: BackendName = "openssl"
    _ctx_class = OpenSSLWaitCtx

    def __init__(self, crypto: LibCrypto, native: Optional[NativeSupport], native_error: str = "") -> None:
        super().__init__()
        self.crypto = crypto
        self.native = native
        #: why jobs cannot run here, when ``native`` is None
        self.native_error = native_error
        self.openssl_version: Optional[str] = crypto.version_text
        #: the libcrypto file really loaded (resolved), and the name it was asked by
        self.library_path = crypto.path
        self.library_name = crypto.library_name
        self._capable: Optional[bool] = None
        #: error-queue entries drained by the last call that returned ERR/NO_JOBS/False
        self.last_errors: tuple[ErrorEntry, ...] = ()
        if native is not None:
            #: ``ASYNC_pause_job`` through a GIL-releasing binding (the job's thread state is saved)
            self._pause_call = native.fast_pause_job
        if native is not None and native.depth_budget:
            # 3.9/3.10: every Python call also takes C stack, and a job's stack is finite
            self._check_resume = self._check_depth
            _guard_recursion_limit(native)

    def _check_depth(self) -> None:
        """Refuse to run a job while the recursion limit allows more calls than its stack holds.

        On CPython 3.9/3.10 recursion that deep would run off the job's stack
        (SIGSEGV) before ``RecursionError`` could stop it. Checked at every start,
        resume and close: the limit may have been raised since the job started.
        """
        native = self.native
        assert native is not None
        limit = sys.getrecursionlimit()
        if limit > native.depth_budget:
            raise _depth_error(native, limit)

    # -- capabilities ------------------------------------------------------------

    def is_capable(self) -> bool:
        """True when libcrypto can run jobs here and so can our thread/stack machinery.

        Asked once: ``ASYNC_is_capable()`` answers for the platform, which does not
        change (and each call is a ``getcontext``, a system call, on the path of every
        module function called outside a job)."""
        capable = self._capable
        if capable is None:
            capable = self._capable = self.native is not None and bool(self.crypto.ASYNC_is_capable())
        return capable

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "library": self.crypto.path,
            "library_name": self.crypto.library_name,
            "openssl_version": self.crypto.version_text,
            "version_number": hex(self.crypto.version_number),
            "ASYNC_is_capable": bool(self.crypto.ASYNC_is_capable()),
            "mem_functions": self.crypto.has("ASYNC_set_mem_functions"),
            "wait_ctx_callbacks": self.crypto.has("ASYNC_WAIT_CTX_set_callback"),
        }
        if self.native is not None:
            out.update(self.native.info())
        else:
            out["jobs_unavailable"] = self.native_error
        return out

    # -- per-thread pool ---------------------------------------------------------

    @c_call
    def init_thread(self, max_size: int = 0, init_size: int = 0) -> bool:
        self._refuse_reentry(self._threads.get(threading.get_ident()), "init_thread()")
        max_size = size_t(max_size, "max_size")
        init_size = size_t(init_size, "init_size")
        init_size_limit(max_size, init_size)
        stacks = self.native.openssl_stacks if self.native is not None else None
        allocator = stacks.arm() if stacks is not None and init_size else None  # OpenSSL allocates here
        ok = bool(self.crypto.ASYNC_init_thread(max_size, init_size))
        if not ok:
            self.last_errors = drain_errors(self.crypto)
        if allocator is not None and allocator.interrupt is not None:
            exc, allocator.interrupt = allocator.interrupt, None  # a signal handler's, as a stack was made
            raise exc
        return ok

    @c_call
    def _engine_cleanup_thread(self, thread: Optional[ThreadJobs]) -> None:
        foreign = sum(count(threading.get_ident()) for count in FOREIGN_PAUSED)
        if foreign:
            raise JobStateError(
                f"cleanup_thread() with {foreign} libssl job(s) of TLS connections paused on this thread: "
                f"close those connections first (C would free the stacks they are paused on)"
            )
        self.crypto.ASYNC_cleanup_thread()
        if thread is not None and thread.engine is not None:
            thread.engine.trim()

    @c_call
    def block_pause(self) -> None:
        self.crypto.ASYNC_block_pause()

    @c_call
    def unblock_pause(self) -> None:
        self.crypto.ASYNC_unblock_pause()

    def WaitCtx(self) -> OpenSSLWaitCtx:  # noqa: N802 - contract name
        return OpenSSLWaitCtx(self)

    # -- engine ------------------------------------------------------------------

    def _runner(self, thread: ThreadJobs) -> JobRunner:
        runner = thread.engine
        if runner is None:
            if self.native is None:
                from .._errors import BackendUnavailable

                raise BackendUnavailable(f"the openssl backend cannot run jobs here: {self.native_error}")
            runner = thread.engine = self.native.new_runner()
        return runner  # type: ignore[no-any-return]

    def _engine_start(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        runner = thread.engine or self._runner(thread)
        if runner.native.depth_budget:
            self._check_depth()
        ctx = record.ctx
        if ctx is not None:
            address = ctx._ptr  # type: ignore[attr-defined]
        else:
            # C would crash resuming a job that paused with no context; give C a
            # private one and let the shared layer turn such a pause into an error
            if not runner.hidden_ctx:
                runner.hidden_ctx = self.crypto.ASYNC_WAIT_CTX_new().value
            address = runner.hidden_ctx
        try:
            status = runner.start(record, address)
        except ctypes.ArgumentError as exc:  # our own C calls: only ever the interpreter's limits
            raise from_conversion_failure(exc) from None
        if status == REFUSED:
            return None
        if status == Status.PAUSE:
            record.switch = runner.switch_for(record.engine)
        else:
            # ended (or never made): the Execution refers back to the record (its body),
            # and a cycle would keep the job's WaitCtx alive until a collection
            record.engine = None
            if ctx is None:
                self._drop_engine_fds(runner)
        return self._status(status)

    def _engine_wait_private(self, thread: ThreadJobs, timeout: float) -> None:
        runner: JobRunner = thread.engine
        hidden = runner.hidden_ctx
        fds: List[int] = []
        if hidden:
            count = ctypes.c_size_t()
            self.crypto.ASYNC_WAIT_CTX_get_all_fds(hidden, None, ctypes.byref(count))
            if count.value:
                array = (ctypes.c_int * count.value)()
                self.crypto.ASYNC_WAIT_CTX_get_all_fds(hidden, array, ctypes.byref(count))
                fds = list(array[: count.value])
        if not fds:
            time.sleep(timeout)
            return
        poll = select.poll()
        for fd in fds:
            poll.register(fd, select.POLLIN)
        poll.poll(max(1, int(timeout * 1000)))

    def _drop_engine_fds(self, runner: JobRunner) -> None:
        """A job without a context ended: free the private context if an engine left fds
        in it (its cleanup functions run, as they would for the user's own context)."""
        hidden = runner.hidden_ctx
        if not hidden:
            return
        count = ctypes.c_size_t()
        self.crypto.ASYNC_WAIT_CTX_get_all_fds(hidden, None, ctypes.byref(count))
        if count.value:
            runner.hidden_ctx = 0
            self.crypto.ASYNC_WAIT_CTX_free(hidden)

    def _engine_resume(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        switch = record.switch
        if switch is None:  # (an interrupted start that was settled before it was kept)
            switch = record.switch = thread.engine.switch_for(record.engine)
        status = switch()
        if status == 2:  # PAUSE
            return Status.PAUSE
        return self._engine_resumed(thread, record, status)

    def _engine_resumed(self, thread: ThreadJobs, record: JobRecord, status: int) -> Optional[Status]:
        if status == REFUSED:
            return None
        runner: JobRunner = thread.engine  # started on this thread: its runner exists
        runner.resumed(record.engine, status)
        record.switch = None
        record.engine = None  # no cycle through the Execution (see _engine_start)
        if status < 2:
            self.last_errors = drain_errors(self.crypto)
        if record.ctx is None:
            self._drop_engine_fds(runner)
        return STATUSES[status]

    @c_call
    def _engine_settle(self, thread: ThreadJobs, record: JobRecord) -> Optional[Status]:
        ex = record.engine
        runner: Optional[JobRunner] = thread.engine
        if ex is None or runner is None:
            return None  # the runner never gave it an execution: it never started
        status = runner.settle(ex)
        if status == 2:  # paused: an interrupt may have come before its switch was kept
            record.switch = runner.switch_for(ex)
        else:
            record.switch = None
        return STATUSES[status]

    def _engine_arm_cancel(self, thread: ThreadJobs, record: JobRecord) -> None:
        if thread.engine is not None and record.engine is not None:
            thread.engine.cancel(record.engine, JobCancelled)

    def _engine_disarm_cancel(self, thread: ThreadJobs, record: JobRecord) -> None:
        if thread.engine is not None and record.engine is not None:
            thread.engine.uncancel(record.engine)

    def _engine_pause(self, thread: ThreadJobs, record: JobRecord) -> None:
        self.crypto.ASYNC_pause_job()  # back when resumed, at once if blocked (``_pause_call`` is faster)

    def _engine_in_job(self) -> bool:
        native = self.native
        return native is not None and bool(native.fast_current_job())

    def _engine_in_foreign_job(self) -> bool:
        native = self.native
        if native is not None:
            return bool(native.fast_current_job())
        return bool(self.crypto.ASYNC_get_current_job())

    def _status(self, status: int) -> Status:
        if status < Status.PAUSE:
            self.last_errors = drain_errors(self.crypto)
        return STATUSES[status]

    def _after_fork_in_child(self) -> None:
        thread = self._threads.get(threading.get_ident())
        if thread is not None and thread.running is not None and thread.engine is not None:
            thread.engine.forked_inside_job = True
        super()._after_fork_in_child()

    @c_call
    def _engine_thread_exited(self, thread: ThreadJobs) -> None:
        runner = thread.engine
        if runner is None:
            return
        if thread.paused:
            runner.forget()  # leaked with the paused jobs that use them
        else:
            if runner.hidden_ctx:
                hidden, runner.hidden_ctx = runner.hidden_ctx, 0
                self.crypto.ASYNC_WAIT_CTX_free(hidden)
            runner.close()
