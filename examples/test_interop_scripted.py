"""A scripted interop test, written with pyossl-async's pytest plugin.

    python -m pytest examples/test_interop_scripted.py

The plugin's ``pyossl_backend`` fixture runs each test once per backend and fails
it if it leaves a paused job, an open WaitCtx or a libcrypto error behind.
"""

import os
import select
import threading

import pyossl_async as pa
from pyossl_async.testing import assert_traces_equal, run_fd_script

# set/clear X: add/remove X's pipe as a wait fd; poke X: make it readable; pause
SCRIPT = ["set a", "pause", "set b", "clear a", "poke a", "pause", "set c", "clear c", "pause", "clear b"]

# what the application sees at each PAUSE and at FINISH: OpenSSL's own semantics
# (the add/del lists say what changed since the last resume; FINISH does not reset them)
EXPECTED = [
    "PAUSE   job=paused   fds=[a] added=[a] deleted=[] status=UNSUPPORTED callback=no",
    "PAUSE   job=paused   fds=[b] added=[b] deleted=[a] status=UNSUPPORTED callback=no",
    "PAUSE   job=paused   fds=[b] added=[] deleted=[] status=UNSUPPORTED callback=no",
    "FINISH  job=finished fds=[] added=[] deleted=[b] status=UNSUPPORTED callback=no",
    "result 3",
]


def test_what_the_application_sees_at_each_pause(pyossl_backend: pa.Backend) -> None:
    assert_traces_equal(EXPECTED, run_fd_script(pyossl_backend, SCRIPT))


def test_run_job_resumes_only_once_the_fd_is_readable(pyossl_backend: pa.Backend) -> None:
    r, w = os.pipe()

    def job(arg: object) -> int:
        current = pyossl_backend.get_current_job()
        assert current is not None
        ctx = pyossl_backend.get_wait_ctx(current)
        assert ctx is not None
        ctx.set_wait_fd("engine", r)
        threading.Timer(0.02, os.write, (w, b"!")).start()  # an accelerator finishing
        pyossl_backend.pause_job()
        ctx.clear_fd("engine")
        return len(select.select([r], [], [], 0)[0])

    try:
        assert pa.run_job(job, backend=pyossl_backend, timeout=10) == 1
    finally:
        os.close(r)
        os.close(w)
