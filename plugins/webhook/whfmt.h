/* The webhook plugin's pure helpers: what an HTTP answer means, Retry-After,
 * URLs as they may appear in logs, response excerpts. No I/O, no curl, so
 * every rule is unit-tested byte for byte (tests/plugins/test_webhook.c). */
#ifndef WHFMT_H
#define WHFMT_H

#include <stddef.h>
#include <stdint.h>

/* What one request's answer means for its endpoint. */
typedef enum {
    WHFMT_OK,        /* 2xx: delivered */
    WHFMT_RETRY,     /* network error, timeout, 408, 429, 5xx */
    WHFMT_PERMANENT, /* 3xx (redirects are not followed), other 4xx, 1xx */
    WHFMT_GONE       /* 410: permanent, and the endpoint is disabled */
} whfmt_outcome_t;

/* transport_ok: the exchange completed (an HTTP status was read). */
whfmt_outcome_t whfmt_classify(int transport_ok, long status);

/* Retry-After (RFC 9110): delay-seconds or an HTTP-date (IMF-fixdate, and
 * the obsolete RFC 850 and asctime forms). Milliseconds from now_ms, 0 for
 * a date in the past, capped at one day; -1 when the value is neither. */
int64_t whfmt_retry_after_ms(const char *value, int64_t now_ms);

/* A Retry-After response header line ("Retry-After: 120\r\n", any case)
 * as libcurl's header callback hands it: its value without surrounding
 * blanks into out (cut to cap - 1), 1; 0 for any other line (out left as
 * it was). */
int whfmt_retry_after_header(const char *line, size_t len, char *out,
                             size_t cap);

/* The URL as logs may show it: scheme, host, port and path, without
 * userinfo, query or fragment (which often carry tokens). */
void whfmt_url_label(const char *url, char *out, size_t cap);

/* 0 when url is http:// or https:// with a host; else -1 and why. */
int whfmt_url_check(const char *url, char *why, size_t whysz);

/* The first bytes of a response body for a log line or a dead letter:
 * at most `max` bytes, control characters as spaces, "..." appended when
 * cut. Always NUL-terminates out (cap >= 4). */
void whfmt_excerpt(const char *body, size_t len, size_t max, char *out,
                   size_t cap);

#endif
