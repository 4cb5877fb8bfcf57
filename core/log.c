#include "log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "event.h" /* evb_format_time */

static atomic_int s_level = EVBUS_LOG_INFO;
static atomic_int s_fd = 2;

static const char *const s_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void evb_log_set_level(int level)
{
    if (level < EVBUS_LOG_ERROR)
        level = EVBUS_LOG_ERROR;
    if (level > EVBUS_LOG_DEBUG)
        level = EVBUS_LOG_DEBUG;
    atomic_store(&s_level, level);
}

int evb_log_level(void)
{
    return atomic_load(&s_level);
}

int evb_log_level_parse(const char *name)
{
    static const char *const lower[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, lower[i]) == 0)
            return i;
    return -1;
}

void evb_log_set_fd(int fd)
{
    atomic_store(&s_fd, fd);
}

void evb_logv(int level, const char *who, const char *fmt, va_list ap)
{
    if (level > atomic_load(&s_level))
        return;
    if (level < 0)
        level = 0;
    if (level > 3)
        level = 3;
    char line[4096];
    char ts[32];
    evb_format_time(ts, evb_now_ms());
    int n;
    if (who)
        n = snprintf(line, sizeof line, "%s %-5s [%s] ", ts, s_names[level],
                     who);
    else
        n = snprintf(line, sizeof line, "%s %-5s ", ts, s_names[level]);
    if (n < 0 || (size_t)n >= sizeof line)
        n = 0;
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
        memcpy(line + len - 3, "...", 3);
    }
    /* one record, one line: fold any newline the message carries */
    for (size_t i = (size_t)n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    int fd = atomic_load(&s_fd);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void evb_log(int level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evb_logv(level, who, fmt, ap);
    va_end(ap);
}

void evb_log_limitedv(evb_ratelimit_t *rl, int level, const char *who,
                      const char *fmt, va_list ap)
{
    if (level > atomic_load(&s_level))
        return;
    int64_t now = evb_mono_ms();
    long held = 0;
    int emit = 0;
    while (__atomic_exchange_n(&rl->lock, 1, __ATOMIC_ACQUIRE))
        ;
    if (now - rl->window_start >= rl->window_ms) {
        rl->window_start = now;
        rl->in_window = 0;
        held = rl->suppressed;
        rl->suppressed = 0;
    }
    if (rl->in_window < rl->burst) {
        rl->in_window++;
        emit = 1;
    } else {
        rl->suppressed++;
    }
    __atomic_store_n(&rl->lock, 0, __ATOMIC_RELEASE);
    if (!emit)
        return;
    if (held)
        evb_log(level, who, "(%ld similar lines suppressed in the last %lds)",
                held, (long)(rl->window_ms / 1000));
    evb_logv(level, who, fmt, ap);
}

void evb_log_limited(evb_ratelimit_t *rl, int level, const char *who,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    evb_log_limitedv(rl, level, who, fmt, ap);
    va_end(ap);
}
