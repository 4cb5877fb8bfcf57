#include "whfmt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DAY_MS (24LL * 3600 * 1000)

whfmt_outcome_t whfmt_classify(int transport_ok, long status)
{
    if (!transport_ok)
        return WHFMT_RETRY;
    if (status >= 200 && status < 300)
        return WHFMT_OK;
    if (status == 408 || status == 429 || (status >= 500 && status < 600))
        return WHFMT_RETRY;
    if (status == 410)
        return WHFMT_GONE;
    return WHFMT_PERMANENT;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
 * "Sun Nov  6 08:49:37 1994": Unix seconds, or -1. */
static int64_t s_http_date(const char *v)
{
    static const char *const formats[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                          "%A, %d-%b-%y %H:%M:%S GMT",
                                          "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(v, formats[i], &tm);
        if (!end)
            continue;
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end)
            continue;
        return (int64_t)timegm(&tm);
    }
    return -1;
}

int64_t whfmt_retry_after_ms(const char *value, int64_t now_ms)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (!*value)
        return -1;
    if (isdigit((unsigned char)*value)) {
        char *end;
        unsigned long long s = strtoull(value, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end)
            return -1;
        if (s > (unsigned long long)(DAY_MS / 1000))
            return DAY_MS;
        return (int64_t)s * 1000;
    }
    int64_t at = s_http_date(value);
    if (at < 0)
        return -1;
    int64_t ms = at * 1000 - now_ms;
    return ms < 0 ? 0 : ms > DAY_MS ? DAY_MS : ms;
}

void whfmt_url_label(const char *url, char *out, size_t cap)
{
    if (!cap)
        return;
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t scheme_len = p ? (size_t)(host - url) : 0;
    /* userinfo ends at the last '@' before the path */
    size_t auth_len = strcspn(host, "/?#");
    const char *at = NULL;
    for (size_t i = 0; i < auth_len; i++)
        if (host[i] == '@')
            at = host + i;
    if (at) {
        auth_len -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    size_t path_len = strcspn(host + auth_len, "?#");
    snprintf(out, cap, "%.*s%.*s", (int)scheme_len, url,
             (int)(auth_len + path_len), host);
}

int whfmt_url_check(const char *url, char *why, size_t whysz)
{
    const char *rest = NULL;
    if (strncasecmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncasecmp(url, "https://", 8) == 0)
        rest = url + 8;
    if (!rest) {
        snprintf(why, whysz, "expected an http:// or https:// URL");
        return -1;
    }
    const char *at = rest;
    size_t auth_len = strcspn(rest, "/?#");
    for (size_t i = 0; i < auth_len; i++)
        if (rest[i] == '@')
            at = rest + i + 1;
    size_t host_len = auth_len - (size_t)(at - rest);
    if (host_len == 0 || *at == ':') {
        snprintf(why, whysz, "the URL has no host");
        return -1;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, whysz,
                     "the URL contains a space or a control character");
            return -1;
        }
    return 0;
}

int whfmt_retry_after_header(const char *line, size_t len, char *out,
                             size_t cap)
{
    static const char name[] = "retry-after:";
    size_t n = sizeof name - 1;
    if (len <= n || strncasecmp(line, name, n) != 0 || cap == 0)
        return 0;
    size_t v = n;
    while (v < len && (line[v] == ' ' || line[v] == '\t'))
        v++;
    size_t end = len;
    while (end > v && (line[end - 1] == '\r' || line[end - 1] == '\n' ||
                       line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    size_t m = end - v < cap - 1 ? end - v : cap - 1;
    memcpy(out, line + v, m);
    out[m] = '\0';
    return 1;
}

void whfmt_excerpt(const char *body, size_t len, size_t max, char *out,
                   size_t cap)
{
    if (cap < 4) {
        if (cap)
            out[0] = '\0';
        return;
    }
    size_t n = len < max ? len : max;
    if (n > cap - 4)
        n = cap - 4;
    /* don't cut a UTF-8 sequence in the middle */
    if (n < len)
        while (n > 0 && ((unsigned char)body[n] & 0xc0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)body[i];
        out[i] = c < ' ' || c == 0x7f ? ' ' : (char)c;
    }
    if (n < len)
        memcpy(out + n, "...", 4);
    else
        out[n] = '\0';
}
