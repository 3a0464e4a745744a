/* client_meta.c — the public meta API: mg, ms, md, ma, mn, me and quiet
 * pipelines.
 *
 * The same straight line as client.c: every argument checked
 * (mcr__meta_check) before a byte is sent, the key routed (a binary key on
 * its raw bytes, the key memcached stores), the request encoded
 * (codec_meta.c), the engine run (fanout.c), results turned from offsets
 * into pointers once every read of the call is done, host stats counted,
 * errors softened under ignore_errors (mg and me like reads, the rest like
 * writes; mn never, it is a liveness probe).
 *
 * Meta values are bytes as given and as stored: no serde, no compression,
 * client flags untouched; a caller that wants the codec on top applies it
 * itself. A single command with q gets an "mn" behind it, so the call
 * still knows when the server is done.
 *
 * Which meta commands may be sent twice (the retry rule, fanout.c): mg
 * unless it asks for a lease (N vivify, R recache: the first attempt may
 * have won it), ms in set or replace mode without a cas compare, and mn;
 * never md or ma. A pipeline is repeatable when all its commands on that
 * node are.
 */
#include <string.h>

#include "fanout.h"

#define IOV(p, n) ((struct iovec){.iov_base = (void*)(p), .iov_len = (n)})

static const char mn_line[] = "mn\r\n";

/* The host-stats class of a meta command. */
static mcr__opkind_t op_kind(char op) {
  return op == 'g'   ? MCR__OP_GET
         : op == 's' ? MCR__OP_SET
         : op == 'd' ? MCR__OP_DELETE
                     : MCR__OP_OTHER;
}

static bool repeatable(char op, const mcr_meta_opts_t* o) {
  switch (op) {
    case 'g':
      return !(o->flags & (MCR_META_VIVIFY | MCR_META_RECACHE));
    case 's':
      return !(o->flags & (MCR_META_COMPARE_CAS | MCR_META_INVALIDATE)) &&
             (!(o->flags & MCR_META_MODE) || o->mode == MCR_MS_SET ||
              o->mode == MCR_MS_REPLACE);
  }
  return false;
}

/* Turns the offsets of a finished call into pointers (and a base64 key
 * into its raw bytes, in the arena). Returns 0 or MCR_ENOMEM. */
static int resolve(mcr_client_t* c, const mcr__node_t* n,
                   const mcr__meta_reply_t* rep, mcr_meta_result_t* r) {
  const char* rbuf = n->conn.rbuf;
  if (r->have & MCR_MR_VALUE)
    r->value = rbuf + rep->val_off;
  if (!(r->have & MCR_MR_KEY))
    return 0;
  if (!rep->key_b64) {
    r->key = rbuf + rep->key_off;
    return 0;
  }
  /* The encoded token's length: the line holds it up to a space or end. */
  const char* k = rbuf + rep->key_off;
  const char* line_end = rbuf + rep->line_off + rep->line_len;
  const char* sp = memchr(k, ' ', (size_t)(line_end - k));
  size_t klen = (size_t)((sp ? sp : line_end) - k);
  char* out = mcr__arena_alloc(&c->arena, klen / 4 * 3 + 1);
  if (!out)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  long dl = mcr__base64_decode(k, klen, out);
  r->key = out;
  r->key_len = dl > 0 ? (size_t)dl : 0; /* checked by the decoder */
  return 0;
}

/* ------------------------------------------------------------ one command */

static int meta_one(mcr_client_t* c, char op, const char* key, size_t key_len,
                    const void* value, size_t value_len,
                    const mcr_meta_opts_t* o, mcr_meta_result_t* r) {
  mcr_meta_result_t local;
  if (!r)
    r = &local;
  memset(r, 0, sizeof *r);
  if (!c)
    return r->status = MCR_EINVAL;
  mcr__call_start(c);
  static const mcr_meta_opts_t defaults;
  if (!o)
    o = &defaults;
  int rc = mcr__meta_check(op, key, key_len, value, value_len, o,
                           c->opts.item_size_max, c->err, sizeof c->err);
  if (rc)
    return r->status = rc;

  mcr__node_t* n = mcr__route(c, key, key_len);
  if (MCR__UNLIKELY(!n))
    return r->status = c->node_err;
  char line[MCR__META_LINE_MAX];
  size_t ll = mcr__meta_request(line, op, key, key_len, value_len, o);
  struct iovec iov[4];
  int cnt = 0;
  iov[cnt++] = IOV(line, ll);
  if (op == 's') {
    iov[cnt++] = IOV(value ? value : "", value_len);
    iov[cnt++] = IOV("\r\n", 2);
  }
  bool quiet = o->flags & MCR_META_QUIET;
  if (quiet)
    iov[cnt++] = IOV(mn_line, 4);
  mcr__meta_ctx_t x = {.accept = mcr__meta_codes(op),
                       .quiet = quiet,
                       .want_opaque = o->flags & MCR_META_OPAQUE,
                       .opaque = o->opaque,
                       .implied = mcr__meta_implied(op),
                       .value_max = c->opts.item_size_max};
  rc = mcr__call(c, n, iov, cnt, mcr__meta_decode, &x, repeatable(op, o));
  if (!rc) {
    *r = x.rep.r;
    rc = resolve(c, n, &x.rep, r);
    if (!rc)
      rc = r->status;
  }
  mcr__hs_op(n, op_kind(op), rc);
  if (rc < 0) {
    memset(r, 0, sizeof *r);
    rc = mcr__soften(c, rc, op == 'g');
  }
  r->status = rc;
  return rc;
}

int mcr_client_mg(mcr_client_t* c, const char* key, size_t key_len,
                  const mcr_meta_opts_t* o, mcr_meta_result_t* r) {
  return meta_one(c, 'g', key, key_len, NULL, 0, o, r);
}

int mcr_client_ms(mcr_client_t* c, const char* key, size_t key_len,
                  const void* value, size_t value_len, const mcr_meta_opts_t* o,
                  mcr_meta_result_t* r) {
  return meta_one(c, 's', key, key_len, value, value_len, o, r);
}

int mcr_client_md(mcr_client_t* c, const char* key, size_t key_len,
                  const mcr_meta_opts_t* o, mcr_meta_result_t* r) {
  return meta_one(c, 'd', key, key_len, NULL, 0, o, r);
}

int mcr_client_ma(mcr_client_t* c, const char* key, size_t key_len,
                  const mcr_meta_opts_t* o, mcr_meta_result_t* r) {
  return meta_one(c, 'a', key, key_len, NULL, 0, o, r);
}

int mcr_client_mn(mcr_client_t* c, size_t node) {
  if (!c)
    return MCR_EINVAL;
  mcr__call_start(c);
  if (node >= c->nnodes)
    return mcr__set_error(c, MCR_EINVAL, "no node %zu (the client has %zu)",
                          node, c->nnodes);
  struct iovec iov = IOV(mn_line, 4);
  mcr__line_ctx_t x = {.kind = MCR__R_MN};
  mcr__node_t* n = mcr__client_node(c, node);
  return n ? mcr__call(c, n, &iov, 1, mcr__text_line_decode, &x, true)
           : c->node_err;
}

int mcr_client_me(mcr_client_t* c, const char* key, size_t key_len,
                  const char** text) {
  if (!c || !text)
    return MCR_EINVAL;
  mcr__call_start(c);
  *text = NULL;
  int rc = mcr__check_key(c, key, key_len);
  if (rc)
    return rc;
  mcr__node_t* n = mcr__route(c, key, key_len);
  if (MCR__UNLIKELY(!n))
    return c->node_err;
  struct iovec iov[3] = {IOV("me ", 3), IOV(key, key_len), IOV("\r\n", 2)};
  mcr__meta_ctx_t x = {.accept = MCR__RC_ME | MCR__RC_EN,
                       .value_max = c->opts.item_size_max};
  rc = mcr__call(c, n, iov, 3, mcr__meta_decode, &x, true);
  if (!rc && x.rep.code == MCR__RC_EN)
    rc = MCR_MISS;
  if (!rc) {
    /* Copied out: the line is only a few dozen bytes and wants a NUL. */
    char* s = mcr__arena_alloc(&c->arena, x.rep.line_len + 1);
    if (!s)
      return mcr__set_error(c, MCR_ENOMEM, "out of memory");
    memcpy(s, n->conn.rbuf + x.rep.line_off, x.rep.line_len);
    s[x.rep.line_len] = '\0';
    *text = s;
  }
  return rc < 0 ? mcr__soften(c, rc, true) : rc;
}

/* ------------------------------------------------------------ pipeline */

/* Return flags whose answer q would hide on ms / md / ma: memcached's q
 * drops their whole success reply (HD, and VA for ma), data included. */
#define WANTS_DATA \
  (MCR_META_VALUE | MCR_META_RET_CAS | MCR_META_RET_TTL | MCR_META_RET_KEY)

/* The flags a pipeline sends for m: its own with the pipeline's opaque,
 * quiet except for an ms / md / ma that asks for data (mg's q hides only
 * EN, so mg is always quiet). */
static uint32_t pipeline_flags(const mcr_meta_cmd_t* m) {
  uint32_t f = (m->opts.flags & ~MCR_META_QUIET) | MCR_META_OPAQUE;
  if (m->op == 'g' || !(f & WANTS_DATA))
    f |= MCR_META_QUIET;
  return f;
}

int mcr_client_meta_pipeline(mcr_client_t* c, mcr_meta_cmd_t* cmds, size_t n,
                             size_t* ok) {
  if (!c || (!cmds && n) || !ok)
    return MCR_EINVAL;
  mcr__call_start(c);
  *ok = 0;
  if (n > UINT32_MAX) /* opaques are 32-bit command indexes */
    return mcr__set_error(c, MCR_EINVAL, "pipeline of %zu commands", n);
  for (size_t i = 0; i < n; i++) {
    mcr_meta_cmd_t* m = &cmds[i];
    memset(&m->result, 0, sizeof m->result);
    int rc =
        mcr__meta_check(m->op, m->key, m->key_len, m->value, m->value_len,
                        &m->opts, c->opts.item_size_max, c->err, sizeof c->err);
    if (rc)
      return rc;
  }
  if (n == 0)
    return 0;

  const char** keys = mcr__arena_alloc(&c->arena, n * sizeof(*keys));
  size_t* lens = mcr__arena_alloc(&c->arena, n * sizeof(*lens));
  mcr__pcmd_t* pc = mcr__arena_alloc(&c->arena, n * sizeof(*pc));
  size_t* order = mcr__arena_alloc(&c->arena, n * sizeof(*order));
  if (!keys || !lens || !pc || !order)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    keys[i] = cmds[i].key;
    lens[i] = cmds[i].key_len;
  }
  mcr__plan_t p;
  int rc = mcr__plan(c, n, keys, lens, sizeof(mcr__pipe_ctx_t), &p);
  if (rc)
    return rc;
  size_t ng = p.ngroups;
  mcr__task_t* t = p.task;
  mcr__pipe_ctx_t* x = p.ctx;

  /* Every node's commands in one segment of wbuf (values copied: one
   * write per node), in the caller's order, closed by mn. */
  mcr_buf_t* w = &c->wbuf;
  w->len = 0;
  size_t at = 0;
  for (size_t j = 0; j < ng; j++) {
    size_t start = w->len, count = 0;
    bool rep = true;
    x[j] = (mcr__pipe_ctx_t){.cmds = cmds,
                             .n = n,
                             .pc = pc,
                             .order = order + at,
                             .node = p.gnode[j],
                             .value_max = c->opts.item_size_max};
    for (size_t i = p.first[j]; i != SIZE_MAX; i = p.next[i]) {
      mcr_meta_cmd_t* m = &cmds[i];
      mcr_meta_opts_t o = m->opts;
      o.flags = pipeline_flags(m);
      o.opaque = (uint32_t)i; /* the reply's key back to command i */
      rep &= repeatable(m->op, &m->opts);
      pc[i] = (mcr__pcmd_t){.node = p.gnode[j], .pos = count};
      order[at + count++] = i;
      size_t extra = MCR__META_LINE_MAX + (m->op == 's' ? m->value_len + 2 : 0);
      if (mcr__buf_reserve(w, extra))
        return mcr__set_error(c, MCR_ENOMEM, "out of memory");
      w->len += mcr__meta_request(w->data + w->len, m->op, m->key, m->key_len,
                                  m->value_len, &o);
      if (m->op == 's') {
        if (m->value_len)
          memcpy(w->data + w->len, m->value, m->value_len);
        memcpy(w->data + w->len + m->value_len, "\r\n", 2);
        w->len += m->value_len + 2;
      }
    }
    if (mcr_buf_append(w, mn_line, 4))
      return mcr__set_error(c, MCR_ENOMEM, "out of memory");
    x[j].count = count;
    at += count;
    p.iov[j] = IOV((void*)start, w->len - start);
    t[j] = (mcr__task_t){.node = c->nodes[p.gnode[j]],
                         .iovcnt = 1,
                         .decode = mcr__meta_pipe_decode,
                         .ctx = &x[j],
                         .repeatable = rep};
  }
  for (size_t j = 0; j < ng; j++) {
    p.iov[j].iov_base = w->data + (size_t)p.iov[j].iov_base;
    t[j].iov = &p.iov[j];
  }
  mcr__run(c, t, ng);

  /* All reads are done: offsets become pointers, silence becomes status. */
  size_t good = 0;
  for (size_t j = 0; j < ng; j++) {
    for (size_t i = p.first[j]; i != SIZE_MAX; i = p.next[i]) {
      mcr_meta_result_t* r = &cmds[i].result;
      if (pc[i].state == MCR__P_REPLIED) {
        if ((rc = resolve(c, t[j].node, &pc[i].rep, r)))
          r->status = rc;
      } else if (t[j].rc && pc[i].pos >= x[j].cur) {
        memset(r, 0, sizeof *r);
        r->status = t[j].rc;
      } else if (pc[i].state == MCR__P_SILENT) {
        r->status = mcr__meta_implied(cmds[i].op);
      }
      mcr__hs_op(t[j].node, op_kind(cmds[i].op), r->status);
      if (r->status < 0)
        r->status = mcr__soften(c, r->status, cmds[i].op == 'g');
      good += r->status == MCR_OK;
    }
  }
  *ok = good;
  return 0;
}
