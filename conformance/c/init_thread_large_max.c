/* Twin of init_thread_large_max. max_size > INT_MAX: accepted up to 3.5,
 * refused from 3.6 on; the two lines are marked version-dependent ("~ "). */
#include "trace.h"

static int returns(void *arg)
{
    return 1;
}

int main(void)
{
    static const size_t big[] = {(size_t)INT_MAX + 1, (size_t)-1};
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    size_t i;

    t_init(NULL, INT_MAX, 0);
    for (i = 0; i < 2; i++)
        T("~ init_thread(%zu, 0) -> %d", big[i], ASYNC_init_thread(big[i], 0));
    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, returns, NULL, 0);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
