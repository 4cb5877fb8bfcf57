/* evbus-sub: print the broker's egress stream as CloudEvents JSON lines
 * (see --help and docs/protocol.md, "Egress").
 *
 * ZeroMQ filters by byte prefix of the first frame, the event type. A
 * pattern is subscribed as its literal prefix up to the first wildcard
 * segment ("task.*" as "task.", "**" as ""), and each message is then
 * matched exactly with the broker's own topic matcher. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include <evbus/client.h>

#include "clock.h"
#include "json.h"
#include "topic.h"

enum { S_OK = 0, S_TIMEOUT = 1, S_USAGE = 2, S_FAILURE = 3 };

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: evbus-sub [OPTION]... [PATTERN]...\n"
        "\n"
        "Subscribe to an evbus broker's egress stream and print each event "
        "whose\n"
        "type matches a PATTERN as one CloudEvents JSON object per line "
        "(binary\n"
        "data as data_base64). Patterns are dot-separated: a segment "
        "matches\n"
        "itself, * matches one segment, a final ** matches one or more; the "
        "default\n"
        "is ** (every event). Example: evbus-sub 'task.*' agent.stuck\n"
        "\n"
        "  -e, --endpoint URL  egress endpoint (default %s)\n"
        "  -n, --count N       exit after printing N events\n"
        "  -t, --timeout MS    idle timeout: exit with status 1 when MS "
        "milliseconds\n"
        "                      pass without a matching event (counted from "
        "the start,\n"
        "                      then from the last event printed)\n"
        "  -h, --help          print this help, then exit\n"
        "  -V, --version       print the version, then exit\n"
        "\n"
        "Events published before the subscription reaches the broker (a "
        "few\n"
        "milliseconds after start) are not seen: start subscribers first.\n"
        "\n"
        "Exit status: 0 after --count events, or on SIGINT/SIGTERM; 1 when "
        "the\n"
        "timeout ran out first; 2 usage error; 3 ZeroMQ failure.\n",
        EVBUS_DEFAULT_EGRESS_ENDPOINT);
}

/* The ZeroMQ prefix for a pattern: its literal segments before the first
 * wildcard, with their dots ("task.*" -> "task.", "a.b" -> "a.b"). */
static size_t s_prefix_len(const char *pattern)
{
    const char *star = strchr(pattern, '*');
    if (!star)
        return strlen(pattern);
    /* a wildcard is always a whole segment: back up to its start */
    return (size_t)(star - pattern);
}

/* Mirror evb_event_json: the envelope's members in order, bin data as
 * data_base64. 0, or -1 when it is not an envelope JSON can show. */
static int s_render(evb_buf_t *b, const char *env, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next(&u, env, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len || u.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    const msgpack_object_map *map = &u.data.via.map;
    rc = evb_buf_putc(b, '{');
    for (uint32_t i = 0; rc == 0 && i < map->size; i++) {
        const msgpack_object_kv *kv = &map->ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            rc = -1;
            break;
        }
        if (i)
            rc |= evb_buf_putc(b, ',');
        if (kv->key.via.str.size == 4 &&
            memcmp(kv->key.via.str.ptr, "data", 4) == 0 &&
            kv->val.type == MSGPACK_OBJECT_BIN) {
            rc |= evb_buf_puts(b, "\"data_base64\":\"");
            rc |=
                evb_base64_encode(b, kv->val.via.bin.ptr, kv->val.via.bin.size);
            rc |= evb_buf_putc(b, '"');
            continue;
        }
        rc |=
            evb_json_write_string(b, kv->key.via.str.ptr, kv->key.via.str.size);
        rc |= evb_buf_putc(b, ':');
        rc |= evb_json_write(b, &kv->val);
    }
    rc |= evb_buf_puts(b, "}\n");
done:
    msgpack_unpacked_destroy(&u);
    return rc ? -1 : 0;
}

static int s_matches(char **patterns, int n, const char *type)
{
    for (int i = 0; i < n; i++)
        if (evb_topic_match(patterns[i], type))
            return 1;
    return 0;
}

/* Receive one [type][envelope] message. 1 when one was read, 0 when the
 * message had another shape (skipped), -1 on error (errno). */
static int s_recv(void *sock, char type[256], zmq_msg_t *env)
{
    zmq_msg_t f;
    int frames = 0, ok = 1;
    type[0] = '\0';
    for (;;) {
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, sock, frames ? 0 : ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f);
            return -1;
        }
        int more = zmq_msg_more(&f);
        if (frames == 0) {
            size_t n = zmq_msg_size(&f);
            ok = n < 256;
            if (ok) {
                memcpy(type, zmq_msg_data(&f), n);
                type[n] = '\0';
                ok = strlen(type) == n;
            }
            zmq_msg_close(&f);
        } else if (frames == 1) {
            zmq_msg_move(env, &f);
            zmq_msg_close(&f);
        } else {
            zmq_msg_close(&f);
        }
        frames++;
        if (!more)
            break;
    }
    return ok && frames == 2;
}

static int s_run(void *sock, char **patterns, int n_patterns, long count,
                 int timeout_ms)
{
    evb_buf_t line = EVB_BUF_INIT;
    long printed = 0;
    int status = S_OK;
    int64_t idle_since = evb_mono_ms();
    while (!s_stop && (count < 0 || printed < count)) {
        /* short slices so a signal between the check and the poll still
         * ends the run promptly */
        long wait = 250;
        if (timeout_ms >= 0) {
            int64_t left = idle_since + timeout_ms - evb_mono_ms();
            if (left <= 0) {
                fprintf(stderr, "evbus-sub: no matching event within %d ms\n",
                        timeout_ms);
                status = S_TIMEOUT;
                break;
            }
            if (left < wait)
                wait = (long)left;
        }
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, wait);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "evbus-sub: poll: %s\n", zmq_strerror(errno));
            status = S_FAILURE;
            break;
        }
        for (;;) {
            if (count >= 0 && printed >= count)
                break;
            char type[256];
            zmq_msg_t env;
            zmq_msg_init(&env);
            int got = s_recv(sock, type, &env);
            if (got < 0) {
                zmq_msg_close(&env);
                if (errno != EAGAIN && errno != EINTR) {
                    fprintf(stderr, "evbus-sub: receive: %s\n",
                            zmq_strerror(errno));
                    status = S_FAILURE;
                    s_stop = 1;
                }
                break;
            }
            if (got == 0) {
                fprintf(stderr, "evbus-sub: skipped a message that is not "
                                "[type][envelope]\n");
            } else if (s_matches(patterns, n_patterns, type)) {
                evb_buf_reset(&line);
                if (s_render(&line, zmq_msg_data(&env), zmq_msg_size(&env)) <
                    0) {
                    fprintf(stderr,
                            "evbus-sub: skipped a %s event whose envelope "
                            "cannot be shown as JSON\n",
                            type);
                } else {
                    fwrite(line.data, 1, line.len, stdout);
                    if (fflush(stdout) != 0) {
                        /* a reader that has gone (`| head`) ends the run
                         * normally; any other write error is a failure */
                        if (errno != EPIPE) {
                            fprintf(stderr, "evbus-sub: stdout: %s\n",
                                    strerror(errno));
                            status = S_FAILURE;
                        }
                        zmq_msg_close(&env);
                        s_stop = 1;
                        break;
                    }
                    printed++;
                    idle_since = evb_mono_ms();
                }
            }
            zmq_msg_close(&env);
        }
    }
    evb_buf_free(&line);
    return status;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    const char *endpoint = EVBUS_DEFAULT_EGRESS_ENDPOINT;
    long count = -1;
    long timeout_ms = -1;
    int c;
    while ((c = getopt_long(argc, argv, "e:n:t:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            endpoint = optarg;
            break;
        case 'n':
        case 't': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > INT_MAX) {
                fprintf(stderr, "evbus-sub: --%s wants a number, got \"%s\"\n",
                        c == 'n' ? "count" : "timeout", optarg);
                return S_USAGE;
            }
            if (c == 'n')
                count = v;
            else
                timeout_ms = v;
            break;
        }
        case 'h':
            s_usage(stdout);
            return S_OK;
        case 'V':
            printf("evbus-sub %s\n", EVBUS_VERSION);
            return S_OK;
        default:
            fprintf(stderr, "Try 'evbus-sub --help'.\n");
            return S_USAGE;
        }
    }
    static char *all[] = {"**"};
    char **patterns = optind < argc ? argv + optind : all;
    int n_patterns = optind < argc ? argc - optind : 1;
    for (int i = 0; i < n_patterns; i++) {
        char err[256];
        if (evb_topic_pattern_check(patterns[i], err, sizeof err) < 0) {
            fprintf(stderr, "evbus-sub: %s\n", err);
            return S_USAGE;
        }
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = S_FAILURE;
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_SUB) : NULL;
    int zero = 0;
    if (!sock || zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero) < 0) {
        fprintf(stderr, "evbus-sub: %s\n", zmq_strerror(errno));
        goto done;
    }
    for (int i = 0; i < n_patterns; i++) {
        if (zmq_setsockopt(sock, ZMQ_SUBSCRIBE, patterns[i],
                           s_prefix_len(patterns[i])) < 0) {
            fprintf(stderr, "evbus-sub: subscribe: %s\n", zmq_strerror(errno));
            goto done;
        }
    }
    if (zmq_connect(sock, endpoint) < 0) {
        fprintf(stderr, "evbus-sub: cannot connect to \"%s\": %s\n", endpoint,
                zmq_strerror(errno));
        status = S_USAGE;
        goto done;
    }
    status = s_run(sock, patterns, n_patterns, count, (int)timeout_ms);
done:
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    return status;
}
