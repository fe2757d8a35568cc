/* Twin of waitctx_fresh. */
#include "trace.h"

int main(void)
{
    ASYNC_callback_fn cb;
    void *arg;
    void *kA = t_sym("kA");
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");

    t_all_fds(NULL, ctx);
    t_changed_fds(NULL, ctx);
    t_get_fd(NULL, ctx, kA);
    t_clear_fd(NULL, ctx, kA);
    t_get_callback(NULL, ctx, &cb, &arg);
    t_get_status(NULL, ctx);
    t_ctx_free(ctx);
    return 0;
}
