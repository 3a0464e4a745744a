/* fuzz_decode.h — drives a reply decoder the way the engine does, on
 * fuzzer bytes, for the codec fuzz targets (fuzz_text.c, fuzz_meta.c).
 *
 * The decoders are pure (lib/internal.h, "decoders"): bytes in, outcome
 * out. fuzz_run feeds one node's reply in chunks whose sizes the fuzzer
 * also picks, through a buffer that is reallocated to exactly the bytes
 * received so far (so ASan reports any read past them), consuming what
 * the decoder says it used and asking again when it wants more, as
 * fanout.c does; it checks the contract on every call: a result the
 * contract allows, no more bytes used than there were, a need that is
 * bounded by a line or the value limit. Offsets a decoder recorded are
 * checked by the target against the final length.
 */
#ifndef MCR_FUZZ_DECODE_H
#define MCR_FUZZ_DECODE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define FUZZ_VALUE_MAX 4096 /* the value_max every target decodes with */

/* The buffer of one fuzzed reply as the decoder last saw it. */
typedef struct {
  char* buf;
  size_t len; /* bytes received */
  size_t pos; /* bytes consumed */
  int rc;     /* the decoder's final result, or MCR__MORE */
} fuzz_reply_t;

static inline void fuzz_check(int rc, const mcr__dec_t* d, size_t avail) {
  if (rc != MCR__DONE && rc != MCR__MORE && rc != MCR_EPROTO &&
      rc != MCR_ESERVERCMD && rc != MCR_ECLIENTERR && rc != MCR_ESERVERERR)
    abort();
  if (d->used > avail)
    abort();
  if (rc == MCR__MORE && d->need > FUZZ_VALUE_MAX + MCR__LINE_MAX + 64)
    abort(); /* a need beyond any line plus the largest value */
  if (rc == MCR_EPROTO && !d->why)
    abort();
  if (d->line_len && (d->line_off + d->line_len > avail + 1024 * 1024 ||
                      d->line_len > MCR__LINE_MAX))
    abort();
}

/* Feeds data[0..n) to decode(ctx) in chunks (each chunk's size taken from
 * `sizes`, cycling), until the decoder is done, fails, or the bytes run
 * out. Frees nothing: the caller frees r->buf after checking offsets. */
static inline void fuzz_run(fuzz_reply_t* r, mcr__decode_fn decode, void* ctx,
                            const uint8_t* data, size_t n, const uint8_t* sizes,
                            size_t nsizes) {
  *r = (fuzz_reply_t){.buf = NULL, .rc = MCR__MORE};
  size_t chunk_i = 0;
  while (r->len < n) {
    size_t chunk = nsizes ? (size_t)sizes[chunk_i++ % nsizes] + 1 : n;
    if (chunk > n - r->len)
      chunk = n - r->len;
    char* b = malloc(r->len + chunk);
    if (!b)
      abort();
    if (r->len)
      memcpy(b, r->buf, r->len);
    memcpy(b + r->len, data + r->len, chunk);
    free(r->buf);
    r->buf = b;
    r->len += chunk;
    for (;;) {
      mcr__dec_t d = {0};
      int rc = decode(ctx, r->buf, r->pos, r->len, &d);
      fuzz_check(rc, &d, r->len - r->pos);
      r->pos += d.used;
      r->rc = rc;
      if (rc != MCR__MORE)
        return;
      if (d.used == 0)
        break; /* needs bytes that have not arrived yet */
    }
  }
}

/* A reader of fuzzer bytes that yields 0 once they run out. */
typedef struct {
  const uint8_t* p;
  size_t n;
} fuzz_in_t;

static inline uint8_t fuzz_u8(fuzz_in_t* in) {
  if (!in->n)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint32_t fuzz_u32(fuzz_in_t* in) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++)
    v = v << 8 | fuzz_u8(in);
  return v;
}

/* A codec target's input: `head` bytes of its own, a byte choosing up to
 * seven chunk sizes, the sizes, then the reply to decode. */
typedef struct {
  const uint8_t* sizes;
  size_t nsizes;
  const uint8_t* reply;
  size_t n;
} fuzz_input_t;

/* Splits data[0..size) as above; false when it is too short for the head
 * and the sizes it names. */
static inline bool fuzz_split(const uint8_t* data, size_t size, size_t head,
                              fuzz_input_t* in) {
  if (size < head + 1)
    return false;
  in->nsizes = data[head] % 8;
  if (size < head + 1 + in->nsizes)
    return false;
  in->sizes = data + head + 1;
  in->reply = in->sizes + in->nsizes;
  in->n = size - head - 1 - in->nsizes;
  return true;
}

/* True when [off, off + len) lies inside the bytes received. */
static inline bool fuzz_inside(const fuzz_reply_t* r, size_t off, size_t len) {
  return off <= r->len && len <= r->len - off;
}

#endif /* MCR_FUZZ_DECODE_H */
