/* A fake host for plugin tests: the plugin under test runs against the
 * real host table, the real option schema and resolver, real events and
 * real attempt objects, but nothing runs on its own. There are no worker
 * threads, queues or retry timers: the test calls validate / init /
 * deliver / tick / reopen / shutdown itself, in the order it wants, and
 * then looks at what the plugin reported.
 *
 * What is real (core code, the same the broker runs):
 *  - the host table: a copy of *evb_host_table(), so config getters,
 *    config_error, event accessors, attempt_number/_event/_reason/
 *    _retry_after, declare_option, free and now_ms behave as in evbusd;
 *  - the plugin: an evb_plugin_t around the descriptor (no dlopen), whose
 *    declare() fills a real schema (evb_schema_new);
 *  - the instance: evb_instance_new() on a hand-built evb_instance_conf_t
 *    (name "test", setting "instances[0]", file "fakehost.conf") whose
 *    `options` group is parsed by libconfig from the text the test gives;
 *  - events: msgpack envelopes decoded by evb_event_decode();
 *  - attempts: struct evbus_attempt objects with inst, ev and number set.
 *
 * What is overridden in the table, so the test can observe it:
 *  - attempt_complete: records the outcome (result, reason, retry-after,
 *    event id and type) instead of scheduling a retry or dead-lettering;
 *  - log / vlog: captured (every level) into a searchable buffer, together
 *    with every line the core logs meanwhile (config errors from the
 *    schema resolver and config_error() included);
 *  - instance_disable: records the reason (then disables the real
 *    instance, which logs it).
 *
 * Contract checks: the fake host counts "violations" of the plugin ABI it
 * can see — completing an attempt it does not hold (twice, or after
 * deliver() returned its outcome), an outcome that is not OK / RETRY /
 * DROP / BROKEN, attempts still held after shutdown() returned — and logs
 * each as "fakehost: VIOLATION: ...". Tests should assert
 * fakehost_violations(fh) == 0.
 *
 * Threads: outcomes, the log and the violation count are guarded by a
 * mutex, so a plugin may complete attempts and log from threads of its
 * own; fakehost_wait_outcomes() waits for them. Everything else is meant
 * for the test's thread. While a fake host exists the core logs into it,
 * at DEBUG level (evb_log_set_fd/level are process-wide; destroy sets them
 * back to fd 2 and the previous level): keep one fake host at a time per
 * test, and destroy it at the end of the test. Set FAKEHOST_LOG=1 in the
 * environment to echo captured lines to stderr. */
#ifndef FAKEHOST_H
#define FAKEHOST_H

#include <stddef.h>
#include <stdint.h>

#include <evbus/plugin.h>

typedef struct fakehost fakehost_t;

/* One reported outcome: deliver()'s own return, or attempt_complete(). */
typedef struct fakehost_outcome {
    int result; /* EVBUS_OK, RETRY, DROP or BROKEN */
    int async;  /* 1: reported with attempt_complete() after PENDING */
    int number; /* the attempt's number (1 = first) */
    int64_t retry_after_ms; /* attempt_retry_after(), 0 when none */
    char reason[1024];      /* attempt_reason(), "" when none */
    char event_id[257];
    char type[256];
} fakehost_outcome_t;

/* --------------------------------------------------------------- set up */

/* A fake host for `desc`, with the instance's options given as the body
 * of an `options` group in libconfig syntax, e.g.
 *     "path = \"/tmp/x/events.jsonl\";\nrotate_size = \"1K\";"
 * (line 1 of the text is line 1 of "fakehost.conf"), or NULL for an
 * instance without an options block. Runs desc->declare() against a real
 * schema and resolves the options. When the options are refused (syntax,
 * unknown key, wrong type, missing required option ...) the fake host is
 * still returned, with the errors in its log, fakehost_config_errors() > 0
 * and fakehost_instance() NULL. Returns NULL only when declare() fails or
 * memory runs out. */
fakehost_t *fakehost_new(const evbus_plugin_t *desc, const char *options);
/* Shuts the plugin down if the test did not, frees attempts still held
 * (without an outcome), releases every event, restores the core log. */
void fakehost_destroy(fakehost_t **self);

/* The (overridden) host table the plugin receives. */
const evbus_host_t *fakehost_host(fakehost_t *fh);
/* The instance, or NULL when its options were refused. */
evbus_instance_t *fakehost_instance(fakehost_t *fh);
/* What the plugin's init() stored, NULL before init. */
void *fakehost_userdata(fakehost_t *fh);
/* Config problems reported since fakehost_new(): by the schema resolver
 * and by the plugin's config_error() calls. */
int fakehost_config_errors(fakehost_t *fh);

/* ---------------------------------------------------- plugin functions */

/* The plugin's validate() (0 when it has none); -1 as well when the
 * options were already refused. */
int fakehost_validate(fakehost_t *fh);
/* The plugin's init(); -1 when it fails or there is no instance. */
int fakehost_init(fakehost_t *fh);
/* validate, then init: what evbusd does at start-up. 0 or -1. */
int fakehost_start(fakehost_t *fh);

/* deliver() for `ev` with a fresh attempt numbered 1 (or `number`).
 * Returns what deliver() returned (-1, a violation, when called before
 * init or after shutdown). A synchronous outcome is recorded like
 * a completed one (async = 0); with EVBUS_PENDING the attempt is held
 * until the plugin calls attempt_complete(). */
int fakehost_deliver(fakehost_t *fh, const evbus_event_t *ev);
int fakehost_deliver_attempt(fakehost_t *fh, const evbus_event_t *ev,
                             int number);
/* tick() / reopen() when the plugin has them. */
void fakehost_tick(fakehost_t *fh);
void fakehost_reopen(fakehost_t *fh);
/* shutdown() (once; later calls do nothing). Attempts still pending
 * afterwards are violations. */
void fakehost_shutdown(fakehost_t *fh);

/* --------------------------------------------------------------- events */

/* A real event of `type` with `data_json` (any JSON value, or NULL for no
 * data) and further string attributes as name, value pairs ending with
 * NULL: fakehost_event(fh, "task.failed", "{\"exit_code\":2}", "project",
 * "alpha", "id", "evt-1", NULL). id, time and specversion are filled as
 * the broker fills them. The fake host owns the event (released at
 * destroy). NULL, with the reason logged, when it does not decode. */
const evbus_event_t *fakehost_event(fakehost_t *fh, const char *type,
                                    const char *data_json, ...);

/* ------------------------------------------------------------- outcomes */

/* Attempts deliver() left PENDING and the plugin has not completed. */
size_t fakehost_pending(fakehost_t *fh);
/* Outcomes recorded so far, in the order they were reported. */
size_t fakehost_outcome_count(fakehost_t *fh);
/* Copy outcome i into *out. 0, or -1 when there is no such outcome. */
int fakehost_outcome(fakehost_t *fh, size_t i, fakehost_outcome_t *out);
/* How many outcomes have this result (EVBUS_OK ...). */
size_t fakehost_count(fakehost_t *fh, int result);
/* The reason of the last outcome ("" when none), copied into a buffer of
 * the fake host's, valid until the next call. */
const char *fakehost_last_reason(fakehost_t *fh);
/* Forget the outcomes recorded so far (counts start again at 0). */
void fakehost_clear_outcomes(fakehost_t *fh);
/* Wait until at least n outcomes are recorded, for plugins that complete
 * from their own threads. 0, or -1 on timeout. */
int fakehost_wait_outcomes(fakehost_t *fh, size_t n, int timeout_ms);
/* Called inside attempt_complete() (and for synchronous outcomes), before
 * the outcome is recorded and the attempt freed: lets a test check the
 * world at the moment the plugin reports, e.g. that the bytes are already
 * in the file. Runs on the reporting thread, with no fake host lock held.
 * NULL removes it. */
typedef void (*fakehost_hook_fn)(void *arg, const fakehost_outcome_t *o);
void fakehost_set_complete_hook(fakehost_t *fh, fakehost_hook_fn hook,
                                void *arg);

/* ------------------------------------------------------- log and state */

/* 1 when some captured log line contains `needle`. */
int fakehost_log_contains(fakehost_t *fh, const char *needle);
/* How many captured lines contain `needle`. */
size_t fakehost_log_count(fakehost_t *fh, const char *needle);
/* Everything captured, one line per record:
 *   "INFO  [test] message" for the plugin's lines,
 *   the core's own format for the core's. Valid until the next call. */
const char *fakehost_log_text(fakehost_t *fh);
void fakehost_log_clear(fakehost_t *fh);

/* Whether the instance was disabled, by instance_disable() or by a BROKEN
 * outcome (as evbusd does), and with what reason (NULL when it was not). */
int fakehost_disabled(fakehost_t *fh);
const char *fakehost_disabled_reason(fakehost_t *fh);

/* ABI contract breaches seen (see above). */
size_t fakehost_violations(fakehost_t *fh);

#endif
