/* The Slack plugin's pure rules. See slackapi.h. */
#include "slackapi.h"

#include <stdio.h>
#include <string.h>

/* Slack's answers that will not change by sending again (its incoming
 * webhook error words), and whether the webhook itself is gone. */
static const struct {
    const char *word;
    int disable;
} s_refusals[] = {
    {"invalid_payload", 0},
    {"no_text", 0},
    {"user_not_found", 0},
    {"action_prohibited", 0},
    {"invalid_token", 0},
    {"posting_to_general_channel_denied", 0},
    {"channel_not_found", 0},
    {"no_service", 1},
    {"channel_is_archived", 1},
};

sa_outcome_t sa_classify(int transport_ok, long status, const char *body,
                         size_t len, char *word, size_t cap)
{
    /* the body's first word, without white space around it */
    while (len && (*body == ' ' || *body == '\t' || *body == '\r' ||
                   *body == '\n')) {
        body++;
        len--;
    }
    size_t n = 0;
    while (n < len && ((body[n] >= 'a' && body[n] <= 'z') || body[n] == '_'))
        n++;
    snprintf(word, cap, "HTTP %ld", status);
    if (!transport_ok) {
        snprintf(word, cap, "no answer");
        return SA_RETRY;
    }
    if (status >= 200 && status < 300)
        return SA_OK;
    if (status == 408 || status == 429 || status >= 500)
        return SA_RETRY;
    for (size_t i = 0; i < sizeof s_refusals / sizeof s_refusals[0]; i++) {
        if (strlen(s_refusals[i].word) == n &&
            memcmp(s_refusals[i].word, body, n) == 0) {
            snprintf(word, cap, "%s", s_refusals[i].word);
            return s_refusals[i].disable ? SA_DISABLE : SA_DROP;
        }
    }
    return SA_DROP; /* 3xx, other 4xx: not Slack's word, still final */
}

void sa_bucket_init(sa_bucket_t *b, double rate, double burst,
                    int64_t now_ms)
{
    b->rate = rate > 0 ? rate : 1;
    b->burst = burst >= 1 ? burst : 1;
    b->tokens = b->burst;
    b->last_ms = now_ms;
    b->paused_until_ms = 0;
}

int64_t sa_bucket_take(sa_bucket_t *b, int64_t now_ms)
{
    if (now_ms < b->paused_until_ms)
        return b->paused_until_ms - now_ms;
    if (now_ms > b->last_ms) {
        b->tokens += (double)(now_ms - b->last_ms) * b->rate / 1000.0;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    int64_t wait = (int64_t)((1 - b->tokens) * 1000.0 / b->rate) + 1;
    return wait > 0 ? wait : 1;
}

void sa_bucket_pause(sa_bucket_t *b, int64_t until_ms)
{
    if (until_ms > b->paused_until_ms)
        b->paused_until_ms = until_ms;
    b->tokens = 0;
    b->last_ms = until_ms; /* refills from the end of the pause */
}

sa_fold_t sa_window_note(sa_window_t *w, int64_t now_ms, int threshold,
                         int64_t window_ms)
{
    if (threshold <= 0)
        return SA_SEND;
    if (w->count == 0 || now_ms - w->start_ms >= window_ms) {
        w->start_ms = now_ms;
        w->count = 0;
    }
    return ++w->count > threshold ? SA_HOLD : SA_SEND;
}

int sa_window_due(const sa_window_t *w, int64_t now_ms, int64_t window_ms)
{
    return w->count > 0 && now_ms - w->start_ms >= window_ms;
}
