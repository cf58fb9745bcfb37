/*
 * otlp_sink.c: the cheapest OTLP receiver we can write, for the exporter benchmark (bench/export.sh): the
 * exporters' own cost is what is measured, so the receiving side must cost next to nothing. Not part of
 * the gateway, not a test fake (it checks nothing).
 *
 *   otlp_sink HTTP_PORT GRPC_PORT
 *
 * OTLP/HTTP on 127.0.0.1:HTTP_PORT (libmicrohttpd, a thread per connection): every POST is read whole and
 * answered 200 with an empty body (an empty Export*ServiceResponse, or Langfuse's "{}" for practical
 * purposes). OTLP/gRPC on 127.0.0.1:GRPC_PORT (gRPC core): every call, whatever its method, is answered OK
 * with an empty message. Bodies are neither inflated nor decoded. On SIGTERM/SIGINT prints
 * "http_requests=N http_bytes=N grpc_calls=N grpc_bytes=N" and exits.
 */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Atomic unsigned long long http_requests, http_bytes, grpc_calls, grpc_bytes;

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **state)
{
  if (!*state) {
    *state = (void *)1;
    return MHD_YES;
  }
  if (*size) {
    atomic_fetch_add(&http_bytes, *size);
    *size = 0;
    return MHD_YES;
  }
  atomic_fetch_add(&http_requests, 1);
  struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(r, "Content-Type", "application/x-protobuf");
  enum MHD_Result ret = MHD_queue_response(c, 200, r);
  MHD_destroy_response(r);
  return ret;
}

struct call {
  grpc_call *call;
  grpc_call_details details;
  grpc_metadata_array md;
  grpc_byte_buffer *in, *out;
  int cancelled, stage;
  grpc_slice status;
};

static grpc_server *server;
static grpc_completion_queue *cq;

static void request_one(void)
{
  struct call *c = calloc(1, sizeof *c);
  grpc_call_details_init(&c->details);
  grpc_metadata_array_init(&c->md);
  grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, c);
}

static void *grpc_loop(void *arg)
{
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN)
      break;
    struct call *c = ev.tag;
    if (!c) /* the shutdown notification */
      continue;
    if (c->stage == 0) {
      if (!ev.success) { /* shutting down */
        grpc_call_details_destroy(&c->details);
        grpc_metadata_array_destroy(&c->md);
        free(c);
        continue;
      }
      request_one();
      c->stage = 1;
      grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
      op.data.recv_message.recv_message = &c->in;
      grpc_call_start_batch(c->call, &op, 1, c, NULL);
    } else if (c->stage == 1) {
      atomic_fetch_add(&grpc_calls, 1);
      if (c->in) {
        atomic_fetch_add(&grpc_bytes, grpc_byte_buffer_length(c->in));
        grpc_byte_buffer_destroy(c->in);
      }
      c->stage = 2;
      grpc_slice empty = grpc_empty_slice();
      c->out = grpc_raw_byte_buffer_create(&empty, 1);
      c->status = grpc_slice_from_static_string("");
      grpc_op ops[4];
      memset(ops, 0, sizeof ops);
      ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
      ops[1].op = GRPC_OP_SEND_MESSAGE;
      ops[1].data.send_message.send_message = c->out;
      ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
      ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
      ops[2].data.send_status_from_server.status_details = &c->status;
      ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
      ops[3].data.recv_close_on_server.cancelled = &c->cancelled;
      grpc_call_start_batch(c->call, ops, 4, c, NULL);
    } else {
      grpc_byte_buffer_destroy(c->out);
      grpc_call_unref(c->call);
      grpc_call_details_destroy(&c->details);
      grpc_metadata_array_destroy(&c->md);
      free(c);
    }
  }
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: otlp_sink HTTP_PORT GRPC_PORT\n");
    return 2;
  }
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL,
                                          (uint16_t)atoi(argv[1]), NULL, NULL, on_http, NULL, MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "otlp_sink: cannot listen on HTTP port %s\n", argv[1]);
    return 1;
  }
  grpc_init();
  server = grpc_server_create(NULL, NULL);
  cq = grpc_completion_queue_create_for_next(NULL);
  grpc_server_register_completion_queue(server, cq, NULL);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%s", argv[2]);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  if (!grpc_server_add_http2_port(server, addr, creds)) {
    fprintf(stderr, "otlp_sink: cannot listen on gRPC %s\n", addr);
    return 1;
  }
  grpc_server_credentials_release(creds);
  grpc_server_start(server);
  for (int i = 0; i < 64; i++)
    request_one();
  pthread_t t;
  pthread_create(&t, NULL, grpc_loop, NULL);
  fprintf(stderr, "otlp_sink: HTTP 127.0.0.1:%s, gRPC %s\n", argv[1], addr);

  int sig;
  sigwait(&sigs, &sig);
  grpc_server_shutdown_and_notify(server, cq, NULL);
  grpc_server_cancel_all_calls(server);
  MHD_stop_daemon(d);
  printf("http_requests=%llu http_bytes=%llu grpc_calls=%llu grpc_bytes=%llu\n", atomic_load(&http_requests),
         atomic_load(&http_bytes), atomic_load(&grpc_calls), atomic_load(&grpc_bytes));
  fflush(stdout);
  _exit(0); /* the gRPC loop and its calls die with the process */
}
