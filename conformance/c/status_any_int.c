/* Twin of status_any_int. */
#include "trace.h"

int main(void)
{
    static const int values[] = {2, 3, 1, 12345, -1, INT_MAX, INT_MIN, 0};
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    size_t i;

    t_get_status(NULL, ctx);
    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        t_set_status(NULL, ctx, values[i]);
        t_get_status(NULL, ctx);
    }
    t_ctx_free(ctx);
    return 0;
}
