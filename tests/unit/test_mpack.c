/* The raw msgpack reader (core/mpack.c) and the JSON renderer built on it
 * (evb_json_write_mp in core/json.c), checked against msgpack-c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "json.h"
#include "mpack.h"
#include "testmain.h"

static void test_every_integer_format_reads_back_its_value(void)
{
    const int64_t ints[] = {0,      1,        127,        128,      255,
                            256,    65535,    65536,      -1,       -32,
                            -33,    -128,     -129,       -32768,   -32769,
                            INT32_MIN, (int64_t)INT32_MIN - 1, INT64_MIN,
                            INT64_MAX};
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_int64(&pk, ints[k]);
        const uint8_t *p = (const uint8_t *)sb.data, *end = p + sb.size;
        evb_mp_item_t it;
        CU_ASSERT_EQUAL_FATAL(evb_mp_read(&p, end, &it), 0);
        CU_ASSERT_PTR_EQUAL(p, end);
        if (ints[k] >= 0) {
            CU_ASSERT_EQUAL(it.kind, EVB_MP_UINT);
            CU_ASSERT_EQUAL(it.u, (uint64_t)ints[k]);
        } else {
            CU_ASSERT_EQUAL(it.kind, EVB_MP_INT);
            CU_ASSERT_EQUAL(it.i, ints[k]);
        }
        msgpack_sbuffer_destroy(&sb);
    }
    /* a signed format holding a non-negative value reads as UINT */
    const uint8_t int8_5[] = {0xd0, 0x05};
    const uint8_t *p = int8_5;
    evb_mp_item_t it;
    CU_ASSERT_EQUAL(evb_mp_read(&p, int8_5 + 2, &it), 0);
    CU_ASSERT_EQUAL(it.kind, EVB_MP_UINT);
    CU_ASSERT_EQUAL(it.u, 5);
}

static void test_reads_never_pass_the_end(void)
{
    /* every header cut short by one byte is refused */
    const uint8_t cases[][9] = {
        {0xcd, 0x01, 0},       {0xce, 0, 0, 0},      {0xcf, 0, 0, 0, 0, 0, 0, 0},
        {0xca, 0, 0, 0},       {0xcb, 0, 0, 0, 0, 0, 0, 0},
        {0xd9},                {0xa3, 'a', 'b'},     {0xc4, 0x04, 1, 2, 3},
        {0xdc, 0x00},          {0xdf, 0, 0, 0},      {0xd4},
    };
    const size_t lens[] = {2, 4, 8, 4, 8, 1, 3, 5, 2, 4, 1};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        const uint8_t *p = cases[k];
        evb_mp_item_t it;
        CU_ASSERT_EQUAL(evb_mp_read(&p, cases[k] + lens[k], &it), -1);
    }
    const uint8_t never[] = {0xc1};
    const uint8_t *p = never;
    evb_mp_item_t it;
    CU_ASSERT_EQUAL(evb_mp_read(&p, never + 1, &it), -1);
}

static void test_skip_bounds_counts_and_depth(void)
{
    const uint8_t nested[] = {0x91, 0x91, 0x91, 0xc0}; /* [[[nil]]] */
    const uint8_t *p = nested;
    CU_ASSERT_EQUAL(evb_mp_skip(&p, nested + 4, 3), 0);
    CU_ASSERT_PTR_EQUAL(p, nested + 4);
    p = nested;
    CU_ASSERT_EQUAL(evb_mp_skip(&p, nested + 4, 2), -1);
    const uint8_t bomb[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    p = bomb;
    CU_ASSERT_EQUAL(evb_mp_skip(&p, bomb + sizeof bomb, 8), -1);
}

/* Pack a document with msgpack-c; render it both ways; compare. */
static void s_same_json(const char *json_in)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[128];
    CU_ASSERT_EQUAL_FATAL(
        evb_json_to_msgpack(json_in, strlen(json_in), &pk, 32, err, sizeof err),
        0);
    msgpack_zone *z = msgpack_zone_new(2048);
    msgpack_object obj;
    size_t off = 0;
    CU_ASSERT_EQUAL_FATAL(msgpack_unpack(sb.data, sb.size, &off, z, &obj),
                          MSGPACK_UNPACK_SUCCESS);
    evb_buf_t a = EVB_BUF_INIT, b = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(evb_json_write(&a, &obj), 0);
    const uint8_t *p = (const uint8_t *)sb.data;
    CU_ASSERT_EQUAL(
        evb_json_write_mp(&b, &p, (const uint8_t *)sb.data + sb.size, 32), 0);
    CU_ASSERT_PTR_EQUAL(p, (const uint8_t *)sb.data + sb.size);
    CU_ASSERT_STRING_EQUAL(a.data, b.data);
    evb_buf_free(&a);
    evb_buf_free(&b);
    msgpack_zone_free(z);
    msgpack_sbuffer_destroy(&sb);
}

static void test_raw_renderer_matches_the_object_renderer(void)
{
    s_same_json("{\"type\":\"task.completed\",\"data\":{\"task_id\":\"T-1\","
                "\"duration_ms\":5120,\"cost\":0.42,\"ok\":true,\"none\":null,"
                "\"list\":[1,-2,3.5,\"x\\n\\u0001\",[],{}],\"big\":"
                "18446744073709551615,\"neg\":-9223372036854775808}}");
    s_same_json("[\"caf\\u00e9 \\ud83d\\ude00\", 1e300, -0.0, 0.1]");
    s_same_json("\"just a string\"");
    s_same_json("{}");
}

static void test_raw_renderer_refuses_what_json_cannot_carry(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    const uint8_t ext[] = {0xd4, 0x01, 0x00};
    const uint8_t *p = ext;
    CU_ASSERT_EQUAL(evb_json_write_mp(&b, &p, ext + 3, 8), -1);
    const uint8_t nan[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    p = nan;
    evb_buf_reset(&b);
    CU_ASSERT_EQUAL(evb_json_write_mp(&b, &p, nan + 9, 8), -1);
    const uint8_t deep[] = {0x91, 0x91, 0x91, 0xc0};
    p = deep;
    evb_buf_reset(&b);
    CU_ASSERT_EQUAL(evb_json_write_mp(&b, &p, deep + 4, 3), -1);
    p = deep;
    evb_buf_reset(&b);
    CU_ASSERT_EQUAL(evb_json_write_mp(&b, &p, deep + 4, 4), 0);
    CU_ASSERT_STRING_EQUAL(b.data, "[[[null]]]");
    const uint8_t binkey[] = {0x81, 0xc4, 0x03, 'f', 'o', 'o', 0x01};
    p = binkey;
    evb_buf_reset(&b);
    CU_ASSERT_EQUAL(evb_json_write_mp(&b, &p, binkey + sizeof binkey, 4), 0);
    CU_ASSERT_STRING_EQUAL(b.data, "{\"Zm9v\":1}");
    evb_buf_free(&b);
}

static CU_TestInfo s_tests[] = {
    {"every integer format reads back its value",
     test_every_integer_format_reads_back_its_value},
    {"reads never pass the end", test_reads_never_pass_the_end},
    {"skip bounds counts and depth", test_skip_bounds_counts_and_depth},
    {"raw renderer matches the object renderer",
     test_raw_renderer_matches_the_object_renderer},
    {"raw renderer refuses what JSON cannot carry",
     test_raw_renderer_refuses_what_json_cannot_carry},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"mpack", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_mpack", s_suites);
}
