#include "deadletter.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "json.h"
#include "log.h"

struct evb_deadletter {
    pthread_mutex_t lock;
    char *dir;
    char *path;
    char *instance;
    char *plugin;
    int fd;
};

evb_deadletter_t *evb_deadletter_new(const char *dir, const char *instance,
                                     const char *plugin)
{
    evb_deadletter_t *dl = calloc(1, sizeof *dl);
    if (!dl)
        return NULL;
    evb_buf_t path = EVB_BUF_INIT;
    if (evb_buf_printf(&path, "%s/%s.jsonl", dir, instance) < 0)
        goto fail;
    dl->path = evb_buf_steal(&path, NULL);
    dl->dir = strdup(dir);
    dl->instance = strdup(instance);
    dl->plugin = strdup(plugin);
    if (!dl->path || !dl->dir || !dl->instance || !dl->plugin)
        goto fail;
    dl->fd = -1;
    pthread_mutex_init(&dl->lock, NULL);
    return dl;
fail:
    evb_buf_free(&path);
    free(dl->path);
    free(dl->dir);
    free(dl->instance);
    free(dl->plugin);
    free(dl);
    return NULL;
}

void evb_deadletter_destroy(evb_deadletter_t **self)
{
    if (!self || !*self)
        return;
    evb_deadletter_t *dl = *self;
    if (dl->fd >= 0)
        close(dl->fd);
    pthread_mutex_destroy(&dl->lock);
    free(dl->path);
    free(dl->dir);
    free(dl->instance);
    free(dl->plugin);
    free(dl);
    *self = NULL;
}

const char *evb_deadletter_path(const evb_deadletter_t *dl)
{
    return dl->path;
}

/* mkdir -p */
static int s_mkdirs(const char *dir)
{
    char *p = strdup(dir);
    if (!p)
        return -1;
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0750) < 0 && errno != EEXIST) {
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0750) < 0 && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

int evb_deadletter_write(evb_deadletter_t *dl, const evb_event_t *ev,
                         const char *reason, int attempts)
{
    char ts[32];
    evb_format_time(ts, evb_now_ms());
    evb_buf_t line = EVB_BUF_INIT;
    const char *json = evb_event_json(ev, NULL);
    int rc = evb_buf_printf(&line, "{\"dead_at\":\"%s\",\"instance\":", ts);
    rc |= evb_json_write_string(&line, dl->instance, strlen(dl->instance));
    rc |= evb_buf_puts(&line, ",\"plugin\":");
    rc |= evb_json_write_string(&line, dl->plugin, strlen(dl->plugin));
    rc |= evb_buf_puts(&line, ",\"reason\":");
    rc |= evb_json_write_string(&line, reason, strlen(reason));
    rc |= evb_buf_printf(&line, ",\"attempts\":%d,\"seq\":%llu,\"event\":",
                         attempts, (unsigned long long)ev->seq);
    rc |= json ? evb_buf_puts(&line, json) : -1;
    /* the envelope as stored, so a replay is byte for byte the event */
    rc |= evb_buf_puts(&line, ",\"envelope\":\"");
    rc |= evb_base64_encode(&line, ev->msgpack, ev->msgpack_len);
    rc |= evb_buf_puts(&line, "\"}\n");
    if (rc) {
        evb_buf_free(&line);
        evb_log(EVBUS_LOG_ERROR, dl->instance,
                "cannot dead-letter event %s (%s): out of memory", ev->id,
                reason);
        return -1;
    }

    pthread_mutex_lock(&dl->lock);
    if (dl->fd < 0) {
        if (s_mkdirs(dl->dir) == 0)
            dl->fd = open(dl->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                          0640);
        if (dl->fd < 0) {
            int err = errno;
            pthread_mutex_unlock(&dl->lock);
            evb_log(EVBUS_LOG_ERROR, dl->instance,
                    "cannot open dead-letter file %s: %s; event %s (%s) is "
                    "lost",
                    dl->path, strerror(err), ev->id, reason);
            evb_buf_free(&line);
            return -1;
        }
    }
    size_t off = 0;
    int err = 0;
    while (off < line.len) {
        ssize_t w = write(dl->fd, line.data + off, line.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    pthread_mutex_unlock(&dl->lock);
    evb_buf_free(&line);
    if (err) {
        evb_log(EVBUS_LOG_ERROR, dl->instance,
                "cannot write dead-letter file %s: %s; event %s (%s) is lost",
                dl->path, strerror(err), ev->id, reason);
        return -1;
    }
    return 0;
}

/* Read the whole file into memory (the lock held). NULL with *len 0 when
 * there is none. */
static char *s_slurp(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    evb_buf_t b = EVB_BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        if (evb_buf_append(&b, chunk, n) < 0)
            break;
    fclose(f);
    return evb_buf_steal(&b, len);
}

int evb_deadletter_each(evb_deadletter_t *dl, evb_deadletter_fn fn,
                        void *ctx)
{
    pthread_mutex_lock(&dl->lock);
    size_t len;
    char *text = s_slurp(dl->path, &len);
    pthread_mutex_unlock(&dl->lock);
    int count = 0;
    for (char *p = text; p && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n) {
            count++;
            if (fn(p, n, ctx) < 0)
                break;
        }
        p += n + 1;
    }
    free(text);
    return count;
}

int evb_deadletter_take(evb_deadletter_t *dl, evb_deadletter_fn fn,
                        void *ctx)
{
    pthread_mutex_lock(&dl->lock);
    size_t len;
    char *text = s_slurp(dl->path, &len);
    evb_buf_t keep = EVB_BUF_INIT;
    int taken = 0, failed = 0;
    for (char *p = text; p && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        if (n) {
            int r = failed ? 0 : fn(p, n, ctx);
            if (r < 0)
                failed = 1; /* keep this line and every later one */
            if (r > 0)
                taken++;
            else if (evb_buf_append(&keep, p, n) < 0 ||
                     evb_buf_putc(&keep, '\n') < 0)
                failed = 1;
        }
        p += n + 1;
    }
    free(text);
    int rc = taken;
    if (taken) {
        /* rewrite with what is kept: a temporary, synced, renamed over */
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", dl->path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        ssize_t w = fd >= 0 && keep.len ? write(fd, keep.data, keep.len) : 0;
        if (fd < 0 || w != (ssize_t)keep.len || fdatasync(fd) < 0 ||
            rename(tmp, dl->path) < 0) {
            evb_log(EVBUS_LOG_ERROR, dl->instance,
                    "cannot rewrite %s after taking %d dead letters: %s "
                    "(they may be listed, and replayed, again)",
                    dl->path, taken, strerror(errno));
            unlink(tmp);
            rc = -1;
        }
        if (fd >= 0)
            close(fd);
        if (dl->fd >= 0) { /* appends go to the new file from now on */
            close(dl->fd);
            dl->fd = -1;
        }
    }
    pthread_mutex_unlock(&dl->lock);
    evb_buf_free(&keep);
    return rc;
}
