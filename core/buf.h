/* Growable byte buffer, used wherever text or msgpack is built up. */
#ifndef EVB_BUF_H
#define EVB_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct evb_buf {
    char *data; /* always NUL-terminated when len > 0 or after any append */
    size_t len;
    size_t cap;
} evb_buf_t;

#define EVB_BUF_INIT {NULL, 0, 0}

/* All appenders return 0, or -1 when memory runs out (the buffer is then
 * left as it was). */
int evb_buf_reserve(evb_buf_t *b, size_t extra);
int evb_buf_append(evb_buf_t *b, const void *p, size_t n);
int evb_buf_putc(evb_buf_t *b, char c);
int evb_buf_puts(evb_buf_t *b, const char *s);
int evb_buf_printf(evb_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int evb_buf_vprintf(evb_buf_t *b, const char *fmt, va_list ap);
void evb_buf_reset(evb_buf_t *b); /* len = 0, keeps the memory */
void evb_buf_free(evb_buf_t *b);
/* Hand the contents to the caller (free() it) and reset the buffer. */
char *evb_buf_steal(evb_buf_t *b, size_t *len);

#endif
