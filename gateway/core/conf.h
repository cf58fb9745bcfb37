/*
 * conf.h: the gateway's configuration (DESIGN §8).
 *
 * One YAML file (--config), `${ENV}` / `${ENV:-default}` substitution in scalar values, then environment
 * overrides that win over the file (DATABASE_URL, GENAI_GW_GRPC_ADDR, GENAI_GW_HTTP_ADDR,
 * GENAI_GW_ADMIN_ADDR, GENAI_GW_LOG_LEVEL, GENAI_GW_SPOOL_DIR, GENAI_GW_REDACTION_HMAC_KEY, LANGFUSE_HOST,
 * LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, SIGNOZ_ENDPOINT, SIGNOZ_INGESTION_KEY). With no file, built-in
 * defaults.
 * Parsing is table-driven (conf.c): each row is {path, type, default, bounds or allowed values, flags,
 * offset, description}. Unknown keys, bad types and out-of-range values are errors that name the file,
 * line and key and the reason, and list the allowed keys. Secrets are masked by --print-config.
 * The struct is built once at start and read-only afterwards (shared freely across threads).
 */
#ifndef GW_CONF_H
#define GW_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/gw.h"

/* A list from the file: n rows of width cells each (T_LIST: width 1); an absent optional field is NULL. */
struct gw_conf_list {
  uint32_t n, width;
  char **cells; /* cells[row * width + field] */
};

/* Redaction detectors configurable by name (redaction.detectors.<name>), in this order. */
#define GW_CONF_REDACT_KINDS                                                                                  \
  "email", "phone", "ssn", "credit_card", "ipv4", "ipv6", "aws_access_key", "aws_secret_key", "jwt",            \
    "bearer_token", "api_key", "private_key", "basic_auth"
#define GW_CONF_NREDACT_KINDS 13

/* Exporters configurable by name (exporters.<name>), in this order; exporters/ declares one type per name. */
enum gw_conf_exporter_id { GW_CONF_EXP_LANGFUSE, GW_CONF_EXP_SIGNOZ, GW_CONF_EXP_OTLP, GW_CONF_NEXPORTERS };
extern const char *const gw_conf_exporter_names[GW_CONF_NEXPORTERS];

/* One exporter's keys (exporters.<name>.*). It runs when enabled and endpoint is not empty. */
struct gw_conf_exporter {
  bool enabled;                /* default true: an exporter is on as soon as it has an endpoint */
  char *endpoint;              /* gRPC: host:port; HTTP: a base URL (the signal's path is appended); "" = off */
  char *protocol;              /* grpc | http (langfuse: http only) */
  struct gw_conf_list headers; /* [{name, value}] sent with every request; values are secrets */
  bool tls;                    /* gRPC: TLS instead of plaintext (HTTP: the URL scheme decides) */
  char *ca_file;               /* PEM roots for TLS; "" = the system's */
  uint32_t timeout_ms;         /* per request, connection included */
  bool gzip;                   /* compress request bodies */
  bool genai_only;             /* forward GenAI spans only */
  uint32_t batch_spans;        /* send when this many spans wait ... */
  uint32_t batch_wait_ms;      /* ... or the oldest has waited this long */
  uint64_t max_request_bytes;  /* a batch is cut into requests of at most this (before compression) */
  uint64_t max_lag_bytes;      /* lag cap; 0 = a quarter of spool.max_bytes */
  uint32_t max_lag_ms;         /* lag cap by age; 0 = none */
  uint32_t nice;               /* the exporter thread's nice increment (0 = as ingestion) */
  char *public_key;            /* langfuse: LANGFUSE_PUBLIC_KEY */
  char *secret_key;            /* langfuse (SECRET): LANGFUSE_SECRET_KEY */
  uint32_t join_wait_ms;       /* langfuse: how long a GenAI span waits for its log records (0: never) */
  uint32_t join_events_ms;     /* langfuse: how long log content waits for its span */
  uint64_t join_max_bytes;     /* langfuse: memory for held spans and kept log content */
  char *ingestion_key;         /* signoz (SECRET): signoz-ingestion-key header, SIGNOZ_INGESTION_KEY */
  char *token_file;            /* a bearer token sent as Authorization: Bearer (re-read when it changes); "" = none */
  bool insecure;               /* allow credentials in cleartext to a host other than this one */
  bool cleartext_credentials;  /* derived at load: insecure was needed (credentials go out unencrypted) */
};

struct gw_conf {
  struct {
    char *grpc_addr;           /* receivers.grpc.addr, default 127.0.0.1:4317 */
    char *http_addr;           /* receivers.http.addr, default 127.0.0.1:4318 */
    uint64_t max_request_bytes;  /* receivers.max_request_bytes: after decompression; default 64 MiB */
    uint64_t history_cache_bytes; /* receivers.history_cache_bytes: default 4 MiB; 0 = none */
    uint64_t max_inflight_bytes; /* receivers.max_inflight_bytes: all requests together; default 256 MiB */
    uint32_t max_inflate_ratio;  /* receivers.max_inflate_ratio: gzip output/input past the minimum; 0 none */
    uint64_t inflate_ratio_min_bytes; /* receivers.inflate_ratio_min_bytes; default 1 MiB */
    uint32_t max_depth;        /* receivers.max_depth: AnyValue nesting; default 32 */
    uint32_t max_spans;        /* receivers.max_spans_per_request: spans or log records; 0 = no limit */
    uint64_t large_bytes;      /* receivers.large_request_bytes: the large-request lane from here; 0 = none */
    uint32_t large_threads;    /* receivers.large_request_threads: default 1 */
    uint32_t large_nice;       /* receivers.large_request_nice: default 10 */
    uint32_t http_max_connections; /* receivers.http.max_connections; default 4096 */
    uint32_t http_max_per_ip;  /* receivers.http.max_connections_per_ip; default 128, 0 = no limit */
    uint32_t http_threads;     /* receivers.http.threads: libmicrohttpd's epoll thread pool; default 2 */
    uint32_t http_idle_ms;     /* receivers.http.idle_timeout_ms: no byte in or out for this long; default 60s */
    uint32_t http_header_ms;   /* receivers.http.header_timeout_ms: request line and headers; default 10s */
    uint32_t http_body_ms;     /* receivers.http.body_timeout_ms: the whole body after the headers; default 60s */
    uint32_t http_max_streams; /* receivers.http.max_concurrent_streams: HTTP/2; default 100 */
    bool http_grpc;            /* receivers.http.grpc: OTLP/gRPC calls on the OTLP/HTTP port (HTTP/2); default true */
    char *grpc_engine;         /* receivers.grpc.engine: nghttp2 (default) | grpc-core */
    uint32_t grpc_threads;     /* receivers.grpc.threads; default 2 */
    uint32_t grpc_max_connections; /* receivers.grpc.max_connections; default 4096 (nghttp2 engine) */
    uint32_t grpc_max_per_ip;  /* receivers.grpc.max_connections_per_ip; default 128, 0 = no limit */
    uint32_t grpc_idle_ms;     /* receivers.grpc.max_connection_idle_ms: no call for this long; default 5m, 0 = none */
    uint32_t grpc_age_ms;      /* receivers.grpc.max_connection_age_ms: default 30m, 0 = none */
    uint32_t grpc_age_grace_ms; /* receivers.grpc.max_connection_age_grace_ms: default 30s */
    uint32_t grpc_max_streams; /* receivers.grpc.max_concurrent_streams: default 100 */
    uint32_t grpc_min_ping_ms; /* receivers.grpc.min_ping_interval_ms: keepalive enforcement; default 30s */
    uint32_t grpc_handshake_ms; /* receivers.grpc.handshake_timeout_ms: default 10s */
    uint32_t retry_after_s;    /* receivers.retry_after_seconds: told to clients under backpressure; default 1 */
    char *tls_cert;            /* receivers.tls.cert_file: PEM chain; "" = plaintext receivers */
    char *tls_key;             /* receivers.tls.key_file: PEM private key */
    char *tls_client_ca;       /* receivers.tls.client_ca_file: PEM CAs; set = client certificates required */
    uint32_t reload_ms;        /* receivers.reload_interval_ms: how often the TLS and token files (exporters' too) are checked */
    char *auth_tokens;         /* receivers.auth.tokens_file: one token per line; "" = no authentication */
  } receivers;
  struct {
    char *addr; /* admin.addr, default 127.0.0.1:8888 */
  } admin;
  struct {
    char *level; /* log.level: debug|info|warn|error, default info */
  } log;
  struct {
    char *mode;         /* spool.mode: memory|disk after load ("auto" resolves to disk when dir is set) */
    char *dir;          /* spool.dir, default empty */
    char *fsync;        /* spool.fsync: always|interval|never, default interval */
    uint32_t fsync_interval_ms; /* spool.fsync_interval_ms, default 10 */
    uint64_t segment_bytes;     /* spool.segment_bytes, 0 = automatic */
    uint64_t max_bytes; /* spool.max_bytes, default 256 MiB */
    double high_water;  /* spool.high_water: 0 < x <= 1, default 0.9 */
    uint32_t full_wait_ms; /* spool.full_wait_ms: a request's wait for room before 429, default 100 */
  } spool;
  char *durability; /* durability: DESIGN's name for spool.mode; after load the same as spool.mode */
  struct {
    char *dsn;              /* postgres.dsn (SECRET), or DATABASE_URL; empty = no Postgres writer */
    uint32_t batch_rows;    /* postgres.batch_rows, default 1000 */
    uint32_t batch_wait_ms; /* postgres.batch_wait_ms, default 200 */
    uint32_t statement_timeout_ms; /* postgres.statement_timeout, default 60 s; 0 = no limit */
    uint32_t writers;       /* postgres.writers: connections writing at once, 1 .. 8, default 1 */
    uint32_t retention_days;  /* postgres.retention_days, default 90 */
    uint32_t rollup_retention_days; /* postgres.rollup_retention_days, default 400, >= retention_days */
    uint32_t partitions_ahead_days; /* postgres.partitions_ahead_days, default 3 */
    uint32_t maintenance_interval_ms; /* postgres.maintenance_interval, default 1h; 0 = no maintenance loop */
    bool migrate;           /* postgres.migrate: apply migrations at start, default true */
    char *migrations_dir;   /* postgres.migrations_dir, default: the installed migrations */
  } postgres;
  struct {
    char *file;          /* pricing.file: user price table (YAML or LiteLLM JSON); "" = none */
    char *defaults_file; /* pricing.defaults_file: "" = the shipped table */
  } pricing;
  struct {
    bool enabled;                 /* redaction.enabled, default true */
    char *hmac_key;               /* redaction.hmac_key (SECRET), or GENAI_GW_REDACTION_HMAC_KEY */
    uint64_t max_content_bytes;   /* redaction.max_content_bytes, default 8 KiB; 0 = no truncation */
    uint32_t scan_factor;         /* redaction.scan_factor, default 32; 0 = no limit */
    uint32_t max_cpu_ms_per_mib;  /* redaction.max_cpu_ms_per_mib, default 1000; 0 = no limit */
    char *detectors[GW_CONF_NREDACT_KINDS]; /* redaction.detectors.<kind>: mask|hash|drop|off */
    struct gw_conf_list allow_keys;  /* redaction.allow_keys: added to the built-in allow list */
    struct gw_conf_list deny_keys;   /* redaction.deny_keys: added to the built-in deny list */
    struct gw_conf_list key_actions; /* redaction.key_actions: [{key, action}] */
    struct gw_conf_list patterns;    /* redaction.patterns: [{name, regex, action, label}] */
  } redaction;
  struct gw_conf_exporter exporters[GW_CONF_NEXPORTERS]; /* exporters.<name>, gw_conf_exporter_names order */
  uint32_t shutdown_grace_ms; /* shutdown_grace_ms, default 10000 */
  char *source;               /* the file the config came from, or NULL for defaults */
};

/*
 * Load the configuration: defaults, then the file at path (NULL = none), then the environment.
 * On error returns a negative rc with err->msg like
 *   "gateway.yaml:12: receivers.max_depth: 0 is below the minimum 1".
 * On success *out is a heap object for gw_conf_destroy.
 */
gw_rc gw_conf_load(const char *path, struct gw_conf **out, struct gw_err *err);
void gw_conf_destroy(struct gw_conf *c);

/* Write the effective configuration as YAML, secrets masked ("****"). */
void gw_conf_print(const struct gw_conf *c, FILE *f);

/* Write the Markdown reference of every key (docs/config.md) from the same table. */
void gw_conf_describe(FILE *f);

/* The lag cap in bytes an exporter runs with: its max_lag_bytes, or a quarter of spool.max_bytes. */
uint64_t gw_conf_exporter_lag_bytes(const struct gw_conf *c, const struct gw_conf_exporter *e);
/* True when the exporter runs: enabled with an endpoint. */
bool gw_conf_exporter_on(const struct gw_conf_exporter *e);

#endif
