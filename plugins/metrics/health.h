/* What /healthz and /readyz answer, decided from the broker's figures.
 * Pure (the plugin reads the figures), so every answer is unit-tested. */
#ifndef EVB_HEALTH_H
#define EVB_HEALTH_H

#include <stdint.h>

#include <evbus/plugin.h>

#include "buf.h"

typedef struct health {
    int attached;       /* the broker reported evbus_ready at all */
    int ready;          /* evbus_ready == 1 */
    int journal_bad;    /* evbus_journal_healthy == 0 */
    double beat_s;      /* evbus_ingest_heartbeat_timestamp_seconds */
    evb_buf_t waiting;  /* instances not running, ", "-separated */
    evb_buf_t disabled; /* instances disabled */
    evb_buf_t stuck;    /* instances with a plugin call past slow_call */
} health_t;

void health_init(health_t *h);
void health_free(health_t *h);
/* An evbus_figure_fn: reads the figures above into a health_t (ctx). */
void health_on_figure(void *ctx, const char *name, const char *help, int kind,
                      const char *const *labels, double value, size_t n,
                      const double *bounds, const uint64_t *counts);

/* /healthz: 200 while the ingest loop ran within stall_ms of now_s, else
 * 503; the body says which. */
int health_live(const health_t *h, double now_s, int64_t stall_ms,
                evb_buf_t *body);
/* /readyz: 200 when evbusd reports ready and its journal works, else 503
 * with the reasons; disabled and stuck instances are listed but do not
 * make it unready (a broken destination is not a reason to stop taking
 * events). */
int health_ready(const health_t *h, evb_buf_t *body);

#endif
