/* What destinations answer: a Retry-After header line and value (webhook
 * and Slack), a URL check and label, a body excerpt, and Slack's reply.
 * The first byte picks the parser; the rest is the input. Properties:
 * never crashes, never writes past the given room, terminates what it
 * writes; a Retry-After delay is -1 or within a day. */
#include <string.h>

#include "fuzz.h"
#include "slackapi.h"
#include "whfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    char *z = strndup(in, n); /* as a C string (cut at a NUL) */
    FUZZ_ASSERT(z);
    char out[64];
    memset(out, 'x', sizeof out);
    switch (data[0] % 5) {
    case 0: {
        int64_t ms = whfmt_retry_after_ms(z, 1795000000000LL);
        FUZZ_ASSERT(ms == -1 || (ms >= 0 && ms <= 86400000));
        break;
    }
    case 1:
        if (whfmt_retry_after_header(in, n, out, 17))
            FUZZ_ASSERT(memchr(out, 0, 17) && out[17] == 'x');
        break;
    case 2: {
        char why[32];
        whfmt_url_check(z, why, sizeof why);
        whfmt_url_label(z, out, 17);
        FUZZ_ASSERT(memchr(out, 0, 17) && out[17] == 'x');
        break;
    }
    case 3:
        whfmt_excerpt(in, n, 20, out, 33);
        FUZZ_ASSERT(memchr(out, 0, 33) && out[33] == 'x');
        break;
    default: {
        long status = n ? 100 + (long)(data[1] % 5) * 100 : 200;
        sa_classify(1, status, in, n, out, 17);
        FUZZ_ASSERT(out[17] == 'x'); /* written only on a refusal */
        break;
    }
    }
    free(z);
    return 0;
}
