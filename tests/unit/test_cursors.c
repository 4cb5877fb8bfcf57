/* The cursor store (core/cursors.c): cursors and the manifest on disk,
 * and where an instance resumes when they are damaged or gone. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cursors.h"
#include "journal.h"
#include "testlog.h"
#include "testmain.h"

/* A fresh journal directory (only its cursors matter here). */
static const char *s_newdir(void)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/jXXXXXX", s_dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    return dir;
}

static void s_write(const char *dir, const char *file, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static int s_read(const char *dir, const char *file, char *buf, size_t n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
    return 0;
}

static int s_exists(const char *dir, const char *file)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

/* A cursor file's content, as the store writes it. */
static void s_line(const char *name, uint64_t seq, char *out, size_t n)
{
    int k = snprintf(out, n, "evbus-cursor 2 %s %llu ", name,
                     (unsigned long long)seq);
    snprintf(out + k, n - (size_t)k, "%08x\n", evb_crc32c(0, out, (size_t)k));
}

static evb_cursors_t *s_open(const char *dir, uint64_t first, uint64_t end)
{
    char err[512] = "";
    evb_cursors_t *c = evb_cursors_open(dir, first, end, err, sizeof err);
    if (!c)
        fprintf(stderr, "\n  open %s: %s", dir, err);
    return c;
}

/* The store of a journal holding seqs 101..1000 in which `name`, new
 * from the oldest record (100), saved `before` when not 0, then `seq`. */
static const char *s_saved(const char *name, uint64_t before, uint64_t seq)
{
    const char *dir = s_newdir();
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur;
    CU_ASSERT_EQUAL(evb_cursors_load(c, name, 1, &cur), EVB_CURSOR_NEW);
    char err[256];
    if (before)
        CU_ASSERT_EQUAL(evb_cursors_save(c, name, before, err, sizeof err), 0);
    CU_ASSERT_EQUAL(evb_cursors_save(c, name, seq, err, sizeof err), 0);
    evb_cursors_close(&c);
    return dir;
}

static void test_a_new_instance_starts_at_the_end_or_the_oldest_record(void)
{
    const char *dir = s_newdir();
    evb_cursors_t *c = s_open(dir, 101, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint64_t cur = 7;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur), EVB_CURSOR_NEW);
    CU_ASSERT_EQUAL(cur, 1000);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "history", 1, &cur), EVB_CURSOR_NEW);
    CU_ASSERT_EQUAL(cur, 100);
    evb_cursors_close(&c);
    /* both are on disk, and listed in the manifest */
    char buf[512], want[128];
    CU_ASSERT_EQUAL(s_read(dir, "cursors/hooks.cursor", buf, sizeof buf), 0);
    s_line("hooks", 1000, want, sizeof want);
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(s_read(dir, "manifest", buf, sizeof buf), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "evbus-journal 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "instance hooks\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "instance history\n"));
    c = s_open(dir, 101, 1000);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "history", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 100);
    evb_cursors_close(&c);
}

static void test_a_saved_cursor_is_resumed_and_the_previous_one_kept(void)
{
    const char *dir = s_saved("hooks", 400, 500);
    char buf[256], want[128];
    CU_ASSERT_EQUAL(s_read(dir, "cursors/hooks.prev", buf, sizeof buf), 0);
    s_line("hooks", 400, want, sizeof want);
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_FALSE(s_exists(dir, "cursors/hooks.tmp"));
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur;
    s_log_reset();
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 500);
    s_log_read();
    CU_ASSERT_PTR_NULL(strstr(s_log, "ERROR"));
    evb_cursors_close(&c);
}

/* Each kind of damage to the cursor: it resumes from the one before
 * (400), never after it, and says so. */
static void test_a_damaged_cursor_resumes_from_the_previous_one(void)
{
    char other[128], past[128];
    s_line("other", 500, other, sizeof other);
    s_line("hooks", 5000, past, sizeof past);
    struct {
        const char *content; /* NULL: deleted */
        const char *said;
    } cases[] = {
        {"", "is empty"},
        {"garbage\x01\xff", "is not a cursor of this format"},
        {"600\n",
         "is not a cursor of this format"}, /* format 1 once upgraded */
        {"evbus-cursor 2 hooks 600 00000000\n", "has a checksum mismatch"},
        {other, "names instance \"other\""},
        {past, "says seq 5000, past the journal's end (seq 1000)"},
        {NULL, "is missing, although the journal's manifest lists"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *dir = s_saved("hooks", 400, 500);
        char path[1024];
        snprintf(path, sizeof path, "%s/cursors/hooks.cursor", dir);
        if (cases[i].content)
            s_write(dir, "cursors/hooks.cursor", cases[i].content);
        else
            CU_ASSERT_EQUAL(unlink(path), 0);
        evb_cursors_t *c = s_open(dir, 101, 1000);
        uint64_t cur = 0;
        s_log_reset();
        CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur),
                        EVB_CURSOR_RECOVERED);
        CU_ASSERT_EQUAL(cur, 400);
        s_log_read();
        CU_ASSERT_TRUE(
            s_logged("ERROR [hooks] cursor %s %s", path, cases[i].said));
        CU_ASSERT_TRUE(s_logged("resuming after seq 400 (the cursor saved "
                                "before it)"));
        evb_cursors_close(&c);
        /* the recovered cursor is saved: the next start is clean */
        c = s_open(dir, 101, 1000);
        CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur),
                        EVB_CURSOR_SAVED);
        CU_ASSERT_EQUAL(cur, 400);
        evb_cursors_close(&c);
    }
}

static void test_without_a_fallback_it_resumes_from_the_oldest_record(void)
{
    const char *dir = s_saved("hooks", 0, 500);
    char prev[1024];
    snprintf(prev, sizeof prev, "%s/cursors/hooks.prev", dir);
    CU_ASSERT_EQUAL(unlink(prev), 0);
    s_write(dir, "cursors/hooks.cursor", "5");
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur = 0;
    s_log_reset();
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur),
                    EVB_CURSOR_RECOVERED);
    CU_ASSERT_EQUAL(cur, 100); /* every retained record comes again */
    s_log_read();
    CU_ASSERT_TRUE(s_logged("resuming after seq 100 (the oldest record in "
                            "the journal)"));
    evb_cursors_close(&c);
}

static void test_a_save_cut_short_between_its_renames_is_used(void)
{
    /* a crash after the old cursor became .prev and before .tmp became
     * the cursor: .tmp was synced first, so it is whole and newest */
    const char *dir = s_saved("hooks", 400, 500);
    char path[1024], tmp[1024];
    snprintf(path, sizeof path, "%s/cursors/hooks.cursor", dir);
    snprintf(tmp, sizeof tmp, "%s/cursors/hooks.tmp", dir);
    CU_ASSERT_EQUAL(rename(path, tmp), 0);
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur = 0;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur),
                    EVB_CURSOR_RECOVERED);
    CU_ASSERT_EQUAL(cur, 500);
    evb_cursors_close(&c);
}

static void test_a_format_1_journal_is_upgraded_once(void)
{
    const char *dir = s_newdir();
    char cdir[1024];
    snprintf(cdir, sizeof cdir, "%s/cursors", dir);
    CU_ASSERT_EQUAL_FATAL(mkdir(cdir, 0750), 0);
    s_write(dir, "cursors/hooks.cursor", "321\n");
    s_write(dir, "cursors/gone.cursor", "7\n");
    s_log_reset();
    evb_cursors_t *c = s_open(dir, 1, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s_log_read();
    CU_ASSERT_TRUE(s_logged("written for the 2 instances with a cursor "
                            "(journal format 1 -> 2)"));
    uint64_t cur = 0;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 321);
    /* the unconfigured one is known too: an orphan, not forgotten */
    CU_ASSERT_EQUAL(evb_cursors_find_orphans(c, 1000), 1);
    evb_cursors_close(&c);
    char buf[256], want[128];
    CU_ASSERT_EQUAL(s_read(dir, "cursors/hooks.cursor", buf, sizeof buf), 0);
    s_line("hooks", 321, want, sizeof want);
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(s_read(dir, "cursors/gone.cursor", buf, sizeof buf), 0);
    s_line("gone", 7, want, sizeof want);
    CU_ASSERT_STRING_EQUAL(buf, want);
}

static void test_a_damaged_manifest_is_rebuilt_and_nothing_is_skipped(void)
{
    const char *dir = s_saved("hooks", 0, 500);
    s_write(dir, "manifest", "evbus-journal 2\ninstance hooks\nend 0000\n");
    s_log_reset();
    evb_cursors_t *c = s_open(dir, 101, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s_log_read();
    CU_ASSERT_TRUE(s_logged("manifest is cut short or has trailing bytes: "
                            "rebuilt from the cursor files"));
    uint64_t cur = 0;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 500);
    /* one that may have been listed: from the oldest, not the end */
    CU_ASSERT_EQUAL(evb_cursors_load(c, "maybe", 0, &cur),
                    EVB_CURSOR_RECOVERED);
    CU_ASSERT_EQUAL(cur, 100);
    evb_cursors_close(&c);
    c = s_open(dir, 101, 1000); /* and it is whole again */
    CU_ASSERT_EQUAL(evb_cursors_load(c, "maybe", 0, &cur), EVB_CURSOR_SAVED);
    evb_cursors_close(&c);
}

static void test_a_deleted_manifest_is_noticed_and_nothing_is_skipped(void)
{
    const char *dir = s_saved("hooks", 0, 500);
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest", dir);
    CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
    s_log_reset();
    evb_cursors_t *c = s_open(dir, 101, 1000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    s_log_read();
    /* format-2 cursors are there: not an upgrade, a lost manifest */
    CU_ASSERT_TRUE(s_logged("manifest is missing: rebuilt from the cursor "
                            "files"));
    CU_ASSERT_PTR_NULL(strstr(s_log, "format 1 -> 2"));
    uint64_t cur = 0;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "hooks", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 500);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "cursor-gone-too", 0, &cur),
                    EVB_CURSOR_RECOVERED);
    CU_ASSERT_EQUAL(cur, 100);
    evb_cursors_close(&c);
}

static void test_a_manifest_of_a_newer_format_is_refused(void)
{
    const char *dir = s_newdir();
    s_write(dir, "manifest", "evbus-journal 3\nend 00000000\n");
    char err[512] = "";
    CU_ASSERT_PTR_NULL(evb_cursors_open(dir, 0, 0, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is of journal format 3"));
}

static void test_rename_from_takes_over_the_lower_cursor(void)
{
    const char *dir = s_saved("old", 0, 300);
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur;
    /* a first start under the new name without rename_from: new, at the
     * end, and "old" an orphan */
    CU_ASSERT_EQUAL(evb_cursors_load(c, "new", 0, &cur), EVB_CURSOR_NEW);
    CU_ASSERT_EQUAL(evb_cursors_find_orphans(c, 1000), 1);
    evb_cursors_close(&c);
    c = s_open(dir, 101, 1000);
    CU_ASSERT_EQUAL(evb_cursors_adopt(c, "old", "new"), 1);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "new", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 300);
    CU_ASSERT_EQUAL(evb_cursors_find_orphans(c, 1000), 0);
    evb_cursors_close(&c);
    CU_ASSERT_FALSE(s_exists(dir, "cursors/old.cursor"));
    char buf[512];
    CU_ASSERT_EQUAL(s_read(dir, "manifest", buf, sizeof buf), 0);
    CU_ASSERT_PTR_NULL(strstr(buf, "instance old\n"));
    /* on the next start the setting is still there: nothing to take */
    c = s_open(dir, 101, 1000);
    CU_ASSERT_EQUAL(evb_cursors_adopt(c, "old", "new"), 0);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "new", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(cur, 300);
    evb_cursors_close(&c);
}

static void test_orphans_hold_retention_until_dropped(void)
{
    const char *dir = s_saved("gone", 0, 250);
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "kept", 0, &cur), EVB_CURSOR_NEW);
    s_log_reset();
    CU_ASSERT_EQUAL(evb_cursors_find_orphans(c, 1000), 1);
    s_log_read();
    CU_ASSERT_TRUE(s_logged("WARN  instance \"gone\" is no longer "
                            "configured, but its cursor is kept: 750 "
                            "journal records after seq 250 unread"));
    CU_ASSERT_EQUAL(evb_cursors_orphan_min(c), 250);
    char name[80];
    CU_ASSERT_EQUAL(evb_cursors_orphan(c, 0, name, sizeof name, &cur), 0);
    CU_ASSERT_STRING_EQUAL(name, "gone");
    CU_ASSERT_EQUAL(cur, 250);
    CU_ASSERT_EQUAL(evb_cursors_orphan(c, 1, name, sizeof name, &cur), -1);
    char err[256];
    CU_ASSERT_EQUAL(evb_cursors_drop(c, "kept", &cur, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "is configured"));
    CU_ASSERT_EQUAL(evb_cursors_drop(c, "nope", &cur, err, sizeof err), -1);
    CU_ASSERT_EQUAL(evb_cursors_drop(c, "gone", &cur, err, sizeof err), 0);
    CU_ASSERT_EQUAL(cur, 250);
    CU_ASSERT_EQUAL(evb_cursors_orphan_min(c), UINT64_MAX);
    evb_cursors_close(&c);
    CU_ASSERT_FALSE(s_exists(dir, "cursors/gone.cursor"));
    CU_ASSERT_FALSE(s_exists(dir, "cursors/gone.prev"));
    c = s_open(dir, 101, 1000);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "kept", 0, &cur), EVB_CURSOR_SAVED);
    CU_ASSERT_EQUAL(evb_cursors_find_orphans(c, 1000), 0);
    evb_cursors_close(&c);
}

/* A cursor that moved back (taken over, recovered) drops its .prev: the
 * fallback never lies ahead of the cursor. */
static void test_a_cursor_moved_back_keeps_no_fallback_ahead_of_it(void)
{
    const char *dir = s_saved("old", 0, 300);
    evb_cursors_t *c = s_open(dir, 101, 1000);
    uint64_t cur;
    CU_ASSERT_EQUAL(evb_cursors_load(c, "new", 0, &cur), EVB_CURSOR_NEW);
    char err[256];
    CU_ASSERT_EQUAL(evb_cursors_save(c, "new", 900, err, sizeof err), 0);
    CU_ASSERT_EQUAL(evb_cursors_save(c, "new", 950, err, sizeof err), 0);
    evb_cursors_close(&c);
    c = s_open(dir, 101, 1000);
    CU_ASSERT_EQUAL(evb_cursors_adopt(c, "old", "new"), 1);
    evb_cursors_close(&c);
    s_write(dir, "cursors/new.cursor", "junk");
    c = s_open(dir, 101, 1000);
    CU_ASSERT_EQUAL(evb_cursors_load(c, "new", 0, &cur), EVB_CURSOR_RECOVERED);
    CU_ASSERT_EQUAL(cur, 100); /* not 900 or 950 */
    evb_cursors_close(&c);
}

static int s_init(void)
{
    return testlog_open("evb_test_cursors");
}

static int s_clean(void)
{
    testlog_close();
    return 0;
}

static CU_TestInfo s_tests[] = {
    {"a_new_instance_starts_at_the_end_or_the_oldest_record",
     test_a_new_instance_starts_at_the_end_or_the_oldest_record},
    {"a_saved_cursor_is_resumed_and_the_previous_one_kept",
     test_a_saved_cursor_is_resumed_and_the_previous_one_kept},
    {"a_damaged_cursor_resumes_from_the_previous_one",
     test_a_damaged_cursor_resumes_from_the_previous_one},
    {"without_a_fallback_it_resumes_from_the_oldest_record",
     test_without_a_fallback_it_resumes_from_the_oldest_record},
    {"a_save_cut_short_between_its_renames_is_used",
     test_a_save_cut_short_between_its_renames_is_used},
    {"a_format_1_journal_is_upgraded_once",
     test_a_format_1_journal_is_upgraded_once},
    {"a_damaged_manifest_is_rebuilt_and_nothing_is_skipped",
     test_a_damaged_manifest_is_rebuilt_and_nothing_is_skipped},
    {"a_deleted_manifest_is_noticed_and_nothing_is_skipped",
     test_a_deleted_manifest_is_noticed_and_nothing_is_skipped},
    {"a_manifest_of_a_newer_format_is_refused",
     test_a_manifest_of_a_newer_format_is_refused},
    {"rename_from_takes_over_the_lower_cursor",
     test_rename_from_takes_over_the_lower_cursor},
    {"orphans_hold_retention_until_dropped",
     test_orphans_hold_retention_until_dropped},
    {"a_cursor_moved_back_keeps_no_fallback_ahead_of_it",
     test_a_cursor_moved_back_keeps_no_fallback_ahead_of_it},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"cursors", s_init, s_clean, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_cursors", s_suites);
}
