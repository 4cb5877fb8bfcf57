/* evbus-pub: publish events to an evbus broker from the command line or
 * from JSON lines on stdin (see --help and docs/protocol.md). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <evbus/client.h>

/* Exit statuses, documented in --help. */
enum {
    S_OK = 0,
    S_INVALID = 1, /* an event was rejected or is invalid */
    S_USAGE = 2,
    S_TIMEOUT = 3, /* ack mode: no receipt / broker unreachable */
    S_DROPPED = 4, /* fire-and-forget: not sent (high-water mark) */
};

#define S_MAX_ATTRS 64

typedef struct {
    const char *name;
    const char *value;
} s_kv_t;

typedef struct {
    const char *type;
    const char *id;
    const char *data;          /* JSON text, "@file" or "-" */
    s_kv_t attrs[S_MAX_ATTRS]; /* --source ... --attr, in order */
    int n_attrs;
    const char *endpoint;
    int ack;
    int timeout_ms;
    int quiet;
} s_opts_t;

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: evbus-pub --type TYPE [OPTION]...   publish one event\n"
        "       evbus-pub [OPTION]... < events.jsonl  publish JSON lines\n"
        "\n"
        "Publish events to an evbus broker (wire protocol: "
        "docs/protocol.md).\n"
        "Without --type, each line of stdin is one CloudEvents JSON object "
        "(as\n"
        "evbus-sub prints them); blank lines are skipped, a bad line is "
        "reported\n"
        "on stderr with its number and the next one is published.\n"
        "\n"
        "Event:\n"
        "  -t, --type TYPE       event type, e.g. task.completed\n"
        "  -s, --source URI      CloudEvents source, e.g. ci/runner-3\n"
        "      --subject TEXT    CloudEvents subject\n"
        "  -p, --project NAME    routing attribute project\n"
        "      --ticket NAME     routing attribute ticket\n"
        "      --agent NAME      routing attribute agent\n"
        "      --id ID           event id (default: a new UUIDv7); the "
        "broker's\n"
        "                        idempotency key, reuse it to retry\n"
        "  -d, --data JSON       the data: JSON text, @FILE for a file's "
        "contents,\n"
        "                        or - to read it from stdin\n"
        "  -a, --attr NAME=VALUE any string attribute ([a-z0-9]{1,20}); "
        "repeatable\n"
        "In line mode --source, --subject, --project, --ticket, --agent "
        "and --attr\n"
        "fill in what a line leaves out; --id and --data are not allowed "
        "there.\n"
        "\n"
        "Connection:\n"
        "  -e, --endpoint URL    broker endpoint (default %s,\n"
        "                        with --ack %s)\n"
        "  -A, --ack             acknowledged mode: wait for the broker's "
        "receipt\n"
        "                        of each event and print its id on stdout\n"
        "  -T, --timeout MS      how long to wait for each receipt (default "
        "5000)\n"
        "  -q, --quiet           print no ids\n"
        "  -h, --help            print this help, then exit\n"
        "  -V, --version         print the version, then exit\n"
        "\n"
        "Without --ack the event is sent fire-and-forget: evbus-pub waits "
        "up to 1 s\n"
        "for the broker to subscribe, queues the event and, on exit, waits "
        "up to\n"
        "2 s for it to be written out; nothing tells whether the broker "
        "accepted it.\n"
        "\n"
        "Exit status:\n"
        "  0  every event was published (with --ack: accepted)\n"
        "  1  an event was invalid, or the broker rejected it (stderr says "
        "which\n"
        "     and why)\n"
        "  2  usage error\n"
        "  3  --ack: no receipt within the timeout (broker unreachable?), "
        "or a\n"
        "     ZeroMQ failure\n"
        "  4  fire-and-forget: the event was not sent (no broker "
        "subscribed, or\n"
        "     the high-water mark was reached)\n"
        "When lines fail for different reasons, the status is the highest "
        "code.\n",
        EVBUS_DEFAULT_PUB_ENDPOINT, EVBUS_DEFAULT_ACK_ENDPOINT);
}

/* Read a whole stream into a NUL-terminated buffer. */
static char *s_slurp(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (ferror(f)) {
            free(buf);
            return NULL;
        }
        if (feof(f))
            break;
        if (cap - n - 1 == 0) {
            char *t = realloc(buf, cap * 2);
            if (!t) {
                free(buf);
                return NULL;
            }
            buf = t;
            cap *= 2;
        }
    }
    if (!buf)
        return NULL;
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static char *s_read_data(const char *spec)
{
    if (strcmp(spec, "-") == 0) {
        char *s = s_slurp(stdin, NULL);
        if (!s)
            fprintf(stderr, "evbus-pub: cannot read data from stdin: %s\n",
                    strerror(errno));
        return s;
    }
    if (spec[0] == '@') {
        FILE *f = fopen(spec + 1, "rb");
        if (!f) {
            fprintf(stderr, "evbus-pub: cannot open %s: %s\n", spec + 1,
                    strerror(errno));
            return NULL;
        }
        char *s = s_slurp(f, NULL);
        if (!s)
            fprintf(stderr, "evbus-pub: cannot read %s: %s\n", spec + 1,
                    strerror(errno));
        fclose(f);
        return s;
    }
    char *s = strdup(spec);
    if (!s)
        fprintf(stderr, "evbus-pub: out of memory\n");
    return s;
}

/* Publish one event; returns the exit status it earns. `where` prefixes
 * messages ("" or "line 3: "). */
static int s_publish(evbus_client_t *c, evbus_msg_t *m, const s_opts_t *o,
                     const char *where)
{
    int rc =
        o->ack ? evbus_publish_ack(c, m, o->timeout_ms) : evbus_publish(c, m);
    if (rc == 0) {
        if (o->ack && !o->quiet) {
            printf("%s\n", evbus_msg_get(m, "id"));
            fflush(stdout);
        }
        return S_OK;
    }
    const char *why = evbus_client_reason(c);
    switch (rc) {
    case EVBUS_E_REJECTED:
        fprintf(stderr, "evbus-pub: %sevent %s (%s) rejected: %s\n", where,
                evbus_msg_get(m, "id"), evbus_msg_get(m, "type"), why);
        return S_INVALID;
    case EVBUS_E_TIMEOUT:
        fprintf(stderr, "evbus-pub: %s%s\n", where, why);
        return S_TIMEOUT;
    case EVBUS_E_DROPPED:
        fprintf(stderr, "evbus-pub: %s%s\n", where, why);
        return S_DROPPED;
    case EVBUS_E_INVALID:
        fprintf(stderr, "evbus-pub: %sinvalid event: %s\n", where,
                evbus_msg_error(m));
        return S_INVALID;
    default:
        fprintf(stderr, "evbus-pub: %s%s: %s\n", where, evbus_strerror(rc),
                *why ? why : strerror(errno));
        return S_TIMEOUT;
    }
}

/* Apply the command-line attributes; `fill` only sets absent ones. */
static int s_apply_attrs(evbus_msg_t *m, const s_opts_t *o, int fill)
{
    for (int i = 0; i < o->n_attrs; i++) {
        if (fill && evbus_msg_get(m, o->attrs[i].name))
            continue;
        if (evbus_msg_set(m, o->attrs[i].name, o->attrs[i].value) != 0)
            return -1;
    }
    return 0;
}

static int s_one(evbus_client_t *c, const s_opts_t *o)
{
    evbus_msg_t *m = evbus_msg_new(o->type);
    if (!m) {
        fprintf(stderr,
                "evbus-pub: invalid --type \"%s\": event types are "
                "dot-separated lower-case [a-z0-9_-] segments, each "
                "starting with a letter or digit, at most 255 bytes\n",
                o->type);
        return S_INVALID;
    }
    int status = S_OK;
    char *data = NULL;
    if (s_apply_attrs(m, o, 0) < 0 ||
        (o->id && evbus_msg_set(m, "id", o->id) != 0)) {
        fprintf(stderr, "evbus-pub: invalid event: %s\n", evbus_msg_error(m));
        status = S_INVALID;
        goto done;
    }
    if (o->data) {
        if (!(data = s_read_data(o->data))) {
            status = S_USAGE;
            goto done;
        }
        if (evbus_msg_set_data_json(m, data) != 0) {
            fprintf(stderr, "evbus-pub: --data: %s\n", evbus_msg_error(m));
            status = S_INVALID;
            goto done;
        }
    }
    status = s_publish(c, m, o, "");
done:
    free(data);
    evbus_msg_destroy(&m);
    return status;
}

static int s_is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return 0;
    return 1;
}

static int s_lines(evbus_client_t *c, const s_opts_t *o)
{
    int status = S_OK;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        if (s_is_blank(line))
            continue;
        char where[32], err[512];
        snprintf(where, sizeof where, "line %ld: ", lineno);
        int rc;
        evbus_msg_t *m = evbus_msg_from_json(line, (size_t)n, err, sizeof err);
        if (!m) {
            fprintf(stderr, "evbus-pub: line %ld: invalid event: %s\n", lineno,
                    err);
            rc = S_INVALID;
        } else if (s_apply_attrs(m, o, 1) < 0) {
            fprintf(stderr, "evbus-pub: line %ld: %s\n", lineno,
                    evbus_msg_error(m));
            rc = S_INVALID;
        } else {
            rc = s_publish(c, m, o, where);
        }
        evbus_msg_destroy(&m);
        if (rc > status)
            status = rc;
    }
    if (ferror(stdin)) {
        fprintf(stderr, "evbus-pub: reading stdin: %s\n", strerror(errno));
        if (status < S_INVALID)
            status = S_INVALID;
    }
    free(line);
    return status;
}

static int s_add_attr(s_opts_t *o, const char *name, const char *value)
{
    if (o->n_attrs == S_MAX_ATTRS) {
        fprintf(stderr, "evbus-pub: more than %d attributes\n", S_MAX_ATTRS);
        return -1;
    }
    /* a later option for the same attribute wins */
    for (int i = 0; i < o->n_attrs; i++)
        if (strcmp(o->attrs[i].name, name) == 0) {
            o->attrs[i].value = value;
            return 0;
        }
    o->attrs[o->n_attrs++] = (s_kv_t){name, value};
    return 0;
}

int main(int argc, char **argv)
{
    enum { O_SUBJECT = 256, O_TICKET, O_AGENT, O_ID };
    static const struct option longopts[] = {
        {"type", required_argument, NULL, 't'},
        {"source", required_argument, NULL, 's'},
        {"subject", required_argument, NULL, O_SUBJECT},
        {"project", required_argument, NULL, 'p'},
        {"ticket", required_argument, NULL, O_TICKET},
        {"agent", required_argument, NULL, O_AGENT},
        {"id", required_argument, NULL, O_ID},
        {"data", required_argument, NULL, 'd'},
        {"attr", required_argument, NULL, 'a'},
        {"endpoint", required_argument, NULL, 'e'},
        {"ack", no_argument, NULL, 'A'},
        {"timeout", required_argument, NULL, 'T'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    s_opts_t o = {.timeout_ms = 5000};
    int c;
    while ((c = getopt_long(argc, argv, "t:s:p:d:a:e:AT:qhV", longopts,
                            NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case 't':
            o.type = optarg;
            break;
        case 's':
            rc = s_add_attr(&o, "source", optarg);
            break;
        case O_SUBJECT:
            rc = s_add_attr(&o, "subject", optarg);
            break;
        case 'p':
            rc = s_add_attr(&o, "project", optarg);
            break;
        case O_TICKET:
            rc = s_add_attr(&o, "ticket", optarg);
            break;
        case O_AGENT:
            rc = s_add_attr(&o, "agent", optarg);
            break;
        case O_ID:
            o.id = optarg;
            break;
        case 'd':
            o.data = optarg;
            break;
        case 'a': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr,
                        "evbus-pub: --attr wants NAME=VALUE, got "
                        "\"%s\"\n",
                        optarg);
                return S_USAGE;
            }
            *eq = '\0';
            if (strcmp(optarg, "id") == 0)
                o.id = eq + 1;
            else
                rc = s_add_attr(&o, optarg, eq + 1);
            break;
        }
        case 'e':
            o.endpoint = optarg;
            break;
        case 'A':
            o.ack = 1;
            break;
        case 'T': {
            char *end;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || v < 0 || v > INT_MAX) {
                fprintf(stderr,
                        "evbus-pub: --timeout wants milliseconds, got "
                        "\"%s\"\n",
                        optarg);
                return S_USAGE;
            }
            o.timeout_ms = (int)v;
            break;
        }
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            s_usage(stdout);
            return S_OK;
        case 'V':
            printf("evbus-pub %s\n", EVBUS_VERSION);
            return S_OK;
        default:
            fprintf(stderr, "Try 'evbus-pub --help'.\n");
            return S_USAGE;
        }
        if (rc < 0)
            return S_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr,
                "evbus-pub: unexpected argument \"%s\" (options only; "
                "try --help)\n",
                argv[optind]);
        return S_USAGE;
    }
    if (!o.type && (o.id || o.data)) {
        fprintf(stderr, "evbus-pub: --id and --data need --type (without "
                        "it, events are read as JSON lines from stdin)\n");
        return S_USAGE;
    }
    if (!o.endpoint)
        o.endpoint =
            o.ack ? EVBUS_DEFAULT_ACK_ENDPOINT : EVBUS_DEFAULT_PUB_ENDPOINT;

    evbus_client_t *client = o.ack ? evbus_client_new(NULL, o.endpoint)
                                   : evbus_client_new(o.endpoint, NULL);
    if (!client) {
        fprintf(stderr, "evbus-pub: cannot connect to \"%s\": %s\n", o.endpoint,
                strerror(errno));
        return errno == EINVAL || errno == EPROTONOSUPPORT ? S_USAGE
                                                           : S_TIMEOUT;
    }
    int status = o.type ? s_one(client, &o) : s_lines(client, &o);
    evbus_client_destroy(&client);
    return status;
}
