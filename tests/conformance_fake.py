"""Fake conformance catalogues for testing the runner itself (not collected by pytest).

The runner's worker children import these by name (``tests.conformance_fake:<fn>``),
so they must be importable from the repository root. C twins, where a fake
scenario has one, are written by the test into ``$CONFORMANCE_FAKE_DIR`` and
referred to by absolute path.

At the end, a folder of a user's own scenarios for ``--scenarios PATH``
(:func:`write_user_suite`): one scenario that agrees, one that disagrees, one
that raises.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any, Callable, List, Optional

import pyossl_async as pa
from pyossl_async.testing.conformance import Scenario, Trace

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


def _raises_on_python(be: pa.Backend) -> List[str]:
    """The job raises on the python backend only: a disagreement whose trace recorded an exception."""
    t = Trace(be)

    def job(arg: object) -> int:
        if be.name == "python":
            raise ValueError("only on python")
        return 1

    t.start("j", None, job)
    return t.lines


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


def recorded_exception() -> List[Scenario]:
    return [_scenario("raises_on_python", _raises_on_python)]


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


# -- a folder of "user" scenarios, for --scenarios PATH ------------------------------------------

#: a user's scenario module: one scenario that agrees with its twin, one whose twin does
#: something else (a disagreement), one with a typo inside its job (an error with a traceback)
USER_MODULE = '''\
"""A user's scenarios: wait-context status and callbacks."""

from typing import Any, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


@scenario
def status_survives_resume(be: pa.Backend) -> List[str]:
    """The status a job sets before it pauses is still there after the resume."""
    t = Trace(be)
    done = t.sym("done")

    def on_ready(arg: Any) -> int:
        t.line(f"on_ready({t.n(arg)})")
        return 1

    t.name(on_ready, "on_ready")
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        wctx = t.own_ctx()
        t.set_callback(wctx, on_ready, done, who="j")
        t.set_status(wctx, pa.WaitStatus.EAGAIN, who="j")
        t.pause(who="j")
        t.get_status(wctx, who="j")
        return 7

    handle = t.start("j", ctx, job)
    t.get_status(ctx)
    found = t.get_callback(ctx)
    if found is not None:
        t.call_callback(found[0], found[1])
    t.resume(handle)
    t.ctx_free(ctx)
    return t.lines


@scenario
def status_after_finish(be: pa.Backend) -> List[str]:
    """What a finished job leaves in the status (its twin sets another value)."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        t.set_status(t.own_ctx(), pa.WaitStatus.ERR, who="j")
        return 0

    t.start("j", ctx, job)
    t.get_status(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def status_typo(be: pa.Backend) -> List[str]:
    """A typo inside the job."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        t.set_stauts(t.own_ctx(), pa.WaitStatus.OK, who="j")
        return 0

    t.start("j", ctx, job)
    t.ctx_free(ctx)
    return t.lines
'''

#: the twins of USER_MODULE's scenarios, by file name (in the folder's c/)
USER_TWINS = {
    "status_survives_resume.c": r"""
#include "trace.h"

static int on_ready(void *arg)
{
    T("on_ready(%s)", tn(arg));
    return 1;
}

static void *done;

static int job(void *arg)
{
    ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(ASYNC_get_current_job());

    t_set_callback("j", wctx, on_ready, done);
    t_set_status("j", wctx, ASYNC_STATUS_EAGAIN);
    t_pause("j");
    t_get_status("j", wctx);
    return 7;
}

int main(void)
{
    ASYNC_JOB *handle = NULL;
    ASYNC_WAIT_CTX *ctx;
    ASYNC_callback_fn cb;
    void *arg;

    done = t_sym("done");
    tn_set((const void *)on_ready, "on_ready");
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_get_status(NULL, ctx);
    if (t_get_callback(NULL, ctx, &cb, &arg))
        t_call_callback(NULL, cb, arg);
    t_resume(&handle);
    t_ctx_free(ctx);
    return 0;
}
""",
    "status_after_finish.c": r"""
#include "trace.h"

static int job(void *arg)
{
    t_set_status("j", ASYNC_get_wait_ctx(ASYNC_get_current_job()), ASYNC_STATUS_OK);
    return 0;
}

int main(void)
{
    ASYNC_JOB *handle = NULL;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_start(&handle, "j", ctx, job, NULL, 0);
    t_get_status(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
""",
    "status_typo.c": r"""
#include "trace.h"

static int job(void *arg)
{
    t_set_status("j", ASYNC_get_wait_ctx(ASYNC_get_current_job()), ASYNC_STATUS_OK);
    return 0;
}

int main(void)
{
    ASYNC_JOB *handle = NULL;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_start(&handle, "j", ctx, job, NULL, 0);
    t_ctx_free(ctx);
    return 0;
}
""",
}


def write_user_suite(folder: str) -> str:
    """Write USER_MODULE (as ``status.py``) and its twins (in ``c/``) into ``folder``; returns it."""
    os.makedirs(os.path.join(folder, "c"), exist_ok=True)
    with open(os.path.join(folder, "status.py"), "w") as f:
        f.write(USER_MODULE)
    for name, source in USER_TWINS.items():
        with open(os.path.join(folder, "c", name), "w") as f:
            f.write(source.lstrip())
    return folder
