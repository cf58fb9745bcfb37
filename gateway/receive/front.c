/*
 * front.c: the OTLP/HTTP port's listener, and the OTLP/gRPC port's with receivers.grpc.engine nghttp2 (see
 * front.h for the why). One instance per port; what differs between the ports is in struct gw_front_port.
 *
 * receivers.http.threads loops, each an epoll set holding the shared listening socket (EPOLLEXCLUSIVE:
 * one loop wakes per connection) and the connections it accepted; a connection never changes loop, so its
 * state needs no lock. Only the address table is shared (one mutex, taken at accept and at close).
 *
 * TLS relay: the client's bytes are decrypted into a 16 KiB buffer and written to our end of a socketpair
 * whose other end libmicrohttpd serves; its answers come back the same way. A full buffer stops reading
 * from the side that fills it (the kernel's socket buffers then push back on the peer), so a relay holds
 * at most 32 KiB. libmicrohttpd's deadlines (core/httpd.h) apply to the relayed connection; when it closes
 * its end, the relay flushes what is left (bounded by idle_timeout_ms) and closes the client.
 */
#include "receive/front_int.h"
#include "receive/lane.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/net.h"
#include "core/tls.h"

uint64_t gw_front_now_ms(void) { return gw_mono_ns() / 1000000u; }
#define now_ms gw_front_now_ms

/* ---- the address table ---- */

static void addr_key(const struct sockaddr *sa, unsigned char key[16])
{
  memset(key, 0, 16);
  if (sa->sa_family == AF_INET) {
    key[10] = key[11] = 0xff;
    memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
  } else if (sa->sa_family == AF_INET6) {
    memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
  }
}

static unsigned addr_hash(const unsigned char k[16])
{
  uint32_t h = 2166136261u;
  for (int i = 0; i < 16; i++)
    h = (h ^ k[i]) * 16777619u;
  return h % IP_BUCKETS;
}

/* Take a slot for a new connection from sa, or say why not. */
static bool admit(struct gw_front *f, const struct sockaddr *sa)
{
  unsigned char k[16];
  addr_key(sa, k);
  unsigned b = addr_hash(k);
  pthread_mutex_lock(&f->ip_mu);
  if (f->total >= f->max_conns) {
    pthread_mutex_unlock(&f->ip_mu);
    atomic_fetch_add(&f->refused_total, 1);
    return false;
  }
  struct ipent *e = f->ips[b];
  while (e && memcmp(e->a, k, 16) != 0)
    e = e->next;
  if (f->per_ip && e && e->n >= f->per_ip) {
    pthread_mutex_unlock(&f->ip_mu);
    atomic_fetch_add(&f->refused_ip, 1);
    return false;
  }
  if (!e) {
    e = gw_calloc(1, sizeof *e);
    memcpy(e->a, k, 16);
    e->next = f->ips[b];
    f->ips[b] = e;
  }
  e->n++;
  f->total++;
  pthread_mutex_unlock(&f->ip_mu);
  return true;
}

void gw_front_release(struct gw_front *f, const struct sockaddr *sa)
{
  if (!f || !sa)
    return;
  unsigned char k[16];
  addr_key(sa, k);
  unsigned b = addr_hash(k);
  pthread_mutex_lock(&f->ip_mu);
  struct ipent **pp = &f->ips[b];
  while (*pp && memcmp((*pp)->a, k, 16) != 0)
    pp = &(*pp)->next;
  if (*pp) {
    struct ipent *e = *pp;
    if (--e->n == 0) {
      *pp = e->next;
      free(e);
    }
    if (f->total)
      f->total--;
  }
  pthread_mutex_unlock(&f->ip_mu);
}

/* ---- connections ---- */

void gw_front_interest(struct fconn *c, int fd, struct tag *t, uint32_t *cur, uint32_t want)
{
  if (fd < 0 || *cur == want)
    return;
  struct epoll_event ev = {.events = want, .data.ptr = t};
  if (*cur == 0)
    epoll_ctl(c->lp->ep, EPOLL_CTL_ADD, fd, &ev);
  else if (want == 0)
    epoll_ctl(c->lp->ep, EPOLL_CTL_DEL, fd, NULL);
  else
    epoll_ctl(c->lp->ep, EPOLL_CTL_MOD, fd, &ev);
  *cur = want;
}

void gw_front_close(struct fconn *c)
{
  struct loop *lp = c->lp;
  if (c->closed)
    return;
  if (c->h2)
    gw_h2_close(c);
  if (c->fd >= 0) {
    epoll_ctl(lp->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
  }
  if (c->pfd >= 0) {
    epoll_ctl(lp->ep, EPOLL_CTL_DEL, c->pfd, NULL);
    close(c->pfd);
  }
  c->fd = c->pfd = -1;
  SSL_free(c->ssl);
  c->ssl = NULL;
  if (!c->handed)
    gw_front_release(lp->f, (struct sockaddr *)&c->addr);
  if (c->prev)
    c->prev->next = c->next;
  else
    lp->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  /* Another event of this batch may still name it: free it once the batch is done. */
  c->closed = true;
  c->next = lp->grave;
  lp->grave = c;
}

static void bury(struct loop *lp)
{
  for (struct fconn *c = lp->grave, *n; c; c = n) {
    n = c->next;
    free(c->up);
    free(c->down);
    free(c);
  }
  lp->grave = NULL;
}

ssize_t gw_front_read(struct fconn *c, void *buf, size_t n, bool *want_write)
{
  if (c->ssl) {
    int r = SSL_read(c->ssl, buf, (int)n);
    if (r > 0)
      return r;
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ)
      return -1;
    if (e == SSL_ERROR_WANT_WRITE) {
      *want_write = true;
      return -1;
    }
    return e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0) ? 0 : -2;
  }
  ssize_t r = recv(c->fd, buf, n, 0);
  if (r >= 0)
    return r;
  return errno == EAGAIN || errno == EINTR ? -1 : -2;
}

ssize_t gw_front_write(struct fconn *c, const void *buf, size_t n, bool *want_write)
{
  if (c->ssl) {
    int r = SSL_write(c->ssl, buf, (int)n);
    if (r > 0)
      return r;
    int e = SSL_get_error(c->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_WRITE) {
      *want_write = true;
      return -1;
    }
    return e == SSL_ERROR_WANT_READ ? -1 : -2;
  }
  ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
  if (r >= 0)
    return r;
  if (errno == EAGAIN || errno == EINTR) {
    *want_write = true;
    return -1;
  }
  return -2;
}

/* A close with client bytes still unread makes the kernel send a reset, and the client may lose what it was
 * sent last (the GOAWAY naming the reason, even answers before it): so the write side is shut (FIN after what
 * is queued) and what the client still sends is read and dropped until it closes too. The connection keeps
 * its slot meanwhile; the deadline bounds it, and the front's stop closes it like any other. */
#define LINGER_MS 2000

void gw_front_linger(struct fconn *c)
{
  if (c->closed)
    return;
  if (c->h2)
    gw_h2_close(c);
  if (c->ssl)
    SSL_shutdown(c->ssl); /* best effort close_notify; nothing more is read through TLS */
  ERR_clear_error();
  if (shutdown(c->fd, SHUT_WR) != 0) {
    gw_front_close(c);
    return;
  }
  uint32_t idle = c->lp->f->idle_ms;
  c->st = FS_LINGER;
  c->deadline_ms = now_ms() + (idle && idle < LINGER_MS ? idle : LINGER_MS);
  gw_front_interest(c, c->fd, &c->tfd, &c->ev_fd, EPOLLIN);
}

static void linger_step(struct fconn *c)
{
  char buf[16384];
  for (int rounds = 0; rounds < 64; rounds++) { /* level-triggered: the rest comes with the next wakeup */
    ssize_t n = recv(c->fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
      return;
    if (n <= 0) {
      gw_front_close(c); /* the client closed too, or the connection failed */
      return;
    }
  }
}

/* Give fd to libmicrohttpd; false when it was closed instead. Once the front stops accepting, a connection
 * accepted before is closed here rather than added to a daemon about to stop (libmicrohttpd aborts on that):
 * the hand-off is counted while it runs, and gw_front_stop_accepting waits for the count. */
static bool mhd_add(struct gw_front *f, int fd, const struct sockaddr *sa, socklen_t len)
{
  atomic_fetch_add(&f->handing, 1);
  bool ok = false;
  if (atomic_load(&f->accepting))
    ok = MHD_add_connection(f->mhd, fd, sa, len) == MHD_YES; /* closed by libmicrohttpd when refused */
  else
    close(fd);
  atomic_fetch_sub(&f->handing, 1);
  return ok;
}

/* Hand a plaintext HTTP/1.1 socket to libmicrohttpd, which owns it (and its address slot) from now on. */
static void hand_plain(struct gw_front *f, int fd, const struct sockaddr *sa, socklen_t len)
{
  if (!mhd_add(f, fd, sa, len))
    gw_front_release(f, sa);
}

/* The relay's next steps: move what can move both ways, then watch what can unblock it. */
static void relay_pump(struct fconn *c)
{
  c->ssl_wants_write = false;
  /* client -> buffer */
  while (!c->up_eof && c->up_len < RELAY_BUF) {
    int n = SSL_read(c->ssl, c->up + c->up_len, (int)(RELAY_BUF - c->up_len));
    if (n > 0) {
      c->up_len += (size_t)n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ)
      break;
    if (e == SSL_ERROR_WANT_WRITE) {
      c->ssl_wants_write = true;
      break;
    }
    c->up_eof = true; /* close_notify, EOF or a fatal error: nothing more comes from the client */
    if (e != SSL_ERROR_ZERO_RETURN)
      c->dead = e != SSL_ERROR_SYSCALL || errno != 0;
    ERR_clear_error();
  }
  /* buffer -> libmicrohttpd */
  while (c->up_off < c->up_len) {
    ssize_t n = send(c->pfd, c->up + c->up_off, c->up_len - c->up_off, MSG_NOSIGNAL);
    if (n > 0) {
      c->up_off += (size_t)n;
    } else {
      if (n < 0 && errno != EAGAIN && errno != EINTR)
        c->dead = true;
      break;
    }
  }
  if (c->up_off == c->up_len)
    c->up_off = c->up_len = 0;
  if (c->up_eof && c->up_len == 0)
    shutdown(c->pfd, SHUT_WR);
  /* libmicrohttpd -> buffer */
  while (!c->down_eof && c->down_len < RELAY_BUF) {
    ssize_t n = recv(c->pfd, c->down + c->down_len, RELAY_BUF - c->down_len, 0);
    if (n > 0) {
      c->down_len += (size_t)n;
    } else {
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        c->down_eof = true;
        c->deadline_ms = now_ms() + c->lp->f->idle_ms; /* what is left must go out within idle_timeout_ms */
      }
      break;
    }
  }
  /* buffer -> client */
  while (!c->dead && c->down_off < c->down_len) {
    int n = SSL_write(c->ssl, c->down + c->down_off, (int)(c->down_len - c->down_off));
    if (n > 0) {
      c->down_off += (size_t)n;
      continue;
    }
    int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE)
      c->ssl_wants_write = true;
    else if (e != SSL_ERROR_WANT_READ)
      c->dead = true;
    ERR_clear_error();
    break;
  }
  if (c->down_off == c->down_len)
    c->down_off = c->down_len = 0;
  if (c->dead || (c->down_eof && c->down_len == 0)) {
    if (!c->dead)
      SSL_shutdown(c->ssl); /* best effort close_notify */
    gw_front_close(c);
    return;
  }
  uint32_t want_fd = (!c->up_eof && c->up_len < RELAY_BUF ? EPOLLIN : 0) | (c->ssl_wants_write ? EPOLLOUT : 0);
  uint32_t want_pfd = (!c->down_eof && c->down_len < RELAY_BUF ? EPOLLIN : 0) | (c->up_len ? EPOLLOUT : 0);
  gw_front_interest(c, c->fd, &c->tfd, &c->ev_fd, want_fd);
  gw_front_interest(c, c->pfd, &c->tpfd, &c->ev_pfd, want_pfd);
}

/* The handshake is done: relay HTTP/1.1 to libmicrohttpd. */
static void relay_start(struct fconn *c)
{
  struct gw_front *f = c->lp->f;
  int sp[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sp) != 0) {
    gw_warn("http", "socketpair: %s", strerror(errno));
    gw_front_close(c);
    return;
  }
  if (!mhd_add(f, sp[1], (struct sockaddr *)&c->addr, c->alen)) {
    close(sp[0]); /* sp[1] is closed */
    gw_front_close(c);
    return;
  }
  c->handed = true;
  c->st = FS_RELAY;
  c->pfd = sp[0];
  c->tpfd = (struct tag){TAG_PAIR, c};
  c->up = gw_malloc(RELAY_BUF);
  c->down = gw_malloc(RELAY_BUF);
  c->deadline_ms = 0; /* libmicrohttpd's deadlines take over */
  relay_pump(c);
}

/* RFC 9113 §3.4: a client that knows the server speaks HTTP/2 starts with this preface. */
static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN (sizeof preface - 1)

/* Plaintext: the first bytes decide. Anything but the HTTP/2 preface is HTTP/1.1 for libmicrohttpd, and
 * "POST" differs from "PRI " at the first byte, so HTTP/1.1 clients wait for one read at most. */
static void peek_step(struct fconn *c)
{
  char buf[PREFACE_LEN];
  ssize_t n = recv(c->fd, buf, sizeof buf, MSG_PEEK);
  if (n < 0 && (errno == EAGAIN || errno == EINTR))
    return;
  if (n <= 0) {
    gw_front_close(c);
    return;
  }
  if (memcmp(buf, preface, (size_t)n) != 0) {
    struct gw_front *f = c->lp->f;
    if (f->port.h2_only) { /* HTTP/1.1 on the gRPC port: gRPC core closed these too */
      atomic_fetch_add(&f->closed_not_h2, 1);
      gw_front_close(c);
      return;
    }
    int fd = c->fd;
    epoll_ctl(c->lp->ep, EPOLL_CTL_DEL, fd, NULL);
    c->fd = -1;     /* libmicrohttpd owns the socket now ... */
    c->handed = true; /* ... and the address slot */
    hand_plain(f, fd, (struct sockaddr *)&c->addr, c->alen);
    gw_front_close(c);
    return;
  }
  if ((size_t)n == PREFACE_LEN) {
    c->st = FS_H2;
    gw_h2_start(c);
  }
  /* a part of the preface: wait for the rest (edge-triggered, so no spin) */
}

static void handshake_step(struct fconn *c)
{
  int r = SSL_do_handshake(c->ssl);
  if (r == 1) {
    const unsigned char *proto = NULL;
    unsigned plen = 0;
    SSL_get0_alpn_selected(c->ssl, &proto, &plen);
    /* the gRPC port speaks HTTP/2 only: without ALPN h2, nghttp2 refuses what is no preface */
    if ((plen == 2 && memcmp(proto, "h2", 2) == 0) || c->lp->f->port.h2_only) {
      c->st = FS_H2;
      gw_h2_start(c);
    } else {
      relay_start(c);
    }
    return;
  }
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    gw_front_interest(c, c->fd, &c->tfd, &c->ev_fd, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
    return;
  }
  /* A plaintext request on the TLS port, an old protocol version, a certificate the CA did not sign, an
   * expired one: the client gets its alert (when it speaks TLS at all), we count and close. */
  unsigned long err = ERR_peek_last_error();
  const char *why = err ? ERR_reason_error_string(err) : NULL;
  atomic_fetch_add(&c->lp->f->tls_failed, 1);
  gw_debug("http", "TLS handshake failed: %s", why ? why : e == SSL_ERROR_SYSCALL ? "connection closed" : "error");
  ERR_clear_error();
  gw_front_close(c);
}

static void accept_all(struct loop *lp)
{
  struct gw_front *f = lp->f;
  for (;;) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(f->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        /* Out of descriptors: the connection stays in the backlog; stop watching the socket for a moment
         * rather than spin on it. */
        static _Atomic uint64_t last;
        uint64_t now = now_ms();
        if (now - atomic_load(&last) > 10000) {
          atomic_store(&last, now);
          gw_warn("http", "cannot accept: %s (raise the open files limit or lower receivers.http.max_connections)",
                  strerror(errno));
        }
        epoll_ctl(lp->ep, EPOLL_CTL_DEL, f->lfd, NULL);
        lp->listening = false;
        lp->accept_paused_until = now + 100;
      }
      return;
    }
    if (!admit(f, (struct sockaddr *)&ss)) {
      close(fd);
      continue;
    }
    struct gw_tls *tls = f->p->tls;
    struct fconn *c = gw_calloc(1, sizeof *c);
    c->lp = lp;
    c->fd = fd;
    c->pfd = -1;
    c->tfd = (struct tag){TAG_CLIENT, c};
    memcpy(&c->addr, &ss, len);
    c->alen = len;
    c->deadline_ms = now_ms() + f->header_ms;
    c->next = lp->head;
    if (lp->head)
      lp->head->prev = c;
    lp->head = c;
    if (!tls) {
      c->st = FS_PEEK;
      gw_front_interest(c, c->fd, &c->tfd, &c->ev_fd, EPOLLIN | EPOLLET);
      peek_step(c);
      continue;
    }
    c->st = FS_HANDSHAKE;
    struct gw_tls_material *m = gw_tls_get(tls);
    c->ssl = SSL_new(m->ctx); /* holds its own reference to the context: a reload does not disturb it */
    gw_tls_material_unref(m);
    if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
      gw_front_close(c);
      continue;
    }
    SSL_set_accept_state(c->ssl);
    handshake_step(c);
  }
}

static void watch_listen(struct loop *lp)
{
  struct epoll_event ev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &lp->tlisten};
  if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->f->lfd, &ev) == 0)
    lp->listening = true;
}

static void expire(struct loop *lp)
{
  uint64_t now = now_ms();
  for (struct fconn *c = lp->head, *next; c; c = next) {
    next = c->next;
    if (c->st == FS_H2) {
      gw_h2_expire(c, now);
    } else if (c->deadline_ms && now >= c->deadline_ms) {
      if (c->st == FS_HANDSHAKE)
        atomic_fetch_add(&lp->f->tls_failed, 1);
      if (lp->f->port.h2_only && (c->st == FS_HANDSHAKE || c->st == FS_PEEK))
        atomic_fetch_add(&lp->f->closed_handshake, 1);
      if (lp->f->guard && (c->st == FS_HANDSHAKE || c->st == FS_PEEK))
        gw_httpd_guard_count(lp->f->guard, GW_HTTPD_TIMEOUT_HEADERS);
      gw_front_close(c);
    }
  }
  if (!lp->listening && atomic_load(&lp->f->accepting) && now >= lp->accept_paused_until)
    watch_listen(lp);
}

static void *loop_main(void *arg)
{
  struct loop *lp = arg;
  pthread_setname_np(pthread_self(), lp->f->port.h2_only ? "gw-grpc-front" : "gw-http-front");
  struct epoll_event evs[64];
  uint64_t next_tick = now_ms() + TICK_MS;
  while (!atomic_load(&lp->f->stopping)) {
    int n = epoll_wait(lp->ep, evs, 64, TICK_MS);
    for (int i = 0; i < n; i++) {
      struct tag *t = evs[i].data.ptr;
      switch (t->kind) {
      case TAG_LISTEN:
        if (atomic_load(&lp->f->accepting)) {
          accept_all(lp);
        } else if (lp->listening) {
          epoll_ctl(lp->ep, EPOLL_CTL_DEL, lp->f->lfd, NULL);
          lp->listening = false;
        }
        break;
      case TAG_WAKE: {
        uint64_t v;
        if (read(lp->wake, &v, sizeof v) < 0 && errno != EAGAIN)
          gw_debug("http", "eventfd: %s", strerror(errno));
        gw_h2_completions(lp);
        break;
      }
      case TAG_CLIENT:
      case TAG_PAIR:
        if (t->c->closed)
          break;
        switch (t->c->st) {
        case FS_PEEK:
          peek_step(t->c);
          break;
        case FS_HANDSHAKE:
          handshake_step(t->c);
          break;
        case FS_RELAY:
          relay_pump(t->c);
          break;
        case FS_H2:
          gw_h2_event(t->c);
          break;
        case FS_LINGER:
          linger_step(t->c);
          break;
        }
        break;
      }
    }
    uint64_t now = now_ms();
    if (now >= next_tick) {
      expire(lp);
      next_tick = now + TICK_MS;
    }
    bury(lp);
  }
  while (lp->head)
    gw_front_close(lp->head);
  gw_h2_completions(lp);
  bury(lp);
  return NULL;
}

/* ---- metrics: one family each for both ports (a name's HELP and TYPE appear once on /metrics) ---- */

static pthread_mutex_t fronts_mu = PTHREAD_MUTEX_INITIALIZER;
static struct gw_front *fronts[2];

#define LOAD(x) (unsigned long long)atomic_load(&(x))

static void render(struct gw_sb *out, void *ctx)
{
  (void)ctx;
  pthread_mutex_lock(&fronts_mu);
  gw_sb_printf(out, "# HELP genai_gateway_connections_refused_total Connections closed at accept: the total or the "
                    "per-address limit was reached\n"
                    "# TYPE genai_gateway_connections_refused_total counter\n");
  for (int i = 0; i < 2; i++) {
    if (fronts[i])
      gw_sb_printf(out,
                   "genai_gateway_connections_refused_total{listener=\"%s\",reason=\"max_connections\"} %llu\n"
                   "genai_gateway_connections_refused_total{listener=\"%s\",reason=\"per_ip\"} %llu\n",
                   fronts[i]->port.listener, LOAD(fronts[i]->refused_total), fronts[i]->port.listener,
                   LOAD(fronts[i]->refused_ip));
  }
  gw_sb_printf(out, "# HELP genai_gateway_tls_handshake_failures_total TLS handshakes that failed or timed out (bad "
                    "or missing client certificate, old protocol, plaintext on the TLS port)\n"
                    "# TYPE genai_gateway_tls_handshake_failures_total counter\n");
  for (int i = 0; i < 2; i++) {
    if (fronts[i])
      gw_sb_printf(out, "genai_gateway_tls_handshake_failures_total{listener=\"%s\"} %llu\n", fronts[i]->port.listener,
                   LOAD(fronts[i]->tls_failed));
  }
  gw_sb_printf(out, "# HELP genai_gateway_http2_answers_not_taken_total HTTP/2 answers a client did not take within "
                    "the answer limit (its flow-control window kept shut: the stream reset; its socket not read: the "
                    "connection closed)\n"
                    "# TYPE genai_gateway_http2_answers_not_taken_total counter\n");
  for (int i = 0; i < 2; i++) {
    if (fronts[i])
      gw_sb_printf(out,
                   "genai_gateway_http2_answers_not_taken_total{listener=\"%s\",closed=\"stream\"} %llu\n"
                   "genai_gateway_http2_answers_not_taken_total{listener=\"%s\",closed=\"connection\"} %llu\n",
                   fronts[i]->port.listener, LOAD(fronts[i]->untaken_streams), fronts[i]->port.listener,
                   LOAD(fronts[i]->untaken_conns));
  }
  for (int i = 0; i < 2; i++) {
    struct gw_front *f = fronts[i];
    if (f && !f->port.h2_only)
      gw_sb_printf(out,
                   "# HELP genai_gateway_http2_connections_total HTTP/2 connections on the OTLP/HTTP port (h2c or "
                   "ALPN h2)\n# TYPE genai_gateway_http2_connections_total counter\n"
                   "genai_gateway_http2_connections_total %llu\n"
                   "# HELP genai_gateway_http2_streams_total HTTP/2 requests on the OTLP/HTTP port\n"
                   "# TYPE genai_gateway_http2_streams_total counter\n"
                   "genai_gateway_http2_streams_total %llu\n",
                   LOAD(f->h2_conns), LOAD(f->h2_streams));
    else if (f)
      gw_sb_printf(out,
                   "# HELP genai_gateway_grpc_connections_closed_total OTLP/gRPC connections closed by the gateway: "
                   "before their HTTP/2 preface (handshake_timeout, not_http2: HTTP/1.1 bytes), or by the "
                   "connection policing (max_idle, max_age: at age + grace, too_many_pings)\n"
                   "# TYPE genai_gateway_grpc_connections_closed_total counter\n"
                   "genai_gateway_grpc_connections_closed_total{reason=\"handshake_timeout\"} %llu\n"
                   "genai_gateway_grpc_connections_closed_total{reason=\"not_http2\"} %llu\n"
                   "genai_gateway_grpc_connections_closed_total{reason=\"max_idle\"} %llu\n"
                   "genai_gateway_grpc_connections_closed_total{reason=\"max_age\"} %llu\n"
                   "genai_gateway_grpc_connections_closed_total{reason=\"too_many_pings\"} %llu\n"
                   "# HELP genai_gateway_grpc_connections_total OTLP/gRPC connections that sent their HTTP/2 "
                   "preface\n"
                   "# TYPE genai_gateway_grpc_connections_total counter\n"
                   "genai_gateway_grpc_connections_total %llu\n"
                   "# HELP genai_gateway_grpc_streams_total HTTP/2 streams (calls) on the OTLP/gRPC port\n"
                   "# TYPE genai_gateway_grpc_streams_total counter\n"
                   "genai_gateway_grpc_streams_total %llu\n",
                   LOAD(f->closed_handshake), LOAD(f->closed_not_h2), LOAD(f->closed_idle), LOAD(f->closed_age),
                   LOAD(f->closed_pings), LOAD(f->h2_conns), LOAD(f->h2_streams));
  }
  pthread_mutex_unlock(&fronts_mu);
}

/* Add or remove a front from what render shows; the renderer is registered while one is there. */
static void fronts_set(struct gw_front *f, bool add)
{
  int before = 0, after = 0;
  pthread_mutex_lock(&fronts_mu);
  for (int i = 0; i < 2; i++)
    before += fronts[i] != NULL;
  for (int i = 0; i < 2; i++) {
    if (add && !fronts[i]) {
      fronts[i] = f;
      break;
    }
    if (!add && fronts[i] == f)
      fronts[i] = NULL;
  }
  for (int i = 0; i < 2; i++)
    after += fronts[i] != NULL;
  pthread_mutex_unlock(&fronts_mu);
  /* outside fronts_mu: render runs under the metrics registry's lock and takes fronts_mu */
  if (!before && after)
    gw_metrics_register(render, NULL);
  else if (before && !after)
    gw_metrics_unregister(render, NULL);
}

struct gw_front *gw_front_start(struct gw_pipeline *p, const struct gw_front_port *port, struct MHD_Daemon *mhd,
                                struct gw_httpd_guard *guard, struct gw_err *err)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  if (gw_net_parse_addr(port->addr, &ss, &sl, err))
    return NULL;
  int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(lfd, (struct sockaddr *)&ss, sl) != 0 || listen(lfd, 1024) != 0) {
    gw_err_set(err, GW_ERR(IO), "OTLP/%s receiver: cannot listen on %s: %s", port->h2_only ? "gRPC" : "HTTP",
               port->addr, strerror(errno));
    if (lfd >= 0)
      close(lfd);
    return NULL;
  }
  struct gw_front *f = gw_calloc(1, sizeof *f);
  f->p = p;
  f->mhd = mhd;
  f->guard = guard;
  f->lfd = lfd;
  f->port = *port;
  f->max_conns = port->max_conns;
  f->per_ip = port->per_ip;
  f->header_ms = port->header_ms;
  f->idle_ms = port->idle_ms;
  pthread_mutex_init(&f->ip_mu, NULL);
  atomic_init(&f->accepting, true);
  atomic_init(&f->handing, 0);
  atomic_init(&f->stopping, false);
  f->nloops = (int)(port->threads < MAX_LOOPS ? port->threads : MAX_LOOPS);
  if (f->nloops < 1)
    f->nloops = 1;
  for (int i = 0; i < f->nloops; i++) {
    struct loop *lp = &f->loops[i];
    lp->f = f;
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    lp->tlisten = (struct tag){TAG_LISTEN, NULL};
    lp->twake = (struct tag){TAG_WAKE, NULL};
    pthread_mutex_init(&lp->done_mu, NULL);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &lp->twake};
    epoll_ctl(lp->ep, EPOLL_CTL_ADD, lp->wake, &ev);
    watch_listen(lp);
  }
  gw_h2_workers_start(f);
  for (int i = 0; i < f->nloops; i++)
    pthread_create(&f->loops[i].th, NULL, loop_main, &f->loops[i]);
  fronts_set(f, true);
  return f;
}

void gw_front_stop_accepting(struct gw_front *f)
{
  if (!f)
    return;
  atomic_store(&f->accepting, false);
  /* Wakes every loop watching the socket (accept then fails) and refuses new connections from now on. */
  shutdown(f->lfd, SHUT_RD);
  /* A hand-off that saw `accepting` still set finishes before this returns; later ones close instead. */
  while (atomic_load(&f->handing) > 0) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

void gw_front_stop(struct gw_front *f)
{
  if (!f)
    return;
  fronts_set(f, false);
  atomic_store(&f->accepting, false);
  /* HTTP/2 requests in flight finish and are answered while the loops still run (the spool is open). */
  uint64_t until = gw_mono_ns() + 30000000000ull;
  while (atomic_load(&f->jobs) > 0 && gw_mono_ns() < until) {
    struct timespec ts = {0, 5000000};
    nanosleep(&ts, NULL);
  }
  gw_h2_workers_stop(f);
  gw_lane_drain(f->p->lane); /* no job of the lane still holds a stream of these loops */
  atomic_store(&f->stopping, true);
  for (int i = 0; i < f->nloops; i++) {
    uint64_t one = 1;
    if (write(f->loops[i].wake, &one, sizeof one) < 0)
      gw_debug("http", "eventfd: %s", strerror(errno));
  }
  for (int i = 0; i < f->nloops; i++) {
    pthread_join(f->loops[i].th, NULL);
    close(f->loops[i].ep);
    close(f->loops[i].wake);
    pthread_mutex_destroy(&f->loops[i].done_mu);
  }
  close(f->lfd);
  for (int b = 0; b < IP_BUCKETS; b++) {
    for (struct ipent *e = f->ips[b], *n; e; e = n) {
      n = e->next;
      free(e);
    }
  }
  pthread_mutex_destroy(&f->ip_mu);
  free(f);
}
