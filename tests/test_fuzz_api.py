"""Fuzzing the public API on both backends (issue 7, item 1).

Hypothesis generates random programs: sequences of API calls with right, wrong and
hostile arguments (wrong types, huge and negative numbers, closed contexts, foreign
handles and contexts, keys and ints whose ``__hash__``/``__eq__``/``__int__`` call
back into the API, finalisers that start jobs), jobs whose functions are programs
themselves, cleanup functions and wait-ctx callbacks that pause, resume, close or
start jobs, calls at the edge of the recursion limit, ``MemoryError`` inside jobs,
calls from other threads, and re-entry: the same kinds of programs run by a
SIGALRM handler fired every 50-300 us, by a trace function, and at interpreter
exit (before and after the library's exit hook, and from the last collection's
finalisers; the child must then exit cleanly). Each program runs in a long-lived child interpreter
(``tests/fuzz_machine.py``), which checks after every program that all errors
were the contract's and that the backend still works; a crash or hang of the child
fails the test with the program that caused it and the child's native traceback.

Bounded for CI: ``PYOSSL_ASYNC_FUZZ_EXAMPLES`` examples per backend (default 1000),
in four shards with fixed seeds, so a CI run is reproducible and spread over the
xdist workers; ``PYOSSL_ASYNC_FUZZ_RANDOM=1`` explores
new programs instead (for long local runs).
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from pyossl_async.testing import _settings as _testing_settings

from .conftest import VARIANTS, variant

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
EXAMPLES = _testing_settings.fuzz_examples()
RANDOM = _testing_settings.fuzz_random()
#: seconds one program may take before the child counts as hung
PROGRAM_TIMEOUT = 60.0


# -- the child ------------------------------------------------------------------------


class ChildDied(AssertionError):
    """The child interpreter crashed or hung on a program."""


class FuzzChild:
    """A ``fuzz_machine.py`` child for one backend; restarted after a crash."""

    def __init__(self, backend: str, env: Optional[Dict[str, str]] = None) -> None:
        self.backend = backend
        #: added to the child's environment (the python backend's engine)
        self.env = env or {}
        self.proc: Optional[subprocess.Popen[str]] = None
        self.stderr: Any = None
        #: what the programs did, summed over the run (printed with PYOSSL_ASYNC_FUZZ_STATS=1)
        self.stats: Counter[str] = Counter()

    def _spawn(self) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [SRC, env.get("PYTHONPATH")]))
        env.update(self.env)
        log = _testing_settings.fuzz_log()  # keep the child's stderr (every program) there
        self.stderr = open(log, "a+") if log else tempfile.TemporaryFile(mode="w+")
        return subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fuzz_machine.py"), self.backend],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )

    def _stderr_tail(self) -> str:
        self.stderr.seek(0)
        text: str = self.stderr.read()
        # the program that was running, and what the child printed after it
        start = text.rfind("PROGRAM ")
        return text[start:] if start >= 0 else text[-8000:]

    def run(self, program: List[Any]) -> List[str]:
        """Run one program; its problems. Raises ``ChildDied`` on a crash or hang."""
        if self.proc is None or self.proc.poll() is not None:
            self._release()
            self.proc = self._spawn()
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(program) + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            ready = sel.select(PROGRAM_TIMEOUT)
        line = proc.stdout.readline() if ready else ""
        if not line:
            hung = False  # EOF: it is exiting; no answer in time and still alive: hung
            try:
                proc.wait(30 if ready else 0)
            except subprocess.TimeoutExpired:
                hung = True
            if hung:
                proc.kill()
                proc.wait()
            what = "hung" if hung else f"died with exit status {proc.returncode}"
            tail = self._stderr_tail()
            self._release()
            raise ChildDied(f"the {self.backend} child {what} running\n{tail}")
        result = json.loads(line)
        self.stats.update(result["stats"])
        problems: List[str] = result["problems"]
        return problems

    def _release(self) -> None:
        """Close our ends of a finished child's pipes and its stderr file."""
        if self.proc is not None:
            for stream in (self.proc.stdin, self.proc.stdout):
                if stream is not None:
                    try:
                        stream.close()
                    except OSError:
                        pass
            self.proc = None
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None

    def close(self) -> None:
        """End the child (EOF on its stdin); it must exit cleanly: no crash or hang at exit."""
        proc = self.proc
        if proc is None:
            self._release()
            return
        assert proc.stdin is not None
        try:
            proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        tail = self._stderr_tail()
        self._release()
        if proc.returncode != 0:
            raise ChildDied(f"the {self.backend} child exited with {proc.returncode} at exit\n{tail}")


@pytest.fixture(scope="module", params=VARIANTS)
def child(request: pytest.FixtureRequest) -> Iterator[FuzzChild]:
    name, env = variant(request.param)  # skips (or fails, in CI) when the backend cannot load
    c = FuzzChild(name, env)
    yield c
    c.close()
    if _testing_settings.fuzz_stats():
        print(f"\nfuzz stats ({request.param}):")
        for what, n in sorted(c.stats.items()):
            print(f"  {n:8d} {what}")


# -- programs -------------------------------------------------------------------------

HANDLE = st.integers(0, 2)
CTX = st.integers(0, 1)
INTS = st.sampled_from(
    [0, 1, -1, 2, 3, 7, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**63, 2**64, -(2**64), 10**30, True, False]
)
JUNK = st.one_of(
    st.none(),
    st.just("x"),
    st.just(1.5),
    st.just(["nan"]),
    st.just(["list"]),
    st.just(["object"]),
    st.just(["unhashable"]),
    INTS,
)
BYTESLIKE = st.builds(
    lambda kind, n: [kind, n], st.sampled_from(["bytes", "bytearray", "memoryview"]), st.integers(0, 40)
)
HOOKS = st.sampled_from(["hash", "eq", "int", "index", "del", "call", "buffer"])
REFS = st.one_of(
    st.builds(lambda h: ["handle", h], HANDLE),
    st.builds(lambda c: ["ctx", c], CTX),
    st.just(["closed_ctx"]),
    st.just(["foreign_ctx"]),
    st.just(["foreign_handle"]),
)


def _hostile(ops: st.SearchStrategy[List[Any]]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(lambda w, o: ["hostile", w, o], HOOKS, ops),
        st.builds(lambda n, o: ["hostile_int", n, o], st.integers(0, 5), ops),
    )


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each picked about ``weight`` times as often as a weight of 1."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def _ops(inner: st.SearchStrategy[List[Any]], in_job: bool) -> st.SearchStrategy[List[Any]]:
    """One operation; ``inner`` generates nested programs (job bodies, hooks).

    Weighted so that most programs really start, pause, interleave and resume jobs;
    hostile arguments and hooks come in at a lower rate everywhere.
    """
    value = st.one_of(JUNK, BYTESLIKE, REFS, _hostile(inner))
    result = _weighted((6, st.integers(-3, 100)), (1, INTS), (1, st.just("x")), (1, st.none()), (1, _hostile(inner)))
    script = st.builds(lambda o, r: ["script", o, r], inner, result)
    func = _weighted((12, script), (1, st.none()), (1, st.just(5)), (1, st.just(["wrong_arity"])), (1, _hostile(inner)))
    good_ctx = st.builds(lambda c: ["ctx", c], CTX)
    ctx = _weighted(
        (12, good_ctx), (2, st.none()), (1, st.just(["closed_ctx"])), (1, st.just(["foreign_ctx"])), (1, JUNK)
    )
    key = _weighted((8, st.sampled_from([0, 1, "k", "j"])), (1, st.just(["unhashable"])), (1, _hostile(inner)))
    fd = _weighted(
        (6, st.integers(-1, 40)), (2, INTS), (1, st.just("3")),
        (1, st.builds(lambda n, o: ["hostile_int", n, o], st.integers(0, 5), inner)),
    )
    hook = _weighted((4, inner), (2, st.none()), (1, st.just(5)))
    simple = st.sampled_from(
        [["cleanup_thread"], ["block"], ["unblock"], ["current"], ["raise"], ["memory"], ["gc"]]
    )
    pause = st.sampled_from([["pause"], ["pause"], ["pause"], ["catch_cancel_pause"], ["close_current"]])
    start = st.builds(
        lambda h, c, f, a: ["start", h, c, f, a], HANDLE, ctx, func, _weighted((6, st.integers(0, 99)), (1, JUNK),
                                                                              (1, BYTESLIKE), (1, REFS))
    )
    return _weighted(
        (8, start),
        (8, st.builds(lambda h, c, f: ["resume", h, c, f], HANDLE, JUNK, JUNK)),
        (10 if in_job else 1, pause),
        (1, st.builds(lambda v: ["resume_value", v], st.one_of(JUNK, REFS))),
        (2, st.builds(lambda h: ["close_job", h], HANDLE)),
        (2, st.builds(lambda h: ["drop", h], HANDLE)),
        (1, st.builds(lambda h: ["keep_current", h], HANDLE)),
        (1, st.builds(lambda c: ["new_ctx", c], CTX)),
        (1, st.builds(lambda c: ["close_ctx", c], CTX)),
        (1, st.builds(lambda c: ["drop_ctx", c], CTX)),
        (3, st.builds(lambda c, k, f, d, h: ["set_wait_fd", c, k, f, d, h], CTX, key, fd, value, hook)),
        (1, st.builds(lambda c, k: ["get_fd", c, k], CTX, key)),
        (1, st.builds(lambda c, k: ["clear_fd", c, k], CTX, key)),
        (1, st.builds(lambda c: ["get_all_fds", c], CTX)),
        (1, st.builds(lambda c: ["get_changed_fds", c], CTX)),
        (2, st.builds(lambda c, h, a: ["set_callback", c, h, a], CTX,
                      _weighted((4, inner.filter(bool)), (1, st.none()), (1, st.just(5))), value)),
        (2, st.builds(lambda c: ["call_callback", c], CTX)),
        (1, st.builds(lambda c, v: ["set_status", c, v], CTX, st.one_of(INTS, JUNK))),
        (1, st.builds(lambda c: ["get_status", c], CTX)),
        (1, st.builds(lambda c, o: ["ctx_enter", c, o], CTX, inner)),
        (1, st.builds(lambda a, b: ["init_thread", a, b], st.one_of(INTS, JUNK), st.one_of(INTS, JUNK))),
        (1, st.builds(lambda v: ["get_wait_ctx", v], st.one_of(REFS, JUNK))),
        (1, st.builds(lambda k, o: ["recurse", k, o], st.integers(1, 60), inner)),
        (1, st.builds(lambda o: ["hostile_del", o], inner)),
        (1, st.builds(lambda o: ["cycle_del", o], inner)),
        (1, st.builds(lambda o: ["thread", o], inner)),
        (1, st.builds(lambda o: ["blocked", o], inner)),
        (1, st.builds(lambda f, a, c, t: ["run_job", f, a, c, t], func, JUNK, ctx,
                      st.sampled_from([0, 0.01, -1, "x", ["nan"], None]))),
        (2, simple),
        # re-entry (issue 12): a signal handler, a trace function, exit-time hooks
        (1, st.builds(lambda i, h, b: ["itimer", i, h, b], st.sampled_from([50, 100, 300]), inner, inner)),
        (1, st.builds(lambda e, h, b: ["traced", e, h, b], st.sampled_from([3, 7, 20]), inner, inner)),
        (1, st.builds(lambda o: ["at_exit", o], inner)),
    )


def _nested(depth: int) -> st.SearchStrategy[List[Any]]:
    """Bodies of jobs and hooks: programs ``depth`` levels deep at most."""
    if depth == 0:
        return st.lists(st.sampled_from([["pause"], ["current"], ["gc"], ["raise"]]), max_size=3)
    return st.lists(_ops(_nested(depth - 1), in_job=True), max_size=5)


PROGRAMS = st.lists(_ops(_nested(2), in_job=False), min_size=1, max_size=12)


#: the programs of a run are split into shards with seeds of their own, so that
#: pytest-xdist spreads them over its workers (one long test would hold one worker)
SHARDS = 4


def _fuzzer(shard: int) -> Callable[[FuzzChild], None]:
    """Runs ``EXAMPLES / SHARDS`` programs: the same ones each run (a fixed seed per
    shard), new ones with ``PYOSSL_ASYNC_FUZZ_RANDOM=1``."""

    @settings(
        max_examples=max(1, -(-EXAMPLES // SHARDS)),
        derandomize=False,  # (each shard has a seed of its own: see below)
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(program=PROGRAMS)
    def fuzz(child: FuzzChild, program: List[Any]) -> None:
        problems = child.run(program)
        assert not problems, "\n\n".join(problems) + "\n\nprogram: " + json.dumps(program)

    return fuzz if RANDOM else seed(0x5EED0 + shard)(fuzz)


_FUZZERS = [_fuzzer(shard) for shard in range(SHARDS)]


@pytest.mark.subprocess
@pytest.mark.parametrize("shard", range(SHARDS))
def test_random_api_programs_never_crash_and_raise_only_contract_errors(child: FuzzChild, shard: int) -> None:
    _FUZZERS[shard](child)


def test_fuzz_child_reports_a_crash() -> None:
    """The harness itself can fail: a child that dies is reported with its program."""
    c = FuzzChild("python")
    c.stderr = tempfile.TemporaryFile(mode="w+")
    c.proc = subprocess.Popen(
        [sys.executable, "-c", "import os, sys; sys.stdin.readline(); os.abort()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=c.stderr, text=True,
    )
    with pytest.raises(ChildDied, match="died with exit status -6"):
        c.run([["gc"]])
    assert c.proc is None and c.stderr is None
