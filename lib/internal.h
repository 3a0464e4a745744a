/* internal.h — what the modules of libmcring share and nothing outside sees.
 *
 * Layers, bottom up:
 *   alloc.c      allocator hooks and mcr_buf_t, the growable byte buffer
 *   key.c        key validation and base64 for binary meta keys
 *   servers.c    parsing of the "host:port[:weight],..." server list
 *   conn.c       one connection to one node: connect with a timeout (name
 *                resolution included), send all-or-close, buffered reads of
 *                lines and fixed-size blocks against one deadline per call
 *   proto_text.c the classic text protocol: request encoding without
 *                snprintf, reply parsing with an offset tokenizer
 *   proto_meta.c the meta protocol (mg ms md ma mn me) and pipelines
 *   codec.c      serde hooks and zstd compression of values
 *   client.c     the public API: validation, routing, ignore_errors
 *
 * Every internal non-static symbol is prefixed mcr__.
 */
#ifndef MCR_INTERNAL_H
#define MCR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "mcring.h"

#define MCR__KEY_MAX 250
/* A binary key is sent base64-encoded, so its raw length is at most
 * floor(250 / 4) * 3 = 186 bytes. */
#define MCR__BINKEY_MAX 186

/* Internal only, never returned to a caller: a connection kept from an
 * earlier call turned out closed by the server (idle timeout, restart)
 * before any byte of the reply. The request cannot have been applied by a
 * live server, so the call is run once more on a new connection. */
#define MCR__ESTALE (-1000)
#define MCR__RETRY_STALE(expr)             \
  __extension__({                          \
    int rc_ = (expr);                      \
    if (MCR__UNLIKELY(rc_ == MCR__ESTALE)) \
      rc_ = (expr);                        \
    rc_;                                   \
  })

#define MCR__LIKELY(x) __builtin_expect(!!(x), 1)
#define MCR__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ---------------------------------------------------------------- alloc.c */
void* mcr__malloc(size_t n);
void* mcr__realloc(void* p, size_t n);
void* mcr__calloc(size_t n, size_t size);
void mcr__free(void* p);
char* mcr__strndup(const char* s, size_t n);

struct mcr_buf {
  char* data;
  size_t len;
  size_t cap;
};
/* Makes room for `extra` more bytes after len. Returns 0 or MCR_ENOMEM. */
int mcr__buf_reserve(mcr_buf_t* b, size_t extra);
void mcr__buf_free(mcr_buf_t* b);

/* Per-call result memory: a chain of blocks that never moves, so pointers
 * handed to the caller stay valid until mcr__arena_reset (called when the
 * next public call starts). */
typedef struct mcr__arena_block mcr__arena_block_t;
typedef struct {
  mcr__arena_block_t* head; /* current block; older ones follow */
} mcr__arena_t;
void* mcr__arena_alloc(mcr__arena_t* a, size_t n);
void mcr__arena_reset(mcr__arena_t* a); /* keeps the first block */
void mcr__arena_free(mcr__arena_t* a);

/* ---------------------------------------------------------------- key.c */
/* Nonzero when some byte of w is < 0x21 (space, control, NUL) or is 0x7f:
 * the classic "has a byte less than n" word trick, exact for n <= 128, plus
 * "has a zero byte" of w ^ 0x7f7f... for DEL. Bytes >= 0x80 pass. */
static inline uint64_t mcr__key_bad_bytes(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t del = w ^ (ones * 0x7f);
  return ((w - ones * 0x21) & ~w & highs) | ((del - ones) & ~del & highs);
}

#ifdef __SSE2__
/* The same test on 16 bytes: min(b, 0x20) == b is b <= 0x20 unsigned. */
static inline unsigned mcr__key_bad16(__m128i v) {
  __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x20)), v);
  __m128i del = _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f));
  return (unsigned)_mm_movemask_epi8(_mm_or_si128(low, del));
}
#endif

/* Checks key[0..len), len 1..250, as mcr_key_check does, and copies it to
 * dst unless dst is NULL (the copy makes a request line that embeds the key
 * read it once). dst needs room for len + 8 bytes: a short key is written
 * as one padded word, so the bytes after len are garbage. Returns 0, or
 * nonzero when some byte is invalid (nothing built with dst may be sent).
 * Loads overlap instead of looping byte by byte, and never go past len. */
static inline uint64_t mcr__key_scan(char* dst, const char* key, size_t len) {
  uint64_t w, w2;
#ifdef __SSE2__
  if (len >= 16) {
    unsigned bad = 0;
    __m128i v;
    for (size_t i = 0; i + 16 < len; i += 16) {
      v = _mm_loadu_si128((const __m128i*)(const void*)(key + i));
      bad |= mcr__key_bad16(v);
      if (dst)
        _mm_storeu_si128((__m128i*)(void*)(dst + i), v);
    }
    v = _mm_loadu_si128((const __m128i*)(const void*)(key + len - 16));
    if (dst)
      _mm_storeu_si128((__m128i*)(void*)(dst + len - 16), v);
    return bad | mcr__key_bad16(v);
  }
  if (len >= 8) {
    /* Two words that overlap when len < 16, tested as one vector. */
    __builtin_memcpy(&w, key, 8);
    __builtin_memcpy(&w2, key + len - 8, 8);
    if (dst) {
      __builtin_memcpy(dst, &w, 8);
      __builtin_memcpy(dst + len - 8, &w2, 8);
    }
    return mcr__key_bad16(_mm_set_epi64x((long long)w2, (long long)w));
  }
#else
  if (len >= 8) {
    uint64_t bad = 0;
    for (size_t i = 0; i + 8 < len; i += 8) {
      __builtin_memcpy(&w, key + i, 8);
      bad |= mcr__key_bad_bytes(w);
      if (dst)
        __builtin_memcpy(dst + i, &w, 8);
    }
    __builtin_memcpy(&w2, key + len - 8, 8);
    if (dst)
      __builtin_memcpy(dst + len - 8, &w2, 8);
    return bad | mcr__key_bad_bytes(w2);
  }
#endif
  /* Short keys: padded with a harmless 'a'. */
  w = 0x6161616161616161ull;
  for (size_t i = 0; i < len; i++)
    ((unsigned char*)&w)[i] = (unsigned char)key[i];
  if (dst)
    __builtin_memcpy(dst, &w, 8);
  return mcr__key_bad_bytes(w);
}

/* memcpy of a key (0..250 bytes) without a call: overlapping fixed-size
 * moves, one branch that a run of keys of one length predicts. Used where
 * many keys are copied (multi-get request lines, md5x.c's blocks). */
static inline void mcr__copy_key(void* dst, const char* src, size_t len) {
  char* d = dst;
  if (len >= 16) {
    for (size_t i = 0; i + 16 < len; i += 16)
      __builtin_memcpy(d + i, src + i, 16);
    __builtin_memcpy(d + len - 16, src + len - 16, 16);
  } else if (len >= 8) {
    __builtin_memcpy(d, src, 8);
    __builtin_memcpy(d + len - 8, src + len - 8, 8);
  } else if (len >= 4) {
    __builtin_memcpy(d, src, 4);
    __builtin_memcpy(d + len - 4, src + len - 4, 4);
  } else if (len > 0) {
    d[0] = src[0];
    d[len / 2] = src[len / 2];
    d[len - 1] = src[len - 1];
  }
}

/* Encodes `len` bytes of `in` as base64 into `out` (room for
 * 4 * ceil(len / 3) bytes). Returns the encoded length. */
size_t mcr__base64_encode(const void* in, size_t len, char* out);
/* Decodes base64; returns the decoded length, or -1 on a bad input. `out`
 * needs room for 3 * (len / 4) bytes. */
long mcr__base64_decode(const char* in, size_t len, void* out);

/* ---------------------------------------------------------------- servers.c */
typedef struct {
  char* host; /* as configured: name, IPv4, IPv6 (no brackets) or path */
  char* name; /* "host:port" ("[v6]:port", or the path) for messages */
  uint16_t port;
  uint32_t weight;
  bool is_unix;
} mcr__server_t;

/* Parses a comma-separated server list. On success sets *out (free with
 * mcr__servers_free) and *n, returns 0; MCR_ESERVERS with a message in
 * err[errlen] on a bad entry; MCR_ENOSERVERS on an empty list. */
int mcr__servers_parse(const char* list, mcr__server_t** out, size_t* n,
                       char* err, size_t errlen);
void mcr__servers_free(mcr__server_t* s, size_t n);

/* ---------------------------------------------------------------- ringdir.c
 */
#include <sys/types.h>
/* Opens the ring directory `dir` for reading after checking that it can be
 * trusted (see ringdir.c): not a symlink, not writable by others, and,
 * unless expected_uid >= 0 names the owner its files must have, in a
 * parent chain nobody but root and its owner could have created it in.
 * Returns the directory fd with *owner set to the uid every file in it
 * must be owned by, or MCR_EPERM / MCR_ESNAPSHOT (no such directory) /
 * MCR_ESYS with a one-line message in err. */
int mcr__ringdir_open(const char* dir, long expected_uid, uid_t* owner,
                      char* err, size_t errlen);

/* ---------------------------------------------------------------- conn.c */
/* Milliseconds on CLOCK_MONOTONIC. */
int64_t mcr__now_ms(void);
int64_t mcr__now_ns(void);

/* Incremented in every child after fork (pthread_atfork). A connection made
 * under another value belongs to the parent and is never used. */
extern unsigned mcr__fork_gen;
void mcr__fork_guard_init(void);

typedef struct mcr__conn {
  int fd;            /* -1 when closed */
  unsigned fork_gen; /* mcr__fork_gen when fd was opened */
  bool used;         /* connected at least once (for reconnect counts) */
  bool slow;         /* this call already blocked once: poll from now on */
  bool reused;       /* the call runs on a connection of an earlier call */
  int64_t deadline;  /* end of the current call, mcr__now_ms() based */
  int64_t start_ns;  /* start of the call, until its first reply line */
  char* rbuf;        /* received bytes; [rpos, rlen) not yet parsed */
  size_t rpos, rlen, rcap;
} mcr__conn_t;

typedef struct mcr__node {
  mcr__server_t srv;
  mcr__conn_t conn;
  uint64_t* hs;       /* this node's counters in the host stats, or NULL */
  uint64_t ident;     /* ring_dir clients: hash of host, address, port */
  int fails;          /* consecutive connect / I/O failures */
  int64_t down_until; /* mcr__now_ms() until which the node is down, or 0 */
} mcr__node_t;

/* Resolves srv's host and port by the deadline (CLOCK_MONOTONIC ms).
 * Numeric addresses are parsed in place; names are looked up in a helper
 * thread that the caller stops waiting for at the deadline. Returns 0 and
 * *out (freeaddrinfo it), MCR_ECONNTIMEOUT, MCR_ERESOLVE or MCR_ENOMEM. */
struct addrinfo;
int mcr__resolve(mcr_client_t* c, const mcr__server_t* srv, int64_t deadline,
                 struct addrinfo** out);

/* Starts a call on `n`: sets the deadline to now + io timeout, drops a
 * parent's connection after fork, connects when needed (within the connect
 * timeout) and discards nothing: unread bytes left from an earlier call mean
 * the stream is out of sync, so such a connection is closed and reopened.
 * Returns 0 or a negative error (message in c's last error). */
int mcr__conn_begin(mcr_client_t* c, mcr__node_t* n);

/* Sends all iov bytes or fails; on failure the connection is closed (a
 * request is never left half-sent on a live stream). */
int mcr__conn_send(mcr_client_t* c, mcr__node_t* n, struct iovec* iov,
                   int iovcnt);
/* mcr__conn_begin, the whole request buf[0..len) sent (one send(); the
 * same all-or-close rule as mcr__conn_send), then one receive of at least
 * a byte (blocking, bounded by SO_RCVTIMEO, unless the send had to wait):
 * on success the start of the reply is in n->conn.rbuf [rpos, rlen), for a
 * parser that looks at the whole buffer first (the one-key get) and then
 * reads on with mcr__conn_line / mcr__conn_block when it must. */
int mcr__conn_request(mcr_client_t* c, mcr__node_t* n, const void* buf,
                      size_t len);

/* Latency of the call to its first reply line, into the host stats. */
void mcr__conn_count_latency(mcr__node_t* n);

/* Records that the node answered (a complete reply line was read): resets
 * its failure count and, with host stats, counts the call's latency.
 * mcr__conn_line does this itself; a parser that consumes bytes without it
 * (by moving rpos) must call this. */
static inline void mcr__conn_answered(mcr__node_t* n) {
  n->fails = 0;
  if (MCR__UNLIKELY(n->hs != NULL))
    mcr__conn_count_latency(n);
}

/* Reads one line ending in "\r\n". On success *off is the line's offset in
 * n->conn.rbuf and *len its length without "\r\n"; the line is consumed.
 * A line longer than 8 KiB is a protocol error. */
int mcr__conn_line(mcr_client_t* c, mcr__node_t* n, size_t* off, size_t* len);

/* The largest data block a reply may announce: memcached's largest
 * possible item. A larger one is a protocol error. */
#define MCR__BLOCK_MAX (1u << 30)

/* Reads a data block of `len` bytes followed by "\r\n" (else MCR_EPROTO);
 * *off is its offset in n->conn.rbuf; block and terminator are consumed.
 * Offsets stay valid for the whole call: the buffer only grows during a
 * call and is reset by the next mcr__conn_begin. */
int mcr__conn_block(mcr_client_t* c, mcr__node_t* n, size_t len, size_t* off);

/* Non-blocking forms for the fan-out: each returns 1 and consumes the unit
 * when it is complete in the buffer, 0 when more bytes are needed, or a
 * negative error (the connection is then failed and closed). */
int mcr__conn_peek_line(mcr_client_t* c, mcr__node_t* n, size_t* off,
                        size_t* len);
int mcr__conn_peek_block(mcr_client_t* c, mcr__node_t* n, size_t len,
                         size_t* off);

/* A resumable reply parser for one node: consumes complete units with the
 * peek functions and returns 0 when the node's reply is complete, 1 when it
 * needs more bytes, or a negative error. */
typedef int (*mcr__step_fn)(mcr_client_t* c, mcr__node_t* n, void* ctx);

/* Reads the replies of `count` nodes whose requests are all sent, as they
 * arrive (poll), calling step for a node whenever its bytes grew. result[i]
 * gets node i's outcome (0 or a negative error). One node takes the plain
 * blocking path. Each node's deadline is the one its mcr__conn_begin set. */
void mcr__conn_gather(mcr_client_t* c, size_t count, mcr__node_t** nodes,
                      void** ctx, mcr__step_fn step, int* result);

/* Closes the connection (no-op when closed). */
void mcr__conn_close(mcr__node_t* n);

/* Fails the call: closes the connection, records "node: what" as the last
 * error and returns err. Use it for every error that leaves the stream in
 * an unknown state (protocol violations, timeouts, short reads). */
int mcr__conn_fail(mcr_client_t* c, mcr__node_t* n, int err, const char* what);

/* ---------------------------------------------------------------- proto_text.c
 */
/* Writes the decimal form of v at p; returns the number of bytes (<= 20). */
size_t mcr__u64_to_dec(char* p, uint64_t v);
size_t mcr__i64_to_dec(char* p, int64_t v);
/* Parses a decimal unsigned number of exactly len bytes (1..20 digits, no
 * sign, overflow-checked). Returns 0 or -1. */
int mcr__dec_to_u64(const char* p, size_t len, uint64_t* out);
int mcr__dec_to_i64(const char* p, size_t len, int64_t* out);

/* Splits line[0..len) on single spaces into at most `max` tokens, recording
 * offsets and lengths (no allocation, no copy). Returns the token count, or
 * -1 when there are more than max tokens or an empty token. */
typedef struct {
  uint16_t off;
  uint16_t len;
} mcr__tok_t;
int mcr__tokenize(const char* line, size_t len, mcr__tok_t* tok, int max);

/* Classifies an error line of the server (ERROR, CLIENT_ERROR ...,
 * SERVER_ERROR ...). Returns MCR_ESERVERCMD, MCR_ECLIENTERR, MCR_ESERVERERR,
 * or 0 when the line is not an error line. */
int mcr__error_line(const char* line, size_t len);

/* Handles a reply line that was not the expected one: for an error line it
 * records the server's message and returns its code; the connection stays
 * open after CLIENT_ERROR / SERVER_ERROR / ERROR, which are complete replies.
 * For anything else it fails the connection with MCR_EPROTO. */
int mcr__unexpected_line(mcr_client_t* c, mcr__node_t* n, size_t off,
                         size_t len);

/* The text commands. Each one runs a whole call on node n (begin, send,
 * read) and returns an mcr_status_t or a negative error. */
typedef enum {
  MCR__SET,
  MCR__ADD,
  MCR__REPLACE,
  MCR__APPEND,
  MCR__PREPEND,
  MCR__CAS
} mcr__store_t;
typedef enum { MCR__DELETE, MCR__TOUCH, MCR__INCR, MCR__DECR } mcr__keyed_t;
typedef enum { MCR__GET, MCR__GETS, MCR__GAT, MCR__GATS } mcr__get_t;

int mcr__text_store(mcr_client_t* c, mcr__node_t* n, mcr__store_t cmd,
                    const char* key, size_t key_len, uint32_t flags,
                    int64_t ttl, uint64_t cas, const void* data,
                    size_t data_len, bool noreply);
/* delete / touch (iarg = ttl) / incr / decr (uarg = delta, *number = the
 * new value). */
int mcr__text_keyed(mcr_client_t* c, mcr__node_t* n, mcr__keyed_t cmd,
                    const char* key, size_t key_len, uint64_t uarg,
                    int64_t iarg, bool noreply, uint64_t* number);
/* A full request line in, "OK" expected back. */
int mcr__text_simple(mcr_client_t* c, mcr__node_t* n, const char* req,
                     size_t req_len, bool noreply);
int mcr__text_version(mcr_client_t* c, mcr__node_t* n, const char** version);
int mcr__text_stats(mcr_client_t* c, mcr__node_t* n, const char* arg,
                    const mcr_stat_t** stats);
/* set (is_set) or delete of n keys: one segment of commands per node, all
 * built before any is sent (an encoding error or too big a value sends
 * nothing), then replies read as they arrive. statuses[i] gets key i's
 * status or error; returns the number of MCR_OK. Keys must be valid. */
int mcr__text_batch(mcr_client_t* c, bool is_set, size_t n,
                    const char* const* keys, const size_t* key_lens,
                    const void* const* values, const size_t* value_lens,
                    uint32_t flags, int64_t ttl, bool noreply, int* statuses);
/* The one-key retrieval (the common call, kept lean), in two steps.
 * mcr__text_get_request writes "<word> [<ttl> ]<key>\r\n" into req (room for
 * MCR__GET_REQ_MAX bytes), checking the key while it copies it: it returns
 * the line's length, or 0 when the key is invalid (NULL, 0 or over 250
 * bytes, or a forbidden byte): nothing may be sent then. ttl must be in
 * range (mcr__check_ttl) for gat and gats.
 * mcr__text_get_one runs the call on node n with that request: MCR_OK with
 * *it filled (value not yet decoded), MCR_MISS, or an error. */
#define MCR__GET_REQ_MAX (5 + 11 + 1 + MCR__KEY_MAX + 8)
size_t mcr__text_get_request(mcr__get_t cmd, int64_t ttl, const char* key,
                             size_t key_len, char* req);
int mcr__text_get_one(mcr_client_t* c, mcr__node_t* n, mcr__get_t cmd,
                      const char* req, size_t req_len, const char* key,
                      size_t key_len, mcr_item_t* it);
/* The one-pass check mcr__text_get_one first runs on the bytes of its
 * first receive, exposed for tests: MCR_OK (*it filled) or MCR_MISS when
 * buf[0..len) is exactly one whole reply in its common form, else -1 (the
 * general parser then decides). key must be valid. */
int mcr__text_get_reply_fast(const char* buf, size_t len, const char* key,
                             size_t key_len, bool want_cas, mcr_item_t* it);
/* Keys must be valid. Routes, groups per node, fills items in order,
 * decodes values; returns the number of hits. */
int mcr__text_retrieve(mcr_client_t* c, mcr__get_t cmd, int64_t ttl, size_t n,
                       const char* const* keys, const size_t* key_lens,
                       mcr_item_t* items);

/* ---------------------------------------------------------------- codec.c */
/* Turns a caller value into the bytes to store: serde encode, then zstd
 * when value_len >= compress_threshold and it shrinks. *out / *out_len point
 * either at the caller's bytes or at client scratch memory. */
int mcr__encode_value(mcr_client_t* c, const void* value, size_t value_len,
                      uint32_t* flags, const void** out, size_t* out_len);
/* The reverse, applied to a fetched item in place: when the flags call for
 * decompression or a serde is set, item->value is redirected to memory from
 * mcr__arena_alloc (so every value of a multi-key call stays valid) and
 * MCR_FLAG_ZSTD is cleared from item->flags. */
int mcr__decode_item(mcr_client_t* c, mcr_item_t* item);
/* Frees the codec state of c. */
void mcr__codec_free(mcr_client_t* c);

/* ---------------------------------------------------------------- client.c */
typedef struct mcr__codec mcr__codec_t;

struct mcr_client {
  mcr_client_opts_t opts; /* copy; opts.servers points into nothing */
  mcr__node_t* nodes;
  size_t nnodes;
  mcr_buf_t wbuf;     /* request being built */
  mcr__arena_t arena; /* per-call result memory (decoded values, stats) */
  mcr_buf_t scratch;  /* serde / compression output for one value */
  mcr__codec_t* codec;
  mcr_stat_t* stats; /* result of stats */
  size_t stats_cap;
  mcr_client_stats_t counters;
  void* router;       /* router.c's state; NULL with one node */
  size_t ndown;       /* nodes with down_until set */
  struct mcr__hs* hs; /* host stats slot (hoststats.c), or NULL */
  char err[512];
};

/* Records a formatted last-error message and returns err. */
int mcr__set_error(mcr_client_t* c, int err, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Per-call reset of the last error and the result arena: the first thing
 * every public call that talks to a server does. */
void mcr__call_start(mcr_client_t* c);
/* Argument checks that record a message and return the error (or 0). */
int mcr__key_error(mcr_client_t* c, const char* key, size_t key_len);
static inline int mcr__check_key(mcr_client_t* c, const char* key,
                                 size_t key_len) {
  /* key_len - 1 wraps around for 0, so this also refuses an empty key. */
  if (MCR__LIKELY(key && key_len - 1 < MCR__KEY_MAX &&
                  mcr__key_scan(NULL, key, key_len) == 0))
    return 0;
  return mcr__key_error(c, key, key_len); /* says what is wrong */
}
int mcr__check_ttl(mcr_client_t* c, int64_t ttl);
/* Effective noreply of a call from its MCR_CALL_* flags and the default. */
int mcr__noreply(mcr_client_t* c, unsigned cflags, bool* noreply);

/* ---------------------------------------------------------------- hoststats.c
 */
typedef struct mcr__hs mcr__hs_t;
typedef enum {
  MCR__OP_GET,
  MCR__OP_SET,
  MCR__OP_DELETE,
  MCR__OP_OTHER
} mcr__opkind_t;
/* Registers a counter segment of c's with the agent serving the ring
 * directory dirfd (files owned by `owner`); without an agent, or when it
 * refuses, c keeps no host stats and tries again at ring switches. Returns
 * 0 or MCR_ENOMEM. */
int mcr__hs_open(mcr_client_t* c, int dirfd, uid_t owner);
void mcr__hs_close(mcr_client_t* c);
/* Points every node of c at its entry in c's segment (after a ring switch),
 * registering again when the agent restarted. */
void mcr__hs_bind(mcr_client_t* c);
/* In a child after fork (c->hs inherited): registers a segment of its
 * own, so it never counts into its parent's. */
void mcr__hs_check_fork(mcr_client_t* c);
void mcr__hs_op_slow(mcr__node_t* n, mcr__opkind_t kind, int rc);
void mcr__hs_add(mcr__node_t* n, size_t field_off, uint64_t v);
void mcr__hs_latency(mcr__node_t* n, int64_t ns);
/* Counts one key's outcome on node n: a single branch when off. */
static inline void mcr__hs_op(mcr__node_t* n, mcr__opkind_t kind, int rc) {
  if (MCR__UNLIKELY(n->hs != NULL))
    mcr__hs_op_slow(n, kind, rc);
}

/* ---------------------------------------------------------------- router.c */
/* Builds the routing state: nothing for one server, the ring of
 * c->opts.distribution for several, or the agent's snapshot in ring_dir
 * (which also fills c->nodes). Returns 0 or a negative error. */
int mcr__router_init(mcr_client_t* c, const char* ring_dir);
void mcr__router_free(mcr_client_t* c);
/* For a ring_dir client: one acquire load of the published generation;
 * on a change, switch to the new ring and reconcile c->nodes (see
 * router.c). Called by mcr__call_start, between calls only. */
void mcr__router_refresh(mcr_client_t* c);
/* The node that owns `key`. Never fails: keys are valid by now. */
mcr__node_t* mcr__route(mcr_client_t* c, const char* key, size_t key_len);
/* out[i] = the index in c->nodes of the node mcr__route picks for keys[i],
 * for i < n; the keys' hashes are computed several at a time (md5x.c). */
void mcr__route_many(mcr_client_t* c, size_t n, const char* const* keys,
                     const size_t* lens, size_t* out);

/* Applies ignore_errors to a result: read=true turns errors into MCR_MISS,
 * read=false into MCR_NOT_STORED; validation errors pass through. */
int mcr__soften(mcr_client_t* c, int rc, bool read);

#endif /* MCR_INTERNAL_H */
