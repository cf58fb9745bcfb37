/*
 * detectors.c: the built-in detector table (DESIGN §5) and the one combined pattern built from it.
 *
 * Key decisions:
 * - All enabled built-ins are one pcre2 alternation, each branch ending in (*MARK:<kind number>), so a value
 *   is scanned by one JIT pass whatever the number of detectors; the mark says which branch matched.
 * - Speed: an unanchored scan of the alternation would try every branch at every letter. Instead one C pass
 *   (rd_candidate) finds the few positions where some branch can start (a digit or '+'/'(' after a
 *   non-alphanumeric, '@', "::", "-----BEGIN", a word starting with a key prefix, a hex group followed by
 *   ':') and the pattern, compiled anchored and JIT'd, runs only there. rd_candidate must accept every
 *   position where a branch can start; the branches keep their own boundaries.
 * - Email is matched from its '@' (the local part is taken by walking back in C, rd_validate): a branch that
 *   started at every letter would retry the local-part scan at each position. Earlier matches inside the
 *   local part (212-555-1234@example.com) are merged into the email.
 * - "version 1.2.3.4" is a version, not an IPv4 address; other dotted quads are addresses.
 * - What a regex cannot say well is checked in C after the match: Luhn for cards, 8..15 digits for phone
 *   numbers, at least one decimal digit for IPv6 (so "dead::beef" in code stays). A rejected match resumes
 *   one character later.
 * - Phone numbers need separators or a leading '+': a bare run of 10 digits is an id, not a phone number.
 *   Dates (2024-01-15), version strings (1.2.3.4, v1.2.3) and times (12:30:45) match no branch.
 * - Bearer tokens (RFC 6750) need 8 characters with a digit or 16 without, so "Bearer token required" stays;
 *   after an Authorization header name, or under a key naming one, any token is one. HTTP Basic credentials
 *   (RFC 7617) are base64 that decodes to printable "user:password", so "Basic usage" stays.
 * - AWS secret keys (40 base64 characters, indistinguishable from other random strings) only after a
 *   key-like name (aws_secret_access_key=, "SecretAccessKey": ...); attribute and JSON member keys named so
 *   are handled by rd_secret_key_name.
 * - Work is linear in the value (bench/bench_redact.c shows it on the shapes below). The scan resumes after
 *   each match and one character after each failed candidate, so a value costs the sum over candidates of
 *   what the pattern reads from there. Every branch reads a bounded length, or an unbounded run of a class
 *   in which no other candidate can start, or that the branch's own lookbehind refuses:
 *   JWT segments ([\w-] runs: a JWT start needs no [\w-] before it), a bearer or Basic token's run (after
 *   "bearer"/"basic" and blanks; another start in it has no blank after it), API key bodies (same
 *   lookbehind as JWT), the AWS secret's blanks and an IPv6 zone ([A-Za-z0-9] runs). An email's domain is at
 *   most 126 labels. PEM private keys are the exception that a regex cannot
 *   express linearly (a lazy search for the footer from every header): they are matched in C
 *   (rd_private_key), which remembers where the next footer is.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define RD_AVX2 1 /* a 32-byte version of the block filter, used when the CPU has AVX2 */
#endif

#include "redact/redact_int.h"

#define OCTET "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"
#define IPV4_BODY "(?:" OCTET "\\.){3}" OCTET
#define H "[0-9A-Fa-f]{1,4}"

/* PEM private keys are matched in C (rd_private_key), not here: see the top comment. */
static const char *const branches[GW_RK__COUNT] = {
  [GW_RK_JWT] = "(?<![\\w\\-])eyJ[A-Za-z0-9_\\-]{10,}\\.[A-Za-z0-9_\\-]{10,}\\.[A-Za-z0-9_\\-]*",
  /* RFC 6750 b64token; rd_validate decides on its length and context */
  [GW_RK_BEARER] = "(?i:\\bbearer)[ \\t]+\\K[A-Za-z0-9\\-._~+/]+=*",
  /* RFC 7617; rd_validate decodes it: "user:password" */
  [GW_RK_BASIC_AUTH] = "(?i:\\bbasic)[ \\t]+\\K[A-Za-z0-9+/]{4,}={0,2}(?![A-Za-z0-9+/=_\\-])",
  [GW_RK_API_KEY] = "(?<![\\w\\-])(?:sk-(?=[A-Za-z_\\-]*\\d)[A-Za-z0-9_\\-]{20,}"
                    "|(?:sk|rk)_live_[A-Za-z0-9]{20,}"
                    "|gh[pousr]_[A-Za-z0-9]{30,255}"
                    "|github_pat_[A-Za-z0-9_]{22,255}"
                    "|AIza[0-9A-Za-z_\\-]{35}"
                    "|xox[abposr]-[A-Za-z0-9\\-]{10,})",
  [GW_RK_AWS_KEY_ID] = "(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA)"
                       "[A-Z0-9]{16}(?![A-Za-z0-9])",
  [GW_RK_AWS_SECRET] = "(?i:(?:aws[_.\\-]?)?secret[_.\\-]?access[_.\\-]?key|aws[_.\\-]?secret(?:[_.\\-]?key)?)"
                       "[\"']?[ \\t]*(?::|=>?)[ \\t]*[\"']?\\K[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])",
  [GW_RK_CARD] = "(?<![\\w\\-])(?:\\d{4}([ \\-]?)\\d{4}\\g{-1}\\d{4}\\g{-1}\\d{4}(?:\\g{-1}\\d{1,3})?"
                 "|3[47]\\d{2}([ \\-]?)\\d{6}\\g{-1}\\d{5}"
                 "|\\d{13,19})(?![\\w\\-]|[ \\-]\\d)",
  [GW_RK_SSN] = "(?<![\\w\\-])(?!000|666|9)\\d{3}-(?!00)\\d{2}-(?!0000)\\d{4}(?![\\w\\-])",
  [GW_RK_PHONE] = "(?:(?<![\\w+])\\+[1-9]\\d{7,14}(?![\\w\\-]|\\.\\d)"
                  "|(?<![\\w+])\\+[1-9]\\d{0,3}(?:[ .\\-]?\\(\\d{1,4}\\)|[ .\\-]\\d{1,8}){2,6}(?![\\w\\-]|\\.\\d)"
                  "|(?<![\\w.+\\-])(?:1[ .\\-]?)?(?:\\([2-9]\\d{2}\\)[ .\\-]?|[2-9]\\d{2}[ .\\-])[2-9]\\d{2}[ .\\-]\\d{4}"
                  "(?![\\w\\-]|\\.\\d))",
  [GW_RK_IPV4] = "(?<![\\w.])(?<!ersion )(?<!ersion=)(?<!ersion: )" IPV4_BODY "(?![\\w]|\\.\\d)",
  [GW_RK_IPV6] = "(?<![\\w:.])(?:(?:" H ":){7}" H "|::(?:ffff(?::0{1,4})?:)?" IPV4_BODY "|(?:" H ":){1,4}:" IPV4_BODY
                 "|(?:" H ":){1,7}:|(?:" H ":){1,6}:" H "|(?:" H ":){1,5}(?::" H "){1,2}|(?:" H ":){1,4}(?::" H
                 "){1,3}|(?:" H ":){1,3}(?::" H "){1,4}|(?:" H ":){1,2}(?::" H "){1,5}|" H ":(?::" H
                 "){1,6}|:(?::" H "){1,7})(?:%[0-9A-Za-z]+)?(?![\\w:]|\\.\\d)",
  /* at most 126 labels (RFC 1035: 255 octets a name): an unbounded repeat ran out of JIT stack on a value of
   * many labels and failed the whole value */
  [GW_RK_EMAIL] = "(?<=[A-Za-z0-9._%+\\-])@(?:[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?\\.){1,126}[A-Za-z]{2,24}"
                  "(?![A-Za-z0-9\\-])",
};

/* Order of the branches: at one start position the first branch that matches wins, so the specific
 * secrets come before the generic digit shapes, and cards and SSNs before phone numbers. */
static const enum gw_redact_kind order[GW_RK__COUNT] = {
  GW_RK_PRIVATE_KEY, GW_RK_JWT, GW_RK_BEARER, GW_RK_BASIC_AUTH, GW_RK_API_KEY, GW_RK_AWS_KEY_ID, GW_RK_AWS_SECRET,
  GW_RK_CARD, GW_RK_SSN, GW_RK_PHONE, GW_RK_IPV4, GW_RK_IPV6, GW_RK_EMAIL,
};

const char *const rd_kind_names[GW_RK__COUNT] = {
#define RD_NAME(id, name, label) [GW_RK_##id] = name,
  GW_REDACT_KINDS(RD_NAME)
#undef RD_NAME
};
const char *const rd_kind_stems[GW_RK__COUNT] = {
#define RD_STEM(id, name, label) [GW_RK_##id] = label,
  GW_REDACT_KINDS(RD_STEM)
#undef RD_STEM
};

char *rd_builtin_pattern(const enum gw_redact_action *actions)
{
  size_t cap = 64;
  for (int i = 0; i < GW_RK__COUNT; i++)
    cap += (branches[i] ? strlen(branches[i]) : 0) + 32;
  char *p = gw_malloc(cap), *w = p;
  bool any = false;
  for (int i = 0; i < GW_RK__COUNT; i++) {
    enum gw_redact_kind k = order[i];
    if (actions[k] == GW_REDACT_OFF || !branches[k])
      continue;
    w += snprintf(w, cap - (size_t)(w - p), "%s(?:%s)(*MARK:%d)", any ? "|" : "", branches[k], (int)k);
    any = true;
  }
  if (!any) {
    free(p);
    return NULL;
  }
  return p;
}

static bool alnum(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool digit(unsigned char c) { return c >= '0' && c <= '9'; }

static bool hex(unsigned char c) { return digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }

/* s[i..] starts with lit (ASCII lowercase), case-insensitively. */
static bool ci_prefix(const unsigned char *s, size_t len, size_t i, const char *lit)
{
  for (; *lit; lit++, i++)
    if (i >= len || (s[i] | 0x20) != (unsigned char)*lit)
      return false;
  return true;
}

static bool prefix(const unsigned char *s, size_t len, size_t i, const char *lit)
{
  size_t n = strlen(lit);
  return len - i >= n && !memcmp(s + i, lit, n);
}

/* What every branch that starts with a digit reads first: three digits and a fourth or a separator (cards,
 * SSNs, the North American phone shape, a three-digit IPv4 octet); '1', a separator or none, then '(' or
 * three digits (that phone shape's country code); two groups of one to three digits each followed by a '.'
 * (IPv4); or one to four hex digits and a ':' (IPv6). Ids and versions ("gpt-4o", "4.1-nano", the hex of
 * a session id) fail it without a pattern run. */
static bool sep(unsigned char c) { return c == ' ' || c == '.' || c == '-'; }

static bool digit_shape(const unsigned char *s, size_t len, size_t i)
{
  if (i + 3 < len && digit(s[i + 1]) && digit(s[i + 2]) && (digit(s[i + 3]) || sep(s[i + 3])))
    return true;
  if (s[i] == '1') {
    size_t k = i + 1;
    if (k < len && sep(s[k]))
      k++;
    if ((k < len && s[k] == '(') || (k + 2 < len && digit(s[k]) && digit(s[k + 1]) && digit(s[k + 2])))
      return true;
  }
  size_t j = i + 1, k;
  while (j < len && j - i < 3 && digit(s[j]))
    j++;
  if (j < len && s[j] == '.') { /* and a second octet and dot */
    for (k = j + 1; k < len && k - j <= 3 && digit(s[k]);)
      k++;
    if (k > j + 1 && k < len && s[k] == '.')
      return true;
  }
  for (j = i + 1; j < len && j - i < 4 && hex(s[j]);)
    j++;
  return j < len && s[j] == ':';
}

bool rd_candidate(const char *str, size_t len, size_t i)
{
  const unsigned char *s = (const unsigned char *)str;
  unsigned char c = s[i], p = i ? s[i - 1] : ' ';
  if (digit(c))
    return !alnum(p) && digit_shape(s, len, i);
  switch (c) {
  case '@': return i > 0 && (alnum(p) || p == '.' || p == '_' || p == '%' || p == '+' || p == '-');
  case '+':
  case '(': return i + 1 < len && digit(s[i + 1]) && !alnum(p);
  case ':': return i + 1 < len && s[i + 1] == ':' && !alnum(p) && p != ':';
  case '-': return prefix(s, len, i, "-----BEGIN");
  default: break;
  }
  unsigned char lc = c | 0x20;
  if (lc < 'a' || lc > 'z')
    return false;
  /* the AWS secret's key names may sit inside a longer identifier (MyAwsSecretAccessKey) */
  if ((lc == 's' && ci_prefix(s, len, i, "secret")) || (lc == 'a' && ci_prefix(s, len, i, "aws")))
    return true;
  if (alnum(p))
    return false;
  if (hex(c)) { /* IPv6 starting with a hex group: 1-4 hex digits, then ':' */
    size_t j = i;
    while (j < len && j - i < 4 && hex(s[j]))
      j++;
    if (j < len && s[j] == ':')
      return true;
  }
  switch (c) {
  case 'e': return prefix(s, len, i, "eyJ");
  case 'b':
  case 'B': return ci_prefix(s, len, i, "bearer") || ci_prefix(s, len, i, "basic");
  case 's': return prefix(s, len, i, "sk-") || prefix(s, len, i, "sk_live_");
  case 'r': return prefix(s, len, i, "rk_live_");
  case 'g': return (prefix(s, len, i, "gh") && i + 3 < len && s[i + 3] == '_') || prefix(s, len, i, "github_pat_");
  case 'x': return prefix(s, len, i, "xox");
  case 'A':
    return prefix(s, len, i, "AIza") ||
           (i + 3 < len && s[i + 1] >= 'A' && s[i + 1] <= 'Z' && s[i + 2] >= 'A' && s[i + 2] <= 'Z' &&
            s[i + 3] == 'A');
  default: return false;
  }
}

/* Bytes worth a closer look: after a non-alphanumeric byte (word start), and inside a word. */
static unsigned char at_start[256], in_word[256], is_alnum[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
#ifdef RD_AVX2
static bool have_avx2, have_avx512;
#endif

#ifdef RD_AVX2
/*
 * Byte classes of the 64-byte filter, looked up for 64 bytes at once (VPERMI2B over 128 entries; bytes
 * >= 0x80 are in no class). The two-byte conditions are bits: pair_first holds a rule's bit for the bytes it
 * starts with, pair_second for the bytes that may follow, so a position starts one of them when the classes
 * of its byte and of the next share a bit. The rules "::" and "--" share a bit (":-" and "-:" pass too: the
 * filter may let more through than rd_candidate, never less).
 */
enum {
  PR_DIGIT_AFTER = 1, /* '+' or '(' before a digit (anywhere) */
  PR_DOUBLE = 2,      /* "::", "--" (anywhere) */
  PR_EY = 4,          /* the rest after a word start */
  PR_BE = 8,          /* "be", "ba" in either case */
  PR_SK = 16,         /* "sk", "rk" */
  PR_GH = 32,         /* "gh", "gi" */
  PR_XO = 64,
  PR_AU = 128, /* 'A' and an upper case letter */
  PR_ANY = PR_DIGIT_AFTER | PR_DOUBLE,
};
/* The three-letter names (either case) anywhere: "sec" bits 1, 2, 4 for its letters; "aws" 8, 16, 32. */
static unsigned char pair_first[128] __attribute__((aligned(64))), pair_second[128] __attribute__((aligned(64))),
  triple[128] __attribute__((aligned(64)));

static void classes_init(void)
{
  static const struct {
    const char *first, *second;
    unsigned char bit;
  } rules[] = {{"+(", "0123456789", PR_DIGIT_AFTER}, {":-", ":-", PR_DOUBLE}, {"e", "y", PR_EY},
               {"bB", "eEaA", PR_BE},                {"sr", "k", PR_SK},     {"g", "hi", PR_GH},
               {"x", "o", PR_XO},                    {"A", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", PR_AU}};
  for (size_t r = 0; r < sizeof rules / sizeof rules[0]; r++) {
    for (const char *p = rules[r].first; *p; p++)
      pair_first[(unsigned char)*p] |= rules[r].bit;
    for (const char *p = rules[r].second; *p; p++)
      pair_second[(unsigned char)*p] |= rules[r].bit;
  }
  static const char *const letters[] = {"sS", "eE", "cC", "aA", "wW", "sS"};
  for (int i = 0; i < 6; i++)
    for (const char *p = letters[i]; *p; p++)
      triple[(unsigned char)*p] |= (unsigned char)(1u << i);
}
#endif

static void tables_init(void)
{
  static const char start[] = "0123456789@+(:-abcdefABCDEFgrsxSB", inword[] = "@:-sSaA0123456789";
  for (const char *p = start; *p; p++)
    at_start[(unsigned char)*p] = 1;
  for (const char *p = inword; *p; p++)
    in_word[(unsigned char)*p] = 1;
  for (int c = 0; c < 256; c++)
    is_alnum[c] = alnum((unsigned char)c);
#ifdef RD_AVX2
  __builtin_cpu_init();
  have_avx2 = __builtin_cpu_supports("avx2");
  /* libgcc sets these only when the OS saves the ZMM and mask registers (XCR0) */
  have_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vbmi");
  classes_init();
#endif
}

bool rd_every_position, rd_no_avx2, rd_no_avx512;

#ifdef __SSE2__
static __m128i in_range(__m128i v, char lo, char hi) /* lo <= v <= hi, both below 0x80 (signed compare) */
{
  return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8((char)(lo - 1))), _mm_cmplt_epi8(v, _mm_set1_epi8((char)(hi + 1))));
}

static __m128i eq(__m128i v, char c) { return _mm_cmpeq_epi8(v, _mm_set1_epi8(c)); }

static __m128i load(const unsigned char *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }

#define RD_LOOKAHEAD 4 /* bytes after a block candidate_mask reads */

/* Bit j set when the byte at b + j may start a candidate; b - 1 .. b + 16 + RD_LOOKAHEAD - 1 must be
 * readable. A superset of where rd_candidate is true, tight enough that ordinary prose rarely reaches it:
 * - anywhere: '@'; '+' or '(' before a digit; "::"; "--"; "sec" and "aws" in either case (AWS secret key
 *   names inside identifiers);
 * - after a non-alphanumeric byte: a digit; a hex digit with ':' among the next 4 bytes (IPv6); the first
 *   two letters of a branch's prefix: "ey", "be"/"ba" (either case), "sk", "rk", "gh"/"gi", "xo", 'A' and an
 *   uppercase letter (AIza, the AWS key id prefixes). */
static unsigned candidate_mask(const unsigned char *b)
{
  __m128i x = load(b), prev = load(b - 1), n1 = load(b + 1), n2 = load(b + 2);
  __m128i case_bit = _mm_set1_epi8(0x20);
  __m128i lx = _mm_or_si128(x, case_bit), lp = _mm_or_si128(prev, case_bit);
  __m128i l1 = _mm_or_si128(n1, case_bit), l2 = _mm_or_si128(n2, case_bit);
  __m128i prev_alnum = _mm_or_si128(in_range(prev, '0', '9'), in_range(lp, 'a', 'z'));
  __m128i digit1 = in_range(n1, '0', '9');
  __m128i any = _mm_or_si128(eq(x, '@'), _mm_and_si128(_mm_or_si128(eq(x, '+'), eq(x, '(')), digit1));
  any = _mm_or_si128(any, _mm_and_si128(eq(x, ':'), eq(n1, ':')));
  any = _mm_or_si128(any, _mm_and_si128(eq(x, '-'), eq(n1, '-')));
  __m128i sec = _mm_and_si128(_mm_and_si128(eq(lx, 's'), eq(l1, 'e')), eq(l2, 'c'));
  __m128i aws = _mm_and_si128(_mm_and_si128(eq(lx, 'a'), eq(l1, 'w')), eq(l2, 's'));
  any = _mm_or_si128(any, _mm_or_si128(sec, aws));
  unsigned m_any = (unsigned)_mm_movemask_epi8(any);
  unsigned m_word = (unsigned)_mm_movemask_epi8(prev_alnum) ^ 0xFFFFu;
  if (!(m_word & ~m_any))
    return m_any; /* no word start left to look at (inside long words) */
  __m128i colon = _mm_or_si128(_mm_or_si128(eq(n1, ':'), eq(n2, ':')),
                               _mm_or_si128(eq(load(b + 3), ':'), eq(load(b + 4), ':')));
  __m128i hexc = _mm_or_si128(in_range(x, '0', '9'), in_range(lx, 'a', 'f'));
  __m128i start = _mm_or_si128(in_range(x, '0', '9'), _mm_and_si128(hexc, colon));
  start = _mm_or_si128(start, _mm_and_si128(eq(x, 'e'), eq(n1, 'y')));
  start = _mm_or_si128(start, _mm_and_si128(eq(lx, 'b'), _mm_or_si128(eq(l1, 'e'), eq(l1, 'a'))));
  start = _mm_or_si128(start, _mm_and_si128(_mm_or_si128(eq(x, 's'), eq(x, 'r')), eq(n1, 'k')));
  start = _mm_or_si128(start, _mm_and_si128(eq(x, 'g'), _mm_or_si128(eq(n1, 'h'), eq(n1, 'i'))));
  start = _mm_or_si128(start, _mm_and_si128(eq(x, 'x'), eq(n1, 'o')));
  start = _mm_or_si128(start, _mm_and_si128(eq(x, 'A'), in_range(n1, 'A', 'Z')));
  return m_any | (m_word & (unsigned)_mm_movemask_epi8(start));
}
#endif

#ifdef RD_AVX2
#define RD_TARGET __attribute__((target("avx2")))

RD_TARGET static __m256i in_range32(__m256i v, char lo, char hi)
{
  return _mm256_and_si256(_mm256_cmpgt_epi8(v, _mm256_set1_epi8((char)(lo - 1))),
                          _mm256_cmpgt_epi8(_mm256_set1_epi8((char)(hi + 1)), v));
}

RD_TARGET static __m256i eq32(__m256i v, char c) { return _mm256_cmpeq_epi8(v, _mm256_set1_epi8(c)); }

RD_TARGET static __m256i load32(const unsigned char *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* candidate_mask over 32 positions: the same conditions, bit for bit. b - 1 .. b + 32 + RD_LOOKAHEAD - 1
 * must be readable. */
RD_TARGET static uint32_t candidate_mask32(const unsigned char *b)
{
  __m256i x = load32(b), prev = load32(b - 1), n1 = load32(b + 1), n2 = load32(b + 2);
  __m256i case_bit = _mm256_set1_epi8(0x20);
  __m256i lx = _mm256_or_si256(x, case_bit), lp = _mm256_or_si256(prev, case_bit);
  __m256i l1 = _mm256_or_si256(n1, case_bit), l2 = _mm256_or_si256(n2, case_bit);
  __m256i prev_alnum = _mm256_or_si256(in_range32(prev, '0', '9'), in_range32(lp, 'a', 'z'));
  __m256i digit1 = in_range32(n1, '0', '9');
  __m256i any = _mm256_or_si256(eq32(x, '@'), _mm256_and_si256(_mm256_or_si256(eq32(x, '+'), eq32(x, '(')), digit1));
  any = _mm256_or_si256(any, _mm256_and_si256(eq32(x, ':'), eq32(n1, ':')));
  any = _mm256_or_si256(any, _mm256_and_si256(eq32(x, '-'), eq32(n1, '-')));
  __m256i sec = _mm256_and_si256(_mm256_and_si256(eq32(lx, 's'), eq32(l1, 'e')), eq32(l2, 'c'));
  __m256i aws = _mm256_and_si256(_mm256_and_si256(eq32(lx, 'a'), eq32(l1, 'w')), eq32(l2, 's'));
  any = _mm256_or_si256(any, _mm256_or_si256(sec, aws));
  uint32_t m_any = (uint32_t)_mm256_movemask_epi8(any);
  uint32_t m_word = ~(uint32_t)_mm256_movemask_epi8(prev_alnum);
  if (!(m_word & ~m_any))
    return m_any;
  __m256i colon = _mm256_or_si256(_mm256_or_si256(eq32(n1, ':'), eq32(n2, ':')),
                                  _mm256_or_si256(eq32(load32(b + 3), ':'), eq32(load32(b + 4), ':')));
  __m256i hexc = _mm256_or_si256(in_range32(x, '0', '9'), in_range32(lx, 'a', 'f'));
  __m256i start = _mm256_or_si256(in_range32(x, '0', '9'), _mm256_and_si256(hexc, colon));
  start = _mm256_or_si256(start, _mm256_and_si256(eq32(x, 'e'), eq32(n1, 'y')));
  start = _mm256_or_si256(start, _mm256_and_si256(eq32(lx, 'b'), _mm256_or_si256(eq32(l1, 'e'), eq32(l1, 'a'))));
  start = _mm256_or_si256(start, _mm256_and_si256(_mm256_or_si256(eq32(x, 's'), eq32(x, 'r')), eq32(n1, 'k')));
  start = _mm256_or_si256(start, _mm256_and_si256(eq32(x, 'g'), _mm256_or_si256(eq32(n1, 'h'), eq32(n1, 'i'))));
  start = _mm256_or_si256(start, _mm256_and_si256(eq32(x, 'x'), eq32(n1, 'o')));
  start = _mm256_or_si256(start, _mm256_and_si256(eq32(x, 'A'), in_range32(n1, 'A', 'Z')));
  return m_any | (m_word & (uint32_t)_mm256_movemask_epi8(start));
}

/* The 32-byte blocks from *i while they and their lookahead are in the string: the first candidate, or len
 * with *i left where the blocks stopped. */
RD_TARGET static size_t blocks32(const char *str, size_t len, size_t *i)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t at = *i;
  for (; at + 32 + RD_LOOKAHEAD <= len; at += 32) {
    for (uint32_t m = candidate_mask32(s + at); m; m &= m - 1) {
      size_t c = at + (size_t)__builtin_ctz(m);
      if (rd_candidate(str, len, c))
        return c;
    }
  }
  *i = at;
  return len;
}
#endif

#ifdef RD_AVX2
#define RD_TARGET512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

/* The n bytes from b as an AVX-512 register, zero past them (a masked load reads nothing there). */
RD_TARGET512 static __m512i load64(const unsigned char *b, size_t n)
{
  __mmask64 k = n >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << n) - 1;
  return _mm512_maskz_loadu_epi8(k, b);
}

RD_TARGET512 static uint64_t eq64(__m512i v, char c) { return _mm512_cmpeq_epi8_mask(v, _mm512_set1_epi8(c)); }

/* lo <= v <= hi for bytes lo, hi below 0x80: v - lo as unsigned is then at most hi - lo, and a byte of
 * 0x80 or more never is (as with the signed compares of the 16 and 32-byte versions). */
RD_TARGET512 static uint64_t in_range64(__m512i v, char lo, char hi)
{
  return _mm512_cmple_epu8_mask(_mm512_sub_epi8(v, _mm512_set1_epi8(lo)), _mm512_set1_epi8((char)(hi - lo)));
}

/* candidate_mask's conditions over 64 positions (a superset of them: see pair_first): x the bytes there,
 * prev those before, n1 and n2 those after (n3 and n4 are loaded only when a word start is left to look
 * at); valid the positions in the text. */
#define RD_INLINE512 RD_TARGET512 inline __attribute__((always_inline))
RD_INLINE512 static __m512i class64(const unsigned char *table, __m512i v)
{
  return _mm512_maskz_permutex2var_epi8(~_mm512_movepi8_mask(v), _mm512_load_si512(table), v,
                                        _mm512_load_si512(table + 64));
}

RD_INLINE512 static uint64_t mask64(__m512i x, __m512i prev, __m512i n1, __m512i n2, const unsigned char *b, size_t n,
                                    uint64_t valid, bool full)
{
  __m512i cx = class64(pair_first, x), c1 = class64(pair_second, n1);
  /* sec and aws: the first letter's bits moved up two, the second's one, against the third's */
  __m512i tr = _mm512_ternarylogic_epi32(_mm512_slli_epi16(class64(triple, x), 2),
                                         _mm512_slli_epi16(class64(triple, n1), 1), class64(triple, n2), 0x80);
  uint64_t any = eq64(x, '@') | _mm512_test_epi8_mask(_mm512_and_si512(cx, _mm512_set1_epi8(PR_ANY)), c1) |
                 _mm512_test_epi8_mask(tr, _mm512_set1_epi8(4 | 32));
  __m512i lp = _mm512_or_si512(prev, _mm512_set1_epi8(0x20));
  uint64_t prev_alnum = in_range64(prev, '0', '9') | in_range64(lp, 'a', 'z');
  uint64_t word = ~prev_alnum & valid;
  any &= valid;
  if (!(word & ~any))
    return any;
  __m512i n3 = full ? _mm512_loadu_si512(b + 3) : load64(b + 3, n > 3 ? n - 3 : 0);
  __m512i n4 = full ? _mm512_loadu_si512(b + 4) : load64(b + 4, n > 4 ? n - 4 : 0);
  uint64_t colon = eq64(n1, ':') | eq64(n2, ':') | eq64(n3, ':') | eq64(n4, ':');
  uint64_t dig = in_range64(x, '0', '9');
  uint64_t hexc = dig | in_range64(_mm512_or_si512(x, _mm512_set1_epi8(0x20)), 'a', 'f');
  uint64_t start = dig | (hexc & colon) | _mm512_test_epi8_mask(_mm512_andnot_si512(_mm512_set1_epi8(PR_ANY), cx), c1);
  return any | (word & start);
}

/* candidate_mask over the 64 positions from b (a superset, as mask64), for a text of n bytes from
 * b (b - 1 readable): the bytes past the text read as NUL, as in the padded copy of the 16-byte version's
 * last block, so a short text or the end of a long one is one masked step; bits at and past n are clear. */
RD_TARGET512 static uint64_t candidate_mask64(const unsigned char *b, size_t n)
{
  __m512i x = load64(b, n), prev = load64(b - 1, n + 1), n1 = load64(b + 1, n > 1 ? n - 1 : 0),
          n2 = load64(b + 2, n > 2 ? n - 2 : 0);
  return mask64(x, prev, n1, n2, b, n, n >= 64 ? ~(uint64_t)0 : ((uint64_t)1 << n) - 1, false);
}

/* From i (>= 1) to the end, 64 positions a step: the first candidate, or len. Blocks whose lookahead is in
 * the text use plain loads. */
RD_TARGET512 static size_t blocks64(const char *str, size_t len, size_t i)
{
  const unsigned char *s = (const unsigned char *)str;
  for (; i + 64 + RD_LOOKAHEAD <= len; i += 64) {
    const unsigned char *b = s + i;
    uint64_t m = mask64(_mm512_loadu_si512(b), _mm512_loadu_si512(b - 1), _mm512_loadu_si512(b + 1),
                        _mm512_loadu_si512(b + 2), b, len - i, ~(uint64_t)0, true);
    for (; m; m &= m - 1) {
      size_t c = i + (size_t)__builtin_ctzll(m);
      if (rd_candidate(str, len, c))
        return c;
    }
  }
  for (; i < len; i += 64)
    for (uint64_t m = candidate_mask64(s + i, len - i); m; m &= m - 1) {
      size_t c = i + (size_t)__builtin_ctzll(m);
      if (rd_candidate(str, len, c))
        return c;
    }
  return len;
}
#endif

/* Each position from i on, as rd_next_candidate would find them without its block filter: what the
 * differential tests compare it with. */
static size_t next_candidate_bytewise(const char *str, size_t len, size_t i)
{
  const unsigned char *s = (const unsigned char *)str;
  for (; i < len; i++) {
    unsigned char c = s[i];
    const unsigned char *t = i && is_alnum[s[i - 1]] ? in_word : at_start;
    if (t[c] && rd_candidate(str, len, i))
      return i;
  }
  return len;
}

size_t rd_next_candidate(const char *str, size_t len, size_t i)
{
  pthread_once(&tables_once, tables_init);
  if (rd_every_position)
    return i;
  const unsigned char *s = (const unsigned char *)str;
#ifdef __SSE2__
  /* 16 positions at a time while the bytes before and after the block are in the string; the candidates
   * the mask lets through are checked one by one, as below. */
  if (i == 0 && len && at_start[s[0]] && rd_candidate(str, len, 0))
    return 0;
  if (i == 0)
    i = 1;
#ifdef RD_AVX2
  if (have_avx512 && !rd_no_avx512)
    return blocks64(str, len, i);
  if (have_avx2 && !rd_no_avx2) {
    size_t at = blocks32(str, len, &i);
    if (at < len)
      return at;
  }
#endif
  for (; i + 16 + RD_LOOKAHEAD <= len; i += 16) {
    for (unsigned m = candidate_mask(s + i); m; m &= m - 1) {
      size_t at = i + (size_t)__builtin_ctz(m);
      if (rd_candidate(str, len, at))
        return at;
    }
  }
  /* The last bytes (short values are only that): a copy padded with NULs, which the mask reads as the end
   * of the value (no condition holds on a NUL), so its bits are still a superset. */
  if (i < len) {
    unsigned char pad[1 + 32 + RD_LOOKAHEAD];
    size_t n = len - i; /* < 16 + RD_LOOKAHEAD <= 32 */
    memset(pad, 0, sizeof pad);
    memcpy(pad, s + i - 1, n + 1);
    for (size_t blk = 0; blk < n; blk += 16) {
      unsigned m = candidate_mask(pad + 1 + blk);
      if (n - blk < 16)
        m &= (1u << (n - blk)) - 1;
      for (; m; m &= m - 1) {
        size_t at = i + blk + (size_t)__builtin_ctz(m);
        if (rd_candidate(str, len, at))
          return at;
      }
    }
    return len;
  }
#endif
  return next_candidate_bytewise(str, len, i);
}

size_t rd_next_candidate_ref(const char *str, size_t len, size_t i)
{
  pthread_once(&tables_once, tables_init);
  return next_candidate_bytewise(str, len, i);
}

/* A bearer token: 8 characters with a digit, or 16 without ("Bearer token required", "the bearer of bad
 * news" are prose), or any length in an Authorization header: right after its name in the text, or in the
 * value of a key naming it (auth). s[start] follows "bearer" and blanks. */
static bool bearer_ok(const char *s, size_t start, size_t end, bool auth)
{
  size_t n = end;
  while (n > start && s[n - 1] == '=')
    n--;
  bool dig = false;
  for (size_t i = start; i < n && !dig; i++)
    dig = digit((unsigned char)s[i]);
  if (n - start >= (dig ? 8u : 16u) || (auth && n > start))
    return true;
  size_t b = start;
  while (b > 0 && (s[b - 1] == ' ' || s[b - 1] == '\t'))
    b--;
  if (b < 6)
    return false;
  b -= 6; /* "bearer" */
  while (b > 0 && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '"' || s[b - 1] == '\'' || s[b - 1] == ':' ||
                   s[b - 1] == '='))
    b--;
  return n > start && b >= 13 && ci_prefix((const unsigned char *)s, b, b - 13, "authorization");
}

/* HTTP Basic credentials: base64 (padding optional) of printable "user:password". */
static bool basic_ok(const char *s, size_t len)
{
  uint32_t v = 0;
  int bits = 0;
  size_t n = 0;
  bool colon = false;
  for (size_t i = 0; i < len && s[i] != '='; i++) {
    unsigned char ch = (unsigned char)s[i];
    int d = ch >= 'A' && ch <= 'Z' ? ch - 'A' : ch >= 'a' && ch <= 'z' ? ch - 'a' + 26
          : ch >= '0' && ch <= '9' ? ch - '0' + 52 : ch == '+' ? 62 : ch == '/' ? 63 : -1;
    if (d < 0)
      return false;
    v = v << 6 | (uint32_t)d;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      unsigned char byte = (unsigned char)(v >> bits);
      if (byte < 0x20 || byte == 0x7F)
        return false; /* controls: binary, not credentials (UTF-8 bytes above 0x7F are fine) */
      colon |= byte == ':';
      n++;
    }
  }
  return colon && n >= 3;
}

static bool is_local(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '%' || c == '+' || c == '-';
}

bool rd_validate(enum gw_redact_kind k, const char *s, size_t *start, size_t end, bool auth)
{
  switch (k) {
  case GW_RK_EMAIL: {
    /* RFC 5321 local part at most 64 octets. It may reach back into earlier matches (a phone number used
     * as the local part): the caller merges them into the email. */
    size_t b = *start;
    while (b > 0 && *start - b < 64 && is_local(s[b - 1]))
      b--;
    while (b < *start && s[b] == '.')
      b++;
    if (b == *start)
      return false;
    *start = b;
    return true;
  }
  case GW_RK_CARD: return rd_luhn_ok(s + *start, end - *start);
  case GW_RK_PHONE: {
    int nd = 0;
    for (size_t i = *start; i < end; i++)
      nd += s[i] >= '0' && s[i] <= '9';
    return nd >= 8 && nd <= 15;
  }
  case GW_RK_IPV6:
    for (size_t i = *start; i < end; i++)
      if (s[i] >= '0' && s[i] <= '9')
        return true;
    return false;
  case GW_RK_BEARER: return bearer_ok(s, *start, end, auth);
  case GW_RK_BASIC_AUTH: return basic_ok(s + *start, end - *start);
  default: return true;
  }
}

/* A key naming an AWS secret: lowercased with '_', '.', '-' removed, it holds "secretaccesskey" or
 * "awssecret". */
static bool key_sep(char c) { return c == '_' || c == '.' || c == '-'; }

/* Both names hold "secret": is there a 'c' at i with "se" before it and "ret" after it, separators skipped?
 * Most keys that reach here hold a 'c' (resource and message keys are walked by the thousand a request)
 * and none of "secret": they were copied lowercased and searched twice. */
static bool secret_at(const char *key, size_t len, size_t i)
{
  static const char before[] = "es", after[] = "ret";
  size_t j = i;
  for (int k = 0; k < 2; k++) {
    while (j > 0 && key_sep(key[j - 1]))
      j--;
    if (j == 0 || (key[--j] | 0x20) != before[k])
      return false;
  }
  j = i + 1;
  for (int k = 0; k < 3; k++) {
    while (j < len && key_sep(key[j]))
      j++;
    if (j == len || (key[j++] | 0x20) != after[k])
      return false;
  }
  return true;
}

bool rd_secret_key_name(const char *key, size_t len)
{
  if (len < sizeof "awssecret" - 1)
    return false; /* too short to hold either name: "role", "type", "content", ... */
  size_t ci = 0;
  for (;; ci++) {
    /* 8 bytes at a time while none is a 'c' or 'C' (a zero byte of (w | 0x20..) ^ 'c'..) */
    while (ci + 8 <= len) {
      uint64_t w;
      memcpy(&w, key + ci, 8);
      uint64_t x = (w | 0x2020202020202020ull) ^ 0x6363636363636363ull;
      if ((x - 0x0101010101010101ull) & ~x & 0x8080808080808080ull)
        break;
      ci += 8;
    }
    if (ci == len)
      return false;
    if ((key[ci] | 0x20) == 'c' && secret_at(key, len, ci))
      break;
  }
  char buf[128];
  size_t n = 0;
  for (size_t i = 0; i < len && n < sizeof buf - 1; i++) {
    char c = key[i];
    if (key_sep(c))
      continue;
    buf[n++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  buf[n] = 0;
  return strstr(buf, "secretaccesskey") || strstr(buf, "awssecret");
}

bool rd_auth_key_name(const char *key, size_t len)
{
  static const char name[] = "authorization";
  size_t n = sizeof name - 1;
  return len >= n && ci_prefix((const unsigned char *)key, len, len - n, name);
}

/* The whole value is an AWS secret access key's shape: 40 characters of [A-Za-z0-9/+]. */
bool rd_aws_secret_value(const char *s, size_t len)
{
  if (len != 40)
    return false;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '+'))
      return false;
  }
  return true;
}

/* ---- PEM private keys ----
 * "-----BEGIN <label>PRIVATE KEY-----", then everything up to the first "-----END <label>PRIVATE KEY-----"
 * after it, or, with no footer anywhere after it (a key cut short), the base64 body that follows (base64
 * characters, whitespace, backslashes of escaped newlines). A label is at most 40 of [A-Z ].
 * As a lazy regex this searched the rest of the value for a footer at every header: 1 MiB of headers
 * took 37 s. Here the footer search remembers its answer (rd_pk), so over one value every byte is looked
 * at a bounded number of times whatever the number of headers. */

#define PK_BEGIN "-----BEGIN"
#define PK_END "-----END"
#define PK_TAIL "PRIVATE KEY"
#define PK_DASHES "-----"
#define PK_LABEL_MAX 40

static bool label_char(unsigned char c) { return (c >= 'A' && c <= 'Z') || c == ' '; }

/* s[i..] is "<label>PRIVATE KEY-----" (label: 0..40 of [A-Z ]); its end, or 0. The label and PRIVATE KEY
 * together are one run of [A-Z ] that ends at the dashes, so the run decides: it must end in PRIVATE KEY. */
static size_t pk_label_end(const char *str, size_t len, size_t i)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t tl = sizeof PK_TAIL - 1, dl = sizeof PK_DASHES - 1, j = i;
  while (j < len && j - i <= PK_LABEL_MAX + tl && label_char(s[j]))
    j++;
  if (j - i < tl || j - i > PK_LABEL_MAX + tl || memcmp(s + j - tl, PK_TAIL, tl))
    return 0;
  if (len - j < dl || memcmp(s + j, PK_DASHES, dl))
    return 0;
  return j + dl;
}

/* The first footer starting at or after `from`: its end, or 0 when there is none. Asked with `from` never
 * decreasing within one value (rd_pk_init resets), so the answer is reused until the scan passes it. */
static size_t pk_footer(struct rd_pk *pk, const char *s, size_t len, size_t from)
{
  if (pk->searched && from >= pk->from && (!pk->footer_end || from <= pk->footer_start))
    return pk->footer_end;
  pk->searched = true;
  pk->from = from;
  pk->footer_end = 0;
  size_t el = sizeof PK_END - 1;
  for (size_t at = from; at + el <= len;) {
    const char *hit = memmem(s + at, len - at, PK_END, el);
    if (!hit)
      break;
    size_t h = (size_t)(hit - s), end = pk_label_end(s, len, h + el);
    if (end) {
      pk->footer_start = h;
      pk->footer_end = end;
      break;
    }
    at = h + 1;
  }
  return pk->footer_end;
}

void rd_pk_init(struct rd_pk *pk) { memset(pk, 0, sizeof *pk); }

static bool body_char(unsigned char c)
{
  return alnum(c) || c == '+' || c == '/' || c == '=' || c == '\\' || c == ' ' || c == '\t' || c == '\n' ||
         c == '\r' || c == '\v' || c == '\f';
}

size_t rd_private_key(struct rd_pk *pk, const char *str, size_t len, size_t i)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t bl = sizeof PK_BEGIN - 1;
  if (len - i < bl || memcmp(s + i, PK_BEGIN, bl))
    return 0;
  size_t head = pk_label_end(str, len, i + bl);
  if (!head)
    return 0;
  size_t foot = pk_footer(pk, str, len, head);
  if (foot)
    return foot;
  size_t j = head;
  while (j < len && body_char(s[j]))
    j++;
  return j;
}
