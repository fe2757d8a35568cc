"""Wait-context callbacks and status: what is stored, what comes back, an engine's use of them."""

from __future__ import annotations

from typing import Any, List

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace, scenario


@scenario
def callback_set_get_null(be: pa.Backend) -> List[str]:
    """``get_callback`` returns 0 whenever the stored callback is NULL (even with an argument); a NULL argument
    comes back."""
    t = Trace(be)

    def cb1(arg: Any) -> int:
        t.line(f"cb1 called with {t.n(arg)}")
        return 1

    def cb2(arg: Any) -> int:
        t.line(f"cb2 called with {t.n(arg)}")
        return 2

    t.name(cb1, "cb1")
    t.name(cb2, "cb2")
    a1 = t.sym("a1")
    ctx = t.ctx_new("ctx")
    t.get_callback(ctx)
    t.set_callback(ctx, None, a1)
    t.get_callback(ctx)
    t.set_callback(ctx, cb1, a1)
    found = t.get_callback(ctx)
    if found:
        t.call_callback(found[0], found[1])
    t.set_callback(ctx, cb2, None)
    found = t.get_callback(ctx)
    if found:
        t.call_callback(found[0], found[1])
    t.set_callback(ctx, None, None)
    t.get_callback(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def status_any_int(be: pa.Backend) -> List[str]:
    """``set_status`` stores any C ``int`` unchecked, the four ASYNC_STATUS values and others alike; the default
    is 0."""
    t = Trace(be)
    ctx = t.ctx_new("ctx")
    t.get_status(ctx)
    for value in (2, 3, 1, 12345, -1, 2147483647, -2147483648, 0):
        t.set_status(ctx, value)
        t.get_status(ctx)
    t.ctx_free(ctx)
    return t.lines


@scenario
def callback_engine_pattern(be: pa.Backend) -> List[str]:
    """An engine's use: the job sets a callback and status OK and pauses; the caller runs the callback, then resumes.

    The second round the job reports EAGAIN (retry) instead.
    """
    t = Trace(be)
    flag = t.name([0], "flag")

    def completion(arg: Any) -> int:
        arg[0] += 1
        t.line(f"completion: flag = {arg[0]}")
        return 1

    t.name(completion, "completion")
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        wctx = t.own_ctx()
        t.set_callback(wctx, completion, flag, who="j")
        t.set_status(wctx, 2, who="j")  # ASYNC_STATUS_OK: a callback will come
        t.pause(who="j")
        t.line(f"flag = {flag[0]}", who="j")
        t.set_status(wctx, 3, who="j")  # ASYNC_STATUS_EAGAIN: resume me later
        t.pause(who="j")
        t.get_status(wctx, who="j")
        return int(flag[0])

    handle = t.start("j", ctx, job)
    while handle is not None:
        t.get_status(ctx)
        found = t.get_callback(ctx)
        if found is not None and int(ctx.get_status()) == 2:
            t.call_callback(found[0], found[1])
        handle = t.resume(handle)
    t.ctx_free(ctx)
    return t.lines
