/* The event: one accepted CloudEvents envelope, immutable and refcounted,
 * shared by the egress, every plugin instance queue and the dead-letter
 * store. `struct evbus_event` is the opaque handle of the public ABI. */
#ifndef EVB_EVENT_H
#define EVB_EVENT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "topic.h"

/* Why an input was refused; the code strings are part of the wire
 * protocol (docs/protocol.md) and of the metrics labels. */
typedef enum evb_reject {
    EVB_REJECT_NONE = 0,
    EVB_REJECT_FRAMES,       /* "bad_frames": wrong frame count/shape */
    EVB_REJECT_TOO_LARGE,    /* "too_large": over max_message_size */
    EVB_REJECT_MALFORMED,    /* "malformed": not one valid msgpack value */
    EVB_REJECT_NOT_MAP,      /* "not_a_map": envelope is not a map */
    EVB_REJECT_MISSING_TYPE, /* "missing_type" */
    EVB_REJECT_BAD_TYPE,     /* "bad_type": syntax, or type frame differs */
    EVB_REJECT_BAD_UTF8,     /* "bad_utf8": a string is not UTF-8 */
    EVB_REJECT_TOO_DEEP,     /* "too_deep": nesting over max_depth */
    EVB_REJECT_BAD_ATTR,     /* "bad_attribute": name, type or value */
    EVB_REJECT_BAD_VALUE,    /* "bad_value": ext type, NaN, ... in data */
    EVB_REJECT_UNAVAILABLE,  /* "unavailable": broker cannot accept now */
    EVB_REJECT__COUNT
} evb_reject_t;

const char *evb_reject_code(evb_reject_t r);

typedef struct evb_limits {
    size_t max_message_size;  /* bytes of the envelope frame */
    int max_depth;            /* nesting of maps/arrays, envelope = 1 */
    size_t max_attr_len;      /* bytes of any string attribute but data */
    size_t max_rendered_size; /* bytes of the event's CloudEvents JSON,
                                 below 4 GiB (event.h: json_max) */
    int allow_controls;       /* control characters in string attributes: only
                                 events accepted before they were refused */
} evb_limits_t;

#define EVB_LIMITS_DEFAULT                                                     \
    {                                                                          \
        1024 * 1024, 32, 4096, 8 * 1024 * 1024, 0                              \
    }

#define EVB_ID_MAX 256 /* bytes of an event id */

/* A named string attribute, NUL-terminated copies kept with the event. */
typedef struct evb_attr {
    const char *name;
    const char *value;
} evb_attr_t;

struct evbus_event {
    atomic_int refs;
    int64_t accepted_ms; /* when the broker accepted it (Unix ms) */
    uint64_t seq;        /* acceptance order within this broker run */
    const char *type;    /* the attributes below point into `attrs` */
    const char *id;
    const char *time;
    const char *source;
    const char *subject;
    const char *project;
    const char *ticket;
    const char *agent;
    evb_attr_t *attrs;         /* every top-level string attribute, */
    size_t n_attrs;            /* in envelope order */
    const uint8_t *msgpack;    /* normalized envelope: id, time, specversion */
    size_t msgpack_len;        /* always present */
    _Atomic(char *) json;      /* CloudEvents JSON, made on first use */
    _Atomic size_t json_len;   /* atomic: two threads rendering the event
                                  at once both store it (the same value) */
    _Atomic(char *) data_json; /* data as JSON, made on first use */
    _Atomic size_t data_json_len;
    int reclaim;       /* made on the reclaiming thread */
    uint32_t json_max; /* JSON size at most (exact without floats); here,
                          in padding, the struct stays 168 bytes (at 176
                          gcc clears it with rep stos: 15% of a decode) */
    struct evbus_event *reclaim_next; /* in the list it frees */
    /* the storage behind attrs and msgpack follows the struct */
};

typedef struct evbus_event evb_event_t;

/* Decode and validate one envelope as received in frames [type][envelope].
 * On success returns a new event (refs = 1) whose envelope has `id` (a
 * UUIDv7 when absent), `time` (now, RFC 3339 UTC with ms, when absent) and
 * `specversion` ("1.0" when absent). On refusal returns NULL, sets *why,
 * and writes a one-line human reason into detail. `now_ms` is the
 * acceptance time. type_frame NULL: no frame to check (journal records). */
evb_event_t *evb_event_decode(const void *type_frame, size_t type_len,
                              const void *envelope, size_t envelope_len,
                              const evb_limits_t *limits, int64_t now_ms,
                              evb_reject_t *why, char *detail,
                              size_t detail_size);

/* Decode an envelope as stored in the journal (already normalized and
 * validated when accepted; no type frame, no configured limits, control
 * characters in attributes allowed as an older broker did), with the
 * record's seq and acceptance time. NULL, with the reason in detail, when
 * the bytes are not a valid envelope (damage the record's checksum did not
 * catch; an array or map as a map key, which older brokers accepted) or out
 * of memory. */
evb_event_t *evb_event_load(const void *envelope, size_t len, uint64_t seq,
                            int64_t accepted_ms, char *detail,
                            size_t detail_size);

evb_event_t *evb_event_retain(evb_event_t *ev);
void evb_event_release(evb_event_t *ev); /* frees at the last release */

/* Freeing where the memory came from. Ingest (the main thread) allocates
 * every event; workers, plugins and ZeroMQ's I/O thread release most of
 * them. free() from another thread takes the allocating arena's lock,
 * which then contends with ingest's malloc() for every event, and the
 * main thread's malloc cache never refills. Between begin and end, an
 * event decoded on the calling thread and released elsewhere is handed
 * back (a lock-free list) and freed by evb_event_reclaim() on that thread,
 * once per ingest batch. end frees what is left; call it when no other
 * thread can still release events. */
void evb_event_reclaim_begin(void);
size_t evb_event_reclaim(void);
void evb_event_reclaim_end(void);

/* An attribute by name, NULL when absent. */
const char *evb_event_attr(const evb_event_t *ev, const char *name);

/* 1 when the event matches the subscription (topic.h). */
int evb_sub_matches(const evb_sub_t *sub, const evb_event_t *ev);

/* CloudEvents JSON (structured mode), made once and cached; thread-safe.
 * NULL only when out of memory. */
const char *evb_event_json(const evb_event_t *ev, size_t *len);
/* The same JSON written into dst (cap bytes, NUL-terminated) without
 * allocating or caching anything: returns its length. When length + 1 >
 * cap, dst holds nothing useful and the return is the length needed; 0
 * when it cannot be rendered. Thread-safe. */
size_t evb_event_json_into(const evb_event_t *ev, char *dst, size_t cap);
/* The data member as JSON; NULL when absent (or out of memory). */
const char *evb_event_data_json(const evb_event_t *ev, size_t *len);
/* data.<dotted path> as a number / as text (malloc'd; strings raw). */
int evb_event_data_number(const evb_event_t *ev, const char *path, double *out);
char *evb_event_data_text(const evb_event_t *ev, const char *path);

/* Best effort, for rejection replies: the envelope's top-level string "id"
 * (at most EVB_ID_MAX bytes of UTF-8 without control characters) copied
 * into out. 0 when found, else -1. Safe
 * on any input. */
int evb_envelope_id(const void *envelope, size_t len, char out[EVB_ID_MAX + 1]);

/* Helpers also used by the client library and tests. */
/* 1 when `type` is a valid event type: dot-separated segments of
 * [a-z0-9_-], each starting with a letter or digit, at most 255 bytes. */
int evb_type_valid(const char *type, size_t len);
/* 1 when n bytes at s are valid UTF-8 (no overlongs, no surrogates). */
int evb_utf8_valid(const char *s, size_t n);
/* 1 when n bytes at s are an RFC 3339 date-time:
 * 2026-11-22T10:00:00(.fraction)?(Z|+hh:mm|-hh:mm). */
int evb_time_valid(const char *s, size_t n);
/* Write a UUIDv7 (36 chars + NUL) for Unix ms `now_ms`. Thread-safe. */
void evb_uuid7(char out[37], int64_t now_ms);
/* RFC 3339 UTC with milliseconds, "2026-11-22T10:00:00.123Z" (24 + NUL). */
void evb_format_time(char out[32], int64_t unix_ms);

#endif
