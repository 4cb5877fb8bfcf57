/* Figures drawn from the events themselves: tasks completed and failed,
 * task durations and costs, stuck agents (all by project), and the time
 * of the last event of each type. Label values come from publishers, so
 * each label keeps at most `max_values` distinct values; later ones are
 * counted under "other" (and the folding itself is counted), so a
 * publisher cannot explode the series a scraper stores. Pure and not
 * thread-safe: the plugin holds its lock around every call. */
#ifndef EVB_DERIVED_H
#define EVB_DERIVED_H

#include <stddef.h>
#include <stdint.h>

#include "promtext.h"

#define DM_OTHER "other"

typedef struct dm dm_t;

/* `bounds`: the task duration histogram's upper bounds in seconds,
 * increasing, without +Inf (added). NULL on out of memory. */
dm_t *dm_new(size_t max_values, const double *bounds, size_t n_bounds);
void dm_destroy(dm_t **self);

/* What one event says. Strings may be NULL (absent). */
typedef struct dm_event {
    const char *type;
    const char *project;
    int64_t accepted_ms;
    int has_duration;
    double duration_ms; /* data.duration_ms */
    int has_cost;
    double cost; /* data.cost */
} dm_event_t;

void dm_observe(dm_t *m, const dm_event_t *ev);
/* Every derived family, in a fixed order. */
void dm_render(const dm_t *m, pt_t *w);
/* Distinct values kept for "project" / "type" (for tests). */
size_t dm_values(const dm_t *m, const char *label);

#endif
