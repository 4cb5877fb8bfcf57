#include "commit.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* Sync anyway once this many records are written but not durable: the
 * journal keeps a copy of them in memory (to re-write them if a sync
 * fails), so this bounds that memory during fire-and-forget bursts. */
#define LAG_SYNC 32768

struct evb_commit {
    evb_journal_t *journal;
    int64_t interval_ms;
    int batch;
    int64_t idle_sync_ms;
    int fd; /* eventfd to the main thread */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    int acks_waiting;
    int64_t first_wait_mono; /* when acks started waiting, 0 = none */
    int stop;
    int paused;  /* repair in progress */
    int syncing; /* a sync is under way (outside the lock) */
    int idle;    /* waiting with nothing written: the next write must wake
                    it, so the sync_interval timer starts */
    atomic_uint_fast64_t syncs;
};

static void s_timed_wait(evb_commit_t *c, int64_t until_mono)
{
    struct timespec ts = {(time_t)(until_mono / 1000),
                          (long)(until_mono % 1000) * 1000000L};
    pthread_cond_timedwait(&c->cond, &c->lock, &ts);
}

static void s_notify(evb_commit_t *c)
{
    uint64_t one = 1;
    if (write(c->fd, &one, sizeof one) < 0 && errno != EAGAIN) {
        /* the counter is saturated: the main thread is woken anyway */
    }
}

static void *s_run(void *arg)
{
    evb_commit_t *c = arg;
    int64_t last_sync = evb_mono_ms();
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        int64_t now = evb_mono_ms();
        int pending = evb_journal_written_seq(c->journal) >
                      evb_journal_durable_seq(c->journal);
        /* nothing to do: sleep until the main thread, a repair or stop
         * signals (every change that needs a sync does); the minute is only
         * a safety net */
        int64_t until = now + 60000;
        int go = 0;
        if (c->paused) {
            /* repair has the journal */
        } else if (c->acks_waiting > 0 && pending) {
            if (!c->first_wait_mono)
                c->first_wait_mono = now;
            int64_t due = c->first_wait_mono + c->interval_ms;
            go = c->acks_waiting >= c->batch || now >= due;
            until = due;
        } else if (pending) {
            uint64_t lag = evb_journal_written_seq(c->journal) -
                           evb_journal_durable_seq(c->journal);
            go = lag >= LAG_SYNC ||
                 (c->idle_sync_ms > 0 && now - last_sync >= c->idle_sync_ms);
            if (c->idle_sync_ms > 0)
                until = last_sync + c->idle_sync_ms;
        }
        if (!go) {
            c->idle = !pending && !c->paused;
            s_timed_wait(c, until);
            c->idle = 0;
            continue;
        }
        c->syncing = 1;
        c->first_wait_mono = 0;
        c->acks_waiting = 0; /* the main thread says again what is left */
        pthread_mutex_unlock(&c->lock);
        evb_journal_sync(c->journal); /* failures: journal unhealthy */
        atomic_fetch_add(&c->syncs, 1);
        s_notify(c);
        pthread_mutex_lock(&c->lock);
        c->syncing = 0;
        last_sync = evb_mono_ms();
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

evb_commit_t *evb_commit_start(evb_journal_t *j, int64_t interval_ms,
                               int batch, int64_t idle_sync_ms)
{
    evb_commit_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->journal = j;
    c->interval_ms = interval_ms;
    c->batch = batch > 0 ? batch : 1;
    c->idle_sync_ms = idle_sync_ms;
    atomic_init(&c->syncs, 0);
    c->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&c->thread, NULL, s_run, c) != 0) {
        close(c->fd);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
    }
    return c;
}

void evb_commit_stop(evb_commit_t **self)
{
    if (!self || !*self)
        return;
    evb_commit_t *c = *self;
    pthread_mutex_lock(&c->lock);
    c->stop = 1;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    evb_journal_sync(c->journal); /* whatever came last */
    close(c->fd);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *self = NULL;
}

int evb_commit_fd(const evb_commit_t *c)
{
    return c->fd;
}

void evb_commit_ack_notify(evb_commit_t *c)
{
    uint64_t v;
    while (read(c->fd, &v, sizeof v) > 0)
        ;
}

void evb_commit_wanted(evb_commit_t *c, int acks_waiting)
{
    uint64_t lag = evb_journal_written_seq(c->journal) -
                   evb_journal_durable_seq(c->journal);
    pthread_mutex_lock(&c->lock);
    c->acks_waiting = acks_waiting;
    /* Wake the thread whenever there is something for it and it is not in
     * the middle of a sync (it looks again after one). Deciding from the
     * previous count instead loses wake-ups: the count the thread saw may
     * be stale, and the acks it counted answered by a sync since. */
    if ((acks_waiting > 0 || lag >= LAG_SYNC || (lag > 0 && c->idle)) &&
        !c->syncing)
        pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

int evb_commit_repair(evb_commit_t *c)
{
    pthread_mutex_lock(&c->lock);
    while (c->syncing)
        pthread_cond_wait(&c->cond, &c->lock);
    c->paused = 1;
    pthread_mutex_unlock(&c->lock);
    int rc = evb_journal_repair(c->journal);
    pthread_mutex_lock(&c->lock);
    c->paused = 0;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->lock);
    s_notify(c);
    return rc;
}

uint64_t evb_commit_syncs(const evb_commit_t *c)
{
    return atomic_load(&((evb_commit_t *)c)->syncs);
}
