/* The host's retry policy, per instance: exponential backoff with full
 * jitter, bounded by a number of attempts and an age. Pure functions, so
 * the schedule is unit-tested without clocks or threads. */
#ifndef EVB_RETRY_H
#define EVB_RETRY_H

#include <stdint.h>

typedef struct evb_retry_policy {
    int max_attempts;     /* attempts in all, first included (>= 1) */
    int64_t initial_ms;   /* backoff cap before the 2nd attempt */
    int64_t max_delay_ms; /* backoff cap never grows past this */
    int64_t max_age_ms;   /* give up once the event is this old (0 = never) */
} evb_retry_policy_t;

#define EVB_RETRY_DEFAULT {10, 1000, 300000, 86400000}

/* The backoff ceiling after `attempts_done` failed attempts (>= 1):
 * min(max_delay, initial * 2^(attempts_done - 1)). */
int64_t evb_retry_ceiling(const evb_retry_policy_t *p, int attempts_done);

/* Full jitter: a delay uniform in [0, ceiling], drawn from `rnd`. */
int64_t evb_retry_delay(const evb_retry_policy_t *p, int attempts_done,
                        uint64_t rnd);

typedef enum evb_retry_verdict {
    EVB_RETRY_AGAIN = 0,   /* *due_ms says when */
    EVB_RETRY_GIVE_UP_ATTEMPTS, /* max_attempts reached */
    EVB_RETRY_GIVE_UP_AGE,      /* the next attempt would be past max_age */
} evb_retry_verdict_t;

/* After `attempts_done` failed attempts of an event accepted at
 * accepted_ms, decide at now_ms whether to try again and when. A plugin's
 * hint (hint_ms > 0, e.g. Retry-After) replaces the jittered backoff: the
 * next attempt is exactly hint_ms from now, however long that is. */
evb_retry_verdict_t evb_retry_next(const evb_retry_policy_t *p,
                                   int attempts_done, int64_t accepted_ms,
                                   int64_t now_ms, int64_t hint_ms,
                                   uint64_t rnd, int64_t *due_ms);

/* A fast thread-local random number (xorshift, seeded per thread). */
uint64_t evb_random(void);

#endif
