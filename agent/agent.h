/* agent.h — what the modules of mcring-agent share.
 *
 * The agent is a small pipeline run once per poll:
 *
 *   source_*.c   ask a discovery source for the cluster's node list
 *                (ElastiCache configuration endpoint, static list, DNS,
 *                watched file) and fill an agent_nodes_t
 *   nodes.c      the node list itself: append, validate, sort, compare
 *   publish.c    compare with the last published list, build and publish
 *                the ring through the library's snapshot writer, and keep
 *                the small status file beside the snapshot
 *   log.c        levelled logging to stderr or syslog
 *   main.c       options, config file, signals, the poll loop
 *
 * Sources never log and never exit: they return 0 or a negative MCR_E*
 * code with a one-line message, so they can be unit-tested (and the
 * ElastiCache reply parser fuzzed) without the daemon around them.
 * Agent-internal symbols are prefixed agent_.
 */
#ifndef MCR_AGENT_H
#define MCR_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "internal.h" /* the client's transport (conn.c, tls.c) */
#include "mcring.h"

/* ---------------------------------------------------------------- nodes.c */

#define AGENT_HOST_MAX 255     /* longest host name accepted, bytes */
#define AGENT_NODES_MAX 65535u /* most nodes a ring may have */
#define AGENT_ADDR_MAX 46      /* INET6_ADDRSTRLEN */

/* One cache node as discovered. */
typedef struct {
  char host[AGENT_HOST_MAX + 1]; /* name as the source gave it, or the
                                    numeric address when it gave none;
                                    IPv6 without brackets */
  char addr[AGENT_ADDR_MAX];     /* numeric address (the `ketama` mode
                                    hashes "<addr>:<port>") */
  uint16_t port;
  uint32_t weight; /* >= 1 */
} agent_node_t;

/* A node list plus the configuration version when the source has one. */
typedef struct {
  agent_node_t* v;
  size_t n, cap;
  bool has_version;
  uint64_t version;
} agent_nodes_t;

/* Appends a node. host is copied (at most AGENT_HOST_MAX bytes: longer is
 * MCR_EINVAL); addr may be NULL or "" (filled later by agent_nodes_resolve).
 * Returns 0, MCR_EINVAL or MCR_ENOMEM. */
int agent_nodes_add(agent_nodes_t* l, const char* host, size_t host_len,
                    const char* addr, uint16_t port, uint32_t weight);

/* Empties the list, keeping its memory. */
void agent_nodes_clear(agent_nodes_t* l);

/* Frees the list's memory; the list is empty and reusable afterwards. */
void agent_nodes_free(agent_nodes_t* l);

/* Makes dst a copy of src. Returns 0 or MCR_ENOMEM (dst then empty). */
int agent_nodes_copy(agent_nodes_t* dst, const agent_nodes_t* src);

/* Sorts by (host, port): the canonical order in which nodes are compared
 * and published, so the ring depends on the node set only. */
void agent_nodes_sort(agent_nodes_t* l);

/* True when two sorted lists hold the same nodes (host, address, port and
 * weight); the versions are not compared. */
bool agent_nodes_equal(const agent_nodes_t* a, const agent_nodes_t* b);

/* Fails with MCR_ESERVERS and a message when the list names one server
 * twice: two nodes with the same host (ignoring case) and port, or two
 * with the same address and port; when it has more than AGENT_NODES_MAX
 * nodes; or when it is empty (MCR_ENOSERVERS). MCR_ENOMEM. */
int agent_nodes_check(const agent_nodes_t* l, char* err, size_t errlen);

/* Gives back the memory of a list much larger than it was (after a
 * refused reply that grew it). */
void agent_nodes_trim(agent_nodes_t* l);

/* Fills the address of every node that has none with getaddrinfo(host)
 * (blocking, first address). Returns 0, or MCR_ERESOLVE with a message. */
int agent_nodes_resolve(agent_nodes_t* l, char* err, size_t errlen);

/* What every source does last: sort, check (agent_nodes_check), resolve
 * the nodes without an address (agent_nodes_resolve), check again (two
 * names of one address). */
int agent_nodes_finish(agent_nodes_t* l, char* err, size_t errlen);

/* True when s[0..len) is a syntactically valid DNS host name (letters,
 * digits, '-', '_', dots between non-empty labels of <= 63 bytes, <= 253
 * bytes, an optional final dot). */
bool agent_hostname_ok(const char* s, size_t len);

/* Parses s[0..len) as a numeric IPv4 or IPv6 address (no brackets) and
 * writes its canonical text to out[AGENT_ADDR_MAX]. Returns true on
 * success. */
bool agent_addr_parse(const char* s, size_t len, char* out);

/* Parses a decimal number of exactly len bytes (1..20 digits, no sign)
 * that must be <= max. Returns 0 or -1. */
int agent_parse_u64(const char* s, size_t len, uint64_t max, uint64_t* out);

/* ----------------------------------------------------------- elasticache */

/* agent_ec_parse results besides 0 and negative errors. */
#define AGENT_EC_INCOMPLETE 1  /* a valid prefix: read more bytes */
#define AGENT_EC_ERROR_REPLY 2 /* the engine answered "ERROR" */
#define AGENT_EC_MAX_REPLY (4u << 20)

/* The two requests the ElastiCache source sends. */
typedef enum {
  AGENT_EC_CONFIG, /* "config get cluster" -> "CONFIG cluster ..." */
  AGENT_EC_LEGACY  /* "get AmazonElastiCache:cluster" -> "VALUE ..." */
} agent_ec_form_t;

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
 * an empty addr) and returns 0. Returns AGENT_EC_INCOMPLETE when buf is a
 * valid prefix of a reply that is not complete yet, AGENT_EC_ERROR_REPLY
 * when the reply is "ERROR\r\n", and MCR_EPROTO (malformed, with a
 * message naming what and where), MCR_ESERVERERR / MCR_ECLIENTERR, or
 * MCR_ENOMEM otherwise. Never reads outside buf[0..len); buf need not be
 * NUL-terminated. Pure apart from out; safe to fuzz. */
int agent_ec_parse(agent_ec_form_t form, const char* buf, size_t len,
                   agent_nodes_t* out, char* err, size_t errlen);

/* The framing half of agent_ec_parse, for a reply read in pieces: checks
 * buf[0..len) as far as it goes (header, byte count, no '\r' inside the
 * block, trailer, nothing after it) without parsing the node list.
 * *checked carries what earlier calls on shorter prefixes of the same
 * reply already searched (start it at 0 for each new reply): only block
 * bytes from there on are searched, so reading a reply in k pieces costs
 * O(its length), not O(k times it). Returns 0 when buf is one complete
 * well-framed reply (agent_ec_parse then parses it), or what
 * agent_ec_parse returns for its framing: AGENT_EC_INCOMPLETE,
 * AGENT_EC_ERROR_REPLY, MCR_EPROTO, MCR_ESERVERERR, MCR_ECLIENTERR. Pure. */
int agent_ec_frame(agent_ec_form_t form, const char* buf, size_t len,
                   size_t* checked, char* err, size_t errlen);

/* The last reply of an endpoint that parsed, and its parse: a poll whose
 * reply equals it byte for byte takes the list from here instead of
 * parsing again. Zero-initialise; free with agent_ec_cache_free. Holds up
 * to AGENT_EC_MAX_REPLY bytes plus the node list. */
typedef struct {
  bool valid;
  agent_ec_form_t form; /* the request the reply answered */
  char* reply;
  size_t len, cap;
  agent_nodes_t nodes; /* as agent_ec_parse gave it: before resolving */
} agent_ec_cache_t;

/* Frees what the cache holds; it is empty and reusable afterwards. */
void agent_ec_cache_free(agent_ec_cache_t* c);

/* Parses a reply to "version" ("VERSION 1.6.21\r\n") into the numeric
 * triple *maj.*min.*patch (missing parts are 0, a suffix after the digits
 * is ignored). Returns 0, AGENT_EC_INCOMPLETE, AGENT_EC_ERROR_REPLY, or
 * MCR_EPROTO. */
int agent_ec_parse_version(const char* buf, size_t len, unsigned* maj,
                           unsigned* min, unsigned* patch);

/* One poll of an ElastiCache configuration endpoint "host:port" (IPv6 in
 * brackets; port 11211 when absent): resolves the name afresh, connects
 * (connect_timeout_ms per address tried), asks "version", then
 * "config get cluster" — or the legacy get when the engine is older than
 * 1.4.14 or answers ERROR — all within io_timeout_ms. Nodes whose ip field
 * is empty are resolved by name. On success out holds the sorted, checked
 * node list with the configuration version. *legacy (may be NULL) tells
 * which form answered. With a cache (may be NULL), a reply equal to the
 * last one that parsed is not parsed again (agent_ec_cache_t), and a reply
 * that parses replaces it. Returns 0 or a negative MCR_E* with a
 * message. */
int agent_ec_poll(const char* endpoint, int connect_timeout_ms,
                  int io_timeout_ms, mcr__tls_t* tls, agent_ec_cache_t* cache,
                  agent_nodes_t* out, bool* legacy, char* err, size_t errlen);

/* ---------------------------------------------------------------- sources */

typedef enum {
  AGENT_SRC_NONE = 0,
  AGENT_SRC_ELASTICACHE,
  AGENT_SRC_STATIC,
  AGENT_SRC_DNS,
  AGENT_SRC_FILE
} agent_src_kind_t;

/* Name of a source kind ("elasticache", "static", "dns", "file"). */
const char* agent_src_name(agent_src_kind_t k);

/* A configured source with the state it keeps between polls. */
typedef struct {
  agent_src_kind_t kind;
  char* arg; /* endpoint, server list, DNS name or file path */
  int connect_timeout_ms;
  int io_timeout_ms;
  mcr__tls_t* tls; /* TLS to the ElastiCache endpoint, or NULL (not owned) */
  /* file source: identity of the file last read and its node list */
  bool file_seen;
  dev_t file_dev;
  ino_t file_ino;
  off_t file_size;
  int64_t file_mtime_ns;
  agent_nodes_t file_nodes;
  int file_rc; /* result of the last read of that file version */
  char file_err[256];
  bool ec_legacy;            /* last ElastiCache poll used the legacy form */
  agent_ec_cache_t ec_cache; /* the endpoint's last reply that parsed */
} agent_source_t;

/* Polls the source once; on success out holds a sorted, checked node list
 * with addresses. Returns 0 or a negative MCR_E* with a message. */
int agent_source_poll(agent_source_t* s, agent_nodes_t* out, char* err,
                      size_t errlen);

/* Frees what the source keeps between polls (not s->arg). */
void agent_source_reset(agent_source_t* s);

/* The individual sources (see each file). */
int agent_static_poll(const char* list, agent_nodes_t* out, char* err,
                      size_t errlen);
int agent_dns_poll(const char* spec, agent_nodes_t* out, char* err,
                   size_t errlen);
int agent_file_poll(agent_source_t* s, agent_nodes_t* out, char* err,
                    size_t errlen);
/* Parses the text of a node file (host:port[:weight] per line, '#'
 * comments, blank lines) into out (cleared first). Returns 0 or
 * MCR_ESERVERS / MCR_ENOSERVERS / MCR_ENOMEM with "line N: ..." messages. */
int agent_file_parse(const char* text, size_t len, agent_nodes_t* out,
                     char* err, size_t errlen);
/* Parses a server list in the client's syntax (lib/servers.c:
 * "host:port[:weight],...", "[v6]:port[:weight]") and appends every entry
 * to out. Unix sockets and invalid host names are refused. Returns 0 or
 * MCR_ESERVERS / MCR_ENOSERVERS / MCR_ENOMEM with a message. */
int agent_servers_add(const char* list, agent_nodes_t* out, char* err,
                      size_t errlen);
/* The same for exactly one entry e[0..len) (no comma). */
int agent_entry_parse(const char* e, size_t len, agent_nodes_t* out, char* err,
                      size_t errlen);

/* ---------------------------------------------------------------- log.c */

typedef enum {
  AGENT_LOG_ERROR = 0,
  AGENT_LOG_WARNING,
  AGENT_LOG_INFO,
  AGENT_LOG_DEBUG
} agent_log_level_t;

/* Sends messages at or below `level` to syslog (ident "mcring-agent") when
 * use_syslog, else to stderr with a timestamp and the level. */
void agent_log_init(bool use_syslog, agent_log_level_t level);
void agent_log(agent_log_level_t level, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Parses "error", "warning", "info", "debug". Returns 0 or -1. */
int agent_log_level_parse(const char* s, agent_log_level_t* out);

/* ---------------------------------------------------------------- publish.c */

typedef struct agent_pub agent_pub_t;

/* Opens the ring directory through the snapshot writer (which creates it
 * 0750, refuses a world-writable one and takes the single-writer lock).
 * With a non-NULL group, the directory gets that group and the setgid bit
 * so every file created in it inherits the group. Returns 0 or a negative
 * error with a message. */
int agent_pub_open(agent_pub_t** out, const char* dir, const char* group,
                   char* err, size_t errlen);

/* Publishes `nodes` (sorted, checked) as a new generation in `mode`, unless
 * it equals the list published last by this process in the same mode.
 * Warns (once per version) when the configuration version went backwards.
 * Sets *published and *gen (the current generation either way). Returns 0
 * or a negative error with a message (the last ring stays published). */
int agent_pub_apply(agent_pub_t* p, mcr_distribution_t mode,
                    const agent_nodes_t* nodes, bool* published, uint64_t* gen,
                    char* err, size_t errlen);

/* Closes the ring file the last publication replaced once it has been
 * held AGENT_PUB_HOLD_MS (publish.c says why it is held); now_ms is
 * CLOCK_MONOTONIC (mcr__now_ms). Called once per poll. */
void agent_pub_release(agent_pub_t* p, int64_t now_ms);

/* Generation currently published in the directory (0 when none). */
uint64_t agent_pub_generation(const agent_pub_t* p);

/* What the status file reports after a poll. */
typedef struct {
  const char* source;   /* "elasticache cfg.example:11211" */
  int64_t poll_time_ms; /* CLOCK_REALTIME */
  int rc;               /* 0 or the poll's error */
  const char* message;  /* the error's message, or "" */
  bool has_version;
  uint64_t version;
  size_t nodes;       /* of the published list */
  int64_t last_ok_ms; /* CLOCK_REALTIME of the last good poll, 0 = never */
  unsigned failures;  /* consecutive failed polls */
} agent_status_t;

/* Writes the status file "status" in the ring directory atomically (a
 * temporary file created O_EXCL|O_NOFOLLOW relative to the directory, then
 * renamed over it). Returns 0 or MCR_ESYS with a message. */
int agent_pub_status(agent_pub_t* p, const agent_status_t* st, char* err,
                     size_t errlen);

/* Releases the lock and a held ring file; the published ring and the
 * status file stay. */
void agent_pub_close(agent_pub_t* p);

#endif /* MCR_AGENT_H */
