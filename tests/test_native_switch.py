"""The native job switch (``_native/_switch.py``): its code, its selection, its refusals.

The switch's behaviour with jobs is the whole suite's business (CI runs it with
the native switch and again with ``PYOSSL_ASYNC_SWITCH=chain``); here: the
machine code is what its documented source assembles to, ``info`` says which
switch runs, the setting forces either, and a switch from inside a C job that
is not ours is refused with nothing done.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import pytest

from pyossl_async._native._switch_code import SOURCE, SWITCH_OFFSET, TRAMPOLINE_OFFSET, X86_64_SYSV

from .conftest import run_isolated

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))


@pytest.mark.skipif(not (shutil.which("as") and shutil.which("objcopy")), reason="needs GNU as and objcopy")
def test_the_machine_code_is_what_its_source_assembles_to() -> None:
    from switch_code import assemble  # tools/switch_code.py

    import pyossl_async._native as native_pkg

    source = os.path.join(os.path.dirname(native_pkg.__file__), SOURCE)
    code, offsets = assemble(source)
    assert code == X86_64_SYSV, "switch_x86_64.S changed: run tools/switch_code.py"
    assert offsets == {"pyossl_switch": SWITCH_OFFSET, "pyossl_trampoline": TRAMPOLINE_OFFSET}


def test_the_source_ships_with_the_package() -> None:
    import pyossl_async._native as native_pkg

    assert os.path.isfile(os.path.join(os.path.dirname(native_pkg.__file__), SOURCE))


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["auto", "native", "chain"])
def test_the_setting_chooses_the_switch_and_info_says_which(openssl: Any, mode: str) -> None:
    proc = run_isolated(
        """
        import pyossl_async as pa
        b = pa.get_backend("openssl")
        info = b.info()
        print(info["switch"], "|", info["switch_reason"])
        print(pa.run_job(lambda a: a * 2, 21, backend=b))
        """,
        env={"PYOSSL_ASYNC_SWITCH": mode},
    )
    first, result = proc.stdout.splitlines()
    switch, reason = first.split(" | ")
    expected = "chain" if mode == "chain" else "native"
    assert switch == expected, reason
    assert result == "42"
    if mode == "chain":
        assert "PYOSSL_ASYNC_SWITCH=chain" in reason


@pytest.mark.subprocess
@pytest.mark.parametrize("switch", ["native", "chain"])
def test_resuming_from_inside_a_foreign_c_job_is_refused_and_changes_nothing(switch: str) -> None:
    """A C job started by someone else (raw ctypes here, libssl in real life) whose code
    resumes one of our paused jobs: refused (JobStateError), the job stays paused and
    resumes normally afterwards, on both switches."""
    proc = run_isolated(
        """
        import ctypes
        import pyossl_async as pa
        b = pa.get_backend("openssl")
        lib = b.crypto

        def ours(arg):
            pa.pause_job()
            return 7

        ctx = b.WaitCtx()
        st, h, _ = b.start_job(None, ctx, ours)
        out = [st.name]

        @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
        def raw(arg):
            try:
                b.start_job(h, ctx, None)
            except pa.JobStateError as exc:
                out.append("refused: " + str(exc))
            out.append(h.state)
            return 5

        from pyossl_async._libcrypto._types import ASYNC_JOB_p
        job = ASYNC_JOB_p(); ret = ctypes.c_int()
        w = lib.ASYNC_WAIT_CTX_new()
        st = lib.ASYNC_start_job(ctypes.byref(job), w, ctypes.byref(ret), ctypes.cast(raw, ctypes.c_void_p), None, 0)
        out.append((st, ret.value))
        out.append(tuple(b.start_job(h, ctx, None)))
        ctx.close()
        print(out)
        """,
        env={"PYOSSL_ASYNC_SWITCH": switch},
    )
    assert proc.stdout.strip() == (
        "['PAUSE', 'refused: start_job() called from inside a running job', 'paused', (3, 5), "
        "(<Status.FINISH: 3>, None, 7)]"
    )
