"""Differential random testing: one hypothesis state machine drives both backends in lockstep.

Each rule performs the same API call on every backend (a *world* each) and
requires the observations to be identical, step by step: statuses, results,
fd lists, cleanup calls, callbacks, job states, exception types and messages.
A failing example therefore shrinks to the shortest call sequence on which the
``"python"`` model and the real libcrypto (``"openssl"``) part ways.

What the rules cover: ``init_thread``/``cleanup_thread``; wait contexts created,
freed and called (every ``WaitCtx`` method, keys that compare by ``==``, cleanup
functions, callbacks); jobs started (with a context or none), resumed, closed,
resumed from another thread, and whole jobs run in other threads;
``block_pause``/``unblock_pause``/``pause_job``/``get_current_job`` outside jobs.
A job's code is remote-controlled: every start or resume appends actions to the
job's queue, which the job works through until one of them really pauses it.
Actions pause at random call depths (``deeper``/``up`` move through real Python
frames that stay alive across pauses), block and unblock, call the wait context
(its own or any other), call ``init_thread``, look at the current job, misuse
the API from inside (nested ``start_job``, resuming or closing other jobs,
``cleanup_thread``, freeing contexts in use), and return or raise.

This replaces the earlier ``tests/test_python_vs_openssl.py`` (random programs
compared after the fact); its fixed programs are catalogue scenarios now.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import pyossl_async as pa
from pyossl_async.testing import _settings

__all__ = ["World", "make_machine", "run_differential"]

KEYS: Tuple[Any, ...] = ("a", 3)
MAX_CTXS = 4
MAX_JOB_INDEX = 12
BACKENDS = ("openssl", "python")

Obs = Tuple[Any, ...]


#: one job action: its kind, then its parameters (see ``_strategies``)
Action = Tuple[Any, ...]
#: returned by an action that ends the current ``deeper`` level
_LEAVE = object()


class _Return(Exception):
    """Unwinds a remote-controlled job from any depth with its result."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value


class World:
    """One backend's side of the lockstep run: its contexts, jobs and observation log."""

    def __init__(self, backend: pa.Backend) -> None:
        self.be = backend
        self.log: List[Obs] = []
        self.ctxs: List[Any] = []
        #: job index -> handle (None until the job first pauses; kept after it ends)
        self.jobs: List[Optional[Any]] = []
        self.queues: Dict[int, Deque[Tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    # -- observations --------------------------------------------------------------

    def obs(self, *item: Any) -> None:
        with self._lock:
            self.log.append(item)

    def take(self) -> List[Obs]:
        with self._lock:
            out, self.log = self.log, []
        return out

    def guarded(self, what: Any, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            value = fn(*args)
        except Exception as exc:  # noqa: BLE001 - the exception is the observation
            self.obs(what, "raised", type(exc).__name__, str(exc))
            return None
        self.obs(what, self.plain(value))
        return value

    def plain(self, value: Any) -> Any:
        """A value as comparable data: handles and contexts by index, enums as ints."""
        if isinstance(value, pa.Job):
            return ("job", self.job_index(value))
        if isinstance(value, (list, tuple)):
            return type(value)(self.plain(v) for v in value)
        if any(value is c for c in self.ctxs):
            return ("ctx", self.ctx_index(value))
        if isinstance(value, int):  # bool, Status and WaitStatus included
            return int(value)
        return value

    def ctx_index(self, ctx: Any) -> Any:
        for i, c in enumerate(self.ctxs):
            if c is ctx:
                return i
        return "?"

    def job_index(self, handle: Any) -> Any:
        if handle is None:
            return None
        for i, h in enumerate(self.jobs):
            if h is handle:
                return i
        return "?"

    # -- wait-context calls ----------------------------------------------------------

    def cleanup_fn(self, ctx: Any, key: Any, fd: int, data: Any) -> None:
        self.obs("cleanup", self.ctx_index(ctx), key, fd, data)

    def callback_fn(self, arg: Any) -> int:
        self.obs("callback", arg)
        return 1

    def ctx_call(self, ctx: Any, call: Sequence[Any]) -> Any:
        name, *args = call
        if name == "set_wait_fd":
            key, fd, with_cleanup = args
            return ctx.set_wait_fd(key, fd, ("data", fd), self.cleanup_fn if with_cleanup else None)
        if name == "set_callback":
            with_fn, arg = args
            return ctx.set_callback(self.callback_fn if with_fn else None, arg)
        if name == "get_callback":
            found = ctx.get_callback()
            return None if found is None else (found[0] == self.callback_fn, found[1])
        if name == "call_callback":
            found = ctx.get_callback()
            return None if found is None else found[0](found[1])
        if name == "get_status":
            return int(ctx.get_status())
        return getattr(ctx, name)(*args)

    # -- remote-controlled jobs -----------------------------------------------------

    def new_job(self, actions: Sequence[Tuple[Any, ...]]) -> Tuple[int, Callable[[Any], int]]:
        idx = len(self.jobs)
        self.jobs.append(None)
        self.queues[idx] = collections.deque(actions)

        def job(arg: Any) -> int:
            try:
                self.interpret(idx, 0)
            except _Return as ret:
                return ret.value
            return 0

        return idx, job

    def interpret(self, idx: int, depth: int) -> None:
        """Run job ``idx``'s queued actions (inside the job) until they run out, an
        ``up`` leaves a ``deeper`` level, or a ``ret``/``raise`` ends the job."""
        queue = self.queues[idx]
        while queue:
            act = queue.popleft()
            if _ACTIONS[act[0]](self, idx, depth, act) is _LEAVE:
                return

    # -- the job actions (_ACTIONS): act is (kind, *parameters) --------------------

    def _act_pause(self, idx: int, depth: int, act: Action) -> None:
        self.guarded(("job", idx, "pause", depth), self.be.pause_job)

    def _act_deeper(self, idx: int, depth: int, act: Action) -> None:
        self.interpret(idx, depth + 1)

    def _act_up(self, idx: int, depth: int, act: Action) -> object:
        return _LEAVE if depth > 0 else None

    def _act_block(self, idx: int, depth: int, act: Action) -> None:
        self.be.block_pause()

    def _act_unblock(self, idx: int, depth: int, act: Action) -> None:
        self.be.unblock_pause()

    def _act_own_ctx(self, idx: int, depth: int, act: Action) -> None:
        tag = ("job", idx, "own_ctx")
        cur = self.be.get_current_job()
        ctx = self.be.get_wait_ctx(cur) if cur is not None else None
        if ctx is None:
            self.obs(tag, "no ctx")
        else:
            self.guarded((*tag, act[1][0], self.ctx_index(ctx)), self.ctx_call, ctx, act[1])

    def _act_ctx(self, idx: int, depth: int, act: Action) -> None:
        if self.ctxs:
            i = act[1] % len(self.ctxs)
            self.guarded(("job", idx, "ctx", i, act[2][0]), self.ctx_call, self.ctxs[i], act[2])

    def _act_free_ctx(self, idx: int, depth: int, act: Action) -> None:
        if self.ctxs:
            self.guarded(("job", idx, "free_ctx"), self.ctxs[act[1] % len(self.ctxs)].close)

    def _act_init(self, idx: int, depth: int, act: Action) -> None:
        self.guarded(("job", idx, "init", *act[1:]), self.be.init_thread, act[1], act[2])

    def _act_current(self, idx: int, depth: int, act: Action) -> None:
        cur = self.be.get_current_job()
        self.obs(("job", idx, "current"), None if cur is None else (cur.state, self.job_index(cur)))

    def _act_start_nested(self, idx: int, depth: int, act: Action) -> None:
        self.guarded(("job", idx, "start_nested"), self.be.start_job, None, None, lambda arg: 0)

    def _other_job(self, act: Action) -> Any:
        """The handle ``act[1]`` names among the jobs seen so far (None: none yet)."""
        return self.jobs[act[1] % len(self.jobs)] if self.jobs else None

    def _act_resume_other(self, idx: int, depth: int, act: Action) -> None:
        other = self._other_job(act)
        if other is not None:
            self.guarded(("job", idx, "resume_other"), self.be.start_job, other, None, None)

    def _act_close_other(self, idx: int, depth: int, act: Action) -> None:
        other = self._other_job(act)
        if other is not None:
            self.guarded(("job", idx, "close_other"), other.close)

    def _act_cleanup(self, idx: int, depth: int, act: Action) -> None:
        self.guarded(("job", idx, "cleanup"), self.be.cleanup_thread)

    def _act_ret(self, idx: int, depth: int, act: Action) -> None:
        raise _Return(act[1])

    def _act_raise(self, idx: int, depth: int, act: Action) -> None:
        raise ValueError(f"job {idx} raised")

    def run_step(self, what: Any, idx: int, call: Callable[[], Any]) -> None:
        """Start or resume a job; observe the result and register a handle that paused."""
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - the job's exception is the observation
            self.obs(what, idx, "raised", type(exc).__name__, str(exc))
            return
        status, handle, ret = result
        if status == pa.PAUSE and self.jobs[idx] is None:
            self.jobs[idx] = handle
        self.obs(what, idx, status.name, self.job_index(handle), ret)

    def states(self) -> Tuple[Any, ...]:
        return tuple(None if h is None else h.state for h in self.jobs)

    def snapshot(self) -> Tuple[Any, ...]:
        """Everything observable about the contexts, read without changing anything.

        Compared after every step, so a divergence shows at once, whether or not
        the program happens to look at it.
        """
        out: List[Any] = []
        for ctx in self.ctxs:
            if ctx.closed:
                out.append("closed")
                continue
            found = ctx.get_callback()
            out.append(
                (
                    ctx.get_all_fds(),
                    ctx.get_changed_fds(),
                    tuple(ctx.get_fd(key) for key in KEYS),
                    int(ctx.get_status()),
                    None if found is None else (found[0] == self.callback_fn, found[1]),
                )
            )
        return tuple(out)

    def teardown(self) -> None:
        for handle in self.jobs:
            if handle is not None and handle.state == "paused":
                self.guarded("final close", handle.close)
        for ctx in self.ctxs:
            self.guarded("final free", ctx.close)
        self.guarded("final cleanup", self.be.cleanup_thread)


#: what ``World.interpret`` does for each kind of job action
_ACTIONS: Dict[str, Callable[[World, int, int, Action], object]] = {
    kind: getattr(World, f"_act_{kind}")
    for kind in (
        "pause", "deeper", "up", "block", "unblock", "own_ctx", "ctx", "free_ctx", "init",
        "current", "start_nested", "resume_other", "close_other", "cleanup", "ret", "raise",
    )
}


def _strategies() -> Any:
    """The hypothesis strategies (imported lazily: hypothesis is a test dependency)."""
    from hypothesis import strategies as st

    key = st.sampled_from(KEYS)
    fd = st.integers(min_value=-1, max_value=40)
    set_fd = st.tuples(st.just("set_wait_fd"), key, fd, st.booleans())
    clear_fd = st.tuples(st.just("clear_fd"), key)
    # adding and clearing fds drive most of the wait-context rules: drawn most
    ctx_call = st.one_of(
        set_fd,
        clear_fd,
        set_fd,
        clear_fd,
        st.tuples(st.just("get_fd"), key),
        st.tuples(st.just("get_all_fds")),
        st.tuples(st.just("get_changed_fds")),
        st.tuples(st.just("set_status"), st.integers(min_value=-2, max_value=4)),
        st.tuples(st.just("get_status")),
        st.tuples(st.just("set_callback"), st.booleans(), st.sampled_from([None, "arg", 7])),
        st.tuples(st.just("get_callback")),
        st.tuples(st.just("call_callback")),
    )
    index = st.integers(min_value=0, max_value=MAX_JOB_INDEX)
    pause = st.just(("pause",))
    own_ctx = st.tuples(st.just("own_ctx"), ctx_call)
    misuse = st.one_of(
        st.just(("start_nested",)),
        st.tuples(st.just("resume_other"), index),
        st.tuples(st.just("close_other"), index),
        st.just(("cleanup",)),
        st.tuples(st.just("free_ctx"), st.integers(0, MAX_CTXS)),
    )
    # A segment of job code: a few actions, then usually a pause (what most
    # behaviour hangs on), sometimes a return or a raise. Weights are explicit
    # (one_of would favour the simplest branches): calls on the job's own context
    # 7 in 18, on any context 2, misuse from inside 2, the rest 1 each.
    weighted = (
        [own_ctx] * 7
        + [st.tuples(st.just("ctx"), st.integers(0, MAX_CTXS), ctx_call)] * 2
        + [misuse] * 2
        + [st.just((kind,)) for kind in ("deeper", "up", "block", "unblock", "current", "pause")]
        + [st.tuples(st.just("init"), st.integers(0, 3), st.integers(0, 3))]
    )
    action = st.integers(0, len(weighted) - 1).flatmap(lambda n: weighted[n])
    end = st.integers(0, 9).flatmap(
        lambda n: pause if n < 7 else st.tuples(st.just("ret"), st.integers(-3, 3)) if n < 9 else st.just(("raise",))
    )
    segment = st.tuples(st.lists(action, max_size=5), end).map(lambda se: [*se[0], se[1]])
    return st, ctx_call, index, segment


def make_machine(backends: Sequence[str] = BACKENDS) -> Any:
    """The state machine class, comparing ``backends`` (the first is the reference)."""
    from hypothesis import stateful

    st, ctx_call, index, actions = _strategies()
    rule, invariant = stateful.rule, stateful.invariant

    class DifferentialMachine(stateful.RuleBasedStateMachine):
        """Every rule runs on every world; their observations must be equal."""

        def __init__(self) -> None:
            super().__init__()
            self.worlds = [World(pa.get_backend(name)) for name in backends]
            for w in self.worlds:
                w.be.cleanup_thread()

        def each(self, op: Callable[[World], None]) -> None:
            for w in self.worlds:
                op(w)
            self.check()

        def check(self) -> None:
            ref = self.worlds[0]
            want = ref.take()
            for w in self.worlds[1:]:
                got = w.take()
                assert got == want, f"{w.be.name} observed {got!r}\n{ref.be.name} observed {want!r}"

        @invariant()
        def states_agree(self) -> None:
            """Job states and every open context's full state, after every step."""
            ref = self.worlds[0]
            for w in self.worlds[1:]:
                assert w.states() == ref.states(), f"job states: {w.be.name} {w.states()} != {ref.states()}"
                assert w.snapshot() == ref.snapshot(), (
                    f"contexts: {w.be.name} {w.snapshot()!r}\n != {ref.be.name} {ref.snapshot()!r}"
                )

        @stateful.initialize(n_ctxs=st.integers(1, 2), max_size=st.integers(0, 4))
        def set_up(self, n_ctxs: int, max_size: int) -> None:
            """Most programs want a context or two and a pool (0: unlimited) from the start."""

            def op(w: World) -> None:
                for _ in range(n_ctxs):
                    w.ctxs.append(w.be.WaitCtx())
                w.guarded(("init", max_size, 0), w.be.init_thread, max_size, 0)

            self.each(op)

        # -- the thread's pool and wait contexts -----------------------------------

        @rule(max_size=st.integers(0, 4), init_size=st.integers(0, 4), cleanup=st.booleans())
        def pool(self, max_size: int, init_size: int, cleanup: bool) -> None:
            """``init_thread(max, init)``, or ``cleanup_thread()``."""
            if cleanup:
                self.each(lambda w: w.guarded("cleanup", w.be.cleanup_thread))
            else:
                self.each(lambda w: w.guarded(("init", max_size, init_size), w.be.init_thread, max_size, init_size))

        @rule(i=st.integers(0, MAX_CTXS), call=ctx_call)
        def ctx_op(self, i: int, call: Tuple[Any, ...]) -> None:
            def op(w: World) -> None:
                if w.ctxs:
                    k = i % len(w.ctxs)
                    w.guarded(("ctx", k, call[0]), w.ctx_call, w.ctxs[k], call)

            self.each(op)

        @rule(i=st.integers(0, MAX_CTXS), new=st.booleans())
        def ctx_lifecycle(self, i: int, new: bool) -> None:
            """A new context (up to four), or ``close()`` of one (refused while a job uses it)."""

            def op(w: World) -> None:
                if new:
                    if len(w.ctxs) < MAX_CTXS:
                        w.ctxs.append(w.be.WaitCtx())
                        w.obs("new ctx", len(w.ctxs) - 1)
                elif w.ctxs:
                    w.guarded(("free", i % len(w.ctxs)), w.ctxs[i % len(w.ctxs)].close)

            self.each(op)

        # -- jobs (start comes twice, resume three times: they should be drawn most) --

        def _start(self, ctx: int, acts: List[Tuple[Any, ...]], open_only: bool) -> None:
            def op(w: World) -> None:
                pool = [c for c in w.ctxs if not c.closed] if open_only else w.ctxs
                c = pool[ctx % len(pool)] if ctx >= 0 and pool else None
                idx, fn = w.new_job(acts)
                w.run_step("start", idx, lambda: w.be.start_job(None, c, fn))

            self.each(op)

        def _resume(self, i: int, acts: List[Tuple[Any, ...]]) -> None:
            def op(w: World) -> None:
                live = [k for k, h in enumerate(w.jobs) if h is not None and h.state == "paused"]
                if not live:
                    return
                k = live[i % len(live)]  # a paused job: resuming finished ones is the misuse rule's job
                w.queues[k].extend(acts)
                w.run_step("resume", k, lambda: w.be.start_job(w.jobs[k], None, None))

            self.each(op)

        @rule(ctx=st.integers(-1, MAX_CTXS), acts=actions)
        def start(self, ctx: int, acts: List[Tuple[Any, ...]]) -> None:
            """Any context: none (-1), or one that may be closed (misuse)."""
            self._start(ctx, acts, open_only=False)

        @rule(ctx=st.integers(0, MAX_CTXS), acts=actions)
        def start_with_ctx(self, ctx: int, acts: List[Tuple[Any, ...]]) -> None:
            """An open context, when there is one."""
            self._start(ctx, acts, open_only=True)

        @rule(i=index, acts=actions)
        def resume(self, i: int, acts: List[Tuple[Any, ...]]) -> None:
            self._resume(i, acts)

        @rule(i=index, acts=actions)
        def resume_again(self, i: int, acts: List[Tuple[Any, ...]]) -> None:
            self._resume(i, acts)

        @rule(i=index, acts=actions)
        def resume_once_more(self, i: int, acts: List[Tuple[Any, ...]]) -> None:
            self._resume(i, acts)

        @rule(i=index, what=st.sampled_from(["close", "resume", "get_wait_ctx", "other_thread"]))
        def handle_op(self, i: int, what: str) -> None:
            """Any handle, paused or finished: close, resume (misuse when finished), get_wait_ctx,
            or a resume from another thread (always refused)."""

            def op(w: World) -> None:
                handle = w.jobs[i % len(w.jobs)] if w.jobs else None
                if handle is None:
                    return
                k = i % len(w.jobs)
                if what == "close":
                    w.guarded(("close", k), handle.close)
                elif what == "resume":
                    w.run_step("resume any", k, lambda: w.be.start_job(handle, None, None))
                elif what == "get_wait_ctx":
                    w.guarded(("get_wait_ctx", k), w.be.get_wait_ctx, handle)
                else:
                    t = threading.Thread(
                        target=w.guarded, args=(("other thread resume", k), w.be.start_job, handle, None, None)
                    )
                    t.start()
                    t.join()

            self.each(op)

        @rule(pauses=st.integers(0, 3), max_size=st.integers(0, 2))
        def job_in_other_thread(self, pauses: int, max_size: int) -> None:
            """A whole job run in another thread: its own pool, unaffected by this thread's."""

            def body(w: World) -> None:
                be = w.be
                w.guarded(("thread init", max_size), be.init_thread, max_size, 0)
                with be.WaitCtx() as ctx:

                    def job(arg: Any) -> int:
                        for _ in range(pauses):
                            be.pause_job()
                        cur = be.get_current_job()
                        return 0 if cur is None else 1

                    status, handle, ret = be.start_job(None, ctx, job)
                    while status == pa.PAUSE:
                        w.obs("thread paused")
                        status, handle, ret = be.start_job(handle, None, None)
                    w.obs("thread", status.name, ret)
                be.cleanup_thread()

            def op(w: World) -> None:
                t = threading.Thread(target=body, args=(w,))
                t.start()
                t.join()

            self.each(op)

        # -- outside any job ---------------------------------------------------------

        @rule(what=st.sampled_from(["block", "unblock", "pause", "current"]))
        def outside(self, what: str) -> None:
            """``block_pause``, ``unblock_pause``, ``pause_job``, ``get_current_job`` outside any job."""

            def op(w: World) -> None:
                if what == "block":
                    w.be.block_pause()
                elif what == "unblock":
                    w.be.unblock_pause()
                elif what == "pause":
                    w.guarded("pause outside", w.be.pause_job)
                else:
                    w.obs("current outside", w.be.get_current_job() is None)

            self.each(op)

        def teardown(self) -> None:
            for w in self.worlds:
                w.teardown()
            self.check()

    DifferentialMachine.__name__ = "DifferentialMachine_" + "_vs_".join(backends)
    return DifferentialMachine


def run_differential(examples: int, steps: int = 30, shrink: bool = True) -> Dict[str, Any]:
    """Run the machine for ``examples`` random programs; a JSON-able verdict for the runner.

    Derandomized (the same programs every run) unless ``PYOSSL_ASYNC_CONFORMANCE_RANDOM``
    is set, so CI results are reproducible; no example database is written. With
    ``shrink=False`` a failure is reported as found, unminimised (faster).
    """
    try:
        import hypothesis
        from hypothesis import HealthCheck, Phase, settings, stateful
    except ImportError:
        # the extra's name: the command runs from an installed wheel, not only in a clone
        why = "hypothesis is not installed: pip install 'pyossl-async[test]' (or pip install hypothesis)"
        return {"ok": None, "skipped": why}
    missing = [name for name in BACKENDS if name not in pa.available_backends()]
    if missing:
        return {"ok": None, "skipped": f"needs both backends; unavailable: {', '.join(missing)}"}
    randomize = _settings.conformance_random()
    machine = make_machine()
    report: List[str] = []
    config = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=not randomize,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        phases=list(Phase) if shrink else [p for p in Phase if p not in (Phase.shrink, Phase.explain)],
    )
    from hypothesis.reporting import with_reporter

    def keep(value: object) -> None:
        report.append(str(value))

    run_as_test: Callable[..., None] = stateful.run_state_machine_as_test
    try:
        with with_reporter(keep):
            run_as_test(machine, settings=config)
    except Exception as exc:  # noqa: BLE001 - a falsifying example is the result
        return {
            "ok": False,
            "examples": examples,
            "steps": steps,
            "hypothesis": hypothesis.__version__,
            "failure": f"{type(exc).__name__}: {exc}",
            # the shrunk call sequence: hypothesis attaches it as exception notes
            # (PEP 678) in recent versions and reports it in older ones
            "program": "\n".join([*map(str, getattr(exc, "__notes__", [])), *map(str, report)]),
        }
    return {"ok": True, "examples": examples, "steps": steps, "hypothesis": hypothesis.__version__}
