/* Tests for core/json.c: msgpack -> JSON writing, base64, and the strict
 * JSON -> msgpack parser. */
#include "json.h"
#include "testmain.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers */

static msgpack_object s_nil(void)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
    return o;
}

static msgpack_object s_bool(bool b)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BOOLEAN};
    o.via.boolean = b;
    return o;
}

static msgpack_object s_uint(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    o.via.u64 = v;
    return o;
}

static msgpack_object s_int(int64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER};
    o.via.i64 = v;
    return o;
}

static msgpack_object s_f64(double v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};
    o.via.f64 = v;
    return o;
}

static msgpack_object s_strn(const char *s, size_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)n;
    return o;
}

static msgpack_object s_str(const char *s)
{
    return s_strn(s, strlen(s));
}

static msgpack_object s_bin(const char *p, size_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_BIN};
    o.via.bin.ptr = p;
    o.via.bin.size = (uint32_t)n;
    return o;
}

static msgpack_object s_array(msgpack_object *items, uint32_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY};
    o.via.array.ptr = items;
    o.via.array.size = n;
    return o;
}

static msgpack_object s_map(msgpack_object_kv *kvs, uint32_t n)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_MAP};
    o.via.map.ptr = kvs;
    o.via.map.size = n;
    return o;
}

static msgpack_object s_ext(void)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_EXT};
    o.via.ext.type = 1;
    o.via.ext.ptr = "x";
    o.via.ext.size = 1;
    return o;
}

static int s_size_visit(const evb_mp_item_t *it, int is_key, void *ctx)
{
    size_t *sz = ctx;
    sz[0] += evb_json_mp_item_size(it, is_key);
    sz[1] += it->kind == EVB_MP_FLOAT;
    return 0;
}

/* o packed into raw msgpack: evb_json_write_mp gives the same n bytes as
 * evb_json_write, and the sizes of its items add up to n exactly (to at
 * most EVB_JSON_FLOAT_MAX per float, when it has floats). */
static int s_raw_agrees(const msgpack_object *o, const char *text, size_t n)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
    const uint8_t *p = (const uint8_t *)sb.data, *end = p + sb.size;
    evb_buf_t b = EVB_BUF_INIT;
    int ok = evb_json_write_mp(&b, &p, end, 32) == 0 && p == end &&
             b.len == n && memcmp(b.data, text, n) == 0;
    size_t sz[2] = {0, 0};
    p = (const uint8_t *)sb.data;
    ok = ok && evb_mp_walk(&p, end, 32, s_size_visit, sz) == 0 &&
         (sz[1] ? sz[0] >= n && sz[0] <= n + sz[1] * EVB_JSON_FLOAT_MAX
                : sz[0] == n);
    if (!ok)
        fprintf(stderr, "\n    raw rendering [%s], %zu bytes counted\n",
                b.data ? b.data : "", sz[0]);
    evb_buf_free(&b);
    msgpack_sbuffer_destroy(&sb);
    return ok;
}

/* evb_json_write(o) succeeds and gives exactly want[0..n), and so does
 * the raw renderer, whose size is counted right. */
static int s_renders_n(const msgpack_object *o, const char *want, size_t n)
{
    evb_buf_t b = EVB_BUF_INIT;
    int rc = evb_json_write(&b, o);
    int ok = rc == 0 && b.len == n && memcmp(b.data, want, n) == 0 &&
             b.data[b.len] == '\0';
    if (!ok)
        fprintf(stderr, "\n    rendered [%s] (rc %d), want [%.*s]\n",
                rc == 0 ? b.data : "", rc, (int)n, want);
    evb_buf_free(&b);
    return ok && s_raw_agrees(o, want, n);
}

static int s_renders(const msgpack_object *o, const char *want)
{
    return s_renders_n(o, want, strlen(want));
}

static int s_refused(const msgpack_object *o)
{
    evb_buf_t b = EVB_BUF_INIT;
    int rc = evb_json_write(&b, o);
    evb_buf_free(&b);
    return rc == -1;
}

static int s_double_renders(double d, const char *want)
{
    msgpack_object o = s_f64(d);
    return s_renders(&o, want);
}

/* The result of parsing one JSON text. */
typedef struct {
    int rc;
    char err[256];
    msgpack_sbuffer sb;
    msgpack_unpacked up; /* the packed value, when rc == 0 */
} parsed_t;

static void s_parse_n(parsed_t *r, const char *json, size_t len, int max_depth)
{
    msgpack_packer pk;
    memset(r, 0, sizeof *r);
    msgpack_sbuffer_init(&r->sb);
    msgpack_unpacked_init(&r->up);
    msgpack_packer_init(&pk, &r->sb, msgpack_sbuffer_write);
    /* an exact-size copy, so that ASan catches any read past len */
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        r->rc = -3;
        return;
    }
    memcpy(copy, json, len);
    r->rc =
        evb_json_to_msgpack(copy, len, &pk, max_depth, r->err, sizeof r->err);
    free(copy);
    if (r->rc == 0) {
        size_t off = 0;
        /* exactly one packed value, nothing after it */
        if (msgpack_unpack_next(&r->up, r->sb.data, r->sb.size, &off) !=
                MSGPACK_UNPACK_SUCCESS ||
            off != r->sb.size)
            r->rc = -2;
    }
}

static void s_parse(parsed_t *r, const char *json)
{
    s_parse_n(r, json, strlen(json), 32);
}

static void s_parsed_free(parsed_t *r)
{
    msgpack_unpacked_destroy(&r->up);
    msgpack_sbuffer_destroy(&r->sb);
}

/* Parsing json[0..len) fails with a message that starts with `where`
 * ("line L, column C") followed by ": " and contains `what`. */
static int s_fails_n(const char *json, size_t len, int max_depth,
                     const char *where, const char *what)
{
    parsed_t r;
    s_parse_n(&r, json, len, max_depth);
    size_t wl = strlen(where);
    int ok = r.rc == -1 && strncmp(r.err, where, wl) == 0 &&
             strncmp(r.err + wl, ": ", 2) == 0 && strstr(r.err, what);
    if (!ok)
        fprintf(stderr,
                "\n    parsing [%.*s]: rc %d, err [%s]; want [%s: ...%s...]\n",
                (int)len, json, r.rc, r.err, where, what);
    s_parsed_free(&r);
    return ok;
}

static int s_fails(const char *json, const char *where, const char *what)
{
    return s_fails_n(json, strlen(json), 32, where, what);
}

/* Parse json, write the result back: gives exactly `want`. */
static int s_roundtrips_to(const char *json, const char *want)
{
    parsed_t r;
    s_parse(&r, json);
    int ok = r.rc == 0 && s_renders(&r.up.data, want);
    if (r.rc != 0)
        fprintf(stderr, "\n    parsing [%s]: rc %d, err [%s]\n", json, r.rc,
                r.err);
    s_parsed_free(&r);
    return ok;
}

/* Parse json to a single string: gives exactly want[0..n). */
static int s_parses_to_str(const char *json, const char *want, size_t n)
{
    parsed_t r;
    s_parse(&r, json);
    const msgpack_object *o = &r.up.data;
    int ok = r.rc == 0 && o->type == MSGPACK_OBJECT_STR &&
             o->via.str.size == n &&
             (n == 0 || memcmp(o->via.str.ptr, want, n) == 0);
    if (!ok)
        fprintf(stderr, "\n    parsing [%s]: rc %d, err [%s]\n", json, r.rc,
                r.err);
    s_parsed_free(&r);
    return ok;
}

/* ---------------------------------------------------- writing scalars */

static void test_write_nil_and_booleans_as_literals(void)
{
    msgpack_object o = s_nil();
    CU_ASSERT(s_renders(&o, "null"));
    o = s_bool(true);
    CU_ASSERT(s_renders(&o, "true"));
    o = s_bool(false);
    CU_ASSERT(s_renders(&o, "false"));
}

static void test_write_positive_integers_in_decimal_up_to_uint64_max(void)
{
    static const struct {
        uint64_t v;
        const char *want;
    } cases[] = {
        {0, "0"},
        {7, "7"},
        {10, "10"},
        {99, "99"},
        {100, "100"},
        {12345, "12345"},
        {1000000007, "1000000007"},
        {INT64_MAX, "9223372036854775807"},
        {UINT64_MAX, "18446744073709551615"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object o = s_uint(cases[i].v);
        CU_ASSERT(s_renders(&o, cases[i].want));
    }
}

static void test_write_negative_integers_down_to_int64_min(void)
{
    static const struct {
        int64_t v;
        const char *want;
    } cases[] = {
        {-1, "-1"},
        {-9, "-9"},
        {-10, "-10"},
        {-100, "-100"},
        {-987654321, "-987654321"},
        {INT64_MIN + 1, "-9223372036854775807"},
        {INT64_MIN, "-9223372036854775808"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object o = s_int(cases[i].v);
        CU_ASSERT(s_renders(&o, cases[i].want));
    }
}

static void test_write_float_as_shortest_text_that_round_trips(void)
{
    CU_ASSERT(s_double_renders(0.1, "0.1"));
    CU_ASSERT(s_double_renders(1e300, "1e+300"));
    CU_ASSERT(s_double_renders(1.0 / 3, "0.3333333333333333"));
    CU_ASSERT(s_double_renders(0.1 + 0.2, "0.30000000000000004"));
    CU_ASSERT(s_double_renders(1.5, "1.5"));
    CU_ASSERT(s_double_renders(-1.5e-10, "-1.5e-10"));
    CU_ASSERT(s_double_renders(1e-7, "1e-07"));
    CU_ASSERT(s_double_renders(123456789012345680.0, "1.2345678901234568e+17"));
    CU_ASSERT(
        s_double_renders(1.7976931348623157e308, "1.7976931348623157e+308"));
    CU_ASSERT(s_double_renders(5e-324, "4.94065645841247e-324"));
    CU_ASSERT(s_double_renders(0.25, "0.25"));
    CU_ASSERT(s_double_renders(-21.5, "-21.5"));
    CU_ASSERT(s_double_renders(3.14159, "3.14159"));
    CU_ASSERT(s_double_renders(0.0001, "0.0001"));
    CU_ASSERT(s_double_renders(0.00012, "0.00012"));
    CU_ASSERT(s_double_renders(0.00001, "1e-05"));
    CU_ASSERT(s_double_renders(12345678901234.5, "12345678901234.5"));
    CU_ASSERT(s_double_renders(123456789012345.6, "123456789012345.6"));
    CU_ASSERT(s_double_renders(1e14 + 0.5, "100000000000000.5"));
}

static void test_write_whole_floats_keep_a_decimal_point(void)
{
    CU_ASSERT(s_double_renders(5.0, "5.0"));
    CU_ASSERT(s_double_renders(0.0, "0.0"));
    CU_ASSERT(s_double_renders(-0.0, "-0.0"));
    CU_ASSERT(s_double_renders(-7.0, "-7.0"));
    CU_ASSERT(s_double_renders(100.0, "100.0"));
    CU_ASSERT(s_double_renders(999999999999999.0, "999999999999999.0"));
    CU_ASSERT(s_double_renders(1e15, "1e+15"));
    CU_ASSERT(s_double_renders(-1e15, "-1e+15"));
    CU_ASSERT(s_double_renders(9007199254740992.0, "9007199254740992.0"));
    CU_ASSERT(s_double_renders(1e21, "1e+21"));
}

/* What json.h documents, done the slow obvious way. */
static void s_reference_double(double d, char *out, size_t outsz)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, outsz, "%.*g", prec, d);
        if (prec == 17 || strtod(out, NULL) == d)
            break;
    }
    if (!strpbrk(out, ".eE"))
        strcat(out, ".0");
}

static void
test_write_float_matches_documented_printf_rule_for_many_values(void)
{
    uint64_t x = 88172645463325252u; /* xorshift64 */
    int mismatches = 0;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 4) {
        case 0: /* any finite bit pattern */
            memcpy(&d, &x, sizeof d);
            if (!isfinite(d))
                continue;
            break;
        case 1: /* whole numbers around the 1e15 fast-path edge */
            d = (double)((int64_t)(x % 4000000000000000u) - 2000000000000000);
            break;
        case 2: /* small whole numbers */
            d = (double)((int64_t)(x % 2000001) - 1000000);
            break;
        default: { /* short decimals at many scales */
            static const double scale[] = {10,   100,  1e3, 1e4,  1e5,
                                           1e6,  1e7,  1e8, 1e-3, 1e-9,
                                           1e10, 1e12, 3,   7};
            d = (double)((int64_t)(x % 2000001) - 1000000) /
                scale[(x >> 32) % (sizeof scale / sizeof scale[0])];
            break;
        }
        }
        char want[64];
        s_reference_double(d, want, sizeof want);
        if (!s_double_renders(d, want) && ++mismatches > 5)
            break;
    }
    CU_ASSERT_EQUAL(mismatches, 0);
}

static void test_write_float_text_reads_back_as_the_same_double(void)
{
    const double values[] = {
        0.1,           1.0 / 3, 2.0 / 3,   3.141592653589793, 1e-300,
        6.02214076e23, 4.35,    0.1 + 0.7, 1234.5678,         -2.5e-5};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        msgpack_object o = s_f64(values[i]);
        evb_buf_t b = EVB_BUF_INIT;
        CU_ASSERT_EQUAL_FATAL(evb_json_write(&b, &o), 0);
        CU_ASSERT(strtod(b.data, NULL) == values[i]);
        evb_buf_free(&b);
    }
}

static void test_write_float32_from_its_exact_double_value(void)
{
    /* json.h: the text reads back to the same double; 0.1f is not 0.1 */
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT32};
    o.via.f64 = (double)0.1f;
    CU_ASSERT(s_renders(&o, "0.10000000149011612"));
    o.via.f64 = (double)2.5f;
    CU_ASSERT(s_renders(&o, "2.5"));
    o.via.f64 = (double)3.0f;
    CU_ASSERT(s_renders(&o, "3.0"));
}

static void test_write_refuses_nan_and_infinities(void)
{
    msgpack_object o = s_f64(NAN);
    CU_ASSERT(s_refused(&o));
    o = s_f64(INFINITY);
    CU_ASSERT(s_refused(&o));
    o = s_f64(-INFINITY);
    CU_ASSERT(s_refused(&o));
    o.type = MSGPACK_OBJECT_FLOAT32;
    CU_ASSERT(s_refused(&o));
    msgpack_object items[2] = {s_uint(1), s_f64(NAN)};
    o = s_array(items, 2);
    CU_ASSERT(s_refused(&o));
}

static void test_write_refuses_ext_anywhere(void)
{
    msgpack_object o = s_ext();
    CU_ASSERT(s_refused(&o));
    msgpack_object items[2] = {s_str("a"), s_ext()};
    o = s_array(items, 2);
    CU_ASSERT(s_refused(&o));
    msgpack_object_kv as_value = {s_str("k"), s_ext()};
    o = s_map(&as_value, 1);
    CU_ASSERT(s_refused(&o));
    msgpack_object_kv as_key = {s_ext(), s_uint(1)};
    o = s_map(&as_key, 1);
    CU_ASSERT(s_refused(&o));
}

/* ---------------------------------------------------- writing strings */

static void test_write_plain_and_empty_strings_quoted(void)
{
    msgpack_object o = s_str("hello, world");
    CU_ASSERT(s_renders(&o, "\"hello, world\""));
    o = s_str("");
    CU_ASSERT(s_renders(&o, "\"\""));
    o = s_str("a/b's <tag> & {x}");
    CU_ASSERT(s_renders(&o, "\"a/b's <tag> & {x}\""));
}

static void test_write_escapes_quote_and_backslash(void)
{
    msgpack_object o = s_str("say \"hi\" \\ bye");
    CU_ASSERT(s_renders(&o, "\"say \\\"hi\\\" \\\\ bye\""));
    o = s_str("\"\\");
    CU_ASSERT(s_renders(&o, "\"\\\"\\\\\""));
}

static void test_write_escapes_common_control_characters_short(void)
{
    msgpack_object o = s_str("a\nb\tc\rd\be\ff");
    CU_ASSERT(s_renders(&o, "\"a\\nb\\tc\\rd\\be\\ff\""));
}

static void test_write_escapes_control_characters_as_u00xx(void)
{
    msgpack_object o = s_strn("\x00\x01\x1f\x0b\x1b", 5);
    CU_ASSERT(s_renders(&o, "\"\\u0000\\u0001\\u001f\\u000b\\u001b\""));
}

static void test_write_copies_del_and_utf8_raw(void)
{
    const char *s =
        "\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xe2\x80\xa8";
    msgpack_object o = s_str(s);
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", s);
    CU_ASSERT(s_renders(&o, want));
}

static void test_write_copies_invalid_utf8_as_is(void)
{
    msgpack_object o = s_strn("a\xff\xc3z", 4);
    CU_ASSERT(s_renders_n(&o, "\"a\xff\xc3z\"", 6));
}

/* Every byte value, at every offset in and around an 8-byte word, is
 * escaped exactly when JSON requires it. */
static void test_write_escapes_exactly_the_required_bytes_at_any_offset(void)
{
    int bad = 0;
    for (int c = 0; c < 256 && bad < 5; c++) {
        char esc[8];
        if (c == '"' || c == '\\')
            snprintf(esc, sizeof esc, "\\%c", c);
        else if (c == '\n')
            strcpy(esc, "\\n");
        else if (c == '\t')
            strcpy(esc, "\\t");
        else if (c == '\r')
            strcpy(esc, "\\r");
        else if (c == '\b')
            strcpy(esc, "\\b");
        else if (c == '\f')
            strcpy(esc, "\\f");
        else if (c < 0x20)
            snprintf(esc, sizeof esc, "\\u%04x", c);
        else
            snprintf(esc, sizeof esc, "%c", c);
        for (size_t len = 1; len <= 20 && bad < 5; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                char s[32], want[64];
                memset(s, 0x80 | 'a', len); /* high bytes around it */
                s[pos] = (char)c;
                size_t w = 0;
                want[w++] = '"';
                for (size_t i = 0; i < len; i++) {
                    if (i == pos) {
                        memcpy(want + w, esc, strlen(esc));
                        w += strlen(esc);
                    } else {
                        want[w++] = s[i];
                    }
                }
                want[w++] = '"';
                msgpack_object o = s_strn(s, len);
                if (!s_renders_n(&o, want, w))
                    bad++;
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_write_string_escapes_long_text_with_many_escapes(void)
{
    /* grows the buffer repeatedly while escaping */
    size_t n = 5000;
    char *s = malloc(n);
    char *want = malloc(n * 6 + 3);
    CU_ASSERT_FATAL(s && want);
    size_t w = 0;
    want[w++] = '"';
    for (size_t i = 0; i < n; i++) {
        s[i] = i % 3 ? '\x01' : 'x';
        if (s[i] == 'x') {
            want[w++] = 'x';
        } else {
            memcpy(want + w, "\\u0001", 6);
            w += 6;
        }
    }
    want[w++] = '"';
    evb_buf_t b = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(evb_json_write_string(&b, s, n), 0);
    CU_ASSERT_EQUAL(b.len, w);
    CU_ASSERT(b.len == w && memcmp(b.data, want, w) == 0);
    CU_ASSERT_EQUAL(b.data[b.len], '\0');
    evb_buf_free(&b);
    free(s);
    free(want);
}

/* Escapes early in a long string must not eat the room the rest of it
 * needs (ASan watches the buffer at every size around a growth step). */
static void test_write_string_escapes_before_a_long_safe_run(void)
{
    int bad = 0;
    for (size_t n = 1000; n < 1100 && !bad; n++) {
        for (size_t k = 1; k <= 24 && !bad; k += 23) {
            char *s = malloc(n);
            char *want = malloc(n * 6 + 3);
            CU_ASSERT_FATAL(s && want);
            size_t w = 0;
            want[w++] = '"';
            for (size_t i = 0; i < n; i++) {
                s[i] = i < k ? '\x01' : 'a';
                if (i < k) {
                    memcpy(want + w, "\\u0001", 6);
                    w += 6;
                } else {
                    want[w++] = 'a';
                }
            }
            want[w++] = '"';
            evb_buf_t b = EVB_BUF_INIT;
            /* start from a buffer holding n + 3 bytes' worth of room */
            if (evb_buf_reserve(&b, n + 2) < 0 ||
                evb_json_write_string(&b, s, n) < 0 || b.len != w ||
                memcmp(b.data, want, w) != 0)
                bad = 1;
            evb_buf_free(&b);
            free(s);
            free(want);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

static void test_write_string_appends_to_what_the_buffer_holds(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(evb_buf_puts(&b, "x="), 0);
    CU_ASSERT_EQUAL(evb_json_write_string(&b, "a\"b", 3), 0);
    msgpack_object o = s_uint(42);
    CU_ASSERT_EQUAL(evb_json_write(&b, &o), 0);
    CU_ASSERT_STRING_EQUAL(b.data, "x=\"a\\\"b\"42");
    evb_buf_free(&b);
}

/* -------------------------------------------------------------- base64 */

static int s_base64_is(const char *in, size_t n, const char *want)
{
    evb_buf_t b = EVB_BUF_INIT;
    int ok = evb_base64_encode(&b, in, n) == 0 && b.data &&
             strcmp(b.data, want) == 0 && b.len == strlen(want);
    if (!ok)
        fprintf(stderr, "\n    base64 gave [%s], want [%s]\n",
                b.data ? b.data : "(null)", want);
    evb_buf_free(&b);
    return ok;
}

static void test_base64_matches_rfc4648_test_vectors(void)
{
    CU_ASSERT(s_base64_is("", 0, ""));
    CU_ASSERT(s_base64_is("f", 1, "Zg=="));
    CU_ASSERT(s_base64_is("fo", 2, "Zm8="));
    CU_ASSERT(s_base64_is("foo", 3, "Zm9v"));
    CU_ASSERT(s_base64_is("foob", 4, "Zm9vYg=="));
    CU_ASSERT(s_base64_is("fooba", 5, "Zm9vYmE="));
    CU_ASSERT(s_base64_is("foobar", 6, "Zm9vYmFy"));
}

static void test_base64_uses_plus_and_slash_for_high_values(void)
{
    CU_ASSERT(s_base64_is("\xfb\xff", 2, "+/8="));
    CU_ASSERT(s_base64_is("\x00\x00\x00", 3, "AAAA"));
    CU_ASSERT(s_base64_is("\xff\xff\xff\xff", 4, "/////w=="));
}

static int s_unbase64_is(const char *text, const char *want, size_t n)
{
    evb_buf_t b = EVB_BUF_INIT;
    int ok = evb_base64_decode(&b, text, strlen(text)) == 0 && b.len == n &&
             (n == 0 || memcmp(b.data, want, n) == 0);
    evb_buf_free(&b);
    return ok;
}

static void test_base64_decodes_what_it_encodes(void)
{
    CU_ASSERT(s_unbase64_is("", "", 0));
    CU_ASSERT(s_unbase64_is("Zg==", "f", 1));
    CU_ASSERT(s_unbase64_is("Zm8=", "fo", 2));
    CU_ASSERT(s_unbase64_is("Zm9vYmFy", "foobar", 6));
    CU_ASSERT(s_unbase64_is("+/8=", "\xfb\xff", 2));
    /* every byte value round-trips */
    char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (char)i;
    evb_buf_t enc = EVB_BUF_INIT;
    CU_ASSERT_EQUAL_FATAL(evb_base64_encode(&enc, all, sizeof all), 0);
    CU_ASSERT(s_unbase64_is(enc.data, all, sizeof all));
    evb_buf_free(&enc);
}

static void test_base64_decode_refuses_malformed_text(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(evb_base64_decode(&b, "Zm9", 3), -1);      /* length */
    CU_ASSERT_EQUAL(evb_base64_decode(&b, "Zm9*", 4), -1);     /* alphabet */
    CU_ASSERT_EQUAL(evb_base64_decode(&b, "Zg==Zm8=", 8), -1); /* inner pad */
    CU_ASSERT_EQUAL(evb_base64_decode(&b, "Z=g=", 4), -1);
    evb_buf_free(&b);
}

static void test_write_bin_as_base64_string(void)
{
    msgpack_object o = s_bin("foobar", 6);
    CU_ASSERT(s_renders(&o, "\"Zm9vYmFy\""));
    o = s_bin("\x00\xfb\xff", 3);
    CU_ASSERT(s_renders(&o, "\"APv/\""));
    o = s_bin(NULL, 0);
    CU_ASSERT(s_renders(&o, "\"\""));
}

/* --------------------------------------------------- writing containers */

static void test_write_arrays_and_maps_compactly(void)
{
    msgpack_object inner[3] = {s_uint(1), s_str("two"), s_nil()};
    msgpack_object_kv kvs[3] = {
        {s_str("list"), s_array(inner, 3)},
        {s_str("n"), s_int(-3)},
        {s_str("ok"), s_bool(true)},
    };
    msgpack_object o = s_map(kvs, 3);
    CU_ASSERT(
        s_renders(&o, "{\"list\":[1,\"two\",null],\"n\":-3,\"ok\":true}"));
}

static void test_write_empty_array_and_map(void)
{
    msgpack_object o = s_array(NULL, 0);
    CU_ASSERT(s_renders(&o, "[]"));
    o = s_map(NULL, 0);
    CU_ASSERT(s_renders(&o, "{}"));
    msgpack_object items[2] = {s_array(NULL, 0), s_map(NULL, 0)};
    o = s_array(items, 2);
    CU_ASSERT(s_renders(&o, "[[],{}]"));
}

static void test_write_scalar_keys_as_their_json_text_in_a_string(void)
{
    msgpack_object_kv kvs[] = {
        {s_uint(1), s_str("a")},    {s_int(-2), s_str("b")},
        {s_bool(true), s_uint(1)},  {s_nil(), s_uint(2)},
        {s_f64(1.5), s_uint(3)},    {s_f64(2.0), s_uint(4)},
        {s_bool(false), s_uint(5)},
    };
    msgpack_object o = s_map(kvs, sizeof kvs / sizeof kvs[0]);
    CU_ASSERT(s_renders(&o, "{\"1\":\"a\",\"-2\":\"b\",\"true\":1,\"null\":2,"
                            "\"1.5\":3,\"2.0\":4,\"false\":5}"));
}

/* The size counted without writing is the size written, for strings of
 * every length with escapes at every place (word, SIMD and tail paths). */
static void test_string_size_is_the_written_size(void)
{
    static const char alphabet[] = "ab\"\\\n\t\x01\x1f \x7f\xc3\xa9z";
    unsigned seed = 12345;
    int bad = 0;
    for (size_t n = 0; n < 80; n++) {
        for (int round = 0; round < 200; round++) {
            char str[80];
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                /* mostly plain letters, sometimes anything */
                str[i] = (seed >> 16) % 8
                             ? 'q'
                             : alphabet[(seed >> 8) % (sizeof alphabet - 1)];
            }
            evb_buf_t b = EVB_BUF_INIT;
            CU_ASSERT_EQUAL_FATAL(evb_json_write_string(&b, str, n), 0);
            bad += evb_json_string_size(str, n) != b.len;
            evb_buf_free(&b);
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* An array or map as a key would be written as the escaped JSON of the
 * level below, doubling per level (22 levels: 16.8 MB from 76 bytes):
 * neither writer takes one. */
static void test_write_refuses_array_and_map_keys(void)
{
    msgpack_object key_items[2] = {s_uint(1), s_str("x")};
    msgpack_object_kv key_kv = {s_str("k"), s_str("v")};
    msgpack_object_kv kvs[2] = {{s_array(key_items, 2), s_uint(5)},
                                {s_map(&key_kv, 1), s_uint(6)}};
    for (int i = 0; i < 2; i++) {
        msgpack_object o = s_map(&kvs[i], 1);
        CU_ASSERT(s_refused(&o));
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, o);
        const uint8_t *p = (const uint8_t *)sb.data;
        evb_buf_t b = EVB_BUF_INIT;
        CU_ASSERT_EQUAL(evb_json_write_mp(&b, &p, p + sb.size, 32), -1);
        evb_buf_free(&b);
        msgpack_sbuffer_destroy(&sb);
    }
}

static void test_write_bin_key_as_its_base64_string(void)
{
    msgpack_object_kv kv = {s_bin("foo", 3), s_uint(1)};
    msgpack_object o = s_map(&kv, 1);
    CU_ASSERT(s_renders(&o, "{\"Zm9v\":1}"));
}

/* ------------------------------------------------------ parsing values */

static void test_parse_literals_to_bool_and_nil(void)
{
    parsed_t r;
    s_parse(&r, "true");
    CU_ASSERT(r.rc == 0 && r.up.data.type == MSGPACK_OBJECT_BOOLEAN &&
              r.up.data.via.boolean);
    s_parsed_free(&r);
    s_parse(&r, "false");
    CU_ASSERT(r.rc == 0 && r.up.data.type == MSGPACK_OBJECT_BOOLEAN &&
              !r.up.data.via.boolean);
    s_parsed_free(&r);
    s_parse(&r, " \t\r\n null \n");
    CU_ASSERT(r.rc == 0 && r.up.data.type == MSGPACK_OBJECT_NIL);
    s_parsed_free(&r);
}

/* json parses to an integer of msgpack type `type` and value (u64/i64). */
static int s_parses_to_int(const char *json, msgpack_object_type type,
                           uint64_t u, int64_t i)
{
    parsed_t r;
    s_parse(&r, json);
    const msgpack_object *o = &r.up.data;
    int ok = r.rc == 0 && o->type == type &&
             (type == MSGPACK_OBJECT_POSITIVE_INTEGER ? o->via.u64 == u
                                                      : o->via.i64 == i);
    if (!ok)
        fprintf(stderr, "\n    parsing [%s]: rc %d type %d err [%s]\n", json,
                r.rc, (int)o->type, r.err);
    s_parsed_free(&r);
    return ok;
}

static int s_parses_to_double(const char *json, double want)
{
    parsed_t r;
    s_parse(&r, json);
    const msgpack_object *o = &r.up.data;
    int ok =
        r.rc == 0 && o->type == MSGPACK_OBJECT_FLOAT64 && o->via.f64 == want;
    if (!ok)
        fprintf(stderr, "\n    parsing [%s]: rc %d type %d err [%s]\n", json,
                r.rc, (int)o->type, r.err);
    s_parsed_free(&r);
    return ok;
}

static void test_parse_integers_choose_int_uint_or_double_at_boundaries(void)
{
    const msgpack_object_type pos = MSGPACK_OBJECT_POSITIVE_INTEGER;
    const msgpack_object_type neg = MSGPACK_OBJECT_NEGATIVE_INTEGER;
    CU_ASSERT(s_parses_to_int("0", pos, 0, 0));
    CU_ASSERT(s_parses_to_int("-0", pos, 0, 0));
    CU_ASSERT(s_parses_to_int("42", pos, 42, 0));
    CU_ASSERT(s_parses_to_int("-1", neg, 0, -1));
    CU_ASSERT(s_parses_to_int("9223372036854775807", pos, INT64_MAX, 0));
    CU_ASSERT(s_parses_to_int("9223372036854775808", pos,
                              (uint64_t)INT64_MAX + 1, 0));
    CU_ASSERT(s_parses_to_int("18446744073709551615", pos, UINT64_MAX, 0));
    CU_ASSERT(
        s_parses_to_double("18446744073709551616", 18446744073709551616.0));
    CU_ASSERT(s_parses_to_int("-9223372036854775808", neg, 0, INT64_MIN));
    CU_ASSERT(
        s_parses_to_double("-9223372036854775809", -9223372036854775808.0));
    CU_ASSERT(s_parses_to_double("1000000000000000000000000",
                                 1000000000000000000000000.0));
}

static void test_parse_fraction_or_exponent_gives_double(void)
{
    CU_ASSERT(s_parses_to_double("1.0", 1.0));
    CU_ASSERT(s_parses_to_double("1e2", 100.0));
    CU_ASSERT(s_parses_to_double("1E2", 100.0));
    CU_ASSERT(s_parses_to_double("-0.0", -0.0));
    CU_ASSERT(s_parses_to_double("0.1", 0.1));
    CU_ASSERT(s_parses_to_double("-2.5e-3", -2.5e-3));
    CU_ASSERT(s_parses_to_double("1e+300", 1e300));
    CU_ASSERT(s_parses_to_double("0e0", 0.0));
    /* longer than the parser's stack copy */
    CU_ASSERT(s_parses_to_double(
        "0.10000000000000000000000000000000000000000000000000000000000000001",
        0.1));
}

static void test_parse_number_overflowing_double_is_refused(void)
{
    CU_ASSERT(s_fails("[1e400]", "line 1, column 2", "too large"));
    CU_ASSERT(s_fails("-1e400", "line 1, column 1", "too large"));
}

static void test_parse_string_escapes_decoded(void)
{
    static const char want[] = "\"\\/\b\f\n\r\tA\xc3\xa9\xe2\x82\xac\0z";
    CU_ASSERT(
        s_parses_to_str("\"\\\"\\\\\\/\\b\\f\\n\\r\\tA\\u00e9\\u20AC\\u0000z\"",
                        want, sizeof want - 1));
    CU_ASSERT(s_parses_to_str("\"\"", "", 0));
    CU_ASSERT(s_parses_to_str("\"plain\"", "plain", 5));
}

static void test_parse_surrogate_pair_decodes_to_four_byte_utf8(void)
{
    CU_ASSERT(s_parses_to_str("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4));
    CU_ASSERT(s_parses_to_str("\"a\\uD83D\\uDE00b\"",
                              "a\xf0\x9f\x98\x80"
                              "b",
                              6));
    CU_ASSERT(s_parses_to_str("\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4));
}

static void test_parse_raw_utf8_and_del_kept_as_is(void)
{
    const char *s = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \x7f";
    char json[64];
    snprintf(json, sizeof json, "\"%s\"", s);
    CU_ASSERT(s_parses_to_str(json, s, strlen(s)));
}

static void test_parse_object_member_counts_survive_nesting_and_strings(void)
{
    /* brackets, commas, quotes and backslashes inside strings must not
     * disturb the member counts */
    const char *json = "{\"a\":[1,2,{\"b\":\"x,y]}\\\"{[\"}],\"c\":{},"
                       "\"d\":\"\\\\\",\"e\":[[],[[]],{},\"]\"],"
                       "\"f\\\"[,\":{\"g\":{\"h\":[null,true]}}}";
    parsed_t r;
    s_parse(&r, json);
    CU_ASSERT_EQUAL_FATAL(r.rc, 0);
    const msgpack_object *o = &r.up.data;
    CU_ASSERT_EQUAL_FATAL(o->type, MSGPACK_OBJECT_MAP);
    CU_ASSERT_EQUAL_FATAL(o->via.map.size, 5);
    const msgpack_object *a = &o->via.map.ptr[0].val;
    CU_ASSERT(a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 3);
    const msgpack_object *d = &o->via.map.ptr[2].val;
    CU_ASSERT(d->type == MSGPACK_OBJECT_STR && d->via.str.size == 1 &&
              d->via.str.ptr[0] == '\\');
    const msgpack_object *e = &o->via.map.ptr[3].val;
    CU_ASSERT(e->type == MSGPACK_OBJECT_ARRAY && e->via.array.size == 4);
    s_parsed_free(&r);
    /* writing it back gives the same text */
    CU_ASSERT(s_roundtrips_to(json, json));
}

static void test_parse_many_containers_beyond_the_inline_counts(void)
{
    evb_buf_t in = EVB_BUF_INIT;
    CU_ASSERT_EQUAL_FATAL(evb_buf_putc(&in, '['), 0);
    for (int i = 0; i < 1000; i++)
        CU_ASSERT_EQUAL_FATAL(evb_buf_printf(&in, "%s{\"i\":%d,\"l\":[%d,[]]}",
                                             i ? "," : "", i, i % 7),
                              0);
    CU_ASSERT_EQUAL_FATAL(evb_buf_putc(&in, ']'), 0);
    CU_ASSERT(s_roundtrips_to(in.data, in.data));
    evb_buf_free(&in);
}

static void test_parse_duplicate_keys_kept_in_order(void)
{
    CU_ASSERT(s_roundtrips_to("{\"a\":1,\"a\":2,\"a\":{\"a\":3}}",
                              "{\"a\":1,\"a\":2,\"a\":{\"a\":3}}"));
}

static void test_parse_then_write_round_trips_a_cloudevents_document(void)
{
    const char *in =
        "{\n"
        "  \"specversion\" : \"1.0\",\n"
        "  \"id\": \"A234-1234-1234\",\n"
        "  \"source\": \"https://example.com/ci/builds\",\n"
        "  \"type\": \"com.example.build.finished\",\n"
        "  \"time\": \"2018-04-05T17:31:00Z\",\n"
        "  \"datacontenttype\": \"application/json\",\n"
        "  \"subject\": \"caf\\u00e9 \\ud83d\\ude00\",\n"
        "  \"data\": {\n"
        "    \"task_id\": \"T-1\", \"duration_ms\": 5120,\n"
        "    \"ratio\": 0.25, \"ok\": true, \"retries\": 0,\n"
        "    \"delta\": -42, \"big\": 18446744073709551615,\n"
        "    \"scale\": 1e3, \"whole\": 2.0, \"note\": null,\n"
        "    \"log\": \"line1\\nline2\\t\\\"quoted\\\" \\\\ \\u0001\",\n"
        "    \"tags\": [ \"a\", \"b\" ], \"empty\": {}, \"none\": []\n"
        "  }\n"
        "}\n";
    const char *want =
        "{\"specversion\":\"1.0\",\"id\":\"A234-1234-1234\","
        "\"source\":\"https://example.com/ci/builds\","
        "\"type\":\"com.example.build.finished\","
        "\"time\":\"2018-04-05T17:31:00Z\","
        "\"datacontenttype\":\"application/json\","
        "\"subject\":\"caf\xc3\xa9 \xf0\x9f\x98\x80\","
        "\"data\":{\"task_id\":\"T-1\",\"duration_ms\":5120,"
        "\"ratio\":0.25,\"ok\":true,\"retries\":0,"
        "\"delta\":-42,\"big\":18446744073709551615,"
        "\"scale\":1000.0,\"whole\":2.0,\"note\":null,"
        "\"log\":\"line1\\nline2\\t\\\"quoted\\\" \\\\ \\u0001\","
        "\"tags\":[\"a\",\"b\"],\"empty\":{},\"none\":[]}}";
    CU_ASSERT(s_roundtrips_to(in, want));
    /* and the compact form is a fixed point */
    CU_ASSERT(s_roundtrips_to(want, want));
}

static void test_parse_depth_limit_allows_exactly_max_depth(void)
{
    char json[80];
    /* 32 nested arrays: 31 one-element arrays, then an empty one */
    memset(json, '[', 32);
    memset(json + 32, ']', 32);
    parsed_t r;
    s_parse_n(&r, json, 64, 32);
    CU_ASSERT_EQUAL(r.rc, 0);
    CU_ASSERT_EQUAL(r.sb.size, 32);
    CU_ASSERT(r.sb.size == 32 && (unsigned char)r.sb.data[0] == 0x91 &&
              (unsigned char)r.sb.data[31] == 0x90);
    s_parsed_free(&r);

    memset(json, '[', 33);
    memset(json + 33, ']', 33);
    CU_ASSERT(s_fails_n(json, 66, 32, "line 1, column 33", "deeper than 32"));
    CU_ASSERT(s_fails_n("{\"a\":{\"b\":1}}", 13, 1, "line 1, column 6",
                        "deeper than 1"));
    CU_ASSERT(s_fails_n("[]", 2, 0, "line 1, column 1", "deeper than 0"));
    s_parse_n(&r, "7", 1, 0); /* a scalar needs no depth */
    CU_ASSERT(r.rc == 0 && r.up.data.via.u64 == 7);
    s_parsed_free(&r);
}

static void test_parse_100000_open_brackets_refused_cleanly(void)
{
    size_t n = 100000;
    char *json = malloc(n);
    CU_ASSERT_FATAL(json != NULL);
    memset(json, '[', n);
    CU_ASSERT(s_fails_n(json, n, 32, "line 1, column 33", "deeper than 32"));
    /* also with a large limit: the input ends before the nesting does */
    CU_ASSERT(
        s_fails_n(json, n, 1000, "line 1, column 1001", "deeper than 1000"));
    free(json);
}

/* ------------------------------------------------------ parsing errors */

static void test_parse_trailing_commas_refused(void)
{
    CU_ASSERT(s_fails("[1,2,]", "line 1, column 5", "trailing comma"));
    CU_ASSERT(s_fails("{\"a\":1,}", "line 1, column 7", "trailing comma"));
    CU_ASSERT(s_fails("[1,\n  ]", "line 1, column 3", "trailing comma"));
    CU_ASSERT(s_fails("[,]", "line 1, column 2", "expected a value"));
}

static void test_parse_leading_zeros_refused(void)
{
    CU_ASSERT(s_fails("01", "line 1, column 1", "leading zero"));
    CU_ASSERT(s_fails("[-012]", "line 1, column 3", "leading zero"));
    CU_ASSERT(s_fails("00.5", "line 1, column 1", "leading zero"));
    CU_ASSERT(s_roundtrips_to("[0,-0,0.5,0e1]", "[0,0,0.5,0.0]"));
}

static void test_parse_nan_and_infinity_literals_refused(void)
{
    CU_ASSERT(s_fails("NaN", "line 1, column 1", "NaN"));
    CU_ASSERT(s_fails("[Infinity]", "line 1, column 2", "Infinity"));
    CU_ASSERT(s_fails("-Infinity", "line 1, column 1", "Infinity"));
    CU_ASSERT(s_fails("{\"x\": nan}", "line 1, column 7", "invalid literal"));
}

static void test_parse_malformed_numbers_refused(void)
{
    CU_ASSERT(s_fails("1.", "line 1, column 3", "digit after '.'"));
    CU_ASSERT(s_fails("1.e5", "line 1, column 3", "digit after '.'"));
    CU_ASSERT(s_fails(".5", "line 1, column 1", "expected a value"));
    CU_ASSERT(s_fails("1e", "line 1, column 3", "exponent"));
    CU_ASSERT(s_fails("1.5e+", "line 1, column 6", "exponent"));
    CU_ASSERT(s_fails("-", "line 1, column 2", "digit"));
    CU_ASSERT(s_fails("- 1", "line 1, column 2", "digit"));
    CU_ASSERT(s_fails("+1", "line 1, column 1", "expected a value"));
    CU_ASSERT(s_fails("0x10", "line 1, column 2", "after the value"));
}

static void test_parse_trailing_garbage_after_value_refused(void)
{
    CU_ASSERT(s_fails("1 2", "line 1, column 3", "after the value"));
    CU_ASSERT(s_fails("{} x", "line 1, column 4", "'x'"));
    CU_ASSERT(s_fails("truex", "line 1, column 5", "after the value"));
    CU_ASSERT(s_fails("[1]]", "line 1, column 4", "']'"));
    CU_ASSERT(s_fails_n("null\0", 5, 32, "line 1, column 5", "byte 0x00"));
}

static void test_parse_control_characters_in_strings_refused(void)
{
    CU_ASSERT(
        s_fails("\"a\tb\"", "line 1, column 3", "control character 0x09"));
    CU_ASSERT(
        s_fails("\"\x01\"", "line 1, column 2", "control character 0x01"));
    CU_ASSERT(
        s_fails("[\"ab\ncd\"]", "line 1, column 5", "control character 0x0a"));
    CU_ASSERT(s_fails_n("\"\0\"", 3, 32, "line 1, column 2",
                        "control character 0x00"));
    CU_ASSERT(
        s_fails("\"\x1f\"", "line 1, column 2", "control character 0x1f"));
}

static void test_parse_invalid_utf8_refused_at_the_bad_byte(void)
{
    CU_ASSERT(s_fails("\"ab\xc3(\"", "line 1, column 4", "invalid UTF-8"));
    CU_ASSERT(s_fails("\"\xc0\xaf\"", "line 1, column 2", "invalid UTF-8"));
    CU_ASSERT(s_fails("\"\xe0\x80\xaf\"", "line 1, column 2", "invalid UTF-8"));
    CU_ASSERT(s_fails("\"\xed\xa0\x80\"", "line 1, column 2", "invalid UTF-8"));
    CU_ASSERT(
        s_fails("\"\xf4\x90\x80\x80\"", "line 1, column 2", "invalid UTF-8"));
    CU_ASSERT(s_fails("\"\xe2\x82\"", "line 1, column 2", "invalid UTF-8"));
    CU_ASSERT(s_fails("\"\x80\"", "line 1, column 2", "invalid UTF-8"));
    CU_ASSERT(s_fails("\"\xff\"", "line 1, column 2", "invalid UTF-8"));
    /* columns count characters: the 2-byte e-acute is one column */
    CU_ASSERT(s_fails("\"\xc3\xa9\xff\"", "line 1, column 3", "invalid UTF-8"));
    CU_ASSERT(s_fails("\xef\xbb\xbf{}", "line 1, column 1", "byte 0xef"));
}

static void test_parse_lone_surrogates_refused(void)
{
    CU_ASSERT(
        s_fails("\"\\ud83d\"", "line 1, column 2", "lone high surrogate"));
    CU_ASSERT(s_fails("\"\\ude00\"", "line 1, column 2", "lone low surrogate"));
    CU_ASSERT(s_fails("\"x\\ud83d\\u0041\"", "line 1, column 3",
                      "lone high surrogate"));
    CU_ASSERT(s_fails("\"\\ud83dabcdef\"", "line 1, column 2",
                      "lone high surrogate"));
    CU_ASSERT(s_fails("\"\\ud83d\\ud83d\"", "line 1, column 2",
                      "lone high surrogate"));
}

static void test_parse_invalid_escapes_refused(void)
{
    CU_ASSERT(s_fails("\"\\x\"", "line 1, column 2", "invalid escape"));
    CU_ASSERT(s_fails("\"\\u12G4\"", "line 1, column 2", "four hex digits"));
    CU_ASSERT(s_fails("\"\\u12\"", "line 1, column 2", "four hex digits"));
    CU_ASSERT(s_fails("\"\\", "line 1, column 2", "escape"));
}

static void test_parse_structural_errors_name_what_was_expected(void)
{
    CU_ASSERT(s_fails("", "line 1, column 1", "end of input"));
    CU_ASSERT(s_fails("  \n  ", "line 2, column 3", "end of input"));
    CU_ASSERT(s_fails("{\"a\" 1}", "line 1, column 6", "expected ':'"));
    CU_ASSERT(s_fails("{1:2}", "line 1, column 2", "expected a string key"));
    CU_ASSERT(s_fails("{\"a\":1 \"b\":2}", "line 1, column 8",
                      "expected ',' or '}'"));
    CU_ASSERT(s_fails("[1 2]", "line 1, column 4", "expected ',' or ']'"));
    CU_ASSERT(s_fails("[1", "line 1, column 3", "end of input"));
    CU_ASSERT(s_fails("{\"a\":", "line 1, column 6", "end of input"));
    CU_ASSERT(s_fails("\"abc", "line 1, column 1", "unterminated string"));
    CU_ASSERT(s_fails("tru", "line 1, column 1", "expected 'true'"));
    CU_ASSERT(s_fails("nul", "line 1, column 1", "expected 'null'"));
    CU_ASSERT(s_fails("True", "line 1, column 1", "expected a value"));
    CU_ASSERT(s_fails("'a'", "line 1, column 1", "expected a value"));
}

static void test_parse_error_position_on_a_later_line(void)
{
    CU_ASSERT(s_fails("{\n  \"a\": 1,\n  \"b\" 2\n}", "line 3, column 7",
                      "expected ':'"));
    CU_ASSERT(
        s_fails("[\r\n1,\r\n\t2,\r\n]", "line 3, column 3", "trailing comma"));
}

static void test_parse_error_message_never_overflows_err(void)
{
    char err[12];
    memset(err, 'Z', sizeof err);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    CU_ASSERT_EQUAL(evb_json_to_msgpack("[1,]", 4, &pk, 32, err, 8), -1);
    CU_ASSERT_STRING_EQUAL(err, "line 1,");
    CU_ASSERT_EQUAL(err[8], 'Z');
    /* and no err at all is fine */
    CU_ASSERT_EQUAL(evb_json_to_msgpack("[1,]", 4, &pk, 32, NULL, 0), -1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_parse_reads_only_len_bytes(void)
{
    /* the text need not be NUL-terminated; what follows len is ignored */
    CU_ASSERT(s_fails_n("[1,2]", 4, 32, "line 1, column 5", "end of input"));
    parsed_t r;
    s_parse_n(&r, "12345", 2, 32);
    CU_ASSERT(r.rc == 0 && r.up.data.type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
              r.up.data.via.u64 == 12);
    s_parsed_free(&r);
}

static CU_TestInfo s_write_tests[] = {
    {"write_nil_and_booleans_as_literals",
     test_write_nil_and_booleans_as_literals},
    {"write_positive_integers_in_decimal_up_to_uint64_max",
     test_write_positive_integers_in_decimal_up_to_uint64_max},
    {"write_negative_integers_down_to_int64_min",
     test_write_negative_integers_down_to_int64_min},
    {"write_float_as_shortest_text_that_round_trips",
     test_write_float_as_shortest_text_that_round_trips},
    {"write_whole_floats_keep_a_decimal_point",
     test_write_whole_floats_keep_a_decimal_point},
    {"write_float_matches_documented_printf_rule_for_many_values",
     test_write_float_matches_documented_printf_rule_for_many_values},
    {"write_float_text_reads_back_as_the_same_double",
     test_write_float_text_reads_back_as_the_same_double},
    {"write_float32_from_its_exact_double_value",
     test_write_float32_from_its_exact_double_value},
    {"write_refuses_nan_and_infinities", test_write_refuses_nan_and_infinities},
    {"write_refuses_ext_anywhere", test_write_refuses_ext_anywhere},
    {"write_plain_and_empty_strings_quoted",
     test_write_plain_and_empty_strings_quoted},
    {"write_escapes_quote_and_backslash",
     test_write_escapes_quote_and_backslash},
    {"write_escapes_common_control_characters_short",
     test_write_escapes_common_control_characters_short},
    {"write_escapes_control_characters_as_u00xx",
     test_write_escapes_control_characters_as_u00xx},
    {"write_copies_del_and_utf8_raw", test_write_copies_del_and_utf8_raw},
    {"write_copies_invalid_utf8_as_is", test_write_copies_invalid_utf8_as_is},
    {"write_escapes_exactly_the_required_bytes_at_any_offset",
     test_write_escapes_exactly_the_required_bytes_at_any_offset},
    {"write_string_escapes_long_text_with_many_escapes",
     test_write_string_escapes_long_text_with_many_escapes},
    {"write_string_escapes_before_a_long_safe_run",
     test_write_string_escapes_before_a_long_safe_run},
    {"write_string_appends_to_what_the_buffer_holds",
     test_write_string_appends_to_what_the_buffer_holds},
    {"base64_matches_rfc4648_test_vectors",
     test_base64_matches_rfc4648_test_vectors},
    {"test_base64_decodes_what_it_encodes",
     test_base64_decodes_what_it_encodes},
    {"test_base64_decode_refuses_malformed_text",
     test_base64_decode_refuses_malformed_text},
    {"base64_uses_plus_and_slash_for_high_values",
     test_base64_uses_plus_and_slash_for_high_values},
    {"write_bin_as_base64_string", test_write_bin_as_base64_string},
    {"write_arrays_and_maps_compactly", test_write_arrays_and_maps_compactly},
    {"write_empty_array_and_map", test_write_empty_array_and_map},
    {"write_scalar_keys_as_their_json_text_in_a_string",
     test_write_scalar_keys_as_their_json_text_in_a_string},
    {"write_refuses_array_and_map_keys", test_write_refuses_array_and_map_keys},
    {"string_size_is_the_written_size", test_string_size_is_the_written_size},
    {"write_bin_key_as_its_base64_string",
     test_write_bin_key_as_its_base64_string},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo s_parse_tests[] = {
    {"parse_literals_to_bool_and_nil", test_parse_literals_to_bool_and_nil},
    {"parse_integers_choose_int_uint_or_double_at_boundaries",
     test_parse_integers_choose_int_uint_or_double_at_boundaries},
    {"parse_fraction_or_exponent_gives_double",
     test_parse_fraction_or_exponent_gives_double},
    {"parse_number_overflowing_double_is_refused",
     test_parse_number_overflowing_double_is_refused},
    {"parse_string_escapes_decoded", test_parse_string_escapes_decoded},
    {"parse_surrogate_pair_decodes_to_four_byte_utf8",
     test_parse_surrogate_pair_decodes_to_four_byte_utf8},
    {"parse_raw_utf8_and_del_kept_as_is",
     test_parse_raw_utf8_and_del_kept_as_is},
    {"parse_object_member_counts_survive_nesting_and_strings",
     test_parse_object_member_counts_survive_nesting_and_strings},
    {"parse_many_containers_beyond_the_inline_counts",
     test_parse_many_containers_beyond_the_inline_counts},
    {"parse_duplicate_keys_kept_in_order",
     test_parse_duplicate_keys_kept_in_order},
    {"parse_then_write_round_trips_a_cloudevents_document",
     test_parse_then_write_round_trips_a_cloudevents_document},
    {"parse_depth_limit_allows_exactly_max_depth",
     test_parse_depth_limit_allows_exactly_max_depth},
    {"parse_100000_open_brackets_refused_cleanly",
     test_parse_100000_open_brackets_refused_cleanly},
    {"parse_trailing_commas_refused", test_parse_trailing_commas_refused},
    {"parse_leading_zeros_refused", test_parse_leading_zeros_refused},
    {"parse_nan_and_infinity_literals_refused",
     test_parse_nan_and_infinity_literals_refused},
    {"parse_malformed_numbers_refused", test_parse_malformed_numbers_refused},
    {"parse_trailing_garbage_after_value_refused",
     test_parse_trailing_garbage_after_value_refused},
    {"parse_control_characters_in_strings_refused",
     test_parse_control_characters_in_strings_refused},
    {"parse_invalid_utf8_refused_at_the_bad_byte",
     test_parse_invalid_utf8_refused_at_the_bad_byte},
    {"parse_lone_surrogates_refused", test_parse_lone_surrogates_refused},
    {"parse_invalid_escapes_refused", test_parse_invalid_escapes_refused},
    {"parse_structural_errors_name_what_was_expected",
     test_parse_structural_errors_name_what_was_expected},
    {"parse_error_position_on_a_later_line",
     test_parse_error_position_on_a_later_line},
    {"parse_error_message_never_overflows_err",
     test_parse_error_message_never_overflows_err},
    {"parse_reads_only_len_bytes", test_parse_reads_only_len_bytes},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"json_write", NULL, NULL, NULL, NULL, s_write_tests},
    {"json_parse", NULL, NULL, NULL, NULL, s_parse_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_json", s_suites);
}
