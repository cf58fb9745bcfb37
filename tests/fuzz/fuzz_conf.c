/*
 * fuzz_conf.c: the YAML configuration loader (core/conf.c: libyaml events into the key table, ${ENV}
 * substitution, bounds, lists and tables, cross-field validation) and, for a file it accepts, the
 * --print-config writer. The loader reads a path, so the input is written to an in-memory file
 * (memfd) and loaded through /proc/self/fd. The input is the file; there is no selector.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/conf.h"
#include "fuzzutil.h"

static int fd = -1;
static char path[64];
static FILE *devnull;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (fd < 0) {
    if ((fd = memfd_create("fuzz-conf.yaml", 0)) < 0 || !(devnull = fopen("/dev/null", "w")))
      abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    setenv("FUZZ_ENV", "value-from-env", 1);
  }
  if (ftruncate(fd, 0) || pwrite(fd, data, size, 0) != (ssize_t)size)
    abort();
  struct gw_conf *c;
  struct gw_err err;
  if (gw_conf_load(path, &c, &err) == GW_OK) {
    gw_conf_print(c, devnull);
    gw_conf_destroy(c);
  }
  return 0;
}
