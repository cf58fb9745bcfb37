/*
 * log.c: logfmt lines: ts=... level=... module=... msg="...". The message is quoted and escaped so a
 * line is always one line whatever a client sent.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_int min_level = GW_LOG_INFO;
static const char *names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(enum gw_log_level lvl) { atomic_store(&min_level, (int)lvl); }

int gw_log_parse_level(const char *s)
{
  for (int i = 0; i < 4; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return -1;
}

void gw_log(enum gw_log_level lvl, const char *module, const char *fmt, ...)
{
  if ((int)lvl < atomic_load(&min_level))
    return;
  char msg[1024], line[1400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = (size_t)snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s module=%s msg=\"",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                              ts.tv_nsec / 1000000, names[lvl], module);
  for (const char *p = msg; *p && n < sizeof line - 3; p++) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\') {
      line[n++] = '\\';
      line[n++] = (char)c;
    } else if (c < 0x20) {
      line[n++] = ' ';
    } else {
      line[n++] = (char)c;
    }
  }
  line[n++] = '"';
  line[n++] = '\n';
  ssize_t w = write(STDERR_FILENO, line, n);
  (void)w;
}
