/* The Prometheus text exposition format (version 0.0.4), written into a
 * buffer: families with HELP and TYPE once, samples with escaped label
 * values, histograms as _bucket / _sum / _count. Pure: no I/O, no state
 * beyond the writer, so the output is tested byte for byte. */
#ifndef EVB_PROMTEXT_H
#define EVB_PROMTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define PT_COUNTER 1 /* the same values as EVBUS_FIGURE_* */
#define PT_GAUGE 2
#define PT_HISTOGRAM 3

typedef struct pt {
    evb_buf_t *out;
    char family[256]; /* the family whose HELP/TYPE was written last */
    int failed;       /* out of memory, or a name that is not valid */
} pt_t;

void pt_init(pt_t *w, evb_buf_t *out);

/* A family's HELP and TYPE lines, unless it is the family written last.
 * `name` is the series name (counters end in _total); for a histogram,
 * its base name. A name that is not [a-zA-Z_:][a-zA-Z0-9_:]* is refused
 * (w->failed set, nothing written for it). */
void pt_family(pt_t *w, const char *name, const char *help, int kind);
/* One sample: name{labels} value. `labels` is "name", "value", ...,
 * NULL (NULL itself for none). */
void pt_sample(pt_t *w, const char *name, const char *const *labels,
               double value);
/* A histogram's series: name_bucket{labels,le="..."} for each of n
 * cumulative counts (the last bound +Inf), name_sum, name_count. */
void pt_histogram(pt_t *w, const char *name, const char *const *labels,
                  size_t n, const double *bounds, const uint64_t *counts,
                  double sum);

/* Pieces, exposed for tests. */
int pt_name_valid(const char *name);
int pt_label_name_valid(const char *name);
/* A label value between quotes: \ " and newline escaped. */
void pt_escape_value(evb_buf_t *b, const char *v);
/* A number as Prometheus parses it: integers without a decimal point,
 * else the shortest form that reads back the same; +Inf, -Inf, NaN. */
void pt_number(evb_buf_t *b, double v);

#endif
