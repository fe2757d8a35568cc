"""The command line fails early, in one line, and never with a traceback (issue 14, item 7).

Every command runs in a child process: what is checked is the exit status and
what reaches stdout and stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import pytest

import pyossl_async as pa
from pyossl_async._cli import main, plural

from .conftest import run_isolated

ROOT = Path(__file__).resolve().parents[1]
#: nothing asked for, whatever the test run inherits
CLEAN = {"PYOSSL_ASYNC_BACKEND": "", "PYOSSL_ASYNC_LIBCRYPTO": "", "PYOSSL_ASYNC_REQUIRE_BACKENDS": ""}
#: a refusal must come before any work: far less than a quick bench or a conformance run
UP_FRONT_SECONDS = 30.0


def _env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", None)
    env.update(CLEAN)
    env.update(extra or {})
    return env


def _cli(args: List[str], env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyossl_async", *args],
        capture_output=True,
        text=True,
        env=_env(env),
        cwd=str(ROOT),
        timeout=300,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- output files are checked before any work -------------------------------------------


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["bench", "conformance"])
def test_json_into_a_missing_directory_is_refused_up_front(command: str) -> None:
    t0 = time.monotonic()
    proc = _cli([command, "--json", "/nonexistent/x.json"])
    assert time.monotonic() - t0 < UP_FRONT_SECONDS
    line = _one_line_error(proc, "--json /nonexistent/x.json", "no such directory")
    assert line.startswith(f"pyossl_async {command}: ")
    assert proc.stdout == ""  # nothing was measured or run


@pytest.mark.subprocess
def test_json_onto_a_directory_is_refused(tmp_path: Path) -> None:
    proc = _cli(["bench", "--quick", "--json", str(tmp_path)])
    _one_line_error(proc, "is a directory")
    assert proc.stdout == ""


@pytest.mark.subprocess
def test_json_into_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("permissions are not enforced for this user (root)")
        proc = _cli(["conformance", "--json", str(locked / "x.json")])
        _one_line_error(proc, "cannot write there")
        assert proc.stdout == ""
    finally:
        locked.chmod(0o700)


def test_the_output_check_leaves_no_file(tmp_path: Path) -> None:
    from pyossl_async._cli import check_output_path

    target = tmp_path / "report.json"
    check_output_path("--json", str(target))
    assert not target.exists()
    target.write_text("kept")
    check_output_path("--json", str(target))
    assert target.read_text() == "kept"


@pytest.mark.subprocess
def test_plot_without_matplotlib_is_refused_up_front(tmp_path: Path) -> None:
    out = tmp_path / "plot.png"
    proc = run_isolated(
        f"""
        import sys
        sys.modules["matplotlib"] = None   # as if it were not installed
        from pyossl_async._cli import main
        sys.exit(main(["bench", "--quick", "--plot", {str(out)!r}]))
        """,
        env=CLEAN,
        check=False,
        timeout=UP_FRONT_SECONDS * 2,
    )
    line = _one_line_error(proc, "--plot needs matplotlib", "pip install 'pyossl-async[bench]'", "matplotlib")
    assert line.startswith("pyossl_async bench: ")
    assert proc.stdout == "" and not out.exists()


# -- a reader that goes away ----------------------------------------------------------------


def _into_a_closed_pipe(args: List[str]) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe nobody reads any more, as ``| head`` leaves it."""
    r, w = os.pipe()
    os.close(r)
    try:
        return subprocess.run(
            [sys.executable, "-m", "pyossl_async", *args],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
            cwd=str(ROOT),
            timeout=300,
        )
    finally:
        os.close(w)


@pytest.mark.subprocess
@pytest.mark.parametrize("args", [["info"], ["info", "--json"], ["demo"], ["demo", "--backend", "python"]])
def test_a_closed_pipe_ends_quietly(args: List[str]) -> None:
    if "--backend" in args and args[-1] not in pa.available_backends():
        pytest.skip(f"{args[-1]} unavailable")
    proc = _into_a_closed_pipe(args)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("command", ["info", "demo"])
def test_head_reads_one_line(command: str) -> None:
    """A real reader that stops after one line: whether or not the write beat it, no traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyossl_async", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
        cwd=str(ROOT),
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    status = proc.wait(timeout=300)
    assert first
    assert status in (0, 1) and "Traceback" not in err and "Exception ignored" not in err, err


# -- backend selection errors --------------------------------------------------------------


@pytest.mark.subprocess
def test_bogus_backend_variable_is_one_line() -> None:
    proc = _cli(["demo"], {"PYOSSL_ASYNC_BACKEND": "bogus"})
    _one_line_error(proc, "PYOSSL_ASYNC_BACKEND=bogus", "unknown backend 'bogus'")
    assert proc.stdout == ""


# -- plurals --------------------------------------------------------------------------------


def test_plural() -> None:
    assert plural(1, "scenario") == "1 scenario"
    assert plural(0, "disagreement") == "0 disagreements"
    assert plural(2, "disagreement") == "2 disagreements"
    assert plural(1, "match", "matches") == "1 match" and plural(3, "match", "matches") == "3 matches"


@pytest.mark.subprocess
def test_conformance_counts_read_as_english() -> None:
    proc = _cli(["conformance", "--no-c", "-k", "man_page_example"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.rstrip().splitlines()
    assert lines[0].startswith("pyossl-async conformance: 1 scenario, ")
    assert lines[-1] == "1 scenario, 0 disagreements"


@pytest.mark.subprocess
def test_one_disagreement_is_singular() -> None:
    names = pa.available_backends()
    if not {"openssl", "python"} <= set(names):
        pytest.skip("needs both backends")
    proc = _cli(
        ["conformance", "--no-c"],
        {
            "PYOSSL_ASYNC_CONFORMANCE_CATALOGUE": "tests.conformance_fake:disagreeing",
            "PYOSSL_ASYNC_CONFORMANCE_EXAMPLES": "0",
        },
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "2 scenarios, 1 disagreement"


# -- help reads as plain text -----------------------------------------------------------------


@pytest.mark.parametrize("command", [[], ["demo"], ["info"], ["conformance"], ["bench"]])
def test_help_is_plain_text(command: List[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: python -m pyossl_async")
    assert "``" not in text and ":func:" not in text, text


@pytest.mark.subprocess
def test_help_from_the_command_line() -> None:
    proc = _cli(["--help"])
    assert proc.returncode == 0 and "``" not in proc.stdout
    assert "demo" in proc.stdout and "conformance" in proc.stdout
    proc = _cli(["bench", "--help"])
    assert proc.returncode == 0 and "``" not in proc.stdout and "--plot" in proc.stdout
