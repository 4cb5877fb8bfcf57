/* A plugin that declines every host (e.g. it needs a feature this broker
 * lacks): the loader must say so. */
#include <evbus/plugin.h>

const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    (void)host_abi;
    return 0;
}
