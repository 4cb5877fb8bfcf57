/* core/stats.c: ingress counters by event type (bounded, with the two
 * catch-all types) and the latency histogram's buckets. The table is
 * process-wide, so each test sees what the earlier ones added. */
#include <math.h>
#include <string.h>

#include "../testmain.h"
#include "stats.h"

static evb_type_stats_t *s_type(const char *t)
{
    return evb_stats_type(t, t ? strlen(t) : 0);
}

static void test_types_are_counted_apart_up_to_the_limit(void)
{
    evb_stats_set_max_types(3);
    evb_type_stats_t *a = s_type("task.completed");
    CU_ASSERT_STRING_EQUAL(a->name, "task.completed");
    CU_ASSERT_PTR_EQUAL(s_type("task.completed"), a);
    evb_type_stats_t *b = s_type("task.failed");
    CU_ASSERT_PTR_NOT_EQUAL(a, b);
    CU_ASSERT_PTR_EQUAL(s_type("task.completed"), a); /* not the cache */
    evb_type_stats_t *c = s_type("agent.stuck");
    evb_type_stats_t *other = s_type("budget.warning"); /* the 4th */
    CU_ASSERT_STRING_EQUAL(other->name, EVB_TYPE_OTHER);
    CU_ASSERT_PTR_EQUAL(s_type("x.y.z"), other);
    CU_ASSERT_PTR_EQUAL(s_type("agent.stuck"), c);
    /* the limit is fixed once the table exists */
    evb_stats_set_max_types(1000);
    CU_ASSERT_PTR_EQUAL(s_type("another.type"), other);
    evb_type_stats_t *first;
    CU_ASSERT_EQUAL(evb_stats_types(&first), 5); /* 3 + _invalid + other */
    CU_ASSERT_STRING_EQUAL(first[0].name, EVB_TYPE_INVALID);
    CU_ASSERT_STRING_EQUAL(first[1].name, EVB_TYPE_OTHER);
    CU_ASSERT_STRING_EQUAL(first[2].name, "task.completed");
}

static void test_unreadable_and_literal_other_types(void)
{
    evb_type_stats_t *invalid = s_type(NULL);
    CU_ASSERT_STRING_EQUAL(invalid->name, "_invalid");
    CU_ASSERT_PTR_EQUAL(s_type("Task.Completed"), invalid);
    CU_ASSERT_PTR_EQUAL(s_type(""), invalid);
    CU_ASSERT_PTR_EQUAL(s_type("_invalid"), invalid);
    /* a type named "other" shares the catch-all's counters: never two
     * series with one name */
    CU_ASSERT_STRING_EQUAL(s_type("other")->name, "other");
    evb_type_stats_t *first;
    size_t n = evb_stats_types(&first);
    int others = 0;
    for (size_t i = 0; i < n; i++)
        others += strcmp(first[i].name, "other") == 0;
    CU_ASSERT_EQUAL(others, 1);
    /* a type frame is not NUL-terminated: only its n bytes count */
    CU_ASSERT_STRING_EQUAL(evb_stats_type("task.failedXYZ", 11)->name,
                           "task.failed");
}

static void test_ingress_totals_add_up_every_type(void)
{
    evb_ingress_totals_t before, after;
    evb_stats_ingress_totals(EVB_INGRESS_ACK, &before);
    evb_count(&s_type("task.completed")->accepted[EVB_INGRESS_ACK]);
    evb_count(&s_type("zzz.new")->accepted[EVB_INGRESS_ACK]); /* other */
    evb_count(&s_type(NULL)->rejected[EVB_INGRESS_ACK][EVB_REJECT_FRAMES]);
    evb_count(&s_type("task.failed")->duplicates[EVB_INGRESS_ACK]);
    evb_count(&s_type("task.failed")->accepted[EVB_INGRESS_PUB]);
    evb_stats_ingress_totals(EVB_INGRESS_ACK, &after);
    CU_ASSERT_EQUAL(after.accepted - before.accepted, 2);
    CU_ASSERT_EQUAL(after.rejected - before.rejected, 1);
    CU_ASSERT_EQUAL(after.rejected_by[EVB_REJECT_FRAMES] -
                        before.rejected_by[EVB_REJECT_FRAMES],
                    1);
    CU_ASSERT_EQUAL(after.duplicates - before.duplicates, 1);
}

static void test_histogram_buckets(void)
{
    evb_hist_t h;
    memset(&h, 0, sizeof h);
    CU_ASSERT_TRUE(isinf(evb_hist_bounds[EVB_HIST_BUCKETS - 1]));
    for (int i = 1; i < EVB_HIST_BUCKETS; i++)
        CU_ASSERT_TRUE(evb_hist_bounds[i] > evb_hist_bounds[i - 1]);
    evb_hist_observe(&h, 1000);       /* exactly 1 ms: the first bucket */
    evb_hist_observe(&h, 1001);       /* just over: the second */
    evb_hist_observe(&h, -5);         /* a clock step: 0 */
    evb_hist_observe(&h, 7200000000); /* 2 h: +Inf */
    CU_ASSERT_EQUAL(evb_read(&h.counts[0]), 2);
    CU_ASSERT_EQUAL(evb_read(&h.counts[1]), 1);
    CU_ASSERT_EQUAL(evb_read(&h.counts[EVB_HIST_BUCKETS - 1]), 1);
    CU_ASSERT_EQUAL(evb_read(&h.sum_us), 1000 + 1001 + 7200000000ull);
}

static CU_TestInfo s_tests[] = {
    {"types counted apart up to the limit",
     test_types_are_counted_apart_up_to_the_limit},
    {"unreadable and literal other types",
     test_unreadable_and_literal_other_types},
    {"ingress totals", test_ingress_totals_add_up_every_type},
    {"histogram buckets", test_histogram_buckets},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"stats", NULL, NULL, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_stats", s_suites);
}
