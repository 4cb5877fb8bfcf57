/* The dead-letter store: events an instance gave up on, one JSON line
 * each, in <dead_letter_dir>/<instance>.jsonl:
 *   {"dead_at":"...","instance":"...","plugin":"...","reason":"...",
 *    "attempts":3,"seq":42,"event":{...CloudEvents JSON...},
 *    "envelope":"<base64 of the msgpack envelope, for exact replay>"}
 * Lines are written whole with one write(2) on an O_APPEND descriptor, so
 * a crash leaves at most one partial last line. (The durable journal will
 * take this over; the line format stays the export format.) */
#ifndef EVB_DEADLETTER_H
#define EVB_DEADLETTER_H

#include "event.h"

typedef struct evb_deadletter evb_deadletter_t;

/* Nothing is opened until the first write (the directory is created
 * then). */
evb_deadletter_t *evb_deadletter_new(const char *dir, const char *instance,
                                     const char *plugin);
void evb_deadletter_destroy(evb_deadletter_t **self);

/* Thread-safe. Returns 0, or -1 when the line could not be written (the
 * failure is logged with the event id, so nothing vanishes silently). */
int evb_deadletter_write(evb_deadletter_t *dl, const evb_event_t *ev,
                         const char *reason, int attempts);

/* Visit each dead letter, oldest first: fn gets one JSON line (without
 * its newline); a negative return stops. Returns how many were visited. */
typedef int (*evb_deadletter_fn)(const char *line, size_t len, void *ctx);
int evb_deadletter_each(evb_deadletter_t *dl, evb_deadletter_fn fn,
                        void *ctx);
/* Take dead letters out of the file (to replay them): fn returns 1 for a
 * line it took, 0 to keep it, -1 to stop (the rest are kept). The file is
 * rewritten with what is kept. Writers wait meanwhile. Returns how many
 * were taken, or -1 when the file could not be rewritten. */
int evb_deadletter_take(evb_deadletter_t *dl, evb_deadletter_fn fn,
                        void *ctx);

/* The file's path (valid while dl lives). */
const char *evb_deadletter_path(const evb_deadletter_t *dl);

#endif
