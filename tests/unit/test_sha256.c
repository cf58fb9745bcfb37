/* test_sha256.c: gw_sha256 and gw_sha256_pair (gateway/core/sha256.h) give FIPS 180-4's digests: the
 * standard's examples, and OpenSSL's digest of every length to 1 100 bytes, alone and paired with messages
 * of other lengths, at every alignment; on the SHA-extensions path where the CPU has it, then on OpenSSL's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "core/sha256.h"

static void hex(const unsigned char *d, char out[65])
{
  for (int i = 0; i < 32; i++)
    snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void want_digest(const void *p, size_t n, const unsigned char got[32], const char *what, size_t a, size_t b)
{
  unsigned char want[32];
  unsigned int len = 0;
  assert_true(EVP_Digest(p, n, want, &len, EVP_sha256(), NULL));
  if (memcmp(want, got, 32)) {
    char w[65], g[65];
    hex(want, w);
    hex(got, g);
    fail_msg("%s (%zu, %zu), %zu bytes: %s, want %s", what, a, b, n, g, w);
  }
}

/* FIPS 180-4's examples (NIST's SHA256.pdf and SHA2_Additional.pdf), alone and as either half of a pair. */
static void test_standard_examples(void **st)
{
  (void)st;
  static char million[1000000];
  memset(million, 'a', sizeof million);
  const struct {
    const char *msg;
    size_t n;
    const char *hex;
  } ex[] = {
    {"abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {"", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    {million, sizeof million, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
  };
  for (size_t i = 0; i < sizeof ex / sizeof ex[0]; i++) {
    unsigned char d[32], e[32];
    char h[65];
    gw_sha256(ex[i].msg, ex[i].n, d);
    hex(d, h);
    assert_string_equal(h, ex[i].hex);
    for (size_t j = 0; j < sizeof ex / sizeof ex[0]; j++) {
      gw_sha256_pair(ex[i].msg, ex[i].n, d, ex[j].msg, ex[j].n, e);
      hex(d, h);
      assert_string_equal(h, ex[i].hex);
      hex(e, h);
      assert_string_equal(h, ex[j].hex);
    }
  }
}

/* Every length from 0 to 1 100 (each padding case: the length fitting the last block or needing another),
 * alone and paired with a shorter, an equal and a longer message, from every alignment of 8. */
static void test_every_length(void **st)
{
  (void)st;
  enum { MAX = 1100 };
  unsigned char *buf = malloc(MAX + 64), *other = malloc(3 * MAX + 64);
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < MAX + 64; i++)
    buf[i] = (unsigned char)((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 56);
  for (size_t i = 0; i < 3 * MAX + 64; i++)
    other[i] = (unsigned char)((seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 56);
  for (size_t n = 0; n <= MAX; n++) {
    size_t off = n % 8;
    unsigned char d[32], e[32];
    gw_sha256(buf + off, n, d);
    want_digest(buf + off, n, d, "alone", off, 0);
    const size_t partner[] = {n / 3, n, n + 1 + n % 200, 2 * n + 64};
    for (size_t k = 0; k < 4; k++) {
      size_t m = partner[k], o2 = (n + k) % 8;
      gw_sha256_pair(buf + off, n, d, other + o2, m, e);
      want_digest(buf + off, n, d, "first of a pair", m, k);
      want_digest(other + o2, m, e, "second of a pair", n, k);
      gw_sha256_pair(other + o2, m, e, buf + off, n, d);
      want_digest(buf + off, n, d, "second of a pair, swapped", m, k);
      want_digest(other + o2, m, e, "first of a pair, swapped", n, k);
    }
  }
  free(buf);
  free(other);
}

/* A digest resumed from another message's checkpoint after a common prefix gives the message's digest,
 * and leaves its own checkpoints right: messages of lengths around the checkpoints and the padding's
 * edges, resumed at every checkpoint the prefix allows (up to the whole message), alone or paired with a
 * job of another length or start. */
static void test_resume_from_checkpoints(void **st)
{
  (void)st;
  static unsigned char base[4 * GW_SHA256_CK + 200], other[4 * GW_SHA256_CK + 200];
  for (size_t i = 0; i < sizeof base; i++)
    base[i] = (unsigned char)(i * 131 + (i >> 7));
  static const size_t lens[] = {0, 1, 55, 64, GW_SHA256_CK - 1, GW_SHA256_CK, GW_SHA256_CK + 1,
                                2 * GW_SHA256_CK - 9, 2 * GW_SHA256_CK, 3 * GW_SHA256_CK + 63, 4 * GW_SHA256_CK,
                                4 * GW_SHA256_CK + 200};
  for (int path = 0; path < 2; path++) {
    gw_sha256_no_ni = path == 1;
    bool resumable = gw_sha256_resumable();
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
      size_t n = lens[li];
      /* exactly n / GW_SHA256_CK entries, as the header says (a store past them shows under ASan) */
      struct gw_sha256_mid *ck = calloc(n >= GW_SHA256_CK ? n / GW_SHA256_CK : 1, sizeof *ck);
      assert_non_null(ck);
      struct gw_sha256_job a = {.p = base, .n = n, .ck = n >= GW_SHA256_CK ? ck : NULL};
      gw_sha256_jobs(&a, NULL);
      want_digest(base, n, a.out, "whole", n, 0);
      /* other: base's first k checkpoints' bytes, then its own */
      for (size_t k = 0; resumable && k <= n / GW_SHA256_CK; k++)
        for (size_t oi = 0; oi < sizeof lens / sizeof lens[0]; oi++) {
          size_t on = lens[oi];
          if (on < k * GW_SHA256_CK)
            continue;
          memcpy(other, base, k * GW_SHA256_CK);
          for (size_t i = k * GW_SHA256_CK; i < on; i++)
            other[i] = (unsigned char)(i * 7 + oi + 1);
          struct gw_sha256_mid *ock = on >= GW_SHA256_CK ? calloc(on / GW_SHA256_CK, sizeof *ock) : NULL;
          struct gw_sha256_job b = {.p = other, .n = on, .from = k * GW_SHA256_CK, .start = k ? &ck[k - 1] : NULL,
                                    .ck = ock};
          struct gw_sha256_job c = {.p = base, .n = lens[(li + oi) % (sizeof lens / sizeof lens[0])]};
          gw_sha256_jobs(&b, oi % 2 ? &c : NULL);
          want_digest(other, on, b.out, "resumed", k, oi);
          if (oi % 2)
            want_digest(base, c.n, c.out, "beside a resumed job", k, oi);
          /* its checkpoints past the start: resuming from each gives the digest again */
          for (size_t q = k + 1; q <= on / GW_SHA256_CK; q++) {
            struct gw_sha256_job d = {.p = other, .n = on, .from = q * GW_SHA256_CK, .start = &ock[q - 1]};
            gw_sha256_jobs(&d, NULL);
            want_digest(other, on, d.out, "from its own checkpoint", q, oi);
          }
          free(ock);
        }
      free(ck);
    }
  }
  gw_sha256_no_ni = false;
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_standard_examples),
    cmocka_unit_test(test_every_length),
    cmocka_unit_test(test_resume_from_checkpoints),
  };
  int failed = cmocka_run_group_tests_name("sha256, fastest path", tests, NULL, NULL);
  gw_sha256_no_ni = true;
  return failed + cmocka_run_group_tests_name("sha256, OpenSSL's", tests, NULL, NULL);
}
