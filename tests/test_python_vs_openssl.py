"""Differential test: random programs of ASYNC calls give the same trace on both backends.

The ``"openssl"`` backend calls the real libcrypto, so it is the reference for
the ``"python"`` model. A program is a list of driver operations (pool set-up,
starting, resuming and closing jobs, wait-ctx calls, block/pause outside jobs);
a started job runs a script of steps (pause, block, unblock, wait-ctx calls,
``init_thread`` from inside, return or raise). Everything observable is appended
to a trace: statuses, results, fd lists, cleanup calls, exception types and messages.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Tuple

import pytest

import pyossl_async as pa

from .conftest import load_backend

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

#: more, and fresh, examples: DIFF_EXAMPLES=5000 DIFF_RANDOM=1 pytest tests/test_python_vs_openssl.py
EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", "300"))
RANDOM = bool(os.environ.get("DIFF_RANDOM"))

Step = Tuple[Any, ...]
Op = Tuple[Any, ...]

KEYS = ["a", "b", 3]
FDS = st.integers(min_value=0, max_value=40)


def _ctx_call() -> Any:
    key = st.sampled_from(KEYS)
    return st.one_of(
        st.tuples(st.just("set_wait_fd"), key, FDS, st.booleans()),
        st.tuples(st.just("clear_fd"), key),
        st.tuples(st.just("get_fd"), key),
        st.tuples(st.just("get_all_fds")),
        st.tuples(st.just("get_changed_fds")),
        st.tuples(st.just("set_status"), st.integers(min_value=-3, max_value=5)),
        st.tuples(st.just("get_status")),
        st.tuples(st.just("set_callback"), st.booleans(), st.sampled_from([None, "arg"])),
        st.tuples(st.just("get_callback")),
    )


job_steps = st.lists(
    st.one_of(
        st.tuples(st.just("pause")),
        st.tuples(st.just("block")),
        st.tuples(st.just("unblock")),
        st.tuples(st.just("ctx"), _ctx_call()),
        st.tuples(st.just("init"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("current")),
        st.tuples(st.just("close"), st.integers(0, 5)),
        st.tuples(st.just("resume"), st.integers(0, 5)),
    ),
    max_size=8,
).flatmap(
    lambda steps: st.one_of(
        st.tuples(st.just("ret"), st.integers(-5, 5)),
        st.tuples(st.just("raise")),
    ).map(lambda end: (*steps, end))
)

ops = st.lists(
    st.one_of(
        st.tuples(st.just("init"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("cleanup")),
        st.tuples(st.just("newctx")),
        st.tuples(st.just("closectx"), st.integers(0, 3)),
        st.tuples(st.just("start"), job_steps, st.integers(-1, 3)),
        st.tuples(st.just("resume"), st.integers(0, 5)),
        st.tuples(st.just("close"), st.integers(0, 5)),
        st.tuples(st.just("ctx"), st.integers(0, 3), _ctx_call()),
        st.tuples(st.just("block")),
        st.tuples(st.just("unblock")),
        st.tuples(st.just("pause")),
    ),
    max_size=25,
)


def run_program(be: pa.Backend, program: List[Op]) -> List[Any]:
    """Run ``program`` on ``be``; the trace of everything observable."""
    trace: List[Any] = []
    ctxs: List[Any] = []
    jobs: List[Any] = []

    def cleanup_fn(ctx: Any, key: Any, fd: int, data: Any) -> None:
        trace.append(("cleanup", ctxs.index(ctx) if ctx in ctxs else "?", key, fd, data))

    def callback_fn(arg: Any) -> int:
        return 1

    def ctx_call(ctx: Any, call: Tuple[Any, ...]) -> Any:
        name, *args = call
        if name == "set_wait_fd":
            key, fd, with_cleanup = args
            return ctx.set_wait_fd(key, fd, ("data", fd), cleanup_fn if with_cleanup else None)
        if name == "set_callback":
            return ctx.set_callback(callback_fn if args[0] else None, args[1])
        if name == "get_callback":
            found = ctx.get_callback()
            return found if found is None else (found[0] is callback_fn, found[1])
        result = getattr(ctx, name)(*args)
        return int(result) if name == "get_status" else result

    def guarded(what: Any, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - the type is the observation
            trace.append((what, "raised", type(exc).__name__, str(exc)))
            return None
        trace.append((what, value))
        return value

    def make_job(steps: Tuple[Step, ...]) -> Callable[[Any], int]:
        def job(arg: Any) -> int:
            for step in steps:
                kind = step[0]
                if kind == "pause":
                    guarded("job.pause", be.pause_job)
                elif kind == "block":
                    be.block_pause()
                elif kind == "unblock":
                    be.unblock_pause()
                elif kind == "ctx":
                    cur = be.get_current_job()
                    ctx = be.get_wait_ctx(cur) if cur is not None else None
                    if ctx is None:
                        trace.append(("job.ctx", "none"))
                    else:
                        guarded(("job.ctx", step[1][0]), ctx_call, ctx, step[1])
                elif kind == "init":
                    guarded("job.init", be.init_thread, step[1], step[2])
                elif kind == "close":
                    if step[1] < len(jobs):
                        guarded("job.close", jobs[step[1]].close)
                elif kind == "resume":
                    if step[1] < len(jobs):
                        guarded("job.resume", resume, jobs[step[1]])
                elif kind == "current":
                    cur = be.get_current_job()
                    trace.append(("job.current", cur is not None and cur.state))
                elif kind == "ret":
                    return int(step[1])
                elif kind == "raise":
                    raise ValueError("job raised")
            return 0  # pragma: no cover - scripts always end with ret/raise

        return job

    def status_of(result: Any) -> Any:
        status, handle, ret = result
        if status == pa.PAUSE:
            if handle not in jobs:
                jobs.append(handle)
            return ("PAUSE", jobs.index(handle))
        return (pa.Status(status).name, ret)

    def start(ctx: Any, func: Callable[[Any], int]) -> Any:
        return status_of(be.start_job(None, ctx, func))

    def resume(handle: Any) -> Any:
        return status_of(be.start_job(handle, None, None))

    be.cleanup_thread()
    try:
        for op in program:
            kind = op[0]
            if kind == "init":
                guarded(op, be.init_thread, op[1], op[2])
            elif kind == "cleanup":
                guarded(op[0], be.cleanup_thread)
            elif kind == "newctx":
                ctxs.append(be.WaitCtx())
            elif kind == "closectx":
                if op[1] < len(ctxs):
                    guarded(op, ctxs[op[1]].close)
            elif kind == "start":
                ctx = ctxs[op[2]] if 0 <= op[2] < len(ctxs) else None
                guarded(("start", op[2]), start, ctx, make_job(op[1]))
            elif kind == "resume":
                if op[1] < len(jobs):
                    guarded(op, resume, jobs[op[1]])
            elif kind == "close":
                if op[1] < len(jobs):
                    guarded(op, jobs[op[1]].close)
            elif kind == "ctx":
                if op[1] < len(ctxs):
                    guarded(op, ctx_call, ctxs[op[1]], op[2])
            elif kind == "block":
                be.block_pause()
            elif kind == "unblock":
                be.unblock_pause()
            elif kind == "pause":
                guarded("pause", be.pause_job)
            trace.append(("states", tuple(j.state for j in jobs)))
    finally:
        for handle in jobs:
            guarded("final.close", handle.close)
        for ctx in ctxs:
            guarded("final.closectx", ctx.close)
        be.cleanup_thread()
    return trace


@pytest.fixture(scope="module")
def both() -> Tuple[pa.Backend, pa.Backend]:
    return load_backend("openssl"), load_backend("python")


@hypothesis.settings(max_examples=EXAMPLES, deadline=None, derandomize=not RANDOM)
@hypothesis.given(program=ops)
def test_random_programs_agree(both: Tuple[pa.Backend, pa.Backend], program: List[Op]) -> None:
    openssl, python = both
    expected = run_program(openssl, program)
    assert run_program(python, program) == expected


def _fixed(program: List[Op]) -> Tuple[List[Any], List[Any]]:
    return run_program(load_backend("openssl"), program), run_program(load_backend("python"), program)


PAUSE_TWICE = (
    ("ctx", ("set_wait_fd", "a", 7, True)),
    ("pause",),
    ("ctx", ("clear_fd", "a")),
    ("pause",),
    ("ret", 1),
)


@pytest.mark.parametrize(
    "program",
    [
        # asynctest.c test_ASYNC_init_thread
        [("init", 2, 0), ("newctx",)] + [("start", (("pause",), ("ret", 1)), 0)] * 3
        + [("resume", 0), ("start", (("pause",), ("ret", 1)), 0), ("resume", 1), ("resume", 2)],
        # a second init_thread replaces the pool: its curr_size starts at 0
        [("init", 1, 0), ("newctx",), ("start", (("pause",), ("ret", 1)), 0),
         ("start", (("ret", 2),), 0), ("init", 1, 0), ("start", (("pause",), ("ret", 3)), 0),
         ("start", (("ret", 4),), 0), ("resume", 0), ("start", (("ret", 5),), 0), ("resume", 1)],
        # the block counter leaks from a job into the thread, and into later jobs
        [("newctx",), ("start", (("block",), ("pause",), ("ret", 1)), 0),
         ("start", (("pause",), ("unblock",), ("pause",), ("ret", 2)), 0), ("unblock",),
         ("resume", 0), ("cleanup",), ("start", (("pause",), ("ret", 3)), 0), ("resume", 0)],
        # counts and lists reset at resume, not at pause or finish
        [("newctx",), ("ctx", 0, ("set_wait_fd", "a", 1, True)), ("start", PAUSE_TWICE, 0),
         ("ctx", 0, ("get_changed_fds",)), ("resume", 0), ("ctx", 0, ("get_changed_fds",)),
         ("ctx", 0, ("get_all_fds",)), ("resume", 0), ("ctx", 0, ("get_changed_fds",)), ("closectx", 0)],
        # init_thread from inside a job: the running job finishes into the new pool
        [("init", 1, 0), ("newctx",), ("start", (("init", 1, 0), ("pause",), ("ret", 1)), 0),
         ("start", (("ret", 2),), 0), ("resume", 0), ("start", (("pause",), ("ret", 3)), 0),
         ("start", (("ret", 4),), 0), ("resume", 1)],
        # misuse from inside a job: closing or resuming another job
        [("newctx",), ("start", (("pause",), ("ret", 1)), 0),
         ("start", (("close", 0), ("resume", 0), ("ret", 2)), 0), ("resume", 0)],
    ],
    ids=["asynctest-init-thread", "second-init", "block-leak", "reset-at-resume", "init-inside-job",
         "misuse-inside-job"],
)
def test_known_scenarios_agree(program: List[Op]) -> None:
    expected, got = _fixed(program)
    assert got == expected


def test_trace_is_not_trivial() -> None:
    """Guard against a harness that records nothing (both sides would trivially agree)."""
    trace, _ = _fixed([("init", 1, 0), ("newctx",), ("start", PAUSE_TWICE, 0), ("start", PAUSE_TWICE, 0),
                       ("resume", 0), ("resume", 0)])
    assert ("start", 0) in [t[0] for t in trace if isinstance(t, tuple) and len(t) == 2]
    assert (("start", 0), ("NO_JOBS", None)) in trace
    assert ("cleanup", 0, "a", 7, ("data", 7)) not in trace  # cleared fds are never cleaned up
    assert (("resume", 0), ("FINISH", 1)) in trace
