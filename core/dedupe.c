/* An open-addressing hash table (linear probing, backward-shift deletion)
 * over a FIFO of entries in acceptance order: expiry and eviction always
 * remove the oldest entry, which is the FIFO's head. */
#include "dedupe.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id;
    uint32_t len;
    uint64_t hash;
    uint64_t seq;
    int64_t accepted_ms;
} s_entry_t;

struct evb_dedupe {
    int64_t window_ms;
    size_t max_ids;
    s_entry_t *fifo; /* ring of max_ids entries */
    size_t head, count;
    uint32_t *slots; /* 0 = empty, else FIFO position + 1 (mod ring) */
    size_t n_slots;  /* power of two, >= 2 * max_ids */
    uint64_t evicted;
};

static uint64_t s_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

evb_dedupe_t *evb_dedupe_new(int64_t window_ms, size_t max_ids)
{
    if (max_ids < 1)
        max_ids = 1;
    if (max_ids > (1u << 30))
        max_ids = 1u << 30;
    evb_dedupe_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->window_ms = window_ms;
    d->max_ids = max_ids;
    d->n_slots = 16;
    while (d->n_slots < 2 * max_ids)
        d->n_slots *= 2;
    d->fifo = calloc(max_ids, sizeof *d->fifo);
    d->slots = calloc(d->n_slots, sizeof *d->slots);
    if (!d->fifo || !d->slots) {
        evb_dedupe_destroy(&d);
        return NULL;
    }
    return d;
}

void evb_dedupe_destroy(evb_dedupe_t **self)
{
    if (!self || !*self)
        return;
    evb_dedupe_t *d = *self;
    for (size_t i = 0; d->fifo && i < d->count; i++)
        free(d->fifo[(d->head + i) % d->max_ids].id);
    free(d->fifo);
    free(d->slots);
    free(d);
    *self = NULL;
}

/* The table slot holding the id; n_slots when absent. */
static size_t s_lookup(const evb_dedupe_t *d, const char *id, size_t len,
                       uint64_t h)
{
    size_t mask = d->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint32_t v = d->slots[i];
        if (!v)
            return d->n_slots;
        const s_entry_t *e = &d->fifo[v - 1];
        if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
            return i;
    }
}

/* Remove the FIFO's oldest entry from the table and the FIFO. */
static void s_drop_oldest(evb_dedupe_t *d)
{
    s_entry_t *e = &d->fifo[d->head];
    size_t mask = d->n_slots - 1;
    size_t i = s_lookup(d, e->id, e->len, e->hash);
    if (i < d->n_slots) {
        /* backward-shift deletion keeps probe chains unbroken */
        d->slots[i] = 0;
        for (size_t j = (i + 1) & mask; d->slots[j]; j = (j + 1) & mask) {
            size_t home = d->fifo[d->slots[j] - 1].hash & mask;
            /* move j back to i when its home is not within (i, j] */
            if (((j - home) & mask) >= ((j - i) & mask)) {
                d->slots[i] = d->slots[j];
                d->slots[j] = 0;
                i = j;
            }
        }
    }
    free(e->id);
    e->id = NULL;
    d->head = (d->head + 1) % d->max_ids;
    d->count--;
}

static void s_expire(evb_dedupe_t *d, int64_t now_ms)
{
    while (d->count && d->window_ms > 0 &&
           now_ms - d->fifo[d->head].accepted_ms > d->window_ms)
        s_drop_oldest(d);
}

uint64_t evb_dedupe_find(evb_dedupe_t *d, const char *id, size_t len,
                         int64_t now_ms)
{
    s_expire(d, now_ms);
    size_t i = s_lookup(d, id, len, s_hash(id, len));
    return i < d->n_slots ? d->fifo[d->slots[i] - 1].seq : 0;
}

int evb_dedupe_add(evb_dedupe_t *d, const char *id, size_t len, uint64_t seq,
                   int64_t accepted_ms)
{
    if (len > UINT32_MAX)
        return -1;
    uint64_t h = s_hash(id, len);
    size_t at = s_lookup(d, id, len, h);
    if (at < d->n_slots) { /* already known: keep the first acceptance */
        return 0;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return -1;
    memcpy(copy, id, len);
    copy[len] = '\0';
    s_expire(d, accepted_ms);
    if (d->count == d->max_ids) {
        s_drop_oldest(d);
        d->evicted++;
    }
    size_t pos = (d->head + d->count) % d->max_ids;
    d->fifo[pos] = (s_entry_t){copy, (uint32_t)len, h, seq, accepted_ms};
    d->count++;
    size_t mask = d->n_slots - 1;
    size_t i = h & mask;
    while (d->slots[i])
        i = (i + 1) & mask;
    d->slots[i] = (uint32_t)pos + 1;
    return 0;
}

size_t evb_dedupe_count(const evb_dedupe_t *d)
{
    return d->count;
}

uint64_t evb_dedupe_evicted(const evb_dedupe_t *d)
{
    return d->evicted;
}
