/* codec_text.c — memcached's classic text protocol, both directions, as
 * pure functions: requests into buffers, replies decoded from bytes.
 *
 * Requests are assembled from pieces (command word, key, numbers written
 * by hand, value, "\r\n") for one sendmsg: no snprintf and no copy of the
 * value. The one-key get builds its short line in one buffer instead (the
 * key is copied while it is checked).
 *
 * Replies are decoded in place under the contract in internal.h
 * ("decoders"): bytes in, an outcome and offsets out, MCR__MORE when a
 * reply is not complete yet. A line is at most MCR__LINE_MAX bytes, a
 * value at most the caller's value_max (item_size_max): a longer one is a
 * protocol error before anyone reserves room for it. Numbers go through an
 * overflow-checked parser with a length limit, never bare strtoul.
 * Transport status and protocol outcome stay apart: STORED / NOT_STORED /
 * EXISTS / NOT_FOUND / END are results (mcr_status_t); ERROR /
 * CLIENT_ERROR / SERVER_ERROR are complete replies that leave the stream
 * in sync; anything else is MCR_EPROTO, after which the stream is lost.
 *
 * The one-key get, the most common call, first checks a reply that arrived
 * whole in one pass (mcr__text_get_fast_inline, internal.h) and falls back
 * to reading it unit by unit (mcr__text_get_general); a multi-key get consumes
 * each whole "VALUE ... data" unit in a tight loop the same way. Both fast
 * paths decide nothing the general parser would decide differently.
 */
#include <string.h>

#include "internal.h"

#define LINE_IS(line, len, lit) \
  ((len) == sizeof(lit) - 1 && memcmp((line), lit, sizeof(lit) - 1) == 0)
#define IOV(p, n) ((struct iovec){.iov_base = (void*)(p), .iov_len = (n)})

static const char crlf[2] = {'\r', '\n'};
static const char noreply_tail[10] = {' ', 'n', 'o', 'r',  'e',
                                      'p', 'l', 'y', '\r', '\n'};

/* Sets d for a protocol error and returns MCR_EPROTO. */
static int proto(mcr__dec_t* d, const char* why) {
  d->why = why;
  return MCR_EPROTO;
}

/* Finds the next line of buf[pos, len): returns 0 with *line at it and
 * *line_len its length (without "\r\n"), MCR__MORE when it is not
 * complete yet (d->need 0: a line), or MCR_EPROTO (too long, or not ended
 * by "\r\n"). */
static int next_line(const char* buf, size_t pos, size_t len, const char** line,
                     size_t* line_len, mcr__dec_t* d) {
  size_t avail = len - pos;
  size_t scan = avail < MCR__LINE_MAX + 2 ? avail : MCR__LINE_MAX + 2;
  const char* nl = memchr(buf + pos, '\n', scan);
  if (!nl) {
    if (avail > MCR__LINE_MAX + 1)
      return proto(d, "reply line too long");
    return MCR__MORE;
  }
  size_t end = (size_t)(nl - buf);
  if (end == pos || buf[end - 1] != '\r')
    return proto(d, "reply line not ended by \\r\\n");
  *line = buf + pos;
  *line_len = end - 1 - pos;
  return 0;
}

int mcr__error_line(const char* line, size_t len) {
  if (len >= 5 && memcmp(line, "ERROR", 5) == 0 && (len == 5 || line[5] == ' '))
    return MCR_ESERVERCMD;
  if (len >= 12 && memcmp(line, "CLIENT_ERROR", 12) == 0)
    return MCR_ECLIENTERR;
  if (len >= 12 && memcmp(line, "SERVER_ERROR", 12) == 0)
    return MCR_ESERVERERR;
  return 0;
}

/* The line at pos (length ll) did not fit: a server error line is a
 * complete reply (the stream stays in sync), anything else breaks it. */
static int unexpected(const char* buf, size_t pos, size_t ll, mcr__dec_t* d) {
  int err = mcr__error_line(buf + pos, ll);
  d->line_off = pos; /* quoted in the message either way */
  d->line_len = ll;
  if (!err)
    return proto(d, "unexpected reply");
  d->used += ll + 2;
  return err;
}

/* ------------------------------------------------------------ requests */

static const struct {
  const char* word;
  size_t len;
} store_words[] = {
    [MCR__SET] = {"set ", 4},         [MCR__ADD] = {"add ", 4},
    [MCR__REPLACE] = {"replace ", 8}, [MCR__APPEND] = {"append ", 7},
    [MCR__PREPEND] = {"prepend ", 8}, [MCR__CAS] = {"cas ", 4},
};

/* Ends a request line: " noreply\r\n" or "\r\n". */
static char* line_end(char* p, bool noreply) {
  if (noreply) {
    memcpy(p, noreply_tail, sizeof noreply_tail);
    return p + sizeof noreply_tail;
  }
  *p++ = '\r';
  *p++ = '\n';
  return p;
}

int mcr__text_store_request(struct iovec* iov, char* nums, mcr__store_t cmd,
                            const char* key, size_t key_len, uint32_t flags,
                            int64_t ttl, uint64_t cas, const void* data,
                            size_t data_len, bool noreply) {
  /* " <flags> <ttl> <bytes>[ <cas>][ noreply]\r\n" */
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
  p = line_end(p, noreply);
  iov[0] = IOV(store_words[cmd].word, store_words[cmd].len);
  iov[1] = IOV(key, key_len);
  iov[2] = IOV(nums, (size_t)(p - nums));
  iov[3] = IOV(data, data_len);
  iov[4] = IOV(crlf, 2);
  return 5;
}

int mcr__text_keyed_request(struct iovec* iov, char* nums, mcr__keyed_t cmd,
                            const char* key, size_t key_len, uint64_t uarg,
                            int64_t iarg, bool noreply) {
  static const struct {
    const char* word;
    size_t len;
  } words[] = {
      [MCR__DELETE] = {"delete ", 7},
      [MCR__TOUCH] = {"touch ", 6},
      [MCR__INCR] = {"incr ", 5},
      [MCR__DECR] = {"decr ", 5},
  };
  char* p = nums;
  if (cmd == MCR__TOUCH) {
    *p++ = ' ';
    p += mcr__i64_to_dec(p, iarg);
  } else if (cmd == MCR__INCR || cmd == MCR__DECR) {
    *p++ = ' ';
    p += mcr__u64_to_dec(p, uarg);
  }
  p = line_end(p, noreply);
  iov[0] = IOV(words[cmd].word, words[cmd].len);
  iov[1] = IOV(key, key_len);
  iov[2] = IOV(nums, (size_t)(p - nums));
  return 3;
}

int mcr__text_stats_request(struct iovec* iov, const char* arg) {
  size_t alen = arg ? strlen(arg) : 0;
  iov[0] = IOV("stats", 5);
  iov[1] = IOV(" ", alen ? 1 : 0);
  iov[2] = IOV(arg ? arg : "", alen);
  iov[3] = IOV(crlf, 2);
  return 4;
}

/* ------------------------------------------------------------ one line */

int mcr__text_line_decode(void* vctx, const char* buf, size_t pos, size_t len,
                          mcr__dec_t* d) {
  mcr__line_ctx_t* x = vctx;
  const char* line;

  size_t ll;
  int rc = next_line(buf, pos, len, &line, &ll, d);
  if (rc)
    return rc;
  x->status = MCR_OK;
  switch (x->kind) {
    case MCR__R_STORE:
      if (MCR__LIKELY(LINE_IS(line, ll, "STORED")))
        break;
      if (LINE_IS(line, ll, "NOT_STORED"))
        x->status = MCR_NOT_STORED;
      else if (LINE_IS(line, ll, "EXISTS"))
        x->status = MCR_EXISTS;
      else if (LINE_IS(line, ll, "NOT_FOUND"))
        x->status = MCR_NOT_FOUND;
      else
        return unexpected(buf, pos, ll, d);
      break;
    case MCR__R_DELETE:
    case MCR__R_TOUCH:
      if (LINE_IS(line, ll, "NOT_FOUND"))
        x->status = MCR_NOT_FOUND;
      else if (!LINE_IS(line, ll,
                        x->kind == MCR__R_DELETE ? "DELETED" : "TOUCHED"))
        return unexpected(buf, pos, ll, d);
      break;
    case MCR__R_ARITH:
      if (LINE_IS(line, ll, "NOT_FOUND")) {
        x->status = MCR_NOT_FOUND;
      } else if (ll > 0 && line[0] >= '0' && line[0] <= '9') {
        if (mcr__dec_to_u64(line, ll, &x->number))
          return proto(d, "bad number in the reply");
      } else {
        return unexpected(buf, pos, ll, d);
      }
      break;
    case MCR__R_OK:
      if (!LINE_IS(line, ll, "OK"))
        return unexpected(buf, pos, ll, d);
      break;
    case MCR__R_VERSION:
      if (ll < 8 || memcmp(line, "VERSION ", 8) != 0)
        return unexpected(buf, pos, ll, d);
      x->text_off = pos + 8;
      x->text_len = ll - 8;
      break;
    case MCR__R_MN:
      if (!LINE_IS(line, ll, "MN"))
        return unexpected(buf, pos, ll, d);
      break;
  }
  d->used += ll + 2;
  return MCR__DONE;
}

/* ------------------------------------------------------------ stats */

int mcr__text_stats_decode(void* vctx, const char* buf, size_t pos, size_t len,
                           mcr__dec_t* d) {
  mcr__stats_ctx_t* x = vctx;
  for (;;) {
    const char* line;

    size_t ll;
    int rc = next_line(buf, pos, len, &line, &ll, d);
    if (rc)
      return rc;
    if (LINE_IS(line, ll, "END")) {
      d->used += 5;
      return MCR__DONE;
    }
    /* "stats reset" and "stats detail on|off" answer one status line. */
    if (x->n == 0 && (LINE_IS(line, ll, "RESET") || LINE_IS(line, ll, "OK"))) {
      d->used += ll + 2;
      return MCR__DONE;
    }
    if (ll < 5 || memcmp(line, "STAT ", 5) != 0)
      return unexpected(buf, pos, ll, d);
    const char* name = line + 5;
    const char* sp = memchr(name, ' ', ll - 5);
    size_t nlen = sp ? (size_t)(sp - name) : ll - 5;
    if (nlen == 0)
      return proto(d, "empty stat name");
    if (x->n == MCR__STATS_MAX)
      return proto(d, "more stats lines than any server sends");
    if (x->n == x->cap) {
      size_t cap = x->cap ? x->cap * 2 : 64;
      mcr__stat_ent_t* e = mcr__realloc(x->ent, cap * sizeof(*e));
      if (!e)
        return proto(d, "out of memory for the stats");
      x->ent = e;
      x->cap = cap;
    }
    mcr__stat_ent_t* e = &x->ent[x->n++];
    e->name_off = pos + 5;
    e->name_len = nlen;
    e->value_off = sp ? (size_t)(sp + 1 - buf) : pos + ll;
    e->value_len = pos + ll - e->value_off;
    pos += ll + 2;
    d->used += ll + 2;
  }
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
                                   bool want_cas, uint32_t* flags_out,
                                   uint64_t* cas_out, uint64_t* bytes) {
  const char* end = line + len;
  uint64_t flags = 0, nbytes = 0, cas = 0;
  if (len < 7 + key_len + 3 || memcmp(line, "VALUE ", 6) != 0 ||
      !mcr__same_bytes(line + 6, key, key_len) || line[6 + key_len] != ' ')
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
  *flags_out = (uint32_t)flags;
  *cas_out = cas;
  *bytes = nbytes;
  return 0;
}

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

int mcr__text_get_fast(const char* buf, size_t len, mcr__get_ctx_t* g) {
  return mcr__text_get_fast_inline(buf, len, g);
}

int mcr__text_get_general(mcr__get_ctx_t* g, const char* buf, size_t pos,
                          size_t len, mcr__dec_t* d) {
  const char* b = buf + pos;
  size_t avail = len - pos;
  int rc;
  /* The general parser, from the start of the reply each time: a VALUE
   * line, its data and END; MCR__MORE says how much is still missing. */
  const char* line;
  size_t ll;
  if ((rc = next_line(buf, pos, len, &line, &ll, d)))
    return rc;
  if (LINE_IS(line, ll, "END")) {
    g->status = MCR_MISS;
    d->used = 5;
    return MCR__DONE;
  }
  uint64_t bytes;
  if (parse_value_line(line, ll, g->key, g->key_len, g->want_cas, &g->flags,
                       &g->cas, &bytes) != 0) {
    if (mcr__error_line(line, ll))
      return unexpected(buf, pos, ll, d);
    return proto(d, "bad VALUE line");
  }
  if (bytes > g->value_max)
    return proto(d, "announced value larger than item_size_max");
  size_t data = ll + 2, block = data + (size_t)bytes + 2, total = block + 5;
  if (avail < block) {
    d->need = total;
    return MCR__MORE;
  }
  if (b[block - 2] != '\r' || b[block - 1] != '\n')
    return proto(d, "data block not ended by \\r\\n");
  size_t rest = avail - block < 5 ? avail - block : 5;
  if (memcmp(b + block, "END\r\n", rest) != 0)
    return proto(d, "no END after the value");
  if (rest < 5) {
    d->need = total;
    return MCR__MORE;
  }
  g->status = MCR_OK;
  g->value_off = pos + data;
  g->value_len = (size_t)bytes;
  d->used = total;
  return MCR__DONE;
}

/* ------------------------------------------------------------ many keys */

/* Requests are split into lines of at most this many bytes, each answered
 * by its own END, so no request line ever exceeds memcached's limits. */
#define GET_LINE_MAX 2048

int mcr__text_mget_request(mcr_buf_t* b, mcr__mget_ctx_t* g, int64_t ttl) {
  size_t line_start = b->len;
  /* "<word>[ <ttl>]", the start of every request line. */
  char head[32];
  size_t hl = get_words[g->cmd].len;
  memcpy(head, get_words[g->cmd].word, hl);
  if (get_words[g->cmd].ttl) {
    head[hl++] = ' ';
    hl += mcr__i64_to_dec(head + hl, ttl);
  }
  g->lines = g->ends = 0;
  g->want = g->first;
  g->pending = SIZE_MAX;
  for (size_t i = g->first; i != SIZE_MAX; i = g->next[i]) {
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
      g->lines++;
    }
    *p++ = ' ';
    mcr__copy_key(p, g->keys[i], kl);
    b->len = (size_t)(p + kl - b->data);
  }
  b->data[b->len++] = '\r'; /* reserved above */
  b->data[b->len++] = '\n';
  return 0;
}

/* The fast path of the multi-key decoder: buf[0..avail) starts with a
 * whole "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" for the key
 * asked (numbers of 1..19 digits, the value within value_max). Returns the
 * unit's length with it->flags, it->cas, *data_off (from buf) and *bytes
 * set, or 0 for anything else: an incomplete unit, another key's, END, an
 * error line, a malformed one. The general parser then decides on the same
 * bytes, and it would accept this unit as this key's with the same result:
 * the key is valid (no byte <= 0x20), so the first '\n' is the one after
 * the numbers. No byte at or past avail is read. */
static inline size_t fast_item(const char* buf, size_t avail, const char* key,
                               size_t key_len, bool want_cas, size_t value_max,
                               mcr_item_t* it, size_t* data_off,
                               size_t* bytes) {
  size_t ksp = 6 + key_len; /* the space after the key */
  /* The shortest: "VALUE " key " 0 0\r\n" then "\r\n". */
  if (avail < ksp + 6 + 2 || memcmp(buf, "VALUE ", 6) != 0 ||
      !mcr__same_bytes(buf + 6, key, key_len) || buf[ksp] != ' ')
    return 0;
  const char* end = buf + avail;
  uint64_t flags, nbytes, cas = 0;
  const char* p = mcr__fast_dec(buf + ksp + 1, end, &flags);
  if (!p || p == end || *p != ' ' || flags > UINT32_MAX)
    return 0;
  if (!(p = mcr__fast_dec(p + 1, end, &nbytes)) || p == end)
    return 0;
  if (*p == ' ') {
    if (!(p = mcr__fast_dec(p + 1, end, &cas)) || p == end)
      return 0;
  } else if (want_cas) {
    return 0;
  }
  if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || nbytes > value_max)
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

int mcr__text_mget_decode(void* vctx, const char* buf, size_t pos, size_t len,
                          mcr__dec_t* d) {
  mcr__mget_ctx_t* g = vctx;
  bool want_cas = get_words[g->cmd].cas;
  size_t start = pos;
  for (;;) {
    /* The common units: each next key's VALUE line and data, all received.
     * Taken in a loop over locals (stores to the items cannot then force
     * reloads of the context). */
    if (g->pending == SIZE_MAX && g->want != SIZE_MAX && g->ends != g->lines &&
        pos != len) {
      size_t doff, bytes, used, w = g->want;
      while (w != SIZE_MAX &&
             (used = fast_item(buf + pos, len - pos, g->keys[w], g->key_lens[w],
                               want_cas, g->value_max, &g->items[w], &doff,
                               &bytes)) != 0) {
        g->items[w].status = MCR_OK;
        g->items[w].value_len = bytes;
        g->value_off[w] = pos + doff;
        pos += used;
        w = g->next[w];
      }
      g->want = w;
    }
    d->used = pos - start;
    if (g->pending != SIZE_MAX) {
      size_t need = g->pending_bytes + 2;
      if (len - pos < need) {
        d->need = need;
        return MCR__MORE;
      }
      if (buf[pos + g->pending_bytes] != '\r' ||
          buf[pos + g->pending_bytes + 1] != '\n')
        return proto(d, "data block not ended by \\r\\n");
      mcr_item_t* it = &g->items[g->pending];
      it->status = MCR_OK;
      it->value_len = g->pending_bytes;
      g->value_off[g->pending] = pos;
      pos += need;
      d->used = pos - start;
      g->want = g->next[g->pending];
      g->pending = SIZE_MAX;
    }
    if (g->ends == g->lines)
      return MCR__DONE;
    const char* line;

    size_t ll;
    int rc = next_line(buf, pos, len, &line, &ll, d);
    if (rc)
      return rc;
    if (LINE_IS(line, ll, "END")) {
      g->ends++;
      pos += 5;
      continue;
    }
    if (ll < 6 || memcmp(line, "VALUE ", 6) != 0) {
      /* Later request lines may still be answered: the stream is lost
       * even after a server error line. */
      d->desync = true;
      return unexpected(buf, pos, ll, d);
    }
    /* Keys without a VALUE line before this one are misses. */
    size_t w = g->want;
    uint64_t bytes = 0;
    while (w != SIZE_MAX &&
           parse_value_line(line, ll, g->keys[w], g->key_lens[w], want_cas,
                            &g->items[w].flags, &g->items[w].cas, &bytes) != 0)
      w = g->next[w];
    if (w == SIZE_MAX)
      return proto(d, "VALUE line for a key not asked for, or malformed");
    if (bytes > g->value_max)
      return proto(d, "announced value larger than item_size_max");
    g->want = g->pending = w;
    g->pending_bytes = (size_t)bytes;
    pos += ll + 2;
  }
}

/* ------------------------------------------------------------ batches */

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

int mcr__text_batch_decode(void* vctx, const char* buf, size_t pos, size_t len,
                           mcr__dec_t* d) {
  mcr__batch_ctx_t* b = vctx;
  while (b->cursor != SIZE_MAX) {
    const char* line;
    size_t ll;
    int rc = next_line(buf, pos, len, &line, &ll, d);
    if (rc)
      return rc;
    int st = batch_status(line, ll);
    if (st == 1) {
      /* An error line answers this command alone; anything else breaks
       * the stream. The line is kept for the caller's message. */
      st = mcr__error_line(buf + pos, ll);
      if (!st)
        return proto(d, "unexpected reply");
      d->line_off = pos;
      d->line_len = ll;
    }
    b->statuses[b->cursor] = st;
    b->cursor = b->next[b->cursor];
    pos += ll + 2;
    d->used += ll + 2;
  }
  return MCR__DONE;
}
