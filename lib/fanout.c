/* fanout.c — the engine every call runs on: one or many nodes, one
 * deadline, one retry rule, one place where failures become messages.
 *
 * A call is a set of tasks, one per node: a request already encoded (by
 * codec_text.c or codec_meta.c) and the decoder of its reply. The engine
 *   begins each task: a node marked down fails at once (MCR_ENODEDOWN); a
 *     connection inherited across fork or left with unread bytes is
 *     closed unused; a node without a connection connects;
 *   sends every task's request before it reads any reply;
 *   receives: one node takes the blocking path (two system calls for a
 *     short reply), several are read with poll as their bytes arrive, and
 *     each node's bytes go to its decoder whenever they grew, until it says
 *     MCR__DONE;
 *   finishes: the node's health and host stats counters are updated and
 *     any failure is written to the handle's last error, "host:port: what".
 *
 * Deadlines (docs/client.md, "Timeouts"): a call has one I/O deadline per
 * node, io_timeout_ms from the moment it has a connection, and no byte of
 * it happens after call start + connect_timeout_ms + io_timeout_ms, the
 * bound mcring.h promises whatever the servers do. Connects (one per node
 * without a connection) each get connect_timeout_ms within that bound.
 *
 * The retry rule, in one place (may_retry): a connection kept from an
 * earlier call may turn out closed by the server (idle timeout, restart)
 * when the request is sent or before any reply byte. The request is then
 * sent once more on a new connection, inside the first attempt's deadline,
 * but only when every command of the task is repeatable (its caller says
 * so: applying it twice is harmless, as for a get or a set, never for
 * incr, append, add, cas, delete or noreply), because a server or proxy
 * that applied it and then died looks exactly the same.
 *
 * Also here: keys routed and grouped per node (the plan of a multi-key
 * call), and errors-as-misses (mcr__soften).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "fanout.h"

#define LINE_SHOWN 100 /* bytes of an unexpected reply quoted */

/* ------------------------------------------------------------ messages */

/* Writes c's message for the failure `rc` of node n and returns rc. `d`
 * (may be NULL) is the decoder's account of a reply it refused. */
static int node_error(mcr_client_t* c, mcr__node_t* n, int rc,
                      const mcr__dec_t* d) {
  const mcr__conn_t* k = &n->conn;
  const char* name = n->srv.name;
  if (d && d->line_len) {
    size_t shown = d->line_len > 300 ? 300 : d->line_len;
    if (rc == MCR_EPROTO) /* a line that fits no rule: quoted */
      return mcr__set_error(c, rc, "%s: %s \"%.*s\"", name, d->why,
                            (int)(shown > LINE_SHOWN ? LINE_SHOWN : shown),
                            k->rbuf + d->line_off);
    return mcr__set_error(c, rc, "%s: %.*s", name, (int)shown,
                          k->rbuf + d->line_off);
  }
  if (d && d->why)
    return mcr__set_error(c, rc, "%s: %s", name, d->why);
  if (rc == MCR_ENOMEM)
    return mcr__set_error(c, rc, "%s: out of memory", name);
  if (k->sys)
    return mcr__set_error(c, rc, "%s: %s: %s", name, k->what, strerror(k->sys));
  if (rc == MCR_ECLOSED)
    return mcr__set_error(c, rc, "%s: connection closed by the server", name);
  return mcr__set_error(c, rc, "%s: %s", name,
                        k->what ? k->what : mcr_strerror(rc));
}

/* ------------------------------------------------------------ begin */

/* Connects t's node by min(now + connect timeout, the call's cap); its I/O
 * deadline then starts (unless `keep`: a retry keeps the first attempt's
 * deadline). */
static int connect_task(mcr_client_t* c, mcr__task_t* t, bool keep) {
  mcr__node_t* n = t->node;
  mcr__conn_t* k = &n->conn;
  int64_t by = mcr__now_ns() + (int64_t)c->opts.connect_timeout_ms * 1000000;
  int rc = mcr__conn_open(k, &n->srv, &c->conn_opts,
                          (by < c->call_cap ? by : c->call_cap) / 1000000);
  if (rc)
    return node_error(c, n, rc, NULL);
  if (k->used)
    c->counters.reconnects++;
  if (k->ssl) {
    c->counters.tls_handshakes++;
    c->counters.tls_resumed += k->tls_resumed;
  }
  k->used = true;
  if (!keep) {
    int64_t io = mcr__now_ns() + c->io_ns;
    k->deadline = io < c->call_cap ? io : c->call_cap;
  }
  return 0;
}

/* MCR_ENODEDOWN for n, saying who marked it down. */
static int node_down_error(mcr_client_t* c, const mcr__node_t* n,
                           int64_t left) {
  mcr__hh_state_t st;
  mcr__hh_decode(n->hh_seen, &st);
  if (st.down && !st.mine)
    return mcr__set_error(
        c, MCR_ENODEDOWN, "%s: %s by pid %u (host-wide), next try in %lld ms",
        n->srv.name, st.probing ? "being probed" : "marked down", st.pid,
        (long long)left);
  return mcr__set_error(c, MCR_ENODEDOWN,
                        "%s: down after %d failures, next try in %lld ms",
                        n->srv.name, n->fails, (long long)left);
}

/* The cold half of begin: a node marked down, a connection made
 * before a fork or left with unread bytes, a receive buffer to shrink, or
 * no connection at all. */
static int begin_slow(mcr_client_t* c, mcr__task_t* t, int64_t now) {
  mcr__node_t* n = t->node;
  mcr__conn_t* k = &n->conn;
  int64_t left;
  if (mcr__node_available(n, &c->health, now / 1000000, &left))
    return node_down_error(c, n, left);
  /* A child after fork sees the parent's generation on the connection;
   * unread bytes mean the stream is out of sync. Either way it is closed
   * without a word on the wire. */
  if (k->fd >= 0 && (k->fork_gen != mcr__fork_gen || k->rpos != k->rlen))
    mcr__conn_close(k);
  k->rpos = k->rlen = 0;
  if (k->rcap > MCR__RBUF_KEEP) {
    mcr__free(k->rbuf);
    k->rbuf = NULL;
    k->rcap = 0;
  }
  k->reused = k->fd >= 0;
  if (k->reused)
    return 0;
  int rc = connect_task(c, t, false);
  if (rc) /* the task ends here: count the failure (finish does later) */
    mcr__node_failed(n, &c->health, rc);
  return rc;
}

/* Starts task t (now: mcr__now_ns): its I/O deadline, its connection. */
static int begin(mcr_client_t* c, mcr__task_t* t, int64_t now) {
  mcr__node_t* n = t->node;
  mcr__conn_t* k = &n->conn;
  k->deadline = now + c->io_ns;
  k->slow = false;
  if (k->fd >= 0 && !n->down_until && mcr__node_shared_same(n) &&
      k->rpos == k->rlen && k->fork_gen == mcr__fork_gen &&
      k->rcap <= MCR__RBUF_KEEP) {
    k->rpos = k->rlen = 0;
    k->reused = true;
    return 0;
  }
  return begin_slow(c, t, now);
}

/* ------------------------------------------------------------ retry */

/* The retry rule (see the top of this file): t's kept connection failed
 * with `rc` before any reply byte. */
static bool may_retry(const mcr__task_t* t, int rc, bool retried) {
  const mcr__conn_t* k = &t->node->conn;
  return rc == MCR_ECLOSED && k->reused && k->rlen == 0 && !retried &&
         t->repeatable && t->decode;
}

/* Replaces t's connection and sends its request again, inside the
 * deadline the first attempt had. */
static int resend(mcr_client_t* c, mcr__task_t* t) {
  mcr__conn_t* k = &t->node->conn;
  int64_t deadline = k->deadline;
  int rc = connect_task(c, t, true);
  if (rc)
    return rc;
  k->deadline = deadline;
  k->slow = true; /* every wait polls against that deadline */
  return mcr__conn_send(k, t->iov, t->iovcnt);
}

/* ------------------------------------------------------------ receive */

/* Reads and decodes t's reply to the end on the blocking path, after a
 * first receive and decode that left it incomplete. */
int mcr__receive_more(mcr__task_t* t, mcr__dec_t* d, size_t room) {
  mcr__conn_t* k = &t->node->conn;
  for (;;) {
    size_t need = d->need;
    int rc = mcr__conn_fill(k, room);
    if (rc)
      return rc;
    if (room && k->rlen - k->rpos < need)
      continue; /* not all of what the decoder asked for yet */
    *d = (mcr__dec_t){0};
    rc = mcr__drain(t->node, t->decode, t->ctx, d, &room);
    if (rc != MCR__MORE)
      return rc;
  }
}

/* ------------------------------------------------------------ finish */

static size_t iov_bytes(const struct iovec* iov, int n) {
  size_t total = 0;
  for (int i = 0; i < n; i++)
    total += iov[i].iov_len;
  return total;
}

/* Ends task t with `rc`: health, host stats, the message. */
void mcr__finish(mcr_client_t* c, mcr__task_t* t, int rc, mcr__dec_t* d,
                 int64_t start_ns) {
  mcr__node_t* n = t->node;
  mcr__conn_t* k = &n->conn;
  if (n->hs != NULL) {
    mcr__hs_add(n, offsetof(mcr_node_counters_t, bytes_out),
                iov_bytes(t->iov, t->iovcnt));
    mcr__hs_add(n, offsetof(mcr_node_counters_t, bytes_in), k->rlen);
    if (k->rlen)
      mcr__hs_latency(n, mcr__now_ns() - start_ns);
  }
  t->rc = rc;
  if (rc == 0) {
    mcr__node_ok(n, &c->health);
    if (d && d->line_len) /* a server error line for one command */
      node_error(c, n, mcr__error_line(k->rbuf + d->line_off, d->line_len), d);
    return;
  }
  bool server_line = d && d->line_len && rc != MCR_EPROTO;
  if (server_line)
    mcr__node_ok(n, &c->health); /* it answered */
  if (k->fd >= 0 && (!server_line || d->desync))
    mcr__conn_close(k); /* the stream is out of sync */
  mcr__node_failed(n, &c->health, rc);
  if (rc == MCR_ECLOSED && k->reused && k->rlen == 0 && t->decode &&
      !t->repeatable)
    mcr__set_error(c, rc,
                   "%s: connection closed before any reply; the command may "
                   "have been applied, so it was not sent again",
                   n->srv.name);
  else
    node_error(c, n, rc, d);
}

/* ------------------------------------------------------------ one node */

/* Reads and decodes t's reply to the end on the blocking path. */
static int receive(mcr__task_t* t, mcr__dec_t* d) {
  size_t room = 0;
  int rc = mcr__conn_fill(&t->node->conn, 0);
  if (rc)
    return rc;
  rc = mcr__drain(t->node, t->decode, t->ctx, d, &room);
  return rc == MCR__MORE ? mcr__receive_more(t, d, room) : rc;
}

/* The rest of a one-node call whose send or receive failed: the retry
 * rule, then the end of the task. */
int mcr__run_one_failed(mcr_client_t* c, mcr__task_t* t, int rc, mcr__dec_t* d,
                        int64_t start_ns) {
  c->call_cap = start_ns + c->call_budget_ns;
  if (may_retry(t, rc, false)) {
    rc = resend(c, t);
    if (!rc) {
      *d = (mcr__dec_t){0};
      rc = receive(t, d);
    }
  }
  mcr__finish(c, t, rc, d, start_ns);
  return t->rc;
}

int mcr__run_one(mcr_client_t* c, mcr__task_t* t, int64_t now_ns) {
  c->call_cap = now_ns + c->call_budget_ns;
  int rc = begin(c, t, now_ns);
  if (rc)
    return t->rc = rc;
  mcr__dec_t d = {0};
  rc = mcr__conn_send(&t->node->conn, t->iov, t->iovcnt);
  if (!rc && t->decode)
    rc = receive(t, &d);
  if (rc)
    return mcr__run_one_failed(c, t, rc, &d, now_ns);
  mcr__finish(c, t, 0, &d, now_ns);
  return t->rc;
}

/* ------------------------------------------------------------ many nodes */

#define GATHER_STACK 8

typedef struct {
  int64_t start_ns;
  size_t room;
  bool retried;
  bool live; /* waiting for bytes */
  mcr__dec_t d;
} task_state_t;

/* A failure of a live task: resent once when the retry rule allows,
 * else the task ends. */
static void task_failed(mcr_client_t* c, mcr__task_t* t, task_state_t* s,
                        int rc) {
  if (may_retry(t, rc, s->retried)) {
    s->retried = true;
    if ((rc = resend(c, t)) == 0)
      return; /* live again */
  }
  s->live = false;
  mcr__finish(c, t, rc, &s->d, s->start_ns);
}

void mcr__run(mcr_client_t* c, mcr__task_t* tasks, size_t n) {
  if (n == 1) {
    mcr__run_one(c, tasks, mcr__now_ns());
    return;
  }
  task_state_t stack_st[GATHER_STACK];
  struct pollfd stack_pfd[GATHER_STACK];
  size_t stack_idx[GATHER_STACK];
  task_state_t* st = stack_st;
  struct pollfd* pfd = stack_pfd;
  size_t* idx = stack_idx;
  if (n > GATHER_STACK) {
    st = mcr__arena_alloc(&c->arena, n * sizeof(*st));
    pfd = mcr__arena_alloc(&c->arena, n * sizeof(*pfd));
    idx = mcr__arena_alloc(&c->arena, n * sizeof(*idx));
    if (!st || !pfd || !idx) {
      for (size_t i = 0; i < n; i++)
        tasks[i].rc = mcr__set_error(c, MCR_ENOMEM, "out of memory");
      return;
    }
  }
  int64_t now_ns = mcr__now_ns();
  c->call_cap = now_ns + c->call_budget_ns;

  /* Every node's request goes out before any reply is read. */
  for (size_t i = 0; i < n; i++) {
    mcr__task_t* t = &tasks[i];
    st[i] = (task_state_t){.start_ns = now_ns};
    int rc = begin(c, t, mcr__now_ns());
    if (rc) {
      t->rc = rc;
      continue;
    }
    rc = mcr__conn_send(&t->node->conn, t->iov, t->iovcnt);
    if (!rc && !t->decode) {
      mcr__finish(c, t, 0, NULL, st[i].start_ns);
      continue;
    }
    st[i].live = true;
    if (rc)
      task_failed(c, t, &st[i], rc);
  }

  /* Then every node's replies are read as they arrive. */
  for (;;) {
    size_t np = 0;
    int64_t t_now = mcr__now_ns(), first = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
      if (!st[i].live)
        continue;
      mcr__conn_t* k = &tasks[i].node->conn;
      if (k->deadline <= t_now) {
        mcr__conn_close(k);
        k->what = "timed out waiting for the reply";
        st[i].live = false;
        mcr__finish(c, &tasks[i], MCR_ETIMEOUT, NULL, st[i].start_ns);
        continue;
      }
      if (k->deadline < first)
        first = k->deadline;
      pfd[np] = (struct pollfd){.fd = k->fd, .events = POLLIN};
      idx[np++] = i;
    }
    if (np == 0)
      return;
    int r = poll(pfd, np, (int)((first - t_now + 999999) / 1000000));
    if (r < 0 && errno != EINTR) {
      int e = errno;
      for (size_t j = 0; j < np; j++) {
        mcr__conn_t* k = &tasks[idx[j]].node->conn;
        mcr__conn_close(k);
        k->what = "poll";
        k->sys = e;
        st[idx[j]].live = false;
        mcr__finish(c, &tasks[idx[j]], MCR_EIO, NULL, st[idx[j]].start_ns);
      }
      return;
    }
    for (size_t j = 0; r > 0 && j < np; j++) {
      if (!pfd[j].revents)
        continue;
      size_t i = idx[j];
      mcr__task_t* t = &tasks[i];
      mcr__conn_t* k = &t->node->conn;
      int rc = mcr__conn_fill_nowait(k, st[i].room);
      if (rc) {
        task_failed(c, t, &st[i], rc);
        continue;
      }
      if (k->rlen - k->rpos < st[i].d.need || k->rpos == k->rlen)
        continue; /* not all of what the decoder asked for yet */
      st[i].d = (mcr__dec_t){0};
      rc = mcr__drain(t->node, t->decode, t->ctx, &st[i].d, &st[i].room);
      if (rc == MCR__MORE)
        continue;
      st[i].live = false;
      mcr__finish(c, t, rc, &st[i].d, st[i].start_ns);
    }
  }
}

/* ------------------------------------------------------------ plans */

int mcr__plan(mcr_client_t* c, size_t n, const char* const* keys,
              const size_t* lens, size_t ctx_size, mcr__plan_t* p) {
  /* Groups are found through a table node index -> group: indexed by the
   * node itself when the client has no more nodes than the table has
   * slots, else open addressing. The table is sized by the keys, not by
   * the ring: a call of a few keys on a ring of thousands of nodes costs
   * what its keys cost. */
  size_t slots = 8;
  while (slots < 2 * n)
    slots *= 2;
  bool direct = c->nnodes <= slots;
  if (direct)
    slots = c->nnodes;
  p->node_of = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  p->next = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  p->first = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  p->gnode = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  size_t* last = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  size_t* table = mcr__arena_alloc(&c->arena, slots * sizeof(size_t));
  if (!p->node_of || !p->next || !p->first || !p->gnode || !last || !table)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  memset(table, 0xff, slots * sizeof(size_t));
  mcr__route_many(c, n, keys, lens, p->node_of);
  p->ngroups = 0;
  for (size_t i = 0; i < n; i++) {
    size_t node = p->node_of[i];
    size_t h = node;
    if (!direct) {
      h = (node * 0x9e3779b97f4a7c15ull) >> 7 & (slots - 1);
      while (table[h] != SIZE_MAX && p->gnode[table[h]] != node)
        h = (h + 1) & (slots - 1);
    }
    p->next[i] = SIZE_MAX;
    if (table[h] == SIZE_MAX) {
      size_t g = p->ngroups++;
      table[h] = g;
      p->gnode[g] = node;
      p->first[g] = i;
    } else {
      p->next[last[table[h]]] = i;
    }
    last[table[h]] = i;
  }
  size_t ng = p->ngroups;
  /* Every node of the call exists before anything is sent: a node that
   * cannot be made fails the call whole, never half-sent. */
  for (size_t g = 0; g < ng; g++)
    if (!mcr__client_node(c, p->gnode[g]))
      return c->node_err;
  p->task = mcr__arena_alloc(&c->arena, ng * sizeof(*p->task));
  p->iov = mcr__arena_alloc(&c->arena, ng * sizeof(*p->iov));
  p->ctx = mcr__arena_alloc(&c->arena, ng * ctx_size);
  if (!p->task || !p->iov || !p->ctx)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  return 0;
}

/* ------------------------------------------------------------ softening */

int mcr__soften(mcr_client_t* c, int rc, bool read) {
  if (rc >= 0 || !c->opts.ignore_errors)
    return rc;
  switch (rc) {
    case MCR_EINVAL:
    case MCR_EKEY:
    case MCR_ETOOBIG:
    case MCR_ERANGE:
    case MCR_ENOMEM:
    case MCR_ESERDE:
      return rc; /* the caller's mistake, not the cache's */
  }
  c->counters.ignored_errors++;
  return read ? MCR_MISS : MCR_NOT_STORED;
}
