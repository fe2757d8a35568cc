/* Twin of fd_counts_carry_over_to_next_job. */
#include "trace.h"

static ASYNC_WAIT_CTX *ctx;
static void *kA, *kB;

static int first(void *arg)
{
    t_pause("j1");
    t_set_fd("j1", ctx, kA, 3, NULL, 1);
    return 1;
}

static int second(void *arg)
{
    t_set_fd("j2", ctx, kB, 4, NULL, 1);
    t_pause("j2");
    t_changed_fds("j2", ctx);
    return 2;
}

int main(void)
{
    ASYNC_JOB *handle;

    kA = t_sym("kA");
    kB = t_sym("kB");
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j1", ctx, first, NULL, 0);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_start(&handle, "j2", ctx, second, NULL, 0);
    t_changed_fds(NULL, ctx);
    t_resume(&handle);
    t_changed_fds(NULL, ctx);
    t_all_fds(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
