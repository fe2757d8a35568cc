"""Shared fixtures: every behavioural test runs once per backend.

``backend`` is parametrised over all backend names. A backend that cannot load
is skipped, unless ``PYOSSL_ASYNC_REQUIRE_BACKENDS`` lists it (CI does), in which
case its absence is a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from typing import Any, Iterator, Optional

import pytest

import pyossl_async as pa
from pyossl_async._registry import BACKEND_NAMES

REQUIRED = {n for n in os.environ.get("PYOSSL_ASYNC_REQUIRE_BACKENDS", "").split(",") if n}


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    for name in BACKEND_NAMES:
        try:
            backend = pa.get_backend(name)
        except pa.BackendUnavailable as exc:
            lines.append(f"pyossl_async backend {name}: UNAVAILABLE ({exc})")
            continue
        info = getattr(backend, "info", dict)()
        detail = ", ".join(f"{k}={v}" for k, v in info.items()) or "pure Python"
        lines.append(f"pyossl_async backend {name}: capable={backend.is_capable()} {detail}")
    return lines


def load_backend(name: str) -> pa.Backend:
    try:
        return pa.get_backend(name)
    except pa.BackendUnavailable as exc:
        if name in REQUIRED:
            pytest.fail(f"required backend {name!r} is unavailable: {exc}")
        pytest.skip(f"backend {name!r} unavailable: {exc}")


def _leftover_paused(backend: pa.Backend) -> int:
    threads = getattr(backend, "_threads", {})
    thread = threads.get(threading.get_ident())
    return len(thread.paused) if thread is not None else 0


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> Iterator[pa.Backend]:
    """Each backend in turn; checks the test left no paused job or queued error behind."""
    be = load_backend(request.param)
    yield be
    leftover = _leftover_paused(be)
    if leftover:
        thread = be._threads[threading.get_ident()]  # type: ignore[attr-defined]
        for record in list(thread.paused):
            be._cancel_quietly(thread, record)  # type: ignore[attr-defined]
        pytest.fail(f"test left {leftover} paused job(s) behind on {be.name}")
    crypto = getattr(be, "crypto", None)
    if crypto is not None:
        from pyossl_async._libcrypto import drain_errors

        errors = drain_errors(crypto)
        assert not errors, f"libcrypto error queue not empty after the test: {errors}"
    # every test starts from a clean per-thread pool
    be.cleanup_thread()


@pytest.fixture
def openssl() -> pa.Backend:
    """The real backend only."""
    return load_backend("openssl")


@pytest.fixture
def pybackend() -> pa.Backend:
    return load_backend("python")


def run_isolated(
    code: str,
    *,
    env: Optional[dict[str, str]] = None,
    timeout: float = 300,
    args: tuple[str, ...] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter with faulthandler on.

    A crash (signal, abort) fails the calling test with the child's native
    traceback instead of killing the test run.
    """
    script = "import faulthandler; faulthandler.enable()\n" + textwrap.dedent(code)
    full_env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, *args, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"child exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


#: Put first in a child script that sends SIGINT (to itself or to its main thread).
#: A process started by one that ignores SIGINT (``&`` in a script, ``nohup``, many CI
#: runners and service managers) inherits SIG_IGN, and Python then leaves it ignored
#: instead of installing its KeyboardInterrupt handler; a blocked SIGINT is inherited
#: too. So the child sets both itself, whatever started the test run.
#: ``wait_for_sigint(what)`` spins (pure Python) until the KeyboardInterrupt arrives,
#: or gives up after ``SIGINT_WAIT`` seconds: a clear message, exit status 3.
SIGINT_PRELUDE = """\
import signal as _signal, sys as _sys, time as _time
_signal.signal(_signal.SIGINT, _signal.default_int_handler)
_signal.pthread_sigmask(_signal.SIG_UNBLOCK, {_signal.SIGINT})
SIGINT_WAIT = 5.0

def wait_for_sigint(what, seconds=SIGINT_WAIT):
    deadline = _time.monotonic() + seconds
    while _time.monotonic() < deadline:
        pass
    blocked = _signal.SIGINT in _signal.pthread_sigmask(_signal.SIG_BLOCK, [])
    print(f"no KeyboardInterrupt within {seconds} s of {what} (SIGINT handler: "
          f"{_signal.getsignal(_signal.SIGINT)!r}, blocked: {blocked})", file=_sys.stderr, flush=True)
    _sys.exit(3)
"""


def run_isolated_sigint(code: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``run_isolated`` for a child that sends SIGINT: ``SIGINT_PRELUDE`` first."""
    return run_isolated(SIGINT_PRELUDE + textwrap.dedent(code), **kwargs)
