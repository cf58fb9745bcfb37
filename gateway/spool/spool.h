/*
 * spool.h: the ordered, bounded queue between receivers and consumers (DESIGN §1).
 *
 * One entry per accepted request: the signal, the redacted OTLP request re-encoded as protobuf (what
 * exporters send) and the interaction records in their compact encoding (what the Postgres writer stores).
 * Receivers append (the one lock on the hot path); each consumer reads with its own cursor and commits
 * what it has finished. Space is reclaimed when every consumer is past it. When the bytes held reach the
 * cap, append refuses with GW_E_FULL: the receiver answers with backpressure, never a silent drop. An entry
 * larger than the cap by itself is refused with GW_E_TOO_LARGE: no backpressure would ever make room for it.
 *
 * Two backends behind one interface: memory (a bounded list, for tests and dev) and disk (segment files
 * with CRCs, spool_disk.h: an acknowledged entry survives kill -9 and a restart, and is replayed to every
 * consumer that had not committed it). Entries returned by peek stay valid and unchanged until the same
 * consumer commits past them.
 * Thread-safe: any number of appenders, one thread per consumer.
 */
#ifndef GW_SPOOL_H
#define GW_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "core/gw.h"

#define GW_SPOOL_FORMAT 1
#define GW_SPOOL_MAX_CONSUMERS 8

enum gw_signal { GW_SIGNAL_TRACES = 1, GW_SIGNAL_LOGS = 2 };
enum { GW_ENTRY_HAS_GENAI = 1 };

/* What a receiver appends; the spool copies the bytes. */
struct gw_spool_in {
  enum gw_signal signal;
  uint32_t flags;        /* GW_ENTRY_* */
  uint32_t nspans;       /* spans (or log records) in otlp */
  uint32_t nrecords;     /* interaction records in records */
  const void *otlp;      /* protobuf ExportTraceServiceRequest / ExportLogsServiceRequest */
  size_t otlp_len;
  const void *records;   /* gw_records_encode output */
  size_t records_len;
  bool large;            /* a large request (receivers.large_request_bytes): its sync may wait for the budget
                          * of spool.fsync interval to be full (spool_disk.c, flusher) */
};

/* What a consumer reads. Pointers stay valid until this consumer commits past seq. */
struct gw_spool_entry {
  uint64_t seq; /* 1, 2, 3, ... in append order */
  uint32_t format;
  enum gw_signal signal;
  uint32_t flags, nspans, nrecords;
  uint64_t appended_ns; /* wall clock at append */
  const void *otlp;
  size_t otlp_len;
  const void *records;
  size_t records_len;
};

struct gw_spool_conf {
  const char *mode;    /* "memory" or "disk" */
  const char *dir;     /* disk mode: segment directory */
  size_t max_bytes;    /* cap on bytes held (disk: the segment files' size); append past it fails with FULL,
                        * an entry larger than it alone with TOO_LARGE */
  double high_water;   /* fraction of max_bytes above which /readyz reports not ready (e.g. 0.9) */
  const char *fsync;   /* disk mode: "always", "interval" (default) or "never" */
  uint32_t fsync_interval_ms; /* disk mode, interval: at most one fsync this often (0: 10) */
  size_t segment_bytes;       /* disk mode: segment file size (0: max_bytes / 16, within 1 MiB .. 64 MiB) */
};

struct gw_spool;

/* Create a spool; NULL with err filled on a bad conf. */
struct gw_spool *gw_spool_create(const struct gw_spool_conf *conf, struct gw_err *err);
/* Free everything. Consumers must be stopped. NULL is fine. */
void gw_spool_destroy(struct gw_spool *s);

/* Register a consumer before the first append; returns its id (>= 0) or -1 when there are too many.
 * A consumer added later starts at the next appended entry. */
int gw_spool_add_consumer(struct gw_spool *s, const char *name);

/* Append one entry (copied). Returns once the entry is durable per spool.fsync (disk mode).
 * GW_ERR(FULL) when the cap would be passed or the disk is full, GW_ERR(TOO_LARGE) when the entry alone is
 * larger than max_bytes (it could never fit: retrying is no use), GW_ERR(SPOOL_IO) when the disk refused the
 * write or the sync (the entry may still be delivered: the client retries, the writer dedups),
 * GW_ERR(SHUTDOWN) after close. err (may be NULL) says why. */
gw_rc gw_spool_append(struct gw_spool *s, const struct gw_spool_in *in);
gw_rc gw_spool_append_err(struct gw_spool *s, const struct gw_spool_in *in, struct gw_err *err);
/* The same without waiting for durability: done(arg, rc) is called once the entry is durable (at once
 * for the memory spool and fsync never), from the spool's sync thread or the calling one. On an error
 * return done is not called. */
gw_rc gw_spool_append_async(struct gw_spool *s, const struct gw_spool_in *in, void (*done)(void *arg, gw_rc rc),
                            void *arg, struct gw_err *err);
/* True for the disk spool. */
bool gw_spool_is_disk(struct gw_spool *s);
/* Disk spool write errors since start, for /metrics. */
void gw_spool_disk_write_errors(uint64_t *no_space, uint64_t *io);
/* Bytes whose writing disk spool appends started ahead of the sync (sync_file_range), since start. */
uint64_t gw_spool_disk_writes_started(void);
/* Times a disk spool's sync thread woke from a wait (for tests: an append must not wake it for nothing). */
uint64_t gw_spool_disk_flusher_wakeups(void);

/*
 * Read up to max entries after this consumer's read position, without consuming them, and no more than
 * it takes to reach min_spans spans (the batch size: a backlog comes in batch-sized pieces). Waits until at
 * least min_spans spans are available, the oldest available entry is older than max_wait_ns, the
 * deadline (monotonic ns) passes, or the spool is closed. Returns the count (0 on timeout or close).
 * The consumer's read position advances past the returned entries; gw_spool_rewind puts it back.
 */
size_t gw_spool_peek(struct gw_spool *s, int consumer, struct gw_spool_entry *out, size_t max, uint32_t min_spans,
                     uint64_t max_wait_ns, uint64_t deadline_mono_ns);
/* Move the read position back to just after the last committed entry (after a failed send). */
void gw_spool_rewind(struct gw_spool *s, int consumer);
/* Move the read position back to just after entry seq (a consumer that keeps entries uncommitted after it
 * has finished them: only what follows seq is read again). Never before the last committed entry. */
void gw_spool_rewind_to(struct gw_spool *s, int consumer, uint64_t seq);
/* Mark every entry up to seq as done for this consumer; reclaims space nobody needs any more. */
void gw_spool_commit(struct gw_spool *s, int consumer, uint64_t seq);

/* Wait until the spool frees room (entries reclaimed), is closed, or deadline_mono_ns passes. It may
 * return early: callers check again whatever they wait for. */
void gw_spool_wait_room(struct gw_spool *s, uint64_t deadline_mono_ns);

/* Wake every waiting consumer and every appender waiting for room (for shutdown, or to notice a new
 * deadline). */
void gw_spool_wake(struct gw_spool *s);
/* Refuse further appends and wake consumers; peek still returns what is left (drain). */
void gw_spool_close(struct gw_spool *s);

/* Figures for /metrics and /readyz. */
size_t gw_spool_bytes(struct gw_spool *s);
size_t gw_spool_max_bytes(struct gw_spool *s);
/* Memory of reclaimed large entries kept for reuse by later appends (not data; at most max_bytes / 8). */
size_t gw_spool_pooled_bytes(struct gw_spool *s);
bool gw_spool_below_high_water(struct gw_spool *s);
/* How long a failed disk write keeps /readyz not ready when nothing is written after it (a replica out of
 * its Service receives nothing that could succeed): then it reports ready and the next request tries. */
#define GW_SPOOL_FAIL_HOLD_NS (10ull * 1000000000ull)
/* Whether the spool takes entries, as /readyz means it: below its high-water mark and, in disk mode, its
 * writes not failing (gw_disk_failing). When not, why gets the reason (NUL-terminated, cut to why_len). */
bool gw_spool_ready(struct gw_spool *s, char *why, size_t why_len);
uint64_t gw_spool_last_seq(struct gw_spool *s);
/* Entries and bytes appended but not yet committed by this consumer. Entries are counted, not derived from
 * sequence numbers (a damaged record skipped at recovery leaves a gap). */
void gw_spool_lag(struct gw_spool *s, int consumer, uint64_t *entries, size_t *bytes);

/* How far a consumer is behind the spool head: entries and bytes appended but not committed, and how long
 * ago the oldest of them was appended (0 when there is none). O(1). */
struct gw_spool_lag {
  uint64_t entries, bytes, age_ns;
};
void gw_spool_lag_get(struct gw_spool *s, int consumer, struct gw_spool_lag *out);

/* What a consumer has not committed, counted by walking it (for the shutdown report). */
struct gw_spool_pending {
  uint64_t entries, spans, log_records;
};
void gw_spool_pending(struct gw_spool *s, int consumer, struct gw_spool_pending *out);

/*
 * The lag cap of a consumer that may lose data (an exporter; never the Postgres writer, DESIGN §1):
 * commit, unsent, the oldest entries of this consumer while the bytes it holds alone are above max_bytes
 * or its oldest entry is older than max_age_ns (0 = no limit), so a dead peer cannot hold the spool and
 * push back on ingestion. "Alone": entries every consumer that never skips has committed (with no such
 * consumer, everything behind the head); what the Postgres writer still needs is never skipped for room,
 * since it stays in the spool anyway. Only the consumer's own thread calls it, between batches (after a
 * rewind). out says what was given up, for the consumer to count and log: entries the consumer has read
 * already (it commits them later than it reads them, gw_sink_outcome.keep_from) are committed but not
 * counted, since they were delivered or are kept by the consumer. Frees space nobody else needs.
 */
struct gw_spool_skipped {
  uint64_t entries, bytes, spans, log_records;
};
void gw_spool_skip(struct gw_spool *s, int consumer, uint64_t max_bytes, uint64_t max_age_ns,
                   struct gw_spool_skipped *out);
/* Mark a consumer as one that skips (gw_spool_skip does it too, on its first call): from now on it is
 * not counted among those whose backlog the others' byte caps leave alone. */
void gw_spool_consumer_may_skip(struct gw_spool *s, int consumer);
const char *gw_spool_consumer_name(struct gw_spool *s, int consumer);
int gw_spool_consumer_count(struct gw_spool *s);

#endif
