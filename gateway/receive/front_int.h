/*
 * front_int.h: what front.c (accept, TLS, relay) and h2.c (HTTP/2) share about a connection and its loop.
 * Private to receive/. Everything here belongs to one loop thread, except what is marked shared.
 */
#ifndef GW_FRONT_INT_H
#define GW_FRONT_INT_H

#include <microhttpd.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/httpd.h"
#include "receive/front.h"

#define MAX_LOOPS 16
#define RELAY_BUF (16 * 1024)
#define TICK_MS 250
#define IP_BUCKETS 1024

enum tag_kind { TAG_LISTEN, TAG_WAKE, TAG_CLIENT, TAG_PAIR };

struct tag {
  enum tag_kind kind;
  struct fconn *c;
};

enum fstate {
  FS_PEEK,      /* plaintext: waiting for the first bytes, HTTP/2 connection preface or not */
  FS_HANDSHAKE, /* TLS handshake */
  FS_RELAY,     /* TLS HTTP/1.1, relayed to libmicrohttpd */
  FS_H2,        /* HTTP/2 (h2c prior knowledge, or ALPN h2), served by h2.c */
  FS_LINGER,    /* we ended it (GOAWAY flushed, write side shut): what the client still sends is discarded */
};

struct h2conn;

struct loop;

struct fconn {
  struct fconn *prev, *next;
  struct loop *lp;
  enum fstate st;
  int fd, pfd; /* the client; our end of the socketpair (relay), else -1 */
  struct tag tfd, tpfd;
  uint32_t ev_fd, ev_pfd; /* epoll interest now (0: not in the set) */
  SSL *ssl;
  struct sockaddr_storage addr;
  socklen_t alen;
  uint64_t deadline_ms; /* 0: none */
  bool handed;          /* libmicrohttpd holds the address slot now */
  bool closed;          /* in the loop's grave: freed after the current batch of events */
  bool ssl_wants_write, up_eof, down_eof, dead;
  unsigned char *up, *down; /* client -> libmicrohttpd, libmicrohttpd -> client */
  size_t up_off, up_len, down_off, down_len;
  struct h2conn *h2; /* FS_H2 */
};

struct loop {
  struct gw_front *f;
  int ep, wake;
  pthread_t th;
  struct tag tlisten, twake;
  struct fconn *head;
  struct fconn *grave; /* closed during this batch of events, freed after it */
  bool listening;
  uint64_t accept_paused_until;
  /* shared: HTTP/2 answers workers (or the spool's sync) finished, handed back to this loop */
  pthread_mutex_t done_mu;
  struct h2job *done_head;
};

struct h2job;

struct ipent {
  struct ipent *next;
  unsigned char a[16];
  uint32_t n;
};

struct gw_front {
  struct gw_pipeline *p;
  struct MHD_Daemon *mhd;
  int lfd;
  int nloops;
  struct loop loops[MAX_LOOPS];
  atomic_bool accepting, stopping;
  _Atomic int handing; /* hand-offs to libmicrohttpd under way (gw_front_stop_accepting waits for them) */
  struct gw_front_port port; /* its strings are the caller's, alive as long as the front */
  uint32_t max_conns, per_ip, header_ms, idle_ms;
  pthread_mutex_t ip_mu;
  struct ipent *ips[IP_BUCKETS];
  uint32_t total;
  _Atomic uint64_t refused_total, refused_ip, tls_failed;
  struct gw_httpd_guard *guard; /* read timeouts are counted with libmicrohttpd's */
  /* HTTP/2 requests run on workers, not on the loops (a request can take the CPU for milliseconds and
   * wait up to spool.full_wait_ms for room): a bounded queue, refused with 503 when full */
  pthread_mutex_t work_mu;
  pthread_cond_t work_cv;
  struct h2job *work_head, *work_tail;
  uint32_t work_len, work_max;
  int nworkers;
  pthread_t workers[MAX_LOOPS];
  bool workers_stop;
  _Atomic int64_t jobs; /* HTTP/2 requests dispatched and not yet answered */
  _Atomic uint64_t h2_conns, h2_streams;
  /* HTTP/2 answers the client did not take within the answer limit (h2.c): streams reset, connections closed */
  _Atomic uint64_t untaken_streams, untaken_conns;
  /* the gRPC port (port.h2_only): connections closed before their preface or by the policing, by reason */
  _Atomic uint64_t closed_handshake, closed_not_h2, closed_idle, closed_age, closed_pings;
};


uint64_t gw_front_now_ms(void);

/* Epoll interest of one of the connection's descriptors (0 = out of the set). */
void gw_front_interest(struct fconn *c, int fd, struct tag *t, uint32_t *cur, uint32_t want);
/* Close a connection: descriptors, TLS, its HTTP/2 session, its address slot. Freed after the batch. */
void gw_front_close(struct fconn *c);
/* Close it once the client has seen everything sent: shut the write side, then read and discard until the
 * client closes or a short deadline passes (gw_front_close now would reset what it has not read yet). */
void gw_front_linger(struct fconn *c);

/* Bytes to and from the client, through TLS when the connection has it. >0: bytes; 0: the client closed;
 * -1: would block (*want_write when TLS needs the socket writable); -2: a fatal error. */
ssize_t gw_front_read(struct fconn *c, void *buf, size_t n, bool *want_write);
ssize_t gw_front_write(struct fconn *c, const void *buf, size_t n, bool *want_write);

/* h2.c */
void gw_h2_start(struct fconn *c);          /* take the connection over (the preface is still unread) */
void gw_h2_event(struct fconn *c);          /* the socket is ready */
void gw_h2_expire(struct fconn *c, uint64_t now_ms); /* deadlines: idle connection, slow streams */
void gw_h2_close(struct fconn *c);          /* the connection is going: detach its streams */
void gw_h2_completions(struct loop *lp);    /* answers workers finished for this loop */
void gw_h2_workers_start(struct gw_front *f);
void gw_h2_workers_stop(struct gw_front *f);

#endif
