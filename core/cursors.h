/* The cursor store: where each instance is in the journal, and the
 * manifest of every instance that has a cursor, so that a cursor that is
 * damaged, emptied, deleted or impossible is noticed and never taken to
 * mean "skip".
 *
 * In the journal's directory (journal format 2; docs/durability.md):
 *   manifest              "evbus-journal 2\n", "instance <name>\n" for
 *                         each instance with a cursor, "end <crc>\n"
 *   cursors/<name>.cursor "evbus-cursor 2 <name> <seq> <crc>\n": every
 *                         event up to <seq> is done for <name>
 *   cursors/<name>.prev   the cursor saved before it, a fallback
 * <crc> is the CRC-32C (8 hex digits) of everything before it in the file.
 * A cursor is saved by writing <name>.tmp, syncing it, renaming the old
 * cursor to .prev and the new one over it.
 *
 * Where an instance resumes (evb_cursors_load): its cursor when intact and
 * within the journal; else (damaged, empty, wrong name, past the journal's
 * end, or missing although the manifest lists the instance) the newest
 * intact one of .prev and .tmp within the journal, else the oldest record
 * retained: duplicates are allowed (at-least-once), silent loss is not.
 * That is logged as an ERROR and counted. An instance the manifest does
 * not list is new and starts at the end, or at the oldest record with
 * start_at = "oldest".
 *
 * An instance that has a cursor but is no longer configured is an orphan:
 * its cursor is kept (retention keeps what it has not read) until another
 * instance takes it over (rename_from) or evbusctl drops it.
 *
 * Threads: evb_cursors_save from any thread (one caller per name at a
 * time); everything else on the main thread. */
#ifndef EVB_CURSORS_H
#define EVB_CURSORS_H

#include <stddef.h>
#include <stdint.h>

typedef struct evb_cursors evb_cursors_t;

/* How evb_cursors_load found an instance's starting point. */
typedef enum evb_cursor_origin {
    EVB_CURSOR_SAVED = 0, /* its own cursor, intact */
    EVB_CURSOR_NEW,       /* not in the manifest: start_at */
    EVB_CURSOR_RECOVERED  /* its cursor was unusable: a safe point */
} evb_cursor_origin_t;

/* Open the store in journal_dir, whose records run from `first` to `end`
 * (0, 0 when empty). Reads the manifest; without one (a journal of format
 * 1, or a new one) it is written from the cursor files found, whose plain
 * numbers are then read once (the upgrade). NULL with a reason in err when
 * the directory cannot be used or the manifest is of a newer format. */
evb_cursors_t *evb_cursors_open(const char *journal_dir, uint64_t first,
                                uint64_t end, char *err, size_t errsz);
void evb_cursors_close(evb_cursors_t **self);

/* Where instance `name` resumes: every seq up to *cursor is done. Lists
 * the instance in the manifest, and saves the cursor when it was new or
 * recovered. start_oldest: where a new instance starts. */
evb_cursor_origin_t evb_cursors_load(evb_cursors_t *c, const char *name,
                                     int start_oldest, uint64_t *cursor);

/* Save name's cursor (see above). 0, or -1 with the reason in err. */
int evb_cursors_save(evb_cursors_t *c, const char *name, uint64_t cursor,
                     char *err, size_t errsz);

/* rename_from: instance `to` takes over the cursor of orphan `from` (the
 * lower of the two when `to` has one too: nothing is skipped). 1 when it
 * did, 0 when `from` has no cursor (nothing to take over, e.g. done on an
 * earlier start), -1 on an error (logged). Before evb_cursors_load(to). */
int evb_cursors_adopt(evb_cursors_t *c, const char *from, const char *to);

/* After every configured instance is loaded: the others in the manifest
 * are orphans; their cursors are read (a damaged one is recovered as
 * above) and reported, with `end`, the journal's newest seq. Returns how
 * many there are. */
size_t evb_cursors_find_orphans(evb_cursors_t *c, uint64_t end);

/* The orphans, for status and retention: name and cursor of the i-th,
 * 0 or -1 past the last. */
int evb_cursors_orphan(evb_cursors_t *c, size_t i, char *name, size_t namesz,
                       uint64_t *cursor);
/* The lowest orphan cursor; UINT64_MAX when there is none. */
uint64_t evb_cursors_orphan_min(evb_cursors_t *c);
/* Forget an orphan: its files and its line in the manifest. 0, or -1
 * with the reason in err (not an orphan, or the files cannot go). */
int evb_cursors_drop(evb_cursors_t *c, const char *name, uint64_t *cursor,
                     char *err, size_t errsz);

#endif
