/* The file plugin's pure logic: option parsing, rotated file names and the
 * decisions about when to rotate and when to fdatasync. No I/O here, so
 * tests/plugins/test_file.c checks it byte for byte; file.c does the I/O.
 * (Linked into the plugin and into the test; never exported from the .so.) */
#ifndef EVB_FILEFMT_H
#define EVB_FILEFMT_H

#include <stddef.h>
#include <stdint.h>

/* The `fsync` option. */
typedef enum filefmt_fsync {
    FILEFMT_FSYNC_NEVER = 0, /* leave it to the kernel */
    FILEFMT_FSYNC_INTERVAL,  /* fdatasync at most once per fsync_interval */
    FILEFMT_FSYNC_ALWAYS     /* fdatasync every batch before reporting OK */
} filefmt_fsync_t;

/* "never" / "interval" / "always" (exactly, lower case) -> *out. Returns 0,
 * or -1 for anything else (NULL included). */
int filefmt_fsync_parse(const char *s, filefmt_fsync_t *out);
/* The option value naming a policy ("interval"), "?" when out of range. */
const char *filefmt_fsync_name(filefmt_fsync_t policy);

/* The `file_mode` option: 1 to 4 octal digits ("0640", "640", "600"),
 * nothing else, at most 07777 -> *mode. Returns 0 or -1. */
int filefmt_mode_parse(const char *s, unsigned *mode);
/* The mode for parent directories created for a file of `file_mode`: the
 * file's permissions plus search (x) wherever it grants read, and always
 * rwx for the owner. 0640 -> 0750, 0644 -> 0755, 0600 -> 0700. */
unsigned filefmt_dir_mode(unsigned file_mode);

/* The name of rotated file n into out: n == 0 is `path` itself, n >= 1 is
 * "path.n". Returns 0, or -1 when it does not fit in `size` bytes (or n is
 * negative). */
int filefmt_rotated_name(char *out, size_t size, const char *path, int n);

/* Whether a line of `line_len` bytes (newline included) must go to a fresh
 * file: 1 when rotation is on (rotate_size > 0), the file is not empty
 * (file_size bytes on disk + `buffered` bytes not yet written) and the line
 * would take it past rotate_size. A line is never split, so one longer than
 * rotate_size goes whole into an empty file. */
int filefmt_needs_rotation(int64_t file_size, size_t buffered, size_t line_len,
                           int64_t rotate_size);

/* Whether to fdatasync now, with `dirty` bytes written since the last one
 * (at monotonic ms last_sync_ms; now_ms now):
 *   NEVER    never;
 *   ALWAYS   whenever dirty;
 *   INTERVAL when dirty and at least interval_ms have passed. */
int filefmt_sync_due(filefmt_fsync_t policy, int dirty, int64_t now_ms,
                     int64_t last_sync_ms, int64_t interval_ms);

#endif
