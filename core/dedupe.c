/* An open-addressing hash table (linear probing, backward-shift deletion)
 * over a FIFO of entries in acceptance order: expiry and eviction always
 * remove the oldest entry, which is the FIFO's head.
 *
 * No id is stored, only a 128-bit keyed hash of it (SipHash-1-3 with a
 * random key per index): 32 bits (the finger) in the id's table slot, next
 * to its FIFO position, and 64 more (the check) in its FIFO entry. An id
 * is taken for one held when both match: 96 bits.
 *
 * Why 96 bits is enough. A keyed SipHash's outputs are, for any ids not
 * chosen with knowledge of the key, indistinguishable from random bits.
 * A new id falsely matches a held one with probability 2^-96 per held id,
 * so a claim with N ids held answers "duplicate" for a new event (and the
 * event is lost) with probability at most N / 2^96. At the default
 * 1,000,000 ids that is 1.3e-23 per acknowledged event: at a million
 * acknowledged events a second without pause, one false duplicate is
 * expected every 2.5 billion years (1 / (1e6/s * 3.15e7 s/yr * 1.3e-23)).
 * The random key also means a publisher cannot craft an id that matches
 * another publisher's.
 *
 * Memory: an entry is 20 bytes (the check, the finger, the seq's low 32
 * bits and accepted_ms as the gap to the previous entry's), a slot 8 bytes
 * at 1.5 slots per id: 32 bytes per id, allocated up front
 * (docs/durability.md).
 *
 * The seq from its low 32 bits: the newest seq held minus how far below it
 * the entry's low bits are, modulo 2^32. Exact for an id accepted less
 * than 2^32 seqs before the newest; for an older one it is a later seq,
 * never past the newest (newest - (x mod 2^32) >= newest - x). The broker
 * only holds a duplicate's ACCEPTED until that seq is durable, and its
 * replies go out in order anyway, so a later seq there changes nothing. */
#include "dedupe.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>

#include "retry.h" /* evb_random */

typedef struct {
    uint32_t check[2]; /* 64 bits of the id's hash, independent of finger
                          (two halves: 4-byte alignment, 20-byte entries) */
    uint32_t seq_low;  /* the seq's low 32 bits (0 until settled) */
    uint32_t finger;   /* what its table slot holds: where the slot is */
    uint32_t gap_ms;   /* accepted_ms minus the previous entry's (>= 0) */
} s_entry_t;

struct evb_dedupe {
    int64_t window_ms;
    size_t max_ids;
    s_entry_t *fifo; /* ring of max_ids entries */
    size_t head, count;
    int64_t head_ms, tail_ms; /* accepted_ms of the oldest and newest */
    uint64_t newest_seq;      /* the highest seq settled or added */
    /* 0 = empty, else finger << 32 | FIFO position + 1: a lookup touches
     * an entry only when the finger matches, and the slot's home is
     * derived from the finger (deletion needs no entry) */
    uint64_t *slots;
    size_t n_slots; /* 1.5 * max_ids: at most 2/3 full */
    uint64_t key[2];
    uint64_t evicted;
};

/* The table is 12 bytes per id (12 MiB at the default million ids) and
 * every lookup lands on a random slot: it is mapped with transparent huge
 * pages where the kernel offers them, so a lookup costs one cache miss
 * instead of a cache miss and a TLB miss. The FIFO is written and expired
 * in order, so it needs none. Zeroed, like calloc. */
static void *s_map(size_t size, int huge)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
#ifdef MADV_HUGEPAGE
    if (huge && size >= (2u << 20))
        madvise(p, size, MADV_HUGEPAGE); /* a hint: fine if refused */
#else
    (void)huge;
#endif
    return p;
}

static void s_unmap(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* --------------------------------------------------------- SipHash-128 */

#define ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static inline void s_sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = ROTL(v[1], 13);
    v[1] ^= v[0];
    v[0] = ROTL(v[0], 32);
    v[2] += v[3];
    v[3] = ROTL(v[3], 16);
    v[3] ^= v[2];
    v[0] += v[3];
    v[3] = ROTL(v[3], 21);
    v[3] ^= v[0];
    v[2] += v[1];
    v[1] = ROTL(v[1], 17);
    v[1] ^= v[2];
    v[2] = ROTL(v[2], 32);
}

static inline uint64_t s_le64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

/* SipHash-c-d with its 128-bit output, as in the reference
 * implementation: out[0] and out[1] are its two 64-bit halves (bytes 0-7
 * and 8-15, little-endian). The test checks it against the reference
 * vectors (c = 2, d = 4). */
static inline void s_siphash(const uint64_t key[2], const void *in, size_t len,
                             int c, int d, uint64_t out[2])
{
    const unsigned char *p = in;
    uint64_t v[4] = {
        key[0] ^ 0x736f6d6570736575ull, key[1] ^ 0x646f72616e646f6dull ^ 0xee,
        key[0] ^ 0x6c7967656e657261ull, key[1] ^ 0x7465646279746573ull};
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = s_le64(p + i);
        v[3] ^= m;
        for (int r = 0; r < c; r++)
            s_sipround(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t k = 0; i + k < len; k++)
        last |= (uint64_t)p[i + k] << (8 * k);
    v[3] ^= last;
    for (int r = 0; r < c; r++)
        s_sipround(v);
    v[0] ^= last;
    v[2] ^= 0xee;
    for (int r = 0; r < d; r++)
        s_sipround(v);
    out[0] = v[0] ^ v[1] ^ v[2] ^ v[3];
    v[1] ^= 0xdd;
    for (int r = 0; r < d; r++)
        s_sipround(v);
    out[1] = v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* An id's hash: SipHash-1-3 (one compression and three finalization
 * rounds, as Rust's and CPython's hash tables use). */
static void s_hash(const uint64_t key[2], const char *id, size_t len,
                   uint64_t out[2])
{
    s_siphash(key, id, len, 1, 3, out);
}

/* -------------------------------------------------------------- table */

#define S_FINGER(v) ((uint32_t)((v) >> 32))
#define S_POS(v) ((size_t)(uint32_t)(v)-1)

/* A finger's home slot: its high bits scaled to the table (no power of
 * two needed). */
static inline size_t s_home(const evb_dedupe_t *d, uint32_t finger)
{
    return (size_t)(((uint64_t)finger * d->n_slots) >> 32);
}

static inline size_t s_next(const evb_dedupe_t *d, size_t i)
{
    return i + 1 == d->n_slots ? 0 : i + 1;
}

/* Slots from a to b, going forward around the table. */
static inline size_t s_dist(const evb_dedupe_t *d, size_t a, size_t b)
{
    return b >= a ? b - a : b + d->n_slots - a;
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
    /* accepted_ms is kept as the gap to the previous id, in 32 bits */
    d->window_ms =
        window_ms > (int64_t)UINT32_MAX ? (int64_t)UINT32_MAX : window_ms;
    d->max_ids = max_ids;
    d->n_slots = max_ids + max_ids / 2 + 1; /* always an empty slot */
    if (getrandom(d->key, sizeof d->key, GRND_NONBLOCK) != sizeof d->key) {
        d->key[0] = evb_random();
        d->key[1] = evb_random();
    }
    d->fifo = s_map(max_ids * sizeof *d->fifo, 0);
    d->slots = s_map(d->n_slots * sizeof *d->slots, 1);
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
    s_unmap(d->fifo, d->max_ids * sizeof *d->fifo);
    s_unmap(d->slots, d->n_slots * sizeof *d->slots);
    free(d);
    *self = NULL;
}

static inline int s_check_is(const s_entry_t *e, uint64_t check)
{
    return e->check[0] == (uint32_t)check &&
           e->check[1] == (uint32_t)(check >> 32);
}

/* The seq of an entry (see the top of the file). */
static inline uint64_t s_seq(const evb_dedupe_t *d, const s_entry_t *e)
{
    return d->newest_seq - (uint32_t)((uint32_t)d->newest_seq - e->seq_low);
}

static inline void s_set_seq(evb_dedupe_t *d, s_entry_t *e, uint64_t seq)
{
    e->seq_low = (uint32_t)seq;
    if (seq > d->newest_seq)
        d->newest_seq = seq;
}

/* The slot holding the id with hash h, or, when it is not held, the empty
 * slot that ends its probe sequence (*found 0). */
static size_t s_probe(const evb_dedupe_t *d, const uint64_t h[2], int *found)
{
    uint32_t finger = (uint32_t)(h[0] >> 32);
    size_t i = s_home(d, finger);
    for (;; i = s_next(d, i)) {
        uint64_t v = d->slots[i];
        if (!v)
            break;
        if (S_FINGER(v) == finger && s_check_is(&d->fifo[S_POS(v)], h[1])) {
            *found = 1;
            return i;
        }
    }
    *found = 0;
    return i;
}

/* Take the entry at FIFO position pos out of the table; the FIFO is the
 * caller's to adjust. */
static void s_forget(evb_dedupe_t *d, size_t pos)
{
    uint32_t finger = d->fifo[pos].finger;
    uint64_t want = (uint64_t)finger << 32 | ((uint64_t)pos + 1);
    size_t i = s_home(d, finger);
    while (d->slots[i] != want) {
        if (!d->slots[i])
            return; /* not in the table: cannot happen */
        i = s_next(d, i);
    }
    /* backward-shift deletion keeps probe chains unbroken */
    d->slots[i] = 0;
    for (size_t j = s_next(d, i); d->slots[j]; j = s_next(d, j)) {
        size_t home = s_home(d, S_FINGER(d->slots[j]));
        /* move j back to i when its home is not within (i, j] */
        if (s_dist(d, home, j) >= s_dist(d, i, j)) {
            d->slots[i] = d->slots[j];
            d->slots[j] = 0;
            i = j;
        }
    }
}

/* Remove the FIFO's oldest entry from the table and the FIFO. */
static void s_drop_oldest(evb_dedupe_t *d)
{
    s_forget(d, d->head);
    d->head = d->head + 1 == d->max_ids ? 0 : d->head + 1;
    if (--d->count)
        d->head_ms += d->fifo[d->head].gap_ms;
}

static void s_expire(evb_dedupe_t *d, int64_t now_ms)
{
    while (d->count && d->window_ms > 0 && now_ms - d->head_ms > d->window_ms)
        s_drop_oldest(d);
}

/* Append an entry for hash h at the FIFO's tail and point table slot `at`
 * (the empty slot its probe ended on) at it. */
static void s_append(evb_dedupe_t *d, size_t at, const uint64_t h[2],
                     uint64_t seq, int64_t accepted_ms)
{
    size_t pos = d->head + d->count;
    if (pos >= d->max_ids)
        pos -= d->max_ids;
    s_entry_t *e = &d->fifo[pos];
    int64_t gap = accepted_ms - d->tail_ms;
    if (!d->count) {
        d->head_ms = d->tail_ms = accepted_ms;
        gap = 0;
    } else if (gap < 0) { /* the clock went back: keep the order */
        gap = 0;
    } else if (gap > (int64_t)UINT32_MAX) {
        /* only without a window (or one past 49 days, which is capped):
         * accepted_ms is then never looked at */
        gap = UINT32_MAX;
    }
    d->tail_ms += gap;
    e->check[0] = (uint32_t)h[1];
    e->check[1] = (uint32_t)(h[1] >> 32);
    e->seq_low = 0;
    if (seq)
        s_set_seq(d, e, seq);
    e->finger = (uint32_t)(h[0] >> 32);
    e->gap_ms = (uint32_t)gap;
    d->count++;
    d->slots[at] = (uint64_t)e->finger << 32 | ((uint64_t)pos + 1);
}

/* Make room for one more entry: evict the oldest when max_ids are held.
 * Returns 1 when it did (slots may have moved). */
static int s_make_room(evb_dedupe_t *d)
{
    if (d->count < d->max_ids)
        return 0;
    s_drop_oldest(d);
    d->evicted++;
    return 1;
}

uint64_t evb_dedupe_find(evb_dedupe_t *d, const char *id, size_t len,
                         int64_t now_ms)
{
    s_expire(d, now_ms);
    uint64_t h[2];
    s_hash(d->key, id, len, h);
    int found;
    size_t i = s_probe(d, h, &found);
    return found ? s_seq(d, &d->fifo[S_POS(d->slots[i])]) : 0;
}

int evb_dedupe_add(evb_dedupe_t *d, const char *id, size_t len, uint64_t seq,
                   int64_t accepted_ms)
{
    uint64_t h[2];
    s_hash(d->key, id, len, h);
    int found;
    s_probe(d, h, &found);
    if (found) /* already known: keep the first acceptance */
        return 0;
    s_expire(d, accepted_ms);
    s_make_room(d);
    /* expiry and eviction may have moved slots: probe again */
    size_t at = s_probe(d, h, &found);
    s_append(d, at, h, seq, accepted_ms);
    return 0;
}

uint64_t evb_dedupe_claim(evb_dedupe_t *d, const char *id, size_t len,
                          int64_t accepted_ms, int *claimed)
{
    s_expire(d, accepted_ms);
    uint64_t h[2];
    s_hash(d->key, id, len, h);
    /* one probe sequence finds the id or the empty slot it would take */
    int found;
    size_t at = s_probe(d, h, &found);
    if (found) {
        *claimed = 0;
        return s_seq(d, &d->fifo[S_POS(d->slots[at])]);
    }
    if (s_make_room(d)) /* may move slots: find the empty one again */
        at = s_probe(d, h, &found);
    s_append(d, at, h, 0, accepted_ms);
    *claimed = 1;
    return 0;
}

/* The newest entry's FIFO position (count > 0). */
static size_t s_newest(const evb_dedupe_t *d)
{
    size_t pos = d->head + d->count - 1;
    return pos >= d->max_ids ? pos - d->max_ids : pos;
}

void evb_dedupe_settle(evb_dedupe_t *d, uint64_t seq)
{
    if (d->count)
        s_set_seq(d, &d->fifo[s_newest(d)], seq);
}

void evb_dedupe_unclaim(evb_dedupe_t *d)
{
    if (!d->count)
        return;
    /* the newest entry: take it out of the table, then off the FIFO */
    size_t pos = s_newest(d);
    s_forget(d, pos);
    d->tail_ms -= d->fifo[pos].gap_ms;
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

size_t evb_dedupe_bytes(const evb_dedupe_t *d)
{
    return d->max_ids * sizeof *d->fifo + d->n_slots * sizeof *d->slots;
}
