/*
 * test_normalize.c: GenAI normalization. Every captured SDK trace fixture (tests/fixtures/sdk) is decoded
 * and normalized and checked against its manifest; then focused cases per dialect built by hand.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <openssl/evp.h>

#include "core/crc32.h"
#include "decode/decode.h"
#include "normalize/normalize.h"
#include "normalize/normalize_int.h"
#include "testutil.h"

/* ---- building requests by hand ---- */

static struct gw_arena *A;

static int setup(void **state)
{
  (void)state;
  gw_normalize_init();
  A = gw_arena_create(64u << 20);
  return 0;
}

static int teardown(void **state)
{
  (void)state;
  gw_arena_destroy(A);
  A = NULL;
  return 0;
}

#define az(n) tu_alloc(A, n)
#define av_str(s) tu_av_str(A, s)
#define av_int(i) tu_av_int(A, i)
#define av_dbl(d) tu_av_dbl(A, d)
#define av_bool(b) tu_av_bool(A, b)
#define kv(k, v) tu_kv(A, k, v)

/* A NULL-terminated list of key-values into an arena array. */
static GwKeyValue **kvs(size_t *n, ...)
{
  va_list ap;
  GwKeyValue **v = az(sizeof *v * 64);
  size_t i = 0;
  va_start(ap, n);
  for (GwKeyValue *x; (x = va_arg(ap, GwKeyValue *)) != NULL && i < 64;)
    v[i++] = x;
  va_end(ap);
  *n = i;
  return v;
}

static GwAnyValue *av_array(size_t n, GwAnyValue **vals)
{
  GwAnyValue *v = az(sizeof *v);
  GwArrayValue *arr = az(sizeof *arr);
  gw_pb_any_value_init(v);
  gw_pb_array_value_init(arr);
  arr->values = az(sizeof *arr->values * (n ? n : 1));
  memcpy(arr->values, vals, sizeof *vals * n);
  arr->n_values = n;
  v->value_case = GW_AV_ARRAY;
  v->array_value = arr;
  return v;
}

static GwAnyValue *av_kvlist(GwKeyValue **vals, size_t n)
{
  GwAnyValue *v = az(sizeof *v);
  GwKeyValueList *l = az(sizeof *l);
  gw_pb_any_value_init(v);
  gw_pb_kvlist_init(l);
  l->values = vals;
  l->n_values = n;
  v->value_case = GW_AV_KVLIST;
  v->kvlist_value = l;
  return v;
}

static uint8_t *bytes(size_t n, uint8_t fill)
{
  uint8_t *p = az(n ? n : 1);
  memset(p, fill, n);
  return p;
}

static GwSpan *span(uint8_t id, GwKeyValue **attrs, size_t nattrs)
{
  GwSpan *s = az(sizeof *s);
  gw_pb_span_init(s);
  s->trace_id = (ProtobufCBinaryData){16, bytes(16, 0xab)};
  s->span_id = (ProtobufCBinaryData){8, bytes(8, id)};
  s->name = gw_arena_strdup(A, "test span");
  s->start_time_unix_nano = 1700000000000000000ull;
  s->end_time_unix_nano = 1700000000250000000ull;
  s->attributes = attrs;
  s->n_attributes = nattrs;
  return s;
}

static GwTraceRequest *request(size_t nspans, GwSpan **spans)
{
  GwTraceRequest *r = az(sizeof *r);
  GwResourceSpans *rs = az(sizeof *rs);
  GwScopeSpans *ss = az(sizeof *ss);
  GwResource *res = az(sizeof *res);
  GwScope *sc = az(sizeof *sc);
  gw_pb_trace_request_init(r);
  gw_pb_resource_spans_init(rs);
  gw_pb_scope_spans_init(ss);
  gw_pb_resource_init(res);
  gw_pb_scope_init(sc);
  sc->name = gw_arena_strdup(A, "test-scope");
  res->attributes = kvs(&res->n_attributes, kv("service.name", av_str("svc-a")), NULL);
  ss->scope = sc;
  ss->spans = az(sizeof *ss->spans * nspans);
  memcpy(ss->spans, spans, sizeof *spans * nspans);
  ss->n_spans = nspans;
  rs->resource = res;
  rs->scope_spans = az(sizeof *rs->scope_spans);
  rs->scope_spans[0] = ss;
  rs->n_scope_spans = 1;
  r->resource_spans = az(sizeof *r->resource_spans);
  r->resource_spans[0] = rs;
  r->n_resource_spans = 1;
  return r;
}

/* Normalize a request holding one span with these attributes; returns its single record. */
static const struct gw_record *one(struct gw_normalize_result *res, GwSpan *s)
{
  GwTraceRequest *req = request(1, &s);
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, res, &err), GW_OK);
  assert_int_equal(res->nrecords, 1);
  return &res->records[0];
}

/* A span (span id 01..01) holding the NULL-terminated key-values. */
static GwSpan *mkspan(int unused, ...)
{
  va_list ap;
  GwKeyValue **v = az(sizeof *v * 64);
  size_t i = 0;
  va_start(ap, unused);
  for (GwKeyValue *x; (x = va_arg(ap, GwKeyValue *)) != NULL && i < 64;)
    v[i++] = x;
  va_end(ap);
  return span(1, v, i);
}
#define SPAN(...) mkspan(0, __VA_ARGS__, NULL)

static void assert_valid_json(const char *s)
{
  if (!s)
    return;
  struct json_object *o = json_tokener_parse(s);
  if (!o)
    fail_msg("not valid JSON: %.200s", s);
  json_object_put(o);
}

/* ---- fixtures ---- */

static const struct gw_record *find(const struct gw_normalize_result *res, const char *trace, const char *span_id)
{
  for (size_t i = 0; i < res->nrecords; i++)
    if (!strcmp(res->records[i].trace_id, trace) && !strcmp(res->records[i].span_id, span_id))
      return &res->records[i];
  return NULL;
}

static const char *jstr(struct json_object *o, const char *key)
{
  struct json_object *x;
  if (!json_object_object_get_ex(o, key, &x) || !json_object_is_type(x, json_type_string))
    return NULL;
  return json_object_get_string(x);
}

static bool jbool(struct json_object *o, const char *key)
{
  struct json_object *x;
  return json_object_object_get_ex(o, key, &x) && json_object_get_boolean(x);
}

static void assert_str_or_null(const char *got, const char *want, const char *what, const char *file, int idx)
{
  if (!want) {
    if (got)
      fail_msg("%s call %d %s: got %s, want NULL", file, idx, what, got);
    return;
  }
  if (!got || strcmp(got, want))
    fail_msg("%s call %d %s: got %s, want %s", file, idx, what, got ? got : "NULL", want);
}

static void assert_tokens(struct gw_opt_i64 got, struct json_object *call, const char *key, bool on_span,
                          const char *file, int idx)
{
  struct json_object *x;
  bool want_set = on_span && json_object_object_get_ex(call, key, &x) && !json_object_is_type(x, json_type_null);
  if (!want_set) {
    if (got.set)
      fail_msg("%s call %d %s: got %lld, want NULL", file, idx, key, (long long)got.v);
    return;
  }
  json_object_object_get_ex(call, key, &x);
  if (!got.set || got.v != json_object_get_int64(x))
    fail_msg("%s call %d %s: got %lld (set %d), want %lld", file, idx, key, (long long)got.v, got.set,
             (long long)json_object_get_int64(x));
}

/* Independent count of GenAI spans (DESIGN §3 detection rule). */
static size_t count_genai(const GwTraceRequest *req)
{
  size_t n = 0;
  for (size_t r = 0; r < req->n_resource_spans; r++)
    for (size_t s = 0; s < req->resource_spans[r]->n_scope_spans; s++) {
      const GwScopeSpans *ss = req->resource_spans[r]->scope_spans[s];
      for (size_t k = 0; k < ss->n_spans; k++) {
        bool g = false;
        for (size_t i = 0; i < ss->spans[k]->n_attributes && !g; i++) {
          const char *key = ss->spans[k]->attributes[i]->key;
          g = !strncmp(key, "gen_ai.", 7) || !strncmp(key, "llm.", 4) || !strncmp(key, "embedding.", 10) ||
              !strcmp(key, "openinference.span.kind") || !strcmp(key, "traceloop.span.kind") ||
              !strncmp(key, "langfuse.observation.", 21);
        }
        n += g;
      }
    }
  return n;
}

static void check_fixture(const char *file, const char *manifest_file)
{
  size_t len;
  char path[512];
  snprintf(path, sizeof path, "sdk/%s", file);
  char *body = tu_read_file(path, &len);
  bool json = strstr(file, ".json") != NULL;
  struct gw_decode_limits lim = {.max_bytes = 64u << 20, .max_depth = 64};
  struct gw_err err = {0};
  GwTraceRequest *req = NULL;
  gw_rc rc = gw_decode_traces(A, json ? GW_ENC_JSON : GW_ENC_PROTOBUF, body, len, &lim, &req, &err);
  if (rc)
    fail_msg("%s: decode failed: %s", file, err.msg);
  size_t ngenai = count_genai(req);

  struct gw_normalize_result res;
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrejected, 0);
  assert_int_equal(res.nrecords, ngenai);
  assert_true(res.has_genai);

  snprintf(path, sizeof path, "sdk/%s", manifest_file);
  char *mtext = tu_read_file(path, NULL);
  struct json_object *m = json_tokener_parse(mtext), *calls, *groups, *summary, *x;
  assert_non_null(m);
  assert_true(json_object_object_get_ex(m, "calls", &calls));
  assert_true(json_object_object_get_ex(m, "summary", &summary));
  assert_true(json_object_object_get_ex(summary, "expected_spans_total", &x));
  assert_int_equal(res.nrecords, json_object_get_int(x));

  for (size_t i = 0; i < json_object_array_length(calls); i++) {
    struct json_object *c = json_object_array_get_idx(calls, i);
    int idx = (int)i;
    if (!jbool(c, "expect_span_exported"))
      continue;
    const struct gw_record *r = find(&res, jstr(c, "trace_id"), jstr(c, "span_id"));
    if (!r)
      fail_msg("%s call %d: no record for span %s", file, idx, jstr(c, "span_id"));
    assert_str_or_null(r->request_model, jstr(c, "model"), "request_model", file, idx);
    assert_str_or_null(r->response_model, jstr(c, "expected_response_model"), "response_model", file, idx);
    assert_str_or_null(r->model_id, r->response_model ? r->response_model : r->request_model, "model_id", file, idx);
    assert_str_or_null(r->operation, jstr(c, "operation"), "operation", file, idx);
    const char *parent = jstr(c, "parent_span_id");
    assert_string_equal(r->parent_span_id, parent ? parent : "");
    assert_str_or_null(r->span_name, jstr(c, "span_name"), "span_name", file, idx);
    assert_non_null(r->dialect);
    if (jbool(c, "error")) {
      assert_string_equal(r->status, "error");
      assert_non_null(r->error_code);
      assert_non_null(r->error_message);
    } else {
      assert_string_not_equal(r->status, "error");
    }
    bool on_span = jbool(c, "tokens_on_span");
    assert_tokens(r->input_tokens, c, "expected_input_tokens", on_span, file, idx);
    assert_tokens(r->output_tokens, c, "expected_output_tokens", on_span, file, idx);
    if (!r->input_tokens.set && !r->output_tokens.set)
      assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_MISSING));
    if (jbool(c, "ids_expected_on_llm_span")) {
      assert_str_or_null(r->session_id, jstr(c, "session_id"), "session_id", file, idx);
      assert_str_or_null(r->user_id, jstr(c, "user_id"), "user_id", file, idx);
    }
    assert_string_equal(r->trace_version, "v1");
    assert_non_null(r->service_name);
    assert_non_null(r->scope_name);
    assert_true(r->duration_ms.set);
    assert_valid_json(r->attributes);
    assert_valid_json(r->resource);
    assert_valid_json(r->parameters);
    assert_valid_json(r->prompt_content);
    assert_valid_json(r->response_content);
    if (r->prompt_content)
      assert_int_equal(strlen(r->prompt_hash), 16);
    /* Content-carrying dialects: the prompt and, on success, the reply are in the record. */
    if (strncmp(file, "otel", 4) && r->operation && !strcmp(r->operation, "chat")) {
      assert_non_null(r->prompt_content);
      assert_non_null(r->response_content);
    }
  }

  assert_true(json_object_object_get_ex(m, "groups", &groups));
  for (size_t i = 0; i < json_object_array_length(groups); i++) {
    struct json_object *g = json_object_array_get_idx(groups, i);
    const struct gw_record *r = find(&res, jstr(g, "trace_id"), jstr(g, "span_id"));
    if (!r)
      fail_msg("%s group %zu: no record for the agent.run span", file, i);
    assert_string_equal(r->span_name, jstr(g, "name"));
    assert_string_equal(r->operation, "invoke_agent");
    assert_string_equal(r->session_id, jstr(g, "session_id"));
    assert_string_equal(r->user_id, jstr(g, "user_id"));
    assert_null(r->model_id);
    assert_null(r->dialect);
    assert_false(gw_record_has_flag(r, GW_FLAG_TOKENS_MISSING));
    assert_false(r->input_tokens.set);
  }
  json_object_put(m);
  free(mtext);
  free(body);
}

/* Every traces fixture listed in index.jsonl. */
static void test_fixtures(void **state)
{
  (void)state;
  char *index = tu_read_file("sdk/index.jsonl", NULL);
  size_t checked = 0;
  for (char *line = strtok(index, "\n"); line; line = strtok(NULL, "\n")) {
    struct json_object *o = json_tokener_parse(line);
    assert_non_null(o);
    const char *sig = jstr(o, "signal"), *p = jstr(o, "path");
    bool traces = sig ? !strcmp(sig, "traces") : (p && strstr(p, "trace") != NULL);
    if (traces) {
      check_fixture(jstr(o, "file"), jstr(o, "manifest"));
      checked++;
    }
    json_object_put(o);
  }
  free(index);
  assert_int_equal(checked, 9);
}

/* ---- focused cases ---- */

static void test_langfuse_overrides(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r =
    one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat")), kv("gen_ai.request.model", av_str("gpt-4o")),
                   kv("gen_ai.response.model", av_str("gpt-4o-2024-08-06")),
                   kv("langfuse.observation.model.name", av_str("my-model")),
                   kv("gen_ai.request.temperature", av_dbl(0.2)),
                   kv("langfuse.observation.model.parameters", av_str("{\"temperature\":0.9,\"max_tokens\":50}")),
                   kv("langfuse.observation.level", av_str("ERROR")),
                   kv("langfuse.observation.status_message", av_str("upstream refused"))));
  assert_string_equal(r->request_model, "my-model");
  assert_string_equal(r->response_model, "my-model");
  assert_string_equal(r->model_id, "my-model");
  assert_string_equal(r->dialect, "langfuse");
  assert_string_equal(r->parameters, "{\"temperature\":0.9,\"max_tokens\":50}");
  assert_string_equal(r->status, "error");
  assert_string_equal(r->error_message, "upstream refused");
}

/* Issue 16: each dialect's own agent and workflow, and its prompt template name and version. */
static const struct gw_record *named(const char *span_name, GwSpan *s)
{
  static struct gw_normalize_result res;
  s->name = gw_arena_strdup(A, span_name);
  return one(&res, s);
}

static void assert_names(const struct gw_record *r, const char *agent, const char *wf, const char *pname,
                         const char *pver)
{
  assert_str_or_null(r->agent_name, agent, "agent_name", __FILE__, __LINE__);
  assert_str_or_null(r->workflow_name, wf, "workflow_name", __FILE__, __LINE__);
  assert_str_or_null(r->prompt_name, pname, "prompt_name", __FILE__, __LINE__);
  assert_str_or_null(r->prompt_version, pver, "prompt_version", __FILE__, __LINE__);
}

static void test_issue16_agent_workflow_prompt(void **state)
{
  (void)state;
  /* semconv: the attributes, else the name in an invoke_agent / invoke_workflow span name */
  assert_names(named("invoke_agent x", SPAN(kv("gen_ai.operation.name", av_str("invoke_agent")),
                                            kv("gen_ai.agent.name", av_str("planner")),
                                            kv("gen_ai.workflow.name", av_str("trip")))),
               "planner", "trip", NULL, NULL);
  assert_names(named("invoke_agent booker", SPAN(kv("gen_ai.operation.name", av_str("invoke_agent")))), "booker",
               NULL, NULL, NULL);
  assert_names(named("invoke_agent", SPAN(kv("gen_ai.operation.name", av_str("invoke_agent")),
                                          kv("gen_ai.agent.id", av_str("asst_42")))),
               "asst_42", NULL, NULL, NULL);
  assert_names(named("invoke_workflow checkout", SPAN(kv("gen_ai.operation.name", av_str("invoke_workflow")))), NULL,
               "checkout", NULL, NULL);
  assert_names(named("chat gpt-4o", SPAN(kv("gen_ai.operation.name", av_str("chat")),
                                         kv("gen_ai.prompt.name", av_str("greeting")))),
               NULL, NULL, "greeting", NULL);
  /* a plain chat span names nothing: the writer fills it from its ancestors */
  assert_names(named("chat gpt-4o", SPAN(kv("gen_ai.operation.name", av_str("chat")))), NULL, NULL, NULL, NULL);
  /* OpenLLMetry */
  assert_names(named("researcher.agent", SPAN(kv("traceloop.span.kind", av_str("agent")),
                                              kv("traceloop.entity.name", av_str("researcher")),
                                              kv("traceloop.workflow.name", av_str("research")))),
               "researcher", "research", NULL, NULL);
  assert_names(named("research.workflow", SPAN(kv("traceloop.span.kind", av_str("workflow")),
                                               kv("traceloop.entity.name", av_str("research")))),
               NULL, "research", NULL, NULL);
  assert_names(named("openai.chat", SPAN(kv("llm.request.type", av_str("chat")),
                                         kv("traceloop.prompt.key", av_str("summarize")),
                                         kv("traceloop.prompt.version", av_int(3)))),
               NULL, NULL, "summarize", "3");
  assert_names(named("openai.chat", SPAN(kv("llm.request.type", av_str("chat")),
                                         kv("traceloop.prompt.key", av_str("summarize")),
                                         kv("traceloop.prompt.version_name", av_str("v3-final")))),
               NULL, NULL, "summarize", "v3-final");
  /* OpenInference */
  assert_names(named("support", SPAN(kv("openinference.span.kind", av_str("AGENT")))), "support", NULL, NULL, NULL);
  assert_names(named("anything", SPAN(kv("openinference.span.kind", av_str("AGENT")), kv("agent.name", av_str("sup")))),
               "sup", NULL, NULL, NULL);
  assert_names(named("qa-chain", SPAN(kv("openinference.span.kind", av_str("CHAIN")))), NULL, "qa-chain", NULL, NULL);
  const struct gw_record *r = named("ChatOpenAI", SPAN(kv("openinference.span.kind", av_str("LLM")),
                                                       kv("llm.prompt_template.template", av_str("Answer {question}")),
                                                       kv("llm.prompt_template.version", av_str("v2")),
                                                       kv("llm.prompt_template.variables", av_str("{\"question\":\"x\"}"))));
  /* a template is known by its text: the first 16 hex digits of its SHA-256 */
  assert_string_equal(r->prompt_name, "template:db7aaaa7e941c880");
  assert_string_equal(r->prompt_version, "v2");
  assert_names(named("ChatOpenAI", SPAN(kv("openinference.span.kind", av_str("LLM")), kv("prompt.id", av_str("faq")),
                                        kv("llm.prompt_template.template", av_str("Answer {question}")),
                                        kv("llm.prompt_template.version", av_str("v2")))),
               NULL, NULL, "faq", "v2");
  /* Langfuse: an agent observation's name, the trace name as the workflow, prompt name and int version */
  assert_names(named("billing-agent", SPAN(kv("langfuse.observation.type", av_str("agent")),
                                           kv("langfuse.trace.name", av_str("checkout")))),
               "billing-agent", "checkout", NULL, NULL);
  assert_names(named("gen", SPAN(kv("langfuse.observation.type", av_str("generation")),
                                 kv("langfuse.observation.prompt.name", av_str("invoice-summary")),
                                 kv("langfuse.observation.prompt.version", av_int(7)),
                                 kv("gen_ai.agent.name", av_str("semconv-agent")))),
               "semconv-agent", NULL, "invoice-summary", "7");
  /* Langfuse wins over semconv (DESIGN §3 precedence) */
  assert_names(named("lf-agent", SPAN(kv("langfuse.observation.type", av_str("agent")),
                                      kv("gen_ai.agent.name", av_str("other")))),
               "lf-agent", NULL, NULL, NULL);
  /* a name longer than a rollup dimension takes is cut at a character boundary */
  char longname[400];
  memset(longname, 'x', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  memcpy(longname + 199, "\xc3\xa9", 2); /* é across the 200-byte cut */
  r = named("a", SPAN(kv("gen_ai.agent.name", av_str(longname))));
  assert_int_equal(strlen(r->agent_name), 199);
}

/* Within one request a call takes its nearest ancestor's names already (the writer's SQL fill does it
 * across requests): through a tool span, each name on its own, and not past a parent the request lacks. */
static void test_issue16_inherit_in_request(void **state)
{
  (void)state;
  size_t n;
  GwSpan *sp[5];
  sp[0] = span(1, kvs(&n, kv("gen_ai.operation.name", av_str("invoke_agent")), kv("gen_ai.agent.name", av_str("planner")),
                      kv("gen_ai.workflow.name", av_str("trip")), NULL), 0);
  sp[0]->n_attributes = n;
  sp[1] = span(2, kvs(&n, kv("gen_ai.operation.name", av_str("execute_tool")), NULL), 0);
  sp[1]->n_attributes = n;
  sp[2] = span(3, kvs(&n, kv("gen_ai.operation.name", av_str("chat")), NULL), 0);
  sp[2]->n_attributes = n;
  sp[3] = span(4, kvs(&n, kv("gen_ai.operation.name", av_str("invoke_workflow")), kv("gen_ai.workflow.name", av_str("inner")), NULL), 0);
  sp[3]->n_attributes = n;
  sp[4] = span(5, kvs(&n, kv("gen_ai.operation.name", av_str("chat")), NULL), 0);
  sp[4]->n_attributes = n;
  /* 3 -> 2 -> 1 (the agent); 4 -> 1; 5 -> 9 (not in the request). Children come first. */
  sp[1]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 1)};
  sp[2]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 2)};
  sp[3]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 1)};
  sp[4]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 9)};
  GwSpan *ordered[5] = {sp[2], sp[4], sp[1], sp[3], sp[0]};
  GwTraceRequest *req = request(5, ordered);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, 5);
  const struct gw_record *tool = NULL, *chat = NULL, *inner = NULL, *orphan = NULL, *agent = NULL;
  for (size_t i = 0; i < 5; i++) {
    const struct gw_record *r = &res.records[i];
    const char *id = r->span_id;
    if (!strcmp(id, "0101010101010101")) agent = r;
    if (!strcmp(id, "0202020202020202")) tool = r;
    if (!strcmp(id, "0303030303030303")) chat = r;
    if (!strcmp(id, "0404040404040404")) inner = r;
    if (!strcmp(id, "0505050505050505")) orphan = r;
  }
  assert_names(agent, "planner", "trip", NULL, NULL);
  assert_false(gw_record_has_flag(agent, GW_FLAG_AGENT_INHERITED));
  assert_names(tool, "planner", "trip", NULL, NULL);
  assert_names(chat, "planner", "trip", NULL, NULL);
  assert_true(gw_record_has_flag(chat, GW_FLAG_AGENT_INHERITED));
  assert_true(gw_record_has_flag(chat, GW_FLAG_WORKFLOW_INHERITED));
  assert_names(inner, "planner", "inner", NULL, NULL);
  assert_true(gw_record_has_flag(inner, GW_FLAG_AGENT_INHERITED));
  assert_false(gw_record_has_flag(inner, GW_FLAG_WORKFLOW_INHERITED));
  assert_names(orphan, NULL, NULL, NULL, NULL);
  assert_int_equal(orphan->flags & (1u << GW_FLAG_AGENT_INHERITED), 0);
}

/* The in-request walk passes through the request's spans that are not stored: agent -> HTTP span ->
 * framework span -> chat names the chat, in any order; a chain whose missing link is outside the
 * request still stops. */
static void test_issue16_inherit_through_non_genai(void **state)
{
  (void)state;
  size_t n;
  GwSpan *sp[6];
  sp[0] = span(1, kvs(&n, kv("gen_ai.operation.name", av_str("invoke_agent")), kv("gen_ai.agent.name", av_str("planner")),
                      kv("gen_ai.workflow.name", av_str("trip")), NULL), 0);
  sp[0]->n_attributes = n;
  sp[1] = span(2, kvs(&n, kv("http.request.method", av_str("POST")), NULL), 0);
  sp[1]->n_attributes = n;
  sp[2] = span(3, kvs(&n, kv("framework.step", av_str("plan")), NULL), 0);
  sp[2]->n_attributes = n;
  sp[3] = span(4, kvs(&n, kv("gen_ai.operation.name", av_str("chat")), NULL), 0);
  sp[3]->n_attributes = n;
  sp[4] = span(5, kvs(&n, kv("internal", av_str("x")), NULL), 0);
  sp[4]->n_attributes = n;
  sp[5] = span(6, kvs(&n, kv("gen_ai.operation.name", av_str("chat")), NULL), 0);
  sp[5]->n_attributes = n;
  /* 4 -> 3 -> 2 -> 1 (the agent); 6 -> 5 -> 9 (not in the request) */
  sp[1]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 1)};
  sp[2]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 2)};
  sp[3]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 3)};
  sp[4]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 9)};
  sp[5]->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 5)};
  GwSpan *ordered[6] = {sp[3], sp[5], sp[2], sp[4], sp[1], sp[0]};
  GwTraceRequest *req = request(6, ordered);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, 3);
  const struct gw_record *chat = NULL, *orphan = NULL;
  for (size_t i = 0; i < res.nrecords; i++) {
    if (!strcmp(res.records[i].span_id, "0404040404040404")) chat = &res.records[i];
    if (!strcmp(res.records[i].span_id, "0606060606060606")) orphan = &res.records[i];
  }
  assert_non_null(chat);
  assert_non_null(orphan);
  assert_names(chat, "planner", "trip", NULL, NULL);
  assert_true(gw_record_has_flag(chat, GW_FLAG_AGENT_INHERITED));
  assert_true(gw_record_has_flag(chat, GW_FLAG_WORKFLOW_INHERITED));
  assert_string_equal(chat->parent_span_id, "0303030303030303");
  assert_names(orphan, NULL, NULL, NULL, NULL);
  /* The spans that are not stored travel as links on the trace's first record (the chat, first in the
   * request), in span id order, so the writer's fill can walk them when the agent comes in another
   * request; the other records carry none. */
  assert_ptr_equal(chat, &res.records[0]);
  assert_int_equal(chat->span_links.n, 3);
  assert_string_equal(chat->span_links.v[0], "0202020202020202:0101010101010101");
  assert_string_equal(chat->span_links.v[1], "0303030303030303:0202020202020202");
  assert_string_equal(chat->span_links.v[2], "0505050505050505:0909090909090909");
  for (size_t i = 1; i < res.nrecords; i++)
    assert_int_equal(res.records[i].span_links.n, 0);
}

/* The SimHash is taken over the prompt's text before redaction, beside prompt_hash. */
static void test_issue16_prompt_simhash(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat")),
                                             kv("gen_ai.input.messages",
                                                av_str("[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":"
                                                       "\"hello\"}]}]"))));
  assert_string_equal(r->prompt_simhash, "1110100111000101011000101100000011111101101100100011001001000100");
  r = one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat"))));
  assert_string_equal(r->prompt_simhash, "");
}

/* Parts made to share the memo's key (128 bytes alike but for bytes 8-16, which the key's eight sampled
 * words leave out) cost a bounded number of comparisons each (a look-up walked every such part before:
 * 0.6 s of CPU for a 3.9 MB request of them against 0.08 s for as many unrelated parts), and the
 * SimHash is still the whole text's, with parts met again among them. */
static void test_simhash_memo_colliding_parts(void **state)
{
  (void)state;
  enum { N = 3000, LEN = 128 };
  struct nz_sh_memo m = {0};
  struct nz_sh_acc acc;
  nz_sh_begin(&acc, &m, A);
  struct gw_sb whole;
  gw_sb_init(&whole, A);
  for (int i = 0; i < N; i++) {
    char *t = gw_arena_alloc(A, LEN);
    memset(t, 'a', LEN);
    int v = i % 2000; /* the last thousand are met again */
    for (int k = 0; k < 4; k++)
      t[9 + k] = (char)('a' + (v >> (3 * k)) % 8);
    t[5] = ' ';
    nz_sh_add(&acc, t, LEN, false);
    if (i)
      gw_sb_putc(&whole, '\n');
    gw_sb_putn(&whole, t, LEN);
  }
  uint64_t got, want;
  bool oom = false;
  assert_true(nz_sh_end(&acc, &got, &oom));
  assert_false(oom);
  assert_true(gw_simhash(whole.buf, whole.len, &want));
  assert_int_equal(got, want);
  if (m.compares > (uint64_t)NZ_SH_PROBES * N)
    fail_msg("%llu comparisons for %d look-ups", (unsigned long long)m.compares, N);
  assert_true(m.n > 0);
}

/* r's prompt_hash is the first 8 bytes of its prompt_content's SHA-256 (OpenSSL's), in hex. */
static void want_prompt_hash(const struct gw_record *r, size_t i)
{
  assert_non_null(r->prompt_content);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  assert_true(EVP_Digest(r->prompt_content, strlen(r->prompt_content), md, &mdlen, EVP_sha256(), NULL));
  char want[17];
  for (int b = 0; b < 8; b++)
    snprintf(want + 2 * b, 3, "%02x", md[b]);
  if (strcmp(r->prompt_hash, want))
    fail_msg("record %zu (%zu bytes): prompt_hash %s, want %s", i, strlen(r->prompt_content), r->prompt_hash, want);
}

/* The texts of the conversation tests: long parts (memoized), short ones (hashed in runs), twins. */
enum { CONV_NT = 8, CONV_NS = 6 };
static const size_t conv_len[CONV_NT] = {300, 520, 150, 2, 5, 300, 200, 700};
static const int conv_calls[CONV_NS][7] = {
  {0, 1, -1},                /* system, user */
  {0, 1, 2, 3, 7, -1},       /* + the answer, a short turn, a new long one */
  {5, 1, -1},                /* t[0]'s twin but for one byte, then t[1] again */
  {6, 0, 3, 4, 2, -1},       /* a long part without tokens first */
  {1, -1},                   /* a part met before, alone */
  {3, 4, 3, -1},             /* short parts only */
};

static void conv_texts(char *t[CONV_NT])
{
  for (int i = 0; i < CONV_NT; i++) {
    t[i] = az(conv_len[i] + 1);
    for (size_t j = 0; j < conv_len[i]; j++)
      t[i][j] = j % 6 == 5 ? ' ' : (char)('a' + (i * 5 + j * 3 + j / 6) % 26);
  }
  memcpy(t[3], "ok", 2);
  memcpy(t[4], "Sure.", 5);
  memcpy(t[5], t[1], 300); /* t[1]'s first 300 bytes with byte 10 changed: t[5] and t[6] share a key */
  t[5][10] = 'Q';
  memcpy(t[6], t[0], 200);
  for (size_t j = 0; j < 200; j++) /* no token at all */
    t[6][j] = ".-!? "[j % 5];
  memcpy(t[0] + 0, t[1], 300); /* t[0] = t[1]'s first 300 bytes: same length and key as t[5] */
}

/* Call i of conv_calls as a span (span id id) whose gen_ai.input.messages holds its texts; *want_sh: the
 * SimHash of those texts joined by '\n', as 64 '0'/'1'. */
static GwSpan *conv_span(char *const t[CONV_NT], int i, uint8_t id, char want_sh[65])
{
  struct gw_sb js, tx;
  gw_sb_init(&js, A);
  gw_sb_init(&tx, A);
  gw_sb_puts(&js, "[");
  for (int k = 0; conv_calls[i][k] >= 0; k++) {
    gw_sb_puts(&js, k ? ",{\"role\":\"" : "{\"role\":\"");
    gw_sb_puts(&js, k % 2 ? "assistant" : "user");
    gw_sb_puts(&js, "\",\"parts\":[{\"type\":\"text\",\"content\":\"");
    gw_sb_putn(&js, t[conv_calls[i][k]], conv_len[conv_calls[i][k]]);
    gw_sb_puts(&js, "\"}]}");
    if (k)
      gw_sb_putc(&tx, '\n');
    gw_sb_putn(&tx, t[conv_calls[i][k]], conv_len[conv_calls[i][k]]);
  }
  gw_sb_puts(&js, "]");
  size_t nv = 0;
  GwKeyValue **v = kvs(&nv, kv("gen_ai.operation.name", av_str("chat")),
                       kv("gen_ai.input.messages", av_str(gw_sb_finish(&js))), NULL);
  uint64_t h;
  assert_true(gw_simhash(tx.buf, tx.len, &h));
  gw_simhash_bits(h, want_sh);
  return span(id, v, nv);
}

/* A conversation's calls in one request resend the system prompt and earlier turns; their SimHash is the
 * request's memo of parts joined, and must be what the whole text gives: parts met again (alone and among
 * others), a part of the memo's key (same length and sampled words) but another byte, short parts between
 * long ones, a long part without tokens, and a part short of the memo's size. */
static void test_prompt_simhash_conversation(void **state)
{
  (void)state;
  char *t[CONV_NT];
  conv_texts(t);
  GwSpan *spans[CONV_NS];
  char want[CONV_NS][65];
  for (int i = 0; i < CONV_NS; i++)
    spans[i] = conv_span(t, i, (uint8_t)(i + 1), want[i]);
  GwTraceRequest *req = request(CONV_NS, spans);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, CONV_NS);
  for (int i = 0; i < CONV_NS; i++)
    if (strcmp(res.records[i].prompt_simhash, want[i]))
      fail_msg("span %d: prompt_simhash %s, want %s", i, res.records[i].prompt_simhash, want[i]);
  /* the twin and the original did differ */
  assert_string_not_equal(res.records[0].prompt_simhash, res.records[2].prompt_simhash);
}

/* One call of conv_calls in a request of its own, through cache c: its prompt_simhash. */
static void conv_request(struct gw_hist_cache *c, char *const t[CONV_NT], int i, char got[65], char want[65])
{
  GwSpan *sp = conv_span(t, i, (uint8_t)(i + 1), want);
  struct gw_normalize_opts o = {.history_cache = c};
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(request(1, &sp), A, &o, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, 1);
  strcpy(got, res.records[0].prompt_simhash);
}

/* The calls of a conversation in separate requests, through the cache kept between them: the same
 * prompt_simhash as without it, parts met in an earlier request found there, and only parts that will be
 * resent kept (an input's last message only once the input holds more than two). */
static void test_prompt_simhash_across_requests(void **state)
{
  (void)state;
  char *t[CONV_NT];
  conv_texts(t);
  struct gw_hist_cache *c = gw_hist_cache_create(1u << 20);
  assert_non_null(c);
  struct gw_hist_cache_stats st;
  char got[65], want[65];
  /* call 0 {t0, t1}: t0 (history) kept, t1 (the last of two) not */
  conv_request(c, t, 0, got, want);
  assert_string_equal(got, want);
  gw_hist_cache_stats(c, &st);
  assert_int_equal(st.entries, 1);
  assert_int_equal(st.hits, 0);
  /* call 1 {t0, t1, t2, ok, t7}: t0 found; t1, t2 and the last, t7, kept (a chat under way) */
  conv_request(c, t, 1, got, want);
  assert_string_equal(got, want);
  gw_hist_cache_stats(c, &st);
  assert_int_equal(st.hits, 1);
  assert_int_equal(st.entries, 4);
  /* call 2 {t5, t1}: t5 shares t0's length and key, not its text: not found (kept beside t0); t1 found */
  conv_request(c, t, 2, got, want);
  assert_string_equal(got, want);
  gw_hist_cache_stats(c, &st);
  assert_int_equal(st.hits, 2);
  assert_int_equal(st.entries, 5);
  /* every call again, each in its own request: every long part found, the same hashes */
  uint64_t before = st.hits;
  for (int i = 0; i < CONV_NS; i++) {
    conv_request(c, t, i, got, want);
    if (strcmp(got, want))
      fail_msg("call %d again: prompt_simhash %s, want %s", i, got, want);
  }
  gw_hist_cache_stats(c, &st);
  assert_true(st.hits >= before + 10);
  assert_true(st.bytes <= st.max_bytes);
  /* emptied, the same hashes still */
  gw_hist_cache_clear(c);
  gw_hist_cache_stats(c, &st);
  assert_int_equal(st.entries, 0);
  conv_request(c, t, 1, got, want);
  assert_string_equal(got, want);
  gw_hist_cache_destroy(c);
  assert_null(gw_hist_cache_create(0));
}

/* Within its bound whatever comes: 300 calls of three messages of 1 KB never seen again hold the cache at
 * or under its max_bytes (least recently used parts evicted); the last call's parts are still there. */
static void test_history_cache_bound(void **state)
{
  (void)state;
  enum { CALLS = 300, LEN = 1000 };
  struct gw_hist_cache *c = gw_hist_cache_create(256u << 10);
  assert_non_null(c);
  struct gw_hist_cache_stats st;
  GwSpan *last = NULL;
  for (int i = 0; i < CALLS; i++) {
    struct gw_sb js;
    gw_sb_init(&js, A);
    gw_sb_puts(&js, "[");
    for (int k = 0; k < 3; k++) {
      gw_sb_puts(&js, k ? ",{\"role\":\"user\",\"content\":\"" : "{\"role\":\"user\",\"content\":\"");
      uint64_t r = (uint64_t)(i * 3 + k + 1) * 0x9e3779b97f4a7c15ull; /* every text its own */
      for (int j = 0; j < LEN; j++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        gw_sb_putc(&js, j % 7 == 6 ? ' ' : (char)('a' + r % 26));
      }
      gw_sb_puts(&js, "\"}");
    }
    gw_sb_puts(&js, "]");
    char *msgs = gw_sb_finish(&js);
    for (int again = 0; again < (i == CALLS - 1 ? 2 : 1); again++) {
      size_t nv = 0;
      GwKeyValue **v = kvs(&nv, kv("gen_ai.operation.name", av_str("chat")), kv("gen_ai.input.messages", av_str(msgs)),
                           NULL);
      last = span((uint8_t)(i + 1), v, nv);
      struct gw_normalize_opts o = {.history_cache = c};
      struct gw_normalize_result res;
      struct gw_err err = {0};
      uint64_t hits = 0;
      if (again) {
        gw_hist_cache_stats(c, &st);
        hits = st.hits;
      }
      assert_int_equal(gw_normalize_traces(request(1, &last), A, &o, &res, &err), GW_OK);
      gw_hist_cache_stats(c, &st);
      if (st.bytes > st.max_bytes)
        fail_msg("call %d: the cache holds %zu bytes, over its %zu", i, st.bytes, st.max_bytes);
      if (again)
        assert_int_equal(st.hits, hits + 3); /* the most recent parts were kept */
    }
  }
  assert_true(st.evictions > 0);
  assert_true(st.entries > 0);
  gw_hist_cache_destroy(c);
}

/* Threads normalizing conversations through one small cache (parts evicted while others read): every
 * prompt_simhash as without it (ASan and the unit run check the rest). */
struct conv_thread {
  struct gw_hist_cache *c;
  GwTraceRequest *req[120];
  char want[120][65];
  int n, bad;
};

static void *conv_thread_run(void *arg)
{
  struct conv_thread *ct = arg;
  struct gw_arena *a = gw_arena_create(8u << 20);
  for (int i = 0; i < ct->n; i++) {
    struct gw_normalize_opts o = {.history_cache = ct->c};
    struct gw_normalize_result res;
    struct gw_err err = {0};
    if (gw_normalize_traces(ct->req[i], a, &o, &res, &err) != GW_OK || res.nrecords != 1 ||
        strcmp(res.records[0].prompt_simhash, ct->want[i]))
      ct->bad++;
    gw_arena_reset(a);
  }
  gw_arena_destroy(a);
  return NULL;
}

static void test_history_cache_threads(void **state)
{
  (void)state;
  enum { NTH = 4 };
  char *t[CONV_NT];
  conv_texts(t);
  struct gw_hist_cache *c = gw_hist_cache_create(48u << 10);
  assert_non_null(c);
  static struct conv_thread ct[NTH];
  pthread_t th[NTH];
  for (int k = 0; k < NTH; k++) {
    ct[k] = (struct conv_thread){.c = c, .n = 120};
    for (int i = 0; i < ct[k].n; i++) {
      GwSpan *sp = conv_span(t, (i * 7 + k) % CONV_NS, (uint8_t)(i + 1), ct[k].want[i]);
      ct[k].req[i] = request(1, &sp);
    }
  }
  for (int k = 0; k < NTH; k++)
    assert_int_equal(pthread_create(&th[k], NULL, conv_thread_run, &ct[k]), 0);
  for (int k = 0; k < NTH; k++) {
    pthread_join(th[k], NULL);
    assert_int_equal(ct[k].bad, 0);
  }
  struct gw_hist_cache_stats st;
  gw_hist_cache_stats(c, &st);
  assert_true(st.hits > 0);
  assert_true(st.bytes <= st.max_bytes);
  gw_hist_cache_destroy(c);
}

/* prompt_hash is the first 8 bytes of the SHA-256 of the record's own prompt_content, in hex, whatever the
 * other spans of the request (prompts are hashed two at a time): 7 spans, one without messages, prompts of
 * lengths on either side of SHA-256's block and padding edges. */
static void test_prompt_hash_per_record(void **state)
{
  (void)state;
  enum { N = 7 };
  static const size_t text_len[N] = {1, 40, 0, 47, 200, 3000, 55};
  GwSpan *spans[N];
  for (size_t i = 0; i < N; i++) {
    char *msg = az(text_len[i] + 100);
    int k = sprintf(msg, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"");
    for (size_t j = 0; j < text_len[i]; j++)
      msg[k++] = (char)('a' + (i * 7 + j) % 26);
    strcpy(msg + k, "\"}]}]");
    size_t nv = 0;
    GwKeyValue **v = kvs(&nv, kv("gen_ai.operation.name", av_str("chat")),
                         text_len[i] ? kv("gen_ai.input.messages", av_str(msg)) : NULL, NULL);
    spans[i] = span((uint8_t)(i + 1), v, nv);
  }
  GwTraceRequest *req = request(N, spans);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, N);
  for (size_t i = 0; i < N; i++) {
    const struct gw_record *r = &res.records[i];
    if (!text_len[i]) {
      assert_null(r->prompt_content);
      assert_string_equal(r->prompt_hash, "");
      continue;
    }
    want_prompt_hash(r, i);
  }
}

/* Two conversations' six turns of tlen bytes each, for convo_json. */
static void convo_turns(char *turn[2][6], size_t tlen)
{
  for (int c = 0; c < 2; c++)
    for (int k = 0; k < 6; k++) {
      turn[c][k] = az(tlen + 1);
      for (size_t j = 0; j < tlen; j++)
        turn[c][k][j] = j % 7 == 6 ? ' ' : (char)('a' + (c * 11 + k * 5 + j * 3) % 26);
    }
}

/* turns [0, n) of conversation c, the last one from conversation c2 (or one byte of turn 1 changed: tweak 1) */
static const char *convo_json(char *turn[2][6], size_t tlen, int c, int n, int tweak, int c2_last)
{
  struct gw_sb js;
  gw_sb_init(&js, A);
  gw_sb_puts(&js, "[");
  for (int k = 0; k < n; k++) {
    const char *text = k == n - 1 && c2_last >= 0 ? turn[c2_last][k] : turn[c][k];
    gw_sb_puts(&js, k ? ",{\"role\":\"" : "{\"role\":\"");
    gw_sb_puts(&js, k % 2 ? "assistant" : "user");
    gw_sb_puts(&js, "\",\"parts\":[{\"type\":\"text\",\"content\":\"");
    size_t at = js.len;
    gw_sb_putn(&js, text, tlen);
    if (tweak == 1 && k == 1)
      js.buf[at + 300] = 'Z';
    gw_sb_puts(&js, "\"}]}");
  }
  gw_sb_puts(&js, "]");
  return gw_sb_finish(&js);
}

static void check_prompt_hashes(GwSpan **spans, size_t ns)
{
  GwTraceRequest *req = request(ns, spans);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, ns);
  for (size_t i = 0; i < ns; i++) {
    const struct gw_record *r = &res.records[i];
    want_prompt_hash(r, i);
  }
}

/* Prompts that begin with earlier ones (two conversations' calls interleaved, each resending its earlier
 * turns; a call whose history differs in one byte or only in its last turn) resume their SHA-256 from the
 * earlier prompt's state: each prompt_hash must still be its own prompt_content's. Then a prompt resuming
 * from one that itself resumed, within the prefix that one took over (its copied checkpoints), once the
 * first is no longer among the prompts looked at. */
static void test_prompt_hash_shared_prefixes(void **state)
{
  (void)state;
  enum { TURNS = 6, TLEN = 700, NS = 10 };
  char *turn[2][TURNS];
  convo_turns(turn, TLEN);
  /* conversation, turns, and a tweak: 1 = one byte of turn 1 changed, 2 = the last turn another's */
  static const int plan[NS][3] = {{0, 1, 0}, {0, 3, 0}, {1, 1, 0}, {0, 5, 0}, {1, 3, 0},
                                  {1, 5, 0}, {0, 5, 2}, {0, 3, 1}, {0, 6, 0}, {1, 6, 1}};
  GwSpan *spans[NS];
  for (int i = 0; i < NS; i++) {
    int c = plan[i][0];
    size_t nv = 0;
    GwKeyValue **v = kvs(&nv, kv("gen_ai.operation.name", av_str("chat")),
                         kv("gen_ai.input.messages",
                            av_str(convo_json(turn, TLEN, c, plan[i][1], plan[i][2], plan[i][2] == 2 ? 1 - c : -1))),
                         NULL);
    spans[i] = span((uint8_t)(i + 1), v, nv);
  }
  check_prompt_hashes(spans, NS);
  /* lane one: Q (5 turns), X (Q + 1 turn: resumes from Q), three others (Q leaves the recent ones), Y (Q's
   * first 3 turns then another: its longest prefix is X's checkpoints copied from Q); lane two: the same */
  static const int plan2[6][3] = {{0, 5, -1}, {0, 6, -1}, {1, 1, -1}, {1, 2, -1}, {1, 3, -1}, {0, 4, 1}};
  GwSpan *spans2[12];
  for (int i = 0; i < 12; i++) {
    const int *pl = plan2[i % 6];
    size_t nv = 0;
    GwKeyValue **v = kvs(&nv, kv("gen_ai.operation.name", av_str("chat")),
                         kv("gen_ai.input.messages", av_str(convo_json(turn, TLEN, pl[0], pl[1], 0, pl[2]))), NULL);
    spans2[i] = span((uint8_t)(i + 1), v, nv);
  }
  check_prompt_hashes(spans2, 12);
}

/* One request of the given calls (convo_json's c, n, tweak, c2_last) through cache hc: every prompt_hash
 * its own prompt_content's. */
static void prompt_hash_request(struct gw_hist_cache *hc, char *turn[2][6], size_t tlen, const int (*plan)[4],
                                size_t ns)
{
  GwSpan *spans[8];
  assert_true(ns <= 8);
  for (size_t i = 0; i < ns; i++) {
    size_t nv = 0;
    GwKeyValue **v = kvs(&nv, kv("gen_ai.operation.name", av_str("chat")),
                         kv("gen_ai.input.messages",
                            av_str(convo_json(turn, tlen, plan[i][0], plan[i][1], plan[i][2], plan[i][3]))),
                         NULL);
    spans[i] = span((uint8_t)(i + 1), v, nv);
  }
  struct gw_normalize_opts o = {.history_cache = hc};
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(request(ns, spans), A, &o, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, ns);
  for (size_t i = 0; i < ns; i++)
    want_prompt_hash(&res.records[i], i);
}

/* A chat's prompts in separate requests resume their SHA-256 from an earlier request's prompt kept in the
 * history cache: every prompt_hash its own prompt's, prompts of two messages not kept, a prompt whose
 * history differs in one byte not resumed, and a prompt resumed that way (its earlier checkpoints unknown)
 * never lent to a later prompt of its lane that shares less of it. */
static void test_prompt_hash_across_requests(void **state)
{
  (void)state;
  enum { TURNS = 6, TLEN = 700 };
  char *turn[2][TURNS];
  convo_turns(turn, TLEN);
  struct gw_hist_cache *hc = gw_hist_cache_create(1u << 20);
  assert_non_null(hc);
  struct gw_hist_cache_stats st;
  /* two messages: not a chat under way, not kept */
  prompt_hash_request(hc, turn, TLEN, (const int[][4]){{0, 2, 0, -1}}, 1);
  gw_hist_cache_stats(hc, &st);
  assert_int_equal(st.prefixes, 0);
  /* three: kept (up to its last checkpoint before the closing ']'), where the SHA-256 can resume */
  prompt_hash_request(hc, turn, TLEN, (const int[][4]){{0, 3, 0, -1}}, 1);
  gw_hist_cache_stats(hc, &st);
  assert_int_equal(st.prefixes, gw_sha256_resumable() ? 1 : 0);
  assert_int_equal(st.prefix_hits, 0);
  /* lane one: conversation 0's five turns (resumes from the kept three: checkpoints 1-3 unknown), then its
   * first turn and conversation 1's second (shares one checkpoint with the first: hashed whole); lane two:
   * conversation 1's three turns, then five (resumes within the request) */
  if (gw_sha256_resumable()) {
    prompt_hash_request(hc, turn, TLEN, (const int[][4]){{0, 5, 0, -1}, {0, 2, 0, 1}, {1, 3, 0, -1}, {1, 5, 0, -1}}, 4);
    gw_hist_cache_stats(hc, &st);
    assert_int_equal(st.prefix_hits, 1);
    /* one byte of turn 1 changed: the kept five do not match */
    uint64_t hits = st.prefix_hits;
    prompt_hash_request(hc, turn, TLEN, (const int[][4]){{1, 6, 1, -1}}, 1);
    gw_hist_cache_stats(hc, &st);
    assert_int_equal(st.prefix_hits, hits);
    /* conversation 1's six turns: resume from its five, kept by the request before last */
    prompt_hash_request(hc, turn, TLEN, (const int[][4]){{1, 6, 0, -1}}, 1);
    gw_hist_cache_stats(hc, &st);
    assert_int_equal(st.prefix_hits, hits + 1);
    assert_true(st.bytes <= st.max_bytes);
  }
  /* without the SHA extensions nothing resumes and nothing is kept: the same hashes */
  gw_hist_cache_clear(hc);
  gw_sha256_no_ni = true;
  prompt_hash_request(hc, turn, TLEN, (const int[][4]){{0, 3, 0, -1}}, 1);
  prompt_hash_request(hc, turn, TLEN, (const int[][4]){{0, 5, 0, -1}}, 1);
  gw_sha256_no_ni = false;
  gw_hist_cache_stats(hc, &st);
  assert_int_equal(st.prefixes, 0);
  gw_hist_cache_destroy(hc);
}

/* Prefixes made to collide: the prefix keys are CRC-32s, which a client can match at will (CRC-32 is
 * linear: for texts of one length, crc(x ^ d) == crc(x) whenever d's own contribution is 0). Eight kept
 * prefixes with the key of a prompt's longest checkpoint, each unlike the prompt only in its last bytes
 * (so every compare reads it all): the look-up compares no more than four times the prompt's bytes, and
 * the prompt_hash is still its own. */
static void test_prompt_prefix_collisions(void **state)
{
  (void)state;
  enum { K = 8, LEN = K * GW_SHA256_CK };
  char *x = az(LEN + 1);
  for (int j = 0; j < LEN; j++)
    x[j] = (char)('a' + (j * 7 + j / 13) % 26);
  /* L(e_i) for the 64 bits of the last 8 bytes, and the combinations of them that L takes to 0 */
  uint32_t base = gw_crc32(0, x, LEN), v[64];
  uint64_t comb[64];
  for (int i = 0; i < 64; i++) {
    x[LEN - 8 + i / 8] ^= (char)(1u << (i % 8));
    v[i] = gw_crc32(0, x, LEN) ^ base;
    x[LEN - 8 + i / 8] ^= (char)(1u << (i % 8));
    comb[i] = 1ull << i;
  }
  uint64_t kernel[64];
  int nk = 0;
  for (int bit = 31, row = 0; bit >= 0 || row < 64;) { /* Gaussian elimination over GF(2) */
    int piv = -1;
    for (int i = row; bit >= 0 && i < 64; i++)
      if (v[i] >> bit & 1) {
        piv = i;
        break;
      }
    if (bit < 0) {
      for (int i = row; i < 64; i++)
        if (!v[i])
          kernel[nk++] = comb[i];
      break;
    }
    if (piv >= 0) {
      uint32_t tv = v[piv];
      uint64_t tc = comb[piv];
      v[piv] = v[row], comb[piv] = comb[row];
      v[row] = tv, comb[row] = tc;
      for (int i = 0; i < 64; i++)
        if (i != row && (v[i] >> bit & 1))
          v[i] ^= v[row], comb[i] ^= comb[row];
      row++;
    }
    bit--;
  }
  assert_true(nk >= 8);
  struct gw_hist_cache *hc = gw_hist_cache_create(64u << 20);
  assert_non_null(hc);
  struct gw_sha256_mid junk;
  memset(&junk, 0x5a, sizeof junk);
  for (int t = 0; t < 8; t++) {
    char *y = az(LEN);
    memcpy(y, x, LEN);
    for (int i = 0; i < 64; i++)
      if (kernel[t] >> i & 1)
        y[LEN - 8 + i / 8] ^= (char)(1u << (i % 8));
    assert_memory_not_equal(x, y, LEN);
    assert_int_equal(gw_crc32(0, y, LEN), base);
    nz_phc_put(hc, y, K, &junk);
  }
  struct gw_hist_cache_stats st;
  gw_hist_cache_stats(hc, &st);
  assert_int_equal(st.prefixes, 8);
  uint64_t before = st.compares;
  /* a prompt of x and a little more: its longest checkpoint is K, where the eight wait */
  struct gw_sha256_mid out;
  size_t n = LEN + 100;
  char *p = az(n);
  memcpy(p, x, LEN);
  memset(p + LEN, 'q', 100);
  assert_int_equal(nz_phc_get(hc, p, n, 1, &out), 0);
  gw_hist_cache_stats(hc, &st);
  assert_true(st.compares - before <= 4 * n / LEN);
  assert_true(st.compares - before >= 1);
  gw_hist_cache_destroy(hc);
}

static void test_semconv_deprecated(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r =
    one(&res, SPAN(kv("gen_ai.system", av_str("anthropic")), kv("gen_ai.request.model", av_str("claude-3")),
                   kv("gen_ai.usage.prompt_tokens", av_int(10)), kv("gen_ai.usage.completion_tokens", av_int(5)),
                   kv("gen_ai.openai.request.seed", av_int(42))));
  assert_string_equal(r->provider, "anthropic");
  assert_int_equal(r->input_tokens.v, 10);
  assert_int_equal(r->output_tokens.v, 5);
  assert_true(r->total_tokens.set);
  assert_int_equal(r->total_tokens.v, 15);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOTAL_DERIVED));
  assert_string_equal(r->dialect, "semconv");
  assert_string_equal(r->parameters, "{\"seed\":42}");
  assert_null(r->operation);

  /* Current names win over deprecated ones whatever their order. */
  r = one(&res, SPAN(kv("gen_ai.usage.prompt_tokens", av_int(10)), kv("gen_ai.usage.input_tokens", av_int(11)),
                     kv("gen_ai.system", av_str("openai")), kv("gen_ai.provider.name", av_str("azure.ai.openai"))));
  assert_int_equal(r->input_tokens.v, 11);
  assert_string_equal(r->provider, "azure.ai.openai");
  assert_null(r->dialect);
}

static void test_openllmetry(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(
    &res, SPAN(kv("llm.request.type", av_str("completion")), kv("gen_ai.request.model", av_str("gpt-3.5-turbo-instruct")),
               kv("gen_ai.usage.input_tokens", av_int(20)), kv("gen_ai.usage.output_tokens", av_int(9)),
               kv("gen_ai.usage.cache_read_input_tokens", av_int(7)),
               kv("gen_ai.usage.cache_creation_input_tokens", av_int(3)), kv("llm.usage.total_tokens", av_int(99)),
               kv("gen_ai.prompt.1.role", av_str("user")), kv("gen_ai.prompt.1.content", av_str("Say \"hi\"")),
               kv("gen_ai.prompt.0.role", av_str("system")), kv("gen_ai.prompt.0.content", av_str("Be brief.")),
               kv("gen_ai.completion.0.role", av_str("assistant")), kv("gen_ai.completion.0.content", av_str("hi")),
               kv("gen_ai.completion.0.finish_reason", av_str("stop")),
               kv("traceloop.association.properties.session_id", av_str("s-1")),
               kv("traceloop.association.properties.user_id", av_str("u-1")), kv("llm.is_streaming", av_bool(false))));
  assert_string_equal(r->operation, "text_completion");
  assert_int_equal(r->cache_read_tokens.v, 7);
  assert_int_equal(r->cache_write_tokens.v, 3);
  assert_int_equal(r->total_tokens.v, 99);
  assert_false(gw_record_has_flag(r, GW_FLAG_TOTAL_DERIVED));
  assert_string_equal(r->prompt_content, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be brief.\"}]},"
                                         "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"Say \\\"hi\\\"\"}]}]");
  assert_string_equal(r->response_content, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"hi\"}],"
                                           "\"finish_reason\":\"stop\"}]");
  assert_string_equal(r->system_prompt, "Be brief.");
  assert_int_equal(r->finish_reasons.n, 1);
  assert_string_equal(r->finish_reasons.v[0], "stop");
  assert_string_equal(r->session_id, "s-1");
  assert_string_equal(r->user_id, "u-1");
  assert_int_equal(r->streaming, 0);
}

/* A span carrying a semconv model and an OpenInference one (a framework instrumented twice) is priced on
 * the semconv name, in SPEC-FACTS' order: gen_ai.response.model, gen_ai.request.model, then llm.*. */
static void test_model_precedence_mixed(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat")),
                                             kv("gen_ai.request.model", av_str("gpt-4o")),
                                             kv("llm.model_name", av_str("some-oi-name"))));
  assert_string_equal(r->model_id, "gpt-4o");
  assert_string_equal(r->dialect, "semconv");
  assert_string_equal(r->request_model, "gpt-4o");
  r = one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat")), kv("gen_ai.request.model", av_str("gpt-4o")),
                     kv("gen_ai.response.model", av_str("gpt-4o-2024-08-06")),
                     kv("llm.model_name", av_str("some-oi-name"))));
  assert_string_equal(r->model_id, "gpt-4o-2024-08-06");
  assert_string_equal(r->response_model, "gpt-4o-2024-08-06");
  r = one(&res, SPAN(kv("openinference.span.kind", av_str("LLM")), kv("llm.model_name", av_str("oi-only"))));
  assert_string_equal(r->model_id, "oi-only");
  assert_string_equal(r->dialect, "openinference");
}

static void test_openinference(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(
    &res,
    SPAN(kv("openinference.span.kind", av_str("LLM")), kv("llm.model_name", av_str("gpt-4o-2024-08-06")),
         kv("llm.system", av_str("openai")), kv("llm.token_count.prompt", av_int(30)),
         kv("llm.token_count.completion", av_int(12)), kv("llm.token_count.total", av_int(42)),
         kv("llm.token_count.prompt_details.cache_read", av_int(8)),
         kv("llm.token_count.completion_details.reasoning", av_int(4)),
         kv("llm.invocation_parameters",
            av_str("{\"model\":\"gpt-4o\",\"temperature\":0.5,\"max_tokens\":100,\"stream\":true,\"stop\":[\"\\n\"]}")),
         kv("input.value", av_str("{\"messages\":[{\"role\":\"user\",\"content\":\"raw\"}]}")),
         kv("llm.input_messages.1.message.role", av_str("user")),
         kv("llm.input_messages.1.message.content", av_str("second")),
         kv("llm.input_messages.0.message.role", av_str("system")),
         kv("llm.input_messages.0.message.content", av_str("first")),
         kv("llm.output_messages.0.message.role", av_str("assistant")),
         kv("llm.output_messages.0.message.tool_calls.0.tool_call.function.name", av_str("lookup")),
         kv("llm.output_messages.0.message.tool_calls.0.tool_call.id", av_str("call_1")),
         kv("session.id", av_str("sess")), kv("user.id", av_str("usr"))));
  assert_string_equal(r->operation, "chat");
  assert_string_equal(r->provider, "openai");
  assert_string_equal(r->request_model, "gpt-4o");
  assert_string_equal(r->response_model, "gpt-4o-2024-08-06");
  assert_string_equal(r->dialect, "openinference");
  assert_int_equal(r->input_tokens.v, 30);
  assert_int_equal(r->output_tokens.v, 12);
  assert_int_equal(r->total_tokens.v, 42);
  assert_int_equal(r->cache_read_tokens.v, 8);
  assert_int_equal(r->reasoning_tokens.v, 4);
  assert_int_equal(r->streaming, 1);
  assert_string_equal(r->parameters,
                      "{\"temperature\":0.5,\"max_tokens\":100,\"stop_sequences\":[\"\\n\"]}");
  /* llm.input_messages preferred over input.value, ordered by index. */
  assert_string_equal(r->prompt_content,
                      "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"first\"}]},"
                      "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"second\"}]}]");
  assert_string_equal(r->response_content, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":"
                                           "\"call_1\",\"name\":\"lookup\"}]}]");
  assert_string_equal(r->session_id, "sess");
  assert_string_equal(r->user_id, "usr");

  /* Without message attributes, the raw input.value request JSON is read. */
  r = one(&res, SPAN(kv("openinference.span.kind", av_str("LLM")),
                     kv("input.value", av_str("{\"messages\":[{\"role\":\"user\",\"content\":\"raw\"}]}")),
                     kv("output.value", av_str("plain answer"))));
  assert_string_equal(r->prompt_content, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"raw\"}]}]");
  assert_string_equal(r->response_content,
                      "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"plain answer\"}]}]");
  assert_true(gw_record_has_flag(r, GW_FLAG_MODEL_MISSING));
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_MISSING));
}

static void test_langfuse_usage_exclusive(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(
    &res, SPAN(kv("langfuse.observation.type", av_str("generation")),
               kv("gen_ai.usage.input_tokens", av_int(1000)),
               kv("langfuse.observation.usage_details",
                  av_str("{\"input\":10,\"output\":5,\"input_cached_tokens\":4,\"input_cache_creation\":1,"
                         "\"output_reasoning_tokens\":2,\"total\":22}"))));
  assert_string_equal(r->operation, "chat");
  assert_int_equal(r->input_tokens.v, 15);
  assert_int_equal(r->output_tokens.v, 7);
  assert_int_equal(r->cache_read_tokens.v, 4);
  assert_int_equal(r->cache_write_tokens.v, 1);
  assert_int_equal(r->reasoning_tokens.v, 2);
  assert_int_equal(r->total_tokens.v, 22);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_CONVERTED));
  assert_false(gw_record_has_flag(r, GW_FLAG_TOTAL_DERIVED));

  r = one(&res, SPAN(kv("langfuse.observation.usage_details", av_str("{not json"))));
  assert_true(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));
  assert_false(r->input_tokens.set);
}

/* Issue 11: token counts whose sum does not fit are not added. The derived total was input + output in
 * int64 (a UBSan abort; a wrapped negative total in Release), and so were Langfuse's exclusive buckets.
 * Every count and sum is now bounded by the int columns (GW_TOKENS_MAX). */
static void test_issue11_token_sum_overflow(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat")),
                                             kv("gen_ai.usage.input_tokens", av_int(INT64_MAX)),
                                             kv("gen_ai.usage.output_tokens", av_int(1))));
  assert_false(r->input_tokens.set);
  assert_int_equal(r->output_tokens.v, 1);
  assert_false(r->total_tokens.set); /* never output alone: the input was reported */
  assert_false(gw_record_has_flag(r, GW_FLAG_TOTAL_DERIVED));
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE));

  r = one(&res, SPAN(kv("langfuse.observation.usage_details",
                        av_str("{\"input\":9223372036854775807,\"input_cached_tokens\":1,"
                               "\"output\":2147483646,\"output_reasoning_tokens\":1,"
                               "\"output_audio_tokens\":1}"))));
  assert_false(r->input_tokens.set);
  assert_false(r->output_tokens.set);
  assert_false(r->total_tokens.set);
  assert_int_equal(r->cache_read_tokens.v, 1);
  assert_int_equal(r->reasoning_tokens.v, 1);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE));
  assert_false(gw_record_has_flag(r, GW_FLAG_TOKENS_CONVERTED));

  /* The largest sums that fit are still added; one more is out of range. */
  r = one(&res, SPAN(kv("gen_ai.usage.input_tokens", av_int(INT32_MAX - 1)), kv("gen_ai.usage.output_tokens", av_int(1))));
  assert_int_equal(r->total_tokens.v, INT32_MAX);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOTAL_DERIVED));
  assert_false(gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE));
  r = one(&res, SPAN(kv("gen_ai.usage.input_tokens", av_int(INT32_MAX)), kv("gen_ai.usage.output_tokens", av_int(1))));
  assert_int_equal(r->input_tokens.v, INT32_MAX);
  assert_int_equal(r->output_tokens.v, 1);
  assert_false(r->total_tokens.set);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE));
}

/* Issue 11 item 4: a token count no int column holds (3000000000) was stored as it came, and Postgres
 * refused every such row at the cost of a batch split. A count outside [0, 2^31 - 1] is now NULL and
 * flagged tokens_out_of_range, whatever its encoding and dialect, and no total is derived around it. */
static void test_issue11_tokens_out_of_range(void **state)
{
  (void)state;
  /* In range: up to 2^31 - 11, so that the total with the 10 output tokens is at most 2^31 - 1. */
  struct {
    GwAnyValue *v;
    bool in_range;
  } vals[] = {
    {av_int(3000000000ll), false},        {av_int(-5), false},          {av_int(2147483648ll), false},
    {av_int(INT64_MIN), false},           {av_dbl(3e9), false},         {av_dbl(-1.0), false},
    {av_dbl(1e300), false},               {av_str("3000000000"), false}, {av_str("-7"), false},
    {av_str("99999999999999999999"), false}, {av_int(2147483637ll), true}, {av_dbl(2147483637.0), true},
    {av_str("2147483637"), true},          {av_int(0), true},
  };
  static const char *const keys[] = {"gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens",
                                     "llm.token_count.prompt"};
  struct gw_normalize_result res;
  for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
      const struct gw_record *r = one(&res, SPAN(kv("gen_ai.operation.name", av_str("chat")), kv(keys[k], vals[i].v),
                                                 kv("gen_ai.usage.output_tokens", av_int(10))));
      bool oor = gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE);
      if (vals[i].in_range != r->input_tokens.set || oor == vals[i].in_range ||
          r->total_tokens.set != vals[i].in_range || gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE) ||
          gw_record_has_flag(r, GW_FLAG_TOKENS_MISSING) || r->output_tokens.v != 10)
        fail_msg("%s case %zu: input set %d (%lld), total set %d, tokens_out_of_range %d, flags %#x", keys[k], i,
                 r->input_tokens.set, (long long)r->input_tokens.v, r->total_tokens.set, oor, r->flags);
    }

  /* Each token field: dropped alone; a reported total out of range is not replaced by a derived one. */
  const struct gw_record *r =
    one(&res, SPAN(kv("gen_ai.usage.input_tokens", av_int(100)), kv("gen_ai.usage.output_tokens", av_int(3000000000ll)),
                   kv("gen_ai.usage.cache_read.input_tokens", av_int(-1)),
                   kv("gen_ai.usage.reasoning.output_tokens", av_int(5000000000ll)),
                   kv("llm.usage.total_tokens", av_int(9000000000ll))));
  assert_int_equal(r->input_tokens.v, 100);
  assert_false(r->output_tokens.set);
  assert_false(r->cache_read_tokens.set);
  assert_false(r->reasoning_tokens.set);
  assert_false(r->total_tokens.set);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE));
  r = one(&res, SPAN(kv("gen_ai.usage.input_tokens", av_int(100)), kv("gen_ai.usage.output_tokens", av_int(10)),
                     kv("llm.usage.total_tokens", av_int(9000000000ll))));
  assert_false(r->total_tokens.set);
  assert_false(gw_record_has_flag(r, GW_FLAG_TOTAL_DERIVED));

  /* An out-of-range value falls through to the next dialect's key, as a malformed one does. */
  r = one(&res, SPAN(kv("gen_ai.usage.input_tokens", av_int(3000000000ll)), kv("llm.token_count.prompt", av_int(42))));
  assert_int_equal(r->input_tokens.v, 42);
  assert_true(gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE));

  /* Langfuse usage_details: an exclusive bucket, a part of the inclusive sum, or the sum itself. */
  static const char *const lf[] = {
    "{\"input\":3000000000,\"output\":10}",
    "{\"input\":10,\"input_cached_tokens\":3000000000,\"output\":10}",
    "{\"input\":2000000000,\"input_cache_creation\":200000000,\"output\":10}",
    "{\"input\":-10,\"output\":10}",
  };
  for (size_t i = 0; i < sizeof lf / sizeof lf[0]; i++) {
    r = one(&res, SPAN(kv("langfuse.observation.usage_details", av_str(lf[i]))));
    if (r->input_tokens.set || r->total_tokens.set || r->output_tokens.v != 10 ||
        !gw_record_has_flag(r, GW_FLAG_TOKENS_OUT_OF_RANGE))
      fail_msg("%s: input set %d (%lld), total set %d, flags %#x", lf[i], r->input_tokens.set,
               (long long)r->input_tokens.v, r->total_tokens.set, r->flags);
  }
  r = one(&res, SPAN(kv("langfuse.observation.usage_details", av_str("{\"input\":10,\"total\":3000000000}")),
                     kv("gen_ai.usage.output_tokens", av_int(5))));
  assert_int_equal(r->input_tokens.v, 10);
  assert_false(r->total_tokens.set);
}

static GwAnyValue *structured_messages(void)
{
  size_t np, nm;
  GwKeyValue **part = kvs(&np, kv("type", av_str("text")), kv("content", av_str("hello")), NULL);
  GwAnyValue *parts = av_array(1, (GwAnyValue *[]){av_kvlist(part, np)});
  GwKeyValue **msg = kvs(&nm, kv("role", av_str("user")), kv("parts", parts), NULL);
  return av_array(1, (GwAnyValue *[]){av_kvlist(msg, nm)});
}

#define HELLO_PROMPT "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hello\"}]}]"
/* printf '%s' "$HELLO_PROMPT" | sha256sum | cut -c1-16 */
#define HELLO_HASH "5ff9eed7b20c83ae"

static void test_structured_vs_string_messages(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r = one(&res, SPAN(kv("gen_ai.input.messages", structured_messages())));
  assert_string_equal(r->prompt_content, HELLO_PROMPT);
  assert_string_equal(r->prompt_hash, HELLO_HASH);
  r = one(&res, SPAN(kv("gen_ai.input.messages", av_str(HELLO_PROMPT))));
  assert_string_equal(r->prompt_content, HELLO_PROMPT);
  assert_string_equal(r->prompt_hash, HELLO_HASH);
  /* OpenAI-shaped JSON converges on the same canonical content and hash. */
  r = one(&res, SPAN(kv("gen_ai.input.messages", av_str("[{\"role\":\"user\",\"content\":\"hello\"}]"))));
  assert_string_equal(r->prompt_content, HELLO_PROMPT);
  assert_string_equal(r->prompt_hash, HELLO_HASH);
  /* Unparsable JSON: no content, flagged. */
  r = one(&res, SPAN(kv("gen_ai.input.messages", av_str("[{\"role\":"))));
  assert_null(r->prompt_content);
  assert_string_equal(r->prompt_hash, "");
  assert_true(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));
}

/* gen_ai.input/output.messages of the usual shape are read without json-c; everything else goes through
 * json-c. Both paths must give the same record, byte for byte: each value here is normalized both ways
 * (as input and as output messages) and compared, and `fast` says which path it must take. */
static const struct {
  const char *json;
  bool fast;
} msg_cases[] = {
  {HELLO_PROMPT, true},
  {"[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be brief.\"}]},{\"role\":\"user\",\"parts\":"
   "[{\"type\":\"text\",\"content\":\"one\"},{\"type\":\"text\",\"content\":\"two\"}]},{\"role\":\"assistant\","
   "\"parts\":[{\"type\":\"reasoning\",\"content\":\"hm\"},{\"type\":\"text\",\"content\":\"three\"}],\"name\":\"bot\","
   "\"finish_reason\":\"stop\"}]", true},
  {"[ {\"role\" : \"user\" ,\n \"parts\" :\t[ {\"content\":\"hi\", \"type\":\"text\"} ] } ,{\"parts\":[],"
   "\"role\":\"tool\"}\r]", true},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"text\":\"openai style part\"}]}]", true},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\u0001 e\"}]}]",
   true},
  {"[{\"role\":\"us\\u0065r\",\"parts\":[{\"type\":\"text\",\"content\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 "
   "long enough to cross a few words of the scanner\"}]}]", true},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"sixteen bytes ok, \\\"quoted\\\" after the first "
   "block, caf\xc3\xa9 in the third, a tab\\tand a newline\\nfurther on, then \\u00e9 and a long plain tail "
   "to finish the string\"}]}]", true},
  {"[]", true},
  {"[{}]", true},
  {"[{\"role\":\"\",\"parts\":[{\"type\":\"text\",\"content\":\"\"}],\"name\":\"\",\"finish_reason\":\"\"}]", true},
  {"[{\"role\":\"user\",\"content\":\"hello\"}]", false},
  {"[{\"role\":\"user\",\"role\":\"assistant\",\"parts\":[]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"image\",\"content\":\"x\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"te\\u0078t\",\"content\":\"x\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"nul \\u0000 here\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"lone \\ud800 here\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"pair \\ud83d\\ude00 here\"}]}]", false},
  {" " HELLO_PROMPT, false},
  {HELLO_PROMPT " ", false},
  {"[{\"role\":", false},
  {"[{\"role\":\"user\",\"parts\":[]},]", false},
  {"{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"object at the top\"}]}", false},
  {"[{\"role\":null,\"parts\":[]}]", false},
  {"[{\"role\":7,\"parts\":[]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"raw \x01 control\"}]}]", false},
  {"[{\"ro\\u006ce\":\"user\",\"parts\":[]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"bad \xff byte\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[\"a bare string part\"]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"x\",\"extra\":1}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"x\",\"text\":\"y\"}]}]", false},
  {"[{\"role\":\"assistant\",\"parts\":[{\"type\":\"tool_call\",\"id\":\"c1\",\"name\":\"f\",\"arguments\":{\"a\":1}}]}]",
   false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"bad escape \\q\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"short \\u12\"}]}]", false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"unterminated}]}]", false},
};

static void assert_same_str(const char *a, const char *b, const char *what, size_t i)
{
  if ((a == NULL) != (b == NULL) || (a && strcmp(a, b)))
    fail_msg("case %zu %s: direct %s, json-c %s", i, what, a ? a : "NULL", b ? b : "NULL");
}

static void test_messages_direct_vs_json_c(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof msg_cases / sizeof msg_cases[0]; i++) {
    struct gw_record got[2];
    for (int pass = 0; pass < 2; pass++) {
      struct gw_normalize_result res;
      nz_fast_json = pass == 0;
      uint64_t reads = nz_fast_json_reads;
      got[pass] = *one(&res, SPAN(kv("gen_ai.input.messages", av_str(msg_cases[i].json)),
                                  kv("gen_ai.output.messages", av_str(msg_cases[i].json))));
      if (pass == 0 && (nz_fast_json_reads - reads == 2) != msg_cases[i].fast)
        fail_msg("case %zu: read %s, want %s", i, nz_fast_json_reads - reads == 2 ? "directly" : "by json-c",
                 msg_cases[i].fast ? "directly" : "by json-c");
    }
    nz_fast_json = true;
    assert_same_str(got[0].prompt_content, got[1].prompt_content, "prompt_content", i);
    assert_same_str(got[0].response_content, got[1].response_content, "response_content", i);
    assert_same_str(got[0].system_prompt, got[1].system_prompt, "system_prompt", i);
    assert_same_str(got[0].attributes, got[1].attributes, "attributes", i);
    assert_string_equal(got[0].prompt_hash, got[1].prompt_hash);
    assert_int_equal(got[0].flags, got[1].flags);
    assert_int_equal(got[0].finish_reasons.n, got[1].finish_reasons.n);
    for (uint32_t k = 0; k < got[0].finish_reasons.n; k++)
      assert_string_equal(got[0].finish_reasons.v[k], got[1].finish_reasons.v[k]);
    assert_valid_json(got[0].prompt_content);
    assert_valid_json(got[0].response_content);
  }
}

/* A message attribute already in the form prompt_content is rendered in (no whitespace, keys in the rendered
 * order, escapes as rendered) is stored as it is, not rendered again; anything else is rendered. Each case
 * is normalized with the reuse and without it: the columns must be the same bytes, and the reuse must have
 * happened exactly where the case says (the column is then the attribute's own string). */
static const struct {
  const char *json;
  bool in, out; /* reused as prompt_content, as response_content */
} raw_cases[] = {
  {HELLO_PROMPT, true, true},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"q\\\"b\\\\s\\n\\r\\t\\u0001\\u001f \x7f caf\xc3\xa9\"}]}]",
   true, true},
  {"[{\"role\":\"assistant\",\"parts\":[{\"type\":\"reasoning\",\"content\":\"hm\"},{\"type\":\"text\",\"content\":\"ok\"}],"
   "\"name\":\"bot\",\"finish_reason\":\"stop\"}]",
   false, true}, /* the input rendering leaves finish_reason out */
  {"[{\"role\":\"user\",\"parts\":[],\"name\":\"n\"},{\"role\":\"tool\",\"parts\":[]}]", true, true},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\u001F upper-case hex\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\u000a written as \\\\n\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\b written as \\\\u0008\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\f written as \\\\u000c\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\/ written as /\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\u00e9 escaped\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"\\u007f escaped\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"content\":\"x\",\"type\":\"text\"}]}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"text\":\"x\"}]}]", false, false},
  {"[{\"parts\":[],\"role\":\"user\"}]", false, false},
  {"[{\"role\":\"user\",\"name\":\"n\",\"parts\":[]}]", false, false},
  {"[{\"role\":\"user\"}]", false, false},
  {"[{\"parts\":[]}]", false, false},
  {"[{}]", false, false},
  {"[{\"role\":\"assistant\",\"parts\":[],\"finish_reason\":\"stop\",\"name\":\"n\"}]", false, false},
  {"[{\"role\":\"user\",\"parts\":[]} ]", false, false},
  {"[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"x\"}]},\n{\"role\":\"user\",\"parts\":[]}]", false, false},
  {"[{\"role\":\"us\\u0065r\",\"parts\":[]}]", false, false},
};

static const char *attr_str(const GwSpan *sp, const char *key)
{
  for (size_t i = 0; i < sp->n_attributes; i++)
    if (!strcmp(sp->attributes[i]->key, key))
      return sp->attributes[i]->value->string_value;
  return NULL;
}

static void test_messages_rendered_form_reused(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof raw_cases / sizeof raw_cases[0]; i++) {
    struct gw_record got[2];
    for (int pass = 0; pass < 2; pass++) {
      struct gw_normalize_result res;
      nz_reuse_raw = pass == 0;
      got[pass] = *one(&res, SPAN(kv("gen_ai.input.messages", av_str(raw_cases[i].json)),
                                  kv("gen_ai.output.messages", av_str(raw_cases[i].json))));
      if (pass == 0) {
        bool in = got[0].prompt_content && got[0].prompt_content == attr_str(got[0].span, "gen_ai.input.messages");
        bool out =
          got[0].response_content && got[0].response_content == attr_str(got[0].span, "gen_ai.output.messages");
        if (in != raw_cases[i].in || out != raw_cases[i].out)
          fail_msg("case %zu: reused as prompt %d, as response %d; want %d, %d", i, in, out, raw_cases[i].in,
                   raw_cases[i].out);
      }
    }
    nz_reuse_raw = true;
    assert_same_str(got[0].prompt_content, got[1].prompt_content, "prompt_content (reuse / render)", i);
    assert_same_str(got[0].response_content, got[1].response_content, "response_content (reuse / render)", i);
    assert_string_equal(got[0].prompt_hash, got[1].prompt_hash);
    assert_string_equal(got[0].prompt_simhash, got[1].prompt_simhash);
  }
  /* finish reasons from gen_ai.response.finish_reasons fill messages that have none: rendered, not reused */
  struct gw_normalize_result res;
  const char *no_reason = "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"ok\"}]}]";
  GwAnyValue *stop = av_str("stop");
  const struct gw_record *r = one(&res, SPAN(kv("gen_ai.output.messages", av_str(no_reason)),
                                             kv("gen_ai.response.finish_reasons", av_array(1, &stop))));
  assert_string_equal(r->response_content, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":"
                                           "\"ok\"}],\"finish_reason\":\"stop\"}]");
  /* system instructions given apart are put first: rendered, not reused */
  r = one(&res, SPAN(kv("gen_ai.system_instructions", av_str("[{\"type\":\"text\",\"content\":\"Be kind.\"}]")),
                     kv("gen_ai.input.messages", av_str(HELLO_PROMPT))));
  assert_string_equal(r->prompt_content, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be kind.\"}]},"
                                         "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hello\"}]}]");
}

/* Doubles are written short when 15 digits give the value back, else with 17; the texts of recent values
 * are cached per thread: values that share a cache slot, written in turns, keep their own text. */
static void test_double_text(void **state)
{
  (void)state;
  static const struct {
    double d;
    const char *want;
  } cases[] = {
    {0.2, "0.2"}, {1.0, "1.0"}, {-3.0, "-3.0"}, {0.1 + 0.2, "0.30000000000000004"}, {1e21, "1e+21"},
    {123456789012.5, "123456789012.5"}, {-0.0, "-0.0"}, {5e-324, "4.94065645841247e-324"},
  };
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
      struct gw_sb sb;
      gw_sb_init(&sb, A);
      nz_sb_double(&sb, cases[i].d);
      assert_string_equal(gw_sb_finish(&sb), cases[i].want);
    }
  /* Many values: more than the cache holds, so slots are shared and replaced. */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 200; i++) {
      double d = i * 0.25 + 0.01;
      char want[48];
      snprintf(want, sizeof want, "%.15g", d);
      if (strtod(want, NULL) != d)
        snprintf(want, sizeof want, "%.17g", d);
      struct gw_sb sb;
      gw_sb_init(&sb, A);
      nz_sb_double(&sb, d);
      assert_string_equal(gw_sb_finish(&sb), want);
    }
}

static void test_system_instructions(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r =
    one(&res, SPAN(kv("gen_ai.system_instructions", av_str("[{\"type\":\"text\",\"content\":\"Be kind.\"}]")),
                   kv("gen_ai.input.messages", av_str(HELLO_PROMPT))));
  assert_string_equal(r->system_prompt, "Be kind.");
  assert_string_equal(r->prompt_content, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"Be kind.\"}]},"
                                         "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"hello\"}]}]");
}

static GwSpanEvent *event(const char *name, GwKeyValue **attrs, size_t n)
{
  GwSpanEvent *e = az(sizeof *e);
  gw_pb_span_event_init(e);
  e->name = gw_arena_strdup(A, name);
  e->attributes = attrs;
  e->n_attributes = n;
  return e;
}

static void test_events_fill_missing_content(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  size_t n1, n2;
  GwKeyValue **a1 = kvs(&n1, kv("gen_ai.input.messages", structured_messages()), NULL);
  GwKeyValue **a2 = kvs(&n2, kv("index", av_int(0)), kv("finish_reason", av_str("length")),
                        kv("message", av_kvlist(kvs(&n1, kv("role", av_str("assistant")),
                                                    kv("content", av_str("cut")), NULL), 2)), NULL);
  GwSpan *s = SPAN(kv("gen_ai.operation.name", av_str("chat")));
  s->events = az(sizeof *s->events * 2);
  s->events[0] = event("gen_ai.client.inference.operation.details", a1, 1);
  s->events[1] = event("gen_ai.choice", a2, n2);
  s->n_events = 2;
  const struct gw_record *r = one(&res, s);
  assert_string_equal(r->prompt_content, HELLO_PROMPT);
  assert_string_equal(r->response_content, "[{\"role\":\"assistant\",\"parts\":[{\"type\":\"text\",\"content\":\"cut\"}],"
                                           "\"finish_reason\":\"length\"}]");
  assert_string_equal(r->finish_reasons.v[0], "length");

  /* An attribute wins over the event. */
  s = SPAN(kv("gen_ai.input.messages", av_str("[{\"role\":\"user\",\"content\":\"attr\"}]")));
  s->events = az(sizeof *s->events);
  s->events[0] = event("gen_ai.client.inference.operation.details", a1, 1);
  s->n_events = 1;
  r = one(&res, s);
  assert_string_equal(r->prompt_content, "[{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"attr\"}]}]");

  /* Deprecated per-message events. */
  size_t n3, n4;
  s = SPAN(kv("gen_ai.request.model", av_str("m")));
  s->events = az(sizeof *s->events * 2);
  s->events[0] = event("gen_ai.system.message", kvs(&n3, kv("content", av_str("sys")), NULL), 1);
  s->events[1] = event("gen_ai.user.message", kvs(&n4, kv("content", av_str("usr")), NULL), 1);
  s->n_events = 2;
  r = one(&res, s);
  assert_string_equal(r->prompt_content, "[{\"role\":\"system\",\"parts\":[{\"type\":\"text\",\"content\":\"sys\"}]},"
                                         "{\"role\":\"user\",\"parts\":[{\"type\":\"text\",\"content\":\"usr\"}]}]");
  assert_string_equal(r->system_prompt, "sys");
}

struct id_case {
  size_t trace_len, span_len, parent_len;
  uint8_t trace_fill, span_fill;
  const char *msg;
};

static void test_invalid_ids(void **state)
{
  (void)state;
  static const struct id_case cases[] = {
    {15, 8, 0, 0xab, 1, "resourceSpans[0].scopeSpans[0].spans[1].traceId: 15 bytes, want 16"},
    {16, 8, 0, 0x00, 1, "resourceSpans[0].scopeSpans[0].spans[1].traceId: all zero"},
    {16, 7, 0, 0xab, 1, "resourceSpans[0].scopeSpans[0].spans[1].spanId: 7 bytes, want 8"},
    {16, 8, 0, 0xab, 0, "resourceSpans[0].scopeSpans[0].spans[1].spanId: all zero"},
    {16, 8, 5, 0xab, 1, "resourceSpans[0].scopeSpans[0].spans[1].parentSpanId: 5 bytes, want 0 or 8"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct id_case *tc = &cases[i];
    GwSpan *s[3] = {SPAN(kv("gen_ai.request.model", av_str("a"))), SPAN(kv("gen_ai.request.model", av_str("b"))),
                    SPAN(kv("gen_ai.request.model", av_str("c")))};
    s[0]->span_id.data[0] = 0x10;
    s[2]->span_id.data[0] = 0x30;
    s[1]->trace_id = (ProtobufCBinaryData){tc->trace_len, bytes(tc->trace_len, tc->trace_fill)};
    s[1]->span_id = (ProtobufCBinaryData){tc->span_len, bytes(tc->span_len, tc->span_fill)};
    s[1]->parent_span_id = (ProtobufCBinaryData){tc->parent_len, bytes(tc->parent_len, 2)};
    GwTraceRequest *req = request(3, s);
    struct gw_normalize_result res;
    struct gw_err err = {0};
    assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
    assert_int_equal(res.nspans, 3);
    assert_int_equal(res.nrejected, 1);
    assert_string_equal(res.reject_msg, tc->msg);
    assert_int_equal(res.nrecords, 2);
    assert_string_equal(res.records[0].request_model, "a");
    assert_string_equal(res.records[1].request_model, "c");
    /* Removed from the request: re-encoding carries only the accepted spans. */
    size_t len = gw_pb_trace_request_size(req);
    uint8_t *buf = az(len + 1);
    gw_pb_trace_request_pack(req, buf);
    GwTraceRequest *back = gw_pb_trace_request_unpack(gw_arena_pb_allocator(A), len, buf);
    assert_non_null(back);
    GwScopeSpans *ss = back->resource_spans[0]->scope_spans[0];
    assert_int_equal(ss->n_spans, 2);
    assert_int_equal(ss->spans[0]->span_id.data[0], 0x10);
    assert_int_equal(ss->spans[1]->span_id.data[0], 0x30);
  }
}

/* DESIGN §6: spans starting before the retention window or more than a day ahead are rejected with the
 * reason, the others kept. */
static void test_start_time_window(void **state)
{
  (void)state;
  GwSpan *s[3] = {SPAN(kv("gen_ai.request.model", av_str("old"))), SPAN(kv("gen_ai.request.model", av_str("ok"))),
                  SPAN(kv("gen_ai.request.model", av_str("future")))};
  s[1]->span_id.data[0] = 0x20;
  s[2]->span_id.data[0] = 0x30;
  uint64_t now = 1763884800000000000ull;
  s[0]->start_time_unix_nano = now - 91ull * 86400 * 1000000000ull;
  s[1]->start_time_unix_nano = now;
  s[2]->start_time_unix_nano = now + 2ull * 86400 * 1000000000ull;
  struct gw_normalize_opts o = {.min_start_ns = now - 90ull * 86400 * 1000000000ull, .max_start_ns = now + 86400ull * 1000000000ull};
  GwTraceRequest *req = request(3, s);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, &o, &res, &err), GW_OK);
  assert_int_equal(res.nrejected, 2);
  assert_string_equal(res.reject_msg, "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: before the retention window");
  assert_int_equal(res.nrecords, 1);
  assert_string_equal(res.records[0].request_model, "ok");
  assert_int_equal(req->resource_spans[0]->scope_spans[0]->n_spans, 1);

  GwSpan *f[1] = {SPAN(kv("gen_ai.request.model", av_str("future")))};
  f[0]->start_time_unix_nano = now + 2ull * 86400 * 1000000000ull;
  assert_int_equal(gw_normalize_traces(request(1, f), A, &o, &res, &err), GW_OK);
  assert_string_equal(res.reject_msg, "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: more than 1 day in the future");
}

/* Issue 11: retention_days above ~20 800 (36 500 was allowed) made now - retention_days x 1 day wrap in
 * uint64, and every span was refused as older than the window. The window saturates now; the config's
 * maximum (18 250 days) keeps it after 1970 anyway (test_conf). */
static void test_issue11_retention_window(void **state)
{
  (void)state;
  const uint64_t day = 86400ull * 1000000000ull, now = 1763884800000000000ull; /* 2025-11-23 */
  struct gw_normalize_opts o = gw_normalize_window(now, 90);
  assert_true(o.min_start_ns == now - 90 * day);
  assert_true(o.max_start_ns == now + day);
  o = gw_normalize_window(now, 18250); /* the config's maximum */
  assert_true(o.min_start_ns == now - 18250 * day);
  /* Past 1970: the window starts at the first storable instant, whatever the count. */
  assert_true(gw_normalize_window(now, 20414).min_start_ns == now - 20414 * day); /* 20415.33 days since 1970 */
  static const uint32_t big[] = {20415, 20416, 36500, UINT32_MAX};
  for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
    o = gw_normalize_window(now, big[i]);
    if (o.min_start_ns != 1 || o.max_start_ns != now + day)
      fail_msg("%u days: window [%llu, %llu]", big[i], (unsigned long long)o.min_start_ns,
               (unsigned long long)o.max_start_ns);
  }
  o = gw_normalize_window(UINT64_MAX - 1, 90);
  assert_true(o.max_start_ns == UINT64_MAX);

  /* A current span passes, one without a start time does not. */
  o = gw_normalize_window(now, 36500);
  GwSpan *s[2] = {SPAN(kv("gen_ai.request.model", av_str("now"))), SPAN(kv("gen_ai.request.model", av_str("none")))};
  s[1]->span_id.data[0] = 0x20;
  s[0]->start_time_unix_nano = now;
  s[1]->start_time_unix_nano = 0;
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(request(2, s), A, &o, &res, &err), GW_OK);
  assert_int_equal(res.nrejected, 1);
  assert_int_equal(res.nrecords, 1);
  assert_string_equal(res.records[0].request_model, "now");
  assert_string_equal(res.reject_msg, "resourceSpans[0].scopeSpans[0].spans[1].startTimeUnixNano: before the retention window");
}

static void test_non_genai_span(void **state)
{
  (void)state;
  GwSpan *s = SPAN(kv("http.request.method", av_str("GET")), kv("generic", av_str("x")),
                   kv("llm", av_str("not a prefix")), kv("traceloop.entity.name", av_str("no kind")));
  GwTraceRequest *req = request(1, &s);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nspans, 1);
  assert_int_equal(res.nrecords, 0);
  assert_int_equal(res.nrejected, 0);
  assert_false(res.has_genai);
  assert_int_equal(req->resource_spans[0]->scope_spans[0]->n_spans, 1);
}

struct op_case {
  const char *key, *value, *want;
};

static void test_operation_mapping(void **state)
{
  (void)state;
  static const struct op_case cases[] = {
    {"gen_ai.operation.name", "embeddings", "embeddings"},
    {"gen_ai.operation.name", "completion", "text_completion"},
    {"llm.request.type", "chat", "chat"},
    {"llm.request.type", "embedding", "embeddings"},
    {"llm.request.type", "rerank", "rerank"},
    {"openinference.span.kind", "EMBEDDING", "embeddings"},
    {"openinference.span.kind", "TOOL", "execute_tool"},
    {"openinference.span.kind", "AGENT", "invoke_agent"},
    {"openinference.span.kind", "CHAIN", "chain"},
    {"openinference.span.kind", "RETRIEVER", "retrieval"},
    {"openinference.span.kind", "RERANKER", "rerank"},
    {"openinference.span.kind", "GUARDRAIL", "guardrail"},
    {"openinference.span.kind", "EVALUATOR", "evaluator"},
    {"traceloop.span.kind", "workflow", "invoke_workflow"},
    {"traceloop.span.kind", "task", "task"},
    {"traceloop.span.kind", "agent", "invoke_agent"},
    {"traceloop.span.kind", "tool", "execute_tool"},
    {"langfuse.observation.type", "generation", "chat"},
    {"langfuse.observation.type", "embedding", "embeddings"},
    {"langfuse.observation.type", "span", NULL},
    {"openinference.span.kind", "UNKNOWN", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    struct gw_normalize_result res;
    const struct gw_record *r = one(&res, SPAN(kv(cases[i].key, av_str(cases[i].value))));
    if (cases[i].want)
      assert_string_equal(r->operation, cases[i].want);
    else
      assert_null(r->operation);
  }
  /* Precedence: gen_ai.operation.name over the dialect kinds. */
  struct gw_normalize_result res;
  const struct gw_record *r = one(&res, SPAN(kv("openinference.span.kind", av_str("LLM")),
                                             kv("traceloop.span.kind", av_str("tool")),
                                             kv("gen_ai.operation.name", av_str("invoke_agent"))));
  assert_string_equal(r->operation, "invoke_agent");
}

static void test_status_time_and_attributes(void **state)
{
  (void)state;
  size_t n;
  uint8_t raw[3] = {0xff, 0x00, 0x10};
  GwAnyValue *b = av_str("");
  b->value_case = GW_AV_BYTES;
  b->bytes_value = (ProtobufCBinaryData){3, raw};
  GwKeyValue **inner = kvs(&n, kv("k", av_int(1)), NULL);
  GwSpan *s = SPAN(kv("gen_ai.request.model", av_str("first")), kv("gen_ai.request.model", av_str("second")),
                   kv("gen_ai.response.time_to_first_chunk", av_dbl(0.25)), kv("error.type", av_str("Timeout")),
                   kv("gen_ai.request.stream", av_bool(true)), kv("flag", av_bool(false)), kv("raw", b),
                   kv("list", av_array(2, (GwAnyValue *[]){av_str("a\"b"), av_dbl(1.5)})),
                   kv("map", av_kvlist(inner, n)));
  s->status = az(sizeof *s->status);
  gw_pb_status_init(s->status);
  s->status->code = GW_SPAN_STATUS_ERROR;
  s->status->message = gw_arena_strdup(A, "deadline exceeded");
  s->parent_span_id = (ProtobufCBinaryData){8, bytes(8, 0x0c)};
  struct gw_normalize_result res;
  const struct gw_record *r = one(&res, s);
  assert_string_equal(r->request_model, "second"); /* duplicate keys: last wins */
  assert_string_equal(r->status, "error");
  assert_string_equal(r->error_code, "Timeout");
  assert_string_equal(r->error_message, "deadline exceeded");
  assert_string_equal(r->trace_id, "abababababababababababababababab");
  assert_string_equal(r->span_id, "0101010101010101");
  assert_string_equal(r->parent_span_id, "0c0c0c0c0c0c0c0c");
  assert_true(r->duration_ms.set);
  assert_true(r->duration_ms.v == 250.0);
  assert_true(r->first_token_latency_ms.set);
  assert_true(r->first_token_latency_ms.v == 250.0);
  assert_int_equal(r->streaming, 1);
  assert_string_equal(r->service_name, "svc-a");
  assert_string_equal(r->scope_name, "test-scope");
  assert_string_equal(r->span_name, "test span");
  assert_string_equal(r->resource, "{\"service.name\":\"svc-a\"}");
  assert_string_equal(r->attributes,
                      "{\"gen_ai.request.model\":\"first\",\"gen_ai.request.model\":\"second\","
                      "\"gen_ai.response.time_to_first_chunk\":0.25,\"error.type\":\"Timeout\","
                      "\"gen_ai.request.stream\":true,\"flag\":false,\"raw\":\"/wAQ\","
                      "\"list\":[\"a\\\"b\",1.5],\"map\":{\"k\":1}}");

  /* Request parameters keep their natural JSON types; a malformed token count is flagged, not stored. */
  r = one(&res, SPAN(kv("gen_ai.request.temperature", av_dbl(0.2)),
                     kv("gen_ai.request.stop_sequences", av_array(1, (GwAnyValue *[]){av_str("END")})),
                     kv("gen_ai.request.max_tokens", av_int(64)), kv("gen_ai.usage.input_tokens", av_str("12abc")),
                     kv("gen_ai.usage.output_tokens", av_str("7"))));
  assert_string_equal(r->parameters, "{\"temperature\":0.2,\"max_tokens\":64,\"stop_sequences\":[\"END\"]}");
  assert_false(r->input_tokens.set);
  assert_int_equal(r->output_tokens.v, 7);
  assert_true(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));

  /* Escaped NUL and lone surrogates inside JSON content never reach the stored text. */
  r = one(&res, SPAN(kv("gen_ai.input.messages", av_str("[{\"role\":\"user\",\"content\":\"a\\u0000b\\ud800c\\u00e9\"}]"))));
  assert_non_null(r->prompt_content);
  assert_valid_json(r->prompt_content);
  assert_null(strstr(r->prompt_content, "\\u0000"));

  /* Langfuse completion_start_time (ISO-8601) minus the span start, overriding the semconv value. */
  r = one(&res, SPAN(kv("gen_ai.response.time_to_first_chunk", av_dbl(9)),
                     kv("langfuse.observation.completion_start_time", av_str("2023-11-14T22:13:21.5Z"))));
  assert_true(r->first_token_latency_ms.set);
  assert_true(r->first_token_latency_ms.v == 1500.0);
  r = one(&res, SPAN(kv("langfuse.observation.completion_start_time", av_str("2023-11-14T23:13:21.5+01:00"))));
  assert_true(r->first_token_latency_ms.v == 1500.0);
  r = one(&res, SPAN(kv("langfuse.observation.completion_start_time", av_str("yesterday"))));
  assert_false(r->first_token_latency_ms.set);
  assert_true(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));
}

/* Issue 11: a usage_details number that is no int64 was converted with (int64_t)d: undefined for 1e300,
 * NaN or Infinity (UBSan's float-cast-overflow), silently dropped in Release. Each is now flagged: a
 * whole number out of range as tokens_out_of_range, anything else as bad_attribute; as a non-finite time
 * to first chunk is (it stored Infinity, which made its hour's latency sum infinite). */
static void test_issue11_usage_doubles(void **state)
{
  (void)state;
  static const struct {
    const char *json;
    enum gw_flag flag;
  } bad[] = {
    {"{\"input\":1e300}", GW_FLAG_TOKENS_OUT_OF_RANGE},
    {"{\"input\":-1e300}", GW_FLAG_TOKENS_OUT_OF_RANGE},
    {"{\"input\":9223372036854775808.0}", GW_FLAG_TOKENS_OUT_OF_RANGE},
    {"{\"input\":10000000000000000000}", GW_FLAG_TOKENS_OUT_OF_RANGE},
    {"{\"input\":-1}", GW_FLAG_TOKENS_OUT_OF_RANGE},
    {"{\"input\":1e400}", GW_FLAG_BAD_ATTRIBUTE},
    {"{\"input\":NaN}", GW_FLAG_BAD_ATTRIBUTE},
    {"{\"input\":Infinity}", GW_FLAG_BAD_ATTRIBUTE},
    {"{\"input\":-Infinity}", GW_FLAG_BAD_ATTRIBUTE},
    {"{\"input\":2.5}", GW_FLAG_BAD_ATTRIBUTE},
    {"{\"input\":\"12\"}", GW_FLAG_BAD_ATTRIBUTE},
  };
  struct gw_normalize_result res;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const struct gw_record *r = one(&res, SPAN(kv("langfuse.observation.usage_details", av_str(bad[i].json))));
    if (r->input_tokens.set || !gw_record_has_flag(r, bad[i].flag))
      fail_msg("%s: input %lld (set %d), flags %#x", bad[i].json, (long long)r->input_tokens.v, r->input_tokens.set,
               r->flags);
  }
  /* Integral doubles are counts. */
  const struct gw_record *r =
    one(&res, SPAN(kv("langfuse.observation.usage_details", av_str("{\"input\":12.0,\"output\":3e2}"))));
  assert_int_equal(r->input_tokens.v, 12);
  assert_int_equal(r->output_tokens.v, 300);
  assert_false(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));

  static const char *const bad_ttfc[] = {"inf", "1e308", "nan", "-1"};
  for (size_t i = 0; i < sizeof bad_ttfc / sizeof bad_ttfc[0]; i++) {
    r = one(&res, SPAN(kv("gen_ai.response.time_to_first_chunk", av_str(bad_ttfc[i]))));
    if (r->first_token_latency_ms.set || !gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE))
      fail_msg("time_to_first_chunk %s: %g ms (set %d)", bad_ttfc[i], r->first_token_latency_ms.v,
               r->first_token_latency_ms.set);
  }
}

/* Issue 11: langfuse.observation.completion_start_time past 2262 (int64 ns) was secs * 10^9 overflowing
 * (a UBSan abort; a wrapped time and a made-up first-token latency in Release). */
static void test_issue11_completion_start_after_2262(void **state)
{
  (void)state;
  struct gw_normalize_result res;
  const struct gw_record *r =
    one(&res, SPAN(kv("langfuse.observation.completion_start_time", av_str("9999-12-31T23:59:59Z"))));
  assert_false(r->first_token_latency_ms.set);
  assert_true(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));
  /* The last instant int64 ns hold, and the next one. */
  r = one(&res, SPAN(kv("langfuse.observation.completion_start_time", av_str("2262-04-11T23:47:16.854775807Z"))));
  assert_true(r->first_token_latency_ms.set);
  assert_true(r->first_token_latency_ms.v == (double)(INT64_MAX - 1700000000000000000ll) / 1e6);
  assert_false(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));
  r = one(&res, SPAN(kv("langfuse.observation.completion_start_time", av_str("2262-04-11T23:47:16.854775808Z"))));
  assert_false(r->first_token_latency_ms.set);
  assert_true(gw_record_has_flag(r, GW_FLAG_BAD_ATTRIBUTE));
  /* A zone offset that moves the instant back into range. */
  r = one(&res, SPAN(kv("langfuse.observation.completion_start_time", av_str("2262-04-12T00:47:16.854775807+01:00"))));
  assert_true(r->first_token_latency_ms.set);
}

static void test_arena_exhaustion(void **state)
{
  (void)state;
  GwSpan *s = SPAN(kv("gen_ai.input.messages", av_str(HELLO_PROMPT)), kv("gen_ai.request.model", av_str("m")));
  GwTraceRequest *req = request(1, &s);
  for (size_t cap = 64; cap < 16384; cap *= 2) {
    struct gw_arena *small = gw_arena_create(cap);
    struct gw_normalize_result res;
    struct gw_err err = {0};
    gw_rc rc = gw_normalize_traces(req, small, NULL, &res, &err);
    assert_true(rc == GW_OK || rc == GW_ERR(TOO_LARGE));
    if (rc == GW_OK)
      assert_string_equal(res.records[0].prompt_content, HELLO_PROMPT);
    else
      assert_int_equal(err.rc, GW_ERR(TOO_LARGE));
    gw_arena_destroy(small);
  }
}

/* Spans that give no record but carry session/user ids give their trace's facts (DESIGN §3), in the record's
 * key orders; once per trace and ids; GenAI spans and spans without ids give none. */
static void test_trace_facts(void **state)
{
  (void)state;
  GwSpan *http = mkspan(0, kv("http.request.method", av_str("POST")), kv("enduser.id", av_str("carol")),
                        kv("session.id", av_str("s-1")), NULL);
  GwSpan *again = mkspan(0, kv("user.id", av_str("carol")), NULL); /* the same ids: no second fact */
  again->span_id = (ProtobufCBinaryData){8, bytes(8, 2)};
  again->start_time_unix_nano = http->start_time_unix_nano - 5;
  GwSpan *tl = mkspan(0, kv("traceloop.association.properties.session_id", av_str("s-2")),
                      kv("user.id", av_str("dan")), kv("enduser.id", av_str("not-first")), NULL);
  tl->span_id = (ProtobufCBinaryData){8, bytes(8, 3)};
  tl->trace_id = (ProtobufCBinaryData){16, bytes(16, 0xcd)};
  GwSpan *plain = mkspan(0, kv("http.route", av_str("/x")), NULL);
  plain->span_id = (ProtobufCBinaryData){8, bytes(8, 4)};
  GwSpan *chat = mkspan(0, kv("gen_ai.operation.name", av_str("chat")), kv("user.id", av_str("erin")), NULL);
  chat->span_id = (ProtobufCBinaryData){8, bytes(8, 5)};
  GwSpan *spans[] = {http, again, tl, plain, chat};
  GwTraceRequest *req = request(5, spans);
  struct gw_normalize_result res;
  struct gw_err err = {0};
  assert_int_equal(gw_normalize_traces(req, A, NULL, &res, &err), GW_OK);
  assert_int_equal(res.nrecords, 1);
  assert_string_equal(res.records[0].user_id, "erin"); /* a record keeps its own */
  assert_int_equal(res.nfacts, 2);
  assert_string_equal(res.facts[0].trace_id, "abababababababababababababababab");
  assert_string_equal(res.facts[0].span_id, "0101010101010101"); /* the first span that carried them */
  assert_string_equal(res.facts[0].session_id, "s-1");
  assert_string_equal(res.facts[0].user_id, "carol");
  assert_int_equal(res.facts[0].start_ns, http->start_time_unix_nano - 5); /* the earliest of its spans */
  assert_string_equal(res.facts[1].trace_id, "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd");
  assert_string_equal(res.facts[1].session_id, "s-2");
  assert_string_equal(res.facts[1].user_id, "dan"); /* user.id before enduser.id, as for a record */
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_fixtures, setup, teardown),
    cmocka_unit_test_setup_teardown(test_trace_facts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_model_precedence_mixed, setup, teardown),
    cmocka_unit_test_setup_teardown(test_langfuse_overrides, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prompt_hash_per_record, setup, teardown),
    cmocka_unit_test_setup_teardown(test_messages_rendered_form_reused, setup, teardown),
    cmocka_unit_test_setup_teardown(test_semconv_deprecated, setup, teardown),
    cmocka_unit_test_setup_teardown(test_openllmetry, setup, teardown),
    cmocka_unit_test_setup_teardown(test_openinference, setup, teardown),
    cmocka_unit_test_setup_teardown(test_langfuse_usage_exclusive, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue11_token_sum_overflow, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue11_tokens_out_of_range, setup, teardown),
    cmocka_unit_test_setup_teardown(test_structured_vs_string_messages, setup, teardown),
    cmocka_unit_test_setup_teardown(test_messages_direct_vs_json_c, setup, teardown),
    cmocka_unit_test_setup_teardown(test_double_text, setup, teardown),
    cmocka_unit_test_setup_teardown(test_system_instructions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_events_fill_missing_content, setup, teardown),
    cmocka_unit_test_setup_teardown(test_invalid_ids, setup, teardown),
    cmocka_unit_test_setup_teardown(test_start_time_window, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue11_retention_window, setup, teardown),
    cmocka_unit_test_setup_teardown(test_non_genai_span, setup, teardown),
    cmocka_unit_test_setup_teardown(test_operation_mapping, setup, teardown),
    cmocka_unit_test_setup_teardown(test_status_time_and_attributes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue11_usage_doubles, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue11_completion_start_after_2262, setup, teardown),
    cmocka_unit_test_setup_teardown(test_arena_exhaustion, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue16_agent_workflow_prompt, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue16_prompt_simhash, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prompt_simhash_conversation, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prompt_simhash_across_requests, setup, teardown),
    cmocka_unit_test_setup_teardown(test_history_cache_bound, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prompt_hash_across_requests, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prompt_prefix_collisions, setup, teardown),
    cmocka_unit_test_setup_teardown(test_history_cache_threads, setup, teardown),
    cmocka_unit_test_setup_teardown(test_prompt_hash_shared_prefixes, setup, teardown),
    cmocka_unit_test_setup_teardown(test_simhash_memo_colliding_parts, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue16_inherit_in_request, setup, teardown),
    cmocka_unit_test_setup_teardown(test_issue16_inherit_through_non_genai, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
