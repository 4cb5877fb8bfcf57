/* Duplicate suppression: the ids of recently accepted events, so a
 * publisher that retries an event (same id) within the window gets the
 * original acceptance and the event is not journaled, nor delivered, twice.
 *
 * Bounded twice: entries older than the window are forgotten, and so is the
 * oldest entry once `max_ids` are held (counted: evb_dedupe_evicted). The
 * index lives in memory and is rebuilt from the journal at start-up, so it
 * survives restarts for as long as the journal keeps the events. Main
 * thread only.
 *
 * Ids are not stored: a 96-bit keyed hash of each stands for it (dedupe.c
 * has the arithmetic: a false "duplicate" is not expected in billions of
 * years), 32 bytes per id of max_ids, allocated when the index is made and
 * resident as ids arrive. Ids may be of any length. A window longer than
 * 2^32 ms (49.7 days) counts as 49.7 days. */
#ifndef EVB_DEDUPE_H
#define EVB_DEDUPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct evb_dedupe evb_dedupe_t;

evb_dedupe_t *evb_dedupe_new(int64_t window_ms, size_t max_ids);
void evb_dedupe_destroy(evb_dedupe_t **self);

/* The seq an id was accepted with, if it was within the window (as of
 * now_ms); else 0. For an id accepted more than 2^32 seqs before the
 * newest one held, a later seq, never past the newest (what a duplicate's
 * reply waits for to be durable: nothing changes). */
uint64_t evb_dedupe_find(evb_dedupe_t *d, const char *id, size_t len,
                         int64_t now_ms);
/* Remember an accepted id. Ids must be added in acceptance order (their
 * accepted_ms never decreasing), as the journal holds them. 0 or -1. */
int evb_dedupe_add(evb_dedupe_t *d, const char *id, size_t len, uint64_t seq,
                   int64_t accepted_ms);

/* The hot path, in one hash probe: the seq the id was accepted with (a
 * duplicate, *claimed 0), or 0 with *claimed 1 after taking an entry for
 * it, to be completed by settle (with the seq the journal gave it) or
 * undone by unclaim (the journal refused it) before the next claim. */
uint64_t evb_dedupe_claim(evb_dedupe_t *d, const char *id, size_t len,
                          int64_t accepted_ms, int *claimed);
void evb_dedupe_settle(evb_dedupe_t *d, uint64_t seq);
void evb_dedupe_unclaim(evb_dedupe_t *d);

size_t evb_dedupe_count(const evb_dedupe_t *d);
uint64_t evb_dedupe_evicted(const evb_dedupe_t *d); /* by max_ids */
/* Bytes the index holds (its table and FIFO, mapped at creation for
 * max_ids ids): 32 per id. For `evbusctl status`. */
size_t evb_dedupe_bytes(const evb_dedupe_t *d);

#endif
