/* Slack messages for events. See slackmsg.h. */
#include "slackmsg.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mpack.h"

#define ERROR_BLOCK_MAX 1500 /* characters of an error shown in its block */
#define ERROR_LINE_MAX 150   /* ...and in the fallback line */
#define VALUE_MAX 200        /* characters of one data value listed */
#define KEYS_MAX 10          /* data members listed in a generic message */

static const char s_ellipsis[] = "\xe2\x80\xa6"; /* U+2026 */

/* ------------------------------------------------------------ text */

int sm_escape(evb_buf_t *out, const char *s, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = s[i] == '&'   ? "&amp;"
                          : s[i] == '<' ? "&lt;"
                          : s[i] == '>' ? "&gt;"
                                        : NULL;
        if (!rep)
            continue;
        if (evb_buf_append(out, s + from, i - from) < 0 ||
            evb_buf_puts(out, rep) < 0)
            return -1;
        from = i + 1;
    }
    return evb_buf_append(out, s + from, n - from);
}

static size_t s_u8len(unsigned char c)
{
    return c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3
                      : (c & 0xf8) == 0xf0   ? 4
                                             : 1; /* stray byte: one */
}

static size_t s_next(const char *s, size_t len, size_t i)
{
    size_t n = s_u8len((unsigned char)s[i]);
    return i + n > len ? len : i + n;
}

size_t sm_cut(const char *s, size_t len, size_t max_chars, int *cut)
{
    size_t chars = 0;
    for (size_t i = 0; i < len; i = s_next(s, len, i))
        chars++;
    *cut = chars > max_chars;
    if (!*cut)
        return len;
    size_t keep = max_chars ? max_chars - 1 : 0; /* one for the ellipsis */
    size_t i = 0;
    for (size_t c = 0; i < len && c < keep; c++)
        i = s_next(s, len, i);
    /* never inside "&amp;", "&lt;", "&gt;": back up to its '&' */
    for (size_t k = i; k > 0 && i - k < 4; k--) {
        if (s[k - 1] == ';')
            break;
        if (s[k - 1] == '&') {
            i = k - 1;
            break;
        }
    }
    return i;
}

/* Append a JSON string of s, cut to max characters with an ellipsis. */
static int s_json_text(evb_buf_t *out, evb_buf_t *scratch, const char *s,
                       size_t len, size_t max)
{
    int cut;
    size_t n = sm_cut(s, len, max, &cut);
    evb_buf_reset(scratch);
    if (evb_buf_append(scratch, s, n) < 0 ||
        (cut && evb_buf_puts(scratch, s_ellipsis) < 0))
        return -1;
    return evb_json_write_string(out, scratch->data ? scratch->data : "",
                                 scratch->len);
}

void sm_duration(double ms, char *out, size_t cap)
{
    if (!(ms > 0)) /* negative or NaN */
        ms = 0;
    if (ms < 1000) {
        snprintf(out, cap, "%.0f ms", ms);
        return;
    }
    if (ms < 60000) {
        snprintf(out, cap, "%.1f s", floor(ms / 100) / 10);
        return;
    }
    double secs = floor(ms / 1000);
    if (secs < 3600)
        snprintf(out, cap, "%.0fm %02.0fs", floor(secs / 60),
                 fmod(secs, 60));
    else if (secs < 86400)
        snprintf(out, cap, "%.0fh %02.0fm", floor(secs / 3600),
                 floor(fmod(secs, 3600) / 60));
    else
        snprintf(out, cap, "%.0fd %02.0fh", floor(secs / 86400),
                 floor(fmod(secs, 86400) / 3600));
}

/* ------------------------------------------------------------ templates */

static int s_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
}

/* The name between "{{" and "}}" without surrounding blanks. */
static void s_trim(const char **b, const char **e)
{
    while (*b < *e && (**b == ' ' || **b == '\t'))
        (*b)++;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

int sm_template_check(const char *tmpl, char *err, size_t errsz)
{
    for (const char *p = tmpl; (p = strstr(p, "{{"));) {
        const char *b = p + 2, *e = strstr(b, "}}");
        const char *again = strstr(b, "{{");
        if (!e || (again && again < e)) {
            snprintf(err, errsz, "\"{{\" at character %zu has no \"}}\"",
                     (size_t)(p - tmpl) + 1);
            return -1;
        }
        const char *nb = b, *ne = e;
        s_trim(&nb, &ne);
        int ok = ne > nb && nb[0] != '.' && ne[-1] != '.';
        for (const char *c = nb; ok && c < ne; c++)
            ok = s_name_char(*c) && !(c[0] == '.' && c + 1 < ne && c[1] == '.');
        if (ok && ne - nb == 4 && strncmp(nb, "data", 4) == 0)
            ok = 0; /* "data" alone: name a member */
        if (!ok) {
            snprintf(err, errsz,
                     "\"{{%.*s}}\" at character %zu: want an attribute name "
                     "(\"{{type}}\") or a data path (\"{{data.task_id}}\")",
                     (int)(e - b < 60 ? e - b : 60), b,
                     (size_t)(p - tmpl) + 1);
            return -1;
        }
        p = e + 2;
    }
    return 0;
}

/* Append the escaped value of `name` (attribute or data.path). */
static int s_value(const sm_event_t *ev, const char *name, size_t len,
                   evb_buf_t *out)
{
    char key[256];
    if (len >= sizeof key)
        return 0; /* no such attribute */
    memcpy(key, name, len);
    key[len] = '\0';
    if (strncmp(key, "data.", 5) == 0) {
        char *v = ev->data_text(ev->ctx, key + 5);
        int rc = v ? sm_escape(out, v, strlen(v)) : 0;
        if (v)
            ev->free_text(ev->ctx, v);
        return rc;
    }
    const char *v = ev->attr(ev->ctx, key);
    return v ? sm_escape(out, v, strlen(v)) : 0;
}

int sm_render(const char *tmpl, const sm_event_t *ev, evb_buf_t *out)
{
    const char *p = tmpl;
    for (;;) {
        const char *o = strstr(p, "{{");
        const char *e = o ? strstr(o + 2, "}}") : NULL;
        if (!o || !e) /* the rest as it is (checked at load) */
            return evb_buf_puts(out, p);
        if (evb_buf_append(out, p, (size_t)(o - p)) < 0)
            return -1;
        const char *nb = o + 2, *ne = e;
        s_trim(&nb, &ne);
        if (s_value(ev, nb, (size_t)(ne - nb), out) < 0)
            return -1;
        p = e + 2;
    }
}

/* ------------------------------------------------------------ blocks */

typedef struct s_msg {
    const sm_event_t *ev;
    const sm_style_t *style;
    evb_buf_t text;    /* the fallback, escaped mrkdwn */
    evb_buf_t blocks;  /* the blocks, JSON, comma-separated */
    int n_blocks;
    evb_buf_t line;    /* a block's text being built */
    evb_buf_t scratch;
    int err;
} s_msg_t;

static void s_check(s_msg_t *m, int rc)
{
    if (rc < 0)
        m->err = 1;
}

/* Start a block; 0 when the message already has Slack's maximum. */
static int s_block_open(s_msg_t *m, const char *json_head)
{
    if (m->n_blocks >= SM_MAX_BLOCKS)
        return 0;
    s_check(m, evb_buf_puts(&m->blocks, m->n_blocks ? "," : ""));
    s_check(m, evb_buf_puts(&m->blocks, json_head));
    m->n_blocks++;
    return 1;
}

static void s_section(s_msg_t *m, const evb_buf_t *t)
{
    if (!t->len || !s_block_open(m, "{\"type\":\"section\",\"text\":"
                                    "{\"type\":\"mrkdwn\",\"text\":"))
        return;
    s_check(m, s_json_text(&m->blocks, &m->scratch, t->data, t->len,
                           SM_SECTION_MAX));
    s_check(m, evb_buf_puts(&m->blocks, "}}"));
}

static void s_header(s_msg_t *m, const evb_buf_t *t)
{
    if (!t->len || !s_block_open(m, "{\"type\":\"header\",\"text\":"
                                    "{\"type\":\"plain_text\",\"text\":"))
        return;
    s_check(m, s_json_text(&m->blocks, &m->scratch, t->data, t->len,
                           SM_HEADER_MAX));
    s_check(m, evb_buf_puts(&m->blocks, ",\"emoji\":true}}"));
}

static void s_context(s_msg_t *m, const evb_buf_t *t)
{
    if (!t->len || !s_block_open(m, "{\"type\":\"context\",\"elements\":"
                                    "[{\"type\":\"mrkdwn\",\"text\":"))
        return;
    s_check(m, s_json_text(&m->blocks, &m->scratch, t->data, t->len,
                           SM_CONTEXT_MAX));
    s_check(m, evb_buf_puts(&m->blocks, "}]}"));
}

/* A section of "*Name*\nvalue" fields; values already escaped. */
typedef struct s_field {
    const char *name;
    char value[260];
} s_field_t;

static void s_fields(s_msg_t *m, const s_field_t *f, int n)
{
    int any = 0;
    for (int i = 0; i < n; i++)
        any |= f[i].value[0] != '\0';
    if (!any || !s_block_open(m, "{\"type\":\"section\",\"fields\":["))
        return;
    int k = 0;
    for (int i = 0; i < n && k < SM_MAX_FIELDS; i++) {
        if (!f[i].value[0])
            continue;
        evb_buf_reset(&m->line);
        s_check(m, evb_buf_printf(&m->line, "*%s*\n%s", f[i].name,
                                  f[i].value));
        s_check(m, evb_buf_puts(&m->blocks, k++ ? "," : ""));
        s_check(m, evb_buf_puts(&m->blocks,
                                "{\"type\":\"mrkdwn\",\"text\":"));
        s_check(m, s_json_text(&m->blocks, &m->scratch, m->line.data,
                               m->line.len, SM_FIELD_MAX));
        s_check(m, evb_buf_putc(&m->blocks, '}'));
    }
    s_check(m, evb_buf_puts(&m->blocks, "]}"));
}

/* ------------------------------------------------------------ reading */

static const char *s_attr(const s_msg_t *m, const char *name)
{
    const char *v = m->ev->attr(m->ev->ctx, name);
    return v && *v ? v : NULL;
}

/* v escaped into dst, cut to fit on a character boundary (cap / 4
 * characters, so any UTF-8 fits); "" when v is NULL. */
static void s_escaped(const char *v, char *dst, size_t cap)
{
    dst[0] = '\0';
    if (!v)
        return;
    evb_buf_t b = EVB_BUF_INIT;
    if (sm_escape(&b, v, strlen(v)) == 0 && b.len) {
        int cut;
        size_t n = sm_cut(b.data, b.len, cap / 4 > 0 ? cap / 4 - 1 : 0, &cut);
        snprintf(dst, cap, "%.*s%s", (int)n, b.data, cut ? s_ellipsis : "");
    }
    evb_buf_free(&b);
}

/* data.<path>, the same way. */
static void s_data(const s_msg_t *m, const char *path, char *dst,
                   size_t cap)
{
    char *v = m->ev->data_text(m->ev->ctx, path);
    s_escaped(v, dst, cap);
    if (v)
        m->ev->free_text(m->ev->ctx, v);
}

static int s_number(const s_msg_t *m, const char *path, double *out)
{
    return m->ev->data_number(m->ev->ctx, path, out) == 0 && isfinite(*out);
}

static void s_cost(double cost, const char *currency, char *dst, size_t cap)
{
    if (fabs(cost) >= 0.01 || cost == 0)
        snprintf(dst, cap, "%.2f%s%s", cost, *currency ? " " : "", currency);
    else
        snprintf(dst, cap, "%.4g%s%s", cost, *currency ? " " : "", currency);
}

/* "`task.failed` · source `ci` · event `e-1`" */
static void s_footer(s_msg_t *m)
{
    char v[260];
    evb_buf_reset(&m->line);
    const char *parts[][2] = {{"", "type"}, {"source ", "source"},
                              {"event ", "id"}};
    for (size_t i = 0; i < 3; i++) {
        s_escaped(s_attr(m, parts[i][1]), v, sizeof v);
        if (!v[0])
            continue;
        s_check(m, evb_buf_printf(&m->line, "%s%s`%s`",
                                  m->line.len ? " \xc2\xb7 " : "",
                                  parts[i][0], v));
    }
    s_context(m, &m->line);
}

/* The mention, then the line. */
static void s_lead(s_msg_t *m, evb_buf_t *b)
{
    if (m->style && m->style->mention && *m->style->mention) {
        s_check(m, evb_buf_puts(b, m->style->mention));
        s_check(m, evb_buf_putc(b, ' '));
    }
}

/* ------------------------------------------------------------ built-ins */

static void s_completed(s_msg_t *m)
{
    char task[260], dur[64] = "", cost[96] = "", cur[64];
    double d;
    s_data(m, "task_id", task, sizeof task);
    if (!task[0])
        s_escaped(s_attr(m, "subject"), task, sizeof task);
    if (s_number(m, "duration_ms", &d))
        sm_duration(d, dur, sizeof dur);
    s_data(m, "currency", cur, sizeof cur);
    if (s_number(m, "cost", &d))
        s_cost(d, cur, cost, sizeof cost);
    s_field_t f[4] = {{"Duration", ""}, {"Cost", ""}, {"Project", ""},
                      {"Ticket", ""}};
    snprintf(f[0].value, sizeof f[0].value, "%s", dur);
    snprintf(f[1].value, sizeof f[1].value, "%s", cost);
    s_escaped(s_attr(m, "project"), f[2].value, sizeof f[2].value);
    s_escaped(s_attr(m, "ticket"), f[3].value, sizeof f[3].value);

    evb_buf_t *t = &m->text;
    s_lead(m, t);
    s_check(m, evb_buf_printf(t, ":white_check_mark: Task%s%s completed",
                              task[0] ? " " : "", task));
    if (dur[0])
        s_check(m, evb_buf_printf(t, " in %s", dur));
    if (cost[0])
        s_check(m, evb_buf_printf(t, ", cost %s", cost));
    if (f[2].value[0])
        s_check(m, evb_buf_printf(t, " (project %s)", f[2].value));

    evb_buf_reset(&m->line);
    s_lead(m, &m->line);
    s_check(m, evb_buf_printf(&m->line, ":white_check_mark: *Task%s%s%s "
                                        "completed*",
                              task[0] ? " `" : "", task, task[0] ? "`" : ""));
    s_section(m, &m->line);
    s_fields(m, f, 4);
    s_footer(m);
}

static void s_failed(s_msg_t *m)
{
    char task[260], code[32] = "";
    double d;
    s_data(m, "task_id", task, sizeof task);
    if (!task[0])
        s_escaped(s_attr(m, "subject"), task, sizeof task);
    if (s_number(m, "exit_code", &d))
        snprintf(code, sizeof code, "%.0f", d);
    /* the error, trimmed */
    evb_buf_t err = EVB_BUF_INIT;
    char *raw = m->ev->data_text(m->ev->ctx, "error");
    if (raw) {
        const char *b = raw, *e = raw + strlen(raw);
        while (b < e && (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' ||
                         e[-1] == '\t'))
            e--;
        s_check(m, sm_escape(&err, b, (size_t)(e - b)));
        m->ev->free_text(m->ev->ctx, raw);
    }
    s_field_t f[3] = {{"Exit code", ""}, {"Project", ""}, {"Ticket", ""}};
    snprintf(f[0].value, sizeof f[0].value, "%s", code);
    s_escaped(s_attr(m, "project"), f[1].value, sizeof f[1].value);
    s_escaped(s_attr(m, "ticket"), f[2].value, sizeof f[2].value);

    evb_buf_t *t = &m->text;
    s_lead(m, t);
    s_check(m, evb_buf_printf(t, ":x: Task%s%s failed", task[0] ? " " : "",
                              task));
    if (err.len) { /* its first line */
        size_t n = strcspn(err.data, "\n");
        int cut;
        size_t k = sm_cut(err.data, n, ERROR_LINE_MAX, &cut);
        s_check(m, evb_buf_printf(t, ": %.*s%s", (int)k, err.data,
                                  cut || k < err.len ? s_ellipsis : ""));
    }
    const char *sep = " (";
    const char *what[3] = {"exit ", "project ", "ticket "};
    for (int i = 0; i < 3; i++) {
        if (!f[i].value[0])
            continue;
        s_check(m, evb_buf_printf(t, "%s%s%s", sep, what[i], f[i].value));
        sep = ", ";
    }
    if (sep[0] == ',')
        s_check(m, evb_buf_putc(t, ')'));

    evb_buf_reset(&m->line);
    s_lead(m, &m->line);
    s_check(m, evb_buf_printf(&m->line, ":x: *Task%s%s%s failed*",
                              task[0] ? " `" : "", task, task[0] ? "`" : ""));
    s_section(m, &m->line);
    if (err.len) {
        int cut;
        size_t k = sm_cut(err.data, err.len, ERROR_BLOCK_MAX, &cut);
        evb_buf_reset(&m->line);
        s_check(m, evb_buf_printf(&m->line, "```%.*s%s```", (int)k, err.data,
                                  cut ? s_ellipsis : ""));
        s_section(m, &m->line);
    }
    evb_buf_free(&err);
    s_fields(m, f, 3);
    s_footer(m);
}

static void s_stuck(s_msg_t *m)
{
    char agent[260], task[260], last[260], dur[64] = "";
    double d;
    s_data(m, "agent_id", agent, sizeof agent);
    if (!agent[0])
        s_escaped(s_attr(m, "agent"), agent, sizeof agent);
    if (!agent[0])
        s_escaped(s_attr(m, "subject"), agent, sizeof agent);
    s_data(m, "task_id", task, sizeof task);
    s_data(m, "last_activity", last, sizeof last);
    if (s_number(m, "stuck_for_ms", &d))
        sm_duration(d, dur, sizeof dur);
    else if (s_number(m, "stuck_for_s", &d))
        sm_duration(d * 1000, dur, sizeof dur);
    s_field_t f[5] = {{"Task", ""},
                      {"Stuck for", ""},
                      {"Last activity", ""},
                      {"Project", ""},
                      {"Ticket", ""}};
    snprintf(f[0].value, sizeof f[0].value, "%s", task);
    snprintf(f[1].value, sizeof f[1].value, "%s", dur);
    snprintf(f[2].value, sizeof f[2].value, "%s", last);
    s_escaped(s_attr(m, "project"), f[3].value, sizeof f[3].value);
    s_escaped(s_attr(m, "ticket"), f[4].value, sizeof f[4].value);

    evb_buf_t *t = &m->text;
    s_lead(m, t);
    s_check(m, evb_buf_printf(t, ":warning: Agent%s%s is stuck",
                              agent[0] ? " " : "", agent));
    if (task[0])
        s_check(m, evb_buf_printf(t, " on task %s", task));
    if (dur[0])
        s_check(m, evb_buf_printf(t, " for %s", dur));
    if (last[0])
        s_check(m, evb_buf_printf(t, "; last activity: %s", last));

    evb_buf_reset(&m->line);
    s_lead(m, &m->line);
    s_check(m, evb_buf_printf(&m->line, ":warning: *Agent%s%s%s is stuck*",
                              agent[0] ? " `" : "", agent,
                              agent[0] ? "`" : ""));
    s_section(m, &m->line);
    s_fields(m, f, 5);
    s_footer(m);
}

/* "• *key*: value" lines for data's first members. */
static void s_data_list(s_msg_t *m, evb_buf_t *out)
{
    const uint8_t *p = m->ev->data_mp, *end = p + m->ev->data_mp_len;
    evb_mp_item_t it;
    if (!p || evb_mp_read(&p, end, &it) < 0 || it.kind != EVB_MP_MAP)
        return;
    evb_buf_t v = EVB_BUF_INIT;
    for (uint32_t i = 0; i < it.len; i++) {
        evb_mp_item_t k, val;
        if (evb_mp_read(&p, end, &k) < 0)
            break;
        if (k.kind != EVB_MP_STR) { /* the envelope checks keys: strings */
            if (evb_mp_skip(&p, end, 32) < 0)
                break;
            continue;
        }
        if (i == KEYS_MAX) {
            s_check(m, evb_buf_printf(out, "\n%s and %u more", s_ellipsis,
                                      (unsigned)(it.len - i)));
            break;
        }
        evb_buf_reset(&v);
        const uint8_t *q = p;
        if (evb_mp_read(&q, end, &val) < 0)
            break;
        if (val.kind == EVB_MP_STR) {
            s_check(m, sm_escape(&v, (const char *)val.ptr, val.len));
            p = q;
        } else {
            evb_buf_t j = EVB_BUF_INIT;
            if (evb_json_write_mp(&j, &p, end, 32) < 0) {
                evb_buf_free(&j);
                break;
            }
            s_check(m, sm_escape(&v, j.data ? j.data : "", j.len));
            evb_buf_free(&j);
        }
        s_check(m, evb_buf_puts(out, out->len ? "\n" : ""));
        s_check(m, evb_buf_puts(out, "\xe2\x80\xa2 *"));
        s_check(m, sm_escape(out, (const char *)k.ptr, k.len));
        s_check(m, evb_buf_puts(out, "*: "));
        int cut;
        size_t n = sm_cut(v.data ? v.data : "", v.len, VALUE_MAX, &cut);
        s_check(m, evb_buf_append(out, v.data ? v.data : "", n));
        if (cut)
            s_check(m, evb_buf_puts(out, s_ellipsis));
    }
    evb_buf_free(&v);
}

static void s_generic(s_msg_t *m)
{
    char type[260], source[260];
    s_escaped(s_attr(m, "type"), type, sizeof type);
    s_escaped(s_attr(m, "source"), source, sizeof source);
    /* the subject may be a sentence: whole, cut with its block */
    evb_buf_t sb = EVB_BUF_INIT;
    const char *subj = s_attr(m, "subject");
    if (subj)
        s_check(m, sm_escape(&sb, subj, strlen(subj)));
    const char *subject = sb.data ? sb.data : "";

    evb_buf_t *t = &m->text;
    s_lead(m, t);
    s_check(m, evb_buf_puts(t, type));
    if (source[0])
        s_check(m, evb_buf_printf(t, " from %s", source));
    if (subject[0])
        s_check(m, evb_buf_printf(t, ": %s", subject));

    evb_buf_reset(&m->line);
    s_lead(m, &m->line);
    s_check(m, evb_buf_printf(&m->line, "*%s*", type));
    if (source[0])
        s_check(m, evb_buf_printf(&m->line, " from `%s`", source));
    if (subject[0])
        s_check(m, evb_buf_printf(&m->line, "\n%s", subject));
    s_section(m, &m->line);
    evb_buf_free(&sb);
    evb_buf_reset(&m->line);
    s_data_list(m, &m->line);
    s_section(m, &m->line);
    s_footer(m);
}

static void s_templated(s_msg_t *m, const sm_template_t *tp)
{
    s_lead(m, &m->text);
    s_check(m, sm_render(tp->text, m->ev, &m->text));
    if (tp->title) {
        evb_buf_reset(&m->line);
        s_check(m, sm_render(tp->title, m->ev, &m->line));
        s_header(m, &m->line);
    }
    evb_buf_reset(&m->line);
    s_lead(m, &m->line);
    s_check(m, sm_render(tp->body ? tp->body : tp->text, m->ev, &m->line));
    s_section(m, &m->line);
}

static void s_member(s_msg_t *m, evb_buf_t *out, const char *name,
                     const char *value)
{
    if (!value || !*value)
        return;
    s_check(m, evb_buf_printf(out, ",\"%s\":", name));
    s_check(m, evb_json_write_string(out, value, strlen(value)));
}

static void s_style(s_msg_t *m, evb_buf_t *out)
{
    if (!m->style)
        return;
    s_member(m, out, "channel", m->style->channel);
    s_member(m, out, "username", m->style->username);
    s_member(m, out, "icon_emoji", m->style->icon_emoji);
    s_member(m, out, "icon_url", m->style->icon_url);
}

/* Append the payload of the message m holds, and free m's buffers. An
 * empty text (Slack refuses it: "no_text") becomes the event's type. */
static int s_payload(s_msg_t *m, const char *type, evb_buf_t *out)
{
    if (!m->text.len) {
        s_lead(m, &m->text);
        const char *t = *type ? type : "event";
        s_check(m, sm_escape(&m->text, t, strlen(t)));
    }
    s_check(m, evb_buf_puts(out, "{\"text\":"));
    s_check(m, s_json_text(out, &m->scratch, m->text.data, m->text.len,
                           SM_TEXT_MAX));
    if (m->n_blocks) { /* none (a template that rendered empty): text only */
        s_check(m, evb_buf_puts(out, ",\"blocks\":["));
        s_check(m, evb_buf_append(out, m->blocks.data, m->blocks.len));
        s_check(m, evb_buf_putc(out, ']'));
    }
    s_style(m, out);
    s_check(m, evb_buf_putc(out, '}'));
    evb_buf_free(&m->text);
    evb_buf_free(&m->blocks);
    evb_buf_free(&m->line);
    evb_buf_free(&m->scratch);
    return m->err ? -1 : 0;
}

/* ------------------------------------------------------------ summaries */

#define SUMMARY_LINES 20 /* events listed in a summary */

int sm_event_line(const sm_event_t *ev, evb_buf_t *out)
{
    s_msg_t m = {.ev = ev};
    char id[260], subject[260], project[260];
    s_escaped(s_attr(&m, "id"), id, sizeof id);
    s_escaped(s_attr(&m, "subject"), subject, sizeof subject);
    s_escaped(s_attr(&m, "project"), project, sizeof project);
    if (!subject[0]) { /* the built-ins' usual subjects */
        s_data(&m, "task_id", subject, sizeof subject);
        if (!subject[0])
            s_data(&m, "agent_id", subject, sizeof subject);
    }
    s_check(&m, evb_buf_printf(out, "`%s`", id[0] ? id : "?"));
    if (subject[0])
        s_check(&m, evb_buf_printf(out, " %s", subject));
    if (project[0])
        s_check(&m, evb_buf_printf(out, " (project %s)", project));
    return m.err ? -1 : 0;
}

int sm_summary(const char *type, int count, int64_t window_ms,
               const char *const *lines, int n_lines, const sm_style_t *style,
               evb_buf_t *out)
{
    s_msg_t m = {.style = style};
    char t[260], dur[64];
    s_escaped(type, t, sizeof t);
    sm_duration((double)window_ms, dur, sizeof dur);
    s_lead(&m, &m.text);
    s_check(&m, evb_buf_printf(&m.text, ":repeat: %d more %s event%s in %s",
                               count, t, count == 1 ? "" : "s", dur));
    evb_buf_reset(&m.line);
    s_lead(&m, &m.line);
    s_check(&m, evb_buf_printf(&m.line,
                               ":repeat: *%d more `%s` event%s* in %s "
                               "(folded into this summary)",
                               count, t, count == 1 ? "" : "s", dur));
    s_section(&m, &m.line);
    evb_buf_reset(&m.line);
    int shown = 0;
    for (int i = 0; i < n_lines && shown < SUMMARY_LINES; i++, shown++)
        s_check(&m, evb_buf_printf(&m.line, "%s\xe2\x80\xa2 %s",
                                   m.line.len ? "\n" : "", lines[i]));
    if (count > shown)
        s_check(&m, evb_buf_printf(&m.line, "\n%s and %d more", s_ellipsis,
                                   count - shown));
    s_section(&m, &m.line);
    return s_payload(&m, "", out);
}

/* ------------------------------------------------------------ the payload */

int sm_build(const sm_event_t *ev, const sm_template_t *tmpl,
             const sm_style_t *style, evb_buf_t *out)
{
    s_msg_t m = {.ev = ev, .style = style};
    const char *type = ev->attr(ev->ctx, "type");
    type = type ? type : "";
    if (tmpl && tmpl->text)
        s_templated(&m, tmpl);
    else if (strcmp(type, "task.completed") == 0)
        s_completed(&m);
    else if (strcmp(type, "task.failed") == 0)
        s_failed(&m);
    else if (strcmp(type, "agent.stuck") == 0)
        s_stuck(&m);
    else
        s_generic(&m);

    return s_payload(&m, type, out);
}
