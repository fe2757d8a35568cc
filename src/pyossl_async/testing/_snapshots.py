"""Recording what an application sees of a job at each pause, and comparing recordings.

:func:`record_pauses` drives a job by hand (resume at once after every pause) and
takes a :class:`PauseSnapshot` at each ``PAUSE`` and at the end: all fds of the
context, the fds added and deleted since the last resume, the status, whether a
callback is set, and the job's state. Fds are shown by name when a name map is
given (``{fd: "a"}``), so two backends, or a backend and a C program, give the
same text. :func:`diff_traces` renders two recordings side by side as a unified
diff, :func:`assert_traces_equal` fails with it.

:func:`run_fd_script` runs a *script* of wait-fd changes inside a job (``"set a"``,
``"clear a"``, ``"poke a"``: make ``a`` readable, ``"pause"``), the kind of test an
engine author writes; :mod:`pyossl_async.testing.strategies` generates scripts.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .._constants import Status, WaitStatus
from .._protocol import Backend, WaitCtx

__all__ = [
    "PauseSnapshot",
    "PauseTrace",
    "assert_traces_equal",
    "diff_traces",
    "record_pauses",
    "run_fd_script",
    "script_steps",
]


@dataclass(frozen=True)
class PauseSnapshot:
    """What the application sees after one ``start_job`` call."""

    status: str
    job_state: str
    fds: Tuple[Any, ...]
    added: Tuple[Any, ...]
    deleted: Tuple[Any, ...]
    wait_status: str
    callback: bool

    def __str__(self) -> str:
        def names(values: Tuple[Any, ...]) -> str:
            return "[" + ", ".join(str(v) for v in values) + "]"

        return (
            f"{self.status:<7} job={self.job_state:<8} fds={names(self.fds)} added={names(self.added)} "
            f"deleted={names(self.deleted)} status={self.wait_status} callback={'yes' if self.callback else 'no'}"
        )


class PauseTrace(List[PauseSnapshot]):
    """The snapshots of one drive, and how it ended (``result`` or ``exception``)."""

    result: Any = None
    exception: Optional[BaseException] = None

    def lines(self) -> List[str]:
        out = [str(s) for s in self]
        if self.exception is not None:
            out.append(f"raised {type(self.exception).__name__}: {self.exception}")
        else:
            out.append(f"result {self.result!r}")
        return out


def _status_name(value: int) -> str:
    try:
        return WaitStatus(value).name
    except ValueError:
        return str(value)


def _snapshot(ctx: WaitCtx, status: Status, job: Any, names: Mapping[int, Any], sort: bool) -> PauseSnapshot:
    added, deleted = ctx.get_changed_fds()

    def show(fds: Sequence[int]) -> Tuple[Any, ...]:
        shown = [names.get(fd, fd) for fd in fds]
        return tuple(sorted(shown, key=str) if sort else shown)

    return PauseSnapshot(
        status=status.name,
        job_state=job.state if job is not None else "finished",
        fds=show(ctx.get_all_fds()),
        added=show(added),
        deleted=show(deleted),
        wait_status=_status_name(int(ctx.get_status())),
        callback=ctx.get_callback() is not None,
    )


def record_pauses(
    backend: Backend,
    func: Callable[[Any], Any],
    args: Any = None,
    *,
    ctx: Optional[WaitCtx] = None,
    names: Optional[Mapping[int, Any]] = None,
    sort: bool = True,
    on_pause: Optional[Callable[[PauseSnapshot], None]] = None,
    max_pauses: int = 100_000,
) -> PauseTrace:
    """Run ``func(args)`` in a job, resuming it at once after every pause; the snapshots.

    ``ctx``: the context to use (a new one, closed at the end, by default).
    ``names``: fd -> what to show for it. ``sort``: list fds in a stable order
    rather than C's (newest first). ``on_pause`` is called with each ``PAUSE``
    snapshot before the resume (make fds readable there, for instance). A job
    still pausing after ``max_pauses`` is closed and ``AssertionError`` raised.
    The job's own exception is kept in ``exception``, not raised.
    """
    owned = ctx is None
    wctx: Any = backend.WaitCtx() if ctx is None else ctx
    names = names or {}
    trace = PauseTrace()
    job: Any = None
    try:
        try:
            status, job, ret = backend.start_job(None, wctx, func, args)
            while True:
                snap = _snapshot(wctx, status, job, names, sort)
                trace.append(snap)
                if status != Status.PAUSE:
                    trace.result = ret
                    break
                if len(trace) > max_pauses:
                    raise AssertionError(f"the job was still pausing after {max_pauses} pauses")
                if on_pause is not None:
                    on_pause(snap)
                status, job, ret = backend.start_job(job, wctx, None)
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - the job's own: part of the recording
            trace.exception = exc
    finally:
        if job is not None and job.state == "paused":
            job.close()
        if owned:
            wctx.close()
    return trace


def diff_traces(
    expected: Sequence[Any], actual: Sequence[Any], labels: Tuple[str, str] = ("expected", "actual")
) -> str:
    """A unified diff of two recordings (traces or lists of lines); ``""`` when they agree."""

    def lines(trace: Sequence[Any]) -> List[str]:
        if isinstance(trace, PauseTrace):
            return trace.lines()
        return [str(x) for x in trace]

    a, b = lines(expected), lines(actual)
    if a == b:
        return ""
    return "\n".join(difflib.unified_diff(a, b, labels[0], labels[1], lineterm=""))


def assert_traces_equal(
    expected: Sequence[Any], actual: Sequence[Any], labels: Tuple[str, str] = ("expected", "actual")
) -> None:
    """``AssertionError`` with :func:`diff_traces` when two recordings differ."""
    diff = diff_traces(expected, actual, labels)
    if diff:
        raise AssertionError("the traces differ:\n" + diff)


def script_steps(script: Sequence[str]) -> List[Tuple[str, str]]:
    """``"set a"`` -> ``("set", "a")``; ``ValueError`` for a step it does not know."""
    out = []
    for step in script:
        verb, _, name = step.partition(" ")
        if verb not in ("set", "clear", "poke", "pause") or (verb != "pause") != bool(name):
            raise ValueError(f"unknown script step {step!r}: use 'set X', 'clear X', 'poke X' or 'pause'")
        out.append((verb, name))
    return out


def run_fd_script(backend: Backend, script: Sequence[str], *, sort: bool = True) -> PauseTrace:
    """Run a script of wait-fd changes inside a job; the snapshots at each pause.

    Each name gets a pipe (closed afterwards); ``set X`` sets its read end as a
    wait fd under key ``X``, ``clear X`` clears it, ``poke X`` makes it
    readable, ``pause`` pauses. The result is the number of pauses.
    """
    steps = script_steps(script)
    pipes: Dict[str, Tuple[int, int]] = {}
    try:
        for _, name in steps:
            if name and name not in pipes:
                pipes[name] = os.pipe()
        names = {r: name for name, (r, _) in pipes.items()}

        def job(arg: Any) -> int:
            ctx: Any = backend.get_wait_ctx(backend.get_current_job())  # type: ignore[arg-type]
            pauses = 0
            for verb, name in steps:
                if verb == "set":
                    ctx.set_wait_fd(name, pipes[name][0])
                elif verb == "clear":
                    ctx.clear_fd(name)
                elif verb == "poke":
                    os.write(pipes[name][1], b"!")
                else:
                    backend.pause_job()
                    pauses += 1
            return pauses

        return record_pauses(backend, job, names=names, sort=sort)
    finally:
        for r, w in pipes.values():
            os.close(r)
            os.close(w)
