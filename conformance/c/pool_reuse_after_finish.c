/* Twin of pool_reuse_after_finish. */
#include "trace.h"

static int returns(void *arg)
{
    return *(int *)arg;
}

static int pauses(void *arg)
{
    t_pause("p");
    return 6;
}

int main(void)
{
    ASYNC_JOB *job, *p;
    ASYNC_WAIT_CTX *ctx;
    char label[8];
    int i, seven = 7;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    for (i = 1; i < 6; i++) {
        snprintf(label, sizeof(label), "j%d", i);
        t_start(&job, label, ctx, returns, &i, sizeof(i));
    }
    t_start(&p, "p", ctx, pauses, NULL, 0);
    t_start(&job, "q", ctx, returns, &seven, sizeof(seven));   /* NO_JOBS */
    t_resume(&p);
    t_start(&job, "q", ctx, returns, &seven, sizeof(seven));
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
