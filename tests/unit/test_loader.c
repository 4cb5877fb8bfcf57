/* The plugin loader (core/loader.c): real .so files built for the test,
 * each refused for its own reason, and a plugin built against the frozen
 * ABI 1.0 header driven through a real instance. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libconfig.h>
#include <msgpack.h>

#include "clock.h"
#include "instance.h"
#include "loader.h"
#include "testmain.h"

#ifndef TEST_PLUGIN_DIR
#error "TEST_PLUGIN_DIR must name the directory of the test plugins"
#endif

static char s_err[2048];

static evb_plugin_t *s_load(const char *name, uint32_t host_abi)
{
    s_err[0] = '\0';
    return evb_plugin_load(name, TEST_PLUGIN_DIR, host_abi, s_err,
                           sizeof s_err);
}

static void s_expect_refusal(const char *name, uint32_t host_abi,
                             const char *part1, const char *part2)
{
    evb_plugin_t *pl = s_load(name, host_abi);
    CU_ASSERT_PTR_NULL(pl);
    evb_plugin_unload(&pl);
    int ok = strstr(s_err, part1) && (!part2 || strstr(s_err, part2));
    if (!ok)
        fprintf(stderr, "\n  %s: message was: %s\n", name, s_err);
    CU_ASSERT_TRUE(ok);
}

static void test_good_plugin_loads_and_declares_options(void)
{
    evb_plugin_t *pl = s_load("plugin_good", EVB_HOST_ABI);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
    CU_ASSERT_STRING_EQUAL(pl->desc.name, "good");
    CU_ASSERT_EQUAL(pl->desc.abi_version, EVBUS_ABI_1_0);
    CU_ASSERT_EQUAL(evb_schema_count(pl->schema), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(pl->path, "plugin_good.so"));
    evb_plugin_unload(&pl);
    CU_ASSERT_PTR_NULL(pl);
    evb_plugin_unload(&pl); /* harmless twice */
}

static void test_major_mismatch_is_refused_with_both_versions(void)
{
    s_expect_refusal("plugin_major2", EVB_HOST_ABI,
                     "built for plugin ABI 2.0", "speaks ABI 1.");
}

static void test_newer_minor_than_host_is_refused(void)
{
    char want[64];
    snprintf(want, sizeof want, "needs plugin ABI 1.%d", EVBUS_ABI_MINOR + 1);
    s_expect_refusal("plugin_minor_new", EVB_HOST_ABI, want, "upgrade evbusd");
}

static void test_older_minor_loads_in_a_newer_host(void)
{
    /* a 1.7 broker still loads a plugin that claims 1.0 */
    evb_plugin_t *pl = s_load("plugin_good", EVBUS_ABI_MAKE(1, 7));
    CU_ASSERT_PTR_NOT_NULL(pl);
    evb_plugin_unload(&pl);
}

static void test_plugin_may_decline_a_host(void)
{
    s_expect_refusal("plugin_declines", EVB_HOST_ABI, "declined", NULL);
    /* plugin_good declines any major but 1 */
    s_expect_refusal("plugin_good", EVBUS_ABI_MAKE(2, 0), "declined",
                     "ABI 2.0");
}

static void test_missing_entry_symbol_is_refused(void)
{
    s_expect_refusal("plugin_noentry", EVB_HOST_ABI, "is not an evbus plugin",
                     "evbus_plugin_entry");
}

static void test_descriptor_without_deliver_is_refused(void)
{
    s_expect_refusal("plugin_nodeliver", EVB_HOST_ABI,
                     "lacks a required function", NULL);
}

static void test_descriptor_smaller_than_abi_1_0_is_refused(void)
{
    s_expect_refusal("plugin_small", EVB_HOST_ABI, "smaller than", NULL);
}

static void test_missing_plugin_names_where_it_looked(void)
{
    s_expect_refusal("no_such_plugin", EVB_HOST_ABI,
                     "plugin \"no_such_plugin\" not found", TEST_PLUGIN_DIR);
    s_expect_refusal("/nonexistent/dir/x.so", EVB_HOST_ABI, "does not exist",
                     NULL);
}

static void test_file_that_is_not_a_shared_object_is_refused(void)
{
    char path[] = "/tmp/evb-notso-XXXXXX.so";
    int fd = mkstemps(path, 3);
    CU_ASSERT_TRUE_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(write(fd, "hello\n", 6), 6);
    close(fd);
    s_expect_refusal(path, EVB_HOST_ABI, "cannot load plugin", path);
    unlink(path);
}

static void test_search_path_prefers_config_then_environment(void)
{
    setenv("EVBUS_PLUGIN_PATH", "/env/a:/env/b", 1);
    CU_ASSERT_STRING_EQUAL(evb_loader_search_path("/conf"), "/conf");
    CU_ASSERT_STRING_EQUAL(evb_loader_search_path(NULL), "/env/a:/env/b");
    unsetenv("EVBUS_PLUGIN_PATH");
    CU_ASSERT_STRING_EQUAL(evb_loader_search_path(NULL), EVBUS_PLUGIN_DIR);
    /* each directory of a path is searched */
    evb_plugin_t *pl = evb_plugin_load("plugin_good",
                                       "/nonexistent:" TEST_PLUGIN_DIR,
                                       EVB_HOST_ABI, s_err, sizeof s_err);
    CU_ASSERT_PTR_NOT_NULL(pl);
    evb_plugin_unload(&pl);
}

/* --------------------------------------------------- the frozen plugin */

static evb_event_t *s_event(const char *type, const char *id,
                            const char *subject)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    const char *kv[] = {"type", type, "id", id, "subject", subject};
    for (int i = 0; i < 6; i++)
        msgpack_pack_str_with_body(&pk, kv[i], strlen(kv[i]));
    evb_limits_t lim = EVB_LIMITS_DEFAULT;
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = evb_event_decode(type, strlen(type), sb.data, sb.size,
                                       &lim, evb_now_ms(), &why, detail,
                                       sizeof detail);
    msgpack_sbuffer_destroy(&sb);
    return ev;
}

static void test_plugin_built_against_frozen_1_0_header_works(void)
{
    char dir[] = "/tmp/evb-frozen-XXXXXX";
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
    char out[256], opts[512];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    snprintf(opts, sizeof opts, "options = { out = \"%s\"; };", out);

    evb_plugin_t *pl = s_load("plugin_v1_0_frozen", EVB_HOST_ABI);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pl);
    config_t cfg;
    config_init(&cfg);
    CU_ASSERT_EQUAL_FATAL(config_read_string(&cfg, opts), CONFIG_TRUE);
    evb_instance_conf_t ic = {0};
    ic.name = "frozen-1";
    ic.plugin = "plugin_v1_0_frozen";
    ic.file = "test.conf";
    ic.line = 1;
    ic.setting = "instances[0]";
    ic.queue_size = 100;
    ic.workers = 1;
    ic.retry = (evb_retry_policy_t){5, 1, 10, 60000};
    ic.options = config_lookup(&cfg, "options");
    char *all[] = {"**"};
    ic.sub.patterns = all;
    ic.sub.n_patterns = 1;

    evb_instance_t *inst =
        evb_instance_new(&ic, pl, "test.conf", dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(inst);
    CU_ASSERT_EQUAL_FATAL(evb_instance_start(inst), 0);
    evb_event_t *evs[3] = {s_event("task.completed", "e1", "plain"),
                           s_event("task.failed", "e2", "retry-once"),
                           s_event("agent.stuck", "e3", "plain")};
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(evs[i]);
        evb_instance_enqueue(inst, evs[i]);
        evb_event_release(evs[i]);
    }
    evb_instance_stop(inst, evb_mono_ms() + 5000);
    evb_instance_stats_t st;
    evb_instance_get_stats(inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 3);
    CU_ASSERT_EQUAL(st.retried, 1);
    CU_ASSERT_EQUAL(st.dead_lettered, 0);
    evb_instance_destroy(&inst);

    FILE *f = fopen(out, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char text[512] = {0};
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "task.completed e1 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "task.failed e2 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "task.failed e2 2\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "agent.stuck e3 1\n"));
    unlink(out);
    rmdir(dir);
    config_destroy(&cfg);
    evb_plugin_unload(&pl);
}

static CU_TestInfo s_tests[] = {
    {"good plugin loads and declares options",
     test_good_plugin_loads_and_declares_options},
    {"major mismatch refused with both versions",
     test_major_mismatch_is_refused_with_both_versions},
    {"newer minor than host refused", test_newer_minor_than_host_is_refused},
    {"older minor loads in a newer host",
     test_older_minor_loads_in_a_newer_host},
    {"plugin may decline a host", test_plugin_may_decline_a_host},
    {"missing entry symbol refused", test_missing_entry_symbol_is_refused},
    {"descriptor without deliver refused",
     test_descriptor_without_deliver_is_refused},
    {"descriptor smaller than ABI 1.0 refused",
     test_descriptor_smaller_than_abi_1_0_is_refused},
    {"missing plugin names where it looked",
     test_missing_plugin_names_where_it_looked},
    {"non-shared-object file refused",
     test_file_that_is_not_a_shared_object_is_refused},
    {"search path: config, then environment",
     test_search_path_prefers_config_then_environment},
    {"plugin built against the frozen 1.0 header works",
     test_plugin_built_against_frozen_1_0_header_works},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"loader", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_loader", s_suites);
}
