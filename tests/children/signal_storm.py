"""Child: a storm of SIGALRM handlers calling the API while the main loop starts,
resumes, closes and drops jobs, with KeyboardInterrupts from another thread.

``python signal_storm.py BACKEND SEED SECONDS``: prints one JSON line (what went
outside the contract, counts, what was left); run by tests/test_reentry.py.
"""
import _thread
import gc
import json
import random
import signal
import sys
import threading
import time

import pyossl_async as pa

b = pa.get_backend(sys.argv[1])
rng = random.Random(int(sys.argv[2]))
ctx = b.WaitCtx()
paused = []          # handles the main loop owns
handler_paused = []  # handles the handler started
bad = []             # exceptions outside the contract
counts = {"calls": 0, "refused": 0, "interrupts": 0, "too_deep": 0}
MAX_NESTING = 3
STACK_LOOK = 150
ALLOWED = (pa.AsyncError, pa.JobCancelled, KeyboardInterrupt, RecursionError, MemoryError)

def job(arg):
    for _ in range(arg):
        b.pause_job()
    return 0

def pick(seq):
    # a handler that runs inside a job can be paused with it (by a nested handler's
    # pause_job()) while the main loop shrinks the list it was picking from
    try:
        return rng.choice(seq)
    except IndexError:
        raise pa.JobStateError("the list changed under the handler") from None

def nesting(frame):
    # Counted on the stack, not with a counter: a handler that ran inside a job can be
    # paused with it. Bounded: each check must cost the same however deep the stack,
    # or on a loaded machine handlers that are too deep pile up faster than they
    # return (every one walking a deeper stack) and the process never gets out.
    n = 0
    for _ in range(STACK_LOOK):
        if frame is None:
            return n
        n += frame.f_code is HANDLER
        frame = frame.f_back
    return MAX_NESTING  # deeper than any program of ours: a pile-up of handlers

def handler(signum, frame):
    counts["calls"] += 1
    # Handlers nest (one runs inside the library's calls, and inside another handler):
    # keep that to a few levels. A handler slower than the timer's interval would
    # otherwise nest without end, and CPython dies of the recursion ("Cannot recover
    # from stack overflow") whatever the handler calls: the python backend's thread
    # hand-offs on a loaded machine were such handlers.
    try:
        if nesting(frame) >= MAX_NESTING:
            counts["too_deep"] += 1
            return
    except ALLOWED:  # (a KeyboardInterrupt that landed here, meant for the main loop)
        return
    except BaseException as exc:
        bad.append(f"nesting: {type(exc).__name__}: {exc}")
        return
    op = rng.randrange(9)
    try:
        if op == 0:
            b.cleanup_thread()
        elif op == 1 and paused:
            b.start_job(pick(paused), None, None)
        elif op == 2 and paused:
            pick(paused).close()
        elif op == 3:
            b.pause_job()
        elif op == 4:
            b.get_current_job()
        elif op == 5:
            status, h, _ = b.start_job(None, ctx, job, 2)
            if status == pa.PAUSE:
                handler_paused.append(h)
        elif op == 6 and handler_paused:
            try:
                h = handler_paused.pop()  # a nested handler may have emptied it meanwhile
            except IndexError:
                h = None
            if h is not None:
                h.close()
        elif op == 7:
            b.init_thread(0, 0)
        elif op == 8:
            with b.WaitCtx() as other:
                other.set_wait_fd("k", 0)
    except pa.JobStateError:
        counts["refused"] += 1
    except ALLOWED:
        pass
    except BaseException as exc:
        bad.append(f"{op}: {type(exc).__name__}: {exc}")

HANDLER = handler.__code__

def interrupter(go, stop):
    go.wait()
    while not stop.is_set():
        time.sleep(rng.uniform(0.002, 0.01))
        _thread.interrupt_main()

guarded = [False]

def on_interrupt(signum, frame):
    # KeyboardInterrupt only inside the main loop's try (where every library call is):
    # one landing on the loop's own back-edge would end the script, not test anything.
    # One per pass: CPython 3.9/3.10 run handlers as an exception enters an except
    # clause too, and a second one there would end the script (the timer still armed:
    # SIGALRM then kills the finalising process).
    if guarded[0]:
        guarded[0] = False
        raise KeyboardInterrupt

signal.signal(signal.SIGINT, on_interrupt)
signal.signal(signal.SIGALRM, handler)
go, stop = threading.Event(), threading.Event()
helper = threading.Thread(target=interrupter, args=(go, stop), daemon=True)
helper.start()
deadline = time.monotonic() + float(sys.argv[3])
interval = rng.choice([0.00005, 0.0001, 0.0003])
started = False
while True:
    try:
        guarded[0] = True
        if not started:
            started = True
            signal.setitimer(signal.ITIMER_REAL, 0.0001, interval)
            go.set()
        if time.monotonic() >= deadline:
            guarded[0] = False
            break
        op = rng.randrange(5)
        if op == 0 or not paused:
            status, h, _ = b.start_job(None, ctx, job, rng.randrange(1, 4))
            if status == pa.PAUSE:
                paused.append(h)
        elif op == 1:
            h = paused.pop(rng.randrange(len(paused)))
            if h.state == "paused":
                status, h2, _ = b.start_job(h, None, None)
                if status == pa.PAUSE:
                    paused.append(h2)
        elif op == 2:
            paused.pop(rng.randrange(len(paused))).close()
        elif op == 3:
            paused.pop(rng.randrange(len(paused)))  # dropped: unwound when collected
            gc.collect()
        else:
            paused[:] = [h for h in paused if h.state == "paused"]
        guarded[0] = False
    except KeyboardInterrupt:
        guarded[0] = False
        counts["interrupts"] += 1
    except ALLOWED:
        guarded[0] = False
    except BaseException as exc:
        guarded[0] = False
        bad.append(f"main: {type(exc).__name__}: {exc}")
guarded[0] = False
signal.setitimer(signal.ITIMER_REAL, 0, 0)
stop.set()
helper.join()
signal.signal(signal.SIGALRM, signal.SIG_IGN)  # one already on its way must not kill us
states = set()
for h in paused + handler_paused:
    states.add(h.state)
    if h.state == "paused":
        try:
            h.close()
        except ALLOWED:
            # the job's own outcome: a KeyboardInterrupt raised in it during the storm,
            # after which a handler paused it again (its unwinding ends with it now)
            pass
paused.clear(); handler_paused.clear()
gc.collect()
thread = b._threads.get(threading.get_ident())
left = [r.state for r in thread.paused] if thread is not None else []
for r in list(thread.paused if thread is not None else ()):
    try:
        r.handle_ref() and r.handle_ref().close()
    except ALLOWED:
        pass
ctx.close()
b.cleanup_thread()
fresh = b.start_job(None, None, lambda a: 3)
b.cleanup_thread()
# no worker thread blocked for good: every job closed, idle ones stopped (jobs detached
# by a second interrupt run on ownerless and end with their thread)
deadline = time.monotonic() + 30
while time.monotonic() < deadline and any(t.name.startswith("pyossl-async-worker-") for t in threading.enumerate()):
    time.sleep(0.01)
workers = sum(1 for t in threading.enumerate() if t.name.startswith("pyossl-async-worker-"))
print(json.dumps({"bad": bad, "counts": counts, "states": sorted(states), "left": left, "workers": workers,
                  "busy": thread.busy if thread is not None else 0, "fresh": [int(fresh[0]), fresh[2]]}))
