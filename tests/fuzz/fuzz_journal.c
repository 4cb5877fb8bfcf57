/* Journal recovery on an arbitrary segment: the bytes after a valid
 * segment header (or, when the first byte is odd, the whole file) are
 * the input. Properties: recovery never crashes and opens the journal;
 * every record a reader returns has a checksum that held and increasing
 * seqs; an append after recovery gets a seq above all of them and reads
 * back. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "journal.h"

static unsigned char s_hdr[32];
static char s_dir[128], s_seg[192];

static void s_clear(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            if (remove(path) < 0) { /* a directory (cursors/) */
                s_clear(path);
                remove(path);
            }
        }
    closedir(d);
}

static void s_init(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/journal", fuzz_setup());
    snprintf(s_seg, sizeof s_seg, "%s/seg-%020d.evj", s_dir, 1);
    evb_journal_config_t cfg = {s_dir, 1 << 20};
    evb_journal_recovery_t rec;
    char err[256];
    evb_journal_t *j = evb_journal_open(&cfg, &rec, err, sizeof err);
    FUZZ_ASSERT(j);
    evb_journal_close(&j);
    FILE *f = fopen(s_seg, "rb");
    FUZZ_ASSERT(f && fread(s_hdr, 1, sizeof s_hdr, f) == sizeof s_hdr);
    fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!s_dir[0])
        s_init();
    s_clear(s_dir);
    FILE *f = fopen(s_seg, "wb");
    FUZZ_ASSERT(f);
    int whole = size && (data[0] & 1);
    if (!whole)
        fwrite(s_hdr, 1, sizeof s_hdr, f);
    if (size > 1)
        fwrite(data + 1, 1, size - 1, f);
    fclose(f);

    evb_journal_config_t cfg = {s_dir, 1 << 20};
    evb_journal_recovery_t rec;
    char err[256];
    evb_journal_t *j = evb_journal_open(&cfg, &rec, err, sizeof err);
    FUZZ_ASSERT(j);
    evb_journal_reader_t *r = evb_journal_reader_new(j, 0);
    FUZZ_ASSERT(r);
    evb_record_t out;
    uint64_t last = 0, lost = 0;
    while (evb_journal_read(r, UINT64_MAX, &out, &lost) == 1) {
        FUZZ_ASSERT(out.seq > last);
        last = out.seq;
    }
    evb_journal_reader_destroy(&r);
    static const char env[] = "\x81\xa4type\xa3"
                              "a.b";
    evb_record_t rec1 = {0, 1, EVB_REC_EVENT, 0, NULL, sizeof env - 1, env};
    uint64_t seq = evb_journal_append(j, &rec1);
    FUZZ_ASSERT(seq > last && evb_journal_flush(j) == 0);
    r = evb_journal_reader_new(j, seq);
    FUZZ_ASSERT(r && evb_journal_read(r, UINT64_MAX, &out, &lost) == 1 &&
                out.seq == seq && out.data_len == sizeof env - 1 &&
                memcmp(out.data, env, out.data_len) == 0);
    evb_journal_reader_destroy(&r);
    evb_journal_close(&j);
    return 0;
}
