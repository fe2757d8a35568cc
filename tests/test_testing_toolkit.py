"""pyossl_async.testing: leak checks, pause recordings, C programs, strategies, the pytest plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pyossl_async as pa
from pyossl_async import testing
from pyossl_async.testing.strategies import fd_scripts

from .conftest import load_backend

ROOT = Path(__file__).resolve().parent.parent


# -- leak checks ---------------------------------------------------------------------


def test_paused_jobs_and_open_contexts_are_counted_and_cleaned_up(backend: pa.Backend) -> None:
    before = testing.snapshot(backend)
    ctx = backend.WaitCtx()
    _, job, _ = backend.start_job(None, ctx, lambda a: int(backend.pause_job()))
    assert testing.paused_jobs(backend) == [job]
    assert ctx in testing.open_contexts(backend)
    left = testing.clean_up(before)
    assert (left.paused_jobs, left.open_contexts, left.problems) == (1, 1, [])
    assert str(left) == f"left behind on the {backend.name} backend: 1 paused job(s), 1 open WaitCtx(s)"
    assert job.state == "finished" and ctx.closed
    assert not testing.clean_up(testing.snapshot(backend))  # nothing left now


def test_contexts_open_before_the_snapshot_are_not_leftovers(backend: pa.Backend) -> None:
    with backend.WaitCtx() as earlier:
        left = testing.clean_up(testing.snapshot(backend))
        assert not left and not earlier.closed


def test_error_queue(openssl: pa.Backend) -> None:
    crypto: Any = openssl.crypto
    assert testing.drain_error_queue(openssl) == ()
    crypto.ASYNC_init_thread(1, 5)  # init_size > max_size: ASYNC_R_INVALID_POOL_SIZE
    errors = testing.drain_error_queue(openssl)
    assert len(errors) == 1 and "invalid pool size" in errors[0].text
    assert testing.drain_error_queue(load_backend("python")) == ()


# -- recordings ------------------------------------------------------------------------

SCRIPT = ["set a", "pause", "set b", "clear a", "pause", "set c", "clear c", "pause", "clear b"]
EXPECTED = [
    "PAUSE   job=paused   fds=[a] added=[a] deleted=[] status=UNSUPPORTED callback=no",
    "PAUSE   job=paused   fds=[b] added=[b] deleted=[a] status=UNSUPPORTED callback=no",
    "PAUSE   job=paused   fds=[b] added=[] deleted=[] status=UNSUPPORTED callback=no",
    "FINISH  job=finished fds=[] added=[] deleted=[b] status=UNSUPPORTED callback=no",
    "result 3",
]


def test_run_fd_script_records_what_the_application_sees(backend: pa.Backend) -> None:
    assert testing.run_fd_script(backend, SCRIPT).lines() == EXPECTED


def test_record_pauses_keeps_the_jobs_exception(backend: pa.Backend) -> None:
    def job(arg: Any) -> int:
        backend.pause_job()
        raise ValueError("boom")

    trace = testing.record_pauses(backend, job)
    assert [s.status for s in trace] == ["PAUSE"]
    assert isinstance(trace.exception, ValueError)
    assert trace.lines()[-1] == "raised ValueError: boom"


def test_diff_traces_is_readable(backend: pa.Backend) -> None:
    actual = testing.run_fd_script(backend, SCRIPT)
    assert testing.diff_traces(EXPECTED, actual) == ""
    wrong = list(EXPECTED)
    wrong[1] = wrong[1].replace("deleted=[a]", "deleted=[]")
    diff = testing.diff_traces(wrong, actual)
    assert "-PAUSE   job=paused   fds=[b] added=[b] deleted=[] " in diff
    assert "+PAUSE   job=paused   fds=[b] added=[b] deleted=[a] " in diff
    with pytest.raises(AssertionError, match="the traces differ"):
        testing.assert_traces_equal(wrong, actual)


def test_bad_script_steps() -> None:
    for bad in ("jump a", "pause a", "set", "poke"):
        with pytest.raises(ValueError, match="unknown script step"):
            testing.script_steps([bad])


@settings(max_examples=60)
@given(script=fd_scripts())
def test_backends_agree_on_any_fd_script(script: List[str]) -> None:
    openssl, python = load_backend("openssl"), load_backend("python")
    testing.assert_traces_equal(
        testing.run_fd_script(openssl, script), testing.run_fd_script(python, script), ("openssl", "python")
    )


@given(st.data())
def test_fd_scripts_only_make_known_steps(data: st.DataObject) -> None:
    script = data.draw(fd_scripts(("x",), min_steps=1, max_steps=4))
    assert 1 <= len(script) <= 4
    assert testing.script_steps(script)


# -- C programs --------------------------------------------------------------------------


def _toolchain_or_skip(openssl: pa.Backend) -> None:
    from pyossl_async.testing._cprograms import toolchain_for

    try:
        toolchain_for(openssl)
    except testing.ToolchainUnavailable as exc:
        pytest.skip(f"no C toolchain here: {exc}")


def test_compile_and_run_a_c_program_against_the_backends_libcrypto(openssl: pa.Backend, tmp_path: Path) -> None:
    _toolchain_or_skip(openssl)
    source = tmp_path / "version.c"
    source.write_text(
        "#include <stdio.h>\n#include <openssl/crypto.h>\n"
        "int main(void) { puts(OpenSSL_version(OPENSSL_VERSION)); return 0; }\n"
    )
    binary = testing.compile_c([str(source)])
    proc = testing.run_c(binary)
    assert proc.returncode == 0 and proc.stdout.strip() == openssl.openssl_version
    assert testing.backend_libcrypto(openssl) == openssl.library_path


def test_a_c_program_that_does_not_compile(openssl: pa.Backend, tmp_path: Path) -> None:
    _toolchain_or_skip(openssl)
    source = tmp_path / "broken.c"
    source.write_text("int main(void) { return undeclared; }\n")
    with pytest.raises(pa.AsyncError, match="undeclared"):
        testing.compile_c([str(source)])
    with pytest.raises(ValueError):
        testing.compile_c([])


def test_c_programs_need_the_openssl_backend() -> None:
    with pytest.raises(testing.ToolchainUnavailable, match="openssl backend"):
        testing.backend_libcrypto(load_backend("python"))


# -- the pytest plugin (in a child pytest) ------------------------------------------------

USER_TESTS = """
import pytest
import pyossl_async as pa

def test_runs_per_backend(pyossl_backend, pyossl_wait_ctx):
    _, job, _ = pyossl_backend.start_job(None, pyossl_wait_ctx, lambda a: int(pyossl_backend.pause_job()))
    assert pyossl_backend.start_job(job, None, None)[0] == pa.FINISH

@pytest.mark.pyossl_backends("python")
def test_only_python(pyossl_backend):
    assert pyossl_backend.name == "python"

KEPT = []

def test_leaves_a_paused_job(pyossl_backend, pyossl_wait_ctx):
    KEPT.append(pyossl_backend.start_job(None, pyossl_wait_ctx, lambda a: int(pyossl_backend.pause_job()))[1])
"""


def _pytest(tmp_path: Path, *args: str, env: Any = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_user.py").write_text(textwrap.dedent(USER_TESTS))
    full_env = dict(os.environ)
    full_env.pop("PYOSSL_ASYNC_REQUIRE_BACKENDS", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", *args, str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=full_env, timeout=300,
    )


@pytest.mark.subprocess
def test_plugin_fixtures_marker_and_leftover_check(tmp_path: Path) -> None:
    proc = _pytest(tmp_path)
    out = proc.stdout
    assert "PASSED test_user.py::test_runs_per_backend[openssl]" in out
    assert "PASSED test_user.py::test_runs_per_backend[python]" in out
    assert "PASSED test_user.py::test_only_python[python]" in out and "test_only_python[openssl]" not in out
    # the job it left paused fails it, on each backend, at teardown
    assert "ERROR test_user.py::test_leaves_a_paused_job[openssl]" in out
    assert "left behind on the python backend: 1 paused job(s)" in out
    assert "pyossl_async backend openssl: capable=True" in out  # the report header


@pytest.mark.subprocess
def test_plugin_backend_selection_and_requirement(tmp_path: Path) -> None:
    proc = _pytest(tmp_path, "--pyossl-backend", "python", "-k", "runs_per_backend")
    assert "1 passed" in proc.stdout and "[openssl]" not in proc.stdout
    missing = {"PYOSSL_ASYNC_LIBCRYPTO": str(tmp_path / "no-such-libcrypto.so")}
    proc = _pytest(tmp_path, "-k", "runs_per_backend", env=missing)
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout
    proc = _pytest(tmp_path, "-k", "runs_per_backend", "--pyossl-require", "openssl", env=missing)
    assert "required backend 'openssl' is unavailable" in proc.stdout and proc.returncode != 0
    proc = _pytest(tmp_path, "--pyossl-backend", "bogus")
    assert proc.returncode != 0 and "unknown pyossl-async backend 'bogus'" in proc.stderr


@pytest.mark.subprocess
def test_plugin_leaves_the_c_twins_requirement_to_the_conformance_command(tmp_path: Path) -> None:
    """``PYOSSL_ASYNC_REQUIRE_BACKENDS=openssl,python,C`` (one setting for tests and
    conformance in CI) works; ``C`` on the command line is still refused."""
    proc = _pytest(tmp_path, "-k", "runs_per_backend", env={"PYOSSL_ASYNC_REQUIRE_BACKENDS": "python,C"})
    assert proc.returncode == 0 and "2 passed" in proc.stdout, proc.stdout + proc.stderr
    proc = _pytest(tmp_path, "--pyossl-require", "C")
    assert proc.returncode != 0 and "unknown pyossl-async backend 'C'" in proc.stderr



#: test modules with a bad marker each (a collection error stops at a module's first one)
BAD_MARKERS = {
    "test_misspelt.py": '@pytest.mark.pyossl_backends("opensll")\ndef test_misspelt(pyossl_backend):\n    pass\n',
    "test_no_name.py": "@pytest.mark.pyossl_backends()\ndef test_no_name(pyossl_backend):\n    pass\n",
    "test_no_fixture.py": '@pytest.mark.pyossl_backends("pyhton")\ndef test_no_fixture():\n    pass\n',
    "test_right.py": '@pytest.mark.pyossl_backends("python")\ndef test_right(pyossl_backend):\n    pass\n',
}


@pytest.mark.subprocess
def test_an_unknown_backend_in_the_marker_is_a_collection_error(tmp_path: Path) -> None:
    """``pyossl_backends("opensll")`` used to leave an empty parameter set: SKIPPED, silently."""
    for name, body in BAD_MARKERS.items():
        (tmp_path / name).write_text("import pytest\n\n" + body)
    full_env = dict(os.environ)
    full_env.pop("PYOSSL_ASYNC_REQUIRE_BACKENDS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--continue-on-collection-errors", "-rA",
         str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=full_env, timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 1, out + proc.stderr
    errors = {line.split(" - ", 1)[0] for line in out.splitlines() if line.startswith("ERROR ")}
    assert errors == {"ERROR test_misspelt.py", "ERROR test_no_name.py", "ERROR test_no_fixture.py"}, out
    assert "unknown pyossl-async backend 'opensll'; choose from openssl, python" in out, out
    assert "unknown pyossl-async backend 'pyhton'" in out, out  # checked even where the fixture is not used
    assert "takes backend names, at least one" in out, out
    assert "PASSED test_right.py::test_right[python]" in out, out
    assert "empty parameter set" not in out and "Traceback" not in out, out
