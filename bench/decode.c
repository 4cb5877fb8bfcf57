/* What ingest's validation costs per event: evb_event_decode (every check
 * of docs/protocol.md §4, the rendered-size count included, and the copy
 * into an event) on a typical 260-byte envelope, against msgpack-c
 * unpacking the same bytes into a zone (the least any reader does), in
 * the same run. Prints ns per event and the ratio.
 *
 *   bench/decode [COUNT]      (default 2,000,000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "event.h"

static double s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void s_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    s_str(&pk, "type");
    s_str(&pk, "task.completed");
    s_str(&pk, "source");
    s_str(&pk, "ci/runner-3");
    s_str(&pk, "id");
    s_str(&pk, "0192f0c4-7a1e-7b3c-9d2e-1f2a3b4c5d6e");
    s_str(&pk, "project");
    s_str(&pk, "alpha");
    s_str(&pk, "subject");
    s_str(&pk, "task-4711");
    s_str(&pk, "data");
    msgpack_pack_map(&pk, 5);
    s_str(&pk, "duration_ms");
    msgpack_pack_int(&pk, 1234);
    s_str(&pk, "cost");
    msgpack_pack_double(&pk, 0.25);
    s_str(&pk, "model");
    s_str(&pk, "some-model-name");
    s_str(&pk, "tokens");
    msgpack_pack_int(&pk, 45678);
    s_str(&pk, "summary");
    s_str(&pk, "Completed the refactoring of the parser; 12 files changed, "
               "tests pass.");

    const evb_limits_t lim = EVB_LIMITS_DEFAULT;
    size_t sum = 0;
    double best_dec = 1e18, best_unp = 1e18;
    msgpack_zone *z = msgpack_zone_new(8192);
    for (int round = 0; round < 3; round++) { /* best of three, alternating */
        double t0 = s_now_ns();
        for (long i = 0; i < n; i++) {
            evb_reject_t why;
            evb_event_t *ev =
                evb_event_decode("task.completed", 14, sb.data, sb.size, &lim,
                                 1795000000123LL, &why, NULL, 0);
            sum += ev->msgpack_len;
            evb_event_release(ev);
        }
        double t1 = s_now_ns();
        for (long i = 0; i < n; i++) {
            msgpack_object o;
            size_t off = 0;
            msgpack_zone_clear(z);
            msgpack_unpack(sb.data, sb.size, &off, z, &o);
            sum += o.via.map.size;
        }
        double t2 = s_now_ns();
        if ((t1 - t0) / (double)n < best_dec)
            best_dec = (t1 - t0) / (double)n;
        if ((t2 - t1) / (double)n < best_unp)
            best_unp = (t2 - t1) / (double)n;
    }
    msgpack_zone_free(z);
    printf("envelope %zu bytes, %ld events, best of 3 (checksum %zu)\n",
           sb.size, n, sum % 1000);
    printf("  msgpack_unpack into a zone: %7.1f ns/event\n", best_unp);
    printf("  evb_event_decode:           %7.1f ns/event\n", best_dec);
    printf("  ratio decode/unpack: %.2f\n", best_dec / best_unp);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
