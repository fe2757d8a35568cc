/* Twin of job_resume_ignores_arguments: a resume passes another wait context,
 * function and arguments; all are ignored. */
#include "trace.h"

static int job(void *arg)
{
    t_pause("j");
    t_get_wait_ctx("j", t_current("j"));
    return 1;
}

static int other(void *arg)
{
    T("other function ran");
    return 99;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx1, *ctx2;
    int ret = 0, status;

    ctx1 = t_ctx_new("ctx1");
    ctx2 = t_ctx_new("ctx2");
    t_start(&handle, "j", ctx1, job, NULL, 0);
    status = ASYNC_start_job(&handle, ctx2, &ret, other, "x", 2);
    t_result("resume", &handle, "j", status, ret);
    t_ctx_free(ctx2);
    t_ctx_free(ctx1);
    t_cleanup_thread(NULL);
    return 0;
}
