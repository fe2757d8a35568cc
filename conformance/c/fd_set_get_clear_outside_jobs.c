/* Twin of fd_set_get_clear_outside_jobs. */
#include "trace.h"

int main(void)
{
    void *kA = t_sym("kA"), *kB = t_sym("kB"), *dA = t_sym("dA"), *dB = t_sym("dB");
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_set_fd(NULL, ctx, kA, 11, dA, 1);
    t_set_fd(NULL, ctx, kB, 20, dB, 1);
    t_all_fds(NULL, ctx);
    t_changed_fds(NULL, ctx);
    t_get_fd(NULL, ctx, kA);
    t_get_fd(NULL, ctx, kB);
    t_clear_fd(NULL, ctx, kA);
    t_all_fds(NULL, ctx);
    t_changed_fds(NULL, ctx);
    t_get_fd(NULL, ctx, kA);
    t_clear_fd(NULL, ctx, kA);
    t_changed_fds(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
