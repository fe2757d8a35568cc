/* Twin of blocked_pause_keeps_fd_counts. */
#include "trace.h"

static void *kA, *kB;

static int job(void *arg)
{
    ASYNC_WAIT_CTX *ctx = ASYNC_get_wait_ctx(ASYNC_get_current_job());

    t_set_fd("j", ctx, kA, 20, NULL, 0);
    t_pause("j");
    t_changed_fds("j", ctx);
    t_set_fd("j", ctx, kB, 21, NULL, 0);
    t_block("j");
    t_pause("j");
    t_changed_fds("j", ctx);
    t_unblock("j");
    t_pause("j");
    t_changed_fds("j", ctx);
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx;

    kA = t_sym("kA");
    kB = t_sym("kB");
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_changed_fds(NULL, ctx);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
