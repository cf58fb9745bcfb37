/*
 * file.c: a small file read whole (file.h). One copy of the bounded read loop (EINTR retried, one byte
 * past the cap read so a larger file is told apart from one of exactly max bytes) for the configuration,
 * the tokens file and the TLS files.
 */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/gw.h"

char *gw_file_read(const char *path, size_t max, size_t *len, bool *too_large, char *why, size_t whylen)
{
  *too_large = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    snprintf(why, whylen, "cannot read: %s", strerror(errno));
    return NULL;
  }
  char *buf = gw_malloc(max + 1);
  size_t n = 0;
  for (;;) {
    ssize_t r = read(fd, buf + n, max + 1 - n);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      snprintf(why, whylen, "cannot read: %s", strerror(errno));
      goto fail;
    }
    if (r == 0)
      break;
    n += (size_t)r;
    if (n > max) {
      *too_large = true;
      goto fail;
    }
  }
  close(fd);
  buf[n] = '\0';
  *len = n;
  return buf;
fail:
  close(fd);
  explicit_bzero(buf, n);
  free(buf);
  return NULL;
}
