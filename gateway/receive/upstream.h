/*
 * upstream.h: what one gateway tells the next when it forwards (a sidecar in forward mode -> the tier,
 * README "Fleet topology"). The forwarded spans are already priced and redacted; the next gateway prices
 * and redacts them again (its own table and policy win), which is harmless: the same price gives the
 * same cost, and redaction does not match its own mask and hash tokens. What the next gateway cannot
 * rebuild from redacted spans travels as span attributes (the genai_gateway.* keys, which redaction
 * always allows):
 *   genai_gateway.cost.*             cost.c: the cost stamp; cost.reported_usd is what the client
 *                                    reported (the upstream added gen_ai.usage.cost when it had not)
 *   genai_gateway.prompt_hash        taken before redaction, which the next gateway cannot do
 *   genai_gateway.prompt_simhash     the same for the SimHash (64 '0'/'1' digits, as the column)
 *   genai_gateway.redaction.count    values the upstream redacted
 *   genai_gateway.redaction.kinds    their kinds (string array)
 *   genai_gateway.span_links         the record's span_links (string array, record.h): the request's spans
 *                                    that are not stored, which the next gateway does not see when the
 *                                    forwarder sends GenAI spans only (genai_only)
 * Log records carrying GenAI events get the same prompt_hash, prompt_simhash and redaction stamps, for
 * their rows of ai_interaction_events: the hashes on the record holding the first input message of its
 * span (a prompt that came only in log records gets the same values as on a span), the count
 * and kinds summed over the record's rows (the next gateway adds them to the record's first row; exact
 * for the one message per record the OTel instrumentations send).
 * A client can set these keys on its own spans too; they only change that client's own rows.
 */
#ifndef GW_UPSTREAM_H
#define GW_UPSTREAM_H

#include <stddef.h>

#include "core/arena.h"
#include "normalize/record.h"

/*
 * After redaction: take what an upstream gateway stamped on each record's span: its prompt_hash replaces
 * ours (ours is over redacted text), its redaction count and kinds and its span links are added to ours.
 * Allocates from a; GW_ERR(TOO_LARGE) when the arena is exhausted.
 */
gw_rc gw_upstream_merge(struct gw_arena *a, struct gw_record *recs, size_t n);

/*
 * After redaction and merge: stamp each record's span with prompt_hash, the redaction count and kinds and the
 * span links
 * (replacing earlier stamps), for a downstream gateway. GW_ERR(TOO_LARGE) when the arena is exhausted.
 */
gw_rc gw_upstream_stamp(struct gw_arena *a, struct gw_record *recs, size_t n);

/* The same for GenAI events: a request whose log records carry a prompt_hash or prompt_simhash stamp
 * takes both from the stamps alone, and each record's stamped redactions are added to its first row. */
gw_rc gw_upstream_merge_events(struct gw_arena *a, struct gw_event *ev, size_t n);

/* Stamp each log record that gave events with its rows' prompt_hash, prompt_simhash and redactions. */
gw_rc gw_upstream_stamp_logs(struct gw_arena *a, const struct gw_event *ev, size_t n);

#endif
