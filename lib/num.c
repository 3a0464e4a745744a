/* num.c — decimal numbers and space-separated tokens, as the protocols
 * write them.
 *
 * Numbers are written by hand (no snprintf on a request path) and parsed
 * with a length limit and an overflow check, never with bare strtoul: a
 * reply's number is the peer's word and may be anything. The tokenizer
 * records (offset, length) pairs into the line, so parsing a reply line
 * copies and allocates nothing (memcached's proto_parser does the same).
 * The agent's parsers use these too.
 */
#include <string.h>

#include "internal.h"

size_t mcr__u64_to_dec_long(char* p, uint64_t v) {
  char tmp[20];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++)
    p[i] = tmp[n - 1 - i];
  return n;
}

int mcr__dec_to_u64(const char* p, size_t len, uint64_t* out) {
  if (len == 0 || len > 20)
    return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned d = (unsigned)(unsigned char)p[i] - '0';
    if (d > 9)
      return -1;
    if (v > (UINT64_MAX - d) / 10)
      return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

int mcr__dec_to_i64(const char* p, size_t len, int64_t* out) {
  bool neg = len > 0 && p[0] == '-';
  uint64_t v;
  if (mcr__dec_to_u64(p + neg, len - neg, &v))
    return -1;
  if (neg) {
    if (v > (uint64_t)INT64_MAX + 1)
      return -1;
    *out = (int64_t)(0 - v);
  } else {
    if (v > INT64_MAX)
      return -1;
    *out = (int64_t)v;
  }
  return 0;
}

int mcr__tokenize(const char* line, size_t len, mcr__tok_t* tok, int max) {
  if (len > UINT16_MAX)
    return -1;
  int n = 0;
  size_t i = 0;
  while (i < len) {
    const char* sp = memchr(line + i, ' ', len - i);
    size_t end = sp ? (size_t)(sp - line) : len;
    if (end == i || n == max)
      return -1; /* empty token, or too many */
    tok[n].off = (uint16_t)i;
    tok[n].len = (uint16_t)(end - i);
    n++;
    i = end + 1;
    if (sp && i == len)
      return -1; /* trailing space */
  }
  return n;
}
