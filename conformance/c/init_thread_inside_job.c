/* Twin of init_thread_inside_job. */
#include "trace.h"

static int job(void *arg)
{
    t_init("j1", 1, 0);
    t_pause("j1");
    return 1;
}

static int pauses_once(void *arg)
{
    t_pause("j3");
    return 3;
}

static int returns(void *arg)
{
    return *(int *)arg;
}

int main(void)
{
    ASYNC_JOB *j1, *j3, *other;
    ASYNC_WAIT_CTX *ctx;
    int two = 2, four = 4;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_start(&j1, "j1", ctx, job, NULL, 0);
    t_start(&other, "j2", ctx, returns, &two, sizeof(two));   /* the new pool is empty, room for one */
    t_resume(&j1);
    t_start(&j3, "j3", ctx, pauses_once, NULL, 0);
    t_start(&other, "j4", ctx, returns, &four, sizeof(four));
    t_resume(&j3);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
