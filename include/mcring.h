/* mcring.h — the one public header of libmcring.
 *
 * libmcring is a memcached client for hosts that run many worker processes.
 * A client handle (mcr_client_t) owns its connections and its reply buffers;
 * it speaks the complete memcached text protocol and the meta protocol, and
 * routes each key to a node. Conventions, everywhere in this header:
 *
 *  - Functions return 0 or a positive outcome on success and a negative
 *    MCR_E* code on failure. mcr_strerror() and mcr_err_name() describe a
 *    code. A positive return is always an outcome (mcr_status_t), never a
 *    count: counts come back through an out-parameter.
 *  - Outcomes that are not failures (miss, not stored, exists, not found) are
 *    positive mcr_status_t values, never errors.
 *  - Errors are explained in one place each: a constructor writes its reason
 *    to the (err, errlen) it takes; a handle keeps the text of its last
 *    error (mcr_client_last_error, mcr_snapshot_last_error,
 *    mcr_hoststats_last_error).
 *  - Memory returned through a result (values, keys, stats, version text)
 *    belongs to the client and stays valid until the next call on that
 *    client handle or until it is freed.
 *  - A client handle is used by one thread at a time. Distinct handles are
 *    independent and may be used concurrently from different threads.
 *  - The library never prints and never aborts. The text of the last error
 *    (with the server's message for ERROR / CLIENT_ERROR / SERVER_ERROR) is
 *    kept on the handle: mcr_client_last_error().
 *  - A NULL handle or a NULL required pointer is MCR_EINVAL (functions that
 *    return no int do nothing, or return 0 / NULL).
 *  - Thread-safety: a function marked "Thread-safe" may be called from any
 *    thread at any time. Every other function that takes a handle
 *    (mcr_client_t, mcr_snapshot_t, mcr_hoststats_t) follows the handle
 *    rule above: one thread at a time per handle, distinct handles freely
 *    in parallel. An immutable ring (mcr_ring_t) may be read by any number
 *    of threads at once.
 */
#ifndef MCRING_H
#define MCRING_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MCR_BUILDING_LIBRARY) && defined(__GNUC__)
#define MCR_EXTERN __attribute__((visibility("default")))
#else
#define MCR_EXTERN /* nothing */
#endif

#define MCR_VERSION_MAJOR 0
#define MCR_VERSION_MINOR 3
#define MCR_VERSION_PATCH 0

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

/* One list yields the codes, mcr_strerror() and mcr_err_name(). The numbers
 * are part of the ABI: append, never renumber. */
#define MCR_ERRNO_MAP(XX)                                            \
  XX(EINVAL, -1, "invalid argument")                                 \
  XX(ENOMEM, -2, "out of memory")                                    \
  XX(EKEY, -3, "invalid key")                                        \
  XX(ETOOBIG, -4, "value larger than the item size limit")           \
  XX(ERESOLVE, -5, "host name resolution failed")                    \
  XX(ECONNECT, -6, "connection refused or failed")                   \
  XX(ECONNTIMEOUT, -7, "connect timed out")                          \
  XX(ETIMEOUT, -8, "I/O timed out")                                  \
  XX(ECLOSED, -9, "connection closed by the server")                 \
  XX(EIO, -10, "socket I/O error")                                   \
  XX(EPROTO, -11, "protocol error: malformed reply from the server") \
  XX(ESERVERCMD, -12, "server answered ERROR (unknown command)")     \
  XX(ECLIENTERR, -13, "server answered CLIENT_ERROR")                \
  XX(ESERVERERR, -14, "server answered SERVER_ERROR")                \
  XX(ENOSERVERS, -15, "no servers configured")                       \
  XX(ESERVERS, -16, "invalid server list")                           \
  XX(ESERDE, -17, "serializer callback failed")                      \
  XX(ECOMPRESS, -18, "compression or decompression failed")          \
  XX(ENOTSUP, -19, "operation not supported in this configuration")  \
  XX(ENODEDOWN, -20, "node marked down after repeated failures")     \
  XX(ERANGE, -21, "number out of range")                             \
  XX(ESNAPSHOT, -22, "ring snapshot missing, invalid or refused")    \
  XX(EPERM, -23, "permission or ownership check failed")             \
  XX(ESYS, -24, "system call failed")                                \
  XX(ETLS, -25, "TLS handshake or record layer failed")              \
  XX(ETLSVERIFY, -26, "TLS certificate verification failed")

typedef enum {
#define MCR__ERR_ENUM(name, code, text) MCR_##name = (code),
  MCR_ERRNO_MAP(MCR__ERR_ENUM)
#undef MCR__ERR_ENUM
} mcr_errno_t;

/* Returns a static English description of `err` ("unknown error" for a code
 * not in the list). Thread-safe. */
MCR_EXTERN const char* mcr_strerror(int err);

/* Returns the static name of `err` without the MCR_ prefix ("ETIMEOUT"), or
 * "UNKNOWN". Thread-safe. */
MCR_EXTERN const char* mcr_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Outcomes                                                                  */

/* Non-negative results of an operation. None of them is an error. */
typedef enum {
  MCR_OK = 0,         /* hit, STORED, DELETED, TOUCHED, OK, HD, VA */
  MCR_MISS = 1,       /* get / gat / mg found nothing (END, EN) */
  MCR_NOT_STORED = 2, /* add / replace / append / prepend refused (NS);
                         also a write lost under ignore_errors */
  MCR_EXISTS = 3,     /* cas mismatch (EXISTS, EX) */
  MCR_NOT_FOUND = 4   /* delete / incr / touch / cas on no item (NF) */
} mcr_status_t;

/* Returns the static name of an outcome: "OK", "MISS", "NOT_STORED",
 * "EXISTS" or "NOT_FOUND"; for a negative value mcr_err_name()'s; else
 * "UNKNOWN". Thread-safe. */
MCR_EXTERN const char* mcr_status_name(int status);

/* ------------------------------------------------------------------------ */
/* Allocator                                                                 */

/* Replaces the allocator libmcring uses for everything it allocates. Call it
 * before any other mcring function, or not at all; all four must be given.
 * Returns 0, or MCR_EINVAL when a function is NULL. Not thread-safe. */
MCR_EXTERN int mcr_replace_allocator(void* (*malloc_fn)(size_t),
                                     void* (*realloc_fn)(void*, size_t),
                                     void* (*calloc_fn)(size_t, size_t),
                                     void (*free_fn)(void*));

/* ------------------------------------------------------------------------ */
/* Flags stored with every item (the 32-bit "client flags")                  */

/* The bit map, compatible with pymemcache where the two overlap:
 *   0            raw bytes (pymemcache FLAG_BYTES; mcring's default)
 *   bit 0 (0x01) pymemcache pickle         - never set by mcring itself
 *   bit 1 (0x02) pymemcache integer        - never set by mcring itself
 *   bit 2 (0x04) pymemcache long           - never set by mcring itself
 *   bit 3 (0x08) pymemcache zlib-compressed - never set by mcring itself
 *   bit 4 (0x10) pymemcache text           - never set by mcring itself
 *   bit 8 (0x100) MCR_FLAG_ZSTD: the stored bytes are a zstd frame of the
 *                 value; mcring sets it when it compresses and clears it
 *                 after decompressing (unless raw_flags: then it is an
 *                 ordinary flag, passed through both ways). */
#define MCR_FLAG_ZSTD 0x100u

/* ------------------------------------------------------------------------ */
/* Serialization hooks                                                       */

/* A growable byte buffer handed to serde callbacks. */
typedef struct mcr_buf mcr_buf_t;

/* Appends `len` bytes to `buf`. Returns 0 or MCR_ENOMEM. Only for the buffer
 * a serde callback was handed, during that callback. */
MCR_EXTERN int mcr_buf_append(mcr_buf_t* buf, const void* data, size_t len);

/* Optional serializer: encode runs on every stored value before the optional
 * compression, decode on every fetched value after decompression. Each
 * appends its output to `out` (empty on entry) and may change `*flags`
 * (encode) or read `flags` (decode). Return 0, or any negative value to fail
 * the operation with MCR_ESERDE (nothing is sent). Called on the thread that
 * uses the client. */
typedef struct {
  int (*encode)(void* ud, const void* in, size_t in_len, uint32_t* flags,
                mcr_buf_t* out);
  int (*decode)(void* ud, const void* in, size_t in_len, uint32_t flags,
                mcr_buf_t* out);
  void* ud;
} mcr_serde_t;

/* ------------------------------------------------------------------------ */
/* Client                                                                    */

typedef struct mcr_client mcr_client_t;

/* How keys map to nodes when the client has several (see docs/). */
typedef enum {
  MCR_DIST_KETAMA = 0,              /* spymemcached / pyelasticache_client */
  MCR_DIST_KETAMA_LIBMEMCACHED = 1, /* libmemcached KETAMA_WEIGHTED */
  MCR_DIST_XXH3 = 2                 /* mcring-only, fastest lookup */
} mcr_distribution_t;

/* TLS for every connection of a client, or of the agent's configuration
 * endpoint polls (docs/tls.md). All zero (the default): plain TCP. With
 * enable = 1 every connection is TLS and nothing is ever sent in clear; a
 * library built --without-tls refuses it (MCR_ENOTSUP). With enable = 0
 * every other field must be left zero (min_version may be 12):
 * mcr_client_new refuses a TLS setting that would not take effect
 * (MCR_EINVAL) rather than talk in clear. The certificate
 * of every server is verified by default: against ca_file / ca_dir when
 * given, else the system's trust store, for the name `server_name` or,
 * when NULL, each node's host name as configured (or as the agent's ring
 * names it: a ring node is verified against its host name and connected
 * to at the address the agent resolved). A name is also sent as SNI; an
 * IP address is verified against the certificate's IP addresses. The
 * handshake counts against connect_timeout_ms. Strings are copied at
 * mcr_client_new. */
typedef struct {
  int enable;              /* 1: TLS on every connection */
  const char* ca_file;     /* PEM bundle of trusted CAs */
  const char* ca_dir;      /* directory of hashed CA certificates */
  const char* cert_file;   /* client certificate chain (mutual TLS), PEM */
  const char* key_file;    /* its private key, PEM (default: cert_file) */
  const char* server_name; /* the name to verify and send as SNI */
  int min_version;         /* 12 (default, TLS 1.2) or 13 (TLS 1.3) */
  /* 1: accept any certificate, for any name. Anyone on the path can then
   * read and change the traffic: only for tests against self-made
   * certificates. Default 0. */
  int insecure;
} mcr_tls_opts_t;

/* Client options. Always start from mcr_client_opts_init(); fields added in
 * later versions get defaults there. */
typedef struct {
  /* Where the nodes come from: exactly one of servers, ring_dir and
   * elasticache (below, with discovery_interval_ms).
   *
   * servers: comma-separated "host:port[:weight]" entries; IPv6 addresses
   * in brackets ("[::1]:11211"); "/path/to/socket" or "unix:/path" for a
   * unix socket. Several servers are placed on a ring of `distribution`,
   * built in this process (the embedded mode: no agent needed).
   *
   * ring_dir: the directory where mcring-agent publishes its ring (for
   * example "/run/mcring/main"). The client maps the agent's snapshot
   * read-only, checks for a new generation at the start of every call (one
   * atomic load) and follows it: connections to nodes still present stay
   * open, removed nodes' connections close, new nodes connect on first use.
   * `distribution` is then the agent's, and this field is ignored. */
  const char* servers;
  const char* ring_dir;
  /* The uid that must own the snapshot files under ring_dir (the agent's
   * user). -1 (default) trusts the owner of ring_dir itself, and then
   * refuses a ring_dir that another user could have created first: a
   * symlink, or one whose parent is writable by group or others or not
   * owned by root or that owner (docs/agent.md, "The ring directory"). */
  long ring_owner_uid;
  /* 1: check every generation of the ring in full in this process (the
   * `verify` of mcr_snapshot_opts_t); default 0: header, bounds and node
   * table only, as the agent verified the rest before publishing. */
  int ring_verify;
  mcr_distribution_t distribution; /* default MCR_DIST_KETAMA */
  int connect_timeout_ms;          /* default 1000; covers name resolution */
  int io_timeout_ms;               /* default 1000; whole reply per call */
  int tcp_keepalive;               /* default 0: SO_KEEPALIVE when 1 */
  int noreply;                     /* default 0: writes wait for replies */
  int ignore_errors;               /* default 0; see mcr_client_opts_init */
  size_t item_size_max;            /* default 1 MiB (memcached's -I) */
  size_t compress_threshold;       /* default 0 = never compress */
  int compress_level;              /* zstd level, default 1 */
  /* 1: bit 0x100 is an ordinary client flag, for keys shared with
   * clients that use it: values are never decompressed on the way out and
   * flags containing it may be stored. Needs compress_threshold 0 (else
   * mcr_client_new fails with MCR_EINVAL). Default 0: MCR_FLAG_ZSTD. */
  int raw_flags;
  const mcr_serde_t* serde; /* default NULL: bytes are stored as is */
  /* Node failure: after failure_limit consecutive connect or I/O failures
   * on a node (default 2), the node is marked down in this client for
   * retry_timeout_ms (default 1000); its keys then fail at once with
   * MCR_ENODEDOWN (a miss / not-stored under ignore_errors) without
   * touching the network. When the time is up, the next call tries the
   * node again. With eject = 1, keys of a down node go to the next node on
   * the ring instead, until it is back. failure_limit 0 disables it.
   * A ring_dir client registered with the agent shares this host-wide
   * (docs/health.md): failures in a row are counted over the whole host
   * (by any worker, no success by anyone in between), a mark made by any
   * worker holds in every other (for at most its own retry_timeout_ms),
   * and one process of the host, not each, tries the node when the time
   * is up. */
  int failure_limit;
  int retry_timeout_ms;
  int eject;
  /* Host-wide statistics (ring_dir clients only): when the agent serves
   * host stats (DIR/stats.sock), the client registers a counter segment
   * of its own with it, for `mcring stat` (see mcr_hoststats_*). Without
   * an agent socket, or without access to it, counters stay private.
   * Default 1; 0 keeps them private. */
  int host_stats;
  /* TLS to every node (see mcr_tls_opts_t). Default: off. */
  mcr_tls_opts_t tls;
  /* Number of leading key bytes that routing ignores (default 0): a key
   * is stored as given but placed by key[route_skip..len), or by the
   * whole key when it is not longer than route_skip. For clients that
   * prepend a namespace to every key yet must place keys as a peer that
   * hashes the key without it (libmemcached's prefix key). Applies to
   * every routed call, meta and multi-key ones included. */
  size_t route_skip;
  /* Discovery without an agent (the embedded discovery, for a single
   * process: a script, a small service): the ElastiCache configuration
   * endpoint "host:port" (IPv6 in brackets; port 11211 when absent) of a
   * memcached cluster. Exactly one of servers, ring_dir and elasticache.
   * mcr_client_new polls it once and fails when it cannot (the reason in
   * err); then, from inside calls and at most once per
   * discovery_interval_ms (default 60000), the call that finds the
   * interval over polls again (over TLS when tls.enable), spending at most
   * connect_timeout_ms + io_timeout_ms on it before its own work. A
   * changed node list rebuilds the ring of `distribution` in this process
   * (ring_switches counts it; connections to kept nodes stay open); a
   * failed poll or a reply the agent would refuse keeps the last ring
   * (ring_errors counts it). No thread is started. Every process polls
   * on its own: with more than a few processes per host, run mcring-agent
   * and give them ring_dir instead (docs/elasticache.md); the client
   * writes one warning to stderr when it sees more than
   * MCR_DISCOVERY_PEERS_WARN processes of its user polling the same
   * endpoint. */
  const char* elasticache;
  int discovery_interval_ms;
} mcr_client_opts_t;

/* Embedded discovery: processes of one user polling one endpoint on a
 * host above which a client warns once (see mcr_client_opts_t). */
#define MCR_DISCOVERY_PEERS_WARN 4

/* Fills `opts` with the defaults listed above.
 *
 * ignore_errors: when set, network, timeout and server errors on reads are
 * reported as MCR_MISS and on writes as MCR_NOT_STORED (so callers treat the
 * cache as merely cold), and each is counted in mcr_client_stats_t.
 * Validation errors (bad key, too big) are still returned. */
MCR_EXTERN void mcr_client_opts_init(mcr_client_opts_t* opts);

/* Creates a client. Checks the options, parses opts->servers (or opens the
 * agent's ring in opts->ring_dir) and builds the ring; connects lazily, on
 * first use of each node. Returns 0 and sets *out, or MCR_EINVAL,
 * MCR_ESERVERS (bad list), MCR_ENOSERVERS, MCR_ERESOLVE / MCR_ECONNTIMEOUT
 * (the `ketama` mode resolves host names, within the connect timeout),
 * MCR_ESNAPSHOT / MCR_EPERM (ring_dir), MCR_ENOMEM, with the reason in
 * err[errlen] ("bad server \"h:0\": ...", "ring /run/mcring/x: ..."; err
 * may be NULL). Thread-safe. */
MCR_EXTERN int mcr_client_new(mcr_client_t** out, const mcr_client_opts_t* opts,
                              char* err, size_t errlen);

/* Closes every connection, unmaps the ring, gives back the client's host
 * stats slot, and frees the client. NULL is ignored. Not while another
 * thread uses `c`. */
MCR_EXTERN void mcr_client_free(mcr_client_t* c);

/* Text of the last error on `c` ("" if none): the failing node, the system
 * error, or the server's own message line for MCR_ESERVERCMD, MCR_ECLIENTERR
 * and MCR_ESERVERERR. Valid until the next call on `c`. */
MCR_EXTERN const char* mcr_client_last_error(const mcr_client_t* c);

/* The ring keys are routed by (mcr_ring_t is described with the ring
 * functions below): NULL with a single server, else valid until the next
 * call on `c` (a ring_dir client may switch generations at the start of
 * any call). */
typedef struct mcr_ring mcr_ring_t;
MCR_EXTERN const mcr_ring_t* mcr_client_ring(const mcr_client_t* c);

/* Routes every keyed call on `c` that follows by `server_key` instead of
 * each call's own keys, until the next mcr_client_route_by: all the keys
 * of those calls go to the node server_key[0..len) hashes to, as
 * libmemcached's *_by_key calls (php-memcached's *ByKey methods) place
 * them; route_skip does not apply to it. The server key is only hashed,
 * never sent: any bytes, at most 250 of them. server_key NULL goes back to
 * routing by each key. Returns 0, or MCR_EKEY (the routing is unchanged)
 * for a longer key. */
MCR_EXTERN int mcr_client_route_by(mcr_client_t* c, const char* server_key,
                                   size_t len);

/* The snapshot generation the client routes by (0 when it does not follow
 * a ring_dir). */
MCR_EXTERN uint64_t mcr_client_generation(const mcr_client_t* c);

/* Number of nodes, and "host:port" of node `i` (NULL when out of range).
 * Node indexes are those of mcr_client_stats_node, mcr_client_version and
 * mcr_client_mn. The name belongs to the client and, like the count, stays
 * valid until the next call on `c` (a ring_dir client may switch
 * generations at the start of any call). */
MCR_EXTERN size_t mcr_client_node_count(const mcr_client_t* c);
MCR_EXTERN const char* mcr_client_node_name(const mcr_client_t* c, size_t i);

/* Counters kept per client handle. */
typedef struct {
  uint64_t ignored_errors;  /* errors turned into misses / not-stored */
  uint64_t reconnects;      /* connections opened after the first */
  uint64_t compressed;      /* values stored compressed */
  uint64_t ring_switches;   /* rings switched to (ring_dir, elasticache) */
  uint64_t ring_errors;     /* generations refused or polls failed (last
                               good ring kept) */
  uint64_t tls_handshakes;  /* TLS handshakes completed */
  uint64_t tls_resumed;     /* of them, sessions resumed (no full handshake) */
  uint64_t discovery_polls; /* embedded discovery: endpoint polls made */
  /* embedded discovery: processes of this user (this one included) seen
   * polling the same endpoint from this host at the last poll */
  uint64_t discovery_peers;
} mcr_client_stats_t;

/* Copies the handle's counters into *out (nothing when c or out is NULL). */
MCR_EXTERN void mcr_client_stats(const mcr_client_t* c,
                                 mcr_client_stats_t* out);

/* Per-call flags (the `cflags` argument of write operations):
 * MCR_CALL_NOREPLY sends noreply (no reply is read; MCR_OK once sent);
 * MCR_CALL_REPLY waits for the reply even when the client's default is
 * noreply. */
#define MCR_CALL_NOREPLY 0x1u
#define MCR_CALL_REPLY 0x2u

/* One fetched item. value points into client memory (see top of file). */
typedef struct {
  const char* value;
  size_t value_len;
  uint32_t flags; /* client flags, MCR_FLAG_ZSTD already removed */
  uint64_t cas;   /* only from gets / gats, else 0 */
  int status;     /* multi-key calls: MCR_OK, MCR_MISS, or a negative error
                     for this key alone */
} mcr_item_t;

/* Errors of every call that goes to a server, besides those listed with
 * each function: validation, before anything is sent - MCR_EINVAL,
 * MCR_EKEY, MCR_ETOOBIG, MCR_ERANGE (ttl / delay outside 32 bits), and
 * MCR_ESERDE / MCR_ECOMPRESS (value encoding); transport - MCR_ERESOLVE,
 * MCR_ECONNECT, MCR_ECONNTIMEOUT, MCR_ETIMEOUT, MCR_ECLOSED, MCR_EIO,
 * MCR_EPROTO (the connection is closed after each of these), and
 * MCR_ENODEDOWN (the node is marked down); server - MCR_ESERVERCMD,
 * MCR_ECLIENTERR, MCR_ESERVERERR (the connection stays open). Under
 * ignore_errors the transport and server errors become MCR_MISS (reads)
 * or MCR_NOT_STORED (writes). The detail is in mcr_client_last_error().
 *
 * Time: no call lasts longer than connect_timeout_ms + io_timeout_ms,
 * whatever the servers do (plus the time the process is not scheduled):
 * each node gets connect_timeout_ms to connect (name resolution included)
 * and io_timeout_ms from then for the whole exchange, within that bound.
 *
 * Retries: a connection kept from an earlier call that the server closed
 * before any byte of the reply is replaced and the request sent once more,
 * inside the same deadline, only for commands that are harmless to apply
 * twice: get, gets, gat, gats and their multi-key forms, set, replace,
 * set_multi, touch, stats, version, flush_all, verbosity, cache_memlimit,
 * mn, me, mg without N or R, ms in set or replace mode without C or I, and
 * pipelines of only those. Every other command (add, append, prepend, cas,
 * incr, decr, delete, delete_multi, md, ma, anything noreply) fails with
 * MCR_ECLOSED instead ("the command may have been applied"): a server or
 * proxy that applied it and then closed looks the same as one that closed
 * while idle.
 *
 * Reply sizes: a value announced larger than item_size_max, a reply line
 * over 8 KiB, or a stats reply of more than 100,000 lines is MCR_EPROTO
 * before any buffer grows for it (set item_size_max to at least the
 * servers' -I). */

/* Storage commands. `flags` may not contain MCR_FLAG_ZSTD unless raw_flags
 * is set (MCR_EINVAL: the bit is the compression marker). `ttl` is memcached's
 * exptime: seconds (<= 30 days) or a unix time, 0 = never expires, negative =
 * expired at once. Return MCR_OK, MCR_NOT_STORED (add on an existing key,
 * replace/append/prepend on a missing one), or a negative error. With noreply,
 * MCR_OK once sent. Nothing is sent when the key or the value is invalid. */
MCR_EXTERN int mcr_client_set(mcr_client_t* c, const char* key, size_t key_len,
                              const void* value, size_t value_len,
                              uint32_t flags, int64_t ttl, unsigned cflags);
MCR_EXTERN int mcr_client_add(mcr_client_t* c, const char* key, size_t key_len,
                              const void* value, size_t value_len,
                              uint32_t flags, int64_t ttl, unsigned cflags);
MCR_EXTERN int mcr_client_replace(mcr_client_t* c, const char* key,
                                  size_t key_len, const void* value,
                                  size_t value_len, uint32_t flags, int64_t ttl,
                                  unsigned cflags);
/* append / prepend send raw bytes: no serde, no compression. Flags and ttl
 * are ignored by memcached for these two. */
MCR_EXTERN int mcr_client_append(mcr_client_t* c, const char* key,
                                 size_t key_len, const void* value,
                                 size_t value_len, unsigned cflags);
MCR_EXTERN int mcr_client_prepend(mcr_client_t* c, const char* key,
                                  size_t key_len, const void* value,
                                  size_t value_len, unsigned cflags);
/* Check-and-set: stores only when the item's cas unique is still `cas`.
 * Returns MCR_OK, MCR_EXISTS (changed since), MCR_NOT_FOUND (gone). */
MCR_EXTERN int mcr_client_cas(mcr_client_t* c, const char* key, size_t key_len,
                              const void* value, size_t value_len,
                              uint32_t flags, int64_t ttl, uint64_t cas,
                              unsigned cflags);

/* Retrieval. Return MCR_OK (item filled), MCR_MISS, or a negative error.
 * gets / gats also fill item->cas. gat / gats update the TTL on a hit
 * (`ttl` as for the storage commands). item->value is client memory. */
MCR_EXTERN int mcr_client_get(mcr_client_t* c, const char* key, size_t key_len,
                              mcr_item_t* item);
MCR_EXTERN int mcr_client_gets(mcr_client_t* c, const char* key, size_t key_len,
                               mcr_item_t* item);
MCR_EXTERN int mcr_client_gat(mcr_client_t* c, const char* key, size_t key_len,
                              int64_t ttl, mcr_item_t* item);
MCR_EXTERN int mcr_client_gats(mcr_client_t* c, const char* key, size_t key_len,
                               int64_t ttl, mcr_item_t* item);

/* Multi-key retrieval: one request per node with all its keys. items[i]
 * receives keys[i]'s result, status included (MCR_OK, MCR_MISS, or a
 * negative error when that key's node failed). Returns 0 with *hits set
 * (hits may be NULL), or a negative error when the arguments are invalid
 * (nothing sent then). Duplicate keys are allowed. */
MCR_EXTERN int mcr_client_get_multi(mcr_client_t* c, size_t n,
                                    const char* const* keys,
                                    const size_t* key_lens, mcr_item_t* items,
                                    size_t* hits);
MCR_EXTERN int mcr_client_gets_multi(mcr_client_t* c, size_t n,
                                     const char* const* keys,
                                     const size_t* key_lens, mcr_item_t* items,
                                     size_t* hits);

/* Many keys at once, one request per node, all nodes' requests sent
 * before any reply is read. statuses[i] receives key i's outcome (MCR_OK,
 * MCR_NOT_STORED, MCR_NOT_FOUND, or a negative error when that key's node
 * failed or the server refused that command). Every key and value is
 * checked (and encoded) before anything is sent: an invalid one returns
 * its error and sends nothing. Returns 0 with the number of MCR_OK
 * statuses in *done (may be NULL), or that error. set_multi stores every
 * value with the same flags and ttl. */
MCR_EXTERN int mcr_client_set_multi(
    mcr_client_t* c, size_t n, const char* const* keys, const size_t* key_lens,
    const void* const* values, const size_t* value_lens, uint32_t flags,
    int64_t ttl, int* statuses, unsigned cflags, size_t* done);
MCR_EXTERN int mcr_client_delete_multi(mcr_client_t* c, size_t n,
                                       const char* const* keys,
                                       const size_t* key_lens, int* statuses,
                                       unsigned cflags, size_t* done);

/* delete: MCR_OK or MCR_NOT_FOUND. */
MCR_EXTERN int mcr_client_delete(mcr_client_t* c, const char* key,
                                 size_t key_len, unsigned cflags);

/* incr / decr: MCR_OK with *value set to the new value (when value is not
 * NULL and the call was not noreply), MCR_NOT_FOUND, or an error
 * (MCR_ECLIENTERR when the stored value is not a number). decr stops at 0;
 * incr wraps at 2^64 as memcached does. */
MCR_EXTERN int mcr_client_incr(mcr_client_t* c, const char* key, size_t key_len,
                               uint64_t delta, uint64_t* value,
                               unsigned cflags);
MCR_EXTERN int mcr_client_decr(mcr_client_t* c, const char* key, size_t key_len,
                               uint64_t delta, uint64_t* value,
                               unsigned cflags);

/* touch: new TTL for an existing item. MCR_OK or MCR_NOT_FOUND. */
MCR_EXTERN int mcr_client_touch(mcr_client_t* c, const char* key,
                                size_t key_len, int64_t ttl, unsigned cflags);

/* ---- Per-node and cluster-wide commands ---- */

typedef struct {
  const char* name;
  const char* value;
} mcr_stat_t;

/* "stats [arg]" on node `node`. arg is NULL (general stats) or one of
 * memcached's groups ("settings", "items", "slabs", "sizes", "conns", ...):
 * one or two words ("detail on") of printable ASCII, else MCR_EINVAL. Sets
 * *stats to an array owned by the client and *count to its length and
 * returns 0, or a negative error (MCR_EINVAL also for node >=
 * mcr_client_node_count(c); MCR_EPROTO for a reply of more than 100,000
 * lines). */
MCR_EXTERN int mcr_client_stats_node(mcr_client_t* c, size_t node,
                                     const char* arg, const mcr_stat_t** stats,
                                     size_t* count);

/* "version" on node `node`. Sets *version to the server's version text
 * (client memory) and returns MCR_OK, or MCR_EINVAL (no such node) or an
 * error. */
MCR_EXTERN int mcr_client_version(mcr_client_t* c, size_t node,
                                  const char** version);

/* These three go to every node. Each returns MCR_OK when every node
 * answered OK, else the first error (all nodes are still tried). */
MCR_EXTERN int mcr_client_flush_all(mcr_client_t* c, int64_t delay,
                                    unsigned cflags);
MCR_EXTERN int mcr_client_verbosity(mcr_client_t* c, unsigned level,
                                    unsigned cflags);
MCR_EXTERN int mcr_client_cache_memlimit(mcr_client_t* c, uint64_t megabytes,
                                         unsigned cflags);

/* Sends "quit" to every connected node and closes the connections. The
 * client stays usable; the next call reconnects. Returns 0. */
MCR_EXTERN int mcr_client_quit(mcr_client_t* c);

/* ------------------------------------------------------------------------ */
/* Meta commands (mg, ms, md, ma, mn, me)                                    */

/* The meta protocol as memcached 1.6 speaks it (doc/protocol.txt), for
 * callers that need more than the classic commands: stale / win / invalidate
 * flags for stampede protection, hit and last-access data, quiet pipelines.
 *
 *  - Values are bytes as given and as stored: meta calls apply no serde and
 *    no compression, and client flags pass through untouched (an item
 *    stored compressed by mcr_client_set comes back with MCR_FLAG_ZSTD set
 *    and its compressed bytes).
 *  - Everything is checked before a byte is sent: the key (text rules, or
 *    1..186 raw bytes with MCR_META_BASE64, sent base64 and routed on the
 *    raw bytes, the key memcached stores), ms values against item_size_max
 *    (MCR_ETOOBIG), and the flags: a flag the command does not take, a mode
 *    that is not one of its MCR_MS_* / MCR_MA_* letters ('+' and '-' also
 *    work for ma), ms I without C, md T without I or ma J without N is
 *    MCR_EINVAL; a T / N / R token outside 32 bits (memcached's parser) is
 *    MCR_ERANGE.
 *  - `o` may be NULL (no flags) and `r` may be NULL (status only).
 *  - The client's noreply default does not apply: meta calls always wait.
 *    With MCR_META_QUIET a single call sends "mn" behind the command and
 *    reads up to its MN, so a suppressed reply yields the implied status
 *    (MCR_MISS for mg, MCR_OK otherwise) instead of a timeout.
 *  - ignore_errors softens mg and me like reads and ms / md / ma like
 *    writes; mn is never softened (it is a liveness probe). */

/* Request flags for mcr_meta_opts_t.flags. Each maps to one meta flag; the
 * ones marked "uses" take their token from the named field. */
#define MCR_META_VALUE (1u << 0)        /* v  return the value (mg, ma) */
#define MCR_META_RET_CAS (1u << 1)      /* c  return cas */
#define MCR_META_RET_FLAGS (1u << 2)    /* f  return client flags (mg) */
#define MCR_META_RET_TTL (1u << 3)      /* t  return remaining TTL */
#define MCR_META_RET_HIT (1u << 4)      /* h  return hit-before (mg) */
#define MCR_META_RET_LAST (1u << 5)     /* l  return last access (mg) */
#define MCR_META_RET_SIZE (1u << 6)     /* s  return value size (mg) */
#define MCR_META_RET_KEY (1u << 7)      /* k  return the key */
#define MCR_META_QUIET (1u << 8)        /* q  no reply on the common case */
#define MCR_META_BASE64 (1u << 9)       /* b  key is binary; sent base64 */
#define MCR_META_NO_BUMP (1u << 10)     /* u  do not bump LRU (mg) */
#define MCR_META_INVALIDATE (1u << 11)  /* I  ms: invalidate; md: mark stale */
#define MCR_META_OPAQUE (1u << 12)      /* O  uses opaque */
#define MCR_META_TTL (1u << 13)         /* T  uses ttl */
#define MCR_META_VIVIFY (1u << 14)      /* N  uses vivify_ttl (mg, ma) */
#define MCR_META_RECACHE (1u << 15)     /* R  uses recache_ttl (mg) */
#define MCR_META_COMPARE_CAS (1u << 16) /* C uses cas */
#define MCR_META_SET_FLAGS (1u << 17)   /* F  uses client_flags (ms) */
#define MCR_META_DELTA (1u << 18)       /* D  uses delta (ma) */
#define MCR_META_INITIAL (1u << 19)     /* J  uses initial (ma) */
#define MCR_META_MODE (1u << 20)        /* M  uses mode (ms, ma) */
/* x  md: drop the value, keep the item. Newer than memcached 1.6.18,
 * which answers CLIENT_ERROR (MCR_ECLIENTERR) to it. */
#define MCR_META_REMOVE_VALUE (1u << 21)

/* ms modes (M flag). */
#define MCR_MS_SET 'S'
#define MCR_MS_ADD 'E'
#define MCR_MS_APPEND 'A'
#define MCR_MS_PREPEND 'P'
#define MCR_MS_REPLACE 'R'
/* ma modes (M flag). */
#define MCR_MA_INCR 'I'
#define MCR_MA_DECR 'D'

typedef struct {
  uint32_t flags;        /* MCR_META_* */
  int64_t ttl;           /* T */
  int64_t vivify_ttl;    /* N */
  int64_t recache_ttl;   /* R */
  uint64_t cas;          /* C */
  uint32_t client_flags; /* F */
  uint32_t opaque;       /* O */
  uint64_t delta;        /* D */
  uint64_t initial;      /* J */
  char mode;             /* M: one of MCR_MS_* or MCR_MA_* */
} mcr_meta_opts_t;

/* Which fields of mcr_meta_result_t the server returned. */
#define MCR_MR_CAS (1u << 0)
#define MCR_MR_FLAGS (1u << 1)
#define MCR_MR_TTL (1u << 2)
#define MCR_MR_HIT (1u << 3)
#define MCR_MR_LAST (1u << 4)
#define MCR_MR_SIZE (1u << 5)
#define MCR_MR_OPAQUE (1u << 6)
#define MCR_MR_KEY (1u << 7)
#define MCR_MR_VALUE (1u << 8)

typedef struct {
  int status;        /* MCR_OK (HD/VA), MCR_MISS (EN), MCR_NOT_STORED,
                        MCR_EXISTS, MCR_NOT_FOUND, or a negative error */
  uint32_t have;     /* MCR_MR_* bits */
  const char* value; /* with MCR_MR_VALUE */
  size_t value_len;
  const char* key; /* with MCR_MR_KEY: the key as the caller gave it
                      (a base64 key from a b request is decoded back
                      to its raw bytes) */
  size_t key_len;
  uint64_t cas;
  uint32_t client_flags;
  int64_t ttl;          /* -1 = never expires */
  int hit;              /* 0 or 1 */
  uint64_t last_access; /* seconds since last access */
  uint64_t size;
  uint32_t opaque;
  int win;         /* W: this client should recache the item */
  int stale;       /* X: the item is stale */
  int won_already; /* Z: another client already holds the win token */
} mcr_meta_result_t;

/* Single meta commands. Return the result's status (also in r->status), or
 * a negative error. Values in `r` point into client memory. A reply whose
 * opaque differs from the O sent (MCR_META_OPAQUE) is MCR_EPROTO. */
MCR_EXTERN int mcr_client_mg(mcr_client_t* c, const char* key, size_t key_len,
                             const mcr_meta_opts_t* o, mcr_meta_result_t* r);
MCR_EXTERN int mcr_client_ms(mcr_client_t* c, const char* key, size_t key_len,
                             const void* value, size_t value_len,
                             const mcr_meta_opts_t* o, mcr_meta_result_t* r);
MCR_EXTERN int mcr_client_md(mcr_client_t* c, const char* key, size_t key_len,
                             const mcr_meta_opts_t* o, mcr_meta_result_t* r);
MCR_EXTERN int mcr_client_ma(mcr_client_t* c, const char* key, size_t key_len,
                             const mcr_meta_opts_t* o, mcr_meta_result_t* r);
/* mn on node `node`: a round trip that returns MCR_OK when the server
 * answers MN, MCR_EINVAL for no such node, or a transport error. */
MCR_EXTERN int mcr_client_mn(mcr_client_t* c, size_t node);
/* me: the server's debug line for `key` ("ME <key> k=v ...", NUL-ended,
 * client memory) in *text and MCR_OK, or MCR_MISS. Text keys only. */
MCR_EXTERN int mcr_client_me(mcr_client_t* c, const char* key, size_t key_len,
                             const char** text);

/* One command of a pipeline. `op` is 'g', 's', 'd' or 'a'. */
typedef struct {
  char op;
  const char* key;
  size_t key_len;
  const void* value; /* ms only */
  size_t value_len;
  mcr_meta_opts_t opts;
  mcr_meta_result_t result; /* filled by mcr_client_meta_pipeline */
} mcr_meta_cmd_t;

/* Sends all commands of a pipeline at once (grouped per node, each command
 * in quiet mode with an opaque, each node's group closed by mn) and reads
 * the replies. A quiet command that got no reply gets its implied status:
 * MCR_MISS for mg, MCR_OK for ms / md / ma. Each cmds[i].result is filled;
 * a node failure sets the error on that node's commands that were not
 * answered yet (commands on other nodes are unaffected).
 *
 * Quiet mode is left off for an ms / md / ma that asks for data (v, c, t
 * or k): memcached's q hides their whole success reply, data included. The
 * same holds for MCR_META_QUIET on a single ms / md / ma.
 *
 * The opaque is the pipeline's own (the command's index): opts.opaque is
 * not sent and results carry no MCR_MR_OPAQUE. memcached's error lines
 * (CLIENT_ERROR ...) carry no opaque; one is charged to the command it must
 * belong to, or, when several silent commands could have caused it, to all
 * of them. A node's whole group is sent before its replies are read, so
 * keep pipelines to what a server buffers (a few MB of replies). Returns 0
 * with the number of commands whose status is MCR_OK in *ok, or a
 * negative error when an argument is invalid (nothing sent then). */
MCR_EXTERN int mcr_client_meta_pipeline(mcr_client_t* c, mcr_meta_cmd_t* cmds,
                                        size_t n, size_t* ok);

/* ------------------------------------------------------------------------ */
/* Leases: one process recomputes a missing or stale value                   */

/* When a hot key goes missing, every worker of a host misses it at once
 * and computes the same value (a stampede). A lease makes memcached elect
 * one of them: mcr_client_lease_get asks with mg's vivify (N) and recache
 * (R) flags, the winner computes and calls mcr_client_lease_fill, the
 * others wait briefly for its value or use the stale one. docs/leases.md
 * has the design and the figures.
 *
 *  - Values are bytes as given, like the meta calls (no serde, no
 *    compression); client flags are stored and returned as given.
 *  - An empty value cannot be told from memcached's placeholder for a key
 *    being computed: store values of at least one byte under leases.
 *  - A winner that dies holds the key for at most lease_ttl seconds; then
 *    the placeholder expires and the next caller wins. */

/* What the caller should do (mcr_lease_t.state):
 *  HIT    a fresh value: use it;
 *  WON    compute it and call mcr_client_lease_fill; when has_value is
 *         set, `value` may be served meanwhile (stale when `stale` is);
 *  STALE  another process is recomputing: `value` is the stale one, use it;
 *  BUSY   another process is computing and no value came within wait_ms. */
#define MCR_LEASE_HIT 0
#define MCR_LEASE_WON 1
#define MCR_LEASE_STALE 2
#define MCR_LEASE_BUSY 3

typedef struct {
  int64_t lease_ttl;   /* seconds a won lease holds a missing key (N) */
  int64_t recache_ttl; /* > 0: a hit with fewer seconds left elects one
                          process to recompute early (R); 0: off */
  uint32_t wait_ms;    /* how long to wait for another process's value */
  uint32_t poll_ms;    /* interval of the re-reads while waiting (> 0) */
} mcr_lease_opts_t;

/* Sets the defaults: lease_ttl 30, recache_ttl 0, wait_ms 1000, poll_ms
 * 10. */
MCR_EXTERN void mcr_lease_opts_init(mcr_lease_opts_t* o);

typedef struct {
  int state;         /* MCR_LEASE_* */
  int has_value;     /* `value` holds the key's value (fresh or stale) */
  int stale;         /* the value was invalidated or is being replaced */
  const char* value; /* client memory, valid until the next call */
  size_t value_len;
  uint32_t client_flags;
  uint64_t cas; /* the lease token mcr_client_lease_fill presents */
} mcr_lease_t;

/* Reads `key` under a lease (o NULL: the defaults). Fills *l and returns
 * MCR_OK, or a negative error: MCR_EINVAL (NULL argument, poll_ms 0),
 * MCR_ERANGE (lease_ttl outside 1..2^31-1, recache_ttl outside
 * 0..2^31-1), a key error, or a transport error. While another process
 * holds the lease and no value exists, it re-reads every poll_ms until
 * the value arrives or wait_ms has passed (then MCR_LEASE_BUSY); a call
 * lasts at most wait_ms plus one request's timeouts. Under ignore_errors
 * a failed read gives MCR_LEASE_WON with cas 0: compute, and the fill
 * becomes an add. */
MCR_EXTERN int mcr_client_lease_get(mcr_client_t* c, const char* key,
                                    size_t key_len, const mcr_lease_opts_t* o,
                                    mcr_lease_t* l);

/* Stores the value computed under lease `l` (from mcr_client_lease_get)
 * with `ttl` seconds (0: no expiry) and `client_flags`, and releases the
 * lease. An empty value is MCR_EINVAL (it would read as memcached's
 * placeholder). Returns MCR_OK when stored; MCR_EXISTS when the key changed
 * since the lease was won (another value or an invalidation is newer: nothing
 * stored); MCR_NOT_STORED when the lease had expired and another process
 * stored the key first; or a negative error. A lease whose placeholder
 * expired (or a cas of 0) stores with add semantics. */
MCR_EXTERN int mcr_client_lease_fill(mcr_client_t* c, const char* key,
                                     size_t key_len, const void* value,
                                     size_t value_len, uint32_t client_flags,
                                     int64_t ttl, const mcr_lease_t* l);

/* Marks `key` stale for `stale_ttl` seconds (md with I and T): the next
 * mcr_client_lease_get wins a lease and sees the old value, the others
 * get MCR_LEASE_STALE with it until the winner fills. Returns MCR_OK,
 * MCR_NOT_FOUND (no such key), MCR_ERANGE (stale_ttl outside 1..2^31-1)
 * or a negative error. */
MCR_EXTERN int mcr_client_lease_invalidate(mcr_client_t* c, const char* key,
                                           size_t key_len, int64_t stale_ttl);

/* ------------------------------------------------------------------------ */
/* Ring: Ketama consistent hashing, and the shared ring snapshot             */

/* A continuum of points over the 32-bit hash space mapping keys to nodes.
 * Built in process (mcr_ring_build) or mapped read-only from a snapshot that
 * mcring-agent published (mcr_snapshot_ring). Immutable once built: lookups
 * on one ring are safe from any number of threads at once. The three modes
 * and their exact rules are in docs/ring.md. */
/* Parses "ketama", "ketama-libmemcached" or "xxh3" (exact, lower case).
 * Returns 0 and sets *out, or MCR_EINVAL. Thread-safe. */
MCR_EXTERN int mcr_distribution_parse(const char* name,
                                      mcr_distribution_t* out);

/* Returns the static name of a mode ("ketama", ...), or NULL for a value
 * that is not a mode. Thread-safe. */
MCR_EXTERN const char* mcr_distribution_name(mcr_distribution_t mode);

/* Builds a ring over a server list in the syntax of
 * mcr_client_opts_t.servers. In the `ketama` mode a host name that is not a
 * numeric address is resolved once, here, with getaddrinfo (blocking; the
 * first address returned), because that mode hashes the address. Returns 0
 * and sets *out, or MCR_EINVAL (bad mode), MCR_ESERVERS, MCR_ENOSERVERS,
 * MCR_ERESOLVE, MCR_ERANGE (more than 65535 nodes or 2^24 points),
 * MCR_ENOMEM, with the reason in err[errlen] (err may be NULL).
 * Thread-safe. */
MCR_EXTERN int mcr_ring_build(mcr_ring_t** out, mcr_distribution_t mode,
                              const char* servers, char* err, size_t errlen);

/* Frees a ring from mcr_ring_build. NULL is ignored. Never call it on the
 * ring of a snapshot (the snapshot owns that one). */
MCR_EXTERN void mcr_ring_free(mcr_ring_t* r);

/* Index of the node that owns key[0..len) (any bytes, any length):
 * always < mcr_ring_node_count(r). Never fails, never allocates; expected
 * O(1) whatever the node count. */
MCR_EXTERN size_t mcr_ring_locate(const mcr_ring_t* r, const char* key,
                                  size_t len);

/* The ring's mode, node count and point count. */
MCR_EXTERN mcr_distribution_t mcr_ring_distribution(const mcr_ring_t* r);
MCR_EXTERN size_t mcr_ring_node_count(const mcr_ring_t* r);
MCR_EXTERN size_t mcr_ring_point_count(const mcr_ring_t* r);

/* The generation and publish time (nanoseconds since the epoch) of a ring
 * read from a snapshot; both 0 for a ring built in process. */
MCR_EXTERN uint64_t mcr_ring_generation(const mcr_ring_t* r);
MCR_EXTERN uint64_t mcr_ring_publish_time_ns(const mcr_ring_t* r);

#define MCR_NODE_UP 1u

/* What a ring knows about one node. Strings belong to the ring. */
typedef struct {
  const char* host;    /* as configured (IPv6 without brackets, or a unix
                          socket path) */
  const char* address; /* numeric address (the one `ketama` hashes and
                          clients connect to); equals host when the node
                          was given by name and never resolved, or for a
                          unix socket */
  uint16_t port;       /* 0 for a unix socket */
  uint32_t weight;
  uint32_t state;  /* MCR_NODE_UP */
  uint32_t points; /* points of this node on the continuum */
  double share;    /* fraction of the key hash space it owns, 0..1 */
} mcr_ring_node_t;

/* Fills *out with node `i`. Returns 0, MCR_ERANGE when i is out of
 * range, or MCR_ESNAPSHOT when the entry of a mapped ring is damaged (a
 * mapped ring's entries are checked when they are read, not when the ring
 * is mapped: docs/snapshot.md). */
MCR_EXTERN int mcr_ring_node(const mcr_ring_t* r, size_t i,
                             mcr_ring_node_t* out);

/* A reader of the ring snapshot directory that mcring-agent publishes
 * (docs/snapshot.md). It maps the current generation read-only after
 * validating it; mcr_snapshot_refresh costs one atomic load while nothing
 * changed. One handle is used by one thread at a time. */
typedef struct mcr_snapshot mcr_snapshot_t;

typedef struct {
  /* Owner the control file and every ring file must have. -1 (default):
   * the owner of the ring directory, which is then refused where another
   * user could have created it (see mcr_client_opts_t.ring_owner_uid). */
  long expected_uid;
  /* 0 (default): each generation's header, bounds and node table are
   * validated (time proportional to the nodes); the agent has verified the
   * arrays before publishing, and lookups stay inside them whatever they
   * hold. 1: also the checksum, the point order, every owner index and the
   * bucket index, in this process too (about 250 us per switch at 500
   * nodes). docs/snapshot.md, "What a reader checks". */
  int verify;
} mcr_snapshot_opts_t;

/* Sets the defaults above. */
MCR_EXTERN void mcr_snapshot_opts_init(mcr_snapshot_opts_t* opts);

/* Opens the ring directory `dir` (opts may be NULL) and loads the
 * published ring. Returns 0 and sets *out, or MCR_ESNAPSHOT (nothing
 * published, or the ring is invalid), MCR_EPERM (owner or permission check
 * failed, a symlink), MCR_ESYS, MCR_ENOMEM; a message goes to err[errlen]
 * (err may be NULL). Never blocks on the writer. */
MCR_EXTERN int mcr_snapshot_open(mcr_snapshot_t** out, const char* dir,
                                 const mcr_snapshot_opts_t* opts, char* err,
                                 size_t errlen);

/* Checks for a newer generation: one acquire load when nothing changed.
 * On a change it opens, maps, validates and swaps in the new ring and
 * unmaps the old one (so a ring pointer taken before this call is invalid
 * after a swap). Returns 0 (unchanged), 1 (switched), or MCR_ESNAPSHOT /
 * MCR_EPERM / MCR_ESYS / MCR_ENOMEM when the new generation was refused:
 * the last good ring stays current, the message is in
 * mcr_snapshot_last_error, and that generation is not retried (the next
 * published one is). Never spins: a generation replaced while being opened
 * is retried a bounded number of times. */
MCR_EXTERN int mcr_snapshot_refresh(mcr_snapshot_t* s);

/* The current ring (never NULL on an open handle); valid until the next
 * mcr_snapshot_refresh that returns 1, or mcr_snapshot_free. */
MCR_EXTERN const mcr_ring_t* mcr_snapshot_ring(const mcr_snapshot_t* s);

/* Generation of the current ring. */
MCR_EXTERN uint64_t mcr_snapshot_generation(const mcr_snapshot_t* s);

/* Message of the last refused generation ("" if none). */
MCR_EXTERN const char* mcr_snapshot_last_error(const mcr_snapshot_t* s);

/* Unmaps everything and frees the handle. NULL is ignored. */
MCR_EXTERN void mcr_snapshot_free(mcr_snapshot_t* s);

/* ------------------------------------------------------------------------ */
/* Host-wide statistics                                                      */

/* Every client handle that follows an agent's ring (host_stats, the
 * default) keeps per-node counters in a memory segment of its own and
 * registers it with the agent over the agent's socket DIR/stats.sock; the
 * agent answers readers (`mcring stat`) with a copy of every live
 * handle's counters. No process maps another's segment, so host stats
 * cannot crash or corrupt a worker. docs/agent.md, "Host statistics". */

/* Latency histogram: bucket i counts calls whose first reply line came
 * after [2^i, 2^(i+1)) microseconds (bucket 0: < 2 us; the last bucket
 * also takes everything slower). */
#define MCR_LATENCY_BUCKETS 20

typedef struct {
  uint64_t gets;      /* retrieval calls (get, gets, gat, gats, mg): keys */
  uint64_t sets;      /* storage calls (set, add, ..., cas, ms): keys */
  uint64_t deletes;   /* delete, md: keys */
  uint64_t others;    /* incr, decr, touch, ma and the rest */
  uint64_t hits;      /* retrievals that found the key */
  uint64_t misses;    /* retrievals that did not */
  uint64_t errors;    /* keys whose call failed (timeouts included) */
  uint64_t timeouts;  /* of which: I/O or connect timeouts */
  uint64_t bytes_out; /* request bytes sent */
  uint64_t bytes_in;  /* reply bytes received */
  uint64_t latency[MCR_LATENCY_BUCKETS];
} mcr_node_counters_t;

/* One row of a host statistics read: the counters of one node in one
 * client handle. A handle that has counted nothing yet appears as one row
 * whose node is "" (all counters 0). */
typedef struct {
  int pid;             /* process that registered the handle */
  unsigned slot;       /* the handle's registration number */
  uint64_t generation; /* ring generation the handle routes by */
  char node[64];       /* "host:port" (cut to 63 bytes), or "" */
  mcr_node_counters_t c;
} mcr_hoststat_row_t;

typedef struct mcr_hoststats mcr_hoststats_t;

/* Opens a reader of the host statistics of ring directory DIR, whose
 * trust is checked as for the ring (mcr_snapshot_opts_t.expected_uid:
 * expected_uid is the agent's uid, or -1 for the owner of DIR). Returns 0
 * and *out, MCR_ESNAPSHOT (no agent socket there: no agent, or one
 * started with --stats-slots 0), MCR_EPERM, MCR_ESYS, MCR_ENOMEM, with a
 * message in err[errlen]. */
MCR_EXTERN int mcr_hoststats_open(mcr_hoststats_t** out, const char* dir,
                                  long expected_uid, char* err, size_t errlen);

/* Asks the agent for the counters of every live handle: sets *rows to an
 * array owned by h, valid until the next read or free, and *n to its
 * length, and returns 0, or a negative error (the reason in
 * mcr_hoststats_last_error). Each value is exact; a row as a whole is a
 * moment's view. Waits at most 5 s for the agent. */
MCR_EXTERN int mcr_hoststats_read(mcr_hoststats_t* h,
                                  const mcr_hoststat_row_t** rows, size_t* n);

/* The host-wide health of one node (docs/health.md): what the workers of
 * the host that follow the agent's ring share about it. Every process of
 * the agent's group can write the table this is read from, so it is a
 * report, not a proof. */
typedef struct {
  int down;        /* 1: marked down host-wide (or being probed) */
  int probing;     /* 1: one process is trying it now */
  uint32_t pid;    /* the process that marked it down, or probes it */
  int64_t down_ms; /* how long ago it was first marked down (when down) */
  int64_t next_ms; /* until the next probe may start (0: due now) */
  uint64_t marks;  /* times it was marked down since the agent started */
} mcr_node_health_t;

/* Fills *out with the health of ring node `node` (from mcr_ring_node of
 * the agent's ring) as of now, in the table the last mcr_hoststats_read
 * received. Returns 0 (a node never marked down reads as up, marks 0),
 * MCR_EINVAL, or MCR_ESNAPSHOT when no read has received a table (none
 * yet, or an agent older than 0.3). */
MCR_EXTERN int mcr_hoststats_health(mcr_hoststats_t* h,
                                    const mcr_ring_node_t* node,
                                    mcr_node_health_t* out);

/* Why the last read failed ("" after a good one). */
MCR_EXTERN const char* mcr_hoststats_last_error(const mcr_hoststats_t* h);

/* Frees the handle and the rows of the last read. NULL is ignored. A
 * reader handle is used by one thread at a time. */
MCR_EXTERN void mcr_hoststats_free(mcr_hoststats_t* h);

/* The agent's side (mcring-agent calls it): listens on DIR/stats.sock
 * (mode 0660, the directory's group, replacing a leftover socket) and
 * serves registrations and reads in a thread of its own until
 * mcr_hoststats_server_free. At most max_workers (1..65536) handles are
 * registered at once; later ones keep their counters private. Returns 0
 * and *out, or a negative error with a message in err[errlen]. */
typedef struct mcr_hoststats_server mcr_hoststats_server_t;
MCR_EXTERN int mcr_hoststats_serve(mcr_hoststats_server_t** out,
                                   const char* dir, unsigned max_workers,
                                   char* err, size_t errlen);

/* Stops the thread, closes every registration, removes the socket and
 * frees the server. NULL is ignored. */
MCR_EXTERN void mcr_hoststats_server_free(mcr_hoststats_server_t* s);

/* ------------------------------------------------------------------------ */
/* Keys                                                                      */

/* Returns 0 when key[0..len) is a valid text-protocol key (1..250 bytes, no
 * byte <= 0x20 and no 0x7f), else MCR_EKEY. */
MCR_EXTERN int mcr_key_check(const char* key, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* MCRING_H */
