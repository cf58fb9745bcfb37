/*
 * grpc.c: the OTLP/gRPC transport, on the gRPC core C API (the same library the receiver uses).
 *
 * One channel per exporter, created at start and kept: gRPC connects on the first call and reconnects by
 * itself with its own backoff, so a peer that is down costs a fast UNAVAILABLE, which the sink loop retries
 * with ours. gRPC's built-in retries are off (GRPC_ARG_ENABLE_RETRIES = 0): one place decides, and counts.
 * Each call is unary with a deadline (the exporter's timeout), run on a pluck completion queue owned by
 * the exporter's thread. The queue is plucked in short slices so a shutdown deadline (abort_at) can cancel
 * a call in flight; the deadline alone already bounds it, so no thread waits forever on a silent peer.
 * gzip is the channel's default message compression when configured (grpc-encoding: gzip). Credentials:
 * plaintext, or TLS with the given CA file or the system roots. Headers go as initial metadata, lowercase.
 * The answer is read from the status, its details (grpc-status-details-bin: google.rpc.Status, for
 * RetryInfo) and the response message (partial_success).
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/compression.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "export_int.h"

#define PLUCK_SLICE_MS 100

struct gw_grpc_client {
  char *target;
  grpc_channel *ch;
  grpc_completion_queue *cq;
  uint32_t timeout_ms;
  _Atomic uint64_t *abort_at;
  grpc_metadata *md;
  size_t nmd;
};

static char *read_pem(const char *path, struct gw_err *err, const char *name)
{
  FILE *f = fopen(path, "rb");
  if (!f) {
    gw_err_set(err, GW_ERR(CONFIG), "exporters.%s.ca_file: cannot read '%s': %s", name, path, strerror(errno));
    return NULL;
  }
  size_t cap = 1 << 16, n = 0;
  char *buf = gw_malloc(cap + 1);
  for (;;) {
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0)
      break;
    if (n == cap) {
      if (cap >= (8u << 20))
        break;
      cap *= 2;
      buf = gw_realloc(buf, cap + 1);
    }
  }
  fclose(f);
  buf[n] = '\0';
  if (!strstr(buf, "-----BEGIN CERTIFICATE-----")) {
    gw_err_set(err, GW_ERR(CONFIG), "exporters.%s.ca_file: '%s' holds no PEM certificate", name, path);
    free(buf);
    return NULL;
  }
  return buf;
}

struct gw_grpc_client *gw_grpc_client_create(const char *target, const struct gw_export_conn_opts *o,
                                             struct gw_err *err)
{
  grpc_channel_credentials *creds;
  if (o->tls) {
    char *pem = NULL;
    if (o->ca_file && *o->ca_file && !(pem = read_pem(o->ca_file, err, o->name)))
      return NULL;
    creds = grpc_ssl_credentials_create(pem, NULL, NULL, NULL);
    free(pem);
  } else {
    creds = grpc_insecure_credentials_create();
  }
  if (!creds) {
    gw_err_set(err, GW_ERR(CONFIG), "exporters.%s: cannot set up %s credentials", o->name, o->tls ? "TLS" : "plaintext");
    return NULL;
  }
  struct gw_grpc_client *c = gw_calloc(1, sizeof *c);
  c->target = gw_strdup(target);
  c->timeout_ms = o->timeout_ms;
  c->abort_at = o->abort_at;

  grpc_arg args[5];
  size_t na = 0;
  args[na].type = GRPC_ARG_INTEGER;
  args[na].key = (char *)GRPC_ARG_ENABLE_RETRIES;
  args[na++].value.integer = 0;
  args[na].type = GRPC_ARG_INTEGER;
  args[na].key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[na++].value.integer = (int)GW_EXPORT_MAX_RESPONSE;
  args[na].type = GRPC_ARG_STRING;
  args[na].key = (char *)GRPC_ARG_PRIMARY_USER_AGENT_STRING;
  args[na++].value.string = (char *)"genai-gateway/" GW_VERSION;
  args[na].type = GRPC_ARG_INTEGER;
  args[na].key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS;
  args[na++].value.integer = 5000; /* come back soon after a peer restarts; our own loop backs off too */
  if (o->gzip) {
    args[na].type = GRPC_ARG_INTEGER;
    args[na].key = (char *)GRPC_COMPRESSION_CHANNEL_DEFAULT_ALGORITHM;
    args[na++].value.integer = GRPC_COMPRESS_GZIP;
  }
  grpc_channel_args ca = {na, args};
  c->ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  c->cq = grpc_completion_queue_create_for_pluck(NULL);

  if (o->headers && o->headers->n) {
    c->md = gw_calloc(o->headers->n, sizeof *c->md);
    for (size_t i = 0; i < o->headers->n; i++) {
      char key[128];
      size_t kl = strlen(o->headers->name[i]);
      if (kl >= sizeof key)
        kl = sizeof key - 1;
      for (size_t k = 0; k < kl; k++)
        key[k] = (char)tolower((unsigned char)o->headers->name[i][k]); /* gRPC metadata keys are lowercase */
      key[kl] = '\0';
      c->md[i].key = grpc_slice_from_copied_string(key);
      c->md[i].value = grpc_slice_from_copied_string(o->headers->value[i]);
    }
    c->nmd = o->headers->n;
  }
  return c;
}

void gw_grpc_client_destroy(struct gw_grpc_client *c)
{
  if (!c)
    return;
  for (size_t i = 0; i < c->nmd; i++) {
    grpc_slice_unref(c->md[i].key);
    grpc_slice_unref(c->md[i].value);
  }
  free(c->md);
  grpc_channel_destroy(c->ch);
  grpc_completion_queue_shutdown(c->cq);
  while (grpc_completion_queue_pluck(c->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN)
    ;
  grpc_completion_queue_destroy(c->cq);
  free(c->target);
  free(c);
}

/* The grpc-status-details-bin trailer (gRPC core hands -bin values over decoded). */
static void read_details(const grpc_metadata_array *tr, struct gw_export_reply *r, char *msg, size_t msg_len)
{
  for (size_t i = 0; i < tr->count; i++) {
    if (!grpc_slice_str_cmp(tr->metadata[i].key, "grpc-status-details-bin")) {
      uint64_t ms = 0;
      bool found = false;
      if (gw_export_parse_status(GRPC_SLICE_START_PTR(tr->metadata[i].value), GRPC_SLICE_LENGTH(tr->metadata[i].value),
                                 msg, msg_len, &ms, &found)) {
        r->retry_info = found;
        r->retry_after_ms = ms;
      }
      return;
    }
  }
}

void gw_grpc_call(struct gw_grpc_client *c, const char *method, const void *msg, size_t len, bool gzipped,
                  struct gw_export_reply *r)
{
  gw_export_reply_reset(r);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis((int64_t)c->timeout_ms, GPR_TIMESPAN));
  grpc_slice mslice = grpc_slice_from_static_string(method);
  grpc_call *call = grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, mslice, NULL, deadline, NULL);
  if (!call) {
    snprintf(r->error, sizeof r->error, "gRPC %s: cannot create the call", c->target);
    return;
  }
  grpc_slice payload = grpc_slice_from_copied_buffer(msg, len);
  /* A message we compressed ourselves is marked so: gRPC core sends it with the compressed flag under the
   * channel's grpc-encoding: gzip and does not compress it again. */
  grpc_byte_buffer *send = gzipped ? grpc_raw_compressed_byte_buffer_create(&payload, 1, GRPC_COMPRESS_GZIP)
                                   : grpc_raw_byte_buffer_create(&payload, 1);
  grpc_slice_unref(payload);
  grpc_byte_buffer *recv = NULL;
  grpc_metadata_array initial, trailing;
  grpc_metadata_array_init(&initial);
  grpc_metadata_array_init(&trailing);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  const char *error_string = NULL;

  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = c->nmd;
  ops[0].data.send_initial_metadata.metadata = c->md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.error_string = &error_string;
  void *tag = &ops;
  bool aborted = false;
  if (grpc_call_start_batch(call, ops, 6, tag, NULL) != GRPC_CALL_OK) {
    snprintf(r->error, sizeof r->error, "gRPC %s: cannot start the call", c->target);
    goto out;
  }
  for (;;) {
    gpr_timespec slice = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(PLUCK_SLICE_MS, GPR_TIMESPAN));
    grpc_event ev = grpc_completion_queue_pluck(c->cq, tag, slice, NULL);
    if (ev.type == GRPC_OP_COMPLETE)
      break;
    uint64_t at = c->abort_at ? atomic_load(c->abort_at) : 0;
    if (!aborted && at && gw_mono_ns() >= at) {
      grpc_call_cancel(call, NULL); /* completes the batch with CANCELLED */
      aborted = true;
    }
  }

  char msgbuf[160] = "";
  if (status == GRPC_STATUS_OK) {
    r->connected = true;
    r->grpc_code = 0;
    if (recv) {
      grpc_byte_buffer_reader rd;
      if (grpc_byte_buffer_reader_init(&rd, recv)) {
        grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
        size_t n = GRPC_SLICE_LENGTH(all);
        if (n) {
          r->body = gw_malloc(n);
          memcpy(r->body, GRPC_SLICE_START_PTR(all), n);
          r->body_len = n;
        }
        grpc_slice_unref(all);
        grpc_byte_buffer_reader_destroy(&rd);
      }
    }
  } else {
    /* A status the server sent, or one gRPC made up for a connection that failed or timed out: both are
     * judged by code (UNAVAILABLE and DEADLINE_EXCEEDED are retryable), so the call counts as answered. */
    r->connected = true;
    r->grpc_code = (int)status;
    read_details(&trailing, r, msgbuf, sizeof msgbuf);
    char det[160];
    gw_export_printable(det, sizeof det, GRPC_SLICE_START_PTR(details), GRPC_SLICE_LENGTH(details));
    snprintf(r->error, sizeof r->error, "gRPC %s: status %d%s%s%s", c->target, (int)status,
             aborted ? " (given up at shutdown)" : "", det[0] ? ": " : "", det[0] ? det : msgbuf);
  }
out:
  if (recv)
    grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_metadata_array_destroy(&initial);
  grpc_metadata_array_destroy(&trailing);
  grpc_slice_unref(details);
  if (error_string)
    gpr_free((void *)error_string);
  grpc_call_unref(call);
}
