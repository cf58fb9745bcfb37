/*
 * test_events.c: OTLP logs decode and GenAI events (gateway/normalize/events.c): the captured logs
 * fixtures decode the same from protobuf and JSON and give one row per message with the right role,
 * direction and content shape (counts from the manifests); the details event, string bodies, seq, prompt hashes, validation
 * (bad ids, time window, no ids) and the events spool codec.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include <openssl/evp.h>

#include "core/sha256.h"
#include "decode/decode.h"
#include "normalize/events.h"
#include "normalize/simhash.h"
#include "testutil.h"

static struct gw_arena *arena;
static const struct gw_decode_limits LIM = {.max_bytes = 64u << 20, .max_depth = 64};

static int setup(void **state)
{
  arena = gw_arena_create(0);
  return 0;
}

static int teardown(void **state)
{
  gw_arena_destroy(arena);
  return 0;
}

/* First 16 hex chars of SHA-256 of "[" + the contents joined by "," + "]", as prompt_hash is defined. */
static const char *hash_of(const char *const *contents, size_t n)
{
  static char out[17];
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dl;
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  EVP_DigestUpdate(md, "[", 1);
  for (size_t i = 0; i < n; i++) {
    if (i)
      EVP_DigestUpdate(md, ",", 1);
    EVP_DigestUpdate(md, contents[i], strlen(contents[i]));
  }
  EVP_DigestUpdate(md, "]", 1);
  EVP_DigestFinal_ex(md, d, &dl);
  EVP_MD_CTX_free(md);
  for (int i = 0; i < 8; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
  return out;
}

static GwLogsRequest *load(const char *file, enum gw_encoding enc)
{
  size_t len;
  char *body = tu_read_file(file, &len);
  GwLogsRequest *req = NULL;
  struct gw_err err = {0};
  gw_rc rc = gw_decode_logs(arena, enc, body, len, &LIM, &req, &err);
  free(body);
  if (rc)
    fail_msg("%s: %s", file, err.msg);
  return req;
}

static void events_of_opts(GwLogsRequest *req, const struct gw_normalize_opts *o, struct gw_logs_result *res)
{
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_logs(req, arena, o, res, &err), GW_OK);
  assert_int_equal(gw_events_finish(res->events, res->nevents, arena), GW_OK);
}

static void events_of(GwLogsRequest *req, struct gw_logs_result *res) { events_of_opts(req, NULL, res); }

/* The records as one request (one resource, one scope), normalized (with o: NULL for none). */
static void events_of_records_opts(GwLogRecord **recs, size_t n, const struct gw_normalize_opts *o,
                                   struct gw_logs_result *res)
{
  GwScopeLogs sl;
  gw_pb_scope_logs_init(&sl);
  sl.log_records = recs;
  sl.n_log_records = n;
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
  events_of_opts(&req, o, res);
}

static void events_of_records(GwLogRecord **recs, size_t n, struct gw_logs_result *res)
{
  events_of_records_opts(recs, n, NULL, res);
}

/* The three captures (gRPC, HTTP protobuf, HTTP JSON), each against its manifest. */
static void test_fixtures(void **state)
{
  /* file, records exported (manifest), input messages, output messages, system messages, chat calls:
   * every chat call logs its input messages, failed ones included; successful ones log one choice. */
  const struct {
    const char *file;
    int records, in, out, sys, calls;
  } fx[] = {
    {"sdk/otel-grpc-logs-1.pb", 20, 14, 6, 6, 8},
    {"sdk/otel-http-protobuf-logs-1.pb", 19, 13, 6, 5, 8},
    {"sdk/otel-http-json-logs-1.json", 18, 12, 6, 4, 8},
  };
  for (int f = 0; f < 3; f++) {
    GwLogsRequest *req = load(fx[f].file, strstr(fx[f].file, ".json") ? GW_ENC_JSON : GW_ENC_PROTOBUF);
    struct gw_logs_result res;
    events_of(req, &res);
    assert_int_equal(res.nlogs, fx[f].records);
    assert_int_equal(res.ngenai, fx[f].records);
    assert_int_equal(res.nrejected, 0);
    assert_int_equal(res.nunjoinable, 0);
    assert_int_equal(res.nevents, fx[f].records);
    int in = 0, out = 0, sys = 0, hashes = 0;
    for (size_t i = 0; i < res.nevents; i++) {
      const struct gw_event *e = &res.events[i];
      assert_int_equal(strlen(e->trace_id), 32);
      assert_int_equal(strlen(e->span_id), 16);
      assert_non_null(e->direction);
      assert_non_null(e->content);
      struct json_object *o = json_tokener_parse(e->content);
      assert_non_null(o);
      struct json_object *role, *parts;
      assert_true(json_object_object_get_ex(o, "role", &role));
      assert_string_equal(json_object_get_string(role), e->role);
      assert_true(json_object_object_get_ex(o, "parts", &parts));
      assert_int_equal(json_object_array_length(parts), 1);
      json_object_put(o);
      if (!strcmp(e->direction, "input")) {
        in++;
        sys += !strcmp(e->role, "system");
        assert_true(!strcmp(e->event_name, "gen_ai.system.message") || !strcmp(e->event_name, "gen_ai.user.message"));
      } else {
        out++;
        assert_string_equal(e->event_name, "gen_ai.choice");
        assert_string_equal(e->role, "assistant");
        assert_non_null(strstr(e->content, "\"finish_reason\":"));
        assert_int_equal(strncmp(e->text_content, "You said: ", 10), 0);
      }
      hashes += e->prompt_hash[0] != 0;
      assert_non_null(strstr(e->attributes, "\"event.name\":\"gen_ai."));
      assert_string_equal(e->service_name, "acceptance-otel");
    }
    assert_int_equal(in, fx[f].in);
    assert_int_equal(out, fx[f].out);
    assert_int_equal(sys, fx[f].sys);
    assert_int_equal(hashes, fx[f].calls); /* one per call with input messages */
  }
}

/* JSON and protobuf of the same request give identical events. */
static void test_json_equals_protobuf(void **state)
{
  size_t len;
  char *json = tu_read_file("sdk/otel-http-json-logs-1.json", &len);
  struct gw_err err = {0};
  GwLogsRequest *a = NULL;
  assert_int_equal(gw_decode_logs(arena, GW_ENC_JSON, json, len, &LIM, &a, &err), GW_OK);
  size_t plen = opentelemetry__proto__collector__logs__v1__export_logs_service_request__get_packed_size(a);
  uint8_t *pb = malloc(plen);
  opentelemetry__proto__collector__logs__v1__export_logs_service_request__pack(a, pb);
  GwLogsRequest *b = NULL;
  assert_int_equal(gw_decode_logs(arena, GW_ENC_PROTOBUF, pb, plen, &LIM, &b, &err), GW_OK);
  struct gw_logs_result ra, rb;
  events_of(a, &ra);
  events_of(b, &rb);
  assert_int_equal(ra.nevents, rb.nevents);
  for (size_t i = 0; i < ra.nevents; i++) {
    assert_string_equal(ra.events[i].content, rb.events[i].content);
    assert_string_equal(ra.events[i].trace_id, rb.events[i].trace_id);
    assert_int_equal(ra.events[i].seq.v, rb.events[i].seq.v);
    assert_int_equal(ra.events[i].time_ns, rb.events[i].time_ns);
    assert_string_equal(ra.events[i].prompt_hash, rb.events[i].prompt_hash);
    assert_string_equal(ra.events[i].attributes, rb.events[i].attributes);
  }
  free(pb);
  free(json);
}

static const char *REQ_TEMPLATE =
  "{\"resourceLogs\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}}]},"
  "\"scopeLogs\":[{\"scope\":{\"name\":\"s\"},\"logRecords\":[%s]}]}]}";

static struct gw_logs_result run_json(const char *records, const struct gw_normalize_opts *opts, GwLogsRequest **reqp)
{
  char body[8192];
  snprintf(body, sizeof body, REQ_TEMPLATE, records);
  GwLogsRequest *req = NULL;
  struct gw_err err = {0};
  if (gw_decode_logs(arena, GW_ENC_JSON, body, strlen(body), &LIM, &req, &err))
    fail_msg("decode: %s", err.msg);
  struct gw_logs_result res;
  if (gw_normalize_logs(req, arena, opts, &res, &err))
    fail_msg("normalize: %s", err.msg);
  assert_int_equal(gw_events_finish(res.events, res.nevents, arena), GW_OK);
  if (reqp)
    *reqp = req;
  return res;
}

#define IDS "\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"0102030405060708\""

/* The newer details event carries whole message lists as attributes: system first, then inputs, then
 * outputs, seq in that order; event_name as a field works like the attribute. */
static void test_details_event(void **state)
{
  struct gw_logs_result r = run_json(
    "{" IDS ",\"timeUnixNano\":\"1000\",\"eventName\":\"gen_ai.client.inference.operation.details\",\"attributes\":["
    "{\"key\":\"gen_ai.input.messages\",\"value\":{\"stringValue\":"
    "\"[{\\\"role\\\":\\\"user\\\",\\\"parts\\\":[{\\\"type\\\":\\\"text\\\",\\\"content\\\":\\\"hi\\\"}]}]\"}},"
    "{\"key\":\"gen_ai.output.messages\",\"value\":{\"stringValue\":"
    "\"[{\\\"role\\\":\\\"assistant\\\",\\\"parts\\\":[{\\\"type\\\":\\\"text\\\",\\\"content\\\":\\\"yo\\\"}],"
    "\\\"finish_reason\\\":\\\"stop\\\"}]\"}},"
    "{\"key\":\"gen_ai.system_instructions\",\"value\":{\"stringValue\":"
    "\"[{\\\"type\\\":\\\"text\\\",\\\"content\\\":\\\"be brief\\\"}]\"}}]}",
    NULL, NULL);
  assert_int_equal(r.nevents, 3);
  assert_string_equal(r.events[0].role, "system");
  assert_string_equal(r.events[0].direction, "input");
  assert_string_equal(r.events[0].text_content, "be brief");
  assert_string_equal(r.events[1].content, "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}]}");
  assert_string_equal(r.events[2].direction, "output");
  assert_string_equal(r.events[2].content,
                      "{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"yo\"}],\"finish_reason\":\"stop\"}");
  for (int i = 0; i < 3; i++)
    assert_int_equal(r.events[i].seq.v, i);
  /* The hash is over the span's input messages as prompt_content renders them, on the first input row. */
  const char *in[] = {r.events[0].content, r.events[1].content};
  assert_string_equal(r.events[0].prompt_hash, hash_of(in, 2));
  assert_string_equal(r.events[1].prompt_hash, "");
  assert_string_equal(r.events[2].prompt_hash, "");
}

/* seq keeps the sent order of messages sharing a timestamp; a string body is the content; hashes. */
static void test_seq_and_hash(void **state)
{
  const char *recs =
    "{" IDS ",\"timeUnixNano\":\"5\",\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"gen_ai.system.message\"}}],"
    "\"body\":{\"kvlistValue\":{\"values\":[{\"key\":\"content\",\"value\":{\"stringValue\":\"sys\"}}]}}},"
    "{" IDS ",\"timeUnixNano\":\"5\",\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"gen_ai.user.message\"}}],"
    "\"body\":{\"stringValue\":\"plain body\"}},"
    "{" IDS ",\"timeUnixNano\":\"5\",\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"gen_ai.user.message\"}}],"
    "\"body\":{\"kvlistValue\":{\"values\":[{\"key\":\"content\",\"value\":{\"stringValue\":\"second\"}}]}}}";
  struct gw_logs_result r = run_json(recs, NULL, NULL);
  assert_int_equal(r.nevents, 3);
  assert_int_equal(r.events[0].seq.v, 0);
  assert_int_equal(r.events[1].seq.v, 1000);
  assert_int_equal(r.events[2].seq.v, 2000);
  assert_string_equal(r.events[1].text_content, "plain body");
  assert_string_equal(r.events[1].content, "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"plain body\"}]}");
  const char *in[] = {r.events[0].content, r.events[1].content, r.events[2].content};
  assert_string_equal(r.events[0].prompt_hash, hash_of(in, 3));
}

/* Issue 12: records were grouped by span by walking every earlier record (64 s for 80 000 events). Many
 * spans with their records interleaved: seq counts each span's records in arrival order, and each span's
 * first input row holds the hash of its messages in (time, seq) order; every other row holds none. */
static void test_many_spans(void **state)
{
  enum { SPANS = 600, PER = 3, N = SPANS * PER };
  GwLogRecord **recs = tu_alloc(arena, N * sizeof *recs);
  for (size_t k = 0; k < N; k++) {
    size_t sp = k % SPANS + 1, nth = k / SPANS; /* ids never all zero */
    GwLogRecord *l = tu_alloc(arena, sizeof *l);
    gw_pb_log_record_init(l);
    uint8_t *t = tu_alloc(arena, 16), *sid = tu_alloc(arena, 8);
    memset(t, 0x11, 16);
    memcpy(t, &sp, sizeof sp);
    memset(sid, 0x22, 8);
    memcpy(sid, &sp, sizeof sp < 8 ? sizeof sp : 8);
    l->trace_id = (ProtobufCBinaryData){16, t};
    l->span_id = (ProtobufCBinaryData){8, sid};
    l->time_unix_nano = 1000 - nth; /* later records of a span carry earlier times */
    l->event_name = "gen_ai.user.message";
    l->body = tu_av_str(arena, gw_arena_printf(arena, "span %zu message %zu", sp, nth));
    recs[k] = l;
  }
  struct gw_logs_result r;
  events_of_records(recs, N, &r);
  assert_int_equal(r.nevents, N);
  for (size_t k = 0; k < N; k++) {
    const struct gw_event *e = &r.events[k];
    size_t nth = k / SPANS;
    assert_int_equal(e->seq.v, (int64_t)nth * 1000);
    if (nth) {
      assert_string_equal(e->prompt_hash, "");
      continue;
    }
    const char *in[PER];
    for (size_t j = 0; j < PER; j++) /* by time: the span's last record first */
      in[j] = r.events[k + (PER - 1 - j) * SPANS].content;
    assert_string_equal(e->prompt_hash, hash_of(in, PER));
  }
}

/* A conversation's calls log every earlier message again (one span a call): each span's SimHash (on its
 * first input row) is that of its input texts joined by '\n', whatever the request's memo of long texts
 * already held; short texts between long ones, and an assistant turn among the inputs. Its prompt_hash,
 * resumed from the previous call's SHA-256 state, is its own messages' (hash_of). */
/* A conversation's calls logged as GenAI events: all in one request (c NULL: the request's memo and the
 * SHA-256 resume), or each call in a request of its own through the history cache c kept between them. */
static void conversation_hashes(struct gw_hist_cache *c)
{
  enum { CALLS = 4, TURNS = 2 * CALLS - 1 };
  char *turn[TURNS];
  for (int k = 0; k < TURNS; k++) {
    size_t len = k % 3 == 2 ? 9 : 300 + 40 * (size_t)k;
    turn[k] = tu_alloc(arena, len + 1);
    for (size_t j = 0; j < len; j++)
      turn[k][j] = j % 5 == 4 ? ' ' : (char)('a' + (k * 7 + j * 3 + j / 5) % 26);
    turn[k][len] = 0;
  }
  size_t n = 0;
  for (int q = 0; q < CALLS; q++)
    n += 2 * (size_t)q + 1;
  GwLogRecord **recs = tu_alloc(arena, n * sizeof *recs);
  size_t k = 0;
  for (int q = 0; q < CALLS; q++)
    for (int t = 0; t <= 2 * q; t++) {
      GwLogRecord *l = tu_alloc(arena, sizeof *l);
      gw_pb_log_record_init(l);
      uint8_t *tid = tu_alloc(arena, 16), *sid = tu_alloc(arena, 8);
      memset(tid, 0x33, 16);
      memset(sid, 0x40 + q, 8);
      l->trace_id = (ProtobufCBinaryData){16, tid};
      l->span_id = (ProtobufCBinaryData){8, sid};
      l->time_unix_nano = 1000 + (uint64_t)q;
      l->event_name = t % 2 ? "gen_ai.assistant.message" : "gen_ai.user.message";
      l->body = tu_av_str(arena, turn[t]);
      recs[k++] = l;
    }
  struct gw_logs_result r;
  if (!c) {
    events_of_records(recs, n, &r);
    assert_int_equal(r.nevents, n);
  }
  struct gw_normalize_opts o = {.history_cache = c};
  for (int call = 0, at = 0; call < CALLS; at += 2 * call + 1, call++) {
    int first = at; /* the call's first event among r's */
    if (c) {
      events_of_records_opts(recs + at, 2 * (size_t)call + 1, &o, &r);
      assert_int_equal(r.nevents, 2 * (size_t)call + 1);
      first = 0;
    }
    struct gw_sb want;
    gw_sb_init(&want, arena);
    for (int t = 0; t <= 2 * call; t++) {
      if (t)
        gw_sb_putc(&want, '\n');
      gw_sb_puts(&want, turn[t]);
    }
    uint64_t h;
    char bits[65];
    assert_true(gw_simhash(want.buf, want.len, &h));
    gw_simhash_bits(h, bits);
    if (strcmp(r.events[first].prompt_simhash, bits))
      fail_msg("call %d: prompt_simhash %s, want %s", call, r.events[first].prompt_simhash, bits);
    /* the hash resumes from the previous call's: it begins with that call's messages */
    const char *in[TURNS];
    for (int t = 0; t <= 2 * call; t++)
      in[t] = r.events[first + t].content;
    assert_string_equal(r.events[first].prompt_hash, hash_of(in, (size_t)(2 * call + 1)));
  }
}

static void test_conversation_hashes(void **state)
{
  (void)state;
  conversation_hashes(NULL);
}

/* The same calls each in a request of its own: the history cache kept between requests finds the earlier
 * calls' long messages and prompts, and the hashes are the same. */
static void test_conversation_hashes_across_requests(void **state)
{
  (void)state;
  struct gw_hist_cache *c = gw_hist_cache_create(1u << 20);
  assert_non_null(c);
  conversation_hashes(c);
  struct gw_hist_cache_stats st;
  gw_hist_cache_stats(c, &st);
  assert_true(st.hits >= 4); /* call 2 finds call 1's three turns' long ones, call 3 more */
  assert_true(st.entries > 0);
  if (gw_sha256_resumable()) /* calls 2 and 3 resume the SHA-256 of the call before */
    assert_int_equal(st.prefix_hits, 2);
  gw_hist_cache_destroy(c);
}

/* Wrong-length ids: rejected and removed, with the path. Outside the window: GenAI events rejected,
 * plain logs kept. No ids: kept for forwarding, counted unjoinable, no row. Other gen_ai names: a row
 * with the body as JSON and no direction. */
static void test_validation(void **state)
{
  const char *recs =
    "{\"traceId\":\"0102\",\"spanId\":\"0102030405060708\",\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"gen_ai.user.message\"}}]},"
    "{" IDS ",\"timeUnixNano\":\"10\",\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"gen_ai.user.message\"}}],"
    "\"body\":{\"kvlistValue\":{\"values\":[{\"key\":\"content\",\"value\":{\"stringValue\":\"old\"}}]}}},"
    "{\"timeUnixNano\":\"10\",\"body\":{\"stringValue\":\"old plain log\"}},"
    "{\"timeUnixNano\":\"2000\",\"attributes\":[{\"key\":\"event.name\",\"value\":{\"stringValue\":\"gen_ai.user.message\"}}],"
    "\"body\":{\"kvlistValue\":{\"values\":[{\"key\":\"content\",\"value\":{\"stringValue\":\"no ids\"}}]}}},"
    "{" IDS ",\"timeUnixNano\":\"2000\",\"eventName\":\"gen_ai.evaluation.result\",\"body\":{\"kvlistValue\":{\"values\":"
    "[{\"key\":\"score\",\"value\":{\"doubleValue\":0.5}}]}}}";
  struct gw_normalize_opts o = {.min_start_ns = 1000, .max_start_ns = 5000};
  GwLogsRequest *req;
  struct gw_logs_result r = run_json(recs, &o, &req);
  assert_int_equal(r.nlogs, 5);
  assert_int_equal(r.nrejected, 2);
  assert_string_equal(r.reject_msg, "resourceLogs[0].scopeLogs[0].logRecords[0].traceId: 2 bytes, want 16 or none");
  assert_int_equal(req->resource_logs[0]->scope_logs[0]->n_log_records, 3);
  assert_int_equal(r.ngenai, 2);
  assert_int_equal(r.nunjoinable, 1);
  assert_int_equal(r.nevents, 1);
  assert_string_equal(r.events[0].event_name, "gen_ai.evaluation.result");
  assert_null(r.events[0].direction);
  assert_string_equal(r.events[0].content, "{\"score\":0.5}");
}

/* The spool codec keeps every stored field. */
static void test_codec(void **state)
{
  GwLogsRequest *req = load("sdk/otel-http-json-logs-1.json", GW_ENC_JSON);
  struct gw_logs_result r;
  events_of(req, &r);
  r.events[0].redaction_count = (struct gw_opt_i64){2, true};
  const char *kinds[] = {"email", "ssn"};
  r.events[0].redacted_kinds = (struct gw_strv){kinds, 2};
  struct gw_sb sb;
  gw_sb_init(&sb, arena);
  assert_int_equal(gw_events_encode(r.events, r.nevents, &sb), GW_OK);
  struct gw_event *back;
  size_t n;
  assert_int_equal(gw_events_decode(sb.buf, sb.len, arena, &back, &n), GW_OK);
  assert_int_equal(n, r.nevents);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(back[i].trace_id, r.events[i].trace_id);
    assert_string_equal(back[i].content, r.events[i].content);
    assert_string_equal(back[i].attributes, r.events[i].attributes);
    assert_string_equal(back[i].prompt_hash, r.events[i].prompt_hash);
    assert_int_equal(back[i].seq.v, r.events[i].seq.v);
    assert_int_equal(back[i].time_ns, r.events[i].time_ns);
    assert_null(back[i].log);
  }
  assert_int_equal(back[0].redacted_kinds.n, 2);
  assert_string_equal(back[0].redacted_kinds.v[1], "ssn");
  assert_int_equal(back[0].redaction_count.v, 2);
  /* Truncated or records-format blobs do not decode. */
  assert_int_equal(gw_events_decode(sb.buf, sb.len - 3, arena, &back, &n), GW_ERR(DECODE));
  assert_int_equal(gw_events_decode("GWR1\0\0\0\0", 8, arena, &back, &n), GW_ERR(DECODE));
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_fixtures, setup, teardown),
    cmocka_unit_test_setup_teardown(test_json_equals_protobuf, setup, teardown),
    cmocka_unit_test_setup_teardown(test_details_event, setup, teardown),
    cmocka_unit_test_setup_teardown(test_seq_and_hash, setup, teardown),
    cmocka_unit_test_setup_teardown(test_many_spans, setup, teardown),
    cmocka_unit_test_setup_teardown(test_conversation_hashes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_conversation_hashes_across_requests, setup, teardown),
    cmocka_unit_test_setup_teardown(test_validation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_codec, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
