/* Broker-wide counters. Lock-free, read by whoever reports them (logs at
 * shutdown today, the metrics plugin through the host table later). */
#ifndef EVB_STATS_H
#define EVB_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "event.h"

typedef enum evb_ingress {
    EVB_INGRESS_PUB = 0, /* fire-and-forget, SUB socket */
    EVB_INGRESS_ACK,     /* acknowledged, ROUTER socket */
    EVB_INGRESS__COUNT
} evb_ingress_t;

const char *evb_ingress_name(evb_ingress_t in);

typedef struct evb_stats {
    atomic_uint_fast64_t received[EVB_INGRESS__COUNT];
    atomic_uint_fast64_t accepted[EVB_INGRESS__COUNT];
    atomic_uint_fast64_t rejected[EVB_INGRESS__COUNT][EVB_REJECT__COUNT];
    /* a retry of an accepted id, answered with the original acceptance */
    atomic_uint_fast64_t duplicates[EVB_INGRESS__COUNT];
    atomic_uint_fast64_t egress_published; /* events sent on egress */
    atomic_uint_fast64_t egress_dropped;   /* skipped: a subscriber at HWM */
    atomic_uint_fast64_t ack_replies_lost; /* peer gone or at its HWM */
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

#endif
