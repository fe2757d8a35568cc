/* Twin of block_leaks_into_thread. */
#include "trace.h"

static int leaker(void *arg)
{
    t_block("j1");
    t_pause("j1");
    return 1;
}

static int victim(void *arg)
{
    t_pause((const char *)arg);
    return 2;
}

static int healer(void *arg)
{
    t_pause("j3");
    t_unblock("j3");
    t_pause("j3");
    return 3;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_start(&job, "j1", ctx, leaker, NULL, 0);
    t_start(&job, "j2", ctx, victim, "j2", 3);
    t_unblock(NULL);                          /* outside a job: ignored */
    t_start(&job, "j2", ctx, victim, "j2", 3);
    t_start(&job, "j3", ctx, healer, NULL, 0);
    t_resume(&job);
    t_start(&job, "j4", ctx, victim, "j4", 3);
    t_resume(&job);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
