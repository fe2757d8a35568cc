/* Twin of threads_parallel_jobs: four threads run at once, each interleaving
 * three jobs in its own pool of two; each captures its trace, printed after
 * the joins in thread order. */
#include "trace.h"

#define COUNT 4

static pthread_barrier_t barrier;
static struct t_capture captures[COUNT];

struct spec { ASYNC_WAIT_CTX *ctx; const void *key; int i, k; char who[8]; };

static int body(void *arg)
{
    struct spec *s = arg;

    t_set_fd(s->who, s->ctx, s->key, 100 * s->i + s->k, NULL, 0);
    t_pause(s->who);
    t_clear_fd(s->who, s->ctx, s->key);
    t_pause(s->who);
    return 10 * s->i + s->k;
}

static void *run(void *arg)
{
    int i = *(int *)arg, k, n = 0, m;
    ASYNC_JOB *live[3], *job;
    ASYNC_WAIT_CTX *ctx;
    struct spec s;
    void *key;

    pthread_barrier_wait(&barrier);   /* all threads really run at the same time */
    t_capture_begin(&captures[i]);
    t_init(NULL, 2, 0);
    ctx = t_ctx_new("ctx");
    key = t_sym("k");
    for (k = 0; k < 3; k++) {
        memset(&s, 0, sizeof(s));
        s.ctx = ctx;
        s.key = key;
        s.i = i;
        s.k = k;
        snprintf(s.who, sizeof(s.who), "j%d", k);
        if (t_start(&job, s.who, ctx, body, &s, sizeof(s)) == ASYNC_PAUSE)
            live[n++] = job;
    }
    while (n > 0) {
        m = 0;
        for (k = 0; k < n; k++) {
            job = live[k];
            if (t_resume(&job) == ASYNC_PAUSE)
                live[m++] = job;
        }
        n = m;
    }
    t_all_fds(NULL, ctx);
    t_ctx_free(ctx);
    t_cleanup_thread(NULL);
    t_capture_end();
    return NULL;
}

int main(void)
{
    pthread_t threads[COUNT];
    int ids[COUNT], i;
    char prefix[8];

    pthread_barrier_init(&barrier, NULL, COUNT);
    for (i = 0; i < COUNT; i++) {
        ids[i] = i;
        pthread_create(&threads[i], NULL, run, &ids[i]);
    }
    for (i = 0; i < COUNT; i++)
        pthread_join(threads[i], NULL);
    for (i = 0; i < COUNT; i++) {
        snprintf(prefix, sizeof(prefix), "T%d| ", i);
        t_capture_print(&captures[i], prefix);
    }
    return 0;
}
