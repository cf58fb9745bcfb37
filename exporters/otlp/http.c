/*
 * http.c: the OTLP/HTTP protobuf transport, on libcurl (one easy handle per exporter thread).
 *
 * Key decisions:
 * - One handle reused for every request, so its connection stays open (keep-alive) and a TLS session is
 *   set up once. HTTP/2 is used when the server offers it through ALPN on TLS (CURL_HTTP_VERSION_2TLS);
 *   cleartext stays HTTP/1.1, which every OTLP receiver speaks (no h2c upgrade surprises).
 * - The whole request, connecting included, is bounded by the exporter's timeout; a hung peer costs one
 *   timeout, then the sink loop backs off and retries. A shutdown deadline (abort_at) cuts a request
 *   short through the progress callback, so SIGTERM never waits out a long timeout.
 * - Redirects are not followed (an OTLP endpoint that redirects is misconfigured: a non-retryable 3xx),
 *   only http and https are allowed, signals are off (CURLOPT_NOSIGNAL: we run in threads).
 * - The response body is kept up to 4 MiB (OTLP's recommended client cap); the rest is read and discarded.
 * - Retry-After comes from CURLINFO_RETRY_AFTER, which reads both forms the spec allows (seconds or an
 *   HTTP-date).
 * Error texts name the URL without credentials (config refuses userinfo in URLs) and never a header value.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "export_int.h"

struct gw_http_client {
  CURL *h;
  struct curl_slist *hdrs;
  _Atomic uint64_t *abort_at;
  char errbuf[CURL_ERROR_SIZE];
  uint8_t *body;
  size_t body_len, body_cap;
  char version[8];
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
  struct gw_http_client *c = ud;
  size_t n = size * nmemb;
  size_t room = GW_EXPORT_MAX_RESPONSE - c->body_len;
  size_t take = n < room ? n : room;
  if (take) {
    if (c->body_len + take > c->body_cap) {
      size_t cap = c->body_cap ? c->body_cap : 4096;
      while (cap < c->body_len + take)
        cap *= 2;
      c->body = gw_realloc(c->body, cap);
      c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, ptr, take);
    c->body_len += take;
  }
  return n; /* the rest is read and discarded */
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
  struct gw_http_client *c = ud;
  uint64_t at = c->abort_at ? atomic_load(c->abort_at) : 0;
  return at && gw_mono_ns() >= at; /* non-zero aborts the transfer */
}

struct gw_http_client *gw_http_client_create(const struct gw_export_conn_opts *o, struct gw_err *err)
{
  struct gw_http_client *c = gw_calloc(1, sizeof *c);
  c->abort_at = o->abort_at;
  c->h = curl_easy_init();
  if (!c->h) {
    gw_err_set(err, GW_ERR(INTERNAL), "exporters.%s: cannot create an HTTP client", o->name);
    free(c);
    return NULL;
  }
  c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/x-protobuf");
  if (o->gzip)
    c->hdrs = curl_slist_append(c->hdrs, "Content-Encoding: gzip");
  c->hdrs = curl_slist_append(c->hdrs, "Expect:"); /* no 100-continue round trip */
  for (size_t i = 0; o->headers && i < o->headers->n; i++) {
    size_t n = strlen(o->headers->name[i]) + strlen(o->headers->value[i]) + 3;
    char *line = gw_malloc(n);
    snprintf(line, n, "%s: %s", o->headers->name[i], o->headers->value[i]);
    c->hdrs = curl_slist_append(c->hdrs, line);
    memset(line, 0, n); /* may hold a key */
    free(line);
  }
  CURL *h = c->h;
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, c->hdrs);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "genai-gateway/" GW_VERSION);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  if (o->ca_file && *o->ca_file)
    curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
  return c;
}

void gw_http_client_destroy(struct gw_http_client *c)
{
  if (!c)
    return;
  curl_easy_cleanup(c->h);
  /* The list holds header lines that may carry keys: wipe before freeing. */
  for (struct curl_slist *l = c->hdrs; l; l = l->next)
    memset(l->data, 0, strlen(l->data));
  curl_slist_free_all(c->hdrs);
  free(c->body);
  free(c);
}

void gw_http_post(struct gw_http_client *c, const char *url, const void *body, size_t len, struct gw_export_reply *r)
{
  gw_export_reply_reset(r);
  c->body_len = 0;
  c->errbuf[0] = '\0';
  CURL *h = c->h;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, len ? body : "");
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  long ver = 0;
  curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &ver);
  snprintf(c->version, sizeof c->version, "%s", ver == CURL_HTTP_VERSION_2_0 ? "2" : ver == CURL_HTTP_VERSION_1_0 ? "1.0" : "1.1");
  if (rc != CURLE_OK || status == 0) {
    r->connected = false;
    uint64_t at = c->abort_at ? atomic_load(c->abort_at) : 0;
    if (rc == CURLE_ABORTED_BY_CALLBACK && at)
      snprintf(r->error, sizeof r->error, "POST %s: given up at shutdown", url);
    else
      snprintf(r->error, sizeof r->error, "POST %s: %s", url, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    return;
  }
  r->connected = true;
  r->http_status = status;
  curl_off_t ra = -1;
  if (curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
    r->retry_after_ms = (uint64_t)ra * 1000u;
  if (c->body_len) {
    r->body = gw_malloc(c->body_len);
    memcpy(r->body, c->body, c->body_len);
    r->body_len = c->body_len;
  }
  if (status < 200 || status >= 300) {
    /* OTLP error bodies are a google.rpc.Status; other servers send text or JSON. */
    char msg[160] = "";
    uint64_t ms = 0;
    bool found = false;
    char *ctype = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
    if (!(ctype && strstr(ctype, "protobuf") && gw_export_parse_status(r->body, r->body_len, msg, sizeof msg, &ms, &found)))
      gw_export_printable(msg, sizeof msg, r->body, r->body_len);
    snprintf(r->error, sizeof r->error, "HTTP %ld from %s%s%s", status, url, msg[0] ? ": " : "", msg);
  }
}

const char *gw_http_last_version(struct gw_http_client *c) { return c->version; }
