/* test_grpc_front.c: the plaintext gRPC port's listener (gateway/receive/grpc_front.h), on real sockets on
 * 127.0.0.1: a connection is handed over, unread, once its HTTP/2 preface and SETTINGS frame have arrived
 * (or bytes that are no preface), never before; one that says nothing is closed at the handshake timeout;
 * past the cap the oldest waiting connection is closed. gRPC core is not involved: the hand-over is a
 * callback that keeps the socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "receive/grpc_front.h"

static const char PREFACE[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/* a SETTINGS frame with two settings (12 bytes): what a client sends after the preface */
static const unsigned char SETTINGS[] = {0, 0, 12, 4, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 4, 0, 0, 0xff, 0xff};

static unsigned char *hello(size_t *n)
{
  static unsigned char b[64];
  memcpy(b, PREFACE, 24);
  memcpy(b + 24, SETTINGS, sizeof SETTINGS);
  *n = 24 + sizeof SETTINGS;
  return b;
}

static void test_preface_ready(void **st)
{
  (void)st;
  size_t n;
  const unsigned char *b = hello(&n);
  for (size_t i = 0; i < n; i++)
    assert_int_equal(gw_grpc_preface_ready(b, i), 0); /* any prefix of preface + SETTINGS: wait */
  assert_int_equal(gw_grpc_preface_ready(b, n), 1);
  assert_int_equal(gw_grpc_preface_ready((const unsigned char *)"GET / HTTP/1.1\r\n", 16), 1);
  assert_int_equal(gw_grpc_preface_ready((const unsigned char *)"PRX", 3), 1);
  unsigned char c[64];
  memcpy(c, b, n);
  c[27] = 1; /* HEADERS first: not a preface gRPC accepts, it says so itself */
  assert_int_equal(gw_grpc_preface_ready(c, 33), 1);
  memcpy(c, b, n);
  c[24] = 0x01; /* a SETTINGS payload of 64 KiB: handed over at its header */
  assert_int_equal(gw_grpc_preface_ready(c, 33), 1);
}

/* hand-over: the sockets handed over, kept open until the test closes them */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int handed[16], nhanded;

static void keep(void *ctx, int fd)
{
  (void)ctx;
  pthread_mutex_lock(&mu);
  if (nhanded < 16)
    handed[nhanded++] = fd;
  else
    close(fd);
  pthread_mutex_unlock(&mu);
}

static int handed_count(void)
{
  pthread_mutex_lock(&mu);
  int n = nhanded;
  pthread_mutex_unlock(&mu);
  return n;
}

static void handed_close(void)
{
  pthread_mutex_lock(&mu);
  for (int i = 0; i < nhanded; i++)
    close(handed[i]);
  nhanded = 0;
  pthread_mutex_unlock(&mu);
}

static void sleep_ms(unsigned ms)
{
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int dial(int port)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(fd >= 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

/* True when the gateway closed fd within ms (a read gives end of file or a reset). */
static bool closed_within(int fd, int ms)
{
  struct pollfd p = {.fd = fd, .events = POLLIN};
  if (poll(&p, 1, ms) != 1)
    return false;
  char c;
  return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

static void test_handover(void **st)
{
  (void)st;
  struct gw_err err;
  memset(&err, 0, sizeof err);
  struct gw_grpc_front *f = gw_grpc_front_start("127.0.0.1:0", 60000, 16, keep, NULL, &err);
  assert_non_null(f);
  int port = gw_grpc_front_port(f);
  assert_true(port > 0);
  size_t n;
  const unsigned char *b = hello(&n);

  /* a client that sends half its preface, then one that sends all of it: only the second is handed over */
  int slow = dial(port);
  assert_int_equal(send(slow, b, 10, 0), 10);
  int fast = dial(port);
  assert_int_equal(send(fast, b, n, 0), (ssize_t)n);
  for (int i = 0; i < 500 && handed_count() < 1; i++)
    sleep_ms(10);
  assert_int_equal(handed_count(), 1);
  /* the socket handed over still holds every byte the client sent: gRPC core reads the preface itself */
  unsigned char got[64];
  size_t off = 0;
  while (off < n) {
    struct pollfd p = {.fd = handed[0], .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    ssize_t r = recv(handed[0], got + off, sizeof got - off, 0);
    assert_true(r > 0);
    off += (size_t)r;
  }
  assert_int_equal(off, n);
  assert_memory_equal(got, b, n);
  /* and what the gateway writes reaches that client */
  assert_int_equal(write(handed[0], "ok", 2), 2);
  char two[2];
  assert_int_equal(recv(fast, two, 2, MSG_WAITALL), 2);
  assert_memory_equal(two, "ok", 2);

  /* the rest of the slow client's preface, in two pieces: handed over once it is all there */
  assert_int_equal(send(slow, b + 10, 20, 0), 20);
  sleep_ms(50);
  assert_int_equal(send(slow, b + 30, n - 30, 0), (ssize_t)(n - 30));
  for (int i = 0; i < 500 && handed_count() < 2; i++)
    sleep_ms(10);
  assert_int_equal(handed_count(), 2);
  assert_int_equal(gw_grpc_front_handed(f), 2);

  /* bytes that are no preface go over at once (gRPC core answers them) */
  int h1 = dial(port);
  assert_int_equal(send(h1, "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
  for (int i = 0; i < 500 && handed_count() < 3; i++)
    sleep_ms(10);
  assert_int_equal(handed_count(), 3);

  /* a client that hangs up before its preface is not handed over, and no timeout is counted */
  int quitter = dial(port);
  assert_int_equal(send(quitter, b, 5, 0), 5);
  close(quitter);
  assert_int_equal(gw_grpc_front_timeouts(f), 0);

  gw_grpc_front_stop(f);
  assert_int_equal(handed_count(), 3);
  handed_close();
  close(slow);
  close(fast);
  close(h1);
}

static void test_timeout(void **st)
{
  (void)st;
  struct gw_err err;
  memset(&err, 0, sizeof err);
  struct gw_grpc_front *f = gw_grpc_front_start("127.0.0.1:0", 200, 16, keep, NULL, &err);
  assert_non_null(f);
  int silent = dial(gw_grpc_front_port(f));
  int partial = dial(gw_grpc_front_port(f));
  assert_int_equal(send(partial, PREFACE, 12, 0), 12);
  assert_true(closed_within(silent, 10000));
  assert_true(closed_within(partial, 10000));
  assert_int_equal(gw_grpc_front_timeouts(f), 2);
  assert_int_equal(gw_grpc_front_handed(f), 0);
  assert_int_equal(handed_count(), 0);
  gw_grpc_front_stop(f);
  close(silent);
  close(partial);
}

static void test_cap(void **st)
{
  (void)st;
  struct gw_err err;
  memset(&err, 0, sizeof err);
  struct gw_grpc_front *f = gw_grpc_front_start("127.0.0.1:0", 60000, 3, keep, NULL, &err);
  assert_non_null(f);
  int c[5];
  for (int i = 0; i < 5; i++)
    c[i] = dial(gw_grpc_front_port(f));
  /* the two oldest are closed to make room; the three newest wait for their preface */
  assert_true(closed_within(c[0], 10000));
  assert_true(closed_within(c[1], 10000));
  for (int i = 0; i < 100 && gw_grpc_front_evicted(f) < 2; i++)
    sleep_ms(10);
  assert_int_equal(gw_grpc_front_evicted(f), 2);
  for (int i = 2; i < 5; i++)
    assert_false(closed_within(c[i], 50));
  /* one of them still gets served */
  size_t n;
  const unsigned char *b = hello(&n);
  assert_int_equal(send(c[4], b, n, 0), (ssize_t)n);
  for (int i = 0; i < 500 && handed_count() < 1; i++)
    sleep_ms(10);
  assert_int_equal(handed_count(), 1);
  /* stopping closes those still waiting */
  gw_grpc_front_stop(f);
  assert_true(closed_within(c[2], 10000));
  assert_true(closed_within(c[3], 10000));
  handed_close();
  for (int i = 0; i < 5; i++)
    close(c[i]);
}

static void test_bad_address(void **st)
{
  (void)st;
  struct gw_err err;
  memset(&err, 0, sizeof err);
  assert_null(gw_grpc_front_start("not an address", 1000, 16, keep, NULL, &err));
  assert_int_not_equal(err.rc, 0);
  /* a port in use */
  struct gw_grpc_front *f = gw_grpc_front_start("127.0.0.1:0", 1000, 16, keep, NULL, &err);
  assert_non_null(f);
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", gw_grpc_front_port(f));
  memset(&err, 0, sizeof err);
  assert_null(gw_grpc_front_start(addr, 1000, 16, keep, NULL, &err));
  assert_non_null(strstr(err.msg, "cannot listen"));
  gw_grpc_front_stop(f);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_preface_ready),
    cmocka_unit_test(test_handover),
    cmocka_unit_test(test_timeout),
    cmocka_unit_test(test_cap),
    cmocka_unit_test(test_bad_address),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
