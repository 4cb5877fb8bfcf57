/* The control request handler (evbusctl's requests): the input is split
 * at NUL bytes into frames, as the control socket hands them over.
 * Properties: every request gets a reply that is valid JSON, with ok set
 * or an error. The router has a real journal and cursor store, and no
 * instances. */
#include <stdio.h>
#include <string.h>

#include <msgpack.h>

#include "config.h"
#include "control.h"
#include "cursors.h"
#include "fuzz.h"
#include "journal.h"
#include "json.h"

#define MAX_ARGS 16

static evb_router_t s_router;
static evb_config_t *s_cfg;

static void s_init(void)
{
    const char *dir = fuzz_setup();
    char path[256], jdir[256], err[256];
    snprintf(jdir, sizeof jdir, "%s/control-journal", dir);
    snprintf(path, sizeof path, "%s/control.conf", dir);
    FILE *f = fopen(path, "w");
    FUZZ_ASSERT(f);
    fprintf(f, "journal = { dir = \"%s\"; };\ndead_letter_dir = \"%s\";\n"
               "instances = ();\n",
            jdir, dir);
    fclose(f);
    int errors = 0;
    s_cfg = evb_config_load_all(path, &errors);
    FUZZ_ASSERT(s_cfg && !errors);
    evb_journal_config_t jc = {jdir, 1 << 20};
    evb_journal_recovery_t rec;
    s_router.journal = evb_journal_open(&jc, &rec, err, sizeof err);
    FUZZ_ASSERT(s_router.journal);
    s_router.cursors = evb_cursors_open(jdir, 1, 0, err, sizeof err);
    FUZZ_ASSERT(s_router.cursors);
    s_router.healthy = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_cfg)
        s_init();
    char *argv[MAX_ARGS];
    int argc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && argc < MAX_ARGS; i++) {
        if (i == size || data[i] == 0) {
            argv[argc] = strndup((const char *)data + start, i - start);
            FUZZ_ASSERT(argv[argc]);
            argc++;
            start = i + 1;
        }
    }
    int ok = -1;
    char *reply = evb_control_handle(&s_router, s_cfg, argc, argv, &ok);
    FUZZ_ASSERT(reply && (ok == 0 || ok == 1));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char err[128];
    FUZZ_ASSERT(evb_json_to_msgpack(reply, strlen(reply), &pk, 64, err,
                                    sizeof err) == 0);
    msgpack_sbuffer_destroy(&sb);
    free(reply);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    return 0;
}
