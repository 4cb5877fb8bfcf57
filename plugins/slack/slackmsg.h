/* Slack messages for events: Block Kit JSON with a plain `text` fallback,
 * built-in per event type (task.completed, task.failed, agent.stuck, and a
 * generic one for any other type) or from a configured template.
 *
 * Everything that comes from an event is Slack-escaped (&, <, > become
 * &amp; &lt; &gt;) before it is placed in text; configured mentions
 * ("<!here>") are Slack syntax and go in as they are. Every text is cut
 * to Slack's limits on a character boundary, never inside an escape, with
 * an ellipsis: the payload is always valid.
 *
 * Pure: no I/O, no host. The event is read through sm_event_t so that
 * tests can build events without a broker. */
#ifndef SM_SLACKMSG_H
#define SM_SLACKMSG_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Slack's limits (Block Kit reference), in characters */
#define SM_MAX_BLOCKS 50
#define SM_SECTION_MAX 3000 /* a section's text */
#define SM_FIELD_MAX 2000   /* one of a section's fields */
#define SM_MAX_FIELDS 10
#define SM_HEADER_MAX 150   /* a header's plain text */
#define SM_CONTEXT_MAX 3000 /* a context element's text (ours: one) */
#define SM_TEXT_MAX 3000    /* the fallback text (Slack allows 40,000;
                               notifications show far less) */

/* The event, as the builder reads it. */
typedef struct sm_event {
    const void *ctx;
    /* a top-level string attribute ("type", "id", "source", "subject",
     * "project", "ticket", ...), NULL when absent */
    const char *(*attr)(const void *ctx, const char *name);
    /* data.<path> as text (strings as they are, anything else as JSON),
     * freed with free_text; NULL when absent */
    char *(*data_text)(const void *ctx, const char *path);
    void (*free_text)(const void *ctx, char *text);
    /* data.<path> as a number: 0, or -1 when absent or not a number */
    int (*data_number)(const void *ctx, const char *path, double *out);
    /* the data member as msgpack (for the generic key/value list), or
     * NULL */
    const uint8_t *data_mp;
    size_t data_mp_len;
} sm_event_t;

/* A configured message for one event type. */
typedef struct sm_template {
    const char *text;  /* the fallback line (required) */
    const char *title; /* a header block (optional) */
    const char *body;  /* a mrkdwn section (optional; default: text) */
} sm_template_t;

/* How the message is sent. NULL members are left out (the webhook's own
 * channel, name and icon apply). */
typedef struct sm_style {
    const char *mention; /* Slack syntax put first, e.g. "<!here>" */
    const char *channel;
    const char *username;
    const char *icon_emoji;
    const char *icon_url;
} sm_style_t;

/* Append the message payload (one JSON object) to out: the template's when
 * tmpl is not NULL, else the built-in one for the event's type. 0, or -1
 * when out of memory. */
int sm_build(const sm_event_t *ev, const sm_template_t *tmpl,
             const sm_style_t *style, evb_buf_t *out);

/* One line about an event for a summary: "`id` subject (project)",
 * escaped. 0 or -1 (memory). */
int sm_event_line(const sm_event_t *ev, evb_buf_t *out);

/* The summary of `count` events of `type` held during window_ms: the
 * first lines (from sm_event_line) listed, then how many more. Fits
 * Slack's limits whatever count and the lines are. 0 or -1 (memory). */
int sm_summary(const char *type, int count, int64_t window_ms,
               const char *const *lines, int n_lines, const sm_style_t *style,
               evb_buf_t *out);

/* Append n bytes of s with &, <, > escaped. */
int sm_escape(evb_buf_t *out, const char *s, size_t n);

/* How many bytes of s (len bytes, UTF-8) to keep so that at most
 * max_chars characters remain, counting one for the ellipsis the caller
 * appends when *cut is set. Never splits a character or an escape
 * (&amp; &lt; &gt;). */
size_t sm_cut(const char *s, size_t len, size_t max_chars, int *cut);

/* Render a template: "{{name}}" is the attribute name, "{{data.a.b}}" the
 * value at data.a.b; values are escaped, missing ones are empty. Text
 * outside the braces is copied as it is (Slack mrkdwn). 0 or -1 (memory). */
int sm_render(const char *tmpl, const sm_event_t *ev, evb_buf_t *out);

/* Check a template's syntax: 0, or -1 with the problem in err. */
int sm_template_check(const char *tmpl, char *err, size_t errsz);

/* A duration in human units: "850 ms", "5.1 s", "2m 03s", "1h 02m",
 * "3d 04h". */
void sm_duration(double ms, char *out, size_t cap);

#endif
