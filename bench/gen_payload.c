/*
 * gen_payload.c: the benchmark's request bodies. Not part of the gateway.
 *
 *   gen_payload [-n BODIES] [-s SPANS] [-j] [-c | -t] OUTDIR
 *
 * Writes BODIES (default 8) ExportTraceServiceRequests of SPANS (default 100) GenAI chat spans each, as the
 * OTel JS SDK's OpenAI instrumentation would send them: current semconv attributes (gen_ai.operation.name,
 * provider, request/response model, token usage, finish reasons, request parameters) and
 * gen_ai.input.messages / gen_ai.output.messages as JSON strings of about 1 KB each, built from a pool of
 * ordinary support-desk sentences so the text is not one repeated byte pattern. Spans come in traces of
 * four (an agent making four model calls under one parent), start times are now minus a few seconds, and
 * every id comes from getrandom, so two runs never produce the same rows. With -c the four calls of a trace
 * are one conversation: each call's input messages carry the earlier calls' user and assistant turns (a
 * chat client resends the history), so inputs grow from about 1 KB to about 7 KB along a trace. With -t
 * the calls of a conversation are in successive bodies instead, as a chat's turns reach the gateway in
 * separate exports: span i of body b is call b % 4 + 1 of conversation i (a new one every four bodies).
 *
 * Per body NNN:
 *   body-NNN.pb    the protobuf request (POST /v1/traces, application/x-protobuf)
 *   body-NNN.grpc  the same message gRPC-framed (flag byte 0, big-endian u32 length), for h2load -d
 *   body-NNN.idx   one line per trace_id occurrence in body-NNN.pb: the byte offset of the id's last four
 *                  bytes. The wrk script overwrites those with a per-request counter, so every request it
 *                  sends carries new (trace_id, span_id) keys and nothing dedups in Postgres.
 *   body-NNN.json  with -j: the same request as OTLP/JSON
 * Decisions: ids are searched for in the packed bytes rather than computed from protobuf-c's layout, and a
 * body whose id bytes also occur by chance elsewhere is an error (never silently mispatched).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "pb.h"

#define SPANS_PER_TRACE 4
#define MSG_TARGET 1000 /* bytes of message text per direction, roughly */

static uint64_t rng_state;

static uint64_t rnd(void)
{
  /* xorshift64*: fast, good enough for ids and text choice once seeded from getrandom */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1Dull;
}

static void rnd_bytes(uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (uint8_t)(rnd() >> 56);
}

static const char *const system_prompts[] = {
  "You are a careful customer support agent for an online electronics store. Answer politely, cite the order "
  "policy when relevant, never promise refunds the policy does not allow, and escalate to a human when the "
  "customer asks for it twice.",
  "You are a helpful assistant for a travel agency. Keep answers short, list options as bullet points, give "
  "prices in the customer's currency and always mention cancellation terms before confirming a booking.",
  "You are an internal IT helpdesk assistant. Ask for the device model and operating system before "
  "troubleshooting, prefer official documentation links, and never ask for passwords.",
};

static const char *const user_sentences[] = {
  "I ordered a pair of wireless headphones last Tuesday and the tracking page still says the parcel is being "
  "prepared.",
  "Could you tell me whether the extended warranty covers accidental damage or only manufacturing defects?",
  "The laptop charger I received is the European model, but I live in Canada and need the North American "
  "plug.",
  "We are planning a four day trip to Lisbon in early October for two adults and a child of seven.",
  "My VPN client disconnects every few minutes since yesterday's update, both at home and in the office.",
  "Is it possible to change the delivery address after the order has shipped, or do I need to refuse the "
  "parcel?",
  "The screen of my tablet flickers when the brightness is below thirty percent, which makes reading at "
  "night difficult.",
  "Please compare the two hotels you suggested earlier in terms of distance to the old town and breakfast "
  "options.",
  "I was charged twice for the same order and would like one of the payments reversed as soon as possible.",
  "Our team needs access to the shared project drive, but the request form keeps returning an error.",
  "Can you summarise the return policy for opened items in two or three sentences?",
  "The keyboard I bought has a sticky space bar; I have already tried cleaning it as the manual suggests.",
};

static const char *const answer_sentences[] = {
  "Thank you for reaching out, and I am sorry for the delay with your order.",
  "I have checked the shipment and it left our warehouse this morning; the carrier usually updates the "
  "tracking page within twenty four hours.",
  "The extended warranty covers manufacturing defects for two years; accidental damage is covered only by "
  "the premium plan.",
  "I can send you the North American charger free of charge, and you can keep the European one or return "
  "it with the prepaid label.",
  "For a family of three in early October, the best value is usually a self-catering apartment near the "
  "river, about fifteen minutes on foot from the old town.",
  "Please try removing the VPN profile, restarting the device and importing the profile again from the "
  "self-service portal.",
  "Once a parcel has shipped, the address can only be changed through the carrier's own website using the "
  "tracking number.",
  "I have opened a refund request for the duplicate payment; it normally appears on your statement within "
  "five business days.",
  "Opened items can be returned within thirty days if they are complete and undamaged; a restocking fee "
  "applies to opened software.",
  "I have escalated the access request to the infrastructure team, who will contact you by the end of the "
  "day.",
  "If cleaning did not help, the keyboard qualifies for a replacement under warranty and I can start that "
  "for you now.",
  "Is there anything else I can help you with today?",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* A growing byte buffer for the JSON texts (generator-side only: abort on OOM is fine here). */
struct buf {
  char *p;
  size_t len, cap;
};

static void buf_putn(struct buf *b, const char *s, size_t n)
{
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (b->len + n + 1 > cap)
      cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      fprintf(stderr, "gen_payload: out of memory\n");
      exit(1);
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
  buf_putn(b, s, strlen(s));
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
  char tmp[512];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  buf_putn(b, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* s as a JSON string literal. The texts are ASCII; quotes, backslashes and controls are escaped. */
static void buf_json_str(struct buf *b, const char *s)
{
  buf_putn(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      buf_putn(b, e, 2);
    } else if (c < 0x20) {
      buf_printf(b, "\\u%04x", c);
    } else {
      buf_putn(b, (const char *)&c, 1);
    }
  }
  buf_putn(b, "\"", 1);
}

/* Sentences from pool appended with spaces until about target bytes. */
static void pick_text(struct buf *out, const char *const *pool, size_t n, size_t target)
{
  size_t start = out->len;
  while (out->len - start < target) {
    if (out->len > start)
      buf_puts(out, " ");
    buf_puts(out, pool[rnd() % n]);
  }
}

struct span_text {
  char *input, *output;
  int64_t in_tokens, out_tokens;
};

/* With -c the four calls of a trace are one conversation: each call's input is the system prompt and every
 * earlier turn (user, assistant) before its own user text, as a chat client resends the history. */
static bool conversation, turns_split;

struct convo {
  const char *sys;
  struct buf turns; /* the earlier turns' messages, JSON, each followed by ',' */
};

static void make_texts(struct span_text *t, struct convo *cv, bool first)
{
  struct buf user = {0}, ans = {0}, in = {0}, out = {0};
  if (first || !conversation) {
    cv->sys = system_prompts[rnd() % COUNT(system_prompts)];
    cv->turns.len = 0;
    if (cv->turns.p)
      cv->turns.p[0] = '\0';
  }
  size_t syslen = strlen(cv->sys);
  pick_text(&user, user_sentences, COUNT(user_sentences), MSG_TARGET - syslen - 120);
  pick_text(&ans, answer_sentences, COUNT(answer_sentences), MSG_TARGET - 90);
  buf_puts(&in, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":");
  buf_json_str(&in, cv->sys);
  buf_puts(&in, "}]},");
  if (cv->turns.len)
    buf_putn(&in, cv->turns.p, cv->turns.len);
  size_t user_at = in.len;
  buf_puts(&in, "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":");
  buf_json_str(&in, user.p);
  buf_puts(&in, "}]}]");
  buf_puts(&out, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":");
  buf_json_str(&out, ans.p);
  buf_puts(&out, "}],\"finish_reason\":\"stop\"}]");
  if (conversation) { /* this call's user text and answer join the history of the next */
    buf_putn(&cv->turns, in.p + user_at, in.len - user_at - 1);
    buf_puts(&cv->turns, ",{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":");
    buf_json_str(&cv->turns, ans.p);
    buf_puts(&cv->turns, "}]},");
  }
  t->input = in.p;
  t->output = out.p;
  t->in_tokens = (int64_t)in.len / 4;
  t->out_tokens = (int64_t)ans.len / 4;
  free(user.p);
  free(ans.p);
}

/* ---- protobuf construction: everything malloc'd per body and freed by free_request ---- */

enum { A_OP, A_PROVIDER, A_REQ_MODEL, A_RESP_MODEL, A_RESP_ID, A_IN_TOK, A_OUT_TOK, A_TEMP, A_MAX_TOK,
       A_FINISH, A_IN_MSG, A_OUT_MSG, A_SERVER, A_SESSION, A_NATTR };

struct span_store {
  GwSpan span;
  GwKeyValue kv[A_NATTR];
  GwKeyValue *kvp[A_NATTR];
  GwAnyValue av[A_NATTR];
  GwArrayValue finish_arr;
  GwAnyValue finish_val;
  GwAnyValue *finish_valp;
  GwStatus status;
  uint8_t trace_id[16], span_id[8], parent_id[8];
  char resp_id[40], session[32];
  struct span_text text;
};

static const char *const models[][2] = {
  {"gpt-4o-mini", "gpt-4o-mini-2024-07-18"},
  {"gpt-4o", "gpt-4o-2024-08-06"},
  {"gpt-4.1-nano", "gpt-4.1-nano-2025-04-14"},
};

static void set_str(struct span_store *s, int i, const char *key, const char *v)
{
  s->kv[i].key = (char *)key;
  s->av[i].value_case = GW_AV_STRING;
  s->av[i].string_value = (char *)v;
}

static void set_int(struct span_store *s, int i, const char *key, int64_t v)
{
  s->kv[i].key = (char *)key;
  s->av[i].value_case = GW_AV_INT;
  s->av[i].int_value = v;
}

static void build_span(struct span_store *s, const uint8_t *trace_id, const uint8_t *parent,
                       const char *session, uint64_t start_ns, struct convo *cv, bool first)
{
  const char *const *m = models[rnd() % COUNT(models)];
  gw_pb_span_init(&s->span);
  memcpy(s->trace_id, trace_id, 16);
  rnd_bytes(s->span_id, 8);
  memcpy(s->parent_id, parent, 8);
  snprintf(s->resp_id, sizeof s->resp_id, "chatcmpl-%016" PRIx64 "%08" PRIx32, rnd(), (uint32_t)rnd());
  snprintf(s->session, sizeof s->session, "%s", session);
  make_texts(&s->text, cv, first);
  for (int i = 0; i < A_NATTR; i++) {
    gw_pb_key_value_init(&s->kv[i]);
    gw_pb_any_value_init(&s->av[i]);
    s->kv[i].value = &s->av[i];
    s->kvp[i] = &s->kv[i];
  }
  set_str(s, A_OP, "gen_ai.operation.name", "chat");
  set_str(s, A_PROVIDER, "gen_ai.provider.name", "openai");
  set_str(s, A_REQ_MODEL, "gen_ai.request.model", m[0]);
  set_str(s, A_RESP_MODEL, "gen_ai.response.model", m[1]);
  set_str(s, A_RESP_ID, "gen_ai.response.id", s->resp_id);
  set_int(s, A_IN_TOK, "gen_ai.usage.input_tokens", s->text.in_tokens);
  set_int(s, A_OUT_TOK, "gen_ai.usage.output_tokens", s->text.out_tokens);
  s->kv[A_TEMP].key = "gen_ai.request.temperature";
  s->av[A_TEMP].value_case = GW_AV_DOUBLE;
  s->av[A_TEMP].double_value = 0.2;
  set_int(s, A_MAX_TOK, "gen_ai.request.max_tokens", 1024);
  gw_pb_array_value_init(&s->finish_arr);
  gw_pb_any_value_init(&s->finish_val);
  s->finish_val.value_case = GW_AV_STRING;
  s->finish_val.string_value = "stop";
  s->finish_valp = &s->finish_val;
  s->finish_arr.n_values = 1;
  s->finish_arr.values = &s->finish_valp;
  s->kv[A_FINISH].key = "gen_ai.response.finish_reasons";
  s->av[A_FINISH].value_case = GW_AV_ARRAY;
  s->av[A_FINISH].array_value = &s->finish_arr;
  set_str(s, A_IN_MSG, "gen_ai.input.messages", s->text.input);
  set_str(s, A_OUT_MSG, "gen_ai.output.messages", s->text.output);
  set_str(s, A_SERVER, "server.address", "api.openai.com");
  set_str(s, A_SESSION, "session.id", s->session);

  char *name = malloc(64);
  if (!name)
    abort();
  snprintf(name, 64, "chat %s", m[0]);
  s->span.name = name;
  s->span.trace_id = (ProtobufCBinaryData){16, s->trace_id};
  s->span.span_id = (ProtobufCBinaryData){8, s->span_id};
  s->span.parent_span_id = (ProtobufCBinaryData){8, s->parent_id};
  s->span.kind = OPENTELEMETRY__PROTO__TRACE__V1__SPAN__SPAN_KIND__SPAN_KIND_CLIENT;
  s->span.start_time_unix_nano = start_ns;
  s->span.end_time_unix_nano = start_ns + 400000000ull + (rnd() % 2000) * 1000000ull;
  s->span.n_attributes = A_NATTR;
  s->span.attributes = s->kvp;
  s->span.flags = 0x101;
  gw_pb_status_init(&s->status);
  s->span.status = &s->status;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[p[i] >> 4];
    out[2 * i + 1] = d[p[i] & 15];
  }
  out[2 * n] = '\0';
}

/* The request as OTLP/JSON (hex ids, 64-bit integers as strings, as the OTLP spec's JSON mapping says). */
static void write_json(struct buf *b, const GwTraceRequest *req)
{
  const GwResourceSpans *rs = req->resource_spans[0];
  const GwScopeSpans *ss = rs->scope_spans[0];
  buf_puts(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  for (size_t i = 0; i < rs->resource->n_attributes; i++) {
    const GwKeyValue *kv = rs->resource->attributes[i];
    buf_printf(b, "%s{\"key\":", i ? "," : "");
    buf_json_str(b, kv->key);
    buf_puts(b, ",\"value\":{\"stringValue\":");
    buf_json_str(b, kv->value->string_value);
    buf_puts(b, "}}");
  }
  buf_puts(b, "]},\"scopeSpans\":[{\"scope\":{\"name\":");
  buf_json_str(b, ss->scope->name);
  buf_puts(b, ",\"version\":");
  buf_json_str(b, ss->scope->version);
  buf_puts(b, "},\"spans\":[");
  for (size_t i = 0; i < ss->n_spans; i++) {
    const GwSpan *sp = ss->spans[i];
    char tid[33], sid[17], pid[17];
    hex(tid, sp->trace_id.data, 16);
    hex(sid, sp->span_id.data, 8);
    hex(pid, sp->parent_span_id.data, 8);
    buf_printf(b,
               "%s{\"traceId\":\"%s\",\"spanId\":\"%s\",\"parentSpanId\":\"%s\",\"flags\":257,\"kind\":3,"
               "\"startTimeUnixNano\":\"%" PRIu64 "\",\"endTimeUnixNano\":\"%" PRIu64 "\",\"name\":",
               i ? "," : "", tid, sid, pid, sp->start_time_unix_nano, sp->end_time_unix_nano);
    buf_json_str(b, sp->name);
    buf_puts(b, ",\"attributes\":[");
    for (size_t k = 0; k < sp->n_attributes; k++) {
      const GwKeyValue *kv = sp->attributes[k];
      const GwAnyValue *v = kv->value;
      buf_printf(b, "%s{\"key\":", k ? "," : "");
      buf_json_str(b, kv->key);
      buf_puts(b, ",\"value\":");
      if (v->value_case == GW_AV_STRING) {
        buf_puts(b, "{\"stringValue\":");
        buf_json_str(b, v->string_value);
        buf_puts(b, "}");
      } else if (v->value_case == GW_AV_INT) {
        buf_printf(b, "{\"intValue\":\"%" PRId64 "\"}", v->int_value);
      } else if (v->value_case == GW_AV_DOUBLE) {
        buf_printf(b, "{\"doubleValue\":%g}", v->double_value);
      } else {
        buf_puts(b, "{\"arrayValue\":{\"values\":[{\"stringValue\":\"stop\"}]}}");
      }
      buf_puts(b, "}");
    }
    buf_puts(b, "],\"status\":{}}");
  }
  buf_puts(b, "]}]}]}");
}

static int write_file(const char *dir, int body, const char *ext, const void *p, size_t n)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/body-%03d.%s", dir, body, ext);
  FILE *f = fopen(path, "wb");
  if (!f) {
    fprintf(stderr, "gen_payload: %s: %s\n", path, strerror(errno));
    return -1;
  }
  size_t w = n ? fwrite(p, 1, n, f) : 0;
  if (fclose(f) != 0 || w != n) {
    fprintf(stderr, "gen_payload: %s: write failed\n", path);
    return -1;
  }
  return 0;
}

/* Offsets of the last four bytes of every occurrence of each span's trace_id in the packed body. Each
 * trace id must appear exactly SPANS_PER_TRACE times (once per span of its trace) and nowhere else. */
static int write_index(const char *dir, int body, const uint8_t *pb, size_t len, struct span_store *spans,
                       int nspans)
{
  struct buf idx = {0};
  int rc = -1;
  for (int i = 0; i < nspans; i += SPANS_PER_TRACE) {
    int found = 0;
    const uint8_t *p = pb, *end = pb + len;
    while (p < end) {
      const uint8_t *hit = memmem(p, (size_t)(end - p), spans[i].trace_id, 16);
      if (!hit)
        break;
      buf_printf(&idx, "%zu\n", (size_t)(hit - pb) + 12);
      found++;
      p = hit + 16;
    }
    int want = nspans - i < SPANS_PER_TRACE ? nspans - i : SPANS_PER_TRACE;
    if (found != want) {
      fprintf(stderr, "gen_payload: body %d: trace id found %d times, want %d (chance collision; rerun)\n", body,
              found, want);
      goto out;
    }
  }
  rc = write_file(dir, body, "idx", idx.p, idx.len);
out:
  free(idx.p);
  return rc;
}

static int make_body(const char *dir, int body, int nspans, bool json, struct convo *turns)
{
  int rc = -1;
  struct span_store *spans = calloc((size_t)nspans, sizeof *spans);
  GwSpan **spanp = calloc((size_t)nspans, sizeof *spanp);
  uint8_t *pb = NULL;
  struct buf js = {0};
  if (!spans || !spanp)
    goto out;

  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  uint8_t trace_id[16], parent[8];
  char session[32] = "";
  struct convo cv = {0};
  for (int i = 0; i < nspans; i++) {
    if (i % SPANS_PER_TRACE == 0) {
      rnd_bytes(trace_id, 16);
      rnd_bytes(parent, 8);
      snprintf(session, sizeof session, "sess-%012" PRIx64, rnd() >> 16);
    }
    if (turns) /* -t: this span is the next call of conversation i */
      build_span(&spans[i], trace_id, parent, session, now - 5000000000ull + (uint64_t)i * 10000000ull, &turns[i],
                 body % SPANS_PER_TRACE == 0);
    else
      build_span(&spans[i], trace_id, parent, session, now - 5000000000ull + (uint64_t)i * 10000000ull, &cv,
                 i % SPANS_PER_TRACE == 0);
    spanp[i] = &spans[i].span;
  }

  GwKeyValue rkv[4];
  GwAnyValue rav[4];
  GwKeyValue *rkvp[4];
  static const char *const rattr[4][2] = {{"service.name", "support-assistant"},
                                          {"telemetry.sdk.language", "nodejs"},
                                          {"telemetry.sdk.name", "opentelemetry"},
                                          {"telemetry.sdk.version", "2.12.0"}};
  for (int i = 0; i < 4; i++) {
    gw_pb_key_value_init(&rkv[i]);
    gw_pb_any_value_init(&rav[i]);
    rkv[i].key = (char *)rattr[i][0];
    rav[i].value_case = GW_AV_STRING;
    rav[i].string_value = (char *)rattr[i][1];
    rkv[i].value = &rav[i];
    rkvp[i] = &rkv[i];
  }
  GwResource res;
  gw_pb_resource_init(&res);
  res.n_attributes = 4;
  res.attributes = rkvp;
  GwScope scope;
  gw_pb_scope_init(&scope);
  scope.name = "@opentelemetry/instrumentation-openai";
  scope.version = "0.3.0";
  GwScopeSpans ss;
  gw_pb_scope_spans_init(&ss);
  ss.scope = &scope;
  ss.n_spans = (size_t)nspans;
  ss.spans = spanp;
  GwScopeSpans *ssp = &ss;
  GwResourceSpans rs;
  gw_pb_resource_spans_init(&rs);
  rs.resource = &res;
  rs.n_scope_spans = 1;
  rs.scope_spans = &ssp;
  GwResourceSpans *rsp = &rs;
  GwTraceRequest req;
  gw_pb_trace_request_init(&req);
  req.n_resource_spans = 1;
  req.resource_spans = &rsp;

  size_t len = gw_pb_trace_request_size(&req);
  pb = malloc(len + 5);
  if (!pb)
    goto out;
  gw_pb_trace_request_pack(&req, pb + 5);
  pb[0] = 0;
  pb[1] = (uint8_t)(len >> 24);
  pb[2] = (uint8_t)(len >> 16);
  pb[3] = (uint8_t)(len >> 8);
  pb[4] = (uint8_t)len;
  if (write_file(dir, body, "pb", pb + 5, len) || write_file(dir, body, "grpc", pb, len + 5) ||
      write_index(dir, body, pb + 5, len, spans, nspans))
    goto out;
  if (json) {
    write_json(&js, &req);
    if (write_file(dir, body, "json", js.p, js.len))
      goto out;
  }
  rc = 0;
out:
  for (int i = 0; spans && i < nspans; i++) {
    free(spans[i].text.input);
    free(spans[i].text.output);
    free(spans[i].span.name);
  }
  free(cv.turns.p);
  free(spans);
  free(spanp);
  free(pb);
  free(js.p);
  return rc;
}

static void usage(void)
{
  fprintf(stderr, "usage: gen_payload [-n BODIES] [-s SPANS] [-j] [-c | -t] OUTDIR\n");
  exit(2);
}

int main(int argc, char **argv)
{
  int nbodies = 8, nspans = 100, opt;
  bool json = false;
  while ((opt = getopt(argc, argv, "n:s:jct")) != -1) {
    switch (opt) {
    case 'n': nbodies = atoi(optarg); break;
    case 's': nspans = atoi(optarg); break;
    case 'j': json = true; break;
    case 'c': conversation = true; break;
    case 't': conversation = turns_split = true; break;
    default: usage();
    }
  }
  if (optind != argc - 1 || nbodies < 1 || nbodies > 100000 || nspans < 1 || nspans > 100000)
    usage();
  if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || rng_state == 0)
    rng_state = (uint64_t)time(NULL) * 2654435761u + 1;
  struct convo *turns = turns_split ? calloc((size_t)nspans, sizeof *turns) : NULL;
  if (turns_split && !turns)
    return 1;
  int rc = 0;
  for (int b = 0; b < nbodies && !rc; b++)
    rc = make_body(argv[optind], b, nspans, json, turns) ? 1 : 0;
  for (int i = 0; turns && i < nspans; i++)
    free(turns[i].turns.p);
  free(turns);
  return rc;
}
