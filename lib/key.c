/* key.c — key validation and the base64 codec for binary meta keys.
 *
 * memcached's text protocol splits a request line on spaces and ends it at
 * "\r\n", so a key with whitespace or control bytes would smuggle a second
 * command onto the wire. mcr_key_check is therefore run before anything is
 * sent: 1..250 bytes, no byte <= 0x20 and no DEL (0x7f). Bytes >= 0x80 are
 * allowed, as memcached allows them. Binary keys go through the meta
 * commands' b flag, base64-encoded here (RFC 4648 alphabet with padding, the
 * form memcached decodes).
 */
#include <string.h>

#include "internal.h"

/* Nonzero when some byte of w is < 0x21 (space, control, NUL) or is 0x7f:
 * the classic "has a byte less than n" word trick, exact for n <= 128, plus
 * "has a zero byte" of w ^ 0x7f7f... for DEL. Bytes >= 0x80 pass. */
static inline uint64_t bad_bytes(uint64_t w) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  uint64_t del = w ^ (ones * 0x7f);
  return ((w - ones * 0x21) & ~w & highs) | ((del - ones) & ~del & highs);
}

int mcr_key_check(const char* key, size_t len) {
  if (MCR__UNLIKELY(!key || len == 0 || len > MCR__KEY_MAX))
    return MCR_EKEY;
  uint64_t bad = 0, w;
  if (MCR__LIKELY(len >= 8)) {
    /* Eight bytes at a time; the last word overlaps the one before. */
    for (size_t i = 0; i + 8 < len; i += 8) {
      memcpy(&w, key + i, 8);
      bad |= bad_bytes(w);
    }
    memcpy(&w, key + len - 8, 8);
    bad |= bad_bytes(w);
  } else {
    /* Short keys: padded with a harmless 'a'. */
    w = 0x6161616161616161ull;
    for (size_t i = 0; i < len; i++)
      ((unsigned char*)&w)[i] = (unsigned char)key[i];
    bad = bad_bytes(w);
  }
  return MCR__UNLIKELY(bad != 0) ? MCR_EKEY : 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t mcr__base64_encode(const void* in, size_t len, char* out) {
  const unsigned char* s = in;
  char* o = out;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = b64_alphabet[(v >> 6) & 63];
    *o++ = b64_alphabet[v & 63];
  }
  if (i < len) {
    uint32_t v = (uint32_t)s[i] << 16;
    if (i + 1 < len)
      v |= (uint32_t)s[i + 1] << 8;
    *o++ = b64_alphabet[v >> 18];
    *o++ = b64_alphabet[(v >> 12) & 63];
    *o++ = i + 1 < len ? b64_alphabet[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  return (size_t)(o - out);
}

static int b64_value(unsigned char ch) {
  if (ch >= 'A' && ch <= 'Z')
    return ch - 'A';
  if (ch >= 'a' && ch <= 'z')
    return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9')
    return ch - '0' + 52;
  if (ch == '+')
    return 62;
  if (ch == '/')
    return 63;
  return -1;
}

long mcr__base64_decode(const char* in, size_t len, void* out) {
  if (len % 4 != 0)
    return -1;
  unsigned char* o = out;
  for (size_t i = 0; i < len; i += 4) {
    int pad = 0;
    uint32_t v = 0;
    for (int j = 0; j < 4; j++) {
      unsigned char ch = (unsigned char)in[i + j];
      int d;
      if (ch == '=' && i + 4 == len && j >= 2) {
        pad++;
        d = 0;
      } else {
        if (pad)
          return -1; /* data after padding */
        d = b64_value(ch);
        if (d < 0)
          return -1;
      }
      v = v << 6 | (uint32_t)d;
    }
    *o++ = (unsigned char)(v >> 16);
    if (pad < 2)
      *o++ = (unsigned char)(v >> 8);
    if (pad < 1)
      *o++ = (unsigned char)v;
  }
  return (long)(o - (unsigned char*)out);
}
