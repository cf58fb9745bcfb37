/*
 * sha256.h: SHA-256 (FIPS 180-4) of messages in memory, two at a time where the CPU has the SHA extensions.
 *
 * One SHA-256 block with the SHA extensions is a chain of 32 SHA256RNDS2 instructions, each waiting for the
 * one before: a single message uses a fraction of the unit. Two messages hashed in lockstep run two
 * independent chains, about twice the bytes a second. Without the extensions (or with gw_sha256_no_ni set)
 * each digest is OpenSSL's. The digests are the same either way.
 */
#ifndef GW_SHA256_H
#define GW_SHA256_H

#include <stdbool.h>
#include <stddef.h>

#define GW_SHA256_LEN 32

/* The digest of p[0, n). */
void gw_sha256(const void *p, size_t n, unsigned char out[GW_SHA256_LEN]);

/* The digests of a[0, na) and b[0, nb), computed together. */
void gw_sha256_pair(const void *a, size_t na, unsigned char out_a[GW_SHA256_LEN], const void *b, size_t nb,
                    unsigned char out_b[GW_SHA256_LEN]);

/* Tests: OpenSSL's SHA-256 even where the CPU has the SHA extensions. */
extern bool gw_sha256_no_ni;

#endif
