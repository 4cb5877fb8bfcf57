/* core/schema.c: plugin option declarations, resolving an instance's
 * `options` block against them, the typed getters and the dump. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
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
#include "schema.h"

static config_t s_cfg; /* the last parsed options text */
static int s_cfg_live;

/* ---------------------------------------------------------------- helpers */

static int s_suite_init(void)
{
    if (testlog_open("evb_test_schema") < 0)
        return -1;
    setenv("EVB_TEST_TOKEN", "tok-123", 1);
    setenv("EVB_TEST_HOST", "hooks.example.com", 1);
    setenv("EVB_TEST_TIMEOUT", "2s", 1);
    setenv("EVB_TEST_BADTIME", "soon", 1);
    unsetenv("EVB_TEST_UNSET");
    return 0;
}

static int s_suite_clean(void)
{
    if (s_cfg_live)
        config_destroy(&s_cfg);
    s_cfg_live = 0;
    testlog_close();
    return 0;
}

/* Parse `text` (a libconfig document) and return its `options` setting,
 * or NULL when it has none. */
static const config_setting_t *s_parse(const char *text)
{
    if (s_cfg_live)
        config_destroy(&s_cfg);
    config_init(&s_cfg);
    s_cfg_live = 1;
    if (!config_read_string(&s_cfg, text)) {
        fprintf(stderr, "\n  bad test config, line %d: %s\n",
                config_error_line(&s_cfg), config_error_text(&s_cfg));
        CU_FAIL_FATAL("test config does not parse");
    }
    return config_lookup(&s_cfg, "options");
}

/* Resolve `text`'s options against schema, with the log captured. The
 * block is described as test.conf, "instances[0].options", line 1. */
static int s_resolve(const evb_schema_t *schema, const char *text,
                     evb_options_t *out)
{
    const config_setting_t *o = s_parse(text);
    s_log_reset();
    int rc = evb_options_resolve(schema, o, "test.conf", "instances[0].options",
                                 1, out);
    s_log_read();
    return rc;
}

/* A webhook-like schema that uses every type. */
static evb_schema_t *s_webhook(void)
{
    evb_schema_t *s = evb_schema_new("webhook");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    int rc = 0;
    rc |= evb_schema_declare(s, "url", EVBUS_OPT_STRING, NULL,
                             EVBUS_OPT_REQUIRED, "where to POST");
    rc |= evb_schema_declare(s, "timeout", EVBUS_OPT_DURATION, "10s", 0,
                             "per request");
    rc |= evb_schema_declare(s, "max_body", EVBUS_OPT_SIZE, "1M", 0, NULL);
    rc |= evb_schema_declare(s, "retries", EVBUS_OPT_INT, "3", 0, NULL);
    rc |= evb_schema_declare(s, "verify", EVBUS_OPT_BOOL, "true", 0, NULL);
    rc |= evb_schema_declare(s, "ratio", EVBUS_OPT_FLOAT, "0.5", 0, NULL);
    rc |= evb_schema_declare(s, "secret", EVBUS_OPT_STRING, NULL,
                             EVBUS_OPT_SECRET, "HMAC key");
    rc |= evb_schema_declare(s, "headers", EVBUS_OPT_MAP, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "tags", EVBUS_OPT_LIST, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "tags[]", EVBUS_OPT_STRING, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "tls", EVBUS_OPT_GROUP, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "tls.verify", EVBUS_OPT_BOOL, "true", 0, NULL);
    rc |= evb_schema_declare(s, "tls.ca", EVBUS_OPT_STRING, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "endpoints", EVBUS_OPT_LIST, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "endpoints[]", EVBUS_OPT_GROUP, NULL, 0, NULL);
    rc |= evb_schema_declare(s, "endpoints[].url", EVBUS_OPT_STRING, NULL,
                             EVBUS_OPT_REQUIRED, NULL);
    rc |= evb_schema_declare(s, "endpoints[].timeout", EVBUS_OPT_DURATION, "5s",
                             0, NULL);
    rc |= evb_schema_declare(s, "endpoints[].headers", EVBUS_OPT_MAP, NULL, 0,
                             NULL);
    rc |= evb_schema_declare(s, "endpoints[].secret", EVBUS_OPT_STRING, NULL,
                             EVBUS_OPT_SECRET, NULL);
    rc |= evb_schema_declare(s, "keys", EVBUS_OPT_LIST, NULL, EVBUS_OPT_SECRET,
                             "rotating secrets");
    rc |= evb_schema_declare(s, "keys[]", EVBUS_OPT_STRING, NULL, 0, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    return s;
}

/* Declare and expect a refusal whose log line holds `why`. */
static void s_refused(evb_schema_t *s, const char *name, int type,
                      const char *def, unsigned flags, const char *why)
{
    size_t before = evb_schema_count(s);
    s_log_reset();
    int rc = evb_schema_declare(s, name, type, def, flags, NULL);
    s_log_read();
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(evb_schema_count(s), before);
    if (rc != -1)
        fprintf(stderr, "\n  \"%s\" was accepted\n", name ? name : "(null)");
    else {
        CU_ASSERT_TRUE(s_logged("ERROR plugin \"t\": bad declaration of "
                                "option \"%s\": ",
                                name ? name : "(null)"));
        CU_ASSERT_TRUE(s_logged("%s", why));
    }
}

/* ------------------------------------------------------------ declarations */

static void test_declare_accepts_well_formed_declarations(void)
{
    evb_schema_t *s = s_webhook();
    CU_ASSERT_EQUAL(evb_schema_count(s), 21);
    const char *name, *def, *desc;
    int type;
    unsigned flags;
    CU_ASSERT_EQUAL(evb_schema_get(s, 1, &name, &type, &def, &flags, &desc), 0);
    CU_ASSERT_STRING_EQUAL(name, "timeout");
    CU_ASSERT_EQUAL(type, EVBUS_OPT_DURATION);
    CU_ASSERT_STRING_EQUAL(def, "10s");
    CU_ASSERT_EQUAL(flags, 0);
    CU_ASSERT_STRING_EQUAL(desc, "per request");
    CU_ASSERT_EQUAL(evb_schema_get(s, 15, &name, &type, &def, &flags, &desc),
                    0);
    CU_ASSERT_STRING_EQUAL(name, "endpoints[].url");
    CU_ASSERT_EQUAL(flags, EVBUS_OPT_REQUIRED);
    CU_ASSERT_PTR_NULL(def);
    CU_ASSERT_PTR_NULL(desc);
    CU_ASSERT_EQUAL(evb_schema_get(s, 21, &name, NULL, NULL, NULL, NULL), -1);
    evb_schema_destroy(&s);
    CU_ASSERT_PTR_NULL(s);
    evb_schema_destroy(&s); /* twice is harmless */
}

static void test_declare_refuses_bad_names(void)
{
    evb_schema_t *s = evb_schema_new("t");
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "list", EVBUS_OPT_LIST, NULL, 0, NULL), 0);
    s_refused(s, "Path", EVBUS_OPT_STRING, NULL, 0,
              "must start with a "
              "lower-case letter");
    s_refused(s, "", EVBUS_OPT_STRING, NULL, 0, "the name is empty");
    s_refused(s, NULL, EVBUS_OPT_STRING, NULL, 0, "the name is empty");
    s_refused(s, "a..b", EVBUS_OPT_STRING, NULL, 0, "must start with");
    s_refused(s, "a.", EVBUS_OPT_STRING, NULL, 0, "must start with");
    s_refused(s, "9lives", EVBUS_OPT_STRING, NULL, 0, "must start with");
    s_refused(s, "a-b", EVBUS_OPT_STRING, NULL, 0, "unexpected character");
    s_refused(s, "list[1]", EVBUS_OPT_STRING, NULL, 0, "unexpected character");
    s_refused(s, "list[]x", EVBUS_OPT_STRING, NULL, 0, "unexpected character");
    s_refused(s, "list[][]", EVBUS_OPT_STRING, NULL, 0, "unexpected character");
    CU_ASSERT_EQUAL(evb_schema_count(s), 1);
    evb_schema_destroy(&s);
}

static void test_declare_refuses_undeclared_or_wrong_parent(void)
{
    evb_schema_t *s = evb_schema_new("t");
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "name", EVBUS_OPT_STRING, NULL, 0, NULL), 0);
    CU_ASSERT_EQUAL(evb_schema_declare(s, "hdrs", EVBUS_OPT_MAP, NULL, 0, NULL),
                    0);
    CU_ASSERT_EQUAL(evb_schema_declare(s, "eps", EVBUS_OPT_LIST, NULL, 0, NULL),
                    0);
    s_refused(s, "tls.ca", EVBUS_OPT_STRING, NULL, 0,
              "its parent \"tls\" must be declared first");
    s_refused(s, "name.x", EVBUS_OPT_STRING, NULL, 0,
              "its parent \"name\" is a STRING, not a GROUP");
    s_refused(s, "hdrs.x", EVBUS_OPT_STRING, NULL, 0,
              "\"hdrs\" is a MAP, whose keys are free");
    s_refused(s, "name[]", EVBUS_OPT_STRING, NULL, 0,
              "\"[]\" follows only a LIST's name");
    /* a LIST's members come after its element */
    s_refused(s, "eps.url", EVBUS_OPT_STRING, NULL, 0,
              "\"eps\" is a LIST: declare its element as \"eps[]\"");
    s_refused(s, "eps[].url", EVBUS_OPT_STRING, NULL, 0,
              "its parent \"eps[]\" must be declared first");
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "eps[]", EVBUS_OPT_STRING, NULL, 0, NULL), 0);
    s_refused(s, "eps[].url", EVBUS_OPT_STRING, NULL, 0,
              "its parent \"eps[]\" is a STRING, not a GROUP");
    evb_schema_destroy(&s);
}

static void test_declare_refuses_defaults_that_do_not_parse(void)
{
    evb_schema_t *s = evb_schema_new("t");
    s_refused(s, "a", EVBUS_OPT_INT, "abc", 0,
              "the default \"abc\" is not a valid INT");
    s_refused(s, "a", EVBUS_OPT_INT, "1.5", 0, "is not a valid INT");
    s_refused(s, "a", EVBUS_OPT_BOOL, "yes", 0, "is not a valid BOOL");
    s_refused(s, "a", EVBUS_OPT_FLOAT, "x1", 0, "is not a valid FLOAT");
    s_refused(s, "a", EVBUS_OPT_DURATION, "10x", 0, "is not a valid DURATION");
    s_refused(s, "a", EVBUS_OPT_SIZE, "1Q", 0, "is not a valid SIZE");
    s_refused(s, "a", EVBUS_OPT_GROUP, "{}", 0,
              "a GROUP cannot have a default");
    s_refused(s, "a", EVBUS_OPT_LIST, "[]", 0, "a LIST cannot have a default");
    CU_ASSERT_EQUAL(evb_schema_count(s), 0);
    CU_ASSERT_EQUAL(evb_schema_declare(s, "a", EVBUS_OPT_INT, "-42", 0, NULL),
                    0);
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "b", EVBUS_OPT_BOOL, "false", 0, NULL), 0);
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "c", EVBUS_OPT_FLOAT, "2.5e3", 0, NULL), 0);
    CU_ASSERT_EQUAL(evb_schema_count(s), 3);
    evb_schema_destroy(&s);
}

static void test_declare_refuses_required_with_default_and_duplicates(void)
{
    evb_schema_t *s = evb_schema_new("t");
    s_refused(s, "a", EVBUS_OPT_STRING, "x", EVBUS_OPT_REQUIRED,
              "a REQUIRED option cannot have a default");
    CU_ASSERT_EQUAL(evb_schema_declare(s, "a", EVBUS_OPT_STRING, NULL, 0, NULL),
                    0);
    s_refused(s, "a", EVBUS_OPT_INT, NULL, 0, "declared twice");
    s_refused(s, "b", 0, NULL, 0, "unknown type 0");
    s_refused(s, "b", 10, NULL, 0, "unknown type 10");
    s_refused(s, "b", EVBUS_OPT_STRING, NULL, 0x4, "unknown flags 0x4");
    CU_ASSERT_EQUAL(evb_schema_declare(s, "l", EVBUS_OPT_LIST, NULL, 0, NULL),
                    0);
    s_refused(s, "l[]", EVBUS_OPT_LIST, NULL, 0,
              "a LIST's element cannot itself be a LIST");
    s_refused(s, "l[]", EVBUS_OPT_STRING, NULL, EVBUS_OPT_REQUIRED,
              "a LIST's element cannot be REQUIRED");
    CU_ASSERT_EQUAL(evb_schema_count(s), 2);
    evb_schema_destroy(&s);
}

/* ----------------------------------------------------------------- resolve */

static void test_resolve_converts_every_type(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"https://example.com/hook\";\n"
                       "  timeout = \"1.5s\";\n"
                       "  max_body = \"64K\";\n"
                       "  retries = 7;\n"
                       "  verify = false;\n"
                       "  ratio = 2;\n"
                       "  tags = [ \"a\", \"b\" ];\n"
                       "  tls = { ca = \"/etc/ca.pem\"; };\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(s_log[0], '\0');
    CU_ASSERT_PTR_EQUAL(o.schema, s);
    CU_ASSERT_STRING_EQUAL(o.file, "test.conf");
    CU_ASSERT_STRING_EQUAL(o.setting, "instances[0].options");
    CU_ASSERT_EQUAL(o.line, 1);
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "url"),
                           "https://example.com/hook");
    CU_ASSERT_EQUAL(evb_options_int(&o, "timeout"), 1500);
    CU_ASSERT_EQUAL(evb_options_int(&o, "max_body"), 65536);
    CU_ASSERT_EQUAL(evb_options_int(&o, "retries"), 7);
    CU_ASSERT_EQUAL(evb_options_int(&o, "verify"), 0);
    CU_ASSERT_DOUBLE_EQUAL(evb_options_float(&o, "ratio"), 2.0, 1e-12);
    CU_ASSERT_EQUAL(evb_options_count(&o, "tags"), 2);
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "tags[1]"), "b");
    CU_ASSERT_EQUAL(evb_options_count(&o, "tls"), 1);
    CU_ASSERT_STRING_EQUAL(evb_options_key(&o, "tls", 0), "ca");
    CU_ASSERT_PTR_NULL(evb_options_key(&o, "tls", 1));
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "tls.ca"), "/etc/ca.pem");
    CU_ASSERT_EQUAL(evb_options_int(&o, "tls.verify"), 1); /* default */
    const evb_optval_t *v = evb_options_find(&o, "retries");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->type, EVBUS_OPT_INT);
    CU_ASSERT_EQUAL(v->line, 5);
    CU_ASSERT_STRING_EQUAL(v->path, "retries");
    evb_options_clear(&o);
    CU_ASSERT_EQUAL(o.n_vals, 0);
    CU_ASSERT_PTR_NULL(o.vals);

    /* integer forms of a duration and a size, a float as written */
    rc = s_resolve(s,
                   "options = { url = \"u\"; timeout = 250; max_body = 4096;"
                   " ratio = 0.125; retries = 5000000000L; };",
                   &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(evb_options_int(&o, "timeout"), 250);
    CU_ASSERT_EQUAL(evb_options_int(&o, "max_body"), 4096);
    CU_ASSERT_DOUBLE_EQUAL(evb_options_float(&o, "ratio"), 0.125, 1e-12);
    CU_ASSERT_EQUAL(evb_options_int(&o, "retries"), 5000000000LL);
    evb_options_clear(&o);
    evb_schema_destroy(&s);
}

static void test_resolve_reports_wrong_types_with_full_path(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = 5;\n"
                       "  retries = \"3\";\n"
                       "  verify = 1;\n"
                       "  timeout = \"soon\";\n"
                       "  max_body = -1;\n"
                       "  tags = \"a\";\n"
                       "  headers = { X-Count = 3; };\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(o.n_vals, 0);
    CU_ASSERT_PTR_NULL(o.vals);
    CU_ASSERT_EQUAL(s_count_lines("ERROR config: "), 7);
    CU_ASSERT_TRUE(s_logged("config: test.conf:2: instances[0].options.url: "
                            "expected a string, got 5"));
    CU_ASSERT_TRUE(s_logged("test.conf:3: instances[0].options.retries: "
                            "expected an integer, got \"3\""));
    CU_ASSERT_TRUE(s_logged("test.conf:4: instances[0].options.verify: "
                            "expected true or false, got 1"));
    CU_ASSERT_TRUE(s_logged("test.conf:5: instances[0].options.timeout: "
                            "expected a duration"));
    CU_ASSERT_TRUE(s_logged("got \"soon\""));
    CU_ASSERT_TRUE(s_logged("test.conf:6: instances[0].options.max_body: "
                            "expected a size"));
    CU_ASSERT_TRUE(s_logged("test.conf:7: instances[0].options.tags: "
                            "expected a list ( ... ) or array [ ... ], got "
                            "\"a\""));
    CU_ASSERT_TRUE(s_logged("test.conf:8: instances[0].options.headers."
                            "X-Count: expected a string, got 3"));
    evb_schema_destroy(&s);
}

static void test_env_variables_are_expanded_in_strings_and_maps(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(
        s,
        "options = {\n"
        "  url = \"https://${EVB_TEST_HOST}/h?a=${EVB_TEST_TOKEN}\";\n"
        "  secret = \"$${EVB_TEST_TOKEN} costs $$5 and $x\";\n"
        "  timeout = \"${EVB_TEST_TIMEOUT}\";\n"
        "  headers = { Authorization = \"Bearer ${EVB_TEST_TOKEN}\"; };\n"
        "};\n",
        &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "url"),
                           "https://hooks.example.com/h?a=tok-123");
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "secret"),
                           "${EVB_TEST_TOKEN} costs $5 and $x");
    CU_ASSERT_EQUAL(evb_options_int(&o, "timeout"), 2000);
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "headers.Authorization"),
                           "Bearer tok-123");
    evb_options_clear(&o);
    evb_schema_destroy(&s);
}

static void test_unset_variable_is_named_and_no_value_is_printed(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"https://x/\";\n"
                       "  secret = \"hunter2-${EVB_TEST_UNSET}-${EVB_TEST_"
                       "TOKEN}\";\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(s_count_lines("ERROR"), 1);
    CU_ASSERT_TRUE(s_logged("test.conf:3: instances[0].options.secret: "
                            "environment variable \"EVB_TEST_UNSET\" is not "
                            "set"));
    CU_ASSERT_PTR_NULL(strstr(s_log, "hunter2"));
    CU_ASSERT_PTR_NULL(strstr(s_log, "tok-123"));
    CU_ASSERT_PTR_NULL(strstr(s_log, "https://x/"));

    /* a duration from a variable whose value does not parse: the message
     * quotes the text in the file, not the value */
    rc = s_resolve(s,
                   "options = { url = \"u\"; timeout = \"${EVB_TEST_BADTIME}\";"
                   " };",
                   &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("got \"${EVB_TEST_BADTIME}\" (after expanding "
                            "environment variables)"));
    CU_ASSERT_PTR_NULL(strstr(s_log, "soon"));
    evb_schema_destroy(&s);
}

static void test_bad_variable_references_are_reported(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"x${EVB_TEST_TOKEN\";\n"
                       "  tls = { ca = \"${1BAD}\"; };\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("test.conf:2: instances[0].options.url: "
                            "unterminated \"${\""));
    CU_ASSERT_TRUE(s_logged("test.conf:3: instances[0].options.tls.ca: "
                            "\"${1BAD}\" does not name an environment "
                            "variable"));
    evb_schema_destroy(&s);
}

static void test_secret_values_are_redacted_in_the_dump(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(
        s,
        "options = {\n"
        "  url = \"https://example.com/hook\";\n"
        "  secret = \"s3cr3t-value\";\n"
        "  keys = [ \"old-key-1\", \"new-key-2\" ];\n"
        "  endpoints = ( { url = \"https://a/\"; secret = \"ep-s3cr3t\"; } );\n"
        "};\n",
        &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    char *dump = evb_options_dump(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    CU_ASSERT_PTR_NULL(strstr(dump, "s3cr3t"));
    CU_ASSERT_PTR_NULL(strstr(dump, "old-key-1"));
    CU_ASSERT_PTR_NULL(strstr(dump, "new-key-2"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "secret = <secret>\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "keys[0] = <secret>\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "keys[1] = <secret>\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dump, "endpoints[0].secret = <secret>\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(dump, "url = \"https://example.com/hook\"\n"));
    /* the getters still serve the value to the plugin */
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "keys[1]"), "new-key-2");
    CU_ASSERT_EQUAL(evb_options_find(&o, "keys[0]")->flags & EVBUS_OPT_SECRET,
                    EVBUS_OPT_SECRET);
    free(dump);
    evb_options_clear(&o);

    /* a secret of the wrong type is described without its value */
    rc = s_resolve(s, "options = { url = \"u\"; secret = 987654; };", &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("instances[0].options.secret: expected a string, "
                            "got an integer"));
    CU_ASSERT_PTR_NULL(strstr(s_log, "987654"));
    evb_schema_destroy(&s);
}

static void test_dump_lists_values_then_defaults(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"https://e/\";\n"
                       "  max_body = 1000;\n"
                       "  tags = [ \"x\" ];\n"
                       "  headers = { X-A = \"1\"; };\n"
                       "  endpoints = ( { url = \"https://a/\"; } );\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    char *dump = evb_options_dump(&o);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    const char *want = "url = \"https://e/\"\n"
                       "max_body = 1000\n"
                       "tags = (1 element)\n"
                       "tags[0] = \"x\"\n"
                       "headers = {1 member}\n"
                       "headers.X-A = \"1\"\n"
                       "endpoints = (1 element)\n"
                       "endpoints[0] = {1 member}\n"
                       "endpoints[0].url = \"https://a/\"\n"
                       "endpoints[0].timeout = \"5s\" (default)\n"
                       "timeout = \"10s\" (default)\n"
                       "retries = 3 (default)\n"
                       "verify = true (default)\n"
                       "ratio = 0.5 (default)\n";
    CU_ASSERT_STRING_EQUAL(dump, want);
    if (strcmp(dump, want) != 0)
        fprintf(stderr, "\n  dump was:\n%s\n", dump);
    free(dump);
    evb_options_clear(&o);
    evb_schema_destroy(&s);
}

static void test_list_elements_fall_back_to_the_element_default(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"u\";\n"
                       "  endpoints = (\n"
                       "    { url = \"https://a/\"; timeout = \"1s\"; },\n"
                       "    { url = \"https://b/\"; }\n"
                       "  );\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(evb_options_int(&o, "endpoints[0].timeout"), 1000);
    CU_ASSERT_EQUAL(evb_options_int(&o, "endpoints[1].timeout"), 5000);
    CU_ASSERT_EQUAL(evb_options_int(&o, "endpoints[3].timeout"), 5000);
    CU_ASSERT_TRUE(evb_options_has(&o, "endpoints[1].timeout"));
    const evb_optval_t *v = evb_options_find(&o, "endpoints[1].timeout");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->line, 0); /* a default */
    /* no default: unset */
    CU_ASSERT_FALSE(evb_options_has(&o, "endpoints[1].secret"));
    CU_ASSERT_PTR_NULL(evb_options_string(&o, "endpoints[1].secret"));
    CU_ASSERT_PTR_NULL(evb_options_find(&o, "endpoints[x].timeout"));
    evb_options_clear(&o);
    evb_schema_destroy(&s);
}

static void test_getters_without_value_or_default_return_zero(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s, "options = { url = \"u\"; };", &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(evb_options_int(&o, "nonexistent"), 0);
    CU_ASSERT_PTR_NULL(evb_options_string(&o, "secret"));
    CU_ASSERT_PTR_NULL(evb_options_string(&o, "tls.ca"));
    CU_ASSERT_EQUAL(evb_options_count(&o, "endpoints"), 0);
    CU_ASSERT_EQUAL(evb_options_count(&o, "headers"), 0);
    CU_ASSERT_PTR_NULL(evb_options_key(&o, "headers", 0));
    CU_ASSERT_DOUBLE_EQUAL(evb_options_float(&o, "nonexistent"), 0.0, 0.0);
    CU_ASSERT_FALSE(evb_options_has(&o, "secret"));
    /* defaults of every scalar type */
    CU_ASSERT_EQUAL(evb_options_int(&o, "timeout"), 10000);
    CU_ASSERT_EQUAL(evb_options_int(&o, "max_body"), 1048576);
    CU_ASSERT_EQUAL(evb_options_int(&o, "retries"), 3);
    CU_ASSERT_EQUAL(evb_options_int(&o, "verify"), 1);
    CU_ASSERT_DOUBLE_EQUAL(evb_options_float(&o, "ratio"), 0.5, 1e-12);
    /* the wrong getter for a type */
    CU_ASSERT_PTR_NULL(evb_options_string(&o, "retries"));
    CU_ASSERT_EQUAL(evb_options_int(&o, "url"), 0);
    evb_options_clear(&o);
    evb_schema_destroy(&s);
}

static void test_unknown_option_lists_the_known_ones(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"u\";\n"
                       "  timout = \"1s\";\n"
                       "  endpoints = (\n"
                       "    { url = \"a\"; },\n"
                       "    { url = \"b\";\n"
                       "      header = { A = \"1\"; }; }\n"
                       "  );\n"
                       "  tls = { verfy = false; };\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(s_count_lines("ERROR"), 3);
    CU_ASSERT_TRUE(s_logged(
        "test.conf:3: instances[0].options.timout: unknown option \"timout\" "
        "for plugin \"webhook\" (known: url, timeout, max_body, retries, "
        "verify, ratio, secret, headers, tags, tls, endpoints, keys)"));
    CU_ASSERT_TRUE(s_logged(
        "test.conf:7: instances[0].options.endpoints[1].header: unknown "
        "option \"header\" for plugin \"webhook\" (known: url, timeout, "
        "headers, secret)"));
    CU_ASSERT_TRUE(s_logged("test.conf:9: instances[0].options.tls.verfy: "
                            "unknown option \"verfy\" for plugin \"webhook\" "
                            "(known: verify, ca)"));

    /* a plugin that declares nothing */
    evb_schema_t *none = evb_schema_new("bare");
    rc = s_resolve(none, "options = { x = 1; };", &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("instances[0].options.x: unknown option \"x\" for "
                            "plugin \"bare\" (none are declared here)"));
    evb_schema_destroy(&none);
    evb_schema_destroy(&s);
}

static void test_required_option_missing_is_reported_at_the_block(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "\n\noptions = {\n"
                       "  timeout = \"1s\";\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(s_count_lines("ERROR"), 1);
    CU_ASSERT_TRUE(s_logged("config: test.conf:3: instances[0].options.url: "
                            "required option is not set (where to POST)"));

    /* without an options block: the instance's line, given by the caller */
    s_log_reset();
    rc = evb_options_resolve(s, NULL, "main.conf", "instances[4].options", 42,
                             &o);
    s_log_read();
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("config: main.conf:42: instances[4].options.url: "
                            "required option is not set"));

    /* a plugin without required options needs no block */
    evb_schema_t *opt = evb_schema_new("opt");
    CU_ASSERT_EQUAL(evb_schema_declare(opt, "a", EVBUS_OPT_INT, "1", 0, NULL),
                    0);
    rc = evb_options_resolve(opt, NULL, "main.conf", "instances[4].options", 42,
                             &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(o.line, 42);
    CU_ASSERT_EQUAL(evb_options_int(&o, "a"), 1);
    CU_ASSERT_EQUAL(evb_options_line(&o, "a"), 42);
    evb_options_clear(&o);
    evb_schema_destroy(&opt);
    evb_schema_destroy(&s);
}

static void test_required_member_is_checked_in_every_list_element(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"u\";\n"
                       "  endpoints = (\n"
                       "    { url = \"a\"; },\n"
                       "    { timeout = \"1s\"; },\n"
                       "    { }\n"
                       "  );\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(s_count_lines("ERROR"), 2);
    CU_ASSERT_TRUE(s_logged("test.conf:5: instances[0].options.endpoints[1]."
                            "url: required option is not set"));
    CU_ASSERT_TRUE(s_logged("test.conf:6: instances[0].options.endpoints[2]."
                            "url: required option is not set"));
    evb_schema_destroy(&s);
}

static void test_list_of_groups_resolves_with_indexes_and_map_keys(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = {\n"
                       "  url = \"u\";\n"
                       "  endpoints = (\n"
                       "    { url = \"https://a/\"; },\n"
                       "    { url = \"https://b/\";\n"
                       "      headers = {\n"
                       "        X-Api-Key = \"k\";\n"
                       "        Content-Language = \"en\";\n"
                       "      };\n"
                       "    }\n"
                       "  );\n"
                       "};\n",
                       &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(evb_options_count(&o, "endpoints"), 2);
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "endpoints[0].url"),
                           "https://a/");
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "endpoints[1].url"),
                           "https://b/");
    CU_ASSERT_EQUAL(evb_options_count(&o, "endpoints[0].headers"), 0);
    CU_ASSERT_EQUAL(evb_options_count(&o, "endpoints[1].headers"), 2);
    CU_ASSERT_STRING_EQUAL(evb_options_key(&o, "endpoints[1].headers", 0),
                           "X-Api-Key");
    CU_ASSERT_STRING_EQUAL(evb_options_key(&o, "endpoints[1].headers", 1),
                           "Content-Language");
    CU_ASSERT_PTR_NULL(evb_options_key(&o, "endpoints[1].headers", 2));
    CU_ASSERT_PTR_NULL(evb_options_key(&o, "endpoints[1].headers", -1));
    CU_ASSERT_STRING_EQUAL(
        evb_options_string(&o, "endpoints[1].headers.Content-Language"), "en");
    CU_ASSERT_EQUAL(evb_options_count(&o, "endpoints[1]"), 2);
    CU_ASSERT_STRING_EQUAL(evb_options_key(&o, "endpoints[1]", 1), "headers");
    const evb_optval_t *v = evb_options_find(&o, "endpoints[1].headers");
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    CU_ASSERT_EQUAL(v->type, EVBUS_OPT_MAP);
    CU_ASSERT_EQUAL(v->line, 6);
    /* lines: own, else the nearest set parent, else the block */
    CU_ASSERT_EQUAL(evb_options_line(&o, "endpoints[1].headers.X-Api-Key"), 7);
    CU_ASSERT_EQUAL(evb_options_line(&o, "endpoints[1].timeout"), 5);
    CU_ASSERT_EQUAL(evb_options_line(&o, "tls.ca"), 1);
    evb_options_clear(&o);
    evb_schema_destroy(&s);
}

static void test_list_without_declared_element_holds_strings(void)
{
    evb_schema_t *s = evb_schema_new("t");
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "names", EVBUS_OPT_LIST, NULL, 0, NULL), 0);
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "ports", EVBUS_OPT_LIST, NULL, 0, NULL), 0);
    CU_ASSERT_EQUAL(
        evb_schema_declare(s, "ports[]", EVBUS_OPT_INT, "80", 0, NULL), 0);
    evb_options_t o;
    int rc = s_resolve(s,
                       "options = { names = [\"a\", \"b\"]; ports = [1, 2, 3]; "
                       "};",
                       &o);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_STRING_EQUAL(evb_options_string(&o, "names[1]"), "b");
    CU_ASSERT_EQUAL(evb_options_count(&o, "ports"), 3);
    CU_ASSERT_EQUAL(evb_options_int(&o, "ports[2]"), 3);
    CU_ASSERT_EQUAL(evb_options_int(&o, "ports[7]"), 80);
    evb_options_clear(&o);

    rc = s_resolve(s, "options = {\n names = [1];\n ports = (\"x\");\n};", &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("test.conf:2: instances[0].options.names[0]: "
                            "expected a string, got 1"));
    CU_ASSERT_TRUE(s_logged("test.conf:3: instances[0].options.ports[0]: "
                            "expected an integer, got \"x\""));
    evb_schema_destroy(&s);
}

static void test_options_that_are_not_a_group_are_refused(void)
{
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int rc = s_resolve(s, "options = 5;", &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("test.conf:1: instances[0].options: expected a "
                            "group { ... }, got 5"));
    rc = s_resolve(s,
                   "options = { url = \"u\";\n tls = [ 1 ];\n"
                   " endpoints = ( 7 ); };",
                   &o);
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_TRUE(s_logged("test.conf:2: instances[0].options.tls: expected "
                            "a group { ... }, got an array [ ... ]"));
    CU_ASSERT_TRUE(s_logged("test.conf:3: instances[0].options.endpoints[0]: "
                            "expected a group { ... }, got 7"));
    evb_schema_destroy(&s);
}

/* The whole path: a config file loaded by config.c, then its instance's
 * options resolved: messages name the file, line and full setting. */
static void test_nested_error_in_a_loaded_file_names_the_full_path(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/evbus.conf", s_dir);
    FILE *fp = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
    fputs("instances = (\n"
          "  { name = \"hook\"; plugin = \"webhook\";\n"
          "    options = {\n"
          "      url = \"https://x/\";\n"
          "      endpoints = (\n"
          "        { url = \"https://a/\"; },\n"
          "        { url = 5; }\n"
          "      );\n"
          "    };\n"
          "  }\n"
          ");\n",
          fp);
    fclose(fp);
    int errors = -1;
    evb_config_t *cfg = evb_config_load(path, &errors);
    CU_ASSERT_EQUAL(errors, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const evb_instance_conf_t *ic = &cfg->instances[0];
    char setting[64];
    snprintf(setting, sizeof setting, "%s.options", ic->setting);
    evb_schema_t *s = s_webhook();
    evb_options_t o;
    int before = evb_config_error_count();
    s_log_reset();
    int rc =
        evb_options_resolve(s, ic->options, ic->file, setting, ic->line, &o);
    s_log_read();
    CU_ASSERT_EQUAL(rc, -1);
    CU_ASSERT_EQUAL(evb_config_error_count() - before, 1);
    CU_ASSERT_TRUE(s_logged("ERROR config: %s:7: instances[0].options."
                            "endpoints[1].url: expected a string, got 5",
                            path));
    evb_schema_destroy(&s);
    evb_config_destroy(&cfg);
}

static void test_clear_is_harmless_on_an_empty_result(void)
{
    evb_options_t o;
    memset(&o, 0xff, sizeof o);
    evb_schema_t *s = s_webhook();
    int rc = s_resolve(s, "options = { };", &o);
    CU_ASSERT_EQUAL(rc, -1); /* url is required */
    CU_ASSERT_EQUAL(o.n_vals, 0);
    CU_ASSERT_PTR_NULL(o.vals);
    evb_options_clear(&o);
    evb_options_clear(&o);
    evb_options_clear(NULL);
    char *dump = evb_options_dump(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dump);
    CU_ASSERT_STRING_EQUAL(dump, "");
    free(dump);
    evb_schema_destroy(&s);
}

static CU_TestInfo s_tests[] = {
    {"test_declare_accepts_well_formed_declarations",
     test_declare_accepts_well_formed_declarations},
    {"test_declare_refuses_bad_names", test_declare_refuses_bad_names},
    {"test_declare_refuses_undeclared_or_wrong_parent",
     test_declare_refuses_undeclared_or_wrong_parent},
    {"test_declare_refuses_defaults_that_do_not_parse",
     test_declare_refuses_defaults_that_do_not_parse},
    {"test_declare_refuses_required_with_default_and_duplicates",
     test_declare_refuses_required_with_default_and_duplicates},
    {"test_resolve_converts_every_type", test_resolve_converts_every_type},
    {"test_resolve_reports_wrong_types_with_full_path",
     test_resolve_reports_wrong_types_with_full_path},
    {"test_env_variables_are_expanded_in_strings_and_maps",
     test_env_variables_are_expanded_in_strings_and_maps},
    {"test_unset_variable_is_named_and_no_value_is_printed",
     test_unset_variable_is_named_and_no_value_is_printed},
    {"test_bad_variable_references_are_reported",
     test_bad_variable_references_are_reported},
    {"test_secret_values_are_redacted_in_the_dump",
     test_secret_values_are_redacted_in_the_dump},
    {"test_dump_lists_values_then_defaults",
     test_dump_lists_values_then_defaults},
    {"test_list_elements_fall_back_to_the_element_default",
     test_list_elements_fall_back_to_the_element_default},
    {"test_getters_without_value_or_default_return_zero",
     test_getters_without_value_or_default_return_zero},
    {"test_unknown_option_lists_the_known_ones",
     test_unknown_option_lists_the_known_ones},
    {"test_required_option_missing_is_reported_at_the_block",
     test_required_option_missing_is_reported_at_the_block},
    {"test_required_member_is_checked_in_every_list_element",
     test_required_member_is_checked_in_every_list_element},
    {"test_list_of_groups_resolves_with_indexes_and_map_keys",
     test_list_of_groups_resolves_with_indexes_and_map_keys},
    {"test_list_without_declared_element_holds_strings",
     test_list_without_declared_element_holds_strings},
    {"test_options_that_are_not_a_group_are_refused",
     test_options_that_are_not_a_group_are_refused},
    {"test_nested_error_in_a_loaded_file_names_the_full_path",
     test_nested_error_in_a_loaded_file_names_the_full_path},
    {"test_clear_is_harmless_on_an_empty_result",
     test_clear_is_harmless_on_an_empty_result},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo s_suites[] = {
    {"schema", s_suite_init, s_suite_clean, NULL, NULL, s_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
    return evb_test_main("test_schema", s_suites);
}
