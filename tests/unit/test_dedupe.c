/* Duplicate suppression index (core/dedupe.c, included for its hash). */
#include <stdio.h>
#include <string.h>

#include "dedupe.c"
#include "testmain.h"

static uint64_t s_find(evb_dedupe_t *d, const char *id, int64_t now)
{
    return evb_dedupe_find(d, id, strlen(id), now);
}

static void s_add(evb_dedupe_t *d, const char *id, uint64_t seq, int64_t t)
{
    CU_ASSERT_EQUAL(evb_dedupe_add(d, id, strlen(id), seq, t), 0);
}

static void test_an_accepted_id_is_found_with_its_first_seq(void)
{
    evb_dedupe_t *d = evb_dedupe_new(1000, 100);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL(s_find(d, "a", 0), 0);
    s_add(d, "a", 7, 0);
    s_add(d, "b", 8, 0);
    s_add(d, "a", 9, 1); /* a retry never replaces the original */
    CU_ASSERT_EQUAL(s_find(d, "a", 10), 7);
    CU_ASSERT_EQUAL(s_find(d, "b", 10), 8);
    CU_ASSERT_EQUAL(s_find(d, "c", 10), 0);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), 2);
    evb_dedupe_destroy(&d);
    CU_ASSERT_PTR_NULL(d);
}

static void test_long_ids_are_kept_whole(void)
{
    evb_dedupe_t *d = evb_dedupe_new(0, 2);
    char a[201], b[201];
    memset(a, 'a', 200);
    a[200] = '\0';
    memcpy(b, a, sizeof b);
    b[199] = 'b'; /* differs only at the end */
    s_add(d, a, 1, 0);
    CU_ASSERT_EQUAL(s_find(d, a, 0), 1);
    CU_ASSERT_EQUAL(s_find(d, b, 0), 0);
    s_add(d, b, 2, 0);
    s_add(d, "short", 3, 0); /* evicts a */
    CU_ASSERT_EQUAL(s_find(d, a, 0), 0);
    CU_ASSERT_EQUAL(s_find(d, b, 0), 2);
    evb_dedupe_destroy(&d);
}

static void test_ids_older_than_the_window_are_forgotten(void)
{
    evb_dedupe_t *d = evb_dedupe_new(1000, 100);
    s_add(d, "old", 1, 0);
    s_add(d, "new", 2, 900);
    CU_ASSERT_EQUAL(s_find(d, "old", 1000), 1);  /* exactly the window */
    CU_ASSERT_EQUAL(s_find(d, "old", 1001), 0);  /* past it */
    CU_ASSERT_EQUAL(s_find(d, "new", 1001), 2);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), 1);
    evb_dedupe_destroy(&d);
}

static void test_max_ids_evicts_the_oldest_and_counts_it(void)
{
    evb_dedupe_t *d = evb_dedupe_new(0, 3); /* no window: only the bound */
    s_add(d, "1", 1, 0);
    s_add(d, "2", 2, 0);
    s_add(d, "3", 3, 0);
    s_add(d, "4", 4, 0);
    CU_ASSERT_EQUAL(s_find(d, "1", 0), 0);
    CU_ASSERT_EQUAL(s_find(d, "2", 0), 2);
    CU_ASSERT_EQUAL(s_find(d, "4", 0), 4);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), 3);
    CU_ASSERT_EQUAL(evb_dedupe_evicted(d), 1);
    evb_dedupe_destroy(&d);
}

static void test_many_ids_through_a_small_table_stay_exact(void)
{
    /* churn: 200,000 ids through 1,000 entries; every id still held is
     * found with its own seq, every evicted one is not (probe chains
     * survive backward-shift deletion) */
    const int n = 200000, keep = 1000;
    evb_dedupe_t *d = evb_dedupe_new(0, (size_t)keep);
    char id[32];
    for (int i = 1; i <= n; i++) {
        snprintf(id, sizeof id, "evt-%d", i * 7919 % 1000003);
        s_add(d, id, (uint64_t)i, i);
    }
    int wrong = 0;
    for (int i = 1; i <= n; i++) {
        snprintf(id, sizeof id, "evt-%d", i * 7919 % 1000003);
        uint64_t seq = s_find(d, id, n);
        uint64_t want = i > n - keep ? (uint64_t)i : 0;
        wrong += seq != want;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), (size_t)keep);
    CU_ASSERT_EQUAL(evb_dedupe_evicted(d), (uint64_t)(n - keep));
    evb_dedupe_destroy(&d);
}

static void test_claim_settle_and_unclaim(void)
{
    evb_dedupe_t *d = evb_dedupe_new(0, 4);
    int claimed = -1;
    CU_ASSERT_EQUAL(evb_dedupe_claim(d, "x", 1, 0, &claimed), 0);
    CU_ASSERT_EQUAL(claimed, 1);
    evb_dedupe_settle(d, 41);
    CU_ASSERT_EQUAL(evb_dedupe_claim(d, "x", 1, 0, &claimed), 41);
    CU_ASSERT_EQUAL(claimed, 0);
    CU_ASSERT_EQUAL(evb_dedupe_claim(d, "y", 1, 0, &claimed), 0);
    CU_ASSERT_EQUAL(claimed, 1);
    evb_dedupe_unclaim(d); /* the journal refused y */
    CU_ASSERT_EQUAL(s_find(d, "y", 0), 0);
    CU_ASSERT_EQUAL(s_find(d, "x", 0), 41);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), 1);
    /* claims keep working through eviction */
    for (int i = 0; i < 10; i++) {
        char id[8];
        snprintf(id, sizeof id, "c%d", i);
        CU_ASSERT_EQUAL(evb_dedupe_claim(d, id, strlen(id), 0, &claimed), 0);
        evb_dedupe_settle(d, (uint64_t)(100 + i));
    }
    CU_ASSERT_EQUAL(s_find(d, "c9", 0), 109);
    CU_ASSERT_EQUAL(s_find(d, "c6", 0), 106);
    CU_ASSERT_EQUAL(s_find(d, "c5", 0), 0);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), 4);
    evb_dedupe_destroy(&d);
}

static void test_ids_that_differ_only_late_in_a_long_string_are_distinct(void)
{
    /* ids of the longest length an event may have, alike but for their
     * last byte or their length: each is its own id */
    evb_dedupe_t *d = evb_dedupe_new(0, 1000);
    char id[257];
    memset(id, 'x', 256);
    id[256] = '\0';
    uint64_t seq = 0;
    for (int c = 0x21; c < 0x7f; c++) { /* the last byte */
        id[255] = (char)c;
        CU_ASSERT_EQUAL(s_find(d, id, 0), 0);
        s_add(d, id, ++seq, 0);
    }
    id[255] = 'x';
    for (size_t len = 1; len < 256; len++) { /* prefixes of each other */
        CU_ASSERT_EQUAL(evb_dedupe_find(d, id, len, 0), 0);
        CU_ASSERT_EQUAL(evb_dedupe_add(d, id, len, ++seq, 0), 0);
    }
    CU_ASSERT_EQUAL(evb_dedupe_count(d), (size_t)seq);
    seq = 0;
    int wrong = 0;
    for (int c = 0x21; c < 0x7f; c++) {
        id[255] = (char)c;
        wrong += s_find(d, id, 0) != ++seq;
    }
    id[255] = 'x';
    for (size_t len = 1; len < 256; len++)
        wrong += evb_dedupe_find(d, id, len, 0) != ++seq;
    CU_ASSERT_EQUAL(wrong, 0);
    evb_dedupe_destroy(&d);
}

/* A UUIDv7-shaped id (36 characters) made from i, as publishers' ids
 * look; out has room for 48. */
static void s_uuid(char *out, uint64_t i, unsigned salt)
{
    snprintf(out, 48, "%08x-%04x-7%03x-8%03x-%012llx",
             (unsigned)((0x0190a000 + (i >> 20)) & 0xffffffff),
             (unsigned)(i >> 4 & 0xffff), (unsigned)(i & 0xfff), salt & 0xfff,
             (unsigned long long)(i * 0x9e3779b97f4aull) & 0xffffffffffffull);
}

static void test_a_million_distinct_ids_give_no_false_duplicate(void)
{
    /* a false match would answer "duplicate" to a new event and lose it:
     * a million claims of new ids at the default size, then a million
     * lookups of ids never seen, must all say "new" */
    const uint64_t n = 1000000;
    evb_dedupe_t *d = evb_dedupe_new(24 * 3600 * 1000, (size_t)n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    char id[48];
    uint64_t false_dups = 0, wrong = 0;
    for (uint64_t i = 1; i <= n; i++) {
        int claimed = 0;
        s_uuid(id, i, 1);
        false_dups +=
            evb_dedupe_claim(d, id, 36, (int64_t)i / 100, &claimed) != 0 ||
            !claimed;
        evb_dedupe_settle(d, i);
    }
    int64_t now = (int64_t)n / 100;
    for (uint64_t i = 1; i <= n; i++) {
        s_uuid(id, i, 1);
        wrong += s_find(d, id, now) != i;
        s_uuid(id, i, 2); /* never added */
        false_dups += s_find(d, id, now) != 0;
    }
    CU_ASSERT_EQUAL(false_dups, 0);
    CU_ASSERT_EQUAL(wrong, 0);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), (size_t)n);
    CU_ASSERT_EQUAL(evb_dedupe_evicted(d), 0);
    evb_dedupe_destroy(&d);
}

static void test_eviction_keeps_probe_chains_intact_in_a_tiny_table(void)
{
    /* tables of 2 to 13 slots, so probe chains wrap around the end and
     * every deletion shifts entries: after every claim (and an unclaim
     * now and then) the newest max_ids ids are found with their own seq
     * and the one just evicted is not */
    int wrong = 0;
    for (size_t keep = 1; keep <= 8; keep++) {
        evb_dedupe_t *d = evb_dedupe_new(0, keep);
        char id[32];
        uint64_t seq = 0;
        for (int i = 1; i <= 20000; i++) {
            int claimed = 0;
            snprintf(id, sizeof id, "t%d", i);
            wrong += evb_dedupe_claim(d, id, strlen(id), 0, &claimed) != 0;
            if (i % 7 == 0) { /* the journal refused it */
                evb_dedupe_unclaim(d);
                continue;
            }
            evb_dedupe_settle(d, (uint64_t)i);
            seq = (uint64_t)i;
            /* the newest `keep` settled ids: i, and those before it that
             * were not unclaimed */
            size_t held = 0;
            for (int k = i; k >= 1 && held < keep; k--) {
                if (k % 7 == 0)
                    continue;
                snprintf(id, sizeof id, "t%d", k);
                wrong += s_find(d, id, 0) != (uint64_t)k;
                held++;
            }
            for (int k = i - (int)keep * 2; k >= 1 && k > i - (int)keep * 3;
                 k--) {
                snprintf(id, sizeof id, "t%d", k);
                wrong += s_find(d, id, 0) != 0; /* evicted */
            }
        }
        CU_ASSERT_EQUAL(evb_dedupe_count(d), keep);
        CU_ASSERT(seq > 0);
        evb_dedupe_destroy(&d);
    }
    CU_ASSERT_EQUAL(wrong, 0);
}

static void test_window_expiry_keeps_acceptance_order_across_clock_steps(void)
{
    evb_dedupe_t *d = evb_dedupe_new(1000, 100);
    s_add(d, "a", 1, 0);
    s_add(d, "b", 2, 500);
    s_add(d, "c", 3, 900);
    CU_ASSERT_EQUAL(s_find(d, "a", 1000), 1);
    CU_ASSERT_EQUAL(s_find(d, "a", 1001), 0);
    CU_ASSERT_EQUAL(s_find(d, "b", 1500), 2);
    CU_ASSERT_EQUAL(s_find(d, "b", 1501), 0);
    CU_ASSERT_EQUAL(s_find(d, "c", 1900), 3);
    /* the clock steps back 500 ms: e counts as accepted with d, never
     * before an older id */
    s_add(d, "d", 4, 2000);
    s_add(d, "e", 5, 1500);
    CU_ASSERT_EQUAL(s_find(d, "c", 1901), 0);
    CU_ASSERT_EQUAL(s_find(d, "e", 3000), 5);
    CU_ASSERT_EQUAL(s_find(d, "d", 3000), 4);
    CU_ASSERT_EQUAL(s_find(d, "e", 3001), 0);
    CU_ASSERT_EQUAL(evb_dedupe_count(d), 0);
    /* an unclaimed id leaves the newest time where it was */
    int claimed = 0;
    s_add(d, "f", 6, 10000);
    evb_dedupe_claim(d, "g", 1, 10900, &claimed);
    evb_dedupe_unclaim(d);
    s_add(d, "h", 7, 10100);
    CU_ASSERT_EQUAL(s_find(d, "f", 11000), 6);
    CU_ASSERT_EQUAL(s_find(d, "h", 11100), 7);
    CU_ASSERT_EQUAL(s_find(d, "h", 11101), 0);
    evb_dedupe_destroy(&d);
}

static void test_seqs_more_than_2_to_the_32_apart(void)
{
    /* an entry keeps its seq's low 32 bits: exact within 2^32 of the
     * newest seq, and never below the true seq or past the newest */
    const uint64_t big = 1ull << 32;
    evb_dedupe_t *d = evb_dedupe_new(0, 100);
    s_add(d, "a", 5, 0);
    s_add(d, "b", big - 1, 0);
    s_add(d, "c", big + 3, 0);
    CU_ASSERT_EQUAL(s_find(d, "a", 0), 5);
    CU_ASSERT_EQUAL(s_find(d, "b", 0), big - 1);
    CU_ASSERT_EQUAL(s_find(d, "c", 0), big + 3);
    s_add(d, "e", 2 * big + 10, 0);
    int claimed = 0;
    evb_dedupe_claim(d, "d", 1, 0, &claimed);
    evb_dedupe_settle(d, 3 * big + 7);
    /* more than 2^32 old: between the true seq and the newest */
    uint64_t a = s_find(d, "a", 0), b = s_find(d, "b", 0),
             c = s_find(d, "c", 0);
    CU_ASSERT(a >= 5 && a <= 3 * big + 7);
    CU_ASSERT(b >= big - 1 && b <= 3 * big + 7);
    CU_ASSERT(c >= big + 3 && c <= 3 * big + 7);
    CU_ASSERT_EQUAL(s_find(d, "e", 0), 2 * big + 10); /* within 2^32 */
    CU_ASSERT_EQUAL(s_find(d, "d", 0), 3 * big + 7);
    evb_dedupe_destroy(&d);
}

static void test_the_index_holds_at_most_32_bytes_per_id(void)
{
    /* docs/durability.md and docs/configuration.md state this figure */
    evb_dedupe_t *d = evb_dedupe_new(24 * 3600 * 1000, 1000000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    size_t bytes = evb_dedupe_bytes(d);
    printf("\n  duplicate index: %zu bytes at 1,000,000 ids (%.2f per id)\n",
           bytes, (double)bytes / 1e6);
    CU_ASSERT(bytes <= 32 * 1000000 + 8);
    CU_ASSERT(bytes >= 28 * 1000000);
    evb_dedupe_destroy(&d);
    d = evb_dedupe_new(0, 10);
    CU_ASSERT(evb_dedupe_bytes(d) <= 32 * 10 + 8);
    evb_dedupe_destroy(&d);
}

static void test_the_hash_is_siphash_128(void)
{
    /* the reference implementation's vectors (SipHash-2-4, 128-bit
     * output): key 00 01 .. 0f, message 00 01 .. (len - 1); the index
     * uses the same code with 1 and 3 rounds */
    static const struct {
        size_t len;
        unsigned char out[16];
    } want[] = {{0,
                 {0xa3, 0x81, 0x7f, 0x04, 0xba, 0x25, 0xa8, 0xe6, 0x6d, 0xf6,
                  0x72, 0x14, 0xc7, 0x55, 0x02, 0x93}},
                {1,
                 {0xda, 0x87, 0xc1, 0xd8, 0x6b, 0x99, 0xaf, 0x44, 0x34, 0x76,
                  0x59, 0x11, 0x9b, 0x22, 0xfc, 0x45}},
                {8,
                 {0x3b, 0x62, 0xa9, 0xba, 0x62, 0x58, 0xf5, 0x61, 0x0f, 0x83,
                  0xe2, 0x64, 0xf3, 0x14, 0x97, 0xb4}},
                {34,
                 {0x37, 0xa6, 0x98, 0x6c, 0xb8, 0x84, 0x7e, 0xdf, 0x09, 0x25,
                  0xf0, 0xf1, 0x30, 0x9b, 0x54, 0xde}},
                {63,
                 {0x51, 0x50, 0xd1, 0x77, 0x2f, 0x50, 0x83, 0x4a, 0x50, 0x3e,
                  0x06, 0x9a, 0x97, 0x3f, 0xbd, 0x7c}}};
    unsigned char kb[16], msg[64];
    for (int i = 0; i < 16; i++)
        kb[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    uint64_t key[2] = {s_le64(kb), s_le64(kb + 8)};
    for (size_t t = 0; t < sizeof want / sizeof want[0]; t++) {
        uint64_t h[2];
        s_siphash(key, msg, want[t].len, 2, 4, h);
        CU_ASSERT_EQUAL(h[0], s_le64(want[t].out));
        CU_ASSERT_EQUAL(h[1], s_le64(want[t].out + 8));
    }
}

static CU_TestInfo s_tests[] = {
    {"claim, settle and unclaim", test_claim_settle_and_unclaim},
    {"an accepted id is found with its first seq",
     test_an_accepted_id_is_found_with_its_first_seq},
    {"long ids are kept whole", test_long_ids_are_kept_whole},
    {"ids older than the window are forgotten",
     test_ids_older_than_the_window_are_forgotten},
    {"max_ids evicts the oldest and counts it",
     test_max_ids_evicts_the_oldest_and_counts_it},
    {"many ids through a small table stay exact",
     test_many_ids_through_a_small_table_stay_exact},
    {"ids that differ only late in a long string are distinct",
     test_ids_that_differ_only_late_in_a_long_string_are_distinct},
    {"a million distinct ids give no false duplicate",
     test_a_million_distinct_ids_give_no_false_duplicate},
    {"eviction keeps probe chains intact in a tiny table",
     test_eviction_keeps_probe_chains_intact_in_a_tiny_table},
    {"window expiry keeps acceptance order across clock steps",
     test_window_expiry_keeps_acceptance_order_across_clock_steps},
    {"seqs more than 2^32 apart", test_seqs_more_than_2_to_the_32_apart},
    {"the index holds at most 32 bytes per id",
     test_the_index_holds_at_most_32_bytes_per_id},
    {"the hash is SipHash-128", test_the_hash_is_siphash_128},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"dedupe", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_dedupe", s_suites);
}
