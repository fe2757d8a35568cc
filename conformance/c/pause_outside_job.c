/* Twin of pause_outside_job. OpenSSL 3.0-3.5 read the async thread-local
 * through a key that is 0 until OPENSSL_init_crypto(OPENSSL_INIT_ASYNC) ran;
 * initialise first, as the library does when it loads libcrypto. */
#include "trace.h"

static int job(void *arg)
{
    t_pause("j");
    return 1;
}

static void *other_thread(void *arg)
{
    t_pause("T");
    t_current("T");
    return NULL;
}

int main(void)
{
    ASYNC_JOB *handle;
    ASYNC_WAIT_CTX *ctx;
    pthread_t thread;

    OPENSSL_init_crypto(OPENSSL_INIT_ASYNC, NULL);
    t_pause(NULL);
    t_current(NULL);
    ctx = t_ctx_new("ctx");
    t_start(&handle, "j", ctx, job, NULL, 0);
    t_pause(NULL);
    t_current(NULL);
    pthread_create(&thread, NULL, other_thread, NULL);
    pthread_join(thread, NULL);
    t_resume(&handle);
    t_pause(NULL);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    return 0;
}
