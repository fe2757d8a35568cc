/* Twin of job_pause_many_times. */
#include "trace.h"

static int job(void *arg)
{
    int n = 0;

    while (n < 5) {
        n++;
        T("  j: step %d", n);
        t_pause("j");
    }
    return n;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    int status = t_start(&handle, "j", ctx, job, NULL, 0);

    while (status == ASYNC_PAUSE)
        status = t_resume(&handle);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
