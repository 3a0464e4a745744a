/* conn.c — one connection to one memcached node.
 *
 * A call on a node is: mcr__conn_begin (connect when needed, start the
 * call's deadline), mcr__conn_send (the whole request, or the connection is
 * closed), then mcr__conn_line / mcr__conn_block until the reply is read.
 *
 * Timeouts. Connecting uses a non-blocking socket and poll, bounded by the
 * connect timeout, which also bounds name resolution (getaddrinfo runs in a
 * short-lived thread we stop waiting for at the deadline). Once connected,
 * the socket is switched to blocking mode with SO_RCVTIMEO / SO_SNDTIMEO set
 * to the I/O timeout. The common call is then exactly two system calls, one
 * sendmsg (send for the one-key get, mcr__conn_request) and one recv that
 * returns the whole reply, where a non-blocking socket would need a poll
 * (or a failed recv) in between. The first send does not wait
 * (MSG_DONTWAIT): as soon as a call finds the socket buffer full or needs a
 * second recv, it switches to poll plus MSG_DONTWAIT against the call's
 * deadline, so a server that reads slowly or drips bytes still cannot
 * stretch a call beyond the I/O timeout. docs/decisions.md says why.
 *
 * Stream safety. Every timeout, short read, protocol violation or socket
 * error closes the connection (mcr__conn_fail), so a reply is never read out
 * of sync; the next call reconnects. A connection opened before a fork is
 * never used by the child: pthread_atfork bumps mcr__fork_gen in the child,
 * and mcr__conn_begin drops (closes the child's copy of) any connection made
 * under another generation. Closing the inherited descriptor does not touch
 * the parent's TCP connection.
 */
#include <arpa/inet.h>
#include <ck_pr.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RBUF_INITIAL 16384
#define RBUF_KEEP (4u << 20) /* larger buffers are freed between calls */
#define REPLY_LINE_MAX 8192

unsigned mcr__fork_gen;

/* Runs in the child, which has one thread: no race with readers. */
static void on_fork_child(void) {
  ck_pr_inc_uint(&mcr__fork_gen);
}

static pthread_once_t fork_once = PTHREAD_ONCE_INIT;
static void fork_register(void) {
  pthread_atfork(NULL, NULL, on_fork_child);
}
void mcr__fork_guard_init(void) {
  pthread_once(&fork_once, fork_register);
}

int64_t mcr__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t mcr__now_ms(void) {
  return mcr__now_ns() / 1000000;
}

/* Host stats of a call on n (hoststats.c): latency to the first reply
 * line. Only reached when n->hs is set. */
void mcr__conn_count_latency(mcr__node_t* n) {
  if (n->conn.start_ns) {
    mcr__hs_latency(n, mcr__now_ns() - n->conn.start_ns);
    n->conn.start_ns = 0;
  }
}

/* Counts a connect or I/O failure; the failure_limit-th in a row marks the
 * node down for retry_timeout_ms (see mcr_client_opts_t). */
static void node_failed(mcr_client_t* c, mcr__node_t* n, int err) {
  /* Out of memory is ours, and a malformed reply says the node is up. */
  if (!c->opts.failure_limit || err == MCR_ENOMEM || err == MCR_EPROTO)
    return;
  if (++n->fails >= c->opts.failure_limit && !n->down_until) {
    n->down_until = mcr__now_ms() + c->opts.retry_timeout_ms;
    c->ndown++;
  }
}

void mcr__conn_close(mcr__node_t* n) {
  mcr__conn_t* k = &n->conn;
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
  k->rpos = k->rlen = 0;
}

int mcr__conn_fail(mcr_client_t* c, mcr__node_t* n, int err, const char* what) {
  mcr__conn_close(n);
  node_failed(c, n, err);
  return mcr__set_error(c, err, "%s: %s", n->srv.name, what);
}

static int fail_errno(mcr_client_t* c, mcr__node_t* n, int err,
                      const char* what, int e) {
  mcr__conn_close(n);
  node_failed(c, n, err);
  return mcr__set_error(c, err, "%s: %s: %s", n->srv.name, what, strerror(e));
}

/* ------------------------------------------------------------ resolving */

/* Shared between the caller and the resolver thread; the last one to drop
 * its reference frees it, so a caller that gave up never waits. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  bool done;
  int rc;
  struct addrinfo* res;
  char port[8];
  char host[];
} resolve_t;

static void resolve_unref(resolve_t* r) {
  pthread_mutex_lock(&r->mu);
  bool last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  if (!last)
    return;
  if (r->res)
    freeaddrinfo(r->res);
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  mcr__free(r);
}

static void* resolve_thread(void* arg) {
  resolve_t* r = arg;
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
  struct addrinfo* res = NULL;
  int rc = getaddrinfo(r->host, r->port, &hints, &res);
  pthread_mutex_lock(&r->mu);
  r->rc = rc;
  r->res = res;
  r->done = true;
  pthread_cond_signal(&r->cv);
  pthread_mutex_unlock(&r->mu);
  resolve_unref(r);
  return NULL;
}

/* Resolves host:port by the deadline. Numeric addresses never leave this
 * thread; names are looked up in a helper thread we stop waiting for at the
 * deadline. Returns 0 and *out, MCR_ECONNTIMEOUT, or MCR_ERESOLVE. */
int mcr__resolve(mcr_client_t* c, const mcr__server_t* srv, int64_t deadline,
                 struct addrinfo** out) {
  char port[8];
  snprintf(port, sizeof port, "%u", srv->port);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
  if (getaddrinfo(srv->host, port, &hints, out) == 0)
    return 0;

  size_t hlen = strlen(srv->host);
  resolve_t* r = mcr__calloc(1, sizeof(*r) + hlen + 1);
  if (!r)
    return MCR_ENOMEM;
  memcpy(r->host, srv->host, hlen + 1);
  memcpy(r->port, port, sizeof port);
  pthread_mutex_init(&r->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cv, &ca);
  pthread_condattr_destroy(&ca);
  r->refs = 2;

  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  int e = pthread_create(&tid, &ta, resolve_thread, r);
  pthread_attr_destroy(&ta);
  if (e) {
    r->refs = 1;
    resolve_unref(r);
    return mcr__set_error(c, MCR_ERESOLVE, "%s: cannot start resolver: %s",
                          srv->name, strerror(e));
  }

  struct timespec ts = {.tv_sec = deadline / 1000,
                        .tv_nsec = (deadline % 1000) * 1000000};
  pthread_mutex_lock(&r->mu);
  while (!r->done) {
    if (pthread_cond_timedwait(&r->cv, &r->mu, &ts) == ETIMEDOUT)
      break;
  }
  bool done = r->done;
  int rc = r->rc;
  *out = r->res;
  r->res = NULL; /* ours now */
  pthread_mutex_unlock(&r->mu);
  resolve_unref(r);

  if (!done)
    return mcr__set_error(c, MCR_ECONNTIMEOUT, "%s: name resolution timed out",
                          srv->name);
  if (rc != 0)
    return mcr__set_error(c, MCR_ERESOLVE, "%s: %s", srv->name,
                          gai_strerror(rc));
  return 0;
}

/* ------------------------------------------------------------ connecting */

/* Connects fd to addr by the deadline. Returns 0, or a negative error with
 * *sys set to the errno that explains it. */
static int connect_by(int fd, const struct sockaddr* addr, socklen_t len,
                      int64_t deadline, int* sys) {
  if (connect(fd, addr, len) == 0)
    return 0;
  if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR) {
    *sys = errno;
    return MCR_ECONNECT;
  }
  for (;;) {
    int64_t left = deadline - mcr__now_ms();
    if (left <= 0) {
      *sys = ETIMEDOUT;
      return MCR_ECONNTIMEOUT;
    }
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0) {
      *sys = errno;
      return MCR_ECONNECT;
    }
    if (r == 0)
      continue; /* re-check the deadline */
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
      soerr = errno;
    if (soerr) {
      *sys = soerr;
      return MCR_ECONNECT;
    }
    return 0;
  }
}

/* Blocking mode plus kernel timeouts: see the top of this file. */
static int tune_socket(mcr_client_t* c, int fd, bool tcp) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
    return -1;
  int one = 1;
  if (tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
    return -1;
  if (tcp && c->opts.tcp_keepalive &&
      setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0)
    return -1;
  struct timeval tv = {.tv_sec = c->opts.io_timeout_ms / 1000,
                       .tv_usec = (c->opts.io_timeout_ms % 1000) * 1000};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return -1;
  return 0;
}

static int open_unix(mcr_client_t* c, mcr__node_t* n, int64_t deadline) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t plen = strlen(n->srv.host);
  if (plen >= sizeof sa.sun_path)
    return mcr__set_error(c, MCR_EINVAL, "%s: path too long", n->srv.name);
  memcpy(sa.sun_path, n->srv.host, plen + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return mcr__set_error(c, MCR_ESYS, "%s: socket: %s", n->srv.name,
                          strerror(errno));
  int sys = 0;
  int rc = connect_by(fd, (struct sockaddr*)&sa, sizeof sa, deadline, &sys);
  if (rc == 0 && tune_socket(c, fd, false) < 0) {
    rc = MCR_ESYS;
    sys = errno;
  }
  if (rc) {
    close(fd);
    return mcr__set_error(c, rc, "%s: connect: %s", n->srv.name, strerror(sys));
  }
  n->conn.fd = fd;
  return 0;
}

static int open_tcp(mcr_client_t* c, mcr__node_t* n, int64_t deadline) {
  struct addrinfo* res = NULL;
  int rc = mcr__resolve(c, &n->srv, deadline, &res);
  if (rc)
    return rc;
  int sys = 0;
  rc = MCR_ECONNECT;
  for (struct addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      sys = errno;
      rc = MCR_ESYS;
      continue;
    }
    rc = connect_by(fd, ai->ai_addr, ai->ai_addrlen, deadline, &sys);
    if (rc == 0 && tune_socket(c, fd, true) < 0) {
      rc = MCR_ESYS;
      sys = errno;
    }
    if (rc == 0) {
      n->conn.fd = fd;
      break;
    }
    close(fd);
    if (rc == MCR_ECONNTIMEOUT)
      break; /* no time left for the next one */
  }
  freeaddrinfo(res);
  if (rc)
    return mcr__set_error(c, rc, "%s: connect: %s", n->srv.name, strerror(sys));
  return 0;
}

/* A down node fails at once until its retry time; then one call may try
 * it, and one more failure marks it down again. */
static int check_down(mcr_client_t* c, mcr__node_t* n, int64_t now) {
  if (now < n->down_until)
    return mcr__set_error(
        c, MCR_ENODEDOWN, "%s: down after %d failures, next try in %lld ms",
        n->srv.name, n->fails, (long long)(n->down_until - now));
  n->down_until = 0;
  n->fails = c->opts.failure_limit - 1;
  c->ndown--;
  return 0;
}

/* The cold half of mcr__conn_begin: a node marked down, a connection made
 * before a fork or left with unread bytes, a receive buffer to shrink, or
 * no connection at all. */
__attribute__((noinline)) static int begin_slow(mcr_client_t* c, mcr__node_t* n,
                                                int64_t now) {
  mcr__conn_t* k = &n->conn;
  if (n->down_until) {
    int rc = check_down(c, n, now);
    if (rc)
      return rc;
  }
  if (k->fd >= 0) {
    /* A child after fork sees the parent's generation on the connection. */
    if (k->fork_gen != ck_pr_load_uint(&mcr__fork_gen))
      mcr__conn_close(n);
    else if (k->rpos != k->rlen)
      mcr__conn_close(n); /* leftover bytes: the stream is out of sync */
  }
  k->rpos = k->rlen = 0;
  k->reused = k->fd >= 0;
  if (k->rcap > RBUF_KEEP) {
    mcr__free(k->rbuf);
    k->rbuf = NULL;
    k->rcap = 0;
  }
  if (k->fd >= 0)
    return 0;

  int64_t cdeadline = now + c->opts.connect_timeout_ms;
  int rc =
      n->srv.is_unix ? open_unix(c, n, cdeadline) : open_tcp(c, n, cdeadline);
  if (rc) {
    node_failed(c, n, rc);
    return rc;
  }
  k->fork_gen = ck_pr_load_uint(&mcr__fork_gen);
  if (k->used)
    c->counters.reconnects++;
  k->used = true;
  /* The I/O deadline starts once connected. */
  k->deadline = mcr__now_ms() + c->opts.io_timeout_ms;
  return 0;
}

/* The hot half: a kept connection of this process, node up, nothing left
 * unread, buffer of a normal size. Everything else goes to begin_slow. */
static inline int begin(mcr_client_t* c, mcr__node_t* n) {
  mcr__conn_t* k = &n->conn;
  int64_t now_ns = mcr__now_ns();
  int64_t now = now_ns / 1000000;
  k->start_ns = now_ns;
  k->deadline = now + c->opts.io_timeout_ms;
  k->slow = false;
  if (MCR__LIKELY(k->fd >= 0 && !n->down_until && k->rpos == k->rlen &&
                  k->fork_gen == ck_pr_load_uint(&mcr__fork_gen) &&
                  k->rcap <= RBUF_KEEP)) {
    k->rpos = k->rlen = 0;
    k->reused = true;
    return 0;
  }
  return begin_slow(c, n, now);
}

int mcr__conn_begin(mcr_client_t* c, mcr__node_t* n) {
  return begin(c, n);
}

/* A reused connection that fails before any reply byte was closed by the
 * server while idle: report MCR__ESTALE so the caller runs the call again
 * on a new connection (see internal.h). */
static int closed_or_stale(mcr_client_t* c, mcr__node_t* n, int e) {
  if (n->conn.reused && n->conn.rlen == 0) {
    mcr__conn_close(n);
    mcr__set_error(c, MCR_ECLOSED, "%s: idle connection was closed",
                   n->srv.name);
    return MCR__ESTALE;
  }
  if (e)
    return fail_errno(c, n, MCR_ECLOSED, "connection lost", e);
  return mcr__conn_fail(c, n, MCR_ECLOSED, "connection closed by the server");
}

/* ------------------------------------------------------------ sending */

/* Waits until fd is ready for `events` or the call's deadline passes.
 * Returns 0 when ready, MCR_ETIMEOUT, or MCR_EIO. */
static int wait_ready(mcr__conn_t* k, short events) {
  for (;;) {
    int64_t left = k->deadline - mcr__now_ms();
    if (left <= 0)
      return MCR_ETIMEOUT;
    struct pollfd p = {.fd = k->fd, .events = events};
    int r = poll(&p, 1, (int)left);
    if (r > 0)
      return 0;
    if (r < 0 && errno != EINTR)
      return MCR_EIO;
  }
}

/* The rest of a send whose first attempt returned w of `total` bytes:
 * partial write, timeout or error. From here on every step waits on the
 * call's deadline. */
__attribute__((noinline)) static int send_rest(mcr_client_t* c, mcr__node_t* n,
                                               struct msghdr mh, ssize_t w,
                                               size_t total) {
  mcr__conn_t* k = &n->conn;
  k->slow = true;
  for (;;) {
    if (w < 0) {
      if (errno == EINTR) {
        w = 0;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_ready(k, POLLOUT);
        if (rc == MCR_ETIMEOUT)
          return mcr__conn_fail(c, n, MCR_ETIMEOUT, "timed out sending");
        if (rc)
          return fail_errno(c, n, MCR_EIO, "poll", errno);
        w = 0;
      } else if (errno == EPIPE || errno == ECONNRESET) {
        return closed_or_stale(c, n, errno);
      } else {
        return fail_errno(c, n, MCR_EIO, "send", errno);
      }
    }
    total -= (size_t)w;
    if (total == 0)
      return 0;
    while (w > 0) {
      if ((size_t)w >= mh.msg_iov->iov_len) {
        w -= (ssize_t)mh.msg_iov->iov_len;
        mh.msg_iov++;
        mh.msg_iovlen--;
      } else {
        mh.msg_iov->iov_base = (char*)mh.msg_iov->iov_base + w;
        mh.msg_iov->iov_len -= (size_t)w;
        w = 0;
      }
    }
    w = sendmsg(k->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
}

int mcr__conn_send(mcr_client_t* c, mcr__node_t* n, struct iovec* iov,
                   int iovcnt) {
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
  size_t total = 0;
  for (int i = 0; i < iovcnt; i++)
    total += iov[i].iov_len;
  if (MCR__UNLIKELY(n->hs != NULL))
    mcr__hs_add(n, offsetof(mcr_node_counters_t, bytes_out), total);
  ssize_t w = sendmsg(n->conn.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (MCR__LIKELY((size_t)w == total))
    return 0;
  return send_rest(c, n, mh, w, total);
}

/* ------------------------------------------------------------ receiving */

/* Makes room for `need` bytes after rlen. */
static int rbuf_reserve(mcr__conn_t* k, size_t need) {
  if (k->rcap - k->rlen >= need)
    return 0;
  size_t cap = k->rcap ? k->rcap : RBUF_INITIAL;
  while (cap - k->rlen < need)
    cap *= 2;
  char* p = mcr__realloc(k->rbuf, cap);
  if (!p)
    return MCR_ENOMEM;
  k->rbuf = p;
  k->rcap = cap;
  return 0;
}

/* The outcome of one recv into the buffer: 0 when bytes arrived (counted),
 * 1 when the caller should wait or retry (EINTR, EAGAIN), else the error
 * after failing the connection. */
/* r > 0 bytes arrived after rlen: takes them and counts them. */
static inline void took(mcr__node_t* n, size_t r) {
  n->conn.rlen += r;
  if (MCR__UNLIKELY(n->hs != NULL))
    mcr__hs_add(n, offsetof(mcr_node_counters_t, bytes_in), r);
}

static int received(mcr_client_t* c, mcr__node_t* n, ssize_t r) {
  if (MCR__LIKELY(r > 0)) {
    took(n, (size_t)r);
    return 0;
  }
  if (r == 0)
    return closed_or_stale(c, n, 0);
  if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
    return 1;
  if (errno == ECONNRESET)
    return closed_or_stale(c, n, errno);
  return fail_errno(c, n, MCR_EIO, "recv", errno);
}

/* Receives more bytes, in the general case: grows the buffer when needed,
 * and waits with poll against the call's deadline once the call's first
 * receive is done. */
__attribute__((noinline)) static int fill_slow(mcr_client_t* c,
                                               mcr__node_t* n) {
  mcr__conn_t* k = &n->conn;
  if (rbuf_reserve(k, 4096))
    return mcr__conn_fail(c, n, MCR_ENOMEM, "cannot grow receive buffer");
  for (;;) {
    ssize_t r;
    if (!k->slow) {
      r = recv(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen, 0);
      k->slow = true;
    } else {
      int rc = wait_ready(k, POLLIN);
      if (rc == MCR_ETIMEOUT)
        break;
      if (rc)
        return fail_errno(c, n, MCR_EIO, "poll", errno);
      r = recv(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen, MSG_DONTWAIT);
    }
    int rc = received(c, n, r);
    if (MCR__LIKELY(rc != 1))
      return rc;
    /* EINTR, SO_RCVTIMEO expired, or a wakeup with nothing to read. */
    if (mcr__now_ms() >= k->deadline)
      break;
  }
  return mcr__conn_fail(c, n, MCR_ETIMEOUT, "timed out waiting for reply");
}

/* The first receive of a call returned r <= 0: the error, or on EINTR /
 * EAGAIN (SO_RCVTIMEO) the wait goes on with poll until the deadline. */
__attribute__((noinline)) static int fill_failed(mcr_client_t* c,
                                                 mcr__node_t* n, ssize_t r) {
  int rc = received(c, n, r);
  if (rc != 1)
    return rc;
  if (mcr__now_ms() >= n->conn.deadline)
    return mcr__conn_fail(c, n, MCR_ETIMEOUT, "timed out waiting for reply");
  return fill_slow(c, n);
}

/* Receives more bytes. The first receive of a call blocks (bounded by
 * SO_RCVTIMEO, the I/O timeout); later ones poll against the deadline. */
static inline int fill(mcr_client_t* c, mcr__node_t* n) {
  mcr__conn_t* k = &n->conn;
  if (MCR__LIKELY(!k->slow && k->rcap - k->rlen >= 4096)) {
    ssize_t r = recv(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen, 0);
    k->slow = true;
    if (MCR__LIKELY(r > 0)) {
      took(n, (size_t)r);
      return 0;
    }
    return fill_failed(c, n, r);
  }
  return fill_slow(c, n);
}

int mcr__conn_request(mcr_client_t* c, mcr__node_t* n, const void* buf,
                      size_t len) {
  int rc = begin(c, n);
  if (MCR__UNLIKELY(rc))
    return rc;
  if (MCR__UNLIKELY(n->hs != NULL))
    mcr__hs_add(n, offsetof(mcr_node_counters_t, bytes_out), len);
  ssize_t w = send(n->conn.fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (MCR__UNLIKELY((size_t)w != len)) {
    struct iovec iov = {.iov_base = (void*)buf, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if ((rc = send_rest(c, n, mh, w, len)))
      return rc;
  }
  return fill(c, n);
}

int mcr__conn_line(mcr_client_t* c, mcr__node_t* n, size_t* off, size_t* len) {
  mcr__conn_t* k = &n->conn;
  size_t scan = k->rpos;
  for (;;) {
    if (k->rlen > scan) {
      char* nl = memchr(k->rbuf + scan, '\n', k->rlen - scan);
      if (MCR__LIKELY(nl != NULL)) {
        size_t end = (size_t)(nl - k->rbuf);
        if (MCR__UNLIKELY(end == k->rpos || k->rbuf[end - 1] != '\r'))
          return mcr__conn_fail(c, n, MCR_EPROTO,
                                "reply line not ended by \\r\\n");
        *off = k->rpos;
        *len = end - 1 - k->rpos;
        k->rpos = end + 1;
        mcr__conn_answered(n);
        return 0;
      }
      scan = k->rlen;
    }
    if (MCR__UNLIKELY(k->rlen - k->rpos > REPLY_LINE_MAX))
      return mcr__conn_fail(c, n, MCR_EPROTO, "reply line too long");
    int rc = fill(c, n);
    if (rc)
      return rc;
  }
}

int mcr__conn_block(mcr_client_t* c, mcr__node_t* n, size_t len, size_t* off) {
  mcr__conn_t* k = &n->conn;
  if (MCR__UNLIKELY(len > MCR__BLOCK_MAX))
    return mcr__conn_fail(c, n, MCR_EPROTO, "value length out of range");
  size_t need = len + 2;
  if (k->rlen - k->rpos < need) {
    if (rbuf_reserve(k, need - (k->rlen - k->rpos)))
      return mcr__conn_fail(c, n, MCR_ENOMEM, "cannot grow receive buffer");
    while (k->rlen - k->rpos < need) {
      int rc = fill(c, n);
      if (rc)
        return rc;
    }
  }
  const char* end = k->rbuf + k->rpos + len;
  if (MCR__UNLIKELY(end[0] != '\r' || end[1] != '\n'))
    return mcr__conn_fail(c, n, MCR_EPROTO, "data block not ended by \\r\\n");
  *off = k->rpos;
  k->rpos += need;
  return 0;
}

/* ------------------------------------------------------------ fan-out */

int mcr__conn_peek_line(mcr_client_t* c, mcr__node_t* n, size_t* off,
                        size_t* len) {
  mcr__conn_t* k = &n->conn;
  if (k->rlen == k->rpos)
    return 0;
  char* nl = memchr(k->rbuf + k->rpos, '\n', k->rlen - k->rpos);
  if (!nl) {
    if (k->rlen - k->rpos > REPLY_LINE_MAX)
      return mcr__conn_fail(c, n, MCR_EPROTO, "reply line too long");
    return 0;
  }
  size_t end = (size_t)(nl - k->rbuf);
  if (end == k->rpos || k->rbuf[end - 1] != '\r')
    return mcr__conn_fail(c, n, MCR_EPROTO, "reply line not ended by \\r\\n");
  *off = k->rpos;
  *len = end - 1 - k->rpos;
  k->rpos = end + 1;
  mcr__conn_answered(n);
  return 1;
}

int mcr__conn_peek_block(mcr_client_t* c, mcr__node_t* n, size_t len,
                         size_t* off) {
  mcr__conn_t* k = &n->conn;
  if (len > MCR__BLOCK_MAX)
    return mcr__conn_fail(c, n, MCR_EPROTO, "value length out of range");
  if (k->rlen - k->rpos < len + 2) {
    /* Make room now so the next receive can take the whole block. */
    if (rbuf_reserve(k, len + 2 - (k->rlen - k->rpos)))
      return mcr__conn_fail(c, n, MCR_ENOMEM, "cannot grow receive buffer");
    return 0;
  }
  const char* end = k->rbuf + k->rpos + len;
  if (end[0] != '\r' || end[1] != '\n')
    return mcr__conn_fail(c, n, MCR_EPROTO, "data block not ended by \\r\\n");
  *off = k->rpos;
  k->rpos += len + 2;
  return 1;
}

/* Receives whatever is available on a node polled readable. */
static int fill_nowait(mcr_client_t* c, mcr__node_t* n) {
  mcr__conn_t* k = &n->conn;
  if (rbuf_reserve(k, 4096))
    return mcr__conn_fail(c, n, MCR_ENOMEM, "cannot grow receive buffer");
  int rc;
  do {
    rc = received(
        c, n, recv(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen, MSG_DONTWAIT));
  } while (rc == 1 && errno == EINTR);
  return rc == 1 ? 0 : rc; /* EAGAIN: nothing yet, poll again */
}

#define GATHER_STACK 8

void mcr__conn_gather(mcr_client_t* c, size_t count, mcr__node_t** nodes,
                      void** ctx, mcr__step_fn step, int* result) {
  /* One node: the blocking path, two system calls for a short reply. */
  if (count == 1) {
    int rc;
    while ((rc = step(c, nodes[0], ctx[0])) == 1) {
      rc = fill(c, nodes[0]);
      if (rc)
        break;
    }
    result[0] = rc;
    return;
  }
  struct pollfd stack_pfd[GATHER_STACK];
  size_t stack_idx[GATHER_STACK];
  struct pollfd* pfd = stack_pfd;
  size_t* idx = stack_idx;
  if (count > GATHER_STACK) {
    pfd = mcr__arena_alloc(&c->arena, count * sizeof(*pfd));
    idx = mcr__arena_alloc(&c->arena, count * sizeof(*idx));
    if (!pfd || !idx) {
      for (size_t i = 0; i < count; i++)
        result[i] = mcr__conn_fail(c, nodes[i], MCR_ENOMEM, "out of memory");
      return;
    }
  }
  for (size_t i = 0; i < count; i++)
    result[i] = 1;
  for (;;) {
    size_t np = 0;
    int64_t now = mcr__now_ms(), first = INT64_MAX;
    for (size_t i = 0; i < count; i++) {
      if (result[i] != 1)
        continue;
      mcr__conn_t* k = &nodes[i]->conn;
      if (k->deadline <= now) {
        result[i] = mcr__conn_fail(c, nodes[i], MCR_ETIMEOUT,
                                   "timed out waiting for reply");
        continue;
      }
      if (k->deadline < first)
        first = k->deadline;
      pfd[np] = (struct pollfd){.fd = k->fd, .events = POLLIN};
      idx[np++] = i;
    }
    if (np == 0)
      return;
    int r = poll(pfd, np, (int)(first - now));
    if (r < 0 && errno != EINTR) {
      for (size_t j = 0; j < np; j++)
        result[idx[j]] = fail_errno(c, nodes[idx[j]], MCR_EIO, "poll", errno);
      return;
    }
    for (size_t j = 0; r > 0 && j < np; j++) {
      if (!pfd[j].revents)
        continue;
      size_t i = idx[j];
      int rc = fill_nowait(c, nodes[i]);
      result[i] = rc ? rc : step(c, nodes[i], ctx[i]);
    }
  }
}
