"""The documentation holds to the code: every public name is in the API reference,
every relative link points to a file that exists, the README stays a front door,
shows the test command CI runs, and its Python blocks compile.

Names are read from the sources with ``ast`` (no import), so the check needs
neither trio nor hypothesis. Type-checking the blocks is ``tools/check_typing.py``'s
job (CI runs it); here they only have to compile, which is cheap.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "pyossl_async"
DOCS = ROOT / "docs"
README = ROOT / "README.md"
API = DOCS / "api.md"
CONTRACT = DOCS / "contract.md"
CI_SCRIPT = ROOT / ".ci" / "run"

#: the README is a front door, not the house (issue 14)
README_MAX_LINES = 330

#: the modules whose ``__all__`` docs/api.md must cover, and their sources
PUBLIC_MODULES: Dict[str, Path] = {
    "pyossl_async": SRC / "__init__.py",
    "pyossl_async.aio": SRC / "aio.py",
    "pyossl_async.trio": SRC / "trio.py",
    "pyossl_async.engine": SRC / "engine.py",
    "pyossl_async.testing": SRC / "testing" / "__init__.py",
    "pyossl_async.testing.strategies": SRC / "testing" / "strategies.py",
    "pyossl_async.testing.conformance": SRC / "testing" / "conformance" / "__init__.py",
    "pyossl_async.tls": SRC / "tls" / "__init__.py",
    "pyossl_async.tls.aio": SRC / "tls" / "aio.py",
}
PLUGIN = SRC / "testing" / "plugin.py"

FENCE = re.compile(r"^(```|~~~)")
PYTHON_BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


# -- reading markdown -------------------------------------------------------------------


def markdown_files() -> List[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose_lines(text: str) -> Iterator[Tuple[int, str]]:
    """``(line number, line)`` of every line outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line.lstrip())
        if match is not None:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def code_spans(text: str) -> List[str]:
    """The inline code spans outside fenced blocks."""
    return [span for _, line in prose_lines(text) for span in INLINE_CODE.findall(line)]


def headings(text: str) -> List[str]:
    return [line.lstrip("#").strip() for _, line in prose_lines(text) if re.match(r"^#{1,6}\s", line)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: code and link markup dropped, punctuation removed,
    lower case, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> Set[str]:
    seen: Dict[str, int] = {}
    out: Set[str] = set()
    for heading in headings(path.read_text(encoding="utf-8")):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def links(path: Path) -> List[Tuple[int, str]]:
    """``(line number, target)`` of every markdown link outside code."""
    out = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        line = INLINE_CODE.sub("", line)
        out += [(number, target) for target in INLINE_LINK.findall(line)]
        ref = REFERENCE_LINK.match(line)
        if ref is not None:
            out.append((number, ref.group(1)))
    return out


def local_target(source: Path, target: str) -> Optional[Tuple[Path, str]]:
    """The file a relative link points to and its anchor; None for URLs and pure anchors."""
    if SCHEME.match(target) or target.startswith("#"):
        return None
    path, _, anchor = target.partition("#")
    path = unquote(path.split("?", 1)[0])
    base = ROOT if path.startswith("/") else source.parent
    return (base / path.lstrip("/")).resolve(), anchor


def documented(name: str, spans: List[str], heads: List[str]) -> bool:
    """``name`` is the subject of a code span (``name``, ``name(...)``, ``pa.name``,
    ``aio.name = ...``) or a word of a heading."""
    subject = re.compile(r"^@?(?:[\w.]+\.)?" + re.escape(name) + r"(?!\w)")
    word = re.compile(r"(?<![\w])" + re.escape(name) + r"(?![\w])")
    return any(subject.match(s.strip()) for s in spans) or any(word.search(h) for h in heads)


# -- reading the sources ----------------------------------------------------------------


def module_all(path: Path) -> List[str]:
    """The literal ``__all__`` of a module's source."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            names = ast.literal_eval(node.value)
            assert isinstance(names, list) and names, f"{rel(path)}: __all__ is not a non-empty list literal"
            return [str(n) for n in names]
    raise AssertionError(f"{rel(path)} has no literal __all__")


def class_members(path: Path, cls: str) -> List[str]:
    """The public attributes and methods a class of ``path`` declares."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            names = []
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.append(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    names.append(item.target.id)
            return [n for n in names if not n.startswith("_")]
    raise AssertionError(f"{rel(path)} has no class {cls}")


def plugin_surface() -> List[str]:
    """The plugin's fixtures, command-line options and marker, and its ``__all__``."""
    tree = ast.parse(PLUGIN.read_text(encoding="utf-8"))
    out = list(module_all(PLUGIN))
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if "fixture" in ast.dump(dec):
                    out.append(node.name)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "addoption":
            first = node.args[0]
            assert isinstance(first, ast.Constant)
            out.append(str(first.value))
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "MARKER" for t in node.targets):
            out.append(str(ast.literal_eval(node.value)))
    return out


# -- (a) every public name is in docs/api.md ---------------------------------------------


@pytest.fixture(scope="module")
def api_text() -> Tuple[List[str], List[str], str]:
    assert API.is_file(), "docs/api.md is missing"
    text = API.read_text(encoding="utf-8")
    return code_spans(text), headings(text), text


@pytest.mark.parametrize("module", sorted(PUBLIC_MODULES))
def test_every_public_name_is_in_the_api_reference(module: str, api_text: Tuple[List[str], List[str], str]) -> None:
    spans, heads, _ = api_text
    missing = [name for name in module_all(PUBLIC_MODULES[module]) if not documented(name, spans, heads)]
    assert not missing, f"docs/api.md does not document {module}: {', '.join(missing)}"


def test_the_module_list_matches_the_api_reference(api_text: Tuple[List[str], List[str], str]) -> None:
    """Each public module has a heading of its own in docs/api.md."""
    _, heads, _ = api_text
    missing = [m for m in PUBLIC_MODULES if not any(f"`{m}`" in h for h in heads)]
    assert not missing, f"docs/api.md has no heading for {', '.join(missing)}"


@pytest.mark.parametrize(
    "where, members",
    [
        ("Backend", lambda: class_members(SRC / "_protocol.py", "Backend")),
        ("WaitCtx", lambda: class_members(SRC / "_protocol.py", "WaitCtx")),
        ("Job", lambda: class_members(SRC / "_protocol.py", "Job")),
        ("StartResult", lambda: class_members(SRC / "_protocol.py", "StartResult")),
        ("the pytest plugin", plugin_surface),
    ],
    ids=["Backend", "WaitCtx", "Job", "StartResult", "plugin"],
)
def test_class_members_and_plugin_surface_are_in_the_api_reference(
    where: str, members: Callable[[], List[str]], api_text: Tuple[List[str], List[str], str]
) -> None:
    spans, heads, text = api_text
    names = members()
    assert names, where
    missing = [n for n in names if not (documented(n, spans, heads) or (n.startswith("--") and f"`{n}" in text))]
    assert not missing, f"docs/api.md does not document {where}: {', '.join(missing)}"


# -- (b) every relative link points to a file that exists --------------------------------


@pytest.mark.parametrize("doc", markdown_files(), ids=rel)
def test_relative_links_point_to_existing_files(doc: Path) -> None:
    broken = []
    for line, target in links(doc):
        found = local_target(doc, target)
        if found is not None and not found[0].exists():
            broken.append(f"{rel(doc)}:{line}: {target}")
    assert not broken, "links to missing files:\n" + "\n".join(broken)


@pytest.mark.parametrize("doc", markdown_files(), ids=rel)
def test_anchors_of_the_reference_pages_exist(doc: Path) -> None:
    """Tables of contents and cross-references (``page.md#heading``) land on a heading."""
    assert doc.is_file(), f"{rel(doc)} is missing"
    broken = []
    for line, target in links(doc):
        if target.startswith("#"):
            path, anchor = doc, target[1:]
        else:
            found = local_target(doc, target)
            if found is None or not found[1] or found[0].suffix != ".md" or not found[0].is_file():
                continue  # a URL, no anchor, or a missing file (the test above says so)
            path, anchor = found
        if anchor not in anchors(path):
            broken.append(f"{rel(doc)}:{line}: {target}")
    assert not broken, "links to missing headings:\n" + "\n".join(broken)


# -- (c), (d): the README is short and shows CI's test command ----------------------------


def test_readme_is_a_front_door() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"


def ci_test_command() -> str:
    match = re.search(r'^TEST_CMD="(.+)"\s*$', CI_SCRIPT.read_text(encoding="utf-8"), re.M)
    assert match is not None, ".ci/run sets no TEST_CMD"
    return match.group(1)


def without_quiet(command: str) -> str:
    """A command with ``-q`` dropped and blanks collapsed: CI runs it quietly, users need not."""
    return " ".join(token for token in command.split() if token != "-q")


def test_the_readme_shows_the_test_command_ci_runs() -> None:
    command = without_quiet(ci_test_command())
    lines = [without_quiet(re.sub(r"^\s*\$\s*", "", line)) for line in README.read_text(encoding="utf-8").splitlines()]
    assert any(command in line for line in lines), f"README.md does not show .ci/run's test command: {command}"


# -- (e) Python blocks compile --------------------------------------------------------------


def python_blocks(path: Path) -> List[Tuple[int, str]]:
    """``(line, source)`` of each ```python block; an interactive session keeps its prompts' code."""
    text = path.read_text(encoding="utf-8")
    out = []
    for match in PYTHON_BLOCK.finditer(text):
        code = match.group(1)
        line = text.count("\n", 0, match.start()) + 2
        if code.lstrip().startswith(">>>"):
            code = "".join(ln[4:] + "\n" for ln in code.splitlines() if ln.startswith((">>> ", "... ")))
        out.append((line, code))
    return out


@pytest.mark.parametrize("doc", markdown_files(), ids=rel)
def test_python_blocks_compile(doc: Path) -> None:
    failures = []
    for line, code in python_blocks(doc):
        try:
            compile(code, f"{rel(doc)}, the block at line {line}", "exec")
        except SyntaxError as exc:
            failures.append(f"{rel(doc)}:{line - 1 + (exc.lineno or 1)}: {exc.msg}")
    assert not failures, "Python blocks that do not compile:\n" + "\n".join(failures)


def test_the_readme_has_python_blocks() -> None:
    assert python_blocks(README), "README.md has no ```python block to check"


def test_the_package_never_suggests_an_editable_install_of_a_clone() -> None:
    """Messages of the installed package name extras (``pip install 'pyossl-async[test]'``):
    ``pip install -e '.[test]'`` only means something in a clone of the repository."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if re.search(r"pip install (-e|--editable) ['\"]?\.\[", node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value[:80]}")
    assert not found, "\n".join(found)


#: a README section cited by its title: README, "Title" (or README's "Title")
README_SECTION = re.compile(r"README(?:'s|,)\s+\"([^\"]+)\"")
MARKDOWN_NAME = re.compile(r"(?<![\w/-])([\w-]+\.md)\b")


def test_cited_readme_sections_and_markdown_files_exist() -> None:
    """docs/testing.md cited a README section that had been renamed; docs/contract.md a
    page (openssl-behaviour.md) that was never in the repository."""
    headings = {m.group(1).strip() for m in re.finditer(r"^#+\s+(.+)$", README.read_text(encoding="utf-8"), re.M)}
    sources = [*markdown_files(), *sorted(SRC.rglob("*.py")), *sorted((ROOT / "conformance").rglob("*.py"))]
    missing = []
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for match in README_SECTION.finditer(text):
            title = " ".join(match.group(1).split())  # the quote may wrap
            if title not in headings:
                missing.append(f"{rel(path)}: README section {title!r}")
        for match in MARKDOWN_NAME.finditer(text):
            name = match.group(1)
            if not (ROOT / name).is_file() and not (DOCS / name).is_file():
                missing.append(f"{rel(path)}: {name}")
    assert not missing, "\n".join(missing)

