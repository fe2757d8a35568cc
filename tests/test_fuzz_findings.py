"""Regression tests for bugs the API fuzzer and the fault tests found (issue 7).

Each test names the bug it guards against; the fix is in the commit that added it.
"""

from __future__ import annotations

import pytest

import pyossl_async as pa

from .conftest import run_isolated


@pytest.mark.subprocess
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_huge_init_size_is_refused_not_preallocated(name: str) -> None:
    """``init_thread(2**63, 2**31 - 1)`` made OpenSSL 3.0 malloc a stack per job until
    the kernel killed the process (the python backend started threads for 50 s).

    Run in a child with its address space limited to 4 GiB, so the unfixed code
    fails fast (no job stack can be had) instead of exhausting the machine.
    """
    if name not in pa.available_backends():
        pytest.skip(f"{name} unavailable")
    proc = run_isolated(
        f"""
        import resource
        import pyossl_async as pa
        b = pa.get_backend({name!r})
        b.is_capable()
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        for sizes in [(2**63, 2**31 - 1), (2**64 - 1, 2**64 - 1), (2**15 + 1, 2**15 + 1)]:
            try:
                b.init_thread(*sizes)
            except ValueError as exc:
                assert "init_size" in str(exc), exc
            else:
                raise AssertionError(f"init_thread{{sizes}} was accepted")
        # sizes OpenSSL itself refuses still give False, however large
        assert b.init_thread(0, 2**31 - 1) is False
        assert b.init_thread(5, 2**63) is False
        assert b.init_thread(2**63, 3) is True
        assert b.start_job(None, None, lambda a: 4) == (pa.FINISH, None, 4)
        b.cleanup_thread()
        print("ok")
        """,
        timeout=120,
    )
    assert proc.stdout.strip() == "ok"
