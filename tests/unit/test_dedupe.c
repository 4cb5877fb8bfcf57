/* Duplicate suppression index (core/dedupe.c). */
#include <stdio.h>
#include <string.h>

#include "dedupe.h"
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
    s_add(d, "short", 3, 0); /* evicts a: its memory is freed (ASan) */
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
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"dedupe", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_dedupe", s_suites);
}
