#include "instance.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hostapi.h"
#include "retry.h"

#define TICK_NEVER INT64_MAX
#define BATCH 32       /* attempts started per lock round trip */

/* ------------------------------------------------------- queue and heap */

/* Grow the ring to hold at least one more event; keeps FIFO order. */
static int s_ring_grow(evb_instance_t *inst)
{
    size_t cap = inst->ring_cap ? inst->ring_cap * 2 : 64;
    size_t limit = (size_t)inst->conf->queue_size;
    if (cap > limit)
        cap = limit;
    if (cap <= inst->ring_cap)
        return -1;
    evb_event_t **r = malloc(cap * sizeof *r);
    if (!r)
        return -1;
    for (size_t i = 0; i < inst->ring_count; i++)
        r[i] = inst->ring[(inst->ring_head + i) % inst->ring_cap];
    free(inst->ring);
    inst->ring = r;
    inst->ring_cap = cap;
    inst->ring_head = 0;
    return 0;
}

static int s_ring_push(evb_instance_t *inst, evb_event_t *ev)
{
    if (inst->ring_count == inst->ring_cap && s_ring_grow(inst) < 0)
        return -1;
    inst->ring[(inst->ring_head + inst->ring_count) % inst->ring_cap] = ev;
    inst->ring_count++;
    return 0;
}

static evb_event_t *s_ring_pop(evb_instance_t *inst)
{
    evb_event_t *ev = inst->ring[inst->ring_head];
    inst->ring_head = (inst->ring_head + 1) % inst->ring_cap;
    inst->ring_count--;
    return ev;
}

static int s_heap_push(evb_instance_t *inst, evb_attempt_t *att)
{
    if (inst->heap_count == inst->heap_cap) {
        size_t cap = inst->heap_cap ? inst->heap_cap * 2 : 16;
        evb_attempt_t **h = realloc(inst->heap, cap * sizeof *h);
        if (!h)
            return -1;
        inst->heap = h;
        inst->heap_cap = cap;
    }
    size_t i = inst->heap_count++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (inst->heap[parent]->due_mono <= att->due_mono)
            break;
        inst->heap[i] = inst->heap[parent];
        i = parent;
    }
    inst->heap[i] = att;
    return 0;
}

static evb_attempt_t *s_heap_pop(evb_instance_t *inst)
{
    evb_attempt_t *top = inst->heap[0];
    evb_attempt_t *last = inst->heap[--inst->heap_count];
    size_t i = 0, n = inst->heap_count;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && inst->heap[c + 1]->due_mono < inst->heap[c]->due_mono)
            c++;
        if (last->due_mono <= inst->heap[c]->due_mono)
            break;
        inst->heap[i] = inst->heap[c];
        i = c;
    }
    if (n)
        inst->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------- outcomes */

/* A fresh attempt. Called with the lock held. */
static evb_attempt_t *s_attempt_new(evb_instance_t *inst)
{
    evb_attempt_t *att = malloc(sizeof *att);
    if (!att)
        return NULL;
    memset(att, 0, offsetof(evb_attempt_t, reason) + 1);
    att->inst = inst;
    return att;
}

/* Wake the workers if one is waiting (for a free in-flight slot, or to
 * finish a drain). */
static void s_wake_sleepers(evb_instance_t *inst)
{
    if (atomic_load(&inst->sleepers) > 0) {
        pthread_mutex_lock(&inst->lock);
        pthread_cond_broadcast(&inst->wake);
        pthread_mutex_unlock(&inst->lock);
    }
}

/* The attempt is over for good: release everything it holds. Lock-free
 * unless a worker waits. */
static void s_finish(evb_attempt_t *att)
{
    evb_instance_t *inst = att->inst;
    evb_event_t *ev = att->ev;
    free(att);
    atomic_fetch_sub(&inst->held, 1);
    atomic_fetch_sub(&inst->in_flight, 1);
    s_wake_sleepers(inst);
    evb_event_release(ev);
}

/* Dead-letter one event the instance holds no attempt for. */
static void s_dead_event(evb_instance_t *inst, evb_event_t *ev, int attempts,
                         const char *reason)
{
    evb_log_limited(&inst->rl_dead, EVBUS_LOG_ERROR, inst->name,
                    "event %s (%s) dead-lettered after %d attempt%s: %s",
                    ev->id, ev->type, attempts, attempts == 1 ? "" : "s",
                    reason);
    evb_deadletter_write(inst->dead, ev, reason, attempts);
    /* counted once written, so the count never runs ahead of the file */
    atomic_fetch_add(&inst->n_dead, 1);
}

static void s_dead(evb_attempt_t *att, const char *reason)
{
    s_dead_event(att->inst, att->ev, att->number, reason);
    s_finish(att);
}

static const char *s_reason(const evb_attempt_t *att)
{
    return att->reason[0] ? att->reason : "no reason given";
}

void evb_attempt_complete(evb_attempt_t *att, int result)
{
    evb_instance_t *inst = att->inst;
    evb_event_t *ev = att->ev;
    char why[1400];

    switch (result) {
    case EVBUS_OK:
        atomic_fetch_add(&inst->n_delivered, 1);
        if (evb_log_level() >= EVBUS_LOG_DEBUG)
            evb_log(EVBUS_LOG_DEBUG, inst->name,
                    "delivered event %s (%s), attempt %d, %lld ms", ev->id,
                    ev->type, att->number,
                    (long long)((evb_mono_us() - att->started_us) / 1000));
        s_finish(att);
        return;

    case EVBUS_RETRY: {
        int64_t now = evb_now_ms(), due = 0;
        evb_retry_verdict_t v =
            evb_retry_next(&inst->conf->retry, att->number, ev->accepted_ms,
                           now, att->retry_after, evb_random(), &due);
        if (v == EVB_RETRY_AGAIN) {
            int64_t due_mono = evb_mono_ms() + (due - now);
            pthread_mutex_lock(&inst->lock);
            int late = inst->stopping && due_mono > inst->deadline_mono;
            if (!late) {
                att->due_mono = due_mono;
                att->retry_after = 0;
                if (s_heap_push(inst, att) == 0) {
                    atomic_fetch_sub(&inst->in_flight, 1);
                    pthread_cond_broadcast(&inst->wake);
                    pthread_mutex_unlock(&inst->lock);
                    atomic_fetch_add(&inst->n_retried, 1);
                    evb_log_limited(
                        &inst->rl_retry, EVBUS_LOG_WARN, inst->name,
                        "attempt %d of event %s (%s) failed after %lld ms: "
                        "%s; next attempt in %lld ms",
                        att->number, ev->id, ev->type,
                        (long long)((evb_mono_us() - att->started_us) / 1000),
                        s_reason(att), (long long)(due - now));
                    return;
                }
            }
            pthread_mutex_unlock(&inst->lock);
            snprintf(why, sizeof why,
                     late ? "shutdown: the next attempt was due after the "
                            "shutdown deadline; last error: %s"
                          : "out of memory scheduling a retry; last error: %s",
                     s_reason(att));
        } else if (v == EVB_RETRY_GIVE_UP_ATTEMPTS) {
            snprintf(why, sizeof why,
                     "gave up after %d attempts (max_attempts); last error: "
                     "%s",
                     att->number, s_reason(att));
        } else {
            snprintf(why, sizeof why,
                     "gave up after %d attempts: the next one would be past "
                     "max_age (%lld ms); last error: %s",
                     att->number, (long long)inst->conf->retry.max_age_ms,
                     s_reason(att));
        }
        s_dead(att, why);
        return;
    }

    case EVBUS_DROP:
        snprintf(why, sizeof why, "permanent failure: %s", s_reason(att));
        s_dead(att, why);
        return;

    case EVBUS_BROKEN:
        evb_instance_disable(inst, s_reason(att));
        snprintf(why, sizeof why, "instance broken: %s", s_reason(att));
        s_dead(att, why);
        return;

    default:
        evb_log(EVBUS_LOG_ERROR, inst->name,
                "plugin %s reported invalid outcome %d for event %s; "
                "treating it as a retry",
                inst->plugin->desc.name, result, ev->id);
        snprintf(att->reason, sizeof att->reason, "invalid outcome %d",
                 result);
        evb_attempt_complete(att, EVBUS_RETRY);
        return;
    }
}

/* ---------------------------------------------------------------- worker */

static void s_run_attempt(evb_instance_t *inst, evb_attempt_t *att,
                          int64_t now_us)
{
    att->number++;
    att->reason[0] = '\0';
    att->retry_after = 0;
    att->started_us = now_us;
    if (atomic_load(&inst->disabled)) {
        char why[600];
        snprintf(why, sizeof why, "instance disabled: %s",
                 inst->disabled_reason);
        att->number--; /* no attempt was made */
        s_dead(att, why);
        return;
    }
    int rc = inst->plugin->desc.deliver(inst->userdata, att->ev, att);
    if (rc != EVBUS_PENDING)
        evb_attempt_complete(att, rc);
}

/* Call tick() with the lock dropped; one worker at a time. */
static void s_tick(evb_instance_t *inst)
{
    inst->ticking = 1;
    pthread_mutex_unlock(&inst->lock);
    inst->plugin->desc.tick(inst->userdata);
    pthread_mutex_lock(&inst->lock);
    inst->ticking = 0;
    inst->last_tick_mono = evb_mono_ms();
}

static void s_wait_until(evb_instance_t *inst, int64_t until_mono)
{
    if (until_mono == TICK_NEVER) {
        pthread_cond_wait(&inst->wake, &inst->lock);
        return;
    }
    struct timespec ts = {(time_t)(until_mono / 1000),
                          (long)(until_mono % 1000) * 1000000L};
    pthread_cond_timedwait(&inst->wake, &inst->lock, &ts);
}

static void *s_worker(void *arg)
{
    evb_instance_t *inst = arg;
    const evbus_plugin_t *d = &inst->plugin->desc;
    int64_t interval = d->tick ? (int64_t)d->tick_interval_ms : 0;
    int idle_ticked = 0;

    pthread_mutex_lock(&inst->lock);
    for (;;) {
        int64_t now = evb_mono_ms();
        if (interval > 0 && !inst->ticking &&
            now - inst->last_tick_mono >= interval) {
            s_tick(inst);
            continue;
        }
        if (inst->reopen_pending && !inst->ticking) {
            inst->reopen_pending = 0;
            if (d->reopen) {
                pthread_mutex_unlock(&inst->lock);
                d->reopen(inst->userdata);
                pthread_mutex_lock(&inst->lock);
            }
            continue;
        }
        if (inst->stopping == 2 ||
            (inst->stopping == 1 && now >= inst->deadline_mono))
            break; /* past the drain deadline: start nothing more */

        /* start a batch: retries that are due first, then new events;
         * one lock round trip for up to BATCH attempts */
        evb_attempt_t *batch[BATCH];
        int n = 0, oom = 0;
        int in_flight = atomic_load(&inst->in_flight);
        while (n < BATCH && in_flight + n < inst->max_in_flight) {
            evb_attempt_t *att = NULL;
            if (inst->heap_count && inst->heap[0]->due_mono <= now) {
                att = s_heap_pop(inst);
            } else if (inst->ring_count) {
                att = s_attempt_new(inst);
                if (!att) {
                    oom = 1;
                    break;
                }
                att->ev = s_ring_pop(inst);
            } else {
                break;
            }
            batch[n++] = att;
        }
        if (n) {
            atomic_fetch_add(&inst->in_flight, n);
            idle_ticked = 0;
            pthread_mutex_unlock(&inst->lock);
            int64_t now_us = evb_mono_us(); /* one clock read a batch */
            for (int i = 0; i < n; i++)
                s_run_attempt(inst, batch[i], now_us);
            pthread_mutex_lock(&inst->lock);
            continue;
        }

        /* nothing to start now */
        if (d->tick && !idle_ticked && !inst->ticking) {
            idle_ticked = 1;
            s_tick(inst);
            continue;
        }
        /* about to wait: count ourselves first, then look once more, so a
         * completion that lands in between either is seen here or wakes
         * us (s_wake_sleepers) */
        atomic_fetch_add(&inst->sleepers, 1);
        in_flight = atomic_load(&inst->in_flight);
        int room = in_flight < inst->max_in_flight;
        if (inst->stopping == 1) {
            int retries_possible =
                inst->heap_count &&
                inst->heap[0]->due_mono <= inst->deadline_mono;
            if (!inst->ring_count && !in_flight && !retries_possible) {
                atomic_fetch_sub(&inst->sleepers, 1);
                break;
            }
        }
        if (room && (inst->ring_count ||
                     (inst->heap_count && inst->heap[0]->due_mono <= now))) {
            atomic_fetch_sub(&inst->sleepers, 1);
            if (oom)
                s_wait_until(inst, now + 10); /* out of memory: back off */
            continue;
        }
        int64_t until = TICK_NEVER;
        if (inst->heap_count && room)
            until = inst->heap[0]->due_mono;
        if (interval > 0 && inst->last_tick_mono + interval < until)
            until = inst->last_tick_mono + interval;
        if (inst->stopping == 1 && inst->deadline_mono < until)
            until = inst->deadline_mono;
        s_wait_until(inst, until);
        atomic_fetch_sub(&inst->sleepers, 1);
    }
    pthread_mutex_unlock(&inst->lock);
    return NULL;
}

/* ------------------------------------------------------------ lifecycle */

evb_instance_t *evb_instance_new(const evb_instance_conf_t *conf,
                                 evb_plugin_t *plugin, const char *config_file,
                                 const char *dead_letter_dir)
{
    evb_instance_t *inst = calloc(1, sizeof *inst);
    if (!inst)
        return NULL;
    inst->conf = conf;
    inst->name = conf->name;
    inst->plugin = plugin;
    inst->config_file = config_file;
    pthread_mutex_init(&inst->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inst->wake, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&inst->disabled, 0);
    atomic_init(&inst->in_flight, 0);
    atomic_init(&inst->held, 0);
    atomic_init(&inst->sleepers, 0);
    evb_ratelimit_t rl = EVB_RATELIMIT_INIT(10000, 100);
    inst->rl_retry = rl;
    inst->rl_dead = rl;
    inst->rl_overflow = rl;

    char setting[256];
    snprintf(setting, sizeof setting, "%s.options",
             conf->setting ? conf->setting : conf->name);
    int line = conf->options ? (int)config_setting_source_line(conf->options)
                             : conf->line;
    int ok = evb_options_resolve(plugin->schema, conf->options, config_file,
                                 setting, line, &inst->options) == 0;

    const evbus_plugin_t *d = &plugin->desc;
    inst->workers = conf->workers > 0 ? conf->workers : 1;
    if (inst->workers > 1 && !(d->flags & EVBUS_PLUGIN_REENTRANT)) {
        evb_config_report(config_file, conf->line, conf->setting,
                          "workers = %d, but plugin \"%s\" is not re-entrant "
                          "and runs one worker per instance",
                          inst->workers, d->name);
        ok = 0;
    }
    if (inst->workers > 64)
        inst->workers = 64;
    inst->max_in_flight = conf->max_in_flight > 0 ? conf->max_in_flight
                          : d->max_in_flight > 0  ? (int)d->max_in_flight
                                                  : 1;
    if (inst->max_in_flight < inst->workers)
        inst->max_in_flight = inst->workers;

    inst->dead = evb_deadletter_new(dead_letter_dir, conf->name, d->name);
    if (!ok || !inst->dead) {
        evb_instance_destroy(&inst);
        return NULL;
    }
    return inst;
}

int evb_instance_validate(evb_instance_t *inst)
{
    if (!inst->plugin->desc.validate)
        return 0;
    return inst->plugin->desc.validate(inst, evb_host_table()) == 0 ? 0 : -1;
}

int evb_instance_start(evb_instance_t *inst)
{
    const evbus_plugin_t *d = &inst->plugin->desc;
    if (d->init(inst, evb_host_table(), &inst->userdata) != 0) {
        evb_log(EVBUS_LOG_ERROR, inst->name,
                "plugin %s failed to initialise this instance", d->name);
        return -1;
    }
    inst->initialized = 1;
    inst->last_tick_mono = evb_mono_ms();
    for (int i = 0; i < inst->workers; i++) {
        int err = pthread_create(&inst->threads[i], NULL, s_worker, inst);
        if (err) {
            evb_log(EVBUS_LOG_ERROR, inst->name,
                    "cannot start worker thread: %s", strerror(err));
            return -1;
        }
        inst->n_threads++;
    }
    evb_log(EVBUS_LOG_INFO, inst->name,
            "started: plugin %s %s, %d worker%s, queue_size %d, "
            "max_in_flight %d",
            d->name, d->version ? d->version : "", inst->workers,
            inst->workers == 1 ? "" : "s", inst->conf->queue_size,
            inst->max_in_flight);
    return 0;
}

void evb_instance_enqueue(evb_instance_t *inst, evb_event_t *ev)
{
    evb_instance_push(inst, ev);
    evb_instance_kick(inst);
}

void evb_instance_kick(evb_instance_t *inst)
{
    pthread_mutex_lock(&inst->lock);
    if (inst->wake_pending) {
        inst->wake_pending = 0;
        pthread_cond_signal(&inst->wake);
    }
    pthread_mutex_unlock(&inst->lock);
}

void evb_instance_push(evb_instance_t *inst, evb_event_t *ev)
{
    atomic_fetch_add_explicit(&inst->n_enqueued, 1, memory_order_relaxed);
    if (atomic_load_explicit(&inst->disabled, memory_order_relaxed)) {
        char why[600];
        snprintf(why, sizeof why, "instance disabled: %s",
                 inst->disabled_reason);
        s_dead_event(inst, ev, 0, why);
        return;
    }
    pthread_mutex_lock(&inst->lock);
    if (atomic_load(&inst->held) >= inst->conf->queue_size) {
        pthread_mutex_unlock(&inst->lock);
        atomic_fetch_add(&inst->n_overflow, 1);
        evb_log_limited(&inst->rl_overflow, EVBUS_LOG_WARN, inst->name,
                        "queue full (%d events held): event %s goes to the "
                        "dead-letter file",
                        inst->conf->queue_size, ev->id);
        char why[128];
        snprintf(why, sizeof why, "queue full (queue_size %d)",
                 inst->conf->queue_size);
        s_dead_event(inst, ev, 0, why);
        return;
    }
    if (s_ring_push(inst, evb_event_retain(ev)) < 0) {
        pthread_mutex_unlock(&inst->lock);
        evb_event_release(ev);
        s_dead_event(inst, ev, 0, "out of memory queueing the event");
        return;
    }
    atomic_fetch_add(&inst->held, 1);
    inst->wake_pending = 1; /* the worker is woken by evb_instance_kick */
    pthread_mutex_unlock(&inst->lock);
}

void evb_instance_request_reopen(evb_instance_t *inst)
{
    pthread_mutex_lock(&inst->lock);
    inst->reopen_pending = 1;
    pthread_cond_broadcast(&inst->wake);
    pthread_mutex_unlock(&inst->lock);
}

void evb_instance_disable(evb_instance_t *inst, const char *reason)
{
    pthread_mutex_lock(&inst->lock);
    int was = atomic_load(&inst->disabled);
    if (!was) {
        snprintf(inst->disabled_reason, sizeof inst->disabled_reason, "%s",
                 reason ? reason : "no reason given");
        atomic_store(&inst->disabled, 1);
    }
    pthread_cond_broadcast(&inst->wake);
    pthread_mutex_unlock(&inst->lock);
    if (!was)
        evb_log(EVBUS_LOG_ERROR, inst->name,
                "instance DISABLED: %s; its events go to the dead-letter "
                "file %s until evbusd restarts with a corrected config",
                reason ? reason : "no reason given",
                evb_deadletter_path(inst->dead));
}

void evb_instance_begin_drain(evb_instance_t *inst, int64_t deadline_mono_ms)
{
    pthread_mutex_lock(&inst->lock);
    inst->stopping = 1;
    inst->deadline_mono = deadline_mono_ms;
    pthread_cond_broadcast(&inst->wake);
    pthread_mutex_unlock(&inst->lock);
}

void evb_instance_stop(evb_instance_t *inst, int64_t deadline_mono_ms)
{
    evb_instance_begin_drain(inst, deadline_mono_ms);
    for (int i = 0; i < inst->n_threads; i++)
        pthread_join(inst->threads[i], NULL);
    inst->n_threads = 0;

    /* the plugin completes whatever it still holds */
    if (inst->initialized && inst->plugin->desc.shutdown)
        inst->plugin->desc.shutdown(inst->userdata);
    inst->initialized = 0;

    /* everything not delivered by now is dead-lettered, not dropped */
    size_t left = 0;
    for (;;) {
        pthread_mutex_lock(&inst->lock);
        evb_event_t *ev = NULL;
        evb_attempt_t *att = NULL;
        if (inst->ring_count) {
            ev = s_ring_pop(inst);
            atomic_fetch_sub(&inst->held, 1);
        } else if (inst->heap_count) {
            att = s_heap_pop(inst);
            atomic_fetch_add(&inst->in_flight, 1); /* s_finish undoes it */
        }
        pthread_mutex_unlock(&inst->lock);
        if (ev) {
            s_dead_event(inst, ev, 0,
                         "shutdown: not delivered before the shutdown "
                         "deadline");
            evb_event_release(ev);
        } else if (att) {
            char why[1200];
            snprintf(why, sizeof why,
                     "shutdown: not delivered before the shutdown deadline; "
                     "last error: %s",
                     s_reason(att));
            s_dead(att, why);
        } else {
            break;
        }
        left++;
    }
    if (left)
        evb_log(EVBUS_LOG_WARN, inst->name,
                "shutdown: %zu undelivered event%s written to %s", left,
                left == 1 ? "" : "s", evb_deadletter_path(inst->dead));
    int pending = atomic_load(&inst->in_flight);
    if (pending)
        evb_log(EVBUS_LOG_ERROR, inst->name,
                "plugin %s still held %d attempt%s after shutdown(); their "
                "outcome is unknown",
                inst->plugin->desc.name, pending, pending == 1 ? "" : "s");
}

void evb_instance_destroy(evb_instance_t **self)
{
    if (!self || !*self)
        return;
    evb_instance_t *inst = *self;
    if (inst->n_threads || inst->initialized)
        evb_instance_stop(inst, evb_mono_ms());
    while (inst->ring_count)
        evb_event_release(s_ring_pop(inst));
    while (inst->heap_count) {
        evb_attempt_t *att = s_heap_pop(inst);
        evb_event_release(att->ev);
        free(att);
    }
    free(inst->ring);
    free(inst->heap);
    evb_options_clear(&inst->options);
    evb_deadletter_destroy(&inst->dead);
    pthread_cond_destroy(&inst->wake);
    pthread_mutex_destroy(&inst->lock);
    free(inst);
    *self = NULL;
}

void evb_instance_get_stats(evb_instance_t *inst, evb_instance_stats_t *out)
{
    out->enqueued = atomic_load(&inst->n_enqueued);
    out->delivered = atomic_load(&inst->n_delivered);
    out->retried = atomic_load(&inst->n_retried);
    out->dead_lettered = atomic_load(&inst->n_dead);
    out->overflow = atomic_load(&inst->n_overflow);
    pthread_mutex_lock(&inst->lock);
    out->queued = inst->ring_count;
    out->retrying = inst->heap_count;
    out->in_flight = (uint64_t)atomic_load(&inst->in_flight);
    pthread_mutex_unlock(&inst->lock);
}
