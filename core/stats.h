/* Broker-wide counters and histograms. Lock-free: written by the threads
 * doing the work, read by whoever reports them (the shutdown log line,
 * evbusctl status, and plugins through host->figures(): core/figures.c). */
#ifndef EVB_STATS_H
#define EVB_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef enum evb_ingress {
    EVB_INGRESS_PUB = 0, /* fire-and-forget, SUB socket */
    EVB_INGRESS_ACK,     /* acknowledged, ROUTER socket */
    EVB_INGRESS__COUNT
} evb_ingress_t;

const char *evb_ingress_name(evb_ingress_t in);

/* What ingress did with the messages of one event type. */
typedef struct evb_type_stats {
    const char *name; /* set before the entry is published, then fixed */
    atomic_uint_fast64_t received[EVB_INGRESS__COUNT];
    atomic_uint_fast64_t accepted[EVB_INGRESS__COUNT];
    /* a retry of an accepted id, answered with the original acceptance */
    atomic_uint_fast64_t duplicates[EVB_INGRESS__COUNT];
    atomic_uint_fast64_t rejected[EVB_INGRESS__COUNT][EVB_REJECT__COUNT];
} evb_type_stats_t;

/* The type names that stand for many: messages whose type could not be
 * read (wrong frames, or not a valid type: no valid type starts with '_'),
 * and types beyond the configured number of distinct ones. */
#define EVB_TYPE_INVALID "_invalid"
#define EVB_TYPE_OTHER "other"
#define EVB_MAX_TYPES_DEFAULT 1000

/* How many distinct types get their own counters (ingress.max_types);
 * before ingress starts. Later types are counted under "other", so a
 * publisher inventing types cannot grow the broker's memory or a
 * scraper's series without bound. */
void evb_stats_set_max_types(size_t max_types);
/* The counters of the type in the n bytes at `type` (NULL or not a valid
 * type: EVB_TYPE_INVALID). Ingest's thread only; never NULL. */
evb_type_stats_t *evb_stats_type(const char *type, size_t n);
/* The entries published so far, in the order they were first seen: any
 * thread; each entry stays valid for the life of the process. */
size_t evb_stats_types(evb_type_stats_t **first);

/* Sums over every type, for one ingress. */
typedef struct evb_ingress_totals {
    uint64_t received, accepted, duplicates, rejected;
    uint64_t rejected_by[EVB_REJECT__COUNT];
} evb_ingress_totals_t;
void evb_stats_ingress_totals(evb_ingress_t in, evb_ingress_totals_t *out);

typedef struct evb_stats {
    atomic_uint_fast64_t egress_published; /* events sent on egress */
    atomic_uint_fast64_t egress_dropped;   /* skipped: a subscriber at HWM */
    atomic_uint_fast64_t egress_prefixes;  /* distinct subscriptions held */
    atomic_uint_fast64_t ack_replies_lost; /* peer gone or at its HWM */
    atomic_uint_fast64_t journal_lost;     /* records damage took, found
                                              when the journal was opened */
} evb_stats_t;

extern evb_stats_t evb_stats;

static inline void evb_count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline uint64_t evb_read(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* A latency histogram with fixed buckets (seconds): 1 ms to 1 h, so one
 * set of bounds serves attempt durations and publish-to-delivery times
 * (which include retries). counts[i] is NOT cumulative here; figures.c
 * makes it so. Any thread may observe. */
#define EVB_HIST_BUCKETS 19 /* the last one is +Inf */
extern const double evb_hist_bounds[EVB_HIST_BUCKETS];
typedef struct evb_hist {
    atomic_uint_fast64_t counts[EVB_HIST_BUCKETS];
    atomic_uint_fast64_t sum_us;
} evb_hist_t;
void evb_hist_observe(evb_hist_t *h, int64_t us);

#endif
