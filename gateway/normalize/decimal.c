/*
 * decimal.c: exact decimal text to scaled integers, for money (DESIGN §4: never float-summed).
 *
 * "0.0075" at scale 9 is 7500000 exactly: the digits are read as text and placed by their position, so
 * no value goes through a double. Exponent notation ("2.5e-06", as LiteLLM and JSON writers print) is
 * accepted. Used for client-reported costs (nano-USD) and, by the cost module, for price tables.
 */
#include <string.h>

#include "normalize/normalize.h"

#define DEC_LIMIT 1000000000000000000LL /* 1e18: well inside int64 after one more digit */

bool gw_decimal_parse(const char *s, size_t n, unsigned scale, enum gw_dec_mode mode, int64_t *out)
{
  const char *p = s, *end = s + n;
  const char *digits = NULL;
  size_t ndig = 0, nint = 0;
  bool dot = false;
  if (p < end && *p == '+')
    p++;
  digits = p;
  while (p < end && ((*p >= '0' && *p <= '9') || (*p == '.' && !dot))) {
    if (*p == '.')
      dot = true;
    else if (!dot)
      nint++;
    if (*p != '.')
      ndig++;
    p++;
  }
  const char *dend = p;
  if (!ndig)
    return false;
  long exp10 = 0;
  if (p < end && (*p == 'e' || *p == 'E')) {
    bool neg = false;
    long e = 0;
    int ed = 0;
    p++;
    if (p < end && (*p == '+' || *p == '-'))
      neg = *p++ == '-';
    while (p < end && *p >= '0' && *p <= '9') {
      if (e < 100000)
        e = e * 10 + (*p - '0');
      ed++;
      p++;
    }
    if (!ed)
      return false;
    exp10 = neg ? -e : e;
  }
  if (p != end)
    return false;

  /* The scaled value's integer part holds the first `point` digits of the digit string. */
  long point = (long)nint + exp10 + (long)scale;
  int64_t acc = 0;
  long i = 0;
  int first_frac = -1; /* the first digit after the scaled point, for rounding */
  bool inexact = false;
  for (const char *q = digits; q < dend; q++) {
    if (*q == '.')
      continue;
    int d = *q - '0';
    if (i < point) {
      if (acc > DEC_LIMIT / 10)
        return false;
      acc = acc * 10 + d;
    } else {
      if (first_frac < 0)
        first_frac = i == point ? d : 0;
      if (d)
        inexact = true;
    }
    i++;
  }
  for (; i < point; i++) {
    if (acc > DEC_LIMIT / 10)
      return false;
    acc *= 10;
  }
  if (inexact) {
    if (mode == GW_DEC_EXACT)
      return false;
    if (first_frac >= 5)
      acc++;
  }
  if (acc > DEC_LIMIT)
    return false;
  *out = acc;
  return true;
}
