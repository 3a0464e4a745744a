/* fanout.h — the engine's interface (fanout.c), for the API files above
 * it (client.c, client_meta.c).
 *
 * The one-node path is inline here, the way the transport's first send
 * and receive are inline in internal.h: a one-key get is about 500
 * instructions in all, so a call frame or an indirect call on its path is
 * a few per cent of it. Everything beyond the common case (a node down or
 * without a connection, a partial send, a reply in several pieces, a
 * failure, the retry rule, host stats, an error line) is in fanout.c, out
 * of line.
 */
#ifndef MCR_FANOUT_H
#define MCR_FANOUT_H

#include "internal.h"

/* One node's part of a call: a request, and the decoder of its reply. */
typedef struct {
  mcr__node_t* node;
  const struct iovec* iov; /* the request */
  int iovcnt;
  mcr__decode_fn decode; /* NULL: noreply, nothing is read */
  void* ctx;
  bool repeatable; /* every command in it may be applied twice harmlessly */
  int rc;          /* out: 0, or the node's error (message on the client) */
} mcr__task_t;

/* Runs one node's exchange: begin (down check, connect), send, receive and
 * decode to the end, with the retry rule (fanout.c): a connection kept
 * from an earlier call that fails before any reply byte is replaced and
 * the request sent again, once, inside the same deadline, and only when
 * `repeatable`. decode NULL: noreply, nothing is read. Returns 0 or the
 * node's error (its message on the client). */
static inline int mcr__call(mcr_client_t* c, mcr__node_t* n,
                            const struct iovec* iov, int iovcnt,
                            mcr__decode_fn decode, void* ctx, bool repeatable)
    __attribute__((always_inline));

/* The same for several nodes at once: every request sent before any reply
 * is read, replies decoded as they arrive (poll). One node takes
 * mcr__call's blocking path. */
void mcr__run(mcr_client_t* c, mcr__task_t* t, size_t n);

/* Keys routed and grouped per node, in the caller's order within a node,
 * with a task, an iovec and a decoder context (ctx_size bytes) per group,
 * uninitialized, for the caller to fill. Arrays come from the call's arena. n >
 * 0. Returns 0 or MCR_ENOMEM (message on c). */
typedef struct {
  size_t* node_of; /* per key: index in c->nodes */
  size_t* next;    /* per key: next key of its node, SIZE_MAX ends */
  size_t* first;   /* per group: its first key */
  size_t* gnode;   /* per group: its node's index */
  size_t ngroups;
  mcr__task_t* task; /* per group */
  struct iovec* iov; /* per group */
  void* ctx;         /* per group, ctx_size bytes each */
} mcr__plan_t;
int mcr__plan(mcr_client_t* c, size_t n, const char* const* keys,
              const size_t* lens, size_t ctx_size, mcr__plan_t* p);

/* Applies ignore_errors to a result: read=true turns errors into MCR_MISS,
 * read=false into MCR_NOT_STORED; the caller's mistakes pass through. */
int mcr__soften(mcr_client_t* c, int rc, bool read);

/* ------------------------------------------------------------ inline */

/* Buffers larger than this are freed between calls. */
#define MCR__RBUF_KEEP (4u << 20)

/* Inlined wherever it is used, whatever the compiler's size heuristics
 * say: the hot path is meant to be one function. */
#define MCR__HOT static inline __attribute__((always_inline))

/* fanout.c's out-of-line halves of the path below: the whole one-node run
 * for everything but the common case, and the ends of the common case's
 * rarer turns. */
int mcr__run_one(mcr_client_t* c, mcr__task_t* t, int64_t now_ns);
int mcr__receive_more(mcr__task_t* t, mcr__dec_t* d, size_t room);
int mcr__run_one_failed(mcr_client_t* c, mcr__task_t* t, int rc, mcr__dec_t* d,
                        int64_t start_ns);
void mcr__finish(mcr_client_t* c, mcr__task_t* t, int rc, mcr__dec_t* d,
                 int64_t start_ns);

/* Hands the unread bytes of node n to `decode`. Returns MCR__DONE,
 * MCR__MORE (*room: free space the next receive needs) or an error; *d
 * holds the decoder's account (cleared by the caller). */
MCR__HOT int mcr__drain(mcr__node_t* n, mcr__decode_fn decode, void* ctx,
                        mcr__dec_t* d, size_t* room) {
  mcr__conn_t* k = &n->conn;
  int rc = decode(ctx, k->rbuf, k->rpos, k->rlen, d);
  k->rpos += d->used;
  if (MCR__UNLIKELY(rc == MCR__MORE)) {
    size_t have = k->rlen - k->rpos;
    *room = d->need > have ? d->need - have : 0;
  }
  return rc;
}

MCR__HOT int mcr__call(mcr_client_t* c, mcr__node_t* n, const struct iovec* iov,
                       int iovcnt, mcr__decode_fn decode, void* ctx,
                       bool repeatable) {
  mcr__conn_t* k = &n->conn;
  int64_t now_ns = mcr__now_ns();
  k->deadline = now_ns + c->io_ns;
  k->slow = false;
  /* The common case: a kept connection of this process, the node up (here
   * and host-wide), nothing left unread, a buffer of a normal size, a
   * reply to read. */
  if (MCR__UNLIKELY(!(k->fd >= 0 && !n->down_until &&
                      mcr__node_shared_same(n) && k->rpos == k->rlen &&
                      k->fork_gen == mcr__fork_gen &&
                      k->rcap <= MCR__RBUF_KEEP && decode))) {
    mcr__task_t t = {n, iov, iovcnt, decode, ctx, repeatable, 0};
    return mcr__run_one(c, &t, now_ns);
  }
  k->rpos = k->rlen = 0;
  k->reused = true;
  mcr__dec_t d = {0};
  size_t room = 0;
  int rc = mcr__conn_send(k, iov, iovcnt);
  if (MCR__LIKELY(!rc))
    rc = mcr__conn_fill(k, 0);
  if (MCR__LIKELY(!rc))
    rc = mcr__drain(n, decode, ctx, &d, &room);
  if (MCR__LIKELY(rc == 0 && n->hs == NULL && d.line_len == 0)) {
    n->fails = 0; /* the common end: a reply decoded */
    mcr__hh_success(n);
    return 0;
  }
  mcr__task_t t = {n, iov, iovcnt, decode, ctx, repeatable, 0};
  if (rc == MCR__MORE)
    rc = mcr__receive_more(&t, &d, room);
  if (rc)
    return mcr__run_one_failed(c, &t, rc, &d, now_ns);
  mcr__finish(c, &t, 0, &d, now_ns);
  return t.rc;
}

#endif /* MCR_FANOUT_H */
