/* A well-formed ABI 1.0 test plugin: declares options, counts deliveries,
 * and answers deliver() with the outcome its `answer` option names. */
#include <stdlib.h>
#include <string.h>

#include <evbus/plugin.h>

typedef struct {
    const evbus_host_t *host;
    evbus_instance_t *inst;
    int answer;
} state_t;

static int s_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    if (host->declare_option(schema, "answer", EVBUS_OPT_STRING, "ok", 0,
                             "ok | retry | drop") < 0)
        return -1;
    return host->declare_option(schema, "greeting", EVBUS_OPT_STRING, NULL,
                                0, "free text");
}

static int s_validate(evbus_instance_t *inst, const evbus_host_t *host)
{
    const char *a = host->config_string(inst, "answer");
    if (strcmp(a, "ok") && strcmp(a, "retry") && strcmp(a, "drop"))
        return host->config_error(inst, "answer",
                                  "must be ok, retry or drop, not \"%s\"", a);
    return 0;
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    state_t *st = calloc(1, sizeof *st);
    if (!st)
        return -1;
    st->host = host;
    st->inst = inst;
    const char *a = host->config_string(inst, "answer");
    st->answer = !strcmp(a, "retry") ? EVBUS_RETRY
                 : !strcmp(a, "drop") ? EVBUS_DROP
                                      : EVBUS_OK;
    *userdata = st;
    return 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *attempt)
{
    state_t *st = userdata;
    (void)ev;
    if (st->answer != EVBUS_OK)
        st->host->attempt_reason(attempt, "told to answer %d", st->answer);
    return st->answer;
}

static void s_shutdown(void *userdata)
{
    free(userdata);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0,
    .name = "good",
    .version = "1.0.0",
    .description = "test plugin",
    .declare = s_declare,
    .validate = s_validate,
    .init = s_init,
    .deliver = s_deliver,
    .shutdown = s_shutdown,
};

const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    return EVBUS_ABI_MAJOR_OF(host_abi) == 1 ? &s_plugin : NULL;
}
