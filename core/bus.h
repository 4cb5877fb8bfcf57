/* The broker's ZeroMQ sockets and its main loop. Every socket lives on the
 * main thread (ZeroMQ sockets are not thread-safe); plugins never see one.
 *
 *   ingress.pub  SUB    [type][envelope] from PUB publishers
 *   ingress.ack  ROUTER [type][envelope] from DEALER/REQ publishers, each
 *                       answered ACCEPTED or REJECTED (docs/protocol.md)
 *   egress.pub   XPUB   [type][envelope] of every accepted event
 */
#ifndef EVB_BUS_H
#define EVB_BUS_H

#include "config.h"
#include "router.h"

typedef struct evb_bus evb_bus_t;

/* Create the sockets and bind them. NULL after logging why. */
evb_bus_t *evb_bus_new(const evb_config_t *cfg, evb_router_t *router);

/* Serve until SIGINT/SIGTERM arrives on signal_fd (a pipe the signal
 * handlers write the signal number to). SIGHUP asks every instance to
 * reopen its files. Returns the signal that stopped it. */
int evb_bus_run(evb_bus_t *bus, int signal_fd);

/* Close the ingress sockets: nothing more is accepted. */
void evb_bus_stop_ingress(evb_bus_t *bus);

void evb_bus_destroy(evb_bus_t **self);

#endif
