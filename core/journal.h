/* The durable journal: every accepted event, in acceptance order, in
 * append-only segment files of length-prefixed, checksummed records.
 *
 * Threads: one appender (the main thread: append, flush); one syncer (the
 * journal sync thread: sync); any number of readers (instance workers,
 * each with its own reader). written_seq and durable_seq are atomics any
 * thread may read.
 *
 * On disk, in `dir`:
 *   seg-<first seq, 20 digits>.evj     segments, in seq order
 * A segment starts with a 32-byte header:
 *   magic "EVBJRNL1" (8) | u32 version = 1 | u32 header size = 32 |
 *   u64 first seq | u64 created (Unix ms)
 * then records, each (little-endian):
 *   u32 length of what follows the crc (24 + target_len + data_len)
 *   u32 CRC-32C of everything after this field to the end of the record
 *   u64 seq | i64 accepted_ms | u16 kind | u16 target_len | u32 data_len
 *   target (target_len bytes) | data (data_len bytes, the msgpack envelope)
 * Seqs are consecutive across segments (a gap only where damage took
 * records or retention deleted them). Records carry no frame marker: after
 * a damaged record, the next intact one is found by its plausible length,
 * kind and seq fields and its checksum (journal.c, s_resync).
 * `<dir>/lock` is flock'ed while a journal is open: one broker per
 * directory. docs/durability.md has the full story. */
#ifndef EVB_JOURNAL_H
#define EVB_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define EVB_REC_EVENT 1  /* an accepted event, for every instance */
#define EVB_REC_REPLAY 2 /* a dead letter replayed to one instance */

#define EVB_JOURNAL_MAX_RECORD (64u << 20) /* larger lengths are corrupt */

typedef struct evb_journal evb_journal_t;
typedef struct evb_journal_reader evb_journal_reader_t;

typedef struct evb_journal_config {
    const char *dir;      /* created (mkdir -p) when missing */
    int64_t segment_size; /* start a new segment past this many bytes */
} evb_journal_config_t;

/* What opening found; the broker logs it. */
typedef struct evb_journal_recovery {
    uint64_t segments;        /* segment files found */
    uint64_t records;         /* valid records found */
    uint64_t first_seq;       /* of the oldest record, 0 when empty */
    uint64_t last_seq;        /* of the newest record, 0 when empty */
    uint64_t truncated_bytes; /* torn or corrupt tail cut off the newest
                                 segment */
    uint64_t skipped_bytes;   /* corrupt ends of older segments, skipped
                                 (the file is left as it is) */
    uint64_t bad_segments;    /* segments with a corrupt record or header */
    uint64_t lost_records;    /* seqs that damage took: between an intact
                                 record and the next one found after a
                                 damaged stretch, or named by a damaged
                                 last record */
    uint64_t lost_ranges;     /* how many such stretches */
    int created;              /* the directory did not exist */
    char detail[512];         /* the first problem, "" when none */
    char lost_detail[512];    /* the first stretch of lost seqs, "" none */
} evb_journal_recovery_t;

/* One record. From evb_journal_read the pointers are valid until the
 * reader's next call. */
typedef struct evb_record {
    uint64_t seq;        /* assigned by append */
    int64_t accepted_ms; /* when the broker accepted the event */
    uint16_t kind;       /* EVB_REC_* */
    uint16_t target_len; /* REPLAY: the instance's name; 0 otherwise */
    const char *target;
    uint32_t data_len; /* the msgpack envelope */
    const void *data;
} evb_record_t;

/* Open (or create) the journal in cfg->dir: lock the directory, scan
 * every segment, verify every record's length, checksum and seq, step
 * over damaged records to the next intact one (reporting the seqs they
 * took), cut a torn or damaged tail off the newest segment (never crash,
 * never refuse to start for it), and get ready to append after the
 * newest seq seen. NULL with a reason in err when the directory cannot be
 * used at all, or another process holds its lock (err names the pid). */
evb_journal_t *evb_journal_open(const evb_journal_config_t *cfg,
                                evb_journal_recovery_t *recovery, char *err,
                                size_t errsz);
/* Flush, sync and close; readers must be destroyed first. */
void evb_journal_close(evb_journal_t **self);

/* ---- appending (main thread) ---- */

/* Buffer one record (r->seq is ignored) and return its seq, > 0. Returns
 * 0 when the journal is unhealthy (evb_journal_healthy says why) or the
 * record is too large. Nothing is visible to readers before flush. */
uint64_t evb_journal_append(evb_journal_t *j, const evb_record_t *r);
/* Write what append buffered with one write(2), starting a new segment
 * first when the current one is past segment_size. written_seq advances.
 * 0, or -1: the journal is now unhealthy and nothing after durable_seq
 * may be acknowledged. */
int evb_journal_flush(evb_journal_t *j);

/* ---- syncing (sync thread; safe against concurrent append/flush) ---- */

/* fdatasync every segment written since the last sync (a new segment's
 * directory entry too); durable_seq advances to the written_seq seen at
 * the start. 0, or -1: unhealthy. */
int evb_journal_sync(evb_journal_t *j);

uint64_t evb_journal_written_seq(evb_journal_t *j);
uint64_t evb_journal_durable_seq(evb_journal_t *j);
/* The oldest seq still on disk (0 when empty). */
uint64_t evb_journal_first_seq(evb_journal_t *j);
/* 1 when appends and syncs work; else 0 with the first failure in why. */
int evb_journal_healthy(evb_journal_t *j, char *why, size_t whysz);
/* After a failure: close the current segment and open a new one (so
 * nothing is written after a possibly torn record), re-write the records
 * that were buffered or written but not synced, and sync them. 0 when the
 * journal is healthy again, -1 when it still fails. Main thread, with the
 * sync thread idle (the caller's to arrange). */
int evb_journal_repair(evb_journal_t *j);

/* ---- reading (any thread, one reader each) ---- */

/* A reader positioned at the first record with seq >= from_seq. */
evb_journal_reader_t *evb_journal_reader_new(evb_journal_t *j,
                                             uint64_t from_seq);
void evb_journal_reader_destroy(evb_journal_reader_t **self);
/* The next record with seq <= upto: returns 1 with *out filled, 0 when
 * there is none yet, -1 when a segment cannot be opened (logged; the next
 * call looks again). Damaged records are stepped over (those found at
 * open silently, others with an ERROR line). *lost (may be NULL) gets how
 * many seqs were deleted by retention or taken by damage between the
 * reader's position and the record returned, 0 normally. */
int evb_journal_read(evb_journal_reader_t *r, uint64_t upto, evb_record_t *out,
                     uint64_t *lost);
/* The seq the reader will return next (or wait for). */
uint64_t evb_journal_reader_position(const evb_journal_reader_t *r);

/* ---- retention (main thread) ---- */

/* Delete whole segments, never the one being written: those whose every
 * record has seq < keep_from (every consumer is past them), and, whatever
 * the consumers, the oldest ones while the journal is larger than
 * max_bytes (0 = no limit) or while their newest record is older than
 * max_age_ms (0 = no limit). Returns the number of segments deleted, and
 * in *forced how many records were deleted by the size or age limit with
 * seq >= keep_from (not yet consumed by someone). */
int evb_journal_retain(evb_journal_t *j, uint64_t keep_from, int64_t max_bytes,
                       int64_t max_age_ms, int64_t now_ms, uint64_t *forced);
/* Bytes on disk in all segments. */
int64_t evb_journal_size(evb_journal_t *j);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (0 to start). */
uint32_t evb_crc32c(uint32_t crc, const void *data, size_t n);

#endif
