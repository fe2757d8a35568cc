"""Differential random testing: random API call sequences on both backends in lockstep.

The state machine lives in ``pyossl_async.testing.conformance.differential``
(the conformance CLI runs it too). Here it runs as a pytest test, and planted bugs in the ``"python"``
backend check that it can fail: a differential test that cannot tell two
different behaviours apart proves nothing.

More and fresh examples:
``DIFF_EXAMPLES=5000 HYPOTHESIS_PROFILE=explore pytest tests/test_conformance_differential.py``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

import pytest

from .conftest import load_backend

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, settings

from pyossl_async.backends import python as python_backend
from pyossl_async.backends._python_waitctx import PythonWaitCtx
from pyossl_async.testing.conformance.differential import make_machine, run_differential

EXAMPLES = int(os.environ.get("DIFF_EXAMPLES", "300"))


@pytest.fixture(autouse=True, scope="module")
def _both_backends() -> None:
    load_backend("openssl")
    load_backend("python")


TestOpenSSLvsPython = make_machine(("openssl", "python")).TestCase
TestOpenSSLvsPython.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    suppress_health_check=list(HealthCheck),
)


def _planted(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, wrap: Callable[[Any], Any]) -> None:
    monkeypatch.setattr(target, name, wrap(getattr(target, name)))


def test_finds_a_planted_pool_rule_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """``init_thread(0, n)`` succeeding (0 read as unlimited before the size check)."""

    def wrap(original: Any) -> Any:
        def init_thread(self: Any, max_size: int = 0, init_size: int = 0) -> bool:
            return original(self, max_size or init_size, init_size)

        return init_thread

    _planted(monkeypatch, python_backend.PythonBackend, "init_thread", wrap)
    verdict = run_differential(300, shrink=False)
    assert verdict["ok"] is False, verdict
    assert "'init'" in verdict["failure"]


def test_finds_a_planted_wait_ctx_bug(monkeypatch: pytest.MonkeyPatch) -> None:
    """Changed-fd counts that are never reset at resume."""
    _planted(monkeypatch, PythonWaitCtx, "_reset_counts", lambda original: lambda self: None)
    verdict = run_differential(300, shrink=False)
    assert verdict["ok"] is False, verdict


def test_reports_the_program(monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure comes with the call sequence that shows it (shrunk, in real runs; not here, for speed)."""

    def wrap(original: Any) -> Any:
        return lambda self: int(original(self)) + 1

    _planted(monkeypatch, PythonWaitCtx, "get_status", wrap)
    verdict = run_differential(300, shrink=False)
    assert verdict["ok"] is False
    assert "state = DifferentialMachine_openssl_vs_python()\nstate.set_up(" in verdict["program"]
    # every context's state is compared after every step, so no explicit call is needed to see it
    assert verdict["failure"].startswith("AssertionError: contexts: python")


def test_without_hypothesis_the_hint_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs from an installed wheel: ``pip install -e '.[test]'`` only means
    something in a clone, so the hint names the extra."""
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # import hypothesis -> ImportError
    verdict = run_differential(examples=1)
    assert verdict["ok"] is None
    assert "pip install 'pyossl-async[test]'" in verdict["skipped"] and "-e" not in verdict["skipped"], verdict
