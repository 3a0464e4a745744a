/* value.c — what happens to a value between the caller and the wire.
 *
 * On the way out: the optional serde encode callback, then zstd compression
 * when the value is at least compress_threshold bytes and compression makes
 * it smaller; a compressed value carries MCR_FLAG_ZSTD (bit 8) in its client
 * flags. On the way in, the reverse: a value with MCR_FLAG_ZSTD is
 * decompressed (the frame must declare its size, which zstd's one-shot API
 * always writes) and the bit is cleared, then serde decode runs. Bits 0..4
 * keep pymemcache's meaning and are never set here, so a value stored by
 * mcring without a serde reads as plain bytes (flags 0) in pymemcache.
 *
 * Decoded values live in the client's arena, so every value of a multi-key
 * call stays valid until the next call. zstd contexts are made on first use
 * and reused; zstd allocates through libc (its custom-allocator API is
 * experimental), which is the one exception to the allocator hooks.
 */
#include <string.h>
#include <zstd.h>

#include "internal.h"

#define DECOMPRESSED_MAX (1ull << 30)

struct mcr__value {
  ZSTD_CCtx* cctx;
  ZSTD_DCtx* dctx;
  mcr_buf_t cbuf; /* compressed output */
};

static mcr__value_t* value_get(mcr_client_t* c) {
  if (!c->value)
    c->value = mcr__calloc(1, sizeof(*c->value));
  return c->value;
}

int mcr__encode_value(mcr_client_t* c, const void* value, size_t value_len,
                      uint32_t* flags, const void** out, size_t* out_len) {
  const void* data = value;
  size_t len = value_len;
  const mcr_serde_t* sd = c->opts.serde;
  if (sd && sd->encode) {
    c->scratch.len = 0;
    if (sd->encode(sd->ud, value, value_len, flags, &c->scratch) < 0)
      return mcr__set_error(c, MCR_ESERDE, "serde encode failed");
    if ((*flags & MCR_FLAG_ZSTD) && !c->opts.raw_flags)
      return mcr__set_error(c, MCR_ESERDE,
                            "serde encode set the reserved zstd flag bit");
    data = c->scratch.data ? c->scratch.data : "";
    len = c->scratch.len;
  }
  if (c->opts.compress_threshold && len >= c->opts.compress_threshold) {
    mcr__value_t* k = value_get(c);
    if (!k)
      return MCR_ENOMEM;
    if (!k->cctx && !(k->cctx = ZSTD_createCCtx()))
      return MCR_ENOMEM;
    size_t bound = ZSTD_compressBound(len);
    k->cbuf.len = 0;
    if (mcr__buf_reserve(&k->cbuf, bound))
      return MCR_ENOMEM;
    size_t z = ZSTD_compressCCtx(k->cctx, k->cbuf.data, bound, data, len,
                                 c->opts.compress_level);
    if (ZSTD_isError(z))
      return mcr__set_error(c, MCR_ECOMPRESS, "zstd: %s", ZSTD_getErrorName(z));
    if (z < len) {
      data = k->cbuf.data;
      len = z;
      *flags |= MCR_FLAG_ZSTD;
      c->counters.compressed++;
    }
  }
  *out = data;
  *out_len = len;
  return 0;
}

int mcr__decode_item(mcr_client_t* c, mcr_item_t* it) {
  if ((it->flags & MCR_FLAG_ZSTD) && !c->opts.raw_flags) {
    unsigned long long size =
        ZSTD_getFrameContentSize(it->value, it->value_len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > DECOMPRESSED_MAX)
      return mcr__set_error(c, MCR_ECOMPRESS,
                            "value flagged zstd is not a sized zstd frame");
    mcr__value_t* k = value_get(c);
    if (!k)
      return MCR_ENOMEM;
    if (!k->dctx && !(k->dctx = ZSTD_createDCtx()))
      return MCR_ENOMEM;
    char* dst = mcr__arena_alloc(&c->arena, size ? (size_t)size : 1);
    if (!dst)
      return MCR_ENOMEM;
    size_t z = ZSTD_decompressDCtx(k->dctx, dst, (size_t)size, it->value,
                                   it->value_len);
    if (ZSTD_isError(z) || z != size)
      return mcr__set_error(
          c, MCR_ECOMPRESS, "zstd: %s",
          ZSTD_isError(z) ? ZSTD_getErrorName(z) : "size mismatch");
    it->value = dst;
    it->value_len = (size_t)size;
    it->flags &= ~MCR_FLAG_ZSTD;
  }
  const mcr_serde_t* sd = c->opts.serde;
  if (sd && sd->decode) {
    c->scratch.len = 0;
    if (sd->decode(sd->ud, it->value, it->value_len, it->flags, &c->scratch) <
        0)
      return mcr__set_error(c, MCR_ESERDE, "serde decode failed");
    char* dst = mcr__arena_alloc(&c->arena, c->scratch.len + 1);
    if (!dst)
      return MCR_ENOMEM;
    if (c->scratch.len)
      memcpy(dst, c->scratch.data, c->scratch.len);
    dst[c->scratch.len] = '\0';
    it->value = dst;
    it->value_len = c->scratch.len;
  }
  return 0;
}

void mcr__value_free(mcr_client_t* c) {
  mcr__value_t* k = c->value;
  if (!k)
    return;
  ZSTD_freeCCtx(k->cctx);
  ZSTD_freeDCtx(k->dctx);
  mcr__buf_free(&k->cbuf);
  mcr__free(k);
  c->value = NULL;
}
