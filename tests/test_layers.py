"""The package's layers point one way: no module imports, even lazily inside a
function, a module that imports it back (``tools/import_cycles.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("import_cycles", ROOT / "tools" / "import_cycles.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("import_cycles", module)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_in_the_package_counting_lazy_imports() -> None:
    tool = _tool()
    graph = tool.imports(ROOT / "src" / "pyossl_async")
    assert tool.cycles(graph) == []


def test_the_check_finds_a_lazy_cycle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from .sub import high\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "high.py").write_text("from .. import low\n")
    (package / "typed.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import low\n")
    tool = _tool()
    assert tool.cycles(tool.imports(package)) == [["pkg.low", "pkg.sub.high"]]
    assert tool.main([str(package)]) == 1


def test_the_library_never_imports_the_command_line() -> None:
    """``_cli`` (the commands, the bench) is for ``python -m pyossl_async`` only."""
    import subprocess

    code = (
        "import sys\n"
        "import pyossl_async, pyossl_async.aio, pyossl_async.engine, pyossl_async.testing\n"
        "import pyossl_async.testing.conformance, pyossl_async.tls, pyossl_async.tls.aio\n"
        "pyossl_async.get_backend()\n"
        "print(sorted(m for m in sys.modules if m.startswith('pyossl_async._cli')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
