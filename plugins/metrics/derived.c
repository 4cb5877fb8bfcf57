#include "derived.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------- bounded label values */

/* Distinct values of one label, at most `max`, each with a record of
 * `rec_size` bytes; values beyond the limit share the `other` record. */
typedef struct s_table {
    const char *label;
    char **names;
    char *recs; /* n records of rec_size bytes, in first-seen order */
    size_t n, alloc, max, rec_size;
    uint32_t *index; /* value index + 1, 0 = empty; open addressing */
    size_t index_size;
    char *other; /* the "other" record */
    int other_used;
    uint64_t folded; /* observations whose value was folded into other */
} s_table_t;

static uint32_t s_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int s_table_init(s_table_t *t, const char *label, size_t max,
                        size_t rec_size)
{
    memset(t, 0, sizeof *t);
    t->label = label;
    t->max = max;
    t->rec_size = rec_size;
    t->index_size = 16;
    while (t->index_size < 2 * (max + 1))
        t->index_size *= 2;
    t->index = calloc(t->index_size, sizeof *t->index);
    t->other = calloc(1, rec_size);
    return t->index && t->other ? 0 : -1;
}

static void s_table_free(s_table_t *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->names[i]);
    free(t->names);
    free(t->recs);
    free(t->index);
    free(t->other);
}

/* The record for value v, added if there is room; else (or out of
 * memory) the "other" record. */
static void *s_record(s_table_t *t, const char *v)
{
    if (strcmp(v, DM_OTHER) == 0) { /* a value that is literally "other" */
        t->other_used = 1;
        return t->other;
    }
    size_t mask = t->index_size - 1;
    for (size_t i = s_hash(v) & mask;; i = (i + 1) & mask) {
        uint32_t e = t->index[i];
        if (e && strcmp(t->names[e - 1], v) == 0)
            return t->recs + (e - 1) * t->rec_size;
        if (e)
            continue;
        if (t->n >= t->max)
            break;
        if (t->n == t->alloc) {
            size_t alloc = t->alloc ? t->alloc * 2 : 16;
            if (alloc > t->max)
                alloc = t->max;
            char **names = realloc(t->names, alloc * sizeof *names);
            if (!names)
                break;
            t->names = names;
            char *recs = realloc(t->recs, alloc * t->rec_size);
            if (!recs)
                break;
            t->recs = recs;
            t->alloc = alloc;
        }
        char *name = strdup(v);
        if (!name)
            break;
        t->names[t->n] = name;
        memset(t->recs + t->n * t->rec_size, 0, t->rec_size);
        t->index[i] = (uint32_t)++t->n;
        return t->recs + (t->n - 1) * t->rec_size;
    }
    t->folded++;
    t->other_used = 1;
    return t->other;
}

/* ------------------------------------------------------------ records */

#define MAX_BOUNDS 64

typedef struct s_hist {
    uint64_t counts[MAX_BOUNDS + 1]; /* not cumulative; last = +Inf */
    double sum;
} s_hist_t;

typedef struct s_project {
    /* counters as Prometheus holds them: one type for all four */
    double completed, failed, stuck, cost;
    s_hist_t duration[2]; /* completed, failed */
} s_project_t;

typedef struct s_type {
    int64_t last_ms;
} s_type_t;

struct dm {
    s_table_t projects, types;
    double bounds[MAX_BOUNDS + 1];
    size_t n_bounds; /* with +Inf */
};

dm_t *dm_new(size_t max_values, const double *bounds, size_t n_bounds)
{
    if (n_bounds > MAX_BOUNDS || max_values == 0)
        return NULL;
    dm_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (s_table_init(&m->projects, "project", max_values, sizeof(s_project_t)) <
            0 ||
        s_table_init(&m->types, "type", max_values, sizeof(s_type_t)) < 0) {
        dm_destroy(&m);
        return NULL;
    }
    memcpy(m->bounds, bounds, n_bounds * sizeof *bounds);
    m->bounds[n_bounds] = INFINITY;
    m->n_bounds = n_bounds + 1;
    return m;
}

void dm_destroy(dm_t **self)
{
    if (!self || !*self)
        return;
    s_table_free(&(*self)->projects);
    s_table_free(&(*self)->types);
    free(*self);
    *self = NULL;
}

static void s_observe(const dm_t *m, s_hist_t *h, double v)
{
    size_t i = 0;
    while (i + 1 < m->n_bounds && v > m->bounds[i])
        i++;
    h->counts[i]++;
    h->sum += v;
}

void dm_observe(dm_t *m, const dm_event_t *ev)
{
    if (!ev->type)
        return;
    s_type_t *t = s_record(&m->types, ev->type);
    if (ev->accepted_ms > t->last_ms)
        t->last_ms = ev->accepted_ms;

    int completed = strcmp(ev->type, "task.completed") == 0;
    int failed = strcmp(ev->type, "task.failed") == 0;
    int stuck = strcmp(ev->type, "agent.stuck") == 0;
    if (!completed && !failed && !stuck)
        return;
    s_project_t *p = s_record(&m->projects, ev->project ? ev->project : "");
    if (stuck) {
        p->stuck++;
        return;
    }
    if (completed)
        p->completed++;
    else
        p->failed++;
    /* a negative or non-finite figure would break a counter's or a
     * histogram's rules: such values are ignored */
    if (ev->has_duration && isfinite(ev->duration_ms) && ev->duration_ms >= 0)
        s_observe(m, &p->duration[failed], ev->duration_ms / 1000.0);
    if (ev->has_cost && isfinite(ev->cost) && ev->cost >= 0)
        p->cost += ev->cost;
}

static size_t s_values(const s_table_t *t)
{
    return t->n + (t->other_used ? 1 : 0);
}

size_t dm_values(const dm_t *m, const char *label)
{
    return s_values(strcmp(label, "project") == 0 ? &m->projects : &m->types);
}

/* ------------------------------------------------------------- output */

/* The i-th value of a table and its record: the values in first-seen
 * order, then "other" if it was used. 0 past the end. */
static int s_at(const s_table_t *t, size_t i, const char **name,
                const void **rec)
{
    if (i < t->n) {
        *name = t->names[i];
        *rec = t->recs + i * t->rec_size;
        return 1;
    }
    if (i == t->n && t->other_used) {
        *name = DM_OTHER;
        *rec = t->other;
        return 1;
    }
    return 0;
}

static void s_project_counter(const dm_t *m, pt_t *w, const char *name,
                              const char *help, size_t offset)
{
    pt_family(w, name, help, PT_COUNTER);
    const char *value;
    const void *rec;
    for (size_t i = 0; s_at(&m->projects, i, &value, &rec); i++) {
        const char *labels[] = {"project", value, NULL};
        double v = *(const double *)((const char *)rec + offset);
        pt_sample(w, name, labels, v);
    }
}

void dm_render(const dm_t *m, pt_t *w)
{
    s_project_counter(m, w, "evbus_tasks_completed_total",
                      "task.completed events, by project",
                      offsetof(s_project_t, completed));
    s_project_counter(m, w, "evbus_tasks_failed_total",
                      "task.failed events, by project",
                      offsetof(s_project_t, failed));
    pt_family(w, "evbus_task_duration_seconds",
              "Task durations from data.duration_ms of task.completed and "
              "task.failed events, by project and outcome",
              PT_HISTOGRAM);
    const char *value;
    const void *rec;
    for (size_t k = 0; s_at(&m->projects, k, &value, &rec); k++) {
        const s_project_t *p = rec;
        for (int f = 0; f < 2; f++) {
            uint64_t cum[MAX_BOUNDS + 1], total = 0;
            for (size_t i = 0; i < m->n_bounds; i++)
                cum[i] = total += p->duration[f].counts[i];
            const char *labels[] = {"project", value, "outcome",
                                    f ? "failed" : "completed", NULL};
            pt_histogram(w, "evbus_task_duration_seconds", labels, m->n_bounds,
                         m->bounds, cum, p->duration[f].sum);
        }
    }
    s_project_counter(m, w, "evbus_task_cost_total",
                      "Sum of data.cost of task.completed and task.failed "
                      "events, by project (in the publishers' unit)",
                      offsetof(s_project_t, cost));
    s_project_counter(m, w, "evbus_agents_stuck_total",
                      "agent.stuck events, by project",
                      offsetof(s_project_t, stuck));
    pt_family(w, "evbus_last_event_timestamp_seconds",
              "When the broker accepted the last event of each type this "
              "instance received",
              PT_GAUGE);
    for (size_t k = 0; s_at(&m->types, k, &value, &rec); k++) {
        const char *labels[] = {"type", value, NULL};
        pt_sample(w, "evbus_last_event_timestamp_seconds", labels,
                  (double)((const s_type_t *)rec)->last_ms / 1000.0);
    }
    const s_table_t *tables[] = {&m->projects, &m->types};
    pt_family(w, "evbus_metrics_label_values",
              "Distinct values kept for a label drawn from events (at most "
              "max_label_values, plus \"other\")",
              PT_GAUGE);
    for (int i = 0; i < 2; i++) {
        const char *labels[] = {"label", tables[i]->label, NULL};
        pt_sample(w, "evbus_metrics_label_values", labels,
                  (double)s_values(tables[i]));
    }
    pt_family(w, "evbus_metrics_label_folded_total",
              "Events whose label value was counted as \"other\" because "
              "max_label_values was reached",
              PT_COUNTER);
    for (int i = 0; i < 2; i++) {
        const char *labels[] = {"label", tables[i]->label, NULL};
        pt_sample(w, "evbus_metrics_label_folded_total", labels,
                  (double)tables[i]->folded);
    }
}
