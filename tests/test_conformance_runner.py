"""The conformance runner itself: it must be able to fail, and fail clearly.

Fake catalogues (``tests/conformance_fake.py``) give the runner scenarios that
disagree, crash, hang or have broken C twins; these tests check the table, the
summary line, the exit status, ``--no-c``, ``--json`` and the twin cache.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pyossl_async.testing.conformance import Scenario, compare_traces, ctwins, format_diff, runner
from pyossl_async.testing.conformance.report import Outcome, Row, judge
from pyossl_async.testing.conformance.suite import load_catalogue

from . import conformance_fake as fake
from .conftest import load_backend

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Fake twins in a temporary directory, and a private binary cache."""
    (tmp_path / "agreeing.c").write_text(fake.AGREEING_C)
    (tmp_path / "broken.c").write_text(fake.BROKEN_C)
    monkeypatch.setenv(fake.ENV_DIR, str(tmp_path))
    monkeypatch.setenv("PYOSSL_ASYNC_CONFORMANCE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYOSSL_ASYNC_CONFORMANCE_EXAMPLES", "0")  # the random test has its own tests
    return tmp_path


@pytest.fixture(scope="module")
def both() -> None:
    load_backend("openssl")
    load_backend("python")


@pytest.fixture(scope="module")
def toolchain() -> ctwins.Toolchain:
    import pyossl_async as pa

    tc, why = ctwins.find_toolchain(ctwins.backend_library(load_backend("openssl")))
    if tc is None:
        pytest.skip(f"no C toolchain here: {why}")
    assert pa.get_backend("openssl").openssl_version
    return tc


def _detail(out: str, head: str) -> str:
    """The lines of the report's disagreements section about ``head`` (``"name [column]"``)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {head}: "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return "\n".join(lines[start:end])


def _run(catalogue: str, **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    status = runner.run(load_catalogue(f"tests.conformance_fake:{catalogue}"), out=out, **kw)
    return status, out.getvalue()


# -- comparing traces ---------------------------------------------------------------


def test_compare_reports_the_first_difference() -> None:
    assert compare_traces(["a", "b"], ["a", "b"]) == (None, [])
    diff, _ = compare_traces(["a", "b", "c"], ["a", "x", "y"])
    assert diff is not None and (diff.index, diff.want, diff.got) == (1, "b", "x")
    assert "line 2" in diff.describe()
    missing, _ = compare_traces(["a", "b"], ["a"])
    assert missing is not None and missing.got is None and "missing" in missing.describe()
    extra, _ = compare_traces(["a"], ["a", "b"])
    assert extra is not None and extra.want is None and "extra" in extra.describe()


def test_format_diff_is_a_unified_diff() -> None:
    assert format_diff(["a", "b"], ["a", "b"]) == ""
    text = format_diff(["a", "b", "c"], ["a", "x", "c"], "C", "python")
    assert text.splitlines() == ["--- C", "+++ python", "@@ -1,3 +1,3 @@", " a", "-b", "+x", " c"]


def test_version_lines_are_tolerated_only_where_allowed() -> None:
    want = ["x", "~ init_thread(2147483648, 0) -> 0", "y"]
    got = ["x", "~ init_thread(2147483648, 0) -> 1", "y"]
    diff, tolerated = compare_traces(want, got, version_tolerant=True)
    assert diff is None and [t.index for t in tolerated] == [1]
    # strict comparison (C against openssl): a difference like any other
    diff, _ = compare_traces(want, got)
    assert diff is not None and diff.index == 1
    # the call text must still agree, and unmarked lines get no tolerance
    diff, _ = compare_traces(want, ["x", "~ init_thread(1, 0) -> 0", "y"], version_tolerant=True)
    assert diff is not None
    diff, _ = compare_traces(["a -> 0"], ["a -> 1"], version_tolerant=True)
    assert diff is not None


def _row(outcomes: Dict[str, Outcome]) -> Row:
    s = Scenario("s", lambda be: [], "doc", "g", "s.c", "")
    row = Row(s, outcomes)
    judge(row, ["C", "openssl", "python"])
    return row


def test_judge_uses_c_as_reference_and_notes_version_lines() -> None:
    c = ["a", "~ v -> 0"]
    row = _row({"C": Outcome(c), "openssl": Outcome(list(c)), "python": Outcome(["a", "~ v -> 1"])})
    assert row.reference == "C" and row.agree
    assert row.cells["python"].text == "match*" and row.notes
    # the openssl backend runs the same library as C: no tolerance for it
    row = _row({"C": Outcome(c), "openssl": Outcome(["a", "~ v -> 1"]), "python": Outcome(list(c))})
    assert not row.agree and row.cells["openssl"].text.startswith("L2:")


def test_judge_without_c_compares_the_backends() -> None:
    row = _row({"C": Outcome(absent="-"), "openssl": Outcome(["a", "b"]), "python": Outcome(["a", "c"])})
    assert row.reference == "openssl" and not row.agree
    assert row.cells["C"].text == "-" and row.cells["openssl"].text == "match"
    assert row.cells["python"].text == "L2: c" and "want 'b'" in row.cells["python"].detail
    assert "\n-b\n+c" in row.cells["python"].detail  # the diff against the reference


def test_judge_shows_the_tracebacks_a_disagreeing_trace_recorded() -> None:
    raised = {"line": 2, "text": "start j -> raises ValueError: x", "traceback": "Traceback ...\nValueError: x"}
    row = _row(
        {
            "C": Outcome(["a", "start j -> FINISH 1"]),
            "openssl": Outcome(["a", "start j -> raises ValueError: x"], exceptions=[raised]),
            "python": Outcome(["a", "start j -> FINISH 1"]),
        }
    )
    detail = row.cells["openssl"].detail
    assert "[openssl] trace line 2 recorded an exception: start j -> raises ValueError: x" in detail
    assert "    Traceback ...\n    ValueError: x" in detail


def test_judge_counts_errors_as_disagreements() -> None:
    row = _row({"C": Outcome([], "crashed (SIGSEGV)"), "openssl": Outcome(["a"]), "python": Outcome(["a"])})
    assert not row.agree and row.cells["C"].text == "ERROR: crashed (SIGSEGV)"
    assert row.reference == "openssl"


# -- whole runs with fake catalogues ---------------------------------------------------------


@pytest.mark.subprocess
def test_a_disagreement_fails_the_run(both: None, fake_dir: Path) -> None:
    status, out = _run("disagreeing", c=False)
    assert status == 1
    lines = out.rstrip().splitlines()
    assert lines[-1] == "2 scenarios, 1 disagreement"
    row = next(line for line in lines if line.startswith("disagreeing "))
    assert "L2: backend is python" in row
    assert "python vs openssl: line 2: got 'backend is python', want 'backend is openssl'" in out


@pytest.mark.subprocess
def test_a_disagreement_shows_a_diff(both: None, fake_dir: Path) -> None:
    _, out = _run("disagreeing", c=False)
    details = out[out.index("disagreements:") :]
    assert "    --- openssl\n    +++ python\n    @@ -1,3 +1,3 @@\n" in details
    assert "    -backend is openssl\n    +backend is python\n" in details


@pytest.mark.subprocess
def test_the_cli_exits_non_zero_on_a_disagreement(both: None, fake_dir: Path) -> None:
    env = dict(os.environ, PYOSSL_ASYNC_CONFORMANCE_CATALOGUE="tests.conformance_fake:disagreeing")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    proc = subprocess.run(
        [sys.executable, "-m", "pyossl_async", "conformance", "--no-c"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "2 scenarios, 1 disagreement"
    assert "\r" not in proc.stderr  # no progress line when stderr is not a terminal


@pytest.mark.subprocess
def test_agreement_with_a_c_twin(both: None, fake_dir: Path, toolchain: ctwins.Toolchain) -> None:
    status, out = _run("agreeing")
    assert status == 0, out
    row = next(line for line in out.splitlines() if line.startswith("agreeing "))
    assert row.split()[1:] == ["match", "match", "match"]
    assert out.rstrip().splitlines()[-1] == "1 scenario, 0 disagreements"
    assert "1 compiled, 0 cached" in out
    status, out = _run("agreeing")
    assert status == 0 and "0 compiled, 1 cached" in out


@pytest.mark.subprocess
def test_no_c_skips_the_twins(both: None, fake_dir: Path) -> None:
    status, out = _run("agreeing", c=False)
    assert status == 0
    assert "C        not run: off (--no-c); comparing the backends with each other only" in out
    row = next(line for line in out.splitlines() if line.startswith("agreeing "))
    assert row.split()[1:] == ["off", "match", "match"]
    assert not (fake_dir / "cache").exists()  # nothing was compiled


@pytest.mark.subprocess
def test_no_compiler_compares_backends_only(both: None, fake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    status, out = _run("agreeing")
    assert status == 0
    assert "not run: no C compiler found" in out and "comparing the backends with each other only" in out


def test_no_openssl_headers_is_explained(toolchain: ctwins.Toolchain, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CFLAGS", "-nostdinc")  # the compiler finds no headers at all
    tc, why = ctwins.find_toolchain(toolchain.libcrypto)
    assert tc is None
    assert why.startswith("cannot build against OpenSSL with ") and "headers or libcrypto missing" in why


@pytest.mark.subprocess
def test_a_broken_twin_is_a_disagreement(both: None, fake_dir: Path, toolchain: ctwins.Toolchain) -> None:
    status, out = _run("broken_twin")
    assert status == 1
    row = next(line for line in out.splitlines() if line.startswith("broken_twin "))
    assert "ERROR: compile error" in row
    assert "this is not C" in out  # the compiler's message is shown
    assert out.rstrip().endswith("2 scenarios, 1 disagreement")


@pytest.mark.subprocess
def test_json_output(both: None, fake_dir: Path, toolchain: ctwins.Toolchain) -> None:
    path = fake_dir / "out.json"
    status, _ = _run("broken_twin", json_path=str(path))
    doc = json.loads(path.read_text())
    assert status == 1
    assert doc["summary"]["scenarios"] == 2 and doc["summary"]["disagreements"] == 1
    assert doc["columns"] == ["C", "openssl", "python"]
    good, bad = doc["scenarios"]
    assert good["agree"] and good["reference"] == "C"
    assert (
        good["traces"]["C"]
        == good["traces"]["python"]
        == ["ctx = WAIT_CTX_new", "set_status(ctx, 5) -> 1", "get_status(ctx) -> 5", "WAIT_CTX_free(ctx)"]
    )
    assert not bad["agree"] and "compile error" in bad["errors"]["C"]
    assert doc["c"]["available"] and doc["c"]["libcrypto_version"]


@pytest.mark.subprocess
def test_crashes_errors_and_leaks_are_failed_rows(both: None, fake_dir: Path) -> None:
    status, out = _run("crashing", c=False)
    assert status == 1
    names = ("before", "crashing", "after", "raising", "leaves_paused_job", "last")
    rows = {line.split()[0]: line for line in out.splitlines() if line.split(" ", 1)[0] in names}
    assert "ERROR: the worker crashed (signal 11)" in rows["crashing"]
    assert "ERROR: scenario raised RuntimeError" in rows["raising"]  # cells are cut to width...
    assert "raising [python]: scenario raised RuntimeError: a scenario bug" in out  # ...details are not
    raising = _detail(out, "raising [python]")
    assert "\n    Traceback (most recent call last):\n" in raising  # with the traceback, from the scenario on
    assert 'conformance_fake.py", line ' in raising and "in _raising" in raising
    assert "_worker.py" not in raising
    assert "ERROR: scenario left state behind" in rows["leaves_paused_job"]
    assert "leaves_paused_job [openssl]: scenario left state behind: JobStateError" in out
    for name in ("before", "after", "last"):  # a fresh worker carried on after the crash
        assert rows[name].split()[1:] == ["-", "match", "match"]
    assert "Fatal Python error" in out  # faulthandler's native traceback is reported
    assert out.rstrip().endswith("6 scenarios, 3 disagreements")


@pytest.mark.subprocess
def test_a_recorded_exception_shows_its_traceback(both: None, fake_dir: Path) -> None:
    path = fake_dir / "out.json"
    status, out = _run("recorded_exception", c=False, json_path=str(path))
    assert status == 1
    detail = _detail(out, "raises_on_python [python]")
    assert "    +start j -> raises ValueError: only on python\n" in detail
    assert "    [python] trace line 1 recorded an exception: start j -> raises ValueError: only on python\n" in detail
    assert "        Traceback (most recent call last):\n" in detail
    assert "frames in pyossl_async ...\n" in detail and ", in job\n" in detail  # the package's frames folded
    assert detail.rstrip().endswith("        ValueError: only on python")
    (row,) = json.loads(path.read_text())["scenarios"]
    (found,) = row["exceptions"]["python"]
    assert found["line"] == 1 and found["text"] == "start j -> raises ValueError: only on python"
    assert found["traceback"].startswith("Traceback (most recent call last):\n")
    assert "openssl" not in row["exceptions"]


@pytest.mark.subprocess
def test_a_hanging_scenario_times_out(both: None, fake_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "SCENARIO_TIMEOUT", 3.0)
    status, out = _run("hanging", c=False, backends=["python"])
    assert status == 1
    assert "ERROR: timed out after 3 s" in out
    row = next(line for line in out.splitlines() if line.startswith("after "))
    assert row.split()[1:] == ["-", "match"]


def test_unknown_selection_and_backend(both: None, fake_dir: Path) -> None:
    status, out = _run("agreeing", select="nothing-matches")
    assert status == 2 and out == "conformance: no scenario name contains 'nothing-matches'\n"


# -- the C twin cache ------------------------------------------------------------------


def test_twin_cache_reuses_and_rebuilds(tmp_path: Path, toolchain: ctwins.Toolchain) -> None:
    tc = ctwins.Toolchain(toolchain.cc, toolchain.cc_version, [], [], toolchain.libcrypto, str(tmp_path / "cache"))
    src = tmp_path / "twin.c"
    src.write_text(fake.AGREEING_C)
    first = ctwins.compile_twin(tc, str(src))
    assert first.binary is not None and not first.cached
    assert str(tmp_path / "cache") in first.binary  # outside the source tree
    again = ctwins.compile_twin(tc, str(src))
    assert again.cached and again.binary == first.binary
    src.write_text(fake.AGREEING_C.replace("5", "6"))
    changed = ctwins.compile_twin(tc, str(src))
    assert not changed.cached and changed.binary != first.binary
    assert ctwins.run_twin(changed.binary or "").lines[1] == "set_status(ctx, 6) -> 1"
    flags = ctwins.Toolchain(tc.cc, tc.cc_version, ["-DSOMETHING"], [], tc.libcrypto, tc.cache_dir)
    assert ctwins.compile_twin(flags, str(src)).binary != changed.binary  # flags are part of the key
    run = ctwins.run_twin(first.binary)
    assert run.error == "" and run.libcrypto_version.startswith("OpenSSL 3.")


def test_twin_compile_failure_and_missing_source(tmp_path: Path, toolchain: ctwins.Toolchain) -> None:
    tc = ctwins.Toolchain(toolchain.cc, toolchain.cc_version, [], [], toolchain.libcrypto, str(tmp_path / "cache"))
    src = tmp_path / "broken.c"
    src.write_text(fake.BROKEN_C)
    result = ctwins.compile_twin(tc, str(src))
    assert result.binary is None and result.error.startswith("compile error")
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no half-built binary cached
    missing = ctwins.compile_twin(tc, str(tmp_path / "absent.c"))
    assert missing.binary is None and "missing" in missing.error


def test_twin_crash_is_reported(tmp_path: Path, toolchain: ctwins.Toolchain) -> None:
    tc = ctwins.Toolchain(toolchain.cc, toolchain.cc_version, [], [], toolchain.libcrypto, str(tmp_path / "cache"))
    src = tmp_path / "crash.c"
    src.write_text('#include "trace.h"\n#include <signal.h>\nint main(void) { T("x"); raise(SIGSEGV); return 0; }\n')
    built = ctwins.compile_twin(tc, str(src))
    assert built.binary is not None
    run = ctwins.run_twin(built.binary)
    assert run.lines == ["x"] and run.error == "crashed (SIGSEGV)"


def test_toolchain_links_the_backends_library(toolchain: ctwins.Toolchain) -> None:
    import pyossl_async as pa

    be = pa.get_backend("openssl")
    assert toolchain.libcrypto == ctwins.backend_library(be) == os.path.realpath(be.library_path)  # type: ignore[attr-defined]
    assert toolchain.libcrypto in toolchain.link_args()
    cache = ctwins.cache_root()
    assert not os.path.abspath(cache).startswith(str(ROOT) + os.sep)


# -- finding the suite -------------------------------------------------------------------


def _cli(
    args: List[str], env: Optional[Dict[str, str]] = None, pythonpath: Optional[str] = None
) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full.pop("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", None)
    full["PYTHONPATH"] = pythonpath or str(ROOT / "src")
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pyossl_async", *args], capture_output=True, text=True, env=full, cwd="/", timeout=300
    )


@pytest.mark.subprocess
def test_found_from_the_source_tree(both: None) -> None:
    proc = _cli(["conformance", "--no-c", "-k", "asynctest_is_capable"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "1 scenario, 0 disagreements"


@pytest.mark.subprocess
def test_a_missing_builtin_suite_is_explained(tmp_path: Path) -> None:
    # the package without the suite it is built with (neither installed nor next to a checkout's src/)
    import shutil

    shutil.copytree(ROOT / "src" / "pyossl_async", tmp_path / "site" / "pyossl_async")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"))
    env.pop("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", None)
    proc = subprocess.run(  # -S: no site-packages, so no editable install maps the suite in either
        [sys.executable, "-S", "-m", "pyossl_async", "conformance", "--no-c"],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(tmp_path),
        timeout=300,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert "the built-in conformance suite is not installed (pyossl_async._suite is missing)" in proc.stderr
    assert "Traceback" not in proc.stderr
