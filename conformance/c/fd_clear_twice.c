/* Twin of fd_clear_twice (the README's example of adding a scenario). */
#include "trace.h"

int main(void)
{
    void *kA = t_sym("kA");
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_set_fd(NULL, ctx, kA, 11, NULL, 1);
    t_clear_fd(NULL, ctx, kA);
    t_clear_fd(NULL, ctx, kA);
    t_ctx_free(ctx);
    return 0;
}
