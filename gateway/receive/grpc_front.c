/*
 * grpc_front.c: see grpc_front.h. One thread, one epoll set: the listening socket, an eventfd to stop, and
 * the connections waiting for their preface (edge-triggered: each arrival of bytes is one event, and the
 * bytes are only peeked at, so gRPC core reads them all). The waiting connections are a FIFO in accept
 * order, which is their deadline order: the oldest is the next to expire and the one closed past the cap.
 */
#include "receive/grpc_front.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/net.h"

#define PEEK_MAX 256   /* bytes looked at: the preface (24), a frame header (9) and a SETTINGS payload */
#define ACCEPT_BURST 64 /* accepts per wake-up, so the waiting connections' events are not starved */
#define EMFILE_PAUSE_MS 100

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define PREFACE_LEN 24

struct pconn {
  struct pconn *prev, *next;
  int fd;
  uint64_t deadline_ms;
};

struct gw_grpc_front {
  int lfd, ep, wake, port;
  uint32_t handshake_ms;
  unsigned max_pending, npending;
  struct pconn *head, *tail; /* oldest first */
  gw_grpc_handoff_fn handoff;
  void *ctx;
  bool listening;
  uint64_t paused_until_ms;
  pthread_t th;
  atomic_bool stopping;
  _Atomic uint64_t timeouts, evicted, handed;
};

/* epoll tags for the two descriptors that are no connection */
static char tag_listen, tag_wake;

static uint64_t now_ms(void) { return gw_mono_ns() / 1000000u; }

int gw_grpc_preface_ready(const unsigned char *b, size_t n)
{
  size_t m = n < PREFACE_LEN ? n : PREFACE_LEN;
  if (memcmp(b, PREFACE, m) != 0)
    return 1; /* not HTTP/2: gRPC core answers it as it always did */
  if (n < PREFACE_LEN + 9)
    return 0;
  if (b[PREFACE_LEN + 3] != 0x4)
    return 1; /* the first frame must be SETTINGS: gRPC core says so */
  size_t len = (size_t)b[PREFACE_LEN] << 16 | (size_t)b[PREFACE_LEN + 1] << 8 | b[PREFACE_LEN + 2];
  if (PREFACE_LEN + 9 + len > PEEK_MAX)
    return 1; /* more settings than any client sends: gRPC core reads them */
  return n >= PREFACE_LEN + 9 + len;
}

static void unlink_conn(struct gw_grpc_front *f, struct pconn *c)
{
  if (c->prev)
    c->prev->next = c->next;
  else
    f->head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  else
    f->tail = c->prev;
  f->npending--;
}

static void drop(struct gw_grpc_front *f, struct pconn *c)
{
  unlink_conn(f, c);
  close(c->fd); /* also leaves the epoll set */
  free(c);
}

static void hand_over(struct gw_grpc_front *f, struct pconn *c)
{
  epoll_ctl(f->ep, EPOLL_CTL_DEL, c->fd, NULL);
  unlink_conn(f, c);
  int fd = c->fd;
  free(c);
  atomic_fetch_add(&f->handed, 1);
  f->handoff(f->ctx, fd);
}

/* Bytes (or a hang-up) arrived on a waiting connection. */
static void on_data(struct gw_grpc_front *f, struct pconn *c, uint32_t events)
{
  unsigned char b[PEEK_MAX];
  ssize_t n = recv(c->fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    return;
  if (n <= 0) {
    drop(f, c); /* closed or reset before it said anything */
    return;
  }
  if (gw_grpc_preface_ready(b, (size_t)n)) {
    hand_over(f, c);
    return;
  }
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
    drop(f, c); /* hung up half-way through its preface: no more is coming */
}

static void set_listening(struct gw_grpc_front *f, bool on)
{
  if (f->listening == on)
    return;
  if (on) {
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_listen};
    epoll_ctl(f->ep, EPOLL_CTL_ADD, f->lfd, &ev);
  } else {
    epoll_ctl(f->ep, EPOLL_CTL_DEL, f->lfd, NULL);
  }
  f->listening = on;
}

static void accept_some(struct gw_grpc_front *f)
{
  for (int i = 0; i < ACCEPT_BURST; i++) {
    int fd = accept4(f->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        if (f->head) {
          /* the oldest connection that has said nothing makes room */
          atomic_fetch_add(&f->evicted, 1);
          drop(f, f->head);
          continue;
        }
        /* every descriptor is held by gRPC core's connections: wait before trying again */
        gw_warn("grpc", "cannot accept a connection: %s", strerror(errno));
        set_listening(f, false);
        f->paused_until_ms = now_ms() + EMFILE_PAUSE_MS;
      }
      return; /* EAGAIN, or a connection reset before it was accepted */
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* as gRPC core sets on the sockets it accepts */
    if (f->npending >= f->max_pending) {
      atomic_fetch_add(&f->evicted, 1);
      drop(f, f->head);
    }
    struct pconn *c = gw_calloc(1, sizeof *c);
    c->fd = fd;
    c->deadline_ms = now_ms() + f->handshake_ms;
    c->prev = f->tail;
    if (f->tail)
      f->tail->next = c;
    else
      f->head = c;
    f->tail = c;
    f->npending++;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (epoll_ctl(f->ep, EPOLL_CTL_ADD, fd, &ev) != 0)
      drop(f, c);
  }
}

static void *front_main(void *arg)
{
  struct gw_grpc_front *f = arg;
  pthread_setname_np(pthread_self(), "gw-grpc-front");
  struct epoll_event evs[64];
  while (!atomic_load(&f->stopping)) {
    uint64_t now = now_ms();
    while (f->head && f->head->deadline_ms <= now) {
      atomic_fetch_add(&f->timeouts, 1);
      drop(f, f->head);
    }
    if (!f->listening && now >= f->paused_until_ms)
      set_listening(f, true);
    int timeout = -1;
    if (f->head) /* at most a minute: the loop comes round again */
      timeout = (int)(f->head->deadline_ms - now < 60000 ? f->head->deadline_ms - now : 60000);
    if (!f->listening) {
      int t = (int)(f->paused_until_ms > now ? f->paused_until_ms - now : 0);
      if (timeout < 0 || t < timeout)
        timeout = t;
    }
    int n = epoll_wait(f->ep, evs, 64, timeout);
    bool listen_ready = false;
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      if (p == &tag_wake)
        continue;
      if (p == &tag_listen)
        listen_ready = true;
      else
        on_data(f, p, evs[i].events);
    }
    /* last: accepting may close waiting connections (the cap) whose events are in this batch */
    if (listen_ready)
      accept_some(f);
  }
  return NULL;
}

struct gw_grpc_front *gw_grpc_front_start(const char *addr, uint32_t handshake_ms, unsigned max_pending,
                                          gw_grpc_handoff_fn handoff, void *ctx, struct gw_err *err)
{
  struct sockaddr_storage ss;
  socklen_t sl;
  if (gw_net_parse_addr(addr, &ss, &sl, err))
    return NULL;
  int lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(lfd, (struct sockaddr *)&ss, sl) != 0 || listen(lfd, 1024) != 0) {
    gw_err_set(err, GW_ERR(IO), "OTLP/gRPC receiver: cannot listen on %s: %s", addr, strerror(errno));
    if (lfd >= 0)
      close(lfd);
    return NULL;
  }
  struct sockaddr_storage bound;
  socklen_t bl = sizeof bound;
  getsockname(lfd, (struct sockaddr *)&bound, &bl);
  struct gw_grpc_front *f = gw_calloc(1, sizeof *f);
  f->lfd = lfd;
  f->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((struct sockaddr_in *)&bound)->sin_port);
  f->handshake_ms = handshake_ms ? handshake_ms : 1;
  f->max_pending = max_pending ? max_pending : 1;
  f->handoff = handoff;
  f->ctx = ctx;
  f->ep = epoll_create1(EPOLL_CLOEXEC);
  f->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_wake};
  epoll_ctl(f->ep, EPOLL_CTL_ADD, f->wake, &ev);
  set_listening(f, true);
  atomic_init(&f->stopping, false);
  pthread_create(&f->th, NULL, front_main, f);
  return f;
}

int gw_grpc_front_port(const struct gw_grpc_front *f) { return f->port; }

void gw_grpc_front_stop(struct gw_grpc_front *f)
{
  if (!f)
    return;
  atomic_store(&f->stopping, true);
  uint64_t one = 1;
  if (write(f->wake, &one, sizeof one) < 0)
    gw_debug("grpc", "eventfd: %s", strerror(errno));
  pthread_join(f->th, NULL);
  while (f->head)
    drop(f, f->head);
  close(f->lfd);
  close(f->ep);
  close(f->wake);
  free(f);
}

uint64_t gw_grpc_front_timeouts(const struct gw_grpc_front *f) { return atomic_load(&f->timeouts); }
uint64_t gw_grpc_front_evicted(const struct gw_grpc_front *f) { return atomic_load(&f->evicted); }
uint64_t gw_grpc_front_handed(const struct gw_grpc_front *f) { return atomic_load(&f->handed); }
