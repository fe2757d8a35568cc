"""Tracers and profilers: jobs run under the caller's, and profiling never breaks a job."""

from __future__ import annotations

import pytest

import pyossl_async as pa

from .conftest import run_isolated


@pytest.mark.subprocess
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
    assert proc.stdout.strip() == repr(pa.StartResult(pa.FINISH, None, 1)), proc.stdout + proc.stderr
    assert "Exception escaped a job body" not in proc.stderr
