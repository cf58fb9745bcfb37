/*
 * spool.c: the spool: a FIFO of entries under one mutex, bounded in bytes, with a cursor per consumer.
 * Memory mode: each entry is a malloc'd node holding its bytes. Disk mode: each entry is also a record in a
 * segment file (spool_disk.c), written before the entry is linked and synced before the append returns;
 * the node points into the segment's mapping, cursors are saved on every commit, and at start the records
 * of the previous run are linked again (replayed to the consumers that had not committed them). Space is
 * then the segment files' size, freed when a whole segment is behind every consumer.
 * Appenders hold the lock only to link an entry; consumers wait on a condition variable.
 * An entry is freed when the slowest consumer has committed past it.
 * Each consumer keeps pointers to its first uncommitted and first unread node (neither can be freed while
 * it points there), and lag is kept as running byte totals, so peek, commit, lag and skip cost O(1) per
 * entry they touch: a fast consumer never walks the backlog a slow one leaves at the head.
 * Large entries' memory is recycled: a reclaimed node of POOL_MIN bytes or more goes to a small pool
 * (at most max_bytes / 8) that the next append of a similar size takes instead of malloc. Requests of
 * hundreds of KiB are served by mmap or by heaps glibc trims, so each fresh entry faulted its pages in
 * again while a consumer held the previous ones: 9 % of the receivers' time with exporters on.
 */
#include "spool/spool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/metrics.h"
#include "spool/spool_disk.h"

#define POOL_MIN (64u * 1024u) /* smaller entries come from malloc's own bins, already reused */
#define POOL_SCAN 8           /* pooled nodes looked at per append */

struct node {
  struct node *next;
  struct gw_spool_entry e;
  size_t bytes; /* accounted size */
  size_t cap;   /* allocated size (>= bytes) */
  uint64_t appended_mono;
  bool external; /* disk mode: e's pointers are into a segment mapping, data[] is empty */
  unsigned char data[];
};

struct consumer {
  char name[32];
  uint64_t committed;       /* last committed seq */
  uint64_t read;            /* last seq handed out by peek */
  struct node *next_commit; /* first node after committed; NULL when everything appended is committed */
  struct node *next_read;   /* first node after read; NULL when everything appended was read */
  uint64_t committed_bytes; /* running total of the bytes of the entries committed (or skipped) */
  uint64_t committed_count; /* running total of the entries committed (or skipped) */
  uint64_t saved;           /* disk mode: the committed seq last written to its cursor file */
  bool skips;               /* has a lag cap (an exporter): never holds the spool for the others */
};

struct gw_spool {
  pthread_mutex_t mu;
  pthread_cond_t cv;   /* consumers: entries appended */
  pthread_cond_t room; /* appenders: entries reclaimed */
  struct node *head, *tail; /* head = oldest not yet reclaimed */
  uint64_t next_seq;
  uint64_t appended_bytes; /* running total, for lag */
  uint64_t appended_count; /* running total of entries, for lag */
  size_t bytes, max_bytes;
  struct node *pool; /* reclaimed large nodes for reuse */
  size_t pool_bytes, pool_max;
  double high_water;
  bool closed;
  int nconsumers;
  struct consumer consumers[GW_SPOOL_MAX_CONSUMERS];
  /* disk mode */
  struct gw_disk *disk;
  pthread_mutex_t wmu;   /* serializes appends: records go to the file in seq order */
  bool sealed;           /* the consumers are all registered (first append or commit): reclaim may run */
  struct gw_disk_recovery recovered;
};

bool gw_spool_is_disk(struct gw_spool *s) { return s->disk != NULL; }

/* Link a node at the tail. Lock held. */
static void link_node(struct gw_spool *s, struct node *n)
{
  if (s->tail)
    s->tail->next = n;
  else
    s->head = n;
  s->tail = n;
  s->appended_bytes += n->bytes;
  s->appended_count++;
  for (int i = 0; i < s->nconsumers; i++) {
    struct consumer *c = &s->consumers[i];
    if (!c->next_commit)
      c->next_commit = n;
    if (!c->next_read)
      c->next_read = n;
  }
}

/* Recovery: one record of the previous run, linked as a node. */
static void recovered_record(void *ctx, const struct gw_disk_rec *r)
{
  struct gw_spool *s = ctx;
  struct node *n = gw_calloc(1, sizeof *n);
  n->e = r->e;
  n->bytes = r->bytes;
  n->external = true;
  /* Its age counts from now: the lag cap's clock (monotonic) did not run while the process was down. */
  n->appended_mono = gw_mono_ns();
  link_node(s, n);
}

static enum gw_fsync parse_fsync(const char *v, bool *ok)
{
  *ok = true;
  if (!v || !*v || strcmp(v, "interval") == 0)
    return GW_FSYNC_INTERVAL;
  if (strcmp(v, "always") == 0)
    return GW_FSYNC_ALWAYS;
  if (strcmp(v, "never") == 0)
    return GW_FSYNC_NEVER;
  *ok = false;
  return GW_FSYNC_INTERVAL;
}

struct gw_spool *gw_spool_create(const struct gw_spool_conf *conf, struct gw_err *err)
{
  bool disk = conf->mode && strcmp(conf->mode, "disk") == 0;
  if (conf->mode && !disk && strcmp(conf->mode, "memory") != 0) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.mode: '%s' is not one of memory, disk", conf->mode);
    return NULL;
  }
  bool fok;
  enum gw_fsync fs = parse_fsync(conf->fsync, &fok);
  if (!fok) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.fsync: '%s' is not one of always, interval, never", conf->fsync);
    return NULL;
  }
  if (conf->max_bytes < 1024) {
    gw_err_set(err, GW_ERR(CONFIG), "spool.max_bytes: %zu is below the minimum of 1024", conf->max_bytes);
    return NULL;
  }
  struct gw_spool *s = gw_calloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &ca);
  pthread_cond_init(&s->room, &ca);
  pthread_condattr_destroy(&ca);
  s->next_seq = 1;
  s->max_bytes = conf->max_bytes;
  s->pool_max = conf->max_bytes / 8;
  s->high_water = conf->high_water > 0 && conf->high_water <= 1 ? conf->high_water : 0.9;
  pthread_mutex_init(&s->wmu, NULL);
  if (disk) {
    size_t seg = conf->segment_bytes;
    if (!seg) {
      seg = conf->max_bytes / 16;
      seg = seg < (1u << 20) ? (1u << 20) : seg > (64u << 20) ? (64u << 20) : seg;
    }
    struct gw_disk_conf dc = {conf->dir, fs, conf->fsync_interval_ms ? conf->fsync_interval_ms : 10, seg};
    s->disk = gw_disk_open(&dc, recovered_record, s, &s->recovered, err);
    if (!s->disk) {
      gw_spool_destroy(s);
      return NULL;
    }
    s->bytes = s->recovered.bytes;
    s->next_seq = s->recovered.last_seq + 1;
    s->pool_max = 0; /* nodes hold no data */
    const struct gw_disk_recovery *r = &s->recovered;
    if (r->entries || r->corrupt_records)
      gw_info("spool", "disk spool %s: recovered %llu entries (%llu spans, %llu log records) in %llu segments, "
              "%zu bytes; skipped %llu torn or damaged regions (%llu bytes)", conf->dir,
              (unsigned long long)r->entries, (unsigned long long)r->spans, (unsigned long long)r->log_records,
              (unsigned long long)r->segments, r->bytes, (unsigned long long)r->corrupt_records,
              (unsigned long long)r->corrupt_bytes);
  }
  return s;
}

void gw_spool_destroy(struct gw_spool *s)
{
  if (!s)
    return;
  gw_disk_close(s->disk); /* data and cursors stay on disk for the next start */
  for (struct node *lists[2] = {s->head, s->pool}, **l = lists; l < lists + 2; l++) {
    struct node *n = *l;
    while (n) {
      struct node *next = n->next;
      free(n);
      n = next;
    }
  }
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  pthread_cond_destroy(&s->room);
  pthread_mutex_destroy(&s->wmu);
  free(s);
}

int gw_spool_add_consumer(struct gw_spool *s, const char *name)
{
  pthread_mutex_lock(&s->mu);
  int id = -1;
  if (s->nconsumers < GW_SPOOL_MAX_CONSUMERS) {
    id = s->nconsumers++;
    struct consumer *c = &s->consumers[id];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->committed = c->read = s->next_seq - 1;
    c->next_commit = c->next_read = NULL;
    c->committed_bytes = s->appended_bytes;
    c->committed_count = s->appended_count;
    /* The cursor's slot is made here, at start, so the consumer threads never add one concurrently. */
    uint64_t saved = 0;
    bool have = s->disk && gw_disk_cursor_load(s->disk, c->name, &saved);
    if (s->disk && s->head && !s->sealed) {
      /* Where it stopped in the previous run; with no (valid) cursor, everything kept is replayed to it. */
      c->committed = c->read = s->head->e.seq - 1;
      c->committed_bytes = s->appended_bytes;
      c->committed_count = s->appended_count;
      for (struct node *n = s->head; n; n = n->next) {
        if (have && n->e.seq <= saved) {
          c->committed = c->read = n->e.seq;
          continue;
        }
        if (!c->next_commit)
          c->next_commit = c->next_read = n;
        c->committed_bytes -= n->bytes;
        c->committed_count--;
      }
      if (have && saved > c->committed)
        c->committed = c->read = saved; /* its position is past the kept data */
      c->saved = c->committed;
      if (c->next_commit)
        gw_info("spool", "consumer %s resumes after entry %llu: %llu entries to replay", c->name,
                (unsigned long long)c->committed, (unsigned long long)(s->appended_count - c->committed_count));
    }
  }
  pthread_mutex_unlock(&s->mu);
  return id;
}

/* A reclaimed node: to the pool when large and there is room, else freed. Lock held. */
static void recycle(struct gw_spool *s, struct node *n)
{
  if (n->cap >= POOL_MIN && s->pool_bytes + n->cap <= s->pool_max) {
    n->next = s->pool;
    s->pool = n;
    s->pool_bytes += n->cap;
    return;
  }
  free(n);
}

/* A pooled node that fits bytes without wasting more than as much again, unlinked; NULL when none. Lock
 * held. */
static struct node *pool_take(struct gw_spool *s, size_t bytes)
{
  struct node **pp = &s->pool;
  for (int i = 0; *pp && i < POOL_SCAN; i++, pp = &(*pp)->next) {
    struct node *n = *pp;
    if (n->cap >= bytes && n->cap - bytes <= bytes) {
      *pp = n->next;
      s->pool_bytes -= n->cap;
      return n;
    }
  }
  return NULL;
}

size_t gw_spool_pooled_bytes(struct gw_spool *s)
{
  pthread_mutex_lock(&s->mu);
  size_t n = s->pool_bytes;
  pthread_mutex_unlock(&s->mu);
  return n;
}

/* Free entries every consumer has committed. Called with the lock held. */
static void reclaim(struct gw_spool *s)
{
  if (s->disk && !s->sealed)
    return; /* recovered data waits until every consumer of this run has said where it stands */
  uint64_t min = UINT64_MAX;
  for (int i = 0; i < s->nconsumers; i++)
    if (s->consumers[i].committed < min)
      min = s->consumers[i].committed;
  if (s->nconsumers == 0)
    min = s->next_seq - 1;
  bool freed = false;
  while (s->head && s->head->e.seq <= min) {
    struct node *n = s->head;
    s->head = n->next;
    if (!s->head)
      s->tail = NULL;
    if (n->external) {
      free(n);
    } else {
      s->bytes -= n->bytes;
      recycle(s, n);
    }
    freed = true;
  }
  if (s->disk) {
    size_t f = gw_disk_release(s->disk, min);
    freed = f > 0;
    s->bytes -= f;
  }
  if (freed)
    pthread_cond_broadcast(&s->room);
}

/* The consumers are all registered (the first append or commit): say what recovered data is for whom, and
 * let reclaim run. Lock held. */
static void seal(struct gw_spool *s)
{
  if (s->sealed)
    return;
  s->sealed = true;
  if (!s->disk)
    return;
  const char *names[GW_SPOOL_MAX_CONSUMERS * 2];
  size_t n = gw_disk_cursor_names(s->disk, names, sizeof names / sizeof names[0]);
  for (size_t i = 0; i < n; i++) {
    bool mine = false;
    for (int j = 0; j < s->nconsumers; j++)
      mine = mine || strcmp(s->consumers[j].name, names[i]) == 0;
    if (!mine)
      gw_info("spool", "cursor of '%s' found in the spool directory: that consumer is not configured now, the spool "
              "keeps nothing for it", names[i]);
  }
  if (s->nconsumers == 0 && s->head)
    gw_warn("spool", "%llu recovered entries have no consumer now (no Postgres, no exporter configured): discarded",
            (unsigned long long)s->appended_count);
  reclaim(s);
}

/* Save what a consumer has committed to its cursor file (disk mode), outside the lock. */
static void save_cursor(struct gw_spool *s, struct consumer *c, uint64_t committed)
{
  if (!s->disk || committed == c->saved)
    return;
  gw_disk_cursor_store(s->disk, c->name, committed);
  c->saved = committed;
}

/* An entry larger than the whole spool: no amount of waiting or retrying makes room for it, so it is not
 * FULL (429, retry later, which clients do until they give up and drop it) but TOO_LARGE (413 /
 * RESOURCE_EXHAUSTED without RetryInfo), naming the setting that decides. */
static gw_rc never_fits(const struct gw_spool *s, size_t need, struct gw_err *err)
{
  return gw_err_set(err, GW_ERR(TOO_LARGE),
                    "the request needs about %zu bytes of spool, more than spool.max_bytes (%zu): split it or "
                    "raise spool.max_bytes", need, s->max_bytes);
}

static gw_rc mem_append(struct gw_spool *s, const struct gw_spool_in *in, struct gw_err *err)
{
  size_t bytes = sizeof(struct node) + in->otlp_len + in->records_len;
  if (bytes > s->max_bytes)
    return never_fits(s, bytes, err);
  pthread_mutex_lock(&s->mu);
  if (s->closed) {
    pthread_mutex_unlock(&s->mu);
    return GW_ERR(SHUTDOWN);
  }
  if (s->bytes + bytes > s->max_bytes) {
    pthread_mutex_unlock(&s->mu);
    return GW_ERR(FULL);
  }
  s->bytes += bytes; /* reserve, then copy outside the lock */
  struct node *n = bytes >= POOL_MIN ? pool_take(s, bytes) : NULL;
  pthread_mutex_unlock(&s->mu);

  size_t cap = bytes;
  if (n)
    cap = n->cap;
  else if (bytes >= POOL_MIN)
    cap = (bytes + 4095) & ~(size_t)4095; /* whole pages: a later entry a little larger fits it too */
  if (!n)
    n = malloc(cap);
  if (!n) {
    pthread_mutex_lock(&s->mu);
    s->bytes -= bytes;
    pthread_mutex_unlock(&s->mu);
    return GW_ERR(NOMEM);
  }
  if (in->otlp_len)
    memcpy(n->data, in->otlp, in->otlp_len);
  if (in->records_len)
    memcpy(n->data + in->otlp_len, in->records, in->records_len);
  n->next = NULL;
  n->bytes = bytes;
  n->cap = cap;
  n->e.format = GW_SPOOL_FORMAT;
  n->e.signal = in->signal;
  n->e.flags = in->flags;
  n->e.nspans = in->nspans;
  n->e.nrecords = in->nrecords;
  n->e.otlp = n->data;
  n->e.otlp_len = in->otlp_len;
  n->e.records = n->data + in->otlp_len;
  n->e.records_len = in->records_len;
  n->e.appended_ns = gw_now_ns();
  n->appended_mono = gw_mono_ns();

  pthread_mutex_lock(&s->mu);
  n->external = false;
  n->e.seq = s->next_seq++;
  s->sealed = true;
  link_node(s, n);
  if (s->nconsumers == 0)
    reclaim(s); /* nobody will ever read it (no Postgres, no exporter): it must not hold the spool */
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  return GW_OK;
}

/* Say a disk error at most once per 10 s, with how many there were. */
static void disk_error_log(struct gw_spool *s, const struct gw_err *err)
{
  static _Atomic uint64_t last, count;
  uint64_t n = atomic_fetch_add(&count, 1) + 1, now = gw_mono_ns(), l = atomic_load(&last);
  if ((l == 0 || now - l > 10ull * 1000000000ull) && atomic_compare_exchange_strong(&last, &l, now)) {
    atomic_store(&count, 0);
    gw_error("spool", "%s (%llu refused appends since the last report; clients get backpressure and retry)",
             err->msg, (unsigned long long)n);
  }
  (void)s;
}

/* Write the entry to its segment and link it; *lsn is what to wait for before acknowledging it. */
static gw_rc disk_append(struct gw_spool *s, const struct gw_spool_in *in, uint64_t *lsn, struct gw_err *err)
{
  size_t need = in->otlp_len + in->records_len + 64; /* record header and padding, near enough for the cap */
  if (need > s->max_bytes)
    return never_fits(s, need, err);
  uint64_t t0 = gw_mono_ns();
  struct node *n = gw_calloc(1, sizeof *n);
  pthread_mutex_lock(&s->wmu);
  pthread_mutex_lock(&s->mu);
  seal(s);
  gw_rc rc = GW_OK;
  if (s->closed)
    rc = gw_err_set(err, GW_ERR(SHUTDOWN), "the gateway is shutting down");
  else if (s->bytes + need > s->max_bytes)
    rc = gw_err_set(err, GW_ERR(FULL), "spool full (%zu of %zu bytes held): retry later", s->bytes, s->max_bytes);
  uint64_t seq = s->next_seq;
  pthread_mutex_unlock(&s->mu);
  struct gw_disk_rec r;
  if (rc == GW_OK) {
    rc = gw_disk_append(s->disk, in, seq, gw_now_ns(), &r, err);
    if (rc)
      disk_error_log(s, err);
  }
  if (rc) {
    pthread_mutex_unlock(&s->wmu);
    gw_disk_bury(s->disk);
    free(n);
    return rc;
  }
  n->e = r.e;
  n->bytes = r.bytes;
  n->external = true;
  n->appended_mono = gw_mono_ns();
  pthread_mutex_lock(&s->mu);
  s->next_seq = seq + 1;
  s->bytes += r.disk_bytes;
  link_node(s, n);
  if (s->nconsumers == 0)
    reclaim(s); /* nobody will ever read it (no Postgres, no exporter): it must not hold the spool */
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_mutex_unlock(&s->wmu);
  gw_disk_bury(s->disk); /* segments seal or reclaim let go of (no consumer): deleted outside the locks */
  *lsn = r.lsn;
  gw_hist_observe(GW_H_STAGE_APPEND, gw_mono_ns() - t0);
  return GW_OK;
}

gw_rc gw_spool_append_err(struct gw_spool *s, const struct gw_spool_in *in, struct gw_err *err)
{
  struct gw_err scratch;
  if (!err)
    err = &scratch;
  if (!s->disk)
    return mem_append(s, in, err);
  uint64_t lsn;
  gw_rc rc = disk_append(s, in, &lsn, err);
  if (rc)
    return rc;
  rc = gw_disk_wait(s->disk, lsn, in->large);
  if (rc == GW_ERR(SPOOL_IO))
    return gw_err_set(err, rc, "the spool's fsync failed: retry later");
  if (rc)
    return gw_err_set(err, rc, "the gateway is shutting down");
  return GW_OK;
}

gw_rc gw_spool_append(struct gw_spool *s, const struct gw_spool_in *in) { return gw_spool_append_err(s, in, NULL); }

gw_rc gw_spool_append_async(struct gw_spool *s, const struct gw_spool_in *in, void (*done)(void *arg, gw_rc rc),
                            void *arg, struct gw_err *err)
{
  struct gw_err scratch;
  if (!err)
    err = &scratch;
  if (!s->disk) {
    gw_rc rc = mem_append(s, in, err);
    if (rc == GW_OK)
      done(arg, GW_OK);
    return rc;
  }
  uint64_t lsn;
  gw_rc rc = disk_append(s, in, &lsn, err);
  if (rc)
    return rc;
  gw_disk_when_durable(s->disk, lsn, in->large, done, arg);
  return GW_OK;
}

size_t gw_spool_peek(struct gw_spool *s, int consumer, struct gw_spool_entry *out, size_t max, uint32_t min_spans,
                     uint64_t max_wait_ns, uint64_t deadline_mono_ns)
{
  struct consumer *c = &s->consumers[consumer];
  size_t count = 0;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    struct node *first = c->next_read;
    if (first) {
      uint64_t spans = 0;
      for (struct node *n = first; n && spans < min_spans; n = n->next)
        spans += n->e.nspans;
      uint64_t now = gw_mono_ns();
      if (spans >= min_spans || s->closed || now - first->appended_mono >= max_wait_ns) {
        /* A batch is about min_spans spans: a large backlog is handed over in batch-sized pieces,
         * never all at once (a consumer renders a whole batch in memory). */
        uint64_t got = 0;
        struct node *n = first;
        while (n && count < max) {
          out[count++] = n->e;
          got += n->e.nspans;
          n = n->next;
          if (min_spans && got >= min_spans)
            break;
        }
        c->read = out[count - 1].seq;
        c->next_read = n;
        break;
      }
      /* The caller's deadline is for its own chores (idle checks, stop): it ends the wait without a batch,
       * it never cuts the batch window short. */
      if (now >= deadline_mono_ns)
        break;
      /* Wait for more, but no longer than the oldest entry's batch window. */
      uint64_t until = first->appended_mono + max_wait_ns;
      if (until > deadline_mono_ns)
        until = deadline_mono_ns;
      struct timespec ts = {(time_t)(until / 1000000000ull), (long)(until % 1000000000ull)};
      pthread_cond_timedwait(&s->cv, &s->mu, &ts);
      continue;
    }
    if (s->closed || gw_mono_ns() >= deadline_mono_ns)
      break;
    struct timespec ts = {(time_t)(deadline_mono_ns / 1000000000ull), (long)(deadline_mono_ns % 1000000000ull)};
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
  return count;
}

void gw_spool_rewind(struct gw_spool *s, int consumer)
{
  pthread_mutex_lock(&s->mu);
  struct consumer *c = &s->consumers[consumer];
  c->read = c->committed;
  c->next_read = c->next_commit;
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_rewind_to(struct gw_spool *s, int consumer, uint64_t seq)
{
  pthread_mutex_lock(&s->mu);
  struct consumer *c = &s->consumers[consumer];
  if (seq < c->read) {
    struct node *n = c->next_commit;
    while (n && n->e.seq <= seq)
      n = n->next;
    c->read = seq > c->committed ? seq : c->committed;
    c->next_read = n;
  }
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_commit(struct gw_spool *s, int consumer, uint64_t seq)
{
  pthread_mutex_lock(&s->mu);
  struct consumer *c = &s->consumers[consumer];
  while (c->next_commit && c->next_commit->e.seq <= seq) {
    c->committed = c->next_commit->e.seq;
    c->committed_bytes += c->next_commit->bytes;
    c->committed_count++;
    c->next_commit = c->next_commit->next;
  }
  if (c->read < c->committed) {
    c->read = c->committed;
    c->next_read = c->next_commit;
  }
  seal(s);
  reclaim(s);
  uint64_t committed = c->committed;
  pthread_mutex_unlock(&s->mu);
  if (s->disk)
    gw_disk_bury(s->disk); /* the segments reclaim let go of, deleted once appenders no longer wait for mu */
  save_cursor(s, c, committed);
}

void gw_spool_wake(struct gw_spool *s)
{
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_cond_broadcast(&s->room);
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_wait_room(struct gw_spool *s, uint64_t deadline_mono_ns)
{
  pthread_mutex_lock(&s->mu);
  if (!s->closed && gw_mono_ns() < deadline_mono_ns) {
    struct timespec ts = {(time_t)(deadline_mono_ns / 1000000000ull), (long)(deadline_mono_ns % 1000000000ull)};
    pthread_cond_timedwait(&s->room, &s->mu, &ts);
  }
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_close(struct gw_spool *s)
{
  pthread_mutex_lock(&s->mu);
  s->closed = true;
  pthread_cond_broadcast(&s->cv);
  pthread_cond_broadcast(&s->room);
  pthread_mutex_unlock(&s->mu);
}

size_t gw_spool_bytes(struct gw_spool *s)
{
  pthread_mutex_lock(&s->mu);
  size_t b = s->bytes;
  pthread_mutex_unlock(&s->mu);
  return b;
}

size_t gw_spool_max_bytes(struct gw_spool *s) { return s->max_bytes; }

bool gw_spool_below_high_water(struct gw_spool *s)
{
  return (double)gw_spool_bytes(s) < (double)s->max_bytes * s->high_water;
}

bool gw_spool_ready(struct gw_spool *s, char *why, size_t why_len)
{
  size_t held = gw_spool_bytes(s);
  if ((double)held >= (double)s->max_bytes * s->high_water) {
    if (why && why_len)
      snprintf(why, why_len, "spool above high-water mark: %.1f of %.1f MiB held (spool.high_water %.2f)",
               (double)held / 1048576.0, (double)s->max_bytes / 1048576.0, s->high_water);
    return false;
  }
  char msg[256];
  if (s->disk && gw_disk_failing(s->disk, GW_SPOOL_FAIL_HOLD_NS, msg, sizeof msg)) {
    if (why && why_len)
      snprintf(why, why_len, "spool writes failing: %s", msg);
    return false;
  }
  return true;
}

uint64_t gw_spool_last_seq(struct gw_spool *s)
{
  pthread_mutex_lock(&s->mu);
  uint64_t v = s->next_seq - 1;
  pthread_mutex_unlock(&s->mu);
  return v;
}

void gw_spool_lag(struct gw_spool *s, int consumer, uint64_t *entries, size_t *bytes)
{
  struct gw_spool_lag l;
  gw_spool_lag_get(s, consumer, &l);
  *entries = l.entries;
  *bytes = (size_t)l.bytes;
}

void gw_spool_lag_get(struct gw_spool *s, int consumer, struct gw_spool_lag *out)
{
  pthread_mutex_lock(&s->mu);
  const struct consumer *c = &s->consumers[consumer];
  out->entries = s->appended_count - c->committed_count;
  out->bytes = s->appended_bytes - c->committed_bytes;
  out->age_ns = c->next_commit ? gw_mono_ns() - c->next_commit->appended_mono : 0;
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_pending(struct gw_spool *s, int consumer, struct gw_spool_pending *out)
{
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&s->mu);
  for (struct node *n = s->consumers[consumer].next_commit; n; n = n->next) {
    out->entries++;
    if (n->e.signal == GW_SIGNAL_LOGS)
      out->log_records += n->e.nspans;
    else
      out->spans += n->e.nspans;
  }
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_consumer_may_skip(struct gw_spool *s, int consumer)
{
  pthread_mutex_lock(&s->mu);
  s->consumers[consumer].skips = true;
  pthread_mutex_unlock(&s->mu);
}

void gw_spool_skip(struct gw_spool *s, int consumer, uint64_t max_bytes, uint64_t max_age_ns,
                   struct gw_spool_skipped *out)
{
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&s->mu);
  struct consumer *c = &s->consumers[consumer];
  c->skips = true;
  uint64_t now = gw_mono_ns(), before = c->committed;
  /* The byte cap counts what this consumer holds alone: entries a consumer that never skips (the Postgres
   * writer) has not committed stay in the spool anyway, so skipping them would lose data for nothing. */
  uint64_t floor = s->appended_bytes;
  for (int i = 0; i < s->nconsumers; i++)
    if (!s->consumers[i].skips && s->consumers[i].committed_bytes < floor)
      floor = s->consumers[i].committed_bytes;
  for (struct node *n = c->next_commit; n; n = c->next_commit) {
    uint64_t alone = floor > c->committed_bytes ? floor - c->committed_bytes : 0;
    bool too_big = max_bytes && alone > max_bytes;
    bool too_old = max_age_ns && now - n->appended_mono > max_age_ns;
    if (!too_big && !too_old)
      break;
    if (n->e.seq > c->read) { /* not read yet: lost for this consumer */
      out->entries++;
      out->bytes += n->bytes;
      if (n->e.signal == GW_SIGNAL_LOGS)
        out->log_records += n->e.nspans;
      else
        out->spans += n->e.nspans;
    }
    c->committed = n->e.seq;
    c->committed_bytes += n->bytes;
    c->committed_count++;
    c->next_commit = n->next;
  }
  if (c->read < c->committed) {
    c->read = c->committed;
    c->next_read = c->next_commit;
  }
  if (c->committed != before) {
    seal(s);
    reclaim(s);
  }
  uint64_t committed = c->committed;
  pthread_mutex_unlock(&s->mu);
  if (s->disk)
    gw_disk_bury(s->disk); /* the segments reclaim let go of, deleted once appenders no longer wait for mu */
  save_cursor(s, c, committed);
}

const char *gw_spool_consumer_name(struct gw_spool *s, int consumer) { return s->consumers[consumer].name; }
int gw_spool_consumer_count(struct gw_spool *s) { return s->nconsumers; }
