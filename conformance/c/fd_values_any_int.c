/* Twin of fd_values_any_int. */
#include "trace.h"

int main(void)
{
    static const int fds[] = {-1, 0, INT_MAX, INT_MIN};
    void *keys[4];
    char name[8];
    ASYNC_WAIT_CTX *ctx;
    int i;

    for (i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        keys[i] = t_sym(name);
    }
    ctx = t_ctx_new("ctx");
    for (i = 0; i < 4; i++)
        t_set_fd(NULL, ctx, keys[i], fds[i], NULL, 1);
    t_all_fds(NULL, ctx);
    t_get_fd(NULL, ctx, keys[2]);
    t_ctx_free(ctx);
    return 0;
}
