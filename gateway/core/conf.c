/*
 * conf.c: the configuration, built once at start (DESIGN §8) and read-only afterwards.
 *
 * One table (gw_conf_rows[]) holds every key: path, type, default (as text, converted by the same code
 * as a file value, so a default can never bypass a bound), bounds or allowed values, flags, the offset
 * into struct gw_conf and a description. The table alone drives loading (here), --print-config and the
 * reference page docs/config.md (both in conf_print.c).
 *
 * Order of precedence: built-in defaults, then the YAML file (libyaml event API, so every key and value
 * keeps its line), then the environment overrides (gw_conf_envs[]). `${NAME}` / `${NAME:-default}` are
 * substituted in file values before conversion; `$${` is a literal `${`. validate() then runs the
 * cross-field checks: it fails the start and never corrects a value.
 *
 * Errors read "FILE:LINE: KEY: REASON" (or "environment VAR: KEY: REASON"). Loading stops at the first
 * error, so a hostile file can never make us recurse deeper than the table (three levels). A secret's
 * value is never echoed, in errors or in print; other echoed values are cut short and made printable.
 * The file is read whole, capped at CONF_MAX_FILE, and a substituted value is capped at CONF_MAX_VALUE.
 */
#include "core/conf_int.h"
#include "core/auth.h"
#include "core/datadir.h"
#include "core/file.h"
#include "core/tls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#ifndef GW_MIGRATIONS_DIR
#define GW_MIGRATIONS_DIR "migrations"
#endif

#define CONF_MAX_FILE (1u << 20)
#define CONF_MAX_VALUE (64u << 10)
#define CONF_MAX_PATH 128
#define CONF_SHOW 48 /* bytes of a value echoed in a message */

/* The most days any retention may keep: 50 years. The oldest storable start (now - days) then stays after
 * 1970, where span times (ns since the epoch) begin; larger values once made that instant wrap around in
 * unsigned arithmetic and every span was refused as older than the window. */
#define MAX_RETENTION_DAYS 18250

#define NROWS (sizeof gw_conf_rows / sizeof gw_conf_rows[0])
#define OFF(field) offsetof(struct gw_conf, field)

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const grpc_engines[] = {"nghttp2", "grpc-core", NULL};
static const char *const spool_modes[] = {"auto", "memory", "disk", NULL};
static const char *const fsync_modes[] = {"always", "interval", "never", NULL};
static const char *const redact_actions[] = {"mask", "hash", "drop", "off", NULL};
static const char *const key_action_fields[] = {"!key", "!action", NULL};
static const char *const pattern_fields[] = {"!name", "!regex", "action", "label", NULL};
static const char *const header_fields[] = {"!name", "!*value", NULL};
static const char *const protocols_any[] = {"grpc", "http", NULL};
static const char *const protocols_http[] = {"http", NULL};

const char *const gw_conf_exporter_names[GW_CONF_NEXPORTERS] = {"langfuse", "signoz", "otlp"};

/* The keys every exporter has; i is its index in gw_conf_exporter_names, N its name as a literal. */
#define EXPORTER_ROWS(i, N, proto_def, protos, endpoint_desc)                                                     \
  {.path = "exporters." N ".enabled", .type = T_BOOL, .def = "true", .off = OFF(exporters[i].enabled),             \
   .desc = "Run this exporter when it has an endpoint; false turns it off whatever the endpoint."},               \
  {.path = "exporters." N ".endpoint", .type = T_STRING, .def = "", .off = OFF(exporters[i].endpoint),             \
   .desc = endpoint_desc " Empty: the exporter is off. Must not be one of the gateway's own listen addresses."},   \
  {.path = "exporters." N ".protocol", .type = T_ENUM, .def = proto_def, .allowed = protos,                        \
   .off = OFF(exporters[i].protocol), .desc = "OTLP/gRPC (endpoint host:port) or OTLP/HTTP protobuf (endpoint URL)."}, \
  {.path = "exporters." N ".headers", .type = T_TABLE, .def = "", .allowed = header_fields, .flags = F_SECRET,     \
   .off = OFF(exporters[i].headers),                                                                              \
   .desc = "Extra request headers (gRPC metadata), e.g. an API key; values are secrets, printed as ****."},        \
  {.path = "exporters." N ".tls", .type = T_BOOL, .def = "false", .off = OFF(exporters[i].tls),                    \
   .desc = "gRPC: TLS instead of plaintext. HTTP endpoints use TLS when the URL is https://."},                    \
  {.path = "exporters." N ".token_file", .type = T_STRING, .def = "", .off = OFF(exporters[i].token_file),         \
   .desc = "File holding one bearer token, sent as `Authorization: Bearer <token>` (HTTP header, gRPC metadata) " \
   "with every request: e.g. the receivers.auth token of another genai-gateway, mounted from a Kubernetes "       \
   "Secret. Blank lines and '#' lines are skipped; 16 to 512 printable characters. Re-read on SIGHUP or when the " \
   "file changes (receivers.reload_interval_ms). With it, a refusal of the credentials (401, 403, "               \
   "UNAUTHENTICATED, PERMISSION_DENIED) is retried with backoff, the data kept in the spool, until the file "      \
   "holds a token the receiver takes. A credential: refused in cleartext beyond this machine unless insecure. "   \
   "Empty: none."},                                                                                               \
  {.path = "exporters." N ".insecure", .type = T_BOOL, .def = "false", .off = OFF(exporters[i].insecure),          \
   .desc = "Allow this exporter's credentials (API key, Basic auth, authorization-like headers) to go to a "      \
   "host other than this machine without TLS. Without it such a configuration does not start."},                 \
  {.path = "exporters." N ".ca_file", .type = T_STRING, .def = "", .off = OFF(exporters[i].ca_file),               \
   .desc = "PEM file of the CA certificates to trust for TLS; empty: the system's."},                             \
  {.path = "exporters." N ".timeout_ms", .type = T_DURATION_MS, .def = "10s", .min = 100, .max = 600000,          \
   .off = OFF(exporters[i].timeout_ms), .desc = "Longest time for one request, connecting included; then it is "  \
   "retried."},                                                                                                   \
  {.path = "exporters." N ".gzip", .type = T_BOOL, .def = "true", .off = OFF(exporters[i].gzip),                   \
   .desc = "Compress request bodies with gzip."},                                                                 \
  {.path = "exporters." N ".genai_only", .type = T_BOOL, .def = "false", .off = OFF(exporters[i].genai_only),     \
   .desc = "Forward only GenAI spans (and log records of requests holding GenAI events, and the spans that "      \
   "carried a trace's session or user id); false forwards whole traces."},                                        \
  {.path = "exporters." N ".batch_spans", .type = T_U32, .def = "512", .min = 1, .max = 100000,                   \
   .off = OFF(exporters[i].batch_spans), .desc = "Send a batch when this many spans (or log records) wait."},     \
  {.path = "exporters." N ".batch_wait_ms", .type = T_DURATION_MS, .def = "1s", .min = 0, .max = 60000,           \
   .off = OFF(exporters[i].batch_wait_ms), .desc = "Longest wait to fill a batch before sending it."},            \
  {.path = "exporters." N ".max_request_bytes", .type = T_SIZE, .def = "4MiB", .min = 64 * KiB, .max = 64 * MiB, \
   .off = OFF(exporters[i].max_request_bytes),                                                                    \
   .desc = "A batch is cut into requests of at most this many bytes before compression (one larger request "      \
   "goes alone)."},                                                                                               \
  {.path = "exporters." N ".max_lag_bytes", .type = T_SIZE, .def = "0", .min = 0, .max = 1 * TiB,                 \
   .off = OFF(exporters[i].max_lag_bytes),                                                                        \
   .desc = "Lag cap: when this exporter holds more than this much of the spool alone (data the Postgres writer " \
   "has already stored, or everything behind the head without Postgres), it skips its oldest data and counts it " \
   "as dropped. 0: a quarter of spool.max_bytes. All exporters' caps together must stay below the spool's "       \
   "high-water mark."},                                                                                           \
  {.path = "exporters." N ".max_lag_ms", .type = T_DURATION_MS, .def = "1h", .min = 0, .max = 604800000,           \
   .off = OFF(exporters[i].max_lag_ms), .desc = "Lag cap by age: data waiting longer is skipped. 0: no age limit."}, \
  {.path = "exporters." N ".nice", .type = T_U32, .def = "10", .min = 0, .max = 19, .off = OFF(exporters[i].nice), \
   .desc = "CPU priority of this exporter's thread below the receivers and the Postgres writer (the nice "        \
   "increment, as nice(1)): when the CPU is short, ingestion goes first and the exporter catches up from the "   \
   "spool afterwards, within its lag cap. 0: the same priority as ingestion."}

/* Rows sharing a section stay together: gw_conf_print walks the table in order. */
const struct gw_conf_row gw_conf_rows[] = {
  {.path = "receivers.grpc.addr", .type = T_STRING, .def = "127.0.0.1:4317", .flags = F_ADDR,
   .off = OFF(receivers.grpc_addr), .desc = "OTLP/gRPC listen address, host:port (IPv6 as [::1]:4317)."},
  {.path = "receivers.grpc.engine", .type = T_ENUM, .def = "nghttp2", .allowed = grpc_engines,
   .off = OFF(receivers.grpc_engine),
   .desc = "What serves the OTLP/gRPC port. nghttp2 (the default): the gateway's own HTTP/2 engine, the one "
           "serving OTLP/gRPC on the OTLP/HTTP port: a message counts in receivers.max_inflight_bytes as it "
           "arrives, before its bytes are kept (a flood of large calls is refused, not buffered), large requests "
           "go to the niced large-request lane, and connections are capped in total and per address. It serves HTTP/2 only (HTTP/1.1 bytes close the connection); a plain HTTP/2 POST /v1/traces "
           "or /v1/logs there is served as on the OTLP/HTTP port, and a call's message must arrive within "
           "receivers.http.body_timeout_ms of its headers. grpc-core: gRPC core's server, which reads a whole "
           "message into memory before the gateway sees it."},
  {.path = "receivers.grpc.threads", .type = T_U32, .def = "2", .min = 1, .max = 256,
   .off = OFF(receivers.grpc_threads),
   .desc = "Threads serving gRPC: the event loops (and as many workers) of the nghttp2 engine, gRPC core's "
           "completion-queue threads with grpc-core."},
  {.path = "receivers.grpc.max_connections", .type = T_U32, .def = "4096", .min = 1, .max = 1000000,
   .off = OFF(receivers.grpc_max_connections),
   .desc = "Concurrent gRPC connections accepted (nghttp2 engine); more are closed at once. Each takes one file "
           "descriptor."},
  {.path = "receivers.grpc.max_connections_per_ip", .type = T_U32, .def = "128", .min = 0, .max = 1000000,
   .off = OFF(receivers.grpc_max_per_ip),
   .desc = "Concurrent gRPC connections accepted from one client address (nghttp2 engine); 0: no per-address "
           "limit."},
  {.path = "receivers.grpc.max_connection_idle_ms", .type = T_DURATION_MS, .def = "5m", .min = 0, .max = 86400000,
   .off = OFF(receivers.grpc_idle_ms),
   .desc = "A connection without a call for this long is closed (GOAWAY; clients reconnect when they next send). "
           "0: never."},
  {.path = "receivers.grpc.max_connection_age_ms", .type = T_DURATION_MS, .def = "30m", .min = 0, .max = 604800000,
   .off = OFF(receivers.grpc_age_ms),
   .desc = "A connection older than this is asked to go away (GOAWAY), so clients spread over the gateways behind "
           "a load balancer again. 0: never."},
  {.path = "receivers.grpc.max_connection_age_grace_ms", .type = T_DURATION_MS, .def = "30s", .min = 0,
   .max = 3600000, .off = OFF(receivers.grpc_age_grace_ms),
   .desc = "Time the calls of a connection past its age get to finish before it is closed."},
  {.path = "receivers.grpc.max_concurrent_streams", .type = T_U32, .def = "100", .min = 1, .max = 100000,
   .off = OFF(receivers.grpc_max_streams), .desc = "Calls one HTTP/2 connection may have open at once."},
  {.path = "receivers.grpc.min_ping_interval_ms", .type = T_DURATION_MS, .def = "30s", .min = 1000,
   .max = 86400000, .off = OFF(receivers.grpc_min_ping_ms),
   .desc = "Keepalive enforcement: a client pinging more often than this (or at all without a call) gets a GOAWAY "
           "after two strikes."},
  {.path = "receivers.grpc.handshake_timeout_ms", .type = T_DURATION_MS, .def = "10s", .min = 100, .max = 600000,
   .off = OFF(receivers.grpc_handshake_ms),
   .desc = "A new connection must finish its HTTP/2 (and TLS) handshake within this time, else it is closed."},
  {.path = "receivers.http.addr", .type = T_STRING, .def = "127.0.0.1:4318", .flags = F_ADDR,
   .off = OFF(receivers.http_addr), .desc = "OTLP/HTTP listen address, host:port."},
  {.path = "receivers.http.max_connections", .type = T_U32, .def = "4096", .min = 1, .max = 1000000,
   .off = OFF(receivers.http_max_connections),
   .desc = "Concurrent HTTP connections accepted; more are closed at once. Each takes one file descriptor."},
  {.path = "receivers.http.max_connections_per_ip", .type = T_U32, .def = "128", .min = 0, .max = 1000000,
   .off = OFF(receivers.http_max_per_ip),
   .desc = "Concurrent HTTP connections accepted from one client address; 0: no per-address limit."},
  {.path = "receivers.http.threads", .type = T_U32, .def = "2", .min = 1, .max = 256,
   .off = OFF(receivers.http_threads),
   .desc = "Threads serving HTTP connections (libmicrohttpd's epoll thread pool); about one per core. A request "
           "waiting for the disk spool's sync holds no thread."},
  {.path = "receivers.http.idle_timeout_ms", .type = T_DURATION_MS, .def = "60s", .min = 1000, .max = 3600000,
   .off = OFF(receivers.http_idle_ms),
   .desc = "A connection that sends and takes no byte for this long is closed (whole seconds)."},
  {.path = "receivers.http.header_timeout_ms", .type = T_DURATION_MS, .def = "10s", .min = 100, .max = 600000,
   .off = OFF(receivers.http_header_ms),
   .desc = "A request's line and headers must arrive within this time, however slowly they trickle in: counted "
           "from the connection's start for its first request, from the request line for a later one (which must "
           "itself come within idle_timeout_ms + header_timeout_ms of the previous answer). Else the connection is "
           "closed."},
  {.path = "receivers.http.body_timeout_ms", .type = T_DURATION_MS, .def = "60s", .min = 100, .max = 3600000,
   .off = OFF(receivers.http_body_ms),
   .desc = "A request's whole body must arrive within this time after its headers; else the connection is closed."},
  {.path = "receivers.http.max_concurrent_streams", .type = T_U32, .def = "100", .min = 1, .max = 100000,
   .off = OFF(receivers.http_max_streams),
   .desc = "HTTP/2 (h2c, or ALPN h2 under TLS): requests one connection may have open at once."},
  {.path = "receivers.http.grpc", .type = T_BOOL, .def = "true", .off = OFF(receivers.http_grpc),
   .desc = "Serve OTLP/gRPC on the OTLP/HTTP port too: an HTTP/2 request (h2c, or ALPN h2 under TLS) with "
           "content-type application/grpc is a TraceService/Export or LogsService/Export call, answered as the "
           "OTLP/gRPC receiver answers it, with the same auth and limits. false: they are OTLP/HTTP requests (404, "
           "unknown path)."},
  {.path = "receivers.max_request_bytes", .type = T_SIZE, .def = "64MiB", .min = 1 * KiB, .max = 1 * GiB,
   .off = OFF(receivers.max_request_bytes),
   .desc = "Largest request body after decompression; larger is 413 / RESOURCE_EXHAUSTED. One request may "
           "use at most 4 times this in memory, body and arena together (or receivers.max_inflight_bytes if "
           "lower); past it, 413 / RESOURCE_EXHAUSTED too."},
  {.path = "receivers.max_inflight_bytes", .type = T_SIZE, .def = "256MiB", .min = 1 * MiB, .max = 64 * GiB,
   .off = OFF(receivers.max_inflight_bytes),
   .desc = "Memory of the requests in flight across all connections: their bodies as received plus their "
           "arenas (inflated body, decoded request, everything derived from it). Over it clients get 503 / "
           "UNAVAILABLE. Must be at least receivers.max_request_bytes."},
  {.path = "receivers.history_cache_bytes", .type = T_SIZE, .def = "4MiB", .min = 0, .max = 1 * GiB,
   .off = OFF(receivers.history_cache_bytes),
   .desc = "Memory for chat history kept between requests: a chat's calls each resend the system prompt and "
           "every earlier turn, usually in separate exports. The SimHash of each message of 128 bytes or more "
           "that will be resent, and the SHA-256 state after the prompt of a chat under way (where the next "
           "call's prompt_hash resumes), are kept with their text (in memory only, to compare exactly), so the "
           "next calls do not hash them again. Least recently used entries make room. 0: none kept "
           "(prompt_simhash and prompt_hash are the same either way)."},
  {.path = "receivers.max_inflate_ratio", .type = T_U32, .def = "200", .min = 0, .max = 1000000,
   .off = OFF(receivers.max_inflate_ratio),
   .desc = "A compressed body (gzip, deflate or zstd) may inflate to at most this many times its compressed size (once past "
           "receivers.inflate_ratio_min_bytes); more is 413 / RESOURCE_EXHAUSTED, found before inflating it all. "
           "Real OTLP bodies compress 3 to 30 times. 0: no ratio cap (receivers.max_request_bytes still applies)."},
  {.path = "receivers.inflate_ratio_min_bytes", .type = T_SIZE, .def = "1MiB", .min = 0, .max = 1 * GiB,
   .off = OFF(receivers.inflate_ratio_min_bytes),
   .desc = "Inflated size any compressed body may reach whatever its ratio (small bodies compress best)."},
  {.path = "receivers.large_request_bytes", .type = T_SIZE, .def = "1MiB", .min = 0, .max = 1 * GiB,
   .off = OFF(receivers.large_bytes),
   .desc = "A request at least this large (its body, or for a compressed one the larger of that and the size it "
           "states: a gzip trailer's, a zstd or lz4 frame header's, a snappy block's length) is processed on the large-request threads, not on the receiver thread that received "
           "it, so the receiver threads stay free for small requests while large ones queue there (OTLP/HTTP 1.1 "
           "and HTTP/2, and gRPC on either port). 0: every request on its receiver thread."},
  {.path = "receivers.large_request_threads", .type = T_U32, .def = "1", .min = 1, .max = 64,
   .off = OFF(receivers.large_threads),
   .desc = "Threads processing large requests: at most this many are processed at once, the others wait in "
           "arrival order (gRPC deadlines and HTTP disconnects still apply)."},
  {.path = "receivers.large_request_nice", .type = T_U32, .def = "10", .min = 0, .max = 19,
   .off = OFF(receivers.large_nice),
   .desc = "CPU priority of the large-request threads below the receiver threads (the nice increment, as "
           "nice(1)): when the CPU is short, small requests go first. 0: the same priority."},
  {.path = "receivers.max_depth", .type = T_U32, .def = "32", .min = 1, .max = 256,
   .off = OFF(receivers.max_depth), .desc = "Deepest AnyValue nesting accepted in attributes."},
  {.path = "receivers.max_spans_per_request", .type = T_U32, .def = "100000", .min = 0, .max = 100000000,
   .off = OFF(receivers.max_spans),
   .desc = "Most spans (or log records) one request may hold; more is 413 / RESOURCE_EXHAUSTED before any "
           "is normalized (an SDK sends 512, a Collector's batch 8192 by default). 0: no limit but the "
           "request's size."},
  {.path = "receivers.retry_after_seconds", .type = T_U32, .def = "1", .min = 1, .max = 3600,
   .off = OFF(receivers.retry_after_s), .desc = "Retry-After told to clients under backpressure."},
  {.path = "receivers.tls.cert_file", .type = T_STRING, .def = "", .off = OFF(receivers.tls_cert),
   .desc = "PEM certificate chain (leaf first) both receivers serve with TLS 1.2 or later; OTLP/HTTP also offers "
           "HTTP/2 through ALPN. Empty: plaintext. Re-read on SIGHUP or when the file changes."},
  {.path = "receivers.tls.key_file", .type = T_STRING, .def = "", .off = OFF(receivers.tls_key),
   .desc = "PEM private key of the certificate (not passphrase-protected); required with cert_file."},
  {.path = "receivers.tls.client_ca_file", .type = T_STRING, .def = "", .off = OFF(receivers.tls_client_ca),
   .desc = "PEM CA certificates: when set, every client must present a certificate that chains to one of them "
           "(mTLS), else the handshake fails."},
  {.path = "receivers.auth.tokens_file", .type = T_STRING, .def = "", .off = OFF(receivers.auth_tokens),
   .desc = "File of bearer tokens, one per line (16 to 512 printable characters; '#' starts a comment line). "
           "When set, both receivers accept only requests carrying one, as `Authorization: Bearer <token>` or "
           "`x-api-key: <token>`; others get 401 / UNAUTHENTICATED. All tokens in the file are valid at once "
           "(rotate by adding the new one first). Re-read on SIGHUP or when the file changes. Empty: no "
           "authentication."},
  {.path = "receivers.reload_interval_ms", .type = T_DURATION_MS, .def = "5s", .min = 100, .max = 3600000,
   .off = OFF(receivers.reload_ms),
   .desc = "How often the TLS files, the tokens file and the exporters' token files are checked for changes, "
           "e.g. a Kubernetes Secret rotated in place; SIGHUP re-reads them at once."},
  {.path = "admin.addr", .type = T_STRING, .def = "127.0.0.1:8888", .flags = F_ADDR, .off = OFF(admin.addr),
   .desc = "Listen address of /healthz, /readyz and /metrics."},
  {.path = "log.level", .type = T_ENUM, .def = "info", .allowed = log_levels, .off = OFF(log.level),
   .desc = "Least severe level written to stderr."},
  {.path = "durability", .type = T_ENUM, .def = "auto", .allowed = spool_modes, .off = OFF(durability),
   .desc = "The spool's kind, as spool.mode (either key may be used; set to different kinds they are an error): "
           "disk or memory; auto: spool.mode decides."},
  {.path = "spool.mode", .type = T_ENUM, .def = "auto", .allowed = spool_modes, .off = OFF(spool.mode),
   .desc = "disk: segment files; an acknowledged span survives kill -9, OOM and restarts, and is stored once it "
           "can be. memory: a bounded list, lost on exit (tests and development). auto: disk when spool.dir is "
           "set, else memory."},
  {.path = "spool.dir", .type = T_STRING, .def = "", .off = OFF(spool.dir),
   .desc = "Directory of the disk spool's segment files and consumer cursors (created if missing; required "
           "when spool.mode is disk). Setting it makes disk the default mode."},
  {.path = "spool.fsync", .type = T_ENUM, .def = "interval", .allowed = fsync_modes, .off = OFF(spool.fsync),
   .desc = "When a request is acknowledged (disk mode). always: after its own fdatasync (concurrent requests "
           "share one). interval: after a group fdatasync, one per spool.fsync_interval_ms on average. Both "
           "survive a machine crash. never: after the write only: survives the process dying, not the machine "
           "(the kernel writes it back within about 30 s)."},
  {.path = "spool.fsync_interval_ms", .type = T_DURATION_MS, .def = "10ms", .min = 1, .max = 10000,
   .off = OFF(spool.fsync_interval_ms),
   .desc = "Average time between two group fdatasyncs with spool.fsync interval, as a budget of two syncs "
           "that grows by one per interval: a request that finds no sync running is synced at once while the "
           "budget lasts (at under one request per interval, none waits for the interval); under load syncs "
           "go one interval apart, each covering every request since the last, and a request waits at most "
           "about this long plus the sync. A large request (receivers.large_request_bytes) does not spend the "
           "budget others need: a sync for it alone waits until the budget is full (up to two intervals), and "
           "any other sync covers it."},
  {.path = "spool.segment_bytes", .type = T_SIZE, .def = "0", .min = 0, .max = 1 * GiB,
   .off = OFF(spool.segment_bytes),
   .desc = "Size of one segment file; space is freed a whole segment at a time once every consumer is past "
           "it. 0: spool.max_bytes / 16, within 1 MiB .. 64 MiB. Up to two freed segment files are kept and "
           "overwritten by later segments (a sync then writes data only): disk use can exceed spool.max_bytes "
           "by two segments."},
  {.path = "spool.max_bytes", .type = T_SIZE, .def = "256MiB", .min = 1 * MiB, .max = 1 * TiB,
   .off = OFF(spool.max_bytes),
   .desc = "Spool capacity; when full, ingestion pushes back with 429 (retry later). A request whose entry "
           "alone is larger (its rows, and with an exporter the request re-encoded) is 413 / "
           "RESOURCE_EXHAUSTED, not to be retried: it could never fit."},
  {.path = "spool.high_water", .type = T_DOUBLE, .def = "0.9", .dmin = 0.0, .dmax = 1.0, .flags = F_MIN_EXCL,
   .off = OFF(spool.high_water), .desc = "Fill ratio (0 < x <= 1) at which /readyz reports not ready."},
  {.path = "spool.full_wait_ms", .type = T_DURATION_MS, .def = "100ms", .min = 0, .max = 60000,
   .off = OFF(spool.full_wait_ms),
   .desc = "How long a request that finds the spool full waits for room before it is refused with 429 / "
           "RESOURCE_EXHAUSTED; 0 refuses at once. A waiting request holds its connection."},
  {.path = "postgres.dsn", .type = T_SECRET_STRING, .def = "", .flags = F_SECRET, .off = OFF(postgres.dsn),
   .desc = "libpq connection string or URI; empty disables the PostgreSQL writer."},
  {.path = "postgres.batch_rows", .type = T_U32, .def = "1000", .min = 1, .max = 100000,
   .off = OFF(postgres.batch_rows), .desc = "Rows per COPY batch."},
  {.path = "postgres.writers", .type = T_U32, .def = "1", .min = 1, .max = 8, .off = OFF(postgres.writers),
   .desc = "Postgres connections writing at once, each a batch of its own; the spool is acknowledged only "
           "past batches committed together with every earlier one (bench/README.md)."},
  {.path = "postgres.batch_wait_ms", .type = T_DURATION_MS, .def = "200ms", .min = 0, .max = 60000,
   .off = OFF(postgres.batch_wait_ms), .desc = "Longest wait to fill a batch before writing it."},
  {.path = "postgres.statement_timeout", .type = T_DURATION_MS, .def = "60s", .min = 0, .max = 3600000,
   .off = OFF(postgres.statement_timeout_ms),
   .desc = "Longest a writer's statement may run, a lock wait included; past it Postgres cancels it, the "
           "error is logged and counted, and the batch is written again after the backoff. 0: no limit."},
  {.path = "postgres.retention_days", .type = T_U32, .def = "90", .min = 1, .max = MAX_RETENTION_DAYS,
   .off = OFF(postgres.retention_days), .desc = "Days of interactions kept; older daily partitions are dropped."},
  {.path = "postgres.rollup_retention_days", .type = T_U32, .def = "400", .min = 1, .max = MAX_RETENTION_DAYS,
   .off = OFF(postgres.rollup_retention_days),
   .desc = "Days of hourly rollups kept (trace_metrics_hourly); at least retention_days."},
  {.path = "postgres.partitions_ahead_days", .type = T_U32, .def = "3", .min = 0, .max = 365,
   .off = OFF(postgres.partitions_ahead_days),
   .desc = "Daily partitions the maintenance loop creates ahead of today (UTC)."},
  {.path = "postgres.maintenance_interval", .type = T_DURATION_MS, .def = "1h", .min = 0, .max = 86400000,
   .off = OFF(postgres.maintenance_interval_ms),
   .desc = "How often partitions are created ahead and expired ones dropped; 0 turns the loop off "
           "(run `genai-gateway maintain` from cron instead)."},
  {.path = "postgres.migrate", .type = T_BOOL, .def = "true", .off = OFF(postgres.migrate),
   .desc = "Apply pending migrations at start."},
  {.path = "postgres.migrations_dir", .type = T_STRING, .def = GW_MIGRATIONS_DIR,
   .def_doc = "the installed migrations (build-time GW_MIGRATIONS_DIR, else migrations)",
   .off = OFF(postgres.migrations_dir), .desc = "Directory holding the NNNN_name.sql migrations."},
  {.path = "pricing.file", .type = T_STRING, .def = "", .off = OFF(pricing.file),
   .desc = "User price table merged over the shipped defaults: YAML in the shipped format, or LiteLLM's "
           "model_prices_and_context_window.json (docs/pricing.md). Empty: defaults only."},
  {.path = "pricing.defaults_file", .type = T_STRING, .def = "", .off = OFF(pricing.defaults_file),
   .desc = "The shipped default price table; empty: the one installed with the gateway."},
  {.path = "redaction.enabled", .type = T_BOOL, .def = "true", .off = OFF(redaction.enabled),
   .desc = "Redact PII and secrets before anything is stored, forwarded or logged."},
  {.path = "redaction.hmac_key", .type = T_SECRET_STRING, .def = "", .flags = F_SECRET, .off = OFF(redaction.hmac_key),
   .desc = "Key of the `hash` action (HMAC-SHA-256); required when any action is hash. "
           "Also GENAI_GW_REDACTION_HMAC_KEY."},
  {.path = "redaction.max_content_bytes", .type = T_SIZE, .def = "8KiB", .min = 0, .max = 64 * MiB,
   .off = OFF(redaction.max_content_bytes),
   .desc = "Longest prompt/response content stored per field; longer is cut with a marker. 0: no limit."},
  {.path = "redaction.scan_factor", .type = T_U32, .def = "32", .min = 0, .max = 100000,
   .off = OFF(redaction.scan_factor),
   .desc = "Bytes the detectors may read for one request, as a multiple of its size per detector pass (the "
           "built-ins, each pattern), plus 1 MiB. Past it the request's remaining values are replaced whole by "
           "[REDACTION_LIMIT], counted in genai_gateway_redaction_limited_total. 0: no limit."},
  {.path = "redaction.max_cpu_ms_per_mib", .type = T_U32, .def = "1000", .min = 0, .max = 3600000,
   .off = OFF(redaction.max_cpu_ms_per_mib),
   .desc = "CPU time redaction may spend on one request, per MiB of the request (at least 100 ms). Past it the "
           "request's remaining values are replaced whole by [REDACTION_LIMIT], counted in "
           "genai_gateway_redaction_limited_total. 0: no limit."},
  {.path = "redaction.detectors.email", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[0]), .desc = "Action for email found in any stored or forwarded string."},
  {.path = "redaction.detectors.phone", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[1]), .desc = "Action for phone found in any stored or forwarded string."},
  {.path = "redaction.detectors.ssn", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[2]), .desc = "Action for ssn found in any stored or forwarded string."},
  {.path = "redaction.detectors.credit_card", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[3]), .desc = "Action for credit card found in any stored or forwarded string."},
  {.path = "redaction.detectors.ipv4", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[4]), .desc = "Action for ipv4 found in any stored or forwarded string."},
  {.path = "redaction.detectors.ipv6", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[5]), .desc = "Action for ipv6 found in any stored or forwarded string."},
  {.path = "redaction.detectors.aws_access_key", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[6]), .desc = "Action for aws access key found in any stored or forwarded string."},
  {.path = "redaction.detectors.aws_secret_key", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[7]), .desc = "Action for aws secret key found in any stored or forwarded string."},
  {.path = "redaction.detectors.jwt", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[8]), .desc = "Action for jwt found in any stored or forwarded string."},
  {.path = "redaction.detectors.bearer_token", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[9]), .desc = "Action for bearer token found in any stored or forwarded string."},
  {.path = "redaction.detectors.api_key", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[10]), .desc = "Action for api key found in any stored or forwarded string."},
  {.path = "redaction.detectors.private_key", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[11]), .desc = "Action for private key found in any stored or forwarded string."},
  {.path = "redaction.detectors.basic_auth", .type = T_ENUM, .def = "mask", .allowed = redact_actions,
   .off = OFF(redaction.detectors[12]),
   .desc = "Action for HTTP Basic credentials (Basic <base64 of user:password>) found in any stored or forwarded "
           "string."},
  {.path = "redaction.allow_keys", .type = T_LIST, .def = "", .off = OFF(redaction.allow_keys),
   .desc = "Attribute keys never redacted, added to the built-in list (model names, service.name, ...); "
           "a trailing * matches a prefix."},
  {.path = "redaction.deny_keys", .type = T_LIST, .def = "", .off = OFF(redaction.deny_keys),
   .desc = "Attribute keys always dropped, added to the built-in list (authorization and cookie headers, ...)."},
  {.path = "redaction.key_actions", .type = T_TABLE, .def = "", .allowed = key_action_fields,
   .off = OFF(redaction.key_actions), .desc = "Per attribute key: the action for every detector hit in it "
   "(mask, hash, drop, off = never touch)."},
  {.path = "redaction.patterns", .type = T_TABLE, .def = "", .allowed = pattern_fields, .off = OFF(redaction.patterns),
   .desc = "Your own detectors: name, regex (PCRE2), action (default mask), label (default [NAME_REDACTED])."},
  EXPORTER_ROWS(0, "langfuse", "http", protocols_http,
                "Langfuse base URL, e.g. https://cloud.langfuse.com; spans go to {endpoint}/api/public/otel/v1/traces. "
                "Also LANGFUSE_HOST."),
  {.path = "exporters.langfuse.public_key", .type = T_STRING, .def = "", .off = OFF(exporters[0].public_key),
   .desc = "Langfuse public key (pk-lf-...), the Basic auth user. Also LANGFUSE_PUBLIC_KEY."},
  {.path = "exporters.langfuse.secret_key", .type = T_SECRET_STRING, .def = "", .flags = F_SECRET,
   .off = OFF(exporters[0].secret_key), .desc = "Langfuse secret key (sk-lf-...), the Basic auth password. "
   "Also LANGFUSE_SECRET_KEY."},
  {.path = "exporters.langfuse.join_wait_ms", .type = T_DURATION_MS, .def = "10s", .min = 0, .max = 600000,
   .off = OFF(exporters[0].join_wait_ms),
   .desc = "How long a GenAI span whose message content comes as log records (the official OpenTelemetry "
   "instrumentations) waits for them before it is sent to Langfuse without it; counted. Longer than the SDKs' "
   "5 s span export interval. 0: spans never wait (content only from records read before the span)."},
  {.path = "exporters.langfuse.join_events_ms", .type = T_DURATION_MS, .def = "2m", .min = 0, .max = 3600000,
   .off = OFF(exporters[0].join_events_ms),
   .desc = "How long message content from log records is kept for a span that has not come yet (a call's input "
   "is logged when it starts, its span ends when it does)."},
  {.path = "exporters.langfuse.join_max_bytes", .type = T_SIZE, .def = "64MiB", .min = 0, .max = 16 * GiB,
   .off = OFF(exporters[0].join_max_bytes),
   .desc = "Memory for spans waiting for their log records and for kept content; when full, a span is sent "
   "without waiting (counted) and the oldest content goes."},
  EXPORTER_ROWS(1, "signoz", "grpc", protocols_any,
                "SigNoz collector: host:port for gRPC (ingest.<region>.signoz.cloud:443 with tls: true), or a base "
                "URL for HTTP (/v1/traces and /v1/logs are appended). Also SIGNOZ_ENDPOINT."),
  {.path = "exporters.signoz.ingestion_key", .type = T_SECRET_STRING, .def = "", .flags = F_SECRET,
   .off = OFF(exporters[1].ingestion_key), .desc = "SigNoz Cloud ingestion key, sent as the signoz-ingestion-key "
   "header; empty for self-hosted. Also SIGNOZ_INGESTION_KEY."},
  EXPORTER_ROWS(2, "otlp", "http", protocols_any,
                "Any OTLP receiver: host:port for gRPC, or a base URL for HTTP (/v1/traces and /v1/logs are "
                "appended, as OTEL_EXPORTER_OTLP_ENDPOINT does)."),
  {.path = "shutdown_grace_ms", .type = T_DURATION_MS, .def = "10s", .min = 0, .max = 600000,
   .off = OFF(shutdown_grace_ms), .desc = "Time given to in-flight requests and sinks to finish on shutdown."},
};
const size_t gw_conf_nrows = NROWS;

/* Applied after the file; a variable that is unset or empty leaves the value alone. */
const struct gw_conf_env gw_conf_envs[] = {
  {"DATABASE_URL", "postgres.dsn"},
  {"GENAI_GW_GRPC_ADDR", "receivers.grpc.addr"},
  {"GENAI_GW_HTTP_ADDR", "receivers.http.addr"},
  {"GENAI_GW_ADMIN_ADDR", "admin.addr"},
  {"GENAI_GW_LOG_LEVEL", "log.level"},
  {"GENAI_GW_SPOOL_DIR", "spool.dir"},
  {"GENAI_GW_DURABILITY", "durability"},
  {"GENAI_GW_REDACTION_HMAC_KEY", "redaction.hmac_key"},
  {"LANGFUSE_HOST", "exporters.langfuse.endpoint"},
  {"LANGFUSE_PUBLIC_KEY", "exporters.langfuse.public_key"},
  {"LANGFUSE_SECRET_KEY", "exporters.langfuse.secret_key"},
  {"SIGNOZ_ENDPOINT", "exporters.signoz.endpoint"},
  {"SIGNOZ_INGESTION_KEY", "exporters.signoz.ingestion_key"},
};
const size_t gw_conf_nenvs = sizeof gw_conf_envs / sizeof gw_conf_envs[0];

static const struct unit {
  const char *name;
  uint64_t mul;
} size_units[] = {
  {"B", 1},          {"KB", 1000},      {"MB", 1000000},   {"GB", 1000000000}, {"TB", 1000000000000ull},
  {"KiB", KiB},      {"MiB", MiB},      {"GiB", GiB},      {"TiB", TiB},
}, duration_units[] = {
  {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};

/* Where a value came from: a line of the file, an environment variable, or the table's default. */
struct origin {
  int line;
  const char *env;
};

struct ld {
  const char *file;
  struct gw_conf *c;
  struct origin org[NROWS];
  yaml_parser_t p;
  const char *buf;
  size_t len;
  struct gw_err *err;
};

/* ---- small helpers ---- */

static int find_row(const char *path)
{
  for (size_t i = 0; i < NROWS; i++)
    if (strcmp(gw_conf_rows[i].path, path) == 0)
      return (int)i;
  return -1;
}

/* True when path names a section: some row lies below it. */
static bool is_section(const char *path)
{
  size_t n = strlen(path);
  for (size_t i = 0; i < NROWS; i++)
    if (strncmp(gw_conf_rows[i].path, path, n) == 0 && gw_conf_rows[i].path[n] == '.')
      return true;
  return false;
}

/* Copy s for a message: printable, cut at CONF_SHOW bytes. */
static const char *show(const char *s, char *buf, size_t n)
{
  size_t o = 0, i = 0;
  for (; s[i] && o + 4 < n && i < CONF_SHOW; i++)
    buf[o++] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
  if (s[i] && o + 4 < n) {
    memcpy(buf + o, "...", 3);
    o += 3;
  }
  buf[o] = '\0';
  return buf;
}

/* An exporter endpoint for a message: as show(), with what may hold a secret masked: user information
 * ("user:password@", before the host) as "***@", and a query or fragment (an API key in "?key=...") as
 * "?***". An endpoint the validation refuses is still echoed, so these parts are never shown. */
static const char *show_endpoint(const char *s, char *buf, size_t n)
{
  char m[CONF_SHOW * 2 + 16];
  size_t o = 0;
  const char *p = s, *sch = strstr(s, "://");
  if (sch) {
    size_t l = (size_t)(sch + 3 - s);
    if (l > CONF_SHOW)
      l = CONF_SHOW;
    memcpy(m, s, l);
    o = l;
    p = sch + 3;
  }
  size_t auth = strcspn(p, "/?#");
  const char *at = NULL;
  for (size_t i = 0; i < auth; i++)
    if (p[i] == '@')
      at = p + i;
  if (at) {
    memcpy(m + o, "***@", 4);
    o += 4;
    p = at + 1;
  }
  size_t rest = strcspn(p, "?#");
  if (rest > CONF_SHOW)
    rest = CONF_SHOW;
  memcpy(m + o, p, rest);
  o += rest;
  if (p[rest] == '?' || p[rest] == '#') {
    m[o++] = p[rest];
    memcpy(m + o, "***", 3);
    o += 3;
  }
  m[o] = '\0';
  return show(m, buf, n);
}

/* "FILE:LINE", "environment VAR" or "default" for row i. */
static const char *where(const struct ld *x, size_t i, char *buf, size_t n)
{
  if (x->org[i].env)
    snprintf(buf, n, "environment %s", x->org[i].env);
  else if (x->org[i].line > 0)
    snprintf(buf, n, "%s:%d", x->file, x->org[i].line);
  else
    snprintf(buf, n, "default");
  return buf;
}

static gw_rc fail(struct ld *x, const char *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static gw_rc fail(struct ld *x, const char *at, const char *key, const char *fmt, ...)
{
  char reason[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  return gw_err_set(x->err, GW_ERR(CONFIG), "%s: %s: %s", at, key, reason);
}

static gw_rc fail_line(struct ld *x, int line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static gw_rc fail_line(struct ld *x, int line, const char *key, const char *fmt, ...)
{
  char at[CONF_MAX_PATH + 32], reason[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  snprintf(at, sizeof at, "%s:%d", x->file, line);
  return gw_err_set(x->err, GW_ERR(CONFIG), "%s: %s: %s", at, key, reason);
}

/* The keys allowed directly under section prefix ("" = top level), in table order. */
static void allowed_here(const char *prefix, char *buf, size_t n)
{
  size_t plen = strlen(prefix), o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < NROWS; i++) {
    const char *p = gw_conf_rows[i].path;
    if (plen) {
      if (strncmp(p, prefix, plen) != 0 || p[plen] != '.')
        continue;
      p += plen + 1;
    }
    size_t seg = strcspn(p, ".");
    bool dup = false;
    for (size_t j = 0; j < i && !dup; j++) {
      const char *q = gw_conf_rows[j].path;
      if (plen) {
        if (strncmp(q, prefix, plen) != 0 || q[plen] != '.')
          continue;
        q += plen + 1;
      }
      dup = strncmp(q, p, seg) == 0 && (q[seg] == '.' || q[seg] == '\0');
    }
    if (dup)
      continue;
    int w = snprintf(buf + o, n - o, "%s%.*s", o ? ", " : "", (int)seg, p);
    if (w < 0 || (size_t)w >= n - o)
      break;
    o += (size_t)w;
  }
}


/* ---- conversion ---- */

enum num { NUM_OK, NUM_BAD, NUM_BIG, NUM_NEG };

/* Decimal digits then an optional unit from units (n of them); "" is allowed when bare is true. */
static enum num parse_units(const char *s, const struct unit *units, size_t n, bool bare, uint64_t *out)
{
  const char *p = s;
  uint64_t v = 0;
  bool big = false;
  if (*p == '-' && isdigit((unsigned char)p[1]))
    return NUM_NEG;
  if (*p == '+')
    p++;
  if (!isdigit((unsigned char)*p))
    return NUM_BAD;
  for (; isdigit((unsigned char)*p); p++) {
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      big = true;
    else
      v = v * 10 + d;
  }
  while (*p == ' ')
    p++;
  uint64_t mul = 1;
  if (*p) {
    size_t i = 0;
    for (; i < n; i++)
      if (strcmp(p, units[i].name) == 0)
        break;
    if (i == n)
      return NUM_BAD;
    mul = units[i].mul;
  } else if (!bare) {
    return NUM_BAD;
  }
  if (big || (mul > 1 && v > UINT64_MAX / mul))
    return NUM_BIG;
  *out = v * mul;
  return NUM_OK;
}

static bool parse_bool(const char *s, bool *out)
{
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  for (size_t i = 0; i < 3; i++) {
    if (strcasecmp(s, yes[i]) == 0)
      return *out = true, true;
    if (strcasecmp(s, no[i]) == 0)
      return *out = false, true;
  }
  return false;
}

static void set_string(struct gw_conf *c, const struct gw_conf_row *r, const char *val)
{
  char **slot = gw_conf_field(c, r);
  free(*slot);
  *slot = gw_strdup(val);
}

/* Convert val for row i and store it; at names the origin for a message. */
static uint32_t table_width(const struct gw_conf_row *r);
static void list_free(struct gw_conf_list *l);

static gw_rc set_value(struct ld *x, size_t i, const char *val, const char *at)
{
  const struct gw_conf_row *r = &gw_conf_rows[i];
  char shown[CONF_SHOW + 8], b1[32];
  const char *v = gw_conf_is_secret(r) ? "(secret)" : show(val, shown, sizeof shown);
  uint64_t u = 0;
  enum num e;

  switch (r->type) {
  case T_STRING:
  case T_SECRET_STRING:
    set_string(x->c, r, val);
    return GW_OK;
  case T_LIST:
  case T_TABLE:
    /* Lists come only from the file (list_value); as text they can only be the empty default. */
    if (*val)
      return fail(x, at, r->path, "a list cannot be set from a single value");
    ((struct gw_conf_list *)gw_conf_field(x->c, r))->width = table_width(r);
    return GW_OK;
  case T_ENUM: {
    char list[128] = "";
    for (const char *const *a = r->allowed; *a; a++) {
      if (strcmp(*a, val) == 0) {
        set_string(x->c, r, val);
        return GW_OK;
      }
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == r->allowed ? "" : ", ", *a);
    }
    return fail(x, at, r->path, "'%s' is not one of %s", v, list);
  }
  case T_BOOL: {
    bool b;
    if (!parse_bool(val, &b))
      return fail(x, at, r->path, "'%s' is not a boolean (true or false)", v);
    *(bool *)gw_conf_field(x->c, r) = b;
    return GW_OK;
  }
  case T_DOUBLE: {
    char *end = NULL;
    double d = 0;
    bool ok = isdigit((unsigned char)val[0]) || val[0] == '.' || val[0] == '-' || val[0] == '+';
    if (ok) {
      errno = 0;
      d = strtod(val, &end);
      ok = end != val && *end == '\0' && isfinite(d) && errno != ERANGE;
    }
    if (!ok)
      return fail(x, at, r->path, "'%s' is not a number", v);
    char lo[32], hi[32];
    gw_conf_fmt_double(r->dmin, lo, sizeof lo);
    gw_conf_fmt_double(r->dmax, hi, sizeof hi);
    if ((r->flags & F_MIN_EXCL) && d <= r->dmin)
      return fail(x, at, r->path, "%s must be above %s", v, lo);
    if (d < r->dmin)
      return fail(x, at, r->path, "%s is below the minimum %s", v, lo);
    if (d > r->dmax)
      return fail(x, at, r->path, "%s is above the maximum %s", v, hi);
    *(double *)gw_conf_field(x->c, r) = d;
    return GW_OK;
  }
  case T_U32:
  case T_U64:
    e = parse_units(val, NULL, 0, true, &u);
    if (e == NUM_BAD)
      return fail(x, at, r->path, "'%s' is not an integer", v);
    break;
  case T_SIZE:
    e = parse_units(val, size_units, sizeof size_units / sizeof size_units[0], true, &u);
    if (e == NUM_BAD)
      return fail(x, at, r->path, "'%s' is not a size (bytes, or a number with B, KB, MB, GB, TB, KiB, MiB, "
                  "GiB or TiB)", v);
    break;
  case T_DURATION_MS:
    e = parse_units(val, duration_units, sizeof duration_units / sizeof duration_units[0], true, &u);
    if (e == NUM_BAD)
      return fail(x, at, r->path, "'%s' is not a duration (milliseconds, or a number with ms, s, m or h)", v);
    break;
  default:
    return gw_err_set(x->err, GW_ERR(INTERNAL), "%s: unknown type", r->path);
  }

  if (e == NUM_NEG) {
    gw_conf_fmt_bound(r, r->min, b1, sizeof b1);
    return fail(x, at, r->path, "%s is below the minimum %s", v, b1);
  }
  if (e == NUM_BIG || u > r->max) {
    gw_conf_fmt_bound(r, r->max, b1, sizeof b1);
    return fail(x, at, r->path, "%s is above the maximum %s", v, b1);
  }
  if (u < r->min) {
    gw_conf_fmt_bound(r, r->min, b1, sizeof b1);
    return fail(x, at, r->path, "%s is below the minimum %s", v, b1);
  }
  if (r->type == T_U64 || r->type == T_SIZE)
    *(uint64_t *)gw_conf_field(x->c, r) = u;
  else
    *(uint32_t *)gw_conf_field(x->c, r) = (uint32_t)u;
  return GW_OK;
}

/* ---- ${VAR} substitution ---- */

struct sbuf {
  char *p;
  size_t len, cap;
};

static bool sbuf_add(struct sbuf *b, const char *s, size_t n)
{
  if (b->len + n > CONF_MAX_VALUE)
    return false;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1)
      cap *= 2;
    b->p = gw_realloc(b->p, cap);
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return true;
}

/* Expand ${NAME} and ${NAME:-default} in in[0..n); *out is malloc'd on success. */
static gw_rc substitute(struct ld *x, size_t ri, const char *in, size_t n, int line, char **out)
{
  const struct gw_conf_row *r = &gw_conf_rows[ri];
  char shown[CONF_SHOW + 8];
  const char *v = gw_conf_is_secret(r) ? "" : show(in, shown, sizeof shown);
  const char *vq1 = gw_conf_is_secret(r) ? "" : " in '", *vq2 = gw_conf_is_secret(r) ? "" : "'";
  struct sbuf b = {0};
  gw_rc result = GW_ERR(CONFIG);
  size_t i = 0;

  if (!sbuf_add(&b, "", 0))
    goto out_free;
  while (i < n) {
    if (in[i] == '$' && i + 2 < n && in[i + 1] == '$' && in[i + 2] == '{') {
      if (!sbuf_add(&b, "${", 2))
        goto too_long;
      i += 3;
      continue;
    }
    if (!(in[i] == '$' && i + 1 < n && in[i + 1] == '{')) {
      if (!sbuf_add(&b, in + i, 1))
        goto too_long;
      i++;
      continue;
    }
    size_t start = i + 2, close = start;
    while (close < n && in[close] != '}')
      close++;
    if (close == n) {
      fail_line(x, line, r->path, "unterminated '${'%s%s%s", vq1, v, vq2);
      goto out_free;
    }
    size_t nlen = 0;
    if (isalpha((unsigned char)in[start]) || in[start] == '_')
      while (start + nlen < close && (isalnum((unsigned char)in[start + nlen]) || in[start + nlen] == '_'))
        nlen++;
    size_t after = start + nlen; /* ':' of ":-default", or the closing brace */
    bool has_def = after + 1 < close && in[after] == ':' && in[after + 1] == '-';
    if (nlen == 0 || nlen > 128 || (after != close && !has_def)) {
      fail_line(x, line, r->path, "bad variable reference%s%s%s (use ${NAME} or ${NAME:-default})", vq1, v,
                vq2);
      goto out_free;
    }
    char name[129];
    memcpy(name, in + start, nlen);
    name[nlen] = '\0';
    const char *val = getenv(name);
    if (has_def && (!val || !*val)) {
      if (!sbuf_add(&b, in + after + 2, close - (after + 2)))
        goto too_long;
    } else if (!val) {
      fail_line(x, line, r->path, "environment variable %s is not set (write ${%s:-default} to give a default)",
                name, name);
      goto out_free;
    } else if (!sbuf_add(&b, val, strlen(val))) {
      goto too_long;
    }
    i = close + 1;
  }
  *out = b.p;
  b.p = NULL;
  result = GW_OK;
  goto out_free;
too_long:
  fail_line(x, line, r->path, "value is longer than %u bytes after substitution", CONF_MAX_VALUE);
out_free:
  free(b.p);
  return result;
}

/* ---- YAML ---- */

static gw_rc yaml_fail(struct ld *x)
{
  yaml_parser_t *p = &x->p;
  size_t line, col;
  if (p->error == YAML_READER_ERROR || p->error == YAML_MEMORY_ERROR) {
    /* The reader reports a byte offset, not a mark. */
    size_t off = p->problem_offset < x->len ? p->problem_offset : x->len;
    line = 1, col = 1;
    for (size_t i = 0; i < off; i++) {
      if (x->buf[i] == '\n')
        line++, col = 1;
      else
        col++;
    }
  } else {
    line = p->problem_mark.line + 1;
    col = p->problem_mark.column + 1;
  }
  return gw_err_set(x->err, GW_ERR(CONFIG), "%s:%zu:%zu: invalid YAML: %s%s%s", x->file, line, col,
                    p->problem ? p->problem : "syntax error", p->context ? ", " : "",
                    p->context ? p->context : "");
}

static gw_rc next(struct ld *x, yaml_event_t *ev)
{
  if (!yaml_parser_parse(&x->p, ev))
    return yaml_fail(x);
  return GW_OK;
}

static int ev_line(const yaml_event_t *ev) { return (int)ev->start_mark.line + 1; }

static bool is_null(const yaml_event_t *ev)
{
  if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
    return false;
  const char *s = (const char *)ev->data.scalar.value;
  return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

static const char *found(const yaml_event_t *ev)
{
  switch (ev->type) {
  case YAML_MAPPING_START_EVENT: return "a mapping";
  case YAML_SEQUENCE_START_EVENT: return "a list";
  case YAML_ALIAS_EVENT: return "an alias (aliases are not supported)";
  default: return "a scalar";
  }
}

/* ---- lists (T_LIST, T_TABLE) ---- */

static void list_free(struct gw_conf_list *l)
{
  for (size_t i = 0; i < (size_t)l->n * l->width; i++)
    free(l->cells[i]);
  free(l->cells);
  memset(l, 0, sizeof *l);
}

static uint32_t table_width(const struct gw_conf_row *r)
{
  uint32_t w = 0;
  if (r->type == T_TABLE)
    while (r->allowed[w])
      w++;
  return r->type == T_TABLE ? w : 1;
}

/* One scalar of a list, substituted, into *cell. */
static gw_rc list_scalar(struct ld *x, size_t ri, const yaml_event_t *ev, const char *where, char **cell)
{
  if (ev->type != YAML_SCALAR_EVENT || is_null(ev))
    return fail_line(x, ev_line(ev), where, "expected a single value, found %s", found(ev));
  if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
    return fail_line(x, ev_line(ev), where, "value contains a NUL byte");
  return substitute(x, ri, (const char *)ev->data.scalar.value, ev->data.scalar.length, ev_line(ev), cell);
}

/* One mapping of a T_TABLE (its MAPPING_START was read) into row[0..width). */
static gw_rc table_item(struct ld *x, size_t ri, const char *where, int line, char **row)
{
  const struct gw_conf_row *r = &gw_conf_rows[ri];
  uint32_t w = table_width(r);
  char path[CONF_MAX_PATH + 64], names[160] = "";
  for (uint32_t f = 0; f < w; f++)
    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", f ? ", " : "", gw_conf_fname(r->allowed[f]));
  yaml_event_t k, v;
  gw_rc rc;
  for (;;) {
    if ((rc = next(x, &k)))
      return rc;
    if (k.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&k);
      break;
    }
    if (k.type != YAML_SCALAR_EVENT) {
      rc = fail_line(x, ev_line(&k), where, "a key must be a plain name, found %s", found(&k));
      yaml_event_delete(&k);
      return rc;
    }
    int f = -1;
    for (uint32_t i = 0; i < w; i++)
      if (strcmp(gw_conf_fname(r->allowed[i]), (const char *)k.data.scalar.value) == 0)
        f = (int)i;
    char shown[CONF_SHOW + 8];
    snprintf(path, sizeof path, "%s.%s", where, show((const char *)k.data.scalar.value, shown, sizeof shown));
    int kline = ev_line(&k);
    yaml_event_delete(&k);
    if (f < 0)
      return fail_line(x, kline, path, "unknown key (allowed here: %s)", names);
    if (row[f])
      return fail_line(x, kline, path, "duplicate key");
    if ((rc = next(x, &v)))
      return rc;
    rc = list_scalar(x, ri, &v, path, &row[f]);
    yaml_event_delete(&v);
    if (rc)
      return rc;
  }
  for (uint32_t f = 0; f < w; f++)
    if (gw_conf_frequired(r->allowed[f]) && !row[f])
      return fail_line(x, line, where, "missing '%s' (keys: %s)", gw_conf_fname(r->allowed[f]), names);
  return GW_OK;
}

/* A T_LIST or T_TABLE value: a YAML sequence (its first event is ev). Replaces the default. */
static gw_rc list_value(struct ld *x, size_t ri, const yaml_event_t *ev)
{
  const struct gw_conf_row *r = &gw_conf_rows[ri];
  struct gw_conf_list *l = gw_conf_field(x->c, r);
  if (ev->type != YAML_SEQUENCE_START_EVENT)
    return fail_line(x, ev_line(ev), r->path, "expected a list, found %s", found(ev));
  list_free(l);
  l->width = table_width(r);
  uint32_t cap = 0;
  gw_rc rc;
  for (;;) {
    yaml_event_t it;
    if ((rc = next(x, &it)))
      return rc;
    if (it.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&it);
      break;
    }
    if (l->n >= 1024) {
      rc = fail_line(x, ev_line(&it), r->path, "more than 1024 entries");
      yaml_event_delete(&it);
      return rc;
    }
    if (l->n == cap) {
      cap = cap ? cap * 2 : 8;
      l->cells = gw_realloc(l->cells, sizeof *l->cells * cap * l->width);
    }
    char **row = &l->cells[(size_t)l->n * l->width];
    memset(row, 0, sizeof *row * l->width);
    l->n++;
    char where[CONF_MAX_PATH + 16];
    snprintf(where, sizeof where, "%s[%u]", r->path, l->n - 1);
    if (r->type == T_LIST) {
      rc = list_scalar(x, ri, &it, where, &row[0]);
    } else if (it.type != YAML_MAPPING_START_EVENT) {
      rc = fail_line(x, ev_line(&it), where, "expected a mapping, found %s", found(&it));
    } else {
      rc = table_item(x, ri, where, ev_line(&it), row);
    }
    yaml_event_delete(&it);
    if (rc)
      return rc;
  }
  x->org[ri] = (struct origin){.line = ev_line(ev)};
  return GW_OK;
}

static gw_rc leaf_value(struct ld *x, size_t ri, const yaml_event_t *ev)
{
  const struct gw_conf_row *r = &gw_conf_rows[ri];
  char *val = NULL;
  gw_rc rc;
  if (r->type == T_LIST || r->type == T_TABLE)
    return list_value(x, ri, ev);
  if (ev->type != YAML_SCALAR_EVENT)
    return fail_line(x, ev_line(ev), r->path, "expected a single value, found %s", found(ev));
  if (is_null(ev))
    return fail_line(x, ev_line(ev), r->path, "no value (remove the key to keep the default)");
  if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
    return fail_line(x, ev_line(ev), r->path, "value contains a NUL byte");
  rc = substitute(x, ri, (const char *)ev->data.scalar.value, ev->data.scalar.length, ev_line(ev), &val);
  if (rc)
    return rc;
  char at[CONF_MAX_PATH + 32];
  snprintf(at, sizeof at, "%s:%d", x->file, ev_line(ev));
  rc = set_value(x, ri, val, at);
  free(val);
  if (rc == GW_OK)
    x->org[ri] = (struct origin){.line = ev_line(ev)};
  return rc;
}

/* Parse the mapping whose MAPPING_START was just read; prefix is its section path ("" = top). */
static gw_rc parse_map(struct ld *x, const char *prefix)
{
  struct {
    char key[CONF_MAX_PATH];
    int line;
  } seen[NROWS + 8];
  size_t nseen = 0;
  char path[CONF_MAX_PATH], shown[CONF_SHOW + 8], allowed[400];
  yaml_event_t kev, vev;
  gw_rc rc;

  for (;;) {
    if ((rc = next(x, &kev)))
      return rc;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      return GW_OK;
    }
    int kline = ev_line(&kev);
    if (kev.type != YAML_SCALAR_EVENT) {
      rc = fail_line(x, kline, *prefix ? prefix : "(top level)", "a key must be a plain name, found %s",
                     found(&kev));
      yaml_event_delete(&kev);
      return rc;
    }
    const char *key = (const char *)kev.data.scalar.value;
    size_t plen = strlen(prefix), klen = kev.data.scalar.length;
    int ri = -1;
    bool section = false;
    if (plen + 1 + klen < sizeof path && strlen(key) == klen && !strchr(key, '.')) {
      snprintf(path, sizeof path, "%s%s%s", prefix, plen ? "." : "", key);
      ri = find_row(path);
      section = ri < 0 && is_section(path);
    } else {
      snprintf(path, sizeof path, "%s%s%s", prefix, plen ? "." : "", show(key, shown, sizeof shown));
    }
    if (ri < 0 && !section) {
      allowed_here(prefix, allowed, sizeof allowed);
      rc = fail_line(x, kline, path, "unknown key (%sallowed here: %s)",
                     memchr(key, '.', klen) ? "nest keys instead of dotting them; " : "", allowed);
      yaml_event_delete(&kev);
      return rc;
    }
    for (size_t i = 0; i < nseen; i++)
      if (strcmp(seen[i].key, key) == 0) {
        rc = fail_line(x, kline, path, "duplicate key (first at line %d)", seen[i].line);
        yaml_event_delete(&kev);
        return rc;
      }
    /* Known keys are distinct and fewer than the rows, so seen[] cannot overflow. */
    snprintf(seen[nseen].key, sizeof seen[nseen].key, "%s", key);
    seen[nseen++].line = kline;
    yaml_event_delete(&kev);

    if ((rc = next(x, &vev)))
      return rc;
    if (ri >= 0) {
      rc = leaf_value(x, (size_t)ri, &vev);
    } else if (vev.type == YAML_MAPPING_START_EVENT) {
      rc = parse_map(x, path);
    } else if (!is_null(&vev)) {
      allowed_here(path, allowed, sizeof allowed);
      rc = fail_line(x, ev_line(&vev), path, "expected a mapping (keys: %s), found %s", allowed, found(&vev));
    }
    yaml_event_delete(&vev);
    if (rc)
      return rc;
  }
}

static gw_rc parse_doc(struct ld *x)
{
  yaml_event_t ev;
  gw_rc rc;
  bool done = false;
  int docs = 0;

  while (!done) {
    if ((rc = next(x, &ev)))
      return rc;
    switch (ev.type) {
    case YAML_STREAM_END_EVENT:
      done = true;
      break;
    case YAML_DOCUMENT_START_EVENT:
      if (++docs > 1)
        rc = gw_err_set(x->err, GW_ERR(CONFIG), "%s:%d: a second YAML document; the file must hold one",
                        x->file, ev_line(&ev));
      break;
    case YAML_MAPPING_START_EVENT:
      rc = parse_map(x, "");
      break;
    case YAML_SCALAR_EVENT:
    case YAML_SEQUENCE_START_EVENT:
    case YAML_ALIAS_EVENT:
      if (!is_null(&ev))
        rc = gw_err_set(x->err, GW_ERR(CONFIG), "%s:%d: the top level must be a mapping of keys, found %s",
                        x->file, ev_line(&ev), found(&ev));
      break;
    default:
      break;
    }
    yaml_event_delete(&ev);
    if (rc)
      return rc;
  }
  return GW_OK;
}

static gw_rc read_file(const char *path, char **out, size_t *len, struct gw_err *err)
{
  char why[200];
  bool too_large;
  if ((*out = gw_file_read(path, CONF_MAX_FILE, len, &too_large, why, sizeof why)))
    return GW_OK;
  if (too_large)
    return gw_err_set(err, GW_ERR(CONFIG), "%s: larger than %u bytes; is it a configuration file?", path,
                      CONF_MAX_FILE);
  return gw_err_set(err, GW_ERR(IO), "%s: %s", path, why);
}

static gw_rc load_file(struct ld *x, const char *path)
{
  char *buf = NULL;
  size_t len = 0;
  gw_rc rc = read_file(path, &buf, &len, x->err);
  if (rc)
    return rc;
  x->buf = buf;
  x->len = len;
  if (!yaml_parser_initialize(&x->p)) {
    free(buf);
    return gw_err_set(x->err, GW_ERR(NOMEM), "%s: cannot start the YAML parser", path);
  }
  yaml_parser_set_input_string(&x->p, (const unsigned char *)buf, len);
  rc = parse_doc(x);
  yaml_parser_delete(&x->p);
  free(buf);
  x->buf = NULL;
  return rc;
}

/* ---- environment and validation ---- */

static gw_rc apply_env(struct ld *x)
{
  for (size_t i = 0; i < gw_conf_nenvs; i++) {
    const char *v = getenv(gw_conf_envs[i].var);
    int ri = find_row(gw_conf_envs[i].path);
    if (!v || !*v || ri < 0)
      continue;
    char at[64];
    snprintf(at, sizeof at, "environment %s", gw_conf_envs[i].var);
    gw_rc rc = set_value(x, (size_t)ri, v, at);
    if (rc)
      return rc;
    x->org[ri] = (struct origin){.env = gw_conf_envs[i].var};
  }
  return GW_OK;
}

/* NULL if a is host:port with port 1..65535; else why not. host gets the host part (brackets removed). */
static const char *addr_problem(const char *a, char *host, size_t hn, unsigned *port)
{
  const char *colon, *h = a;
  size_t hl;
  if (!*a)
    return "is empty (want host:port)";
  if (a[0] == '[') {
    const char *rb = strchr(a, ']');
    if (!rb || rb[1] != ':')
      return "is not [IPv6]:port";
    h = a + 1;
    hl = (size_t)(rb - h);
    colon = rb + 1;
    if (hl == 0 || hl >= hn)
      return "has a bad IPv6 address";
    memcpy(host, h, hl);
    host[hl] = '\0';
    char bare[64];
    size_t bl = strcspn(host, "%"); /* a zone ("%eth0") is not part of the address */
    if (bl >= sizeof bare)
      return "has a bad IPv6 address";
    memcpy(bare, host, bl);
    bare[bl] = '\0';
    struct in6_addr a6;
    if (inet_pton(AF_INET6, bare, &a6) != 1)
      return "has a bad IPv6 address";
  } else {
    colon = strrchr(a, ':');
    if (!colon)
      return "is not host:port";
    if (memchr(a, ':', (size_t)(colon - a)))
      return "has an IPv6 address without brackets (write [::1]:4317)";
    hl = (size_t)(colon - a);
    if (hl == 0)
      return "has no host (use 0.0.0.0:PORT for every interface)";
    if (hl >= hn)
      return "has a host name that is too long";
    memcpy(host, a, hl);
    host[hl] = '\0';
    bool numeric = strspn(host, "0123456789.") == hl;
    struct in_addr a4;
    if (numeric && inet_pton(AF_INET, host, &a4) != 1)
      return "has a bad IPv4 address";
    for (size_t i = 0; i < hl; i++)
      if (!isalnum((unsigned char)host[i]) && host[i] != '.' && host[i] != '-')
        return "has a bad host name";
  }
  const char *p = colon + 1;
  size_t pl = strlen(p);
  unsigned long v = 0;
  if (pl == 0 || pl > 5 || strspn(p, "0123456789") != pl || (v = strtoul(p, NULL, 10)) < 1 || v > 65535)
    return "has a port outside 1..65535";
  *port = (unsigned)v;
  return NULL;
}

static bool is_default(const struct ld *x, size_t i) { return x->org[i].line == 0 && !x->org[i].env; }

static bool wildcard(const char *h) { return strcmp(h, "0.0.0.0") == 0 || strcmp(h, "::") == 0; }

/* ---- exporters ---- */

bool gw_conf_exporter_on(const struct gw_conf_exporter *e) { return e->enabled && e->endpoint && *e->endpoint; }

uint64_t gw_conf_exporter_lag_bytes(const struct gw_conf *c, const struct gw_conf_exporter *e)
{
  return e->max_lag_bytes ? e->max_lag_bytes : c->spool.max_bytes / 4;
}

static bool is_loopback(const char *h)
{
  return strcasecmp(h, "localhost") == 0 || strcmp(h, "127.0.0.1") == 0 || strcmp(h, "::1") == 0;
}

/* True when numeric address h is one of this machine's interface addresses. */
static bool is_local_address(const char *h)
{
  unsigned char want[16], have[16];
  int fam = strchr(h, ':') ? AF_INET6 : AF_INET;
  if (inet_pton(fam, h, want) != 1)
    return false;
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) != 0)
    return false;
  bool found = false;
  for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
    if (!i->ifa_addr || i->ifa_addr->sa_family != fam)
      continue;
    if (fam == AF_INET)
      memcpy(have, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, 4);
    else
      memcpy(have, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, 16);
    found = memcmp(want, have, fam == AF_INET ? 4 : 16) == 0;
  }
  freeifaddrs(ifs);
  return found;
}

/* Would connecting to host ep reach a socket listening on host listen (same port)? No DNS: names other
 * than localhost only match themselves. */
static bool same_host(const char *listen, const char *ep)
{
  if (strcasecmp(listen, ep) == 0)
    return true;
  if (is_loopback(listen) && is_loopback(ep))
    return true;
  if (wildcard(listen))
    return wildcard(ep) || is_loopback(ep) || is_local_address(ep);
  return false;
}

/* An exporter endpoint taken apart. */
struct endpoint {
  char host[256];
  unsigned port;
  bool https;
  const char *path; /* URL path ("" when none); gRPC: "" */
};

/* NULL if u is an http(s) URL we can send to; else why not. */
static const char *url_problem(const char *u, struct endpoint *ep)
{
  const char *p;
  if (strncasecmp(u, "http://", 7) == 0) {
    p = u + 7;
    ep->https = false;
  } else if (strncasecmp(u, "https://", 8) == 0) {
    p = u + 8;
    ep->https = true;
  } else {
    return "is not an http:// or https:// URL";
  }
  size_t alen = strcspn(p, "/?#");
  if (memchr(p, '@', alen))
    return "the URL carries credentials; put them in headers (or the exporter's key settings)";
  if (p[alen] == '?' || p[alen] == '#' || strpbrk(p + alen, "?#"))
    return "has a query or fragment; give the base URL only";
  const char *colon = NULL, *host = p;
  size_t hlen;
  if (*p == '[') {
    const char *rb = memchr(p, ']', alen);
    if (!rb)
      return "has a bad IPv6 address";
    host = p + 1;
    hlen = (size_t)(rb - host);
    if (rb + 1 < p + alen) {
      if (rb[1] != ':')
        return "has a bad IPv6 address";
      colon = rb + 1;
    }
  } else {
    colon = memchr(p, ':', alen);
    hlen = colon ? (size_t)(colon - p) : alen;
  }
  if (hlen == 0 || hlen >= sizeof ep->host)
    return "has no host";
  memcpy(ep->host, host, hlen);
  ep->host[hlen] = '\0';
  for (size_t i = 0; i < hlen; i++)
    if (!isalnum((unsigned char)ep->host[i]) && !strchr(".-:%_", ep->host[i]))
      return "has a bad host name";
  ep->port = ep->https ? 443 : 80;
  if (colon) {
    const char *ps = colon + 1;
    size_t pl = (size_t)(p + alen - ps);
    unsigned long v = 0;
    if (pl == 0 || pl > 5 || strspn(ps, "0123456789") < pl || (v = strtoul(ps, NULL, 10)) < 1 || v > 65535)
      return "has a port outside 1..65535";
    ep->port = (unsigned)v;
  }
  ep->path = p + alen;
  return NULL;
}

/* p ends with suffix, ignoring trailing slashes. */
static bool path_ends(const char *p, const char *suffix)
{
  size_t n = strlen(p), k = strlen(suffix);
  while (n && p[n - 1] == '/')
    n--;
  return n >= k && strncasecmp(p + n - k, suffix, k) == 0;
}

/* Header names are RFC 9110 tokens; the exporter sets these itself. */
static const char *header_problem(const char *name, bool langfuse)
{
  static const char *const reserved[] = {"content-type", "content-encoding", "content-length", "host", "te",
                                         "connection", "transfer-encoding", "user-agent", "accept-encoding", NULL};
  if (!*name)
    return "is empty";
  for (const char *c = name; *c; c++)
    if (!isalnum((unsigned char)*c) && !strchr("!#$%&'*+-.^_`|~", *c))
      return "is not a valid header name";
  for (const char *const *r = reserved; *r; r++)
    if (strcasecmp(name, *r) == 0)
      return "is set by the exporter itself";
  if (strncasecmp(name, "grpc-", 5) == 0)
    return "is reserved by gRPC";
  if (langfuse && (strcasecmp(name, "authorization") == 0 || strcasecmp(name, "x-langfuse-ingestion-version") == 0))
    return "is set by the Langfuse exporter from its keys";
  return NULL;
}

/* A header that carries a credential (by its usual names). */
static bool header_is_credential(const char *name)
{
  static const char *const exact[] = {"authorization", "proxy-authorization", "cookie", NULL};
  static const char *const parts[] = {"key", "token", "secret", "auth", "password", "session", NULL};
  for (const char *const *e = exact; *e; e++)
    if (strcasecmp(name, *e) == 0)
      return true;
  for (const char *const *p = parts; *p; p++)
    if (strcasestr(name, *p))
      return true;
  return false;
}

/* Host h (an exporter endpoint's) is this machine: localhost, 127.0.0.0/8, ::1. No DNS. */
static bool loopback_host(const char *h)
{
  unsigned char a[16];
  if (strcasecmp(h, "localhost") == 0)
    return true;
  if (inet_pton(AF_INET, h, a) == 1)
    return a[0] == 127;
  return inet_pton(AF_INET6, h, a) == 1 && IN6_IS_ADDR_LOOPBACK((struct in6_addr *)a);
}

static bool header_value_ok(const char *v)
{
  for (const char *c = v; *c; c++)
    if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
      return false;
  return true;
}

/* gRPC metadata carries printable ASCII only (gRPC core refuses every call otherwise, and logs the value). */
static bool grpc_value_ok(const char *v)
{
  for (const char *c = v; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
      return false;
  return true;
}

/* What is wrong with a credential setting's value (an API key: printable ASCII, no spaces), or NULL. The
 * value itself is never echoed. A trailing newline is the usual slip (a Kubernetes Secret made from a file
 * that ends with one): the key would be sent with it and refused by the backend, every batch. */
static const char *credential_problem(const char *v)
{
  size_t n = strlen(v);
  if (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
    return "ends with a line break (a Secret made from a file ending in one?): remove it";
  for (const char *c = v; *c; c++)
    if ((unsigned char)*c <= 0x20 || (unsigned char)*c > 0x7e)
      return "contains a space, a control character or a non-ASCII byte, which no API key has";
  return NULL;
}

static gw_rc validate_exporter(struct ld *x, size_t ei, uint64_t *lag_total, int *lag_blame)
{
  struct gw_conf *c = x->c;
  const struct gw_conf_exporter *e = &c->exporters[ei];
  const char *name = gw_conf_exporter_names[ei];
  char at[CONF_MAX_PATH + 32], key[CONF_MAX_PATH], shown[CONF_SHOW + 8];
  bool grpc = strcmp(e->protocol, "grpc") == 0, langfuse = ei == GW_CONF_EXP_LANGFUSE;
#define ROW(k) (snprintf(key, sizeof key, "exporters.%s." k, name), (size_t)find_row(key))
  size_t r_ep = ROW("endpoint");
  const char *ep_at = where(x, r_ep, at, sizeof at);
  char ep_key[CONF_MAX_PATH];
  snprintf(ep_key, sizeof ep_key, "%s", key);
  struct endpoint ep = {.path = ""};
  const char *why;
  if (grpc) {
    if (strchr(e->endpoint, '@'))
      return fail(x, ep_at, ep_key, "the endpoint carries credentials; gRPC takes host:port (put them in headers "
                                    "or the exporter's key settings)"); /* never echo a password */
    if (strstr(e->endpoint, "://"))
      return fail(x, ep_at, ep_key, "'%s': gRPC takes host:port, not a URL (tls: true for TLS)",
                  show_endpoint(e->endpoint, shown, sizeof shown));
    why = addr_problem(e->endpoint, ep.host, sizeof ep.host, &ep.port);
    if (!why && wildcard(ep.host))
      why = "is a wildcard address; name the host to send to";
  } else {
    why = url_problem(e->endpoint, &ep);
    if (!why && langfuse && (path_ends(ep.path, "/api/public/otel") || path_ends(ep.path, "/v1/traces")))
      why = "is the Langfuse base URL: /api/public/otel/v1/traces is appended (drop it from the endpoint)";
    else if (!why && !langfuse && (path_ends(ep.path, "/v1/traces") || path_ends(ep.path, "/v1/logs")))
      why = "is a base URL: /v1/traces and /v1/logs are appended (drop them from the endpoint)";
  }
  if (why && strstr(why, "credentials"))
    return fail(x, ep_at, ep_key, "%s", why); /* never echo a password */
  if (why)
    return fail(x, ep_at, ep_key, "'%s' %s", show_endpoint(e->endpoint, shown, sizeof shown), why);

  /* DESIGN §8: exporting to ourselves would loop every span forever. */
  for (size_t i = 0; i < NROWS; i++) {
    if (!(gw_conf_rows[i].flags & F_ADDR))
      continue;
    const char *a = *(char **)gw_conf_field(c, &gw_conf_rows[i]);
    char lhost[256];
    unsigned lport;
    if (addr_problem(a, lhost, sizeof lhost, &lport) || lport != ep.port || !same_host(lhost, ep.host))
      continue;
    return fail(x, ep_at, ep_key, "'%s' is the gateway's own %s '%s': it would export to itself",
                show_endpoint(e->endpoint, shown, sizeof shown), gw_conf_rows[i].path, a);
  }

  size_t r_tls = ROW("tls");
  if (e->tls && !grpc)
    return fail(x, where(x, r_tls, at, sizeof at), key, "applies to gRPC only; an HTTP endpoint uses TLS when it is https://");
  size_t r_ca = ROW("ca_file");
  if (*e->ca_file) {
    if (!(grpc ? e->tls : ep.https))
      return fail(x, where(x, r_ca, at, sizeof at), key, "needs TLS (%s)", grpc ? "tls: true" : "an https:// endpoint");
    char *pem = NULL;
    size_t plen = 0;
    struct gw_err ferr = {0};
    if (read_file(e->ca_file, &pem, &plen, &ferr) != GW_OK) {
      const char *reason = strrchr(ferr.msg, ':'); /* "PATH: cannot read: REASON" */
      return fail(x, where(x, r_ca, at, sizeof at), key, "cannot read '%s': %s", show(e->ca_file, shown, sizeof shown),
                  ferr.rc == GW_ERR(CONFIG) ? "larger than 1 MiB" : reason ? reason + 2 : "unreadable");
    }
    bool is_pem = strstr(pem, "-----BEGIN CERTIFICATE-----") != NULL;
    free(pem);
    if (!is_pem)
      return fail(x, where(x, r_ca, at, sizeof at), key, "'%s' holds no PEM certificate", show(e->ca_file, shown, sizeof shown));
  }

  size_t r_h = ROW("headers");
  for (uint32_t i = 0; i < e->headers.n; i++) {
    const char *hn = e->headers.cells[i * 2], *hv = e->headers.cells[i * 2 + 1];
    char hk[CONF_MAX_PATH + 32];
    if ((why = header_problem(hn, langfuse))) {
      snprintf(hk, sizeof hk, "%s[%u].name", key, i);
      return fail(x, where(x, r_h, at, sizeof at), hk, "'%s' %s", show(hn, shown, sizeof shown), why);
    }
    if (!header_value_ok(hv)) {
      snprintf(hk, sizeof hk, "%s[%u].value", key, i);
      return fail(x, where(x, r_h, at, sizeof at), hk, "contains a control character");
    }
    if (grpc && !grpc_value_ok(hv)) {
      snprintf(hk, sizeof hk, "%s[%u].value", key, i);
      return fail(x, where(x, r_h, at, sizeof at), hk,
                  "contains a tab or a non-ASCII byte, which gRPC metadata cannot carry");
    }
  }

  /* The API keys this exporter sends (Langfuse's Basic auth pair, SigNoz's ingestion key). */
  const char *creds[2] = {NULL, NULL}, *cred_keys[2] = {NULL, NULL};
  if (langfuse) {
    creds[0] = e->public_key, cred_keys[0] = "exporters.langfuse.public_key";
    creds[1] = e->secret_key, cred_keys[1] = "exporters.langfuse.secret_key";
  } else if (ei == GW_CONF_EXP_SIGNOZ) {
    creds[0] = e->ingestion_key, cred_keys[0] = "exporters.signoz.ingestion_key";
  }
  for (int i = 0; i < 2; i++) {
    const char *cw = creds[i] ? credential_problem(creds[i]) : NULL;
    if (cw) {
      snprintf(key, sizeof key, "%s", cred_keys[i]);
      return fail(x, where(x, (size_t)find_row(key), at, sizeof at), key, "%s", cw);
    }
  }

  size_t r_tok = ROW("token_file");
  if (*e->token_file) {
    char tk[CONF_MAX_PATH];
    snprintf(tk, sizeof tk, "%s", key);
    if (langfuse)
      return fail(x, where(x, r_tok, at, sizeof at), tk, "does not apply: Langfuse authenticates with public_key and secret_key");
    for (uint32_t i = 0; i < e->headers.n; i++)
      if (strcasecmp(e->headers.cells[i * 2], "authorization") == 0)
        return fail(x, where(x, r_tok, at, sizeof at), tk,
                    "sets the authorization header, which exporters.%s.headers[%u] sets too: keep one of them", name, i);
    char *tok = NULL, twhy[200];
    if (gw_auth_read_token(e->token_file, &tok, twhy, sizeof twhy) != GW_OK)
      return fail(x, where(x, r_tok, at, sizeof at), tk, "'%s': %s", show(e->token_file, shown, sizeof shown), twhy);
    memset(tok, 0, strlen(tok));
    free(tok);
  }

  /* Credentials in cleartext beyond this machine: anyone on the path reads them. Refused unless the
   * operator says insecure: true. */
  bool cleartext = grpc ? !e->tls : !ep.https;
  if (cleartext && !loopback_host(ep.host)) {
    char ck[CONF_MAX_PATH + 32] = "";
    size_t crow = r_ep;
    if (langfuse) {
      snprintf(ck, sizeof ck, "exporters.langfuse.secret_key");
      crow = (size_t)find_row(ck);
    } else if (ei == GW_CONF_EXP_SIGNOZ && *e->ingestion_key) {
      snprintf(ck, sizeof ck, "exporters.signoz.ingestion_key");
      crow = (size_t)find_row(ck);
    } else if (*e->token_file) {
      snprintf(ck, sizeof ck, "exporters.%s.token_file", name);
      crow = r_tok;
    } else {
      for (uint32_t i = 0; i < e->headers.n && !ck[0]; i++) {
        if (header_is_credential(e->headers.cells[i * 2])) {
          snprintf(ck, sizeof ck, "exporters.%s.headers[%u]", name, i);
          crow = r_h;
        }
      }
    }
    if (ck[0] && !e->insecure)
      return fail(x, where(x, crow, at, sizeof at), ck,
                  "would be sent in cleartext to '%s' (%s): use %s, or set exporters.%s.insecure: true to allow it",
                  show_endpoint(e->endpoint, shown, sizeof shown), grpc ? "gRPC with tls: false" : "an http:// endpoint",
                  grpc ? "tls: true" : "an https:// endpoint", name);
    x->c->exporters[ei].cleartext_credentials = ck[0] != 0;
  }

  if (langfuse) {
    if (!*e->public_key || !*e->secret_key) {
      const char *missing = !*e->public_key ? "public_key" : "secret_key";
      snprintf(key, sizeof key, "exporters.langfuse.%s", missing);
      return fail(x, ep_at, key, "required when the Langfuse exporter is on (its endpoint is set here); set it or %s",
                  !*e->public_key ? "LANGFUSE_PUBLIC_KEY" : "LANGFUSE_SECRET_KEY");
    }
  }

  size_t r_lag = ROW("max_lag_bytes");
  *lag_total += gw_conf_exporter_lag_bytes(c, e);
  if (*lag_blame < 0 || !is_default(x, r_lag))
    *lag_blame = (int)r_lag;
#undef ROW
  return GW_OK;
}

static gw_rc validate_exporters(struct ld *x)
{
  struct gw_conf *c = x->c;
  uint64_t lag_total = 0;
  int blame = -1;
  for (size_t i = 0; i < GW_CONF_NEXPORTERS; i++) {
    if (!gw_conf_exporter_on(&c->exporters[i]))
      continue;
    gw_rc rc = validate_exporter(x, i, &lag_total, &blame);
    if (rc)
      return rc;
  }
  double limit = (double)c->spool.max_bytes * c->spool.high_water;
  if (blame >= 0 && (double)lag_total >= limit) {
    char at[CONF_MAX_PATH + 32], a[32];
    gw_conf_fmt_size(lag_total, a, sizeof a);
    return fail(x, where(x, (size_t)blame, at, sizeof at), gw_conf_rows[blame].path,
                "the running exporters' lag caps add up to %s, not below the spool's high-water mark (%.0f bytes): "
                "exporters that are down could fill it; lower the caps or raise spool.max_bytes", a, limit);
  }
  return GW_OK;
}

/* receivers.tls.*: files that belong together, then the material itself, loaded as the receivers will. */
static gw_rc validate_tls(struct ld *x)
{
  const struct gw_conf *c = x->c;
  char at[CONF_MAX_PATH + 32], shown[CONF_SHOW + 8];
  size_t r_cert = (size_t)find_row("receivers.tls.cert_file"), r_key = (size_t)find_row("receivers.tls.key_file"),
         r_ca = (size_t)find_row("receivers.tls.client_ca_file");
  if (!*c->receivers.tls_cert && !*c->receivers.tls_key && !*c->receivers.tls_client_ca)
    return GW_OK;
  if (!*c->receivers.tls_cert)
    return fail(x, where(x, *c->receivers.tls_key ? r_key : r_ca, at, sizeof at), gw_conf_rows[r_cert].path,
                "required when %s is set", *c->receivers.tls_key ? "receivers.tls.key_file" : "receivers.tls.client_ca_file");
  if (!*c->receivers.tls_key)
    return fail(x, where(x, r_cert, at, sizeof at), gw_conf_rows[r_key].path, "required when receivers.tls.cert_file is set");
  struct gw_tls_files f = {c->receivers.tls_cert, c->receivers.tls_key, c->receivers.tls_client_ca};
  struct gw_tls_material *m;
  enum gw_tls_which which;
  char why[256];
  if (gw_tls_material_load(&f, 0, &m, &which, why, sizeof why) != GW_OK) {
    size_t r = which == GW_TLS_CERT ? r_cert : which == GW_TLS_KEY ? r_key : r_ca;
    const char *path = which == GW_TLS_CERT ? f.cert : which == GW_TLS_KEY ? f.key : f.ca;
    return fail(x, where(x, r, at, sizeof at), gw_conf_rows[r].path, "'%s': %s", show(path, shown, sizeof shown), why);
  }
  gw_tls_material_unref(m);
  return GW_OK;
}

static gw_rc validate(struct ld *x)
{
  gw_rc rc;
  char at[CONF_MAX_PATH + 32], shown[CONF_SHOW + 8];
  struct {
    size_t row;
    char host[256];
    unsigned port;
  } addrs[NROWS];
  size_t na = 0;

  for (size_t i = 0; i < NROWS; i++) {
    if (!(gw_conf_rows[i].flags & F_ADDR))
      continue;
    const char *a = *(char **)gw_conf_field(x->c, &gw_conf_rows[i]);
    const char *why = addr_problem(a, addrs[na].host, sizeof addrs[na].host, &addrs[na].port);
    /* What the listeners bind (core/net.c) takes: a numeric address or localhost, no host name to resolve
     * and no IPv6 zone. Said here, with the key, rather than by a failing bind once receivers run. */
    const char *lh = addrs[na].host;
    unsigned char a46[16];
    if (!why && strchr(lh, '%'))
      why = "has an IPv6 zone, which a listen address cannot take (bind [::] or the interface's address)";
    else if (!why && strcmp(lh, "localhost") != 0 && inet_pton(AF_INET, lh, a46) != 1 && inet_pton(AF_INET6, lh, a46) != 1)
      why = "has a host name: a listen address takes a numeric IPv4 or [IPv6] address, or localhost";
    if (why)
      return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path, "'%s' %s", show(a, shown, sizeof shown), why);
    for (size_t j = 0; j < na; j++) {
      if (addrs[j].port != addrs[na].port)
        continue;
      if (strcasecmp(addrs[j].host, addrs[na].host) != 0 && !wildcard(addrs[j].host) &&
          !wildcard(addrs[na].host))
        continue;
      /* Blame the value someone set, not the default it collides with. */
      size_t blame = i, other = addrs[j].row;
      if (is_default(x, i)) {
        blame = addrs[j].row;
        other = i;
      }
      return fail(x, where(x, blame, at, sizeof at), gw_conf_rows[blame].path, "'%s' uses the same port as %s '%s'",
                  show(*(char **)gw_conf_field(x->c, &gw_conf_rows[blame]), shown, sizeof shown), gw_conf_rows[other].path,
                  *(char **)gw_conf_field(x->c, &gw_conf_rows[other]));
    }
    addrs[na++].row = i;
  }

  struct gw_conf *c = x->c;
  if (c->receivers.max_inflight_bytes < c->receivers.max_request_bytes) {
    size_t in = (size_t)find_row("receivers.max_inflight_bytes"), rq = (size_t)find_row("receivers.max_request_bytes");
    char a[32], b[32];
    gw_conf_fmt_size(c->receivers.max_inflight_bytes, a, sizeof a);
    gw_conf_fmt_size(c->receivers.max_request_bytes, b, sizeof b);
    if (is_default(x, in) && !is_default(x, rq))
      return fail(x, where(x, rq, at, sizeof at), gw_conf_rows[rq].path,
                  "%s is above receivers.max_inflight_bytes %s: such a request could never be accepted", b, a);
    return fail(x, where(x, in, at, sizeof at), gw_conf_rows[in].path,
                "%s is below receivers.max_request_bytes %s: a largest request could never be accepted", a, b);
  }
  if ((rc = validate_tls(x)))
    return rc;
  if (*c->receivers.auth_tokens) {
    size_t r = (size_t)find_row("receivers.auth.tokens_file");
    char why[200];
    if (gw_auth_check_file(c->receivers.auth_tokens, why, sizeof why) != GW_OK)
      return fail(x, where(x, r, at, sizeof at), gw_conf_rows[r].path, "'%s': %s",
                  show(c->receivers.auth_tokens, shown, sizeof shown), why);
  }
  if (strcmp(c->durability, "auto") != 0) {
    if (strcmp(c->spool.mode, "auto") != 0 && strcmp(c->spool.mode, c->durability) != 0) {
      size_t i = (size_t)find_row("durability");
      return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path,
                  "'%s' disagrees with spool.mode '%s' (the same setting: give one of them)", c->durability,
                  c->spool.mode);
    }
    free(c->spool.mode);
    c->spool.mode = gw_strdup(c->durability);
  }
  if (strcmp(c->spool.mode, "disk") == 0 && !*c->spool.dir) {
    size_t i = (size_t)find_row("spool.dir");
    if (is_default(x, i)) { /* blame the key that asked for the disk */
      size_t d = (size_t)find_row("durability");
      i = is_default(x, d) ? (size_t)find_row("spool.mode") : d;
      return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path,
                  "disk needs spool.dir (or GENAI_GW_SPOOL_DIR): the directory of the spool's files");
    }
    return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path,
                "must not be empty when the spool is on disk (durability or spool.mode: disk)");
  }
  if (strcmp(c->spool.mode, "auto") == 0) {
    free(c->spool.mode);
    c->spool.mode = gw_strdup(*c->spool.dir ? "disk" : "memory");
  }
  free(c->durability);
  c->durability = gw_strdup(c->spool.mode);
  if (c->spool.segment_bytes && c->spool.segment_bytes < 64 * KiB) {
    size_t i = (size_t)find_row("spool.segment_bytes");
    return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path, "%llu is below the minimum of 64KiB (0: automatic)",
                (unsigned long long)c->spool.segment_bytes);
  }
  if (c->postgres.rollup_retention_days < c->postgres.retention_days) {
    size_t i = (size_t)find_row("postgres.rollup_retention_days"), r = (size_t)find_row("postgres.retention_days");
    if (is_default(x, i))
      i = r;
    return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path,
                "rollup_retention_days %u is below retention_days %u: rollups must outlive the rows they count",
                c->postgres.rollup_retention_days, c->postgres.retention_days);
  }
  if (*c->postgres.dsn && c->postgres.migrate && !*c->postgres.migrations_dir) {
    size_t i = (size_t)find_row("postgres.migrations_dir");
    return fail(x, where(x, i, at, sizeof at), gw_conf_rows[i].path, "must not be empty when postgres.migrate is true");
  }
  return validate_exporters(x);
}

/* ---- public ---- */

gw_rc gw_conf_load(const char *path, struct gw_conf **out, struct gw_err *err)
{
  struct ld x = {.file = path, .err = err};
  gw_rc result = GW_ERR(CONFIG), rc;

  *out = NULL;
  x.c = gw_calloc(1, sizeof *x.c);
  for (size_t i = 0; i < NROWS; i++) {
    if ((rc = set_value(&x, i, gw_conf_rows[i].def, "default"))) {
      result = GW_ERR(INTERNAL);
      goto out_destroy;
    }
  }
  if (path) {
    x.c->source = gw_strdup(path);
    if ((result = load_file(&x, path)))
      goto out_destroy;
  }
  if ((result = apply_env(&x)))
    goto out_destroy;
  /* The default migrations: the build's, or the copy shipped beside a relocated binary (an image). */
  if (is_default(&x, (size_t)find_row("postgres.migrations_dir"))) {
    char *found = gw_datadir_find(x.c->postgres.migrations_dir, "migrations");
    free(x.c->postgres.migrations_dir);
    x.c->postgres.migrations_dir = found;
  }
  if ((result = validate(&x)))
    goto out_destroy;
  *out = x.c;
  x.c = NULL;
  result = GW_OK;
out_destroy:
  gw_conf_destroy(x.c);
  return result;
}

void gw_conf_destroy(struct gw_conf *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < NROWS; i++) {
    const struct gw_conf_row *r = &gw_conf_rows[i];
    if (r->type == T_STRING || r->type == T_SECRET_STRING || r->type == T_ENUM)
      free(*(char **)gw_conf_field(c, r));
    if (r->type == T_LIST || r->type == T_TABLE)
      list_free(gw_conf_field(c, r));
  }
  free(c->source);
  free(c);
}
