"""The trace vocabulary: how a scenario turns API calls into backend-neutral text lines.

``c/trace.h`` (next to this module) defines the same lines for the C twins; the
two files are one format and change together. A scenario calls the API through a
:class:`Trace`, which performs the call on its backend and records one line:

=====================================  ============================================
call                                   line
=====================================  ============================================
``init_thread(2, 0)``                  ``init_thread(2, 0) -> 1``
``cleanup_thread()``                   ``cleanup_thread``
``WaitCtx()``                          ``ctx1 = WAIT_CTX_new``
``ctx.close()``                        ``WAIT_CTX_free(ctx1)``
``start_job(None, ctx, f)``            ``start j1 -> PAUSE`` / ``-> FINISH 3`` / ``-> NO_JOBS``
``start_job(job, ...)``                ``resume j1 -> FINISH 1``
``pause_job()``                        ``pause_job -> 1`` (after it returns)
``block_pause()``                      ``block_pause``
``get_current_job()``                  ``get_current_job -> j1`` / ``NULL`` / ``?``
``set_wait_fd(kA, 11, dA, cleanup)``   ``set_wait_fd(ctx1, kA, 11, dA, cleanup) -> 1``
``get_fd(kA)``                         ``get_fd(ctx1, kA) -> 1 fd=11 data=dA`` / ``-> 0``
``get_all_fds()``                      ``get_all_fds(ctx1) -> [20, 11]``
``get_changed_fds()``                  ``get_changed_fds(ctx1) -> add [20] del []``
``clear_fd(kA)``                       ``clear_fd(ctx1, kA) -> 1``
(a cleanup function runs)              ``cleanup(ctx1, kA, 11, dA)``
``set_callback(cb1, a1)``              ``set_callback(ctx1, cb1, a1) -> 1``
``get_callback()``                     ``get_callback(ctx1) -> 1 cb1 a1`` / ``-> 0``
``set_status(5)`` / ``get_status()``   ``set_status(ctx1, 5) -> 1`` / ``get_status(ctx1) -> 5``
=====================================  ============================================

Lines recorded inside a job start with ``"  <who>: "`` (the job's label, passed by
the scenario as the keyword argument ``who=``); driver lines have no prefix.
``who`` is keyword-only in every method (so is ``set_fd``'s ``cleanup``): a label
passed by position, as the C helpers take it, is a ``TypeError`` instead of a
value landing in another parameter, and it is reported as a bug in the scenario
(:func:`is_scenario_bug`), not recorded as an observation. Objects are printed by symbolic name
(``ctx1``, ``j1``, ``kA``...), never by address, so C pointers and Python objects
give the same text. A job handle gets its name when ``start`` first returns it
with ``PAUSE``; before that, ``get_current_job`` inside the job prints ``?``, as in C.

Where the Python API raises (misuse that is undefined behaviour in C), the line
ends in ``-> raises <Type>: <message>``; such scenarios have no C twin. The
traceback of every exception recorded this way is kept too
(:attr:`Trace.exceptions`), so a report can show where it came from. An
exception that can only be a bug in the scenario's own code
(:func:`is_scenario_bug`: a typo's ``NameError`` or ``AttributeError``, a failed
``assert``, a ``Trace`` method called with the wrong arguments...) is never
recorded as an observation: it propagates out of the scenario, even from inside
a job or a thread, and the runner reports the scenario as an error with its
traceback.

A line starting with ``~ `` is *version-dependent*: the ``"python"`` backend models
OpenSSL 3.0 there, and newer libcrypto versions legitimately differ (see
``compare.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple, Type

import pyossl_async as pa

from ._tracebacks import format_exception

__all__ = [
    "SCENARIO_BUGS",
    "VERSION_MARK",
    "RecordedException",
    "Sym",
    "Trace",
    "capture_exceptions",
    "fmt_fds",
    "is_scenario_bug",
]

#: prefix of a line whose value depends on the OpenSSL version (see compare.py)
VERSION_MARK = "~ "

#: exceptions the API never raises: caught while tracing, they are bugs in the scenario, not observations
SCENARIO_BUGS: Tuple[Type[BaseException], ...] = (NameError, AttributeError, ImportError, SyntaxError, AssertionError)


@dataclass(frozen=True)
class RecordedException:
    """An exception a trace recorded as an observation, and where it came from."""

    #: the 0-based index of the trace line that records it
    index: int
    line: str
    traceback: str

    def as_dict(self) -> Dict[str, Any]:
        return {"line": self.index + 1, "text": self.line, "traceback": self.traceback}


_capture_lock = threading.Lock()
_captured: Optional[List[RecordedException]] = None


@contextlib.contextmanager
def capture_exceptions() -> Iterator[List[RecordedException]]:
    """Collect the exceptions every :class:`Trace` records while the block runs.

    A scenario returns only its lines; the runner's worker wraps each scenario
    in this to get the tracebacks as well. One scenario at a time.
    """
    global _captured
    found: List[RecordedException] = []
    with _capture_lock:
        _captured = found
    try:
        yield found
    finally:
        with _capture_lock:
            _captured = None


_STATUS = {0: "ERR", 1: "NO_JOBS", 2: "PAUSE", 3: "FINISH"}


class Sym:
    """A symbolic object (a wait-fd key, custom data, a callback argument).

    Compares by identity, like the C pointer it stands for; prints as its name.
    """

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def fmt_fds(fds: Sequence[int]) -> str:
    """``[20, 11]``: the list format both languages print."""
    return "[" + ", ".join(str(int(fd)) for fd in fds) + "]"


class Trace:
    """Calls the API on one backend and records what happened as text lines.

    Safe to use from several threads (jobs of the ``"python"`` backend run on
    worker threads; thread scenarios record from their own threads): appending a
    line is atomic, and scenarios order their threads with joins.
    """

    def __init__(self, backend: pa.Backend) -> None:
        self.be = backend
        self.lines: List[str] = []
        #: the exceptions recorded as ``-> raises`` lines, with their tracebacks
        self.exceptions: List[RecordedException] = []
        self._names: Dict[int, Tuple[Any, str]] = {}
        self._lock = threading.Lock()

    # -- recording and names -------------------------------------------------------

    def line(self, text: str, *, who: Optional[str] = None) -> None:
        """Record one line (prefixed with ``"  who: "`` inside a job)."""
        self.lines.append(text if who is None else f"  {who}: {text}")

    def version_line(self, text: str, *, who: Optional[str] = None) -> None:
        """Record a line whose value is allowed to differ with the OpenSSL version."""
        self.line(VERSION_MARK + text, who=who)

    def name(self, obj: Any, name: str) -> Any:
        """Give ``obj`` the symbolic name ``name`` (replacing any earlier one); returns ``obj``."""
        with self._lock:
            self._names[id(obj)] = (obj, name)  # the strong reference keeps id() unique
        return obj

    def forget(self, obj: Any) -> None:
        """Drop ``obj``'s name (and the reference that kept its ``id`` unique)."""
        with self._lock:
            self._names.pop(id(obj), None)

    def n(self, obj: Any) -> str:
        """The symbolic name of ``obj``: ``NULL`` for None, ``?`` if it has none."""
        if obj is None:
            return "NULL"
        if isinstance(obj, Sym):
            return obj.name
        found = self._names.get(id(obj))
        return found[1] if found is not None and found[0] is obj else "?"

    def sym(self, name: str) -> Sym:
        """A fresh symbolic object (C: a fresh unique pointer)."""
        return Sym(name)

    def raised(self, text: str, exc: BaseException, *, who: Optional[str] = None) -> None:
        """Record ``text``, the observation of ``exc``, and keep its traceback."""
        with self._lock:
            self.line(text, who=who)
            index = len(self.lines) - 1
        found = RecordedException(index, self.lines[index], format_exception(exc))
        self.exceptions.append(found)
        with _capture_lock:
            if _captured is not None:
                _captured.append(found)

    def _call(self, prefix: str, who: Optional[str], fn: Callable[..., Any], *args: Any) -> Tuple[bool, Any]:
        """Call ``fn``; on an exception record ``prefix -> raises Type: msg`` (a scenario bug propagates)."""
        try:
            return True, fn(*args)
        except SCENARIO_BUGS:
            raise
        except Exception as exc:  # the exception is the observation, unless the scenario is wrong
            if is_scenario_bug(exc):
                raise
            self.raised(f"{prefix} -> raises {type(exc).__name__}: {exc}", exc, who=who)
            return False, None

    # -- jobs ----------------------------------------------------------------------

    def _result(self, what: str, label: str, result: Any) -> Any:
        status, job, ret = result
        status = int(status)
        if status == pa.PAUSE:
            self.name(job, label)
            self.line(f"{what} {label} -> PAUSE")
        elif status == pa.FINISH:
            self.line(f"{what} {label} -> FINISH {int(ret)}")
        else:
            self.line(f"{what} {label} -> {_STATUS.get(status, '?')}")
        return job

    def start(self, label: str, ctx: Any, func: Callable[[Any], int], args: Any = None) -> Any:
        """``start_job(None, ctx, func, args)``; returns the handle when it paused, else None."""
        ok, result = self._call(f"start {label}", None, self.be.start_job, None, ctx, func, args)
        return self._result("start", label, result) if ok else None

    def resume(self, job: Any, ctx: Any = None, func: Any = None) -> Any:
        """``start_job(job, ctx, func)``: resume; returns the handle if it paused again, else None."""
        label = self.n(job)
        ok, result = self._call(f"resume {label}", None, self.be.start_job, job, ctx, func)
        if not ok:
            return None
        if int(result[0]) != pa.PAUSE:
            self.forget(job)
        return self._result("resume", label, result)

    def pause(self, *, who: Optional[str] = None) -> None:
        ok, r = self._call("pause_job", who, self.be.pause_job)
        if ok:
            self.line(f"pause_job -> {int(r)}", who=who)

    def block(self, *, who: Optional[str] = None) -> None:
        self.be.block_pause()
        self.line("block_pause", who=who)

    def unblock(self, *, who: Optional[str] = None) -> None:
        self.be.unblock_pause()
        self.line("unblock_pause", who=who)

    def current(self, *, who: Optional[str] = None) -> Any:
        job = self.be.get_current_job()
        self.line(f"get_current_job -> {self.n(job)}", who=who)
        return job

    def own_ctx(self) -> Any:
        """The running job's wait context, untraced (C: ``ASYNC_get_wait_ctx(ASYNC_get_current_job())``)."""
        job = self.be.get_current_job()
        return None if job is None else self.be.get_wait_ctx(job)

    def get_wait_ctx(self, job: Any, *, who: Optional[str] = None) -> Any:
        ok, ctx = self._call(f"get_wait_ctx({self.n(job)})", who, self.be.get_wait_ctx, job)
        if ok:
            self.line(f"get_wait_ctx({self.n(job)}) -> {self.n(ctx)}", who=who)
        return ctx

    def close_job(self, job: Any, *, who: Optional[str] = None) -> None:
        """``job.close()`` (Python only: C has no way to unwind a paused job)."""
        label = self.n(job)
        ok, _ = self._call(f"close({label})", who, job.close)
        if ok:
            self.line(f"close({label}) -> {job.state}", who=who)

    # -- pools ---------------------------------------------------------------------

    def init(self, max_size: int, init_size: int, *, who: Optional[str] = None) -> bool:
        text = f"init_thread({max_size}, {init_size})"
        ok, r = self._call(text, who, self.be.init_thread, max_size, init_size)
        if ok:
            self.line(f"{text} -> {int(r)}", who=who)
        return bool(r)

    def cleanup_thread(self, *, who: Optional[str] = None) -> None:
        ok, _ = self._call("cleanup_thread", who, self.be.cleanup_thread)
        if ok:
            self.line("cleanup_thread", who=who)

    # -- wait contexts -------------------------------------------------------------

    def ctx_new(self, name: str) -> Any:
        ctx = self.name(self.be.WaitCtx(), name)
        self.line(f"{name} = WAIT_CTX_new")
        return ctx

    def ctx_free(self, ctx: Any, *, who: Optional[str] = None) -> None:
        text = f"WAIT_CTX_free({self.n(ctx)})"
        self.line(text, who=who)
        self._call(text, who, ctx.close)

    def cleanup_fn(self, ctx: Any, key: Hashable, fd: int, data: Any) -> None:
        """The cleanup function every traced fd registers (``t_cleanup_fn`` in C)."""
        self.line(f"cleanup({self.n(ctx)}, {self.n(key)}, {fd}, {self.n(data)})")

    def set_fd(
        self, ctx: Any, key: Any, fd: int, data: Any = None, *, cleanup: bool = True, who: Optional[str] = None
    ) -> None:
        text = f"set_wait_fd({self.n(ctx)}, {self.n(key)}, {fd}, {self.n(data)}, {'cleanup' if cleanup else 'NULL'})"
        ok, r = self._call(text, who, ctx.set_wait_fd, key, fd, data, self.cleanup_fn if cleanup else None)
        if ok:
            self.line(f"{text} -> {int(r)}", who=who)

    def get_fd(self, ctx: Any, key: Any, *, who: Optional[str] = None) -> None:
        text = f"get_fd({self.n(ctx)}, {self.n(key)})"
        ok, r = self._call(text, who, ctx.get_fd, key)
        if not ok:
            return
        if r is None:
            self.line(f"{text} -> 0", who=who)
        else:
            self.line(f"{text} -> 1 fd={r[0]} data={self.n(r[1])}", who=who)

    def all_fds(self, ctx: Any, *, who: Optional[str] = None) -> List[int]:
        text = f"get_all_fds({self.n(ctx)})"
        ok, fds = self._call(text, who, ctx.get_all_fds)
        if ok:
            self.line(f"{text} -> {fmt_fds(fds)}", who=who)
        return list(fds or [])

    def changed_fds(self, ctx: Any, *, who: Optional[str] = None) -> None:
        text = f"get_changed_fds({self.n(ctx)})"
        ok, r = self._call(text, who, ctx.get_changed_fds)
        if ok:
            self.line(f"{text} -> add {fmt_fds(r[0])} del {fmt_fds(r[1])}", who=who)

    def clear_fd(self, ctx: Any, key: Any, *, who: Optional[str] = None) -> None:
        text = f"clear_fd({self.n(ctx)}, {self.n(key)})"
        ok, r = self._call(text, who, ctx.clear_fd, key)
        if ok:
            self.line(f"{text} -> {int(r)}", who=who)

    # -- callbacks and status ------------------------------------------------------

    def set_callback(self, ctx: Any, cb: Any, arg: Any, *, who: Optional[str] = None) -> None:
        text = f"set_callback({self.n(ctx)}, {self.n(cb)}, {self.n(arg)})"
        ok, r = self._call(text, who, ctx.set_callback, cb, arg)
        if ok:
            self.line(f"{text} -> {int(r)}", who=who)

    def get_callback(self, ctx: Any, *, who: Optional[str] = None) -> Any:
        text = f"get_callback({self.n(ctx)})"
        ok, r = self._call(text, who, ctx.get_callback)
        if not ok:
            return None
        if r is None:
            self.line(f"{text} -> 0", who=who)
        else:
            self.line(f"{text} -> 1 {self.n(r[0])} {self.n(r[1])}", who=who)
        return r

    def call_callback(self, cb: Callable[[Any], Any], arg: Any, *, who: Optional[str] = None) -> None:
        """Call a wait-ctx callback the way an engine would (``t_call_callback`` in C)."""
        r = cb(arg)
        self.line(f"call {self.n(cb)}({self.n(arg)}) -> {int(r)}", who=who)

    def set_status(self, ctx: Any, status: int, *, who: Optional[str] = None) -> None:
        text = f"set_status({self.n(ctx)}, {int(status)})"
        ok, r = self._call(text, who, ctx.set_status, status)
        if ok:
            self.line(f"{text} -> {int(r)}", who=who)

    def get_status(self, ctx: Any, *, who: Optional[str] = None) -> None:
        text = f"get_status({self.n(ctx)})"
        ok, r = self._call(text, who, ctx.get_status)
        if ok:
            self.line(f"{text} -> {int(r)}", who=who)

    # -- threads -------------------------------------------------------------------

    def in_thread(self, fn: Callable[[], Any], name: str = "T") -> None:
        """Run ``fn`` on a new thread and wait for it (C: ``pthread_create`` + join).

        An exception escaping ``fn`` is recorded, so it cannot pass unnoticed; a
        scenario bug (:data:`SCENARIO_BUGS`) is raised again here instead.
        """
        failure: List[BaseException] = []

        def body() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - recorded below
                failure.append(exc)

        thread = threading.Thread(target=body, name=f"conformance-{name}")
        thread.start()
        thread.join()
        if failure:
            exc = failure[0]
            if is_scenario_bug(exc):
                raise exc
            self.raised(f"thread {name} raised {type(exc).__name__}: {exc}", exc)


#: the ``TypeError`` of a call that does not fit the callee's parameters (CPython 3.10+
#: names the class, ``Trace.set_fd() takes ...``; 3.9 the function only)
_BAD_CALL = re.compile(r"^(?:\w+\.)?\w+\(\) (?:takes|got|missing)\b")


#: the package's folder, and that of the built-in scenarios when installed inside it
_LIBRARY = os.path.dirname(os.path.abspath(pa.__file__)) + os.sep
_SUITE = os.path.join(_LIBRARY, "_suite") + os.sep


def is_scenario_bug(exc: BaseException) -> bool:
    """Whether ``exc`` can only come from a bug in the scenario's own code, never from the
    API it observes: one of :data:`SCENARIO_BUGS`, or the ``TypeError`` of a call in the
    scenario that does not fit the function's parameters (a :class:`Trace` method given
    the job's label by position instead of as ``who=``).

    Such a ``TypeError`` is raised in the frame that made the call. Made by the library
    itself (``Trace._call``, when a misuse scenario passes the API arguments it does not
    take on purpose, or a backend calling a job function), it stays an observation.
    """
    if isinstance(exc, SCENARIO_BUGS):
        return True
    if type(exc) is not TypeError or _BAD_CALL.match(str(exc)) is None:
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    where = os.path.abspath(tb.tb_frame.f_code.co_filename)
    return not where.startswith(_LIBRARY) or where.startswith(_SUITE)
