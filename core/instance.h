/* A plugin instance: one configured use of a plugin, with its own bounded
 * queue, worker thread(s), retry schedule and dead-letter file, so that a
 * slow or failing destination never delays ingress or another instance.
 *
 * Life: new (options resolved) -> validate -> start (plugin init, workers)
 * -> enqueue ... -> stop (drain until a deadline, plugin shutdown,
 * leftovers dead-lettered) -> destroy.
 *
 * Bound: queued + waiting-for-retry + in-flight events never exceed
 * queue_size. An event arriving at a full instance is not dropped
 * silently and never blocks ingress: it is dead-lettered at once with the
 * reason "queue full", counted as overflow, and can be replayed. */
#ifndef EVB_INSTANCE_H
#define EVB_INSTANCE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <evbus/plugin.h>

#include "config.h"
#include "deadletter.h"
#include "event.h"
#include "loader.h"
#include "log.h"
#include "schema.h"

typedef struct evbus_instance evb_instance_t;
typedef struct evbus_attempt evb_attempt_t;

/* Figures for logs and metrics; each a snapshot. */
typedef struct evb_instance_stats {
    uint64_t enqueued;      /* events handed to this instance */
    uint64_t delivered;     /* outcome OK */
    uint64_t retried;       /* attempts that failed and were rescheduled */
    uint64_t dead_lettered; /* given up (drop, max attempts/age, broken,
                               disabled, shutdown) */
    uint64_t overflow;      /* dead-lettered because the queue was full */
    uint64_t queued;        /* waiting for a first attempt */
    uint64_t retrying;      /* waiting for a retry */
    uint64_t in_flight;     /* attempts under way */
} evb_instance_stats_t;

struct evbus_attempt {
    evb_instance_t *inst;
    evb_event_t *ev;
    int number;            /* attempts started so far (1 = first) */
    int64_t due_mono;      /* when the next attempt may start */
    int64_t retry_after;   /* plugin hint for the next attempt, ms */
    int64_t started_us;    /* monotonic start of the current attempt */
    char reason[1024];     /* the last failure; keep last (see memset) */
};

struct evbus_instance {
    const evb_instance_conf_t *conf;
    const char *name;
    evb_plugin_t *plugin;
    evb_options_t options;
    const char *config_file;
    void *userdata;
    int initialized;
    int workers;
    int max_in_flight;
    evb_deadletter_t *dead;

    pthread_mutex_t lock;
    pthread_cond_t wake;
    evb_event_t **ring; /* first attempts, FIFO */
    size_t ring_cap, ring_head, ring_count;
    evb_attempt_t **heap; /* retries, min-heap by due_mono */
    size_t heap_count, heap_cap;
    /* Changed without the lock when an attempt finishes (any thread), so
     * completions never contend with ingest for it; a worker about to wait
     * counts itself in `sleepers` first and is woken under the lock. */
    atomic_int in_flight;
    atomic_int held; /* ring + heap + in flight, bounded by queue_size */
    atomic_int sleepers;
    int stopping;         /* 1 = drain, 2 = stop now */
    int64_t deadline_mono;
    int reopen_pending;
    int wake_pending; /* pushed since the last kick */
    int ticking;
    int64_t last_tick_mono;
    atomic_int disabled;
    char disabled_reason[512];
    pthread_t threads[64];
    int n_threads;

    atomic_uint_fast64_t n_enqueued, n_delivered, n_retried, n_dead,
        n_overflow;
    evb_ratelimit_t rl_retry, rl_dead, rl_overflow;
};

/* Resolve the instance's options against its plugin's schema (errors are
 * reported with file, line and setting) and prepare its queue. */
evb_instance_t *evb_instance_new(const evb_instance_conf_t *conf,
                                 evb_plugin_t *plugin, const char *config_file,
                                 const char *dead_letter_dir);
/* The plugin's validate(), if it has one. 0 or -1. */
int evb_instance_validate(evb_instance_t *inst);
/* The plugin's init(), then the workers. 0 or -1 (logged). */
int evb_instance_start(evb_instance_t *inst);
/* Hand an event over (takes its own reference). Never blocks on the
 * destination; see the overflow rule above. Main thread. */
void evb_instance_enqueue(evb_instance_t *inst, evb_event_t *ev);
/* The same in two steps, for ingest batches: push queues the event without
 * waking the worker; kick wakes it if anything was pushed since. Waking a
 * worker once per batch instead of once per event keeps the two threads
 * from trading a futex wake-up for every event. */
void evb_instance_push(evb_instance_t *inst, evb_event_t *ev);
void evb_instance_kick(evb_instance_t *inst);
/* SIGHUP: the plugin's reopen() runs on a worker between deliveries. */
void evb_instance_request_reopen(evb_instance_t *inst);
/* Mark the instance broken: later events are dead-lettered. Any thread. */
void evb_instance_disable(evb_instance_t *inst, const char *reason);
/* Start draining without waiting (so several instances drain at once):
 * workers keep delivering until nothing is left or the deadline passes. */
void evb_instance_begin_drain(evb_instance_t *inst, int64_t deadline_mono_ms);
/* Drain: keep delivering until nothing is left or the monotonic deadline
 * passes; join the workers; call the plugin's shutdown(); dead-letter
 * whatever is left with the reason "shutdown". Main thread. */
void evb_instance_stop(evb_instance_t *inst, int64_t deadline_mono_ms);
void evb_instance_destroy(evb_instance_t **self);

void evb_instance_get_stats(evb_instance_t *inst, evb_instance_stats_t *out);

/* Report an attempt's outcome (EVBUS_OK/RETRY/DROP/BROKEN): behind
 * host->attempt_complete() and a synchronous deliver() return. */
void evb_attempt_complete(evb_attempt_t *att, int result);

#endif
