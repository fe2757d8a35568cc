"""Child: an event loop closed and dropped with 90 aio jobs in flight, on the main
thread or on a thread that then ends; checks that every job unwound and no worker
thread is left.

``python abandoned_loop.py BACKEND main|thread``: prints one JSON line; run by
tests/test_aio_storms.py.
"""
import asyncio
import concurrent.futures
import gc
import json
import sys
import threading
import time
import warnings

import pyossl_async as pa
from pyossl_async import aio

b = pa.get_backend(sys.argv[1])
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

if sys.argv[2] == "main":
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
