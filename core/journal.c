/* The durable journal (journal.h has the format and the threading rules).
 *
 * Who owns what:
 *   main thread   the batch being filled, next_seq, cur/cur_fd, every
 *                 segment's plain fields (size, stats); it is the only
 *                 writer of the segment list, so it reads it unlocked;
 *   j->lock       the segment list and each segment's refs/deleted (the
 *                 readers walk it), the fds the sync thread must sync,
 *                 the written-but-unsynced chunks, the unhealthy reason;
 *   atomics       written_seq, durable_seq, healthy, first_seq, bytes, and
 *                 each segment's end/sealed, which readers poll.
 * The lock is never held across a write, read or fdatasync. */
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* Test hooks, deliberately not in journal.h: tests/unit/test_journal.c
 * points them at failing stand-ins to show what a full or broken disk does
 * (making a real filesystem fail on cue is not practical in a unit test).
 * Nothing else may touch them. */
extern ssize_t (*evb_journal_pwrite_hook)(int, const void *, size_t, off_t);
extern int (*evb_journal_fdatasync_hook)(int);
extern int (*evb_journal_ftruncate_hook)(int, off_t);
extern ssize_t (*evb_journal_pread_hook)(int, void *, size_t, off_t);
ssize_t (*evb_journal_pwrite_hook)(int, const void *, size_t, off_t) = pwrite;
int (*evb_journal_fdatasync_hook)(int) = fdatasync;
int (*evb_journal_ftruncate_hook)(int, off_t) = ftruncate;
ssize_t (*evb_journal_pread_hook)(int, void *, size_t, off_t) = pread;

#define S_MAGIC "EVBJRNL1"
#define S_VERSION 1
#define S_HDR 32   /* segment header */
#define S_PREFIX 8 /* length + crc */
#define S_FIXED 24 /* seq .. data_len */
#define S_DEFAULT_SEGMENT (64 * 1024 * 1024)
#define S_READ_AHEAD (256 * 1024)
#define S_SPARE_CHUNKS 4 /* batch buffers kept for reuse */
#define S_NAME_LEN 28    /* "seg-" + 20 digits + ".evj" */
#define S_LOCK_NAME "lock"
#define S_MAX_REPORTED 16 /* damaged stretches logged one by one */

/* A damaged stretch of a segment found at open: readers jump from off to
 * next (the first valid record after it, or the end of the file). */
typedef struct s_skip {
    int64_t off, next;
} s_skip_t;

/* One segment file. */
typedef struct s_seg {
    uint64_t first_seq; /* from its name and header */
    uint64_t first_rec; /* seq of its first record, 0 when none */
    uint64_t last_seq;  /* of its last record, 0 when none */
    uint64_t records;
    int64_t newest_ms;   /* newest accepted_ms, for max_age */
    int64_t size;        /* end of the valid records: the next write */
    int64_t disk;        /* bytes in the file, skipped tail included */
    _Atomic int64_t end; /* for readers: below this, only whole records */
    atomic_int sealed;   /* a newer segment exists: end is final */
    int refs;            /* readers attached (under lock) */
    int deleted;         /* out of the list; freed at refs 0 (under lock) */
    s_skip_t *skips;     /* set at open, then read-only; by offset */
    size_t nskips;
    char path[];
} s_seg_t;

/* A batch of records: filled by append, written by flush, then kept until
 * synced so repair can write it again. */
typedef struct s_chunk {
    struct s_chunk *next;
    unsigned char *data;
    size_t len, cap;
    uint64_t first_seq, last_seq; /* 0 when empty */
    uint64_t records;
    int64_t newest_ms;
    uint64_t seg_first; /* where flush wrote it: segment and offset */
    int64_t off;
} s_chunk_t;

/* A sealed segment's fd, open until the sync thread has synced it. */
typedef struct s_pending {
    int fd;
    uint64_t first_seq;
} s_pending_t;

/* A read-ahead window over one file. */
typedef struct s_window {
    unsigned char *buf;
    size_t cap;
    int64_t off; /* buf holds the file's bytes [off, off + len) */
    size_t len;
} s_window_t;

struct evb_journal {
    char *dir;
    int dirfd;
    int lockfd; /* the flock'ed lock file, for the life of the journal */
    int64_t segment_size;
    pthread_mutex_t lock;

    /* main thread */
    s_chunk_t *batch;
    uint64_t next_seq;
    s_seg_t *cur; /* being written; NULL only after a failed repair */
    int cur_fd;

    /* under lock (the main thread may read segs unlocked) */
    s_seg_t **segs; /* by first_seq */
    size_t nsegs, segcap;
    s_pending_t *pending;
    size_t npending, pendcap;
    int dir_dirty; /* a segment was created since the last sync */
    s_chunk_t *unsynced, **unsynced_tail;
    s_chunk_t *spare;
    int nspare;
    char reason[512];
    int repairing; /* the next failure replaces the reason */

    atomic_int healthy;
    _Atomic uint64_t written_seq;
    _Atomic uint64_t durable_seq;
    _Atomic uint64_t first_seq;
    _Atomic int64_t bytes;
};

struct evb_journal_reader {
    evb_journal_t *j;
    s_seg_t *seg; /* attached (holds a ref), NULL before the first read */
    int fd;
    int64_t off;        /* of the next record in seg */
    uint64_t next;      /* the seq to return next */
    int skip;           /* seg is unreadable past off: move on when sealed */
    size_t ski;         /* the next of seg's skips not behind off */
    uint64_t passed;    /* the newest seq read in seg so far */
    int64_t damaged_at; /* a record found damaged at run time, -1 none */
    int64_t searched;   /* ...and how far an intact one was looked for */
    s_window_t w;
};

/* ---------------------------------------------------------- little bits */

static void s_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void s_put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void s_put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint16_t s_get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t s_get32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t s_get64(const unsigned char *p)
{
    return (uint64_t)s_get32(p) | (uint64_t)s_get32(p + 4) << 32;
}

static void s_lock(evb_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
}

static void s_unlock(evb_journal_t *j)
{
    pthread_mutex_unlock(&j->lock);
}

static void s_seg_path(const evb_journal_t *j, uint64_t first, char *out,
                       size_t outsz)
{
    snprintf(out, outsz, "%s/seg-%020" PRIu64 ".evj", j->dir, first);
}

/* Mark the journal unhealthy; the first failure is the reason and is
 * logged once, later ones while still unhealthy add nothing (a repair
 * attempt that fails logs and reports its own). */
static void s_fail(evb_journal_t *j, const char *what, const char *path,
                   int err)
{
    char line[sizeof j->reason];
    snprintf(line, sizeof line, "%s %s: %s", what, path, strerror(err));
    s_lock(j);
    int first = atomic_load(&j->healthy) || j->repairing;
    if (first) {
        memcpy(j->reason, line, sizeof line);
        atomic_store(&j->healthy, 0);
        j->repairing = 0;
    }
    s_unlock(j);
    if (first)
        evb_error("journal: %s; refusing acknowledged events until it is "
                  "repaired",
                  line);
}

/* One write(2) at off, however many it takes: short writes and EINTR. */
static int s_pwrite_all(int fd, const unsigned char *p, size_t n, int64_t off)
{
    while (n) {
        ssize_t w = evb_journal_pwrite_hook(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* ------------------------------------------------------------ windows */

/* Point *p at n bytes of fd at off, reading ahead but never at or past
 * limit (bytes there may still be being written). 1 done, 0 when fewer
 * than n bytes are there, -1 on a read error (errno set). */
static int s_window_get(s_window_t *w, int fd, int64_t off, size_t n,
                        int64_t limit, const unsigned char **p)
{
    if (off >= w->off && off + (int64_t)n <= w->off + (int64_t)w->len) {
        *p = w->buf + (off - w->off);
        return 1;
    }
    if (off + (int64_t)n > limit)
        return 0;
    size_t want = n > S_READ_AHEAD ? n : S_READ_AHEAD;
    if ((int64_t)want > limit - off)
        want = (size_t)(limit - off);
    if (want > w->cap) {
        unsigned char *nb = realloc(w->buf, want);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        w->buf = nb;
        w->cap = want;
    }
    size_t got = 0;
    w->len = 0;
    while (got < want) {
        ssize_t r = evb_journal_pread_hook(fd, w->buf + got, want - got,
                                           (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    w->off = off;
    w->len = got;
    if (got < n)
        return 0;
    *p = w->buf;
    return 1;
}

static void s_window_reset(s_window_t *w)
{
    w->off = 0;
    w->len = 0;
}

/* ----------------------------------------------------------- segments */

static s_seg_t *s_seg_new(const evb_journal_t *j, uint64_t first)
{
    size_t plen = strlen(j->dir) + S_NAME_LEN + 2;
    s_seg_t *s = calloc(1, sizeof *s + plen);
    if (!s)
        return NULL;
    s->first_seq = first;
    s_seg_path(j, first, s->path, plen);
    atomic_init(&s->end, 0);
    atomic_init(&s->sealed, 0);
    return s;
}

static void s_seg_free(s_seg_t *s)
{
    if (s) {
        free(s->skips);
        free(s);
    }
}

/* Drop a reader's (or the list's) hold; under lock. */
static void s_seg_unref_locked(s_seg_t *s)
{
    if (s && --s->refs <= 0 && s->deleted)
        s_seg_free(s);
}

/* Index of the last segment with first_seq <= seq, or -1; under lock or
 * on the main thread. */
static ptrdiff_t s_find(const evb_journal_t *j, uint64_t seq)
{
    size_t lo = 0, hi = j->nsegs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (j->segs[mid]->first_seq <= seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

static int s_list_reserve(evb_journal_t *j)
{
    if (j->nsegs < j->segcap)
        return 0;
    size_t cap = j->segcap ? j->segcap * 2 : 16;
    s_seg_t **n = realloc(j->segs, cap * sizeof *n);
    if (!n)
        return -1;
    j->segs = n;
    j->segcap = cap;
    return 0;
}

static int s_pending_reserve(evb_journal_t *j)
{
    if (j->npending < j->pendcap)
        return 0;
    size_t cap = j->pendcap ? j->pendcap * 2 : 8;
    s_pending_t *n = realloc(j->pending, cap * sizeof *n);
    if (!n)
        return -1;
    j->pending = n;
    j->pendcap = cap;
    return 0;
}

/* Take segs[i] out of the list; readers still on it keep their fd and move
 * on by position. Under lock. */
static void s_list_remove_locked(evb_journal_t *j, size_t i)
{
    s_seg_t *s = j->segs[i];
    memmove(j->segs + i, j->segs + i + 1, (j->nsegs - i - 1) * sizeof *j->segs);
    j->nsegs--;
    atomic_store(&s->sealed, 1);
    s->deleted = 1;
    if (s->refs == 0)
        s_seg_free(s);
}

/* The oldest record's seq, for evb_journal_first_seq; main thread. */
static void s_update_first(evb_journal_t *j)
{
    uint64_t first = 0;
    for (size_t i = 0; i < j->nsegs && !first; i++)
        first = j->segs[i]->first_rec;
    atomic_store(&j->first_seq, first);
}

static void s_seg_account(s_seg_t *s, const s_chunk_t *c)
{
    if (!s->first_rec)
        s->first_rec = c->first_seq;
    s->last_seq = c->last_seq;
    s->records += c->records;
    if (c->newest_ms > s->newest_ms)
        s->newest_ms = c->newest_ms;
}

/* Create segment `first` with its header; s_fail on any error. The
 * directory entry is synced later, by the sync thread (dir_dirty). */
static s_seg_t *s_seg_create(evb_journal_t *j, uint64_t first, int *fd)
{
    s_seg_t *s = s_seg_new(j, first);
    if (!s) {
        s_fail(j, "create", j->dir, ENOMEM);
        return NULL;
    }
    /* O_TRUNC: a file of that name can only hold records that were never
     * synced (repair removes them; see evb_journal_repair) */
    *fd = open(s->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (*fd < 0) {
        s_fail(j, "create", s->path, errno);
        s_seg_free(s);
        return NULL;
    }
    unsigned char h[S_HDR];
    memcpy(h, S_MAGIC, 8);
    s_put32(h + 8, S_VERSION);
    s_put32(h + 12, S_HDR);
    s_put64(h + 16, first);
    s_put64(h + 24, (uint64_t)evb_now_ms());
    if (s_pwrite_all(*fd, h, sizeof h, 0) < 0) {
        s_fail(j, "write", s->path, errno);
        close(*fd);
        unlink(s->path);
        s_seg_free(s);
        return NULL;
    }
    s->size = s->disk = S_HDR;
    atomic_store(&s->end, S_HDR);
    atomic_fetch_add(&j->bytes, S_HDR);
    return s;
}

/* Make s (open on fd) the segment being written; the old one's fd waits
 * for the sync thread. -1 only when memory runs out. */
static int s_make_current(evb_journal_t *j, s_seg_t *s, int fd)
{
    s_seg_t *old = j->cur;
    s_lock(j);
    if (s_list_reserve(j) < 0 || (old && s_pending_reserve(j) < 0)) {
        s_unlock(j);
        return -1;
    }
    j->segs[j->nsegs++] = s;
    if (old)
        j->pending[j->npending++] = (s_pending_t){j->cur_fd, old->first_seq};
    j->cur = s;
    j->cur_fd = fd;
    j->dir_dirty = 1;
    s_unlock(j);
    /* after its final end: a reader that sees sealed sees that end */
    if (old)
        atomic_store(&old->sealed, 1);
    return 0;
}

static int s_rotate(evb_journal_t *j, uint64_t first)
{
    int fd;
    s_seg_t *s = s_seg_create(j, first, &fd);
    if (!s)
        return -1;
    if (s_make_current(j, s, fd) < 0) {
        close(fd);
        unlink(s->path);
        atomic_fetch_sub(&j->bytes, S_HDR);
        s_seg_free(s);
        s_fail(j, "create", j->dir, ENOMEM);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------- chunks */

static s_chunk_t *s_chunk_new(void)
{
    return calloc(1, sizeof(s_chunk_t));
}

static void s_chunk_clear(s_chunk_t *c)
{
    c->next = NULL;
    c->len = 0;
    c->first_seq = c->last_seq = c->records = 0;
    c->newest_ms = 0;
    c->seg_first = 0;
    c->off = 0;
}

static void s_chunk_free(s_chunk_t *c)
{
    if (c) {
        free(c->data);
        free(c);
    }
}

static void s_chunk_free_all(s_chunk_t *c)
{
    while (c) {
        s_chunk_t *next = c->next;
        s_chunk_free(c);
        c = next;
    }
}

static int s_chunk_grow(s_chunk_t *c, size_t n)
{
    size_t cap = c->cap ? c->cap * 2 : 64 * 1024;
    while (cap < c->len + n)
        cap *= 2;
    unsigned char *d = realloc(c->data, cap);
    if (!d)
        return -1;
    c->data = d;
    c->cap = cap;
    return 0;
}

/* A synced (or re-written) chunk goes back to the spares; under lock. */
static void s_chunk_recycle_locked(evb_journal_t *j, s_chunk_t *c)
{
    if (j->nspare >= S_SPARE_CHUNKS) {
        s_chunk_free(c);
        return;
    }
    s_chunk_clear(c);
    c->next = j->spare;
    j->spare = c;
    j->nspare++;
}

static void s_release_synced_locked(evb_journal_t *j, uint64_t upto)
{
    while (j->unsynced && j->unsynced->last_seq <= upto) {
        s_chunk_t *c = j->unsynced;
        j->unsynced = c->next;
        s_chunk_recycle_locked(j, c);
    }
    if (!j->unsynced)
        j->unsynced_tail = &j->unsynced;
}

/* ----------------------------------------------------------- recovery */

static void s_note(evb_journal_recovery_t *rec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_note(evb_journal_recovery_t *rec, const char *fmt, ...)
{
    char line[sizeof rec->detail];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    evb_warn("journal: %s", line);
    if (!rec->detail[0])
        memcpy(rec->detail, line, sizeof line);
}

static int s_mkdir_p(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* "seg-<20 digits>.evj" -> its first seq; 0 when the name is not one. */
static int s_parse_name(const char *name, uint64_t *first)
{
    if (strlen(name) != S_NAME_LEN || strncmp(name, "seg-", 4) != 0 ||
        strcmp(name + 24, ".evj") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 4; i < 24; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *first = v;
    return 1;
}

/* The first seqs named by the segment files in dir, sorted. */
static int s_list_dir(evb_journal_t *j, uint64_t **out, size_t *n)
{
    DIR *d = opendir(j->dir);
    if (!d)
        return -1;
    uint64_t *v = NULL;
    size_t len = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t first;
        if (!s_parse_name(e->d_name, &first))
            continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *nv = realloc(v, cap * sizeof *nv);
            if (!nv) {
                free(v);
                closedir(d);
                errno = ENOMEM;
                return -1;
            }
            v = nv;
        }
        v[len++] = first;
    }
    closedir(d);
    if (len)
        qsort(v, len, sizeof *v, s_cmp_u64);
    *out = v;
    *n = len;
    return 0;
}

/* Move a file recovery cannot use out of the way, keeping it for a look. */
static void s_set_aside(const char *path)
{
    char bad[PATH_MAX + 8];
    snprintf(bad, sizeof bad, "%s.bad", path);
    if (rename(path, bad) < 0)
        evb_error("journal: cannot rename %s: %s", path, strerror(errno));
}

/* Open one segment and check its header. Returns the fd, or -1 when the
 * file was removed or set aside (and reported). A file with a damaged
 * header is still read (*hdr_bad): its records carry their own checks. */
static int s_open_checked(const char *path, uint64_t first, int newest,
                          int64_t *fsize, int *hdr_bad,
                          evb_journal_recovery_t *rec)
{
    int fd = open(path, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0 && newest) /* still worth reading; appending goes elsewhere */
        fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        s_note(rec, "cannot open %s: %s; ignored", path, strerror(errno));
        rec->bad_segments++;
        if (fd >= 0)
            close(fd);
        return -1;
    }
    unsigned char h[S_HDR];
    ssize_t got = st.st_size >= S_HDR ? pread(fd, h, S_HDR, 0) : 0;
    if (st.st_size < S_HDR && newest) {
        /* a crash between creating the newest segment and writing its
         * header: it never held a record */
        s_note(rec, "%s has no header (%lld bytes); removed", path,
               (long long)st.st_size);
        unlink(path);
        close(fd);
        return -1;
    }
    if (got != S_HDR) {
        s_note(rec,
               "%s is too short for a segment (%lld bytes); set aside "
               "as .bad",
               path, (long long)st.st_size);
        rec->bad_segments++;
        s_set_aside(path);
        close(fd);
        return -1;
    }
    *hdr_bad = memcmp(h, S_MAGIC, 8) != 0 || s_get32(h + 8) != S_VERSION ||
               s_get32(h + 12) != S_HDR || s_get64(h + 16) != first;
    *fsize = st.st_size;
    return fd;
}

/* Where a damaged stretch began, for the report once the next intact
 * record shows which seqs it took. */
typedef struct s_damage {
    char where[PATH_MAX + 160]; /* "" when none is open */
    uint64_t after;             /* the seqs lost start after this one */
} s_damage_t;

typedef struct s_scan {
    uint64_t last;     /* newest valid seq so far, across segments */
    uint64_t dups;     /* records at or below last, left by a repair */
    uint64_t tail_seq; /* the seq a damaged or cut-short tail names, or 0 */
    s_window_t w;
    s_damage_t damage;
    int reported; /* lost stretches logged */
    char why[128];
} s_scan_t;

/* The seq the next record of s should have: after every seq seen, and
 * not below the one s is named for. */
static uint64_t s_due(const s_scan_t *sc, const s_seg_t *s)
{
    return sc->last >= s->first_seq ? sc->last + 1
                                    : (s->first_seq ? s->first_seq : 1);
}

/* Check the record at off; 1 valid (its length in *len), 0 with sc->why
 * set when it is not, -1 when it cannot be read (errno): an I/O error is
 * not damage, and nothing may be cut or skipped for it. *torn: the file
 * ends inside it (an incomplete write, not damage). */
static int s_check_record(s_scan_t *sc, int fd, const s_seg_t *s, int64_t off,
                          int64_t fsize, uint32_t *len, const unsigned char **p,
                          int *torn)
{
    *torn = 0;
    if (fsize - off < S_PREFIX) {
        snprintf(sc->why, sizeof sc->why, "torn length prefix");
        *torn = 1;
        return 0;
    }
    int rc = s_window_get(&sc->w, fd, off, S_PREFIX, fsize, p);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        snprintf(sc->why, sizeof sc->why, "the file is shorter than it was");
        *torn = 1;
        return 0;
    }
    *len = s_get32(*p);
    if (*len < S_FIXED || *len > EVB_JOURNAL_MAX_RECORD) {
        snprintf(sc->why, sizeof sc->why, "bad record length %" PRIu32, *len);
        return 0;
    }
    if (*len > fsize - off - S_PREFIX) {
        snprintf(sc->why, sizeof sc->why,
                 "record of %" PRIu32 " bytes runs past the end of the file",
                 *len);
        *torn = 1;
        return 0;
    }
    rc = s_window_get(&sc->w, fd, off, S_PREFIX + *len, fsize, p);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        snprintf(sc->why, sizeof sc->why, "the file is shorter than it was");
        *torn = 1;
        return 0;
    }
    const unsigned char *r = *p;
    if (evb_crc32c(0, r + S_PREFIX, *len) != s_get32(r + 4)) {
        snprintf(sc->why, sizeof sc->why, "checksum mismatch");
        return 0;
    }
    if ((uint64_t)S_FIXED + s_get16(r + 26) + s_get32(r + 28) != *len) {
        snprintf(sc->why, sizeof sc->why, "field lengths disagree");
        return 0;
    }
    uint64_t seq = s_get64(r + 8);
    if (seq == 0 || seq < s->first_seq) {
        snprintf(sc->why, sizeof sc->why,
                 "seq %" PRIu64 " below the segment's first", seq);
        return 0;
    }
    return 1;
}

/* Whether p (room bytes before the limit) starts a plausible record:
 * lengths that fit and agree, a known kind, a seq in (after, most]. Its
 * length, or 0. The checksum is the caller's to check. */
static uint32_t s_plausible(const unsigned char *p, int64_t room,
                            uint64_t after, uint64_t most)
{
    uint32_t len = s_get32(p);
    if (len < S_FIXED || len > EVB_JOURNAL_MAX_RECORD ||
        (int64_t)len > room - S_PREFIX)
        return 0;
    uint16_t kind = s_get16(p + 24), target_len = s_get16(p + 26);
    if (kind == EVB_REC_EVENT ? target_len != 0
                              : kind != EVB_REC_REPLAY || target_len == 0)
        return 0;
    if ((uint64_t)S_FIXED + target_len + s_get32(p + 28) != len)
        return 0;
    uint64_t seq = s_get64(p + 8);
    return seq > after && seq <= most ? len : 0;
}

/* After a damaged record at `bad`: the offset of the first intact record
 * in [from, limit), -1 when there is none, -2 on a read error. Intact: a
 * plausible header, a seq after `after` by no more than the records that fit
 * between (so a record-like pattern inside an event's data is not taken for
 * one), and a checksum that holds. Records are not framed by a marker: the
 * length, kind and seq fields together rule out almost every offset before the
 * checksum. */
static int64_t s_resync(s_window_t *w, int fd, int64_t bad, int64_t from,
                        int64_t limit, uint64_t after)
{
    const int64_t least = S_PREFIX + S_FIXED; /* the smallest record */
    int64_t off = from;
    while (off + least <= limit) {
        const unsigned char *p;
        size_t want = S_READ_AHEAD;
        if ((int64_t)want > limit - off)
            want = (size_t)(limit - off);
        int got = s_window_get(w, fd, off, want, limit, &p);
        if (got <= 0)
            return got < 0 ? -2 : -1;
        int64_t avail = w->off + (int64_t)w->len - off;
        int64_t i = 0, next = -1;
        for (; i + least <= avail; i++) {
            int64_t at = off + i;
            uint64_t most = after + 2 + (uint64_t)((at - bad) / least);
            uint32_t len = s_plausible(p + i, limit - at, after, most);
            if (!len)
                continue;
            const unsigned char *r;
            got = s_window_get(w, fd, at, S_PREFIX + len, limit, &r);
            if (got <= 0)
                return got < 0 ? -2 : -1;
            if (evb_crc32c(0, r + S_PREFIX, len) == s_get32(r + 4))
                return at;
            next = at + 1; /* the window moved: look again from there */
            break;
        }
        off = next >= 0 ? next : off + i;
    }
    return -1;
}

static int s_add_skip(s_seg_t *s, int64_t off, int64_t next)
{
    s_skip_t *n = realloc(s->skips, (s->nskips + 1) * sizeof *n);
    if (!n)
        return -1;
    s->skips = n;
    s->skips[s->nskips++] = (s_skip_t){off, next};
    return 0;
}

/* Seqs from..to are gone: say so (ERROR, up to S_MAX_REPORTED lines) and
 * count them. */
static void s_report_lost(s_scan_t *sc, evb_journal_recovery_t *rec,
                          uint64_t from, uint64_t to, const char *where)
{
    rec->lost_records += to - from + 1;
    rec->lost_ranges++;
    char line[sizeof rec->detail];
    snprintf(line, sizeof line,
             "seq %" PRIu64 "..%" PRIu64 " (%" PRIu64 " record%s) lost: %s",
             from, to, to - from + 1, to == from ? "" : "s", where);
    if (sc->reported++ < S_MAX_REPORTED)
        evb_error("journal: %s", line);
    if (!rec->lost_detail[0])
        memcpy(rec->lost_detail, line, sizeof line);
}

/* A valid record with seq follows: close the damaged stretch before it,
 * or report seqs no segment holds. */
static void s_before_record(s_scan_t *sc, const s_seg_t *s, uint64_t seq,
                            evb_journal_recovery_t *rec)
{
    if (sc->damage.where[0]) {
        if (seq > sc->damage.after + 1)
            s_report_lost(sc, rec, sc->damage.after + 1, seq - 1,
                          sc->damage.where);
        sc->damage.where[0] = '\0';
    } else if (sc->last && seq > sc->last + 1) {
        char where[PATH_MAX + 80];
        snprintf(where, sizeof where,
                 "no segment holds them (%s starts at seq %" PRIu64
                 "; a segment deleted or set aside?)",
                 s->path, seq);
        s_report_lost(sc, rec, sc->last + 1, seq - 1, where);
    }
}

/* Cut a bad tail off the newest segment. 0, or -1 when the cut failed
 * (the segment is then left as it is and a new one started). */
static int s_cut_newest(s_seg_t *s, int fd, int64_t off, int64_t fsize,
                        s_scan_t *sc, evb_journal_recovery_t *rec)
{
    if (evb_journal_ftruncate_hook(fd, (off_t)off) < 0) {
        s_note(rec,
               "%s at offset %lld: %s; cannot cut it (%s): %lld bytes "
               "skipped",
               s->path, (long long)off, sc->why, strerror(errno),
               (long long)(fsize - off));
        rec->skipped_bytes += (uint64_t)(fsize - off);
        return -1;
    }
    s_note(rec, "%s at offset %lld: %s; cut %lld bytes", s->path,
           (long long)off, sc->why, (long long)(fsize - off));
    rec->truncated_bytes += (uint64_t)(fsize - off);
    s->disk = off;
    return 0;
}

/* The newest segment ends in a damaged or cut-short record (nothing
 * intact after off). A cut-short record whose seq can be read and is the
 * one due next is reported lost. A complete but damaged tail is reported
 * lost from the seq due next up to the highest seq a plausible record
 * header in it names (a damaged seq field, or several damaged records):
 * none of those seqs is given out again, for they may have been
 * acknowledged, or delivered and passed by a cursor. */
static void s_damaged_tail(s_scan_t *sc, const s_seg_t *s, int fd, int64_t off,
                           int64_t fsize, int torn, evb_journal_recovery_t *rec)
{
    const unsigned char *p;
    uint64_t due = s_due(sc, s), upto = 0;
    if (fsize - off >= S_PREFIX + 8 &&
        s_window_get(&sc->w, fd, off, S_PREFIX + 8, fsize, &p) > 0 &&
        s_get64(p + 8) == due)
        upto = due;
    if (!torn) {
        upto = due;
        const int64_t least = S_PREFIX + S_FIXED;
        for (int64_t at = off; at + least <= fsize; at++) {
            if (s_window_get(&sc->w, fd, at, (size_t)least, fsize, &p) <= 0)
                break;
            uint64_t most = due + 1 + (uint64_t)((at - off) / least);
            /* the length may be what is damaged: any room will do */
            uint32_t len = s_plausible(p, INT64_MAX / 2, due - 1, most);
            if (len && s_get64(p + 8) > upto)
                upto = s_get64(p + 8);
        }
    }
    if (!upto)
        return;
    char where[PATH_MAX + 160];
    snprintf(where, sizeof where,
             "%s record%s at the end of %s, offset %lld (%s)",
             torn ? "cut-short" : "damaged", upto > due ? "s" : "", s->path,
             (long long)off, sc->why);
    s_report_lost(sc, rec, due, upto, where);
    sc->tail_seq = upto;
}

/* Copy the damaged tail [off, fsize) of s to PATH.OFF.bad before it is
 * cut. 0, or -1 (reported) when it cannot be kept: then nothing is cut. */
static int s_keep_tail(const s_seg_t *s, int fd, int64_t off, int64_t fsize,
                       evb_journal_recovery_t *rec)
{
    char bad[PATH_MAX + 32];
    snprintf(bad, sizeof bad, "%s.%lld.bad", s->path, (long long)off);
    int out = open(bad, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = out < 0 ? -1 : 0;
    char buf[65536];
    for (int64_t at = off; rc == 0 && at < fsize;) {
        size_t want = fsize - at < (int64_t)sizeof buf ? (size_t)(fsize - at)
                                                       : sizeof buf;
        ssize_t r = pread(fd, buf, want, (off_t)at);
        if (r <= 0 ||
            s_pwrite_all(out, (unsigned char *)buf, (size_t)r, at - off) < 0)
            rc = -1;
        at += r > 0 ? r : 0;
    }
    if (rc == 0 && fsync(out) < 0)
        rc = -1;
    int saved = errno;
    if (out >= 0)
        close(out);
    if (rc < 0) {
        s_note(rec,
               "%s at offset %lld: cannot copy the damaged tail to %s (%s); "
               "it is left in place and a new segment started",
               s->path, (long long)off, bad, strerror(saved));
        rec->skipped_bytes += (uint64_t)(fsize - off);
        return -1;
    }
    s_note(rec, "%s at offset %lld: %lld damaged bytes copied to %s", s->path,
           (long long)off, (long long)(fsize - off), bad);
    return 0;
}

/* Whether bytes [off, end) of fd are all zero (0 also when unreadable). */
static int s_all_zero(s_window_t *w, int fd, int64_t off, int64_t end)
{
    while (off < end) {
        const unsigned char *p;
        size_t n =
            end - off < S_READ_AHEAD ? (size_t)(end - off) : S_READ_AHEAD;
        if (s_window_get(w, fd, off, n, end, &p) <= 0)
            return 0;
        for (size_t i = 0; i < n; i++)
            if (p[i])
                return 0;
        off += (int64_t)n;
    }
    return 1;
}

/* A segment cannot be read: recovery stops (the broker does not start)
 * rather than take an I/O error for damage and cut or skip records. */
static int s_read_failed(const s_seg_t *s, int64_t off)
{
    int saved = errno;
    evb_error("journal: cannot read %s at offset %lld: %s; not starting "
              "rather than treat intact records as damaged",
              s->path, (long long)off, strerror(saved));
    errno = saved;
    return -2;
}

/* Walk every record of s, stepping over damaged stretches to the next
 * intact record; -1 when s is the newest and its bad tail could not be
 * cut (so nothing may be appended to it). */
static int s_scan_segment(s_scan_t *sc, s_seg_t *s, int fd, int64_t fsize,
                          int newest, evb_journal_recovery_t *rec)
{
    int64_t off = S_HDR;
    int bad = 0, torn = 0;
    s_window_reset(&sc->w);
    while (off < fsize) {
        uint32_t len = 0;
        const unsigned char *p = NULL;
        int ok = s_check_record(sc, fd, s, off, fsize, &len, &p, &torn);
        if (ok < 0)
            return s_read_failed(s, off);
        if (!ok) {
            uint64_t after = s_due(sc, s) - 1;
            int64_t next = s_resync(&sc->w, fd, off, off + 1, fsize, after);
            if (next == -2)
                return s_read_failed(s, off);
            if (!bad)
                rec->bad_segments++;
            bad = 1;
            if (next < 0)
                break; /* nothing intact after it: a tail */
            if (s_add_skip(s, off, next) < 0) {
                errno = ENOMEM;
                return -2;
            }
            rec->skipped_bytes += (uint64_t)(next - off);
            if (!sc->damage.where[0]) {
                snprintf(sc->damage.where, sizeof sc->damage.where,
                         "damaged record in %s at offset %lld (%s)", s->path,
                         (long long)off, sc->why);
                sc->damage.after = after;
            }
            s_note(rec,
                   "%s at offset %lld: %s; %lld bytes skipped to the "
                   "next intact record",
                   s->path, (long long)off, sc->why, (long long)(next - off));
            off = next;
            continue;
        }
        uint64_t seq = s_get64(p + 8);
        off += S_PREFIX + len;
        if (seq <= sc->last) {
            sc->dups++;
            continue;
        }
        s_before_record(sc, s, seq, rec);
        int64_t ms = (int64_t)s_get64(p + 16);
        if (!s->first_rec)
            s->first_rec = seq;
        s->last_seq = seq;
        s->records++;
        if (ms > s->newest_ms)
            s->newest_ms = ms;
        sc->last = seq;
        rec->records++;
    }
    s->size = off;
    s->disk = fsize;
    atomic_store(&s->end, off);
    if (off >= fsize)
        return 0;
    /* a bad tail: no intact record after off */
    if (!torn && s_all_zero(&sc->w, fd, off, fsize)) {
        /* the file system extended the file but never wrote the data (a
         * power loss): an incomplete write, like a cut-short record */
        snprintf(sc->why, sizeof sc->why, "zeros to the end");
        torn = 1;
    }
    if (newest) {
        s_damaged_tail(sc, s, fd, off, fsize, torn, rec);
        /* only an incomplete last write is cut as it is; damaged bytes
         * are copied aside first, for a human */
        if (!torn && s_keep_tail(s, fd, off, fsize, rec) < 0)
            return -1;
        return s_cut_newest(s, fd, off, fsize, sc, rec);
    }
    if (s_add_skip(s, off, fsize) < 0) {
        errno = ENOMEM;
        return -2;
    }
    if (!sc->damage.where[0]) {
        snprintf(sc->damage.where, sizeof sc->damage.where,
                 "%s %s at offset %lld (%s)", s->path,
                 torn ? "ends early" : "is damaged from", (long long)off,
                 sc->why);
        sc->damage.after = s_due(sc, s) - 1;
    }
    s_note(rec, "%s at offset %lld: %s; skipped the last %lld bytes", s->path,
           (long long)off, sc->why, (long long)(fsize - off));
    rec->skipped_bytes += (uint64_t)(fsize - off);
    return 0;
}

/* Check one listed file and add it to the segment list. The newest one
 * stays open in *keep_fd (-1 otherwise) to become the current segment. */
static int s_recover_one(evb_journal_t *j, s_scan_t *sc, uint64_t first,
                         int newest, int *keep_fd, int *cut_failed,
                         evb_journal_recovery_t *rec)
{
    char path[PATH_MAX];
    int64_t fsize = 0;
    int hdr_bad = 0;
    s_seg_path(j, first, path, sizeof path);
    int fd = s_open_checked(path, first, newest, &fsize, &hdr_bad, rec);
    if (fd < 0)
        return 0;
    s_seg_t *s = s_seg_new(j, first);
    if (!s || s_list_reserve(j) < 0) {
        s_seg_free(s);
        close(fd);
        errno = ENOMEM;
        return -1;
    }
    int rc = s_scan_segment(sc, s, fd, fsize, newest, rec);
    if (rc == -2) {
        s_seg_free(s);
        close(fd);
        return -1;
    }
    if (hdr_bad && !s->records) {
        s_note(rec,
               "%s has a bad header and no intact record; set aside as "
               ".bad",
               path);
        rec->bad_segments++;
        s_set_aside(path);
        s_seg_free(s);
        close(fd);
        return 0;
    }
    if (hdr_bad) {
        s_note(rec,
               "%s has a bad header; its %" PRIu64 " intact records are "
               "kept",
               path, s->records);
        rec->bad_segments++;
    }
    j->segs[j->nsegs++] = s;
    if (rc < 0 || (newest && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY))
        *cut_failed = 1; /* so a new segment takes the appends */
    atomic_fetch_add(&j->bytes, s->disk);
    /* what a crashed broker wrote may not have reached the disk yet */
    if (evb_journal_fdatasync_hook(fd) < 0)
        s_fail(j, "fdatasync", path, errno);
    if (newest) {
        *keep_fd = fd;
    } else {
        close(fd);
        atomic_store(&s->sealed, 1);
    }
    return 0;
}

/* Where appending resumes: the newest segment when it is whole, else a
 * new one after every seq seen. */
static int s_recover_current(evb_journal_t *j, int fd, int cut_failed,
                             uint64_t last)
{
    s_seg_t *newest = j->nsegs ? j->segs[j->nsegs - 1] : NULL;
    /* never reuse a seq named by a segment, even an empty one */
    j->next_seq = last + 1;
    if (newest && newest->first_seq > j->next_seq)
        j->next_seq = newest->first_seq;
    if (newest && fd >= 0 && !cut_failed) {
        j->cur = newest;
        j->cur_fd = fd;
        return 0;
    }
    if (fd >= 0)
        close(fd);
    if (newest)
        atomic_store(&newest->sealed, 1);
    if (newest && newest->first_seq == j->next_seq)
        j->next_seq++; /* its name is taken */
    int nfd;
    s_seg_t *s = s_seg_create(j, j->next_seq, &nfd);
    if (!s)
        return -1;
    if (s_list_reserve(j) < 0) {
        close(nfd);
        s_seg_free(s);
        errno = ENOMEM;
        return -1;
    }
    j->segs[j->nsegs++] = s;
    j->cur = s;
    j->cur_fd = nfd;
    return 0;
}

static int s_recover(evb_journal_t *j, evb_journal_recovery_t *rec)
{
    uint64_t *firsts = NULL;
    size_t n = 0;
    if (s_list_dir(j, &firsts, &n) < 0)
        return -1;
    s_scan_t sc = {0};
    int keep_fd = -1, cut_failed = 0, rc = 0;
    rec->segments = n;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = s_recover_one(j, &sc, firsts[i], i == n - 1, &keep_fd, &cut_failed,
                           rec);
    free(firsts);
    free(sc.w.buf);
    if (rc < 0) {
        if (keep_fd >= 0)
            close(keep_fd);
        return -1;
    }
    if (sc.reported > S_MAX_REPORTED)
        evb_error("journal: %d more stretches of lost records not listed "
                  "(%" PRIu64 " records lost in all)",
                  sc.reported - S_MAX_REPORTED, rec->lost_records);
    if (sc.dups) {
        size_t used = strlen(rec->detail);
        snprintf(rec->detail + used, sizeof rec->detail - used,
                 "%s%" PRIu64 " records already seen (left by a repair) "
                 "skipped",
                 used ? "; " : "", sc.dups);
    }
    /* a damaged tail's seq is lost, not free: it may have been handed to
     * an instance, or acknowledged */
    uint64_t last = sc.tail_seq > sc.last ? sc.tail_seq : sc.last;
    rec->last_seq = sc.last;
    if (s_recover_current(j, keep_fd, cut_failed, last) < 0)
        return -1;
    s_update_first(j);
    rec->first_seq = atomic_load(&j->first_seq);
    atomic_store(&j->written_seq, j->next_seq - 1);
    atomic_store(&j->durable_seq, j->next_seq - 1);
    if (fsync(j->dirfd) < 0)
        s_fail(j, "fsync", j->dir, errno);
    return 0;
}

/* The journal directory belongs to one broker at a time: an flock'ed
 * lock file, held until close (the kernel lets go when the process dies,
 * however it dies). The holder's pid is in the file, for the message. */
static int s_lock_dir(evb_journal_t *j, char *err, size_t errsz)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/" S_LOCK_NAME, j->dir);
    j->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (j->lockfd < 0) {
        snprintf(err, errsz, "journal: cannot open the lock file %s: %s", path,
                 strerror(errno));
        return -1;
    }
    if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(j->lockfd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            snprintf(err, errsz,
                     "journal: %s is in use by another evbusd (pid %s, "
                     "holding %s); two brokers on one journal overwrite "
                     "each other's records",
                     j->dir, pid[0] ? pid : "unknown", path);
        else
            snprintf(err, errsz, "journal: cannot lock %s: %s", path,
                     strerror(e));
        return -1;
    }
    char line[32];
    int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
    if (ftruncate(j->lockfd, 0) < 0 ||
        pwrite(j->lockfd, line, (size_t)len, 0) != len)
        evb_warn("journal: cannot write the pid into %s: %s", path,
                 strerror(errno));
    return 0;
}

/* ------------------------------------------------------ open and close */

static void s_free(evb_journal_t *j)
{
    if (j->cur_fd >= 0)
        close(j->cur_fd);
    for (size_t i = 0; i < j->npending; i++)
        close(j->pending[i].fd);
    for (size_t i = 0; i < j->nsegs; i++)
        s_seg_free(j->segs[i]); /* readers were destroyed first */
    if (j->dirfd >= 0)
        close(j->dirfd);
    if (j->lockfd >= 0)
        close(j->lockfd); /* lets go of the lock */
    s_chunk_free(j->batch);
    s_chunk_free_all(j->unsynced);
    s_chunk_free_all(j->spare);
    free(j->pending);
    free(j->segs);
    free(j->dir);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

evb_journal_t *evb_journal_open(const evb_journal_config_t *cfg,
                                evb_journal_recovery_t *recovery, char *err,
                                size_t errsz)
{
    evb_journal_recovery_t scratch;
    evb_journal_recovery_t *rec = recovery ? recovery : &scratch;
    memset(rec, 0, sizeof *rec);
    if (!cfg || !cfg->dir || !cfg->dir[0]) {
        snprintf(err, errsz, "journal: no directory configured");
        return NULL;
    }
    if (strlen(cfg->dir) + S_NAME_LEN + 8 >= PATH_MAX) {
        snprintf(err, errsz,
                 "journal: the directory name %.64s... is too "
                 "long",
                 cfg->dir);
        return NULL;
    }
    struct stat st;
    int missing = stat(cfg->dir, &st) < 0 && errno == ENOENT;
    if (s_mkdir_p(cfg->dir) < 0) {
        snprintf(err, errsz, "journal: cannot create %s: %s", cfg->dir,
                 strerror(errno));
        return NULL;
    }
    if (missing)
        evb_info("journal: %s did not exist: created it, starting an empty "
                 "journal",
                 cfg->dir);
    rec->created = missing;
    evb_journal_t *j = calloc(1, sizeof *j);
    if (!j) {
        snprintf(err, errsz, "journal: out of memory opening %s", cfg->dir);
        return NULL;
    }
    pthread_mutex_init(&j->lock, NULL);
    j->cur_fd = -1;
    j->lockfd = -1;
    j->unsynced_tail = &j->unsynced;
    j->segment_size =
        cfg->segment_size > 0 ? cfg->segment_size : S_DEFAULT_SEGMENT;
    atomic_init(&j->healthy, 1);
    j->dir = strdup(cfg->dir);
    j->batch = s_chunk_new();
    j->dirfd = open(cfg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dir && j->dirfd >= 0 && s_lock_dir(j, err, errsz) < 0) {
        s_free(j);
        return NULL;
    }
    if (!j->dir || !j->batch || j->dirfd < 0 || s_recover(j, rec) < 0) {
        snprintf(err, errsz, "journal: cannot use %s: %s", cfg->dir,
                 strerror(errno));
        s_free(j);
        return NULL;
    }
    return j;
}

void evb_journal_close(evb_journal_t **self)
{
    evb_journal_t *j = self ? *self : NULL;
    if (!j)
        return;
    *self = NULL;
    if (evb_journal_flush(j) == 0)
        evb_journal_sync(j);
    uint64_t lost = j->next_seq - 1 - atomic_load(&j->durable_seq);
    if (lost)
        evb_warn("journal: closed with %" PRIu64 " records not on disk: %s",
                 lost, j->reason);
    s_free(j);
}

/* ---------------------------------------------------------- appending */

uint64_t evb_journal_append(evb_journal_t *j, const evb_record_t *r)
{
    if (!atomic_load_explicit(&j->healthy, memory_order_relaxed))
        return 0;
    uint64_t body = (uint64_t)S_FIXED + r->target_len + r->data_len;
    if (body > EVB_JOURNAL_MAX_RECORD)
        return 0;
    size_t n = S_PREFIX + (size_t)body;
    if (!j->batch && !(j->batch = s_chunk_new()))
        return 0;
    s_chunk_t *c = j->batch;
    if (c->cap - c->len < n && s_chunk_grow(c, n) < 0)
        return 0;
    unsigned char *p = c->data + c->len;
    uint64_t seq = j->next_seq++;
    s_put32(p, (uint32_t)body);
    s_put64(p + 8, seq);
    s_put64(p + 16, (uint64_t)r->accepted_ms);
    s_put16(p + 24, r->kind);
    s_put16(p + 26, r->target_len);
    s_put32(p + 28, r->data_len);
    if (r->target_len)
        memcpy(p + 32, r->target, r->target_len);
    if (r->data_len)
        memcpy(p + 32 + r->target_len, r->data, r->data_len);
    s_put32(p + 4, evb_crc32c(0, p + S_PREFIX, (size_t)body));
    c->len += n;
    if (!c->first_seq)
        c->first_seq = seq;
    c->last_seq = seq;
    c->records++;
    if (r->accepted_ms > c->newest_ms)
        c->newest_ms = r->accepted_ms;
    return seq;
}

int evb_journal_flush(evb_journal_t *j)
{
    if (!atomic_load(&j->healthy))
        return -1;
    s_chunk_t *c = j->batch;
    if (!c || !c->len)
        return 0;
    /* a segment's first seq names it: rotate only when the new one gets a
     * different name */
    if (j->cur->size >= j->segment_size && c->first_seq > j->cur->first_seq &&
        s_rotate(j, c->first_seq) < 0)
        return -1;
    s_seg_t *s = j->cur;
    if (s_pwrite_all(j->cur_fd, c->data, c->len, s->size) < 0) {
        s_fail(j, "write", s->path, errno);
        return -1;
    }
    c->seg_first = s->first_seq;
    c->off = s->size;
    s->size += (int64_t)c->len;
    s->disk = s->size;
    s_seg_account(s, c);
    atomic_fetch_add(&j->bytes, (int64_t)c->len);
    if (!atomic_load(&j->first_seq))
        atomic_store(&j->first_seq, c->first_seq);
    atomic_store_explicit(&s->end, s->size, memory_order_release);
    s_lock(j);
    *j->unsynced_tail = c;
    j->unsynced_tail = &c->next;
    j->batch = j->spare;
    if (j->spare) {
        j->spare = j->spare->next;
        j->batch->next = NULL;
        j->nspare--;
    }
    s_unlock(j);
    atomic_store_explicit(&j->written_seq, c->last_seq, memory_order_release);
    return 0;
}

/* ------------------------------------------------------------ syncing */

static int s_sync_fds(evb_journal_t *j, const s_pending_t *fds, size_t n,
                      int cur_fd, uint64_t cur_first, int dir)
{
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++)
        if (evb_journal_fdatasync_hook(fds[i].fd) < 0) {
            s_seg_path(j, fds[i].first_seq, path, sizeof path);
            s_fail(j, "fdatasync", path, errno);
            return -1;
        }
    if (evb_journal_fdatasync_hook(cur_fd) < 0) {
        s_seg_path(j, cur_first, path, sizeof path);
        s_fail(j, "fdatasync", path, errno);
        return -1;
    }
    if (dir && fsync(j->dirfd) < 0) {
        s_fail(j, "fsync", j->dir, errno);
        return -1;
    }
    return 0;
}

int evb_journal_sync(evb_journal_t *j)
{
    s_lock(j);
    uint64_t ws = atomic_load(&j->written_seq);
    if (!atomic_load(&j->healthy) || !j->cur) {
        s_unlock(j);
        return -1;
    }
    if (ws == atomic_load(&j->durable_seq) && !j->npending && !j->dir_dirty) {
        s_unlock(j);
        return 0;
    }
    /* take what must be synced; flush may rotate meanwhile, but it only
     * adds to pending and never closes cur_fd */
    s_pending_t *fds = j->pending;
    size_t n = j->npending;
    j->pending = NULL;
    j->npending = j->pendcap = 0;
    int cur_fd = j->cur_fd, dir = j->dir_dirty;
    uint64_t cur_first = j->cur->first_seq;
    j->dir_dirty = 0;
    s_unlock(j);

    int rc = s_sync_fds(j, fds, n, cur_fd, cur_first, dir);
    for (size_t i = 0; i < n; i++)
        close(fds[i].fd);
    free(fds);
    if (rc < 0)
        return -1;
    s_lock(j);
    s_release_synced_locked(j, ws);
    s_unlock(j);
    atomic_store_explicit(&j->durable_seq, ws, memory_order_release);
    return 0;
}

uint64_t evb_journal_written_seq(evb_journal_t *j)
{
    return atomic_load_explicit(&j->written_seq, memory_order_acquire);
}

uint64_t evb_journal_durable_seq(evb_journal_t *j)
{
    return atomic_load_explicit(&j->durable_seq, memory_order_acquire);
}

uint64_t evb_journal_first_seq(evb_journal_t *j)
{
    return atomic_load(&j->first_seq);
}

int evb_journal_healthy(evb_journal_t *j, char *why, size_t whysz)
{
    s_lock(j);
    int ok = atomic_load(&j->healthy);
    if (why && whysz)
        snprintf(why, whysz, "%s", ok ? "" : j->reason);
    s_unlock(j);
    return ok;
}

int64_t evb_journal_size(evb_journal_t *j)
{
    return atomic_load(&j->bytes);
}

/* ------------------------------------------------------------- repair */

/* Remove the segments that hold only records past durable (their content
 * is about to be written again), and close every fd still open for
 * writing or syncing. */
static void s_repair_drop(evb_journal_t *j, uint64_t durable)
{
    if (j->cur_fd >= 0)
        close(j->cur_fd);
    j->cur_fd = -1;
    j->cur = NULL;
    s_lock(j);
    for (size_t i = 0; i < j->npending; i++)
        close(j->pending[i].fd);
    j->npending = 0;
    while (j->nsegs && j->segs[j->nsegs - 1]->first_seq > durable) {
        s_seg_t *s = j->segs[j->nsegs - 1];
        if (unlink(s->path) < 0 && errno != ENOENT)
            evb_warn("journal: repair cannot delete %s: %s", s->path,
                     strerror(errno));
        atomic_fetch_sub(&j->bytes, s->disk);
        s_list_remove_locked(j, j->nsegs - 1);
    }
    s_unlock(j);
}

/* Best effort: cut the newest remaining segment back to the end of its
 * last durable record, so nothing follows a possibly torn one. If the cut
 * fails, the records past it are duplicates of what repair writes next,
 * and recovery skips them. */
static void s_repair_cut(evb_journal_t *j)
{
    if (!j->nsegs)
        return;
    s_seg_t *s = j->segs[j->nsegs - 1];
    int64_t cut = s->size; /* a failed write may have left bytes past it */
    uint64_t removed = 0;
    for (s_chunk_t *c = j->unsynced; c; c = c->next)
        if (c->seg_first == s->first_seq) {
            if (!removed)
                cut = c->off;
            removed += c->records;
        }
    int fd = open(s->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || evb_journal_ftruncate_hook(fd, (off_t)cut) < 0) {
        evb_warn("journal: repair cannot cut %s at %lld: %s", s->path,
                 (long long)cut, strerror(errno));
    } else {
        atomic_fetch_sub(&j->bytes, s->disk - cut);
        s->size = s->disk = cut;
        s->records -= removed < s->records ? removed : s->records;
        if (removed)
            s->last_seq = s->records ? atomic_load(&j->durable_seq) : 0;
        if (!s->records)
            s->first_rec = 0;
        atomic_store(&s->end, cut);
    }
    if (fd >= 0)
        close(fd);
    atomic_store(&s->sealed, 1);
}

/* Write the records of c past durable at the end of s. */
static int s_repair_write(evb_journal_t *j, int fd, s_seg_t *s,
                          const s_chunk_t *c, uint64_t durable)
{
    size_t at = 0;
    uint64_t records = c->records;
    /* chunks end where syncs end, so this only skips in odd cases */
    while (at < c->len && s_get64(c->data + at + 8) <= durable) {
        at += S_PREFIX + s_get32(c->data + at);
        records--;
    }
    if (at >= c->len)
        return 0;
    if (s_pwrite_all(fd, c->data + at, c->len - at, s->size) < 0) {
        s_fail(j, "write", s->path, errno);
        return -1;
    }
    s_chunk_t part = *c;
    part.first_seq = s_get64(c->data + at + 8);
    part.records = records;
    s->size += (int64_t)(c->len - at);
    s->disk = s->size;
    s_seg_account(s, &part);
    atomic_fetch_add(&j->bytes, (int64_t)(c->len - at));
    return 0;
}

/* Write everything not yet durable into s and sync it. */
static int s_repair_fill(evb_journal_t *j, int fd, s_seg_t *s, uint64_t durable)
{
    for (s_chunk_t *c = j->unsynced; c; c = c->next)
        if (s_repair_write(j, fd, s, c, durable) < 0)
            return -1;
    if (j->batch && j->batch->len &&
        s_repair_write(j, fd, s, j->batch, durable) < 0)
        return -1;
    if (evb_journal_fdatasync_hook(fd) < 0) {
        s_fail(j, "fdatasync", s->path, errno);
        return -1;
    }
    if (fsync(j->dirfd) < 0) {
        s_fail(j, "fsync", j->dir, errno);
        return -1;
    }
    return 0;
}

/* Healthy again: everything appended is written and durable. */
static void s_repair_done(evb_journal_t *j, s_seg_t *s)
{
    uint64_t last = j->next_seq - 1;
    s_lock(j);
    while (j->unsynced) {
        s_chunk_t *c = j->unsynced;
        j->unsynced = c->next;
        s_chunk_recycle_locked(j, c);
    }
    j->unsynced_tail = &j->unsynced;
    j->dir_dirty = 0;
    j->repairing = 0;
    j->reason[0] = '\0';
    atomic_store(&j->healthy, 1);
    s_unlock(j);
    if (j->batch)
        s_chunk_clear(j->batch);
    atomic_store(&s->end, s->size);
    s_update_first(j);
    atomic_store(&j->written_seq, last);
    atomic_store(&j->durable_seq, last);
}

int evb_journal_repair(evb_journal_t *j)
{
    if (atomic_load(&j->healthy))
        return 0;
    uint64_t durable = atomic_load(&j->durable_seq);
    s_repair_drop(j, durable);
    s_repair_cut(j);
    /* still unhealthy throughout, but a failure now says why it still
     * fails, not why it first failed */
    s_lock(j);
    j->repairing = 1;
    s_unlock(j);
    int fd;
    s_seg_t *s = s_seg_create(j, durable + 1, &fd);
    if (!s)
        return -1;
    if (s_make_current(j, s, fd) < 0) {
        close(fd);
        s_seg_free(s);
        s_fail(j, "create", j->dir, ENOMEM);
        return -1;
    }
    if (s_repair_fill(j, fd, s, durable) < 0)
        return -1;
    s_repair_done(j, s);
    evb_info("journal: repaired; %s holds every record after seq %" PRIu64,
             s->path, durable);
    return 0;
}

/* ------------------------------------------------------------ reading */

evb_journal_reader_t *evb_journal_reader_new(evb_journal_t *j,
                                             uint64_t from_seq)
{
    evb_journal_reader_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->j = j;
    r->fd = -1;
    r->next = from_seq ? from_seq : 1;
    return r;
}

void evb_journal_reader_destroy(evb_journal_reader_t **self)
{
    evb_journal_reader_t *r = self ? *self : NULL;
    if (!r)
        return;
    *self = NULL;
    s_lock(r->j);
    s_seg_unref_locked(r->seg);
    s_unlock(r->j);
    if (r->fd >= 0)
        close(r->fd);
    free(r->w.buf);
    free(r);
}

uint64_t evb_journal_reader_position(const evb_journal_reader_t *r)
{
    return r->next;
}

/* The segment r reads after its current one: the next in the list, or,
 * when its segment left the list (retention, repair) or it has none yet,
 * the one holding its position (the oldest when that is gone). Under
 * lock; NULL when there is none yet. */
static s_seg_t *s_next_segment(const evb_journal_t *j, const s_seg_t *from,
                               uint64_t pos)
{
    if (!j->nsegs)
        return NULL;
    if (from && !from->deleted) {
        ptrdiff_t i = s_find(j, from->first_seq);
        return (size_t)(i + 1) < j->nsegs ? j->segs[i + 1] : NULL;
    }
    ptrdiff_t i = s_find(j, pos);
    return j->segs[i < 0 ? 0 : i];
}

/* Attach r to the segment it reads next: 1, 0 when there is none yet
 * (r stays where it is), -1 when it cannot be opened. */
static int s_reader_move(evb_journal_reader_t *r)
{
    evb_journal_t *j = r->j;
    s_lock(j);
    s_seg_t *to = s_next_segment(j, r->seg, r->next);
    if (!to || to == r->seg) {
        s_unlock(j);
        return 0;
    }
    to->refs++;
    s_seg_unref_locked(r->seg);
    r->seg = to;
    s_unlock(j);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = open(to->path, O_RDONLY | O_CLOEXEC);
    r->off = S_HDR;
    r->skip = 0;
    r->ski = 0;
    r->passed = to->first_seq ? to->first_seq - 1 : 0;
    r->damaged_at = -1;
    s_window_reset(&r->w);
    if (r->fd >= 0)
        return 1;
    if (errno == ENOENT) { /* deleted since we looked: move on */
        r->skip = 1;
        return 1;
    }
    evb_error("journal: reader cannot open %s: %s", to->path, strerror(errno));
    /* let go, so the next call looks again by position */
    s_lock(j);
    s_seg_unref_locked(r->seg);
    r->seg = NULL;
    s_unlock(j);
    return -1;
}

/* The record at r->off, when it lies wholly below end: 1, 0 when not
 * there yet, -1 when it is damaged (*why says how). */
static int s_reader_record(evb_journal_reader_t *r, int64_t end,
                           const unsigned char **p, uint32_t *len,
                           const char **why)
{
    int rc = s_window_get(&r->w, r->fd, r->off, S_PREFIX, end, p);
    if (rc <= 0) {
        *why = strerror(errno);
        return rc;
    }
    *len = s_get32(*p);
    *why = "bad record length";
    if (*len < S_FIXED || *len > EVB_JOURNAL_MAX_RECORD)
        return -1;
    /* records below end are whole (written before end moved past them):
     * one that runs past it has a damaged length */
    *why = "record runs past the end";
    if (r->off + S_PREFIX + *len > end)
        return -1;
    rc = s_window_get(&r->w, r->fd, r->off, S_PREFIX + *len, end, p);
    if (rc <= 0) { /* 0: cut by a repair meanwhile; the next call moves on */
        *why = strerror(errno);
        return rc;
    }
    *why = "checksum mismatch";
    return evb_crc32c(0, *p + S_PREFIX, *len) == s_get32(*p + 4) ? 1 : -1;
}

/* At the start of a stretch recovery found damaged: step over it. */
static int s_reader_skip(evb_journal_reader_t *r)
{
    const s_seg_t *s = r->seg; /* skips are fixed before any reader */
    while (r->ski < s->nskips && s->skips[r->ski].off < r->off)
        r->ski++;
    if (r->ski == s->nskips || s->skips[r->ski].off != r->off)
        return 0;
    r->off = s->skips[r->ski++].next;
    return 1;
}

/* A damaged record recovery did not know of (damaged while the broker
 * runs): find the next intact record the way recovery does. 1 when r is
 * now at one, 0 when there is none below end (yet). */
static int s_reader_damaged(evb_journal_reader_t *r, int64_t end,
                            const char *why)
{
    if (r->damaged_at != r->off) {
        evb_error("journal: %s at offset %lld: %s; reading on from the next "
                  "intact record",
                  r->seg->path, (long long)r->off, why);
        r->damaged_at = r->off;
        r->searched = r->off + 1;
    }
    int64_t next =
        s_resync(&r->w, r->fd, r->damaged_at, r->searched, end, r->passed);
    if (next < 0) {
        /* records are appended whole below end: none starts in between */
        if (end > r->searched)
            r->searched = end;
        return 0;
    }
    r->off = next;
    r->damaged_at = -1;
    return 1;
}

static void s_fill_record(const unsigned char *p, evb_record_t *out)
{
    out->seq = s_get64(p + 8);
    out->accepted_ms = (int64_t)s_get64(p + 16);
    out->kind = s_get16(p + 24);
    out->target_len = s_get16(p + 26);
    out->data_len = s_get32(p + 28);
    out->target = (const char *)p + 32;
    out->data = p + 32 + out->target_len;
}

int evb_journal_read(evb_journal_reader_t *r, uint64_t upto, evb_record_t *out,
                     uint64_t *lost)
{
    if (lost)
        *lost = 0;
    for (;;) {
        uint64_t written = evb_journal_written_seq(r->j);
        uint64_t cap = upto < written ? upto : written;
        if (r->next > cap)
            return 0;
        if (!r->seg) {
            int rc = s_reader_move(r);
            if (rc <= 0)
                return rc;
        }
        /* sealed first: a reader that sees it sees the final end */
        int sealed =
            atomic_load_explicit(&r->seg->sealed, memory_order_acquire);
        int64_t end = atomic_load_explicit(&r->seg->end, memory_order_acquire);
        if (r->skip || r->off + S_PREFIX > end) {
            if (!sealed)
                return 0;
            int rc = s_reader_move(r);
            if (rc <= 0)
                return rc;
            continue;
        }
        if (s_reader_skip(r))
            continue;
        const unsigned char *p = NULL;
        const char *why = "";
        uint32_t len = 0;
        int rc = s_reader_record(r, end, &p, &len, &why);
        if (rc == 0)
            return 0;
        if (rc < 0) {
            if (s_reader_damaged(r, end, why))
                continue;
            if (!sealed)
                return 0;
            r->skip = 1; /* the seqs it held show as lost on the next */
            continue;
        }
        uint64_t seq = s_get64(p + 8);
        if (seq > r->passed)
            r->passed = seq;
        if (seq < r->next) { /* before from_seq, or a repair's duplicate */
            r->off += S_PREFIX + len;
            continue;
        }
        if (seq > cap)
            return 0;
        s_fill_record(p, out);
        if (lost)
            *lost = seq - r->next;
        r->next = seq + 1;
        r->off += S_PREFIX + len;
        return 1;
    }
}

/* ---------------------------------------------------------- retention */

/* How many of s's records a consumer at keep_from has not had. */
static uint64_t s_unconsumed(const s_seg_t *s, uint64_t keep_from)
{
    if (!s->records || s->last_seq < keep_from)
        return 0;
    if (keep_from <= s->first_rec)
        return s->records;
    uint64_t n = s->last_seq - keep_from + 1;
    return n < s->records ? n : s->records;
}

/* Delete the oldest segment; -1 when the file cannot be deleted. */
static int s_delete_oldest(evb_journal_t *j, uint64_t unconsumed,
                           const char *limit)
{
    s_seg_t *s = j->segs[0];
    if (unlink(s->path) < 0 && errno != ENOENT) {
        evb_error("journal: cannot delete %s: %s", s->path, strerror(errno));
        return -1;
    }
    if (unconsumed)
        evb_warn("journal: deleted %s with %" PRIu64
                 " unconsumed records (seq up to %" PRIu64 ") for the %s "
                 "limit",
                 s->path, unconsumed, s->last_seq, limit);
    atomic_fetch_sub(&j->bytes, s->disk);
    s_lock(j);
    s_list_remove_locked(j, 0);
    s_unlock(j);
    return 0;
}

int evb_journal_retain(evb_journal_t *j, uint64_t keep_from, int64_t max_bytes,
                       int64_t max_age_ms, int64_t now_ms, uint64_t *forced)
{
    int deleted = 0;
    uint64_t unconsumed_total = 0;
    /* the last segment is the one being written (or about to be) */
    while (j->nsegs > 1 && j->segs[0] != j->cur) {
        s_seg_t *s = j->segs[0];
        int consumed = !s->records || s->last_seq < keep_from;
        int too_big = max_bytes > 0 && atomic_load(&j->bytes) > max_bytes;
        int too_old =
            max_age_ms > 0 && s->records && s->newest_ms < now_ms - max_age_ms;
        if (!consumed && !too_big && !too_old)
            break;
        uint64_t unconsumed = consumed ? 0 : s_unconsumed(s, keep_from);
        if (s_delete_oldest(j, unconsumed, too_big ? "size" : "age") < 0)
            break;
        unconsumed_total += unconsumed;
        deleted++;
    }
    if (deleted)
        s_update_first(j);
    if (forced)
        *forced = unconsumed_total;
    return deleted;
}
