"""The real backend's own machinery: prototypes, error queue, thread states, stacks.

Anything that could crash runs in a child interpreter (``run_isolated``).
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import pytest

from pyossl_async._errors import AsyncError, ErrorEntry
from pyossl_async._libcrypto import PROTOTYPES, drain_errors, err_get_lib, err_get_reason
from pyossl_async._libcrypto._prototypes import CHECK_NONNULL
from pyossl_async.testing import _settings as _testing_settings

from .conftest import run_isolated

ALT_LIBCRYPTO = _testing_settings.alt_libcrypto() or ""

POINTER_RESULTS = {
    "ASYNC_get_current_job",
    "ASYNC_get_wait_ctx",
    "ASYNC_WAIT_CTX_new",
    "OpenSSL_version",
    "ERR_lib_error_string",
    "ERR_reason_error_string",
}


def test_prototype_table(openssl: Any) -> None:
    names = [p.name for p in PROTOTYPES]
    assert len(names) == len(set(names))
    for proto in PROTOTYPES:
        if proto.name in POINTER_RESULTS:
            assert proto.restype is not ctypes.c_int and ctypes.sizeof(proto.restype) == ctypes.sizeof(
                ctypes.c_void_p
            ), proto.name
        if proto.optional:
            assert proto.since > 0x30000000
        bound = openssl.crypto.has(proto.name)
        assert bound or (proto.optional and openssl.crypto.version_number < proto.since) or proto.optional, proto.name
        if bound:
            fn = getattr(openssl.crypto, proto.name)
            assert fn.restype is proto.restype and tuple(fn.argtypes) == proto.argtypes
    # the job switches must release the GIL, everything else keeps it
    releasing = {p.name for p in PROTOTYPES if p.releases_gil}
    assert releasing == {"ASYNC_start_job", "ASYNC_pause_job"}


def test_err_macros_match_libcrypto(openssl: Any) -> None:
    lib = openssl.crypto
    code = 0x19800067
    assert (err_get_lib(code), err_get_reason(code)) == (51, 103)
    assert lib.ERR_lib_error_string(code) == b"ASYNC routines"
    assert lib.ERR_reason_error_string(code) == b"invalid pool size"
    assert err_get_lib(0x198C0103) == 51 and err_get_reason(0x198C0103) == 0xC0103
    system = 0x80000000 | 13
    assert (err_get_lib(system), err_get_reason(system)) == (2, 13)


def test_failed_init_thread_drains_the_queue(openssl: Any) -> None:
    assert openssl.init_thread(0, 5) is False
    assert openssl.last_errors == (ErrorEntry(51, 103, "error:19800067:ASYNC routines::invalid pool size"),)
    assert drain_errors(openssl.crypto) == ()


def test_errcheck_raises_typed_errors_with_the_queue(openssl: Any) -> None:
    lib = openssl.crypto
    assert lib.ASYNC_init_thread(3, 9) == 0  # queues "invalid pool size"
    check = lib.ASYNC_WAIT_CTX_new.errcheck
    with pytest.raises(AsyncError) as info:
        check(None, lib.ASYNC_WAIT_CTX_new, ())
    assert [e.reason for e in info.value.errors] == [103]
    assert "invalid pool size" in str(info.value)
    assert any(p.check == CHECK_NONNULL for p in PROTOTYPES)


def test_info(openssl: Any) -> None:
    info = openssl.info()
    assert info["openssl_version"].startswith("OpenSSL 3")
    assert info["stack_mode"] in ("nested", "openssl")
    assert info["gilstate_binding"] in ("tls", "bind")
    assert info["stack_size"] >= 64 * 1024


def test_job_runs_on_its_own_thread_state(openssl: Any) -> None:
    api = ctypes.pythonapi
    api.PyThreadState_Get.restype = ctypes.c_void_p
    api.PyGILState_GetThisThreadState.restype = ctypes.c_void_p
    seen: list[Any] = []

    def job(arg: Any) -> int:
        for _ in range(2):
            seen.append(
                (
                    api.PyThreadState_Get(),
                    api.PyGILState_GetThisThreadState(),
                    api.PyGILState_Check(),
                    threading.get_ident(),
                )
            )
            openssl.pause_job()
        return 0

    caller = api.PyThreadState_Get()
    with openssl.WaitCtx() as ctx:
        _, j1, _ = openssl.start_job(None, ctx, job)
        _, j2, _ = openssl.start_job(None, ctx, job)
        for j in (j1, j2, j1, j2):
            openssl.start_job(j, None, None)
            assert api.PyGILState_GetThisThreadState() == caller == api.PyThreadState_Get()
    states = {s[0] for s in seen}
    assert caller not in states and len(states) == 2
    assert all(s[0] == s[1] and s[2] == 1 for s in seen)
    assert {s[3] for s in seen} == {threading.get_ident()}  # same OS thread (allowed difference)


STRESS = """
import ctypes, gc, random, signal, sys, threading
import pyossl_async as pa
b = pa.get_backend("openssl")
libc = ctypes.CDLL(None)
CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
hits = []
signal.signal(signal.SIGUSR1, lambda *a: hits.append(1))

def job(n):
    # a ctypes callback called from C inside a job: PyGILState_Ensure must find the job's state
    arr = (ctypes.c_int * 50)(*range(50, 0, -1))
    @CMP
    def cmp(a, b):
        return ctypes.c_int.from_address(a).value - ctypes.c_int.from_address(b).value
    for i in range(3):
        libc.qsort(arr, 50, 4, cmp)
        if n % 7 == 0:
            signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)
        b.pause_job()
        gc.collect() if n % 50 == 0 else None
    assert list(arr) == list(range(1, 51))
    return n

def drive(seed, count):
    rng = random.Random(seed)
    with b.WaitCtx() as ctx:
        hs = {n: b.start_job(None, ctx, job, n)[1] for n in range(count)}
        while hs:
            n = rng.choice(list(hs))
            st, _, r = b.start_job(hs[n], None, None)
            if st == pa.FINISH:
                assert r == n
                del hs[n]
    b.cleanup_thread()

drive(1, 200)
ts = [threading.Thread(target=drive, args=(i, 100)) for i in range(3)]
[t.start() for t in ts]; [t.join() for t in ts]
gc.collect()
print("ok", len(hits) > 0)
"""


@pytest.mark.subprocess
def test_stress_under_dev_mode() -> None:
    """-X dev checks, on every allocation, that the GIL-state slot names the running thread state."""
    proc = run_isolated(STRESS, args=("-X", "dev"))
    assert proc.stdout.split() == ["ok", "True"]


@pytest.mark.subprocess
def test_stress_with_debug_allocator() -> None:
    proc = run_isolated(STRESS, env={"PYTHONMALLOC": "debug"})
    assert proc.stdout.split() == ["ok", "True"]


@pytest.mark.subprocess
@pytest.mark.parametrize("mode", ["nested", "openssl"])
def test_alternative_libcrypto_with_mem_functions(mode: str) -> None:
    if not ALT_LIBCRYPTO:
        pytest.skip("set PYOSSL_ASYNC_TEST_ALT_LIBCRYPTO to an OpenSSL 3.2+ libcrypto (.ci/run does)")
    proc = run_isolated(
        STRESS + "\ninfo = b.info(); print(info['stack_mode'], info['openssl_version'])\n",
        env={"PYOSSL_ASYNC_LIBCRYPTO": ALT_LIBCRYPTO, "PYOSSL_ASYNC_STACK_MODE": mode},
        args=("-X", "dev"),
    )
    lines = proc.stdout.splitlines()
    assert lines[0] == "ok True"
    assert lines[1].startswith(mode + " OpenSSL 3.")


@pytest.mark.subprocess
def test_foreign_c_job_cannot_start_jobs() -> None:
    """A job started by raw ctypes (not by us) that calls into the API gets errors, not crashes."""
    proc = run_isolated(
        """
        import ctypes
        import pyossl_async as pa
        b = pa.get_backend("openssl")
        lib = b.crypto
        out = []
        @ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
        def raw(arg):
            try:
                b.start_job(None, None, lambda a: 0)
            except pa.JobStateError:
                out.append("refused")
            out.append(b.pause_job())  # not one of ours: does not pause
            out.append(b.get_current_job())
            return 5
        from pyossl_async._libcrypto._types import ASYNC_JOB_p
        job = ASYNC_JOB_p(); ret = ctypes.c_int()
        w = lib.ASYNC_WAIT_CTX_new()
        st = lib.ASYNC_start_job(ctypes.byref(job), w, ctypes.byref(ret), ctypes.cast(raw, ctypes.c_void_p), None, 0)
        print(st, ret.value, out)
        """
    )
    assert proc.stdout.strip() == "3 5 ['refused', True, None]"


@pytest.mark.subprocess
def test_fork_with_paused_jobs() -> None:
    proc = run_isolated(
        """
        import os
        import pyossl_async as pa
        for name in pa.available_backends():
            b = pa.get_backend(name)
            ctx = b.WaitCtx()
            def job(arg):
                b.pause_job()
                return 1
            _, j, _ = b.start_job(None, ctx, job)
            pid = os.fork()
            if pid == 0:
                try:
                    b.start_job(j, None, None)
                    os._exit(1)
                except pa.JobStateError:
                    pass
                # new jobs work in the child
                st, j2, _ = b.start_job(None, b.WaitCtx(), job)
                assert st == pa.PAUSE
                assert b.start_job(j2, None, None) == (pa.FINISH, None, 1)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0, (name, status)
            assert b.start_job(j, None, None) == (pa.FINISH, None, 1)
            ctx.close()
            print(name, "ok")
        """
    )
    assert "openssl ok" in proc.stdout


@pytest.mark.subprocess
@pytest.mark.slow
def test_no_growth_over_100000_jobs() -> None:
    proc = run_isolated(
        """
        import gc, os
        import pyossl_async as pa

        def rss():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

        for name in pa.available_backends():
            b = pa.get_backend(name)
            n = 100_000 if name == "openssl" else 20_000
            def job(arg):
                b.pause_job()
                return arg
            def batch(count):
                with b.WaitCtx() as ctx:
                    for i in range(count):
                        r, w = os.pipe()
                        ctx.set_wait_fd("k", r, w, lambda c, k, fd, d: (os.close(fd), os.close(d)))
                        _, h, _ = b.start_job(None, ctx, job, i)
                        assert b.start_job(h, None, None) == (pa.FINISH, None, i)
                        c = ctx.get_fd("k")
                        ctx.clear_fd("k")
                        os.close(c[0]); os.close(c[1])
            batch(n // 10)
            gc.collect()
            fds0, rss0 = len(os.listdir("/proc/self/fd")), rss()
            batch(n)
            gc.collect()
            fds1, rss1 = len(os.listdir("/proc/self/fd")), rss()
            print(name, fds1 - fds0, (rss1 - rss0) // 1024)
            assert fds1 == fds0, (fds0, fds1)
            assert rss1 - rss0 < 8 * 1024 * 1024, (rss0, rss1)
        """,
        timeout=600,
    )
    assert "openssl 0" in proc.stdout
