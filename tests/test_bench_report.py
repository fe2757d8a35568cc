"""The bench's references and verdicts (issue 15, item 1): what it compares, not how fast.

Nothing here is timed: the figures are made up, or only checked to exist.
"""

from __future__ import annotations

import sys
from typing import Any, Dict

import pytest

import pyossl_async as pa
from pyossl_async._cli import bench as _bench


def _r(median: float) -> Dict[str, float]:
    return {"median": median, "min": median, "max": median}


def test_targets_are_judged_against_the_prebuilt_floors() -> None:
    results: Dict[str, Any] = {
        "cycle": {
            "floor": _r(0.5), "floor_minimal": _r(1.0), "openssl": _r(1.4), "openssl_module": _r(1.6),
            "openssl_chain": _r(2.8), "python": _r(7.0),
        },
        "start_finish": {"floor": _r(0.5), "floor_minimal": _r(1.0), "openssl": _r(6.0)},
        "aio": {"openssl": {"ratio": 1.9}, "openssl/uvloop": {"ratio": 2.6}},
        "scaling": {
            "openssl": [
                {"paused": 10, "rss_kib_per_job": 8.0, "resume_us": 1.0},
                {"paused": 1000, "rss_kib_per_job": 40.0, "resume_us": 1.1},
            ]
        },
        "burst": {"openssl": {"ratio": 1.5}},
    }
    verdicts = {t["target"]: (t["value"], t["met"]) for t in _bench._targets(results)}
    cycle = next(k for k in verdicts if k.startswith("openssl cycle"))
    # 1.4 against the prebuilt floor of 1.0, not against the naive 0.5
    assert verdicts[cycle] == ("1.40x", 1.4 <= (1.5 if sys.version_info >= (3, 12) else 2.5))
    # the module functions against the backend methods, not against the floor
    assert verdicts["cycle through module functions <= 1.1x backend methods"] == ("1.14x", False)
    assert verdicts["call-chain fallback cycle (informational: vs native)"] == ("2.00x", None)
    assert verdicts["openssl start+finish <= 5x prebuilt start floor"] == ("6.00x", False)
    assert verdicts["aio.run_job per wait <= 2x plain coroutine (openssl/asyncio)"] == ("1.90x", True)
    assert verdicts["aio.run_job per wait <= 2.5x plain coroutine (openssl/uvloop)"] == ("2.60x", False)
    assert verdicts["openssl: RSS per paused job <= 32 KiB (at 1000 paused)"] == ("40.00 KiB", False)
    assert verdicts["openssl: resume at 1000 paused <= 1.2x at 10"] == ("1.10x", True)
    assert verdicts["openssl: burst stall <= 2x plain coroutines"] == ("1.50x", True)
    assert verdicts["python cycle (greenlet engine) <= 3x openssl cycle"] == ("not measured", None)
    assert verdicts["python cycle on threads (informational: vs openssl)"] == ("5.00x", None)
    results["cycle"]["python_greenlet"] = _r(4.0)
    verdicts = {t["target"]: (t["value"], t["met"]) for t in _bench._targets(results)}
    assert verdicts["python cycle (greenlet engine) <= 3x openssl cycle"] == ("2.86x", True)


def test_missing_rows_are_not_measured_rather_than_met() -> None:
    verdicts = _bench._targets({"cycle": {}, "start_finish": {}})
    assert all(t["met"] is None for t in verdicts if "cycle" in t["target"] or "start" in t["target"])


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_the_aio_rows_run_on_both_loops(backend: pa.Backend, loop_kind: str) -> None:
    """The plain-coroutine reference once raised InvalidStateError on uvloop (a reader
    called twice before its removal); both sides must run on each loop."""
    if loop_kind == "uvloop":
        pytest.importorskip("uvloop")
    result = _bench._aio(backend, 4, 3, 1, loop_kind)
    assert result["job_us"] > 0 and result["coroutine_us"] > 0
