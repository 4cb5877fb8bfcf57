/* core/config.c: loading and checking the broker's configuration file.
 * Every error is asserted by the line it logs, which must name the file,
 * the line and the setting. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testlog.h"
#include "testmain.h"

#include "config.h"
#include "log.h"

static char s_conf[512]; /* s_dir/evbus.conf */

/* ---------------------------------------------------------------- helpers */

static int s_suite_init(void)
{
    if (testlog_open("evb_test_config") < 0)
        return -1;
    snprintf(s_conf, sizeof s_conf, "%s/evbus.conf", s_dir);
    return 0;
}

static int s_suite_clean(void)
{
    testlog_close();
    return 0;
}

static void s_write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs(text, fp);
    fclose(fp);
}

/* Load `path` with the log captured into s_log. */
static evb_config_t *s_load_path(const char *path, int *errors)
{
    s_log_reset();
    evb_config_t *cfg = evb_config_load(path, errors);
    s_log_read();
    return cfg;
}

/* Write `text` as s_dir/evbus.conf and load it. */
static evb_config_t *s_load(const char *text, int *errors)
{
    s_write_file(s_conf, text);
    return s_load_path(s_conf, errors);
}

/* A config with one valid instance, plus `extra` inside the instance. */
static evb_config_t *s_load_instance(const char *extra, int *errors)
{
    char text[4096];
    snprintf(text, sizeof text,
             "instances = (\n"          /* 1 */
             "  {\n"                    /* 2 */
             "    name = \"a\";\n"      /* 3 */
             "    plugin = \"file\";\n" /* 4 */
             "%s\n"                     /* 5.. */
             "  }\n"
             ");\n",
             extra);
    return s_load(text, errors);
}

/* ------------------------------------------------------------------ tests */

static const char *const s_full =
    "log_level = \"debug\";\n"
    "plugin_dir = \"/opt/evbus/plugins\";\n"
    "dead_letter_dir = \"/var/lib/evbus/dl\";\n"
    "shutdown_timeout = \"1.5s\";\n"
    "ingress = {\n"
    "  pub = \"tcp://127.0.0.1:7700\";\n"
    "  ack = \"tcp://127.0.0.1:7701\";\n"
    "  rcvhwm = 5000;\n"
    "  ack_sndhwm = 6000;\n"
    "  max_message_size = \"1M\";\n"
    "  max_depth = 16;\n"
    "  max_attr_len = 4096; max_types = 50;\n"
    "};\n"
    "egress = {\n"
    "  pub = \"tcp://127.0.0.1:7702\";\n"
    "  sndhwm = 7000;\n"
    "};\n"
    "instances = (\n"
    "  {\n" /* line 19 */
    "    name = \"events\";\n"
    "    plugin = \"file\";\n"
    "    topics = [ \"task.*\", \"agent.stuck\" ];\n"
    "    filter = { project = \"alpha\"; ticket = [\"T-1\", \"T-2\"]; };\n"
    "    queue_size = 20000;\n"
    "    workers = 4;\n"
    "    max_in_flight = 8;\n"
    "    retry = { max_attempts = 5; initial_delay = \"2s\";\n"
    "              max_delay = \"5m\"; max_age = \"24h\"; };\n"
    "    options = { path = \"x.jsonl\"; rotate_keep = 5; };\n"
    "  },\n"
    "  { name = \"hook.2\"; plugin = \"./plugins/webhook.so\"; }\n" /* 31 */
    ");\n";

static void test_full_example_loads_with_exact_values(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load(s_full, &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->path, s_conf);
    CU_ASSERT_EQUAL(cfg->log_level, EVBUS_LOG_DEBUG);
    CU_ASSERT_STRING_EQUAL(cfg->plugin_dir, "/opt/evbus/plugins");
    CU_ASSERT_STRING_EQUAL(cfg->dead_letter_dir, "/var/lib/evbus/dl");
    CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, 1500);
    CU_ASSERT_STRING_EQUAL(cfg->ingress_pub, "tcp://127.0.0.1:7700");
    CU_ASSERT_STRING_EQUAL(cfg->ingress_ack, "tcp://127.0.0.1:7701");
    CU_ASSERT_STRING_EQUAL(cfg->egress_pub, "tcp://127.0.0.1:7702");
    CU_ASSERT_EQUAL(cfg->ingress_rcvhwm, 5000);
    CU_ASSERT_EQUAL(cfg->ack_sndhwm, 6000);
    CU_ASSERT_EQUAL(cfg->egress_sndhwm, 7000);
    CU_ASSERT_EQUAL(cfg->limits.max_message_size, 1024 * 1024);
    CU_ASSERT_EQUAL(cfg->limits.max_depth, 16);
    CU_ASSERT_EQUAL(cfg->limits.max_attr_len, 4096);
    CU_ASSERT_EQUAL(cfg->max_types, 50);
    CU_ASSERT_EQUAL_FATAL(cfg->n_instances, 2);

    const evb_instance_conf_t *a = &cfg->instances[0];
    CU_ASSERT_STRING_EQUAL(a->name, "events");
    CU_ASSERT_STRING_EQUAL(a->plugin, "file");
    CU_ASSERT_STRING_EQUAL(a->file, s_conf);
    CU_ASSERT_EQUAL(a->line, 19);
    CU_ASSERT_STRING_EQUAL(a->setting, "instances[0]");
    CU_ASSERT_EQUAL_FATAL(a->sub.n_patterns, 2);
    CU_ASSERT_STRING_EQUAL(a->sub.patterns[0], "task.*");
    CU_ASSERT_STRING_EQUAL(a->sub.patterns[1], "agent.stuck");
    CU_ASSERT_EQUAL_FATAL(a->sub.n_filters, 2);
    CU_ASSERT_STRING_EQUAL(a->sub.filters[0].attr, "project");
    CU_ASSERT_EQUAL_FATAL(a->sub.filters[0].n_values, 1);
    CU_ASSERT_STRING_EQUAL(a->sub.filters[0].values[0], "alpha");
    CU_ASSERT_STRING_EQUAL(a->sub.filters[1].attr, "ticket");
    CU_ASSERT_EQUAL_FATAL(a->sub.filters[1].n_values, 2);
    CU_ASSERT_STRING_EQUAL(a->sub.filters[1].values[0], "T-1");
    CU_ASSERT_STRING_EQUAL(a->sub.filters[1].values[1], "T-2");
    CU_ASSERT_EQUAL(a->queue_size, 20000);
    CU_ASSERT_EQUAL(a->workers, 4);
    CU_ASSERT_EQUAL(a->max_in_flight, 8);
    CU_ASSERT_EQUAL(a->retry.max_attempts, 5);
    CU_ASSERT_EQUAL(a->retry.initial_ms, 2000);
    CU_ASSERT_EQUAL(a->retry.max_delay_ms, 300000);
    CU_ASSERT_EQUAL(a->retry.max_age_ms, 86400000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a->options);
    const char *path = NULL;
    CU_ASSERT_TRUE(config_setting_lookup_string(a->options, "path", &path));
    CU_ASSERT_STRING_EQUAL(path, "x.jsonl");

    const evb_instance_conf_t *b = &cfg->instances[1];
    CU_ASSERT_STRING_EQUAL(b->name, "hook.2");
    CU_ASSERT_STRING_EQUAL(b->plugin, "./plugins/webhook.so");
    CU_ASSERT_EQUAL(b->line, 31);
    CU_ASSERT_STRING_EQUAL(b->setting, "instances[1]");
    evb_config_destroy(&cfg);
}

static void test_defaults_when_keys_absent(void)
{
    int errors = -1;
    /* one setting that sets nothing: an empty file is refused */
    evb_config_t *cfg = s_load("# nothing set\ninstances = ();\n", &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->log_level, EVBUS_LOG_INFO);
    CU_ASSERT_PTR_NULL(cfg->plugin_dir);
    CU_ASSERT_STRING_EQUAL(cfg->dead_letter_dir, "var/evbus/dead-letters");
    CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, 10000);
    CU_ASSERT_EQUAL(cfg->slow_call_ms, 10000);
    CU_ASSERT_EQUAL(cfg->crash_limit, 2);
    CU_ASSERT_STRING_EQUAL(cfg->ingress_pub, "tcp://127.0.0.1:7700");
    CU_ASSERT_STRING_EQUAL(cfg->ingress_ack, "tcp://127.0.0.1:7701");
    CU_ASSERT_STRING_EQUAL(cfg->egress_pub, "tcp://127.0.0.1:7702");
    CU_ASSERT_EQUAL(cfg->ingress_rcvhwm, 100000);
    CU_ASSERT_EQUAL(cfg->ack_sndhwm, 100000);
    CU_ASSERT_EQUAL(cfg->egress_sndhwm, 100000);
    CU_ASSERT_EQUAL(cfg->egress_skip_on_slow, 1);
    CU_ASSERT_EQUAL(cfg->limits.max_message_size, 1024 * 1024);
    CU_ASSERT_EQUAL(cfg->limits.max_depth, 32);
    CU_ASSERT_EQUAL(cfg->limits.max_attr_len, 4096);
    CU_ASSERT_EQUAL(cfg->max_types, 1000);
    CU_ASSERT_EQUAL(cfg->n_instances, 0);
    CU_ASSERT_PTR_NULL(cfg->instances);
    CU_ASSERT_EQUAL(s_log[0], '\0');
    evb_config_destroy(&cfg);
}

static void test_instance_defaults_when_keys_absent(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load_instance("", &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL_FATAL(cfg->n_instances, 1);
    const evb_instance_conf_t *ic = &cfg->instances[0];
    const evb_retry_policy_t def = EVB_RETRY_DEFAULT;
    CU_ASSERT_EQUAL_FATAL(ic->sub.n_patterns, 1);
    CU_ASSERT_STRING_EQUAL(ic->sub.patterns[0], "**");
    CU_ASSERT_EQUAL(ic->sub.n_filters, 0);
    CU_ASSERT_EQUAL(ic->queue_size, 10000);
    CU_ASSERT_EQUAL(ic->workers, 1);
    CU_ASSERT_EQUAL(ic->max_in_flight, 0);
    CU_ASSERT_EQUAL(ic->retry.max_attempts, def.max_attempts);
    CU_ASSERT_EQUAL(ic->retry.initial_ms, def.initial_ms);
    CU_ASSERT_EQUAL(ic->retry.max_delay_ms, def.max_delay_ms);
    CU_ASSERT_EQUAL(ic->retry.max_age_ms, def.max_age_ms);
    CU_ASSERT_PTR_NULL(ic->options);
    evb_config_destroy(&cfg);
}

static void test_empty_instances_list_and_disabled_endpoints_load(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load("instances = ();\n"
                               "ingress = { pub = \"\"; ack = \"\"; };\n"
                               "egress = { pub = \"\"; };\n",
                               &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->n_instances, 0);
    CU_ASSERT_STRING_EQUAL(cfg->ingress_pub, "");
    CU_ASSERT_STRING_EQUAL(cfg->ingress_ack, "");
    CU_ASSERT_STRING_EQUAL(cfg->egress_pub, "");
    evb_config_destroy(&cfg);
    cfg = s_load("instances = [];\n", &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    evb_config_destroy(&cfg);
}

static void test_unknown_root_key_names_line_and_known_keys(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("log_level = \"info\";\n"
                               "log_levle = \"debug\";\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged(
        "ERROR config: %s:2: log_levle: unknown setting \"log_levle\" "
        "(known: log_level, plugin_dir, dead_letter_dir, shutdown_timeout, "
        "slow_call, crash_limit, "
        "ingress, egress, instances, journal, control)",
        s_conf));
}

static void test_unknown_ingress_key_names_line_and_known_keys(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("ingress = {\n"
                               "  pub = \"tcp://127.0.0.1:7700\";\n"
                               "  rcvhwn = 5;\n"
                               "};\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:3: ingress.rcvhwn: unknown setting \"rcvhwn\" "
                            "(known: pub, ack, rcvhwm, ack_sndhwm, "
                            "max_message_size, max_depth, max_attr_len, "
                            "max_rendered_size, max_types)",
                            s_conf));
}

static void test_an_empty_file_or_only_comments_is_refused(void)
{
    const char *texts[] = {"", "\n\n", "# only a comment\n// and another\n"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int errors = -1;
        evb_config_t *cfg = s_load(texts[i], &errors);
        CU_ASSERT_PTR_NULL(cfg);
        CU_ASSERT_EQUAL(errors, 1);
        CU_ASSERT_TRUE(s_logged("%s: the file holds no settings (empty, or "
                                "only comments)",
                                s_conf));
        evb_config_destroy(&cfg);
    }
}

static void test_journal_and_control_settings_load_with_defaults(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load("# defaults\ninstances = ();\n", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->journal_dir, "var/evbus/journal");
    CU_ASSERT_EQUAL(cfg->journal_segment_size, 64 << 20);
    CU_ASSERT_EQUAL(cfg->journal_commit_interval_ms, 0);
    CU_ASSERT_EQUAL(cfg->journal_commit_batch, 512);
    CU_ASSERT_EQUAL(cfg->journal_sync_interval_ms, 1000);
    CU_ASSERT_EQUAL(cfg->journal_max_size, 0);
    CU_ASSERT_EQUAL(cfg->journal_max_age_ms, 0);
    CU_ASSERT_EQUAL(cfg->dedupe_window_ms, 24 * 3600 * 1000);
    CU_ASSERT_EQUAL(cfg->dedupe_max_ids, 1000000);
    CU_ASSERT_STRING_EQUAL(cfg->control_endpoint, "tcp://127.0.0.1:7703");
    evb_config_destroy(&cfg);

    cfg = s_load("journal = { dir = \"/j\"; segment_size = \"1M\";\n"
                 "  commit_interval = \"5ms\"; commit_batch = 64;\n"
                 "  sync_interval = \"0\"; max_size = \"10G\";\n"
                 "  max_age = \"7d\"; dedupe_window = \"1h\";\n"
                 "  dedupe_max_ids = 5000; };\n"
                 "control = { endpoint = \"\"; };\n",
                 &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->journal_dir, "/j");
    CU_ASSERT_EQUAL(cfg->journal_segment_size, 1 << 20);
    CU_ASSERT_EQUAL(cfg->journal_commit_interval_ms, 5);
    CU_ASSERT_EQUAL(cfg->journal_commit_batch, 64);
    CU_ASSERT_EQUAL(cfg->journal_sync_interval_ms, 0);
    CU_ASSERT_EQUAL(cfg->journal_max_size, (int64_t)10 << 30);
    CU_ASSERT_EQUAL(cfg->journal_max_age_ms, 7LL * 86400 * 1000);
    CU_ASSERT_EQUAL(cfg->dedupe_window_ms, 3600 * 1000);
    CU_ASSERT_EQUAL(cfg->dedupe_max_ids, 5000);
    CU_ASSERT_STRING_EQUAL(cfg->control_endpoint, "");
    evb_config_destroy(&cfg);
}

static void test_journal_errors_name_the_setting(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("journal = { dir = \"\";\n"
                               "  commit_interval = \"5s\";\n"
                               "  fsync = 1; };\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 3);
    CU_ASSERT_TRUE(
        s_logged("%s:1: journal.dir: expected a non-empty string", s_conf));
    CU_ASSERT_TRUE(s_logged("%s:2: journal.commit_interval: expected at most "
                            "1s",
                            s_conf));
    CU_ASSERT_TRUE(
        s_logged("%s:3: journal.fsync: unknown setting \"fsync\"", s_conf));
}

static void test_instance_ordering_is_accepted_or_none(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load_instance("    ordering = \"none\";", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->instances[0].ordered, 0);
    evb_config_destroy(&cfg);
    cfg = s_load_instance("", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    /* not set: the plugin's default decides (see test_instance) */
    CU_ASSERT_EQUAL(cfg->instances[0].ordered, -1);
    evb_config_destroy(&cfg);
    cfg = s_load_instance("    ordering = \"fifo\";", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].ordering: expected "
                            "\"accepted\" or \"none\", got \"fifo\"",
                            s_conf));
}

static void test_instance_start_at_is_end_or_oldest(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load_instance("    start_at = \"oldest\";", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->instances[0].start_oldest, 1);
    evb_config_destroy(&cfg);
    cfg = s_load_instance("", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->instances[0].start_oldest, 0);
    evb_config_destroy(&cfg);
    cfg = s_load_instance("    start_at = \"beginning\";", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].start_at: expected \"end\" "
                            "or \"oldest\", got \"beginning\"",
                            s_conf));
}

static void test_rename_from_names_an_instance_that_is_gone(void)
{
    int errors = -1;
    evb_config_t *cfg =
        s_load_instance("    rename_from = \"old-a\";", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_STRING_EQUAL(cfg->instances[0].rename_from, "old-a");
    evb_config_destroy(&cfg);
    cfg = s_load_instance("    rename_from = \"a\";", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].rename_from: \"a\" is this "
                            "instance's own name",
                            s_conf));
    cfg = s_load_instance("    rename_from = \"no/slash\";", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].rename_from: expected the "
                            "old name of this instance",
                            s_conf));
    cfg =
        s_load("instances = (\n"
               "  { name = \"a\"; plugin = \"file\"; },\n"
               "  { name = \"b\"; plugin = \"file\"; rename_from = \"a\"; },\n"
               "  { name = \"c\"; plugin = \"file\"; rename_from = \"x\"; },\n"
               "  { name = \"d\"; plugin = \"file\"; rename_from = \"x\"; }\n"
               ");\n",
               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 2);
    CU_ASSERT_TRUE(s_logged("%s:3: instances[1].rename_from: instance \"a\" "
                            "is still configured (instances[0] at %s:2)",
                            s_conf, s_conf));
    CU_ASSERT_TRUE(s_logged("%s:5: instances[3].rename_from: \"x\" is also "
                            "taken over by instances[2] at %s:4",
                            s_conf, s_conf));
}

static void test_unknown_egress_key_names_line_and_known_keys(void)
{
    int errors = 0;
    evb_config_t *cfg =
        s_load("egress = { pub = \"\";\n sub = \"x\"; };\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:2: egress.sub: unknown setting \"sub\" "
                            "(known: pub, sndhwm, slow_subscriber)",
                            s_conf));
}

static void test_egress_slow_subscriber_policy_is_skip_or_drop(void)
{
    int errors = -1;
    evb_config_t *cfg =
        s_load("egress = { slow_subscriber = \"drop\"; };\n", &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->egress_skip_on_slow, 0);
    evb_config_destroy(&cfg);
    cfg = s_load("egress = { slow_subscriber = \"skip\"; };\n", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->egress_skip_on_slow, 1);
    evb_config_destroy(&cfg);
    cfg = s_load("\negress = { slow_subscriber = \"block\"; };\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:2: egress.slow_subscriber: expected \"drop\" "
                            "or \"skip\", got \"block\"",
                            s_conf));
}

static void test_unknown_instance_key_names_line_and_known_keys(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_instance("    queue_szie = 5;", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged(
        "%s:5: instances[0].queue_szie: unknown setting \"queue_szie\" "
        "(known: name, plugin, topics, filter, queue_size, workers, "
        "max_in_flight, retry, options, ordering, start_at, rename_from)",
        s_conf));
}

static void test_unknown_retry_key_names_line_and_known_keys(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_instance(
        "    retry = {\n      max_atempts = 3;\n    };", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("%s:6: instances[0].retry.max_atempts: unknown setting "
                 "\"max_atempts\" (known: max_attempts, initial_delay, "
                 "max_delay, max_age)",
                 s_conf));
}

static void test_wrong_type_names_expected_type_and_found_value(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_instance("    queue_size = \"abc\";", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("config: %s:5: instances[0].queue_size: expected "
                            "an integer from 1 to 10000000, got \"abc\"",
                            s_conf));

    cfg = s_load("ingress = 5;\nplugin_dir = 7;\nlog_level = true;\n"
                 "egress = { sndhwm = 1.5; };\n",
                 &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 4);
    CU_ASSERT_TRUE(
        s_logged("%s:1: ingress: expected a group { ... }, got 5", s_conf));
    CU_ASSERT_TRUE(
        s_logged("%s:2: plugin_dir: expected a string, got 7", s_conf));
    CU_ASSERT_TRUE(
        s_logged("%s:3: log_level: expected a string, got true", s_conf));
    CU_ASSERT_TRUE(s_logged("%s:4: egress.sndhwm: expected an integer of at "
                            "least 1, got 1.5",
                            s_conf));
}

static void test_wrong_container_types_are_named(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("instances = { name = \"a\"; };\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("%s:1: instances: expected a list of groups", s_conf));
    CU_ASSERT_TRUE(s_logged("got a group { ... }"));

    cfg = s_load("instances = ( \"a\" );\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:1: instances[0]: expected a group", s_conf));

    cfg = s_load_instance("    options = [ 1 ];", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].options: expected a group { "
                            "... }, got an array [ ... ]",
                            s_conf));
}

static void test_log_level_must_be_a_known_name(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("log_level = \"verbose\";\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:1: log_level: expected one of \"error\", "
                            "\"warn\", \"info\", \"debug\", got \"verbose\"",
                            s_conf));
    cfg = s_load("log_level = \"warn\";\n", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->log_level, EVBUS_LOG_WARN);
    evb_config_destroy(&cfg);
}

static void test_parse_duration_accepts_every_unit(void)
{
    static const struct {
        const char *text;
        int64_t ms;
    } ok[] = {{"0", 0},           {"42", 42},
              {"250ms", 250},     {"10s", 10000},
              {"1.5s", 1500},     {"0.25s", 250},
              {"5m", 300000},     {"1.5m", 90000},
              {"2h", 7200000},    {"1d", 86400000},
              {"1h30m", 5400000}, {"24h", 86400000},
              {"0s", 0},          {"1000000d", 86400000000000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t ms = -1;
        CU_ASSERT_EQUAL(evb_parse_duration(ok[i].text, &ms), 0);
        CU_ASSERT_EQUAL(ms, ok[i].ms);
        if (ms != ok[i].ms)
            fprintf(stderr, "\n  \"%s\" -> %lld\n", ok[i].text, (long long)ms);
    }
}

static void test_parse_duration_rejects_garbage(void)
{
    static const char *const bad[] = {
        "",      "abc", "-1s",  "10x",
        "s",     "1.5", "10 s", " 10s",
        "10s ",  "1.",  ".5s",  "1e3s",
        "10sec", "5M",  "1h30", "99999999999999999999",
        "+5s",   "1ss", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = 12345;
        int rc = evb_parse_duration(bad[i], &ms);
        CU_ASSERT_EQUAL(rc, -1);
        if (rc != -1)
            fprintf(stderr, "\n  \"%s\" was accepted as %lld\n", bad[i],
                    (long long)ms);
    }
    int64_t ms;
    CU_ASSERT_EQUAL(evb_parse_duration(NULL, &ms), -1);
    CU_ASSERT_EQUAL(evb_parse_duration("200000000000000d", &ms), -1);
}

static void test_parse_size_accepts_binary_units(void)
{
    static const struct {
        const char *text;
        int64_t bytes;
    } ok[] = {{"0", 0},
              {"512", 512},
              {"512B", 512},
              {"64K", 65536},
              {"64k", 65536},
              {"64KB", 65536},
              {"64KiB", 65536},
              {"1M", 1048576},
              {"1.5M", 1572864},
              {"100M", 104857600},
              {"256MiB", 268435456},
              {"1G", 1073741824},
              {"2GB", 2147483648}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t b = -1;
        CU_ASSERT_EQUAL(evb_parse_size(ok[i].text, &b), 0);
        CU_ASSERT_EQUAL(b, ok[i].bytes);
        if (b != ok[i].bytes)
            fprintf(stderr, "\n  \"%s\" -> %lld\n", ok[i].text, (long long)b);
    }
}

static void test_parse_size_rejects_garbage(void)
{
    static const char *const bad[] = {
        "",    "abc",  "-1K", "1.5", "10X",
        "1 M", "M",    "1MM", "1iB", "1Ki",
        "1T",  "1KBB", " 1K", "1K ", "99999999999999999999G"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t b = 777;
        int rc = evb_parse_size(bad[i], &b);
        CU_ASSERT_EQUAL(rc, -1);
        if (rc != -1)
            fprintf(stderr, "\n  \"%s\" was accepted as %lld\n", bad[i],
                    (long long)b);
    }
}

static void test_bad_duration_and_size_settings_are_reported(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("shutdown_timeout = \"10 seconds\";\n"
                               "ingress = {\n"
                               "  max_message_size = \"lots\";\n"
                               "};\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 2);
    CU_ASSERT_TRUE(s_logged("%s:1: shutdown_timeout: expected a duration "
                            "(milliseconds, or a string such as",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("got \"10 seconds\""));
    CU_ASSERT_TRUE(s_logged("%s:3: ingress.max_message_size: expected a size "
                            "from 64 to 256M",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("got \"lots\""));
}

static void test_negative_duration_is_rejected(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("shutdown_timeout = -5;\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("%s:1: shutdown_timeout: expected a duration", s_conf));
    CU_ASSERT_TRUE(s_logged("got -5"));
}

static void test_slow_call_and_crash_limit_load_and_are_checked(void)
{
    int errors = -1;
    evb_config_t *cfg =
        s_load("slow_call = \"0\";\ncrash_limit = 5;\n", &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_EQUAL(cfg->slow_call_ms, 0);
    CU_ASSERT_EQUAL(cfg->crash_limit, 5);
    evb_config_destroy(&cfg);
    cfg = s_load("slow_call = \"1m\";\ncrash_limit = 0;\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:2: crash_limit: ", s_conf));
    CU_ASSERT_TRUE(s_logged("expected an integer from 1 to 1000, got 0"));
}

static void test_size_settings_outside_their_range_are_rejected(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("ingress = {\n"
                               "  max_message_size = \"512M\";\n"
                               "  max_attr_len = 8;\n"
                               "};\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 2);
    CU_ASSERT_TRUE(s_logged("%s:2: ingress.max_message_size: expected a size "
                            "from 64 to 256M",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("got \"512M\""));
    CU_ASSERT_TRUE(s_logged("%s:3: ingress.max_attr_len: expected a size from "
                            "16 to 1M",
                            s_conf));

    cfg = s_load("ingress = { max_message_size = \"256M\"; max_attr_len = "
                 "\"1K\"; };\n",
                 &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->limits.max_message_size, 256u << 20);
    CU_ASSERT_EQUAL(cfg->limits.max_attr_len, 1024);
    evb_config_destroy(&cfg);
}

static void test_out_of_range_integers_name_the_range(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_instance("    queue_size = 0;\n"
                                        "    workers = 65;\n"
                                        "    max_in_flight = 100001;",
                                        &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 3);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].queue_size: expected an "
                            "integer from 1 to 10000000, got 0",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:6: instances[0].workers: expected an integer "
                            "from 1 to 64, got 65",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:7: instances[0].max_in_flight: expected an "
                            "integer from 0 to 100000, got 100001",
                            s_conf));

    cfg = s_load("ingress = { max_depth = 33; rcvhwm = 0; };\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 2);
    CU_ASSERT_TRUE(s_logged("%s:1: ingress.max_depth: expected an integer "
                            "from 1 to 32, got 33",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:1: ingress.rcvhwm: expected an integer of at "
                            "least 1, got 0",
                            s_conf));
}

static void test_integer_literal_too_big_for_libconfig_is_rejected(void)
{
    /* libconfig 1.5 would read 5000000000 as 705032704, in range */
    int errors = 0;
    evb_config_t *cfg =
        s_load_instance("    # 5000000000 in a comment is fine\n"
                        "    queue_size = 5000000000;",
                        &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("%s:6: integer 5000000000 is out of range", s_conf));
    CU_ASSERT_TRUE(s_logged("write 5000000000L for a 64-bit integer"));
    /* the wrapped value (705032704) is not reported as if written so */
    CU_ASSERT_PTR_NULL(strstr(s_log, "705032704"));

    cfg = s_load("shutdown_timeout = 3000000000L;\n", &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL(cfg->shutdown_timeout_ms, 3000000000LL);
    evb_config_destroy(&cfg);
}

static void test_bad_endpoint_is_rejected(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("ingress = {\n  pub = \"127.0.0.1:7700\";\n"
                               "  ack = \"tcp://\";\n};\n"
                               "egress = { pub = \"TCP://x:1\"; };\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 3);
    CU_ASSERT_TRUE(
        s_logged("%s:2: ingress.pub: expected a ZeroMQ endpoint", s_conf));
    CU_ASSERT_TRUE(s_logged("got \"127.0.0.1:7700\""));
    CU_ASSERT_TRUE(
        s_logged("%s:3: ingress.ack: expected a ZeroMQ endpoint", s_conf));
    CU_ASSERT_TRUE(
        s_logged("%s:5: egress.pub: expected a ZeroMQ endpoint", s_conf));
}

static void test_same_endpoint_for_pub_and_ack_is_rejected(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("ingress = {\n  pub = \"tcp://*:7700\";\n"
                               "  ack = \"tcp://*:7700\";\n};\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:3: ingress.ack: the same endpoint as "
                            "ingress.pub",
                            s_conf));
}

static void test_duplicate_instance_names_name_both(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("instances = (\n"
                               "  { name = \"x\"; plugin = \"file\"; },\n"
                               "  { name = \"y\"; plugin = \"file\"; },\n"
                               "  { name = \"x\"; plugin = \"slack\"; }\n"
                               ");\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:4: instances[2].name: duplicate instance name "
                            "\"x\" (also instances[0] at %s:2)",
                            s_conf, s_conf));
}

static void test_bad_topic_pattern_names_the_element(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_instance(
        "    topics = [ \"task.*\",\n               \"Task..x\" ];", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:6: instances[0].topics[1]: topic pattern "
                            "\"Task..x\"",
                            s_conf));

    cfg = s_load_instance("    topics = \"task.**.x\";", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("%s:5: instances[0].topics: topic pattern "
                 "\"task.**.x\": \"**\" may only be the last segment",
                 s_conf));

    cfg = s_load_instance("    topics = [];", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].topics: expected at least one "
                            "topic pattern",
                            s_conf));

    cfg = s_load_instance("    topics = [ 5 ];", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].topics[0]: expected a topic "
                            "pattern string, got 5",
                            s_conf));
}

static void test_single_topic_string_is_accepted(void)
{
    int errors = -1;
    evb_config_t *cfg =
        s_load_instance("    topics = \"agent.stuck\";", &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL_FATAL(cfg->instances[0].sub.n_patterns, 1);
    CU_ASSERT_STRING_EQUAL(cfg->instances[0].sub.patterns[0], "agent.stuck");
    evb_config_destroy(&cfg);
}

static void test_bad_filter_attribute_name_is_reported(void)
{
    int errors = 0;
    evb_config_t *cfg =
        s_load_instance("    filter = {\n      Project = \"a\";\n"
                        "      data = \"b\";\n      ticket = 5;\n"
                        "      agent = [];\n    };",
                        &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 4);
    CU_ASSERT_TRUE(s_logged("%s:6: instances[0].filter.Project: \"Project\" is "
                            "not an attribute a filter can name",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:7: instances[0].filter.data: \"data\" is not "
                            "an attribute a filter can name",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:8: instances[0].filter.ticket: expected a "
                            "string or a list of strings, got 5",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:9: instances[0].filter.agent: expected at "
                            "least one value",
                            s_conf));
}

static void test_missing_name_and_plugin_are_reported_at_the_instance(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("instances = (\n"
                               "  {\n"
                               "    workers = 2;\n"
                               "  }\n"
                               ");\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 2);
    CU_ASSERT_TRUE(s_logged("%s:2: instances[0].name: required setting is "
                            "missing",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:2: instances[0].plugin: required setting is "
                            "missing",
                            s_conf));
}

static void test_bad_instance_name_and_plugin_are_reported(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("instances = (\n"
                               "  { name = \"has space\";\n"
                               "    plugin = \"File\"; },\n"
                               "  { name = \"\"; plugin = \"\"; }\n"
                               ");\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 4);
    CU_ASSERT_TRUE(s_logged("%s:2: instances[0].name: expected 1 to 64 "
                            "characters of [A-Za-z0-9_.-], got \"has space\"",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:3: instances[0].plugin: expected a plugin name "
                            "of [a-z0-9_-] or a path containing \"/\", got "
                            "\"File\"",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:4: instances[1].name: expected a non-empty "
                            "string",
                            s_conf));
    CU_ASSERT_TRUE(s_logged("%s:4: instances[1].plugin: expected a non-empty "
                            "string",
                            s_conf));
}

static void test_syntax_error_reports_libconfig_file_and_line(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load("log_level = \"info\";\n"
                               "\n"
                               "ingress = { rcvhwm = ; };\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("ERROR config: %s:3: syntax error", s_conf));
}

static void test_missing_file_reports_strerror(void)
{
    char path[600];
    snprintf(path, sizeof path, "%s/nope.conf", s_dir);
    int errors = 0;
    evb_config_t *cfg = s_load_path(path, &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("ERROR config: %s: cannot read: %s", path, strerror(ENOENT)));
}

static void test_directory_is_not_a_readable_config(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_path(s_dir, &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(
        s_logged("config: %s: cannot read: %s", s_dir, strerror(EISDIR)));
}

static void test_initial_delay_longer_than_max_delay_is_rejected(void)
{
    int errors = 0;
    evb_config_t *cfg = s_load_instance("    retry = {\n"
                                        "      initial_delay = \"10m\";\n"
                                        "      max_delay = \"5m\";\n"
                                        "    };",
                                        &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("%s:6: instances[0].retry.initial_delay: "
                            "initial_delay (10m) is longer than max_delay (5m)",
                            s_conf));

    /* against the default max_delay of 5m */
    cfg = s_load_instance("    retry = { initial_delay = \"6m\"; };", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("initial_delay (6m) is longer than max_delay (5m) "
                            "(the other is the default)"));
}

static void test_retry_values_and_max_age_zero_load(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load_instance(
        "    retry = { max_attempts = 1; initial_delay = 250;\n"
        "              max_delay = \"1.5s\"; max_age = \"0\"; };",
        &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const evb_retry_policy_t *r = &cfg->instances[0].retry;
    CU_ASSERT_EQUAL(r->max_attempts, 1);
    CU_ASSERT_EQUAL(r->initial_ms, 250);
    CU_ASSERT_EQUAL(r->max_delay_ms, 1500);
    CU_ASSERT_EQUAL(r->max_age_ms, 0);
    evb_config_destroy(&cfg);

    cfg = s_load_instance("    retry = { max_attempts = 0; };", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_TRUE(s_logged("%s:5: instances[0].retry.max_attempts: expected "
                            "an integer of at least 1, got 0",
                            s_conf));
}

static void test_three_mistakes_are_all_reported_in_one_run(void)
{
    int before = evb_config_error_count();
    int errors = 0;
    evb_config_t *cfg = s_load("log_level = \"loud\";\n"
                               "instances = (\n"
                               "  { name = \"a\"; plugin = \"file\";\n"
                               "    workers = 0;\n"
                               "    colour = \"blue\"; }\n"
                               ");\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 3);
    CU_ASSERT_EQUAL(evb_config_error_count() - before, 3);
    CU_ASSERT_EQUAL(s_count_lines("ERROR config: "), 3);
    CU_ASSERT_TRUE(s_logged("%s:1: log_level:", s_conf));
    CU_ASSERT_TRUE(s_logged("%s:4: instances[0].workers:", s_conf));
    CU_ASSERT_TRUE(
        s_logged("%s:5: instances[0].colour: unknown setting", s_conf));
}

static void test_include_error_names_the_included_file(void)
{
    char inc[600], incdir[600];
    snprintf(incdir, sizeof incdir, "%s/conf.d", s_dir);
    mkdir(incdir, 0700);
    snprintf(inc, sizeof inc, "%s/conf.d/egress.conf", s_dir);
    s_write_file(inc, "egress = {\n  pub = \"\";\n  sndhwn = 5;\n};\n");
    int errors = 0;
    evb_config_t *cfg = s_load("log_level = \"info\";\n"
                               "@include \"conf.d/egress.conf\"\n"
                               "plugin_dir = 5;\n",
                               &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 2);
    CU_ASSERT_TRUE(
        s_logged("config: %s:3: egress.sndhwn: unknown setting", inc));
    CU_ASSERT_TRUE(
        s_logged("config: %s:3: plugin_dir: expected a string", s_conf));

    /* a syntax error inside the included file */
    s_write_file(inc, "egress = {\n  pub = \"\";\n  sndhwm = ;\n};\n");
    cfg = s_load("@include \"conf.d/egress.conf\"\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("config: %s:3: syntax error", inc));

    /* a missing included file is named at the @include line */
    cfg = s_load("\n@include \"conf.d/none.conf\"\n", &errors);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("config: %s:2: cannot open include file", s_conf));
}

static void test_include_is_relative_to_the_config_file_directory(void)
{
    char sub[600], main_conf[700], inc[700], cwd[1024];
    snprintf(sub, sizeof sub, "%s/sub", s_dir);
    mkdir(sub, 0700);
    snprintf(main_conf, sizeof main_conf, "%s/main.conf", sub);
    snprintf(inc, sizeof inc, "%s/more.conf", sub);
    s_write_file(main_conf, "@include \"more.conf\"\n");
    s_write_file(inc, "instances = (\n  { name = \"x\"; plugin = \"file\";\n"
                      "    workers = 99; }\n);\n");
    CU_ASSERT_PTR_NOT_NULL_FATAL(getcwd(cwd, sizeof cwd));
    CU_ASSERT_EQUAL_FATAL(chdir(s_dir), 0);
    int errors = 0;
    evb_config_t *cfg = s_load_path("sub/main.conf", &errors);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    CU_ASSERT_PTR_NULL(cfg);
    CU_ASSERT_EQUAL(errors, 1);
    CU_ASSERT_TRUE(s_logged("config: sub/more.conf:3: instances[0].workers: "
                            "expected an integer from 1 to 64, got 99"));

    /* and the included settings load, with the included file named */
    s_write_file(inc,
                 "instances = (\n  { name = \"x\"; plugin = \"file\"; }\n);\n");
    CU_ASSERT_EQUAL_FATAL(chdir(s_dir), 0);
    cfg = s_load_path("sub/main.conf", &errors);
    CU_ASSERT_EQUAL(chdir(cwd), 0);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    CU_ASSERT_EQUAL_FATAL(cfg->n_instances, 1);
    CU_ASSERT_STRING_EQUAL(cfg->instances[0].file, "sub/more.conf");
    CU_ASSERT_EQUAL(cfg->instances[0].line, 2);
    evb_config_destroy(&cfg);
}

static void test_options_block_is_kept_and_not_checked(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load_instance(
        "    options = { anything = [1, 2]; Whatever = { x = 1; }; };",
        &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    config_setting_t *o = cfg->instances[0].options;
    CU_ASSERT_PTR_NOT_NULL_FATAL(o);
    CU_ASSERT_TRUE(config_setting_is_group(o));
    CU_ASSERT_EQUAL(config_setting_length(o), 2);
    CU_ASSERT_PTR_NOT_NULL(config_setting_get_member(o, "Whatever"));
    CU_ASSERT_EQUAL(config_setting_source_line(o), 5);
    evb_config_destroy(&cfg);
}

static void test_setting_path_uses_dots_and_indexes(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load_instance("    topics = [\"a\", \"b\"];\n"
                                        "    retry = { max_age = \"0\"; };",
                                        &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const config_setting_t *root = config_root_setting(&cfg->cfg);
    const config_setting_t *inst = config_setting_get_elem(
        config_setting_get_member(root, "instances"), 0);
    const config_setting_t *age = config_setting_get_member(
        config_setting_get_member(inst, "retry"), "max_age");
    const config_setting_t *topic =
        config_setting_get_elem(config_setting_get_member(inst, "topics"), 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(age);
    CU_ASSERT_PTR_NOT_NULL_FATAL(topic);
    char buf[128];
    CU_ASSERT_STRING_EQUAL(evb_setting_path(age, buf, sizeof buf),
                           "instances[0].retry.max_age");
    CU_ASSERT_STRING_EQUAL(evb_setting_path(topic, buf, sizeof buf),
                           "instances[0].topics[1]");
    CU_ASSERT_STRING_EQUAL(evb_setting_path(root, buf, sizeof buf), "");
    char small[8];
    memset(small, 'x', sizeof small);
    evb_setting_path(age, small, sizeof small);
    CU_ASSERT_EQUAL(strlen(small), sizeof small - 1); /* cut, terminated */
    CU_ASSERT_EQUAL(strncmp(small, "instanc", 7), 0);
    evb_config_destroy(&cfg);
}

static void test_report_formats_line_and_counts(void)
{
    int before = evb_config_error_count();
    s_log_reset();
    evb_config_report("a.conf", 7, "instances[0].workers", "bad %s", "thing");
    evb_config_report("b.conf", 0, NULL, "cannot read: %s", "nope");
    s_log_read();
    CU_ASSERT_EQUAL(evb_config_error_count() - before, 2);
    CU_ASSERT_TRUE(
        s_logged("ERROR config: a.conf:7: instances[0].workers: bad thing\n"));
    CU_ASSERT_TRUE(s_logged("ERROR config: b.conf: cannot read: nope\n"));
}

static void test_destroy_nulls_pointer_and_twice_is_harmless(void)
{
    int errors = -1;
    evb_config_t *cfg = s_load(s_full, &errors);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    evb_config_destroy(&cfg);
    CU_ASSERT_PTR_NULL(cfg);
    evb_config_destroy(&cfg);
    CU_ASSERT_PTR_NULL(cfg);
    evb_config_destroy(NULL);
}

static void test_errors_argument_may_be_null(void)
{
    evb_config_t *cfg = s_load("log_level = 1;\n", NULL);
    CU_ASSERT_PTR_NULL(cfg);
    cfg = s_load("log_level = \"info\";\n", NULL);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    evb_config_destroy(&cfg);
}

static CU_TestInfo s_tests[] = {
    {"test_full_example_loads_with_exact_values",
     test_full_example_loads_with_exact_values},
    {"test_defaults_when_keys_absent", test_defaults_when_keys_absent},
    {"test_instance_defaults_when_keys_absent",
     test_instance_defaults_when_keys_absent},
    {"test_empty_instances_list_and_disabled_endpoints_load",
     test_empty_instances_list_and_disabled_endpoints_load},
    {"test_unknown_root_key_names_line_and_known_keys",
     test_unknown_root_key_names_line_and_known_keys},
    {"test_unknown_ingress_key_names_line_and_known_keys",
     test_unknown_ingress_key_names_line_and_known_keys},
    {"test_instance_start_at_is_end_or_oldest",
     test_instance_start_at_is_end_or_oldest},
    {"test_rename_from_names_an_instance_that_is_gone",
     test_rename_from_names_an_instance_that_is_gone},
    {"test_unknown_egress_key_names_line_and_known_keys",
     test_unknown_egress_key_names_line_and_known_keys},
    {"test_slow_call_and_crash_limit_load_and_are_checked",
     test_slow_call_and_crash_limit_load_and_are_checked},
    {"test_an_empty_file_or_only_comments_is_refused",
     test_an_empty_file_or_only_comments_is_refused},
    {"test_journal_and_control_settings_load_with_defaults",
     test_journal_and_control_settings_load_with_defaults},
    {"test_journal_errors_name_the_setting",
     test_journal_errors_name_the_setting},
    {"test_instance_ordering_is_accepted_or_none",
     test_instance_ordering_is_accepted_or_none},
    {"test_egress_slow_subscriber_policy_is_skip_or_drop",
     test_egress_slow_subscriber_policy_is_skip_or_drop},
    {"test_unknown_instance_key_names_line_and_known_keys",
     test_unknown_instance_key_names_line_and_known_keys},
    {"test_unknown_retry_key_names_line_and_known_keys",
     test_unknown_retry_key_names_line_and_known_keys},
    {"test_wrong_type_names_expected_type_and_found_value",
     test_wrong_type_names_expected_type_and_found_value},
    {"test_wrong_container_types_are_named",
     test_wrong_container_types_are_named},
    {"test_log_level_must_be_a_known_name",
     test_log_level_must_be_a_known_name},
    {"test_parse_duration_accepts_every_unit",
     test_parse_duration_accepts_every_unit},
    {"test_parse_duration_rejects_garbage",
     test_parse_duration_rejects_garbage},
    {"test_parse_size_accepts_binary_units",
     test_parse_size_accepts_binary_units},
    {"test_parse_size_rejects_garbage", test_parse_size_rejects_garbage},
    {"test_bad_duration_and_size_settings_are_reported",
     test_bad_duration_and_size_settings_are_reported},
    {"test_negative_duration_is_rejected", test_negative_duration_is_rejected},
    {"test_size_settings_outside_their_range_are_rejected",
     test_size_settings_outside_their_range_are_rejected},
    {"test_out_of_range_integers_name_the_range",
     test_out_of_range_integers_name_the_range},
    {"test_integer_literal_too_big_for_libconfig_is_rejected",
     test_integer_literal_too_big_for_libconfig_is_rejected},
    {"test_bad_endpoint_is_rejected", test_bad_endpoint_is_rejected},
    {"test_same_endpoint_for_pub_and_ack_is_rejected",
     test_same_endpoint_for_pub_and_ack_is_rejected},
    {"test_duplicate_instance_names_name_both",
     test_duplicate_instance_names_name_both},
    {"test_bad_topic_pattern_names_the_element",
     test_bad_topic_pattern_names_the_element},
    {"test_single_topic_string_is_accepted",
     test_single_topic_string_is_accepted},
    {"test_bad_filter_attribute_name_is_reported",
     test_bad_filter_attribute_name_is_reported},
    {"test_missing_name_and_plugin_are_reported_at_the_instance",
     test_missing_name_and_plugin_are_reported_at_the_instance},
    {"test_bad_instance_name_and_plugin_are_reported",
     test_bad_instance_name_and_plugin_are_reported},
    {"test_syntax_error_reports_libconfig_file_and_line",
     test_syntax_error_reports_libconfig_file_and_line},
    {"test_missing_file_reports_strerror", test_missing_file_reports_strerror},
    {"test_directory_is_not_a_readable_config",
     test_directory_is_not_a_readable_config},
    {"test_initial_delay_longer_than_max_delay_is_rejected",
     test_initial_delay_longer_than_max_delay_is_rejected},
    {"test_retry_values_and_max_age_zero_load",
     test_retry_values_and_max_age_zero_load},
    {"test_three_mistakes_are_all_reported_in_one_run",
     test_three_mistakes_are_all_reported_in_one_run},
    {"test_include_error_names_the_included_file",
     test_include_error_names_the_included_file},
    {"test_include_is_relative_to_the_config_file_directory",
     test_include_is_relative_to_the_config_file_directory},
    {"test_options_block_is_kept_and_not_checked",
     test_options_block_is_kept_and_not_checked},
    {"test_setting_path_uses_dots_and_indexes",
     test_setting_path_uses_dots_and_indexes},
    {"test_report_formats_line_and_counts",
     test_report_formats_line_and_counts},
    {"test_destroy_nulls_pointer_and_twice_is_harmless",
     test_destroy_nulls_pointer_and_twice_is_harmless},
    {"test_errors_argument_may_be_null", test_errors_argument_may_be_null},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"config", s_suite_init, s_suite_clean, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_config", s_suites);
}
