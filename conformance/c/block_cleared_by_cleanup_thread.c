/* Twin of block_cleared_by_cleanup_thread. */
#include "trace.h"

static int leaker(void *arg)
{
    t_block("j1");
    return 1;
}

static int pauser(void *arg)
{
    t_pause("j2");
    return 2;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_start(&job, "j1", ctx, leaker, NULL, 0);
    t_start(&job, "j2", ctx, pauser, NULL, 0);
    t_cleanup_thread(NULL);
    t_start(&job, "j2", ctx, pauser, NULL, 0);
    t_resume(&job);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
