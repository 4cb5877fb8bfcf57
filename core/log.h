/* Logging: one line per record on stderr,
 *   2026-11-22T10:00:00.123Z WARN  [instance] message
 * written with a single write(2) so lines from threads never interleave. */
#ifndef EVB_LOG_H
#define EVB_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include <evbus/plugin.h> /* EVBUS_LOG_* levels */

void evb_log_set_level(int level);
int evb_log_level(void);
/* "error", "warn", "info", "debug" -> level, or -1. */
int evb_log_level_parse(const char *name);
/* Send lines to fd (default 2). For tests. */
void evb_log_set_fd(int fd);

/* `who` is the instance name (or NULL for the broker itself). */
void evb_log(int level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void evb_logv(int level, const char *who, const char *fmt, va_list ap);

#define evb_error(...) evb_log(EVBUS_LOG_ERROR, NULL, __VA_ARGS__)
#define evb_warn(...) evb_log(EVBUS_LOG_WARN, NULL, __VA_ARGS__)
#define evb_info(...) evb_log(EVBUS_LOG_INFO, NULL, __VA_ARGS__)
#define evb_debug(...) evb_log(EVBUS_LOG_DEBUG, NULL, __VA_ARGS__)

/* A bounded-rate log: at most `burst` lines per `window_ms`; what is held
 * back is counted and summarised ("... 1234 similar lines suppressed") in
 * the first line let through after the window. One per kind of message;
 * thread-safe. */
typedef struct evb_ratelimit {
    int64_t window_ms;
    int burst;
    int64_t window_start;
    int in_window;
    long suppressed;
    int lock; /* spin flag */
} evb_ratelimit_t;

#define EVB_RATELIMIT_INIT(window_ms, burst) {(window_ms), (burst), 0, 0, 0, 0}

void evb_log_limited(evb_ratelimit_t *rl, int level, const char *who,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void evb_log_limitedv(evb_ratelimit_t *rl, int level, const char *who,
                      const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
