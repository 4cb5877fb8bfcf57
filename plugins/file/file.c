/* The file plugin: one CloudEvents JSON line per event, appended to a file,
 * with size-based rotation, reopen on SIGHUP (logrotate) and an fsync
 * policy. docs/plugins/file.md is the operator's manual.
 *
 * Batching, and what "delivered" means: deliver() appends the event's line
 * to a buffer, keeps the attempt and returns PENDING. The batch goes out in
 * one write(2) when it reaches FLUSH_AT bytes or when the host calls tick()
 * (whenever the worker is about to wait, and every TICK_MS). Only then are
 * the held attempts completed: OK once write(2) has taken every byte (and,
 * with fsync = "always", fdatasync(2) succeeded); RETRY when it failed, with
 * the file cut back to where the batch began so that no torn line is left.
 *
 * Threads: without EVBUS_PLUGIN_REENTRANT the host never overlaps deliver,
 * tick and reopen of one instance, and init/shutdown run with the worker
 * stopped, so an instance's state needs no lock. Instances share nothing. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <evbus/plugin.h>

#include "filefmt.h"

#ifndef EVBUS_VERSION
#define EVBUS_VERSION "0.1.0"
#endif

#define FLUSH_AT (64 * 1024)    /* write the batch once it holds this much */
#define MAX_IN_FLIGHT 1024      /* default max_in_flight: attempts held */
#define TICK_MS 100             /* flush at least this often */
#define REOPEN_BACKOFF_MS 1000  /* between attempts to open a lost file */
#define ROTATE_BACKOFF_MS 10000 /* after a rotation failed */
#define MAX_KEEP 1000
#define NAME_MAX_LEN (PATH_MAX + 16) /* path + ".NNNN" */

typedef struct s_file {
    evbus_instance_t *inst;
    const evbus_host_t *host;

    /* options */
    char *path;
    int64_t rotate_size; /* bytes, 0 = never */
    int rotate_keep;
    filefmt_fsync_t fsync;
    int64_t fsync_interval_ms;
    unsigned mode;

    /* the open file */
    int fd;       /* -1 while it cannot be opened */
    int regular;  /* a regular file: rotation and cut-back apply */
    int64_t size; /* bytes in it, as far as we wrote them */
    int dirty;    /* written since the last fdatasync */
    int64_t last_sync_ms;
    char open_error[NAME_MAX_LEN + 64]; /* why the last open failed */
    int64_t next_open_ms;
    int64_t next_rotate_ms;

    /* the batch */
    char *buf;
    size_t len, cap;
    evbus_attempt_t **held;
    size_t n_held, cap_held;
} s_file_t;

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------- options */

static int s_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    int rc = 0;
    rc |= host->declare_option(schema, "path", EVBUS_OPT_STRING, NULL,
                               EVBUS_OPT_REQUIRED,
                               "file the JSON lines are appended to; "
                               "missing parent directories are created");
    rc |= host->declare_option(schema, "rotate_size", EVBUS_OPT_SIZE, "100M", 0,
                               "rotate before a line would take the file "
                               "past this size; 0 = never rotate");
    rc |= host->declare_option(schema, "rotate_keep", EVBUS_OPT_INT, "5", 0,
                               "rotated files kept as path.1 .. path.N, the "
                               "oldest deleted; 0 = keep none");
    rc |= host->declare_option(schema, "fsync", EVBUS_OPT_STRING, "interval", 0,
                               "\"never\", \"interval\" (at most once per "
                               "fsync_interval) or \"always\" (before an "
                               "event counts as delivered)");
    rc |= host->declare_option(schema, "fsync_interval", EVBUS_OPT_DURATION,
                               "1s", 0,
                               "with fsync = \"interval\": how often at "
                               "most to fdatasync");
    rc |= host->declare_option(schema, "file_mode", EVBUS_OPT_STRING, "0640", 0,
                               "octal permissions of files created (the "
                               "process umask applies)");
    return rc ? -1 : 0;
}

static int s_validate(evbus_instance_t *inst, const evbus_host_t *host)
{
    int rc = 0;

    const char *path = host->config_string(inst, "path");
    size_t plen = path ? strlen(path) : 0;
    if (plen == 0)
        rc = host->config_error(inst, "path",
                                "must name a file, e.g. "
                                "\"/var/log/evbus/events.jsonl\"");
    else if (path[plen - 1] == '/')
        rc = host->config_error(inst, "path",
                                "\"%s\" names a directory; give the file's "
                                "name, e.g. \"%sevents.jsonl\"",
                                path, path);
    else if (plen >= PATH_MAX - 8)
        rc = host->config_error(inst, "path",
                                "is %zu bytes long; at most %d are allowed",
                                plen, PATH_MAX - 9);

    int64_t rotate_size = host->config_int(inst, "rotate_size");
    if (rotate_size < 0)
        rc = host->config_error(inst, "rotate_size",
                                "must be 0 (never rotate) or a size such "
                                "as \"100M\", got %lld",
                                (long long)rotate_size);

    int64_t keep = host->config_int(inst, "rotate_keep");
    if (keep < 0 || keep > MAX_KEEP)
        rc = host->config_error(inst, "rotate_keep",
                                "must be 0 to %d (rotated files path.1 .. "
                                "path.N to keep), got %lld",
                                MAX_KEEP, (long long)keep);

    const char *fsync = host->config_string(inst, "fsync");
    filefmt_fsync_t policy = FILEFMT_FSYNC_INTERVAL;
    if (filefmt_fsync_parse(fsync, &policy) < 0)
        rc = host->config_error(inst, "fsync",
                                "must be \"never\", \"interval\" or "
                                "\"always\", got \"%s\"",
                                fsync ? fsync : "");
    else if (policy == FILEFMT_FSYNC_INTERVAL &&
             host->config_int(inst, "fsync_interval") <= 0)
        rc = host->config_error(inst, "fsync_interval",
                                "must be a positive duration such as "
                                "\"1s\" when fsync = \"interval\"");

    const char *mode_text = host->config_string(inst, "file_mode");
    unsigned mode = 0;
    if (filefmt_mode_parse(mode_text, &mode) < 0)
        rc = host->config_error(inst, "file_mode",
                                "must be an octal mode such as \"0640\", "
                                "got \"%s\"",
                                mode_text ? mode_text : "");
    else if (!(mode & 0200u))
        rc = host->config_error(inst, "file_mode",
                                "\"%s\" does not let the owner write the "
                                "file (e.g. \"0640\")",
                                mode_text);
    return rc;
}

/* ------------------------------------------------------------- the file */

/* mkdir -p of path's parent directory. On failure errno is set and `dir`
 * holds the directory that could not be made. */
static int s_make_parents(const char *path, unsigned mode, char *dir,
                          size_t dirsz)
{
    if (snprintf(dir, dirsz, "%s", path) >= (int)dirsz) {
        errno = ENAMETOOLONG;
        return -1;
    }
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    struct stat st;
    if (stat(dir, &st) == 0)
        return 0; /* the usual case: nothing to make */
    for (char *s = dir + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(dir, (mode_t)mode) < 0 && errno != EEXIST)
            return -1;
        if (c == '\0')
            return 0;
        *s = c;
    }
}

/* A file that does not end with a newline was cut short mid-write (the
 * broker was killed, or the machine lost power before the data reached
 * the disk). End that fragment with a newline, so the next line starts on
 * a line of its own instead of gluing itself to the fragment; the event
 * the fragment held was never reported delivered and comes again. */
static void s_end_partial_line(s_file_t *f)
{
    int rfd = open(f->path, O_RDONLY | O_CLOEXEC);
    char last = '\n';
    if (rfd < 0)
        return; /* not readable: nothing to check */
    ssize_t r = pread(rfd, &last, 1, (off_t)(f->size - 1));
    close(rfd);
    if (r != 1 || last == '\n')
        return;
    if (write(f->fd, "\n", 1) == 1) {
        f->size++;
        f->dirty = 1;
        f->host->log(f->inst, EVBUS_LOG_WARN,
                     "%s ended in a partial line (a write cut short by a "
                     "crash); it was ended with a newline, and the event it "
                     "held is delivered again",
                     f->path);
    }
}

/* Open (creating) f->path as the current file. 0, or -1 with the reason
 * in f->open_error ("open PATH: ..." or "mkdir DIR: ..."). */
static int s_open(s_file_t *f)
{
    char dir[NAME_MAX_LEN];
    if (s_make_parents(f->path, filefmt_dir_mode(f->mode), dir, sizeof dir) <
        0) {
        snprintf(f->open_error, sizeof f->open_error, "mkdir %s: %s", dir,
                 strerror(errno));
        return -1;
    }
    int fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                  (mode_t)f->mode);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(f->open_error, sizeof f->open_error, "open %s: %s", f->path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    f->fd = fd;
    f->regular = S_ISREG(st.st_mode);
    f->size = f->regular ? (int64_t)st.st_size : 0;
    f->dirty = 0;
    if (f->size > 0)
        s_end_partial_line(f);
    return 0;
}

static void s_sync(s_file_t *f, int64_t now)
{
    if (fdatasync(f->fd) < 0 && errno != EINVAL)
        f->host->log(f->inst, EVBUS_LOG_ERROR, "fdatasync %s: %s", f->path,
                     strerror(errno));
    f->dirty = 0;
    f->last_sync_ms = now;
}

/* fsync = "interval": sync when the interval has passed. */
static void s_sync_if_due(s_file_t *f)
{
    if (f->fd < 0 || !f->dirty)
        return;
    int64_t now = s_mono_ms();
    if (filefmt_sync_due(f->fsync, f->dirty, now, f->last_sync_ms,
                         f->fsync_interval_ms))
        s_sync(f, now);
}

/* Close the current file; what the policy promises to sync is synced. */
static void s_close(s_file_t *f)
{
    if (f->fd < 0)
        return;
    if (f->dirty && f->fsync != FILEFMT_FSYNC_NEVER)
        s_sync(f, s_mono_ms());
    close(f->fd);
    f->fd = -1;
}

/* Make sure a file is open, trying again at most once per
 * REOPEN_BACKOFF_MS. 0, or -1 with the reason set on `att` (if any). */
static int s_ensure_open(s_file_t *f, evbus_attempt_t *att)
{
    if (f->fd >= 0)
        return 0;
    int64_t now = s_mono_ms();
    if (now >= f->next_open_ms) {
        if (s_open(f) == 0) {
            f->host->log(f->inst, EVBUS_LOG_INFO, "reopened %s", f->path);
            return 0;
        }
        f->next_open_ms = now + REOPEN_BACKOFF_MS;
        f->host->log(f->inst, EVBUS_LOG_ERROR,
                     "%s; events are retried until it opens", f->open_error);
    }
    if (att)
        f->host->attempt_reason(att, "%s", f->open_error);
    return -1;
}

/* ------------------------------------------------------------ the batch */

/* Write the batch and complete every held attempt with the outcome. When
 * `current` is not NULL it is the attempt whose line was appended last
 * and is not held: its outcome is returned instead (with its reason set). */
static int s_flush(s_file_t *f, evbus_attempt_t *current)
{
    const evbus_host_t *host = f->host;
    int rc = EVBUS_OK;
    char why[NAME_MAX_LEN + 128];
    why[0] = '\0';

    if (f->len > 0) {
        if (s_ensure_open(f, NULL) < 0) {
            rc = EVBUS_RETRY;
            snprintf(why, sizeof why, "%s", f->open_error);
        } else {
            /* where the batch begins, from the file itself: someone may
             * have truncated it (copytruncate) since we last wrote */
            struct stat st;
            int64_t start = f->size;
            if (f->regular && fstat(f->fd, &st) == 0)
                start = (int64_t)st.st_size;
            size_t off = 0;
            int err = 0;
            const char *what = "write";
            while (off < f->len) {
                ssize_t w = write(f->fd, f->buf + off, f->len - off);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    err = w < 0 ? errno : EIO;
                    break;
                }
                off += (size_t)w;
            }
            if (!err && f->fsync == FILEFMT_FSYNC_ALWAYS &&
                fdatasync(f->fd) < 0 && errno != EINVAL) {
                err = errno;
                what = "fdatasync";
            }
            if (err) {
                rc = EVBUS_RETRY;
                snprintf(why, sizeof why, "%s %s: %s", what, f->path,
                         strerror(err));
                /* no torn line, and nothing reported OK is left behind:
                 * the whole batch will be written again */
                if (off > 0 && f->regular && ftruncate(f->fd, start) < 0) {
                    host->log(f->inst, EVBUS_LOG_ERROR,
                              "cannot cut %s back to %lld bytes after a "
                              "failed write: %s; a partial line may remain",
                              f->path, (long long)start, strerror(errno));
                    f->size = start + (int64_t)off;
                } else {
                    f->size = start;
                }
            } else {
                f->size = start + (int64_t)f->len;
                f->dirty = f->fsync != FILEFMT_FSYNC_ALWAYS;
                if (f->fsync == FILEFMT_FSYNC_ALWAYS)
                    f->last_sync_ms = s_mono_ms();
            }
        }
    }

    size_t n = f->n_held + (current ? 1 : 0);
    if (rc != EVBUS_OK)
        host->log(f->inst, EVBUS_LOG_ERROR, "%s; %zu event%s will be retried",
                  why, n, n == 1 ? "" : "s");
    for (size_t i = 0; i < f->n_held; i++) {
        if (rc != EVBUS_OK)
            host->attempt_reason(f->held[i], "%s", why);
        host->attempt_complete(f->held[i], rc);
    }
    if (current && rc != EVBUS_OK)
        host->attempt_reason(current, "%s", why);
    f->n_held = 0;
    f->len = 0;
    if (rc == EVBUS_OK)
        s_sync_if_due(f);
    return rc;
}

static int s_reserve(s_file_t *f, size_t extra)
{
    if (f->cap - f->len >= extra)
        return 0;
    size_t cap = f->cap ? f->cap : FLUSH_AT + 4096;
    while (cap - f->len < extra)
        cap *= 2;
    char *b = realloc(f->buf, cap);
    if (!b)
        return -1;
    f->buf = b;
    f->cap = cap;
    return 0;
}

static int s_hold(s_file_t *f, evbus_attempt_t *att)
{
    if (f->n_held == f->cap_held) {
        size_t cap = f->cap_held ? f->cap_held * 2 : MAX_IN_FLIGHT;
        evbus_attempt_t **h = realloc(f->held, cap * sizeof *h);
        if (!h)
            return -1;
        f->held = h;
        f->cap_held = cap;
    }
    f->held[f->n_held++] = att;
    return 0;
}

/* --------------------------------------------------------------- rotation */

/* path -> path.1 -> ... -> path.N, the oldest deleted; then a fresh path.
 * The batch has been flushed. On a failed rename the current file stays in
 * use (it only grows past rotate_size) and rotation is tried again after
 * ROTATE_BACKOFF_MS. */
static void s_rotate(s_file_t *f)
{
    const evbus_host_t *host = f->host;
    int64_t now = s_mono_ms();
    if (now < f->next_rotate_ms)
        return;
    char from[NAME_MAX_LEN], to[NAME_MAX_LEN], err[2 * NAME_MAX_LEN + 64];
    int64_t old_size = f->size;
    int keep = f->rotate_keep;

    /* keep == 0: path itself is the oldest and goes */
    if (filefmt_rotated_name(to, sizeof to, f->path, keep) < 0) {
        snprintf(err, sizeof err, "rotated name too long");
        goto fail;
    }
    if (unlink(to) < 0 && errno != ENOENT) {
        snprintf(err, sizeof err, "unlink %s: %s", to, strerror(errno));
        goto fail;
    }
    for (int n = keep - 1; n >= 0; n--) {
        if (filefmt_rotated_name(from, sizeof from, f->path, n) < 0 ||
            filefmt_rotated_name(to, sizeof to, f->path, n + 1) < 0) {
            snprintf(err, sizeof err, "rotated name too long");
            goto fail;
        }
        if (rename(from, to) < 0 && errno != ENOENT) {
            snprintf(err, sizeof err, "rename %s -> %s: %s", from, to,
                     strerror(errno));
            goto fail;
        }
    }

    /* the old file has its rotated name now (or none, with keep == 0):
     * close it and start a new one */
    s_close(f);
    if (s_open(f) < 0) {
        f->next_open_ms = now + REOPEN_BACKOFF_MS;
        host->log(f->inst, EVBUS_LOG_ERROR,
                  "rotated %s, but cannot start a new one: %s", f->path,
                  f->open_error);
        return;
    }
    if (keep > 0)
        host->log(f->inst, EVBUS_LOG_INFO,
                  "rotated %s at %lld bytes to %s.1 (keeping %d)", f->path,
                  (long long)old_size, f->path, keep);
    else
        host->log(f->inst, EVBUS_LOG_INFO,
                  "rotated %s at %lld bytes (rotate_keep = 0: old file "
                  "deleted)",
                  f->path, (long long)old_size);
    return;

fail:
    f->next_rotate_ms = now + ROTATE_BACKOFF_MS;
    host->log(f->inst, EVBUS_LOG_ERROR,
              "cannot rotate %s: %s; still writing to it, next try in %d s",
              f->path, err, ROTATE_BACKOFF_MS / 1000);
}

/* ------------------------------------------------------------ the plugin */

static void s_free(s_file_t *f)
{
    free(f->path);
    free(f->buf);
    free(f->held);
    free(f);
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    s_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        return -1;
    }
    f->inst = inst;
    f->host = host;
    f->fd = -1;
    const char *path = host->config_string(inst, "path");
    const char *mode = host->config_string(inst, "file_mode");
    f->path = path ? strdup(path) : NULL;
    f->rotate_size = host->config_int(inst, "rotate_size");
    f->rotate_keep = (int)host->config_int(inst, "rotate_keep");
    f->fsync_interval_ms = host->config_int(inst, "fsync_interval");
    if (!path || !*path || !f->path ||
        filefmt_fsync_parse(host->config_string(inst, "fsync"), &f->fsync) <
            0 ||
        filefmt_mode_parse(mode, &f->mode) < 0 || f->rotate_keep < 0 ||
        f->rotate_keep > MAX_KEEP) {
        host->log(inst, EVBUS_LOG_ERROR,
                  "invalid options (evbusd --check-config says which)");
        s_free(f);
        return -1;
    }
    if (s_reserve(f, FLUSH_AT) < 0) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        s_free(f);
        return -1;
    }
    if (s_open(f) < 0) {
        host->log(inst, EVBUS_LOG_ERROR, "cannot start: %s", f->open_error);
        s_free(f);
        return -1;
    }
    f->last_sync_ms = s_mono_ms();
    host->log(inst, EVBUS_LOG_INFO,
              "appending to %s (%lld bytes), rotate_size %lld, rotate_keep "
              "%d, fsync %s",
              f->path, (long long)f->size, (long long)f->rotate_size,
              f->rotate_keep, filefmt_fsync_name(f->fsync));
    *userdata = f;
    return 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *att)
{
    s_file_t *f = userdata;
    /* render straight into the batch, past what it holds (room for the
     * newline and the NUL the host writes); make room if it did not fit */
    if (s_reserve(f, 4096) < 0) {
        f->host->attempt_reason(att, "out of memory buffering the event");
        return EVBUS_RETRY;
    }
    size_t n = f->host->event_json_into(ev, f->buf + f->len, f->cap - f->len);
    if (n && n + 2 > f->cap - f->len) {
        if (s_reserve(f, n + 2) < 0) {
            f->host->attempt_reason(att, "out of memory buffering the event");
            return EVBUS_RETRY;
        }
        n = f->host->event_json_into(ev, f->buf + f->len, f->cap - f->len);
    }
    if (n == 0) {
        f->host->attempt_reason(att, "out of memory rendering the event");
        return EVBUS_RETRY;
    }
    if (s_ensure_open(f, att) < 0)
        return EVBUS_RETRY;
    if (f->regular &&
        filefmt_needs_rotation(f->size, f->len, n + 1, f->rotate_size)) {
        /* the line goes to the new file: write the batch before it, then
         * move the line to the front of the emptied batch */
        size_t at = f->len;
        s_flush(f, NULL); /* empties the batch, whatever the outcome */
        if (at)
            memmove(f->buf, f->buf + at, n);
        s_rotate(f);
        if (s_ensure_open(f, att) < 0)
            return EVBUS_RETRY;
    }
    f->buf[f->len + n] = '\n';
    f->len += n + 1;
    if (f->len >= FLUSH_AT || s_hold(f, att) < 0)
        return s_flush(f, att);
    return EVBUS_PENDING;
}

static void s_tick(void *userdata)
{
    s_file_t *f = userdata;
    if (f->len || f->n_held)
        s_flush(f, NULL);
    else
        s_sync_if_due(f);
}

static void s_reopen(void *userdata)
{
    s_file_t *f = userdata;
    s_flush(f, NULL);
    s_close(f);
    if (s_open(f) < 0) {
        f->next_open_ms = s_mono_ms() + REOPEN_BACKOFF_MS;
        f->host->log(f->inst, EVBUS_LOG_ERROR,
                     "reopen: %s; events are retried until it opens",
                     f->open_error);
        return;
    }
    f->host->log(f->inst, EVBUS_LOG_INFO, "reopened %s (%lld bytes)", f->path,
                 (long long)f->size);
}

static void s_shutdown(void *userdata)
{
    s_file_t *f = userdata;
    if (!f)
        return;
    s_flush(f, NULL);
    s_close(f);
    s_free(f);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0,
    .flags = 0,
    .max_in_flight = MAX_IN_FLIGHT,
    .tick_interval_ms = TICK_MS,
    .reserved0 = 0,
    .name = "file",
    .version = EVBUS_VERSION,
    .description = "appends one CloudEvents JSON line per event to a file, "
                   "with size-based rotation and an fsync policy",
    .declare = s_declare,
    .validate = s_validate,
    .init = s_init,
    .deliver = s_deliver,
    .tick = s_tick,
    .reopen = s_reopen,
    .shutdown = s_shutdown,
};

EVBUS_EXPORT const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    if (EVBUS_ABI_MAJOR_OF(host_abi) != 1)
        return NULL;
    return &s_plugin;
}
