/*
 * tls.h: the receivers' TLS material (receivers.tls.*): server certificate chain, private key, and the CA
 * certificates client certificates must chain to (mTLS), checked when loaded and re-read while running.
 *
 * A material is an immutable, refcounted snapshot: the PEM texts (what gRPC's certificate fetcher takes)
 * and an OpenSSL server context built from them (what the OTLP/HTTP port's own TLS uses: TLS 1.2 at least,
 * no renegotiation, client certificates required and verified when a CA is set, ALPN h2 / http/1.1).
 * A handle (struct gw_tls) serves the newest good material and re-reads the files on SIGHUP or when they
 * change (core/reload.h); a new material that does not load keeps the old one serving, and says why.
 * The private key is never logged or printed.
 */
#ifndef GW_TLS_H
#define GW_TLS_H

#include <openssl/ssl.h>
#include <stdint.h>
#include <time.h>

#include "core/gw.h"

struct gw_tls_files {
  const char *cert, *key, *ca; /* ca "" or NULL: no client certificates asked for */
};

/* Which file a load failed on. */
enum gw_tls_which { GW_TLS_CERT, GW_TLS_KEY, GW_TLS_CA };

enum { GW_TLS_ALPN_H2 = 1 << 0 /* offer h2 in ALPN (else http/1.1 only) */ };

struct gw_tls_material {
  uint64_t generation; /* 1 for the first load, +1 per reload */
  char *cert_pem;      /* the certificate chain, leaf first */
  char *key_pem;       /* secret */
  char *ca_pem;        /* NULL without client CAs */
  SSL_CTX *ctx;
  time_t not_after;    /* the leaf's expiry */
  char subject[128];   /* the leaf's subject, for logs */
};

/*
 * Read and check the files: PEM that parses, a key that matches the certificate, a certificate that has
 * not expired, CA certificates that parse. On failure returns GW_ERR(CONFIG), *which names the file and
 * why holds the reason (never key material). On success *out has one reference.
 */
gw_rc gw_tls_material_load(const struct gw_tls_files *f, unsigned flags, struct gw_tls_material **out,
                           enum gw_tls_which *which, char *why, size_t whylen);
void gw_tls_material_ref(struct gw_tls_material *m);
void gw_tls_material_unref(struct gw_tls_material *m); /* NULL is fine */

struct gw_tls;

/* Load the files now (failure: err "receivers.tls.<key>: '<path>': <reason>") and watch them. */
struct gw_tls *gw_tls_create(const struct gw_tls_files *f, unsigned flags, struct gw_err *err);
void gw_tls_destroy(struct gw_tls *t); /* NULL is fine; materials still referenced stay alive */

/* The material to use for a new connection, with a reference for the caller. Thread-safe. */
struct gw_tls_material *gw_tls_get(struct gw_tls *t);

/* The config key of a file, for messages: "receivers.tls.cert_file", ... */
const char *gw_tls_key_name(enum gw_tls_which w);

#endif
