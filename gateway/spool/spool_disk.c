/*
 * spool_disk.c: segment files, records with CRCs, cursors, group-commit fsync and recovery (see spool_disk.h).
 *
 * Locks: `lk` guards the segment list and the log positions; the writer (one at a time, spool.c serializes
 * appends) takes it only to publish a record or a new segment, never across a write. The flusher takes
 * nothing while it syncs: it works on duplicated descriptors, so a segment released (or reused) meanwhile is
 * harmless.
 * Write errors leave no partial record behind: the file is cut back to where the record began.
 */
#include "spool/spool_disk.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "core/crc32.h"
#include "core/log.h"
#include "core/metrics.h"

#define SEG_MAGIC "GWSPOOL"
#define SEG_FORMAT 1u
#define SEG_HDR 32u
#define REC_MAGIC 0x31525747u /* "GWR1" */
#define REC_HDR 48u
#define CUR_MAGIC 0x31435747u /* "GWC1" */
#define MAX_CURSORS GW_SPOOL_MAX_CONSUMERS * 2
#define SYNC_BURST 2u /* spool.fsync interval: syncs the budget holds (see flusher) */
#define END_MAGIC 0x31455747u /* "GWE1": the end of a recycled segment's records (see seg_reuse) */
#define END_MARK 8u           /* u32 END_MAGIC, u32 CRC-32 of the marker's offset keyed as the records */
#define MAX_SPARES 2u         /* released segment files kept for reuse */
#define KICK_BYTES (256u << 10) /* written bytes handed to the disk ahead of the sync (see gw_disk_append) */

struct seg {
  struct seg *next;
  uint64_t first_seq, last_seq; /* last_seq 0: no record yet */
  int fd;
  unsigned char *map;
  size_t map_len; /* mapped (>= size) */
  size_t size;    /* bytes written */
  size_t kicked;  /* bytes handed to the disk's writeback so far (sync_file_range), <= size */
  size_t counted;  /* bytes the spool's room was charged for: its appends' disk_bytes (a header whose first
                   * append failed is not), or its size when recovered */
  size_t credited; /* of those, given back while it was the active one (release) */
  uint64_t end_lsn; /* log position after its last byte */
  uint32_t key;     /* CRC seed of its records (from the segment's random nonce; 0 without one) */
  bool recycled;    /* a reused file: stale records of its previous use lie past ours, so each append ends
                     * with an end marker (see seg_reuse) */
  bool reusable;    /* of the standard size, made by this run: kept as a spare once released */
  bool nameless;    /* retired without its name (retire_empty): its burial must not unlink by name */
  char name[32];
};

/* The CRC seed of a segment's records: a random nonce in its header (bytes 24..31) keys every record's CRC,
 * so a record-shaped run of bytes inside a client's payload can never pass for a record of this segment
 * when recovery scans past damage (whoever wrote the payload never saw the nonce). Nonce 0: unkeyed. */
static uint32_t seg_key(uint64_t nonce)
{
  if (!nonce)
    return 0;
  unsigned char b[8];
  memcpy(b, &nonce, 8);
  return (uint32_t)crc32(0L, b, 8);
}

static uint64_t random_nonce(void)
{
  uint64_t v = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
      v = 0;
    close(fd);
  }
  if (!v)
    v = gw_now_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9e3779b97f4a7c15ull;
  return v ? v : 1;
}

struct waiter {
  struct waiter *next;
  uint64_t lsn;
  gw_rc rc;
  void (*done)(void *arg, gw_rc rc);
  void *arg;
  uint64_t since; /* gw_mono_ns when it began to wait */
};

static void run_waiters(struct waiter **ready)
{
  uint64_t now = gw_mono_ns();
  while (*ready) {
    struct waiter *w = *ready;
    *ready = w->next;
    gw_hist_observe(GW_H_STAGE_DURABLE, now - w->since);
    w->done(w->arg, w->rc);
    free(w);
  }
}

struct cursor {
  char name[40];
  int fd;
  bool loaded, valid;
  uint64_t seq;
};

struct gw_disk {
  struct gw_disk_conf conf;
  char dir[4096];
  int dirfd;
  pthread_mutex_t lk;
  pthread_cond_t synced_cv; /* waiters: synced advanced */
  pthread_cond_t work_cv;   /* flusher: something to sync */
  struct seg *head, *tail;  /* every segment, oldest first */
  struct seg *active;       /* the one being written (NULL until the first append after open) */
  bool dir_dirty;           /* a segment was created since the last sync */
  uint64_t written_lsn, synced_lsn; /* synced_lsn: what the flusher has passed, synced or failed */
  uint64_t failed_lsn;              /* the highest position a failed sync covered */
  uint64_t wanted_lsn;      /* highest position a waiter asked for */
  uint64_t lazy_lsn;        /* highest position a large request's waiter asked for (see flusher) */
  uint64_t credit_ns, credit_mono; /* interval: the sync budget (see flusher) and when it was last topped up */
  uint64_t credit_wait;             /* the budget the flusher is waiting for (0: not waiting for one) */
  struct seg *grave;      /* released segments not deleted yet (gw_disk_bury) */
  struct seg *spares;     /* released segment files kept for reuse (seg_reuse), renamed spare-N */
  unsigned nspares;       /* spares held, and renames under way */
  uint64_t spare_no;      /* names the next spare */
  struct waiter *waiters; /* async, unordered */
  bool stop, flusher_done;
  pthread_t flusher;
  bool has_flusher;
  struct cursor cursors[MAX_CURSORS];
  size_t ncursors;
  /* The latest write or sync that failed, for /readyz (gw_disk_failing): when (monotonic ns; 0 once a
   * later one succeeded), whether for want of space, and its message. */
  _Atomic uint64_t fail_mono;
  _Atomic bool fail_no_space;
  _Atomic bool roll; /* the active segment was deleted from under us: the next append starts a new one */
  pthread_mutex_t why_mu;
  char why[256];
};

static _Atomic uint64_t write_err_no_space, write_err_io, writes_started, flusher_wakeups;

uint64_t gw_spool_disk_writes_started(void) { return atomic_load(&writes_started); }
uint64_t gw_spool_disk_flusher_wakeups(void) { return atomic_load(&flusher_wakeups); }

void gw_spool_disk_write_errors(uint64_t *no_space, uint64_t *io)
{
  *no_space = atomic_load(&write_err_no_space);
  *io = atomic_load(&write_err_io);
}

static void note_failed(struct gw_disk *d, const char *why, bool no_space)
{
  pthread_mutex_lock(&d->why_mu);
  snprintf(d->why, sizeof d->why, "%s", why);
  pthread_mutex_unlock(&d->why_mu);
  atomic_store(&d->fail_no_space, no_space);
  uint64_t now = gw_mono_ns();
  atomic_store(&d->fail_mono, now ? now : 1);
}

/* A segment's creation or write failed with eno: counted by reason, said in err (what names the file and
 * the step, for errors other than a full disk) and noted for /readyz. */
static gw_rc write_failed(struct gw_disk *d, int eno, const char *what, struct gw_err *err)
{
  gw_rc rc;
  if (eno == ENOSPC || eno == EDQUOT) {
    atomic_fetch_add(&write_err_no_space, 1);
    rc = gw_err_set(err, GW_ERR(FULL), "spool disk full (%s: %s): retry later", d->dir, strerror(eno));
  } else {
    atomic_fetch_add(&write_err_io, 1);
    rc = gw_err_set(err, GW_ERR(SPOOL_IO), "%s: %s", what, strerror(eno));
  }
  note_failed(d, err ? err->msg : "spool write failed", rc == GW_ERR(FULL));
  return rc;
}

static inline void note_ok(struct gw_disk *d)
{
  if (atomic_load_explicit(&d->fail_mono, memory_order_relaxed))
    atomic_store(&d->fail_mono, 0);
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint32_t get32(const unsigned char *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t get64(const unsigned char *p)
{
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static size_t rec_size(size_t otlp_len, size_t records_len) { return (REC_HDR + otlp_len + records_len + 7) & ~(size_t)7; }

/* ---- flusher ---- */

/* The outcome for a position the flusher has passed. Lock held. A failed sync fails every position up to
 * what it covered, even one an earlier sync had covered but whose waiter had not run yet: refusing a request
 * that was durable only makes its client send it again (stored once), the safe side. */
static gw_rc outcome(const struct gw_disk *d, uint64_t lsn)
{
  if (d->synced_lsn < lsn)
    return GW_ERR(SHUTDOWN);
  return lsn <= d->failed_lsn ? GW_ERR(SPOOL_IO) : GW_OK;
}

static void *flusher(void *arg)
{
  struct gw_disk *d = arg;
  pthread_setname_np(pthread_self(), "gw-spool-sync");
  pthread_mutex_lock(&d->lk);
  for (;;) {
    while (!d->stop && d->wanted_lsn <= d->synced_lsn && d->lazy_lsn <= d->synced_lsn) {
      pthread_cond_wait(&d->work_cv, &d->lk);
      atomic_fetch_add_explicit(&flusher_wakeups, 1, memory_order_relaxed);
    }
    if (d->stop && d->written_lsn <= d->synced_lsn)
      break;
    /* interval: one sync per interval on average, kept as a budget (a token bucket) that grows by one sync
     * per interval up to SYNC_BURST syncs and pays for each sync. A request that finds the syncer idle is
     * synced at once while the budget lasts, so at a rate under one request per interval none waits for
     * an interval; under load the budget runs out and syncs are spaced one interval apart, each covering
     * every request that came meanwhile (group commit).
     * Large requests (receivers.large_request_bytes: what the large-request lane takes) wait lazily: a
     * sync only for them waits until the budget is full and leaves SYNC_BURST - 1 syncs in it, and any
     * other sync covers them. Why: a sender of megabyte requests back to back (a bulk exporter, or a
     * hostile one) would otherwise spend the whole budget, and every small request would wait for the next
     * interval (bench/README.md, "Large requests do not spend the sync budget"); a large request waits at
     * most about SYNC_BURST intervals for its sync, small beside what processing it took. */
    uint64_t iv = d->conf.fsync == GW_FSYNC_INTERVAL ? (uint64_t)d->conf.fsync_interval_ms * 1000000ull : 0;
    uint64_t now = gw_mono_ns();
    if (iv) {
      uint64_t cap = SYNC_BURST * iv, need = d->wanted_lsn > d->synced_lsn ? iv : cap;
      d->credit_ns = now - d->credit_mono >= cap - d->credit_ns ? cap : d->credit_ns + (now - d->credit_mono);
      d->credit_mono = now;
      if (!d->stop && d->credit_ns < need) {
        uint64_t until = now + (need - d->credit_ns);
        struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
        d->credit_wait = need; /* want() wakes it only for a sooner need */
        pthread_cond_timedwait(&d->work_cv, &d->lk, &ts);
        d->credit_wait = 0;
        atomic_fetch_add_explicit(&flusher_wakeups, 1, memory_order_relaxed);
        continue;
      }
      d->credit_ns = d->credit_ns >= iv ? d->credit_ns - iv : 0;
    }
    uint64_t target = d->written_lsn;
    bool dir = d->dir_dirty;
    d->dir_dirty = false;
    int fds[64];
    char names[64][32];
    size_t nfds = 0;
    bool ok = true;
    int eno = 0;
    for (struct seg *s = d->head; s; s = s->next) {
      if (s->end_lsn <= d->synced_lsn)
        continue;
      if (nfds == 64) { /* cannot happen with sane segment sizes; never claim what was not synced */
        ok = false;
        eno = EMFILE;
        break;
      }
      memcpy(names[nfds], s->name, sizeof names[0]);
      fds[nfds++] = dup(s->fd);
    }
    pthread_mutex_unlock(&d->lk);

    uint64_t t0 = gw_mono_ns();
    const char *gone = NULL;
    for (size_t i = 0; i < nfds; i++) {
      struct stat st;
      if (fds[i] < 0 || fdatasync(fds[i]) != 0) {
        ok = false;
        eno = errno;
      } else if (fstat(fds[i], &st) == 0 && st.st_nlink == 0) {
        /* Deleted from under us (a cleaner, an rm -rf): what it holds is read from the open file until
         * consumed, but a restart would not find it, so it is not durable. The waiting requests are
         * refused (their clients retry; Postgres stores a span once) and the next append starts a segment
         * in the directory, if it is still there. */
        ok = false;
        eno = ENOENT;
        gone = names[i];
        atomic_store(&d->roll, true);
      }
      if (fds[i] >= 0)
        close(fds[i]);
    }
    if (dir && fsync(d->dirfd) != 0) {
      ok = false;
      eno = errno;
    }
    uint64_t took = gw_mono_ns() - t0;
    gw_metric_add(GW_M_SPOOL_FSYNCS, 1);
    gw_metric_add(GW_M_SPOOL_FSYNC_SECONDS, (int64_t)took);
    gw_hist_observe(GW_H_SPOOL_FSYNC, took);

    char why[320];
    if (ok) {
      note_ok(d);
    } else {
      if (gone)
        snprintf(why, sizeof why, "spool segment %s was deleted from %s while in use", gone, d->dir);
      else
        snprintf(why, sizeof why, "fsync of the spool in %s failed: %s", d->dir, strerror(eno));
      note_failed(d, why, eno == ENOSPC || eno == EDQUOT);
    }
    pthread_mutex_lock(&d->lk);
    if (!ok) {
      atomic_fetch_add(&write_err_io, 1);
      gw_error("spool", "%s; the requests waiting for it are refused (503) and their clients retry", why);
      d->failed_lsn = target;
      if (dir)
        d->dir_dirty = true;
    }
    if (target > d->synced_lsn)
      d->synced_lsn = target;
    pthread_cond_broadcast(&d->synced_cv);
    /* asynchronous waiters whose position is now passed */
    struct waiter *ready = NULL, **pp = &d->waiters;
    while (*pp) {
      struct waiter *w = *pp;
      if (w->lsn <= d->synced_lsn) {
        *pp = w->next;
        w->rc = outcome(d, w->lsn);
        w->next = ready;
        ready = w;
      } else {
        pp = &w->next;
      }
    }
    if (ready) {
      pthread_mutex_unlock(&d->lk);
      run_waiters(&ready);
      pthread_mutex_lock(&d->lk);
    }
  }
  d->flusher_done = true;
  struct waiter *rest = d->waiters;
  d->waiters = NULL;
  for (struct waiter *w = rest; w; w = w->next)
    w->rc = outcome(d, w->lsn);
  pthread_cond_broadcast(&d->synced_cv);
  pthread_mutex_unlock(&d->lk);
  run_waiters(&rest);
  return NULL;
}

/* Ask the flusher for lsn. Lock held. A flusher waiting out the sync budget wakes by itself when the
 * budget allows and then syncs all that was asked meanwhile: it is woken only when it waits for nothing, or
 * for a large request's fuller budget while this one is not large (it needs less). Waking it on every
 * append only to wait again cost two context switches a request (bench/README.md, "Receiver threads"). */
static void want(struct gw_disk *d, uint64_t lsn, bool lazy)
{
  bool interval = d->conf.fsync == GW_FSYNC_INTERVAL;
  uint64_t *w = lazy && interval ? &d->lazy_lsn : &d->wanted_lsn;
  if (lsn > *w) {
    *w = lsn;
    uint64_t iv = (uint64_t)d->conf.fsync_interval_ms * 1000000ull;
    if (!d->credit_wait || (!(lazy && interval) && d->credit_wait > iv))
      pthread_cond_signal(&d->work_cv);
  }
}

gw_rc gw_disk_wait(struct gw_disk *d, uint64_t lsn, bool lazy)
{
  if (d->conf.fsync == GW_FSYNC_NEVER)
    return GW_OK;
  uint64_t since = gw_mono_ns();
  pthread_mutex_lock(&d->lk);
  want(d, lsn, lazy);
  while (d->synced_lsn < lsn && !d->flusher_done)
    pthread_cond_wait(&d->synced_cv, &d->lk);
  gw_rc rc = outcome(d, lsn);
  pthread_mutex_unlock(&d->lk);
  gw_hist_observe(GW_H_STAGE_DURABLE, gw_mono_ns() - since);
  return rc;
}

void gw_disk_when_durable(struct gw_disk *d, uint64_t lsn, bool lazy, void (*done)(void *arg, gw_rc rc), void *arg)
{
  if (d->conf.fsync == GW_FSYNC_NEVER) {
    done(arg, GW_OK);
    return;
  }
  pthread_mutex_lock(&d->lk);
  if (d->synced_lsn >= lsn || d->flusher_done) {
    gw_rc rc = outcome(d, lsn);
    pthread_mutex_unlock(&d->lk);
    gw_hist_observe(GW_H_STAGE_DURABLE, 0);
    done(arg, rc);
    return;
  }
  struct waiter *w = gw_calloc(1, sizeof *w);
  w->lsn = lsn;
  w->done = done;
  w->arg = arg;
  w->since = gw_mono_ns();
  w->next = d->waiters;
  d->waiters = w;
  want(d, lsn, lazy);
  pthread_mutex_unlock(&d->lk);
}

/* ---- segments ---- */

static void seg_free(struct seg *s)
{
  if (s->map)
    munmap(s->map, s->map_len);
  if (s->fd >= 0)
    close(s->fd);
  free(s);
}

static size_t page_round(size_t n)
{
  long pg = sysconf(_SC_PAGESIZE);
  size_t p = pg > 0 ? (size_t)pg : 4096;
  return (n + p - 1) / p * p;
}

/* The end marker a recycled segment's appends leave at off, just past their record: recovery stops there
 * instead of searching the previous use's records beyond it as damage. Keyed like the records, at its
 * offset, so neither a stale marker nor client bytes can pass for one. */
static void end_mark(unsigned char m[END_MARK], uint32_t key, uint64_t off)
{
  unsigned char b[8];
  memcpy(b, &off, 8);
  put32(m, END_MAGIC);
  put32(m + 4, (uint32_t)crc32(key, b, 8));
}

static bool is_end_mark(const unsigned char *p, size_t avail, uint32_t key, uint64_t off)
{
  unsigned char m[END_MARK];
  if (avail < END_MARK || get32(p) != END_MAGIC)
    return false;
  end_mark(m, key, off);
  return memcmp(p, m, END_MARK) == 0;
}

/* The segment header for records from seq on, keyed by a fresh random nonce (returns the key). */
static uint32_t seg_header(unsigned char h[SEG_HDR], uint64_t seq)
{
  memset(h, 0, SEG_HDR);
  memcpy(h, SEG_MAGIC, 8);
  put32(h + 8, SEG_FORMAT);
  put64(h + 16, seq);
  uint64_t nonce = random_nonce();
  put64(h + 24, nonce);
  return seg_key(nonce);
}

/* Reuse a spare segment file for records from seq on. Why: appending to a new file makes every fdatasync
 * commit the file system's journal (the blocks allocated, the size grown), and that commit is shared with
 * everything else writing to the disk (Postgres's WAL and tables on the same file system); overwriting
 * blocks a file already has makes the sync write our data and nothing else (bench/README.md, "Latency at
 * half load"). Its previous use stays: the header gets the new first seq and a new nonce (which keys the
 * CRC of every record: a stale record can never pass for one of this use, and recovery also refuses any
 * seq below the header's), then an end marker at the first record's place, then the file is renamed from
 * spare-N to its new name; the rename is synced with the first record (dir_dirty) before any answer. A
 * crash before the header reached the disk leaves a file whose header's seq is not its name's: recovery
 * drops it, nothing in it was acknowledged. Returns false (the spare deleted) when it cannot be used. */
static bool seg_reuse(struct gw_disk *d, struct seg *s, uint64_t seq)
{
  char name[32];
  snprintf(name, sizeof name, "%020" PRIu64 ".seg", seq);
  unsigned char h[SEG_HDR + END_MARK];
  uint32_t key = seg_header(h, seq);
  end_mark(h + SEG_HDR, key, SEG_HDR);
  if (pwrite(s->fd, h, sizeof h, 0) != (ssize_t)sizeof h || renameat(d->dirfd, s->name, d->dirfd, name) != 0) {
    gw_warn("spool", "cannot reuse the spare segment %s/%s: %s (a new file is made)", d->dir, s->name, strerror(errno));
    unlinkat(d->dirfd, s->name, 0);
    seg_free(s);
    return false;
  }
  snprintf(s->name, sizeof s->name, "%s", name);
  s->next = NULL;
  s->first_seq = seq;
  s->last_seq = 0;
  s->end_lsn = 0;
  s->key = key;
  s->size = SEG_HDR;
  s->kicked = 0;
  s->counted = 0;
  s->credited = 0;
  s->recycled = true;
  return true;
}

static struct seg *spare_take(struct gw_disk *d)
{
  pthread_mutex_lock(&d->lk);
  struct seg *s = d->spares;
  if (s) {
    d->spares = s->next;
    d->nspares--;
  }
  pthread_mutex_unlock(&d->lk);
  return s;
}

/* Keep a released segment as a spare (renamed spare-N) when fewer than MAX_SPARES are kept. */
static bool spare_keep(struct gw_disk *d, struct seg *s)
{
  pthread_mutex_lock(&d->lk);
  bool room = s->reusable && !d->stop && d->nspares < MAX_SPARES;
  uint64_t no = ++d->spare_no;
  if (room)
    d->nspares++; /* the slot is taken before the rename, so concurrent buriers keep at most MAX_SPARES */
  pthread_mutex_unlock(&d->lk);
  if (!room)
    return false;
  /* Its pages stay in the page cache but leave this process's mapping: a spare must not count in the
   * gateway's RSS (two spares would be up to two segments of it) until its next use reads them. */
  if (s->map)
    madvise(s->map, s->map_len, MADV_DONTNEED);
  char name[32];
  snprintf(name, sizeof name, "spare-%" PRIu64, no);
  bool ok = renameat(d->dirfd, s->name, d->dirfd, name) == 0;
  pthread_mutex_lock(&d->lk);
  if (ok) {
    snprintf(s->name, sizeof s->name, "%s", name);
    s->next = d->spares;
    d->spares = s;
  } else {
    d->nspares--;
  }
  pthread_mutex_unlock(&d->lk);
  return ok;
}

/* A new segment for records from seq on, holding at least need bytes of records: a spare file when one is
 * kept and the records fit the standard size, else a new file. */
static gw_rc seg_create(struct gw_disk *d, uint64_t seq, size_t need, struct seg **out, struct gw_err *err)
{
  size_t std_len = page_round(d->conf.segment_bytes);
  if (need + SEG_HDR + END_MARK <= std_len) {
    struct seg *sp = spare_take(d);
    if (sp && seg_reuse(d, sp, seq)) {
      *out = sp;
      return GW_OK;
    }
  }
  struct seg *s = gw_calloc(1, sizeof *s);
  s->fd = -1;
  s->first_seq = seq;
  snprintf(s->name, sizeof s->name, "%020" PRIu64 ".seg", seq);
  size_t cap = d->conf.segment_bytes > need + SEG_HDR + END_MARK ? d->conf.segment_bytes : need + SEG_HDR + END_MARK;
  s->map_len = page_round(cap);
  s->reusable = s->map_len == std_len;
  s->fd = openat(d->dirfd, s->name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int eno = errno;
  if (s->fd < 0)
    goto fail;
  unsigned char h[SEG_HDR];
  s->key = seg_header(h, seq);
  ssize_t w = pwrite(s->fd, h, SEG_HDR, 0);
  if (w != (ssize_t)SEG_HDR) {
    eno = w < 0 ? errno : ENOSPC;
    goto fail_unlink;
  }
  s->map = mmap(NULL, s->map_len, PROT_READ, MAP_SHARED, s->fd, 0);
  if (s->map == MAP_FAILED) {
    s->map = NULL;
    eno = errno;
    goto fail_unlink;
  }
  s->size = SEG_HDR;
  s->kicked = 0;
  *out = s;
  return GW_OK;
fail_unlink:
  unlinkat(d->dirfd, s->name, 0);
fail:
  seg_free(s);
  char what[PATH_MAX + 64];
  snprintf(what, sizeof what, "cannot create a spool segment in %s", d->dir);
  return write_failed(d, eno, what, err);
}

/* The segment being written holds no record (its first append failed: disk full, an I/O error, so the
 * sequence number did not move) and a new segment is needed: it would be made for the same first seq, so
 * under the same file name, and this one's release, which renames or unlinks by name, would then take the
 * new file and the acknowledged records in it. Renamed away and buried now instead (nameless when even
 * the rename fails, e.g. the file was deleted from under us: its burial then unlinks nothing). */
static void retire_empty(struct gw_disk *d, struct seg *s)
{
  pthread_mutex_lock(&d->lk);
  uint64_t no = ++d->spare_no;
  pthread_mutex_unlock(&d->lk);
  char name[32];
  snprintf(name, sizeof name, "retired-%" PRIu64, no);
  bool renamed = renameat(d->dirfd, s->name, d->dirfd, name) == 0;
  pthread_mutex_lock(&d->lk);
  struct seg **pp = &d->head, *prev = NULL;
  while (*pp && *pp != s) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (*pp) {
    *pp = s->next;
    if (d->tail == s)
      d->tail = prev;
  }
  if (d->active == s)
    d->active = NULL;
  if (renamed)
    snprintf(s->name, sizeof s->name, "%s", name);
  s->nameless = !renamed;
  s->reusable = false;
  s->next = d->grave;
  d->grave = s;
  d->dir_dirty = true;
  pthread_mutex_unlock(&d->lk);
}

gw_rc gw_disk_append(struct gw_disk *d, const struct gw_spool_in *in, uint64_t seq, uint64_t appended_ns,
                     struct gw_disk_rec *out, struct gw_err *err)
{
  if (in->otlp_len > UINT32_MAX - REC_HDR || in->records_len > UINT32_MAX - REC_HDR - in->otlp_len)
    return gw_err_set(err, GW_ERR(TOO_LARGE), "spool entry of %zu bytes is too large", in->otlp_len + in->records_len);
  size_t bytes = rec_size(in->otlp_len, in->records_len);
  size_t added = bytes;
  struct seg *s = d->active;
  bool roll = atomic_load(&d->roll);
  if (!s || s->size + bytes + END_MARK > s->map_len || roll) {
    if (s && !s->last_seq) {
      retire_empty(d, s);
      s = NULL;
    }
    struct seg *ns = NULL;
    gw_rc rc = seg_create(d, seq, bytes, &ns, err);
    if (rc)
      return rc;
    if (roll)
      atomic_store(&d->roll, false);
    added += SEG_HDR;
    pthread_mutex_lock(&d->lk);
    ns->end_lsn = d->written_lsn;
    if (d->tail)
      d->tail->next = ns;
    else
      d->head = ns;
    d->tail = ns;
    d->active = ns;
    d->dir_dirty = true;
    pthread_mutex_unlock(&d->lk);
    s = ns;
  }

  unsigned char h[REC_HDR] = {0};
  put32(h, REC_MAGIC);
  put64(h + 8, seq);
  put64(h + 16, appended_ns);
  put32(h + 24, (uint32_t)in->otlp_len);
  put32(h + 28, (uint32_t)in->records_len);
  h[32] = (unsigned char)in->signal;
  h[33] = GW_SPOOL_FORMAT;
  put32(h + 36, in->flags);
  put32(h + 40, in->nspans);
  put32(h + 44, in->nrecords);
  uint32_t crc = gw_crc32(s->key, h + 8, REC_HDR - 8);
  if (in->otlp_len)
    crc = gw_crc32(crc, in->otlp, in->otlp_len);
  if (in->records_len)
    crc = gw_crc32(crc, in->records, in->records_len);
  put32(h + 4, crc);
  static const unsigned char zeros[8];
  size_t pad = bytes - (REC_HDR + in->otlp_len + in->records_len);
  size_t off = s->size, done = 0;
  unsigned char mark[END_MARK];
  size_t mark_len = s->recycled ? END_MARK : 0; /* a new file's end is its size */
  if (mark_len)
    end_mark(mark, s->key, off + bytes);
  struct iovec iov[5] = {{h, REC_HDR}, {(void *)in->otlp, in->otlp_len}, {(void *)in->records, in->records_len},
                         {(void *)zeros, pad}, {mark, mark_len}};
  while (done < bytes + mark_len) {
    /* skip the parts already written */
    size_t skip = done;
    struct iovec cur[5];
    int n = 0;
    for (int i = 0; i < 5; i++) {
      if (skip >= iov[i].iov_len) {
        skip -= iov[i].iov_len;
        continue;
      }
      cur[n].iov_base = (unsigned char *)iov[i].iov_base + skip;
      cur[n].iov_len = iov[i].iov_len - skip;
      skip = 0;
      n++;
    }
    ssize_t w = pwritev(s->fd, cur, n, (off_t)(off + done));
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int eno = w < 0 ? errno : ENOSPC;
      /* Leave nothing of this record behind: recovery must not meet half of it. */
      if (ftruncate(s->fd, (off_t)off) != 0)
        gw_warn("spool", "cannot cut %s back after a failed write: %s (recovery will skip the torn record)",
                s->name, strerror(errno));
      char what[PATH_MAX + 96];
      snprintf(what, sizeof what, "spool write to %s/%s failed", d->dir, s->name);
      return write_failed(d, eno, what, err);
    }
    done += (size_t)w;
  }
  gw_metric_add(GW_M_SPOOL_WRITTEN_BYTES, (int64_t)(added + mark_len));
  /* Start the disk writing what this segment got since its writes were last started, once that makes a
   * large write (KICK_BYTES, a large request's entry at once): the sync then mostly waits for writes under
   * way and flushes the disk's cache. Why: a request that arrives while a sync runs waits for that sync and
   * then for its own; with its bytes already on their way, the second sync is short (bench/README.md,
   * "Starting the spool's writes early"). Smaller entries are left to the sync, which writes them together:
   * no more write operations than before on an IOPS-priced volume (a range a sync already wrote is clean,
   * and starting it again writes nothing). */
  size_t pending = off + bytes + mark_len - s->kicked;
  if (d->conf.fsync != GW_FSYNC_NEVER && pending >= KICK_BYTES &&
      sync_file_range(s->fd, (off_t)s->kicked, (off_t)pending, SYNC_FILE_RANGE_WRITE) == 0) {
    s->kicked = off + bytes;
    atomic_fetch_add(&writes_started, pending);
  }

  note_ok(d);
  pthread_mutex_lock(&d->lk);
  s->size = off + bytes;
  if (!s->last_seq && s->first_seq != seq)
    s->first_seq = seq;
  s->last_seq = seq;
  d->written_lsn += added;
  s->counted += added;
  s->end_lsn = d->written_lsn;
  out->lsn = d->written_lsn;
  pthread_mutex_unlock(&d->lk);

  memset(&out->e, 0, sizeof out->e);
  out->e.seq = seq;
  out->e.format = GW_SPOOL_FORMAT;
  out->e.signal = in->signal;
  out->e.flags = in->flags;
  out->e.nspans = in->nspans;
  out->e.nrecords = in->nrecords;
  out->e.appended_ns = appended_ns;
  out->e.otlp = s->map + off + REC_HDR;
  out->e.otlp_len = in->otlp_len;
  out->e.records = s->map + off + REC_HDR + in->otlp_len;
  out->e.records_len = in->records_len;
  out->bytes = bytes;
  out->disk_bytes = added;
  return GW_OK;
}

size_t gw_disk_release(struct gw_disk *d, uint64_t upto)
{
  size_t freed = 0;
  pthread_mutex_lock(&d->lk);
  for (;;) {
    struct seg *s = d->head;
    if (s && s == d->active) {
      /* The segment being written stays (appends go on into it), but what every consumer has finished in
       * it no longer takes the spool's room: else a spool whose segment is most of spool.max_bytes would
       * refuse every request (429) with every consumer caught up, for ever. Its file is deleted when it is
       * full and released; disk use can exceed max_bytes by that one segment meanwhile. */
      if (s->last_seq && s->last_seq <= upto && s->counted > s->credited) {
        freed += s->counted - s->credited;
        s->credited = s->counted;
      }
      break;
    }
    if (!s || (s->last_seq && s->last_seq > upto))
      break;
    d->head = s->next;
    if (!d->head)
      d->tail = NULL;
    freed += s->counted - s->credited;
    s->next = d->grave;
    d->grave = s;
  }
  pthread_mutex_unlock(&d->lk);
  return freed;
}

void gw_disk_bury(struct gw_disk *d)
{
  pthread_mutex_lock(&d->lk);
  struct seg *s = d->grave;
  d->grave = NULL;
  pthread_mutex_unlock(&d->lk);
  while (s) {
    struct seg *next = s->next;
    if (spare_keep(d, s)) {
      s = next;
      continue;
    }
    if (!s->nameless && unlinkat(d->dirfd, s->name, 0) != 0 && errno != ENOENT)
      gw_warn("spool", "cannot delete %s/%s: %s", d->dir, s->name, strerror(errno));
    seg_free(s);
    s = next;
  }
}

/* ---- cursors ---- */

static struct cursor *cursor_find(struct gw_disk *d, const char *name, bool create)
{
  for (size_t i = 0; i < d->ncursors; i++)
    if (strcmp(d->cursors[i].name, name) == 0)
      return &d->cursors[i];
  if (!create || d->ncursors >= MAX_CURSORS)
    return NULL;
  struct cursor *c = &d->cursors[d->ncursors++];
  memset(c, 0, sizeof *c);
  snprintf(c->name, sizeof c->name, "%s", name);
  c->fd = -1;
  return c;
}

static bool cursor_read(struct gw_disk *d, struct cursor *c)
{
  char fn[64];
  snprintf(fn, sizeof fn, "%s.cursor", c->name);
  if (c->fd < 0)
    c->fd = openat(d->dirfd, fn, O_RDWR | O_CLOEXEC);
  if (c->fd < 0)
    return false;
  unsigned char b[16];
  if (pread(c->fd, b, sizeof b, 0) != (ssize_t)sizeof b || get32(b) != CUR_MAGIC ||
      get32(b + 4) != (uint32_t)crc32(0L, b + 8, 8)) {
    gw_warn("spool", "cursor file %s/%s is unreadable or corrupt: '%s' starts again from the oldest spooled entry",
            d->dir, fn, c->name);
    return false;
  }
  c->seq = get64(b + 8);
  return true;
}

bool gw_disk_cursor_load(struct gw_disk *d, const char *name, uint64_t *seq)
{
  struct cursor *c = cursor_find(d, name, true);
  if (!c)
    return false;
  if (!c->loaded) {
    c->valid = cursor_read(d, c);
    c->loaded = true;
  }
  if (c->valid)
    *seq = c->seq;
  return c->valid;
}

void gw_disk_cursor_store(struct gw_disk *d, const char *name, uint64_t seq)
{
  struct cursor *c = cursor_find(d, name, false); /* made by gw_disk_cursor_load when the consumer was added */
  if (!c)
    return;
  char fn[64];
  snprintf(fn, sizeof fn, "%s.cursor", c->name);
  if (c->fd < 0)
    c->fd = openat(d->dirfd, fn, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (c->fd < 0) {
    gw_warn("spool", "cannot write the cursor %s/%s: %s (after a restart it replays more, never less)", d->dir, fn,
            strerror(errno));
    return;
  }
  unsigned char b[16];
  put32(b, CUR_MAGIC);
  put64(b + 8, seq);
  put32(b + 4, (uint32_t)crc32(0L, b + 8, 8));
  if (pwrite(c->fd, b, sizeof b, 0) != (ssize_t)sizeof b)
    return; /* a stale cursor only means replaying more after a restart; the next commit tries again */
  c->seq = seq;
  c->valid = c->loaded = true;
}

size_t gw_disk_cursor_names(struct gw_disk *d, const char **names, size_t max)
{
  size_t n = 0;
  for (size_t i = 0; i < d->ncursors && n < max; i++)
    if (d->cursors[i].valid)
      names[n++] = d->cursors[i].name;
  return n;
}

/* ---- open and recovery ---- */

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Is there a valid record at p (avail bytes from it on), with a seq above prev? */
static bool rec_valid(const unsigned char *p, size_t avail, uint64_t prev, uint32_t key, size_t *work)
{
  if (avail < REC_HDR || get32(p) != REC_MAGIC)
    return false;
  uint64_t olen = get32(p + 24), rlen = get32(p + 28);
  if (REC_HDR + olen + rlen > avail)
    return false;
  uint64_t seq = get64(p + 8);
  if (seq <= prev || seq == 0)
    return false;
  *work += REC_HDR + (size_t)(olen + rlen);
  uint32_t crc = gw_crc32(key, p + 8, REC_HDR - 8);
  crc = gw_crc32(crc, p + REC_HDR, (size_t)(olen + rlen));
  return crc == get32(p + 4);
}

/* Recover one segment file. Returns the segment, or NULL when it holds no record (the file is deleted). */
static struct seg *recover_seg(struct gw_disk *d, const char *name, uint64_t *prev,
                               void (*fn)(void *, const struct gw_disk_rec *), void *ctx, struct gw_disk_recovery *rec)
{
  struct seg *s = gw_calloc(1, sizeof *s);
  snprintf(s->name, sizeof s->name, "%s", name);
  s->fd = openat(d->dirfd, name, O_RDWR | O_CLOEXEC);
  struct stat st;
  if (s->fd < 0 || fstat(s->fd, &st) != 0) {
    gw_error("spool", "cannot open %s/%s: %s; its records are not replayed", d->dir, name, strerror(errno));
    seg_free(s);
    return NULL;
  }
  size_t size = (size_t)st.st_size;
  if (size) {
    s->map_len = page_round(size);
    s->map = mmap(NULL, s->map_len, PROT_READ, MAP_SHARED, s->fd, 0);
    if (s->map == MAP_FAILED) {
      gw_error("spool", "cannot map %s/%s: %s; its records are not replayed", d->dir, name, strerror(errno));
      s->map = NULL;
      seg_free(s);
      return NULL;
    }
  }
  size_t off = SEG_HDR;
  uint64_t lo = *prev; /* a record's seq must be above this */
  uint64_t named = strtoull(name, NULL, 10); /* the first seq the file was made for */
  bool damaged = false;
  size_t work = 0;
  if (size < SEG_HDR || memcmp(s->map, SEG_MAGIC, 8) != 0 || get32(s->map + 8) != SEG_FORMAT) {
    if (size)
      gw_warn("spool", "%s/%s: the segment header is damaged; looking for records in it anyway", d->dir, name);
    off = size < SEG_HDR ? size : SEG_HDR;
    damaged = size > 0;
    /* The records' CRCs are keyed by the nonce at bytes 24..31: damage elsewhere in the header leaves it,
     * and the name says where the records begin. */
    if (size >= SEG_HDR) {
      s->key = seg_key(get64(s->map + 24));
      if (named > lo + 1)
        lo = named - 1;
    }
  } else {
    uint64_t first = get64(s->map + 16);
    s->key = seg_key(get64(s->map + 24));
    /* A first seq that differs from the name is a reuse cut short (below) unless the records say otherwise:
     * a record of this name's seqs checking out under this header's key is this file's own, the field
     * damaged. */
    if (first != named && size > SEG_HDR && rec_valid(s->map + SEG_HDR, size - SEG_HDR, named ? named - 1 : 0, s->key, &work)) {
      gw_warn("spool", "%s/%s: the segment header's first seq is damaged (%" PRIu64 "); its records are replayed",
              d->dir, name, first);
      rec->corrupt_bytes += 8;
      first = named;
    }
    if (first != named) {
      /* A recycled file renamed before its new header reached the disk (seg_reuse): what it holds is its
       * previous use's, all of it committed; nothing of this name's was acknowledged. */
      gw_info("spool", "%s/%s holds the records of segment %" PRIu64 ", already delivered (a reuse cut short): "
              "deleted", d->dir, name, first);
      unlinkat(d->dirfd, name, 0);
      seg_free(s);
      return NULL;
    }
    if (first > lo + 1)
      lo = first - 1;
  }
  size_t valid_end = off;
  /* CRC work is bounded: in order, each byte is checked once; looking for the next record past damage may
   * check a candidate at every 8th byte, so past 4x the segment that search gives up on the segment's rest. */
  size_t work_max = 4 * size + (1u << 20);
  work = 0;
  while (off < size) {
    if (is_end_mark(s->map + off, size - off, s->key, off)) { /* a recycled file: the rest is its past use */
      size = valid_end = off;
      break;
    }
    if (rec_valid(s->map + off, size - off, lo, s->key, &work)) {
      const unsigned char *p = s->map + off;
      struct gw_disk_rec r;
      memset(&r, 0, sizeof r);
      r.e.seq = get64(p + 8);
      r.e.appended_ns = get64(p + 16);
      r.e.otlp_len = get32(p + 24);
      r.e.records_len = get32(p + 28);
      r.e.signal = (enum gw_signal)p[32];
      r.e.format = p[33];
      r.e.flags = get32(p + 36);
      r.e.nspans = get32(p + 40);
      r.e.nrecords = get32(p + 44);
      r.e.otlp = p + REC_HDR;
      r.e.records = p + REC_HDR + r.e.otlp_len;
      r.bytes = rec_size(r.e.otlp_len, r.e.records_len);
      if (off + r.bytes > size)
        r.bytes = size - off; /* a last record whose padding was cut */
      if (!s->last_seq)
        s->first_seq = r.e.seq;
      s->last_seq = r.e.seq;
      *prev = lo = r.e.seq;
      rec->entries++;
      if (r.e.signal == GW_SIGNAL_LOGS)
        rec->log_records += r.e.nspans;
      else
        rec->spans += r.e.nspans;
      fn(ctx, &r);
      off += r.bytes;
      valid_end = off;
      continue;
    }
    /* Not a record: look for the next one that checks out. */
    size_t start = off;
    off = (off + 8) & ~(size_t)7;
    while (off < size && !rec_valid(s->map + off, size - off, lo, s->key, &work)) {
      off += 8;
      if (work > work_max) {
        gw_warn("spool", "%s/%s: too much damage to search for records after offset %zu: the rest of the segment "
                "is skipped", d->dir, name, start);
        off = size;
      }
    }
    if (off > size)
      off = size;
    rec->corrupt_records++;
    rec->corrupt_bytes += off - start;
    if (off >= size) {
      gw_warn("spool", "%s/%s: skipped %zu bytes of a torn or damaged record at offset %zu (end of the segment, "
              "written when the process died); everything before it is replayed", d->dir, name, size - start, start);
      /* cut the torn tail so it is not met again */
      if (ftruncate(s->fd, (off_t)valid_end) == 0)
        size = valid_end;
    } else {
      gw_warn("spool", "%s/%s: skipped %zu bytes of damaged data at offset %zu; records after it are replayed",
              d->dir, name, off - start, start);
    }
  }
  if (!s->last_seq) {
    /* nothing to replay in it: remove it; but a file whose header is damaged may hold records no key
     * could check: kept aside for the operator (NAME.damaged, not read again), not deleted */
    if (damaged && size > SEG_HDR) {
      char aside[48];
      snprintf(aside, sizeof aside, "%s.damaged", name);
      if (renameat(d->dirfd, name, d->dirfd, aside) == 0)
        gw_error("spool", "%s/%s: damaged header and no record that checks out: kept as %s for inspection, its "
                 "%zu bytes not replayed", d->dir, name, aside, size);
      else
        unlinkat(d->dirfd, name, 0);
    } else {
      unlinkat(d->dirfd, name, 0);
    }
    seg_free(s);
    return NULL;
  }
  s->size = size;
  s->kicked = size; /* on disk already */
  return s;
}

struct gw_disk *gw_disk_open(const struct gw_disk_conf *conf, void (*fn)(void *ctx, const struct gw_disk_rec *r),
                             void *ctx, struct gw_disk_recovery *rec, struct gw_err *err)
{
  memset(rec, 0, sizeof *rec);
  if (!conf->dir || !*conf->dir) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.dir: must be set for the disk spool");
    return NULL;
  }
  struct gw_disk *d = gw_calloc(1, sizeof *d);
  d->conf = *conf;
  if (d->conf.segment_bytes < 4096)
    d->conf.segment_bytes = 4096;
  snprintf(d->dir, sizeof d->dir, "%s", conf->dir);
  d->conf.dir = d->dir;
  d->dirfd = -1;
  if (mkdir(d->dir, 0700) != 0 && errno != EEXIST) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.dir: cannot create '%s': %s", d->dir, strerror(errno));
    goto fail;
  }
  d->dirfd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->dirfd < 0) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.dir: cannot open '%s': %s", d->dir, strerror(errno));
    goto fail;
  }
  /* Writable? Find out now, not on the first request. */
  int probe = openat(d->dirfd, ".probe", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (probe < 0) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.dir: '%s' is not writable: %s", d->dir, strerror(errno));
    goto fail;
  }
  close(probe);
  unlinkat(d->dirfd, ".probe", 0);

  DIR *dh = fdopendir(dup(d->dirfd));
  if (!dh) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.dir: cannot list '%s': %s", d->dir, strerror(errno));
    goto fail;
  }
  char **names = NULL;
  size_t nnames = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(dh))) {
    size_t l = strlen(de->d_name);
    if (l > 7 && strcmp(de->d_name + l - 7, ".cursor") == 0 && l - 7 < sizeof d->cursors[0].name) {
      char nm[40];
      snprintf(nm, sizeof nm, "%.*s", (int)(l - 7), de->d_name);
      uint64_t v;
      if (gw_disk_cursor_load(d, nm, &v) && v > rec->last_seq)
        rec->last_seq = v;
      continue;
    }
    if (strncmp(de->d_name, "spare-", 6) == 0 || strncmp(de->d_name, "retired-", 8) == 0) {
      /* kept for reuse by the run before (new ones are made), or a segment it retired empty */
      unlinkat(d->dirfd, de->d_name, 0);
      continue;
    }
    if (l != 24 || strcmp(de->d_name + 20, ".seg") != 0 || strspn(de->d_name, "0123456789") != 20)
      continue;
    if (nnames == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc(names, cap * sizeof *names);
      if (!nn)
        abort();
      names = nn;
    }
    names[nnames++] = strdup(de->d_name);
  }
  closedir(dh);
  if (nnames) /* an empty spool directory: names is NULL, which qsort must not get */
    qsort(names, nnames, sizeof *names, cmp_names);
  uint64_t prev = 0;
  for (size_t i = 0; i < nnames; i++) {
    struct seg *s = recover_seg(d, names[i], &prev, fn, ctx, rec);
    free(names[i]);
    if (!s)
      continue;
    rec->segments++;
    rec->bytes += s->size;
    s->counted = s->size;
    if (d->tail)
      d->tail->next = s;
    else
      d->head = s;
    d->tail = s;
  }
  free(names);
  if (prev > rec->last_seq)
    rec->last_seq = prev;
  /* Recovered segments are read-only (d->active stays NULL): the next append opens a new one. */
  gw_metric_add(GW_M_SPOOL_RECOVERED_ENTRIES, (int64_t)rec->entries);
  gw_metric_add(GW_M_SPOOL_CORRUPT_RECORDS, (int64_t)rec->corrupt_records);
  gw_metric_add(GW_M_SPOOL_CORRUPT_BYTES, (int64_t)rec->corrupt_bytes);

  pthread_mutex_init(&d->lk, NULL);
  pthread_mutex_init(&d->why_mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&d->work_cv, &ca);
  pthread_cond_init(&d->synced_cv, &ca);
  pthread_condattr_destroy(&ca);
  if (d->conf.fsync != GW_FSYNC_NEVER) {
    if (pthread_create(&d->flusher, NULL, flusher, d) != 0) {
      gw_err_set(err, GW_ERR(INTERNAL), "spool: cannot start the fsync thread");
      pthread_mutex_destroy(&d->lk);
      pthread_mutex_destroy(&d->why_mu);
      pthread_cond_destroy(&d->work_cv);
      pthread_cond_destroy(&d->synced_cv);
      goto fail;
    }
    d->has_flusher = true;
  }
  return d;
fail:
  while (d->head) {
    struct seg *s = d->head;
    d->head = s->next;
    seg_free(s);
  }
  for (size_t i = 0; i < d->ncursors; i++)
    if (d->cursors[i].fd >= 0)
      close(d->cursors[i].fd);
  if (d->dirfd >= 0)
    close(d->dirfd);
  free(d);
  return NULL;
}

void gw_disk_close(struct gw_disk *d)
{
  if (!d)
    return;
  if (d->has_flusher) {
    pthread_mutex_lock(&d->lk);
    d->stop = true;
    d->wanted_lsn = d->written_lsn;
    pthread_cond_broadcast(&d->work_cv);
    pthread_mutex_unlock(&d->lk);
    pthread_join(d->flusher, NULL);
  }
  for (size_t i = 0; i < d->ncursors; i++) {
    if (d->cursors[i].fd >= 0) {
      if (d->conf.fsync != GW_FSYNC_NEVER)
        fdatasync(d->cursors[i].fd);
      close(d->cursors[i].fd);
    }
  }
  gw_disk_bury(d); /* d->stop: no more spares kept */
  while (d->spares) {
    struct seg *s = d->spares;
    d->spares = s->next;
    unlinkat(d->dirfd, s->name, 0);
    seg_free(s);
  }
  if (d->conf.fsync != GW_FSYNC_NEVER)
    fsync(d->dirfd);
  while (d->head) {
    struct seg *s = d->head;
    d->head = s->next;
    seg_free(s);
  }
  close(d->dirfd);
  pthread_mutex_destroy(&d->lk);
  pthread_mutex_destroy(&d->why_mu);
  pthread_cond_destroy(&d->work_cv);
  pthread_cond_destroy(&d->synced_cv);
  free(d);
}

bool gw_disk_failing(struct gw_disk *d, uint64_t hold_ns, char *why, size_t why_len)
{
  uint64_t at = atomic_load(&d->fail_mono);
  if (!at)
    return false;
  if (gw_mono_ns() - at >= hold_ns) {
    /* nothing failed for a while (nothing may have been tried: a replica out of its Service gets no
     * requests): ready again, unless the disk is still short of a segment's room */
    struct statvfs v;
    if (!atomic_load(&d->fail_no_space) || fstatvfs(d->dirfd, &v) != 0 ||
        (uint64_t)v.f_bavail * v.f_frsize >= page_round(d->conf.segment_bytes) + SEG_HDR)
      return false;
  }
  if (why && why_len) {
    pthread_mutex_lock(&d->why_mu);
    snprintf(why, why_len, "%s", d->why);
    pthread_mutex_unlock(&d->why_mu);
  }
  return true;
}
