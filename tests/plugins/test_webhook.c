/* The webhook plugin's pure parts: what an answer means (whfmt.c) and which
 * endpoints an event goes to (route.c). The HTTP side is tested against a
 * real receiver in tests/integration/test_webhook.py. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "testmain.h"
#include "whfmt.h"

/* ----------------------------------------------------------- outcomes */

static void test_2xx_is_delivered_and_network_errors_are_retried(void)
{
    CU_ASSERT_EQUAL(whfmt_classify(1, 200), WHFMT_OK);
    CU_ASSERT_EQUAL(whfmt_classify(1, 204), WHFMT_OK);
    CU_ASSERT_EQUAL(whfmt_classify(1, 299), WHFMT_OK);
    CU_ASSERT_EQUAL(whfmt_classify(0, 0), WHFMT_RETRY); /* no answer */
}

static void test_408_429_and_5xx_are_retried(void)
{
    CU_ASSERT_EQUAL(whfmt_classify(1, 408), WHFMT_RETRY);
    CU_ASSERT_EQUAL(whfmt_classify(1, 429), WHFMT_RETRY);
    CU_ASSERT_EQUAL(whfmt_classify(1, 500), WHFMT_RETRY);
    CU_ASSERT_EQUAL(whfmt_classify(1, 503), WHFMT_RETRY);
    CU_ASSERT_EQUAL(whfmt_classify(1, 599), WHFMT_RETRY);
}

static void test_3xx_and_other_4xx_are_permanent_and_410_disables(void)
{
    CU_ASSERT_EQUAL(whfmt_classify(1, 301), WHFMT_PERMANENT);
    CU_ASSERT_EQUAL(whfmt_classify(1, 307), WHFMT_PERMANENT);
    CU_ASSERT_EQUAL(whfmt_classify(1, 400), WHFMT_PERMANENT);
    CU_ASSERT_EQUAL(whfmt_classify(1, 401), WHFMT_PERMANENT);
    CU_ASSERT_EQUAL(whfmt_classify(1, 404), WHFMT_PERMANENT);
    CU_ASSERT_EQUAL(whfmt_classify(1, 100), WHFMT_PERMANENT);
    CU_ASSERT_EQUAL(whfmt_classify(1, 410), WHFMT_GONE);
}

static void test_retry_after_reads_seconds_and_http_dates(void)
{
    /* 2026-11-22T10:00:00Z */
    int64_t now = 1795341600000LL;
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("120", now), 120000);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms(" 0 ", now), 0);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("Sun, 22 Nov 2026 10:00:30 GMT", now),
                    30000);
    CU_ASSERT_EQUAL(
        whfmt_retry_after_ms("Sunday, 22-Nov-26 10:01:00 GMT", now), 60000);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("Sun Nov 22 10:00:05 2026", now),
                    5000);
    /* in the past: now; far away: a day at most */
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("Sun, 22 Nov 2026 09:00:00 GMT", now),
                    0);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("99999999", now), 86400000);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("Tue, 01 Jan 2030 00:00:00 GMT", now),
                    86400000);
}

static void test_retry_after_refuses_what_is_neither(void)
{
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("", 0), -1);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms(NULL, 0), -1);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("soon", 0), -1);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("12s", 0), -1);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("-5", 0), -1);
    CU_ASSERT_EQUAL(whfmt_retry_after_ms("22 Nov 2026", 0), -1);
}

static void test_url_label_drops_credentials_query_and_fragment(void)
{
    char out[128];
    whfmt_url_label("https://user:pw@hooks.example.com:8443/a/b?token=s#f",
                    out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "https://hooks.example.com:8443/a/b");
    whfmt_url_label("http://127.0.0.1:9000", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "http://127.0.0.1:9000");
    whfmt_url_label("http://h/p?x=@y", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "http://h/p");
}

static void test_url_check_wants_http_or_https_with_a_host(void)
{
    char why[128];
    CU_ASSERT_EQUAL(whfmt_url_check("http://h/p", why, sizeof why), 0);
    CU_ASSERT_EQUAL(whfmt_url_check("HTTPS://h:1/", why, sizeof why), 0);
    CU_ASSERT_EQUAL(whfmt_url_check("ftp://h/p", why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "http:// or https://"));
    CU_ASSERT_EQUAL(whfmt_url_check("http:///p", why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "no host"));
    CU_ASSERT_EQUAL(whfmt_url_check("http://u@/p", why, sizeof why), -1);
    CU_ASSERT_EQUAL(whfmt_url_check("http://h/a b", why, sizeof why), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "space"));
}

static void test_excerpt_is_bounded_printable_and_marks_the_cut(void)
{
    char out[32];
    whfmt_excerpt("bad\nfield", 9, 100, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "bad field");
    whfmt_excerpt("0123456789", 10, 4, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "0123...");
    /* never inside a UTF-8 sequence: "é" is two bytes */
    whfmt_excerpt("ab\xc3\xa9z", 5, 3, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "ab...");
    whfmt_excerpt("", 0, 10, out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "");
}

/* -------------------------------------------------------------- routes */

typedef struct {
    const char *agent;
} s_attrs_t;

static const char *s_attr(const void *ctx, const char *name)
{
    const s_attrs_t *a = ctx;
    return strcmp(name, "agent") == 0 ? a->agent : NULL;
}

static char *s_all[] = {"**"};

static void s_ep(wh_endpoint_t *ep, const char *label, const char *project,
                 const char *ticket, int replace)
{
    memset(ep, 0, sizeof *ep);
    ep->label = (char *)label;
    ep->setting = (char *)label;
    ep->project = (char *)project;
    ep->ticket = (char *)ticket;
    ep->replace = replace;
    ep->sub.patterns = s_all;
    ep->sub.n_patterns = 1;
}

/* The labels an event goes to, joined by spaces. */
static const char *s_pick(const wh_routes_t *r, const char *type,
                          const char *project, const char *ticket,
                          const char *agent)
{
    static char out[256];
    size_t idx[16];
    s_attrs_t a = {agent};
    size_t n = wh_route_select(r, type, project, ticket, s_attr, &a, idx);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, r->eps[idx[i]].label);
    }
    return out;
}

static void test_global_endpoints_get_events_without_routes(void)
{
    wh_endpoint_t eps[2];
    s_ep(&eps[0], "g1", NULL, NULL, 0);
    s_ep(&eps[1], "g2", NULL, NULL, 0);
    wh_routes_t r = {eps, 2};
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", NULL, NULL, NULL),
                           "g1 g2");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "alpha", "T-1", NULL),
                           "g1 g2");
}

static void test_project_route_adds_or_replaces_the_globals(void)
{
    wh_endpoint_t eps[3];
    s_ep(&eps[0], "g", NULL, NULL, 0);
    s_ep(&eps[1], "alpha", "alpha", NULL, 1); /* replace */
    s_ep(&eps[2], "beta", "beta", NULL, 0);   /* add */
    wh_routes_t r = {eps, 3};
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "alpha", NULL, NULL),
                           "alpha");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "beta", NULL, NULL),
                           "g beta");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "gamma", NULL, NULL),
                           "g");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", NULL, NULL, NULL), "g");
}

static void test_ticket_route_beats_project_route_beats_globals(void)
{
    wh_endpoint_t eps[5];
    s_ep(&eps[0], "g", NULL, NULL, 0);
    s_ep(&eps[1], "p-alpha", "alpha", NULL, 0);  /* add */
    s_ep(&eps[2], "t-17", NULL, "T-17", 1);      /* replace */
    s_ep(&eps[3], "t-18", NULL, "T-18", 0);      /* add */
    s_ep(&eps[4], "t-19@beta", "beta", "T-19", 1); /* replace, beta only */
    wh_routes_t r = {eps, 5};
    /* ticket replace: only the ticket's endpoint */
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "alpha", "T-17", NULL),
                           "t-17");
    /* ticket add: on top of project add on top of global */
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "alpha", "T-18", NULL),
                           "g p-alpha t-18");
    /* a ticket route that names a project needs both */
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "alpha", "T-19", NULL),
                           "g p-alpha");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "beta", "T-19", NULL),
                           "t-19@beta");
    /* a ticket with no route: the project level decides */
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", "alpha", "T-99", NULL),
                           "g p-alpha");
}

static void test_endpoint_topics_and_filters_still_apply(void)
{
    wh_endpoint_t eps[2];
    s_ep(&eps[0], "tasks", NULL, NULL, 0);
    char *task[] = {"task.*"};
    eps[0].sub.patterns = task;
    s_ep(&eps[1], "a1", NULL, NULL, 0);
    char *vals[] = {"a-1"};
    evb_filter_t f = {"agent", vals, 1};
    eps[1].sub.filters = &f;
    eps[1].sub.n_filters = 1;
    wh_routes_t r = {eps, 2};
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "task.failed", NULL, NULL, "a-1"),
                           "tasks a1");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "agent.stuck", NULL, NULL, "a-2"), "");
    CU_ASSERT_STRING_EQUAL(s_pick(&r, "agent.stuck", NULL, NULL, "a-1"),
                           "a1");
}

static void test_routes_of_one_selector_must_share_a_mode(void)
{
    wh_endpoint_t eps[4];
    s_ep(&eps[0], "routes[0]", "alpha", NULL, 1);
    s_ep(&eps[1], "routes[1]", "alpha", "T-1", 0); /* another selector */
    s_ep(&eps[2], "routes[2]", "beta", NULL, 0);
    s_ep(&eps[3], "routes[3]", "alpha", NULL, 1);
    wh_routes_t r = {eps, 4};
    const char *bad = NULL;
    char why[256];
    CU_ASSERT_EQUAL(wh_routes_check(&r, &bad, why, sizeof why), 0);
    eps[3].replace = 0;
    CU_ASSERT_EQUAL(wh_routes_check(&r, &bad, why, sizeof why), -1);
    CU_ASSERT_STRING_EQUAL(bad, "routes[3]");
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "routes[0]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "project alpha"));
}

static CU_TestInfo s_tests[] = {
    {"2xx delivered, network errors retried",
     test_2xx_is_delivered_and_network_errors_are_retried},
    {"408, 429, 5xx retried", test_408_429_and_5xx_are_retried},
    {"3xx and other 4xx permanent, 410 disables",
     test_3xx_and_other_4xx_are_permanent_and_410_disables},
    {"Retry-After: seconds and HTTP dates",
     test_retry_after_reads_seconds_and_http_dates},
    {"Retry-After: refuses what is neither",
     test_retry_after_refuses_what_is_neither},
    {"URL label drops credentials, query, fragment",
     test_url_label_drops_credentials_query_and_fragment},
    {"URL check: http(s) with a host",
     test_url_check_wants_http_or_https_with_a_host},
    {"excerpt: bounded, printable, cut marked",
     test_excerpt_is_bounded_printable_and_marks_the_cut},
    {"global endpoints without routes",
     test_global_endpoints_get_events_without_routes},
    {"project route adds or replaces",
     test_project_route_adds_or_replaces_the_globals},
    {"ticket beats project beats global",
     test_ticket_route_beats_project_route_beats_globals},
    {"endpoint topics and filters apply",
     test_endpoint_topics_and_filters_still_apply},
    {"routes of one selector share a mode",
     test_routes_of_one_selector_must_share_a_mode},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"webhook", NULL, NULL, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_webhook", s_suites);
}
