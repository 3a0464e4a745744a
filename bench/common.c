/* common.c — clocks, medians and loopback sockets for the bench programs.
 *
 * Kept deliberately plain: the raw floor in bench_kv.c is built from these
 * sockets, so nothing here may add work to a request (no buffering, no
 * polling, no retries beyond what a blocking send needs). Results go to
 * stdout as "result <name> <value>" lines that bench/run.sh collects.
 */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_now(void) {
  return (double)bench_now_ns() / 1e9;
}

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

double bench_median(double* v, size_t n) {
  if (n == 0)
    return 0;
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void bench_result(const char* name, double value) {
  printf("result %s %.6g\n", name, value);
  fflush(stdout);
}

void bench_die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("bench: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

int bench_parse_ports(const char* s, int* ports, int max) {
  int n = 0;
  while (*s && n < max) {
    char* end;
    long p = strtol(s, &end, 10);
    if (end == s || p <= 0 || p > 65535 || (*end && *end != ','))
      bench_die("bad port list");
    ports[n++] = (int)p;
    s = *end ? end + 1 : end;
  }
  return n;
}

static int try_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return -1;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (connect(fd, (struct sockaddr*)&sa, sizeof sa) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

int bench_connect(int port) {
  int fd = try_connect(port);
  if (fd < 0)
    bench_die("connect 127.0.0.1:%d: %s", port, strerror(errno));
  return fd;
}

int bench_wait_port(int port, int timeout_ms) {
  double end = bench_now() + timeout_ms / 1000.0;
  for (;;) {
    int fd = try_connect(port);
    if (fd >= 0) {
      close(fd);
      return 0;
    }
    if (bench_now() > end)
      return -1;
    usleep(10000);
  }
}

void bench_send_all(int fd, const void* buf, size_t len) {
  const char* p = buf;
  while (len) {
    ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      bench_die("send: %s", strerror(errno));
    p += w;
    len -= (size_t)w;
  }
}
