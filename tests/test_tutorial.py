"""docs/tutorial.md shows what its blocks print: each Python block is run in a child
interpreter and its output compared with the console block right after it.

Blocks followed by a console block that starts with a ``$`` command (a pytest run)
are shown, not run here; the step that needs the C test engine is skipped where it
cannot be built.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Tuple

import pytest

import pyossl_async as pa

from .conftest import run_isolated

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"
BLOCK_AND_OUTPUT = re.compile(r"^```python\n(.*?)^```\n\n```console\n(.*?)^```", re.M | re.S)


def _examples() -> List[Tuple[str, str]]:
    found = BLOCK_AND_OUTPUT.findall(TUTORIAL.read_text(encoding="utf-8"))
    return [(code, out) for code, out in found if not out.startswith("$")]


EXAMPLES = _examples()


def test_the_tutorial_has_its_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.subprocess
@pytest.mark.parametrize("code, expected", EXAMPLES, ids=[f"block{i + 1}" for i in range(len(EXAMPLES))])
def test_each_block_prints_what_the_tutorial_shows(code: str, expected: str) -> None:
    if "PauseEngine" in code:
        from pyossl_async.testing import EngineUnavailable, PauseEngine

        try:
            PauseEngine.load()
        except (EngineUnavailable, pa.BackendUnavailable) as exc:
            pytest.skip(f"the C test engine is unavailable: {exc}")
    proc = run_isolated(code, timeout=120)
    assert proc.stdout == expected, proc.stderr
