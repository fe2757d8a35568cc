"""The conformance ``Trace``: a job's label is ``who=``, by keyword only.

docs/conformance.md once said to pass the label "last"; ``t.set_fd(ctx, k, 11, d, "j")``
then put it into ``cleanup`` and the scenario quietly disagreed with its C twin.
Now every ``who`` (and ``set_fd``'s ``cleanup``) is keyword-only, and the
``TypeError`` of such a call is a bug in the scenario: it propagates, it is not
recorded as an observation of the API.
"""

from __future__ import annotations

import inspect
from typing import Any, List

import pytest

import pyossl_async as pa
from pyossl_async.testing.conformance import Trace
from pyossl_async.testing.conformance.trace import is_scenario_bug


def test_who_and_cleanup_are_keyword_only() -> None:
    with_who = []
    for name, member in vars(Trace).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        parameters = inspect.signature(member).parameters
        if "who" in parameters:
            with_who.append(name)
            assert parameters["who"].kind is inspect.Parameter.KEYWORD_ONLY, name
    assert len(with_who) >= 20 and {"pause", "set_fd", "line", "set_status"} <= set(with_who), with_who
    assert inspect.signature(Trace.set_fd).parameters["cleanup"].kind is inspect.Parameter.KEYWORD_ONLY


def test_a_label_by_position_is_a_type_error(backend: pa.Backend) -> None:
    t = Trace(backend)
    ctx = t.ctx_new("ctx")
    key, data = t.sym("k"), t.sym("d")
    with pytest.raises(TypeError) as info:
        t.set_fd(ctx, key, 11, data, "j")  # type: ignore[misc]  # the docs' old advice
    assert is_scenario_bug(info.value)
    for call in (lambda: t.pause("j"), lambda: t.get_status(ctx, "j"), lambda: t.line("text", "j")):  # type: ignore
        with pytest.raises(TypeError) as info:
            call()
        assert is_scenario_bug(info.value), info.value
    t.set_fd(ctx, key, 11, data, cleanup=False)
    t.get_status(ctx)
    t.ctx_free(ctx)
    assert t.lines == ["ctx = WAIT_CTX_new", "set_wait_fd(ctx, k, 11, d, NULL) -> 1", "get_status(ctx) -> 0",
                       "WAIT_CTX_free(ctx)"]


@pytest.mark.parametrize("mistake", ["pause", "get_status"])
def test_a_mistaken_call_inside_a_job_is_a_scenario_error_not_an_observation(backend: pa.Backend, mistake: str) -> None:
    t = Trace(backend)
    ctx = t.ctx_new("ctx")

    def job(arg: Any) -> int:
        if mistake == "pause":
            t.pause("j")  # type: ignore[misc]
        else:
            t.get_status(t.own_ctx(), "j")  # type: ignore[misc]
        return 1

    with pytest.raises(TypeError, match=rf"{mistake}\(\) takes"):
        t.start("j", ctx, job)
    assert not any("raises" in line for line in t.lines), t.lines
    t.ctx_free(ctx)


def test_what_the_api_raises_is_still_an_observation(backend: pa.Backend) -> None:
    t = Trace(backend)
    ctx = t.ctx_new("ctx")
    t.clear_fd(ctx, [])  # an unhashable key: the API's own TypeError, recorded
    # the API given an argument it does not take, on purpose, as misuse scenarios do:
    # the call's TypeError is raised in Trace._call, so it is an observation too
    ok, _ = t._call("get_status(ctx, 1)", None, ctx.get_status, 1)
    t.ctx_free(ctx)
    assert not ok
    recorded: List[str] = [line for line in t.lines if "raises" in line]
    assert recorded[0] == "clear_fd(ctx, ?) -> raises TypeError: wait fd keys must be hashable, not list", t.lines
    assert recorded[1].startswith("get_status(ctx, 1) -> raises TypeError: ") and "takes" in recorded[1], t.lines
    assert len(recorded) == 2
