/* md5x.c — the Ketama key hash of many keys at once, several MD5s in
 * parallel.
 *
 * Both MD5 distribution modes route a key by the first little-endian word
 * of MD5(key). A multi-key call hashes every key before it sends anything,
 * and one scalar MD5 compression costs about 570 instructions, nearly half
 * of the client's work for a 100-key get. MD5 has no data-dependent
 * branches, so the same 64 steps run on 4 keys at once in SSE2 registers
 * (the x86_64 baseline), on 8 in AVX2 registers, or on up to 32 in four
 * interleaved batches of AVX-512VL registers, by what the CPU and the OS
 * support (checked once, with __builtin_cpu_supports, which looks at
 * both; valgrind hides AVX-512, so under it the AVX2 level runs). Each lane
 * hashes one padded 64-byte block, so keys of 0..55 bytes go through the lanes;
 * longer keys (memcached allows 250 bytes) and a lone leftover key take the
 * scalar path of ketama.c, mcr__ring_hash. Only word 0 of the digest is needed,
 * and RFC 1321's last three steps write only words 1..3, so the lanes stop
 * after step 61: the result is still exactly MD5's first word.
 *
 * The steps are written once, as a macro over a step macro: with GCC
 * vector extensions (which clang accepts too) for SSE2 and AVX2, with
 * vpternlogd and vprold for AVX-512 (see that section for why). The
 * transposes of the key blocks into per-word vectors use intrinsics.
 * Other architectures compile the scalar loop alone.
 *
 * mcr__ring_hash_many, the router's entry for many keys, is here too: it
 * sits above ketama.c's one-key hash, which it falls back to.
 */
#include <stdalign.h>
#include <string.h>

#include <xxhash.h>

#include "ring.h"

/* A lane holds one key in one MD5 block: the key, 0x80, zeros, and the bit
 * length, which fits in word 14 (word 15 is zero). MAX_LANES is the most
 * any level takes at once (AVX-512; SSE2 takes 4, AVX2 8). */
#define LANE_KEY_MAX 55
#define MAX_LANES 32

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
/* Keeps the compiler from reassociating a step's additions: left free,
 * GCC adds T[i] after f(b, c, d), on the dependency chain, instead of
 * before it (a was last written three steps back). */
#define SUM_DONE(x) __asm__("" : "+v"(x))
/* a = b + ((a + f(b, c, d) + X[k] + T[i]) <<< s), on every lane; the
 * first line does not wait for the previous step. */
#define STEP(T, f, a, b, c, d, k, s, i) \
  do {                                  \
    a += m[k] + T(i);                   \
    SUM_DONE(a);                        \
    a += f(b, c, d);                    \
    a = ROTL(a, s) + b;                 \
  } while (0)

/* Steps 1..61 on vectors a, b, c, d, message-word vectors m[0..15] and
 * T(i), the vector of table entry i + 1 of RFC 1321 (T[i + 1] below).
 * Steps 62..64 would only update d, c and b. */
#define MD5X_STEPS(S, T, a, b, c, d) \
  do {                               \
    S(T, F, a, b, c, d, 0, 7, 0);    \
    S(T, F, d, a, b, c, 1, 12, 1);   \
    S(T, F, c, d, a, b, 2, 17, 2);   \
    S(T, F, b, c, d, a, 3, 22, 3);   \
    S(T, F, a, b, c, d, 4, 7, 4);    \
    S(T, F, d, a, b, c, 5, 12, 5);   \
    S(T, F, c, d, a, b, 6, 17, 6);   \
    S(T, F, b, c, d, a, 7, 22, 7);   \
    S(T, F, a, b, c, d, 8, 7, 8);    \
    S(T, F, d, a, b, c, 9, 12, 9);   \
    S(T, F, c, d, a, b, 10, 17, 10); \
    S(T, F, b, c, d, a, 11, 22, 11); \
    S(T, F, a, b, c, d, 12, 7, 12);  \
    S(T, F, d, a, b, c, 13, 12, 13); \
    S(T, F, c, d, a, b, 14, 17, 14); \
    S(T, F, b, c, d, a, 15, 22, 15); \
    S(T, G, a, b, c, d, 1, 5, 16);   \
    S(T, G, d, a, b, c, 6, 9, 17);   \
    S(T, G, c, d, a, b, 11, 14, 18); \
    S(T, G, b, c, d, a, 0, 20, 19);  \
    S(T, G, a, b, c, d, 5, 5, 20);   \
    S(T, G, d, a, b, c, 10, 9, 21);  \
    S(T, G, c, d, a, b, 15, 14, 22); \
    S(T, G, b, c, d, a, 4, 20, 23);  \
    S(T, G, a, b, c, d, 9, 5, 24);   \
    S(T, G, d, a, b, c, 14, 9, 25);  \
    S(T, G, c, d, a, b, 3, 14, 26);  \
    S(T, G, b, c, d, a, 8, 20, 27);  \
    S(T, G, a, b, c, d, 13, 5, 28);  \
    S(T, G, d, a, b, c, 2, 9, 29);   \
    S(T, G, c, d, a, b, 7, 14, 30);  \
    S(T, G, b, c, d, a, 12, 20, 31); \
    S(T, H, a, b, c, d, 5, 4, 32);   \
    S(T, H, d, a, b, c, 8, 11, 33);  \
    S(T, H, c, d, a, b, 11, 16, 34); \
    S(T, H, b, c, d, a, 14, 23, 35); \
    S(T, H, a, b, c, d, 1, 4, 36);   \
    S(T, H, d, a, b, c, 4, 11, 37);  \
    S(T, H, c, d, a, b, 7, 16, 38);  \
    S(T, H, b, c, d, a, 10, 23, 39); \
    S(T, H, a, b, c, d, 13, 4, 40);  \
    S(T, H, d, a, b, c, 0, 11, 41);  \
    S(T, H, c, d, a, b, 3, 16, 42);  \
    S(T, H, b, c, d, a, 6, 23, 43);  \
    S(T, H, a, b, c, d, 9, 4, 44);   \
    S(T, H, d, a, b, c, 12, 11, 45); \
    S(T, H, c, d, a, b, 15, 16, 46); \
    S(T, H, b, c, d, a, 2, 23, 47);  \
    S(T, I, a, b, c, d, 0, 6, 48);   \
    S(T, I, d, a, b, c, 7, 10, 49);  \
    S(T, I, c, d, a, b, 14, 15, 50); \
    S(T, I, b, c, d, a, 5, 21, 51);  \
    S(T, I, a, b, c, d, 12, 6, 52);  \
    S(T, I, d, a, b, c, 3, 10, 53);  \
    S(T, I, c, d, a, b, 10, 15, 54); \
    S(T, I, b, c, d, a, 1, 21, 55);  \
    S(T, I, a, b, c, d, 8, 6, 56);   \
    S(T, I, d, a, b, c, 15, 10, 57); \
    S(T, I, c, d, a, b, 6, 15, 58);  \
    S(T, I, b, c, d, a, 13, 21, 59); \
    S(T, I, a, b, c, d, 4, 6, 60);   \
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

/* The whole of one SSE2 or AVX2 kernel after its transpose: the 61 steps
 * on vectors of type V (T4 or T8 reads the table's lanes) from the
 * initial state, and word 0 of each digest to out. */
#define MD5X_DIGEST(V, T, m, out)               \
  do {                                          \
    V a = (V){0} + MD5_A0, b = (V){0} + MD5_B0; \
    V c = (V){0} + MD5_C0, d = (V){0} + MD5_D0; \
    const uint32_t(*t)[8] = md5_t;              \
    KEEP_IN_MEMORY(t);                          \
    MD5X_STEPS(STEP, T, a, b, c, d);            \
    a += MD5_A0;                                \
    memcpy(out, &a, sizeof a);                  \
  } while (0)

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
  MD5X_DIGEST(v4u32, T4, m, out);
}

/* The 8-lane transpose: lanes 0..3 in the low 128 bits of each vector,
 * lanes 4..7 in the high ones (the AVX2 unpacks work per 128-bit half). */
__attribute__((target("avx2"))) static inline void transpose8(
    const uint8_t (*blk)[64], v8u32 m[16]) {
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
}

/* md5x4 with 8 lanes. */
__attribute__((target("avx2"))) static void md5x8(const uint8_t (*blk)[64],
                                                  uint32_t out[8]) {
  v8u32 m[16];
  transpose8(blk, m);
  MD5X_DIGEST(v8u32, T8, m, out);
}

/* Writes key[0..len), len <= LANE_KEY_MAX, as one padded MD5 block. */
static inline void pad_block(uint8_t b[64], const char* key, size_t len) {
  memset(b, 0, 64);
  mcr__copy_key(b, key, len);
  b[len] = 0x80;
  uint32_t bits = (uint32_t)len * 8;
  memcpy(b + 56, &bits, sizeof bits);
}

/* A level's kernel call on the first k (2..capacity) filled blocks of blk:
 * writes word 0 of their digests to out[0..k). Spare lanes of the kernel
 * it picks hash zeros (blk has room for them) and are not read. */
typedef void (*batch_fn)(uint8_t (*blk)[64], size_t k, uint32_t* out);

/* Zeroes the spare lanes [k, lanes) of blk. */
static inline void zero_spare(uint8_t (*blk)[64], size_t k, size_t lanes) {
  memset(blk[k], 0, (lanes - k) * 64);
}

static void batch_sse2(uint8_t (*blk)[64], size_t k, uint32_t* out) {
  uint32_t word[4];
  zero_spare(blk, k, 4);
  md5x4((const uint8_t(*)[64])blk, word);
  memcpy(out, word, k * 4);
}

static void batch_avx2(uint8_t (*blk)[64], size_t k, uint32_t* out) {
  uint32_t word[8];
  zero_spare(blk, k, 8);
  md5x8((const uint8_t(*)[64])blk, word);
  memcpy(out, word, k * 4);
}

/* ---------------------------------------------------------------- AVX-512
 * The steps above are latency-bound: each is a chain of about seven
 * dependent operations (F, G or I as two or three, three additions, the
 * rotate as two shifts and an or), and a batch has no other work to fill
 * the gaps. AVX-512VL shortens the chain to four on the same 256-bit
 * vectors: F, G, H and I are one vpternlogd each, the rotate is one
 * vprold, and a + X[k] + T[i] is summed before f(b, c, d) is known (a was
 * last written three steps back). Even so, one batch leaves most of the
 * vector units idle (on Zen 5 these operations take 2 cycles each, so a
 * step is 8 cycles of latency against about 2 of issue), so up to four
 * independent batches of 8 lanes run interleaved, step for step: 32 keys
 * per call, and the last, partly filled call uses 1, 2 or 4 batches.
 * Measured on Zen 5 (ns per call, hot): 1 batch 103, 2 batches 126, 4
 * batches 166. 512-bit vectors were measured too: one 16-lane vector
 * (131 ns) is no faster than two 8-lane batches, and more 512-bit batches
 * would make a client library run zmm code, which lowers the clock of
 * some Intel cores for everything else; so the vectors stay 256 bits. */

#define AVX512_TARGET "avx2,avx512f,avx512vl"

/* vpternlogd immediates: bit (x << 2 | y << 1 | z) of the immediate is
 * f(x, y, z), f as RFC 1321 writes it. */
#define TERN_F 0xca /* x ? y : z, (x & y) | (~x & z) */
#define TERN_G 0xe4 /* z ? x : y, (x & z) | (y & ~z) */
#define TERN_H 0x96 /* x ^ y ^ z */
#define TERN_I 0x39 /* y ^ (x | ~z) */
#define TERN(f, x, y, z)                                                      \
  ((v8u32)_mm256_ternarylogic_epi32((__m256i)(x), (__m256i)(y), (__m256i)(z), \
                                    TERN_##f))
#define ROL(x, s) ((v8u32)_mm256_rol_epi32((__m256i)(x), (s)))

/* STEP on batch j (state a<j> .. d<j>, message words m<j>[]). */
#define TSTEP(T, j, f, a, b, c, d, k, s, i) \
  a##j += m##j[k] + T(i);                   \
  SUM_DONE(a##j);                           \
  a##j += TERN(f, b##j, c##j, d##j);        \
  a##j = ROL(a##j, s) + b##j
#define TSTEP1(T, f, a, b, c, d, k, s, i) \
  do {                                    \
    TSTEP(T, 0, f, a, b, c, d, k, s, i);  \
  } while (0)
#define TSTEP2(T, f, a, b, c, d, k, s, i) \
  do {                                    \
    TSTEP(T, 0, f, a, b, c, d, k, s, i);  \
    TSTEP(T, 1, f, a, b, c, d, k, s, i);  \
  } while (0)
#define TSTEP4(T, f, a, b, c, d, k, s, i) \
  do {                                    \
    TSTEP(T, 0, f, a, b, c, d, k, s, i);  \
    TSTEP(T, 1, f, a, b, c, d, k, s, i);  \
    TSTEP(T, 2, f, a, b, c, d, k, s, i);  \
    TSTEP(T, 3, f, a, b, c, d, k, s, i);  \
  } while (0)

/* Batch j's message words from blk[8j..8j+8) and its initial state. */
#define TBATCH(j)                                               \
  v8u32 m##j[16];                                               \
  transpose8(blk + 8 * (j), m##j);                              \
  v8u32 a##j = (v8u32){0} + MD5_A0, b##j = (v8u32){0} + MD5_B0; \
  v8u32 c##j = (v8u32){0} + MD5_C0, d##j = (v8u32){0} + MD5_D0
/* Word 0 of batch j's digests to out[8j..8j+8). */
#define TOUT(j)   \
  a##j += MD5_A0; \
  memcpy(out + 8 * (j), &a##j, sizeof a##j)

/* 8 lanes in one batch, for a last batch of 2..8 keys. */
__attribute__((target(AVX512_TARGET))) static void md5x8t(
    const uint8_t (*blk)[64], uint32_t out[8]) {
  TBATCH(0);
  const uint32_t(*t)[8] = md5_t;
  KEEP_IN_MEMORY(t);
  MD5X_STEPS(TSTEP1, T8, a, b, c, d);
  TOUT(0);
}

/* 16 lanes in two batches, for a last batch of 9..16 keys. */
__attribute__((target(AVX512_TARGET))) static void md5x16t(
    const uint8_t (*blk)[64], uint32_t out[16]) {
  TBATCH(0);
  TBATCH(1);
  const uint32_t(*t)[8] = md5_t;
  KEEP_IN_MEMORY(t);
  MD5X_STEPS(TSTEP2, T8, a, b, c, d);
  TOUT(0);
  TOUT(1);
}

/* 32 lanes in four batches. */
__attribute__((target(AVX512_TARGET))) static void md5x32t(
    const uint8_t (*blk)[64], uint32_t out[32]) {
  TBATCH(0);
  TBATCH(1);
  TBATCH(2);
  TBATCH(3);
  const uint32_t(*t)[8] = md5_t;
  KEEP_IN_MEMORY(t);
  MD5X_STEPS(TSTEP4, T8, a, b, c, d);
  TOUT(0);
  TOUT(1);
  TOUT(2);
  TOUT(3);
}

/* The AVX-512 batch: 32 lanes; a partly filled last call takes the
 * smallest kernel that holds it. */
__attribute__((target(AVX512_TARGET))) static void batch_avx512(
    uint8_t (*blk)[64], size_t k, uint32_t* out) {
  uint32_t word[32];
  size_t lanes = k <= 8 ? 8 : k <= 16 ? 16 : 32;
  zero_spare(blk, k, lanes);
  if (lanes == 8)
    md5x8t((const uint8_t(*)[64])blk, word);
  else if (lanes == 16)
    md5x16t((const uint8_t(*)[64])blk, word);
  else
    md5x32t((const uint8_t(*)[64])blk, word);
  memcpy(out, word, k * 4);
}

/* ---------------------------------------------------------------- dispatch */

/* The best level this CPU runs, found once. __builtin_cpu_supports also
 * checks that the OS saves the registers (XCR0); valgrind hides AVX-512
 * from cpuid, so under valgrind the AVX2 level is chosen. A race between
 * two first callers only stores the same value twice, hence relaxed
 * atomics. */
static int cpu_isa(void) {
  static int best = -1;
  int v = __atomic_load_n(&best, __ATOMIC_RELAXED);
  if (MCR__UNLIKELY(v < 0)) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl"))
      v = MCR__MD5X_AVX512;
    else if (__builtin_cpu_supports("avx2"))
      v = MCR__MD5X_AVX2;
    else
      v = MCR__MD5X_SSE2;
    __atomic_store_n(&best, v, __ATOMIC_RELAXED);
  }
  return v;
}

/* The test cap (mcr__md5x_limit); MCR__MD5X_AVX512 means none. */
static int isa_cap = MCR__MD5X_AVX512;

static int current_isa(void) {
  int best = cpu_isa(), cap = __atomic_load_n(&isa_cap, __ATOMIC_RELAXED);
  return cap < best ? cap : best;
}

mcr__md5x_isa_t mcr__md5x_limit(mcr__md5x_isa_t max) {
  __atomic_store_n(&isa_cap, (int)max, __ATOMIC_RELAXED);
  return (mcr__md5x_isa_t)current_isa();
}

void mcr__md5x_word0(size_t n, const char* const* keys, const size_t* lens,
                     uint32_t* out) {
  int isa = current_isa();
  if (isa == MCR__MD5X_SCALAR || n < 2) {
    scalar_many(n, keys, lens, out);
    return;
  }
  size_t lanes = isa == MCR__MD5X_AVX512 ? 32 : isa == MCR__MD5X_AVX2 ? 8 : 4;
  batch_fn batch = isa == MCR__MD5X_AVX512 ? batch_avx512
                   : isa == MCR__MD5X_AVX2 ? batch_avx2
                                           : batch_sse2;
  alignas(32) uint8_t blk[MAX_LANES][64];
  uint32_t word[MAX_LANES];
  size_t idx[MAX_LANES]; /* the key in each filled lane */
  size_t k = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i < n && MCR__UNLIKELY(lens[i] > LANE_KEY_MAX)) {
      out[i] = mcr__ring_hash(MCR_DIST_KETAMA, keys[i], lens[i]);
      continue;
    }
    if (i < n) {
      pad_block(blk[k], keys[i], lens[i]);
      idx[k++] = i;
      if (k < lanes)
        continue;
    }
    /* A full batch, or the keys left at the end. */
    if (k == 1) { /* one compression either way; the scalar one is cheaper */
      out[idx[0]] = mcr__ring_hash(MCR_DIST_KETAMA, keys[idx[0]], lens[idx[0]]);
    } else if (k > 1) {
      batch(blk, k, word);
      for (size_t l = 0; l < k; l++)
        out[idx[l]] = word[l];
    }
    k = 0;
  }
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

void mcr__ring_hash_many(mcr_distribution_t mode, size_t n,
                         const char* const* keys, const size_t* lens,
                         uint32_t* out) {
  if (mode != MCR_DIST_XXH3) {
    mcr__md5x_word0(n, keys, lens, out);
    return;
  }
  for (size_t i = 0; i < n; i++)
    out[i] = (uint32_t)XXH3_64bits(keys[i], lens[i]);
}
