/* Twin of pool_unlimited_by_default: no ASYNC_init_thread, 25 paused jobs. */
#include "trace.h"

struct spec { char who[8]; int result; };

static int pauses_once(void *arg)
{
    struct spec *s = arg;

    t_pause(s->who);
    return s->result;
}

int main(void)
{
    ASYNC_JOB *jobs[25];
    ASYNC_WAIT_CTX *ctx;
    struct spec s;
    int i;

    t_cleanup_thread(NULL);
    ctx = t_ctx_new("ctx");
    for (i = 1; i <= 25; i++) {
        memset(&s, 0, sizeof(s));
        snprintf(s.who, sizeof(s.who), "j%d", i);
        s.result = i;
        t_start(&jobs[i - 1], s.who, ctx, pauses_once, &s, sizeof(s));
    }
    for (i = 0; i < 25; i++)
        t_resume(&jobs[i]);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
