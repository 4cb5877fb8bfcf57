/* JSON <-> msgpack conversion (see json.h).
 *
 * The writer is on the hot path (one call per event per plugin that wants
 * JSON), so it never allocates per value: strings are copied in runs of
 * bytes that need no escaping, integers are formatted by hand, and only
 * floats go through snprintf.
 *
 * The parser packs as it goes. A msgpack map or array header carries its
 * member count, so before packing anything a pre-pass walks the text once
 * and counts the members of every container, numbered in the order they
 * open; the main pass then takes those counts in the same order. Both
 * passes are linear and neither builds a tree.
 *
 * Numbers are formatted and read in the "C" locale's notation: the process
 * must not switch LC_NUMERIC to a locale whose decimal point is not '.'. */
#include "json.h"
#include "mpack.h"

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ writing */

static const char s_hex[] = "0123456789abcdef";

/* For each byte, 0 when it is copied as is, otherwise the character that
 * follows the backslash in its escape ('u' meaning \u00XX). */
/* clang-format off */
static const char s_escape[256] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', /* 0x00-0x07 */
    'b', 't', 'n', 'u', 'f', 'r', 'u', 'u', /* 0x08-0x0f */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', /* 0x10-0x17 */
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', /* 0x18-0x1f */
    ['"'] = '"',
    ['\\'] = '\\',
};
/* clang-format on */

static const char s_digits2[] = "00010203040506070809"
                                "10111213141516171819"
                                "20212223242526272829"
                                "30313233343536373839"
                                "40414243444546474849"
                                "50515253545556575859"
                                "60616263646566676869"
                                "70717273747576777879"
                                "80818283848586878889"
                                "90919293949596979899";

/* Length of the leading run of s[0..n) that needs no escaping. Eight bytes
 * at a time while no byte in the word is < 0x20, '"' or '\\' (exact
 * "has a byte less than / equal to" word tests), then byte by byte. */
static size_t s_safe_run(const unsigned char *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101u;
    const uint64_t highs = 0x8080808080808080u;
    size_t i = 0;
#ifdef __SSE2__
    /* sixteen bytes at a time: '"', '\\' or anything <= 0x1f stops the run */
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i ctl = _mm_set1_epi8(0x1f);
    while (n - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i hit = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
            _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
        unsigned mask = (unsigned)_mm_movemask_epi8(hit);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (n - i >= 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        uint64_t q = w ^ (ones * '"');
        uint64_t b = w ^ (ones * '\\');
        uint64_t hit =
            ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b);
        if (hit & highs)
            break;
        i += 8;
    }
    while (i < n && !s_escape[s[i]])
        i++;
    return i;
}

int evb_json_write_string(evb_buf_t *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    if (n <= 16) {
        /* short (keys, most values): check and copy as one or two
         * overlapping words; fall through to the general path at the
         * first byte that needs an escape */
        if (out->len + n + 3 > out->cap && evb_buf_reserve(out, n + 2) < 0)
            return -1;
        char *d = out->data + out->len;
        int clean = 1;
        if (n >= 8) {
            uint64_t a, b;
            memcpy(&a, u, 8);
            memcpy(&b, u + n - 8, 8);
            clean = !(evb_json_word_hits(a) | evb_json_word_hits(b));
            if (clean) {
                memcpy(d + 1, &a, 8);
                memcpy(d + 1 + n - 8, &b, 8);
            }
        } else {
            char bad = 0;
            for (size_t i = 0; i < n; i++) { /* no early exit: n < 8 */
                bad |= s_escape[u[i]];
                d[1 + i] = (char)u[i];
            }
            clean = !bad;
        }
        if (clean) {
            d[0] = '"';
            d[1 + n] = '"';
            d[2 + n] = '\0';
            out->len += n + 2;
            return 0;
        }
    }
    /* room for the quotes and the text as is; escapes reserve more */
    if (n > SIZE_MAX / 2 || evb_buf_reserve(out, n + 2) < 0)
        return -1;
    out->data[out->len++] = '"';
    size_t i = 0;
    for (;;) {
        size_t run = s_safe_run(u + i, n - i);
        if (run) {
            memcpy(out->data + out->len, u + i, run);
            out->len += run;
            i += run;
        }
        if (i == n)
            break;
        unsigned char c = u[i++];
        /* the longest escape, the rest of the text and the closing quote */
        if (evb_buf_reserve(out, 6 + (n - i) + 1) < 0) {
            out->data[out->len] = '\0';
            return -1;
        }
        char *d = out->data + out->len;
        char e = s_escape[c];
        d[0] = '\\';
        d[1] = e;
        if (e == 'u') {
            d[2] = '0';
            d[3] = '0';
            d[4] = s_hex[c >> 4];
            d[5] = s_hex[c & 15];
            out->len += 6;
        } else {
            out->len += 2;
        }
    }
    out->data[out->len++] = '"';
    out->data[out->len] = '\0';
    return 0;
}

/* Write v in decimal so that it ends just before `end`; returns where the
 * digits start. Two digits per division. */
static char *s_u64_digits(char *end, uint64_t v)
{
    while (v >= 100) {
        unsigned k = (unsigned)(v % 100) * 2;
        v /= 100;
        *--end = s_digits2[k + 1];
        *--end = s_digits2[k];
    }
    if (v >= 10) {
        unsigned k = (unsigned)v * 2;
        *--end = s_digits2[k + 1];
        *--end = s_digits2[k];
    } else {
        *--end = (char)('0' + v);
    }
    return end;
}

static int s_write_u64(evb_buf_t *out, uint64_t v, int negative)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    char *p = s_u64_digits(end, v);
    if (negative)
        *--p = '-';
    return evb_buf_append(out, p, (size_t)(end - p));
}

static int s_write_i64(evb_buf_t *out, int64_t v)
{
    /* unsigned negation so that INT64_MIN works */
    return v < 0 ? s_write_u64(out, 0 - (uint64_t)v, 1)
                 : s_write_u64(out, (uint64_t)v, 0);
}

/* Most measured values (0.25, 21.5, 3.14159) without printf: if d * 10^k
 * (k = 1..6) is a whole number m below 1e15 and m / 10^k gives back d,
 * the decimal m / 10^k reads back to d (strtod rounds correctly), and it
 * is what "%.15g" prints: m has at most 15 digits and d lies within half
 * an ulp of it, far inside the 15th digit's rounding step. Writes that
 * text into buf (at least 32 bytes) and returns its length, or 0. */
static size_t s_short_decimal(double d, char *buf)
{
    static const double pow10[] = {1e1, 1e2, 1e3, 1e4, 1e5, 1e6};
    double a = d < 0 ? -d : d;
    if (!(a >= 1e-4 && a < 1e14)) /* "%g" uses fixed notation here */
        return 0;
    for (size_t k = 0; k < sizeof pow10 / sizeof pow10[0]; k++) {
        double x = a * pow10[k];
        if (x >= 1e15)
            return 0;
        uint64_t m = (uint64_t)x;
        if ((double)m != x || (double)m / pow10[k] != a)
            continue;
        char digits[24];
        char *end = digits + sizeof digits;
        char *p = s_u64_digits(end, m);
        size_t frac = k + 1; /* digits after the point */
        while (frac && end[-1] == '0') {
            end--;
            frac--;
        }
        size_t nd = (size_t)(end - p);
        if (!frac)
            return 0; /* whole: not reached, s_write_double took it */
        char *o = buf;
        if (d < 0)
            *o++ = '-';
        if (nd <= frac) {
            *o++ = '0';
            *o++ = '.';
            memset(o, '0', frac - nd);
            o += frac - nd;
            memcpy(o, p, nd);
            o += nd;
        } else {
            memcpy(o, p, nd - frac);
            o += nd - frac;
            *o++ = '.';
            memcpy(o, end - frac, frac);
            o += frac;
        }
        return (size_t)(o - buf);
    }
    return 0;
}

static int s_write_double(evb_buf_t *out, double d)
{
    if (!isfinite(d))
        return -1;
    char tmp[40];
    if (d > -1e15 && d < 1e15 && d == (double)(int64_t)d) {
        /* A whole number below 1e15 has at most 15 digits, so this is
         * exactly what "%.15g" would print (plus ".0"), without printf. */
        int64_t i = (int64_t)d;
        char *end = tmp + sizeof tmp - 2;
        memcpy(end, ".0", 2);
        char *p = s_u64_digits(end, i < 0 ? 0 - (uint64_t)i : (uint64_t)i);
        if (signbit(d))
            *--p = '-'; /* also for -0.0 */
        return evb_buf_append(out, p, (size_t)(tmp + sizeof tmp - p));
    }
    size_t len = s_short_decimal(d, tmp);
    if (len)
        return evb_buf_append(out, tmp, len);
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d)
            break;
    }
    if (n < 0 || (size_t)n >= sizeof tmp - 2)
        return -1; /* cannot happen: %.17g of a double fits */
    if (!memchr(tmp, '.', (size_t)n) && !memchr(tmp, 'e', (size_t)n) &&
        !memchr(tmp, 'E', (size_t)n)) {
        memcpy(tmp + n, ".0", 2);
        n += 2;
    }
    return evb_buf_append(out, tmp, (size_t)n);
}

static int s_write_value(evb_buf_t *out, const msgpack_object *o);

static int s_write_key(evb_buf_t *out, const msgpack_object *k)
{
    switch (k->type) {
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN:
        /* already a JSON string (bin as its base64) */
        return s_write_value(out, k);
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* their JSON text holds nothing that needs escaping */
        if (evb_buf_putc(out, '"') < 0 || s_write_value(out, k) < 0)
            return -1;
        return evb_buf_putc(out, '"');
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        /* refused at ingest: rendering each level's JSON as a string in the
         * level above doubles the size per level */
    default:
        return -1;
    }
}

/* Recursion depth is that of the object; msgpack-c's unpacker refuses
 * nesting deeper than MSGPACK_EMBED_STACK_SIZE (32). */
static int s_write_value(evb_buf_t *out, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return evb_buf_append(out, "null", 4);
    case MSGPACK_OBJECT_BOOLEAN:
        return o->via.boolean ? evb_buf_append(out, "true", 4)
                              : evb_buf_append(out, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return s_write_u64(out, o->via.u64, 0);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return s_write_i64(out, o->via.i64);
    case MSGPACK_OBJECT_FLOAT32: /* msgpack-c widens it into f64 */
    case MSGPACK_OBJECT_FLOAT64:
        return s_write_double(out, o->via.f64);
    case MSGPACK_OBJECT_STR:
        return evb_json_write_string(out, o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        if (evb_buf_putc(out, '"') < 0 ||
            evb_base64_encode(out, o->via.bin.ptr, o->via.bin.size) < 0)
            return -1;
        return evb_buf_putc(out, '"');
    case MSGPACK_OBJECT_ARRAY:
        if (evb_buf_putc(out, '[') < 0)
            return -1;
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i && evb_buf_putc(out, ',') < 0)
                return -1;
            if (s_write_value(out, &o->via.array.ptr[i]) < 0)
                return -1;
        }
        return evb_buf_putc(out, ']');
    case MSGPACK_OBJECT_MAP:
        if (evb_buf_putc(out, '{') < 0)
            return -1;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (i && evb_buf_putc(out, ',') < 0)
                return -1;
            if (s_write_key(out, &kv->key) < 0 || evb_buf_putc(out, ':') < 0 ||
                s_write_value(out, &kv->val) < 0)
                return -1;
        }
        return evb_buf_putc(out, '}');
    case MSGPACK_OBJECT_EXT:
    default:
        return -1;
    }
}

int evb_json_write(evb_buf_t *out, const msgpack_object *obj)
{
    return s_write_value(out, obj);
}

/* ---------------------------------------------- from raw msgpack bytes */

static int s_write_mp(evb_buf_t *out, const uint8_t **pp, const uint8_t *end,
                      int depth);

/* One map key from raw bytes, with the same rules as s_write_key. */
static int s_write_mp_key(evb_buf_t *out, const uint8_t **pp,
                          const uint8_t *end, int depth)
{
    const uint8_t *start = *pp;
    evb_mp_item_t it;
    if (evb_mp_read(pp, end, &it) < 0)
        return -1;
    switch (it.kind) {
    case EVB_MP_STR:
        return evb_json_write_string(out, (const char *)it.ptr, it.len);
    case EVB_MP_ARRAY:
    case EVB_MP_MAP:
        return -1; /* see s_write_key */
    case EVB_MP_BIN:
        *pp = start;
        return s_write_mp(out, pp, end, depth);
    default:
        *pp = start;
        if (evb_buf_putc(out, '"') < 0 || s_write_mp(out, pp, end, depth) < 0)
            return -1;
        return evb_buf_putc(out, '"');
    }
}

static int s_write_mp(evb_buf_t *out, const uint8_t **pp, const uint8_t *end,
                      int depth)
{
    evb_mp_item_t it;
    if (depth <= 0 || evb_mp_read(pp, end, &it) < 0)
        return -1;
    switch (it.kind) {
    case EVB_MP_NIL:
        return evb_buf_append(out, "null", 4);
    case EVB_MP_BOOL:
        return it.u ? evb_buf_append(out, "true", 4)
                    : evb_buf_append(out, "false", 5);
    case EVB_MP_UINT:
        return s_write_u64(out, it.u, 0);
    case EVB_MP_INT:
        return s_write_i64(out, it.i);
    case EVB_MP_FLOAT:
        return s_write_double(out, it.f);
    case EVB_MP_STR:
        return evb_json_write_string(out, (const char *)it.ptr, it.len);
    case EVB_MP_BIN:
        if (evb_buf_putc(out, '"') < 0 ||
            evb_base64_encode(out, it.ptr, it.len) < 0)
            return -1;
        return evb_buf_putc(out, '"');
    case EVB_MP_ARRAY:
        if (evb_buf_putc(out, '[') < 0)
            return -1;
        for (uint32_t i = 0; i < it.len; i++) {
            if (i && evb_buf_putc(out, ',') < 0)
                return -1;
            if (s_write_mp(out, pp, end, depth - 1) < 0)
                return -1;
        }
        return evb_buf_putc(out, ']');
    case EVB_MP_MAP:
        if (evb_buf_putc(out, '{') < 0)
            return -1;
        for (uint32_t i = 0; i < it.len; i++) {
            if (i && evb_buf_putc(out, ',') < 0)
                return -1;
            if (s_write_mp_key(out, pp, end, depth - 1) < 0 ||
                evb_buf_putc(out, ':') < 0 ||
                s_write_mp(out, pp, end, depth - 1) < 0)
                return -1;
        }
        return evb_buf_putc(out, '}');
    default: /* ext */
        return -1;
    }
}

int evb_json_write_mp(evb_buf_t *out, const uint8_t **pp, const uint8_t *end,
                      int max_depth)
{
    return s_write_mp(out, pp, end, max_depth);
}

/* clang-format off */
const unsigned char evb_json_extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5, /* 0x00-0x0f */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /* 0x10-0x1f */
    ['"'] = 1,
    ['\\'] = 1,
};
/* clang-format on */

size_t evb_json_string_size(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t size = n + 2;
    if (n < 8) { /* short: one pass, no early exit */
        char any = 0;
        for (size_t b = 0; b < n; b++)
            any |= (char)evb_json_extra[u[b]];
        for (size_t b = 0; any && b < n; b++)
            size += evb_json_extra[u[b]];
        return size;
    }
    size_t i = 0;
#ifdef __SSE2__
    /* sixteen bytes with nothing to escape (nearly always) cost one test */
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i bslash = _mm_set1_epi8('\\');
    const __m128i ctl = _mm_set1_epi8(0x1f);
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(u + i));
        __m128i hit = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
            _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
        if (_mm_movemask_epi8(hit))
            for (size_t b = i; b < i + 16; b++)
                size += evb_json_extra[u[b]];
    }
#endif
    /* then words; the last overlaps the one before (its bytes counted
     * once) */
    for (; i < n; i += 8) {
        size_t at = i + 8 <= n ? i : n - 8;
        uint64_t w;
        memcpy(&w, u + at, 8);
        if (evb_json_word_hits(w))
            for (size_t b = i; b < at + 8; b++)
                size += evb_json_extra[u[b]];
    }
    return size;
}

/* ------------------------------------------------------------ parsing */

typedef struct {
    const char *text; /* start, for line/column in messages */
    const char *p;    /* next byte to read */
    const char *end;
    msgpack_packer *pk;
    int max_depth;
    char *err;
    size_t errsz;
    /* members of each array/object, in the order they open (pre-pass) */
    size_t *counts;
    size_t ncounts, capcounts;
    size_t next;       /* ordinal of the next container the main pass opens */
    size_t small[32];  /* counts for typical documents, without malloc */
    evb_buf_t scratch; /* decoded strings with escapes, long numbers */
} parser_t;

static void s_error(parser_t *ps, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Write "line L, column C: <what>" for the position `at`. Columns count
 * characters (UTF-8 sequences), from 1. */
static void s_error(parser_t *ps, const char *at, const char *fmt, ...)
{
    if (!ps->err || !ps->errsz)
        return;
    size_t line = 1, col = 1;
    for (const char *q = ps->text; q < at; q++) {
        unsigned char c = (unsigned char)*q;
        if (c == '\n') {
            line++;
            col = 1;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
    }
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errsz, "line %zu, column %zu: %s", line, col, what);
}

/* Describe the byte at p for a message: "'x'", "byte 0x0a", or "end of
 * input". */
static const char *s_what(const parser_t *ps, const char *p, char buf[16])
{
    if (p >= ps->end)
        return "end of input";
    unsigned char c = (unsigned char)*p;
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, 16, "'%c'", c);
    else
        snprintf(buf, 16, "byte 0x%02x", c);
    return buf;
}

static int s_oom(parser_t *ps)
{
    s_error(ps, ps->p, "out of memory");
    return -1;
}

static int s_add_container(parser_t *ps, size_t *ord)
{
    if (ps->ncounts == ps->capcounts) {
        size_t cap = ps->capcounts * 2;
        size_t *c;
        if (ps->counts == ps->small) {
            c = malloc(cap * sizeof *c);
            if (c)
                memcpy(c, ps->small, sizeof ps->small);
        } else {
            c = cap < SIZE_MAX / sizeof *c
                    ? realloc(ps->counts, cap * sizeof *c)
                    : NULL;
        }
        if (!c)
            return -1;
        ps->counts = c;
        ps->capcounts = cap;
    }
    *ord = ps->ncounts++;
    ps->counts[*ord] = 0;
    return 0;
}

/* Double the pre-pass stack, moving it off `local` the first time. */
static int s_grow_stack(size_t **stack, size_t *local, size_t *cap)
{
    size_t n = *cap * 2;
    size_t *s = *stack == local ? malloc(n * sizeof *s)
                                : realloc(*stack, n * sizeof *s);
    if (!s)
        return -1;
    if (*stack == local)
        memcpy(s, local, *cap * sizeof *s);
    *stack = s;
    *cap = n;
    return 0;
}

/* Pre-pass: count the members of every array and object. A container's
 * count is its commas plus one once anything appears in it. It trusts the
 * text; anything malformed is found by the main pass, which stops there,
 * before a wrong count could be used for a value it accepts. It stops at
 * nesting deeper than max_depth, where the main pass will stop too. */
static int s_count_members(parser_t *ps)
{
    size_t local[64];
    size_t *stack = local; /* ordinals of the open containers */
    size_t depth = 0, cap = sizeof local / sizeof local[0];
    size_t limit = (size_t)ps->max_depth;
    int rc = 0;
    const char *p = ps->text, *end = ps->end;
    while (p < end) {
        char c = *p++;
        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
        case ':':
            continue;
        case ',':
            if (depth)
                ps->counts[stack[depth - 1]]++;
            continue;
        case ']':
        case '}':
            if (depth)
                depth--;
            continue;
        default:
            break;
        }
        /* a value or key starts here: the container is not empty */
        if (depth && ps->counts[stack[depth - 1]] == 0)
            ps->counts[stack[depth - 1]] = 1;
        if (c == '"') {
            /* find the closing quote: one after an even run of '\\' */
            for (;;) {
                const char *q = memchr(p, '"', (size_t)(end - p));
                if (!q) {
                    p = end;
                    break;
                }
                size_t bs = 0;
                while (q - bs > p && q[-1 - (ptrdiff_t)bs] == '\\')
                    bs++;
                p = q + 1;
                if (bs % 2 == 0)
                    break;
            }
        } else if (c == '[' || c == '{') {
            size_t ord;
            if (depth == limit)
                break; /* too deep: the main pass reports it */
            if (depth == cap && s_grow_stack(&stack, local, &cap) < 0) {
                rc = -1;
                break;
            }
            if (s_add_container(ps, &ord) < 0) {
                rc = -1;
                break;
            }
            stack[depth++] = ord;
        }
    }
    if (stack != local)
        free(stack);
    return rc;
}

static void s_skip_ws(parser_t *ps)
{
    const char *p = ps->p;
    while (p < ps->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    ps->p = p;
}

/* Length of the valid UTF-8 sequence at p (whose lead byte is >= 0x80), or
 * 0: no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t s_utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t avail = (size_t)(end - p);
    if (c >= 0xC2 && c <= 0xDF)
        return avail >= 2 && (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        if (avail < 3 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80)
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        if (avail < 4 || p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Four hex digits at p (caller checked they are there), or -1. */
static long s_hex4(const char *p)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decode the escape at *pp (on its backslash) onto ps->scratch. */
static int s_escape_seq(parser_t *ps, const char **pp)
{
    const char *p = *pp;
    char tmp[16];
    if (ps->end - p < 2) {
        s_error(ps, p, "unterminated escape at end of input");
        return -1;
    }
    char c = p[1], out[4];
    size_t n = 1;
    switch (c) {
    case '"':
    case '\\':
    case '/':
        out[0] = c;
        break;
    case 'b':
        out[0] = '\b';
        break;
    case 'f':
        out[0] = '\f';
        break;
    case 'n':
        out[0] = '\n';
        break;
    case 'r':
        out[0] = '\r';
        break;
    case 't':
        out[0] = '\t';
        break;
    case 'u': {
        long cp = ps->end - p >= 6 ? s_hex4(p + 2) : -1;
        if (cp < 0) {
            s_error(ps, p, "expected four hex digits after \\u");
            return -1;
        }
        if (cp >= 0xDC00 && cp <= 0xDFFF) {
            s_error(ps, p, "lone low surrogate \\u%04lx", cp);
            return -1;
        }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = ps->end - p >= 12 && p[6] == '\\' && p[7] == 'u'
                          ? s_hex4(p + 8)
                          : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                s_error(ps, p,
                        "lone high surrogate \\u%04lx (expected a low "
                        "surrogate \\udc00-\\udfff after it)",
                        cp);
                return -1;
            }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
        if (cp < 0x80) {
            out[0] = (char)cp;
        } else if (cp < 0x800) {
            out[0] = (char)(0xC0 | (cp >> 6));
            out[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        } else if (cp < 0x10000) {
            out[0] = (char)(0xE0 | (cp >> 12));
            out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[2] = (char)(0x80 | (cp & 0x3F));
            n = 3;
        } else {
            out[0] = (char)(0xF0 | (cp >> 18));
            out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
            out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
            out[3] = (char)(0x80 | (cp & 0x3F));
            n = 4;
        }
        p += 4;
        break;
    }
    default:
        s_error(ps, p, "invalid escape: backslash followed by %s",
                s_what(ps, p + 1, tmp));
        return -1;
    }
    if (evb_buf_append(&ps->scratch, out, n) < 0)
        return s_oom(ps);
    *pp = p + 2;
    return 0;
}

/* Parse the string whose opening quote is at ps->p. On success *s and *n
 * hold its decoded bytes: in the text itself when it has no escapes,
 * otherwise in ps->scratch (valid until the next string). */
static int s_string(parser_t *ps, const char **s, size_t *n)
{
    const char *start = ps->p + 1, *run = start, *p = start;
    const char *end = ps->end;
    int escaped = 0;
    for (;;) {
        unsigned char c = 0;
        while (p < end) {
            c = (unsigned char)*p;
            if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80)
                break;
            p++;
        }
        if (p == end) {
            s_error(ps, ps->p, "unterminated string");
            return -1;
        }
        if (c == '"')
            break;
        if (c == '\\') {
            if (!escaped) {
                escaped = 1;
                evb_buf_reset(&ps->scratch);
            }
            if (evb_buf_append(&ps->scratch, run, (size_t)(p - run)) < 0)
                return s_oom(ps);
            if (s_escape_seq(ps, &p) < 0)
                return -1;
            run = p;
        } else if (c < 0x20) {
            s_error(ps, p,
                    "control character 0x%02x must be escaped in a string", c);
            return -1;
        } else {
            size_t k = s_utf8_seq((const unsigned char *)p,
                                  (const unsigned char *)end);
            if (!k) {
                s_error(ps, p, "invalid UTF-8 (byte 0x%02x) in string", c);
                return -1;
            }
            p += k;
        }
    }
    if (escaped) {
        if (evb_buf_append(&ps->scratch, run, (size_t)(p - run)) < 0)
            return s_oom(ps);
        *s = ps->scratch.data;
        *n = ps->scratch.len;
    } else {
        *s = start;
        *n = (size_t)(p - start);
    }
    ps->p = p + 1;
    return 0;
}

static int s_pack_str(parser_t *ps, const char *s, size_t n)
{
    if (msgpack_pack_str(ps->pk, n) != 0 ||
        (n && msgpack_pack_str_body(ps->pk, s, n) != 0))
        return s_oom(ps);
    return 0;
}

static int s_is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int s_starts_with(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0;
}

static int s_number(parser_t *ps)
{
    const char *start = ps->p, *p = start, *end = ps->end;
    char tmp[16];
    int negative = 0, integral = 1, overflow = 0;
    uint64_t mag = 0;
    if (*p == '-') {
        negative = 1;
        p++;
    }
    if (!s_is_digit(p, end)) {
        if (s_starts_with(p, end, "Infinity"))
            s_error(ps, start, "Infinity is not a JSON number");
        else
            s_error(ps, p, "expected a digit after '-', found %s",
                    s_what(ps, p, tmp));
        return -1;
    }
    if (*p == '0') {
        p++;
        if (s_is_digit(p, end)) {
            s_error(ps, p - 1, "leading zero in a number");
            return -1;
        }
    } else {
        while (s_is_digit(p, end)) {
            unsigned d = (unsigned)(*p++ - '0');
            if (mag > (UINT64_MAX - d) / 10)
                overflow = 1;
            else
                mag = mag * 10 + d;
        }
    }
    if (p < end && *p == '.') {
        p++;
        if (!s_is_digit(p, end)) {
            s_error(ps, p, "expected a digit after '.', found %s",
                    s_what(ps, p, tmp));
            return -1;
        }
        while (s_is_digit(p, end))
            p++;
        integral = 0;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!s_is_digit(p, end)) {
            s_error(ps, p, "expected a digit in the exponent, found %s",
                    s_what(ps, p, tmp));
            return -1;
        }
        while (s_is_digit(p, end))
            p++;
        integral = 0;
    }
    int rc;
    if (integral && !overflow && !negative && mag <= INT64_MAX) {
        rc = msgpack_pack_int64(ps->pk, (int64_t)mag);
    } else if (integral && !overflow && !negative) {
        rc = msgpack_pack_uint64(ps->pk, mag);
    } else if (integral && !overflow && mag <= (uint64_t)INT64_MAX + 1) {
        /* -(mag - 1) - 1 reaches INT64_MIN without overflowing */
        rc = msgpack_pack_int64(ps->pk, mag ? -(int64_t)(mag - 1) - 1 : 0);
    } else {
        /* strtod wants a terminated copy; numbers are short, mostly */
        size_t len = (size_t)(p - start);
        char small[64];
        const char *num = small;
        if (len < sizeof small) {
            memcpy(small, start, len);
            small[len] = '\0';
        } else {
            evb_buf_reset(&ps->scratch);
            if (evb_buf_append(&ps->scratch, start, len) < 0)
                return s_oom(ps);
            num = ps->scratch.data;
        }
        double d = strtod(num, NULL);
        if (!isfinite(d)) {
            s_error(ps, start, "number too large for a double");
            return -1;
        }
        rc = msgpack_pack_double(ps->pk, d);
    }
    if (rc != 0)
        return s_oom(ps);
    ps->p = p;
    return 0;
}

static int s_value(parser_t *ps, int depth);

/* Open the next container: check the nesting, pack its header. */
static int s_open(parser_t *ps, int depth, int is_map, size_t *count)
{
    if (depth >= ps->max_depth) {
        s_error(ps, ps->p, "nesting deeper than %d", ps->max_depth);
        return -1;
    }
    size_t ord = ps->next++;
    if (ord >= ps->ncounts) {
        s_error(ps, ps->p, "internal error: member count missing");
        return -1;
    }
    *count = ps->counts[ord];
    if (*count > UINT32_MAX) {
        s_error(ps, ps->p, "more than 4294967295 members");
        return -1;
    }
    int rc = is_map ? msgpack_pack_map(ps->pk, *count)
                    : msgpack_pack_array(ps->pk, *count);
    if (rc != 0)
        return s_oom(ps);
    ps->p++;
    return 0;
}

/* After a member: ',' (then not the closer) or the closer. Returns 1 when
 * the container is closed, 0 when another member follows, -1 on error. */
static int s_after_member(parser_t *ps, char closer)
{
    char tmp[16];
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == closer) {
        ps->p++;
        return 1;
    }
    if (ps->p == ps->end || *ps->p != ',') {
        s_error(ps, ps->p, "expected ',' or '%c', found %s", closer,
                s_what(ps, ps->p, tmp));
        return -1;
    }
    const char *comma = ps->p++;
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == closer) {
        s_error(ps, comma, "trailing comma before '%c'", closer);
        return -1;
    }
    return 0;
}

static int s_check_count(parser_t *ps, size_t want, size_t got)
{
    if (want == got)
        return 0;
    s_error(ps, ps->p, "internal error: counted %zu members, parsed %zu", want,
            got);
    return -1;
}

static int s_array(parser_t *ps, int depth)
{
    size_t count, got = 0;
    if (s_open(ps, depth, 0, &count) < 0)
        return -1;
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return s_check_count(ps, count, 0);
    }
    for (;;) {
        if (s_value(ps, depth + 1) < 0)
            return -1;
        got++;
        int rc = s_after_member(ps, ']');
        if (rc < 0)
            return -1;
        if (rc == 1)
            return s_check_count(ps, count, got);
    }
}

static int s_object(parser_t *ps, int depth)
{
    char tmp[16];
    size_t count, got = 0;
    if (s_open(ps, depth, 1, &count) < 0)
        return -1;
    s_skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return s_check_count(ps, count, 0);
    }
    for (;;) {
        const char *s;
        size_t n;
        if (ps->p == ps->end || *ps->p != '"') {
            s_error(ps, ps->p, "expected a string key, found %s",
                    s_what(ps, ps->p, tmp));
            return -1;
        }
        if (s_string(ps, &s, &n) < 0 || s_pack_str(ps, s, n) < 0)
            return -1;
        s_skip_ws(ps);
        if (ps->p == ps->end || *ps->p != ':') {
            s_error(ps, ps->p, "expected ':' after the key, found %s",
                    s_what(ps, ps->p, tmp));
            return -1;
        }
        ps->p++;
        if (s_value(ps, depth + 1) < 0)
            return -1;
        got++;
        int rc = s_after_member(ps, '}');
        if (rc < 0)
            return -1;
        if (rc == 1)
            return s_check_count(ps, count, got);
    }
}

static int s_literal(parser_t *ps, const char *word)
{
    if (!s_starts_with(ps->p, ps->end, word)) {
        s_error(ps, ps->p, "invalid literal, expected '%s'", word);
        return -1;
    }
    ps->p += strlen(word);
    return 0;
}

/* One value at ps->p (after white space). `depth` is the number of
 * containers around it; opening another checks it against max_depth
 * before recursing, so the C stack stays bounded by max_depth. */
static int s_value(parser_t *ps, int depth)
{
    char tmp[16];
    const char *s;
    size_t n;
    int rc;
    s_skip_ws(ps);
    if (ps->p == ps->end) {
        s_error(ps, ps->p, "unexpected end of input, expected a value");
        return -1;
    }
    switch (*ps->p) {
    case '{':
        return s_object(ps, depth);
    case '[':
        return s_array(ps, depth);
    case '"':
        if (s_string(ps, &s, &n) < 0)
            return -1;
        return s_pack_str(ps, s, n);
    case 't':
        if (s_literal(ps, "true") < 0)
            return -1;
        rc = msgpack_pack_true(ps->pk);
        break;
    case 'f':
        if (s_literal(ps, "false") < 0)
            return -1;
        rc = msgpack_pack_false(ps->pk);
        break;
    case 'n':
        if (s_literal(ps, "null") < 0)
            return -1;
        rc = msgpack_pack_nil(ps->pk);
        break;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return s_number(ps);
    default:
        if (s_starts_with(ps->p, ps->end, "NaN") ||
            s_starts_with(ps->p, ps->end, "Infinity"))
            s_error(ps, ps->p, "NaN and Infinity are not JSON numbers");
        else
            s_error(ps, ps->p, "expected a value, found %s",
                    s_what(ps, ps->p, tmp));
        return -1;
    }
    return rc != 0 ? s_oom(ps) : 0;
}

int evb_json_to_msgpack(const char *text, size_t len, msgpack_packer *pk,
                        int max_depth, char *err, size_t errsz)
{
    char tmp[16];
    if (!text) {
        text = "";
        len = 0;
    }
    parser_t ps = {
        .text = text,
        .p = text,
        .end = text + len,
        .pk = pk,
        .max_depth = max_depth < 0 ? 0 : max_depth,
        .err = err,
        .errsz = errsz,
        .capcounts = sizeof ps.small / sizeof ps.small[0],
        .scratch = EVB_BUF_INIT,
    };
    ps.counts = ps.small;
    if (err && errsz)
        err[0] = '\0';
    int rc = s_count_members(&ps) < 0 ? s_oom(&ps) : s_value(&ps, 0);
    if (rc == 0) {
        s_skip_ws(&ps);
        if (ps.p != ps.end) {
            s_error(&ps, ps.p, "unexpected %s after the value",
                    s_what(&ps, ps.p, tmp));
            rc = -1;
        }
    }
    if (ps.counts != ps.small)
        free(ps.counts);
    evb_buf_free(&ps.scratch);
    return rc;
}
