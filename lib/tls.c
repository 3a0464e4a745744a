/* tls.c — TLS over a connection of conn.c, with OpenSSL 3.
 *
 * ElastiCache's in-transit encryption and ElastiCache Serverless accept
 * only TLS, so every place mcring talks to a server can speak it: the
 * client's nodes and the configuration endpoint the agent (or a client)
 * polls. A client (or a poller) holds one context (mcr__tls_t: the trust
 * store, the client certificate, the minimum version); each connection
 * holds its SSL object and the last session its server gave it.
 *
 * The shape of a call does not change. OpenSSL reads and writes through a
 * BIO of our own over the connection's socket, which does what conn.c does
 * on a plain socket: every write is MSG_DONTWAIT (a full socket buffer
 * makes OpenSSL ask to wait, and we poll against the call's deadline), the
 * call's first read blocks under SO_RCVTIMEO and every later one is
 * MSG_DONTWAIT with a poll against the deadline (k->slow). With read-ahead
 * on, one recv takes a whole reply's records, so a one-key get over TLS is
 * still one send and one recv. OpenSSL may want to read while we write or
 * write while we read (a key update, session tickets): each wait polls for
 * what it asked, in both directions, under the same deadline. A reply is
 * always read until OpenSSL holds nothing more (SSL_has_pending), so that
 * a poll on the socket never sleeps on bytes OpenSSL already took.
 * Kernel TLS would make the hot path plain send/recv, but it needs the
 * kernel's "tls" module (absent here: /proc/sys/net/ipv4/
 * tcp_available_ulp lists only mptcp) and OpenSSL's own socket BIO, which
 * cannot keep the deadline rules above; docs/tls.md has the measurements.
 *
 * The handshake runs on the non-blocking path under the connect deadline:
 * a server that accepts TCP and never answers, or one that answers in
 * plain text, fails within connect_timeout_ms. Failures come back as codes
 * with a one-line reason in k->detail: MCR_ETLSVERIFY with OpenSSL's
 * verification text ("unable to get local issuer certificate", "hostname
 * mismatch", "certificate has expired"), MCR_ETLS with the handshake's
 * ("wrong version number": the server does not speak TLS).
 *
 * Sessions: the last session (TLS 1.3 ticket, or TLS 1.2 session) a
 * server gave a connection is kept with it and offered when it reconnects,
 * so a reconnect after an idle close or a restart is an abbreviated
 * handshake. Fork: a child never touches its parent's SSL objects beyond
 * freeing its own copy; no close_notify is ever sent (mcr__tls_end), so a
 * child closing an inherited connection cannot end its parent's session.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#ifdef MCR_HAVE_TLS

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>

struct mcr__tls {
  SSL_CTX* ctx;
  char* server_name; /* overrides each node's name, or NULL */
  bool verify;
};

/* ------------------------------------------------------------ the BIO */

static BIO_METHOD* bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO* b, const char* data, int len) {
  mcr__conn_t* k = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  ssize_t w = send(k->fd, data, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (w >= 0)
    return (int)w;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    BIO_set_retry_write(b);
  return -1;
}

static int bio_read(BIO* b, char* buf, int len) {
  mcr__conn_t* k = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  /* The call's first read may block (SO_RCVTIMEO); the rest never do. */
  int flags = k->slow ? MSG_DONTWAIT : 0;
  k->slow = true;
  ssize_t r = recv(k->fd, buf, (size_t)len, flags);
  if (r >= 0)
    return (int)r;
  if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
    BIO_set_retry_read(b);
  return -1;
}

static long bio_ctrl(BIO* b, int cmd, long num, void* ptr) {
  (void)b, (void)num, (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

static void make_bio_method(void) {
  BIO_METHOD* m =
      BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mcring");
  if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
      BIO_meth_set_ctrl(m, bio_ctrl) && BIO_meth_set_create(m, bio_create))
    bio_method = m;
}

/* ------------------------------------------------------------ context */

/* A new session for the connection of `ssl`: kept for its reconnects. */
static int keep_session(SSL* ssl, SSL_SESSION* sess) {
  mcr__conn_t* k = SSL_get_app_data(ssl);
  if (!k)
    return 0;
  if (k->tls_session)
    SSL_SESSION_free(k->tls_session);
  k->tls_session = sess;
  return 1; /* we hold the reference */
}

/* The last OpenSSL error as text ("" when there is none). */
static const char* ossl_reason(void) {
  unsigned long e = ERR_peek_last_error();
  const char* r = e ? ERR_reason_error_string(e) : NULL;
  return r ? r : "";
}

int mcr__tls_new(mcr__tls_t** out, const mcr_tls_opts_t* o, char* err,
                 size_t errlen) {
  *out = NULL;
  if (o->min_version != 0 && o->min_version != 12 && o->min_version != 13) {
    snprintf(err, errlen, "tls.min_version %d: want 12 or 13", o->min_version);
    return MCR_EINVAL;
  }
  if (o->key_file && !o->cert_file) {
    snprintf(err, errlen, "tls.key_file without tls.cert_file");
    return MCR_EINVAL;
  }
  pthread_once(&bio_once, make_bio_method);
  mcr__tls_t* t = mcr__calloc(1, sizeof(*t));
  if (!t || !bio_method) {
    mcr__free(t);
    snprintf(err, errlen, "out of memory");
    return MCR_ENOMEM;
  }
  ERR_clear_error();
  t->verify = !o->insecure;
  const char* what = "out of memory";
  int rc = MCR_ENOMEM;
  t->ctx = SSL_CTX_new(TLS_client_method());
  if (!t->ctx)
    goto fail;
  if (o->server_name &&
      !(t->server_name = mcr__strndup(o->server_name, strlen(o->server_name))))
    goto fail;
  rc = MCR_ETLS;
  what = "minimum version";
  if (!SSL_CTX_set_min_proto_version(
          t->ctx, o->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION))
    goto fail;
  if (t->verify) {
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    what = o->ca_file ? o->ca_file : o->ca_dir ? o->ca_dir : "system trust";
    if (o->ca_file || o->ca_dir
            ? !SSL_CTX_load_verify_locations(t->ctx, o->ca_file, o->ca_dir)
            : !SSL_CTX_set_default_verify_paths(t->ctx))
      goto fail;
  } else {
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
  }
  if (o->cert_file) {
    const char* key = o->key_file ? o->key_file : o->cert_file;
    what = o->cert_file;
    if (!SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file))
      goto fail;
    what = key;
    if (!SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) ||
        !SSL_CTX_check_private_key(t->ctx))
      goto fail;
  }
  /* Whole replies in one recv; a peer's EOF is a closed connection (as on
   * plain TCP: memcached closes idle connections without close_notify). */
  SSL_CTX_set_read_ahead(t->ctx, 1);
  SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(
      t->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(t->ctx, keep_session);
  *out = t;
  return 0;

fail:
  if (rc == MCR_ENOMEM)
    snprintf(err, errlen, "TLS: %s", what);
  else
    snprintf(err, errlen, "TLS: %s: %s", what, ossl_reason());
  ERR_clear_error();
  mcr__tls_free(t);
  return rc;
}

void mcr__tls_free(mcr__tls_t* t) {
  if (!t)
    return;
  SSL_CTX_free(t->ctx);
  mcr__free(t->server_name);
  mcr__free(t);
}

/* ------------------------------------------------------------ failures */

/* Records a failure with a reason composed here; returns err. */
static int tls_failed(mcr__conn_t* k, int err, const char* fmt, const char* a,
                      const char* b) {
  snprintf(k->detail, sizeof k->detail, fmt, a, b);
  k->what = k->detail;
  k->sys = 0;
  return err;
}

/* Waits for what OpenSSL asked (`e`, from SSL_get_error) until the
 * deadline (ns). Returns 0, MCR_ETIMEOUT or MCR_EIO. */
static int wait_for(mcr__conn_t* k, int e, int64_t deadline) {
  return mcr__wait_fd(k->fd, e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN,
                      deadline);
}

/* Records a failure of the system (errno `sys`); returns err. */
static int sys_failed(mcr__conn_t* k, int err, const char* what, int sys) {
  k->what = what;
  k->sys = sys;
  return err;
}

/* What a failure of an SSL_read / SSL_write that got `e` (not WANT_*)
 * means. */
static int io_failure(mcr__conn_t* k, int e, int saved_errno, const char* op) {
  if (e == SSL_ERROR_ZERO_RETURN ||
      (e == SSL_ERROR_SYSCALL &&
       (saved_errno == 0 || saved_errno == EPIPE || saved_errno == ECONNRESET)))
    return sys_failed(k, MCR_ECLOSED, op, saved_errno);
  if (e == SSL_ERROR_SYSCALL)
    return sys_failed(k, MCR_EIO, op, saved_errno);
  /* A record layer failure: its session is not offered again. */
  if (k->tls_session)
    SSL_SESSION_free(k->tls_session);
  k->tls_session = NULL;
  return tls_failed(k, MCR_ETLS, "TLS %s: %s", op, ossl_reason());
}

/* The same, then the thread's OpenSSL error queue is emptied, so that the
 * next call's SSL_get_error sees only its own errors. */
static int io_failed(mcr__conn_t* k, int e, int saved_errno, const char* op) {
  int rc = io_failure(k, e, saved_errno, op);
  ERR_clear_error();
  return rc;
}

/* A wait of a send or receive that did not end in time (or poll failed). */
static int wait_failed(mcr__conn_t* k, int w, const char* timed_out) {
  return w == MCR_ETIMEOUT ? sys_failed(k, MCR_ETIMEOUT, timed_out, 0)
                           : sys_failed(k, MCR_EIO, "poll", errno);
}

/* ------------------------------------------------------------ handshake */

int mcr__tls_start(mcr__conn_t* k, mcr__tls_t* t, const char* name,
                   int64_t deadline_ms) {
  ERR_clear_error();
  SSL* ssl = SSL_new(t->ctx);
  BIO* bio = ssl ? BIO_new(bio_method) : NULL;
  if (!bio) {
    SSL_free(ssl);
    return tls_failed(k, MCR_ENOMEM, "TLS: %s%s", "out of memory", "");
  }
  BIO_set_data(bio, k);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_app_data(ssl, k);
  k->ssl = ssl;
  const char* verify_name = t->server_name ? t->server_name : name;
  unsigned char ip[16];
  bool is_ip = inet_pton(AF_INET, verify_name, ip) == 1 ||
               inet_pton(AF_INET6, verify_name, ip) == 1;
  if (!is_ip && !SSL_set_tlsext_host_name(ssl, verify_name))
    goto ssl_error;
  if (t->verify) {
    X509_VERIFY_PARAM* vp = SSL_get0_param(ssl);
    X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    if (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(vp, verify_name)
              : !X509_VERIFY_PARAM_set1_host(vp, verify_name, 0))
      goto ssl_error;
  }
  if (k->tls_session)
    SSL_set_session(ssl, k->tls_session);
  int64_t deadline = deadline_ms * 1000000;
  k->slow = true; /* the handshake never blocks in recv */
  for (;;) {
    ERR_clear_error();
    int r = SSL_connect(ssl);
    if (r == 1) {
      k->tls_resumed = SSL_session_reused(ssl) == 1;
      break;
    }
    int e = SSL_get_error(ssl, r);
    int saved = errno;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      int w = wait_for(k, e, deadline);
      if (w == MCR_ETIMEOUT) {
        mcr__tls_end(k);
        return tls_failed(k, MCR_ECONNTIMEOUT, "TLS handshake: %s%s",
                          "no answer in time", "");
      }
      if (w) {
        int rc = sys_failed(k, MCR_EIO, "poll", errno);
        mcr__tls_end(k);
        return rc;
      }
      continue;
    }
    long v = SSL_get_verify_result(ssl);
    int rc;
    if (t->verify && v != X509_V_OK)
      rc = tls_failed(k, MCR_ETLSVERIFY, "TLS certificate of %s: %s",
                      verify_name, X509_verify_cert_error_string(v));
    else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
      rc = tls_failed(k, MCR_ETLS, "TLS handshake: %s%s",
                      saved && e == SSL_ERROR_SYSCALL ? strerror(saved)
                                                      : "closed by the server",
                      "");
    else if (strstr(ossl_reason(), "wrong version number"))
      rc = tls_failed(k, MCR_ETLS, "TLS handshake: %s%s",
                      "wrong version number", " (is the server speaking TLS?)");
    else
      rc = tls_failed(k, MCR_ETLS, "TLS handshake: %s%s", ossl_reason(), "");
    ERR_clear_error();
    mcr__tls_end(k);
    return rc;
  }
  return 0;

ssl_error:;
  int rc = tls_failed(k, MCR_ETLS, "TLS: %s: %s", verify_name, ossl_reason());
  ERR_clear_error();
  mcr__tls_end(k);
  return rc;
}

void mcr__tls_end(mcr__conn_t* k) {
  if (!k->ssl)
    return;
  /* No SSL_shutdown: no close_notify on a session that may be another
   * process's (after fork), and none needed by memcached. Marking it shut
   * down keeps OpenSSL from declaring the session unfit for resumption
   * (a TLS failure forgets it instead: io_failed). */
  SSL_set_shutdown(k->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
  SSL_set_app_data(k->ssl, NULL);
  SSL_free(k->ssl);
  k->ssl = NULL;
}

void mcr__tls_forget(mcr__conn_t* k) {
  if (k->tls_session)
    SSL_SESSION_free(k->tls_session);
  k->tls_session = NULL;
  mcr__free(k->tls_out);
  k->tls_out = NULL;
  k->tls_out_cap = 0;
}

/* ------------------------------------------------------------ records */

/* SSL_get_error reads the thread's error queue, so it must be empty before
 * SSL_read / SSL_write: another user of OpenSSL in the process (PHP's or
 * Python's ssl, a database driver) may have left errors there, which would
 * turn a plain "wait for more bytes" into a failure. ERR_clear_error costs
 * more than a thousand instructions in OpenSSL 3.0 (a tenth of a get over
 * TLS); looking first costs a thread-local lookup, and our own failures
 * leave the queue empty (io_failed). */
static inline void queue_empty(void) {
  if (ERR_peek_error())
    ERR_clear_error();
}

int mcr__tls_send(mcr__conn_t* k, const struct iovec* iov, int iovcnt) {
  /* One record for the whole request (up to 16 KiB), so one send: the
   * pieces are copied together first. */
  const void* data = iov[0].iov_base;
  size_t total = iov[0].iov_len;
  if (iovcnt > 1) {
    for (int i = 1; i < iovcnt; i++)
      total += iov[i].iov_len;
    if (mcr__grow(&k->tls_out, &k->tls_out_cap, 0, total, 4096))
      return sys_failed(k, MCR_ENOMEM, "TLS send buffer", ENOMEM);
    size_t at = 0;
    for (int i = 0; i < iovcnt; i++) {
      memcpy(k->tls_out + at, iov[i].iov_base, iov[i].iov_len);
      at += iov[i].iov_len;
    }
    data = k->tls_out;
  }
  const char* p = data;
  queue_empty();
  while (total > 0) {
    int n = SSL_write(k->ssl, p, total > INT32_MAX ? INT32_MAX : (int)total);
    if (n > 0) {
      p += n;
      total -= (size_t)n;
      continue;
    }
    int e = SSL_get_error(k->ssl, n);
    int saved = errno;
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
      return io_failed(k, e, saved, "send");
    k->slow = true;
    int w = wait_for(k, e, k->deadline);
    if (w)
      return wait_failed(k, w, "timed out sending");
  }
  return 0;
}

int mcr__tls_fill(mcr__conn_t* k, size_t room, bool nowait) {
  bool got = false;
  if (nowait)
    k->slow = true;
  queue_empty();
  for (;;) {
    if (mcr__grow(&k->rbuf, &k->rcap, k->rlen,
                  room > MCR__RECV_ROOM ? room : MCR__RECV_ROOM,
                  MCR__RBUF_INITIAL))
      return sys_failed(k, MCR_ENOMEM, "receive buffer", ENOMEM);
    size_t free_room = k->rcap - k->rlen;
    int n = SSL_read(k->ssl, k->rbuf + k->rlen,
                     free_room > INT32_MAX ? INT32_MAX : (int)free_room);
    if (n > 0) {
      k->rlen += (size_t)n;
      got = true;
      room = 0;
      if (SSL_has_pending(k->ssl))
        continue; /* OpenSSL holds more: take it before anyone polls */
      return 0;
    }
    int e = SSL_get_error(k->ssl, n);
    int saved = errno;
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
      return io_failed(k, e, saved, "recv");
    if (got || (nowait && e == SSL_ERROR_WANT_READ))
      return 0; /* bytes arrived, or none yet and the caller polls */
    int w = wait_for(k, e, k->deadline);
    if (w)
      return wait_failed(k, w, "timed out waiting for the reply");
  }
}

#else /* built --without-tls */

int mcr__tls_new(mcr__tls_t** out, const mcr_tls_opts_t* o, char* err,
                 size_t errlen) {
  (void)o;
  *out = NULL;
  snprintf(err, errlen, "TLS: this libmcring was built without TLS");
  return MCR_ENOTSUP;
}

void mcr__tls_free(mcr__tls_t* t) {
  (void)t;
}

int mcr__tls_start(mcr__conn_t* k, mcr__tls_t* t, const char* name,
                   int64_t deadline_ms) {
  (void)t, (void)name, (void)deadline_ms;
  k->what = "TLS: not built in";
  return MCR_ENOTSUP;
}

void mcr__tls_end(mcr__conn_t* k) {
  (void)k;
}

void mcr__tls_forget(mcr__conn_t* k) {
  (void)k;
}

int mcr__tls_send(mcr__conn_t* k, const struct iovec* iov, int iovcnt) {
  (void)k, (void)iov, (void)iovcnt;
  return MCR_ENOTSUP;
}

int mcr__tls_fill(mcr__conn_t* k, size_t room, bool nowait) {
  (void)k, (void)room, (void)nowait;
  return MCR_ENOTSUP;
}

#endif
