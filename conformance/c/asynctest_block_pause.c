/* Twin of asynctest_block_pause (test_ASYNC_block_pause). */
#include "trace.h"

static int blockpause(void *arg)
{
    t_block("j");
    t_pause("j");
    t_unblock("j");
    t_pause("j");
    return 1;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, blockpause, NULL, 0);
    t_resume(&job);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
