/* A careless third party's plugin, built by the integration tests outside
 * the build system, against the public header only. Each option names an
 * event id and a way to misbehave on it:
 *   crash_on    deliver() dereferences NULL (SIGSEGV)
 *   abort_on    deliver() calls abort() (SIGABRT)
 *   overflow_on deliver() recurses until the stack runs out
 *   block_on    deliver() never returns
 *   garbage_on  deliver() returns a value that is no outcome
 * after `delay` (so that its acknowledgement is out first);
 * block_in_shutdown makes shutdown() never return, and crash_thread makes
 * a thread of its own dereference NULL `delay` after init(). Every other event
 * is appended as one JSON line to `out`. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <evbus/plugin.h>

typedef struct {
    const evbus_host_t *host;
    FILE *out;
    const char *crash_on, *abort_on, *block_on, *garbage_on, *overflow_on;
    int block_in_shutdown;
    int64_t delay_ms;
} state_t;

static int s_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    static const char *const ids[] = {"crash_on", "abort_on", "block_on",
                                      "garbage_on", "overflow_on"};
    if (host->declare_option(schema, "out", EVBUS_OPT_STRING, NULL,
                             EVBUS_OPT_REQUIRED, "JSON lines go here") < 0)
        return -1;
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (host->declare_option(schema, ids[i], EVBUS_OPT_STRING, "", 0,
                                 "an event id to misbehave on") < 0)
            return -1;
    if (host->declare_option(schema, "delay", EVBUS_OPT_DURATION, "0", 0,
                             "wait this long before misbehaving") < 0 ||
        host->declare_option(schema, "crash_thread", EVBUS_OPT_BOOL, "false", 0,
                             "a thread of its own crashes") < 0)
        return -1;
    return host->declare_option(schema, "block_in_shutdown", EVBUS_OPT_BOOL,
                                "false", 0, "shutdown() never returns");
}

static void *s_crasher(void *arg)
{
    state_t *st = arg;
    usleep((useconds_t)(st->delay_ms * 1000));
    volatile int *nowhere = NULL;
    *nowhere = 1;
    return NULL;
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    state_t *st = calloc(1, sizeof *st);
    if (!st)
        return -1;
    st->host = host;
    st->crash_on = host->config_string(inst, "crash_on");
    st->abort_on = host->config_string(inst, "abort_on");
    st->block_on = host->config_string(inst, "block_on");
    st->garbage_on = host->config_string(inst, "garbage_on");
    st->overflow_on = host->config_string(inst, "overflow_on");
    st->block_in_shutdown = (int)host->config_int(inst, "block_in_shutdown");
    st->delay_ms = host->config_int(inst, "delay");
    st->out = fopen(host->config_string(inst, "out"), "a");
    if (!st->out) {
        free(st);
        return -1;
    }
    *userdata = st;
    pthread_t t;
    if (host->config_int(inst, "crash_thread") &&
        pthread_create(&t, NULL, s_crasher, st) == 0)
        pthread_detach(t);
    return 0;
}

/* Deeper and deeper, until the stack's guard page (a depth no stack
 * reaches stands for "forever", which the compiler would refuse). */
static int s_recurse(volatile char *above, long n)
{
    volatile char frame[1024];
    frame[0] = (char)n;
    frame[1023] = above ? above[0] : 0;
    if (n > 100000000L)
        return frame[0];
    return s_recurse(frame, n + 1) + frame[0];
}

static int s_is(const char *want, const char *id)
{
    return want && *want && strcmp(want, id) == 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *attempt)
{
    state_t *st = userdata;
    const char *id = st->host->event_attr(ev, "id");
    if (st->delay_ms && (s_is(st->crash_on, id) || s_is(st->abort_on, id) ||
                         s_is(st->overflow_on, id)))
        usleep((useconds_t)(st->delay_ms * 1000));
    if (s_is(st->crash_on, id)) {
        volatile int *nowhere = NULL;
        return *nowhere;
    }
    if (s_is(st->abort_on, id))
        abort();
    if (s_is(st->overflow_on, id))
        return s_recurse(NULL, 0);
    if (s_is(st->block_on, id))
        for (;;)
            pause();
    if (s_is(st->garbage_on, id))
        return 12345;
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
    if (st->block_in_shutdown)
        for (;;)
            pause();
    fclose(st->out);
    free(st);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0,
    .name = "misbehave",
    .version = "1",
    .description = "a plugin that crashes, blocks or answers garbage (tests)",
    .declare = s_declare,
    .init = s_init,
    .deliver = s_deliver,
    .shutdown = s_shutdown,
};

EVBUS_EXPORT const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    return EVBUS_ABI_MAJOR_OF(host_abi) == 1 ? &s_plugin : NULL;
}
