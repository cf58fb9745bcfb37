/*
 * record.h: the canonical interaction record (DESIGN §3, §6), one per GenAI span.
 *
 * Every field maps to one column of ai_interaction_traces, and GW_RECORD_FIELDS lists them in column
 * order with their type. That one table drives the spool codec (record.c), the Postgres COPY rendering
 * (store_pg.c) and the tests, so adding a column is adding one row here plus a migration.
 * Strings are NUL-terminated, valid UTF-8, owned by the request arena (or by the decoded batch on the
 * sink side); NULL means SQL NULL. Unknown values stay NULL: nothing is invented. The long texts (enum
 * gw_rtext) also carry their lengths on the receive line.
 */
#ifndef GW_RECORD_H
#define GW_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/gw.h"

struct gw_opt_i64 { int64_t v; bool set; };
struct gw_opt_f64 { double v; bool set; };
/* A tri-state boolean: -1 unknown (NULL), 0 false, 1 true. */
typedef int8_t gw_tribool;
struct gw_strv { const char **v; uint32_t n; };

/*
 * The record's long texts: the content and JSON columns, the ones normalize renders and redaction
 * rewrites. Each keeps its length beside it (gw_record.text_lens), set where the text is written
 * (gw_record_set_text), so redaction and the spool codec do not measure it again.
 */
enum gw_rtext {
  GW_RT_ERROR_MESSAGE,
  GW_RT_SYSTEM_PROMPT,
  GW_RT_PROMPT_CONTENT,
  GW_RT_RESPONSE_CONTENT,
  GW_RT_PARAMETERS,
  GW_RT_ATTRIBUTES,
  GW_RT_RESOURCE,
  GW_RT__COUNT
};
/* A length and the text it was measured for: it holds only while the field still points at s. */
struct gw_text_len { const char *s; size_t n; };

/* Enrichment flags: why a value is missing or was changed. Rendered as their names in enrichment_flags. */
#define GW_FLAGS(X)                                                                                    \
  X(TOKENS_MISSING, "tokens_missing")       /* a model call without token counts */                   \
  X(TOTAL_DERIVED, "total_derived")         /* total_tokens = input + output */                       \
  X(MODEL_MISSING, "model_missing")         /* a model operation without a model name */              \
  X(INVALID_UTF8, "invalid_utf8")           /* strings repaired at decode */                           \
  X(CONTENT_TRUNCATED, "content_truncated") /* a content field cut to the configured maximum */        \
  X(MODEL_UNPRICED, "model_unpriced")       /* no price entry for the model */                         \
  X(TOKENS_CONVERTED, "tokens_converted")   /* exclusive counts made inclusive */                      \
  X(BAD_ATTRIBUTE, "bad_attribute")         /* an attribute of the wrong type or unparsable JSON */     \
  X(TOKENS_OUT_OF_RANGE, "tokens_out_of_range") /* a token count < 0 or > GW_TOKENS_MAX: NULL, no cost */ \
  X(AGENT_INHERITED, "agent_inherited")     /* agent_name is the nearest ancestor's (also set by SQL) */ \
  X(WORKFLOW_INHERITED, "workflow_inherited") /* workflow_name likewise */

/* The largest token count one call is taken to have: the int columns' maximum, 2^31 - 1 (2.1 billion
 * tokens, thousands of times any model's context). A count outside [0, GW_TOKENS_MAX] is stored NULL
 * and flagged tokens_out_of_range, never clamped, and no cost is computed from the record. */
#define GW_TOKENS_MAX INT32_MAX

enum gw_flag {
#define GW_FLAG_ENUM(id, name) GW_FLAG_##id,
  GW_FLAGS(GW_FLAG_ENUM)
#undef GW_FLAG_ENUM
  GW_FLAG__COUNT
};
const char *gw_flag_name(enum gw_flag f);

struct gw_record {
  char trace_id[33];       /* 32 lowercase hex */
  char span_id[17];        /* 16 lowercase hex */
  char parent_span_id[17]; /* "" for a root span: stored as NULL */
  const char *trace_version; /* "v1" */
  const char *service_name, *scope_name, *span_name;
  const char *operation; /* chat, text_completion, embeddings, execute_tool, invoke_agent, ... */
  const char *provider, *request_model, *response_model;
  const char *model_id; /* the price entry matched, else response or request model */
  const char *session_id, *user_id;
  struct gw_opt_i64 input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    total_tokens; /* inclusive, as the OTel GenAI conventions define them; 0 .. GW_TOKENS_MAX */
  struct gw_opt_i64 input_cost_nusd, output_cost_nusd, total_cost_nusd; /* nano-USD, exact */
  const char *cost_source;                                                /* computed | reported | NULL */
  struct gw_opt_i64 reported_cost_nusd;
  const char *price_id;
  const char *dialect; /* semconv, semconv_deprecated, openllmetry, openinference, langfuse; NULL: no model */
  uint32_t flags;      /* bit i = enum gw_flag i */
  uint64_t start_ns, end_ns;
  struct gw_opt_f64 duration_ms, first_token_latency_ms;
  gw_tribool streaming;
  const char *status; /* ok | error | unset */
  const char *error_code, *error_message;
  struct gw_strv finish_reasons;
  const char *prompt_content;   /* JSON array, semconv gen_ai.input.messages shape */
  const char *system_prompt;    /* plain text */
  const char *response_content; /* JSON array, semconv gen_ai.output.messages shape */
  char prompt_hash[17];         /* "" when there is no prompt */
  bool prompt_chat;             /* normalize's own: the prompt holds more than two messages (a chat under way) */
  const char *parameters; /* JSON object text (jsonb) */
  const char *attributes; /* JSON object text: all span attributes */
  const char *resource;   /* JSON object text: resource attributes */
  struct gw_opt_i64 redaction_count;
  struct gw_strv redacted_kinds;
  /* Added by migrations/0006_agents.sql (spool format GWR2; GWR1 entries decode with these NULL). */
  const char *agent_name, *workflow_name; /* the span's own; the writer fills the rest from ancestors */
  const char *prompt_name, *prompt_version; /* the prompt template the call used */
  char prompt_simhash[65]; /* 64 '0'/'1' digits, most significant bit first (a bit(64) column); "" = none */
  /* Added by migrations/0010_span_links.sql (spool format GWR3; older entries decode with it empty): the
   * spans of this record's trace that arrived in the same request and are not stored (not GenAI), each
   * "<span id>:<parent span id>", on the first record of each trace of the request only. gw_fill_agents
   * walks them to reach an agent through spans that are not rows, whichever request brought each. */
  struct gw_strv span_links;

  /* Transient, request-scoped: not columns, not in gw_record_fields, not spooled (NULL after decode). */
  const char *service_tier; /* billed tier: openai.response.service_tier, else the requested one */
  /* The parts of a computed cost priced apart (nano-USD, each set when its token count is): cache reads
   * and writes (inside input_cost), reasoning (inside output_cost); put on the forwarded span as
   * genai_gateway.cost.{cache_read,cache_write,reasoning}_usd for backends with a per-type view. */
  struct gw_opt_i64 cache_read_cost_nusd, cache_write_cost_nusd, reasoning_cost_nusd;
  struct Opentelemetry__Proto__Trace__V1__Span *span; /* the span this record came from (GwSpan), so
                                                       * cost can annotate the forwarded copy */
  /* The span's attributes as normalize rendered them into `attributes` (GwKeyValue pointers, in order;
   * the span's own array is rewritten later by cost and redaction): redaction renders the attributes JSON
   * again from their redacted values instead of walking the JSON text (gw_redact_records). */
  struct Opentelemetry__Proto__Common__V1__KeyValue *const *attr_kvs;
  size_t n_attr_kvs;
  /* The long texts' lengths (enum gw_rtext), set by gw_record_set_text and read by gw_record_text_len.
   * A field assigned directly (tests, the sink side, short writers) keeps a stale or zero entry whose
   * pointer no longer matches, and is measured again: only a text changed in place could be misread,
   * and no stage changes a record's text in place (each rewrite is a new arena string). */
  struct gw_text_len text_lens[GW_RT__COUNT];
};

enum gw_field_type {
  GW_FT_CHARS,   /* char[] inside the struct; "" = NULL */
  GW_FT_TEXT,    /* const char * */
  GW_FT_JSON,    /* const char * holding JSON (jsonb column) */
  GW_FT_I64,     /* struct gw_opt_i64, an int (int4) column: the writer refuses values outside it */
  GW_FT_NUSD,    /* struct gw_opt_i64 in nano-USD, a numeric column in USD */
  GW_FT_F64,     /* struct gw_opt_f64 */
  GW_FT_TIME,    /* uint64_t ns since the epoch; 0 = NULL */
  GW_FT_BOOL,    /* gw_tribool */
  GW_FT_STRV,    /* struct gw_strv, a text[] column */
  GW_FT_FLAGS,   /* uint32_t flag bits, a text[] column of flag names */
};

struct gw_field {
  const char *column;
  enum gw_field_type type;
  size_t offset;
  size_t size;  /* for GW_FT_CHARS */
  uint8_t rtext; /* records' long texts: enum gw_rtext + 1, whose length gw_record_text_len gives; 0: none */
};

/* The record's columns in ai_interaction_traces order (created_at excluded: the database sets it). */
extern const struct gw_field gw_record_fields[];
extern const size_t gw_record_nfields;
/* The fields of spool formats GWR1 (before migrations/0006_agents.sql) and GWR2 (before
 * migrations/0010_span_links.sql): the table's first ones. */
extern const size_t gw_record_nfields_v1, gw_record_nfields_v2;

void gw_record_set_flag(struct gw_record *r, enum gw_flag f);
bool gw_record_has_flag(const struct gw_record *r, enum gw_flag f);

/*
 * The long texts. gw_record_set_text points the field t at s (NULL: SQL NULL) and keeps n, its length
 * (strlen(s), which the caller knows from building it; 0 for NULL): every writer of these fields on the
 * receive line goes through it, so one call updates both. gw_record_text_len gives the field's length:
 * the kept one when the field still points at the text it was kept for, else strlen (0 for NULL).
 * gw_record_text gives the field itself. Debug builds check a kept length against strlen.
 */
void gw_record_set_text(struct gw_record *r, enum gw_rtext t, const char *s, size_t n);
size_t gw_record_text_len(const struct gw_record *r, enum gw_rtext t);
const char *gw_record_text(const struct gw_record *r, enum gw_rtext t);

/*
 * Spool codec. A batch of records is encoded as: "GWR3", u32 count, then per record each field in table
 * order (a presence byte, then a u32 length + bytes / an i64 / a double / a u8). Little-endian.
 * gw_records_encode appends to out (arena string builder). gw_records_decode parses into an arena;
 * the returned strings point into the arena. Decoding validates every length against the buffer.
 */
gw_rc gw_records_encode(const struct gw_record *recs, size_t n, struct gw_sb *out);
gw_rc gw_records_decode(const void *buf, size_t len, struct gw_arena *a, struct gw_record **recs, size_t *n);

/*
 * A trace's session and user ids from a span that gives no record (DESIGN §3: "when any span of a trace
 * carries them ... whichever span arrives first"): an HTTP server span's enduser.id, a framework span's
 * session.id. The writer keeps them per trace (migrations/0012_trace_ids.sql) and fills them into the
 * trace's rows that lack them, stored before or after. Redacted as the records' session_id / user_id.
 */
struct gw_trace_fact {
  char trace_id[33];
  uint64_t start_ns;      /* the span's start: which partitions the fill looks at, and retention */
  const char *session_id; /* NULL: none */
  const char *user_id;
  char span_id[17]; /* the span that carried them (the first, when several of the request did): an exporter
                     * with genai_only keeps it, so a gateway after it learns them too */
};

extern const struct gw_field gw_trace_fact_fields[];
extern const size_t gw_trace_fact_nfields;

/* The facts after the records of a traces entry: gw_records_encode's output, then "GWT1", u32 count and
 * the facts as rows (nothing when n is 0). A reader that knows no facts stops after the records. */
gw_rc gw_trace_facts_encode(const struct gw_trace_fact *facts, size_t n, struct gw_sb *out);
/* The records, and the facts after them (none when the entry has none: written before they existed). */
gw_rc gw_records_decode_facts(const void *buf, size_t len, struct gw_arena *a, struct gw_record **recs, size_t *n,
                              struct gw_trace_fact **facts, size_t *nfacts);

/*
 * A GenAI event (DESIGN §3): one message of a gen_ai.* event that arrived as an OTLP log record (or any
 * other gen_ai.* event record), one row of ai_interaction_events. A content event may give several rows
 * (gen_ai.client.inference.operation.details carries whole message lists): seq tells them apart.
 * direction says which side of the interaction row the message fills: "input" (prompt_content; system
 * messages also give system_prompt), "output" (response_content), NULL (not content).
 */
struct gw_event {
  char trace_id[33], span_id[17];
  uint64_t time_ns;
  const char *event_name;
  struct gw_opt_i64 seq; /* always set: stable across re-sends of the same request */
  const char *role;
  const char *content;      /* one message as a semconv message JSON object; else the body as JSON */
  const char *attributes;   /* JSON object: the log record's attributes */
  struct gw_opt_i64 redaction_count;
  const char *direction;    /* input | output | NULL */
  const char *text_content; /* plain text of the message's text parts */
  char prompt_hash[17];     /* on the first input row of a span in a request: SHA-256/16 of that span's
                             * input messages of the request, before redaction (as prompt_content's) */
  struct gw_strv redacted_kinds;
  const char *service_name;
  char prompt_simhash[65];  /* beside prompt_hash: the SimHash of the text of the same messages, before
                             * redaction (as a row's); "" = none. Spool format GWE2; GWE1 decodes it "". */

  /* Transient, request-scoped: not spooled. */
  const struct Opentelemetry__Proto__Logs__V1__LogRecord *log; /* the record it came from */
};

extern const struct gw_field gw_event_fields[];
extern const size_t gw_event_nfields;
/* The fields of spool format GWE1 (before prompt_simhash): the table's first ones. */
extern const size_t gw_event_nfields_v1;

/* Spool codec for events, as for records with magic "GWE2" ("GWE1" is still read). */
gw_rc gw_events_encode(const struct gw_event *evs, size_t n, struct gw_sb *out);
gw_rc gw_events_decode(const void *buf, size_t len, struct gw_arena *a, struct gw_event **evs, size_t *n);

#endif
