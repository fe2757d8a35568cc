"""The tests that send SIGINT pass whatever SIGINT disposition the test run inherited.

A process started by one that ignores SIGINT (a job started with ``&`` from a script,
``nohup``, many CI runners and service managers) inherits SIG_IGN through exec, and
Python then keeps it ignored instead of installing its KeyboardInterrupt handler. The
child scripts of test_faults used to rely on that handler: from such a parent two of
them failed and one spun until its 300 s timeout. They now start with
``SIGINT_PRELUDE`` (conftest), which sets the handler (and unblocks SIGINT), and a
child waiting for the signal gives up after a few seconds, saying why.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from .conftest import SIGINT_PRELUDE, run_isolated_sigint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: runs argv[2:] with SIGINT ignored, as ``cmd &`` from a script or ``nohup cmd`` does;
#: with argv[1] == "block", with SIGINT blocked as well
IGNORING_PARENT = """
import signal, subprocess, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.argv[1] == "block":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
sys.exit(subprocess.run(sys.argv[2:]).returncode)
"""

#: every test that sends SIGINT, to itself or in a child interpreter
SIGINT_TESTS = ("tests/test_faults.py", "-k", "sigint")


def _from_ignoring_parent(*argv: str, timeout: float, block: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` under ``IGNORING_PARENT``; on a timeout, kill them all and fail."""
    with subprocess.Popen(
        [sys.executable, "-c", IGNORING_PARENT, "block" if block else "-", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,  # its own process group, grandchildren included
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGABRT)  # faulthandler (pytest's too): where each one was
            try:
                out, err = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
            pytest.fail(f"{argv} still running after {timeout} s\n--- stdout\n{out[-6000:]}\n--- stderr\n{err[:10000]}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.subprocess
def test_an_ignoring_parent_passes_sig_ign_on() -> None:
    """The premise of the next test: the grandchild does start with SIGINT ignored."""
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    proc = _from_ignoring_parent(sys.executable, "-c", probe, timeout=60)
    assert proc.stdout.strip() == "True", proc.stdout + proc.stderr


@pytest.mark.subprocess
def test_sigint_tests_pass_from_a_parent_that_ignores_sigint() -> None:
    """The issue's command: ``-k sigint`` over test_faults, from a parent with SIG_IGN."""
    t0 = time.monotonic()
    proc = _from_ignoring_parent(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SIGINT_TESTS, timeout=300
    )
    took = time.monotonic() - t0
    report = f"took {took:.1f} s\n--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, report
    summary = proc.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= 4, report  # four tests, on one backend at least
    assert not re.search(r"failed|error", summary), report


@pytest.mark.subprocess
def test_the_prelude_restores_the_handler_and_unblocks_sigint() -> None:
    """Ignored and blocked on entry (as a parent may leave it): KeyboardInterrupt anyway."""
    child = SIGINT_PRELUDE + textwrap.dedent(
        """
        import os, signal
        try:
            os.kill(os.getpid(), signal.SIGINT)
            wait_for_sigint("the kill")
        except KeyboardInterrupt:
            print("interrupted")
        """
    )
    proc = _from_ignoring_parent(sys.executable, "-c", child, timeout=60, block=True)
    assert (proc.returncode, proc.stdout) == (0, "interrupted\n"), proc.stderr


@pytest.mark.subprocess
def test_a_child_waiting_for_a_sigint_that_never_comes_gives_up_quickly() -> None:
    """Instead of spinning until the 300 s timeout: exit status 3 and a message."""
    t0 = time.monotonic()
    proc = run_isolated_sigint(
        """
        import os, signal
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # what the prelude undoes
        os.kill(os.getpid(), signal.SIGINT)
        wait_for_sigint("the kill", seconds=0.2)
        """,
        check=False,
        timeout=60,
    )
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "no KeyboardInterrupt within 0.2 s of the kill" in proc.stderr, proc.stderr
    assert "Handlers.SIG_IGN" in proc.stderr, proc.stderr
