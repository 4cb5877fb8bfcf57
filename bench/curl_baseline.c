/* curl_baseline: bench/webhook's baseline. A bare libcurl multi loop that
 * POSTs N CloudEvents JSON bodies of the benchmark's shape (~330 bytes) to
 * a URL with C requests in flight, reusing handles and connections — what
 * a hand-written sender would do, without evbus: no broker, no routing, no
 * signing, no journal.
 *
 *   curl_baseline --url http://127.0.0.1:PORT/ --count N --concurrency C
 *
 * Prints "sent N ok N secs S rate R" on stdout. Exits 1 if any request
 * failed. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t s_discard(char *p, size_t size, size_t n, void *u)
{
    (void)p;
    (void)u;
    return size * n;
}

/* Event i as the broker would render it (same fields as bench/blast). */
static int s_body(char *out, size_t cap, long i)
{
    static const char *const types[] = {"task.completed", "task.failed",
                                        "agent.stuck"};
    return snprintf(
        out, cap,
        "{\"type\":\"%s\",\"id\":\"019a7c3e-0000-7000-8000-%012ld\","
        "\"source\":\"bench/runner-7\",\"project\":\"alpha\","
        "\"subject\":\"pipeline/build-and-test\",\"data\":{\"task_id\":"
        "\"T-%ld\",\"duration_ms\":%ld,\"cost\":%.2f,\"result\":\"all 42 "
        "checks passed; artifacts uploaded\",\"seq\":%ld,\"sent_us\":0},"
        "\"specversion\":\"1.0\",\"time\":\"2026-11-22T10:00:00.000Z\"}",
        types[i % 3], i, i, 1000 + i % 5000, (double)(25 + i % 100) / 100.0,
        i);
}

typedef struct {
    CURL *easy;
    struct curl_slist *hdrs;
    char body[600];
} s_slot_t;

int main(int argc, char **argv)
{
    const char *url = NULL;
    long count = 100000;
    int conc = 32;
    static const struct option opts[] = {
        {"url", required_argument, NULL, 'u'},
        {"count", required_argument, NULL, 'n'},
        {"concurrency", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "u:n:c:", opts, NULL)) != -1) {
        switch (o) {
        case 'u': url = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'c': conc = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!url || conc < 1) {
        fprintf(stderr, "usage: curl_baseline --url URL [--count N] "
                        "[--concurrency C]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    s_slot_t *slots = calloc((size_t)conc, sizeof *slots);
    long next = 0, done = 0, failed = 0;
    int active = 0;
    double t0 = s_now();
    for (int i = 0; i < conc; i++) {
        slots[i].easy = curl_easy_init();
        slots[i].hdrs = curl_slist_append(
            NULL, "Content-Type: application/cloudevents+json");
        slots[i].hdrs = curl_slist_append(slots[i].hdrs, "Expect:");
    }
    /* start a request on a free slot */
#define START(sl)                                                              \
    do {                                                                       \
        int blen = s_body((sl)->body, sizeof (sl)->body, next++);              \
        CURL *e = (sl)->easy;                                                  \
        curl_easy_setopt(e, CURLOPT_URL, url);                                 \
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, (sl)->body);                   \
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)blen);                \
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, (sl)->hdrs);                   \
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, s_discard);                 \
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);                             \
        curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)(sl));                    \
        curl_multi_add_handle(multi, e);                                       \
        active++;                                                              \
    } while (0)
    for (int i = 0; i < conc && next < count; i++)
        START(&slots[i]);
    while (done < count) {
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            s_slot_t *sl;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&sl);
            long status = 0;
            curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (m->data.result != CURLE_OK || status != 200)
                failed++;
            curl_multi_remove_handle(multi, m->easy_handle);
            active--;
            done++;
            if (next < count)
                START(sl);
        }
        if (done < count)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    double secs = s_now() - t0;
    printf("sent %ld ok %ld secs %.3f rate %.0f\n", count, count - failed,
           secs, (double)count / secs);
    for (int i = 0; i < conc; i++) {
        curl_easy_cleanup(slots[i].easy);
        curl_slist_free_all(slots[i].hdrs);
    }
    free(slots);
    curl_multi_cleanup(multi);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
