/* The broker's configuration file (libconfig syntax; see docs/configuration.md
 * and etc/evbus.conf). Loading checks every host-owned key; each problem is
 * reported as "FILE:LINE: SETTING: what is wrong" and loading goes on so
 * that one run lists them all. Plugin `options` blocks are checked later
 * against the plugin's declared schema (schema.h). */
#ifndef EVB_CONFIG_H
#define EVB_CONFIG_H

#include <libconfig.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "retry.h"
#include "topic.h"

typedef struct evb_instance_conf {
    char *name;       /* unique, [A-Za-z0-9_.-]+ */
    char *plugin;     /* plugin name ("file") or a path to a .so */
    const char *file; /* config file and line of the instance's group */
    int line;
    char *setting;     /* "instances[2]" — for messages */
    evb_sub_t sub;     /* topics (default ["**"]) and filter */
    int queue_size;    /* bounded queue, events (default 10000) */
    int workers;       /* worker threads (default 1) */
    int max_in_flight; /* 0 = plugin's default */
    int ordered;       /* ordering: 1 "accepted", 0 "none", -1 not set:
                          "accepted" unless the plugin is
                          EVBUS_PLUGIN_UNORDERED */
    int start_oldest;  /* start_at: a new instance (no cursor yet) starts
                          at the oldest record (1) or the end (0) */
    char *rename_from; /* take over this gone instance's cursor, or NULL */
    evb_retry_policy_t retry;
    config_setting_t *options; /* the `options` group or NULL; owned by cfg */
} evb_instance_conf_t;

typedef struct evb_config {
    char *path; /* as given */
    int log_level;
    char *plugin_dir;        /* NULL = EVBUS_PLUGIN_PATH or the built-in dir */
    char *ingress_pub;       /* SUB bind endpoint, "" = off */
    char *ingress_ack;       /* ROUTER bind endpoint, "" = off */
    char *egress_pub;        /* XPUB bind endpoint, "" = off */
    int ingress_rcvhwm;      /* per publisher connection, messages */
    int egress_sndhwm;       /* per egress subscriber, messages */
    int egress_skip_on_slow; /* 1 (default): "skip" (XPUB_NODROP, every drop
                                counted, all subscribers of the topic miss
                                it); 0: "drop" (ZeroMQ drops for the slow
                                subscriber only, uncounted) */
    int ack_sndhwm;          /* replies queued per acked publisher */
    int max_types;           /* event types counted separately (stats.h) */
    evb_limits_t limits;
    char *dead_letter_dir;
    /* the durable journal (docs/durability.md) */
    char *journal_dir;
    int64_t journal_segment_size;       /* bytes */
    int64_t journal_commit_interval_ms; /* an ack may wait this long for
                                           others to share its sync */
    int journal_commit_batch;           /* ...or until this many wait */
    int64_t journal_sync_interval_ms;   /* fire-and-forget synced at least
                                           this often (0 = with acks only) */
    int64_t journal_max_size;           /* 0 = no limit */
    int64_t journal_max_age_ms;         /* 0 = no limit */
    int64_t dedupe_window_ms;           /* 0 = no duplicate suppression */
    int dedupe_max_ids;
    char *control_endpoint; /* REP socket for evbusctl, "" off */
    int64_t shutdown_timeout_ms;
    int64_t slow_call_ms; /* a plugin call this long is slow; 0 = never */
    int crash_limit;      /* crashes in a row on one event: dead-lettered */
    evb_instance_conf_t *instances;
    size_t n_instances;
    config_t cfg; /* kept alive: options settings point into it */
} evb_config_t;

/* Load and check `path`. Returns the config, or NULL after reporting every
 * problem with evb_config_report(); *errors gets how many. */
evb_config_t *evb_config_load(const char *path, int *errors);
/* The same, but a file that parsed is returned even when some settings were
 * wrong (*errors > 0), so the caller can go on checking plugins and report
 * every problem in one run; it must not start anything from such a config.
 * Instances whose name or plugin was invalid have them NULL. */
evb_config_t *evb_config_load_all(const char *path, int *errors);
void evb_config_destroy(evb_config_t **self);

/* Report one config problem: logs
 *   ERROR config: FILE:LINE: SETTING: message
 * and counts it (see evb_config_error_count). `setting` may be NULL. */
void evb_config_report(const char *file, int line, const char *setting,
                       const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int evb_config_error_count(void);

/* Instance names: 1 to EVB_NAME_MAX of [A-Za-z0-9_.-] (they name cursor
 * files too). */
#define EVB_NAME_MAX 64
int evb_config_name_ok(const char *s, size_t n);

/* "10s" -> 10000 etc. Accepts ms, s, m, h, d; a bare number is ms.
 * Returns 0 or -1. */
int evb_parse_duration(const char *s, int64_t *ms);
/* "64K" -> 65536 etc. Accepts K, M, G (binary, optional trailing B or
 * iB); a bare number is bytes. Returns 0 or -1. */
int evb_parse_size(const char *s, int64_t *bytes);

/* A libconfig setting's path in our notation, "instances[0].retry.max_age",
 * into buf. */
const char *evb_setting_path(const config_setting_t *s, char *buf, size_t size);

#endif
