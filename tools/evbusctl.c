/* evbusctl: ask a running evbusd about its journal and instances, list dead
 * letters, replay them, drop an orphaned cursor. Talks to the broker's control socket (REQ/REP, see
 * core/control.h and docs/durability.md). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:7703"

static void s_usage(FILE *out)
{
    fprintf(out,
            "Usage: evbusctl [-e ENDPOINT] [-t MS] COMMAND [ARGS]\n"
            "\n"
            "Commands (each prints the broker's JSON answer):\n"
            "  status                       the broker, its journal, its "
            "memory and every\n"
            "                               instance (live or catching up, "
            "cursor, backlog,\n"
            "                               counts)\n"
            "  dead-letters INSTANCE [N]    the newest N (100) dead letters "
            "of INSTANCE,\n"
            "                               one JSON object each, with the "
            "reason\n"
            "  replay INSTANCE SELECTOR...  send dead letters back to "
            "INSTANCE:\n"
            "                               all | id=ID | type=PATTERN "
            "(e.g. type='task.*')\n"
            "  drop-cursor NAME             forget the cursor of an instance "
            "no longer\n"
            "                               configured (status lists them "
            "as orphans):\n"
            "                               retention stops keeping its "
            "unread records\n"
            "\n"
            "Options:\n"
            "  -e, --endpoint URL  the broker's control.endpoint (default "
            "%s)\n"
            "  -t, --timeout MS    how long to wait for the answer (default "
            "5000)\n"
            "  -h, --help          print this help, then exit\n"
            "\n"
            "Exit status: 0 answered OK; 1 the broker refused (the error is "
            "printed);\n"
            "2 usage error; 3 no answer (is evbusd running? is "
            "control.endpoint set?).\n",
            DEFAULT_ENDPOINT);
}

int main(int argc, char **argv)
{
    const char *endpoint = DEFAULT_ENDPOINT;
    int timeout = 5000;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "+e:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            endpoint = optarg;
            break;
        case 't':
            timeout = atoi(optarg);
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        s_usage(stderr);
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(s, endpoint) != 0) {
        fprintf(stderr, "evbusctl: cannot connect to %s: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        return 2;
    }
    for (int i = optind; i < argc; i++)
        zmq_send(s, argv[i], strlen(argv[i]), i + 1 < argc ? ZMQ_SNDMORE : 0);
    zmq_pollitem_t item = {s, 0, ZMQ_POLLIN, 0};
    int rc = 3;
    if (zmq_poll(&item, 1, timeout) == 1) {
        zmq_msg_t status, body;
        zmq_msg_init(&status);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&status, s, 0) >= 0 && zmq_msg_more(&status) &&
            zmq_msg_recv(&body, s, 0) >= 0) {
            int ok = zmq_msg_size(&status) == 2 &&
                     memcmp(zmq_msg_data(&status), "OK", 2) == 0;
            FILE *out = ok ? stdout : stderr;
            fwrite(zmq_msg_data(&body), 1, zmq_msg_size(&body), out);
            fputc('\n', out);
            rc = ok ? 0 : 1;
        }
        zmq_msg_close(&status);
        zmq_msg_close(&body);
    } else {
        fprintf(stderr, "evbusctl: no answer from %s within %d ms\n",
                endpoint, timeout);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return rc;
}
