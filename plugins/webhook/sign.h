/* The webhook plugin's signatures: HMAC-SHA256 header values for the three
 * schemes a webhook endpoint can ask for, and their verification (used by
 * tools/evbus-webhook-verify and the tests). Pure code, no I/O, only
 * libcrypto: tests/plugins/test_webhook_sign.c checks it byte for byte
 * against the schemes' published vectors.
 *
 *   standard  Standard Webhooks (standardwebhooks.com): headers webhook-id,
 *             webhook-timestamp and webhook-signature =
 *             "v1,<base64 HMAC-SHA256 of id.timestamp.body>"; the secret is
 *             "whsec_<base64 of the key bytes>".
 *   github    GitHub's X-Hub-Signature-256 = "sha256=<hex HMAC of body>";
 *             the key is the secret's bytes; no timestamp.
 *   custom    "<hex HMAC-SHA256 of timestamp.body>" in a header of the
 *             endpoint's choosing, with the timestamp in another one; the
 *             key is the secret's bytes.
 *
 * While a secret is rotated two keys are active: every signature is made
 * with both and the header carries both, space-separated, so a receiver
 * holding either secret accepts the request (Standard Webhooks' rule).
 *
 * Threads: a key holds one keyed HMAC context that every signature reuses,
 * so a key is used by one thread at a time; different keys may be used by
 * different threads at once. */
#ifndef EVB_WEBHOOK_SIGN_H
#define EVB_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* The `signature` option of an endpoint. */
typedef enum wh_scheme {
    WH_SCHEME_NONE = 0, /* unsigned requests */
    WH_SCHEME_STANDARD, /* Standard Webhooks (the default) */
    WH_SCHEME_GITHUB,   /* X-Hub-Signature-256 */
    WH_SCHEME_CUSTOM    /* hex over timestamp.body, named headers */
} wh_scheme_t;

/* Keys active at once: the current secret and the one being rotated out. */
#define WH_MAX_KEYS 2
/* Room for any header value the wh_sign_* functions write, NUL included
 * (two custom signatures: 2 * 64 + 1 + 1 = 130). */
#define WH_SIGNATURE_MAX 160

/* "none" / "standard" / "github" / "custom" (exactly, lower case) -> *out.
 * Returns 0, or -1 for anything else (NULL included; *out untouched). */
int wh_scheme_parse(const char *s, wh_scheme_t *out);
/* The option value naming a scheme ("github"), "?" when out of range. */
const char *wh_scheme_name(wh_scheme_t scheme);

/* One secret, decoded, with its keyed HMAC-SHA256 context. */
typedef struct wh_key wh_key_t;

/* A key for `scheme` from the secret as configured. STANDARD wants
 * "whsec_<base64>" and, like the reference libraries, also takes the bare
 * base64 (padding optional); GITHUB and CUSTOM use the secret's bytes as
 * they are. Returns the key (free with wh_key_free), or NULL with a
 * one-line reason in err (may be NULL) for an empty secret, invalid
 * base64, the NONE scheme or an OpenSSL failure. The reason never
 * contains the secret or any part of it. The caller keeps `secret`. */
wh_key_t *wh_key_new(wh_scheme_t scheme, const char *secret, char *err,
                     size_t errsz);
/* Zero the key bytes, free the key and set *self to NULL. NULL and
 * *self == NULL are harmless. */
void wh_key_free(wh_key_t **self);

/* The signing functions write a NUL-terminated header value into out and
 * return its length (without the NUL). They return 0, leaving "" in out
 * when cap > 0, when it does not fit in cap bytes (WH_SIGNATURE_MAX always
 * does), when nkeys is not 1..WH_MAX_KEYS, when a key was made for another
 * scheme, when body is NULL with len > 0, or on an OpenSSL failure.
 * With two keys the value holds two signatures, in the order of keys. */

/* webhook-signature: "v1,<base64 HMAC-SHA256 of msg_id.timestamp.body>"
 * per key, space-separated. msg_id is the webhook-id header's value. */
size_t wh_sign_standard(wh_key_t *const *keys, size_t nkeys, const char *msg_id,
                        int64_t timestamp, const void *body, size_t len,
                        char *out, size_t cap);
/* X-Hub-Signature-256: "sha256=<lowercase hex HMAC-SHA256 of body>". */
size_t wh_sign_github(wh_key_t *key, const void *body, size_t len, char *out,
                      size_t cap);
/* The custom signature header: "<lowercase hex HMAC-SHA256 of
 * timestamp.body>" per key, space-separated. */
size_t wh_sign_custom(wh_key_t *const *keys, size_t nkeys, int64_t timestamp,
                      const void *body, size_t len, char *out, size_t cap);

/* Check a request received with the headers' values (NULL = header
 * absent): 0 when one of the signature header's space-separated entries
 * matches one of the keys, else -1 with a one-line reason in why (may be
 * NULL), e.g. "no signature matches (1 signature checked against 2 keys)".
 *   standard  needs msg_id, timestamp and signature_header; only "v1,"
 *             entries count (others, e.g. "v1a,", are skipped);
 *   github    needs signature_header; only "sha256=" entries count;
 *             msg_id and timestamp are ignored;
 *   custom    needs timestamp and signature_header; msg_id is ignored.
 * The timestamp must be a decimal integer (Unix seconds); with
 * tolerance_s > 0 it must also be within tolerance_s seconds of `now`,
 * either way (a clock ahead of ours is as suspect as a replay).
 * Signatures are compared as bytes in constant time; hex may be either
 * case, base64 must be the canonical padded form. The keys must have been
 * made for `scheme`. */
int wh_verify(wh_scheme_t scheme, wh_key_t *const *keys, size_t nkeys,
              const char *msg_id, const char *timestamp,
              const char *signature_header, const void *body, size_t len,
              int64_t now, int64_t tolerance_s, char *why, size_t whysz);

#endif
