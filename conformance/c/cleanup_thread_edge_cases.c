/* Twin of cleanup_thread_edge_cases. */
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
    return 1;
}

int main(void)
{
    ASYNC_JOB *jobs[3], *job;
    ASYNC_WAIT_CTX *ctx;
    struct spec s;
    int i;

    t_cleanup_thread(NULL);
    t_cleanup_thread(NULL);
    t_init(NULL, 1, 0);
    ctx = t_ctx_new("ctx");
    t_start(&job, "j1", ctx, returns, NULL, 0);
    t_cleanup_thread(NULL);
    t_cleanup_thread(NULL);
    for (i = 2; i <= 4; i++) {
        memset(&s, 0, sizeof(s));
        snprintf(s.who, sizeof(s.who), "j%d", i);
        s.result = i;
        t_start(&jobs[i - 2], s.who, ctx, pauses_once, &s, sizeof(s));
    }
    for (i = 0; i < 3; i++)
        t_resume(&jobs[i]);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
