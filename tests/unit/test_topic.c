/* Topic patterns and subscriptions (core/topic.c). */
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "testmain.h"
#include "event.h" /* evb_sub_matches on events */
#include "topic.h"

static void test_literal_pattern_matches_only_itself(void)
{
    CU_ASSERT_TRUE(evb_topic_match("task.failed", "task.failed"));
    CU_ASSERT_FALSE(evb_topic_match("task.failed", "task.failed2"));
    CU_ASSERT_FALSE(evb_topic_match("task.failed", "task"));
    CU_ASSERT_FALSE(evb_topic_match("task.failed", "task.failed.x"));
    CU_ASSERT_FALSE(evb_topic_match("task", "task.failed"));
}

static void test_star_matches_exactly_one_segment(void)
{
    CU_ASSERT_TRUE(evb_topic_match("task.*", "task.failed"));
    CU_ASSERT_TRUE(evb_topic_match("task.*", "task.completed"));
    CU_ASSERT_FALSE(evb_topic_match("task.*", "task"));
    CU_ASSERT_FALSE(evb_topic_match("task.*", "task.step.failed"));
    CU_ASSERT_TRUE(evb_topic_match("*.failed", "task.failed"));
    CU_ASSERT_FALSE(evb_topic_match("*.failed", "task.step.failed"));
    CU_ASSERT_TRUE(evb_topic_match("workflow.*.completed",
                                   "workflow.step.completed"));
    CU_ASSERT_FALSE(evb_topic_match("workflow.*.completed",
                                    "workflow.step.failed"));
}

static void test_double_star_matches_one_or_more_trailing_segments(void)
{
    CU_ASSERT_TRUE(evb_topic_match("**", "task"));
    CU_ASSERT_TRUE(evb_topic_match("**", "workflow.step.completed"));
    CU_ASSERT_TRUE(evb_topic_match("task.**", "task.failed"));
    CU_ASSERT_TRUE(evb_topic_match("task.**", "task.step.failed"));
    CU_ASSERT_FALSE(evb_topic_match("task.**", "task"));
    CU_ASSERT_FALSE(evb_topic_match("task.**", "taskx.failed"));
}

static void test_segments_compare_whole_not_by_prefix(void)
{
    CU_ASSERT_FALSE(evb_topic_match("task.fail", "task.failed"));
    CU_ASSERT_FALSE(evb_topic_match("tas.*", "task.failed"));
}

static void test_pattern_check_refuses_malformed_patterns(void)
{
    char err[256];
    CU_ASSERT_EQUAL(evb_topic_pattern_check("task.*", err, sizeof err), 0);
    CU_ASSERT_EQUAL(evb_topic_pattern_check("**", err, sizeof err), 0);
    CU_ASSERT_EQUAL(evb_topic_pattern_check("a.**", err, sizeof err), 0);
    CU_ASSERT_EQUAL(evb_topic_pattern_check("", err, sizeof err), -1);
    CU_ASSERT_EQUAL(evb_topic_pattern_check("task..failed", err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "empty segment"));
    CU_ASSERT_EQUAL(evb_topic_pattern_check("**.failed", err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "last segment"));
    CU_ASSERT_EQUAL(evb_topic_pattern_check("task.fail*", err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "whole segment"));
    CU_ASSERT_EQUAL(evb_topic_pattern_check("Task.failed", err, sizeof err),
                    -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "lower-case"));
    CU_ASSERT_EQUAL(evb_topic_pattern_check("task.", err, sizeof err), -1);
}

/* An event decoded from a real envelope, with the given string attrs. */
static evb_event_t *s_event(const char *type, const char *k1, const char *v1,
                            const char *k2, const char *v2)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int n = 2 + (k1 != NULL) + (k2 != NULL);
    msgpack_pack_map(&pk, (size_t)n);
    const char *kv[][2] = {{"type", type}, {"source", "test"}, {k1, v1},
                           {k2, v2}};
    for (int i = 0; i < 4; i++) {
        if (!kv[i][0])
            continue;
        msgpack_pack_str_with_body(&pk, kv[i][0], strlen(kv[i][0]));
        msgpack_pack_str_with_body(&pk, kv[i][1], strlen(kv[i][1]));
    }
    evb_limits_t lim = EVB_LIMITS_DEFAULT;
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = evb_event_decode(type, strlen(type), sb.data, sb.size,
                                       &lim, 1000, &why, detail,
                                       sizeof detail);
    msgpack_sbuffer_destroy(&sb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    return ev;
}

static void test_subscription_needs_a_pattern_and_every_filter(void)
{
    char *patterns[] = {"task.*", "agent.stuck"};
    char *alpha[] = {"alpha", "beta"};
    char *t1[] = {"T-1"};
    evb_filter_t filters[] = {{"project", alpha, 2}, {"ticket", t1, 1}};
    evb_sub_t sub = {patterns, 2, filters, 2};

    evb_event_t *hit = s_event("task.failed", "project", "beta", "ticket",
                               "T-1");
    evb_event_t *wrong_ticket =
        s_event("task.failed", "project", "alpha", "ticket", "T-2");
    evb_event_t *no_project = s_event("agent.stuck", "ticket", "T-1", NULL,
                                      NULL);
    evb_event_t *wrong_type =
        s_event("budget.warning", "project", "alpha", "ticket", "T-1");
    CU_ASSERT_TRUE(evb_sub_matches(&sub, hit));
    CU_ASSERT_FALSE(evb_sub_matches(&sub, wrong_ticket));
    CU_ASSERT_FALSE(evb_sub_matches(&sub, no_project));
    CU_ASSERT_FALSE(evb_sub_matches(&sub, wrong_type));

    evb_sub_t all = {(char *[]){"**"}, 1, NULL, 0};
    CU_ASSERT_TRUE(evb_sub_matches(&all, wrong_type));
    evb_event_release(hit);
    evb_event_release(wrong_ticket);
    evb_event_release(no_project);
    evb_event_release(wrong_type);
}

static void test_filter_attribute_names_follow_cloudevents(void)
{
    CU_ASSERT_TRUE(evb_filter_attr_valid("project"));
    CU_ASSERT_TRUE(evb_filter_attr_valid("source"));
    CU_ASSERT_FALSE(evb_filter_attr_valid("data"));
    CU_ASSERT_FALSE(evb_filter_attr_valid("Project"));
    CU_ASSERT_FALSE(evb_filter_attr_valid("a_b"));
    CU_ASSERT_FALSE(evb_filter_attr_valid(""));
    CU_ASSERT_FALSE(evb_filter_attr_valid("abcdefghijklmnopqrstu"));
}

static CU_TestInfo s_tests[] = {
    {"literal pattern matches only itself",
     test_literal_pattern_matches_only_itself},
    {"* matches exactly one segment", test_star_matches_exactly_one_segment},
    {"** matches one or more trailing segments",
     test_double_star_matches_one_or_more_trailing_segments},
    {"segments compare whole", test_segments_compare_whole_not_by_prefix},
    {"pattern check refuses malformed patterns",
     test_pattern_check_refuses_malformed_patterns},
    {"subscription needs a pattern and every filter",
     test_subscription_needs_a_pattern_and_every_filter},
    {"filter attribute names follow CloudEvents",
     test_filter_attribute_names_follow_cloudevents},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"topic", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_topic", s_suites);
}
