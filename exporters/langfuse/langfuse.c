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
 * - usage, cost, model and notes on them (observation.c): what Postgres holds, as Langfuse reads it;
 * - langfuse.user.id / langfuse.session.id on every span of the trace (Langfuse filters per observation,
 *   and its docs ask for them on every span): taken from any record or span of the trace in the batch,
 *   and remembered for later batches in a small per-exporter cache.
 * - gen_ai.input.messages / gen_ai.output.messages from the GenAI events (OTLP log records, e.g. the
 *   official OpenTelemetry instrumentations' gen_ai.user.message / gen_ai.choice) of the same span, which
 *   the exporter's join (otlp/join.c) keeps from the logs entries it reads, and for which it holds a span
 *   back when they have not come yet: Langfuse takes no logs, so this is the only way such content
 *   reaches it. Spans the join holds are seen here only to learn their trace's ids.
 * A key the client already set is never overwritten (but a client's cost_details that lose to the computed
 * cost, observation.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "langfuse_int.h"

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

const struct gw_lf_key gw_lf_keys[K__N] = {
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
  KN("langfuse.observation.model.name"),
  KN("langfuse.observation.input"),
  KN("langfuse.observation.output"),
  KN("genai_gateway.cost.cache_read_usd"),
  KN("genai_gateway.cost.cache_write_usd"),
  KN("genai_gateway.cost.reasoning_usd"),
  KN("langfuse.observation.metadata.gateway_usage"),
  KN("langfuse.observation.metadata.gateway_cost_source"),
  KN("langfuse.observation.metadata.gateway_reported_cost_usd"),
  KN("langfuse.observation.metadata.gateway_client_cost_details"),
#undef KN
};

static void view_scan(struct gw_lf_view *v, struct gw_export_span *sp)
{
  memset(v, 0, sizeof *v);
  v->sp = sp;
  for (size_t i = 0; i < sp->nattrs; i++) {
    const struct gw_export_attr *kv = &sp->attrs[i];
    if (!kv->klen)
      continue;
    static const int8_t l_keys[] = {K_USAGE, K_COST, K_LF_USER, K_LF_SESSION, K_MODEL, K_LF_IN, K_LF_OUT,
                                    K_META_USAGE, K_META_COST_SOURCE, K_META_REPORTED, K_META_CLIENT_COST, -1},
                        u_keys[] = {K_USER, -1}, e_keys[] = {K_ENDUSER, -1}, s_keys[] = {K_SESSION, -1},
                        g_keys[] = {K_CONV, K_IN, K_OUT, K_COST_CACHE_READ, K_COST_CACHE_WRITE, K_COST_REASONING, -1};
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
      if (!v->kv[k] && kv->klen == gw_lf_keys[k].n && !memcmp(kv->key, gw_lf_keys[k].s, kv->klen))
        v->kv[k] = kv; /* the first one wins, as a lookup from the start would find it */
  }
}

const char *gw_lf_str(const struct gw_lf_view *v, enum gw_lf_key_id k, size_t *len)
{
  const struct gw_export_attr *kv = v->kv[k];
  if (!kv || !kv->str || !kv->slen)
    return NULL;
  *len = kv->slen;
  return kv->str;
}

/* The user and session ids a span carries itself, in Langfuse's own order of reading them. */
static void view_ids(const struct gw_lf_view *v, const char **user, size_t *ul, const char **session, size_t *sl)
{
  *user = *session = NULL;
  *ul = *sl = 0;
  for (int k = K_LF_USER; k <= K_ENDUSER && !*user; k++)
    *user = gw_lf_str(v, (enum gw_lf_key_id)k, ul);
  for (int k = K_LF_SESSION; k <= K_CONV && !*session; k++)
    *session = gw_lf_str(v, (enum gw_lf_key_id)k, sl);
}

gw_rc gw_lf_add(struct gw_export_batch *b, struct gw_lf_view *v, enum gw_lf_key_id k, const char *value, size_t len)
{
  struct gw_export_attr *at = gw_arena_alloc(b->arena, sizeof *at);
  if (!at)
    return GW_ERR(NOMEM);
  const char *stored;
  gw_rc rc = gw_export_add_attr(b, v->sp, gw_lf_keys[k].s, value, len, &stored);
  if (rc)
    return rc;
  *at = (struct gw_export_attr){.key = gw_lf_keys[k].s, .klen = gw_lf_keys[k].n, .str = stored, .slen = len};
  v->kv[k] = at;
  return GW_OK;
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
static gw_rc attach_events(struct gw_export_batch *b, struct gw_lf_view *views, size_t nv)
{
  if (!b->span_events)
    return GW_OK;
  for (size_t i = 0; i < nv; i++) {
    struct gw_lf_view *v = &views[i];
    if (!v->sp->rec || v->sp->held || (v->kv[K_IN] && v->kv[K_OUT]))
      continue;
    const struct gw_event *const *ev;
    size_t m = b->span_events(b->events_ctx, v->sp->trace_id, v->sp->span_id, b->arena, &ev);
    if (!m) {
      if (gw_arena_exhausted(b->arena))
        return GW_ERR(NOMEM);
      continue;
    }
    static const enum gw_lf_key_id keys[2] = {K_IN, K_OUT};
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
      gw_rc rc = gw_lf_add(b, v, keys[d], json, strlen(json));
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
  struct gw_lf_view *views = gw_arena_alloc(b->arena, (b->nspans ? b->nspans : 1) * sizeof *views);
  if (!views)
    return GW_ERR(NOMEM);
  for (size_t i = 0; i < b->nspans; i++)
    view_scan(&views[i], b->spans[i]);
  /* 1. Message content that came as log records (before 3: a generation without usage gets its messages
   * in Langfuse's plain form from whichever content it has). */
  if ((rc = attach_events(b, views, b->nspans)))
    return rc;
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
    struct gw_lf_view *v = &views[i];
    if (v->sp->held)
      continue;
    const struct ids *e = cache_find(lf, v->sp->trace_id);
    if (!e)
      continue;
    const char *u, *s;
    size_t ul, sl;
    view_ids(v, &u, &ul, &s, &sl);
    if (e->user[0] && !u && (rc = gw_lf_add(b, v, K_LF_USER, e->user, strlen(e->user))))
      return rc;
    if (e->session[0] && !s && (rc = gw_lf_add(b, v, K_LF_SESSION, e->session, strlen(e->session))))
      return rc;
  }
  /* 4. Every record's usage, cost, model and notes about them onto its span. */
  for (size_t i = 0; i < b->nspans; i++)
    if (views[i].sp->rec && !views[i].sp->held && (rc = gw_lf_observation(b, &views[i])))
      return rc;
  return GW_OK;
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
