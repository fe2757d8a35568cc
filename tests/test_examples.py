"""The examples run as the README says, and print what it shows.

Each example runs in a child interpreter (from the repository root, with
``src`` on the path, as after ``pip install -e .``). Where the output is
deterministic, the README's block must be exactly what the command prints;
the throughput example's numbers vary, so its lines are matched by shape.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import pyossl_async as pa
from pyossl_async._demo import EXPECTED_OUTPUT

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.subprocess


def run(*argv: str, env: Dict[str, str] | None = None, timeout: float = 300) -> str:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), full_env.get("PYTHONPATH")]))
    full_env.pop("PYOSSL_ASYNC_BACKEND", None)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"{argv} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    assert proc.stderr == "", proc.stderr  # no warnings, no progress line when piped
    return proc.stdout


def readme_blocks() -> List[Tuple[str, str]]:
    """``(command, output)`` for every ``$ python examples/...`` console block of the README."""
    text = (ROOT / "README.md").read_text()
    blocks = []
    for body in re.findall(r"```console\n(.*?)```", text, re.S):
        lines = body.splitlines()
        if lines and lines[0].startswith("$ python examples/"):
            blocks.append((lines[0][2:], "\n".join(lines[1:]) + "\n"))
    return blocks


def backends() -> List[str]:
    return [name for name in pa.available_backends() if pa.get_backend(name).is_capable()]


@pytest.mark.parametrize("name", ["openssl", "python"])
def test_man_page_example_prints_the_man_pages_output(name: str) -> None:
    if name not in backends():
        pytest.skip(f"{name} cannot run jobs here")
    assert run("examples/man_page_example.py", "--backend", name) == EXPECTED_OUTPUT


def test_offload_engine_is_the_same_on_both_backends() -> None:
    outputs = {name: run("examples/offload_engine.py", "--backend", name) for name in backends()}
    for name, out in outputs.items():
        assert out.startswith(f"backend: {name}\n")
        assert "[driver] start_job() returned PAUSE; the job waits on 1 fd" in out
        assert "[driver] wait fds left in the context: 0" in out
        assert "3 jobs finished" in out
    bodies = {out.split("\n", 1)[1] for out in outputs.values()}
    assert len(bodies) == 1


MANY_JOBS = re.compile(
    r"backend: (openssl|python), event loop: (asyncio|uvloop), jobs woken by: (wait-ctx callback|wait fds)\n"
    r"accelerator: \d+ lanes, [\d.]+ ms latency per request, ECDSA P-256 in libcrypto\n"
    r"one by one:  (\d+) signatures in [\d.]+ s \( *\d+/s\), 1 job in flight\n"
    r"all at once: \4 signatures in [\d.]+ s \( *\d+/s\), (\d+) jobs in flight\n"
    r"speed-up: [\d.]+x\n"
    r"(\d+) of (\d+) signatures verified\n"
)


TLS_LINE = re.compile(
    r"connection ([01]) (server|client): (TLSv1\.[23]) (\S+), (\d+) pauses inside C, "
    r"received 'hello from the (client|server)'"
)


@pytest.mark.parametrize("options", [(), ("--notify", "fd"), ("--uvloop",)])
def test_many_jobs_asyncio(options: Tuple[str, ...]) -> None:
    if "--uvloop" in options:
        pytest.importorskip("uvloop")
    for name in backends():
        out = run("examples/many_jobs_asyncio.py", "--jobs", "200", "--backend", name, *options)
        match = MANY_JOBS.fullmatch(out)
        assert match, out
        assert match.group(1) == name
        assert int(match.group(5)) > 1  # jobs really were in flight together
        assert match.group(6) == match.group(7) == "400"


def test_scripted_interop_test_passes() -> None:
    out = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_interop_scripted.py")
    assert re.search(rf"\b{2 * len(backends())} passed\b", out), out


def test_readme_shows_real_output() -> None:
    blocks = readme_blocks()
    commands = [command.split()[1] for command, _ in blocks]
    for example in ("man_page_example.py", "offload_engine.py", "many_jobs_asyncio.py", "tls_in_jobs.py"):
        assert f"examples/{example}" in commands, f"the README shows no run of {example}"
    if pa.get_backend().name != "openssl":
        pytest.skip("the README's runs are on the openssl backend, not the default here")
    for command, shown in blocks:
        argv = command.split()[1:]
        if argv[0] == "examples/many_jobs_asyncio.py":
            assert MANY_JOBS.fullmatch(shown), shown  # numbers vary run to run
            continue
        if argv[0] == "examples/tls_in_jobs.py":  # pause counts vary with the OpenSSL version
            assert all(TLS_LINE.fullmatch(line) for line in shown.splitlines()), shown
            continue
        if "--uvloop" in argv:
            pytest.importorskip("uvloop")
        assert run(*argv) == shown, command


def test_readme_engine_snippet_prints_what_it_says() -> None:
    text = (ROOT / "README.md").read_text()
    snippets = [s for s in re.findall(r"```python\n(.*?)```", text, re.S) if "pa.await_future(" in s]
    assert len(snippets) == 1
    expected = re.search(r"# (\d+)\n$", snippets[0])
    assert expected
    for name in backends():
        out = run("-c", snippets[0], env={"PYOSSL_ASYNC_BACKEND": name})
        assert out == expected.group(1) + "\n"


def test_tls_in_jobs() -> None:
    """Handshakes and records of two TLS connections run inside jobs paused in C."""
    if "openssl" not in backends():
        pytest.skip("the openssl backend cannot run jobs here")
    try:
        from pyossl_async.testing import EngineUnavailable, PauseEngine

        PauseEngine.load()
    except EngineUnavailable as exc:
        pytest.skip(f"the test engine is unavailable: {exc}")
    lines = run("examples/tls_in_jobs.py", timeout=120).splitlines()
    assert len(lines) == 4, lines
    seen = set()
    for line in lines:
        match = TLS_LINE.fullmatch(line)
        assert match, line
        connection, role, _, _, pauses, peer = match.groups()
        assert int(pauses) > 10 and {role, peer} == {"client", "server"}
        seen.add((connection, role))
    assert len(seen) == 4
