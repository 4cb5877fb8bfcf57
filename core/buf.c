#include "buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int evb_buf_reserve(evb_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1; /* room for the NUL */
    if (need <= b->cap)
        return 0;
    if (b->fixed)
        return -1;
    int fresh = b->data == NULL;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    if (fresh)
        p[0] = '\0';
    return 0;
}

int evb_buf_puts(evb_buf_t *b, const char *s)
{
    return evb_buf_append(b, s, strlen(s));
}

int evb_buf_vprintf(evb_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return evb_buf_append(b, small, (size_t)n);
    if (evb_buf_reserve(b, (size_t)n) < 0)
        return -1;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int evb_buf_printf(evb_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = evb_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

void evb_buf_reset(evb_buf_t *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void evb_buf_free(evb_buf_t *b)
{
    if (!b->fixed)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *evb_buf_steal(evb_buf_t *b, size_t *len)
{
    if (!b->data && evb_buf_reserve(b, 0) < 0)
        return NULL;
    b->data[b->len] = '\0'; /* also when nothing was ever appended */
    char *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
