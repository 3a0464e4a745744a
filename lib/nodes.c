/* nodes.c — the node list every discovery source produces.
 *
 * A flat growable array of fixed-size entries (host name, numeric address,
 * port, weight) plus the source's configuration version. Sources append,
 * then sort into the canonical (host, port) order and check for
 * duplicates; publish.c compares two sorted lists (one memcmp when they are
 * copies, else entry by entry) to decide
 * whether the ring must change. Fixed-size entries keep copying and
 * comparing trivial and bound every string before it reaches the ring
 * builder. Also here: the small validators the sources share (host names,
 * numeric addresses, bounded decimal numbers) and the bridge from the
 * library's server-list parser, so "--servers", node files and the
 * client's servers option share one syntax. Memory comes from the
 * library's allocator hooks (alloc.c), since embedded discovery runs these
 * lists inside the worker's process too.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "discovery.h"
#include "internal.h"

int mcr__nodes_add(mcr__nodes_t* l, const char* host, size_t host_len,
                   const char* addr, uint16_t port, uint32_t weight) {
  if (host_len == 0 || host_len > MCR__HOST_MAX)
    return MCR_EINVAL;
  if (addr && strlen(addr) >= MCR__ADDR_MAX)
    return MCR_EINVAL;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    mcr__dnode_t* v = mcr__realloc(l->v, cap * sizeof(*v));
    if (!v)
      return MCR_ENOMEM;
    l->v = v;
    l->cap = cap;
  }
  mcr__dnode_t* d = &l->v[l->n++];
  memset(d, 0, sizeof(*d));
  memcpy(d->host, host, host_len);
  if (addr)
    strcpy(d->addr, addr);
  d->port = port;
  d->weight = weight ? weight : 1;
  return 0;
}

void mcr__nodes_clear(mcr__nodes_t* l) {
  l->n = 0;
  l->has_version = false;
  l->version = 0;
}

void mcr__nodes_free(mcr__nodes_t* l) {
  mcr__free(l->v);
  memset(l, 0, sizeof(*l));
}

int mcr__nodes_copy(mcr__nodes_t* dst, const mcr__nodes_t* src) {
  mcr__nodes_clear(dst);
  if (src->n > dst->cap) {
    mcr__dnode_t* v = mcr__realloc(dst->v, src->n * sizeof(*v));
    if (!v)
      return MCR_ENOMEM;
    dst->v = v;
    dst->cap = src->n;
  }
  if (src->n)
    memcpy(dst->v, src->v, src->n * sizeof(*src->v));
  dst->n = src->n;
  dst->has_version = src->has_version;
  dst->version = src->version;
  return 0;
}

static int node_cmp(const void* a, const void* b) {
  const mcr__dnode_t* x = a;
  const mcr__dnode_t* y = b;
  int c = strcmp(x->host, y->host);
  if (c)
    return c;
  return (int)x->port - (int)y->port;
}

void mcr__nodes_sort(mcr__nodes_t* l) {
  if (l->n > 1)
    qsort(l->v, l->n, sizeof(*l->v), node_cmp);
}

bool mcr__nodes_equal(const mcr__nodes_t* a, const mcr__nodes_t* b) {
  if (a->n != b->n)
    return false;
  /* Entries are zeroed before they are filled (mcr__nodes_add) and copied
   * whole, so two copies of one list are equal bytes: one memcmp settles
   * the common case, an unchanged list. Bytes may differ after a string's
   * NUL, so a difference is confirmed field by field. */
  if (a->n == 0 || memcmp(a->v, b->v, a->n * sizeof(*a->v)) == 0)
    return true;
  for (size_t i = 0; i < a->n; i++) {
    const mcr__dnode_t* x = &a->v[i];
    const mcr__dnode_t* y = &b->v[i];
    if (x->port != y->port || x->weight != y->weight ||
        strcmp(x->host, y->host) != 0 || strcmp(x->addr, y->addr) != 0)
      return false;
  }
  return true;
}

/* The list being checked, for the comparisons qsort gets no context for
 * (the agent checks lists on one thread). */
static const mcr__dnode_t* check_list;

/* Host names compare as DNS does: without regard to case. */
static int by_name(const void* a, const void* b) {
  const mcr__dnode_t* x = &check_list[*(const size_t*)a];
  const mcr__dnode_t* y = &check_list[*(const size_t*)b];
  int c = strcasecmp(x->host, y->host);
  return c ? c : (int)x->port - (int)y->port;
}

/* Nodes without an address yet sort first and are never equal. */
static int by_address(const void* a, const void* b) {
  const mcr__dnode_t* x = &check_list[*(const size_t*)a];
  const mcr__dnode_t* y = &check_list[*(const size_t*)b];
  if (!x->addr[0] || !y->addr[0])
    return (int)!!x->addr[0] - (int)!!y->addr[0];
  int c = strcmp(x->addr, y->addr);
  return c ? c : (int)x->port - (int)y->port;
}

int mcr__nodes_check(const mcr__nodes_t* l, char* err, size_t errlen) {
  if (l->n == 0) {
    snprintf(err, errlen, "the node list is empty");
    return MCR_ENOSERVERS;
  }
  if (l->n > MCR__NODES_MAX) {
    snprintf(err, errlen, "%zu nodes: at most %u", l->n, MCR__NODES_MAX);
    return MCR_ESERVERS;
  }
  /* One server listed twice would sit on the ring twice (twice the keys):
   * the same host name in another case, or another name for the same
   * address and port. No real cluster configuration does that; the list
   * is refused (and the last ring kept) rather than guessed at. */
  size_t* idx = mcr__malloc(l->n * sizeof(*idx));
  if (!idx)
    return MCR_ENOMEM;
  int rc = 0;
  check_list = l->v;
  for (int pass = 0; pass < 2 && !rc; pass++) {
    for (size_t i = 0; i < l->n; i++)
      idx[i] = i;
    qsort(idx, l->n, sizeof(*idx), pass ? by_address : by_name);
    for (size_t i = 1; i < l->n && !rc; i++) {
      const mcr__dnode_t* a = &l->v[idx[i - 1]];
      const mcr__dnode_t* b = &l->v[idx[i]];
      if ((pass ? by_address : by_name)(&idx[i - 1], &idx[i]) != 0 ||
          (pass && !a->addr[0]))
        continue;
      if (pass)
        snprintf(err, errlen,
                 "nodes %s and %s are both %s port %u: one server listed "
                 "twice",
                 a->host, b->host, a->addr, (unsigned)a->port);
      else
        snprintf(err, errlen, "node %s port %u listed twice%s", b->host,
                 (unsigned)b->port,
                 strcmp(a->host, b->host) ? " (host names ignore case)" : "");
      rc = MCR_ESERVERS;
    }
  }
  mcr__free(idx);
  return rc;
}

int mcr__nodes_resolve(mcr__nodes_t* l, char* err, size_t errlen) {
  for (size_t i = 0; i < l->n; i++) {
    mcr__dnode_t* d = &l->v[i];
    if (d->addr[0])
      continue;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo* res = NULL;
    int e = getaddrinfo(d->host, NULL, &hints, &res);
    if (e != 0 || !res) {
      snprintf(err, errlen, "cannot resolve node %s: %s", d->host,
               e ? gai_strerror(e) : "no address");
      return MCR_ERESOLVE;
    }
    const void* a =
        res->ai_family == AF_INET6
            ? (const void*)&((struct sockaddr_in6*)res->ai_addr)->sin6_addr
            : (const void*)&((struct sockaddr_in*)res->ai_addr)->sin_addr;
    if (!inet_ntop(res->ai_family, a, d->addr, sizeof(d->addr))) {
      freeaddrinfo(res);
      snprintf(err, errlen, "cannot format the address of %s", d->host);
      return MCR_ERESOLVE;
    }
    freeaddrinfo(res);
  }
  return 0;
}

int mcr__nodes_finish(mcr__nodes_t* l, char* err, size_t errlen) {
  mcr__nodes_sort(l);
  int rc = mcr__nodes_check(l, err, errlen);
  if (!rc)
    rc = mcr__nodes_resolve(l, err, errlen);
  /* Names that resolve to one address are one server. */
  return rc ? rc : mcr__nodes_check(l, err, errlen);
}

void mcr__nodes_trim(mcr__nodes_t* l) {
  size_t want = l->n < 16 ? 16 : l->n;
  if (l->cap <= 2 * want)
    return;
  mcr__dnode_t* v = mcr__realloc(l->v, want * sizeof(*v));
  if (v) {
    l->v = v;
    l->cap = want;
  }
}

bool mcr__hostname_ok(const char* s, size_t len) {
  if (len > 0 && s[len - 1] == '.')
    len--; /* fully qualified form */
  if (len == 0 || len > 253)
    return false;
  size_t label = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0)
        return false;
      label = 0;
      continue;
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok || ++label > 63)
      return false;
  }
  return label > 0;
}

bool mcr__addr_parse(const char* s, size_t len, char* out) {
  char tmp[MCR__ADDR_MAX];
  if (len == 0 || len >= sizeof(tmp))
    return false;
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  unsigned char bin[16];
  /* inet_pton accepts only the canonical dotted quad (four decimal
   * numbers 0..255 without leading zeros), so the text is its own
   * canonical form: no inet_ntop (a sprintf) per node. */
  if (inet_pton(AF_INET, tmp, bin) == 1) {
    memcpy(out, tmp, len + 1);
    return true;
  }
  if (inet_pton(AF_INET6, tmp, bin) == 1)
    return inet_ntop(AF_INET6, bin, out, MCR__ADDR_MAX) != NULL;
  return false;
}

int mcr__parse_u64(const char* s, size_t len, uint64_t max, uint64_t* out) {
  uint64_t v;
  if (mcr__dec_to_u64(s, len, &v) != 0 || v > max)
    return -1;
  *out = v;
  return 0;
}

/* Appends one parsed server-list entry after the agent's own checks. */
static int add_server(const mcr__server_t* sv, mcr__nodes_t* out, char* err,
                      size_t errlen) {
  if (sv->is_unix) {
    snprintf(err, errlen, "%s: unix sockets cannot be ring nodes", sv->name);
    return MCR_ESERVERS;
  }
  size_t hlen = strlen(sv->host);
  char addr[MCR__ADDR_MAX] = "";
  bool numeric = mcr__addr_parse(sv->host, hlen, addr);
  bool v6 = sv->name[0] == '[';
  if ((v6 && (!numeric || !strchr(addr, ':'))) ||
      (!numeric && !mcr__hostname_ok(sv->host, hlen))) {
    snprintf(err, errlen, "%s: bad host", sv->name);
    return MCR_ESERVERS;
  }
  int rc =
      mcr__nodes_add(out, numeric ? addr : sv->host,
                     numeric ? strlen(addr) : hlen, addr, sv->port, sv->weight);
  if (rc == MCR_EINVAL) {
    snprintf(err, errlen, "%s: host too long", sv->name);
    return MCR_ESERVERS;
  }
  return rc;
}

int mcr__nodes_add_list(const char* list, mcr__nodes_t* out, char* err,
                        size_t errlen) {
  mcr__server_t* sv = NULL;
  size_t n = 0;
  int rc = mcr__servers_parse(list, &sv, &n, err, errlen);
  for (size_t i = 0; !rc && i < n; i++)
    rc = add_server(&sv[i], out, err, errlen);
  mcr__servers_free(sv, n);
  return rc;
}

int mcr__nodes_add_entry(const char* e, size_t len, mcr__nodes_t* out,
                         char* err, size_t errlen) {
  char one[MCR__HOST_MAX + 32];
  if (len == 0 || len >= sizeof(one) || memchr(e, ',', len)) {
    snprintf(err, errlen, "\"%.*s\": want one host:port[:weight]",
             (int)(len > 80 ? 80 : len), e);
    return MCR_ESERVERS;
  }
  memcpy(one, e, len);
  one[len] = '\0';
  return mcr__nodes_add_list(one, out, err, errlen);
}
