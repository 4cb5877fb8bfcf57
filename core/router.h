/* The router: the accept stage of the pipeline and the fan-out to plugin
 * instances.
 *
 *   ingress (bus.c) -> decode/validate (event.c) -> evb_router_accept():
 *       [durable journal append goes here: the event is "accepted" once it
 *        is safe; today that is once it is in every matching queue]
 *       -> egress (bus.c publishes after accept returns)
 *       -> every instance whose subscription matches (instance.c)
 */
#ifndef EVB_ROUTER_H
#define EVB_ROUTER_H

#include <stddef.h>

#include "event.h"
#include "instance.h"

typedef struct evb_router {
    evb_instance_t **instances;
    size_t n_instances;
    uint64_t next_seq;
} evb_router_t;

/* Accept one decoded event: give it its sequence number and hand it to
 * every matching instance (woken by evb_router_kick). Returns 0, or -1 with *why when the event
 * cannot be accepted now (the journal's place; never today). Main
 * thread. */
int evb_router_accept(evb_router_t *r, evb_event_t *ev, evb_reject_t *why);

/* Wake the workers of every instance that got events since the last
 * kick: once per ingest batch. Returns the largest number of events any
 * instance holds. Main thread. */
int evb_router_kick(evb_router_t *r);

/* SIGHUP for every instance. */
void evb_router_reopen(evb_router_t *r);

#endif
