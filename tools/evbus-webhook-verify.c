/* evbus-webhook-verify: check a webhook request's signature the way its
 * receiver should (see --help). For people wiring up an endpoint: given a
 * captured request and the secret, it says whether the signature holds
 * and, when it does not, why. The checking itself is the webhook plugin's
 * own plugins/webhook/sign.c, so the tool and the sender cannot drift. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "sign.h"

#ifndef EVBUS_VERSION
#define EVBUS_VERSION "unknown"
#endif

#define S_NAME "evbus-webhook-verify"
#define S_SECRET_ENV "EVBUS_WEBHOOK_SECRET"

enum { S_VALID = 0, S_INVALID = 1, S_USAGE = 2 };

static const char s_help[] =
    "Usage: " S_NAME " [OPTION]...\n"
    "\n"
    "Check the signature of a webhook request sent by evbus (or by anything\n"
    "that signs the same way) as the receiving endpoint would: from a raw\n"
    "HTTP request (--request), or from headers (--headers, -H) and a body,\n"
    "with the secret the endpoint was configured with.\n"
    "\n"
    "      --scheme NAME           standard (default), github or custom\n"
    "      --secret S              the secret; give two (--secret or\n"
    "                              --secret-env, in any mix) to accept\n"
    "                              either while a secret is rotated\n"
    "      --secret-env VAR        read the secret from environment\n"
    "                              variable VAR\n"
    "      --request FILE          a raw HTTP request: request line,\n"
    "                              headers, blank line, body (CRLF or LF);\n"
    "                              the body stops at its Content-Length\n"
    "      --headers FILE          header lines (Name: value) up to a blank\n"
    "                              line or the end; a request line first\n"
    "                              is skipped\n"
    "      --body FILE             the body, byte for byte (default:\n"
    "                              standard input, unless --request)\n"
    "  -H, --header 'NAME: VALUE'  one header (repeat for more); wins over\n"
    "                              the same header in --request/--headers\n"
    "      --signature-header NAME the signature's header (default: per\n"
    "                              scheme, below)\n"
    "      --timestamp-header NAME the timestamp's header (standard and\n"
    "                              custom)\n"
    "      --tolerance SECONDS     how far the timestamp may be from now\n"
    "                              (default 300; 0 = do not check)\n"
    "      --now UNIX_SECONDS      take this as now (to check a request\n"
    "                              captured earlier)\n"
    "  -h, --help                  print this help, then exit\n"
    "  -V, --version               print the version, then exit\n"
    "\n"
    "FILE may be - for standard input. Header names are case-insensitive.\n"
    "\n"
    "The secret: without --secret or --secret-env it is read from the\n"
    "environment variable " S_SECRET_ENV ". Prefer the environment:\n"
    "a --secret is on the command line, which any user of this machine\n"
    "can read (ps, /proc/PID/cmdline), and your shell may keep it in its\n"
    "history. Secrets are never printed.\n"
    "\n"
    "Schemes and their headers:\n"
    "  standard  Standard Webhooks: webhook-id, webhook-timestamp (Unix\n"
    "            seconds) and webhook-signature: v1,<base64 HMAC-SHA256\n"
    "            of id.timestamp.body>; the secret is whsec_<base64 key>\n"
    "            (the bare base64 is taken too)\n"
    "  github    X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of body>;\n"
    "            no timestamp; the secret's bytes are the key\n"
    "  custom    X-Evbus-Signature: <hex HMAC-SHA256 of timestamp.body>\n"
    "            and X-Evbus-Timestamp: <Unix seconds>; the secret's bytes\n"
    "            are the key\n"
    "A header may hold two signatures, space-separated (secret rotation):\n"
    "one that matches is enough.\n"
    "\n"
    "Examples:\n"
    "  export " S_SECRET_ENV "='whsec_...'\n"
    "  " S_NAME " --request captured.http\n"
    "  " S_NAME " --scheme github --secret-env HOOK_SECRET \\\n"
    "      -H 'X-Hub-Signature-256: sha256=7571...' < body.json\n"
    "\n"
    "Exit status: 0 the signature is valid (\"ok: ...\" on standard\n"
    "output); 1 it is not (the reason on standard error); 2 usage error,\n"
    "no secret, or input that cannot be read.\n";

/* ------------------------------------------------------------- headers */

typedef struct {
    const char *name, *value; /* point into a buffer the caller keeps */
} s_header_t;

typedef struct {
    s_header_t *v;
    size_t n, cap;
} s_headers_t;

static int s_headers_add(s_headers_t *h, const char *name, const char *value)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        s_header_t *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n].name = name;
    h->v[h->n].value = value;
    h->n++;
    return 0;
}

/* RFC 9110 token characters, the only ones a header name may hold. */
static int s_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Split the NUL-terminated "Name: value" at line in place: *name, *value
 * (white space around the value dropped). 0, or -1 when it is not one. */
static int s_split_header(char *line, const char **name, const char **value)
{
    char *p = line;
    while (s_tchar(*p))
        p++;
    if (p == line || *p != ':')
        return -1;
    *p++ = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    char *end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    *name = line;
    *value = p;
    return 0;
}

/* Read header lines from buf (len bytes plus a NUL at buf[len]) into h,
 * splitting buf in place. A first line that is not a header is the
 * request line and is skipped. whole_request: a blank line must end the
 * headers and what follows it is the body (*body, *body_len); otherwise
 * the headers may run to the end. 0, or -1 after saying why. */
static int s_parse_headers(char *buf, size_t len, const char *file,
                           int whole_request, s_headers_t *h, char **body,
                           size_t *body_len)
{
    char *p = buf, *end = buf + len;
    int lineno = 0, blank = 0;
    while (p < end) {
        lineno++;
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        if (eol > p && eol[-1] == '\r')
            eol--;
        if (memchr(p, '\0', (size_t)(eol - p))) {
            fprintf(stderr, S_NAME ": %s:%d: a NUL byte in the headers\n", file,
                    lineno);
            return -1;
        }
        if (eol == p) {
            blank = 1;
            p = next;
            break;
        }
        *eol = '\0';
        const char *name, *value;
        if (s_split_header(p, &name, &value) == 0) {
            if (s_headers_add(h, name, value) < 0) {
                fprintf(stderr, S_NAME ": out of memory\n");
                return -1;
            }
        } else if (lineno > 1) {
            fprintf(stderr,
                    S_NAME ": %s:%d: not a header line (want Name: value)\n",
                    file, lineno);
            return -1;
        }
        p = next;
    }
    if (whole_request) {
        if (!blank) {
            fprintf(stderr,
                    S_NAME ": %s: no blank line after the headers, so no "
                           "body (is it a raw HTTP request?)\n",
                    file);
            return -1;
        }
        *body = p;
        *body_len = (size_t)(end - p);
        return 0;
    }
    for (; p < end; p++) {
        if (!strchr(" \t\r\n", *p)) {
            fprintf(stderr,
                    S_NAME ": %s: text after the headers' blank line: for "
                           "a whole request use --request\n",
                    file);
            return -1;
        }
    }
    return 0;
}

/* The value of header `name`: from -H when given there, else from the
 * file. *count = how many times it appears in that source. */
static const char *s_find(const s_headers_t *cli, const s_headers_t *file,
                          const char *name, size_t *count)
{
    const s_headers_t *srcs[2] = {cli, file};
    for (int s = 0; s < 2; s++) {
        const char *value = NULL;
        size_t n = 0;
        for (size_t i = 0; i < srcs[s]->n; i++) {
            if (strcasecmp(srcs[s]->v[i].name, name) == 0) {
                if (!n)
                    value = srcs[s]->v[i].value;
                n++;
            }
        }
        if (n) {
            *count = n;
            return value;
        }
    }
    *count = 0;
    return NULL;
}

/* --request: the body is what Content-Length says when the request says
 * it (an editor's final newline is not part of it). 0, or -1 after
 * saying why. */
static int s_apply_content_length(const s_headers_t *file, const char *path,
                                  size_t *body_len)
{
    s_headers_t none = {0};
    size_t n;
    const char *te = s_find(&none, file, "Transfer-Encoding", &n);
    if (te && strcasecmp(te, "identity") != 0) {
        fprintf(stderr,
                S_NAME ": %s: Transfer-Encoding %s is not supported: save "
                       "the body on its own and use --headers and --body\n",
                path, te);
        return -1;
    }
    const char *cl = s_find(&none, file, "Content-Length", &n);
    if (!cl)
        return 0;
    char *e;
    errno = 0;
    unsigned long long want = strtoull(cl, &e, 10);
    if (n > 1 || errno || e == cl || *e || *cl < '0' || *cl > '9') {
        fprintf(stderr, S_NAME ": %s: Content-Length is not one number\n",
                path);
        return -1;
    }
    if (want > *body_len) {
        fprintf(stderr,
                S_NAME ": %s: the body has %zu bytes, Content-Length says "
                       "%llu\n",
                path, *body_len, want);
        return -1;
    }
    *body_len = (size_t)want;
    return 0;
}

/* ----------------------------------------------------------------- input */

/* The whole of path ("-" = standard input), NUL-terminated, into a malloc'd
 * buffer; NULL after saying why. */
static char *s_slurp(const char *path, size_t *len)
{
    int is_stdin = strcmp(path, "-") == 0;
    FILE *fp = is_stdin ? stdin : fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, S_NAME ": cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    char *b = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 65536;
            char *nb = realloc(b, cap);
            if (!nb) {
                fprintf(stderr, S_NAME ": %s: out of memory\n", path);
                goto fail;
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n - 1, fp);
        n += r;
        if (r == 0)
            break;
    }
    if (ferror(fp)) {
        fprintf(stderr, S_NAME ": cannot read %s: %s\n",
                is_stdin ? "standard input" : path, strerror(errno));
        goto fail;
    }
    if (!is_stdin)
        fclose(fp);
    b[n] = '\0';
    *len = n;
    return b;
fail:
    if (!is_stdin)
        fclose(fp);
    free(b);
    return NULL;
}

/* A decimal integer >= 0 for option `opt`; -1 after saying why. */
static int s_seconds(const char *opt, const char *s, int64_t *out)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s || *e || v < 0 || *s < '0' || *s > '9') {
        fprintf(stderr, S_NAME ": --%s wants whole seconds, got \"%s\"\n", opt,
                s);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

/* ------------------------------------------------------------------ main */

enum {
    OPT_SCHEME = 256,
    OPT_SECRET,
    OPT_SECRET_ENV,
    OPT_REQUEST,
    OPT_HEADERS,
    OPT_BODY,
    OPT_SIGNATURE_HEADER,
    OPT_TIMESTAMP_HEADER,
    OPT_TOLERANCE,
    OPT_NOW
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"scheme", required_argument, NULL, OPT_SCHEME},
        {"secret", required_argument, NULL, OPT_SECRET},
        {"secret-env", required_argument, NULL, OPT_SECRET_ENV},
        {"request", required_argument, NULL, OPT_REQUEST},
        {"headers", required_argument, NULL, OPT_HEADERS},
        {"body", required_argument, NULL, OPT_BODY},
        {"header", required_argument, NULL, 'H'},
        {"signature-header", required_argument, NULL, OPT_SIGNATURE_HEADER},
        {"timestamp-header", required_argument, NULL, OPT_TIMESTAMP_HEADER},
        {"tolerance", required_argument, NULL, OPT_TOLERANCE},
        {"now", required_argument, NULL, OPT_NOW},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    int status = S_USAGE;
    wh_scheme_t scheme = WH_SCHEME_STANDARD;
    char *secrets[WH_MAX_KEYS + 1] = {NULL};
    char labels[WH_MAX_KEYS][128];
    size_t nsecrets = 0;
    const char *request = NULL, *headers = NULL, *body_path = NULL;
    const char *sig_header = NULL, *ts_header = NULL;
    int64_t tolerance = 300, now = (int64_t)time(NULL);
    s_headers_t cli = {0}, file = {0};
    char **cli_lines = NULL;
    size_t ncli = 0;
    char *file_buf = NULL, *body_buf = NULL;
    wh_key_t *keys[WH_MAX_KEYS] = {NULL};

    int c;
    while ((c = getopt_long(argc, argv, "H:hV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SCHEME:
            if (wh_scheme_parse(optarg, &scheme) < 0) {
                fprintf(stderr,
                        S_NAME ": --scheme wants standard, github or custom, "
                               "got \"%s\"\n",
                        optarg);
                goto done;
            }
            if (scheme == WH_SCHEME_NONE) {
                fprintf(stderr, S_NAME ": --scheme none: an unsigned request "
                                       "has nothing to verify\n");
                goto done;
            }
            break;
        case OPT_SECRET:
        case OPT_SECRET_ENV: {
            if (nsecrets == WH_MAX_KEYS) {
                fprintf(stderr,
                        S_NAME ": at most %d secrets (the current one and "
                               "the one being rotated out)\n",
                        WH_MAX_KEYS);
                goto done;
            }
            const char *s = optarg;
            if (c == OPT_SECRET_ENV) {
                s = getenv(optarg);
                if (!s) {
                    fprintf(stderr,
                            S_NAME ": --secret-env: environment variable %s "
                                   "is not set\n",
                            optarg);
                    goto done;
                }
                snprintf(labels[nsecrets], sizeof labels[nsecrets],
                         "--secret-env %s", optarg);
            } else {
                snprintf(labels[nsecrets], sizeof labels[nsecrets],
                         "--secret #%zu", nsecrets + 1);
            }
            secrets[nsecrets] = strdup(s);
            if (!secrets[nsecrets]) {
                fprintf(stderr, S_NAME ": out of memory\n");
                goto done;
            }
            nsecrets++;
            /* shortens the time ps can show it; it cannot undo it */
            if (c == OPT_SECRET)
                memset(optarg, 0, strlen(optarg));
            break;
        }
        case OPT_REQUEST:
        case OPT_HEADERS:
        case OPT_BODY: {
            const char **slot = c == OPT_REQUEST   ? &request
                                : c == OPT_HEADERS ? &headers
                                                   : &body_path;
            if (*slot) {
                fprintf(stderr, S_NAME ": --%s given twice\n",
                        c == OPT_REQUEST   ? "request"
                        : c == OPT_HEADERS ? "headers"
                                           : "body");
                goto done;
            }
            *slot = optarg;
            break;
        }
        case 'H': {
            char **lines = realloc(cli_lines, (ncli + 1) * sizeof *lines);
            char *line = strdup(optarg);
            if (lines)
                cli_lines = lines;
            if (!lines || !line) {
                free(line);
                fprintf(stderr, S_NAME ": out of memory\n");
                goto done;
            }
            cli_lines[ncli++] = line;
            const char *name, *value;
            if (s_split_header(line, &name, &value) < 0) {
                fprintf(stderr, S_NAME ": -H wants 'Name: value', got \"%s\"\n",
                        optarg);
                goto done;
            }
            if (s_headers_add(&cli, name, value) < 0) {
                fprintf(stderr, S_NAME ": out of memory\n");
                goto done;
            }
            break;
        }
        case OPT_SIGNATURE_HEADER:
            sig_header = optarg;
            break;
        case OPT_TIMESTAMP_HEADER:
            ts_header = optarg;
            break;
        case OPT_TOLERANCE:
            if (s_seconds("tolerance", optarg, &tolerance) < 0)
                goto done;
            break;
        case OPT_NOW:
            if (s_seconds("now", optarg, &now) < 0)
                goto done;
            break;
        case 'h':
            fputs(s_help, stdout);
            status = S_VALID;
            goto done;
        case 'V':
            printf(S_NAME " %s\n", EVBUS_VERSION);
            status = S_VALID;
            goto done;
        default:
            fprintf(stderr, "Try '" S_NAME " --help'.\n");
            goto done;
        }
    }
    if (optind < argc) {
        fprintf(stderr,
                S_NAME ": unexpected argument \"%s\"\nTry '" S_NAME
                       " --help'.\n",
                argv[optind]);
        goto done;
    }
    if (request && (headers || body_path)) {
        fprintf(stderr, S_NAME ": --request holds the headers and the body: "
                               "no --headers or --body with it\n");
        goto done;
    }
    if (scheme == WH_SCHEME_GITHUB && ts_header) {
        fprintf(stderr, S_NAME ": --timestamp-header: github signatures carry "
                               "no timestamp\n");
        goto done;
    }
    int stdin_users = (request && strcmp(request, "-") == 0) +
                      (headers && strcmp(headers, "-") == 0) +
                      (!request && (!body_path || strcmp(body_path, "-") == 0));
    if (stdin_users > 1) {
        fprintf(stderr, S_NAME ": only one of the inputs can be standard "
                               "input (the body is, without --body)\n");
        goto done;
    }
    if (nsecrets == 0) {
        const char *s = getenv(S_SECRET_ENV);
        if (!s) {
            fprintf(stderr,
                    S_NAME ": no secret: set " S_SECRET_ENV
                           ", or give --secret-env VAR or --secret S\n");
            goto done;
        }
        snprintf(labels[0], sizeof labels[0], "%s", S_SECRET_ENV);
        secrets[0] = strdup(s);
        if (!secrets[0]) {
            fprintf(stderr, S_NAME ": out of memory\n");
            goto done;
        }
        nsecrets = 1;
    }
    for (size_t i = 0; i < nsecrets; i++) {
        char err[256];
        keys[i] = wh_key_new(scheme, secrets[i], err, sizeof err);
        if (!keys[i]) {
            fprintf(stderr, S_NAME ": %s: %s\n", labels[i], err);
            goto done;
        }
    }

    /* the request */
    const char *body = NULL;
    size_t body_len = 0, file_len = 0;
    if (request) {
        char *b = NULL;
        if (!(file_buf = s_slurp(request, &file_len)) ||
            s_parse_headers(file_buf, file_len, request, 1, &file, &b,
                            &body_len) < 0 ||
            s_apply_content_length(&file, request, &body_len) < 0)
            goto done;
        body = b;
    } else {
        if (headers && (!(file_buf = s_slurp(headers, &file_len)) ||
                        s_parse_headers(file_buf, file_len, headers, 0, &file,
                                        NULL, NULL) < 0))
            goto done;
        const char *from = body_path ? body_path : "-";
        if (strcmp(from, "-") == 0 && isatty(STDIN_FILENO))
            fprintf(stderr, S_NAME ": reading the body from standard input "
                                   "(end it with Ctrl-D)\n");
        if (!(body_buf = s_slurp(from, &body_len)))
            goto done;
        body = body_buf;
    }

    /* its signature */
    const char *id_name = "webhook-id";
    if (!sig_header)
        sig_header = scheme == WH_SCHEME_STANDARD ? "webhook-signature"
                     : scheme == WH_SCHEME_GITHUB ? "X-Hub-Signature-256"
                                                  : "X-Evbus-Signature";
    if (!ts_header)
        ts_header = scheme == WH_SCHEME_STANDARD ? "webhook-timestamp"
                                                 : "X-Evbus-Timestamp";
    const char *names[3] = {scheme == WH_SCHEME_STANDARD ? id_name : NULL,
                            scheme != WH_SCHEME_GITHUB ? ts_header : NULL,
                            sig_header};
    const char *values[3] = {NULL, NULL, NULL};
    status = S_INVALID;
    for (int i = 0; i < 3; i++) {
        if (!names[i])
            continue;
        size_t count;
        values[i] = s_find(&cli, &file, names[i], &count);
        if (!values[i] || !*values[i]) {
            fprintf(stderr, S_NAME ": invalid: %s %s header\n",
                    values[i] ? "empty" : "missing", names[i]);
            goto done;
        }
        if (count > 1) {
            fprintf(stderr, S_NAME ": invalid: %zu %s headers, want one\n",
                    count, names[i]);
            goto done;
        }
    }
    char why[256];
    if (wh_verify(scheme, keys, nsecrets, values[0], values[1], values[2], body,
                  body_len, now, tolerance, why, sizeof why) < 0) {
        fprintf(stderr, S_NAME ": invalid: %s\n", why);
        if (strstr(why, "away from now"))
            fprintf(stderr, S_NAME ": (a request captured earlier? give "
                                   "--now, or --tolerance 0)\n");
        goto done;
    }
    printf("ok: signature valid (%s)\n", wh_scheme_name(scheme));
    status = S_VALID;
done:
    for (size_t i = 0; i < WH_MAX_KEYS; i++)
        wh_key_free(&keys[i]);
    for (size_t i = 0; i < nsecrets; i++) {
        OPENSSL_cleanse(secrets[i], strlen(secrets[i]));
        free(secrets[i]);
    }
    for (size_t i = 0; i < ncli; i++)
        free(cli_lines[i]);
    free(cli_lines);
    free(cli.v);
    free(file.v);
    free(file_buf);
    free(body_buf);
    return status;
}
