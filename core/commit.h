/* Group commit: one thread that fdatasyncs the journal for everyone.
 *
 * Acknowledged publishing needs each event durable before its ACCEPTED;
 * one sync per event would cap the broker at the disk's sync rate. Instead
 * the main thread reports how many acknowledgements are waiting, and this
 * thread syncs once for all of them: as soon as `batch` wait, or once the
 * oldest has waited `interval_ms` (while it syncs, more arrive for the next
 * one). interval_ms 0 (the default) syncs at once: under load the sync
 * under way is what groups the next one, and a lone publisher is not made
 * to wait (bench/acked: 0 beats 1 ms at every window size). Fire-and-forget events are synced with them, or at least every
 * `idle_sync_ms` when no acknowledgement asks for it (0 = never on their
 * own). After every sync (or failure) the thread makes notify_fd readable
 * so the main thread can send the replies. */
#ifndef EVB_COMMIT_H
#define EVB_COMMIT_H

#include <stdint.h>

#include "journal.h"

typedef struct evb_commit evb_commit_t;

evb_commit_t *evb_commit_start(evb_journal_t *j, int64_t interval_ms,
                               int batch, int64_t idle_sync_ms);
/* Final sync, then stop the thread. */
void evb_commit_stop(evb_commit_t **self);

/* An eventfd that becomes readable after a sync or a failure; poll it and
 * call evb_commit_ack_notify() when it fires. */
int evb_commit_fd(const evb_commit_t *c);
void evb_commit_ack_notify(evb_commit_t *c);

/* Main thread, after each ingest batch (journal already flushed): this
 * many acknowledgements wait for durability. */
void evb_commit_wanted(evb_commit_t *c, int acks_waiting);

/* Main thread: with the sync thread held still, evb_journal_repair().
 * 0 when the journal is healthy again. */
int evb_commit_repair(evb_commit_t *c);

/* Syncs done so far (for status and tests). */
uint64_t evb_commit_syncs(const evb_commit_t *c);

#endif
