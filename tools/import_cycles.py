"""Import cycles among the modules of a package, counting lazy imports (inside functions).

``python tools/import_cycles.py [src/pyossl_async] [--type-checking]`` prints each
cycle with the imports that tie it, and exits 1 when there is one. Imports under
``if TYPE_CHECKING:`` run only for type checkers and are left out unless
``--type-checking`` is given. Importing a submodule imports its parent package;
that edge is Python's, not ours, and is not counted (``from . import x`` counts as
an import of ``x``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple


def modules(root: Path) -> Dict[str, Tuple[Path, bool]]:
    """Dotted module name -> (file, is a package) for every module under ``root``."""
    found: Dict[str, Tuple[Path, bool]] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        found[".".join(parts)] = (path, is_package)
    return found


def imports(root: Path, type_checking: bool = False) -> Dict[str, Set[str]]:
    """Module -> the modules of the package it imports, anywhere in its code."""
    mods = modules(root)
    graph: Dict[str, Set[str]] = {name: set() for name in mods}
    for name, (path, is_package) in mods.items():
        tree = ast.parse(path.read_text(), str(path))
        skipped: Set[int] = set()
        if not type_checking:
            for node in ast.walk(tree):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                    skipped.update(id(inner) for stmt in node.body for inner in ast.walk(stmt))
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            targets: List[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base_parts = name.split(".") if is_package else name.split(".")[:-1]
                    base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                    base = ".".join(base_parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            graph[name].update(t for t in targets if t in mods and t != name)
    return graph


def cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    found: List[List[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main(argv: List[str]) -> int:
    paths = [a for a in argv if not a.startswith("--")]
    root = Path(paths[0] if paths else Path(__file__).resolve().parent.parent / "src" / "pyossl_async")
    graph = imports(root, "--type-checking" in argv)
    found = cycles(graph)
    for component in found:
        print("cycle: " + ", ".join(component))
        for module in component:
            for target in sorted(graph[module]):
                if target in component:
                    print(f"    {module} -> {target}")
    print(f"{len(found)} import cycle(s) in {root}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
