#include "health.h"

#include <string.h>

void health_init(health_t *h)
{
    memset(h, 0, sizeof *h);
}

void health_free(health_t *h)
{
    evb_buf_free(&h->waiting);
    evb_buf_free(&h->disabled);
    evb_buf_free(&h->stuck);
}

static const char *s_label(const char *const *labels, const char *name)
{
    for (size_t i = 0; labels && labels[i] && labels[i + 1]; i += 2)
        if (strcmp(labels[i], name) == 0)
            return labels[i + 1];
    return "";
}

static void s_list(evb_buf_t *b, const char *item)
{
    if (b->len)
        evb_buf_puts(b, ", ");
    evb_buf_puts(b, item);
}

void health_on_figure(void *ctx, const char *name, const char *help, int kind,
                      const char *const *labels, double value, size_t n,
                      const double *bounds, const uint64_t *counts)
{
    (void)help, (void)kind, (void)n, (void)bounds, (void)counts;
    health_t *h = ctx;
    if (strcmp(name, "evbus_ready") == 0) {
        h->attached = 1;
        h->ready = value == 1;
    } else if (strcmp(name, "evbus_ingest_heartbeat_timestamp_seconds") == 0) {
        h->beat_s = value;
    } else if (strcmp(name, "evbus_journal_healthy") == 0) {
        h->journal_bad = value != 1;
    } else if (strcmp(name, "evbus_instance_disabled") == 0 && value == 1) {
        s_list(&h->disabled, s_label(labels, "instance"));
    } else if (strcmp(name, "evbus_instance_stuck_calls") == 0 && value > 0) {
        s_list(&h->stuck, s_label(labels, "instance"));
    } else if (strcmp(name, "evbus_instance_up") == 0 && value != 1) {
        s_list(&h->waiting, s_label(labels, "instance"));
    }
}

int health_live(const health_t *h, double now_s, int64_t stall_ms,
                evb_buf_t *body)
{
    double age = h->beat_s > 0 && now_s > h->beat_s ? now_s - h->beat_s : 0;
    if (age * 1000.0 <= (double)stall_ms) {
        evb_buf_puts(body, "ok\n");
        return 200;
    }
    evb_buf_printf(body, "unhealthy: the ingest loop has not run for %.1f s\n",
                   age);
    return 503;
}

int health_ready(const health_t *h, evb_buf_t *body)
{
    int ok = h->attached && h->ready && !h->journal_bad;
    if (ok) {
        evb_buf_puts(body, "ready\n");
    } else {
        evb_buf_puts(body, "not ready:");
        if (!h->ready)
            evb_buf_puts(body, " evbusd is starting or stopping;");
        if (h->journal_bad)
            evb_buf_puts(body, " the journal is failing (see the log);");
        if (h->waiting.len)
            evb_buf_printf(body, " instances not running: %s;",
                           h->waiting.data);
        body->data[body->len - 1] = '\n';
    }
    if (h->disabled.len)
        evb_buf_printf(body, "disabled instances (see the log): %s\n",
                       h->disabled.data);
    if (h->stuck.len)
        evb_buf_printf(body,
                       "instances with a plugin call stuck past slow_call "
                       "(see the log): %s\n",
                       h->stuck.data);
    return ok ? 200 : 503;
}
