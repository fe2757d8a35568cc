/*
 * trace.h: the trace vocabulary of the conformance suite, in C.
 *
 * Every C twin prints, through these helpers, exactly the lines that the
 * Python scenario of the same name prints through
 * pyossl_async/testing/conformance/trace.py. The two files define one format;
 * change them together. Lines printed inside a job start with "  <who>: ",
 * where <who> is the job's label; driver lines have no prefix. Pointers (jobs,
 * wait contexts, keys, custom data, callbacks and their arguments) are printed
 * by the symbolic name registered for them.
 *
 * Header-only: each twin is one source file including it (the runner links
 * _version.c in as well, and puts this folder on the include path). Installed
 * with the package, next to trace.py, for the built-in suite and for suites of
 * your own (python -m pyossl_async conformance --scenarios PATH).
 */
#ifndef CONFORMANCE_TRACE_H
#define CONFORMANCE_TRACE_H

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/async.h>
#include <openssl/crypto.h>

/* ---- output ------------------------------------------------------------- */

/*
 * A thread can capture its lines instead of printing them (threads that run at
 * the same time print their captures one after another, after the joins).
 */
struct t_capture {
    char *buf;
    size_t len, cap;
};
static __thread struct t_capture *t_cap;

static void t_capture_begin(struct t_capture *c)
{
    c->buf = NULL;
    c->len = c->cap = 0;
    t_cap = c;
}

static void t_capture_end(void)
{
    t_cap = NULL;
}

static void t_capture_add(struct t_capture *c, const char *line)
{
    size_t n = strlen(line) + 1;

    if (c->len + n > c->cap) {
        c->cap = (c->len + n) * 2;
        c->buf = realloc(c->buf, c->cap);
        if (c->buf == NULL)
            abort();
    }
    memcpy(c->buf + c->len, line, n);
    c->len += n;
}

/* one whole line per call; stdout's own lock keeps lines whole across threads */
static void T(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (t_cap != NULL) {
        t_capture_add(t_cap, buf);
        return;
    }
    printf("%s\n", buf);
    fflush(stdout);
}

/* print a capture, each line after `prefix`, and free it */
static void t_capture_print(struct t_capture *c, const char *prefix)
{
    size_t off = 0;

    while (off < c->len) {
        T("%s%s", prefix, c->buf + off);
        off += strlen(c->buf + off) + 1;
    }
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* "  who: " inside a job, "" for the driver (who == NULL) */
static const char *t_pfx(const char *who, char *buf, size_t n)
{
    if (who == NULL)
        buf[0] = '\0';
    else
        snprintf(buf, n, "  %s: ", who);
    return buf;
}

#define PFX(who) t_pfx((who), pfxbuf, sizeof(pfxbuf))

/* ---- symbolic names for pointers ---------------------------------------- */

#define T_MAX_NAMES 512

static struct {
    const void *p;
    char name[32];
} t_names[T_MAX_NAMES];
static pthread_mutex_t t_names_lock = PTHREAD_MUTEX_INITIALIZER;

/* give pointer p the name `name` (replacing any earlier name of p) */
static void tn_set(const void *p, const char *name)
{
    int i, free_slot = -1;

    pthread_mutex_lock(&t_names_lock);
    for (i = 0; i < T_MAX_NAMES; i++) {
        if (t_names[i].p == p)
            break;
        if (t_names[i].p == NULL && free_slot < 0)
            free_slot = i;
    }
    if (i == T_MAX_NAMES)
        i = free_slot;
    if (i < 0) {
        fprintf(stderr, "trace.h: too many names\n");
        abort();
    }
    t_names[i].p = p;
    snprintf(t_names[i].name, sizeof(t_names[i].name), "%s", name);
    pthread_mutex_unlock(&t_names_lock);
}

static void tn_forget(const void *p)
{
    int i;

    pthread_mutex_lock(&t_names_lock);
    for (i = 0; i < T_MAX_NAMES; i++)
        if (t_names[i].p == p)
            t_names[i].p = NULL;
    pthread_mutex_unlock(&t_names_lock);
}

/* the name of p: "NULL" for NULL, "?" when it has none */
static const char *tn(const void *p)
{
    const char *out = "?";
    int i;

    if (p == NULL)
        return "NULL";
    pthread_mutex_lock(&t_names_lock);
    for (i = 0; i < T_MAX_NAMES; i++)
        if (t_names[i].p == p) {
            out = t_names[i].name;
            break;
        }
    pthread_mutex_unlock(&t_names_lock);
    return out;
}

/* a fresh unique pointer named `name` (wait-fd keys, custom data, callback args) */
static void *t_sym(const char *name)
{
    void *p = malloc(1);

    if (p == NULL)
        abort();
    tn_set(p, name);
    return p;
}

/* ---- jobs --------------------------------------------------------------- */

static const char *t_status(int s)
{
    switch (s) {
    case ASYNC_ERR: return "ERR";
    case ASYNC_NO_JOBS: return "NO_JOBS";
    case ASYNC_PAUSE: return "PAUSE";
    case ASYNC_FINISH: return "FINISH";
    }
    return "?";
}

static void t_result(const char *what, ASYNC_JOB **job, const char *label, int status, int ret)
{
    if (status == ASYNC_PAUSE) {
        tn_set(*job, label);
        T("%s %s -> PAUSE", what, label);
    } else if (status == ASYNC_FINISH) {
        T("%s %s -> FINISH %d", what, label, ret);
    } else {
        T("%s %s -> %s", what, label, t_status(status));
    }
}

/* ASYNC_start_job with *job == NULL: "start <label> -> STATUS [ret]" */
static int t_start(ASYNC_JOB **job, const char *label, ASYNC_WAIT_CTX *ctx,
                   int (*fn)(void *), void *args, size_t size)
{
    int ret = 0, status;

    *job = NULL;
    status = ASYNC_start_job(job, ctx, &ret, fn, args, size);
    t_result("start", job, label, status, ret);
    return status;
}

/* ASYNC_start_job with a paused *job: "resume <name> -> STATUS [ret]" */
static int t_resume(ASYNC_JOB **job)
{
    char label[32];
    int ret = 0, status;
    ASYNC_JOB *was = *job;

    snprintf(label, sizeof(label), "%s", tn(*job));
    status = ASYNC_start_job(job, NULL, &ret, NULL, NULL, 0);
    if (status != ASYNC_PAUSE)
        tn_forget(was);  /* the pool may hand the same pointer to a new job */
    t_result("resume", job, label, status, ret);
    return status;
}

static int t_pause(const char *who)
{
    char pfxbuf[48];
    int r = ASYNC_pause_job();

    T("%spause_job -> %d", PFX(who), r);
    return r;
}

static void t_block(const char *who)
{
    char pfxbuf[48];

    ASYNC_block_pause();
    T("%sblock_pause", PFX(who));
}

static void t_unblock(const char *who)
{
    char pfxbuf[48];

    ASYNC_unblock_pause();
    T("%sunblock_pause", PFX(who));
}

static ASYNC_JOB *t_current(const char *who)
{
    char pfxbuf[48];
    ASYNC_JOB *j = ASYNC_get_current_job();

    T("%sget_current_job -> %s", PFX(who), tn(j));
    return j;
}

static ASYNC_WAIT_CTX *t_get_wait_ctx(const char *who, ASYNC_JOB *job)
{
    char pfxbuf[48];
    ASYNC_WAIT_CTX *c = ASYNC_get_wait_ctx(job);

    T("%sget_wait_ctx(%s) -> %s", PFX(who), tn(job), tn(c));
    return c;
}

/* ---- pools -------------------------------------------------------------- */

static int t_init(const char *who, size_t max_size, size_t init_size)
{
    char pfxbuf[48];
    int r = ASYNC_init_thread(max_size, init_size);

    T("%sinit_thread(%zu, %zu) -> %d", PFX(who), max_size, init_size, r);
    return r;
}

static void t_cleanup_thread(const char *who)
{
    char pfxbuf[48];

    ASYNC_cleanup_thread();
    T("%scleanup_thread", PFX(who));
}

/* ---- wait contexts ------------------------------------------------------ */

static ASYNC_WAIT_CTX *t_ctx_new(const char *name)
{
    ASYNC_WAIT_CTX *c = ASYNC_WAIT_CTX_new();

    if (c == NULL)
        abort();
    tn_set(c, name);
    T("%s = WAIT_CTX_new", name);
    return c;
}

static void t_ctx_free(ASYNC_WAIT_CTX *c)
{
    T("WAIT_CTX_free(%s)", tn(c));
    ASYNC_WAIT_CTX_free(c);
    tn_forget(c);
}

/* the cleanup function every traced fd registers */
static void t_cleanup_fn(ASYNC_WAIT_CTX *c, const void *key, OSSL_ASYNC_FD fd, void *data)
{
    T("cleanup(%s, %s, %d, %s)", tn(c), tn(key), fd, tn(data));
}

static int t_set_fd(const char *who, ASYNC_WAIT_CTX *c, const void *key, int fd,
                    void *data, int with_cleanup)
{
    char pfxbuf[48];
    int r = ASYNC_WAIT_CTX_set_wait_fd(c, key, fd, data,
                                       with_cleanup ? t_cleanup_fn : NULL);

    T("%sset_wait_fd(%s, %s, %d, %s, %s) -> %d", PFX(who), tn(c), tn(key), fd,
      tn(data), with_cleanup ? "cleanup" : "NULL", r);
    return r;
}

static int t_get_fd(const char *who, ASYNC_WAIT_CTX *c, const void *key)
{
    char pfxbuf[48];
    OSSL_ASYNC_FD fd = -12345;
    void *data = NULL;
    int r = ASYNC_WAIT_CTX_get_fd(c, key, &fd, &data);

    if (r)
        T("%sget_fd(%s, %s) -> %d fd=%d data=%s", PFX(who), tn(c), tn(key), r, fd, tn(data));
    else
        T("%sget_fd(%s, %s) -> %d", PFX(who), tn(c), tn(key), r);
    return r;
}

static void t_fmt_fds(char *out, size_t n, const OSSL_ASYNC_FD *fds, size_t count)
{
    size_t i, used = 0;

    used += snprintf(out + used, n - used, "[");
    for (i = 0; i < count && used < n; i++)
        used += snprintf(out + used, n - used, i ? ", %d" : "%d", fds[i]);
    if (used < n)
        snprintf(out + used, n - used, "]");
}

static size_t t_all_fds(const char *who, ASYNC_WAIT_CTX *c)
{
    char pfxbuf[48], list[512];
    size_t num = 0;
    OSSL_ASYNC_FD fds[64];
    int r = ASYNC_WAIT_CTX_get_all_fds(c, NULL, &num);

    if (num > 64)
        abort();
    if (num > 0)
        r = r && ASYNC_WAIT_CTX_get_all_fds(c, fds, &num);
    t_fmt_fds(list, sizeof(list), fds, num);
    if (r != 1)
        T("%sget_all_fds(%s) failed", PFX(who), tn(c));
    T("%sget_all_fds(%s) -> %s", PFX(who), tn(c), list);
    return num;
}

static void t_changed_fds(const char *who, ASYNC_WAIT_CTX *c)
{
    char pfxbuf[48], alist[512], dlist[512];
    size_t nadd = 0, ndel = 0;
    OSSL_ASYNC_FD add[64], del[64];
    int r = ASYNC_WAIT_CTX_get_changed_fds(c, NULL, &nadd, NULL, &ndel);

    if (nadd > 64 || ndel > 64)
        abort();
    if (nadd > 0 || ndel > 0)
        r = r && ASYNC_WAIT_CTX_get_changed_fds(c, add, &nadd, del, &ndel);
    t_fmt_fds(alist, sizeof(alist), add, nadd);
    t_fmt_fds(dlist, sizeof(dlist), del, ndel);
    if (r != 1)
        T("%sget_changed_fds(%s) failed", PFX(who), tn(c));
    T("%sget_changed_fds(%s) -> add %s del %s", PFX(who), tn(c), alist, dlist);
}

static int t_clear_fd(const char *who, ASYNC_WAIT_CTX *c, const void *key)
{
    char pfxbuf[48];
    int r = ASYNC_WAIT_CTX_clear_fd(c, key);

    T("%sclear_fd(%s, %s) -> %d", PFX(who), tn(c), tn(key), r);
    return r;
}

/* ---- callbacks and status ----------------------------------------------- */

static int t_set_callback(const char *who, ASYNC_WAIT_CTX *c, ASYNC_callback_fn cb, void *arg)
{
    char pfxbuf[48];
    int r = ASYNC_WAIT_CTX_set_callback(c, cb, arg);

    T("%sset_callback(%s, %s, %s) -> %d", PFX(who), tn(c), tn((const void *)cb), tn(arg), r);
    return r;
}

static int t_get_callback(const char *who, ASYNC_WAIT_CTX *c, ASYNC_callback_fn *cb, void **arg)
{
    char pfxbuf[48];
    int r = ASYNC_WAIT_CTX_get_callback(c, cb, arg);

    if (r)
        T("%sget_callback(%s) -> %d %s %s", PFX(who), tn(c), r, tn((const void *)*cb), tn(*arg));
    else
        T("%sget_callback(%s) -> %d", PFX(who), tn(c), r);
    return r;
}

/* call a callback the way an engine would, and trace its result */
static int t_call_callback(const char *who, ASYNC_callback_fn cb, void *arg)
{
    char pfxbuf[48];
    int r = cb(arg);

    T("%scall %s(%s) -> %d", PFX(who), tn((const void *)cb), tn(arg), r);
    return r;
}

static int t_set_status(const char *who, ASYNC_WAIT_CTX *c, int status)
{
    char pfxbuf[48];
    int r = ASYNC_WAIT_CTX_set_status(c, status);

    T("%sset_status(%s, %d) -> %d", PFX(who), tn(c), status, r);
    return r;
}

static int t_get_status(const char *who, ASYNC_WAIT_CTX *c)
{
    char pfxbuf[48];
    int r = ASYNC_WAIT_CTX_get_status(c);

    T("%sget_status(%s) -> %d", PFX(who), tn(c), r);
    return r;
}

#endif
