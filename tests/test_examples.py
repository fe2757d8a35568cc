"""The examples run as the README says, and print what it shows.

Each example runs in a child interpreter (from the repository root, with
``src`` on the path, as after ``pip install -e .``), once with each backend as
the default (``PYOSSL_ASYNC_BACKEND``). Where the output is deterministic, the
README's block must be exactly what the command prints; the throughput
example's numbers vary, so its lines are matched by shape. Every runnable
example takes ``--help``, refuses an unknown option, and says in one line why
it cannot run when it cannot.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

import pyossl_async as pa
from pyossl_async._cli.demo import EXPECTED_OUTPUT
from pyossl_async.testing import plugin

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.subprocess


def _run(*argv: str, env: Optional[Dict[str, str]] = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), full_env.get("PYTHONPATH")]))
    full_env.pop("PYOSSL_ASYNC_BACKEND", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def run(*argv: str, env: Optional[Dict[str, str]] = None, timeout: float = 300) -> str:
    """Run a command in a child; its stdout, after checking it succeeded and printed nothing on stderr."""
    proc = _run(*argv, env=env, timeout=timeout)
    if proc.returncode != 0:
        pytest.fail(
            f"{argv} exited with {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    assert proc.stderr == "", proc.stderr  # no warnings, no progress line when piped
    return proc.stdout


#: the examples a user runs (examples/*.py with a __main__ block); evp.py is a helper of
#: two of them, test_interop_scripted.py runs under pytest
RUNNABLE = ["man_page_example.py", "offload_engine.py", "many_jobs_asyncio.py", "tls_in_jobs.py"]
#: those that take --backend; tls_in_jobs.py always needs the openssl backend
WITH_BACKEND_OPTION = ["man_page_example.py", "offload_engine.py", "many_jobs_asyncio.py"]


@pytest.fixture(params=["openssl", "python"])
def default_backend(request: pytest.FixtureRequest) -> str:
    """The default backend of the example's process (``PYOSSL_ASYNC_BACKEND``), in CI both;
    skipped (failed when required) where it cannot run jobs."""
    name: str = request.param
    plugin.load_backend(name, request.config)
    return name


def test_the_list_of_runnable_examples_is_complete() -> None:
    found = sorted(p.name for p in EXAMPLES.glob("*.py") if 'if __name__ == "__main__":' in p.read_text())
    assert found == sorted(RUNNABLE)


@pytest.mark.parametrize("example", RUNNABLE)
def test_every_example_has_help_and_refuses_an_unknown_option(example: str) -> None:
    proc = _run(f"examples/{example}", "--help", timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: {example} [-h]"), proc.stdout + proc.stderr
    assert ("--backend {openssl,python}" in proc.stdout) == (example in WITH_BACKEND_OPTION), proc.stdout
    proc = _run(f"examples/{example}", "--no-such-option", timeout=120)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout + proc.stderr
    assert proc.stderr.rstrip().endswith("error: unrecognized arguments: --no-such-option"), proc.stderr


@pytest.mark.parametrize("example", RUNNABLE)
@pytest.mark.parametrize("variable", ["PYOSSL_ASYNC_LIBCRYPTO", "PYOSSL_ASYNC_DEBUG"])
def test_an_example_that_cannot_run_says_why_in_one_line(example: str, variable: str, tmp_path: Path) -> None:
    """A backend that cannot be had (the default one, as asked by the environment), or a
    setting that is not accepted, is one line and exit status 2 on every example, never a
    traceback."""
    value = str(tmp_path / "no-such-libcrypto.so.3") if variable == "PYOSSL_ASYNC_LIBCRYPTO" else "maybe"
    proc = _run(f"examples/{example}", env={variable: value}, timeout=120)
    assert (proc.returncode, proc.stdout) == (2, ""), (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{example}: "), proc.stderr
    assert f"{variable}={value}: " in lines[0], proc.stderr


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


def test_man_page_example_prints_the_man_pages_output(default_backend: str) -> None:
    env = {"PYOSSL_ASYNC_BACKEND": default_backend}
    assert run("examples/man_page_example.py", env=env) == EXPECTED_OUTPUT
    other = "python" if default_backend == "openssl" else "openssl"
    if other in backends():
        assert run("examples/man_page_example.py", "--backend", other, env=env) == EXPECTED_OUTPUT


def test_offload_engine_prints_what_the_readme_shows(default_backend: str) -> None:
    """The same on both backends but for the backend's name: the README's output."""
    shown = dict(readme_blocks())["python examples/offload_engine.py"]
    out = run("examples/offload_engine.py", env={"PYOSSL_ASYNC_BACKEND": default_backend})
    if "accelerator: 2 lanes, 5 ms latency, hashlib" in out:
        pytest.skip("no libcrypto for the engine's work here")
    assert out == shown.replace("backend: openssl\n", f"backend: {default_backend}\n", 1)


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
def test_many_jobs_asyncio(options: Tuple[str, ...], default_backend: str) -> None:
    if "--uvloop" in options:
        pytest.importorskip("uvloop")
    out = run("examples/many_jobs_asyncio.py", "--jobs", "200", *options, env={"PYOSSL_ASYNC_BACKEND": default_backend})
    match = MANY_JOBS.fullmatch(out)
    assert match, out
    assert match.group(1) == default_backend
    assert int(match.group(5)) > 1  # jobs really were in flight together
    assert match.group(6) == match.group(7) == "400"


def test_scripted_interop_test_passes(default_backend: str) -> None:
    out = run(
        "-m", "pytest", "-q", "-p", "no:cacheprovider", "examples/test_interop_scripted.py",
        env={"PYOSSL_ASYNC_BACKEND": default_backend},
    )
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


#: how long tls_in_jobs.py may take (it takes well under a second on the openssl default)
TLS_TIMEOUT = 30.0


def test_tls_in_jobs(default_backend: str) -> None:
    """Handshakes and records of two TLS connections run inside jobs paused in C, whatever
    the default backend (the example's own ``pa.pause_job()`` acts on its jobs' backend)."""
    if "openssl" not in backends():
        pytest.skip("the openssl backend cannot run jobs here")
    try:
        from pyossl_async.testing import EngineUnavailable, PauseEngine

        PauseEngine.load()
    except EngineUnavailable as exc:
        pytest.skip(f"the test engine is unavailable: {exc}")
    env = {"PYOSSL_ASYNC_BACKEND": default_backend}
    lines = run("examples/tls_in_jobs.py", env=env, timeout=TLS_TIMEOUT).splitlines()
    assert len(lines) == 4, lines
    seen = set()
    for line in lines:
        match = TLS_LINE.fullmatch(line)
        assert match, line
        connection, role, _, _, pauses, peer = match.groups()
        assert int(pauses) > 10 and {role, peer} == {"client", "server"}
        seen.add((connection, role))
    assert len(seen) == 4
