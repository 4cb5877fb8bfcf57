/*
 * libevbus — publish events to an evbus broker.
 *
 *   evbus_client_t *c = evbus_client_new("tcp://127.0.0.1:7700",
 *                                        "tcp://127.0.0.1:7701");
 *   evbus_msg_t *m = evbus_msg_new("task.completed");
 *   evbus_msg_set(m, "source", "ci/runner-3");
 *   evbus_msg_set_data_json(m, "{\"task_id\":\"T-1\",\"duration_ms\":5120}");
 *   evbus_publish(c, m);                      // fire-and-forget
 *   evbus_publish_ack(c, m, 5000, &result);   // or: wait for the receipt
 *   evbus_msg_destroy(&m);
 *   evbus_client_destroy(&c);
 *
 * The wire protocol is docs/protocol.md. A client is used by one thread at
 * a time (ZeroMQ sockets are not thread-safe); use one client per thread.
 * Functions return 0 on success or a negative EVBUS_E_* code.
 */
#ifndef EVBUS_CLIENT_H
#define EVBUS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVBUS_DEFAULT_PUB_ENDPOINT "tcp://127.0.0.1:7700"
#define EVBUS_DEFAULT_ACK_ENDPOINT "tcp://127.0.0.1:7701"
#define EVBUS_DEFAULT_EGRESS_ENDPOINT "tcp://127.0.0.1:7702"

/* Error codes (negative returns). */
#define EVBUS_E_INVALID -1   /* bad argument or event (message says why) */
#define EVBUS_E_REJECTED -2  /* the broker refused the event (ack mode) */
#define EVBUS_E_TIMEOUT -3   /* no receipt within the timeout (ack mode) */
#define EVBUS_E_DROPPED -4   /* fire-and-forget: high-water mark reached,
                                the event was not sent */
#define EVBUS_E_NOTCONN -5   /* that endpoint was not configured */
#define EVBUS_E_SYSTEM -6    /* ZeroMQ or memory failure (see errno) */

const char *evbus_strerror(int code);

typedef struct evbus_client evbus_client_t;
typedef struct evbus_msg evbus_msg_t;

/* ---------------------------------------------------------------- events */

/* A new event of `type` (dot-separated, lower-case). NULL if invalid. */
evbus_msg_t *evbus_msg_new(const char *type);
void evbus_msg_destroy(evbus_msg_t **self);
/* Set a string attribute: id, source, subject, time, datacontenttype,
 * project, ticket, agent, or any extension name ([a-z0-9]{1,20}).
 * Setting "type" or "data" this way is EVBUS_E_INVALID. */
int evbus_msg_set(evbus_msg_t *m, const char *attr, const char *value);
/* Set data from JSON text; EVBUS_E_INVALID when it does not parse. */
int evbus_msg_set_data_json(evbus_msg_t *m, const char *json);
/* Build a whole event from one CloudEvents JSON object (as evbus-sub
 * prints and `evbus-pub` reads line by line). NULL with *err set when it
 * is not valid; err may be NULL. */
evbus_msg_t *evbus_msg_from_json(const char *json, size_t len, char *err,
                                 size_t errsz);
/* The event's attribute (NULL when unset) — e.g. its id after publish. */
const char *evbus_msg_get(const evbus_msg_t *m, const char *attr);
/* Why the last call on m failed (empty when it did not). */
const char *evbus_msg_error(const evbus_msg_t *m);

/* ---------------------------------------------------------------- client */

/* Connect to a broker. Either endpoint may be NULL (that mode is then
 * unavailable). Returns NULL on failure (errno set). */
evbus_client_t *evbus_client_new(const char *pub_endpoint,
                                 const char *ack_endpoint);
/* Flush what fire-and-forget publishing has queued (waiting at most
 * linger_ms, default 2000, see evbus_client_set_linger) and close. */
void evbus_client_destroy(evbus_client_t **self);
void evbus_client_set_linger(evbus_client_t *c, int linger_ms);

/* Fire-and-forget. Never blocks on a slow broker: when the socket's
 * high-water mark is reached the event is not sent and EVBUS_E_DROPPED is
 * returned (counted in evbus_client_dropped). The first publish waits up to
 * 1 s for the broker's subscription so an event sent right after connect
 * is not lost. The client fills `id` (UUIDv7) when the event has none. */
int evbus_publish(evbus_client_t *c, evbus_msg_t *m);
uint64_t evbus_client_dropped(const evbus_client_t *c);

/* Acknowledged: returns 0 once the broker has accepted the event, or
 * EVBUS_E_REJECTED / EVBUS_E_TIMEOUT / ... . The client fills `id` when the
 * event has none, so a retry after a timeout reuses it. On rejection,
 * evbus_client_reason() gives "code: text" from the broker. */
int evbus_publish_ack(evbus_client_t *c, evbus_msg_t *m, int timeout_ms);
const char *evbus_client_reason(const evbus_client_t *c);

#ifdef __cplusplus
}
#endif

#endif /* EVBUS_CLIENT_H */
