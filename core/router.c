#include "router.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "topic.h"

/* Journal the event (or give it a seq, without a journal). */
static int s_journal(evb_router_t *r, evb_event_t *ev, uint16_t kind,
                     const char *target, evb_reject_t *why, char *detail,
                     size_t dsize)
{
    if (!r->journal) {
        ev->seq = ++r->next_seq;
        return 0;
    }
    evb_record_t rec = {0};
    rec.accepted_ms = ev->accepted_ms;
    rec.kind = kind;
    rec.target = target;
    rec.target_len = target ? (uint16_t)strlen(target) : 0;
    rec.data = ev->msgpack;
    rec.data_len = (uint32_t)ev->msgpack_len;
    uint64_t seq = evb_journal_append(r->journal, &rec);
    if (!seq) {
        char reason[256];
        evb_journal_healthy(r->journal, reason, sizeof reason);
        *why = EVB_REJECT_UNAVAILABLE;
        snprintf(detail, dsize,
                 "the journal cannot be written (%s); nothing is accepted "
                 "until it is repaired",
                 reason[0] ? reason : "record too large");
        r->healthy = 0;
        return -1;
    }
    ev->seq = seq;
    r->appended++;
    return 0;
}

int evb_router_accept(evb_router_t *r, evb_event_t *ev, int acked,
                      uint64_t *orig_seq, evb_reject_t *why, char *detail,
                      size_t dsize)
{
    int claimed = 0;
    if (r->dedupe && acked) {
        uint64_t seq = evb_dedupe_claim(r->dedupe, ev->id, strlen(ev->id),
                                        ev->accepted_ms, &claimed);
        if (seq) {
            *orig_seq = seq;
            r->duplicates++;
            return EVB_DUPLICATE;
        }
    }
    if (s_journal(r, ev, EVB_REC_EVENT, NULL, why, detail, dsize) < 0) {
        if (claimed)
            evb_dedupe_unclaim(r->dedupe);
        return EVB_REFUSED;
    }
    if (claimed)
        evb_dedupe_settle(r->dedupe, ev->seq);
    for (size_t i = 0; i < r->n_instances; i++) {
        evb_instance_t *inst = r->instances[i];
        if (evb_sub_matches(&inst->conf->sub, ev))
            evb_instance_push(inst, ev);
        else
            evb_instance_pass(inst, ev->seq);
    }
    return EVB_ACCEPTED;
}

int evb_router_replay(evb_router_t *r, evb_instance_t *target,
                      evb_event_t *ev)
{
    evb_reject_t why;
    char detail[300];
    if (s_journal(r, ev, EVB_REC_REPLAY, target->name, &why, detail,
                  sizeof detail) < 0) {
        evb_log(EVBUS_LOG_ERROR, target->name, "cannot replay %s: %s",
                ev->id, detail);
        return -1;
    }
    for (size_t i = 0; i < r->n_instances; i++) {
        if (r->instances[i] == target)
            evb_instance_push(target, ev);
        else
            evb_instance_pass(r->instances[i], ev->seq);
    }
    return 0;
}

int evb_router_kick(evb_router_t *r, int force)
{
    /* hand the staged events over first: an instance that is behind must
     * know it skipped them before the journal flush below lets its worker
     * read them (else it could go live, then get them again) */
    for (size_t i = 0; i < r->n_instances; i++)
        evb_instance_flush(r->instances[i]);
    if (r->journal && r->appended) {
        r->appended = 0;
        if (evb_journal_flush(r->journal) < 0)
            r->healthy = 0;
    }
    int most = 0;
    for (size_t i = 0; i < r->n_instances; i++) {
        evb_instance_t *inst = r->instances[i];
        evb_instance_kick(inst, force);
        pthread_mutex_lock(&inst->lock);
        int held = (int)(inst->tail - inst->head);
        pthread_mutex_unlock(&inst->lock);
        if (held > most)
            most = held;
    }
    return most;
}

uint64_t evb_router_durable(evb_router_t *r)
{
    return r->journal ? evb_journal_durable_seq(r->journal) : UINT64_MAX;
}

int evb_router_healthy(evb_router_t *r, char *why, size_t whysz)
{
    if (!r->journal)
        return 1;
    int ok = evb_journal_healthy(r->journal, why, whysz);
    r->healthy = ok;
    return ok;
}

/* Retention's size or age limit deleted records a cursor had not reached:
 * say which (the instance's reader counts them when it gets there). */
static void s_forced_loss(const char *name, uint64_t cursor, uint64_t first)
{
    if (first && cursor + 1 < first)
        evb_log(EVBUS_LOG_WARN, name,
                "journal retention (max_size/max_age) deleted records "
                "%llu..%llu before this instance read them",
                (unsigned long long)(cursor + 1),
                (unsigned long long)(first - 1));
}

void evb_router_housekeeping(evb_router_t *r)
{
    if (!r->journal)
        return;
    int64_t now = evb_mono_ms();
    if (now < r->next_housekeeping_mono)
        return;
    r->next_housekeeping_mono = now + 1000;

    char why[256];
    if (!evb_journal_healthy(r->journal, why, sizeof why)) {
        if (r->commit && evb_commit_repair(r->commit) == 0) {
            r->healthy = 1;
            evb_info("journal repaired after \"%s\": accepting events again",
                     why);
        }
        return;
    }

    /* retention: what any instance, or the cursor of one no longer
     * configured (an orphan), still needs is kept */
    uint64_t keep_from = evb_journal_written_seq(r->journal) + 1;
    for (size_t i = 0; i < r->n_instances; i++) {
        uint64_t c = evb_instance_cursor(r->instances[i]) + 1;
        if (c < keep_from)
            keep_from = c;
    }
    uint64_t orphans = r->cursors ? evb_cursors_orphan_min(r->cursors) : UINT64_MAX;
    if (orphans != UINT64_MAX && orphans + 1 < keep_from)
        keep_from = orphans + 1;
    uint64_t forced = 0;
    int deleted = evb_journal_retain(r->journal, keep_from, r->max_bytes,
                                     r->max_age_ms, evb_now_ms(), &forced);
    if (deleted > 0 && forced) {
        uint64_t first = evb_journal_first_seq(r->journal);
        for (size_t i = 0; i < r->n_instances; i++)
            s_forced_loss(r->instances[i]->name,
                          evb_instance_cursor(r->instances[i]), first);
        char name[80];
        uint64_t c;
        for (size_t i = 0; r->cursors &&
                           evb_cursors_orphan(r->cursors, i, name, sizeof name,
                                              &c) == 0;
             i++)
            s_forced_loss(name, c, first);
    }
}

void evb_router_reopen(evb_router_t *r)
{
    for (size_t i = 0; i < r->n_instances; i++)
        evb_instance_request_reopen(r->instances[i]);
}
