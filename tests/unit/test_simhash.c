/* test_simhash.c: the SimHash of prompt text (gateway/normalize/simhash.h): near-duplicates land close,
 * unrelated texts far, and the values are fixed (the same on every platform and in every release, since
 * stored hashes are compared with new ones). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
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

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_near_duplicates_close),
    cmocka_unit_test(test_unrelated_far),
    cmocka_unit_test(test_stable_values),
    cmocka_unit_test(test_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
