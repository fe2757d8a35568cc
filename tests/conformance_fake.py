"""Fake conformance catalogues for testing the runner itself (not collected by pytest).

The runner's worker children import these by name (``tests.conformance_fake:<fn>``),
so they must be importable from the repository root. C twins, where a fake
scenario has one, are written by the test into ``$CONFORMANCE_FAKE_DIR`` and
referred to by absolute path.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable, List, Optional

from conformance.catalogue import Scenario
from conformance.trace import Trace

import pyossl_async as pa

ENV_DIR = "CONFORMANCE_FAKE_DIR"

#: a C twin that prints exactly what ``_agreeing`` prints
AGREEING_C = r"""
#include "trace.h"
int main(void)
{
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    t_set_status(NULL, ctx, 5);
    t_get_status(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
"""

#: a C twin that does not compile
BROKEN_C = '#include "trace.h"\nint main(void) { this is not C; }\n'


def _agreeing(be: pa.Backend) -> List[str]:
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    t.set_status(ctx, 5)
    t.get_status(ctx)
    t.ctx_free(ctx)
    return t.lines


def _disagreeing(be: pa.Backend) -> List[str]:
    """Each backend reports its own name on line 2: they can never agree."""
    return ["same first line", f"backend is {be.name}", "same last line"]


def _crashing(be: pa.Backend) -> List[str]:
    os.kill(os.getpid(), signal.SIGSEGV)
    return []  # pragma: no cover


def _hanging(be: pa.Backend) -> List[str]:
    time.sleep(600)
    return []  # pragma: no cover


def _raising(be: pa.Backend) -> List[str]:
    raise RuntimeError("a scenario bug")


def _leaves_paused_job(be: pa.Backend) -> List[str]:
    ctx = be.WaitCtx()
    status, job, _ = be.start_job(None, ctx, lambda arg: int(be.pause_job()))
    _LEAKED.append((ctx, job))
    return [status.name]


_LEAKED: List[Any] = []


def _scenario(name: str, func: Callable[[pa.Backend], List[str]], twin: Optional[str] = None) -> Scenario:
    path = os.path.join(os.environ.get(ENV_DIR, "/nonexistent"), twin) if twin else None
    return Scenario(
        name=name,
        func=func,
        doc=(func.__doc__ or name).strip().splitlines()[0],
        group="fake",
        twin=path,
        why_no_twin="" if twin else "a fake",
    )


def agreeing() -> List[Scenario]:
    return [_scenario("agreeing", _agreeing, "agreeing.c")]


def disagreeing() -> List[Scenario]:
    return [_scenario("agreeing", _agreeing), _scenario("disagreeing", _disagreeing)]


def broken_twin() -> List[Scenario]:
    return [_scenario("agreeing", _agreeing, "agreeing.c"), _scenario("broken_twin", _agreeing, "broken.c")]


def crashing() -> List[Scenario]:
    return [
        _scenario("before", _agreeing),
        _scenario("crashing", _crashing),
        _scenario("after", _agreeing),
        _scenario("raising", _raising),
        _scenario("leaves_paused_job", _leaves_paused_job),
        _scenario("last", _agreeing),
    ]


def hanging() -> List[Scenario]:
    return [_scenario("hanging", _hanging), _scenario("after", _agreeing)]
