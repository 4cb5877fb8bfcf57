#include "base64.h"

#include <stdint.h>

static const char s_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "abcdefghijklmnopqrstuvwxyz0123456789+/";

size_t evb_base64_encode_to(char *out, const void *data, size_t n)
{
    const unsigned char *p = data;
    char *d = out;
    size_t i = 0;
    for (; n - i >= 3; i += 3, d += 4) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        d[0] = s_alphabet[v >> 18];
        d[1] = s_alphabet[(v >> 12) & 63];
        d[2] = s_alphabet[(v >> 6) & 63];
        d[3] = s_alphabet[v & 63];
    }
    if (n - i > 0) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (n - i == 2)
            v |= (uint32_t)p[i + 1] << 8;
        d[0] = s_alphabet[v >> 18];
        d[1] = s_alphabet[(v >> 12) & 63];
        d[2] = n - i == 2 ? s_alphabet[(v >> 6) & 63] : '=';
        d[3] = '=';
        d += 4;
    }
    return (size_t)(d - out);
}

int evb_base64_encode(evb_buf_t *out, const void *data, size_t n)
{
    if (n > SIZE_MAX / 4 * 3 - 3)
        return -1;
    size_t olen = EVB_B64_ENCODED_LEN(n);
    if (evb_buf_reserve(out, olen) < 0)
        return -1;
    evb_base64_encode_to(out->data + out->len, data, n);
    out->len += olen;
    out->data[out->len] = '\0';
    return 0;
}

static int s_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int evb_base64_decode_as(evb_buf_t *out, const char *text, size_t n,
                         int mode)
{
    size_t pad = 0;
    while (pad < 2 && n > pad && text[n - pad - 1] == '=')
        pad++;
    size_t m = n - pad; /* characters that carry bits */
    if (m % 4 == 1)
        return -1;
    if ((pad || mode != EVB_B64_UNPADDED) && n % 4 != 0)
        return -1;
    if (evb_buf_reserve(out, m / 4 * 3 + 2) < 0)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < m; i++) {
        int v = s_value(text[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (uint32_t)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out->data[out->len++] = (char)(acc >> bits);
        }
    }
    out->data[out->len] = '\0';
    if (mode == EVB_B64_CANONICAL && (acc & ((1u << bits) - 1)) != 0)
        return -1;
    return 0;
}

int evb_base64_decode(evb_buf_t *out, const char *text, size_t n)
{
    return evb_base64_decode_as(out, text, n, EVB_B64_PADDED);
}
