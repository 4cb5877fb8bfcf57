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
int evb_mp_read_any(const uint8_t **pp, const uint8_t *end,
                    evb_mp_item_t *it);

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

/* Skip one whole value (containers included), at most max_depth deep.
 * Returns 0, or -1 on malformed input or deeper nesting. */
int evb_mp_skip(const uint8_t **pp, const uint8_t *end, int max_depth);

#endif
