/*
 * libevbus: the C client of the evbus wire protocol (docs/protocol.md).
 *
 * Fire-and-forget goes out on an XPUB socket connected to the broker's
 * SUB, not on a PUB, for two reasons:
 *
 *  - With ZMQ_XPUB_NODROP set and every send made with ZMQ_DONTWAIT, a send
 *    at the high-water mark (SNDHWM, 10000 events) fails with EAGAIN
 *    instead of being discarded without a word, as a PUB does. So
 *    evbus_publish never blocks, and when it cannot queue an event it says
 *    so (EVBUS_E_DROPPED) and counts it (evbus_client_dropped).
 *  - An XPUB hands us its peers' subscriptions. ZeroMQ PUB/SUB discards
 *    whatever is sent before the subscriber's subscription has arrived
 *    (the "slow joiner"), and the broker's SUB subscribes only once the
 *    TCP connection is up. The first publish therefore waits up to 1 s for
 *    that subscription. An XPUB nobody has subscribed to discards what is
 *    sent, so while no broker has subscribed evbus_publish reports
 *    EVBUS_E_DROPPED instead of losing the event silently.
 *
 * Our side of the connection keeps its queue (and the broker's
 * subscription) across a broker restart, so events published while the
 * broker is briefly away wait in the queue, up to SNDHWM, and go out when
 * it is back. evbus_client_destroy lingers (evbus_client_set_linger,
 * default 2000 ms) so that what is queued is flushed before the process
 * exits.
 *
 * Acknowledged publishing uses a DEALER connected to the broker's ROUTER.
 * Replies come back in request order on one connection. A request that
 * timed out may still be answered later, so replies are matched to the
 * request by event id and stale ones are discarded. The client fills `id`
 * before the first attempt, so retrying the same evbus_msg_t after
 * EVBUS_E_TIMEOUT reuses the id, which is the idempotency key the broker's
 * plugins pass on. The DEALER queues requests only on a live connection
 * (ZMQ_IMMEDIATE): while the broker is away a request waits for it until
 * the timeout and is then dropped, instead of piling up with its retries
 * and reaching the broker as a burst of duplicates when it comes back. It
 * does not linger either: a request still queued at destroy was reported
 * as EVBUS_E_TIMEOUT, and the caller owns its fate.
 *
 * timeout_ms < 0 in evbus_publish_ack waits without a limit.
 * evbus_msg_set(m, attr, NULL) removes the attribute.
 */
#include <evbus/client.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "clock.h"
#include "event.h"
#include "json.h"

#define S_SNDHWM 10000        /* fire-and-forget events queued */
#define S_FIRST_WAIT_MS 1000  /* slow-joiner wait before the 1st publish */
#define S_DEFAULT_LINGER 2000 /* ms */
#define S_MAX_ATTRS 128       /* top-level attributes, type and data too */
#define S_MAX_DEPTH 32        /* nesting, the envelope map is level 1 */
#define S_NAME_MAX 20

/* ---------------------------------------------------------------- errors */

const char *evbus_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case EVBUS_E_INVALID:
        return "invalid argument or event";
    case EVBUS_E_REJECTED:
        return "the broker rejected the event";
    case EVBUS_E_TIMEOUT:
        return "no receipt from the broker within the timeout";
    case EVBUS_E_DROPPED:
        return "the event was not sent (high-water mark reached, or no "
               "broker subscribed)";
    case EVBUS_E_NOTCONN:
        return "that endpoint was not configured";
    case EVBUS_E_SYSTEM:
        return "ZeroMQ or memory failure";
    default:
        return "unknown error";
    }
}

/* ---------------------------------------------------------------- events */

typedef struct {
    char *name;
    char *value; /* text; for an integer or boolean extension its JSON */
    char *raw;   /* packed msgpack of a non-string extension, else NULL */
    size_t raw_len;
} s_attr_t;

struct evbus_msg {
    char type[256];
    s_attr_t *attrs; /* insertion order */
    size_t n_attrs;
    size_t cap;
    char *data; /* the packed msgpack value, or NULL */
    size_t data_len;
    char error[512];
};

static const char *const s_known[] = {
    "specversion",     "id",         "source", "type", "subject", "time",
    "datacontenttype", "dataschema", NULL};

static int s_is_known(const char *name)
{
    for (int i = 0; s_known[i]; i++)
        if (strcmp(s_known[i], name) == 0)
            return 1;
    return 0;
}

static int s_fail(evbus_msg_t *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int s_fail(evbus_msg_t *m, const char *fmt, ...)
{
    if (m) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(m->error, sizeof m->error, fmt, ap);
        va_end(ap);
    }
    return EVBUS_E_INVALID;
}

/* Copy at most 40 bytes of s for a message, unprintable bytes as '?'. */
static const char *s_shown(const char *s, size_t n, char out[48])
{
    size_t k = n < 40 ? n : 40;
    for (size_t i = 0; i < k; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c >= 0x7f ? '?' : (char)c;
    }
    strcpy(out + k, n > k ? "..." : "");
    return out;
}

static int s_name_valid(const char *name, size_t n)
{
    if (n < 1 || n > S_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') ||
              (name[i] >= '0' && name[i] <= '9')))
            return 0;
    return 1;
}

/* The rules the broker applies to a string attribute's value that do not
 * depend on its configuration (max_attr_len does, so it is left to it). */
static int s_check_string(evbus_msg_t *m, const char *name, const char *v,
                          size_t n)
{
    if (memchr(v, '\0', n))
        return s_fail(m, "attribute \"%s\" contains a NUL character", name);
    if (!evb_utf8_valid(v, n))
        return s_fail(m, "attribute \"%s\" is not valid UTF-8", name);
    if (strcmp(name, "id") == 0 && (n < 1 || n > EVB_ID_MAX))
        return s_fail(m, "attribute \"id\" must be 1 to %d bytes", EVB_ID_MAX);
    if (strcmp(name, "specversion") == 0 && strcmp(v, "1.0") != 0)
        return s_fail(m, "specversion must be \"1.0\"");
    if (strcmp(name, "source") == 0 && n == 0)
        return s_fail(m, "attribute \"source\" must not be empty");
    if (strcmp(name, "time") == 0 && !evb_time_valid(v, n))
        return s_fail(m, "attribute \"time\" is not an RFC 3339 timestamp "
                         "(e.g. 2026-11-22T10:00:00.123Z)");
    return 0;
}

static s_attr_t *s_find(const evbus_msg_t *m, const char *name)
{
    for (size_t i = 0; i < m->n_attrs; i++)
        if (strcmp(m->attrs[i].name, name) == 0)
            return &m->attrs[i];
    return NULL;
}

static void s_attr_free(s_attr_t *a)
{
    free(a->name);
    free(a->value);
    free(a->raw);
}

/* Set name to a string value (raw NULL) or to a packed non-string value
 * whose text is `value`. Name and value are already checked. */
static int s_put(evbus_msg_t *m, const char *name, const char *value,
                 const char *raw, size_t raw_len)
{
    char *v = strdup(value);
    char *r = NULL;
    if (raw && (r = malloc(raw_len)))
        memcpy(r, raw, raw_len);
    if (!v || (raw && !r)) {
        free(v);
        free(r);
        return s_fail(m, "out of memory");
    }
    s_attr_t *a = s_find(m, name);
    if (a) {
        free(a->value);
        free(a->raw);
        a->value = v;
        a->raw = r;
        a->raw_len = raw_len;
        return 0;
    }
    /* type and data take two of the broker's 128 attributes */
    if (m->n_attrs + 2 >= S_MAX_ATTRS) {
        free(v);
        free(r);
        return s_fail(m, "more than %d attributes (type and data included)",
                      S_MAX_ATTRS);
    }
    if (m->n_attrs == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        s_attr_t *t = realloc(m->attrs, cap * sizeof *t);
        if (!t) {
            free(v);
            free(r);
            return s_fail(m, "out of memory");
        }
        m->attrs = t;
        m->cap = cap;
    }
    char *nm = strdup(name);
    if (!nm) {
        free(v);
        free(r);
        return s_fail(m, "out of memory");
    }
    m->attrs[m->n_attrs++] = (s_attr_t){nm, v, r, raw_len};
    return 0;
}

evbus_msg_t *evbus_msg_new(const char *type)
{
    if (!type || !evb_type_valid(type, strlen(type))) {
        errno = EINVAL;
        return NULL;
    }
    evbus_msg_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    strcpy(m->type, type); /* at most 255 bytes: checked above */
    return m;
}

void evbus_msg_destroy(evbus_msg_t **self)
{
    if (!self || !*self)
        return;
    evbus_msg_t *m = *self;
    for (size_t i = 0; i < m->n_attrs; i++)
        s_attr_free(&m->attrs[i]);
    free(m->attrs);
    free(m->data);
    free(m);
    *self = NULL;
}

int evbus_msg_set(evbus_msg_t *m, const char *attr, const char *value)
{
    if (!m)
        return EVBUS_E_INVALID;
    m->error[0] = '\0';
    if (!attr)
        return s_fail(m, "no attribute name");
    char shown[48];
    size_t n = strlen(attr);
    if (strcmp(attr, "type") == 0)
        return s_fail(m, "the type is set by evbus_msg_new");
    if (strcmp(attr, "data") == 0)
        return s_fail(m, "data is set with evbus_msg_set_data_json");
    if (!s_name_valid(attr, n))
        return s_fail(m,
                      "attribute name \"%s\" is not 1-20 lower-case letters "
                      "or digits",
                      s_shown(attr, n, shown));
    if (!value) {
        s_attr_t *a = s_find(m, attr);
        if (a) {
            s_attr_free(a);
            memmove(a, a + 1,
                    (size_t)(m->attrs + m->n_attrs - (a + 1)) * sizeof *a);
            m->n_attrs--;
        }
        return 0;
    }
    int rc = s_check_string(m, attr, value, strlen(value));
    return rc ? rc : s_put(m, attr, value, NULL, 0);
}

int evbus_msg_set_data_json(evbus_msg_t *m, const char *json)
{
    if (!m)
        return EVBUS_E_INVALID;
    m->error[0] = '\0';
    if (!json)
        return s_fail(m, "no JSON given");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[256];
    /* data sits inside the envelope (level 1) */
    if (evb_json_to_msgpack(json, strlen(json), &pk, S_MAX_DEPTH - 1, err,
                            sizeof err) < 0) {
        msgpack_sbuffer_destroy(&sb);
        return s_fail(m, "data is not valid JSON: %s", err);
    }
    free(m->data);
    m->data_len = sb.size;
    m->data = msgpack_sbuffer_release(&sb);
    return 0;
}

const char *evbus_msg_get(const evbus_msg_t *m, const char *attr)
{
    if (!m || !attr)
        return NULL;
    if (strcmp(attr, "type") == 0)
        return m->type;
    const s_attr_t *a = s_find(m, attr);
    return a ? a->value : NULL;
}

const char *evbus_msg_error(const evbus_msg_t *m)
{
    return m ? m->error : "no event";
}

/* ------------------------------------------------- events from JSON */

static int s_pack_obj(const msgpack_object *o, char **out, size_t *len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *o) != 0) {
        msgpack_sbuffer_destroy(&sb);
        return -1;
    }
    *len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;
}

static int s_key_is(const msgpack_object *k, const char *lit)
{
    size_t n = strlen(lit);
    return k->via.str.size == n && memcmp(k->via.str.ptr, lit, n) == 0;
}

/* One member of the JSON object, other than type. */
static int s_from_json_member(evbus_msg_t *m, const msgpack_object *k,
                              const msgpack_object *v, int *have_data)
{
    char name[S_NAME_MAX + 1], shown[48];
    const char *kp = k->via.str.ptr;
    size_t kn = k->via.str.size;
    if (s_key_is(k, "data") || s_key_is(k, "data_base64")) {
        if ((*have_data)++)
            return s_fail(m, "both \"data\" and \"data_base64\" are given");
        if (s_key_is(k, "data")) {
            if (s_pack_obj(v, &m->data, &m->data_len) < 0)
                return s_fail(m, "out of memory");
            return 0;
        }
        if (v->type != MSGPACK_OBJECT_STR)
            return s_fail(m, "\"data_base64\" must be a string");
        size_t n = v->via.str.size;
        unsigned char *bin = malloc(n / 4 * 3 + 3);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        /* padding optional, and any number of '=' at the end ignored */
        const char *text = v->via.str.ptr;
        while (n > 0 && text[n - 1] == '=')
            n--;
        evb_buf_t out = EVB_BUF_FIXED((char *)bin, n / 4 * 3 + 3);
        long bn = bin && evb_base64_decode_as(&out, text, n,
                                              EVB_B64_UNPADDED) == 0
                      ? (long)out.len
                      : -1;
        int rc = 0;
        if (!bin)
            rc = s_fail(m, "out of memory");
        else if (bn < 0)
            rc = s_fail(m, "\"data_base64\" is not valid base64");
        else if (msgpack_pack_bin(&pk, (size_t)bn) ||
                 msgpack_pack_bin_body(&pk, bin, (size_t)bn))
            rc = s_fail(m, "out of memory");
        free(bin);
        if (rc) {
            msgpack_sbuffer_destroy(&sb);
            return rc;
        }
        m->data_len = sb.size;
        m->data = msgpack_sbuffer_release(&sb);
        return 0;
    }
    if (!s_name_valid(kp, kn))
        return s_fail(m,
                      "attribute name \"%s\" is not 1-20 lower-case letters "
                      "or digits",
                      s_shown(kp, kn, shown));
    memcpy(name, kp, kn);
    name[kn] = '\0';
    if (s_find(m, name))
        return s_fail(m, "duplicate attribute \"%s\"", name);
    int known = s_is_known(name);
    char text[32];
    switch (v->type) {
    case MSGPACK_OBJECT_NIL:
        return 0; /* null: the attribute is absent */
    case MSGPACK_OBJECT_STR: {
        char *val = malloc(v->via.str.size + 1);
        if (!val)
            return s_fail(m, "out of memory");
        memcpy(val, v->via.str.ptr, v->via.str.size);
        val[v->via.str.size] = '\0';
        int rc = s_check_string(m, name, val, v->via.str.size);
        if (!rc)
            rc = s_put(m, name, val, NULL, 0);
        free(val);
        return rc;
    }
    case MSGPACK_OBJECT_BOOLEAN:
        snprintf(text, sizeof text, "%s", v->via.boolean ? "true" : "false");
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(text, sizeof text, "%llu", (unsigned long long)v->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(text, sizeof text, "%lld", (long long)v->via.i64);
        break;
    default:
        return s_fail(m,
                      known ? "attribute \"%s\" must be a string"
                            : "extension attribute \"%s\" must be a string, "
                              "integer or boolean",
                      name);
    }
    if (known)
        return s_fail(m, "attribute \"%s\" must be a string", name);
    char *raw;
    size_t raw_len;
    if (s_pack_obj(v, &raw, &raw_len) < 0)
        return s_fail(m, "out of memory");
    int rc = s_put(m, name, text, raw, raw_len);
    free(raw);
    return rc;
}

evbus_msg_t *evbus_msg_from_json(const char *json, size_t len, char *err,
                                 size_t errsz)
{
    char why[512] = "";
    evbus_msg_t *m = NULL;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);

    if (!json) {
        snprintf(why, sizeof why, "no JSON given");
        goto done;
    }
    char jerr[256];
    if (evb_json_to_msgpack(json, len, &pk, S_MAX_DEPTH, jerr, sizeof jerr) <
        0) {
        snprintf(why, sizeof why, "not valid JSON: %s", jerr);
        goto done;
    }
    /* our own packing of parsed JSON: counts are honest, nesting <= 32 */
    size_t off = 0;
    if (msgpack_unpack_next(&u, sb.data, sb.size, &off) !=
        MSGPACK_UNPACK_SUCCESS) {
        snprintf(why, sizeof why, "out of memory");
        goto done;
    }
    const msgpack_object *root = &u.data;
    if (root->type != MSGPACK_OBJECT_MAP) {
        snprintf(why, sizeof why, "an event must be a JSON object");
        goto done;
    }
    const msgpack_object_map *map = &root->via.map;
    if (map->size > S_MAX_ATTRS) {
        snprintf(why, sizeof why, "the event has %u attributes, more than %d",
                 map->size, S_MAX_ATTRS);
        goto done;
    }
    const msgpack_object *type = NULL;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        /* keys of a parsed JSON object are always strings */
        if (k->type == MSGPACK_OBJECT_STR && s_key_is(k, "type")) {
            if (type) {
                snprintf(why, sizeof why, "duplicate attribute \"type\"");
                goto done;
            }
            type = &map->ptr[i].val;
        }
    }
    if (!type || type->type == MSGPACK_OBJECT_NIL) {
        snprintf(why, sizeof why, "the event has no \"type\"");
        goto done;
    }
    char shown[48];
    if (type->type != MSGPACK_OBJECT_STR ||
        !evb_type_valid(type->via.str.ptr, type->via.str.size)) {
        snprintf(why, sizeof why,
                 "\"type\" %s is not a valid event type (dot-separated "
                 "lower-case [a-z0-9_-] segments, at most 255 bytes)",
                 type->type == MSGPACK_OBJECT_STR
                     ? s_shown(type->via.str.ptr, type->via.str.size, shown)
                     : "(not a string)");
        goto done;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(why, sizeof why, "out of memory");
        goto done;
    }
    memcpy(m->type, type->via.str.ptr, type->via.str.size);
    int have_data = 0;
    for (uint32_t i = 0; i < map->size; i++) {
        const msgpack_object *k = &map->ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            snprintf(why, sizeof why, "attribute names must be strings");
            goto done;
        }
        if (s_key_is(k, "type"))
            continue;
        if (s_from_json_member(m, k, &map->ptr[i].val, &have_data) < 0) {
            snprintf(why, sizeof why, "%s", m->error);
            goto done;
        }
    }

done:
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    if (why[0]) {
        evbus_msg_destroy(&m);
        if (err && errsz)
            snprintf(err, errsz, "%s", why);
        errno = EINVAL;
        return NULL;
    }
    if (err && errsz)
        err[0] = '\0';
    return m;
}

/* ------------------------------------------------------------ packing */

static int s_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int s_pack_attr(msgpack_packer *pk, msgpack_sbuffer *sb,
                       const s_attr_t *a)
{
    if (s_pack_str(pk, a->name))
        return -1;
    if (a->raw)
        return msgpack_sbuffer_write(sb, a->raw, a->raw_len);
    return s_pack_str(pk, a->value);
}

/* The envelope: id first (so that even a rejection of a badly nested
 * event can name it), then type, the other attributes, and data. */
static int s_pack(const evbus_msg_t *m, msgpack_sbuffer *sb)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    const s_attr_t *id = s_find(m, "id");
    int rc = msgpack_pack_map(&pk, 1 + m->n_attrs + (m->data ? 1 : 0));
    if (id)
        rc = rc || s_pack_attr(&pk, sb, id);
    rc = rc || s_pack_str(&pk, "type") || s_pack_str(&pk, m->type);
    for (size_t i = 0; !rc && i < m->n_attrs; i++)
        if (&m->attrs[i] != id)
            rc = s_pack_attr(&pk, sb, &m->attrs[i]);
    if (m->data)
        rc = rc || s_pack_str(&pk, "data") ||
             msgpack_sbuffer_write(sb, m->data, m->data_len);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- client */

struct evbus_client {
    void *ctx;
    void *pub; /* XPUB, fire-and-forget */
    void *ack; /* DEALER, acknowledged */
    char *pub_endpoint;
    char *ack_endpoint;
    int linger_ms;
    int subscriptions; /* topics the broker(s) subscribed to, on pub */
    int waited;        /* the first publish has waited for them */
    uint64_t dropped;
    int outstanding; /* acknowledged requests not answered yet */
    char reason[1024];
};

static void s_reason(evbus_client_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_reason(evbus_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof c->reason, fmt, ap);
    va_end(ap);
}

static int s_setint(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

evbus_client_t *evbus_client_new(const char *pub_endpoint,
                                 const char *ack_endpoint)
{
    if (pub_endpoint && !*pub_endpoint)
        pub_endpoint = NULL;
    if (ack_endpoint && !*ack_endpoint)
        ack_endpoint = NULL;
    if (!pub_endpoint && !ack_endpoint) {
        errno = EINVAL;
        return NULL;
    }
    evbus_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->linger_ms = S_DEFAULT_LINGER;
    int saved;
    if (!(c->ctx = zmq_ctx_new()))
        goto fail;
    if (pub_endpoint) {
        if (!(c->pub_endpoint = strdup(pub_endpoint)) ||
            !(c->pub = zmq_socket(c->ctx, ZMQ_XPUB)) ||
            s_setint(c->pub, ZMQ_XPUB_NODROP, 1) ||
            s_setint(c->pub, ZMQ_SNDHWM, S_SNDHWM) ||
            s_setint(c->pub, ZMQ_LINGER, c->linger_ms) ||
            zmq_connect(c->pub, pub_endpoint))
            goto fail;
    }
    if (ack_endpoint) {
        if (!(c->ack_endpoint = strdup(ack_endpoint)) ||
            !(c->ack = zmq_socket(c->ctx, ZMQ_DEALER)) ||
            s_setint(c->ack, ZMQ_LINGER, 0) ||
            s_setint(c->ack, ZMQ_IMMEDIATE, 1) ||
            zmq_connect(c->ack, ack_endpoint))
            goto fail;
    }
    return c;
fail:
    saved = errno;
    c->linger_ms = 0;
    if (c->pub)
        s_setint(c->pub, ZMQ_LINGER, 0);
    evbus_client_destroy(&c);
    errno = saved;
    return NULL;
}

void evbus_client_destroy(evbus_client_t **self)
{
    if (!self || !*self)
        return;
    evbus_client_t *c = *self;
    if (c->pub)
        zmq_close(c->pub);
    if (c->ack)
        zmq_close(c->ack);
    /* blocks until the XPUB's queue is written out, or its linger ends */
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    free(c->pub_endpoint);
    free(c->ack_endpoint);
    free(c);
    *self = NULL;
}

void evbus_client_set_linger(evbus_client_t *c, int linger_ms)
{
    if (!c)
        return;
    c->linger_ms = linger_ms < 0 ? -1 : linger_ms;
    if (c->pub)
        s_setint(c->pub, ZMQ_LINGER, c->linger_ms);
}

uint64_t evbus_client_dropped(const evbus_client_t *c)
{
    return c ? c->dropped : 0;
}

const char *evbus_client_reason(const evbus_client_t *c)
{
    return c ? c->reason : "no client";
}

/* Give the event an id unless it has one, so a retry reuses it. */
static int s_ensure_id(evbus_msg_t *m)
{
    if (s_find(m, "id"))
        return 0;
    char id[37];
    evb_uuid7(id, evb_now_ms());
    return s_put(m, "id", id, NULL, 0);
}

/* Common start of both publish calls: check, fill id, pack. */
static int s_prepare(evbus_client_t *c, evbus_msg_t *m, void *sock,
                     const char *mode, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_init(sb);
    if (!c || !m)
        return EVBUS_E_INVALID;
    c->reason[0] = '\0';
    m->error[0] = '\0';
    if (!sock) {
        s_reason(c, "this client has no %s endpoint", mode);
        return EVBUS_E_NOTCONN;
    }
    if (s_ensure_id(m) < 0 || s_pack(m, sb) < 0) {
        s_reason(c, "out of memory");
        errno = ENOMEM;
        return EVBUS_E_SYSTEM;
    }
    return 0;
}

/* Read the subscription messages the XPUB has received (a first byte of 1
 * subscribes, 0 unsubscribes), waiting up to wait_ms for one. */
static int s_read_subscriptions(evbus_client_t *c, int wait_ms)
{
    int64_t deadline = evb_mono_ms() + wait_ms;
    for (;;) {
        unsigned char buf[8];
        int n = zmq_recv(c->pub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n >= 1) {
            if (buf[0] == 1)
                c->subscriptions++;
            else if (buf[0] == 0 && c->subscriptions > 0)
                c->subscriptions--;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        int64_t left = deadline - evb_mono_ms();
        if (c->subscriptions > 0 || left <= 0)
            return 0;
        zmq_pollitem_t it = {c->pub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)left) < 0 && errno != EINTR)
            return -1;
    }
}

int evbus_publish(evbus_client_t *c, evbus_msg_t *m)
{
    msgpack_sbuffer sb;
    int rc = s_prepare(c, m, c ? c->pub : NULL, "fire-and-forget", &sb);
    if (rc)
        goto done;
    int wait = c->waited ? 0 : S_FIRST_WAIT_MS;
    c->waited = 1;
    if (s_read_subscriptions(c, wait) < 0) {
        s_reason(c, "cannot read subscriptions: %s", zmq_strerror(errno));
        rc = EVBUS_E_SYSTEM;
        goto done;
    }
    if (c->subscriptions == 0) {
        c->dropped++;
        s_reason(c,
                 "event %s not sent: no broker has subscribed on %s yet "
                 "(is evbusd running and listening there?)",
                 evbus_msg_get(m, "id"), c->pub_endpoint);
        rc = EVBUS_E_DROPPED;
        goto done;
    }
    if (zmq_send(c->pub, m->type, strlen(m->type), ZMQ_SNDMORE | ZMQ_DONTWAIT) <
        0) {
        if (errno == EAGAIN) {
            c->dropped++;
            s_reason(c,
                     "event %s not sent: %d events are already queued for "
                     "%s (high-water mark)",
                     evbus_msg_get(m, "id"), S_SNDHWM, c->pub_endpoint);
            rc = EVBUS_E_DROPPED;
        } else {
            s_reason(c, "send failed: %s", zmq_strerror(errno));
            rc = EVBUS_E_SYSTEM;
        }
        goto done;
    }
    /* the rest of a message whose first frame was taken is taken too */
    if (zmq_send(c->pub, sb.data, sb.size, ZMQ_DONTWAIT) < 0) {
        s_reason(c, "send failed: %s", zmq_strerror(errno));
        rc = EVBUS_E_SYSTEM;
    }
done:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* One reply: [status][id] or [status][id][code][text]. */
typedef struct {
    int frames;
    char status[16];
    char id[EVB_ID_MAX + 1];
    char code[64];
    char text[768];
} s_reply_t;

static void s_copy_frame(char *dst, size_t size, zmq_msg_t *f)
{
    size_t n = zmq_msg_size(f);
    if (n >= size)
        n = size - 1;
    memcpy(dst, zmq_msg_data(f), n);
    dst[n] = '\0';
}

static int s_recv_reply(void *sock, s_reply_t *r)
{
    memset(r, 0, sizeof *r);
    char *dst[4] = {r->status, r->id, r->code, r->text};
    size_t size[4] = {sizeof r->status, sizeof r->id, sizeof r->code,
                      sizeof r->text};
    for (;;) {
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, r->frames ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return r->frames ? 0 : -1;
        }
        if (r->frames < 4)
            s_copy_frame(dst[r->frames], size[r->frames], &f);
        r->frames++;
        int more = zmq_msg_more(&f);
        zmq_msg_close(&f);
        if (!more)
            return 0;
    }
}

/* Send [type][envelope] on the DEALER, waiting for room until deadline. */
static int s_send_request(evbus_client_t *c, const evbus_msg_t *m,
                          const msgpack_sbuffer *sb, int64_t deadline,
                          int forever, int timeout_ms)
{
    for (;;) {
        if (zmq_send(c->ack, m->type, strlen(m->type),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
            break;
        if (errno != EAGAIN && errno != EINTR) {
            s_reason(c, "send failed: %s", zmq_strerror(errno));
            return EVBUS_E_SYSTEM;
        }
        int64_t left = deadline - evb_mono_ms();
        if (!forever && left <= 0) {
            s_reason(c,
                     "event %s: no connection to %s within %d ms (is evbusd "
                     "running and listening there?)",
                     evbus_msg_get(m, "id"), c->ack_endpoint, timeout_ms);
            return EVBUS_E_TIMEOUT;
        }
        zmq_pollitem_t it = {c->ack, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&it, 1, forever ? 1000 : (long)left);
    }
    if (zmq_send(c->ack, sb->data, sb->size, ZMQ_DONTWAIT) < 0) {
        s_reason(c, "send failed: %s", zmq_strerror(errno));
        return EVBUS_E_SYSTEM;
    }
    c->outstanding++;
    return 0;
}

int evbus_publish_ack(evbus_client_t *c, evbus_msg_t *m, int timeout_ms)
{
    msgpack_sbuffer sb;
    int rc = s_prepare(c, m, c ? c->ack : NULL, "acknowledged", &sb);
    if (rc)
        goto done;
    int forever = timeout_ms < 0;
    int64_t deadline = evb_mono_ms() + (forever ? 0 : timeout_ms);
    if ((rc = s_send_request(c, m, &sb, deadline, forever, timeout_ms)) != 0)
        goto done;
    const char *id = evbus_msg_get(m, "id");
    for (;;) {
        s_reply_t r;
        while (s_recv_reply(c->ack, &r) == 0) {
            int alone = c->outstanding == 1;
            if (c->outstanding > 0)
                c->outstanding--;
            int accepted = strcmp(r.status, "ACCEPTED") == 0;
            int rejected = strcmp(r.status, "REJECTED") == 0;
            int ours = strcmp(r.id, id) == 0 || (rejected && !r.id[0] && alone);
            if (!ours || !(accepted || rejected))
                continue; /* the late answer to an earlier request */
            /* replies come in request order: nothing older is pending */
            c->outstanding = 0;
            if (accepted) {
                rc = 0;
            } else {
                s_reason(c, "%s: %s", r.frames >= 3 ? r.code : "unknown",
                         r.frames >= 4 ? r.text : "(no reason given)");
                rc = EVBUS_E_REJECTED;
            }
            goto done;
        }
        if (errno != EAGAIN && errno != EINTR) {
            s_reason(c, "receive failed: %s", zmq_strerror(errno));
            rc = EVBUS_E_SYSTEM;
            goto done;
        }
        int64_t left = deadline - evb_mono_ms();
        if (!forever && left <= 0) {
            s_reason(c,
                     "event %s: no receipt from %s within %d ms (is evbusd "
                     "running? retrying with the same id is safe)",
                     id, c->ack_endpoint, timeout_ms);
            rc = EVBUS_E_TIMEOUT;
            goto done;
        }
        zmq_pollitem_t it = {c->ack, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, forever ? -1 : (long)left) < 0 && errno != EINTR) {
            s_reason(c, "poll failed: %s", zmq_strerror(errno));
            rc = EVBUS_E_SYSTEM;
            goto done;
        }
    }
done:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
