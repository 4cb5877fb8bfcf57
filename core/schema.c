/* Plugin option schemas.
 *
 * A plugin declares its options as paths ("path", "endpoints",
 * "endpoints[]", "endpoints[].url"); an instance's `options` group is
 * walked against those declarations and every value is resolved once, at
 * load, into a flat table of rows keyed by the concrete path
 * ("endpoints[1].url"). The getters behind host->config_* look rows up by
 * path and fall back to the declared default of the path's pattern
 * ("endpoints[].url"). These run at plugin init, not on a hot path, so
 * everything here is a linear search and says so.
 *
 * Choices the headers leave open, made here:
 *  - names are segments [a-z][a-z0-9_]* (a libconfig setting name cannot
 *    start with a digit or '_', so such an option could never be set);
 *  - a LIST's element may be a scalar, a GROUP or a MAP, not a LIST; a
 *    LIST whose element was never declared holds STRINGs;
 *  - REQUIRED on "a.b" is checked only when the group "a" is present, and
 *    on "l[].b" in every element of l; REQUIRED on "l[]" is refused;
 *  - SECRET on a LIST, GROUP or MAP covers everything inside it;
 *  - ${VAR} is expanded in every string the file holds for a STRING, MAP,
 *    DURATION or SIZE option; declared defaults are taken literally;
 *  - error messages quote a value only as written in the file, never after
 *    expansion, and never for a SECRET option.
 */
#include "schema.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "config.h"
#include "log.h"

#define S_NAME_MAX 255

typedef struct s_decl {
    char *name;       /* "endpoints[].url" */
    const char *leaf; /* into name: "url", or "[]" for a list element */
    int parent;       /* index of the parent declaration, -1 at the top */
    int type;         /* EVBUS_OPT_* */
    unsigned flags;   /* as declared, plus SECRET inherited from parents */
    char *default_value;
    char *description;
    int has_default;
    evb_optval_t def; /* the parsed default, served by the getters */
} s_decl_t;

struct evbus_schema {
    char *plugin;
    s_decl_t **decls; /* pointers, so &decl->def stays put as we grow */
    size_t n;
};

/* ------------------------------------------------------------- helpers */

/* The buffer's contents as a malloc'd string, "" when nothing was added
 * (evb_buf_steal() alone leaves a never-appended buffer unterminated). */
static char *s_steal(evb_buf_t *b)
{
    if (evb_buf_append(b, "", 0) < 0) {
        evb_buf_free(b);
        return NULL;
    }
    return evb_buf_steal(b, NULL);
}

static char *s_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *s_fmt(const char *fmt, ...)
{
    evb_buf_t b = EVB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    int rc = evb_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (rc < 0) {
        evb_buf_free(&b);
        return NULL;
    }
    return s_steal(&b);
}

static const char *s_type_name(int type)
{
    switch (type) {
    case EVBUS_OPT_STRING:
        return "STRING";
    case EVBUS_OPT_INT:
        return "INT";
    case EVBUS_OPT_BOOL:
        return "BOOL";
    case EVBUS_OPT_FLOAT:
        return "FLOAT";
    case EVBUS_OPT_DURATION:
        return "DURATION";
    case EVBUS_OPT_SIZE:
        return "SIZE";
    case EVBUS_OPT_LIST:
        return "LIST";
    case EVBUS_OPT_GROUP:
        return "GROUP";
    case EVBUS_OPT_MAP:
        return "MAP";
    default:
        return "?";
    }
}

static int s_is_container(int type)
{
    return type == EVBUS_OPT_LIST || type == EVBUS_OPT_GROUP ||
           type == EVBUS_OPT_MAP;
}

/* A quoted, escaped copy of s (shortened to `max` bytes when max > 0). */
static void s_quote_into(evb_buf_t *b, const char *s, size_t max)
{
    size_t n = strlen(s), cut = max && n > max ? max : n;
    while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--; /* do not split a UTF-8 sequence */
    evb_buf_putc(b, '"');
    for (size_t i = 0; i < cut; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            evb_buf_printf(b, "\\%c", c);
        else if (c == '\n')
            evb_buf_puts(b, "\\n");
        else if (c == '\t')
            evb_buf_puts(b, "\\t");
        else if (c == '\r')
            evb_buf_puts(b, "\\r");
        else if (c < 0x20 || c == 0x7f)
            evb_buf_printf(b, "\\x%02x", c);
        else
            evb_buf_putc(b, (char)c);
    }
    evb_buf_puts(b, cut < n ? "...\"" : "\"");
}

/* What a setting holds, for "expected X, got Y"; a secret's value is
 * never shown, only its kind. Returns a malloc'd string. */
static char *s_describe(const config_setting_t *s, int secret)
{
    evb_buf_t b = EVB_BUF_INIT;
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        if (secret)
            evb_buf_puts(&b, "an integer");
        else
            evb_buf_printf(&b, "%d", config_setting_get_int(s));
        break;
    case CONFIG_TYPE_INT64:
        if (secret)
            evb_buf_puts(&b, "an integer");
        else
            evb_buf_printf(&b, "%lldL", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        if (secret)
            evb_buf_puts(&b, "a number");
        else
            evb_buf_printf(&b, "%g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        if (secret)
            evb_buf_puts(&b, "true or false");
        else
            evb_buf_puts(&b, config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_STRING:
        if (secret)
            evb_buf_puts(&b, "a string");
        else
            s_quote_into(&b, config_setting_get_string(s), 64);
        break;
    case CONFIG_TYPE_GROUP:
        evb_buf_puts(&b, "a group { ... }");
        break;
    case CONFIG_TYPE_LIST:
        evb_buf_puts(&b, "a list ( ... )");
        break;
    case CONFIG_TYPE_ARRAY:
        evb_buf_puts(&b, "an array [ ... ]");
        break;
    default:
        evb_buf_puts(&b, "nothing");
        break;
    }
    return s_steal(&b);
}

/* "10m", "1500ms": the shortest exact form. */
static void s_put_duration(evb_buf_t *b, int64_t ms)
{
    static const struct {
        const char *unit;
        int64_t factor;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms != 0 && ms % units[i].factor == 0) {
            evb_buf_printf(b, "\"%lld%s\"", (long long)(ms / units[i].factor),
                           units[i].unit);
            return;
        }
    evb_buf_printf(b, "\"%lldms\"", (long long)ms);
}

static void s_put_size(evb_buf_t *b, int64_t bytes)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        int64_t f = (int64_t)1 << (10 * (3 - i));
        if (bytes != 0 && bytes % f == 0) {
            evb_buf_printf(b, "\"%lld%c\"", (long long)(bytes / f), units[i]);
            return;
        }
    }
    evb_buf_printf(b, "%lld", (long long)bytes);
}

/* "endpoints[12].url" -> "endpoints[].url" (malloc'd), or NULL when the
 * brackets hold anything but digits. */
static char *s_pattern_of(const char *path)
{
    char *out = malloc(strlen(path) + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = path; *p;) {
        if (*p == '[') {
            const char *q = p + 1;
            while (isdigit((unsigned char)*q))
                q++;
            if (q == p + 1 || *q != ']') {
                free(out);
                return NULL;
            }
            *o++ = '[';
            *o++ = ']';
            p = q + 1;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Length of the parent part of a row path: "a.b" -> 1, "a[2]" -> 1,
 * "a" -> 0. */
static size_t s_parent_len(const char *path)
{
    size_t n = strlen(path);
    if (n && path[n - 1] == ']') {
        const char *open = strrchr(path, '[');
        return open ? (size_t)(open - path) : 0;
    }
    const char *dot = strrchr(path, '.');
    return dot ? (size_t)(dot - path) : 0;
}

static void s_val_free(evb_optval_t *v)
{
    free(v->path);
    free(v->str);
    for (int i = 0; i < v->count && v->keys; i++)
        free(v->keys[i]);
    free(v->keys);
    memset(v, 0, sizeof *v);
}

/* ---------------------------------------------------------------- schema */

evb_schema_t *evb_schema_new(const char *plugin_name)
{
    evb_schema_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->plugin = strdup(plugin_name ? plugin_name : "?");
    if (!s->plugin) {
        free(s);
        return NULL;
    }
    return s;
}

void evb_schema_destroy(evb_schema_t **self)
{
    if (!self || !*self)
        return;
    evb_schema_t *s = *self;
    for (size_t i = 0; i < s->n; i++) {
        s_decl_t *d = s->decls[i];
        free(d->name);
        free(d->default_value);
        free(d->description);
        d->def.path = NULL; /* it is d->name */
        s_val_free(&d->def);
        free(d);
    }
    free(s->decls);
    free(s->plugin);
    free(s);
    *self = NULL;
}

static int s_decl_find(const evb_schema_t *s, const char *name)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (strcmp(s->decls[i]->name, name) == 0)
            return (int)i;
    return -1;
}

/* The declaration of member `leaf` ("url" or "[]") of parent `parent`. */
static int s_decl_child(const evb_schema_t *s, int parent, const char *leaf)
{
    for (size_t i = 0; s && i < s->n; i++)
        if (s->decls[i]->parent == parent &&
            strcmp(s->decls[i]->leaf, leaf) == 0)
            return (int)i;
    return -1;
}

/* Checks "seg(.seg)*" where each seg is [a-z][a-z0-9_]* optionally
 * followed by "[]". */
static const char *s_name_error(const char *name)
{
    if (!name || !*name)
        return "the name is empty";
    if (strlen(name) > S_NAME_MAX)
        return "the name is longer than 255 bytes";
    const char *p = name;
    for (;;) {
        if (!(*p >= 'a' && *p <= 'z'))
            return "each part of the name must start with a lower-case "
                   "letter ([a-z][a-z0-9_]*, joined by \".\")";
        while ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
               *p == '_')
            p++;
        if (p[0] == '[' && p[1] == ']')
            p += 2;
        if (*p == '\0')
            return NULL;
        if (*p != '.')
            return "unexpected character: names are [a-z][a-z0-9_]* parts "
                   "joined by \".\", with \"[]\" after a LIST's name";
        p++;
    }
}

/* Parses `text` as written in a config file for a scalar of `type`.
 * Returns 0 or -1. */
static int s_parse_text(int type, const char *text, evb_optval_t *v)
{
    char *end;
    switch (type) {
    case EVBUS_OPT_STRING:
        v->str = strdup(text);
        return v->str ? 0 : -1;
    case EVBUS_OPT_INT: {
        errno = 0;
        long long n = strtoll(text, &end, 10);
        if (errno || end == text || *end || isspace((unsigned char)*text))
            return -1;
        v->i = n;
        return 0;
    }
    case EVBUS_OPT_BOOL:
        if (strcasecmp(text, "true") == 0)
            v->i = 1;
        else if (strcasecmp(text, "false") == 0)
            v->i = 0;
        else
            return -1;
        return 0;
    case EVBUS_OPT_FLOAT: {
        errno = 0;
        double f = strtod(text, &end);
        if (errno || end == text || *end || !isfinite(f) ||
            isspace((unsigned char)*text))
            return -1;
        v->f = f;
        return 0;
    }
    case EVBUS_OPT_DURATION:
        return evb_parse_duration(text, &v->i);
    case EVBUS_OPT_SIZE:
        return evb_parse_size(text, &v->i);
    default:
        return -1;
    }
}

static int s_decl_error(const evb_schema_t *schema, const char *name,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int s_decl_error(const evb_schema_t *schema, const char *name,
                        const char *fmt, ...)
{
    evb_buf_t b = EVB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    evb_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    evb_log(EVBUS_LOG_ERROR, NULL,
            "plugin \"%s\": bad declaration of option \"%s\": %s",
            schema && schema->plugin ? schema->plugin : "?",
            name ? name : "(null)", b.data ? b.data : "out of memory");
    evb_buf_free(&b);
    return -1;
}

int evb_schema_declare(evb_schema_t *schema, const char *name, int type,
                       const char *default_value, unsigned flags,
                       const char *description)
{
    if (!schema)
        return -1;
    const char *why = s_name_error(name);
    if (why)
        return s_decl_error(schema, name, "%s", why);
    if (type < EVBUS_OPT_STRING || type > EVBUS_OPT_MAP)
        return s_decl_error(schema, name, "unknown type %d", type);
    if (flags & ~(EVBUS_OPT_REQUIRED | EVBUS_OPT_SECRET))
        return s_decl_error(schema, name, "unknown flags 0x%x",
                            flags & ~(EVBUS_OPT_REQUIRED | EVBUS_OPT_SECRET));
    if (s_decl_find(schema, name) >= 0)
        return s_decl_error(schema, name, "declared twice");

    size_t len = strlen(name);
    int element = len > 2 && strcmp(name + len - 2, "[]") == 0;
    size_t plen = element ? len - 2 : s_parent_len(name);
    int parent = -1;
    if (plen > 0) {
        char *pname = strndup(name, plen);
        if (!pname)
            return s_decl_error(schema, name, "out of memory");
        parent = s_decl_find(schema, pname);
        const s_decl_t *p = parent >= 0 ? schema->decls[parent] : NULL;
        int rc = 0;
        if (!p)
            rc =
                s_decl_error(schema, name,
                             "its parent \"%s\" must be declared first", pname);
        else if (element && p->type != EVBUS_OPT_LIST)
            rc = s_decl_error(schema, name,
                              "\"[]\" follows only a LIST's name, and \"%s\" "
                              "is a %s",
                              pname, s_type_name(p->type));
        else if (!element && p->type == EVBUS_OPT_LIST)
            rc = s_decl_error(schema, name,
                              "\"%s\" is a LIST: declare its element as "
                              "\"%s[]\" (a GROUP) and members as \"%s[].x\"",
                              pname, pname, pname);
        else if (!element && p->type == EVBUS_OPT_MAP)
            rc = s_decl_error(schema, name,
                              "\"%s\" is a MAP, whose keys are free and "
                              "not declared",
                              pname);
        else if (!element && p->type != EVBUS_OPT_GROUP)
            rc = s_decl_error(schema, name,
                              "its parent \"%s\" is a %s, not a GROUP", pname,
                              s_type_name(p->type));
        free(pname);
        if (rc < 0)
            return rc;
    }
    if (element && type == EVBUS_OPT_LIST)
        return s_decl_error(schema, name,
                            "a LIST's element cannot itself be a LIST");
    if (element && (flags & EVBUS_OPT_REQUIRED))
        return s_decl_error(schema, name,
                            "a LIST's element cannot be REQUIRED (make the "
                            "LIST itself REQUIRED)");
    if ((flags & EVBUS_OPT_REQUIRED) && default_value)
        return s_decl_error(schema, name,
                            "a REQUIRED option cannot have a default");
    if (s_is_container(type) && default_value)
        return s_decl_error(schema, name, "a %s cannot have a default",
                            s_type_name(type));

    s_decl_t *d = calloc(1, sizeof *d);
    s_decl_t **nd = realloc(schema->decls, (schema->n + 1) * sizeof *nd);
    if (nd)
        schema->decls = nd;
    if (!d || !nd) {
        free(d);
        return s_decl_error(schema, name, "out of memory");
    }
    d->name = strdup(name);
    d->default_value = default_value ? strdup(default_value) : NULL;
    d->description = description ? strdup(description) : NULL;
    if (!d->name || (default_value && !d->default_value) ||
        (description && !d->description)) {
        free(d->name);
        free(d->default_value);
        free(d->description);
        free(d);
        return s_decl_error(schema, name, "out of memory");
    }
    d->leaf = element ? d->name + len - 2 : d->name + (plen ? plen + 1 : 0);
    d->parent = parent;
    d->type = type;
    d->flags = flags;
    if (parent >= 0)
        d->flags |= schema->decls[parent]->flags & EVBUS_OPT_SECRET;
    d->def.path = d->name;
    d->def.type = type;
    d->def.flags = d->flags;
    if (default_value) {
        if (s_parse_text(type, default_value, &d->def) < 0) {
            free(d->def.str);
            free(d->name);
            free(d->default_value);
            free(d->description);
            free(d);
            return s_decl_error(schema, name,
                                "the default \"%s\" is not a valid %s",
                                default_value, s_type_name(type));
        }
        d->has_default = 1;
    }
    schema->decls[schema->n++] = d;
    return 0;
}

size_t evb_schema_count(const evb_schema_t *schema)
{
    return schema ? schema->n : 0;
}

int evb_schema_get(const evb_schema_t *schema, size_t i, const char **name,
                   int *type, const char **default_value, unsigned *flags,
                   const char **description)
{
    if (!schema || i >= schema->n)
        return -1;
    const s_decl_t *d = schema->decls[i];
    if (name)
        *name = d->name;
    if (type)
        *type = d->type;
    if (default_value)
        *default_value = d->default_value;
    if (flags)
        *flags = d->flags;
    if (description)
        *description = d->description;
    return 0;
}

/* --------------------------------------------------------------- resolve */

typedef struct s_res {
    const evb_schema_t *schema;
    const char *file;    /* where the options block is */
    const char *setting; /* "instances[0].options" */
    int line;
    evb_optval_t *vals;
    size_t n, cap;
    int errors;
} s_res_t;

/* Report about `rel` (a path below the options block) at setting s, or at
 * the block itself when s is NULL. */
static void s_rerr(s_res_t *r, const config_setting_t *s, const char *rel,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void s_rerr(s_res_t *r, const config_setting_t *s, const char *rel,
                   const char *fmt, ...)
{
    evb_buf_t msg = EVB_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    evb_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    char *setting = s_fmt("%s%s%s", r->setting ? r->setting : "",
                          r->setting && *r->setting && rel && *rel ? "." : "",
                          rel ? rel : "");
    const char *file = s ? config_setting_source_file(s) : NULL;
    int line = s ? (int)config_setting_source_line(s) : r->line;
    evb_config_report(file ? file : r->file, line, setting, "%s",
                      msg.data ? msg.data : "out of memory");
    free(setting);
    evb_buf_free(&msg);
    r->errors++;
}

/* Appends a row; returns its index, or -1 (reported) when out of memory.
 * Takes `path`. */
static long s_push(s_res_t *r, char *path, int type, unsigned flags,
                   const config_setting_t *s)
{
    if (path && r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        evb_optval_t *nv = realloc(r->vals, cap * sizeof *nv);
        if (nv) {
            r->vals = nv;
            r->cap = cap;
        }
    }
    if (!path || r->n == r->cap) {
        free(path);
        s_rerr(r, s, NULL, "out of memory");
        return -1;
    }
    evb_optval_t *v = &r->vals[r->n];
    memset(v, 0, sizeof *v);
    v->path = path;
    v->type = type;
    v->flags = flags;
    v->line = s ? (int)config_setting_source_line(s) : 0;
    return (long)r->n++;
}

static int s_env_name_ok(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

/* ${NAME} -> getenv(NAME), $$ -> $. Every unset variable is reported by
 * name; the value itself is never printed. */
static char *s_expand(s_res_t *r, const config_setting_t *s, const char *rel,
                      const char *in)
{
    evb_buf_t b = EVB_BUF_INIT;
    int bad = 0;
    for (const char *p = in; *p;) {
        if (p[0] == '$' && p[1] == '$') {
            evb_buf_putc(&b, '$');
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *name = p + 2, *close = strchr(name, '}');
            if (!close) {
                s_rerr(r, s, rel,
                       "unterminated \"${\" (write \"$$\" for a literal "
                       "\"$\")");
                bad = 1;
                break;
            }
            size_t n = (size_t)(close - name);
            char *var = strndup(name, n);
            const char *value = NULL;
            if (!var) {
                s_rerr(r, s, rel, "out of memory");
                bad = 1;
            } else if (!s_env_name_ok(var, n)) {
                s_rerr(r, s, rel,
                       "\"${%.64s}\" does not name an environment variable "
                       "([A-Za-z_][A-Za-z0-9_]*; write \"$$\" for a literal "
                       "\"$\")",
                       var);
                bad = 1;
            } else if (!(value = getenv(var))) {
                s_rerr(r, s, rel, "environment variable \"%s\" is not set",
                       var);
                bad = 1;
            } else {
                evb_buf_puts(&b, value);
            }
            free(var);
            p = close + 1;
        } else {
            evb_buf_putc(&b, *p++);
        }
    }
    if (bad) {
        /* the buffer may hold expanded secrets: wipe before freeing */
        if (b.data)
            memset(b.data, 0, b.cap);
        evb_buf_free(&b);
        return NULL;
    }
    char *out = s_steal(&b);
    if (!out)
        s_rerr(r, s, rel, "out of memory");
    return out;
}

/* The "expected X, got Y" report for a scalar. */
static void s_type_error(s_res_t *r, const config_setting_t *s, const char *rel,
                         int type, unsigned flags, const char *extra)
{
    static const char *const expected[] = {
        [EVBUS_OPT_STRING] = "a string",
        [EVBUS_OPT_INT] = "an integer",
        [EVBUS_OPT_BOOL] = "true or false",
        [EVBUS_OPT_FLOAT] = "a number",
        [EVBUS_OPT_DURATION] = "a duration (milliseconds, or a string such "
                               "as \"250ms\", \"1.5s\", \"5m\", \"2h\", "
                               "\"1d\")",
        [EVBUS_OPT_SIZE] = "a size (bytes, or a string such as \"64K\", "
                           "\"1.5M\", \"1G\")",
        [EVBUS_OPT_LIST] = "a list ( ... ) or array [ ... ]",
        [EVBUS_OPT_GROUP] = "a group { ... }",
        [EVBUS_OPT_MAP] = "a group of strings { name = \"value\"; }",
    };
    char *got = s_describe(s, (flags & EVBUS_OPT_SECRET) != 0);
    s_rerr(r, s, rel, "expected %s, got %s%s", expected[type], got ? got : "?",
           extra ? extra : "");
    free(got);
}

/* DURATION or SIZE from an integer or a string. */
static int s_resolve_amount(s_res_t *r, const config_setting_t *s,
                            const char *rel, int type, unsigned flags,
                            int64_t *out)
{
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        long long v = config_setting_get_int64(s);
        if (v >= 0) {
            *out = v;
            return 0;
        }
        s_type_error(r, s, rel, type, flags, NULL);
        return -1;
    }
    if (t != CONFIG_TYPE_STRING) {
        s_type_error(r, s, rel, type, flags, NULL);
        return -1;
    }
    const char *raw = config_setting_get_string(s);
    char *text = s_expand(r, s, rel, raw);
    if (!text)
        return -1;
    int rc = type == EVBUS_OPT_DURATION ? evb_parse_duration(text, out)
                                        : evb_parse_size(text, out);
    free(text);
    if (rc < 0)
        s_type_error(r, s, rel, type, flags,
                     strstr(raw, "${") ? " (after expanding environment "
                                         "variables)"
                                       : NULL);
    return rc;
}

static int s_resolve_scalar(s_res_t *r, const config_setting_t *s,
                            const char *rel, int type, unsigned flags)
{
    int t = config_setting_type(s);
    int is_int = t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
    evb_optval_t v = {0};
    switch (type) {
    case EVBUS_OPT_STRING:
        if (t != CONFIG_TYPE_STRING)
            goto wrong;
        if (!(v.str = s_expand(r, s, rel, config_setting_get_string(s))))
            return -1;
        break;
    case EVBUS_OPT_INT:
        if (!is_int)
            goto wrong;
        v.i = config_setting_get_int64(s);
        break;
    case EVBUS_OPT_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            goto wrong;
        v.i = config_setting_get_bool(s) ? 1 : 0;
        break;
    case EVBUS_OPT_FLOAT:
        if (t == CONFIG_TYPE_FLOAT)
            v.f = config_setting_get_float(s);
        else if (is_int)
            v.f = (double)config_setting_get_int64(s);
        else
            goto wrong;
        break;
    case EVBUS_OPT_DURATION:
    case EVBUS_OPT_SIZE:
        if (s_resolve_amount(r, s, rel, type, flags, &v.i) < 0)
            return -1;
        break;
    default:
        goto wrong;
    }
    long row = s_push(r, strdup(rel), type, flags, s);
    if (row < 0) {
        free(v.str);
        return -1;
    }
    r->vals[row].str = v.str;
    r->vals[row].i = v.i;
    r->vals[row].f = v.f;
    return 0;
wrong:
    s_type_error(r, s, rel, type, flags, NULL);
    return -1;
}

/* Member names of group g, for a GROUP or MAP row. */
static int s_set_keys(s_res_t *r, long row, const config_setting_t *g)
{
    int n = config_setting_length(g);
    r->vals[row].count = n;
    if (n == 0)
        return 0;
    char **keys = calloc((size_t)n, sizeof *keys);
    if (!keys) {
        r->vals[row].count = 0;
        s_rerr(r, g, r->vals[row].path, "out of memory");
        return -1;
    }
    r->vals[row].keys = keys;
    for (int i = 0; i < n; i++) {
        const char *name =
            config_setting_name(config_setting_get_elem(g, (unsigned)i));
        if (!(keys[i] = strdup(name ? name : ""))) {
            s_rerr(r, g, r->vals[row].path, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void s_resolve_group(s_res_t *r, const config_setting_t *g,
                            const char *rel, int parent);

static void s_resolve_value(s_res_t *r, const config_setting_t *s,
                            const char *rel, int d)
{
    const s_decl_t *decl = r->schema->decls[d];
    long row;
    switch (decl->type) {
    case EVBUS_OPT_LIST: {
        if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
            s_type_error(r, s, rel, EVBUS_OPT_LIST, decl->flags, NULL);
            return;
        }
        if ((row = s_push(r, strdup(rel), decl->type, decl->flags, s)) < 0)
            return;
        int n = config_setting_length(s);
        r->vals[row].count = n;
        int elem = s_decl_child(r->schema, d, "[]");
        for (int i = 0; i < n; i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            char *erel = s_fmt("%s[%d]", rel, i);
            if (!erel)
                s_rerr(r, e, rel, "out of memory");
            else if (elem >= 0)
                s_resolve_value(r, e, erel, elem);
            else /* no element declared: a list of strings */
                s_resolve_scalar(r, e, erel, EVBUS_OPT_STRING, decl->flags);
            free(erel);
        }
        return;
    }
    case EVBUS_OPT_GROUP:
        if (!config_setting_is_group(s)) {
            s_type_error(r, s, rel, EVBUS_OPT_GROUP, decl->flags, NULL);
            return;
        }
        if ((row = s_push(r, strdup(rel), decl->type, decl->flags, s)) < 0 ||
            s_set_keys(r, row, s) < 0)
            return;
        s_resolve_group(r, s, rel, d);
        return;
    case EVBUS_OPT_MAP: {
        if (!config_setting_is_group(s)) {
            s_type_error(r, s, rel, EVBUS_OPT_MAP, decl->flags, NULL);
            return;
        }
        if ((row = s_push(r, strdup(rel), decl->type, decl->flags, s)) < 0 ||
            s_set_keys(r, row, s) < 0)
            return;
        int n = config_setting_length(s);
        for (int i = 0; i < n; i++) {
            const config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
            char *mrel = s_fmt("%s.%s", rel, config_setting_name(m));
            if (!mrel)
                s_rerr(r, m, rel, "out of memory");
            else
                s_resolve_scalar(r, m, mrel, EVBUS_OPT_STRING, decl->flags);
            free(mrel);
        }
        return;
    }
    default:
        s_resolve_scalar(r, s, rel, decl->type, decl->flags);
        return;
    }
}

/* The declared members of `parent` (-1: the top level), for messages. */
static char *s_known(const evb_schema_t *schema, int parent)
{
    evb_buf_t b = EVB_BUF_INIT;
    for (size_t i = 0; schema && i < schema->n; i++) {
        const s_decl_t *d = schema->decls[i];
        if (d->parent == parent && strcmp(d->leaf, "[]") != 0)
            evb_buf_printf(&b, "%s%s", b.len ? ", " : "", d->leaf);
    }
    return s_steal(&b);
}

/* Members of group g (NULL: an absent options block) against the
 * declared members of `parent`; then the REQUIRED ones that are missing. */
static void s_resolve_group(s_res_t *r, const config_setting_t *g,
                            const char *rel, int parent)
{
    int n = g ? config_setting_length(g) : 0;
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        char *mrel = *rel ? s_fmt("%s.%s", rel, name) : strdup(name);
        if (!mrel) {
            s_rerr(r, m, rel, "out of memory");
            continue;
        }
        int d = s_decl_child(r->schema, parent, name);
        if (d >= 0) {
            s_resolve_value(r, m, mrel, d);
        } else {
            char *known = s_known(r->schema, parent);
            s_rerr(r, m, mrel, "unknown option \"%s\" for plugin \"%s\" (%s%s)",
                   name, r->schema ? r->schema->plugin : "?",
                   known && *known ? "known: " : "none are declared here",
                   known && *known ? known : "");
            free(known);
        }
        free(mrel);
    }
    for (size_t i = 0; r->schema && i < r->schema->n; i++) {
        const s_decl_t *d = r->schema->decls[i];
        if (d->parent != parent || !(d->flags & EVBUS_OPT_REQUIRED) ||
            (g && config_setting_get_member(g, d->leaf)))
            continue;
        char *mrel = *rel ? s_fmt("%s.%s", rel, d->leaf) : strdup(d->leaf);
        s_rerr(r, g, mrel, "required option is not set%s%s%s",
               d->description ? " (" : "", d->description ? d->description : "",
               d->description ? ")" : "");
        free(mrel);
    }
}

int evb_options_resolve(const evb_schema_t *schema,
                        const config_setting_t *options, const char *file,
                        const char *setting, int line, evb_options_t *out)
{
    memset(out, 0, sizeof *out);
    s_res_t r = {schema, file, setting, line, NULL, 0, 0, 0};
    if (options && !config_setting_is_group(options)) {
        char *got = s_describe(options, 0);
        s_rerr(&r, options, NULL, "expected a group { ... }, got %s",
               got ? got : "?");
        free(got);
    } else {
        if (options)
            r.line = (int)config_setting_source_line(options);
        s_resolve_group(&r, options, "", -1);
    }
    if (r.errors) {
        for (size_t i = 0; i < r.n; i++)
            s_val_free(&r.vals[i]);
        free(r.vals);
        return -1;
    }
    out->schema = schema;
    out->file = options && config_setting_source_file(options)
                    ? config_setting_source_file(options)
                    : file;
    out->setting = setting;
    out->line = r.line;
    out->vals = r.vals;
    out->n_vals = r.n;
    return 0;
}

void evb_options_clear(evb_options_t *opts)
{
    if (!opts)
        return;
    for (size_t i = 0; i < opts->n_vals; i++)
        s_val_free(&opts->vals[i]);
    free(opts->vals);
    memset(opts, 0, sizeof *opts);
}

/* --------------------------------------------------------------- getters */

static const evb_optval_t *s_row(const evb_options_t *opts, const char *path)
{
    for (size_t i = 0; opts && path && i < opts->n_vals; i++)
        if (strcmp(opts->vals[i].path, path) == 0)
            return &opts->vals[i];
    return NULL;
}

const evb_optval_t *evb_options_find(const evb_options_t *opts,
                                     const char *path)
{
    const evb_optval_t *v = s_row(opts, path);
    if (v || !opts || !path)
        return v;
    char *pattern = s_pattern_of(path);
    int d = pattern ? s_decl_find(opts->schema, pattern) : -1;
    free(pattern);
    if (d >= 0 && opts->schema->decls[d]->has_default)
        return &opts->schema->decls[d]->def;
    return NULL;
}

int evb_options_has(const evb_options_t *opts, const char *path)
{
    return evb_options_find(opts, path) != NULL;
}

const char *evb_options_string(const evb_options_t *opts, const char *path)
{
    const evb_optval_t *v = evb_options_find(opts, path);
    return v && v->type == EVBUS_OPT_STRING ? v->str : NULL;
}

int64_t evb_options_int(const evb_options_t *opts, const char *path)
{
    const evb_optval_t *v = evb_options_find(opts, path);
    if (!v)
        return 0;
    switch (v->type) {
    case EVBUS_OPT_INT:
    case EVBUS_OPT_BOOL:
    case EVBUS_OPT_DURATION:
    case EVBUS_OPT_SIZE:
        return v->i;
    default:
        return 0;
    }
}

double evb_options_float(const evb_options_t *opts, const char *path)
{
    const evb_optval_t *v = evb_options_find(opts, path);
    if (!v)
        return 0.0;
    switch (v->type) {
    case EVBUS_OPT_FLOAT:
        return v->f;
    case EVBUS_OPT_INT:
    case EVBUS_OPT_DURATION:
    case EVBUS_OPT_SIZE:
        return (double)v->i;
    default:
        return 0.0;
    }
}

int evb_options_count(const evb_options_t *opts, const char *path)
{
    const evb_optval_t *v = evb_options_find(opts, path);
    return v && s_is_container(v->type) ? v->count : 0;
}

const char *evb_options_key(const evb_options_t *opts, const char *path,
                            int index)
{
    const evb_optval_t *v = evb_options_find(opts, path);
    if (!v || (v->type != EVBUS_OPT_GROUP && v->type != EVBUS_OPT_MAP) ||
        index < 0 || index >= v->count || !v->keys)
        return NULL;
    return v->keys[index];
}

int evb_options_line(const evb_options_t *opts, const char *path)
{
    if (!opts)
        return 0;
    char *p = path ? strdup(path) : NULL;
    int line = 0;
    while (p && *p && !line) {
        const evb_optval_t *v = s_row(opts, p);
        if (v && v->line > 0)
            line = v->line;
        else
            p[s_parent_len(p)] = '\0';
    }
    free(p);
    return line ? line : opts->line;
}

/* ------------------------------------------------------------------ dump */

static void s_put_value(evb_buf_t *b, const evb_optval_t *v)
{
    if ((v->flags & EVBUS_OPT_SECRET) && !s_is_container(v->type)) {
        evb_buf_puts(b, "<secret>");
        return;
    }
    switch (v->type) {
    case EVBUS_OPT_STRING:
        s_quote_into(b, v->str ? v->str : "", 0);
        break;
    case EVBUS_OPT_INT:
        evb_buf_printf(b, "%lld", (long long)v->i);
        break;
    case EVBUS_OPT_BOOL:
        evb_buf_puts(b, v->i ? "true" : "false");
        break;
    case EVBUS_OPT_FLOAT:
        evb_buf_printf(b, "%.15g", v->f);
        break;
    case EVBUS_OPT_DURATION:
        s_put_duration(b, v->i);
        break;
    case EVBUS_OPT_SIZE:
        s_put_size(b, v->i);
        break;
    case EVBUS_OPT_LIST:
        evb_buf_printf(b, "(%d element%s)", v->count, v->count == 1 ? "" : "s");
        break;
    case EVBUS_OPT_GROUP:
    case EVBUS_OPT_MAP:
        evb_buf_printf(b, "{%d member%s}", v->count, v->count == 1 ? "" : "s");
        break;
    }
}

/* The rows directly below `prefix` ("" for the top level), each followed
 * by what is below it; then the defaults of the declared members of
 * `parent` that the file leaves unset. */
static void s_dump_level(evb_buf_t *b, const evb_options_t *opts,
                         const char *prefix, int parent)
{
    size_t plen = strlen(prefix);
    for (size_t i = 0; i < opts->n_vals; i++) {
        const evb_optval_t *v = &opts->vals[i];
        if (s_parent_len(v->path) != plen || strncmp(v->path, prefix, plen))
            continue;
        evb_buf_printf(b, "%s = ", v->path);
        s_put_value(b, v);
        evb_buf_putc(b, '\n');
        if (s_is_container(v->type)) {
            char *pattern = s_pattern_of(v->path);
            int d = pattern ? s_decl_find(opts->schema, pattern) : -1;
            free(pattern);
            s_dump_level(b, opts, v->path, d);
        }
    }
    /* parent -1 is the top level only when prefix is "" */
    if (parent < 0 && plen)
        return;
    if (parent >= 0 && opts->schema->decls[parent]->type != EVBUS_OPT_GROUP)
        return;
    for (size_t i = 0; opts->schema && i < opts->schema->n; i++) {
        const s_decl_t *d = opts->schema->decls[i];
        if (d->parent != parent || !d->has_default)
            continue;
        char *path = plen ? s_fmt("%s.%s", prefix, d->leaf) : strdup(d->leaf);
        if (path && !s_row(opts, path)) {
            evb_buf_printf(b, "%s = ", path);
            s_put_value(b, &d->def);
            evb_buf_puts(b, " (default)\n");
        }
        free(path);
    }
}

char *evb_options_dump(const evb_options_t *opts)
{
    evb_buf_t b = EVB_BUF_INIT;
    if (opts)
        s_dump_level(&b, opts, "", -1);
    return s_steal(&b);
}
