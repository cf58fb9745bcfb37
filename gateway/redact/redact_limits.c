/*
 * redact_limits.c: how much work redaction may do for one request (issue 12), and what happens past it.
 *
 * Key decisions:
 * - The built-in detectors are linear (detectors.c says why, bench_redact shows it), but user patterns are
 *   the operator's own pcre2: pcre2's match limit stops exponential backtracking, not a pattern that reads
 *   the rest of the value from every start position (1(?=\d*x) over 1 MiB of digits: minutes, in one
 *   pcre2_match call). So a request has two budgets, set on its memo: bytes read by detector passes and
 *   JSON parses (scan_factor times its size per pass: catches rescans the walk was not meant to make), and
 *   this thread's CPU time (cpu_ms_per_mib: catches a slow pattern).
 * - The clock and the request's stop function (deadline, client gone) are looked at every 256 KiB read and
 *   every 512 small values (the thread's CPU clock is a system call), inside the built-ins' scan of a long
 *   value every 64 KiB, and inside a user pattern's match through a callout compiled in front of it
 *   (rd_watch_pattern), every 64 start positions it tries.
 * - Fail closed: past a budget every later value of the request is replaced whole by [REDACTION_LIMIT],
 *   unscanned; a pcre2 limit replaces the value it hit. Each is counted (metric and the record's
 *   redaction_count / redacted_kinds "redaction_limit") and logged once per process per reason, without
 *   the value.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "redact/redact_int.h"

#define TICK_BYTES (256u * 1024)
#define TICK_CALLS 512u
#define CALLOUT_EVERY 64u
#define CPU_FLOOR_NS (100ull * 1000000ull)

static uint64_t thread_cpu_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void gw_redact_memo_limit(struct gw_redact_memo *m, const struct gw_redactor *r, size_t request_bytes,
                          gw_rc (*stop)(void *arg), void *stop_arg)
{
  struct rd_limits *l = m ? rd_memo_limits(m) : NULL;
  if (!l)
    return;
  memset(l, 0, sizeof *l);
  l->on = true;
  l->request_bytes = request_bytes;
  l->stop = stop;
  l->stop_arg = stop_arg;
  if (r->scan_factor)
    l->work_max = (uint64_t)r->scan_factor * (1 + r->nuser) * (uint64_t)request_bytes + (1u << 20);
  if (r->cpu_ms_per_mib) {
    l->cpu_max = (uint64_t)r->cpu_ms_per_mib * (uint64_t)request_bytes / (1u << 20) * 1000000ull;
    if (l->cpu_max < CPU_FLOOR_NS)
      l->cpu_max = CPU_FLOOR_NS;
    l->cpu_start = thread_cpu_ns();
  }
}

const char *const rd_limit_names[RD_LIM__COUNT] = {
  [RD_LIM_MATCH] = "match_limit", [RD_LIM_MATCH_ERR] = "match_error", [RD_LIM_SCAN] = "scan", [RD_LIM_CPU] = "cpu",
};

static atomic_bool logged[RD_LIM__COUNT];

void rd_limited(struct rd_ctx *c, enum rd_limit why, int pattern, size_t len)
{
  rd_metric_limited(why);
  if (c->st) {
    c->st->total++;
    c->st->limited++;
  }
  if (atomic_exchange(&logged[why], true))
    return;
  const char *pname = pattern >= 0 ? c->r->det[GW_RK__COUNT + pattern].name : NULL;
  switch (why) {
  case RD_LIM_MATCH:
  case RD_LIM_MATCH_ERR:
    gw_warn("redact", "%s%s%s %s on a value of %zu bytes: the value was replaced whole by "
            "[REDACTION_FAILED]; counted in genai_gateway_redaction_limited_total{reason=\"%s\"} "
            "(logged once)", pname ? "user pattern '" : "the built-in detectors", pname ? pname : "", pname ? "'" : "",
            why == RD_LIM_MATCH ? "hit a pcre2 match/depth/heap limit" : "failed to match", len, rd_limit_names[why]);
    break;
  case RD_LIM_SCAN:
  case RD_LIM_CPU:
    gw_warn("redact", "the redaction of a request of %zu bytes ran out of its %s budget (redaction.%s): its "
            "remaining values were replaced whole by " RD_LIMIT_MASK "; counted in "
            "genai_gateway_redaction_limited_total{reason=\"%s\"} (logged once)",
            c->lim ? c->lim->request_bytes : 0, why == RD_LIM_SCAN ? "scan" : "CPU",
            why == RD_LIM_SCAN ? "scan_factor" : "max_cpu_ms_per_mib", rd_limit_names[why]);
    break;
  default: break;
  }
}

/* The clock and the stop function; false when the request must not scan further. */
static bool check(struct rd_limits *l)
{
  l->checked = l->work;
  l->calls = 0;
  if (l->stop) {
    gw_rc rc = l->stop(l->stop_arg);
    if (rc) {
      l->stop_rc = rc;
      return false;
    }
  }
  if (l->cpu_max && thread_cpu_ns() - l->cpu_start > l->cpu_max) {
    l->why = RD_LIM_CPU;
    return false;
  }
  return true;
}

bool rd_charge(struct rd_ctx *c, size_t n)
{
  struct rd_limits *l = c->lim;
  if (!l || !l->on)
    return true;
  if (l->stop_rc || l->why)
    return false;
  l->work += n;
  if (l->work_max && l->work > l->work_max) {
    l->why = RD_LIM_SCAN;
    return false;
  }
  if (l->work - l->checked < TICK_BYTES && ++l->calls < TICK_CALLS)
    return true;
  return check(l);
}

bool rd_tick(struct rd_ctx *c)
{
  struct rd_limits *l = c->lim;
  if (!l || !l->on)
    return true;
  if (l->stop_rc || l->why)
    return false;
  return check(l);
}

int rd_callout(pcre2_callout_block *b, void *data)
{
  (void)b;
  struct rd_ctx *c = data;
  struct rd_limits *l = c->lim;
  if (!l || !l->on)
    return 0;
  if (l->stop_rc || l->why)
    return PCRE2_ERROR_CALLOUT;
  if (++l->calls < CALLOUT_EVERY)
    return 0;
  return check(l) ? 0 : PCRE2_ERROR_CALLOUT;
}

/* ---- watched user patterns ----
 * "(?C1)(?:regex)" calls rd_callout at every start position pcre2 tries (its start-of-match optimizations
 * still skip the others). Start-of-pattern settings ((*UTF), (*LIMIT_MATCH=n), ...) must stay first, so the
 * leading (*...) items are kept in front. The regex must compile alone (the caller did), so closing the
 * group can only fail, never change its meaning: a ')' swallowed by a trailing # comment in extended mode
 * or by an open \Q makes an unbalanced group; those get a newline or \E before it. A regex none of the
 * closings suits is run unwatched (checked between its matches only). */
pcre2_code *rd_watch_pattern(const char *regex, const pcre2_code *plain)
{
  static const char *const closings[] = {")", "\n)", "\\E)", "\\E\n)"};
  size_t n = strlen(regex), lead = 0;
  while (lead + 2 < n && regex[lead] == '(' && regex[lead + 1] == '*') {
    const char *e = strchr(regex + lead, ')');
    if (!e)
      return NULL;
    lead = (size_t)(e - regex) + 1;
  }
  uint32_t want_caps = 0, want_names = 0;
  pcre2_pattern_info(plain, PCRE2_INFO_CAPTURECOUNT, &want_caps);
  pcre2_pattern_info(plain, PCRE2_INFO_NAMECOUNT, &want_names);
  char *buf = gw_malloc(n + 32);
  pcre2_code *code = NULL;
  for (size_t i = 0; i < sizeof closings / sizeof closings[0] && !code; i++) {
    memcpy(buf, regex, lead);
    size_t w = lead;
    memcpy(buf + w, "(?C1)(?:", 8);
    w += 8;
    memcpy(buf + w, regex + lead, n - lead);
    w += n - lead;
    strcpy(buf + w, closings[i]);
    int ec;
    PCRE2_SIZE off;
    code = pcre2_compile((PCRE2_SPTR)buf, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &off, NULL);
    if (!code)
      continue;
    uint32_t caps = 0, names = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &caps);
    pcre2_pattern_info(code, PCRE2_INFO_NAMECOUNT, &names);
    if (caps != want_caps || names != want_names) {
      pcre2_code_free(code);
      code = NULL;
    }
  }
  free(buf);
  if (code)
    (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return code;
}
