/* Twin of asynctest_start_job (test_ASYNC_start_job): add_two around a pause. */
#include "trace.h"

static int ctr = 0;

static int add_two(void *arg)
{
    ctr++;
    T("  j: ctr = %d", ctr);
    t_pause("j");
    ctr++;
    T("  j: ctr = %d", ctr);
    return 2;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, add_two, NULL, 0);
    T("ctr == %d", ctr);
    t_resume(&job);
    T("ctr == %d", ctr);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
