/* Loading and checking the broker's configuration file.
 *
 * libconfig parses the syntax; everything the host owns is checked here,
 * key by key, and every problem goes through evb_config_report() so that
 * one run of `evbusd --check-config` lists them all. Plugin `options`
 * blocks are left to schema.c. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "log.h"
#include "stats.h"

static atomic_int s_errors;

/* What load() allocates: the public struct first, then what only this
 * file needs (the display names of @included files, which the settings'
 * `file` pointers are redirected to). */
typedef struct s_config {
    evb_config_t pub;
    char **files;
    size_t n_files;
} s_config_t;

/* ------------------------------------------------------------ reporting */

static void s_vreport(const char *file, int line, const char *setting,
                      const char *fmt, va_list ap)
{
    evb_buf_t b = EVB_BUF_INIT;
    evb_buf_puts(&b, "config: ");
    if (file) {
        evb_buf_puts(&b, file);
        if (line > 0)
            evb_buf_printf(&b, ":%d", line);
        evb_buf_puts(&b, ": ");
    }
    if (setting && *setting)
        evb_buf_printf(&b, "%s: ", setting);
    evb_buf_vprintf(&b, fmt, ap);
    evb_log(EVBUS_LOG_ERROR, NULL, "%s",
            b.data ? b.data : "config: (out of memory)");
    evb_buf_free(&b);
    atomic_fetch_add(&s_errors, 1);
}

void evb_config_report(const char *file, int line, const char *setting,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vreport(file, line, setting, fmt, ap);
    va_end(ap);
}

int evb_config_error_count(void)
{
    return atomic_load(&s_errors);
}

const char *evb_setting_path(const config_setting_t *s, char *buf, size_t size)
{
    /* collect the chain from s up to (not including) the root */
    const config_setting_t *chain[64];
    int depth = 0;
    for (const config_setting_t *p = s;
         p && !config_setting_is_root(p) &&
         depth < (int)(sizeof chain / sizeof chain[0]);
         p = config_setting_parent(p))
        chain[depth++] = p;
    size_t off = 0;
    if (size == 0)
        return buf;
    buf[0] = '\0';
    for (int i = depth - 1; i >= 0 && off < size; i--) {
        const config_setting_t *c = chain[i];
        const config_setting_t *parent = config_setting_parent(c);
        int n;
        if (parent &&
            (config_setting_is_list(parent) || config_setting_is_array(parent)))
            n = snprintf(buf + off, size - off, "[%d]",
                         config_setting_index(c));
        else
            n = snprintf(buf + off, size - off, "%s%s", off ? "." : "",
                         config_setting_name(c) ? config_setting_name(c) : "?");
        if (n < 0)
            break;
        off += (size_t)n;
    }
    return buf;
}

static const char *s_file_of(const config_setting_t *s, const char *fallback)
{
    const char *f = s ? config_setting_source_file(s) : NULL;
    return f ? f : fallback;
}

/* Report about setting s (its file, line and path). */
static void s_err(const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void s_err(const config_setting_t *s, const char *fmt, ...)
{
    char path[512];
    evb_setting_path(s, path, sizeof path);
    va_list ap;
    va_start(ap, fmt);
    s_vreport(s_file_of(s, NULL), (int)config_setting_source_line(s), path, fmt,
              ap);
    va_end(ap);
}

/* Report about member `name` of group g that is absent: g's file and
 * line, the member's path. */
static void s_err_member(const config_setting_t *g, const char *name,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_err_member(const config_setting_t *g, const char *name,
                         const char *fmt, ...)
{
    char path[512];
    evb_setting_path(g, path, sizeof path);
    size_t len = strlen(path);
    snprintf(path + len, sizeof path - len, "%s%s", len ? "." : "", name);
    va_list ap;
    va_start(ap, fmt);
    s_vreport(s_file_of(g, NULL), (int)config_setting_source_line(g), path, fmt,
              ap);
    va_end(ap);
}

/* A quoted, escaped, shortened copy of a string from the file. */
static void s_quote(const char *s, char *buf, size_t size)
{
    const size_t max = 64;
    size_t n = strlen(s), cut = n > max ? max : n;
    while (cut < n && cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--; /* do not split a UTF-8 sequence */
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < cut && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
        else if (c == '\n')
            o += (size_t)snprintf(buf + o, size - o, "\\n");
        else if (c == '\t')
            o += (size_t)snprintf(buf + o, size - o, "\\t");
        else if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        else
            buf[o++] = (char)c;
    }
    snprintf(buf + o, size - o, "%s\"", cut < n ? "..." : "");
}

/* What a setting holds, for "expected X, got Y" messages. */
static const char *s_describe(const config_setting_t *s, char *buf, size_t size)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_INT:
        snprintf(buf, size, "%d", config_setting_get_int(s));
        break;
    case CONFIG_TYPE_INT64:
        snprintf(buf, size, "%lldL", config_setting_get_int64(s));
        break;
    case CONFIG_TYPE_FLOAT:
        snprintf(buf, size, "%g", config_setting_get_float(s));
        break;
    case CONFIG_TYPE_BOOL:
        snprintf(buf, size, "%s",
                 config_setting_get_bool(s) ? "true" : "false");
        break;
    case CONFIG_TYPE_STRING:
        s_quote(config_setting_get_string(s), buf, size);
        break;
    case CONFIG_TYPE_GROUP:
        snprintf(buf, size, "a group { ... }");
        break;
    case CONFIG_TYPE_LIST:
        snprintf(buf, size, "a list ( ... )");
        break;
    case CONFIG_TYPE_ARRAY:
        snprintf(buf, size, "an array [ ... ]");
        break;
    default:
        snprintf(buf, size, "nothing");
        break;
    }
    return buf;
}

/* ------------------------------------------------------ units and values */

/* Reads "digits[.digits]" at *sp. The fraction is kept as num/den with at
 * most 9 significant digits. Returns 0 or -1 (no digits, overflow). */
static int s_number(const char **sp, uint64_t *whole, uint64_t *num,
                    uint64_t *den)
{
    const char *p = *sp;
    if (!isdigit((unsigned char)*p))
        return -1;
    uint64_t w = 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (w > (UINT64_MAX - 9) / 10)
            return -1;
        w = w * 10 + (uint64_t)(*p - '0');
    }
    uint64_t n = 0, d = 1;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++)
            if (d < 1000000000u) {
                n = n * 10 + (uint64_t)(*p - '0');
                d *= 10;
            }
    }
    *whole = w;
    *num = n;
    *den = d;
    *sp = p;
    return 0;
}

/* whole.num/den * factor, rounded to the nearest integer, into *out;
 * -1 on overflow of int64. */
static int s_scale(uint64_t whole, uint64_t num, uint64_t den, uint64_t factor,
                   int64_t *out)
{
    uint64_t v;
    if (__builtin_mul_overflow(whole, factor, &v))
        return -1;
    /* num < den <= 1e9 and factor <= 2^30 * 1e3: no overflow here */
    uint64_t f = (num * factor + den / 2) / den;
    if (__builtin_add_overflow(v, f, &v) || v > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

int evb_parse_duration(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        uint64_t factor;
    } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    if (!s || !*s)
        return -1;
    const char *p = s;
    int64_t total = 0;
    for (int part = 0; *p; part++) {
        uint64_t whole, num, den;
        if (s_number(&p, &whole, &num, &den) < 0)
            return -1;
        size_t k, n = sizeof units / sizeof units[0];
        for (k = 0; k < n; k++) {
            size_t ul = strlen(units[k].unit);
            if (strncmp(p, units[k].unit, ul) == 0 &&
                !isalpha((unsigned char)p[ul]))
                break;
        }
        if (k == n) {
            /* a bare number is whole milliseconds, and only alone */
            if (part > 0 || *p || den != 1)
                return -1;
            if (whole > (uint64_t)INT64_MAX)
                return -1;
            *ms = (int64_t)whole;
            return 0;
        }
        p += strlen(units[k].unit);
        int64_t v;
        if (s_scale(whole, num, den, units[k].factor, &v) < 0 ||
            __builtin_add_overflow(total, v, &total))
            return -1;
    }
    *ms = total;
    return 0;
}

int evb_parse_size(const char *s, int64_t *bytes)
{
    if (!s || !*s)
        return -1;
    const char *p = s;
    uint64_t whole, num, den;
    if (s_number(&p, &whole, &num, &den) < 0)
        return -1;
    uint64_t factor = 1;
    int unit = 1;
    switch (*p) {
    case 'K':
    case 'k':
        factor = 1024;
        break;
    case 'M':
    case 'm':
        factor = 1024 * 1024;
        break;
    case 'G':
    case 'g':
        factor = 1024 * 1024 * 1024;
        break;
    default:
        unit = 0;
        break;
    }
    if (unit) {
        p++;
        if (*p == 'i' && (p[1] == 'B' || p[1] == 'b'))
            p += 2;
        else if (*p == 'B' || *p == 'b')
            p++;
    } else if (*p == 'B' || *p == 'b') {
        p++;
    }
    if (*p)
        return -1;
    if (!unit && den != 1)
        return -1; /* "1.5" bytes */
    return s_scale(whole, num, den, factor, bytes);
}

/* "10m", "1500ms" — the shortest exact form, for messages. */
static const char *s_fmt_duration(int64_t ms, char *buf, size_t size)
{
    static const struct {
        const char *unit;
        int64_t factor;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (ms != 0 && ms % units[i].factor == 0) {
            snprintf(buf, size, "%lld%s", (long long)(ms / units[i].factor),
                     units[i].unit);
            return buf;
        }
    snprintf(buf, size, "%lldms", (long long)ms);
    return buf;
}

static const char *s_fmt_size(int64_t b, char *buf, size_t size)
{
    static const char units[] = "GMK";
    for (int i = 0; i < 3; i++) {
        int64_t f = (int64_t)1 << (10 * (3 - i));
        if (b != 0 && b % f == 0) {
            snprintf(buf, size, "%lld%c", (long long)(b / f), units[i]);
            return buf;
        }
    }
    snprintf(buf, size, "%lld", (long long)b);
    return buf;
}

/* ------------------------------------------------------- typed members */

static int s_in(const char *const *list, const char *name)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], name) == 0)
            return 1;
    return 0;
}

static void s_check_keys(const config_setting_t *g, const char *const *known)
{
    int n = config_setting_length(g);
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
        const char *name = config_setting_name(m);
        if (name && s_in(known, name))
            continue;
        evb_buf_t list = EVB_BUF_INIT;
        for (size_t k = 0; known[k]; k++)
            evb_buf_printf(&list, "%s%s", k ? ", " : "", known[k]);
        s_err(m, "unknown setting \"%s\" (known: %s)", name ? name : "?",
              list.data ? list.data : "");
        evb_buf_free(&list);
    }
}

static int s_is_int(const config_setting_t *s)
{
    return config_setting_type(s) == CONFIG_TYPE_INT ||
           config_setting_type(s) == CONFIG_TYPE_INT64;
}

/* Each getter below: 0 when the member is absent (*out untouched), 1 when
 * it is set and valid, -1 when it was reported. */

static int s_group(const config_setting_t *g, const char *name,
                   config_setting_t **out)
{
    config_setting_t *m = g ? config_setting_get_member(g, name) : NULL;
    if (!m)
        return 0;
    if (!config_setting_is_group(m)) {
        char got[128];
        s_err(m, "expected a group { ... }, got %s",
              s_describe(m, got, sizeof got));
        return -1;
    }
    *out = m;
    return 1;
}

static int s_string(const config_setting_t *g, const char *name, char **out,
                    int allow_empty)
{
    const config_setting_t *m = g ? config_setting_get_member(g, name) : NULL;
    if (!m)
        return 0;
    char got[128];
    if (config_setting_type(m) != CONFIG_TYPE_STRING) {
        s_err(m, "expected a string, got %s", s_describe(m, got, sizeof got));
        return -1;
    }
    const char *v = config_setting_get_string(m);
    if (!allow_empty && !*v) {
        s_err(m, "expected a non-empty string, got \"\"");
        return -1;
    }
    char *copy = strdup(v);
    if (!copy) {
        s_err(m, "out of memory");
        return -1;
    }
    free(*out);
    *out = copy;
    return 1;
}

static int s_int(const config_setting_t *g, const char *name, int64_t min,
                 int64_t max, int *out)
{
    const config_setting_t *m = g ? config_setting_get_member(g, name) : NULL;
    if (!m)
        return 0;
    if (s_is_int(m)) {
        long long v = config_setting_get_int64(m);
        if (v >= min && v <= max) {
            *out = (int)v;
            return 1;
        }
    }
    char got[128];
    s_describe(m, got, sizeof got);
    if (max >= INT_MAX)
        s_err(m, "expected an integer of at least %lld, got %s", (long long)min,
              got);
    else
        s_err(m, "expected an integer from %lld to %lld, got %s",
              (long long)min, (long long)max, got);
    return -1;
}

static int s_duration(const config_setting_t *g, const char *name, int64_t *out)
{
    const config_setting_t *m = g ? config_setting_get_member(g, name) : NULL;
    if (!m)
        return 0;
    int64_t v = -1;
    if (s_is_int(m))
        v = config_setting_get_int64(m);
    else if (config_setting_type(m) == CONFIG_TYPE_STRING &&
             evb_parse_duration(config_setting_get_string(m), &v) < 0)
        v = -1;
    if (v >= 0) {
        *out = v;
        return 1;
    }
    char got[128];
    s_err(m,
          "expected a duration (milliseconds, or a string such as \"250ms\", "
          "\"1.5s\", \"5m\", \"2h\", \"1d\"), got %s",
          s_describe(m, got, sizeof got));
    return -1;
}

static int s_size(const config_setting_t *g, const char *name, int64_t min,
                  int64_t max, int64_t *out)
{
    const config_setting_t *m = g ? config_setting_get_member(g, name) : NULL;
    if (!m)
        return 0;
    int64_t v = -1;
    if (s_is_int(m))
        v = config_setting_get_int64(m);
    else if (config_setting_type(m) == CONFIG_TYPE_STRING &&
             evb_parse_size(config_setting_get_string(m), &v) < 0)
        v = -1;
    if (v >= min && v <= max) {
        *out = v;
        return 1;
    }
    char got[128], lo[32], hi[32];
    s_err(m,
          "expected a size from %s to %s (bytes, or a string such as "
          "\"64K\", \"1.5M\", \"1G\"), got %s",
          s_fmt_size(min, lo, sizeof lo), s_fmt_size(max, hi, sizeof hi),
          s_describe(m, got, sizeof got));
    return -1;
}

/* "" (disabled) or "transport://address". */
static int s_endpoint(const config_setting_t *g, const char *name, char **out)
{
    int rc = s_string(g, name, out, 1);
    if (rc <= 0 || !**out)
        return rc;
    const char *e = *out, *sep = strstr(e, "://");
    int ok = sep && sep > e && sep[3] != '\0';
    for (const char *p = e; ok && p < sep; p++)
        ok = islower((unsigned char)*p);
    if (ok)
        return 1;
    char got[128];
    s_quote(e, got, sizeof got);
    s_err(config_setting_get_member(g, name),
          "expected a ZeroMQ endpoint such as \"tcp://127.0.0.1:7700\" "
          "(or \"\" to disable), got %s",
          got);
    return -1;
}

/* ------------------------------------------------------------ sections */

static const char *const s_root_keys[] = {
    "log_level", "plugin_dir",  "dead_letter_dir", "shutdown_timeout",
    "slow_call", "crash_limit", "ingress",         "egress",
    "instances", "journal",     "control",         NULL};
static const char *const s_journal_keys[] = {"dir",
                                             "segment_size",
                                             "commit_interval",
                                             "commit_batch",
                                             "sync_interval",
                                             "max_size",
                                             "max_age",
                                             "dedupe_window",
                                             "dedupe_max_ids",
                                             NULL};
static const char *const s_control_keys[] = {"endpoint", NULL};
static const char *const s_ingress_keys[] = {"pub",
                                             "ack",
                                             "rcvhwm",
                                             "ack_sndhwm",
                                             "max_message_size",
                                             "max_depth",
                                             "max_attr_len",
                                             "max_rendered_size",
                                             "max_types",
                                             NULL};
static const char *const s_egress_keys[] = {"pub", "sndhwm", "slow_subscriber",
                                            NULL};
static const char *const s_instance_keys[] = {
    "name",     "plugin",        "topics", "filter",  "queue_size",
    "workers",  "max_in_flight", "retry",  "options", "ordering",
    "start_at", "rename_from",   NULL};
static const char *const s_retry_keys[] = {"max_attempts", "initial_delay",
                                           "max_delay", "max_age", NULL};

/* A string setting that must be one of choices (NULL-terminated): its
 * index, -1 when absent, -2 after reporting another value. */
static int s_choice(const config_setting_t *g, const char *name,
                    const char *const choices[])
{
    char *v = NULL;
    if (s_string(g, name, &v, 0) <= 0)
        return -1;
    int found = -2;
    for (int i = 0; choices[i] && found < 0; i++)
        if (strcmp(v, choices[i]) == 0)
            found = i;
    if (found == -2) {
        char want[256] = "", got[128];
        size_t used = 0;
        for (int i = 0; choices[i]; i++)
            used +=
                (size_t)snprintf(want + used, sizeof want - used, "%s\"%s\"",
                                 i == 0           ? ""
                                 : choices[i + 1] ? ", "
                                                  : " or ",
                                 choices[i]);
        s_quote(v, got, sizeof got);
        s_err(config_setting_get_member(g, name), "expected %s, got %s", want,
              got);
    }
    free(v);
    return found;
}

static void s_load_ingress(evb_config_t *cfg, const config_setting_t *root)
{
    config_setting_t *g = NULL;
    if (s_group(root, "ingress", &g) <= 0)
        return;
    s_check_keys(g, s_ingress_keys);
    s_endpoint(g, "pub", &cfg->ingress_pub);
    s_endpoint(g, "ack", &cfg->ingress_ack);
    s_int(g, "rcvhwm", 1, INT_MAX, &cfg->ingress_rcvhwm);
    s_int(g, "max_types", 1, 1000000, &cfg->max_types);
    s_int(g, "ack_sndhwm", 1, INT_MAX, &cfg->ack_sndhwm);
    int64_t v;
    if (s_size(g, "max_message_size", 64, (int64_t)256 << 20, &v) > 0)
        cfg->limits.max_message_size = (size_t)v;
    s_int(g, "max_depth", 1, 32, &cfg->limits.max_depth);
    if (s_size(g, "max_attr_len", 16, (int64_t)1 << 20, &v) > 0)
        cfg->limits.max_attr_len = (size_t)v;
    if (s_size(g, "max_rendered_size", 1024, (int64_t)2 << 30, &v) > 0)
        cfg->limits.max_rendered_size = (size_t)v;
    if (*cfg->ingress_pub && strcmp(cfg->ingress_pub, cfg->ingress_ack) == 0)
        s_err(config_setting_get_member(g, "ack"),
              "the same endpoint as ingress.pub; each socket needs its own");
}

static void s_load_egress(evb_config_t *cfg, const config_setting_t *root)
{
    config_setting_t *g = NULL;
    if (s_group(root, "egress", &g) <= 0)
        return;
    s_check_keys(g, s_egress_keys);
    s_endpoint(g, "pub", &cfg->egress_pub);
    s_int(g, "sndhwm", 1, INT_MAX, &cfg->egress_sndhwm);
    static const char *const modes[] = {"drop", "skip", NULL};
    int mode = s_choice(g, "slow_subscriber", modes);
    if (mode >= 0)
        cfg->egress_skip_on_slow = mode;
}

static void s_load_journal(evb_config_t *cfg, const config_setting_t *root)
{
    config_setting_t *g = NULL;
    if (s_group(root, "journal", &g) <= 0)
        return;
    s_check_keys(g, s_journal_keys);
    s_string(g, "dir", &cfg->journal_dir, 0); /* cannot be turned off */
    s_size(g, "segment_size", 4096, (int64_t)1 << 30,
           &cfg->journal_segment_size);
    int64_t v;
    if (s_duration(g, "commit_interval", &v) > 0) {
        if (v > 1000)
            s_err(config_setting_get_member(g, "commit_interval"),
                  "expected at most 1s: acknowledgements wait this long");
        else
            cfg->journal_commit_interval_ms = v;
    }
    s_int(g, "commit_batch", 1, 1000000, &cfg->journal_commit_batch);
    s_duration(g, "sync_interval", &cfg->journal_sync_interval_ms);
    s_size(g, "max_size", 0, INT64_MAX, &cfg->journal_max_size);
    s_duration(g, "max_age", &cfg->journal_max_age_ms);
    s_duration(g, "dedupe_window", &cfg->dedupe_window_ms);
    s_int(g, "dedupe_max_ids", 1, 100000000, &cfg->dedupe_max_ids);
}

static void s_load_control(evb_config_t *cfg, const config_setting_t *root)
{
    config_setting_t *g = NULL;
    if (s_group(root, "control", &g) <= 0)
        return;
    s_check_keys(g, s_control_keys);
    s_endpoint(g, "endpoint", &cfg->control_endpoint);
}

int evb_config_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > EVB_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' &&
            s[i] != '-')
            return 0;
    return 1;
}

static int s_plugin_ok(const char *s)
{
    if (strchr(s, '/'))
        return 1;
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
            *s != '_' && *s != '-')
            return 0;
    return 1;
}

static int s_strv_push(char ***v, size_t *n, const char *s)
{
    char *copy = strdup(s);
    char **nv = realloc(*v, (*n + 1) * sizeof **v);
    if (!copy || !nv) {
        free(copy);
        if (nv)
            *v = nv;
        return -1;
    }
    nv[(*n)++] = copy;
    *v = nv;
    return 0;
}

static void s_load_topics(evb_instance_conf_t *ic, const config_setting_t *g)
{
    const config_setting_t *m = config_setting_get_member(g, "topics");
    if (!m)
        return;
    char got[128], err[256];
    if (config_setting_type(m) == CONFIG_TYPE_STRING) {
        const char *p = config_setting_get_string(m);
        if (evb_topic_pattern_check(p, err, sizeof err) < 0)
            s_err(m, "%s", err);
        else if (s_strv_push(&ic->sub.patterns, &ic->sub.n_patterns, p) < 0)
            s_err(m, "out of memory");
        return;
    }
    if (!config_setting_is_list(m) && !config_setting_is_array(m)) {
        s_err(m,
              "expected a topic pattern or a list of them [ \"task.*\" ], "
              "got %s",
              s_describe(m, got, sizeof got));
        return;
    }
    int n = config_setting_length(m);
    if (n == 0) {
        s_err(m, "expected at least one topic pattern (\"**\" matches every "
                 "event)");
        return;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            s_err(e, "expected a topic pattern string, got %s",
                  s_describe(e, got, sizeof got));
            continue;
        }
        const char *p = config_setting_get_string(e);
        if (evb_topic_pattern_check(p, err, sizeof err) < 0)
            s_err(e, "%s", err);
        else if (s_strv_push(&ic->sub.patterns, &ic->sub.n_patterns, p) < 0)
            s_err(e, "out of memory");
    }
}

static void s_load_filter(evb_instance_conf_t *ic, const config_setting_t *g)
{
    config_setting_t *f = NULL;
    if (s_group(g, "filter", &f) <= 0)
        return;
    int n = config_setting_length(f);
    char got[128];
    for (int i = 0; i < n; i++) {
        const config_setting_t *m = config_setting_get_elem(f, (unsigned)i);
        const char *attr = config_setting_name(m);
        if (!evb_filter_attr_valid(attr)) {
            s_err(m,
                  "\"%s\" is not an attribute a filter can name (lower-case "
                  "letters and digits, at most 20, not \"data\")",
                  attr);
            continue;
        }
        evb_filter_t flt = {NULL, NULL, 0};
        int bad = 0;
        if (config_setting_type(m) == CONFIG_TYPE_STRING) {
            bad = s_strv_push(&flt.values, &flt.n_values,
                              config_setting_get_string(m));
        } else if (config_setting_is_list(m) || config_setting_is_array(m)) {
            int k = config_setting_length(m);
            if (k == 0) {
                s_err(m, "expected at least one value (an empty list "
                         "would match no event)");
                bad = 1;
            }
            for (int j = 0; j < k && !bad; j++) {
                const config_setting_t *e =
                    config_setting_get_elem(m, (unsigned)j);
                if (config_setting_type(e) != CONFIG_TYPE_STRING) {
                    s_err(e, "expected a string, got %s",
                          s_describe(e, got, sizeof got));
                    bad = 1;
                } else {
                    bad = s_strv_push(&flt.values, &flt.n_values,
                                      config_setting_get_string(e));
                }
            }
        } else {
            s_err(m, "expected a string or a list of strings, got %s",
                  s_describe(m, got, sizeof got));
            bad = 1;
        }
        evb_filter_t *nf = NULL;
        if (!bad) {
            flt.attr = strdup(attr);
            nf = realloc(ic->sub.filters, (ic->sub.n_filters + 1) * sizeof *nf);
        }
        if (bad || !flt.attr || !nf) {
            for (size_t j = 0; j < flt.n_values; j++)
                free(flt.values[j]);
            free(flt.values);
            free(flt.attr);
            if (nf)
                ic->sub.filters = nf;
            if (!bad)
                s_err(m, "out of memory");
            continue;
        }
        ic->sub.filters = nf;
        ic->sub.filters[ic->sub.n_filters++] = flt;
    }
}

static void s_load_retry(evb_instance_conf_t *ic, const config_setting_t *g)
{
    config_setting_t *r = NULL;
    if (s_group(g, "retry", &r) <= 0)
        return;
    s_check_keys(r, s_retry_keys);
    s_int(r, "max_attempts", 1, INT_MAX, &ic->retry.max_attempts);
    int a = s_duration(r, "initial_delay", &ic->retry.initial_ms);
    int b = s_duration(r, "max_delay", &ic->retry.max_delay_ms);
    s_duration(r, "max_age", &ic->retry.max_age_ms);
    if (a >= 0 && b >= 0 && ic->retry.initial_ms > ic->retry.max_delay_ms) {
        char i[32], m[32];
        s_fmt_duration(ic->retry.initial_ms, i, sizeof i);
        s_fmt_duration(ic->retry.max_delay_ms, m, sizeof m);
        const config_setting_t *at =
            config_setting_get_member(r, a > 0 ? "initial_delay" : "max_delay");
        s_err(at, "initial_delay (%s) is longer than max_delay (%s)%s", i, m,
              a > 0 && b > 0 ? "" : " (the other is the default)");
    }
}

static void s_load_instance(evb_config_t *cfg, size_t idx, config_setting_t *g)
{
    evb_instance_conf_t *ic = &cfg->instances[idx];
    const evb_retry_policy_t retry = EVB_RETRY_DEFAULT;
    char setting[32], got[128];
    snprintf(setting, sizeof setting, "instances[%zu]", idx);
    ic->setting = strdup(setting);
    ic->file = s_file_of(g, cfg->path);
    ic->line = (int)config_setting_source_line(g);
    ic->queue_size = 10000;
    ic->workers = 1;
    ic->max_in_flight = 0;
    ic->ordered = -1; /* the plugin's default (evb_instance_new) */
    ic->retry = retry;
    if (!config_setting_is_group(g)) {
        s_err(g,
              "expected a group { name = \"...\"; plugin = \"...\"; }, got %s",
              s_describe(g, got, sizeof got));
        return;
    }
    s_check_keys(g, s_instance_keys);

    if (s_string(g, "name", &ic->name, 0) == 0)
        s_err_member(g, "name",
                     "required setting is missing (the instance's unique "
                     "name)");
    if (ic->name && !evb_config_name_ok(ic->name, strlen(ic->name))) {
        s_quote(ic->name, got, sizeof got);
        s_err(config_setting_get_member(g, "name"),
              "expected 1 to 64 characters of [A-Za-z0-9_.-], got %s", got);
        free(ic->name);
        ic->name = NULL;
    }
    for (size_t j = 0; ic->name && j < idx; j++) {
        const evb_instance_conf_t *o = &cfg->instances[j];
        if (o->name && strcmp(o->name, ic->name) == 0) {
            s_err(config_setting_get_member(g, "name"),
                  "duplicate instance name \"%s\" (also %s at %s:%d)", ic->name,
                  o->setting ? o->setting : "?", o->file, o->line);
            break;
        }
    }

    if (s_string(g, "plugin", &ic->plugin, 0) == 0)
        s_err_member(g, "plugin",
                     "required setting is missing (a plugin name such as "
                     "\"file\", or the path to a .so)");
    if (ic->plugin && !s_plugin_ok(ic->plugin)) {
        s_quote(ic->plugin, got, sizeof got);
        s_err(config_setting_get_member(g, "plugin"),
              "expected a plugin name of [a-z0-9_-] or a path containing "
              "\"/\", got %s",
              got);
        free(ic->plugin);
        ic->plugin = NULL;
    }

    s_load_topics(ic, g);
    if (ic->sub.n_patterns == 0 && !config_setting_get_member(g, "topics") &&
        s_strv_push(&ic->sub.patterns, &ic->sub.n_patterns, "**") < 0)
        s_err_member(g, "topics", "out of memory");
    s_load_filter(ic, g);
    s_int(g, "queue_size", 1, 10000000, &ic->queue_size);
    s_int(g, "workers", 1, 64, &ic->workers);
    s_int(g, "max_in_flight", 0, 100000, &ic->max_in_flight);
    static const char *const orderings[] = {"accepted", "none", NULL};
    int ordering = s_choice(g, "ordering", orderings);
    if (ordering >= 0)
        ic->ordered = ordering == 0;
    static const char *const starts[] = {"end", "oldest", NULL};
    int start = s_choice(g, "start_at", starts);
    ic->start_oldest = start == 1;
    if (s_string(g, "rename_from", &ic->rename_from, 0) > 0 &&
        !evb_config_name_ok(ic->rename_from, strlen(ic->rename_from))) {
        s_quote(ic->rename_from, got, sizeof got);
        s_err(config_setting_get_member(g, "rename_from"),
              "expected the old name of this instance (1 to 64 characters of "
              "[A-Za-z0-9_.-]), got %s",
              got);
        free(ic->rename_from);
        ic->rename_from = NULL;
    }
    s_load_retry(ic, g);
    config_setting_t *opts = NULL;
    if (s_group(g, "options", &opts) > 0)
        ic->options = opts;
}

/* rename_from names an instance that is gone from the config: not one
 * that is still there, and not the same one twice. */
static void s_check_renames(evb_config_t *cfg, const config_setting_t *l)
{
    for (size_t i = 0; i < cfg->n_instances; i++) {
        const char *from = cfg->instances[i].rename_from;
        if (!from)
            continue;
        const config_setting_t *at = config_setting_get_member(
            config_setting_get_elem(l, (unsigned)i), "rename_from");
        for (size_t k = 0; k < cfg->n_instances; k++) {
            const evb_instance_conf_t *o = &cfg->instances[k];
            if (o->name && strcmp(o->name, from) == 0) {
                s_err(at,
                      k == i ? "\"%s\" is this instance's own name"
                             : "instance \"%s\" is still configured (%s at "
                               "%s:%d); rename_from takes over the cursor of "
                               "an instance that is gone",
                      from, o->setting ? o->setting : "?", o->file, o->line);
                break;
            }
            if (k < i && o->rename_from && strcmp(o->rename_from, from) == 0) {
                s_err(at, "\"%s\" is also taken over by %s at %s:%d", from,
                      o->setting ? o->setting : "?", o->file, o->line);
                break;
            }
        }
    }
}

static void s_load_instances(evb_config_t *cfg, const config_setting_t *root)
{
    const config_setting_t *l = config_setting_get_member(root, "instances");
    if (!l)
        return;
    int n = config_setting_length(l);
    if (!config_setting_is_list(l) && !(config_setting_is_array(l) && n == 0)) {
        char got[128];
        s_err(l,
              "expected a list of groups ( { name = ...; plugin = ...; }, "
              "... ), got %s",
              s_describe(l, got, sizeof got));
        return;
    }
    if (n == 0)
        return;
    cfg->instances = calloc((size_t)n, sizeof *cfg->instances);
    if (!cfg->instances) {
        s_err(l, "out of memory");
        return;
    }
    cfg->n_instances = (size_t)n;
    for (int i = 0; i < n; i++)
        s_load_instance(cfg, (size_t)i,
                        config_setting_get_elem(l, (unsigned)i));
    s_check_renames(cfg, l);
}

static void s_load_root(evb_config_t *cfg)
{
    const config_setting_t *root = config_root_setting(&cfg->cfg);
    s_check_keys(root, s_root_keys);

    char *level = NULL;
    if (s_string(root, "log_level", &level, 0) > 0) {
        int l = evb_log_level_parse(level);
        if (l < 0) {
            char got[128];
            s_quote(level, got, sizeof got);
            s_err(config_setting_get_member(root, "log_level"),
                  "expected one of \"error\", \"warn\", \"info\", \"debug\", "
                  "got %s",
                  got);
        } else {
            cfg->log_level = l;
        }
    }
    free(level);
    s_string(root, "plugin_dir", &cfg->plugin_dir, 0);
    s_string(root, "dead_letter_dir", &cfg->dead_letter_dir, 0);
    s_duration(root, "shutdown_timeout", &cfg->shutdown_timeout_ms);
    s_duration(root, "slow_call", &cfg->slow_call_ms);
    s_int(root, "crash_limit", 1, 1000, &cfg->crash_limit);
    s_load_ingress(cfg, root);
    s_load_egress(cfg, root);
    s_load_journal(cfg, root);
    s_load_control(cfg, root);
    s_load_instances(cfg, root);
}

/* ------------------------------------------------------------- includes */

/* libconfig 1.5 opens "@include NAME" as INCLUDE_DIR/NAME (a leading '/'
 * dropped) but records NAME as written. Messages should name a file the
 * operator can open, so this is the path it was read from. */
static char *s_include_path(const char *dir, const char *name)
{
    if (!dir)
        return strdup(name);
    if (name[0] == '/')
        name++;
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void s_redirect_files(config_setting_t *s, const char *const *from,
                             char *const *to, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->file == from[i] && to[i]) {
            s->file = to[i];
            break;
        }
    if (config_setting_is_aggregate(s)) {
        int len = config_setting_length(s);
        for (int i = 0; i < len; i++)
            s_redirect_files(config_setting_get_elem(s, (unsigned)i), from, to,
                             n);
    }
}

/* ------------------------------------------------ integer literal check */

/* libconfig 1.5 reads an integer literal without the L suffix with atoi(),
 * so 5000000000 silently becomes 705032704. Every such literal is an
 * error here, with the line it is on. */
static void s_check_int_token(const char *file, int line, const char *t,
                              size_t n)
{
    char tok[64];
    if (n >= sizeof tok) {
        n = sizeof tok - 1;
    }
    memcpy(tok, t, n);
    tok[n] = '\0';
    int hex = n > 2 && tok[0] == '0' && (tok[1] == 'x' || tok[1] == 'X');
    if (tok[n - 1] == 'L' || strchr(tok, '.') ||
        (!hex && (strchr(tok, 'e') || strchr(tok, 'E'))))
        return; /* 64-bit or floating point */
    errno = 0;
    int bad;
    if (hex) {
        unsigned long long v = strtoull(tok + 2, NULL, 16);
        bad = errno == ERANGE || v > INT_MAX;
    } else {
        long long v = strtoll(tok, NULL, 10);
        bad = errno == ERANGE || v > INT_MAX || v < INT_MIN;
    }
    if (bad)
        evb_config_report(file, line, NULL,
                          "integer %s is out of range (-2147483648 to "
                          "2147483647); write %sL for a 64-bit integer",
                          tok, tok);
}

static void s_check_int_literals(const char *file)
{
    FILE *fp = fopen(file, "r");
    if (!fp)
        return;
    evb_buf_t b = EVB_BUF_INIT;
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, fp)) > 0)
        if (evb_buf_append(&b, chunk, got) < 0)
            break;
    fclose(fp);
    if (!b.len)
        return; /* (and b.data NULL: no arithmetic on it) */
    const char *p = b.data, *end = b.data + b.len;
    int line = 1;
    while (p < end) {
        char c = *p;
        if (c == '\n') {
            line++;
            p++;
        } else if (c == '#' || (c == '/' && p + 1 < end && p[1] == '/')) {
            while (p < end && *p != '\n')
                p++;
        } else if (c == '/' && p + 1 < end && p[1] == '*') {
            for (p += 2; p < end && !(*p == '*' && p + 1 < end && p[1] == '/');
                 p++)
                line += *p == '\n';
            p = p + 2 < end ? p + 2 : end;
        } else if (c == '"') {
            for (p++; p < end && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < end)
                    p++;
                line += *p == '\n';
            }
            p++;
        } else if (isalpha((unsigned char)c) || c == '*' || c == '_') {
            while (p < end && (isalnum((unsigned char)*p) || *p == '_' ||
                               *p == '-' || *p == '*'))
                p++;
        } else if (isdigit((unsigned char)c) ||
                   ((c == '-' || c == '+') && p + 1 < end &&
                    isdigit((unsigned char)p[1]))) {
            const char *t = p++;
            while (p < end && (isalnum((unsigned char)*p) || *p == '.' ||
                               ((*p == '-' || *p == '+') &&
                                (p[-1] == 'e' || p[-1] == 'E'))))
                p++;
            s_check_int_token(file, line, t, (size_t)(p - t));
        } else {
            p++;
        }
    }
    evb_buf_free(&b);
}

/* ------------------------------------------------------------ load/free */

static evb_config_t *s_load_file(const char *path, int *errors, int keep)
{
    int before = evb_config_error_count();
    int parsed = 0; /* the settings themselves were checked */
    const evb_limits_t limits = EVB_LIMITS_DEFAULT;
    char *dir = NULL;
    s_config_t *sc = calloc(1, sizeof *sc);
    if (!sc) {
        evb_config_report(path, 0, NULL, "out of memory");
        goto done;
    }
    evb_config_t *cfg = &sc->pub;
    config_init(&cfg->cfg);
    cfg->path = strdup(path);
    cfg->log_level = EVBUS_LOG_INFO;
    cfg->ingress_pub = strdup("tcp://127.0.0.1:7700");
    cfg->ingress_ack = strdup("tcp://127.0.0.1:7701");
    cfg->egress_pub = strdup("tcp://127.0.0.1:7702");
    cfg->ingress_rcvhwm = 100000;
    cfg->max_types = EVB_MAX_TYPES_DEFAULT;
    cfg->egress_sndhwm = 100000;
    cfg->egress_skip_on_slow = 1;
    cfg->ack_sndhwm = 100000;
    cfg->limits = limits;
    cfg->dead_letter_dir = strdup("var/evbus/dead-letters");
    cfg->journal_dir = strdup("var/evbus/journal");
    cfg->journal_segment_size = 64 << 20;
    cfg->journal_commit_interval_ms = 0; /* sync at once: see commit.h */
    cfg->journal_commit_batch = 512;
    cfg->journal_sync_interval_ms = 1000;
    cfg->dedupe_window_ms = 24 * 3600 * 1000;
    cfg->dedupe_max_ids = 1000000;
    cfg->control_endpoint = strdup("tcp://127.0.0.1:7703");
    cfg->shutdown_timeout_ms = 10000;
    cfg->slow_call_ms = 10000;
    cfg->crash_limit = 2;
    if (!cfg->path || !cfg->ingress_pub || !cfg->ingress_ack ||
        !cfg->egress_pub || !cfg->dead_letter_dir || !cfg->journal_dir ||
        !cfg->control_endpoint) {
        evb_config_report(path, 0, NULL, "out of memory");
        goto done;
    }

    /* libconfig says only "file I/O error": find the reason ourselves */
    FILE *fp = fopen(path, "r");
    int err = fp ? 0 : errno;
    struct stat st;
    if (fp && fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode))
        err = EISDIR;
    if (fp)
        fclose(fp);
    if (err) {
        evb_config_report(path, 0, NULL, "cannot read: %s", strerror(err));
        goto done;
    }

    /* @include is relative to the config file's own directory */
    const char *slash = strrchr(path, '/');
    if (slash) {
        dir =
            slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
        if (dir)
            config_set_include_dir(&cfg->cfg, dir);
    }
    if (!config_read_file(&cfg->cfg, path)) {
        const char *ef = config_error_file(&cfg->cfg);
        const char *text = config_error_text(&cfg->cfg);
        if (config_error_type(&cfg->cfg) == CONFIG_ERR_FILE_IO || !ef) {
            evb_config_report(path, 0, NULL, "cannot read: %s",
                              text ? text : "I/O error");
        } else if (strcmp(ef, path) == 0) {
            evb_config_report(ef, config_error_line(&cfg->cfg), NULL, "%s",
                              text ? text : "syntax error");
        } else {
            char *inc = s_include_path(dir, ef);
            evb_config_report(inc ? inc : ef, config_error_line(&cfg->cfg),
                              NULL, "%s", text ? text : "syntax error");
            free(inc);
        }
        goto done;
    }

    /* name included files by the path they were read from */
    const char *const *names = cfg->cfg.filenames;
    size_t n_names = cfg->cfg.num_filenames;
    if (n_names > 1) {
        sc->files = calloc(n_names, sizeof *sc->files);
        if (sc->files) {
            sc->n_files = n_names;
            for (size_t i = 1; i < n_names; i++)
                sc->files[i] = s_include_path(dir, names[i]);
            s_redirect_files(config_root_setting(&cfg->cfg), names, sc->files,
                             n_names);
        }
    }
    /* a wrapped literal makes every later message about it misleading, so
     * like a syntax error it ends the load */
    int before_literals = evb_config_error_count();
    for (size_t i = 0; i < n_names; i++) {
        const char *f =
            i == 0 ? path
                   : (sc->files && sc->files[i] ? sc->files[i] : names[i]);
        int seen = 0;
        for (size_t j = 1; j < i && !seen; j++)
            seen = sc->files && sc->files[j] && strcmp(sc->files[j], f) == 0;
        if (!seen)
            s_check_int_literals(f);
    }

    if (config_setting_length(config_root_setting(&cfg->cfg)) == 0) {
        /* an empty file is a mistake (a failed copy, a wrong path), not
         * a wish for a broker without plugins on default endpoints */
        evb_config_report(path, 0, NULL,
                          "the file holds no settings (empty, or only "
                          "comments); see etc/evbus.conf for a complete "
                          "example");
    } else if (evb_config_error_count() == before_literals) {
        s_load_root(cfg);
        parsed = 1;
    }

done:
    free(dir);
    int n = evb_config_error_count() - before;
    if (errors)
        *errors = n;
    evb_config_t *out = sc ? &sc->pub : NULL;
    /* a file that did not parse has nothing worth keeping */
    if (n > 0 && (!keep || !out || !parsed))
        evb_config_destroy(&out);
    return out;
}

evb_config_t *evb_config_load(const char *path, int *errors)
{
    return s_load_file(path, errors, 0);
}

evb_config_t *evb_config_load_all(const char *path, int *errors)
{
    return s_load_file(path, errors, 1);
}

void evb_config_destroy(evb_config_t **self)
{
    if (!self || !*self)
        return;
    s_config_t *sc = (s_config_t *)*self;
    evb_config_t *cfg = &sc->pub;
    for (size_t i = 0; i < cfg->n_instances; i++) {
        evb_instance_conf_t *ic = &cfg->instances[i];
        free(ic->name);
        free(ic->plugin);
        free(ic->rename_from);
        free(ic->setting);
        evb_sub_clear(&ic->sub);
    }
    free(cfg->instances);
    free(cfg->path);
    free(cfg->plugin_dir);
    free(cfg->ingress_pub);
    free(cfg->ingress_ack);
    free(cfg->egress_pub);
    free(cfg->dead_letter_dir);
    free(cfg->journal_dir);
    free(cfg->control_endpoint);
    config_destroy(&cfg->cfg);
    for (size_t i = 0; i < sc->n_files; i++)
        free(sc->files[i]);
    free(sc->files);
    free(sc);
    *self = NULL;
}
