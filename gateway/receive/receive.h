/*
 * receive.h: the OTLP receivers (HTTP on libmicrohttpd and front.c; gRPC on front.c's HTTP/2, or on the
 * gRPC core C API with receivers.grpc.engine grpc-core) and their shared status mapping. Both hand each request to gw_request_traces (request.h) and answer from the error table.
 */
#ifndef GW_RECEIVE_H
#define GW_RECEIVE_H

#include "receive/request.h"

struct gw_http_receiver;
struct gw_grpc_receiver;

/* Start listening on conf->receivers.http_addr; NULL with err filled (e.g. address in use). */
struct gw_http_receiver *gw_http_receiver_start(struct gw_pipeline *p, struct gw_err *err);
/* Stop accepting, let in-flight requests finish, stop. NULL is fine. */
void gw_http_receiver_stop(struct gw_http_receiver *r);

struct gw_grpc_receiver *gw_grpc_receiver_start(struct gw_pipeline *p, struct gw_err *err);
void gw_grpc_receiver_stop(struct gw_grpc_receiver *r);

/* Encode the response body for a request outcome (OTLP ExportTraceServiceResponse on success, a
 * google.rpc.Status on failure) as protobuf or JSON, into the arena. */
void gw_receive_encode_response(struct gw_arena *a, bool json, const struct gw_request_outcome *o, uint32_t retry_after_s,
                                const void **body, size_t *len);

#endif
