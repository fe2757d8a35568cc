"""``benchmarks/soak.py --quick`` runs, reports every phase and metric, and finds
nothing growing that must not grow.

The script prints figures rather than asserting them; what is checked here is
only what is exact whatever the machine's speed: fds, Python thread states and
OS threads do not grow between the post-warm-up sample and the end of a phase,
and come back to their starting values once the phase is torn down. Time and
RSS are never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

import pytest

from .conftest import VARIANTS, variant

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "soak.py"
PHASES = ("threads", "churn")
METRICS = ("rss", "malloc", "blocks", "fds", "tstates", "threads", "maps")
EXACT = ("fds", "tstates", "threads")


def run_soak(*args: str, timeout: float = 120, extra_env: Dict[str, str] = {}) -> subprocess.CompletedProcess[str]:  # noqa: B006
    """The script as a user runs it, in a fresh interpreter that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "-X", "faulthandler", "-W", "error", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.subprocess
@pytest.mark.parametrize("variant_name", VARIANTS)
def test_quick_soak_holds_flat(variant_name: str, tmp_path: Path) -> None:
    name, env = variant(variant_name)  # skips (or fails, if required) when the backend cannot load
    report = tmp_path / "soak.json"
    proc = run_soak("--quick", "--backend", name, "--json", str(report), extra_env=env)
    assert proc.returncode == 0, f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert "Warning" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    doc: Dict[str, Any] = json.loads(report.read_text())
    assert doc["ok"] is True
    result = doc["backends"][name]
    assert set(result["phases"]) == set(PHASES)
    for phase in PHASES:
        res = result["phases"][phase]
        where = f"{name}/{phase}"
        assert not res["problems"], (where, res["problems"])
        samples = {s["label"]: s for s in res["samples"]}
        assert {"before", "warm-up", "end", "after"} <= set(samples), (where, list(samples))
        assert len(res["samples"]) >= 5, where  # periodic samples in between
        for s in res["samples"]:
            for key in (*METRICS, "jobs", "resumes", "t"):
                assert isinstance(s[key], (int, float)), (where, s["label"], key)
        assert set(res["verdicts"]) == set(METRICS), where
        before, warm, end, after = (samples[k] for k in ("before", "warm-up", "end", "after"))
        assert end["jobs"] > warm["jobs"] > 0, where
        for m in EXACT:
            assert end[m] == warm[m], (where, m, warm[m], end[m])
            assert after[m] == before[m], (where, m, before[m], after[m])
            assert res["verdicts"][m]["flat"] is True, (where, m)
        # every job paused or running at the warm-up sample is a thread state of its own
        # (not on greenlets: they run on their caller's thread state)
        if variant_name != "python-greenlet":
            assert warm["tstates"] > before["tstates"], where
    checks = result["phases"]["threads"]["checks"]
    assert checks["started"] == checks["finished"] + checks["closed"] + checks["closed_at_teardown"]
    assert checks["closed"] > 0 and checks["finished"] > 0
    assert checks["finally_ran"] == checks["started"]
    assert checks["cancelled_in_job"] == checks["closed"] + checks["closed_at_teardown"]
    for line in ("threads:", "churn:", "growth from warm-up to end:", "thread states", "verdict:"):
        assert line in proc.stdout, line


def test_bad_arguments_are_refused() -> None:
    proc = run_soak("--threads", "0", timeout=60)
    assert proc.returncode == 2
    assert "--threads must be at least 1" in proc.stderr
