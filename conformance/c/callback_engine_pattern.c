/* Twin of callback_engine_pattern: what an engine does with the callback and
 * status, and what the application does in reply. */
#include "trace.h"

static int flag = 0;

static int completion(void *arg)
{
    int *f = arg;

    (*f)++;
    T("completion: flag = %d", *f);
    return 1;
}

static int job(void *arg)
{
    ASYNC_WAIT_CTX *wctx = ASYNC_get_wait_ctx(ASYNC_get_current_job());

    t_set_callback("j", wctx, completion, &flag);
    t_set_status("j", wctx, ASYNC_STATUS_OK);      /* a callback will come */
    t_pause("j");
    T("  j: flag = %d", flag);
    t_set_status("j", wctx, ASYNC_STATUS_EAGAIN);  /* resume me later */
    t_pause("j");
    t_get_status("j", wctx);
    return flag;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx;
    ASYNC_callback_fn cb;
    void *arg;
    int status;

    tn_set(&flag, "flag");
    tn_set((const void *)completion, "completion");
    ctx = t_ctx_new("ctx");
    status = t_start(&handle, "j", ctx, job, NULL, 0);
    while (status == ASYNC_PAUSE) {
        t_get_status(NULL, ctx);
        if (t_get_callback(NULL, ctx, &cb, &arg) && ASYNC_WAIT_CTX_get_status(ctx) == ASYNC_STATUS_OK)
            t_call_callback(NULL, cb, arg);
        status = t_resume(&handle);
    }
    t_ctx_free(ctx);
    return 0;
}
