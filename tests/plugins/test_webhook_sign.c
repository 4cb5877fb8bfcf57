/* The webhook plugin's signatures (plugins/webhook/sign.c): the published
 * Standard Webhooks and GitHub vectors, the custom scheme against
 * `openssl dgst`, secret rotation, verification and its reasons, secrets
 * that must be refused (without echoing them), and key context reuse. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

#include "sign.h"
#include "testmain.h"

/* Standard Webhooks' published example (standard-webhooks spec and the
 * reference libraries' tests). */
#define STD_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STD_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define STD_TS 1614265330
#define STD_TS_S "1614265330"
#define STD_BODY "{\"test\": 2432232314}"
#define STD_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* A second secret for rotation: whsec_ + base64 of the 32 bytes
 * "evbus-rotation-test-key-32-bytes", and its signature of the message
 * above, made with
 *   M='msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'
 *   K=$(printf '%s' evbus-rotation-test-key-32-bytes | xxd -p -c 256)
 *   printf '%s' "$M" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$K \
 *       -binary | base64 */
#define STD_SECRET2 "whsec_ZXZidXMtcm90YXRpb24tdGVzdC1rZXktMzItYnl0ZXM="
#define STD_SIG2 "v1,YROubUuZ81Bakx7wDR7DDnRTU9ePt8eCuzXgqbErHIk="

/* GitHub's published example ("Validating webhook deliveries"). */
#define GH_SECRET "It's a Secret to Everybody"
#define GH_BODY "Hello, World!"
#define GH_SIG                                                                 \
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

/* The custom scheme, made with
 *   printf '%s' '1614265330.{"a":1}' | openssl dgst -sha256 -hmac 'k'
 * (and -hmac 'k2' for the second key). */
#define CU_BODY "{\"a\":1}"
#define CU_SIG_K                                                               \
    "4b3710caa92891816b985c3934731498104211aa675b338de3b8173e2696c298"
#define CU_SIG_K2                                                              \
    "54eab512dce0118b35ac9c0a98d1f7ad898d80cbe202e941acfd0c08d388bc28"

static wh_key_t *s_key(wh_scheme_t scheme, const char *secret)
{
    char err[256];
    wh_key_t *k = wh_key_new(scheme, secret, err, sizeof err);
    if (!k)
        fprintf(stderr, "wh_key_new: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(k);
    return k;
}

/* wh_verify of the standard example with `keys`, at `now`, tolerance 300. */
static int s_verify_std(wh_key_t *const *keys, size_t nkeys, const char *sig,
                        const char *body, int64_t now, char *why, size_t whysz)
{
    return wh_verify(WH_SCHEME_STANDARD, keys, nkeys, STD_ID, STD_TS_S, sig,
                     body, strlen(body), now, 300, why, whysz);
}

/* ------------------------------------------------------------- schemes */

static void test_scheme_parse_accepts_the_four_names_and_nothing_else(void)
{
    static const char *const names[] = {"none", "standard", "github", "custom"};
    for (int i = 0; i < 4; i++) {
        wh_scheme_t s = (wh_scheme_t)((i + 1) % 4);
        CU_ASSERT_EQUAL(wh_scheme_parse(names[i], &s), 0);
        CU_ASSERT_EQUAL(s, (wh_scheme_t)i);
        CU_ASSERT_STRING_EQUAL(wh_scheme_name(s), names[i]);
    }
    static const char *const bad[] = {"Standard", "GITHUB", "",     "hmac",
                                      "custom ",  " none",  "svix", "github2"};
    wh_scheme_t s = WH_SCHEME_CUSTOM;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CU_ASSERT_EQUAL(wh_scheme_parse(bad[i], &s), -1);
    CU_ASSERT_EQUAL(wh_scheme_parse(NULL, &s), -1);
    CU_ASSERT_EQUAL(s, WH_SCHEME_CUSTOM); /* untouched */
    CU_ASSERT_STRING_EQUAL(wh_scheme_name((wh_scheme_t)9), "?");
}

/* -------------------------------------------------- published vectors */

static void test_standard_webhooks_published_vector(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char out[WH_SIGNATURE_MAX];
    size_t n = wh_sign_standard(&k, 1, STD_ID, STD_TS, STD_BODY,
                                strlen(STD_BODY), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, STD_SIG);
    CU_ASSERT_EQUAL(n, strlen(STD_SIG));
    wh_key_free(&k);
}

static void test_standard_secret_is_also_taken_without_whsec_prefix(void)
{
    /* as the reference libraries do; padding may be left out too */
    static const char *const same[][2] = {
        {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", STD_SIG},
        {"ZXZidXMtcm90YXRpb24tdGVzdC1rZXktMzItYnl0ZXM=", STD_SIG2},
        {"whsec_ZXZidXMtcm90YXRpb24tdGVzdC1rZXktMzItYnl0ZXM", STD_SIG2},
    };
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        wh_key_t *k = s_key(WH_SCHEME_STANDARD, same[i][0]);
        char out[WH_SIGNATURE_MAX];
        CU_ASSERT(wh_sign_standard(&k, 1, STD_ID, STD_TS, STD_BODY,
                                   strlen(STD_BODY), out, sizeof out) > 0);
        CU_ASSERT_STRING_EQUAL(out, same[i][1]);
        wh_key_free(&k);
    }
}

static void test_github_published_vector(void)
{
    wh_key_t *k = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    char out[WH_SIGNATURE_MAX];
    size_t n = wh_sign_github(k, GH_BODY, strlen(GH_BODY), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, GH_SIG);
    CU_ASSERT_EQUAL(n, strlen(GH_SIG));
    wh_key_free(&k);
}

static void test_custom_signature_is_hex_hmac_of_timestamp_dot_body(void)
{
    wh_key_t *k = s_key(WH_SCHEME_CUSTOM, "k");
    char out[WH_SIGNATURE_MAX];
    size_t n = wh_sign_custom(&k, 1, STD_TS, CU_BODY, strlen(CU_BODY), out,
                              sizeof out);
    CU_ASSERT_STRING_EQUAL(out, CU_SIG_K);
    CU_ASSERT_EQUAL(n, 64);
    /* empty body: openssl dgst over "1614265330." */
    n = wh_sign_custom(&k, 1, STD_TS, NULL, 0, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(
        out,
        "18aa59765e4fd9c33b29104dcc349f98f8a8a532ca0e18995eea771c54360e15");
    wh_key_free(&k);
}

static void test_github_and_custom_keys_are_the_secret_bytes_as_they_are(void)
{
    /* a whsec_ secret is not decoded outside the standard scheme:
     * printf '%s' 'Hello, World!' | openssl dgst -sha256 \
     *     -hmac 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' */
    wh_key_t *k = s_key(WH_SCHEME_GITHUB, STD_SECRET);
    char out[WH_SIGNATURE_MAX];
    wh_sign_github(k, GH_BODY, strlen(GH_BODY), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "sha256=7ad4fd21c74c164320d9ac01f24d0797c8be59"
                                "4bf356ab332fdd61a03b78cec0");
    wh_key_free(&k);
    /* and anything goes, base64 or not */
    k = s_key(WH_SCHEME_CUSTOM, "not*base64 at all!");
    CU_ASSERT_EQUAL(wh_sign_custom(&k, 1, 1, "x", 1, out, sizeof out), 64);
    wh_key_free(&k);
}

static void test_the_body_is_signed_whole_including_nul_bytes(void)
{
    /* printf 'a\0b' | openssl dgst -sha256 -hmac "It's a Secret to Everybody"
     * and printf 'a' | ... for the first byte alone */
    wh_key_t *k = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    char out[WH_SIGNATURE_MAX];
    wh_sign_github(k, "a\0b", 3, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "sha256=7268210784b35209c98c3a33a218c3c17018e8"
                                "d875930d9cf70aafe51d110dd5");
    wh_sign_github(k, "a\0b", 1, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "sha256=70594265e7208d3fa153a6ccf8a9419172f2f5"
                                "eadb54594e1f3803453f530649");
    wh_key_free(&k);
}

static void test_an_empty_body_signs_and_a_null_body_with_length_fails(void)
{
    /* printf '' | openssl dgst -sha256 -hmac "It's a Secret to Everybody" */
    wh_key_t *k = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    char out[WH_SIGNATURE_MAX];
    CU_ASSERT_EQUAL(wh_sign_github(k, NULL, 0, out, sizeof out), 71);
    CU_ASSERT_STRING_EQUAL(out, "sha256=66a0c074deaa0f489ead6537e0d32f9a344b90"
                                "bbeda705b6ed45ecd3b413fb40");
    CU_ASSERT_EQUAL(wh_sign_github(k, "", 0, out, sizeof out), 71);
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL, out, NULL, 0,
                              0, 0, NULL, 0),
                    0);
    CU_ASSERT_EQUAL(wh_sign_github(k, NULL, 5, out, sizeof out), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    wh_key_free(&k);
}

/* ------------------------------------------------------------ rotation */

static void test_two_keys_sign_twice_space_separated_in_key_order(void)
{
    wh_key_t *keys[2] = {s_key(WH_SCHEME_STANDARD, STD_SECRET),
                         s_key(WH_SCHEME_STANDARD, STD_SECRET2)};
    char out[WH_SIGNATURE_MAX];
    size_t n = wh_sign_standard(keys, 2, STD_ID, STD_TS, STD_BODY,
                                strlen(STD_BODY), out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, STD_SIG " " STD_SIG2);
    CU_ASSERT_EQUAL(n, strlen(STD_SIG " " STD_SIG2));
    wh_key_free(&keys[0]);
    wh_key_free(&keys[1]);

    wh_key_t *ck[2] = {s_key(WH_SCHEME_CUSTOM, "k"),
                       s_key(WH_SCHEME_CUSTOM, "k2")};
    n = wh_sign_custom(ck, 2, STD_TS, CU_BODY, strlen(CU_BODY), out,
                       sizeof out);
    CU_ASSERT_STRING_EQUAL(out, CU_SIG_K " " CU_SIG_K2);
    CU_ASSERT_EQUAL(n, 129);
    /* two custom signatures are the longest value: WH_SIGNATURE_MAX holds
     * them */
    CU_ASSERT(n < WH_SIGNATURE_MAX);
    wh_key_free(&ck[0]);
    wh_key_free(&ck[1]);
}

static void test_verify_accepts_a_header_signed_by_either_rotated_key(void)
{
    wh_key_t *old = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    wh_key_t *cur = s_key(WH_SCHEME_STANDARD, STD_SECRET2);
    wh_key_t *both[2] = {cur, old};
    char why[256];
    /* the receiver holds both secrets, the sender signs with either */
    CU_ASSERT_EQUAL(
        s_verify_std(both, 2, STD_SIG, STD_BODY, STD_TS, why, sizeof why), 0);
    CU_ASSERT_EQUAL(
        s_verify_std(both, 2, STD_SIG2, STD_BODY, STD_TS, why, sizeof why), 0);
    /* the sender signs with both, the receiver holds either */
    CU_ASSERT_EQUAL(s_verify_std(&old, 1, STD_SIG " " STD_SIG2, STD_BODY,
                                 STD_TS, why, sizeof why),
                    0);
    CU_ASSERT_EQUAL(s_verify_std(&cur, 1, STD_SIG " " STD_SIG2, STD_BODY,
                                 STD_TS, why, sizeof why),
                    0);
    /* entries of other versions are skipped, spacing is loose */
    CU_ASSERT_EQUAL(s_verify_std(&cur, 1,
                                 "v1a,AAAA  v1,bm90IHRoZSBzaWduYXR1cmUgYXQgYWxs"
                                 "IHRoYXQgd2Ugd2FudA== \t" STD_SIG2 " ",
                                 STD_BODY, STD_TS, why, sizeof why),
                    0);
    /* a third secret is not among them */
    wh_key_t *other = s_key(WH_SCHEME_STANDARD, "whsec_b3RoZXI=");
    CU_ASSERT_EQUAL(s_verify_std(&other, 1, STD_SIG " " STD_SIG2, STD_BODY,
                                 STD_TS, why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(
        why, "no signature matches (2 signatures checked against 1 key)");
    wh_key_free(&other);
    wh_key_free(&old);
    wh_key_free(&cur);
}

/* -------------------------------------------------------- verification */

static void test_verify_accepts_the_published_standard_request(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char why[256] = "stale";
    CU_ASSERT_EQUAL(
        s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS + 10, why, sizeof why),
        0);
    CU_ASSERT_STRING_EQUAL(why, "");
    wh_key_free(&k);
}

static void test_verify_rejects_a_tampered_body(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char why[256];
    CU_ASSERT_EQUAL(s_verify_std(&k, 1, STD_SIG, "{\"test\": 2432232315}",
                                 STD_TS, why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(
        why, "no signature matches (1 signature checked against 1 key)");
    /* one byte short */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, STD_TS_S,
                              STD_SIG, STD_BODY, strlen(STD_BODY) - 1, STD_TS,
                              300, why, sizeof why),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no signature matches"));
    wh_key_free(&k);
}

static void test_verify_rejects_a_changed_id_or_timestamp(void)
{
    /* both are signed: a replayed body under a new id or time fails */
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char why[256];
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1,
                              "msg_p5jXN8AQM9LWM0D4loKWxJeK", STD_TS_S, STD_SIG,
                              STD_BODY, strlen(STD_BODY), STD_TS, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no signature matches"));
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, "1614265331",
                              STD_SIG, STD_BODY, strlen(STD_BODY), STD_TS, 300,
                              why, sizeof why),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no signature matches"));
    /* the same integer spelt with a leading zero is the same time */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, "0" STD_TS_S,
                              STD_SIG, STD_BODY, strlen(STD_BODY), STD_TS, 300,
                              why, sizeof why),
                    0);
    wh_key_free(&k);
}

static void test_verify_rejects_a_wrong_secret(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET2);
    char why[256];
    CU_ASSERT_EQUAL(
        s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS, why, sizeof why), -1);
    CU_ASSERT_STRING_EQUAL(
        why, "no signature matches (1 signature checked against 1 key)");
    wh_key_free(&k);

    k = s_key(WH_SCHEME_GITHUB, "It's a Secret to Everybody!");
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL, GH_SIG,
                              GH_BODY, strlen(GH_BODY), 0, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no signature matches"));
    wh_key_free(&k);
}

static void test_verify_rejects_a_stale_or_future_timestamp_naming_the_gap(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char why[256];
    CU_ASSERT_EQUAL(s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS + 1234567,
                                 why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "timestamp 1614265330 is 1234567 s away from "
                                "now (tolerance 300 s)");
    CU_ASSERT_EQUAL(
        s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS - 301, why, sizeof why),
        -1);
    CU_ASSERT_STRING_EQUAL(why, "timestamp 1614265330 is 301 s away from now "
                                "(tolerance 300 s)");
    /* the edges are inside */
    CU_ASSERT_EQUAL(
        s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS + 300, why, sizeof why),
        0);
    CU_ASSERT_EQUAL(
        s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS - 300, why, sizeof why),
        0);
    /* a far-off clock cannot overflow the gap */
    CU_ASSERT_EQUAL(
        s_verify_std(&k, 1, STD_SIG, STD_BODY, INT64_MIN, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "s away from now"));
    wh_key_free(&k);
}

static void test_tolerance_zero_skips_the_timestamp_check(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, STD_TS_S,
                              STD_SIG, STD_BODY, strlen(STD_BODY), 0, 0, NULL,
                              0),
                    0);
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, STD_TS_S,
                              STD_SIG, STD_BODY, strlen(STD_BODY), INT64_MAX, 0,
                              NULL, 0),
                    0);
    wh_key_free(&k);
}

static void test_verify_needs_the_v1_prefix(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    static const char *const bad[] = {
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "sha256=g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "   ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char why[256] = "";
        CU_ASSERT_EQUAL(
            s_verify_std(&k, 1, bad[i], STD_BODY, STD_TS, why, sizeof why), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "no \"v1,\" signature"));
    }
    wh_key_free(&k);
}

static void test_verify_accepts_only_the_canonical_base64(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char why[256];
    /* padding left out; unused bits set (the same bytes, spelt otherwise);
     * a byte short; one too many */
    static const char *const bad[] = {
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OF=",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1A==",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=A",
        "v1,g0hM9SsE-OTPJTGt_tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CU_ASSERT_EQUAL(
            s_verify_std(&k, 1, bad[i], STD_BODY, STD_TS, why, sizeof why), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "no signature matches"));
    }
    wh_key_free(&k);
}

static void test_verify_names_the_missing_header(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    size_t len = strlen(STD_BODY);
    char why[256];
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, NULL, STD_TS_S,
                              STD_SIG, STD_BODY, len, STD_TS, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "missing webhook-id header");
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, "", STD_TS_S, STD_SIG,
                              STD_BODY, len, STD_TS, 300, why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "empty webhook-id header");
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, NULL, STD_SIG,
                              STD_BODY, len, STD_TS, 300, why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "missing webhook-timestamp header");
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, STD_TS_S, NULL,
                              STD_BODY, len, STD_TS, 300, why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "missing webhook-signature header");
    wh_key_free(&k);

    k = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL, NULL,
                              GH_BODY, strlen(GH_BODY), 0, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "missing X-Hub-Signature-256 header");
    wh_key_free(&k);

    k = s_key(WH_SCHEME_CUSTOM, "k");
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, &k, 1, NULL, NULL, CU_SIG_K,
                              CU_BODY, strlen(CU_BODY), STD_TS, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "missing timestamp header");
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, &k, 1, NULL, STD_TS_S, "",
                              CU_BODY, strlen(CU_BODY), STD_TS, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "empty signature header");
    wh_key_free(&k);
}

static void test_verify_rejects_a_timestamp_that_is_not_an_integer(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    static const char *const bad[] = {
        "abc",         "1614265330.5", " 1614265330",
        "1614265330 ", "-1614265330",  "+1614265330",
        "1.6e9",       "0x6037a5f2",   "1614265330000000000"};
    char why[256];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, bad[i],
                                  STD_SIG, STD_BODY, strlen(STD_BODY), STD_TS,
                                  0, why, sizeof why),
                        -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "is not an integer"));
    }
    wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, "abc", STD_SIG, STD_BODY,
              strlen(STD_BODY), STD_TS, 300, why, sizeof why);
    CU_ASSERT_STRING_EQUAL(
        why, "timestamp \"abc\" is not an integer (Unix seconds)");
    /* what came off the network is not echoed unless plainly printable */
    wh_verify(WH_SCHEME_STANDARD, &k, 1, STD_ID, "1\r\nX-Evil: 1", STD_SIG,
              STD_BODY, strlen(STD_BODY), STD_TS, 300, why, sizeof why);
    CU_ASSERT_STRING_EQUAL(why, "timestamp is not an integer (Unix seconds)");
    wh_key_free(&k);
}

static void test_github_verify_needs_sha256_prefix_and_has_no_time(void)
{
    wh_key_t *k = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    size_t len = strlen(GH_BODY);
    char why[256];
    /* no timestamp: any clock and tolerance pass */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, "junk", GH_SIG,
                              GH_BODY, len, 0, 300, why, sizeof why),
                    0);
    /* hex in either case */
    CU_ASSERT_EQUAL(
        wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL,
                  "sha256=757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4"
                  "379C8B043E17",
                  GH_BODY, len, 0, 300, why, sizeof why),
        0);
    CU_ASSERT_EQUAL(
        wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL,
                  "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b0"
                  "43e17",
                  GH_BODY, len, 0, 300, why, sizeof why),
        -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no \"sha256=\" signature"));
    /* the SHA-1 header's format is not accepted either */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL,
                              "sha1=0123456789abcdef0123456789abcdef01234567",
                              GH_BODY, len, 0, 300, why, sizeof why),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no \"sha256=\" signature"));
    /* a hex digit short */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_GITHUB, &k, 1, NULL, NULL,
                              "sha256=757107ea0eb2509fc211221cce984b8a37570b6d"
                              "7586c22c46f4379c8b043e1",
                              GH_BODY, len, 0, 300, why, sizeof why),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no signature matches"));
    wh_key_free(&k);
}

static void test_custom_verify_checks_timestamp_and_signature(void)
{
    wh_key_t *ck[2] = {s_key(WH_SCHEME_CUSTOM, "k2"),
                       s_key(WH_SCHEME_CUSTOM, "k")};
    size_t len = strlen(CU_BODY);
    char why[256];
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, ck, 2, NULL, STD_TS_S, CU_SIG_K,
                              CU_BODY, len, STD_TS, 300, why, sizeof why),
                    0);
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, ck, 1, NULL, STD_TS_S,
                              CU_SIG_K " " CU_SIG_K2, CU_BODY, len, STD_TS, 300,
                              why, sizeof why),
                    0);
    /* the timestamp is signed */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, ck, 2, NULL, "1614265331",
                              CU_SIG_K, CU_BODY, len, STD_TS, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(
        why, "no signature matches (1 signature checked against 2 keys)");
    /* and held to the window */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, ck, 2, NULL, STD_TS_S, CU_SIG_K,
                              CU_BODY, len, STD_TS + 1000, 300, why,
                              sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "timestamp 1614265330 is 1000 s away from now "
                                "(tolerance 300 s)");
    /* a "sha256=" prefix is not part of this format */
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_CUSTOM, ck, 2, NULL, STD_TS_S,
                              "sha256=" CU_SIG_K, CU_BODY, len, STD_TS, 300,
                              why, sizeof why),
                    -1);
    wh_key_free(&ck[0]);
    wh_key_free(&ck[1]);
}

/* ----------------------------------------------------------------- keys */

static void test_bad_whsec_secrets_are_refused_without_echoing_them(void)
{
    static const char *const bad[] = {
        "whsec_",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw!",
        "whsec_MfKQ9r8GKYqrTwjUPD8IL PZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwX", /* 33 characters */
        "whsec_MfKQ9r8G==KYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw=",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS===",
        "whsec_MfKQ9r8G-KYqrTwj_UPD8ILPZIo2LaLaSw",
        "whsec_=",
        "whsec_Zq-9~Xw!pq",
        "hunter2 is my password!", /* not base64, and no prefix */
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256] = "";
        wh_key_t *k = wh_key_new(WH_SCHEME_STANDARD, bad[i], err, sizeof err);
        CU_ASSERT_PTR_NULL(k);
        wh_key_free(&k);
        CU_ASSERT(strlen(err) > 10);
        /* no 6 characters of the secret after its whsec_ prefix */
        const char *payload =
            strncmp(bad[i], "whsec_", 6) == 0 ? bad[i] + 6 : bad[i];
        for (size_t j = 0; j + 6 <= strlen(payload); j++) {
            char piece[7];
            memcpy(piece, payload + j, 6);
            piece[6] = '\0';
            if (strstr(err, piece)) {
                fprintf(stderr, "error \"%s\" echoes \"%s\"\n", err, piece);
                CU_FAIL("the error echoes part of the secret");
                break;
            }
        }
    }
    char err[256];
    CU_ASSERT_PTR_NULL(
        wh_key_new(WH_SCHEME_STANDARD, "whsec_", err, sizeof err));
    CU_ASSERT_STRING_EQUAL(err, "secret is empty after \"whsec_\"");
    CU_ASSERT_PTR_NULL(
        wh_key_new(WH_SCHEME_STANDARD, "whsec_abc!", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not valid base64"));
    /* err may be NULL */
    CU_ASSERT_PTR_NULL(wh_key_new(WH_SCHEME_STANDARD, "whsec_!", NULL, 0));
}

static void test_empty_secret_is_refused_for_every_scheme(void)
{
    static const wh_scheme_t schemes[] = {WH_SCHEME_STANDARD, WH_SCHEME_GITHUB,
                                          WH_SCHEME_CUSTOM};
    for (size_t i = 0; i < 3; i++) {
        char err[256] = "";
        CU_ASSERT_PTR_NULL(wh_key_new(schemes[i], "", err, sizeof err));
        CU_ASSERT_STRING_EQUAL(err, "secret is empty");
        err[0] = '\0';
        CU_ASSERT_PTR_NULL(wh_key_new(schemes[i], NULL, err, sizeof err));
        CU_ASSERT_STRING_EQUAL(err, "secret is empty");
    }
}

static void test_none_scheme_takes_no_secret_and_verifies_nothing(void)
{
    char err[256] = "";
    CU_ASSERT_PTR_NULL(wh_key_new(WH_SCHEME_NONE, "x", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"none\""));
    CU_ASSERT_PTR_NULL(wh_key_new((wh_scheme_t)42, "x", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown"));
    wh_key_t *k = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    CU_ASSERT_EQUAL(wh_verify(WH_SCHEME_NONE, &k, 1, NULL, NULL, GH_SIG,
                              GH_BODY, strlen(GH_BODY), 0, 0, err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "no signature to check"));
    wh_key_free(&k);
}

static void test_keys_of_another_scheme_or_too_many_are_refused(void)
{
    wh_key_t *gh = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    wh_key_t *std = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    wh_key_t *three[3] = {std, std, std};
    wh_key_t *mixed[2] = {std, gh};
    char out[WH_SIGNATURE_MAX] = "x";
    size_t len = strlen(STD_BODY);
    CU_ASSERT_EQUAL(wh_sign_standard(&gh, 1, STD_ID, STD_TS, STD_BODY, len, out,
                                     sizeof out),
                    0);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(
        wh_sign_custom(&gh, 1, STD_TS, STD_BODY, len, out, sizeof out), 0);
    CU_ASSERT_EQUAL(wh_sign_github(std, STD_BODY, len, out, sizeof out), 0);
    CU_ASSERT_EQUAL(wh_sign_github(NULL, STD_BODY, len, out, sizeof out), 0);
    CU_ASSERT_EQUAL(wh_sign_standard(mixed, 2, STD_ID, STD_TS, STD_BODY, len,
                                     out, sizeof out),
                    0);
    CU_ASSERT_EQUAL(wh_sign_standard(three, 3, STD_ID, STD_TS, STD_BODY, len,
                                     out, sizeof out),
                    0);
    CU_ASSERT_EQUAL(wh_sign_standard(three, 0, STD_ID, STD_TS, STD_BODY, len,
                                     out, sizeof out),
                    0);
    CU_ASSERT_EQUAL(
        wh_sign_standard(&std, 1, NULL, STD_TS, STD_BODY, len, out, sizeof out),
        0);
    char why[256];
    CU_ASSERT_EQUAL(
        s_verify_std(&gh, 1, STD_SIG, STD_BODY, STD_TS, why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "keys made for the standard scheme"));
    CU_ASSERT_EQUAL(
        s_verify_std(three, 3, STD_SIG, STD_BODY, STD_TS, why, sizeof why), -1);
    wh_key_free(&gh);
    wh_key_free(&std);
}

static void test_key_free_sets_the_pointer_to_null_and_tolerates_null(void)
{
    wh_key_t *k = s_key(WH_SCHEME_CUSTOM, "k");
    wh_key_free(&k);
    CU_ASSERT_PTR_NULL(k);
    wh_key_free(&k); /* a double destroy is harmless */
    wh_key_free(NULL);
}

/* ------------------------------------------------------------- buffers */

static void test_cap_too_small_returns_zero_and_leaves_an_empty_string(void)
{
    wh_key_t *std = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    wh_key_t *gh = s_key(WH_SCHEME_GITHUB, GH_SECRET);
    wh_key_t *cu[2] = {s_key(WH_SCHEME_CUSTOM, "k"),
                       s_key(WH_SCHEME_CUSTOM, "k2")};
    wh_key_t *stds[2] = {std, std};
    size_t blen = strlen(STD_BODY);
    char out[WH_SIGNATURE_MAX];

    /* exactly enough: the value and its NUL */
    size_t need = strlen(STD_SIG) + 1;
    CU_ASSERT_EQUAL(
        wh_sign_standard(&std, 1, STD_ID, STD_TS, STD_BODY, blen, out, need),
        need - 1);
    memset(out, 'x', sizeof out);
    CU_ASSERT_EQUAL(wh_sign_standard(&std, 1, STD_ID, STD_TS, STD_BODY, blen,
                                     out, need - 1),
                    0);
    CU_ASSERT_STRING_EQUAL(out, "");
    CU_ASSERT_EQUAL(out[1], 'x'); /* nothing past the NUL either */
    need = 2 * strlen(STD_SIG) + 2;
    CU_ASSERT_EQUAL(
        wh_sign_standard(stds, 2, STD_ID, STD_TS, STD_BODY, blen, out, need),
        need - 1);
    CU_ASSERT_EQUAL(wh_sign_standard(stds, 2, STD_ID, STD_TS, STD_BODY, blen,
                                     out, need - 1),
                    0);
    CU_ASSERT_STRING_EQUAL(out, "");

    need = strlen(GH_SIG) + 1;
    CU_ASSERT_EQUAL(wh_sign_github(gh, GH_BODY, strlen(GH_BODY), out, need),
                    need - 1);
    CU_ASSERT_EQUAL(wh_sign_github(gh, GH_BODY, strlen(GH_BODY), out, need - 1),
                    0);
    CU_ASSERT_STRING_EQUAL(out, "");

    CU_ASSERT_EQUAL(
        wh_sign_custom(cu, 2, STD_TS, CU_BODY, strlen(CU_BODY), out, 130), 129);
    CU_ASSERT_EQUAL(
        wh_sign_custom(cu, 2, STD_TS, CU_BODY, strlen(CU_BODY), out, 129), 0);
    CU_ASSERT_STRING_EQUAL(out, "");

    /* no room at all: nothing is written */
    out[0] = 'x';
    CU_ASSERT_EQUAL(
        wh_sign_custom(cu, 1, STD_TS, CU_BODY, strlen(CU_BODY), out, 0), 0);
    CU_ASSERT_EQUAL(out[0], 'x');
    CU_ASSERT_EQUAL(
        wh_sign_custom(cu, 1, STD_TS, CU_BODY, strlen(CU_BODY), NULL, 100), 0);
    wh_key_free(&std);
    wh_key_free(&gh);
    wh_key_free(&cu[0]);
    wh_key_free(&cu[1]);
}

static void test_why_is_cut_to_whysz(void)
{
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    char why[8];
    memset(why, 'x', sizeof why);
    CU_ASSERT_EQUAL(s_verify_std(&k, 1, STD_SIG, STD_BODY, 0, why, sizeof why),
                    -1);
    CU_ASSERT_STRING_EQUAL(why, "timesta");
    /* why may be NULL, or have no room */
    CU_ASSERT_EQUAL(s_verify_std(&k, 1, STD_SIG, STD_BODY, 0, NULL, 0), -1);
    why[0] = 'x';
    CU_ASSERT_EQUAL(s_verify_std(&k, 1, STD_SIG, STD_BODY, 0, why, 0), -1);
    CU_ASSERT_EQUAL(why[0], 'x');
    wh_key_free(&k);
}

/* --------------------------------------------------------- context reuse */

static void test_one_key_signs_10000_times_with_the_same_result(void)
{
    /* every signature restarts the keyed context: a leftover from the
     * previous message (here a different one in between) would change the
     * next signature */
    wh_key_t *k = s_key(WH_SCHEME_STANDARD, STD_SECRET);
    wh_key_t *cu = s_key(WH_SCHEME_CUSTOM, "k");
    size_t blen = strlen(STD_BODY);
    int wrong = 0, wrong_custom = 0;
    for (int i = 0; i < 10000; i++) {
        char out[WH_SIGNATURE_MAX], junk[WH_SIGNATURE_MAX];
        if (wh_sign_standard(&k, 1, STD_ID, STD_TS, STD_BODY, blen, out,
                             sizeof out) != strlen(STD_SIG) ||
            strcmp(out, STD_SIG) != 0)
            wrong++;
        if (i % 2)
            wh_sign_standard(&k, 1, "other", i, "xyz", 3, junk, sizeof junk);
        if (wh_sign_custom(&cu, 1, STD_TS, CU_BODY, strlen(CU_BODY), out,
                           sizeof out) != 64 ||
            strcmp(out, CU_SIG_K) != 0)
            wrong_custom++;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(wrong_custom, 0);
    /* verification shares the context too */
    CU_ASSERT_EQUAL(s_verify_std(&k, 1, STD_SIG, STD_BODY, STD_TS, NULL, 0), 0);
    wh_key_free(&k);
    wh_key_free(&cu);
}

/* ---------------------------------------------------------------- suites */

#define TEST(fn)                                                               \
    {                                                                          \
#fn, fn                                                                \
    }

static CU_TestInfo s_sign_tests[] = {
    TEST(test_scheme_parse_accepts_the_four_names_and_nothing_else),
    TEST(test_standard_webhooks_published_vector),
    TEST(test_standard_secret_is_also_taken_without_whsec_prefix),
    TEST(test_github_published_vector),
    TEST(test_custom_signature_is_hex_hmac_of_timestamp_dot_body),
    TEST(test_github_and_custom_keys_are_the_secret_bytes_as_they_are),
    TEST(test_the_body_is_signed_whole_including_nul_bytes),
    TEST(test_an_empty_body_signs_and_a_null_body_with_length_fails),
    TEST(test_two_keys_sign_twice_space_separated_in_key_order),
    TEST(test_cap_too_small_returns_zero_and_leaves_an_empty_string),
    TEST(test_one_key_signs_10000_times_with_the_same_result),
    CU_TEST_INFO_NULL,
};

static CU_TestInfo s_verify_tests[] = {
    TEST(test_verify_accepts_the_published_standard_request),
    TEST(test_verify_accepts_a_header_signed_by_either_rotated_key),
    TEST(test_verify_rejects_a_tampered_body),
    TEST(test_verify_rejects_a_changed_id_or_timestamp),
    TEST(test_verify_rejects_a_wrong_secret),
    TEST(test_verify_rejects_a_stale_or_future_timestamp_naming_the_gap),
    TEST(test_tolerance_zero_skips_the_timestamp_check),
    TEST(test_verify_needs_the_v1_prefix),
    TEST(test_verify_accepts_only_the_canonical_base64),
    TEST(test_verify_names_the_missing_header),
    TEST(test_verify_rejects_a_timestamp_that_is_not_an_integer),
    TEST(test_github_verify_needs_sha256_prefix_and_has_no_time),
    TEST(test_custom_verify_checks_timestamp_and_signature),
    TEST(test_why_is_cut_to_whysz),
    CU_TEST_INFO_NULL,
};

static CU_TestInfo s_key_tests[] = {
    TEST(test_bad_whsec_secrets_are_refused_without_echoing_them),
    TEST(test_empty_secret_is_refused_for_every_scheme),
    TEST(test_none_scheme_takes_no_secret_and_verifies_nothing),
    TEST(test_keys_of_another_scheme_or_too_many_are_refused),
    TEST(test_key_free_sets_the_pointer_to_null_and_tolerates_null),
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"signing", NULL, NULL, NULL, NULL, s_sign_tests},
    {"verification", NULL, NULL, NULL, NULL, s_verify_tests},
    {"keys", NULL, NULL, NULL, NULL, s_key_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_webhook_sign", s_suites);
}
