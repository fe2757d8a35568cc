"""Acceptance: the conformance suite ships in the wheel and runs wherever the package is installed.

One wheel per module, built with ``pip wheel --no-deps`` from a copy of what the
build reads (``pyproject.toml``, ``README.md``, ``src/``, ``conformance/``), so
nothing is written into the checkout and parallel runs do not share a
``build/`` folder; installed with ``pip install --no-deps --target``. Then, from
a folder outside the repository, with only that installation on ``PYTHONPATH``:
a folder of the user's own scenarios (``--scenarios``) and the built-in suite.

Slow (a wheel build in an isolated build environment: pip fetches setuptools).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from pyossl_async.testing.conformance import builtin_suite, ctwins

from .conformance_fake import write_user_suite
from .conftest import load_backend

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

ROOT = Path(__file__).resolve().parent.parent
#: what the build reads
BUILD_INPUTS = ("pyproject.toml", "README.md", "src", "conformance")
TYPO = "AttributeError: 'Trace' object has no attribute 'set_stauts'"


def _run(cmd: List[str], cwd: Path, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run(cmd, capture_output=True, text=True, cwd=str(cwd), env=env, timeout=900)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built once for the module."""
    tree = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=ignore)
        else:
            shutil.copy2(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."], tree)
    assert proc.returncode == 0, f"the wheel did not build:\n{proc.stdout}\n{proc.stderr}"
    (built,) = out.glob("pyossl_async-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed into a folder of its own (no venv needed)."""
    target = tmp_path_factory.mktemp("site")
    proc = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], target
    )
    assert proc.returncode == 0, f"the wheel did not install:\n{proc.stdout}\n{proc.stderr}"
    return target


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working directory outside the repository."""
    folder = tmp_path_factory.mktemp("outside")
    assert ROOT not in folder.parents
    return folder


@pytest.fixture(scope="module")
def toolchain() -> ctwins.Toolchain:
    load_backend("python")
    tc, why = ctwins.find_toolchain(ctwins.backend_library(load_backend("openssl")))
    if tc is None:
        pytest.skip(f"no C toolchain here: {why}")
    return tc


def _env(site: Path, **extra: str) -> Dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(site), **extra)
    for name in ("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", "PYOSSL_ASYNC_BACKEND", "PYOSSL_ASYNC_LIBCRYPTO"):
        env.pop(name, None)
    return env


def _conformance(site: Path, cwd: Path, *args: str, **env: str) -> "subprocess.CompletedProcess[str]":
    return _run([sys.executable, "-m", "pyossl_async", "conformance", *args], cwd, _env(site, **env))


def test_the_wheel_holds_the_machinery_and_the_suite(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for shared in ctwins.SHARED_SOURCES:
        assert f"pyossl_async/testing/conformance/c/{shared}" in names
    assert "pyossl_async/testing/conformance/runner.py" in names
    assert "pyossl_async/_suite/__init__.py" in names and "pyossl_async/_suite/scenarios/__init__.py" in names
    for folder, pattern in (("scenarios", "*.py"), ("c", "*.c")):
        for path in (ROOT / "conformance" / folder).glob(pattern):
            assert f"pyossl_async/_suite/{folder}/{path.name}" in names, path
    assert not [n for n in names if n.startswith("conformance/")]  # no top-level "conformance" package
    # pyproject.toml lists the packages one by one: every package of src/ must be in it
    for init in (ROOT / "src").rglob("__init__.py"):
        if "__pycache__" not in init.parts:
            assert init.relative_to(ROOT / "src").as_posix() in names, f"{init.parent} is missing from the wheel"


def test_it_runs_from_the_installation(site: Path, outside: Path) -> None:
    """The installed copy is what runs: the source tree is not importable from there."""
    code = "import pyossl_async, pyossl_async._suite as s; print(pyossl_async.__file__); print(s.__file__)"
    proc = _run([sys.executable, "-c", code], outside, _env(site))
    assert proc.returncode == 0, proc.stderr
    package, suite = proc.stdout.split()
    assert package == str(site / "pyossl_async" / "__init__.py")
    assert suite == str(site / "pyossl_async" / "_suite" / "__init__.py")


def test_user_scenarios_from_the_installation(
    site: Path, outside: Path, toolchain: ctwins.Toolchain, tmp_path: Path
) -> None:
    write_user_suite(str(outside / "my_scenarios"))
    report = outside / "user.json"
    proc = _conformance(
        site, outside, "--scenarios", "my_scenarios", "--json", str(report),
        PYOSSL_ASYNC_CONFORMANCE_CACHE=str(tmp_path / "cache"),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.rstrip().splitlines()[-1] == "3 scenarios, 2 disagreements"
    assert "twins: 3 compiled, 0 cached" in out  # trace.h and _version.c came with the package
    row = next(line for line in out.splitlines() if line.startswith("status_survives_resume "))
    assert row.split()[1:] == ["match", "match", "match"]
    assert "  status_typo [python]: scenario raised " + TYPO in out
    assert f'File "{outside / "my_scenarios" / "status.py"}", line ' in out
    doc = json.loads(report.read_text())
    assert doc["suite"]["c_dir"] == str(outside / "my_scenarios" / "c")
    typo = next(s for s in doc["scenarios"] if s["name"] == "status_typo")
    assert "Traceback (most recent call last)" in typo["errors"]["python"]


def test_the_builtin_suite_from_the_installation(site: Path, outside: Path, toolchain: ctwins.Toolchain) -> None:
    report = outside / "builtin.json"
    proc = _conformance(site, outside, "--json", str(report), PYOSSL_ASYNC_CONFORMANCE_EXAMPLES="30")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    count = len(builtin_suite().scenarios)
    assert proc.stdout.rstrip().splitlines()[-1] == f"{count} scenarios, 0 disagreements"
    assert "30 programs of up to 30 steps, all agree" in proc.stdout
    doc = json.loads(report.read_text())
    assert doc["suite"]["kind"] == "builtin"
    installed = str(site / "pyossl_async" / "_suite" / "c")
    assert doc["suite"]["c_dir"] == installed
    twinned = [s for s in doc["scenarios"] if s["twin"]]
    assert twinned and all(s["twin_path"].startswith(installed + os.sep) for s in twinned)
    assert all(s["cells"]["C"]["text"] == "match" for s in twinned)
