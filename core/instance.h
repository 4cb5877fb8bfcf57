/* A plugin instance: one configured use of a plugin, with its own window
 * of events in memory, worker thread(s), retry schedule, dead-letter file
 * and — with a journal — its own cursor over the journal, so that a slow
 * or failing destination never delays ingress or another instance.
 *
 * Life: new (options resolved, cursor loaded) -> validate -> start (plugin
 * init, workers) -> push/kick ... -> stop (drain until a deadline, plugin
 * shutdown, cursor saved) -> destroy.
 *
 * The window: events the instance holds in memory — queued, in flight or
 * waiting for a retry — sit in a ring of queue_size slots in acceptance
 * order. A slot is freed when its event is done (delivered or
 * dead-lettered) and every older slot is done too; the cursor is the seq
 * just before the oldest slot not done.
 *
 * Live and catching up. While the instance keeps up, ingest pushes each
 * matching event into the ring (live). When the ring is full, ingest stops
 * pushing and the instance catches up: its worker reads the journal from
 * the first event it missed, through its own reader, filtering by its
 * subscription, as fast as its window frees up; once it has read
 * everything ingest skipped, it is live again. So a destination that is
 * down for hours builds its backlog on disk, and memory stays bounded by
 * queue_size whatever the backlog. At start-up an instance with a saved
 * cursor catches up from it; a new instance starts live, at the end.
 *
 * Without a journal (unit tests), an event arriving at a full ring is
 * dead-lettered ("queue full") instead, and whatever is left at shutdown
 * is dead-lettered too. */
#ifndef EVB_INSTANCE_H
#define EVB_INSTANCE_H

#define EVB_STAGE 256 /* events ingest stages per instance between flushes */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <evbus/plugin.h>

#include "config.h"
#include "cursors.h"
#include "deadletter.h"
#include "event.h"
#include "journal.h"
#include "loader.h"
#include "log.h"
#include "schema.h"
#include "stats.h"
#include "watch.h"

typedef struct evbus_instance evb_instance_t;
typedef struct evbus_attempt evb_attempt_t;

/* Why an event was dead-lettered, for the figures (the dead letter itself
 * carries the full reason). */
typedef enum evb_dead_cause {
    EVB_DEAD_PERMANENT = 0, /* "permanent": the plugin said DROP */
    EVB_DEAD_MAX_ATTEMPTS,  /* "max_attempts" */
    EVB_DEAD_MAX_AGE,       /* "max_age" */
    EVB_DEAD_BROKEN,        /* "broken": the plugin said BROKEN */
    EVB_DEAD_DISABLED,      /* "disabled": the instance was disabled */
    EVB_DEAD_OVERFLOW,      /* "overflow": queue full, no journal */
    EVB_DEAD_SHUTDOWN,      /* "shutdown": not delivered in time, no
                               journal to keep it */
    EVB_DEAD_INTERNAL,      /* "internal": out of memory */
    EVB_DEAD_CRASHED,       /* "crashed": it crashed the broker crash_limit
                               times in a row (watch.h) */
    EVB_DEAD__COUNT
} evb_dead_cause_t;

const char *evb_dead_cause_name(evb_dead_cause_t c);

/* Where an instance is in its life, for the figures. */
#define EVB_INST_CREATED 0
#define EVB_INST_RUNNING 1  /* plugin initialised, workers started */
#define EVB_INST_STOPPING 2 /* draining */
#define EVB_INST_STOPPED 3

/* Figures for logs, metrics and evbusctl; each a snapshot. */
typedef struct evb_instance_stats {
    uint64_t enqueued;      /* events that entered the window */
    uint64_t delivered;     /* outcome OK */
    uint64_t retried;       /* attempts that failed and were rescheduled */
    uint64_t dead_lettered; /* given up (drop, max attempts/age, broken,
                               disabled; without a journal also overflow
                               and shutdown) */
    uint64_t dead_by[EVB_DEAD__COUNT]; /* the same by cause */
    uint64_t overflow;          /* without a journal: dead-lettered, queue full;
                                   with one: times the instance fell behind and
                                   went to read the journal */
    uint64_t lost;              /* journal records deleted (retention limits or
                                   corruption) before this instance read them */
    uint64_t cursor_recovered;  /* its saved cursor was unusable at start and
                                   it resumed from a safe point (0 or 1) */
    uint64_t queued;            /* waiting for a first attempt */
    uint64_t retrying;          /* waiting for a retry */
    uint64_t in_flight;         /* attempts under way */
    uint64_t cursor;            /* every event up to this seq is done */
    int64_t oldest_accepted_ms; /* the oldest event held in memory and not
                                   done yet, Unix ms; 0 = none */
    int live;                   /* 1 live, 0 catching up from the journal */
    int state;                  /* EVB_INST_* */
    int disabled;
    uint64_t slow_calls; /* plugin calls that ran past slow_call */
    uint64_t stuck;      /* calls running past it now */
} evb_instance_stats_t;

/* One window slot. */
typedef struct evb_slot {
    evb_event_t *ev; /* until its first attempt starts */
    uint64_t seq;
    int64_t accepted_ms;
    atomic_int done;
} evb_slot_t;

struct evbus_attempt {
    evb_instance_t *inst;
    struct evbus_attempt *free_next; /* in the instance's spare lists */
    evb_event_t *ev;
    uint64_t slot;       /* absolute slot number */
    int number;          /* attempts started so far (1 = first) */
    int64_t due_mono;    /* when the next attempt may start */
    int64_t retry_after; /* plugin hint for the next attempt, ms */
    int64_t started_us;  /* monotonic start of the current attempt */
    char reason[1024];   /* the last failure; keep last (see memset) */
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
    /* the window: slots [head, next) started, [next, tail) queued */
    evb_slot_t *slots;
    uint64_t cap, head, next, tail;
    evb_attempt_t **heap;   /* retries, min-heap by (due_mono, slot), or by
                               slot alone with ordering = "accepted" */
    size_t left_in_journal; /* retries given back to the journal at stop */
    size_t heap_count, heap_cap;
    /* Changed without the lock when an attempt finishes (any thread), so
     * completions never contend with ingest for it; a worker about to wait
     * counts itself in `sleepers` first and is woken under the lock. */
    atomic_int in_flight;
    atomic_int sleepers;
    /* Finished attempts come back here from whatever thread completed them
     * and are reused by the workers (under the lock, via `att_spare`): the
     * memory stays with the threads that allocated it, and a plugin that
     * completes on its own thread never frees into the workers' arena. */
    _Atomic(evb_attempt_t *) att_returned;
    evb_attempt_t *att_spare;
    int wake_room_at; /* in_flight at which a worker waiting for room wakes */
    int stopping;     /* 1 = drain, 2 = stop now */
    int64_t deadline_mono;
    int reopen_pending;
    int wake_pending; /* pushed since the last kick */
    int ticking;
    int64_t last_tick_mono;
    atomic_int disabled;
    char disabled_reason[512]; /* written once, before `disabled` is set:
                                  read it after an acquire load of that */
    pthread_t threads[64];
    int n_threads;
    /* the plugin call each worker is in ([i] for threads[i]), and the main
     * thread's (init, validate, shutdown): watch.h */
#define EVB_CALL_MAIN 64
#define EVB_CALL_SLOTS 65
    evb_call_t calls[EVB_CALL_SLOTS];
    atomic_uint_fast64_t n_slow_calls;
    /* an event that crashed the broker crash_limit times in a row: it is
     * dead-lettered instead of delivered (0 = none) */
    uint64_t poison_seq;
    char poison_why[400];

    /* the journal side (all NULL/0 without a journal) */
    evb_journal_t *journal;
    evb_cursors_t *cursors;
    int live;                      /* ingest pushes into the window */
    int ordered;                   /* ordering = "accepted" (resolved) */
    uint64_t skipped_upto;         /* newest seq ingest skipped while !live */
    uint64_t catchup_from;         /* where reading the journal starts */
    atomic_uint_fast64_t seen_seq; /* newest seq ingest routed while live */
    evb_journal_reader_t *reader;  /* catching up */
    int reading;                   /* a worker is reading the journal */
    uint64_t saved_cursor;
    int64_t last_save_mono;

    /* ingest's staging area (main thread only, no lock): events pushed
     * during an ingest batch, handed over under one lock round trip by
     * evb_instance_flush (one lock per event contended with the worker) */
    evb_event_t *stage[EVB_STAGE];
    size_t n_stage;
    uint64_t stage_seen; /* newest seq ingest routed, staged or passed */

    atomic_uint_fast64_t n_enqueued, n_delivered, n_retried, n_overflow, n_lost,
        n_cursor_recovered;
    atomic_uint_fast64_t n_dead[EVB_DEAD__COUNT];
    evb_hist_t h_attempt;  /* deliver() to outcome, every attempt */
    evb_hist_t h_delivery; /* accepted to delivered (outcome OK) */
    atomic_int state;      /* EVB_INST_* */
    evb_ratelimit_t rl_retry, rl_dead, rl_overflow;
    evb_ratelimit_t rl_plugin; /* the plugin's own log lines (host->log) */
};

/* Resolve the instance's options against its plugin's schema (errors are
 * reported with file, line and setting) and prepare its window. */
evb_instance_t *evb_instance_new(const evb_instance_conf_t *conf,
                                 evb_plugin_t *plugin, const char *config_file,
                                 const char *dead_letter_dir);
/* Give the instance its journal and its cursor from the store (a new
 * instance starts at the journal's end, or its oldest record with
 * start_at = "oldest"; a cursor that was unusable resumes from a safe
 * point: cursors.h). Before start. 0 or -1 (logged). */
int evb_instance_attach(evb_instance_t *inst, evb_journal_t *journal,
                        evb_cursors_t *cursors);
/* The plugin's validate(), if it has one. 0 or -1. */
int evb_instance_validate(evb_instance_t *inst);
/* The plugin's init(), then the workers. 0 or -1 (logged). */
int evb_instance_start(evb_instance_t *inst);

/* Hand an event over (takes its own reference; ev->seq set). Never blocks
 * on the destination. Main thread. */
void evb_instance_enqueue(evb_instance_t *inst, evb_event_t *ev);
/* The same in steps, for ingest batches. push stages the event (no lock;
 * a full stage is flushed); flush hands the staged events to the window
 * under one lock (or, when the instance is behind, notes that it must
 * read them from the journal); kick wakes the worker if anything was
 * handed over since — with force, or once enough is queued to be worth a
 * wake-up. Ingest flushes and kicks after every batch and forces when it
 * runs out of input, so a worker is woken once per few hundred events
 * under load, and at once when idle. A flush must come before the journal
 * flush that makes the staged events readable (router.c). */
void evb_instance_push(evb_instance_t *inst, evb_event_t *ev);
void evb_instance_flush(evb_instance_t *inst);
void evb_instance_kick(evb_instance_t *inst, int force);
/* Ingest routed seq elsewhere (the instance does not subscribe to it):
 * lets the cursor move past it once flushed. Main thread, no lock. */
static inline void evb_instance_pass(evb_instance_t *inst, uint64_t seq)
{
    inst->stage_seen = seq;
}

/* Dead-letter event seq with `why` instead of delivering it (it crashed
 * the broker). Before start. */
void evb_instance_poison(evb_instance_t *inst, uint64_t seq, const char *why);
/* Save the cursor now, from any thread (the shutdown deadline): the lock
 * is waited for at most a second. */
void evb_instance_save_cursor_now(evb_instance_t *inst);

/* SIGHUP: the plugin's reopen() runs on a worker between deliveries. */
void evb_instance_request_reopen(evb_instance_t *inst);
/* Mark the instance broken: later events are dead-lettered. Any thread. */
void evb_instance_disable(evb_instance_t *inst, const char *reason);
/* Start draining without waiting (so several instances drain at once):
 * workers deliver what the window holds (no more journal reading) until
 * nothing is left or the deadline passes. */
void evb_instance_begin_drain(evb_instance_t *inst, int64_t deadline_mono_ms);
/* Drain, join the workers, call the plugin's shutdown(), save the cursor.
 * With a journal, events not delivered stay in it for the next start;
 * without one they are dead-lettered with the reason "shutdown". */
void evb_instance_stop(evb_instance_t *inst, int64_t deadline_mono_ms);
void evb_instance_destroy(evb_instance_t **self);

void evb_instance_get_stats(evb_instance_t *inst, evb_instance_stats_t *out);
/* Every event up to this seq is done (0 = nothing yet). */
uint64_t evb_instance_cursor(evb_instance_t *inst);

/* Report an attempt's outcome (EVBUS_OK/RETRY/DROP/BROKEN): behind
 * host->attempt_complete() and a synchronous deliver() return. */
void evb_attempt_complete(evb_attempt_t *att, int result);

#endif
