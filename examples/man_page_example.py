"""The example at the end of ASYNC_start_job(3), line for line in Python.

    python examples/man_page_example.py [--backend openssl|python]

prints exactly what the C program prints, on either backend (by default the one
pa.get_backend() chooses). Each block below is the C code it stands for, in the
same order; where C needs memory management (the malloc'ed write end,
OPENSSL_free) Python passes the object instead.
"""

from __future__ import annotations

import argparse
import io
import os
import select
import sys
from typing import Hashable, Optional

import pyossl_async as pa

#: the backend, chosen in ``choose_backend`` (the ASYNC_* calls of C are global)
be: pa.Backend


def choose_backend() -> pa.Backend:
    """The backend ``--backend`` names (default: pa.get_backend()'s choice); exits
    with status 2 and the reason when it cannot run jobs here."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backend", choices=["openssl", "python"], default=None, help="default: the one pa.get_backend() chooses"
    )
    args = parser.parse_args()
    try:
        backend = pa.get_backend(args.backend)
    except pa.AsyncError as exc:  # BackendUnavailable, SettingError: they say why in one line
        parser.exit(2, f"{parser.prog}: {exc}\n")
    if not backend.is_capable():
        why = getattr(backend, "native_error", "") or "ASYNC_is_capable() is false"
        parser.exit(2, f"{parser.prog}: the {backend.name} backend cannot run jobs here: {why}\n")
    return backend


unique = object()  # int unique = 0;  (only its address is used: a key)


# void cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD r, void *vw)
def cleanup(ctx: pa.WaitCtx, key: Hashable, r: int, w: int) -> None:
    os.close(r)  # close(r);
    os.close(w)  # close(*w); OPENSSL_free(w);


def jobfunc(arg: bytes) -> int:  # int jobfunc(void *arg)
    buf = b"X"  # char buf = 'X';

    currjob = be.get_current_job()  # currjob = ASYNC_get_current_job();
    if currjob is not None:
        print("Executing within a job")
    else:
        print("Not executing within a job - should not happen")
        return 0

    msg = arg  # msg = (unsigned char *)arg;
    print("Passed in message is: %s" % msg.split(b"\0")[0].decode())  # noqa: UP031 - printf

    try:
        pipefds = os.pipe()  # if (pipe(pipefds) != 0) {
    except OSError:
        print("Failed to create pipe")
        return 0
    wptr = pipefds[1]  # wptr = OPENSSL_malloc(...); *wptr = pipefds[1];
    waitctx = be.get_wait_ctx(currjob)  # ASYNC_get_wait_ctx(currjob)
    assert waitctx is not None  # main() started the job with a context
    waitctx.set_wait_fd(unique, pipefds[0], wptr, cleanup)

    # Normally some external event would cause this to happen at some
    # later point - but we do it here for demo purposes, i.e.
    # immediately signalling that the job is ready to be woken up after
    # we return to main via ASYNC_pause_job().
    os.write(pipefds[1], buf)  # write(pipefds[1], &buf, 1);

    # Return control back to main
    be.pause_job()  # ASYNC_pause_job();

    # Clear the wake signal
    buf = os.read(pipefds[0], 1)  # read(pipefds[0], &buf, 1);

    print("Resumed the job after a pause")

    return 1


def main() -> int:  # int main(void)
    job = None  # ASYNC_JOB *job = NULL;
    msg = b"Hello world!\0"  # unsigned char msg[13] = "Hello world!";

    print("Starting...")

    ctx: Optional[pa.WaitCtx] = be.WaitCtx()  # ctx = ASYNC_WAIT_CTX_new();  (raises rather than NULL)
    if ctx is None:
        print("Failed to create ASYNC_WAIT_CTX")
        os.abort()

    while True:  # for (;;) {
        status, job, ret = be.start_job(job, ctx, jobfunc, msg)
        if status in (pa.ERR, pa.NO_JOBS):  # case ASYNC_ERR: case ASYNC_NO_JOBS:
            print("An error occurred")
            break  # goto end;
        if status == pa.PAUSE:  # case ASYNC_PAUSE:
            print("Job was paused")
        elif status == pa.FINISH:  # case ASYNC_FINISH:
            assert ret is not None  # FINISH carries the job's return value
            print("Job finished with return value %d" % ret)  # noqa: UP031 - printf
            break  # goto end;

        # Wait for the job to be woken
        print("Waiting for the job to be woken up")

        fds = ctx.get_all_fds()  # ASYNC_WAIT_CTX_get_all_fds(ctx, NULL, &numfds)
        if len(fds) > 1:  # || numfds > 1
            print("Unexpected number of fds")
            os.abort()
        waitfd = fds[0]  # ASYNC_WAIT_CTX_get_all_fds(ctx, &waitfd, &numfds);
        select.select([waitfd], [], [])  # FD_ZERO; FD_SET; select(waitfd + 1, ...);

    # end:
    ctx.close()  # ASYNC_WAIT_CTX_free(ctx);  (runs cleanup: closes the pipe)
    print("Finishing")

    return 0


if __name__ == "__main__":
    be = choose_backend()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # C's stdout to a terminal: line by line
    sys.exit(main())
