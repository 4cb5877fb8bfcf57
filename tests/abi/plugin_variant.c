/* One minimal plugin, built four ways for the loader's refusal tests; each
 * .la defines one VARIANT_* (see Makefile.am):
 *   VARIANT_MAJOR2     claims ABI 2.0 (and answers any host): refused
 *   VARIANT_MINOR_NEW  claims a minor newer than the broker's: refused
 *   VARIANT_NODELIVER  has no deliver(): refused
 *   VARIANT_SMALL      says its descriptor is 16 bytes: refused */
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

#ifndef VARIANT_NODELIVER
static int s_deliver(void *u, const evbus_event_t *e, evbus_attempt_t *a)
{
    (void)u;
    (void)e;
    (void)a;
    return EVBUS_OK;
}
#endif

static const evbus_plugin_t s_plugin = {
#ifdef VARIANT_SMALL
    .struct_size = 16,
#else
    .struct_size = sizeof(evbus_plugin_t),
#endif
#if defined(VARIANT_MAJOR2)
    .abi_version = EVBUS_ABI_MAKE(2, 0),
#elif defined(VARIANT_MINOR_NEW)
    .abi_version = EVBUS_ABI_MAKE(1, EVBUS_ABI_MINOR + 1),
#else
    .abi_version = EVBUS_ABI_1_0,
#endif
    .name = "variant",
    .declare = s_declare,
    .init = s_init,
#ifndef VARIANT_NODELIVER
    .deliver = s_deliver,
#endif
};

const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    (void)host_abi; /* a careless plugin: answers whatever the host is */
    return &s_plugin;
}
