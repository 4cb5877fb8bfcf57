/* Replays a fuzz target's corpus without libFuzzer: every file in the
 * directories named on the command line (default: the target's corpus in
 * the source tree), each passed to LLVMFuzzerTestOneInput once. A crash or
 * a failed property aborts, which fails the test. Ends with the summary
 * line tools/run-tests adds up. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#error FUZZ_NAME and FUZZ_CORPUS must be defined
#endif

static int s_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                fclose(f);
                free(buf);
                return -1;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        if (!got)
            break;
        len += got;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    const char *def[] = {FUZZ_CORPUS};
    const char **dirs = argc > 1 ? (const char **)argv + 1 : def;
    int ndirs = argc > 1 ? argc - 1 : 1;
    int n = 0, bad = 0;
    for (int d = 0; d < ndirs; d++) {
        DIR *dir = opendir(dirs[d]);
        if (!dir) {
            fprintf(stderr, "%s: cannot open %s\n", FUZZ_NAME, dirs[d]);
            bad++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(dir))) {
            char path[4096];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", dirs[d], e->d_name);
            if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                continue;
            if (s_run_file(path) < 0) {
                fprintf(stderr, "%s: cannot read %s\n", FUZZ_NAME, path);
                bad++;
                continue;
            }
            n++;
        }
        closedir(dir);
    }
    /* an empty corpus proves nothing */
    if (!n)
        bad++;
    printf("%s: %d passed, %d failed\n", FUZZ_NAME, n, bad);
    return bad ? 1 : 0;
}
