/* The control socket: evbusctl's requests, answered by the main thread.
 *
 * A REP socket on control.endpoint (default tcp://127.0.0.1:7703, loopback
 * only: it can replay events). A request is one or more string frames, the
 * command then its arguments; the reply is two frames, "OK" or "ERROR",
 * then a JSON document ({"error": "..."} for ERROR):
 *
 *   status                          broker, journal and every instance
 *   dead-letters INSTANCE [LIMIT]   the newest LIMIT (100) dead letters
 *   replay INSTANCE SELECTOR...     send dead letters back to the instance;
 *                                   SELECTOR: all | id=ID | type=PATTERN
 *   drop-cursor NAME                forget an orphaned cursor (cursors.h)
 *
 * A replayed dead letter leaves the dead-letter file and goes into the
 * journal as a record for that instance only, with a new acceptance time
 * (its retry policy starts afresh); if it fails again it comes back as a
 * new dead letter. */
#ifndef EVB_CONTROL_H
#define EVB_CONTROL_H

#include "config.h"
#include "router.h"

/* Answer one request; returns the JSON reply (malloc'd) and *ok. */
char *evb_control_handle(evb_router_t *r, const evb_config_t *cfg, int argc,
                         char **argv, int *ok);

#endif
