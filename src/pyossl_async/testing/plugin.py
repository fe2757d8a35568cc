"""The pytest plugin (entry point ``pyossl_async``, loaded whenever the package is installed).

Fixtures:

* ``pyossl_backend``: each available backend in turn (a test that uses it runs
  once per backend, ids ``[openssl]``/``[python]``); after the test it fails the
  test if it left paused jobs on its thread, ``WaitCtx`` objects open, or entries
  on libcrypto's error queue (and cleans them up);
* ``pyossl_wait_ctx``: a ``WaitCtx`` of that backend, closed after the test.

Options and settings:

* ``--pyossl-backend NAME`` (repeatable): only these backends;
* ``--pyossl-require NAME[,NAME]`` (repeatable) or ``$PYOSSL_ASYNC_REQUIRE_BACKENDS``:
  a missing backend fails the tests that need it instead of skipping them (CI);
* marker ``@pytest.mark.pyossl_backends("openssl")``: run a test on these
  backends only; a name that is not a backend's is a collection error, as an
  unknown ``--pyossl-backend`` is a usage error (never an empty, skipped test).

A ``PYOSSL_ASYNC_*`` setting the library or the toolkit does not accept stops
the run with a usage error naming it, before any test runs.

The report header says which backends and which libcrypto file the run used.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Optional, Set

import pytest

import pyossl_async as pa

from .. import _settings as _runtime_settings
from .._registry import BACKEND_NAMES
from . import _settings
from ._leftovers import clean_up, snapshot

__all__ = ["load_backend", "required_backends", "selected_backends"]

ENV_REQUIRE = _settings.ENV_REQUIRE_BACKENDS
MARKER = "pyossl_backends"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("pyossl-async", "pyossl-async backends")
    group.addoption(
        "--pyossl-backend",
        action="append",
        default=[],
        metavar="NAME",
        help=f"run pyossl_backend tests on this backend only (repeatable; {', '.join(BACKEND_NAMES)})",
    )
    group.addoption(
        "--pyossl-require",
        action="append",
        default=[],
        metavar="NAMES",
        help=f"comma-separated backends that must be available: a missing one fails instead of "
        f"skipping (also ${ENV_REQUIRE})",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(*names): run this test on these pyossl-async backends only")
    refused = _runtime_settings.problems() + _settings.problems()
    if refused:
        raise pytest.UsageError(str(refused[0]))
    for name in selected_backends(config) | required_backends(config):
        if name not in BACKEND_NAMES:
            raise pytest.UsageError(f"unknown pyossl-async backend {name!r}; choose from {', '.join(BACKEND_NAMES)}")


def _split(values: List[str]) -> Set[str]:
    return {n.strip() for v in values for n in v.split(",") if n.strip()}


def selected_backends(config: pytest.Config) -> Set[str]:
    """The backends ``--pyossl-backend`` asked for (empty: all of them)."""
    return _split(config.getoption("--pyossl-backend") or [])


def required_backends(config: Optional[pytest.Config] = None) -> Set[str]:
    """The backends that must load: ``--pyossl-require`` and ``$PYOSSL_ASYNC_REQUIRE_BACKENDS``.

    The variable may also name ``C`` (the conformance command's C twins, which a
    test run does not need): that name is left to the conformance command.
    """
    names = set(_settings.required_backends()) - {_settings.C_TWINS}
    if config is not None:
        names |= _split(config.getoption("--pyossl-require") or [])
    return names


def load_backend(name: str, config: Optional[pytest.Config] = None, *, capable: bool = True) -> pa.Backend:
    """Backend ``name``, or skip the test (fail it when the backend is required).

    ``capable``: also skip (or fail) when the backend loads but cannot run jobs here.
    """
    try:
        backend = pa.get_backend(name)
    except pa.BackendUnavailable as exc:
        if name in required_backends(config):
            pytest.fail(f"required backend {name!r} is unavailable: {exc}")
        pytest.skip(f"backend {name!r} unavailable: {exc}")
    if capable and not backend.is_capable():
        why = f"backend {name!r} cannot run jobs here: {getattr(backend, 'native_error', '') or 'not capable'}"
        if name in required_backends(config):
            pytest.fail(why)
        pytest.skip(why)
    return backend


def pytest_report_header(config: pytest.Config) -> List[str]:
    lines = []
    for name in BACKEND_NAMES:
        try:
            backend: Any = pa.get_backend(name)
        except pa.BackendUnavailable as exc:
            lines.append(f"pyossl_async backend {name}: UNAVAILABLE ({exc})")
            continue
        info: dict[str, Any] = getattr(backend, "info", dict)()
        detail = ", ".join(f"{k}={v}" for k, v in info.items()) or "pure Python"
        lines.append(f"pyossl_async backend {name}: capable={backend.is_capable()} {detail}")
    return lines


def _marked_backends(marker: pytest.Mark) -> List[str]:
    """The backends a ``pyossl_backends`` marker names; a collection error (``pytest.fail``,
    no traceback) for a name that is no backend's, or for no name at all: either would
    otherwise leave the test with an empty parameter set, skipped without a word."""
    if not marker.args or marker.kwargs:
        pytest.fail(
            f"@pytest.mark.{MARKER}(...) takes backend names, at least one, as positional "
            f"arguments ({', '.join(map(repr, BACKEND_NAMES))})",
            pytrace=False,
        )
    unknown = [name for name in marker.args if name not in BACKEND_NAMES]
    if unknown:
        pytest.fail(
            f"@pytest.mark.{MARKER}: unknown pyossl-async backend {unknown[0]!r}; "
            f"choose from {', '.join(BACKEND_NAMES)}",
            pytrace=False,
        )
    return [str(name) for name in marker.args]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker(MARKER)
    marked = _marked_backends(marker) if marker is not None else None  # checked where it is, used or not
    if "pyossl_backend" not in metafunc.fixturenames:
        return
    names = list(BACKEND_NAMES)
    selected = selected_backends(metafunc.config)
    if selected:
        names = [n for n in names if n in selected]
    if marked is not None:
        names = [n for n in names if n in marked]
    metafunc.parametrize("pyossl_backend", names, indirect=True, ids=names)


@pytest.fixture
def pyossl_backend(request: pytest.FixtureRequest) -> Iterator[pa.Backend]:
    """Each backend in turn; fails the test if it left anything behind (see the module)."""
    name = getattr(request, "param", None) or pa.get_backend().name
    backend = load_backend(name, request.config)
    before = snapshot(backend)
    yield backend
    left = clean_up(before)
    if left:
        pytest.fail(f"the test {left}")


@pytest.fixture
def pyossl_wait_ctx(pyossl_backend: pa.Backend) -> Iterator[pa.WaitCtx]:
    """A ``WaitCtx`` of the test's backend, closed after the test (or, while a job
    the test left paused still uses it, once that job is closed)."""
    ctx = pyossl_backend.WaitCtx()
    yield ctx
    closer = getattr(ctx, "close_when_unused", ctx.close)
    closer()
