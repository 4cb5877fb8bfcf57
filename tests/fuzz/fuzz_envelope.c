/* The envelope decoder (every refusal rule of docs/protocol.md §4) and
 * every JSON rendering of what it accepts. Input: [type length][type]
 * [envelope]. Properties: an accepted event renders, to valid JSON (it
 * parses back), no longer than the size counted at ingest, which is
 * within max_rendered_size; a journaled copy loads again. */
#include <string.h>

#include <msgpack.h>

#include "event.h"
#include "fuzz.h"
#include "json.h"

static void s_parses(const char *json, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[128];
    FUZZ_ASSERT(evb_json_to_msgpack(json, len, &pk, 40, err, sizeof err) == 0);
    msgpack_sbuffer_destroy(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_setup();
    if (size < 1)
        return 0;
    size_t tlen = data[0] % 32;
    if (tlen > size - 1)
        tlen = size - 1;
    const char *type = (const char *)data + 1;
    const uint8_t *env = data + 1 + tlen;
    size_t elen = size - 1 - tlen;
    /* small limits, so that every one of them is reached */
    const evb_limits_t lim = {4096, 8, 64, 2048, 0};
    evb_reject_t why;
    char detail[256];
    evb_event_t *ev = evb_event_decode(tlen ? type : NULL, tlen, env, elen,
                                       &lim, 1795000000123LL, &why, detail,
                                       sizeof detail);
    if (!ev) {
        FUZZ_ASSERT(why != EVB_REJECT_NONE && detail[0]);
        return 0;
    }
    FUZZ_ASSERT(ev->json_max <= lim.max_rendered_size);
    size_t len = 0;
    const char *json = evb_event_json(ev, &len);
    FUZZ_ASSERT(json && strlen(json) == len && len <= ev->json_max);
    s_parses(json, len);
    char small[64];
    FUZZ_ASSERT(evb_event_json_into(ev, small, sizeof small) == len);
    const char *data_json = evb_event_data_json(ev, &len);
    if (data_json)
        s_parses(data_json, len);
    FUZZ_ASSERT(ev->id && ev->type && ev->time);
    char id[EVB_ID_MAX + 1];
    FUZZ_ASSERT(evb_envelope_id(ev->msgpack, ev->msgpack_len, id) == 0 &&
                strcmp(id, ev->id) == 0);
    evb_event_t *again =
        evb_event_load(ev->msgpack, ev->msgpack_len, 7, ev->accepted_ms,
                       detail, sizeof detail);
    FUZZ_ASSERT(again && again->msgpack_len == ev->msgpack_len);
    evb_event_release(again);
    evb_event_release(ev);
    return 0;
}
