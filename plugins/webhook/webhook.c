/* The webhook plugin: POST each event to the endpoints its routes select,
 * signed, many requests in flight at once. docs/webhooks.md is the manual.
 *
 * Shape. deliver() (the instance's one worker thread) picks the endpoints
 * (route.c), renders the body once, signs it per endpoint (sign.c), hands
 * one request per endpoint to an engine and returns PENDING. An engine is
 * a thread driving a libcurl multi handle: its requests of every endpoint
 * in flight at once, connections kept and reused per host. An instance
 * has `engines` of them (default 2): one engine thread is the bottleneck
 * of a busy instance (libcurl and the kernel's TCP work are most of the
 * cost of a delivery), so an endpoint's requests are spread over the
 * engines round robin, each engine allowed its share of the endpoint's
 * max_in_flight (the shares add up to it). When the last request of an
 * attempt finishes, its engine reports the attempt's outcome to the host:
 *
 *   any endpoint failed in a way worth retrying  -> RETRY (the longest
 *                                                   Retry-After as the hint)
 *   else any endpoint refused it for good         -> DROP (dead letter)
 *   else                                          -> OK
 *
 * Endpoints that already took the event (or refused it for good) are
 * remembered per event id, so a retry goes only to the ones that still
 * need it (bounded memory: the oldest ids are forgotten first, which can
 * only cause a duplicate, never a loss).
 *
 * Isolation. Each endpoint has its own queue and cap on requests in
 * flight in each engine. When an endpoint's requests waiting or in flight
 * reach max_queue and none of them has ended for STALL_MS, its events are
 * retried later instead of queueing behind a hanging server. The plugin
 * is EVBUS_PLUGIN_UNORDERED, so a retry waiting for one endpoint never
 * stops new events from reaching the others.
 *
 * Threads: deliver (worker), the engine threads (sockets, completions),
 * init and shutdown (main thread, worker stopped). Each engine's `lock`
 * guards its queue of new requests; the hook's `lock` guards the done
 * table and the groups of several requests (their requests may end on
 * different engines). A group of one request is the worker's until it is
 * queued, then its engine's alone. Requests go back to the worker to be
 * freed (`finished`). Keys (HMAC contexts) are used by the worker only. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <evbus/plugin.h>

#include "route.h"
#include "sign.h"
#include "whfmt.h"

#ifndef EVBUS_VERSION
#define EVBUS_VERSION "0.1.0"
#endif

#define MAX_IN_FLIGHT 1024    /* default instance max_in_flight (attempts) */
#define DONE_MAX 100000       /* event ids remembered across retries */
#define EXCERPT 200           /* bytes of a response body in a reason */
#define REASON_MAX 1000       /* the host keeps 1023 bytes */
#define STALL_MS 1000         /* no request of an endpoint ended for this
                                 long while some wait: it is stalled */
#define MAX_ENGINES 16        /* engines at most (option `engines`) */
#define SPARES 256            /* freed groups, and requests per endpoint,
                                 the worker keeps for reuse */

/* ------------------------------------------------------------ the state */

typedef struct s_body {
    atomic_int refs;
    size_t len;
    char data[];
} s_body_t;

/* One attempt, fanned out to its endpoints. */
typedef struct s_group {
    struct s_group *spare_next; /* in the worker's spares */
    evbus_attempt_t *att;
    char id[260];
    int number;           /* attempt number */
    int requests;         /* requests queued; set before the first is */
    int pending;          /* requests not finished (engine; with several
                             requests under the hook's lock) */
    int retry, permanent; /* endpoints that failed, by kind */
    int64_t retry_after_ms;
    size_t n_done;        /* endpoints that took it in this attempt */
    size_t done[64];      /* ...their indexes (beyond 64: not remembered) */
    size_t n_perm;
    size_t perm[64];
    char reason[REASON_MAX];
} s_group_t;

typedef struct s_req {
    struct s_req *next;   /* in the queue; then in the running list; then
                             in `finished` */
    struct s_req *prev;
    s_group_t *grp;
    int frees_group;      /* the group's last request: freed with it */
    size_t ep;            /* index into routes.eps */
    s_body_t *body;
    struct curl_slist *hdrs; /* nodes and text live after the struct */
    CURL *easy;
    char resp[EXCERPT + 1]; /* the response body's first bytes */
    size_t resp_len;      /* ...kept in resp */
    size_t resp_total;    /* body bytes read */
    size_t resp_max;      /* past it the response is cut short */
    int resp_cut;         /* it was */
    char retry_after[64];
    char errbuf[CURL_ERROR_SIZE];
    int64_t started_us;
    int aborted;          /* shutdown */
    /* the header list: nodes, then the lines (aligned for the nodes) */
    _Alignas(max_align_t) char room[];
} s_req_t;

/* An engine's queue for one endpoint: requests wait here until fewer
 * than the engine's share of max_in_flight are running. Engine only. */
typedef struct s_epq {
    s_req_t *head, *tail;
    int running;
    int limit;            /* this engine's share of max_in_flight */
} s_epq_t;

/* What the engine has told epoll about one socket. A socket libcurl no
 * longer watches (its request ended; the connection waits in the cache)
 * stays registered, marked IDLE: the next request on the connection
 * re-arms it with one EPOLL_CTL_MOD instead of a DEL now and an ADD then
 * (two syscalls a request). An IDLE socket that reports an event (the
 * server closed the connection) is removed then. */
enum { FD_NONE, FD_WATCHED, FD_IDLE };
typedef struct s_fdstate {
    uint8_t state;
    uint32_t events;      /* registered with these */
} s_fdstate_t;

struct s_hook;

/* One engine: a thread, its libcurl multi handle and connections. */
typedef struct s_engine {
    struct s_hook *h;
    pthread_mutex_t lock;     /* queue, stop */
    s_req_t *queue, **queue_tail; /* new requests from the worker */
    int stop;
    int wakefd;               /* eventfd: new requests, or stop */
    /* the engine thread's own */
    int epfd;                 /* epoll: wakefd and libcurl's sockets */
    s_fdstate_t *fds;         /* by descriptor */
    size_t n_fds;
    int64_t timer_due_us;     /* libcurl's timer, monotonic; -1 = none */
    int64_t now_us;           /* monotonic, read once a turn (when epoll_wait
                                 returns): requests' start times and the
                                 timer are relative to it */
    CURLM *multi;
    CURLSH *share;            /* DNS and TLS sessions across its handles */
    s_req_t *running;         /* requests added to the multi handle */
    s_epq_t *epq;             /* per endpoint: waiting, running */
    CURL **pool;              /* easy handles to reuse */
    size_t n_pool, cap_pool;
    pthread_t thread;
    int started;
} s_engine_t;

/* Endpoints that have an event already (or refused it for good). */
typedef struct s_done {
    struct s_done *hnext; /* hash chain */
    struct s_done *older, *newer;
    uint64_t *bits;       /* ok or permanent, by endpoint index */
    char *perm_reason;    /* why the permanent ones refused, or NULL */
    char id[];
} s_done_t;

typedef struct s_hook {
    evbus_instance_t *inst;
    const evbus_host_t *host;
    wh_routes_t routes;
    size_t words;            /* uint64_t per endpoint bitset */
    int64_t max_response;
    char *ca_file;
    int insecure;
    char user_agent[64];

    pthread_mutex_t lock;    /* the done table; groups of several */
    /* requests the engines are done with, handed back to the worker to be
     * freed there: memory goes back to the thread that allocated it, so
     * the threads never contend for one malloc arena */
    _Atomic(s_req_t *) finished;
    _Atomic size_t done_live; /* entries in the done table */
    s_done_t **done_hash;
    size_t done_buckets, done_count;
    s_done_t *done_oldest, *done_newest;

    s_engine_t *engines;
    int n_engines;           /* set up (s_hook_free frees these) */
    /* the worker's own */
    size_t *select_buf;      /* room for routes.n indexes */
    unsigned *next_engine;   /* per endpoint: round robin over engines */
    /* spares: a delivery reuses a group and a request instead of two
     * mallocs and a 2 KiB calloc (requests per endpoint: their size
     * depends on the endpoint's headers) */
    s_group_t *spare_groups;
    size_t n_spare_groups;
    s_req_t **spare_reqs;    /* per endpoint, linked by next */
    size_t *n_spare_reqs;
} s_hook_t;

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_body_release(s_body_t *b)
{
    if (b && atomic_fetch_sub(&b->refs, 1) == 1)
        free(b);
}

/* ----------------------------------------------------- the done table */

static size_t s_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Lock held. */
static s_done_t *s_done_find(s_hook_t *h, const char *id)
{
    if (!h->done_buckets)
        return NULL;
    for (s_done_t *d = h->done_hash[s_hash(id) % h->done_buckets]; d;
         d = d->hnext)
        if (strcmp(d->id, id) == 0)
            return d;
    return NULL;
}

/* Lock held. */
static void s_done_remove(s_hook_t *h, s_done_t *d)
{
    s_done_t **p = &h->done_hash[s_hash(d->id) % h->done_buckets];
    while (*p != d)
        p = &(*p)->hnext;
    *p = d->hnext;
    if (d->older)
        d->older->newer = d->newer;
    else
        h->done_oldest = d->newer;
    if (d->newer)
        d->newer->older = d->older;
    else
        h->done_newest = d->older;
    h->done_count--;
    atomic_fetch_sub(&h->done_live, 1);
    free(d->bits);
    free(d->perm_reason);
    free(d);
}

/* Lock held. The entry for id, created when missing (NULL: no memory). */
static s_done_t *s_done_get(s_hook_t *h, const char *id)
{
    s_done_t *d = s_done_find(h, id);
    if (d)
        return d;
    if (!h->done_buckets) {
        h->done_hash = calloc(4096, sizeof *h->done_hash);
        if (!h->done_hash)
            return NULL;
        h->done_buckets = 4096;
    }
    if (h->done_count >= DONE_MAX)
        s_done_remove(h, h->done_oldest);
    size_t len = strlen(id);
    d = calloc(1, sizeof *d + len + 1);
    if (!d || !(d->bits = calloc(h->words, sizeof *d->bits))) {
        free(d);
        return NULL;
    }
    memcpy(d->id, id, len + 1);
    atomic_fetch_add(&h->done_live, 1);
    size_t b = s_hash(id) % h->done_buckets;
    d->hnext = h->done_hash[b];
    h->done_hash[b] = d;
    d->older = h->done_newest;
    if (h->done_newest)
        h->done_newest->newer = d;
    else
        h->done_oldest = d;
    h->done_newest = d;
    h->done_count++;
    return d;
}

static int s_bit(const uint64_t *bits, size_t i)
{
    return (int)((bits[i / 64] >> (i % 64)) & 1);
}

static void s_set_bit(uint64_t *bits, size_t i)
{
    bits[i / 64] |= 1ull << (i % 64);
}

/* -------------------------------------------------------- outcomes */

static void s_reason_add(s_group_t *g, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_reason_add(s_group_t *g, const char *fmt, ...)
{
    size_t used = strlen(g->reason);
    if (used + 4 >= sizeof g->reason)
        return;
    if (used) {
        memcpy(g->reason + used, "; ", 3);
        used += 2;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->reason + used, sizeof g->reason - used, fmt, ap);
    va_end(ap);
}

/* An endpoint's result within an attempt. Lock held. */
static void s_group_note(s_group_t *g, size_t ep, whfmt_outcome_t o,
                         int64_t retry_after_ms)
{
    if (o == WHFMT_OK) {
        if (g->n_done < sizeof g->done / sizeof g->done[0])
            g->done[g->n_done++] = ep;
    } else if (o == WHFMT_RETRY) {
        g->retry++;
        if (retry_after_ms > g->retry_after_ms)
            g->retry_after_ms = retry_after_ms;
    } else {
        g->permanent++;
        if (g->n_perm < sizeof g->perm / sizeof g->perm[0])
            g->perm[g->n_perm++] = ep;
    }
}

/* Whether finishing g touches the done table (then under the lock): only
 * to remember a partial result for a retry, or when some earlier attempt
 * left entries behind. Most attempts need neither. */
static int s_group_shared(s_hook_t *h, const s_group_t *g)
{
    return g->retry || atomic_load(&h->done_live) > 0;
}

/* The attempt's outcome once every endpoint has answered; remembers who
 * has the event for the retry. `shared` from s_group_shared, with the lock
 * held when it is set. Returns EVBUS_OK/RETRY/DROP with the reason and
 * hint set on the attempt. */
static int s_group_finish(s_hook_t *h, s_group_t *g, int shared)
{
    const evbus_host_t *host = h->host;
    s_done_t *d = shared ? s_done_find(h, g->id) : NULL;
    if (g->retry) {
        /* remember who has it, so the retry goes to the rest only */
        if (g->n_done || g->n_perm) {
            d = d ? d : s_done_get(h, g->id);
            if (d) {
                for (size_t i = 0; i < g->n_done; i++)
                    s_set_bit(d->bits, g->done[i]);
                for (size_t i = 0; i < g->n_perm; i++)
                    s_set_bit(d->bits, g->perm[i]);
                if (g->n_perm && !d->perm_reason)
                    d->perm_reason = strdup(g->reason);
            }
        }
        host->attempt_reason(g->att, "%s", g->reason);
        if (g->retry_after_ms > 0)
            host->attempt_retry_after(g->att, g->retry_after_ms);
        return EVBUS_RETRY;
    }
    int rc = EVBUS_OK;
    if (g->permanent || (d && d->perm_reason)) {
        /* a refusal from an earlier attempt counts too */
        if (!g->permanent && d && d->perm_reason)
            host->attempt_reason(g->att, "%s", d->perm_reason);
        else if (d && d->perm_reason)
            host->attempt_reason(g->att, "%s; earlier: %s", g->reason,
                                 d->perm_reason);
        else
            host->attempt_reason(g->att, "%s", g->reason);
        rc = EVBUS_DROP;
    }
    if (d)
        s_done_remove(h, d); /* final: nothing more to remember */
    return rc;
}

/* --------------------------------------------------------- the engine */

static size_t s_on_body(char *data, size_t size, size_t n, void *userdata)
{
    s_req_t *r = userdata;
    size_t len = size * n;
    if (r->resp_len < EXCERPT) { /* the reason quotes the first bytes */
        size_t take = EXCERPT - r->resp_len < len ? EXCERPT - r->resp_len
                                                  : len;
        memcpy(r->resp + r->resp_len, data, take);
        r->resp_len += take;
    }
    r->resp_total += len;
    if (r->resp_total > r->resp_max) {
        /* a receiver streaming without end: stop reading (the connection
         * is closed); the status line already decided the outcome */
        r->resp_cut = 1;
        return 0;
    }
    return len;
}

static size_t s_on_header(char *data, size_t size, size_t n, void *userdata)
{
    s_req_t *r = userdata;
    whfmt_retry_after_header(data, size * n, r->retry_after,
                             sizeof r->retry_after);
    return size * n;
}

/* A group for an attempt: a spare or a new one. Worker. */
static s_group_t *s_group_new(s_hook_t *h, evbus_attempt_t *att, int number,
                              const char *id)
{
    s_group_t *g = h->spare_groups;
    if (g) {
        h->spare_groups = g->spare_next;
        h->n_spare_groups--;
    } else if (!(g = malloc(sizeof *g))) {
        return NULL;
    }
    /* everything but the arrays, which are read only up to their counts */
    g->spare_next = NULL;
    g->att = att;
    g->number = number;
    snprintf(g->id, sizeof g->id, "%s", id ? id : "");
    g->requests = g->pending = 0;
    g->retry = g->permanent = 0;
    g->retry_after_ms = 0;
    g->n_done = g->n_perm = 0;
    g->reason[0] = '\0';
    return g;
}

/* Worker (or main thread once the engines and worker have stopped). */
static void s_group_put(s_hook_t *h, s_group_t *g)
{
    if (h->n_spare_groups < SPARES) {
        g->spare_next = h->spare_groups;
        h->spare_groups = g;
        h->n_spare_groups++;
    } else {
        free(g);
    }
}

static void s_req_put(s_hook_t *h, s_req_t *r)
{
    if (h->n_spare_reqs && h->n_spare_reqs[r->ep] < SPARES) {
        r->next = h->spare_reqs[r->ep];
        h->spare_reqs[r->ep] = r;
        h->n_spare_reqs[r->ep]++;
    } else {
        free(r);
    }
}

/* Worker (or main thread once the engines and worker have stopped). */
static void s_req_free(s_hook_t *h, s_req_t *r)
{
    if (!r)
        return;
    s_body_release(r->body);
    if (r->frees_group)
        s_group_put(h, r->grp);
    s_req_put(h, r);
}

/* Engine: hand a finished request back (lock-free push). */
static void s_req_finished(s_hook_t *h, s_req_t *r)
{
    r->next = atomic_load(&h->finished);
    while (!atomic_compare_exchange_weak(&h->finished, &r->next, r))
        ;
}

/* Worker: free what the engine handed back. */
static void s_free_finished(s_hook_t *h)
{
    s_req_t *r = atomic_exchange(&h->finished, NULL);
    while (r) {
        s_req_t *next = r->next;
        s_req_free(h, r);
        r = next;
    }
}

/* A request is over: log it, note it in its group, and complete the
 * attempt when it was the group's last. Its engine's thread. */
static void s_req_done(s_hook_t *h, s_req_t *r, CURLcode cc)
{
    const evbus_host_t *host = h->host;
    wh_endpoint_t *ep = &h->routes.eps[r->ep];
    s_group_t *g = r->grp;
    long status = 0;
    if (cc == CURLE_WRITE_ERROR && r->resp_cut)
        cc = CURLE_OK; /* answered; we only stopped reading the body */
    if (cc == CURLE_OK)
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    int64_t ms = (s_mono_us() - r->started_us) / 1000;
    whfmt_outcome_t o = whfmt_classify(cc == CURLE_OK, status);
    if (r->aborted)
        o = WHFMT_RETRY;
    int64_t hint = 0;
    char what[600];
    if (o == WHFMT_OK) {
        /* one line per request; successes only at debug (a line per
         * delivery would drown the log at info), formatted by the host
         * only when debug is on */
        host->log(h->inst, EVBUS_LOG_DEBUG,
                  "POST %s event %s attempt %d: HTTP %ld%s, %lld ms",
                  ep->label, g->id, g->number, status,
                  r->resp_cut ? " (response body cut at max_response)" : "",
                  (long long)ms);
    } else {
        if (r->aborted) {
            snprintf(what, sizeof what, "cancelled: evbusd is stopping");
        } else if (cc != CURLE_OK) {
            snprintf(what, sizeof what, "%s",
                     r->errbuf[0] ? r->errbuf : curl_easy_strerror(cc));
        } else {
            char excerpt[EXCERPT + 8];
            whfmt_excerpt(r->resp, r->resp_len, EXCERPT, excerpt,
                          sizeof excerpt);
            if (o == WHFMT_RETRY && r->retry_after[0]) {
                int64_t now = host->now_ms();
                hint = whfmt_retry_after_ms(r->retry_after, now);
                if (hint < 0)
                    hint = 0;
            }
            if (hint > 0)
                snprintf(what, sizeof what, "HTTP %ld (Retry-After %s): %s",
                         status, r->retry_after, excerpt);
            else
                snprintf(what, sizeof what, "HTTP %ld: %s", status,
                         excerpt);
        }
        host->log(h->inst, EVBUS_LOG_WARN,
                  "POST %s event %s attempt %d: %s, %lld ms", ep->label,
                  g->id, g->number, what, (long long)ms);
    }
    if (o == WHFMT_GONE && !atomic_exchange(&ep->gone, 1)) {
        snprintf(ep->gone_reason, sizeof ep->gone_reason,
                 "endpoint %s answered 410 Gone", ep->label);
        host->log(h->inst, EVBUS_LOG_ERROR,
                  "endpoint %s (%s) answered 410 Gone: it is DISABLED until "
                  "evbusd restarts with a corrected configuration; its "
                  "events are dead-lettered meanwhile",
                  ep->label, ep->setting);
    }
    atomic_store(&ep->last_progress_ms, host->now_ms());
    atomic_fetch_sub(&ep->pending, 1);

    /* A group of one request is its engine's alone once queued; the
     * requests of a group of several may end on different engines at
     * once, so they meet under the hook's lock. */
    int several = g->requests > 1;
    if (several)
        pthread_mutex_lock(&h->lock);
    if (o != WHFMT_OK)
        s_reason_add(g, "%s: %s", ep->label, what);
    s_group_note(g, r->ep, o, hint);
    if (--g->pending > 0) {
        if (several)
            pthread_mutex_unlock(&h->lock);
        return; /* g may be freed by now: not touched again */
    }
    int shared = several || s_group_shared(h, g);
    if (shared && !several)
        pthread_mutex_lock(&h->lock);
    int rc = s_group_finish(h, g, shared);
    if (shared)
        pthread_mutex_unlock(&h->lock);
    host->attempt_complete(g->att, rc);
    r->frees_group = 1;
}

static void s_running_unlink(s_engine_t *e, s_req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        e->running = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* Hand the request's handle back to the pool (or free it). */
static void s_easy_put(s_engine_t *e, s_req_t *r)
{
    CURL *c = r->easy;
    r->easy = NULL;
    if (!c)
        return;
    /* nothing in the pool may point into the request once it is freed */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    if (e->n_pool == e->cap_pool) {
        size_t cap = e->cap_pool ? e->cap_pool * 2 : 64;
        CURL **p = cap <= 4096 ? realloc(e->pool, cap * sizeof *p) : NULL;
        if (!p) {
            curl_easy_cleanup(c);
            return;
        }
        e->pool = p;
        e->cap_pool = cap;
    }
    e->pool[e->n_pool++] = c;
}

/* Configure a handle for the request and add it. Engine thread. */
static int s_req_start(s_engine_t *e, s_req_t *r)
{
    s_hook_t *h = e->h;
    wh_endpoint_t *ep = &h->routes.eps[r->ep];
    CURL *c;
    if (e->n_pool) {
        /* a pooled handle keeps the options common to every request (set
         * below when it was made); only the request's own are set again */
        c = e->pool[--e->n_pool];
    } else if ((c = curl_easy_init())) {
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_on_body);
        curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, s_on_header);
        curl_easy_setopt(c, CURLOPT_USERAGENT, h->user_agent);
        if (e->share)
            curl_easy_setopt(c, CURLOPT_SHARE, e->share);
        if (h->ca_file)
            curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
        if (h->insecure) {
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
            curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
    } else {
        snprintf(r->errbuf, sizeof r->errbuf, "out of memory");
        return -1;
    }
    r->easy = c;
    curl_easy_setopt(c, CURLOPT_URL, ep->url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)r->body->data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)r->body->len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hdrs);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)ep->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)ep->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    r->started_us = e->now_us;
    CURLMcode mc = curl_multi_add_handle(e->multi, c);
    if (mc != CURLM_OK) {
        snprintf(r->errbuf, sizeof r->errbuf, "curl: %s",
                 curl_multi_strerror(mc));
        return -1;
    }
    r->prev = NULL;
    r->next = e->running;
    if (e->running)
        e->running->prev = r;
    e->running = r;
    return 0;
}

/* A request is over (or never started): report it, recycle its handle. */
static void s_req_end(s_engine_t *e, s_req_t *r, CURLcode cc)
{
    s_req_done(e->h, r, cc);
    s_easy_put(e, r);
    s_req_finished(e->h, r);
}

/* Start what the engine's share of the endpoint allows. Engine thread. */
static void s_pump(s_engine_t *e, size_t epi)
{
    s_epq_t *q = &e->epq[epi];
    while (q->head && q->running < q->limit) {
        s_req_t *r = q->head;
        q->head = r->next;
        if (!q->head)
            q->tail = NULL;
        r->next = NULL;
        if (s_req_start(e, r) < 0) {
            s_req_end(e, r, CURLE_FAILED_INIT);
            continue;
        }
        q->running++;
    }
}

/* The epoll registration of fd, growing the table. NULL: out of memory
 * (the caller then falls back to plain ADD/MOD/DEL). */
static s_fdstate_t *s_fd(s_engine_t *e, curl_socket_t fd)
{
    if (fd < 0)
        return NULL;
    if ((size_t)fd >= e->n_fds) {
        size_t n = e->n_fds ? e->n_fds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        s_fdstate_t *t = realloc(e->fds, n * sizeof *t);
        if (!t)
            return NULL;
        memset(t + e->n_fds, 0, (n - e->n_fds) * sizeof *t);
        e->fds = t;
        e->n_fds = n;
    }
    return &e->fds[fd];
}

/* Register fd for events: MOD when epoll may know it (falling back to
 * ADD for a descriptor closed and reused meanwhile), else ADD. */
static void s_fd_arm(s_engine_t *e, curl_socket_t fd, s_fdstate_t *st,
                     uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (st && st->state == FD_NONE) {
        if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EEXIST)
            epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev);
    } else if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) < 0 &&
               errno == ENOENT) {
        epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev);
    }
    if (st) {
        st->state = FD_WATCHED;
        st->events = events;
    }
}

/* libcurl tells which sockets to watch and for what (engine thread). A
 * socket it stops watching stays in epoll (see s_fdstate_t): libcurl
 * always says REMOVE before it closes a socket it watched, so a
 * descriptor number reused by a new socket is armed again. */
static int s_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
                       void *socketp)
{
    (void)easy;
    (void)socketp;
    s_engine_t *e = userp;
    s_fdstate_t *st = s_fd(e, fd);
    if (what == CURL_POLL_REMOVE) {
        if (st && st->state == FD_WATCHED)
            st->state = FD_IDLE;
        else if (!st)
            epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
        return 0;
    }
    uint32_t events = 0;
    if (what & CURL_POLL_IN)
        events |= EPOLLIN;
    if (what & CURL_POLL_OUT)
        events |= EPOLLOUT;
    if (st && st->state == FD_WATCHED && st->events == events)
        return 0;
    s_fd_arm(e, fd, st, events);
    return 0;
}

/* ...and when to call it back without socket activity (engine thread). */
static int s_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    s_engine_t *e = userp;
    e->timer_due_us = timeout_ms < 0 ? -1 : e->now_us + timeout_ms * 1000;
    return 0;
}

/* Report what libcurl finished and start what may start now. */
static void s_collect(s_engine_t *e)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(e->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        s_req_t *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode cc = msg->data.result;
        curl_multi_remove_handle(e->multi, msg->easy_handle);
        s_running_unlink(e, r);
        size_t epi = r->ep;
        e->epq[epi].running--;
        s_req_end(e, r, cc);
        s_pump(e, epi);
    }
}

/* Evbusd is stopping and the host's drain is over: what is still waiting
 * or in flight is cut short and retried after the restart (the journal
 * keeps the event). */
static void s_abort_all(s_engine_t *e)
{
    for (size_t i = 0; i < e->h->routes.n; i++) {
        s_epq_t *q = &e->epq[i];
        while (q->head) {
            s_req_t *r = q->head;
            q->head = r->next;
            r->next = NULL;
            r->aborted = 1;
            s_req_end(e, r, CURLE_ABORTED_BY_CALLBACK);
        }
        q->tail = NULL;
    }
    while (e->running) {
        s_req_t *r = e->running;
        s_running_unlink(e, r);
        curl_multi_remove_handle(e->multi, r->easy);
        r->aborted = 1;
        s_req_end(e, r, CURLE_ABORTED_BY_CALLBACK);
    }
}

/* An engine: one epoll set holding the wake-up eventfd and the sockets
 * libcurl asks for; curl_multi_socket_action runs only the transfers whose
 * sockets are ready (curl_multi_perform would walk, and poll, every
 * transfer on every turn: O(requests in flight) per event). */
static void *s_engine(void *arg)
{
    s_engine_t *e = arg;
    s_hook_t *h = e->h;
    struct epoll_event evs[64];
    int running = 0;
    for (;;) {
        int64_t timeout = -1;
        if (e->timer_due_us >= 0) {
            int64_t left = e->timer_due_us - s_mono_us();
            timeout = left <= 0 ? 0 : (left + 999) / 1000;
        }
        int n = epoll_wait(e->epfd, evs, 64, (int)timeout);
        e->now_us = s_mono_us();
        int woken = 0;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == e->wakefd) {
                woken = 1;
                continue;
            }
            s_fdstate_t *st = (size_t)fd < e->n_fds ? &e->fds[fd] : NULL;
            if (st && st->state == FD_IDLE) {
                /* an idle connection heard from (the server closed it):
                 * nobody waits for it, stop watching; libcurl finds it
                 * dead when it next picks it from its cache */
                epoll_ctl(e->epfd, EPOLL_CTL_DEL, fd, NULL);
                st->state = FD_NONE;
                continue;
            }
            int flags = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP))
                flags |= CURL_CSELECT_IN;
            if (evs[i].events & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
            if (evs[i].events & EPOLLERR)
                flags |= CURL_CSELECT_ERR;
            curl_multi_socket_action(e->multi, fd, flags, &running);
        }
        if (e->timer_due_us >= 0 && e->now_us >= e->timer_due_us) {
            e->timer_due_us = -1;
            curl_multi_socket_action(e->multi, CURL_SOCKET_TIMEOUT, 0,
                                     &running);
        }
        s_collect(e);
        if (!woken)
            continue;

        uint64_t count;
        if (read(e->wakefd, &count, sizeof count) < 0 && errno != EAGAIN)
            h->host->log(h->inst, EVBUS_LOG_ERROR, "wake-up read: %s",
                         strerror(errno));
        pthread_mutex_lock(&e->lock);
        s_req_t *fresh = e->queue;
        e->queue = NULL;
        e->queue_tail = &e->queue;
        int stop = e->stop;
        pthread_mutex_unlock(&e->lock);
        for (s_req_t *r = fresh, *next; r; r = next) {
            next = r->next;
            r->next = NULL;
            s_epq_t *q = &e->epq[r->ep];
            if (q->tail)
                q->tail->next = r;
            else
                q->head = r;
            q->tail = r;
            if (!stop)
                s_pump(e, r->ep);
        }
        if (stop) {
            s_abort_all(e);
            break;
        }
    }
    return NULL;
}

/* Wake an engine (any thread). */
static void s_wake(s_engine_t *e)
{
    uint64_t one = 1;
    if (write(e->wakefd, &one, sizeof one) < 0 && errno != EAGAIN)
        e->h->host->log(e->h->inst, EVBUS_LOG_ERROR, "wake-up write: %s",
                        strerror(errno));
}

/* Queue a deliver()'s requests on their engines (worker): one wake-up
 * per engine whose queue was empty (a queue already holding requests has
 * a wake-up on its way: the engine empties it whole). */
static void s_submit(s_hook_t *h, s_req_t **batch, s_req_t ***tails)
{
    for (int k = 0; k < h->n_engines; k++) {
        if (!batch[k])
            continue;
        s_engine_t *e = &h->engines[k];
        pthread_mutex_lock(&e->lock);
        int wake = e->queue == NULL;
        *e->queue_tail = batch[k];
        e->queue_tail = tails[k];
        pthread_mutex_unlock(&e->lock);
        if (wake)
            s_wake(e);
    }
}

/* ------------------------------------------------------------ requests */

/* A request's header lines, written into the request's own allocation:
 * curl only reads the list, so one malloc serves the request, its nodes
 * and its text (no per-line allocations to free on another thread). */
typedef struct s_hdrs {
    struct curl_slist *nodes;
    size_t n, max;
    char *text;
    size_t used, cap;
    int err;
} s_hdrs_t;

static void s_hdr(s_hdrs_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_hdr(s_hdrs_t *b, const char *fmt, ...)
{
    if (b->err || b->n == b->max) {
        b->err = 1;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(b->text + b->used, b->cap - b->used, fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= b->cap - b->used) {
        b->err = 1;
        return;
    }
    struct curl_slist *node = &b->nodes[b->n];
    node->data = b->text + b->used;
    node->next = NULL;
    if (b->n)
        b->nodes[b->n - 1].next = node;
    b->n++;
    b->used += (size_t)len + 1;
}

/* Fixed lines at most: content type, Expect, id, timestamp, signature (the
 * user agent is an option of the handle, so an endpoint's own User-Agent
 * header replaces it); their text at most HDR_TEXT bytes (a signature
 * line with WH_MAX_KEYS signatures included). */
#define HDR_LINES 8
#define HDR_TEXT (1024 + WH_SIGNATURE_MAX)

/* One request for the endpoint: its headers (content type, signature with
 * a timestamp taken now, the endpoint's own) in the same allocation. */
static s_req_t *s_req_new(s_hook_t *h, s_group_t *g, size_t epi,
                          s_body_t *body)
{
    wh_endpoint_t *ep = &h->routes.eps[epi];
    size_t max = HDR_LINES + ep->n_headers;
    size_t cap = HDR_TEXT + ep->headers_len;
    s_req_t *r = h->spare_reqs[epi];
    if (r) {
        h->spare_reqs[epi] = r->next;
        h->n_spare_reqs[epi]--;
    } else if (!(r = malloc(sizeof *r + max * sizeof(struct curl_slist) +
                            cap))) {
        return NULL;
    }
    memset(r, 0, sizeof *r);
    r->grp = g;
    r->ep = epi;
    r->resp_max = (size_t)h->max_response;
    s_hdrs_t b = {.nodes = (struct curl_slist *)(void *)r->room,
                  .max = max,
                  .text = r->room + max * sizeof(struct curl_slist),
                  .cap = cap};
    const char *id = g->id;
    int64_t ts = h->host->now_ms() / 1000;
    char sig[WH_SIGNATURE_MAX];
    s_hdr(&b, "Content-Type: %s",
          ep->data_only ? "application/json" : "application/cloudevents+json");
    s_hdr(&b, "Expect:"); /* no 100-continue round trip */
    switch (ep->scheme) {
    case WH_SCHEME_STANDARD:
        b.err |= !wh_sign_standard(ep->keys, ep->n_keys, id, ts, body->data,
                                   body->len, sig, sizeof sig);
        s_hdr(&b, "webhook-id: %s", id);
        s_hdr(&b, "webhook-timestamp: %lld", (long long)ts);
        s_hdr(&b, "webhook-signature: %s", sig);
        break;
    case WH_SCHEME_GITHUB:
        b.err |= !wh_sign_github(ep->keys[0], body->data, body->len, sig,
                                 sizeof sig);
        s_hdr(&b, "X-Evbus-Event-Id: %s", id);
        s_hdr(&b, "X-Hub-Signature-256: %s", sig);
        break;
    case WH_SCHEME_CUSTOM:
        b.err |= !wh_sign_custom(ep->keys, ep->n_keys, ts, body->data,
                                 body->len, sig, sizeof sig);
        s_hdr(&b, "X-Evbus-Event-Id: %s", id);
        s_hdr(&b, "%s: %lld", ep->ts_header, (long long)ts);
        s_hdr(&b, "%s: %s", ep->sig_header, sig);
        break;
    case WH_SCHEME_NONE:
        s_hdr(&b, "X-Evbus-Event-Id: %s", id);
        break;
    }
    for (size_t i = 0; i < ep->n_headers; i++)
        s_hdr(&b, "%s", ep->headers[i]);
    if (b.err) {
        s_req_put(h, r);
        return NULL;
    }
    r->hdrs = b.nodes;
    atomic_fetch_add(&body->refs, 1);
    r->body = body;
    return r;
}

/* The event's body in the endpoint's format; NULL when out of memory. */
static s_body_t *s_render(s_hook_t *h, const evbus_event_t *ev, int data_only)
{
    const evbus_host_t *host = h->host;
    size_t len = 0;
    const char *text = data_only ? host->event_data_json(ev, &len)
                                 : host->event_json(ev, &len);
    if (!text) {
        if (!data_only)
            return NULL;
        text = "null"; /* an event without data */
        len = 4;
    }
    s_body_t *b = malloc(sizeof *b + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->len = len;
    memcpy(b->data, text, len);
    b->data[len] = '\0';
    return b;
}

static const char *s_event_attr(const void *ctx, const char *name)
{
    const void *const *c = ctx;
    const evbus_host_t *host = c[0];
    return host->event_attr(c[1], name);
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *att)
{
    s_hook_t *h = userdata;
    const evbus_host_t *host = h->host;
    s_free_finished(h);
    const char *type = host->event_attr(ev, "type");
    const char *id = host->event_attr(ev, "id");
    const void *ctx[2] = {host, ev};
    size_t n = wh_route_select(&h->routes, type ? type : "",
                               host->event_attr(ev, "project"),
                               host->event_attr(ev, "ticket"), s_event_attr,
                               ctx, h->select_buf);
    if (n == 0)
        return EVBUS_OK; /* no endpoint wants it: nothing to deliver */

    s_group_t *g = s_group_new(h, att, host->attempt_number(att), id);
    if (!g) {
        host->attempt_reason(att, "out of memory");
        return EVBUS_RETRY;
    }

    s_body_t *bodies[2] = {NULL, NULL}; /* cloudevents, data */
    s_req_t *batch[MAX_ENGINES];         /* per engine */
    s_req_t **tails[MAX_ENGINES];
    for (int k = 0; k < h->n_engines; k++) {
        batch[k] = NULL;
        tails[k] = &batch[k];
    }
    int queued = 0;
    pthread_mutex_lock(&h->lock);
    s_done_t *d = s_done_find(h, g->id);
    /* copy what we need: the engine may change the table meanwhile */
    uint64_t *had = NULL;
    if (d && (had = malloc(h->words * sizeof *had)))
        memcpy(had, d->bits, h->words * sizeof *had);
    pthread_mutex_unlock(&h->lock);

    for (size_t k = 0; k < n; k++) {
        size_t epi = h->select_buf[k];
        wh_endpoint_t *ep = &h->routes.eps[epi];
        if (had && s_bit(had, epi))
            continue; /* took it (or refused it for good) last time */
        if (atomic_load(&ep->gone)) {
            s_group_note(g, epi, WHFMT_PERMANENT, 0);
            s_reason_add(g, "%s: disabled: %s", ep->label, ep->gone_reason);
            continue;
        }
        int pending = atomic_load(&ep->pending);
        if (pending >= ep->max_pending &&
            host->now_ms() - atomic_load(&ep->last_progress_ms) > STALL_MS) {
            /* a stalled endpoint (nothing answered for a while, a full
             * queue) must not take every attempt the instance may hold:
             * its events wait for a retry instead. A busy endpoint that
             * answers keeps its queue, however long. */
            s_group_note(g, epi, WHFMT_RETRY, ep->timeout_ms);
            s_reason_add(g,
                         "%s: stalled: %d requests waiting or in flight "
                         "(max_queue_per_endpoint %d) and none answered for "
                         "over %d ms",
                         ep->label, pending, ep->max_pending, STALL_MS);
            continue;
        }
        s_body_t **b = &bodies[ep->data_only ? 1 : 0];
        if (!*b)
            *b = s_render(h, ev, ep->data_only);
        s_req_t *r = *b ? s_req_new(h, g, epi, *b) : NULL;
        if (!r) {
            s_group_note(g, epi, WHFMT_RETRY, 0);
            s_reason_add(g, "%s: out of memory preparing the request",
                         ep->label);
            continue;
        }
        if (atomic_fetch_add(&ep->pending, 1) == 0)
            atomic_store(&ep->last_progress_ms, host->now_ms());
        /* round robin over the engines that have a share of the
         * endpoint: all of them unless max_in_flight < engines (then the
         * first max_in_flight, one request each; s_engine_init) */
        int shares = ep->max_in_flight < h->n_engines ? ep->max_in_flight
                                                      : h->n_engines;
        int e = (int)(h->next_engine[epi]++ % (unsigned)shares);
        *tails[e] = r;
        tails[e] = &r->next;
        queued++;
    }
    free(had);
    s_body_release(bodies[0]);
    s_body_release(bodies[1]);

    if (!queued) {
        /* everything was decided here: finish now */
        pthread_mutex_lock(&h->lock);
        int rc = s_group_finish(h, g, 1);
        pthread_mutex_unlock(&h->lock);
        s_group_put(h, g);
        return rc;
    }
    /* set before any engine can see a request of the group */
    g->requests = g->pending = queued;
    s_submit(h, batch, tails);
    return EVBUS_PENDING;
}

/* --------------------------------------------------------- the options */

/* The members of one endpoint, under "endpoints[]" and "routes[]". */
static int s_declare_endpoint(evbus_schema_t *s, const evbus_host_t *host,
                              const char *list, int route)
{
    char p[64];
    int rc = 0;
#define D(member, type, def, flags, text)                                      \
    (snprintf(p, sizeof p, "%s[]%s", list, member),                            \
     host->declare_option(s, p, type, def, flags, text))
    rc |= D("", EVBUS_OPT_GROUP, NULL, 0, "an endpoint");
    rc |= D(".name", EVBUS_OPT_STRING, NULL, 0,
            "a name for logs (default: the URL without credentials)");
    rc |= D(".url", EVBUS_OPT_STRING, NULL, EVBUS_OPT_REQUIRED,
            "http:// or https:// URL to POST to");
    rc |= D(".topics", EVBUS_OPT_LIST, NULL, 0,
            "event type patterns this endpoint gets");
    rc |= D(".topics[]", EVBUS_OPT_STRING, NULL, 0, NULL);
    rc |= D(".filter", EVBUS_OPT_MAP, NULL, 0,
            "attribute = value: only events where every one holds");
    rc |= D(".headers", EVBUS_OPT_MAP, NULL, EVBUS_OPT_SECRET,
            "extra request headers (values may hold tokens: never shown)");
    rc |= D(".timeout", EVBUS_OPT_DURATION, NULL, 0,
            "whole request (default: the instance's timeout)");
    rc |= D(".connect_timeout", EVBUS_OPT_DURATION, NULL, 0,
            "connecting (default: the instance's connect_timeout)");
    rc |= D(".secret", EVBUS_OPT_STRING, NULL, EVBUS_OPT_SECRET,
            "signing secret; use ${ENV_VAR}");
    rc |= D(".secrets", EVBUS_OPT_LIST, NULL, EVBUS_OPT_SECRET,
            "two secrets during a rotation: both signatures are sent");
    rc |= D(".secrets[]", EVBUS_OPT_STRING, NULL, 0, NULL);
    rc |= D(".signature", EVBUS_OPT_STRING, NULL, 0,
            "standard | github | custom | none (default: the instance's)");
    rc |= D(".signature_header", EVBUS_OPT_STRING, NULL, 0,
            "custom scheme: the signature header");
    rc |= D(".timestamp_header", EVBUS_OPT_STRING, NULL, 0,
            "custom scheme: the timestamp header");
    rc |= D(".format", EVBUS_OPT_STRING, NULL, 0,
            "cloudevents | data (default: the instance's)");
    rc |= D(".max_in_flight", EVBUS_OPT_INT, NULL, 0,
            "requests in flight to this endpoint at most");
    rc |= D(".max_queue", EVBUS_OPT_INT, NULL, 0,
            "requests waiting or in flight for this endpoint at most");
    if (route) {
        rc |= D(".project", EVBUS_OPT_STRING, NULL, 0,
                "events of this project take this route");
        rc |= D(".ticket", EVBUS_OPT_STRING, NULL, 0,
                "events of this ticket take this route");
        rc |= D(".mode", EVBUS_OPT_STRING, NULL, EVBUS_OPT_REQUIRED,
                "add: also the less specific endpoints; replace: instead");
    }
#undef D
    return rc;
}

static int s_declare(evbus_schema_t *s, const evbus_host_t *host)
{
    int rc = 0;
    rc |= host->declare_option(s, "endpoints", EVBUS_OPT_LIST, NULL, 0,
                               "the global endpoints");
    rc |= s_declare_endpoint(s, host, "endpoints", 0);
    rc |= host->declare_option(s, "routes", EVBUS_OPT_LIST, NULL, 0,
                               "endpoints for one project or ticket");
    rc |= s_declare_endpoint(s, host, "routes", 1);
    rc |= host->declare_option(s, "format", EVBUS_OPT_STRING, "cloudevents",
                               0,
                               "cloudevents (the whole event, "
                               "application/cloudevents+json) or data (the "
                               "data alone, application/json)");
    rc |= host->declare_option(s, "signature", EVBUS_OPT_STRING, "standard",
                               0, "standard | github | custom | none");
    rc |= host->declare_option(s, "signature_header", EVBUS_OPT_STRING,
                               "X-Evbus-Signature", 0,
                               "custom scheme: the signature header");
    rc |= host->declare_option(s, "timestamp_header", EVBUS_OPT_STRING,
                               "X-Evbus-Timestamp", 0,
                               "custom scheme: the timestamp header");
    rc |= host->declare_option(s, "timeout", EVBUS_OPT_DURATION, "10s", 0,
                               "whole request, per endpoint unless set there");
    rc |= host->declare_option(s, "connect_timeout", EVBUS_OPT_DURATION,
                               "5s", 0, "connecting, per endpoint");
    rc |= host->declare_option(s, "max_in_flight_per_endpoint",
                               EVBUS_OPT_INT, "64", 0,
                               "requests in flight to one endpoint at most");
    rc |= host->declare_option(s, "max_queue_per_endpoint", EVBUS_OPT_INT,
                               "512", 0,
                               "requests waiting or in flight for one "
                               "endpoint; past it, while the endpoint "
                               "answers nothing, its events are retried "
                               "later (keep it below the instance's "
                               "max_in_flight so a stuck endpoint leaves "
                               "room for the others)");
    rc |= host->declare_option(s, "engines", EVBUS_OPT_INT, "2", 0,
                               "HTTP threads (1-16), each with its own "
                               "connections; an endpoint's requests are "
                               "spread over them");
    rc |= host->declare_option(s, "max_response", EVBUS_OPT_SIZE, "64K", 0,
                               "response body bytes read at most; past "
                               "it the response is cut short (the status "
                               "still decides) and the connection closed");
    rc |= host->declare_option(s, "ca_file", EVBUS_OPT_STRING, NULL, 0,
                               "CA bundle to verify servers with (default: "
                               "the system's)");
    rc |= host->declare_option(s, "insecure", EVBUS_OPT_BOOL, "false", 0,
                               "do NOT verify TLS certificates (logged "
                               "loudly)");
    return rc;
}

/* Read endpoint `setting` ("endpoints[2]") into ep. Errors go through
 * config_error (one per problem); returns the number of problems. */
static int s_load_endpoint(evbus_instance_t *inst, const evbus_host_t *host,
                           const char *setting, int route, wh_endpoint_t *ep)
{
    char p[256], why[256];
    int errors = 0;
#define PATH(member) (snprintf(p, sizeof p, "%s.%s", setting, member), p)
    ep->setting = strdup(setting);
    const char *url = host->config_string(inst, PATH("url"));
    if (!url || whfmt_url_check(url, why, sizeof why) < 0) {
        errors++;
        host->config_error(inst, PATH("url"), "%s",
                           url ? why : "an endpoint needs a url");
    }
    ep->url = strdup(url ? url : "");
    const char *name = host->config_string(inst, PATH("name"));
    if (name) {
        ep->label = strdup(name);
    } else {
        char label[512];
        whfmt_url_label(ep->url, label, sizeof label);
        ep->label = strdup(label);
    }

    /* topics and filters */
    int nt = host->config_count(inst, PATH("topics"));
    ep->sub.patterns = calloc(nt > 0 ? (size_t)nt : 1, sizeof(char *));
    for (int i = 0; i < nt; i++) {
        char tp[300];
        snprintf(tp, sizeof tp, "%s.topics[%d]", setting, i);
        const char *t = host->config_string(inst, tp);
        char err[200];
        if (!t || evb_topic_pattern_check(t, err, sizeof err) < 0) {
            errors++;
            host->config_error(inst, tp, "%s", t ? err : "not a string");
            continue;
        }
        ep->sub.patterns[ep->sub.n_patterns++] = strdup(t);
    }
    if (nt == 0) { /* the default, ["**"] */
        ep->sub.patterns[0] = strdup("**");
        ep->sub.n_patterns = 1;
    }
    int nf = host->config_count(inst, PATH("filter"));
    if (nf > 0)
        ep->sub.filters = calloc((size_t)nf, sizeof *ep->sub.filters);
    for (int i = 0; i < nf && ep->sub.filters; i++) {
        char fp[300];
        const char *attr = host->config_key(inst, PATH("filter"), i);
        snprintf(fp, sizeof fp, "%s.filter.%s", setting, attr ? attr : "");
        if (!attr || !evb_filter_attr_valid(attr)) {
            errors++;
            host->config_error(inst, fp,
                               "not an event attribute name (lower-case "
                               "letters and digits, not data)");
            continue;
        }
        evb_filter_t *f = &ep->sub.filters[ep->sub.n_filters++];
        f->attr = strdup(attr);
        f->values = calloc(1, sizeof *f->values);
        const char *v = host->config_string(inst, fp);
        if (f->values) {
            f->values[0] = strdup(v ? v : "");
            f->n_values = 1;
        }
    }

    /* format and signature */
    const char *format = host->config_string(inst, PATH("format"));
    if (!format)
        format = host->config_string(inst, "format");
    if (strcmp(format, "cloudevents") == 0 || strcmp(format, "data") == 0) {
        ep->data_only = strcmp(format, "data") == 0;
    } else {
        errors++;
        host->config_error(inst,
                           host->config_has(inst, PATH("format"))
                               ? PATH("format")
                               : "format",
                           "expected \"cloudevents\" or \"data\"");
    }
    const char *scheme = host->config_string(inst, PATH("signature"));
    int scheme_here = scheme != NULL;
    if (!scheme)
        scheme = host->config_string(inst, "signature");
    int scheme_ok = wh_scheme_parse(scheme, &ep->scheme) == 0;
    if (!scheme_ok) {
        errors++;
        host->config_error(inst, scheme_here ? PATH("signature") : "signature",
                           "expected \"standard\", \"github\", \"custom\" or "
                           "\"none\"");
    }
    const char *sh = host->config_string(inst, PATH("signature_header"));
    const char *th = host->config_string(inst, PATH("timestamp_header"));
    ep->sig_header =
        strdup(sh ? sh : host->config_string(inst, "signature_header"));
    ep->ts_header =
        strdup(th ? th : host->config_string(inst, "timestamp_header"));

    /* secrets: `secret`, or `secrets` (two during a rotation) */
    const char *secrets[WH_MAX_KEYS + 1];
    size_t n_secrets = 0;
    const char *one = host->config_string(inst, PATH("secret"));
    int many = host->config_count(inst, PATH("secrets"));
    if (one && many > 0) {
        errors++;
        host->config_error(inst, PATH("secrets"),
                           "set either secret or secrets, not both");
    } else if (one) {
        secrets[n_secrets++] = one;
    } else if (many > WH_MAX_KEYS) {
        errors++;
        host->config_error(inst, PATH("secrets"),
                           "at most %d secrets (the current one and the "
                           "previous one, during a rotation)",
                           WH_MAX_KEYS);
    } else {
        for (int i = 0; i < many; i++) {
            char sp[300];
            snprintf(sp, sizeof sp, "%s.secrets[%d]", setting, i);
            secrets[n_secrets++] = host->config_string(inst, sp);
        }
    }
    if (scheme_ok && ep->scheme != WH_SCHEME_NONE && n_secrets == 0) {
        errors++;
        host->config_error(inst, PATH("secret"),
                           "signature \"%s\" needs a secret (secret = "
                           "\"${ENV_VAR}\"), or set signature = \"none\"",
                           scheme);
    }
    if (ep->scheme == WH_SCHEME_GITHUB && n_secrets > 1) {
        errors++;
        host->config_error(inst, PATH("secrets"),
                           "GitHub-style signatures carry one signature: one "
                           "secret only");
    }
    for (size_t i = 0; ep->scheme != WH_SCHEME_NONE && i < n_secrets; i++) {
        char err[256];
        wh_key_t *k = secrets[i] ? wh_key_new(ep->scheme, secrets[i], err,
                                              sizeof err)
                                 : NULL;
        if (!k) {
            errors++;
            host->config_error(inst, one ? PATH("secret") : PATH("secrets"),
                               "%s", secrets[i] ? err : "not a string");
            continue;
        }
        ep->keys[ep->n_keys++] = k;
    }

    /* headers; the signature's own are not the user's to set */
    int nh = host->config_count(inst, PATH("headers"));
    if (nh > 0)
        ep->headers = calloc((size_t)nh, sizeof *ep->headers);
    for (int i = 0; i < nh && ep->headers; i++) {
        const char *k = host->config_key(inst, PATH("headers"), i);
        char hp[300];
        snprintf(hp, sizeof hp, "%s.headers.%s", setting, k ? k : "");
        static const char *const reserved[] = {
            "webhook-id",         "webhook-timestamp", "webhook-signature",
            "x-hub-signature-256", "content-length",   "host",
            "x-evbus-event-id",   "content-type"};
        int bad = !k || !*k || strpbrk(k, ": \t\r\n") != NULL;
        for (size_t j = 0; !bad && j < sizeof reserved / sizeof *reserved; j++)
            bad = strcasecmp(k, reserved[j]) == 0;
        if (!bad && ep->scheme == WH_SCHEME_CUSTOM)
            bad = strcasecmp(k, ep->sig_header) == 0 ||
                  strcasecmp(k, ep->ts_header) == 0;
        if (bad) {
            errors++;
            host->config_error(inst, hp,
                               "not a header this endpoint may set (the "
                               "signature, id, Host, Content-Type and "
                               "Content-Length headers are evbus's)");
            continue;
        }
        const char *v = host->config_string(inst, hp);
        if (v && strpbrk(v, "\r\n")) {
            errors++;
            host->config_error(inst, hp, "a header value cannot hold a "
                                         "line break");
            continue;
        }
        size_t len = strlen(k) + strlen(v ? v : "") + 3;
        char *line = malloc(len);
        if (line) {
            snprintf(line, len, "%s: %s", k, v ? v : "");
            ep->headers[ep->n_headers++] = line;
            ep->headers_len += strlen(line) + 1;
        }
    }

    /* limits */
    ep->timeout_ms = host->config_has(inst, PATH("timeout"))
                         ? host->config_int(inst, PATH("timeout"))
                         : host->config_int(inst, "timeout");
    ep->connect_timeout_ms =
        host->config_has(inst, PATH("connect_timeout"))
            ? host->config_int(inst, PATH("connect_timeout"))
            : host->config_int(inst, "connect_timeout");
    if (ep->timeout_ms < 1 || ep->connect_timeout_ms < 1) {
        errors++;
        host->config_error(inst, setting, "timeouts must be at least 1ms");
    }
    int64_t mif = host->config_has(inst, PATH("max_in_flight"))
                      ? host->config_int(inst, PATH("max_in_flight"))
                      : host->config_int(inst, "max_in_flight_per_endpoint");
    if (mif < 1 || mif > 100000) {
        errors++;
        host->config_error(inst,
                           host->config_has(inst, PATH("max_in_flight"))
                               ? PATH("max_in_flight")
                               : "max_in_flight_per_endpoint",
                           "expected 1 to 100000");
    }
    ep->max_in_flight = (int)mif;
    int64_t mq = host->config_has(inst, PATH("max_queue"))
                     ? host->config_int(inst, PATH("max_queue"))
                     : host->config_int(inst, "max_queue_per_endpoint");
    if (mq < 1 || mq > 1000000) {
        errors++;
        host->config_error(inst,
                           host->config_has(inst, PATH("max_queue"))
                               ? PATH("max_queue")
                               : "max_queue_per_endpoint",
                           "expected 1 to 1000000");
    }
    ep->max_pending = (int)(mq > mif ? mq : mif);

    /* route selector and mode */
    if (route) {
        const char *project = host->config_string(inst, PATH("project"));
        const char *ticket = host->config_string(inst, PATH("ticket"));
        const char *mode = host->config_string(inst, PATH("mode"));
        if (!project && !ticket) {
            errors++;
            host->config_error(inst, setting,
                               "a route needs a project, a ticket or both");
        }
        ep->project = project ? strdup(project) : NULL;
        ep->ticket = ticket ? strdup(ticket) : NULL;
        if (!mode || (strcmp(mode, "add") && strcmp(mode, "replace"))) {
            errors++;
            host->config_error(inst, PATH("mode"),
                               "expected \"add\" (with the less specific "
                               "endpoints) or \"replace\" (instead of them)");
        }
        ep->replace = mode && strcmp(mode, "replace") == 0;
    }
#undef PATH
    return errors;
}

static void s_routes_clear(wh_routes_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        wh_endpoint_clear(&r->eps[i]);
    free(r->eps);
    r->eps = NULL;
    r->n = 0;
}

/* Every endpoint and route, checked. 0, or -1 after reporting each
 * problem. */
static int s_load(evbus_instance_t *inst, const evbus_host_t *host,
                  wh_routes_t *r)
{
    int ne = host->config_count(inst, "endpoints");
    int nr = host->config_count(inst, "routes");
    ne = ne > 0 ? ne : 0;
    nr = nr > 0 ? nr : 0;
    memset(r, 0, sizeof *r);
    if (ne + nr == 0)
        return host->config_error(inst, "endpoints",
                                  "no endpoints: set endpoints (and/or "
                                  "routes)");
    r->eps = calloc((size_t)(ne + nr), sizeof *r->eps);
    if (!r->eps)
        return host->config_error(inst, "endpoints", "out of memory");
    int errors = 0;
    for (int i = 0; i < ne + nr; i++) {
        char setting[64];
        snprintf(setting, sizeof setting, "%s[%d]",
                 i < ne ? "endpoints" : "routes", i < ne ? i : i - ne);
        errors += s_load_endpoint(inst, host, setting, i >= ne,
                                  &r->eps[r->n++]);
    }
    int64_t engines = host->config_int(inst, "engines");
    if (engines < 1 || engines > MAX_ENGINES) {
        host->config_error(inst, "engines", "expected 1 to %d",
                           MAX_ENGINES);
        errors++;
    }
    const char *bad;
    char why[512];
    if (wh_routes_check(r, &bad, why, sizeof why) < 0) {
        char p[80];
        snprintf(p, sizeof p, "%s.mode", bad);
        host->config_error(inst, p, "%s", why);
        errors++;
    }
    if (errors) {
        s_routes_clear(r);
        return -1;
    }
    return 0;
}

static int s_validate(evbus_instance_t *inst, const evbus_host_t *host)
{
    wh_routes_t r;
    if (s_load(inst, host, &r) < 0)
        return -1;
    s_routes_clear(&r);
    return 0;
}

/* ------------------------------------------------------------ lifecycle */

static void s_stop_engines(s_hook_t *h);

/* An engine's resources (its thread has stopped, or never started). */
static void s_engine_free(s_engine_t *e)
{
    for (size_t i = 0; i < e->n_pool; i++)
        curl_easy_cleanup(e->pool[i]);
    free(e->pool);
    /* the multi handle closes the cached connections: before the socket
     * table and epoll set go */
    if (e->multi)
        curl_multi_cleanup(e->multi);
    if (e->share)
        curl_share_cleanup(e->share);
    if (e->epfd >= 0)
        close(e->epfd);
    if (e->wakefd >= 0)
        close(e->wakefd);
    free(e->fds);
    free(e->epq);
    pthread_mutex_destroy(&e->lock);
}

static void s_hook_free(s_hook_t *h)
{
    if (!h)
        return;
    for (int k = 0; k < h->n_engines; k++)
        s_engine_free(&h->engines[k]);
    free(h->engines);
    s_free_finished(h);
    while (h->spare_groups) {
        s_group_t *g = h->spare_groups;
        h->spare_groups = g->spare_next;
        free(g);
    }
    for (size_t i = 0; h->spare_reqs && i < h->routes.n; i++) {
        while (h->spare_reqs[i]) {
            s_req_t *r = h->spare_reqs[i];
            h->spare_reqs[i] = r->next;
            free(r);
        }
    }
    free(h->spare_reqs);
    free(h->n_spare_reqs);
    while (h->done_oldest)
        s_done_remove(h, h->done_oldest);
    free(h->done_hash);
    s_routes_clear(&h->routes);
    free(h->ca_file);
    free(h->select_buf);
    free(h->next_engine);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Set up engine k of n (its thread is started later); -1 after logging. */
static int s_engine_init(s_hook_t *h, int k, int n)
{
    const evbus_host_t *host = h->host;
    s_engine_t *e = &h->engines[k];
    e->h = h;
    e->epfd = e->wakefd = -1;
    e->timer_due_us = -1;
    e->now_us = s_mono_us();
    pthread_mutex_init(&e->lock, NULL);
    h->n_engines = k + 1; /* s_hook_free frees it from here on */
    e->queue_tail = &e->queue;
    e->epq = calloc(h->routes.n, sizeof *e->epq);
    e->multi = curl_multi_init();
    if (!e->epq || !e->multi) {
        host->log(h->inst, EVBUS_LOG_ERROR, "out of memory");
        return -1;
    }
    /* the engine's share of each endpoint's max_in_flight */
    for (size_t i = 0; i < h->routes.n; i++) {
        int max = h->routes.eps[i].max_in_flight;
        e->epq[i].limit = max / n + (k < max % n ? 1 : 0);
    }
    e->epfd = epoll_create1(EPOLL_CLOEXEC);
    e->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event wev = {.events = EPOLLIN};
    if (e->epfd < 0 || e->wakefd < 0 ||
        (wev.data.fd = e->wakefd,
         epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wakefd, &wev) < 0)) {
        host->log(h->inst, EVBUS_LOG_ERROR, "cannot set up epoll: %s",
                  strerror(errno));
        return -1;
    }
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt(e->multi, CURLMOPT_SOCKETDATA, e);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt(e->multi, CURLMOPT_TIMERDATA, e);
    /* keep connections: one per request in flight, per host */
    curl_multi_setopt(e->multi, CURLMOPT_MAXCONNECTS, 1024L);
    /* TLS sessions and DNS answers shared by the engine's handles (one
     * thread: no locking needed) */
    e->share = curl_share_init();
    if (e->share) {
        curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
        curl_share_setopt(e->share, CURLSHOPT_SHARE,
                          CURL_LOCK_DATA_SSL_SESSION);
    }
    return 0;
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    s_hook_t *h = calloc(1, sizeof *h);
    if (!h) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        return -1;
    }
    h->inst = inst;
    h->host = host;
    pthread_mutex_init(&h->lock, NULL);
    snprintf(h->user_agent, sizeof h->user_agent, "evbus/%s", EVBUS_VERSION);
    if (s_load(inst, host, &h->routes) < 0) {
        host->log(inst, EVBUS_LOG_ERROR,
                  "invalid options (evbusd --check-config says which)");
        s_hook_free(h);
        return -1;
    }
    h->words = (h->routes.n + 63) / 64;
    h->max_response = host->config_int(inst, "max_response");
    const char *ca = host->config_string(inst, "ca_file");
    h->ca_file = ca ? strdup(ca) : NULL;
    h->insecure = (int)host->config_int(inst, "insecure");
    int n = (int)host->config_int(inst, "engines");
    h->select_buf = calloc(h->routes.n, sizeof *h->select_buf);
    h->next_engine = calloc(h->routes.n, sizeof *h->next_engine);
    h->engines = calloc((size_t)n, sizeof *h->engines);
    h->spare_reqs = calloc(h->routes.n, sizeof *h->spare_reqs);
    h->n_spare_reqs = calloc(h->routes.n, sizeof *h->n_spare_reqs);
    if (!h->select_buf || !h->next_engine || !h->engines ||
        !h->spare_reqs || !h->n_spare_reqs) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        s_hook_free(h);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (s_engine_init(h, k, n) < 0) {
            s_hook_free(h);
            return -1;
        }
    }
    for (int k = 0; k < n; k++) {
        s_engine_t *e = &h->engines[k];
        int err = pthread_create(&e->thread, NULL, s_engine, e);
        if (err) {
            host->log(inst, EVBUS_LOG_ERROR,
                      "cannot start HTTP thread %d: %s", k + 1,
                      strerror(err));
            s_stop_engines(h);
            s_hook_free(h);
            return -1;
        }
        e->started = 1;
    }
    if (h->insecure)
        host->log(inst, EVBUS_LOG_WARN,
                  "insecure = true: TLS certificates are NOT verified; "
                  "anyone on the path can read and change these webhooks");
    size_t routes = 0;
    for (size_t i = 0; i < h->routes.n; i++)
        routes += h->routes.eps[i].project || h->routes.eps[i].ticket;
    host->log(inst, EVBUS_LOG_INFO, "%zu endpoint%s, %zu route%s, %d HTTP "
              "thread%s",
              h->routes.n - routes, h->routes.n - routes == 1 ? "" : "s",
              routes, routes == 1 ? "" : "s", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < h->routes.n; i++) {
        wh_endpoint_t *ep = &h->routes.eps[i];
        static const char *const schemes[] = {"none", "standard", "github",
                                              "custom"};
        host->log(inst, EVBUS_LOG_INFO,
                  "  %s: %s%s%s%s%s, signature %s (%zu secret%s), timeout "
                  "%lld ms, max_in_flight %d, max_queue %d",
                  ep->setting, ep->label, ep->project ? ", project " : "",
                  ep->project ? ep->project : "",
                  ep->ticket ? ", ticket " : "",
                  ep->ticket ? ep->ticket : "", schemes[ep->scheme],
                  ep->n_keys, ep->n_keys == 1 ? "" : "s",
                  (long long)ep->timeout_ms, ep->max_in_flight,
                  ep->max_pending);
    }
    *userdata = h;
    return 0;
}

/* Stop the engines that run: each cancels what it has waiting or in
 * flight (every attempt is reported RETRY, "evbusd is stopping"; the
 * journal keeps the event). */
static void s_stop_engines(s_hook_t *h)
{
    for (int k = 0; k < h->n_engines; k++) {
        s_engine_t *e = &h->engines[k];
        if (!e->started)
            continue;
        pthread_mutex_lock(&e->lock);
        e->stop = 1;
        pthread_mutex_unlock(&e->lock);
        s_wake(e);
    }
    for (int k = 0; k < h->n_engines; k++) {
        s_engine_t *e = &h->engines[k];
        if (e->started)
            pthread_join(e->thread, NULL);
        e->started = 0;
    }
}

static void s_shutdown(void *userdata)
{
    s_hook_t *h = userdata;
    if (!h)
        return;
    /* the worker has stopped */
    s_stop_engines(h);
    s_hook_free(h);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_1,
    .flags = EVBUS_PLUGIN_UNORDERED,
    .max_in_flight = MAX_IN_FLIGHT,
    .tick_interval_ms = 0,
    .reserved0 = 0,
    .name = "webhook",
    .version = EVBUS_VERSION,
    .description = "POSTs events to HTTP endpoints, signed (Standard "
                   "Webhooks, GitHub or custom), routed by project and "
                   "ticket",
    .declare = s_declare,
    .validate = s_validate,
    .init = s_init,
    .deliver = s_deliver,
    .tick = NULL,
    .reopen = NULL,
    .shutdown = s_shutdown,
};

EVBUS_EXPORT const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    if (EVBUS_ABI_MAJOR_OF(host_abi) != 1 ||
        EVBUS_ABI_MINOR_OF(host_abi) < 1)
        return NULL;
    return &s_plugin;
}
