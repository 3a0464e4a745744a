/* client.c — the public client API: options, validation, routing, results.
 *
 * Every public call starts by resetting the per-call state (last error,
 * result arena), then validates all of its arguments before a byte is sent:
 * keys, value sizes against item_size_max, TTL range, flags. Only then is the
 * key routed to its node (mcr__route, the seam where the Ketama ring plugs
 * in) and the protocol module runs the call. Results pass through
 * mcr__soften, which implements ignore_errors: network, timeout and server
 * failures become misses for reads and MCR_NOT_STORED for writes, counted in
 * the client's stats; validation errors always reach the caller.
 *
 * A client handle is single-threaded: it owns its connections, buffers and
 * arena without locks. Threads use one handle each.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define TIMEOUT_MAX_MS (3600 * 1000)
#define ITEM_SIZE_MAX_LIMIT (1u << 30)

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
}

int mcr__set_error(mcr_client_t* c, int err, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(c->err, sizeof c->err, fmt, ap);
  va_end(ap);
  return err;
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
  else if (o->distribution != MCR_DIST_KETAMA &&
           o->distribution != MCR_DIST_KETAMA_LIBMEMCACHED &&
           o->distribution != MCR_DIST_XXH3)
    what = "unknown distribution";
  if (!what)
    return 0;
  snprintf(err, errlen, "%s", what);
  return MCR_EINVAL;
}

int mcr_client_new_err(mcr_client_t** out, const mcr_client_opts_t* opts,
                       char* errbuf, size_t errlen) {
  char err[512] = "";
  int rc = MCR_EINVAL;
  mcr_client_t* c = NULL;
  if (!out || !opts) {
    snprintf(err, sizeof err, "NULL argument");
    goto fail;
  }
  *out = NULL;
  if ((rc = opts_check(opts, err, sizeof err)))
    goto fail;
  if (opts->ring_dir && opts->servers) {
    rc = MCR_EINVAL;
    snprintf(err, sizeof err, "set servers or ring_dir, not both");
    goto fail;
  }
  mcr__server_t* srv = NULL;
  size_t n = 0;
  if (!opts->ring_dir &&
      (rc = mcr__servers_parse(opts->servers, &srv, &n, err, sizeof err)))
    goto fail;

  rc = MCR_ENOMEM;
  snprintf(err, sizeof err, "out of memory");
  c = mcr__calloc(1, sizeof(*c));
  if (c && n)
    c->nodes = mcr__calloc(n, sizeof(*c->nodes));
  if (!c || (n && !c->nodes)) {
    mcr__servers_free(srv, n);
    goto fail;
  }
  c->opts = *opts;
  c->opts.servers = NULL;
  c->opts.ring_dir = NULL;
  for (size_t i = 0; i < n; i++) {
    c->nodes[i].srv = srv[i];
    c->nodes[i].conn.fd = -1;
  }
  mcr__free(srv); /* the strings now belong to the nodes */
  c->nnodes = n;
  if ((rc = mcr__router_init(c, opts->ring_dir))) {
    snprintf(err, sizeof err, "%s", c->err);
    goto fail;
  }
  mcr__fork_guard_init();
  *out = c;
  return 0;

fail:
  mcr_client_free(c);
  if (errbuf && errlen)
    snprintf(errbuf, errlen, "%s", err);
  return rc;
}

int mcr_client_new(mcr_client_t** out, const mcr_client_opts_t* opts) {
  return mcr_client_new_err(out, opts, NULL, 0);
}

void mcr_client_free(mcr_client_t* c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nnodes; i++) {
    mcr__conn_close(&c->nodes[i]);
    mcr__free(c->nodes[i].conn.rbuf);
    mcr__free(c->nodes[i].srv.host);
    mcr__free(c->nodes[i].srv.name);
  }
  mcr__hs_close(c);
  mcr__router_free(c);
  mcr__free(c->nodes);
  mcr__buf_free(&c->wbuf);
  mcr__buf_free(&c->scratch);
  mcr__arena_free(&c->arena);
  mcr__codec_free(c);
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
  return c && i < c->nnodes ? c->nodes[i].srv.name : NULL;
}

void mcr_client_stats(const mcr_client_t* c, mcr_client_stats_t* out) {
  if (c && out)
    *out = c->counters;
}

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

/* ------------------------------------------------------------ checks */

/* Resets per-call state. Every public call that talks to a server starts
 * here, which is what keeps returned memory valid until the next call. */
void mcr__call_start(mcr_client_t* c) {
  c->err[0] = '\0';
  mcr__arena_reset(&c->arena);
  if (c->router)
    mcr__router_refresh(c);
  if (MCR__UNLIKELY(c->hs != NULL))
    mcr__hs_check_fork(c);
}

/* The message for a key mcr__check_key refused (or 0 for a valid one). */
int mcr__key_error(mcr_client_t* c, const char* key, size_t key_len) {
  if (mcr_key_check(key, key_len) == 0)
    return 0;
  if (!key || key_len == 0)
    return mcr__set_error(c, MCR_EKEY, "empty key");
  if (key_len > MCR__KEY_MAX)
    return mcr__set_error(c, MCR_EKEY, "key is %zu bytes, the limit is 250",
                          key_len);
  size_t i = 0;
  while ((unsigned char)key[i] > 0x20 && key[i] != 0x7f)
    i++;
  return mcr__set_error(c, MCR_EKEY,
                        "key byte %zu is 0x%02x (whitespace or control)", i,
                        (unsigned char)key[i]);
}

int mcr__check_ttl(mcr_client_t* c, int64_t ttl) {
  if (ttl >= INT32_MIN && ttl <= INT32_MAX)
    return 0;
  return mcr__set_error(c, MCR_ERANGE, "ttl %lld out of range", (long long)ttl);
}

/* Resolves the effective noreply of a call. Returns 0 or MCR_EINVAL. */
int mcr__noreply(mcr_client_t* c, unsigned cflags, bool* noreply) {
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

/* ------------------------------------------------------------ storage */

/* The start every one-key write shares: a live handle, the per-call reset,
 * the call flags and the key. Returns 0 or the error. */
static int begin_write(mcr_client_t* c, const char* key, size_t key_len,
                       unsigned cflags, bool* noreply) {
  if (MCR__UNLIKELY(!c))
    return MCR_EINVAL;
  mcr__call_start(c);
  int rc = mcr__noreply(c, cflags, noreply);
  if (!rc)
    rc = mcr__check_key(c, key, key_len);
  return rc;
}

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
  if (MCR__UNLIKELY(flags & MCR_FLAG_ZSTD))
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
  rc = MCR__RETRY_STALE(mcr__text_store(c, n, cmd, key, key_len, flags, ttl,
                                        cas, data, len, noreply));
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

static int retrieve(mcr_client_t* c, mcr__get_t cmd, int64_t ttl, size_t n,
                    const char* const* keys, const size_t* key_lens,
                    mcr_item_t* items) {
  if (MCR__UNLIKELY(!c || (n && (!keys || !key_lens || !items))))
    return MCR_EINVAL;
  mcr__call_start(c);
  int rc;
  if ((cmd == MCR__GAT || cmd == MCR__GATS) && (rc = mcr__check_ttl(c, ttl)))
    return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = mcr__check_key(c, keys[i], key_lens[i])))
      return rc;
  if (n == 0)
    return 0;
  return mcr__text_retrieve(c, cmd, ttl, n, keys, key_lens, items);
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
  if (MCR__UNLIKELY(req_len == 0)) {
    rc = mcr__key_error(c, key, key_len); /* says what is wrong */
    return rc ? rc : MCR_EKEY;
  }
  mcr__node_t* n = mcr__route(c, key, key_len);
  rc = MCR__RETRY_STALE(
      mcr__text_get_one(c, n, cmd, req, req_len, key, key_len, item));
  mcr__hs_op(n, MCR__OP_GET, rc);
  if (MCR__LIKELY(rc == MCR_OK)) {
    if (MCR__UNLIKELY((item->flags & MCR_FLAG_ZSTD) || c->opts.serde))
      rc = mcr__decode_item(c, item);
  } else if (rc < 0) {
    rc = mcr__soften(c, rc, true);
  }
  if (rc != MCR_OK)
    *item = (mcr_item_t){.status = rc};
  return rc;
}

int mcr_client_get(mcr_client_t* c, const char* key, size_t key_len,
                   mcr_item_t* item) {
  return retrieve_one(c, MCR__GET, 0, key, key_len, item);
}

int mcr_client_gets(mcr_client_t* c, const char* key, size_t key_len,
                    mcr_item_t* item) {
  return retrieve_one(c, MCR__GETS, 0, key, key_len, item);
}

int mcr_client_gat(mcr_client_t* c, int64_t ttl, const char* key,
                   size_t key_len, mcr_item_t* item) {
  return retrieve_one(c, MCR__GAT, ttl, key, key_len, item);
}

int mcr_client_gats(mcr_client_t* c, int64_t ttl, const char* key,
                    size_t key_len, mcr_item_t* item) {
  return retrieve_one(c, MCR__GATS, ttl, key, key_len, item);
}

int mcr_client_get_multi(mcr_client_t* c, size_t n, const char* const* keys,
                         const size_t* key_lens, mcr_item_t* items) {
  return retrieve(c, MCR__GET, 0, n, keys, key_lens, items);
}

int mcr_client_gets_multi(mcr_client_t* c, size_t n, const char* const* keys,
                          const size_t* key_lens, mcr_item_t* items) {
  return retrieve(c, MCR__GETS, 0, n, keys, key_lens, items);
}

/* ------------------------------------------------------------ batches */

static int batch(mcr_client_t* c, bool is_set, size_t n,
                 const char* const* keys, const size_t* key_lens,
                 const void* const* values, const size_t* value_lens,
                 uint32_t flags, int64_t ttl, int* statuses, unsigned cflags) {
  if (!c || (n && (!keys || !key_lens || !statuses ||
                   (is_set && (!values || !value_lens)))))
    return MCR_EINVAL;
  mcr__call_start(c);
  bool noreply;
  int rc = mcr__noreply(c, cflags, &noreply);
  if (rc)
    return rc;
  if (is_set && (rc = mcr__check_ttl(c, ttl)))
    return rc;
  if (flags & MCR_FLAG_ZSTD)
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
  return mcr__text_batch(c, is_set, n, keys, key_lens, values, value_lens,
                         flags, ttl, noreply, statuses);
}

int mcr_client_set_multi(mcr_client_t* c, size_t n, const char* const* keys,
                         const size_t* key_lens, const void* const* values,
                         const size_t* value_lens, uint32_t flags, int64_t ttl,
                         int* statuses, unsigned cflags) {
  return batch(c, true, n, keys, key_lens, values, value_lens, flags, ttl,
               statuses, cflags);
}

int mcr_client_delete_multi(mcr_client_t* c, size_t n, const char* const* keys,
                            const size_t* key_lens, int* statuses,
                            unsigned cflags) {
  return batch(c, false, n, keys, key_lens, NULL, NULL, 0, 0, statuses, cflags);
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
  rc = MCR__RETRY_STALE(
      mcr__text_keyed(c, n, cmd, key, key_len, uarg, iarg, noreply, number));
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
                          const mcr_stat_t** stats) {
  if (!c || !stats)
    return MCR_EINVAL;
  mcr__call_start(c);
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
  return MCR__RETRY_STALE(mcr__text_stats(c, &c->nodes[node], arg, stats));
}

int mcr_client_version(mcr_client_t* c, size_t node, const char** version) {
  if (!c || !version)
    return MCR_EINVAL;
  mcr__call_start(c);
  int rc = node_arg(c, node);
  if (rc)
    return rc;
  return MCR__RETRY_STALE(mcr__text_version(c, &c->nodes[node], version));
}

/* Sends "<word>[ <number>][ noreply]\r\n" to every node; returns MCR_OK or
 * the first error, after trying every node. */
static int all_nodes(mcr_client_t* c, const char* word, bool with_num,
                     uint64_t num, unsigned cflags) {
  if (!c)
    return MCR_EINVAL;
  mcr__call_start(c);
  bool noreply;
  int rc = mcr__noreply(c, cflags, &noreply);
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
    rc =
        MCR__RETRY_STALE(mcr__text_simple(c, &c->nodes[i], line, len, noreply));
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
  for (size_t i = 0; i < c->nnodes; i++) {
    mcr__node_t* n = &c->nodes[i];
    /* A connection inherited across fork is the parent's: close our copy
     * without a word on the wire. */
    if (n->conn.fd >= 0 && n->conn.fork_gen == mcr__fork_gen) {
      struct iovec iov = {.iov_base = (void*)"quit\r\n", .iov_len = 6};
      n->conn.deadline = mcr__now_ms() + c->opts.io_timeout_ms;
      (void)mcr__conn_send(c, n, &iov, 1);
    }
    mcr__conn_close(n);
  }
  c->err[0] = '\0';
  return 0;
}
