/* Twin of threads_cleanup_is_per_thread. */
#include "trace.h"

static int pauses_once(void *arg)
{
    t_pause((const char *)arg);
    return ((const char *)arg)[1] - '0';
}

static void *other(void *arg)
{
    t_init("T", 5, 0);
    t_cleanup_thread("T");
    return NULL;
}

int main(void)
{
    ASYNC_JOB *j1, *j2;
    ASYNC_WAIT_CTX *ctx;
    pthread_t thread;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_start(&j1, "j1", ctx, pauses_once, "j1", 3);
    pthread_create(&thread, NULL, other, NULL);
    pthread_join(thread, NULL);
    t_start(&j2, "j2", ctx, pauses_once, "j2", 3);   /* the main pool is still full */
    t_resume(&j1);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
