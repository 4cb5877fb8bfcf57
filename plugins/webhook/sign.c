#include "sign.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "base64.h"

#define S_MAC_LEN 32     /* HMAC-SHA256 */
#define S_B64_LEN EVB_B64_ENCODED_LEN(S_MAC_LEN)
#define S_HEX_LEN 64     /* hex of S_MAC_LEN bytes */
#define S_WHSEC "whsec_" /* Standard Webhooks' secret prefix */
#define S_TS_MAX 24      /* ".<int64>." with its NUL */

struct wh_key {
    wh_scheme_t scheme;
    unsigned char *bytes; /* the decoded secret, len bytes of size */
    size_t len, size;
    /* keyed once in wh_key_new; EVP_MAC_init(ctx, NULL, 0, NULL) restarts
     * it with the same key, skipping the key schedule a one-shot HMAC()
     * would redo for every signature */
    EVP_MAC_CTX *ctx;
};

static const char *const s_scheme_names[] = {"none", "standard", "github",
                                             "custom"};

int wh_scheme_parse(const char *s, wh_scheme_t *out)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, s_scheme_names[i]) == 0) {
            *out = (wh_scheme_t)i;
            return 0;
        }
    }
    return -1;
}

const char *wh_scheme_name(wh_scheme_t scheme)
{
    if ((int)scheme < 0 || (int)scheme > 3)
        return "?";
    return s_scheme_names[scheme];
}

/* ------------------------------------------------------------ helpers */

static void s_say(char *buf, size_t size, const char *fmt, ...)
{
    if (!buf || !size)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static size_t s_hex_encode(const unsigned char *p, size_t n, char *out)
{
    static const char tab[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = tab[p[i] >> 4];
        out[2 * i + 1] = tab[p[i] & 15];
    }
    return 2 * n;
}

static int s_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 2 * n hex digits (either case) -> n bytes. 0 or -1. */
static int s_hex_decode(const char *s, size_t slen, unsigned char *out,
                        size_t n)
{
    if (slen != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = s_hex_value(s[2 * i]), lo = s_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* 1..WH_MAX_KEYS keys, all made for `scheme`. */
static int s_keys_ok(wh_key_t *const *keys, size_t nkeys, wh_scheme_t scheme)
{
    if (!keys || nkeys < 1 || nkeys > WH_MAX_KEYS)
        return 0;
    for (size_t i = 0; i < nkeys; i++)
        if (!keys[i] || keys[i]->scheme != scheme)
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- keys */

wh_key_t *wh_key_new(wh_scheme_t scheme, const char *secret, char *err,
                     size_t errsz)
{
    s_say(err, errsz, "%s", "");
    if (scheme == WH_SCHEME_NONE) {
        s_say(err, errsz, "the \"none\" scheme signs nothing: no secret");
        return NULL;
    }
    if (scheme != WH_SCHEME_STANDARD && scheme != WH_SCHEME_GITHUB &&
        scheme != WH_SCHEME_CUSTOM) {
        s_say(err, errsz, "unknown signature scheme %d", (int)scheme);
        return NULL;
    }
    if (!secret || !*secret) {
        s_say(err, errsz, "secret is empty");
        return NULL;
    }
    wh_key_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_say(err, errsz, "out of memory");
        return NULL;
    }
    self->scheme = scheme;
    size_t n = strlen(secret);
    if (scheme == WH_SCHEME_STANDARD) {
        const char *b64 = secret;
        int prefixed = strncmp(secret, S_WHSEC, strlen(S_WHSEC)) == 0;
        if (prefixed) {
            b64 += strlen(S_WHSEC);
            n -= strlen(S_WHSEC);
        }
        if (n == 0) {
            s_say(err, errsz, "secret is empty after \"" S_WHSEC "\"");
            goto fail;
        }
        self->size = n / 4 * 3 + 3;
        self->bytes = malloc(self->size);
        if (!self->bytes) {
            s_say(err, errsz, "out of memory");
            goto fail;
        }
        /* the reasons name the expected form, never what was given */
        /* padding optional, as the reference libraries take secrets */
        evb_buf_t key = EVB_BUF_FIXED((char *)self->bytes, self->size);
        int bad = evb_base64_decode_as(&key, b64, n, EVB_B64_UNPADDED) < 0;
        self->len = key.len;
        if (bad || self->len == 0) {
            if (prefixed)
                s_say(err, errsz,
                      "secret is not valid base64 after \"" S_WHSEC
                      "\" (want " S_WHSEC "<standard base64 of the key>)");
            else
                s_say(err, errsz,
                      "secret is neither \"" S_WHSEC "<base64>\" nor bare "
                      "base64, as Standard Webhooks secrets are");
            goto fail;
        }
    } else {
        self->size = self->len = n;
        self->bytes = malloc(n);
        if (!self->bytes) {
            s_say(err, errsz, "out of memory");
            goto fail;
        }
        memcpy(self->bytes, secret, n);
    }

    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    self->ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context holds its own reference */
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end()};
    if (!self->ctx ||
        !EVP_MAC_init(self->ctx, self->bytes, self->len, params)) {
        char ossl[200];
        ERR_error_string_n(ERR_get_error(), ossl, sizeof ossl);
        ERR_clear_error();
        s_say(err, errsz, "cannot set up HMAC-SHA256: %s", ossl);
        goto fail;
    }
    return self;
fail:
    wh_key_free(&self);
    return NULL;
}

void wh_key_free(wh_key_t **self)
{
    if (!self || !*self)
        return;
    wh_key_t *k = *self;
    EVP_MAC_CTX_free(k->ctx); /* clears its copy of the key */
    if (k->bytes)
        OPENSSL_cleanse(k->bytes, k->size);
    free(k->bytes);
    OPENSSL_cleanse(k, sizeof *k);
    free(k);
    *self = NULL;
}

/* ------------------------------------------------------------- signing */

typedef struct {
    const void *p;
    size_t n;
} s_part_t;

/* HMAC of the parts one after another, as if concatenated (the body is
 * fed where it lies, never copied). 0 or -1. */
static int s_mac(wh_key_t *key, const s_part_t *parts, size_t nparts,
                 unsigned char mac[S_MAC_LEN])
{
    size_t outl = 0;
    if (!EVP_MAC_init(key->ctx, NULL, 0, NULL))
        goto fail;
    for (size_t i = 0; i < nparts; i++)
        if (parts[i].n && !EVP_MAC_update(key->ctx, parts[i].p, parts[i].n))
            goto fail;
    if (!EVP_MAC_final(key->ctx, mac, &outl, S_MAC_LEN) || outl != S_MAC_LEN)
        goto fail;
    return 0;
fail:
    ERR_clear_error();
    return -1;
}

/* msg_id "." timestamp "." body */
static int s_mac_standard(wh_key_t *key, const char *msg_id, int64_t ts,
                          const void *body, size_t len,
                          unsigned char mac[S_MAC_LEN])
{
    char t[S_TS_MAX];
    int tn = snprintf(t, sizeof t, ".%" PRId64 ".", ts);
    s_part_t parts[] = {{msg_id, strlen(msg_id)}, {t, (size_t)tn}, {body, len}};
    return s_mac(key, parts, 3, mac);
}

/* timestamp "." body */
static int s_mac_custom(wh_key_t *key, int64_t ts, const void *body, size_t len,
                        unsigned char mac[S_MAC_LEN])
{
    char t[S_TS_MAX];
    int tn = snprintf(t, sizeof t, "%" PRId64 ".", ts);
    s_part_t parts[] = {{t, (size_t)tn}, {body, len}};
    return s_mac(key, parts, 2, mac);
}

static int s_mac_github(wh_key_t *key, const void *body, size_t len,
                        unsigned char mac[S_MAC_LEN])
{
    s_part_t parts[] = {{body, len}};
    return s_mac(key, parts, 1, mac);
}

/* The space-separated header value, one "<prefix><encoded MAC>" per key.
 * A NULL msg_id selects the custom content (timestamp.body). */
static size_t s_sign(wh_key_t *const *keys, size_t nkeys, wh_scheme_t scheme,
                     const char *msg_id, int64_t ts, const void *body,
                     size_t len, char *out, size_t cap)
{
    if (out && cap)
        out[0] = '\0';
    if (!out || !s_keys_ok(keys, nkeys, scheme) || (!body && len))
        return 0;
    const char *prefix = scheme == WH_SCHEME_STANDARD ? "v1,"
                         : scheme == WH_SCHEME_GITHUB ? "sha256="
                                                      : "";
    size_t each =
        strlen(prefix) + (scheme == WH_SCHEME_STANDARD ? S_B64_LEN : S_HEX_LEN);
    if (cap < nkeys * (each + 1)) /* a space between, the NUL at the end */
        return 0;
    char *p = out;
    for (size_t i = 0; i < nkeys; i++) {
        unsigned char mac[S_MAC_LEN];
        int rc = scheme == WH_SCHEME_STANDARD
                     ? s_mac_standard(keys[i], msg_id, ts, body, len, mac)
                 : scheme == WH_SCHEME_GITHUB
                     ? s_mac_github(keys[i], body, len, mac)
                     : s_mac_custom(keys[i], ts, body, len, mac);
        if (rc < 0) {
            out[0] = '\0';
            return 0;
        }
        if (i)
            *p++ = ' ';
        memcpy(p, prefix, strlen(prefix));
        p += strlen(prefix);
        p += scheme == WH_SCHEME_STANDARD
                 ? evb_base64_encode_to(p, mac, S_MAC_LEN)
                 : s_hex_encode(mac, S_MAC_LEN, p);
    }
    *p = '\0';
    return (size_t)(p - out);
}

size_t wh_sign_standard(wh_key_t *const *keys, size_t nkeys, const char *msg_id,
                        int64_t timestamp, const void *body, size_t len,
                        char *out, size_t cap)
{
    if (!msg_id) {
        if (out && cap)
            out[0] = '\0';
        return 0;
    }
    return s_sign(keys, nkeys, WH_SCHEME_STANDARD, msg_id, timestamp, body, len,
                  out, cap);
}

size_t wh_sign_github(wh_key_t *key, const void *body, size_t len, char *out,
                      size_t cap)
{
    return s_sign(&key, 1, WH_SCHEME_GITHUB, NULL, 0, body, len, out, cap);
}

size_t wh_sign_custom(wh_key_t *const *keys, size_t nkeys, int64_t timestamp,
                      const void *body, size_t len, char *out, size_t cap)
{
    return s_sign(keys, nkeys, WH_SCHEME_CUSTOM, NULL, timestamp, body, len,
                  out, cap);
}

/* -------------------------------------------------------- verification */

/* Unix seconds: 1 to 18 decimal digits, nothing else (so no overflow and
 * no sign, space or "1e9" slips through). 0 or -1. */
static int s_parse_ts(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n < 1 || n > 18)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Whether s is short printable ASCII that can be quoted in a reason as it
 * is (headers come from the network: no control characters in logs). */
static int s_quotable(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 32 || s[n] < 0x20 || s[n] > 0x7e || s[n] == '"')
            return 0;
    return 1;
}

int wh_verify(wh_scheme_t scheme, wh_key_t *const *keys, size_t nkeys,
              const char *msg_id, const char *timestamp,
              const char *signature_header, const void *body, size_t len,
              int64_t now, int64_t tolerance_s, char *why, size_t whysz)
{
    s_say(why, whysz, "%s", "");
    if (scheme != WH_SCHEME_STANDARD && scheme != WH_SCHEME_GITHUB &&
        scheme != WH_SCHEME_CUSTOM) {
        s_say(why, whysz, "the \"%s\" scheme has no signature to check",
              wh_scheme_name(scheme));
        return -1;
    }
    if (!s_keys_ok(keys, nkeys, scheme)) {
        s_say(why, whysz, "need 1 to %d keys made for the %s scheme",
              WH_MAX_KEYS, wh_scheme_name(scheme));
        return -1;
    }
    if (!body && len) {
        s_say(why, whysz, "no body");
        return -1;
    }
    const char *sig_name = scheme == WH_SCHEME_STANDARD ? "webhook-signature"
                           : scheme == WH_SCHEME_GITHUB ? "X-Hub-Signature-256"
                                                        : "signature";
    const char *ts_name =
        scheme == WH_SCHEME_STANDARD ? "webhook-timestamp" : "timestamp";

    if (scheme == WH_SCHEME_STANDARD && (!msg_id || !*msg_id)) {
        s_say(why, whysz, "%s webhook-id header", msg_id ? "empty" : "missing");
        return -1;
    }
    int64_t ts = 0;
    if (scheme != WH_SCHEME_GITHUB) {
        if (!timestamp || !*timestamp) {
            s_say(why, whysz, "%s %s header", timestamp ? "empty" : "missing",
                  ts_name);
            return -1;
        }
        if (s_parse_ts(timestamp, &ts) < 0) {
            if (s_quotable(timestamp))
                s_say(why, whysz,
                      "timestamp \"%s\" is not an integer (Unix seconds)",
                      timestamp);
            else
                s_say(why, whysz, "timestamp is not an integer (Unix seconds)");
            return -1;
        }
        if (tolerance_s > 0) {
            /* unsigned: the gap between any two int64 fits */
            uint64_t gap = ts >= now ? (uint64_t)ts - (uint64_t)now
                                     : (uint64_t)now - (uint64_t)ts;
            if (gap > (uint64_t)tolerance_s) {
                s_say(why, whysz,
                      "timestamp %" PRId64 " is %" PRIu64
                      " s away from now (tolerance %" PRId64 " s)",
                      ts, gap, tolerance_s);
                return -1;
            }
        }
    }
    if (!signature_header || !*signature_header) {
        s_say(why, whysz, "%s %s header",
              signature_header ? "empty" : "missing", sig_name);
        return -1;
    }

    unsigned char macs[WH_MAX_KEYS][S_MAC_LEN];
    for (size_t k = 0; k < nkeys; k++) {
        int rc = scheme == WH_SCHEME_STANDARD
                     ? s_mac_standard(keys[k], msg_id, ts, body, len, macs[k])
                 : scheme == WH_SCHEME_GITHUB
                     ? s_mac_github(keys[k], body, len, macs[k])
                     : s_mac_custom(keys[k], ts, body, len, macs[k]);
        if (rc < 0) {
            s_say(why, whysz, "HMAC-SHA256 failed in OpenSSL");
            return -1;
        }
    }

    const char *prefix = scheme == WH_SCHEME_STANDARD ? "v1,"
                         : scheme == WH_SCHEME_GITHUB ? "sha256="
                                                      : "";
    size_t plen = strlen(prefix);
    size_t checked = 0;
    const char *p = signature_header;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p)
            break;
        const char *tok = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        size_t tlen = (size_t)(p - tok);
        if (tlen < plen || memcmp(tok, prefix, plen) != 0)
            continue; /* another version or algorithm: not ours to judge */
        checked++;
        const char *enc = tok + plen;
        size_t elen = tlen - plen;
        unsigned char got[S_MAC_LEN + 4]; /* a decode's room, and its NUL */
        evb_buf_t g = EVB_BUF_FIXED((char *)got, sizeof got);
        int decoded = scheme == WH_SCHEME_STANDARD
                          ? elen == S_B64_LEN &&
                                evb_base64_decode_as(&g, enc, elen,
                                                     EVB_B64_CANONICAL) == 0 &&
                                g.len == S_MAC_LEN
                          : s_hex_decode(enc, elen, got, S_MAC_LEN) == 0;
        if (!decoded)
            continue;
        for (size_t k = 0; k < nkeys; k++)
            if (CRYPTO_memcmp(got, macs[k], S_MAC_LEN) == 0)
                return 0;
    }
    if (!checked && scheme == WH_SCHEME_STANDARD)
        s_say(why, whysz,
              "no \"v1,\" signature in the signature header (want "
              "\"v1,<base64>\")");
    else if (!checked && scheme == WH_SCHEME_GITHUB)
        s_say(why, whysz,
              "no \"sha256=\" signature in the signature header (want "
              "\"sha256=<hex>\")");
    else
        s_say(why, whysz,
              "no signature matches (%zu signature%s checked against %zu "
              "key%s)",
              checked, checked == 1 ? "" : "s", nkeys, nkeys == 1 ? "" : "s");
    return -1;
}
