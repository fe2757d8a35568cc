/* Twin of interleave_ctx_per_job. */
#include "trace.h"

static void *keys[4];

static int body(void *arg)
{
    int i = *(int *)arg;
    char who[8];
    ASYNC_WAIT_CTX *ctx = ASYNC_get_wait_ctx(ASYNC_get_current_job());

    snprintf(who, sizeof(who), "j%d", i);
    t_set_fd(who, ctx, keys[i], 10 + i, NULL, 1);
    t_pause(who);
    t_clear_fd(who, ctx, keys[i]);
    t_pause(who);
    return i;
}

int main(void)
{
    static const int order[] = {2, 0, 3, 1};
    ASYNC_WAIT_CTX *ctxs[4];
    ASYNC_JOB *jobs[4], *reordered[4];
    char name[8];
    int i;

    for (i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "ctx%d", i);
        ctxs[i] = t_ctx_new(name);
    }
    for (i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "k%d", i);
        keys[i] = t_sym(name);
    }
    for (i = 0; i < 4; i++) {
        snprintf(name, sizeof(name), "j%d", i);
        t_start(&jobs[i], name, ctxs[i], body, &i, sizeof(i));
    }
    for (i = 0; i < 4; i++)
        t_changed_fds(NULL, ctxs[i]);
    for (i = 0; i < 4; i++) {
        reordered[i] = jobs[order[i]];
        t_resume(&reordered[i]);
    }
    for (i = 0; i < 4; i++)
        t_changed_fds(NULL, ctxs[i]);
    for (i = 0; i < 4; i++)
        t_resume(&reordered[i]);
    for (i = 0; i < 4; i++) {
        t_all_fds(NULL, ctxs[i]);
        t_ctx_free(ctxs[i]);
    }
    t_cleanup_thread(NULL);
    return 0;
}
