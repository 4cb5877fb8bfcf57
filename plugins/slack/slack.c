/* The Slack plugin: each event as a readable Block Kit message to a Slack
 * incoming webhook, paced to Slack's limits. docs/slack.md is the manual.
 *
 * Shape. deliver() (the instance's one worker thread) builds the message
 * (slackmsg.c), waits for the pace (a token bucket: 1 a second, bursts of
 * 3 by default; slackapi.c) and POSTs it with one reused libcurl handle,
 * so the connection stays open. Slack answers "ok", 429 with Retry-After
 * (RETRY with that hint, and nothing is sent until it passes), 5xx (RETRY)
 * or an error word (slackapi.c decides: dead letter, and for no_service
 * and channel_is_archived the instance is disabled loudly).
 *
 * Sending blocks the worker: at Slack's pace that is the simplest correct
 * design, and it keeps messages in order. Coalescing holds the events of a
 * storm as PENDING attempts and completes them all with one summary
 * message when the window ends (tick(), same thread).
 *
 * Threads: declare/validate/init/shutdown on the main thread; deliver and
 * tick on the worker, never at once: no locks. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <evbus/plugin.h>

#include "mpack.h"
#include "slackapi.h"
#include "slackmsg.h"
#include "topic.h"
#include "whfmt.h"

#ifndef EVBUS_VERSION
#define EVBUS_VERSION "0.1.0"
#endif

#define TICK_MS 250
#define RESP_MAX 4096     /* response bytes kept (Slack answers a word) */
#define PAUSE_SLEEP_MAX 1000 /* longer waits for a 429 become retries */
#define MAX_IN_FLIGHT 1024 /* held (coalesced) events at most */
#define SUMMARY_LINES 20

/* ------------------------------------------------------------ the state */

typedef struct s_route {
    const char *project, *ticket;
    sm_style_t style;
} s_route_t;

typedef struct s_type {
    evb_sub_t sub;         /* the types it applies to */
    const char *mention;
    sm_template_t tmpl;    /* tmpl.text NULL: the built-in message */
} s_type_t;

typedef struct s_held {
    struct s_held *next;
    evbus_attempt_t *att;
    char *line;            /* for the summary */
} s_held_t;

typedef struct s_fold {
    struct s_fold *next;
    char *type;
    sa_window_t w;
    s_held_t *head, **tail;
    int n;
} s_fold_t;

typedef struct s_slack {
    evbus_instance_t *inst;
    const evbus_host_t *host;
    const char *url;
    char label[256];
    int64_t timeout_ms, connect_timeout_ms;
    const char *ca_file;
    int insecure;
    double rate, burst;
    sm_style_t style; /* the instance's channel, username, icon */
    s_route_t *routes;
    int n_routes;
    s_type_t *types;
    int n_types;
    int fold_threshold;
    int64_t fold_window_ms;

    /* at run time */
    CURL *easy;
    struct curl_slist *hdrs;
    sa_bucket_t bucket;
    s_fold_t *folds;
    int gone; /* no_service / channel_is_archived */
    evb_buf_t payload;
    char resp[RESP_MAX + 1];
    size_t resp_len;
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
} s_slack_t;

/* What one message's sending came to. */
typedef struct s_result {
    int rc;        /* EVBUS_OK / RETRY / DROP */
    int64_t hint;  /* retry after, ms (0: the policy's) */
    char reason[600];
} s_result_t;

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ------------------------------------------------------ the event view */

typedef struct s_ectx {
    const evbus_host_t *host;
    const evbus_event_t *ev;
} s_ectx_t;

static const char *s_e_attr(const void *c, const char *name)
{
    const s_ectx_t *x = c;
    return x->host->event_attr(x->ev, name);
}

static char *s_e_text(const void *c, const char *path)
{
    const s_ectx_t *x = c;
    return x->host->event_data_text(x->ev, path);
}

static void s_e_free(const void *c, char *t)
{
    const s_ectx_t *x = c;
    x->host->free(t);
}

static int s_e_number(const void *c, const char *path, double *out)
{
    const s_ectx_t *x = c;
    return x->host->event_data_number(x->ev, path, out);
}

/* The event for the builder; its data member found in the stored msgpack
 * envelope (a map with string keys, validated at ingest). */
static sm_event_t s_view(const s_ectx_t *x)
{
    sm_event_t v = {x, s_e_attr, s_e_text, s_e_free, s_e_number, NULL, 0};
    size_t len = 0;
    const uint8_t *p = x->host->event_msgpack(x->ev, &len);
    const uint8_t *end = p ? p + len : NULL;
    evb_mp_item_t it;
    if (!p || evb_mp_read(&p, end, &it) < 0 || it.kind != EVB_MP_MAP)
        return v;
    for (uint32_t i = 0; i < it.len; i++) {
        evb_mp_item_t k;
        if (evb_mp_read(&p, end, &k) < 0)
            break;
        const uint8_t *val = p;
        if (evb_mp_skip(&p, end, 64) < 0)
            break;
        if (k.kind == EVB_MP_STR && k.len == 4 && memcmp(k.ptr, "data", 4) == 0) {
            v.data_mp = val;
            v.data_mp_len = (size_t)(p - val);
            break;
        }
    }
    return v;
}

/* ------------------------------------------------------------ choosing */

/* The most specific route's style for the event: ticket, then project,
 * then the instance's own; a route's unset members fall back to it. */
static sm_style_t s_style_for(const s_slack_t *h, const char *project,
                              const char *ticket, const char *mention)
{
    const s_route_t *best = NULL;
    int best_rank = 0;
    for (int i = 0; i < h->n_routes; i++) {
        const s_route_t *r = &h->routes[i];
        int rank = 0;
        if (r->ticket) {
            if (!ticket || strcmp(r->ticket, ticket) != 0)
                continue;
            if (r->project && (!project || strcmp(r->project, project) != 0))
                continue;
            rank = 2;
        } else if (r->project) {
            if (!project || strcmp(r->project, project) != 0)
                continue;
            rank = 1;
        }
        if (rank > best_rank) {
            best = r;
            best_rank = rank;
        }
    }
    sm_style_t s = h->style;
    if (best) {
        s.channel = best->style.channel ? best->style.channel : s.channel;
        s.username = best->style.username ? best->style.username : s.username;
        s.icon_emoji =
            best->style.icon_emoji ? best->style.icon_emoji : s.icon_emoji;
        s.icon_url = best->style.icon_url ? best->style.icon_url : s.icon_url;
    }
    s.mention = mention;
    return s;
}

static const s_type_t *s_type_for(const s_slack_t *h, const char *type)
{
    for (int i = 0; i < h->n_types; i++)
        for (size_t k = 0; k < h->types[i].sub.n_patterns; k++)
            if (evb_topic_match(h->types[i].sub.patterns[k], type))
                return &h->types[i];
    return NULL;
}

/* ------------------------------------------------------------ sending */

static size_t s_on_body(char *data, size_t size, size_t n, void *userdata)
{
    s_slack_t *h = userdata;
    size_t len = size * n;
    size_t room = RESP_MAX - h->resp_len;
    size_t take = len < room ? len : room;
    memcpy(h->resp + h->resp_len, data, take);
    h->resp_len += take;
    h->resp[h->resp_len] = '\0';
    return len;
}

static size_t s_on_header(char *data, size_t size, size_t n, void *userdata)
{
    s_slack_t *h = userdata;
    whfmt_retry_after_header(data, size * n, h->retry_after,
                             sizeof h->retry_after);
    return size * n;
}

/* Send h->payload at Slack's pace. `what` names it in the log line. */
static s_result_t s_send(s_slack_t *h, const char *what)
{
    const evbus_host_t *host = h->host;
    s_result_t res = {EVBUS_OK, 0, ""};
    for (;;) {
        int64_t now = s_mono_ms();
        int64_t wait = sa_bucket_take(&h->bucket, now);
        if (!wait)
            break;
        if (now < h->bucket.paused_until_ms && wait > PAUSE_SLEEP_MAX) {
            res.rc = EVBUS_RETRY;
            res.hint = wait;
            snprintf(res.reason, sizeof res.reason,
                     "Slack asked to wait (429, Retry-After): %lld ms left",
                     (long long)wait);
            return res;
        }
        s_sleep_ms(wait < PAUSE_SLEEP_MAX ? wait : PAUSE_SLEEP_MAX);
    }
    h->resp_len = 0;
    h->resp[0] = '\0';
    h->retry_after[0] = '\0';
    h->errbuf[0] = '\0';
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, h->payload.data);
    curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)h->payload.len);
    int64_t t0 = s_mono_ms();
    CURLcode cc = curl_easy_perform(h->easy);
    int64_t ms = s_mono_ms() - t0;
    long status = 0;
    if (cc == CURLE_OK)
        curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &status);
    char word[64];
    sa_outcome_t o = sa_classify(cc == CURLE_OK, status, h->resp,
                                 h->resp_len, word, sizeof word);
    char excerpt[240];
    whfmt_excerpt(h->resp, h->resp_len, 200, excerpt, sizeof excerpt);
    switch (o) {
    case SA_OK:
        host->log(h->inst, EVBUS_LOG_DEBUG, "POST %s %s: HTTP %ld %s, %lld ms",
                  h->label, what, status, excerpt, (long long)ms);
        return res;
    case SA_RETRY:
        res.rc = EVBUS_RETRY;
        if (cc != CURLE_OK)
            snprintf(res.reason, sizeof res.reason, "%s",
                     h->errbuf[0] ? h->errbuf : curl_easy_strerror(cc));
        else if (status == 429) {
            int64_t after = h->retry_after[0]
                                ? whfmt_retry_after_ms(h->retry_after,
                                                       host->now_ms())
                                : -1;
            res.hint = after > 0 ? after : 1000;
            sa_bucket_pause(&h->bucket, s_mono_ms() + res.hint);
            snprintf(res.reason, sizeof res.reason,
                     "HTTP 429 (Retry-After %s): rate-limited by Slack",
                     h->retry_after[0] ? h->retry_after : "absent");
        } else
            snprintf(res.reason, sizeof res.reason, "HTTP %ld: %s", status,
                     excerpt);
        break;
    case SA_DROP:
    case SA_DISABLE:
        res.rc = EVBUS_DROP;
        snprintf(res.reason, sizeof res.reason,
                 "Slack refused the message: %s (HTTP %ld%s%s)", word, status,
                 strncmp(word, "HTTP", 4) == 0 ? ": " : "",
                 strncmp(word, "HTTP", 4) == 0 ? excerpt : "");
        break;
    }
    host->log(h->inst, EVBUS_LOG_WARN, "POST %s %s: %s, %lld ms", h->label,
              what, res.reason, (long long)ms);
    if (o == SA_DISABLE && !h->gone) {
        h->gone = 1;
        char why[600];
        snprintf(why, sizeof why,
                 "Slack answered %s: the incoming webhook %s cannot post "
                 "any more; fix the url (or the channel) and restart",
                 word, h->label);
        host->log(h->inst, EVBUS_LOG_ERROR, "%s", why);
        host->instance_disable(h->inst, why);
    }
    return res;
}

static int s_apply(const s_slack_t *h, evbus_attempt_t *att,
                   const s_result_t *r)
{
    if (r->rc != EVBUS_OK)
        h->host->attempt_reason(att, "%s", r->reason);
    if (r->hint > 0)
        h->host->attempt_retry_after(att, r->hint);
    return r->rc;
}

/* ------------------------------------------------------------ coalescing */

static s_fold_t *s_fold_get(s_slack_t *h, const char *type)
{
    for (s_fold_t *f = h->folds; f; f = f->next)
        if (strcmp(f->type, type) == 0)
            return f;
    s_fold_t *f = calloc(1, sizeof *f);
    if (!f || !(f->type = strdup(type))) {
        free(f);
        return NULL;
    }
    f->tail = &f->head;
    f->next = h->folds;
    h->folds = f;
    return f;
}

/* Complete every held attempt of f with one outcome. */
static void s_fold_complete(s_slack_t *h, s_fold_t *f, const s_result_t *r)
{
    s_held_t *x = f->head;
    f->head = NULL;
    f->tail = &f->head;
    f->n = 0;
    while (x) {
        s_held_t *next = x->next;
        h->host->attempt_complete(x->att, s_apply(h, x->att, r));
        free(x->line);
        free(x);
        x = next;
    }
}

/* Send the summary of what f holds, and complete those events with its
 * outcome. */
static void s_fold_flush(s_slack_t *h, s_fold_t *f)
{
    if (!f->head)
        return;
    const char *lines[SUMMARY_LINES];
    int n = 0;
    for (s_held_t *x = f->head; x && n < SUMMARY_LINES; x = x->next)
        lines[n++] = x->line ? x->line : "`?`";
    const s_type_t *t = s_type_for(h, f->type);
    sm_style_t style = s_style_for(h, NULL, NULL, t ? t->mention : NULL);
    evb_buf_reset(&h->payload);
    s_result_t r = {EVBUS_RETRY, 0, "out of memory building the summary"};
    if (sm_summary(f->type, f->n, h->fold_window_ms, lines, n, &style,
                   &h->payload) == 0) {
        char what[200];
        snprintf(what, sizeof what, "summary of %d %s events", f->n,
                 f->type);
        r = s_send(h, what);
    }
    s_fold_complete(h, f, &r);
}

/* Flush the folds whose window is over (all of them with force). */
static void s_folds_due(s_slack_t *h, int force)
{
    int64_t now = s_mono_ms();
    for (s_fold_t *f = h->folds; f; f = f->next) {
        if (f->head && (force || sa_window_due(&f->w, now, h->fold_window_ms))) {
            s_fold_flush(h, f);
            f->w.count = 0; /* the next event opens a new window */
        }
    }
}

/* ------------------------------------------------------------ deliver */

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *att)
{
    s_slack_t *h = userdata;
    const evbus_host_t *host = h->host;
    s_ectx_t x = {host, ev};
    sm_event_t view = s_view(&x);
    const char *type = host->event_attr(ev, "type");
    const char *id = host->event_attr(ev, "id");
    type = type ? type : "";

    if (h->fold_threshold > 0) {
        s_folds_due(h, 0);
        s_fold_t *f = s_fold_get(h, type);
        if (f && sa_window_note(&f->w, s_mono_ms(), h->fold_threshold,
                                h->fold_window_ms) == SA_HOLD) {
            s_held_t *held = calloc(1, sizeof *held);
            evb_buf_t line = EVB_BUF_INIT;
            if (held && sm_event_line(&view, &line) == 0) {
                held->att = att;
                held->line = evb_buf_steal(&line, NULL);
                *f->tail = held;
                f->tail = &held->next;
                f->n++;
                return EVBUS_PENDING; /* completed with the summary */
            }
            free(held);
            evb_buf_free(&line);
            /* out of memory: send it alone */
        }
    }

    const s_type_t *t = s_type_for(h, type);
    sm_style_t style =
        s_style_for(h, host->event_attr(ev, "project"),
                    host->event_attr(ev, "ticket"), t ? t->mention : NULL);
    evb_buf_reset(&h->payload);
    if (sm_build(&view, t && t->tmpl.text ? &t->tmpl : NULL, &style,
                 &h->payload) < 0) {
        host->attempt_reason(att, "out of memory building the message");
        return EVBUS_RETRY;
    }
    char what[300];
    snprintf(what, sizeof what, "event %s attempt %d", id ? id : "?",
             host->attempt_number(att));
    s_result_t r = s_send(h, what);
    return s_apply(h, att, &r);
}

static void s_tick(void *userdata)
{
    s_slack_t *h = userdata;
    if (h->folds)
        s_folds_due(h, 0);
}

/* ------------------------------------------------------------ options */

static int s_declare(evbus_schema_t *s, const evbus_host_t *host)
{
    int rc = 0;
#define D(name, type, def, flags, text)                                        \
    (rc |= host->declare_option(s, name, type, def, flags, text))
    D("url", EVBUS_OPT_STRING, NULL, EVBUS_OPT_REQUIRED | EVBUS_OPT_SECRET,
      "the incoming-webhook URL (a secret: use ${ENV_VAR})");
    D("channel", EVBUS_OPT_STRING, NULL, 0,
      "post to this channel (where the webhook allows it)");
    D("username", EVBUS_OPT_STRING, NULL, 0, "the poster's name");
    D("icon_emoji", EVBUS_OPT_STRING, NULL, 0, "the poster's icon, :emoji:");
    D("icon_url", EVBUS_OPT_STRING, NULL, 0, "the poster's icon, an image URL");
    D("rate", EVBUS_OPT_FLOAT, "1", 0,
      "messages a second on average (Slack allows 1 per webhook)");
    D("burst", EVBUS_OPT_INT, "3", 0, "messages sent at once after a pause");
    D("timeout", EVBUS_OPT_DURATION, "10s", 0, "one request, in all");
    D("connect_timeout", EVBUS_OPT_DURATION, "5s", 0, "connecting");
    D("ca_file", EVBUS_OPT_STRING, NULL, 0,
      "CA bundle to verify the server with (default: the system's)");
    D("insecure", EVBUS_OPT_BOOL, "false", 0,
      "do NOT verify TLS certificates (logged loudly)");
    D("types", EVBUS_OPT_LIST, NULL, 0,
      "per event type: a mention and/or a template (first match wins)");
    D("types[]", EVBUS_OPT_GROUP, NULL, 0, "one entry");
    D("types[].topics", EVBUS_OPT_LIST, NULL, EVBUS_OPT_REQUIRED,
      "event type patterns it applies to");
    D("types[].topics[]", EVBUS_OPT_STRING, NULL, 0, NULL);
    D("types[].mention", EVBUS_OPT_STRING, NULL, 0,
      "put first, as Slack syntax: \"<!here>\", \"<!channel>\", "
      "\"<@U123>\", \"<!subteam^S123>\"");
    D("types[].text", EVBUS_OPT_STRING, NULL, 0,
      "template of the notification line ({{attribute}}, {{data.path}})");
    D("types[].title", EVBUS_OPT_STRING, NULL, 0, "template of a header");
    D("types[].body", EVBUS_OPT_STRING, NULL, 0,
      "template of the message's section (mrkdwn; default: text)");
    D("routes", EVBUS_OPT_LIST, NULL, 0,
      "channel/username/icon per project or ticket (most specific wins)");
    D("routes[]", EVBUS_OPT_GROUP, NULL, 0, "one route");
    D("routes[].project", EVBUS_OPT_STRING, NULL, 0, "events of this project");
    D("routes[].ticket", EVBUS_OPT_STRING, NULL, 0, "events of this ticket");
    D("routes[].channel", EVBUS_OPT_STRING, NULL, 0, NULL);
    D("routes[].username", EVBUS_OPT_STRING, NULL, 0, NULL);
    D("routes[].icon_emoji", EVBUS_OPT_STRING, NULL, 0, NULL);
    D("routes[].icon_url", EVBUS_OPT_STRING, NULL, 0, NULL);
    D("coalesce", EVBUS_OPT_GROUP, NULL, 0,
      "fold storms of one type into one summary message");
    D("coalesce.threshold", EVBUS_OPT_INT, "0", 0,
      "events of one type sent alone per window; later ones are folded "
      "(0: never fold)");
    D("coalesce.window", EVBUS_OPT_DURATION, "60s", 0,
      "the window; its summary is sent when it ends");
#undef D
    return rc;
}

static const char *s_opt(const s_slack_t *h, const char *path)
{
    const char *v = h->host->config_string(h->inst, path);
    return v && *v ? v : NULL;
}

static void s_clear(s_slack_t *h)
{
    for (int i = 0; i < h->n_types; i++) {
        for (size_t k = 0; k < h->types[i].sub.n_patterns; k++)
            free(h->types[i].sub.patterns[k]);
        free(h->types[i].sub.patterns);
    }
    free(h->types);
    free(h->routes);
    h->types = NULL;
    h->routes = NULL;
    h->n_types = h->n_routes = 0;
}

/* Read and check the options into h; each problem through config_error.
 * Returns the number of problems. */
static int s_load(s_slack_t *h)
{
    const evbus_host_t *host = h->host;
    evbus_instance_t *inst = h->inst;
    int errors = 0;
    char why[300], p[96];

    h->url = s_opt(h, "url");
    if (!h->url || whfmt_url_check(h->url, why, sizeof why) < 0)
        errors += !!host->config_error(inst, "url", "%s",
                                       h->url ? why : "not set");
    if (h->url) {
        /* the path of an incoming webhook is its secret: logs show only
         * where it goes */
        whfmt_url_label(h->url, h->label, sizeof h->label);
        char *scheme = strstr(h->label, "://");
        char *path = scheme ? strchr(scheme + 3, '/') : NULL;
        if (path)
            snprintf(path, sizeof h->label - (size_t)(path - h->label),
                     "/\xe2\x80\xa6");
    }
    h->style.channel = s_opt(h, "channel");
    h->style.username = s_opt(h, "username");
    h->style.icon_emoji = s_opt(h, "icon_emoji");
    h->style.icon_url = s_opt(h, "icon_url");
    h->rate = host->config_float(inst, "rate");
    if (!(h->rate >= 0.01 && h->rate <= 1000))
        errors += !!host->config_error(inst, "rate",
                                       "want 0.01 to 1000 messages a second");
    h->burst = (double)host->config_int(inst, "burst");
    if (h->burst < 1 || h->burst > 1000)
        errors += !!host->config_error(inst, "burst", "want 1 to 1000");
    h->timeout_ms = host->config_int(inst, "timeout");
    h->connect_timeout_ms = host->config_int(inst, "connect_timeout");
    h->ca_file = s_opt(h, "ca_file");
    h->insecure = (int)host->config_int(inst, "insecure");
    h->fold_threshold = (int)host->config_int(inst, "coalesce.threshold");
    h->fold_window_ms = host->config_int(inst, "coalesce.window");
    if (h->fold_threshold < 0)
        errors += !!host->config_error(inst, "coalesce.threshold",
                                       "want 0 (off) or more");
    if (h->fold_window_ms <= 0)
        errors += !!host->config_error(inst, "coalesce.window",
                                       "want a positive duration");

    int nt = host->config_count(inst, "types");
    nt = nt > 0 ? nt : 0;
    h->types = calloc((size_t)nt + 1, sizeof *h->types);
    for (int i = 0; h->types && i < nt; i++) {
        s_type_t *t = &h->types[h->n_types++];
        int np = host->config_count(inst, (snprintf(p, sizeof p,
                                                    "types[%d].topics", i),
                                           p));
        t->sub.patterns = calloc(np > 0 ? (size_t)np : 1, sizeof(char *));
        for (int k = 0; t->sub.patterns && k < np; k++) {
            snprintf(p, sizeof p, "types[%d].topics[%d]", i, k);
            const char *pat = host->config_string(inst, p);
            if (!pat || evb_topic_pattern_check(pat, why, sizeof why) < 0) {
                errors += !!host->config_error(inst, p, "%s",
                                               pat ? why : "not a string");
                continue;
            }
            t->sub.patterns[t->sub.n_patterns++] = strdup(pat);
        }
        if (np <= 0) {
            snprintf(p, sizeof p, "types[%d].topics", i);
            errors += !!host->config_error(inst, p,
                                           "name at least one event type");
        }
        snprintf(p, sizeof p, "types[%d].mention", i);
        t->mention = s_opt(h, p);
        static const char *const parts[] = {"text", "title", "body"};
        const char **dst[] = {&t->tmpl.text, &t->tmpl.title, &t->tmpl.body};
        for (int k = 0; k < 3; k++) {
            snprintf(p, sizeof p, "types[%d].%s", i, parts[k]);
            *dst[k] = s_opt(h, p);
            if (*dst[k] && sm_template_check(*dst[k], why, sizeof why) < 0)
                errors += !!host->config_error(inst, p, "%s", why);
        }
        if (!t->tmpl.text && (t->tmpl.title || t->tmpl.body)) {
            snprintf(p, sizeof p, "types[%d].text", i);
            errors += !!host->config_error(
                inst, p,
                "a template needs text: it is what notifications show");
        }
    }

    int nr = host->config_count(inst, "routes");
    nr = nr > 0 ? nr : 0;
    h->routes = calloc((size_t)nr + 1, sizeof *h->routes);
    for (int i = 0; h->routes && i < nr; i++) {
        s_route_t *r = &h->routes[h->n_routes++];
#define R(member, field)                                                       \
    (snprintf(p, sizeof p, "routes[%d].%s", i, member), r->field = s_opt(h, p))
        R("project", project);
        R("ticket", ticket);
        R("channel", style.channel);
        R("username", style.username);
        R("icon_emoji", style.icon_emoji);
        R("icon_url", style.icon_url);
#undef R
        if (!r->project && !r->ticket) {
            snprintf(p, sizeof p, "routes[%d]", i);
            errors += !!host->config_error(inst, p,
                                           "a route needs a project or a "
                                           "ticket");
        }
    }
    if (!h->types || !h->routes)
        errors += !!host->config_error(inst, "types", "out of memory");
    return errors;
}

static int s_validate(evbus_instance_t *inst, const evbus_host_t *host)
{
    s_slack_t h = {.inst = inst, .host = host};
    int errors = s_load(&h);
    s_clear(&h);
    return errors ? -1 : 0;
}

/* ------------------------------------------------------------ lifecycle */

static void s_free(s_slack_t *h)
{
    if (!h)
        return;
    while (h->folds) {
        s_fold_t *f = h->folds;
        h->folds = f->next;
        free(f->type);
        free(f);
    }
    if (h->easy)
        curl_easy_cleanup(h->easy);
    curl_slist_free_all(h->hdrs);
    evb_buf_free(&h->payload);
    s_clear(h);
    free(h);
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    s_slack_t *h = calloc(1, sizeof *h);
    if (!h) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        return -1;
    }
    h->inst = inst;
    h->host = host;
    if (s_load(h)) {
        s_free(h);
        return -1;
    }
    h->easy = curl_easy_init();
    h->hdrs = curl_slist_append(NULL,
                                "Content-Type: application/json; "
                                "charset=utf-8");
    struct curl_slist *l = h->hdrs ? curl_slist_append(h->hdrs, "Expect:")
                                   : NULL;
    if (!h->easy || !l) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        s_free(h);
        return -1;
    }
    h->hdrs = l;
    CURL *e = h->easy;
    curl_easy_setopt(e, CURLOPT_URL, h->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->hdrs);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "evbus/" EVBUS_VERSION);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
    if (h->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, h->ca_file);
    if (h->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
        host->log(inst, EVBUS_LOG_WARN,
                  "insecure = true: TLS certificates are NOT verified");
    }
    sa_bucket_init(&h->bucket, h->rate, h->burst, s_mono_ms());
    host->log(inst, EVBUS_LOG_INFO,
              "posting to %s at %.2f messages/s (bursts of %.0f), %d type "
              "rule%s, %d route%s, coalescing %s",
              h->label, h->rate, h->burst, h->n_types,
              h->n_types == 1 ? "" : "s", h->n_routes,
              h->n_routes == 1 ? "" : "s",
              h->fold_threshold > 0 ? "on" : "off");
    *userdata = h;
    return 0;
}

static void s_shutdown(void *userdata)
{
    s_slack_t *h = userdata;
    if (!h)
        return;
    /* what is held for a summary goes back to the journal: the next start
     * delivers it */
    s_result_t r = {EVBUS_RETRY, 0, "evbusd is stopping"};
    for (s_fold_t *f = h->folds; f; f = f->next)
        s_fold_complete(h, f, &r);
    s_free(h);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0,
    .flags = 0,
    .max_in_flight = MAX_IN_FLIGHT,
    .tick_interval_ms = TICK_MS,
    .reserved0 = 0,
    .name = "slack",
    .version = EVBUS_VERSION,
    .description = "posts events to a Slack incoming webhook as readable "
                   "Block Kit messages, paced to Slack's limits",
    .declare = s_declare,
    .validate = s_validate,
    .init = s_init,
    .deliver = s_deliver,
    .tick = s_tick,
    .reopen = NULL,
    .shutdown = s_shutdown,
};

EVBUS_EXPORT const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    if (EVBUS_ABI_MAJOR_OF(host_abi) != 1)
        return NULL;
    return &s_plugin;
}
