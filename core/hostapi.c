/* Every entry of struct evbus_host, each a thin adapter over a core module.
 * Plugins see only opaque handles; here they become the core's types. */
#include "hostapi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "figures.h"
#include "instance.h"
#include "log.h"
#include "schema.h"

/* A plugin's lines go through its instance's rate limit (100 per 10 s,
 * then a count of those held back): a plugin that logs every failed
 * attempt during a long outage must not fill the disk. */
static void s_vlog(const evbus_instance_t *inst, int level, const char *fmt,
                   va_list ap)
{
    if (!inst) {
        evb_logv(level, NULL, fmt, ap);
        return;
    }
    evb_log_limitedv(&((evb_instance_t *)inst)->rl_plugin, level, inst->name,
                     fmt, ap);
}

static void s_log(const evbus_instance_t *inst, int level, const char *fmt,
                  ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vlog(inst, level, fmt, ap);
    va_end(ap);
}

static const char *s_instance_name(const evbus_instance_t *inst)
{
    return inst->name;
}

static void s_instance_disable(evbus_instance_t *inst, const char *reason)
{
    evb_instance_disable(inst, reason);
}

static int s_config_has(const evbus_instance_t *inst, const char *path)
{
    return evb_options_has(&inst->options, path);
}

static const char *s_config_string(const evbus_instance_t *inst,
                                   const char *path)
{
    return evb_options_string(&inst->options, path);
}

static int64_t s_config_int(const evbus_instance_t *inst, const char *path)
{
    return evb_options_int(&inst->options, path);
}

static double s_config_float(const evbus_instance_t *inst, const char *path)
{
    return evb_options_float(&inst->options, path);
}

static int s_config_count(const evbus_instance_t *inst, const char *path)
{
    return evb_options_count(&inst->options, path);
}

static const char *s_config_key(const evbus_instance_t *inst,
                                const char *path, int index)
{
    return evb_options_key(&inst->options, path, index);
}

static int s_config_error(const evbus_instance_t *inst, const char *path,
                          const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char setting[512];
    snprintf(setting, sizeof setting, "%s.options%s%s",
             inst->conf->setting ? inst->conf->setting : inst->name,
             path && *path ? "." : "", path ? path : "");
    evb_config_report(inst->options.file ? inst->options.file
                                          : inst->config_file,
                      evb_options_line(&inst->options, path ? path : ""),
                      setting, "%s (instance \"%s\")", msg, inst->name);
    return -1;
}

static const char *s_event_attr(const evbus_event_t *ev, const char *name)
{
    return evb_event_attr(ev, name);
}

static const char *s_event_json(const evbus_event_t *ev, size_t *len)
{
    return evb_event_json(ev, len);
}

static const char *s_event_data_json(const evbus_event_t *ev, size_t *len)
{
    return evb_event_data_json(ev, len);
}

static size_t s_event_json_into(const evbus_event_t *ev, char *dst,
                                size_t cap)
{
    return evb_event_json_into(ev, dst, cap);
}

static const void *s_event_msgpack(const evbus_event_t *ev, size_t *len)
{
    if (len)
        *len = ev->msgpack_len;
    return ev->msgpack;
}

static int s_event_data_number(const evbus_event_t *ev, const char *path,
                               double *out)
{
    return evb_event_data_number(ev, path, out);
}

static char *s_event_data_text(const evbus_event_t *ev, const char *path)
{
    return evb_event_data_text(ev, path);
}

static int64_t s_event_accepted_ms(const evbus_event_t *ev)
{
    return ev->accepted_ms;
}

static const evbus_event_t *s_event_retain(const evbus_event_t *ev)
{
    return evb_event_retain((evb_event_t *)ev);
}

static void s_event_release(const evbus_event_t *ev)
{
    evb_event_release((evb_event_t *)ev);
}

static int s_attempt_number(const evbus_attempt_t *att)
{
    return att->number;
}

static const evbus_event_t *s_attempt_event(const evbus_attempt_t *att)
{
    return att->ev;
}

static void s_attempt_retry_after(evbus_attempt_t *att, int64_t ms)
{
    att->retry_after = ms > 0 ? ms : 0;
}

static void s_attempt_reason(evbus_attempt_t *att, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(att->reason, sizeof att->reason, fmt, ap);
    va_end(ap);
}

static void s_attempt_complete(evbus_attempt_t *att, int result)
{
    evb_attempt_complete(att, result);
}

static int s_declare_option(evbus_schema_t *schema, const char *name,
                            int type, const char *default_value,
                            unsigned flags, const char *description)
{
    return evb_schema_declare(schema, name, type, default_value, flags,
                              description);
}

static void s_free(void *p)
{
    free(p);
}

static int64_t s_now_ms(void)
{
    return evb_now_ms();
}

static const evbus_host_t s_host = {
    .abi_version = EVBUS_ABI_MAKE(EVBUS_ABI_MAJOR, EVBUS_ABI_MINOR),
    .struct_size = sizeof(evbus_host_t),
    .log = s_log,
    .vlog = s_vlog,
    .declare_option = s_declare_option,
    .instance_name = s_instance_name,
    .instance_disable = s_instance_disable,
    .config_has = s_config_has,
    .config_string = s_config_string,
    .config_int = s_config_int,
    .config_float = s_config_float,
    .config_count = s_config_count,
    .config_key = s_config_key,
    .config_error = s_config_error,
    .event_attr = s_event_attr,
    .event_json = s_event_json,
    .event_data_json = s_event_data_json,
    .event_msgpack = s_event_msgpack,
    .event_data_number = s_event_data_number,
    .event_data_text = s_event_data_text,
    .event_accepted_ms = s_event_accepted_ms,
    .event_retain = s_event_retain,
    .event_release = s_event_release,
    .attempt_number = s_attempt_number,
    .attempt_event = s_attempt_event,
    .attempt_retry_after = s_attempt_retry_after,
    .attempt_reason = s_attempt_reason,
    .attempt_complete = s_attempt_complete,
    .free = s_free,
    .now_ms = s_now_ms,
    .event_json_into = s_event_json_into,
    .figures = evb_figures_visit,
};

const evbus_host_t *evb_host_table(void)
{
    return &s_host;
}
