"""Strict backend selection (issue 13).

A backend the environment asks for (``PYOSSL_ASYNC_BACKEND``,
``PYOSSL_ASYNC_LIBCRYPTO``) that cannot be had is an error naming the variable,
the value and why, through the API and on the command line; the fallback to
``"python"`` is only for when nothing was asked for. Each check runs in a child
interpreter: the registry loads each backend once per process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

import pyossl_async as pa
from pyossl_async import _registry
from pyossl_async._libcrypto import _loader
from pyossl_async._libcrypto._dlinfo import loaded_library_file
from pyossl_async._libcrypto._loader import version_name

from .conftest import run_isolated

ROOT = Path(__file__).resolve().parents[1]
LIB = _registry.ENV_LIBCRYPTO
BACKEND = _registry.ENV_BACKEND
#: nothing asked for: both variables empty (the same as unset), whatever the test run inherits
NOTHING_SET = {LIB: "", BACKEND: "", "PYOSSL_ASYNC_REQUIRE_BACKENDS": ""}

#: a libcrypto 1.1 as far as a loader can tell (the real 1.1.1w's version number)
FAKE_11_C = "unsigned long OpenSSL_version_num(void) { return 0x1010117fUL; }\n"
#: a shared object that is no libcrypto at all
NOT_LIBCRYPTO_C = "int pyossl_async_test_hello(void) { return 1; }\n"

API_PROBE = """
import json
import pyossl_async as pa
out = {}
for label, call in (("default", lambda: pa.get_backend()), ("openssl", lambda: pa.get_backend("openssl"))):
    try:
        out[label] = ["ok", call().name]
    except Exception as exc:
        out[label] = [type(exc).__name__, str(exc)]
try:
    out["available"] = pa.available_backends()
except pa.SettingError as exc:
    out["available"] = ["SettingError", str(exc)]
print(json.dumps(out))
"""


# -- helpers -------------------------------------------------------------------------


def _compile(tmp_path: Path, name: str, source: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build a test library")
    src = tmp_path / (name + ".c")
    src.write_text(source)
    out = tmp_path / name
    proc = subprocess.run([cc, "-shared", "-fPIC", "-o", str(out), str(src)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot build a shared object: {proc.stderr.strip()[:200]}")
    return out


def _probe(env: Dict[str, str]) -> Dict[str, Any]:
    proc = run_isolated(API_PROBE, env={**NOTHING_SET, **env})
    result: Dict[str, Any] = json.loads(proc.stdout)
    return result


def _cli(args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), full.get("PYTHONPATH")]))
    full.pop("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", None)
    full.update(NOTHING_SET)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pyossl_async", *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=str(ROOT),
        timeout=300,
    )


def _assert_refused(proc: subprocess.CompletedProcess[str], message: str, status: Optional[int] = None) -> None:
    """Refused in one line on stderr that contains ``message``; no traceback, no work done."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if status is not None:
        assert proc.returncode == status, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "disagreement" not in proc.stdout and "Starting..." not in proc.stdout, proc.stdout


@pytest.fixture(scope="module")
def system_libcrypto() -> str:
    """The real path of the libcrypto the openssl backend loads with nothing set."""
    proc = run_isolated(
        """
        import pyossl_async as pa
        try:
            print(pa.get_backend("openssl").library_path)
        except pa.BackendUnavailable:
            print("")
        """,
        env=NOTHING_SET,
    )
    path = proc.stdout.strip()
    if not path:
        pytest.skip("the openssl backend is unavailable here")
    return path


@pytest.fixture
def libcrypto_11(tmp_path: Path) -> Path:
    """A real OpenSSL 1.1 libcrypto when the system has one, else a fake one."""
    real = Path("/usr/lib/x86_64-linux-gnu/libcrypto.so.1.1")
    if real.exists():
        return real
    return _compile(tmp_path, "libcrypto.so.1.1", FAKE_11_C)


@pytest.fixture
def not_libcrypto(tmp_path: Path) -> Path:
    """A shared object that is not libcrypto: the system's libz, else one built here."""
    name = ctypes.util.find_library("z")
    if name:
        try:
            lib = ctypes.CDLL(name)
            path = loaded_library_file(ctypes.cast(lib.zlibVersion, ctypes.c_void_p).value or 0)
        except (OSError, AttributeError):
            path = None
        if path:
            return Path(path)
    return _compile(tmp_path, "libnotcrypto.so", NOT_LIBCRYPTO_C)


# -- unit checks -----------------------------------------------------------------------


def test_version_names() -> None:
    assert version_name(0x1010117F) == "OpenSSL 1.1.1w"
    assert version_name(0x1000215F) == "OpenSSL 1.0.2u"
    assert version_name(0x10100000) == "OpenSSL 1.1.0"
    assert version_name(0x30000130) == "OpenSSL 3.0.19"
    assert version_name(0x30500080) == "OpenSSL 3.5.8"
    assert version_name(0x1010117F, "OpenSSL 1.1.1w  11 Sep 2023") == "OpenSSL 1.1.1w"
    assert version_name(0x20000000, "LibreSSL 3.8.2") == "LibreSSL 3.8.2"


def test_one_variable_name_and_one_dladdr() -> None:
    from pyossl_async.testing import _cbuild

    assert _registry.ENV_LIBCRYPTO == _loader.ENV_LIBCRYPTO
    assert _cbuild.loaded_library_file is loaded_library_file


# -- the API ------------------------------------------------------------------------------


@pytest.mark.subprocess
def test_missing_file() -> None:
    out = _probe({LIB: "/nonexistent/libcrypto.so.3"})
    want = ["BackendUnavailable", f"{LIB}=/nonexistent/libcrypto.so.3: no such file"]
    assert out["default"] == want and out["openssl"] == want, out
    assert "openssl" not in out["available"]


@pytest.mark.subprocess
def test_not_a_libcrypto(not_libcrypto: Path) -> None:
    out = _probe({LIB: str(not_libcrypto)})
    want = ["BackendUnavailable", f"{LIB}={not_libcrypto}: not a libcrypto (it has no OpenSSL_version_num)"]
    assert out["default"] == want and out["openssl"] == want, out


@pytest.mark.subprocess
def test_libssl_is_not_a_libcrypto() -> None:
    """libssl finds libcrypto's functions through its dependency; the file itself is refused."""
    name = ctypes.util.find_library("ssl")
    if not name:
        pytest.skip("no libssl here")
    try:
        lib = ctypes.CDLL(name)
        path = loaded_library_file(ctypes.cast(lib.SSL_CTX_new, ctypes.c_void_p).value or 0)
    except (OSError, AttributeError):
        path = None
    if not path:
        pytest.skip("cannot tell where libssl is")
    out = _probe({LIB: path})
    kind, message = out["default"]
    assert kind == "BackendUnavailable" and message.startswith(f"{LIB}={path}: "), out
    assert "not a libcrypto" in message or "3.0+ needed" in message, out
    assert out["openssl"] == out["default"]


@pytest.mark.subprocess
def test_old_libcrypto_names_its_version(libcrypto_11: Path) -> None:
    out = _probe({LIB: str(libcrypto_11)})
    kind, message = out["default"]
    assert kind == "BackendUnavailable", out
    assert re.fullmatch(rf"{LIB}={re.escape(str(libcrypto_11))}: OpenSSL 1\.1\.1\w* found, 3\.0\+ needed", message)
    assert out["openssl"] == out["default"]


@pytest.mark.subprocess
def test_bogus_backend_variable() -> None:
    out = _probe({BACKEND: "bogus"})
    kind, message = out["default"]
    assert kind == "SettingError" and message.startswith(f"{BACKEND}=bogus: unknown backend 'bogus'"), out
    assert "openssl, python" in message
    assert out["openssl"] == out["default"]  # a setting that is not accepted is refused whatever is asked


@pytest.mark.subprocess
def test_backend_variable_wins_over_the_library() -> None:
    out = _probe({BACKEND: "python", LIB: "/nonexistent/libcrypto.so.3"})
    assert out["default"] == ["ok", "python"], out
    out = _probe({BACKEND: "openssl", LIB: "/nonexistent/libcrypto.so.3"})
    assert out["default"] == [
        "BackendUnavailable",
        f"{BACKEND}=openssl: {LIB}=/nonexistent/libcrypto.so.3: no such file",
    ], out


@pytest.mark.subprocess
def test_fallback_when_nothing_is_asked_for() -> None:
    """With neither variable set, an openssl backend that cannot load still means python."""
    proc = run_isolated(
        """
        import sys
        sys.modules["ctypes"] = None   # the openssl backend cannot be imported
        import pyossl_async as pa
        from pyossl_async import _registry
        print(pa.get_backend().name)
        print(_registry.selection_reason())
        """,
        env=NOTHING_SET,
    )
    name, reason = proc.stdout.splitlines()[:2]
    assert name == "python" and reason.startswith("fell back to python: openssl is unavailable"), proc.stdout


@pytest.mark.subprocess
def test_no_fallback_when_the_library_was_asked_for(system_libcrypto: str) -> None:
    proc = run_isolated(
        """
        import sys
        sys.modules["ctypes"] = None
        import pyossl_async as pa
        try:
            pa.get_backend()
        except pa.BackendUnavailable as exc:
            print(exc)
        """,
        env={**NOTHING_SET, LIB: system_libcrypto},
    )
    assert proc.stdout.startswith(f"{LIB}={system_libcrypto}: the openssl backend cannot be imported"), proc.stdout


SIMULATE_NO_JOBS = """
import pyossl_async._native._support as runner
from pyossl_async._native._abi import NativeUnsupported

class Unsupported:
    def __init__(self, crypto):
        raise NativeUnsupported("simulated: no job machinery here")

runner.NativeSupport = Unsupported
import pyossl_async as pa
try:
    print(pa.get_backend().name)
except pa.BackendUnavailable as exc:
    print("unavailable:", exc)
"""


@pytest.mark.subprocess
def test_a_library_that_cannot_run_jobs(system_libcrypto: str) -> None:
    """Loaded but unable to run jobs: python when nothing was asked, an error when it was."""
    assert run_isolated(SIMULATE_NO_JOBS, env=NOTHING_SET).stdout.strip() == "python"
    out = run_isolated(SIMULATE_NO_JOBS, env={**NOTHING_SET, LIB: system_libcrypto}).stdout.strip()
    assert out.startswith(f"unavailable: {LIB}={system_libcrypto}: OpenSSL "), out
    assert out.endswith("loads but cannot run jobs here: simulated: no job machinery here"), out


@pytest.mark.subprocess
def test_library_path_is_the_real_file(system_libcrypto: str, tmp_path: Path) -> None:
    link = tmp_path / "libcrypto-link.so"
    link.symlink_to(system_libcrypto)
    proc = run_isolated(
        """
        import json
        import pyossl_async as pa
        be = pa.get_backend()
        print(json.dumps([be.name, be.library_path, be.library_name, be.info()["library"]]))
        """,
        env={**NOTHING_SET, LIB: str(link)},
    )
    assert json.loads(proc.stdout) == ["openssl", system_libcrypto, str(link), system_libcrypto]
    assert os.path.realpath(system_libcrypto) == system_libcrypto


# -- the command line ---------------------------------------------------------------------


def _bad_settings(libcrypto_11: Path, not_libcrypto: Path) -> Dict[str, Tuple[Dict[str, str], str]]:
    return {
        "missing": ({LIB: "/nonexistent/libcrypto.so.3"}, f"{LIB}=/nonexistent/libcrypto.so.3: no such file"),
        "not libcrypto": ({LIB: str(not_libcrypto)}, f"{LIB}={not_libcrypto}: not a libcrypto"),
        "1.1": ({LIB: str(libcrypto_11)}, f"{LIB}={libcrypto_11}: OpenSSL 1.1.1"),
        "bogus backend": ({BACKEND: "bogus"}, f"{BACKEND}=bogus: unknown backend 'bogus'"),
    }


@pytest.mark.subprocess
@pytest.mark.parametrize("case", ["missing", "not libcrypto", "1.1", "bogus backend"])
def test_demo_refuses(case: str, libcrypto_11: Path, not_libcrypto: Path) -> None:
    env, message = _bad_settings(libcrypto_11, not_libcrypto)[case]
    proc = _cli(["demo"], env)
    _assert_refused(proc, message, status=2)
    assert proc.stderr.startswith("pyossl_async demo: ")
    assert proc.stdout == ""


@pytest.mark.subprocess
@pytest.mark.parametrize("case", ["missing", "not libcrypto", "1.1", "bogus backend"])
def test_conformance_refuses(case: str, libcrypto_11: Path, not_libcrypto: Path) -> None:
    env, message = _bad_settings(libcrypto_11, not_libcrypto)[case]
    proc = _cli(["conformance", "--no-c", "-k", "man_page_example"], env)
    _assert_refused(proc, message, status=2)
    assert proc.stdout == ""


@pytest.mark.subprocess
def test_conformance_refuses_a_named_backend_that_cannot_run() -> None:
    proc = _cli(["conformance", "--no-c", "--backend", "openssl"], {LIB: "/nonexistent/libcrypto.so.3"})
    _assert_refused(proc, f"{LIB}=/nonexistent/libcrypto.so.3: no such file", status=2)


@pytest.mark.subprocess
def test_conformance_requirements_from_the_environment() -> None:
    proc = _cli(["conformance", "--no-c"], {"PYOSSL_ASYNC_REQUIRE_BACKENDS": "openssl,gnutls"})
    _assert_refused(proc, "PYOSSL_ASYNC_REQUIRE_BACKENDS=openssl,gnutls: unknown name 'gnutls'", status=2)
    proc = _cli(
        ["conformance", "-k", "man_page_example"],
        {"PYOSSL_ASYNC_REQUIRE_BACKENDS": "python,C", "CC": "/nonexistent/cc"},
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the C twins were asked for but cannot run: no C compiler found" in proc.stdout
    assert "disagreement" not in proc.stdout and "Traceback" not in proc.stderr


@pytest.mark.subprocess
def test_commands_name_the_real_library_file(system_libcrypto: str, tmp_path: Path) -> None:
    link = tmp_path / "libcrypto-link.so"
    link.symlink_to(system_libcrypto)
    env = {LIB: str(link)}
    demo = _cli(["demo"], env)
    assert demo.returncode == 0, demo.stderr
    assert demo.stderr.startswith("pyossl_async demo: backend openssl (OpenSSL ")
    assert demo.stderr.rstrip().endswith(f", {system_libcrypto})")
    info = _cli(["info", "--json"], env)
    details = json.loads(info.stdout)["backend.openssl"]
    assert details["library"] == system_libcrypto and details["library_name"] == str(link)
    conf = _cli(["conformance", "--no-c", "-k", "man_page_example"], env)
    assert conf.returncode == 0, conf.stdout + conf.stderr
    line = next(ln for ln in conf.stdout.splitlines() if ln.startswith("  openssl "))
    assert line.endswith(f"({system_libcrypto})"), conf.stdout


@pytest.mark.subprocess
def test_demo_with_an_explicit_backend_ignores_the_library_variable() -> None:
    if "python" not in pa.available_backends():
        pytest.skip("no python backend")
    proc = _cli(["demo", "--backend", "python"], {LIB: "/nonexistent/libcrypto.so.3"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Starting...")
    assert proc.stderr == "pyossl_async demo: backend python (pure Python)\n"


@pytest.mark.subprocess
@pytest.mark.parametrize(
    "value, why",
    [("12q", "not a size; use a byte count"), ("1k", "1024 bytes is below the minimum 65536")],
)
def test_a_bad_stack_size_names_the_variable(value: str, why: str) -> None:
    """Before: ``invalid literal for int() with base 10: '12q'``, naming nothing."""
    if "openssl" not in pa.available_backends():
        pytest.skip("openssl unavailable")
    code = """
import pyossl_async as pa
try:
    pa.get_backend("openssl")
except ValueError as exc:
    print(exc)
"""
    out = run_isolated(code, env={"PYOSSL_ASYNC_STACK_SIZE": value}).stdout.strip()
    assert out.startswith(f"PYOSSL_ASYNC_STACK_SIZE={value}: ") and why in out, out
