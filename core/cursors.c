/* The cursor store (cursors.h has the files and the rules). */
#include "cursors.h"
#include "config.h" /* the instance name rule */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define S_FORMAT 2 /* the journal format the manifest names */
#define S_MANIFEST "manifest"
#define S_MAX_FILE 65536 /* a cursor or manifest larger than this is junk */

#define S_LISTED                                                               \
    0              /* in the manifest, not yet claimed by a configured         \
                      instance */
#define S_LOADED 1 /* a configured instance's */
#define S_ORPHAN 2 /* listed, not configured */

/* What reading one cursor file found. */
#define S_READ_OK 1
#define S_READ_MISSING 0
#define S_READ_BAD -1

typedef struct s_entry {
    char *name;
    uint64_t cursor;
    int state;
} s_entry_t;

struct evb_cursors {
    char *dir;  /* the journal's */
    char *cdir; /* <dir>/cursors */
    uint64_t first, end;
    int legacy_ok;        /* no manifest was found: plain-number cursors of
                             format 1 are read (once: they are saved anew) */
    int manifest_lost;    /* the manifest was damaged: an instance it does not
                             list may have had a cursor */
    pthread_mutex_t lock; /* the entries, for readers off the main thread */
    s_entry_t *v;
    size_t n, cap;
};

/* ------------------------------------------------------------- entries */

static s_entry_t *s_find_n(evb_cursors_t *c, const char *name, size_t len)
{
    for (size_t i = 0; i < c->n; i++)
        if (strncmp(c->v[i].name, name, len) == 0 && !c->v[i].name[len])
            return &c->v[i];
    return NULL;
}

static s_entry_t *s_find(evb_cursors_t *c, const char *name)
{
    return s_find_n(c, name, strlen(name));
}

static s_entry_t *s_add(evb_cursors_t *c, const char *name, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        s_entry_t *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return NULL;
        c->v = v;
        c->cap = cap;
    }
    char *copy = strndup(name, len);
    if (!copy)
        return NULL;
    pthread_mutex_lock(&c->lock);
    s_entry_t *e = &c->v[c->n++];
    *e = (s_entry_t){copy, 0, S_LISTED};
    pthread_mutex_unlock(&c->lock);
    return e;
}

static void s_remove(evb_cursors_t *c, s_entry_t *e)
{
    pthread_mutex_lock(&c->lock);
    free(e->name);
    size_t i = (size_t)(e - c->v);
    memmove(c->v + i, c->v + i + 1, (c->n - i - 1) * sizeof *c->v);
    c->n--;
    pthread_mutex_unlock(&c->lock);
}

/* --------------------------------------------------------------- files */

static void s_path(const evb_cursors_t *c, const char *name, const char *ext,
                   char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s%s", c->cdir, name, ext);
}

/* The whole of a small file, NUL-terminated: its length, -1 when it does
 * not exist (errno ENOENT) or cannot be read, -2 when it is too large. */
static ssize_t s_slurp(const char *path, char *buf, size_t bufsz)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, buf + got, bufsz - 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got == bufsz - 1) {
            close(fd);
            return -2;
        }
    }
    close(fd);
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Write path atomically: the temporary file tmp, synced, renamed over it;
 * with prev, the file it replaces is kept there (between the renames, tmp
 * and prev are both there). 0, or -1 with errno. */
static int s_replace(const char *tmp, const char *path, const char *prev,
                     const char *data, size_t len)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    int ok = write(fd, data, len) == (ssize_t)len && fdatasync(fd) == 0;
    int e = errno;
    close(fd);
    if (ok && prev && rename(path, prev) < 0 && errno != ENOENT)
        ok = 0, e = errno;
    if (ok && rename(tmp, path) < 0)
        ok = 0, e = errno;
    if (!ok) {
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static void s_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static uint32_t s_crc(const char *s, size_t n)
{
    return evb_crc32c(0, s, n);
}

/* Read a cursor file written for `name` (or, with legacy_ok, the plain
 * number of format 1). S_READ_OK with *seq, S_READ_MISSING, or S_READ_BAD
 * with what was wrong in why ("is empty", "has a checksum mismatch"...). */
static int s_read_cursor(const evb_cursors_t *c, const char *path,
                         const char *name, uint64_t *seq, char *why,
                         size_t whysz)
{
    char buf[256];
    ssize_t n = s_slurp(path, buf, sizeof buf);
    if (n == -1 && errno == ENOENT)
        return S_READ_MISSING;
    if (n == -1) {
        snprintf(why, whysz, "cannot be read (%s)", strerror(errno));
        return S_READ_BAD;
    }
    if (n == -2) {
        snprintf(why, whysz, "is not a cursor (too large)");
        return S_READ_BAD;
    }
    if (n == 0) {
        snprintf(why, whysz, "is empty");
        return S_READ_BAD;
    }
    unsigned long long v;
    int used = 0;
    if (c->legacy_ok && isdigit((unsigned char)buf[0]) &&
        sscanf(buf, "%20llu%n", &v, &used) == 1 &&
        (buf[used] == '\0' || strcmp(buf + used, "\n") == 0)) {
        *seq = v;
        return S_READ_OK;
    }
    char fname[EVB_NAME_MAX + 2];
    unsigned crc;
    int at_crc = 0, end = 0;
    if (sscanf(buf, "evbus-cursor 2 %65s %20llu %n%8x%n", fname, &v, &at_crc,
               &crc, &end) != 3 ||
        end - at_crc != 8 || strcmp(buf + end, "\n") != 0) {
        snprintf(why, whysz, "is not a cursor of this format (\"%.40s\")", buf);
        for (char *p = why; *p; p++)
            if (!isprint((unsigned char)*p))
                *p = '?';
        return S_READ_BAD;
    }
    if (s_crc(buf, (size_t)at_crc) != crc) {
        snprintf(why, whysz, "has a checksum mismatch");
        return S_READ_BAD;
    }
    if (strcmp(fname, name) != 0) {
        snprintf(why, whysz, "names instance \"%s\"", fname);
        return S_READ_BAD;
    }
    *seq = v;
    return S_READ_OK;
}

/* ------------------------------------------------------------ manifest */

static int s_write_manifest(evb_cursors_t *c)
{
    size_t cap = 64 + c->n * (EVB_NAME_MAX + 16), len = 0;
    char *b = malloc(cap);
    if (!b)
        return -1;
    len += (size_t)snprintf(b + len, cap - len, "evbus-journal %d\n", S_FORMAT);
    for (size_t i = 0; i < c->n; i++)
        len +=
            (size_t)snprintf(b + len, cap - len, "instance %s\n", c->v[i].name);
    len += (size_t)snprintf(b + len, cap - len, "end %08x\n", s_crc(b, len));
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/" S_MANIFEST, c->dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int rc = s_replace(tmp, path, NULL, b, len);
    free(b);
    if (rc < 0) {
        evb_error("journal: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    s_sync_dir(c->dir);
    return 0;
}

/* Parse the manifest in buf: 1 read, 0 damaged (why set), -1 of a newer
 * format (why set). */
static int s_parse_manifest(evb_cursors_t *c, char *buf, size_t len, char *why,
                            size_t whysz)
{
    int format = 0, used = 0;
    if (sscanf(buf, "evbus-journal %d\n%n", &format, &used) != 1 || !used) {
        snprintf(why, whysz, "does not start with \"evbus-journal\"");
        return 0;
    }
    if (format > S_FORMAT) {
        snprintf(why, whysz,
                 "is of journal format %d; this evbusd reads format %d "
                 "and older",
                 format, S_FORMAT);
        return -1;
    }
    char *end = NULL;
    for (char *p = buf + used; p < buf + len; p = strchr(p, '\n') + 1) {
        if (!strchr(p, '\n'))
            break;
        if (strncmp(p, "end ", 4) == 0) {
            end = p;
            break;
        }
        size_t n = (size_t)(strchr(p, '\n') - p);
        if (n < 9 || strncmp(p, "instance ", 9) != 0 ||
            !evb_config_name_ok(p + 9, n - 9)) {
            snprintf(why, whysz, "has a bad line (\"%.*s\")",
                     (int)(n < 40 ? n : 40), p);
            return 0;
        }
    }
    unsigned crc;
    int tail = 0;
    if (!end || sscanf(end, "end %8x\n%n", &crc, &tail) != 1 ||
        end + tail != buf + len || tail != 13) {
        snprintf(why, whysz, "is cut short or has trailing bytes");
        return 0;
    }
    if (s_crc(buf, (size_t)(end - buf)) != crc) {
        snprintf(why, whysz, "has a checksum mismatch");
        return 0;
    }
    for (char *p = buf + used; p < end; p = strchr(p, '\n') + 1) {
        size_t n = (size_t)(strchr(p, '\n') - p);
        if (!s_find_n(c, p + 9, n - 9) && !s_add(c, p + 9, n - 9))
            return 0;
    }
    return 1;
}

/* Whether a cursor file is of format 2: then the manifest that should
 * list it was there once. */
static int s_is_format_2(const evb_cursors_t *c, const char *file)
{
    char path[PATH_MAX], buf[256];
    snprintf(path, sizeof path, "%s/%s", c->cdir, file);
    return s_slurp(path, buf, sizeof buf) > 15 &&
           strncmp(buf, "evbus-cursor 2 ", 15) == 0;
}

/* Every instance that left a cursor file (or the one before it), for a
 * manifest that is missing or damaged. *format_2: some cursor file is of
 * format 2 (the manifest is missing, not yet written). */
static int s_scan_cursor_files(evb_cursors_t *c, int *format_2)
{
    DIR *d = opendir(c->cdir);
    if (!d)
        return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        const char *dot = strrchr(de->d_name, '.');
        if (!dot || (strcmp(dot, ".cursor") != 0 && strcmp(dot, ".prev") != 0))
            continue;
        size_t n = (size_t)(dot - de->d_name);
        if (evb_config_name_ok(de->d_name, n) && s_is_format_2(c, de->d_name))
            *format_2 = 1;
        if (evb_config_name_ok(de->d_name, n) && !s_find_n(c, de->d_name, n) &&
            !s_add(c, de->d_name, n)) {
            closedir(d);
            errno = ENOMEM;
            return -1;
        }
    }
    closedir(d);
    return 0;
}

/* -------------------------------------------------------- open, close */

evb_cursors_t *evb_cursors_open(const char *journal_dir, uint64_t first,
                                uint64_t end, char *err, size_t errsz)
{
    evb_cursors_t *c = calloc(1, sizeof *c);
    if (c)
        pthread_mutex_init(&c->lock, NULL);
    if (!c || asprintf(&c->cdir, "%s/cursors", journal_dir) < 0 ||
        !(c->dir = strdup(journal_dir))) {
        if (c)
            c->cdir = NULL;
        snprintf(err, errsz, "journal: out of memory");
        evb_cursors_close(&c);
        return NULL;
    }
    c->first = first;
    c->end = end;
    if (mkdir(c->cdir, 0750) < 0 && errno != EEXIST) {
        snprintf(err, errsz, "journal: cannot create %s: %s", c->cdir,
                 strerror(errno));
        evb_cursors_close(&c);
        return NULL;
    }
    char path[PATH_MAX], why[160];
    snprintf(path, sizeof path, "%s/" S_MANIFEST, c->dir);
    char *buf = malloc(S_MAX_FILE);
    ssize_t n = buf ? s_slurp(path, buf, S_MAX_FILE) : -1;
    int rc = 0;
    if (n == -1 && errno == ENOENT) {
        c->legacy_ok = 1; /* format 1, or a new journal */
    } else if (n < 0) {
        snprintf(why, sizeof why, "cannot be read (%s)",
                 n == -2 ? "too large" : strerror(errno));
    } else {
        rc = s_parse_manifest(c, buf, (size_t)n, why, sizeof why);
    }
    free(buf);
    if (rc < 0) {
        snprintf(err, errsz, "journal: %s %s", path, why);
        evb_cursors_close(&c);
        return NULL;
    }
    int format_2 = 0;
    if (rc == 0 && s_scan_cursor_files(c, &format_2) < 0) {
        snprintf(err, errsz, "journal: cannot read %s: %s", c->cdir,
                 strerror(errno));
        evb_cursors_close(&c);
        return NULL;
    }
    if (rc == 0 && c->legacy_ok && format_2)
        snprintf(why, sizeof why, "is missing");
    if (rc == 0 && (!c->legacy_ok || format_2)) {
        evb_error("journal: %s %s: rebuilt from the cursor files; an "
                  "instance without one starts from the oldest record",
                  path, why);
        c->manifest_lost = 1;
    }
    if (rc == 0 && s_write_manifest(c) < 0) {
        snprintf(err, errsz, "journal: cannot write %s: %s", path,
                 strerror(errno));
        evb_cursors_close(&c);
        return NULL;
    }
    if (rc == 0 && c->legacy_ok && !format_2 && c->n)
        evb_info("journal: %s written for the %zu instance%s with a cursor "
                 "(journal format 1 -> %d)",
                 path, c->n, c->n == 1 ? "" : "s", S_FORMAT);
    return c;
}

void evb_cursors_close(evb_cursors_t **self)
{
    evb_cursors_t *c = self ? *self : NULL;
    if (!c)
        return;
    *self = NULL;
    for (size_t i = 0; i < c->n; i++)
        free(c->v[i].name);
    free(c->v);
    free(c->cdir);
    free(c->dir);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* ------------------------------------------------------------- resolve */

static int s_reset(evb_cursors_t *c, const char *name, uint64_t cursor);

/* The oldest record's predecessor: resuming after it delivers every
 * record the journal still holds. */
static uint64_t s_oldest(const evb_cursors_t *c)
{
    return c->first ? c->first - 1 : c->end;
}

/* A fallback cursor file (.prev or .tmp), when intact and possible. */
static int s_fallback(const evb_cursors_t *c, const char *name, const char *ext,
                      uint64_t *seq)
{
    char path[PATH_MAX], why[160];
    s_path(c, name, ext, path, sizeof path);
    return s_read_cursor(c, path, name, seq, why, sizeof why) == S_READ_OK &&
           *seq <= c->end;
}

/* Where `name` resumes. known: the manifest lists it (a missing cursor is
 * then lost, not new). Logs an ERROR when the cursor was unusable. */
static evb_cursor_origin_t s_resolve(const evb_cursors_t *c, const char *name,
                                     int known, int start_oldest,
                                     uint64_t *cursor)
{
    char path[PATH_MAX], why[200];
    s_path(c, name, ".cursor", path, sizeof path);
    uint64_t v = 0;
    int rc = s_read_cursor(c, path, name, &v, why, sizeof why);
    if (rc == S_READ_OK && v <= c->end) {
        *cursor = v;
        return EVB_CURSOR_SAVED;
    }
    if (rc == S_READ_MISSING && !known) {
        *cursor = start_oldest ? s_oldest(c) : c->end;
        return EVB_CURSOR_NEW;
    }
    if (rc == S_READ_OK)
        snprintf(why, sizeof why,
                 "says seq %" PRIu64 ", past the journal's end (seq %" PRIu64
                 ")",
                 v, c->end);
    else if (rc == S_READ_MISSING)
        snprintf(why, sizeof why,
                 "is missing, although the journal's manifest lists the "
                 "instance");
    /* the newest intact fallback: a save cut short (.tmp, synced before
     * any rename) or the cursor saved before (.prev) */
    uint64_t prev = 0, tmp = 0;
    int has_prev = s_fallback(c, name, ".prev", &prev);
    int has_tmp = s_fallback(c, name, ".tmp", &tmp);
    const char *from = "the oldest record in the journal";
    *cursor = s_oldest(c);
    if (has_prev || has_tmp) {
        *cursor = has_tmp && (!has_prev || tmp > prev) ? tmp : prev;
        from = has_tmp && (!has_prev || tmp > prev)
                   ? "a cursor save that was cut short"
                   : "the cursor saved before it";
    }
    evb_log(EVBUS_LOG_ERROR, name,
            "cursor %s %s: resuming after seq %" PRIu64 " (%s); events "
            "after it may be delivered again, none is skipped",
            path, why, *cursor, from);
    return EVB_CURSOR_RECOVERED;
}

evb_cursor_origin_t evb_cursors_load(evb_cursors_t *c, const char *name,
                                     int start_oldest, uint64_t *cursor)
{
    s_entry_t *e = s_find(c, name);
    evb_cursor_origin_t origin =
        s_resolve(c, name, e || c->manifest_lost, start_oldest, cursor);
    int listed = e != NULL;
    if (!e && !(e = s_add(c, name, strlen(name)))) {
        evb_log(EVBUS_LOG_ERROR, name, "out of memory for the manifest");
        return origin;
    }
    e->cursor = *cursor;
    e->state = S_LOADED;
    /* a new or recovered cursor is on disk before anything is delivered,
     * and a format-1 cursor is rewritten in this format; a new one is
     * there (its directory entry synced) before the manifest lists it, so
     * a crash between cannot make it look lost */
    if (origin != EVB_CURSOR_SAVED || c->legacy_ok)
        if (s_reset(c, name, *cursor) == 0 && !listed)
            s_sync_dir(c->cdir);
    if (!listed)
        s_write_manifest(c);
    return origin;
}

/* ---------------------------------------------------------------- save */

/* Save a cursor that is not a step forward from the saved one (new,
 * recovered, taken over): the file it replaces is not kept as .prev, which
 * could then lie ahead of it. */
static int s_reset(evb_cursors_t *c, const char *name, uint64_t cursor)
{
    char err[PATH_MAX + 64], prev[PATH_MAX];
    if (evb_cursors_save(c, name, cursor, err, sizeof err) < 0) {
        evb_log(EVBUS_LOG_ERROR, name, "%s", err);
        return -1;
    }
    s_path(c, name, ".prev", prev, sizeof prev);
    unlink(prev);
    return 0;
}

int evb_cursors_save(evb_cursors_t *c, const char *name, uint64_t cursor,
                     char *err, size_t errsz)
{
    char path[PATH_MAX], tmp[PATH_MAX], prev[PATH_MAX], line[160];
    s_path(c, name, ".cursor", path, sizeof path);
    s_path(c, name, ".tmp", tmp, sizeof tmp);
    s_path(c, name, ".prev", prev, sizeof prev);
    int n = snprintf(line, sizeof line, "evbus-cursor %d %s %" PRIu64 " ",
                     S_FORMAT, name, cursor);
    n += snprintf(line + n, sizeof line - (size_t)n, "%08x\n",
                  s_crc(line, (size_t)n));
    /* the old cursor stays as .prev: a fallback if the new one is
     * damaged */
    if (s_replace(tmp, path, prev, line, (size_t)n) < 0) {
        snprintf(err, errsz, "cannot save the cursor to %s: %s", path,
                 strerror(errno));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- orphans */

static void s_unlink_all(const evb_cursors_t *c, const char *name)
{
    static const char *const exts[] = {".cursor", ".prev", ".tmp"};
    char path[PATH_MAX];
    for (size_t i = 0; i < sizeof exts / sizeof *exts; i++) {
        s_path(c, name, exts[i], path, sizeof path);
        if (unlink(path) < 0 && errno != ENOENT)
            evb_error("journal: cannot delete %s: %s", path, strerror(errno));
    }
    s_sync_dir(c->cdir);
}

int evb_cursors_adopt(evb_cursors_t *c, const char *from, const char *to)
{
    s_entry_t *f = s_find(c, from);
    if (!f || f->state == S_LOADED)
        return 0;
    uint64_t v, own;
    s_resolve(c, from, 1, 0, &v);
    char path[PATH_MAX], why[160];
    s_path(c, to, ".cursor", path, sizeof path);
    int had = s_read_cursor(c, path, to, &own, why, sizeof why) == S_READ_OK &&
              own <= c->end;
    if (had && own < v)
        v = own;
    if (s_reset(c, to, v) < 0)
        return -1;
    if (!s_find(c, to) && !s_add(c, to, strlen(to)))
        return -1;
    s_remove(c, s_find(c, from));
    if (s_write_manifest(c) < 0)
        return -1;
    s_unlink_all(c, from);
    evb_log(EVBUS_LOG_INFO, to,
            "took over the cursor of \"%s\" (rename_from): resuming after "
            "seq %" PRIu64 "%s",
            from, v, had ? " (the lower of the two cursors)" : "");
    return 1;
}

size_t evb_cursors_find_orphans(evb_cursors_t *c, uint64_t end)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n; i++) {
        s_entry_t *e = &c->v[i];
        if (e->state == S_LOADED)
            continue;
        uint64_t v;
        if (s_resolve(c, e->name, 1, 0, &v) != EVB_CURSOR_SAVED || c->legacy_ok)
            s_reset(c, e->name, v);
        pthread_mutex_lock(&c->lock);
        e->cursor = v;
        e->state = S_ORPHAN;
        pthread_mutex_unlock(&c->lock);
        n++;
        evb_warn("instance \"%s\" is no longer configured, but its cursor "
                 "is kept: %" PRIu64 " journal record%s after seq %" PRIu64
                 " unread, which retention keeps for it. Configure it again, "
                 "take it over with rename_from = \"%s\", or drop it with "
                 "`evbusctl drop-cursor %s`",
                 e->name, end > v ? end - v : 0, end - v == 1 ? "" : "s", v,
                 e->name, e->name);
    }
    return n;
}

int evb_cursors_orphan(evb_cursors_t *c, size_t i, char *name, size_t namesz,
                       uint64_t *cursor)
{
    int rc = -1;
    pthread_mutex_lock(&c->lock);
    for (size_t k = 0; k < c->n; k++) {
        if (c->v[k].state != S_ORPHAN || i-- > 0)
            continue;
        snprintf(name, namesz, "%s", c->v[k].name);
        *cursor = c->v[k].cursor;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

uint64_t evb_cursors_orphan_min(evb_cursors_t *c)
{
    uint64_t least = UINT64_MAX;
    pthread_mutex_lock(&c->lock);
    for (size_t k = 0; k < c->n; k++)
        if (c->v[k].state == S_ORPHAN && c->v[k].cursor < least)
            least = c->v[k].cursor;
    pthread_mutex_unlock(&c->lock);
    return least;
}

int evb_cursors_drop(evb_cursors_t *c, const char *name, uint64_t *cursor,
                     char *err, size_t errsz)
{
    s_entry_t *e = s_find(c, name);
    if (!e || e->state != S_ORPHAN) {
        snprintf(err, errsz,
                 e ? "instance \"%s\" is configured: only the cursor of an "
                     "instance no longer in the config can be dropped"
                   : "no cursor of an unconfigured instance is named \"%s\"",
                 name);
        return -1;
    }
    *cursor = e->cursor;
    s_remove(c, e);
    if (s_write_manifest(c) < 0) {
        int saved = errno;
        /* still listed on disk: keep holding its records */
        s_entry_t *back = s_add(c, name, strlen(name));
        if (back) {
            back->cursor = *cursor;
            back->state = S_ORPHAN;
        }
        snprintf(err, errsz, "cannot write the journal's manifest: %s",
                 strerror(saved));
        return -1;
    }
    s_unlink_all(c, name);
    evb_warn("dropped the cursor of instance \"%s\" (it was at seq %" PRIu64
             "): retention no longer keeps records for it",
             name, *cursor);
    return 0;
}
