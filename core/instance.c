#include "instance.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "hostapi.h"
#include "retry.h"
#include "topic.h"

#define TICK_NEVER INT64_MAX
#define BATCH 32           /* attempts started per lock round trip */
#define READ_BATCH 256     /* journal records read per catch-up step */
#define KICK_BATCH 256     /* queued events worth waking a worker for */
#define CURSOR_SAVE_MS 100 /* how often a moving cursor is saved */

/* ---------------------------------------------------------- the window */

static evb_slot_t *s_slot(evb_instance_t *inst, uint64_t n)
{
    return &inst->slots[n % inst->cap];
}

/* Free the done slots at the window's head. Lock held. */
static void s_trim(evb_instance_t *inst)
{
    while (inst->head < inst->next &&
           atomic_load_explicit(&s_slot(inst, inst->head)->done,
                                memory_order_acquire))
        inst->head++;
}

static int s_full(evb_instance_t *inst)
{
    if (inst->tail - inst->head < inst->cap)
        return 0;
    s_trim(inst);
    return inst->tail - inst->head >= inst->cap;
}

/* Queue an event in the window (takes a reference). Lock held, not full. */
static void s_window_push(evb_instance_t *inst, evb_event_t *ev)
{
    evb_slot_t *slot = s_slot(inst, inst->tail++);
    slot->ev = evb_event_retain(ev);
    slot->seq = ev->seq;
    slot->accepted_ms = ev->accepted_ms;
    atomic_store_explicit(&slot->done, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&inst->n_enqueued, 1, memory_order_relaxed);
    inst->wake_pending = 1;
}

/* ------------------------------------------------------- the retry heap */

/* Which retry goes first. ordering = "accepted": the earliest accepted
 * (window position), whatever the due times: it waits for its own due
 * time and the others wait behind it, so however many rounds of retries
 * a batch goes through, events are tried again in acceptance order.
 * Otherwise: by due time, in acceptance order at the same time. */
static int s_before(const evb_instance_t *inst, const evb_attempt_t *a,
                    const evb_attempt_t *b)
{
    if (inst->ordered)
        return a->slot < b->slot;
    return a->due_mono < b->due_mono ||
           (a->due_mono == b->due_mono && a->slot < b->slot);
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
        if (!s_before(inst, att, inst->heap[parent]))
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
        if (c + 1 < n && s_before(inst, inst->heap[c + 1], inst->heap[c]))
            c++;
        if (!s_before(inst, inst->heap[c], last))
            break;
        inst->heap[i] = inst->heap[c];
        i = c;
    }
    if (n)
        inst->heap[i] = last;
    return top;
}

/* ------------------------------------------------------------- outcomes */

/* An attempt for the window's next queued slot. Lock held. */
/* Lock held. */
static evb_attempt_t *s_attempt_new(evb_instance_t *inst)
{
    if (!inst->att_spare)
        inst->att_spare = atomic_exchange(&inst->att_returned, NULL);
    evb_attempt_t *att = inst->att_spare;
    if (att)
        inst->att_spare = att->free_next;
    else if (!(att = malloc(sizeof *att)))
        return NULL;
    memset(att, 0, offsetof(evb_attempt_t, reason) + 1);
    att->inst = inst;
    att->slot = inst->next++;
    evb_slot_t *slot = s_slot(inst, att->slot);
    att->ev = slot->ev; /* the slot's reference moves to the attempt */
    slot->ev = NULL;
    return att;
}

/* An attempt is over: back to the spares (any thread, no lock). The
 * workers only ever take the whole list, so this push has no ABA. */
static void s_attempt_free(evb_instance_t *inst, evb_attempt_t *att)
{
    att->free_next = atomic_load(&inst->att_returned);
    while (!atomic_compare_exchange_weak(&inst->att_returned, &att->free_next,
                                         att))
        ;
}

/* Wake the workers if one is waiting (for a free in-flight slot, room in
 * the window, or to finish a drain). */
static void s_wake_sleepers(evb_instance_t *inst)
{
    if (atomic_load(&inst->sleepers) > 0) {
        pthread_mutex_lock(&inst->lock);
        pthread_cond_broadcast(&inst->wake);
        pthread_mutex_unlock(&inst->lock);
    }
}

/* An attempt no longer counts as in flight. A worker sleeping for room
 * (in_flight reached max_in_flight) is woken once `wake_room_at` is reached,
 * after a refill's worth of completions rather than on each: a wake-up per
 * completion costs a context switch per event. Stopping waits for zero. */
static void s_in_flight_sub(evb_instance_t *inst)
{
    int left = atomic_fetch_sub(&inst->in_flight, 1) - 1;
    if (left == 0 || left == inst->wake_room_at)
        s_wake_sleepers(inst);
}

/* The attempt is over for good: mark its slot done and release what it
 * holds. Lock-free unless a worker waits. */
static void s_finish(evb_attempt_t *att)
{
    evb_instance_t *inst = att->inst;
    evb_event_t *ev = att->ev;
    atomic_store_explicit(&s_slot(inst, att->slot)->done, 1,
                          memory_order_release);
    s_attempt_free(inst, att);
    s_in_flight_sub(inst);
    evb_event_release(ev);
}

const char *evb_dead_cause_name(evb_dead_cause_t c)
{
    static const char *const names[EVB_DEAD__COUNT] = {
        "permanent", "max_attempts", "max_age",  "broken", "disabled",
        "overflow",  "shutdown",     "internal", "crashed"};
    return c >= 0 && c < EVB_DEAD__COUNT ? names[c] : "internal";
}

/* Dead-letter one event. */
static void s_dead_event(evb_instance_t *inst, evb_event_t *ev, int attempts,
                         evb_dead_cause_t cause, const char *reason)
{
    evb_log_limited(&inst->rl_dead, EVBUS_LOG_ERROR, inst->name,
                    "event %s (%s) dead-lettered after %d attempt%s: %s",
                    ev->id, ev->type, attempts, attempts == 1 ? "" : "s",
                    reason);
    evb_deadletter_write(inst->dead, ev, reason, attempts);
    /* counted once written, so the count never runs ahead of the file */
    atomic_fetch_add(&inst->n_dead[cause], 1);
}

static void s_dead(evb_attempt_t *att, evb_dead_cause_t cause,
                   const char *reason)
{
    s_dead_event(att->inst, att->ev, att->number, cause, reason);
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
    int64_t took_us = 0;
    evb_dead_cause_t cause = EVB_DEAD_INTERNAL;

    if (result >= EVBUS_OK && result <= EVBUS_BROKEN &&
        result != EVBUS_PENDING) {
        took_us = evb_mono_us() - att->started_us;
        evb_hist_observe(&inst->h_attempt, took_us);
    }
    switch (result) {
    case EVBUS_OK:
        atomic_fetch_add(&inst->n_delivered, 1);
        evb_hist_observe(&inst->h_delivery,
                         (evb_now_ms() - ev->accepted_ms) * 1000);
        if (evb_log_level() >= EVBUS_LOG_DEBUG)
            evb_log(EVBUS_LOG_DEBUG, inst->name,
                    "delivered event %s (%s), attempt %d, %lld ms", ev->id,
                    ev->type, att->number, (long long)(took_us / 1000));
        s_finish(att);
        return;

    case EVBUS_RETRY: {
        int64_t now = evb_now_ms(), due = 0;
        evb_retry_verdict_t v =
            evb_retry_next(&inst->conf->retry, att->number, ev->accepted_ms,
                           now, att->retry_after, evb_random(), &due);
        if (v == EVB_RETRY_AGAIN) {
            int64_t due_mono = evb_mono_ms() + (due - now);
            /* what the log line says, read while the attempt is still
             * ours: once in the heap, the worker may start it again */
            int number = att->number;
            snprintf(why, sizeof why, "%s", s_reason(att));
            pthread_mutex_lock(&inst->lock);
            int late = inst->stopping && due_mono > inst->deadline_mono;
            if (late && inst->journal) {
                /* the journal keeps it: the next start tries again */
                inst->left_in_journal++;
                pthread_mutex_unlock(&inst->lock);
                evb_event_release(ev);
                s_attempt_free(inst, att);
                s_in_flight_sub(inst);
                return;
            }
            if (!late) {
                att->due_mono = due_mono;
                att->retry_after = 0;
                /* the log line below reads the event: keep it, in case
                 * the retry runs and ends before the line is written */
                evb_event_retain(ev);
                if (s_heap_push(inst, att) == 0) {
                    atomic_fetch_sub(&inst->in_flight, 1);
                    pthread_cond_broadcast(&inst->wake);
                    pthread_mutex_unlock(&inst->lock);
                    atomic_fetch_add(&inst->n_retried, 1);
                    evb_log_limited(
                        &inst->rl_retry, EVBUS_LOG_WARN, inst->name,
                        "attempt %d of event %s (%s) failed after %lld ms: "
                        "%s; next attempt in %lld ms",
                        number, ev->id, ev->type, (long long)(took_us / 1000),
                        why, (long long)(due_mono - evb_mono_ms()));
                    evb_event_release(ev);
                    return;
                }
                evb_event_release(ev);
            }
            pthread_mutex_unlock(&inst->lock);
            cause = late ? EVB_DEAD_SHUTDOWN : EVB_DEAD_INTERNAL;
            snprintf(why, sizeof why,
                     late ? "shutdown: the next attempt was due after the "
                            "shutdown deadline; last error: %s"
                          : "out of memory scheduling a retry; last error: %s",
                     s_reason(att));
        } else if (v == EVB_RETRY_GIVE_UP_ATTEMPTS) {
            cause = EVB_DEAD_MAX_ATTEMPTS;
            snprintf(why, sizeof why,
                     "gave up after %d attempts (max_attempts); last error: "
                     "%s",
                     att->number, s_reason(att));
        } else {
            cause = EVB_DEAD_MAX_AGE;
            snprintf(why, sizeof why,
                     "gave up after %d attempts: the next one would be past "
                     "max_age (%lld ms); last error: %s",
                     att->number, (long long)inst->conf->retry.max_age_ms,
                     s_reason(att));
        }
        s_dead(att, cause, why);
        return;
    }

    case EVBUS_DROP:
        snprintf(why, sizeof why, "permanent failure: %s", s_reason(att));
        s_dead(att, EVB_DEAD_PERMANENT, why);
        return;

    case EVBUS_BROKEN:
        evb_instance_disable(inst, s_reason(att));
        snprintf(why, sizeof why, "instance broken: %s", s_reason(att));
        s_dead(att, EVB_DEAD_BROKEN, why);
        return;

    default:
        evb_log_limited(&inst->rl_retry, EVBUS_LOG_ERROR, inst->name,
                        "plugin %s reported invalid outcome %d for event "
                        "%s; treating it as a retry",
                        inst->plugin->desc.name, result, ev->id);
        snprintf(att->reason, sizeof att->reason, "invalid outcome %d", result);
        evb_attempt_complete(att, EVBUS_RETRY);
        return;
    }
}

/* ------------------------------------------------------------ the cursor */

/* Every event up to the returned seq is done. Lock held. */
static uint64_t s_cursor(evb_instance_t *inst)
{
    s_trim(inst);
    if (inst->head < inst->tail)
        return s_slot(inst, inst->head)->seq - 1;
    if (inst->live) {
        uint64_t seen = atomic_load(&inst->seen_seq);
        uint64_t last = inst->tail ? s_slot(inst, inst->tail - 1)->seq : 0;
        return seen > last ? seen : last;
    }
    if (inst->reader)
        return evb_journal_reader_position(inst->reader) - 1;
    return inst->catchup_from - 1;
}

uint64_t evb_instance_cursor(evb_instance_t *inst)
{
    pthread_mutex_lock(&inst->lock);
    uint64_t c = s_cursor(inst);
    pthread_mutex_unlock(&inst->lock);
    return c;
}

/* Save the cursor through the store (cursors.h). */
static void s_save_cursor(evb_instance_t *inst, uint64_t cursor)
{
    char err[4200];
    if (evb_cursors_save(inst->cursors, inst->name, cursor, err, sizeof err) <
        0) {
        evb_log_limited(&inst->rl_overflow, EVBUS_LOG_ERROR, inst->name,
                        "%s (events may be delivered again after a restart)",
                        err);
        return;
    }
    inst->saved_cursor = cursor;
}

/* ------------------------------------------------------- catching up */

/* Read the journal into the window, as far as it has room. Lock held on
 * entry and exit (dropped while reading). One worker at a time. */
static void s_catch_up(evb_instance_t *inst)
{
    uint64_t room = inst->cap - (inst->tail - inst->head);
    if (room > READ_BATCH)
        room = READ_BATCH;
    if (!inst->reader) {
        inst->reader =
            evb_journal_reader_new(inst->journal, inst->catchup_from);
        if (!inst->reader) {
            evb_log_limited(&inst->rl_overflow, EVBUS_LOG_ERROR, inst->name,
                            "cannot read the journal from seq %llu; will "
                            "try again",
                            (unsigned long long)inst->catchup_from);
            return;
        }
    }
    inst->reading = 1;
    pthread_mutex_unlock(&inst->lock);

    evb_event_t *batch[READ_BATCH];
    uint64_t n = 0, lost_total = 0;
    int more = 1;
    while (n < room) {
        evb_record_t rec;
        uint64_t lost = 0;
        int r = evb_journal_read(inst->reader, UINT64_MAX, &rec, &lost);
        lost_total += lost;
        if (r <= 0) {
            more = 0;
            break;
        }
        if (rec.kind == EVB_REC_REPLAY &&
            !(rec.target_len == strlen(inst->name) &&
              memcmp(rec.target, inst->name, rec.target_len) == 0))
            continue;
        char why[160];
        evb_event_t *ev = evb_event_load(rec.data, rec.data_len, rec.seq,
                                         rec.accepted_ms, why, sizeof why);
        if (!ev) { /* never deliverable: counted lost */
            atomic_fetch_add(&inst->n_lost, 1);
            evb_log_limited(&inst->rl_overflow, EVBUS_LOG_ERROR, inst->name,
                            "journal record %llu does not hold a valid "
                            "event (%s); skipped",
                            (unsigned long long)rec.seq, why);
            continue;
        }
        if (rec.kind == EVB_REC_EVENT &&
            !evb_sub_matches(&inst->conf->sub, ev)) {
            evb_event_release(ev);
            continue;
        }
        batch[n++] = ev;
    }
    if (lost_total) {
        atomic_fetch_add(&inst->n_lost, lost_total);
        evb_log(EVBUS_LOG_WARN, inst->name,
                "%llu journal records were deleted (retention limit or "
                "corruption) before this instance read them",
                (unsigned long long)lost_total);
    }

    pthread_mutex_lock(&inst->lock);
    for (uint64_t i = 0; i < n; i++) {
        s_window_push(inst, batch[i]);
        evb_event_release(batch[i]);
    }
    uint64_t pos = evb_journal_reader_position(inst->reader);
    if (!more && pos > inst->skipped_upto &&
        pos > evb_journal_written_seq(inst->journal)) {
        /* read everything ingest skipped: take pushes again */
        inst->live = 1;
        atomic_store(&inst->seen_seq, pos - 1);
        evb_log(EVBUS_LOG_INFO, inst->name,
                "caught up with the journal at seq %llu",
                (unsigned long long)(pos - 1));
    }
    inst->reading = 0;
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
        s_dead(att, EVB_DEAD_DISABLED, why);
        return;
    }
    if (inst->poison_seq && att->ev->seq == inst->poison_seq) {
        att->number--; /* not attempted this time */
        s_dead(att, EVB_DEAD_CRASHED, inst->poison_why);
        return;
    }
    evb_call_t *c = evb_call_self;
    if (c)
        evb_call_begin(c, "deliver", att->ev->seq, att->ev->id, now_us / 1000);
    int rc = inst->plugin->desc.deliver(inst->userdata, att->ev, att);
    if (c)
        evb_call_end(c);
    if (rc != EVBUS_PENDING)
        evb_attempt_complete(att, rc);
}

/* Run fn(inst) as plugin call `what` in the main thread's slot. */
static int s_main_call(evb_instance_t *inst, const char *what,
                       int (*fn)(evb_instance_t *))
{
    evb_call_t *was = evb_call_self;
    evb_call_self = &inst->calls[EVB_CALL_MAIN];
    evb_call_begin(evb_call_self, what, 0, NULL, evb_mono_ms());
    int rc = fn(inst);
    evb_call_end(evb_call_self);
    evb_call_self = was;
    return rc;
}

/* Call tick() with the lock dropped; one worker at a time. */
static void s_tick(evb_instance_t *inst)
{
    inst->ticking = 1;
    pthread_mutex_unlock(&inst->lock);
    if (evb_call_self)
        evb_call_begin(evb_call_self, "tick", 0, NULL, evb_mono_ms());
    inst->plugin->desc.tick(inst->userdata);
    if (evb_call_self)
        evb_call_end(evb_call_self);
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

/* Save a cursor that moved, at most every CURSOR_SAVE_MS. Lock held. */
static void s_maybe_save(evb_instance_t *inst, int64_t now, int force)
{
    if (!inst->cursors ||
        (!force && now - inst->last_save_mono < CURSOR_SAVE_MS))
        return;
    inst->last_save_mono = now;
    uint64_t c = s_cursor(inst);
    /* never past what is on disk: a crash may cut a journal tail that was
     * written but not synced, and its seqs are then given out again */
    uint64_t durable = evb_journal_durable_seq(inst->journal);
    if (c > durable)
        c = durable;
    if (c == inst->saved_cursor && !force)
        return;
    pthread_mutex_unlock(&inst->lock);
    s_save_cursor(inst, c);
    pthread_mutex_lock(&inst->lock);
}

static void *s_worker(void *arg)
{
    evb_instance_t *inst = arg;
    const evbus_plugin_t *d = &inst->plugin->desc;
    int64_t interval = d->tick ? (int64_t)d->tick_interval_ms : 0;
    int idle_ticked = 0;

    /* the first worker also saves the cursor (start() holds the lock
     * until every thread id is stored) */
    pthread_mutex_lock(&inst->lock);
    int first = pthread_equal(inst->threads[0], pthread_self());
    for (int i = 0; i < inst->n_threads; i++)
        if (pthread_equal(inst->threads[i], pthread_self()))
            evb_call_self = &inst->calls[i];
    evb_watch_thread_begin();
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
                evb_call_begin(evb_call_self, "reopen", 0, NULL, now);
                d->reopen(inst->userdata);
                evb_call_end(evb_call_self);
                pthread_mutex_lock(&inst->lock);
            }
            continue;
        }
        if (first)
            s_maybe_save(inst, now, 0);
        if (inst->stopping == 2 ||
            (inst->stopping == 1 && now >= inst->deadline_mono))
            break; /* past the drain deadline: start nothing more */

        /* start a batch: retries that are due first, then queued events;
         * one lock round trip for up to BATCH attempts */
        evb_attempt_t *batch[BATCH];
        int n = 0, oom = 0;
        int in_flight = atomic_load(&inst->in_flight);
        while (n < BATCH && in_flight + n < inst->max_in_flight) {
            evb_attempt_t *att = NULL;
            if (inst->heap_count && inst->heap[0]->due_mono <= now) {
                att = s_heap_pop(inst);
            } else if (inst->next < inst->tail &&
                       !(inst->ordered && inst->heap_count)) {
                /* ordered: nothing new starts while a retry waits */
                att = s_attempt_new(inst);
                if (!att) {
                    oom = 1;
                    break;
                }
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

        /* behind: read the journal while the window has room */
        if (inst->journal && !inst->live && !inst->stopping && !inst->reading &&
            !s_full(inst)) {
            uint64_t before = inst->tail;
            s_catch_up(inst);
            if (inst->tail != before || inst->live)
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
            if (inst->next == inst->tail && !in_flight && !retries_possible) {
                atomic_fetch_sub(&inst->sleepers, 1);
                break;
            }
        }
        int startable =
            inst->next < inst->tail && !(inst->ordered && inst->heap_count);
        if (room && (startable ||
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
        if (inst->cursors && now + CURSOR_SAVE_MS < until)
            until = now + CURSOR_SAVE_MS;
        if (inst->journal && !inst->live && now + 20 < until)
            until = now + 20; /* behind: look at the journal again soon */
        s_wait_until(inst, until);
        atomic_fetch_sub(&inst->sleepers, 1);
    }
    pthread_mutex_unlock(&inst->lock);
    evb_watch_thread_end();
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
    inst->ordered = conf->ordered >= 0
                        ? conf->ordered
                        : !(plugin->desc.flags & EVBUS_PLUGIN_UNORDERED);
    inst->config_file = config_file;
    for (int i = 0; i < EVB_CALL_SLOTS; i++) {
        inst->calls[i].instance = conf->name;
        inst->calls[i].plugin = plugin->desc.name;
    }
    pthread_mutex_init(&inst->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inst->wake, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&inst->disabled, 0);
    atomic_init(&inst->in_flight, 0);
    atomic_init(&inst->sleepers, 0);
    atomic_init(&inst->att_returned, NULL);
    atomic_init(&inst->seen_seq, 0);
    evb_ratelimit_t rl = EVB_RATELIMIT_INIT(10000, 100);
    inst->rl_retry = rl;
    inst->rl_dead = rl;
    inst->rl_overflow = rl;
    inst->rl_plugin = rl;

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
    int refill = inst->max_in_flight / 8;
    refill = refill < 1 ? 1 : refill > BATCH ? BATCH : refill;
    inst->wake_room_at = inst->max_in_flight - refill;

    inst->cap = (uint64_t)(conf->queue_size > 0 ? conf->queue_size : 1);
    inst->slots = calloc(inst->cap, sizeof *inst->slots);
    inst->dead = evb_deadletter_new(dead_letter_dir, conf->name, d->name);
    if (!ok || !inst->slots || !inst->dead)
        goto fail;

    inst->live = 1;
    return inst;
fail:
    evb_instance_destroy(&inst);
    return NULL;
}

int evb_instance_attach(evb_instance_t *inst, evb_journal_t *journal,
                        evb_cursors_t *cursors)
{
    inst->journal = journal;
    inst->cursors = cursors;
    uint64_t cursor = 0;
    evb_cursor_origin_t origin = evb_cursors_load(
        cursors, inst->name, inst->conf->start_oldest, &cursor);
    inst->saved_cursor = cursor;
    if (origin == EVB_CURSOR_RECOVERED)
        atomic_fetch_add(&inst->n_cursor_recovered, 1);
    if (cursor >= evb_journal_written_seq(journal)) {
        /* nothing to catch up on: live from the end */
        inst->live = 1;
        atomic_store(&inst->seen_seq, cursor);
    } else {
        /* resume: everything after the cursor comes from the journal */
        inst->live = 0;
        inst->catchup_from = cursor + 1;
    }
    return 0;
}

static int s_validate(evb_instance_t *inst)
{
    return inst->plugin->desc.validate(inst, evb_host_table());
}

int evb_instance_validate(evb_instance_t *inst)
{
    if (!inst->plugin->desc.validate)
        return 0;
    return s_main_call(inst, "validate", s_validate) == 0 ? 0 : -1;
}

static int s_init(evb_instance_t *inst)
{
    return inst->plugin->desc.init(inst, evb_host_table(), &inst->userdata);
}

static int s_shutdown(evb_instance_t *inst)
{
    inst->plugin->desc.shutdown(inst->userdata);
    return 0;
}

void evb_instance_poison(evb_instance_t *inst, uint64_t seq, const char *why)
{
    inst->poison_seq = seq;
    snprintf(inst->poison_why, sizeof inst->poison_why, "%s", why);
}

void evb_instance_save_cursor_now(evb_instance_t *inst)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    if (!inst->cursors || pthread_mutex_timedlock(&inst->lock, &ts) != 0)
        return;
    s_maybe_save(inst, evb_mono_ms(), 1);
    pthread_mutex_unlock(&inst->lock);
}

int evb_instance_start(evb_instance_t *inst)
{
    const evbus_plugin_t *d = &inst->plugin->desc;
    if (s_main_call(inst, "init", s_init) != 0) {
        evb_log(EVBUS_LOG_ERROR, inst->name,
                "plugin %s failed to initialise this instance", d->name);
        return -1;
    }
    inst->initialized = 1;
    inst->last_tick_mono = evb_mono_ms();
    inst->last_save_mono = inst->last_tick_mono;
    pthread_mutex_lock(&inst->lock); /* threads[0] is read by the workers */
    for (int i = 0; i < inst->workers; i++) {
        int err = pthread_create(&inst->threads[i], NULL, s_worker, inst);
        if (err) {
            pthread_mutex_unlock(&inst->lock);
            evb_log(EVBUS_LOG_ERROR, inst->name,
                    "cannot start worker thread: %s", strerror(err));
            return -1;
        }
        inst->n_threads++;
    }
    pthread_mutex_unlock(&inst->lock);
    atomic_store(&inst->state, EVB_INST_RUNNING);
    if (inst->journal && !inst->live)
        evb_log(EVBUS_LOG_INFO, inst->name,
                "resuming from the journal after seq %llu (%llu written)",
                (unsigned long long)inst->saved_cursor,
                (unsigned long long)evb_journal_written_seq(inst->journal));
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
    evb_instance_flush(inst);
    evb_instance_kick(inst, 1);
}

void evb_instance_kick(evb_instance_t *inst, int force)
{
    pthread_mutex_lock(&inst->lock);
    if (inst->wake_pending &&
        (force || inst->tail - inst->next >= KICK_BATCH || !inst->live)) {
        inst->wake_pending = 0;
        pthread_cond_signal(&inst->wake);
    }
    pthread_mutex_unlock(&inst->lock);
}

void evb_instance_push(evb_instance_t *inst, evb_event_t *ev)
{
    if (inst->n_stage == EVB_STAGE)
        evb_instance_flush(inst);
    inst->stage[inst->n_stage++] = evb_event_retain(ev);
    inst->stage_seen = ev->seq;
}

/* An event the instance cannot take: dead-lettered (no lock held). */
static void s_refuse(evb_instance_t *inst, evb_event_t *ev,
                     evb_dead_cause_t cause, const char *why)
{
    atomic_fetch_add_explicit(&inst->n_enqueued, 1, memory_order_relaxed);
    s_dead_event(inst, ev, 0, cause, why);
}

/* Publish how far ingest has routed: never backwards (stage_seen is 0
 * until ingest routes something, and seen_seq starts at the journal's end
 * or where a catch-up ended). Lock held (workers store seen_seq too). */
static void s_seen(evb_instance_t *inst)
{
    if (inst->stage_seen >
        atomic_load_explicit(&inst->seen_seq, memory_order_relaxed))
        atomic_store_explicit(&inst->seen_seq, inst->stage_seen,
                              memory_order_relaxed);
}

void evb_instance_flush(evb_instance_t *inst)
{
    size_t n = inst->n_stage;
    evb_event_t **st = inst->stage;
    inst->n_stage = 0;
    if (atomic_load_explicit(&inst->disabled, memory_order_acquire)) {
        char why[600];
        snprintf(why, sizeof why, "instance disabled: %s",
                 inst->disabled_reason);
        for (size_t i = 0; i < n; i++) {
            s_refuse(inst, st[i], EVB_DEAD_DISABLED, why);
            evb_event_release(st[i]);
        }
        pthread_mutex_lock(&inst->lock);
        s_seen(inst);
        pthread_mutex_unlock(&inst->lock);
        return;
    }
    size_t taken = 0;
    uint64_t fell_behind_at = 0;
    pthread_mutex_lock(&inst->lock);
    if (inst->journal && !inst->live) {
        /* catching up: the worker reads these from the journal */
        if (n) {
            inst->skipped_upto = st[n - 1]->seq;
            inst->wake_pending = 1;
        }
        taken = n;
    } else {
        for (; taken < n && !s_full(inst); taken++)
            s_window_push(inst, st[taken]);
        if (taken < n && inst->journal) {
            /* fall behind onto the journal, starting with the first event
             * that did not fit: nothing before it is missing from the
             * window */
            fell_behind_at = st[taken]->seq;
            inst->live = 0;
            inst->skipped_upto = st[n - 1]->seq;
            inst->catchup_from = fell_behind_at;
            evb_journal_reader_destroy(&inst->reader);
            inst->wake_pending = 1;
            taken = n;
        }
        if (inst->live)
            s_seen(inst);
    }
    pthread_mutex_unlock(&inst->lock);
    if (fell_behind_at) {
        atomic_fetch_add(&inst->n_overflow, 1);
        evb_log_limited(&inst->rl_overflow, EVBUS_LOG_INFO, inst->name,
                        "%llu events in memory (queue_size): reading the "
                        "journal from seq %llu until it catches up",
                        (unsigned long long)inst->cap,
                        (unsigned long long)fell_behind_at);
    }
    if (taken < n) { /* no journal to fall back on: dead-lettered */
        char why[128];
        snprintf(why, sizeof why, "queue full (queue_size %d)",
                 inst->conf->queue_size);
        atomic_fetch_add(&inst->n_overflow, n - taken);
        evb_log_limited(&inst->rl_overflow, EVBUS_LOG_WARN, inst->name,
                        "queue full (%d events held): %zu events go to the "
                        "dead-letter file, the first %s",
                        inst->conf->queue_size, n - taken, st[taken]->id);
        for (size_t i = taken; i < n; i++)
            s_refuse(inst, st[i], EVB_DEAD_OVERFLOW, why);
    }
    for (size_t i = 0; i < n; i++)
        evb_event_release(st[i]);
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
    if (inst->n_stage) /* whatever ingest staged last */
        evb_instance_flush(inst);
    if (atomic_load(&inst->state) == EVB_INST_RUNNING)
        atomic_store(&inst->state, EVB_INST_STOPPING);
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
        s_main_call(inst, "shutdown", s_shutdown);
    inst->initialized = 0;
    atomic_store(&inst->state, EVB_INST_STOPPED);

    /* what is left: queued, or waiting for a retry */
    size_t left = 0;
    for (;;) {
        pthread_mutex_lock(&inst->lock);
        evb_attempt_t *att = NULL;
        if (inst->next < inst->tail) {
            att = s_attempt_new(inst);
        } else if (inst->heap_count) {
            att = s_heap_pop(inst);
        }
        if (att)
            atomic_fetch_add(&inst->in_flight, 1); /* s_finish undoes it */
        pthread_mutex_unlock(&inst->lock);
        if (!att)
            break;
        left++;
        if (inst->journal) {
            /* not done: its slot holds the cursor back, so the next start
             * delivers it again */
            evb_event_release(att->ev);
            s_attempt_free(inst, att);
            atomic_fetch_sub(&inst->in_flight, 1);
            continue;
        }
        char why[1200];
        snprintf(why, sizeof why,
                 "shutdown: not delivered before the shutdown deadline%s%s",
                 att->reason[0] ? "; last error: " : "",
                 att->reason[0] ? att->reason : "");
        s_dead(att, EVB_DEAD_SHUTDOWN, why);
    }
    pthread_mutex_lock(&inst->lock);
    left += inst->left_in_journal;
    pthread_mutex_unlock(&inst->lock);
    if (left && inst->journal)
        evb_log(EVBUS_LOG_INFO, inst->name,
                "shutdown: %zu undelivered event%s stay in the journal for "
                "the next start",
                left, left == 1 ? "" : "s");
    else if (left)
        evb_log(EVBUS_LOG_WARN, inst->name,
                "shutdown: %zu undelivered event%s written to %s", left,
                left == 1 ? "" : "s", evb_deadletter_path(inst->dead));
    int pending = atomic_load(&inst->in_flight);
    if (pending)
        evb_log(EVBUS_LOG_ERROR, inst->name,
                "plugin %s still held %d attempt%s after shutdown(); their "
                "outcome is unknown",
                inst->plugin->desc.name, pending, pending == 1 ? "" : "s");
    if (inst->cursors) {
        pthread_mutex_lock(&inst->lock);
        s_maybe_save(inst, evb_mono_ms(), 1);
        pthread_mutex_unlock(&inst->lock);
    }
}

void evb_instance_destroy(evb_instance_t **self)
{
    if (!self || !*self)
        return;
    evb_instance_t *inst = *self;
    if (inst->n_threads || inst->initialized)
        evb_instance_stop(inst, evb_mono_ms());
    for (size_t i = 0; i < inst->n_stage; i++) /* never started */
        evb_event_release(inst->stage[i]);
    inst->n_stage = 0;
    for (uint64_t n = inst->next; inst->slots && n < inst->tail; n++)
        evb_event_release(s_slot(inst, n)->ev);
    while (inst->heap_count) {
        evb_attempt_t *att = s_heap_pop(inst);
        evb_event_release(att->ev);
        free(att);
    }
    for (int k = 0; k < 2; k++) {
        evb_attempt_t *att =
            k ? atomic_exchange(&inst->att_returned, NULL) : inst->att_spare;
        while (att) {
            evb_attempt_t *next = att->free_next;
            free(att);
            att = next;
        }
    }
    inst->att_spare = NULL;
    evb_journal_reader_destroy(&inst->reader);
    free(inst->slots);
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
    out->dead_lettered = 0;
    for (int c = 0; c < EVB_DEAD__COUNT; c++)
        out->dead_lettered += out->dead_by[c] = atomic_load(&inst->n_dead[c]);
    out->overflow = atomic_load(&inst->n_overflow);
    out->lost = atomic_load(&inst->n_lost);
    out->cursor_recovered = atomic_load(&inst->n_cursor_recovered);
    pthread_mutex_lock(&inst->lock);
    out->queued = inst->tail - inst->next;
    out->retrying = inst->heap_count;
    out->in_flight = (uint64_t)atomic_load(&inst->in_flight);
    out->cursor = s_cursor(inst);
    out->live = inst->live;
    s_trim(inst);
    out->oldest_accepted_ms =
        inst->head < inst->tail ? s_slot(inst, inst->head)->accepted_ms : 0;
    pthread_mutex_unlock(&inst->lock);
    out->state = atomic_load(&inst->state);
    out->disabled = atomic_load(&inst->disabled);
    out->slow_calls = atomic_load(&inst->n_slow_calls);
    out->stuck = 0;
    int64_t now = evb_mono_ms();
    for (int i = 0; i < EVB_CALL_SLOTS; i++)
        out->stuck += (uint64_t)evb_call_stuck(&inst->calls[i], now, NULL);
}
