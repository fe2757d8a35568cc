"""The public surface is exactly what contract.md promises."""

from __future__ import annotations

import inspect

import pytest

import pyossl_async as pa
from pyossl_async._registry import BACKEND_NAMES

from .conftest import run_isolated

CONTRACT_FUNCTIONS = [
    "get_backend",
    "available_backends",
    "is_capable",
    "init_thread",
    "cleanup_thread",
    "WaitCtx",
    "start_job",
    "pause_job",
    "get_current_job",
    "get_wait_ctx",
    "block_pause",
    "unblock_pause",
    "pause_blocked",
    "run_job",
]
#: helpers for engine code running inside a job (issue 5), beyond the contract
ENGINE_HELPERS = ["await_future", "wait_for_fd"]
BACKEND_METHODS = [
    "is_capable",
    "init_thread",
    "cleanup_thread",
    "WaitCtx",
    "start_job",
    "pause_job",
    "get_current_job",
    "get_wait_ctx",
    "block_pause",
    "unblock_pause",
    "pause_blocked",
]
WAITCTX_METHODS = [
    "set_wait_fd",
    "get_fd",
    "get_all_fds",
    "get_changed_fds",
    "clear_fd",
    "set_callback",
    "get_callback",
    "set_status",
    "get_status",
    "close",
    "__enter__",
    "__exit__",
]


def test_status_values() -> None:
    assert [int(s) for s in (pa.Status.ERR, pa.Status.NO_JOBS, pa.Status.PAUSE, pa.Status.FINISH)] == [0, 1, 2, 3]
    assert (pa.ERR, pa.NO_JOBS, pa.PAUSE, pa.FINISH) == tuple(pa.Status)
    assert [int(s) for s in pa.WaitStatus] == [0, 1, 2, 3]
    assert [s.name for s in pa.WaitStatus] == ["UNSUPPORTED", "ERR", "OK", "EAGAIN"]


def test_exception_hierarchy() -> None:
    assert issubclass(pa.AsyncError, Exception)
    assert issubclass(pa.BackendUnavailable, pa.AsyncError)
    assert issubclass(pa.JobStateError, pa.AsyncError)
    assert issubclass(pa.JobStateError, RuntimeError)
    assert issubclass(pa.WaitCtxClosedError, pa.AsyncError)
    assert issubclass(pa.WaitCtxClosedError, ValueError)
    assert issubclass(pa.JobCancelled, BaseException)
    assert not issubclass(pa.JobCancelled, Exception)
    assert pa.AsyncError("x").errors == ()


def test_module_functions_exist() -> None:
    for name in CONTRACT_FUNCTIONS:
        assert callable(getattr(pa, name)), name
        assert name in pa.__all__


def test_engine_helpers_exported() -> None:
    for name in ENGINE_HELPERS:
        assert callable(getattr(pa, name)), name
        assert name in pa.__all__
    from pyossl_async import engine

    assert pa.await_future is engine.await_future and pa.wait_for_fd is engine.wait_for_fd
    assert inspect.signature(pa.await_future).parameters["notify"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(pa.wait_for_fd).parameters) == ["fd", "key"]


def test_aio_surface() -> None:
    from pyossl_async import aio

    assert aio.__all__ == [
        "SLICE_SECONDS",
        "JobTimeoutError",
        "await_coroutine",
        "get_job_limit",
        "run_job",
        "set_job_limit",
    ]
    assert inspect.iscoroutinefunction(aio.run_job)
    sig = inspect.signature(aio.run_job)
    # the blocking run_job's parameters, the same names in the same order
    assert list(sig.parameters) == list(inspect.signature(pa.run_job).parameters)
    assert sig.parameters["backend"].kind is inspect.Parameter.KEYWORD_ONLY
    assert sig.parameters["timeout"].default is None
    assert sig.parameters["close_timeout"].default is None
    assert issubclass(aio.JobTimeoutError, TimeoutError)
    assert issubclass(aio.JobTimeoutError, __import__("asyncio").TimeoutError)


def test_trio_surface() -> None:
    pytest.importorskip("trio")
    from pyossl_async import trio as ptrio

    assert ptrio.__all__ == ["run_job"]
    assert inspect.iscoroutinefunction(ptrio.run_job)
    assert list(inspect.signature(ptrio.run_job).parameters) == list(inspect.signature(pa.run_job).parameters)


def test_signatures() -> None:
    sig = inspect.signature(pa.run_job)
    assert list(sig.parameters) == ["func", "args", "backend", "ctx", "timeout", "close_timeout"]
    assert sig.parameters["backend"].kind is inspect.Parameter.KEYWORD_ONLY
    assert list(inspect.signature(pa.start_job).parameters) == ["job", "ctx", "func", "args"]
    assert inspect.signature(pa.init_thread).parameters["max_size"].default == 0


def test_backends_are_instances_of_the_protocol(backend: pa.Backend) -> None:
    assert isinstance(backend, pa.Backend)
    assert not isinstance(object(), pa.Backend)
    assert not isinstance(backend.WaitCtx, pa.Backend)


def test_backend_surface(backend: pa.Backend) -> None:
    for name in BACKEND_METHODS:
        assert callable(getattr(backend, name)), name
    assert backend.name in BACKEND_NAMES
    assert isinstance(backend.is_capable(), bool)
    if backend.name == "openssl":
        assert isinstance(backend.openssl_version, str) and "OpenSSL" in backend.openssl_version
    else:
        assert backend.openssl_version is None
    with backend.WaitCtx() as ctx:
        for name in WAITCTX_METHODS:
            assert callable(getattr(ctx, name)), name
        assert ctx.backend is backend


def test_get_backend_identity_and_errors() -> None:
    names = pa.available_backends()
    assert names and set(names) <= set(BACKEND_NAMES)
    for name in names:
        assert pa.get_backend(name) is pa.get_backend(name)
    with pytest.raises(ValueError, match="unknown backend"):
        pa.get_backend("gnutls")
    with pytest.raises(TypeError):
        pa.get_backend(3)  # type: ignore[arg-type]


def test_default_backend_prefers_capable_openssl() -> None:
    proc = run_isolated(
        """
        import pyossl_async as pa
        b = pa.get_backend()
        o = None
        try:
            o = pa.get_backend("openssl")
        except pa.BackendUnavailable:
            pass
        expected = "openssl" if o is not None and o.is_capable() else "python"
        assert b.name == expected, (b.name, expected)
        print(b.name)
        """,
        env={"PYOSSL_ASYNC_BACKEND": ""},
    )
    assert proc.stdout.strip() in BACKEND_NAMES


@pytest.mark.parametrize("name", BACKEND_NAMES)
def test_env_selects_backend(name: str) -> None:
    proc = run_isolated(
        """
        import pyossl_async as pa
        try:
            print(pa.get_backend().name)
        except pa.BackendUnavailable as exc:
            print("unavailable", exc)
        """,
        env={"PYOSSL_ASYNC_BACKEND": name},
    )
    out = proc.stdout.strip()
    assert out == name or out.startswith("unavailable")


def test_env_unknown_backend_is_value_error() -> None:
    proc = run_isolated(
        """
        import pyossl_async as pa
        try:
            pa.get_backend()
        except ValueError as exc:
            print("ValueError", exc)
        """,
        env={"PYOSSL_ASYNC_BACKEND": "nope"},
    )
    assert proc.stdout.startswith("ValueError PYOSSL_ASYNC_BACKEND=nope: unknown backend 'nope'")


def test_bad_libcrypto_path_names_what_was_tried() -> None:
    proc = run_isolated(
        """
        import pyossl_async as pa
        for name in ("openssl", None):
            try:
                pa.get_backend(name)
            except pa.BackendUnavailable as exc:
                print("unavailable:", exc)
        print(pa.available_backends())
        """,
        env={"PYOSSL_ASYNC_LIBCRYPTO": "/nonexistent/libcrypto.so.3", "PYOSSL_ASYNC_BACKEND": ""},
    )
    lines = proc.stdout.splitlines()
    # asked for and unusable: an error, the same with a name and without (no fallback to python)
    want = "unavailable: PYOSSL_ASYNC_LIBCRYPTO=/nonexistent/libcrypto.so.3: no such file"
    assert lines[:2] == [want, want]
    assert "openssl" not in lines[2]
