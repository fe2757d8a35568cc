"""Python code inside libssl's own jobs, in child interpreters (tests/tls_scenarios.py).

Each scenario checks itself and prints what it saw; here: it exited 0 under
``-X dev`` (some under ``PYTHONMALLOC=debug`` too), printed no "Exception
ignored" (nothing escaped into ctypes) and saw what it should. The same
scenarios run with the call-chain switch and with nested stacks forced, so both
ways of binding and both stack modes are covered on whatever OpenSSL the run
uses (``.ci/run`` runs the suite against OpenSSL 3.0 and 3.5).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

import pytest

import pyossl_async as pa

from .conftest import run_isolated

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(autouse=True, scope="module")
def _needs_jobs() -> None:
    try:
        backend = pa.get_backend("openssl")
    except pa.BackendUnavailable as exc:
        pytest.skip(f"no openssl backend: {exc}")
    if not backend.is_capable():
        pytest.skip("the openssl backend cannot run jobs here")


def scenario(
    name: str, *options: str, env: Optional[Dict[str, str]] = None, malloc_debug: bool = False, last: bool = True
) -> Any:
    """Run ``tls_scenarios.py name options`` in a child with ``-X dev``; its JSON line (the
    last line of its output, or with ``last=False`` every line after it too)."""
    child_env = dict(env or {})
    if malloc_debug:
        child_env["PYTHONMALLOC"] = "debug"
    code = f"""
        import sys
        sys.path.insert(0, {HERE!r})
        import tls_scenarios
        tls_scenarios.main({[name, *options]!r})
    """
    proc = run_isolated(code, env=child_env, args=("-X", "dev"), timeout=600)
    assert "Exception ignored" not in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.strip().splitlines()
    if last:
        return json.loads(lines[-1])
    start = next(i for i, line in enumerate(lines) if line.startswith("{"))
    return json.loads(lines[start]), lines[start + 1 :]


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("order", "op", "wait", "key"),
    [
        ("random", "mixed", "fd", "rsa"),
        ("reverse", "pause", "callback", "rsa"),
        ("fifo", "pool_op", "callback", "rsa"),
        ("random", "fd_op", "fd", "rsa"),
        ("reverse", "held", "fd", "rsa"),
        ("reverse", "mixed", "callback", "ec"),
    ],
)
def test_many_connections_paused_in_python_and_resumed_in_any_order(order: str, op: str, wait: str, key: str) -> None:
    out = scenario("interleave", "--order", order, "--op", op, "--wait", wait, "--key", key, "--n", "8")
    assert out["handshakes"] == 24
    assert out["pauses"] >= 24
    assert out["balance"]["created"] == out["balance"]["free"]


@pytest.mark.subprocess
def test_interleaving_under_the_debug_allocator() -> None:
    out = scenario("interleave", "--rounds", "2", malloc_debug=True)
    assert out["handshakes"] == 16


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "env",
    [{"PYOSSL_ASYNC_SWITCH": "chain"}, {"PYOSSL_ASYNC_STACK_MODE": "nested"}],
    ids=["chain", "nested-stacks"],
)
def test_interleaving_with_the_call_chain_and_with_nested_stacks(env: Dict[str, str]) -> None:
    out = scenario("interleave", "--rounds", "2", env=env)
    assert out["handshakes"] == 16


@pytest.mark.subprocess
def test_tls_12_and_13_with_rsa_and_ec_keys_records_and_close_notify() -> None:
    out = scenario("records")
    assert set(out) == {"rsa TLSv1.2", "rsa TLSv1.3", "ec TLSv1.2", "ec TLSv1.3"}
    assert out["rsa TLSv1.2"].startswith("ECDHE-RSA-")
    assert out["ec TLSv1.2"].startswith("ECDHE-ECDSA-")


@pytest.mark.subprocess
def test_an_unbound_operation_that_would_pause_blocks_instead() -> None:
    scenario("unbound")


@pytest.mark.subprocess
def test_a_failing_key_operation_fails_the_handshake_with_its_own_exception() -> None:
    out = scenario("failures")
    assert out["raises"] == "AcceleratorDown"
    assert "returned 2700 bytes" in out["too long"]


@pytest.mark.subprocess
def test_ctrl_c_inside_a_key_operation_and_while_its_job_is_paused() -> None:
    out = scenario("ctrl_c", "--seconds", "2")
    assert out["inside"] == out["paused"] == "KeyboardInterrupt"
    assert out["cancelled"] == ["JobCancelled"]
    assert out["storm"]["interrupts"] > 0 and out["storm"]["after"] == "TLSv1.3"


@pytest.mark.subprocess
def test_two_threads_each_with_their_own_connections() -> None:
    out = scenario("threads", "--n", "4", "--rounds", "3")
    assert out["rounds"] == 6 and out["operations"] == 24


@pytest.mark.subprocess
def test_our_own_jobs_and_tls_connections_on_one_thread() -> None:
    out = scenario("coexist")
    assert "tls" in out["order"] and "job 0" in out["order"]
    assert "inside a running job" in out["refusals"][0]


@pytest.mark.subprocess
def test_connections_closed_or_collected_while_paused_leave_nothing_behind() -> None:
    out = scenario("teardown", env={"PYOSSL_ASYNC_CLOSE_TIMEOUT": "0.3"})
    assert out["ended"] == 3 and out["fds"] == 0 and out["after"] == "TLSv1.3"
    assert out["cleanup_refused"] is True


@pytest.mark.subprocess
def test_a_key_operation_needing_far_more_than_32_kib_of_stack() -> None:
    out = scenario("deep", "--depth", "800")
    assert out["depth"] == 800


@pytest.mark.subprocess
def test_rsa_decryption_through_an_offloaded_key() -> None:
    out = scenario("decrypt")
    assert out["seen"] == [["rsa_decrypt", 1]]


@pytest.mark.subprocess
@pytest.mark.parametrize("wait", ["callback", "fd"])
def test_the_asyncio_server_with_many_clients_at_once(wait: str) -> None:
    out = scenario("aio", "--wait", wait, "--n", "10")
    assert out["handshakes"] == 20 and out["probes"] >= 1
    assert out["versions"] == ["TLSv1.2", "TLSv1.3"]
    assert out["stuck"] == ["JobCancelled"]


@pytest.mark.subprocess
def test_a_connection_left_paused_at_exit_is_driven_to_its_end() -> None:
    out, after = scenario("at_exit", last=False)
    assert out == {"paused": True}
    assert after == ["cancelled at exit"]
