/* The metrics plugin: a Prometheus endpoint for the bus and the work it
 * carries (docs/metrics.md).
 *
 * Three sources make one /metrics page: the process (from /proc, named
 * the way Prometheus client libraries name them), the broker's own
 * figures (host->figures(), ABI 1.2), and figures drawn from the events
 * this instance subscribes to (derived.c). /healthz and /readyz answer
 * orchestrators. HTTP is libmicrohttpd's, on one internal thread, bounded
 * (connections, request size, timeouts): see docs/architecture.md. */
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <evbus/plugin.h>

#include "buf.h"
#include "derived.h"
#include "health.h"
#include "promtext.h"

#define MAX_BUCKETS 60
static const double s_default_buckets[] = {1,   5,   10,   30,   60,   120,
                                           300, 600, 1800, 3600, 7200, 14400};

typedef struct s_metrics {
    const evbus_host_t *host;
    evbus_instance_t *inst;
    pthread_mutex_t lock; /* derived: deliver() writes, scrapes read */
    dm_t *derived;
    struct MHD_Daemon *daemon;
    int64_t stall_ms;
    char where[NI_MAXHOST + NI_MAXSERV + 16]; /* http://host:port, logs */
} s_metrics_t;

/* ------------------------------------------------------------ options */

static int s_declare(evbus_schema_t *s, const evbus_host_t *host)
{
    int rc = 0;
#define D(name, type, def, text)                                               \
    (rc |= host->declare_option(s, name, type, def, 0, text))
    D("listen", EVBUS_OPT_STRING, "127.0.0.1:7790",
      "address and port to serve on: \"HOST:PORT\", \"[IPV6]:PORT\", "
      "\"*:PORT\" (every interface); port 0 picks a free one");
    D("max_connections", EVBUS_OPT_INT, "16",
      "connections served at once; more wait in the listen backlog");
    D("connection_timeout", EVBUS_OPT_DURATION, "10s",
      "an idle or slow connection is closed after this long");
    D("max_request_size", EVBUS_OPT_SIZE, "16K",
      "memory for one request's line and headers; a bigger request is "
      "refused");
    D("max_label_values", EVBUS_OPT_INT, "100",
      "distinct values kept per label drawn from events (project, type); "
      "later values are counted as \"other\"");
    D("duration_buckets", EVBUS_OPT_LIST, NULL,
      "upper bounds in seconds of the task duration histogram (default "
      "1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400)");
    D("duration_buckets[]", EVBUS_OPT_FLOAT, NULL, NULL);
    D("stall_after", EVBUS_OPT_DURATION, "10s",
      "/healthz fails when the broker's ingest loop has not run for this "
      "long");
#undef D
    return rc;
}

/* "HOST:PORT", "[V6]:PORT", "*:PORT" or ":PORT" into host (empty: every
 * interface) and port. 0, or -1 with why. */
static int s_split_listen(const char *spec, char *host, size_t hsz, char *port,
                          size_t psz, char *why, size_t wsz)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || !colon[1]) {
        snprintf(why, wsz, "expected HOST:PORT, got \"%s\"", spec);
        return -1;
    }
    const char *h = spec;
    size_t hl = (size_t)(colon - spec);
    if (hl && spec[0] == '[') {
        if (spec[hl - 1] != ']') {
            snprintf(why, wsz,
                     "an IPv6 address goes in brackets: "
                     "\"[::1]:7790\", got \"%s\"",
                     spec);
            return -1;
        }
        h++;
        hl -= 2;
    } else if (memchr(spec, ':', hl)) {
        snprintf(why, wsz,
                 "an IPv6 address goes in brackets: "
                 "\"[::1]:7790\", got \"%s\"",
                 spec);
        return -1;
    }
    if (hl == 1 && h[0] == '*')
        hl = 0;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (*end || errno || p < 0 || p > 65535 || colon[1] == '-' ||
        colon[1] == '+') {
        snprintf(why, wsz,
                 "the port must be a number from 0 to 65535, "
                 "got \"%s\"",
                 colon + 1);
        return -1;
    }
    if (hl >= hsz) {
        snprintf(why, wsz, "host name too long");
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    snprintf(port, psz, "%ld", p);
    return 0;
}

static int s_buckets(const evbus_host_t *host, evbus_instance_t *inst,
                     double *out, size_t *n, int report)
{
    int count = host->config_count(inst, "duration_buckets");
    if (!host->config_has(inst, "duration_buckets")) {
        *n = sizeof s_default_buckets / sizeof s_default_buckets[0];
        memcpy(out, s_default_buckets, sizeof s_default_buckets);
        return 0;
    }
    if (count < 1 || count > MAX_BUCKETS)
        return report ? host->config_error(inst, "duration_buckets",
                                           "give 1 to %d bounds, got %d",
                                           MAX_BUCKETS, count)
                      : -1;
    for (int i = 0; i < count; i++) {
        char p[64];
        snprintf(p, sizeof p, "duration_buckets[%d]", i);
        out[i] = host->config_float(inst, p);
        if (!(out[i] > 0) || out[i] > 1e9 || (i && out[i] <= out[i - 1]))
            return report ? host->config_error(
                                inst, p,
                                "bounds must be positive seconds in "
                                "increasing order, got %g",
                                out[i])
                          : -1;
    }
    *n = (size_t)count;
    return 0;
}

static int s_validate(evbus_instance_t *inst, const evbus_host_t *host)
{
    int errors = 0;
    char h[256], p[16], why[300];
    const char *listen = host->config_string(inst, "listen");
    if (s_split_listen(listen ? listen : "", h, sizeof h, p, sizeof p, why,
                       sizeof why) < 0)
        errors += host->config_error(inst, "listen", "%s", why) < 0;
    int64_t v = host->config_int(inst, "max_connections");
    if (v < 1 || v > 10000)
        errors += host->config_error(inst, "max_connections",
                                     "expected 1 to 10000, got %lld",
                                     (long long)v) < 0;
    v = host->config_int(inst, "max_label_values");
    if (v < 1 || v > 100000)
        errors += host->config_error(inst, "max_label_values",
                                     "expected 1 to 100000, got %lld",
                                     (long long)v) < 0;
    v = host->config_int(inst, "max_request_size");
    if (v < 4096 || v > (16 << 20))
        errors += host->config_error(inst, "max_request_size",
                                     "expected 4K to 16M, got %lld",
                                     (long long)v) < 0;
    v = host->config_int(inst, "connection_timeout");
    if (v < 1000)
        errors += host->config_error(inst, "connection_timeout",
                                     "expected at least 1s, got %lld ms",
                                     (long long)v) < 0;
    v = host->config_int(inst, "stall_after");
    if (v < 1000)
        errors += host->config_error(inst, "stall_after",
                                     "expected at least 1s, got %lld ms",
                                     (long long)v) < 0;
    double b[MAX_BUCKETS];
    size_t nb;
    if (s_buckets(host, inst, b, &nb, 1) < 0)
        errors++;
    return errors ? -1 : 0;
}

/* ------------------------------------------------------ the process */

/* The figures every Prometheus client library exports about its process,
 * under the same names, read from /proc. */
static void s_process(pt_t *w)
{
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[len] = '\0';
    unsigned long long utime = 0, stime = 0, start = 0, vsize = 0;
    long long rss = 0;
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    int ok = p && sscanf(p + 2,
                         "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu "
                         "%llu %*d %*d %*d %*d %*d %*d %llu %llu %lld",
                         &utime, &stime, &start, &vsize, &rss) == 5;
    unsigned long long btime = 0;
    if ((f = fopen("/proc/stat", "r"))) {
        while (fgets(buf, sizeof buf, f))
            if (sscanf(buf, "btime %llu", &btime) == 1)
                break;
        fclose(f);
    }
    if (ok && tick > 0) {
        pt_family(w, "process_cpu_seconds_total",
                  "Total user and system CPU time spent in seconds.",
                  PT_COUNTER);
        pt_sample(w, "process_cpu_seconds_total", NULL,
                  (double)(utime + stime) / (double)tick);
    }
    int fds = -1;
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        fds = 0;
        for (struct dirent *e; (e = readdir(d));)
            fds += e->d_name[0] != '.';
        fds--; /* the directory's own descriptor */
        closedir(d);
    }
    if (fds >= 0) {
        pt_family(w, "process_open_fds", "Number of open file descriptors.",
                  PT_GAUGE);
        pt_sample(w, "process_open_fds", NULL, fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        pt_family(w, "process_max_fds",
                  "Maximum number of open file descriptors.", PT_GAUGE);
        pt_sample(w, "process_max_fds", NULL,
                  rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur);
    }
    if (ok) {
        pt_family(w, "process_virtual_memory_bytes",
                  "Virtual memory size in bytes.", PT_GAUGE);
        pt_sample(w, "process_virtual_memory_bytes", NULL, (double)vsize);
        pt_family(w, "process_resident_memory_bytes",
                  "Resident memory size in bytes.", PT_GAUGE);
        pt_sample(w, "process_resident_memory_bytes", NULL,
                  (double)rss * (double)page);
    }
    if (ok && btime && tick > 0) {
        pt_family(w, "process_start_time_seconds",
                  "Start time of the process since unix epoch in seconds.",
                  PT_GAUGE);
        pt_sample(w, "process_start_time_seconds", NULL,
                  (double)btime + (double)start / (double)tick);
    }
}

/* ------------------------------------------------------------ /metrics */

static void s_on_figure(void *ctx, const char *name, const char *help, int kind,
                        const char *const *labels, double value, size_t n,
                        const double *bounds, const uint64_t *counts)
{
    pt_t *w = ctx;
    pt_family(w, name, help, kind);
    if (kind == EVBUS_FIGURE_HISTOGRAM)
        pt_histogram(w, name, labels, n, bounds, counts, value);
    else
        pt_sample(w, name, labels, value);
}

static char *s_render(s_metrics_t *h, size_t *len)
{
    evb_buf_t b = EVB_BUF_INIT;
    pt_t w;
    pt_init(&w, &b);
    s_process(&w);
    h->host->figures(s_on_figure, &w);
    pthread_mutex_lock(&h->lock);
    dm_render(h->derived, &w);
    pthread_mutex_unlock(&h->lock);
    if (w.failed)
        h->host->log(h->inst, EVBUS_LOG_WARN,
                     "a figure with an invalid name or label was left out of "
                     "/metrics");
    return evb_buf_steal(&b, len);
}

/* ----------------------------------------------------- /healthz, /readyz */

static int s_probe(s_metrics_t *h, int ready, char **body)
{
    health_t st;
    health_init(&st);
    h->host->figures(health_on_figure, &st);
    evb_buf_t b = EVB_BUF_INIT;
    int status = ready ? health_ready(&st, &b)
                       : health_live(&st, (double)h->host->now_ms() / 1000.0,
                                     h->stall_ms, &b);
    health_free(&st);
    *body = evb_buf_steal(&b, NULL);
    return status;
}

/* ---------------------------------------------------------------- HTTP */

static enum MHD_Result s_send(struct MHD_Connection *c, unsigned status,
                              char *body, size_t len, const char *type)
{
    if (!body) {
        body = strdup("out of memory\n");
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        type = "text/plain; charset=utf-8";
        if (!body)
            return MHD_NO;
        len = strlen(body);
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_size, void **state)
{
    (void)version, (void)upload, (void)state;
    s_metrics_t *h = cls;
    static const char *text = "text/plain; charset=utf-8";
    *upload_size = 0; /* a body, if any, is ignored */
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        char *body = strdup("only GET and HEAD are served\n");
        return s_send(c, MHD_HTTP_METHOD_NOT_ALLOWED, body,
                      body ? strlen(body) : 0, text);
    }
    char *body = NULL;
    size_t len = 0;
    int status = MHD_HTTP_OK;
    if (strcmp(url, "/metrics") == 0) {
        body = s_render(h, &len);
        return s_send(c, MHD_HTTP_OK, body, len,
                      "text/plain; version=0.0.4; charset=utf-8");
    }
    if (strcmp(url, "/healthz") == 0)
        status = s_probe(h, 0, &body);
    else if (strcmp(url, "/readyz") == 0)
        status = s_probe(h, 1, &body);
    else if (strcmp(url, "/") == 0)
        body = strdup("evbus metrics: /metrics (Prometheus), /healthz, "
                      "/readyz\n");
    else {
        status = MHD_HTTP_NOT_FOUND;
        body = strdup("not found: try /metrics, /healthz or /readyz\n");
    }
    return s_send(c, (unsigned)status, body, body ? strlen(body) : 0, text);
}

static void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    s_metrics_t *h = cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    h->host->log(h->inst, EVBUS_LOG_WARN, "http: %s", line);
}

/* A listening socket of our own, so a failure says exactly why (and
 * port 0 can be reported as the port it became). */
static int s_listen(s_metrics_t *h, const char *spec)
{
    char host[256], port[16], why[300];
    if (s_split_listen(spec, host, sizeof host, port, sizeof port, why,
                       sizeof why) < 0) {
        h->host->log(h->inst, EVBUS_LOG_ERROR, "listen: %s", why);
        return -1;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
    if (rc) {
        h->host->log(h->inst, EVBUS_LOG_ERROR, "cannot listen on %s: %s", spec,
                     gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd =
            socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, 64) < 0) {
            err = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        h->host->log(h->inst, EVBUS_LOG_ERROR, "cannot listen on %s: %s", spec,
                     strerror(err));
        return -1;
    }
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    char addr[NI_MAXHOST] = "?", serv[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) == 0)
        getnameinfo((struct sockaddr *)&sa, sl, addr, sizeof addr, serv,
                    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(h->where, sizeof h->where, "http://%s%s%s:%s",
             strchr(addr, ':') ? "[" : "", addr, strchr(addr, ':') ? "]" : "",
             serv);
    return fd;
}

/* ------------------------------------------------------------- plugin */

static void s_free(s_metrics_t *h)
{
    if (h->daemon)
        MHD_stop_daemon(h->daemon); /* closes the listening socket */
    dm_destroy(&h->derived);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

static int s_init(evbus_instance_t *inst, const evbus_host_t *host,
                  void **userdata)
{
    if (host->struct_size < offsetof(evbus_host_t, figures) + sizeof(void *))
        return -1; /* not reached: the descriptor claims 1.2 */
    s_metrics_t *h = calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->host = host;
    h->inst = inst;
    pthread_mutex_init(&h->lock, NULL);
    h->stall_ms = host->config_int(inst, "stall_after");
    double b[MAX_BUCKETS];
    size_t nb = 0;
    s_buckets(host, inst, b, &nb, 0);
    h->derived =
        dm_new((size_t)host->config_int(inst, "max_label_values"), b, nb);
    if (!h->derived) {
        host->log(inst, EVBUS_LOG_ERROR, "out of memory");
        s_free(h);
        return -1;
    }
    const char *spec = host->config_string(inst, "listen");
    int fd = s_listen(h, spec);
    if (fd < 0) {
        s_free(h);
        return -1;
    }
    int64_t timeout_s =
        (host->config_int(inst, "connection_timeout") + 999) / 1000;
    h->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, s_handle, h, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, h,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)host->config_int(inst, "max_connections"),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)host->config_int(inst, "max_request_size"), MHD_OPTION_END);
    if (!h->daemon) {
        close(fd);
        host->log(inst, EVBUS_LOG_ERROR,
                  "cannot start the HTTP server on %s (libmicrohttpd)",
                  h->where);
        s_free(h);
        return -1;
    }
    host->log(inst, EVBUS_LOG_INFO, "serving %s/metrics, /healthz and /readyz",
              h->where);
    *userdata = h;
    return 0;
}

static int s_deliver(void *userdata, const evbus_event_t *ev,
                     evbus_attempt_t *attempt)
{
    (void)attempt;
    s_metrics_t *h = userdata;
    const evbus_host_t *host = h->host;
    dm_event_t e = {0};
    e.type = host->event_attr(ev, "type");
    e.project = host->event_attr(ev, "project");
    e.accepted_ms = host->event_accepted_ms(ev);
    if (e.type && strncmp(e.type, "task.", 5) == 0) {
        e.has_duration =
            host->event_data_number(ev, "duration_ms", &e.duration_ms) == 0;
        e.has_cost = host->event_data_number(ev, "cost", &e.cost) == 0;
    }
    pthread_mutex_lock(&h->lock);
    dm_observe(h->derived, &e);
    pthread_mutex_unlock(&h->lock);
    return EVBUS_OK;
}

static void s_shutdown(void *userdata)
{
    s_free(userdata);
}

static const evbus_plugin_t s_plugin = {
    .struct_size = sizeof(evbus_plugin_t),
    .abi_version = EVBUS_ABI_1_2, /* host->figures */
    .flags = 0,
    .max_in_flight = 1,
    .tick_interval_ms = 0,
    .reserved0 = 0,
    .name = "metrics",
    .version = EVBUS_VERSION,
    .description = "serves Prometheus /metrics (the broker's figures and "
                   "figures drawn from events), /healthz and /readyz",
    .declare = s_declare,
    .validate = s_validate,
    .init = s_init,
    .deliver = s_deliver,
    .tick = NULL,
    .reopen = NULL,
    .shutdown = s_shutdown,
};

EVBUS_EXPORT const evbus_plugin_t *evbus_plugin_entry(uint32_t host_abi)
{
    if (EVBUS_ABI_MAJOR_OF(host_abi) != 1)
        return NULL;
    return &s_plugin;
}
