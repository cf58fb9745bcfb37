/*
 * request.c: the per-request pipeline both receivers share. Everything lives in the caller's arena and is
 * freed in one go when the receiver has answered. The spool copies what it keeps.
 * Order is fixed by DESIGN §1: normalize -> cost -> redact -> upstream stamps -> encode -> append;
 * nothing leaves the process before those stages.
 * A request nobody waits for any more (its gRPC deadline passed, its HTTP client went away) is stopped
 * between stages and inside redaction, never appended, and counted (gw_request_limit).
 */
#include "receive/request.h"

#include <stdatomic.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "cost/cost.h"
#include "receive/upstream.h"
#include "redact/redact.h"
#include "normalize/events.h"
#include "normalize/normalize.h"

/* The spool entry/body ratio (claim_room below), in 1/256. */
#define RATIO_ONE 256u
#define RATIO_MIN 64u   /* a quarter of the body */
#define RATIO_MAX 4096u /* 16 times the body */

void gw_pipeline_init(struct gw_pipeline *p, const struct gw_conf *conf, struct gw_spool *spool)
{
  memset(p, 0, sizeof *p);
  p->conf = conf;
  p->spool = spool;
  atomic_init(&p->inflight_bytes, 0);
  atomic_init(&p->shutting_down, false);
  atomic_init(&p->pending_bytes, 0);
  atomic_init(&p->entry_ratio, RATIO_ONE);
  /* The receivers' warm pool (core/arena.c): half a request's size, 16 MiB at most, so what stays
   * resident after a large request is small next to what the request itself may use. */
  gw_arena_set_warm((size_t)(conf->receivers.max_request_bytes / 2));
  for (int i = 0; i < GW_CONF_NEXPORTERS; i++)
    p->forward |= gw_conf_exporter_on(&conf->exporters[i]);
}

gw_rc gw_pipeline_reserve(struct gw_pipeline *p, size_t n)
{
  uint64_t cur = atomic_fetch_add(&p->inflight_bytes, n) + n;
  if (cur > p->conf->receivers.max_inflight_bytes) {
    atomic_fetch_sub(&p->inflight_bytes, n);
    return GW_ERR(BUSY);
  }
  gw_metric_set(GW_M_INFLIGHT_BYTES, (int64_t)cur);
  return GW_OK;
}

void gw_pipeline_release(struct gw_pipeline *p, size_t n)
{
  uint64_t cur = atomic_fetch_sub(&p->inflight_bytes, n) - n;
  gw_metric_set(GW_M_INFLIGHT_BYTES, (int64_t)cur);
}

/* Who still waits for this request (gw_request_limit): set for the next request on this thread, taken by it. */
struct ctl {
  uint64_t deadline, start; /* gw_mono_ns; deadline 0: none */
  gw_rc (*gone)(void *arg);
  void *arg;
};

static _Thread_local struct ctl next_ctl;

void gw_request_limit(uint64_t deadline_ns, gw_rc (*gone)(void *arg), void *arg)
{
  next_ctl.deadline = deadline_ns;
  next_ctl.gone = gone;
  next_ctl.arg = arg;
}

static struct ctl take_ctl(void)
{
  struct ctl c = next_ctl;
  memset(&next_ctl, 0, sizeof next_ctl);
  c.start = gw_mono_ns();
  return c;
}

/* Non-zero when nobody waits any more: GW_ERR(DEADLINE), or what gone says. Also redaction's stop function. */
static gw_rc ctl_stop(void *arg)
{
  const struct ctl *c = arg;
  if (c->deadline && gw_mono_ns() >= c->deadline)
    return GW_ERR(DEADLINE);
  return c->gone ? c->gone(c->arg) : GW_OK;
}

static gw_rc abandoned(const struct ctl *c, gw_rc rc, const char *stage, struct gw_err *err)
{
  unsigned long long ms = (unsigned long long)((gw_mono_ns() - c->start) / 1000000u);
  if (rc == GW_ERR(DEADLINE))
    return gw_err_set(err, rc, "the call's deadline passed %llu ms into the request, during %s: abandoned", ms,
                      stage);
  return gw_err_set(err, rc, "the client went away %llu ms into the request, during %s: abandoned", ms, stage);
}

/* Between stages: is anybody still waiting? */
static gw_rc checkpoint(const struct ctl *c, const char *stage, struct gw_err *err)
{
  gw_rc rc = c->deadline || c->gone ? ctl_stop((void *)c) : GW_OK;
  return rc ? abandoned(c, rc, stage, err) : GW_OK;
}

/* Redaction failed: out of memory, or its stop function (ctl_stop) said nobody waits. */
static void redact_failed(const struct ctl *c, gw_rc rc, struct gw_err *err)
{
  if (rc == GW_ERR(DEADLINE) || rc == GW_ERR(CANCELLED))
    abandoned(c, rc, "redaction", err);
  else
    gw_err_set(err, rc, "request needs more memory than the per-request limit");
}

size_t gw_pipeline_share(const struct gw_pipeline *p)
{
  const struct gw_conf *c = p->conf;
  uint64_t share = c->receivers.max_request_bytes * GW_REQUEST_SHARE;
  if (share > c->receivers.max_inflight_bytes)
    share = c->receivers.max_inflight_bytes;
  return (size_t)share;
}

static bool budget_take(void *ctx, size_t n) { return gw_pipeline_reserve(ctx, n) == GW_OK; }
static void budget_give(void *ctx, size_t n) { gw_pipeline_release(ctx, n); }

/* The smallest arena a request gets, whatever its body holds: room to refuse it with a message. */
#define ARENA_MIN (64 * 1024)

struct gw_arena *gw_pipeline_arena(struct gw_pipeline *p, size_t held)
{
  size_t share = gw_pipeline_share(p);
  size_t cap = share > held + ARENA_MIN ? share - held : ARENA_MIN;
  struct gw_arena *a = gw_arena_thread(cap);
  const struct gw_arena_budget b = {budget_take, budget_give, p};
  gw_arena_set_budget(a, &b); /* a reset arena holds nothing yet: nothing to refuse */
  return a;
}

/*
 * The spool's room, checked right after decode: a request the spool will not take is refused before
 * normalize, cost, redaction and encoding, whose work would be thrown away (its spans are counted as
 * received and rejected; a malformed body is still a decode error). Under overload that work took the
 * CPU the spool's consumers need to make room.
 * The entry a request appends (re-packed request and records) is estimated from its body size and the
 * entry/body ratio of recent requests, and that much room is promised to it until its append is done,
 * so requests decoded at the same moment do not all count on the same free bytes. The estimate only
 * decides when to refuse early; the append itself still checks the real size. Without room a request
 * waits up to spool.full_wait_ms for the consumers to free some.
 * An estimate larger than the whole spool is cut to the whole spool. Left as it was it could never be
 * claimed (429 for ever, even with the spool empty), and it is only an estimate, so it must not refuse a
 * request by itself either (the ratio is of other requests: a body of one large attribute makes rows of a
 * few KiB). Such a request waits for the spool to empty like any other; when the wait ends without room
 * (a disk spool never empties: it keeps the segment being written) it goes on unclaimed and its append,
 * which knows the real size, decides: stored, 429 when there is no room now, 413 when the entry alone is
 * larger than spool.max_bytes (it could never fit).
 */

static gw_rc claim_room(struct gw_pipeline *p, const struct ctl *ctl, size_t len, uint64_t *claimed,
                        struct gw_err *err)
{
  uint64_t est = (uint64_t)len * atomic_load(&p->entry_ratio) / RATIO_ONE;
  uint64_t deadline = 0;
  bool whole = est >= gw_spool_max_bytes(p->spool); /* the estimate is the whole spool, or more */
  if (whole)
    est = gw_spool_max_bytes(p->spool);
  *claimed = 0;
  for (;;) {
    uint64_t pending = atomic_fetch_add(&p->pending_bytes, est) + est;
    size_t held = gw_spool_bytes(p->spool), max = gw_spool_max_bytes(p->spool);
    if (held + pending <= max) {
      *claimed = est;
      return GW_OK;
    }
    atomic_fetch_sub(&p->pending_bytes, est);
    /* spool.full_wait_ms: wait for the consumers to free room rather than refuse at once. A client told
     * to retry sends the whole request again (the bench's load tool at once, over and over): the wait
     * saves that upload and its decode, and leaves the CPU to the consumers freeing room. */
    uint64_t now = gw_mono_ns();
    if (!deadline)
      deadline = now + (uint64_t)p->conf->spool.full_wait_ms * 1000000ull;
    if (atomic_load(&p->shutting_down))
      return gw_err_set(err, GW_ERR(SHUTDOWN), "the gateway is shutting down");
    gw_rc rc = checkpoint(ctl, "the wait for spool room", err);
    if (rc)
      return rc;
    if (now >= deadline && whole)
      return GW_OK; /* unclaimed: the append decides (above) */
    if (now >= deadline)
      return gw_err_set(err, GW_ERR(FULL), "spool full (%zu of %zu bytes held): retry later", held, max);
    gw_spool_wait_room(p->spool, ctl->deadline && ctl->deadline < deadline ? ctl->deadline : deadline);
  }
}

/* The append is done (or the request failed): give the promise back, learn the entry/body ratio. */
static void release_room(struct gw_pipeline *p, uint64_t claimed, size_t len, size_t entry)
{
  if (claimed)
    atomic_fetch_sub(&p->pending_bytes, claimed);
  if (entry && len) {
    uint64_t r = (uint64_t)entry * RATIO_ONE / len, old = atomic_load(&p->entry_ratio);
    r = (old * 7 + r) / 8;
    atomic_store(&p->entry_ratio, (uint32_t)(r < RATIO_MIN ? RATIO_MIN : r > RATIO_MAX ? RATIO_MAX : r));
  }
}

static uint32_t count_spans(const GwTraceRequest *req)
{
  uint32_t n = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++) {
    const GwResourceSpans *rs = req->resource_spans[i];
    for (size_t j = 0; rs && j < rs->n_scope_spans; j++)
      if (rs->scope_spans[j])
        n += (uint32_t)rs->scope_spans[j]->n_spans;
  }
  return n;
}

/* The metrics' name for a body's coding: gzip and the zlib format ("deflate") told apart by gzip's magic. */
static enum gw_body_coding body_coding(enum gw_coding coding, const unsigned char *b, size_t len)
{
  switch (coding) {
  case GW_CODING_NONE: return GW_BODY_IDENTITY;
  case GW_CODING_ZSTD: return GW_BODY_ZSTD;
  case GW_CODING_SNAPPY: return GW_BODY_SNAPPY;
  case GW_CODING_LZ4: return GW_BODY_LZ4;
  case GW_CODING_DEFLATE: break;
  }
  return len >= 2 && b[0] == 0x1f && b[1] == 0x8b ? GW_BODY_GZIP : GW_BODY_DEFLATE;
}

/* The head both signals share: refuse while stopping, decompress under the request cap. */
static gw_rc begin(struct gw_pipeline *p, const struct ctl *ctl, struct gw_arena *a, enum gw_coding coding,
                   const void **body, size_t *len, struct gw_err *err)
{
  gw_metric_add(GW_M_REQUESTS, 1);
  enum gw_body_coding bc = body_coding(coding, *body, *len);
  gw_metric_body_received(bc, *len);
  if (coding == GW_CODING_NONE)
    gw_metric_body_decompressed(bc, *len);
  if (atomic_load(&p->shutting_down))
    return gw_err_set(err, GW_ERR(SHUTDOWN), "the gateway is shutting down");
  gw_rc rc = checkpoint(ctl, "the wait for a receiver thread", err);
  if (rc || coding == GW_CODING_NONE)
    return rc;
  void *plain;
  size_t plain_len;
  const struct gw_conf *c = p->conf;
  struct gw_decode_limits lim = {.max_bytes = c->receivers.max_request_bytes,
                                 .max_ratio = c->receivers.max_inflate_ratio,
                                 .ratio_min_bytes = c->receivers.inflate_ratio_min_bytes};
  rc = gw_decompress(a, coding, *body, *len, &lim, &plain, &plain_len, err);
  if (rc)
    return rc;
  gw_metric_body_decompressed(bc, plain_len);
  *body = plain;
  *len = plain_len;
  return checkpoint(ctl, "decompression", err);
}

/* What can be stored (DESIGN §6): from the retention window's start to a day ahead. */
static struct gw_normalize_opts window(const struct gw_pipeline *p)
{
  struct gw_normalize_opts o = gw_normalize_window(gw_now_ns(), p->conf->postgres.retention_days);
  o.history_cache = p->history_cache;
  return o;
}

static gw_rc out_of_memory(struct gw_err *err, gw_rc rc)
{
  return gw_err_set(err, rc, "request needs more memory than the per-request limit");
}

/* A caller that answers asynchronously (gRPC) hands the acknowledgement to the spool: see gw_request_defer. */
static _Thread_local struct {
  void (*done)(void *arg, gw_rc rc);
  void *arg;
  bool used;
} defer;

void gw_request_defer(void (*done)(void *arg, gw_rc rc), void *arg)
{
  defer.done = done;
  defer.arg = arg;
  defer.used = false;
}

/* At the end of a request: whether the acknowledgement was handed to the spool; the hand-off is spent. */
static bool defer_end(void)
{
  bool used = defer.used;
  defer.done = NULL;
  defer.arg = NULL;
  defer.used = false;
  return used;
}

/* Re-encode the accepted request (gw_pb_pack: protobuf-c's bytes, each sub-message sized once) and append
 * it with its rows to the spool. *spooled: the spool answered (a failure is then the spool's, not memory's). */
static gw_rc append(struct gw_pipeline *p, struct gw_arena *a, struct gw_spool_in *in, const ProtobufCMessage *msg,
                    const struct gw_pb_raw *raw, uint64_t start, bool *spooled, struct gw_err *err)
{
  if (p->forward) { /* with no exporter nothing reads it: the entry holds the rows alone */
    size_t plen;
    /* A traces request's unchanged spans are copied from the body (raw): see gw_pb_pack_spliced. */
    uint8_t *pb = raw ? gw_pb_pack_spliced(a, (const GwTraceRequest *)(const void *)msg, raw, &plen)
                      : gw_pb_pack(a, msg, &plen);
    if (!pb)
      return out_of_memory(err, GW_ERR(TOO_LARGE));
    in->otlp = pb;
    in->otlp_len = plen;
  }
  gw_hist_observe(GW_H_STAGE_PROCESS, gw_mono_ns() - start);
  gw_rc rc;
  *spooled = true;
  if (defer.done) {
    rc = gw_spool_append_async(p->spool, in, defer.done, defer.arg, err);
    if (rc == GW_OK)
      defer.used = true;
  } else {
    rc = gw_spool_append_err(p->spool, in, err);
  }
  if (rc == GW_ERR(FULL) && !err->msg[0])
    return gw_err_set(err, rc, "spool full (%zu of %zu bytes held): retry later", gw_spool_bytes(p->spool),
                      gw_spool_max_bytes(p->spool));
  if (rc && !err->msg[0])
    return gw_err_set(err, rc, "%s", gw_err_message(rc));
  return rc;
}

/* receivers.max_spans_per_request: a request holding more is refused whole, before any work on its items. */
static gw_rc too_many(const struct gw_conf *c, uint32_t n, const char *what, struct gw_err *err)
{
  if (!c->receivers.max_spans || n <= c->receivers.max_spans)
    return GW_OK;
  return gw_err_set(err, GW_ERR(TOO_LARGE), "request holds %u %s, more than receivers.max_spans_per_request (%u): "
                    "send smaller batches", n, what, c->receivers.max_spans);
}

/* A failed request: its message, and the failure and backpressure counters. An arena that ran out says
 * which limit it met: the request's own share (413 / RESOURCE_EXHAUSTED, it would never fit) or the
 * memory all requests in flight share (503 / UNAVAILABLE, retry later). spooled: the spool gave rc (an
 * entry larger than the whole spool is TOO_LARGE too, and keeps the spool's message even when the arena
 * ran out earlier in a step that could do without, as the redaction memo's cache does). */
static gw_rc failed(struct gw_pipeline *p, struct gw_arena *a, struct gw_err *err, gw_rc rc, bool spooled)
{
  if (rc == GW_ERR(TOO_LARGE) && !spooled && gw_arena_exhausted(a)) {
    if (gw_arena_refused(a))
      rc = gw_err_set(err, GW_ERR(BUSY),
                      "too many request bytes in flight (receivers.max_inflight_bytes %llu, bodies and their "
                      "decoded data): retry later",
                      (unsigned long long)p->conf->receivers.max_inflight_bytes);
    else
      gw_err_set(err, rc,
                 "request needs more memory than one request may use (%zu bytes: %d x receivers.max_request_bytes, "
                 "its body included)",
                 gw_pipeline_share(p), GW_REQUEST_SHARE);
  }
  err->rc = rc;
  if (!err->msg[0])
    snprintf(err->msg, sizeof err->msg, "%s", gw_err_message(rc));
  if (rc == GW_ERR(FULL) || rc == GW_ERR(BUSY) || rc == GW_ERR(SHUTDOWN))
    gw_metric_add(GW_M_BACKPRESSURE, 1);
  if (rc == GW_ERR(DEADLINE))
    gw_metric_add(GW_M_REQUESTS_DEADLINE, 1);
  if (rc == GW_ERR(CANCELLED))
    gw_metric_add(GW_M_REQUESTS_CANCELLED, 1);
  gw_metric_add(GW_M_REQUESTS_FAILED, 1);
  return rc;
}

/* A large request (receivers.large_request_bytes, judged here by len, the body as decoded: what the lane
 * judged it by for a plain or size-stating body, more for framed snappy): its answer may wait for the
 * spool's sync budget rather than spend it (spool_disk.c, flusher). */
static bool large(const struct gw_conf *c, size_t len) { return c->receivers.large_bytes && len >= c->receivers.large_bytes; }

gw_rc gw_request_traces(struct gw_pipeline *p, struct gw_arena *a, enum gw_encoding enc, enum gw_coding coding,
                        const void *body, size_t len, struct gw_request_outcome *out)
{
  memset(out, 0, sizeof *out);
  struct gw_err *err = &out->err;
  const struct gw_conf *c = p->conf;
  uint64_t claimed = 0; /* spool room promised to this request */
  size_t entry = 0;     /* what it appended */
  bool spooled = false; /* the spool answered its append */
  struct ctl ctl = take_ctl();
  gw_rc rc = begin(p, &ctl, a, coding, &body, &len, err);
  if (rc)
    goto out;
  struct gw_decode_repaired repaired = {0};
  struct gw_decode_limits lim = {
    .max_bytes = c->receivers.max_request_bytes, .max_depth = c->receivers.max_depth, .repaired = &repaired};
  GwTraceRequest *req;
  struct gw_pb_raw raw = {0}; /* where the spans lie in the body, to copy the unchanged ones when forwarding */
  rc = gw_decode_traces_raw(a, enc, body, len, &lim, &req, p->forward ? &raw : NULL, err);
  if (rc)
    goto out;

  out->spans = count_spans(req);
  gw_metric_add(GW_M_SPANS_RECEIVED, out->spans);
  if ((rc = too_many(c, out->spans, "spans", err)) || (rc = checkpoint(&ctl, "decoding", err)) ||
      (rc = claim_room(p, &ctl, len, &claimed, err)))
    goto out;

  struct gw_normalize_opts nopts = window(p);
  nopts.repaired = &repaired;
  struct gw_normalize_result nres;
  memset(&nres, 0, sizeof nres);
  rc = gw_normalize_traces(req, a, &nopts, &nres, err);
  if (rc || (rc = checkpoint(&ctl, "normalization", err)))
    goto out;
  out->rejected = nres.nrejected;
  if (nres.nrejected) {
    snprintf(out->reject_msg, sizeof out->reject_msg, "%s", nres.reject_msg);
    gw_metric_rejected(GW_ERR(INVALID), nres.nrejected);
  }
  /* DESIGN §1: cost before redaction, redaction before anything leaves the process. */
  /* The cost stamps and the upstream stamps go onto the spans for whoever reads the forwarded request: with
   * no exporter nobody does (the rows hold the costs), so they are not written. */
  if (p->prices && nres.nrecords) {
    gw_cost_apply(p->prices, nres.records, nres.nrecords);
    if (p->forward && (rc = gw_cost_annotate_spans(a, nres.records, nres.nrecords))) {
      out_of_memory(err, rc);
      goto out;
    }
  }
  if (p->redactor) {
    struct gw_redact_memo *memo = gw_redact_memo_create(a); /* NULL (no memo) only when out of room */
    gw_redact_memo_limit(memo, p->redactor, len, ctl.deadline || ctl.gone ? ctl_stop : NULL, &ctl);
    rc = gw_redact_request_raw(p->redactor, req, a, memo, p->forward ? &raw : NULL);
    if (!rc)
      rc = gw_redact_records(p->redactor, nres.records, nres.nrecords, a, memo);
    if (!rc)
      rc = gw_redact_trace_facts(p->redactor, nres.facts, nres.nfacts, a, memo);
    if (rc) {
      redact_failed(&ctl, rc, err);
      goto out;
    }
  }
  /* What a forwarding gateway before us knew, then what a gateway after us needs (upstream.h). */
  if ((rc = gw_upstream_merge(a, nres.records, nres.nrecords)) ||
      (p->forward && (rc = gw_upstream_stamp(a, nres.records, nres.nrecords)))) {
    out_of_memory(err, rc);
    goto out;
  }
  uint32_t accepted = out->spans - nres.nrejected;
  if (accepted == 0) {
    rc = GW_OK; /* an empty request, or all rejected: answered with partial_success, nothing to spool */
    goto out;
  }

  struct gw_sb recs;
  gw_sb_init(&recs, a);
  if ((rc = gw_records_encode(nres.records, nres.nrecords, &recs)) ||
      (rc = gw_trace_facts_encode(nres.facts, nres.nfacts, &recs))) {
    out_of_memory(err, rc);
    goto out;
  }
  if ((rc = checkpoint(&ctl, "encoding", err)))
    goto out;
  struct gw_spool_in in = {
    .signal = GW_SIGNAL_TRACES,
    .flags = nres.has_genai ? GW_ENTRY_HAS_GENAI : 0,
    .nspans = accepted,
    .nrecords = (uint32_t)nres.nrecords,
    .records = recs.buf,
    .records_len = recs.len,
    .large = large(c, len),
  };
  /* With no exporter, spans that give no row are accepted and not kept: nothing would read them, but the
   * session and user ids they carry for their trace's rows. */
  if ((p->forward || nres.nrecords || nres.nfacts) &&
      (rc = append(p, a, &in, &req->base, &raw, ctl.start, &spooled, err)))
    goto out;
  entry = in.otlp_len + in.records_len;
  gw_metric_add(GW_M_SPANS_ACCEPTED, accepted);
  gw_metric_add(GW_M_GENAI_RECORDS, (int64_t)nres.nrecords);

out:
  out->deferred = defer_end();
  release_room(p, claimed, len, entry);
  if (rc) {
    rc = failed(p, a, err, rc, spooled);
    if (out->spans)
      gw_metric_rejected(rc, out->spans);
  }
  return rc;
}

static uint32_t count_logs(const GwLogsRequest *req)
{
  uint32_t n = 0;
  for (size_t i = 0; i < req->n_resource_logs; i++) {
    const GwResourceLogs *rl = req->resource_logs[i];
    for (size_t j = 0; rl && j < rl->n_scope_logs; j++)
      if (rl->scope_logs[j])
        n += (uint32_t)rl->scope_logs[j]->n_log_records;
  }
  return n;
}

gw_rc gw_request_logs(struct gw_pipeline *p, struct gw_arena *a, enum gw_encoding enc, enum gw_coding coding,
                      const void *body, size_t len, struct gw_request_outcome *out)
{
  memset(out, 0, sizeof *out);
  out->logs = true;
  struct gw_err *err = &out->err;
  const struct gw_conf *c = p->conf;
  uint64_t claimed = 0; /* spool room promised to this request */
  size_t entry = 0;     /* what it appended */
  bool spooled = false; /* the spool answered its append */
  struct ctl ctl = take_ctl();
  gw_rc rc = begin(p, &ctl, a, coding, &body, &len, err);
  if (rc)
    goto out;
  struct gw_decode_limits lim = {.max_bytes = c->receivers.max_request_bytes, .max_depth = c->receivers.max_depth};
  GwLogsRequest *req;
  rc = gw_decode_logs(a, enc, body, len, &lim, &req, err);
  if (rc)
    goto out;
  out->spans = count_logs(req);
  gw_metric_add(GW_M_LOGS_RECEIVED, out->spans);
  if ((rc = too_many(c, out->spans, "log records", err)) || (rc = checkpoint(&ctl, "decoding", err)) ||
      (rc = claim_room(p, &ctl, len, &claimed, err)))
    goto out;

  struct gw_normalize_opts nopts = window(p);
  struct gw_logs_result lres;
  rc = gw_normalize_logs(req, a, &nopts, &lres, err);
  if (rc || (rc = checkpoint(&ctl, "normalization", err)))
    goto out;
  out->rejected = lres.nrejected;
  if (lres.nrejected) {
    snprintf(out->reject_msg, sizeof out->reject_msg, "%s", lres.reject_msg);
    gw_metric_add(GW_M_LOGS_REJECTED, lres.nrejected);
  }
  gw_metric_add(GW_M_EVENTS_UNJOINABLE, lres.nunjoinable);
  /* Redaction before anything leaves the process: the event content (prompt hashes are already taken),
   * then the request that is forwarded, then the event attributes rendered from the redacted records. */
  if (p->redactor) {
    struct gw_redact_memo *memo = gw_redact_memo_create(a);
    gw_redact_memo_limit(memo, p->redactor, len, ctl.deadline || ctl.gone ? ctl_stop : NULL, &ctl);
    rc = gw_redact_events(p->redactor, lres.events, lres.nevents, a, memo);
    if (!rc)
      rc = gw_redact_logs_request(p->redactor, req, a, memo);
    if (rc) {
      redact_failed(&ctl, rc, err);
      goto out;
    }
  }
  if ((rc = gw_events_finish(lres.events, lres.nevents, a)) ||
      (rc = gw_upstream_merge_events(a, lres.events, lres.nevents)) ||
      (p->forward && (rc = gw_upstream_stamp_logs(a, lres.events, lres.nevents)))) {
    out_of_memory(err, rc);
    goto out;
  }
  uint32_t accepted = out->spans - lres.nrejected;
  if (accepted == 0) {
    rc = GW_OK;
    goto out;
  }
  struct gw_sb evs;
  gw_sb_init(&evs, a);
  if ((rc = gw_events_encode(lres.events, lres.nevents, &evs))) {
    out_of_memory(err, rc);
    goto out;
  }
  if ((rc = checkpoint(&ctl, "encoding", err)))
    goto out;
  struct gw_spool_in in = {
    .signal = GW_SIGNAL_LOGS,
    .flags = lres.has_genai ? GW_ENTRY_HAS_GENAI : 0,
    .nspans = accepted,
    .nrecords = (uint32_t)lres.nevents,
    .records = evs.buf,
    .records_len = evs.len,
    .large = large(c, len),
  };
  if ((p->forward || lres.nevents) && (rc = append(p, a, &in, &req->base, NULL, ctl.start, &spooled, err)))
    goto out;
  entry = in.otlp_len + in.records_len;
  gw_metric_add(GW_M_LOGS_ACCEPTED, accepted);
  gw_metric_add(GW_M_GENAI_EVENTS, (int64_t)lres.nevents);

out:
  out->deferred = defer_end();
  release_room(p, claimed, len, entry);
  if (rc) {
    rc = failed(p, a, err, rc, spooled);
    if (out->spans)
      gw_metric_add(GW_M_LOGS_REJECTED, out->spans);
  }
  return rc;
}
