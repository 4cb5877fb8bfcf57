/* A minimal reader of raw msgpack bytes: one item's header (and, for
 * scalars, strings and binaries, its value) at a time, without allocating.
 * The envelope validator (event.c) walks untrusted input with it; the JSON
 * renderer (json.c) walks validated envelopes with it. */
#ifndef EVB_MPACK_H
#define EVB_MPACK_H

#include <stddef.h>
#include <stdint.h>

typedef enum evb_mp_kind {
    EVB_MP_NIL,
    EVB_MP_BOOL,
    EVB_MP_UINT,
    EVB_MP_INT, /* negative */
    EVB_MP_FLOAT,
    EVB_MP_STR,
    EVB_MP_BIN,
    EVB_MP_ARRAY,
    EVB_MP_MAP,
    EVB_MP_EXT
} evb_mp_kind_t;

typedef struct evb_mp_item {
    evb_mp_kind_t kind;
    const uint8_t *ptr; /* STR/BIN/EXT payload */
    uint32_t len;       /* STR/BIN/EXT bytes; ARRAY/MAP element count */
    uint64_t u;         /* UINT value; BOOL 0/1 */
    int64_t i;          /* INT value */
    double f;           /* FLOAT value (float32 widened) */
} evb_mp_item_t;

/* Read one item at *pp (never past end). For STR/BIN/EXT the payload is
 * skipped too; for ARRAY/MAP only the header (the elements follow).
 * Returns 0 and advances *pp, or -1 when the bytes end too early or hold
 * the never-used byte 0xc1. The common one-byte headers are inline: both
 * ingest and rendering read every item of every event. */
int evb_mp_read_any(const uint8_t **pp, const uint8_t *end, evb_mp_item_t *it);

static inline int evb_mp_read(const uint8_t **pp, const uint8_t *end,
                              evb_mp_item_t *it)
{
    const uint8_t *p = *pp;
    if (p < end) {
        uint8_t c = *p;
        if (c <= 0x7f) { /* positive fixint */
            it->kind = EVB_MP_UINT;
            it->u = c;
            *pp = p + 1;
            return 0;
        }
        if ((c & 0xe0) == 0xa0) { /* fixstr */
            uint32_t n = c & 0x1f;
            if ((size_t)(end - p - 1) < n)
                return -1;
            it->kind = EVB_MP_STR;
            it->len = n;
            it->ptr = p + 1;
            *pp = p + 1 + n;
            return 0;
        }
        if ((c & 0xe0) == 0x80) { /* fixmap, fixarray */
            it->kind = (c & 0x10) ? EVB_MP_ARRAY : EVB_MP_MAP;
            it->len = c & 0x0f;
            *pp = p + 1;
            return 0;
        }
    }
    return evb_mp_read_any(pp, end, it);
}

/* What evb_mp_walk returns besides 0 and a visitor's own code. */
#define EVB_MP_ETRUNC -1 /* bytes end early, or a never-used byte */
#define EVB_MP_ECOUNT -2 /* a container claims more items than bytes left */
#define EVB_MP_EDEPTH -3 /* containers nested deeper than max_depth */

/* Walk one whole value at *pp (containers and everything inside them),
 * calling visit(item, is_key, ctx) for every item, containers before their
 * elements (is_key: the item is a key of a map); visit may be NULL. Containers
 * may nest max_depth deep (a scalar is 0 deep, [1] is 1; at most 64). Every
 * declared count is bounded by the bytes left, so hostile counts cost nothing.
 * Returns 0 with *pp past the value, an EVB_MP_E* code, or the first non-zero
 * value visit returned (make those below -9). Iterative: no recursion on input.
 */
int evb_mp_walk(const uint8_t **pp, const uint8_t *end, int max_depth,
                int (*visit)(const evb_mp_item_t *it, int is_key, void *ctx),
                void *ctx);

/* Skip one whole value: evb_mp_walk without a visitor; 0 or -1. */
int evb_mp_skip(const uint8_t **pp, const uint8_t *end, int max_depth);

#endif
