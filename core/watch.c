/* Watching plugin code (see watch.h). */
#include "watch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "clock.h"
#include "instance.h"
#include "log.h"

__thread evb_call_t *evb_call_self;
int64_t evb_watch_slow_ms;

int evb_call_stuck(evb_call_t *c, int64_t now_ms, int64_t *secs)
{
    int64_t since = atomic_load_explicit(&c->since_ms, memory_order_acquire);
    if (!since || evb_watch_slow_ms <= 0 || now_ms - since < evb_watch_slow_ms)
        return 0;
    if (secs)
        *secs = (now_ms - since) / 1000;
    return 1;
}

/* ------------------------------------------------------------- crashes */

#define NOTE "crash.note"
#define COUNT "crash.count"
static const int s_fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define N_FATAL (sizeof s_fatal / sizeof s_fatal[0])
static struct sigaction s_old[N_FATAL];
static int s_note_fd = -1;

/* Async-signal-safe appends into a fixed buffer. */
typedef struct {
    char b[1024];
    size_t n;
} s_out_t;

static void s_put(s_out_t *o, const char *s)
{
    for (; s && *s && o->n < sizeof o->b - 1; s++)
        o->b[o->n++] = *s;
}

/* "key value\n", the value on one line: control characters (an old
 * event's id may hold some) become '?' */
static void s_line(s_out_t *o, const char *key, const char *v)
{
    s_put(o, key);
    s_put(o, " ");
    for (; v && *v && o->n < sizeof o->b - 2; v++)
        o->b[o->n++] = (unsigned char)*v < 0x20 ? '?' : *v;
    s_put(o, "\n");
}

static void s_put_u64(s_out_t *o, uint64_t v)
{
    char d[24];
    int k = 0;
    do
        d[k++] = (char)('0' + v % 10);
    while ((v /= 10) && k < 24);
    while (k && o->n < sizeof o->b - 1)
        o->b[o->n++] = d[--k];
}

/* Each plugin's executable code, by address. */
#define MAX_CODE 64
static struct {
    uintptr_t lo, hi;
    char name[72];
} s_code[MAX_CODE];
static int s_n_code;

typedef struct {
    uintptr_t sym, lo, hi;
} s_find_t;

static int s_find_mapping(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    s_find_t *f = ctx;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (f->sym >= lo && f->sym < hi) {
            f->lo = lo;
            f->hi = hi;
            return 1;
        }
    }
    return 0;
}

void evb_watch_plugin_code(const void *sym, const char *name)
{
    s_find_t f = {(uintptr_t)sym, 0, 0};
    if (s_n_code == MAX_CODE || !dl_iterate_phdr(s_find_mapping, &f))
        return;
    s_code[s_n_code].lo = f.lo;
    s_code[s_n_code].hi = f.hi;
    snprintf(s_code[s_n_code].name, sizeof s_code[s_n_code].name, "%s", name);
    s_n_code++;
}

/* The address the signal came from (0 where unknown). */
static uintptr_t s_fault_pc(void *uc)
{
#if defined(__x86_64__)
    return (uintptr_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
    return (uintptr_t)((ucontext_t *)uc)->uc_mcontext.pc;
#else
    (void)uc;
    return 0;
#endif
}

static void s_on_fatal(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    s_out_t o = {.n = 0};
    s_put(&o, "signal ");
    s_put_u64(&o, (uint64_t)sig);
    s_put(&o, "\n");
    evb_call_t *c = evb_call_self;
    if (c && atomic_load(&c->since_ms)) {
        s_line(&o, "instance", c->instance);
        s_line(&o, "plugin", c->plugin);
        s_line(&o, "what", atomic_load(&c->what));
        uint64_t seq = atomic_load(&c->seq);
        if (seq) {
            s_put(&o, "seq ");
            s_put_u64(&o, seq);
            s_put(&o, "\n");
            s_line(&o, "id", atomic_load(&c->id));
        }
    } else {
        uintptr_t pc = s_fault_pc(uc);
        for (int i = 0; i < s_n_code; i++)
            if (pc >= s_code[i].lo && pc < s_code[i].hi) {
                s_line(&o, "plugin", s_code[i].name);
                s_line(&o, "what", "own thread");
                break;
            }
    }
    if (s_note_fd >= 0) {
        ssize_t w = write(s_note_fd, o.b, o.n);
        (void)w;
        fsync(s_note_fd);
    }
    /* hand the signal to whoever had it before (the default action, or a
     * sanitizer's report): restored, then raised again, it is delivered
     * when this handler returns (a faulting instruction faults again) */
    for (size_t i = 0; i < N_FATAL; i++)
        if (s_fatal[i] == sig)
            sigaction(sig, &s_old[i], NULL);
    raise(sig);
}

#define ALT_STACK (64 * 1024)
static __thread void *s_alt;

void evb_watch_thread_begin(void)
{
    if (s_alt || !(s_alt = malloc(ALT_STACK)))
        return;
    stack_t ss = {.ss_sp = s_alt, .ss_size = ALT_STACK, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) < 0) {
        free(s_alt);
        s_alt = NULL;
    }
}

void evb_watch_thread_end(void)
{
    if (!s_alt)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(s_alt);
    s_alt = NULL;
}

int evb_crash_arm(const char *dir)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" NOTE, dir);
    s_note_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (s_note_fd < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = s_on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK; /* a stack overflow too */
    evb_watch_thread_begin();
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < N_FATAL; i++)
        if (sigaction(s_fatal[i], &sa, &s_old[i]) < 0)
            return -1;
    return 0;
}

void evb_crash_disarm(const char *dir)
{
    char path[PATH_MAX];
    if (s_note_fd < 0)
        return; /* never armed: the last run's note is still to be read */
    for (size_t i = 0; i < N_FATAL; i++)
        sigaction(s_fatal[i], &s_old[i], NULL);
    evb_watch_thread_end(); /* the main thread's stack for the handler */
    close(s_note_fd);
    s_note_fd = -1;
    snprintf(path, sizeof path, "%s/" NOTE, dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/" COUNT, dir);
    unlink(path);
}

/* The value of "key value" line `key` in text into out (""). */
static void s_field(const char *text, const char *key, char *out, size_t n)
{
    out[0] = '\0';
    size_t klen = strlen(key);
    for (const char *p = text; p && *p;
         p = strchr(p, '\n'), p = p ? p + 1 : p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == ' ') {
            const char *v = p + klen + 1;
            size_t len = strcspn(v, "\n");
            if (len >= n)
                len = n - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
    }
}

static ssize_t s_read_small(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

int evb_crash_previous(const char *dir, evb_crash_t *out)
{
    char path[PATH_MAX], text[2048], v[32];
    memset(out, 0, sizeof *out);
    snprintf(path, sizeof path, "%s/" NOTE, dir);
    if (s_read_small(path, text, sizeof text) <= 0)
        return 0; /* no note, or an empty one: no crash */
    s_field(text, "signal", v, sizeof v);
    out->sig = atoi(v);
    s_field(text, "instance", out->instance, sizeof out->instance);
    s_field(text, "plugin", out->plugin, sizeof out->plugin);
    s_field(text, "what", out->what, sizeof out->what);
    s_field(text, "seq", v, sizeof v);
    out->seq = strtoull(v, NULL, 10);
    s_field(text, "id", out->id, sizeof out->id);

    /* crashes in a row on the same event */
    char cpath[PATH_MAX], count[256], name[80];
    snprintf(cpath, sizeof cpath, "%s/" COUNT, dir);
    uint64_t seq = 0;
    int n = 0;
    if (s_read_small(cpath, count, sizeof count) > 0 &&
        sscanf(count, "%79s %" SCNu64 " %d", name, &seq, &n) == 3 && out->seq &&
        seq == out->seq && strcmp(name, out->instance) == 0)
        out->count = n + 1;
    else
        out->count = 1;
    if (out->seq) {
        FILE *f = fopen(cpath, "w");
        if (f) {
            fprintf(f, "%s %" PRIu64 " %d\n", out->instance, out->seq,
                    out->count);
            fclose(f);
        }
    } else {
        unlink(cpath);
    }
    return 1;
}

/* ------------------------------------------------------- the watch thread */

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int running, stop;
    int64_t deadline; /* 0 = none */
    evb_instance_t **instances;
    size_t n;
} s_w = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The id of the event c is delivering into buf, if c is still in the call
 * that began at since (the event lives as long as the call). */
static void s_call_id(evb_call_t *c, int64_t since, char *buf, size_t n)
{
    const char *id = atomic_load(&c->id);
    snprintf(buf, n, "%s", id && atomic_load(&c->seq) ? id : "");
    if (atomic_load_explicit(&c->since_ms, memory_order_acquire) != since)
        buf[0] = '\0';
}

/* "deliver() of event ID (seq N)" or "tick()" for the call c is in. */
static void s_describe(evb_call_t *c, int64_t since, char *buf, size_t n)
{
    char id[EVB_ID_MAX + 1];
    s_call_id(c, since, id, sizeof id);
    uint64_t seq = atomic_load(&c->seq);
    const char *what = atomic_load(&c->what);
    if (id[0])
        snprintf(buf, n, "%s() of event %s (seq %" PRIu64 ")", what, id, seq);
    else
        snprintf(buf, n, "%s()", what ? what : "a plugin call");
}

static void s_look(int64_t now)
{
    for (size_t i = 0; i < s_w.n; i++) {
        evb_instance_t *inst = s_w.instances[i];
        for (int k = 0; k < EVB_CALL_SLOTS; k++) {
            evb_call_t *c = &inst->calls[k];
            int64_t secs;
            if (!evb_call_stuck(c, now, &secs))
                continue;
            int64_t since = atomic_load(&c->since_ms);
            if (c->reported == since)
                continue;
            c->reported = since;
            atomic_fetch_add(&inst->n_slow_calls, 1);
            char what[400];
            s_describe(c, since, what, sizeof what);
            evb_log(EVBUS_LOG_WARN, inst->name,
                    "plugin %s: %s has not returned for %lld s; this "
                    "worker is stuck (the instance's other workers, ingest "
                    "and every other instance go on)",
                    c->plugin, what, (long long)secs);
        }
    }
}

static void s_forced_exit(void)
{
    int64_t now = evb_mono_ms();
    int stuck = 0;
    for (size_t i = 0; i < s_w.n; i++) {
        evb_instance_t *inst = s_w.instances[i];
        for (int k = 0; k < EVB_CALL_SLOTS; k++) {
            evb_call_t *c = &inst->calls[k];
            int64_t since = atomic_load(&c->since_ms);
            if (!since)
                continue;
            stuck++;
            char what[400];
            s_describe(c, since, what, sizeof what);
            evb_log(EVBUS_LOG_ERROR, inst->name,
                    "shutdown deadline passed: plugin %s is still in %s after "
                    "%lld s; exiting without it (an event it held stays in "
                    "the journal)",
                    c->plugin, what, (long long)((now - since) / 1000));
        }
        evb_instance_save_cursor_now(inst);
    }
    evb_error("shutdown deadline passed with %d plugin call%s still running: "
              "every cursor saved, exiting (status 1)",
              stuck, stuck == 1 ? "" : "s");
    _exit(1);
}

static void *s_watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&s_w.lock);
    while (!s_w.stop) {
        int64_t now = evb_mono_ms();
        if (s_w.deadline && now >= s_w.deadline + 1000) {
            pthread_mutex_unlock(&s_w.lock);
            s_forced_exit();
        }
        pthread_mutex_unlock(&s_w.lock);
        s_look(now);
        pthread_mutex_lock(&s_w.lock);
        int64_t until = now + 1000;
        if (s_w.deadline && s_w.deadline + 1000 < until)
            until = s_w.deadline + 1000;
        struct timespec ts = {(time_t)(until / 1000),
                              (long)(until % 1000) * 1000000L};
        if (!s_w.stop)
            pthread_cond_timedwait(&s_w.wake, &s_w.lock, &ts);
    }
    pthread_mutex_unlock(&s_w.lock);
    return NULL;
}

int evb_watch_start(evb_instance_t **instances, size_t n)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s_w.wake, &ca);
    pthread_condattr_destroy(&ca);
    s_w.instances = instances;
    s_w.n = n;
    s_w.stop = 0;
    s_w.deadline = 0;
    if (pthread_create(&s_w.thread, NULL, s_watch, NULL) != 0)
        return -1;
    s_w.running = 1;
    return 0;
}

void evb_watch_deadline(int64_t deadline_mono_ms)
{
    pthread_mutex_lock(&s_w.lock);
    s_w.deadline = deadline_mono_ms;
    pthread_cond_signal(&s_w.wake);
    pthread_mutex_unlock(&s_w.lock);
}

void evb_watch_stop(void)
{
    if (!s_w.running)
        return;
    pthread_mutex_lock(&s_w.lock);
    s_w.stop = 1;
    pthread_cond_signal(&s_w.wake);
    pthread_mutex_unlock(&s_w.lock);
    pthread_join(s_w.thread, NULL);
    s_w.running = 0;
    pthread_cond_destroy(&s_w.wake);
}
