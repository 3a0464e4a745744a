/* fuzz_peer.h — a fake memcached peer for the reply-parser fuzz targets.
 *
 * The client library reads replies only through its connection layer
 * (lib/conn.c), from the socket of a node. To feed it fuzzer bytes without
 * a thread or a server, each call gets a fresh AF_UNIX socketpair: the
 * fuzzer's reply is written into one end, that end is shut down for
 * writing (so the client sees EOF after the last byte instead of waiting
 * for its timeout), and the other end is installed as the node's open
 * connection. The client's request lands in the peer's receive queue and is
 * ignored. A connection the client closes on a protocol error is reopened
 * on the configured unix path, which does not exist: the retry fails at
 * once with MCR_ECONNECT. Everything is single-threaded and deterministic,
 * so a crash reproduces from its input alone.
 */
#ifndef MCR_FUZZ_PEER_H
#define MCR_FUZZ_PEER_H

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ck_pr.h>

#include "internal.h"

/* Servers that never answer a connect: the paths do not exist. */
#define FUZZ_ONE_NODE "/nonexistent/mcr-fuzz-0.sock"
#define FUZZ_THREE_NODES                                       \
  "/nonexistent/mcr-fuzz-0.sock,/nonexistent/mcr-fuzz-1.sock," \
  "/nonexistent/mcr-fuzz-2.sock"
#define FUZZ_MAX_NODES 3

/* A client on `servers` with options that keep a run deterministic: no
 * node marking (failure_limit 0), a short connect timeout. Aborts on
 * failure (that is a harness bug, not a finding). */
static inline mcr_client_t* fuzz_client(const char* servers) {
  mcr_client_opts_t o;
  mcr_client_opts_init(&o);
  o.servers = servers;
  o.distribution = MCR_DIST_XXH3; /* unix paths: no name resolution */
  o.failure_limit = 0;
  o.connect_timeout_ms = 100;
  o.io_timeout_ms = 1000;
  o.item_size_max = 64 * 1024;
  mcr_client_t* c = NULL;
  char err[256];
  if (mcr_client_new_err(&c, &o, err, sizeof(err)) != 0)
    abort();
  return c;
}

typedef struct {
  int peer[FUZZ_MAX_NODES]; /* our end of each node's socketpair, or -1 */
  int fd[FUZZ_MAX_NODES];   /* the client's end we installed */
} fuzz_peers_t;

/* Installs data[0..len) as the whole reply stream of node i of c. */
static inline void fuzz_feed(mcr_client_t* c, fuzz_peers_t* p, size_t i,
                             const uint8_t* data, size_t len) {
  p->peer[i] = p->fd[i] = -1;
  if (i >= c->nnodes)
    return;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    abort();
  fcntl(sv[1], F_SETFL, O_NONBLOCK);
  size_t off = 0;
  while (off < len) { /* what does not fit in the socket buffer is lost */
    ssize_t w = write(sv[1], data + off, len - off);
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  shutdown(sv[1], SHUT_WR);
  mcr__node_t* n = &c->nodes[i];
  mcr__conn_close(n);
  n->conn.fd = sv[0];
  n->conn.fork_gen = ck_pr_load_uint(&mcr__fork_gen);
  n->conn.used = true;
  n->conn.rpos = n->conn.rlen = 0;
  p->peer[i] = sv[1];
  p->fd[i] = sv[0];
}

/* After the call: closes what the client left open of our sockets. */
static inline void fuzz_drain(mcr_client_t* c, fuzz_peers_t* p) {
  for (size_t i = 0; i < c->nnodes && i < FUZZ_MAX_NODES; i++) {
    if (p->peer[i] < 0)
      continue;
    mcr__node_t* n = &c->nodes[i];
    if (n->conn.fd == p->fd[i])
      mcr__conn_close(n);
    close(p->peer[i]);
    p->peer[i] = p->fd[i] = -1;
  }
}

/* Splits data into `parts` streams: each but the last is prefixed by a
 * one-byte length. */
static inline void fuzz_split(const uint8_t* data, size_t len, size_t parts,
                              const uint8_t** seg, size_t* seg_len) {
  for (size_t i = 0; i < parts; i++) {
    if (i + 1 == parts || len == 0) {
      seg[i] = data;
      seg_len[i] = i + 1 == parts ? len : 0;
      data += seg_len[i];
      len -= seg_len[i];
      continue;
    }
    size_t n = data[0];
    data++;
    len--;
    if (n > len)
      n = len;
    seg[i] = data;
    seg_len[i] = n;
    data += n;
    len -= n;
  }
}

/* A reader of fuzzer bytes that yields 0 once they run out. */
typedef struct {
  const uint8_t* p;
  size_t n;
} fuzz_in_t;

static inline uint8_t fuzz_u8(fuzz_in_t* in) {
  if (!in->n)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint32_t fuzz_u32(fuzz_in_t* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v = v << 8 | fuzz_u8(in);
  return v;
}

#endif /* MCR_FUZZ_PEER_H */
