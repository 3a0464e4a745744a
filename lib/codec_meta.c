/* codec_meta.c — memcached's meta protocol (mg ms md ma mn me), as pure
 * functions: argument checks, request lines, reply decoders, and the
 * bookkeeping of quiet pipelines.
 *
 * A meta request is one line, "<cm> <key>[ <datalen>] <flag>*\r\n", plus a
 * data block for ms. Every argument is checked before a byte is written:
 * the key (text rules, or 1..186 raw bytes sent base64 with the b flag),
 * the value size against item_size_max, and the flags, which must be ones
 * the command knows, with tokens in the range memcached parses (TTLs are
 * 32-bit there; a larger one would be misread silently). Numbers are
 * written by hand, never with snprintf.
 *
 * A reply is "<RC>[ <size>] <flag>*", RC being HD, VA, EN, NS, EX, NF, MN
 * or ME. It is split with the offset tokenizer and each returned flag's
 * token goes through the overflow-checked number parsers. A code the
 * command cannot produce, a malformed token, a value over value_max or an
 * opaque that does not match is MCR_EPROTO (the stream is then lost);
 * unknown return flags are skipped, since newer servers add some. Values
 * and keys are recorded as offsets (internal.h, "decoders").
 *
 * A pipeline's commands on a node go quiet with O<index>, closed by mn.
 * (An ms / md / ma that asks for data goes without q: memcached's q hides
 * their whole success reply, the data with it.) Replies arrive in request
 * order, so a reply for command i proves that the commands sent before it
 * on that node completed silently (their implied status). Error lines
 * carry no opaque: they are charged to the commands between two matched
 * replies, one to one when the counts agree, to all of them when they do
 * not.
 */
#include <stdio.h>
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

int mcr__meta_codes(char op) {
  switch (op) {
    case 'g':
      return MCR__RC_HD | MCR__RC_VA | MCR__RC_EN;
    case 's':
      return MCR__RC_HD | MCR__RC_NS | MCR__RC_EX | MCR__RC_NF;
    case 'd':
      return MCR__RC_HD | MCR__RC_NF | MCR__RC_EX;
    case 'a':
      return MCR__RC_HD | MCR__RC_VA | MCR__RC_NF | MCR__RC_NS | MCR__RC_EX;
  }
  return 0;
}

/* The status a reply code stands for. */
static int status_of(int code) {
  switch (code) {
    case MCR__RC_EN:
      return MCR_MISS;
    case MCR__RC_NS:
      return MCR_NOT_STORED;
    case MCR__RC_EX:
      return MCR_EXISTS;
    case MCR__RC_NF:
      return MCR_NOT_FOUND;
  }
  return MCR_OK;
}

/* ------------------------------------------------------------ checks */

static bool ttl_ok(int64_t ttl) {
  return ttl >= INT32_MIN && ttl <= INT32_MAX;
}

int mcr__meta_check(char op, const char* key, size_t key_len, const void* value,
                    size_t value_len, const mcr_meta_opts_t* o,
                    size_t item_size_max, char* err, size_t errlen) {
  uint32_t allowed = flags_of(op);
  uint32_t f = o->flags;
  if (!allowed) {
    snprintf(err, errlen, "unknown meta op '%c'", op ? op : '0');
    return MCR_EINVAL;
  }
  if (f & ~allowed) {
    snprintf(err, errlen, "flags 0x%x not valid for m%c",
             (unsigned)(f & ~allowed), op);
    return MCR_EINVAL;
  }
  if (f & MCR_META_MODE) {
    const char* modes = op == 's' ? "SEAPR" : "ID+-";
    if (o->mode == '\0' || !strchr(modes, o->mode)) {
      snprintf(err, errlen, "mode '%c' not valid for m%c",
               o->mode ? o->mode : '0', op);
      return MCR_EINVAL;
    }
  }
  /* memcached acts on these only in combination (protocol.txt). */
  if ((op == 's' && (f & MCR_META_INVALIDATE) && !(f & MCR_META_COMPARE_CAS)) ||
      (op == 'd' && (f & MCR_META_TTL) && !(f & MCR_META_INVALIDATE)) ||
      (op == 'a' && (f & MCR_META_INITIAL) && !(f & MCR_META_VIVIFY))) {
    snprintf(err, errlen, "m%c: ms I needs C, md T needs I, ma J needs N", op);
    return MCR_EINVAL;
  }
  if (((f & MCR_META_TTL) && !ttl_ok(o->ttl)) ||
      ((f & MCR_META_VIVIFY) && !ttl_ok(o->vivify_ttl)) ||
      ((f & MCR_META_RECACHE) && !ttl_ok(o->recache_ttl))) {
    snprintf(err, errlen, "ttl out of range");
    return MCR_ERANGE;
  }
  if (f & MCR_META_BASE64) {
    if (!key || key_len == 0 || key_len > MCR__BINKEY_MAX) {
      snprintf(err, errlen, "binary key of %zu bytes: 1..%d allowed",
               key ? key_len : 0, MCR__BINKEY_MAX);
      return MCR_EKEY;
    }
  } else if (!mcr__key_ok(key, key_len)) {
    size_t at;
    const char* why = mcr__key_why(key, key_len, &at);
    snprintf(err, errlen, "%s (byte %zu)", why, at);
    return MCR_EKEY;
  }
  if (op == 's') {
    if (!value && value_len) {
      snprintf(err, errlen, "NULL value of length %zu", value_len);
      return MCR_EINVAL;
    }
    if (value_len > item_size_max) {
      snprintf(err, errlen, "value of %zu bytes over item_size_max %zu",
               value_len, item_size_max);
      return MCR_ETOOBIG;
    }
  }
  return 0;
}

/* ------------------------------------------------------------ requests */

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

size_t mcr__meta_request(char* p, char op, const char* key, size_t key_len,
                         size_t value_len, const mcr_meta_opts_t* o) {
  char* start = p;
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
  return (size_t)(p - start);
}

/* ------------------------------------------------------------ replies */

#define REPLY_TOK_MAX 32

static int code_of(const char* line, size_t len) {
  if (len < 2 || (len > 2 && line[2] != ' '))
    return 0;
  static const struct {
    char s[3];
    int code;
  } codes[] = {{"HD", MCR__RC_HD}, {"VA", MCR__RC_VA}, {"EN", MCR__RC_EN},
               {"NS", MCR__RC_NS}, {"EX", MCR__RC_EX}, {"NF", MCR__RC_NF},
               {"MN", MCR__RC_MN}, {"ME", MCR__RC_ME}};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    if (line[0] == codes[i].s[0] && line[1] == codes[i].s[1])
      return codes[i].code;
  return 0;
}

/* Parses the return flags of a reply line (tokens t[0..nt) of the text at
 * line, which starts at offset line_off of the buffer) into rep. Returns
 * 0, or -1 on a malformed token. */
static int parse_flags(const char* line, const mcr__tok_t* t, int nt,
                       size_t line_off, mcr__meta_reply_t* rep) {
  mcr_meta_result_t* r = &rep->r;
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
        if (vl == 0 || vl > MCR__KEY_MAX)
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
  rep->key_off = line_off + (size_t)(key - line);
  rep->key_b64 = b64;
  r->key_len = key_len;
  if (b64) {
    /* Checked here, decoded when the call's results are read. */
    char raw[MCR__KEY_MAX];
    long dl = mcr__base64_decode(key, key_len, raw);
    if (dl <= 0)
      return -1;
    r->key_len = (size_t)dl;
  }
  return 0;
}

/* Parses one reply at buf[pos, len): returns 1 with *unit (its length,
 * data block included), 0 when it is not complete (d->need set when its
 * size is known), or MCR_EPROTO. An error line is a reply of code
 * MCR__RC_ERR whose status is the error. */
static int parse_reply(const char* buf, size_t pos, size_t len, int accept,
                       size_t value_max, mcr__meta_reply_t* rep, size_t* unit,
                       mcr__dec_t* d) {
  size_t avail = len - pos;
  size_t scan = avail < MCR__LINE_MAX + 2 ? avail : MCR__LINE_MAX + 2;
  const char* nl = memchr(buf + pos, '\n', scan);
  if (!nl) {
    if (avail > MCR__LINE_MAX + 1) {
      d->why = "reply line too long";
      return MCR_EPROTO;
    }
    return 0;
  }
  size_t end = (size_t)(nl - buf);
  if (end == pos || buf[end - 1] != '\r') {
    d->why = "reply line not ended by \\r\\n";
    return MCR_EPROTO;
  }
  size_t ll = end - 1 - pos;
  const char* line = buf + pos;
  memset(rep, 0, sizeof *rep);
  rep->line_off = pos;
  rep->line_len = ll;
  *unit = ll + 2;
  int code = code_of(line, ll);
  if (!code) {
    int err = mcr__error_line(line, ll);
    if (!err) {
      d->why = "unexpected reply";
      d->line_off = pos; /* quoted in the message */
      d->line_len = ll;
      return MCR_EPROTO;
    }
    rep->code = MCR__RC_ERR;
    rep->r.status = err;
    return 1;
  }
  if (!(code & accept)) {
    d->why = "unexpected meta reply code";
    return MCR_EPROTO;
  }
  rep->code = code;
  rep->r.status = status_of(code);
  if (code == MCR__RC_ME)
    return 1;
  if (code == MCR__RC_MN) {
    if (ll != 2) {
      d->why = "malformed MN";
      return MCR_EPROTO;
    }
    return 1;
  }
  mcr__tok_t t[REPLY_TOK_MAX];
  int nt = ll > 3 ? mcr__tokenize(line + 3, ll - 3, t, REPLY_TOK_MAX) : 0;
  if (nt < 0 || ll == 3) {
    d->why = "malformed meta reply line";
    return MCR_EPROTO;
  }
  int first = 0;
  uint64_t vsize = 0;
  if (code == MCR__RC_VA) {
    if (nt < 1 || mcr__dec_to_u64(line + 3 + t[0].off, t[0].len, &vsize)) {
      d->why = "malformed VA size";
      return MCR_EPROTO;
    }
    if (vsize > value_max) {
      d->why = "announced value larger than item_size_max";
      return MCR_EPROTO;
    }
    first = 1;
  }
  if (parse_flags(line + 3, t + first, nt - first, pos + 3, rep)) {
    d->why = "malformed meta reply flag";
    return MCR_EPROTO;
  }
  if (code == MCR__RC_VA) {
    size_t need = ll + 2 + (size_t)vsize + 2;
    if (avail < need) {
      d->need = need;
      return 0;
    }
    if (buf[pos + ll + 2 + vsize] != '\r' ||
        buf[pos + ll + 2 + vsize + 1] != '\n') {
      d->why = "data block not ended by \\r\\n";
      return MCR_EPROTO;
    }
    rep->val_off = pos + ll + 2;
    rep->r.value_len = (size_t)vsize;
    rep->r.have |= MCR_MR_VALUE;
    *unit = need;
  }
  return 1;
}

int mcr__meta_decode(void* vctx, const char* buf, size_t pos, size_t len,
                     mcr__dec_t* d) {
  mcr__meta_ctx_t* x = vctx;
  size_t unit;
  int accept = x->accept | (x->quiet ? MCR__RC_MN : 0);
  int rc = parse_reply(buf, pos, len, accept, x->value_max, &x->rep, &unit, d);
  if (rc <= 0)
    return rc ? rc : MCR__MORE;
  mcr__meta_reply_t* rep = &x->rep;
  if (rep->code == MCR__RC_MN) {
    rep->r.status = x->implied; /* quiet and suppressed */
  } else if (x->quiet) {
    /* The reply was not suppressed; the mn answer follows it. */
    mcr__meta_reply_t mn;
    size_t mn_unit;
    rc = parse_reply(buf, pos + unit, len, MCR__RC_MN, 0, &mn, &mn_unit, d);
    if (rc <= 0) {
      if (rc == 0 && d->need)
        d->need += unit;
      return rc ? rc : MCR__MORE;
    }
    if (mn.code != MCR__RC_MN) {
      d->why = "error line instead of MN";
      return MCR_EPROTO;
    }
    unit += mn_unit;
  }
  if (rep->code != MCR__RC_MN && rep->code != MCR__RC_ERR && x->want_opaque &&
      (!(rep->r.have & MCR_MR_OPAQUE) || rep->r.opaque != x->opaque)) {
    d->why = "meta reply for another opaque";
    return MCR_EPROTO;
  }
  d->used = unit;
  if (rep->code == MCR__RC_ERR) {
    d->line_off = rep->line_off;
    d->line_len = rep->line_len;
    return rep->r.status;
  }
  return MCR__DONE;
}

/* ------------------------------------------------------------ pipelines */

/* Files the node's next reply (complete in the buffer) under its command.
 * Returns 1 to go on, 0 after MN (the node is done), or MCR_EPROTO. */
static int pipe_one(mcr__pipe_ctx_t* x, mcr__meta_reply_t* rep, mcr__dec_t* d) {
  mcr_meta_cmd_t* cmds = x->cmds;
  mcr__pcmd_t* pc = x->pc;
  const size_t* ord = x->order;
  if (rep->code == MCR__RC_ERR) {
    if (x->cur + x->errs == x->count) {
      /* More error lines than silent commands: the last one answered the
       * mn itself (a server without meta commands says ERROR). The node
       * fails with that error, and its stream with it. */
      d->line_off = rep->line_off;
      d->line_len = rep->line_len;
      d->desync = true;
      return rep->r.status;
    }
    size_t i = ord[x->cur + x->errs];
    pc[i].state = MCR__P_ERRLINE;
    cmds[i].result.status = rep->r.status;
    if (!x->errs)
      x->first_err = rep->r.status;
    x->errs++;
    d->line_off = rep->line_off;
    d->line_len = rep->line_len;
    return 1;
  }
  /* A matched reply at position `to`, or MN: everything in [cur, to)
   * completed silently or produced the pending error lines. */
  size_t to = x->count, idx = 0;
  if (rep->code != MCR__RC_MN) {
    uint32_t op = rep->r.opaque;
    if (!(rep->r.have & MCR_MR_OPAQUE) || op >= x->n ||
        pc[op].node != x->node || pc[op].pos < x->cur + x->errs ||
        pc[op].state != MCR__P_SILENT ||
        !(rep->code & mcr__meta_codes(cmds[op].op))) {
      d->why = "pipeline reply matches no command";
      return MCR_EPROTO;
    }
    idx = op;
    to = pc[idx].pos;
  }
  if (x->errs && x->errs < to - x->cur) {
    /* Ambiguous: any of them may have failed. Charge them all. */
    for (size_t k = x->cur + x->errs; k < to; k++) {
      pc[ord[k]].state = MCR__P_ERRLINE;
      cmds[ord[k]].result.status = x->first_err;
    }
  }
  if (rep->code == MCR__RC_MN) {
    x->cur = x->count;
    return 0;
  }
  rep->r.have &= ~MCR_MR_OPAQUE; /* the index is ours, not the caller's */
  rep->r.opaque = 0;
  cmds[idx].result = rep->r;
  pc[idx].state = MCR__P_REPLIED;
  pc[idx].rep = *rep;
  x->cur = to + 1;
  x->errs = 0;
  x->first_err = 0;
  return 1;
}

int mcr__meta_pipe_decode(void* vctx, const char* buf, size_t pos, size_t len,
                          mcr__dec_t* d) {
  mcr__pipe_ctx_t* x = vctx;
  const int accept = MCR__RC_HD | MCR__RC_VA | MCR__RC_EN | MCR__RC_NS |
                     MCR__RC_EX | MCR__RC_NF | MCR__RC_MN;
  for (;;) {
    mcr__meta_reply_t rep;
    size_t unit;
    int rc = parse_reply(buf, pos, len, accept, x->value_max, &rep, &unit, d);
    if (rc <= 0)
      return rc ? rc : MCR__MORE;
    rc = pipe_one(x, &rep, d);
    if (rc < 0)
      return rc;
    pos += unit;
    d->used += unit;
    if (rc == 0)
      return MCR__DONE;
  }
}
