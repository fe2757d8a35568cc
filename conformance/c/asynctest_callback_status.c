/* Twin of asynctest_callback_status (test_ASYNC_callback_status). */
#include "trace.h"

static int cb(void *arg)
{
    T("callback called with %s", tn(arg));
    return 1;
}

int main(void)
{
    ASYNC_WAIT_CTX *ctx;
    ASYNC_callback_fn got_cb = NULL;
    void *got_arg = NULL;
    void *arg = t_sym("arg");

    tn_set((const void *)cb, "cb");
    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_set_callback(NULL, ctx, cb, arg);
    if (t_get_callback(NULL, ctx, &got_cb, &got_arg))
        t_call_callback(NULL, got_cb, got_arg);
    t_set_status(NULL, ctx, 1);
    t_get_status(NULL, ctx);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
