"""Running a suite: every scenario on every backend and in C, compared, into a :class:`~.report.Report`.

What runs, all at the same time:

* each C twin, compiled on demand and cached (:mod:`.ctwins`), unless the C
  column is off or no compiler/headers are found (then the report says so, and
  the backends are compared with each other only);
* the scenarios on each backend, in a child interpreter per backend
  (``_worker.py``): a crash or a hang becomes a failed row, and the run goes on
  in a fresh child;
* the random differential test (:mod:`.differential`), in its own child, with
  the built-in suite run in full (not with ``select``, not with a folder of
  your own), when both backends run and hypothesis is installed.

:func:`run_suite` returns the :class:`~.report.Report`; :func:`run` is the
command line's: it prints the report, writes the JSON and returns the exit
status (0 all agree, 1 any disagreement, 2 cannot run).

Environment: ``PYOSSL_ASYNC_CONFORMANCE_EXAMPLES`` (random programs, default
300), ``PYOSSL_ASYNC_CONFORMANCE_RANDOM=1`` (new random programs each run
instead of the reproducible set), ``PYOSSL_ASYNC_CONFORMANCE_CACHE`` (where
binaries go), ``PYOSSL_ASYNC_CONFORMANCE_CATALOGUE=module:function`` (run another
catalogue instead of the built-in one; the runner's own tests use it).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import pyossl_async as pa
from pyossl_async._progress import Progress
from pyossl_async._registry import BACKEND_NAMES
from pyossl_async.testing import _settings

from . import ctwins
from ._children import run_worker
from .catalogue import Scenario
from .catalogue import select as select_scenarios
from .report import NO_TWIN, C, Outcome, Report, Row, judge
from .suite import BUILTIN, CATALOGUE, Suite, builtin_suite, load_catalogue

__all__ = ["CannotRun", "default_suite", "run", "run_suite"]

ENV_CATALOGUE = _settings.ENV_CONFORMANCE_CATALOGUE
ENV_EXAMPLES = _settings.ENV_CONFORMANCE_EXAMPLES
#: the longest a worker may go without a message (one scenario)
SCENARIO_TIMEOUT = 60.0
DIFFERENTIAL_TIMEOUT = 900.0


class CannotRun(Exception):
    """The run cannot start as asked (no scenario selected, a required backend or the C twins missing)."""


def default_suite() -> Suite:
    """The built-in suite, or the catalogue ``$PYOSSL_ASYNC_CONFORMANCE_CATALOGUE`` names."""
    spec = _settings.conformance_catalogue()
    return load_catalogue(spec) if spec else builtin_suite()


# -- the backends ------------------------------------------------------------------------------


class _BackendRun:
    """The state of one backend's scenario run across worker restarts."""

    def __init__(self, backend: str, scenarios: Sequence[Scenario], step: Callable[[str], None]) -> None:
        self.backend = backend
        self.step = step
        self.results: Dict[str, Outcome] = {}
        self.remaining = [s.name for s in scenarios]
        #: the scenario the current worker announced and has not finished
        self.current: Optional[str] = None
        #: the current worker stopped itself after a scenario it could not clean up after
        self.restart = False

    def on_message(self, msg: Dict[str, Any]) -> None:
        if "started" in msg:
            self.current = msg["started"]
            return
        if msg.get("restart"):
            self.restart = True
            return
        name = msg["name"]
        self.results[name] = Outcome(msg.get("lines") or [], msg.get("error") or "", "", msg.get("exceptions") or [])
        if name in self.remaining:
            self.remaining.remove(name)
        self.current = None
        self.step(f"{self.backend}: {name}")


def run_backend(
    backend: str, suite: Suite, scenarios: Sequence[Scenario], step: Callable[[str], None]
) -> Dict[str, Outcome]:
    """Every scenario on ``backend``, in child interpreters (a new one after a crash)."""
    run = _BackendRun(backend, scenarios, step)
    while run.remaining:
        run.current, run.restart = None, False
        status, stderr, timed_out = run_worker(
            ["--backend", backend, "--suite", *suite.spec, *run.remaining],
            SCENARIO_TIMEOUT,
            run.on_message,
            suite.paths,
        )
        if not run.remaining:
            break
        if run.restart and status == 0:
            continue  # the worker could not clean up after a faulty scenario; a fresh one goes on
        victim = run.current or run.remaining[0]
        if timed_out:
            why = f"timed out after {SCENARIO_TIMEOUT:g} s"
        elif status is not None and status < 0:
            why = f"the worker crashed (signal {-status})"
        else:
            why = f"the worker exited with status {status}"
        run.results[victim] = Outcome([], f"{why}\n{stderr}")
        run.remaining.remove(victim)
        step(f"{backend}: {victim}")
    return run.results


def resolve_backends(requested: Optional[Sequence[str]], skipped: List[str]) -> List[str]:
    """The backends to run, in table order.

    A requested backend that cannot load raises CannotRun; without a request,
    every available one runs, and why the others do not goes into ``skipped``.
    """
    if requested:
        names = [n for n in BACKEND_NAMES if n in set(requested)]
        for name in names:
            try:
                pa.get_backend(name)
            except pa.BackendUnavailable as exc:
                raise CannotRun(f"backend {name!r} is unavailable: {exc}") from None
        return names
    names = pa.available_backends()
    for name in BACKEND_NAMES:
        if name not in names:
            skipped.append(f"backend {name!r} is unavailable here; its column is skipped")
    if not names:
        raise CannotRun("no backend is available")
    return names


def backend_line(name: str) -> str:
    """How the report describes a backend: its library and version."""
    if name == "python":
        engine = getattr(pa.get_backend("python"), "engine", "threads")
        return f"pure-Python model of OpenSSL 3.0's ASYNC ({'greenlets' if engine == 'greenlet' else 'worker threads'})"
    be = pa.get_backend(name)
    path = ctwins.backend_library(be) if getattr(be, "crypto", None) is not None else None
    return f"{be.openssl_version} ({path or getattr(be, 'library_path', '?')})"


# -- the C twins ----------------------------------------------------------------------------


def run_c(setup: ctwins.TwinSetup, scenarios: Sequence[Scenario], step: Callable[[str], None]) -> Dict[str, Outcome]:
    """Compile (or reuse) and run every twin; an absent column where there is none."""
    results: Dict[str, Outcome] = {}
    tc = setup.toolchain
    lock = threading.Lock()

    def one(s: Scenario) -> None:
        assert tc is not None and s.twin_path is not None
        built = ctwins.compile_twin(tc, s.twin_path)
        if built.binary is None:
            outcome = Outcome([], built.error)
        else:
            ran = ctwins.run_twin(built.binary)
            outcome = Outcome(ran.lines, ran.error + (("\n" + ran.stderr) if ran.error and ran.stderr else ""))
            if (
                not ran.error
                and setup.expected_version
                and ran.libcrypto_version
                and ran.libcrypto_version != setup.expected_version
            ):
                outcome.error = f"the twin loaded {ran.libcrypto_version}, the openssl backend {setup.expected_version}"
        with lock:
            results[s.name] = outcome
            if built.binary is not None:
                if built.cached:
                    setup.cached += 1
                else:
                    setup.compiled += 1
        step(f"C: {s.name}")

    with_twin = []
    for s in scenarios:
        if s.twin is None:
            results[s.name] = Outcome(absent=NO_TWIN)
        elif tc is None:
            results[s.name] = Outcome(absent="off")
        else:
            with_twin.append(s)
    if with_twin:
        with ThreadPoolExecutor(max_workers=max(2, min(8, (os.cpu_count() or 2) * 2))) as pool:
            list(pool.map(one, with_twin))
    return results


# -- the random differential test ------------------------------------------------------------


def run_differential(examples: int, step: Callable[[str], None]) -> Dict[str, Any]:
    """The random differential test, in a child of its own; its verdict."""
    verdict: Dict[str, Any] = {}
    status, stderr, timed_out = run_worker(
        ["--differential", str(examples)], DIFFERENTIAL_TIMEOUT, lambda msg: verdict.update(msg)
    )
    step("random differential")
    if not verdict:
        why = f"timed out after {DIFFERENTIAL_TIMEOUT:g} s" if timed_out else f"worker ended with status {status}"
        return {"ok": False, "failure": f"{why}\n{stderr}"}
    return verdict


# -- a whole run ---------------------------------------------------------------------------------


def run_suite(
    suite: Suite,
    *,
    backends: Optional[Sequence[str]] = None,
    c: bool = True,
    require_c: bool = False,
    select: Optional[str] = None,
    differential: Optional[bool] = None,
    examples: Optional[int] = None,
) -> Report:
    """Run ``suite`` and judge it.

    ``backends``: only these (each must load); default every available one.
    ``c=False`` turns the C column off; ``require_c`` makes a missing compiler or
    missing OpenSSL headers a CannotRun instead of an absent column. ``select``:
    only scenarios whose name contains it. ``differential``: run the random
    differential test (default: when a non-folder suite runs in full);
    ``examples``: its number of programs (default ``$PYOSSL_ASYNC_CONFORMANCE_EXAMPLES``, else 300).
    Progress is shown on stderr when it is a terminal.
    """
    started = time.monotonic()
    scenarios = select_scenarios(list(suite.scenarios), select)
    if not scenarios:
        raise CannotRun(f"no scenario name contains {select!r}" if select else "the suite has no scenarios")
    skipped: List[str] = []
    names = resolve_backends(backends, skipped)
    setup = ctwins.prepare_twins(c)
    if require_c and setup.toolchain is None:
        raise CannotRun(f"the C twins were asked for but cannot run: {setup.reason}")
    if differential is None:
        differential = not select and suite.spec[0] in (BUILTIN, CATALOGUE)
    n_examples = examples if examples is not None else _settings.conformance_examples()
    with_twin = [s for s in scenarios if s.twin]

    total = len(scenarios) * len(names) + (len(with_twin) if setup.toolchain else 0) + int(differential)
    results: Dict[str, Dict[str, Outcome]] = {}
    verdict: Dict[str, Any] = {}
    lock = threading.Lock()
    with Progress(total, "conformance") as progress:

        def step(item: str) -> None:
            with lock:
                progress.step(item)

        def c_job() -> None:
            results[C] = run_c(setup, scenarios, step)

        def backend_job(name: str) -> Callable[[], None]:
            return lambda: results.__setitem__(name, run_backend(name, suite, scenarios, step))

        def diff_job() -> None:
            if n_examples <= 0:
                verdict.update({"ok": None, "skipped": f"{ENV_EXAMPLES}={n_examples}"})
                step("random differential")
            elif set(BACKEND_NAMES) <= set(names):
                verdict.update(run_differential(n_examples, step))
            else:
                verdict.update({"ok": None, "skipped": "needs both backends selected"})
                step("random differential")

        jobs = [c_job] + [backend_job(n) for n in names] + ([diff_job] if differential else [])
        threads = [threading.Thread(target=j) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    columns = [C, *names]
    rows = []
    for s in scenarios:
        row = Row(s, {col: results.get(col, {}).get(s.name, Outcome(absent="off")) for col in columns})
        judge(row, columns)
        rows.append(row)
    return Report(
        suite,
        rows,
        columns,
        {n: backend_line(n) for n in names},
        setup,
        verdict,
        skipped=skipped,
        seconds=time.monotonic() - started,
    )


def run(
    suite: Optional[Suite] = None,
    *,
    backends: Optional[Sequence[str]] = None,
    c: bool = True,
    require_c: bool = False,
    select: Optional[str] = None,
    json_path: Optional[str] = None,
    out: Optional[TextIO] = None,
) -> int:
    """:func:`run_suite`, then print the report to ``out`` (stdout) and write ``json_path``; the exit status.

    ``suite`` defaults to :func:`default_suite`. The exit status is 0 when
    everything agrees, 1 on any disagreement, 2 when the run cannot start (it
    says why, in one line starting with ``conformance:``).
    """
    out = out if out is not None else sys.stdout
    try:
        report = run_suite(
            suite if suite is not None else default_suite(),
            backends=backends,
            c=c,
            require_c=require_c,
            select=select,
        )
    except CannotRun as exc:
        print(f"conformance: {exc}", file=out)
        return 2
    out.write(report.text())
    out.flush()
    if json_path:
        report.write_json(json_path)
    return report.exit_status
