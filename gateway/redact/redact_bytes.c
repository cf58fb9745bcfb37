/*
 * redact_bytes.c: bytes values (OTLP AnyValue.bytes_value; base64 in OTLP/JSON and in a record's attribute
 * JSON). Issue 12: they were never scanned, so the base64 of an email and an SSN was stored as sent.
 *
 * Key decisions:
 * - Bytes that are valid UTF-8 text (RFC 3629, no NUL) are scanned as a string value is, JSON text in them
 *   too; a change gives the redacted text's bytes (still a bytes value), a drop removes the attribute.
 * - Other bytes are binary: their printable ASCII runs are scanned (every other byte stands for a
 *   separator), and what a detector finds in them is replaced in place, the binary around it kept. What is
 *   not readable as ASCII (UTF-16, compressed or encrypted data) cannot be scanned and passes as sent: deny
 *   such keys (redaction.deny_keys) when that matters.
 * - A record's attributes, resource and parameters hold bytes values in base64, as OTLP/JSON writes them
 *   (normalize renders them before redaction): there a string that is canonical base64 of at least 8
 *   characters is decoded and treated as bytes, and written back in base64 when something changed. A
 *   string attribute that happens to hold base64 is treated alike (its decoded text is scanned too).
 */
#include <string.h>

#include "redact/redact_int.h"

#define RD_NEUTRAL '\x1f' /* stands for a byte that is not printable ASCII in a binary value's scan copy */
#define B64_MIN 8

/* RFC 3629 UTF-8 without NUL. */
static bool utf8_text(const uint8_t *s, size_t n)
{
  size_t i = 0;
  while (i < n) {
    uint8_t c = s[i];
    if (c && c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      cp = c & 0x07;
    } else {
      return false; /* NUL, a continuation byte, C0/C1 overlong leads, F5..FF */
    }
    if (n - i <= need)
      return false;
    for (size_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return false;
      cp = cp << 6 | (s[i + k] & 0x3F);
    }
    if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
      return false;
    i += need + 1;
  }
  return true;
}

enum rd_res rd_bytes(struct rd_ctx *c, const uint8_t *b, size_t len, const char **out, size_t *outlen)
{
  if (!len || !c->r->enabled)
    return RD_SAME;
  if (utf8_text(b, len))
    return rd_value(c, (const char *)b, len, false, out, outlen);
  char *scan = gw_arena_alloc(c->a, len + 1);
  if (!scan) {
    c->oom = true;
    return RD_SAME;
  }
  for (size_t i = 0; i < len; i++)
    scan[i] = (b[i] >= 0x20 && b[i] < 0x7F) || b[i] == '\t' || b[i] == '\n' || b[i] == '\r' ? (char)b[i] : RD_NEUTRAL;
  scan[len] = 0;
  return rd_plain_src(c, scan, (const char *)b, len, out, outlen);
}

/* ---- base64 (RFC 4648 §4, padded: what OTLP/JSON and normalize write) ---- */

static int b64v(unsigned char ch)
{
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+')
    return 62;
  if (ch == '/')
    return 63;
  return -1;
}

static bool hexdigit(unsigned char ch)
{
  return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* s is canonical padded base64: its decoded length, else 0. Hex strings (ids, numbers) are valid base64
 * too but are not taken for it. */
size_t rd_b64_len(const char *s, size_t len)
{
  if (len < B64_MIN || len % 4)
    return 0;
  size_t pad = s[len - 1] == '=' ? (s[len - 2] == '=' ? 2 : 1) : 0;
  bool hex = !pad;
  for (size_t i = 0; i < len - pad; i++) {
    if (b64v((unsigned char)s[i]) < 0)
      return 0;
    hex = hex && hexdigit((unsigned char)s[i]);
  }
  if (hex)
    return 0;
  /* canonical: the bits a padded group does not use are zero, so the text is the encoding of its bytes */
  int last = b64v((unsigned char)s[len - pad - 1]);
  if ((pad == 1 && (last & 3)) || (pad == 2 && (last & 15)))
    return 0;
  return len / 4 * 3 - pad;
}

bool rd_b64_text(const char *s)
{
  size_t n = 0;
  while (b64v((unsigned char)s[n]) >= 0)
    n++; /* prose stops at its first space or punctuation: no strlen of long texts */
  size_t len = n;
  while (s[len] == '=' && len - n < 2)
    len++;
  return !s[len] && rd_b64_len(s, len) != 0;
}

static void b64_decode(const char *s, size_t len, uint8_t *o)
{
  size_t w = 0;
  for (size_t i = 0; i < len; i += 4) {
    uint32_t v = 0;
    int n = 0;
    for (int k = 0; k < 4; k++) {
      int d = b64v((unsigned char)s[i + k]);
      if (d >= 0) {
        v = v << 6 | (uint32_t)d;
        n++;
      } else {
        v <<= 6;
      }
    }
    o[w++] = (uint8_t)(v >> 16);
    if (n > 2)
      o[w++] = (uint8_t)(v >> 8);
    if (n > 3)
      o[w++] = (uint8_t)v;
  }
}

static char *b64_encode(struct gw_arena *a, const uint8_t *p, size_t n, size_t *outlen)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t ol = (n + 2) / 3 * 4;
  char *o = gw_arena_alloc(a, ol + 1), *w = o;
  if (!o)
    return NULL;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
    *w++ = tab[v >> 18];
    *w++ = tab[(v >> 12) & 63];
    *w++ = tab[(v >> 6) & 63];
    *w++ = tab[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
    *w++ = tab[v >> 18];
    *w++ = tab[(v >> 12) & 63];
    *w++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
    *w++ = '=';
  }
  *w = 0;
  *outlen = ol;
  return o;
}

enum rd_res rd_base64_value(struct rd_ctx *c, const char *s, size_t len, const char **out, size_t *outlen)
{
  if (c->lim && (c->lim->why || c->lim->stop_rc))
    return RD_SAME; /* the caller's scan masks it whole */
  size_t n = rd_b64_len(s, len);
  if (!n)
    return RD_SAME;
  uint8_t *raw = gw_arena_alloc(c->a, n + 1);
  if (!raw) {
    c->oom = true;
    return RD_SAME;
  }
  b64_decode(s, len, raw);
  raw[n] = 0;
  const char *o;
  size_t ol;
  enum rd_res res = rd_bytes(c, raw, n, &o, &ol);
  if (res != RD_CHANGED || c->oom)
    return res == RD_DROP ? RD_DROP : RD_SAME;
  if (!strcmp(o, RD_LIMIT_MASK) || !strcmp(o, RD_FAIL_MASK)) {
    *out = o; /* replaced whole: readable, not re-encoded */
    *outlen = ol;
    return RD_CHANGED;
  }
  char *e = b64_encode(c->a, (const uint8_t *)o, ol, outlen);
  if (!e) {
    c->oom = true;
    return RD_SAME;
  }
  *out = e;
  return RD_CHANGED;
}
