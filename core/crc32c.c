/* CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
 * every journal record. Portable slicing-by-8 tables, and on x86-64 the
 * SSE4.2 crc32 instruction when the CPU has it (picked once, at the first
 * call): the journal checksums every event on the broker's hot path. */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"

/* Not in journal.h: the unit test calls it to check the portable path on
 * machines where evb_crc32c takes the SSE4.2 one. */
uint32_t evb_crc32c_portable(uint32_t crc, const void *data, size_t n);

#define S_POLY 0x82F63B78u

static uint32_t s_table[8][256];
static uint32_t (*s_impl)(uint32_t, const unsigned char *, size_t);
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_make_tables(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (S_POLY & (0u - (c & 1)));
        s_table[0][i] = c;
    }
    /* table k advances a byte that is followed by k zero bytes */
    for (int k = 1; k < 8; k++)
        for (int i = 0; i < 256; i++) {
            uint32_t c = s_table[k - 1][i];
            s_table[k][i] = (c >> 8) ^ s_table[0][c & 0xff];
        }
}

/* crc is the raw register (already inverted) */
static uint32_t s_portable(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n >= 8) {
        /* byte by byte so the result does not depend on endianness */
        uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                             (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        crc = s_table[7][lo & 0xff] ^ s_table[6][(lo >> 8) & 0xff] ^
              s_table[5][(lo >> 16) & 0xff] ^ s_table[4][lo >> 24] ^
              s_table[3][p[4]] ^ s_table[2][p[5]] ^ s_table[1][p[6]] ^
              s_table[0][p[7]];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = (crc >> 8) ^ s_table[0][(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#include <string.h>

__attribute__((target("sse4.2"))) static uint32_t
s_sse42(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t c = crc;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* unaligned load; x86 is little-endian */
        c = _mm_crc32_u64(c, w);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--)
        c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}

static int s_have_sse42(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
#endif

static void s_init(void)
{
    s_make_tables();
    s_impl = s_portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (s_have_sse42())
        s_impl = s_sse42;
#endif
}

uint32_t evb_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&s_once, s_init);
    return ~s_impl(~crc, data, n);
}

uint32_t evb_crc32c_portable(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&s_once, s_init);
    return ~s_portable(~crc, data, n);
}
