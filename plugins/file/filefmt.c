#include "filefmt.h"

#include <stdio.h>
#include <string.h>

static const char *const s_fsync_names[] = {"never", "interval", "always"};

int filefmt_fsync_parse(const char *s, filefmt_fsync_t *out)
{
    if (!s)
        return -1;
    for (int i = 0; i < 3; i++) {
        if (strcmp(s, s_fsync_names[i]) == 0) {
            *out = (filefmt_fsync_t)i;
            return 0;
        }
    }
    return -1;
}

const char *filefmt_fsync_name(filefmt_fsync_t policy)
{
    if ((int)policy < 0 || (int)policy > 2)
        return "?";
    return s_fsync_names[policy];
}

int filefmt_mode_parse(const char *s, unsigned *mode)
{
    if (!s)
        return -1;
    size_t n = strlen(s);
    if (n < 1 || n > 4)
        return -1;
    unsigned m = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7')
            return -1;
        m = m * 8 + (unsigned)(s[i] - '0');
    }
    *mode = m; /* 4 octal digits cannot exceed 07777 */
    return 0;
}

unsigned filefmt_dir_mode(unsigned file_mode)
{
    unsigned perm = file_mode & 0777u;
    return perm | ((perm & 0444u) >> 2) | 0700u;
}

int filefmt_rotated_name(char *out, size_t size, const char *path, int n)
{
    if (n < 0 || !path)
        return -1;
    int w = n == 0 ? snprintf(out, size, "%s", path)
                   : snprintf(out, size, "%s.%d", path, n);
    return w < 0 || (size_t)w >= size ? -1 : 0;
}

int filefmt_needs_rotation(int64_t file_size, size_t buffered, size_t line_len,
                           int64_t rotate_size)
{
    if (rotate_size <= 0)
        return 0;
    int64_t used = (file_size > 0 ? file_size : 0) + (int64_t)buffered;
    if (used == 0)
        return 0;
    return used + (int64_t)line_len > rotate_size;
}

int filefmt_sync_due(filefmt_fsync_t policy, int dirty, int64_t now_ms,
                     int64_t last_sync_ms, int64_t interval_ms)
{
    if (!dirty)
        return 0;
    switch (policy) {
    case FILEFMT_FSYNC_ALWAYS:
        return 1;
    case FILEFMT_FSYNC_INTERVAL:
        return now_ms - last_sync_ms >= interval_ms;
    default:
        return 0;
    }
}
