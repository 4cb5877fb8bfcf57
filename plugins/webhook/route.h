/* Which endpoints an event goes to.
 *
 * An instance has global endpoints and routes. A route is an endpoint with
 * a selector — a project, a ticket, or both — and a mode:
 *
 *   "add"      the route's endpoints get the event as well as those of the
 *              less specific level;
 *   "replace"  they get it instead.
 *
 * Levels, least to most specific: global, project, ticket. For an event
 * with project P and ticket T the set starts as the global endpoints; if
 * routes for P exist they add to it or replace it; then if routes for T
 * exist (a ticket route that also names a project needs both to match)
 * they add to or replace that. So a ticket route beats a project route,
 * which beats the global endpoints. All routes of one selector share one
 * mode (checked at load: wh_routes_check). Each endpoint then applies its
 * own topics and attribute filters.
 *
 * Pure: no I/O. The runtime counters live here so the engine and deliver()
 * share one record per endpoint. */
#ifndef WH_ROUTE_H
#define WH_ROUTE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sign.h"
#include "topic.h"

typedef struct wh_endpoint {
    /* from the config */
    char *setting;  /* "endpoints[0]" / "routes[2]": for errors and logs */
    char *label;    /* name, or the URL without credentials and query */
    char *url;
    evb_sub_t sub;  /* topics and filters */
    char *project;  /* route selectors, NULL for global endpoints */
    char *ticket;
    int replace;    /* route mode */
    int data_only;  /* format "data": application/json, the data alone */
    wh_scheme_t scheme;
    wh_key_t *keys[WH_MAX_KEYS];
    size_t n_keys;
    char *sig_header; /* custom scheme */
    char *ts_header;
    char **headers; /* "Name: value" lines added to every request */
    size_t n_headers;
    size_t headers_len; /* their lengths summed, each with its NUL */
    int64_t timeout_ms;
    int64_t connect_timeout_ms;
    int max_in_flight; /* requests sent at once */
    int max_pending;   /* sent + waiting: past it, while the endpoint is
                          stalled, its events are retried later */

    /* at run time */
    atomic_int pending;              /* requests queued or in flight */
    _Atomic int64_t last_progress_ms; /* a request ended, or the first of a
                                        busy spell was queued */
    atomic_int gone;      /* answered 410: disabled until a restart */
    char gone_reason[256];
} wh_endpoint_t;

typedef struct wh_routes {
    wh_endpoint_t *eps; /* globals and routes, in config order */
    size_t n;
} wh_routes_t;

/* Routes of one selector that disagree on the mode: -1 with the setting of
 * the second one and why; else 0. */
int wh_routes_check(const wh_routes_t *r, const char **setting, char *why,
                    size_t whysz);

/* The endpoints `type` (with project, ticket, and other attributes read
 * through attr) goes to: their indexes into r->eps, in config order, in
 * out (room for r->n). Returns how many. project / ticket may be NULL. */
size_t wh_route_select(const wh_routes_t *r, const char *type,
                       const char *project, const char *ticket,
                       evb_attr_fn attr, const void *ctx, size_t *out);

void wh_endpoint_clear(wh_endpoint_t *ep);

#endif
