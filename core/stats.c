#include "stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

evb_stats_t evb_stats;

const char *evb_ingress_name(evb_ingress_t in)
{
    return in == EVB_INGRESS_PUB ? "pub" : in == EVB_INGRESS_ACK ? "ack" : "?";
}

/* ------------------------------------------------------------ by type */

/* Entries live in one array allocated once (so a reader never sees it
 * move) and are published by bumping s_n with release order after the
 * name is set. Ingest finds them through an open-addressing index of its
 * own (twice the capacity, never resized) and a one-entry cache: events
 * tend to come in runs of one type. Entries 0 and 1 are the invalid and
 * the "other" types. */
static size_t s_max_types = EVB_MAX_TYPES_DEFAULT;
static evb_type_stats_t *s_types;
static atomic_size_t s_n;
static size_t s_cap;        /* entries, including the two fixed ones */
static uint32_t *s_index;   /* entry + 1, 0 = empty */
static size_t s_index_size; /* a power of two */
static evb_type_stats_t *s_last;

void evb_stats_set_max_types(size_t max_types)
{
    if (!s_types) /* fixed once the table exists */
        s_max_types = max_types;
}

static uint32_t s_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static evb_type_stats_t *s_add(const char *name, size_t n)
{
    size_t at = atomic_load_explicit(&s_n, memory_order_relaxed);
    char *copy = malloc(n + 1);
    if (!copy)
        return &s_types[1]; /* counted as "other" */
    memcpy(copy, name, n);
    copy[n] = '\0';
    s_types[at].name = copy;
    atomic_store_explicit(&s_n, at + 1, memory_order_release);
    return &s_types[at];
}

static int s_init(void)
{
    s_cap = s_max_types + 2;
    s_index_size = 16;
    while (s_index_size < 2 * s_cap)
        s_index_size *= 2;
    s_types = calloc(s_cap, sizeof *s_types);
    s_index = calloc(s_index_size, sizeof *s_index);
    if (!s_types || !s_index) {
        free(s_types);
        free(s_index);
        s_types = NULL;
        s_index = NULL;
        return -1;
    }
    s_add(EVB_TYPE_INVALID, strlen(EVB_TYPE_INVALID));
    s_add(EVB_TYPE_OTHER, strlen(EVB_TYPE_OTHER));
    return 0;
}

evb_type_stats_t *evb_stats_type(const char *type, size_t n)
{
    static evb_type_stats_t s_nowhere; /* only if the table cannot exist */
    if (!s_types && s_init() < 0)
        return &s_nowhere;
    if (!type || !evb_type_valid(type, n))
        return &s_types[0];
    if (n == sizeof EVB_TYPE_OTHER - 1 && memcmp(type, EVB_TYPE_OTHER, n) == 0)
        return &s_types[1]; /* a type literally named "other" */
    if (s_last && strncmp(s_last->name, type, n) == 0 &&
        s_last->name[n] == '\0')
        return s_last;
    size_t mask = s_index_size - 1;
    for (size_t i = s_hash(type, n) & mask;; i = (i + 1) & mask) {
        uint32_t e = s_index[i];
        if (e == 0) {
            if (atomic_load_explicit(&s_n, memory_order_relaxed) >= s_cap)
                return &s_types[1];
            evb_type_stats_t *t = s_add(type, n);
            if (t != &s_types[1])
                s_index[i] = (uint32_t)(t - s_types) + 1;
            return s_last = t;
        }
        evb_type_stats_t *t = &s_types[e - 1];
        if (strncmp(t->name, type, n) == 0 && t->name[n] == '\0')
            return s_last = t;
    }
}

size_t evb_stats_types(evb_type_stats_t **first)
{
    *first = s_types;
    return s_types ? atomic_load_explicit(&s_n, memory_order_acquire) : 0;
}

void evb_stats_ingress_totals(evb_ingress_t in, evb_ingress_totals_t *out)
{
    memset(out, 0, sizeof *out);
    evb_type_stats_t *t;
    size_t n = evb_stats_types(&t);
    for (size_t i = 0; i < n; i++) {
        out->received += evb_read(&t[i].received[in]);
        out->accepted += evb_read(&t[i].accepted[in]);
        out->duplicates += evb_read(&t[i].duplicates[in]);
        for (int r = 0; r < EVB_REJECT__COUNT; r++) {
            uint64_t v = evb_read(&t[i].rejected[in][r]);
            out->rejected_by[r] += v;
            out->rejected += v;
        }
    }
}

/* --------------------------------------------------------- histograms */

const double evb_hist_bounds[EVB_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,     1,
    2.5,   5,      10,    30,   60,    300,  900, 3600, INFINITY};

void evb_hist_observe(evb_hist_t *h, int64_t us)
{
    if (us < 0)
        us = 0;
    double s = (double)us / 1e6;
    int i = 0;
    while (i < EVB_HIST_BUCKETS - 1 && s > evb_hist_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)us, memory_order_relaxed);
}
