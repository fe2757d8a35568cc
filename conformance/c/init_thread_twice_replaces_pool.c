/* Twin of init_thread_twice_replaces_pool. */
#include "trace.h"

struct spec { char who[8]; int result; };

static int pauses_once(void *arg)
{
    struct spec *s = arg;

    t_pause(s->who);
    return s->result;
}

static int returns(void *arg)
{
    return *(int *)arg;
}

static int start_pausing(ASYNC_JOB **job, ASYNC_WAIT_CTX *ctx, const char *who, int result)
{
    struct spec s;

    memset(&s, 0, sizeof(s));
    snprintf(s.who, sizeof(s.who), "%s", who);
    s.result = result;
    return t_start(job, who, ctx, pauses_once, &s, sizeof(s));
}

static int start_returning(ASYNC_WAIT_CTX *ctx, const char *who, int result)
{
    ASYNC_JOB *job;

    return t_start(&job, who, ctx, returns, &result, sizeof(result));
}

int main(void)
{
    ASYNC_JOB *j1, *j3;
    ASYNC_WAIT_CTX *ctx;

    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    start_pausing(&j1, ctx, "j1", 1);
    start_returning(ctx, "j2", 2);      /* NO_JOBS */
    t_init(NULL, 1, 0);
    start_pausing(&j3, ctx, "j3", 3);   /* the new pool's first job */
    start_returning(ctx, "j4", 4);      /* NO_JOBS */
    t_resume(&j1);                      /* j1's job joins the new pool... */
    start_returning(ctx, "j5", 5);      /* ...so there is an idle job again */
    t_resume(&j3);
    start_returning(ctx, "j6", 6);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
