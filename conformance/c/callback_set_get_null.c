/* Twin of callback_set_get_null. */
#include "trace.h"

static int cb1(void *arg)
{
    T("cb1 called with %s", tn(arg));
    return 1;
}

static int cb2(void *arg)
{
    T("cb2 called with %s", tn(arg));
    return 2;
}

int main(void)
{
    ASYNC_callback_fn cb = NULL;
    void *arg = NULL;
    void *a1 = t_sym("a1");
    ASYNC_WAIT_CTX *ctx;

    tn_set((const void *)cb1, "cb1");
    tn_set((const void *)cb2, "cb2");
    ctx = t_ctx_new("ctx");
    t_get_callback(NULL, ctx, &cb, &arg);
    t_set_callback(NULL, ctx, NULL, a1);
    t_get_callback(NULL, ctx, &cb, &arg);
    t_set_callback(NULL, ctx, cb1, a1);
    if (t_get_callback(NULL, ctx, &cb, &arg))
        t_call_callback(NULL, cb, arg);
    t_set_callback(NULL, ctx, cb2, NULL);
    if (t_get_callback(NULL, ctx, &cb, &arg))
        t_call_callback(NULL, cb, arg);
    t_set_callback(NULL, ctx, NULL, NULL);
    t_get_callback(NULL, ctx, &cb, &arg);
    t_ctx_free(ctx);
    return 0;
}
