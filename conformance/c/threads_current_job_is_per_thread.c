/* Twin of threads_current_job_is_per_thread. */
#include "trace.h"

static int main_job(void *arg)
{
    t_pause("j");
    t_current("j");
    return 1;
}

static int thread_job(void *arg)
{
    t_pause("t");
    t_current("t");
    return 2;
}

static void *other(void *arg)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *tctx;

    t_current("T");
    tctx = t_ctx_new("tctx");
    t_start(&job, "t", tctx, thread_job, NULL, 0);
    t_resume(&job);
    t_current("T");
    t_ctx_free(tctx);
    t_cleanup_thread("T");
    return NULL;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    pthread_t thread;

    t_start(&handle, "j", ctx, main_job, NULL, 0);
    pthread_create(&thread, NULL, other, NULL);
    pthread_join(thread, NULL);
    t_resume(&handle);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
