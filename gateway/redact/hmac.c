/*
 * hmac.c: the hash action's token: "[STEM:<first 6 bytes of HMAC-SHA-256(key, value) in hex>]". Keyed, so
 * tokens cannot be reversed by hashing guesses without the key; same key and value give the same token,
 * so equal values stay joinable. 48 bits keep tokens short; collisions only merge two values' tokens.
 * The key is held by the redactor and never printed.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>

#include "redact/redact_int.h"

bool rd_hash_token(const unsigned char *key, size_t key_len, const char *stem, const char *v, size_t len, char *buf,
                   size_t bufsz)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)v, len, md, &mdlen) || mdlen < 6)
    return false;
  char h[13];
  gw_hex(h, md, 6);
  snprintf(buf, bufsz, "[%s:%s]", stem, h);
  return true;
}
