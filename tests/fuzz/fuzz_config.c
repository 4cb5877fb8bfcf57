/* The config loader, with a plugin option schema like the webhook's for
 * every instance's `options`. Properties: never crashes; a config that
 * loads without errors has every instance named; a refused one says so
 * (an error count). */
#include <stdio.h>
#include <string.h>

#include <evbus/plugin.h>

#include "config.h"
#include "fuzz.h"
#include "schema.h"

static evb_schema_t *s_schema(void)
{
    static evb_schema_t *s;
    if (s)
        return s;
    s = evb_schema_new("fuzz");
    FUZZ_ASSERT(s);
    static const struct {
        const char *name;
        int type;
        const char *def;
        unsigned flags;
    } opts[] = {
        {"url", EVBUS_OPT_STRING, NULL, EVBUS_OPT_REQUIRED},
        {"secret", EVBUS_OPT_STRING, "", EVBUS_OPT_SECRET},
        {"timeout", EVBUS_OPT_DURATION, "10s", 0},
        {"max_body", EVBUS_OPT_SIZE, "1M", 0},
        {"ratio", EVBUS_OPT_FLOAT, "0.5", 0},
        {"on", EVBUS_OPT_BOOL, "true", 0},
        {"count", EVBUS_OPT_INT, "3", 0},
        {"headers", EVBUS_OPT_MAP, NULL, 0},
        {"tags", EVBUS_OPT_LIST, NULL, 0},
        {"tags[]", EVBUS_OPT_STRING, NULL, 0},
        {"endpoints", EVBUS_OPT_LIST, NULL, 0},
        {"endpoints[]", EVBUS_OPT_GROUP, NULL, 0},
        {"endpoints[].url", EVBUS_OPT_STRING, NULL, EVBUS_OPT_REQUIRED},
        {"endpoints[].weight", EVBUS_OPT_INT, "1", 0},
        {"tls", EVBUS_OPT_GROUP, NULL, 0},
        {"tls.verify", EVBUS_OPT_BOOL, "true", 0},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        FUZZ_ASSERT(evb_schema_declare(s, opts[i].name, opts[i].type,
                                       opts[i].def, opts[i].flags, "") == 0);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[256];
    snprintf(path, sizeof path, "%s/evbus.conf", fuzz_setup());
    FILE *f = fopen(path, "wb");
    FUZZ_ASSERT(f);
    fwrite(data, 1, size, f);
    fclose(f);
    int errors = -1;
    evb_config_t *cfg = evb_config_load_all(path, &errors);
    FUZZ_ASSERT(errors >= 0);
    FUZZ_ASSERT(cfg || errors > 0);
    for (size_t i = 0; cfg && i < cfg->n_instances; i++) {
        const evb_instance_conf_t *ic = &cfg->instances[i];
        FUZZ_ASSERT(errors || ic->name);
        evb_options_t opts;
        memset(&opts, 0, sizeof opts);
        if (evb_options_resolve(s_schema(), ic->options, path,
                                ic->setting ? ic->setting : "instances[?]",
                                ic->line, &opts) == 0) {
            FUZZ_ASSERT(evb_options_string(&opts, "url"));
            (void)evb_options_int(&opts, "timeout");
            (void)evb_options_count(&opts, "endpoints");
        }
        evb_options_clear(&opts);
    }
    evb_config_destroy(&cfg);
    return 0;
}
