"""Child: 60 aio jobs each awaiting an accelerator 50 times, 30 cancelled at random and
20 more under ``asyncio.wait_for``; checks that ``asyncio.run`` returns with every job
unwound.

``python aio_cancellation_storm.py BACKEND SEED``: prints one JSON line; run by
tests/test_aio_storms.py.
"""
import asyncio
import concurrent.futures
import gc
import json
import random
import sys
import weakref

import pyossl_async as pa
from pyossl_async import aio

b = pa.get_backend(sys.argv[1])
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
    rng = random.Random(int(sys.argv[2]))
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
