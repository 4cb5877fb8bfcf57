#include "loader.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hostapi.h"
#include "log.h"
#include "watch.h"

/* The size of the 1.0 descriptor: everything up to and including
 * shutdown. A plugin's struct_size below this is refused. */
#define DESC_1_0_SIZE                                                          \
    (offsetof(evbus_plugin_t, shutdown) + sizeof(void (*)(void *)))

const char *evb_loader_search_path(const char *dir)
{
    if (dir && *dir)
        return dir;
    const char *env = getenv("EVBUS_PLUGIN_PATH");
    if (env && *env)
        return env;
    return EVBUS_PLUGIN_DIR;
}

/* Find NAME.so along a ':'-separated path; the result is malloc'd. */
static char *s_find(const char *name, const char *search_path)
{
    const char *p = search_path;
    while (p && *p) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        if (n) {
            char *cand = NULL;
            if (asprintf(&cand, "%.*s/%s.so", (int)n, p, name) < 0)
                return NULL;
            if (access(cand, F_OK) == 0)
                return cand;
            free(cand);
        }
        p = colon ? colon + 1 : NULL;
    }
    return NULL;
}

static int s_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 64)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return 0;
    return 1;
}

evb_plugin_t *evb_plugin_load(const char *ref, const char *search_path,
                              uint32_t host_abi, char *err, size_t errsz)
{
    evb_plugin_t *pl = calloc(1, sizeof *pl);
    if (!pl) {
        snprintf(err, errsz, "out of memory");
        return NULL;
    }
    pl->ref = strdup(ref);
    if (strchr(ref, '/')) {
        pl->path = strdup(ref);
        if (access(ref, F_OK) != 0) {
            snprintf(err, errsz, "plugin file %s does not exist", ref);
            goto fail;
        }
    } else {
        pl->path = s_find(ref, search_path);
        if (!pl->path) {
            snprintf(err, errsz,
                     "plugin \"%s\" not found: no %s.so in %s (set plugin_dir "
                     "or EVBUS_PLUGIN_PATH)",
                     ref, ref, search_path);
            goto fail;
        }
    }

    /* RTLD_NODELETE: a plugin's own threads (curl's resolver, say) may
     * outlive its shutdown(); the code must stay mapped. */
    pl->handle = dlopen(pl->path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!pl->handle) {
        snprintf(err, errsz, "cannot load plugin %s: %s", pl->path, dlerror());
        goto fail;
    }
    evbus_plugin_entry_fn entry;
    *(void **)&entry = dlsym(pl->handle, EVBUS_PLUGIN_ENTRY_SYMBOL);
    if (!entry) {
        snprintf(err, errsz,
                 "%s is not an evbus plugin: it does not export %s()", pl->path,
                 EVBUS_PLUGIN_ENTRY_SYMBOL);
        goto fail;
    }
    const evbus_plugin_t *d = entry(host_abi);
    unsigned hmaj = EVBUS_ABI_MAJOR_OF(host_abi);
    unsigned hmin = EVBUS_ABI_MINOR_OF(host_abi);
    if (!d) {
        snprintf(err, errsz,
                 "plugin %s declined this broker: it does not support plugin "
                 "ABI %u.%u",
                 pl->path, hmaj, hmin);
        goto fail;
    }
    /* struct_size and abi_version are first in every version; read them
     * before trusting anything else. */
    unsigned pmaj = EVBUS_ABI_MAJOR_OF(d->abi_version);
    unsigned pmin = EVBUS_ABI_MINOR_OF(d->abi_version);
    if (pmaj != hmaj) {
        snprintf(err, errsz,
                 "plugin %s was built for plugin ABI %u.%u, but this evbusd "
                 "speaks ABI %u.%u: rebuild the plugin against evbus headers "
                 "of ABI %u.x",
                 pl->path, pmaj, pmin, hmaj, hmin, hmaj);
        goto fail;
    }
    if (pmin > hmin) {
        snprintf(err, errsz,
                 "plugin %s needs plugin ABI %u.%u, but this evbusd provides "
                 "only %u.%u: upgrade evbusd",
                 pl->path, pmaj, pmin, hmaj, hmin);
        goto fail;
    }
    if (d->struct_size < DESC_1_0_SIZE) {
        snprintf(err, errsz,
                 "plugin %s has a descriptor of %u bytes, smaller than the "
                 "%zu bytes of ABI %u.0",
                 pl->path, d->struct_size, (size_t)DESC_1_0_SIZE, hmaj);
        goto fail;
    }
    size_t n =
        d->struct_size < sizeof pl->desc ? d->struct_size : sizeof pl->desc;
    memcpy(&pl->desc, d, n);
    if (!s_name_ok(pl->desc.name)) {
        snprintf(err, errsz, "plugin %s has no valid name (1-64 of [a-z0-9_-])",
                 pl->path);
        goto fail;
    }
    if (!pl->desc.declare || !pl->desc.init || !pl->desc.deliver) {
        snprintf(err, errsz,
                 "plugin %s (%s) lacks a required function: declare, init "
                 "and deliver must all be set",
                 pl->path, pl->desc.name);
        goto fail;
    }
    pl->schema = evb_schema_new(pl->desc.name);
    if (!pl->schema || pl->desc.declare(pl->schema, evb_host_table()) != 0) {
        snprintf(err, errsz,
                 "plugin %s (%s) failed to declare its options (see the "
                 "errors above)",
                 pl->path, pl->desc.name);
        goto fail;
    }
    /* a crash on a thread of its own is put down to it by address */
    evb_watch_plugin_code((const void *)(uintptr_t)entry, pl->desc.name);
    evb_debug("loaded plugin %s %s from %s (ABI %u.%u)", pl->desc.name,
              pl->desc.version ? pl->desc.version : "", pl->path, pmaj, pmin);
    return pl;
fail:
    evb_plugin_unload(&pl);
    return NULL;
}

void evb_plugin_unload(evb_plugin_t **self)
{
    if (!self || !*self)
        return;
    evb_plugin_t *pl = *self;
    evb_schema_destroy(&pl->schema);
    if (pl->handle)
        dlclose(pl->handle);
    free(pl->ref);
    free(pl->path);
    free(pl);
    *self = NULL;
}
