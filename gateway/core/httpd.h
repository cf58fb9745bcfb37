/*
 * httpd.h: read deadlines for libmicrohttpd daemons (the OTLP/HTTP receiver and the admin port).
 *
 * libmicrohttpd's MHD_OPTION_CONNECTION_TIMEOUT is an idle timeout: a client trickling one byte every few
 * seconds (slowloris) keeps its connection forever. A guard adds what it lacks: the request line and
 * headers must arrive within header_ms, the body within body_ms after them, and a kept-alive connection
 * must start its next request within idle_ms + header_ms of the previous answer. A watchdog thread shuts
 * down (shutdown(2), never close) the socket of a connection past its deadline; libmicrohttpd then sees the
 * end of the stream and closes it the ordinary way. The guard also counts open connections per listener.
 *
 * Wiring: pass gw_httpd_guard_notify as MHD_OPTION_NOTIFY_CONNECTION and gw_httpd_guard_uri as
 * MHD_OPTION_URI_LOG_CALLBACK (both with the guard as closure), call gw_httpd_guard_phase from the access
 * handler (headers complete: first call; body complete: last call) and from the request-completed callback.
 * Thread-safe: any libmicrohttpd thread may call these at once.
 */
#ifndef GW_HTTPD_H
#define GW_HTTPD_H

#include <microhttpd.h>
#include <stdint.h>

#include "core/gw.h"

struct gw_httpd_guard;

/* Phases a request moves through; each sets the connection's next deadline. */
enum gw_httpd_phase {
  GW_HTTPD_HEADERS_DONE, /* the body (if any) is due within body_ms */
  GW_HTTPD_BODY_DONE,    /* the gateway is working on the answer: no read deadline */
  GW_HTTPD_ANSWERED,     /* the request is over: the next one must start within idle_ms + header_ms */
};

/* A guard named `listener` (the metrics label: "otlp_http", "admin"). Starts the watchdog thread. */
struct gw_httpd_guard *gw_httpd_guard_create(const char *listener, uint32_t idle_ms, uint32_t header_ms,
                                             uint32_t body_ms);
/* Stop the watchdog and free. Call after MHD_stop_daemon (every connection closed). NULL is fine. */
void gw_httpd_guard_destroy(struct gw_httpd_guard *g);

/* MHD_NotifyConnectionCallback: registers and forgets connections. cls is the guard. */
void gw_httpd_guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code);
/* MHD_OPTION_URI_LOG_CALLBACK: a request line arrived. cls is the guard; returns NULL (no request state). */
void *gw_httpd_guard_uri(void *cls, const char *uri, struct MHD_Connection *c);
/* The connection's request reached phase p. */
void gw_httpd_guard_phase(struct MHD_Connection *c, enum gw_httpd_phase p);

/* Count a connection closed by another reader's deadline (HTTP/2, TLS handshakes) with this guard's. */
enum gw_httpd_timeout { GW_HTTPD_TIMEOUT_HEADERS, GW_HTTPD_TIMEOUT_BODY, GW_HTTPD_TIMEOUT_KEEPALIVE };
void gw_httpd_guard_count(struct gw_httpd_guard *g, enum gw_httpd_timeout t);

/* Connections open now. */
uint64_t gw_httpd_guard_open(const struct gw_httpd_guard *g);

#endif
