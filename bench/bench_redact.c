/*
 * bench_redact.c: redaction's CPU cost on hostile input, in process, on one thread. Not part of the gateway,
 * and not a test: it prints figures and never fails on a target (bench/README.md, "Redaction on hostile
 * input").
 *
 *   bench_redact [-k KIB] [-c CASE] [-m MODE] [-u REGEX]...
 *
 * For each case, one value of KIB KiB (default 1024) made of a repeated or random shape that makes a detector
 * work hard (a header with no footer, runs of the bytes branches start with, long tokens that never
 * qualify), redacted with the default policy:
 *   string    gw_redact_string on the value under an ordinary attribute key
 *   pipeline  an OTLP request carrying the value twice (a plain attribute and the text of a
 *             gen_ai.input.messages message): decode, normalize, gw_redact_request and gw_redact_records, as
 *             request.c runs them (no spool); the value is 2 x KIB of a ~2 x KIB body
 * One more case, logs_many_spans (pipeline mode only): an OTLP logs request of KIB KiB made of GenAI
 * event records each on a span of its own, through decode, normalize (events), gw_redact_events and
 * gw_redact_logs_request.
 * -c runs the cases whose name contains CASE, -m one mode, -u adds a user pattern (repeatable).
 * Time is this thread's CPU time. Output lines: "case=NAME mode=MODE bytes=N ms=N ms_per_MiB=N out=N"
 * (out: the redacted value's length, or "drop").
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/arena.h"
#include "decode/decode.h"
#include "normalize/events.h"
#include "normalize/normalize.h"
#include "normalize/record.h"
#include "redact/redact.h"

#define ARENA_CAP ((size_t)1 << 30)

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the hostile values ---- */

static unsigned long long rng = 88172645463325252ull;

static unsigned rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (unsigned)(rng >> 11);
}

/* unit repeated up to n bytes, after head, and tail at the very end */
static char *repeat(size_t n, const char *head, const char *unit, const char *tail)
{
  char *s = malloc(n + 1);
  size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail), w = 0;
  memcpy(s, head, hl);
  w = hl;
  while (w + ul + tl <= n) {
    memcpy(s + w, unit, ul);
    w += ul;
  }
  memcpy(s + w, tail, tl);
  w += tl;
  s[w] = 0;
  return s;
}

/* random bytes of alphabet, after head */
static char *random_of(size_t n, const char *head, const char *alphabet)
{
  char *s = malloc(n + 1);
  size_t hl = strlen(head), al = strlen(alphabet);
  memcpy(s, head, hl);
  for (size_t i = hl; i < n; i++)
    s[i] = alphabet[rnd() % al];
  s[n] = 0;
  return s;
}

#define B64 "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#define B64URL "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

static char *gen(const char *name, size_t n)
{
  if (!strcmp(name, "begin_private_key")) return repeat(n, "", "-----BEGIN PRIVATE KEY-----", "");
  if (!strcmp(name, "begin_private_key_lines")) return repeat(n, "", "-----BEGIN RSA PRIVATE KEY-----\n", "");
  if (!strcmp(name, "private_key_no_footer"))
    return repeat(n, "-----BEGIN PRIVATE KEY-----\n", "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n", "");
  if (!strcmp(name, "end_footers")) return repeat(n, "-----BEGIN PRIVATE KEY-----", "-----END CERTIFICATE-----", "");
  if (!strcmp(name, "digits")) return repeat(n, "", "1", "");
  if (!strcmp(name, "digits_spaced")) return repeat(n, "", "1 ", "");
  if (!strcmp(name, "digits_dashed")) return repeat(n, "", "12-", "");
  if (!strcmp(name, "digits_dotted")) return repeat(n, "", "1.", "");
  if (!strcmp(name, "phone_plus")) return repeat(n, "", "+1 ", "");
  if (!strcmp(name, "phone_parens")) return repeat(n, "", "(212) ", "");
  if (!strcmp(name, "card_groups")) return repeat(n, "", "4111 ", "");
  if (!strcmp(name, "at_signs")) return repeat(n, "", "@", "");
  if (!strcmp(name, "at_words")) return repeat(n, "", "a@", "");
  if (!strcmp(name, "email_labels")) return repeat(n, "x@", "ab.", "1");
  if (!strcmp(name, "email_local_dots")) return repeat(n, "", "a.", "@");
  if (!strcmp(name, "base64")) return random_of(n, "", B64);
  if (!strcmp(name, "base64url_dots")) return random_of(n, "eyJ", B64URL ".");
  if (!strcmp(name, "jwt_no_dots")) return random_of(n, "eyJ", B64URL);
  if (!strcmp(name, "hex_colons")) return repeat(n, "", "a:", "");
  if (!strcmp(name, "colons")) return repeat(n, "", ":", "");
  if (!strcmp(name, "ipv6_zone")) return repeat(n, "fe80::1%", "a", "_");
  if (!strcmp(name, "bearer_repeat")) return repeat(n, "", "Bearer ", "");
  if (!strcmp(name, "bearer_no_digit")) return repeat(n, "Bearer ", "a", "");
  if (!strcmp(name, "bearer_spaces")) return repeat(n, "Bearer", " ", "");
  if (!strcmp(name, "sk_repeat")) return repeat(n, "", "sk-", "");
  if (!strcmp(name, "sk_long")) return repeat(n, "sk-", "a", "");
  if (!strcmp(name, "secret_names")) return repeat(n, "", "aws_secret_access_key=", "");
  if (!strcmp(name, "secret_words")) return repeat(n, "", "AwsSecret", "");
  if (!strcmp(name, "basic_repeat")) return repeat(n, "", "Basic ", "");
  if (!strcmp(name, "basic_no_colon")) return repeat(n, "Basic ", "QUJD", "-");
  if (!strcmp(name, "bearer_short_repeat")) return repeat(n, "", ":'\"=Bearer ab ", "");
  if (!strcmp(name, "auth_bearer_repeat")) return repeat(n, "", "Authorization: Bearer x ", "");
  if (!strcmp(name, "json_brackets")) return repeat(n, "", "[", "");
  if (!strcmp(name, "json_strings")) return repeat(n, "[", "\"a@b.io\",", "");
  if (!strcmp(name, "json_backslashes")) return repeat(n, "[\"", "\\\\", "");
  if (!strcmp(name, "json_in_json")) return repeat(n, "[\"[\\\"", "x", "");
  if (!strcmp(name, "emails_and_ids")) return repeat(n, "", "a@b.cc EMP-123456 ", "");
  if (!strcmp(name, "candidates")) return random_of(n, "", "aAsSeEbBgrx0189@+(:-_ ./=\n");
  return NULL;
}

static const char *const cases[] = {
  "begin_private_key", "begin_private_key_lines", "private_key_no_footer", "end_footers", "digits",
  "digits_spaced", "digits_dashed", "digits_dotted", "phone_plus", "phone_parens", "card_groups", "at_signs",
  "at_words", "email_labels", "email_local_dots", "base64", "base64url_dots", "jwt_no_dots", "hex_colons",
  "colons", "ipv6_zone", "bearer_repeat", "bearer_no_digit", "bearer_spaces", "sk_repeat", "sk_long",
  "secret_names", "secret_words", "basic_repeat", "basic_no_colon", "bearer_short_repeat", "auth_bearer_repeat",
  "json_brackets", "json_strings", "json_backslashes",
  "json_in_json", "emails_and_ids", "candidates",
};

/* ---- the pipeline mode: an OTLP request around the value ---- */

static GwKeyValue *kv_str(struct gw_arena *a, const char *k, const char *v)
{
  GwKeyValue *kv = gw_arena_calloc(a, sizeof *kv);
  GwAnyValue *av = gw_arena_calloc(a, sizeof *av);
  gw_pb_key_value_init(kv);
  gw_pb_any_value_init(av);
  av->value_case = GW_AV_STRING;
  av->string_value = (char *)v;
  kv->key = (char *)k;
  kv->value = av;
  return kv;
}

/* The value as JSON string content (escaped). */
static char *json_escape(struct gw_arena *a, const char *s)
{
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  gw_sb_json_str(&sb, s, strlen(s));
  return gw_sb_finish(&sb);
}

static uint8_t *request_body(struct gw_arena *a, const char *value, size_t *len)
{
  char *msgs = gw_arena_printf(a, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":%s}]}]",
                               json_escape(a, value));
  GwSpan *sp = gw_arena_calloc(a, sizeof *sp);
  gw_pb_span_init(sp);
  static uint8_t tid[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, sid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  sp->trace_id = (ProtobufCBinaryData){16, tid};
  sp->span_id = (ProtobufCBinaryData){8, sid};
  sp->name = "chat gpt-4o";
  sp->start_time_unix_nano = gw_now_ns() - 1000000000ull;
  sp->end_time_unix_nano = sp->start_time_unix_nano + 1000;
  GwKeyValue **attrs = gw_arena_calloc(a, 5 * sizeof *attrs);
  attrs[0] = kv_str(a, "gen_ai.operation.name", "chat");
  attrs[1] = kv_str(a, "gen_ai.request.model", "gpt-4o");
  attrs[2] = kv_str(a, "gen_ai.provider.name", "openai");
  attrs[3] = kv_str(a, "gen_ai.input.messages", msgs);
  attrs[4] = kv_str(a, "app.note", value);
  sp->attributes = attrs;
  sp->n_attributes = 5;
  GwScopeSpans *ss = gw_arena_calloc(a, sizeof *ss);
  gw_pb_scope_spans_init(ss);
  ss->spans = gw_arena_calloc(a, sizeof *ss->spans);
  ss->spans[0] = sp;
  ss->n_spans = 1;
  GwResourceSpans *rs = gw_arena_calloc(a, sizeof *rs);
  gw_pb_resource_spans_init(rs);
  rs->scope_spans = gw_arena_calloc(a, sizeof *rs->scope_spans);
  rs->scope_spans[0] = ss;
  rs->n_scope_spans = 1;
  GwTraceRequest *req = gw_arena_calloc(a, sizeof *req);
  gw_pb_trace_request_init(req);
  req->resource_spans = gw_arena_calloc(a, sizeof *req->resource_spans);
  req->resource_spans[0] = rs;
  req->n_resource_spans = 1;
  *len = gw_pb_trace_request_size(req);
  uint8_t *b = malloc(*len);
  gw_pb_trace_request_pack(req, b);
  return b;
}

static void die(const char *what, gw_rc rc, const struct gw_err *err)
{
  fprintf(stderr, "bench_redact: %s failed: %s (%s)\n", what, gw_err_name(rc), err ? err->msg : "");
  exit(1);
}

static long run_pipeline(const struct gw_redactor *r, struct gw_arena *a, const uint8_t *body, size_t len)
{
  struct gw_decode_limits lim = {.max_bytes = (size_t)256 << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwTraceRequest *req;
  gw_rc rc = gw_decode_traces(a, GW_ENC_PROTOBUF, body, len, &lim, &req, &err);
  if (rc)
    die("decode", rc, &err);
  struct gw_normalize_opts no = {0};
  no.max_start_ns = gw_now_ns() + 86400ull * 1000000000ull;
  struct gw_normalize_result res;
  memset(&res, 0, sizeof res);
  if ((rc = gw_normalize_traces(req, a, &no, &res, &err)))
    die("normalize", rc, &err);
  struct gw_redact_memo *memo = gw_redact_memo_create(a);
  gw_redact_memo_limit(memo, r, len, NULL, NULL);
  if ((rc = gw_redact_request(r, req, a, memo)) || (rc = gw_redact_records(r, res.records, res.nrecords, a, memo)))
    die("redact", rc, NULL);
  return res.nrecords ? (long)(res.records[0].attributes ? strlen(res.records[0].attributes) : 0) : -1;
}

/* GenAI event log records, each on a span of its own, up to about n bytes of protobuf. */
static uint8_t *logs_body(struct gw_arena *a, size_t n, size_t *len)
{
  size_t cnt = n / 66 + 1;
  GwLogRecord **recs = gw_arena_calloc(a, cnt * sizeof *recs);
  for (size_t k = 0; k < cnt; k++) {
    GwLogRecord *l = gw_arena_calloc(a, sizeof *l);
    gw_pb_log_record_init(l);
    uint8_t *t = gw_arena_alloc(a, 16), *sid = gw_arena_alloc(a, 8);
    uint64_t id = k + 1;
    memset(t, 0x11, 16);
    memcpy(t, &id, 8);
    memcpy(sid, &id, 8);
    l->trace_id = (ProtobufCBinaryData){16, t};
    l->span_id = (ProtobufCBinaryData){8, sid};
    l->time_unix_nano = gw_now_ns() - 1000000000ull;
    l->event_name = "gen_ai.user.message";
    GwAnyValue *b = gw_arena_calloc(a, sizeof *b);
    gw_pb_any_value_init(b);
    b->value_case = GW_AV_STRING;
    b->string_value = "hi";
    l->body = b;
    recs[k] = l;
  }
  GwScopeLogs sl;
  gw_pb_scope_logs_init(&sl);
  sl.log_records = recs;
  sl.n_log_records = cnt;
  GwScopeLogs *slp = &sl;
  GwResourceLogs rl;
  gw_pb_resource_logs_init(&rl);
  rl.scope_logs = &slp;
  rl.n_scope_logs = 1;
  GwResourceLogs *rlp = &rl;
  GwLogsRequest req;
  gw_pb_logs_request_init(&req);
  req.resource_logs = &rlp;
  req.n_resource_logs = 1;
  *len = gw_pb_logs_request_size(&req);
  uint8_t *body = malloc(*len);
  gw_pb_logs_request_pack(&req, body);
  return body;
}

static long run_logs(const struct gw_redactor *r, struct gw_arena *a, const uint8_t *body, size_t len)
{
  struct gw_decode_limits lim = {.max_bytes = (size_t)256 << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwLogsRequest *req;
  gw_rc rc = gw_decode_logs(a, GW_ENC_PROTOBUF, body, len, &lim, &req, &err);
  if (rc)
    die("decode", rc, &err);
  struct gw_normalize_opts no = {0};
  struct gw_logs_result res;
  if ((rc = gw_normalize_logs(req, a, &no, &res, &err)))
    die("normalize", rc, &err);
  struct gw_redact_memo *memo = gw_redact_memo_create(a);
  gw_redact_memo_limit(memo, r, len, NULL, NULL);
  if ((rc = gw_redact_events(r, res.events, res.nevents, a, memo)) || (rc = gw_redact_logs_request(r, req, a, memo)) ||
      (rc = gw_events_finish(res.events, res.nevents, a)))
    die("redact", rc, NULL);
  return (long)res.nevents;
}

int main(int argc, char **argv)
{
  size_t kib = 1024;
  const char *only = NULL, *mode = NULL;
  struct gw_redact_user_pattern pats[GW_REDACT_MAX_PATTERNS];
  size_t npats = 0;
  int opt;
  while ((opt = getopt(argc, argv, "k:c:m:u:")) != -1) {
    switch (opt) {
    case 'k': kib = strtoul(optarg, NULL, 10); break;
    case 'c': only = optarg; break;
    case 'm': mode = optarg; break;
    case 'u':
      if (npats < GW_REDACT_MAX_PATTERNS) {
        char *name = malloc(16);
        snprintf(name, 16, "user%zu", npats);
        pats[npats++] = (struct gw_redact_user_pattern){name, optarg, NULL, GW_REDACT_MASK};
      }
      break;
    default:
      fprintf(stderr, "usage: bench_redact [-k KIB] [-c CASE] [-m string|pipeline] [-u REGEX]...\n");
      return 2;
    }
  }
  gw_normalize_init();
  struct gw_redact_policy p;
  gw_redact_policy_defaults(&p);
  p.patterns = pats;
  p.n_patterns = npats;
  struct gw_err err = {0};
  struct gw_redactor *r = gw_redactor_create(&p, &err);
  if (!r) {
    fprintf(stderr, "bench_redact: %s\n", err.msg);
    return 1;
  }
  struct gw_arena *a = gw_arena_create(ARENA_CAP);
  size_t n = kib * 1024;
  if ((!only || strstr("logs_many_spans", only)) && (!mode || !strcmp(mode, "pipeline"))) {
    size_t blen;
    uint8_t *body = logs_body(a, n, &blen);
    gw_arena_reset(a);
    double t0 = now_s();
    long ev = run_logs(r, a, body, blen);
    double t = now_s() - t0;
    printf("case=logs_many_spans mode=pipeline bytes=%zu ms=%.1f ms_per_MiB=%.1f out=%ld\n", blen, t * 1e3,
           t * 1e3 * 1048576.0 / (double)blen, ev);
    fflush(stdout);
    free(body);
    gw_arena_reset(a);
  }
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    if (only && !strstr(cases[c], only))
      continue;
    char *v = gen(cases[c], n);
    size_t vl = strlen(v);
    if (!mode || !strcmp(mode, "string")) {
      double t0 = now_s();
      const char *o = gw_redact_string(r, "app.note", v, vl, a, NULL);
      double t = now_s() - t0;
      printf("case=%s mode=string bytes=%zu ms=%.1f ms_per_MiB=%.1f out=", cases[c], vl, t * 1e3,
             t * 1e3 * 1048576.0 / (double)vl);
      if (o)
        printf("%zu\n", strlen(o));
      else
        printf("drop\n");
      fflush(stdout);
      gw_arena_reset(a);
    }
    if (!mode || !strcmp(mode, "pipeline")) {
      size_t blen;
      uint8_t *body = request_body(a, v, &blen);
      gw_arena_reset(a);
      double t0 = now_s();
      long out = run_pipeline(r, a, body, blen);
      double t = now_s() - t0;
      printf("case=%s mode=pipeline bytes=%zu ms=%.1f ms_per_MiB=%.1f out=%ld\n", cases[c], blen, t * 1e3,
             t * 1e3 * 1048576.0 / (double)blen, out);
      fflush(stdout);
      free(body);
      gw_arena_reset(a);
    }
    free(v);
  }
  gw_arena_destroy(a);
  gw_redactor_destroy(r);
  for (size_t i = 0; i < npats; i++)
    free((char *)pats[i].name);
  return 0;
}
