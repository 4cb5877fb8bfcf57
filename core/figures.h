/* The broker's figures as plugins read them (host->figures(), ABI 1.2):
 * the one place that names every counter the broker keeps, for the
 * metrics plugin and any third-party exporter. The list, with meanings,
 * is docs/metrics.md. */
#ifndef EVB_FIGURES_H
#define EVB_FIGURES_H

#include <stddef.h>

#include <evbus/plugin.h>

#include "config.h"
#include "router.h"

/* What the figures cover: the router (its instances and journal) and the
 * config (which ingress sockets exist). Main thread, before instances
 * start; detach after they have stopped (waits for a reader). */
void evb_figures_attach(evb_router_t *r, const evb_config_t *cfg);
void evb_figures_detach(void);
/* Ingress bound and every instance started (1), or not (0): starting or
 * draining. Main thread. */
void evb_figures_set_ready(int ready);
/* The ingest loop went round: the time is what /healthz looks at. */
void evb_figures_beat(void);

/* host->figures(): every figure, to fn. Any thread. */
size_t evb_figures_visit(evbus_figure_fn fn, void *ctx);

#endif
