/* Growable byte buffer, used wherever text or msgpack is built up. */
#ifndef EVB_BUF_H
#define EVB_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct evb_buf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
    int fixed; /* data is the caller's: never grown (appends fail) nor freed */
} evb_buf_t;

#define EVB_BUF_INIT {NULL, 0, 0, 0}
/* A buffer over memory the caller owns: appends fail instead of growing. */
#define EVB_BUF_FIXED(mem, size) {(mem), 0, (size), 1}

/* All appenders return 0, or -1 when memory runs out (the buffer is then
 * left as it was). */
int evb_buf_reserve(evb_buf_t *b, size_t extra);

/* The two hottest appenders are inline: JSON rendering calls them for
 * every value of every event. */
static inline int evb_buf_append(evb_buf_t *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap && evb_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static inline int evb_buf_putc(evb_buf_t *b, char c)
{
    if (b->len + 2 > b->cap && evb_buf_reserve(b, 1) < 0)
        return -1;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
}

int evb_buf_puts(evb_buf_t *b, const char *s);
int evb_buf_printf(evb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int evb_buf_vprintf(evb_buf_t *b, const char *fmt, va_list ap);
void evb_buf_reset(evb_buf_t *b); /* len = 0, keeps the memory */
void evb_buf_free(evb_buf_t *b);
/* Hand the contents to the caller (free() it) and reset the buffer. */
char *evb_buf_steal(evb_buf_t *b, size_t *len);

#endif
