"""``python -m pyossl_async conformance``: run everything, compare, print the table.

What runs, all at the same time:

* each C twin, compiled on demand and cached (``ctwins.py``), unless ``--no-c``
  or no compiler/headers are found (then it says so, and the backends are
  compared with each other only);
* the scenarios on each backend, in a child interpreter per backend
  (``_worker.py``): a crash becomes a failed row, and the run goes on in a fresh child;
* the random differential test (``differential.py``), in its own child, when
  both backends are selected, hypothesis is installed and ``-k`` is not given.

Then one row per scenario: ``match``, or the first line where that column
departs from the reference (the C twin's trace when it ran, else the first
backend's; see ``compare.py``). The last line is ``N scenarios, M disagreements``,
where M counts scenarios with any non-matching column or error, plus one if the
random differential test failed; the exit status is 1 when M > 0.

Environment: ``PYOSSL_ASYNC_CONFORMANCE_EXAMPLES`` (random programs, default
300), ``PYOSSL_ASYNC_CONFORMANCE_RANDOM=1`` (new random programs each run
instead of the reproducible set), ``PYOSSL_ASYNC_CONFORMANCE_CACHE`` (where
binaries go), ``PYOSSL_ASYNC_CONFORMANCE_CATALOGUE=module:function`` (run another
catalogue; the suite's own tests use it).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO

import pyossl_async as pa
from pyossl_async._cli import plural
from pyossl_async._progress import Progress
from pyossl_async._registry import BACKEND_NAMES

from . import ctwins
from ._worker import DEFAULT_CATALOGUE
from .catalogue import Scenario, select
from .compare import compare_traces

__all__ = ["Cell", "Row", "main", "run"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(pa.__file__)))
ENV_CATALOGUE = "PYOSSL_ASYNC_CONFORMANCE_CATALOGUE"
ENV_EXAMPLES = "PYOSSL_ASYNC_CONFORMANCE_EXAMPLES"
SCENARIO_TIMEOUT = 60.0
DIFFERENTIAL_TIMEOUT = 900.0
C = "C"
NO_TWIN = "-"
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); from conformance._worker import main; sys.exit(main(sys.argv[2:]))"
)


@dataclass
class Outcome:
    """One column's result for one scenario: its trace, or why there is none."""

    lines: Optional[List[str]] = None
    error: str = ""
    #: a column that did not run, and why ("no twin", "off")
    absent: str = ""


@dataclass
class Cell:
    """What the table shows for one column of one row."""

    text: str
    ok: bool
    detail: str = ""


@dataclass
class Row:
    scenario: Scenario
    outcomes: Dict[str, Outcome]
    cells: Dict[str, Cell] = field(default_factory=dict)
    reference: str = ""
    notes: List[str] = field(default_factory=list)

    @property
    def agree(self) -> bool:
        return all(cell.ok for cell in self.cells.values())


# -- running -----------------------------------------------------------------------


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    paths = [ROOT, PACKAGE_PARENT, env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    return env


def _worker_cmd(args: Sequence[str]) -> List[str]:
    return [sys.executable, "-c", _BOOT, ROOT, *args]


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, errors="replace") as f:
            text = f.read()
    except OSError:
        return ""
    return text[-limit:].strip()


def _run_worker(
    args: Sequence[str], timeout: float, on_message: Callable[[Dict[str, Any]], None]
) -> tuple[Optional[int], str, bool]:
    """Run one worker child; feed its messages to ``on_message``.

    Returns (exit status or None if it was killed, the tail of its stderr,
    whether it timed out waiting for a message).
    """
    with tempfile.NamedTemporaryFile(prefix="pyossl-async-worker-", suffix=".log", delete=False) as log:
        log_path = log.name
    try:
        with open(log_path, "wb") as err:
            proc = subprocess.Popen(_worker_cmd(args), stdout=subprocess.PIPE, stderr=err, env=_child_env(), cwd=ROOT)
        messages: "queue.Queue[Optional[bytes]]" = queue.Queue()

        def read() -> None:
            assert proc.stdout is not None
            for raw in proc.stdout:
                messages.put(raw)
            messages.put(None)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        timed_out = False
        try:
            while True:
                try:
                    raw = messages.get(timeout=timeout)
                except queue.Empty:
                    timed_out = True
                    proc.kill()
                    break
                if raw is None:
                    break
                try:
                    on_message(json.loads(raw))
                except ValueError:
                    continue  # not a protocol line
        finally:
            if proc.poll() is None and timed_out:
                proc.kill()
            status = proc.wait()
            reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        return (None if timed_out else status), _tail(log_path), timed_out
    finally:
        os.unlink(log_path)


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
        self.results[name] = Outcome(msg.get("lines") or [], msg.get("error") or "")
        if name in self.remaining:
            self.remaining.remove(name)
        self.current = None
        self.step(f"{self.backend}: {name}")


def run_backend(
    backend: str, scenarios: Sequence[Scenario], catalogue: str, step: Callable[[str], None]
) -> Dict[str, Outcome]:
    """Every scenario on ``backend``, in child interpreters (a new one after a crash)."""
    run = _BackendRun(backend, scenarios, step)
    while run.remaining:
        run.current, run.restart = None, False
        status, stderr, timed_out = _run_worker(
            ["--backend", backend, "--catalogue", catalogue, *run.remaining], SCENARIO_TIMEOUT, run.on_message
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


@dataclass
class CSetup:
    """How the C column runs this time, or why it does not."""

    toolchain: Optional[ctwins.Toolchain]
    reason: str
    expected_version: Optional[str]
    compiled: int = 0
    cached: int = 0


def run_c(setup: CSetup, scenarios: Sequence[Scenario], step: Callable[[str], None]) -> Dict[str, Outcome]:
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


def run_differential(examples: int, step: Callable[[str], None]) -> Dict[str, Any]:
    """The random differential test, in a child of its own."""
    verdict: Dict[str, Any] = {}
    status, stderr, timed_out = _run_worker(
        ["--differential", str(examples)], DIFFERENTIAL_TIMEOUT, lambda msg: verdict.update(msg)
    )
    step("random differential")
    if not verdict:
        why = f"timed out after {DIFFERENTIAL_TIMEOUT:g} s" if timed_out else f"worker ended with status {status}"
        return {"ok": False, "failure": f"{why}\n{stderr}"}
    return verdict


# -- comparing ---------------------------------------------------------------------


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def judge(row: Row, columns: Sequence[str]) -> None:
    """Fill ``row.cells``: every column against the reference."""
    outcomes = row.outcomes
    ref_name = ""
    for name in columns:
        o = outcomes.get(name)
        if o is not None and o.lines is not None and not o.error and not o.absent:
            ref_name = name
            break
    row.reference = ref_name
    ref = outcomes[ref_name].lines if ref_name else None
    for name in columns:
        o = outcomes.get(name, Outcome(absent="off"))
        if o.absent:
            row.cells[name] = Cell(o.absent, True)
            continue
        if o.error:
            first = o.error.strip().splitlines()[0] if o.error.strip() else "error"
            row.cells[name] = Cell(f"ERROR: {first}", False, o.error)
            continue
        assert o.lines is not None
        if ref is None or name == ref_name:
            row.cells[name] = Cell("match", True)
            continue
        # the python backend models OpenSSL 3.0: version-dependent lines may differ from a real library
        tolerant = name == "python"
        diff, tolerated = compare_traces(ref, o.lines, version_tolerant=tolerant)
        if diff is not None:
            shown = diff.got if diff.got is not None else f"(missing) {diff.want}"
            row.cells[name] = Cell(
                f"L{diff.index + 1}: {shown.strip()}", False, f"{name} vs {ref_name}: {diff.describe()}"
            )
            continue
        if tolerated:
            row.cells[name] = Cell("match*", True)
            for d in tolerated:
                row.notes.append(
                    f"{row.scenario.name} line {d.index + 1}: {name} (OpenSSL 3.0 model) has {d.got!r}, "
                    f"{ref_name} has {d.want!r}; a documented difference between OpenSSL versions"
                )
        else:
            row.cells[name] = Cell("match", True)


# -- reporting -----------------------------------------------------------------------


def _table(rows: Sequence[Row], columns: Sequence[str], width: int = 44) -> List[str]:
    name_w = max([len("scenario")] + [len(r.scenario.name) for r in rows])
    col_w = {c: max([len(c)] + [len(_short(r.cells[c].text, width)) for r in rows]) for c in columns}
    head = "  ".join([f"{'scenario':<{name_w}}"] + [f"{c:<{col_w[c]}}" for c in columns]).rstrip()
    rule = "  ".join(["-" * name_w] + ["-" * col_w[c] for c in columns])
    out = [head, rule]
    for r in rows:
        cells = [f"{_short(r.cells[c].text, width):<{col_w[c]}}" for c in columns]
        out.append("  ".join([f"{r.scenario.name:<{name_w}}", *cells]).rstrip())
    return out


def _backend_line(name: str) -> str:
    if name == "python":
        return "pure-Python model of OpenSSL 3.0's ASYNC (worker threads)"
    be = pa.get_backend(name)
    crypto = getattr(be, "crypto", None)
    path = ctwins.loaded_library_file(crypto.address("OpenSSL_version")) if crypto is not None else None
    return f"{be.openssl_version} ({path or getattr(be, 'library_path', '?')})"


def resolve_backends(requested: Optional[Sequence[str]], out: TextIO) -> Optional[List[str]]:
    """The backends to run, in table order; None (after saying why) if a requested one is missing."""
    if requested:
        names = [n for n in BACKEND_NAMES if n in set(requested)]
        for name in names:
            try:
                pa.get_backend(name)
            except pa.BackendUnavailable as exc:
                print(f"conformance: backend {name!r} is unavailable: {exc}", file=out)
                return None
        return names
    names = pa.available_backends()
    for name in BACKEND_NAMES:
        if name not in names:
            print(f"conformance: backend {name!r} is unavailable here; its column is skipped", file=out)
    return names


def _c_setup(no_c: bool) -> CSetup:
    if no_c:
        return CSetup(None, "off (--no-c)", None)
    expected = None
    library = None
    try:
        be = pa.get_backend("openssl")
        crypto = getattr(be, "crypto", None)
        if crypto is not None:
            library = ctwins.loaded_library_file(crypto.address("OpenSSL_version"))
        expected = be.openssl_version
    except pa.BackendUnavailable:
        pass
    tc, reason = ctwins.find_toolchain(library)
    if tc is None:
        return CSetup(None, reason, expected)
    return CSetup(tc, "", expected)


def run(args: argparse.Namespace, catalogue: Optional[str] = None, out: TextIO = sys.stdout) -> int:
    """The whole conformance run; the process exit status (0 agree, 1 disagree, 2 cannot run)."""
    started = time.monotonic()
    catalogue = catalogue or os.environ.get(ENV_CATALOGUE) or DEFAULT_CATALOGUE
    from ._worker import _load

    scenarios = select(_load(catalogue)(), getattr(args, "select", None))
    if not scenarios:
        print(f"conformance: no scenario name contains {args.select!r}", file=out)
        return 2
    backends = resolve_backends(getattr(args, "backend", None), out)
    if backends is None:
        return 2
    if not backends:
        print("conformance: no backend is available", file=out)
        return 2
    csetup = _c_setup(bool(getattr(args, "no_c", False)))
    if getattr(args, "require_c", False) and csetup.toolchain is None:
        print(f"conformance: the C twins were asked for but cannot run: {csetup.reason}", file=out)
        return 2
    with_twin = [s for s in scenarios if s.twin]
    want_diff = not getattr(args, "select", None)
    examples = int(os.environ.get(ENV_EXAMPLES, "300"))

    total = len(scenarios) * len(backends) + (len(with_twin) if csetup.toolchain else 0) + (1 if want_diff else 0)
    results: Dict[str, Dict[str, Outcome]] = {}
    differential: Dict[str, Any] = {}
    lock = threading.Lock()
    with Progress(total, "conformance") as progress:

        def step(item: str) -> None:
            with lock:
                progress.step(item)

        def c_job() -> None:
            results[C] = run_c(csetup, scenarios, step)

        def backend_job(name: str) -> Callable[[], None]:
            return lambda: results.__setitem__(name, run_backend(name, scenarios, catalogue, step))

        def diff_job() -> None:
            if examples <= 0:
                differential.update({"ok": None, "skipped": f"{ENV_EXAMPLES}={examples}"})
                step("random differential")
            elif set(BACKEND_NAMES) <= set(backends):
                differential.update(run_differential(examples, step))
            else:
                differential.update({"ok": None, "skipped": "needs both backends selected"})
                step("random differential")

        jobs = [c_job] + [backend_job(n) for n in backends] + ([diff_job] if want_diff else [])
        threads = [threading.Thread(target=j) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    columns = [C, *backends]
    rows = []
    for s in scenarios:
        row = Row(s, {col: results.get(col, {}).get(s.name, Outcome(absent="off")) for col in columns})
        judge(row, columns)
        rows.append(row)
    disagreements = sum(not r.agree for r in rows)
    diff_failed = differential.get("ok") is False
    disagreements += int(diff_failed)

    # -- print ---------------------------------------------------------------------
    w = out.write
    n_twins = sum(1 for s in scenarios if s.twin)
    w(f"pyossl-async conformance: {plural(len(scenarios), 'scenario')}, {n_twins} with a C twin\n")
    if csetup.toolchain:
        tc = csetup.toolchain
        w(
            f"  C        {tc.cc_version}, linked to {tc.libcrypto or '-lcrypto'}"
            f" ({csetup.expected_version or 'version unknown'})\n"
            f"           twins: {csetup.compiled} compiled, {csetup.cached} cached in {tc.cache_dir}\n"
        )
    else:
        w(f"  C        not run: {csetup.reason}; comparing the backends with each other only\n")
    for name in backends:
        w(f"  {name:<8} {_backend_line(name)}\n")
    w("\n")
    for line in _table(rows, columns):
        w(line + "\n")
    w(
        "\nmatch: the same trace as the reference (the C twin's when it ran, else the first backend's)\n"
        f"{NO_TWIN}: no C twin (misuse that C cannot survive, or Python-only behaviour); off: C not run\n"
        "match*: the same but for version-dependent lines (see the notes)\n"
    )
    notes = [n for r in rows for n in r.notes]
    if notes:
        w("\nnotes:\n" + "".join(f"  {n}\n" for n in notes))
    failed = [r for r in rows if not r.agree]
    if failed:
        w("\ndisagreements:\n")
        for r in failed:
            for col in columns:
                cell = r.cells[col]
                if not cell.ok:
                    w(f"  {r.scenario.name} [{col}]: {cell.detail.strip()}\n")
    if want_diff:
        w("\n" + _differential_line(differential, examples) + "\n")
    w(f"\n{plural(len(scenarios), 'scenario')}, {plural(disagreements, 'disagreement')}\n")
    out.flush()

    json_path = getattr(args, "json", None)
    if json_path:
        _write_json(json_path, rows, columns, csetup, backends, differential, disagreements, started)
    return 1 if disagreements else 0


def _differential_line(verdict: Dict[str, Any], examples: int) -> str:
    what = "random differential (hypothesis state machine, openssl vs python in lockstep)"
    if verdict.get("ok") is None:
        return f"{what}: skipped ({verdict.get('skipped', 'not run')})"
    if verdict["ok"]:
        programs, steps = plural(verdict["examples"], "program"), plural(verdict["steps"], "step")
        return f"{what}: {programs} of up to {steps}, all agree"
    body = verdict.get("failure", "")
    program = verdict.get("program", "")
    return f"{what}: DISAGREEMENT\n{body}\n{program}".rstrip()


def _write_json(
    path: str,
    rows: Sequence[Row],
    columns: Sequence[str],
    csetup: CSetup,
    backends: Sequence[str],
    differential: Dict[str, Any],
    disagreements: int,
    started: float,
) -> None:
    tc = csetup.toolchain
    doc = {
        "c": {
            "available": tc is not None,
            "reason": csetup.reason,
            "compiler": tc.cc_version if tc else None,
            "libcrypto": tc.libcrypto if tc else None,
            "libcrypto_version": csetup.expected_version,
            "compiled": csetup.compiled,
            "cached": csetup.cached,
            "cache_dir": tc.cache_dir if tc else None,
        },
        "backends": {name: _backend_line(name) for name in backends},
        "columns": list(columns),
        "scenarios": [
            {
                "name": r.scenario.name,
                "group": r.scenario.group,
                "doc": r.scenario.doc,
                "twin": r.scenario.twin,
                "why_no_twin": r.scenario.why_no_twin,
                "reference": r.reference,
                "agree": r.agree,
                "cells": {
                    c: {"text": r.cells[c].text, "ok": r.cells[c].ok, "detail": r.cells[c].detail} for c in columns
                },
                "traces": {c: r.outcomes[c].lines for c in columns if r.outcomes[c].lines is not None},
                "errors": {c: r.outcomes[c].error for c in columns if r.outcomes[c].error},
                "notes": r.notes,
            }
            for r in rows
        ],
        "differential": differential,
        "summary": {
            "scenarios": len(rows),
            "disagreements": disagreements,
            "seconds": round(time.monotonic() - started, 2),
        },
    }
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")


def main(args: argparse.Namespace) -> int:
    """Entry point used by ``pyossl_async._conformance_entry``."""
    return run(args)
