"""Child: SIGALRM handlers that start and resume python-backend jobs on the greenlet
engine while the main loop starts openssl jobs back to back, so that some land at
the very start or end of an openssl job (its thread state bound, its context not
yet holding its record). Such a start or resume must be refused (JobStateError),
never switch greenlets under the C job (CPython 3.9: "greenlet: Failed low-level
slp_switch(). The stack is probably corrupt.", then abort).

``python greenlet_in_c_job_window.py SECONDS``: prints one JSON line of counts.
"""

import collections
import json
import signal
import sys
import time

import pyossl_async as pa

o = pa.get_backend("openssl")
py = pa.get_backend("python")
assert py.engine == "greenlet", py.engine
seen: "collections.Counter[str]" = collections.Counter()
held = []
inside = [False]


def pyjob(arg):
    py.pause_job()
    return 1


def handler(signum, frame):
    if inside[0]:  # no nesting: one handler at a time is enough to land in the windows
        return
    inside[0] = True
    try:
        if held and held[-1].state == "paused":
            py.start_job(held.pop(), None, None)
            seen["resumed"] += 1
        else:
            _, h, _ = py.start_job(None, pctx, pyjob)
            if h is not None:
                held.append(h)
            seen["started"] += 1
    except pa.JobStateError as exc:
        seen["refused" if "from inside a running job" in str(exc) else f"other: {exc}"] += 1
    finally:
        inside[0] = False


pctx = py.WaitCtx()
signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.0001, 0.00005)
deadline = time.monotonic() + float(sys.argv[1])
with o.WaitCtx() as ctx:
    while time.monotonic() < deadline:
        o.start_job(None, ctx, lambda a: 1)
signal.setitimer(signal.ITIMER_REAL, 0, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
for h in held:
    if h.state == "paused":
        h.close()
pctx.close()
print(json.dumps(dict(seen)))
