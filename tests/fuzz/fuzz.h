/* What the fuzz targets share. Each target defines LLVMFuzzerTestOneInput;
 * built with libFuzzer (configure --enable-fuzzing, CC=clang) it is
 * fuzzed, and always it is linked with replay.c into a test that `make
 * check` runs over its corpus (tests/fuzz/corpus/NAME: seeds, and every
 * input that ever crashed it, kept as a regression). docs/fuzzing.md. */
#ifndef EVB_FUZZ_H
#define EVB_FUZZ_H

#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The broker's log goes nowhere (config errors are the point of some
 * inputs); a scratch directory, made once. */
static inline const char *fuzz_setup(void)
{
    static char dir[64];
    if (!dir[0]) {
        int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (fd >= 0)
            evb_log_set_fd(fd);
        snprintf(dir, sizeof dir, "/tmp/evb-fuzz.XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    return dir;
}

/* Stop here: a property the target checks does not hold. */
#define FUZZ_ASSERT(cond)                                                    \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: %s does not hold\n", __FILE__, __LINE__, \
                    #cond);                                                  \
            abort();                                                         \
        }                                                                    \
    } while (0)

#endif
