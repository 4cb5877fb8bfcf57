/* The file plugin, driven through the fake host: what lands in the file,
 * when attempts count as delivered, rotation, reopen, fsync options, write
 * errors and shutdown; and its pure helpers (filefmt.c) on their own. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fakehost.h"
#include "filefmt.h"
#include "loader.h"
#include "testmain.h"

/* Seams: the plugin's fdatasync() and monotonic clock, counted, failed
 * and set by the tests below. (The system headers are included first, so
 * the macros only rename the plugin's calls.) */
#include <fcntl.h>
#include <time.h>

static int s_syncs;             /* fdatasync() calls */
static int s_sync_errno;        /* fail them with this errno, 0 = really sync */
static int64_t s_clock_ms = -1; /* the monotonic clock, -1 = the real one */

static int s_test_fdatasync(int fd)
{
    s_syncs++;
    if (s_sync_errno) {
        errno = s_sync_errno;
        return -1;
    }
    return fdatasync(fd);
}

static int s_test_clock_gettime(clockid_t id, struct timespec *ts)
{
    if (id != CLOCK_MONOTONIC || s_clock_ms < 0)
        return clock_gettime(id, ts);
    ts->tv_sec = (time_t)(s_clock_ms / 1000);
    ts->tv_nsec = (long)(s_clock_ms % 1000) * 1000000L;
    return 0;
}

/* The plugin itself, statics and all: the descriptor is tested as built,
 * without dlopen (the loader has tests of its own). */
#define fdatasync s_test_fdatasync
#define clock_gettime s_test_clock_gettime
#include "file.c"
#undef fdatasync
#undef clock_gettime

/* ------------------------------------------------------------- helpers */

static char s_dir[256];   /* this test's temporary directory */
static char s_path[512];  /* s_dir/events.jsonl */
static char s_opts[2048]; /* options text built by s_options() */

static int s_rm(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

/* Each test of the plugin suite gets a fresh directory. */
static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/test_file-XXXXXX");
    if (!mkdtemp(s_dir)) {
        perror("mkdtemp");
        s_dir[0] = '\0';
    }
    snprintf(s_path, sizeof s_path, "%s/events.jsonl", s_dir);
    s_syncs = 0;
    s_sync_errno = 0;
    s_clock_ms = -1;
}

static void s_teardown(void)
{
    if (s_dir[0])
        nftw(s_dir, s_rm, 16, FTW_DEPTH | FTW_PHYS);
    s_dir[0] = '\0';
}

/* The test's options: path = s_path plus `extra` (more settings). */
static const char *s_options(const char *extra)
{
    snprintf(s_opts, sizeof s_opts, "path = \"%s\";\n%s", s_path,
             extra ? extra : "");
    return s_opts;
}

/* A fake host around the file plugin, validated and initialised. */
static fakehost_t *s_started(const char *extra)
{
    fakehost_t *fh =
        fakehost_new(evbus_plugin_entry(EVB_HOST_ABI), s_options(extra));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_PTR_NOT_NULL(fakehost_instance(fh));
    CU_ASSERT_EQUAL(fakehost_start(fh), 0);
    if (!fakehost_userdata(fh))
        fprintf(stderr, "%s\n", fakehost_log_text(fh));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fakehost_userdata(fh));
    return fh;
}

/* Whole file into a malloc'd NUL-terminated string (NULL when missing). */
static char *s_slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            b = realloc(b, cap);
            CU_ASSERT_PTR_NOT_NULL_FATAL(b);
        }
        size_t r = fread(b + n, 1, cap - n - 1, fp);
        if (r == 0)
            break;
        n += r;
    }
    fclose(fp);
    b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

static int64_t s_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

static int s_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static size_t s_count_lines(const char *text)
{
    size_t n = 0;
    for (; text && *text; text++)
        n += *text == '\n';
    return n;
}

/* An event with a sequence number and `pad` bytes of padding in its data,
 * so tests control line lengths. */
static const evbus_event_t *s_event(fakehost_t *fh, int seq, size_t pad)
{
    char *data = malloc(pad + 64);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    char *p = data + sprintf(data, "{\"seq\":%d,\"pad\":\"", seq);
    memset(p, 'x', pad);
    strcpy(p + pad, "\"}");
    char id[32];
    snprintf(id, sizeof id, "evt-%06d", seq);
    const evbus_event_t *ev =
        fakehost_event(fh, "task.completed", data, "source", "test", "id", id,
                       "project", "alpha", NULL);
    free(data);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    return ev;
}

/* The line the plugin must write for ev. */
static void s_expect_line(fakehost_t *fh, const evbus_event_t *ev,
                          evb_buf_t *out)
{
    size_t n = 0;
    const char *json = fakehost_host(fh)->event_json(ev, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    evb_buf_append(out, json, n);
    evb_buf_putc(out, '\n');
}

static size_t s_line_len(fakehost_t *fh, const evbus_event_t *ev)
{
    size_t n = 0;
    fakehost_host(fh)->event_json(ev, &n);
    return n + 1;
}

/* ------------------------------------------------------- filefmt (pure) */

static void test_fsync_parse_accepts_the_three_policies(void)
{
    filefmt_fsync_t p = FILEFMT_FSYNC_ALWAYS;
    CU_ASSERT_EQUAL(filefmt_fsync_parse("never", &p), 0);
    CU_ASSERT_EQUAL(p, FILEFMT_FSYNC_NEVER);
    CU_ASSERT_EQUAL(filefmt_fsync_parse("interval", &p), 0);
    CU_ASSERT_EQUAL(p, FILEFMT_FSYNC_INTERVAL);
    CU_ASSERT_EQUAL(filefmt_fsync_parse("always", &p), 0);
    CU_ASSERT_EQUAL(p, FILEFMT_FSYNC_ALWAYS);
    for (int i = 0; i < 3; i++) {
        filefmt_fsync_t q = (filefmt_fsync_t)((i + 1) % 3);
        CU_ASSERT_EQUAL(
            filefmt_fsync_parse(filefmt_fsync_name((filefmt_fsync_t)i), &q), 0);
        CU_ASSERT_EQUAL(q, (filefmt_fsync_t)i);
    }
    CU_ASSERT_STRING_EQUAL(filefmt_fsync_name((filefmt_fsync_t)7), "?");
}

static void test_fsync_parse_rejects_other_spellings(void)
{
    static const char *const bad[] = {"Always",  "ALWAYS",   "",   "sometimes",
                                      "always ", " never",   "1s", "true",
                                      "interva", "intervals"};
    filefmt_fsync_t p = FILEFMT_FSYNC_INTERVAL;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(filefmt_fsync_parse(bad[i], &p), -1);
    CU_ASSERT_EQUAL(filefmt_fsync_parse(NULL, &p), -1);
    CU_ASSERT_EQUAL(p, FILEFMT_FSYNC_INTERVAL); /* untouched */
}

static void test_mode_parse_reads_octal(void)
{
    unsigned m = 0;
    CU_ASSERT_EQUAL(filefmt_mode_parse("0640", &m), 0);
    CU_ASSERT_EQUAL(m, 0640u);
    CU_ASSERT_EQUAL(filefmt_mode_parse("600", &m), 0);
    CU_ASSERT_EQUAL(m, 0600u);
    CU_ASSERT_EQUAL(filefmt_mode_parse("7777", &m), 0);
    CU_ASSERT_EQUAL(m, 07777u);
    CU_ASSERT_EQUAL(filefmt_mode_parse("0", &m), 0);
    CU_ASSERT_EQUAL(m, 0u);
}

static void test_mode_parse_rejects_what_is_not_octal(void)
{
    static const char *const bad[] = {
        "0648", "", "06400", "rw-r-----", "0x1a4", "-640", " 640", "640 ", "9"};
    unsigned m = 0123;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(filefmt_mode_parse(bad[i], &m), -1);
    CU_ASSERT_EQUAL(filefmt_mode_parse(NULL, &m), -1);
    CU_ASSERT_EQUAL(m, 0123u);
}

static void test_dir_mode_adds_search_where_the_file_is_readable(void)
{
    CU_ASSERT_EQUAL(filefmt_dir_mode(0640), 0750u);
    CU_ASSERT_EQUAL(filefmt_dir_mode(0644), 0755u);
    CU_ASSERT_EQUAL(filefmt_dir_mode(0600), 0700u);
    CU_ASSERT_EQUAL(filefmt_dir_mode(0666), 0777u);
    CU_ASSERT_EQUAL(filefmt_dir_mode(0200), 0700u);
    CU_ASSERT_EQUAL(filefmt_dir_mode(04640), 0750u); /* no setuid dirs */
}

static void test_rotated_name_appends_the_number(void)
{
    char out[64];
    CU_ASSERT_EQUAL(filefmt_rotated_name(out, sizeof out, "/x/e.log", 0), 0);
    CU_ASSERT_STRING_EQUAL(out, "/x/e.log");
    CU_ASSERT_EQUAL(filefmt_rotated_name(out, sizeof out, "/x/e.log", 1), 0);
    CU_ASSERT_STRING_EQUAL(out, "/x/e.log.1");
    CU_ASSERT_EQUAL(filefmt_rotated_name(out, sizeof out, "/x/e.log", 1000), 0);
    CU_ASSERT_STRING_EQUAL(out, "/x/e.log.1000");
    CU_ASSERT_EQUAL(filefmt_rotated_name(out, sizeof out, "/x/e.log", -1), -1);
    CU_ASSERT_EQUAL(filefmt_rotated_name(out, 11, "/x/e.log", 1), 0);
    CU_ASSERT_EQUAL(filefmt_rotated_name(out, 10, "/x/e.log", 1), -1);
}

static void test_needs_rotation_only_when_the_next_line_would_overflow(void)
{
    /* rotation off */
    CU_ASSERT_FALSE(filefmt_needs_rotation(5000, 0, 100, 0));
    /* exactly full is fine, one byte over is not */
    CU_ASSERT_FALSE(filefmt_needs_rotation(900, 0, 100, 1000));
    CU_ASSERT_TRUE(filefmt_needs_rotation(901, 0, 100, 1000));
    /* buffered bytes count as written */
    CU_ASSERT_FALSE(filefmt_needs_rotation(400, 500, 100, 1000));
    CU_ASSERT_TRUE(filefmt_needs_rotation(400, 501, 100, 1000));
    CU_ASSERT_TRUE(filefmt_needs_rotation(0, 901, 100, 1000));
    /* a line too long for any file goes whole into an empty one */
    CU_ASSERT_FALSE(filefmt_needs_rotation(0, 0, 5000, 1000));
    CU_ASSERT_TRUE(filefmt_needs_rotation(1, 0, 5000, 1000));
    /* a file already past the size (e.g. reopened) rotates at once */
    CU_ASSERT_TRUE(filefmt_needs_rotation(2000, 0, 1, 1000));
}

static void test_sync_due_follows_the_policy(void)
{
    /* never: not even when dirty for ages */
    CU_ASSERT_FALSE(filefmt_sync_due(FILEFMT_FSYNC_NEVER, 1, 100000, 0, 1));
    /* always: whenever something was written */
    CU_ASSERT_TRUE(filefmt_sync_due(FILEFMT_FSYNC_ALWAYS, 1, 5, 5, 1000));
    CU_ASSERT_FALSE(filefmt_sync_due(FILEFMT_FSYNC_ALWAYS, 0, 5, 5, 1000));
    /* interval: once the interval has passed, and only when dirty */
    CU_ASSERT_FALSE(
        filefmt_sync_due(FILEFMT_FSYNC_INTERVAL, 1, 1999, 1000, 1000));
    CU_ASSERT_TRUE(
        filefmt_sync_due(FILEFMT_FSYNC_INTERVAL, 1, 2000, 1000, 1000));
    CU_ASSERT_FALSE(
        filefmt_sync_due(FILEFMT_FSYNC_INTERVAL, 0, 9000, 1000, 1000));
}

/* ------------------------------------------------------------ descriptor */

static void test_entry_serves_abi_1_and_declines_other_majors(void)
{
    const evbus_plugin_t *d = evbus_plugin_entry(EVBUS_ABI_MAKE(1, 0));
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_PTR_EQUAL(evbus_plugin_entry(EVBUS_ABI_MAKE(1, 7)), d);
    CU_ASSERT_PTR_NULL(evbus_plugin_entry(EVBUS_ABI_MAKE(2, 0)));
    CU_ASSERT_PTR_NULL(evbus_plugin_entry(EVBUS_ABI_MAKE(0, 9)));
    CU_ASSERT_EQUAL(d->struct_size, sizeof(evbus_plugin_t));
    CU_ASSERT_EQUAL(d->abi_version, EVBUS_ABI_1_0);
    CU_ASSERT_STRING_EQUAL(d->name, "file");
    CU_ASSERT_PTR_NOT_NULL(d->version);
    CU_ASSERT_PTR_NOT_NULL(d->description);
    CU_ASSERT_EQUAL(d->flags & EVBUS_PLUGIN_REENTRANT, 0);
    CU_ASSERT(d->max_in_flight >= 256);
    CU_ASSERT(d->tick_interval_ms > 0 && d->tick_interval_ms <= 1000);
    CU_ASSERT(d->declare && d->validate && d->init && d->deliver && d->tick &&
              d->reopen && d->shutdown);
}

/* ------------------------------------------------------------ the lines */

static void test_lines_are_the_event_json_plus_newline_in_order(void)
{
    fakehost_t *fh = s_started(NULL);
    const evbus_event_t *evs[3];
    evs[0] = fakehost_event(fh, "task.completed",
                            "{\"task_id\":\"t1\",\"duration_ms\":1200}",
                            "source", "ci", "project", "alpha", NULL);
    evs[1] = fakehost_event(fh, "task.failed",
                            "{\"error\":\"line\\nbreak \\\"quoted\\\"\"}",
                            "source", "ci", NULL);
    evs[2] = fakehost_event(fh, "agent.stuck", NULL, "source", "sup", "agent",
                            "a7", NULL);
    evb_buf_t want = EVB_BUF_INIT;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(evs[i]);
        CU_ASSERT_EQUAL(fakehost_deliver(fh, evs[i]), EVBUS_PENDING);
        s_expect_line(fh, evs[i], &want);
    }
    fakehost_tick(fh);

    size_t len = 0;
    char *got = s_slurp(s_path, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(len, want.len);
    CU_ASSERT_STRING_EQUAL(got, want.data);
    CU_ASSERT_EQUAL(s_count_lines(got), 3);
    /* one JSON object per line, nothing else */
    CU_ASSERT_EQUAL(got[0], '{');
    CU_ASSERT_PTR_NULL(strstr(got, "}\n\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\"type\":\"agent.stuck\""));
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 3);
    free(got);
    evb_buf_free(&want);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_existing_file_is_appended_to_never_truncated(void)
{
    FILE *fp = fopen(s_path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("{\"earlier\":true}\n", fp);
    fclose(fp);
    fakehost_t *fh = s_started(NULL);
    const evbus_event_t *ev = s_event(fh, 1, 10);
    CU_ASSERT_EQUAL(fakehost_deliver(fh, ev), EVBUS_PENDING);
    fakehost_tick(fh);
    char *got = s_slurp(s_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_NSTRING_EQUAL(got, "{\"earlier\":true}\n", 17);
    CU_ASSERT_EQUAL(s_count_lines(got), 2);
    free(got);
    fakehost_destroy(&fh);
}

static void test_a_partial_last_line_is_ended_before_appending(void)
{
    /* a crash cut the last write short: the next line must not be glued
     * onto the fragment */
    FILE *fp = fopen(s_path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("{\"whole\":1}\n{\"cut\":", fp);
    fclose(fp);
    fakehost_t *fh = s_started(NULL);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "ended in a partial line"));
    const evbus_event_t *ev = s_event(fh, 1, 10);
    CU_ASSERT_EQUAL(fakehost_deliver(fh, ev), EVBUS_PENDING);
    fakehost_tick(fh);
    char *got = s_slurp(s_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_NSTRING_EQUAL(got, "{\"whole\":1}\n{\"cut\":\n{", 21);
    CU_ASSERT_EQUAL(s_count_lines(got), 3);
    free(got);
    fakehost_destroy(&fh);
    /* a whole file is left as it is */
    fh = s_started(NULL);
    CU_ASSERT_FALSE(fakehost_log_contains(fh, "partial line"));
    got = s_slurp(s_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_EQUAL(s_count_lines(got), 3);
    CU_ASSERT_EQUAL(got[strlen(got) - 1], '\n');
    free(got);
    fakehost_destroy(&fh);
}

/* ------------------------------------------------- delivered = written */

typedef struct {
    int64_t want_size; /* the file must hold this much at each OK */
    int checked, too_early;
} s_seen_t;

static void s_check_written(void *arg, const fakehost_outcome_t *o)
{
    s_seen_t *seen = arg;
    seen->checked++;
    if (o->result == EVBUS_OK && s_size(s_path) < seen->want_size)
        seen->too_early++;
}

static void test_pending_attempts_complete_ok_only_after_tick(void)
{
    fakehost_t *fh = s_started("fsync = \"never\";");
    s_seen_t seen = {0, 0, 0};
    fakehost_set_complete_hook(fh, s_check_written, &seen);
    for (int i = 0; i < 5; i++) {
        const evbus_event_t *ev = s_event(fh, i, 100);
        seen.want_size += (int64_t)s_line_len(fh, ev);
        CU_ASSERT_EQUAL(fakehost_deliver(fh, ev), EVBUS_PENDING);
    }
    /* held, not reported, not written */
    CU_ASSERT_EQUAL(fakehost_pending(fh), 5);
    CU_ASSERT_EQUAL(fakehost_outcome_count(fh), 0);
    CU_ASSERT_EQUAL(s_size(s_path), 0);

    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_pending(fh), 0);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 5);
    CU_ASSERT_EQUAL(seen.checked, 5);
    CU_ASSERT_EQUAL(seen.too_early, 0); /* the bytes were there first */
    CU_ASSERT_EQUAL(s_size(s_path), seen.want_size);
    fakehost_outcome_t o;
    CU_ASSERT_EQUAL(fakehost_outcome(fh, 0, &o), 0);
    CU_ASSERT_EQUAL(o.async, 1);
    CU_ASSERT_STRING_EQUAL(o.event_id, "evt-000000");

    /* a tick with nothing held reports nothing */
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_outcome_count(fh), 5);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_64k_of_lines_are_written_without_a_tick(void)
{
    fakehost_t *fh = s_started(NULL);
    s_seen_t seen = {0, 0, 0};
    fakehost_set_complete_hook(fh, s_check_written, &seen);
    int64_t total = 0, last_len = 0;
    int i, rc = EVBUS_PENDING;
    for (i = 0; i < 1000 && rc == EVBUS_PENDING; i++) {
        const evbus_event_t *ev = s_event(fh, i, 900);
        last_len = (int64_t)s_line_len(fh, ev);
        total += last_len;
        seen.want_size = total;
        rc = fakehost_deliver(fh, ev);
    }
    /* the line that reached 64 KiB sent the batch, and was in it */
    CU_ASSERT_EQUAL(rc, EVBUS_OK);
    CU_ASSERT(total >= 64 * 1024);
    CU_ASSERT(total - last_len < 64 * 1024);
    CU_ASSERT_EQUAL(s_size(s_path), total);
    CU_ASSERT_EQUAL(fakehost_pending(fh), 0);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), (size_t)i);
    CU_ASSERT_EQUAL(seen.too_early, 0);
    fakehost_outcome_t last;
    CU_ASSERT_EQUAL(fakehost_outcome(fh, (size_t)i - 1, &last), 0);
    CU_ASSERT_EQUAL(last.async, 0); /* deliver()'s own return */
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_fsync_always_reports_ok_after_the_batch_is_written(void)
{
    fakehost_t *fh = s_started("fsync = \"always\";");
    s_seen_t seen = {0, 0, 0};
    fakehost_set_complete_hook(fh, s_check_written, &seen);
    for (int i = 0; i < 3; i++) {
        const evbus_event_t *ev = s_event(fh, i, 50);
        seen.want_size += (int64_t)s_line_len(fh, ev);
        CU_ASSERT_EQUAL(fakehost_deliver(fh, ev), EVBUS_PENDING);
    }
    CU_ASSERT_EQUAL(fakehost_outcome_count(fh), 0);
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 3);
    CU_ASSERT_EQUAL(seen.too_early, 0);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "fsync always"));
    fakehost_destroy(&fh);
}

typedef struct {
    int syncs_at_ok; /* s_syncs when the first OK was reported */
} s_sync_seen_t;

static void s_note_syncs(void *arg, const fakehost_outcome_t *o)
{
    s_sync_seen_t *seen = arg;
    if (o->result == EVBUS_OK && seen->syncs_at_ok < 0)
        seen->syncs_at_ok = s_syncs;
}

static void test_fsync_always_syncs_each_batch_before_reporting_ok(void)
{
    fakehost_t *fh = s_started("fsync = \"always\";");
    s_sync_seen_t seen = {-1};
    fakehost_set_complete_hook(fh, s_note_syncs, &seen);
    for (int i = 0; i < 3; i++)
        fakehost_deliver(fh, s_event(fh, i, 50));
    CU_ASSERT_EQUAL(s_syncs, 0);
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(s_syncs, 1); /* one batch, one fdatasync */
    CU_ASSERT_EQUAL(seen.syncs_at_ok, 1);
    fakehost_deliver(fh, s_event(fh, 3, 50));
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(s_syncs, 2);
    fakehost_tick(fh); /* nothing new: nothing to sync */
    CU_ASSERT_EQUAL(s_syncs, 2);
    fakehost_destroy(&fh);
}

static void test_fsync_never_never_syncs(void)
{
    fakehost_t *fh = s_started("fsync = \"never\";\nrotate_size = 500;");
    for (int i = 0; i < 10; i++) {
        fakehost_deliver(fh, s_event(fh, i, 200));
        fakehost_tick(fh);
    }
    fakehost_reopen(fh);
    fakehost_deliver(fh, s_event(fh, 10, 200));
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 11);
    CU_ASSERT_EQUAL(s_syncs, 0);
    fakehost_destroy(&fh);
}

static void test_fsync_interval_syncs_at_most_once_per_interval(void)
{
    s_clock_ms = 100000;
    fakehost_t *fh =
        s_started("fsync = \"interval\";\nfsync_interval = \"1s\";");
    fakehost_deliver(fh, s_event(fh, 1, 10));
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 1); /* OK before sync */
    CU_ASSERT_EQUAL(s_syncs, 0);
    s_clock_ms += 500;
    fakehost_deliver(fh, s_event(fh, 2, 10));
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(s_syncs, 0);
    s_clock_ms += 500; /* a second since the last sync (init) */
    fakehost_tick(fh); /* nothing buffered, but the file is dirty */
    CU_ASSERT_EQUAL(s_syncs, 1);
    s_clock_ms += 2000;
    fakehost_tick(fh); /* clean: nothing to sync */
    CU_ASSERT_EQUAL(s_syncs, 1);
    fakehost_deliver(fh, s_event(fh, 3, 10));
    fakehost_tick(fh); /* dirty and due: synced right after the write */
    CU_ASSERT_EQUAL(s_syncs, 2);
    s_clock_ms += 10;
    for (int i = 4; i < 10; i++) {
        fakehost_deliver(fh, s_event(fh, i, 10));
        fakehost_tick(fh);
    }
    CU_ASSERT_EQUAL(s_syncs, 2);
    /* what was written since is synced on the way out */
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(s_syncs, 3);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 9);
    fakehost_destroy(&fh);
}

static void test_fdatasync_failure_with_fsync_always_retries_the_batch(void)
{
    fakehost_t *fh = s_started("fsync = \"always\";");
    fakehost_deliver(fh, s_event(fh, 1, 10));
    fakehost_tick(fh);
    int64_t before = s_size(s_path);
    s_sync_errno = EIO;
    fakehost_deliver(fh, s_event(fh, 2, 10));
    fakehost_deliver(fh, s_event(fh, 3, 10));
    fakehost_tick(fh);
    s_sync_errno = 0;
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 1);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_RETRY), 2);
    char want[600];
    snprintf(want, sizeof want, "fdatasync %s: %s", s_path, strerror(EIO));
    CU_ASSERT_PTR_NOT_NULL(strstr(fakehost_last_reason(fh), want));
    /* not durable, so not kept: the retry writes the lines again */
    CU_ASSERT_EQUAL(s_size(s_path), before);
    fakehost_destroy(&fh);
}

static void test_shutdown_writes_and_completes_held_attempts(void)
{
    fakehost_t *fh = s_started(NULL);
    int64_t want = 0;
    for (int i = 0; i < 4; i++) {
        const evbus_event_t *ev = s_event(fh, i, 20);
        want += (int64_t)s_line_len(fh, ev);
        CU_ASSERT_EQUAL(fakehost_deliver(fh, ev), EVBUS_PENDING);
    }
    CU_ASSERT_EQUAL(fakehost_outcome_count(fh), 0);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_pending(fh), 0);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 4);
    CU_ASSERT_EQUAL(s_size(s_path), want);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

/* --------------------------------------------------------------- rotation */

/* Read path.N .. path.1, path (oldest first) into one string; the number
 * of files found goes to *files, and every file must be within max bytes
 * (unless it holds a single line) and end with a newline. */
static char *s_read_rotated(int max_n, int64_t max, int *files)
{
    evb_buf_t all = EVB_BUF_INIT;
    evb_buf_puts(&all, "");
    *files = 0;
    for (int n = max_n; n >= 0; n--) {
        char name[600];
        CU_ASSERT_EQUAL(filefmt_rotated_name(name, sizeof name, s_path, n), 0);
        size_t len = 0;
        char *text = s_slurp(name, &len);
        if (!text)
            continue;
        (*files)++;
        CU_ASSERT(len > 0);
        CU_ASSERT(len == 0 || text[len - 1] == '\n');
        if ((int64_t)len > max && s_count_lines(text) != 1)
            CU_FAIL("a rotated file is larger than rotate_size");
        evb_buf_append(&all, text, len);
        free(text);
    }
    return evb_buf_steal(&all, NULL);
}

static void test_rotation_keeps_every_line_whole_and_in_order(void)
{
    fakehost_t *fh = s_started("rotate_size = 1000;\nrotate_keep = 50;");
    evb_buf_t want = EVB_BUF_INIT;
    for (int i = 0; i < 40; i++) {
        const evbus_event_t *ev = s_event(fh, i, 100 + (size_t)(i % 7) * 20);
        s_expect_line(fh, ev, &want);
        int rc = fakehost_deliver(fh, ev);
        CU_ASSERT(rc == EVBUS_PENDING || rc == EVBUS_OK);
        if (i % 3 == 2)
            fakehost_tick(fh);
    }
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 40);

    int files = 0;
    char *all = s_read_rotated(60, 1000, &files);
    CU_ASSERT(files > 5);
    /* nothing lost, nothing split, nothing reordered */
    CU_ASSERT_EQUAL(s_count_lines(all), 40);
    CU_ASSERT_STRING_EQUAL(all, want.data);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "INFO  [test] rotated"));
    free(all);
    evb_buf_free(&want);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_rotation_keeps_rotate_keep_files_deleting_the_oldest(void)
{
    fakehost_t *fh = s_started("rotate_size = \"1K\";\nrotate_keep = 2;");
    const size_t n_events = 40;
    char *lines[40];
    for (size_t i = 0; i < n_events; i++) {
        const evbus_event_t *ev = s_event(fh, (int)i, 150);
        evb_buf_t one = EVB_BUF_INIT;
        s_expect_line(fh, ev, &one);
        lines[i] = evb_buf_steal(&one, NULL);
        fakehost_deliver(fh, ev);
    }
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), n_events);

    char name[600];
    snprintf(name, sizeof name, "%s.1", s_path);
    CU_ASSERT_TRUE(s_exists(name));
    snprintf(name, sizeof name, "%s.2", s_path);
    CU_ASSERT_TRUE(s_exists(name));
    snprintf(name, sizeof name, "%s.3", s_path);
    CU_ASSERT_FALSE(s_exists(name));

    /* what is left is the newest lines, whole, in order, up to the last */
    int files = 0;
    char *all = s_read_rotated(3, 1024, &files);
    CU_ASSERT_EQUAL(files, 3);
    size_t kept = s_count_lines(all);
    CU_ASSERT(kept > 0 && kept < n_events);
    evb_buf_t want = EVB_BUF_INIT;
    evb_buf_puts(&want, "");
    for (size_t i = n_events - kept; i < n_events; i++)
        evb_buf_puts(&want, lines[i]);
    CU_ASSERT_STRING_EQUAL(all, want.data);
    CU_ASSERT(fakehost_log_count(fh, "rotated") >= 3);
    for (size_t i = 0; i < n_events; i++)
        free(lines[i]);
    free(all);
    evb_buf_free(&want);
    fakehost_destroy(&fh);
}

static void test_a_line_longer_than_rotate_size_is_never_split(void)
{
    fakehost_t *fh = s_started("rotate_size = 100;\nrotate_keep = 10;");
    evb_buf_t want = EVB_BUF_INIT;
    for (int i = 0; i < 4; i++) {
        const evbus_event_t *ev = s_event(fh, i, 300);
        s_expect_line(fh, ev, &want);
        fakehost_deliver(fh, ev);
    }
    fakehost_tick(fh);
    int files = 0;
    char *all = s_read_rotated(10, 100, &files);
    CU_ASSERT_EQUAL(files, 4); /* one line per file */
    CU_ASSERT_STRING_EQUAL(all, want.data);
    free(all);
    evb_buf_free(&want);
    fakehost_destroy(&fh);
}

static void test_rotate_keep_zero_keeps_only_the_current_file(void)
{
    fakehost_t *fh = s_started("rotate_size = 1000;\nrotate_keep = 0;");
    for (int i = 0; i < 10; i++)
        fakehost_deliver(fh, s_event(fh, i, 300));
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 10);
    char name[600];
    snprintf(name, sizeof name, "%s.1", s_path);
    CU_ASSERT_FALSE(s_exists(name));
    snprintf(name, sizeof name, "%s.0", s_path);
    CU_ASSERT_FALSE(s_exists(name));
    char *got = s_slurp(s_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    /* only the newest lines, the last one included */
    CU_ASSERT(s_count_lines(got) >= 1 && s_count_lines(got) < 10);
    CU_ASSERT(strlen(got) <= 1000);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "evt-000009"));
    CU_ASSERT_PTR_NULL(strstr(got, "evt-000000"));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "old file deleted"));
    free(got);
    fakehost_destroy(&fh);
}

static void test_rotate_size_zero_never_rotates(void)
{
    fakehost_t *fh = s_started("rotate_size = 0;");
    for (int i = 0; i < 30; i++)
        fakehost_deliver(fh, s_event(fh, i, 200));
    fakehost_tick(fh);
    char name[600];
    snprintf(name, sizeof name, "%s.1", s_path);
    CU_ASSERT_FALSE(s_exists(name));
    char *got = s_slurp(s_path, NULL);
    CU_ASSERT_EQUAL(s_count_lines(got), 30);
    free(got);
    fakehost_destroy(&fh);
}

/* ----------------------------------------------------------------- reopen */

static void test_reopen_after_rename_writes_a_new_file_at_path(void)
{
    fakehost_t *fh = s_started(NULL);
    fakehost_deliver(fh, s_event(fh, 1, 10));
    fakehost_tick(fh);
    char moved[600];
    snprintf(moved, sizeof moved, "%s.moved", s_path);
    CU_ASSERT_EQUAL_FATAL(rename(s_path, moved), 0); /* logrotate */

    /* held until the reopen flushes it into the file it was meant for */
    CU_ASSERT_EQUAL(fakehost_deliver(fh, s_event(fh, 2, 10)), EVBUS_PENDING);
    fakehost_reopen(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 2);
    CU_ASSERT_TRUE(s_exists(s_path));
    CU_ASSERT_EQUAL(s_size(s_path), 0);

    fakehost_deliver(fh, s_event(fh, 3, 10));
    fakehost_deliver(fh, s_event(fh, 4, 10));
    fakehost_tick(fh);
    char *old = s_slurp(moved, NULL);
    char *now = s_slurp(s_path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    CU_ASSERT_PTR_NOT_NULL_FATAL(now);
    CU_ASSERT_EQUAL(s_count_lines(old), 2);
    CU_ASSERT_EQUAL(s_count_lines(now), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(now, "evt-000003"));
    CU_ASSERT_PTR_NULL(strstr(now, "evt-000002"));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "reopened"));
    free(old);
    free(now);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_deliver_retries_while_the_file_cannot_be_reopened(void)
{
    char dir[400], aside[400];
    snprintf(dir, sizeof dir, "%s/sub", s_dir);
    snprintf(aside, sizeof aside, "%s/sub.aside", s_dir);
    snprintf(s_path, sizeof s_path, "%s/events.jsonl", dir);
    fakehost_t *fh = s_started(NULL);

    /* the directory is replaced by a file: path cannot be opened */
    CU_ASSERT_EQUAL_FATAL(rename(dir, aside), 0);
    FILE *fp = fopen(dir, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fclose(fp);
    fakehost_reopen(fh);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "reopen: open"));
    CU_ASSERT_EQUAL(fakehost_deliver(fh, s_event(fh, 1, 10)), EVBUS_RETRY);
    CU_ASSERT_PTR_NOT_NULL(strstr(fakehost_last_reason(fh), s_path));
    CU_ASSERT_PTR_NOT_NULL(strstr(fakehost_last_reason(fh), strerror(ENOTDIR)));
    CU_ASSERT_EQUAL(fakehost_pending(fh), 0);

    /* repaired: the next reopen (SIGHUP) recreates the directory */
    CU_ASSERT_EQUAL(unlink(dir), 0);
    fakehost_reopen(fh);
    CU_ASSERT_EQUAL(fakehost_deliver(fh, s_event(fh, 2, 10)), EVBUS_PENDING);
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 1);
    char *got = s_slurp(s_path, NULL);
    CU_ASSERT_EQUAL(s_count_lines(got), 1);
    free(got);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

/* -------------------------------------------------------------- creation */

static void test_init_creates_missing_parent_directories(void)
{
    snprintf(s_path, sizeof s_path, "%s/a/b/c/events.jsonl", s_dir);
    mode_t old = umask(022);
    fakehost_t *fh = s_started("file_mode = \"0600\";");
    umask(old);
    struct stat st;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/a/b/c", s_dir);
    CU_ASSERT_EQUAL_FATAL(stat(dir, &st), 0);
    CU_ASSERT_TRUE(S_ISDIR(st.st_mode));
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
    CU_ASSERT_EQUAL_FATAL(stat(s_path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    fakehost_destroy(&fh);
}

static void test_file_mode_default_is_0640(void)
{
    mode_t old = umask(022);
    fakehost_t *fh = s_started(NULL);
    umask(old);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(s_path, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0640);
    fakehost_destroy(&fh);
}

/* ---------------------------------------------------------------- options */

static void test_each_fsync_policy_is_accepted(void)
{
    static const char *const ok[] = {"never", "interval", "always"};
    for (int i = 0; i < 3; i++) {
        char extra[64];
        snprintf(extra, sizeof extra, "fsync = \"%s\";", ok[i]);
        fakehost_t *fh =
            fakehost_new(evbus_plugin_entry(EVB_HOST_ABI), s_options(extra));
        CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
        CU_ASSERT_EQUAL(fakehost_validate(fh), 0);
        CU_ASSERT_EQUAL(fakehost_config_errors(fh), 0);
        CU_ASSERT_EQUAL(fakehost_init(fh), 0);
        char want[64];
        snprintf(want, sizeof want, "fsync %s", ok[i]);
        CU_ASSERT_TRUE(fakehost_log_contains(fh, want));
        fakehost_deliver(fh, s_event(fh, i, 5));
        fakehost_tick(fh);
        CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 1);
        fakehost_destroy(&fh);
    }
}

static void test_invalid_fsync_is_rejected_naming_the_setting(void)
{
    fakehost_t *fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI),
                                  s_options("fsync = \"sometimes\";"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_EQUAL(fakehost_validate(fh), -1);
    CU_ASSERT_EQUAL(fakehost_config_errors(fh), 1);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "instances[0].options.fsync"));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "\"sometimes\""));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "fakehost.conf:2"));
    /* validate has no side effects */
    CU_ASSERT_FALSE(s_exists(s_path));
    fakehost_destroy(&fh);
}

static void test_every_bad_option_is_reported_by_name(void)
{
    fakehost_t *fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI),
                                  s_options("file_mode = \"rw-r-----\";\n"
                                            "rotate_keep = -1;\n"
                                            "fsync_interval = 0;"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_EQUAL(fakehost_validate(fh), -1);
    CU_ASSERT_EQUAL(fakehost_config_errors(fh), 3);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.file_mode"));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.rotate_keep"));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.fsync_interval"));
    fakehost_destroy(&fh);

    fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI),
                      s_options("file_mode = \"0440\";"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_EQUAL(fakehost_validate(fh), -1);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.file_mode"));
    fakehost_destroy(&fh);

    /* fsync_interval matters only with fsync = "interval" */
    fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI),
                      s_options("fsync = \"never\";\nfsync_interval = 0;"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_EQUAL(fakehost_validate(fh), 0);
    fakehost_destroy(&fh);
}

static void test_path_naming_a_directory_is_rejected(void)
{
    char opts[600];
    snprintf(opts, sizeof opts, "path = \"%s/\";", s_dir);
    fakehost_t *fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI), opts);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_EQUAL(fakehost_validate(fh), -1);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.path"));
    fakehost_destroy(&fh);
}

static void test_missing_path_is_a_config_error_naming_path(void)
{
    fakehost_t *fh =
        fakehost_new(evbus_plugin_entry(EVB_HOST_ABI), "fsync = \"never\";");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_PTR_NULL(fakehost_instance(fh));
    CU_ASSERT(fakehost_config_errors(fh) >= 1);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "instances[0].options.path"));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "required"));
    CU_ASSERT_EQUAL(fakehost_start(fh), -1);
    fakehost_destroy(&fh);

    /* no options block at all */
    fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_PTR_NULL(fakehost_instance(fh));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.path"));
    fakehost_destroy(&fh);
}

static void test_unknown_option_is_a_config_error(void)
{
    fakehost_t *fh = fakehost_new(evbus_plugin_entry(EVB_HOST_ABI),
                                  s_options("rotate = \"daily\";"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_PTR_NULL(fakehost_instance(fh));
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "options.rotate"));
    fakehost_destroy(&fh);
}

/* ------------------------------------------------------------ write errors */

static void test_write_error_retries_every_held_attempt_naming_the_path(void)
{
    snprintf(s_path, sizeof s_path, "/dev/full");
    fakehost_t *fh = s_started(NULL);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(fakehost_deliver(fh, s_event(fh, i, 30)),
                        EVBUS_PENDING);
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_pending(fh), 0);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_RETRY), 3);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 0);
    for (size_t i = 0; i < 3; i++) {
        fakehost_outcome_t o;
        CU_ASSERT_EQUAL(fakehost_outcome(fh, i, &o), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(o.reason, "write /dev/full"));
        CU_ASSERT_PTR_NOT_NULL(strstr(o.reason, strerror(ENOSPC)));
    }
    /* one log line for the batch, not one per event */
    CU_ASSERT_EQUAL(fakehost_log_count(fh, "write /dev/full"), 1);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "3 events will be retried"));

    /* the next batch fails on its own, and is logged on its own */
    fakehost_deliver(fh, s_event(fh, 9, 30));
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_RETRY), 4);
    CU_ASSERT_EQUAL(fakehost_log_count(fh, "write /dev/full"), 2);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_failed_write_leaves_no_partial_line(void)
{
    fakehost_t *fh = s_started(NULL);
    for (int i = 0; i < 20; i++)
        fakehost_deliver(fh, s_event(fh, i, 100));
    fakehost_tick(fh);
    int64_t before = s_size(s_path);
    CU_ASSERT_FATAL(before > 0);

    /* a file size limit makes write(2) stop part-way through the next
     * batch (a short write, then EFBIG): a torn line unless cut back */
    struct rlimit saved, lim;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &saved), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    for (int i = 20; i < 25; i++)
        CU_ASSERT_EQUAL(fakehost_deliver(fh, s_event(fh, i, 100)),
                        EVBUS_PENDING);
    lim = saved;
    lim.rlim_cur = (rlim_t)before + 150;
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &lim), 0);
    fakehost_tick(fh);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);

    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_RETRY), 5);
    CU_ASSERT_PTR_NOT_NULL(strstr(fakehost_last_reason(fh), s_path));
    size_t len = 0;
    char *got = s_slurp(s_path, &len);
    CU_ASSERT_EQUAL((int64_t)len, before);
    CU_ASSERT(len > 0 && got[len - 1] == '\n');
    CU_ASSERT_EQUAL(s_count_lines(got), 20);
    free(got);

    /* once writes work again, the retried events land whole */
    for (int i = 20; i < 25; i++)
        fakehost_deliver_attempt(fh, s_event(fh, i, 100), 2);
    fakehost_tick(fh);
    CU_ASSERT_EQUAL(fakehost_count(fh, EVBUS_OK), 25);
    got = s_slurp(s_path, NULL);
    CU_ASSERT_EQUAL(s_count_lines(got), 25);
    free(got);
    fakehost_shutdown(fh);
    CU_ASSERT_EQUAL(fakehost_violations(fh), 0);
    fakehost_destroy(&fh);
}

static void test_unopenable_path_fails_init(void)
{
    snprintf(s_path, sizeof s_path, "/proc/evbus-test/events.jsonl");
    fakehost_t *fh =
        fakehost_new(evbus_plugin_entry(EVB_HOST_ABI), s_options(NULL));
    CU_ASSERT_PTR_NOT_NULL_FATAL(fh);
    CU_ASSERT_EQUAL(fakehost_validate(fh), 0);
    CU_ASSERT_EQUAL(fakehost_init(fh), -1);
    CU_ASSERT_TRUE(fakehost_log_contains(fh, "mkdir /proc/evbus-test"));
    fakehost_destroy(&fh);
}

/* ---------------------------------------------------------------- suites */

#define TEST(fn)                                                               \
    {                                                                          \
#fn, fn                                                                \
    }

static CU_TestInfo s_filefmt_tests[] = {
    TEST(test_fsync_parse_accepts_the_three_policies),
    TEST(test_fsync_parse_rejects_other_spellings),
    TEST(test_mode_parse_reads_octal),
    TEST(test_mode_parse_rejects_what_is_not_octal),
    TEST(test_dir_mode_adds_search_where_the_file_is_readable),
    TEST(test_rotated_name_appends_the_number),
    TEST(test_needs_rotation_only_when_the_next_line_would_overflow),
    TEST(test_sync_due_follows_the_policy),
    CU_TEST_INFO_NULL,
};

static CU_TestInfo s_plugin_tests[] = {
    TEST(test_entry_serves_abi_1_and_declines_other_majors),
    TEST(test_lines_are_the_event_json_plus_newline_in_order),
    TEST(test_existing_file_is_appended_to_never_truncated),
    TEST(test_a_partial_last_line_is_ended_before_appending),
    TEST(test_pending_attempts_complete_ok_only_after_tick),
    TEST(test_64k_of_lines_are_written_without_a_tick),
    TEST(test_fsync_always_reports_ok_after_the_batch_is_written),
    TEST(test_fsync_always_syncs_each_batch_before_reporting_ok),
    TEST(test_fsync_never_never_syncs),
    TEST(test_fsync_interval_syncs_at_most_once_per_interval),
    TEST(test_fdatasync_failure_with_fsync_always_retries_the_batch),
    TEST(test_shutdown_writes_and_completes_held_attempts),
    TEST(test_rotation_keeps_every_line_whole_and_in_order),
    TEST(test_rotation_keeps_rotate_keep_files_deleting_the_oldest),
    TEST(test_a_line_longer_than_rotate_size_is_never_split),
    TEST(test_rotate_keep_zero_keeps_only_the_current_file),
    TEST(test_rotate_size_zero_never_rotates),
    TEST(test_reopen_after_rename_writes_a_new_file_at_path),
    TEST(test_deliver_retries_while_the_file_cannot_be_reopened),
    TEST(test_init_creates_missing_parent_directories),
    TEST(test_file_mode_default_is_0640),
    TEST(test_each_fsync_policy_is_accepted),
    TEST(test_invalid_fsync_is_rejected_naming_the_setting),
    TEST(test_every_bad_option_is_reported_by_name),
    TEST(test_path_naming_a_directory_is_rejected),
    TEST(test_missing_path_is_a_config_error_naming_path),
    TEST(test_unknown_option_is_a_config_error),
    TEST(test_write_error_retries_every_held_attempt_naming_the_path),
    TEST(test_failed_write_leaves_no_partial_line),
    TEST(test_unopenable_path_fails_init),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"filefmt", NULL, NULL, NULL, NULL, s_filefmt_tests},
    {"file plugin", NULL, NULL, s_setup, s_teardown, s_plugin_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_file", s_suites);
}
