/* Twin of pool_max_size_no_jobs. A job gets its label and result as a copied struct. */
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

int main(void)
{
    ASYNC_JOB *j[4], *j5;
    ASYNC_WAIT_CTX *ctx;

    t_init(NULL, 3, 0);
    ctx = t_ctx_new("ctx");
    start(&j[0], ctx, "j1", 1);
    start(&j[1], ctx, "j2", 2);
    start(&j[2], ctx, "j3", 3);
    start(&j[3], ctx, "j4", 4);     /* NO_JOBS */
    t_resume(&j[1]);
    start(&j[3], ctx, "j4", 4);
    start(&j5, ctx, "j5", 5);       /* NO_JOBS */
    t_resume(&j[0]);
    t_resume(&j[2]);
    t_resume(&j[3]);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
