/*
 * exporter.c: the generic OTLP exporter every backend runs on (DESIGN §7), as a sink (sink/sink.h): the
 * sink loop gives it batches of spool entries from its own cursor, and retries, backs off and enforces the
 * lag cap; this file turns a batch into OTLP requests and their answers into OK / RETRY / DROP.
 *
 * A batch becomes requests in spool order: consecutive entries of one signal, cut so that a request
 * stays under max_request_bytes before compression (an entry larger than that goes alone). Requests are
 * sent one after the other. The first that fails retryably stops the batch: the entries before it are
 * reported done (committed, never re-sent) and the rest comes back after the backoff, at least the delay
 * the peer asked for (Retry-After / RetryInfo, capped at RETRY_AFTER_MAX_MS). A non-retryable answer drops
 * that request's spans for this exporter only (counted, one log line per batch by the sink loop) and the
 * batch goes on. partial_success is read and counted, never retried.
 * Counters are counted once per entry, when its request is finished: a retried request counts as failed
 * and retried each time, and as sent or dropped once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "export_int.h"

#define RETRY_AFTER_MAX_MS (5u * 60u * 1000u)
#define ARENA_KEEP (16u << 20) /* a decoded batch of 512 spans is a few MiB: keep its memory between batches */
#define PARTIAL_LOG_NS (10ull * 1000000000ull)
#define TRACES_METHOD "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
#define LOGS_METHOD "/opentelemetry.proto.collector.logs.v1.LogsService/Export"

const double gw_export_latency_bounds_ms[GW_EXPORT_LATENCY_BUCKETS] = {5,   10,   25,   50,   100,   250,
                                                                       500, 1000, 2500, 5000, 10000, 30000};

struct exporter {
  const struct gw_exporter_type *type;
  const struct gw_conf_exporter *conf;
  struct gw_export_stats *st;
  bool grpc;
  char *traces_url, *logs_url;
  struct gw_http_client *http;
  struct gw_grpc_client *grpcc;
  struct gw_export_headers hdrs;
  void *priv;
  struct gw_arena *arena;
  struct gw_export_gzip *gz;
  _Atomic uint64_t abort_at;
  atomic_bool draining;        /* stopping: the join lets go of everything once the spool is drained */
  struct gw_export_join *join; /* spans waiting for their log records (wants_events), else NULL */
  uint64_t read_ns;            /* when the newest entry read was spooled, for the join */
  uint64_t partial_logged_ns, partial_pending;
  char partial_msg[160];
  struct gw_export_conn_opts opts; /* the transport's, to build it again when the token changes */
  struct gw_export_token *token;   /* token_file, else NULL */
  uint64_t token_gen;              /* the token generation in the authorization header */
  size_t auth_idx;                 /* that header's index in hdrs */
  uint64_t auth_logged_ns, auth_pending;
};

gw_rc gw_export_headers_add(struct gw_export_headers *h, const char *name, const char *value)
{
  if (h->n >= GW_EXPORT_MAX_HEADERS)
    return GW_ERR(CONFIG);
  h->name[h->n] = gw_strdup(name);
  h->value[h->n] = gw_strdup(value);
  h->n++;
  return GW_OK;
}

static void headers_free(struct gw_export_headers *h)
{
  for (size_t i = 0; i < h->n; i++) {
    memset(h->value[i], 0, strlen(h->value[i]));
    free(h->name[i]);
    free(h->value[i]);
  }
  h->n = 0;
}

static char *join_url(const char *base, const char *path)
{
  size_t bl = strlen(base);
  while (bl && base[bl - 1] == '/')
    bl--;
  size_t n = bl + strlen(path) + 1;
  char *u = gw_malloc(n);
  snprintf(u, n, "%.*s%s", (int)bl, base, path);
  return u;
}

static void destroy(void *self)
{
  struct exporter *x = self;
  if (!x)
    return;
  gw_http_client_destroy(x->http);
  gw_grpc_client_destroy(x->grpcc);
  gw_export_token_destroy(x->token);
  if (x->priv && x->type->destroy)
    x->type->destroy(x->priv);
  gw_export_join_destroy(x->join);
  headers_free(&x->hdrs);
  gw_arena_destroy(x->arena);
  gw_export_gzip_destroy(x->gz);
  free(x->traces_url);
  free(x->logs_url);
  free(x);
}

static void wipe(char *v)
{
  if (v) {
    memset(v, 0, strlen(v));
    free(v);
  }
}

static char *bearer_value(const char *tok)
{
  size_t n = strlen(tok) + 8;
  char *v = gw_malloc(n);
  snprintf(v, n, "Bearer %s", tok);
  return v;
}

/* The transport's client, with the headers as they are now. */
static gw_rc transport_create(struct exporter *x, struct gw_err *err)
{
  if (x->grpc)
    return (x->grpcc = gw_grpc_client_create(x->conf->endpoint, &x->opts, err)) ? GW_OK : GW_ERR(CONFIG);
  return (x->http = gw_http_client_create(&x->opts, err)) ? GW_OK : GW_ERR(INTERNAL);
}

/* token_file brought a new token: put it in the authorization header and build the transport again (its
 * headers are fixed at creation; a rotation is rare, one reconnection is its cost). */
static void token_refresh(struct exporter *x)
{
  if (!x->token || gw_export_token_gen(x->token) == x->token_gen)
    return;
  uint64_t gen;
  char *tok = gw_export_token_get(x->token, &gen);
  char *v = bearer_value(tok);
  wipe(tok);
  struct gw_err err = {0};
  void *old_http = x->http, *old_grpc = x->grpcc;
  char *old_v = x->hdrs.value[x->auth_idx];
  x->hdrs.value[x->auth_idx] = v;
  x->http = NULL;
  x->grpcc = NULL;
  if (transport_create(x, &err) != GW_OK) {
    /* keep sending with the old token; try again before the next request */
    x->hdrs.value[x->auth_idx] = old_v;
    x->http = old_http;
    x->grpcc = old_grpc;
    wipe(v);
    gw_error(x->type->name, "cannot set up the transport with the new token: %s", err.msg);
    return;
  }
  gw_http_client_destroy(old_http);
  gw_grpc_client_destroy(old_grpc);
  wipe(old_v);
  x->token_gen = gen;
}

void *gw_export_create(const struct gw_export_setup *s, struct gw_err *err)
{
  const struct gw_conf_exporter *c = s->conf;
  const char *name = s->type->name;
  struct exporter *x = gw_calloc(1, sizeof *x);
  x->type = s->type;
  x->conf = c;
  x->st = s->stats;
  atomic_store(&x->st->up, -1);
  x->grpc = strcmp(c->protocol, "grpc") == 0;
  for (uint32_t i = 0; i < c->headers.n; i++) {
    if (gw_export_headers_add(&x->hdrs, c->headers.cells[i * 2], c->headers.cells[i * 2 + 1])) {
      gw_err_set(err, GW_ERR(CONFIG), "exporters.%s.headers: more than %d headers", name, GW_EXPORT_MAX_HEADERS);
      goto fail;
    }
  }
  if (s->type->headers && s->type->headers(c, &x->hdrs, err))
    goto fail;
  if (c->token_file && *c->token_file) {
    x->st->has_token = true;
    if (!(x->token = gw_export_token_create(name, c->token_file, x->st->token_reloads, err)))
      goto fail;
    char *tok = gw_export_token_get(x->token, &x->token_gen);
    char *v = bearer_value(tok);
    x->auth_idx = x->hdrs.n;
    gw_rc hrc = gw_export_headers_add(&x->hdrs, "authorization", v);
    wipe(v);
    wipe(tok);
    if (hrc) {
      gw_err_set(err, GW_ERR(CONFIG), "exporters.%s.headers: more than %d headers", name, GW_EXPORT_MAX_HEADERS - 1);
      goto fail;
    }
  }
  x->opts = (struct gw_export_conn_opts){
    .name = name,
    .timeout_ms = c->timeout_ms,
    .gzip = c->gzip,
    .tls = c->tls,
    .ca_file = c->ca_file,
    .headers = &x->hdrs,
    .abort_at = &x->abort_at,
  };
  if (!x->grpc) {
    x->traces_url = join_url(c->endpoint, s->type->traces_path);
    if (s->type->logs_path)
      x->logs_url = join_url(c->endpoint, s->type->logs_path);
  }
  if (transport_create(x, err))
    goto fail;
  if (c->gzip)
    x->gz = gw_export_gzip_create();
  if (s->type->create)
    x->priv = s->type->create(c);
  if (s->type->wants_events) {
    struct gw_export_join_conf jc = {c->join_wait_ms, c->join_events_ms, c->join_max_bytes, c->batch_spans,
                                     c->batch_wait_ms};
    x->join = gw_export_join_create(&jc, x->st);
  }
  x->arena = gw_arena_create(0);
  gw_arena_keep(x->arena, ARENA_KEEP);
  gw_info(name, "exporting %s%s to %s over OTLP/%s%s%s%s", (s->type->signals & GW_EXPORT_TRACES) ? "traces" : "",
          (s->type->signals & GW_EXPORT_LOGS) ? " and logs" : "", x->grpc ? c->endpoint : x->traces_url,
          x->grpc ? "gRPC" : "HTTP", c->gzip ? ", gzip" : "", c->genai_only ? ", GenAI spans only" : "",
          x->token ? ", a bearer token from token_file" : "");
  return x;
fail:
  destroy(x);
  return NULL;
}

static enum gw_export_signal xs(enum gw_signal s) { return s == GW_SIGNAL_LOGS ? GW_XS_LOGS : GW_XS_TRACES; }

/* An entry is finished (its request succeeded or was given up): count what it left out. */
static void count_finished(struct exporter *x, const struct gw_export_piece *p)
{
  enum gw_export_signal sg = xs(p->signal);
  if (p->invalid)
    atomic_fetch_add(&x->st->dropped[sg][GW_XD_INVALID], p->invalid);
  if (p->filtered)
    atomic_fetch_add(&x->st->filtered[sg], p->filtered);
  if (p->too_large)
    atomic_fetch_add(&x->st->dropped[sg][GW_XD_TOO_LARGE], p->items);
}

static void note_partial(struct exporter *x, int64_t rejected, const char *msg)
{
  x->partial_pending += (uint64_t)rejected;
  if (msg[0])
    snprintf(x->partial_msg, sizeof x->partial_msg, "%s", msg);
  uint64_t now = gw_mono_ns();
  if (now - x->partial_logged_ns >= PARTIAL_LOG_NS || !x->partial_logged_ns) {
    gw_warn(x->type->name, "the receiver refused %llu items in partial_success (not retried): %s",
            (unsigned long long)x->partial_pending, x->partial_msg[0] ? x->partial_msg : "no message");
    x->partial_pending = 0;
    x->partial_logged_ns = now;
  }
}

/* A refused token: an error line at most every 10 s (never the token). */
static void note_auth(struct exporter *x, const char *what)
{
  x->auth_pending++;
  uint64_t now = gw_mono_ns();
  if (x->auth_logged_ns && now - x->auth_logged_ns < PARTIAL_LOG_NS)
    return;
  gw_error(x->type->name,
           "%s: the receiver refused the bearer token of exporters.%s.token_file '%s' (%llu requests since the last "
           "report): the data stays in the spool and is retried with backoff; put a token the receiver accepts in "
           "the file (re-read when it changes and on SIGHUP)",
           what, x->type->name, x->conf->token_file, (unsigned long long)x->auth_pending);
  x->auth_pending = 0;
  x->auth_logged_ns = now;
}

/* Send one request; judge the answer. */
static enum gw_export_result send_one(struct exporter *x, enum gw_signal sig, const void *body, size_t len,
                                      struct gw_export_reply *r, int64_t *rejected, char *pmsg, size_t pmsg_len)
{
  *rejected = 0;
  /* gzip is ours on both transports: libdeflate's fastest level costs about half of what gRPC core's own
   * (zlib) compression did, and compression is most of an exporter's work per span. */
  const void *send = body;
  size_t send_len = len;
  if (x->conf->gzip) {
    void *z;
    size_t zl;
    if (gw_export_gzip(x->gz, x->arena, body, len, &z, &zl) != GW_OK) {
      snprintf(r->error, sizeof r->error, "cannot compress a request of %zu bytes", len);
      return GW_XR_DROP;
    }
    send = z;
    send_len = zl;
  }
  token_refresh(x);
  if (x->grpc)
    gw_grpc_call(x->grpcc, sig == GW_SIGNAL_LOGS ? LOGS_METHOD : TRACES_METHOD, send, send_len, x->conf->gzip, r);
  else
    gw_http_post(x->http, sig == GW_SIGNAL_LOGS ? x->logs_url : x->traces_url, send, send_len, r);
  enum gw_export_transport tr = x->grpc ? GW_XT_GRPC : GW_XT_HTTP;
  enum gw_export_result res = gw_export_classify(tr, r);
  if (gw_export_auth_refused(tr, r)) {
    atomic_fetch_add(&x->st->auth_refused, 1);
    if (x->token) {
      /* The token can be fixed in place (the file is re-read): keep the data and retry, as for a peer that
       * is down, rather than drop what was acknowledged to the sender. */
      res = GW_XR_RETRY;
      char what[sizeof r->error];
      snprintf(what, sizeof what, "%s", r->error);
      snprintf(r->error, sizeof r->error, "%s: the receiver refused the token of exporters.%s.token_file; kept and retried",
               what, x->type->name);
      note_auth(x, what);
    }
  }
  if (res == GW_XR_OK && (x->grpc || x->type->otlp_http_response))
    *rejected = gw_export_partial_rejected(sig, r->body, r->body_len, pmsg, pmsg_len);
  return res;
}

/* After a batch with a join: pieces[0, finished) are done (the first nrel are released held spans). Their
 * delivered spans no longer need their kept content; released spans not done stay held; the sink's done
 * counts the batch's own entries; the cursor stops before what the join still keeps. */
static void join_outcome(struct exporter *x, const struct gw_export_piece *pieces, size_t finished, size_t nrel,
                         struct gw_sink_outcome *out)
{
  for (size_t i = 0; i < finished; i++) {
    const struct gw_export_piece *p = &pieces[i];
    if (p->too_large)
      continue;
    for (size_t k = 0; k < p->nspans; k++)
      if (!p->spans[k].drop && p->spans[k].rec)
        gw_export_join_claim(x->join, p->spans[k].trace_id, p->spans[k].span_id);
  }
  gw_export_join_done(x->join, finished < nrel ? finished : nrel);
  out->done = finished > nrel ? finished - nrel : 0;
  out->keep_from = gw_export_join_keep_from(x->join);
  out->holding = gw_export_join_held(x->join) > 0;
}

static enum gw_sink_result send_batch(void *self, const struct gw_spool_entry *entries, size_t n,
                                      struct gw_sink_outcome *out)
{
  struct exporter *x = self;
  uint64_t t0 = gw_mono_ns();
  gw_arena_reset(x->arena);
  enum gw_sink_result result = GW_SINK_OK;
  /* The join's held spans that may go now come first, as entries of their own (nrel of them). */
  size_t nrel = 0;
  if (x->join) {
    if (gw_export_join_add(x->join, x->arena, entries, n) != GW_OK) {
      snprintf(out->error, sizeof out->error, "out of memory for the log content of a batch of %zu entries", n);
      return GW_SINK_RETRY;
    }
    uint64_t spans = 0;
    for (size_t i = 0; i < n; i++) {
      spans += entries[i].nspans;
      if (entries[i].appended_ns > x->read_ns)
        x->read_ns = entries[i].appended_ns;
    }
    /* A batch short of batch_spans is everything the spool had (peek waited for more). */
    struct gw_export_join_now now = {gw_now_ns(), x->read_ns, spans < x->conf->batch_spans, false};
    now.final = now.caught_up && atomic_load(&x->draining);
    struct gw_spool_entry *rel;
    nrel = gw_export_join_release(x->join, x->arena, &now, &rel);
    if (nrel) {
      struct gw_spool_entry *all = gw_arena_alloc(x->arena, (nrel + n) * sizeof *all);
      if (!all) {
        gw_export_join_done(x->join, 0);
        snprintf(out->error, sizeof out->error, "out of memory for a batch of %zu entries", n);
        return GW_SINK_RETRY;
      }
      memcpy(all, rel, nrel * sizeof *all);
      if (n)
        memcpy(all + nrel, entries, n * sizeof *all);
      entries = all;
      n += nrel;
    }
  }
  if (!n) { /* a tick of the sink loop while the join holds spans, none of which may go yet */
    if (x->join)
      join_outcome(x, NULL, 0, 0, out);
    return GW_SINK_OK;
  }
  struct gw_export_piece *pieces = gw_arena_alloc(x->arena, n * sizeof *pieces);
  if (!pieces) {
    if (x->join)
      gw_export_join_done(x->join, 0);
    snprintf(out->error, sizeof out->error, "out of memory for a batch of %zu entries", n);
    return GW_SINK_RETRY;
  }
  struct gw_export_payload_opts po = {x->type, x->priv, x->conf->genai_only, x->join};
  gw_export_build(&po, x->arena, entries, n, pieces); /* failures are marked on the pieces */

  struct gw_export_reply reply = {0};
  size_t i = 0;
  while (i < n) {
    /* One request: from entry i, while the signal stays the same and the bytes fit. Entries with nothing
     * to send ride along with whatever request they sit in. */
    size_t j = i, bytes = 0;
    uint64_t items = 0;
    int sig = -1;
    for (; j < n; j++) {
      const struct gw_export_piece *p = &pieces[j];
      if (!p->len)
        continue;
      if (sig >= 0 && ((int)p->signal != sig || bytes + p->len > x->conf->max_request_bytes))
        break;
      sig = (int)p->signal;
      bytes += p->len;
      items += p->items;
    }
    if (sig < 0) { /* nothing left to send: the remaining entries are finished as they are */
      for (size_t k = i; k < j; k++)
        count_finished(x, &pieces[k]);
      i = j;
      continue;
    }
    const void *body = NULL;
    size_t nparts = 0;
    for (size_t k = i; k < j; k++)
      if (pieces[k].len) {
        body = pieces[k].bytes;
        nparts++;
      }
    if (nparts > 1) {
      uint8_t *buf = gw_arena_alloc(x->arena, bytes);
      if (!buf) {
        snprintf(out->error, sizeof out->error, "out of memory for a request of %zu bytes", bytes);
        out->done = i;
        result = GW_SINK_RETRY;
        break;
      }
      size_t off = 0;
      for (size_t k = i; k < j; k++) {
        if (!pieces[k].len)
          continue; /* nothing to send (a logs entry, spans all held): bytes may be NULL */
        memcpy(buf + off, pieces[k].bytes, pieces[k].len);
        off += pieces[k].len;
      }
      body = buf;
    }
    enum gw_export_signal sg = xs((enum gw_signal)sig);
    int64_t rejected = 0;
    char pmsg[160] = "";
    enum gw_export_result res = send_one(x, (enum gw_signal)sig, body, bytes, &reply, &rejected, pmsg, sizeof pmsg);
    atomic_fetch_add(&x->st->requests[res], 1);
    if (res == GW_XR_RETRY) {
      atomic_store(&x->st->up, 0);
      atomic_fetch_add(&x->st->failed[sg], items);
      atomic_fetch_add(&x->st->retried[sg], items);
      out->retry_after_ms = reply.retry_after_ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : reply.retry_after_ms;
      snprintf(out->error, sizeof out->error, "%s", reply.error[0] ? reply.error : "no answer");
      out->done = i;
      result = GW_SINK_RETRY;
      break;
    }
    for (size_t k = i; k < j; k++)
      count_finished(x, &pieces[k]);
    if (res == GW_XR_DROP) {
      atomic_store(&x->st->up, 0);
      atomic_fetch_add(&x->st->failed[sg], items);
      atomic_fetch_add(&x->st->dropped[sg][GW_XD_REJECTED], items);
      out->dropped += items;
      snprintf(out->error, sizeof out->error, "%s (%llu %s not retried)", reply.error[0] ? reply.error : "refused",
               (unsigned long long)items, sg == GW_XS_LOGS ? "log records" : "spans");
      result = GW_SINK_DROP;
    } else {
      atomic_store(&x->st->up, 1);
      uint64_t rej = (uint64_t)rejected > items ? items : (uint64_t)rejected;
      atomic_fetch_add(&x->st->sent[sg], items - rej);
      out->delivered += items - rej;
      if (rej) {
        atomic_fetch_add(&x->st->dropped[sg][GW_XD_PARTIAL], rej);
        out->dropped += rej;
        note_partial(x, (int64_t)rej, pmsg);
      }
    }
    i = j;
  }
  gw_export_reply_reset(&reply);
  if (x->join)
    join_outcome(x, pieces, result == GW_SINK_RETRY ? out->done : n, nrel, out);

  uint64_t ns = gw_mono_ns() - t0;
  double ms = (double)ns / 1e6;
  size_t b = 0;
  while (b < GW_EXPORT_LATENCY_BUCKETS && ms > gw_export_latency_bounds_ms[b])
    b++;
  atomic_fetch_add(&x->st->batch_hist[b], 1);
  atomic_fetch_add(&x->st->batch_count, 1);
  atomic_fetch_add(&x->st->batch_ns, ns);
  return result;
}

static void stopping(void *self, uint64_t deadline)
{
  struct exporter *x = self;
  atomic_store(&x->abort_at, deadline);
  atomic_store(&x->draining, true);
}

const struct gw_sink_type gw_export_sink_ops = {
  .name = "exporter",
  .send = send_batch,
  .stopping = stopping,
  .destroy = destroy,
};
