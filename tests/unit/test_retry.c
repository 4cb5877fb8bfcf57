/* The host's retry schedule (core/retry.c). */
#include <stdint.h>

#include "retry.h"
#include "testmain.h"

static const evb_retry_policy_t s_policy = {5, 1000, 8000, 60000};

static void test_ceiling_doubles_from_initial_delay_up_to_max_delay(void)
{
    CU_ASSERT_EQUAL(evb_retry_ceiling(&s_policy, 1), 1000);
    CU_ASSERT_EQUAL(evb_retry_ceiling(&s_policy, 2), 2000);
    CU_ASSERT_EQUAL(evb_retry_ceiling(&s_policy, 3), 4000);
    CU_ASSERT_EQUAL(evb_retry_ceiling(&s_policy, 4), 8000);
    CU_ASSERT_EQUAL(evb_retry_ceiling(&s_policy, 5), 8000);
    CU_ASSERT_EQUAL(evb_retry_ceiling(&s_policy, 60), 8000);
}

static void test_full_jitter_spans_zero_to_ceiling(void)
{
    /* the random draw maps onto [0, ceiling] inclusive */
    CU_ASSERT_EQUAL(evb_retry_delay(&s_policy, 3, 0), 0);
    CU_ASSERT_EQUAL(evb_retry_delay(&s_policy, 3, 4000), 4000);
    CU_ASSERT_EQUAL(evb_retry_delay(&s_policy, 3, 4001), 0);
    CU_ASSERT_EQUAL(evb_retry_delay(&s_policy, 3, 2500), 2500);
    /* and real draws stay inside, spread over the range */
    int64_t lo = INT64_MAX, hi = -1;
    for (int i = 0; i < 10000; i++) {
        int64_t d = evb_retry_delay(&s_policy, 3, evb_random());
        CU_ASSERT_TRUE_FATAL(d >= 0 && d <= 4000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    CU_ASSERT_TRUE(lo < 400);
    CU_ASSERT_TRUE(hi > 3600);
}

static void test_gives_up_at_max_attempts(void)
{
    int64_t due = -1;
    CU_ASSERT_EQUAL(evb_retry_next(&s_policy, 4, 0, 100, 0, 7, &due),
                    EVB_RETRY_AGAIN);
    CU_ASSERT_TRUE(due >= 100 && due <= 100 + 8000);
    CU_ASSERT_EQUAL(evb_retry_next(&s_policy, 5, 0, 100, 0, 7, &due),
                    EVB_RETRY_GIVE_UP_ATTEMPTS);
}

static void test_gives_up_when_next_attempt_would_pass_max_age(void)
{
    int64_t due = -1;
    /* accepted at 0, now 59000, ceiling 1000: 59000 + 999 is inside */
    CU_ASSERT_EQUAL(evb_retry_next(&s_policy, 1, 0, 59000, 0, 999, &due),
                    EVB_RETRY_AGAIN);
    CU_ASSERT_EQUAL(due, 59999);
    /* 59500 + 999 is past 60000 */
    CU_ASSERT_EQUAL(evb_retry_next(&s_policy, 1, 0, 59500, 0, 999, &due),
                    EVB_RETRY_GIVE_UP_AGE);
}

static void test_plugin_hint_replaces_backoff(void)
{
    int64_t due = -1;
    /* Retry-After 30 s beats a 1 s ceiling */
    CU_ASSERT_EQUAL(evb_retry_next(&s_policy, 1, 0, 1000, 30000, 0, &due),
                    EVB_RETRY_AGAIN);
    CU_ASSERT_EQUAL(due, 31000);
    /* ... and is still bounded by max_age */
    CU_ASSERT_EQUAL(evb_retry_next(&s_policy, 1, 0, 1000, 70000, 0, &due),
                    EVB_RETRY_GIVE_UP_AGE);
}

static void test_max_age_zero_means_no_age_limit(void)
{
    evb_retry_policy_t p = {100, 1000, 8000, 0};
    int64_t due = -1;
    CU_ASSERT_EQUAL(evb_retry_next(&p, 50, 0, INT64_C(1) << 40, 0, 1, &due),
                    EVB_RETRY_AGAIN);
}

static CU_TestInfo s_tests[] = {
    {"ceiling doubles up to max_delay",
     test_ceiling_doubles_from_initial_delay_up_to_max_delay},
    {"full jitter spans [0, ceiling]", test_full_jitter_spans_zero_to_ceiling},
    {"gives up at max_attempts", test_gives_up_at_max_attempts},
    {"gives up past max_age",
     test_gives_up_when_next_attempt_would_pass_max_age},
    {"plugin hint replaces backoff", test_plugin_hint_replaces_backoff},
    {"max_age 0 means no limit", test_max_age_zero_means_no_age_limit},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"retry", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_retry", s_suites);
}
