/* Twin of fd_reset_at_resume. */
#include "trace.h"

static ASYNC_WAIT_CTX *ctx;
static void *kA, *kB;

static int job(void *arg)
{
    t_set_fd("j", ctx, kB, 7, NULL, 1);
    t_pause("j");
    t_changed_fds("j", ctx);
    t_clear_fd("j", ctx, kB);
    t_pause("j");
    t_changed_fds("j", ctx);
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;

    kA = t_sym("kA");
    kB = t_sym("kB");
    ctx = t_ctx_new("ctx");
    t_set_fd(NULL, ctx, kA, 1, NULL, 1);
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_changed_fds(NULL, ctx);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_all_fds(NULL, ctx);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_all_fds(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
