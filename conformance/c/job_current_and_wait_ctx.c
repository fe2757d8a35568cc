/* Twin of job_current_and_wait_ctx. */
#include "trace.h"

static int job(void *arg)
{
    ASYNC_JOB *me = t_current("j");

    t_get_wait_ctx("j", me);
    t_pause("j");
    me = t_current("j");
    t_get_wait_ctx("j", me);
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx;

    t_current(NULL);
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_current(NULL);
    t_get_wait_ctx(NULL, handle);
    t_resume(&handle);
    t_current(NULL);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
