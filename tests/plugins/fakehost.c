/* The fake host for plugin tests: see fakehost.h. */
#include "fakehost.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libconfig.h>
#include <msgpack.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "event.h"
#include "hostapi.h"
#include "instance.h"
#include "json.h"
#include "loader.h"
#include "log.h"
#include "schema.h"

#define MAX_HOSTS 16
#define CONFIG_FILE "fakehost.conf"

struct fakehost {
    evbus_host_t host; /* the table the plugin receives */
    evb_plugin_t plugin;
    config_t cfg;
    evb_instance_conf_t conf;
    evb_instance_t *inst;
    void *userdata;
    int initialized, shut_down;
    int config_errors_before;

    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t changed;
    evb_attempt_t **pending;
    size_t n_pending, cap_pending;
    fakehost_outcome_t *outcomes;
    size_t n_outcomes, cap_outcomes;
    fakehost_hook_fn hook;
    void *hook_arg;
    evb_buf_t log;
    char *log_copy;
    size_t violations;
    int disabled;
    char disabled_reason[1024];
    char last_reason[1024];

    evb_event_t **events; /* released at destroy */
    size_t n_events, cap_events;

    int core_fd; /* the core's log lines land here */
    off_t core_off;
    int saved_level;
};

/* ------------------------------------------------------------- registry */

/* Host table entries get an instance or an attempt, never the fake host:
 * find it by instance. */
static pthread_mutex_t s_reg_lock = PTHREAD_MUTEX_INITIALIZER;
static fakehost_t *s_hosts[MAX_HOSTS];
static fakehost_t *s_declaring; /* declare() logs with inst == NULL */

static void s_register(fakehost_t *fh)
{
    pthread_mutex_lock(&s_reg_lock);
    for (int i = 0; i < MAX_HOSTS; i++) {
        if (!s_hosts[i]) {
            s_hosts[i] = fh;
            break;
        }
    }
    pthread_mutex_unlock(&s_reg_lock);
}

static void s_unregister(fakehost_t *fh)
{
    pthread_mutex_lock(&s_reg_lock);
    for (int i = 0; i < MAX_HOSTS; i++)
        if (s_hosts[i] == fh)
            s_hosts[i] = NULL;
    if (s_declaring == fh)
        s_declaring = NULL;
    pthread_mutex_unlock(&s_reg_lock);
}

static fakehost_t *s_find(const evbus_instance_t *inst)
{
    fakehost_t *fh = NULL;
    pthread_mutex_lock(&s_reg_lock);
    for (int i = 0; i < MAX_HOSTS && !fh; i++)
        if (s_hosts[i] &&
            (inst ? s_hosts[i]->inst == inst : s_hosts[i] == s_declaring))
            fh = s_hosts[i];
    if (!fh && !inst)
        for (int i = MAX_HOSTS - 1; i >= 0 && !fh; i--)
            fh = s_hosts[i];
    pthread_mutex_unlock(&s_reg_lock);
    return fh;
}

/* ------------------------------------------------------------------ log */

/* Move what the core logged since last time into the buffer. Locked. */
static void s_drain_core(fakehost_t *fh)
{
    if (fh->core_fd < 0)
        return;
    char chunk[4096];
    for (;;) {
        ssize_t n = pread(fh->core_fd, chunk, sizeof chunk, fh->core_off);
        if (n <= 0)
            break;
        evb_buf_append(&fh->log, chunk, (size_t)n);
        if (getenv("FAKEHOST_LOG"))
            fwrite(chunk, 1, (size_t)n, stderr);
        fh->core_off += n;
    }
}

static void s_capture(fakehost_t *fh, int level, const char *who,
                      const char *fmt, va_list ap)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char msg[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    for (char *c = msg; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    const char *lv = level >= 0 && level <= 3 ? names[level] : "?";
    pthread_mutex_lock(&fh->lock);
    s_drain_core(fh);
    size_t at = fh->log.len;
    if (who)
        evb_buf_printf(&fh->log, "%-5s [%s] %s\n", lv, who, msg);
    else
        evb_buf_printf(&fh->log, "%-5s %s\n", lv, msg);
    if (getenv("FAKEHOST_LOG") && fh->log.data)
        fputs(fh->log.data + at, stderr);
    pthread_mutex_unlock(&fh->lock);
}

static void s_note(fakehost_t *fh, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_note(fakehost_t *fh, int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_capture(fh, level, "fakehost", fmt, ap);
    va_end(ap);
}

static void s_violation(fakehost_t *fh, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_violation(fakehost_t *fh, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&fh->lock);
    fh->violations++;
    pthread_mutex_unlock(&fh->lock);
    s_note(fh, EVBUS_LOG_ERROR, "VIOLATION: %s", msg);
    fprintf(stderr, "fakehost: VIOLATION: %s\n", msg);
}

/* ---------------------------------------------------- overridden entries */

static void s_host_vlog(const evbus_instance_t *inst, int level,
                        const char *fmt, va_list ap)
{
    fakehost_t *fh = s_find(inst);
    if (!fh) {
        evb_logv(level, inst ? inst->name : NULL, fmt, ap);
        return;
    }
    s_capture(fh, level, inst ? inst->name : fh->plugin.desc.name, fmt, ap);
}

static void s_host_log(const evbus_instance_t *inst, int level, const char *fmt,
                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_host_vlog(inst, level, fmt, ap);
    va_end(ap);
}

static void s_set_disabled(fakehost_t *fh, const char *reason)
{
    pthread_mutex_lock(&fh->lock);
    if (!fh->disabled) {
        fh->disabled = 1;
        snprintf(fh->disabled_reason, sizeof fh->disabled_reason, "%s",
                 reason ? reason : "no reason given");
    }
    pthread_mutex_unlock(&fh->lock);
}

static void s_host_instance_disable(evbus_instance_t *inst, const char *reason)
{
    fakehost_t *fh = s_find(inst);
    if (fh)
        s_set_disabled(fh, reason);
    evb_instance_disable(inst, reason);
}

/* Record an outcome while `att` is still valid; the hook runs first,
 * unlocked, so it may call fakehost_* functions. */
static void s_record(fakehost_t *fh, const evb_attempt_t *att, int result,
                     int async)
{
    fakehost_outcome_t o;
    memset(&o, 0, sizeof o);
    o.result = result;
    o.async = async;
    o.number = att->number;
    o.retry_after_ms = att->retry_after;
    snprintf(o.reason, sizeof o.reason, "%s", att->reason);
    snprintf(o.event_id, sizeof o.event_id, "%s",
             att->ev->id ? att->ev->id : "");
    snprintf(o.type, sizeof o.type, "%s", att->ev->type ? att->ev->type : "");

    pthread_mutex_lock(&fh->lock);
    fakehost_hook_fn hook = fh->hook;
    void *hook_arg = fh->hook_arg;
    pthread_mutex_unlock(&fh->lock);
    if (hook)
        hook(hook_arg, &o);

    pthread_mutex_lock(&fh->lock);
    if (fh->n_outcomes == fh->cap_outcomes) {
        size_t cap = fh->cap_outcomes ? fh->cap_outcomes * 2 : 64;
        fakehost_outcome_t *grown =
            realloc(fh->outcomes, cap * sizeof *fh->outcomes);
        if (!grown) {
            fprintf(stderr, "fakehost: out of memory\n");
            abort();
        }
        fh->outcomes = grown;
        fh->cap_outcomes = cap;
    }
    fh->outcomes[fh->n_outcomes++] = o;
    pthread_cond_broadcast(&fh->changed);
    pthread_mutex_unlock(&fh->lock);
}

/* Take `att` off the pending list. 1 when it was there. Locked. */
static int s_unpend(fakehost_t *fh, const evb_attempt_t *att)
{
    for (size_t i = fh->n_pending; i-- > 0;) {
        if (fh->pending[i] == att) {
            fh->pending[i] = fh->pending[--fh->n_pending];
            return 1;
        }
    }
    return 0;
}

static int s_valid_outcome(int r)
{
    return r == EVBUS_OK || r == EVBUS_RETRY || r == EVBUS_DROP ||
           r == EVBUS_BROKEN;
}

static void s_free_attempt(evb_attempt_t *att)
{
    evb_event_release(att->ev);
    free(att);
}

/* The fake host holding `att` as pending, which takes it off its list;
 * NULL when none does. Goes by the pointer alone: an attempt completed
 * twice has been freed, so it must not be dereferenced first. */
static fakehost_t *s_take_pending(const evbus_attempt_t *att)
{
    fakehost_t *owner = NULL;
    pthread_mutex_lock(&s_reg_lock);
    for (int i = 0; i < MAX_HOSTS && !owner; i++) {
        fakehost_t *fh = s_hosts[i];
        if (!fh)
            continue;
        pthread_mutex_lock(&fh->lock);
        if (s_unpend(fh, att))
            owner = fh;
        pthread_mutex_unlock(&fh->lock);
    }
    pthread_mutex_unlock(&s_reg_lock);
    return owner;
}

static void s_host_attempt_complete(evbus_attempt_t *att, int result)
{
    fakehost_t *fh = s_take_pending(att);
    if (!fh) {
        /* not dereferenced nor freed: it may be a stale pointer, or one
         * whose outcome deliver() returned */
        fh = s_find(NULL);
        if (!fh) {
            fprintf(stderr,
                    "fakehost: VIOLATION: attempt_complete(%p) "
                    "with no fake host alive\n",
                    (void *)att);
            abort();
        }
        s_violation(fh,
                    "attempt_complete(%p, %d) on an attempt that is not "
                    "pending (completed twice, or deliver() already "
                    "returned its outcome)",
                    (void *)att, result);
        return;
    }
    if (!s_valid_outcome(result)) {
        s_violation(fh,
                    "attempt_complete() with outcome %d (not OK, RETRY, "
                    "DROP or BROKEN); recorded as RETRY",
                    result);
        result = EVBUS_RETRY;
    }
    if (result == EVBUS_BROKEN)
        s_set_disabled(fh, att->reason[0] ? att->reason : "no reason given");
    s_record(fh, att, result, 1);
    s_free_attempt(att);
}

/* -------------------------------------------------------------- set up */

fakehost_t *fakehost_new(const evbus_plugin_t *desc, const char *options)
{
    fakehost_t *fh = calloc(1, sizeof *fh);
    if (!fh)
        return NULL;
    pthread_mutex_init(&fh->lock, NULL);
    pthread_cond_init(&fh->changed, NULL);
    config_init(&fh->cfg);
    fh->core_fd = -1;
    fh->config_errors_before = evb_config_error_count();

    /* the core's log, into a file we read back */
    char tmpl[] = "/tmp/fakehost-log-XXXXXX";
    fh->core_fd = mkstemp(tmpl);
    if (fh->core_fd >= 0) {
        unlink(tmpl);
        evb_log_set_fd(fh->core_fd);
    }
    fh->saved_level = evb_log_level();
    evb_log_set_level(EVBUS_LOG_DEBUG);

    fh->host = *evb_host_table();
    fh->host.log = s_host_log;
    fh->host.vlog = s_host_vlog;
    fh->host.instance_disable = s_host_instance_disable;
    fh->host.attempt_complete = s_host_attempt_complete;
    s_register(fh);

    /* the plugin, as the loader would hold it */
    size_t n = desc->struct_size < sizeof fh->plugin.desc
                   ? desc->struct_size
                   : sizeof fh->plugin.desc;
    memcpy(&fh->plugin.desc, desc, n);
    fh->plugin.ref = strdup(desc->name ? desc->name : "plugin");
    fh->plugin.path = strdup("(fakehost: linked in)");
    fh->plugin.schema = evb_schema_new(desc->name ? desc->name : "plugin");
    if (!fh->plugin.ref || !fh->plugin.path || !fh->plugin.schema)
        goto fail;
    pthread_mutex_lock(&s_reg_lock);
    s_declaring = fh;
    pthread_mutex_unlock(&s_reg_lock);
    int rc = desc->declare(fh->plugin.schema, &fh->host);
    pthread_mutex_lock(&s_reg_lock);
    s_declaring = NULL;
    pthread_mutex_unlock(&s_reg_lock);
    if (rc != 0) {
        fprintf(stderr, "fakehost: %s: declare() failed:\n%s\n", desc->name,
                fakehost_log_text(fh));
        goto fail;
    }

    /* the instance's configuration, as config.c would leave it */
    const evb_retry_policy_t retry = EVB_RETRY_DEFAULT;
    fh->conf.name = "test";
    fh->conf.plugin = (char *)fh->plugin.desc.name;
    fh->conf.file = CONFIG_FILE;
    fh->conf.line = 1;
    fh->conf.setting = "instances[0]";
    fh->conf.queue_size = 10000;
    fh->conf.workers = 1;
    fh->conf.max_in_flight = 0;
    fh->conf.retry = retry;
    if (options) {
        /* "options = {" shares line 1 with the text, so line N of the
         * text is line N of fakehost.conf */
        evb_buf_t text = EVB_BUF_INIT;
        if (evb_buf_printf(&text, "options = { %s\n};\n", options) < 0)
            goto fail;
        int ok = config_read_string(&fh->cfg, text.data);
        evb_buf_free(&text);
        if (!ok) {
            evb_config_report(CONFIG_FILE, config_error_line(&fh->cfg), NULL,
                              "%s", config_error_text(&fh->cfg));
            return fh; /* no instance: the test looks at the log */
        }
        fh->conf.options = config_lookup(&fh->cfg, "options");
    }
    fh->inst = evb_instance_new(&fh->conf, &fh->plugin, CONFIG_FILE,
                                "/tmp/fakehost-dead-letters-unused");
    return fh;

fail:
    fakehost_destroy(&fh);
    return NULL;
}

void fakehost_destroy(fakehost_t **self)
{
    if (!self || !*self)
        return;
    fakehost_t *fh = *self;
    if (fh->initialized && !fh->shut_down)
        fakehost_shutdown(fh);
    for (size_t i = 0; i < fh->n_pending; i++)
        s_free_attempt(fh->pending[i]);
    for (size_t i = 0; i < fh->n_events; i++)
        evb_event_release(fh->events[i]);
    evb_instance_destroy(&fh->inst);
    s_unregister(fh);
    config_destroy(&fh->cfg);
    evb_schema_destroy(&fh->plugin.schema);
    free(fh->plugin.ref);
    free(fh->plugin.path);
    evb_log_set_fd(2);
    evb_log_set_level(fh->saved_level);
    if (fh->core_fd >= 0)
        close(fh->core_fd);
    free(fh->pending);
    free(fh->outcomes);
    free(fh->events);
    evb_buf_free(&fh->log);
    free(fh->log_copy);
    pthread_cond_destroy(&fh->changed);
    pthread_mutex_destroy(&fh->lock);
    free(fh);
    *self = NULL;
}

const evbus_host_t *fakehost_host(fakehost_t *fh)
{
    return &fh->host;
}

evbus_instance_t *fakehost_instance(fakehost_t *fh)
{
    return fh->inst;
}

void *fakehost_userdata(fakehost_t *fh)
{
    return fh->userdata;
}

int fakehost_config_errors(fakehost_t *fh)
{
    return evb_config_error_count() - fh->config_errors_before;
}

/* ---------------------------------------------------- plugin functions */

int fakehost_validate(fakehost_t *fh)
{
    if (!fh->inst)
        return -1;
    if (!fh->plugin.desc.validate)
        return 0;
    return fh->plugin.desc.validate(fh->inst, &fh->host) == 0 ? 0 : -1;
}

int fakehost_init(fakehost_t *fh)
{
    if (!fh->inst || fh->initialized)
        return -1;
    if (fh->plugin.desc.init(fh->inst, &fh->host, &fh->userdata) != 0)
        return -1;
    fh->inst->userdata = fh->userdata;
    fh->initialized = 1;
    return 0;
}

int fakehost_start(fakehost_t *fh)
{
    if (fakehost_validate(fh) < 0)
        return -1;
    return fakehost_init(fh);
}

int fakehost_deliver(fakehost_t *fh, const evbus_event_t *ev)
{
    return fakehost_deliver_attempt(fh, ev, 1);
}

int fakehost_deliver_attempt(fakehost_t *fh, const evbus_event_t *ev,
                             int number)
{
    if (!fh->initialized || fh->shut_down) {
        s_violation(fh, "test error: deliver() before init() or after "
                        "shutdown()");
        return -1;
    }
    evb_attempt_t *att = calloc(1, sizeof *att);
    if (!att)
        abort();
    att->inst = fh->inst;
    att->ev = evb_event_retain((evb_event_t *)ev);
    att->number = number;
    att->started_us = evb_mono_us();

    /* pending before the call: the plugin may complete it from another
     * thread before deliver() even returns */
    pthread_mutex_lock(&fh->lock);
    if (fh->n_pending == fh->cap_pending) {
        size_t cap = fh->cap_pending ? fh->cap_pending * 2 : 64;
        evb_attempt_t **p = realloc(fh->pending, cap * sizeof *p);
        if (!p)
            abort();
        fh->pending = p;
        fh->cap_pending = cap;
    }
    fh->pending[fh->n_pending++] = att;
    pthread_mutex_unlock(&fh->lock);

    int rc = fh->plugin.desc.deliver(fh->userdata, ev, att);
    if (rc == EVBUS_PENDING)
        return rc;

    pthread_mutex_lock(&fh->lock);
    int held = s_unpend(fh, att);
    pthread_mutex_unlock(&fh->lock);
    if (!held) {
        s_violation(fh,
                    "deliver() returned %d for an attempt it had already "
                    "completed with attempt_complete()",
                    rc);
        return rc;
    }
    int result = rc;
    if (!s_valid_outcome(result)) {
        s_violation(fh,
                    "deliver() returned %d (not OK, RETRY, DROP, BROKEN "
                    "or PENDING); recorded as RETRY",
                    rc);
        result = EVBUS_RETRY;
    }
    if (result == EVBUS_BROKEN)
        s_set_disabled(fh, att->reason[0] ? att->reason : "no reason given");
    s_record(fh, att, result, 0);
    s_free_attempt(att);
    return rc;
}

void fakehost_tick(fakehost_t *fh)
{
    if (fh->initialized && !fh->shut_down && fh->plugin.desc.tick)
        fh->plugin.desc.tick(fh->userdata);
}

void fakehost_reopen(fakehost_t *fh)
{
    if (fh->initialized && !fh->shut_down && fh->plugin.desc.reopen)
        fh->plugin.desc.reopen(fh->userdata);
}

void fakehost_shutdown(fakehost_t *fh)
{
    if (!fh->initialized || fh->shut_down)
        return;
    fh->shut_down = 1;
    if (fh->plugin.desc.shutdown)
        fh->plugin.desc.shutdown(fh->userdata);
    fh->userdata = NULL;
    if (fh->inst)
        fh->inst->userdata = NULL;
    size_t left = fakehost_pending(fh);
    if (left)
        s_violation(fh,
                    "the plugin still held %zu attempt%s after shutdown() "
                    "returned",
                    left, left == 1 ? "" : "s");
}

/* --------------------------------------------------------------- events */

static int s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

const evbus_event_t *fakehost_event(fakehost_t *fh, const char *type,
                                    const char *data_json, ...)
{
    va_list ap;
    size_t pairs = 0;
    va_start(ap, data_json);
    while (va_arg(ap, const char *)) {
        if (!va_arg(ap, const char *)) {
            va_end(ap);
            s_note(fh, EVBUS_LOG_ERROR,
                   "test error: fakehost_event(): attribute without a "
                   "value");
            return NULL;
        }
        pairs++;
    }
    va_end(ap);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + pairs + (data_json ? 1 : 0));
    s_pack_str(&pk, "type");
    s_pack_str(&pk, type);
    va_start(ap, data_json);
    for (size_t i = 0; i < pairs; i++) {
        s_pack_str(&pk, va_arg(ap, const char *));
        s_pack_str(&pk, va_arg(ap, const char *));
    }
    va_end(ap);
    char err[256];
    if (data_json) {
        s_pack_str(&pk, "data");
        if (evb_json_to_msgpack(data_json, strlen(data_json), &pk, 32, err,
                                sizeof err) < 0) {
            s_note(fh, EVBUS_LOG_ERROR,
                   "test error: fakehost_event(): data is not JSON: %s", err);
            msgpack_sbuffer_destroy(&sb);
            return NULL;
        }
    }
    const evb_limits_t limits = EVB_LIMITS_DEFAULT;
    evb_reject_t why = EVB_REJECT_NONE;
    evb_event_t *ev =
        evb_event_decode(type, strlen(type), sb.data, sb.size, &limits,
                         evb_now_ms(), &why, err, sizeof err);
    msgpack_sbuffer_destroy(&sb);
    if (!ev) {
        s_note(fh, EVBUS_LOG_ERROR,
               "test error: fakehost_event(): refused (%s): %s",
               evb_reject_code(why), err);
        return NULL;
    }
    if (fh->n_events == fh->cap_events) {
        size_t cap = fh->cap_events ? fh->cap_events * 2 : 64;
        evb_event_t **e = realloc(fh->events, cap * sizeof *e);
        if (!e)
            abort();
        fh->events = e;
        fh->cap_events = cap;
    }
    fh->events[fh->n_events++] = ev;
    return ev;
}

/* ------------------------------------------------------------- outcomes */

size_t fakehost_pending(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    size_t n = fh->n_pending;
    pthread_mutex_unlock(&fh->lock);
    return n;
}

size_t fakehost_outcome_count(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    size_t n = fh->n_outcomes;
    pthread_mutex_unlock(&fh->lock);
    return n;
}

int fakehost_outcome(fakehost_t *fh, size_t i, fakehost_outcome_t *out)
{
    pthread_mutex_lock(&fh->lock);
    int rc = -1;
    if (i < fh->n_outcomes) {
        *out = fh->outcomes[i];
        rc = 0;
    }
    pthread_mutex_unlock(&fh->lock);
    return rc;
}

size_t fakehost_count(fakehost_t *fh, int result)
{
    size_t n = 0;
    pthread_mutex_lock(&fh->lock);
    for (size_t i = 0; i < fh->n_outcomes; i++)
        n += fh->outcomes[i].result == result;
    pthread_mutex_unlock(&fh->lock);
    return n;
}

const char *fakehost_last_reason(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    snprintf(fh->last_reason, sizeof fh->last_reason, "%s",
             fh->n_outcomes ? fh->outcomes[fh->n_outcomes - 1].reason : "");
    pthread_mutex_unlock(&fh->lock);
    return fh->last_reason;
}

void fakehost_clear_outcomes(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    fh->n_outcomes = 0;
    pthread_mutex_unlock(&fh->lock);
}

int fakehost_wait_outcomes(fakehost_t *fh, size_t n, int timeout_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = 0;
    pthread_mutex_lock(&fh->lock);
    while (fh->n_outcomes < n && rc == 0)
        if (pthread_cond_timedwait(&fh->changed, &fh->lock, &until) ==
            ETIMEDOUT)
            rc = fh->n_outcomes < n ? -1 : 0;
    pthread_mutex_unlock(&fh->lock);
    return rc;
}

void fakehost_set_complete_hook(fakehost_t *fh, fakehost_hook_fn hook,
                                void *arg)
{
    pthread_mutex_lock(&fh->lock);
    fh->hook = hook;
    fh->hook_arg = arg;
    pthread_mutex_unlock(&fh->lock);
}

/* ------------------------------------------------------- log and state */

const char *fakehost_log_text(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    s_drain_core(fh);
    free(fh->log_copy);
    fh->log_copy = strdup(fh->log.data ? fh->log.data : "");
    pthread_mutex_unlock(&fh->lock);
    return fh->log_copy ? fh->log_copy : "";
}

size_t fakehost_log_count(fakehost_t *fh, const char *needle)
{
    const char *text = fakehost_log_text(fh);
    size_t n = 0;
    while (*text) {
        const char *eol = strchr(text, '\n');
        size_t len = eol ? (size_t)(eol - text) : strlen(text);
        const char *hit = strstr(text, needle);
        if (hit && hit + strlen(needle) <= text + len)
            n++;
        text += len + (eol ? 1 : 0);
    }
    return n;
}

int fakehost_log_contains(fakehost_t *fh, const char *needle)
{
    return fakehost_log_count(fh, needle) > 0;
}

void fakehost_log_clear(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    s_drain_core(fh);
    evb_buf_reset(&fh->log);
    if (fh->log.data)
        fh->log.data[0] = '\0';
    pthread_mutex_unlock(&fh->lock);
}

int fakehost_disabled(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    int d = fh->disabled;
    pthread_mutex_unlock(&fh->lock);
    return d;
}

const char *fakehost_disabled_reason(fakehost_t *fh)
{
    return fakehost_disabled(fh) ? fh->disabled_reason : NULL;
}

size_t fakehost_violations(fakehost_t *fh)
{
    pthread_mutex_lock(&fh->lock);
    size_t n = fh->violations;
    pthread_mutex_unlock(&fh->lock);
    return n;
}
