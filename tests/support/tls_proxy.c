/* tls_proxy.c — a TLS front for a plain test server (support.h).
 *
 * The fake ElastiCache configuration endpoint (fakecfg.c) speaks plain
 * TCP; ElastiCache with in-transit encryption speaks TLS on the same
 * protocol. This wraps any plain loopback server in TLS, the way a TLS
 * terminator would: it accepts TLS on a free 127.0.0.1 port with a given
 * certificate and key, and relays the decrypted bytes to the backend and
 * back. One thread accepts; one thread per connection relays, with
 * blocking sockets and poll, reading what OpenSSL already holds
 * (SSL_pending) before it waits. It stops when tls_proxy_stop closes its
 * listening socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "support.h"

struct tls_proxy {
  SSL_CTX* ctx;
  int lfd, port, backend_port;
  pthread_t thread;
  char endpoint[32];
};

typedef struct {
  SSL_CTX* ctx;
  int cfd, backend_port;
} relay_t;

static int connect_backend(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (fd >= 0 && connect(fd, (struct sockaddr*)&sa, sizeof sa) == 0)
    return fd;
  if (fd >= 0)
    close(fd);
  return -1;
}

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

static void* relay(void* arg) {
  relay_t* r = arg;
  SSL* ssl = SSL_new(r->ctx);
  int bfd = -1;
  if (!ssl || !SSL_set_fd(ssl, r->cfd) || SSL_accept(ssl) != 1)
    goto done;
  if ((bfd = connect_backend(r->backend_port)) < 0)
    goto done;
  char buf[16384];
  for (;;) {
    if (SSL_pending(ssl) == 0) {
      struct pollfd p[2] = {{.fd = r->cfd, .events = POLLIN},
                            {.fd = bfd, .events = POLLIN}};
      if (poll(p, 2, -1) < 0 && errno != EINTR)
        break;
      if (p[1].revents) {
        ssize_t n = recv(bfd, buf, sizeof buf, 0);
        if (n <= 0 || SSL_write(ssl, buf, (int)n) != (int)n)
          break;
      }
      if (!p[0].revents)
        continue;
    }
    int n = SSL_read(ssl, buf, sizeof buf);
    if (n <= 0 || !write_all(bfd, buf, (size_t)n))
      break;
  }
done:
  if (bfd >= 0)
    close(bfd);
  SSL_free(ssl); /* no close_notify: like a server that just closes */
  close(r->cfd);
  free(r);
  return NULL;
}

static void* acceptor(void* arg) {
  tls_proxy_t* t = arg;
  for (;;) {
    int cfd = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd < 0) {
      if (errno == EINTR || errno == ECONNABORTED)
        continue;
      return NULL; /* the listening socket was shut down */
    }
    relay_t* r = malloc(sizeof *r);
    pthread_t th;
    if (!r) {
      close(cfd);
      continue;
    }
    *r = (relay_t){.ctx = t->ctx, .cfd = cfd, .backend_port = t->backend_port};
    if (pthread_create(&th, NULL, relay, r) != 0) {
      close(cfd);
      free(r);
      continue;
    }
    pthread_detach(th);
  }
}

tls_proxy_t* tls_proxy_start(int backend_port, const char* cert,
                             const char* key) {
  tls_proxy_t* t = calloc(1, sizeof *t);
  cr_assert_not_null(t);
  t->backend_port = backend_port;
  t->ctx = SSL_CTX_new(TLS_server_method());
  cr_assert_not_null(t->ctx);
  cr_assert(SSL_CTX_use_certificate_chain_file(t->ctx, cert) == 1 &&
                SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) == 1,
            "tls_proxy: cannot load %s / %s", cert, key);
  t->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET,
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  cr_assert(t->lfd >= 0 &&
                bind(t->lfd, (struct sockaddr*)&sa, sizeof sa) == 0 &&
                listen(t->lfd, 64) == 0 &&
                getsockname(t->lfd, (struct sockaddr*)&sa, &sl) == 0,
            "tls_proxy: %s", strerror(errno));
  t->port = ntohs(sa.sin_port);
  snprintf(t->endpoint, sizeof t->endpoint, "127.0.0.1:%d", t->port);
  cr_assert_eq(pthread_create(&t->thread, NULL, acceptor, t), 0);
  return t;
}

const char* tls_proxy_endpoint(const tls_proxy_t* t) {
  return t->endpoint;
}

void tls_proxy_stop(tls_proxy_t* t) {
  if (!t)
    return;
  shutdown(t->lfd, SHUT_RDWR);
  pthread_join(t->thread, NULL);
  close(t->lfd);
  SSL_CTX_free(t->ctx); /* live relays' SSL objects hold references */
  free(t);
}
