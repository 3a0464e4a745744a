/* proto_text.c — memcached's classic text protocol, both directions.
 *
 * Requests are assembled from pieces in an iovec (command word, key,
 * numbers written by hand, value, "\r\n") and sent with one sendmsg: no
 * snprintf on the hot path and no copy of the value. The one-key get, the
 * most common call, builds its short line in one buffer instead (the key is
 * copied while it is checked) and checks a reply that arrived whole in one
 * pass (fast_get_reply) before it falls back to the general parser below,
 * which decides everything else. Replies are parsed in place: a line is
 * split into (offset, length) tokens by mcr__tokenize, and every number
 * goes through an overflow-checked parser with a length limit, never bare
 * strtoul. Transport status and protocol outcome stay apart:
 * STORED / NOT_STORED / EXISTS / NOT_FOUND / END are results (mcr_status_t),
 * while a reply that fits no rule is a protocol error that closes the
 * connection. ERROR / CLIENT_ERROR / SERVER_ERROR are complete replies: the
 * connection stays in sync and their text is kept as the last error.
 *
 * Retrieval takes any number of keys: keys are grouped per node, every
 * node's request is sent before any reply is read, and each VALUE line is
 * matched to the next key the node was asked for (memcached answers hits in
 * request order and skips misses), so results come back in the caller's
 * order with a status per key and one failing node costs only its keys.
 */
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------ numbers */

size_t mcr__u64_to_dec(char* p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    p[i] = tmp[n - 1 - i];
  return n;
}

size_t mcr__i64_to_dec(char* p, int64_t v) {
  if (v >= 0)
    return mcr__u64_to_dec(p, (uint64_t)v);
  p[0] = '-';
  return 1 + mcr__u64_to_dec(p + 1, (uint64_t)0 - (uint64_t)v);
}

int mcr__dec_to_u64(const char* p, size_t len, uint64_t* out) {
  if (len == 0 || len > 20)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned d = (unsigned)(unsigned char)p[i] - '0';
    if (d > 9)
      return -1;
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int mcr__dec_to_i64(const char* p, size_t len, int64_t* out) {
  bool neg = len > 0 && p[0] == '-';
  uint64_t v;
  if (mcr__dec_to_u64(p + neg, len - neg, &v))
    return -1;
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1)
      return -1;
    *out = (int64_t)(0 - v);
  } else {
    if (v > INT64_MAX)
      return -1;
    *out = (int64_t)v;
  }
  return 0;
}

int mcr__tokenize(const char* line, size_t len, mcr__tok_t* tok, int max) {
  if (len > UINT16_MAX)
    return -1;
  int n = 0;
  size_t i = 0;
  while (i < len) {
    const char* sp = memchr(line + i, ' ', len - i);
    size_t end = sp ? (size_t)(sp - line) : len;
    if (end == i || n == max)
      return -1; /* empty token, or too many */
    tok[n].off = (uint16_t)i;
    tok[n].len = (uint16_t)(end - i);
    n++;
    i = end + 1;
    if (sp && i == len)
      return -1; /* trailing space */
  }
  return n;
}

#define LINE_IS(line, len, lit) \
  ((len) == sizeof(lit) - 1 && memcmp((line), lit, sizeof(lit) - 1) == 0)

int mcr__error_line(const char* line, size_t len) {
  if (len >= 5 && memcmp(line, "ERROR", 5) == 0 && (len == 5 || line[5] == ' '))
    return MCR_ESERVERCMD;
  if (len >= 12 && memcmp(line, "CLIENT_ERROR", 12) == 0)
    return MCR_ECLIENTERR;
  if (len >= 12 && memcmp(line, "SERVER_ERROR", 12) == 0)
    return MCR_ESERVERERR;
  return 0;
}

int mcr__unexpected_line(mcr_client_t* c, mcr__node_t* n, size_t off,
                         size_t len) {
  const char* line = n->conn.rbuf + off;
  int err = mcr__error_line(line, len);
  if (err) {
    /* A server error is a complete reply; the stream is still in sync. */
    return mcr__set_error(c, err, "%s: %.*s", n->srv.name,
                          (int)(len > 300 ? 300 : len), line);
  }
  mcr__conn_close(n);
  return mcr__set_error(c, MCR_EPROTO, "%s: unexpected reply \"%.*s\"",
                        n->srv.name, (int)(len > 100 ? 100 : len), line);
}

/* ------------------------------------------------------------ requests */

static const char crlf[2] = {'\r', '\n'};
static const char noreply_tail[10] = {' ', 'n', 'o', 'r',  'e',
                                      'p', 'l', 'y', '\r', '\n'};

#define IOV(p, n) ((struct iovec){.iov_base = (void*)(p), .iov_len = (n)})

/* One request/reply exchange on node n: begin the call, send iov, and
 * unless noreply read the one reply line (its offset and length). Returns
 * 0 or an error. */
static int exchange(mcr_client_t* c, mcr__node_t* n, struct iovec* iov,
                    int iovcnt, bool noreply, size_t* off, size_t* len) {
  int rc = mcr__conn_begin(c, n);
  if (!rc)
    rc = mcr__conn_send(c, n, iov, iovcnt);
  if (!rc && !noreply)
    rc = mcr__conn_line(c, n, off, len);
  return rc;
}

static const struct {
  const char* word;
  size_t len;
} store_words[] = {
    [MCR__SET] = {"set ", 4},         [MCR__ADD] = {"add ", 4},
    [MCR__REPLACE] = {"replace ", 8}, [MCR__APPEND] = {"append ", 7},
    [MCR__PREPEND] = {"prepend ", 8}, [MCR__CAS] = {"cas ", 4},
};

int mcr__text_store(mcr_client_t* c, mcr__node_t* n, mcr__store_t cmd,
                    const char* key, size_t key_len, uint32_t flags,
                    int64_t ttl, uint64_t cas, const void* data,
                    size_t data_len, bool noreply) {
  /* " <flags> <ttl> <bytes>[ <cas>][ noreply]\r\n" */
  char nums[96];
  char* p = nums;
  *p++ = ' ';
  p += mcr__u64_to_dec(p, flags);
  *p++ = ' ';
  p += mcr__i64_to_dec(p, ttl);
  *p++ = ' ';
  p += mcr__u64_to_dec(p, data_len);
  if (cmd == MCR__CAS) {
    *p++ = ' ';
    p += mcr__u64_to_dec(p, cas);
  }
  if (noreply) {
    memcpy(p, noreply_tail, sizeof noreply_tail);
    p += sizeof noreply_tail;
  } else {
    *p++ = '\r';
    *p++ = '\n';
  }
  struct iovec iov[5] = {
      IOV(store_words[cmd].word, store_words[cmd].len),
      IOV(key, key_len),
      IOV(nums, (size_t)(p - nums)),
      IOV(data, data_len),
      IOV(crlf, 2),
  };
  size_t off, len;
  int rc = exchange(c, n, iov, 5, noreply, &off, &len);
  if (rc || noreply)
    return rc;
  const char* line = n->conn.rbuf + off;
  if (MCR__LIKELY(LINE_IS(line, len, "STORED")))
    return MCR_OK;
  if (LINE_IS(line, len, "NOT_STORED"))
    return MCR_NOT_STORED;
  if (LINE_IS(line, len, "EXISTS"))
    return MCR_EXISTS;
  if (LINE_IS(line, len, "NOT_FOUND"))
    return MCR_NOT_FOUND;
  return mcr__unexpected_line(c, n, off, len);
}

/* Sends "<verb> <key>[ <arg>][ noreply]\r\n" and reads the one-line reply
 * for delete, touch, incr and decr. */
int mcr__text_keyed(mcr_client_t* c, mcr__node_t* n, mcr__keyed_t cmd,
                    const char* key, size_t key_len, uint64_t uarg,
                    int64_t iarg, bool noreply, uint64_t* number) {
  static const struct {
    const char* word;
    size_t len;
  } words[] = {
      [MCR__DELETE] = {"delete ", 7},
      [MCR__TOUCH] = {"touch ", 6},
      [MCR__INCR] = {"incr ", 5},
      [MCR__DECR] = {"decr ", 5},
  };
  char tail[40];
  char* p = tail;
  if (cmd == MCR__TOUCH) {
    *p++ = ' ';
    p += mcr__i64_to_dec(p, iarg);
  } else if (cmd == MCR__INCR || cmd == MCR__DECR) {
    *p++ = ' ';
    p += mcr__u64_to_dec(p, uarg);
  }
  if (noreply) {
    memcpy(p, noreply_tail, sizeof noreply_tail);
    p += sizeof noreply_tail;
  } else {
    *p++ = '\r';
    *p++ = '\n';
  }
  struct iovec iov[3] = {IOV(words[cmd].word, words[cmd].len),
                         IOV(key, key_len), IOV(tail, (size_t)(p - tail))};
  size_t off, len;
  int rc = exchange(c, n, iov, 3, noreply, &off, &len);
  if (rc || noreply)
    return rc;
  const char* line = n->conn.rbuf + off;
  if (LINE_IS(line, len, "NOT_FOUND"))
    return MCR_NOT_FOUND;
  switch (cmd) {
    case MCR__DELETE:
      if (LINE_IS(line, len, "DELETED"))
        return MCR_OK;
      break;
    case MCR__TOUCH:
      if (LINE_IS(line, len, "TOUCHED"))
        return MCR_OK;
      break;
    case MCR__INCR:
    case MCR__DECR: {
      uint64_t v;
      if (len > 0 && line[0] >= '0' && line[0] <= '9') {
        if (mcr__dec_to_u64(line, len, &v))
          return mcr__conn_fail(c, n, MCR_EPROTO, "bad number in reply");
        if (number)
          *number = v;
        return MCR_OK;
      }
      break;
    }
  }
  return mcr__unexpected_line(c, n, off, len);
}

/* Sends a complete request line and reads a one-line reply; "OK" is
 * MCR_OK. Used by flush_all, verbosity and cache_memlimit. */
int mcr__text_simple(mcr_client_t* c, mcr__node_t* n, const char* req,
                     size_t req_len, bool noreply) {
  struct iovec iov[1] = {IOV(req, req_len)};
  size_t off, len;
  int rc = exchange(c, n, iov, 1, noreply, &off, &len);
  if (rc || noreply)
    return rc;
  if (LINE_IS(n->conn.rbuf + off, len, "OK"))
    return MCR_OK;
  return mcr__unexpected_line(c, n, off, len);
}

int mcr__text_version(mcr_client_t* c, mcr__node_t* n, const char** version) {
  struct iovec iov[1] = {IOV("version\r\n", 9)};
  size_t off, len;
  int rc = exchange(c, n, iov, 1, false, &off, &len);
  if (rc)
    return rc;
  const char* line = n->conn.rbuf + off;
  if (len < 8 || memcmp(line, "VERSION ", 8) != 0)
    return mcr__unexpected_line(c, n, off, len);
  char* v = mcr__arena_alloc(&c->arena, len - 8 + 1);
  if (!v)
    return MCR_ENOMEM;
  memcpy(v, line + 8, len - 8);
  v[len - 8] = '\0';
  *version = v;
  return MCR_OK;
}

int mcr__text_stats(mcr_client_t* c, mcr__node_t* n, const char* arg,
                    const mcr_stat_t** stats) {
  size_t alen = arg ? strlen(arg) : 0;
  struct iovec iov[3] = {IOV("stats", 5), IOV(" ", alen ? 1 : 0),
                         IOV(arg, alen)};
  struct iovec tail = IOV(crlf, 2);
  struct iovec all[4] = {iov[0], iov[1], iov[2], tail};
  int rc = mcr__conn_begin(c, n);
  if (rc)
    return rc;
  rc = mcr__conn_send(c, n, all, 4);
  if (rc)
    return rc;

  size_t count = 0;
  for (;;) {
    size_t off, len;
    rc = mcr__conn_line(c, n, &off, &len);
    if (rc)
      return rc;
    const char* line = n->conn.rbuf + off;
    if (LINE_IS(line, len, "END"))
      break;
    /* "stats reset" and "stats detail on|off" answer one status line. */
    if (count == 0 && (LINE_IS(line, len, "RESET") || LINE_IS(line, len, "OK")))
      break;
    if (len < 5 || memcmp(line, "STAT ", 5) != 0)
      return mcr__unexpected_line(c, n, off, len);
    const char* name = line + 5;
    const char* sp = memchr(name, ' ', len - 5);
    size_t nlen = sp ? (size_t)(sp - name) : len - 5;
    const char* val = sp ? sp + 1 : line + len;
    size_t vlen = (size_t)(line + len - val);
    if (nlen == 0)
      return mcr__conn_fail(c, n, MCR_EPROTO, "empty stat name");
    if (count == c->stats_cap) {
      size_t cap = c->stats_cap ? c->stats_cap * 2 : 64;
      mcr_stat_t* s = mcr__realloc(c->stats, cap * sizeof(*s));
      if (!s)
        return MCR_ENOMEM;
      c->stats = s;
      c->stats_cap = cap;
    }
    char* mem = mcr__arena_alloc(&c->arena, nlen + vlen + 2);
    if (!mem)
      return MCR_ENOMEM;
    memcpy(mem, name, nlen);
    mem[nlen] = '\0';
    memcpy(mem + nlen + 1, val, vlen);
    mem[nlen + 1 + vlen] = '\0';
    c->stats[count].name = mem;
    c->stats[count].value = mem + nlen + 1;
    count++;
  }
  *stats = c->stats;
  return (int)count;
}

/* ------------------------------------------------------------ retrieval */

static const struct {
  const char* word;
  size_t len;
  bool cas;
  bool ttl;
} get_words[] = {
    [MCR__GET] = {"get", 3, false, false},
    [MCR__GETS] = {"gets", 4, true, false},
    [MCR__GAT] = {"gat", 3, false, true},
    [MCR__GATS] = {"gats", 4, true, true},
};

/* a[0..len) == b[0..len), with word loads that stay inside both. */
static inline bool same_bytes(const char* a, const char* b, size_t len) {
  uint64_t x, y, d = 0;
  if (MCR__LIKELY(len >= 8)) {
    for (size_t i = 0; i + 8 < len; i += 8) {
      memcpy(&x, a + i, 8);
      memcpy(&y, b + i, 8);
      d |= x ^ y;
    }
    memcpy(&x, a + len - 8, 8);
    memcpy(&y, b + len - 8, 8);
    return (d | (x ^ y)) == 0;
  }
  if (len >= 4) {
    uint32_t u, v, e;
    memcpy(&u, a, 4);
    memcpy(&v, b, 4);
    e = u ^ v;
    memcpy(&u, a + len - 4, 4);
    memcpy(&v, b + len - 4, 4);
    return (e | (u ^ v)) == 0;
  }
  for (size_t i = 0; i < len; i++)
    d |= (uint64_t)(a[i] ^ b[i]);
  return d == 0;
}

static inline uint32_t load32(const char* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* The fast paths' number scanner: 1..19 decimal digits at s, before end
 * (pass NULL when the caller guarantees a non-digit byte at or before the
 * end of its data), the form every number of a reply takes in practice; 19
 * digits cannot overflow. Returns the byte after the digits, or NULL for no
 * digit or 20 and more, which the general parser then decides. */
static inline const char* fast_dec(const char* s, const char* end,
                                   uint64_t* out) {
  const char* b = s;
  uint64_t v = 0;
  unsigned d;
  while ((!end || s < end) && (d = (unsigned)(unsigned char)*s - '0') <= 9) {
    v = v * 10 + d;
    s++;
  }
  if (MCR__UNLIKELY(s == b || s - b > 19))
    return NULL;
  *out = v;
  return s;
}

/* Parses the decimal number at s up to the first byte that is not a digit:
 * 1..20 digits, and a 20-digit one no larger than 2^64 - 1 (compared as
 * text, so the loop needs no overflow check). Returns the first byte after
 * it, or NULL. */
static inline const char* scan_u64(const char* s, const char* end,
                                   uint64_t* out) {
  const char* b = s;
  uint64_t v = 0;
  while (s < end && (unsigned)(*s - '0') <= 9) {
    v = v * 10 + (unsigned)(*s - '0');
    s++;
  }
  size_t nd = (size_t)(s - b);
  if (MCR__UNLIKELY(nd == 0 || nd > 20 ||
                    (nd == 20 && memcmp(b, "18446744073709551615", 20) > 0)))
    return NULL;
  *out = v;
  return s;
}

/* Parses "VALUE <key> <flags> <bytes>[ <cas>]" for exactly the key asked
 * (a cas unique is required when want_cas), straight from the line: one
 * compare for the key, two or three number scans. Returns 0, or -1 when
 * the line is not such a line for that key. */
static inline int parse_value_line(const char* line, size_t len,
                                   const char* key, size_t key_len,
                                   bool want_cas, mcr_item_t* it,
                                   size_t* bytes) {
  const char* end = line + len;
  uint64_t flags = 0, nbytes = 0, cas = 0;
  if (len < 7 + key_len + 3 || memcmp(line, "VALUE ", 6) != 0 ||
      !same_bytes(line + 6, key, key_len) || line[6 + key_len] != ' ')
    return -1;
  const char* p = scan_u64(line + 7 + key_len, end, &flags);
  if (p && p < end && *p == ' ' && flags <= UINT32_MAX)
    p = scan_u64(p + 1, end, &nbytes);
  else
    p = NULL;
  if (p && p < end) /* a cas unique follows */
    p = *p == ' ' ? scan_u64(p + 1, end, &cas) : NULL;
  else if (p && want_cas)
    p = NULL;
  if (p != end)
    return -1;
  it->flags = (uint32_t)flags;
  it->cas = cas;
  *bytes = (size_t)nbytes;
  return 0;
}

/* Requests are split into lines of at most this many bytes, each answered
 * by its own END, so no request line ever exceeds memcached's limits. */
#define GET_LINE_MAX 2048

/* One retrieval call. key_node[i] is the node of key i; next[i] the next
 * key of the same node in request order; value_off[i] the offset of key
 * i's value in its node's receive buffer. */
typedef struct {
  mcr__get_t cmd;
  const char* const* keys;
  const size_t* key_lens;
  mcr_item_t* items;
  size_t* next;
  size_t* value_off;
} get_call_t;

/* What one node was asked and how far its reply has been read. */
typedef struct {
  get_call_t* call;
  size_t first, last; /* the node's key list, or SIZE_MAX */
  size_t lines;       /* request lines sent, each answered by END */
  size_t ends;        /* END lines read */
  size_t want;        /* next key that may have a VALUE line */
  size_t pending;     /* key whose VALUE line is read but not its data */
  size_t pending_bytes;
  int err; /* failure of the node, 0 when fine */
} node_plan_t;

static int send_gets(mcr_client_t* c, mcr__node_t* n, int64_t ttl,
                     node_plan_t* plan) {
  get_call_t* g = plan->call;
  mcr_buf_t* b = &c->wbuf;
  b->len = 0;
  size_t line_start = 0;
  /* "<word>[ <ttl>]", the start of every request line. */
  char head[32];
  size_t hl = get_words[g->cmd].len;
  memcpy(head, get_words[g->cmd].word, hl);
  if (get_words[g->cmd].ttl) {
    head[hl++] = ' ';
    hl += mcr__i64_to_dec(head + hl, ttl);
  }
  for (size_t i = plan->first; i != SIZE_MAX; i = g->next[i]) {
    size_t kl = g->key_lens[i];
    /* Room for "\r\n", a new line's head, " <key>" and the final "\r\n". */
    size_t need = 2 + hl + 1 + kl + 2;
    if (MCR__UNLIKELY(b->cap - b->len < need) && mcr__buf_reserve(b, need))
      return MCR_ENOMEM;
    char* p = b->data + b->len;
    if (b->len != line_start && b->len - line_start + 1 + kl > GET_LINE_MAX) {
      *p++ = '\r';
      *p++ = '\n';
      line_start = (size_t)(p - b->data);
    }
    if ((size_t)(p - b->data) == line_start) {
      memcpy(p, head, hl);
      p += hl;
      plan->lines++;
    }
    *p++ = ' ';
    mcr__copy_key(p, g->keys[i], kl);
    b->len = (size_t)(p + kl - b->data);
  }
  b->data[b->len++] = '\r'; /* reserved above */
  b->data[b->len++] = '\n';
  int rc = mcr__conn_begin(c, n);
  if (rc)
    return rc;
  struct iovec iov[1] = {IOV(b->data, b->len)};
  return mcr__conn_send(c, n, iov, 1);
}

/* The fast path of the multi-key parser: buf[0..avail) starts with a whole
 * "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" for the key asked
 * (numbers of 1..19 digits). Returns the unit's length with it->flags,
 * it->cas, *data_off (from buf) and *bytes set, or 0 for anything else: an
 * incomplete unit, another key's, END, an error line, a malformed one. The
 * general parser then decides on the same bytes, and it would accept this
 * unit as this key's with the same result: the key is valid (no byte
 * <= 0x20), so the first '\n' is the one after the numbers. No byte at or
 * past avail is read. */
static inline size_t fast_item(const char* buf, size_t avail, const char* key,
                               size_t key_len, bool want_cas, mcr_item_t* it,
                               size_t* data_off, size_t* bytes) {
  size_t ksp = 6 + key_len; /* the space after the key */
  /* The shortest: "VALUE " key " 0 0\r\n" then "\r\n". */
  if (avail < ksp + 6 + 2 || memcmp(buf, "VALUE ", 6) != 0 ||
      !same_bytes(buf + 6, key, key_len) || buf[ksp] != ' ')
    return 0;
  const char* end = buf + avail;
  uint64_t flags, nbytes, cas = 0;
  const char* p = fast_dec(buf + ksp + 1, end, &flags);
  if (!p || p == end || *p != ' ' || flags > UINT32_MAX)
    return 0;
  if (!(p = fast_dec(p + 1, end, &nbytes)) || p == end)
    return 0;
  if (*p == ' ') {
    if (!(p = fast_dec(p + 1, end, &cas)) || p == end)
      return 0;
  } else if (want_cas) {
    return 0;
  }
  if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || nbytes > MCR__BLOCK_MAX)
    return 0;
  const char* data = p + 2;
  if ((uint64_t)(end - data) < nbytes + 2 || data[nbytes] != '\r' ||
      data[nbytes + 1] != '\n')
    return 0;
  it->flags = (uint32_t)flags;
  it->cas = cas;
  *data_off = (size_t)(data - buf);
  *bytes = (size_t)nbytes;
  return *data_off + (size_t)nbytes + 2;
}

/* The resumable parser of one node's retrieval reply (mcr__step_fn). */
static int gets_step(mcr_client_t* c, mcr__node_t* n, void* ctx) {
  node_plan_t* p = ctx;
  get_call_t* g = p->call;
  mcr__conn_t* k = &n->conn;
  bool want_cas = get_words[g->cmd].cas;
  for (;;) {
    int rc;
    size_t w;
    /* The common units: each next key's VALUE line and data, all received.
     * Taken in a loop over locals (stores to the items cannot then force
     * reloads of the plan and the connection). */
    if (p->pending == SIZE_MAX && p->want != SIZE_MAX && p->ends != p->lines &&
        k->rpos != k->rlen) {
      const char* rb = k->rbuf;
      size_t pos = k->rpos, rlen = k->rlen, doff, bytes, used;
      w = p->want;
      while (w != SIZE_MAX &&
             (used = fast_item(rb + pos, rlen - pos, g->keys[w], g->key_lens[w],
                               want_cas, &g->items[w], &doff, &bytes)) != 0) {
        g->items[w].status = MCR_OK;
        g->items[w].value_len = bytes;
        g->value_off[w] = pos + doff;
        pos += used;
        w = g->next[w];
      }
      if (pos != k->rpos) {
        k->rpos = pos;
        p->want = w;
        mcr__conn_answered(n);
      }
    }
    if (p->pending != SIZE_MAX) {
      size_t voff;
      rc = mcr__conn_peek_block(c, n, p->pending_bytes, &voff);
      if (rc <= 0)
        return rc < 0 ? rc : 1;
      mcr_item_t* it = &g->items[p->pending];
      it->status = MCR_OK;
      it->value_len = p->pending_bytes;
      g->value_off[p->pending] = voff;
      p->want = g->next[p->pending];
      p->pending = SIZE_MAX;
    }
    if (p->ends == p->lines)
      return 0;
    size_t off, len;
    rc = mcr__conn_peek_line(c, n, &off, &len);
    if (rc <= 0)
      return rc < 0 ? rc : 1;
    const char* line = n->conn.rbuf + off;
    if (LINE_IS(line, len, "END")) {
      p->ends++;
      continue;
    }
    if (len < 6 || memcmp(line, "VALUE ", 6) != 0) {
      /* Later request lines may still be answered: drop the stream. */
      rc = mcr__unexpected_line(c, n, off, len);
      mcr__conn_close(n);
      return rc;
    }
    /* Keys without a VALUE line before this one are misses. */
    w = p->want;
    while (w != SIZE_MAX &&
           parse_value_line(line, len, g->keys[w], g->key_lens[w], want_cas,
                            &g->items[w], &p->pending_bytes) != 0)
      w = g->next[w];
    if (w == SIZE_MAX)
      return mcr__conn_fail(c, n, MCR_EPROTO,
                            "VALUE line for a key not asked for, or malformed");
    p->want = p->pending = w;
  }
}

int mcr__text_retrieve(mcr_client_t* c, mcr__get_t cmd, int64_t ttl, size_t n,
                       const char* const* keys, const size_t* key_lens,
                       mcr_item_t* items) {
  /* Per-call arrays: on the stack for the common small calls, from the
   * arena for large ones. */
  enum { SMALL_KEYS = 16, SMALL_NODES = 4 };
  size_t stack_next[SMALL_KEYS], stack_off[SMALL_KEYS], stack_node[SMALL_KEYS];
  node_plan_t stack_plan[SMALL_NODES];
  mcr__node_t* stack_nodes[SMALL_NODES];
  void* stack_ctx[SMALL_NODES];
  int stack_res[SMALL_NODES];
  get_call_t g = {cmd, keys, key_lens, items, stack_next, stack_off};
  size_t* key_node = stack_node;
  node_plan_t* plan = stack_plan;
  mcr__node_t** gnodes = stack_nodes;
  void** gctx = stack_ctx;
  int* gres = stack_res;
  if (n > SMALL_KEYS) {
    g.next = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
    g.value_off = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
    key_node = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
    if (!g.next || !g.value_off || !key_node)
      return MCR_ENOMEM;
  }
  if (c->nnodes > SMALL_NODES) {
    plan = mcr__arena_alloc(&c->arena, c->nnodes * sizeof(*plan));
    gnodes = mcr__arena_alloc(&c->arena, c->nnodes * sizeof(*gnodes));
    gctx = mcr__arena_alloc(&c->arena, c->nnodes * sizeof(*gctx));
    gres = mcr__arena_alloc(&c->arena, c->nnodes * sizeof(*gres));
    if (!plan || !gnodes || !gctx || !gres)
      return MCR_ENOMEM;
  }
  for (size_t j = 0; j < c->nnodes; j++)
    plan[j] = (node_plan_t){
        .call = &g, .first = SIZE_MAX, .last = SIZE_MAX, .pending = SIZE_MAX};

  mcr__route_many(c, n, keys, key_lens, key_node);
  for (size_t i = 0; i < n; i++) {
    size_t j = key_node[i];
    g.next[i] = SIZE_MAX;
    if (plan[j].first == SIZE_MAX)
      plan[j].first = i;
    else
      g.next[plan[j].last] = i;
    plan[j].last = i;
    items[i] = (mcr_item_t){.status = MCR_MISS};
  }

  /* Every node's request goes out before any reply is read; replies are
   * then read as they arrive. A node whose kept connection turned out
   * closed (MCR__ESTALE) gets one more round on a new connection. */
  for (int round = 0; round < 2; round++) {
    size_t ng = 0;
    for (size_t j = 0; j < c->nnodes; j++) {
      node_plan_t* p = &plan[j];
      if (p->first == SIZE_MAX || (round == 1 && p->err != MCR__ESTALE))
        continue;
      *p = (node_plan_t){.call = &g,
                         .first = p->first,
                         .last = p->last,
                         .want = p->first,
                         .pending = SIZE_MAX};
      p->err = send_gets(c, &c->nodes[j], ttl, p);
      if (p->err)
        continue;
      gnodes[ng] = &c->nodes[j];
      gctx[ng] = p;
      ng++;
    }
    if (ng)
      mcr__conn_gather(c, ng, gnodes, gctx, gets_step, gres);
    for (size_t k = 0; k < ng; k++)
      ((node_plan_t*)gctx[k])->err = gres[k];
    bool stale = false;
    for (size_t j = 0; j < c->nnodes; j++)
      stale |= plan[j].err == MCR__ESTALE;
    if (!stale)
      break;
  }

  /* All reads are done: buffers no longer move, so offsets become
   * pointers, then values are decoded. */
  int hits = 0;
  for (size_t i = 0; i < n; i++) {
    node_plan_t* p = &plan[key_node[i]];
    if (p->err) {
      int err = p->err == MCR__ESTALE ? MCR_ECLOSED : p->err;
      mcr__hs_op(&c->nodes[key_node[i]], MCR__OP_GET, err);
      items[i] = (mcr_item_t){.status = mcr__soften(c, err, true)};
      continue;
    }
    mcr__hs_op(&c->nodes[key_node[i]], MCR__OP_GET, items[i].status);
    if (items[i].status != MCR_OK)
      continue;
    items[i].value = c->nodes[key_node[i]].conn.rbuf + g.value_off[i];
    int rc = MCR__UNLIKELY((items[i].flags & MCR_FLAG_ZSTD) || c->opts.serde)
                 ? mcr__decode_item(c, &items[i])
                 : 0;
    if (rc) {
      items[i] = (mcr_item_t){.status = rc};
      continue;
    }
    hits++;
  }
  return hits;
}

/* ------------------------------------------------------------ batches */

/* A batch of one-line-reply commands (set or delete of many keys): per node
 * a segment of c->wbuf with all its commands, sent before any reply is
 * read; replies come back in command order. */
typedef struct {
  size_t first, last; /* the node's commands, in order via next[] */
  size_t seg_start, seg_end;
  size_t cursor; /* next command whose reply is due */
  int err;
} batch_plan_t;

typedef struct {
  const size_t* next;
  int* statuses;
} batch_call_t;

/* statuses[i] of a command whose reply has not been read. */
#define UNANSWERED INT32_MIN

typedef struct {
  batch_plan_t plan;
  batch_call_t* call;
} batch_ctx_t;

static int batch_status(const char* line, size_t len) {
  if (LINE_IS(line, len, "STORED") || LINE_IS(line, len, "DELETED"))
    return MCR_OK;
  if (LINE_IS(line, len, "NOT_STORED"))
    return MCR_NOT_STORED;
  if (LINE_IS(line, len, "EXISTS"))
    return MCR_EXISTS;
  if (LINE_IS(line, len, "NOT_FOUND"))
    return MCR_NOT_FOUND;
  return 1; /* not a status line */
}

static int batch_step(mcr_client_t* c, mcr__node_t* n, void* ctx) {
  batch_ctx_t* b = ctx;
  while (b->plan.cursor != SIZE_MAX) {
    size_t off, len;
    int rc = mcr__conn_peek_line(c, n, &off, &len);
    if (rc <= 0)
      return rc < 0 ? rc : 1;
    const char* line = n->conn.rbuf + off;
    int st = batch_status(line, len);
    if (st == 1) {
      /* An error line answers this command alone; anything else breaks
       * the stream. */
      st = mcr__error_line(line, len);
      if (!st)
        return mcr__unexpected_line(c, n, off, len);
      mcr__unexpected_line(c, n, off, len); /* records the message */
    }
    b->call->statuses[b->plan.cursor] = st;
    b->plan.cursor = b->call->next[b->plan.cursor];
  }
  return 0;
}

int mcr__text_batch(mcr_client_t* c, bool is_set, size_t n,
                    const char* const* keys, const size_t* key_lens,
                    const void* const* values, const size_t* value_lens,
                    uint32_t flags, int64_t ttl, bool noreply, int* statuses) {
  size_t nn = c->nnodes;
  size_t* next = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  size_t* node_of = mcr__arena_alloc(&c->arena, n * sizeof(size_t));
  batch_ctx_t* bc = mcr__arena_alloc(&c->arena, nn * sizeof(*bc));
  mcr__node_t** gnodes = mcr__arena_alloc(&c->arena, nn * sizeof(*gnodes));
  void** gctx = mcr__arena_alloc(&c->arena, nn * sizeof(*gctx));
  int* gres = mcr__arena_alloc(&c->arena, nn * sizeof(*gres));
  if (!next || !node_of || !bc || !gnodes || !gctx || !gres)
    return MCR_ENOMEM;
  batch_call_t call = {next, statuses};
  for (size_t j = 0; j < nn; j++)
    bc[j] = (batch_ctx_t){{SIZE_MAX, SIZE_MAX, 0, 0, SIZE_MAX, 0}, &call};
  mcr__route_many(c, n, keys, key_lens, node_of);
  for (size_t i = 0; i < n; i++) {
    size_t j = node_of[i];
    next[i] = SIZE_MAX;
    if (bc[j].plan.first == SIZE_MAX)
      bc[j].plan.first = i;
    else
      next[bc[j].plan.last] = i;
    bc[j].plan.last = i;
  }

  /* Build every request first: a value that fails to encode or is too big
   * stops the call before anything is sent. */
  mcr_buf_t* w = &c->wbuf;
  w->len = 0;
  for (size_t j = 0; j < nn; j++) {
    batch_plan_t* p = &bc[j].plan;
    p->seg_start = w->len;
    for (size_t i = p->first; i != SIZE_MAX; i = next[i]) {
      const void* data = NULL;
      size_t dlen = 0;
      uint32_t f = flags;
      if (is_set) {
        int rc = mcr__encode_value(c, values[i] ? values[i] : "", value_lens[i],
                                   &f, &data, &dlen);
        if (rc)
          return rc;
        if (dlen > c->opts.item_size_max)
          return mcr__set_error(c, MCR_ETOOBIG,
                                "value %zu: %zu bytes exceed item_size_max "
                                "%zu",
                                i, dlen, c->opts.item_size_max);
      }
      char nums[96];
      char* q = nums;
      if (is_set) {
        *q++ = ' ';
        q += mcr__u64_to_dec(q, f);
        *q++ = ' ';
        q += mcr__i64_to_dec(q, ttl);
        *q++ = ' ';
        q += mcr__u64_to_dec(q, dlen);
      }
      if (noreply) {
        memcpy(q, noreply_tail, sizeof noreply_tail);
        q += sizeof noreply_tail;
      } else {
        *q++ = '\r';
        *q++ = '\n';
      }
      if (mcr_buf_append(w, is_set ? "set " : "delete ", is_set ? 4 : 7) ||
          mcr_buf_append(w, keys[i], key_lens[i]) ||
          mcr_buf_append(w, nums, (size_t)(q - nums)) ||
          (is_set &&
           (mcr_buf_append(w, data, dlen) || mcr_buf_append(w, crlf, 2))))
        return MCR_ENOMEM;
    }
    p->seg_end = w->len;
  }

  /* Send every node's segment, then read the replies as they arrive. A
   * node whose kept connection turned out closed before answering
   * (MCR__ESTALE) gets one more round on a new connection. */
  for (size_t i = 0; i < n; i++)
    statuses[i] = UNANSWERED;
  for (int round = 0; round < 2; round++) {
    size_t ng = 0;
    for (size_t j = 0; j < nn; j++) {
      batch_plan_t* p = &bc[j].plan;
      if (p->first == SIZE_MAX || (round == 1 && p->err != MCR__ESTALE))
        continue;
      mcr__node_t* node = &c->nodes[j];
      struct iovec iov[1] = {
          IOV(w->data + p->seg_start, p->seg_end - p->seg_start)};
      p->err = mcr__conn_begin(c, node);
      if (!p->err)
        p->err = mcr__conn_send(c, node, iov, 1);
      if (p->err || noreply)
        continue;
      p->cursor = p->first;
      gnodes[ng] = node;
      gctx[ng] = &bc[j];
      ng++;
    }
    if (ng)
      mcr__conn_gather(c, ng, gnodes, gctx, batch_step, gres);
    bool stale = false;
    for (size_t k = 0; k < ng; k++) {
      batch_plan_t* p = &((batch_ctx_t*)gctx[k])->plan;
      p->err = gres[k];
      /* Only a node that answered nothing may run again. */
      if (p->err == MCR__ESTALE && p->cursor != p->first)
        p->err = MCR_ECLOSED;
    }
    for (size_t j = 0; j < nn; j++)
      stale |= bc[j].plan.err == MCR__ESTALE;
    if (!stale)
      break;
  }

  int ok = 0;
  for (size_t i = 0; i < n; i++) {
    int err = bc[node_of[i]].plan.err;
    if (statuses[i] == UNANSWERED)
      statuses[i] =
          err ? (err == MCR__ESTALE ? MCR_ECLOSED : err) : MCR_OK; /* noreply */
    mcr__hs_op(&c->nodes[node_of[i]], is_set ? MCR__OP_SET : MCR__OP_DELETE,
               statuses[i]);
    statuses[i] = mcr__soften(c, statuses[i], false);
    ok += statuses[i] == MCR_OK;
  }
  return ok;
}

/* ------------------------------------------------------------ one key */

size_t mcr__text_get_request(mcr__get_t cmd, int64_t ttl, const char* key,
                             size_t key_len, char* req) {
  /* Each word padded to eight bytes, so it is copied with one store. */
  static const char heads[][8] = {[MCR__GET] = "get ",
                                  [MCR__GETS] = "gets ",
                                  [MCR__GAT] = "gat ",
                                  [MCR__GATS] = "gats "};
  if (MCR__UNLIKELY(!key || key_len - 1 >= MCR__KEY_MAX))
    return 0; /* 0 wraps around, so this also refuses an empty key */
  memcpy(req, heads[cmd], 8);
  size_t hl = get_words[cmd].len + 1;
  if (get_words[cmd].ttl) {
    hl += mcr__i64_to_dec(req + hl, ttl);
    req[hl++] = ' ';
  }
  if (MCR__UNLIKELY(mcr__key_scan(req + hl, key, key_len) != 0))
    return 0;
  char* end = req + hl + key_len;
  end[0] = '\r';
  end[1] = '\n';
  return hl + key_len + 2;
}

/* fast_get_reply's answer when the general parser must decide. */
#define UNDECIDED (-1)

/* The fast path of a one-key retrieval: buf[0..len) is exactly one whole
 * reply in its common form, "END\r\n" (returns MCR_MISS) or
 * "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\nEND\r\n" for the key
 * asked (returns MCR_OK, *it filled; the value points into buf). Anything
 * else returns UNDECIDED: a reply not complete yet, followed by more bytes, an
 * error line, a malformed one, or numbers of 20 digits. The caller then
 * runs the general parser on the same bytes, which reads the rest or
 * reports the error, so this function decides nothing the general parser
 * would decide differently: every reply it accepts, the general parser
 * accepts with the same result, and it reads no byte at or past len. The
 * key must be valid (no byte <= 0x20), so the first '\n' in buf is the one
 * after the numbers, as the general parser would find it. */
static inline int fast_get_reply(const char* buf, size_t len, const char* key,
                                 size_t key_len, bool want_cas,
                                 mcr_item_t* it) {
  /* The shortest hit: "VALUE " key " 0 0\r\n" then "\r\nEND\r\n". */
  size_t ksp = 6 + key_len; /* the space after the key */
  if (MCR__UNLIKELY(len < ksp + 5 + 7)) {
    if (len == 5 && memcmp(buf, "END\r\n", 5) == 0)
      return MCR_MISS;
    return UNDECIDED;
  }
  /* The data and "\r\nEND\r\n" must take all the bytes after the line.
   * Checked first: its '\r' then ends every digit scan below at the
   * latest, and those scans start at or before it (len >= ksp + 12). */
  const char* trailer = buf + len - 7;
  if (load32(trailer) != load32("\r\nEN") ||
      load32(trailer + 3) != load32("ND\r\n"))
    return UNDECIDED;
  if (memcmp(buf, "VALUE ", 6) != 0 || !same_bytes(buf + 6, key, key_len) ||
      buf[ksp] != ' ')
    return UNDECIDED;
  uint64_t flags, bytes, cas = 0;
  const char* p = fast_dec(buf + ksp + 1, NULL, &flags);
  if (!p || *p != ' ' || flags > UINT32_MAX)
    return UNDECIDED;
  if (!(p = fast_dec(p + 1, NULL, &bytes)))
    return UNDECIDED;
  if (*p == ' ') {
    if (!(p = fast_dec(p + 1, NULL, &cas)))
      return UNDECIDED;
  } else if (want_cas) {
    return UNDECIDED;
  }
  /* p <= trailer. */
  if (p[0] != '\r' || trailer - p < 2 || p[1] != '\n' ||
      (uint64_t)(trailer - (p + 2)) != bytes || bytes > MCR__BLOCK_MAX)
    return UNDECIDED;
  it->flags = (uint32_t)flags;
  it->cas = cas;
  it->value = p + 2;
  it->value_len = (size_t)bytes;
  it->status = MCR_OK;
  return MCR_OK;
}

int mcr__text_get_reply_fast(const char* buf, size_t len, const char* key,
                             size_t key_len, bool want_cas, mcr_item_t* it) {
  return fast_get_reply(buf, len, key, key_len, want_cas, it);
}

int mcr__text_get_one(mcr_client_t* c, mcr__node_t* n, mcr__get_t cmd,
                      const char* req, size_t req_len, const char* key,
                      size_t key_len, mcr_item_t* it) {
  /* The whole reply usually arrives with the first receive: check it in
   * one pass, and fall back to reading it line by line otherwise. */
  int rc = mcr__conn_request(c, n, req, req_len);
  if (rc)
    return rc;
  mcr__conn_t* k = &n->conn;
  rc = fast_get_reply(k->rbuf, k->rlen, key, key_len, get_words[cmd].cas, it);
  if (MCR__LIKELY(rc != UNDECIDED)) {
    k->rpos = k->rlen;
    mcr__conn_answered(n);
    return rc;
  }

  size_t off, len;
  if ((rc = mcr__conn_line(c, n, &off, &len)))
    return rc;
  const char* line = k->rbuf + off;
  if (LINE_IS(line, len, "END"))
    return MCR_MISS;
  size_t bytes;
  if (MCR__UNLIKELY(parse_value_line(line, len, key, key_len,
                                     get_words[cmd].cas, it, &bytes) != 0)) {
    if (mcr__error_line(line, len))
      return mcr__unexpected_line(c, n, off, len);
    return mcr__conn_fail(c, n, MCR_EPROTO, "bad VALUE line");
  }
  size_t voff;
  if ((rc = mcr__conn_block(c, n, bytes, &voff)))
    return rc;
  /* "END\r\n" is usually in the buffer already: take it without a scan. */
  if (MCR__LIKELY(k->rlen - k->rpos == 5 &&
                  memcmp(k->rbuf + k->rpos, "END\r\n", 5) == 0)) {
    k->rpos += 5;
  } else {
    if ((rc = mcr__conn_line(c, n, &off, &len)))
      return rc;
    if (!LINE_IS(k->rbuf + off, len, "END"))
      return mcr__conn_fail(c, n, MCR_EPROTO, "no END after the value");
  }
  it->value = k->rbuf + voff;
  it->value_len = bytes;
  it->status = MCR_OK;
  return MCR_OK;
}
