/* discovery.h — node lists and the ElastiCache configuration endpoint.
 *
 * Shared by the agent (agent/, whose discovery sources fill a node list
 * and publish its ring) and the library's embedded discovery (router.c:
 * a client given opts.elasticache polls the endpoint itself, from inside
 * its calls, with no agent). Both use one parser and one set of rules for
 * what a valid node list is, so a reply the agent refuses is refused by an
 * embedded client too.
 *
 *   nodes.c        the node list: append, validate, sort, compare, resolve
 *   elasticache.c  one poll of a configuration endpoint and its strict
 *                  reply parser
 */
#ifndef MCR_DISCOVERY_H
#define MCR_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"

/* ---------------------------------------------------------------- nodes.c */

#define MCR__HOST_MAX 255     /* longest host name accepted, bytes */
#define MCR__NODES_MAX 65535u /* most nodes a ring may have */
#define MCR__ADDR_MAX 46      /* INET6_ADDRSTRLEN */

/* One cache node as discovered. */
typedef struct {
  char host[MCR__HOST_MAX + 1]; /* name as the source gave it, or the
                                    numeric address when it gave none;
                                    IPv6 without brackets */
  char addr[MCR__ADDR_MAX];     /* numeric address (the `ketama` mode
                                    hashes "<addr>:<port>") */
  uint16_t port;
  uint32_t weight; /* >= 1 */
} mcr__dnode_t;

/* A node list plus the configuration version when the source has one. */
typedef struct {
  mcr__dnode_t* v;
  size_t n, cap;
  bool has_version;
  uint64_t version;
} mcr__nodes_t;

/* Appends a node. host is copied (at most MCR__HOST_MAX bytes: longer is
 * MCR_EINVAL); addr may be NULL or "" (filled later by mcr__nodes_resolve).
 * Returns 0, MCR_EINVAL or MCR_ENOMEM. */
int mcr__nodes_add(mcr__nodes_t* l, const char* host, size_t host_len,
                   const char* addr, uint16_t port, uint32_t weight);

/* Empties the list, keeping its memory. */
void mcr__nodes_clear(mcr__nodes_t* l);

/* Frees the list's memory; the list is empty and reusable afterwards. */
void mcr__nodes_free(mcr__nodes_t* l);

/* Makes dst a copy of src. Returns 0 or MCR_ENOMEM (dst then empty). */
int mcr__nodes_copy(mcr__nodes_t* dst, const mcr__nodes_t* src);

/* Sorts by (host, port): the canonical order in which nodes are compared
 * and published, so the ring depends on the node set only. */
void mcr__nodes_sort(mcr__nodes_t* l);

/* True when two sorted lists hold the same nodes (host, address, port and
 * weight); the versions are not compared. */
bool mcr__nodes_equal(const mcr__nodes_t* a, const mcr__nodes_t* b);

/* Fails with MCR_ESERVERS and a message when the list names one server
 * twice: two nodes with the same host (ignoring case) and port, or two
 * with the same address and port; when it has more than MCR__NODES_MAX
 * nodes; or when it is empty (MCR_ENOSERVERS). MCR_ENOMEM. */
int mcr__nodes_check(const mcr__nodes_t* l, char* err, size_t errlen);

/* Gives back the memory of a list much larger than it was (after a
 * refused reply that grew it). */
void mcr__nodes_trim(mcr__nodes_t* l);

/* Fills the address of every node that has none with getaddrinfo(host)
 * (blocking, first address). Returns 0, or MCR_ERESOLVE with a message. */
int mcr__nodes_resolve(mcr__nodes_t* l, char* err, size_t errlen);

/* What every source does last: sort, check (mcr__nodes_check), resolve
 * the nodes without an address (mcr__nodes_resolve), check again (two
 * names of one address). */
int mcr__nodes_finish(mcr__nodes_t* l, char* err, size_t errlen);

/* True when s[0..len) is a syntactically valid DNS host name (letters,
 * digits, '-', '_', dots between non-empty labels of <= 63 bytes, <= 253
 * bytes, an optional final dot). */
bool mcr__hostname_ok(const char* s, size_t len);

/* Parses s[0..len) as a numeric IPv4 or IPv6 address (no brackets) and
 * writes its canonical text to out[MCR__ADDR_MAX]. Returns true on
 * success. */
bool mcr__addr_parse(const char* s, size_t len, char* out);

/* Parses a decimal number of exactly len bytes (1..20 digits, no sign)
 * that must be <= max. Returns 0 or -1. */
int mcr__parse_u64(const char* s, size_t len, uint64_t max, uint64_t* out);

/* ----------------------------------------------------------- elasticache */

/* mcr__ec_parse results besides 0 and negative errors. */
#define MCR__EC_INCOMPLETE 1  /* a valid prefix: read more bytes */
#define MCR__EC_ERROR_REPLY 2 /* the engine answered "ERROR" */
#define MCR__EC_MAX_REPLY (4u << 20)

/* The two requests the ElastiCache source sends. */
typedef enum {
  MCR__EC_CONFIG, /* "config get cluster" -> "CONFIG cluster ..." */
  MCR__EC_LEGACY  /* "get AmazonElastiCache:cluster" -> "VALUE ..." */
} mcr__ec_form_t;

/* Parses one complete reply to the request `form` in buf[0..len), strictly:
 *
 *   CONFIG cluster <flags> <bytes>\r\n                      (or VALUE
 *   AmazonElastiCache:cluster <flags> <bytes>\r\n for the legacy form)
 *   <version>\n<host>|<ip>|<port>[ <host>|<ip>|<port>...]\n  (<bytes> bytes)
 *   \r\nEND\r\n
 *
 * and nothing after it. Every host must be a valid host name or numeric
 * address, every ip empty or a numeric IPv4/IPv6 address, every port
 * 1..65535; no duplicate host:port; at least one node. On success fills
 * out (cleared first; has_version set; weight 1; nodes without an ip get
 * an empty addr) and returns 0. Returns MCR__EC_INCOMPLETE when buf is a
 * valid prefix of a reply that is not complete yet, MCR__EC_ERROR_REPLY
 * when the reply is "ERROR\r\n", and MCR_EPROTO (malformed, with a
 * message naming what and where), MCR_ESERVERERR / MCR_ECLIENTERR, or
 * MCR_ENOMEM otherwise. Never reads outside buf[0..len); buf need not be
 * NUL-terminated. Pure apart from out; safe to fuzz. */
int mcr__ec_parse(mcr__ec_form_t form, const char* buf, size_t len,
                  mcr__nodes_t* out, char* err, size_t errlen);

/* The framing half of mcr__ec_parse, for a reply read in pieces: checks
 * buf[0..len) as far as it goes (header, byte count, no '\r' inside the
 * block, trailer, nothing after it) without parsing the node list.
 * *checked carries what earlier calls on shorter prefixes of the same
 * reply already searched (start it at 0 for each new reply): only block
 * bytes from there on are searched, so reading a reply in k pieces costs
 * O(its length), not O(k times it). Returns 0 when buf is one complete
 * well-framed reply (mcr__ec_parse then parses it), or what
 * mcr__ec_parse returns for its framing: MCR__EC_INCOMPLETE,
 * MCR__EC_ERROR_REPLY, MCR_EPROTO, MCR_ESERVERERR, MCR_ECLIENTERR. Pure. */
int mcr__ec_frame(mcr__ec_form_t form, const char* buf, size_t len,
                  size_t* checked, char* err, size_t errlen);

/* The last reply of an endpoint that parsed, and its parse: a poll whose
 * reply equals it byte for byte takes the list from here instead of
 * parsing again. Zero-initialise; free with mcr__ec_cache_free. Holds up
 * to MCR__EC_MAX_REPLY bytes plus the node list. */
typedef struct {
  bool valid;
  mcr__ec_form_t form; /* the request the reply answered */
  char* reply;
  size_t len, cap;
  mcr__nodes_t nodes; /* as mcr__ec_parse gave it: before resolving */
} mcr__ec_cache_t;

/* Frees what the cache holds; it is empty and reusable afterwards. */
void mcr__ec_cache_free(mcr__ec_cache_t* c);

/* Parses a reply to "version" ("VERSION 1.6.21\r\n") into the numeric
 * triple *maj.*min.*patch (missing parts are 0, a suffix after the digits
 * is ignored). Returns 0, MCR__EC_INCOMPLETE, MCR__EC_ERROR_REPLY, or
 * MCR_EPROTO. */
int mcr__ec_parse_version(const char* buf, size_t len, unsigned* maj,
                          unsigned* min, unsigned* patch);

/* One poll of an ElastiCache configuration endpoint "host:port" (IPv6 in
 * brackets; port 11211 when absent): resolves the name afresh, connects
 * (connect_timeout_ms per address tried), asks "version", then
 * "config get cluster" — or the legacy get when the engine is older than
 * 1.4.14 or answers ERROR — all within io_timeout_ms. Nodes whose ip field
 * is empty are resolved by name. On success out holds the sorted, checked
 * node list with the configuration version. *legacy (may be NULL) tells
 * which form answered. With a cache (may be NULL), a reply equal to the
 * last one that parsed is not parsed again (mcr__ec_cache_t), and a reply
 * that parses replaces it. Returns 0 or a negative MCR_E* with a
 * message. */
int mcr__ec_poll(const char* endpoint, int connect_timeout_ms,
                 int io_timeout_ms, mcr__tls_t* tls, mcr__ec_cache_t* cache,
                 mcr__nodes_t* out, bool* legacy, char* err, size_t errlen);

/* How many processes of this user on this host poll `endpoint` (this one
 * included), for the embedded discovery's warning: each poll stamps this
 * process's slot, by pid, in a small per-user file
 * (/dev/shm/mcring-ec-<uid>-<hash of endpoint>, mode 0600) and counts the
 * other slots stamped within two intervals whose process is alive. Best
 * effort: -1 when the file cannot be used (then nothing is counted). A
 * slot holds only a pid and a time; whatever another process wrote there
 * can change the count, nothing else. */
int mcr__ec_peers(const char* endpoint, int interval_ms);

/* Parses a server list in the client's syntax (lib/servers.c:
 * "host:port[:weight],...", "[v6]:port[:weight]") and appends every entry
 * to out. Unix sockets and invalid host names are refused. Returns 0 or
 * MCR_ESERVERS / MCR_ENOSERVERS / MCR_ENOMEM with a message. */
int mcr__nodes_add_list(const char* list, mcr__nodes_t* out, char* err,
                        size_t errlen);
/* The same for exactly one entry e[0..len) (no comma). */
int mcr__nodes_add_entry(const char* e, size_t len, mcr__nodes_t* out,
                         char* err, size_t errlen);

#endif
