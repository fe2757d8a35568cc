/* Twin of fd_two_jobs_share_a_ctx. */
#include "trace.h"

static ASYNC_WAIT_CTX *ctx;

struct spec { const void *key; int fd; char who[8]; };

static int body(void *arg)
{
    struct spec *s = arg;

    t_set_fd(s->who, ctx, s->key, s->fd, NULL, 1);
    t_pause(s->who);
    t_changed_fds(s->who, ctx);
    t_pause(s->who);
    return s->fd;
}

int main(void)
{
    ASYNC_JOB *j1, *j2;
    struct spec s1, s2;

    ctx = t_ctx_new("ctx");
    memset(&s1, 0, sizeof(s1));
    memset(&s2, 0, sizeof(s2));
    s1.key = t_sym("kA");
    s1.fd = 1;
    strcpy(s1.who, "j1");
    s2.key = t_sym("kB");
    s2.fd = 2;
    strcpy(s2.who, "j2");
    t_start(&j1, "j1", ctx, body, &s1, sizeof(s1));
    t_start(&j2, "j2", ctx, body, &s2, sizeof(s2));
    t_changed_fds(NULL, ctx);
    t_resume(&j1);
    t_changed_fds(NULL, ctx);
    t_resume(&j2);
    t_all_fds(NULL, ctx);
    t_resume(&j2);
    t_resume(&j1);
    t_ctx_free(ctx);
    return 0;
}
