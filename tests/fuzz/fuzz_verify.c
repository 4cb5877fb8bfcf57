/* evbus-webhook-verify's reading of a captured HTTP request (--request):
 * request line, header lines, blank line, body. The tool's source is
 * included whole, its main renamed, to reach its (static) parser.
 * Properties: never crashes; a parse that succeeds returns header names
 * of token characters and a body inside the input. */
#define main evbus_webhook_verify_main
int evbus_webhook_verify_main(int argc, char **argv);
#include "../../tools/evbus-webhook-verify.c"
#undef main

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    char *buf = malloc(size);
    FUZZ_ASSERT(buf);
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    /* stderr would fill with the reasons it refuses input */
    FILE *was = stderr;
    stderr = fopen("/dev/null", "w");
    s_headers_t h = {0};
    char *body = NULL;
    size_t body_len = 0;
    int rc = s_parse_headers(buf, size - 1, "fuzz", data[0] & 1, &h, &body,
                             &body_len);
    fclose(stderr);
    stderr = was;
    if (rc == 0) {
        for (size_t i = 0; i < h.n; i++)
            for (const char *c = h.v[i].name; *c; c++)
                FUZZ_ASSERT(s_tchar(*c));
        if (body)
            FUZZ_ASSERT(body >= buf && body + body_len <= buf + size - 1);
    }
    free(h.v);
    free(buf);
    return 0;
}
