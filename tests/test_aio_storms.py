"""asyncio storms (issue 24): cancellations, timeouts and abandoned loops around ``aio`` jobs.

The guarantee under test is the one plain coroutines have: when ``asyncio.run``
returns, every job its tasks started has unwound (its ``finally`` ran), whether
it finished, was cancelled or timed out; and a loop closed and dropped with jobs
in flight leaves none of them paused, and no worker thread behind.

Each scenario runs in a child interpreter, plain and under ``-X dev``, on the
openssl backend and on the python backend with each engine.

What the storm found: a task waiting for its job's wait-ctx callback was
reachable from nothing (the callback pipe holds its listeners weakly), so a
collection could destroy it while pending ("Task was destroyed but it is
pending!"); on a thread other than the loop's (an accelerator's, here the pool's
threads) its job could not be closed there, and ``asyncio.run`` returned with
``finally`` blocks not run. The abandoned loop found that the per-loop tables
kept a loop with queued job steps alive for good, and that a loop abandoned on
a thread that then exits left its jobs orphaned instead of unwound.
"""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from .conftest import VARIANTS, run_isolated, variant

pytestmark = pytest.mark.subprocess

MODES = {"plain": (), "dev": ("-X", "dev")}

CANCELLATION_STORM = r"""
import asyncio, concurrent.futures, gc, json, random, sys, threading, weakref
import pyossl_async as pa
from pyossl_async import aio

b = pa.get_backend(NAME)
pool = concurrent.futures.ThreadPoolExecutor(4)  # stands in for an accelerator
began, unwound, destroyed = set(), set(), []

def work(k):
    if k % 7 == 0:
        gc.collect()  # collections on the accelerator's threads, as a busy program gets them
    return k

def job(i):
    began.add(i)
    try:
        for k in range(50):
            pa.await_future(pool.submit(work, k))
        return i
    finally:
        unwound.add(i)

def handler(loop, context):
    if "destroyed" in context.get("message", ""):
        destroyed.append(repr(context.get("task") or context.get("future")))

async def main():
    asyncio.get_running_loop().set_exception_handler(handler)
    rng = random.Random(SEED)
    # the program keeps no reference to its tasks: the loop must
    tasks = weakref.WeakSet(asyncio.ensure_future(aio.run_job(job, i, backend=b)) for i in range(60))
    for i in range(20):
        asyncio.ensure_future(asyncio.wait_for(aio.run_job(job, 100 + i, backend=b), 0.005))
    for _ in range(30):  # 30 of the 60 cancelled at random
        await asyncio.sleep(rng.uniform(0, 0.01))
        alive = [t for t in tasks if not t.done()]
        if alive:
            rng.choice(alive).cancel()
        del alive
    # returning now: asyncio.run cancels what is still running, and waits for it

asyncio.run(main())
print(json.dumps({"began": len(began), "unwound": len(unwound), "missing": sorted(began - unwound),
                  "destroyed": destroyed[:3]}))
pool.shutdown()
"""


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant_name", VARIANTS)
@pytest.mark.parametrize("seed", [1, 2])
def test_asyncio_run_returns_with_every_job_unwound_after_a_cancellation_storm(
    variant_name: str, mode: str, seed: int
) -> None:
    name, env = variant(variant_name)
    code = CANCELLATION_STORM.replace("NAME", repr(name)).replace("SEED", str(seed))
    proc = run_isolated(code, env=env, args=(*MODES[mode], "-W", "ignore"), timeout=240)
    out: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["began"] > 0, out
    assert out["missing"] == [], out  # a job that began and whose finally had not run
    assert out["destroyed"] == [], out  # a task collected while its job was in flight


ABANDONED_LOOP = r"""
import asyncio, concurrent.futures, gc, json, sys, threading, time, warnings
import pyossl_async as pa
from pyossl_async import aio

b = pa.get_backend(NAME)
N = 90
pool = concurrent.futures.ThreadPoolExecutor(4)
never = concurrent.futures.Future()  # an accelerator that never answers
began, unwound = set(), set()

def work(k):
    time.sleep(0.0005)
    return k

def job(i):
    began.add(i)
    try:
        if i % 3 == 0:
            pa.await_future(never)
        for k in range(10_000):  # busy with the accelerator until the loop goes
            pa.await_future(pool.submit(work, k))
        return i
    finally:
        unwound.add(i)

async def main():
    for i in range(N):
        asyncio.ensure_future(aio.run_job(job, i, backend=b))
    deadline = asyncio.get_running_loop().time() + 120
    while len(began) < N and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)  # (starts take turns with the loop: wait for all of them)
    await asyncio.sleep(0.05)

def abandon():
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # "Task was destroyed but it is pending"
    loop.run_until_complete(main())
    loop.close()  # with every job in flight
    del loop

def workers():
    return sum(1 for t in threading.enumerate() if t.name.startswith("pyossl-async-worker-"))

if WHERE == "main":
    abandon()
else:
    t = threading.Thread(target=abandon)  # a thread that ends once its loop is dropped
    t.start()
    t.join()
    del t
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for _ in range(3):
        gc.collect()
thread = b._threads.get(threading.get_ident())
paused = len(thread.paused) if thread is not None else 0
b.cleanup_thread()  # the main thread's pool: its idle workers end (a loop thread's ended with it)
deadline = time.monotonic() + 30
while workers() and time.monotonic() < deadline:
    time.sleep(0.01)
print(json.dumps({"began": len(began), "unwound": len(unwound), "missing": sorted(began - unwound)[:10],
                  "paused": paused, "workers": workers()}))
pool.shutdown()
"""


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("variant_name", VARIANTS)
@pytest.mark.parametrize("where", ["main", "thread"])
def test_a_loop_closed_with_jobs_in_flight_unwinds_them_and_ends_its_workers(
    variant_name: str, mode: str, where: str
) -> None:
    name, env = variant(variant_name)
    code = ABANDONED_LOOP.replace("NAME", repr(name)).replace("WHERE", repr(where))
    proc = run_isolated(code, env=env, args=(*MODES[mode], "-W", "ignore"), timeout=240)
    out: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["began"] == 90, out
    assert out["missing"] == [] and out["unwound"] == 90, out
    assert out["paused"] == 0 and out["workers"] == 0, out
