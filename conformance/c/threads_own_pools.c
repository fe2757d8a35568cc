/* Twin of threads_own_pools. */
#include "trace.h"

struct spec { char who[8]; int result; };

static int pauses_once(void *arg)
{
    struct spec *s = arg;

    t_pause(s->who);
    return s->result;
}

static int start(ASYNC_JOB **job, ASYNC_WAIT_CTX *ctx, const char *who, int result)
{
    struct spec s;

    memset(&s, 0, sizeof(s));
    snprintf(s.who, sizeof(s.who), "%s", who);
    s.result = result;
    return t_start(job, who, ctx, pauses_once, &s, sizeof(s));
}

static void *other(void *arg)
{
    ASYNC_JOB *handles[3], *t4;
    ASYNC_WAIT_CTX *tctx = t_ctx_new("tctx");
    int i;

    start(&handles[0], tctx, "t1", 11);
    start(&handles[1], tctx, "t2", 12);
    t_init("T", 1, 0);                 /* a new pool of one: t3 fits */
    start(&handles[2], tctx, "t3", 13);
    start(&t4, tctx, "t4", 14);        /* NO_JOBS */
    for (i = 0; i < 3; i++)
        t_resume(&handles[i]);
    t_ctx_free(tctx);
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
    start(&j1, ctx, "j1", 1);
    start(&j2, ctx, "j2", 2);          /* NO_JOBS */
    pthread_create(&thread, NULL, other, NULL);
    pthread_join(thread, NULL);
    start(&j2, ctx, "j2", 2);          /* still NO_JOBS */
    t_resume(&j1);
    start(&j2, ctx, "j2", 2);
    t_resume(&j2);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
