"""The conformance catalogue from pytest: its shape, and every scenario on every backend and in C.

``python -m pyossl_async conformance`` runs the same scenarios (in child
processes, with the random differential test); running them here too puts them
on every CPython version CI tests, in-process, next to the rest of the suite.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Dict, List

import pytest

import pyossl_async as pa
from pyossl_async.testing.conformance import Scenario, builtin_suite, compare_traces, ctwins

from .conftest import load_backend

SUITE = builtin_suite()
SCENARIOS = list(SUITE.scenarios)
C_DIR = SUITE.c_dir
MODULES = importlib.import_module("pyossl_async._suite.scenarios").MODULES
BY_NAME: Dict[str, Scenario] = {s.name: s for s in SCENARIOS}
TWINNED = [s for s in SCENARIOS if s.twin]
TRACE_LINE = re.compile(r"^[\x20-\x7e]*$")


def test_catalogue_size_and_shape() -> None:
    assert len(SCENARIOS) >= 40
    assert len(BY_NAME) == len(SCENARIOS)
    assert len(TWINNED) >= 40
    for s in SCENARIOS:
        assert s.doc, f"{s.name} needs a docstring saying what it checks"
        assert bool(s.twin) != bool(s.why_no_twin), s.name


def test_catalogue_order_is_the_documented_one() -> None:
    """The table starts with the man page's example and goes module by module, as MODULES says."""
    assert SCENARIOS[0].name == "man_page_example"
    groups = [s.group for s in SCENARIOS]
    assert groups == sorted(groups, key=MODULES.index)
    assert set(groups) == set(MODULES)


def test_every_twin_exists_and_every_c_file_is_a_twin() -> None:
    twins = {s.twin for s in TWINNED}
    for name in twins:
        assert os.path.isfile(os.path.join(C_DIR, str(name))), f"missing C twin {name}"
    on_disk = {f for f in os.listdir(C_DIR) if f.endswith(".c")}
    assert on_disk == twins, f"C files without a scenario: {sorted(on_disk - twins)}"
    for shared in ctwins.SHARED_SOURCES:  # with the machinery, not with the suite
        assert os.path.isfile(os.path.join(ctwins.SHARED_DIR, shared)), shared


def test_every_api_function_is_exercised() -> None:
    """Every function of ASYNC_start_job(3) and ASYNC_WAIT_CTX_new(3) appears in some C twin."""
    functions = [
        "ASYNC_init_thread", "ASYNC_cleanup_thread", "ASYNC_start_job", "ASYNC_pause_job",
        "ASYNC_get_current_job", "ASYNC_get_wait_ctx", "ASYNC_block_pause", "ASYNC_unblock_pause",
        "ASYNC_is_capable", "ASYNC_WAIT_CTX_new", "ASYNC_WAIT_CTX_free", "ASYNC_WAIT_CTX_set_wait_fd",
        "ASYNC_WAIT_CTX_get_fd", "ASYNC_WAIT_CTX_get_all_fds", "ASYNC_WAIT_CTX_get_changed_fds",
        "ASYNC_WAIT_CTX_clear_fd", "ASYNC_WAIT_CTX_set_callback", "ASYNC_WAIT_CTX_get_callback",
        "ASYNC_WAIT_CTX_set_status", "ASYNC_WAIT_CTX_get_status",
    ]  # fmt: skip
    sources = ""
    for path in [os.path.join(ctwins.SHARED_DIR, "trace.h"), *(str(s.twin_path) for s in TWINNED)]:
        with open(path) as f:
            sources += f.read()
    for fn in functions:
        assert f"{fn}(" in sources, fn


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_scenario_runs_on_each_backend(backend: pa.Backend, name: str) -> None:
    lines = BY_NAME[name].func(backend)
    assert lines and all(isinstance(line, str) and TRACE_LINE.match(line) for line in lines)


@pytest.fixture(scope="module")
def traces() -> Dict[str, Dict[str, List[str]]]:
    """Every scenario's trace on each backend (computed once per module)."""
    out: Dict[str, Dict[str, List[str]]] = {}
    for name in ("openssl", "python"):
        be = load_backend(name)
        for s in SCENARIOS:
            out.setdefault(s.name, {})[name] = s.func(be)
            be.cleanup_thread()
    return out


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_backends_agree(traces: Dict[str, Dict[str, List[str]]], name: str) -> None:
    got = traces[name]
    diff, _ = compare_traces(got["openssl"], got["python"], version_tolerant=True)
    assert diff is None, diff.describe()


@pytest.fixture(scope="module")
def toolchain() -> ctwins.Toolchain:
    tc, why = ctwins.find_toolchain(ctwins.backend_library(load_backend("openssl")))
    if tc is None:
        pytest.skip(f"C twins cannot be built here: {why}")
    return tc


@pytest.mark.subprocess
@pytest.mark.parametrize("name", sorted(s.name for s in TWINNED))
def test_c_twin_agrees(toolchain: ctwins.Toolchain, traces: Dict[str, Dict[str, List[str]]], name: str) -> None:
    scenario = BY_NAME[name]
    built = ctwins.compile_twin(toolchain, scenario.twin_path or "")
    assert built.binary is not None, built.error
    run = ctwins.run_twin(built.binary)
    assert run.error == "", f"{run.error}\n{run.stderr}"
    assert run.libcrypto_version == load_backend("openssl").openssl_version
    diff, _ = compare_traces(run.lines, traces[name]["openssl"])
    assert diff is None, f"openssl vs C: {diff.describe()}"
    diff, _ = compare_traces(run.lines, traces[name]["python"], version_tolerant=True)
    assert diff is None, f"python vs C: {diff.describe()}"
