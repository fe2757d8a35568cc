"""Bugs found in the backends while writing the drivers (issue 5), shown by tests.

They are marked ``xfail(strict=True)`` where they fail, so the suite stays green
and the marker has to go once the bug is fixed (a strict xfail that passes fails).
"""

from __future__ import annotations

import sys

import pytest

import pyossl_async as pa

from .conftest import run_isolated


@pytest.mark.subprocess
@pytest.mark.xfail(
    sys.version_info < (3, 12),
    strict=True,
    reason="_base._sync_tracers re-installs sys.getprofile() with sys.setprofile(); "
    "cProfile's profiler object is not callable (3.9-3.11), so every job fails to start",
)
@pytest.mark.parametrize("name", ["openssl", "python"])
def test_a_job_started_under_cprofile_runs(name: str) -> None:
    """Profiling a program that runs jobs must not break the jobs (contract: profilers see job code)."""
    proc = run_isolated(
        f"""
        import cProfile
        import pyossl_async as pa
        be = pa.get_backend({name!r})
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            result = be.start_job(None, None, lambda arg: 1)
        except BaseException as exc:
            result = repr(exc)
        finally:
            profiler.disable()
        print(result)
        """,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr((pa.FINISH, None, 1)), proc.stdout + proc.stderr
    assert "Exception escaped a job body" not in proc.stderr
