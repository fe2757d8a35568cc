"""``python -m pyossl_async conformance --scenarios PATH``: a folder of the user's own scenarios.

The folder (``conformance_fake.write_user_suite``) holds ``status.py`` with three
scenarios and their twins in ``PATH/c/``: one that agrees, one whose twin sets
another status (a disagreement), one with a typo inside its job (an error, shown
with its traceback in the terminal and in ``--json``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from pyossl_async.testing.conformance import ctwins, load_folder, run_suite

from .conformance_fake import write_user_suite
from .conftest import load_backend

ROOT = Path(__file__).resolve().parent.parent
TYPO = "AttributeError: 'Trace' object has no attribute 'set_stauts'"

Run = Tuple["subprocess.CompletedProcess[str]", Dict[str, Any]]


@pytest.fixture(scope="module")
def both() -> None:
    load_backend("openssl")
    load_backend("python")


@pytest.fixture(scope="module")
def toolchain(both: None) -> ctwins.Toolchain:
    tc, why = ctwins.find_toolchain(ctwins.backend_library(load_backend("openssl")))
    if tc is None:
        pytest.skip(f"no C toolchain here: {why}")
    return tc


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(write_user_suite(str(tmp_path_factory.mktemp("user") / "my_scenarios")))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("twin-cache")


def _cli(args: List[str], cache: Path, cwd: Optional[Path] = None) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYOSSL_ASYNC_CONFORMANCE_CACHE=str(cache))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    for name in ("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", "PYOSSL_ASYNC_BACKEND", "PYOSSL_ASYNC_LIBCRYPTO"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "pyossl_async", "conformance", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(cwd or "/"),
        timeout=300,
    )


@pytest.fixture(scope="module")
def full_run(user_dir: Path, cache: Path, toolchain: ctwins.Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One CLI run over the whole folder, with --json."""
    path = tmp_path_factory.mktemp("json") / "report.json"
    proc = _cli(["--scenarios", str(user_dir), "--json", str(path)], cache)
    assert path.exists(), proc.stdout + proc.stderr
    return proc, json.loads(path.read_text())


def _rows(stdout: str) -> Dict[str, str]:
    return {line.split()[0]: line for line in stdout.splitlines() if line.startswith("status_")}


def _detail(out: str, head: str) -> str:
    """The lines of the report's disagreements section about ``head`` (``"name [column]"``)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {head}: "))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("    ")), len(lines))
    return "\n".join(lines[start:end])


@pytest.mark.subprocess
def test_the_table(full_run: Run, user_dir: Path) -> None:
    proc, _ = full_run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert out.startswith("pyossl-async conformance: 3 scenarios, 3 with a C twin\n")
    assert f"  suite    {user_dir} (C twins in {user_dir / 'c'})\n" in out
    assert "twins: 3 compiled, 0 cached" in out
    rows = _rows(out)
    assert list(rows) == ["status_survives_resume", "status_after_finish", "status_typo"]  # source order
    assert rows["status_survives_resume"].split()[1:] == ["match", "match", "match"]
    assert rows["status_after_finish"].split()[1:] == ["match", *["L2:", "j:", "set_status(ctx,", "1)", "->", "1"] * 2]
    assert rows["status_typo"].split()[1] == "match"
    assert rows["status_typo"].count("ERROR: scenario raised AttributeError") == 2
    assert "random differential" not in out  # it is about the backends, not about these scenarios
    assert out.rstrip().splitlines()[-1] == "3 scenarios, 2 disagreements"
    assert "Traceback" not in proc.stderr


@pytest.mark.subprocess
def test_a_disagreement_shows_the_first_line_and_a_diff(full_run: Run) -> None:
    out = full_run[0].stdout
    detail = _detail(out, "status_after_finish [python]")
    assert detail.splitlines()[0] == (
        "  status_after_finish [python]: python vs C: line 2: "
        "got '  j: set_status(ctx, 1) -> 1', want '  j: set_status(ctx, 2) -> 1'"
    )
    assert "    --- C\n    +++ python\n" in detail
    assert "\n    -  j: set_status(ctx, 2) -> 1\n    +  j: set_status(ctx, 1) -> 1\n" in detail
    assert "\n    -get_status(ctx) -> 2\n    +get_status(ctx) -> 1\n" in detail
    assert _detail(out, "status_after_finish [openssl]")  # both backends depart from C alike


@pytest.mark.subprocess
def test_an_exception_in_a_scenario_shows_its_traceback(full_run: Run, user_dir: Path) -> None:
    out = full_run[0].stdout
    for column in ("openssl", "python"):
        detail = _detail(out, f"status_typo [{column}]")
        assert detail.splitlines()[0] == f"  status_typo [{column}]: scenario raised {TYPO}"
        assert "\n    Traceback (most recent call last):\n" in detail
        assert f'File "{user_dir / "status.py"}", line ' in detail and ", in job\n" in detail
        assert 't.set_stauts(t.own_ctx(), pa.WaitStatus.OK, who="j")' in detail
        assert detail.rstrip().splitlines()[-1].startswith("    " + TYPO)  # 3.12+ adds "Did you mean..."


@pytest.mark.subprocess
def test_the_json_report(full_run: Run, user_dir: Path) -> None:
    doc = full_run[1]
    assert doc["suite"] == {"title": str(user_dir), "kind": "folder", "c_dir": str(user_dir / "c")}
    assert doc["summary"]["scenarios"] == 3 and doc["summary"]["disagreements"] == 2
    assert doc["differential"] == {}
    by_name = {s["name"]: s for s in doc["scenarios"]}
    good, bad, typo = by_name["status_survives_resume"], by_name["status_after_finish"], by_name["status_typo"]
    assert good["agree"] and good["twin_path"] == str(user_dir / "c" / "status_survives_resume.c")
    assert good["traces"]["C"] == good["traces"]["openssl"] == good["traces"]["python"]
    assert "  j: get_status(ctx) -> 3" in good["traces"]["C"]  # the status survived the resume
    assert not bad["agree"] and bad["reference"] == "C"
    assert bad["cells"]["python"]["detail"].startswith("python vs C: line 2: ")
    assert "\n-  j: set_status(ctx, 2) -> 1\n+  j: set_status(ctx, 1) -> 1\n" in bad["cells"]["python"]["detail"]
    assert not typo["agree"] and typo["cells"]["C"]["ok"]
    for column in ("openssl", "python"):
        error = typo["errors"][column]
        assert error.startswith(f"scenario raised {TYPO}\nTraceback (most recent call last):\n")
        assert f'File "{user_dir / "status.py"}", line ' in error
        assert error.rstrip().splitlines()[-1].startswith(TYPO)


@pytest.mark.subprocess
def test_select_within_the_folder(user_dir: Path, cache: Path, toolchain: ctwins.Toolchain) -> None:
    proc = _cli(["--scenarios", str(user_dir), "-k", "survives"], cache)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.rstrip().splitlines()[-1] == "1 scenario, 0 disagreements"


@pytest.mark.subprocess
def test_a_relative_path_from_the_current_directory(user_dir: Path, cache: Path, both: None) -> None:
    proc = _cli(["--scenarios", user_dir.name, "--no-c", "-k", "survives"], cache, cwd=user_dir.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"  suite    {user_dir} (C twins in {user_dir / 'c'})" in proc.stdout


@pytest.mark.subprocess
def test_a_folder_that_cannot_be_loaded(tmp_path: Path, cache: Path) -> None:
    proc = _cli(["--scenarios", str(tmp_path / "absent")], cache)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"pyossl_async conformance: {tmp_path / 'absent'}: no such folder\n"
    (tmp_path / "empty").mkdir()
    proc = _cli(["--scenarios", str(tmp_path / "empty")], cache)
    assert proc.returncode == 2 and "no scenarios found" in proc.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.py").write_text("import pyossl_async\n\nimport no_such_module_here\n")
    proc = _cli(["--scenarios", str(broken)], cache)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(f"pyossl_async conformance: cannot import {broken / 'bad.py'}:\nTraceback")
    assert f'File "{broken / "bad.py"}", line 3' in proc.stderr
    assert "ModuleNotFoundError: No module named 'no_such_module_here'" in proc.stderr


# -- the same, from Python ----------------------------------------------------------------------------


def test_load_folder(user_dir: Path, tmp_path: Path) -> None:
    suite = load_folder(str(user_dir))
    assert [s.name for s in suite.scenarios] == ["status_survives_resume", "status_after_finish", "status_typo"]
    assert {s.group for s in suite.scenarios} == {"status"}
    assert suite.scenarios[0].twin_path == str(user_dir / "c" / "status_survives_resume.c")
    assert suite.spec == ("folder", str(user_dir)) and not suite.builtin
    # private modules are not scanned but can be imported relatively; MODULES sets the order
    (tmp_path / "__init__.py").write_text('MODULES = ["b", "a"]\n')
    (tmp_path / "_util.py").write_text("LABEL = 'from _util'\n")
    scenario_module = (
        "from pyossl_async.testing.conformance import scenario\n"
        "from ._util import LABEL\n\n"
        "@scenario(c=False, why='a test')\n"
        "def {name}(be):\n"
        "    return [LABEL]\n"
    )
    (tmp_path / "a.py").write_text(scenario_module.format(name="in_a"))
    (tmp_path / "b.py").write_text(scenario_module.format(name="in_b"))
    suite = load_folder(str(tmp_path))
    assert [s.name for s in suite.scenarios] == ["in_b", "in_a"]
    assert suite.scenarios[0].func(None) == ["from _util"]  # type: ignore[arg-type]


@pytest.mark.subprocess
def test_run_suite_from_python(user_dir: Path, both: None) -> None:
    report = run_suite(load_folder(str(user_dir)), c=False)
    assert report.columns == ["C", "openssl", "python"] and report.disagreements == 1
    cells = {r.scenario.name: r.cells for r in report.rows}
    assert cells["status_after_finish"]["python"].text == "match"  # nothing to disagree with without C
    assert cells["status_typo"]["python"].text.startswith("ERROR: scenario raised AttributeError")
    assert "Traceback (most recent call last)" in cells["status_typo"]["python"].detail
    assert report.exit_status == 1 and report.text().endswith("3 scenarios, 1 disagreement\n")
