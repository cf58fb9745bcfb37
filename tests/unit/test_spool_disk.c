/* test_spool_disk.c: the disk spool: entries survive a restart and are replayed from each consumer's saved
 * cursor, a torn tail or a damaged record is skipped and counted while everything around it is kept,
 * segments are freed once every consumer is past them, a failed write leaves no partial record, the fsync
 * policies, freed segment files reused without their old records ever coming back (nor counting in the
 * RSS while kept), and a directory that cannot be used is refused at start. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <cmocka.h>

#include "core/crc32.h"
#include "core/crc32_int.h"
#include "core/metrics.h"
#include "spool/spool.h"
#include "spool/spool_disk.h"

#define SEG_HDR_BYTES 32 /* a segment file's header (spool_disk.h) */

static char dir[256];

static int setup(void **st)
{
  (void)st;
  snprintf(dir, sizeof dir, "/tmp/gw-spool-test.XXXXXX");
  assert_non_null(mkdtemp(dir));
  return 0;
}

static int teardown(void **st)
{
  (void)st;
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    char p[600];
    if (de->d_name[0] == '.')
      continue;
    snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
    unlink(p);
  }
  if (d)
    closedir(d);
  rmdir(dir);
  return 0;
}

static struct gw_spool *open_spool_iv(size_t max, size_t seg, const char *fsync, uint32_t interval_ms)
{
  struct gw_spool_conf c = {.mode = "disk", .dir = dir, .max_bytes = max, .high_water = 0.9, .fsync = fsync,
                            .fsync_interval_ms = interval_ms, .segment_bytes = seg};
  struct gw_err err = {0};
  struct gw_spool *s = gw_spool_create(&c, &err);
  if (!s)
    print_error("create: %s\n", err.msg);
  assert_non_null(s);
  assert_true(gw_spool_is_disk(s));
  return s;
}

static struct gw_spool *open_spool(size_t max, size_t seg, const char *fsync) { return open_spool_iv(max, seg, fsync, 5); }

static gw_rc put(struct gw_spool *s, const char *otlp, const char *records, uint32_t nspans)
{
  struct gw_spool_in in = {GW_SIGNAL_TRACES, GW_ENTRY_HAS_GENAI, nspans, 1, otlp, strlen(otlp), records,
                           records ? strlen(records) : 0, false};
  return gw_spool_append(s, &in);
}

static uint64_t far(void) { return gw_mono_ns() + 1000000000ull; }

/* Names of the segment files, sorted; returns the count. */
static int segments(char names[][64], int max)
{
  int n = 0;
  DIR *d = opendir(dir);
  struct dirent *de;
  while ((de = readdir(d)))
    if (strstr(de->d_name, ".seg") && n < max)
      snprintf(names[n++], 64, "%s", de->d_name);
  closedir(d);
  for (int i = 0; i < n; i++)
    for (int j = i + 1; j < n; j++)
      if (strcmp(names[i], names[j]) > 0) {
        char t[64];
        memcpy(t, names[i], 64);
        memcpy(names[i], names[j], 64);
        memcpy(names[j], t, 64);
      }
  return n;
}

/* The path of the spool's segment file, which must be the only one. */
static void only_segment(char *p, size_t cap)
{
  char seg[2][64];
  assert_int_equal(segments(seg, 2), 1);
  snprintf(p, cap, "%s/%s", dir, seg[0]);
}

static off_t file_size(const char *p)
{
  struct stat st;
  assert_int_equal(stat(p, &st), 0);
  return st.st_size;
}

/* The offset of the first s in the first 4 KiB of file p, which must hold it. */
static long offset_in_file(const char *p, const char *s)
{
  FILE *f = fopen(p, "rb");
  assert_non_null(f);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  char *hit = memmem(buf, n, s, strlen(s));
  assert_non_null(hit);
  return hit - buf;
}

/* Damage file p: the byte at off becomes c. */
static void poke(const char *p, long off, char c)
{
  FILE *f = fopen(p, "r+b");
  assert_non_null(f);
  assert_int_equal(fseek(f, off, SEEK_SET), 0);
  fputc(c, f);
  fclose(f);
}

static void test_entries_survive_restart(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool(1 << 20, 0, "interval");
  int pg = gw_spool_add_consumer(s, "postgres"), lf = gw_spool_add_consumer(s, "langfuse");
  assert_int_equal(put(s, "otlp-one", "rec-one", 3), GW_OK);
  assert_int_equal(put(s, "otlp-two", "rec-two", 4), GW_OK);
  assert_int_equal(put(s, "otlp-three", NULL, 5), GW_OK);
  struct gw_spool_entry e[8];
  assert_int_equal(gw_spool_peek(s, pg, e, 8, 0, 0, far()), 3);
  assert_memory_equal(e[0].otlp, "otlp-one", 8);
  assert_memory_equal(e[0].records, "rec-one", 7);
  assert_int_equal(e[1].nspans, 4);
  assert_int_equal(e[2].records_len, 0);
  assert_int_equal(e[0].flags, GW_ENTRY_HAS_GENAI);
  gw_spool_commit(s, pg, e[0].seq); /* postgres finished one; langfuse none */
  uint64_t first = e[0].seq;
  gw_spool_destroy(s);

  int64_t rec0 = gw_metric_get(GW_M_SPOOL_RECOVERED_ENTRIES);
  s = open_spool(1 << 20, 0, "interval");
  assert_int_equal(gw_metric_get(GW_M_SPOOL_RECOVERED_ENTRIES) - rec0, 3);
  lf = gw_spool_add_consumer(s, "langfuse");
  pg = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(gw_spool_peek(s, pg, e, 8, 0, 0, far()), 2);
  assert_int_equal(e[0].seq, first + 1);
  assert_memory_equal(e[0].otlp, "otlp-two", 8);
  assert_memory_equal(e[0].records, "rec-two", 7);
  assert_int_equal(e[0].signal, GW_SIGNAL_TRACES);
  assert_int_equal(e[1].nspans, 5);
  uint64_t lag;
  size_t lb;
  gw_spool_lag(s, lf, &lag, &lb);
  assert_int_equal(lag, 3);
  struct gw_spool_pending p;
  gw_spool_pending(s, lf, &p);
  assert_int_equal(p.spans, 12);
  assert_int_equal(gw_spool_peek(s, lf, e, 8, 0, 0, far()), 3);
  assert_memory_equal(e[0].otlp, "otlp-one", 8);
  /* new entries continue the sequence */
  assert_int_equal(put(s, "otlp-four", NULL, 1), GW_OK);
  struct gw_spool_entry f[2];
  assert_int_equal(gw_spool_peek(s, lf, f, 2, 0, 0, far()), 1);
  assert_int_equal(f[0].seq, first + 3);
  gw_spool_commit(s, lf, f[0].seq);
  gw_spool_destroy(s);

  /* A consumer with no cursor gets everything kept; one that finished everything gets only what is new. */
  s = open_spool(1 << 20, 0, "interval");
  lf = gw_spool_add_consumer(s, "langfuse");
  int otlp = gw_spool_add_consumer(s, "otlp");
  assert_int_equal(gw_spool_peek(s, lf, e, 8, 0, 0, gw_mono_ns() + 50000000ull), 0);
  assert_int_equal(gw_spool_peek(s, otlp, e, 8, 0, 0, far()), 4);
  gw_spool_destroy(s);
}

/* kill -9 mid-append: a segment cut inside its last record. Everything before it comes back; the torn bytes are
 * counted and cut off, and new entries follow the last good one. */
static void test_torn_tail_skipped(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool(1 << 20, 0, "never");
  gw_spool_add_consumer(s, "postgres");
  for (int i = 0; i < 5; i++)
    assert_int_equal(put(s, "some otlp bytes of an entry", "and records", 2), GW_OK);
  gw_spool_destroy(s);
  char p[600];
  only_segment(p, sizeof p);
  assert_int_equal(truncate(p, file_size(p) - 20), 0);

  int64_t c0 = gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS), b0 = gw_metric_get(GW_M_SPOOL_CORRUPT_BYTES);
  s = open_spool(1 << 20, 0, "never");
  int pg = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS) - c0, 1);
  assert_true(gw_metric_get(GW_M_SPOOL_CORRUPT_BYTES) - b0 > 0);
  struct gw_spool_entry e[8];
  assert_int_equal(gw_spool_peek(s, pg, e, 8, 0, 0, far()), 4);
  for (int i = 0; i < 4; i++)
    assert_memory_equal(e[i].otlp, "some otlp bytes of an entry", 27);
  uint64_t last = e[3].seq;
  assert_int_equal(put(s, "after", NULL, 1), GW_OK);
  assert_int_equal(gw_spool_peek(s, pg, e, 8, 0, 0, far()), 1);
  assert_true(e[0].seq > last);
  gw_spool_destroy(s);
  /* the torn tail was cut off: a second start finds nothing more to skip */
  c0 = gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS);
  s = open_spool(1 << 20, 0, "never");
  assert_int_equal(gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS) - c0, 0);
  pg = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(gw_spool_peek(s, pg, e, 8, 0, 0, far()), 5);
  gw_spool_destroy(s);
}

/* A damaged byte in the middle record of three: that record alone is skipped. */
static void test_damaged_record_skipped(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool(1 << 20, 0, "never");
  gw_spool_add_consumer(s, "postgres");
  assert_int_equal(put(s, "first-entry-payload", NULL, 1), GW_OK);
  assert_int_equal(put(s, "second-entry-payload", NULL, 1), GW_OK);
  assert_int_equal(put(s, "third-entry-payload", NULL, 1), GW_OK);
  gw_spool_destroy(s);
  char p[600];
  only_segment(p, sizeof p);
  poke(p, offset_in_file(p, "second-entry"), 'X'); /* a byte of the second payload */

  int64_t c0 = gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS);
  s = open_spool(1 << 20, 0, "never");
  assert_int_equal(gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS) - c0, 1);
  int pg = gw_spool_add_consumer(s, "postgres");
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, pg, e, 4, 0, 0, far()), 2);
  assert_memory_equal(e[0].otlp, "first-entry-payload", 19);
  assert_memory_equal(e[1].otlp, "third-entry-payload", 19);
  assert_int_equal(e[1].seq, e[0].seq + 2);
  uint64_t lag;
  size_t lb;
  gw_spool_lag(s, pg, &lag, &lb);
  assert_int_equal(lag, 2); /* counted, not taken from the gap in sequence numbers */
  gw_spool_destroy(s);
}

/* A client's payload holding bytes shaped like a record (its CRC computed as anyone could, without the
 * segment's nonce) is never taken for a record when recovery searches past damage in front of it. */
static void test_forged_record_in_payload_not_replayed(void **st)
{
  (void)st;
  unsigned char forged[48 + 8] = {0};
  uint32_t v32;
  uint64_t v64;
  v32 = 0x31525747u; /* "GWR1" */
  memcpy(forged, &v32, 4);
  v64 = 1000000;
  memcpy(forged + 8, &v64, 8);
  v32 = 5;
  memcpy(forged + 24, &v32, 4);
  forged[32] = GW_SIGNAL_TRACES;
  forged[33] = GW_SPOOL_FORMAT;
  v32 = 1;
  memcpy(forged + 40, &v32, 4);
  memcpy(forged + 48, "EVIL!", 5);
  v32 = (uint32_t)crc32(crc32(0L, forged + 8, 40), forged + 48, 5);
  memcpy(forged + 4, &v32, 4);

  struct gw_spool *s = open_spool(1 << 20, 0, "never");
  gw_spool_add_consumer(s, "postgres");
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, forged, sizeof forged, NULL, 0, false};
  assert_int_equal(gw_spool_append(s, &in), GW_OK);
  assert_int_equal(put(s, "after", NULL, 1), GW_OK);
  gw_spool_destroy(s);
  /* damage the first record's magic: recovery searches forward from there, through the payload */
  char p[600];
  only_segment(p, sizeof p);
  poke(p, 32, 'X');

  s = open_spool(1 << 20, 0, "never");
  int a = gw_spool_add_consumer(s, "postgres");
  struct gw_spool_entry e[4];
  size_t n = gw_spool_peek(s, a, e, 4, 0, 0, far());
  assert_int_equal(n, 1);
  assert_int_equal(e[0].otlp_len, 5);
  assert_memory_equal(e[0].otlp, "after", 5);
  gw_spool_destroy(s);
}

/* Small segments: once every consumer is past a segment its file is deleted and its bytes are free again;
 * the cap counts the files. */
static void test_segments_reclaimed(void **st)
{
  (void)st;
  char big[3000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  struct gw_spool *s = open_spool(64 * 1024, 8192, "never");
  int a = gw_spool_add_consumer(s, "postgres"), b = gw_spool_add_consumer(s, "otlp");
  int ok = 0;
  while (put(s, big, NULL, 1) == GW_OK)
    ok++;
  assert_true(ok >= 18 && ok <= 22); /* 64 KiB of ~3 KiB records */
  assert_int_equal(put(s, big, NULL, 1), GW_ERR(FULL));
  char seg[64][64];
  int nseg = segments(seg, 64);
  assert_true(nseg >= 8);
  size_t held = gw_spool_bytes(s);
  struct gw_spool_entry e[64];
  size_t n = gw_spool_peek(s, a, e, 64, 0, 0, far());
  assert_int_equal(n, (size_t)ok);
  gw_spool_commit(s, a, e[n - 1].seq);
  assert_int_equal(segments(seg, 64), nseg); /* b still needs them */
  n = gw_spool_peek(s, b, e, 6, 0, 0, far());
  gw_spool_commit(s, b, e[n - 1].seq);
  int after = segments(seg, 64);
  assert_true(after < nseg && after > 1);
  assert_true(gw_spool_bytes(s) < held);
  n = gw_spool_peek(s, b, e, 64, 0, 0, far());
  gw_spool_commit(s, b, e[n - 1].seq);
  assert_int_equal(segments(seg, 64), 1); /* only the one being written */
  assert_int_equal(put(s, big, NULL, 1), GW_OK);
  gw_spool_destroy(s);
}

static void never_durable(void *arg, gw_rc rc)
{
  (void)arg;
  (void)rc;
  fail_msg("done called for a refused append");
}

/* A record larger than the whole spool is TOO_LARGE (413, not to be retried), with a message naming
 * spool.max_bytes, and nothing of it is written: FULL (429, retry later) would have clients send it for
 * ever, the spool empty or not. Records that fit go on being taken. */
static void test_entry_larger_than_spool(void **st)
{
  (void)st;
  size_t max = 64 * 1024, n = max + 1;
  char *big = malloc(n);
  assert_non_null(big);
  memset(big, 'x', n - 1);
  big[n - 1] = '\0';
  struct gw_spool *s = open_spool(max, 8192, "never");
  int a = gw_spool_add_consumer(s, "postgres");
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 1, "o", 1, big, n - 1, false};
  struct gw_err err = {0};
  assert_int_equal(gw_spool_bytes(s), 0);
  assert_int_equal(gw_spool_append_err(s, &in, &err), GW_ERR(TOO_LARGE));
  assert_int_equal(err.rc, GW_ERR(TOO_LARGE));
  char want[64];
  snprintf(want, sizeof want, "more than spool.max_bytes (%zu)", max);
  assert_non_null(strstr(err.msg, want));
  memset(&err, 0, sizeof err);
  assert_int_equal(gw_spool_append_async(s, &in, never_durable, NULL, &err), GW_ERR(TOO_LARGE));
  assert_non_null(strstr(err.msg, "spool.max_bytes"));
  /* a few bytes under the cap: the record header still makes it too large */
  in.records_len = max - 40;
  assert_int_equal(gw_spool_append(s, &in), GW_ERR(TOO_LARGE));
  char seg[4][64];
  assert_int_equal(segments(seg, 4), 0); /* nothing written */
  assert_int_equal(gw_spool_bytes(s), 0);
  /* a record that fits is taken, and the refused ones took no sequence number */
  big[3000] = '\0';
  assert_int_equal(put(s, big, NULL, 1), GW_OK);
  struct gw_spool_entry e[2];
  assert_int_equal(gw_spool_peek(s, a, e, 2, 0, 0, far()), 1);
  assert_int_equal(e[0].seq, 1);
  assert_int_equal(e[0].otlp_len, 3000);
  gw_spool_destroy(s);
  free(big);
}

/* A segment as large as the spool (spool.segment_bytes near spool.max_bytes, or a small spool): what every
 * consumer has finished in the segment being written gives its room back, though the segment stays. Before,
 * that segment counted whole until it was full and released, and with it nearly the whole spool: every
 * append was FULL (429) with the consumers caught up, for ever. */
static void test_caught_up_active_segment_gives_room(void **st)
{
  (void)st;
  size_t max = 256 * 1024;
  struct gw_spool *s = open_spool(max, max, "never");
  int a = gw_spool_add_consumer(s, "postgres");
  char *text = malloc(60 * 1024 + 1);
  assert_non_null(text);
  memset(text, 'r', 60 * 1024);
  text[60 * 1024] = '\0';
  for (int i = 0; i < 12; i++) { /* 12 x 60 KiB: three times the spool, each consumed before the next */
    gw_rc rc = put(s, text, NULL, 1);
    if (rc)
      print_error("append %d: %d with %zu bytes held\n", i, rc, gw_spool_bytes(s));
    assert_int_equal(rc, GW_OK);
    struct gw_spool_entry e[1];
    assert_int_equal(gw_spool_peek(s, a, e, 1, 0, 0, far()), 1);
    gw_spool_commit(s, a, e[0].seq);
    assert_true(gw_spool_bytes(s) < 64 * 1024); /* what is unconsumed: nothing but the header's few bytes */
  }
  /* unconsumed entries still count: four fill the spool, the fifth is refused */
  int ok = 0;
  while (put(s, text, NULL, 1) == GW_OK)
    ok++;
  assert_true(ok >= 3 && ok <= 4);
  gw_spool_destroy(s);
  free(text);
}

/* genai_gateway_spool_written_bytes_total counts what the segment files got: on a fresh spool whose
 * segments are all new files (no spare reused), the sum of their sizes. */
static void test_written_bytes_counted(void **st)
{
  (void)st;
  int64_t w0 = gw_metric_get(GW_M_SPOOL_WRITTEN_BYTES);
  struct gw_spool *s = open_spool(1 << 20, 8192, "never");
  gw_spool_add_consumer(s, "postgres"); /* keeps every entry, so no segment is reclaimed or reused */
  char text[2500];
  for (int i = 0; i < 12; i++) {
    size_t n = 100 + (size_t)i * 197;
    memset(text, 'a' + i, n);
    text[n] = '\0';
    assert_int_equal(put(s, text, i % 2 ? text : NULL, 1), GW_OK);
  }
  char seg[16][64];
  int nseg = segments(seg, 16);
  assert_true(nseg >= 2); /* the entries crossed segments: each new file's header counted too */
  int64_t sizes = 0;
  for (int i = 0; i < nseg; i++) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, seg[i]);
    sizes += file_size(p);
  }
  assert_int_equal(gw_metric_get(GW_M_SPOOL_WRITTEN_BYTES) - w0, sizes);
  gw_spool_destroy(s);
}

/* kill -9 after some segments were deleted but with the cursors saved: the restart starts where each consumer
 * was, and the sequence goes on past both the data and the cursors. */
static void test_restart_after_reclaim(void **st)
{
  (void)st;
  char big[3000];
  memset(big, 'y', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  struct gw_spool *s = open_spool(1 << 20, 8192, "never");
  int a = gw_spool_add_consumer(s, "postgres");
  for (int i = 0; i < 10; i++)
    assert_int_equal(put(s, big, NULL, 1), GW_OK);
  struct gw_spool_entry e[16];
  size_t n = gw_spool_peek(s, a, e, 16, 0, 0, far());
  assert_int_equal(n, 10);
  uint64_t last = e[9].seq;
  gw_spool_commit(s, a, last);
  gw_spool_destroy(s);
  s = open_spool(1 << 20, 8192, "never");
  a = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(gw_spool_peek(s, a, e, 16, 0, 0, gw_mono_ns() + 30000000ull), 0);
  assert_int_equal(put(s, "next", NULL, 1), GW_OK);
  assert_int_equal(gw_spool_peek(s, a, e, 16, 0, 0, far()), 1);
  assert_true(e[0].seq > last);
  gw_spool_destroy(s);
}

/* A write the file system refuses (here: past RLIMIT_FSIZE) fails the append with a retryable error and
 * leaves no partial record: later appends and a restart see only whole records. */
static void test_failed_write_leaves_no_partial_record(void **st)
{
  (void)st;
  signal(SIGXFSZ, SIG_IGN);
  struct gw_spool *s = open_spool(1 << 20, 0, "never");
  int a = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(put(s, "before the limit", NULL, 1), GW_OK);
  char p[600];
  only_segment(p, sizeof p);
  off_t size = file_size(p);
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = (rlim_t)size + 60; /* room for a record header, not for the payload */
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  char big[500];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  gw_rc rc = put(s, big, NULL, 1);
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  assert_int_equal(rc, GW_ERR(SPOOL_IO));
  assert_int_equal(file_size(p), size);
  uint64_t no_space, io;
  gw_spool_disk_write_errors(&no_space, &io);
  assert_true(io >= 1);
  assert_int_equal(put(s, "after the limit", NULL, 1), GW_OK);
  gw_spool_destroy(s);
  int64_t c0 = gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS);
  s = open_spool(1 << 20, 0, "never");
  assert_int_equal(gw_metric_get(GW_M_SPOOL_CORRUPT_RECORDS), c0);
  a = gw_spool_add_consumer(s, "postgres");
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 4, 0, 0, far()), 2);
  assert_memory_equal(e[1].otlp, "after the limit", 15);
  gw_spool_destroy(s);
}

/* A record that fails in a new segment leaves it empty, and the sequence number where it was: the next
 * record that needs a new segment is made for the same first seq, under the same file name. The empty one
 * must not take the new file with it when released (it was renamed, or unlinked, by that name): the
 * records acknowledged in the new file were lost at the next start. */
static void test_failed_first_record_keeps_the_next_segment(void **st)
{
  (void)st;
  signal(SIGXFSZ, SIG_IGN);
  struct gw_spool *s = open_spool(4 << 20, 64 * 1024, "never");
  int a = gw_spool_add_consumer(s, "postgres");
  char *big = malloc(70 * 1024 + 1); /* larger than a segment: always a segment of its own */
  assert_non_null(big);
  memset(big, 'B', 70 * 1024);
  big[70 * 1024] = '\0';
  assert_int_equal(put(s, "first", NULL, 1), GW_OK);        /* seq 1, segment 1 */
  struct rlimit old, lim;
  getrlimit(RLIMIT_FSIZE, &old);
  lim = old;
  lim.rlim_cur = 1024; /* a new file's header fits, the big record does not */
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
  gw_rc rc = put(s, big, NULL, 1); /* seq 2: a new segment 2, its record refused */
  assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
  assert_int_equal(rc, GW_ERR(SPOOL_IO));
  /* seq 2 again, larger than the room of the empty segment 2 (sized for the refused record): a new one */
  char *bigger = malloc(80 * 1024 + 1);
  assert_non_null(bigger);
  memset(bigger, 'C', 80 * 1024);
  bigger[80 * 1024] = '\0';
  assert_int_equal(put(s, bigger, NULL, 1), GW_OK);
  assert_int_equal(put(s, "after", NULL, 1), GW_OK);        /* seq 3 */
  /* the consumer finishes seq 1 only: segment 1 is released, and with it whatever came before segment 2 */
  struct gw_spool_entry e[4];
  assert_int_equal(gw_spool_peek(s, a, e, 1, 0, 0, far()), 1);
  gw_spool_commit(s, a, e[0].seq);
  gw_spool_destroy(s);
  s = open_spool(4 << 20, 64 * 1024, "never");
  a = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(gw_spool_peek(s, a, e, 4, 0, 0, far()), 2);
  assert_int_equal(e[0].seq, 2);
  assert_int_equal(e[0].otlp_len, 80 * 1024);
  assert_memory_equal(e[1].otlp, "after", 5);
  gw_spool_destroy(s);
  free(big);
  free(bigger);
}

/* One damaged byte in a segment's header (its magic, or its first-seq field) no longer throws its records
 * away: they are keyed by the header's nonce, which the damage left, and the name says where they begin.
 * Before, the file was deleted with every acknowledged record in it. */
static void test_damaged_header_records_replayed(void **st)
{
  (void)st;
  for (int field = 0; field < 2; field++) {
    struct gw_spool *s = open_spool(1 << 20, 0, "never");
    gw_spool_add_consumer(s, "postgres");
    assert_int_equal(put(s, "one", NULL, 1), GW_OK);
    assert_int_equal(put(s, "two", NULL, 1), GW_OK);
    assert_int_equal(put(s, "three", NULL, 1), GW_OK);
    gw_spool_destroy(s);
    char p[600];
    only_segment(p, sizeof p);
    poke(p, field == 0 ? 3 : 17, 'X'); /* the magic, or a byte of the first seq */
    s = open_spool(1 << 20, 0, "never");
    int a = gw_spool_add_consumer(s, "postgres");
    struct gw_spool_entry e[4];
    assert_int_equal(gw_spool_peek(s, a, e, 4, 0, 0, far()), 3);
    assert_memory_equal(e[0].otlp, "one", 3);
    assert_memory_equal(e[2].otlp, "three", 5);
    gw_spool_commit(s, a, e[2].seq);
    gw_spool_destroy(s);
    teardown(NULL);
    setup(NULL);
  }
}

static _Atomic int async_done;
static void on_durable(void *arg, gw_rc rc)
{
  (void)arg;
  if (rc == GW_OK)
    async_done++;
}

/* always and interval sync before the append returns (fsyncs are counted); never does not sync at all. */
static void test_fsync_policies(void **st)
{
  (void)st;
  int64_t f0 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  struct gw_spool *s = open_spool(1 << 20, 0, "never");
  gw_spool_add_consumer(s, "postgres");
  for (int i = 0; i < 5; i++)
    assert_int_equal(put(s, "never", NULL, 1), GW_OK);
  gw_spool_destroy(s);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS), f0);

  s = open_spool(1 << 20, 0, "always");
  gw_spool_add_consumer(s, "postgres");
  for (int i = 0; i < 5; i++)
    assert_int_equal(put(s, "always", NULL, 1), GW_OK);
  assert_true(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0 >= 5); /* one by one: each append waited for its own */
  int64_t f1 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  async_done = 0;
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, "async", 5, NULL, 0, false};
  struct gw_err err;
  assert_int_equal(gw_spool_append_async(s, &in, on_durable, NULL, &err), GW_OK);
  for (int i = 0; i < 200 && !async_done; i++)
    usleep(5000);
  assert_int_equal(async_done, 1);
  assert_true(gw_metric_get(GW_M_SPOOL_FSYNCS) > f1);
  gw_spool_destroy(s);

  s = open_spool(1 << 20, 0, "interval");
  gw_spool_add_consumer(s, "postgres");
  int64_t f2 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  assert_int_equal(put(s, "interval", NULL, 1), GW_OK);
  assert_true(gw_metric_get(GW_M_SPOOL_FSYNCS) > f2);
  gw_spool_destroy(s);
}

/* interval: a request that finds the syncer idle is synced at once, not an interval after the sync before it
 * (here the interval is a minute and two appends in a row are both durable at once); the interval still
 * bounds the syncs: the budget of two spent, a third append waits (it is synced when the spool closes). */
static void test_interval_idle_syncs_at_once(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool_iv(1 << 20, 0, "interval", 60000);
  gw_spool_add_consumer(s, "postgres");
  int64_t f0 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  assert_int_equal(put(s, "first", NULL, 1), GW_OK);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 1);
  async_done = 0;
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, "second", 6, NULL, 0, false};
  struct gw_err err;
  assert_int_equal(gw_spool_append_async(s, &in, on_durable, NULL, &err), GW_OK);
  for (int i = 0; i < 1000 && !async_done; i++) /* up to 5 s; the interval is 60 s */
    usleep(5000);
  assert_int_equal(async_done, 1);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 2);
  in.otlp = "third";
  in.otlp_len = 5;
  assert_int_equal(gw_spool_append_async(s, &in, on_durable, NULL, &err), GW_OK);
  usleep(300000);
  assert_int_equal(async_done, 1); /* waits for the budget: a minute */
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 2);
  gw_spool_destroy(s); /* closing syncs what is left and answers it */
  assert_int_equal(async_done, 2);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 3);
}

/* A large entry's writing starts at its append, before the sync (spool_disk.c, KICK_BYTES); small ones are
 * left for the sync to write together until 256 KiB of them have gathered; fsync never starts none. */
static void test_large_entry_written_ahead(void **st)
{
  (void)st;
  char *big = malloc(300u << 10), small[5000];
  assert_non_null(big);
  memset(big, 'b', (300u << 10) - 1);
  big[(300u << 10) - 1] = 0;
  memset(small, 's', sizeof small - 1);
  small[sizeof small - 1] = 0;

  struct gw_spool *s = open_spool(16u << 20, 4u << 20, "never");
  gw_spool_add_consumer(s, "postgres");
  uint64_t w0 = gw_spool_disk_writes_started();
  assert_int_equal(put(s, big, NULL, 1), GW_OK);
  assert_int_equal(gw_spool_disk_writes_started(), w0);
  gw_spool_destroy(s);

  s = open_spool(16u << 20, 4u << 20, "always");
  gw_spool_add_consumer(s, "postgres");
  w0 = gw_spool_disk_writes_started();
  for (int i = 0; i < 10; i++) /* 50 KB */
    assert_int_equal(put(s, small, NULL, 1), GW_OK);
  assert_int_equal(gw_spool_disk_writes_started(), w0);
  assert_int_equal(put(s, big, NULL, 1), GW_OK);
  uint64_t w1 = gw_spool_disk_writes_started();
  assert_true(w1 - w0 >= (350u << 10) - 4096); /* the small ones since the segment began, and the big one */
  for (int i = 0; i < 10; i++)
    assert_int_equal(put(s, small, NULL, 1), GW_OK);
  assert_int_equal(gw_spool_disk_writes_started(), w1);
  for (int i = 0; i < 50; i++) /* 250 KB more: past 256 KiB with the ten before */
    assert_int_equal(put(s, small, NULL, 1), GW_OK);
  assert_true(gw_spool_disk_writes_started() - w1 >= 256u << 10);
  gw_spool_destroy(s);
  free(big);
}

/* interval: a large request does not spend the budget small ones need. A sync for large requests alone
 * waits until the budget is full (two syncs; it then leaves one); any other sync covers them. Here the
 * interval is a minute, so "waits" cannot be a slow machine's doing. Without the rule the second large
 * append below would be synced at once (the budget still held a sync) and the small one after it would
 * find the budget spent. */
static void test_large_requests_wait_for_a_full_budget(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool_iv(1 << 20, 0, "interval", 60000);
  gw_spool_add_consumer(s, "postgres");
  int64_t f0 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  struct gw_spool_in big = {GW_SIGNAL_TRACES, 0, 1, 0, "large", 5, NULL, 0, true};
  struct gw_err err;
  async_done = 0;
  assert_int_equal(gw_spool_append_async(s, &big, on_durable, NULL, &err), GW_OK);
  for (int i = 0; i < 1000 && async_done < 1; i++) /* a full budget: synced at once (up to 5 s) */
    usleep(5000);
  assert_int_equal(async_done, 1);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 1);

  assert_int_equal(gw_spool_append_async(s, &big, on_durable, NULL, &err), GW_OK);
  usleep(300000);
  assert_int_equal(async_done, 1); /* one sync left in the budget: kept for the others */
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 1);

  assert_int_equal(put(s, "small", NULL, 1), GW_OK); /* synced at once, and the large one with it */
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 2);
  for (int i = 0; i < 1000 && async_done < 2; i++)
    usleep(5000);
  assert_int_equal(async_done, 2);

  assert_int_equal(gw_spool_append_async(s, &big, on_durable, NULL, &err), GW_OK);
  usleep(100000);
  assert_int_equal(async_done, 2);
  gw_spool_destroy(s); /* closing syncs what is left and answers it */
  assert_int_equal(async_done, 3);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 3);

  /* always: every request is synced at once, large or not */
  s = open_spool(1 << 20, 0, "always");
  gw_spool_add_consumer(s, "postgres");
  f0 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  for (int i = 0; i < 3; i++)
    assert_int_equal(gw_spool_append_err(s, &big, &err), GW_OK);
  assert_int_equal(gw_metric_get(GW_M_SPOOL_FSYNCS) - f0, 3);
  gw_spool_destroy(s);
}

/* interval: a sync thread waiting out the budget is not woken by every append (each wake-up only to wait
 * again cost two context switches a request); it wakes when the budget allows and syncs them all at once,
 * and none is forgotten. */
static void test_budget_wait_not_woken_per_append(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool_iv(1 << 20, 0, "interval", 2000);
  gw_spool_add_consumer(s, "postgres");
  assert_int_equal(put(s, "a", NULL, 1), GW_OK); /* the budget's two syncs spent at once */
  assert_int_equal(put(s, "b", NULL, 1), GW_OK);
  int64_t f0 = gw_metric_get(GW_M_SPOOL_FSYNCS);
  uint64_t w0 = gw_spool_disk_flusher_wakeups();
  struct gw_spool_in small = {GW_SIGNAL_TRACES, 0, 1, 0, "small", 5, NULL, 0, false};
  struct gw_err err;
  async_done = 0;
  for (int i = 0; i < 20; i++) { /* 20 ms apart: each finds the sync thread waiting */
    assert_int_equal(gw_spool_append_async(s, &small, on_durable, NULL, &err), GW_OK);
    usleep(20000);
  }
  for (int i = 0; i < 2000 && async_done < 20; i++) /* the next sync: about 2 s after the budget ran out */
    usleep(5000);
  assert_int_equal(async_done, 20);
  int64_t syncs = gw_metric_get(GW_M_SPOOL_FSYNCS) - f0;
  assert_true(syncs >= 1 && syncs <= 2);
  uint64_t woke = gw_spool_disk_flusher_wakeups() - w0;
  if (woke > 4)
    print_error("the sync thread woke %llu times for 20 appends\n", (unsigned long long)woke);
  assert_true(woke <= 4); /* the first append's signal, the budget's time-out (20 before) */
  gw_spool_destroy(s);
}

static void count_rec(void *ctx, const struct gw_disk_rec *r)
{
  (void)r;
  ++*(int *)ctx;
}

/* Releasing segments only takes them out of the spool; their files are deleted by gw_disk_bury, which the
 * spool runs once it has let go of the lock appenders need (a file of many MiB takes a while to delete). */
static void test_release_then_bury(void **st)
{
  (void)st;
  struct gw_disk_conf c = {dir, GW_FSYNC_NEVER, 10, 4096};
  struct gw_disk_recovery rec;
  struct gw_err err = {0};
  int n = 0;
  struct gw_disk *d = gw_disk_open(&c, count_rec, &n, &rec, &err);
  assert_non_null(d);
  char big[5000];
  memset(big, 'b', sizeof big);
  for (uint64_t seq = 1; seq <= 3; seq++) {
    struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, big, sizeof big, NULL, 0, false};
    struct gw_disk_rec r;
    assert_int_equal(gw_disk_append(d, &in, seq, gw_now_ns(), &r, &err), GW_OK);
  }
  char seg[8][64];
  assert_int_equal(segments(seg, 8), 3); /* one record per segment: each is larger than segment_bytes */
  assert_true(gw_disk_release(d, 2) > 2 * sizeof big);
  assert_int_equal(segments(seg, 8), 3); /* released, not deleted yet */
  gw_disk_bury(d);
  assert_int_equal(segments(seg, 8), 1);
  assert_string_equal(seg[0], "00000000000000000003.seg");
  gw_disk_bury(d); /* nothing left to delete */
  /* the segment being written stays, but once consumed its bytes give their room back, once */
  assert_true(gw_disk_release(d, 2) == 0);
  assert_true(gw_disk_release(d, 3) > sizeof big);
  assert_int_equal(gw_disk_release(d, 3), 0);
  gw_disk_bury(d);
  assert_int_equal(segments(seg, 8), 1);
  gw_disk_close(d);
  assert_int_equal(segments(seg, 8), 1);
}

/* ---- recycled segments ---- */

struct seen {
  int n;
  uint64_t seq[32];
  char head[32][8];
};

static void seen_rec(void *ctx, const struct gw_disk_rec *r)
{
  struct seen *v = ctx;
  if (v->n < 32) {
    v->seq[v->n] = r->e.seq;
    memcpy(v->head[v->n], r->e.otlp, r->e.otlp_len < 6 ? r->e.otlp_len : 6); /* "new-NN" */
    v->head[v->n][6] = '\0';
  }
  v->n++;
}

static void disk_put(struct gw_disk *d, uint64_t seq, const char *tag, size_t len)
{
  char buf[1500];
  memset(buf, 'o', sizeof buf);
  memcpy(buf, tag, strlen(tag));
  struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, buf, len, NULL, 0, false};
  struct gw_disk_rec r;
  struct gw_err err = {0};
  assert_int_equal(gw_disk_append(d, &in, seq, gw_now_ns(), &r, &err), GW_OK);
}

static int count_prefix(const char *prefix)
{
  int n = 0;
  DIR *dh = opendir(dir);
  struct dirent *de;
  while ((de = readdir(dh)))
    n += strncmp(de->d_name, prefix, strlen(prefix)) == 0;
  closedir(dh);
  return n;
}

/* Leaves the spool directory holding one segment, 00000000000000000016.seg: a file reused after it held
 * records 1-5 or 6-10 (1500-byte payloads "old-NN"), now with records 16 and 17 (short, "new-NN") at its
 * start (600 bytes each) and its previous use's records past them. old_hdr gets that file's header from its previous use. */
static void make_recycled(unsigned char old_hdr[SEG_HDR_BYTES])
{
  struct gw_disk_conf c = {dir, GW_FSYNC_NEVER, 10, 8192};
  struct gw_disk_recovery rec;
  struct gw_err err = {0};
  struct seen v = {0};
  struct gw_disk *d = gw_disk_open(&c, seen_rec, &v, &rec, &err);
  assert_non_null(d);
  char tag[16];
  for (uint64_t seq = 1; seq <= 12; seq++) { /* 5 records a segment: 1-5, 6-10, 11-12 */
    snprintf(tag, sizeof tag, "old-%02u", (unsigned)seq);
    disk_put(d, seq, tag, 1500);
  }
  char p[2][600];
  struct stat st[2];
  unsigned char hdr[2][SEG_HDR_BYTES];
  for (int i = 0; i < 2; i++) {
    snprintf(p[i], sizeof p[i], "%s/%020d.seg", dir, i ? 6 : 1);
    assert_int_equal(stat(p[i], &st[i]), 0);
    FILE *f = fopen(p[i], "rb");
    assert_non_null(f);
    assert_int_equal(fread(hdr[i], 1, SEG_HDR_BYTES, f), SEG_HDR_BYTES);
    fclose(f);
  }
  gw_disk_release(d, 10);
  gw_disk_bury(d);
  assert_int_equal(count_prefix("spare-"), 2); /* kept for reuse, not deleted */
  char seg[8][64];
  assert_int_equal(segments(seg, 8), 1);
  for (uint64_t seq = 13; seq <= 15; seq++) {
    snprintf(tag, sizeof tag, "old-%02u", (unsigned)seq);
    disk_put(d, seq, tag, 1500);
  }
  disk_put(d, 16, "new-16", 600); /* no room left in segment 11: 16 opens one, from a spare */
  disk_put(d, 17, "new-17", 600);
  assert_int_equal(count_prefix("spare-"), 1);
  char np[600];
  snprintf(np, sizeof np, "%s/%020d.seg", dir, 16);
  struct stat nst;
  assert_int_equal(stat(np, &nst), 0);
  assert_true(nst.st_ino == st[0].st_ino || nst.st_ino == st[1].st_ino); /* the same file, overwritten */
  assert_true(nst.st_size >= st[0].st_size - 8); /* its previous records are still there, past ours */
  memcpy(old_hdr, nst.st_ino == st[0].st_ino ? hdr[0] : hdr[1], SEG_HDR_BYTES);
  gw_disk_release(d, 15);
  gw_disk_bury(d);
  gw_disk_close(d);
  assert_int_equal(count_prefix("spare-"), 0); /* spares do not outlive the spool */
  assert_int_equal(segments(seg, 8), 1);
}

static struct gw_disk *reopen(struct seen *v, struct gw_disk_recovery *rec)
{
  struct gw_disk_conf c = {dir, GW_FSYNC_NEVER, 10, 8192};
  struct gw_err err = {0};
  memset(v, 0, sizeof *v);
  struct gw_disk *d = gw_disk_open(&c, seen_rec, v, rec, &err);
  assert_non_null(d);
  return d;
}

/* A released segment's file is reused for new records (overwriting blocks it has, so a sync writes data
 * only); after a restart only the new records come back, and the previous use's records past them are
 * neither replayed nor counted as damage (the end marker). */
static void test_recycled_segment_replays_only_its_records(void **st)
{
  (void)st;
  unsigned char old_hdr[SEG_HDR_BYTES];
  make_recycled(old_hdr);
  struct seen v;
  struct gw_disk_recovery rec;
  struct gw_disk *d = reopen(&v, &rec);
  assert_int_equal(v.n, 2);
  assert_int_equal(v.seq[0], 16);
  assert_string_equal(v.head[0], "new-16");
  assert_int_equal(v.seq[1], 17);
  assert_int_equal(rec.corrupt_records, 0);
  assert_int_equal(rec.last_seq, 17);
  gw_disk_close(d);
}

/* Killed while the end marker was being overwritten (the next record torn): the previous use's records
 * after it check out as records of their own segment, yet none is replayed: the header's new nonce keys
 * this use's CRCs and their seqs are below the header's. */
static void test_recycled_segment_torn_end_replays_no_stale_record(void **st)
{
  (void)st;
  unsigned char old_hdr[SEG_HDR_BYTES];
  make_recycled(old_hdr);
  char p[600];
  only_segment(p, sizeof p);
  poke(p, offset_in_file(p, "new-17") + 600, 'X'); /* the end marker, just past record 17's payload */
  struct seen v;
  struct gw_disk_recovery rec;
  struct gw_disk *d = reopen(&v, &rec);
  assert_int_equal(v.n, 2);
  assert_int_equal(v.seq[1], 17);
  assert_true(rec.corrupt_records >= 1); /* the rest is skipped as a torn tail */
  for (int i = 0; i < v.n && i < 32; i++)
    assert_true(strncmp(v.head[i], "old-", 4) != 0);
  gw_disk_close(d);
}

/* Killed after the reused file's rename reached the disk but before its new header did: the file holds its
 * previous use's header and records, valid ones. Nothing in it was acknowledged under its new name, and
 * its old records were delivered: it is dropped, not replayed. */
static void test_recycled_segment_old_header_dropped(void **st)
{
  (void)st;
  unsigned char old_hdr[SEG_HDR_BYTES];
  make_recycled(old_hdr);
  char p[600];
  only_segment(p, sizeof p);
  FILE *f = fopen(p, "r+b");
  assert_non_null(f);
  assert_int_equal(fwrite(old_hdr, 1, SEG_HDR_BYTES, f), SEG_HDR_BYTES);
  fclose(f);
  struct seen v;
  struct gw_disk_recovery rec;
  struct gw_disk *d = reopen(&v, &rec);
  assert_int_equal(v.n, 0);
  char seg[4][64];
  assert_int_equal(segments(seg, 4), 0);
  gw_disk_close(d);
}

/* Resident kB of this process's mapping that holds p (/proc/self/smaps), -1 when none does. */
static long mapping_rss_kb(const void *p)
{
  FILE *f = fopen("/proc/self/smaps", "r");
  assert_non_null(f);
  char line[512];
  bool in = false;
  long kb = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
      in = (uintptr_t)p >= lo && (uintptr_t)p < hi;
      continue;
    }
    if (in && sscanf(line, "Rss: %ld kB", &kb) == 1)
      break;
  }
  fclose(f);
  return kb;
}

/* A spare's pages leave the process's mapping: kept files must not add to the gateway's RSS. */
static void test_spare_not_resident(void **st)
{
  (void)st;
  struct gw_disk_conf c = {dir, GW_FSYNC_NEVER, 10, 64 * 1024};
  struct gw_disk_recovery rec;
  struct gw_err err = {0};
  int n = 0;
  struct gw_disk *d = gw_disk_open(&c, count_rec, &n, &rec, &err);
  assert_non_null(d);
  static char buf[16 * 1024];
  memset(buf, 'r', sizeof buf);
  const unsigned char *first = NULL;
  for (uint64_t seq = 1; seq <= 4; seq++) { /* three a segment: 4 opens the second */
    struct gw_spool_in in = {GW_SIGNAL_TRACES, 0, 1, 0, buf, sizeof buf, NULL, 0, false};
    struct gw_disk_rec r;
    assert_int_equal(gw_disk_append(d, &in, seq, gw_now_ns(), &r, &err), GW_OK);
    if (seq == 1)
      first = r.e.otlp;
  }
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof buf; i++) /* read as a consumer does: the pages come into the mapping */
    sum += first[i];
  assert_int_equal(sum, 'r' * sizeof buf);
  assert_true(mapping_rss_kb(first) >= 16);
  gw_disk_release(d, 3);
  gw_disk_bury(d);
  assert_int_equal(count_prefix("spare-"), 1);
  assert_int_equal(mapping_rss_kb(first), 0);
  gw_disk_close(d);
}

/* A directory that cannot be used stops the start with the key and the reason. */
static void test_unusable_dir_refused(void **st)
{
  (void)st;
  struct gw_spool_conf c = {.mode = "disk", .dir = "/proc/version/spool", .max_bytes = 1 << 20, .high_water = 0.9};
  struct gw_err err = {0};
  assert_null(gw_spool_create(&c, &err));
  assert_non_null(strstr(err.msg, "spool.dir"));
  assert_non_null(strstr(err.msg, "/proc/version/spool"));
  c.dir = dir;
  c.fsync = "sometimes";
  assert_null(gw_spool_create(&c, &err));
  assert_non_null(strstr(err.msg, "spool.fsync"));
}

/* A write that fails makes the spool not ready (/readyz) with the error, and it says why. */
static void test_failed_write_not_ready(void **st)
{
  struct gw_spool *s = open_spool(1 << 20, 4096, "always");
  gw_spool_add_consumer(s, "postgres");
  char why[300] = "x";
  assert_true(gw_spool_ready(s, why, sizeof why));
  assert_string_equal(why, "x"); /* untouched when ready */
  char big[6000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(put(s, big, NULL, 1), GW_OK); /* larger than a segment: a segment of its own */
  assert_true(gw_spool_ready(s, why, sizeof why));
  teardown(st); /* the directory gone: the next segment cannot be created */
  assert_int_not_equal(put(s, big, NULL, 1), GW_OK);
  assert_false(gw_spool_ready(s, why, sizeof why));
  assert_non_null(strstr(why, "spool writes failing: cannot create a spool segment in "));
  assert_non_null(strstr(why, "No such file or directory"));
  gw_spool_destroy(s);
}

/* The active segment deleted from under the gateway: the sync that finds it refuses its waiters (not
 * durable: a restart would not see it) and says so, the next append starts a new segment, and what the
 * deleted file holds is still read until consumed. */
static void test_deleted_segment_rolls(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool(1 << 20, 1 << 20, "always");
  int a = gw_spool_add_consumer(s, "postgres");
  assert_int_equal(put(s, "one", NULL, 1), GW_OK);
  char p[600];
  only_segment(p, sizeof p);
  assert_int_equal(unlink(p), 0);
  assert_int_equal(put(s, "two", NULL, 1), GW_ERR(SPOOL_IO));
  char why[300] = "";
  assert_false(gw_spool_ready(s, why, sizeof why));
  assert_non_null(strstr(why, "spool writes failing: spool segment "));
  assert_non_null(strstr(why, " while in use"));
  assert_int_equal(put(s, "three", NULL, 1), GW_OK);
  assert_true(gw_spool_ready(s, why, sizeof why)); /* a write succeeded since */
  char seg[2][64];
  assert_int_equal(segments(seg, 2), 1); /* the new one */
  struct gw_spool_entry e[4];
  size_t n = gw_spool_peek(s, a, e, 4, 0, 0, far());
  assert_int_equal(n, 3);
  assert_memory_equal(e[0].otlp, "one", 3);
  assert_memory_equal(e[2].otlp, "three", 5);
  gw_spool_destroy(s);
}

/* Cursors only count for consumers that run now; with no consumer at all nothing is kept. */
static void test_no_consumer_keeps_nothing(void **st)
{
  (void)st;
  struct gw_spool *s = open_spool(1 << 20, 0, "never");
  gw_spool_add_consumer(s, "postgres");
  assert_int_equal(put(s, "one", NULL, 1), GW_OK);
  gw_spool_destroy(s);
  s = open_spool(1 << 20, 0, "never");
  assert_true(gw_spool_bytes(s) > 0);
  assert_int_equal(put(s, "two", NULL, 1), GW_OK);
  char seg[4][64];
  assert_int_equal(segments(seg, 4), 1); /* the recovered segment is gone, only the new one is left */
  gw_spool_destroy(s);
}

/* The paths gw_crc32 can take on this machine (core/crc32_int.h), each tested as if the CPU picked it. */
static const char *const path_name[] = {"portable", "PCLMULQDQ", "AVX-512 VPCLMULQDQ"};

/* n pseudo-random bytes (a linear congruential generator from seed), malloc'd. */
static unsigned char *random_bytes(size_t n, uint32_t seed)
{
  unsigned char *b = malloc(n);
  assert_non_null(b);
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    b[i] = (unsigned char)(seed >> 16);
  }
  return b;
}

static int crc32_paths(void)
{
  enum gw_crc32_path best = gw_crc32_best();
  if (best < GW_CRC32_AVX512)
    print_message("crc32: this CPU (or OS, or valgrind) has no %s; tested up to the %s path\n",
                  path_name[GW_CRC32_AVX512], path_name[best]);
  return (int)best + 1;
}

/* The records' CRC (core/crc32.h) is zlib's crc32 bit for bit, whichever path computes it: each path this
 * machine can run, forced, over every length up to 2100 bytes (across the PCLMULQDQ path's start at 64 and
 * the AVX-512 one's at 256, through several 256-byte steps and each count of 64- and 16-byte ones after
 * them, with the up to 15 bytes left to the portable path) at every alignment of 16, from 0 and chained
 * from a running value; and the path gw_crc32 picks is the best one. */
static void test_crc32_is_zlibs(void **state)
{
  (void)state;
  enum { N = 2100 };
  unsigned char *b = random_bytes(N + 16, 12345);
  int npaths = crc32_paths();
  uint32_t seed = (uint32_t)crc32(0L, b, 7);
  for (size_t off = 0; off < 16; off++)
    for (size_t len = 0; len <= N; len++) {
      uint32_t want = (uint32_t)crc32(0L, b + off, (uInt)len), chained = (uint32_t)crc32(seed, b + off, (uInt)len);
      for (int p = 0; p < npaths; p++) {
        if (gw_crc32_via((enum gw_crc32_path)p, 0, b + off, len) != want)
          fail_msg("%s crc32 of %zu bytes at offset %zu differs from zlib's", path_name[p], len, off);
        if (gw_crc32_via((enum gw_crc32_path)p, seed, b + off, len) != chained)
          fail_msg("%s crc32 chained from a running value, %zu bytes at offset %zu, differs", path_name[p], len, off);
      }
      if (gw_crc32(0, b + off, len) != want || gw_crc32_portable(0, b + off, len) != want)
        fail_msg("crc32 of %zu bytes at offset %zu differs from zlib's", len, off);
    }
  assert_int_equal(gw_crc32(0, "123456789", 9), 0xcbf43926u); /* the standard check value */
  free(b);
}

/* Buffers of several MB (a spool entry is up to about 1 MB), through each path: whole, at an odd offset,
 * computed in two or three pieces split at odd places, and all zeros and all ones. */
static void test_crc32_long_buffers(void **state)
{
  (void)state;
  enum { N = (5 << 20) + 77 };
  unsigned char *b = random_bytes(N + 16, 777);
  int npaths = crc32_paths();
  uint32_t whole = (uint32_t)crc32_z(0L, b, N), shifted = (uint32_t)crc32_z(0L, b + 3, N);
  for (int p = 0; p < npaths; p++) {
    enum gw_crc32_path path = (enum gw_crc32_path)p;
    if (gw_crc32_via(path, 0, b, N) != whole || gw_crc32_via(path, 0, b + 3, N) != shifted)
      fail_msg("%s crc32 of %d bytes differs from zlib's", path_name[p], N);
    if (gw_crc32_via(path, gw_crc32_via(path, 0, b, 1000), b + 1000, N - 1000) != whole)
      fail_msg("%s crc32 in two pieces differs", path_name[p]);
    uint32_t c = gw_crc32_via(path, 0, b, 777777);
    c = gw_crc32_via(path, c, b + 777777, 1234567);
    if (gw_crc32_via(path, c, b + 777777 + 1234567, N - 777777 - 1234567) != whole)
      fail_msg("%s crc32 in three pieces differs", path_name[p]);
  }
  assert_int_equal(gw_crc32(0, b, N), whole);
  for (int v = 0; v < 2; v++) {
    memset(b, v ? 0xff : 0, N);
    uint32_t want = (uint32_t)crc32_z(0L, b, N);
    for (int p = 0; p < npaths; p++)
      if (gw_crc32_via((enum gw_crc32_path)p, 0, b, N) != want)
        fail_msg("%s crc32 of %d bytes of 0x%02x differs from zlib's", path_name[p], N, v ? 0xff : 0);
  }
  free(b);
}

/* Each folding constant of the fast paths is the power of x mod P it is listed as, derived here from the
 * polynomial alone (x^n by repeated multiplication by x mod 0x104C11DB7, then bit-reflected in 33 bits),
 * and the AVX-512 path's are among them. */
static void test_crc32_fold_constants(void **state)
{
  (void)state;
  if (gw_crc32_nconsts == 0)
    skip(); /* no fast path on this architecture */
  bool have_2048 = false, have_384 = false;
  for (size_t i = 0; i < gw_crc32_nconsts; i++) {
    unsigned n = gw_crc32_consts[i].power;
    uint64_t v = 1, r = 0;
    for (unsigned j = 0; j < n; j++) {
      v <<= 1;
      if (v >> 32)
        v ^= 0x104C11DB7ull;
    }
    for (int j = 0; j < 33; j++)
      if (v >> j & 1)
        r |= 1ull << (32 - j);
    if (*gw_crc32_consts[i].value != r)
      fail_msg("constant %zu is 0x%010llx, x^%u mod P is 0x%010llx", i, (unsigned long long)*gw_crc32_consts[i].value,
               n, (unsigned long long)r);
    have_2048 |= n == 2048 + 32 || n == 2048 - 32;
    have_384 |= n == 384 + 32 || n == 384 - 32;
  }
  assert_true(have_2048 && have_384);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_crc32_is_zlibs),
    cmocka_unit_test(test_crc32_long_buffers),
    cmocka_unit_test(test_crc32_fold_constants),
    cmocka_unit_test_setup_teardown(test_entries_survive_restart, setup, teardown),
    cmocka_unit_test_setup_teardown(test_torn_tail_skipped, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_record_skipped, setup, teardown),
    cmocka_unit_test_setup_teardown(test_forged_record_in_payload_not_replayed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_segments_reclaimed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_entry_larger_than_spool, setup, teardown),
    cmocka_unit_test_setup_teardown(test_written_bytes_counted, setup, teardown),
    cmocka_unit_test_setup_teardown(test_caught_up_active_segment_gives_room, setup, teardown),
    cmocka_unit_test_setup_teardown(test_restart_after_reclaim, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_write_leaves_no_partial_record, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_first_record_keeps_the_next_segment, setup, teardown),
    cmocka_unit_test_setup_teardown(test_damaged_header_records_replayed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_fsync_policies, setup, teardown),
    cmocka_unit_test_setup_teardown(test_interval_idle_syncs_at_once, setup, teardown),
    cmocka_unit_test_setup_teardown(test_large_entry_written_ahead, setup, teardown),
    cmocka_unit_test_setup_teardown(test_large_requests_wait_for_a_full_budget, setup, teardown),
    cmocka_unit_test_setup_teardown(test_budget_wait_not_woken_per_append, setup, teardown),
    cmocka_unit_test_setup_teardown(test_release_then_bury, setup, teardown),
    cmocka_unit_test_setup_teardown(test_recycled_segment_replays_only_its_records, setup, teardown),
    cmocka_unit_test_setup_teardown(test_recycled_segment_torn_end_replays_no_stale_record, setup, teardown),
    cmocka_unit_test_setup_teardown(test_recycled_segment_old_header_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown(test_spare_not_resident, setup, teardown),
    cmocka_unit_test_setup_teardown(test_unusable_dir_refused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_no_consumer_keeps_nothing, setup, teardown),
    cmocka_unit_test_setup_teardown(test_failed_write_not_ready, setup, teardown),
    cmocka_unit_test_setup_teardown(test_deleted_segment_rolls, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
