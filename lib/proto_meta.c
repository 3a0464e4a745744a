/* proto_meta.c — memcached's meta protocol (mg ms md ma mn me) and quiet
 * pipelines.
 *
 * A meta request is one line, "<cm> <key>[ <datalen>] <flag>*\r\n", plus a
 * data block for ms. Every argument is checked before a byte is written:
 * the key (text rules, or 1..186 raw bytes sent base64 with the b flag), the
 * value size against item_size_max, and the flags, which must be ones the
 * command knows, with tokens in the range memcached parses (TTLs are 32-bit
 * there; a larger one would be misread silently). The line is built in
 * c->wbuf by hand, numbers included, never with snprintf.
 *
 * A reply is "<RC>[ <size>] <flag>*", RC being HD, VA, EN, NS, EX, NF, MN or
 * ME. It is split with the offset tokenizer and each returned flag's token
 * goes through the overflow-checked number parsers. A code the command
 * cannot produce, a malformed token or an opaque that does not match is a
 * protocol violation and closes the connection (mcr__conn_fail), so the
 * stream never desyncs; unknown return flags are skipped, since newer
 * servers add some. Values (and text keys) stay in the node's receive
 * buffer and are recorded as offsets, turned into pointers only when every
 * read of the call is done, because the buffer may move while it grows.
 *
 * Meta values are bytes as given and as stored: no serde, no compression,
 * client flags untouched (like append / prepend); a caller that wants the
 * codec on top applies it itself. A single command with q gets an "mn"
 * behind it, so the call still knows when the server is done.
 *
 * A pipeline groups its commands per node, sends each group in quiet mode
 * with O<index> plus a closing mn, and reads each node's replies up to MN.
 * (An ms / md / ma that asks for data goes without q: memcached's q hides
 * their whole success reply, the data with it.)
 * Replies arrive in request order, so a reply for command i proves that the
 * commands sent before it on that node completed silently (their implied
 * status). Error lines carry no opaque: they are charged to the commands
 * between two matched replies, one to one when the counts agree, to all of
 * them when they do not. A node that fails costs only its unanswered
 * commands.
 */
#include <stddef.h>
#include <string.h>

#include "internal.h"

/* ------------------------------------------------------------ tables */

/* Flags each command accepts (anything else is MCR_EINVAL). */
#define MG_FLAGS                                                               \
  (MCR_META_VALUE | MCR_META_RET_CAS | MCR_META_RET_FLAGS | MCR_META_RET_TTL | \
   MCR_META_RET_HIT | MCR_META_RET_LAST | MCR_META_RET_SIZE |                  \
   MCR_META_RET_KEY | MCR_META_QUIET | MCR_META_BASE64 | MCR_META_NO_BUMP |    \
   MCR_META_OPAQUE | MCR_META_TTL | MCR_META_VIVIFY | MCR_META_RECACHE)
#define MS_FLAGS                                                            \
  (MCR_META_RET_CAS | MCR_META_RET_KEY | MCR_META_QUIET | MCR_META_BASE64 | \
   MCR_META_INVALIDATE | MCR_META_OPAQUE | MCR_META_TTL |                   \
   MCR_META_COMPARE_CAS | MCR_META_SET_FLAGS | MCR_META_MODE)
#define MD_FLAGS                                                               \
  (MCR_META_RET_KEY | MCR_META_QUIET | MCR_META_BASE64 | MCR_META_INVALIDATE | \
   MCR_META_OPAQUE | MCR_META_TTL | MCR_META_COMPARE_CAS |                     \
   MCR_META_REMOVE_VALUE)
#define MA_FLAGS                                                             \
  (MCR_META_VALUE | MCR_META_RET_CAS | MCR_META_RET_TTL | MCR_META_RET_KEY | \
   MCR_META_QUIET | MCR_META_BASE64 | MCR_META_OPAQUE | MCR_META_TTL |       \
   MCR_META_VIVIFY | MCR_META_COMPARE_CAS | MCR_META_DELTA |                 \
   MCR_META_INITIAL | MCR_META_MODE)

/* Reply codes, as bits so each command can list the ones it may get. */
enum {
  RC_HD = 1 << 0,
  RC_VA = 1 << 1,
  RC_EN = 1 << 2,
  RC_NS = 1 << 3,
  RC_EX = 1 << 4,
  RC_NF = 1 << 5,
  RC_MN = 1 << 6,
  RC_ME = 1 << 7,
  RC_ERR = 1 << 8 /* ERROR / CLIENT_ERROR / SERVER_ERROR line */
};

static uint32_t flags_of(char op) {
  switch (op) {
    case 'g':
      return MG_FLAGS;
    case 's':
      return MS_FLAGS;
    case 'd':
      return MD_FLAGS;
    case 'a':
      return MA_FLAGS;
  }
  return 0;
}

static int codes_of(char op) {
  switch (op) {
    case 'g':
      return RC_HD | RC_VA | RC_EN;
    case 's':
      return RC_HD | RC_NS | RC_EX | RC_NF;
    case 'd':
      return RC_HD | RC_NF | RC_EX;
    case 'a':
      return RC_HD | RC_VA | RC_NF | RC_NS | RC_EX;
  }
  return 0;
}

/* The status a reply code stands for. */
static int status_of(int code) {
  switch (code) {
    case RC_EN:
      return MCR_MISS;
    case RC_NS:
      return MCR_NOT_STORED;
    case RC_EX:
      return MCR_EXISTS;
    case RC_NF:
      return MCR_NOT_FOUND;
  }
  return MCR_OK;
}

/* What a quiet command that got no reply did: mg missed, the rest
 * succeeded (q hides only those two outcomes). */
static int implied_status(char op) {
  return op == 'g' ? MCR_MISS : MCR_OK;
}

/* ------------------------------------------------------------ validation */

/* Checks one command's arguments, recording a message on failure. Returns
 * 0, MCR_EINVAL (unknown op, a flag the command does not take, bad mode, a
 * meaningless combination), MCR_ERANGE (a TTL token beyond memcached's
 * 32-bit parser), MCR_EKEY or MCR_ETOOBIG. */
static int check_cmd(mcr_client_t* c, char op, const char* key, size_t key_len,
                     const void* value, size_t value_len,
                     const mcr_meta_opts_t* o) {
  uint32_t allowed = flags_of(op);
  uint32_t f = o->flags;
  if (!allowed)
    return mcr__set_error(c, MCR_EINVAL, "unknown meta op '%c'", op);
  if (f & ~allowed)
    return mcr__set_error(c, MCR_EINVAL, "flags 0x%x not valid for m%c",
                          (unsigned)(f & ~allowed), op);
  if (f & MCR_META_MODE) {
    const char* modes = op == 's' ? "SEAPR" : "ID+-";
    if (o->mode == '\0' || !strchr(modes, o->mode))
      return mcr__set_error(c, MCR_EINVAL, "mode '%c' not valid for m%c",
                            o->mode ? o->mode : '0', op);
  }
  /* memcached acts on these only in combination (protocol.txt). */
  if ((op == 's' && (f & MCR_META_INVALIDATE) && !(f & MCR_META_COMPARE_CAS)) ||
      (op == 'd' && (f & MCR_META_TTL) && !(f & MCR_META_INVALIDATE)) ||
      (op == 'a' && (f & MCR_META_INITIAL) && !(f & MCR_META_VIVIFY)))
    return mcr__set_error(c, MCR_EINVAL,
                          "m%c: ms I needs C, md T needs I, ma J needs N", op);
  int rc;
  if (((f & MCR_META_TTL) && (rc = mcr__check_ttl(c, o->ttl))) ||
      ((f & MCR_META_VIVIFY) && (rc = mcr__check_ttl(c, o->vivify_ttl))) ||
      ((f & MCR_META_RECACHE) && (rc = mcr__check_ttl(c, o->recache_ttl))))
    return rc;

  if (f & MCR_META_BASE64) {
    if (!key || key_len == 0 || key_len > MCR__BINKEY_MAX)
      return mcr__set_error(c, MCR_EKEY,
                            "binary key of %zu bytes: 1..%d allowed",
                            key ? key_len : 0, MCR__BINKEY_MAX);
  } else if ((rc = mcr__check_key(c, key, key_len))) {
    return rc;
  }
  if (op == 's') {
    if (!value && value_len)
      return mcr__set_error(c, MCR_EINVAL, "NULL value of length %zu",
                            value_len);
    if (value_len > c->opts.item_size_max)
      return mcr__set_error(c, MCR_ETOOBIG,
                            "value of %zu bytes over item_size_max %zu",
                            value_len, c->opts.item_size_max);
  }
  return 0;
}

/* ------------------------------------------------------------ requests */

/* Longest request line: "ms ", a 250-byte key, the data length and every
 * flag ms can carry with 20-digit tokens stays far below this. */
#define LINE_RESERVE 512

/* Values shorter than this are copied into the request buffer; longer ones
 * get their own iovec, so large values are never copied. */
#define COPY_MAX 4096

/* iovecs per sendmsg; a longer pipeline is sent in several writes. */
#define SEG_MAX 64

/* A request being assembled: wbuf pieces (by offset, since wbuf may move
 * while it grows) interleaved with caller values. */
typedef struct {
  mcr_client_t* c;
  mcr__node_t* n;
  struct {
    const void* ext; /* caller bytes, or NULL for wbuf[off, off + len) */
    size_t off, len;
  } seg[SEG_MAX];
  int nseg;
} req_t;

static void req_init(req_t* q, mcr_client_t* c, mcr__node_t* n) {
  q->c = c;
  q->n = n;
  q->nseg = 0;
  c->wbuf.len = 0;
}

/* Sends what has been assembled. On failure the connection is closed (by
 * mcr__conn_send), so no half request stays on a live stream. */
static int req_flush(req_t* q) {
  struct iovec iov[SEG_MAX];
  for (int i = 0; i < q->nseg; i++) {
    iov[i].iov_base =
        q->seg[i].ext ? (void*)q->seg[i].ext : q->c->wbuf.data + q->seg[i].off;
    iov[i].iov_len = q->seg[i].len;
  }
  int rc = q->nseg ? mcr__conn_send(q->c, q->n, iov, q->nseg) : 0;
  q->nseg = 0;
  q->c->wbuf.len = 0;
  return rc;
}

/* Makes room for `extra` bytes at the end of wbuf and sets *out to them.
 * When the piece table is full and the next bytes would need a new piece,
 * what is assembled so far is sent first. Returns 0 or a negative error. */
static int req_room(req_t* q, size_t extra, char** out) {
  if (q->nseg == SEG_MAX && q->seg[SEG_MAX - 1].ext) {
    int rc = req_flush(q);
    if (rc)
      return rc;
  }
  if (mcr__buf_reserve(&q->c->wbuf, extra))
    return MCR_ENOMEM;
  *out = q->c->wbuf.data + q->c->wbuf.len;
  return 0;
}

/* Records that wbuf grew to `end` (inside the room req_room made). */
static void req_commit(req_t* q, const char* end) {
  mcr_buf_t* b = &q->c->wbuf;
  size_t start = b->len;
  b->len = (size_t)(end - b->data);
  if (q->nseg && !q->seg[q->nseg - 1].ext) {
    q->seg[q->nseg - 1].len += b->len - start;
    return;
  }
  q->seg[q->nseg].ext = NULL;
  q->seg[q->nseg].off = start;
  q->seg[q->nseg].len = b->len - start;
  q->nseg++;
}

/* Appends caller bytes: copied when short, referenced when long. */
static int req_bytes(req_t* q, const void* p, size_t len) {
  if (len < COPY_MAX) {
    char* w;
    int rc = req_room(q, len, &w);
    if (rc)
      return rc;
    if (len)
      memcpy(w, p, len);
    req_commit(q, w + len);
    return 0;
  }
  if (q->nseg == SEG_MAX) {
    int rc = req_flush(q);
    if (rc)
      return rc;
  }
  q->seg[q->nseg].ext = p;
  q->seg[q->nseg].len = len;
  q->nseg++;
  return 0;
}

/* Request flags in wire order. memcached applies flags in order, so the
 * ones that change the item come before the ones that report on it (a t
 * after T reports the new TTL, not the old one). `tok` says where the
 * token comes from: 0 none, 'u' / 'w' / 'i' a uint64_t / uint32_t /
 * int64_t field of the options at `off`, 'm' the mode character. */
static const struct {
  uint32_t bit;
  char ch;
  char tok;
  size_t off;
} wire_flags[] = {
    {MCR_META_BASE64, 'b', 0, 0},
    {MCR_META_INVALIDATE, 'I', 0, 0},
    {MCR_META_REMOVE_VALUE, 'x', 0, 0},
    {MCR_META_QUIET, 'q', 0, 0},
    {MCR_META_OPAQUE, 'O', 'w', offsetof(mcr_meta_opts_t, opaque)},
    {MCR_META_TTL, 'T', 'i', offsetof(mcr_meta_opts_t, ttl)},
    {MCR_META_VIVIFY, 'N', 'i', offsetof(mcr_meta_opts_t, vivify_ttl)},
    {MCR_META_RECACHE, 'R', 'i', offsetof(mcr_meta_opts_t, recache_ttl)},
    {MCR_META_COMPARE_CAS, 'C', 'u', offsetof(mcr_meta_opts_t, cas)},
    {MCR_META_SET_FLAGS, 'F', 'w', offsetof(mcr_meta_opts_t, client_flags)},
    {MCR_META_DELTA, 'D', 'u', offsetof(mcr_meta_opts_t, delta)},
    {MCR_META_INITIAL, 'J', 'u', offsetof(mcr_meta_opts_t, initial)},
    {MCR_META_MODE, 'M', 'm', 0},
    {MCR_META_NO_BUMP, 'u', 0, 0},
    {MCR_META_VALUE, 'v', 0, 0},
    {MCR_META_RET_CAS, 'c', 0, 0},
    {MCR_META_RET_FLAGS, 'f', 0, 0},
    {MCR_META_RET_TTL, 't', 0, 0},
    {MCR_META_RET_HIT, 'h', 0, 0},
    {MCR_META_RET_LAST, 'l', 0, 0},
    {MCR_META_RET_SIZE, 's', 0, 0},
    {MCR_META_RET_KEY, 'k', 0, 0},
};

/* Appends one checked command: its line, and for ms the value and its
 * "\r\n". The flags sent are exactly o->flags. */
static int req_cmd(req_t* q, char op, const char* key, size_t key_len,
                   const void* value, size_t value_len,
                   const mcr_meta_opts_t* o) {
  char* p;
  int rc = req_room(q, LINE_RESERVE, &p);
  if (rc)
    return rc;
  *p++ = 'm';
  *p++ = op;
  *p++ = ' ';
  if (o->flags & MCR_META_BASE64) {
    p += mcr__base64_encode(key, key_len, p);
  } else {
    memcpy(p, key, key_len);
    p += key_len;
  }
  if (op == 's') {
    *p++ = ' ';
    p += mcr__u64_to_dec(p, value_len);
  }
  const char* base = (const char*)o;
  for (size_t i = 0; i < sizeof wire_flags / sizeof wire_flags[0]; i++) {
    if (!(o->flags & wire_flags[i].bit))
      continue;
    *p++ = ' ';
    *p++ = wire_flags[i].ch;
    const void* field = base + wire_flags[i].off;
    switch (wire_flags[i].tok) {
      case 'u':
        p += mcr__u64_to_dec(p, *(const uint64_t*)field);
        break;
      case 'w':
        p += mcr__u64_to_dec(p, *(const uint32_t*)field);
        break;
      case 'i':
        p += mcr__i64_to_dec(p, *(const int64_t*)field);
        break;
      case 'm':
        *p++ = o->mode;
        break;
    }
  }
  *p++ = '\r';
  *p++ = '\n';
  req_commit(q, p);
  if (op != 's')
    return 0;
  rc = req_bytes(q, value, value_len);
  if (rc)
    return rc;
  return req_bytes(q, "\r\n", 2);
}

/* ------------------------------------------------------------ replies */

/* One parsed reply line. Offsets are into the node's receive buffer. */
typedef struct {
  int code;        /* RC_* */
  size_t line_off; /* whole line (RC_ME, RC_ERR) */
  size_t line_len;
  size_t val_off;   /* data block, with MCR_MR_VALUE */
  size_t key_off;   /* returned key, when key_in_rbuf */
  bool key_in_rbuf; /* false: r->key is arena memory (decoded base64) */
} reply_t;

#define REPLY_TOK_MAX 32

static int code_of(const char* line, size_t len) {
  if (len < 2 || (len > 2 && line[2] != ' '))
    return 0;
  static const struct {
    char s[3];
    int code;
  } codes[] = {{"HD", RC_HD}, {"VA", RC_VA}, {"EN", RC_EN}, {"NS", RC_NS},
               {"EX", RC_EX}, {"NF", RC_NF}, {"MN", RC_MN}, {"ME", RC_ME}};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (line[0] == codes[i].s[0] && line[1] == codes[i].s[1])
      return codes[i].code;
  return 0;
}

/* Parses the return flags of a reply line into r (have bits, numbers,
 * W/X/Z). A text key is left in the buffer (rp->key_off); a base64 key
 * (flag b in the reply) is decoded into the arena. Returns 0 or -1 on a
 * malformed token, MCR_ENOMEM when the arena is exhausted. */
static int parse_flags(mcr_client_t* c, const char* line, const mcr__tok_t* t,
                       int nt, size_t line_off, mcr_meta_result_t* r,
                       reply_t* rp) {
  bool b64 = false;
  const char* key = NULL;
  size_t key_len = 0;
  for (int i = 0; i < nt; i++) {
    const char* v = line + t[i].off + 1;
    size_t vl = t[i].len - 1u;
    uint64_t u;
    switch (line[t[i].off]) {
      case 'c':
        if (mcr__dec_to_u64(v, vl, &r->cas))
          return -1;
        r->have |= MCR_MR_CAS;
        break;
      case 'f':
        if (mcr__dec_to_u64(v, vl, &u) || u > UINT32_MAX)
          return -1;
        r->client_flags = (uint32_t)u;
        r->have |= MCR_MR_FLAGS;
        break;
      case 't':
        if (mcr__dec_to_i64(v, vl, &r->ttl))
          return -1;
        r->have |= MCR_MR_TTL;
        break;
      case 'h':
        if (vl != 1 || (v[0] != '0' && v[0] != '1'))
          return -1;
        r->hit = v[0] == '1';
        r->have |= MCR_MR_HIT;
        break;
      case 'l':
        if (mcr__dec_to_u64(v, vl, &r->last_access))
          return -1;
        r->have |= MCR_MR_LAST;
        break;
      case 's':
        if (mcr__dec_to_u64(v, vl, &r->size))
          return -1;
        r->have |= MCR_MR_SIZE;
        break;
      case 'O':
        if (mcr__dec_to_u64(v, vl, &u) || u > UINT32_MAX)
          return -1;
        r->opaque = (uint32_t)u;
        r->have |= MCR_MR_OPAQUE;
        break;
      case 'k':
        if (vl == 0)
          return -1;
        key = v;
        key_len = vl;
        r->have |= MCR_MR_KEY;
        break;
      case 'b':
        if (vl)
          return -1;
        b64 = true;
        break;
      case 'W':
      case 'X':
      case 'Z':
        if (vl)
          return -1;
        if (line[t[i].off] == 'W')
          r->win = 1;
        if (line[t[i].off] == 'X')
          r->stale = 1;
        if (line[t[i].off] == 'Z')
          r->won_already = 1;
        break;
      default:
        break; /* a flag newer than this client: skip it */
    }
  }
  if (!key)
    return 0;
  if (!b64) {
    rp->key_in_rbuf = true;
    rp->key_off = line_off + (size_t)(key - line);
    r->key_len = key_len;
    return 0;
  }
  char* out = mcr__arena_alloc(&c->arena, key_len / 4 * 3 + 1);
  if (!out)
    return MCR_ENOMEM;
  long dl = mcr__base64_decode(key, key_len, out);
  if (dl <= 0)
    return -1;
  rp->key_in_rbuf = false;
  r->key = out;
  r->key_len = (size_t)dl;
  return 0;
}

/* Reads one reply from n into r / rp. Returns 0 with rp->code set (RC_ERR
 * for an error line: the server's message is the last error and
 * rp->line_off its code, the connection stays open), or a negative error
 * after which the connection is closed. `accept` lists the codes this
 * caller can take; any other one is a protocol violation. */
static int read_reply(mcr_client_t* c, mcr__node_t* n, int accept,
                      mcr_meta_result_t* r, reply_t* rp) {
  size_t off, len;
  int rc = mcr__conn_line(c, n, &off, &len);
  if (rc)
    return rc;
  memset(r, 0, sizeof *r);
  memset(rp, 0, sizeof *rp);
  rp->line_off = off;
  rp->line_len = len;
  const char* line = n->conn.rbuf + off;
  int code = code_of(line, len);
  if (!code) {
    rc = mcr__unexpected_line(c, n, off, len);
    if (rc == MCR_EPROTO)
      return rc; /* connection already closed */
    rp->code = RC_ERR;
    r->status = rc;
    return 0;
  }
  if (!(code & accept))
    return mcr__conn_fail(c, n, MCR_EPROTO, "unexpected meta reply code");
  rp->code = code;
  r->status = status_of(code);
  if (code == RC_ME)
    return 0;
  if (code == RC_MN) {
    if (len != 2)
      return mcr__conn_fail(c, n, MCR_EPROTO, "malformed MN");
    return 0;
  }

  mcr__tok_t t[REPLY_TOK_MAX];
  int nt = len > 3 ? mcr__tokenize(line + 3, len - 3, t, REPLY_TOK_MAX) : 0;
  if (nt < 0 || (len == 3))
    return mcr__conn_fail(c, n, MCR_EPROTO, "malformed meta reply line");
  int first = 0;
  uint64_t vsize = 0;
  if (code == RC_VA) {
    if (nt < 1 || mcr__dec_to_u64(line + 3 + t[0].off, t[0].len, &vsize))
      return mcr__conn_fail(c, n, MCR_EPROTO, "malformed VA size");
    first = 1;
  }
  rc = parse_flags(c, line + 3, t + first, nt - first, off + 3, r, rp);
  if (rc == MCR_ENOMEM)
    return mcr__conn_fail(c, n, MCR_ENOMEM, "out of memory for a meta key");
  if (rc)
    return mcr__conn_fail(c, n, MCR_EPROTO, "malformed meta reply flag");
  if (code == RC_VA) {
    /* The line is parsed: from here the buffer may move. */
    rc = mcr__conn_block(c, n, (size_t)vsize, &rp->val_off);
    if (rc)
      return rc;
    r->value_len = (size_t)vsize;
    r->have |= MCR_MR_VALUE;
  }
  return 0;
}

/* Turns the offsets of a finished call into pointers. */
static void resolve(const mcr__node_t* n, mcr_meta_result_t* r,
                    const reply_t* rp) {
  if (r->have & MCR_MR_VALUE)
    r->value = n->conn.rbuf + rp->val_off;
  if ((r->have & MCR_MR_KEY) && rp->key_in_rbuf)
    r->key = n->conn.rbuf + rp->key_off;
}

/* ------------------------------------------------------------ one command */

static const char mn_line[] = "mn\r\n";

/* The host-stats class of a meta command. */
static mcr__opkind_t op_kind(char op) {
  return op == 'g'   ? MCR__OP_GET
         : op == 's' ? MCR__OP_SET
         : op == 'd' ? MCR__OP_DELETE
                     : MCR__OP_OTHER;
}

/* One attempt of a single meta command on node n: send, read, check. */
static int meta_try(mcr_client_t* c, mcr__node_t* n, char op, const char* key,
                    size_t key_len, const void* value, size_t value_len,
                    const mcr_meta_opts_t* o, mcr_meta_result_t* r,
                    reply_t* rp) {
  int rc;
  memset(r, 0, sizeof *r);
  bool quiet = o->flags & MCR_META_QUIET;
  req_t q;
  req_init(&q, c, n);
  rc = mcr__conn_begin(c, n);
  if (!rc)
    rc = req_cmd(&q, op, key, key_len, value, value_len, o);
  if (!rc && quiet)
    rc = req_bytes(&q, mn_line, 4);
  if (!rc)
    rc = req_flush(&q);
  if (rc)
    mcr__conn_close(n); /* never leave a half request behind */

  *rp = (reply_t){0};
  if (!rc) {
    int accept = codes_of(op) | (quiet ? RC_MN : 0);
    rc = read_reply(c, n, accept, r, rp);
    if (!rc && rp->code == RC_MN) {
      r->status = implied_status(op);
    } else if (!rc && quiet) {
      /* The reply was not suppressed; the mn answer follows it. */
      mcr_meta_result_t mr;
      reply_t mrp;
      rc = read_reply(c, n, RC_MN, &mr, &mrp);
      if (!rc && mrp.code != RC_MN)
        rc = mcr__conn_fail(c, n, MCR_EPROTO, "error line instead of MN");
    }
    if (!rc && rp->code != RC_MN && rp->code != RC_ERR &&
        (o->flags & MCR_META_OPAQUE) &&
        (!(r->have & MCR_MR_OPAQUE) || r->opaque != o->opaque))
      rc = mcr__conn_fail(c, n, MCR_EPROTO, "meta reply for another opaque");
    if (!rc)
      rc = r->status;
  }
  return rc;
}

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
  int rc = check_cmd(c, op, key, key_len, value, value_len, o);
  if (rc)
    return r->status = rc;

  /* Binary keys route on their raw bytes: the key memcached stores. */
  mcr__node_t* n = mcr__route(c, key, key_len);
  reply_t rp;
  rc = MCR__RETRY_STALE(
      meta_try(c, n, op, key, key_len, value, value_len, o, r, &rp));
  mcr__hs_op(n, op_kind(op), rc);
  if (rc < 0) {
    memset(r, 0, sizeof *r);
    rc = mcr__soften(c, rc, op == 'g');
  } else {
    resolve(n, r, &rp);
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
  mcr__node_t* n = &c->nodes[node];
  struct iovec iov = {.iov_base = (void*)mn_line, .iov_len = 4};
  mcr_meta_result_t r;
  reply_t rp;
  int rc;
  for (int attempt = 0;; attempt++) { /* once more after MCR__ESTALE */
    rc = mcr__conn_begin(c, n);
    if (!rc)
      rc = mcr__conn_send(c, n, &iov, 1);
    if (!rc)
      rc = read_reply(c, n, RC_MN, &r, &rp);
    if (rc != MCR__ESTALE || attempt)
      break;
  }
  if (rc)
    return rc == MCR__ESTALE ? MCR_ECLOSED : rc;
  return rp.code == RC_MN ? MCR_OK : r.status;
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
  struct iovec iov[3] = {{.iov_base = (void*)"me ", .iov_len = 3},
                         {.iov_base = (void*)key, .iov_len = key_len},
                         {.iov_base = (void*)"\r\n", .iov_len = 2}};
  mcr_meta_result_t r;
  reply_t rp;
  for (int attempt = 0;; attempt++) { /* once more after MCR__ESTALE */
    rc = mcr__conn_begin(c, n);
    if (!rc)
      rc = mcr__conn_send(c, n, iov, 3);
    if (!rc)
      rc = read_reply(c, n, RC_ME | RC_EN, &r, &rp);
    if (rc != MCR__ESTALE || attempt)
      break;
  }
  if (rc == MCR__ESTALE)
    rc = MCR_ECLOSED;
  if (!rc && rp.code == RC_ERR)
    rc = r.status;
  if (!rc && rp.code == RC_EN)
    rc = MCR_MISS;
  if (!rc) {
    /* Copied out: the line is only a few dozen bytes and wants a NUL. */
    char* s = mcr__arena_alloc(&c->arena, rp.line_len + 1);
    if (!s)
      return MCR_ENOMEM;
    memcpy(s, n->conn.rbuf + rp.line_off, rp.line_len);
    s[rp.line_len] = '\0';
    *text = s;
  }
  return rc < 0 ? mcr__soften(c, rc, true) : rc;
}

/* ------------------------------------------------------------ pipeline */

/* Where a pipeline command stands while its node's replies are read. */
enum { P_SILENT = 0, P_REPLIED, P_ERRLINE };

typedef struct {
  size_t node; /* index in c->nodes */
  size_t pos;  /* position in the node's request order */
  int state;   /* P_* */
  reply_t rp;  /* offsets of its reply */
} pcmd_t;

typedef struct {
  size_t start, count; /* slice of the order array */
  int err;             /* 0, or the failure of the whole node */
  size_t fail_from;    /* first position the failure applies to */
  size_t cur;          /* first position not yet known to be done */
  size_t errs;         /* error lines since cur, charged to cur, cur+1... */
  int first_err;       /* the first of them */
} pnode_t;

/* One node's part of a pipeline call, for mcr__conn_gather. */
typedef struct {
  mcr_meta_cmd_t* cmds;
  size_t n;
  pcmd_t* pc;
  const size_t* order;
  pnode_t* pn;
  size_t j; /* the node's index */
} pstep_t;

/* 1 when a complete reply (its line and, for VA, its data block) is in the
 * node's buffer, 0 when more bytes are needed, -1 for a line longer than
 * any reply. A malformed VA size counts as complete: read_reply refuses
 * it. */
static int reply_ready(mcr__node_t* node) {
  const mcr__conn_t* k = &node->conn;
  size_t avail = k->rlen - k->rpos;
  if (avail == 0)
    return 0; /* rbuf may not even exist yet */
  const char* b = k->rbuf + k->rpos;
  const char* nl = memchr(b, '\n', avail);
  if (!nl)
    return avail > 8192 ? -1 : 0;
  size_t line = (size_t)(nl - b) + 1;
  if (line > 5 && b[0] == 'V' && b[1] == 'A' && b[2] == ' ') {
    uint64_t size = 0;
    size_t d = 3;
    while (d < line && b[d] >= '0' && b[d] <= '9' && d < 3 + 19)
      size = size * 10 + (uint64_t)(b[d++] - '0');
    if (d > 3 && avail - line < size + 2)
      return 0;
  }
  return 1;
}

/* Files the node's next reply (complete in the buffer) under its command.
 * Returns 1 to go on, 0 after MN (the node is done), or the node's error
 * (also in pn->err / fail_from). */
static int pipeline_one(mcr_client_t* c, pstep_t* st) {
  mcr_meta_cmd_t* cmds = st->cmds;
  size_t n = st->n, j = st->j;
  pcmd_t* pc = st->pc;
  pnode_t* pn = st->pn;
  mcr__node_t* node = &c->nodes[j];
  const size_t* ord = st->order + pn->start;
  const int accept = RC_HD | RC_VA | RC_EN | RC_NS | RC_EX | RC_NF | RC_MN;
  mcr_meta_result_t r;
  reply_t rp;
  int rc = read_reply(c, node, accept, &r, &rp);
  if (rc) {
    pn->err = rc;
    pn->fail_from = pn->cur;
    return rc;
  }
  if (rp.code == RC_ERR) {
    if (pn->cur + pn->errs == pn->count) {
      /* More error lines than silent commands: the last one answered
       * the mn itself (a server without meta commands says ERROR). */
      pn->err = mcr__conn_fail(c, node, r.status,
                               "error line for mn: meta commands refused");
      pn->fail_from = pn->cur;
      return pn->err;
    }
    pcmd_t* p = &pc[ord[pn->cur + pn->errs]];
    p->state = P_ERRLINE;
    cmds[ord[pn->cur + pn->errs]].result.status = r.status;
    if (!pn->errs)
      pn->first_err = r.status;
    pn->errs++;
    return 1;
  }
  /* A matched reply at position `to`, or MN: everything in [pn->cur, to)
   * completed silently or produced the pending error lines. */
  size_t to = pn->count, idx = 0;
  if (rp.code != RC_MN) {
    if (!(r.have & MCR_MR_OPAQUE) || r.opaque >= n || pc[r.opaque].node != j ||
        pc[r.opaque].pos < pn->cur + pn->errs ||
        pc[r.opaque].state != P_SILENT ||
        !(rp.code & codes_of(cmds[r.opaque].op))) {
      pn->err = mcr__conn_fail(c, node, MCR_EPROTO,
                               "pipeline reply matches no command");
      pn->fail_from = pn->cur;
      return pn->err;
    }
    idx = r.opaque;
    to = pc[idx].pos;
  }
  if (pn->errs && pn->errs < to - pn->cur) {
    /* Ambiguous: any of them may have failed. Charge them all. */
    for (size_t k = pn->cur + pn->errs; k < to; k++) {
      pc[ord[k]].state = P_ERRLINE;
      cmds[ord[k]].result.status = pn->first_err;
    }
  }
  if (rp.code == RC_MN)
    return 0;
  r.have &= ~MCR_MR_OPAQUE; /* the index is ours, not the caller's */
  r.opaque = 0;
  cmds[idx].result = r;
  pc[idx].state = P_REPLIED;
  pc[idx].rp = rp;
  pn->cur = to + 1;
  pn->errs = 0;
  pn->first_err = 0;
  return 1;
}

/* Reads a node's replies as they arrive (mcr__step_fn): each complete one
 * is filed under its command; MN ends the node's part. */
static int pipeline_step(mcr_client_t* c, mcr__node_t* node, void* ctx) {
  int ready;
  while ((ready = reply_ready(node)) == 1) {
    int rc = pipeline_one(c, ctx);
    if (rc != 1)
      return rc;
  }
  if (ready < 0)
    return mcr__conn_fail(c, node, MCR_EPROTO, "reply line too long");
  return 1;
}

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

int mcr_client_meta_pipeline(mcr_client_t* c, mcr_meta_cmd_t* cmds, size_t n) {
  if (!c || (!cmds && n))
    return MCR_EINVAL;
  mcr__call_start(c);
  if (n > UINT32_MAX) /* opaques are 32-bit command indexes */
    return mcr__set_error(c, MCR_EINVAL, "pipeline of %zu commands", n);
  for (size_t i = 0; i < n; i++) {
    mcr_meta_cmd_t* m = &cmds[i];
    memset(&m->result, 0, sizeof m->result);
    int rc = check_cmd(c, m->op, m->key, m->key_len, m->value, m->value_len,
                       &m->opts);
    if (rc)
      return rc;
  }
  if (n == 0)
    return 0;

  pcmd_t* pc = mcr__arena_alloc(&c->arena, n * sizeof *pc);
  size_t* order = mcr__arena_alloc(&c->arena, n * sizeof *order);
  pnode_t* pn = mcr__arena_alloc(&c->arena, c->nnodes * sizeof *pn);
  if (!pc || !order || !pn)
    return MCR_ENOMEM;
  memset(pn, 0, c->nnodes * sizeof *pn);
  memset(pc, 0, n * sizeof *pc);

  /* Group per node, keeping the caller's order inside each group. The
   * keys are routed 64 at a time, so their hashes are computed together
   * (mcr__route_many). */
  for (size_t base = 0; base < n; base += 64) {
    const char* keys[64];
    size_t lens[64], node[64];
    size_t m = n - base < 64 ? n - base : 64;
    for (size_t k = 0; k < m; k++) {
      keys[k] = cmds[base + k].key;
      lens[k] = cmds[base + k].key_len;
    }
    mcr__route_many(c, m, keys, lens, node);
    for (size_t k = 0; k < m; k++) {
      pc[base + k].node = node[k];
      pn[node[k]].count++;
    }
  }
  for (size_t j = 0, at = 0; j < c->nnodes; j++) {
    pn[j].start = at;
    at += pn[j].count;
    pn[j].count = 0;
  }
  for (size_t i = 0; i < n; i++) {
    pnode_t* g = &pn[pc[i].node];
    pc[i].pos = g->count++;
    order[g->start + pc[i].pos] = i;
  }

  /* Every node's requests go out before any reply is read. */
  for (size_t j = 0; j < c->nnodes; j++) {
    if (!pn[j].count)
      continue;
    req_t q;
    req_init(&q, c, &c->nodes[j]);
    int rc = mcr__conn_begin(c, &c->nodes[j]);
    for (size_t k = 0; !rc && k < pn[j].count; k++) {
      size_t i = order[pn[j].start + k];
      mcr_meta_cmd_t* m = &cmds[i];
      mcr_meta_opts_t o = m->opts;
      o.flags = pipeline_flags(m);
      o.opaque = (uint32_t)i; /* the reply's key back to command i */
      rc = req_cmd(&q, m->op, m->key, m->key_len, m->value, m->value_len, &o);
    }
    if (!rc)
      rc = req_bytes(&q, mn_line, 4);
    if (!rc)
      rc = req_flush(&q);
    if (rc) {
      /* Part of the group may be out already: drop the connection so its
       * replies can never be read by a later call. */
      mcr__conn_close(&c->nodes[j]);
      pn[j].err = rc; /* fail_from 0: nothing is known */
    }
  }
  /* Then every node's replies are read as they arrive. */
  pstep_t* st = mcr__arena_alloc(&c->arena, c->nnodes * sizeof *st);
  mcr__node_t** gn = mcr__arena_alloc(&c->arena, c->nnodes * sizeof *gn);
  void** gctx = mcr__arena_alloc(&c->arena, c->nnodes * sizeof *gctx);
  int* gres = mcr__arena_alloc(&c->arena, c->nnodes * sizeof *gres);
  if (!st || !gn || !gctx || !gres)
    return MCR_ENOMEM;
  size_t ng = 0;
  for (size_t j = 0; j < c->nnodes; j++) {
    if (!pn[j].count || pn[j].err)
      continue;
    st[ng] = (pstep_t){cmds, n, pc, order, &pn[j], j};
    gn[ng] = &c->nodes[j];
    gctx[ng] = &st[ng];
    ng++;
  }
  if (ng)
    mcr__conn_gather(c, ng, gn, gctx, pipeline_step, gres);
  for (size_t k = 0; k < ng; k++) {
    pnode_t* g = st[k].pn;
    if (gres[k] < 0 && !g->err) { /* timeout or a lost connection */
      g->err = gres[k];
      g->fail_from = g->cur;
    }
  }

  /* All reads are done: offsets become pointers, silence becomes status. */
  int ok = 0;
  for (size_t i = 0; i < n; i++) {
    mcr_meta_result_t* r = &cmds[i].result;
    pnode_t* g = &pn[pc[i].node];
    if (pc[i].state == P_REPLIED) {
      resolve(&c->nodes[pc[i].node], r, &pc[i].rp);
    } else if (g->err && pc[i].pos >= g->fail_from) {
      memset(r, 0, sizeof *r);
      r->status = g->err;
    } else if (pc[i].state == P_SILENT) {
      r->status = implied_status(cmds[i].op);
    }
    if (r->status == MCR__ESTALE)
      r->status = MCR_ECLOSED; /* not retried inside a pipeline */
    mcr__hs_op(&c->nodes[pc[i].node], op_kind(cmds[i].op), r->status);
    if (r->status < 0)
      r->status = mcr__soften(c, r->status, cmds[i].op == 'g');
    if (r->status == MCR_OK)
      ok++;
  }
  return ok;
}
