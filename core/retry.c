#include "retry.h"

#include <time.h>
#include <unistd.h>

int64_t evb_retry_ceiling(const evb_retry_policy_t *p, int attempts_done)
{
    if (attempts_done < 1)
        attempts_done = 1;
    int64_t c = p->initial_ms;
    for (int i = 1; i < attempts_done && c < p->max_delay_ms; i++)
        c *= 2;
    return c < p->max_delay_ms ? c : p->max_delay_ms;
}

int64_t evb_retry_delay(const evb_retry_policy_t *p, int attempts_done,
                        uint64_t rnd)
{
    int64_t c = evb_retry_ceiling(p, attempts_done);
    if (c <= 0)
        return 0;
    return (int64_t)(rnd % ((uint64_t)c + 1));
}

evb_retry_verdict_t evb_retry_next(const evb_retry_policy_t *p,
                                   int attempts_done, int64_t accepted_ms,
                                   int64_t now_ms, int64_t hint_ms,
                                   uint64_t rnd, int64_t *due_ms)
{
    if (attempts_done >= p->max_attempts)
        return EVB_RETRY_GIVE_UP_ATTEMPTS;
    int64_t delay = hint_ms > 0 ? hint_ms : evb_retry_delay(p, attempts_done,
                                                            rnd);
    int64_t due = now_ms + delay;
    if (p->max_age_ms > 0 && due - accepted_ms > p->max_age_ms)
        return EVB_RETRY_GIVE_UP_AGE;
    *due_ms = due;
    return EVB_RETRY_AGAIN;
}

uint64_t evb_random(void)
{
    static _Thread_local uint64_t s_state;
    if (s_state == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s_state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
                  ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)&s_state;
        if (s_state == 0)
            s_state = 0x9e3779b97f4a7c15ull;
    }
    /* xorshift64* */
    s_state ^= s_state >> 12;
    s_state ^= s_state << 25;
    s_state ^= s_state >> 27;
    return s_state * 0x2545f4914f6cdd1dull;
}
