/*
 * fuzz_langfuse.c: the exporters' wire-level rewrite (exporters/otlp/payload.c: spans read from their
 * protobuf bytes, the kept ones copied with KeyValues appended, envelopes rewritten) with the Langfuse
 * transform (exporters/langfuse/langfuse.c: usage and cost details, user and session ids across a trace,
 * messages from GenAI events), as the Langfuse exporter builds each batch.
 *
 * Input: one selector byte, a 2-byte big-endian length n, n bytes for a traces entry, the rest for a logs
 * entry. sel & 1 clear: both parts are protobuf bodies (ExportTraceServiceRequest, ExportLogsServiceRequest)
 * spooled as they are when protobuf-c accepts them; set: both build requests (fuzzutil.c) with valid ids
 * and GenAI attributes, so spans meet their records and events. Records and events are what normalize
 * (and cost, for the usage and cost details) make of the same bodies, as the pipeline spools them.
 * Checks: the rewritten traces piece decodes and holds the spans it counts; a body protobuf-c accepts is
 * never refused by the wire reader (that would drop the batch's spans as "too large").
 */
#include <stdlib.h>
#include <string.h>

#include "cost/cost.h"
#include "decode/decode.h"
#include "export_int.h"
#include "exporters.h"
#include "fuzzutil.h"
#include "normalize/events.h"
#include "normalize/normalize.h"

static struct gw_prices *prices;
static const struct gw_decode_limits lim = {.max_bytes = 1 << 20, .max_depth = 32};

/* The traces entry: body as is, the records normalize and cost make of it. False when it does not decode. */
static bool traces_entry(struct gw_arena *a, const uint8_t *body, size_t len, struct gw_spool_entry *e)
{
  GwTraceRequest *req;
  struct gw_err err;
  struct gw_normalize_result nres;
  if (gw_decode_traces(a, GW_ENC_PROTOBUF, body, len, &lim, &req, &err) ||
      gw_normalize_traces(req, a, NULL, &nres, &err))
    return false;
  gw_cost_apply(prices, nres.records, nres.nrecords);
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  if (gw_records_encode(nres.records, nres.nrecords, &sb))
    return false;
  *e = (struct gw_spool_entry){.seq = 1, .format = GW_SPOOL_FORMAT, .signal = GW_SIGNAL_TRACES,
                               .nspans = nres.nspans, .nrecords = (uint32_t)nres.nrecords, .otlp = body,
                               .otlp_len = len, .records = sb.buf, .records_len = sb.len};
  return true;
}

static bool logs_entry(struct gw_arena *a, const uint8_t *body, size_t len, struct gw_spool_entry *e)
{
  GwLogsRequest *req;
  struct gw_err err;
  struct gw_logs_result lres;
  if (gw_decode_logs(a, GW_ENC_PROTOBUF, body, len, &lim, &req, &err) ||
      gw_normalize_logs(req, a, NULL, &lres, &err) || gw_events_finish(lres.events, lres.nevents, a))
    return false;
  struct gw_sb sb;
  gw_sb_init(&sb, a);
  if (gw_events_encode(lres.events, lres.nevents, &sb))
    return false;
  *e = (struct gw_spool_entry){.seq = 2, .format = GW_SPOOL_FORMAT, .signal = GW_SIGNAL_LOGS,
                               .flags = lres.has_genai ? GW_ENTRY_HAS_GENAI : 0, .nspans = lres.nlogs,
                               .nrecords = (uint32_t)lres.nevents, .otlp = body, .otlp_len = len,
                               .records = sb.buf, .records_len = sb.len};
  return true;
}

static size_t count_spans(const GwTraceRequest *req)
{
  size_t n = 0;
  for (size_t i = 0; i < req->n_resource_spans; i++)
    for (size_t j = 0; j < req->resource_spans[i]->n_scope_spans; j++)
      n += req->resource_spans[i]->scope_spans[j]->n_spans;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (!prices) {
    struct gw_err err;
    if (!(prices = gw_prices_load(NULL, NULL, &err)))
      abort();
  }
  if (size < 3)
    return 0;
  size_t n = (size_t)data[1] << 8 | data[2];
  const uint8_t *tb = data + 3, *lb;
  size_t tlen = n < size - 3 ? n : size - 3, llen = size - 3 - tlen;
  lb = tb + tlen;
  struct gw_arena *a = gw_arena_create(64 << 20);
  if (data[0] & 1) {
    struct fz ft = {tb, tb + tlen}, fl = {lb, lb + llen};
    uint8_t *t, *l;
    if (!fz_build_traces(&ft, a, &t, &tlen) || !fz_build_logs(&fl, a, &l, &llen))
      goto out;
    tb = t;
    lb = l;
  }
  struct gw_spool_entry ents[2];
  size_t nent = 0;
  if (traces_entry(a, tb, tlen, &ents[nent]))
    nent++;
  if (logs_entry(a, lb, llen, &ents[nent]))
    nent++;
  if (!nent)
    goto out;
  void *priv = gw_exporter_langfuse.create(NULL);
  struct gw_export_payload_opts o = {.type = &gw_exporter_langfuse, .priv = priv};
  struct gw_export_piece pc[2];
  struct gw_arena *ba = gw_arena_create(64 << 20);
  gw_rc rc = gw_export_build(&o, ba, ents, nent, pc);
  for (size_t i = 0; i < nent && !rc; i++) {
    if (ents[i].signal != GW_SIGNAL_TRACES)
      continue;
    GwTraceRequest *req;
    struct gw_err err;
    if (pc[i].too_large) {
      if (!gw_arena_exhausted(ba))
        abort(); /* a body protobuf-c decodes, refused by the wire reader */
      continue;
    }
    const void *bytes = pc[i].len ? (const void *)pc[i].bytes : "";
    if (gw_decode_traces(ba, GW_ENC_PROTOBUF, bytes, pc[i].len, &lim, &req, &err) || count_spans(req) != pc[i].items)
      abort(); /* the rewritten copy is not the request it claims to be */
  }
  gw_arena_destroy(ba);
  gw_exporter_langfuse.destroy(priv);
out:
  gw_arena_destroy(a);
  return 0;
}
