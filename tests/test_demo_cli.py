"""The man page's example and the command line."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyossl_async as pa
from pyossl_async._cli.demo import EXPECTED_OUTPUT, run_demo

from .conftest import run_isolated

ROOT = Path(__file__).resolve().parents[1]
MAN_PAGE_C = ROOT / "conformance" / "c" / "man_page_example.c"


def test_demo_in_process(backend: pa.Backend) -> None:
    lines: list[str] = []
    assert run_demo(backend, write=lines.append) == 0
    assert "\n".join(lines) + "\n" == EXPECTED_OUTPUT
    assert len(lines) == 8


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_demo_command(name: str) -> None:
    if name not in pa.available_backends():
        pytest.skip(f"{name} unavailable")
    proc = run_isolated(f"from pyossl_async._cli import main; raise SystemExit(main(['demo', '--backend', {name!r}]))")
    assert proc.stdout == EXPECTED_OUTPUT


def test_expected_output_is_what_the_c_example_prints(tmp_path: Path) -> None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "man_page_example"
    build = subprocess.run([cc, str(MAN_PAGE_C), "-o", str(exe), "-lcrypto"], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"cannot build against the OpenSSL headers: {build.stderr.strip()[:200]}")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    assert run.stdout == EXPECTED_OUTPUT


def test_info_command() -> None:
    proc = run_isolated("from pyossl_async._cli import main; raise SystemExit(main(['info']))")
    assert "available_backends:" in proc.stdout and "python: CPython" in proc.stdout
    proc = run_isolated("from pyossl_async._cli import main; raise SystemExit(main(['info', '--json']))")
    info = json.loads(proc.stdout)
    assert info["available_backends"] and "default_backend" in info
    if "openssl" in info["available_backends"]:
        assert info["backend.openssl"]["openssl_version"].startswith("OpenSSL 3")


def test_python_dash_m_entry_point() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "pyossl_async", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "demo" in proc.stdout and "conformance" in proc.stdout


# the openssl backend loads but cannot run jobs (no job machinery), as on a libcrypto
# whose ASYNC support is compiled out
CANNOT_RUN_JOBS = """
import pyossl_async._native._support as runner
from pyossl_async._native._abi import NativeUnsupported

class Unsupported:
    def __init__(self, crypto):
        raise NativeUnsupported("simulated: no job machinery here")

runner.NativeSupport = Unsupported
from pyossl_async._cli import main
raise SystemExit(main(ARGS))
"""


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "args, env, asked",
    [
        (["demo", "--backend", "openssl"], {}, "--backend openssl"),
        (["demo"], {"PYOSSL_ASYNC_BACKEND": "openssl"}, "PYOSSL_ASYNC_BACKEND=openssl"),
    ],
)
def test_demo_refuses_a_backend_that_cannot_run_jobs(args: list[str], env: dict[str, str], asked: str) -> None:
    """Refused in one line, before the demo's first line: no traceback, exit status 2."""
    if "openssl" not in pa.available_backends():
        pytest.skip("openssl unavailable")
    proc = run_isolated(CANNOT_RUN_JOBS.replace("ARGS", repr(args)), env=env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert f"pyossl_async demo: {asked}: backend openssl (" in proc.stderr
    assert "loads but cannot run jobs here: simulated: no job machinery here" in proc.stderr


#: the line ``demo`` writes to stderr before the example's own output
HEADER = re.compile(r"pyossl_async demo: backend (openssl \(OpenSSL .+, /\S+\)|python \(pure Python\))")


@pytest.mark.subprocess
def test_the_readme_shows_what_demo_prints_on_both_streams() -> None:
    """The README's demo block: the stderr header first, then stdout, as a terminal shows them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```console\n\$ [^\n]*python -m pyossl_async demo\n(.*?)```", text, re.S)
    assert block is not None, "the README shows no run of python -m pyossl_async demo"
    header, rest = block.group(1).split("\n", 1)
    assert HEADER.fullmatch(header), header
    assert rest == EXPECTED_OUTPUT
    assert "standard error" in text[block.end() : block.end() + 400]  # and says where the first line goes
    proc = subprocess.run(
        [sys.executable, "-m", "pyossl_async", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert proc.returncode == 0 and proc.stdout == EXPECTED_OUTPUT, proc.stderr
    assert HEADER.fullmatch(proc.stderr.rstrip("\n")), proc.stderr
