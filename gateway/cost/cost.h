/*
 * cost.h: the cost stage (DESIGN §4): after normalize, before redaction. Prices every interaction record
 * from a price table and stamps the forwarded span with the result.
 *
 * Price table: the shipped defaults (prices.yaml, GW_PRICES_DEFAULT_PATH) with an optional user file merged
 * over them: YAML in the same format, or LiteLLM's model_prices_and_context_window.json (chosen by the
 * .json extension or a leading '{'). Entries match the model name (response model, else request model)
 * by case-insensitive pcre2 pattern; `valid_from` prices a span at the price in force at its start.
 * Prices are held as integer pico-USD per token, costs as nano-USD; nothing is summed in floating point.
 * See docs/pricing.md for the format, the selection rule and the token semantics.
 */
#ifndef GW_COST_H
#define GW_COST_H

#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/gw.h"
#include "normalize/record.h"

#ifndef GW_PRICES_DEFAULT_PATH
#define GW_PRICES_DEFAULT_PATH "prices.yaml"
#endif

struct gw_prices;

/*
 * Load the default table (defaults_path; NULL = GW_PRICES_DEFAULT_PATH) and merge the user file over it
 * (user_path; NULL or "" = none). Merge: a user entry with the same id and valid_from as an earlier one
 * replaces it; any other entry is added. Every pattern is compiled (and JIT-compiled) here.
 * Returns NULL with err filled (code CONFIG) naming the file, line, key and reason:
 *   "<file>:<line>: models[2].pattern: bad pattern at offset 7: missing closing parenthesis"
 * The result is immutable apart from its internal lookup cache and may be shared by every thread.
 */
struct gw_prices *gw_prices_load(const char *defaults_path, const char *user_path, struct gw_err *err);
/* Free a table (NULL is fine). No thread may still be using it. */
void gw_prices_destroy(struct gw_prices *p);

/* Number of entries, and the table version of the file loaded last ("defaults-2026-11", or the user
 * file's `version:` / its file name). */
size_t gw_prices_count(const struct gw_prices *p);
const char *gw_prices_version(const struct gw_prices *p);

/*
 * The entry that prices `model` for a span starting at start_ns (0 = now: the latest entry in force)
 * with the given provider (may be NULL). Returns its canonical id and sets *price_id (when not NULL) to
 * "<id>@<valid_from>/<version>"; NULL when no entry applies. Strings live as long as the table.
 * Thread-safe; cached per (model, provider).
 */
const char *gw_prices_match(const struct gw_prices *p, const char *model, const char *provider, uint64_t start_ns,
                            const char **price_id);

/*
 * Price records in place (thread-safe; records belong to the caller's request). Per record with a model:
 * - priced: input_cost_nusd / output_cost_nusd (each set when its token count is), total = their sum,
 *   cost_source "computed", price_id, model_id = the entry's canonical id;
 * - no entry but a reported cost: total = reported_cost_nusd, cost_source "reported";
 * - neither: costs stay NULL, flag model_unpriced, metric genai_gateway_cost_unknown_total, one warn
 *   log line per distinct model name per table (bounded), never one per span.
 * A model with no token counts gets no computed cost (never a made-up zero), nor does a record flagged
 * tokens_out_of_range (a count it reported was dropped; a reported cost still stands in). Records without a model
 * only take a reported cost. reported_cost_nusd is never changed. p NULL: reported costs only.
 */
void gw_cost_apply(const struct gw_prices *p, struct gw_record *recs, size_t n);

/*
 * Add the cost attributes to the span of every costed record (record.span, set by normalize):
 * genai_gateway.cost.total_usd / .input_usd / .output_usd (doubles, USD, each when known),
 * genai_gateway.cost.price_id (computed only) and genai_gateway.cost.source; and gen_ai.usage.cost
 * (the total) unless the span already carries it: a client's value is never overwritten.
 * Allocates in the arena; NOMEM/TOO_LARGE when it is exhausted (spans are then left unchanged or with
 * their attributes complete: an attribute array is swapped in only when fully built).
 */
gw_rc gw_cost_annotate_spans(struct gw_arena *a, struct gw_record *recs, size_t n);

/* Number of "unknown model" log lines this table has written (for tests and /metrics debugging). */
uint64_t gw_prices_unknown_logged(const struct gw_prices *p);

#endif
