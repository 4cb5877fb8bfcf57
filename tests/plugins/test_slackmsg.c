/* The Slack plugin's pure parts: the message builder (slackmsg.c: the
 * exact JSON per event type, escaping, templates, summaries, Slack's
 * limits) and its rules (slackapi.c: Slack's answers, pacing, coalescing).
 * The plugin is tested end to end in tests/integration/test_slack.py. */
#include <CUnit/CUnit.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "slackapi.h"
#include "slackmsg.h"
#include "testmain.h"

/* ------------------------------------------------------ a fake event */

typedef struct {
    const char *k, *v;
} kv_t;

typedef struct {
    kv_t attrs[8];
    kv_t text[8];  /* data paths as text */
    struct {
        const char *k;
        double v;
    } num[8];      /* data paths as numbers */
    msgpack_sbuffer data; /* the data member as msgpack */
} fake_t;

static const char *f_attr(const void *ctx, const char *name)
{
    const fake_t *f = ctx;
    for (int i = 0; i < 8 && f->attrs[i].k; i++)
        if (strcmp(f->attrs[i].k, name) == 0)
            return f->attrs[i].v;
    return NULL;
}

static char *f_text(const void *ctx, const char *path)
{
    const fake_t *f = ctx;
    for (int i = 0; i < 8 && f->text[i].k; i++)
        if (strcmp(f->text[i].k, path) == 0)
            return strdup(f->text[i].v);
    for (int i = 0; i < 8 && f->num[i].k; i++)
        if (strcmp(f->num[i].k, path) == 0) {
            char b[64];
            snprintf(b, sizeof b, "%g", f->num[i].v);
            return strdup(b);
        }
    return NULL;
}

static void f_free(const void *ctx, char *t)
{
    (void)ctx;
    free(t);
}

static int f_number(const void *ctx, const char *path, double *out)
{
    const fake_t *f = ctx;
    for (int i = 0; i < 8 && f->num[i].k; i++)
        if (strcmp(f->num[i].k, path) == 0) {
            *out = f->num[i].v;
            return 0;
        }
    return -1;
}

static sm_event_t f_event(const fake_t *f)
{
    sm_event_t ev = {f, f_attr, f_text, f_free, f_number, NULL, 0};
    if (f->data.size) {
        ev.data_mp = (const uint8_t *)f->data.data;
        ev.data_mp_len = f->data.size;
    }
    return ev;
}

/* The payload for f (with an optional template and style); the caller
 * frees. Every payload must be valid JSON. */
static char *build(const fake_t *f, const sm_template_t *t,
                   const sm_style_t *s)
{
    sm_event_t ev = f_event(f);
    evb_buf_t out = EVB_BUF_INIT;
    CU_ASSERT_EQUAL_FATAL(sm_build(&ev, t, s, &out), 0);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[200] = "";
    int rc = evb_json_to_msgpack(out.data, out.len, &pk, 64, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "invalid JSON (%s): %s\n", err, out.data);
    CU_ASSERT_EQUAL(rc, 0);
    msgpack_sbuffer_destroy(&sb);
    return evb_buf_steal(&out, NULL);
}

static void expect(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fprintf(stderr, "\n got: %s\nwant: %s\n", got, want);
    CU_ASSERT_STRING_EQUAL(got, want);
}

/* ------------------------------------------------------ built-ins */

static void test_task_completed(void)
{
    fake_t f = {.attrs = {{"type", "task.completed"},
                          {"id", "e-1"},
                          {"source", "ci/runner-3"},
                          {"project", "alpha"}},
                .text = {{"task_id", "T-1"}},
                .num = {{"duration_ms", 125300}, {"cost", 0.4213}}};
    char *got = build(&f, NULL, NULL);
    expect(got,
           "{\"text\":\":white_check_mark: Task T-1 completed in 2m 05s, cost "
           "0.42 (project alpha)\",\"blocks\":["
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\":white_check_mark: *Task `T-1` completed*\"}},"
           "{\"type\":\"section\",\"fields\":["
           "{\"type\":\"mrkdwn\",\"text\":\"*Duration*\\n2m 05s\"},"
           "{\"type\":\"mrkdwn\",\"text\":\"*Cost*\\n0.42\"},"
           "{\"type\":\"mrkdwn\",\"text\":\"*Project*\\nalpha\"}]},"
           "{\"type\":\"context\",\"elements\":[{\"type\":\"mrkdwn\",\"text\":"
           "\"`task.completed` \xc2\xb7 source `ci/runner-3` \xc2\xb7 event "
           "`e-1`\"}]}]}");
    free(got);
}

static void test_task_completed_with_nothing_but_a_type(void)
{
    fake_t f = {.attrs = {{"type", "task.completed"}}};
    char *got = build(&f, NULL, NULL);
    expect(got, "{\"text\":\":white_check_mark: Task completed\",\"blocks\":["
                "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
                "\":white_check_mark: *Task completed*\"}},"
                "{\"type\":\"context\",\"elements\":[{\"type\":\"mrkdwn\","
                "\"text\":\"`task.completed`\"}]}]}");
    free(got);
}

static void test_task_failed_with_a_mention_and_a_channel(void)
{
    fake_t f = {.attrs = {{"type", "task.failed"},
                          {"id", "e-2"},
                          {"project", "alpha"},
                          {"ticket", "T-9"}},
                .text = {{"task_id", "T-2"},
                         {"error", "\n  disk full\nwhile writing /out  \n"}},
                .num = {{"exit_code", 2}}};
    sm_style_t s = {.mention = "<!here>", .channel = "#ops",
                    .username = "evbus", .icon_emoji = ":robot_face:"};
    char *got = build(&f, NULL, &s);
    expect(got,
           "{\"text\":\"<!here> :x: Task T-2 failed: disk full\xe2\x80\xa6 "
           "(exit 2, project alpha, ticket T-9)\",\"blocks\":["
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\"<!here> :x: *Task `T-2` failed*\"}},"
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\"```disk full\\nwhile writing /out```\"}},"
           "{\"type\":\"section\",\"fields\":["
           "{\"type\":\"mrkdwn\",\"text\":\"*Exit code*\\n2\"},"
           "{\"type\":\"mrkdwn\",\"text\":\"*Project*\\nalpha\"},"
           "{\"type\":\"mrkdwn\",\"text\":\"*Ticket*\\nT-9\"}]},"
           "{\"type\":\"context\",\"elements\":[{\"type\":\"mrkdwn\",\"text\":"
           "\"`task.failed` \xc2\xb7 event `e-2`\"}]}],"
           "\"channel\":\"#ops\",\"username\":\"evbus\","
           "\"icon_emoji\":\":robot_face:\"}");
    free(got);
}

static void test_agent_stuck(void)
{
    fake_t f = {.attrs = {{"type", "agent.stuck"}, {"agent", "a7"}},
                .text = {{"task_id", "T-3"},
                         {"last_activity", "editing main.c"}},
                .num = {{"stuck_for_s", 600}}};
    char *got = build(&f, NULL, NULL);
    expect(got,
           "{\"text\":\":warning: Agent a7 is stuck on task T-3 for 10m 00s; "
           "last activity: editing main.c\",\"blocks\":["
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\":warning: *Agent `a7` is stuck*\"}},"
           "{\"type\":\"section\",\"fields\":["
           "{\"type\":\"mrkdwn\",\"text\":\"*Task*\\nT-3\"},"
           "{\"type\":\"mrkdwn\",\"text\":\"*Stuck for*\\n10m 00s\"},"
           "{\"type\":\"mrkdwn\",\"text\":\"*Last activity*\\nediting "
           "main.c\"}]},"
           "{\"type\":\"context\",\"elements\":[{\"type\":\"mrkdwn\",\"text\":"
           "\"`agent.stuck`\"}]}]}");
    free(got);
}

static void test_any_other_type_lists_its_data(void)
{
    fake_t f = {.attrs = {{"type", "deploy.finished"},
                          {"id", "e-4"},
                          {"source", "cd"},
                          {"subject", "api v2"}}};
    msgpack_sbuffer_init(&f.data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f.data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "env", 3);
    msgpack_pack_str_with_body(&pk, "prod", 4);
    msgpack_pack_str_with_body(&pk, "replicas", 8);
    msgpack_pack_int(&pk, 3);
    msgpack_pack_str_with_body(&pk, "tags", 4);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_str_with_body(&pk, "b<c", 3);
    char *got = build(&f, NULL, NULL);
    expect(got,
           "{\"text\":\"deploy.finished from cd: api v2\",\"blocks\":["
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\"*deploy.finished* from `cd`\\napi v2\"}},"
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\"\xe2\x80\xa2 *env*: prod\\n\xe2\x80\xa2 *replicas*: 3\\n"
           "\xe2\x80\xa2 *tags*: [\\\"a\\\",\\\"b&lt;c\\\"]\"}},"
           "{\"type\":\"context\",\"elements\":[{\"type\":\"mrkdwn\",\"text\":"
           "\"`deploy.finished` \xc2\xb7 source `cd` \xc2\xb7 event "
           "`e-4`\"}]}]}");
    free(got);
    msgpack_sbuffer_destroy(&f.data);
}

static void test_only_the_first_ten_data_members_are_listed(void)
{
    fake_t f = {.attrs = {{"type", "x.y"}}};
    msgpack_sbuffer_init(&f.data);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &f.data, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 13);
    for (int i = 0; i < 13; i++) {
        char k[8];
        int n = snprintf(k, sizeof k, "k%02d", i);
        msgpack_pack_str_with_body(&pk, k, (size_t)n);
        msgpack_pack_int(&pk, i);
    }
    char *got = build(&f, NULL, NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "*k09*: 9\\n\xe2\x80\xa6 and 3 more"));
    CU_ASSERT_PTR_NULL(strstr(got, "k10"));
    free(got);
    msgpack_sbuffer_destroy(&f.data);
}

/* ------------------------------------------------------ escaping */

static void test_everything_from_the_event_is_escaped(void)
{
    fake_t f = {.attrs = {{"type", "task.failed"},
                          {"project", "R&D <core>"}},
                .text = {{"task_id", "<!channel>"},
                         {"error", "a < b && c > d"}}};
    char *got = build(&f, NULL, NULL);
    /* no event text can become a mention, a link or a tag */
    CU_ASSERT_PTR_NULL(strstr(got, "<!channel>"));
    CU_ASSERT_PTR_NULL(strstr(got, "R&D"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "Task &lt;!channel&gt; failed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "```a &lt; b &amp;&amp; c &gt; d```"));
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "*Project*\\nR&amp;D &lt;core&gt;"));
    free(got);
}

static void test_escape_and_cut(void)
{
    evb_buf_t b = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(sm_escape(&b, "a&b<c>d", 7), 0);
    CU_ASSERT_STRING_EQUAL(b.data, "a&amp;b&lt;c&gt;d");
    evb_buf_free(&b);

    int cut;
    CU_ASSERT_EQUAL(sm_cut("hello", 5, 5, &cut), 5);
    CU_ASSERT_EQUAL(cut, 0);
    CU_ASSERT_EQUAL(sm_cut("hello!", 6, 5, &cut), 4); /* + the ellipsis */
    CU_ASSERT_EQUAL(cut, 1);
    /* characters, not bytes: "ééé" is 3 characters in 6 bytes */
    CU_ASSERT_EQUAL(sm_cut("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 3, &cut), 6);
    CU_ASSERT_EQUAL(cut, 0);
    CU_ASSERT_EQUAL(sm_cut("\xc3\xa9\xc3\xa9\xc3\xa9", 6, 2, &cut), 2);
    /* never inside an escape: "a&amp;b" to 4 characters keeps "a" */
    CU_ASSERT_EQUAL(sm_cut("a&amp;b", 7, 4, &cut), 1);
    CU_ASSERT_EQUAL(sm_cut("a&amp;bcdef", 11, 8, &cut), 7); /* after ';' */
}

/* ------------------------------------------------------ limits */

/* The text of the n-th "text" member after `from` in s, unescaped enough
 * to count characters (the builder writes no \u escapes for these). */
static size_t chars_of_member(const char *s, const char *marker)
{
    const char *p = strstr(s, marker);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    p += strlen(marker);
    size_t n = 0;
    for (; *p && *p != '"'; p++) {
        if (*p == '\\')
            p++;
        if (((unsigned char)*p & 0xc0) != 0x80)
            n++;
    }
    return n;
}

static void test_long_texts_are_cut_to_slacks_limits(void)
{
    size_t big = 10000;
    char *subject = malloc(big + 1);
    memset(subject, 'x', big);
    subject[big] = '\0';
    char *err = malloc(big + 1);
    memset(err, 'e', big);
    err[big] = '\0';
    fake_t f = {.attrs = {{"type", "x.y"}, {"subject", subject}},
                .text = {{"error", err}}};
    char *got = build(&f, NULL, NULL);
    /* the fallback: SM_TEXT_MAX characters, the last an ellipsis */
    CU_ASSERT_EQUAL(chars_of_member(got, "{\"text\":\""), SM_TEXT_MAX);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "\xe2\x80\xa6\",\"blocks\""));
    /* the first section: SM_SECTION_MAX */
    CU_ASSERT_EQUAL(chars_of_member(got, "\"mrkdwn\",\"text\":\""),
                    SM_SECTION_MAX);
    free(got);
    /* a failure's error block: 1500 characters inside ```, the task id
     * (here the subject) at most 64 */
    f.attrs[0].v = "task.failed";
    got = build(&f, NULL, NULL);
    CU_ASSERT_EQUAL(chars_of_member(got, "\"text\":\"```"), 1500 + 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(got, "Task `" /* 63 x and an ellipsis */));
    CU_ASSERT_EQUAL(chars_of_member(got, ":x: *Task `"), 64 + 9);
    free(got);

    sm_template_t t = {.text = "{{subject}}", .title = "{{subject}}"};
    got = build(&f, &t, NULL);
    CU_ASSERT_EQUAL(chars_of_member(got, "\"plain_text\",\"text\":\""),
                    SM_HEADER_MAX);
    CU_ASSERT_EQUAL(chars_of_member(got, "\"mrkdwn\",\"text\":\""),
                    SM_SECTION_MAX);
    free(got);
    free(subject);
    free(err);
}

static void test_a_cut_never_splits_an_escape_or_a_character(void)
{
    /* 2999 characters, then "&" (5 bytes escaped) and "é" */
    char *s = malloc(3100);
    memset(s, 'y', 2999);
    strcpy(s + 2999, "&\xc3\xa9\xc3\xa9");
    fake_t f = {.attrs = {{"type", "x.y"}, {"subject", s}}};
    sm_template_t t = {.text = "{{subject}}"};
    char *got = build(&f, &t, NULL);
    const char *sec = strstr(got, "\"mrkdwn\",\"text\":\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(sec);
    /* 2999 'y' and the ellipsis: "&amp;" did not fit whole */
    CU_ASSERT_EQUAL(chars_of_member(got, "\"mrkdwn\",\"text\":\""), 3000);
    CU_ASSERT_PTR_NOT_NULL(strstr(sec, "yyy\xe2\x80\xa6\"}}"));
    CU_ASSERT_PTR_NULL(strstr(sec, "&am"));
    free(got);
    free(s);
}

/* ------------------------------------------------------ templates */

static void test_a_template_substitutes_attributes_and_data_paths(void)
{
    fake_t f = {.attrs = {{"type", "task.failed"}, {"project", "a&b"}},
                .text = {{"task_id", "T-<1>"}, {"result.reason", "oom"}}};
    sm_template_t t = {.text = "{{ type }} in {{project}}: {{data.task_id}}",
                       .title = "Failure in {{project}}",
                       .body = "*{{data.task_id}}* ({{data.result.reason}}"
                               "{{data.missing}}{{nope}})"};
    sm_style_t s = {.mention = "<!subteam^S1>"};
    char *got = build(&f, &t, &s);
    expect(got,
           "{\"text\":\"<!subteam^S1> task.failed in a&amp;b: T-&lt;1&gt;\","
           "\"blocks\":["
           "{\"type\":\"header\",\"text\":{\"type\":\"plain_text\",\"text\":"
           "\"Failure in a&amp;b\",\"emoji\":true}},"
           "{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":"
           "\"<!subteam^S1> *T-&lt;1&gt;* (oom)\"}}]}");
    free(got);
}

static void test_a_template_that_renders_empty_still_has_text(void)
{
    fake_t f = {.attrs = {{"type", "build.done"}}};
    sm_template_t t = {.text = "{{data.nothing}}", .body = "{{subject}}"};
    char *got = build(&f, &t, NULL);
    expect(got, "{\"text\":\"build.done\"}"); /* no empty text, no empty blocks */
    free(got);
}

static void test_template_syntax_errors_are_named(void)
{
    char err[256];
    CU_ASSERT_EQUAL(sm_template_check("ok {{type}} {{data.a.b}} }}", err,
                                      sizeof err),
                    0);
    CU_ASSERT_EQUAL(sm_template_check("x {{type", err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "character 3 has no \"}}\""));
    CU_ASSERT_EQUAL(sm_template_check("{{a {{b}}", err, sizeof err), -1);
    CU_ASSERT_EQUAL(sm_template_check("{{}}", err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "want an attribute name"));
    CU_ASSERT_EQUAL(sm_template_check("{{data}}", err, sizeof err), -1);
    CU_ASSERT_EQUAL(sm_template_check("{{data..x}}", err, sizeof err), -1);
    CU_ASSERT_EQUAL(sm_template_check("{{ty pe}}", err, sizeof err), -1);
}

/* ------------------------------------------------------ durations */

static void test_durations_in_human_units(void)
{
    char b[32];
    struct {
        double ms;
        const char *want;
    } cases[] = {{0, "0 ms"},          {850, "850 ms"},
                 {5120, "5.1 s"},      {59999, "59.9 s"},
                 {60000, "1m 00s"},    {125300, "2m 05s"},
                 {3720000, "1h 02m"},  {86400000 + 4 * 3600000, "1d 04h"},
                 {-5, "0 ms"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sm_duration(cases[i].ms, b, sizeof b);
        if (strcmp(b, cases[i].want) != 0)
            fprintf(stderr, "%g ms: got %s want %s\n", cases[i].ms, b,
                    cases[i].want);
        CU_ASSERT_STRING_EQUAL(b, cases[i].want);
    }
}

/* ------------------------------------------------------ summaries */

static void test_a_summary_lists_twenty_and_counts_the_rest(void)
{
    const char *lines[25];
    char store[25][32];
    for (int i = 0; i < 25; i++) {
        snprintf(store[i], sizeof store[i], "`e-%d` a%d", i, i);
        lines[i] = store[i];
    }
    sm_style_t st = {.mention = "<!here>"};
    evb_buf_t out = EVB_BUF_INIT;
    CU_ASSERT_EQUAL(sm_summary("agent.stuck", 40, 60000, lines, 25, &st, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "{\"text\":\"<!here> :repeat: 40 more "
                                            "agent.stuck events in 1m 00s\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out.data, "\xe2\x80\xa2 `e-19` a19\\n"
                                            "\xe2\x80\xa6 and 20 more"));
    CU_ASSERT_PTR_NULL(strstr(out.data, "e-20"));
    evb_buf_free(&out);

    fake_t f = {.attrs = {{"id", "e-9"}, {"project", "p<1>"}},
                .text = {{"agent_id", "a7"}}};
    sm_event_t ev = f_event(&f);
    CU_ASSERT_EQUAL(sm_event_line(&ev, &out), 0);
    CU_ASSERT_STRING_EQUAL(out.data, "`e-9` a7 (project p&lt;1&gt;)");
    evb_buf_free(&out);
}

/* ------------------------------------------------------ Slack's answers */

static void test_slack_answers_map_to_outcomes(void)
{
    char w[64];
    CU_ASSERT_EQUAL(sa_classify(1, 200, "ok", 2, w, sizeof w), SA_OK);
    CU_ASSERT_EQUAL(sa_classify(0, 0, "", 0, w, sizeof w), SA_RETRY);
    CU_ASSERT_STRING_EQUAL(w, "no answer");
    CU_ASSERT_EQUAL(sa_classify(1, 429, "", 0, w, sizeof w), SA_RETRY);
    CU_ASSERT_EQUAL(sa_classify(1, 500, "rollup_error", 12, w, sizeof w), SA_RETRY);
    CU_ASSERT_EQUAL(sa_classify(1, 503, "", 0, w, sizeof w), SA_RETRY);
    const char *drop[] = {"invalid_payload", "no_text", "user_not_found",
                          "action_prohibited", "invalid_token",
                          "posting_to_general_channel_denied",
                          "channel_not_found"};
    for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++) {
        CU_ASSERT_EQUAL(sa_classify(1, 400, drop[i], strlen(drop[i]), w, sizeof w),
                        SA_DROP);
        CU_ASSERT_STRING_EQUAL(w, drop[i]);
    }
    CU_ASSERT_EQUAL(sa_classify(1, 404, "no_service\n", 11, w, sizeof w), SA_DISABLE);
    CU_ASSERT_STRING_EQUAL(w, "no_service");
    CU_ASSERT_EQUAL(sa_classify(1, 410, "channel_is_archived", 19, w, sizeof w),
                    SA_DISABLE);
    /* not Slack's word: still final, named by the status */
    CU_ASSERT_EQUAL(sa_classify(1, 403, "<html>forbidden", 15, w, sizeof w), SA_DROP);
    CU_ASSERT_STRING_EQUAL(w, "HTTP 403");
    CU_ASSERT_EQUAL(sa_classify(1, 400, "no_textual", 10, w, sizeof w), SA_DROP);
    CU_ASSERT_STRING_EQUAL(w, "HTTP 400"); /* whole words only */
    CU_ASSERT_EQUAL(sa_classify(1, 302, "", 0, w, sizeof w), SA_DROP);
}

static void test_the_bucket_paces_after_a_burst(void)
{
    sa_bucket_t b;
    sa_bucket_init(&b, 1.0, 3, 1000);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 1000), 0);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 1000), 0);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 1000), 0); /* the burst */
    int64_t w = sa_bucket_take(&b, 1000);
    CU_ASSERT(w >= 1000 && w <= 1001);
    w = sa_bucket_take(&b, 1600); /* 0.6 of a token by now */
    CU_ASSERT(w >= 400 && w <= 401);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 2000), 0); /* one a second */
    CU_ASSERT(sa_bucket_take(&b, 2000) > 0);
    /* idle for long: the burst again, no more */
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 60000), 0);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 60000), 0);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 60000), 0);
    CU_ASSERT(sa_bucket_take(&b, 60000) > 0);
    /* a 429 with Retry-After 30 s: nothing before, then one at a time */
    sa_bucket_pause(&b, 90000);
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 61000), 29000);
    CU_ASSERT(sa_bucket_take(&b, 90000) > 0); /* starts empty */
    CU_ASSERT_EQUAL(sa_bucket_take(&b, 91000), 0);
}

static void test_a_storm_is_folded_after_the_threshold(void)
{
    sa_window_t w = {0, 0};
    CU_ASSERT_EQUAL(sa_window_note(&w, 1000, 0, 60000), SA_SEND); /* off */
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(sa_window_note(&w, 1000 + i, 3, 60000), SA_SEND);
    CU_ASSERT_EQUAL(sa_window_note(&w, 2000, 3, 60000), SA_HOLD);
    CU_ASSERT_EQUAL(sa_window_note(&w, 59000, 3, 60000), SA_HOLD);
    CU_ASSERT_FALSE(sa_window_due(&w, 60999, 60000));
    CU_ASSERT_TRUE(sa_window_due(&w, 61000, 60000));
    /* a new window */
    CU_ASSERT_EQUAL(sa_window_note(&w, 61000, 3, 60000), SA_SEND);
}

static CU_TestInfo s_tests[] = {
    {"summaries", test_a_summary_lists_twenty_and_counts_the_rest},
    {"Slack's answers", test_slack_answers_map_to_outcomes},
    {"pacing", test_the_bucket_paces_after_a_burst},
    {"coalescing", test_a_storm_is_folded_after_the_threshold},
    {"task.completed", test_task_completed},
    {"task.completed, bare", test_task_completed_with_nothing_but_a_type},
    {"task.failed, mention and channel",
     test_task_failed_with_a_mention_and_a_channel},
    {"agent.stuck", test_agent_stuck},
    {"other types list their data", test_any_other_type_lists_its_data},
    {"ten data members at most",
     test_only_the_first_ten_data_members_are_listed},
    {"event text is escaped", test_everything_from_the_event_is_escaped},
    {"escape and cut", test_escape_and_cut},
    {"limits", test_long_texts_are_cut_to_slacks_limits},
    {"cuts keep escapes and characters whole",
     test_a_cut_never_splits_an_escape_or_a_character},
    {"templates", test_a_template_substitutes_attributes_and_data_paths},
    {"template errors", test_template_syntax_errors_are_named},
    {"empty renders", test_a_template_that_renders_empty_still_has_text},
    {"durations", test_durations_in_human_units},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"slackmsg", NULL, NULL, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_slackmsg", s_suites);
}
