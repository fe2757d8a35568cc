/* Twin of asynctest_init_thread (test_ASYNC_init_thread): a pool of two jobs. */
#include "trace.h"

/* the job's label comes in as its (copied) argument */
static int only_pause(void *arg)
{
    t_pause((const char *)arg);
    return 1;
}

int main(void)
{
    ASYNC_JOB *j1, *j2, *j3;
    ASYNC_WAIT_CTX *ctx;

    t_init(NULL, 2, 0);
    ctx = t_ctx_new("ctx");
    t_start(&j1, "j1", ctx, only_pause, "j1", 3);
    t_start(&j2, "j2", ctx, only_pause, "j2", 3);
    t_start(&j3, "j3", ctx, only_pause, "j3", 3);   /* NO_JOBS */
    t_resume(&j1);
    t_start(&j3, "j3", ctx, only_pause, "j3", 3);   /* reuses j1's job */
    t_resume(&j2);
    t_resume(&j3);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
