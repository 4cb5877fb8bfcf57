/* blast: publish N synthetic lifecycle events of ~300 bytes as fast as the
 * receiver takes them (or at --rate per second), for the benchmarks.
 *
 *   blast --endpoint tcp://127.0.0.1:7700 --count 1000000 [--rate 10000]
 *         [--mode pub|push|dealer] [--window 1000]
 *
 * pub:    an XPUB with ZMQ_XPUB_NODROP connected to evbusd's SUB; waits for
 *         the subscription, then sends blocking (back-pressure, no loss).
 * push:   a PUSH connected to the baseline's PULL; sends blocking.
 * dealer: acknowledged publishing: a DEALER connected to evbusd's ROUTER
 *         keeps up to --window requests in flight, checks that every reply
 *         is ACCEPTED with the id it sent (replies come in request order),
 *         and prints on stdout one line
 *           acked N secs S rate R p50_ms A p99_ms B max_ms C
 *         with the acknowledgement latency (send to reply) percentiles.
 * Frames: [type][msgpack envelope] with id (as libevbus sends it), source,
 * project, subject and data {task_id, duration_ms, cost, result, seq,
 * sent_us}; sent_us (CLOCK_REALTIME) lets a reader measure latency. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>
#include <zmq.h>

#include "event.h" /* evb_uuid7 */

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static const char *const s_types[] = {"task.completed", "task.failed",
                                      "agent.stuck"};

/* Pack event i into sb (cleared first); its id into id. */
static void s_pack(msgpack_sbuffer *sb, msgpack_packer *pk, long i,
                   char id[37])
{
    const char *type = s_types[i % 3];
    char task[32];
    evb_uuid7(id, s_now_us() / 1000);
    snprintf(task, sizeof task, "T-%ld", i);
    msgpack_sbuffer_clear(sb);
    msgpack_pack_map(pk, 6);
    s_str(pk, "type");
    s_str(pk, type);
    s_str(pk, "id");
    s_str(pk, id);
    s_str(pk, "source");
    s_str(pk, "bench/runner-7");
    s_str(pk, "project");
    s_str(pk, "alpha");
    s_str(pk, "subject");
    s_str(pk, "pipeline/build-and-test");
    s_str(pk, "data");
    msgpack_pack_map(pk, 6);
    s_str(pk, "task_id");
    s_str(pk, task);
    s_str(pk, "duration_ms");
    msgpack_pack_int64(pk, 1000 + i % 5000);
    s_str(pk, "cost");
    msgpack_pack_double(pk, (double)(25 + i % 100) / 100.0); /* 0.25 .. 1.24 */
    s_str(pk, "result");
    s_str(pk, "all 42 checks passed; artifacts uploaded");
    s_str(pk, "seq");
    msgpack_pack_int64(pk, i);
    s_str(pk, "sent_us");
    msgpack_pack_int64(pk, s_now_us());
}

static int s_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Read one reply and check it answers the oldest request in flight. */
static int s_reply(void *s, const char *want_id, long i)
{
    char status[16], id[64], more_buf[512];
    int n = zmq_recv(s, status, sizeof status, 0);
    int more = 0;
    size_t ms = sizeof more;
    if (n < 0)
        return -1;
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ms);
    int idn = more ? zmq_recv(s, id, sizeof id - 1, 0) : 0;
    if (idn < 0)
        return -1;
    id[idn < (int)sizeof id - 1 ? idn : (int)sizeof id - 1] = '\0';
    char detail[600] = "";
    for (;;) { /* code and text of a rejection */
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ms);
        if (!more)
            break;
        int k = zmq_recv(s, more_buf, sizeof more_buf - 1, 0);
        if (k < 0)
            return -1;
        more_buf[k < (int)sizeof more_buf - 1 ? k : (int)sizeof more_buf - 1] =
            '\0';
        strncat(detail, " ", sizeof detail - strlen(detail) - 1);
        strncat(detail, more_buf, sizeof detail - strlen(detail) - 1);
    }
    if (n != 8 || memcmp(status, "ACCEPTED", 8) != 0) {
        fprintf(stderr, "blast: event %ld (%s) not accepted: %.*s%s\n", i,
                want_id, n < 16 ? n : 16, status, detail);
        return -1;
    }
    if (strcmp(id, want_id) != 0) {
        fprintf(stderr, "blast: event %ld: reply for %s, expected %s\n", i,
                id, want_id);
        return -1;
    }
    return 0;
}

/* Acknowledged publishing with a window of requests in flight. */
static int s_dealer(void *s, long count, int window)
{
    char(*ids)[37] = calloc((size_t)window, sizeof *ids);
    int64_t *sent = calloc((size_t)window, sizeof *sent);
    int64_t *lat = calloc((size_t)(count ? count : 1), sizeof *lat);
    if (!ids || !sent || !lat)
        return 1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int64_t t0 = s_now_us();
    long next = 0, done = 0;
    while (done < count) {
        while (next < count && next - done < window) {
            int k = (int)(next % window);
            s_pack(&sb, &pk, next, ids[k]);
            const char *type = s_types[next % 3];
            sent[k] = s_now_us();
            if (zmq_send(s, type, strlen(type), ZMQ_SNDMORE) < 0 ||
                zmq_send(s, sb.data, sb.size, 0) < 0) {
                fprintf(stderr, "blast: send: %s\n", zmq_strerror(zmq_errno()));
                return 1;
            }
            next++;
        }
        int k = (int)(done % window);
        if (s_reply(s, ids[k], done) < 0)
            return 1;
        lat[done] = s_now_us() - sent[k];
        done++;
    }
    int64_t t1 = s_now_us();
    qsort(lat, (size_t)count, sizeof *lat, s_cmp_i64);
    double secs = (double)(t1 - t0) / 1e6;
    printf("acked %ld secs %.3f rate %.0f p50_ms %.3f p99_ms %.3f max_ms %.3f\n",
           count, secs, (double)count / (secs > 0 ? secs : 1e-9),
           count ? (double)lat[count / 2] / 1000.0 : 0.0,
           count ? (double)lat[(count * 99) / 100] / 1000.0 : 0.0,
           count ? (double)lat[count - 1] / 1000.0 : 0.0);
    fflush(stdout);
    msgpack_sbuffer_destroy(&sb);
    free(ids);
    free(sent);
    free(lat);
    return 0;
}

int main(int argc, char **argv)
{
    const char *endpoint = "tcp://127.0.0.1:7700";
    long count = 100000;
    long rate = 0;
    int push = 0, dealer = 0, window = 1000;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"mode", required_argument, NULL, 'm'},
        {"window", required_argument, NULL, 'w'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "e:n:r:m:w:", opts, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'r': rate = atol(optarg); break;
        case 'm':
            push = strcmp(optarg, "push") == 0;
            dealer = strcmp(optarg, "dealer") == 0;
            break;
        case 'w': window = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: blast [--endpoint E] [--count N] "
                            "[--rate R] [--mode pub|push|dealer] [--window W]\n");
            return 2;
        }
    }
    void *ctx = zmq_ctx_new();
    if (window < 1)
        window = 1;
    void *s = zmq_socket(ctx, push ? ZMQ_PUSH : dealer ? ZMQ_DEALER : ZMQ_XPUB);
    int hwm = 100000, one = 1, linger = -1;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (!push && !dealer)
        zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof one);
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "blast: connect %s: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        return 1;
    }
    if (dealer) {
        int rc = s_dealer(s, count, window);
        zmq_close(s);
        zmq_ctx_term(ctx);
        return rc;
    }
    if (!push) { /* the broker's subscription arrives on connect */
        char sub[64];
        if (zmq_recv(s, sub, sizeof sub, 0) < 0)
            return 1;
    }

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int64_t t0 = s_now_us();
    size_t bytes = 0;
    for (long i = 0; i < count; i++) {
        if (rate > 0) { /* pace: event i is due at t0 + i / rate */
            int64_t due = t0 + (int64_t)((double)i * 1e6 / (double)rate);
            int64_t now;
            while ((now = s_now_us()) < due) {
                if (due - now > 200) {
                    struct timespec ts = {0, (due - now - 100) * 1000};
                    nanosleep(&ts, NULL);
                }
            }
        }
        const char *type = s_types[i % 3];
        char id[37];
        s_pack(&sb, &pk, i, id);
        if (zmq_send(s, type, strlen(type), ZMQ_SNDMORE) < 0 ||
            zmq_send(s, sb.data, sb.size, 0) < 0) {
            fprintf(stderr, "blast: send: %s\n", zmq_strerror(zmq_errno()));
            return 1;
        }
        bytes += sb.size;
    }
    int64_t t1 = s_now_us();
    fprintf(stderr, "blast: %ld events, %.0f bytes/event, %.0f events/s sent\n",
            count, (double)bytes / (double)(count ? count : 1),
            (double)count * 1e6 / (double)(t1 - t0 ? t1 - t0 : 1));
    msgpack_sbuffer_destroy(&sb);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}
