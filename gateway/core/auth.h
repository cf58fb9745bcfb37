/*
 * auth.h: bearer tokens / API keys for the receivers (receivers.auth.tokens_file).
 *
 * The file holds one token per line (blank lines and lines starting with '#' are skipped); every token in
 * it is valid at once, so a rotation adds the new token, rolls the clients over, then removes the old one.
 * A client presents one as `Authorization: Bearer <token>` or `x-api-key: <token>` (HTTP headers, gRPC
 * metadata). Only SHA-256 digests of the tokens are kept in memory, and a presented token is hashed and
 * compared with every digest in constant time (CRYPTO_memcmp, no early exit), so neither timing nor a core
 * dump gives a token away. Tokens are never logged; errors name line numbers.
 * The file is re-read on SIGHUP and when it changes (core/reload.h); a rewrite that does not load keeps the
 * previous set. Thread-safe: the set is an immutable snapshot swapped under a mutex.
 */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <stddef.h>

#include "core/gw.h"

struct gw_auth;

enum gw_auth_result { GW_AUTH_OK, GW_AUTH_MISSING, GW_AUTH_INVALID };

#define GW_AUTH_MIN_TOKEN 16  /* shorter tokens are refused at load: guessable */
#define GW_AUTH_MAX_TOKEN 512

/* Check a tokens file without keeping it: GW_OK, or GW_ERR(CONFIG) with why (no token text in it). */
gw_rc gw_auth_check_file(const char *path, char *why, size_t whylen);

/*
 * Read a file holding the one token a sender presents (exporters.<name>.token_file): blank lines and lines
 * starting with '#' are skipped, surrounding whitespace and a trailing newline (as a Kubernetes Secret
 * key often has) trimmed; exactly one token, by the rules above (printable ASCII without spaces, 16 to 512
 * characters). GW_OK with *out (heap; wipe it before freeing), or GW_ERR(CONFIG) with why (no token text).
 */
gw_rc gw_auth_read_token(const char *path, char **out, char *why, size_t whylen);

/* Load path and watch it. NULL with err ("receivers.auth.tokens_file: '<path>': <reason>") on failure. */
struct gw_auth *gw_auth_create(const char *path, struct gw_err *err);
void gw_auth_destroy(struct gw_auth *a); /* NULL is fine */

/* The credentials of one request: the Authorization header (or NULL) and the x-api-key header (or NULL),
 * with their lengths (values need not be NUL-terminated). Counts failures per listener on /metrics. */
enum gw_auth_result gw_auth_verify(struct gw_auth *a, const char *listener, const char *authorization,
                                   size_t alen, const char *api_key, size_t klen);

#endif
