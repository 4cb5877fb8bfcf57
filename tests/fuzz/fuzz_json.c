/* JSON -> msgpack (evbus-pub's input) and back. Properties: what parses
 * renders, and the rendering parses to the same msgpack bytes. */
#include <string.h>

#include <msgpack.h>

#include "fuzz.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer pa, pb;
    msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
    msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
    char err[160];
    if (evb_json_to_msgpack((const char *)data, size, &pa, 32, err,
                            sizeof err) == 0) {
        evb_buf_t out = EVB_BUF_INIT;
        const uint8_t *p = (const uint8_t *)a.data;
        FUZZ_ASSERT(evb_json_write_mp(&out, &p, p + a.size, 33) == 0);
        FUZZ_ASSERT(p == (const uint8_t *)a.data + a.size);
        FUZZ_ASSERT(evb_json_to_msgpack(out.data, out.len, &pb, 32, err,
                                        sizeof err) == 0);
        FUZZ_ASSERT(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
        evb_buf_free(&out);
    } else {
        FUZZ_ASSERT(err[0]);
    }
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
    return 0;
}
