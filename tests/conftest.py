"""Shared fixtures: every behavioural test runs once per backend.

``backend`` is the pytest plugin's ``pyossl_backend`` (``pyossl_async.testing.plugin``):
parametrised over the backends, skipped when one cannot load unless it is
required (``--pyossl-require`` or ``PYOSSL_ASYNC_REQUIRE_BACKENDS``, which CI sets),
and failing a test that leaves paused jobs, open contexts or libcrypto errors
behind. On top of that, every test here starts from a clean per-thread pool.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict, Iterator, List, Optional

import pytest

import pyossl_async as pa
from pyossl_async import _registry
from pyossl_async.testing import plugin

# Hypothesis profiles, one place for every property test of this suite: "ci" (the
# default) replays the same examples each run, so CI is reproducible; "explore"
# (HYPOTHESIS_PROFILE=explore) draws new ones each run and keeps failures in the
# example database, for long local runs. Tests set only how many examples they draw.
try:
    from hypothesis import HealthCheck as _HealthCheck
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # pragma: no cover - the property tests skip themselves
    pass
else:
    _hypothesis_settings.register_profile(
        "ci", derandomize=True, deadline=None, database=None, suppress_health_check=[_HealthCheck.too_slow]
    )
    _hypothesis_settings.register_profile("explore", derandomize=False, deadline=None)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: backends that must load (a missing one fails instead of skipping)
REQUIRED = plugin.required_backends()
#: the backends ``--pyossl-backend`` selected (empty: all): this suite's own per-backend
#: fixtures and child variants follow it, as the plugin's ``pyossl_backend`` does, so that
#: a run limited to one backend (CI's switch and OpenSSL-version runs) runs no other
SELECTED: "set[str]" = set()


def pytest_configure(config: pytest.Config) -> None:
    SELECTED.update(plugin.selected_backends(config))


def skip_unselected(backend: str) -> None:
    """Skip the calling test when ``--pyossl-backend`` left ``backend`` out."""
    if SELECTED and backend not in SELECTED:
        pytest.skip(f"{backend} not selected (--pyossl-backend)")

#: the python backend's engines (PYOSSL_ASYNC_PYTHON_ENGINE), for tests parametrised over them
PYTHON_ENGINES = ["threads", "greenlet"]


def greenlet_problem() -> Optional[str]:
    """Why the greenlet engine cannot run here (None: it can)."""
    from pyossl_async.backends.python import greenlet_problem

    return greenlet_problem()


#: one python backend per engine, made on first use and kept (their pools hold threads)
_ENGINE_BACKENDS: Dict[str, Any] = {}


def engine_backend(engine: str) -> Any:
    """The python backend running ``engine`` (skipped when that engine cannot run here)."""
    skip_unselected("python")
    backend = _ENGINE_BACKENDS.get(engine)
    if backend is None:
        if engine == "greenlet":
            problem = greenlet_problem()
            if problem is not None:
                pytest.skip(f"the greenlet engine cannot run here: {problem}")
        from pyossl_async.backends.python import PythonBackend

        backend = _ENGINE_BACKENDS[engine] = PythonBackend(engine)
    return backend


@contextlib.contextmanager
def python_backend_with(engine: str) -> Iterator[Any]:
    """``pa.get_backend("python")`` is the python backend running ``engine`` meanwhile, so the
    module functions and the engine helpers (which find the running job through the
    loaded backends) act on it."""
    backend = engine_backend(engine)
    with _registry._lock:
        previous = _registry._loaded.get("python")
        _registry._loaded["python"] = backend
    try:
        yield backend
    finally:
        with _registry._lock:
            if previous is None:
                _registry._loaded.pop("python", None)
            else:
                _registry._loaded["python"] = previous


@pytest.fixture(params=PYTHON_ENGINES)
def python_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each engine of the python backend in turn, installed as ``get_backend("python")``."""
    skip_unselected("python")
    with python_backend_with(request.param):
        yield request.param


def engine_env(engine: str) -> Dict[str, str]:
    """The environment that makes a child interpreter's python backend run ``engine``."""
    return {"PYOSSL_ASYNC_PYTHON_ENGINE": engine}


#: what a child interpreter can run: the openssl backend, and the python backend once
#: per engine (for tests that run their scenario in a child: ``variant``)
VARIANTS = ["openssl", *(f"python-{e}" for e in PYTHON_ENGINES)]


def variant(name: str) -> tuple[str, Dict[str, str]]:
    """``(backend name, child environment)`` for a ``VARIANTS`` entry; skipped (failed when
    the backend is required) when it cannot run here."""
    backend, _, engine = name.partition("-")
    skip_unselected(backend)
    if backend not in pa.available_backends():
        if backend in REQUIRED:
            pytest.fail(f"required backend {backend!r} is unavailable")
        pytest.skip(f"{backend} unavailable")
    if not engine:
        return backend, {}
    if engine == "greenlet" and greenlet_problem() is not None:
        pytest.skip(f"the greenlet engine cannot run here: {greenlet_problem()}")
    return backend, engine_env(engine)


def load_backend(name: str) -> pa.Backend:
    """A backend by name, skipped (failed when required) when it cannot load."""
    skip_unselected(name)
    return plugin.load_backend(name, capable=False)


@pytest.fixture
def backend(pyossl_backend: pa.Backend) -> Iterator[pa.Backend]:
    """Each backend in turn (the plugin's checks), then a clean per-thread pool."""
    yield pyossl_backend
    pyossl_backend.cleanup_thread()


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
    script = _faulthandler(timeout) + textwrap.dedent(code)
    return _run_child([sys.executable, *args, "-c", script], env, timeout, check)


def _faulthandler(timeout: float) -> str:
    """What a child runs first: faulthandler on, and every thread's stack dumped (then an
    exit) shortly before the parent would kill it, so that a hang shows where it hung."""
    dump = f"faulthandler.dump_traceback_later({max(timeout - 10, timeout * 0.9)!r}, exit=True)\n"
    return "import faulthandler; faulthandler.enable()\n" + dump


#: child programs too long to read as strings: real modules, run as scripts
CHILDREN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "children")


def run_child(
    name: str,
    *argv: str,
    env: Optional[dict[str, str]] = None,
    timeout: float = 300,
    args: tuple[str, ...] = (),
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run ``tests/children/NAME.py ARGV...`` as ``run_isolated`` runs code (faulthandler on,
    a crash fails the calling test); ``args`` go to the interpreter (``-X dev``...)."""
    script = os.path.join(CHILDREN, f"{name}.py")
    run = f"import runpy, sys; sys.argv = {[script, *argv]!r}; runpy.run_path(sys.argv[0], run_name='__main__')"
    return _run_child([sys.executable, *args, "-c", _faulthandler(timeout) + run], env, timeout, check)


def _run_child(
    command: List[str], env: Optional[dict[str, str]], timeout: float, check: bool
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, full_env.get("PYTHONPATH")]))
    full_env.update(env or {})
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=full_env)
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
