#include "figures.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "instance.h"
#include "journal.h"
#include "stats.h"

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static evb_router_t *s_router;
static const evb_config_t *s_cfg;
static atomic_int s_ready;
static atomic_int_fast64_t s_beat_ms;

void evb_figures_attach(evb_router_t *r, const evb_config_t *cfg)
{
    pthread_mutex_lock(&s_lock);
    s_router = r;
    s_cfg = cfg;
    pthread_mutex_unlock(&s_lock);
    evb_figures_beat();
}

void evb_figures_detach(void)
{
    pthread_mutex_lock(&s_lock);
    s_router = NULL;
    s_cfg = NULL;
    atomic_store(&s_ready, 0);
    pthread_mutex_unlock(&s_lock);
}

void evb_figures_set_ready(int ready)
{
    atomic_store(&s_ready, ready);
}

void evb_figures_beat(void)
{
    atomic_store_explicit(&s_beat_ms, evb_now_ms(), memory_order_relaxed);
}

/* ------------------------------------------------------------ writing */

typedef struct {
    evbus_figure_fn fn;
    void *ctx;
    size_t n;
} s_out_t;

static void s_put(s_out_t *o, const char *name, const char *help, int kind,
                  const char *const *labels, double v)
{
    o->fn(o->ctx, name, help, kind, labels, v, 0, NULL, NULL);
    o->n++;
}

static void s_hist(s_out_t *o, const char *name, const char *help,
                   const char *const *labels, evb_hist_t *h)
{
    uint64_t counts[EVB_HIST_BUCKETS], total = 0;
    for (int i = 0; i < EVB_HIST_BUCKETS; i++)
        counts[i] = total += evb_read(&h->counts[i]);
    double sum = (double)evb_read(&h->sum_us) / 1e6;
    o->fn(o->ctx, name, help, EVBUS_FIGURE_HISTOGRAM, labels, sum,
          EVB_HIST_BUCKETS, evb_hist_bounds, counts);
    o->n++;
}

/* ------------------------------------------------------------ ingress */

static int s_ingress_on(evb_ingress_t in)
{
    const char *ep =
        in == EVB_INGRESS_PUB ? s_cfg->ingress_pub : s_cfg->ingress_ack;
    return ep && *ep;
}

/* A type gets series on an ingress once it was seen there; the two
 * catch-all types always have them (so alerts on them have a baseline). */
static int s_type_shown(evb_type_stats_t *t, size_t i, evb_ingress_t in)
{
    return i < 2 || evb_read(&t->received[in]) > 0;
}

static void s_ingress_counter(s_out_t *o, const char *name, const char *help,
                              size_t offset)
{
    evb_type_stats_t *t;
    size_t n = evb_stats_types(&t);
    for (int in = 0; in < EVB_INGRESS__COUNT; in++) {
        if (!s_ingress_on((evb_ingress_t)in))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (!s_type_shown(&t[i], i, (evb_ingress_t)in))
                continue;
            atomic_uint_fast64_t *c =
                (atomic_uint_fast64_t *)((char *)&t[i] + offset) + in;
            const char *labels[] = {"ingress", evb_ingress_name(in), "type",
                                    t[i].name, NULL};
            s_put(o, name, help, EVBUS_FIGURE_COUNTER, labels,
                  (double)evb_read(c));
        }
    }
}

static void s_ingress(s_out_t *o)
{
    s_ingress_counter(o, "evbus_events_received_total",
                      "Messages received on an ingress socket, by event "
                      "type (_invalid: unreadable, other: over "
                      "ingress.max_types)",
                      offsetof(evb_type_stats_t, received));
    s_ingress_counter(o, "evbus_events_accepted_total",
                      "Events accepted (journaled and routed), by ingress "
                      "and type",
                      offsetof(evb_type_stats_t, accepted));
    s_ingress_counter(o, "evbus_events_duplicate_total",
                      "Acknowledged events whose id was already accepted, "
                      "answered with the original acceptance",
                      offsetof(evb_type_stats_t, duplicates));
    evb_type_stats_t *t;
    size_t n = evb_stats_types(&t);
    for (int in = 0; in < EVB_INGRESS__COUNT; in++) {
        if (!s_ingress_on((evb_ingress_t)in))
            continue;
        for (size_t i = 0; i < n; i++)
            for (int r = 1; r < EVB_REJECT__COUNT; r++) {
                uint64_t v = evb_read(&t[i].rejected[in][r]);
                if (!v)
                    continue; /* a series appears with its first */
                const char *labels[] = {
                    "ingress", evb_ingress_name(in),
                    "type",    t[i].name,
                    "reason",  evb_reject_code((evb_reject_t)r),
                    NULL};
                s_put(o, "evbus_events_rejected_total",
                      "Messages refused, by ingress, event type and reason",
                      EVBUS_FIGURE_COUNTER, labels, (double)v);
            }
    }
    const char *none[] = {NULL};
    s_put(o, "evbus_egress_published_total",
          "Events re-published on the egress socket", EVBUS_FIGURE_COUNTER,
          none, (double)evb_read(&evb_stats.egress_published));
    s_put(o, "evbus_egress_dropped_total",
          "Events not re-published because an egress subscriber was at its "
          "high-water mark",
          EVBUS_FIGURE_COUNTER, none,
          (double)evb_read(&evb_stats.egress_dropped));
    s_put(o, "evbus_egress_subscriptions",
          "Distinct subscription prefixes egress subscribers hold now",
          EVBUS_FIGURE_GAUGE, none,
          (double)evb_read(&evb_stats.egress_prefixes));
    s_put(o, "evbus_ack_replies_lost_total",
          "Acknowledgements that could not be sent (publisher gone or at "
          "its high-water mark)",
          EVBUS_FIGURE_COUNTER, none,
          (double)evb_read(&evb_stats.ack_replies_lost));
}

/* ---------------------------------------------------------- instances */

typedef struct {
    evb_instance_t *inst;
    evb_instance_stats_t st;
} s_inst_t;

static void s_instances(s_out_t *o, s_inst_t *all, size_t n)
{
    int64_t now = evb_now_ms();
    uint64_t written =
        s_router->journal ? evb_journal_written_seq(s_router->journal) : 0;
    for (s_inst_t *x = all; x < all + n; x++) {
        const char *version = x->inst->plugin->desc.version;
        const char *labels[] = {"instance", x->inst->name,
                                "plugin",   x->inst->plugin->desc.name,
                                "version",  version ? version : "",
                                NULL};
        s_put(o, "evbus_instance_info",
              "A configured plugin instance (always 1), with its plugin",
              EVBUS_FIGURE_GAUGE, labels, 1);
    }
/* one series per instance, labelled with its name */
#define ONE(NAME, HELP, KIND, EXPR)                                            \
    for (s_inst_t *x = all; x < all + n; x++) {                                \
        const char *labels[] = {"instance", x->inst->name, NULL};              \
        s_put(o, NAME, HELP, KIND, labels, (double)(EXPR));                    \
    }
    ONE("evbus_instance_up",
        "1 when the instance runs (started, not disabled, not stopping)",
        EVBUS_FIGURE_GAUGE, x->st.state == EVB_INST_RUNNING && !x->st.disabled);
    ONE("evbus_instance_disabled",
        "1 when the instance was disabled (its plugin reported it broken)",
        EVBUS_FIGURE_GAUGE, x->st.disabled);
    ONE("evbus_instance_delivered_total", "Events delivered (outcome OK)",
        EVBUS_FIGURE_COUNTER, x->st.delivered);
    ONE("evbus_instance_retried_total",
        "Attempts that failed and were scheduled again", EVBUS_FIGURE_COUNTER,
        x->st.retried);
    for (s_inst_t *x = all; x < all + n; x++) {
        for (int c = 0; c < EVB_DEAD__COUNT; c++) {
            const char *labels[] = {"instance", x->inst->name, "reason",
                                    evb_dead_cause_name((evb_dead_cause_t)c),
                                    NULL};
            s_put(o, "evbus_instance_dead_lettered_total",
                  "Events given up on and written to the dead-letter file, "
                  "by cause (overflow: queue full without a journal)",
                  EVBUS_FIGURE_COUNTER, labels, (double)x->st.dead_by[c]);
        }
    }
    ONE("evbus_instance_fell_behind_total",
        "Times the instance's queue filled and it went on reading the "
        "journal instead (nothing is dropped)",
        EVBUS_FIGURE_COUNTER, x->inst->journal ? x->st.overflow : 0);
    ONE("evbus_instance_lost_total",
        "Journal records deleted (retention limits, corruption) before the "
        "instance read them",
        EVBUS_FIGURE_COUNTER, x->st.lost);
    ONE("evbus_instance_cursor_recoveries_total",
        "Times the instance's saved cursor was unusable at start (damaged, "
        "missing, impossible) and it resumed from a safe point before it",
        EVBUS_FIGURE_COUNTER, x->st.cursor_recovered);
    ONE("evbus_instance_slow_calls_total",
        "Plugin calls (deliver, tick, ...) that ran longer than slow_call",
        EVBUS_FIGURE_COUNTER, x->st.slow_calls);
    ONE("evbus_instance_stuck_calls",
        "Plugin calls running longer than slow_call right now",
        EVBUS_FIGURE_GAUGE, x->st.stuck);
    for (s_inst_t *x = all; x < all + n; x++) {
        static const char *const states[] = {"queued", "retrying", "in_flight"};
        uint64_t v[] = {x->st.queued, x->st.retrying, x->st.in_flight};
        for (int s = 0; s < 3; s++) {
            const char *labels[] = {"instance", x->inst->name, "state",
                                    states[s], NULL};
            s_put(o, "evbus_instance_queue_depth",
                  "Events the instance holds in memory: waiting for a first "
                  "attempt, for a retry, or being delivered",
                  EVBUS_FIGURE_GAUGE, labels, (double)v[s]);
        }
    }
    ONE("evbus_instance_journal_lag_records",
        "Journal records written after the instance's cursor (not all of "
        "them match its topics)",
        EVBUS_FIGURE_GAUGE,
        written > x->st.cursor && x->inst->journal ? written - x->st.cursor
                                                   : 0);
    ONE("evbus_instance_catching_up",
        "1 while the instance reads the journal to catch up, 0 when live",
        EVBUS_FIGURE_GAUGE, !x->st.live);
    ONE("evbus_instance_oldest_event_age_seconds",
        "Age of the oldest event the instance holds and has not finished "
        "(0 when none)",
        EVBUS_FIGURE_GAUGE,
        x->st.oldest_accepted_ms && now > x->st.oldest_accepted_ms
            ? (double)(now - x->st.oldest_accepted_ms) / 1000.0
            : 0.0);
#undef ONE
    for (s_inst_t *x = all; x < all + n; x++) {
        const char *labels[] = {"instance", x->inst->name, NULL};
        s_hist(o, "evbus_instance_delivery_duration_seconds",
               "Time one delivery attempt took, deliver() to its outcome",
               labels, &x->inst->h_attempt);
    }
    for (s_inst_t *x = all; x < all + n; x++) {
        const char *labels[] = {"instance", x->inst->name, NULL};
        s_hist(o, "evbus_instance_publish_to_delivery_seconds",
               "Time from the broker accepting an event to the instance "
               "delivering it, retries included",
               labels, &x->inst->h_delivery);
    }
}

/* ------------------------------------------------------------- broker */

size_t evb_figures_visit(evbus_figure_fn fn, void *ctx)
{
    s_out_t o = {fn, ctx, 0};
    if (!fn)
        return 0;
    pthread_mutex_lock(&s_lock);
    const char *build[] = {"version", EVBUS_VERSION, "abi", NULL, NULL};
    char abi[16];
    snprintf(abi, sizeof abi, "%d.%d", EVBUS_ABI_MAJOR, EVBUS_ABI_MINOR);
    build[3] = abi;
    s_put(&o, "evbus_build_info",
          "The broker's version and plugin ABI "
          "(always 1)",
          EVBUS_FIGURE_GAUGE, build, 1);
    if (!s_router) { /* not running (or a unit test) */
        pthread_mutex_unlock(&s_lock);
        return o.n;
    }
    const char *none[] = {NULL};
    s_put(&o, "evbus_ready",
          "1 when ingress is bound and every instance has started; 0 while "
          "starting or draining",
          EVBUS_FIGURE_GAUGE, none, atomic_load(&s_ready));
    s_put(&o, "evbus_ingest_heartbeat_timestamp_seconds",
          "When the ingest loop last went round (it does at least every "
          "250 ms)",
          EVBUS_FIGURE_GAUGE, none, (double)atomic_load(&s_beat_ms) / 1000.0);
    if (s_router->journal) {
        s_put(&o, "evbus_journal_healthy",
              "1 when the journal accepts writes, 0 after a write or sync "
              "failed (until it is repaired)",
              EVBUS_FIGURE_GAUGE, none,
              evb_journal_healthy(s_router->journal, NULL, 0));
        s_put(&o, "evbus_journal_size_bytes",
              "Bytes the journal's segments take on disk", EVBUS_FIGURE_GAUGE,
              none, (double)evb_journal_size(s_router->journal));
        s_put(&o, "evbus_journal_lost_records_total",
              "Journal records found damaged beyond use when the broker "
              "started (every intact record around them is kept)",
              EVBUS_FIGURE_COUNTER, none,
              (double)evb_read(&evb_stats.journal_lost));
        size_t orphans = 0;
        char name[80];
        uint64_t c;
        while (s_router->cursors &&
               evb_cursors_orphan(s_router->cursors, orphans, name, sizeof name,
                                  &c) == 0)
            orphans++;
        s_put(&o, "evbus_journal_orphaned_cursors",
              "Cursors of instances no longer configured: retention keeps "
              "the records they have not read (evbusctl drop-cursor)",
              EVBUS_FIGURE_GAUGE, none, (double)orphans);
        s_put(&o, "evbus_journal_written_seq",
              "Sequence number of the last record written to the journal",
              EVBUS_FIGURE_GAUGE, none,
              (double)evb_journal_written_seq(s_router->journal));
    }
    s_ingress(&o);
    size_t n = s_router->n_instances;
    s_inst_t *all = calloc(n ? n : 1, sizeof *all);
    if (all) {
        for (size_t i = 0; i < n; i++) {
            all[i].inst = s_router->instances[i];
            evb_instance_get_stats(all[i].inst, &all[i].st);
        }
        s_instances(&o, all, n);
        free(all);
    }
    pthread_mutex_unlock(&s_lock);
    return o.n;
}
