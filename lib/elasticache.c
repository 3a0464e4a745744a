/* elasticache.c — ElastiCache Auto Discovery: one poll of a configuration
 * endpoint. The agent's source (agent/source.c) and a client's embedded
 * discovery (router.c, opts.elasticache) both call it.
 *
 * An ElastiCache memcached cluster publishes its membership on every node;
 * the cluster's configuration endpoint is a DNS alias to one of them. One
 * poll resolves that name afresh (the alias moves when its node goes),
 * connects with a timeout (over TLS when configured: the same transport as
 * the client's, lib/conn.c and lib/tls.c), asks "version", and then
 * "config get cluster" —
 * or "get AmazonElastiCache:cluster" when the engine is older than 1.4.14
 * or answers ERROR to the config command. Both replies carry the same
 * block: "<version>\n<host>|<ip>|<port> ...\n", framed by a header line
 * with its byte count and "\r\nEND\r\n".
 *
 * The reply parser, mcr__ec_parse, is a pure function over a byte range
 * (no socket, no allocation besides the output list) so that it can be
 * fuzzed. It is strict on purpose: a reply that is not exactly right (byte
 * count, framing, any host, address or port) is refused as a whole, and
 * the agent keeps the ring it has, because a half-understood membership
 * list would move keys for nothing. Its first half, the framing
 * (mcr__ec_frame), is what the poll loop runs after every read: it learns
 * whether the reply is complete looking only at the header and at the
 * bytes that are new, so a reply that arrives in many pieces is scanned
 * once, and the node list is parsed once, when the reply is whole. A block
 * shorter than its declared count is detected as soon as a '\r' shows up
 * inside it (the block never contains one), so a wrong count fails at
 * once instead of waiting for the I/O timeout.
 *
 * Most polls find the cluster unchanged, and at thousands of nodes parsing
 * the list (and sorting and checking it) is most of the agent's CPU. So
 * the source keeps the last reply that parsed (mcr__ec_cache_t): a
 * complete, well-framed reply equal to it byte for byte yields a copy of
 * the list parsed then, without parsing; any other reply is parsed and
 * validated in full. Since the parse is a pure function of the bytes, the
 * shortcut cannot accept anything the parser would refuse.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "discovery.h"

#define HEADER_MAX 256 /* longest header line accepted */

static int proto_err(char* err, size_t errlen, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>

static int proto_err(char* err, size_t errlen, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err && errlen)
    vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return MCR_EPROTO;
}

/* Finds "\r\n" in buf[0..len); returns its offset or -1. */
static long find_crlf(const char* buf, size_t len) {
  for (size_t i = 0; i + 1 < len; i++)
    if (buf[i] == '\r' && buf[i + 1] == '\n')
      return (long)i;
  return -1;
}

/* True when buf[0..len) could still become `lit` (a prefix of it). */
static bool prefix_of(const char* buf, size_t len, const char* lit) {
  size_t n = strlen(lit);
  return len <= n && memcmp(buf, lit, len) == 0;
}

/* Handles a complete header line that is an error reply. Returns the
 * result to hand back, or 0 when the line is not an error line. */
static int error_line(const char* line, size_t len, char* err, size_t errlen) {
  if (len == 5 && memcmp(line, "ERROR", 5) == 0)
    return MCR__EC_ERROR_REPLY;
  if (len >= 12 && memcmp(line, "SERVER_ERROR", 12) == 0) {
    snprintf(err, errlen, "endpoint: %.*s", (int)(len > 200 ? 200 : len), line);
    return MCR_ESERVERERR;
  }
  if (len >= 12 && memcmp(line, "CLIENT_ERROR", 12) == 0) {
    snprintf(err, errlen, "endpoint: %.*s", (int)(len > 200 ? 200 : len), line);
    return MCR_ECLIENTERR;
  }
  return 0;
}

/* Parses one "host|ip|port" token into out. */
static int parse_node(const char* t, size_t len, size_t index,
                      mcr__nodes_t* out, char* err, size_t errlen) {
  const char* p1 = memchr(t, '|', len);
  const char* p2 = p1 ? memchr(p1 + 1, '|', (size_t)(t + len - p1 - 1)) : NULL;
  if (!p1 || !p2 || memchr(p2 + 1, '|', (size_t)(t + len - p2 - 1)))
    return proto_err(err, errlen, "node %zu: \"%.*s\" is not host|ip|port",
                     index + 1, (int)(len > 80 ? 80 : len), t);
  size_t hlen = (size_t)(p1 - t);
  const char* ip = p1 + 1;
  size_t iplen = (size_t)(p2 - ip);
  const char* ps = p2 + 1;
  size_t plen = (size_t)(t + len - ps);
  char hostaddr[MCR__ADDR_MAX];
  bool host_numeric = mcr__addr_parse(t, hlen, hostaddr);
  if (hlen == 0 || hlen > MCR__HOST_MAX ||
      (!host_numeric && !mcr__hostname_ok(t, hlen)))
    return proto_err(err, errlen, "node %zu: bad host name \"%.*s\"", index + 1,
                     (int)(hlen > 80 ? 80 : hlen), t);
  char addr[MCR__ADDR_MAX] = "";
  if (iplen > 0) {
    /* Accept an IPv6 address in brackets as well as bare. */
    if (iplen > 2 && ip[0] == '[' && ip[iplen - 1] == ']') {
      ip++;
      iplen -= 2;
    }
    if (!mcr__addr_parse(ip, iplen, addr))
      return proto_err(err, errlen, "node %zu: bad address \"%.*s\"", index + 1,
                       (int)(iplen > 80 ? 80 : iplen), ip);
  } else if (host_numeric) {
    memcpy(addr, hostaddr, sizeof(addr));
  }
  uint64_t port;
  if (mcr__parse_u64(ps, plen, 65535, &port) != 0 || port == 0)
    return proto_err(err, errlen, "node %zu: bad port \"%.*s\"", index + 1,
                     (int)(plen > 20 ? 20 : plen), ps);
  int rc = mcr__nodes_add(out, t, hlen, addr, (uint16_t)port, 1);
  if (rc)
    return rc == MCR_ENOMEM ? rc
                            : proto_err(err, errlen,
                                        "node %zu: "
                                        "host too long",
                                        index + 1);
  return 0;
}

/* Parses the block "<version>\n<nodes>\n" (exactly len bytes). */
static int parse_block(const char* b, size_t len, mcr__nodes_t* out, char* err,
                       size_t errlen) {
  const char* nl = memchr(b, '\n', len);
  if (!nl)
    return proto_err(err, errlen, "no newline after the version");
  uint64_t version;
  if (mcr__parse_u64(b, (size_t)(nl - b), UINT64_MAX, &version) != 0)
    return proto_err(err, errlen, "bad configuration version \"%.*s\"",
                     (int)((nl - b) > 40 ? 40 : (nl - b)), b);
  const char* p = nl + 1;
  const char* end = b + len;
  if (p == end || end[-1] != '\n')
    return proto_err(err, errlen, "the node list does not end with a newline");
  end--; /* drop the final '\n' */
  if (memchr(p, '\n', (size_t)(end - p)))
    return proto_err(err, errlen, "more than one node line");
  if (p == end)
    return proto_err(err, errlen, "the node list is empty");
  size_t index = 0;
  while (p < end) {
    /* Refused at once: a reply listing more nodes than a ring can hold
     * must not cost the agent memory for all of them. */
    if (index == MCR__NODES_MAX)
      return proto_err(err, errlen, "more than %u nodes", MCR__NODES_MAX);
    const char* sp = memchr(p, ' ', (size_t)(end - p));
    const char* te = sp ? sp : end;
    if (te == p)
      return proto_err(err, errlen,
                       "empty node entry (two spaces?) at node "
                       "%zu",
                       index + 1);
    for (const char* q = p; q < te; q++)
      if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f)
        return proto_err(err, errlen, "node %zu: control or non-ASCII byte",
                         index + 1);
    int rc = parse_node(p, (size_t)(te - p), index, out, err, errlen);
    if (rc)
      return rc;
    index++;
    if (sp && sp + 1 == end)
      return proto_err(err, errlen, "trailing space after the last node");
    p = sp ? sp + 1 : end;
  }
  out->has_version = true;
  out->version = version;
  mcr__nodes_sort(out);
  int rc = mcr__nodes_check(out, err, errlen);
  return rc == 0 ? 0 : MCR_EPROTO;
}

/* Checks the framing of a reply to `form` in buf[0..len): the header, the
 * byte count, no '\r' inside the block, the trailer, nothing after it.
 * Block bytes below *checked were found free of '\r' by an earlier call
 * on a prefix of the same buffer (0 for a fresh buffer); the search
 * resumes there, so a reply read in many pieces is scanned once, and
 * *checked is advanced. Returns 0 with the block at *block, *block_len
 * when the reply is complete, else what mcr__ec_parse returns. */
static int frame(mcr__ec_form_t form, const char* buf, size_t len,
                 size_t* checked, const char** block_out, size_t* block_len,
                 char* err, size_t errlen) {
  if (len == 0)
    return MCR__EC_INCOMPLETE; /* buf may be NULL then */
  const char* want = form == MCR__EC_CONFIG
                         ? "CONFIG cluster "
                         : "VALUE AmazonElastiCache:cluster ";
  long crlf = find_crlf(buf, len > HEADER_MAX ? HEADER_MAX : len);
  if (crlf < 0) {
    if (len >= HEADER_MAX)
      return proto_err(err, errlen, "header line longer than %d bytes",
                       HEADER_MAX);
    /* Still a possible prefix of the header or of an error line? */
    size_t wl = strlen(want);
    bool maybe = prefix_of(buf, len < wl ? len : wl, want) ||
                 prefix_of(buf, len, "ERROR\r") ||
                 prefix_of(buf, len, "END\r") ||
                 (len <= 12 && (prefix_of(buf, len, "SERVER_ERROR") ||
                                prefix_of(buf, len, "CLIENT_ERROR"))) ||
                 (len > 12 && (memcmp(buf, "SERVER_ERROR", 12) == 0 ||
                               memcmp(buf, "CLIENT_ERROR", 12) == 0));
    if (!maybe || memchr(buf, '\n', len))
      return proto_err(err, errlen, "unexpected reply \"%.*s\"",
                       (int)(len > 60 ? 60 : len), buf);
    return MCR__EC_INCOMPLETE;
  }
  size_t hlen = (size_t)crlf;
  int erc = error_line(buf, hlen, err, errlen);
  if (erc) {
    if (hlen + 2 != len)
      return proto_err(err, errlen, "bytes after the error reply");
    return erc;
  }
  if (hlen == 3 && memcmp(buf, "END", 3) == 0)
    return proto_err(err, errlen,
                     "the endpoint has no cluster configuration"
                     " (END)");
  size_t wl = strlen(want);
  if (hlen <= wl || memcmp(buf, want, wl) != 0)
    return proto_err(err, errlen, "unexpected reply \"%.*s\"",
                     (int)(hlen > 60 ? 60 : hlen), buf);
  /* "<flags> <bytes>" */
  const char* f = buf + wl;
  const char* hend = buf + hlen;
  const char* sp = memchr(f, ' ', (size_t)(hend - f));
  uint64_t flags, bytes;
  if (!sp || mcr__parse_u64(f, (size_t)(sp - f), UINT32_MAX, &flags) != 0)
    return proto_err(err, errlen, "bad flags in \"%.*s\"", (int)hlen, buf);
  if (mcr__parse_u64(sp + 1, (size_t)(hend - sp - 1),
                     MCR__EC_MAX_REPLY - HEADER_MAX, &bytes) != 0)
    return proto_err(err, errlen, "bad byte count in \"%.*s\"", (int)hlen, buf);
  const char* block = buf + hlen + 2;
  size_t avail = len - hlen - 2;
  static const char trailer[] = "\r\nEND\r\n";
  const size_t tlen = sizeof(trailer) - 1;
  /* The block never holds a '\r': one inside the declared length means
   * the count is larger than the data. Only the bytes not searched by an
   * earlier call are searched (clamped: *checked is the caller's). */
  size_t upto = avail < bytes ? avail : (size_t)bytes;
  size_t from = *checked < upto ? *checked : upto;
  const char* cr = memchr(block + from, '\r', upto - from);
  if (cr)
    return proto_err(err, errlen,
                     "byte count %llu does not match the data (block ends "
                     "after %zu bytes)",
                     (unsigned long long)bytes, (size_t)(cr - block));
  *checked = upto;
  if (avail < bytes + tlen) {
    if (avail > bytes &&
        !prefix_of(block + bytes, avail - (size_t)bytes, trailer))
      return proto_err(err, errlen,
                       "byte count %llu does not match the data (no "
                       "\\r\\nEND\\r\\n after it)",
                       (unsigned long long)bytes);
    return MCR__EC_INCOMPLETE;
  }
  if (memcmp(block + bytes, trailer, tlen) != 0)
    return proto_err(err, errlen,
                     "byte count %llu does not match the data (no "
                     "\\r\\nEND\\r\\n after it)",
                     (unsigned long long)bytes);
  if (avail > bytes + tlen)
    return proto_err(err, errlen, "%zu unexpected bytes after END",
                     avail - (size_t)bytes - tlen);
  *block_out = block;
  *block_len = (size_t)bytes;
  return 0;
}

int mcr__ec_parse(mcr__ec_form_t form, const char* buf, size_t len,
                  mcr__nodes_t* out, char* err, size_t errlen) {
  mcr__nodes_clear(out);
  if (err && errlen)
    err[0] = '\0';
  size_t checked = 0;
  const char* block = NULL;
  size_t blen = 0;
  int rc = frame(form, buf, len, &checked, &block, &blen, err, errlen);
  if (rc)
    return rc;
  rc = parse_block(block, blen, out, err, errlen);
  if (rc)
    mcr__nodes_clear(out);
  return rc;
}

int mcr__ec_frame(mcr__ec_form_t form, const char* buf, size_t len,
                  size_t* checked, char* err, size_t errlen) {
  const char* block;
  size_t blen;
  if (err && errlen)
    err[0] = '\0';
  return frame(form, buf, len, checked, &block, &blen, err, errlen);
}

int mcr__ec_parse_version(const char* buf, size_t len, unsigned* maj,
                          unsigned* min, unsigned* patch) {
  if (len == 0)
    return MCR__EC_INCOMPLETE; /* buf may be NULL then */
  long crlf = find_crlf(buf, len > HEADER_MAX ? HEADER_MAX : len);
  if (crlf < 0) {
    if (len >= HEADER_MAX || memchr(buf, '\n', len))
      return MCR_EPROTO;
    if (prefix_of(buf, len < 8 ? len : 8, "VERSION ") ||
        prefix_of(buf, len, "ERROR\r"))
      return MCR__EC_INCOMPLETE;
    return MCR_EPROTO;
  }
  if ((size_t)crlf + 2 != len)
    return MCR_EPROTO;
  if (crlf == 5 && memcmp(buf, "ERROR", 5) == 0)
    return MCR__EC_ERROR_REPLY;
  if (crlf <= 8 || memcmp(buf, "VERSION ", 8) != 0)
    return MCR_EPROTO;
  unsigned v[3] = {0, 0, 0};
  const char* p = buf + 8;
  const char* end = buf + crlf;
  if (p == end || *p < '0' || *p > '9')
    return MCR_EPROTO;
  for (int i = 0; i < 3 && p < end; i++) {
    size_t n = 0;
    while (p + n < end && p[n] >= '0' && p[n] <= '9' && n < 9)
      n++;
    if (n == 0)
      break;
    uint64_t x;
    mcr__parse_u64(p, n, 999999999, &x);
    v[i] = (unsigned)x;
    p += n;
    if (p < end && *p == '.')
      p++;
    else
      break;
  }
  *maj = v[0];
  *min = v[1];
  *patch = v[2];
  return 0;
}

/* ---------------------------------------------------------------- network */

/* Splits "host:port", "[v6]:port" or "host" into host[hcap] and *port. */
static int split_endpoint(const char* ep, char* host, size_t hcap,
                          uint16_t* port) {
  const char* h = ep;
  size_t hl;
  const char* p = NULL;
  if (ep[0] == '[') {
    const char* c = strchr(ep, ']');
    if (!c)
      return -1;
    h = ep + 1;
    hl = (size_t)(c - h);
    if (c[1] == ':')
      p = c + 2;
    else if (c[1] != '\0')
      return -1;
  } else {
    const char* c = strchr(ep, ':');
    hl = c ? (size_t)(c - ep) : strlen(ep);
    if (c) {
      if (strchr(c + 1, ':'))
        return -1; /* bare IPv6 needs brackets */
      p = c + 1;
    }
  }
  if (hl == 0 || hl >= hcap)
    return -1;
  memcpy(host, h, hl);
  host[hl] = '\0';
  uint64_t pn = 11211;
  if (p && mcr__parse_u64(p, strlen(p), 65535, &pn) != 0)
    return -1;
  if (pn == 0)
    return -1;
  *port = (uint16_t)pn;
  return 0;
}

/* The message of a failure of the endpoint's connection during `what`. */
static int conn_error(const mcr__conn_t* k, int rc, const char* what, char* err,
                      size_t errlen) {
  if (rc == MCR_ECLOSED)
    snprintf(err, errlen, "%s: connection closed %s", what,
             k->rlen ? "mid-reply" : "before any reply");
  else if (k->sys)
    snprintf(err, errlen, "%s: %s: %s", what, k->what, strerror(k->sys));
  else
    snprintf(err, errlen, "%s: %s", what, k->what ? k->what : mcr_strerror(rc));
  return rc;
}

/* Sends req on k (the reply buffer emptied first). */
static int send_req(mcr__conn_t* k, const char* req, const char* what,
                    char* err, size_t errlen) {
  struct iovec iov = {.iov_base = (void*)req, .iov_len = strlen(req)};
  k->rpos = k->rlen = 0;
  k->slow = false;
  int rc = mcr__conn_send(k, &iov, 1);
  return rc ? conn_error(k, rc, what, err, errlen) : 0;
}

/* Reads more bytes of the reply into k->rbuf before the poll's deadline.
 * Returns 0 or a negative error (MCR_ECLOSED when the peer closed). */
static int read_more(mcr__conn_t* k, const char* what, char* err,
                     size_t errlen) {
  if (k->rlen >= MCR__EC_MAX_REPLY) {
    snprintf(err, errlen, "%s: reply larger than %u bytes", what,
             MCR__EC_MAX_REPLY);
    return MCR_EPROTO;
  }
  int rc = mcr__conn_fill(k, 0);
  return rc ? conn_error(k, rc, what, err, errlen) : 0;
}

/* Sends "version" and reports whether the engine predates 1.4.14. */
static int ask_version(mcr__conn_t* k, bool* old, char* err, size_t errlen) {
  int rc = send_req(k, "version\r\n", "version", err, errlen);
  unsigned maj = 0, min = 0, patch = 0;
  while (!rc) {
    rc = mcr__ec_parse_version(k->rbuf, k->rlen, &maj, &min, &patch);
    if (rc != MCR__EC_INCOMPLETE)
      break;
    rc = read_more(k, "version", err, errlen);
  }
  if (rc == MCR__EC_ERROR_REPLY) { /* no version command: treat as new */
    *old = false;
    return 0;
  }
  if (rc == MCR_EPROTO && k->rlen < MCR__EC_MAX_REPLY)
    snprintf(err, errlen, "version: unexpected reply \"%.*s\"",
             (int)(k->rlen > 60 ? 60 : k->rlen), k->rbuf ? k->rbuf : "");
  if (rc)
    return rc;
  *old = maj < 1 || (maj == 1 && (min < 4 || (min == 4 && patch < 14)));
  return 0;
}

void mcr__ec_cache_free(mcr__ec_cache_t* c) {
  free(c->reply);
  mcr__nodes_free(&c->nodes);
  memset(c, 0, sizeof(*c));
}

/* Remembers reply[0..len) and its parse `nodes` as the last accepted
 * reply to `form`. Out of memory only forgets the previous one. */
static void cache_store(mcr__ec_cache_t* c, mcr__ec_form_t form,
                        const char* reply, size_t len,
                        const mcr__nodes_t* nodes) {
  c->valid = false;
  if (len > c->cap) {
    char* r = realloc(c->reply, len);
    if (!r)
      return;
    c->reply = r;
    c->cap = len;
  }
  if (mcr__nodes_copy(&c->nodes, nodes) != 0)
    return;
  memcpy(c->reply, reply, len);
  c->len = len;
  c->form = form;
  c->valid = true;
}

static int ask_config(mcr__conn_t* k, mcr__ec_form_t form,
                      mcr__ec_cache_t* cache, mcr__nodes_t* out, char* err,
                      size_t errlen) {
  const char* req = form == MCR__EC_CONFIG
                        ? "config get cluster\r\n"
                        : "get AmazonElastiCache:cluster\r\n";
  const char* what = form == MCR__EC_CONFIG ? "config get cluster"
                                            : "get AmazonElastiCache:cluster";
  int rc = send_req(k, req, what, err, errlen);
  if (rc)
    return rc;
  /* Each read checks only the framing, and only the new bytes of the
   * block; the node list is parsed once, when the reply is complete. */
  size_t checked = 0;
  char perr[200];
  while (!rc) {
    rc = mcr__ec_frame(form, k->rbuf, k->rlen, &checked, perr, sizeof(perr));
    if (rc != MCR__EC_INCOMPLETE)
      break;
    rc = read_more(k, what, err, errlen);
    if (rc)
      return rc;
  }
  if (rc == 0 && cache && cache->valid && cache->form == form &&
      cache->len == k->rlen && memcmp(cache->reply, k->rbuf, k->rlen) == 0) {
    /* Byte for byte the last reply that parsed: the same list, since the
     * parser is a pure function of the bytes. */
    mcr__nodes_clear(out);
    rc = mcr__nodes_copy(out, &cache->nodes);
    if (rc)
      snprintf(err, errlen, "%s: out of memory", what);
    return rc;
  }
  if (rc == 0) {
    rc = mcr__ec_parse(form, k->rbuf, k->rlen, out, perr, sizeof(perr));
    if (rc == 0 && cache)
      cache_store(cache, form, k->rbuf, k->rlen, out);
  }
  if (rc < 0)
    snprintf(err, errlen, "%s: %s", what, perr);
  return rc;
}

/* True when every node has its address (none to resolve by name). */
static bool all_addressed(const mcr__nodes_t* l) {
  for (size_t i = 0; i < l->n; i++)
    if (!l->v[i].addr[0])
      return false;
  return true;
}

int mcr__ec_poll(const char* endpoint, int connect_timeout_ms,
                 int io_timeout_ms, mcr__tls_t* tls, mcr__ec_cache_t* cache,
                 mcr__nodes_t* out, bool* legacy, char* err, size_t errlen) {
  char host[MCR__HOST_MAX + 1];
  uint16_t port;
  mcr__nodes_clear(out);
  if (split_endpoint(endpoint, host, sizeof(host), &port) != 0) {
    snprintf(err, errlen, "bad endpoint \"%s\" (want host:port)", endpoint);
    return MCR_EINVAL;
  }
  /* The transport of the client (conn.c): the name resolved afresh (the
   * alias moves when its node goes), connect, TLS when configured, and
   * every wait bounded by the poll's deadline. */
  mcr__server_t srv = {.host = host, .name = (char*)endpoint, .port = port};
  mcr__conn_opts_t co = {.io_timeout_ms = io_timeout_ms, .tls = tls};
  mcr__conn_t k = {.fd = -1};
  int rc = mcr__conn_open(&k, &srv, &co, mcr__now_ms() + connect_timeout_ms);
  if (rc) {
    if (k.sys)
      snprintf(err, errlen, "connect %s: %s: %s", endpoint, k.what,
               strerror(k.sys));
    else
      snprintf(err, errlen, "connect %s: %s", endpoint,
               k.what ? k.what : mcr_strerror(rc));
    mcr__conn_free(&k);
    return rc;
  }
  k.deadline = mcr__now_ns() + (int64_t)io_timeout_ms * 1000000;
  bool old = false;
  rc = ask_version(&k, &old, err, errlen);
  mcr__ec_form_t form = old ? MCR__EC_LEGACY : MCR__EC_CONFIG;
  if (!rc)
    rc = ask_config(&k, form, cache, out, err, errlen);
  if (rc == MCR__EC_ERROR_REPLY && form == MCR__EC_CONFIG) {
    form = MCR__EC_LEGACY;
    rc = ask_config(&k, form, cache, out, err, errlen);
  }
  if (rc == MCR__EC_ERROR_REPLY) {
    snprintf(err, errlen, "the endpoint answered ERROR to %s",
             form == MCR__EC_CONFIG ? "config get cluster"
                                    : "get AmazonElastiCache:cluster");
    rc = MCR_ESERVERCMD;
  }
  mcr__conn_free(&k);
  if (legacy)
    *legacy = form == MCR__EC_LEGACY;
  /* The parse checked the list with the addresses the reply gave; only
   * names resolved now can make two names of one address. */
  if (!rc && !all_addressed(out)) {
    rc = mcr__nodes_resolve(out, err, errlen);
    if (!rc)
      rc = mcr__nodes_check(out, err, errlen);
  }
  if (rc)
    mcr__nodes_clear(out);
  return rc;
}

/* ------------------------------------------------------------ peers */

#define PEER_SLOTS 64

typedef struct {
  int32_t pid;
  uint32_t pad;
  int64_t at_ms; /* CLOCK_MONOTONIC (one clock for the whole host) */
} peer_slot_t;

int mcr__ec_peers(const char* endpoint, int interval_ms) {
  char path[128];
  const char* dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  uid_t uid = geteuid();
  snprintf(path, sizeof path, "%s/mcring-ec-%u-%016llx", dir, (unsigned)uid,
           (unsigned long long)XXH3_64bits(endpoint, strlen(endpoint)));
  int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != uid ||
      (st.st_mode & 077) || flock(fd, LOCK_EX) != 0) {
    close(fd);
    return -1;
  }
  peer_slot_t s[PEER_SLOTS];
  memset(s, 0, sizeof s);
  ssize_t got = pread(fd, s, sizeof s, 0);
  if (got < 0)
    got = 0;
  memset((char*)s + got, 0, sizeof s - (size_t)got); /* a short file */
  int64_t now = mcr__now_ms(), horizon = 2 * (int64_t)interval_ms + 1000;
  int32_t self = (int32_t)getpid();
  int mine = -1, spare = -1, live = 1;
  for (int i = 0; i < PEER_SLOTS; i++) {
    if (s[i].pid == self) {
      mine = mine < 0 ? i : mine;
      continue;
    }
    bool recent =
        s[i].pid > 0 && s[i].at_ms <= now && now - s[i].at_ms <= horizon;
    if (recent && (kill(s[i].pid, 0) == 0 || errno == EPERM))
      live++;
    else if (spare < 0)
      spare = i;
  }
  int at = mine >= 0 ? mine : spare;
  if (at >= 0) {
    peer_slot_t me = {.pid = self, .at_ms = now};
    if (pwrite(fd, &me, sizeof me, (off_t)at * (off_t)sizeof me) < 0)
      live = -1;
  }
  close(fd); /* drops the lock */
  return live;
}
