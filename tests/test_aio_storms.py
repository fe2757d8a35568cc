"""asyncio storms: cancellations, timeouts and abandoned loops around ``aio`` jobs.

The guarantee under test is the one plain coroutines have: when ``asyncio.run``
returns, every job its tasks started has unwound (its ``finally`` ran), whether
it finished, was cancelled or timed out; and a loop closed and dropped with jobs
in flight leaves none of them paused, and no worker thread behind.

Each scenario is a child program (``tests/children/``), run plain and under
``-X dev``, on the openssl backend and on the python backend with each engine.

What the storm found: a task waiting for its job's wait-ctx callback was
reachable from nothing (the callback pipe holds its listeners weakly), so a
collection could destroy it while pending ("Task was destroyed but it is
pending!"); on a thread other than the loop's (an accelerator's, here the pool's
threads) its job could not be closed there, and ``asyncio.run`` returned with
``finally`` blocks not run. The abandoned loop found that the per-loop tables
kept a loop with queued job steps alive for good, and that a loop abandoned on
a thread that then exits left its jobs orphaned instead of unwound.
"""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from .conftest import VARIANTS, run_child, variant

pytestmark = pytest.mark.subprocess

MODES = {"plain": (), "dev": ("-X", "dev")}



@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant_name", VARIANTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_asyncio_run_returns_with_every_job_unwound_after_a_cancellation_storm(
    variant_name: str, mode: str, seed: int
) -> None:
    name, env = variant(variant_name)
    args = (*MODES[mode], "-W", "ignore")
    proc = run_child("aio_cancellation_storm", name, str(seed), env=env, args=args, timeout=240)
    out: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["began"] > 0, out
    assert out["missing"] == [], out  # a job that began and whose finally had not run
    assert out["destroyed"] == [], out  # a task collected while its job was in flight




@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant_name", VARIANTS)
@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_loop_closed_with_jobs_in_flight_unwinds_them_and_ends_its_workers(
    variant_name: str, mode: str, where: str
) -> None:
    name, env = variant(variant_name)
    args = (*MODES[mode], "-W", "ignore")
    proc = run_child("abandoned_loop", name, where, env=env, args=args, timeout=240)
    out: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["began"] == 90, out
    assert out["missing"] == [] and out["unwound"] == 90, out
    assert out["paused"] == 0 and out["workers"] == 0, out
