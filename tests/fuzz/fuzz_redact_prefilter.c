/*
 * fuzz_redact_prefilter.c: the built-in detectors' candidate prefilter (redact/detectors.c) against the
 * straightforward scan. rd_next_candidate skips 16 bytes at a time with a block filter before rd_candidate
 * looks closer; a filter that missed a real start would lose a match silently. Checks, on any input:
 * - rd_next_candidate (its 32-byte AVX2 blocks and its 16-byte SSE2 ones) equals the position-by-position walk (rd_next_candidate_ref), from every start (along
 *   the candidates in texts over 512 bytes);
 * - redacting the text with the candidates and with the anchored pattern tried at every position
 *   (rd_every_position) gives the same output and the same counts.
 * Input: one selector byte (bits 0-1: the key the value sits under; bit 2: every detector hashing), then the
 * text, made valid UTF-8 first as decoding does for every string.
 */
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "fuzzutil.h"
#include "redact/redact_int.h"

static struct gw_redactor *red[2];

static void init(void)
{
  for (int i = 0; i < 2; i++) {
    struct gw_redact_policy p;
    struct gw_err err;
    gw_redact_policy_defaults(&p);
    p.hmac_key = "fuzz-hmac-key";
    for (int k = 0; k < GW_RK__COUNT && i; k++)
      p.actions[k] = GW_REDACT_HASH;
    if (!(red[i] = gw_redactor_create(&p, &err)))
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  static const char *const keys[] = {NULL, "aws_secret_access_key", "http.authorization", "gen_ai.prompt"};
  if (!red[0])
    init();
  if (size < 1)
    return 0;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  /* From every start in short texts; along the chain of candidates (each found one, plus one) in long ones. */
  for (size_t i = 0; i <= len;) {
    size_t ref = rd_next_candidate_ref(text, len, i);
    if (rd_next_candidate(text, len, i) != ref)
      abort(); /* the block filter missed a candidate, or made one up */
    rd_no_avx512 = true; /* the 32-byte blocks too, where the CPU runs the 64-byte steps */
    size_t avx2 = rd_next_candidate(text, len, i);
    rd_no_avx2 = true; /* and the 16-byte ones, where it runs the 32-byte ones */
    size_t sse2 = rd_next_candidate(text, len, i);
    rd_no_avx2 = rd_no_avx512 = false;
    if (avx2 != ref || sse2 != ref)
      abort();
    i = len <= 512 ? i + 1 : ref + 1;
  }
  struct gw_arena *a = gw_arena_create(64 << 20);
  char *in = gw_arena_alloc(a, size);
  bool fixed;
  if (!in)
    goto out;
  memcpy(in, text, len);
  in[len] = '\0';
  if (!(in = gw_utf8_fix(a, in, len, &fixed)))
    goto out;
  const struct gw_redactor *r = red[data[0] >> 2 & 1];
  const char *key = keys[data[0] & 3];
  struct gw_redact_stats s1, s2;
  memset(&s1, 0, sizeof s1);
  memset(&s2, 0, sizeof s2);
  const char *fast = gw_redact_string(r, key, in, strlen(in), a, &s1);
  rd_every_position = true;
  const char *every = gw_redact_string(r, key, in, strlen(in), a, &s2);
  rd_every_position = false;
  if (gw_arena_exhausted(a))
    goto out;
  if ((fast == NULL) != (every == NULL) || (fast && strcmp(fast, every)) || memcmp(&s1, &s2, sizeof s1))
    abort(); /* the candidates lost (or invented) a match the straightforward scan finds */
out:
  gw_arena_destroy(a);
  return 0;
}
