/* Twin of fd_duplicate_keys. */
#include "trace.h"

int main(void)
{
    void *kA = t_sym("kA"), *d1 = t_sym("d1"), *d2 = t_sym("d2"), *d3 = t_sym("d3");
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_set_fd(NULL, ctx, kA, 1, d1, 1);
    t_set_fd(NULL, ctx, kA, 2, d2, 1);
    t_set_fd(NULL, ctx, kA, 3, d3, 1);
    t_all_fds(NULL, ctx);
    t_changed_fds(NULL, ctx);
    t_get_fd(NULL, ctx, kA);
    t_clear_fd(NULL, ctx, kA);
    t_get_fd(NULL, ctx, kA);
    t_all_fds(NULL, ctx);
    t_clear_fd(NULL, ctx, kA);
    t_get_fd(NULL, ctx, kA);
    t_ctx_free(ctx);
    return 0;
}
