/* A plugin built against the frozen ABI 1.0 header (plugin-1.0.h), the way
 * a third party built it on release day. It must keep loading and working
 * in every 1.x broker: test_loader drives it through a real instance.
 * It appends "<type> <id> <attempt>\n" for each event to its `out` file,
 * and asks for one retry of every event whose subject is "retry-once". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin-1.0.h"

typedef struct {
    const evbus_host_t *host;
    evbus_instance_t *inst;
    FILE *out;
} state_t;

static int s_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    return host->declare_option(schema, "out", EVBUS_OPT_STRING, NULL,
                                EVBUS_OPT_REQUIRED, "file to append to");
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    state_t *st = calloc(1, sizeof *st);
    if (!st)
        return -1;
    st->host = host;
    st->inst = inst;
    st->out = fopen(host->config_string(inst, "out"), "a");
    if (!st->out) {
        host->log(inst, EVBUS_LOG_ERROR, "cannot open out");
        free(st);
        return -1;
    }
    host->log(inst, EVBUS_LOG_INFO, "frozen 1.0 plugin ready");
    *userdata = st;
    return 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *attempt)
{
    state_t *st = userdata;
    const evbus_host_t *h = st->host;
    const char *subject = h->event_attr(ev, "subject");
    int n = h->attempt_number(attempt);
    fprintf(st->out, "%s %s %d\n", h->event_attr(ev, "type"),
            h->event_attr(ev, "id"), n);
    fflush(st->out);
    if (subject && strcmp(subject, "retry-once") == 0 && n == 1) {
        h->attempt_reason(attempt, "asked to retry once");
        h->attempt_retry_after(attempt, 1);
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
    .name = "frozen",
    .version = "1.0.0",
    .description = "built against the ABI 1.0 header",
    .declare = s_declare,
    .init = s_init,
    .deliver = s_deliver,
    .shutdown = s_shutdown,
};

const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    return EVBUS_ABI_MAJOR_OF(host_abi) == 1 ? &s_plugin : NULL;
}
