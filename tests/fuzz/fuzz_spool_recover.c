/*
 * fuzz_spool_recover.c: the disk spool's recovery (spool/spool_disk.c, gw_disk_open) over segment files a
 * crash tore or the disk damaged: every record that checks out is replayed in seq order, the rest skipped
 * and counted, a torn tail cut off. Then the spool must take an append and a second recovery must find the
 * same records plus that one.
 * Input: one selector byte, then the files' bytes. sel & 1: each segment gets a valid 32-byte header first
 * (so mutations go to the records); (sel >> 1) % 3 + 1 segment files share the rest equally; sel & 8: the
 * first 16 bytes are a consumer's cursor file instead.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/log.h"
#include "fuzzutil.h"
#include "spool/spool_disk.h"

static char dir[64];

struct seen {
  uint64_t n, last_seq, sum;
};

static void on_rec(void *ctx, const struct gw_disk_rec *r)
{
  struct seen *s = ctx;
  if (r->e.seq <= s->last_seq)
    abort(); /* replayed out of order */
  s->last_seq = r->e.seq;
  s->n++;
  s->sum += crc32(crc32(0, r->e.otlp, (uInt)r->e.otlp_len), r->e.records, (uInt)r->e.records_len);
}

static void put(const char *name, const uint8_t *p, size_t n, bool header)
{
  char path[128];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0)
    abort();
  static const uint8_t hdr[32] = {'G', 'W', 'S', 'P', 'O', 'O', 'L', 0, 1};
  if ((header && write(fd, hdr, sizeof hdr) != sizeof hdr) || (n && write(fd, p, n) != (ssize_t)n))
    abort();
  close(fd);
}

static void empty_dir(void)
{
  DIR *d = opendir(dir);
  struct dirent *de;
  char path[512];
  while (d && (de = readdir(d)))
    if (de->d_name[0] != '.') {
      snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
      unlink(path);
    }
  if (d)
    closedir(d);
}

static void remove_dir(void)
{
  empty_dir();
  rmdir(dir);
}

static struct gw_disk *open_disk(struct seen *s, struct gw_disk_recovery *rec)
{
  struct gw_disk_conf c = {.dir = dir, .fsync = GW_FSYNC_NEVER, .segment_bytes = 4096};
  struct gw_err err;
  memset(s, 0, sizeof *s);
  struct gw_disk *d = gw_disk_open(&c, on_rec, s, rec, &err);
  if (!d || s->n != rec->entries)
    abort();
  return d;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!dir[0]) {
    snprintf(dir, sizeof dir, "%s/gw-fuzz-spool.XXXXXX", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm");
    if (!mkdtemp(dir))
      abort();
    atexit(remove_dir);
    gw_log_set_level(GW_LOG_ERROR); /* every damaged record is a warning */
  }
  if (size < 1)
    return 0;
  uint8_t sel = data[0];
  const uint8_t *p = data + 1;
  size_t n = size - 1;
  if (sel & 8 && n >= 16) {
    put("fuzz.cursor", p, 16, false);
    p += 16;
    n -= 16;
  }
  size_t files = (size_t)(sel >> 1) % 3 + 1;
  for (size_t i = 0; i < files; i++) {
    char name[32];
    snprintf(name, sizeof name, "%020zu.seg", i + 1);
    put(name, p + n * i / files, n * (i + 1) / files - n * i / files, sel & 1);
  }
  struct seen s1, s2;
  struct gw_disk_recovery r1, r2;
  struct gw_disk *d = open_disk(&s1, &r1);
  uint64_t seq;
  const char *names[8];
  gw_disk_cursor_names(d, names, 8);
  gw_disk_cursor_load(d, "fuzz", &seq);
  /* Real segments are named by their first seq, so the next append never meets one of their names; these
   * are named 1..files whatever they hold: when the append's seq is one of those names, stop here. A
   * crafted cursor may also claim the last seq there is. */
  if (r1.last_seq + 1 > files && r1.last_seq < UINT64_MAX) {
    struct gw_spool_in in = {.signal = GW_SIGNAL_TRACES, .nspans = 1, .otlp = "otlp", .otlp_len = 4, .records = ""};
    struct gw_disk_rec out;
    struct gw_err err;
    if (gw_disk_append(d, &in, r1.last_seq + 1, 1, &out, &err))
      abort();
    gw_disk_close(d);
    d = open_disk(&s2, &r2);
    if (s2.n != s1.n + 1 || s2.last_seq != r1.last_seq + 1 || r2.corrupt_records > r1.corrupt_records)
      abort(); /* the second recovery does not find what the first one left plus the append */
  }
  gw_disk_close(d);
  empty_dir();
  return 0;
}
