/*
 * metrics.h: process-wide counters (atomics) rendered as Prometheus text on /metrics.
 * Counters are declared once in GW_METRICS; rejections are also counted per gw_code (reason label).
 * Thread-safe, lock-free. Gauges that belong to other modules (spool bytes, lag) are rendered by
 * callbacks registered at start.
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stdint.h>

#include "core/arena.h"
#include "core/gw.h"

/* id, Prometheus name, type, help */
#define GW_METRICS(X)                                                                                   \
  X(REQUESTS, "genai_gateway_requests_total", "counter", "OTLP export requests received")               \
  X(REQUESTS_FAILED, "genai_gateway_requests_failed_total", "counter",                                  \
    "OTLP export requests refused as a whole (bad input, size, backpressure)")                         \
  X(SPANS_RECEIVED, "genai_gateway_spans_received_total", "counter", "Spans received")                 \
  X(SPANS_ACCEPTED, "genai_gateway_spans_accepted_total", "counter", "Spans accepted into the spool")   \
  X(GENAI_RECORDS, "genai_gateway_genai_records_total", "counter", "GenAI interaction records built")   \
  X(RECORDS_STORED, "genai_gateway_records_stored_total", "counter", "Rows newly inserted in Postgres") \
  X(RECORDS_DUPLICATE, "genai_gateway_records_duplicate_total", "counter",                             \
    "Records already present in Postgres (re-sent spans)")                                              \
  X(RECORDS_REJECTED_DB, "genai_gateway_records_rejected_db_total", "counter",                         \
    "Records Postgres refused, written to ai_interaction_rejects")                                      \
  X(PG_BATCHES, "genai_gateway_pg_batches_total", "counter", "Postgres batches committed")              \
  X(PG_BATCH_SECONDS, "genai_gateway_pg_batch_seconds_total", "counter",                               \
    "Time spent committing Postgres batches")                                                           \
  X(PG_ERRORS, "genai_gateway_pg_errors_total", "counter", "Postgres batch failures (retried)")         \
  X(PG_SPLITS, "genai_gateway_pg_batch_splits_total", "counter",                                        \
    "Postgres transactions rolled back for a row's data and retried in halves")                         \
  X(PG_COPY_FALLBACKS, "genai_gateway_pg_copy_fallbacks_total", "counter",                              \
    "Postgres batches whose direct COPY met a span already stored, stored again through the staging table") \
  X(PG_AGENT_FILLS_SKIPPED, "genai_gateway_pg_agent_fills_skipped_total", "counter",                    \
    "Postgres batches whose traces name no agent or workflow, so the agent fill was not run")           \
  X(PG_TRACE_IDS, "genai_gateway_pg_trace_ids_total", "counter",                                        \
    "Session/user ids of spans that give no row, kept per trace and filled into the trace's rows")      \
  X(PG_CONNECTED, "genai_gateway_pg_connected", "gauge", "Postgres writer connections open (1 when the one writer is connected)")      \
  X(REQUESTS_DEADLINE, "genai_gateway_requests_deadline_exceeded_total", "counter",                   \
    "Requests abandoned because the client's gRPC deadline passed before they were done")              \
  X(REQUESTS_CANCELLED, "genai_gateway_requests_cancelled_total", "counter",                            \
    "Requests abandoned because the client closed its HTTP connection before they were done")          \
  X(BACKPRESSURE, "genai_gateway_backpressure_total", "counter",                                        \
    "Requests refused with 429/503/RESOURCE_EXHAUSTED because the spool or in-flight cap was full")    \
  X(INFLIGHT_BYTES, "genai_gateway_inflight_request_bytes", "gauge", "Request bytes being processed")   \
  X(LARGE_REQUESTS, "genai_gateway_large_requests_total", "counter",                                    \
    "Requests of receivers.large_request_bytes or more, handed to the large-request threads")          \
  X(LARGE_PENDING, "genai_gateway_large_requests_pending", "gauge",                                     \
    "Large requests queued for or running on the large-request threads")                               \
  X(UTF8_FIXED, "genai_gateway_invalid_utf8_strings_total", "counter",                                 \
    "Strings with invalid UTF-8 or NUL bytes repaired at decode")                                      \
  X(COST_UNKNOWN, "genai_gateway_cost_unknown_total", "counter",                                       \
    "GenAI records with a model but neither a price entry nor a client-reported cost") \
  X(LOGS_RECEIVED, "genai_gateway_log_records_received_total", "counter", "OTLP log records received")   \
  X(LOGS_ACCEPTED, "genai_gateway_log_records_accepted_total", "counter",                               \
    "Log records accepted into the spool")                                                              \
  X(LOGS_REJECTED, "genai_gateway_log_records_rejected_total", "counter",                               \
    "Log records refused (bad ids, GenAI events outside the time window, or the whole request failed)") \
  X(GENAI_EVENTS, "genai_gateway_genai_events_total", "counter",                                        \
    "GenAI event rows built from log records (one per message)")                                        \
  X(EVENTS_UNJOINABLE, "genai_gateway_genai_events_unjoinable_total", "counter",                        \
    "GenAI event log records without a trace_id/span_id: forwarded, not stored")                        \
  X(EVENTS_STORED, "genai_gateway_genai_events_stored_total", "counter",                                \
    "GenAI event rows newly inserted in Postgres")                                                      \
  X(EVENTS_ORPHANED, "genai_gateway_genai_events_orphaned", "gauge",                                    \
    "Stored GenAI events older than an hour whose span has no interaction row (maintenance query)")    \
  X(MAINT_RUNS, "genai_gateway_pg_maintenance_runs_total", "counter",                                   \
    "Partition and retention maintenance passes completed")                                             \
  X(MAINT_ERRORS, "genai_gateway_pg_maintenance_errors_total", "counter",                               \
    "Maintenance passes that failed (retried)")                                                         \
  X(PARTITIONS_CREATED, "genai_gateway_pg_partitions_created_total", "counter",                         \
    "Daily partitions created ahead by maintenance")                                                    \
  X(PARTITIONS_DROPPED, "genai_gateway_pg_partitions_dropped_total", "counter",                         \
    "Daily partitions dropped past retention_days")                                                     \
  X(SPOOL_RECOVERED_ENTRIES, "genai_gateway_spool_recovered_entries_total", "counter",                   \
    "Disk spool entries found at start that some consumer had not finished, replayed")                 \
  X(SPOOL_CORRUPT_RECORDS, "genai_gateway_spool_corrupt_records_total", "counter",                       \
    "Torn or damaged regions of the disk spool skipped at recovery")                                    \
  X(SPOOL_CORRUPT_BYTES, "genai_gateway_spool_corrupt_bytes_total", "counter",                           \
    "Bytes of torn or damaged disk spool data skipped at recovery")                                     \
  X(SPOOL_FSYNCS, "genai_gateway_spool_fsyncs_total", "counter", "Disk spool group commits (fdatasync)") \
  X(SPOOL_FSYNC_SECONDS, "genai_gateway_spool_fsync_seconds_total", "counter",                           \
    "Time spent in disk spool fdatasync")                                                               \
  X(SPOOL_WRITTEN_BYTES, "genai_gateway_spool_written_bytes_total", "counter",                           \
    "Bytes the disk spool wrote to its segment files (entries, segment headers): the load on its disk")   \
  X(SHUTDOWN_DROPPED_SPANS, "genai_gateway_shutdown_dropped_spans_total", "counter",                     \
    "Spans a consumer had not finished when the gateway stopped with the memory spool (lost)")         \
  X(SHUTDOWN_DROPPED_LOGS, "genai_gateway_shutdown_dropped_log_records_total", "counter",                \
    "Log records a consumer had not finished when the gateway stopped with the memory spool (lost)")   \
  X(ROLLUPS_EXPIRED, "genai_gateway_pg_rollup_rows_expired_total", "counter",                           \
    "Hourly rollup rows deleted past rollup_retention_days")

enum gw_metric {
#define GW_METRIC_ENUM(id, name, type, help) GW_M_##id,
  GW_METRICS(GW_METRIC_ENUM)
#undef GW_METRIC_ENUM
  GW_M__COUNT
};

void gw_metric_add(enum gw_metric m, int64_t n);
void gw_metric_set(enum gw_metric m, int64_t v);
int64_t gw_metric_get(enum gw_metric m);

/*
 * Latency histograms, in seconds, with one fixed set of buckets (0.5 ms .. 10 s, +Inf): Prometheus
 * histograms, so dashboards take quantiles across pods with histogram_quantile. Lock-free.
 * id, Prometheus name, labels, help. Series of one name must be adjacent.
 */
#define GW_HISTS(X)                                                                                       \
  X(REQ_GRPC_TRACES, "genai_gateway_request_duration_seconds", "protocol=\"grpc\",signal=\"traces\"",      \
    "OTLP export requests, from the request's arrival to its answer (with the disk spool, after the sync)") \
  X(REQ_GRPC_LOGS, "genai_gateway_request_duration_seconds", "protocol=\"grpc\",signal=\"logs\"", NULL)     \
  X(REQ_HTTP_TRACES, "genai_gateway_request_duration_seconds", "protocol=\"http\",signal=\"traces\"", NULL)  \
  X(REQ_HTTP_LOGS, "genai_gateway_request_duration_seconds", "protocol=\"http\",signal=\"logs\"", NULL)      \
  X(STAGE_PROCESS, "genai_gateway_request_stage_seconds", "stage=\"process\"",                              \
    "Where an OTLP export request's time goes: upload = from its headers to its whole body (OTLP/HTTP 1.1); " \
    "process = from its whole body to the spool "                                                           \
    "append (decode, normalize, cost, redact, encode); append = the append (its turn and the write); "       \
    "durable = from the append to the sync that covers it (disk spool, spool.fsync always/interval); "       \
    "answer = from the entry durable to the answer sent (libmicrohttpd's or gRPC's completion); "            \
    "queue = a large request's wait for the large-request threads (receivers.large_request_bytes)")          \
  X(STAGE_UPLOAD, "genai_gateway_request_stage_seconds", "stage=\"upload\"", NULL)                          \
  X(STAGE_APPEND, "genai_gateway_request_stage_seconds", "stage=\"append\"", NULL)                          \
  X(STAGE_DURABLE, "genai_gateway_request_stage_seconds", "stage=\"durable\"", NULL)                        \
  X(STAGE_ANSWER, "genai_gateway_request_stage_seconds", "stage=\"answer\"", NULL)                          \
  X(STAGE_QUEUE, "genai_gateway_request_stage_seconds", "stage=\"queue\"", NULL)                            \
  X(SPOOL_FSYNC, "genai_gateway_spool_fsync_duration_seconds", "",                                          \
    "One group-commit sync of the disk spool (every segment written since the last, and the directory)")     \
  X(PG_BATCH, "genai_gateway_pg_batch_duration_seconds", "",                                              \
    "One Postgres writer batch committed, all its transactions (genai_gateway_exporter_batch_seconds is the " \
    "exporters')")

enum gw_hist {
#define GW_HIST_ENUM(id, name, labels, help) GW_H_##id,
  GW_HISTS(GW_HIST_ENUM)
#undef GW_HIST_ENUM
  GW_H__COUNT
};

/* Count one observation of ns nanoseconds. */
void gw_hist_observe(enum gw_hist h, uint64_t ns);

/* Request bodies by content coding (label encoding: identity, gzip, deflate, zstd, snappy, lz4): bytes as received
 * (genai_gateway_request_body_bytes_total), and after decompression for the bodies that decompressed
 * (genai_gateway_request_body_decompressed_bytes_total; identity: the same bytes). */
enum gw_body_coding { GW_BODY_IDENTITY, GW_BODY_GZIP, GW_BODY_DEFLATE, GW_BODY_ZSTD, GW_BODY_SNAPPY, GW_BODY_LZ4, GW_BODY__COUNT };
void gw_metric_body_received(enum gw_body_coding c, uint64_t bytes);
void gw_metric_body_decompressed(enum gw_body_coding c, uint64_t bytes);
int64_t gw_metric_body_get(enum gw_body_coding c, bool decompressed);

/* Spans rejected, by reason (the error table's metric label). */
void gw_metric_rejected(gw_rc reason, int64_t n);
int64_t gw_metric_rejected_get(gw_rc reason);

/* Extra renderers (spool, sinks, exporters) append their own lines. At most 16. A renderer runs on the
 * admin thread; unregister it before freeing ctx (returns once no render is using it). */
typedef void (*gw_metrics_render_fn)(struct gw_sb *out, void *ctx);
void gw_metrics_register(gw_metrics_render_fn fn, void *ctx);
void gw_metrics_unregister(gw_metrics_render_fn fn, void *ctx);

/* Render everything as Prometheus text exposition format. */
void gw_metrics_render(struct gw_sb *out);

#endif
