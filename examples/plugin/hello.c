/*
 * hello — an evbus plugin built out of tree, the way a third party builds
 * one: only <evbus/plugin.h> and `pkg-config evbus-plugin`.
 *
 * For every event it logs "hello, <type> <id>" and, when `out` is set,
 * appends "<type> <id>" to that file. `greeting` changes the word.
 *
 *   instances = ( { name = "hi"; plugin = "hello"; topics = [ "task.*" ];
 *                   options = { greeting = "hey"; out = "/tmp/hello.txt"; };
 *                 } );
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evbus/plugin.h>

typedef struct {
    const evbus_host_t *host;
    evbus_instance_t *inst;
    const char *greeting; /* borrowed from the host until shutdown */
    FILE *out;
} hello_t;

/* The options this plugin reads from its `options` block. The host checks
 * the block against them: unknown keys and wrong types are config errors
 * that name the file, line and setting. */
static int hello_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    if (host->declare_option(schema, "greeting", EVBUS_OPT_STRING, "hello", 0,
                             "the word each log line starts with") < 0)
        return -1;
    return host->declare_option(schema, "out", EVBUS_OPT_STRING, NULL, 0,
                                "append \"<type> <id>\" lines to this file");
}

/* Checks beyond types, without side effects (also run by --check-config). */
static int hello_validate(evbus_instance_t *inst, const evbus_host_t *host)
{
    const char *g = host->config_string(inst, "greeting");
    if (strlen(g) == 0 || strlen(g) > 32)
        return host->config_error(inst, "greeting",
                                  "must be 1 to 32 characters");
    return 0;
}

static int hello_init(evbus_instance_t *inst, const evbus_host_t *host,
                      void **userdata)
{
    hello_t *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->host = host;
    h->inst = inst;
    h->greeting = host->config_string(inst, "greeting");
    const char *out = host->config_string(inst, "out");
    if (out && !(h->out = fopen(out, "a"))) {
        host->log(inst, EVBUS_LOG_ERROR, "cannot open %s: %s", out,
                  strerror(errno));
        free(h);
        return -1;
    }
    *userdata = h;
    return 0;
}

/* Runs on the instance's worker thread; never concurrently for one
 * instance, since the descriptor does not set EVBUS_PLUGIN_REENTRANT. */
static int hello_deliver(void *userdata, const evbus_event_t *ev,
                         evbus_attempt_t *attempt)
{
    hello_t *h = userdata;
    const char *type = h->host->event_attr(ev, "type");
    const char *id = h->host->event_attr(ev, "id");
    h->host->log(h->inst, EVBUS_LOG_INFO, "%s, %s %s", h->greeting, type, id);
    if (h->out) {
        if (fprintf(h->out, "%s %s\n", type, id) < 0 || fflush(h->out) != 0) {
            /* transient: the host retries under the instance's policy */
            h->host->attempt_reason(attempt, "write: %s", strerror(errno));
            return EVBUS_RETRY;
        }
    }
    return EVBUS_OK;
}

static void hello_shutdown(void *userdata)
{
    hello_t *h = userdata;
    if (h->out)
        fclose(h->out);
    free(h);
}

static const evbus_plugin_t hello_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0, /* the ABI whose entries we use */
    .name = "hello",
    .version = "1.0.0",
    .description = "logs a greeting for every event",
    .declare = hello_declare,
    .validate = hello_validate,
    .init = hello_init,
    .deliver = hello_deliver,
    .shutdown = hello_shutdown,
};

/* The one exported symbol. Decline a broker of another major ABI. */
const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    if (EVBUS_ABI_MAJOR_OF(host_abi) != 1)
        return NULL;
    return &hello_plugin;
}
