/* client.c — the public client API: options, the handle, and the classic
 * text commands.
 *
 * Every call runs the same straight line (docs/client.md, "Layers"):
 *   check   every argument before a byte is sent: keys, value sizes
 *           against item_size_max, TTL range, flags, call flags;
 *   route   the key to its node (router.c);
 *   encode  the request (codec_text.c; values through value.c first);
 *   run     the engine sends, receives and decodes (fanout.c), with its
 *           deadline and retry rule;
 *   finish  values decoded (value.c), host stats counted, and errors
 *           softened into misses under ignore_errors (mcr__soften).
 * Which commands may be sent twice (the retry rule) is decided here, per
 * command: reads, set, replace, touch and the idempotent per-node commands
 * may; incr, decr, add, append, prepend, cas, delete and anything noreply
 * may not (docs/client.md, "Retries").
 *
 * A client handle is single-threaded: it owns its connections, buffers and
 * arena without locks. Threads use one handle each.
 */
#include <stdio.h>
#include <string.h>

#include "fanout.h"

#define TIMEOUT_MAX_MS (3600 * 1000)
#define ITEM_SIZE_MAX_LIMIT (1u << 30)
#define IOV(p, n) ((struct iovec){.iov_base = (void*)(p), .iov_len = (n)})

void mcr_client_opts_init(mcr_client_opts_t* o) {
  memset(o, 0, sizeof(*o));
  o->distribution = MCR_DIST_KETAMA;
  o->connect_timeout_ms = 1000;
  o->io_timeout_ms = 1000;
  o->item_size_max = 1u << 20;
  o->compress_level = 1;
  o->ring_owner_uid = -1;
  o->failure_limit = 2;
  o->retry_timeout_ms = 1000;
  o->host_stats = 1;
  o->discovery_interval_ms = 60000;
}

static int opts_check(const mcr_client_opts_t* o, char* err, size_t errlen) {
  const char* what = NULL;
  if (o->connect_timeout_ms <= 0 || o->connect_timeout_ms > TIMEOUT_MAX_MS)
    what = "connect_timeout_ms must be 1..3600000";
  else if (o->io_timeout_ms <= 0 || o->io_timeout_ms > TIMEOUT_MAX_MS)
    what = "io_timeout_ms must be 1..3600000";
  else if (o->item_size_max == 0 || o->item_size_max > ITEM_SIZE_MAX_LIMIT)
    what = "item_size_max must be 1..1 GiB";
  else if (o->failure_limit < 0 || o->retry_timeout_ms < 0 ||
           o->retry_timeout_ms > TIMEOUT_MAX_MS)
    what = "failure_limit and retry_timeout_ms must be >= 0";
  else if (o->compress_level < -7 || o->compress_level > 22)
    what = "compress_level must be -7..22";
  else if (o->raw_flags && o->compress_threshold)
    what = "raw_flags leaves bit 0x100 to the caller: set compress_threshold 0";
  else if (o->distribution != MCR_DIST_KETAMA &&
           o->distribution != MCR_DIST_KETAMA_LIBMEMCACHED &&
           o->distribution != MCR_DIST_XXH3)
    what = "unknown distribution";
  else if (!!o->ring_dir + !!o->servers + !!o->elasticache > 1)
    what = "set one of servers, ring_dir and elasticache";
  else if (!o->tls.enable &&
           (o->tls.ca_file || o->tls.ca_dir || o->tls.cert_file ||
            o->tls.key_file || o->tls.server_name || o->tls.insecure ||
            o->tls.min_version > 12))
    what =
        "TLS settings given but tls.enable is 0: nothing would be "
        "encrypted (set tls.enable = 1, or leave them out)";
  else if (o->elasticache && (o->discovery_interval_ms < 1 ||
                              o->discovery_interval_ms > TIMEOUT_MAX_MS))
    what = "discovery_interval_ms must be 1..3600000";
  if (!what)
    return 0;
  snprintf(err, errlen, "%s", what);
  return MCR_EINVAL;
}

int mcr_client_new(mcr_client_t** out, const mcr_client_opts_t* opts,
                   char* errbuf, size_t errlen) {
  char err[512] = "";
  int rc = MCR_EINVAL;
  mcr_client_t* c = NULL;
  mcr__server_t* srv = NULL;
  size_t n = 0;
  if (!out || !opts) {
    snprintf(err, sizeof err, "NULL argument");
    goto fail;
  }
  *out = NULL;
  if ((rc = opts_check(opts, err, sizeof err)))
    goto fail;
  if (!opts->ring_dir && !opts->elasticache &&
      (rc = mcr__servers_parse(opts->servers, &srv, &n, err, sizeof err)))
    goto fail;

  rc = MCR_ENOMEM;
  snprintf(err, sizeof err, "out of memory");
  c = mcr__calloc(1, sizeof(*c));
  if (c && n)
    c->nodes = mcr__calloc(n, sizeof(*c->nodes));
  if (c && n)
    c->live = mcr__calloc(n, sizeof(*c->live));
  if (!c || (n && (!c->nodes || !c->live))) {
    mcr__servers_free(srv, n);
    goto fail;
  }
  c->live_cap = n;
  c->nodes_cap = n;
  c->opts = *opts;
  c->opts.servers = NULL;
  c->opts.ring_dir = NULL;
  c->opts.elasticache = NULL;
  c->opts.tls = (mcr_tls_opts_t){.enable = opts->tls.enable};
  c->conn_opts = (mcr__conn_opts_t){.io_timeout_ms = opts->io_timeout_ms,
                                    .keepalive = opts->tcp_keepalive != 0};
  if (opts->tls.enable) {
    for (size_t i = 0; i < n; i++)
      if (srv[i].is_unix) {
        rc = MCR_EINVAL;
        snprintf(err, sizeof err, "TLS over a unix socket (%s)", srv[i].name);
        mcr__servers_free(srv, n);
        goto fail;
      }
    if ((rc = mcr__tls_new(&c->tls, &opts->tls, err, sizeof err))) {
      mcr__servers_free(srv, n);
      goto fail;
    }
    c->conn_opts.tls = c->tls;
  }
  c->health = (mcr__health_t){
      .limit = opts->failure_limit,
      .retry_ms = opts->retry_timeout_ms,
      .probe_ms = opts->connect_timeout_ms + opts->io_timeout_ms};
  c->io_ns = (int64_t)opts->io_timeout_ms * 1000000;
  c->call_budget_ns =
      ((int64_t)opts->connect_timeout_ms + opts->io_timeout_ms) * 1000000;
  c->nnodes = n;
  for (size_t i = 0; i < n; i++) {
    /* live has room for all n: placing cannot fail. */
    mcr__node_t* node = mcr__malloc(sizeof *node);
    if (!node) {
      /* The servers not yet placed (the others belong to their nodes). */
      for (size_t k = i; k < n; k++) {
        mcr__free(srv[k].host);
        mcr__free(srv[k].name);
        mcr__free(srv[k].tls_name);
      }
      mcr__free(srv);
      rc = MCR_ENOMEM;
      snprintf(err, sizeof err, "out of memory");
      goto fail;
    }
    mcr__node_init(node, &srv[i]);
    (void)mcr__node_place(c, i, node);
  }
  mcr__free(srv); /* the strings now belong to the nodes */
  if ((rc = mcr__router_init(c, opts->ring_dir, opts->elasticache))) {
    snprintf(err, sizeof err, "%s", c->err);
    goto fail;
  }
  mcr__fork_guard_init();
  *out = c;
  return 0;

fail:
  mcr_client_free(c);
  if (!err[0]) /* a step that said nothing (out of memory in a parser) */
    snprintf(err, sizeof err, "%s", mcr_strerror(rc));
  if (errbuf && errlen)
    snprintf(errbuf, errlen, "%s", err);
  return rc;
}

void mcr_client_free(mcr_client_t* c) {
  if (!c)
    return;
  mcr__hs_close(c);
  for (size_t i = 0; i < c->nlive; i++) {
    mcr__node_free(c->live[i]);
    mcr__free(c->live[i]);
  }
  mcr__router_free(c);
  mcr__free(c->nodes);
  mcr__free(c->live);
  mcr__tls_free(c->tls);
  mcr__buf_free(&c->wbuf);
  mcr__buf_free(&c->scratch);
  mcr__arena_free(&c->arena);
  mcr__value_free(c);
  mcr__free(c->stats);
  mcr__free(c);
}

const char* mcr_client_last_error(const mcr_client_t* c) {
  return c ? c->err : "";
}

size_t mcr_client_node_count(const mcr_client_t* c) {
  return c ? c->nnodes : 0;
}

const char* mcr_client_node_name(const mcr_client_t* c, size_t i) {
  if (!c || i >= c->nnodes)
    return NULL;
  /* Naming a ring node makes it (no connection): the handle is the
   * caller's, only its cache of nodes changes. */
  const mcr__node_t* n = mcr__client_node((mcr_client_t*)c, i);
  return n ? n->srv.name : NULL;
}

void mcr_client_stats(const mcr_client_t* c, mcr_client_stats_t* out) {
  if (c && out)
    *out = c->counters;
}

/* ------------------------------------------------------------ checks */

/* Every public call that talks to a server starts here, which is what
 * keeps returned memory valid until the next call. */
void mcr__call_start(mcr_client_t* c) {
  c->err[0] = '\0';
  mcr__arena_reset(&c->arena);
  if (c->router)
    mcr__router_refresh(c);
  if (MCR__UNLIKELY(c->hs != NULL))
    mcr__hs_check_fork(c);
}

int mcr__key_error(mcr_client_t* c, const char* key, size_t key_len) {
  size_t at;
  const char* why = mcr__key_why(key, key_len, &at);
  if (!key || key_len == 0)
    return mcr__set_error(c, MCR_EKEY, "%s", why);
  if (key_len > MCR__KEY_MAX)
    return mcr__set_error(c, MCR_EKEY, "key is %zu bytes, the limit is 250",
                          key_len);
  return mcr__set_error(c, MCR_EKEY, "key byte %zu is 0x%02x (%s)", at,
                        (unsigned char)key[at], why);
}

int mcr__check_ttl(mcr_client_t* c, int64_t ttl) {
  if (ttl >= INT32_MIN && ttl <= INT32_MAX)
    return 0;
  return mcr__set_error(c, MCR_ERANGE, "ttl %lld out of range", (long long)ttl);
}

/* Resolves the effective noreply of a call. Returns 0 or MCR_EINVAL. */
static int call_noreply(mcr_client_t* c, unsigned cflags, bool* noreply) {
  if (MCR__UNLIKELY(cflags & ~(MCR_CALL_NOREPLY | MCR_CALL_REPLY)) ||
      MCR__UNLIKELY((cflags & MCR_CALL_NOREPLY) && (cflags & MCR_CALL_REPLY)))
    return mcr__set_error(c, MCR_EINVAL, "bad call flags 0x%x", cflags);
  *noreply = (cflags & MCR_CALL_NOREPLY) ||
             (c->opts.noreply && !(cflags & MCR_CALL_REPLY));
  return 0;
}

static int node_arg(mcr_client_t* c, size_t node) {
  if (node < c->nnodes)
    return 0;
  return mcr__set_error(c, MCR_EINVAL, "no node %zu (the client has %zu)", node,
                        c->nnodes);
}

/* The start every one-key write shares: a live handle, the per-call reset,
 * the call flags and the key. Returns 0 or the error. */
static int begin_write(mcr_client_t* c, const char* key, size_t key_len,
                       unsigned cflags, bool* noreply) {
  if (MCR__UNLIKELY(!c))
    return MCR_EINVAL;
  mcr__call_start(c);
  int rc = call_noreply(c, cflags, noreply);
  if (!rc)
    rc = mcr__check_key(c, key, key_len);
  return rc;
}

/* Runs a one-line-reply request on node n. */
static int run_line(mcr_client_t* c, mcr__node_t* n, struct iovec* iov,
                    int iovcnt, bool noreply, bool repeatable,
                    mcr__line_ctx_t* x) {
  int rc = mcr__call(c, n, iov, iovcnt, noreply ? NULL : mcr__text_line_decode,
                     x, repeatable && !noreply);
  return rc ? rc : noreply ? MCR_OK : x->status;
}

/* ------------------------------------------------------------ storage */

static int store(mcr_client_t* c, mcr__store_t cmd, const char* key,
                 size_t key_len, const void* value, size_t value_len,
                 uint32_t flags, int64_t ttl, uint64_t cas, unsigned cflags) {
  bool noreply;
  int rc = begin_write(c, key, key_len, cflags, &noreply);
  if (rc)
    return rc;
  if ((rc = mcr__check_ttl(c, ttl)))
    return rc;
  if (MCR__UNLIKELY(!value && value_len))
    return mcr__set_error(c, MCR_EINVAL, "value is NULL");
  if (MCR__UNLIKELY((flags & MCR_FLAG_ZSTD) && !c->opts.raw_flags))
    return mcr__set_error(c, MCR_EINVAL,
                          "flag bit 0x100 is reserved for compression");
  const void* data = value ? value : "";
  size_t len = value_len;
  if (cmd != MCR__APPEND && cmd != MCR__PREPEND) {
    rc = mcr__encode_value(c, data, value_len, &flags, &data, &len);
    if (rc)
      return rc;
  }
  if (MCR__UNLIKELY(len > c->opts.item_size_max))
    return mcr__set_error(c, MCR_ETOOBIG,
                          "value of %zu bytes exceeds item_size_max %zu", len,
                          c->opts.item_size_max);
  mcr__node_t* n = mcr__route(c, key, key_len);
  if (MCR__UNLIKELY(!n))
    return c->node_err;
  char nums[MCR__TEXT_NUMS];
  struct iovec iov[5];
  int cnt = mcr__text_store_request(iov, nums, cmd, key, key_len, flags, ttl,
                                    cas, data, len, noreply);
  mcr__line_ctx_t x = {.kind = MCR__R_STORE};
  /* set and replace leave the same item when applied twice. */
  rc = run_line(c, n, iov, cnt, noreply, cmd == MCR__SET || cmd == MCR__REPLACE,
                &x);
  mcr__hs_op(n, MCR__OP_SET, rc);
  return mcr__soften(c, rc, false);
}

int mcr_client_set(mcr_client_t* c, const char* key, size_t key_len,
                   const void* value, size_t value_len, uint32_t flags,
                   int64_t ttl, unsigned cflags) {
  return store(c, MCR__SET, key, key_len, value, value_len, flags, ttl, 0,
               cflags);
}

int mcr_client_add(mcr_client_t* c, const char* key, size_t key_len,
                   const void* value, size_t value_len, uint32_t flags,
                   int64_t ttl, unsigned cflags) {
  return store(c, MCR__ADD, key, key_len, value, value_len, flags, ttl, 0,
               cflags);
}

int mcr_client_replace(mcr_client_t* c, const char* key, size_t key_len,
                       const void* value, size_t value_len, uint32_t flags,
                       int64_t ttl, unsigned cflags) {
  return store(c, MCR__REPLACE, key, key_len, value, value_len, flags, ttl, 0,
               cflags);
}

int mcr_client_append(mcr_client_t* c, const char* key, size_t key_len,
                      const void* value, size_t value_len, unsigned cflags) {
  return store(c, MCR__APPEND, key, key_len, value, value_len, 0, 0, 0, cflags);
}

int mcr_client_prepend(mcr_client_t* c, const char* key, size_t key_len,
                       const void* value, size_t value_len, unsigned cflags) {
  return store(c, MCR__PREPEND, key, key_len, value, value_len, 0, 0, 0,
               cflags);
}

int mcr_client_cas(mcr_client_t* c, const char* key, size_t key_len,
                   const void* value, size_t value_len, uint32_t flags,
                   int64_t ttl, uint64_t cas, unsigned cflags) {
  return store(c, MCR__CAS, key, key_len, value, value_len, flags, ttl, cas,
               cflags);
}

/* ------------------------------------------------------------ retrieval */

/* The value of a hit, and what the caller sees of a miss or failure. */
static inline int item_result(mcr_client_t* c, mcr_item_t* it, int rc) {
  if (MCR__LIKELY(rc == MCR_OK)) {
    if (MCR__UNLIKELY(mcr__item_needs_decode(c, it)))
      rc = mcr__decode_item(c, it);
  } else if (rc < 0) {
    rc = mcr__soften(c, rc, true);
  }
  if (rc != MCR_OK)
    *it = (mcr_item_t){.status = rc};
  return rc;
}

static int retrieve_one(mcr_client_t* c, mcr__get_t cmd, int64_t ttl,
                        const char* key, size_t key_len, mcr_item_t* item) {
  if (MCR__UNLIKELY(!c || !item))
    return MCR_EINVAL;
  mcr__call_start(c);
  int rc;
  if (MCR__UNLIKELY((cmd == MCR__GAT || cmd == MCR__GATS) &&
                    (rc = mcr__check_ttl(c, ttl))))
    return rc;
  /* The request line, built while the key is checked (one pass over it). */
  char req[MCR__GET_REQ_MAX];
  size_t req_len = mcr__text_get_request(cmd, ttl, key, key_len, req);
  if (MCR__UNLIKELY(req_len == 0))
    return mcr__key_error(c, key, key_len);
  mcr__node_t* n = mcr__route(c, key, key_len);
  if (MCR__UNLIKELY(!n))
    return c->node_err;
  mcr__get_ctx_t g = {.key = key,
                      .key_len = key_len,
                      .want_cas = cmd == MCR__GETS || cmd == MCR__GATS,
                      .value_max = c->opts.item_size_max};
  struct iovec iov = IOV(req, req_len);
  rc = mcr__call(c, n, &iov, 1, mcr__text_get_decode, &g, true);
  if (MCR__LIKELY(rc == 0)) {
    rc = g.status;
    if (rc == MCR_OK)
      *item = (mcr_item_t){.value = n->conn.rbuf + g.value_off,
                           .value_len = g.value_len,
                           .flags = g.flags,
                           .cas = g.cas,
                           .status = MCR_OK};
  }
  mcr__hs_op(n, MCR__OP_GET, rc);
  return item_result(c, item, rc);
}

int mcr_client_get(mcr_client_t* c, const char* key, size_t key_len,
                   mcr_item_t* item) {
  return retrieve_one(c, MCR__GET, 0, key, key_len, item);
}

int mcr_client_gets(mcr_client_t* c, const char* key, size_t key_len,
                    mcr_item_t* item) {
  return retrieve_one(c, MCR__GETS, 0, key, key_len, item);
}

int mcr_client_gat(mcr_client_t* c, const char* key, size_t key_len,
                   int64_t ttl, mcr_item_t* item) {
  return retrieve_one(c, MCR__GAT, ttl, key, key_len, item);
}

int mcr_client_gats(mcr_client_t* c, const char* key, size_t key_len,
                    int64_t ttl, mcr_item_t* item) {
  return retrieve_one(c, MCR__GATS, ttl, key, key_len, item);
}

/* Many keys: planned per node, one request per node (lines of at most
 * 2 KiB), every node's request sent before any reply is read. */
static int retrieve(mcr_client_t* c, mcr__get_t cmd, int64_t ttl, size_t n,
                    const char* const* keys, const size_t* key_lens,
                    mcr_item_t* items, size_t* hits) {
  if (MCR__UNLIKELY(!c || (n && (!keys || !key_lens || !items))))
    return MCR_EINVAL;
  mcr__call_start(c);
  if (hits)
    *hits = 0;
  int rc;
  if ((cmd == MCR__GAT || cmd == MCR__GATS) && (rc = mcr__check_ttl(c, ttl)))
    return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = mcr__check_key(c, keys[i], key_lens[i])))
      return rc;
  if (n == 0)
    return 0;
  mcr__plan_t p;
  if ((rc = mcr__plan(c, n, keys, key_lens, sizeof(mcr__mget_ctx_t), &p)))
    return rc;
  size_t ng = p.ngroups;
  mcr__task_t* t = p.task;
  mcr__mget_ctx_t* g = p.ctx;
  size_t* value_off = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  if (!value_off)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) /* the rest is cleared for a miss below */
    items[i].status = MCR_MISS;
  /* All requests in one buffer (it may move while it grows: offsets). */
  mcr_buf_t* w = &c->wbuf;
  w->len = 0;
  for (size_t j = 0; j < ng; j++) {
    g[j] = (mcr__mget_ctx_t){.cmd = cmd,
                             .keys = keys,
                             .key_lens = key_lens,
                             .next = p.next,
                             .items = items,
                             .value_off = value_off,
                             .value_max = c->opts.item_size_max,
                             .first = p.first[j]};
    size_t start = w->len;
    if (mcr__text_mget_request(w, &g[j], ttl))
      return mcr__set_error(c, MCR_ENOMEM, "out of memory");
    p.iov[j] = IOV((void*)start, w->len - start);
  }
  for (size_t j = 0; j < ng; j++) {
    p.iov[j].iov_base = w->data + (size_t)p.iov[j].iov_base;
    t[j] = (mcr__task_t){.node = c->nodes[p.gnode[j]],
                         .iov = &p.iov[j],
                         .iovcnt = 1,
                         .decode = mcr__text_mget_decode,
                         .ctx = &g[j],
                         .repeatable = true};
  }
  mcr__run(c, t, ng);

  /* All reads are done: buffers no longer move, so offsets become
   * pointers, then values are decoded. */
  size_t found = 0;
  for (size_t j = 0; j < ng; j++) {
    mcr__node_t* node = t[j].node;
    int node_rc = t[j].rc; /* every key of a failed node carries its error */
    const char* rbuf = node->conn.rbuf;
    for (size_t i = p.first[j]; i != SIZE_MAX; i = p.next[i]) {
      mcr_item_t* it = &items[i];
      int st = node_rc ? node_rc : it->status;
      if (st == MCR_OK)
        it->value = rbuf + value_off[i];
      mcr__hs_op(node, MCR__OP_GET, st);
      st = item_result(c, it, st); /* a miss or an error: *it cleared */
      it->status = st;
      found += st == MCR_OK;
    }
  }
  if (hits)
    *hits = found;
  return 0;
}

int mcr_client_get_multi(mcr_client_t* c, size_t n, const char* const* keys,
                         const size_t* key_lens, mcr_item_t* items,
                         size_t* hits) {
  return retrieve(c, MCR__GET, 0, n, keys, key_lens, items, hits);
}

int mcr_client_gets_multi(mcr_client_t* c, size_t n, const char* const* keys,
                          const size_t* key_lens, mcr_item_t* items,
                          size_t* hits) {
  return retrieve(c, MCR__GETS, 0, n, keys, key_lens, items, hits);
}

/* ------------------------------------------------------------ batches */

/* statuses[i] of a command whose reply has not been read. */
#define UNANSWERED INT32_MIN

/* set (is_set) or delete of n keys: one segment of commands per node, all
 * built before any is sent (an encoding error or too big a value sends
 * nothing), then replies read as they arrive. */
static int batch(mcr_client_t* c, bool is_set, size_t n,
                 const char* const* keys, const size_t* key_lens,
                 const void* const* values, const size_t* value_lens,
                 uint32_t flags, int64_t ttl, int* statuses, unsigned cflags,
                 size_t* ok) {
  if (!c || (n && (!keys || !key_lens || !statuses ||
                   (is_set && (!values || !value_lens)))))
    return MCR_EINVAL;
  mcr__call_start(c);
  if (ok)
    *ok = 0;
  bool noreply;
  int rc = call_noreply(c, cflags, &noreply);
  if (rc)
    return rc;
  if (is_set && (rc = mcr__check_ttl(c, ttl)))
    return rc;
  if ((flags & MCR_FLAG_ZSTD) && !c->opts.raw_flags)
    return mcr__set_error(c, MCR_EINVAL,
                          "flag bit 0x100 is reserved for compression");
  for (size_t i = 0; i < n; i++) {
    if ((rc = mcr__check_key(c, keys[i], key_lens[i])))
      return rc;
    if (is_set && !values[i] && value_lens[i])
      return mcr__set_error(c, MCR_EINVAL, "value %zu is NULL", i);
  }
  if (n == 0)
    return 0;
  mcr__plan_t p;
  if ((rc = mcr__plan(c, n, keys, key_lens, sizeof(mcr__batch_ctx_t), &p)))
    return rc;
  size_t ng = p.ngroups;
  mcr__task_t* t = p.task;
  mcr__batch_ctx_t* b = p.ctx;

  /* Every request first: a value that fails to encode or is too big stops
   * the call before anything is sent. */
  mcr_buf_t* w = &c->wbuf;
  w->len = 0;
  for (size_t j = 0; j < ng; j++) {
    size_t start = w->len;
    for (size_t i = p.first[j]; i != SIZE_MAX; i = p.next[i]) {
      const void* data = NULL;
      size_t dlen = 0;
      uint32_t f = flags;
      if (is_set) {
        rc = mcr__encode_value(c, values[i] ? values[i] : "", value_lens[i], &f,
                               &data, &dlen);
        if (rc)
          return rc;
        if (dlen > c->opts.item_size_max)
          return mcr__set_error(c, MCR_ETOOBIG,
                                "value %zu: %zu bytes exceed item_size_max %zu",
                                i, dlen, c->opts.item_size_max);
      }
      char nums[MCR__TEXT_NUMS];
      struct iovec piece[5];
      int cnt = is_set
                    ? mcr__text_store_request(piece, nums, MCR__SET, keys[i],
                                              key_lens[i], f, ttl, 0, data,
                                              dlen, noreply)
                    : mcr__text_keyed_request(piece, nums, MCR__DELETE, keys[i],
                                              key_lens[i], 0, 0, noreply);
      for (int k = 0; k < cnt; k++)
        if (mcr_buf_append(w, piece[k].iov_base, piece[k].iov_len))
          return mcr__set_error(c, MCR_ENOMEM, "out of memory");
    }
    p.iov[j] = IOV((void*)start, w->len - start);
  }
  for (size_t i = 0; i < n; i++)
    statuses[i] = UNANSWERED;
  for (size_t j = 0; j < ng; j++) {
    p.iov[j].iov_base = w->data + (size_t)p.iov[j].iov_base;
    b[j] = (mcr__batch_ctx_t){
        .next = p.next, .statuses = statuses, .cursor = p.first[j]};
    t[j] = (mcr__task_t){.node = c->nodes[p.gnode[j]],
                         .iov = &p.iov[j],
                         .iovcnt = 1,
                         .decode = noreply ? NULL : mcr__text_batch_decode,
                         .ctx = &b[j],
                         .repeatable = is_set && !noreply};
  }
  mcr__run(c, t, ng);

  size_t good = 0;
  for (size_t j = 0; j < ng; j++) {
    for (size_t i = p.first[j]; i != SIZE_MAX; i = p.next[i]) {
      if (statuses[i] == UNANSWERED)
        statuses[i] = t[j].rc ? t[j].rc : MCR_OK; /* noreply */
      mcr__hs_op(t[j].node, is_set ? MCR__OP_SET : MCR__OP_DELETE, statuses[i]);
      statuses[i] = mcr__soften(c, statuses[i], false);
      good += statuses[i] == MCR_OK;
    }
  }
  if (ok)
    *ok = good;
  return 0;
}

int mcr_client_set_multi(mcr_client_t* c, size_t n, const char* const* keys,
                         const size_t* key_lens, const void* const* values,
                         const size_t* value_lens, uint32_t flags, int64_t ttl,
                         int* statuses, unsigned cflags, size_t* stored) {
  return batch(c, true, n, keys, key_lens, values, value_lens, flags, ttl,
               statuses, cflags, stored);
}

int mcr_client_delete_multi(mcr_client_t* c, size_t n, const char* const* keys,
                            const size_t* key_lens, int* statuses,
                            unsigned cflags, size_t* deleted) {
  return batch(c, false, n, keys, key_lens, NULL, NULL, 0, 0, statuses, cflags,
               deleted);
}

/* ------------------------------------------------------------ keyed */

static int keyed(mcr_client_t* c, mcr__keyed_t cmd, const char* key,
                 size_t key_len, uint64_t uarg, int64_t iarg, uint64_t* number,
                 unsigned cflags) {
  bool noreply;
  int rc = begin_write(c, key, key_len, cflags, &noreply);
  if (rc)
    return rc;
  if (cmd == MCR__TOUCH && (rc = mcr__check_ttl(c, iarg)))
    return rc;
  mcr__node_t* n = mcr__route(c, key, key_len);
  if (MCR__UNLIKELY(!n))
    return c->node_err;
  static const mcr__reply_kind_t kinds[] = {[MCR__DELETE] = MCR__R_DELETE,
                                            [MCR__TOUCH] = MCR__R_TOUCH,
                                            [MCR__INCR] = MCR__R_ARITH,
                                            [MCR__DECR] = MCR__R_ARITH};
  char nums[MCR__TEXT_NUMS];
  struct iovec iov[3];
  int cnt = mcr__text_keyed_request(iov, nums, cmd, key, key_len, uarg, iarg,
                                    noreply);
  mcr__line_ctx_t x = {.kind = kinds[cmd]};
  /* Only touch gives the same answer twice (a second delete says
   * NOT_FOUND; incr and decr count twice). */
  rc = run_line(c, n, iov, cnt, noreply, cmd == MCR__TOUCH, &x);
  if (rc == MCR_OK && number && !noreply && x.kind == MCR__R_ARITH)
    *number = x.number;
  mcr__hs_op(n, cmd == MCR__DELETE ? MCR__OP_DELETE : MCR__OP_OTHER, rc);
  return mcr__soften(c, rc, false);
}

int mcr_client_delete(mcr_client_t* c, const char* key, size_t key_len,
                      unsigned cflags) {
  return keyed(c, MCR__DELETE, key, key_len, 0, 0, NULL, cflags);
}

int mcr_client_incr(mcr_client_t* c, const char* key, size_t key_len,
                    uint64_t delta, uint64_t* value, unsigned cflags) {
  return keyed(c, MCR__INCR, key, key_len, delta, 0, value, cflags);
}

int mcr_client_decr(mcr_client_t* c, const char* key, size_t key_len,
                    uint64_t delta, uint64_t* value, unsigned cflags) {
  return keyed(c, MCR__DECR, key, key_len, delta, 0, value, cflags);
}

int mcr_client_touch(mcr_client_t* c, const char* key, size_t key_len,
                     int64_t ttl, unsigned cflags) {
  return keyed(c, MCR__TOUCH, key, key_len, 0, ttl, NULL, cflags);
}

/* ------------------------------------------------------------ per node */

int mcr_client_stats_node(mcr_client_t* c, size_t node, const char* arg,
                          const mcr_stat_t** stats, size_t* count) {
  if (!c || !stats || !count)
    return MCR_EINVAL;
  mcr__call_start(c);
  *count = 0;
  int rc = node_arg(c, node);
  if (rc)
    return rc;
  if (arg) {
    /* One or two words of printable ASCII ("detail on"). */
    size_t len = strlen(arg);
    bool ok = len > 0 && len <= 64 && arg[0] != ' ' && arg[len - 1] != ' ';
    for (size_t i = 0; ok && i < len; i++)
      ok = arg[i] >= 0x20 && arg[i] < 0x7f &&
           !(arg[i] == ' ' && i && arg[i - 1] == ' ');
    if (!ok)
      return mcr__set_error(c, MCR_EINVAL, "bad stats argument");
  }
  mcr__node_t* n = mcr__client_node(c, node);
  if (!n)
    return c->node_err;
  struct iovec iov[4];
  int cnt = mcr__text_stats_request(iov, arg);
  mcr__stats_ctx_t x = {0};
  rc = mcr__call(c, n, iov, cnt, mcr__text_stats_decode, &x, true);
  if (!rc && x.n > c->stats_cap) {
    mcr_stat_t* s = mcr__realloc(c->stats, x.n * sizeof(*s));
    if (!s)
      rc = mcr__set_error(c, MCR_ENOMEM, "out of memory");
    else {
      c->stats = s;
      c->stats_cap = x.n;
    }
  }
  for (size_t i = 0; !rc && i < x.n; i++) {
    const mcr__stat_ent_t* e = &x.ent[i];
    char* mem = mcr__arena_alloc(&c->arena, e->name_len + e->value_len + 2);
    if (!mem) {
      rc = mcr__set_error(c, MCR_ENOMEM, "out of memory");
      break;
    }
    memcpy(mem, n->conn.rbuf + e->name_off, e->name_len);
    mem[e->name_len] = '\0';
    memcpy(mem + e->name_len + 1, n->conn.rbuf + e->value_off, e->value_len);
    mem[e->name_len + 1 + e->value_len] = '\0';
    c->stats[i] = (mcr_stat_t){.name = mem, .value = mem + e->name_len + 1};
  }
  mcr__free(x.ent);
  if (rc)
    return rc;
  *stats = c->stats;
  *count = x.n;
  return 0;
}

int mcr_client_version(mcr_client_t* c, size_t node, const char** version) {
  if (!c || !version)
    return MCR_EINVAL;
  mcr__call_start(c);
  int rc = node_arg(c, node);
  if (rc)
    return rc;
  mcr__node_t* n = mcr__client_node(c, node);
  if (!n)
    return c->node_err;
  struct iovec iov = IOV("version\r\n", 9);
  mcr__line_ctx_t x = {.kind = MCR__R_VERSION};
  if ((rc = run_line(c, n, &iov, 1, false, true, &x)) != MCR_OK)
    return rc;
  char* v = mcr__arena_alloc(&c->arena, x.text_len + 1);
  if (!v)
    return mcr__set_error(c, MCR_ENOMEM, "out of memory");
  memcpy(v, n->conn.rbuf + x.text_off, x.text_len);
  v[x.text_len] = '\0';
  *version = v;
  return MCR_OK;
}

/* Sends "<word>[ <number>][ noreply]\r\n" to every node; returns MCR_OK or
 * the first error, after trying every node. flush_all, verbosity and
 * cache_memlimit do the same thing twice: repeatable. */
static int all_nodes(mcr_client_t* c, const char* word, bool with_num,
                     uint64_t num, unsigned cflags) {
  if (!c)
    return MCR_EINVAL;
  mcr__call_start(c);
  bool noreply;
  int rc = call_noreply(c, cflags, &noreply);
  if (rc)
    return rc;
  char line[64];
  size_t len = strlen(word);
  memcpy(line, word, len);
  if (with_num) {
    line[len++] = ' ';
    len += mcr__u64_to_dec(line + len, num);
  }
  if (noreply) {
    memcpy(line + len, " noreply", 8);
    len += 8;
  }
  line[len++] = '\r';
  line[len++] = '\n';
  int first = 0;
  char first_err[sizeof c->err] = "";
  for (size_t i = 0; i < c->nnodes; i++) {
    struct iovec iov = IOV(line, len);
    mcr__line_ctx_t x = {.kind = MCR__R_OK};
    mcr__node_t* n = mcr__client_node(c, i);
    rc = n ? run_line(c, n, &iov, 1, noreply, true, &x) : c->node_err;
    if (rc < 0 && !first) {
      first = rc;
      memcpy(first_err, c->err, sizeof first_err);
    }
  }
  if (first)
    memcpy(c->err, first_err, sizeof c->err);
  return first;
}

int mcr_client_flush_all(mcr_client_t* c, int64_t delay, unsigned cflags) {
  if (c && (delay < 0 || delay > INT32_MAX))
    return mcr__set_error(c, MCR_ERANGE, "flush_all delay out of range");
  return all_nodes(c, "flush_all", delay > 0, (uint64_t)delay, cflags);
}

int mcr_client_verbosity(mcr_client_t* c, unsigned level, unsigned cflags) {
  return all_nodes(c, "verbosity", true, level, cflags);
}

int mcr_client_cache_memlimit(mcr_client_t* c, uint64_t megabytes,
                              unsigned cflags) {
  if (c && (megabytes == 0 || megabytes > INT32_MAX))
    return mcr__set_error(c, MCR_ERANGE, "cache_memlimit out of range");
  return all_nodes(c, "cache_memlimit", true, megabytes, cflags);
}

int mcr_client_quit(mcr_client_t* c) {
  if (!c)
    return MCR_EINVAL;
  mcr__call_start(c);
  for (size_t i = 0; i < c->nlive; i++) {
    mcr__conn_t* k = &c->live[i]->conn;
    /* A connection inherited across fork is the parent's: close our copy
     * without a word on the wire. */
    if (k->fd >= 0 && k->fork_gen == mcr__fork_gen) {
      struct iovec iov = IOV("quit\r\n", 6);
      k->deadline = mcr__now_ns() + c->io_ns;
      (void)mcr__conn_send(k, &iov, 1);
    }
    mcr__conn_close(k);
  }
  c->err[0] = '\0';
  return 0;
}
