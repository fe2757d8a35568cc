"""Tools for testing code built on pyossl_async (public, documented in docs/testing.md).

* Leak checks: :func:`paused_jobs`, :func:`open_contexts`, :func:`drain_error_queue`,
  :func:`snapshot` and :func:`clean_up` (what the pytest plugin runs after each test).
* Recordings: :func:`record_pauses` snapshots what the application sees at each
  pause of a job; :func:`run_fd_script` runs a script of wait-fd changes inside
  a job; :func:`diff_traces`/:func:`assert_traces_equal` compare recordings.
* C: :func:`compile_c`/:func:`run_c` build and run programs against the very
  libcrypto file the openssl backend loaded; :class:`PauseEngine` is an engine in
  C whose operations pause jobs from inside C.
* :mod:`pyossl_async.testing.strategies`: hypothesis strategies for fd scripts.
* :mod:`pyossl_async.testing.conformance`: scenarios, C twins and the conformance
  runner, for suites of your own too (docs/conformance.md).
* :mod:`pyossl_async.testing.plugin`: the pytest plugin (fixtures
  ``pyossl_backend``, ``pyossl_wait_ctx``; options ``--pyossl-backend``,
  ``--pyossl-require``; marker ``pyossl_backends``).
"""

from ._cprograms import ToolchainUnavailable, backend_libcrypto, compile_c, run_c
from ._leftovers import Leftovers, Snapshot, clean_up, drain_error_queue, open_contexts, paused_jobs, snapshot
from ._snapshots import (
    PauseSnapshot,
    PauseTrace,
    assert_traces_equal,
    diff_traces,
    record_pauses,
    run_fd_script,
    script_steps,
)
from .pause_engine import EngineUnavailable, PauseEngine

__all__ = [
    "EngineUnavailable",
    "Leftovers",
    "PauseEngine",
    "PauseSnapshot",
    "PauseTrace",
    "Snapshot",
    "ToolchainUnavailable",
    "assert_traces_equal",
    "backend_libcrypto",
    "clean_up",
    "compile_c",
    "diff_traces",
    "drain_error_queue",
    "open_contexts",
    "paused_jobs",
    "record_pauses",
    "run_c",
    "run_fd_script",
    "script_steps",
    "snapshot",
]
