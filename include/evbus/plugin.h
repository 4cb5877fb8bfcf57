/*
 * evbus plugin ABI — the only header a third-party plugin compiles against.
 *
 * A plugin is a shared object that exports one function, evbus_plugin_entry(),
 * returning a descriptor (struct evbus_plugin). The broker reaches the plugin
 * only through that descriptor; the plugin reaches the broker only through
 * the host table (struct evbus_host) it is handed. Everything else (events,
 * instances, attempts, option schemas) is an opaque handle.
 *
 * Versioning: the ABI is MAJOR.MINOR, independent of the product version.
 * MINOR releases only append entries at the end of the two structs below;
 * a MAJOR release breaks, and its header drops the EVBUS_ABI_<major>_<minor>
 * constants of the previous major, so an unported plugin stops compiling.
 *
 * Conventions that never change within a MAJOR:
 *  - every duration is in milliseconds, every size in bytes;
 *  - functions returning int return 0 on success, -1 on failure, unless
 *    documented otherwise;
 *  - a returned `const char *` is borrowed (see each entry for how long);
 *    a returned `char *` is the caller's, freed with host->free().
 *
 * The full contract, with examples, is docs/plugin-abi.md.
 */
#ifndef EVBUS_PLUGIN_H
#define EVBUS_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- versions */

#define EVBUS_ABI_MAJOR 1
#define EVBUS_ABI_MINOR 2

#define EVBUS_ABI_MAKE(major, minor) \
    ((uint32_t)(((uint32_t)(major) << 16) | ((uint32_t)(minor) & 0xffffu)))
#define EVBUS_ABI_MAJOR_OF(v) ((uint32_t)(v) >> 16)
#define EVBUS_ABI_MINOR_OF(v) ((uint32_t)(v) & 0xffffu)

/* The versions a plugin may claim in its descriptor. Name the one whose
 * entries you use; never compute it from EVBUS_ABI_MINOR, or a rebuild
 * against a newer header would claim entries the plugin never tested. */
#define EVBUS_ABI_1_0 EVBUS_ABI_MAKE(1, 0)
#define EVBUS_ABI_1_1 EVBUS_ABI_MAKE(1, 1)
#define EVBUS_ABI_1_2 EVBUS_ABI_MAKE(1, 2)

/* The one symbol a plugin exports. */
#define EVBUS_PLUGIN_ENTRY_SYMBOL "evbus_plugin_entry"

#if defined(__GNUC__)
#define EVBUS_EXPORT __attribute__((visibility("default")))
#define EVBUS_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define EVBUS_EXPORT
#define EVBUS_PRINTF(fmt, args)
#endif

/* ---------------------------------------------------------- opaque handles */

typedef struct evbus_event evbus_event_t;       /* one accepted event */
typedef struct evbus_instance evbus_instance_t; /* one configured instance */
typedef struct evbus_attempt evbus_attempt_t;   /* one delivery attempt */
typedef struct evbus_schema evbus_schema_t;     /* option declarations */

typedef struct evbus_host evbus_host_t;
typedef struct evbus_plugin evbus_plugin_t;

/* ----------------------------------------------------------------- values */

/* Log levels, for host->log(). */
#define EVBUS_LOG_ERROR 0
#define EVBUS_LOG_WARN 1
#define EVBUS_LOG_INFO 2
#define EVBUS_LOG_DEBUG 3

/* What deliver() returns, and what attempt_complete() reports.
 *  OK       the destination has the event.
 *  RETRY    a transient failure: the host schedules another attempt under
 *           the instance's retry policy (see attempt_retry_after()).
 *  DROP     a permanent failure: the event goes to the dead-letter store
 *           with the reason given by attempt_reason().
 *  PENDING  (deliver() only) the plugin keeps the attempt and will report
 *           its outcome later with host->attempt_complete().
 *  BROKEN   the instance itself cannot work (e.g. its destination was
 *           deleted): the event is dead-lettered with the reason, and the
 *           instance is disabled; later events are dead-lettered too until
 *           the broker restarts with a corrected config. */
#define EVBUS_OK 0
#define EVBUS_RETRY 1
#define EVBUS_DROP 2
#define EVBUS_PENDING 3
#define EVBUS_BROKEN 4

/* Option types, for host->declare_option().
 *  STRING    UTF-8 text; "${NAME}" is replaced from the environment (a
 *            missing variable is a config error).
 *  INT       64-bit integer.
 *  BOOL      true / false.
 *  FLOAT     double.
 *  DURATION  milliseconds; written as an integer (ms) or a string with a
 *            unit: "250ms", "10s", "5m", "2h", "1d".
 *  SIZE      bytes; written as an integer or a string "64K", "100M", "1G".
 *  LIST      a list or array; declare its element as "name[]" (a scalar
 *            type, or GROUP with members "name[].member").
 *  GROUP     a group with declared members "name.member".
 *  MAP       a group whose keys are free (e.g. HTTP headers); every value
 *            is a STRING. */
#define EVBUS_OPT_STRING 1
#define EVBUS_OPT_INT 2
#define EVBUS_OPT_BOOL 3
#define EVBUS_OPT_FLOAT 4
#define EVBUS_OPT_DURATION 5
#define EVBUS_OPT_SIZE 6
#define EVBUS_OPT_LIST 7
#define EVBUS_OPT_GROUP 8
#define EVBUS_OPT_MAP 9

/* Option flags. SECRET values are never logged nor printed by
 * --check-config; REQUIRED options have no default. */
#define EVBUS_OPT_REQUIRED 0x1u
#define EVBUS_OPT_SECRET 0x2u

/* Descriptor flags.
 *  REENTRANT  deliver() may run on several worker threads at once for one
 *             instance; without it the host runs one worker per instance.
 *  UNORDERED  (1.1) the plugin's deliveries go to independent destinations
 *             (e.g. several webhook endpoints), so one event waiting for a
 *             retry must not hold up the others: its instances default to
 *             `ordering = "none"` (a config that sets `ordering` wins). */
#define EVBUS_PLUGIN_REENTRANT 0x1u
#define EVBUS_PLUGIN_UNORDERED 0x2u

/* Figure kinds (1.2), for evbus_figure_fn.
 *  COUNTER    only goes up while the broker runs (restarts at 0).
 *  GAUGE      a value now.
 *  HISTOGRAM  observations in buckets, with their sum. */
#define EVBUS_FIGURE_COUNTER 1
#define EVBUS_FIGURE_GAUGE 2
#define EVBUS_FIGURE_HISTOGRAM 3

/*
 * One figure of the broker (1.2), as host->figures() hands it over; every
 * pointer is lent for the call only.
 *  name    the series' name in Prometheus form ("evbus_events_received_total",
 *          base units, counters end in _total); the list is
 *          docs/metrics.md, and a name keeps its meaning within a MAJOR.
 *  help    one line describing it.
 *  kind    EVBUS_FIGURE_*.
 *  labels  "name", "value", "name", "value", ..., NULL; values are raw
 *          UTF-8 (escape them for your format).
 *  value   COUNTER / GAUGE: the value; HISTOGRAM: the sum of observations.
 *  n, bounds, counts
 *          HISTOGRAM only (else 0, NULL, NULL): n buckets in increasing
 *          order of their upper bound; counts[i] is cumulative (how many
 *          observations were <= bounds[i]); bounds[n - 1] is +Inf, so
 *          counts[n - 1] is the number of observations.
 */
typedef void (*evbus_figure_fn)(void *ctx, const char *name, const char *help,
                                int kind, const char *const *labels,
                                double value, size_t n, const double *bounds,
                                const uint64_t *counts);

/* ------------------------------------------------------------- descriptor */

/*
 * What a plugin tells the host about itself. Returned by
 * evbus_plugin_entry(); must stay valid until the plugin is unloaded
 * (a static const object is usual). Append-only: new fields go at the end
 * and the host reads only the first struct_size bytes.
 *
 * Threads: declare, validate, init and shutdown run on the broker's main
 * thread. deliver, tick and reopen run on the instance's worker thread(s);
 * without EVBUS_PLUGIN_REENTRANT they never overlap each other for one
 * instance. Separate instances of one plugin run on separate threads, so
 * plugin globals need their own locking.
 */
struct evbus_plugin {
    uint32_t struct_size;  /* sizeof(evbus_plugin_t) as the plugin saw it */
    uint32_t abi_version;  /* EVBUS_ABI_1_0 etc.: the ABI the plugin uses */
    uint32_t flags;        /* EVBUS_PLUGIN_* */
    uint32_t max_in_flight; /* default for the instance's max_in_flight key:
                              how many PENDING attempts at once (0 = 1) */
    uint32_t tick_interval_ms; /* call tick() at least this often (0 = only
                                 when the worker goes idle) */
    uint32_t reserved0;        /* 0 */

    const char *name;        /* e.g. "file"; [a-z0-9_-]+ */
    const char *version;     /* the plugin's own version, free text */
    const char *description; /* one line */

    /* Declare the options the plugin reads from its `options` block, with
     * host->declare_option(). Called once per loaded plugin, before any
     * instance exists. Return 0, or -1 to refuse loading. Required. */
    int (*declare)(evbus_schema_t *schema, const evbus_host_t *host);

    /* Check an instance's options beyond what the schema says (e.g. that a
     * URL parses), without side effects: no files, sockets or threads.
     * Report each problem with host->config_error() and return -1; also
     * run by `evbusd --check-config`. Optional (NULL). */
    int (*validate)(evbus_instance_t *inst, const evbus_host_t *host);

    /* Create the instance's state; store it in *userdata, which every later
     * call receives. The options have already passed declare/validate.
     * Return 0, or -1 after logging why (the broker then refuses to start).
     * `inst` and `host` stay valid until shutdown() returns. Required. */
    int (*init)(evbus_instance_t *inst, const evbus_host_t *host,
                void **userdata);

    /* Deliver one event. `ev` and `attempt` are lent until the outcome is
     * reported: until deliver() returns OK/RETRY/DROP/BROKEN, or, when it
     * returns PENDING, until the plugin calls host->attempt_complete().
     * Keep `ev` longer only with host->event_retain(). Required. */
    int (*deliver)(void *userdata, const evbus_event_t *ev,
                   evbus_attempt_t *attempt);

    /* Called when the worker is about to wait for work (nothing queued, or
     * max_in_flight reached) and at least every tick_interval_ms: the place
     * to flush buffers and complete batched PENDING attempts. Optional. */
    void (*tick)(void *userdata);

    /* SIGHUP: reopen files (logrotate). Runs on a worker thread between
     * deliveries. Optional. */
    void (*reopen)(void *userdata);

    /* Free the instance. Every attempt the plugin still holds must be
     * completed before this returns; the host dead-letters none of them
     * twice. Called once, on the main thread, after the instance's workers
     * have stopped. Optional. */
    void (*shutdown)(void *userdata);
};

/*
 * The single exported symbol. `host_abi` is the ABI version the broker
 * speaks (major and minor). Return the descriptor for the ABI the plugin
 * uses, or NULL to decline that host. A plugin that needs a newer minor
 * than host_abi offers may still load by returning a descriptor that claims
 * only what the host has.
 */
typedef const evbus_plugin_t *(*evbus_plugin_entry_fn)(uint32_t host_abi);

/* ------------------------------------------------------------- host table */

/*
 * The broker's services, handed to every plugin call that needs them.
 * Valid for the life of the process. Append-only: before calling an entry
 * newer than the version you claim, check
 *   host->struct_size >= offsetof(evbus_host_t, entry) + sizeof(void *).
 * Every function here may be called from any thread unless it says
 * otherwise. Each group of entries says the ABI version it appeared in.
 */
struct evbus_host {
    uint32_t abi_version; /* the broker's ABI, EVBUS_ABI_MAKE(major, minor) */
    uint32_t struct_size; /* sizeof(evbus_host_t) in the broker */

    /* -- logging (1.0) ---------------------------------------------------
     * One line on the broker's log, tagged with the instance's name (inst
     * may be NULL in declare()). Never pass secrets. Rate-limited per
     * instance (100 lines per 10 s; then a count of the lines held back),
     * so logging every failed attempt is safe. */
    void (*log)(const evbus_instance_t *inst, int level, const char *fmt, ...)
        EVBUS_PRINTF(3, 4);
    void (*vlog)(const evbus_instance_t *inst, int level, const char *fmt,
                 va_list ap);

    /* -- option schema (1.0), only inside declare() ----------------------
     * Declare one option of the instance's `options` block. `name` is a
     * path: "path", "endpoints", "endpoints[]", "endpoints[].url".
     * `default_value` is written as in the config file ("10s", "true",
     * "42"), or NULL. Returns 0, or -1 for a bad declaration (logged). */
    int (*declare_option)(evbus_schema_t *schema, const char *name, int type,
                          const char *default_value, unsigned flags,
                          const char *description);

    /* -- instance (1.0) -------------------------------------------------- */
    /* The instance's configured name; valid while the instance lives. */
    const char *(*instance_name)(const evbus_instance_t *inst);
    /* Disable the instance (as if a delivery returned BROKEN), e.g. from a
     * plugin thread. The reason is logged; later events are dead-lettered. */
    void (*instance_disable)(evbus_instance_t *inst, const char *reason);

    /* -- configuration (1.0), from validate() and init() -----------------
     * `path` names a declared option, with list indexes where the schema
     * has "[]": "endpoints[1].url". Defaults apply. Strings are borrowed
     * until shutdown() returns. */
    int (*config_has)(const evbus_instance_t *inst, const char *path);
    const char *(*config_string)(const evbus_instance_t *inst,
                                 const char *path);
    /* INT, BOOL (0/1), DURATION (ms), SIZE (bytes); 0 when unset. */
    int64_t (*config_int)(const evbus_instance_t *inst, const char *path);
    double (*config_float)(const evbus_instance_t *inst, const char *path);
    /* Elements of a LIST, members of a GROUP or MAP; 0 when unset. */
    int (*config_count)(const evbus_instance_t *inst, const char *path);
    /* Name of member `index` of a GROUP or MAP, or NULL. */
    const char *(*config_key)(const evbus_instance_t *inst, const char *path,
                              int index);
    /* Report a problem with one option, naming the config file, its line
     * and the setting; returns -1 so `return host->config_error(...)`
     * reads naturally. */
    int (*config_error)(const evbus_instance_t *inst, const char *path,
                        const char *fmt, ...) EVBUS_PRINTF(3, 4);

    /* -- events (1.0) ----------------------------------------------------
     * Borrowed pointers live as long as the event (see deliver()). */
    /* A top-level string attribute ("type", "id", "source", "time",
     * "subject", "project", ...), or NULL when absent or not a string. */
    const char *(*event_attr)(const evbus_event_t *ev, const char *name);
    /* The event as one CloudEvents 1.0 JSON object (structured mode), no
     * trailing newline; *len gets its length when len is not NULL. */
    const char *(*event_json)(const evbus_event_t *ev, size_t *len);
    /* The `data` member alone as JSON, or NULL when the event has none. */
    const char *(*event_data_json)(const evbus_event_t *ev, size_t *len);
    /* The event as the broker stores it: a msgpack map. */
    const void *(*event_msgpack)(const evbus_event_t *ev, size_t *len);
    /* data.<path> (dot-separated map keys, e.g. "result.cost") as a number:
     * returns 0 and sets *out, or -1 when absent or not a number. */
    int (*event_data_number)(const evbus_event_t *ev, const char *path,
                             double *out);
    /* data.<path> as text: strings as they are, anything else as JSON.
     * NULL when absent; else the caller's, freed with host->free(). */
    char *(*event_data_text)(const evbus_event_t *ev, const char *path);
    /* When the broker accepted the event, Unix time in ms. */
    int64_t (*event_accepted_ms)(const evbus_event_t *ev);
    /* Keep an event beyond the attempt that lent it; each retain needs one
     * release. retain returns its argument. */
    const evbus_event_t *(*event_retain)(const evbus_event_t *ev);
    void (*event_release)(const evbus_event_t *ev);

    /* -- attempts (1.0) --------------------------------------------------
     * Valid from deliver() until its outcome is reported. */
    /* 1 for the first attempt of this event on this instance. */
    int (*attempt_number)(const evbus_attempt_t *attempt);
    /* The event being delivered. */
    const evbus_event_t *(*attempt_event)(const evbus_attempt_t *attempt);
    /* With RETRY: try again no sooner than ms from now (e.g. Retry-After).
     * The host still gives up at the instance's max_attempts / max_age. */
    void (*attempt_retry_after)(evbus_attempt_t *attempt, int64_t ms);
    /* Why this attempt failed; logged with the outcome and stored with a
     * dead letter. Text is copied (truncated at 1023 bytes). */
    void (*attempt_reason)(evbus_attempt_t *attempt, const char *fmt, ...)
        EVBUS_PRINTF(2, 3);
    /* Report the outcome of an attempt deliver() left PENDING: EVBUS_OK,
     * RETRY, DROP or BROKEN. Exactly once per PENDING attempt, from any
     * thread; the attempt (and the event, unless retained) is gone after. */
    void (*attempt_complete)(evbus_attempt_t *attempt, int result);

    /* -- utilities (1.0) ------------------------------------------------- */
    void (*free)(void *ptr);
    /* Unix time in ms (wall clock). */
    int64_t (*now_ms)(void);

    /* -- events, continued (1.0) ------------------------------------------
     * The JSON of event_json() written into dst (cap bytes), NUL-terminated,
     * without allocating or caching: for plugins that copy the text into a
     * buffer of their own anyway. Returns its length (without the NUL).
     * When length + 1 > cap, dst holds nothing useful and the return is
     * the length needed: make room and call again. 0 when the event cannot
     * be rendered (out of memory). */
    size_t (*event_json_into)(const evbus_event_t *ev, char *dst, size_t cap);

    /* -- broker figures (1.2) ---------------------------------------------
     * Call fn once for each of the broker's figures (series): what ingress
     * received, accepted and rejected by type and reason, and per instance
     * what was delivered, retried, dead-lettered, queued, and how long it
     * took. Every series of one name comes in a row, with the same help
     * and kind. A snapshot read without stopping ingest or delivery (each
     * counter is read on its own). Returns how many figures fn got. Any
     * thread, from init() to shutdown(); fn must not call figures().
     * Check struct_size before calling (see above). */
    size_t (*figures)(evbus_figure_fn fn, void *ctx);
};

/* A plugin defines exactly this function: */
EVBUS_EXPORT const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi);

#ifdef __cplusplus
}
#endif

#endif /* EVBUS_PLUGIN_H */
