/* The host table handed to plugins: the broker's side of the plugin ABI. */
#ifndef EVB_HOSTAPI_H
#define EVB_HOSTAPI_H

#include <evbus/plugin.h>

/* The one table, valid for the life of the process. */
const evbus_host_t *evb_host_table(void);

#endif
