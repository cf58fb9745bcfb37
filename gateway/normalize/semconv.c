/*
 * semconv.c: the current OTel GenAI semantic conventions (SPEC-FACTS §3), and the canonical message model
 * every dialect's content is converted into (the semconv gen_ai.input/output.messages shape, §3.2).
 *
 * gen_ai.input.messages and friends arrive as a JSON string or as a structured AnyValue array/kvlist:
 * both are read. JSON is parsed with json-c (its DOM lives on the heap only for the duration of one
 * attribute and is bounded by the attribute size the decoder allows). Rendering writes JSON through one
 * string writer that drops NUL and replaces invalid UTF-8, so stored content is always valid JSON text.
 * OpenAI-shaped messages ({"role","content":"..."} or content part arrays with "text") are accepted too,
 * since OpenInference input.value and deprecated gen_ai.prompt carry them.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "normalize/normalize_int.h"

#define K(k, s) {k, NZ_S_##s}
const struct nz_key nz_semconv_keys[] = {
  K("gen_ai.operation.name", OP_NAME),
  K("gen_ai.provider.name", PROVIDER),
  K("gen_ai.request.model", REQ_MODEL),
  K("gen_ai.response.model", RESP_MODEL),
  K("gen_ai.usage.input_tokens", IN_TOK),
  K("gen_ai.usage.output_tokens", OUT_TOK),
  K("gen_ai.usage.cache_read.input_tokens", CACHE_READ),
  K("gen_ai.usage.cache_creation.input_tokens", CACHE_WRITE),
  K("gen_ai.usage.reasoning.output_tokens", REASONING),
  K("gen_ai.request.temperature", TEMPERATURE),
  K("gen_ai.request.top_p", TOP_P),
  K("gen_ai.request.top_k", TOP_K),
  K("gen_ai.request.max_tokens", MAX_TOKENS),
  K("gen_ai.request.frequency_penalty", FREQ_PEN),
  K("gen_ai.request.presence_penalty", PRES_PEN),
  K("gen_ai.request.stop_sequences", STOP_SEQ),
  K("gen_ai.request.seed", SEED),
  K("gen_ai.request.choice.count", CHOICE_COUNT),
  K("gen_ai.request.stream", STREAM),
  K("gen_ai.response.finish_reasons", FINISH_REASONS),
  K("gen_ai.response.time_to_first_chunk", TTFC),
  K("gen_ai.conversation.id", CONV_ID),
  K("gen_ai.system_instructions", SYS_INSTR),
  K("gen_ai.input.messages", IN_MSGS),
  K("gen_ai.output.messages", OUT_MSGS),
  K("error.type", ERROR_TYPE),
  K("openai.request.service_tier", SERVICE_TIER),
  K("openai.response.service_tier", RESP_SERVICE_TIER),
  K("gen_ai.usage.cost", USAGE_COST),
  K("gen_ai.usage.cost.amount", USAGE_COST_AMOUNT),
  K("gen_ai.request.encoding_formats", ENCODING_FORMATS),
  K("gen_ai.output.type", OUTPUT_TYPE),
  K("gen_ai.agent.name", AGENT_NAME),
  K("gen_ai.agent.id", AGENT_ID),
  K("gen_ai.workflow.name", WORKFLOW_NAME),
  K("gen_ai.prompt.name", PROMPT_NAME),
  /* Not semconv: what an upstream genai-gateway stamped (cost.c), read for the reported cost. */
  K("genai_gateway.cost.source", GW_COST_SOURCE),
  K("genai_gateway.cost.reported_usd", GW_REPORTED_COST),
};
const size_t nz_semconv_nkeys = sizeof nz_semconv_keys / sizeof nz_semconv_keys[0];

/* ---- JSON writing ---- */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned char c = s[0];
  if (c < 0x80)
    return 1;
  size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
  if (!len || c > 0xf4 || len > n)
    return 0;
  for (size_t i = 1; i < len; i++)
    if ((s[i] & 0xc0) != 0x80)
      return 0;
  if (len == 3 && ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0)))
    return 0; /* overlong, surrogate */
  if (len == 4 && ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90)))
    return 0;
  return len;
}

void nz_sb_str(struct gw_sb *sb, const char *s, size_t n)
{
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0;
  while (i < n && u[i] && u[i] < 0x80)
    i++;
  if (i == n) {
    gw_sb_json_str(sb, s, n);
    return;
  }
  /* Slow path: copy with repairs into a scratch builder, then escape. */
  struct gw_sb tmp;
  gw_sb_init(&tmp, sb->a);
  gw_sb_putn(&tmp, s, i);
  while (i < n) {
    if (!u[i]) {
      i++;
      continue;
    }
    size_t l = utf8_len(u + i, n - i);
    if (!l) {
      gw_sb_puts(&tmp, "\xef\xbf\xbd");
      i++;
      continue;
    }
    gw_sb_putn(&tmp, s + i, l);
    i += l;
  }
  if (tmp.oom || !gw_sb_finish(&tmp)) {
    sb->oom = true;
    return;
  }
  gw_sb_json_str(sb, tmp.buf, tmp.len);
}

void nz_sb_double(struct gw_sb *sb, double d)
{
  if (!isfinite(d)) {
    gw_sb_puts(sb, "null"); /* JSON has no NaN/Inf */
    return;
  }
  /* Short when 15 digits round-trip (0.2, not 0.20000000000000001), else the exact 17 digits: at most
   * three libc calls, which matters for attributes holding embedding vectors. The same few values
   * (temperatures, top_p) come in span after span, each written twice (parameters and attributes): a
   * small per-thread cache of the last texts saves the libc calls for them. */
  static _Thread_local struct {
    uint64_t bits;
    char text[40];
  } cache[8];
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  unsigned slot = (unsigned)((bits * 0x9E3779B97F4A7C15ull) >> 61);
  if (cache[slot].text[0] && cache[slot].bits == bits) {
    gw_sb_puts(sb, cache[slot].text);
    return;
  }
  char buf[40];
  snprintf(buf, sizeof buf, "%.15g", d);
  if (strtod(buf, NULL) != d)
    snprintf(buf, sizeof buf, "%.17g", d);
  if (!strpbrk(buf, ".eE"))
    strcat(buf, ".0");
  gw_sb_puts(sb, buf);
  cache[slot].bits = bits;
  memcpy(cache[slot].text, buf, sizeof buf);
}

#define NZ_MAX_DEPTH 64

void nz_json_write(struct gw_sb *sb, struct json_object *o, int depth)
{
  if (depth > NZ_MAX_DEPTH) {
    gw_sb_puts(sb, "null");
    return;
  }
  switch (json_object_get_type(o)) {
  case json_type_null: gw_sb_puts(sb, "null"); break;
  case json_type_boolean: gw_sb_puts(sb, json_object_get_boolean(o) ? "true" : "false"); break;
  case json_type_int: gw_sb_i64(sb, json_object_get_int64(o)); break;
  case json_type_double: nz_sb_double(sb, json_object_get_double(o)); break;
  case json_type_string: nz_sb_str(sb, json_object_get_string(o), (size_t)json_object_get_string_len(o)); break;
  case json_type_array: {
    size_t n = json_object_array_length(o);
    gw_sb_putc(sb, '[');
    for (size_t i = 0; i < n; i++) {
      if (i)
        gw_sb_putc(sb, ',');
      nz_json_write(sb, json_object_array_get_idx(o, i), depth + 1);
    }
    gw_sb_putc(sb, ']');
    break;
  }
  case json_type_object: {
    bool first = true;
    gw_sb_putc(sb, '{');
    json_object_object_foreach(o, k, v)
    {
      if (!first)
        gw_sb_putc(sb, ',');
      first = false;
      nz_sb_str(sb, k, strlen(k));
      gw_sb_putc(sb, ':');
      nz_json_write(sb, v, depth + 1);
    }
    gw_sb_putc(sb, '}');
    break;
  }
  }
}

static void base64(struct gw_sb *sb, const uint8_t *p, size_t n)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  gw_sb_putc(sb, '"');
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], tab[(v >> 6) & 63], tab[v & 63]};
    gw_sb_putn(sb, q, 4);
  }
  if (i < n) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    char q[4] = {tab[v >> 18], tab[(v >> 12) & 63], i + 1 < n ? tab[(v >> 6) & 63] : '=', '='};
    gw_sb_putn(sb, q, 4);
  }
  gw_sb_putc(sb, '"');
}

void nz_av_write(struct gw_sb *sb, const GwAnyValue *v, int depth)
{
  if (!v || depth > NZ_MAX_DEPTH) {
    gw_sb_puts(sb, "null");
    return;
  }
  switch (v->value_case) {
  case GW_AV_STRING: gw_sb_json_str(sb, v->string_value, strlen(v->string_value)); break;
  case GW_AV_BOOL: gw_sb_puts(sb, v->bool_value ? "true" : "false"); break;
  case GW_AV_INT: gw_sb_i64(sb, v->int_value); break;
  case GW_AV_DOUBLE: nz_sb_double(sb, v->double_value); break;
  case GW_AV_BYTES: base64(sb, v->bytes_value.data, v->bytes_value.len); break;
  case GW_AV_ARRAY: {
    gw_sb_putc(sb, '[');
    size_t n = v->array_value ? v->array_value->n_values : 0;
    for (size_t i = 0; i < n; i++) {
      if (i)
        gw_sb_putc(sb, ',');
      nz_av_write(sb, v->array_value->values[i], depth + 1);
    }
    gw_sb_putc(sb, ']');
    break;
  }
  case GW_AV_KVLIST: {
    gw_sb_putc(sb, '{');
    size_t n = v->kvlist_value ? v->kvlist_value->n_values : 0;
    for (size_t i = 0; i < n; i++) {
      const GwKeyValue *kv = v->kvlist_value->values[i];
      if (i)
        gw_sb_putc(sb, ',');
      gw_sb_json_str(sb, kv->key ? kv->key : "", kv->key ? strlen(kv->key) : 0);
      gw_sb_putc(sb, ':');
      nz_av_write(sb, kv->value, depth + 1);
    }
    gw_sb_putc(sb, '}');
    break;
  }
  default: gw_sb_puts(sb, "null"); break;
  }
}

/* About what json-c 0.16 allocates for the document s, malloc overhead included: per value its object,
 * per array its list, per object its hash table, per member its key and entry, plus the strings. It
 * errs high; it is small for message JSON and large for what is built to be expanded ([0,0,...]). */
static size_t dom_cost(const char *s, size_t n)
{
  size_t cost = 256, i = 0;
  while (i < n) {
    switch (s[i++]) {
    case '"': {
      size_t start = i;
      while (i < n && s[i] != '"')
        i += s[i] == '\\' ? 2 : 1;
      cost += i - start + 48;
      i++;
      break;
    }
    case '{': cost += 1024; break;
    case '[': cost += 384; break;
    case ',': case ':': cost += 128; break;
    default: break;
    }
  }
  return cost;
}

struct json_object *nz_json_parse(struct nz_ctx *c, const char *s, size_t n)
{
  if (n > INT32_MAX)
    return NULL;
  size_t cost = dom_cost(s, n);
  if (!gw_arena_borrow(c->a, cost)) {
    c->oom = true;
    return NULL;
  }
  struct json_object *o = NULL;
  struct json_tokener *tok = json_tokener_new_ex(NZ_MAX_DEPTH);
  if (tok) {
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, s, (int)n);
    if (o && (json_tokener_get_error(tok) != json_tokener_success || json_tokener_get_parse_end(tok) != n)) {
      json_object_put(o);
      o = NULL;
    }
    json_tokener_free(tok);
  }
  if (!o) {
    gw_arena_unborrow(c->a, cost);
    return NULL;
  }
  json_object_set_userdata(o, (void *)(uintptr_t)cost, NULL);
  return o;
}

void nz_json_put(struct nz_ctx *c, struct json_object *o)
{
  if (!o)
    return;
  gw_arena_unborrow(c->a, (size_t)(uintptr_t)json_object_get_userdata(o));
  json_object_put(o);
}

const char *nz_json_dup_str(struct nz_ctx *c, struct json_object *o)
{
  if (!o || !json_object_is_type(o, json_type_string))
    return NULL;
  const char *s = json_object_get_string(o);
  size_t n = (size_t)json_object_get_string_len(o), i = 0;
  const unsigned char *u = (const unsigned char *)s;
  while (i < n && u[i] && u[i] < 0x80)
    i++;
  char *d;
  if (i == n) {
    d = gw_arena_strndup(c->a, s, n);
  } else {
    /* An escaped NUL or a lone surrogate: repair here, so the message model only holds clean text. */
    struct gw_sb sb;
    gw_sb_init(&sb, c->a);
    gw_sb_putn(&sb, s, i);
    while (i < n) {
      size_t l = u[i] ? utf8_len(u + i, n - i) : 0;
      if (l)
        gw_sb_putn(&sb, s + i, l);
      else if (u[i])
        gw_sb_puts(&sb, "\xef\xbf\xbd");
      i += l ? l : 1;
    }
    d = gw_sb_finish(&sb);
  }
  if (!d)
    c->oom = true;
  return d;
}

/* ---- the message model ---- */

static bool grow(struct nz_ctx *c, void **v, uint32_t *cap, uint32_t n, size_t elem)
{
  if (n < *cap)
    return true;
  uint32_t ncap = *cap ? *cap * 2 : 4;
  void *p = gw_arena_grow(c->a, *v, (size_t)*cap * elem, (size_t)ncap * elem);
  if (!p) {
    c->oom = true;
    return false;
  }
  *v = p;
  *cap = ncap;
  return true;
}

struct nz_msg *nz_msgs_add(struct nz_ctx *c, struct nz_msgs *m, const char *role)
{
  if (!grow(c, (void **)&m->v, &m->cap, m->n, sizeof *m->v))
    return NULL;
  struct nz_msg *msg = &m->v[m->n++];
  memset(msg, 0, sizeof *msg);
  msg->role = role;
  return msg;
}

static struct nz_part *part_add(struct nz_ctx *c, struct nz_msg *m)
{
  if (!grow(c, (void **)&m->parts, &m->cap, m->n, sizeof *m->parts))
    return NULL;
  struct nz_part *p = &m->parts[m->n++];
  memset(p, 0, sizeof *p);
  return p;
}

void nz_msg_text_n(struct nz_ctx *c, struct nz_msg *m, const char *type, const char *text, size_t len)
{
  struct nz_part *p = text ? part_add(c, m) : NULL;
  if (p) {
    p->type = type;
    p->text = text;
    p->len = len;
  }
}

void nz_msg_text(struct nz_ctx *c, struct nz_msg *m, const char *type, const char *text)
{
  nz_msg_text_n(c, m, type, text, text ? strlen(text) : 0);
}

void nz_msg_json(struct nz_ctx *c, struct nz_msg *m, const char *json)
{
  struct nz_part *p = json ? part_add(c, m) : NULL;
  if (p)
    p->json = json;
}

static const char *render_json(struct nz_ctx *c, struct json_object *o)
{
  struct gw_sb sb;
  gw_sb_init(&sb, c->a);
  nz_json_write(&sb, o, 0);
  char *s = gw_sb_finish(&sb);
  if (!s)
    c->oom = true;
  return s;
}

static const char *render_av(struct nz_ctx *c, const GwAnyValue *v)
{
  struct gw_sb sb;
  gw_sb_init(&sb, c->a);
  nz_av_write(&sb, v, 0);
  char *s = gw_sb_finish(&sb);
  if (!s)
    c->oom = true;
  return s;
}

static bool is_text_type(const char *t) { return !strcmp(t, "text") || !strcmp(t, "reasoning"); }

/* One part object (semconv {"type","content"} or OpenAI {"type":"text","text"}). */
static void part_from_json(struct nz_ctx *c, struct nz_msg *m, struct json_object *p)
{
  if (json_object_is_type(p, json_type_string)) {
    nz_msg_text(c, m, "text", nz_json_dup_str(c, p));
    return;
  }
  struct json_object *t = NULL, *txt = NULL;
  if (json_object_is_type(p, json_type_object) && json_object_object_get_ex(p, "type", &t) &&
      json_object_is_type(t, json_type_string)) {
    const char *type = json_object_get_string(t);
    if (is_text_type(type) && ((json_object_object_get_ex(p, "content", &txt) && json_object_is_type(txt, json_type_string)) ||
                               (json_object_object_get_ex(p, "text", &txt) && json_object_is_type(txt, json_type_string)))) {
      nz_msg_text(c, m, type[0] == 't' ? "text" : "reasoning", nz_json_dup_str(c, txt));
      return;
    }
  }
  nz_msg_json(c, m, render_json(c, p));
}

bool nz_msg_from_json(struct nz_ctx *c, struct json_object *o, struct nz_msgs *out)
{
  struct json_object *role = NULL, *parts = NULL, *content = NULL, *x = NULL;
  if (!json_object_is_type(o, json_type_object))
    return false;
  json_object_object_get_ex(o, "role", &role);
  struct nz_msg *m = nz_msgs_add(c, out, role ? nz_json_dup_str(c, role) : NULL);
  if (!m)
    return false;
  if (json_object_object_get_ex(o, "name", &x))
    m->name = nz_json_dup_str(c, x);
  if (json_object_object_get_ex(o, "finish_reason", &x))
    m->finish_reason = nz_json_dup_str(c, x);
  if (json_object_object_get_ex(o, "parts", &parts) && json_object_is_type(parts, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(parts); i++)
      part_from_json(c, m, json_object_array_get_idx(parts, i));
  } else if (json_object_object_get_ex(o, "content", &content)) {
    if (json_object_is_type(content, json_type_array)) {
      for (size_t i = 0; i < json_object_array_length(content); i++)
        part_from_json(c, m, json_object_array_get_idx(content, i));
    } else if (json_object_is_type(content, json_type_string)) {
      nz_msg_text(c, m, "text", nz_json_dup_str(c, content));
    }
  }
  /* OpenAI tool calls: [{id, type:function, function:{name, arguments}}] */
  struct json_object *tcs = NULL;
  if (json_object_object_get_ex(o, "tool_calls", &tcs) && json_object_is_type(tcs, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(tcs); i++) {
      struct json_object *tc = json_object_array_get_idx(tcs, i), *fn = NULL, *id = NULL, *nm = NULL, *args = NULL;
      struct gw_sb sb;
      gw_sb_init(&sb, c->a);
      gw_sb_puts(&sb, "{\"type\":\"tool_call\"");
      if (json_object_object_get_ex(tc, "id", &id)) {
        gw_sb_puts(&sb, ",\"id\":");
        nz_json_write(&sb, id, 1);
      }
      if (json_object_object_get_ex(tc, "function", &fn)) {
        if (json_object_object_get_ex(fn, "name", &nm)) {
          gw_sb_puts(&sb, ",\"name\":");
          nz_json_write(&sb, nm, 1);
        }
        if (json_object_object_get_ex(fn, "arguments", &args)) {
          gw_sb_puts(&sb, ",\"arguments\":");
          nz_json_write(&sb, args, 1);
        }
      }
      gw_sb_putc(&sb, '}');
      const char *s = gw_sb_finish(&sb);
      if (!s)
        c->oom = true;
      nz_msg_json(c, m, s);
    }
  }
  return !c->oom;
}

bool nz_msgs_from_json(struct nz_ctx *c, struct json_object *arr, struct nz_msgs *out)
{
  if (!json_object_is_type(arr, json_type_array))
    return false;
  uint32_t before = out->n;
  for (size_t i = 0; i < json_object_array_length(arr); i++)
    nz_msg_from_json(c, json_object_array_get_idx(arr, i), out);
  return out->n > before;
}

static const GwAnyValue *kv_get(const GwAnyValue *v, const char *key)
{
  if (!v || v->value_case != GW_AV_KVLIST || !v->kvlist_value)
    return NULL;
  const GwAnyValue *found = NULL;
  for (size_t i = 0; i < v->kvlist_value->n_values; i++) {
    const GwKeyValue *kv = v->kvlist_value->values[i];
    if (kv->key && !strcmp(kv->key, key))
      found = kv->value; /* last wins, as for attributes */
  }
  return found;
}

static void part_from_av(struct nz_ctx *c, struct nz_msg *m, const GwAnyValue *p)
{
  if (p && p->value_case == GW_AV_STRING) {
    nz_msg_text(c, m, "text", p->string_value);
    return;
  }
  const char *type = nz_str(kv_get(p, "type"));
  if (type && is_text_type(type)) {
    const char *txt = nz_str(kv_get(p, "content"));
    if (!txt)
      txt = nz_str(kv_get(p, "text"));
    if (txt) {
      nz_msg_text(c, m, type[0] == 't' ? "text" : "reasoning", txt);
      return;
    }
  }
  nz_msg_json(c, m, render_av(c, p));
}

static void msg_from_av(struct nz_ctx *c, const GwAnyValue *o, struct nz_msgs *out)
{
  if (!o || o->value_case != GW_AV_KVLIST)
    return;
  struct nz_msg *m = nz_msgs_add(c, out, nz_str(kv_get(o, "role")));
  if (!m)
    return;
  m->name = nz_str(kv_get(o, "name"));
  m->finish_reason = nz_str(kv_get(o, "finish_reason"));
  const GwAnyValue *parts = kv_get(o, "parts"), *content = kv_get(o, "content");
  if (!parts)
    parts = content;
  if (parts && parts->value_case == GW_AV_ARRAY && parts->array_value) {
    for (size_t i = 0; i < parts->array_value->n_values; i++)
      part_from_av(c, m, parts->array_value->values[i]);
  } else if (parts && parts->value_case == GW_AV_STRING) {
    nz_msg_text(c, m, "text", parts->string_value);
  }
}

/* ---- the usual message JSON, read directly ----
 *
 * Instrumentations send gen_ai.input/output.messages as compact JSON of one shape: an array of
 * {"role","parts":[{"type":"text"|"reasoning","content"|"text":...}],"name","finish_reason"} objects.
 * Building a json-c DOM of it (one heap object per value, every string copied twice) was most of the cost
 * of normalizing a span. fs_msgs reads exactly that shape in one pass into the message model and gives up
 * on anything else (other keys or value types, duplicate keys, escapes in keys, \u0000 or surrogate
 * escapes, control characters, invalid UTF-8, text around the array): the json-c path then runs as
 * before. What fs_msgs accepts is RFC 8259 JSON that json-c parses to the same strings, so the messages,
 * and everything rendered from them, are the same bytes either way (test_normalize compares both paths). */

bool nz_fast_json = true;
bool nz_reuse_raw = true;
_Thread_local uint64_t nz_fast_json_reads;

struct fs {
  struct nz_ctx *c;
  const char *p, *end;
  size_t len; /* the length of the text fs_str last decoded (no escape decodes to NUL: fs_u) */
  bool canon; /* what was read is what nz_msgs_render writes for it, byte for byte */
  bool fin;   /* a message had a finish_reason */
};

static void fs_ws(struct fs *f)
{
  const char *p0 = f->p;
  while (f->p < f->end && (*f->p == ' ' || *f->p == '\n' || *f->p == '\r' || *f->p == '\t'))
    f->p++;
  if (f->p != p0)
    f->canon = false;
}

static bool fs_lower_hex(char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'); }

/* Whether the escape at p (a backslash; its code already checked) is the one gw_sb_json_str writes: \" \\
 * \n \r \t, and \u00xx (lower case) for the other control characters. */
static bool fs_canon_escape(const char *p, long cp)
{
  char e = p[1];
  if (e == '"' || e == '\\' || e == 'n' || e == 'r' || e == 't')
    return true;
  return e == 'u' && cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t' && fs_lower_hex(p[4]) && fs_lower_hex(p[5]);
}

static bool fs_at(struct fs *f, char ch)
{
  fs_ws(f);
  if (f->p < f->end && *f->p == ch) {
    f->p++;
    return true;
  }
  return false;
}

/* Length of the leading run of printable ASCII other than '"' and '\\'. */
static size_t fs_plain(const char *s, size_t n) { return gw_json_plain(s, n, true); }

static int fs_hex(char ch)
{
  return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* \uXXXX at p (p[0] == 'u'): the code point, or -1 when malformed, NUL or a surrogate (left to json-c). */
static long fs_u(const char *p, const char *end)
{
  if (end - p < 5)
    return -1;
  long cp = 0;
  for (int i = 1; i <= 4; i++) {
    int h = fs_hex(p[i]);
    if (h < 0)
      return -1;
    cp = cp << 4 | h;
  }
  return cp == 0 || (cp >= 0xD800 && cp < 0xE000) ? -1 : cp;
}

/* The string literal at f->p. want == NULL: a key, which must hold no escape; *raw and *rawlen are its bytes.
 * Else *want gets the decoded text as a new arena string. false: not for the direct path. */
static bool fs_str(struct fs *f, const char **raw, size_t *rawlen, const char **want)
{
  fs_ws(f);
  if (f->p >= f->end || *f->p != '"')
    return false;
  const char *b = ++f->p, *p = b, *end = f->end;
  bool esc = false;
  for (;;) {
    p += fs_plain(p, (size_t)(end - p));
    if (p >= end)
      return false;
    unsigned char ch = (unsigned char)*p;
    if (ch == '"')
      break;
    if (ch == '\\') {
      if (!want || p + 1 >= end)
        return false;
      esc = true;
      char e = p[1];
      if (e == 'u') {
        long cp = fs_u(p + 1, end);
        if (cp < 0)
          return false;
        f->canon = f->canon && fs_canon_escape(p, cp);
        p += 6;
      } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        f->canon = f->canon && fs_canon_escape(p, 0);
        p += 2;
      } else {
        return false;
      }
      continue;
    }
    if (ch < 0x20)
      return false;
    size_t l = utf8_len((const unsigned char *)p, (size_t)(end - p));
    if (!l)
      return false;
    p += l;
  }
  f->p = p + 1;
  if (raw) {
    *raw = b;
    *rawlen = (size_t)(p - b);
  }
  if (!want)
    return true;
  char *d = gw_arena_alloc(f->c->a, (size_t)(p - b) + 1);
  if (!d) {
    f->c->oom = true;
    *want = NULL;
    return true;
  }
  if (!esc) {
    memcpy(d, b, (size_t)(p - b));
    d[p - b] = 0;
    *want = d;
    f->len = (size_t)(p - b);
    return true;
  }
  char *w = d;
  for (const char *q = b; q < p;) {
    const char *r = q;
    while (r < p && *r != '\\') {
      r += fs_plain(r, (size_t)(p - r));
      if (r < p && *r != '\\')
        r++; /* a byte of a multi-byte character, already checked */
    }
    memcpy(w, q, (size_t)(r - q));
    w += r - q;
    q = r;
    if (q >= p)
      break;
    char e = q[1];
    if (e == 'u') {
      long cp = fs_u(q + 1, p);
      if (cp < 0x80) {
        *w++ = (char)cp;
      } else if (cp < 0x800) {
        *w++ = (char)(0xC0 | cp >> 6);
        *w++ = (char)(0x80 | (cp & 0x3F));
      } else {
        *w++ = (char)(0xE0 | cp >> 12);
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
      }
      q += 6;
      continue;
    }
    *w++ = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
    q += 2;
  }
  *w = 0;
  *want = d;
  f->len = (size_t)(w - d);
  return true;
}

static bool fs_key(struct fs *f, const char **k, size_t *klen)
{
  if (!fs_str(f, k, klen, NULL))
    return false;
  return fs_at(f, ':');
}

#define FS_KEY(k, n, lit) ((n) == sizeof(lit) - 1 && !memcmp(k, lit, sizeof(lit) - 1))

/* {"type":"text"|"reasoning","content"|"text":"..."}, in either order. */
static bool fs_part(struct fs *f, struct nz_msg *m)
{
  const char *type = NULL, *text = NULL, *k;
  size_t tlen = 0, klen, textlen = 0;
  if (!fs_at(f, '{'))
    return false;
  for (int i = 0; i < 2; i++) {
    if (i && !fs_at(f, ','))
      return false;
    if (!fs_key(f, &k, &klen))
      return false;
    if (FS_KEY(k, klen, "type") && !type) {
      f->canon = f->canon && i == 0; /* rendered: type, then content */
      if (!fs_str(f, &type, &tlen, NULL))
        return false;
    } else if ((FS_KEY(k, klen, "content") || FS_KEY(k, klen, "text")) && !text) {
      f->canon = f->canon && FS_KEY(k, klen, "content");
      if (!fs_str(f, NULL, NULL, &text))
        return false;
      textlen = f->len;
    } else {
      return false;
    }
  }
  if (!fs_at(f, '}'))
    return false;
  bool is_text = FS_KEY(type, tlen, "text");
  if (!is_text && !FS_KEY(type, tlen, "reasoning"))
    return false;
  nz_msg_text_n(f->c, m, is_text ? "text" : "reasoning", text, text ? textlen : 0);
  return true;
}

static bool fs_msg(struct fs *f, struct nz_msgs *out)
{
  if (!fs_at(f, '{'))
    return false;
  struct nz_msg *m = nz_msgs_add(f->c, out, NULL);
  if (!m)
    return false;
  if (fs_at(f, '}')) {
    f->canon = false; /* rendered with a role and parts */
    return true;
  }
  unsigned seen = 0;
  do {
    const char *k;
    size_t klen;
    if (!fs_key(f, &k, &klen))
      return false;
    unsigned bit;
    if (FS_KEY(k, klen, "role")) {
      bit = 1;
      if (!fs_str(f, NULL, NULL, &m->role))
        return false;
    } else if (FS_KEY(k, klen, "parts")) {
      bit = 2;
      if (!fs_at(f, '['))
        return false;
      if (!fs_at(f, ']')) {
        do {
          if (!fs_part(f, m))
            return false;
        } while (fs_at(f, ','));
        if (!fs_at(f, ']'))
          return false;
      }
    } else if (FS_KEY(k, klen, "name")) {
      bit = 4;
      if (!fs_str(f, NULL, NULL, &m->name))
        return false;
    } else if (FS_KEY(k, klen, "finish_reason")) {
      bit = 8;
      if (!fs_str(f, NULL, NULL, &m->finish_reason))
        return false;
    } else {
      return false;
    }
    if (seen & bit)
      return false;
    /* rendered: role, parts, then name and finish_reason when there are any */
    f->canon = f->canon && bit > seen && (bit < 4 || (seen & 3) == 3);
    f->fin |= bit == 8;
    seen |= bit;
  } while (fs_at(f, ','));
  f->canon = f->canon && (seen & 3) == 3;
  return fs_at(f, '}');
}

/* The messages of s (n bytes) into out; false when s is not of the usual shape (out is then as before). */
static bool fs_msgs(struct nz_ctx *c, const char *s, size_t n, struct nz_msgs *out)
{
  struct fs f = {c, s, s + n, 0, true, false};
  uint32_t before = out->n;
  if (!n || s[0] != '[' || s[n - 1] != ']')
    return false;
  f.p++;
  bool ok = true;
  if (!fs_at(&f, ']')) {
    do
      ok = fs_msg(&f, out);
    while (ok && fs_at(&f, ','));
    ok = ok && fs_at(&f, ']');
  }
  if (c->oom)
    return true; /* the record is abandoned anyway */
  if (!ok || f.p != f.end) {
    out->n = before;
    return false;
  }
  if (f.canon && !before && nz_reuse_raw) {
    out->raw = s;
    out->raw_len = n;
    out->raw_n = out->n;
    out->raw_fin = f.fin;
  }
  return true;
}

bool nz_msgs_from_value(struct nz_ctx *c, const GwAnyValue *v, struct nz_msgs *out)
{
  if (!v)
    return false;
  uint32_t before = out->n;
  if (v->value_case == GW_AV_STRING) {
    size_t n = strlen(v->string_value);
    if (nz_fast_json && fs_msgs(c, v->string_value, n, out)) {
      nz_fast_json_reads++;
      return out->n > before;
    }
    struct json_object *o = nz_json_parse(c, v->string_value, n);
    if (!o) {
      gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
      return false;
    }
    if (json_object_is_type(o, json_type_array))
      nz_msgs_from_json(c, o, out);
    else
      nz_msg_from_json(c, o, out);
    nz_json_put(c, o);
  } else if (v->value_case == GW_AV_ARRAY && v->array_value) {
    for (size_t i = 0; i < v->array_value->n_values; i++)
      msg_from_av(c, v->array_value->values[i], out);
  } else if (v->value_case == GW_AV_KVLIST) {
    msg_from_av(c, v, out);
  } else {
    gw_record_set_flag(c->r, GW_FLAG_BAD_ATTRIBUTE);
  }
  return out->n > before;
}

bool nz_parts_from_value(struct nz_ctx *c, const GwAnyValue *v, struct nz_msg *into)
{
  if (!v)
    return false;
  uint32_t before = into->n;
  if (v->value_case == GW_AV_STRING) {
    struct json_object *o = nz_json_parse(c, v->string_value, strlen(v->string_value));
    if (o && json_object_is_type(o, json_type_array)) {
      for (size_t i = 0; i < json_object_array_length(o); i++)
        part_from_json(c, into, json_object_array_get_idx(o, i));
    } else if (o && json_object_is_type(o, json_type_object)) {
      part_from_json(c, into, o);
    } else {
      nz_msg_text(c, into, "text", v->string_value); /* plain-text instructions */
    }
    if (o)
      nz_json_put(c, o);
  } else if (v->value_case == GW_AV_ARRAY && v->array_value) {
    for (size_t i = 0; i < v->array_value->n_values; i++)
      part_from_av(c, into, v->array_value->values[i]);
  } else if (v->value_case == GW_AV_KVLIST) {
    part_from_av(c, into, v);
  }
  return into->n > before;
}

char *nz_msgs_render(struct nz_ctx *c, const struct nz_msgs *m, bool output, size_t *len)
{
  if (!m->n)
    return NULL;
  if (m->raw && m->n == m->raw_n && (output || !m->raw_fin)) {
    if (len)
      *len = m->raw_len; /* the attribute's own text is what rendering would write (fs_msgs) */
    return (char *)(uintptr_t)m->raw;
  }
  struct gw_sb sb;
  gw_sb_init(&sb, c->a);
  gw_sb_putc(&sb, '[');
  for (uint32_t i = 0; i < m->n; i++) {
    const struct nz_msg *msg = &m->v[i];
    if (i)
      gw_sb_putc(&sb, ',');
    gw_sb_puts(&sb, "{\"role\":");
    if (msg->role)
      gw_sb_json_str(&sb, msg->role, strlen(msg->role));
    else
      gw_sb_puts(&sb, output ? "\"assistant\"" : "\"user\"");
    gw_sb_puts(&sb, ",\"parts\":[");
    for (uint32_t k = 0; k < msg->n; k++) {
      const struct nz_part *p = &msg->parts[k];
      if (k)
        gw_sb_putc(&sb, ',');
      if (p->json) {
        gw_sb_puts(&sb, p->json);
        continue;
      }
      gw_sb_puts(&sb, "{\"type\":");
      gw_sb_json_str(&sb, p->type, strlen(p->type));
      gw_sb_puts(&sb, ",\"content\":");
      gw_sb_json_str(&sb, p->text, p->len);
      gw_sb_putc(&sb, '}');
    }
    gw_sb_putc(&sb, ']');
    if (msg->name) {
      gw_sb_puts(&sb, ",\"name\":");
      gw_sb_json_str(&sb, msg->name, strlen(msg->name));
    }
    if (output && msg->finish_reason) {
      gw_sb_puts(&sb, ",\"finish_reason\":");
      gw_sb_json_str(&sb, msg->finish_reason, strlen(msg->finish_reason));
    }
    gw_sb_putc(&sb, '}');
  }
  gw_sb_putc(&sb, ']');
  char *s = gw_sb_finish(&sb);
  if (!s)
    c->oom = true;
  if (len)
    *len = sb.len;
  return s;
}

char *nz_msgs_text(struct nz_ctx *c, const struct nz_msgs *m, const char *role, size_t *len)
{
  struct gw_sb sb;
  gw_sb_init(&sb, c->a);
  bool any = false;
  for (uint32_t i = 0; i < m->n; i++) {
    const struct nz_msg *msg = &m->v[i];
    if (role && (!msg->role || strcmp(msg->role, role)))
      continue;
    for (uint32_t k = 0; k < msg->n; k++) {
      if (msg->parts[k].json || strcmp(msg->parts[k].type, "text"))
        continue;
      if (any)
        gw_sb_putc(&sb, '\n');
      gw_sb_putn(&sb, msg->parts[k].text, msg->parts[k].len);
      any = true;
    }
  }
  if (!any)
    return NULL;
  char *s = gw_sb_finish(&sb);
  if (!s)
    c->oom = true;
  if (len)
    *len = sb.len;
  return s;
}

/* The memo's key for a part of len >= 16 bytes: its length and eight words spread over it. Equal texts get
 * equal keys; a collision only costs a memcmp. */
static uint64_t sh_key(const char *t, size_t len)
{
  uint64_t h = len * 0x9e3779b97f4a7c15ull, w;
  for (int i = 0; i < 8; i++) {
    memcpy(&w, t + (len - 8) * (size_t)i / 7, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
  }
  return h;
}

/* Where the part with key h is, or may go, in m: its slot, or an empty one, within NZ_SH_PROBES of h's home;
 * UINT32_MAX when neither (a full window: the part is hashed and not kept). The window bounds what a
 * look-up costs whatever the texts: parts made to share a key (the key samples only eight words) cost at
 * most NZ_SH_PROBES comparisons each, never a walk of every part like them. */
static uint32_t sh_slot(struct nz_sh_memo *m, uint64_t h, const char *text, size_t len, bool *found)
{
  *found = false;
  for (uint32_t p = 0; m->cap && p < NZ_SH_PROBES; p++) {
    uint32_t i = (uint32_t)(h + p) & (m->cap - 1);
    const struct nz_sh_ent *e = &m->v[i];
    if (!e->text)
      return i;
    if (e->key == h && e->len == len) {
      m->compares++;
      if (!memcmp(e->text, text, len)) {
        *found = true;
        return i;
      }
    }
  }
  return UINT32_MAX;
}

/* The table twice as large (first: 64 slots), its entries placed again (one without room in its window is
 * dropped: the memo only saves work). False when the arena has no room. */
static bool sh_grow(struct nz_sh_memo *m, struct gw_arena *a)
{
  uint32_t ncap = m->cap ? 2 * m->cap : 64;
  struct nz_sh_ent *nv = gw_arena_alloc(a, sizeof *nv * ncap);
  if (!nv)
    return false;
  memset(nv, 0, sizeof *nv * ncap);
  struct nz_sh_memo old = *m;
  m->v = nv;
  m->n = 0;
  m->cap = ncap;
  for (uint32_t k = 0; k < old.cap; k++)
    if (old.v[k].text) {
      bool found;
      uint32_t i = sh_slot(m, old.v[k].key, old.v[k].text, old.v[k].len, &found);
      if (i != UINT32_MAX && !found) {
        m->v[i] = old.v[k];
        m->n++;
      }
    }
  return true;
}

/* A part's SimHash from the request's memo, else from the shared cache, else computed (and kept while there
 * is room; a history part also in the shared cache). */
static const struct gw_simhash_part *sh_part(struct nz_sh_memo *m, struct gw_arena *a, const char *text, size_t len,
                                             bool history, struct gw_simhash_part *tmp)
{
  uint64_t h = sh_key(text, len);
  bool found;
  uint32_t i = sh_slot(m, h, text, len, &found);
  if (found)
    return m->v[i].part;
  if (!m->shared || !nz_shc_get(m->shared, h, text, len, tmp)) {
    gw_simhash_part(text, len, tmp);
    if (m->shared && history)
      nz_shc_put(m->shared, h, text, len, tmp);
  }
  if (m->n >= NZ_SH_MEMO_MAX)
    return tmp;
  if (2 * (m->n + 1) > m->cap) { /* at most half full */
    if (!sh_grow(m, a))
      return tmp; /* hashed, not kept */
    i = sh_slot(m, h, text, len, &found);
  }
  struct gw_simhash_part *keep = i != UINT32_MAX ? gw_arena_alloc(a, sizeof *keep) : NULL;
  if (!keep)
    return tmp;
  *keep = *tmp;
  m->v[i] = (struct nz_sh_ent){text, len, h, keep};
  m->n++;
  return keep;
}

void nz_sh_begin(struct nz_sh_acc *s, struct nz_sh_memo *m, struct gw_arena *a)
{
  gw_simhash_join_init(&s->j);
  s->m = m;
  s->a = a;
  s->n = 0;
  gw_sb_init(&s->sb, a);
}

/* The parts gathered since the last memoized one, as one text joined by '\n' (copied only when several). */
static void sh_flush(struct nz_sh_acc *s)
{
  if (!s->n)
    return;
  struct gw_simhash_part tmp;
  if (s->n == 1)
    gw_simhash_part(s->one, s->one_len, &tmp);
  else
    gw_simhash_part(s->sb.buf, s->sb.len, &tmp);
  gw_simhash_join_add(&s->j, &tmp);
  s->n = 0;
  s->sb.len = 0;
}

void nz_sh_add(struct nz_sh_acc *s, const char *text, size_t len, bool history)
{
  if (s->m && len >= NZ_SH_MEMO_MIN) {
    sh_flush(s);
    struct gw_simhash_part tmp;
    gw_simhash_join_add(&s->j, sh_part(s->m, s->a, text, len, history, &tmp));
    return;
  }
  if (s->n == 1)
    gw_sb_putn(&s->sb, s->one, s->one_len);
  if (s->n) {
    gw_sb_putc(&s->sb, '\n');
    gw_sb_putn(&s->sb, text, len);
  } else {
    s->one = text;
    s->one_len = len;
  }
  s->n++;
}

bool nz_sh_end(struct nz_sh_acc *s, uint64_t *out, bool *oom)
{
  if (s->sb.oom) {
    *oom = true;
    return false;
  }
  sh_flush(s);
  return gw_simhash_join_end(&s->j, out);
}

bool nz_msgs_simhash(struct nz_ctx *c, const struct nz_msgs *m, uint64_t *out)
{
  struct nz_sh_acc s;
  nz_sh_begin(&s, c->shm, c->a);
  bool talk = m->n > 2; /* a conversation under way: its last message comes back as history next call */
  for (uint32_t i = 0; i < m->n; i++) {
    const struct nz_msg *msg = &m->v[i];
    for (uint32_t k = 0; k < msg->n; k++) {
      const struct nz_part *pt = &msg->parts[k];
      if (!pt->json && !strcmp(pt->type, "text"))
        nz_sh_add(&s, pt->text, pt->len, talk || i + 1 < m->n);
    }
  }
  return nz_sh_end(&s, out, &c->oom);
}

/* gen_ai.client.inference.operation.details carries the content attributes, structured (§3.4). */
void nz_semconv_events(struct nz_ctx *c, struct nz_msgs *in, struct nz_msgs *out, struct nz_msg *sys)
{
  for (size_t e = 0; e < c->span->n_events; e++) {
    const GwSpanEvent *ev = c->span->events[e];
    if (!ev->name || strcmp(ev->name, "gen_ai.client.inference.operation.details"))
      continue;
    const GwAnyValue *vin = NULL, *vout = NULL, *vsys = NULL;
    for (size_t i = 0; i < ev->n_attributes; i++) {
      const GwKeyValue *kv = ev->attributes[i];
      if (!kv->key)
        continue;
      if (!strcmp(kv->key, "gen_ai.input.messages"))
        vin = kv->value;
      else if (!strcmp(kv->key, "gen_ai.output.messages"))
        vout = kv->value;
      else if (!strcmp(kv->key, "gen_ai.system_instructions"))
        vsys = kv->value;
    }
    if (!in->n && vin)
      nz_msgs_from_value(c, vin, in);
    if (!out->n && vout)
      nz_msgs_from_value(c, vout, out);
    if (sys && !sys->n && vsys)
      nz_parts_from_value(c, vsys, sys);
  }
}
