/* Twin of interleave_many_jobs: 40 jobs, resumed in the order index * 7 mod 40. */
#include "trace.h"

#define COUNT 40

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
    ASYNC_JOB *jobs[COUNT];
    int alive[COUNT];
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    struct spec s;
    int i, k, any = 1;

    for (i = 0; i < COUNT; i++) {
        memset(&s, 0, sizeof(s));
        snprintf(s.who, sizeof(s.who), "j%d", i);
        s.pauses = i % 4 + 1;
        s.base = 100 * i;
        alive[i] = t_start(&jobs[i], s.who, ctx, counter_job, &s, sizeof(s)) == ASYNC_PAUSE;
    }
    while (any) {
        any = 0;
        for (k = 0; k < COUNT; k++) {
            i = (k * 7) % COUNT;
            if (alive[i])
                alive[i] = t_resume(&jobs[i]) == ASYNC_PAUSE;
        }
        for (i = 0; i < COUNT; i++)
            any |= alive[i];
    }
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
