#include "bus.h"

#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "clock.h"
#include "control.h"
#include "figures.h"
#include "log.h"
#include "stats.h"

/* The largest frame ZeroMQ reads for us (at least: twice
 * max_message_size); larger ones close the connection. */
#define EVB_ZMQ_FRAME_CAP ((int64_t)64 << 20)
/* Messages read from one socket before the others get a turn. */
#define BATCH 512
/* A worker this many events behind makes ingest yield its time slice. */
#define YIELD_BACKLOG 4096
/* Frames kept per message; more are read and counted, then refused. */
#define MAX_FRAMES 5

/* Distinct egress subscription prefixes tracked; past this, every event
 * is handed to ZeroMQ (which filters per subscriber itself). */
#define MAX_EGRESS_PREFIXES 4096

/* One distinct egress subscription prefix and how many subscribers hold
 * it (ZMQ_XPUB_VERBOSER reports every subscribe and unsubscribe, including
 * those of a subscriber that disconnects). */
typedef struct {
    char *prefix;
    size_t len;
    int count;
} s_egress_sub_t;

/* Replies to acknowledged publishers wait here, in the order the requests
 * came, until the journal is durable past their event (seq 0: a refusal,
 * ready at once, but still sent in order). */
#define REPLY_INLINE_ID                                                        \
    48 /* ids up to this long (UUIDs: 36) need no malloc                       \
        */

typedef struct s_reply {
    zmq_msg_t identity;
    int delimited;
    uint64_t seq;
    char *id;   /* inline_id, or malloc'd when longer */
    char *code; /* NULL: ACCEPTED */
    char *text;
    /* the counter this message went to when it arrived (accepted or
     * duplicates of its type), moved to `unavailable` if the journal
     * fails before the event is durable; NULL for a rejection */
    atomic_uint_fast64_t *counted;
    evb_type_stats_t *type;
    char inline_id[REPLY_INLINE_ID];
} s_reply_t;

struct evb_bus {
    const evb_config_t *cfg;
    evb_router_t *router;
    void *ctx;
    void *sub;         /* ingress.pub */
    void *router_sock; /* ingress.ack */
    void *xpub;        /* egress.pub */
    void *control;     /* control.endpoint (evbusctl) */
    int64_t clock_ms;  /* see s_accept_time */
    int clock_uses;
    s_reply_t *replies; /* ack replies waiting for durability (ring) */
    size_t reply_head, n_replies, cap_replies;
    s_egress_sub_t *subs; /* egress subscriptions, to skip events */
    size_t n_subs;        /* no one subscribed to */
    size_t cap_subs;
    int subs_untracked; /* one was not tracked: publish every event */
    evb_ratelimit_t rl_reject;
    evb_ratelimit_t rl_egress;
    evb_ratelimit_t rl_reply;
    int trim_due;         /* input arrived since the last s_trim */
    int64_t trimmed_mono; /* when s_trim last ran */
};

/* ------------------------------------------------------------ set-up */

static int s_setopt_int(void *sock, int opt, int value, const char *what)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof value) == 0)
        return 0;
    evb_error("cannot set %s: %s", what, zmq_strerror(errno));
    return -1;
}

static void *s_open(evb_bus_t *bus, int type, const char *endpoint,
                    const char *setting)
{
    void *s = zmq_socket(bus->ctx, type);
    if (!s) {
        evb_error("cannot create the %s socket: %s", setting,
                  zmq_strerror(errno));
        return NULL;
    }
    const evb_config_t *c = bus->cfg;
    /* Frames over the refusal limit are still read, and refused with a
     * reply, a count and a log line (a 10 MB id included); only frames
     * over EVB_ZMQ_FRAME_CAP (or twice the limit) are cut off by ZeroMQ
     * itself, which closes that connection without telling us, so a
     * hostile peer cannot make us buffer gigabytes. */
    int64_t cap = (int64_t)c->limits.max_message_size * 2 + 65536;
    if (cap < EVB_ZMQ_FRAME_CAP)
        cap = EVB_ZMQ_FRAME_CAP;
    int rc = 0;
    if (type == ZMQ_SUB || type == ZMQ_ROUTER) {
        rc |= zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &cap, sizeof cap);
        rc |= s_setopt_int(s, ZMQ_RCVHWM, c->ingress_rcvhwm, "rcvhwm");
    }
    if (type == ZMQ_SUB)
        rc |= zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
    if (type == ZMQ_ROUTER) {
        rc |= s_setopt_int(s, ZMQ_SNDHWM, c->ack_sndhwm, "ack_sndhwm");
        /* an unroutable reply (publisher gone) fails instead of vanishing,
         * so it can be counted */
        rc |= s_setopt_int(s, ZMQ_ROUTER_MANDATORY, 1, "router_mandatory");
    }
    if (type == ZMQ_XPUB) {
        rc |= s_setopt_int(s, ZMQ_SNDHWM, c->egress_sndhwm, "sndhwm");
        /* "skip" (default): at a subscriber's HWM the send fails (EAGAIN)
         * instead of ZeroMQ dropping silently, so every egress drop is
         * counted — but the event is then skipped for every subscriber of
         * its topic. "drop": ZeroMQ drops for the slow subscriber alone,
         * uncounted. */
        if (c->egress_skip_on_slow)
            rc |= s_setopt_int(s, ZMQ_XPUB_NODROP, 1, "xpub_nodrop");
        /* every (un)subscription reaches us, so an event no one has
         * subscribed to is not handed to ZeroMQ at all */
        rc |= s_setopt_int(s, ZMQ_XPUB_VERBOSER, 1, "xpub_verboser");
    }
    rc |= s_setopt_int(s, ZMQ_LINGER, type == ZMQ_ROUTER ? 1000 : 0, "linger");
    if (rc) {
        zmq_close(s);
        return NULL;
    }
    if (zmq_bind(s, endpoint) != 0) {
        evb_error("cannot bind %s to %s: %s", setting, endpoint,
                  zmq_strerror(errno));
        zmq_close(s);
        return NULL;
    }
    return s;
}

evb_bus_t *evb_bus_new(const evb_config_t *cfg, evb_router_t *router)
{
    evb_bus_t *bus = calloc(1, sizeof *bus);
    if (!bus)
        return NULL;
    bus->cfg = cfg;
    bus->router = router;
    evb_ratelimit_t rl = EVB_RATELIMIT_INIT(10000, 20);
    bus->rl_reject = rl;
    bus->rl_egress = rl;
    bus->rl_reply = rl;
    bus->ctx = zmq_ctx_new();
    if (!bus->ctx)
        goto fail;
    if (cfg->ingress_pub && *cfg->ingress_pub &&
        !(bus->sub = s_open(bus, ZMQ_SUB, cfg->ingress_pub, "ingress.pub")))
        goto fail;
    if (cfg->ingress_ack && *cfg->ingress_ack &&
        !(bus->router_sock =
              s_open(bus, ZMQ_ROUTER, cfg->ingress_ack, "ingress.ack")))
        goto fail;
    if (cfg->egress_pub && *cfg->egress_pub &&
        !(bus->xpub = s_open(bus, ZMQ_XPUB, cfg->egress_pub, "egress.pub")))
        goto fail;
    if (cfg->control_endpoint && *cfg->control_endpoint &&
        !(bus->control =
              s_open(bus, ZMQ_REP, cfg->control_endpoint, "control.endpoint")))
        goto fail;
    return bus;
fail:
    evb_bus_destroy(&bus);
    return NULL;
}

static size_t s_replies_flush(evb_bus_t *bus);
static void s_reply_free(s_reply_t *r);

void evb_bus_stop_ingress(evb_bus_t *bus)
{
    if (bus->sub)
        zmq_close(bus->sub);
    bus->sub = NULL;
    /* what was accepted is written and synced, and its publishers get
     * their replies, before the ROUTER closes (its linger sends them) */
    evb_router_kick(bus->router, 1);
    if (bus->router->journal && bus->n_replies) {
        evb_journal_sync(bus->router->journal);
        s_replies_flush(bus);
    }
    if (bus->router_sock)
        zmq_close(bus->router_sock);
    bus->router_sock = NULL;
    while (bus->n_replies) { /* left only if the journal failed */
        s_reply_free(&bus->replies[bus->reply_head]);
        bus->reply_head = (bus->reply_head + 1) % bus->cap_replies;
        bus->n_replies--;
    }
}

void evb_bus_destroy(evb_bus_t **self)
{
    if (!self || !*self)
        return;
    evb_bus_t *bus = *self;
    evb_bus_stop_ingress(bus);
    if (bus->xpub)
        zmq_close(bus->xpub);
    if (bus->control)
        zmq_close(bus->control);
    if (bus->ctx)
        zmq_ctx_term(bus->ctx);
    for (size_t i = 0; i < bus->n_subs; i++)
        free(bus->subs[i].prefix);
    free(bus->subs);
    free(bus->replies);
    free(bus);
    *self = NULL;
}

/* ------------------------------------------------------------ egress */

static void s_release_frame(void *data, void *hint)
{
    (void)data;
    evb_event_release(hint);
}

/* 1 when some egress subscriber's prefix matches the type. */
static int s_egress_wanted(const evb_bus_t *bus, const char *type, size_t tlen)
{
    if (bus->subs_untracked)
        return 1;
    for (size_t i = 0; i < bus->n_subs; i++) {
        const s_egress_sub_t *sub = &bus->subs[i];
        if (sub->count > 0 && sub->len <= tlen &&
            memcmp(sub->prefix, type, sub->len) == 0)
            return 1;
    }
    return 0;
}

static void s_egress(evb_bus_t *bus, evb_event_t *ev)
{
    if (!bus->xpub)
        return;
    size_t tlen = strlen(ev->type);
    if (!s_egress_wanted(bus, ev->type, tlen))
        return;
    if (zmq_send(bus->xpub, ev->type, tlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        if (errno == EAGAIN) {
            evb_count(&evb_stats.egress_dropped);
            evb_log_limited(&bus->rl_egress, EVBUS_LOG_WARN, NULL,
                            "egress: a subscriber of %s is at its high-water "
                            "mark (egress.sndhwm); event %s was not "
                            "re-published",
                            ev->type, ev->id);
        } else {
            evb_log_limited(&bus->rl_egress, EVBUS_LOG_ERROR, NULL,
                            "egress: send failed: %s", zmq_strerror(errno));
        }
        return;
    }
    /* the envelope goes out without a copy; ZeroMQ releases our reference
     * once it has written it */
    zmq_msg_t m;
    evb_event_retain(ev);
    zmq_msg_init_data(&m, (void *)ev->msgpack, ev->msgpack_len, s_release_frame,
                      ev);
    if (zmq_msg_send(&m, bus->xpub, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&m);
    else
        evb_count(&evb_stats.egress_published);
}

/* A subscription that cannot be tracked (table full, out of memory):
 * from now on every event goes to ZeroMQ, so none is lost to the skip
 * test; ZeroMQ still sends each subscriber only what it subscribed to. */
static void s_untracked(evb_bus_t *bus, const char *why)
{
    if (!bus->subs_untracked)
        evb_log(EVBUS_LOG_WARN, NULL,
                "egress: %s; every event is handed to ZeroMQ from now on", why);
    bus->subs_untracked = 1;
}

static void s_track_subscription(evb_bus_t *bus, const char *msg, size_t n)
{
    if (n < 1 || (msg[0] != 0 && msg[0] != 1))
        return;
    int delta = msg[0] == 1 ? 1 : -1;
    const char *prefix = msg + 1;
    size_t len = n - 1;
    evb_debug("egress: a subscriber %s \"%.*s\"",
              delta > 0 ? "subscribed to" : "unsubscribed from", (int)len,
              prefix);
    for (size_t i = 0; i < bus->n_subs; i++) {
        s_egress_sub_t *sub = &bus->subs[i];
        if (sub->len == len && memcmp(sub->prefix, prefix, len) == 0) {
            sub->count += delta;
            if (sub->count <= 0) { /* the last holder left: forget it */
                free(sub->prefix);
                *sub = bus->subs[--bus->n_subs];
                atomic_store(&evb_stats.egress_prefixes, bus->n_subs);
            }
            return;
        }
    }
    if (delta < 0 || bus->subs_untracked)
        return;
    if (bus->n_subs >= MAX_EGRESS_PREFIXES) {
        s_untracked(bus, "more than 4096 distinct subscription prefixes");
        return;
    }
    if (bus->n_subs == bus->cap_subs) {
        size_t cap = bus->cap_subs ? 2 * bus->cap_subs : 16;
        s_egress_sub_t *subs = realloc(bus->subs, cap * sizeof *subs);
        if (!subs) {
            s_untracked(bus, "out of memory tracking subscriptions");
            return;
        }
        bus->subs = subs;
        bus->cap_subs = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) {
        s_untracked(bus, "out of memory tracking subscriptions");
        return;
    }
    memcpy(copy, prefix, len);
    copy[len] = '\0';
    bus->subs[bus->n_subs++] = (s_egress_sub_t){copy, len, 1};
    atomic_store(&evb_stats.egress_prefixes, bus->n_subs);
}

static void s_drain_subscriptions(evb_bus_t *bus)
{
    char buf[512];
    for (int i = 0; i < BATCH; i++) {
        int n = zmq_recv(bus->xpub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        /* a prefix longer than the buffer is tracked by its first bytes,
         * which only makes the skip test match more often */
        s_track_subscription(bus, buf,
                             (size_t)n < sizeof buf ? (size_t)n : sizeof buf);
    }
}

/* ----------------------------------------------------------- ingress */

typedef struct {
    zmq_msg_t parts[MAX_FRAMES];
    int n;     /* kept */
    int total; /* received */
} s_message_t;

/* Read one whole multipart message; 0, or -1 when none is waiting. */
static int s_recv(void *sock, s_message_t *m)
{
    m->n = m->total = 0;
    for (;;) {
        zmq_msg_t scratch;
        zmq_msg_t *dst = m->n < MAX_FRAMES ? &m->parts[m->n] : &scratch;
        zmq_msg_init(dst);
        int flags = m->total == 0 ? ZMQ_DONTWAIT : 0;
        if (zmq_msg_recv(dst, sock, flags) < 0) {
            zmq_msg_close(dst);
            if (m->total == 0)
                return -1;
            break; /* cannot happen: parts arrive together */
        }
        m->total++;
        int more = zmq_msg_more(dst);
        if (dst == &scratch)
            zmq_msg_close(dst);
        else
            m->n++;
        if (!more)
            break;
    }
    return 0;
}

static void s_close(s_message_t *m)
{
    for (int i = 0; i < m->n; i++)
        zmq_msg_close(&m->parts[i]);
}

/* Decode and accept; returns the event (owned by the caller) or NULL with
 * *why and detail filled. */
/* The acceptance time: the clock is read once every few events, not for
 * each one (a batch of them arrives within a fraction of a millisecond). */
static int64_t s_accept_time(evb_bus_t *bus)
{
    if (bus->clock_uses-- <= 0) {
        bus->clock_ms = evb_now_ms();
        bus->clock_uses = 15;
    }
    return bus->clock_ms;
}

/* Decode and accept. Returns EVB_ACCEPTED with *out the event (the
 * caller's), EVB_DUPLICATE with *orig_seq, or EVB_REFUSED with *why and
 * detail filled (counted and logged here). */
static int s_accept(evb_bus_t *bus, evb_ingress_t in, zmq_msg_t *type,
                    zmq_msg_t *env, evb_event_t **out, uint64_t *orig_seq,
                    evb_reject_t *why, char *detail, size_t dsize,
                    evb_type_stats_t **counted)
{
    *out = NULL;
    evb_type_stats_t *ts =
        evb_stats_type(zmq_msg_data(type), zmq_msg_size(type));
    *counted = ts;
    evb_count(&ts->received[in]);
    evb_event_t *ev = evb_event_decode(zmq_msg_data(type), zmq_msg_size(type),
                                       zmq_msg_data(env), zmq_msg_size(env),
                                       &bus->cfg->limits, s_accept_time(bus),
                                       why, detail, dsize);
    int rc = ev ? evb_router_accept(bus->router, ev, in == EVB_INGRESS_ACK,
                                    orig_seq, why, detail, dsize)
                : EVB_REFUSED;
    if (rc == EVB_REFUSED) {
        evb_event_release(ev);
        evb_count(&ts->rejected[in][*why]);
        evb_log_limited(&bus->rl_reject, EVBUS_LOG_WARN, NULL,
                        "ingress %s: rejected an event: %s: %s",
                        evb_ingress_name(in), evb_reject_code(*why), detail);
        return rc;
    }
    if (rc == EVB_DUPLICATE) {
        evb_count(&ts->duplicates[in]);
        evb_event_release(ev);
        return rc;
    }
    evb_count(&ts->accepted[in]);
    *out = ev;
    return rc;
}

static void s_refuse_frames(evb_bus_t *bus, evb_ingress_t in, int got,
                            evb_reject_t *why, char *detail, size_t dsize)
{
    *why = EVB_REJECT_FRAMES;
    snprintf(detail, dsize, "expected 2 frames [type][envelope], got %d", got);
    evb_type_stats_t *ts = evb_stats_type(NULL, 0);
    evb_count(&ts->received[in]);
    evb_count(&ts->rejected[in][*why]);
    evb_log_limited(&bus->rl_reject, EVBUS_LOG_WARN, NULL,
                    "ingress %s: rejected a message: bad_frames: %s",
                    evb_ingress_name(in), detail);
}

static void s_serve_sub(evb_bus_t *bus)
{
    s_message_t m;
    char detail[512];
    for (int i = 0; i < BATCH && bus->sub; i++) {
        if (s_recv(bus->sub, &m) < 0)
            return;
        evb_reject_t why;
        if (m.total != 2) {
            s_refuse_frames(bus, EVB_INGRESS_PUB, m.total, &why, detail,
                            sizeof detail);
        } else {
            evb_event_t *ev;
            uint64_t orig;
            evb_type_stats_t *ts;
            if (s_accept(bus, EVB_INGRESS_PUB, &m.parts[0], &m.parts[1], &ev,
                         &orig, &why, detail, sizeof detail,
                         &ts) == EVB_ACCEPTED) {
                s_egress(bus, ev);
                evb_event_release(ev);
            }
        }
        s_close(&m);
    }
}

/* ------------------------------------------------------ ack replies */

static void s_reply_queue(evb_bus_t *bus, zmq_msg_t *identity, int delimited,
                          uint64_t seq, const char *id, const char *code,
                          const char *text, evb_type_stats_t *type,
                          atomic_uint_fast64_t *counted)
{
    if (bus->n_replies == bus->cap_replies) {
        size_t cap = bus->cap_replies ? bus->cap_replies * 2 : 256;
        s_reply_t *q = malloc(cap * sizeof *q);
        if (!q) {
            evb_count(&evb_stats.ack_replies_lost);
            evb_error("out of memory queueing an ack reply for %s", id);
            return;
        }
        for (size_t i = 0; i < bus->n_replies; i++) {
            s_reply_t *from =
                &bus->replies[(bus->reply_head + i) % bus->cap_replies];
            q[i] = *from;
            /* a zmq_msg_t is moved, never copied; an inline id moves too */
            zmq_msg_init(&q[i].identity);
            zmq_msg_move(&q[i].identity, &from->identity);
            zmq_msg_close(&from->identity);
            if (from->id == from->inline_id)
                q[i].id = q[i].inline_id;
        }
        free(bus->replies);
        bus->replies = q;
        bus->cap_replies = cap;
        bus->reply_head = 0;
    }
    s_reply_t *r =
        &bus->replies[(bus->reply_head + bus->n_replies) % bus->cap_replies];
    zmq_msg_init(&r->identity);
    zmq_msg_move(&r->identity, identity);
    r->delimited = delimited;
    r->seq = seq;
    if (!id)
        id = "";
    size_t idlen = strlen(id);
    r->id = idlen < REPLY_INLINE_ID ? r->inline_id : malloc(idlen + 1);
    if (r->id)
        memcpy(r->id, id, idlen + 1);
    r->code = code ? strdup(code) : NULL;
    r->text = text ? strdup(text) : NULL;
    r->type = type;
    r->counted = counted;
    bus->n_replies++;
}

/* Send one reply: [identity]([""])[status][id]([code][text]). */
static void s_reply_send(evb_bus_t *bus, s_reply_t *r)
{
    void *s = bus->router_sock;
    const char *status = r->code ? "REJECTED" : "ACCEPTED";
    const char *parts[4] = {status, r->id ? r->id : "", r->code, r->text};
    int nparts = r->code ? 4 : 2;
    if (!s ||
        zmq_send(s, zmq_msg_data(&r->identity), zmq_msg_size(&r->identity),
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        evb_count(&evb_stats.ack_replies_lost);
        evb_log_limited(&bus->rl_reply, EVBUS_LOG_WARN, NULL,
                        "ingress ack: could not reply %s for event %s: %s",
                        status, r->id && *r->id ? r->id : "(no id)",
                        !s ? "the socket is closed"
                        : errno == EHOSTUNREACH
                            ? "the publisher has disconnected"
                            : zmq_strerror(errno));
        return;
    }
    if (r->delimited)
        zmq_send(s, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    for (int i = 0; i < nparts; i++)
        zmq_send(s, parts[i], strlen(parts[i]),
                 (i + 1 < nparts ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT);
}

static void s_reply_free(s_reply_t *r)
{
    zmq_msg_close(&r->identity);
    if (r->id != r->inline_id)
        free(r->id);
    free(r->code);
    free(r->text);
}

/* Send every reply whose event is durable, in order; when the journal has
 * failed, refuse the ones that are not (never acknowledge an event that is
 * not on disk). Returns how many still wait. */
static size_t s_replies_flush(evb_bus_t *bus)
{
    uint64_t durable = evb_router_durable(bus->router);
    char why[256] = "";
    int healthy = -1; /* not asked yet */
    while (bus->n_replies) {
        s_reply_t *r = &bus->replies[bus->reply_head];
        if (r->seq > durable) {
            if (healthy < 0)
                healthy = evb_router_healthy(bus->router, why, sizeof why);
            if (healthy)
                break;
            char text[400];
            snprintf(text, sizeof text,
                     "the journal failed before this event was on disk (%s); "
                     "nothing is accepted until it is repaired",
                     why);
            free(r->code);
            free(r->text);
            r->code = strdup(evb_reject_code(EVB_REJECT_UNAVAILABLE));
            r->text = strdup(text);
            /* counted as accepted when it arrived: it was not */
            if (r->counted) {
                atomic_fetch_sub_explicit(r->counted, 1, memory_order_relaxed);
                evb_count(&r->type->rejected[EVB_INGRESS_ACK]
                                            [EVB_REJECT_UNAVAILABLE]);
                r->counted = NULL;
            }
        }
        s_reply_send(bus, r);
        s_reply_free(r);
        bus->reply_head = (bus->reply_head + 1) % bus->cap_replies;
        bus->n_replies--;
    }
    return bus->n_replies;
}

static void s_serve_router(evb_bus_t *bus)
{
    s_message_t m;
    char detail[512];
    for (int i = 0; i < BATCH && bus->router_sock; i++) {
        if (s_recv(bus->router_sock, &m) < 0)
            return;
        /* [identity], then [type][envelope] from a DEALER, or an empty
         * delimiter and those two from a REQ. Two frames are a DEALER's,
         * even when the first is empty (an empty type: bad_type); any
         * other count starting with an empty frame is a REQ's and is
         * answered with the delimiter (docs/protocol.md). */
        int delimited =
            m.n >= 2 && zmq_msg_size(&m.parts[1]) == 0 && m.total != 3;
        int first = delimited ? 2 : 1;
        int payload = m.total - first;
        evb_reject_t why;
        if (payload != 2) {
            s_refuse_frames(bus, EVB_INGRESS_ACK, payload, &why, detail,
                            sizeof detail);
            s_reply_queue(bus, &m.parts[0], delimited, 0, "",
                          evb_reject_code(why), detail, NULL, NULL);
            s_close(&m);
            continue;
        }
        zmq_msg_t *type = &m.parts[first], *env = &m.parts[first + 1];
        evb_event_t *ev;
        uint64_t orig = 0;
        evb_type_stats_t *ts;
        int rc = s_accept(bus, EVB_INGRESS_ACK, type, env, &ev, &orig, &why,
                          detail, sizeof detail, &ts);
        if (rc == EVB_ACCEPTED) {
            s_reply_queue(bus, &m.parts[0], delimited, ev->seq, ev->id, NULL,
                          NULL, ts, &ts->accepted[EVB_INGRESS_ACK]);
            s_egress(bus, ev);
            evb_event_release(ev);
        } else {
            char id[EVB_ID_MAX + 1];
            if (evb_envelope_id(zmq_msg_data(env), zmq_msg_size(env), id) < 0)
                id[0] = '\0';
            if (rc == EVB_DUPLICATE) /* the original acceptance */
                s_reply_queue(bus, &m.parts[0], delimited, orig, id, NULL, NULL,
                              ts, &ts->duplicates[EVB_INGRESS_ACK]);
            else
                s_reply_queue(bus, &m.parts[0], delimited, 0, id,
                              evb_reject_code(why), detail, NULL, NULL);
        }
        s_close(&m);
    }
}

/* ------------------------------------------------------------ main loop */

/* One evbusctl request: string frames in, ["OK"|"ERROR"][JSON] out. */
static void s_serve_control(evb_bus_t *bus)
{
    s_message_t m;
    if (s_recv(bus->control, &m) < 0)
        return;
    char *argv[MAX_FRAMES];
    int argc = 0;
    for (int i = 0; i < m.n; i++) {
        size_t n = zmq_msg_size(&m.parts[i]);
        argv[argc] = malloc(n + 1);
        if (!argv[argc])
            break;
        memcpy(argv[argc], zmq_msg_data(&m.parts[i]), n);
        argv[argc++][n] = '\0';
    }
    s_close(&m);
    int ok = 0;
    char *reply = evb_control_handle(bus->router, bus->cfg, argc, argv, &ok);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    const char *status = ok ? "OK" : "ERROR";
    zmq_send(bus->control, status, strlen(status), ZMQ_SNDMORE);
    zmq_send(bus->control, reply ? reply : "{}", reply ? strlen(reply) : 2, 0);
    free(reply);
}

/* After a batch: write the journal, wake the workers, send the replies
 * that are durable and ask the group commit for the rest. */
static void s_end_batch(evb_bus_t *bus, int idle)
{
    /* once per batch, not per event */
    if (evb_router_kick(bus->router, idle) > YIELD_BACKLOG)
        /* A worker is behind. On a machine short of CPU, give it the
         * rest of this time slice: ingest keeps reading (nothing
         * waits for the worker), but a backlog that keeps growing
         * costs every event more (cold caches, fresh pages). When a
         * core is free, sched_yield returns at once. */
        sched_yield();
    size_t waiting = bus->n_replies ? s_replies_flush(bus) : 0;
    evb_event_reclaim(); /* what workers and egress released meanwhile */
    if (bus->router->commit)
        evb_commit_wanted(bus->router->commit, (int)waiting);
}

/* Ingest has been quiet for a poll's timeout: after input, hand freed
 * memory back. ZeroMQ's I/O thread allocates incoming messages in its own
 * malloc arena and ingest frees them; after a burst that memory is free
 * but lies below blocks still in use, where no trim threshold (evbusd.c)
 * reaches it, so it stays resident (after 1,000,000 fire-and-forget
 * events at full speed: 95 MiB resident, 27 MiB after malloc_trim). At
 * most once a second; the next burst faults its pages in again. */
static void s_trim(evb_bus_t *bus)
{
    int64_t now = evb_mono_ms();
    if (!bus->trim_due || now - bus->trimmed_mono < 1000)
        return;
    bus->trim_due = 0;
    bus->trimmed_mono = now;
    malloc_trim(0);
}

int evb_bus_run(evb_bus_t *bus, int signal_fd)
{
    evb_commit_t *commit = bus->router->commit;
    for (;;) {
        zmq_pollitem_t items[6];
        int n = 0, i_sig, i_sub = -1, i_router = -1, i_xpub = -1, i_commit = -1,
            i_control = -1;
        items[i_sig = n++] = (zmq_pollitem_t){NULL, signal_fd, ZMQ_POLLIN, 0};
        if (bus->sub)
            items[i_sub = n++] = (zmq_pollitem_t){bus->sub, 0, ZMQ_POLLIN, 0};
        if (bus->router_sock)
            items[i_router = n++] =
                (zmq_pollitem_t){bus->router_sock, 0, ZMQ_POLLIN, 0};
        if (bus->xpub)
            items[i_xpub = n++] = (zmq_pollitem_t){bus->xpub, 0, ZMQ_POLLIN, 0};
        if (commit)
            items[i_commit = n++] =
                (zmq_pollitem_t){NULL, evb_commit_fd(commit), ZMQ_POLLIN, 0};
        if (bus->control)
            items[i_control = n++] =
                (zmq_pollitem_t){bus->control, 0, ZMQ_POLLIN, 0};
        /* anything ready? if not, wake the workers of what was queued
         * before sleeping (under load they are woken by batch size) */
        int rc = zmq_poll(items, n, 0);
        if (rc == 0) {
            s_end_batch(bus, 1);
            /* wake at least every 250 ms for housekeeping */
            rc = zmq_poll(items, n, 250);
            if (rc == 0)
                s_trim(bus);
        }
        bus->clock_uses = 0; /* a fresh reading after every wait */
        if (rc < 0 && errno != EINTR) {
            evb_error("poll failed: %s", zmq_strerror(errno));
            return SIGTERM;
        }
        if (items[i_sig].revents & ZMQ_POLLIN) {
            unsigned char sig;
            while (read(signal_fd, &sig, 1) == 1) {
                if (sig == SIGHUP) {
                    evb_info("SIGHUP: asking every instance to reopen its "
                             "files");
                    evb_router_reopen(bus->router);
                } else {
                    return sig;
                }
            }
        }
        if (i_commit >= 0 && (items[i_commit].revents & ZMQ_POLLIN)) {
            evb_commit_ack_notify(commit);
            /* a sync finished: answer now, not after the next batch */
            if (bus->n_replies)
                s_replies_flush(bus);
        }
        if (i_sub >= 0 && (items[i_sub].revents & ZMQ_POLLIN)) {
            s_serve_sub(bus);
            bus->trim_due = 1;
        }
        if (i_router >= 0 && (items[i_router].revents & ZMQ_POLLIN)) {
            s_serve_router(bus);
            bus->trim_due = 1;
        }
        s_end_batch(bus, 0);
        if (i_xpub >= 0 && (items[i_xpub].revents & ZMQ_POLLIN))
            s_drain_subscriptions(bus);
        if (i_control >= 0 && (items[i_control].revents & ZMQ_POLLIN))
            s_serve_control(bus);
        evb_router_housekeeping(bus->router);
        evb_figures_beat();
    }
}
