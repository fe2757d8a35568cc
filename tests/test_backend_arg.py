"""One type and one check for every ``backend=`` parameter (``pa.BackendArg``).

``pa.run_job``, ``aio.run_job``, ``trio.run_job`` and the testing toolkit's
functions take the same annotation, and refuse an unknown name or a wrong type
with the same exception and message.
"""

from __future__ import annotations

import asyncio
import inspect
import typing
from typing import Any, Callable, Dict, List

import pytest

import pyossl_async as pa
import pyossl_async.testing as testing
import pyossl_async.testing.conformance as conformance
from pyossl_async import aio

trio = pytest.importorskip("trio")
import pyossl_async.trio as pa_trio  # noqa: E402

#: every public module whose callables may take ``backend=``
PUBLIC = [pa, aio, pa_trio, testing, conformance]


def _public_callables() -> Dict[str, Callable[..., Any]]:
    out: Dict[str, Callable[..., Any]] = {}
    for module in PUBLIC:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                    if not attr.startswith("_") and inspect.isfunction(func):
                        out[f"{module.__name__}.{name}.{attr}"] = func
            elif inspect.isfunction(obj):
                out[f"{module.__name__}.{name}"] = obj
    return out


def _with_backend_parameter() -> Dict[str, Callable[..., Any]]:
    return {
        name: func
        for name, func in _public_callables().items()
        if "backend" in inspect.signature(func).parameters
        and inspect.signature(func).parameters["backend"].default is None
    }


def test_every_optional_backend_parameter_is_a_backend_arg() -> None:
    found = _with_backend_parameter()
    for name in ("pyossl_async.run_job", "pyossl_async.aio.run_job", "pyossl_async.trio.run_job"):
        assert name in found, sorted(found)
    assert len(found) >= 10, sorted(found)  # the toolkit's as well
    wrong = {}
    for name, func in found.items():
        # as written (BackendName is a plain str at run time, so the evaluated hints
        # of Union[Backend, str, None] and BackendArg compare equal), and as evaluated
        written = str(func.__annotations__["backend"])
        hint = typing.get_type_hints(func)["backend"]
        if written.split(".")[-1] != "BackendArg" or hint != pa.BackendArg:
            wrong[name] = written
    assert not wrong, wrong


def _calls(func_name: str) -> Callable[[Any], Any]:
    """A call of each driver with ``backend=`` that would otherwise succeed."""

    def job(arg: Any) -> int:
        return 1

    async def on_trio(backend: Any) -> Any:
        return await pa_trio.run_job(job, backend=backend)

    calls: Dict[str, Callable[[Any], Any]] = {
        "pa.run_job": lambda b: pa.run_job(job, backend=b),
        "aio.run_job": lambda b: asyncio.run(aio.run_job(job, backend=b)),
        "trio.run_job": lambda b: trio.run(on_trio, b),
        "paused_jobs": lambda b: testing.paused_jobs(b),
        "open_contexts": lambda b: testing.open_contexts(backend=b),
        "drain_error_queue": lambda b: testing.drain_error_queue(backend=b),
        "snapshot": lambda b: testing.snapshot(backend=b),
        "backend_libcrypto": lambda b: testing.backend_libcrypto(backend=b),
        "compile_c": lambda b: testing.compile_c(["x.c"], backend=b),
        "PauseEngine.load": lambda b: testing.PauseEngine.load(backend=b),
        "backend_library": lambda b: conformance.backend_library(backend=b),
    }
    return calls[func_name]


CALLS = [
    "pa.run_job",
    "aio.run_job",
    "trio.run_job",
    "paused_jobs",
    "open_contexts",
    "drain_error_queue",
    "snapshot",
    "backend_libcrypto",
    "compile_c",
    "PauseEngine.load",
    "backend_library",
]


@pytest.mark.parametrize("call", CALLS)
def test_an_unknown_name_is_the_same_value_error_everywhere(call: str) -> None:
    with pytest.raises(ValueError) as info:
        _calls(call)("opensll")
    assert str(info.value) == "unknown backend 'opensll'; choose from openssl, python"


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("value", [42, b"python", ["python"]])
def test_a_wrong_type_is_the_same_type_error_everywhere(call: str, value: Any) -> None:
    with pytest.raises(TypeError) as info:
        _calls(call)(value)
    expected = f"backend must be a backend name ('openssl', 'python'), a Backend or None, not {type(value).__name__}"
    assert str(info.value) == expected


@pytest.mark.parametrize("driver", ["pa.run_job", "aio.run_job", "trio.run_job"])
def test_one_variable_runs_in_every_driver(driver: str, backend: pa.Backend) -> None:
    """A name and the backend object both reach the same backend, in every driver."""
    seen: List[Any] = []

    def job(arg: Any) -> int:
        seen.append(backend.get_current_job())
        backend.pause_job()
        return 7

    run: Dict[str, Callable[[pa.BackendArg], Any]] = {
        "pa.run_job": lambda b: pa.run_job(job, backend=b, timeout=30),
        "aio.run_job": lambda b: asyncio.run(aio.run_job(job, backend=b, timeout=30)),
        "trio.run_job": lambda b: trio.run(lambda: pa_trio.run_job(job, backend=b, timeout=30)),
    }
    name: pa.BackendArg = "openssl" if backend.name == "openssl" else "python"
    for value in (name, backend):
        assert run[driver](value) == 7
    assert len(seen) == 2 and all(job is not None for job in seen)  # ran in a job of this backend
