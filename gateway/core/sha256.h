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

/*
 * Messages that share a prefix (a conversation's calls each resend the earlier turns): a digest can start
 * from the state another message's digest reached after a common prefix of k * GW_SHA256_CK bytes, and
 * leaves its own states at those points (checkpoints) for later messages. Only where the SHA extensions
 * are used (gw_sha256_resumable); elsewhere a job is hashed whole and leaves no checkpoint.
 */
#define GW_SHA256_CK 512
struct gw_sha256_mid {
  unsigned char s[32]; /* the eight state words, as the SHA extensions hold them */
};
struct gw_sha256_job {
  const void *p;
  size_t n;
  size_t from;                        /* bytes already hashed: a multiple of GW_SHA256_CK, at most n */
  const struct gw_sha256_mid *start;  /* the state after p[0, from) (from > 0) */
  struct gw_sha256_mid *ck;           /* NULL, or n / GW_SHA256_CK entries: ck[k - 1] gets the state after
                                       * p[0, k * GW_SHA256_CK) (those before from are not written) */
  unsigned char out[GW_SHA256_LEN];
};
bool gw_sha256_resumable(void);
/* Both jobs' digests (b may be NULL), computed together. */
void gw_sha256_jobs(struct gw_sha256_job *a, struct gw_sha256_job *b);

/* Tests: OpenSSL's SHA-256 even where the CPU has the SHA extensions. */
extern bool gw_sha256_no_ni;

#endif
