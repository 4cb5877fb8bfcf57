/* Subscriptions: topic patterns over dot-separated event types, plus
 * attribute equality filters.
 *
 * Pure code (no event codec): in-tree plugins compile topic.c into
 * themselves to match their own routes with the broker's semantics.
 *
 * Patterns match segment by segment: a literal segment matches itself,
 * `*` matches exactly one segment, `**` (only as the last segment) matches
 * one or more remaining segments, and `**` alone matches every type.
 * `task.*` matches task.failed but not task or task.step.failed;
 * `task.**` matches both of the latter but not task. */
#ifndef EVB_TOPIC_H
#define EVB_TOPIC_H

#include <stddef.h>

/* 1 when type matches pattern. Both are NUL-terminated. */
int evb_topic_match(const char *pattern, const char *type);

/* 0 when pattern is well-formed; else -1 with a reason in err. */
int evb_topic_pattern_check(const char *pattern, char *err, size_t errsz);

typedef struct evb_filter {
    char *attr;  /* project, ticket, agent, source, subject, type, ... */
    char **values; /* the event matches when attr equals any of them */
    size_t n_values;
} evb_filter_t;

typedef struct evb_sub {
    char **patterns; /* an event matches when its type matches any */
    size_t n_patterns;
    evb_filter_t *filters; /* ... and every filter holds */
    size_t n_filters;
} evb_sub_t;

/* Attribute names a filter may name. */
int evb_filter_attr_valid(const char *attr);

/* The event's string attribute `name`, or NULL. */
typedef const char *(*evb_attr_fn)(const void *ctx, const char *name);

/* 1 when `type` matches a pattern and every filter holds, reading the
 * event's attributes through attr(ctx, name). */
int evb_sub_matches_attrs(const evb_sub_t *sub, const char *type,
                          evb_attr_fn attr, const void *ctx);
void evb_sub_clear(evb_sub_t *sub); /* frees the contents */

#endif
