/* test_simhash.c: the SimHash of prompt text (gateway/normalize/simhash.h): near-duplicates land close,
 * unrelated texts far, and the values are fixed (the same on every platform and in every release, since
 * stored hashes are compared with new ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>

#include "normalize/simhash.h"

static uint64_t sh(const char *s)
{
  uint64_t h = 0;
  assert_true(gw_simhash(s, strlen(s), &h));
  return h;
}

static int dist(const char *a, const char *b) { return __builtin_popcountll(sh(a) ^ sh(b)); }

static const char *BASE = "You are a helpful travel assistant. Find me a flight from Paris to Tokyo next Tuesday, "
                          "economy class, with at most one stop, and list the three cheapest options with their "
                          "departure times and total prices in euros.";

/* Texts that differ by a word or two, by case, spacing or punctuation, are within a few bits. */
static void test_near_duplicates_close(void **st)
{
  (void)st;
  const char *variants[] = {
    /* one word changed */
    "You are a helpful travel assistant. Find me a flight from Paris to Tokyo next Wednesday, economy class, with "
    "at most one stop, and list the three cheapest options with their departure times and total prices in euros.",
    /* case, spacing and punctuation only: the same tokens, the same hash */
    "you are a helpful travel assistant   find me a flight from paris to tokyo next tuesday economy class with at "
    "most one stop and list the three cheapest options with their departure times and total prices in euros",
    /* two words changed */
    "You are a helpful travel assistant. Find me a flight from Paris to Osaka next Tuesday, economy class, with "
    "at most one stop, and list the five cheapest options with their departure times and total prices in euros.",
  };
  assert_int_equal(dist(BASE, variants[1]), 0);
  for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
    int d = dist(BASE, variants[i]);
    print_message("near-duplicate %zu: %d bits\n", i, d);
    assert_true(d <= 12);
  }
}

/* Unrelated texts differ in about half of the 64 bits. */
static void test_unrelated_far(void **st)
{
  (void)st;
  const char *others[] = {
    "Summarize the attached quarterly earnings report for the board, highlighting revenue growth, operating "
    "margin and the outlook for the next fiscal year.",
    "Write a Python function that parses an ISO-8601 timestamp and returns the number of seconds since the "
    "Unix epoch, handling time zone offsets.",
    "Translate the following customer complaint into German and classify its sentiment as positive, neutral or "
    "negative.",
    "hello",
  };
  for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
    int d = dist(BASE, others[i]);
    print_message("unrelated %zu: %d bits\n", i, d);
    assert_true(d >= 20);
  }
  for (size_t i = 0; i < 3; i++)
    for (size_t j = i + 1; j < 3; j++)
      assert_true(dist(others[i], others[j]) >= 20);
}

/* The algorithm is fixed: these values were computed once and must never change (a change would make
 * every stored prompt_simhash incomparable with new ones). Byte-wise, so no platform dependence. */
static void test_stable_values(void **st)
{
  (void)st;
  char bits[65];
  assert_int_equal(sh("hello"), 0xe9c562c0fdb23244ull);
  assert_int_equal(sh("HELLO!"), 0xe9c562c0fdb23244ull);
  assert_int_equal(sh("You are a helpful travel assistant."), 0x623635054daecb51ull);
  assert_int_equal(sh("a b c"), 0x62cb2078dacac312ull);
  gw_simhash_bits(sh("hello"), bits);
  assert_int_equal(strlen(bits), 64);
  uint64_t back = 0;
  assert_true(gw_simhash_parse_bits(bits, &back));
  assert_int_equal(back, sh("hello"));
}

/* No token, no hash; bad bit strings are refused; long tokens and non-ASCII text are fine. */
static void test_edges(void **st)
{
  (void)st;
  uint64_t h = 7;
  assert_false(gw_simhash("", 0, &h));
  assert_false(gw_simhash(" \t\n.,;!?", 8, &h));
  assert_int_equal(h, 7);
  assert_true(gw_simhash("héllo wörld", strlen("héllo wörld"), &h));
  assert_int_not_equal(sh("héllo wörld"), sh("hello world"));
  char longtok[300];
  memset(longtok, 'a', sizeof longtok - 1);
  longtok[sizeof longtok - 1] = 0;
  char longtok2[300];
  memcpy(longtok2, longtok, sizeof longtok);
  longtok2[200] = 'b'; /* past the 64 bytes a token keeps */
  assert_int_equal(sh(longtok), sh(longtok2));
  assert_false(gw_simhash_parse_bits("0101", &h));
  char bad[65];
  memset(bad, '0', 64);
  bad[64] = 0;
  bad[10] = '2';
  assert_false(gw_simhash_parse_bits(bad, &h));
  assert_false(gw_simhash_parse_bits(NULL, &h));
  char bits[65];
  gw_simhash_bits(0x8000000000000001ull, bits);
  assert_string_equal(bits, "1000000000000000000000000000000000000000000000000000000000000001");
}

/* The algorithm as simhash.h states it, step by step: tokens collected first, each feature hashed from its
 * own bytes, 64 signed sums. gw_simhash computes the same thing incrementally; this checks they agree. */
static uint64_t ref_fnv(uint64_t h, const unsigned char *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t ref_fmix(uint64_t k)
{
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

static void ref_add(int64_t sum[64], const unsigned char *f, size_t n)
{
  uint64_t h = ref_fmix(ref_fnv(0xcbf29ce484222325ull, f, n));
  for (int b = 0; b < 64; b++)
    sum[b] += (h >> b & 1u) ? 1 : -1;
}

static bool ref_simhash(const unsigned char *t, size_t n, uint64_t *out)
{
  int64_t sum[64] = {0};
  unsigned char prev[64], cur[64], pair[129];
  size_t prevn = 0, curn = 0, i = 0;
  bool have_prev = false;
  while (i < n) {
    curn = 0;
    size_t len = 0;
    for (; i < n; i++) {
      unsigned char c = t[i];
      if (c >= 'A' && c <= 'Z')
        c = (unsigned char)(c + 32);
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80))
        break;
      if (len < 64)
        cur[curn++] = c;
      len++;
    }
    i++;
    if (!len)
      continue;
    ref_add(sum, cur, curn);
    if (have_prev) {
      memcpy(pair, prev, prevn);
      pair[prevn] = ' ';
      memcpy(pair + prevn + 1, cur, curn);
      ref_add(sum, pair, prevn + 1 + curn);
    }
    memcpy(prev, cur, curn);
    prevn = curn;
    have_prev = true;
  }
  if (!have_prev)
    return false;
  uint64_t h = 0;
  for (int b = 0; b < 64; b++)
    if (sum[b] > 0)
      h |= 1ull << b;
  *out = h;
  return true;
}

/* Random texts over an alphabet that hits every case of the tokenizer (upper case, digits, UTF-8 bytes,
 * separators, tokens longer than 64 bytes), and one text with 300 000 features, all equal to the reference. */
static void test_matches_definition(void **st)
{
  (void)st;
  static const char alphabet[] = "aaaabbbcdeE Z09  .,\n\t\xc3\xa9\xff-";
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  static unsigned char text[20000];
  for (int round = 0; round < 2000; round++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    size_t n = (size_t)(seed >> 33) % (round < 1000 ? 64 : sizeof text);
    for (size_t i = 0; i < n; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      unsigned r = (unsigned)(seed >> 40);
      text[i] = (unsigned char)alphabet[r % (sizeof alphabet - 1)];
      /* now and then a run of 70 to 140 letters, so tokens pass the 64-byte cut */
      if ((r & 0xff) == 0)
        for (size_t k = 70 + (r >> 8) % 71; k && i + 1 < n; k--)
          text[++i] = (unsigned char)('k' + k % 3);
    }
    uint64_t want = 1, got = 2;
    bool w = ref_simhash(text, n, &want), g = gw_simhash((const char *)text, n, &got);
    assert_int_equal(w, g);
    if (w)
      assert_int_equal(want, got);
  }
  /* every count of features from 1 to 129, so each place in a block of 16 features ends the text, and
   * texts whose count of features is exactly on a block */
  for (int words = 1; words <= 65; words++) {
    size_t tn = 0;
    for (int w = 0; w < words; w++)
      tn += (size_t)snprintf((char *)text + tn, sizeof text - tn, "%sw%dx%d", w ? " " : "", w, w * 7 % 5);
    uint64_t want = 1, got = 2;
    assert_true(ref_simhash(text, tn, &want));
    assert_true(gw_simhash((const char *)text, tn, &got));
    assert_int_equal(want, got);
  }
  size_t n = 0;
  static unsigned char big[150000 * 4];
  for (unsigned i = 0; n + 4 <= sizeof big; i++) {
    big[n++] = (unsigned char)('a' + i % 7);
    big[n++] = (unsigned char)('a' + i % 13);
    big[n++] = (unsigned char)('a' + i % 3);
    big[n++] = ' ';
  }
  uint64_t want = 1, got = 2;
  assert_true(ref_simhash(big, n, &want));
  assert_true(gw_simhash((const char *)big, n, &got));
  assert_int_equal(want, got);
}

static void same_as_definition(const unsigned char *t, size_t n, const char *what, size_t a, size_t b)
{
  uint64_t want = 1, got = 2;
  bool w = ref_simhash(t, n, &want), g = gw_simhash((const char *)t, n, &got);
  if (w != g || (w && want != got))
    fail_msg("%s (%zu, %zu), %zu bytes: %d %016llx, want %d %016llx", what, a, b, n, g, (unsigned long long)got, w,
             (unsigned long long)want);
}

/* The edges of the tokenizer and of the final count, each against the definition: the empty text and
 * every single byte; every byte value at every offset of texts of every length up to 33 (the end of the
 * text inside a token and after a separator); tokens of every length from 1 to 140 (the 64-byte cut),
 * alone, at the start, at the end and between others; runs of separators only; and texts of 1 to 4 100
 * words over two or three words, so that many of the 64 counts sit right next to half the features at
 * every size of the counters (the comparison with n / 2 over all of their levels). */
static void test_matches_definition_edges(void **st)
{
  (void)st;
  static unsigned char t[40000];
  same_as_definition(t, 0, "empty", 0, 0);
  for (unsigned c = 0; c < 256; c++) {
    t[0] = (unsigned char)c;
    same_as_definition(t, 1, "one byte", c, 0);
  }
  static const unsigned char fill[] = "ab C9\xc3\xa9.x";
  for (size_t n = 1; n <= 33; n++)
    for (size_t pos = 0; pos < n; pos++)
      for (unsigned c = 0; c < 256; c++) {
        for (size_t i = 0; i < n; i++)
          t[i] = fill[(i * 5 + n) % (sizeof fill - 1)];
        t[pos] = (unsigned char)c;
        same_as_definition(t, n, "byte at offset", c, pos);
      }
  for (size_t len = 1; len <= 140; len++)
    for (int where = 0; where < 4; where++) {
      size_t n = 0;
      if (where == 2 || where == 3)
        n += (size_t)sprintf((char *)t, "one, two ");
      for (size_t i = 0; i < len; i++)
        t[n++] = (unsigned char)(i % 3 == 0 ? 'Q' : i % 3 == 1 ? '7' : 0xc3);
      if (where == 1 || where == 3)
        n += (size_t)sprintf((char *)t + n, " three");
      same_as_definition(t, n, "token length", len, (size_t)where);
    }
  for (size_t n = 0; n <= 70; n++) {
    for (size_t i = 0; i < n; i++)
      t[i] = (unsigned char)(" \t\n.,;!?-_/\x01\x7f"[i % 13]);
    uint64_t h = 7;
    assert_false(gw_simhash((const char *)t, n, &h));
    assert_int_equal(h, 7);
  }
  static const char *const words[] = {"alpha", "beta", "gamma"};
  for (size_t m = 1; m <= 4100; m = m < 80 ? m + 1 : m * 2 - 1 + (m & 1)) {
    for (size_t kinds = 2; kinds <= 3; kinds++) {
      size_t n = 0;
      for (size_t i = 0; i < m && n + 8 < sizeof t; i++)
        n += (size_t)sprintf((char *)t + n, "%s ", words[(i * i + i / 3) % kinds]);
      same_as_definition(t, n, "repeated words", m, kinds);
    }
  }
}

/* gw_simhash_bits against the bit-at-a-time definition: every single bit, every nibble value in every
 * position, and random words; each string parses back to its value. */
static void test_bits_every_position(void **st)
{
  (void)st;
  uint64_t vals[64 + 16 * 16 + 2000 + 2];
  size_t nv = 0;
  for (int b = 0; b < 64; b++)
    vals[nv++] = 1ull << b;
  for (int pos = 0; pos < 16; pos++)
    for (uint64_t x = 0; x < 16; x++)
      vals[nv++] = x << (4 * pos) | (pos & 1 ? 0x8000000000000000ull : 0);
  uint64_t seed = 0x2545f4914f6cdd1dull;
  for (int i = 0; i < 2000; i++) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    vals[nv++] = seed ^ seed >> 29;
  }
  vals[nv++] = 0;
  vals[nv++] = ~0ull;
  for (size_t i = 0; i < nv; i++) {
    char want[65], got[66];
    for (int b = 0; b < 64; b++)
      want[b] = (vals[i] >> (63 - b) & 1u) ? '1' : '0';
    want[64] = 0;
    memset(got, 'x', sizeof got);
    gw_simhash_bits(vals[i], got);
    assert_string_equal(got, want);
    assert_int_equal(got[65], 'x'); /* nothing written past the NUL */
    uint64_t back = 1;
    assert_true(gw_simhash_parse_bits(got, &back));
    assert_int_equal(back, vals[i]);
  }
}

/* Texts that end where readable memory ends (the next page is inaccessible): the 8-bytes-a-lane reads of
 * the AVX-512 path must stay inside the text (a gather is not checked by the sanitizers, the fault is), and
 * every length and token layout at the end still hashes as the definition says. */
static void test_text_at_page_end(void **st)
{
  (void)st;
  long page = sysconf(_SC_PAGESIZE);
  unsigned char *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  assert_true(m != MAP_FAILED);
  assert_int_equal(mprotect(m + page, (size_t)page, PROT_NONE), 0);
  static const char alphabet[] = "abcXYZ019 .\xc3\xa9-";
  uint64_t seed = 0x853c49e6748fea9bull;
  for (size_t n = 1; n <= 300; n++)
    for (int round = 0; round < 20; round++) {
      unsigned char *t = m + page - n;
      for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(seed >> 40);
        /* round 0: one token filling the text; 1: a separator first; others: random, sparser spaces */
        t[i] = round == 0 ? (unsigned char)('a' + i % 26)
               : round == 1 && i == 0 ? ' '
                                      : (unsigned char)alphabet[r % (sizeof alphabet - 1 - (round & 1) * 3)];
      }
      if (round >= 14) { /* tokens of 15 to 70 bytes (eight of them span more than 128 bytes), a short last one */
        for (size_t i = 0, next = 15 + (size_t)(seed >> 50) % 56; i < n; i++) {
          if (i == next || i + 1 + (size_t)(round - 14) == n) {
            t[i] = ' ';
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            next = i + 16 + (size_t)(seed >> 50) % 56;
          } else if (t[i] == ' ' || t[i] == '.' || t[i] == '-')
            t[i] = 'q';
        }
      }
      same_as_definition(t, n, "text ending at a page end", n, (size_t)round);
    }
  munmap(m, (size_t)page * 2);
}

/* Texts cut at their '\n's and hashed part by part (gw_simhash_part, joined) give the SimHash of the whole
 * text, on both paths: parts without tokens, a part that is one token, tokens past the 64-byte cut on
 * either side of a cut, and the 64 counts near half the features (the join's own comparison). */
static void test_parts_join(void **st)
{
  (void)st;
  static const char alphabet[] = "aaabbcdE Z09 .,\n\n\n\t\xc3\xa9-";
  uint64_t seed = 0x2545f4914f6cdd1dull;
  static unsigned char text[6000];
  for (int path = 0; path < 2; path++) {
    gw_simhash_no_avx512 = path == 1;
    for (int round = 0; round < 3000; round++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      size_t n = (size_t)(seed >> 33) % (round < 1500 ? 80 : sizeof text);
      for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        unsigned r = (unsigned)(seed >> 40);
        text[i] = (unsigned char)alphabet[r % (sizeof alphabet - 1)];
        if ((r & 0x7f) == 0) /* a token of 60 to 140 bytes, often across a cut */
          for (size_t k = 60 + (r >> 8) % 81; k && i + 1 < n; k--)
            text[++i] = (unsigned char)('k' + k % 3);
      }
      uint64_t want = 1, got = 2, ref = 3;
      bool w = gw_simhash((const char *)text, n, &want);
      assert_int_equal(w, ref_simhash(text, n, &ref));
      if (w)
        assert_int_equal(want, ref);
      struct gw_simhash_join j;
      gw_simhash_join_init(&j);
      size_t from = 0, parts = 0;
      for (size_t i = 0; i <= n; i++)
        if (i == n || text[i] == '\n') {
          struct gw_simhash_part part;
          memset(&part, 0xa5, sizeof part); /* nothing read that the call did not set */
          bool any = gw_simhash_part((const char *)text + from, i - from, &part);
          assert_int_equal(any, part.any);
          gw_simhash_join_add(&j, &part);
          from = i + 1;
          parts++;
        }
      bool g = gw_simhash_join_end(&j, &got);
      if (g != w || (w && got != want))
        fail_msg("path %d round %d: %zu bytes in %zu parts: join %d %016llx, whole %d %016llx", path, round, n, parts,
                 g, (unsigned long long)got, w, (unsigned long long)want);
    }
    struct gw_simhash_part none;
    assert_false(gw_simhash_part(NULL, 0, &none)); /* an empty part may come without text */
    assert_false(none.any);
    /* many short parts of two or three words: counts near half the features */
    size_t tn = 0;
    for (int w = 0; w < 900 && tn + 16 < sizeof text; w++)
      tn += (size_t)snprintf((char *)text + tn, sizeof text - tn, "%s%s", w ? (w % 3 ? " " : "\n") : "",
                             w % 2 ? "ab" : "cd");
    struct gw_simhash_join j;
    gw_simhash_join_init(&j);
    size_t from = 0;
    for (size_t i = 0; i <= tn; i++)
      if (i == tn || text[i] == '\n') {
        struct gw_simhash_part part;
        gw_simhash_part((const char *)text + from, i - from, &part);
        gw_simhash_join_add(&j, &part);
        from = i + 1;
      }
    uint64_t want = 1, got = 2;
    assert_true(gw_simhash((const char *)text, tn, &want));
    assert_true(gw_simhash_join_end(&j, &got));
    assert_int_equal(want, got);
  }
  gw_simhash_no_avx512 = false;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_near_duplicates_close),
    cmocka_unit_test(test_unrelated_far),
    cmocka_unit_test(test_stable_values),
    cmocka_unit_test(test_edges),
    cmocka_unit_test(test_matches_definition),
    cmocka_unit_test(test_matches_definition_edges),
    cmocka_unit_test(test_bits_every_position),
    cmocka_unit_test(test_text_at_page_end),
    cmocka_unit_test(test_parts_join),
  };
  /* Twice: the AVX-512 path where the CPU has it, then the portable one (the same hashes either way). */
  int failed = cmocka_run_group_tests_name("simhash, fastest path", tests, NULL, NULL);
  gw_simhash_no_avx512 = true;
  return failed + cmocka_run_group_tests_name("simhash, portable path", tests, NULL, NULL);
}
