/*
 * langfuse.c: the Langfuse backend (DESIGN §7, SPEC-FACTS §4.4-4.5, §5.1).
 *
 * OTLP/HTTP protobuf to {endpoint}/api/public/otel/v1/traces with Authorization: Basic
 * base64(public_key:secret_key) and x-langfuse-ingestion-version: 4. Langfuse has no gRPC and no logs
 * endpoint: gRPC senders are bridged by the gateway, and log entries are passed over. Its answer is a JSON
 * body, not an OTLP response, so only the status counts. It rejects a whole request with 400 for one
 * malformed id: the generic payload code leaves such spans out before sending.
 *
 * Langfuse's own copy of each span gets, from the span's interaction record:
 * - langfuse.observation.usage_details: Langfuse's exclusive buckets (input without cache read/write,
 *   output without reasoning; keys input, output, total, input_cached_tokens, input_cache_creation,
 *   output_reasoning_tokens), so its cost matches ours and nothing is counted twice;
 * - langfuse.observation.cost_details: our cost in USD (input, output, total), which Langfuse then uses
 *   instead of computing its own;
 * - langfuse.user.id / langfuse.session.id on every span of the trace (Langfuse filters per observation,
 *   and its docs ask for them on every span): taken from any record or span of the trace in the batch,
 *   and remembered for later batches in a small per-exporter cache.
 * - gen_ai.input.messages / gen_ai.output.messages from the GenAI events (OTLP log records, e.g. the
 *   official OpenTelemetry instrumentations' gen_ai.user.message / gen_ai.choice) of the same span, which
 *   the exporter's join (otlp/join.c) keeps from the logs entries it reads, and for which it holds a span
 *   back when they have not come yet: Langfuse takes no logs, so this is the only way such content
 *   reaches it. Spans the join holds are seen here only to learn their trace's ids.
 * A key the client already set is never overwritten.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "export_int.h"

#define ID_CACHE 4096 /* traces remembered for their user/session ids */
#define ID_MAX 256    /* longer ids are not propagated (a real user or session id is far shorter) */

struct ids {
  uint8_t trace[16];
  bool used;
  char user[ID_MAX], session[ID_MAX];
};

struct langfuse {
  struct ids cache[ID_CACHE]; /* open addressing by trace id; a full probe run evicts the home slot */
};

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *base64(const char *s)
{
  size_t n = strlen(s), o = 0;
  char *out = gw_malloc((n + 2) / 3 * 4 + 1);
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)(unsigned char)s[i] << 16;
    if (i + 1 < n)
      v |= (uint32_t)(unsigned char)s[i + 1] << 8;
    if (i + 2 < n)
      v |= (unsigned char)s[i + 2];
    out[o++] = b64[(v >> 18) & 63];
    out[o++] = b64[(v >> 12) & 63];
    out[o++] = i + 1 < n ? b64[(v >> 6) & 63] : '=';
    out[o++] = i + 2 < n ? b64[v & 63] : '=';
  }
  out[o] = '\0';
  return out;
}

static gw_rc headers(const struct gw_conf_exporter *c, struct gw_export_headers *h, struct gw_err *err)
{
  size_t n = strlen(c->public_key) + strlen(c->secret_key) + 2;
  char *pair = gw_malloc(n);
  snprintf(pair, n, "%s:%s", c->public_key, c->secret_key);
  char *enc = base64(pair);
  size_t vn = strlen(enc) + 7;
  char *value = gw_malloc(vn);
  snprintf(value, vn, "Basic %s", enc);
  gw_rc rc = gw_export_headers_add(h, "authorization", value);
  if (!rc)
    rc = gw_export_headers_add(h, "x-langfuse-ingestion-version", "4");
  memset(pair, 0, n);
  memset(enc, 0, strlen(enc));
  memset(value, 0, vn);
  free(pair);
  free(enc);
  free(value);
  if (rc)
    gw_err_set(err, rc, "exporters.langfuse.headers: too many headers");
  return rc;
}

static void *create(const struct gw_conf_exporter *c) { return gw_calloc(1, sizeof(struct langfuse)); }
static void destroy(void *priv) { free(priv); }

/* ---- trace ids -> user/session ---- */

static size_t home(const uint8_t *t)
{
  uint64_t h;
  memcpy(&h, t + 8, sizeof h); /* trace ids are random (W3C): their low bytes hash well enough */
  return (size_t)(h % ID_CACHE);
}

static struct ids *cache_find(struct langfuse *lf, const uint8_t *t)
{
  size_t h = home(t);
  for (size_t k = 0; k < 8; k++) {
    struct ids *e = &lf->cache[(h + k) % ID_CACHE];
    if (!e->used)
      return NULL;
    if (!memcmp(e->trace, t, 16))
      return e;
  }
  return NULL;
}

/* Remember a trace's user and/or session id (NULL / 0: not this one). */
static void cache_put(struct langfuse *lf, const uint8_t *t, const char *user, size_t ul, const char *session,
                      size_t sl)
{
  if (ul >= ID_MAX || sl >= ID_MAX)
    return;
  struct ids *e = cache_find(lf, t);
  if (!e) {
    size_t h = home(t);
    e = &lf->cache[h];
    for (size_t k = 0; k < 8; k++)
      if (!lf->cache[(h + k) % ID_CACHE].used) {
        e = &lf->cache[(h + k) % ID_CACHE];
        break;
      }
    e->used = true;
    e->user[0] = e->session[0] = '\0';
    memcpy(e->trace, t, 16);
  }
  if (ul) {
    memcpy(e->user, user, ul);
    e->user[ul] = '\0';
  }
  if (sl) {
    memcpy(e->session, session, sl);
    e->session[sl] = '\0';
  }
}

/* ---- what the transform reads of each span, found in one pass over its attributes ---- */

enum span_key {
  K_USAGE, K_COST,                   /* ours, when the client already set them */
  K_LF_USER, K_USER, K_ENDUSER,      /* user id, in Langfuse's order of reading them */
  K_LF_SESSION, K_SESSION, K_CONV,   /* session id, likewise */
  K_IN, K_OUT,                       /* message content */
  K__N
};
static const struct {
  const char *s;
  size_t n;
} key_name[K__N] = {
#define KN(lit) {lit, sizeof lit - 1}
  KN("langfuse.observation.usage_details"),
  KN("langfuse.observation.cost_details"),
  KN("langfuse.user.id"),
  KN("user.id"),
  KN("enduser.id"),
  KN("langfuse.session.id"),
  KN("session.id"),
  KN("gen_ai.conversation.id"),
  KN("gen_ai.input.messages"),
  KN("gen_ai.output.messages"),
#undef KN
};

struct span_view {
  struct gw_export_span *sp;
  const struct gw_export_attr *kv[K__N];
};

static void view_scan(struct span_view *v, struct gw_export_span *sp)
{
  memset(v, 0, sizeof *v);
  v->sp = sp;
  for (size_t i = 0; i < sp->nattrs; i++) {
    const struct gw_export_attr *kv = &sp->attrs[i];
    if (!kv->klen)
      continue;
    static const int8_t l_keys[] = {K_USAGE, K_COST, K_LF_USER, K_LF_SESSION, -1}, u_keys[] = {K_USER, -1},
                        e_keys[] = {K_ENDUSER, -1}, s_keys[] = {K_SESSION, -1}, g_keys[] = {K_CONV, K_IN, K_OUT, -1};
    const int8_t *cand; /* the keys this one may be, by its first byte */
    switch (kv->key[0]) {
    case 'l': cand = l_keys; break;
    case 'u': cand = u_keys; break;
    case 'e': cand = e_keys; break;
    case 's': cand = s_keys; break;
    case 'g': cand = g_keys; break;
    default: continue;
    }
    for (int k; (k = *cand) >= 0; cand++)
      if (!v->kv[k] && kv->klen == key_name[k].n && !memcmp(kv->key, key_name[k].s, kv->klen))
        v->kv[k] = kv; /* the first one wins, as a lookup from the start would find it */
  }
}

/* A non-empty string attribute's value (not NUL-terminated: *len), or NULL. */
static const char *view_str(const struct span_view *v, enum span_key k, size_t *len)
{
  const struct gw_export_attr *kv = v->kv[k];
  if (!kv || !kv->str || !kv->slen)
    return NULL;
  *len = kv->slen;
  return kv->str;
}

/* The user and session ids a span carries itself, in Langfuse's own order of reading them. */
static void view_ids(const struct span_view *v, const char **user, size_t *ul, const char **session, size_t *sl)
{
  *user = *session = NULL;
  *ul = *sl = 0;
  for (int k = K_LF_USER; k <= K_ENDUSER && !*user; k++)
    *user = view_str(v, (enum span_key)k, ul);
  for (int k = K_LF_SESSION; k <= K_CONV && !*session; k++)
    *session = view_str(v, (enum span_key)k, sl);
}

/* Append a string attribute (key: one of key_name) and note it in the view. */
static gw_rc add(struct gw_export_batch *b, struct span_view *v, enum span_key k, const char *value, size_t len)
{
  struct gw_export_attr *at = gw_arena_alloc(b->arena, sizeof *at);
  if (!at)
    return GW_ERR(NOMEM);
  const char *stored;
  gw_rc rc = gw_export_add_attr(b, v->sp, key_name[k].s, value, len, &stored);
  if (rc)
    return rc;
  *at = (struct gw_export_attr){.key = key_name[k].s, .klen = key_name[k].n, .str = stored, .slen = len};
  v->kv[k] = at;
  return GW_OK;
}

/* ---- usage and cost ---- */

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
  if (o == 1) {
    buf[0] = '\0';
    return;
  }
  snprintf(buf + o, n - o, "}");
}

static void cost_details(const struct gw_record *r, char *buf, size_t n)
{
  size_t o = 1;
  char num[40];
  buf[0] = '{';
  buf[1] = '\0';
  if (r->input_cost_nusd.set) {
    put_nusd(num, sizeof num, r->input_cost_nusd.v);
    json_num(buf, n, &o, "input", num);
  }
  if (r->output_cost_nusd.set) {
    put_nusd(num, sizeof num, r->output_cost_nusd.v);
    json_num(buf, n, &o, "output", num);
  }
  if (r->total_cost_nusd.set) {
    put_nusd(num, sizeof num, r->total_cost_nusd.v);
    json_num(buf, n, &o, "total", num);
  }
  if (o == 1) {
    buf[0] = '\0';
    return;
  }
  snprintf(buf + o, n - o, "}");
}

/* One direction's messages of a span as a JSON array ("[m1,m2]"), the shape prompt_content has; NULL when
 * none. ev is in the Postgres merge's order. */
static const char *messages(struct gw_arena *a, const struct gw_event *const *ev, size_t n, const char *dir)
{
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!ev[i]->direction || strcmp(ev[i]->direction, dir) || !ev[i]->content)
      continue;
    gw_sb_putc(&sb, k++ ? ',' : '[');
    gw_sb_puts(&sb, ev[i]->content);
  }
  if (!k)
    return NULL;
  gw_sb_putc(&sb, ']');
  return gw_sb_finish(&sb);
}

/* Content from the log records the exporter has read (this batch or earlier) onto the spans that lack it. */
static gw_rc attach_events(struct gw_export_batch *b, struct span_view *views, size_t nv)
{
  if (!b->span_events)
    return GW_OK;
  for (size_t i = 0; i < nv; i++) {
    struct span_view *v = &views[i];
    if (!v->sp->rec || v->sp->held || (v->kv[K_IN] && v->kv[K_OUT]))
      continue;
    const struct gw_event *const *ev;
    size_t m = b->span_events(b->events_ctx, v->sp->trace_id, v->sp->span_id, b->arena, &ev);
    if (!m) {
      if (gw_arena_exhausted(b->arena))
        return GW_ERR(NOMEM);
      continue;
    }
    static const enum span_key keys[2] = {K_IN, K_OUT};
    static const char *const dirs[2] = {"input", "output"};
    for (int d = 0; d < 2; d++) {
      if (v->kv[keys[d]])
        continue; /* the span's own content wins, as in Postgres */
      const char *json = messages(b->arena, ev, m, dirs[d]);
      if (!json) {
        if (gw_arena_exhausted(b->arena))
          return GW_ERR(NOMEM);
        continue;
      }
      gw_rc rc = add(b, v, keys[d], json, strlen(json));
      if (rc)
        return rc;
    }
  }
  return GW_OK;
}

static size_t cstrlen(const char *s) { return s ? strlen(s) : 0; }

static gw_rc transform(void *priv, struct gw_export_batch *b)
{
  struct langfuse *lf = priv;
  gw_rc rc;
  /* 0. Each span's attributes of interest, found once. */
  struct span_view *views = gw_arena_alloc(b->arena, (b->nspans ? b->nspans : 1) * sizeof *views);
  if (!views)
    return GW_ERR(NOMEM);
  for (size_t i = 0; i < b->nspans; i++)
    view_scan(&views[i], b->spans[i]);
  /* 1. Every record's usage and cost onto its span. */
  for (size_t i = 0; i < b->nspans; i++) {
    struct span_view *v = &views[i];
    const struct gw_record *r = v->sp->rec;
    if (!r || v->sp->held)
      continue;
    char buf[512];
    usage_details(r, buf, sizeof buf);
    if (buf[0] && !v->kv[K_USAGE] && (rc = add(b, v, K_USAGE, buf, strlen(buf))))
      return rc;
    cost_details(r, buf, sizeof buf);
    if (buf[0] && !v->kv[K_COST] && (rc = add(b, v, K_COST, buf, strlen(buf))))
      return rc;
  }
  /* 2. Learn each trace's user and session: records first (their precedence is the normalizer's), then
   * what any span of the trace carries itself. */
  for (size_t i = 0; i < b->nspans; i++) {
    const struct gw_record *r = b->spans[i]->rec;
    if (!r || (!r->user_id && !r->session_id))
      continue;
    cache_put(lf, b->spans[i]->trace_id, r->user_id, cstrlen(r->user_id), r->session_id, cstrlen(r->session_id));
  }
  for (size_t i = 0; i < b->nspans; i++) {
    const char *u, *s;
    size_t ul, sl;
    view_ids(&views[i], &u, &ul, &s, &sl);
    if (u || s) {
      const uint8_t *t = views[i].sp->trace_id;
      struct ids *e = cache_find(lf, t);
      bool ku = e && e->user[0], ks = e && e->session[0]; /* known already: the first one stays */
      cache_put(lf, t, ku ? NULL : u, ku ? 0 : ul, ks ? NULL : s, ks ? 0 : sl);
    }
  }
  /* 3. ... and put them on every span of the trace that lacks them. */
  for (size_t i = 0; i < b->nspans; i++) {
    struct span_view *v = &views[i];
    if (v->sp->held)
      continue;
    const struct ids *e = cache_find(lf, v->sp->trace_id);
    if (!e)
      continue;
    const char *u, *s;
    size_t ul, sl;
    view_ids(v, &u, &ul, &s, &sl);
    if (e->user[0] && !u && (rc = add(b, v, K_LF_USER, e->user, strlen(e->user))))
      return rc;
    if (e->session[0] && !s && (rc = add(b, v, K_LF_SESSION, e->session, strlen(e->session))))
      return rc;
  }
  /* 4. Message content that came as log records. */
  return attach_events(b, views, b->nspans);
}

const struct gw_exporter_type gw_exporter_langfuse = {
  .name = "langfuse",
  .conf_id = GW_CONF_EXP_LANGFUSE,
  .signals = GW_EXPORT_TRACES,
  .traces_path = "/api/public/otel/v1/traces",
  .logs_path = NULL,
  .otlp_http_response = false,
  .wants_events = true,
  .headers = headers,
  .create = create,
  .destroy = destroy,
  .transform = transform,
};
