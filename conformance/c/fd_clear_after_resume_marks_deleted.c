/* Twin of fd_clear_after_resume_marks_deleted. */
#include "trace.h"

static ASYNC_WAIT_CTX *ctx;
static void *kA, *dA;

static int job(void *arg)
{
    t_set_fd("j", ctx, kA, 11, dA, 1);
    t_pause("j");
    t_clear_fd("j", ctx, kA);
    t_get_fd("j", ctx, kA);
    t_all_fds("j", ctx);
    t_changed_fds("j", ctx);
    t_clear_fd("j", ctx, kA);
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;

    kA = t_sym("kA");
    dA = t_sym("dA");
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
