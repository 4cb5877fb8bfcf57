/* Standard base64 (RFC 4648, section 4), the one implementation shared by
 * the event codec (data_base64, dead letters), the client library and the
 * webhook signer. Pure; needs only buf.c. */
#ifndef EVB_BASE64_H
#define EVB_BASE64_H

#include <stddef.h>

#include "buf.h"

/* How strict a decode is about the form of its input. */
#define EVB_B64_PADDED 0    /* padded to a multiple of 4, as evbus writes */
#define EVB_B64_UNPADDED 1  /* padding may be left out (if present, the
                               length is a multiple of 4); unused bits of
                               the last character are ignored */
#define EVB_B64_CANONICAL 2 /* padded, and the unused bits of the last
                               character zero: the one spelling of a value
                               (signatures compare as text elsewhere) */

/* Characters that encoding n bytes gives (padded). */
#define EVB_B64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)

/* Padded base64 of n bytes into out, which has room for
 * EVB_B64_ENCODED_LEN(n) characters; no NUL. Returns the count. */
size_t evb_base64_encode_to(char *out, const void *data, size_t n);
/* The same, appended to a buffer. 0, or -1 out of memory. */
int evb_base64_encode(evb_buf_t *out, const void *data, size_t n);
/* Append the bytes that n characters of base64 in the form `mode` stand
 * for. 0, or -1 on anything else (or when a fixed buffer is too small);
 * the buffer may then hold a partial result. */
int evb_base64_decode_as(evb_buf_t *out, const char *text, size_t n,
                         int mode);
/* evb_base64_decode_as(..., EVB_B64_PADDED). */
int evb_base64_decode(evb_buf_t *out, const char *text, size_t n);

#endif
