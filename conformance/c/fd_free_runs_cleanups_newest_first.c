/* Twin of fd_free_runs_cleanups_newest_first. */
#include "trace.h"

int main(void)
{
    void *kA = t_sym("kA"), *kB = t_sym("kB"), *kC = t_sym("kC"), *kD = t_sym("kD");
    void *dA = t_sym("dA"), *dB = t_sym("dB"), *dC = t_sym("dC"), *dD = t_sym("dD");
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_set_fd(NULL, ctx, kA, 11, dA, 1);
    t_set_fd(NULL, ctx, kB, 20, dB, 1);
    t_set_fd(NULL, ctx, kC, 30, dC, 0);
    t_set_fd(NULL, ctx, kD, 40, dD, 1);
    t_set_fd(NULL, ctx, kA, 12, NULL, 1);
    t_clear_fd(NULL, ctx, kD);
    t_all_fds(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
