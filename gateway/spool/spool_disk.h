/*
 * spool_disk.h: the disk spool's storage, used by spool.c (internal to the spool layer).
 *
 * Segment files in one directory, named by the sequence number of their first record
 * (00000000000000000042.seg), written append-only and read through a read-only shared mapping, so the entries
 * a consumer peeks point straight into the page cache and stay valid until the segment is deleted (after
 * every consumer has committed past it). One cursor file per consumer (<name>.cursor) holds the last
 * sequence number it committed.
 *
 * File layout (little-endian, as written by this host):
 *   segment header, 32 bytes: "GWSPOOL\0", u32 file format, u32 reserved, u64 first seq, u64 random nonce
 *   records, each 8-byte aligned:
 *     u32 magic "GWR1", u32 CRC-32 of bytes 8..47 of this header and of the payload, seeded with the CRC-32
 *     of the segment's nonce (a record-shaped run inside a client's payload cannot pass for a record),
 *     u64 seq, u64 appended_ns (wall clock), u32 otlp_len, u32 records_len,
 *     u8 signal, u8 entry format, u16 reserved, u32 flags, u32 nspans, u32 nrecords,
 *     payload: otlp bytes then records bytes, zero padding to 8.
 *   end marker (recycled segments only), 8 bytes just past the last record: u32 magic "GWE1", u32 CRC-32 of
 *     its u64 offset, seeded as the records'.
 *   cursor file, 16 bytes: u32 magic "GWC1", u32 CRC-32 of the seq, u64 seq.
 *
 * Recycling: a released segment file of the standard size is not deleted but kept (at most two, renamed
 * spare-N; deleted at close and at open) and reused for the next segment: its header rewritten (new first
 * seq, new nonce), renamed to its new name, its blocks overwritten. A sync then writes data only, no
 * journal commit for blocks allocated or a size grown (bench/README.md, "Latency at half load"). Its
 * previous use's records stay past the new ones: each append ends with the end marker, where recovery
 * stops; and recovery refuses a record keyed by another nonce or with a seq below the header's, and a
 * file whose header's first seq is not its name's (a reuse cut short by a crash: nothing acknowledged).
 * The spares are disk space beyond spool.max_bytes: up to two segments.
 *
 * Durability: gw_disk_append returns the record's log position (bytes written since start); gw_disk_wait
 * returns once everything up to it is on disk per spool.fsync. A flusher thread does the fdatasync
 * (group commit: one sync covers every append since the previous one): at once for `always`; for
 * `interval`, one per fsync_interval_ms on average, at once while the syncs before were spaced wider
 * (see flusher in spool_disk.c); `never` waits for nothing (the page cache keeps the data
 * through a crash of this process, not through one of the machine).
 * Recovery (gw_disk_open) reads every segment in order, hands each valid record to a callback, skips what
 * does not check out (a torn tail after a crash, a corrupt record) by scanning forward to the next
 * record that does, counts and logs what it skipped, and cuts a torn tail off its file.
 */
#ifndef GW_SPOOL_DISK_H
#define GW_SPOOL_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/gw.h"
#include "spool/spool.h"

enum gw_fsync { GW_FSYNC_INTERVAL = 0, GW_FSYNC_ALWAYS, GW_FSYNC_NEVER };

struct gw_disk_conf {
  const char *dir;
  enum gw_fsync fsync;
  uint32_t fsync_interval_ms;
  size_t segment_bytes; /* a segment is closed once it holds this much (a larger record gets a segment alone) */
};

/* One record, as written or recovered. Pointers are into the segment's mapping. */
struct gw_disk_rec {
  struct gw_spool_entry e;
  size_t bytes;      /* record size on disk (header, payload, padding) */
  size_t disk_bytes; /* what the append added to the directory's size (the record, plus a segment header
                      * when it opened a new segment) */
  uint64_t lsn;      /* log position just past this record */
};

/* What recovery found. */
struct gw_disk_recovery {
  uint64_t segments, entries, spans, log_records;
  uint64_t corrupt_records, corrupt_bytes; /* regions skipped, and their bytes */
  size_t bytes;                            /* size of the segment files kept */
  uint64_t last_seq;                       /* highest seq found in a record or a cursor (0: none) */
};

struct gw_disk;

/* Open (create) the directory, recover: fn is called for every valid record in seq order. NULL with err
 * filled when the directory cannot be used. */
struct gw_disk *gw_disk_open(const struct gw_disk_conf *conf, void (*fn)(void *ctx, const struct gw_disk_rec *r),
                             void *ctx, struct gw_disk_recovery *rec, struct gw_err *err);
/* Close files and mappings (data and cursors stay on disk), after syncing the cursors. */
void gw_disk_close(struct gw_disk *d);

/* Append one record with this seq (callers serialize appends, in seq order). GW_ERR(FULL) when the disk is
 * full, GW_ERR(SPOOL_IO) on another write error: nothing of the record is left in the file then. */
gw_rc gw_disk_append(struct gw_disk *d, const struct gw_spool_in *in, uint64_t seq, uint64_t appended_ns,
                     struct gw_disk_rec *out, struct gw_err *err);
/* Wait until everything up to lsn is durable per the fsync policy. GW_ERR(SPOOL_IO) when the sync failed,
 * GW_ERR(SHUTDOWN) when the spool closed first. lazy: a large request's wait (spool.fsync interval): a sync
 * for it alone waits until the budget is full (see flusher in spool_disk.c); any sync covers it. */
gw_rc gw_disk_wait(struct gw_disk *d, uint64_t lsn, bool lazy);
/* Call done(arg, rc) once everything up to lsn is durable (or failed); on the flusher thread, or at once
 * on the calling thread when nothing needs waiting for. */
void gw_disk_when_durable(struct gw_disk *d, uint64_t lsn, bool lazy, void (*done)(void *arg, gw_rc rc), void *arg);

/* Take the segments whose records all have seq <= upto (except the one being written) out of the spool.
 * Returns the bytes freed. Their files are deleted by gw_disk_bury, which the caller runs once it holds no
 * lock an appender needs: deleting a file of many MiB (the unlink, the last close that frees its blocks,
 * the unmapping) takes milliseconds, far more on a busy file system, and no request should wait for it. */
size_t gw_disk_release(struct gw_disk *d, uint64_t upto);
void gw_disk_bury(struct gw_disk *d);

/* A consumer's saved cursor: true with *seq when there is a valid one. Call it once per consumer at start
 * (it makes the cursor's slot; gw_disk_cursor_store only fills one, so consumer threads never add slots). */
bool gw_disk_cursor_load(struct gw_disk *d, const char *name, uint64_t *seq);
/* Whether the spool's writes are failing: the latest segment creation, write or sync failed, less than
 * hold_ns ago (or longer ago, when that was for want of space and the file system still lacks a segment's
 * room); a later success clears it. why gets the failure's message. For /readyz. */
bool gw_disk_failing(struct gw_disk *d, uint64_t hold_ns, char *why, size_t why_len);
/* Save a consumer's cursor (written to the page cache now; synced by gw_disk_close). */
void gw_disk_cursor_store(struct gw_disk *d, const char *name, uint64_t seq);
/* Names of the cursor files found at open, for telling which belong to no consumer now. */
size_t gw_disk_cursor_names(struct gw_disk *d, const char **names, size_t max);

#endif
