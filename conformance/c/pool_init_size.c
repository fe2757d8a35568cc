/* Twin of pool_init_size. */
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
    static const size_t sizes[2][2] = {{2, 2}, {3, 1}};
    ASYNC_JOB *paused[8], *job;
    ASYNC_WAIT_CTX *ctx = t_ctx_new("ctx");
    struct spec s;
    size_t k, i, n;

    for (k = 0; k < 2; k++) {
        t_init(NULL, sizes[k][0], sizes[k][1]);
        n = 0;
        for (i = 1; i < sizes[k][0] + 2; i++) {
            memset(&s, 0, sizeof(s));
            snprintf(s.who, sizeof(s.who), "j%zu", i);
            s.result = (int)i;
            if (t_start(&job, s.who, ctx, pauses_once, &s, sizeof(s)) == ASYNC_PAUSE)
                paused[n++] = job;
        }
        for (i = 0; i < n; i++)
            t_resume(&paused[i]);
        t_cleanup_thread(NULL);
    }
    t_ctx_free(ctx);
    return 0;
}
