/* Twin of asynctest_start_job_ex (test_ASYNC_start_job_ex): the default library
 * context is saved and restored around every switch into and out of a job.
 * (The Python scenario checks the same rules on contextvars.) */
#include "trace.h"

static OSSL_LIB_CTX *set0_default(OSSL_LIB_CTX *ctx, const char *who)
{
    char pfxbuf[48];
    OSSL_LIB_CTX *old = OSSL_LIB_CTX_set0_default(ctx);

    T("%sset0_default(%s) -> %s", PFX(who), tn(ctx), tn(old));
    return old;
}

static int change_deflt_libctx(void *arg)
{
    OSSL_LIB_CTX *libctx = OSSL_LIB_CTX_new(), *old;

    if (libctx == NULL)
        return 0;
    tn_set(libctx, "L2");
    T("  j: L2 = OSSL_LIB_CTX_new");
    old = set0_default(libctx, "j");
    t_pause("j");
    if (set0_default(old, "j") != libctx)   /* the job still sees its own context */
        return 0;
    old = set0_default(libctx, "j");
    t_pause("j");
    if (set0_default(old, "j") != libctx)
        return 0;
    T("  j: OSSL_LIB_CTX_free(L2)");
    OSSL_LIB_CTX_free(libctx);
    return 1;
}

int main(void)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    OSSL_LIB_CTX *libctx, *old, *tmp, *globalctx;

    libctx = OSSL_LIB_CTX_new();
    if (libctx == NULL)
        return 1;
    tn_set(libctx, "L");
    T("L = OSSL_LIB_CTX_new");
    /* the global default has no name yet: name it by what the first swap returns */
    old = OSSL_LIB_CTX_set0_default(libctx);
    tn_set(old, "global");
    T("set0_default(%s) -> %s", tn(libctx), tn(old));
    globalctx = old;
    ctx = t_ctx_new("ctx");
    t_start(&job, "j", ctx, change_deflt_libctx, NULL, 0);
    tmp = set0_default(old, NULL);      /* the caller's own default is L again */
    old = set0_default(tmp, NULL);
    T("caller default was %s", tn(tmp));
    t_resume(&job);
    tmp = set0_default(old, NULL);      /* the caller goes on with the global default */
    T("caller default was %s", tn(tmp));
    t_resume(&job);
    tmp = set0_default(libctx, NULL);   /* after FINISH the caller's default is still global */
    set0_default(tmp, NULL);
    T("caller default was %s; global is %s", tn(tmp), tn(globalctx));
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    T("OSSL_LIB_CTX_free(L)");
    OSSL_LIB_CTX_free(libctx);
    return 0;
}
