/* The Slack plugin's pure rules: what an answer from an incoming webhook
 * means, the pace of sending (a token bucket), and when a storm of one
 * event type is folded into a summary. No I/O; unit-tested in
 * tests/plugins/test_slackmsg.c. */
#ifndef SA_SLACKAPI_H
#define SA_SLACKAPI_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SA_OK,      /* 2xx */
    SA_RETRY,   /* no answer, 408, 429, 5xx */
    SA_DROP,    /* a refusal that will not change: dead letter */
    SA_DISABLE  /* no_service, channel_is_archived: dead letter, and the
                   webhook is unusable until the config changes */
} sa_outcome_t;

/* transport_ok: an HTTP status was read. body: what Slack answered ("ok",
 * or an error word such as "channel_not_found"). `word` gets Slack's word
 * for a refusal, or "HTTP <status>" when the body is not one of Slack's
 * words (cap >= 16). */
sa_outcome_t sa_classify(int transport_ok, long status, const char *body,
                         size_t len, char *word, size_t cap);

/* Sending pace: `rate` messages a second on average, bursts of `burst`. */
typedef struct sa_bucket {
    double rate, burst, tokens;
    int64_t last_ms;
    int64_t paused_until_ms; /* a 429's Retry-After */
} sa_bucket_t;

void sa_bucket_init(sa_bucket_t *b, double rate, double burst,
                    int64_t now_ms);
/* 0 when a message may go now (its token is taken), else the ms to wait. */
int64_t sa_bucket_take(sa_bucket_t *b, int64_t now_ms);
/* Slack answered 429: nothing goes before until_ms, then the bucket
 * starts empty. */
void sa_bucket_pause(sa_bucket_t *b, int64_t until_ms);

/* Coalescing: per event type, the first `threshold` events of a window go
 * out alone, later ones are held for one summary when the window ends. */
typedef struct sa_window {
    int64_t start_ms;
    int count; /* events in this window */
} sa_window_t;

typedef enum { SA_SEND, SA_HOLD } sa_fold_t;

/* An event of the window's type arrives at now_ms. threshold 0: never
 * hold. */
sa_fold_t sa_window_note(sa_window_t *w, int64_t now_ms, int threshold,
                         int64_t window_ms);
/* The window is over: held events are due for their summary. */
int sa_window_due(const sa_window_t *w, int64_t now_ms, int64_t window_ms);

#endif
