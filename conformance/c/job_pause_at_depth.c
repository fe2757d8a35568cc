/* Twin of job_pause_at_depth: pause eight calls deep, locals intact after. */
#include "trace.h"

static int descend(int depth, int acc)
{
    int mine = acc * 3 + depth, total;

    if (depth == 8) {
        T("  j: depth %d local %d", depth, mine);
        t_pause("j");
        return mine;
    }
    total = descend(depth + 1, mine);
    T("  j: back at depth %d local %d", depth, mine);
    return (total + mine) % 100000;
}

static int job(void *arg)
{
    return descend(1, 1);
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_start(&handle, "j", ctx, job, NULL, 0);
    t_resume(&handle);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
