/* Twin of pool_no_jobs_changes_nothing. */
#include "trace.h"

static ASYNC_WAIT_CTX *ctx;
static void *kA;

static int never(void *arg)
{
    T("this function must not run");
    return 9;
}

static int job(void *arg)
{
    t_set_fd("j1", ctx, kA, 5, NULL, 0);
    t_pause("j1");
    return 1;
}

int main(void)
{
    ASYNC_JOB *j1, *j2;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    kA = t_sym("kA");
    t_start(&j1, "j1", ctx, job, NULL, 0);
    t_changed_fds(NULL, ctx);
    t_start(&j2, "j2", ctx, never, NULL, 0);
    t_current(NULL);
    t_changed_fds(NULL, ctx);
    t_get_wait_ctx(NULL, j1);
    t_resume(&j1);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
