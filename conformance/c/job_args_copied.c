/* Twin of job_args_copied: ASYNC_start_job copies `size` bytes of args; NULL
 * args (with any size) reach the job as NULL. */
#include "trace.h"

static int show(void *arg)
{
    T("  j: arg = %s", arg == NULL ? "NULL" : (const char *)arg);
    t_pause("j");
    T("  j: arg = %s", arg == NULL ? "NULL" : (const char *)arg);
    return arg == NULL ? 0 : (int)strlen((const char *)arg);
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    char buf[] = "hello";

    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, show, buf, sizeof(buf));
    buf[0] = 'J';
    T("caller buffer = %s", buf);
    t_resume(&job);
    t_start(&job, "j", ctx, show, NULL, 5);   /* size without args: still NULL */
    t_resume(&job);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
