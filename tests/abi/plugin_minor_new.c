/* Claims a minor newer than the broker offers: refused, "upgrade evbusd". */
#include <evbus/plugin.h>

static int s_declare(evbus_schema_t *s, const evbus_host_t *h)
{
    (void)s;
    (void)h;
    return 0;
}
static int s_init(evbus_instance_t *i, const evbus_host_t *h, void **u)
{
    (void)i;
    (void)h;
    *u = 0;
    return 0;
}
static int s_deliver(void *u, const evbus_event_t *e, evbus_attempt_t *a)
{
    (void)u;
    (void)e;
    (void)a;
    return EVBUS_OK;
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_MAKE(1, EVBUS_ABI_MINOR + 1),
    .name = "minor_new",
    .declare = s_declare,
    .init = s_init,
    .deliver = s_deliver,
};

const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    (void)host_abi; /* a careless plugin: answers whatever the host is */
    return &s_plugin;
}
