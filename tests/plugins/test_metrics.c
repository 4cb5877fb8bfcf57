/* The metrics plugin's pure parts: the Prometheus text writer (byte for
 * byte) and the figures drawn from events, with their bounded labels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../testmain.h"
#include "derived.h"
#include "health.h"
#include "promtext.h"

static char *s_render_dm(const dm_t *m)
{
    evb_buf_t b = EVB_BUF_INIT;
    pt_t w;
    pt_init(&w, &b);
    dm_render(m, &w);
    CU_ASSERT_FALSE(w.failed);
    return evb_buf_steal(&b, NULL);
}

static int s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

static void test_help_and_type_once_per_family(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    pt_t w;
    pt_init(&w, &b);
    const char *a[] = {"instance", "hooks", NULL};
    const char *c[] = {"instance", "files", NULL};
    pt_family(&w, "evbus_x_total", "Things done", PT_COUNTER);
    pt_sample(&w, "evbus_x_total", a, 3);
    pt_family(&w, "evbus_x_total", "Things done", PT_COUNTER);
    pt_sample(&w, "evbus_x_total", c, 12345678901.0);
    pt_family(&w, "evbus_depth", "Depth", PT_GAUGE);
    pt_sample(&w, "evbus_depth", NULL, 0.25);
    CU_ASSERT_FALSE(w.failed);
    CU_ASSERT_STRING_EQUAL(b.data,
                           "# HELP evbus_x_total Things done\n"
                           "# TYPE evbus_x_total counter\n"
                           "evbus_x_total{instance=\"hooks\"} 3\n"
                           "evbus_x_total{instance=\"files\"} 12345678901\n"
                           "# HELP evbus_depth Depth\n"
                           "# TYPE evbus_depth gauge\n"
                           "evbus_depth 0.25\n");
    evb_buf_free(&b);
}

static void test_label_values_and_help_are_escaped(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    pt_t w;
    pt_init(&w, &b);
    const char *l[] = {"project", "a\"b\\c\nd", NULL};
    pt_family(&w, "m", "line one\nback\\slash \"quoted\"", PT_GAUGE);
    pt_sample(&w, "m", l, 1);
    CU_ASSERT_STRING_EQUAL(b.data,
                           "# HELP m line one\\nback\\\\slash \"quoted\"\n"
                           "# TYPE m gauge\n"
                           "m{project=\"a\\\"b\\\\c\\nd\"} 1\n");
    evb_buf_free(&b);
}

static void test_numbers_read_back_exactly(void)
{
    struct {
        double v;
        const char *want;
    } cases[] = {{0, "0"},
                 {-3, "-3"},
                 {0.1, "0.1"},
                 {1.5e-7, "1.5e-07"},
                 {INFINITY, "+Inf"},
                 {-INFINITY, "-Inf"},
                 {NAN, "NaN"},
                 {1e300, "1e+300"},
                 {0.30000000000000004, "0.30000000000000004"},
                 {2.5, "2.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        evb_buf_t b = EVB_BUF_INIT;
        pt_number(&b, cases[i].v);
        CU_ASSERT_STRING_EQUAL(b.data, cases[i].want);
        if (!isnan(cases[i].v))
            CU_ASSERT_EQUAL(strtod(b.data, NULL), cases[i].v);
        evb_buf_free(&b);
    }
}

static void test_histogram_series(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    pt_t w;
    pt_init(&w, &b);
    const double bounds[] = {0.5, 1, INFINITY};
    const uint64_t counts[] = {1, 3, 4};
    const char *l[] = {"instance", "x", NULL};
    pt_family(&w, "d_seconds", "D", PT_HISTOGRAM);
    pt_histogram(&w, "d_seconds", l, 3, bounds, counts, 7.25);
    CU_ASSERT_STRING_EQUAL(b.data,
                           "# HELP d_seconds D\n"
                           "# TYPE d_seconds histogram\n"
                           "d_seconds_bucket{instance=\"x\",le=\"0.5\"} 1\n"
                           "d_seconds_bucket{instance=\"x\",le=\"1\"} 3\n"
                           "d_seconds_bucket{instance=\"x\",le=\"+Inf\"} 4\n"
                           "d_seconds_sum{instance=\"x\"} 7.25\n"
                           "d_seconds_count{instance=\"x\"} 4\n");
    evb_buf_free(&b);
}

static void test_invalid_names_are_refused(void)
{
    CU_ASSERT_TRUE(pt_name_valid("evbus_a:b_1"));
    CU_ASSERT_FALSE(pt_name_valid("1abc"));
    CU_ASSERT_FALSE(pt_name_valid("a-b"));
    CU_ASSERT_FALSE(pt_name_valid(""));
    CU_ASSERT_TRUE(pt_label_name_valid("project"));
    CU_ASSERT_FALSE(pt_label_name_valid("__name__"));
    CU_ASSERT_FALSE(pt_label_name_valid("a:b"));
    evb_buf_t b = EVB_BUF_INIT;
    pt_t w;
    pt_init(&w, &b);
    const char *l[] = {"bad-label", "v", "ok", "w", NULL};
    pt_family(&w, "bad name", "x", PT_GAUGE);
    CU_ASSERT_TRUE(w.failed);
    CU_ASSERT_EQUAL(b.len, 0);
    pt_sample(&w, "m", l, 1);
    CU_ASSERT_STRING_EQUAL(b.data, "m{ok=\"w\"} 1\n");
    evb_buf_free(&b);
}

static dm_event_t s_ev(const char *type, const char *project, double dur_ms,
                       double cost)
{
    dm_event_t e = {0};
    e.type = type;
    e.project = project;
    e.accepted_ms = 1700000000123;
    e.has_duration = dur_ms >= 0;
    e.duration_ms = dur_ms;
    e.has_cost = cost >= 0;
    e.cost = cost;
    return e;
}

static void test_task_counters_durations_and_costs_by_project(void)
{
    const double bounds[] = {1, 10};
    dm_t *m = dm_new(10, bounds, 2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    dm_event_t evs[] = {
        s_ev("task.completed", "alpha", 500, 0.25),
        s_ev("task.completed", "alpha", 4000, 0.5),
        s_ev("task.failed", "alpha", 20000, -1),
        s_ev("task.completed", "beta", -1, 1),
        s_ev("agent.stuck", "beta", -1, -1),
        s_ev("agent.stuck", NULL, -1, -1),
        s_ev("build.started", "alpha", 99, 99),
    };
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        dm_observe(m, &evs[i]);
    char *out = s_render_dm(m);
    const char *want[] = {
        "evbus_tasks_completed_total{project=\"alpha\"} 2\n",
        "evbus_tasks_completed_total{project=\"beta\"} 1\n",
        "evbus_tasks_completed_total{project=\"\"} 0\n",
        "evbus_tasks_failed_total{project=\"alpha\"} 1\n",
        "evbus_task_duration_seconds_bucket{project=\"alpha\",outcome="
        "\"completed\",le=\"1\"} 1\n",
        "evbus_task_duration_seconds_bucket{project=\"alpha\",outcome="
        "\"completed\",le=\"10\"} 2\n",
        "evbus_task_duration_seconds_bucket{project=\"alpha\",outcome="
        "\"completed\",le=\"+Inf\"} 2\n",
        "evbus_task_duration_seconds_sum{project=\"alpha\",outcome="
        "\"completed\"} 4.5\n",
        "evbus_task_duration_seconds_count{project=\"alpha\",outcome="
        "\"failed\"} 1\n",
        "evbus_task_duration_seconds_bucket{project=\"alpha\",outcome="
        "\"failed\",le=\"10\"} 0\n",
        "evbus_task_duration_seconds_count{project=\"beta\",outcome="
        "\"completed\"} 0\n",
        "evbus_task_cost_total{project=\"alpha\"} 0.75\n",
        "evbus_task_cost_total{project=\"beta\"} 1\n",
        "evbus_agents_stuck_total{project=\"beta\"} 1\n",
        "evbus_agents_stuck_total{project=\"\"} 1\n",
        "evbus_last_event_timestamp_seconds{type=\"build.started\"} "
        "1700000000.123\n",
        "evbus_metrics_label_values{label=\"project\"} 3\n",
        "evbus_metrics_label_values{label=\"type\"} 4\n",
        "evbus_metrics_label_folded_total{label=\"project\"} 0\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(out, want[i]))
            printf("\nmissing: %s", want[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, want[i]));
    }
    /* a type that is not a task type gives no project series of its own */
    CU_ASSERT_EQUAL(s_count(out, "evbus_tasks_completed_total{"), 3);
    free(out);
    dm_destroy(&m);
    CU_ASSERT_PTR_NULL(m);
}

static void test_label_values_beyond_the_limit_fold_into_other(void)
{
    const double bounds[] = {1};
    dm_t *m = dm_new(3, bounds, 1);
    char project[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(project, sizeof project, "p%d", i);
        dm_event_t e = s_ev("task.completed", project, 10, 1);
        dm_observe(m, &e);
    }
    dm_event_t lit = s_ev("task.failed", "other", -1, -1);
    dm_observe(m, &lit);
    CU_ASSERT_EQUAL(dm_values(m, "project"), 4);
    char *out = s_render_dm(m);
    CU_ASSERT_EQUAL(s_count(out, "evbus_tasks_completed_total{"), 4);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_tasks_completed_total{project=\"p0\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_tasks_completed_total{project=\"p2\"} 1\n"));
    CU_ASSERT_PTR_NULL(strstr(out, "project=\"p3\""));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_tasks_completed_total{project=\"other\"} 9997\n"));
    /* a project literally named "other" is the same series, never two */
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_tasks_failed_total{project=\"other\"} 1\n"));
    CU_ASSERT_EQUAL(s_count(out, "evbus_tasks_failed_total{project=\"other\""),
                    1);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_metrics_label_folded_total{label=\"project\"} "
                    "9997\n"));
    free(out);
    dm_destroy(&m);
}

static void test_bad_figures_are_ignored_not_counted_backwards(void)
{
    const double bounds[] = {1};
    dm_t *m = dm_new(5, bounds, 1);
    dm_event_t e = s_ev("task.completed", "a", -5, -2);
    e.has_duration = e.has_cost = 1;
    dm_observe(m, &e);
    e.duration_ms = NAN;
    e.cost = INFINITY;
    dm_observe(m, &e);
    char *out = s_render_dm(m);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_tasks_completed_total{project=\"a\"} 2\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_task_cost_total{project=\"a\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(out, "evbus_task_duration_seconds_count{project=\"a\",outcome="
                    "\"completed\"} 0\n"));
    free(out);
    dm_destroy(&m);
    CU_ASSERT_PTR_NULL(dm_new(0, bounds, 1));
}

/* The figures a broker reports, fed through the callback as figures()
 * would: ready or not, its heartbeat, two instances in given states. */
static void s_feed(health_t *h, int ready, double beat, int journal_ok,
                   int hook_up, int chat_disabled)
{
    const char *none[] = {NULL};
    const char *hook[] = {"instance", "hook", NULL};
    const char *chat[] = {"instance", "chat", NULL};
    health_on_figure(h, "evbus_build_info", "", 2, none, 1, 0, NULL, NULL);
    health_on_figure(h, "evbus_ready", "", 2, none, ready, 0, NULL, NULL);
    health_on_figure(h, "evbus_ingest_heartbeat_timestamp_seconds", "", 2, none,
                     beat, 0, NULL, NULL);
    health_on_figure(h, "evbus_journal_healthy", "", 2, none, journal_ok, 0,
                     NULL, NULL);
    health_on_figure(h, "evbus_instance_up", "", 2, hook, hook_up, 0, NULL,
                     NULL);
    health_on_figure(h, "evbus_instance_up", "", 2, chat, !chat_disabled, 0,
                     NULL, NULL);
    health_on_figure(h, "evbus_instance_disabled", "", 2, hook, 0, 0, NULL,
                     NULL);
    health_on_figure(h, "evbus_instance_disabled", "", 2, chat, chat_disabled,
                     0, NULL, NULL);
}

static void test_healthz_fails_when_the_ingest_loop_stalls(void)
{
    health_t h;
    health_init(&h);
    s_feed(&h, 1, 1000.0, 1, 1, 0);
    evb_buf_t b = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(health_live(&h, 1009.9, 10000, &b), 200);
    CU_ASSERT_STRING_EQUAL(b.data, "ok\n");
    evb_buf_reset(&b);
    CU_ASSERT_EQUAL(health_live(&h, 1012.5, 10000, &b), 503);
    CU_ASSERT_STRING_EQUAL(
        b.data, "unhealthy: the ingest loop has not run for 12.5 s\n");
    evb_buf_free(&b);
    health_free(&h);
}

static void test_readyz_names_what_is_missing(void)
{
    health_t h;
    evb_buf_t b = EVB_BUF_INIT;
    health_init(&h);
    s_feed(&h, 1, 1000.0, 1, 1, 0);
    CU_ASSERT_EQUAL(health_ready(&h, &b), 200);
    CU_ASSERT_STRING_EQUAL(b.data, "ready\n");
    health_free(&h);

    /* starting: the hook instance has not started yet */
    evb_buf_reset(&b);
    health_init(&h);
    s_feed(&h, 0, 1000.0, 1, 0, 0);
    CU_ASSERT_EQUAL(health_ready(&h, &b), 503);
    CU_ASSERT_STRING_EQUAL(b.data, "not ready: evbusd is starting or "
                                   "stopping; instances not running: hook\n");
    health_free(&h);

    /* a failing journal; a disabled instance is listed, not a reason */
    evb_buf_reset(&b);
    health_init(&h);
    s_feed(&h, 1, 1000.0, 0, 1, 1);
    CU_ASSERT_EQUAL(health_ready(&h, &b), 503);
    CU_ASSERT_STRING_EQUAL(b.data,
                           "not ready: the journal is failing (see the log); "
                           "instances not running: chat\n"
                           "disabled instances (see the log): chat\n");
    health_free(&h);

    evb_buf_reset(&b);
    health_init(&h);
    s_feed(&h, 1, 1000.0, 1, 1, 1);
    CU_ASSERT_EQUAL(health_ready(&h, &b), 200);
    CU_ASSERT_STRING_EQUAL(b.data, "ready\ndisabled instances (see the log): "
                                   "chat\n");
    health_free(&h);

    /* a stuck call is listed, not a reason */
    evb_buf_reset(&b);
    health_init(&h);
    s_feed(&h, 1, 1000.0, 1, 1, 0);
    const char *hook[] = {"instance", "hook", NULL};
    const char *chat[] = {"instance", "chat", NULL};
    health_on_figure(&h, "evbus_instance_stuck_calls", "", 2, chat, 0, 0, NULL,
                     NULL);
    health_on_figure(&h, "evbus_instance_stuck_calls", "", 2, hook, 1, 0, NULL,
                     NULL);
    CU_ASSERT_EQUAL(health_ready(&h, &b), 200);
    CU_ASSERT_STRING_EQUAL(b.data, "ready\ninstances with a plugin call stuck "
                                   "past slow_call (see the log): hook\n");
    health_free(&h);

    /* no broker figures at all (not attached): not ready */
    evb_buf_reset(&b);
    health_init(&h);
    CU_ASSERT_EQUAL(health_ready(&h, &b), 503);
    CU_ASSERT_STRING_EQUAL(b.data, "not ready: evbusd is starting or "
                                   "stopping\n");
    health_free(&h);
    evb_buf_free(&b);
}

static CU_TestInfo s_tests[] = {
    {"healthz", test_healthz_fails_when_the_ingest_loop_stalls},
    {"readyz", test_readyz_names_what_is_missing},
    {"HELP and TYPE once per family", test_help_and_type_once_per_family},
    {"escaping", test_label_values_and_help_are_escaped},
    {"numbers", test_numbers_read_back_exactly},
    {"histograms", test_histogram_series},
    {"invalid names", test_invalid_names_are_refused},
    {"task figures by project",
     test_task_counters_durations_and_costs_by_project},
    {"label cardinality is bounded",
     test_label_values_beyond_the_limit_fold_into_other},
    {"bad figures ignored", test_bad_figures_are_ignored_not_counted_backwards},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"metrics", NULL, NULL, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_metrics", s_suites);
}
