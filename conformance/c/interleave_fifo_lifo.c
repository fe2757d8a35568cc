/* Twin of interleave_fifo_lifo. */
#include "trace.h"

struct spec { char who[8]; int pauses, base; };

static int counter_job(void *arg)
{
    struct spec *s = arg;
    int n = 0;

    while (n < s->pauses) {
        t_pause(s->who);
        n++;
    }
    T("  %s: done after %d pauses", s->who, n);
    return s->base + n;
}

int main(void)
{
    ASYNC_JOB *jobs[3];
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    struct spec s;
    int i;

    for (i = 1; i <= 3; i++) {
        memset(&s, 0, sizeof(s));
        snprintf(s.who, sizeof(s.who), "j%d", i);
        s.pauses = 2;
        s.base = 10 * i;
        t_start(&jobs[i - 1], s.who, ctx, counter_job, &s, sizeof(s));
    }
    for (i = 0; i < 3; i++)
        t_resume(&jobs[i]);
    for (i = 2; i >= 0; i--)
        t_resume(&jobs[i]);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
