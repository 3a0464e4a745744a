/* internal.h — what the modules of libmcring share and nothing outside sees.
 *
 * The library is two straight paths over a few shared foundations; each
 * file calls only files listed below it (declarations here are how they
 * reach each other, never a way back up; tests/test_layers.sh checks it
 * against the objects, in the order of the source list in Makefile.am):
 *
 *   the request path (docs/client.md, "Layers"):
 *     lease.c        stampede protection on mg/ms/md (docs/leases.md)
 *     client_meta.c  the public meta API (mg ms md ma mn me, pipelines)
 *     client.c       the public text API: the handle, options, checks,
 *                    one call each
 *     fanout.c       the engine: keys routed and grouped per node, every
 *                    node's request sent, replies decoded as they arrive,
 *                    one retry rule, one deadline, per-key results, errors
 *                    as misses, host stats counts
 *     router.c       which node owns a key; follows the agent's ring, or
 *                    polls an ElastiCache endpoint itself (discovery.h)
 *     elasticache.c  one poll of a configuration endpoint, its strict
 *                    reply parser (shared with the agent)
 *     hoststats.c    a handle's counter segment, registered with the agent
 *     node.c         one node: its server, connection and health
 *     health.c       node health shared by the workers of a host (the
 *                    agent's table; docs/health.md)
 *     conn.c         the transport: connect, send, receive, against one
 *                    deadline; returns codes, writes no messages
 *     tls.c          TLS under conn.c: handshake, records, sessions
 *     value.c        serde and zstd between the caller's value and stored
 *                    bytes
 *     codec_meta.c   the meta protocol: checks, requests, reply decoders
 *     codec_text.c   the text protocol: requests, reply decoders (pure:
 *                    bytes in, outcome out, no I/O, no allocation but
 *                    their own results)
 *   the ring path (docs/snapshot.md):
 *     hoststats_server.c  the agent's side of host stats
 *     snapshot_write.c    the agent's writer of ring.N files
 *     snapshot.c          the reader that maps them
 *     ringdir.c           whether a ring directory can be trusted
 *     md5x.c              hashing many keys at once (ring.h)
 *     ketama.c            building rings, hashing a key, lookup (ring.h)
 *     ring_points.c       a continuum's points, made and sorted fast
 *     nodes.c             node lists as discovery finds them: check,
 *                         sort, compare, resolve (discovery.h)
 *   foundations, used by both:
 *     servers.c      the "host:port[:weight],..." list
 *     key.c          key checks and base64 for binary meta keys
 *     num.c          decimal numbers and tokens, overflow-checked
 *     sys.c          clocks and the fork generation
 *     alloc.c        allocator hooks, growable buffers, the per-call arena
 *     error.c        error names, and the handle's last-error text
 *
 * Every internal non-static symbol is prefixed mcr__. The rule for errors,
 * everywhere: a function returns 0, a positive outcome (mcr_status_t), or a
 * negative MCR_E* code; constructors take (err, errlen) for their reason,
 * handles keep their last error; a count is never a return value.
 */
#ifndef MCR_INTERNAL_H
#define MCR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <ck_pr.h>

#include "mcring.h"

#define MCR__KEY_MAX 250
/* A binary key is sent base64-encoded, so its raw length is at most
 * floor(250 / 4) * 3 = 186 bytes. */
#define MCR__BINKEY_MAX 186

#define MCR__LIKELY(x) __builtin_expect(!!(x), 1)
#define MCR__UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ================================================================ error.c */

/* Records a formatted last-error message on c and returns err. */
int mcr__set_error(mcr_client_t* c, int err, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ================================================================ alloc.c */
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
/* Makes room for `extra` bytes after `len` in the buffer *data of *cap
 * bytes (doubling, from `initial`). Returns 0 or MCR_ENOMEM. */
int mcr__grow(char** data, size_t* cap, size_t len, size_t extra,
              size_t initial);
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

/* ================================================================ sys.c */
/* Nanoseconds and milliseconds on CLOCK_MONOTONIC (the vDSO: no system
 * call). Inline: every call reads the clock once. */
static inline int64_t mcr__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
static inline int64_t mcr__now_ms(void) {
  return mcr__now_ns() / 1000000;
}

/* Incremented in every child after fork (pthread_atfork). A connection or
 * registration made under another value belongs to the parent and is never
 * used. */
extern unsigned mcr__fork_gen;
void mcr__fork_guard_init(void);

/* Waits until fd is ready for `events` (POLLIN/POLLOUT) or the deadline
 * (mcr__now_ns based) passes. Returns 0 when ready, MCR_ETIMEOUT, or
 * MCR_EIO when poll itself fails. */
int mcr__wait_fd(int fd, short events, int64_t deadline);

/* ================================================================ num.c */
/* Writes the decimal form of v at p; returns the number of bytes (<= 20).
 * Numbers below 100 (flags, TTLs, short lengths: most numbers a request
 * carries) are written inline; the rest by num.c. */
size_t mcr__u64_to_dec_long(char* p, uint64_t v);
static inline size_t mcr__u64_to_dec(char* p, uint64_t v) {
  if (MCR__LIKELY(v < 10)) {
    p[0] = (char)('0' + v);
    return 1;
  }
  if (v < 100) {
    p[0] = (char)('0' + v / 10);
    p[1] = (char)('0' + v % 10);
    return 2;
  }
  return mcr__u64_to_dec_long(p, v);
}
static inline size_t mcr__i64_to_dec(char* p, int64_t v) {
  if (MCR__LIKELY(v >= 0))
    return mcr__u64_to_dec(p, (uint64_t)v);
  p[0] = '-';
  return 1 + mcr__u64_to_dec(p + 1, (uint64_t)0 - (uint64_t)v);
}
/* Parses a decimal number of exactly len bytes (1..20 digits, no sign for
 * the unsigned one, overflow-checked). Returns 0 or -1. */
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

/* ================================================================ key.c */
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

/* True when key[0..len) is a valid text key (1..250 bytes, no forbidden
 * byte): the check every keyed call makes before anything is sent. */
static inline bool mcr__key_ok(const char* key, size_t len) {
  /* len - 1 wraps around for 0, so this also refuses an empty key. */
  return key && len - 1 < MCR__KEY_MAX && mcr__key_scan(NULL, key, len) == 0;
}

/* Why key[0..len) is not a valid text key, in a few words (for messages);
 * *at gets the offending byte's index when it is a byte. */
const char* mcr__key_why(const char* key, size_t len, size_t* at);

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

/* ================================================================ servers.c */
typedef struct {
  char* host;     /* as configured: name, IPv4, IPv6 (no brackets) or path */
  char* name;     /* "host:port" ("[v6]:port", or the path) for messages */
  char* tls_name; /* the name TLS verifies when it is not host (a ring
                     node reached at its address), or NULL */
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

/* ================================================================ ringdir.c
 */
/* Opens the ring directory `dir` for reading after checking that it can be
 * trusted (see ringdir.c): not a symlink, not writable by others, and,
 * unless expected_uid >= 0 names the owner its files must have, in a
 * parent chain nobody but root and its owner could have created it in.
 * Returns the directory fd with *owner set to the uid every file in it
 * must be owned by, or MCR_EPERM / MCR_ESNAPSHOT (no such directory) /
 * MCR_ESYS with a one-line message in err. */
int mcr__ringdir_open(const char* dir, long expected_uid, uid_t* owner,
                      char* err, size_t errlen);
/* Calls fn(dirfd, name, arg) for every entry of the directory dirfd but
 * "." and "..". Best effort: a directory it cannot read is skipped. */
void mcr__ringdir_walk(int dirfd, void (*fn)(int, const char*, void*),
                       void* arg);

/* ================================================================ decoders
 * The contract every reply decoder of codec_text.c and codec_meta.c keeps
 * (memcached's mcmc is the model): it reads buf[pos, len), consumes what
 * is complete, records results in its context as offsets into buf (the
 * buffer may move as more bytes arrive), and returns
 *   MCR__DONE   the reply is complete (d->used bytes consumed in all);
 *   MCR__MORE   more bytes are needed: d->used bytes were consumed, and
 *               d->need is how many bytes after them it needs at least
 *               (0: one more line, whatever its length);
 *   an error    MCR_EPROTO (d->why says what; the stream is lost) or a
 *               server error line, MCR_ESERVERCMD / MCR_ECLIENTERR /
 *               MCR_ESERVERERR (d->line_off / line_len locate it; the
 *               reply is complete and d->used covers it, unless
 *               d->desync says later replies were due).
 * A decoder may also report a server error line that answered one command
 * of several and return MCR__DONE: d->line_* then locate the last one.
 * Decoders do no I/O, read nothing outside buf[pos, len), and bound every
 * length they accept (a line: MCR__LINE_MAX; a value: the context's
 * value_max) before anyone reserves room for it. */
#define MCR__DONE 0
#define MCR__MORE 1
#define MCR__LINE_MAX 8192 /* the longest reply line taken */

typedef struct {
  size_t used;     /* bytes consumed */
  size_t need;     /* MCR__MORE: bytes needed after them, 0: a line */
  const char* why; /* MCR_EPROTO: what was wrong (static text) */
  size_t line_off; /* a server error line: offset and length in buf */
  size_t line_len;
  bool desync; /* a server error line that leaves the stream out of sync
                  (more replies were due): the connection must go */
} mcr__dec_t;

typedef int (*mcr__decode_fn)(void* ctx, const char* buf, size_t pos,
                              size_t len, mcr__dec_t* d);

/* ================================================================ codec_text.c
 */
/* Classifies an error line of the server (ERROR, CLIENT_ERROR ...,
 * SERVER_ERROR ...): MCR_ESERVERCMD, MCR_ECLIENTERR, MCR_ESERVERERR, or 0
 * when the line is none of them. */
int mcr__error_line(const char* line, size_t len);

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

/* Bytes the request pieces of one storage or keyed command need. */
#define MCR__TEXT_NUMS 96

/* Fills iov[0..5) with a storage command: "<cmd> <key> <flags> <ttl>
 * <bytes>[ <cas>][ noreply]\r\n<data>\r\n", the numbers written into
 * nums[MCR__TEXT_NUMS]. Returns the iovec count. */
int mcr__text_store_request(struct iovec* iov, char* nums, mcr__store_t cmd,
                            const char* key, size_t key_len, uint32_t flags,
                            int64_t ttl, uint64_t cas, const void* data,
                            size_t data_len, bool noreply);
/* The same for delete / touch (iarg = ttl) / incr / decr (uarg = delta):
 * "<verb> <key>[ <arg>][ noreply]\r\n" in iov[0..3). Returns 3. */
int mcr__text_keyed_request(struct iovec* iov, char* nums, mcr__keyed_t cmd,
                            const char* key, size_t key_len, uint64_t uarg,
                            int64_t iarg, bool noreply);

/* The one-line replies: which one a request expects, and what came back. */
typedef enum {
  MCR__R_STORE,   /* STORED NOT_STORED EXISTS NOT_FOUND */
  MCR__R_DELETE,  /* DELETED NOT_FOUND */
  MCR__R_TOUCH,   /* TOUCHED NOT_FOUND */
  MCR__R_ARITH,   /* <number> NOT_FOUND */
  MCR__R_OK,      /* OK */
  MCR__R_VERSION, /* VERSION <text> */
  MCR__R_MN       /* MN (the meta no-op, which mn and me share) */
} mcr__reply_kind_t;
typedef struct {
  mcr__reply_kind_t kind; /* in */
  int status;             /* out: mcr_status_t */
  uint64_t number;        /* out: MCR__R_ARITH */
  size_t text_off;        /* out: MCR__R_VERSION, the text after "VERSION " */
  size_t text_len;
} mcr__line_ctx_t;
int mcr__text_line_decode(void* ctx, const char* buf, size_t pos, size_t len,
                          mcr__dec_t* d);

/* The one-key retrieval, the hot path: mcr__text_get_request writes
 * "<word> [<ttl> ]<key>\r\n" into req (room for MCR__GET_REQ_MAX bytes),
 * checking the key while it copies it; it returns the line's length, or 0
 * when the key is invalid (nothing may be sent then). ttl must be in range
 * for gat and gats. The decoder takes the whole reply in one pass when it
 * arrived whole in its common form, and reads it line by line otherwise. */
#define MCR__GET_REQ_MAX (5 + 11 + 1 + MCR__KEY_MAX + 8)
size_t mcr__text_get_request(mcr__get_t cmd, int64_t ttl, const char* key,
                             size_t key_len, char* req);
typedef struct {
  const char* key; /* in: the key asked (valid) */
  size_t key_len;
  bool want_cas;    /* in: gets / gats */
  size_t value_max; /* in: the largest value taken (item_size_max) */
  int status;       /* out: MCR_OK or MCR_MISS */
  uint32_t flags;   /* out, on a hit */
  uint64_t cas;
  size_t value_off, value_len;
} mcr__get_ctx_t;
/* The decoder's one-pass check alone, exposed for tests: MCR_OK (g
 * filled, value_off from buf) or MCR_MISS when buf[0..len) is exactly one
 * whole reply in its common form, else -1 (the general parser decides). */
int mcr__text_get_fast(const char* buf, size_t len, mcr__get_ctx_t* g);
/* The general parser the decoder falls back to (codec_text.c). */
int mcr__text_get_general(mcr__get_ctx_t* g, const char* buf, size_t pos,
                          size_t len, mcr__dec_t* d);

/* The hot path's pieces of the text codec, inline: a one-key get is about
 * 500 instructions, and this check is a third of them. */
/* a[0..len) == b[0..len), with word loads that stay inside both. */
static inline bool mcr__same_bytes(const char* a, const char* b, size_t len) {
  uint64_t x, y, d = 0;
  if (MCR__LIKELY(len >= 8)) {
    for (size_t i = 0; i + 8 < len; i += 8) {
      memcpy(&x, a + i, 8);
      memcpy(&y, b + i, 8);
      d |= x ^ y;
    }
    memcpy(&x, a + len - 8, 8);
    memcpy(&y, b + len - 8, 8);
    return (d | (x ^ y)) == 0;
  }
  if (len >= 4) {
    uint32_t u, v, e;
    memcpy(&u, a, 4);
    memcpy(&v, b, 4);
    e = u ^ v;
    memcpy(&u, a + len - 4, 4);
    memcpy(&v, b + len - 4, 4);
    return (e | (u ^ v)) == 0;
  }
  for (size_t i = 0; i < len; i++)
    d |= (uint64_t)(a[i] ^ b[i]);
  return d == 0;
}

static inline uint32_t mcr__load32(const char* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* The fast paths' number scanner: 1..19 decimal digits at s, before end
 * (pass NULL when the caller guarantees a non-digit byte at or before the
 * end of its data), the form every number of a reply takes in practice; 19
 * digits cannot overflow. Returns the byte after the digits, or NULL for no
 * digit or 20 and more, which the general parser then decides. */
static inline const char* mcr__fast_dec(const char* s, const char* end,
                                        uint64_t* out) {
  const char* b = s;
  uint64_t v = 0;
  unsigned d;
  while ((!end || s < end) && (d = (unsigned)(unsigned char)*s - '0') <= 9) {
    v = v * 10 + d;
    s++;
  }
  if (MCR__UNLIKELY(s == b || s - b > 19))
    return NULL;
  *out = v;
  return s;
}

/* The fast path of a one-key retrieval: b[0..len) is exactly one whole
 * reply in its common form, "END\r\n" (returns MCR_MISS) or
 * "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\nEND\r\n" for the key
 * asked (returns MCR_OK, g filled; value_off from b). Anything else
 * returns -1: a reply not complete yet, followed by more bytes, an
 * error line, a malformed one, numbers of 20 digits, a value over
 * value_max. The general parser then decides on the same bytes, so this
 * function decides nothing the general parser would decide differently,
 * and it reads no byte at or past len. The key must be valid (no byte <=
 * 0x20), so the first '\n' in b is the one after the numbers, as the
 * general parser would find it. */
static inline __attribute__((always_inline)) int mcr__text_get_fast_inline(
    const char* b, size_t len, mcr__get_ctx_t* g) {
  /* The shortest hit: "VALUE " key " 0 0\r\n" then "\r\nEND\r\n". */
  size_t ksp = 6 + g->key_len; /* the space after the key */
  if (MCR__UNLIKELY(len < ksp + 5 + 7)) {
    if (len == 5 && memcmp(b, "END\r\n", 5) == 0)
      return MCR_MISS;
    return -1;
  }
  /* The data and "\r\nEND\r\n" must take all the bytes after the line.
   * Checked first: its '\r' then ends every digit scan below at the
   * latest, and those scans start at or before it (len >= ksp + 12). */
  const char* trailer = b + len - 7;
  if (mcr__load32(trailer) != mcr__load32("\r\nEN") ||
      mcr__load32(trailer + 3) != mcr__load32("ND\r\n"))
    return -1;
  if (memcmp(b, "VALUE ", 6) != 0 ||
      !mcr__same_bytes(b + 6, g->key, g->key_len) || b[ksp] != ' ')
    return -1;
  uint64_t flags, bytes, cas = 0;
  const char* p = mcr__fast_dec(b + ksp + 1, NULL, &flags);
  if (!p || *p != ' ' || flags > UINT32_MAX)
    return -1;
  if (!(p = mcr__fast_dec(p + 1, NULL, &bytes)))
    return -1;
  if (*p == ' ') {
    if (!(p = mcr__fast_dec(p + 1, NULL, &cas)))
      return -1;
  } else if (g->want_cas) {
    return -1;
  }
  /* p <= trailer. */
  if (p[0] != '\r' || trailer - p < 2 || p[1] != '\n' ||
      (uint64_t)(trailer - (p + 2)) != bytes || bytes > g->value_max)
    return -1;
  g->flags = (uint32_t)flags;
  g->cas = cas;
  g->value_off = (size_t)(p + 2 - b);
  g->value_len = (size_t)bytes;
  return MCR_OK;
}

/* The one-key get's decoder: the one-pass check, inline, then the
 * general parser. */
static inline __attribute__((always_inline)) int mcr__text_get_decode(
    void* ctx, const char* buf, size_t pos, size_t len, mcr__dec_t* d) {
  mcr__get_ctx_t* g = ctx;
  int rc = mcr__text_get_fast_inline(buf + pos, len - pos, g);
  if (MCR__LIKELY(rc != -1)) {
    g->status = rc;
    if (rc == MCR_OK)
      g->value_off += pos;
    d->used = len - pos;
    return MCR__DONE;
  }
  return mcr__text_get_general(g, buf, pos, len, d);
}

/* "stats[ <arg>]\r\n" in iov[0..4). Returns 4. */
int mcr__text_stats_request(struct iovec* iov, const char* arg);
/* A stats reply: "STAT <name> <value>" lines up to END (or one RESET / OK
 * line). Names and values are recorded in `ent`, grown with mcr__realloc
 * (the caller frees it); more than MCR__STATS_MAX of them is MCR_EPROTO. */
#define MCR__STATS_MAX 100000
typedef struct {
  size_t name_off, name_len, value_off, value_len;
} mcr__stat_ent_t;
typedef struct {
  mcr__stat_ent_t* ent; /* out */
  size_t n, cap;
} mcr__stats_ctx_t;
int mcr__text_stats_decode(void* ctx, const char* buf, size_t pos, size_t len,
                           mcr__dec_t* d);

/* Many keys of one node, in request order (next[] links them): the request
 * lines ("<word>[ <ttl>] <key> <key>...\r\n", at most 2 KiB each, each
 * answered by its own END) appended to out, and the decoder of the node's
 * reply, which matches each VALUE line to the next key asked (memcached
 * answers hits in request order and skips misses). */
typedef struct {
  mcr__get_t cmd;
  const char* const* keys;
  const size_t* key_lens;
  const size_t* next; /* next key of the same node, SIZE_MAX ends */
  mcr_item_t* items;  /* out: status, flags, cas, value_len */
  size_t* value_off;  /* out: offset of key i's value in buf */
  size_t value_max;
  size_t first; /* the node's first key */
  /* decoder state */
  size_t lines;   /* request lines sent, each answered by END */
  size_t ends;    /* END lines read */
  size_t want;    /* next key that may have a VALUE line */
  size_t pending; /* key whose VALUE line is read but not its data */
  size_t pending_bytes;
} mcr__mget_ctx_t;
int mcr__text_mget_request(mcr_buf_t* out, mcr__mget_ctx_t* g, int64_t ttl);
int mcr__text_mget_decode(void* ctx, const char* buf, size_t pos, size_t len,
                          mcr__dec_t* d);

/* A batch of one-line-reply commands of one node (set or delete of many
 * keys), replies in command order: statuses[i] gets key i's status, or
 * the server's error for that command alone. */
typedef struct {
  const size_t* next; /* next command of the same node, SIZE_MAX ends */
  int* statuses;      /* out */
  size_t cursor;      /* next command whose reply is due */
} mcr__batch_ctx_t;
int mcr__text_batch_decode(void* ctx, const char* buf, size_t pos, size_t len,
                           mcr__dec_t* d);

/* ================================================================ codec_meta.c
 */
/* Checks one meta command's arguments (op 'g', 's', 'd', 'a'). Returns 0,
 * or MCR_EINVAL / MCR_ERANGE / MCR_EKEY / MCR_ETOOBIG with the reason in
 * err[errlen]. */
int mcr__meta_check(char op, const char* key, size_t key_len, const void* value,
                    size_t value_len, const mcr_meta_opts_t* o,
                    size_t item_size_max, char* err, size_t errlen);
/* Longest request line a checked command makes. */
#define MCR__META_LINE_MAX 512
/* Writes the request line of a checked command ("<m?> <key>[ <size>]
 * <flags>*\r\n", flags exactly o->flags) at p. Returns its length. An ms
 * value and its "\r\n" follow it on the wire. */
size_t mcr__meta_request(char* p, char op, const char* key, size_t key_len,
                         size_t value_len, const mcr_meta_opts_t* o);

/* One meta reply as its decoder leaves it: offsets into buf. */
typedef struct {
  int code;            /* MCR__RC_* */
  mcr_meta_result_t r; /* status and the numeric fields; pointers unset */
  size_t line_off, line_len;
  size_t val_off;
  size_t key_off; /* the returned key (text, or base64 when key_b64) */
  bool key_b64;
} mcr__meta_reply_t;
/* Reply codes, as bits so a request can list the ones it may get. */
enum {
  MCR__RC_HD = 1 << 0,
  MCR__RC_VA = 1 << 1,
  MCR__RC_EN = 1 << 2,
  MCR__RC_NS = 1 << 3,
  MCR__RC_EX = 1 << 4,
  MCR__RC_NF = 1 << 5,
  MCR__RC_MN = 1 << 6,
  MCR__RC_ME = 1 << 7,
  MCR__RC_ERR = 1 << 8 /* ERROR / CLIENT_ERROR / SERVER_ERROR */
};
/* The codes command `op` may get. */
int mcr__meta_codes(char op);
/* What a quiet command that got no reply did: mg missed, the rest
 * succeeded (q hides only those outcomes). */
static inline int mcr__meta_implied(char op) {
  return op == 'g' ? MCR_MISS : MCR_OK;
}

/* A single meta command's reply, with the MN that follows it when quiet:
 * `accept` lists the codes the command may get. A reply whose opaque
 * differs from `opaque` (when want_opaque) is MCR_EPROTO. */
typedef struct {
  int accept; /* in: MCR__RC_* */
  bool quiet; /* in: an mn follows the command */
  bool want_opaque;
  uint32_t opaque;
  int implied; /* in: the status a suppressed reply stands for */
  size_t value_max;
  mcr__meta_reply_t rep; /* out */
} mcr__meta_ctx_t;
int mcr__meta_decode(void* ctx, const char* buf, size_t pos, size_t len,
                     mcr__dec_t* d);

/* A pipeline's commands on one node, sent quiet with O<index> and closed
 * by mn: its replies are filed under the commands they answer (commands in
 * [0, n) of `cmds`, the node's in request order in `order`), silent ones
 * get their implied status when a later reply or the MN proves them done,
 * error lines (which carry no opaque) are charged to the commands that may
 * have caused them. */
enum { MCR__P_SILENT = 0, MCR__P_REPLIED, MCR__P_ERRLINE };
typedef struct {
  size_t node; /* index in the client's nodes */
  size_t pos;  /* position in the node's request order */
  int state;   /* MCR__P_* */
  mcr__meta_reply_t rep;
} mcr__pcmd_t;
typedef struct {
  mcr_meta_cmd_t* cmds;
  size_t n;
  mcr__pcmd_t* pc;
  const size_t* order; /* the node's commands, in request order */
  size_t count;        /* how many */
  size_t node;
  size_t value_max;
  /* decoder state */
  size_t cur;    /* first position not yet known to be done */
  size_t errs;   /* error lines since cur, charged to cur, cur+1... */
  int first_err; /* the first of them */
} mcr__pipe_ctx_t;
int mcr__meta_pipe_decode(void* ctx, const char* buf, size_t pos, size_t len,
                          mcr__dec_t* d);

/* ================================================================ value.c */
/* Turns a caller value into the bytes to store: serde encode, then zstd
 * when value_len >= compress_threshold and it shrinks. *out / *out_len point
 * either at the caller's bytes or at client scratch memory. */
int mcr__encode_value(mcr_client_t* c, const void* value, size_t value_len,
                      uint32_t* flags, const void** out, size_t* out_len);
/* The reverse, applied to a fetched item in place: when the flags call for
 * decompression or a serde is set, item->value is redirected to memory from
 * the arena (so every value of a multi-key call stays valid) and
 * MCR_FLAG_ZSTD is cleared from item->flags. */
int mcr__decode_item(mcr_client_t* c, mcr_item_t* item);
static inline bool mcr__item_needs_decode(const mcr_client_t* c,
                                          const mcr_item_t* it);
/* Frees the value coding state of c. */
void mcr__value_free(mcr_client_t* c);

/* ================================================================ conn.c */
/* One connection to one server, and the deadline of the call on it. The
 * transport sends and receives bytes and reports what went wrong as a code
 * (with `sys` and `what` for the caller's message); it keeps no protocol
 * and writes no message. */
typedef struct mcr__conn {
  int fd;            /* -1 when closed */
  unsigned fork_gen; /* mcr__fork_gen when fd was opened */
  bool used;         /* connected at least once (for reconnect counts) */
  bool slow;         /* this call already blocked once: poll from now on */
  bool reused;       /* the call runs on a connection of an earlier call */
  int64_t deadline;  /* end of the current call's I/O, mcr__now_ns() based */
  char* rbuf;        /* bytes received in the current call (rlen of them, also
                        after a failure); [rpos, rlen) not yet decoded */
  size_t rpos, rlen, rcap;
  int sys;          /* errno behind the last failure, or 0 */
  const char* what; /* what failed: "connect", "send", "recv", "poll"...,
                       or `detail` */
  /* TLS (tls.c): the connection's SSL object, the session its server gave
   * it (offered again on reconnect), the buffer a request's pieces are
   * joined in (one record), and the text of a TLS failure. */
  struct ssl_st* ssl;
  struct ssl_session_st* tls_session;
  bool tls_resumed; /* the last handshake resumed tls_session */
  char* tls_out;
  size_t tls_out_cap;
  char detail[200];
} mcr__conn_t;

#define MCR__RBUF_INITIAL 16384 /* first size of a receive buffer */

/* How connections are made. */
typedef struct mcr__tls mcr__tls_t;
typedef struct {
  int io_timeout_ms; /* SO_RCVTIMEO / SO_SNDTIMEO */
  bool keepalive;
  mcr__tls_t* tls; /* NULL: plain TCP */
} mcr__conn_opts_t;

/* Resolves srv by the deadline (CLOCK_MONOTONIC ms): numeric addresses at
 * once, names in a helper thread the caller stops waiting for at the
 * deadline. Returns 0 and *out (freeaddrinfo it), MCR_ECONNTIMEOUT,
 * MCR_ERESOLVE (*why: the resolver's text) or MCR_ENOMEM / MCR_ESYS. */
struct addrinfo;
int mcr__resolve(const mcr__server_t* srv, int64_t deadline,
                 struct addrinfo** out, const char** why);

/* Resolves srv[0..n) together: numeric addresses at once, names by up to
 * 16 helper threads at a time, each name within timeout_ms of when its
 * lookup starts and none past `deadline` (CLOCK_MONOTONIC ms; INT64_MAX
 * for none). Returns 0 with out[i] set for every i (freeaddrinfo each);
 * or, at the first name that fails or passes its deadline, MCR_ERESOLVE
 * or MCR_ECONNTIMEOUT with *bad its index, *why the reason, and every
 * out[i] NULL (lookups still running are abandoned, not waited for).
 * MCR_ENOMEM / MCR_ESYS. */
int mcr__resolve_many(const mcr__server_t* const* srv, size_t n, int timeout_ms,
                      int64_t deadline, struct addrinfo** out, size_t* bad,
                      const char** why);

/* Connects k to srv by the deadline and tunes the socket. Returns 0, or
 * MCR_ECONNECT / MCR_ECONNTIMEOUT / MCR_ERESOLVE / MCR_ESYS / MCR_EINVAL
 * with k->what and k->sys set (k->what is the resolver's text for
 * MCR_ERESOLVE). */
int mcr__conn_open(mcr__conn_t* k, const mcr__server_t* srv,
                   const mcr__conn_opts_t* o, int64_t deadline);
/* Closes the connection (no-op when closed); keeps the buffer and what
 * was received (the engine asks whether anything was). */
void mcr__conn_close(mcr__conn_t* k);
/* Frees the buffer too. */
void mcr__conn_free(mcr__conn_t* k);

/* The out-of-line rests of the two functions below, and their TLS forms. */
int mcr__conn_send_rest(mcr__conn_t* k, const struct iovec* iov, int iovcnt,
                        ssize_t w, size_t total);
int mcr__conn_send_tls(mcr__conn_t* k, const struct iovec* iov, int iovcnt);
int mcr__conn_fill_tls(mcr__conn_t* k, size_t room);
int mcr__conn_fill_failed(mcr__conn_t* k, ssize_t r);
int mcr__conn_fill_slow(mcr__conn_t* k, size_t room);

#define MCR__RECV_ROOM 4096 /* free space a receive asks for at least */

/* Sends all iov bytes by k->deadline (ns). The first attempt never waits; once
 * the socket buffer is full, every wait polls against the deadline. On
 * failure the connection is closed (a request is never left half-sent on a
 * live stream) and MCR_ETIMEOUT, MCR_ECLOSED (peer gone) or MCR_EIO is
 * returned. Inline: the first attempt is on every call's path. */
static inline __attribute__((always_inline)) int mcr__conn_send(
    mcr__conn_t* k, const struct iovec* iov, int iovcnt) {
  if (MCR__UNLIKELY(k->ssl != NULL))
    return mcr__conn_send_tls(k, iov, iovcnt);
  size_t total = iov[0].iov_len;
  ssize_t w;
  if (MCR__LIKELY(iovcnt == 1)) { /* send(2) is cheaper than sendmsg(2) */
    w = send(k->fd, iov[0].iov_base, total, MSG_NOSIGNAL | MSG_DONTWAIT);
  } else {
    for (int i = 1; i < iovcnt; i++)
      total += iov[i].iov_len;
    struct msghdr mh = {.msg_iov = (struct iovec*)iov,
                        .msg_iovlen = (size_t)iovcnt};
    w = sendmsg(k->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  if (MCR__LIKELY((size_t)w == total))
    return 0;
  return mcr__conn_send_rest(k, iov, iovcnt, w, total);
}

/* Receives more bytes after rlen, with room for at least `room` of them.
 * The call's first receive blocks (bounded by SO_RCVTIMEO, the I/O timeout)
 * unless k->slow; later ones poll against k->deadline. Returns 0 when
 * bytes arrived; on failure closes the connection and returns
 * MCR_ETIMEOUT, MCR_ECLOSED, MCR_EIO or MCR_ENOMEM. Inline for the same
 * reason. */
static inline __attribute__((always_inline)) int mcr__conn_fill(mcr__conn_t* k,
                                                                size_t room) {
  if (MCR__UNLIKELY(k->ssl != NULL))
    return mcr__conn_fill_tls(k, room);
  size_t free_room = k->rcap - k->rlen;
  if (MCR__LIKELY(!k->slow && free_room >= MCR__RECV_ROOM &&
                  free_room >= room)) {
    ssize_t r = recv(k->fd, k->rbuf + k->rlen, free_room, 0);
    k->slow = true;
    if (MCR__LIKELY(r > 0)) {
      k->rlen += (size_t)r;
      return 0;
    }
    return mcr__conn_fill_failed(k, r);
  }
  return mcr__conn_fill_slow(k, room);
}
/* A receive on a socket poll found readable: 0 (bytes arrived, or none
 * yet), or a failure as for mcr__conn_fill. */
int mcr__conn_fill_nowait(mcr__conn_t* k, size_t room);

/* ================================================================ tls.c */
/* TLS over a connection (tls.c: why it keeps conn.c's shape). None of
 * these closes the connection: conn.c does, on any failure. */
/* A context for connections with options `o`. Returns 0, or MCR_EINVAL /
 * MCR_ETLS (a CA, certificate or key that cannot be used) / MCR_ENOMEM /
 * MCR_ENOTSUP (built --without-tls) with the reason in err. */
int mcr__tls_new(mcr__tls_t** out, const mcr_tls_opts_t* o, char* err,
                 size_t errlen);
void mcr__tls_free(mcr__tls_t* t);
/* The handshake on k's connected socket by the deadline (ms), verifying
 * `name` (unless the context names another). Returns 0, or
 * MCR_ECONNTIMEOUT / MCR_ETLS / MCR_ETLSVERIFY / MCR_EIO / MCR_ENOMEM with
 * k->what. */
int mcr__tls_start(mcr__conn_t* k, mcr__tls_t* t, const char* name,
                   int64_t deadline_ms);
/* Frees k's SSL object without a close_notify. */
void mcr__tls_end(mcr__conn_t* k);
/* Forgets k's session and buffers (when the connection's node goes). */
void mcr__tls_forget(mcr__conn_t* k);
/* As mcr__conn_send / mcr__conn_fill (nowait: as mcr__conn_fill_nowait),
 * over TLS; on failure the caller closes the connection. */
int mcr__tls_send(mcr__conn_t* k, const struct iovec* iov, int iovcnt);
int mcr__tls_fill(mcr__conn_t* k, size_t room, bool nowait);

/* ================================================================ health.c */
/* Node health shared by the workers of a host: the table's layout and
 * the operations on one entry (health.c; docs/health.md). */
/* identity, state, down since, marks, failures in a row, 3 spare: one
 * cache line per node */
#define MCR__HH_WORDS 8u
#define MCR__HH_CAP 65536u /* entries (4 MiB); a power of two */
#define MCR__HH_PROBES 16u /* entries an identity may live in */
#define MCR__HH_BYTES ((size_t)MCR__HH_CAP * MCR__HH_WORDS * 8)
/* The entry of nodes without one: always up, never written. */
extern uint64_t mcr__hh_none[MCR__HH_WORDS];
typedef struct mcr__node mcr__node_t;
typedef struct mcr__health mcr__health_t;
typedef struct {
  bool down, probing;
  bool mine;           /* pid is this process */
  uint32_t pid;        /* who marked it, or probes it */
  int64_t deadline_ms; /* down until (mcr__now_ms), or the probe's lapse */
} mcr__hh_state_t;
void mcr__hh_decode(uint64_t state, mcr__hh_state_t* out);
/* A ring node's identity: the same in every process for the same host,
 * address and port, whatever the ring generation. Never 0. (ketama.c: the
 * snapshot writer publishes it, health.c keys the table by it.) */
uint64_t mcr__ring_node_ident(const char* host, const char* address,
                              uint16_t port);
/* The entry of `ident` in `table`, claiming a free one when `claim`; NULL
 * when absent (or the entry's window is full). */
uint64_t* mcr__hh_find(uint64_t* table, uint64_t ident, bool claim);
/* Takes in n's shared state when it changed. */
void mcr__hh_sync(mcr__node_t* n, mcr__health_t* h, int64_t now);
/* Counts a failure of n in the host's count of its failures in a row
 * (failures more than h->probe_ms apart do not add up). True when that
 * count reached h->limit. */
bool mcr__hh_failure(mcr__node_t* n, mcr__health_t* h, int64_t now);
/* Marks n down host-wide until `until` (mcr__now_ms). */
void mcr__hh_mark_down(mcr__node_t* n, mcr__health_t* h, int64_t until);
/* n's retry time came: true when this handle won the probe (others keep
 * failing fast until it answers or the claim lapses), false when another
 * did or the state changed (taken in). */
bool mcr__hh_claim_probe(mcr__node_t* n, mcr__health_t* h, int64_t now);
/* The probe answered: n is up for the whole host. */
void mcr__hh_probe_ok(mcr__node_t* n, mcr__health_t* h);

/* ================================================================ node.c */
/* One node: the server it is, the connection to it, its counters in the
 * host stats and its health. Nodes are built in one place (here), for a
 * configured server or a ring node, and freed in one place. */
struct mcr__node {
  mcr__server_t srv;
  mcr__conn_t conn;
  uint64_t* hs;       /* this node's counters in the host stats, or NULL */
  uint64_t* hh;       /* its entry in the host's health table (health.c),
                         or mcr__hh_none */
  uint64_t hh_seen;   /* the shared state word this handle last took in */
  bool hh_probing;    /* this handle holds the node's probe */
  uint64_t ident;     /* ring nodes: mcr__ring_node_ident */
  uint32_t at;        /* its index in c->nodes (the ring's node index) */
  int fails;          /* consecutive connect / I/O failures */
  int64_t down_until; /* mcr__now_ms() until which the node is down, or 0 */
};

/* The failure rule of a client (mcr_client_opts_t.failure_limit, ...)
 * and, when the agent handed one out, the host's health table. */
struct mcr__health {
  int limit;       /* failures in a row that mark a node down; 0: never */
  int retry_ms;    /* how long a node stays down */
  int probe_ms;    /* how long a probe claim holds: connect + I/O timeout */
  size_t ndown;    /* nodes of the client marked down */
  uint64_t* table; /* the host's health table (health.c), or NULL */
};

/* A node for a configured server (takes over srv's strings), or for ring
 * node `rn` (connects to its address, or its host without one). */
void mcr__node_init(mcr__node_t* n, mcr__server_t* srv);
int mcr__node_from_ring(mcr__node_t* n, const char* host, const char* address,
                        uint16_t port, uint32_t weight, uint64_t ident);
void mcr__node_free(mcr__node_t* n);

/* A connect or I/O failure on n: the limit-th in a row marks it down for
 * retry_ms (host-wide, with a health table). Errors that say nothing
 * about the node's health (out of memory, a malformed reply, a server
 * error line) are not counted. */
void mcr__node_failed(mcr__node_t* n, mcr__health_t* h, int err);
/* A success: the host's count starts again (a store only when it is not
 * 0 already, so a healthy node's cache line is only ever read). */
static inline void mcr__hh_success(mcr__node_t* n) {
  if (MCR__UNLIKELY(ck_pr_load_64(&n->hh[4]) != 0) && n->hh != mcr__hh_none)
    ck_pr_store_64(&n->hh[4], 0);
}
/* n answered: its failures are forgotten (and, when this handle probed
 * it, the host is told it is up). */
static inline void mcr__node_ok(mcr__node_t* n, mcr__health_t* h) {
  n->fails = 0;
  mcr__hh_success(n);
  if (MCR__UNLIKELY(n->hh_probing))
    mcr__hh_probe_ok(n, h);
}
/* True when n's host-wide state is what this handle last took in: the
 * hot path's one load. */
static inline bool mcr__node_shared_same(const mcr__node_t* n) {
  return ck_pr_load_64(&n->hh[1]) == n->hh_seen;
}
/* 0 when n may be used now (a node whose retry time came is given one
 * try, by one process of the host: one more failure marks it down again),
 * else MCR_ENODEDOWN with *left_ms until then. */
int mcr__node_available(mcr__node_t* n, mcr__health_t* h, int64_t now,
                        int64_t* left_ms);
/* True while n is marked down, here or host-wide (for routing around
 * it). */
static inline bool mcr__node_is_down(mcr__node_t* n, mcr__health_t* h,
                                     int64_t now) {
  if (MCR__UNLIKELY(!mcr__node_shared_same(n)))
    mcr__hh_sync(n, h, now);
  return n->down_until > now;
}
/* Points n at its entry in h's health table (claiming one), or at
 * mcr__hh_none without a table or a free entry. */
void mcr__node_bind_health(mcr__node_t* n, mcr__health_t* h);

/* ================================================================ hoststats.c
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
int mcr__hs_open(mcr_client_t* c, int dirfd, uid_t owner, uint64_t generation);
void mcr__hs_close(mcr_client_t* c);
/* Points every node c has made at its entry in c's segment (after a ring
 * switch to `generation`), registering again when the agent restarted. */
void mcr__hs_bind(mcr_client_t* c, uint64_t generation);
/* Points node n, just made, at its entry and its health (when c has a
 * segment). */
void mcr__hs_bind_node(mcr_client_t* c, mcr__node_t* n);
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

/* ================================================================ router.c */
typedef struct mcr__router mcr__router_t;
/* Builds the routing state: nothing for one server, the ring of
 * c->opts.distribution for several, the agent's snapshot in ring_dir, or
 * the ring of the nodes an ElastiCache endpoint lists (the last two also
 * fill c->nodes). Returns 0 or a negative error with the message on c. */
int mcr__router_init(mcr_client_t* c, const char* ring_dir,
                     const char* elasticache);
void mcr__router_free(mcr_client_t* c);
/* For a ring_dir client: one acquire load of the published generation;
 * on a change, switch to the new ring and reconcile c->nodes (see
 * router.c). For an elasticache client: a clock read, and a poll of the
 * endpoint when the discovery interval is over. Called when a call
 * starts, between calls only. */
void mcr__router_refresh(mcr_client_t* c);
/* The node that owns `key` (routed around down nodes with eject), made on
 * first use (mcr__client_node). NULL, with the error on c and its code in
 * c->node_err, only when it could not be made. */
mcr__node_t* mcr__route(mcr_client_t* c, const char* key, size_t key_len);
/* out[i] = the index in c->nodes of the node mcr__route picks for keys[i],
 * for i < n; the keys' hashes are computed several at a time (md5x.c).
 * The nodes are not made: the caller asks mcr__client_node for each. */
void mcr__route_many(mcr_client_t* c, size_t n, const char* const* keys,
                     const size_t* lens, size_t* out);
/* Makes node i of c's ring (i < c->nnodes): its entry read from the ring
 * (checked there), its host stats and health bound. NULL, with the error on
 * c and its code in c->node_err, when the entry is damaged or memory ran
 * out. */
mcr__node_t* mcr__node_make(mcr_client_t* c, size_t i);
/* Puts the configured node n (allocated with mcr__malloc) at index i of
 * c->nodes and in c->live. Returns 0 or MCR_ENOMEM (n is then c's all the
 * same: mcr_client_free frees it). */
int mcr__node_place(mcr_client_t* c, size_t i, mcr__node_t* n);

/* ================================================================ fanout.c */
/* The engine's interface, and its one-node hot path inline: fanout.h. */

/* ================================================================ client.c */
typedef struct mcr__value mcr__value_t;

struct mcr_client {
  mcr_client_opts_t opts; /* copy; opts.servers points into nothing */
  /* One slot per node of the ring (or per configured server), in ring
   * order; a ring node's slot stays NULL until a call needs it, so a
   * worker holds state only for the nodes it uses, whatever the ring's
   * size (mcr__client_node). */
  mcr__node_t** nodes;
  size_t nnodes, nodes_cap; /* nodes_cap >= nnodes slots allocated */
  mcr__node_t** live; /* the nodes made, in no order (nlive of live_cap) */
  size_t nlive, live_cap;
  int node_err; /* the error of the last node that could not be made */
  mcr__conn_opts_t conn_opts;
  mcr__health_t health;
  int64_t call_cap;       /* no byte of the current call after this (ns) */
  int64_t call_budget_ns; /* connect_timeout_ms + io_timeout_ms, in ns */
  int64_t io_ns;          /* io_timeout_ms in ns */
  mcr_buf_t wbuf;         /* request being built */
  mcr__arena_t arena;     /* per-call result memory (decoded values, stats) */
  mcr_buf_t scratch;      /* serde / compression output for one value */
  mcr__value_t* value;
  mcr_stat_t* stats; /* result of stats */
  size_t stats_cap;
  mcr_client_stats_t counters;
  mcr__router_t* router; /* NULL with one node */
  mcr__hs_t* hs;         /* host stats segment (hoststats.c), or NULL */
  mcr__tls_t* tls;       /* TLS context of every connection, or NULL */
  bool pinned;           /* mcr_client_route_by: route by pin_key */
  size_t pin_len;
  char pin_key[250];
  char err[512];
};

/* Node i of c (i < c->nnodes), made on first use; NULL as mcr__node_make
 * says. */
static inline mcr__node_t* mcr__client_node(mcr_client_t* c, size_t i) {
  mcr__node_t* n = c->nodes[i];
  return MCR__LIKELY(n != NULL) ? n : mcr__node_make(c, i);
}

/* Per-call reset of the last error and the result arena, the ring check
 * and the fork check: the first thing every public call that talks to a
 * server does. */
void mcr__call_start(mcr_client_t* c);
/* The message for a key that failed mcr__key_ok, and MCR_EKEY. */
int mcr__key_error(mcr_client_t* c, const char* key, size_t key_len);
static inline int mcr__check_key(mcr_client_t* c, const char* key,
                                 size_t key_len) {
  return MCR__LIKELY(mcr__key_ok(key, key_len))
             ? 0
             : mcr__key_error(c, key, key_len);
}
int mcr__check_ttl(mcr_client_t* c, int64_t ttl);

static inline bool mcr__item_needs_decode(const mcr_client_t* c,
                                          const mcr_item_t* it) {
  return (it->flags & MCR_FLAG_ZSTD) || c->opts.serde;
}

#endif /* MCR_INTERNAL_H */
