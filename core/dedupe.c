/* An open-addressing hash table (linear probing, backward-shift deletion)
 * over a FIFO of entries in acceptance order: expiry and eviction always
 * remove the oldest entry, which is the FIFO's head. */
#include "dedupe.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define INLINE_ID 40 /* ids up to this long (UUIDs: 36) need no malloc */

typedef struct {
    uint64_t hash;
    uint64_t seq;
    int64_t accepted_ms;
    uint32_t len;
    char *id;               /* inline, or malloc'd when longer */
    char inline_id[INLINE_ID];
} s_entry_t;

struct evb_dedupe {
    int64_t window_ms;
    size_t max_ids;
    s_entry_t *fifo; /* ring of max_ids entries */
    size_t head, count;
    /* 0 = empty, else the hash's high 32 bits << 32 | FIFO position + 1:
     * a lookup touches an entry only when that fingerprint matches */
    uint64_t *slots;
    size_t n_slots;  /* power of two, >= 2 * max_ids */
    uint64_t evicted;
};

/* The table and the FIFO are big (24 and 80 bytes per id: 100 MiB at the
 * default million ids) and every lookup lands on a random slot: mapped
 * with transparent huge pages where the kernel offers them, so a lookup
 * costs one cache miss instead of a cache miss and a TLB miss (-5 % CPU
 * per acknowledged event in bench/acked). Zeroed, like calloc. */
static void *s_big_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (size >= (2u << 20))
        madvise(p, size, MADV_HUGEPAGE); /* a hint: fine if refused */
#endif
    return p;
}

static void s_big_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

static uint64_t s_hash(const char *s, size_t n)
{
    /* FNV-1a over 8-byte words (then the tail), finished with a mixer so
     * the low bits (the slot) and the high bits (the fingerprint) are
     * both well spread */
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
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
    d->fifo = s_big_alloc(max_ids * sizeof *d->fifo);
    d->slots = s_big_alloc(d->n_slots * sizeof *d->slots);
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
    for (size_t i = 0; d->fifo && i < d->count; i++) {
        s_entry_t *e = &d->fifo[(d->head + i) % d->max_ids];
        if (e->id != e->inline_id)
            free(e->id);
    }
    s_big_free(d->fifo, d->max_ids * sizeof *d->fifo);
    s_big_free(d->slots, d->n_slots * sizeof *d->slots);
    free(d);
    *self = NULL;
}

#define POS(v) ((uint32_t)(v) - 1)
#define FINGER(h) ((h) >> 32)

/* The table slot holding the id; n_slots when absent. */
static size_t s_lookup(const evb_dedupe_t *d, const char *id, size_t len,
                       uint64_t h)
{
    size_t mask = d->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        uint64_t v = d->slots[i];
        if (!v)
            return d->n_slots;
        if ((v >> 32) != FINGER(h))
            continue;
        const s_entry_t *e = &d->fifo[POS(v)];
        if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
            return i;
    }
}

/* Take entry e out of the table and free its id; the FIFO is the
 * caller's to adjust. */
static void s_forget(evb_dedupe_t *d, s_entry_t *e)
{
    size_t mask = d->n_slots - 1;
    size_t i = s_lookup(d, e->id, e->len, e->hash);
    if (i < d->n_slots) {
        /* backward-shift deletion keeps probe chains unbroken */
        d->slots[i] = 0;
        for (size_t j = (i + 1) & mask; d->slots[j]; j = (j + 1) & mask) {
            size_t home = d->fifo[POS(d->slots[j])].hash & mask;
            /* move j back to i when its home is not within (i, j] */
            if (((j - home) & mask) >= ((j - i) & mask)) {
                d->slots[i] = d->slots[j];
                d->slots[j] = 0;
                i = j;
            }
        }
    }
    if (e->id != e->inline_id)
        free(e->id);
    e->id = NULL;
}

/* Remove the FIFO's oldest entry from the table and the FIFO. */
static void s_drop_oldest(evb_dedupe_t *d)
{
    s_forget(d, &d->fifo[d->head]);
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
    return i < d->n_slots ? d->fifo[POS(d->slots[i])].seq : 0;
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
    s_expire(d, accepted_ms);
    if (d->count == d->max_ids) {
        s_drop_oldest(d);
        d->evicted++;
    }
    size_t pos = (d->head + d->count) % d->max_ids;
    s_entry_t *e = &d->fifo[pos];
    e->id = len < INLINE_ID ? e->inline_id : malloc(len + 1);
    if (!e->id)
        return -1;
    memcpy(e->id, id, len);
    e->id[len] = '\0';
    e->len = (uint32_t)len;
    e->hash = h;
    e->seq = seq;
    e->accepted_ms = accepted_ms;
    d->count++;
    size_t mask = d->n_slots - 1;
    size_t i = h & mask;
    while (d->slots[i])
        i = (i + 1) & mask;
    d->slots[i] = (FINGER(h) << 32) | ((uint64_t)pos + 1);
    return 0;
}

uint64_t evb_dedupe_claim(evb_dedupe_t *d, const char *id, size_t len,
                          int64_t accepted_ms, int *claimed)
{
    *claimed = 0;
    if (len > UINT32_MAX)
        return 0;
    s_expire(d, accepted_ms);
    uint64_t h = s_hash(id, len);
    size_t mask = d->n_slots - 1;
    size_t i = h & mask;
    /* one probe sequence finds the id or the empty slot it would take */
    for (;; i = (i + 1) & mask) {
        uint64_t v = d->slots[i];
        if (!v)
            break;
        if ((v >> 32) != FINGER(h))
            continue;
        const s_entry_t *e = &d->fifo[POS(v)];
        if (e->hash == h && e->len == len && memcmp(e->id, id, len) == 0)
            return e->seq;
    }
    if (d->count == d->max_ids) {
        s_drop_oldest(d); /* may move entries: find the slot again */
        d->evicted++;
        for (i = h & mask; d->slots[i]; i = (i + 1) & mask)
            ;
    }
    size_t pos = (d->head + d->count) % d->max_ids;
    s_entry_t *e = &d->fifo[pos];
    e->id = len < INLINE_ID ? e->inline_id : malloc(len + 1);
    if (!e->id)
        return 0;
    memcpy(e->id, id, len);
    e->id[len] = '\0';
    e->len = (uint32_t)len;
    e->hash = h;
    e->seq = 0;
    e->accepted_ms = accepted_ms;
    d->count++;
    d->slots[i] = (FINGER(h) << 32) | ((uint64_t)pos + 1);
    *claimed = 1;
    return 0;
}

void evb_dedupe_settle(evb_dedupe_t *d, uint64_t seq)
{
    if (d->count)
        d->fifo[(d->head + d->count - 1) % d->max_ids].seq = seq;
}

void evb_dedupe_unclaim(evb_dedupe_t *d)
{
    if (!d->count)
        return;
    /* the newest entry: take it out of the table, then off the FIFO */
    s_forget(d, &d->fifo[(d->head + d->count - 1) % d->max_ids]);
    d->count--;
}

size_t evb_dedupe_count(const evb_dedupe_t *d)
{
    return d->count;
}

uint64_t evb_dedupe_evicted(const evb_dedupe_t *d)
{
    return d->evicted;
}
