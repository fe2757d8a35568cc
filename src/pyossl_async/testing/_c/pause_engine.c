/*
 * pyossl-async's test engine: operations that pause the running job from
 * inside C, the way async engines and providers do (OpenSSL's dasync, QAT,
 * afalg). Compiled on demand against the libcrypto the "openssl" backend
 * loaded, and loaded with ctypes; never needed at run time.
 *
 * One wait of an operation:
 *   - callback path (the wait ctx has a callback and the path allows it):
 *     set ASYNC_STATUS_OK (or EAGAIN), make the callback come (now, from a
 *     helper thread later, or never), pause; no fd;
 *   - fd path: one pipe per wait ctx, set as a wait fd under this engine's key
 *     with the write end as custom data and a C cleanup that closes both
 *     (dasync's layout); make it readable (now, later, or never), pause, then
 *     clear the wake-up signal.
 * A job resumed before its wait is over pauses again, as real engines do, so a
 * wait that never completes keeps the job inside C for good.
 *
 * The digest engine (pe_engine_install) makes SHA-1/SHA-256/SHA-384/SHA-512
 * pause this way in every update and final, so EVP_Digest*, hashlib and whole
 * TLS handshakes pause inside C.
 */
#include <openssl/async.h>
#include <openssl/engine.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/sha.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PE_PATH_AUTO 0     /* callback when the wait ctx has one, else fd */
#define PE_PATH_FD 1       /* always fd */
#define PE_PATH_CALLBACK 2 /* callback; fd when the wait ctx has none */

#define PE_READY_NOW 0    /* signalled before pausing (dasync) */
#define PE_READY_LATER 1  /* a helper thread signals after delay_us */
#define PE_READY_NEVER 2  /* never: the job stays in C until closed for good */
#define PE_READY_EAGAIN 3 /* callback path: status EAGAIN (retry); fd path: as NOW */

static const char pe_key = 'k'; /* the wait-fd key: its address */

static atomic_long pe_ops, pe_pauses, pe_waits, pe_cleanups, pe_fds_open, pe_helpers,
    pe_callbacks;
/* set by pe_release_never(): waits that were never to complete complete at their next resume */
static atomic_int pe_released;

/* a wait's completion, shared with the helper thread that completes it later */
struct pe_wait {
    atomic_int refs;
    atomic_int done;
    int wfd; /* fd path: a dup of the pipe's write end, owned by the helper */
    ASYNC_callback_fn cb;
    void *cb_arg;
    long delay_us;
};

struct pe_fds {
    int rfd, wfd;
};

static void pe_wait_put(struct pe_wait *w)
{
    if (atomic_fetch_sub(&w->refs, 1) == 1) {
        if (w->wfd >= 0) {
            close(w->wfd);
            atomic_fetch_sub(&pe_fds_open, 1);
        }
        free(w);
    }
}

static void pe_cleanup(ASYNC_WAIT_CTX *ctx, const void *key, OSSL_ASYNC_FD rfd, void *data)
{
    struct pe_fds *f = data;
    (void)ctx;
    (void)key;
    (void)rfd;
    close(f->rfd);
    close(f->wfd);
    free(f);
    atomic_fetch_sub(&pe_fds_open, 2);
    atomic_fetch_add(&pe_cleanups, 1);
}

static void pe_sleep_us(long us)
{
    struct timespec ts;
    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void pe_signal(struct pe_wait *w)
{
    if (w->cb != NULL) {
        atomic_store(&w->done, 1);
        atomic_fetch_add(&pe_callbacks, 1);
        w->cb(w->cb_arg);
    } else {
        char c = 'X';
        atomic_store(&w->done, 1);
        if (write(w->wfd, &c, 1) < 0) {
            /* full or closed: the reader is awake or gone */
        }
    }
}

static void *pe_helper_main(void *arg)
{
    struct pe_wait *w = arg;
    pe_sleep_us(w->delay_us);
    pe_signal(w);
    pe_wait_put(w);
    atomic_fetch_sub(&pe_helpers, 1);
    return NULL;
}

static int pe_later(struct pe_wait *w)
{
    pthread_t t;
    pthread_attr_t attr;
    int ok;
    atomic_fetch_add(&w->refs, 1);
    atomic_fetch_add(&pe_helpers, 1);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    ok = pthread_create(&t, &attr, pe_helper_main, w) == 0;
    pthread_attr_destroy(&attr);
    if (!ok) { /* no thread: complete now */
        atomic_fetch_sub(&pe_helpers, 1);
        atomic_fetch_sub(&w->refs, 1);
        pe_signal(w);
    }
    return ok;
}

static struct pe_fds *pe_get_fds(ASYNC_WAIT_CTX *ctx)
{
    OSSL_ASYNC_FD rfd;
    void *data = NULL;
    struct pe_fds *f;
    int p[2];
    if (ASYNC_WAIT_CTX_get_fd(ctx, &pe_key, &rfd, &data) && data != NULL)
        return data;
    if ((f = malloc(sizeof(*f))) == NULL)
        return NULL;
    if (pipe(p) != 0) {
        free(f);
        return NULL;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    fcntl(p[0], F_SETFD, FD_CLOEXEC);
    fcntl(p[1], F_SETFD, FD_CLOEXEC);
    f->rfd = p[0];
    f->wfd = p[1];
    atomic_fetch_add(&pe_fds_open, 2);
    if (!ASYNC_WAIT_CTX_set_wait_fd(ctx, &pe_key, f->rfd, f, pe_cleanup)) {
        pe_cleanup(ctx, &pe_key, f->rfd, f);
        return NULL;
    }
    return f;
}

static void pe_drain(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static int pe_readable(int fd, int timeout_ms)
{
    struct pollfd p;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    return poll(&p, 1, timeout_ms) > 0;
}

/* One wait; the number of times ASYNC_pause_job was called. */
static long pe_wait_once(ASYNC_WAIT_CTX *ctx, int path, int ready, long delay_us)
{
    ASYNC_callback_fn cb = NULL;
    void *cb_arg = NULL;
    struct pe_wait *w;
    struct pe_fds *f = NULL;
    long paused = 0;

    atomic_fetch_add(&pe_waits, 1);
    if (ready == PE_READY_NEVER && atomic_load(&pe_released))
        ready = PE_READY_NOW;
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return 0;
    atomic_store(&w->refs, 1);
    w->wfd = -1;
    w->delay_us = delay_us;
    if (path != PE_PATH_FD && ASYNC_WAIT_CTX_get_callback(ctx, &cb, &cb_arg) && cb != NULL) {
        w->cb = cb;
        w->cb_arg = cb_arg;
        if (ready == PE_READY_EAGAIN) {
            ASYNC_WAIT_CTX_set_status(ctx, ASYNC_STATUS_EAGAIN);
            atomic_store(&w->done, 1);
        } else {
            ASYNC_WAIT_CTX_set_status(ctx, ASYNC_STATUS_OK);
            if (ready == PE_READY_NOW)
                pe_signal(w);
            else if (ready == PE_READY_LATER)
                pe_later(w);
        }
        do {
            atomic_fetch_add(&pe_pauses, 1);
            paused++;
            ASYNC_pause_job();
            if (!atomic_load(&w->done) && !atomic_load(&pe_released))
                pe_sleep_us(100); /* resumed early (or pausing is blocked) */
        } while (!atomic_load(&w->done) && !atomic_load(&pe_released));
        pe_wait_put(w);
        return paused;
    }
    if ((f = pe_get_fds(ctx)) == NULL) {
        pe_wait_put(w);
        return 0;
    }
    if (ready == PE_READY_LATER) {
        w->wfd = dup(f->wfd); /* the helper's own: a cleanup meanwhile cannot make it write to a reused number */
        if (w->wfd >= 0) {
            atomic_fetch_add(&pe_fds_open, 1);
            pe_later(w);
        } else {
            w->wfd = f->wfd;
            pe_signal(w);
            w->wfd = -1;
        }
    } else if (ready != PE_READY_NEVER) {
        w->wfd = f->wfd;
        pe_signal(w);
        w->wfd = -1;
    }
    do {
        atomic_fetch_add(&pe_pauses, 1);
        paused++;
        ASYNC_pause_job();
    } while (!pe_readable(f->rfd, 1) && !atomic_load(&pe_released)); /* resumed early: pause again */
    pe_drain(f->rfd);
    pe_wait_put(w);
    return paused;
}

/* An operation that waits `waits` times; the number of pauses (0 outside a job). */
long pe_op(int path, int ready, int waits, long delay_us)
{
    ASYNC_JOB *job;
    ASYNC_WAIT_CTX *ctx;
    long paused = 0;
    int i;
    atomic_fetch_add(&pe_ops, 1);
    if ((job = ASYNC_get_current_job()) == NULL || (ctx = ASYNC_get_wait_ctx(job)) == NULL)
        return 0; /* not in a job: a synchronous engine would just compute */
    for (i = 0; i < waits; i++)
        paused += pe_wait_once(ctx, path, ready, delay_us);
    return paused;
}

/* counters: 0 ops, 1 pauses, 2 waits, 3 cleanups run, 4 fds open, 5 helper threads alive,
 * 6 callbacks made */
long pe_stat(int which)
{
    switch (which) {
    case 0: return atomic_load(&pe_ops);
    case 1: return atomic_load(&pe_pauses);
    case 2: return atomic_load(&pe_waits);
    case 3: return atomic_load(&pe_cleanups);
    case 4: return atomic_load(&pe_fds_open);
    case 5: return atomic_load(&pe_helpers);
    case 6: return atomic_load(&pe_callbacks);
    default: return -1;
    }
}

/* Let waits that were never to complete complete at their next resume (on != 0), or not. */
void pe_release_never(int on)
{
    atomic_store(&pe_released, on != 0);
}

/* Wait (up to timeout_us) until no helper thread is left; 1 when none is. */
int pe_quiesce(long timeout_us)
{
    long waited = 0;
    while (atomic_load(&pe_helpers) > 0 && waited < timeout_us) {
        pe_sleep_us(1000);
        waited += 1000;
    }
    return atomic_load(&pe_helpers) == 0;
}

/* ---- the digest engine ------------------------------------------------- */

static int pe_eng_path = PE_PATH_AUTO, pe_eng_ready = PE_READY_NOW, pe_eng_waits = 1;
static long pe_eng_delay = 0;
static ENGINE *pe_engine = NULL;
static EVP_MD *pe_mds[4];
static const int pe_nids[4] = {NID_sha1, NID_sha256, NID_sha384, NID_sha512};

static void pe_md_pause(void)
{
    if (pe_eng_waits > 0)
        pe_op(pe_eng_path, pe_eng_ready, pe_eng_waits, pe_eng_delay);
}

#define PE_DIGEST(name, CTXT, INIT, UPDATE, FINAL)                                    \
    static int pe_##name##_init(EVP_MD_CTX *c) { return INIT(EVP_MD_CTX_md_data(c)); } \
    static int pe_##name##_update(EVP_MD_CTX *c, const void *d, size_t n)             \
    {                                                                                 \
        pe_md_pause();                                                                \
        return UPDATE(EVP_MD_CTX_md_data(c), d, n);                                   \
    }                                                                                 \
    static int pe_##name##_final(EVP_MD_CTX *c, unsigned char *md)                    \
    {                                                                                 \
        pe_md_pause();                                                                \
        return FINAL(md, EVP_MD_CTX_md_data(c));                                      \
    }

PE_DIGEST(sha1, SHA_CTX, SHA1_Init, SHA1_Update, SHA1_Final)
PE_DIGEST(sha256, SHA256_CTX, SHA256_Init, SHA256_Update, SHA256_Final)
PE_DIGEST(sha384, SHA512_CTX, SHA384_Init, SHA384_Update, SHA384_Final)
PE_DIGEST(sha512, SHA512_CTX, SHA512_Init, SHA512_Update, SHA512_Final)

static EVP_MD *pe_make_md(int nid, int pkey, int size, int block, int datasize,
                          int (*init)(EVP_MD_CTX *), int (*update)(EVP_MD_CTX *, const void *, size_t),
                          int (*final)(EVP_MD_CTX *, unsigned char *))
{
    EVP_MD *md = EVP_MD_meth_new(nid, pkey);
    if (md == NULL)
        return NULL;
    if (!EVP_MD_meth_set_result_size(md, size) || !EVP_MD_meth_set_input_blocksize(md, block)
        || !EVP_MD_meth_set_app_datasize(md, datasize)
        || !EVP_MD_meth_set_flags(md, EVP_MD_FLAG_DIGALGID_ABSENT)
        || !EVP_MD_meth_set_init(md, init) || !EVP_MD_meth_set_update(md, update)
        || !EVP_MD_meth_set_final(md, final)) {
        EVP_MD_meth_free(md);
        return NULL;
    }
    return md;
}

static int pe_digests(ENGINE *e, const EVP_MD **digest, const int **nids, int nid)
{
    int i;
    (void)e;
    if (digest == NULL) {
        *nids = pe_nids;
        return 4;
    }
    for (i = 0; i < 4; i++) {
        if (pe_nids[i] == nid) {
            *digest = pe_mds[i];
            return *digest != NULL;
        }
    }
    *digest = NULL;
    return 0;
}

/* Make this engine the default for SHA-1/256/384/512; 1 on success. */
int pe_engine_install(int path, int ready, int waits, long delay_us)
{
    pe_eng_path = path;
    pe_eng_ready = ready;
    pe_eng_waits = waits;
    pe_eng_delay = delay_us;
    if (pe_engine != NULL)
        return 1;
    pe_mds[0] = pe_make_md(NID_sha1, NID_sha1WithRSAEncryption, 20, 64, sizeof(SHA_CTX),
                           pe_sha1_init, pe_sha1_update, pe_sha1_final);
    pe_mds[1] = pe_make_md(NID_sha256, NID_sha256WithRSAEncryption, 32, 64, sizeof(SHA256_CTX),
                           pe_sha256_init, pe_sha256_update, pe_sha256_final);
    pe_mds[2] = pe_make_md(NID_sha384, NID_sha384WithRSAEncryption, 48, 128, sizeof(SHA512_CTX),
                           pe_sha384_init, pe_sha384_update, pe_sha384_final);
    pe_mds[3] = pe_make_md(NID_sha512, NID_sha512WithRSAEncryption, 64, 128, sizeof(SHA512_CTX),
                           pe_sha512_init, pe_sha512_update, pe_sha512_final);
    if ((pe_engine = ENGINE_new()) == NULL)
        return 0;
    if (!ENGINE_set_id(pe_engine, "pyossl-async-pause") || !ENGINE_set_name(pe_engine, "pyossl-async test engine: pauses from C")
        || !ENGINE_set_digests(pe_engine, pe_digests) || !ENGINE_set_default_digests(pe_engine)) {
        ENGINE_free(pe_engine);
        pe_engine = NULL;
        return 0;
    }
    return 1;
}

/* Change how the installed digests pause (waits 0: not at all). */
void pe_engine_configure(int path, int ready, int waits, long delay_us)
{
    pe_eng_path = path;
    pe_eng_ready = ready;
    pe_eng_waits = waits;
    pe_eng_delay = delay_us;
}

void pe_engine_uninstall(void)
{
    if (pe_engine == NULL)
        return;
    ENGINE_unregister_digests(pe_engine);
    ENGINE_free(pe_engine);
    pe_engine = NULL;
}
