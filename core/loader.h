/* The plugin loader: find a plugin's .so, dlopen it, call its one entry
 * symbol, check the descriptor it returns against the ABI this broker
 * speaks, and collect its option schema. Every refusal says why in words
 * an operator can act on. */
#ifndef EVB_LOADER_H
#define EVB_LOADER_H

#include <stddef.h>

#include <evbus/plugin.h>

#include "schema.h"

/* The ABI this broker speaks. */
#define EVB_HOST_ABI EVBUS_ABI_MAKE(EVBUS_ABI_MAJOR, EVBUS_ABI_MINOR)

typedef struct evb_plugin {
    char *ref;  /* as configured: "file" or a path */
    char *path; /* the file loaded */
    void *handle;
    evbus_plugin_t desc; /* copy; fields past the plugin's struct_size are 0 */
    evb_schema_t *schema;
} evb_plugin_t;

/* The directories searched for "NAME.so" when a plugin is named without a
 * '/': `dir` when not NULL, else $EVBUS_PLUGIN_PATH (':'-separated), else
 * the built-in EVBUS_PLUGIN_DIR. */
const char *evb_loader_search_path(const char *dir);

/* Load `ref` for the host ABI `host_abi` (EVB_HOST_ABI outside tests).
 * Returns the plugin, or NULL with the reason in err. */
evb_plugin_t *evb_plugin_load(const char *ref, const char *search_path,
                              uint32_t host_abi, char *err, size_t errsz);
void evb_plugin_unload(evb_plugin_t **self);

#endif
