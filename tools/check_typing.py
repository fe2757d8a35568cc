"""Type-check what users copy: every Python block of the README and docs/, every example.

Each fenced ``python`` block becomes a module of its own (blocks are meant to be
self-contained: a user pastes one at a time) and is checked with ``mypy --strict``
together with ``examples/*.py`` and the package itself. Blocks that show an
interactive session (``>>>``) or are marked ``<!-- typecheck: skip -->`` on the
line before the fence are left out. Exits with mypy's status.

    python tools/check_typing.py            # needs mypy (pip install mypy)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Tuple

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)
SKIP = "<!-- typecheck: skip -->"


def blocks(path: Path) -> List[Tuple[int, str]]:
    """(line number, code) of each checkable Python block in ``path``."""
    text = path.read_text(encoding="utf-8")
    out = []
    for match in FENCE.finditer(text):
        code = match.group(1)
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip().splitlines()[-1:] or [""]
        if code.lstrip().startswith(">>>") or before[0].strip() == SKIP:
            continue
        out.append((line, code))
    return out


def main() -> int:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    with tempfile.TemporaryDirectory(prefix="pyossl-async-typing-") as tmp:
        files: List[str] = []
        for doc in docs:
            for line, code in blocks(doc):
                name = f"{doc.stem.replace('-', '_').lower()}_line{line}.py"
                target = Path(tmp) / name
                target.write_text(f"# {doc.relative_to(ROOT)}, the block at line {line}\n{code}", encoding="utf-8")
                files.append(str(target))
        examples = sorted(str(p) for p in (ROOT / "examples").glob("*.py"))
        print(f"mypy --strict: {len(files)} documentation blocks, {len(examples)} examples, the package")
        cmd = [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--python-version",
               f"{sys.version_info[0]}.{sys.version_info[1]}", *files, *examples, str(ROOT / "src" / "pyossl_async")]
        env = dict(os.environ, MYPYPATH=str(ROOT / "src"))
        return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main())
