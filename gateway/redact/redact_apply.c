/*
 * redact_apply.c: where redaction applies (DESIGN §5): every string of a decoded request that will be
 * forwarded, and every text field of the records that will be stored.
 *
 * Key decisions:
 * - Requests: string and bytes attribute values at every level (resource, scope, span, event, link
 *   attributes, through arrays and kvlists), span and event names, status messages, scope names and versions, trace
 *   states, schema URLs, log records' severity texts and event names: every string the client sends but
 *   attribute keys. Keys are looked up at every kvlist
 *   level; a nested key without a rule inherits its parent's. A drop removes the nearest key/value pair
 *   (an array element's drop removes the pair holding the array). Names and status messages cannot be
 *   removed: a drop or deny empties a status message and makes a name "[REDACTED]".
 * - Records: each field is redacted under the attribute key it comes from, so a rule for user.id treats
 *   the user_id column like the user.id attribute. Content fields are also truncated (redact_json.c).
 *   Records sharing one resource JSON (one ResourceSpans) redact it once. A record's attributes JSON is
 *   rendered again from the span attributes the request pass redacted, with their counts, when no member
 *   walk could give anything else (attributes_replay); else walked.
 * - Forwarded spans are not truncated: exporters see the full (redacted) values.
 * - The metric counts the request pass only, so a value forwarded and stored counts once.
 */
#include <stddef.h>
#include <string.h>

#include "decode/decode.h"
#include "normalize/normalize.h"
#include "redact/redact_int.h"

#define RD_MAX_DEPTH 256

bool gw_redact_walk_attributes;
_Thread_local size_t rd_attributes_replayed, rd_attributes_kept;

static void ctx_init(struct rd_ctx *c, const struct gw_redactor *r, struct gw_arena *a, struct gw_redact_stats *st,
                     struct gw_redact_memo *memo)
{
  memset(c, 0, sizeof *c);
  c->r = r;
  c->a = a;
  c->st = st;
  c->memo = memo;
  c->lim = rd_memo_limits(memo);
  c->user = -1;
  c->budget = SIZE_MAX;
  c->cap = SIZE_MAX;
}

/* The stop rc the memo's limits hold, if stop said stop. */
static gw_rc stopped(const struct rd_ctx *c) { return c->lim ? c->lim->stop_rc : GW_OK; }

static void count_deny(struct rd_ctx *c)
{
  if (c->st) {
    c->st->deny++;
    c->st->total++;
  }
}

/* s redacted under key (key rules, then the detectors), and cut when budget or cap say so (events' content,
 * as record content fields: budget is shared by a JSON value's long strings and updated, cap applies per
 * string); cutting applies with redaction off too. NULL when dropped, or out of memory (*oom when given). */
static const char *redact_value(const struct gw_redactor *r, const char *key, const char *s, size_t len,
                                struct gw_arena *a, struct gw_redact_stats *stats, struct gw_redact_memo *memo,
                                size_t *budget, size_t cap, bool *oom)
{
  struct rd_ctx c;
  ctx_init(&c, r, a, stats, memo);
  if (budget)
    c.budget = *budget;
  c.cap = cap;
  if (!s || (!r->enabled && !budget && cap == SIZE_MAX))
    return s;
  if (r->enabled) {
    bool allow;
    size_t klen = key ? strlen(key) : 0;
    if (!rd_key_enter(&c, klen ? key : NULL, klen, &allow)) {
      count_deny(&c);
      return NULL;
    }
    if (allow)
      return s;
  }
  const char *o;
  size_t ol;
  enum rd_res res = rd_value(&c, s, len, false, &o, &ol);
  if (c.oom) {
    if (oom)
      *oom = true;
    return NULL;
  }
  if (budget)
    *budget = c.budget;
  return res == RD_DROP ? NULL : res == RD_CHANGED ? o : s;
}

static const char *redact_string(const struct gw_redactor *r, const char *key, const char *s, size_t len,
                                 struct gw_arena *a, struct gw_redact_stats *stats, struct gw_redact_memo *memo)
{
  return redact_value(r, key, s, len, a, stats, memo, NULL, SIZE_MAX, NULL);
}

const char *gw_redact_string(const struct gw_redactor *r, const char *key, const char *s, size_t len,
                             struct gw_arena *a, struct gw_redact_stats *stats)
{
  return redact_string(r, key, s, len, a, stats, NULL);
}

static void add_stats_n(struct gw_redact_stats *to, const struct gw_redact_stats *from, size_t nk)
{
  to->total += from->total;
  to->deny += from->deny;
  to->truncated += from->truncated;
  to->limited += from->limited;
  for (size_t i = 0; i < nk; i++)
    to->kinds[i] += from->kinds[i];
}

/* ---- requests ---- */

static void kvs(struct rd_ctx *c, GwKeyValue **arr, size_t *n, int depth);

static enum rd_res any(struct rd_ctx *c, GwAnyValue *v, int depth)
{
  if (!v)
    return RD_SAME;
  if (depth > RD_MAX_DEPTH)
    return RD_DROP; /* decode bounds nesting far below this: fail closed */
  switch (v->value_case) {
  case GW_AV_STRING: {
    if (!v->string_value || !v->string_value[0])
      return RD_SAME;
    const char *o;
    size_t ol;
    enum rd_res res = rd_value(c, v->string_value, strlen(v->string_value), false, &o, &ol);
    if (res == RD_CHANGED) {
      v->string_value = (char *)o;
      c->changes++;
    }
    return res == RD_DROP ? RD_DROP : RD_SAME;
  }
  case GW_AV_BYTES: { /* scanned as text, or its ASCII runs when binary (redact_bytes.c) */
    const char *o;
    size_t ol;
    enum rd_res res = rd_bytes(c, v->bytes_value.data, v->bytes_value.len, &o, &ol);
    if (res == RD_CHANGED) {
      v->bytes_value = (ProtobufCBinaryData){ol, (uint8_t *)o};
      c->changes++;
    }
    return res == RD_DROP ? RD_DROP : RD_SAME;
  }
  case GW_AV_ARRAY:
    for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++)
      if (any(c, v->array_value->values[i], depth + 1) == RD_DROP)
        return RD_DROP;
    return RD_SAME;
  case GW_AV_KVLIST:
    if (v->kvlist_value)
      kvs(c, v->kvlist_value->values, &v->kvlist_value->n_values, depth + 1);
    return RD_SAME;
  default: return RD_SAME;
  }
}

/* The per-attribute bookkeeping of kvs_info: what one attribute's redaction counted and met. */
struct kv_watch {
  struct gw_redact_stats *st, scratch; /* the caller's counts; this attribute's (zero between attributes) */
  size_t longest;
  int jmax;
  bool refused;
  const char **before; /* an array attribute's string pointers before redaction (NULL: not known) */
  size_t nbefore;
};

/* Whether a record's walk of v, as a member of its attributes JSON, reads what this pass reads: a scalar or
 * an array of scalars (kvlists and bytes values are written differently there), and no string the
 * record's walk would take for base64 (rd_base64_value). Looked at before v is redacted. */
static bool scalar_ok(const GwAnyValue *v)
{
  if (!v)
    return true;
  switch (v->value_case) {
  case GW_AV_STRING: return !v->string_value || !rd_b64_text(v->string_value);
  case GW_AV_BOOL:
  case GW_AV_INT:
  case GW_AV_DOUBLE:
  case OPENTELEMETRY__PROTO__COMMON__V1__ANY_VALUE__VALUE__NOT_SET: return true;
  default: return false;
  }
}

static bool value_ok(const GwAnyValue *v)
{
  if (!v || v->value_case != GW_AV_ARRAY)
    return scalar_ok(v);
  for (size_t i = 0; v->array_value && i < v->array_value->n_values; i++)
    if (!v->array_value->values[i] || !scalar_ok(v->array_value->values[i]))
      return false;
  return true;
}

/*
 * An array's strings are redacted in place (each element's pointer replaced), so whether the record's
 * attributes JSON must be written again is known by comparing the pointers after the pass with those
 * before. Most arrays (finish reasons, stop sequences) hold nothing to redact and keep the JSON as
 * normalize rendered it. in->array: the pass may have changed one of them (also when the pointers could
 * not be kept).
 */
static void array_begin(struct rd_ctx *c, struct kv_watch *w, struct rd_kv_info *in, const GwAnyValue *v)
{
  w->before = NULL;
  w->nbefore = 0;
  in->array = v && v->value_case == GW_AV_ARRAY;
  if (!in->array || !in->ok)
    return;
  if (!v->array_value || !v->array_value->n_values) {
    in->array = false; /* nothing in it to change */
    return;
  }
  size_t n = v->array_value->n_values;
  w->before = gw_arena_alloc(c->a, n * sizeof *w->before);
  if (!w->before)
    return;
  w->nbefore = n;
  for (size_t i = 0; i < n; i++) {
    const GwAnyValue *e = v->array_value->values[i]; /* never NULL when in->ok (value_ok) */
    w->before[i] = e->value_case == GW_AV_STRING ? e->string_value : NULL;
  }
}

static void array_end(const struct kv_watch *w, struct rd_kv_info *in, const GwAnyValue *v)
{
  if (!in->array || !w->before || !v || v->value_case != GW_AV_ARRAY || !v->array_value ||
      v->array_value->n_values != w->nbefore)
    return;
  for (size_t i = 0; i < w->nbefore; i++) {
    const GwAnyValue *e = v->array_value->values[i];
    if (!e || (e->value_case == GW_AV_STRING ? e->string_value : NULL) != w->before[i])
      return;
  }
  in->array = false;
}

static void watch_begin(struct rd_ctx *c, struct kv_watch *w, struct rd_kv_info *in, const GwKeyValue *kv)
{
  in->kv = kv;
  in->text = kv->value && kv->value->value_case == GW_AV_STRING ? kv->value->string_value : NULL;
  in->ok = value_ok(kv->value);
  array_begin(c, w, in, kv->value);
  w->longest = c->longest;
  w->jmax = c->jmax;
  w->refused = c->refused;
  c->longest = 0;
  c->jmax = c->jdepth;
  c->refused = false;
  c->st = &w->scratch;
}

/* ... and whether the record's walk would give what this pass gave: no limit met, and room for its JSON
 * levels one level deeper. Cuts are checked when replaying (against the record's cap). */
static bool replayable(const struct rd_ctx *c, const struct rd_kv_info *in)
{
  if (!in->ok || c->oom || (in->ncounts && !in->counts))
    return false;
  if (c->lim && (c->lim->why || c->lim->stop_rc))
    return false;
  return !c->refused && c->jmax - c->jdepth <= RJ_MAX_NEST - 1;
}

static void watch_end(struct rd_ctx *c, struct kv_watch *w, struct rd_kv_info *in, bool keep, size_t nk)
{
  struct gw_redact_stats *s = &w->scratch;
  c->st = w->st;
  bool counted = s->total || s->deny || s->limited || s->truncated;
  if (counted) {
    in->total = s->total;
    in->deny = s->deny;
    size_t nc = 0;
    for (size_t k = 0; k < nk; k++)
      nc += s->kinds[k] != 0;
    in->ncounts = (uint16_t)nc;
    in->counts = nc ? gw_arena_alloc(c->a, nc * sizeof *in->counts) : NULL;
    for (size_t k = 0, j = 0; in->counts && k < nk; k++)
      if (s->kinds[k]) {
        in->counts[j][0] = (uint16_t)k;
        in->counts[j++][1] = s->kinds[k] > UINT16_MAX ? UINT16_MAX : (uint16_t)s->kinds[k];
      }
  }
  in->dropped = !keep;
  in->longest = c->longest;
  in->ok = !s->limited && !s->truncated && replayable(c, in);
  for (size_t k = 0; counted && in->ok && k < nk; k++) /* (all zero when nothing was counted) */
    in->ok = s->kinds[k] <= UINT16_MAX;
  if (counted) {
    add_stats_n(c->st, s, nk);
    memset(s, 0, sizeof *s);
  }
  if (w->longest > c->longest)
    c->longest = w->longest;
  if (w->jmax > c->jmax)
    c->jmax = w->jmax;
  c->refused |= w->refused;
}

/* info: when given (a span's attributes, with a memo), what each attribute's redaction did is kept there,
 * index by index as the array is before dropped attributes leave it. */
static void kvs_info(struct rd_ctx *c, GwKeyValue **arr, size_t *n, int depth, struct rd_kv_info *info)
{
  size_t w = 0, nk = GW_RK__COUNT + c->r->nuser;
  struct kv_watch watch;
  if (info) {
    watch.st = c->st;
    memset(&watch.scratch, 0, sizeof watch.scratch);
  }
  for (size_t i = 0; i < *n; i++) {
    GwKeyValue *kv = arr[i];
    if (!kv) {
      c->changes++; /* left out of the array */
      continue;
    }
    if (info)
      watch_begin(c, &watch, &info[i], kv);
    enum gw_redact_action act = c->key_action;
    bool secret = c->secret_key, auth = c->auth_key, allow, keep = true;
    const char *key = kv->key && kv->key[0] ? kv->key : NULL;
    if (!rd_key_enter(c, key, key ? strlen(key) : 0, &allow)) {
      count_deny(c);
      keep = false;
    } else if (!allow && any(c, kv->value, depth) == RD_DROP) {
      keep = false;
    }
    c->key_action = act;
    c->secret_key = secret;
    c->auth_key = auth;
    if (info) {
      array_end(&watch, &info[i], kv->value);
      watch_end(c, &watch, &info[i], keep, nk);
    }
    if (keep)
      arr[w++] = kv;
    else
      c->changes++;
  }
  *n = w;
}

static void kvs(struct rd_ctx *c, GwKeyValue **arr, size_t *n, int depth) { kvs_info(c, arr, n, depth, NULL); }

/* The fixed keys of names and messages (their rules are looked up once: r->fixed, rd_apply_prepare). */
enum text_key { TK_SCOPE_NAME, TK_SCOPE_VERSION, TK_SCHEMA_URL, TK_SPAN_NAME, TK_TRACE_STATE, TK_EVENT_NAME,
                TK_STATUS_MESSAGE, TK_SEVERITY_TEXT, TK__COUNT };
static const char *const text_keys[TK__COUNT] = {
  [TK_SCOPE_NAME] = "otel.scope.name", [TK_SCOPE_VERSION] = "otel.scope.version", [TK_SCHEMA_URL] = "schema_url",
  [TK_SPAN_NAME] = "span.name",        [TK_TRACE_STATE] = "trace_state",          [TK_EVENT_NAME] = "event.name",
  [TK_STATUS_MESSAGE] = "status.message", [TK_SEVERITY_TEXT] = "log.severity_text",
};
#define TK_FIXED 0 /* r->fixed[TK_FIXED + tk]; the record fields' follow */

/* A name or message: replaced, never removed. */
static void text(struct rd_ctx *c, char **field, enum text_key tk, const char *dropped)
{
  if (!*field || !**field)
    return;
  enum gw_redact_action act = c->key_action;
  bool allow;
  if (!rd_key_enter_info(c, &c->r->fixed[TK_FIXED + tk], &allow)) {
    count_deny(c);
    *field = (char *)dropped;
    c->changes++;
  } else if (!allow) {
    const char *o;
    size_t ol;
    enum rd_res res = rd_value(c, *field, strlen(*field), false, &o, &ol);
    if (res == RD_CHANGED)
      *field = (char *)o;
    else if (res == RD_DROP)
      *field = (char *)dropped;
    c->changes += res != RD_SAME;
  }
  c->key_action = act;
  c->secret_key = false;
  c->auth_key = false;
}

/* A scope's name and version, and the schema URL of its group, under the keys semconv gives them. */
static void scope_texts(struct rd_ctx *c, GwScope *scope, char **schema_url)
{
  if (scope) {
    text(c, &scope->name, TK_SCOPE_NAME, "[REDACTED]");
    text(c, &scope->version, TK_SCOPE_VERSION, "");
    kvs(c, scope->attributes, &scope->n_attributes, 0);
  }
  text(c, schema_url, TK_SCHEMA_URL, "");
}

/* A request's redactions go to the metric (once per value forwarded); OOM when the arena ran out. */
static gw_rc count_request(const struct gw_redactor *r, const struct gw_redact_stats *st, const struct rd_ctx *c)
{
  for (size_t i = 0; i < GW_RK__COUNT + r->nuser; i++)
    rd_metric_add(r->metric_slot[i], st->kinds[i]);
  rd_metric_add(rd_metric_slot_deny(), st->deny);
  return c->oom ? GW_ERR(TOO_LARGE) : stopped(c);
}

gw_rc gw_redact_request(const struct gw_redactor *r, GwTraceRequest *req, struct gw_arena *a,
                        struct gw_redact_memo *memo)
{
  return gw_redact_request_raw(r, req, a, memo, NULL);
}

gw_rc gw_redact_request_raw(const struct gw_redactor *r, GwTraceRequest *req, struct gw_arena *a,
                            struct gw_redact_memo *memo, struct gw_pb_raw *raw)
{
  size_t raw_at = 0;
  if (!r->enabled || !req)
    return GW_OK;
  struct gw_redact_stats st;
  memset(&st, 0, sizeof st);
  struct rd_ctx c;
  ctx_init(&c, r, a, &st, memo);
  for (size_t i = 0; i < req->n_resource_spans; i++) {
    GwResourceSpans *rs = req->resource_spans[i];
    if (!rs)
      continue;
    if (rs->resource)
      kvs(&c, rs->resource->attributes, &rs->resource->n_attributes, 0);
    text(&c, &rs->schema_url, TK_SCHEMA_URL, "");
    for (size_t j = 0; j < rs->n_scope_spans; j++) {
      GwScopeSpans *ss = rs->scope_spans[j];
      if (!ss)
        continue;
      scope_texts(&c, ss->scope, &ss->schema_url);
      for (size_t k = 0; k < ss->n_spans; k++) {
        GwSpan *sp = ss->spans[k];
        if (!sp)
          continue;
        size_t changes = c.changes;
        text(&c, &sp->name, TK_SPAN_NAME, "[REDACTED]");
        text(&c, &sp->trace_state, TK_TRACE_STATE, "");
        kvs_info(&c, sp->attributes, &sp->n_attributes, 0,
                 memo && sp->n_attributes ? rd_memo_span_add(memo, sp, sp->n_attributes) : NULL);
        for (size_t e = 0; e < sp->n_events; e++)
          if (sp->events[e]) {
            text(&c, &sp->events[e]->name, TK_EVENT_NAME, "[REDACTED]");
            kvs(&c, sp->events[e]->attributes, &sp->events[e]->n_attributes, 0);
          }
        for (size_t l = 0; l < sp->n_links; l++)
          if (sp->links[l]) {
            text(&c, &sp->links[l]->trace_state, TK_TRACE_STATE, "");
            kvs(&c, sp->links[l]->attributes, &sp->links[l]->n_attributes, 0);
          }
        if (sp->status)
          text(&c, &sp->status->message, TK_STATUS_MESSAGE, "");
        if (c.changes != changes)
          gw_pb_raw_changed(raw, &raw_at, sp);
      }
    }
  }
  return count_request(r, &st, &c);
}

gw_rc gw_redact_logs_request(const struct gw_redactor *r, GwLogsRequest *req, struct gw_arena *a,
                             struct gw_redact_memo *memo)
{
  if (!r->enabled || !req)
    return GW_OK;
  struct gw_redact_stats st;
  memset(&st, 0, sizeof st);
  struct rd_ctx c;
  ctx_init(&c, r, a, &st, memo);
  for (size_t i = 0; i < req->n_resource_logs; i++) {
    GwResourceLogs *rl = req->resource_logs[i];
    if (!rl)
      continue;
    if (rl->resource)
      kvs(&c, rl->resource->attributes, &rl->resource->n_attributes, 0);
    text(&c, &rl->schema_url, TK_SCHEMA_URL, "");
    for (size_t j = 0; j < rl->n_scope_logs; j++) {
      GwScopeLogs *sl = rl->scope_logs[j];
      if (!sl)
        continue;
      scope_texts(&c, sl->scope, &sl->schema_url);
      for (size_t k = 0; k < sl->n_log_records; k++) {
        GwLogRecord *l = sl->log_records[k];
        if (!l)
          continue;
        text(&c, &l->severity_text, TK_SEVERITY_TEXT, "");
        text(&c, &l->event_name, TK_EVENT_NAME, "[REDACTED]");
        kvs(&c, l->attributes, &l->n_attributes, 0);
        /* The body is the record's message: a string or a kvlist (GenAI events: content, message,
         * tool_calls, ...); a dropped body becomes an empty one, the record itself is kept. */
        if (l->body && any(&c, l->body, 0) == RD_DROP)
          l->body = NULL;
      }
    }
  }
  return count_request(r, &st, &c);
}

/* ---- records ---- */

enum rf_mode { RF_TEXT, RF_CONTENT_TEXT, RF_CONTENT_JSON, RF_ATTR_JSON };

/* rt: the field's enum gw_rtext + 1 for the record's long texts (their lengths kept in the record), else 0. */
static const struct {
  size_t off;
  const char *key;
  enum rf_mode mode;
  uint8_t rt;
} rfields[] = {
#define RF(field, key, mode) {offsetof(struct gw_record, field), key, mode, 0}
#define RFT(field, key, mode, rt) {offsetof(struct gw_record, field), key, mode, (uint8_t)((rt) + 1)}
  RF(service_name, "service.name", RF_TEXT),
  RF(scope_name, "otel.scope.name", RF_TEXT),
  RF(span_name, "span.name", RF_TEXT),
  RF(operation, "gen_ai.operation.name", RF_TEXT),
  RF(provider, "gen_ai.provider.name", RF_TEXT),
  RF(request_model, "gen_ai.request.model", RF_TEXT),
  RF(response_model, "gen_ai.response.model", RF_TEXT),
  RF(model_id, "gen_ai.response.model", RF_TEXT),
  RF(session_id, "session.id", RF_TEXT),
  RF(user_id, "user.id", RF_TEXT),
  RF(error_code, "error.type", RF_TEXT),
  RF(service_tier, "openai.response.service_tier", RF_TEXT),
  RF(agent_name, "gen_ai.agent.name", RF_TEXT),
  RF(workflow_name, "gen_ai.workflow.name", RF_TEXT),
  RF(prompt_name, "gen_ai.prompt.name", RF_TEXT),
  RF(prompt_version, "llm.prompt_template.version", RF_TEXT),
  RFT(error_message, "status.message", RF_CONTENT_TEXT, GW_RT_ERROR_MESSAGE),
  RFT(system_prompt, "gen_ai.system_instructions", RF_CONTENT_TEXT, GW_RT_SYSTEM_PROMPT),
  RFT(prompt_content, "gen_ai.input.messages", RF_CONTENT_JSON, GW_RT_PROMPT_CONTENT),
  RFT(response_content, "gen_ai.output.messages", RF_CONTENT_JSON, GW_RT_RESPONSE_CONTENT),
  RFT(parameters, NULL, RF_ATTR_JSON, GW_RT_PARAMETERS),
  RFT(attributes, NULL, RF_ATTR_JSON, GW_RT_ATTRIBUTES),
  RFT(resource, NULL, RF_ATTR_JSON, GW_RT_RESOURCE),
#undef RF
#undef RFT
};

#define NRFIELDS (sizeof rfields / sizeof rfields[0])
#define RF_FIXED TK__COUNT /* r->fixed[RF_FIXED + field index] */
_Static_assert(TK__COUNT + NRFIELDS <= RD_FIXED_KEYS, "RD_FIXED_KEYS too small for the fixed keys");

void rd_apply_prepare(struct gw_redactor *r)
{
  for (int t = 0; t < TK__COUNT; t++)
    r->fixed[TK_FIXED + t] = rd_key_info(r, text_keys[t], strlen(text_keys[t]));
  for (size_t f = 0; f < NRFIELDS; f++)
    r->fixed[RF_FIXED + f] = rd_key_info(r, rfields[f].key, rfields[f].key ? strlen(rfields[f].key) : 0);
}

struct res_cache {
  const char *in, *out;
  size_t outlen;
  struct gw_redact_stats st;
  bool truncated;
};

/* Points field fi of rec at s, of length n: through gw_record_set_text for the long texts. */
static void field_set(struct gw_record *rec, size_t fi, const char *s, size_t n)
{
  if (rfields[fi].rt)
    gw_record_set_text(rec, (enum gw_rtext)(rfields[fi].rt - 1), s, n);
  else
    *(const char **)((char *)rec + rfields[fi].off) = s;
}

static void field(const struct gw_redactor *r, struct gw_arena *a, struct gw_record *rec, size_t fi,
                  struct gw_redact_stats *st, struct gw_redact_memo *memo, bool *oom)
{
  const char **fp = (const char **)((char *)rec + rfields[fi].off);
  if (!*fp)
    return;
  struct rd_ctx c;
  ctx_init(&c, r, a, st, memo);
  size_t max = r->max_content ? r->max_content : SIZE_MAX;
  if (rfields[fi].mode == RF_CONTENT_JSON)
    c.budget = max;
  else if (rfields[fi].mode != RF_TEXT) /* ids and names are never cut: they are join keys */
    c.cap = max;
  if (r->enabled && rfields[fi].key) {
    bool allow;
    if (!rd_key_enter_info(&c, &r->fixed[RF_FIXED + fi], &allow)) {
      count_deny(&c);
      field_set(rec, fi, NULL, 0);
      return;
    }
    if (allow)
      return;
  }
  const char *o;
  size_t ol;
  size_t len = rfields[fi].rt ? gw_record_text_len(rec, (enum gw_rtext)(rfields[fi].rt - 1)) : strlen(*fp);
  enum rd_res res = rd_value(&c, *fp, len, rfields[fi].mode == RF_ATTR_JSON, &o, &ol);
  if (c.oom)
    *oom = true;
  if (res == RD_DROP) {
    if (rfields[fi].mode == RF_ATTR_JSON)
      field_set(rec, fi, "{}", 2);
    else
      field_set(rec, fi, NULL, 0);
  } else if (res == RD_CHANGED) {
    field_set(rec, fi, o, ol);
  }
  if (c.truncated)
    gw_record_set_flag(rec, GW_FLAG_CONTENT_TRUNCATED);
}

/* The next attribute of the span's (request pass) info that is kv, from *j on; NULL when none. */
static const struct rd_kv_info *kv_info_find(const struct rd_span_info *si, size_t *j, const void *kv)
{
  while (*j < si->n && si->v[*j].kv != kv)
    (*j)++;
  return *j < si->n ? &si->v[(*j)++] : NULL;
}

/*
 * A record's attributes JSON without walking it: normalize rendered it from the span's attributes, which the
 * request pass has just redacted one by one, so when each of them is replayable (rd_kv_info.ok, and no
 * string of it longer than the record's cap) the walk would give, member by member, what the request pass
 * gave: the redacted value, the member removed where the attribute was, the same counts. The JSON is then
 * rendered again from the redacted attributes (unchanged: the same text is kept). Only while the request's
 * scan budget is less than half spent: the walk skipped is not charged, and must not decide where a budget
 * runs out. 1: done, 0: walk it, -1: out of memory.
 */
static int attributes_replay(const struct gw_redactor *r, struct gw_arena *a, struct gw_record *rec,
                             struct gw_redact_stats *st, struct gw_redact_memo *memo)
{
  const struct rd_limits *lim = rd_memo_limits(memo);
  if (!lim || !r->enabled || !rec->span || !rec->attr_kvs || !rec->attributes)
    return 0;
  if (lim->stop_rc || lim->why || (lim->work_max && lim->work > lim->work_max / 2))
    return 0;
  const struct rd_span_info *si = rd_memo_span_get(memo, rec->span);
  if (!si)
    return 0;
  size_t cap = r->max_content ? r->max_content : SIZE_MAX, j = 0, nkept = 0;
  bool changed = false;
  for (size_t i = 0; i < rec->n_attr_kvs; i++) {
    const GwKeyValue *kv = rec->attr_kvs[i];
    if (!kv->key || !kv->key[0])
      continue; /* not in the JSON */
    const struct rd_kv_info *in = kv_info_find(si, &j, kv);
    if (!in || !in->ok || in->longest > cap)
      return 0;
    const GwAnyValue *v = kv->value;
    if (in->dropped || in->array || (v && v->value_case == GW_AV_STRING && v->string_value != in->text))
      changed = true; /* an array whose strings the pass replaced (in place): written again */
    nkept += !in->dropped;
  }
  j = 0;
  for (size_t i = 0; i < rec->n_attr_kvs; i++) {
    const GwKeyValue *kv = rec->attr_kvs[i];
    if (!kv->key || !kv->key[0])
      continue;
    const struct rd_kv_info *in = kv_info_find(si, &j, kv);
    st->total += in->total;
    st->deny += in->deny;
    for (uint16_t k = 0; k < in->ncounts; k++)
      st->kinds[in->counts[k][0]] += in->counts[k][1];
  }
  rd_attributes_replayed++;
  if (!changed) {
    rd_attributes_kept++;
    return 1;
  }
  GwKeyValue **kept = gw_arena_alloc(a, (nkept ? nkept : 1) * sizeof *kept);
  if (!kept)
    return -1;
  size_t w = 0;
  j = 0;
  for (size_t i = 0; i < rec->n_attr_kvs; i++) {
    GwKeyValue *kv = rec->attr_kvs[i];
    if (!kv->key || !kv->key[0])
      continue;
    if (!kv_info_find(si, &j, kv)->dropped)
      kept[w++] = kv;
  }
  size_t jlen = 0;
  const char *json = gw_render_attributes(a, kept, w, &jlen);
  if (!json)
    return -1;
  gw_record_set_text(rec, GW_RT_ATTRIBUTES, json, jlen);
  return 1;
}

gw_rc gw_redact_records(const struct gw_redactor *r, struct gw_record *recs, size_t n, struct gw_arena *a,
                        struct gw_redact_memo *memo)
{
  bool oom = false;
  size_t nk = GW_RK__COUNT + r->nuser;
  struct res_cache cache = {0};
  for (size_t i = 0; i < n && !oom; i++) {
    struct gw_record *rec = &recs[i];
    struct gw_redact_stats st;
    memset(&st, 0, sizeof st);
    for (size_t f = 0; f < sizeof rfields / sizeof rfields[0]; f++) {
      if (rfields[f].off == offsetof(struct gw_record, resource) && rec->resource) {
        if (cache.in && rec->resource == cache.in) {
          gw_record_set_text(rec, GW_RT_RESOURCE, cache.out, cache.outlen);
          add_stats_n(&st, &cache.st, nk);
          if (cache.truncated)
            gw_record_set_flag(rec, GW_FLAG_CONTENT_TRUNCATED);
          continue;
        }
        struct gw_redact_stats rst;
        memset(&rst, 0, sizeof rst);
        bool had = gw_record_has_flag(rec, GW_FLAG_CONTENT_TRUNCATED);
        rec->flags &= ~(1u << GW_FLAG_CONTENT_TRUNCATED);
        cache.in = rec->resource;
        field(r, a, rec, f, &rst, memo, &oom);
        cache.out = rec->resource;
        cache.outlen = gw_record_text_len(rec, GW_RT_RESOURCE);
        cache.st = rst;
        cache.truncated = gw_record_has_flag(rec, GW_FLAG_CONTENT_TRUNCATED);
        if (had)
          gw_record_set_flag(rec, GW_FLAG_CONTENT_TRUNCATED);
        add_stats_n(&st, &rst, nk);
        continue;
      }
      if (rfields[f].off == offsetof(struct gw_record, attributes) && !gw_redact_walk_attributes) {
        int done = attributes_replay(r, a, rec, &st, memo);
        if (done < 0)
          oom = true;
        if (done)
          continue;
      }
      field(r, a, rec, f, &st, memo, &oom);
    }
    if (!r->enabled)
      continue;
    rec->redaction_count = (struct gw_opt_i64){st.total, true};
    uint32_t nkinds = (st.deny ? 1 : 0) + (st.limited ? 1 : 0);
    for (size_t k = 0; k < nk; k++)
      nkinds += st.kinds[k] != 0;
    rec->redacted_kinds = (struct gw_strv){NULL, 0};
    if (!nkinds)
      continue;
    const char **v = gw_arena_alloc(a, nkinds * sizeof *v);
    if (!v) {
      oom = true;
      break;
    }
    uint32_t w = 0;
    for (size_t k = 0; k < nk; k++)
      if (st.kinds[k])
        v[w++] = gw_arena_strdup(a, r->det[k].name);
    if (st.deny)
      v[w++] = "deny_list";
    if (st.limited)
      v[w++] = "redaction_limit";
    for (uint32_t k = 0; k < w; k++)
      if (!v[k])
        oom = true;
    rec->redacted_kinds = (struct gw_strv){v, w};
  }
  if (oom || gw_arena_exhausted(a))
    return GW_ERR(TOO_LARGE);
  struct rd_limits *lim = rd_memo_limits(memo);
  return lim ? lim->stop_rc : GW_OK;
}

gw_rc gw_redact_trace_facts(const struct gw_redactor *r, struct gw_trace_fact *facts, size_t n, struct gw_arena *a,
                            struct gw_redact_memo *memo)
{
  bool oom = false;
  for (size_t i = 0; i < n && !oom; i++) {
    /* the two fields as a record's: the same keys, rules and memo (field() reads nothing else of it) */
    struct gw_record rec;
    memset(&rec, 0, sizeof rec);
    rec.session_id = facts[i].session_id;
    rec.user_id = facts[i].user_id;
    struct gw_redact_stats st;
    memset(&st, 0, sizeof st);
    for (size_t f = 0; f < NRFIELDS; f++)
      if (rfields[f].off == offsetof(struct gw_record, session_id) || rfields[f].off == offsetof(struct gw_record, user_id))
        field(r, a, &rec, f, &st, memo, &oom);
    facts[i].session_id = rec.session_id;
    facts[i].user_id = rec.user_id;
  }
  if (oom || gw_arena_exhausted(a))
    return GW_ERR(TOO_LARGE);
  struct rd_limits *lim = rd_memo_limits(memo);
  return lim ? lim->stop_rc : GW_OK;
}

/* ---- GenAI events ---- */

/* The content budget of one span and direction in a request: its events' messages share one
 * max_content_bytes, as prompt_content's messages share one on a span row. */
struct ev_budget {
  const struct gw_event *first; /* an event of the group: its trace, span and key */
  const char *key;
  size_t left;
};

static size_t *group_budget(struct ev_budget *tab, size_t mask, const struct gw_event *e, const char *key,
                            size_t max)
{
  uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)key;
  for (const char *p = e->span_id; *p; p++)
    h = (h ^ (unsigned char)*p) * 1099511628211ull;
  for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
    struct ev_budget *b = &tab[i];
    if (!b->first) {
      b->first = e;
      b->key = key;
      b->left = max;
      return &b->left;
    }
    if (b->key == key && !strcmp(b->first->span_id, e->span_id) && !strcmp(b->first->trace_id, e->trace_id))
      return &b->left;
  }
}

gw_rc gw_redact_events(const struct gw_redactor *r, struct gw_event *evs, size_t n, struct gw_arena *a,
                       struct gw_redact_memo *memo)
{
  size_t nk = GW_RK__COUNT + r->nuser;
  size_t max = r->max_content ? r->max_content : SIZE_MAX;
  size_t cap = 16;
  while (cap < 2 * n)
    cap *= 2;
  struct ev_budget *tab = n ? gw_arena_calloc(a, cap * sizeof *tab) : NULL;
  if (n && !tab)
    return GW_ERR(TOO_LARGE);
  bool oom = false;
  for (size_t i = 0; i < n; i++) {
    struct gw_event *e = &evs[i];
    /* The attribute key a span would carry this content under, so key rules treat both paths alike. */
    const char *key = !e->direction                    ? NULL
                      : !strcmp(e->direction, "output") ? "gen_ai.output.messages"
                      : e->role && !strcmp(e->role, "system") ? "gen_ai.system_instructions"
                                                             : "gen_ai.input.messages";
    struct gw_redact_stats st, tst;
    memset(&st, 0, sizeof st);
    memset(&tst, 0, sizeof tst);
    if (e->content) {
      size_t own = max, *budget = e->trace_id[0] && e->span_id[0] ? group_budget(tab, cap - 1, e, key, max) : &own;
      e->content = redact_value(r, key, e->content, strlen(e->content), a, &st, memo, budget, SIZE_MAX, &oom);
    }
    if (e->text_content) /* the same text as content's parts: counted once, from content */
      e->text_content = redact_value(r, key, e->text_content, strlen(e->text_content), a, &tst, memo, NULL, max, &oom);
    if (e->event_name) { /* a name, never cut (part of the row's key): as the log record's own */
      const char *nm = redact_value(r, "event.name", e->event_name, strlen(e->event_name), a, &st, memo, NULL,
                                    SIZE_MAX, &oom);
      e->event_name = nm ? nm : "[REDACTED]";
    }
    if (oom)
      return GW_ERR(TOO_LARGE);
    if (!e->content)
      e->text_content = NULL;
    if (!r->enabled)
      continue;
    e->redaction_count = (struct gw_opt_i64){st.total, true};
    uint32_t nkinds = (st.deny ? 1 : 0) + (st.limited ? 1 : 0);
    for (size_t k = 0; k < nk; k++)
      nkinds += st.kinds[k] != 0;
    e->redacted_kinds = (struct gw_strv){NULL, 0};
    if (!nkinds)
      continue;
    const char **v = gw_arena_alloc(a, nkinds * sizeof *v);
    if (!v)
      return GW_ERR(TOO_LARGE);
    uint32_t w = 0;
    for (size_t k = 0; k < nk; k++)
      if (st.kinds[k])
        v[w++] = r->det[k].name;
    if (st.deny)
      v[w++] = "deny_list";
    if (st.limited)
      v[w++] = "redaction_limit";
    e->redacted_kinds = (struct gw_strv){v, w};
  }
  struct rd_limits *lim = rd_memo_limits(memo);
  return lim ? lim->stop_rc : GW_OK;
}
