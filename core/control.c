#include "control.h"

#include <errno.h>
#include <malloc.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "json.h"
#include "stats.h"
#include "topic.h"

static char *s_error(int *ok, const char *fmt, const char *arg)
{
    char msg[512];
    snprintf(msg, sizeof msg, fmt, arg ? arg : "");
    /* the request's bytes may not be UTF-8 (or were cut inside a
     * character): the reply stays valid JSON */
    if (!evb_utf8_valid(msg, strlen(msg)))
        for (char *c = msg; *c; c++)
            if ((unsigned char)*c >= 0x80)
                *c = '?';
    evb_buf_t b = EVB_BUF_INIT;
    evb_buf_puts(&b, "{\"error\":");
    evb_json_write_string(&b, msg, strlen(msg));
    evb_buf_putc(&b, '}');
    *ok = 0;
    return evb_buf_steal(&b, NULL);
}

static evb_instance_t *s_find(evb_router_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_instances; i++)
        if (strcmp(r->instances[i]->name, name) == 0)
            return r->instances[i];
    return NULL;
}

/* ------------------------------------------------------------- status */

/* The cursors of instances no longer configured, with what they have not
 * read (retention keeps it for them). */
static void s_orphans(evb_router_t *r, evb_buf_t *b, uint64_t written)
{
    evb_buf_puts(b, ",\"orphans\":[");
    char name[80];
    uint64_t c;
    for (size_t i = 0; r->cursors && evb_cursors_orphan(r->cursors, i, name,
                                                        sizeof name, &c) == 0;
         i++) {
        if (i)
            evb_buf_putc(b, ',');
        evb_buf_puts(b, "{\"name\":");
        evb_json_write_string(b, name, strlen(name));
        evb_buf_printf(b, ",\"cursor\":%llu,\"backlog\":%llu}",
                       (unsigned long long)c,
                       (unsigned long long)(written > c ? written - c : 0));
    }
    evb_buf_putc(b, ']');
}

static char *s_status(evb_router_t *r, const evb_config_t *cfg, int *ok)
{
    evb_buf_t b = EVB_BUF_INIT;
    evb_ingress_totals_t pub, ack;
    evb_stats_ingress_totals(EVB_INGRESS_PUB, &pub);
    evb_stats_ingress_totals(EVB_INGRESS_ACK, &ack);
    evb_buf_printf(&b,
                   "{\"version\":\"%s\",\"ingress\":{\"accepted\":%llu,"
                   "\"rejected\":%llu,\"duplicates\":%llu},"
                   "\"egress\":{\"published\":%llu,\"dropped\":%llu,"
                   "\"subscriptions\":%llu}",
                   EVBUS_VERSION,
                   (unsigned long long)(pub.accepted + ack.accepted),
                   (unsigned long long)(pub.rejected + ack.rejected),
                   (unsigned long long)(pub.duplicates + ack.duplicates),
                   (unsigned long long)evb_read(&evb_stats.egress_published),
                   (unsigned long long)evb_read(&evb_stats.egress_dropped),
                   (unsigned long long)evb_read(&evb_stats.egress_prefixes));
    uint64_t written = 0;
    if (r->journal) {
        char why[256];
        int healthy = evb_journal_healthy(r->journal, why, sizeof why);
        written = evb_journal_written_seq(r->journal);
        evb_buf_puts(&b, ",\"journal\":{\"dir\":");
        evb_json_write_string(&b, cfg->journal_dir, strlen(cfg->journal_dir));
        evb_buf_printf(
            &b,
            ",\"first_seq\":%llu,\"written_seq\":%llu,"
            "\"durable_seq\":%llu,\"bytes\":%lld,\"syncs\":%llu,"
            "\"lost_at_start\":%llu,\"healthy\":%s",
            (unsigned long long)evb_journal_first_seq(r->journal),
            (unsigned long long)written,
            (unsigned long long)evb_journal_durable_seq(r->journal),
            (long long)evb_journal_size(r->journal),
            (unsigned long long)(r->commit ? evb_commit_syncs(r->commit) : 0),
            (unsigned long long)evb_read(&evb_stats.journal_lost),
            healthy ? "true" : "false");
        if (!healthy) {
            evb_buf_puts(&b, ",\"problem\":");
            evb_json_write_string(&b, why, strlen(why));
        }
        evb_buf_putc(&b, '}');
    }
    /* memory: what the heap holds in use (glibc keeps freed memory for
     * reuse, so the resident size lags behind it), the resident size, and
     * the large structures: the duplicate index (mapped, outside the
     * heap) and the events the instances hold in their windows (in the
     * heap: 0.8 KiB each for an envelope of 300 bytes) */
    struct mallinfo2 mi = mallinfo2();
    long pages = 0, resident = 0;
    FILE *statm = fopen("/proc/self/statm", "r");
    if (statm) {
        if (fscanf(statm, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(statm);
    }
    uint64_t held = 0;
    for (size_t i = 0; i < r->n_instances; i++) {
        evb_instance_stats_t st;
        evb_instance_get_stats(r->instances[i], &st);
        held += st.queued + st.retrying + st.in_flight;
    }
    evb_buf_printf(&b,
                   ",\"memory\":{\"heap_in_use\":%zu,\"resident\":%ld,"
                   "\"dedupe_index\":{\"ids\":%zu,\"bytes\":%zu},"
                   "\"window_events\":%llu}",
                   mi.uordblks + mi.hblkhd, resident * sysconf(_SC_PAGESIZE),
                   r->dedupe ? evb_dedupe_count(r->dedupe) : 0,
                   r->dedupe ? evb_dedupe_bytes(r->dedupe) : 0,
                   (unsigned long long)held);
    evb_buf_puts(&b, ",\"instances\":[");
    for (size_t i = 0; i < r->n_instances; i++) {
        evb_instance_t *inst = r->instances[i];
        evb_instance_stats_t st;
        evb_instance_get_stats(inst, &st);
        if (i)
            evb_buf_putc(&b, ',');
        evb_buf_puts(&b, "{\"name\":");
        evb_json_write_string(&b, inst->name, strlen(inst->name));
        evb_buf_puts(&b, ",\"plugin\":");
        evb_json_write_string(&b, inst->plugin->desc.name,
                              strlen(inst->plugin->desc.name));
        evb_buf_printf(
            &b,
            ",\"live\":%s,\"disabled\":%s,\"cursor\":%llu,\"backlog\":%llu,"
            "\"queued\":%llu,\"in_flight\":%llu,\"retrying\":%llu,"
            "\"delivered\":%llu,\"retried\":%llu,\"dead_lettered\":%llu,"
            "\"fell_behind\":%llu,\"lost\":%llu,\"cursor_recovered\":%llu,"
            "\"slow_calls\":%llu,\"stuck\":%llu}",
            st.live ? "true" : "false",
            atomic_load(&inst->disabled) ? "true" : "false",
            (unsigned long long)st.cursor,
            (unsigned long long)(written > st.cursor ? written - st.cursor : 0),
            (unsigned long long)st.queued, (unsigned long long)st.in_flight,
            (unsigned long long)st.retrying, (unsigned long long)st.delivered,
            (unsigned long long)st.retried,
            (unsigned long long)st.dead_lettered,
            (unsigned long long)st.overflow, (unsigned long long)st.lost,
            (unsigned long long)st.cursor_recovered,
            (unsigned long long)st.slow_calls, (unsigned long long)st.stuck);
    }
    evb_buf_puts(&b, "]");
    s_orphans(r, &b, written);
    evb_buf_putc(&b, '}');
    *ok = 1;
    return evb_buf_steal(&b, NULL);
}

/* ------------------------------------------------------------ cursors */

static char *s_drop_cursor(evb_router_t *r, int argc, char **argv, int *ok)
{
    if (argc != 2)
        return s_error(ok, "usage: drop-cursor NAME", NULL);
    if (!r->cursors)
        return s_error(ok, "the broker runs without a journal", NULL);
    char err[256];
    uint64_t cursor;
    if (evb_cursors_drop(r->cursors, argv[1], &cursor, err, sizeof err) < 0)
        return s_error(ok, "%s", err);
    uint64_t written = evb_journal_written_seq(r->journal);
    evb_buf_t b = EVB_BUF_INIT;
    evb_buf_puts(&b, "{\"dropped\":");
    evb_json_write_string(&b, argv[1], strlen(argv[1]));
    evb_buf_printf(
        &b, ",\"cursor\":%llu,\"backlog\":%llu}", (unsigned long long)cursor,
        (unsigned long long)(written > cursor ? written - cursor : 0));
    *ok = 1;
    return evb_buf_steal(&b, NULL);
}

/* ------------------------------------------------------- dead letters */

typedef struct {
    evb_buf_t *out;
    long skip; /* lines to pass over before listing */
    int listed;
} s_list_t;

static int s_list_line(const char *line, size_t len, void *ctx)
{
    s_list_t *l = ctx;
    if (l->skip-- > 0)
        return 0;
    if (l->listed++)
        evb_buf_putc(l->out, ',');
    evb_buf_append(l->out, line, len);
    return 0;
}

static int s_count_line(const char *line, size_t len, void *ctx)
{
    (void)line;
    (void)len;
    (void)ctx;
    return 0;
}

static char *s_dead_letters(evb_router_t *r, int argc, char **argv, int *ok)
{
    if (argc < 2)
        return s_error(ok, "usage: dead-letters INSTANCE [LIMIT]", NULL);
    evb_instance_t *inst = s_find(r, argv[1]);
    if (!inst)
        return s_error(ok, "no instance named \"%s\"", argv[1]);
    long limit = 100;
    if (argc > 2) {
        char *end = NULL;
        errno = 0;
        limit = strtol(argv[2], &end, 10);
        if (!argv[2][0] || *end || errno || limit < 1 || limit > 1000000)
            return s_error(ok,
                           "LIMIT must be a number from 1 to 1000000, got "
                           "\"%s\"",
                           argv[2]);
    }
    int total = evb_deadletter_each(inst->dead, s_count_line, NULL);
    evb_buf_t b = EVB_BUF_INIT;
    evb_buf_printf(&b, "{\"instance\":");
    evb_json_write_string(&b, inst->name, strlen(inst->name));
    evb_buf_printf(&b, ",\"total\":%d,\"dead_letters\":[", total);
    s_list_t l = {&b, total > limit ? total - limit : 0, 0};
    evb_deadletter_each(inst->dead, s_list_line, &l);
    evb_buf_puts(&b, "]}");
    *ok = 1;
    return evb_buf_steal(&b, NULL);
}

/* ------------------------------------------------------------ replay */

typedef struct {
    evb_router_t *router;
    evb_instance_t *inst;
    int all;
    char **ids;
    int n_ids;
    char **types;
    int n_types;
    int replayed;
    char error[256];
} s_replay_t;

/* The string value of a top-level key of a dead-letter line's object,
 * and of the event's, into out. */
static int s_field(const msgpack_object *map, const char *key,
                   const msgpack_object **out)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return -1;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, key, n) == 0) {
            *out = &kv->val;
            return 0;
        }
    }
    return -1;
}

static int s_str_eq(const msgpack_object *o, const char *s)
{
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static int s_replay_line(const char *line, size_t len, void *ctx)
{
    s_replay_t *rp = ctx;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_zone *z = msgpack_zone_new(4096);
    int rc = 0;
    char err[128];
    msgpack_object root;
    const msgpack_object *event, *id, *type, *env;
    size_t off = 0;
    if (!z || evb_json_to_msgpack(line, len, &pk, 32, err, sizeof err) < 0 ||
        msgpack_unpack(sb.data, sb.size, &off, z, &root) !=
            MSGPACK_UNPACK_SUCCESS ||
        s_field(&root, "event", &event) < 0 || s_field(event, "id", &id) < 0 ||
        s_field(event, "type", &type) < 0 ||
        s_field(&root, "envelope", &env) < 0 ||
        env->type != MSGPACK_OBJECT_STR || type->type != MSGPACK_OBJECT_STR) {
        goto done; /* not a dead letter this version wrote: keep it */
    }
    int want = rp->all;
    for (int i = 0; !want && i < rp->n_ids; i++)
        want = s_str_eq(id, rp->ids[i]);
    char tname[256];
    size_t tl = type->via.str.size < 255 ? type->via.str.size : 255;
    memcpy(tname, type->via.str.ptr, tl);
    tname[tl] = '\0';
    for (int i = 0; !want && i < rp->n_types; i++)
        want = evb_topic_match(rp->types[i], tname);
    if (!want)
        goto done;
    evb_buf_t bytes = EVB_BUF_INIT;
    evb_event_t *ev = NULL;
    if (evb_base64_decode(&bytes, env->via.str.ptr, env->via.str.size) == 0)
        ev = evb_event_load(bytes.data, bytes.len, 0, evb_now_ms(), NULL, 0);
    evb_buf_free(&bytes);
    if (!ev)
        goto done; /* damaged: keep it for a human */
    if (evb_router_replay(rp->router, rp->inst, ev) < 0) {
        snprintf(rp->error, sizeof rp->error,
                 "the journal cannot take replays now");
        rc = -1;
    } else {
        rp->replayed++;
        rc = 1;
    }
    evb_event_release(ev);
done:
    if (z)
        msgpack_zone_free(z);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static char *s_replay(evb_router_t *r, int argc, char **argv, int *ok)
{
    if (argc < 3)
        return s_error(ok,
                       "usage: replay INSTANCE all | id=ID... | "
                       "type=PATTERN...",
                       NULL);
    evb_instance_t *inst = s_find(r, argv[1]);
    if (!inst)
        return s_error(ok, "no instance named \"%s\"", argv[1]);
    s_replay_t rp = {r, inst, 0, NULL, 0, NULL, 0, 0, ""};
    char *ids[64], *types[64];
    rp.ids = ids;
    rp.types = types;
    for (int i = 2; i < argc; i++) {
        char err[256];
        if (strcmp(argv[i], "all") == 0) {
            rp.all = 1;
        } else if (strncmp(argv[i], "id=", 3) == 0 && rp.n_ids < 64) {
            ids[rp.n_ids++] = argv[i] + 3;
        } else if (strncmp(argv[i], "type=", 5) == 0 && rp.n_types < 64) {
            if (evb_topic_pattern_check(argv[i] + 5, err, sizeof err) < 0)
                return s_error(ok, "%s", err);
            types[rp.n_types++] = argv[i] + 5;
        } else {
            return s_error(ok,
                           "unknown selector \"%s\" (all, id=ID, "
                           "type=PATTERN)",
                           argv[i]);
        }
    }
    int taken = evb_deadletter_take(inst->dead, s_replay_line, &rp);
    evb_router_kick(r, 1); /* write the replays and wake the worker */
    if (rp.error[0] && !rp.replayed)
        return s_error(ok, "%s", rp.error);
    evb_log(EVBUS_LOG_INFO, inst->name, "replayed %d dead letter%s",
            rp.replayed, rp.replayed == 1 ? "" : "s");
    evb_buf_t b = EVB_BUF_INIT;
    evb_buf_puts(&b, "{\"instance\":");
    evb_json_write_string(&b, inst->name, strlen(inst->name));
    evb_buf_printf(&b, ",\"replayed\":%d,\"remaining\":%d", rp.replayed,
                   evb_deadletter_each(inst->dead, s_count_line, NULL));
    if (taken < 0)
        evb_buf_puts(&b, ",\"warning\":\"the dead-letter file could not be "
                         "rewritten: replayed entries are still listed\"");
    if (rp.error[0]) {
        evb_buf_puts(&b, ",\"error\":");
        evb_json_write_string(&b, rp.error, strlen(rp.error));
    }
    evb_buf_putc(&b, '}');
    *ok = 1;
    return evb_buf_steal(&b, NULL);
}

char *evb_control_handle(evb_router_t *r, const evb_config_t *cfg, int argc,
                         char **argv, int *ok)
{
    if (argc < 1)
        return s_error(ok, "empty request", NULL);
    if (strcmp(argv[0], "status") == 0)
        return s_status(r, cfg, ok);
    if (strcmp(argv[0], "dead-letters") == 0)
        return s_dead_letters(r, argc, argv, ok);
    if (strcmp(argv[0], "replay") == 0)
        return s_replay(r, argc, argv, ok);
    if (strcmp(argv[0], "drop-cursor") == 0)
        return s_drop_cursor(r, argc, argv, ok);
    return s_error(ok,
                   "unknown command \"%s\" (status, dead-letters, replay, "
                   "drop-cursor)",
                   argv[0]);
}
