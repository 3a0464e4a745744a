/* fakesrv.c — misbehaving memcached servers for failure-path tests.
 *
 * A fake listens on a free 127.0.0.1 port (bind port 0) and serves each
 * connection in its own thread of the test process, so a stalled or silent
 * connection never holds up the next one. It understands just enough of the
 * text protocol to split the byte stream into requests (a storage command
 * counts together with its data block) and reacts per request according to
 * its mode. A fake can misbehave on its first `bad_conns` connections only
 * and then behave differently, typically relaying to a real memcached, which
 * is how tests check that a client recovers on its next call.
 *
 * Everything received is recorded, so tests can prove that nothing reached
 * the wire. Connection threads never close their sockets themselves (they
 * shut them down), and fake_stop closes them all after joining the threads:
 * no descriptor number is ever closed twice.
 *
 * blackhole_* and refuser_* are the two loopback tricks for connect
 * failures: a listener whose accept queue is full (connects hang) and a
 * bound port with no listener (connects are refused). Only 127.0.0.1 is
 * ever used.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "support.h"

#define FAKE_MAX_CONNS 64

typedef struct {
  fake_t* f;
  int fd;
  fake_mode_t mode;
  pthread_t thread;
} fake_conn_t;

struct fake {
  fake_opts_t o;
  int lfd;
  int port;
  char servers[64];
  pthread_t acceptor;
  pthread_mutex_t mu;
  char* rx; /* every byte received, all connections */
  size_t rxlen, rxcap;
  int nconns;
  int nreqs;
  int nscript; /* replies taken from the script so far */
  fake_conn_t conns[FAKE_MAX_CONNS];
};

static void fake_record(fake_t* f, const char* p, size_t n) {
  pthread_mutex_lock(&f->mu);
  if (f->rxlen + n > f->rxcap) {
    size_t cap = f->rxcap ? f->rxcap : 4096;
    while (cap < f->rxlen + n)
      cap *= 2;
    char* rx = realloc(f->rx, cap);
    if (rx == NULL) {
      pthread_mutex_unlock(&f->mu);
      return;
    }
    f->rx = rx;
    f->rxcap = cap;
  }
  memcpy(f->rx + f->rxlen, p, n);
  f->rxlen += n;
  pthread_mutex_unlock(&f->mu);
}

/* Sends all n bytes; false when the peer is gone. */
static bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0)
      return false;
    p += w;
    n -= (size_t)w;
  }
  return true;
}

/* Length of the first complete request in buf[0..len), or 0 when it is not
 * complete yet. A storage command includes its data block. */
static size_t request_len(const char* buf, size_t len) {
  const char* eol = memmem(buf, len, "\r\n", 2);
  if (eol == NULL)
    return 0;
  size_t line = (size_t)(eol - buf) + 2;
  static const char* const storage[] = {"set ",    "add ",     "replace ",
                                        "append ", "prepend ", "cas "};
  for (size_t i = 0; i < sizeof storage / sizeof storage[0]; i++) {
    size_t sl = strlen(storage[i]);
    if (line < sl || memcmp(buf, storage[i], sl) != 0)
      continue;
    /* "<cmd> <key> <flags> <exptime> <bytes> ..." */
    char tmp[512];
    size_t tl = line - 2 < sizeof tmp - 1 ? line - 2 : sizeof tmp - 1;
    memcpy(tmp, buf, tl);
    tmp[tl] = '\0';
    unsigned long bytes = 0;
    if (sscanf(tmp, "%*s %*s %*s %*s %lu", &bytes) != 1)
      return line;
    return len >= line + bytes + 2 ? line + bytes + 2 : 0;
  }
  return line;
}

/* The key of a "get <key>..." request line, for replies that name it. */
static void request_key(const char* req, size_t len, char* key, size_t cap) {
  const char* sp = memchr(req, ' ', len);
  size_t start = sp ? (size_t)(sp - req) + 1 : len;
  size_t end = start;
  while (end < len && req[end] != ' ' && req[end] != '\r')
    end++;
  size_t n = end - start < cap - 1 ? end - start : cap - 1;
  memcpy(key, req + start, n);
  key[n] = '\0';
}

/* Reacts to one complete request. Returns false to end the connection. */
static bool fake_react(fake_conn_t* c, const char* req, size_t len,
                       int nth_on_conn) {
  fake_t* f = c->f;
  char key[256], reply[512];
  switch (c->mode) {
    case FAKE_SILENT:
      return true;
    case FAKE_HALF:
    case FAKE_CLOSE_MID:
      if (nth_on_conn > 0)
        return true;
      request_key(req, len, key, sizeof key);
      snprintf(reply, sizeof reply, "VALUE %s 0 10\r\nabc", key);
      write_all(c->fd, reply, strlen(reply));
      return c->mode == FAKE_HALF;
    case FAKE_GARBAGE:
      write_all(c->fd, "LOL what is this\r\n", 18);
      return true;
    case FAKE_SCRIPT: {
      if (len >= 4 && memcmp(req, "quit", 4) == 0)
        return false;
      pthread_mutex_lock(&f->mu);
      int i = f->nscript++;
      pthread_mutex_unlock(&f->mu);
      const char* const* s = f->o.script;
      if (s == NULL || s[0] == NULL)
        return true;
      int n = 0;
      while (s[n] != NULL)
        n++;
      const char* r = s[i < n ? i : n - 1];
      size_t rl = strlen(r);
      if (f->o.split_at > 0 && (size_t)f->o.split_at < rl) {
        /* Two segments, so the client's first receive most likely sees
         * only the first part. */
        if (!write_all(c->fd, r, (size_t)f->o.split_at))
          return false;
        usleep((useconds_t)f->o.split_us);
        write_all(c->fd, r + f->o.split_at, rl - (size_t)f->o.split_at);
        return true;
      }
      if (f->o.trickle_us <= 0) {
        write_all(c->fd, r, rl);
        return true;
      }
      for (const char* p = r; *p != '\0'; p++) {
        if (!write_all(c->fd, p, 1))
          return false;
        usleep((useconds_t)f->o.trickle_us);
      }
      return true;
    }
    default:
      return false;
  }
}

/* A fresh connection to the backend, or -1. */
static int backend_connect(fake_conn_t* c) {
  /* No cr_assert here: a failure must not end the test from a thread. */
  int bfd = -1;
  if (c->f->o.backend != NULL) {
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)c->f->o.backend->port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bfd >= 0 && connect(bfd, (struct sockaddr*)&sa, sizeof sa) != 0) {
      close(bfd);
      bfd = -1;
    }
  }
  return bfd;
}

/* FAKE_APPLY_CLOSE: relays request by request; the drop_at-th goes to the
 * backend, its reply is awaited and thrown away, and the client gets the
 * connection closed instead. */
static void fake_apply_close(fake_conn_t* c) {
  int bfd = backend_connect(c);
  if (bfd < 0)
    return;
  char in[65536], buf[65536];
  size_t len = 0;
  int nth = 0;
  for (;;) {
    struct pollfd p[2] = {{c->fd, POLLIN, 0}, {bfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      break;
    if (p[1].revents) {
      ssize_t n = recv(bfd, buf, sizeof buf, 0);
      if (n <= 0 || !write_all(c->fd, buf, (size_t)n))
        break;
    }
    if (!p[0].revents)
      continue;
    ssize_t n = recv(c->fd, in + len, sizeof in - len, 0);
    if (n <= 0)
      break;
    fake_record(c->f, in + len, (size_t)n);
    len += (size_t)n;
    size_t rl;
    bool dropped = false;
    while ((rl = request_len(in, len)) > 0) {
      pthread_mutex_lock(&c->f->mu);
      c->f->nreqs++;
      pthread_mutex_unlock(&c->f->mu);
      write_all(bfd, in, rl);
      memmove(in, in + rl, len - rl);
      len -= rl;
      if (nth++ == c->f->o.drop_at) {
        struct pollfd b = {bfd, POLLIN, 0};
        if (poll(&b, 1, 5000) == 1 && recv(bfd, buf, sizeof buf, 0) > 0)
          usleep((useconds_t)c->f->o.drop_delay_ms * 1000);
        dropped = true;
        break;
      }
    }
    if (dropped)
      break;
  }
  close(bfd);
}

/* Relays between the client and a fresh connection to the backend. */
static void fake_proxy(fake_conn_t* c) {
  int bfd = backend_connect(c);
  if (bfd < 0)
    return;
  char buf[65536];
  for (;;) {
    struct pollfd p[2] = {{c->fd, POLLIN, 0}, {bfd, POLLIN, 0}};
    if (poll(p, 2, -1) < 0 && errno != EINTR)
      break;
    if (p[0].revents) {
      ssize_t n = recv(c->fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      fake_record(c->f, buf, (size_t)n);
      write_all(bfd, buf, (size_t)n);
    }
    if (p[1].revents) {
      ssize_t n = recv(bfd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      write_all(c->fd, buf, (size_t)n);
    }
  }
  close(bfd);
}

static void* fake_conn_main(void* arg) {
  fake_conn_t* c = arg;
  if (c->mode == FAKE_PROXY) {
    fake_proxy(c);
  } else if (c->mode == FAKE_APPLY_CLOSE) {
    fake_apply_close(c);
  } else if (c->mode != FAKE_CLOSE) {
    size_t cap = 1 << 16, len = 0;
    char* buf = malloc(cap);
    int nth = 0;
    bool open = buf != NULL;
    while (open) {
      if (len == cap) {
        char* nb = realloc(buf, cap * 2);
        if (nb == NULL)
          break;
        buf = nb;
        cap *= 2;
      }
      ssize_t n = recv(c->fd, buf + len, cap - len, 0);
      if (n <= 0)
        break;
      fake_record(c->f, buf + len, (size_t)n);
      len += (size_t)n;
      size_t rl;
      while (open && (rl = request_len(buf, len)) > 0) {
        pthread_mutex_lock(&c->f->mu);
        c->f->nreqs++;
        pthread_mutex_unlock(&c->f->mu);
        open = fake_react(c, buf, rl, nth++);
        memmove(buf, buf + rl, len - rl);
        len -= rl;
      }
    }
    free(buf);
  }
  shutdown(c->fd, SHUT_RDWR);
  return NULL;
}

static void* fake_accept_main(void* arg) {
  fake_t* f = arg;
  for (;;) {
    int fd = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return NULL;
    }
    pthread_mutex_lock(&f->mu);
    int i = f->nconns;
    if (i >= FAKE_MAX_CONNS) {
      pthread_mutex_unlock(&f->mu);
      close(fd);
      continue;
    }
    fake_conn_t* c = &f->conns[i];
    c->f = f;
    c->fd = fd;
    c->mode =
        (f->o.bad_conns == 0 || i < f->o.bad_conns) ? f->o.mode : f->o.then;
    if (pthread_create(&c->thread, NULL, fake_conn_main, c) != 0) {
      pthread_mutex_unlock(&f->mu);
      close(fd);
      continue;
    }
    f->nconns++;
    pthread_mutex_unlock(&f->mu);
  }
}

/* Binds a TCP socket to 127.0.0.1 on *port, or on a port the kernel picks
 * when *port is 0; returns the fd and sets *port. */
static int bind_loopback(int* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert(fd >= 0, "socket: %s", strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)*port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  cr_assert(bind(fd, (struct sockaddr*)&sa, sizeof sa) == 0, "bind: %s",
            strerror(errno));
  socklen_t sl = sizeof sa;
  cr_assert(getsockname(fd, (struct sockaddr*)&sa, &sl) == 0);
  *port = ntohs(sa.sin_port);
  return fd;
}

fake_t* fake_start(const fake_opts_t* opts) {
  fake_t* f = calloc(1, sizeof *f);
  cr_assert_not_null(f);
  f->o = *opts;
  pthread_mutex_init(&f->mu, NULL);
  f->port = opts->port;
  f->lfd = bind_loopback(&f->port);
  cr_assert(listen(f->lfd, 64) == 0, "listen: %s", strerror(errno));
  snprintf(f->servers, sizeof f->servers, "127.0.0.1:%d", f->port);
  cr_assert(pthread_create(&f->acceptor, NULL, fake_accept_main, f) == 0);
  return f;
}

void fake_stop(fake_t* f) {
  if (f == NULL)
    return;
  shutdown(f->lfd, SHUT_RDWR); /* wakes accept() */
  pthread_join(f->acceptor, NULL);
  close(f->lfd);
  for (int i = 0; i < f->nconns; i++) {
    shutdown(f->conns[i].fd, SHUT_RDWR); /* wakes recv() / poll() */
    pthread_join(f->conns[i].thread, NULL);
    close(f->conns[i].fd);
  }
  pthread_mutex_destroy(&f->mu);
  free(f->rx);
  free(f);
}

int fake_port(const fake_t* f) {
  return f->port;
}

const char* fake_servers_string(const fake_t* f) {
  return f->servers;
}

size_t fake_received(fake_t* f, char* out, size_t cap) {
  pthread_mutex_lock(&f->mu);
  size_t n = f->rxlen;
  if (out != NULL && cap > 0) {
    size_t k = n < cap - 1 ? n : cap - 1;
    if (k)
      memcpy(out, f->rx, k);
    out[k] = '\0';
  }
  pthread_mutex_unlock(&f->mu);
  return n;
}

int fake_connections(fake_t* f) {
  pthread_mutex_lock(&f->mu);
  int n = f->nconns;
  pthread_mutex_unlock(&f->mu);
  return n;
}

int fake_requests(fake_t* f) {
  pthread_mutex_lock(&f->mu);
  int n = f->nreqs;
  pthread_mutex_unlock(&f->mu);
  return n;
}

/* ---------------------------------------------------------------- connect */

void blackhole_start(blackhole_t* b) {
  memset(b, 0, sizeof *b);
  b->port = 0;
  int lfd = bind_loopback(&b->port);
  /* Backlog 0: the accept queue holds one connection; once it is full the
   * kernel drops further SYNs, so connects hang in SYN_SENT. */
  cr_assert(listen(lfd, 0) == 0);
  b->fds[b->nfds++] = lfd;
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)b->port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  bool hung = false;
  while (!hung && b->nfds < (int)(sizeof b->fds / sizeof b->fds[0])) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    cr_assert(fd >= 0);
    b->fds[b->nfds++] = fd;
    if (connect(fd, (struct sockaddr*)&sa, sizeof sa) == 0)
      continue;
    cr_assert_eq(errno, EINPROGRESS, "connect: %s", strerror(errno));
    struct pollfd p = {fd, POLLOUT, 0};
    hung = poll(&p, 1, 200) == 0;
  }
  cr_assert(hung, "could not fill the accept queue of a loopback listener");
  snprintf(b->servers, sizeof b->servers, "127.0.0.1:%d", b->port);
}

void blackhole_stop(blackhole_t* b) {
  for (int i = 0; i < b->nfds; i++)
    close(b->fds[i]);
  b->nfds = 0;
}

void refuser_start(refuser_t* r) {
  memset(r, 0, sizeof *r);
  r->port = 0;
  r->fd = bind_loopback(&r->port);
  snprintf(r->servers, sizeof r->servers, "127.0.0.1:%d", r->port);
}

void refuser_stop(refuser_t* r) {
  if (r->fd >= 0)
    close(r->fd);
  r->fd = -1;
}
