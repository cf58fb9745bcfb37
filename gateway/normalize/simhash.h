/*
 * simhash.h: a 64-bit SimHash of prompt text, for near-duplicate prompts (issue 16, item 4).
 *
 * Two texts that share most of their words get hashes that differ in few bits; unrelated texts differ in
 * about 32 of 64. Stored beside prompt_hash (exact) as prompt_simhash bit(64), so SQL finds near-duplicates
 * with bit_count(a # b) <= k. Like prompt_hash it is taken before redaction, and 64 bits of a sum of word
 * hashes cannot be turned back into the text.
 *
 * The algorithm, fixed (a stored hash must mean the same thing on every gateway and after every upgrade):
 * - Normalization and tokens: the text's bytes; ASCII letters are lowercased; a token is a maximal run of
 *   ASCII letters and digits and of bytes >= 0x80 (so a UTF-8 word stays one token; no Unicode case
 *   folding); every other byte (spaces, punctuation, control characters) separates tokens. Tokens are cut
 *   to their first 64 bytes.
 * - Features: every token (unigram) and every pair of adjacent tokens (bigram, hashed as "a b"), each
 *   occurrence with weight 1 (so a repeated word counts as often as it appears).
 * - Feature hash: 64-bit FNV-1a over the feature's bytes, then the MurmurHash3 fmix64 finalizer (FNV-1a
 *   alone mixes its high bits poorly for short words). Byte-wise, so the same on every platform.
 * - Bits: for each of the 64 bit positions, add the weight when the feature hash has that bit set and
 *   subtract it otherwise; bit i of the SimHash is set when the sum is > 0.
 * A text without any token has no SimHash.
 */
#ifndef GW_SIMHASH_H
#define GW_SIMHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The SimHash of text[0, n); false (and *out untouched) when the text has no token. */
bool gw_simhash(const char *text, size_t n, uint64_t *out);

/*
 * A text made of parts joined by '\n' (normalize's input messages) hashed part by part, so that a part met
 * again (the system prompt and every earlier turn that each call of a conversation resends) is tokenized
 * and hashed once per request rather than once per call. The features of the whole are those of its parts
 * plus, where parts meet, the bigram of the last token of one part with tokens and the first token of the
 * next ('\n' separates tokens, a part without tokens joins nothing), so the join gives gw_simhash's value
 * of the joined text exactly.
 */
struct gw_simhash_part {
  uint32_t cnt[64];       /* features with bit b set, for each b */
  uint64_t n;             /* features */
  uint64_t last_bi;       /* the FNV-1a state of "<last token> ": where a bigram with the next part starts */
  unsigned char first[64]; /* the first token as hashed (lowercased, cut to 64 bytes) */
  uint8_t first_len;
  bool any; /* the part has a token (else everything above is unset) */
};
/* The part text[0, n); false (p->any false) when it has no token. */
bool gw_simhash_part(const char *text, size_t n, struct gw_simhash_part *p);

struct gw_simhash_join {
  uint32_t cnt[64];
  uint64_t n, last_bi;
  bool any;
};
void gw_simhash_join_init(struct gw_simhash_join *j);
/* The next part of the text (in order). */
void gw_simhash_join_add(struct gw_simhash_join *j, const struct gw_simhash_part *p);
/* The SimHash of the parts joined by '\n'; false (and *out untouched) when none had a token. */
bool gw_simhash_join_end(const struct gw_simhash_join *j, uint64_t *out);

/* Tests: the portable path even where the CPU has AVX-512 (both give the same hashes). */
extern bool gw_simhash_no_avx512;

/* h as 64 '0'/'1' characters, most significant bit first, NUL-terminated: the text form of bit(64). */
void gw_simhash_bits(uint64_t h, char out[65]);

/* The inverse of gw_simhash_bits; false unless s is exactly 64 '0'/'1' characters. */
bool gw_simhash_parse_bits(const char *s, uint64_t *out);

#endif
