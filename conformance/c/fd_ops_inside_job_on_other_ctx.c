/* Twin of fd_ops_inside_job_on_other_ctx. */
#include "trace.h"

static ASYNC_WAIT_CTX *own, *other;
static void *kA, *kB;

static int job(void *arg)
{
    t_set_fd("j", own, kA, 1, NULL, 1);
    t_set_fd("j", other, kB, 2, NULL, 1);
    t_pause("j");
    t_changed_fds("j", own);
    t_changed_fds("j", other);
    return 1;
}

int main(void)
{
    ASYNC_JOB *handle;

    kA = t_sym("kA");
    kB = t_sym("kB");
    own = t_ctx_new("own");
    other = t_ctx_new("other");
    t_start(&handle, "j", own, job, NULL, 0);
    t_resume(&handle);
    t_ctx_free(other);
    t_ctx_free(own);
    return 0;
}
