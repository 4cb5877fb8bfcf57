#include "promtext.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pt_init(pt_t *w, evb_buf_t *out)
{
    w->out = out;
    w->family[0] = '\0';
    w->failed = 0;
}

static int s_name_char(char c, int first, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

int pt_name_valid(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *p = name; *p; p++)
        if (!s_name_char(*p, p == name, 1))
            return 0;
    return 1;
}

int pt_label_name_valid(const char *name)
{
    if (!name || !*name || strncmp(name, "__", 2) == 0)
        return 0;
    for (const char *p = name; *p; p++)
        if (!s_name_char(*p, p == name, 0))
            return 0;
    return 1;
}

void pt_escape_value(evb_buf_t *b, const char *v)
{
    const char *run = v;
    for (const char *p = v; *p; p++) {
        const char *esc = *p == '\\'   ? "\\\\"
                          : *p == '"'  ? "\\\""
                          : *p == '\n' ? "\\n"
                                       : NULL;
        if (!esc)
            continue;
        evb_buf_append(b, run, (size_t)(p - run));
        evb_buf_puts(b, esc);
        run = p + 1;
    }
    evb_buf_puts(b, run);
}

/* HELP text: only \ and newline are escaped. */
static void s_escape_help(evb_buf_t *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\')
            evb_buf_puts(b, "\\\\");
        else if (*p == '\n')
            evb_buf_puts(b, "\\n");
        else
            evb_buf_putc(b, *p);
    }
}

void pt_number(evb_buf_t *b, double v)
{
    if (isnan(v)) {
        evb_buf_puts(b, "NaN");
    } else if (isinf(v)) {
        evb_buf_puts(b, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        evb_buf_printf(b, "%.0f", v);
    } else {
        char s[32];
        snprintf(s, sizeof s, "%.15g", v);
        if (strtod(s, NULL) != v)
            snprintf(s, sizeof s, "%.17g", v);
        evb_buf_puts(b, s);
    }
}

void pt_family(pt_t *w, const char *name, const char *help, int kind)
{
    if (!pt_name_valid(name) || strlen(name) >= sizeof w->family) {
        w->failed = 1;
        return;
    }
    if (strcmp(w->family, name) == 0)
        return;
    snprintf(w->family, sizeof w->family, "%s", name);
    evb_buf_printf(w->out, "# HELP %s ", name);
    s_escape_help(w->out, help && *help ? help : name);
    evb_buf_printf(w->out, "\n# TYPE %s %s\n", name,
                   kind == PT_COUNTER     ? "counter"
                   : kind == PT_HISTOGRAM ? "histogram"
                                          : "gauge");
}

/* {a="x",b="y"[,extra="v"]}; nothing when there are no labels. Invalid
 * label names are left out (and noted). */
static void s_labels(pt_t *w, const char *const *labels, const char *extra,
                     const char *extra_value)
{
    int n = 0;
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        if (!pt_label_name_valid(labels[i])) {
            w->failed = 1;
            continue;
        }
        evb_buf_putc(w->out, n++ ? ',' : '{');
        evb_buf_puts(w->out, labels[i]);
        evb_buf_puts(w->out, "=\"");
        pt_escape_value(w->out, labels[i + 1]);
        evb_buf_putc(w->out, '"');
    }
    if (extra) {
        evb_buf_putc(w->out, n++ ? ',' : '{');
        evb_buf_printf(w->out, "%s=\"%s\"", extra, extra_value);
    }
    if (n)
        evb_buf_putc(w->out, '}');
}

static void s_sample(pt_t *w, const char *name, const char *suffix,
                     const char *const *labels, const char *extra,
                     const char *extra_value, double v)
{
    evb_buf_puts(w->out, name);
    evb_buf_puts(w->out, suffix);
    s_labels(w, labels, extra, extra_value);
    evb_buf_putc(w->out, ' ');
    pt_number(w->out, v);
    evb_buf_putc(w->out, '\n');
}

void pt_sample(pt_t *w, const char *name, const char *const *labels,
               double value)
{
    if (!pt_name_valid(name)) {
        w->failed = 1;
        return;
    }
    s_sample(w, name, "", labels, NULL, NULL, value);
}

void pt_histogram(pt_t *w, const char *name, const char *const *labels,
                  size_t n, const double *bounds, const uint64_t *counts,
                  double sum)
{
    if (!pt_name_valid(name) || n == 0) {
        w->failed = 1;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        char mem[40];
        evb_buf_t le = EVB_BUF_FIXED(mem, sizeof mem);
        mem[0] = '\0';
        pt_number(&le, bounds[i]);
        s_sample(w, name, "_bucket", labels, "le", mem, (double)counts[i]);
    }
    s_sample(w, name, "_sum", labels, NULL, NULL, sum);
    s_sample(w, name, "_count", labels, NULL, NULL, (double)counts[n - 1]);
}
