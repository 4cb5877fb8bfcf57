/* The event codec: validation, normalization and rendering
 * (core/event.c). Envelopes are packed with msgpack-c, as a publisher
 * would, or written byte by byte where the point is a broken encoding. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "event.h"
#include "testmain.h"

static const evb_limits_t s_limits = {4096, 8, 64, 1 << 20, 0};
#define NOW_MS INT64_C(1795000000123) /* 2026-11-18T11:06:40.123Z */

typedef struct {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} pack_t;

static void p_init(pack_t *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void p_str(pack_t *p, const char *s)
{
    msgpack_pack_str_with_body(&p->pk, s, strlen(s));
}

static void p_kv(pack_t *p, const char *k, const char *v)
{
    p_str(p, k);
    p_str(p, v);
}

static evb_event_t *s_decode(const char *type, const pack_t *p,
                             evb_reject_t *why, char *detail)
{
    return evb_event_decode(type, strlen(type), p->sb.data, p->sb.size,
                            &s_limits, NOW_MS, why, detail, 256);
}

/* Decode and expect a refusal with `want`; returns the detail text. */
static void s_expect_reject(const char *type, const void *buf, size_t len,
                            evb_reject_t want, const char *detail_part)
{
    evb_reject_t why = EVB_REJECT_NONE;
    char detail[256];
    evb_event_t *ev = evb_event_decode(type, strlen(type), buf, len, &s_limits,
                                       NOW_MS, &why, detail, sizeof detail);
    CU_ASSERT_PTR_NULL(ev);
    if (ev)
        evb_event_release(ev);
    CU_ASSERT_EQUAL(why, want);
    if (why != want)
        fprintf(stderr, "\n  got %s (%s)\n", evb_reject_code(why), detail);
    if (detail_part && !strstr(detail, detail_part)) {
        fprintf(stderr, "\n  detail was: %s (wanted \"%s\")\n", detail,
                detail_part);
        CU_FAIL("detail does not name the problem");
    }
}

/* ------------------------------------------------------------ accepting */

static void test_minimal_envelope_gets_id_time_and_specversion(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "task.completed");
    p_kv(&p, "source", "ci/runner-3");
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("task.completed", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(why, EVB_REJECT_NONE);
    CU_ASSERT_STRING_EQUAL(ev->type, "task.completed");
    CU_ASSERT_STRING_EQUAL(ev->source, "ci/runner-3");
    CU_ASSERT_STRING_EQUAL(ev->time, "2026-11-18T11:06:40.123Z");
    CU_ASSERT_STRING_EQUAL(evb_event_attr(ev, "specversion"), "1.0");
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev->id);
    CU_ASSERT_EQUAL(strlen(ev->id), 36);
    CU_ASSERT_EQUAL(ev->id[14], '7'); /* UUID version 7 */
    CU_ASSERT_EQUAL(ev->accepted_ms, NOW_MS);

    /* the normalized envelope carries the filled-in attributes and decodes
     * to the same event, now with nothing to add */
    evb_event_t *again =
        evb_event_decode("task.completed", 14, ev->msgpack, ev->msgpack_len,
                         &s_limits, NOW_MS + 5000, &why, detail, sizeof detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    CU_ASSERT_STRING_EQUAL(again->id, ev->id);
    CU_ASSERT_STRING_EQUAL(again->time, ev->time);
    CU_ASSERT_EQUAL(again->msgpack_len, ev->msgpack_len);
    CU_ASSERT_EQUAL(memcmp(again->msgpack, ev->msgpack, ev->msgpack_len), 0);
    evb_event_release(again);
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_complete_envelope_is_kept_byte_for_byte(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 9);
    p_kv(&p, "specversion", "1.0");
    p_kv(&p, "id", "evt-1");
    p_kv(&p, "type", "task.failed");
    p_kv(&p, "source", "orchestrator");
    p_kv(&p, "time", "2026-11-22T10:00:00+01:00");
    p_kv(&p, "project", "alpha");
    p_kv(&p, "ticket", "T-9");
    p_str(&p, "attempt");
    msgpack_pack_int(&p.pk, 3);
    p_str(&p, "data");
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "task_id", "T-9");
    p_str(&p, "exit_code");
    msgpack_pack_int(&p.pk, 2);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("task.failed", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(ev->msgpack_len, p.sb.size);
    CU_ASSERT_EQUAL(memcmp(ev->msgpack, p.sb.data, p.sb.size), 0);
    CU_ASSERT_STRING_EQUAL(ev->id, "evt-1");
    CU_ASSERT_STRING_EQUAL(ev->project, "alpha");
    CU_ASSERT_STRING_EQUAL(ev->ticket, "T-9");
    CU_ASSERT_PTR_NULL(ev->agent);
    /* a non-string extension is carried but is not a string attribute */
    CU_ASSERT_PTR_NULL(evb_event_attr(ev, "attempt"));
    CU_ASSERT_PTR_NULL(evb_event_attr(ev, "data"));
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_nesting_up_to_max_depth_is_accepted(void)
{
    /* envelope (1) > data array (2) > ... max_depth 8 */
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    for (int i = 2; i <= 8; i++)
        msgpack_pack_array(&p.pk, 1);
    msgpack_pack_nil(&p.pk);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("a.b", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL(ev);
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

/* ------------------------------------------------------------- refusing */

static void test_type_frame_must_be_a_valid_type(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 1);
    p_kv(&p, "type", "Task.Failed");
    s_expect_reject("Task.Failed", p.sb.data, p.sb.size, EVB_REJECT_BAD_TYPE,
                    "not a valid event type");
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_type_frame_must_equal_envelope_type(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 1);
    p_kv(&p, "type", "task.completed");
    s_expect_reject("task.failed", p.sb.data, p.sb.size, EVB_REJECT_BAD_TYPE,
                    "differs");
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_missing_type_is_refused(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 1);
    p_kv(&p, "source", "x");
    s_expect_reject("task.failed", p.sb.data, p.sb.size,
                    EVB_REJECT_MISSING_TYPE, "no \"type\"");
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_envelope_must_be_a_map(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_array(&p.pk, 1);
    p_str(&p, "task.failed");
    s_expect_reject("task.failed", p.sb.data, p.sb.size, EVB_REJECT_NOT_MAP,
                    "map");
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_truncated_and_trailing_bytes_are_malformed(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "task.failed");
    p_kv(&p, "source", "somewhere");
    for (size_t cut = 1; cut < p.sb.size; cut++)
        s_expect_reject("task.failed", p.sb.data, cut, EVB_REJECT_MALFORMED,
                        NULL);
    char *longer = malloc(p.sb.size + 1);
    memcpy(longer, p.sb.data, p.sb.size);
    longer[p.sb.size] = (char)0xc0;
    s_expect_reject("task.failed", longer, p.sb.size + 1, EVB_REJECT_MALFORMED,
                    "follow");
    free(longer);
    /* 0xc1 is never a valid msgpack byte */
    const unsigned char never[] = {0x81, 0xa4, 't', 'y', 'p', 'e', 0xc1};
    s_expect_reject("a.b", never, sizeof never, EVB_REJECT_MALFORMED, NULL);
    s_expect_reject("a.b", "", 0, EVB_REJECT_MALFORMED, NULL);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_container_count_bomb_is_refused_without_allocating(void)
{
    /* {"type":"a.b","data": map32 claiming 4 billion entries} */
    const unsigned char bomb[] = {0x82, 0xa4, 't',  'y',  'p',  'e',  0xa3,
                                  'a',  '.',  'b',  0xa4, 'd',  'a',  't',
                                  'a',  0xdf, 0xff, 0xff, 0xff, 0xff, 0x01};
    s_expect_reject("a.b", bomb, sizeof bomb, EVB_REJECT_MALFORMED, "claims");
    const unsigned char top[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
    s_expect_reject("a.b", top, sizeof top, EVB_REJECT_BAD_ATTR, "attributes");
}

static void test_oversized_envelope_is_refused(void)
{
    char *big = calloc(1, s_limits.max_message_size + 1);
    s_expect_reject("a.b", big, s_limits.max_message_size + 1,
                    EVB_REJECT_TOO_LARGE, "max_message_size");
    free(big);
}

static void test_nesting_past_max_depth_is_refused(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    for (int i = 2; i <= 9; i++) /* one level too many */
        msgpack_pack_array(&p.pk, 1);
    msgpack_pack_nil(&p.pk);
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_TOO_DEEP,
                    "deeper than 8");
    msgpack_sbuffer_destroy(&p.sb);

    /* absurd nesting: 4000 arrays, as deep as the size limit allows */
    size_t n = 4000;
    unsigned char *deep = malloc(n + 32);
    size_t k = 0;
    const unsigned char head[] = {0x82, 0xa4, 't',  'y', 'p', 'e', 0xa3, 'a',
                                  '.',  'b',  0xa4, 'd', 'a', 't', 'a'};
    memcpy(deep, head, sizeof head);
    k = sizeof head;
    memset(deep + k, 0x91, n);
    k += n;
    deep[k++] = 0xc0;
    s_expect_reject("a.b", deep, k, EVB_REJECT_TOO_DEEP, NULL);
    free(deep);
}

static void test_invalid_utf8_is_refused_in_attributes_and_data(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_kv(&p, "subject", "caf\xc3"); /* truncated sequence */
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_UTF8,
                    "subject");
    msgpack_sbuffer_destroy(&p.sb);

    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_map(&p.pk, 1);
    p_kv(&p, "k", "\xed\xa0\x80"); /* an encoded surrogate */
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_UTF8, "data");
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_ext_types_and_non_finite_floats_are_refused(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_ext(&p.pk, 1, 5);
    msgpack_pack_ext_body(&p.pk, "\0", 1);
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_VALUE, "ext");
    msgpack_sbuffer_destroy(&p.sb);

    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_array(&p.pk, 1);
    msgpack_pack_double(&p.pk, NAN);
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_VALUE, "NaN");
    msgpack_sbuffer_destroy(&p.sb);
}

/* The attack of issue 13: maps as map keys, 22 deep, in 76 bytes, once
 * rendered to 16.8 MB. Refused at any depth with the reason. */
static void test_array_and_map_keys_are_refused_at_any_depth(void)
{
    uint8_t env[128];
    size_t n = 0;
    env[n++] = 0x82; /* map: type, data */
    env[n++] = 0xa4;
    memcpy(env + n, "type", 4);
    n += 4;
    env[n++] = 0xa3;
    memcpy(env + n, "a.b", 3);
    n += 3;
    env[n++] = 0xa4;
    memcpy(env + n, "data", 4);
    n += 4;
    for (int i = 0; i < 22; i++)
        env[n++] = 0x81; /* {key: ... where the key is the next map */
    env[n++] = 0xc0;     /* innermost {nil: nil} */
    env[n++] = 0xc0;
    for (int i = 0; i < 22; i++)
        env[n++] = 0xc0; /* each level's value */
    const evb_limits_t deep = {4096, 32, 64, 1 << 20, 0};
    evb_reject_t why = EVB_REJECT_NONE;
    char detail[256] = "";
    evb_event_t *ev = evb_event_decode("a.b", 3, env, n, &deep, NOW_MS, &why,
                                       detail, sizeof detail);
    CU_ASSERT_PTR_NULL(ev);
    CU_ASSERT_EQUAL(why, EVB_REJECT_BAD_VALUE);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(detail, "data: a map key is an array or a map"));

    /* one level down, an array as the key */
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_array(&p.pk, 1);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_array(&p.pk, 0);
    msgpack_pack_int(&p.pk, 1);
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_VALUE,
                    "a map key is an array or a map");
    msgpack_sbuffer_destroy(&p.sb);

    /* scalar keys stay legal */
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_map(&p.pk, 2);
    msgpack_pack_int(&p.pk, 7);
    msgpack_pack_true(&p.pk);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_double(&p.pk, 0.5);
    ev = s_decode("a.b", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(evb_event_json(ev, NULL), "\"data\":{\"7\":true,\"null\":0.5}"));
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

/* Attributes are C strings to plugins, filters and the duplicate index:
 * NUL and every other control character is refused in them (an id of
 * "ab\0cd" was accepted as "ab"); data may hold them, escaped in JSON. */
static void test_control_characters_are_refused_in_attributes_only(void)
{
    static const struct {
        const char *name;
        const char *value;
        size_t len;
        const char *detail;
    } bad[] = {
        {"id", "ab\0cd", 5,
         "attribute \"id\" holds a control character (byte 0x00 at offset 2)"},
        {"project", "alpha\0evil", 10, "byte 0x00 at offset 5"},
        {"subject", "a\tb", 3, "byte 0x09 at offset 1"},
        {"source", "x\x1f", 2, "byte 0x1f at offset 1"},
        {"ticket", "\x7f", 1, "byte 0x7f at offset 0"},
        {"agent", "caf\xc3\xa9 \xc2\x85", 8, "byte 0xc2 at offset 6"},
        {"region", "0123456789abcdef0123\n", 21, "byte 0x0a at offset 20"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pack_t p;
        p_init(&p);
        msgpack_pack_map(&p.pk, 2);
        p_kv(&p, "type", "a.b");
        p_str(&p, bad[i].name);
        msgpack_pack_str_with_body(&p.pk, bad[i].value, bad[i].len);
        s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_ATTR,
                        bad[i].detail);
        /* nor is the id echoed in a refusal */
        char id[EVB_ID_MAX + 1];
        if (strcmp(bad[i].name, "id") == 0)
            CU_ASSERT_EQUAL(evb_envelope_id(p.sb.data, p.sb.size, id), -1);
        msgpack_sbuffer_destroy(&p.sb);
    }

    /* non-ASCII that is not a control character passes */
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 3);
    p_kv(&p, "type", "a.b");
    p_kv(&p, "subject", "caf\xc3\xa9 \xc2\xa0 \xe2\x80\xa8 x");
    p_str(&p, "data");
    msgpack_pack_str_with_body(&p.pk, "a\0b\x7f", 4);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("a.b", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(evb_event_json(ev, NULL), "\"data\":\"a\\u0000b\x7f\""));
    evb_event_release(ev);

    /* a record an older broker accepted is still loaded */
    msgpack_sbuffer_destroy(&p.sb);
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "project");
    msgpack_pack_str_with_body(&p.pk, "alpha\0evil", 10);
    ev = evb_event_load(p.sb.data, p.sb.size, 9, NOW_MS, detail, sizeof detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_EQUAL(ev->seq, 9);
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

/* No accepted event renders larger than max_rendered_size: the size is
 * counted at ingest, exactly when the event has no floats. */
static void test_rendered_size_is_bounded_and_counted_exactly(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 5);
    p_kv(&p, "type", "a.b");
    p_kv(&p, "subject", "quote \" back \\ slash");
    p_str(&p, "count");
    msgpack_pack_int(&p.pk, -12345);
    p_str(&p, "flag");
    msgpack_pack_false(&p.pk);
    p_str(&p, "data");
    msgpack_pack_map(&p.pk, 3);
    p_kv(&p, "s", "\x01\x02 nul-free but escaped \"");
    msgpack_pack_uint64(&p.pk, UINT64_MAX);
    msgpack_pack_array(&p.pk, 3);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_bin_with_body(&p.pk, "\xff\x00\x01\x02", 4);
    msgpack_pack_map(&p.pk, 0);
    msgpack_pack_int64(&p.pk, INT64_MIN);
    msgpack_pack_array(&p.pk, 0);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("a.b", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    size_t len = 0;
    const char *json = evb_event_json(ev, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    CU_ASSERT_EQUAL(ev->json_max, len);
    CU_ASSERT_EQUAL(strlen(json), len);
    evb_event_release(ev);

    /* with the limit at that size it passes, one byte less it does not */
    evb_limits_t lim = s_limits;
    lim.max_rendered_size = len;
    ev = evb_event_decode("a.b", 3, p.sb.data, p.sb.size, &lim, NOW_MS, &why,
                          detail, sizeof detail);
    CU_ASSERT_PTR_NOT_NULL(ev);
    if (ev)
        evb_event_release(ev);
    lim.max_rendered_size = len - 1;
    ev = evb_event_decode("a.b", 3, p.sb.data, p.sb.size, &lim, NOW_MS, &why,
                          detail, sizeof detail);
    CU_ASSERT_PTR_NULL(ev);
    CU_ASSERT_EQUAL(why, EVB_REJECT_TOO_LARGE);
    char want[128];
    snprintf(want, sizeof want,
             "the event renders to %zu bytes of JSON, more than "
             "max_rendered_size %zu",
             len, len - 1);
    CU_ASSERT_STRING_EQUAL(detail, want);
    msgpack_sbuffer_destroy(&p.sb);

    /* binary data, filled-in id and time, a float (counted at its most) */
    p_init(&p);
    msgpack_pack_map(&p.pk, 3);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_bin_with_body(&p.pk, "12345", 5);
    p_str(&p, "x");
    msgpack_pack_int(&p.pk, 1);
    ev = s_decode("a.b", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    json = evb_event_json(ev, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"data_base64\":\"MTIzNDU=\""));
    CU_ASSERT_EQUAL(ev->json_max, len);
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);

    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_double(&p.pk, 0.1);
    ev = s_decode("a.b", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    json = evb_event_json(ev, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    CU_ASSERT(ev->json_max >= len && ev->json_max <= len + 24 - 3);
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_attribute_rules_are_enforced(void)
{
    struct {
        const char *k1, *v1;
        const char *detail;
    } cases[] = {
        {"Type2", "x", "not 1-20 lower-case"},
        {"a_b", "x", "not 1-20 lower-case"},
        {"id", "", "\"id\" must be 1 to"},
        {"time", "yesterday", "RFC 3339"},
        {"time", "2026-13-01T00:00:00Z", "RFC 3339"},
        {"specversion", "0.3", "specversion"},
        {"source", "", "source"},
        {"subject",
         "0123456789012345678901234567890123456789012345678901234567890123456"
         "789",
         "max_attr_len"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pack_t p;
        p_init(&p);
        msgpack_pack_map(&p.pk, 2);
        p_kv(&p, "type", "a.b");
        p_kv(&p, cases[i].k1, cases[i].v1);
        s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_ATTR,
                        cases[i].detail);
        msgpack_sbuffer_destroy(&p.sb);
    }

    /* duplicate attribute */
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 3);
    p_kv(&p, "type", "a.b");
    p_kv(&p, "project", "x");
    p_kv(&p, "project", "y");
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_ATTR,
                    "duplicate");
    msgpack_sbuffer_destroy(&p.sb);

    /* a core attribute must be a string; an extension may not be a map */
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "source");
    msgpack_pack_int(&p.pk, 1);
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_ATTR,
                    "must be a string");
    msgpack_sbuffer_destroy(&p.sb);
    p_init(&p);
    msgpack_pack_map(&p.pk, 2);
    p_kv(&p, "type", "a.b");
    p_str(&p, "project");
    msgpack_pack_map(&p.pk, 0);
    s_expect_reject("a.b", p.sb.data, p.sb.size, EVB_REJECT_BAD_ATTR,
                    "extension");
    msgpack_sbuffer_destroy(&p.sb);

    /* a non-string key */
    const unsigned char intkey[] = {0x82, 0xa4, 't', 'y', 'p',  'e',
                                    0xa3, 'a',  '.', 'b', 0x01, 0x02};
    s_expect_reject("a.b", intkey, sizeof intkey, EVB_REJECT_BAD_ATTR,
                    "names must be strings");
}

static void test_reject_codes_are_the_protocol_strings(void)
{
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_FRAMES), "bad_frames");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_TOO_LARGE), "too_large");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_MALFORMED), "malformed");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_NOT_MAP), "not_a_map");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_MISSING_TYPE),
                           "missing_type");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_BAD_TYPE), "bad_type");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_BAD_UTF8), "bad_utf8");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_TOO_DEEP), "too_deep");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_BAD_ATTR),
                           "bad_attribute");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_BAD_VALUE), "bad_value");
    CU_ASSERT_STRING_EQUAL(evb_reject_code(EVB_REJECT_UNAVAILABLE),
                           "unavailable");
}

/* -------------------------------------------------------------- helpers */

static void test_type_syntax(void)
{
    CU_ASSERT_TRUE(evb_type_valid("task.completed", 14));
    CU_ASSERT_TRUE(evb_type_valid("workflow.step-2.done_now", 24));
    CU_ASSERT_TRUE(evb_type_valid("budget", 6));
    CU_ASSERT_FALSE(evb_type_valid("", 0));
    CU_ASSERT_FALSE(evb_type_valid(".task", 5));
    CU_ASSERT_FALSE(evb_type_valid("task.", 5));
    CU_ASSERT_FALSE(evb_type_valid("task..failed", 12));
    CU_ASSERT_FALSE(evb_type_valid("task.-x", 7));
    CU_ASSERT_FALSE(evb_type_valid("task.*", 6));
    CU_ASSERT_FALSE(evb_type_valid("Task", 4));
    char longtype[300];
    memset(longtype, 'a', sizeof longtype);
    CU_ASSERT_TRUE(evb_type_valid(longtype, 255));
    CU_ASSERT_FALSE(evb_type_valid(longtype, 256));
}

static void test_utf8_validation(void)
{
    CU_ASSERT_TRUE(evb_utf8_valid("plain ascii, long enough to use words", 37));
    CU_ASSERT_TRUE(evb_utf8_valid("caf\xc3\xa9", 5));
    CU_ASSERT_TRUE(evb_utf8_valid("\xe2\x82\xac", 3));
    CU_ASSERT_TRUE(evb_utf8_valid("\xf0\x9f\x98\x80", 4));
    CU_ASSERT_FALSE(evb_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CU_ASSERT_FALSE(evb_utf8_valid("\xe0\x80\xaf", 3));     /* overlong */
    CU_ASSERT_FALSE(evb_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CU_ASSERT_FALSE(evb_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CU_ASSERT_FALSE(evb_utf8_valid("\xe2\x82", 2));         /* truncated */
    CU_ASSERT_FALSE(evb_utf8_valid("abcdefgh\x80", 9));     /* lone cont. */
    CU_ASSERT_FALSE(evb_utf8_valid("\xff", 1));
}

static void test_uuid7_ids_sort_in_creation_order(void)
{
    char prev[37], cur[37];
    evb_uuid7(prev, NOW_MS);
    for (int i = 0; i < 10000; i++) {
        evb_uuid7(cur, NOW_MS + i / 1000);
        CU_ASSERT_TRUE_FATAL(strcmp(prev, cur) < 0);
        CU_ASSERT_EQUAL(cur[14], '7');
        CU_ASSERT_TRUE(strchr("89ab", cur[19]) != NULL);
        memcpy(prev, cur, sizeof cur);
    }
    /* the first 48 bits are the Unix time in ms (later than any above:
     * ids never go backwards, even when the clock does) */
    evb_uuid7(cur, INT64_C(0x0200000012ab));
    CU_ASSERT_EQUAL(strncmp(cur, "02000000-12ab-7", 15), 0);
}

static void test_time_format_is_rfc3339_utc_with_ms(void)
{
    char ts[32];
    evb_format_time(ts, 0);
    CU_ASSERT_STRING_EQUAL(ts, "1970-01-01T00:00:00.000Z");
    evb_format_time(ts, NOW_MS);
    CU_ASSERT_STRING_EQUAL(ts, "2026-11-18T11:06:40.123Z");
}

static void test_envelope_id_peek_is_safe_on_any_input(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 3);
    p_kv(&p, "type", "a.b");
    p_str(&p, "data");
    msgpack_pack_array(&p.pk, 2);
    msgpack_pack_int(&p.pk, 1);
    msgpack_pack_int(&p.pk, 2);
    p_kv(&p, "id", "the-id");
    char id[EVB_ID_MAX + 1];
    CU_ASSERT_EQUAL(evb_envelope_id(p.sb.data, p.sb.size, id), 0);
    CU_ASSERT_STRING_EQUAL(id, "the-id");
    for (size_t cut = 0; cut < p.sb.size; cut++)
        CU_ASSERT_EQUAL(evb_envelope_id(p.sb.data, cut, id), -1);
    msgpack_sbuffer_destroy(&p.sb);
}

/* ------------------------------------------------------------ rendering */

static void test_json_rendering_is_structured_cloudevents(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 5);
    p_kv(&p, "id", "e1");
    p_kv(&p, "type", "task.completed");
    p_kv(&p, "time", "2026-11-22T10:00:00Z");
    p_kv(&p, "specversion", "1.0");
    p_str(&p, "data");
    msgpack_pack_map(&p.pk, 3);
    p_kv(&p, "task_id", "T-1");
    p_str(&p, "duration_ms");
    msgpack_pack_int(&p.pk, 5120);
    p_str(&p, "result");
    msgpack_pack_map(&p.pk, 1);
    p_str(&p, "cost");
    msgpack_pack_double(&p.pk, 0.25);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("task.completed", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    size_t len = 0;
    const char *json = evb_event_json(ev, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    const char *want =
        "{\"id\":\"e1\",\"type\":\"task.completed\",\"time\":\"2026-11-22T10:"
        "00:00Z\",\"specversion\":\"1.0\",\"data\":{\"task_id\":\"T-1\","
        "\"duration_ms\":5120,\"result\":{\"cost\":0.25}}}";
    CU_ASSERT_STRING_EQUAL(json, want);
    CU_ASSERT_EQUAL(len, strlen(want));
    /* cached: the same pointer the second time */
    CU_ASSERT_PTR_EQUAL(evb_event_json(ev, NULL), json);

    const char *data = evb_event_data_json(ev, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_STRING_EQUAL(data, "{\"task_id\":\"T-1\",\"duration_ms\":5120,"
                                 "\"result\":{\"cost\":0.25}}");
    double d = 0;
    CU_ASSERT_EQUAL(evb_event_data_number(ev, "duration_ms", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 5120, 1e-9);
    CU_ASSERT_EQUAL(evb_event_data_number(ev, "result.cost", &d), 0);
    CU_ASSERT_DOUBLE_EQUAL(d, 0.25, 1e-12);
    CU_ASSERT_EQUAL(evb_event_data_number(ev, "task_id", &d), -1);
    CU_ASSERT_EQUAL(evb_event_data_number(ev, "missing", &d), -1);
    char *t = evb_event_data_text(ev, "task_id");
    CU_ASSERT_STRING_EQUAL(t, "T-1");
    free(t);
    t = evb_event_data_text(ev, "result");
    CU_ASSERT_STRING_EQUAL(t, "{\"cost\":0.25}");
    free(t);
    CU_ASSERT_PTR_NULL(evb_event_data_text(ev, "result.nope"));
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_json_into_writes_the_same_text_or_says_how_much_room(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 4);
    p_kv(&p, "id", "j1");
    p_kv(&p, "type", "task.completed");
    p_kv(&p, "time", "2026-11-22T10:00:00Z");
    p_str(&p, "data");
    msgpack_pack_array(&p.pk, 2);
    msgpack_pack_int(&p.pk, -7);
    msgpack_pack_true(&p.pk);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("task.completed", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    const char *want = "{\"id\":\"j1\",\"type\":\"task.completed\",\"time\":"
                       "\"2026-11-22T10:00:00Z\",\"data\":[-7,true],"
                       "\"specversion\":\"1.0\"}";
    size_t n = strlen(want);
    char buf[512];
    /* too small: nothing useful written, the length needed returned */
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(evb_event_json_into(ev, buf, 10), n);
    CU_ASSERT_EQUAL(evb_event_json_into(ev, buf, n), n); /* no room for NUL */
    /* exactly enough */
    CU_ASSERT_EQUAL(evb_event_json_into(ev, buf, n + 1), n);
    CU_ASSERT_STRING_EQUAL(buf, want);
    /* nothing was cached by it; after event_json, the cached copy serves */
    CU_ASSERT_PTR_NULL(atomic_load(&ev->json));
    CU_ASSERT_STRING_EQUAL(evb_event_json(ev, NULL), want);
    memset(buf, 'x', sizeof buf);
    CU_ASSERT_EQUAL(evb_event_json_into(ev, buf, sizeof buf), n);
    CU_ASSERT_STRING_EQUAL(buf, want);
    CU_ASSERT_EQUAL(evb_event_json_into(ev, buf, 5), n);
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

static void test_binary_data_renders_as_data_base64(void)
{
    pack_t p;
    p_init(&p);
    msgpack_pack_map(&p.pk, 4);
    p_kv(&p, "id", "b1");
    p_kv(&p, "type", "blob.stored");
    p_kv(&p, "time", "2026-11-22T10:00:00Z");
    p_str(&p, "data");
    msgpack_pack_bin_with_body(&p.pk, "foobar", 6);
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = s_decode("blob.stored", &p, &why, detail);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_PTR_NOT_NULL_FATAL(evb_event_json(ev, NULL));
    CU_ASSERT_STRING_EQUAL(evb_event_json(ev, NULL),
                           "{\"id\":\"b1\",\"type\":\"blob.stored\",\"time\":"
                           "\"2026-11-22T10:00:00Z\",\"data_base64\":"
                           "\"Zm9vYmFy\",\"specversion\":\"1.0\"}");
    evb_event_release(ev);
    msgpack_sbuffer_destroy(&p.sb);
}

static CU_TestInfo s_accept_tests[] = {
    {"minimal envelope gets id, time and specversion",
     test_minimal_envelope_gets_id_time_and_specversion},
    {"complete envelope is kept byte for byte",
     test_complete_envelope_is_kept_byte_for_byte},
    {"nesting up to max_depth is accepted",
     test_nesting_up_to_max_depth_is_accepted},
    CU_TEST_INFO_NULL};

static CU_TestInfo s_reject_tests[] = {
    {"type frame must be a valid type", test_type_frame_must_be_a_valid_type},
    {"type frame must equal the envelope type",
     test_type_frame_must_equal_envelope_type},
    {"missing type is refused", test_missing_type_is_refused},
    {"envelope must be a map", test_envelope_must_be_a_map},
    {"truncated and trailing bytes are malformed",
     test_truncated_and_trailing_bytes_are_malformed},
    {"container count bomb is refused",
     test_container_count_bomb_is_refused_without_allocating},
    {"oversized envelope is refused", test_oversized_envelope_is_refused},
    {"nesting past max_depth is refused",
     test_nesting_past_max_depth_is_refused},
    {"invalid UTF-8 is refused",
     test_invalid_utf8_is_refused_in_attributes_and_data},
    {"ext types and non-finite floats are refused",
     test_ext_types_and_non_finite_floats_are_refused},
    {"attribute rules are enforced", test_attribute_rules_are_enforced},
    {"array and map keys are refused at any depth",
     test_array_and_map_keys_are_refused_at_any_depth},
    {"control characters are refused in attributes only",
     test_control_characters_are_refused_in_attributes_only},
    {"rendered size is bounded and counted exactly",
     test_rendered_size_is_bounded_and_counted_exactly},
    {"reject codes are the protocol strings",
     test_reject_codes_are_the_protocol_strings},
    CU_TEST_INFO_NULL};

static CU_TestInfo s_helper_tests[] = {
    {"type syntax", test_type_syntax},
    {"UTF-8 validation", test_utf8_validation},
    {"UUIDv7 ids sort in creation order",
     test_uuid7_ids_sort_in_creation_order},
    {"time format is RFC 3339 UTC with ms",
     test_time_format_is_rfc3339_utc_with_ms},
    {"envelope id peek is safe on any input",
     test_envelope_id_peek_is_safe_on_any_input},
    CU_TEST_INFO_NULL};

static CU_TestInfo s_render_tests[] = {
    {"JSON rendering is structured CloudEvents",
     test_json_rendering_is_structured_cloudevents},
    {"binary data renders as data_base64",
     test_binary_data_renders_as_data_base64},
    {"json_into writes the same text or says how much room",
     test_json_into_writes_the_same_text_or_says_how_much_room},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"accept", NULL, NULL, NULL, NULL, s_accept_tests},
    {"reject", NULL, NULL, NULL, NULL, s_reject_tests},
    {"helpers", NULL, NULL, NULL, NULL, s_helper_tests},
    {"render", NULL, NULL, NULL, NULL, s_render_tests},
    CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_event", s_suites);
}
