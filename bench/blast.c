/* blast: publish N synthetic lifecycle events of ~300 bytes as fast as the
 * receiver takes them (or at --rate per second), for the benchmarks.
 *
 *   blast --endpoint tcp://127.0.0.1:7700 --count 1000000 [--rate 10000]
 *         [--mode pub|push]
 *
 * pub:  an XPUB with ZMQ_XPUB_NODROP connected to evbusd's SUB; waits for
 *       the subscription, then sends blocking (back-pressure, no loss).
 * push: a PUSH connected to the baseline's PULL; sends blocking.
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

int main(int argc, char **argv)
{
    const char *endpoint = "tcp://127.0.0.1:7700";
    long count = 100000;
    long rate = 0;
    int push = 0;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"mode", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "e:n:r:m:", opts, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'r': rate = atol(optarg); break;
        case 'm': push = strcmp(optarg, "push") == 0; break;
        default:
            fprintf(stderr, "usage: blast [--endpoint E] [--count N] "
                            "[--rate R] [--mode pub|push]\n");
            return 2;
        }
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, push ? ZMQ_PUSH : ZMQ_XPUB);
    int hwm = 100000, one = 1, linger = -1;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    if (!push)
        zmq_setsockopt(s, ZMQ_XPUB_NODROP, &one, sizeof one);
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "blast: connect %s: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        return 1;
    }
    if (!push) { /* the broker's subscription arrives on connect */
        char sub[64];
        if (zmq_recv(s, sub, sizeof sub, 0) < 0)
            return 1;
    }

    static const char *const types[] = {"task.completed", "task.failed",
                                        "agent.stuck"};
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
        const char *type = types[i % 3];
        char id[37], task[32];
        evb_uuid7(id, s_now_us() / 1000);
        snprintf(task, sizeof task, "T-%ld", i);
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 6);
        s_str(&pk, "type");
        s_str(&pk, type);
        s_str(&pk, "id");
        s_str(&pk, id);
        s_str(&pk, "source");
        s_str(&pk, "bench/runner-7");
        s_str(&pk, "project");
        s_str(&pk, "alpha");
        s_str(&pk, "subject");
        s_str(&pk, "pipeline/build-and-test");
        s_str(&pk, "data");
        msgpack_pack_map(&pk, 6);
        s_str(&pk, "task_id");
        s_str(&pk, task);
        s_str(&pk, "duration_ms");
        msgpack_pack_int64(&pk, 1000 + i % 5000);
        s_str(&pk, "cost");
        msgpack_pack_double(&pk, (double)(25 + i % 100) / 100.0); /* 0.25 .. 1.24 */
        s_str(&pk, "result");
        s_str(&pk, "all 42 checks passed; artifacts uploaded");
        s_str(&pk, "seq");
        msgpack_pack_int64(&pk, i);
        s_str(&pk, "sent_us");
        msgpack_pack_int64(&pk, s_now_us());
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
