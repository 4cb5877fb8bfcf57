/* A destination that can be switched off, for the durability tests: while
 * the file named by `gate` exists every delivery fails (RETRY, "gate
 * closed"); otherwise the event's JSON is appended as one line to `out`
 * (written and flushed before OK). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evbus/plugin.h>

typedef struct {
    const evbus_host_t *host;
    FILE *out;
    const char *gate;
} state_t;

static int s_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    if (host->declare_option(schema, "out", EVBUS_OPT_STRING, NULL,
                             EVBUS_OPT_REQUIRED, "JSON lines go here") < 0)
        return -1;
    return host->declare_option(schema, "gate", EVBUS_OPT_STRING, NULL,
                                EVBUS_OPT_REQUIRED,
                                "deliveries fail while this file exists");
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    state_t *st = calloc(1, sizeof *st);
    if (!st)
        return -1;
    st->host = host;
    st->gate = host->config_string(inst, "gate");
    st->out = fopen(host->config_string(inst, "out"), "a");
    if (!st->out) {
        free(st);
        return -1;
    }
    *userdata = st;
    return 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *attempt)
{
    state_t *st = userdata;
    if (access(st->gate, F_OK) == 0) {
        st->host->attempt_reason(attempt, "gate closed");
        return EVBUS_RETRY;
    }
    size_t n;
    const char *json = st->host->event_json(ev, &n);
    if (fwrite(json, 1, n, st->out) != n || fputc('\n', st->out) == EOF ||
        fflush(st->out) != 0) {
        st->host->attempt_reason(attempt, "write failed");
        return EVBUS_RETRY;
    }
    return EVBUS_OK;
}

static void s_shutdown(void *userdata)
{
    state_t *st = userdata;
    fclose(st->out);
    free(st);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0,
    .name = "gate",
    .version = "test",
    .description = "a destination that can be switched off (tests)",
    .declare = s_declare,
    .init = s_init,
    .deliver = s_deliver,
    .shutdown = s_shutdown,
};

const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    return EVBUS_ABI_MAJOR_OF(host_abi) == 1 ? &s_plugin : NULL;
}
