/*
 * tls.c: loading, checking and re-reading the receivers' TLS material (see tls.h).
 *
 * Files are read whole into memory (at most 1 MiB each) once per load: the same bytes feed the OpenSSL
 * context and gRPC's fetcher, so both ports always serve the same certificate. OpenSSL's own reason
 * (ERR_reason_error_string) is added to our description of what failed; a passphrase-protected key is
 * refused rather than prompting on a terminal. Reloads come from core/reload.c's thread or SIGHUP; the
 * swap is a pointer exchange under a mutex, readers take a reference, so a connection keeps the material
 * it started with.
 */
#include "core/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/reload.h"

#define TLS_MAX_FILE (1u << 20)

struct material_int {
  struct gw_tls_material pub;
  _Atomic int refs;
};

struct gw_tls {
  char cert[512], key[512], ca[512];
  unsigned flags;
  pthread_mutex_t mu;
  struct gw_tls_material *cur;
  int watch;
  _Atomic uint64_t reloads_ok, reloads_failed;
};

const char *gw_tls_key_name(enum gw_tls_which w)
{
  return w == GW_TLS_CERT ? "receivers.tls.cert_file" : w == GW_TLS_KEY ? "receivers.tls.key_file"
                                                                         : "receivers.tls.client_ca_file";
}

/* The first OpenSSL reason queued (the cause; later ones are the layers above giving up), or "". Clears
 * the queue. */
static const char *ossl_reason(void)
{
  unsigned long e, first = ERR_get_error();
  while ((e = ERR_get_error()) != 0)
    ;
  const char *r = first ? ERR_reason_error_string(first) : NULL;
  return r ? r : "";
}

static char *read_whole(const char *path, char *why, size_t whylen)
{
  size_t n;
  bool too_large;
  char *buf = gw_file_read(path, TLS_MAX_FILE, &n, &too_large, why, whylen);
  if (!buf && too_large)
    snprintf(why, whylen, "larger than 1 MiB: not a PEM file");
  return buf;
}

static int no_passphrase(char *buf, int size, int rw, void *u)
{
  (void)buf, (void)size, (void)rw, (void)u;
  return -1;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg)
{
  (void)ssl;
  static const unsigned char with_h2[] = "\x02h2\x08http/1.1";
  static const unsigned char h1_only[] = "\x08http/1.1";
  bool h2 = ((uintptr_t)arg & GW_TLS_ALPN_H2) != 0;
  const unsigned char *srv = h2 ? with_h2 : h1_only;
  unsigned srvlen = h2 ? sizeof with_h2 - 1 : sizeof h1_only - 1;
  unsigned char *sel;
  unsigned char sellen;
  /* Server preference order; a client offering neither goes on without ALPN and is served HTTP/1.1. */
  if (SSL_select_next_proto(&sel, &sellen, srv, srvlen, in, inlen) != OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_NOACK;
  *out = sel;
  *outlen = sellen;
  return SSL_TLSEXT_ERR_OK;
}

static time_t asn1_time(const ASN1_TIME *t)
{
  struct tm tm;
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
    return 0;
  return timegm(&tm);
}

static void material_free(struct gw_tls_material *m)
{
  if (!m)
    return;
  SSL_CTX_free(m->ctx);
  free(m->cert_pem);
  if (m->key_pem) {
    OPENSSL_cleanse(m->key_pem, strlen(m->key_pem));
    free(m->key_pem);
  }
  free(m->ca_pem);
  free(m);
}

void gw_tls_material_ref(struct gw_tls_material *m) { atomic_fetch_add(&((struct material_int *)m)->refs, 1); }

void gw_tls_material_unref(struct gw_tls_material *m)
{
  if (m && atomic_fetch_sub(&((struct material_int *)m)->refs, 1) == 1)
    material_free(m);
}

#define FAIL(w, ...)                                                                                         \
  do {                                                                                                       \
    *which = (w);                                                                                            \
    snprintf(why, whylen, __VA_ARGS__);                                                                      \
    goto out;                                                                                                \
  } while (0)

gw_rc gw_tls_material_load(const struct gw_tls_files *f, unsigned flags, struct gw_tls_material **out,
                           enum gw_tls_which *which, char *why, size_t whylen)
{
  gw_rc result = GW_ERR(CONFIG);
  struct material_int *mi = gw_calloc(1, sizeof *mi);
  struct gw_tls_material *m = &mi->pub;
  BIO *bio = NULL;
  X509 *leaf = NULL;
  EVP_PKEY *key = NULL;
  *out = NULL;
  ERR_clear_error();

  if (!(m->cert_pem = read_whole(f->cert, why, whylen))) {
    *which = GW_TLS_CERT;
    goto out;
  }
  if (!(m->key_pem = read_whole(f->key, why, whylen))) {
    *which = GW_TLS_KEY;
    goto out;
  }
  if (f->ca && f->ca[0] && !(m->ca_pem = read_whole(f->ca, why, whylen))) {
    *which = GW_TLS_CA;
    goto out;
  }

  m->ctx = SSL_CTX_new(TLS_server_method());
  if (!m->ctx)
    FAIL(GW_TLS_CERT, "cannot create a TLS context: %s", ossl_reason());
  SSL_CTX_set_min_proto_version(m->ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(m->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(m->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_id_context(m->ctx, (const unsigned char *)"genai-gateway", 13);
  SSL_CTX_set_alpn_select_cb(m->ctx, alpn_select, (void *)(uintptr_t)flags);

  /* The chain: the leaf first, then intermediates. */
  bio = BIO_new_mem_buf(m->cert_pem, -1);
  leaf = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
  if (!leaf)
    FAIL(GW_TLS_CERT, "holds no PEM certificate (%s)", ossl_reason());
  if (SSL_CTX_use_certificate(m->ctx, leaf) != 1)
    FAIL(GW_TLS_CERT, "certificate refused: %s", ossl_reason());
  for (;;) {
    X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    if (!x)
      break;
    if (SSL_CTX_add0_chain_cert(m->ctx, x) != 1) {
      X509_free(x);
      FAIL(GW_TLS_CERT, "intermediate certificate refused: %s", ossl_reason());
    }
  }
  ERR_clear_error(); /* the loop ends on "no start line" */
  BIO_free(bio);
  bio = NULL;
  m->not_after = asn1_time(X509_get0_notAfter(leaf));
  X509_NAME_oneline(X509_get_subject_name(leaf), m->subject, sizeof m->subject);
  if (X509_cmp_current_time(X509_get0_notAfter(leaf)) < 0) {
    char when[32];
    struct tm tm;
    gmtime_r(&m->not_after, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    FAIL(GW_TLS_CERT, "the certificate (%s) expired on %s", m->subject, when);
  }

  bio = BIO_new_mem_buf(m->key_pem, -1);
  key = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL);
  if (!key) {
    const char *r = ossl_reason();
    if (!strstr(m->key_pem, "PRIVATE KEY-----"))
      FAIL(GW_TLS_KEY, "holds no PEM private key");
    if (strstr(m->key_pem, "ENCRYPTED"))
      FAIL(GW_TLS_KEY, "holds a passphrase-protected private key: not supported, give it unencrypted");
    FAIL(GW_TLS_KEY, "holds a private key that does not parse (%s)", r);
  }
  BIO_free(bio);
  bio = NULL;
  if (SSL_CTX_use_PrivateKey(m->ctx, key) != 1 || SSL_CTX_check_private_key(m->ctx) != 1)
    FAIL(GW_TLS_KEY, "the key does not match the certificate in receivers.tls.cert_file (%s)", ossl_reason());

  if (m->ca_pem) {
    X509_STORE *store = SSL_CTX_get_cert_store(m->ctx);
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    int n = 0;
    bio = BIO_new_mem_buf(m->ca_pem, -1);
    for (;;) {
      X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
      if (!x)
        break;
      X509_STORE_add_cert(store, x);
      sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(x)));
      X509_free(x);
      n++;
    }
    ERR_clear_error();
    if (n == 0) {
      sk_X509_NAME_pop_free(names, X509_NAME_free);
      FAIL(GW_TLS_CA, "holds no PEM certificate");
    }
    SSL_CTX_set_client_CA_list(m->ctx, names);
    SSL_CTX_set_verify(m->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
  }

  atomic_init(&mi->refs, 1);
  *out = m;
  m = NULL;
  result = GW_OK;
out:
  BIO_free(bio);
  X509_free(leaf);
  EVP_PKEY_free(key);
  material_free(m);
  return result;
}

/* ---- the live handle ---- */

static void render(struct gw_sb *out, void *ctx)
{
  struct gw_tls *t = ctx;
  pthread_mutex_lock(&t->mu);
  long long not_after = (long long)t->cur->not_after;
  pthread_mutex_unlock(&t->mu);
  gw_sb_printf(out,
               "# HELP genai_gateway_tls_cert_expiry_timestamp_seconds When the receivers' certificate expires\n"
               "# TYPE genai_gateway_tls_cert_expiry_timestamp_seconds gauge\n"
               "genai_gateway_tls_cert_expiry_timestamp_seconds %lld\n"
               "# HELP genai_gateway_tls_reloads_total Re-reads of receivers.tls files (SIGHUP or a change)\n"
               "# TYPE genai_gateway_tls_reloads_total counter\n"
               "genai_gateway_tls_reloads_total{result=\"ok\"} %llu\n"
               "genai_gateway_tls_reloads_total{result=\"failed\"} %llu\n",
               not_after, (unsigned long long)atomic_load(&t->reloads_ok),
               (unsigned long long)atomic_load(&t->reloads_failed));
}

static void reload(void *arg, int forced)
{
  struct gw_tls *t = arg;
  struct gw_tls_files f = {t->cert, t->key, t->ca};
  struct gw_tls_material *m;
  enum gw_tls_which which;
  char why[256];
  pthread_mutex_lock(&t->mu);
  uint64_t gen = t->cur->generation;
  pthread_mutex_unlock(&t->mu);
  if (gw_tls_material_load(&f, t->flags, &m, &which, why, sizeof why) != GW_OK) {
    atomic_fetch_add(&t->reloads_failed, 1);
    gw_error("tls", "%s: '%s': %s; still serving the certificate loaded before", gw_tls_key_name(which),
             which == GW_TLS_CERT ? t->cert : which == GW_TLS_KEY ? t->key : t->ca, why);
    return;
  }
  m->generation = gen + 1;
  pthread_mutex_lock(&t->mu);
  struct gw_tls_material *old = t->cur;
  t->cur = m;
  pthread_mutex_unlock(&t->mu);
  gw_tls_material_unref(old);
  atomic_fetch_add(&t->reloads_ok, 1);
  char when[32];
  struct tm tm;
  gmtime_r(&m->not_after, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
  gw_info("tls", "receivers' TLS material re-read (%s): %s, valid until %s", forced ? "SIGHUP" : "files changed",
          m->subject, when);
}

struct gw_tls *gw_tls_create(const struct gw_tls_files *f, unsigned flags, struct gw_err *err)
{
  struct gw_tls_material *m;
  enum gw_tls_which which;
  char why[256];
  if (gw_tls_material_load(f, flags, &m, &which, why, sizeof why) != GW_OK) {
    gw_err_set(err, GW_ERR(CONFIG), "%s: '%s': %s", gw_tls_key_name(which),
               which == GW_TLS_CERT ? f->cert : which == GW_TLS_KEY ? f->key : f->ca, why);
    return NULL;
  }
  m->generation = 1;
  struct gw_tls *t = gw_calloc(1, sizeof *t);
  snprintf(t->cert, sizeof t->cert, "%s", f->cert);
  snprintf(t->key, sizeof t->key, "%s", f->key);
  snprintf(t->ca, sizeof t->ca, "%s", f->ca ? f->ca : "");
  t->flags = flags;
  pthread_mutex_init(&t->mu, NULL);
  t->cur = m;
  const char *paths[3] = {t->cert, t->key, t->ca};
  t->watch = gw_reload_add(paths, 3, reload, t);
  gw_metrics_register(render, t);
  return t;
}

void gw_tls_destroy(struct gw_tls *t)
{
  if (!t)
    return;
  gw_reload_remove(t->watch);
  gw_metrics_unregister(render, t);
  gw_tls_material_unref(t->cur);
  pthread_mutex_destroy(&t->mu);
  free(t);
}

struct gw_tls_material *gw_tls_get(struct gw_tls *t)
{
  pthread_mutex_lock(&t->mu);
  struct gw_tls_material *m = t->cur;
  gw_tls_material_ref(m);
  pthread_mutex_unlock(&t->mu);
  return m;
}
