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
