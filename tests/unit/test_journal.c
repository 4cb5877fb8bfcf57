/* The durable journal (core/journal.c) and its checksum (core/crc32c.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "journal.h"
#include "testlog.h"
#include "testmain.h"

/* journal.c's and crc32c.c's test hooks: deliberately not in journal.h */
extern ssize_t (*evb_journal_pwrite_hook)(int, const void *, size_t, off_t);
extern int (*evb_journal_fdatasync_hook)(int);
extern int (*evb_journal_ftruncate_hook)(int, off_t);
extern ssize_t (*evb_journal_pread_hook)(int, void *, size_t, off_t);
uint32_t evb_crc32c_portable(uint32_t crc, const void *data, size_t n);

#define S_BASE_MS 1700000000000LL

/* ------------------------------------------------------------ helpers */

/* A fresh directory for one journal, inside the suite's scratch one. */
static const char *s_newdir(void)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/jXXXXXX", s_dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    return dir;
}

/* Every record's content follows from its seq, so a reader can check any
 * record it gets, byte for byte. */
typedef struct s_payload {
    evb_record_t r;
    char target[32];
    unsigned char data[1024];
} s_payload_t;

static void s_make(uint64_t seq, s_payload_t *p)
{
    memset(&p->r, 0, sizeof p->r);
    p->r.accepted_ms = S_BASE_MS + (int64_t)seq;
    p->r.kind = seq % 5 == 0 ? EVB_REC_REPLAY : EVB_REC_EVENT;
    if (p->r.kind == EVB_REC_REPLAY) {
        int n =
            snprintf(p->target, sizeof p->target, "webhook-%d", (int)(seq % 3));
        p->r.target = p->target;
        p->r.target_len = (uint16_t)n;
    }
    p->r.data_len = (uint32_t)(20 + (seq * 37) % 300);
    for (uint32_t i = 0; i < p->r.data_len; i++)
        p->data[i] = (unsigned char)(seq * 31 + i * 7);
    p->r.data = p->data;
}

static int s_same(const evb_record_t *got, uint64_t seq)
{
    s_payload_t want;
    s_make(seq, &want);
    return got->seq == seq && got->accepted_ms == want.r.accepted_ms &&
           got->kind == want.r.kind && got->target_len == want.r.target_len &&
           memcmp(got->target, want.target, want.r.target_len) == 0 &&
           got->data_len == want.r.data_len &&
           memcmp(got->data, want.data, want.r.data_len) == 0;
}

static evb_journal_t *s_open(const char *dir, int64_t segment_size,
                             evb_journal_recovery_t *rec)
{
    evb_journal_config_t cfg = {dir, segment_size};
    evb_journal_recovery_t scratch;
    char err[256] = "";
    evb_journal_t *j =
        evb_journal_open(&cfg, rec ? rec : &scratch, err, sizeof err);
    if (!j)
        fprintf(stderr, "\n  open %s: %s\n", dir, err);
    return j;
}

/* Append seqs from..to (checking each gets the seq it should), flushing
 * every `batch` records. */
static void s_append(evb_journal_t *j, uint64_t from, uint64_t to, int batch)
{
    s_payload_t p;
    int n = 0;
    for (uint64_t seq = from; seq <= to; seq++) {
        s_make(seq, &p);
        uint64_t got = evb_journal_append(j, &p.r);
        if (got != seq) {
            CU_FAIL("append returned the wrong seq");
            fprintf(stderr, "\n  append: got %" PRIu64 ", wanted %" PRIu64, got,
                    seq);
            return;
        }
        if (++n == batch) {
            CU_ASSERT_EQUAL(evb_journal_flush(j), 0);
            n = 0;
        }
    }
    CU_ASSERT_EQUAL(evb_journal_flush(j), 0);
}

/* A journal holding seqs 1..n, closed. */
static void s_build(const char *dir, uint64_t n, int64_t segment_size)
{
    evb_journal_t *j = s_open(dir, segment_size, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s_append(j, 1, n, 7);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
}

/* Read everything up to written_seq from `from`: 1 when the reader returns
 * exactly the seqs in want[0..nwant) in order, with their content. *lost
 * totals what the reader reported lost. */
static int s_read_expect(evb_journal_t *j, uint64_t from, const uint64_t *want,
                         size_t nwant, uint64_t *lost_total)
{
    evb_journal_reader_t *r = evb_journal_reader_new(j, from);
    evb_record_t rec;
    uint64_t lost = 0, lsum = 0;
    size_t i = 0;
    int ok = 1, rc;
    while ((rc = evb_journal_read(r, UINT64_MAX, &rec, &lost)) == 1) {
        lsum += lost;
        if (i >= nwant || !s_same(&rec, want[i])) {
            fprintf(stderr, "\n  read #%zu: seq %" PRIu64 ", wanted %" PRIu64,
                    i, rec.seq, i < nwant ? want[i] : 0);
            ok = 0;
            break;
        }
        i++;
    }
    if (ok && (rc != 0 || i != nwant)) {
        fprintf(stderr, "\n  read %zu of %zu records, then %d", i, nwant, rc);
        ok = 0;
    }
    evb_journal_reader_destroy(&r);
    if (lost_total)
        *lost_total = lsum;
    return ok;
}

/* 1 when a reader from seq 1 returns exactly seqs first..last. */
static int s_read_range(evb_journal_t *j, uint64_t first, uint64_t last)
{
    size_t n = last >= first ? (size_t)(last - first + 1) : 0;
    uint64_t *want = malloc((n ? n : 1) * sizeof *want);
    for (size_t i = 0; i < n; i++)
        want[i] = first + i;
    int ok = s_read_expect(j, 1, want, n, NULL);
    free(want);
    return ok;
}

static int s_is_segment(const struct dirent *e)
{
    return strncmp(e->d_name, "seg-", 4) == 0 && strstr(e->d_name, ".evj") &&
           strcmp(strstr(e->d_name, ".evj"), ".evj") == 0;
}

/* The segment files in dir, oldest first; path of the i-th (from the end
 * when i < 0) in out. Returns how many there are. */
static int s_segment(const char *dir, int i, char *out, size_t outsz)
{
    struct dirent **names;
    int n = scandir(dir, &names, s_is_segment, alphasort);
    if (n < 0)
        return 0;
    int k = i < 0 ? n + i : i;
    if (out && k >= 0 && k < n)
        snprintf(out, outsz, "%s/%s", dir, names[k]->d_name);
    for (int m = 0; m < n; m++)
        free(names[m]);
    free(names);
    return n;
}

static int s_count_suffix(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name), sl = strlen(suffix);
        if (l > sl && strcmp(e->d_name + l - sl, suffix) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static unsigned char *s_slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    CU_ASSERT_TRUE_FATAL(fd >= 0 && fstat(fd, &st) == 0);
    unsigned char *b = malloc((size_t)st.st_size + 1);
    CU_ASSERT_EQUAL_FATAL(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void s_spit(const char *path, const unsigned char *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL_FATAL(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* Offset of the last record in a segment image. */
static size_t s_last_record(const unsigned char *b, size_t len)
{
    size_t off = 32, last = 32;
    while (off + 8 <= len) {
        uint32_t l = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                     (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
        last = off;
        off += 8 + l;
    }
    return last;
}

/* After a repair of the newest segment: n records, detail names the file
 * and the offset, appending resumes at `next` (n + 1, or n + 2 when the
 * record cut off was complete and named seq n + 1: that seq is lost, not
 * given out again) and survives a reopen. */
static int s_check_recovered(const char *dir, const char *seg, size_t off,
                             uint64_t n, uint64_t cut, uint64_t next)
{
    evb_journal_recovery_t rec;
    evb_journal_t *j = s_open(dir, 0, &rec);
    if (!j)
        return 0;
    char where[600];
    snprintf(where, sizeof where, "%s at offset %zu:", seg, off);
    uint64_t lost_seqs = next - n - 1;
    int ok = rec.records == n && rec.last_seq == n &&
             rec.truncated_bytes == cut && rec.bad_segments == 1 &&
             rec.lost_records == lost_seqs &&
             strstr(rec.detail, where) != NULL && s_read_range(j, 1, n);
    s_append(j, next, next, 1);
    ok = ok && evb_journal_sync(j) == 0;
    evb_journal_close(&j);
    j = s_open(dir, 0, &rec);
    uint64_t *want = malloc((n + 1) * sizeof *want), lost = 0;
    for (uint64_t i = 0; i < n; i++)
        want[i] = i + 1;
    want[n] = next;
    ok = ok && j && rec.records == n + 1 && rec.truncated_bytes == 0 &&
         rec.detail[0] == '\0' && s_read_expect(j, 1, want, n + 1, &lost) &&
         lost == lost_seqs;
    free(want);
    evb_journal_close(&j);
    if (!ok)
        fprintf(stderr,
                "\n  recovery: records %" PRIu64 " truncated %" PRIu64
                " lost %" PRIu64 " detail \"%s\" (wanted %" PRIu64
                " cut %" PRIu64 " next %" PRIu64 ")",
                rec.records, rec.truncated_bytes, rec.lost_records, rec.detail,
                n, cut, next);
    return ok;
}

/* ------------------------------------------------------------ crc32c */

static void test_crc32c_matches_the_standard_check_values(void)
{
    unsigned char zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    uint32_t (*fns[2])(uint32_t, const void *, size_t) = {evb_crc32c,
                                                          evb_crc32c_portable};
    for (int f = 0; f < 2; f++) {
        CU_ASSERT_EQUAL(fns[f](0, "123456789", 9), 0xE3069283u);
        CU_ASSERT_EQUAL(fns[f](0, zeros, 32), 0x8A9136AAu);
        CU_ASSERT_EQUAL(fns[f](0, ones, 32), 0x62A8AB43u);
        CU_ASSERT_EQUAL(fns[f](0, inc, 32), 0x46DD794Eu); /* RFC 3720 */
        CU_ASSERT_EQUAL(fns[f](0, "", 0), 0u);
    }
}

static void test_crc32c_streamed_in_pieces_equals_one_shot(void)
{
    unsigned char buf[1031];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 3));
    uint32_t whole = evb_crc32c(0, buf, sizeof buf);
    CU_ASSERT_EQUAL(evb_crc32c_portable(0, buf, sizeof buf), whole);
    int bad = 0;
    for (size_t cut = 0; cut <= sizeof buf; cut++) {
        uint32_t a =
            evb_crc32c(evb_crc32c(0, buf, cut), buf + cut, sizeof buf - cut);
        uint32_t b = evb_crc32c_portable(evb_crc32c_portable(0, buf, cut),
                                         buf + cut, sizeof buf - cut);
        bad += a != whole || b != whole;
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* unaligned starts take the same path to the same answer */
    for (size_t s = 1; s < 8; s++)
        CU_ASSERT_EQUAL(evb_crc32c(0, buf + s, 500),
                        evb_crc32c_portable(0, buf + s, 500));
}

/* ---------------------------------------------------- append and read */

static void test_reopen_returns_every_record_byte_for_byte(void)
{
    const char *dir = s_newdir();
    s_build(dir, 1000, 0);
    evb_journal_recovery_t rec;
    evb_journal_t *j = s_open(dir, 0, &rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(rec.segments, 1);
    CU_ASSERT_EQUAL(rec.records, 1000);
    CU_ASSERT_EQUAL(rec.first_seq, 1);
    CU_ASSERT_EQUAL(rec.last_seq, 1000);
    CU_ASSERT_EQUAL(rec.truncated_bytes + rec.skipped_bytes, 0);
    CU_ASSERT_EQUAL(rec.bad_segments, 0);
    CU_ASSERT_STRING_EQUAL(rec.detail, "");
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 1000);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 1000);
    CU_ASSERT_EQUAL(evb_journal_first_seq(j), 1);
    CU_ASSERT_TRUE(s_read_range(j, 1, 1000));
    /* appending resumes right after */
    s_append(j, 1001, 1010, 4);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
    j = s_open(dir, 0, &rec);
    CU_ASSERT_EQUAL(rec.records, 1010);
    CU_ASSERT_EQUAL(rec.segments, 1);
    CU_ASSERT_TRUE(s_read_range(j, 1, 1010));
    evb_journal_close(&j);
    CU_ASSERT_PTR_NULL(j);
    evb_journal_close(&j); /* a second close is harmless */
}

static void test_records_are_readable_after_flush_and_durable_after_sync(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 1);
    evb_record_t rec;
    s_payload_t p;
    for (uint64_t seq = 1; seq <= 3; seq++) {
        s_make(seq, &p);
        CU_ASSERT_EQUAL(evb_journal_append(j, &p.r), seq);
    }
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 0);
    CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 0);
    CU_ASSERT_EQUAL(evb_journal_flush(j), 0);
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 3);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 0);
    for (uint64_t seq = 1; seq <= 3; seq++) {
        CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 1);
        CU_ASSERT_TRUE(s_same(&rec, seq));
    }
    CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 0);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 3);
    CU_ASSERT_EQUAL(evb_journal_reader_position(r), 4);
    evb_journal_reader_destroy(&r);
    evb_journal_close(&j);
}

static void test_append_refuses_a_record_over_the_size_limit(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    static const char one = 'x';
    evb_record_t r = {
        0, 0, EVB_REC_EVENT, 0, NULL, EVB_JOURNAL_MAX_RECORD - 24 + 1, &one};
    CU_ASSERT_EQUAL(evb_journal_append(j, &r), 0);
    CU_ASSERT_TRUE(evb_journal_healthy(j, NULL, 0));
    s_append(j, 1, 1, 1); /* the refused one took no seq */
    evb_journal_close(&j);
}

static void test_rotation_spreads_records_over_segments_readers_cross_them(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 4096, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s_append(j, 1, 2000, 10);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    int nseg = s_segment(dir, 0, NULL, 0);
    CU_ASSERT_TRUE(nseg > 50);
    CU_ASSERT_TRUE(s_read_range(j, 1, 2000));
    /* a segment is named for its first record, the one after the
     * previous segment's last */
    char path[600];
    size_t len;
    s_segment(dir, 0, path, sizeof path);
    unsigned char *img = s_slurp(path, &len);
    size_t last = s_last_record(img, len);
    uint64_t last_seq = (uint64_t)img[last + 8] | (uint64_t)img[last + 9] << 8;
    free(img);
    s_segment(dir, 1, path, sizeof path);
    img = s_slurp(path, &len);
    uint64_t first_seq = (uint64_t)img[40] | (uint64_t)img[41] << 8;
    free(img);
    CU_ASSERT_EQUAL(first_seq, last_seq + 1);
    CU_ASSERT_EQUAL(strtoull(strrchr(path, '-') + 1, NULL, 10), first_seq);
    evb_journal_close(&j);
    evb_journal_recovery_t rec;
    j = s_open(dir, 4096, &rec);
    CU_ASSERT_EQUAL(rec.segments, (uint64_t)nseg);
    CU_ASSERT_EQUAL(rec.records, 2000);
    CU_ASSERT_STRING_EQUAL(rec.detail, "");
    CU_ASSERT_TRUE(s_read_range(j, 1, 2000));
    evb_journal_close(&j);
}

/* Counts what fdatasync is asked to sync, and syncs it. */
static int s_synced_fds[64];
static int s_nsynced;

static int s_counting_fdatasync(int fd)
{
    if (s_nsynced < 64)
        s_synced_fds[s_nsynced++] = fd;
    return fdatasync(fd);
}

static void test_sync_after_rotation_syncs_the_previous_segment_too(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 64, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s_append(j, 1, 1, 1); /* fills the first segment past 64 bytes */
    s_append(j, 2, 2, 1); /* the second segment */
    CU_ASSERT_EQUAL(s_segment(dir, 0, NULL, 0), 2);
    s_nsynced = 0;
    evb_journal_fdatasync_hook = s_counting_fdatasync;
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    CU_ASSERT_EQUAL(s_nsynced, 2);
    CU_ASSERT_NOT_EQUAL(s_synced_fds[0], s_synced_fds[1]);
    /* nothing new: nothing to sync */
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    CU_ASSERT_EQUAL(s_nsynced, 2);
    evb_journal_fdatasync_hook = fdatasync;
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 2);
    evb_journal_close(&j);
}

/* Appends and flushes 4..6 while the first sync is in its fdatasync, as
 * the main thread may. */
static evb_journal_t *s_racing;

static int s_fdatasync_while_appending(int fd)
{
    if (s_racing) {
        evb_journal_t *j = s_racing;
        s_racing = NULL;
        s_append(j, 4, 6, 3);
    }
    return fdatasync(fd);
}

static void test_sync_makes_durable_only_what_was_written_when_it_began(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s_append(j, 1, 3, 3);
    s_racing = j;
    evb_journal_fdatasync_hook = s_fdatasync_while_appending;
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_fdatasync_hook = fdatasync;
    CU_ASSERT_PTR_NULL(s_racing);
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 6);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 3);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 6);
    evb_journal_close(&j);
}

/* ----------------------------------------------------------- recovery */

static void test_recovery_cuts_a_torn_last_record_at_every_offset(void)
{
    const char *dir = s_newdir();
    s_build(dir, 20, 0);
    char seg[600];
    s_segment(dir, -1, seg, sizeof seg);
    size_t len;
    unsigned char *img = s_slurp(seg, &len);
    size_t last = s_last_record(img, len);
    CU_ASSERT_TRUE_FATAL(last > 32 && last < len);
    int bad = 0;
    for (size_t cut = last + 1; cut < len; cut++) {
        s_spit(seg, img, cut);
        /* once the seq field is there, seq 20 is lost, not reused */
        bad += !s_check_recovered(dir, seg, last, 19, cut - last,
                                  cut >= last + 16 ? 21 : 20);
    }
    CU_ASSERT_EQUAL(bad, 0);
    free(img);
}

static void test_recovery_cuts_a_bit_flipped_last_record(void)
{
    const char *dir = s_newdir();
    s_build(dir, 20, 0);
    char seg[600];
    s_segment(dir, -1, seg, sizeof seg);
    size_t len;
    unsigned char *img = s_slurp(seg, &len);
    size_t last = s_last_record(img, len);
    int bad = 0;
    /* every byte: length, checksum, header fields, target, data */
    for (size_t at = last; at < len; at++) {
        img[at] ^= (unsigned char)(1u << (at % 8));
        s_spit(seg, img, len);
        /* seq 20 is lost and never reused, whichever field the flip hit,
         * its seq field included */
        img[at] ^= (unsigned char)(1u << (at % 8));
        bad += !s_check_recovered(dir, seg, last, 19, len - last, 21);
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* and the damaged bytes were kept aside before the cut */
    char kept[700];
    snprintf(kept, sizeof kept, "%s.%zu.bad", seg, last);
    CU_ASSERT_EQUAL(access(kept, F_OK), 0);
    free(img);
}

/* Reads at or past this offset fail with EIO. */
static off_t s_eio_from;
static ssize_t s_eio_pread(int fd, void *buf, size_t n, off_t off)
{
    if (off + (off_t)n > s_eio_from) {
        errno = EIO;
        return -1;
    }
    return pread(fd, buf, n, off);
}

/* A read error is not damage: recovery refuses to go on, and every byte of
 * the segment is still there for the next try. */
static void test_a_read_error_in_recovery_cuts_nothing(void)
{
    const char *dir = s_newdir();
    s_build(dir, 20, 0);
    char seg[600];
    s_segment(dir, -1, seg, sizeof seg);
    size_t len;
    unsigned char *img = s_slurp(seg, &len);
    s_eio_from = (off_t)s_last_record(img, len);
    evb_journal_pread_hook = s_eio_pread;
    s_log_reset();
    evb_journal_recovery_t rec;
    evb_journal_config_t cfg = {dir, 0};
    char err[256] = "";
    evb_journal_t *j = evb_journal_open(&cfg, &rec, err, sizeof err);
    evb_journal_pread_hook = pread;
    s_log_read();
    CU_ASSERT_PTR_NULL(j);
    evb_journal_close(&j);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Input/output error"));
    CU_ASSERT_TRUE(s_logged("cannot read %s at offset", seg));
    size_t after_len;
    unsigned char *after = s_slurp(seg, &after_len);
    CU_ASSERT_TRUE(after && after_len == len && memcmp(after, img, len) == 0);
    free(after);
    /* and once the disk reads again, all 20 are there */
    j = s_open(dir, 0, &rec);
    CU_ASSERT_TRUE(j && rec.records == 20 && rec.lost_records == 0 &&
                   s_read_range(j, 1, 20));
    evb_journal_close(&j);
    free(img);
}

static void test_recovery_cuts_garbage_after_the_last_record(void)
{
    const char *dir = s_newdir();
    s_build(dir, 20, 0);
    char seg[600];
    s_segment(dir, -1, seg, sizeof seg);
    size_t len;
    unsigned char *img = s_slurp(seg, &len);
    unsigned char *more = malloc(len + 4096);
    memcpy(more, img, len);
    /* random bytes, zeros, and a plausible length with no record behind */
    for (int i = 0; i < 4096; i++)
        more[len + i] = (unsigned char)(rand() >> 7);
    /* garbage may be a damaged record: seq 21 is reported lost and kept
     * from reuse, and the bytes kept aside */
    s_spit(seg, more, len + 100);
    CU_ASSERT_TRUE(s_check_recovered(dir, seg, len, 20, 100, 22));
    char kept[700];
    snprintf(kept, sizeof kept, "%s.%zu.bad", seg, len);
    size_t kept_len = 0;
    unsigned char *k = s_slurp(kept, &kept_len);
    CU_ASSERT_TRUE(k && kept_len == 100 && memcmp(k, more + len, 100) == 0);
    free(k);
    unlink(kept);
    /* zeros are space the file system never filled (a power loss): an
     * incomplete write, cut with no loss and nothing kept */
    memset(more + len, 0, 4096);
    s_spit(seg, more, len + 4096);
    CU_ASSERT_TRUE(s_check_recovered(dir, seg, len, 20, 4096, 21));
    snprintf(kept, sizeof kept, "%s.%zu.bad", seg, len);
    CU_ASSERT_NOT_EQUAL(access(kept, F_OK), 0);
    more[len] = 100;
    s_spit(seg, more, len + 60);
    CU_ASSERT_TRUE(s_check_recovered(dir, seg, len, 20, 60, 21));
    free(more);
    free(img);
}

/* The offsets of the records in an intact segment image; how many. */
static size_t s_record_offsets(const unsigned char *b, size_t len, size_t *offs,
                               size_t max)
{
    size_t off = 32, n = 0;
    while (off + 8 <= len && n < max) {
        uint32_t l = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 |
                     (uint32_t)b[off + 2] << 16 | (uint32_t)b[off + 3] << 24;
        offs[n++] = off;
        off += 8 + l;
    }
    return n;
}

static uint64_t s_seq_at(const unsigned char *b, size_t off)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[off + 8 + (size_t)i];
    return v;
}

static uint64_t s_named(const char *path)
{
    return strtoull(strrchr(path, '-') + 1, NULL, 10);
}

/* Open dir, then check that readers get every seq in 1..last except
 * those in gone[], and report exactly those as lost. */
static void s_expect_all_but(const char *dir, int64_t segsize, uint64_t last,
                             const uint64_t *gone, size_t ngone,
                             evb_journal_recovery_t *rec)
{
    evb_journal_t *j = s_open(dir, segsize, rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    uint64_t *want = malloc(last * sizeof *want), lost = 0;
    size_t n = 0;
    for (uint64_t seq = 1; seq <= last; seq++) {
        int is_gone = 0;
        for (size_t k = 0; k < ngone; k++)
            is_gone |= gone[k] == seq;
        if (!is_gone)
            want[n++] = seq;
    }
    CU_ASSERT_EQUAL(rec->records, n);
    CU_ASSERT_EQUAL(rec->lost_records, ngone);
    CU_ASSERT_EQUAL(rec->last_seq, last);
    CU_ASSERT_TRUE(s_read_expect(j, 1, want, n, &lost));
    CU_ASSERT_EQUAL(lost, ngone);
    /* appending goes on after every intact seq: none is given out twice */
    s_append(j, last + 1, last + 5, 2);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
    free(want);
}

static void
test_recovery_skips_exactly_a_damaged_record_in_an_older_segment(void)
{
    const char *dir = s_newdir();
    s_build(dir, 400, 2048);
    CU_ASSERT_TRUE_FATAL(s_segment(dir, 0, NULL, 0) > 5);
    char seg[600];
    s_segment(dir, 2, seg, sizeof seg);
    size_t len, offs[64];
    unsigned char *img = s_slurp(seg, &len);
    size_t n = s_record_offsets(img, len, offs, 64);
    CU_ASSERT_TRUE_FATAL(n > 4);
    /* a flipped bit in the third record's data */
    size_t off = offs[2];
    uint64_t gone = s_seq_at(img, off);
    img[off + 40] ^= 0x10;
    s_spit(seg, img, len);

    for (int round = 0; round < 2; round++) { /* the file is left as is */
        evb_journal_recovery_t rec;
        s_expect_all_but(dir, 2048, 400 + 5 * (uint64_t)round, &gone, 1, &rec);
        char where[700];
        snprintf(where, sizeof where, "%s at offset %zu: checksum mismatch",
                 seg, off);
        CU_ASSERT_PTR_NOT_NULL(strstr(rec.detail, where));
        CU_ASSERT_EQUAL(rec.skipped_bytes, offs[3] - off);
        CU_ASSERT_EQUAL(rec.truncated_bytes, 0);
        CU_ASSERT_EQUAL(rec.bad_segments, 1);
        CU_ASSERT_EQUAL(rec.lost_ranges, 1);
        char range[64];
        snprintf(range, sizeof range, "seq %" PRIu64 "..%" PRIu64, gone, gone);
        CU_ASSERT_PTR_NOT_NULL(strstr(rec.lost_detail, range));
        CU_ASSERT_PTR_NOT_NULL(strstr(rec.lost_detail, seg));
    }
    free(img);
}

/* A damaged length field hides where the next record starts: recovery
 * finds it by scanning, in an old segment and in the newest one, whose
 * intact records after the damage are kept and never given out again. */
static void test_recovery_finds_the_next_record_after_a_damaged_length(void)
{
    for (int newest = 0; newest < 2; newest++) {
        const char *dir = s_newdir();
        s_build(dir, 300, newest ? 1 << 20 : 2048);
        char seg[600];
        s_segment(dir, newest ? -1 : 1, seg, sizeof seg);
        size_t len, offs[512];
        unsigned char *img = s_slurp(seg, &len);
        size_t n = s_record_offsets(img, len, offs, 512);
        CU_ASSERT_TRUE_FATAL(n > 6);
        uint64_t gone[2] = {s_seq_at(img, offs[3]), s_seq_at(img, offs[4])};
        img[offs[3] + 1] ^= 0x40; /* length: 16 KiB more */
        img[offs[4] + 2] ^= 0x01; /* length: 64 KiB more */
        s_spit(seg, img, len);
        evb_journal_recovery_t rec;
        s_expect_all_but(dir, newest ? 1 << 20 : 2048, 300, gone, 2, &rec);
        CU_ASSERT_EQUAL(rec.truncated_bytes, 0);
        CU_ASSERT_EQUAL(rec.skipped_bytes, offs[5] - offs[3]);
        CU_ASSERT_EQUAL(rec.lost_ranges, 1);
        free(img);
    }
}

/* Bits flipped at random offsets of many records in every segment: each
 * damaged record costs exactly itself (or, in the newest segment's last
 * record, itself and nothing after), never its neighbours. */
static void
test_recovery_of_random_bit_flips_loses_only_the_damaged_records(void)
{
    srand(12345);
    for (int round = 0; round < 20; round++) {
        const char *dir = s_newdir();
        s_build(dir, 600, 4096);
        int nseg = s_segment(dir, 0, NULL, 0);
        uint64_t gone[64];
        size_t ngone = 0;
        for (int k = 0; k < nseg; k++) {
            if (rand() % 3)
                continue;
            char seg[600];
            s_segment(dir, k, seg, sizeof seg);
            size_t len, offs[128];
            unsigned char *img = s_slurp(seg, &len);
            size_t n = s_record_offsets(img, len, offs, 128);
            size_t pick = (size_t)rand() % n;
            size_t end = pick + 1 < n ? offs[pick + 1] : len;
            size_t at = offs[pick] + (size_t)rand() % (end - offs[pick]);
            img[at] ^= (unsigned char)(1u << (rand() % 8));
            s_spit(seg, img, len);
            gone[ngone++] = s_seq_at(img, offs[pick]);
            if (at >= offs[pick] + 8 && at < offs[pick] + 16) {
                /* the flip was in the seq field itself: the seq the
                 * record should have, from its neighbour */
                gone[ngone - 1] =
                    pick ? s_seq_at(img, offs[pick - 1]) + 1 : s_named(seg);
            }
            free(img);
        }
        evb_journal_recovery_t rec;
        int last_in_newest = 0;
        for (size_t k = 0; k < ngone; k++)
            last_in_newest |= gone[k] == 600;
        if (last_in_newest) {
            /* cut as a damaged tail; the rest is as everywhere */
            evb_journal_t *j = s_open(dir, 4096, &rec);
            CU_ASSERT_EQUAL(rec.records, 600 - ngone);
            evb_journal_close(&j);
            continue;
        }
        s_expect_all_but(dir, 4096, 600, gone, ngone, &rec);
        CU_ASSERT_EQUAL(rec.lost_ranges, ngone);
    }
}

/* A segment deleted from the middle: its seqs are reported lost, with the
 * range, and readers count them. */
static void test_recovery_reports_the_seqs_of_a_missing_segment(void)
{
    const char *dir = s_newdir();
    s_build(dir, 300, 2048);
    char seg[600], next[600];
    s_segment(dir, 2, seg, sizeof seg);
    s_segment(dir, 3, next, sizeof next);
    uint64_t from = s_named(seg), to = s_named(next) - 1;
    CU_ASSERT_EQUAL_FATAL(unlink(seg), 0);
    uint64_t gone[300];
    size_t ngone = 0;
    for (uint64_t seq = from; seq <= to; seq++)
        gone[ngone++] = seq;
    evb_journal_recovery_t rec;
    s_expect_all_but(dir, 2048, 300, gone, ngone, &rec);
    char range[64];
    snprintf(range, sizeof range, "seq %" PRIu64 "..%" PRIu64, from, to);
    CU_ASSERT_PTR_NOT_NULL(strstr(rec.lost_detail, range));
    CU_ASSERT_PTR_NOT_NULL(strstr(rec.lost_detail, "no segment holds them"));
}

static void test_recovery_keeps_the_records_of_a_segment_with_a_bad_header(void)
{
    const char *dir = s_newdir();
    s_build(dir, 300, 2048);
    char seg[600], path[700];
    s_segment(dir, 1, seg, sizeof seg);
    size_t len;
    unsigned char *img = s_slurp(seg, &len);
    /* a leftover empty file that sorts first, and a flipped bit in the
     * magic of the second segment */
    snprintf(path, sizeof path, "%s/seg-00000000000000000000.evj", dir);
    s_spit(path, img, 0);
    img[3] ^= 0x08;
    s_spit(seg, img, len);

    evb_journal_recovery_t rec;
    s_expect_all_but(dir, 2048, 300, NULL, 0, &rec);
    CU_ASSERT_EQUAL(rec.bad_segments, 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(rec.detail, path));
    CU_ASSERT_EQUAL(s_count_suffix(dir, ".bad"), 1); /* the empty file */
    /* a header and nothing intact behind it is set aside */
    memset(img + 32, 0x5a, len - 32);
    s_spit(seg, img, len);
    char nextp[600];
    s_segment(dir, 2, nextp, sizeof nextp);
    uint64_t ngone = s_named(nextp) - s_named(seg);
    evb_journal_t *j = s_open(dir, 2048, &rec);
    CU_ASSERT_EQUAL(rec.lost_records, ngone);
    CU_ASSERT_EQUAL(s_count_suffix(dir, ".bad"), 2);
    evb_journal_close(&j);
    free(img);
}

/* Damage that appears while the broker runs (after recovery looked):
 * readers step over exactly the damaged record too. */
static void test_reader_steps_over_a_record_damaged_at_run_time(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    s_append(j, 1, 50, 7);
    char seg[600];
    s_segment(dir, 0, seg, sizeof seg);
    size_t len, offs[64];
    unsigned char *img = s_slurp(seg, &len);
    CU_ASSERT_EQUAL_FATAL(s_record_offsets(img, len, offs, 64), 50);
    int fd = open(seg, O_WRONLY);
    unsigned char b = img[offs[20] + 1] ^ 0x20; /* seq 21's length */
    CU_ASSERT_EQUAL(pwrite(fd, &b, 1, (off_t)offs[20] + 1), 1);
    close(fd);
    uint64_t gone = 21;
    uint64_t want[50], lost = 0;
    size_t n = 0;
    for (uint64_t seq = 1; seq <= 50; seq++)
        if (seq != gone)
            want[n++] = seq;
    CU_ASSERT_TRUE(s_read_expect(j, 1, want, n, &lost));
    CU_ASSERT_EQUAL(lost, 1);
    /* and records appended after the damage are read too */
    s_append(j, 51, 60, 3);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 40);
    evb_record_t rec;
    uint64_t seq = 40;
    while (evb_journal_read(r, UINT64_MAX, &rec, &lost) == 1)
        CU_ASSERT_EQUAL(rec.seq, seq++);
    CU_ASSERT_EQUAL(seq, 61);
    evb_journal_reader_destroy(&r);
    evb_journal_close(&j);
    free(img);
}

static void test_recovery_replaces_an_empty_newest_segment(void)
{
    const char *dir = s_newdir();
    s_build(dir, 30, 0);
    /* a crash between creating the next segment and writing its header */
    char path[700];
    snprintf(path, sizeof path, "%s/seg-00000000000000000031.evj", dir);
    s_spit(path, (const unsigned char *)"EVBJ", 4);
    evb_journal_recovery_t rec;
    evb_journal_t *j = s_open(dir, 0, &rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_EQUAL(rec.records, 30);
    CU_ASSERT_EQUAL(rec.bad_segments, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rec.detail, "no header"));
    CU_ASSERT_EQUAL(s_count_suffix(dir, ".bad"), 0);
    s_append(j, 31, 40, 3);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
    j = s_open(dir, 0, &rec);
    CU_ASSERT_EQUAL(rec.records, 40);
    CU_ASSERT_STRING_EQUAL(rec.detail, "");
    CU_ASSERT_TRUE(s_read_range(j, 1, 40));
    evb_journal_close(&j);
}

static void test_recovery_resumes_in_a_header_only_newest_segment(void)
{
    const char *dir = s_newdir();
    s_build(dir, 3, 0);
    /* a crash after a rotation wrote the new header but no record; its
     * name says seq 10 was to come, so 10 is where appending resumes */
    unsigned char h[32] = "EVBJRNL1";
    uint64_t fields[3] = {1 | 32ull << 32, 10, (uint64_t)evb_now_ms()};
    for (int i = 0; i < 24; i++)
        h[8 + i] = (unsigned char)(fields[i / 8] >> (8 * (i % 8)));
    char path[700];
    snprintf(path, sizeof path, "%s/seg-00000000000000000010.evj", dir);
    s_spit(path, h, sizeof h);
    evb_journal_recovery_t rec;
    evb_journal_t *j = s_open(dir, 0, &rec);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(rec.detail, "");
    CU_ASSERT_EQUAL(rec.segments, 2);
    CU_ASSERT_EQUAL(rec.last_seq, 3);
    s_append(j, 10, 12, 2);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
    CU_ASSERT_EQUAL(s_segment(dir, 0, NULL, 0), 2); /* it was reused */
    j = s_open(dir, 0, &rec);
    CU_ASSERT_EQUAL(rec.records, 6);
    uint64_t want[] = {1, 2, 3, 10, 11, 12}, lost;
    CU_ASSERT_TRUE(s_read_expect(j, 1, want, 6, &lost));
    CU_ASSERT_EQUAL(lost, 6);
    evb_journal_close(&j);
}

static void test_open_refuses_only_an_unusable_directory(void)
{
    char path[700], err[256] = "";
    snprintf(path, sizeof path, "%s/plainfile", s_dir);
    s_spit(path, (const unsigned char *)"x", 1);
    evb_journal_config_t cfg = {path, 0};
    CU_ASSERT_PTR_NULL(evb_journal_open(&cfg, NULL, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));
    /* a missing directory is created, parents included, and said so */
    snprintf(path, sizeof path, "%s/a/b/c", s_newdir());
    evb_journal_recovery_t rec;
    evb_journal_t *j = s_open(path, 0, &rec);
    CU_ASSERT_PTR_NOT_NULL(j);
    CU_ASSERT_EQUAL(rec.created, 1);
    evb_journal_close(&j);
    j = s_open(path, 0, &rec);
    CU_ASSERT_EQUAL(rec.created, 0);
    evb_journal_close(&j);
}

static void test_a_second_open_of_one_directory_is_refused_with_the_pid(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s_append(j, 1, 10, 3);
    evb_journal_config_t cfg = {dir, 0};
    char err[512] = "", pid[64];
    /* flock is per open file: a second open in this process is refused
     * as a second process would be */
    CU_ASSERT_PTR_NULL(evb_journal_open(&cfg, NULL, err, sizeof err));
    snprintf(pid, sizeof pid, "in use by another evbusd (pid %ld",
             (long)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(err, dir));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, pid));
    /* the refused open touched nothing: the first one goes on */
    s_append(j, 11, 20, 3);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
    /* and the lock goes with the journal */
    j = s_open(dir, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(j);
    CU_ASSERT_TRUE(s_read_range(j, 1, 20));
    evb_journal_close(&j);
}

/* ------------------------------------------------------------ readers */

static void test_reader_from_the_middle_of_a_segment_starts_there(void)
{
    const char *dir = s_newdir();
    s_build(dir, 300, 4096);
    evb_journal_t *j = s_open(dir, 4096, NULL);
    uint64_t want[300];
    for (uint64_t from = 1; from <= 300; from += 37) {
        for (uint64_t s = from; s <= 300; s++)
            want[s - from] = s;
        uint64_t lost = 99;
        CU_ASSERT_TRUE(s_read_expect(j, from, want, 301 - from, &lost));
        CU_ASSERT_EQUAL(lost, 0);
    }
    evb_journal_close(&j);
}

static void test_reader_stops_at_upto(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 2048, NULL);
    s_append(j, 1, 50, 5);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 1);
    evb_record_t rec;
    uint64_t seq = 1;
    while (evb_journal_read(r, 10, &rec, NULL) == 1)
        CU_ASSERT_TRUE(s_same(&rec, seq++));
    CU_ASSERT_EQUAL(seq, 11);
    CU_ASSERT_EQUAL(evb_journal_reader_position(r), 11);
    while (evb_journal_read(r, 30, &rec, NULL) == 1)
        CU_ASSERT_TRUE(s_same(&rec, seq++));
    CU_ASSERT_EQUAL(seq, 31);
    evb_journal_reader_destroy(&r);
    evb_journal_close(&j);
}

static void test_reader_at_the_end_sees_records_after_the_next_flush(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 1024, NULL);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 1);
    evb_record_t rec;
    uint64_t seq = 1;
    for (int round = 0; round < 20; round++) {
        CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 0);
        s_payload_t p;
        for (int i = 0; i < 3; i++) { /* buffered, not yet visible */
            s_make(seq + (uint64_t)i, &p);
            evb_journal_append(j, &p.r);
        }
        CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 0);
        CU_ASSERT_EQUAL(evb_journal_flush(j), 0);
        for (int i = 0; i < 3; i++) {
            CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 1);
            CU_ASSERT_TRUE(s_same(&rec, seq++));
        }
    }
    CU_ASSERT_TRUE(s_segment(dir, 0, NULL, 0) > 5); /* it crossed some */
    evb_journal_reader_destroy(&r);
    evb_journal_close(&j);
}

typedef struct s_tail {
    evb_journal_t *j;
    uint64_t want;        /* how many records to read */
    _Atomic uint64_t got; /* read in order, content right */
    uint64_t errors;      /* out of order, wrong content, lost or -1 */
    atomic_int stop;
} s_tail_t;

static void *s_tail_thread(void *arg)
{
    s_tail_t *t = arg;
    evb_journal_reader_t *r = evb_journal_reader_new(t->j, 1);
    evb_record_t rec;
    uint64_t lost;
    while (t->got < t->want && !atomic_load(&t->stop)) {
        int rc = evb_journal_read(r, UINT64_MAX, &rec, &lost);
        if (rc == 0) {
            sched_yield();
            continue;
        }
        if (rc < 0 || lost || !s_same(&rec, t->got + 1)) {
            t->errors++;
            break;
        }
        t->got++;
    }
    evb_journal_reader_destroy(&r);
    return NULL;
}

static void *s_sync_thread(void *arg)
{
    s_tail_t *t = arg;
    while (!atomic_load(&t->stop)) {
        if (evb_journal_sync(t->j) < 0)
            t->errors++;
        usleep(200);
    }
    return NULL;
}

static void test_concurrent_reader_gets_every_record_once_in_order(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 1 << 20, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    s_tail_t t = {j, 200000, 0, 0, 0};
    pthread_t reader, syncer;
    pthread_create(&reader, NULL, s_tail_thread, &t);
    pthread_create(&syncer, NULL, s_sync_thread, &t);
    /* and retention deletes what the reader is done with, even the
     * segment it is still attached to when it has read all of it */
    for (uint64_t from = 1; from <= t.want; from += 10000) {
        s_append(j, from, from + 9999, 100);
        evb_journal_retain(j, atomic_load(&t.got) + 1, 0, 0, 0, NULL);
    }
    int64_t deadline = evb_mono_ms() + 60000;
    while (evb_journal_durable_seq(j) < t.want && evb_mono_ms() < deadline)
        usleep(1000);
    pthread_join(reader, NULL);
    atomic_store(&t.stop, 1);
    pthread_join(syncer, NULL);
    CU_ASSERT_EQUAL(t.errors, 0);
    CU_ASSERT_EQUAL(t.got, t.want);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), t.want);
    evb_journal_retain(j, t.want + 1, 0, 0, 0, NULL);
    CU_ASSERT_TRUE(evb_journal_first_seq(j) > 1);
    CU_ASSERT_EQUAL(s_segment(dir, 0, NULL, 0), 1);
    evb_journal_close(&j);
}

/* ---------------------------------------------------------- retention */

static void test_retain_deletes_consumed_segments_never_the_current(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 2048, NULL);
    s_append(j, 1, 300, 5);
    int nseg = s_segment(dir, 0, NULL, 0);
    int64_t size = evb_journal_size(j);
    char third[600];
    s_segment(dir, 2, third, sizeof third);
    uint64_t third_first = strtoull(strrchr(third, '-') + 1, NULL, 10);
    uint64_t forced = 99;
    /* a consumer inside the third segment: the first two go */
    CU_ASSERT_EQUAL(evb_journal_retain(j, third_first + 1, 0, 0, 0, &forced),
                    2);
    CU_ASSERT_EQUAL(forced, 0);
    CU_ASSERT_EQUAL(s_segment(dir, 0, NULL, 0), nseg - 2);
    CU_ASSERT_EQUAL(evb_journal_first_seq(j), third_first);
    CU_ASSERT_TRUE(evb_journal_size(j) < size);
    CU_ASSERT_TRUE(s_read_range(j, third_first, 300));
    /* everything consumed: all but the segment being written */
    CU_ASSERT_EQUAL(evb_journal_retain(j, UINT64_MAX, 0, 0, 0, &forced),
                    nseg - 3);
    CU_ASSERT_EQUAL(s_segment(dir, 0, NULL, 0), 1);
    CU_ASSERT_EQUAL(evb_journal_retain(j, UINT64_MAX, 0, 0, 0, &forced), 0);
    /* the total matches the files */
    char cur[600];
    s_segment(dir, 0, cur, sizeof cur);
    struct stat st;
    CU_ASSERT_EQUAL(stat(cur, &st), 0);
    CU_ASSERT_EQUAL(evb_journal_size(j), st.st_size);
    s_append(j, 301, 310, 5);
    evb_journal_close(&j);
}

static void test_retain_by_size_deletes_unconsumed_and_reports_it(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 2048, NULL);
    s_append(j, 1, 300, 5);
    int64_t size = evb_journal_size(j);
    uint64_t forced = 0;
    s_log_reset();
    int n = evb_journal_retain(j, 1, size / 2, 0, 0, &forced);
    s_log_read();
    CU_ASSERT_TRUE(n > 0);
    CU_ASSERT_TRUE(evb_journal_size(j) <= size / 2);
    /* nobody had consumed anything: every deleted record counts */
    uint64_t first = evb_journal_first_seq(j);
    CU_ASSERT_EQUAL(forced, first - 1);
    CU_ASSERT_EQUAL(s_count_lines("unconsumed records"), n);
    CU_ASSERT_TRUE(s_logged("for the size limit"));
    /* a consumer past half of them: only the rest count */
    uint64_t keep = first + 10;
    n = evb_journal_retain(j, keep, evb_journal_size(j) / 2, 0, 0, &forced);
    CU_ASSERT_TRUE(n > 0);
    CU_ASSERT_EQUAL(forced, evb_journal_first_seq(j) - keep);
    evb_journal_close(&j);
}

static void test_retain_by_age_deletes_old_segments_and_reports_it(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 2048, NULL);
    s_append(j, 1, 300, 5); /* record seq was accepted at BASE + seq */
    uint64_t forced = 0;
    int64_t now = S_BASE_MS + 1000000;
    /* nothing that old */
    CU_ASSERT_EQUAL(evb_journal_retain(j, 1, 0, 1000000, now, &forced), 0);
    s_log_reset();
    /* records accepted before BASE + 100 are past the limit */
    int n = evb_journal_retain(j, 1, 0, 1000000 - 100, now, &forced);
    s_log_read();
    CU_ASSERT_TRUE(n > 0);
    uint64_t first = evb_journal_first_seq(j);
    CU_ASSERT_EQUAL(forced, first - 1);
    CU_ASSERT_TRUE(first <= 100); /* a segment with a newer record stays */
    CU_ASSERT_TRUE(s_logged("for the age limit"));
    evb_journal_close(&j);
}

static void test_reader_in_a_deleted_segment_moves_on_and_reports_lost(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 2048, NULL);
    s_append(j, 1, 300, 5);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 1);
    evb_journal_reader_t *late = evb_journal_reader_new(j, 1);
    evb_record_t rec;
    uint64_t lost;
    for (uint64_t s = 1; s <= 3; s++) {
        CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, &lost), 1);
        CU_ASSERT_EQUAL(rec.seq, s);
    }
    char second[600];
    s_segment(dir, 1, second, sizeof second);
    uint64_t seg2 = strtoull(strrchr(second, '-') + 1, NULL, 10);
    uint64_t forced;
    int n = evb_journal_retain(j, 1, evb_journal_size(j) / 2, 0, 0, &forced);
    CU_ASSERT_TRUE_FATAL(n >= 2);
    uint64_t oldest = evb_journal_first_seq(j);
    /* the rest of the open segment still comes from its fd */
    for (uint64_t s = 4; s < seg2; s++) {
        CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, &lost), 1);
        CU_ASSERT_EQUAL(rec.seq, s);
        CU_ASSERT_EQUAL(lost, 0);
    }
    /* then the jump to the oldest remaining, reported */
    CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, &lost), 1);
    CU_ASSERT_EQUAL(rec.seq, oldest);
    CU_ASSERT_EQUAL(lost, oldest - seg2);
    CU_ASSERT_TRUE(s_same(&rec, oldest));
    /* a reader that had not started yet jumps at once */
    CU_ASSERT_EQUAL(evb_journal_read(late, UINT64_MAX, &rec, &lost), 1);
    CU_ASSERT_EQUAL(rec.seq, oldest);
    CU_ASSERT_EQUAL(lost, oldest - 1);
    evb_journal_reader_destroy(&r);
    evb_journal_reader_destroy(&late);
    evb_journal_close(&j);
}

/* -------------------------------------------------- failure and repair */

static int s_enospc_fdatasync(int fd)
{
    (void)fd;
    errno = ENOSPC;
    return -1;
}

/* Writes half of what it is given, then the disk is full. */
static ssize_t s_torn_pwrite(int fd, const void *p, size_t n, off_t off)
{
    static int calls;
    if (calls++ % 2 == 0 && n > 1)
        return pwrite(fd, p, n / 2, off);
    errno = ENOSPC;
    return -1;
}

static int s_eio_ftruncate(int fd, off_t len)
{
    (void)fd;
    (void)len;
    errno = EIO;
    return -1;
}

static void test_failed_fdatasync_withholds_durability_until_repair(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 4096, NULL);
    s_append(j, 1, 40, 10);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    s_append(j, 41, 100, 10); /* rotates: unsynced in two segments */
    evb_journal_fdatasync_hook = s_enospc_fdatasync;
    s_log_reset();
    CU_ASSERT_EQUAL(evb_journal_sync(j), -1);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 40);
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 100);
    char why[512];
    CU_ASSERT_FALSE(evb_journal_healthy(j, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "fdatasync "));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, dir));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "No space left on device"));
    /* nothing more is taken, and the failure is logged once */
    s_payload_t p;
    s_make(101, &p);
    CU_ASSERT_EQUAL(evb_journal_append(j, &p.r), 0);
    CU_ASSERT_EQUAL(evb_journal_flush(j), -1);
    CU_ASSERT_EQUAL(evb_journal_sync(j), -1);
    s_log_read();
    CU_ASSERT_EQUAL(s_count_lines("ERROR"), 1);
    CU_ASSERT_TRUE(s_logged("refusing acknowledged events"));
    /* still failing: repair says so */
    CU_ASSERT_EQUAL(evb_journal_repair(j), -1);
    CU_ASSERT_FALSE(evb_journal_healthy(j, NULL, 0));
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 40);
    /* the disk is back */
    evb_journal_fdatasync_hook = fdatasync;
    CU_ASSERT_EQUAL(evb_journal_repair(j), 0);
    CU_ASSERT_TRUE(evb_journal_healthy(j, why, sizeof why));
    CU_ASSERT_STRING_EQUAL(why, "");
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 100);
    CU_ASSERT_TRUE(s_read_range(j, 1, 100));
    s_append(j, 101, 120, 10);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    evb_journal_close(&j);
    evb_journal_recovery_t rec;
    j = s_open(dir, 4096, &rec);
    CU_ASSERT_EQUAL(rec.records, 120);
    CU_ASSERT_EQUAL(rec.truncated_bytes + rec.skipped_bytes, 0);
    CU_ASSERT_STRING_EQUAL(rec.detail, "");
    CU_ASSERT_TRUE(s_read_range(j, 1, 120));
    evb_journal_close(&j);
}

static void test_torn_write_is_replaced_by_repair_and_nothing_duplicated(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    s_append(j, 1, 30, 10);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    s_payload_t p;
    for (uint64_t seq = 31; seq <= 40; seq++) {
        s_make(seq, &p);
        CU_ASSERT_EQUAL(evb_journal_append(j, &p.r), seq);
    }
    evb_journal_pwrite_hook = s_torn_pwrite;
    CU_ASSERT_EQUAL(evb_journal_flush(j), -1);
    char why[512];
    CU_ASSERT_FALSE(evb_journal_healthy(j, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "write "));
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 30);
    CU_ASSERT_EQUAL(evb_journal_append(j, &p.r), 0);
    /* repair under the same fault fails and says why */
    CU_ASSERT_EQUAL(evb_journal_repair(j), -1);
    CU_ASSERT_FALSE(evb_journal_healthy(j, why, sizeof why));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "No space left on device"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "seg-00000000000000000031.evj"));
    CU_ASSERT_EQUAL(evb_journal_sync(j), -1); /* still refused meanwhile */
    evb_journal_pwrite_hook = pwrite;
    CU_ASSERT_EQUAL(evb_journal_repair(j), 0);
    CU_ASSERT_EQUAL(evb_journal_written_seq(j), 40);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), 40);
    CU_ASSERT_TRUE(s_read_range(j, 1, 40));
    s_append(j, 41, 45, 2);
    evb_journal_close(&j);
    evb_journal_recovery_t rec;
    j = s_open(dir, 0, &rec);
    CU_ASSERT_EQUAL(rec.records, 45);
    CU_ASSERT_STRING_EQUAL(rec.detail, ""); /* the torn bytes were cut */
    CU_ASSERT_TRUE(s_read_range(j, 1, 45));
    evb_journal_close(&j);
}

static void test_repair_whose_cut_fails_leaves_duplicates_readers_skip(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    s_append(j, 1, 10, 5);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    s_append(j, 11, 20, 5);
    evb_journal_fdatasync_hook = s_enospc_fdatasync;
    CU_ASSERT_EQUAL(evb_journal_sync(j), -1);
    evb_journal_fdatasync_hook = fdatasync;
    evb_journal_ftruncate_hook = s_eio_ftruncate;
    CU_ASSERT_EQUAL(evb_journal_repair(j), 0); /* the cut is best effort */
    evb_journal_ftruncate_hook = ftruncate;
    /* 11..20 are now in both segments; each is read once */
    CU_ASSERT_EQUAL(s_segment(dir, 0, NULL, 0), 2);
    CU_ASSERT_TRUE(s_read_range(j, 1, 20));
    s_append(j, 21, 25, 5);
    evb_journal_close(&j);
    evb_journal_recovery_t rec;
    j = s_open(dir, 0, &rec);
    CU_ASSERT_EQUAL(rec.records, 25);
    CU_ASSERT_EQUAL(rec.truncated_bytes + rec.skipped_bytes, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(rec.detail, "10 records already seen"));
    CU_ASSERT_TRUE(s_read_range(j, 1, 25));
    evb_journal_close(&j);
}

/* Writes half of what a repair re-writes, and meanwhile looks with a
 * reader: what is not finished must not be read. */
static evb_journal_reader_t *s_peeker;
static int s_peeked;

static ssize_t s_pwrite_and_peek(int fd, const void *p, size_t n, off_t off)
{
    if (off == 0 || !s_peeker) /* a segment header */
        return pwrite(fd, p, n, off);
    ssize_t w = pwrite(fd, p, n / 2, off);
    evb_record_t rec;
    s_peeked = evb_journal_read(s_peeker, UINT64_MAX, &rec, NULL);
    s_peeker = NULL;
    return w;
}

static void test_reader_never_sees_what_a_repair_has_not_finished(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    s_append(j, 1, 10, 10);
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    s_append(j, 11, 20, 10);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 1);
    evb_record_t rec;
    for (uint64_t seq = 1; seq <= 10; seq++)
        CU_ASSERT_EQUAL(evb_journal_read(r, 10, &rec, NULL), 1);
    evb_journal_fdatasync_hook = s_enospc_fdatasync;
    CU_ASSERT_EQUAL(evb_journal_sync(j), -1);
    evb_journal_fdatasync_hook = fdatasync;
    /* 11..20 are re-written into a new segment; half way through, the
     * complete records there are not yet the reader's to take */
    s_peeker = r;
    s_peeked = -2;
    evb_journal_pwrite_hook = s_pwrite_and_peek;
    CU_ASSERT_EQUAL(evb_journal_repair(j), 0);
    evb_journal_pwrite_hook = pwrite;
    CU_ASSERT_EQUAL(s_peeked, 0);
    CU_ASSERT_EQUAL(evb_journal_reader_position(r), 11);
    for (uint64_t seq = 11; seq <= 20; seq++) {
        CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 1);
        CU_ASSERT_TRUE(s_same(&rec, seq));
    }
    CU_ASSERT_EQUAL(evb_journal_read(r, UINT64_MAX, &rec, NULL), 0);
    evb_journal_reader_destroy(&r);
    evb_journal_close(&j);
}

/* ------------------------------------------------------------ figures */

typedef struct s_syncer {
    evb_journal_t *j;
    atomic_int stop;
    long syncs;
} s_syncer_t;

static void *s_group_sync_thread(void *arg)
{
    s_syncer_t *s = arg;
    while (!atomic_load(&s->stop)) {
        uint64_t d = evb_journal_durable_seq(s->j);
        if (evb_journal_written_seq(s->j) == d) {
            sched_yield();
            continue;
        }
        evb_journal_sync(s->j);
        s->syncs++;
    }
    return NULL;
}

/* The broker's shape: the main thread appends and flushes small batches
 * while a sync thread syncs whatever has been written, back to back. */
static void s_group_commit_figure(evb_journal_t *j, const evb_record_t *r,
                                  int total)
{
    s_syncer_t s = {j, 0, 0};
    pthread_t t;
    uint64_t start = evb_journal_written_seq(j);
    int64_t t0 = evb_mono_us();
    pthread_create(&t, NULL, s_group_sync_thread, &s);
    for (int i = 0; i < total; i++) {
        evb_journal_append(j, r);
        if ((i + 1) % 256 == 0)
            evb_journal_flush(j);
    }
    evb_journal_flush(j);
    while (evb_journal_durable_seq(j) < start + (uint64_t)total)
        usleep(100);
    int64_t t1 = evb_mono_us();
    atomic_store(&s.stop, 1);
    pthread_join(t, NULL);
    printf("group commit (flush every 256, sync thread back to back): %d "
           "records durable in %.0f ms = %.0f records/s, %ld syncs "
           "(%.0f records each)\n    ",
           total, (t1 - t0) / 1e3, total / ((t1 - t0) / 1e6), s.syncs,
           (double)total / (s.syncs ? s.syncs : 1));
}

static void test_throughput_figures(void)
{
    const char *dir = s_newdir();
    evb_journal_t *j = s_open(dir, 0, NULL);
    unsigned char data[276];
    memset(data, 'e', sizeof data);
    evb_record_t r = {0, S_BASE_MS, EVB_REC_EVENT, 0, NULL, sizeof data, data};
    const int total = 1000000, batch = 1000;
    int64_t t0 = evb_mono_us();
    for (int i = 0; i < total; i++) {
        evb_journal_append(j, &r);
        if ((i + 1) % batch == 0)
            evb_journal_flush(j);
    }
    int64_t t1 = evb_mono_us();
    CU_ASSERT_EQUAL(evb_journal_sync(j), 0);
    int64_t t2 = evb_mono_us();
    int syncs = 0;
    while (evb_mono_us() - t2 < 1000000 && syncs < 2000) {
        evb_journal_append(j, &r);
        evb_journal_flush(j);
        evb_journal_sync(j);
        syncs++;
    }
    int64_t t3 = evb_mono_us();
    printf("\n    append+flush: %d x %d-byte records in %.0f ms = %.0f "
           "records/s (%.0f MB/s); first sync %.0f ms; 1 record + flush + "
           "sync: %.0f syncs/s (%.2f ms each)\n    ",
           total, (int)(sizeof data + 32), (t1 - t0) / 1e3,
           total / ((t1 - t0) / 1e6), total * (sizeof data + 32.0) / (t1 - t0),
           (t2 - t1) / 1e3, syncs / ((t3 - t2) / 1e6), (t3 - t2) / 1e3 / syncs);
    CU_ASSERT_EQUAL(evb_journal_durable_seq(j), (uint64_t)(total + syncs));
    s_group_commit_figure(j, &r, total);
    evb_journal_close(&j);
    /* don't keep 300 MB around until the suite ends */
    char seg[600];
    while (s_segment(dir, 0, seg, sizeof seg) > 0)
        unlink(seg);
}

/* -------------------------------------------------------------- suite */

static int s_init(void)
{
    return testlog_open("evb_test_journal");
}

static int s_clean(void)
{
    testlog_close();
    return 0;
}

static CU_TestInfo s_crc_tests[] = {
    {"crc32c_matches_the_standard_check_values",
     test_crc32c_matches_the_standard_check_values},
    {"crc32c_streamed_in_pieces_equals_one_shot",
     test_crc32c_streamed_in_pieces_equals_one_shot},
    CU_TEST_INFO_NULL};

static CU_TestInfo s_tests[] = {
    {"reopen_returns_every_record_byte_for_byte",
     test_reopen_returns_every_record_byte_for_byte},
    {"records_are_readable_after_flush_and_durable_after_sync",
     test_records_are_readable_after_flush_and_durable_after_sync},
    {"append_refuses_a_record_over_the_size_limit",
     test_append_refuses_a_record_over_the_size_limit},
    {"rotation_spreads_records_over_segments_readers_cross_them",
     test_rotation_spreads_records_over_segments_readers_cross_them},
    {"sync_after_rotation_syncs_the_previous_segment_too",
     test_sync_after_rotation_syncs_the_previous_segment_too},
    {"sync_makes_durable_only_what_was_written_when_it_began",
     test_sync_makes_durable_only_what_was_written_when_it_began},
    {"a_read_error_in_recovery_cuts_nothing",
     test_a_read_error_in_recovery_cuts_nothing},
    {"recovery_cuts_a_torn_last_record_at_every_offset",
     test_recovery_cuts_a_torn_last_record_at_every_offset},
    {"recovery_cuts_a_bit_flipped_last_record",
     test_recovery_cuts_a_bit_flipped_last_record},
    {"recovery_cuts_garbage_after_the_last_record",
     test_recovery_cuts_garbage_after_the_last_record},
    {"recovery_skips_exactly_a_damaged_record_in_an_older_segment",
     test_recovery_skips_exactly_a_damaged_record_in_an_older_segment},
    {"recovery_finds_the_next_record_after_a_damaged_length",
     test_recovery_finds_the_next_record_after_a_damaged_length},
    {"recovery_of_random_bit_flips_loses_only_the_damaged_records",
     test_recovery_of_random_bit_flips_loses_only_the_damaged_records},
    {"recovery_reports_the_seqs_of_a_missing_segment",
     test_recovery_reports_the_seqs_of_a_missing_segment},
    {"recovery_keeps_the_records_of_a_segment_with_a_bad_header",
     test_recovery_keeps_the_records_of_a_segment_with_a_bad_header},
    {"reader_steps_over_a_record_damaged_at_run_time",
     test_reader_steps_over_a_record_damaged_at_run_time},
    {"recovery_replaces_an_empty_newest_segment",
     test_recovery_replaces_an_empty_newest_segment},
    {"recovery_resumes_in_a_header_only_newest_segment",
     test_recovery_resumes_in_a_header_only_newest_segment},
    {"open_refuses_only_an_unusable_directory",
     test_open_refuses_only_an_unusable_directory},
    {"a_second_open_of_one_directory_is_refused_with_the_pid",
     test_a_second_open_of_one_directory_is_refused_with_the_pid},
    {"reader_from_the_middle_of_a_segment_starts_there",
     test_reader_from_the_middle_of_a_segment_starts_there},
    {"reader_stops_at_upto", test_reader_stops_at_upto},
    {"reader_at_the_end_sees_records_after_the_next_flush",
     test_reader_at_the_end_sees_records_after_the_next_flush},
    {"concurrent_reader_gets_every_record_once_in_order",
     test_concurrent_reader_gets_every_record_once_in_order},
    {"retain_deletes_consumed_segments_never_the_current",
     test_retain_deletes_consumed_segments_never_the_current},
    {"retain_by_size_deletes_unconsumed_and_reports_it",
     test_retain_by_size_deletes_unconsumed_and_reports_it},
    {"retain_by_age_deletes_old_segments_and_reports_it",
     test_retain_by_age_deletes_old_segments_and_reports_it},
    {"reader_in_a_deleted_segment_moves_on_and_reports_lost",
     test_reader_in_a_deleted_segment_moves_on_and_reports_lost},
    {"failed_fdatasync_withholds_durability_until_repair",
     test_failed_fdatasync_withholds_durability_until_repair},
    {"torn_write_is_replaced_by_repair_and_nothing_duplicated",
     test_torn_write_is_replaced_by_repair_and_nothing_duplicated},
    {"repair_whose_cut_fails_leaves_duplicates_readers_skip",
     test_repair_whose_cut_fails_leaves_duplicates_readers_skip},
    {"reader_never_sees_what_a_repair_has_not_finished",
     test_reader_never_sees_what_a_repair_has_not_finished},
    {"throughput_figures", test_throughput_figures},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"crc32c", NULL, NULL, NULL, NULL, s_crc_tests},
    {"journal", s_init, s_clean, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_journal", s_suites);
}
