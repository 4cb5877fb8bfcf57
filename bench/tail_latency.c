/* tail_latency: follow a JSON-lines file as it is written and measure, for
 * each line, now - data.sent_us (the publisher's CLOCK_REALTIME stamp put
 * in by blast): publish-to-written latency as a reader sees it.
 *
 *   tail_latency --file PATH --count N [--skip K] [--idle-ms MS]
 *
 * Wakes on inotify IN_MODIFY, so it adds microseconds, not a poll period.
 * Prints "latency_us count=N p50=.. p90=.. p99=.. max=.." on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    long count = 0, skip = 0;
    int idle_ms = 10000;
    static const struct option opts[] = {
        {"file", required_argument, NULL, 'f'},
        {"count", required_argument, NULL, 'n'},
        {"skip", required_argument, NULL, 's'},
        {"idle-ms", required_argument, NULL, 'i'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "f:n:s:i:", opts, NULL)) != -1) {
        switch (c) {
        case 'f': path = optarg; break;
        case 'n': count = atol(optarg); break;
        case 's': skip = atol(optarg); break;
        case 'i': idle_ms = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!path || count <= 0) {
        fprintf(stderr, "usage: tail_latency --file PATH --count N\n");
        return 2;
    }
    int in = inotify_init1(IN_CLOEXEC);
    int fd = -1;
    while ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        if (errno != ENOENT)
            return 1;
        usleep(1000);
    }
    inotify_add_watch(in, path, IN_MODIFY);
    int64_t *lat = calloc((size_t)count, sizeof *lat);
    long n = 0, seen = 0;
    size_t cap = 1 << 20, have = 0;
    char *buf = malloc(cap);
    while (n < count) {
        ssize_t r = read(fd, buf + have, cap - have - 1);
        if (r > 0) {
            int64_t now = s_now_us();
            have += (size_t)r;
            buf[have] = '\0';
            char *line = buf, *nl;
            while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
                *nl = '\0';
                char *p = strstr(line, "\"sent_us\":");
                if (p && seen++ >= skip && n < count)
                    lat[n++] = now - atoll(p + 10);
                line = nl + 1;
            }
            have -= (size_t)(line - buf);
            memmove(buf, line, have);
            continue;
        }
        struct pollfd pfd = {in, POLLIN, 0};
        if (poll(&pfd, 1, idle_ms) <= 0)
            break; /* idle too long: report what we have */
        char ev[4096];
        if (read(in, ev, sizeof ev) < 0)
            break;
    }
    if (n == 0) {
        printf("latency_us count=0\n");
        return 1;
    }
    qsort(lat, (size_t)n, sizeof *lat, s_cmp);
    printf("latency_us count=%ld p50=%lld p90=%lld p99=%lld max=%lld\n", n,
           (long long)lat[n / 2], (long long)lat[n * 9 / 10],
           (long long)lat[n * 99 / 100], (long long)lat[n - 1]);
    return n == count ? 0 : 1;
}
