/* Twin of fd_readd_after_marked_delete. */
#include "trace.h"

static ASYNC_WAIT_CTX *ctx;
static void *kA;

static int job(void *arg)
{
    t_set_fd("j", ctx, kA, 11, NULL, 1);
    t_pause("j");
    t_clear_fd("j", ctx, kA);
    t_set_fd("j", ctx, kA, 12, NULL, 1);
    t_get_fd("j", ctx, kA);
    t_all_fds("j", ctx);
    t_changed_fds("j", ctx);
    t_pause("j");
    t_changed_fds("j", ctx);
    t_all_fds("j", ctx);
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;

    kA = t_sym("kA");
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_resume(&handle);
    t_ctx_free(ctx);
    return 0;
}
