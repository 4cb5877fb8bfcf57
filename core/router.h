/* The router: the accept stage of the pipeline and the fan-out to plugin
 * instances.
 *
 *   ingress (bus.c) -> decode/validate (event.c) -> evb_router_accept():
 *       duplicate?  (dedupe.c, acknowledged events: same id within the
 *                    window -> the original acceptance, nothing journaled
 *                    or delivered again)
 *       journal     (journal.c: appended, written at the end of the batch,
 *                    made durable by the group commit, commit.c)
 *       instances   (instance.c: pushed to every live instance whose
 *                    subscription matches; one that is behind reads the
 *                    journal itself)
 *   -> egress (bus.c publishes after accept returns)
 *   -> ACCEPTED once the journal is durable past the event (bus.c)
 */
#ifndef EVB_ROUTER_H
#define EVB_ROUTER_H

#include <stddef.h>

#include "commit.h"
#include "cursors.h"
#include "dedupe.h"
#include "event.h"
#include "instance.h"
#include "journal.h"

typedef struct evb_router {
    evb_instance_t **instances;
    size_t n_instances;
    uint64_t next_seq;   /* without a journal (tests) */
    evb_journal_t *journal;
    evb_cursors_t *cursors; /* with a journal: every instance's cursor */
    evb_dedupe_t *dedupe; /* NULL: no duplicate suppression */
    evb_commit_t *commit;
    int64_t max_bytes;    /* journal retention limits, 0 = none */
    int64_t max_age_ms;
    int64_t next_housekeeping_mono;
    int appended;         /* since the last flush */
    int healthy;          /* the last thing the journal said */
    uint64_t duplicates;
} evb_router_t;

#define EVB_ACCEPTED 0
#define EVB_DUPLICATE 1 /* *orig_seq: the original acceptance */
#define EVB_REFUSED -1  /* *why, detail: the journal cannot take it */

/* Accept one decoded event: check for a duplicate (acknowledged events
 * only: they are the ones publishers retry), journal it (ev->seq), and
 * push it to every matching instance (woken by evb_router_kick). Main
 * thread. */
int evb_router_accept(evb_router_t *r, evb_event_t *ev, int acked,
                      uint64_t *orig_seq, evb_reject_t *why, char *detail,
                      size_t dsize);

/* A dead letter replayed to one instance: journaled as a REPLAY record and
 * pushed to that instance only. 0 or -1. Main thread. */
int evb_router_replay(evb_router_t *r, evb_instance_t *target,
                      evb_event_t *ev);

/* End of an ingest batch: hand each instance what was staged for it (one
 * lock round trip each), write what was journaled (one write(2)), then
 * wake the workers of instances that got events: all of them with force,
 * else only those with a worthwhile batch waiting (the rest are woken when
 * ingest runs out of input: see evb_instance_kick). Returns the largest
 * number of events any instance holds in memory. Main thread. */
int evb_router_kick(evb_router_t *r, int force);

/* Events up to this seq may be acknowledged (everything when there is no
 * journal). */
uint64_t evb_router_durable(evb_router_t *r);
/* 1 when the journal takes events; else 0 and why. */
int evb_router_healthy(evb_router_t *r, char *why, size_t whysz);

/* Every second or so: retention, and repairing a failed journal. */
void evb_router_housekeeping(evb_router_t *r);

/* SIGHUP for every instance. */
void evb_router_reopen(evb_router_t *r);

#endif
