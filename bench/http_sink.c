/* http_sink: the fast local HTTP receiver of bench/webhook. HTTP/1.1 with
 * keep-alive on loopback; answers every request 200 with an empty body,
 * at once or --delay-ms later; counts requests and body bytes. One thread,
 * epoll, no parsing beyond what finding the end of a request needs.
 *
 *   http_sink --port 0 [--delay-ms 20] [--ready FILE]
 *
 * Prints "port N" on stdout once listening (and writes it to FILE). On
 * SIGTERM / SIGINT prints "requests N bytes M" and exits. While running,
 * `GET /_count` answers "requests N bytes M" (not counted). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

typedef struct {
    int fd;
    char *buf;
    size_t len;
} s_conn_t;

typedef struct {
    int fd;
    int64_t due_ms;
} s_due_t;

static volatile sig_atomic_t s_stop;
static uint64_t s_requests, s_bytes;
static s_conn_t *s_conns[65536];
static s_due_t *s_queue; /* FIFO: every answer waits the same delay */
static size_t s_qhead, s_qtail, s_qcap;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static const char s_ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

static void s_close(int ep, s_conn_t *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    s_conns[c->fd] = NULL;
    free(c->buf);
    free(c);
}

static int s_send(int fd, const char *data, size_t len)
{
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1; /* loopback with small answers: never EAGAIN here */
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static void s_answer_later(int fd, int64_t due)
{
    if (s_qtail - s_qhead == s_qcap) {
        size_t cap = s_qcap ? s_qcap * 2 : 1024;
        s_due_t *q = malloc(cap * sizeof *q);
        for (size_t i = 0; i < s_qtail - s_qhead; i++)
            q[i] = s_queue[(s_qhead + i) % s_qcap];
        s_qtail -= s_qhead;
        s_qhead = 0;
        free(s_queue);
        s_queue = q;
        s_qcap = cap;
    }
    s_queue[s_qtail++ % s_qcap] = (s_due_t){fd, due};
}

/* Whole requests at the front of c->buf: answer them. 0, or -1 to close. */
static int s_serve(s_conn_t *c, int delay_ms)
{
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return c->len >= BUF ? -1 : 0;
        size_t head = (size_t)(end - c->buf) + 4;
        size_t body = 0;
        for (char *p = c->buf; p < end; p++) {
            if ((p == c->buf || p[-1] == '\n') &&
                strncasecmp(p, "content-length:", 15) == 0)
                body = (size_t)strtoul(p + 15, NULL, 10);
        }
        if (body > BUF)
            return -1;
        if (c->len < head + body)
            return 0;
        if (strncmp(c->buf, "GET /_count", 11) == 0) {
            char out[160], msg[96];
            int m = snprintf(msg, sizeof msg, "requests %llu bytes %llu\n",
                             (unsigned long long)s_requests,
                             (unsigned long long)s_bytes);
            int n = snprintf(out, sizeof out,
                             "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
                             m, msg);
            if (s_send(c->fd, out, (size_t)n) < 0)
                return -1;
        } else {
            s_requests++;
            s_bytes += body;
            if (delay_ms > 0)
                s_answer_later(c->fd, s_now_ms() + delay_ms);
            else if (s_send(c->fd, s_ok, sizeof s_ok - 1) < 0)
                return -1;
        }
        memmove(c->buf, c->buf + head + body, c->len - head - body);
        c->len -= head + body;
    }
}

int main(int argc, char **argv)
{
    int port = 0, delay_ms = 0;
    const char *ready = NULL;
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"delay-ms", required_argument, NULL, 'd'},
        {"ready", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "p:d:r:", opts, NULL)) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'd': delay_ms = atoi(optarg); break;
        case 'r': ready = optarg; break;
        default:
            fprintf(stderr, "usage: http_sink [--port N] [--delay-ms MS] "
                            "[--ready FILE]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1024) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("http_sink: bind");
        return 1;
    }
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    if (ready) {
        FILE *f = fopen(ready, "w");
        if (f) {
            fprintf(f, "%d\n", ntohs(a.sin_port));
            fclose(f);
        }
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    while (!s_stop) {
        int timeout = -1;
        if (s_qtail != s_qhead) {
            int64_t wait = s_queue[s_qhead % s_qcap].due_ms - s_now_ms();
            timeout = wait > 0 ? (int)wait : 0;
        }
        int n = epoll_wait(ep, evs, 256, timeout < 0 ? 200 : timeout);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= 65536) {
                        close(c);
                        continue;
                    }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    s_conn_t *cn = calloc(1, sizeof *cn);
                    cn->fd = c;
                    cn->buf = malloc(BUF + 1);
                    s_conns[c] = cn;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            s_conn_t *c = s_conns[fd];
            if (!c)
                continue;
            ssize_t r = read(fd, c->buf + c->len, BUF - c->len);
            if (r <= 0) {
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                s_close(ep, c);
                continue;
            }
            c->len += (size_t)r;
            if (s_serve(c, delay_ms) < 0)
                s_close(ep, c);
        }
        int64_t now = s_now_ms();
        while (s_qtail != s_qhead && s_queue[s_qhead % s_qcap].due_ms <= now) {
            int fd = s_queue[s_qhead++ % s_qcap].fd;
            if (s_conns[fd] && s_send(fd, s_ok, sizeof s_ok - 1) < 0)
                s_close(ep, s_conns[fd]);
        }
    }
    printf("requests %llu bytes %llu\n", (unsigned long long)s_requests,
           (unsigned long long)s_bytes);
    return 0;
}
