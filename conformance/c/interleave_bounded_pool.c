/* Twin of interleave_bounded_pool: ten tasks through a pool of four. */
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
    ASYNC_JOB *running[10], *job;
    int nrunning = 0, next = 0, i;
    ASYNC_WAIT_CTX *ctx;
    struct spec s;

    t_init(NULL, 4, 0);
    ctx = t_ctx_new("ctx");
    while (next < 10 || nrunning > 0) {
        while (next < 10) {
            memset(&s, 0, sizeof(s));
            snprintf(s.who, sizeof(s.who), "t%d", next);
            s.pauses = next % 3 + 1;
            s.base = next;
            if (t_start(&job, s.who, ctx, counter_job, &s, sizeof(s)) != ASYNC_PAUSE)
                break;   /* NO_JOBS: every task pauses at least once */
            next++;
            running[nrunning++] = job;
        }
        if (nrunning > 0) {
            job = running[0];
            for (i = 1; i < nrunning; i++)
                running[i - 1] = running[i];
            nrunning--;
            if (t_resume(&job) == ASYNC_PAUSE)
                running[nrunning++] = job;
        }
    }
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
