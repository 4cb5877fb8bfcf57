/* JSON <-> msgpack conversion, shared by the broker (CloudEvents JSON for
 * plugins and dead letters) and the client tools (JSON input to evbus-pub,
 * JSON output from evbus-sub). */
#ifndef EVB_JSON_H
#define EVB_JSON_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "base64.h" /* binary values render as base64 */
#include "buf.h"
#include "mpack.h"

/* Append `obj` as compact JSON (no spaces, no newline).
 *  - str: JSON string, escaped ("\"", "\\", control characters as \n, \t,
 *    ... or \u00XX; other UTF-8 is copied as is). Invalid UTF-8 is the
 *    caller's to refuse beforehand; it is copied as is.
 *  - bin: a JSON string holding its standard base64 (RFC 4648, padded).
 *  - positive/negative integers: decimal. float32/64: the shortest "%.Ng"
 *    that reads back to the same double, always with '.', 'e' or "E" so it
 *    stays a number; NaN and infinities cannot be written (returns -1).
 *  - map keys that are scalars but not str or bin are written as the JSON
 *    text of the key, in a string (1 -> "1"); bin keys as their base64;
 *    array and map keys cannot be written (returns -1: ingest refuses
 *    them, their JSON would be escaped again at every level).
 *  - float32 is written from its double value (0.1f -> 0.10000000149011612).
 *  - recursion follows the object's nesting: only pass objects whose depth
 *    is bounded (msgpack-c's unpacker refuses more than 32 levels).
 *  - ext: cannot be written (returns -1).
 * Returns 0, or -1 (out of memory, or a value JSON cannot carry); on -1
 * the buffer may hold a partial write, so reset it. */
int evb_json_write(evb_buf_t *out, const msgpack_object *obj);

/* The same, from raw msgpack bytes: renders the one value at *pp (never
 * reading past end) and advances *pp past it, without unpacking into a
 * zone. Containers nested deeper than max_depth, malformed bytes, ext and
 * non-finite floats return -1. Output is identical to evb_json_write's. */
int evb_json_write_mp(evb_buf_t *out, const uint8_t **pp, const uint8_t *end,
                      int max_depth);

/* Append a JSON string literal (with the quotes) for n bytes at s. */
int evb_json_write_string(evb_buf_t *out, const char *s, size_t n);

/* Bytes evb_json_write_string writes for n bytes at s. */
size_t evb_json_string_size(const char *s, size_t n);

/* The bytes an escape adds to each byte: 1 (\n, \", ...), 5 (\u00XX) or 0. */
extern const unsigned char evb_json_extra[256];

/* Nonzero high bits where a byte of w is < 0x20, '"' or '\\' (exact "has
 * a byte less than / equal to" word tests): a word with nothing to
 * escape gives 0. */
static inline uint64_t evb_json_word_hits(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u;
    uint64_t q = w ^ (ones * '"');
    uint64_t b = w ^ (ones * '\\');
    return (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) &
           0x8080808080808080u;
}

/* The longest text a float is written as ("-2.2250738585072014e-308"). */
#define EVB_JSON_FLOAT_MAX 24

/* Bytes evb_json_write_mp writes for one item read by evb_mp_read: a
 * scalar's or string's text (quoted when is_key), a container's brackets,
 * commas and colons (its elements are items of their own). The sum over
 * every item of a value is exactly the size of its JSON, except that each
 * float counts as EVB_JSON_FLOAT_MAX: ingest bounds an event's rendered
 * size with it, once per item, so it is inline. A container key counts 0:
 * it cannot be written. */
static inline size_t evb_json_u64_size(uint64_t v)
{
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static inline size_t evb_json_mp_item_size(const evb_mp_item_t *it, int is_key)
{
    size_t n;
    switch (it->kind) {
    case EVB_MP_NIL:
        n = 4;
        break;
    case EVB_MP_BOOL:
        n = it->u ? 4 : 5;
        break;
    case EVB_MP_UINT:
        n = evb_json_u64_size(it->u);
        break;
    case EVB_MP_INT:
        n = 1 + evb_json_u64_size(0 - (uint64_t)it->i);
        break;
    case EVB_MP_FLOAT:
        n = EVB_JSON_FLOAT_MAX;
        break;
    case EVB_MP_STR:
        return evb_json_string_size((const char *)it->ptr, it->len);
    case EVB_MP_BIN:
        return 2 + 4 * (((size_t)it->len + 2) / 3);
    case EVB_MP_ARRAY: /* brackets and commas */
        return 2 + (it->len ? it->len - 1 : 0);
    case EVB_MP_MAP: /* braces, colons and commas */
        return 2 + (it->len ? 2 * (size_t)it->len - 1 : 0);
    default:
        return 0;
    }
    return is_key ? n + 2 : n; /* a scalar key is quoted */
}

/* Parse one JSON value (RFC 8259; surrounding white space allowed, nothing
 * else after it) and pack it with `pk`: objects -> maps, arrays -> arrays,
 * strings -> str (escapes decoded, surrogate pairs joined into UTF-8),
 * integers that fit int64/uint64 -> int/uint, other numbers -> float64,
 * true/false/null -> bool/nil. Nesting deeper than max_depth, invalid
 * UTF-8 and lone surrogates are errors; duplicate keys are kept as they
 * come. Keep max_depth small (<= 1000): each level costs ~100 bytes of C
 * stack. `text` need not be NUL-terminated; err may be NULL. Numbers too
 * large for a double are errors. Assumes the C locale's decimal point.
 * On error returns -1 and writes a message naming the place
 * ("line 1, column 17: expected ':'") into err; what was packed so far
 * must be discarded by the caller. */
int evb_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk,
                        int max_depth, char *err, size_t errsz);

#endif
