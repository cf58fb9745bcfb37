/*
 * luhn.c: the Luhn (mod 10) check for payment card candidates (ISO/IEC 7812-1 annex B). Separators (space,
 * dash) are skipped; anything else fails. A 16-digit id that fails the check is an id, not a card, and is
 * left alone.
 */
#include "redact/redact_int.h"

bool rd_luhn_ok(const char *s, size_t len)
{
  int sum = 0, nd = 0;
  for (size_t i = len; i-- > 0;) {
    char c = s[i];
    if (c == ' ' || c == '-')
      continue;
    if (c < '0' || c > '9')
      return false;
    int d = c - '0';
    if (nd++ & 1) {
      d *= 2;
      if (d > 9)
        d -= 9;
    }
    sum += d;
  }
  return nd >= 13 && nd <= 19 && sum % 10 == 0;
}
