/*
 * normalize.h: GenAI spans into canonical interaction records (DESIGN §3).
 *
 * A span is a GenAI span when it carries any gen_ai.*, llm.*, embedding.*, openinference.span.kind,
 * traceloop.span.kind or langfuse.observation.* attribute. One record per such span; other spans are
 * kept for forwarding only. Precedence is per field: langfuse.* overrides, then current OTel semconv,
 * deprecated semconv, OpenLLMetry-specific keys, OpenInference. Span attributes win over span events.
 * Each span's attributes are read in one pass (a key table maps each known key to a slot), so the cost
 * per span does not grow with the number of dialects.
 * Everything the records point to lives in the arena. Thread-safe after gw_normalize_init.
 */
#ifndef GW_NORMALIZE_H
#define GW_NORMALIZE_H

#include "core/arena.h"
#include "core/gw.h"
#include "normalize/record.h"
#include "pb.h"

/* Build the process-wide key table. Call once at start, before any thread normalizes. Idempotent. */
void gw_normalize_init(void);

struct gw_hist_cache;
struct gw_decode_repaired;

struct gw_normalize_opts {
  size_t max_content_bytes; /* reserved for truncation (redaction issue); 0 = no limit */
  /* Accepted start times (DESIGN §6): spans starting before min_start_ns (the retention window) or after
   * max_start_ns (more than a day ahead) are rejected like spans with bad ids. 0 = no bound. */
  uint64_t min_start_ns, max_start_ns;
  struct gw_hist_cache *history_cache; /* chat history kept between requests (below); NULL: none */
  /* The spans decode repaired a string of (decode.h; their records get invalid_utf8); NULL: none. Sorted
   * here. */
  struct gw_decode_repaired *repaired;
};

/*
 * Chat history kept between requests (history_cache.c): a chat's calls each resend the system prompt and
 * every earlier turn, usually in separate requests. Two kinds of entry, each with its text (compared
 * exactly on a hit), within max_bytes in all (tables included), least recently used ones making room:
 * - the SimHash part of each input message of NZ_SH_MEMO_MIN bytes or more that will be resent (all but
 *   the last, and the last too once the input holds more than two messages: a chat under way);
 * - for the prompt of a chat under way, its prefix up to the last SHA-256 checkpoint before its closing
 *   ']' and the state there, where the next call's prompt_hash resumes.
 * Thread-safe. create: NULL when max_bytes is 0 or too small to hold anything, or on no memory. clear:
 * empties it (tests, benchmarks).
 */
struct gw_hist_cache *gw_hist_cache_create(size_t max_bytes);
void gw_hist_cache_destroy(struct gw_hist_cache *c);
void gw_hist_cache_clear(struct gw_hist_cache *c);
struct gw_hist_cache_stats {
  uint64_t hits, misses;               /* SimHash parts: look-ups that found one, that did not */
  uint64_t prefix_hits, prefix_misses; /* prompts looked up: resumed from a kept prefix, not */
  uint64_t evictions;                  /* entries dropped for room */
  uint64_t compares;                   /* texts compared in look-ups and puts (tests) */
  size_t entries, prefixes;            /* SimHash parts and prompt prefixes held */
  size_t bytes, max_bytes;             /* now held (tables included), the bound */
};
void gw_hist_cache_stats(struct gw_hist_cache *c, struct gw_hist_cache_stats *st); /* zeros for NULL */
/* Its /metrics lines (a gw_metrics_render_fn; ctx: the cache): genai_gateway_history_cache_lookups_total
 * {kind="simhash"|"prompt_hash",result="hit"|"miss"}, _entries{kind}, _evictions_total, _bytes. */
struct gw_sb;
void gw_hist_cache_render(struct gw_sb *out, void *ctx);

/* The storable window (DESIGN §6) at now_ns: from retention_days before now to a day ahead. Saturating:
 * a window reaching back past 1970 starts at 1 ns (0 is a span without a start time, never storable), and
 * one reaching past 2554 ends at the last ns uint64 holds. */
struct gw_normalize_opts gw_normalize_window(uint64_t now_ns, uint32_t retention_days);

/* Per-request outcome of validation: spans that cannot be accepted are counted, not recorded. */
struct gw_normalize_result {
  struct gw_record *records; /* arena array */
  size_t nrecords;
  uint32_t nspans;      /* spans seen */
  uint32_t nrejected;   /* spans rejected (bad ids, ...) */
  char reject_msg[256]; /* first rejection reason, for partial_success.error_message */
  bool has_genai;
  /* Session and user ids of spans that gave no record (record.h, struct gw_trace_fact): arena array, one
   * per trace and pair of ids met in this request. */
  struct gw_trace_fact *facts;
  size_t nfacts;
};

/*
 * Normalize every span of req (opts may be NULL). Spans with an invalid trace_id/span_id (wrong length or
 * all zero) or a start time outside opts' window are rejected: counted in nrejected, described in reject_msg, and removed from req (so the re-encoded
 * request forwarded to exporters holds only accepted spans). Returns NOMEM/TOO_LARGE when the arena is
 * exhausted, else OK.
 */
/*
 * Exact decimal text ("0.0075", "2.5e-06", "+3") as an integer count of 10^-scale units: "0.0075" at
 * scale 9 is 7500000. No sign other than '+', no spaces. GW_DEC_EXACT fails when digits would be lost,
 * GW_DEC_ROUND rounds half up. False on bad syntax or a result above 1e18. Thread-safe, no allocation.
 */
enum gw_dec_mode { GW_DEC_EXACT, GW_DEC_ROUND };
bool gw_decimal_parse(const char *s, size_t n, unsigned scale, enum gw_dec_mode mode, int64_t *out);

/* Key/values as a record's attributes/resource JSON object (keyless ones left out), exactly as normalize
 * writes them; NULL when the arena is exhausted. *len (when len is not NULL): its strlen. */
char *gw_render_attributes(struct gw_arena *a, GwKeyValue *const *kv, size_t n, size_t *len);

gw_rc gw_normalize_traces(GwTraceRequest *req, struct gw_arena *a, const struct gw_normalize_opts *opts,
                          struct gw_normalize_result *res, struct gw_err *err);

#endif
