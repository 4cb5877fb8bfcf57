#include "topic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the segment starting at s (up to '.' or NUL). */
static size_t s_seglen(const char *s)
{
    size_t n = 0;
    while (s[n] && s[n] != '.')
        n++;
    return n;
}

int evb_topic_match(const char *pattern, const char *type)
{
    const char *p = pattern, *t = type;
    for (;;) {
        size_t pl = s_seglen(p);
        size_t tl = s_seglen(t);
        if (pl == 2 && p[0] == '*' && p[1] == '*' && p[2] == '\0')
            return tl > 0; /* rest of the type, at least one segment */
        if (tl == 0)
            return 0; /* type ran out before the pattern */
        if (!(pl == 1 && p[0] == '*') &&
            (pl != tl || memcmp(p, t, pl) != 0))
            return 0;
        p += pl;
        t += tl;
        if (*p == '\0')
            return *t == '\0';
        if (*t == '\0')
            return 0;
        p++; /* skip the dots */
        t++;
    }
}

int evb_topic_pattern_check(const char *pattern, char *err, size_t errsz)
{
    if (!pattern || !*pattern) {
        snprintf(err, errsz, "empty topic pattern");
        return -1;
    }
    if (strlen(pattern) > 255) {
        snprintf(err, errsz, "topic pattern longer than 255 bytes");
        return -1;
    }
    const char *p = pattern;
    for (;;) {
        size_t n = s_seglen(p);
        if (n == 0) {
            snprintf(err, errsz,
                     "topic pattern \"%s\" has an empty segment", pattern);
            return -1;
        }
        int wild = memchr(p, '*', n) != NULL;
        if (wild) {
            if (n == 2 && p[1] == '*') {
                if (p[2] != '\0') {
                    snprintf(err, errsz,
                             "topic pattern \"%s\": \"**\" may only be the "
                             "last segment", pattern);
                    return -1;
                }
            } else if (n != 1) {
                snprintf(err, errsz,
                         "topic pattern \"%s\": \"*\" must be a whole "
                         "segment", pattern);
                return -1;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                char c = p[i];
                int ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                         ((c == '_' || c == '-') && i > 0);
                if (!ok) {
                    snprintf(err, errsz,
                             "topic pattern \"%s\": segment \"%.*s\" is not "
                             "lower-case [a-z0-9_-]", pattern, (int)n, p);
                    return -1;
                }
            }
        }
        p += n;
        if (*p == '\0')
            return 0;
        p++;
    }
}

int evb_filter_attr_valid(const char *attr)
{
    /* CloudEvents attribute names: lower-case letters and digits, <= 20 */
    size_t n = strlen(attr);
    if (n == 0 || n > 20 || strcmp(attr, "data") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((attr[i] >= 'a' && attr[i] <= 'z') ||
              (attr[i] >= '0' && attr[i] <= '9')))
            return 0;
    return 1;
}

int evb_sub_matches_attrs(const evb_sub_t *sub, const char *type,
                          evb_attr_fn attr, const void *ctx)
{
    int hit = 0;
    for (size_t i = 0; i < sub->n_patterns && !hit; i++)
        hit = evb_topic_match(sub->patterns[i], type);
    if (!hit)
        return 0;
    for (size_t i = 0; i < sub->n_filters; i++) {
        const evb_filter_t *f = &sub->filters[i];
        const char *v = attr(ctx, f->attr);
        int ok = 0;
        for (size_t j = 0; v && j < f->n_values && !ok; j++)
            ok = strcmp(v, f->values[j]) == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

void evb_sub_clear(evb_sub_t *sub)
{
    for (size_t i = 0; i < sub->n_patterns; i++)
        free(sub->patterns[i]);
    free(sub->patterns);
    for (size_t i = 0; i < sub->n_filters; i++) {
        free(sub->filters[i].attr);
        for (size_t j = 0; j < sub->filters[i].n_values; j++)
            free(sub->filters[i].values[j]);
        free(sub->filters[i].values);
    }
    free(sub->filters);
    memset(sub, 0, sizeof *sub);
}
