/* Twin of asynctest_get_current_job (test_ASYNC_get_current_job). */
#include "trace.h"

static ASYNC_JOB *saved = NULL;
static int have_saved = 0;

static int save_current(void *arg)
{
    saved = t_current("j");
    have_saved = 1;
    t_pause("j");
    return 1;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, save_current, NULL, 0);
    T("saved current job is %s", have_saved ? tn(saved) : "missing");
    t_resume(&job);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
