"""A scripted interop test, as you would write one for your own engine or driver.

    python -m pytest examples/test_interop_scripted.py

A job follows a script of wait-fd changes and pauses; the test drives it and
asserts the trace of what the application sees at each pause (the fds,
``get_changed_fds()``), then runs the same script under ``pa.run_job`` with the
fds made readable by a thread, and asserts what the job sees when it resumes.
The expected traces are OpenSSL's own semantics (the add/del lists describe what
changed since the job was last resumed, and are not reset when it finishes),
so every backend must produce them.
"""

from __future__ import annotations

import os
import select
import threading

import pytest

import pyossl_async as pa

# set NAME / clear NAME: add NAME's pipe as a wait fd / remove it;
# poke NAME: make NAME's pipe readable now; signal NAME: make it readable 20 ms
# later, from another thread (an accelerator finishing); pause: back to the driver.
SCRIPT = [
    "set a", "signal a", "pause",
    "set b", "clear a", "poke a", "signal b", "pause",  # a is ready, but no longer waited on
    "set c", "clear c", "signal b", "pause",
    "clear b",
]

# what the application sees at each PAUSE and after FINISH: (status, all fds, added, deleted)
EXPECTED_BY_HAND = [
    ("PAUSE", ["a"], ["a"], []),
    ("PAUSE", ["b"], ["b"], ["a"]),  # a survived a resume, so clearing it marks it deleted
    ("PAUSE", ["b"], [], []),  # c was added and cleared between two pauses: no trace
    ("FINISH", [], [], ["b"]),  # not reset at FINISH: the last run's changes stay
]

# which pipes the job finds readable each time it is resumed by pa.run_job
EXPECTED_UNDER_RUN_JOB = [["a"], ["a", "b"], ["b"]]


@pytest.fixture(params=pa.available_backends())
def backend(request):
    be = pa.get_backend(request.param)
    if not be.is_capable():
        pytest.skip(f"{request.param} cannot run jobs here")
    return be


@pytest.fixture
def pipes():
    made = {name: os.pipe() for name in "abc"}
    yield made
    for r, w in made.values():
        os.close(r)
        os.close(w)


def scripted_job(backend, pipes, seen, timers):
    def job(arg):
        ctx = backend.get_wait_ctx(backend.get_current_job())
        for step in SCRIPT:
            verb, _, name = step.partition(" ")
            if verb == "set":
                ctx.set_wait_fd(name, pipes[name][0])
            elif verb == "clear":
                ctx.clear_fd(name)
            elif verb == "poke" and timers is not None:
                os.write(pipes[name][1], b"!")
            elif verb == "signal" and timers is not None:
                timer = threading.Timer(0.02, os.write, (pipes[name][1], b"!"))
                timers.append(timer)
                timer.start()
            elif verb == "pause":
                backend.pause_job()
                ready = sorted(n for n, (r, _) in pipes.items() if readable(r))
                seen.append(ready)
                for n in ready:
                    os.read(pipes[n][0], 1)  # clear the wake-up signal
        return len(seen)

    return job


def readable(fd):
    return bool(select.select([fd], [], [], 0)[0])


def test_trace_driven_by_hand(backend, pipes):
    names = {r: name for name, (r, _) in pipes.items()}
    trace = []
    with backend.WaitCtx() as ctx:
        status, job, ret = backend.start_job(None, ctx, scripted_job(backend, pipes, [], None))
        while True:
            added, deleted = ctx.get_changed_fds()
            trace.append((
                status.name,
                sorted(names[fd] for fd in ctx.get_all_fds()),
                sorted(names[fd] for fd in added),
                sorted(names[fd] for fd in deleted),
            ))
            if status != pa.PAUSE:
                break
            status, job, ret = backend.start_job(job, ctx, None)  # resume at once
    assert trace == EXPECTED_BY_HAND
    assert ret == 3


def test_trace_under_run_job(backend, pipes):
    seen, timers = [], []
    try:
        assert pa.run_job(scripted_job(backend, pipes, seen, timers), backend=backend, timeout=10) == 3
    finally:
        for timer in timers:
            timer.join()
    assert seen == EXPECTED_UNDER_RUN_JOB
