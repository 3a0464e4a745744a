/* servers.c — parses the server list "host:port[:weight],...".
 *
 * One entry per node, separated by commas (spaces around entries are
 * ignored). A host is a DNS name, an IPv4 address, or an IPv6 address in
 * brackets ("[::1]:11211"); the port defaults to 11211 and must be 1..65535;
 * the weight defaults to 1 and must be 1..65535. An entry starting with "/"
 * or "unix:" is a unix socket path (no port, no weight). Every malformed
 * entry is an error naming the entry: a server list is configuration, and a
 * silently skipped node would silently move keys.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static int parse_num(const char* p, size_t len, uint32_t max, uint32_t* out) {
  uint64_t v;
  if (mcr__dec_to_u64(p, len, &v) || v == 0 || v > max)
    return -1;
  *out = (uint32_t)v;
  return 0;
}

static bool host_ok(const char* h, size_t len, bool v6) {
  if (len == 0 || len > 253)
    return false;
  for (size_t i = 0; i < len; i++) {
    char ch = h[i];
    bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '_' ||
              (v6 && (ch == ':' || ch == '%'));
    if (!ok)
      return false;
  }
  return true;
}

static int set_server(mcr__server_t* s, const char* host, size_t hlen,
                      uint16_t port, uint32_t weight, bool is_unix, bool v6) {
  s->host = mcr__strndup(host, hlen);
  size_t nlen = hlen + 16;
  s->name = mcr__malloc(nlen);
  if (!s->host || !s->name)
    return MCR_ENOMEM;
  if (is_unix)
    snprintf(s->name, nlen, "%s", s->host);
  else
    snprintf(s->name, nlen, v6 ? "[%s]:%u" : "%s:%u", s->host, port);
  s->port = port;
  s->weight = weight;
  s->is_unix = is_unix;
  return 0;
}

/* Parses one entry e[0..len). */
static int parse_entry(const char* e, size_t len, mcr__server_t* s) {
  if (len > 5 && memcmp(e, "unix:", 5) == 0) {
    e += 5;
    len -= 5;
  }
  if (len > 0 && e[0] == '/')
    return len < 108 ? set_server(s, e, len, 0, 1, true, false) : -1;

  const char* host = e;
  size_t hlen;
  const char* rest;
  bool v6 = false;
  if (len > 0 && e[0] == '[') {
    const char* close = memchr(e, ']', len);
    if (!close)
      return -1;
    host = e + 1;
    hlen = (size_t)(close - host);
    rest = close + 1;
    v6 = true;
  } else {
    const char* colon = memchr(e, ':', len);
    hlen = colon ? (size_t)(colon - e) : len;
    rest = e + hlen;
  }
  if (!host_ok(host, hlen, v6))
    return -1;

  const char* end = e + len;
  uint32_t port = 11211, weight = 1;
  if (rest < end) {
    if (*rest != ':')
      return -1;
    const char* p = rest + 1;
    const char* colon = memchr(p, ':', (size_t)(end - p));
    const char* pend = colon ? colon : end;
    if (parse_num(p, (size_t)(pend - p), 65535, &port))
      return -1;
    if (colon &&
        parse_num(colon + 1, (size_t)(end - colon - 1), 65535, &weight))
      return -1;
  }
  return set_server(s, host, hlen, (uint16_t)port, weight, false, v6);
}

int mcr__servers_parse(const char* list, mcr__server_t** out, size_t* n,
                       char* err, size_t errlen) {
  *out = NULL;
  *n = 0;
  if (!list)
    return MCR_ENOSERVERS;
  size_t count = 1;
  for (const char* p = list; *p; p++)
    count += *p == ',';
  mcr__server_t* s = mcr__calloc(count, sizeof(*s));
  if (!s)
    return MCR_ENOMEM;

  size_t got = 0;
  const char* p = list;
  int rc = 0;
  for (;;) {
    const char* comma = strchr(p, ',');
    const char* end = comma ? comma : p + strlen(p);
    const char* a = p;
    const char* b = end;
    while (a < b && (*a == ' ' || *a == '\t'))
      a++;
    while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
      b--;
    if (a == b) {
      /* An empty list is "no servers"; an empty entry inside one is an
       * error (a stray comma usually means a lost host). */
      if (!comma && got == 0) {
        rc = MCR_ENOSERVERS;
        break;
      }
      snprintf(err, errlen, "empty entry in server list \"%s\"", list);
      rc = MCR_ESERVERS;
      break;
    }
    int prc = parse_entry(a, (size_t)(b - a), &s[got]);
    if (prc == MCR_ENOMEM) {
      rc = prc;
      got++;
      break;
    }
    if (prc) {
      snprintf(err, errlen,
               "bad server \"%.*s\": want host:port[:weight], "
               "[ipv6]:port[:weight] or a unix socket path",
               (int)(b - a), a);
      rc = MCR_ESERVERS;
      got++;
      break;
    }
    got++;
    if (!comma)
      break;
    p = comma + 1;
  }
  if (rc) {
    mcr__servers_free(s, got);
    if (rc == MCR_ENOSERVERS)
      snprintf(err, errlen, "no servers configured");
    return rc;
  }
  *out = s;
  *n = got;
  return 0;
}

void mcr__servers_free(mcr__server_t* s, size_t n) {
  if (!s)
    return;
  for (size_t i = 0; i < n; i++) {
    mcr__free(s[i].host);
    mcr__free(s[i].name);
    mcr__free(s[i].tls_name);
  }
  mcr__free(s);
}
