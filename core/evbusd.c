/* evbusd: the evbus broker. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <zmq.h>

#include "bus.h"
#include "clock.h"
#include "commit.h"
#include "config.h"
#include "cursors.h"
#include "dedupe.h"
#include "figures.h"
#include "instance.h"
#include "journal.h"
#include "loader.h"
#include "log.h"
#include "router.h"
#include "stats.h"
#include "watch.h"

#ifndef EVBUS_DEFAULT_CONFIG
#define EVBUS_DEFAULT_CONFIG "/etc/evbus/evbus.conf"
#endif

static int s_signal_pipe[2] = {-1, -1};

static void s_on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(s_signal_pipe[1], &b, 1) < 0) {
        /* the pipe is full: a signal is already pending */
    }
    errno = saved;
}

static int s_signals(void)
{
    if (pipe2(s_signal_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "Usage: evbusd [-c FILE] [--check-config] [--version] [--help]\n"
            "\n"
            "The evbus event bus broker: accepts lifecycle events over "
            "ZeroMQ and\n"
            "delivers them to plugin instances (see evbus.conf).\n"
            "\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --check-config  check the configuration, load every "
            "plugin and\n"
            "                      validate its options, then exit: 0 when "
            "valid,\n"
            "                      1 with every problem listed as "
            "FILE:LINE: SETTING\n"
            "  -V, --version       print the version and plugin ABI, then "
            "exit\n"
            "  -h, --help          print this help, then exit\n"
            "\n"
            "Signals: SIGTERM/SIGINT drain and stop; SIGHUP reopens plugin "
            "files.\n"
            "Environment: EVBUS_PLUGIN_PATH (':'-separated plugin "
            "directories)\n",
            EVBUS_DEFAULT_CONFIG);
}

typedef struct {
    evb_plugin_t **plugins;
    size_t n_plugins;
    evb_instance_t **instances;
    size_t n_instances;
} s_state_t;

/* Load each plugin once, create every instance, validate its options.
 * Returns 0, or -1 after every problem has been reported. */
static int s_prepare(const evb_config_t *cfg, s_state_t *st)
{
    int failed = 0;
    const char *search = evb_loader_search_path(cfg->plugin_dir);
    st->plugins = calloc(cfg->n_instances + 1, sizeof *st->plugins);
    st->instances = calloc(cfg->n_instances + 1, sizeof *st->instances);
    if (!st->plugins || !st->instances)
        return -1;
    for (size_t i = 0; i < cfg->n_instances; i++) {
        const evb_instance_conf_t *ic = &cfg->instances[i];
        if (!ic->name || !ic->plugin) {
            failed = 1; /* already reported */
            continue;
        }
        evb_plugin_t *pl = NULL;
        for (size_t k = 0; k < st->n_plugins && !pl; k++)
            if (strcmp(st->plugins[k]->ref, ic->plugin) == 0)
                pl = st->plugins[k];
        if (!pl) {
            char err[1024];
            pl = evb_plugin_load(ic->plugin, search, EVB_HOST_ABI, err,
                                 sizeof err);
            if (!pl) {
                evb_config_report(ic->file, ic->line, ic->setting,
                                  "instance \"%s\": %s", ic->name, err);
                failed = 1;
                continue;
            }
            st->plugins[st->n_plugins++] = pl;
        }
        evb_instance_t *inst =
            evb_instance_new(ic, pl, ic->file, cfg->dead_letter_dir);
        if (!inst) {
            failed = 1;
            continue;
        }
        st->instances[st->n_instances++] = inst;
        if (evb_instance_validate(inst) < 0)
            failed = 1;
    }
    return failed ? -1 : 0;
}

static void s_release(s_state_t *st)
{
    for (size_t i = 0; i < st->n_instances; i++)
        evb_instance_destroy(&st->instances[i]);
    for (size_t i = 0; i < st->n_plugins; i++)
        evb_plugin_unload(&st->plugins[i]);
    free(st->instances);
    free(st->plugins);
    memset(st, 0, sizeof *st);
}

static void s_print_check(const evb_config_t *cfg, const s_state_t *st)
{
    printf("%s: configuration OK\n", cfg->path);
    printf("ingress.pub = \"%s\"\ningress.ack = \"%s\"\negress.pub = \"%s\"\n",
           cfg->ingress_pub, cfg->ingress_ack, cfg->egress_pub);
    printf("dead_letter_dir = \"%s\"\n", cfg->dead_letter_dir);
    printf("journal.dir = \"%s\", segment_size %lld, commit_interval "
           "%lldms, commit_batch %d, sync_interval %lldms, max_size %lld, "
           "max_age %lldms, dedupe_window %lldms, dedupe_max_ids %d\n",
           cfg->journal_dir, (long long)cfg->journal_segment_size,
           (long long)cfg->journal_commit_interval_ms,
           cfg->journal_commit_batch, (long long)cfg->journal_sync_interval_ms,
           (long long)cfg->journal_max_size, (long long)cfg->journal_max_age_ms,
           (long long)cfg->dedupe_window_ms, cfg->dedupe_max_ids);
    printf("control.endpoint = \"%s\"\n", cfg->control_endpoint);
    for (size_t i = 0; i < st->n_instances; i++) {
        const evb_instance_t *inst = st->instances[i];
        const evb_instance_conf_t *ic = inst->conf;
        printf("instance \"%s\": plugin %s %s (%s), topics", ic->name,
               inst->plugin->desc.name,
               inst->plugin->desc.version ? inst->plugin->desc.version : "",
               inst->plugin->path);
        for (size_t k = 0; k < ic->sub.n_patterns; k++)
            printf(" %s", ic->sub.patterns[k]);
        printf(", queue_size %d, workers %d, ordering %s, start_at %s",
               ic->queue_size, inst->workers,
               inst->ordered ? "accepted" : "none",
               ic->start_oldest ? "oldest" : "end");
        if (ic->rename_from)
            printf(", rename_from %s", ic->rename_from);
        printf("\n");
        char *dump = evb_options_dump(&inst->options);
        if (dump) {
            for (char *line = strtok(dump, "\n"); line;
                 line = strtok(NULL, "\n"))
                printf("  options.%s\n", line);
            free(dump);
        }
    }
}

static void s_log_totals(const s_state_t *st)
{
    evb_ingress_totals_t pub, ack;
    evb_stats_ingress_totals(EVB_INGRESS_PUB, &pub);
    evb_stats_ingress_totals(EVB_INGRESS_ACK, &ack);
    uint64_t acc = pub.accepted + ack.accepted;
    uint64_t rej = pub.rejected + ack.rejected;
    evb_info("totals: %llu accepted, %llu rejected, %llu re-published, "
             "%llu egress drops",
             (unsigned long long)acc, (unsigned long long)rej,
             (unsigned long long)evb_read(&evb_stats.egress_published),
             (unsigned long long)evb_read(&evb_stats.egress_dropped));
    for (size_t i = 0; i < st->n_instances; i++) {
        evb_instance_stats_t s;
        evb_instance_get_stats(st->instances[i], &s);
        evb_log(EVBUS_LOG_INFO, st->instances[i]->name,
                "totals: %llu delivered, %llu retried, %llu dead-lettered "
                "(%llu on overflow)",
                (unsigned long long)s.delivered, (unsigned long long)s.retried,
                (unsigned long long)s.dead_lettered,
                (unsigned long long)s.overflow);
    }
}

/* Open the journal and say what recovery found. */
static evb_journal_t *s_open_journal(const evb_config_t *cfg)
{
    evb_journal_config_t jc = {cfg->journal_dir, cfg->journal_segment_size};
    evb_journal_recovery_t rec;
    char err[512];
    evb_journal_t *j = evb_journal_open(&jc, &rec, err, sizeof err);
    if (!j) {
        evb_error("%s", err); /* "journal: ...", naming the path */
        return NULL;
    }
    if (rec.truncated_bytes || rec.skipped_bytes || rec.bad_segments)
        evb_warn("journal %s: recovered: %llu byte%s of a torn or corrupt "
                 "tail cut off, %llu corrupt byte%s skipped in %llu "
                 "segment%s: %s",
                 cfg->journal_dir, (unsigned long long)rec.truncated_bytes,
                 rec.truncated_bytes == 1 ? "" : "s",
                 (unsigned long long)rec.skipped_bytes,
                 rec.skipped_bytes == 1 ? "" : "s",
                 (unsigned long long)rec.bad_segments,
                 rec.bad_segments == 1 ? "" : "s", rec.detail);
    if (rec.lost_records)
        evb_error("journal %s: %llu record%s lost to damage in %llu "
                  "stretch%s (every intact record before and after is "
                  "kept); the first: %s",
                  cfg->journal_dir, (unsigned long long)rec.lost_records,
                  rec.lost_records == 1 ? "" : "s",
                  (unsigned long long)rec.lost_ranges,
                  rec.lost_ranges == 1 ? "" : "es", rec.lost_detail);
    atomic_store(&evb_stats.journal_lost, rec.lost_records);
    evb_info("journal %s: %llu record%s in %llu segment%s (seq %llu..%llu)",
             cfg->journal_dir, (unsigned long long)rec.records,
             rec.records == 1 ? "" : "s", (unsigned long long)rec.segments,
             rec.segments == 1 ? "" : "s", (unsigned long long)rec.first_seq,
             (unsigned long long)rec.last_seq);
    return j;
}

/* Every instance's cursor from the store: renamed instances first take
 * over their old cursors, then each resumes, then whatever else has a
 * cursor is an orphan that retention keeps records for. */
static int s_attach_cursors(const evb_config_t *cfg, s_state_t *st,
                            evb_router_t *router)
{
    char err[512];
    uint64_t end = evb_journal_written_seq(router->journal);
    router->cursors = evb_cursors_open(cfg->journal_dir,
                                       evb_journal_first_seq(router->journal),
                                       end, err, sizeof err);
    if (!router->cursors) {
        evb_error("%s", err);
        return -1;
    }
    for (size_t i = 0; i < st->n_instances; i++) {
        const evb_instance_conf_t *ic = st->instances[i]->conf;
        if (ic->rename_from &&
            evb_cursors_adopt(router->cursors, ic->rename_from, ic->name) < 0)
            return -1;
    }
    for (size_t i = 0; i < st->n_instances; i++)
        if (evb_instance_attach(st->instances[i], router->journal,
                                router->cursors) < 0)
            return -1;
    evb_cursors_find_orphans(router->cursors, end);
    return 0;
}

/* The previous run crashed (watch.h): say where, and once one event has
 * crashed it crash_limit times in a row, dead-letter it for its
 * instance instead of delivering it again. */
static void s_previous_crash(const evb_config_t *cfg, s_state_t *st)
{
    evb_crash_t cr;
    if (!evb_crash_previous(cfg->journal_dir, &cr))
        return;
    const char *sig = strsignal(cr.sig);
    if (!cr.instance[0] && cr.plugin[0]) {
        evb_error("the previous evbusd died of signal %d (%s) in the code of "
                  "plugin %s, on a thread of its own (not in a call from "
                  "evbusd)",
                  cr.sig, sig, cr.plugin);
        return;
    }
    if (!cr.instance[0]) {
        evb_error("the previous evbusd died of signal %d (%s), not in a "
                  "plugin call",
                  cr.sig, sig);
        return;
    }
    if (!cr.seq) {
        evb_error("the previous evbusd died of signal %d (%s) in plugin %s, "
                  "instance %s, in %s()",
                  cr.sig, sig, cr.plugin, cr.instance, cr.what);
        return;
    }
    evb_instance_t *inst = NULL;
    for (size_t i = 0; i < st->n_instances && !inst; i++)
        if (strcmp(st->instances[i]->name, cr.instance) == 0)
            inst = st->instances[i];
    int poison = inst && cr.count >= cfg->crash_limit;
    evb_error("the previous evbusd died of signal %d (%s) in plugin %s, "
              "instance %s, delivering event %s (seq %llu); %d crash%s in a "
              "row on this event: %s",
              cr.sig, sig, cr.plugin, cr.instance, cr.id,
              (unsigned long long)cr.seq, cr.count, cr.count == 1 ? "" : "es",
              poison ? "it is dead-lettered for that instance"
              : inst ? "it is delivered again (crash_limit decides how often)"
                     : "that instance is no longer configured");
    if (poison) {
        char why[400];
        snprintf(why, sizeof why,
                 "crashed the broker: signal %d (%s) in plugin %s, %d times "
                 "in a row",
                 cr.sig, sig, cr.plugin, cr.count);
        evb_instance_poison(inst, cr.seq, why);
    }
}

/* The ids accepted within the dedupe window, read back from the journal. */
static evb_dedupe_t *s_rebuild_dedupe(const evb_config_t *cfg, evb_journal_t *j)
{
    evb_dedupe_t *d =
        evb_dedupe_new(cfg->dedupe_window_ms, (size_t)cfg->dedupe_max_ids);
    if (!d) {
        evb_error("out of memory for the duplicate index");
        return NULL;
    }
    int64_t since = evb_now_ms() - cfg->dedupe_window_ms;
    evb_journal_reader_t *r =
        evb_journal_reader_new(j, evb_journal_first_seq(j));
    evb_record_t rec;
    char id[EVB_ID_MAX + 1];
    while (r && evb_journal_read(r, UINT64_MAX, &rec, NULL) == 1) {
        /* every event, not only acknowledged ones: the journal does not
         * say which were, and a few more ids cost nothing */
        if (rec.kind == EVB_REC_EVENT && rec.accepted_ms >= since &&
            evb_envelope_id(rec.data, rec.data_len, id) == 0)
            evb_dedupe_add(d, id, strlen(id), rec.seq, rec.accepted_ms);
    }
    evb_journal_reader_destroy(&r);
    if (evb_dedupe_count(d))
        evb_info("duplicate index: %zu ids accepted in the last %lld s",
                 evb_dedupe_count(d),
                 (long long)(cfg->dedupe_window_ms / 1000));
    return d;
}

int main(int argc, char **argv)
{
    const char *config_path = EVBUS_DEFAULT_CONFIG;
    int check_only = 0;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 'C':
            check_only = 1;
            break;
        case 'V':
            printf("evbusd %s (plugin ABI %d.%d)\n", EVBUS_VERSION,
                   EVBUS_ABI_MAJOR, EVBUS_ABI_MINOR);
            return 0;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "evbusd: unexpected argument \"%s\"\n", argv[optind]);
        s_usage(stderr);
        return 2;
    }

    /* Events are allocated on the main thread and freed on workers; under
     * a burst the heap grows by hundreds of MiB and shrinks again. Keep
     * freed memory instead of trimming it after every burst and faulting
     * it back in on the next. */
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, 16 << 20);

    /* before any thread: plugins may use libcurl (docs/plugin-abi.md) */
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int errors = 0;
    evb_config_t *cfg = evb_config_load_all(config_path, &errors);
    if (!cfg) {
        fprintf(stderr, "evbusd: %s: %d configuration error%s\n", config_path,
                errors, errors == 1 ? "" : "s");
        curl_global_cleanup();
        return 1;
    }
    if (!errors)
        evb_log_set_level(cfg->log_level);

    /* plugins and their options are checked even when host settings were
     * wrong, so one run lists every problem */
    s_state_t st = {0};
    int rc = 0;
    if (s_prepare(cfg, &st) < 0 || errors) {
        int n = evb_config_error_count();
        fprintf(stderr, "evbusd: %s: %d configuration error%s\n", cfg->path, n,
                n == 1 ? "" : "s");
        rc = 1;
        goto out;
    }
    if (check_only) {
        s_print_check(cfg, &st);
        goto out;
    }

    if (s_signals() < 0) {
        evb_error("cannot set up signal handling: %s", strerror(errno));
        rc = 1;
        goto out;
    }
    /* the journal: recovered, then every instance resumes from its
     * cursor over it, and recent ids are known again */
    evb_router_t router = {0};
    router.instances = st.instances;
    router.n_instances = st.n_instances;
    router.max_bytes = cfg->journal_max_size;
    router.max_age_ms = cfg->journal_max_age_ms;
    router.healthy = 1;
    router.journal = s_open_journal(cfg);
    if (!router.journal) {
        rc = 1;
        goto out;
    }
    if (s_attach_cursors(cfg, &st, &router) < 0) {
        rc = 1;
        goto out_journal;
    }
    s_previous_crash(cfg, &st);
    if (evb_crash_arm(cfg->journal_dir) < 0)
        evb_warn("cannot set up crash notes in %s: %s", cfg->journal_dir,
                 strerror(errno));
    evb_watch_slow_ms = cfg->slow_call_ms;
    if (evb_watch_start(st.instances, st.n_instances) < 0) {
        evb_error("cannot start the plugin watch thread");
        rc = 1;
        goto out_journal;
    }
    if (cfg->dedupe_window_ms > 0 &&
        !(router.dedupe = s_rebuild_dedupe(cfg, router.journal))) {
        rc = 1;
        goto out_journal;
    }
    router.commit = evb_commit_start(
        router.journal, cfg->journal_commit_interval_ms,
        cfg->journal_commit_batch, cfg->journal_sync_interval_ms);
    if (!router.commit) {
        evb_error("cannot start the journal's sync thread: %s",
                  strerror(errno));
        rc = 1;
        goto out_journal;
    }
    evb_stats_set_max_types((size_t)cfg->max_types);
    evb_bus_t *bus = evb_bus_new(cfg, &router);
    if (!bus) {
        rc = 1;
        goto out_journal;
    }
    evb_figures_attach(&router, cfg);
    for (size_t i = 0; i < st.n_instances; i++) {
        if (evb_instance_start(st.instances[i]) < 0) {
            rc = 1;
            /* the ones started stop cleanly (a metrics endpoint closes) */
            for (size_t k = 0; k < i; k++)
                evb_instance_stop(st.instances[k], evb_mono_ms());
            evb_figures_detach();
            evb_bus_destroy(&bus);
            goto out_journal;
        }
    }
    evb_figures_set_ready(1);
    evb_info("evbusd %s ready: ingress.pub %s, ingress.ack %s, egress.pub "
             "%s; %zu instance%s",
             EVBUS_VERSION, *cfg->ingress_pub ? cfg->ingress_pub : "(off)",
             *cfg->ingress_ack ? cfg->ingress_ack : "(off)",
             *cfg->egress_pub ? cfg->egress_pub : "(off)", st.n_instances,
             st.n_instances == 1 ? "" : "s");

    evb_event_reclaim_begin(); /* events are freed on this thread */
    int sig = evb_bus_run(bus, s_signal_pipe[0]);
    evb_info("%s: stopping ingress, draining for up to %lld ms", strsignal(sig),
             (long long)cfg->shutdown_timeout_ms);
    evb_figures_set_ready(0);
    evb_bus_stop_ingress(bus);
    int64_t deadline = evb_mono_ms() + cfg->shutdown_timeout_ms;
    /* a hard deadline: a plugin call that never returns cannot hold the
     * exit (watch.h) */
    evb_watch_deadline(deadline);
    /* every instance drains in parallel: ask all first, then wait */
    for (size_t i = 0; i < st.n_instances; i++)
        evb_instance_begin_drain(st.instances[i], deadline);
    for (size_t i = 0; i < st.n_instances; i++)
        evb_instance_stop(st.instances[i], deadline);
    evb_watch_stop();
    evb_figures_detach();
    s_log_totals(&st);
    evb_bus_destroy(&bus);
    evb_event_reclaim_end(); /* workers and ZeroMQ's threads are gone */

out_journal:
    evb_watch_stop(); /* (when started: on the error paths) */
    /* instances hold journal readers: they go first */
    s_release(&st);
    evb_commit_stop(&router.commit);
    evb_dedupe_destroy(&router.dedupe);
    evb_cursors_close(&router.cursors);
    evb_journal_close(&router.journal);
    evb_crash_disarm(cfg->journal_dir);
    if (rc == 0)
        evb_info("stopped");

out:
    s_release(&st);
    evb_config_destroy(&cfg);
    curl_global_cleanup();
    return rc;
}
