"""Interpreter exit with paused jobs: unwound where possible, never touched once CPython
has begun freeing thread states, and nothing hangs.

Each scenario runs in a child interpreter under ``-X dev`` and ``PYTHONMALLOC=debug``
(a freed thread state touched shows up there as a crash, not as silent corruption).
"""

from __future__ import annotations

import pytest

import pyossl_async as pa

from .conftest import load_backend, run_isolated

pytestmark = pytest.mark.subprocess

NAMES = ["openssl", "python"]
DEV = {"args": ("-X", "dev", "-W", "ignore"), "env": {"PYTHONMALLOC": "debug"}, "timeout": 120}


def _engine_or_skip() -> None:
    from pyossl_async.testing import EngineUnavailable, PauseEngine

    try:
        PauseEngine.load(load_backend("openssl"))
    except EngineUnavailable as exc:
        pytest.skip(f"the pause engine is unavailable: {exc}")


NEVER_READY = """
import pyossl_async as pa
from pyossl_async.testing import PauseEngine
b = pa.get_backend("openssl")
e = PauseEngine.load(b)
def job(arg):
    try:
        e.op(1, path="fd", ready="never")
    finally:
        print("finally ran", flush=True)
ctx = b.WaitCtx()
kept = b.start_job(None, ctx, job)[1]
cycle = [kept, ctx]
cycle.append(cycle)  # only the final collection can reach it
del kept, ctx, cycle
print("exiting", flush=True)
"""


def test_a_job_paused_in_c_that_cannot_be_unwound_is_left_alone_at_exit() -> None:
    """The exit hook gives up after the close timeout, says so in one line (no traceback);
    finalisation never resumes the job."""
    _engine_or_skip()
    env = dict(DEV["env"], PYOSSL_ASYNC_CLOSE_TIMEOUT="0.2")  # type: ignore[arg-type]
    proc = run_isolated(NEVER_READY, args=DEV["args"], env=env, timeout=120)  # type: ignore[arg-type]
    assert proc.stdout.split("\n")[0] == "exiting"
    assert "finally ran" not in proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.startswith("pyossl_async:")]
    assert len(lines) == 1 and "1 paused openssl job(s) could not be unwound within 0.2 s" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and "Fatal Python error" not in proc.stderr, proc.stderr


ATEXIT_FIRST = """
import atexit, gc, sys

def late():  # registered before the library: runs after its exit hook
    import pyossl_async as pa
    b = pa.get_backend(NAME)
    ctx = b.WaitCtx()
    def job(arg):
        try:
            b.pause_job()
        finally:
            print("finally ran", flush=True)
    handle = b.start_job(None, ctx, job)[1]
    cycle = [handle, ctx]
    cycle.append(cycle)
    print("paused a job after the library's exit hook", flush=True)

atexit.register(late)
import pyossl_async as pa
pa.get_backend(NAME)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("name", NAMES)
def test_a_job_paused_after_the_exit_hook_is_never_resumed(name: str) -> None:
    load_backend(name)
    proc = run_isolated(ATEXIT_FIRST.replace("NAME", repr(name)), **DEV)  # type: ignore[arg-type]
    assert proc.stdout.split()[:1] == ["exiting"]
    assert "paused a job after the library's exit hook" in proc.stdout
    assert "Fatal Python error" not in proc.stderr and "Segmentation" not in proc.stderr


START_IN_FINALISER = """
import pyossl_async as pa
b = pa.get_backend(NAME)

class Late:
    def __del__(self):
        try:
            b.start_job(None, None, lambda a: 1)
            print("started", flush=True)
        except pa.JobStateError as exc:
            print("refused:", exc, flush=True)

keep = Late()
keep.cycle = keep  # collected only by the final collection
print("exiting", flush=True)
"""


@pytest.mark.parametrize("name", NAMES)
def test_start_job_from_a_finaliser_at_exit_is_refused_not_hung(name: str) -> None:
    load_backend(name)
    proc = run_isolated(START_IN_FINALISER.replace("NAME", repr(name)), **DEV)  # type: ignore[arg-type]
    lines = proc.stdout.splitlines()
    assert lines[0] == "exiting"
    # CPython may or may not run the finaliser at exit; when it does, it is refused
    assert all(line.startswith("refused: the interpreter is shutting down") for line in lines[1:]), lines


def test_default_close_timeout_from_the_environment() -> None:
    proc = run_isolated(
        "import pyossl_async.drive as d; print(d.DEFAULT_CLOSE_TIMEOUT)", env={"PYOSSL_ASYNC_CLOSE_TIMEOUT": "2.5"}
    )
    assert proc.stdout.strip() == "2.5"
    # not read at import: a bad value is refused at first use (tests/test_settings.py)
    proc = run_isolated("import pyossl_async.drive", env={"PYOSSL_ASYNC_CLOSE_TIMEOUT": "soon"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert pa.get_backend() is not None
