/* For tests of code that reports through core/log.c: a scratch directory
 * and the broker's log captured in a file, read back into s_log.
 *
 *   suite init:  testlog_open("evb_test_config")   (0 or -1)
 *   suite clean: testlog_close()                    (removes the directory)
 *   per check:   s_log_reset(); ...code that logs...; s_log_read();
 *                CU_ASSERT_TRUE(s_logged("%s:2: egress.sub: ...", path));
 */
#ifndef EVB_TESTLOG_H
#define EVB_TESTLOG_H

#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "log.h"

static char s_dir[256];   /* the scratch directory */
static int s_logfd = -1;  /* where the broker's log goes */
static char s_log[65536]; /* what it said since s_log_reset() */

static inline int testlog_rm(const char *path, const struct stat *st,
                             int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline int testlog_open(const char *prefix)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/%s.XXXXXX", prefix);
    if (!mkdtemp(s_dir))
        return -1;
    char logpath[512];
    snprintf(logpath, sizeof logpath, "%s/log", s_dir);
    s_logfd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (s_logfd < 0)
        return -1;
    evb_log_set_fd(s_logfd);
    return 0;
}

static inline void testlog_close(void)
{
    evb_log_set_fd(2);
    if (s_logfd >= 0)
        close(s_logfd);
    s_logfd = -1;
    nftw(s_dir, testlog_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void s_log_reset(void)
{
    CU_ASSERT_EQUAL(ftruncate(s_logfd, 0), 0);
    lseek(s_logfd, 0, SEEK_SET);
    s_log[0] = '\0';
}

static inline void s_log_read(void)
{
    ssize_t n = pread(s_logfd, s_log, sizeof s_log - 1, 0);
    s_log[n > 0 ? n : 0] = '\0';
}

/* 1 when the captured log holds the formatted text; else prints the log
 * so a failure says what was logged instead. */
static inline int s_logged(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline int s_logged(const char *fmt, ...)
{
    char want[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    if (strstr(s_log, want))
        return 1;
    fprintf(stderr, "\n  wanted in the log: %s\n  the log was:\n%s\n", want,
            s_log);
    return 0;
}

/* How many times `needle` occurs in the captured log. */
static inline int s_count_lines(const char *needle)
{
    int n = 0;
    for (const char *p = s_log; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#endif
