/*
 * observation.c: what Langfuse shows of a GenAI span besides its content (SPEC-FACTS §4.5, issue 14): its
 * usage, its cost, its model, and notes (observation metadata) on where they came from, so that Langfuse
 * shows what Postgres holds.
 *
 * - usage_details: Langfuse's exclusive buckets (input without cache read/write, output without reasoning;
 *   keys input, output, total, input_cached_tokens, input_cache_creation, output_reasoning_tokens) from the
 *   record's inclusive counts, so nothing is counted or priced twice. A failed call (status ERROR) of a
 *   model without usage gets explicit zeros: Langfuse would otherwise tokenize the input it stored and
 *   price it (its own intent to skip ERROR levels does not hold on this path), and providers do not bill
 *   failed calls; gateway_usage = "zero_failed_call" says so. A generation without usage otherwise is
 *   left to Langfuse's estimate (gateway_usage = "estimated_by_langfuse"), and its messages are sent in the
 *   plain {role, content} form its chat view and tokenizer read (langfuse.observation.input / .output),
 *   not the parts form its tokenizer would count the JSON syntax of.
 * - cost_details: the cost Postgres holds in total_cost_usd, with keys that match the usage buckets
 *   (input, input_cached_tokens, input_cache_creation, output, output_reasoning_tokens, total), the parts
 *   taken from the cost stage's genai_gateway.cost.{cache_read,cache_write,reasoning}_usd so that the
 *   buckets add up to the stored input and output costs. Which cost wins is DESIGN §4's rule, as in
 *   Postgres: computed from the price table when the model is priced, else the client's reported cost.
 *   gateway_cost_source says which; a reported cost that lost is kept in gateway_reported_cost_usd, and a
 *   client's own langfuse.observation.cost_details that lost is replaced (Langfuse reads it first) and
 *   kept in gateway_client_cost_details.
 * - langfuse.observation.model.name: the record's model_id (the price entry matched, else the response or
 *   request model), for every dialect: OpenInference embeddings name theirs only in embedding.model_name,
 *   which Langfuse does not read.
 * Any other key the client set is kept as it is.
 */
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "langfuse_int.h"

static void put_nusd(char *buf, size_t n, int64_t v)
{
  uint64_t a = v < 0 ? (uint64_t)-v : (uint64_t)v;
  char frac[10];
  snprintf(frac, sizeof frac, "%09llu", (unsigned long long)(a % 1000000000ull));
  size_t fl = 9;
  while (fl > 1 && frac[fl - 1] == '0')
    fl--;
  frac[fl] = '\0';
  snprintf(buf, n, "%s%llu.%s", v < 0 ? "-" : "", (unsigned long long)(a / 1000000000ull), frac);
}

static void json_num(char *buf, size_t n, size_t *o, const char *key, const char *num)
{
  int w = snprintf(buf + *o, n - *o, "%s\"%s\":%s", *o > 1 ? "," : "", key, num);
  if (w > 0 && (size_t)w < n - *o)
    *o += (size_t)w;
}

static void json_i64(char *buf, size_t n, size_t *o, const char *key, int64_t v)
{
  char num[24];
  snprintf(num, sizeof num, "%lld", (long long)v);
  json_num(buf, n, o, key, num);
}

static void json_usd(char *buf, size_t n, size_t *o, const char *key, int64_t nusd)
{
  char num[40];
  put_nusd(num, sizeof num, nusd);
  json_num(buf, n, o, key, num);
}

static void json_close(char *buf, size_t n, size_t o)
{
  if (o == 1)
    buf[0] = '\0';
  else
    snprintf(buf + o, n - o, "}");
}

static int64_t sub0(int64_t a, int64_t b) { return a > b ? a - b : 0; }

/* Langfuse's exclusive buckets (SPEC-FACTS §4.5) from our inclusive counts. "" when no tokens are known. */
static void usage_details(const struct gw_record *r, char *buf, size_t n)
{
  size_t o = 1;
  buf[0] = '{';
  buf[1] = '\0';
  if (r->input_tokens.set) {
    int64_t in = r->input_tokens.v;
    if (r->cache_read_tokens.set)
      in = sub0(in, r->cache_read_tokens.v);
    if (r->cache_write_tokens.set)
      in = sub0(in, r->cache_write_tokens.v);
    json_i64(buf, n, &o, "input", in);
  }
  if (r->output_tokens.set)
    json_i64(buf, n, &o, "output", r->reasoning_tokens.set ? sub0(r->output_tokens.v, r->reasoning_tokens.v)
                                                            : r->output_tokens.v);
  if (r->total_tokens.set)
    json_i64(buf, n, &o, "total", r->total_tokens.v);
  if (r->cache_read_tokens.set)
    json_i64(buf, n, &o, "input_cached_tokens", r->cache_read_tokens.v);
  if (r->cache_write_tokens.set)
    json_i64(buf, n, &o, "input_cache_creation", r->cache_write_tokens.v);
  if (r->reasoning_tokens.set)
    json_i64(buf, n, &o, "output_reasoning_tokens", r->reasoning_tokens.v);
  json_close(buf, n, o);
}

/* A cost part the cost stage put on the span (USD double) in nano-USD; -1 when absent. */
static int64_t part_nusd(const struct gw_lf_view *v, enum gw_lf_key_id k)
{
  const struct gw_export_attr *kv = v->kv[k];
  if (!kv || !kv->has_dbl || !(kv->dbl >= 0) || kv->dbl > 9e9)
    return -1;
  return (int64_t)llround(kv->dbl * 1e9);
}

/* The cost Postgres holds (total_cost_usd), per usage type; "" when the record has none. */
static void cost_details(const struct gw_lf_view *v, const struct gw_record *r, char *buf, size_t n)
{
  size_t o = 1;
  buf[0] = '{';
  buf[1] = '\0';
  if (!r->total_cost_nusd.set) {
    buf[0] = '\0';
    return;
  }
  /* The parts a bucket of its own is priced at; the rest of input (output) is the plain input (output)
   * bucket, so the buckets add up to the stored input (output) cost. */
  if (r->input_cost_nusd.set) {
    int64_t cr = r->cache_read_tokens.set ? part_nusd(v, K_COST_CACHE_READ) : -1;
    int64_t cw = r->cache_write_tokens.set ? part_nusd(v, K_COST_CACHE_WRITE) : -1;
    json_usd(buf, n, &o, "input", sub0(sub0(r->input_cost_nusd.v, cr > 0 ? cr : 0), cw > 0 ? cw : 0));
    if (cr >= 0)
      json_usd(buf, n, &o, "input_cached_tokens", cr);
    if (cw >= 0)
      json_usd(buf, n, &o, "input_cache_creation", cw);
  }
  if (r->output_cost_nusd.set) {
    int64_t rs = r->reasoning_tokens.set ? part_nusd(v, K_COST_REASONING) : -1;
    json_usd(buf, n, &o, "output", sub0(r->output_cost_nusd.v, rs > 0 ? rs : 0));
    if (rs >= 0)
      json_usd(buf, n, &o, "output_reasoning_tokens", rs);
  }
  json_usd(buf, n, &o, "total", r->total_cost_nusd.v);
  json_close(buf, n, o);
}

/* Operations Langfuse shows as a generation or an embedding: a model call with usage and a price. */
static bool model_call(const char *op)
{
  static const char *const ops[] = {"chat", "text_completion", "generate_content", "completion", "embeddings", NULL};
  for (const char *const *p = ops; op && *p; p++)
    if (!strcmp(op, *p))
      return true;
  return false;
}

/* ---- messages in Langfuse's plain form ---- */

static const char *jstr(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                                                             : NULL;
}

/* A value as a string: itself when it is one, else its JSON. */
static const char *as_text(struct json_object *v)
{
  if (!v)
    return "";
  return json_object_is_type(v, json_type_string) ? json_object_get_string(v)
                                                  : json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
}

static struct json_object *plain_one(struct json_object *m)
{
  const char *role = jstr(m, "role");
  struct json_object *parts, *out = json_object_new_object(), *calls = NULL;
  char *joined = NULL;
  size_t jl = 0;
  json_object_object_add(out, "role", json_object_new_string(role ? role : "user"));
  if (json_object_object_get_ex(m, "parts", &parts) && json_object_is_type(parts, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(parts); i++) {
      struct json_object *p = json_object_array_get_idx(parts, i), *x;
      const char *type = jstr(p, "type");
      const char *piece = NULL;
      if (!type || !strcmp(type, "text") || !strcmp(type, "reasoning")) {
        piece = jstr(p, "content");
      } else if (!strcmp(type, "tool_call")) {
        struct json_object *c = json_object_new_object(), *f = json_object_new_object();
        const char *id = jstr(p, "id"), *name = jstr(p, "name");
        if (id)
          json_object_object_add(c, "id", json_object_new_string(id));
        json_object_object_add(c, "type", json_object_new_string("function"));
        json_object_object_add(f, "name", json_object_new_string(name ? name : ""));
        json_object_object_add(f, "arguments", json_object_new_string(
                                                 as_text(json_object_object_get_ex(p, "arguments", &x) ? x : NULL)));
        json_object_object_add(c, "function", f);
        if (!calls)
          calls = json_object_new_array();
        json_object_array_add(calls, c);
      } else if (!strcmp(type, "tool_call_response")) {
        /* the schema says response, the registry's example result: accept both (SPEC-FACTS §3.2) */
        piece = as_text(json_object_object_get_ex(p, "response", &x) || json_object_object_get_ex(p, "result", &x) ? x
                                                                                                                 : NULL);
        const char *id = jstr(p, "id");
        if (id)
          json_object_object_add(out, "tool_call_id", json_object_new_string(id));
      }
      if (piece) {
        size_t pl = strlen(piece);
        joined = gw_realloc(joined, jl + pl + 2);
        if (jl)
          joined[jl++] = '\n';
        memcpy(joined + jl, piece, pl);
        jl += pl;
        joined[jl] = '\0';
      }
    }
  }
  json_object_object_add(out, "content", json_object_new_string_len(joined ? joined : "", (int)jl));
  free(joined);
  if (calls)
    json_object_object_add(out, "tool_calls", calls);
  return out;
}

const char *gw_lf_plain_messages(struct gw_arena *a, const char *json, size_t len)
{
  struct json_tokener *tok = json_tokener_new();
  if (!tok)
    return NULL;
  struct json_object *in = json_tokener_parse_ex(tok, json, (int)len);
  json_tokener_free(tok);
  const char *result = NULL;
  if (in && json_object_is_type(in, json_type_array) && json_object_array_length(in)) {
    struct json_object *out = json_object_new_array();
    for (size_t i = 0; i < json_object_array_length(in); i++) {
      struct json_object *m = json_object_array_get_idx(in, i);
      if (json_object_is_type(m, json_type_object))
        json_object_array_add(out, plain_one(m));
    }
    if (json_object_array_length(out))
      result = gw_arena_strdup(a, json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(out);
  }
  json_object_put(in);
  return result;
}

/* ---- one span ---- */

static gw_rc note(struct gw_export_batch *b, struct gw_lf_view *v, enum gw_lf_key_id k, const char *value)
{
  return v->kv[k] ? GW_OK : gw_lf_add(b, v, k, value, strlen(value));
}

/* langfuse.observation.input/output in the plain form, from the span's (or its logs') content, else the
 * record's. */
static gw_rc plain(struct gw_export_batch *b, struct gw_lf_view *v, enum gw_lf_key_id to, enum gw_lf_key_id from,
                   const char *rec_json)
{
  if (v->kv[to])
    return GW_OK;
  size_t len = 0;
  const char *src = gw_lf_str(v, from, &len);
  if (!src && rec_json) {
    src = rec_json;
    len = strlen(rec_json);
  }
  if (!src)
    return GW_OK;
  const char *p = gw_lf_plain_messages(b->arena, src, len);
  if (!p)
    return gw_arena_exhausted(b->arena) ? GW_ERR(NOMEM) : GW_OK;
  return gw_lf_add(b, v, to, p, strlen(p));
}

gw_rc gw_lf_observation(struct gw_export_batch *b, struct gw_lf_view *v)
{
  const struct gw_record *r = v->sp->rec;
  gw_rc rc;
  char buf[768];

  /* usage */
  bool tokens = r->input_tokens.set || r->output_tokens.set || r->total_tokens.set;
  if (!v->kv[K_USAGE]) {
    if (tokens) {
      usage_details(r, buf, sizeof buf);
      if (buf[0] && (rc = gw_lf_add(b, v, K_USAGE, buf, strlen(buf))))
        return rc;
    } else if (model_call(r->operation) && r->status && !strcmp(r->status, "error")) {
      static const char zero[] = "{\"input\":0,\"output\":0,\"total\":0}";
      if ((rc = gw_lf_add(b, v, K_USAGE, zero, sizeof zero - 1)) || (rc = note(b, v, K_META_USAGE, "zero_failed_call")))
        return rc;
    } else if (model_call(r->operation)) {
      if ((rc = note(b, v, K_META_USAGE, "estimated_by_langfuse")) ||
          (rc = plain(b, v, K_LF_IN, K_IN, r->prompt_content)) || (rc = plain(b, v, K_LF_OUT, K_OUT, r->response_content)))
        return rc;
    }
  }

  /* cost: the one total_cost_usd holds */
  cost_details(v, r, buf, sizeof buf);
  if (buf[0]) {
    const struct gw_export_attr *own = v->kv[K_COST];
    bool computed = r->cost_source && !strcmp(r->cost_source, "computed");
    if (own && computed && own >= v->sp->attrs && own < v->sp->attrs + v->sp->nattrs) {
      /* the client's own cost details lose to the computed cost, as in Postgres: kept as a note */
      if (own->str && (rc = gw_lf_add(b, v, K_META_CLIENT_COST, own->str, own->slen)))
        return rc;
      if ((rc = gw_export_drop_attr(b, v->sp, (size_t)(own - v->sp->attrs))))
        return rc;
      v->kv[K_COST] = NULL;
    }
    if (!v->kv[K_COST] && (rc = gw_lf_add(b, v, K_COST, buf, strlen(buf))))
      return rc;
    if (r->cost_source && (rc = note(b, v, K_META_COST_SOURCE, r->cost_source)))
      return rc;
    if (computed && r->reported_cost_nusd.set) {
      char num[40];
      put_nusd(num, sizeof num, r->reported_cost_nusd.v);
      if ((rc = note(b, v, K_META_REPORTED, num)))
        return rc;
    }
  }

  /* model */
  if (r->model_id && r->model_id[0] && !v->kv[K_MODEL] && (rc = note(b, v, K_MODEL, r->model_id)))
    return rc;
  return GW_OK;
}
