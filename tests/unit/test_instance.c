/* The delivery engine (core/instance.c): queues, workers, retries,
 * dead letters, overflow, drain. A scripted in-process plugin does what
 * each event's subject says:
 *   ok | fail:N (retry the first N attempts) | hint:MS (retry once, asking
 *   for MS) | drop | broken | block (wait until released) | pending (keep
 *   the attempt; the test completes it) | slow:MS (sleep, then ok) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "clock.h"
#include "hostapi.h"
#include "instance.h"
#include "testmain.h"

/* ------------------------------------------------------ scripted plugin */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int released;
    int delivers;
    int ticks;
    int reopens;
    int reopen_on_main;
    int64_t attempt_ms[16]; /* monotonic time of each attempt */
    int n_attempt_ms;
    evbus_attempt_t *pending[64];
    int n_pending;
} script_t;

static pthread_t s_main_thread;
static const evbus_host_t *s_host;

static int s_declare(evbus_schema_t *schema, const evbus_host_t *host)
{
    (void)schema;
    s_host = host;
    return 0;
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    (void)inst;
    (void)host;
    script_t *sc = calloc(1, sizeof *sc);
    pthread_mutex_init(&sc->lock, NULL);
    pthread_cond_init(&sc->cond, NULL);
    *userdata = sc;
    return 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *att)
{
    script_t *sc = userdata;
    const char *what = s_host->event_attr(ev, "subject");
    int n = s_host->attempt_number(att);
    pthread_mutex_lock(&sc->lock);
    sc->delivers++;
    if (sc->n_attempt_ms < 16)
        sc->attempt_ms[sc->n_attempt_ms++] = evb_mono_ms();
    pthread_mutex_unlock(&sc->lock);

    if (strncmp(what, "fail:", 5) == 0 && n <= atoi(what + 5)) {
        s_host->attempt_reason(att, "scripted failure %d", n);
        return EVBUS_RETRY;
    }
    if (strncmp(what, "hint:", 5) == 0 && n == 1) {
        s_host->attempt_retry_after(att, atoi(what + 5));
        s_host->attempt_reason(att, "rate limited");
        return EVBUS_RETRY;
    }
    if (strcmp(what, "drop") == 0) {
        s_host->attempt_reason(att, "scripted drop");
        return EVBUS_DROP;
    }
    if (strcmp(what, "broken") == 0) {
        s_host->attempt_reason(att, "destination deleted");
        return EVBUS_BROKEN;
    }
    if (strcmp(what, "block") == 0) {
        pthread_mutex_lock(&sc->lock);
        while (!sc->released)
            pthread_cond_wait(&sc->cond, &sc->lock);
        pthread_mutex_unlock(&sc->lock);
    }
    if (strcmp(what, "pending") == 0) {
        pthread_mutex_lock(&sc->lock);
        sc->pending[sc->n_pending++] = att;
        pthread_mutex_unlock(&sc->lock);
        return EVBUS_PENDING;
    }
    if (strncmp(what, "slow:", 5) == 0)
        usleep((useconds_t)atoi(what + 5) * 1000);
    return EVBUS_OK;
}

static void s_tick(void *userdata)
{
    script_t *sc = userdata;
    pthread_mutex_lock(&sc->lock);
    sc->ticks++;
    pthread_mutex_unlock(&sc->lock);
}

static void s_reopen(void *userdata)
{
    script_t *sc = userdata;
    pthread_mutex_lock(&sc->lock);
    sc->reopens++;
    if (pthread_equal(pthread_self(), s_main_thread))
        sc->reopen_on_main = 1;
    pthread_mutex_unlock(&sc->lock);
}

static void s_release(script_t *sc)
{
    pthread_mutex_lock(&sc->lock);
    sc->released = 1;
    pthread_cond_broadcast(&sc->cond);
    pthread_mutex_unlock(&sc->lock);
}

static void s_shutdown(void *userdata)
{
    script_t *sc = userdata;
    s_release(sc);
    /* complete what we still hold, as the ABI requires */
    for (int i = 0; i < sc->n_pending; i++)
        s_host->attempt_complete(sc->pending[i], EVBUS_OK);
    pthread_mutex_destroy(&sc->lock);
    pthread_cond_destroy(&sc->cond);
    free(sc);
}

static const evbus_plugin_t s_desc = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_0,
    .max_in_flight = 8,
    .name = "scripted",
    .version = "test",
    .declare = s_declare,
    .init = s_init,
    .deliver = s_deliver,
    .tick = s_tick,
    .reopen = s_reopen,
    .shutdown = s_shutdown,
};

/* ------------------------------------------------------------- fixtures */

typedef struct {
    char dir[64];
    evb_plugin_t plugin;
    evb_instance_conf_t conf;
    evb_instance_t *inst;
} fixture_t;

static char *s_all[] = {"**"};

static void fx_open(fixture_t *fx, const char *name, int queue_size,
                    evb_retry_policy_t retry)
{
    memset(fx, 0, sizeof *fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/evb-inst-XXXXXX");
    CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(fx->dir));
    fx->plugin.ref = "scripted";
    fx->plugin.path = "(in process)";
    fx->plugin.desc = s_desc;
    fx->plugin.schema = evb_schema_new("scripted");
    CU_ASSERT_EQUAL_FATAL(s_desc.declare(fx->plugin.schema, evb_host_table()),
                          0);
    fx->conf.name = (char *)name;
    fx->conf.plugin = "scripted";
    fx->conf.file = "test.conf";
    fx->conf.line = 1;
    fx->conf.setting = "instances[0]";
    fx->conf.queue_size = queue_size;
    fx->conf.workers = 1;
    fx->conf.retry = retry;
    fx->conf.sub.patterns = s_all;
    fx->conf.sub.n_patterns = 1;
    fx->inst = evb_instance_new(&fx->conf, &fx->plugin, "test.conf", fx->dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fx->inst);
    CU_ASSERT_EQUAL_FATAL(evb_instance_start(fx->inst), 0);
}

static script_t *fx_script(fixture_t *fx)
{
    return fx->inst->userdata;
}

/* Read the dead-letter file into a malloc'd string ("" when none). */
static char *fx_dead_letters(fixture_t *fx, int *lines)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s.jsonl", fx->dir, fx->conf.name);
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 1 << 20);
    size_t n = f ? fread(text, 1, (1 << 20) - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    *lines = 0;
    for (size_t i = 0; i < n; i++)
        *lines += text[i] == '\n';
    return text;
}

static void fx_close(fixture_t *fx)
{
    evb_instance_destroy(&fx->inst);
    evb_schema_destroy(&fx->plugin.schema);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

static int s_seq;

static evb_event_t *s_event(const char *subject)
{
    char id[32];
    snprintf(id, sizeof id, "ev-%d", ++s_seq);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    const char *kv[] = {"type", "task.failed", "id", id, "subject", subject};
    for (int i = 0; i < 6; i++)
        msgpack_pack_str_with_body(&pk, kv[i], strlen(kv[i]));
    evb_limits_t lim = EVB_LIMITS_DEFAULT;
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = evb_event_decode("task.failed", 11, sb.data, sb.size,
                                       &lim, evb_now_ms(), &why, detail,
                                       sizeof detail);
    msgpack_sbuffer_destroy(&sb);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    return ev;
}

static void s_send(evb_instance_t *inst, const char *subject)
{
    evb_event_t *ev = s_event(subject);
    evb_instance_enqueue(inst, ev);
    evb_event_release(ev);
}

/* Wait (up to 5 s) until the instance has settled `n` events. */
static void s_wait_settled(evb_instance_t *inst, uint64_t n)
{
    int64_t until = evb_mono_ms() + 5000;
    evb_instance_stats_t st;
    do {
        evb_instance_get_stats(inst, &st);
        if (st.delivered + st.dead_lettered >= n)
            return;
        usleep(2000);
    } while (evb_mono_ms() < until);
}

static const evb_retry_policy_t s_fast = {5, 5, 20, 60000};

/* ---------------------------------------------------------------- tests */

/* ordering not set in the config: "accepted", unless the plugin says its
 * deliveries are independent (EVBUS_PLUGIN_UNORDERED); a config that sets
 * it wins either way. */
static void test_ordering_defaults_from_the_plugin_flag(void)
{
    static const struct {
        unsigned flags;
        int configured, want;
    } cases[] = {{0, -1, 1},
                 {EVBUS_PLUGIN_UNORDERED, -1, 0},
                 {EVBUS_PLUGIN_UNORDERED, 1, 1},
                 {0, 0, 0}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture_t fx;
        memset(&fx, 0, sizeof fx);
        snprintf(fx.dir, sizeof fx.dir, "/tmp/evb-inst-XXXXXX");
        CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(fx.dir));
        fx.plugin.ref = "scripted";
        fx.plugin.path = "(in process)";
        fx.plugin.desc = s_desc;
        fx.plugin.desc.flags = cases[i].flags;
        fx.plugin.schema = evb_schema_new("scripted");
        CU_ASSERT_EQUAL_FATAL(
            s_desc.declare(fx.plugin.schema, evb_host_table()), 0);
        fx.conf.name = "ordering";
        fx.conf.plugin = "scripted";
        fx.conf.file = "test.conf";
        fx.conf.line = 1;
        fx.conf.queue_size = 10;
        fx.conf.workers = 1;
        fx.conf.retry = s_fast;
        fx.conf.ordered = cases[i].configured;
        fx.conf.sub.patterns = s_all;
        fx.conf.sub.n_patterns = 1;
        fx.inst = evb_instance_new(&fx.conf, &fx.plugin, "test.conf", fx.dir);
        CU_ASSERT_PTR_NOT_NULL_FATAL(fx.inst);
        CU_ASSERT_EQUAL(fx.inst->ordered, cases[i].want);
        fx_close(&fx);
    }
}

static void test_retry_then_success_delivers_once(void)
{
    fixture_t fx;
    fx_open(&fx, "retry", 100, s_fast);
    s_send(fx.inst, "fail:2");
    s_wait_settled(fx.inst, 1);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 1);
    CU_ASSERT_EQUAL(st.retried, 2);
    CU_ASSERT_EQUAL(st.dead_lettered, 0);
    CU_ASSERT_EQUAL(fx_script(&fx)->delivers, 3);
    fx_close(&fx);
}

static void test_retry_after_hint_delays_next_attempt(void)
{
    fixture_t fx;
    fx_open(&fx, "hint", 100, s_fast); /* backoff alone would be <= 5 ms */
    s_send(fx.inst, "hint:300");
    s_wait_settled(fx.inst, 1);
    script_t *sc = fx_script(&fx);
    CU_ASSERT_EQUAL_FATAL(sc->n_attempt_ms, 2);
    int64_t gap = sc->attempt_ms[1] - sc->attempt_ms[0];
    CU_ASSERT_TRUE(gap >= 295);
    CU_ASSERT_TRUE(gap < 2000);
    fx_close(&fx);
}

static void test_max_attempts_sends_event_to_dead_letter_file(void)
{
    fixture_t fx;
    evb_retry_policy_t p = {3, 1, 5, 60000};
    fx_open(&fx, "gives-up", 100, p);
    s_send(fx.inst, "fail:100");
    s_wait_settled(fx.inst, 1);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.dead_lettered, 1);
    CU_ASSERT_EQUAL(st.retried, 2);
    CU_ASSERT_EQUAL(fx_script(&fx)->delivers, 3);
    int lines;
    char *dl = fx_dead_letters(&fx, &lines);
    CU_ASSERT_EQUAL(lines, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "gave up after 3 attempts"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "scripted failure 3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "\"attempts\":3"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "\"instance\":\"gives-up\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "\"id\":\"ev-"));
    free(dl);
    fx_close(&fx);
}

static void test_max_age_sends_event_to_dead_letter_file(void)
{
    fixture_t fx;
    evb_retry_policy_t p = {100, 200, 200, 100}; /* next try past 100 ms */
    fx_open(&fx, "too-old", 100, p);
    s_send(fx.inst, "hint:150");
    s_wait_settled(fx.inst, 1);
    int lines;
    char *dl = fx_dead_letters(&fx, &lines);
    CU_ASSERT_EQUAL(lines, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "max_age"));
    CU_ASSERT_EQUAL(fx_script(&fx)->delivers, 1);
    free(dl);
    fx_close(&fx);
}

static void test_drop_is_dead_lettered_at_once_with_reason(void)
{
    fixture_t fx;
    fx_open(&fx, "drops", 100, s_fast);
    s_send(fx.inst, "drop");
    s_wait_settled(fx.inst, 1);
    CU_ASSERT_EQUAL(fx_script(&fx)->delivers, 1);
    int lines;
    char *dl = fx_dead_letters(&fx, &lines);
    CU_ASSERT_EQUAL(lines, 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "permanent failure: scripted drop"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "\"attempts\":1"));
    free(dl);
    fx_close(&fx);
}

static void test_broken_disables_the_instance(void)
{
    fixture_t fx;
    fx_open(&fx, "breaks", 100, s_fast);
    s_send(fx.inst, "broken");
    s_wait_settled(fx.inst, 1);
    s_send(fx.inst, "ok");
    s_send(fx.inst, "ok");
    s_wait_settled(fx.inst, 3);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 0);
    CU_ASSERT_EQUAL(st.dead_lettered, 3);
    CU_ASSERT_EQUAL(fx_script(&fx)->delivers, 1); /* never called again */
    int lines;
    char *dl = fx_dead_letters(&fx, &lines);
    CU_ASSERT_EQUAL(lines, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "instance broken: destination deleted"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "instance disabled: destination "
                                      "deleted"));
    free(dl);
    fx_close(&fx);
}

static void test_full_queue_dead_letters_without_blocking(void)
{
    fixture_t fx;
    fx_open(&fx, "overflows", 4, s_fast);
    int64_t t0 = evb_mono_ms();
    for (int i = 0; i < 10; i++)
        s_send(fx.inst, "block");
    int64_t took = evb_mono_ms() - t0;
    CU_ASSERT_TRUE(took < 1000); /* enqueue never waits for the plugin */
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.overflow, 6);
    CU_ASSERT_EQUAL(st.dead_lettered, 6);
    int lines;
    char *dl = fx_dead_letters(&fx, &lines);
    CU_ASSERT_EQUAL(lines, 6);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "queue full (queue_size 4)"));
    free(dl);
    s_release(fx_script(&fx));
    s_wait_settled(fx.inst, 10);
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 4);
    fx_close(&fx);
}

static void test_slow_instance_does_not_delay_another(void)
{
    fixture_t slow, fast;
    fx_open(&slow, "slow", 1000, s_fast);
    fx_open(&fast, "fast", 1000, s_fast);
    for (int i = 0; i < 100; i++) {
        s_send(slow.inst, "block");
        s_send(fast.inst, "ok");
    }
    s_wait_settled(fast.inst, 100);
    evb_instance_stats_t a, b;
    evb_instance_get_stats(slow.inst, &a);
    evb_instance_get_stats(fast.inst, &b);
    CU_ASSERT_EQUAL(b.delivered, 100);
    CU_ASSERT_EQUAL(a.delivered, 0); /* still stuck on its first event */
    s_release(fx_script(&slow));
    fx_close(&slow);
    fx_close(&fast);
}

typedef struct {
    script_t *sc;
    int result;
} completer_t;

static void *s_complete_later(void *arg)
{
    completer_t *c = arg;
    usleep(50000);
    pthread_mutex_lock(&c->sc->lock);
    evbus_attempt_t *att = c->sc->pending[--c->sc->n_pending];
    pthread_mutex_unlock(&c->sc->lock);
    s_host->attempt_complete(att, c->result);
    return NULL;
}

static void test_pending_attempt_completed_from_another_thread(void)
{
    fixture_t fx;
    fx_open(&fx, "async", 100, s_fast);
    s_send(fx.inst, "pending");
    usleep(20000);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.in_flight, 1);
    CU_ASSERT_EQUAL(st.delivered, 0);
    completer_t c = {fx_script(&fx), EVBUS_OK};
    pthread_t t;
    pthread_create(&t, NULL, s_complete_later, &c);
    pthread_join(t, NULL);
    s_wait_settled(fx.inst, 1);
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 1);
    CU_ASSERT_EQUAL(st.in_flight, 0);
    fx_close(&fx);
}

static void test_tick_runs_when_the_worker_goes_idle(void)
{
    fixture_t fx;
    fx_open(&fx, "ticks", 100, s_fast);
    usleep(20000);
    int before = fx_script(&fx)->ticks;
    s_send(fx.inst, "ok");
    s_wait_settled(fx.inst, 1);
    usleep(20000);
    CU_ASSERT_TRUE(fx_script(&fx)->ticks > before);
    fx_close(&fx);
}

static void test_reopen_runs_on_a_worker_between_deliveries(void)
{
    fixture_t fx;
    fx_open(&fx, "reopens", 100, s_fast);
    evb_instance_request_reopen(fx.inst);
    int64_t until = evb_mono_ms() + 2000;
    while (fx_script(&fx)->reopens == 0 && evb_mono_ms() < until)
        usleep(1000);
    CU_ASSERT_EQUAL(fx_script(&fx)->reopens, 1);
    CU_ASSERT_EQUAL(fx_script(&fx)->reopen_on_main, 0);
    fx_close(&fx);
}

static void test_drain_delivers_what_is_queued_before_the_deadline(void)
{
    fixture_t fx;
    fx_open(&fx, "drains", 1000, s_fast);
    for (int i = 0; i < 50; i++)
        s_send(fx.inst, "slow:2");
    evb_instance_stop(fx.inst, evb_mono_ms() + 10000);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 50);
    CU_ASSERT_EQUAL(st.dead_lettered, 0);
    fx_close(&fx);
}

static void test_drain_deadline_dead_letters_the_rest(void)
{
    fixture_t fx;
    fx_open(&fx, "late", 1000, s_fast);
    for (int i = 0; i < 40; i++)
        s_send(fx.inst, "slow:20");
    s_send(fx.inst, "fail:100"); /* waiting on a retry at the deadline */
    int64_t t0 = evb_mono_ms();
    evb_instance_stop(fx.inst, t0 + 150);
    CU_ASSERT_TRUE(evb_mono_ms() - t0 < 2000);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_TRUE(st.delivered > 0);
    CU_ASSERT_TRUE(st.delivered < 40);
    CU_ASSERT_EQUAL(st.delivered + st.dead_lettered, 41);
    int lines;
    char *dl = fx_dead_letters(&fx, &lines);
    CU_ASSERT_EQUAL((uint64_t)lines, st.dead_lettered);
    CU_ASSERT_PTR_NOT_NULL(strstr(dl, "shutdown"));
    free(dl);
    fx_close(&fx);
}

static void test_shutdown_completes_held_pending_attempts(void)
{
    fixture_t fx;
    fx_open(&fx, "held", 100, s_fast);
    for (int i = 0; i < 3; i++)
        s_send(fx.inst, "pending");
    usleep(30000);
    evb_instance_stop(fx.inst, evb_mono_ms() + 100);
    evb_instance_stats_t st;
    evb_instance_get_stats(fx.inst, &st);
    CU_ASSERT_EQUAL(st.delivered, 3); /* completed by the plugin's shutdown */
    CU_ASSERT_EQUAL(st.in_flight, 0);
    fx_close(&fx);
}

static CU_TestInfo s_tests[] = {
    {"ordering defaults from the plugin's UNORDERED flag",
     test_ordering_defaults_from_the_plugin_flag},
    {"retry then success delivers once",
     test_retry_then_success_delivers_once},
    {"retry-after hint delays the next attempt",
     test_retry_after_hint_delays_next_attempt},
    {"max_attempts sends the event to the dead-letter file",
     test_max_attempts_sends_event_to_dead_letter_file},
    {"max_age sends the event to the dead-letter file",
     test_max_age_sends_event_to_dead_letter_file},
    {"drop is dead-lettered at once with its reason",
     test_drop_is_dead_lettered_at_once_with_reason},
    {"broken disables the instance", test_broken_disables_the_instance},
    {"full queue dead-letters without blocking",
     test_full_queue_dead_letters_without_blocking},
    {"slow instance does not delay another",
     test_slow_instance_does_not_delay_another},
    {"pending attempt completed from another thread",
     test_pending_attempt_completed_from_another_thread},
    {"tick runs when the worker goes idle",
     test_tick_runs_when_the_worker_goes_idle},
    {"reopen runs on a worker", test_reopen_runs_on_a_worker_between_deliveries},
    {"drain delivers what is queued before the deadline",
     test_drain_delivers_what_is_queued_before_the_deadline},
    {"drain deadline dead-letters the rest",
     test_drain_deadline_dead_letters_the_rest},
    {"shutdown completes held pending attempts",
     test_shutdown_completes_held_pending_attempts},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"instance", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    s_main_thread = pthread_self();
    return evb_test_main("test_instance", s_suites);
}
