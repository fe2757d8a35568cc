/* Twin of asynctest_wait_ctx_get_all_fds (test_ASYNC_WAIT_CTX_get_all_fds):
 * fd 99 keyed by the wait context's own pointer. */
#include "trace.h"

static int waitfd(void *arg)
{
    ASYNC_JOB *job = t_current("j");
    ASYNC_WAIT_CTX *ctx;

    if (job == NULL)
        return 0;
    ctx = t_get_wait_ctx("j", job);
    if (ctx == NULL)
        return 0;
    t_pause("j");                               /* nothing added or removed */
    t_set_fd("j", ctx, ctx, 99, NULL, 0);
    t_pause("j");                               /* one fd added */
    t_clear_fd("j", ctx, ctx);
    t_pause("j");                               /* the fd removed */
    t_set_fd("j", ctx, ctx, 99, NULL, 0);
    t_clear_fd("j", ctx, ctx);                  /* added and removed at once */
    return 1;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    int i, status;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    status = t_start(&job, "j", ctx, waitfd, NULL, 0);
    for (i = 0; i < 4; i++) {
        t_all_fds(NULL, ctx);
        t_changed_fds(NULL, ctx);
        if (status != ASYNC_PAUSE)
            break;
        status = t_resume(&job);
    }
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
