/* md5x.c — the Ketama key hash of many keys at once, several MD5s in
 * parallel.
 *
 * Both MD5 distribution modes route a key by the first little-endian word
 * of MD5(key). A multi-key call hashes every key before it sends anything,
 * and one scalar MD5 compression costs about 570 instructions, nearly half
 * of the client's work for a 100-key get. MD5 has no data-dependent
 * branches, so the same 64 steps run on 4 keys at once in SSE2 registers
 * (the x86_64 baseline) or on 8 in AVX2 registers when the CPU and the OS
 * support AVX2 (checked once, with __builtin_cpu_supports, which looks at
 * both). Each lane hashes one padded 64-byte block, so keys of 0..55
 * bytes go through the lanes; longer keys (memcached allows 250 bytes) and
 * a lone leftover key take the scalar path of ketama.c, mcr__ring_hash. Only
 * word 0 of the digest is needed, and RFC 1321's last three steps write only
 * words 1..3, so the lanes stop after step 61: the result is still exactly
 * MD5's first word.
 *
 * The steps are written once, with GCC vector extensions (which clang
 * accepts too), and expanded for both vector widths; only the transposes
 * of the key blocks into per-word vectors use intrinsics. Other
 * architectures compile the scalar loop alone.
 */
#include <stdalign.h>
#include <string.h>

#include "ring.h"

/* A lane holds one key in one MD5 block: the key, 0x80, zeros, and the bit
 * length, which fits in word 14 (word 15 is zero). */
#define LANE_KEY_MAX 55
#define MAX_LANES 8

#if defined(__x86_64__) && defined(__SSE2__)
#define MD5X_SIMD 1
#include <immintrin.h>
#endif

static void scalar_many(size_t n, const char* const* keys, const size_t* lens,
                        uint32_t* out) {
  for (size_t i = 0; i < n; i++)
    out[i] = mcr__ring_hash(MCR_DIST_KETAMA, keys[i], lens[i]);
}

#ifdef MD5X_SIMD

/* ---------------------------------------------------------------- steps */

/* RFC 1321, section 3.4. F and G are rewritten with one operation fewer
 * (same truth tables): F = z ^ (x & (y ^ z)), G = y ^ (z & (x ^ y)). */
#define F(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define G(x, y, z) ((y) ^ ((z) & ((x) ^ (y))))
#define H(x, y, z) ((x) ^ (y) ^ (z))
#define I(x, y, z) ((y) ^ ((x) | ~(z)))
#define ROTL(x, s) (((x) << (s)) | ((x) >> (32 - (s))))
/* a = b + ((a + f(b, c, d) + X[k] + T[i]) <<< s), on every lane. */
#define STEP(T, f, a, b, c, d, k, s, i) \
  do {                                  \
    a += f(b, c, d) + m[k] + T(i);      \
    a = ROTL(a, s) + b;                 \
  } while (0)

/* Steps 1..61 on vectors a, b, c, d, message-word vectors m[0..15] and
 * T(i), the vector of table entry i + 1 of RFC 1321 (T[i + 1] below).
 * Steps 62..64 would only update d, c and b. */
#define MD5X_STEPS(T, a, b, c, d)       \
  do {                                  \
    STEP(T, F, a, b, c, d, 0, 7, 0);    \
    STEP(T, F, d, a, b, c, 1, 12, 1);   \
    STEP(T, F, c, d, a, b, 2, 17, 2);   \
    STEP(T, F, b, c, d, a, 3, 22, 3);   \
    STEP(T, F, a, b, c, d, 4, 7, 4);    \
    STEP(T, F, d, a, b, c, 5, 12, 5);   \
    STEP(T, F, c, d, a, b, 6, 17, 6);   \
    STEP(T, F, b, c, d, a, 7, 22, 7);   \
    STEP(T, F, a, b, c, d, 8, 7, 8);    \
    STEP(T, F, d, a, b, c, 9, 12, 9);   \
    STEP(T, F, c, d, a, b, 10, 17, 10); \
    STEP(T, F, b, c, d, a, 11, 22, 11); \
    STEP(T, F, a, b, c, d, 12, 7, 12);  \
    STEP(T, F, d, a, b, c, 13, 12, 13); \
    STEP(T, F, c, d, a, b, 14, 17, 14); \
    STEP(T, F, b, c, d, a, 15, 22, 15); \
    STEP(T, G, a, b, c, d, 1, 5, 16);   \
    STEP(T, G, d, a, b, c, 6, 9, 17);   \
    STEP(T, G, c, d, a, b, 11, 14, 18); \
    STEP(T, G, b, c, d, a, 0, 20, 19);  \
    STEP(T, G, a, b, c, d, 5, 5, 20);   \
    STEP(T, G, d, a, b, c, 10, 9, 21);  \
    STEP(T, G, c, d, a, b, 15, 14, 22); \
    STEP(T, G, b, c, d, a, 4, 20, 23);  \
    STEP(T, G, a, b, c, d, 9, 5, 24);   \
    STEP(T, G, d, a, b, c, 14, 9, 25);  \
    STEP(T, G, c, d, a, b, 3, 14, 26);  \
    STEP(T, G, b, c, d, a, 8, 20, 27);  \
    STEP(T, G, a, b, c, d, 13, 5, 28);  \
    STEP(T, G, d, a, b, c, 2, 9, 29);   \
    STEP(T, G, c, d, a, b, 7, 14, 30);  \
    STEP(T, G, b, c, d, a, 12, 20, 31); \
    STEP(T, H, a, b, c, d, 5, 4, 32);   \
    STEP(T, H, d, a, b, c, 8, 11, 33);  \
    STEP(T, H, c, d, a, b, 11, 16, 34); \
    STEP(T, H, b, c, d, a, 14, 23, 35); \
    STEP(T, H, a, b, c, d, 1, 4, 36);   \
    STEP(T, H, d, a, b, c, 4, 11, 37);  \
    STEP(T, H, c, d, a, b, 7, 16, 38);  \
    STEP(T, H, b, c, d, a, 10, 23, 39); \
    STEP(T, H, a, b, c, d, 13, 4, 40);  \
    STEP(T, H, d, a, b, c, 0, 11, 41);  \
    STEP(T, H, c, d, a, b, 3, 16, 42);  \
    STEP(T, H, b, c, d, a, 6, 23, 43);  \
    STEP(T, H, a, b, c, d, 9, 4, 44);   \
    STEP(T, H, d, a, b, c, 12, 11, 45); \
    STEP(T, H, c, d, a, b, 15, 16, 46); \
    STEP(T, H, b, c, d, a, 2, 23, 47);  \
    STEP(T, I, a, b, c, d, 0, 6, 48);   \
    STEP(T, I, d, a, b, c, 7, 10, 49);  \
    STEP(T, I, c, d, a, b, 14, 15, 50); \
    STEP(T, I, b, c, d, a, 5, 21, 51);  \
    STEP(T, I, a, b, c, d, 12, 6, 52);  \
    STEP(T, I, d, a, b, c, 3, 10, 53);  \
    STEP(T, I, c, d, a, b, 10, 15, 54); \
    STEP(T, I, b, c, d, a, 1, 21, 55);  \
    STEP(T, I, a, b, c, d, 8, 6, 56);   \
    STEP(T, I, d, a, b, c, 15, 10, 57); \
    STEP(T, I, c, d, a, b, 6, 15, 58);  \
    STEP(T, I, b, c, d, a, 13, 21, 59); \
    STEP(T, I, a, b, c, d, 4, 6, 60);   \
  } while (0)

/* RFC 1321's T[1..64] (the integer part of 2^32 * |sin(i)|), each entry
 * repeated for the 8 lanes: a kernel adds row i straight from memory. */
#define X8(t) \
  { t, t, t, t, t, t, t, t }
alignas(32) static const uint32_t md5_t[64][8] = {
    X8(0xd76aa478u), X8(0xe8c7b756u), X8(0x242070dbu), X8(0xc1bdceeeu),
    X8(0xf57c0fafu), X8(0x4787c62au), X8(0xa8304613u), X8(0xfd469501u),
    X8(0x698098d8u), X8(0x8b44f7afu), X8(0xffff5bb1u), X8(0x895cd7beu),
    X8(0x6b901122u), X8(0xfd987193u), X8(0xa679438eu), X8(0x49b40821u),
    X8(0xf61e2562u), X8(0xc040b340u), X8(0x265e5a51u), X8(0xe9b6c7aau),
    X8(0xd62f105du), X8(0x02441453u), X8(0xd8a1e681u), X8(0xe7d3fbc8u),
    X8(0x21e1cde6u), X8(0xc33707d6u), X8(0xf4d50d87u), X8(0x455a14edu),
    X8(0xa9e3e905u), X8(0xfcefa3f8u), X8(0x676f02d9u), X8(0x8d2a4c8au),
    X8(0xfffa3942u), X8(0x8771f681u), X8(0x6d9d6122u), X8(0xfde5380cu),
    X8(0xa4beea44u), X8(0x4bdecfa9u), X8(0xf6bb4b60u), X8(0xbebfbc70u),
    X8(0x289b7ec6u), X8(0xeaa127fau), X8(0xd4ef3085u), X8(0x04881d05u),
    X8(0xd9d4d039u), X8(0xe6db99e5u), X8(0x1fa27cf8u), X8(0xc4ac5665u),
    X8(0xf4292244u), X8(0x432aff97u), X8(0xab9423a7u), X8(0xfc93a039u),
    X8(0x655b59c3u), X8(0x8f0ccc92u), X8(0xffeff47du), X8(0x85845dd1u),
    X8(0x6fa87e4fu), X8(0xfe2ce6e0u), X8(0xa3014314u), X8(0x4e0811a1u),
    X8(0xf7537e82u), X8(0xbd3af235u), X8(0x2ad7d2bbu), X8(0xeb86d391u)};
#undef X8

/* The initial state words, A B C D. */
#define MD5_A0 0x67452301u
#define MD5_B0 0xefcdab89u
#define MD5_C0 0x98badcfeu
#define MD5_D0 0x10325476u

typedef uint32_t v4u32 __attribute__((vector_size(16)));
typedef uint32_t v8u32 __attribute__((vector_size(32)));

/* Row i of md5_t as a vector, through the kernel's pointer t. */
#define T4(i) ((v4u32)_mm_load_si128((const __m128i*)t[i]))
#define T8(i) ((v8u32)_mm256_load_si256((const __m256i*)t[i]))
/* Hides where p points, so the compiler cannot fold the table's entries
 * back into immediates: it would then build every vector constant with
 * three instructions (mov, vmovd, vpbroadcastd) instead of adding it from
 * memory in the vpaddd itself. */
#define KEEP_IN_MEMORY(p) __asm__("" : "+r"(p))

/* ---------------------------------------------------------------- kernels
 * Each takes `lanes` padded blocks and writes word 0 of each digest to
 * out[0..lanes). The blocks are rows; a transpose turns 4 rows of 4 words
 * into 4 vectors holding word k of every lane. */

static void md5x4(const uint8_t (*blk)[64], uint32_t out[4]) {
  v4u32 m[16];
  for (int q = 0; q < 4; q++) {
    __m128i r0 = _mm_loadu_si128((const __m128i*)(blk[0] + 16 * q));
    __m128i r1 = _mm_loadu_si128((const __m128i*)(blk[1] + 16 * q));
    __m128i r2 = _mm_loadu_si128((const __m128i*)(blk[2] + 16 * q));
    __m128i r3 = _mm_loadu_si128((const __m128i*)(blk[3] + 16 * q));
    __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);
    __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);
    m[4 * q + 0] = (v4u32)_mm_unpacklo_epi64(t0, t1);
    m[4 * q + 1] = (v4u32)_mm_unpackhi_epi64(t0, t1);
    m[4 * q + 2] = (v4u32)_mm_unpacklo_epi64(t2, t3);
    m[4 * q + 3] = (v4u32)_mm_unpackhi_epi64(t2, t3);
  }
  m[15] = (v4u32){0}; /* the bit length's high word: lets the compiler
                         drop four additions */
  v4u32 a = (v4u32){0} + MD5_A0, b = (v4u32){0} + MD5_B0;
  v4u32 c = (v4u32){0} + MD5_C0, d = (v4u32){0} + MD5_D0;
  const uint32_t(*t)[8] = md5_t;
  KEEP_IN_MEMORY(t);
  MD5X_STEPS(T4, a, b, c, d);
  a += MD5_A0;
  memcpy(out, &a, sizeof a);
}

/* The same with 8 lanes: lanes 0..3 in the low 128 bits of each vector,
 * lanes 4..7 in the high ones (the AVX2 unpacks work per 128-bit half). */
__attribute__((target("avx2"))) static void md5x8(const uint8_t (*blk)[64],
                                                  uint32_t out[8]) {
  v8u32 m[16];
  for (int q = 0; q < 4; q++) {
    __m256i r[4];
    for (int l = 0; l < 4; l++)
      r[l] = _mm256_inserti128_si256(
          _mm256_castsi128_si256(
              _mm_loadu_si128((const __m128i*)(blk[l] + 16 * q))),
          _mm_loadu_si128((const __m128i*)(blk[l + 4] + 16 * q)), 1);
    __m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    __m256i t1 = _mm256_unpacklo_epi32(r[2], r[3]);
    __m256i t2 = _mm256_unpackhi_epi32(r[0], r[1]);
    __m256i t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    m[4 * q + 0] = (v8u32)_mm256_unpacklo_epi64(t0, t1);
    m[4 * q + 1] = (v8u32)_mm256_unpackhi_epi64(t0, t1);
    m[4 * q + 2] = (v8u32)_mm256_unpacklo_epi64(t2, t3);
    m[4 * q + 3] = (v8u32)_mm256_unpackhi_epi64(t2, t3);
  }
  m[15] = (v8u32){0};
  v8u32 a = (v8u32){0} + MD5_A0, b = (v8u32){0} + MD5_B0;
  v8u32 c = (v8u32){0} + MD5_C0, d = (v8u32){0} + MD5_D0;
  const uint32_t(*t)[8] = md5_t;
  KEEP_IN_MEMORY(t);
  MD5X_STEPS(T8, a, b, c, d);
  a += MD5_A0;
  memcpy(out, &a, sizeof a);
}

static void hash_lanes(size_t lanes, const uint8_t (*blk)[64], uint32_t* out) {
  if (lanes == 8)
    md5x8(blk, out);
  else
    md5x4(blk, out);
}

/* ---------------------------------------------------------------- dispatch */

/* The best level this CPU runs, found once. A race between two first
 * callers only stores the same value twice, hence relaxed atomics. */
static int cpu_isa(void) {
  static int best = -1;
  int v = __atomic_load_n(&best, __ATOMIC_RELAXED);
  if (MCR__UNLIKELY(v < 0)) {
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx2") ? MCR__MD5X_AVX2 : MCR__MD5X_SSE2;
    __atomic_store_n(&best, v, __ATOMIC_RELAXED);
  }
  return v;
}

/* The test cap (mcr__md5x_limit); MCR__MD5X_AVX2 means none. */
static int isa_cap = MCR__MD5X_AVX2;

static int current_isa(void) {
  int best = cpu_isa(), cap = __atomic_load_n(&isa_cap, __ATOMIC_RELAXED);
  return cap < best ? cap : best;
}

mcr__md5x_isa_t mcr__md5x_limit(mcr__md5x_isa_t max) {
  __atomic_store_n(&isa_cap, (int)max, __ATOMIC_RELAXED);
  return (mcr__md5x_isa_t)current_isa();
}

/* Writes key[0..len), len <= LANE_KEY_MAX, as one padded MD5 block. */
static inline void pad_block(uint8_t b[64], const char* key, size_t len) {
  memset(b, 0, 64);
  memcpy(b, key, len);
  b[len] = 0x80;
  uint32_t bits = (uint32_t)len * 8;
  memcpy(b + 56, &bits, sizeof bits);
}

void mcr__md5x_word0(size_t n, const char* const* keys, const size_t* lens,
                     uint32_t* out) {
  int isa = current_isa();
  if (isa == MCR__MD5X_SCALAR || n < 2) {
    scalar_many(n, keys, lens, out);
    return;
  }
  size_t lanes = isa == MCR__MD5X_AVX2 ? 8 : 4;
  alignas(32) uint8_t blk[MAX_LANES][64];
  uint32_t word[MAX_LANES];
  size_t idx[MAX_LANES]; /* the key in each filled lane */
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (MCR__UNLIKELY(lens[i] > LANE_KEY_MAX)) {
      out[i] = mcr__ring_hash(MCR_DIST_KETAMA, keys[i], lens[i]);
      continue;
    }
    pad_block(blk[k], keys[i], lens[i]);
    idx[k++] = i;
    if (k < lanes)
      continue;
    hash_lanes(lanes, (const uint8_t(*)[64])blk, word);
    for (size_t l = 0; l < lanes; l++)
      out[idx[l]] = word[l];
    k = 0;
  }
  if (k == 0)
    return;
  if (k == 1) { /* one compression either way; the scalar one is cheaper */
    out[idx[0]] = mcr__ring_hash(MCR_DIST_KETAMA, keys[idx[0]], lens[idx[0]]);
    return;
  }
  /* Partly filled: the spare lanes hash zeros and are not read. */
  memset(blk[k], 0, (lanes - k) * 64);
  hash_lanes(lanes, (const uint8_t(*)[64])blk, word);
  for (size_t l = 0; l < k; l++)
    out[idx[l]] = word[l];
}

#else /* no SIMD: every key takes the scalar path */

mcr__md5x_isa_t mcr__md5x_limit(mcr__md5x_isa_t max) {
  (void)max;
  return MCR__MD5X_SCALAR;
}

void mcr__md5x_word0(size_t n, const char* const* keys, const size_t* lens,
                     uint32_t* out) {
  scalar_many(n, keys, lens, out);
}

#endif
