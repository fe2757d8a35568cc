/* Twin of block_outside_job_ignored. */
#include "trace.h"

static int job(void *arg)
{
    t_pause("j");
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx;

    t_block(NULL);
    t_block(NULL);
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_unblock(NULL);
    t_resume(&handle);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
