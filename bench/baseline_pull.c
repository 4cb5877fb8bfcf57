/* baseline_pull: the benchmark's baseline, the least a broker could do —
 * receive [type][envelope] on a PULL socket, decode the msgpack, write the
 * same JSON line the file plugin writes (core/json.c), buffered with stdio.
 * No validation, no queues, no threads.
 *
 *   baseline_pull --endpoint tcp://127.0.0.1:7799 --count N --out FILE */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "buf.h"
#include "json.h"

int main(int argc, char **argv)
{
    const char *endpoint = "tcp://127.0.0.1:7799", *out = NULL;
    long count = 100000;
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"count", required_argument, NULL, 'n'},
        {"out", required_argument, NULL, 'o'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "e:n:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'n': count = atol(optarg); break;
        case 'o': out = optarg; break;
        default:
            fprintf(stderr, "usage: baseline_pull --endpoint E --count N "
                            "--out FILE\n");
            return 2;
        }
    }
    FILE *f = out ? fopen(out, "w") : NULL;
    if (!f) {
        perror("baseline_pull: --out");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PULL);
    int hwm = 100000;
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(s, endpoint) != 0) {
        fprintf(stderr, "baseline_pull: bind %s: %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        return 1;
    }
    fprintf(stderr, "baseline_pull: ready\n");
    msgpack_zone *zone = msgpack_zone_new(8192);
    evb_buf_t line = EVB_BUF_INIT;
    zmq_msg_t type, env;
    zmq_msg_init(&type);
    zmq_msg_init(&env);
    for (long i = 0; i < count; i++) {
        if (zmq_msg_recv(&type, s, 0) < 0 || zmq_msg_recv(&env, s, 0) < 0)
            return 1;
        msgpack_object obj;
        size_t off = 0;
        msgpack_zone_clear(zone);
        if (msgpack_unpack(zmq_msg_data(&env), zmq_msg_size(&env), &off, zone,
                           &obj) != MSGPACK_UNPACK_SUCCESS)
            continue;
        evb_buf_reset(&line);
        evb_json_write(&line, &obj);
        evb_buf_putc(&line, '\n');
        fwrite(line.data, 1, line.len, f);
    }
    fclose(f);
    evb_buf_free(&line);
    msgpack_zone_free(zone);
    zmq_msg_close(&type);
    zmq_msg_close(&env);
    zmq_close(s);
    zmq_ctx_term(ctx);
    return 0;
}
