"""The child process that runs scenarios on one backend (or the random differential test).

The runner never runs scenarios in its own interpreter: a backend bug that
crashes the process must become a failed row, not a dead run. A worker loads
the suite the runner names (``--suite KIND VALUE``, see :mod:`.suite`), runs the
scenarios it is given, in order, and writes one JSON object per line to the
protocol stream (the original stdout; the scenarios' own output, C-level
included, goes to stderr). ``faulthandler`` is on, so a crash leaves a native
traceback on stderr for the runner to report.

Messages: ``{"started": name}`` before each scenario (if it kills the process,
the runner knows which one), then ``{"name", "lines", "error", "exceptions",
"clean"}``; ``{"restart": true}`` when the worker stopped because a scenario left
its thread in a state it could not clean up.

Usage (by the runner): ``worker --backend NAME --suite KIND VALUE NAME...`` or
``worker --differential EXAMPLES``.
"""

from __future__ import annotations

import argparse
import faulthandler
import io
import json
import os
import sys
import threading
from typing import Any, Dict, List, TextIO

import pyossl_async as pa

from ._tracebacks import format_exception
from .catalogue import Scenario
from .trace import capture_exceptions

__all__ = ["main", "run_one"]


def _close_leftovers(backend: Any) -> bool:
    """Unwind paused jobs a faulty scenario left in this thread; True if the thread is clean again.

    Uses the backends' shared internals (as the test suite's fixtures do): there
    is no public way to reach a job whose handle the scenario kept to itself.
    """
    thread = getattr(backend, "_threads", {}).get(threading.get_ident())
    cancel = getattr(backend, "_cancel_quietly", None)
    if thread is not None and cancel is not None:
        for record in list(thread.paused):
            cancel(thread, record)
    try:
        backend.cleanup_thread()
    except Exception:  # noqa: BLE001 - still dirty: the caller starts afresh
        return False
    return True


def _scenario_traceback(exc: BaseException) -> str:
    """The traceback of an exception that escaped a scenario, from the scenario's frame on."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is run_one.__code__ and tb.tb_next is not None:
        tb = tb.tb_next  # this module's frame says nothing about the scenario
    return format_exception(exc, tb)


def run_one(scenario: Scenario, backend: pa.Backend) -> Dict[str, Any]:
    """Run one scenario: its trace, the exceptions the trace recorded, and an error when it raised
    (with the traceback) or left jobs behind.

    ``"clean": False`` in the result means the thread could not be cleaned up,
    so the worker must not run more scenarios.
    """
    error = ""
    lines: List[str] = []
    clean = True
    with capture_exceptions() as recorded:
        try:
            lines = [str(line) for line in scenario.func(backend)]
        except BaseException as exc:  # noqa: BLE001 - a failing scenario is a result
            error = f"scenario raised {type(exc).__name__}: {exc}\n" + _scenario_traceback(exc)
    try:
        backend.cleanup_thread()  # the next scenario starts from a clean thread
    except Exception as exc:  # noqa: BLE001
        error = error or f"scenario left state behind: {type(exc).__name__}: {exc}"
        clean = _close_leftovers(backend)
    return {
        "name": scenario.name,
        "lines": lines,
        "error": error,
        "exceptions": [found.as_dict() for found in recorded],
        "clean": clean,
    }


def _protocol_stream() -> TextIO:
    """The real stdout for results; everything else printed goes to stderr."""
    sys.stdout.flush()
    fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return io.TextIOWrapper(os.fdopen(fd, "wb"), encoding="utf-8", line_buffering=True)


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(prog="conformance worker")
    parser.add_argument("--backend")
    parser.add_argument("--suite", nargs=2, metavar=("KIND", "VALUE"))
    parser.add_argument("--differential", type=int, metavar="EXAMPLES")
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    faulthandler.enable()
    out = _protocol_stream()

    if args.differential is not None:
        from .differential import run_differential

        out.write(json.dumps(run_differential(args.differential)) + "\n")
        return 0

    from .suite import load_spec

    backend = pa.get_backend(args.backend)
    by_name = load_spec(*args.suite).by_name()
    for name in args.names:
        scenario = by_name.get(name)
        if scenario is None:
            out.write(json.dumps({"name": name, "lines": [], "error": "no such scenario"}) + "\n")
            continue
        out.write(json.dumps({"started": name}) + "\n")
        result = run_one(scenario, backend)
        out.write(json.dumps(result) + "\n")
        if not result["clean"]:
            out.write(json.dumps({"restart": True}) + "\n")  # the runner goes on in a new worker
            return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
