/*
 * redact.h: the redaction stage (DESIGN §5). After normalize and cost, before encode: nothing that leaves
 * the process (spool, Postgres, exporters, logs) carries a value a detector found.
 *
 * A redactor is built once at start from a plain policy struct (the integrator fills it from config) and
 * is then immutable: share it freely across threads. The pcre2 match data lives per thread (thread-local,
 * created on first use, freed at thread exit). Everything a call produces lives in the caller's arena;
 * replaced strings are new arena strings (pointers are swapped, bytes already in the arena are never
 * written), so records that point into the request keep seeing the original text until they are
 * redacted themselves.
 *
 * Detectors: one combined JIT-compiled pcre2 pattern for the built-ins (one pass per value), one extra
 * pass per user pattern. Matches from all passes are merged left to right, the earliest start winning.
 * Actions: mask ("[EMAIL_REDACTED]"), hash ("[EMAIL:<12 hex of HMAC-SHA-256(key, value)>]"), drop (the
 * whole attribute is removed: the nearest key/value pair in a request, the object member in the
 * attributes/resource JSON of a record, the whole field for other record fields).
 * Values that are JSON text (start with '{' or '[' and parse) are redacted string value by string value,
 * keeping keys and structure, so the result stays valid JSON; JSON inside JSON strings likewise.
 */
#ifndef GW_REDACT_H
#define GW_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/gw.h"
#include "normalize/record.h"
#include "pb.h"

/* The built-in detectors: enum id, config/metric name, mask label (also the stem of hash tokens). */
#define GW_REDACT_KINDS(X)                                     \
  X(EMAIL, "email", "EMAIL")                                   \
  X(PHONE, "phone", "PHONE")                                   \
  X(SSN, "ssn", "SSN")                                         \
  X(CARD, "credit_card", "CARD")                               \
  X(IPV4, "ipv4", "IP")                                        \
  X(IPV6, "ipv6", "IP")                                        \
  X(AWS_KEY_ID, "aws_access_key", "AWS_KEY")                   \
  X(AWS_SECRET, "aws_secret_key", "AWS_KEY")                   \
  X(JWT, "jwt", "JWT")                                         \
  X(BEARER, "bearer_token", "TOKEN")                           \
  X(BASIC_AUTH, "basic_auth", "CREDENTIALS")                   \
  X(API_KEY, "api_key", "API_KEY")                             \
  X(PRIVATE_KEY, "private_key", "PRIVATE_KEY")

enum gw_redact_kind {
#define GW_RK_ENUM(id, name, label) GW_RK_##id,
  GW_REDACT_KINDS(GW_RK_ENUM)
#undef GW_RK_ENUM
  GW_RK__COUNT
};

/*
 * What to do with a match. DEFAULT (0) means mask for a detector and "use the detector's action" for a
 * key rule. OFF disables a detector; as a key rule it means "never touch this key" (like the allow list).
 */
enum gw_redact_action {
  GW_REDACT_DEFAULT = 0,
  GW_REDACT_MASK,
  GW_REDACT_HASH,
  GW_REDACT_DROP,
  GW_REDACT_OFF,
};

/* A user pattern from config: pcre2 syntax (UTF mode). label NULL: "[<NAME uppercased>_REDACTED]". */
struct gw_redact_user_pattern {
  const char *name;
  const char *regex;
  const char *label;
  enum gw_redact_action action;
};

/* A per-attribute-key override: every match in this key's values takes this action. A key ending in
 * ".*" (or "*") matches by prefix, here and in the allow/deny lists. */
struct gw_redact_key_rule {
  const char *key;
  enum gw_redact_action action;
};

/*
 * The policy, a plain struct. Nothing in it needs to outlive gw_redactor_create (all is copied).
 * gw_redact_policy_defaults gives: enabled, every detector masking, the default allow and deny lists
 * below, no HMAC key, no user patterns, max_content_bytes 8 KiB.
 */
struct gw_redact_policy {
  bool enabled; /* false: every call is a no-op (records still get truncated) */
  enum gw_redact_action actions[GW_RK__COUNT];
  const char *hmac_key; /* required when any action is HASH; never logged */
  size_t hmac_key_len;  /* 0: strlen(hmac_key) */
  const char *const *allow_keys; /* never touched */
  size_t n_allow_keys;
  const char *const *deny_keys; /* always removed */
  size_t n_deny_keys;
  const struct gw_redact_key_rule *key_rules;
  size_t n_key_rules;
  const struct gw_redact_user_pattern *patterns;
  size_t n_patterns;
  size_t max_content_bytes; /* per content field of a record; 0 = no truncation */
  /* Per-request limits (gw_redact_memo_limit); 0 = none. scan_factor: the detector passes may read a
   * request's bytes this many times each (the built-ins, each user pattern); cpu_ms_per_mib: this thread's
   * CPU time per MiB of request (at least 100 ms). */
  uint32_t scan_factor;
  uint32_t cpu_ms_per_mib;
};

extern const char *const gw_redact_default_allow_keys[];
extern const size_t gw_redact_default_n_allow_keys;
extern const char *const gw_redact_default_deny_keys[];
extern const size_t gw_redact_default_n_deny_keys;

void gw_redact_policy_defaults(struct gw_redact_policy *p);

/* Config helpers: "mask" | "hash" | "drop" | "off" (also "none", "allow") -> action; a detector's name
 * (GW_REDACT_KINDS, e.g. "credit_card") -> kind. Return false for an unknown word. */
bool gw_redact_action_parse(const char *s, enum gw_redact_action *out);
bool gw_redact_kind_parse(const char *s, enum gw_redact_kind *out);
const char *gw_redact_kind_name(enum gw_redact_kind k);

/*
 * Build a redactor. Fails with GW_E_CONFIG and a message in err for: a user pattern that does not compile
 * ("redaction pattern 'name': <pcre2 message> at offset N"), a user pattern without name or regex, an
 * action HASH anywhere without an HMAC key. The key itself never appears in a message.
 * Also registers the redaction metrics renderer (once per process). Returns NULL on failure.
 */
struct gw_redactor *gw_redactor_create(const struct gw_redact_policy *p, struct gw_err *err);
void gw_redactor_destroy(struct gw_redactor *r);

/* What one call found: the number of replaced or removed values by kind. kinds[] index: GW_RK_* for the
 * built-ins, GW_RK__COUNT + i for user pattern i; deny-listed keys count under deny; values replaced whole
 * because a limit was hit (a user pattern's pcre2 match limit, the request's budget) under limited. */
#define GW_REDACT_MAX_PATTERNS 32
struct gw_redact_stats {
  uint32_t total;
  uint32_t deny;
  uint32_t limited;
  uint32_t kinds[GW_RK__COUNT + GW_REDACT_MAX_PATTERNS];
  uint32_t truncated; /* values cut to max_content_bytes */
};

/*
 * Redact one plain string value (UTF-8, len bytes) found under attribute key `key` (NULL/"" = no key).
 * Returns s itself when nothing changed, a new arena string when something was replaced, NULL when the
 * value must be dropped (a drop action matched, or the key is deny-listed) or when the arena is
 * exhausted (then gw_arena_exhausted(a) is true). A value that is JSON text is redacted string value by
 * string value and stays valid JSON. stats may be NULL. Thread-safe.
 */
const char *gw_redact_string(const struct gw_redactor *r, const char *key, const char *s, size_t len,
                             struct gw_arena *a, struct gw_redact_stats *stats);

/*
 * A memo for one request's redaction, in its arena (NULL when the arena is exhausted). Passed to the
 * calls below for the same request, it lets each distinct text be scanned once: the request's attribute,
 * the record's attributes JSON and its content column hold the same message texts. Results and counts
 * are exactly those without it. Valid while the arena is; the texts redacted must stay unchanged in the
 * arena meanwhile (redaction never writes into them). Every memo parameter below may be NULL.
 */
struct gw_redact_memo;
struct gw_redact_memo *gw_redact_memo_create(struct gw_arena *a);
/* JSON values the memo answered (each a walk not made): for tests and benchmarks. */
size_t gw_redact_memo_json_hits(const struct gw_redact_memo *m);

/*
 * Bound the work of the calls below that are given memo m (issue 12: one request's text must not decide how
 * long a receiver thread works). request_bytes is the request's size (decompressed); r's policy gives the
 * budgets (scan_factor, cpu_ms_per_mib). Past either budget, every later value is replaced whole by
 * "[REDACTION_LIMIT]" without being scanned (allow-listed keys are still left alone, deny-listed keys still
 * removed), counted in genai_gateway_redaction_limited_total{reason="scan|cpu"} and logged once per process.
 * stop (NULL: none) is polled between values and inside long scans (every 64 to 256 KiB read, and inside
 * user patterns' matches): a non-zero gw_rc ends the redaction, and the call returns that rc (the
 * request's deadline passed, its client is gone). m NULL: nothing is bounded.
 */
void gw_redact_memo_limit(struct gw_redact_memo *m, const struct gw_redactor *r, size_t request_bytes,
                          gw_rc (*stop)(void *arg), void *stop_arg);

/*
 * Redact a decoded request in place: every string attribute value (resource, scope, span, span event and
 * link attributes, recursively through arrays and kvlists), span and event names, span status messages,
 * scope names (key otel.scope.name) and versions (otel.scope.version), trace states (trace_state), schema
 * URLs (schema_url). Names cannot be removed: dropped, they read "[REDACTED]"; the other texts become "".
 * Deny-listed and drop-action attributes are removed from their arrays. Counts each redaction in the
 * redaction metric. Returns GW_ERR(TOO_LARGE) when the arena is exhausted, the rc of the memo's stop
 * function when it said stop (the request is then half redacted: never forward it), else OK.
 */
gw_rc gw_redact_request(const struct gw_redactor *r, GwTraceRequest *req, struct gw_arena *a,
                        struct gw_redact_memo *memo);
/* The same, marking in raw (decode.h, when not NULL) each span it rewrote, so that gw_pb_pack_spliced packs
 * it rather than copy the client's bytes. */
struct gw_pb_raw;
gw_rc gw_redact_request_raw(const struct gw_redactor *r, GwTraceRequest *req, struct gw_arena *a,
                            struct gw_redact_memo *memo, struct gw_pb_raw *raw);

/* The same for a logs request: resource, scope and log record attributes, scope names and versions,
 * schema URLs, each record's severity text (log.severity_text) and event name (event.name), and its body
 * (a string or kvlist body is redacted value by value; one whose whole value must be dropped is removed). */
gw_rc gw_redact_logs_request(const struct gw_redactor *r, GwLogsRequest *req, struct gw_arena *a,
                             struct gw_redact_memo *memo);

/*
 * Redact and truncate records in place (their strings are replaced by arena strings): prompt_content,
 * response_content (JSON: string values redacted and cut, structure kept), system_prompt, error_message,
 * span_name, scope_name, session_id, user_id, error_code, service_tier, parameters, attributes and resource
 * (JSON objects whose top-level keys are attribute keys), and the model/provider names unless allow-listed.
 * Each record field is looked up under the attribute key it comes from (user_id under user.id,
 * prompt_content under gen_ai.input.messages, ...), so allow/deny/key rules treat the record as they treat
 * the span.
 * With the memo gw_redact_request was given, a record's attributes JSON is rendered from the span attributes
 * that call redacted (the same bytes and counts as walking it; see redact_apply.c).
 * prompt_hash is left alone (computed before redaction). Sets redaction_count, redacted_kinds and
 * GW_FLAG_CONTENT_TRUNCATED. Does not count into the metric (gw_redact_request does, once per value
 * forwarded). Returns GW_ERR(TOO_LARGE) when the arena is exhausted, the stop rc (see gw_redact_request),
 * else OK.
 */
gw_rc gw_redact_records(const struct gw_redactor *r, struct gw_record *recs, size_t n, struct gw_arena *a,
                        struct gw_redact_memo *memo);

/* Redact trace facts in place (record.h): session_id and user_id exactly as a record's (under session.id
 * and user.id); a dropped one becomes NULL. Returns as gw_redact_records. */
gw_rc gw_redact_trace_facts(const struct gw_redactor *r, struct gw_trace_fact *facts, size_t n, struct gw_arena *a,
                            struct gw_redact_memo *memo);

/*
 * Redact GenAI events in place: content and text_content, looked up under the attribute key the same
 * content has on a span (gen_ai.input.messages, gen_ai.output.messages, gen_ai.system_instructions), so
 * the policy treats both paths alike; event_name as the log record's (event.name, never cut, "[REDACTED]"
 * when dropped). Sets redaction_count and redacted_kinds (when redaction is on). Kind
 * names point into the redactor (it outlives the events). Not counted in the metric (the request's
 * redaction counts). Content is cut like a record's (also with redaction off): the messages of one span
 * and direction in the request share one max_content_bytes budget over their long strings, as a span's
 * prompt_content does, and text_content is cut at max_content_bytes; cut strings end in "...[TRUNCATED]".
 * Returns GW_ERR(TOO_LARGE) when the arena is exhausted, the stop rc (see gw_redact_request), else OK.
 */
gw_rc gw_redact_events(const struct gw_redactor *r, struct gw_event *evs, size_t n, struct gw_arena *a,
                       struct gw_redact_memo *memo);

/* Tests and bench only: true makes gw_redact_records walk every record's attributes JSON as text, as it
 * did before it rendered them from the request pass's results (both must give the same). Not thread-safe. */
extern bool gw_redact_walk_attributes;

/* Metric counter for a kind name as rendered on /metrics (tests). */
int64_t gw_redact_metric_get(const char *kind);

struct gw_conf;
/* The redactor the configuration asks for (redaction.* keys; redact_conf.c). NULL with err filled
 * (GW_E_CONFIG, naming the key) on a bad action, a bad user pattern or hash without a key. */
struct gw_redactor *gw_redactor_from_conf(const struct gw_conf *c, struct gw_err *err);

#endif
