/* Plugin option schemas: what a plugin declares in declare(), how an
 * instance's `options` block is checked against it, and the typed values
 * the host serves back through the config_* entries of the host table. */
#ifndef EVB_SCHEMA_H
#define EVB_SCHEMA_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include <evbus/plugin.h>

typedef struct evbus_schema evb_schema_t;

/* One resolved option value of an instance. */
typedef struct evb_optval {
    char *path;  /* "endpoints[1].url" */
    int type;    /* EVBUS_OPT_* */
    unsigned flags;
    int line;    /* line in the config file, 0 for a default */
    char *str;   /* STRING: value after ${VAR} expansion */
    int64_t i;   /* INT, BOOL, DURATION (ms), SIZE (bytes) */
    double f;    /* FLOAT */
    int count;   /* LIST elements, GROUP/MAP members */
    char **keys; /* GROUP/MAP member names, `count` of them */
} evb_optval_t;

/* The resolved options of one instance. */
typedef struct evb_options {
    const evb_schema_t *schema;
    const char *file;    /* config file */
    const char *setting; /* "instances[0].options" */
    int line;            /* line of the options group (or the instance) */
    evb_optval_t *vals;
    size_t n_vals;
} evb_options_t;

evb_schema_t *evb_schema_new(const char *plugin_name);
void evb_schema_destroy(evb_schema_t **self);

/* Implements host->declare_option(): checks the declaration (name syntax,
 * parent declared first, default parses as the type) and records it. */
int evb_schema_declare(evb_schema_t *schema, const char *name, int type,
                       const char *default_value, unsigned flags,
                       const char *description);

/* Number of declared options, and each one (for --help-plugin / docs). */
size_t evb_schema_count(const evb_schema_t *schema);
int evb_schema_get(const evb_schema_t *schema, size_t i, const char **name,
                   int *type, const char **default_value, unsigned *flags,
                   const char **description);

/* Check `options` (a libconfig group, or NULL when the instance has none)
 * against the schema and resolve every value. Each problem is reported
 * with evb_config_report() naming the file, line and full setting path
 * ("instances[0].options.endpoints[1].url"): unknown keys (with the known
 * ones listed), wrong types, bad durations/sizes, missing required
 * options, ${VAR} naming an unset environment variable. Returns 0 with
 * *out filled, or -1. `file`/`setting`/`line` describe where the block is
 * (used for missing-option messages). */
int evb_options_resolve(const evb_schema_t *schema,
                        const config_setting_t *options, const char *file,
                        const char *setting, int line, evb_options_t *out);
void evb_options_clear(evb_options_t *opts);

/* Typed getters behind host->config_*. `path` may carry list indexes;
 * values not set in the file fall back to the declared default. find()
 * returns NULL when the path is neither set nor has a default. */
const evb_optval_t *evb_options_find(const evb_options_t *opts,
                                     const char *path);
int evb_options_has(const evb_options_t *opts, const char *path);
const char *evb_options_string(const evb_options_t *opts, const char *path);
int64_t evb_options_int(const evb_options_t *opts, const char *path);
double evb_options_float(const evb_options_t *opts, const char *path);
int evb_options_count(const evb_options_t *opts, const char *path);
const char *evb_options_key(const evb_options_t *opts, const char *path,
                            int index);
/* The line to blame for `path`: its own, else the nearest set parent's,
 * else the options block's. */
int evb_options_line(const evb_options_t *opts, const char *path);

/* Write "name = value" lines for every resolved option into a malloc'd
 * string, SECRET values shown as "<secret>" (for --check-config). */
char *evb_options_dump(const evb_options_t *opts);

#endif
