/* Twin of threads_block_is_per_thread. */
#include "trace.h"

static int leaker(void *arg)
{
    t_block("t1");
    return 1;
}

static int pauser(void *arg)
{
    t_pause((const char *)arg);
    return 2;
}

static void *other(void *arg)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *tctx = t_ctx_new("tctx");

    t_start(&job, "t1", tctx, leaker, NULL, 0);
    t_start(&job, "t2", tctx, pauser, "t2", 3);   /* blocked in this thread */
    t_ctx_free(tctx);
    t_cleanup_thread("T");
    return NULL;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    pthread_t thread;

    pthread_create(&thread, NULL, other, NULL);
    pthread_join(thread, NULL);
    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, pauser, "j", 2);
    t_resume(&job);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
