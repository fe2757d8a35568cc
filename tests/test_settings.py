"""Settings: every ``PYOSSL_ASYNC_*`` variable read and validated in one place.

A value that is not accepted is refused in one line naming the variable, its
value and what is accepted: by every command (exit status 2), at the first use
from Python (``SettingError``), never by falling back to the other backend;
``info`` reports it without a traceback. The accessors are read in this process
(with ``monkeypatch``); what happens at first use runs in child interpreters.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

import pytest

import pyossl_async as pa
from pyossl_async import _settings
from pyossl_async.testing import _settings as _testing_settings

from .conftest import run_isolated

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "pyossl_async"
#: the two modules that may read ``PYOSSL_ASYNC_*`` variables
SETTINGS_MODULES = {PACKAGE / "_settings.py", PACKAGE / "testing" / "_settings.py"}
#: environment reads whose variable name is computed, by (module, function), and why
#: they are not settings. An entry that no longer matches a read fails the test:
#: delete it then.
COMPUTED_READS = {
    ("testing/_cbuild.py", "_split_env"): "CFLAGS and LDFLAGS, the compiler's own variables",
}

#: a typo in each tuning setting, as the issue reported them
TYPOS = {
    "PYOSSL_ASYNC_STACK_MODE": ("bogus", "choose from auto, nested, openssl"),
    "PYOSSL_ASYNC_SWITCH": ("maybe", "choose from auto, native, chain"),
    "PYOSSL_ASYNC_STACK_SIZE": ("abc", "a byte count, or a number with k, M or G"),
    "PYOSSL_ASYNC_CLOSE_TIMEOUT": ("abc", "a number of seconds >= 0"),
    "PYOSSL_ASYNC_DEBUG": ("maybe", "use 1, on, yes, true or 0, off, no, false"),
    "PYOSSL_ASYNC_BACKEND": ("opensll", "choose from openssl, python"),
}
#: nothing asked for, whatever the test run inherits
CLEAN = {name: "" for name in _settings.values()}


# -- one place -----------------------------------------------------------------------------


def _env_reads(tree: ast.AST) -> Iterator[Tuple[ast.AST, Optional[ast.expr], str]]:
    """(node, key expression, enclosing function) of each read of the process environment:
    ``os.environ[k]``, ``os.environ.get(k)`` (and ``pop``, ``setdefault``), ``os.getenv(k)``,
    ``k in os.environ``; ``environ`` imported from os counts as well."""

    def is_environ(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "environ":
            return isinstance(node.value, ast.Name) and node.value.id == "os"
        return isinstance(node, ast.Name) and node.id == "environ"

    def walk(node: ast.AST, function: str) -> Iterator[Tuple[ast.AST, Optional[ast.expr], str]]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Subscript) and is_environ(child.value) and isinstance(child.ctx, ast.Load):
                yield child, child.slice, function
            elif isinstance(child, ast.Call):
                f = child.func
                environ_method = isinstance(f, ast.Attribute) and is_environ(f.value)
                getenv = isinstance(f, ast.Attribute) and f.attr == "getenv"
                if (environ_method and f.attr in ("get", "pop", "setdefault")) or getenv:  # type: ignore[union-attr]
                    yield child, child.args[0] if child.args else None, function
            elif isinstance(child, ast.Compare) and any(is_environ(c) for c in child.comparators):
                yield child, child.left, function
            yield from walk(child, inner)

    yield from walk(tree, "<module>")


def _constants(tree: ast.Module) -> Dict[str, str]:
    """The module's ``NAME = "text"`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def settings_read_outside_the_settings_modules(files: List[Path]) -> Tuple[List[str], Set[Tuple[str, str]]]:
    """Reads of a ``PYOSSL_ASYNC_*`` variable (or of a computed name not listed in
    ``COMPUTED_READS``) in ``files``; and the ``COMPUTED_READS`` entries that matched."""
    found: List[str] = []
    matched: Set[Tuple[str, str]] = set()
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        constants = _constants(tree)
        where = path.relative_to(PACKAGE).as_posix() if PACKAGE in path.parents else path.name
        for node, key, function in _env_reads(tree):
            name: Optional[str] = None
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                name = key.value
            elif isinstance(key, ast.Name) and key.id in constants:
                name = constants[key.id]
            line = f"{where}:{getattr(node, 'lineno', '?')} in {function}()"
            if name is None:
                if (where, function) in COMPUTED_READS:
                    matched.add((where, function))
                else:
                    computed = ast.unparse(key) if key else "?"
                    found.append(f"{line}: reads a variable whose name is computed ({computed})")
            elif name.startswith("PYOSSL_ASYNC_"):
                found.append(f"{line}: reads {name}")
    return found, matched


def _package_files() -> List[Path]:
    files = [p for p in sorted(PACKAGE.rglob("*.py")) if p not in SETTINGS_MODULES]
    files += sorted((ROOT / "conformance").rglob("*.py"))  # installed with the package
    return files


def test_only_the_settings_modules_read_settings() -> None:
    found, matched = settings_read_outside_the_settings_modules(_package_files())
    assert not found, "read the variable through pyossl_async._settings or testing._settings:\n" + "\n".join(found)
    stale = set(COMPUTED_READS) - matched
    assert not stale, f"no longer read, remove from COMPUTED_READS: {sorted(stale)}"


def test_the_grep_finds_a_setting_read_elsewhere(tmp_path: Path) -> None:
    """The check above can fail: each way of reading a variable is found."""
    module = tmp_path / "module.py"
    module.write_text(
        "import os\nfrom os import environ\nENV = 'PYOSSL_ASYNC_STACK_MODE'\n"
        "a = os.environ.get('PYOSSL_ASYNC_BACKEND')\n"
        "def f(name):\n    return os.environ[ENV], os.getenv('PYOSSL_ASYNC_DEBUG'), 'PYOSSL_ASYNC_X' in environ, "
        "environ.get(name)\n"
        "b = os.environ.get('HOME')\n"
    )
    found, _ = settings_read_outside_the_settings_modules([module])
    assert [line.split(": ", 1)[1] for line in found] == [
        "reads PYOSSL_ASYNC_BACKEND",
        "reads PYOSSL_ASYNC_STACK_MODE",
        "reads PYOSSL_ASYNC_DEBUG",
        "reads PYOSSL_ASYNC_X",
        "reads a variable whose name is computed (name)",
    ], found


# -- the accessors ----------------------------------------------------------------------------


@pytest.mark.parametrize("variable", sorted(TYPOS))
def test_a_bad_value_is_one_line_naming_variable_value_and_what_is_accepted(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    value, accepted = TYPOS[variable]
    monkeypatch.setenv(variable, value)
    setting = {s.name: s for s in _settings.SETTINGS}[variable]
    with pytest.raises(pa.SettingError) as info:
        setting.read()
    message = str(info.value)
    assert message.startswith(f"{variable}={value}: ") and accepted in message and "\n" not in message, message
    assert (info.value.variable, info.value.value) == (variable, value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, pa.AsyncError)
    assert [str(e) for e in _settings.problems()] == [message]


def test_good_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CLEAN:
        monkeypatch.delenv(name, raising=False)
    assert (_settings.backend(), _settings.libcrypto(), _settings.close_timeout()) == (None, None, 10.0)
    assert (_settings.stack_size(), _settings.stack_mode(), _settings.switch_mode(), _settings.debug()) == (
        None,
        "auto",
        "auto",
        False,
    )
    assert _settings.problems() == []
    for name, value in [
        ("PYOSSL_ASYNC_BACKEND", " python"),
        ("PYOSSL_ASYNC_CLOSE_TIMEOUT", "2.5"),
        ("PYOSSL_ASYNC_STACK_SIZE", "512k"),
        ("PYOSSL_ASYNC_STACK_MODE", "Nested"),
        ("PYOSSL_ASYNC_SWITCH", "chain"),
        ("PYOSSL_ASYNC_DEBUG", "on"),
    ]:
        monkeypatch.setenv(name, value)
    assert (_settings.backend(), _settings.close_timeout(), _settings.stack_size()) == ("python", 2.5, 512 << 10)
    assert (_settings.stack_mode(), _settings.switch_mode(), _settings.debug()) == ("nested", "chain", True)
    for mode in ("auto", "native", "chain"):
        monkeypatch.setenv("PYOSSL_ASYNC_SWITCH", mode)
        assert _settings.switch_mode() == mode


@pytest.mark.parametrize(
    ("variable", "value", "why"),
    [
        ("PYOSSL_ASYNC_STACK_SIZE", "1k", "1024 bytes is below the minimum 65536"),
        ("PYOSSL_ASYNC_STACK_SIZE", "+4M", "not a size"),
        ("PYOSSL_ASYNC_CLOSE_TIMEOUT", "-1", "out of range"),
        ("PYOSSL_ASYNC_CLOSE_TIMEOUT", "inf", "out of range"),
        ("PYOSSL_ASYNC_STACK_MODE", "nested openssl", "unknown stack mode 'nested openssl'"),
    ],
)
def test_values_out_of_range(variable: str, value: str, why: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(variable, value)
    (error,) = _settings.problems()
    shown = value if " " not in value else repr(value)
    assert str(error).startswith(f"{variable}={shown}: {why}; "), error


# -- first use, from Python and from every command --------------------------------------------


def test_import_never_reads_a_setting_and_first_use_refuses() -> None:
    code = """
        import os
        import pyossl_async as pa
        from pyossl_async import aio
        import pyossl_async.drive
        uses = {
            "get_backend()": pa.get_backend,
            "get_backend('python')": lambda: pa.get_backend("python"),
            "WaitCtx()": pa.WaitCtx,
            "run_job()": lambda: pa.run_job(lambda a: 1),
            "start_job()": lambda: pa.start_job(None, None, lambda a: 1),
            "available_backends()": pa.available_backends,
            "DEFAULT_CLOSE_TIMEOUT": lambda: pa.DEFAULT_CLOSE_TIMEOUT,
        }
        for what, use in uses.items():
            try:
                use()
            except pa.SettingError as exc:
                print(what, "->", exc)
            else:
                print(what, "-> no error")
    """
    for variable, (value, _) in TYPOS.items():
        if variable == "PYOSSL_ASYNC_BACKEND":
            continue  # get_backend("python") is not asked to follow it
        out = run_isolated(code, env={**CLEAN, variable: value}).stdout.splitlines()
        assert len(out) == 7, out
        for line in out:
            use, result = line.split(" -> ", 1)
            if use == "DEFAULT_CLOSE_TIMEOUT" and variable != "PYOSSL_ASYNC_CLOSE_TIMEOUT":
                assert result == "no error", line
            else:
                assert result.startswith(f"{variable}={value}: "), line


def test_default_close_timeout_is_read_at_first_use_then_fixed() -> None:
    out = run_isolated(
        """
        import os
        import pyossl_async as pa
        os.environ["PYOSSL_ASYNC_CLOSE_TIMEOUT"] = "2.5"   # after the import: still seen
        print(pa.DEFAULT_CLOSE_TIMEOUT)
        os.environ["PYOSSL_ASYNC_CLOSE_TIMEOUT"] = "7"     # after the first use: not seen
        from pyossl_async import DEFAULT_CLOSE_TIMEOUT
        import pyossl_async.drive as drive
        print(DEFAULT_CLOSE_TIMEOUT, drive.DEFAULT_CLOSE_TIMEOUT)
        """,
        env=CLEAN,
    ).stdout.split()
    assert out == ["2.5", "2.5", "2.5"]


def _cli(args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), full.get("PYTHONPATH")]))
    full.update(CLEAN)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pyossl_async", *args], capture_output=True, text=True, env=full, timeout=300
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("variable", sorted(TYPOS))
def test_demo_refuses_a_typo_instead_of_running_on_the_other_backend(variable: str) -> None:
    value, accepted = TYPOS[variable]
    proc = _cli(["demo"], {variable: value})
    assert (proc.returncode, proc.stdout) == (2, ""), (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"pyossl_async demo: {variable}={value}: ") and accepted in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize(
    ("command", "variable", "value"),
    [
        (["bench", "--quick"], "PYOSSL_ASYNC_STACK_MODE", "bogus"),
        (["conformance", "--no-c"], "PYOSSL_ASYNC_SWITCH", "maybe"),
        (["conformance", "--no-c"], "PYOSSL_ASYNC_CONFORMANCE_EXAMPLES", "many"),
        (["conformance", "--no-c"], "PYOSSL_ASYNC_REQUIRE_BACKENDS", "openssl,opensll"),
        (["demo", "--backend", "python"], "PYOSSL_ASYNC_STACK_SIZE", "abc"),
    ],
)
def test_every_command_refuses_up_front(command: List[str], variable: str, value: str) -> None:
    proc = _cli(command, {variable: value})
    assert (proc.returncode, proc.stdout) == (2, ""), (proc.returncode, proc.stdout, proc.stderr)
    assert proc.stderr.startswith(f"pyossl_async {command[0]}: {variable}={value}: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.subprocess
@pytest.mark.parametrize("variable", ["PYOSSL_ASYNC_STACK_SIZE", "PYOSSL_ASYNC_CLOSE_TIMEOUT", "PYOSSL_ASYNC_SWITCH"])
@pytest.mark.parametrize("json", [False, True])
def test_info_reports_a_refused_setting_without_a_traceback(variable: str, json: bool) -> None:
    value, accepted = TYPOS[variable]
    proc = _cli(["info", "--json"] if json else ["info"], {variable: value})
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    line = f"{variable}={value}: "
    if json:
        import json as json_module

        info = json_module.loads(proc.stdout)
        assert info["settings_error"].startswith(line) and info["available_backends"] == []
        assert "refused" in info["environment"][variable]
    else:
        assert f"\nsettings_error: {line}" in proc.stdout and accepted in proc.stdout
        assert f"\ndefault_backend: none ({line}" in proc.stdout
        assert f"\n  {variable}: {value}  <- refused: " in proc.stdout


@pytest.mark.subprocess
def test_info_lists_every_runtime_setting() -> None:
    proc = _cli(["info"], {"PYOSSL_ASYNC_DEBUG": "1", "PYOSSL_ASYNC_SWITCH": "chain"})
    assert proc.returncode == 0, proc.stderr
    for name in _settings.values():
        assert f"\n  {name}: " in proc.stdout, name
    assert "\n  PYOSSL_ASYNC_SWITCH: chain\n" in proc.stdout
    assert "\n  PYOSSL_ASYNC_DEBUG: 1  (for debugging the library only)\n" in proc.stdout


@pytest.mark.subprocess
def test_the_pytest_plugin_stops_on_a_refused_setting(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text("def test_x(pyossl_backend):\n    pass\n")
    full = {**os.environ, **CLEAN, "PYOSSL_ASYNC_STACK_MODE": "bogus"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True, text=True, cwd=tmp_path, env=full, timeout=300,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr  # a usage error
    assert "PYOSSL_ASYNC_STACK_MODE=bogus: unknown stack mode 'bogus'" in proc.stderr, proc.stderr


# -- testing settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "read", "message"),
    [
        ("PYOSSL_ASYNC_REQUIRE_BACKENDS", "openssl,C,bogus", _testing_settings.required_backends,
         "unknown name 'bogus'; choose from openssl, python, C"),
        ("PYOSSL_ASYNC_CONFORMANCE_EXAMPLES", "-3", _testing_settings.conformance_examples, "not a whole number"),
        ("PYOSSL_ASYNC_CONFORMANCE_RANDOM", "sometimes", _testing_settings.conformance_random, "not on or off"),
        ("PYOSSL_ASYNC_CONFORMANCE_CATALOGUE", "tests.fake", _testing_settings.conformance_catalogue,
         "not module:function"),
        ("PYOSSL_ASYNC_FUZZ_EXAMPLES", "1e3", _testing_settings.fuzz_examples, "not a whole number"),
    ],
)
def test_testing_settings_refuse_bad_values(
    variable: str, value: str, read: Callable[[], object], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(pa.SettingError, match=f"^{variable}={value}: {message}"):
        read()


def test_testing_settings_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYOSSL_ASYNC_REQUIRE_BACKENDS", " python, c ,python,")
    assert _testing_settings.required_backends() == ["python", "C"]
    monkeypatch.setenv("PYOSSL_ASYNC_CONFORMANCE_EXAMPLES", "0")
    assert _testing_settings.conformance_examples() == 0
    monkeypatch.delenv("PYOSSL_ASYNC_FUZZ_EXAMPLES", raising=False)
    assert _testing_settings.fuzz_examples() == 1000


# -- the documentation -----------------------------------------------------------------------


def test_the_docs_list_every_setting() -> None:
    backends_md = (ROOT / "docs" / "backends.md").read_text()
    settings_table = backends_md.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for setting in _settings.SETTINGS:
        row = next((line for line in settings_table.splitlines() if line.startswith(f"| `{setting.name}`")), None)
        assert row is not None, f"docs/backends.md, Settings: no row for {setting.name}"
        assert ("debugging" in row) == setting.debug, row
    api_md = (ROOT / "docs" / "api.md").read_text()
    toolkit = (ROOT / "docs" / "testing.md").read_text() + (ROOT / "docs" / "conformance.md").read_text()
    for name in [s.name for s in _settings.SETTINGS] + [s.name for s in _testing_settings.SETTINGS]:
        assert f"`{name}`" in api_md, f"docs/api.md, Environment variables: no row for {name}"
    for tool_setting in _testing_settings.SETTINGS:
        if not tool_setting.project_only:
            assert tool_setting.name in toolkit, f"docs/testing.md or conformance.md: {tool_setting.name}"
    assert "PYOSSL_ASYNC_CI_STAGE" not in (ROOT / ".ci" / "run").read_text()
