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
 * runs in a short-lived thread we stop waiting for at the deadline; many
 * names, as an embedded `ketama` ring needs, are looked up a few at a
 * time, each name against its own timeout: mcr__resolve_many). Once
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

/* Names are resolved by helper threads, because getaddrinfo has no
 * timeout: the caller waits for them only until each name's deadline.
 * One batch holds every name of a call (one for a connection, all the
 * nodes of an embedded `ketama` ring); up to RESOLVE_PARALLEL helpers take
 * the next name in turn, and a name's deadline runs from when its helper
 * takes it, so a thousand names cost a thousand lookups spread over the
 * helpers, not one timeout shared by all (docs/client.md says what it
 * costs). The batch is shared by the caller and the helpers and freed by
 * the last one to drop it, so a caller that gave up never waits; the
 * helpers then take no more names. */
#define RESOLVE_PARALLEL 16

typedef struct {
  const char* host; /* into the batch's strings */
  char port[8];
  bool taken, finished;
  int64_t deadline; /* set when taken */
  int rc;
  struct addrinfo* res;
} rname_t;

typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int refs;
  bool quit;            /* the caller left: take no more names */
  size_t n, next, done; /* names, the next to take, those finished */
  bool failed;          /* a lookup failed */
  int timeout_ms;       /* per name, from when it is taken */
  int64_t cap;          /* and never past this (CLOCK_MONOTONIC ms) */
  rname_t* names;       /* n entries, then the host strings */
} batch_t;

static void batch_unref(batch_t* b) {
  pthread_mutex_lock(&b->mu);
  bool last = --b->refs == 0;
  pthread_mutex_unlock(&b->mu);
  if (!last)
    return;
  for (size_t i = 0; i < b->n; i++)
    if (b->names[i].res)
      freeaddrinfo(b->names[i].res);
  pthread_mutex_destroy(&b->mu);
  pthread_cond_destroy(&b->cv);
  mcr__free(b->names);
  mcr__free(b);
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
  batch_t* b = arg;
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG};
  pthread_mutex_lock(&b->mu);
  while (!b->quit && !b->failed) {
    while (b->next < b->n && b->names[b->next].finished)
      b->next++; /* numeric: done by the caller */
    if (b->next == b->n)
      break;
    rname_t* r = &b->names[b->next++];
    r->taken = true;
    int64_t d = mcr__now_ms() + b->timeout_ms;
    r->deadline = d < b->cap ? d : b->cap;
    pthread_mutex_unlock(&b->mu);
    struct addrinfo* res = NULL;
    int rc = getaddrinfo(r->host, r->port, &hints, &res);
    pthread_mutex_lock(&b->mu);
    r->rc = rc;
    r->res = res;
    r->finished = true;
    b->done++;
    if (rc)
      b->failed = true;
    pthread_cond_signal(&b->cv);
  }
  pthread_mutex_unlock(&b->mu);
  batch_unref(b);
  return NULL;
}

/* The batch for srv[0..n), numeric addresses resolved already. NULL when
 * out of memory. */
static batch_t* batch_new(const mcr__server_t* const* srv, size_t n,
                          int timeout_ms, int64_t cap) {
  size_t strbytes = 0;
  for (size_t i = 0; i < n; i++)
    strbytes += strlen(srv[i]->host) + 1;
  batch_t* b = mcr__calloc(1, sizeof(*b));
  rname_t* names = mcr__calloc(1, n * sizeof(*names) + strbytes);
  if (!b || !names) {
    mcr__free(b);
    mcr__free(names);
    return NULL;
  }
  b->names = names;
  b->n = n;
  b->timeout_ms = timeout_ms;
  b->cap = cap;
  char* str = (char*)(names + n);
  struct addrinfo hints = {.ai_family = AF_UNSPEC,
                           .ai_socktype = SOCK_STREAM,
                           .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
  for (size_t i = 0; i < n; i++) {
    rname_t* r = &names[i];
    size_t hl = strlen(srv[i]->host) + 1;
    memcpy(str, srv[i]->host, hl);
    r->host = str;
    str += hl;
    snprintf(r->port, sizeof r->port, "%u", srv[i]->port);
    if (getaddrinfo(r->host, r->port, &hints, &r->res) == 0) {
      r->finished = true;
      b->done++;
    } else {
      r->res = NULL;
    }
  }
  pthread_mutex_init(&b->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cv, &ca);
  pthread_condattr_destroy(&ca);
  b->refs = 1;
  return b;
}

/* Starts up to RESOLVE_PARALLEL helpers for the names left. Returns 0, or
 * MCR_ESYS when not even one could start. Caller holds no lock. */
static int batch_start(batch_t* b) {
  size_t left = b->n - b->done;
  size_t want = left < RESOLVE_PARALLEL ? left : RESOLVE_PARALLEL;
  if (want == 0)
    return 0;
  pthread_once(&pin_once, pin_library);
  pthread_attr_t ta;
  pthread_attr_init(&ta);
  pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
  size_t started = 0;
  for (size_t i = 0; i < want; i++) {
    pthread_mutex_lock(&b->mu);
    b->refs++;
    pthread_mutex_unlock(&b->mu);
    pthread_t tid;
    if (pthread_create(&tid, &ta, resolve_thread, b) != 0) {
      batch_unref(b);
      break;
    }
    started++;
  }
  pthread_attr_destroy(&ta);
  return started ? 0 : MCR_ESYS;
}

/* Waits until every name is resolved, one failed, or a name in progress
 * passed its deadline. Returns 0, MCR_ERESOLVE or MCR_ECONNTIMEOUT with
 * *bad the index of the name at fault. Caller holds b->mu. */
static int batch_wait(batch_t* b, size_t* bad) {
  /* Names are taken in index order, so the oldest name in progress (the
   * first deadline to pass) is the lowest-numbered one taken and not
   * finished: `oldest` only moves forward. */
  size_t oldest = 0;
  for (;;) {
    for (size_t i = 0; b->failed && i < b->n; i++)
      if (b->names[i].finished && b->names[i].rc) {
        *bad = i;
        return MCR_ERESOLVE;
      }
    if (b->done == b->n)
      return 0;
    while (oldest < b->n && b->names[oldest].finished)
      oldest++;
    /* Before any helper took a name: the time a taken name would get. */
    int64_t now = mcr__now_ms();
    rname_t* o = &b->names[oldest];
    int64_t until = o->taken ? o->deadline : now + b->timeout_ms;
    if (until > b->cap)
      until = b->cap;
    if (now >= until) {
      *bad = oldest;
      return MCR_ECONNTIMEOUT;
    }
    struct timespec ts = {.tv_sec = until / 1000,
                          .tv_nsec = (until % 1000) * 1000000};
    pthread_cond_timedwait(&b->cv, &b->mu, &ts);
  }
}

int mcr__resolve_many(const mcr__server_t* const* srv, size_t n, int timeout_ms,
                      int64_t deadline, struct addrinfo** out, size_t* bad,
                      const char** why) {
  for (size_t i = 0; i < n; i++)
    out[i] = NULL;
  *bad = 0;
  if (n == 0)
    return 0;
  batch_t* b = batch_new(srv, n, timeout_ms, deadline);
  if (!b) {
    *why = "out of memory";
    return MCR_ENOMEM;
  }
  if (b->done < n && batch_start(b) != 0) {
    batch_unref(b);
    *why = "cannot start a resolver thread";
    return MCR_ESYS;
  }
  pthread_mutex_lock(&b->mu);
  int rc = batch_wait(b, bad);
  if (rc == 0) {
    for (size_t i = 0; i < n; i++) {
      out[i] = b->names[i].res;
      b->names[i].res = NULL; /* the caller's now */
    }
  } else if (rc == MCR_ERESOLVE) {
    *why = gai_strerror(b->names[*bad].rc);
  } else {
    *why = "name resolution timed out";
  }
  b->quit = true;
  pthread_mutex_unlock(&b->mu);
  batch_unref(b);
  return rc;
}

int mcr__resolve(const mcr__server_t* srv, int64_t deadline,
                 struct addrinfo** out, const char** why) {
  size_t bad;
  int64_t left = deadline - mcr__now_ms();
  return mcr__resolve_many(
      &srv, 1, left > 0 ? (int)(left < INT32_MAX ? left : INT32_MAX) : 0,
      deadline, out, &bad, why);
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
