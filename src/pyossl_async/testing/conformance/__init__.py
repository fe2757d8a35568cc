"""Conformance testing: scenarios that trace the ASYNC API, compared between backends and with C.

A *scenario* is a plain function ``fn(backend) -> list[str]`` that drives the API
through a :class:`Trace` and returns its *trace*: one backend-neutral text line
per call and result. Its *C twin* is a small C program that prints the same
lines from the real libcrypto, with the helpers of ``c/trace.h``. The runner runs
every scenario on every backend (each in a child interpreter) and every twin
(compiled against the very libcrypto file the ``"openssl"`` backend loaded), and
reports, scenario by scenario, where a column departs from the reference.

``python -m pyossl_async conformance`` runs pyossl-async's built-in suite;
``--scenarios PATH`` runs a folder of your own scenario modules, with their twins
in ``PATH/c/``. The guide is ``docs/conformance.md`` in the repository.

What is here, by module:

* :mod:`.catalogue`: :func:`scenario` (the decorator) and :class:`Scenario`;
* :mod:`.suite`: :class:`Suite`, :func:`builtin_suite`, :func:`load_folder`;
* :mod:`.trace`: :class:`Trace` (the recorder) and :class:`Sym` (a symbolic object);
* :mod:`.compare`: :func:`compare_traces`, :class:`Difference`, :func:`format_diff`;
* :mod:`.ctwins`: compiling and running C twins (:func:`compile_twin`, :func:`run_twin`);
* :mod:`.runner`: :func:`run_suite` (a :class:`~.report.Report`) and :func:`run` (the command line's);
* :mod:`.report`: judging rows and printing the table, diffs, tracebacks and JSON;
* :mod:`.differential`: the hypothesis state machine that drives both backends in lockstep.
"""

from __future__ import annotations

from .catalogue import Scenario, ScenarioFunc, scenario
from .compare import Difference, compare_traces, format_diff
from .ctwins import (
    SHARED_DIR,
    CompileResult,
    RunResult,
    Toolchain,
    backend_library,
    compile_twin,
    find_toolchain,
    run_twin,
)
from .report import Report
from .runner import CannotRun, run, run_suite
from .suite import Suite, SuiteError, builtin_suite, load_folder
from .trace import Sym, Trace

__all__ = [
    "SHARED_DIR",
    "CannotRun",
    "CompileResult",
    "Difference",
    "Report",
    "RunResult",
    "Scenario",
    "ScenarioFunc",
    "Suite",
    "SuiteError",
    "Sym",
    "Toolchain",
    "Trace",
    "backend_library",
    "builtin_suite",
    "compare_traces",
    "compile_twin",
    "find_toolchain",
    "format_diff",
    "load_folder",
    "run",
    "run_suite",
    "run_twin",
    "scenario",
]
