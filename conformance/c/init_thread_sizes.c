/* Twin of init_thread_sizes. */
#include "trace.h"

static int pauses_once(void *arg)
{
    t_pause((const char *)arg);
    return 1;
}

int main(void)
{
    static const size_t sizes[][2] = {{0, 0}, {0, 5}, {2, 5}, {5, 5}, {5, 2}, {1, 0}};
    ASYNC_JOB *j1, *j2;
    ASYNC_WAIT_CTX *ctx;
    size_t i;

    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        t_init(NULL, sizes[i][0], sizes[i][1]);
    ctx = t_ctx_new("ctx");
    t_start(&j1, "j1", ctx, pauses_once, "j1", 3);
    t_init(NULL, 0, 1);                          /* fails: the pool of one stays */
    t_start(&j2, "j2", ctx, pauses_once, "j2", 3);
    t_resume(&j1);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
