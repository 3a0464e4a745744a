/* conn.c — the transport: one connection to one server, against a deadline.
 *
 * It connects (name resolution included), sends whole requests and
 * receives bytes into the connection's buffer, and reports failures as
 * codes with the errno behind them (k->sys) and what failed (k->what). It
 * knows no protocol and no client: the engine (fanout.c) decides what a
 * failure means and writes the message. With a TLS context in the options
 * every connection is TLS (tls.c, below this file): open runs the
 * handshake, send and fill go through OpenSSL; the rest is the same.
 *
 * Timeouts. Connecting uses a non-blocking socket and poll, bounded by the
 * deadline the caller gives, which also bounds name resolution (getaddrinfo
 * runs in a short-lived thread we stop waiting for at the deadline). Once
 * connected, the socket is switched to blocking mode with SO_RCVTIMEO /
 * SO_SNDTIMEO set to the I/O timeout. The common call is then exactly two
 * system calls, one sendmsg and one recv that returns the whole reply,
 * where a non-blocking socket would need a poll (or a failed recv) in
 * between. The first send does not wait (MSG_DONTWAIT): as soon as a call
 * finds the socket buffer full or needs a second recv, it switches to poll
 * plus MSG_DONTWAIT against the call's deadline (k->slow), so a server
 * that reads slowly or drips bytes still cannot stretch a call past it.
 * docs/decisions.md says why.
 *
 * Stream safety. Every failure closes the connection, so a reply is never
 * read out of sync; the next call reconnects.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

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

/* A resolver thread outlives a caller that gave up, and runs library code
 * until it returns: libmcring must never be unmapped under it (PHP unloads
 * an extension and the libraries it pulled in at shutdown). The first
 * resolver thread pins the library: a dlopen of itself with RTLD_NODELETE.
 * Linked statically into a program, there is nothing to pin. */
static pthread_once_t pin_once = PTHREAD_ONCE_INIT;
static void pin_library(void) {
  Dl_info info;
  if (dladdr((void*)&pin_once, &info) && info.dli_fname)
    (void)dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD | RTLD_NODELETE);
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

int mcr__resolve(const mcr__server_t* srv, int64_t deadline,
                 struct addrinfo** out, const char** why) {
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

  pthread_once(&pin_once, pin_library);
  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  pthread_t tid;
  int e = pthread_create(&tid, &ta, resolve_thread, r);
  pthread_attr_destroy(&ta);
  if (e) {
    r->refs = 1;
    resolve_unref(r);
    *why = "cannot start a resolver thread";
    return MCR_ESYS;
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

  if (!done) {
    *why = "name resolution timed out";
    return MCR_ECONNTIMEOUT;
  }
  if (rc != 0) {
    *why = gai_strerror(rc);
    return MCR_ERESOLVE;
  }
  return 0;
}

/* ------------------------------------------------------------ connecting */

/* Records what failed and why; returns err. */
static int failed(mcr__conn_t* k, int err, const char* what, int sys) {
  k->what = what;
  k->sys = sys;
  return err;
}

/* Connects fd to addr by the deadline. Returns 0 or a negative error with
 * k->sys set. */
static int connect_by(mcr__conn_t* k, int fd, const struct sockaddr* addr,
                      socklen_t len, int64_t deadline) {
  if (connect(fd, addr, len) == 0)
    return 0;
  if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
    return failed(k, MCR_ECONNECT, "connect", errno);
  for (;;) {
    int64_t left = deadline - mcr__now_ms();
    if (left <= 0)
      return failed(k, MCR_ECONNTIMEOUT, "connect", ETIMEDOUT);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int r = poll(&p, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      return failed(k, MCR_ECONNECT, "poll", errno);
    if (r == 0)
      continue; /* re-check the deadline */
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
      soerr = errno;
    return soerr ? failed(k, MCR_ECONNECT, "connect", soerr) : 0;
  }
}

/* Blocking mode plus kernel timeouts: see the top of this file. */
static int tune_socket(mcr__conn_t* k, int fd, bool tcp,
                       const mcr__conn_opts_t* o) {
  int fl = fcntl(fd, F_GETFL);
  int one = 1;
  struct timeval tv = {.tv_sec = o->io_timeout_ms / 1000,
                       .tv_usec = (o->io_timeout_ms % 1000) * 1000};
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
      (tcp && setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0) ||
      (tcp && o->keepalive &&
       setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one) < 0) ||
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
    return failed(k, MCR_ESYS, "socket options", errno);
  return 0;
}

static int open_unix(mcr__conn_t* k, const mcr__server_t* srv,
                     const mcr__conn_opts_t* o, int64_t deadline) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  size_t plen = strlen(srv->host);
  if (plen >= sizeof sa.sun_path)
    return failed(k, MCR_EINVAL, "socket path too long", 0);
  memcpy(sa.sun_path, srv->host, plen + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return failed(k, MCR_ESYS, "socket", errno);
  int rc = connect_by(k, fd, (struct sockaddr*)&sa, sizeof sa, deadline);
  if (!rc)
    rc = tune_socket(k, fd, false, o);
  if (rc) {
    close(fd);
    return rc;
  }
  k->fd = fd;
  return 0;
}

static int open_tcp(mcr__conn_t* k, const mcr__server_t* srv,
                    const mcr__conn_opts_t* o, int64_t deadline) {
  struct addrinfo* res = NULL;
  const char* why = NULL;
  int rc = mcr__resolve(srv, deadline, &res, &why);
  if (rc)
    return failed(k, rc, why ? why : "name resolution", 0);
  rc = failed(k, MCR_ECONNECT, "connect", EHOSTUNREACH);
  for (struct addrinfo* ai = res; ai; ai = ai->ai_next) {
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
               ai->ai_protocol);
    if (fd < 0) {
      rc = failed(k, MCR_ESYS, "socket", errno);
      continue;
    }
    rc = connect_by(k, fd, ai->ai_addr, ai->ai_addrlen, deadline);
    if (!rc)
      rc = tune_socket(k, fd, true, o);
    if (!rc) {
      k->fd = fd;
      break;
    }
    close(fd);
    if (rc == MCR_ECONNTIMEOUT)
      break; /* no time left for the next one */
  }
  freeaddrinfo(res);
  return rc;
}

int mcr__conn_open(mcr__conn_t* k, const mcr__server_t* srv,
                   const mcr__conn_opts_t* o, int64_t deadline) {
  k->sys = 0;
  k->what = NULL;
  k->rpos = k->rlen = 0;
  int rc = srv->is_unix ? open_unix(k, srv, o, deadline)
                        : open_tcp(k, srv, o, deadline);
  if (!rc && o->tls &&
      (rc = mcr__tls_start(k, o->tls, srv->tls_name ? srv->tls_name : srv->host,
                           deadline)))
    mcr__conn_close(k);
  if (!rc) {
    k->fork_gen = mcr__fork_gen;
    k->reused = false;
  }
  return rc;
}

void mcr__conn_close(mcr__conn_t* k) {
  if (k->ssl)
    mcr__tls_end(k);
  if (k->fd >= 0)
    close(k->fd);
  k->fd = -1;
}

void mcr__conn_free(mcr__conn_t* k) {
  mcr__conn_close(k);
  mcr__tls_forget(k);
  mcr__free(k->rbuf);
  k->rbuf = NULL;
  k->rcap = 0;
}

/* Closes the connection and records the failure; returns err. */
static int lost(mcr__conn_t* k, int err, const char* what, int sys) {
  mcr__conn_close(k);
  return failed(k, err, what, sys);
}

/* ------------------------------------------------------------ sending */

/* Waits until fd is ready for `events` or the call's deadline passes.
 * Returns 0 when ready, MCR_ETIMEOUT, or MCR_EIO. */
static int wait_ready(mcr__conn_t* k, short events) {
  return mcr__wait_fd(k->fd, events, k->deadline);
}

/* The rest of a send whose first attempt returned w of `total` bytes:
 * partial write, timeout or error. From here on every step waits on the
 * call's deadline. */
__attribute__((noinline)) static int send_rest(mcr__conn_t* k, struct msghdr mh,
                                               ssize_t w, size_t total) {
  k->slow = true;
  for (;;) {
    if (w < 0) {
      if (errno == EINTR) {
        w = 0;
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        int rc = wait_ready(k, POLLOUT);
        if (rc == MCR_ETIMEOUT)
          return lost(k, MCR_ETIMEOUT, "timed out sending", 0);
        if (rc)
          return lost(k, MCR_EIO, "poll", errno);
        w = 0;
      } else if (errno == EPIPE || errno == ECONNRESET) {
        return lost(k, MCR_ECLOSED, "send", errno);
      } else {
        return lost(k, MCR_EIO, "send", errno);
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

int mcr__conn_send_rest(mcr__conn_t* k, const struct iovec* iov, int iovcnt,
                        ssize_t w, size_t total) {
  /* send_rest moves through a copy of the pieces. */
  struct iovec copy[iovcnt > 0 ? iovcnt : 1];
  memcpy(copy, iov, (size_t)iovcnt * sizeof *iov);
  struct msghdr mh = {.msg_iov = copy, .msg_iovlen = (size_t)iovcnt};
  return send_rest(k, mh, w, total);
}

/* ------------------------------------------------------------ receiving */

/* Makes room for `need` bytes after rlen. */
static int rbuf_reserve(mcr__conn_t* k, size_t need) {
  return mcr__grow(&k->rbuf, &k->rcap, k->rlen, need, MCR__RBUF_INITIAL);
}

/* The outcome of one recv into the buffer: 0 when bytes arrived, 1 when
 * the caller should wait or try again (EINTR, EAGAIN), else the error
 * after closing the connection. */
static int received(mcr__conn_t* k, ssize_t r) {
  if (MCR__LIKELY(r > 0)) {
    k->rlen += (size_t)r;
    return 0;
  }
  if (r == 0)
    return lost(k, MCR_ECLOSED, "recv", 0);
  if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
    return 1;
  if (errno == ECONNRESET)
    return lost(k, MCR_ECLOSED, "recv", errno);
  return lost(k, MCR_EIO, "recv", errno);
}

/* Receives more bytes in the general case: the buffer is grown first, and
 * every wait after the call's first receive polls against the deadline. */
__attribute__((noinline)) static int fill_slow(mcr__conn_t* k, size_t room) {
  if (rbuf_reserve(k, room > MCR__RECV_ROOM ? room : MCR__RECV_ROOM))
    return lost(k, MCR_ENOMEM, "receive buffer", ENOMEM);
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
        return lost(k, MCR_EIO, "poll", errno);
      r = recv(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen, MSG_DONTWAIT);
    }
    int rc = received(k, r);
    if (MCR__LIKELY(rc != 1))
      return rc;
    /* EINTR, SO_RCVTIMEO expired, or a wakeup with nothing to read. */
    if (mcr__now_ns() >= k->deadline)
      break;
  }
  return lost(k, MCR_ETIMEOUT, "timed out waiting for the reply", 0);
}

int mcr__conn_fill_failed(mcr__conn_t* k, ssize_t r) {
  int rc = received(k, r);
  if (rc != 1)
    return rc;
  if (mcr__now_ns() >= k->deadline)
    return lost(k, MCR_ETIMEOUT, "timed out waiting for the reply", 0);
  return fill_slow(k, 0);
}

int mcr__conn_fill_slow(mcr__conn_t* k, size_t room) {
  return fill_slow(k, room);
}

/* ------------------------------------------------------------ over TLS */

/* Any failure closes the connection, as on plain TCP. */
static int tls_result(mcr__conn_t* k, int rc) {
  if (rc)
    mcr__conn_close(k);
  return rc;
}

int mcr__conn_send_tls(mcr__conn_t* k, const struct iovec* iov, int iovcnt) {
  return tls_result(k, mcr__tls_send(k, iov, iovcnt));
}

int mcr__conn_fill_tls(mcr__conn_t* k, size_t room) {
  return tls_result(k, mcr__tls_fill(k, room, false));
}

int mcr__conn_fill_nowait(mcr__conn_t* k, size_t room) {
  if (k->ssl)
    return tls_result(k, mcr__tls_fill(k, room, true));
  if (rbuf_reserve(k, room > MCR__RECV_ROOM ? room : MCR__RECV_ROOM))
    return lost(k, MCR_ENOMEM, "receive buffer", ENOMEM);
  int rc;
  do {
    rc = received(
        k, recv(k->fd, k->rbuf + k->rlen, k->rcap - k->rlen, MSG_DONTWAIT));
  } while (rc == 1 && errno == EINTR);
  return rc == 1 ? 0 : rc; /* EAGAIN: nothing yet, poll again */
}
