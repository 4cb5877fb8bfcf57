#include "mpack.h"

#include <string.h>

static inline uint64_t s_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int evb_mp_read_any(const uint8_t **pp, const uint8_t *end, evb_mp_item_t *it)
{
    const uint8_t *p = *pp;
    if (p >= end)
        return -1;
    uint8_t c = *p++;
    size_t avail = (size_t)(end - p);
    if (c <= 0x7f) {
        it->kind = EVB_MP_UINT;
        it->u = c;
    } else if (c <= 0x8f) {
        it->kind = EVB_MP_MAP;
        it->len = c & 0x0f;
    } else if (c <= 0x9f) {
        it->kind = EVB_MP_ARRAY;
        it->len = c & 0x0f;
    } else if (c <= 0xbf) {
        it->kind = EVB_MP_STR;
        it->len = c & 0x1f;
        goto payload;
    } else if (c >= 0xe0) {
        it->kind = EVB_MP_INT;
        it->i = (int8_t)c;
    } else {
        int n;
        switch (c) {
        case 0xc0:
            it->kind = EVB_MP_NIL;
            break;
        case 0xc2:
        case 0xc3:
            it->kind = EVB_MP_BOOL;
            it->u = c == 0xc3;
            break;
        case 0xc4:
        case 0xc5:
        case 0xc6: /* bin 8/16/32 */
        case 0xd9:
        case 0xda:
        case 0xdb: /* str 8/16/32 */
            n = 1 << ((c >= 0xd9 ? c - 0xd9 : c - 0xc4));
            if (avail < (size_t)n)
                return -1;
            it->kind = c >= 0xd9 ? EVB_MP_STR : EVB_MP_BIN;
            it->len = (uint32_t)s_be(p, n);
            p += n;
            goto payload;
        case 0xc7:
        case 0xc8:
        case 0xc9: /* ext 8/16/32: size, type */
            n = 1 << (c - 0xc7);
            if (avail < (size_t)n + 1)
                return -1;
            it->kind = EVB_MP_EXT;
            it->len = (uint32_t)s_be(p, n);
            p += n + 1;
            goto payload;
        case 0xd4:
        case 0xd5:
        case 0xd6:
        case 0xd7:
        case 0xd8: /* fixext */
            if (avail < 1)
                return -1;
            it->kind = EVB_MP_EXT;
            it->len = 1u << (c - 0xd4);
            p += 1;
            goto payload;
        case 0xca: {
            if (avail < 4)
                return -1;
            uint32_t u = (uint32_t)s_be(p, 4);
            float f;
            memcpy(&f, &u, 4);
            it->kind = EVB_MP_FLOAT;
            it->f = f;
            p += 4;
            break;
        }
        case 0xcb: {
            if (avail < 8)
                return -1;
            uint64_t u = s_be(p, 8);
            it->kind = EVB_MP_FLOAT;
            memcpy(&it->f, &u, 8);
            p += 8;
            break;
        }
        case 0xcc:
        case 0xcd:
        case 0xce:
        case 0xcf:
            n = 1 << (c - 0xcc);
            if (avail < (size_t)n)
                return -1;
            it->kind = EVB_MP_UINT;
            it->u = s_be(p, n);
            p += n;
            break;
        case 0xd0:
        case 0xd1:
        case 0xd2:
        case 0xd3: {
            n = 1 << (c - 0xd0);
            if (avail < (size_t)n)
                return -1;
            uint64_t u = s_be(p, n);
            /* sign-extend from n bytes */
            int shift = 64 - 8 * n;
            it->i = (int64_t)(u << shift) >> shift;
            /* msgpack allows non-negative values in int formats */
            if (it->i >= 0) {
                it->kind = EVB_MP_UINT;
                it->u = (uint64_t)it->i;
            } else {
                it->kind = EVB_MP_INT;
            }
            p += n;
            break;
        }
        case 0xdc:
        case 0xdd:
        case 0xde:
        case 0xdf:
            n = (c & 1) ? 4 : 2;
            if (avail < (size_t)n)
                return -1;
            it->kind = c <= 0xdd ? EVB_MP_ARRAY : EVB_MP_MAP;
            it->len = (uint32_t)s_be(p, n);
            p += n;
            break;
        default: /* 0xc1 is never used */
            return -1;
        }
    }
    *pp = p;
    return 0;
payload:
    if ((size_t)(end - p) < it->len)
        return -1;
    it->ptr = p;
    *pp = p + it->len;
    return 0;
}

int evb_mp_walk(const uint8_t **pp, const uint8_t *end, int max_depth,
                int (*visit)(const evb_mp_item_t *it, int is_key, void *ctx),
                void *ctx)
{
    uint64_t left[66];  /* items left in each open container */
    uint8_t in_map[66]; /* whether that container is a map */
    int top = 0;
    if (max_depth > 64)
        max_depth = 64;
    left[0] = 1;
    in_map[0] = 0;
    while (top >= 0) {
        if (left[top] == 0) {
            top--;
            continue;
        }
        /* a map's items alternate key, value: a key when an even number
         * is left */
        int is_key = in_map[top] && (left[top] & 1) == 0;
        left[top]--;
        evb_mp_item_t it;
        if (evb_mp_read(pp, end, &it) < 0)
            return EVB_MP_ETRUNC;
        if (visit) {
            int rc = visit(&it, is_key, ctx);
            if (rc)
                return rc;
        }
        if (it.kind == EVB_MP_ARRAY || it.kind == EVB_MP_MAP) {
            uint64_t items = it.kind == EVB_MP_MAP ? 2ull * it.len : it.len;
            if (items > (uint64_t)(end - *pp)) /* each takes >= 1 byte */
                return EVB_MP_ECOUNT;
            if (top + 1 > max_depth)
                return EVB_MP_EDEPTH;
            left[++top] = items;
            in_map[top] = it.kind == EVB_MP_MAP;
        }
    }
    return 0;
}

int evb_mp_skip(const uint8_t **pp, const uint8_t *end, int max_depth)
{
    return evb_mp_walk(pp, end, max_depth, NULL, NULL) == 0 ? 0 : -1;
}
