/* Twin of job_finish_without_pause: results across the C int range; a NULL
 * wait context is fine for a job that never pauses. */
#include "trace.h"

static int returns(void *arg)
{
    t_current("j");
    return *(int *)arg;
}

int main(void)
{
    static const int values[] = {0, 7, -5, INT_MAX, INT_MIN};
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    int three = 3;
    size_t i;

    ctx = t_ctx_new("ctx");
    for (i = 0; i < sizeof(values) / sizeof(values[0]); i++)
        t_start(&job, "j", ctx, returns, (void *)&values[i], sizeof(int));
    t_start(&job, "j", NULL, returns, &three, sizeof(int));
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
